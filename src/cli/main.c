/*
 * src/cli/main.c - the keyjournal command: dispatch, verify, info.
 *
 * Owns the command line (argument parsing shared by every command, usage
 * text, --version), the mapping of keyjournal status codes to exit codes and
 * the format of error messages ("keyjournal: <cmd>: <status>: <detail>"),
 * and the two read-only commands: "verify" (open read-only, which replays
 * and authenticates every journal frame, then cross-check the tables) and
 * "info" (the figures of kj_store_stats() and kj_table_count()). The key
 * comes from keysrc.c; "demo" lives in demo.c; "oracle" and "bench" run in
 * the program keyjournal-oracle (cmd_oracle.c).
 *
 * Exit codes: 0 ok, 1 failure, 2 usage, 3 wrong key or not a store
 * (KJ_EKEY), 4 damaged store (KJ_ECORRUPT); oracle and bench: 127 when
 * keyjournal-oracle is not found, 126 when it cannot be run.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cli.h"
#include "keyjournal/errors.h"
#include "keyjournal/store.h"
#include "usage_oracle.h"

#ifdef PACKAGE_VERSION
#define CLI_VERSION_TEXT "keyjournal " PACKAGE_VERSION
#else
#define CLI_VERSION_TEXT "keyjournal 0.1"
#endif

/* How long verify/info wait for a store held by another handle. */
#define CLI_BUSY_TIMEOUT_MS 2000u

/* ---- messages -------------------------------------------------------- */

void cli_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  fputs("keyjournal: ", stderr);
  if (cmd != NULL)
    fprintf(stderr, "%s: ", cmd);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

void cli_kj_error(const char *cmd, const char *what, int rc,
                  const char *detail) {
  fputs("keyjournal: ", stderr);
  if (cmd != NULL)
    fprintf(stderr, "%s: ", cmd);
  if (what != NULL && what[0] != '\0')
    fprintf(stderr, "%s: ", what);
  fputs(kj_strerror(rc), stderr);
  if (detail != NULL && detail[0] != '\0')
    fprintf(stderr, ": %s", detail);
  fputc('\n', stderr);
}

int cli_exit_for(int rc) {
  switch (rc) {
  case KJ_OK:
    return CLI_EXIT_OK;
  case KJ_EKEY:
    return CLI_EXIT_KEY;
  case KJ_ECORRUPT:
    return CLI_EXIT_CORRUPT;
  default:
    return CLI_EXIT_FAIL;
  }
}

static const char usage_demo[] =
    "  keyjournal demo [--key-file F] [--seed N] DIR\n"
    "      Create a store in DIR (absent or empty) holding messaging-client\n"
    "      rows, let a child process commit transactions with KJ_SYNC_FULL,\n"
    "      SIGKILL it at a random point, reopen the store and check that\n"
    "      every acknowledged commit survived and no transaction is partial.\n"
    "      --seed N picks the kill point (default: time-based; printed).\n"
    "      Exit 0 when the check passes, 1 when it fails, 2 on bad usage.\n";
static const char usage_verify[] =
    "  keyjournal verify [--key-file F] DIR\n"
    "      Open read-only, replay and authenticate every journal frame.\n"
    "      A torn tail left by a crash is reported, not counted as damage.\n";
static const char usage_info[] =
    "  keyjournal info [--key-file F] DIR\n"
    "      Print format version, sizes, rows and bytes per table, and the\n"
    "      figures of the last recovery.\n";
static const char usage_keys[] =
    "Key sources, the first that applies:\n"
    "  --key-file F    a file of exactly 32 raw key bytes\n"
    "  KJ_PASSPHRASE   environment variable holding a passphrase (Argon2id)\n"
    "  prompt          verify, info: \"Passphrase: \" on /dev/tty, no echo\n"
    "  random key      demo: a new random key, written to DIR.key (mode\n"
    "                  0600) next to DIR\n";
static const char usage_exit[] =
    "Exit status: 0 ok, 1 failure, 2 usage error, 3 wrong key or not a\n"
    "store, 4 store damaged.\n";
static const char usage_exit_oracle[] =
    "oracle and bench run the program keyjournal-oracle, built only when\n"
    "configure finds SQLite: exit 127 when it is not found.\n";

void cli_usage(FILE *to, const char *cmd) {
  if (cmd != NULL && strcmp(cmd, "demo") == 0) {
    fprintf(to, "Usage:\n%s\n%s", usage_demo, usage_keys);
    return;
  }
  if (cmd != NULL && strcmp(cmd, "verify") == 0) {
    fprintf(to, "Usage:\n%s\n%s\n%s", usage_verify, usage_keys, usage_exit);
    return;
  }
  if (cmd != NULL && strcmp(cmd, "info") == 0) {
    fprintf(to, "Usage:\n%s\n%s\n%s", usage_info, usage_keys, usage_exit);
    return;
  }
  fprintf(to,
          "keyjournal - encrypted append-only journal store\n"
          "\n"
          "Usage:\n"
          "%s%s%s%s%s"
          "  keyjournal help [COMMAND]   this text\n"
          "  keyjournal --version        print the version\n"
          "\n"
          "Options may come before or after DIR; \"--\" ends the options.\n"
          "\n"
          "%s\n%s%s",
          usage_demo, usage_verify, usage_info, CLI_USAGE_ORACLE,
          CLI_USAGE_BENCH, usage_keys, usage_exit, usage_exit_oracle);
}

/* ---- arguments ------------------------------------------------------- */

/* Match option name as "--name VALUE" or "--name=VALUE". Returns 1 and sets
 * *val on a match, 0 when arg is another option, -CLI_EXIT_USAGE (after a
 * message) when the value is missing or the option is repeated. */
static int opt_value(const char *cmd, const char *name, int argc, char **argv,
                     int *i, const char **val) {
  const char *arg = argv[*i];
  size_t n = strlen(name);
  const char *v;
  if (strncmp(arg, name, n) != 0)
    return 0;
  if (arg[n] == '=') {
    v = arg + n + 1;
  } else if (arg[n] == '\0') {
    if (*i + 1 >= argc) {
      cli_error(cmd, "option %s needs a value", name);
      return -CLI_EXIT_USAGE;
    }
    v = argv[++*i];
  } else {
    return 0;
  }
  if (v[0] == '\0') {
    cli_error(cmd, "option %s needs a non-empty value", name);
    return -CLI_EXIT_USAGE;
  }
  if (*val != NULL) {
    cli_error(cmd, "option %s given twice", name);
    return -CLI_EXIT_USAGE;
  }
  *val = v;
  return 1;
}

int cli_parse_args(const char *cmd, int argc, char **argv, int first,
                   int allow_seed, cli_args *a) {
  int only_dirs = 0;
  memset(a, 0, sizeof *a);
  for (int i = first; i < argc; i++) {
    const char *arg = argv[i];
    if (!only_dirs && arg[0] == '-' && arg[1] != '\0') {
      int m;
      if (strcmp(arg, "--") == 0) {
        only_dirs = 1;
        continue;
      }
      if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
        a->help = 1;
        continue;
      }
      m = opt_value(cmd, "--key-file", argc, argv, &i, &a->key_file);
      if (m == 0 && allow_seed)
        m = opt_value(cmd, "--seed", argc, argv, &i, &a->seed);
      if (m < 0)
        return CLI_EXIT_USAGE;
      if (m > 0)
        continue;
      cli_error(cmd, "unknown option '%s' (see 'keyjournal help %s')", arg,
                cmd);
      return CLI_EXIT_USAGE;
    }
    if (a->dir != NULL) {
      cli_error(cmd, "unexpected argument '%s': only one DIR is accepted", arg);
      return CLI_EXIT_USAGE;
    }
    a->dir = arg;
  }
  return CLI_EXIT_OK;
}

/* ---- verify and info ------------------------------------------------- */

/* Resolve the key and open a->dir read-only. Returns an exit status; on
 * CLI_EXIT_OK *out is the open handle. */
static int open_read_only(const char *cmd, const cli_args *a, kj_store **out) {
  char *msg = NULL;
  cli_key *k = cli_key_new();
  if (k == NULL) {
    cli_kj_error(cmd, NULL, KJ_ENOMEM, "allocating key memory");
    return CLI_EXIT_FAIL;
  }
  int rc = cli_key_resolve(k, a->key_file, cmd);
  if (rc != CLI_EXIT_OK) {
    cli_key_free(k);
    return rc;
  }
  kj_options o = KJ_OPTIONS_INIT;
  cli_key_apply(k, &o);
  o.mode = KJ_OPEN_EXISTING;
  o.read_only = 1;
  o.busy_timeout_ms = CLI_BUSY_TIMEOUT_MS;
  *out = NULL;
  int krc = kj_store_open(a->dir, &o, out, &msg);
  /* Options are only read during the call: wipe the key now. */
  cli_key_free(k);
  if (krc != KJ_OK) {
    cli_kj_error(cmd, NULL, krc, msg != NULL && msg[0] ? msg : a->dir);
    kj_free(msg);
    return cli_exit_for(krc);
  }
  kj_free(msg);
  return CLI_EXIT_OK;
}

/* Close a handle, reporting a failed close. Returns an exit status. */
static int close_store(const char *cmd, kj_store *s) {
  int rc = kj_store_close(s);
  if (rc != KJ_OK) {
    cli_kj_error(cmd, "close", rc, NULL);
    return cli_exit_for(rc);
  }
  return CLI_EXIT_OK;
}

static int get_stats(const char *cmd, kj_store *s, kj_stats *st) {
  *st = (kj_stats)KJ_STATS_INIT;
  int rc = kj_store_stats(s, st);
  if (rc != KJ_OK) {
    cli_kj_error(cmd, "stats", rc, kj_store_errmsg(s));
    return cli_exit_for(rc);
  }
  return CLI_EXIT_OK;
}

static void print_tail_note(const char *cmd, const kj_stats *st) {
  if (st->tail_bytes_cut > 0)
    printf("%s: torn/unsynced tail of %" PRIu64
           " bytes (not damage; it will be cut on the next read-write "
           "open)\n",
           cmd, st->tail_bytes_cut);
}

/* Scan callback of verify: count rows and key+value bytes. */
typedef struct scan_tally {
  uint64_t rows;
  uint64_t bytes;
} scan_tally;

static int tally_row(void *arg, const void *key, size_t klen, const void *val,
                     size_t vlen) {
  scan_tally *t = arg;
  (void)key;
  (void)val;
  t->rows++;
  t->bytes += (uint64_t)klen + (uint64_t)vlen;
  return 0;
}

/* Read every row of every table once and check the per-table counts and
 * the store total agree with what the scans saw. */
static int cross_check_tables(const char *cmd, kj_store *s,
                              const kj_stats *st) {
  uint64_t total = 0;
  for (unsigned t = KJ_TABLE_MIN; t <= KJ_TABLE_MAX; t++) {
    uint64_t rows = 0, bytes = 0;
    scan_tally seen = {0, 0};
    int rc = kj_table_count(s, t, &rows, &bytes);
    if (rc == KJ_OK)
      rc = kj_scan_range(s, NULL, t, NULL, 0, NULL, 0, tally_row, &seen);
    if (rc != KJ_OK) {
      char what[32];
      snprintf(what, sizeof what, "table %u", t);
      cli_kj_error(cmd, what, rc, kj_store_errmsg(s));
      return cli_exit_for(rc);
    }
    if (seen.rows != rows || seen.bytes != bytes) {
      cli_error(cmd,
                "table %u: counted %" PRIu64 " rows / %" PRIu64
                " bytes but a scan read %" PRIu64 " rows / %" PRIu64 " bytes",
                t, rows, bytes, seen.rows, seen.bytes);
      return CLI_EXIT_FAIL;
    }
    total += rows;
  }
  if (total != st->rows) {
    cli_error(cmd, "tables hold %" PRIu64 " rows but the store counts %" PRIu64,
              total, st->rows);
    return CLI_EXIT_FAIL;
  }
  return CLI_EXIT_OK;
}

static int cmd_verify(const cli_args *a) {
  const char *cmd = "verify";
  kj_store *s = NULL;
  kj_stats st;
  int rc = open_read_only(cmd, a, &s);
  if (rc != CLI_EXIT_OK)
    return rc;
  rc = get_stats(cmd, s, &st);
  if (rc == CLI_EXIT_OK)
    rc = cross_check_tables(cmd, s, &st);
  int crc = close_store(cmd, s);
  if (rc == CLI_EXIT_OK)
    rc = crc;
  if (rc != CLI_EXIT_OK)
    return rc;
  print_tail_note(cmd, &st);
  printf("verify: OK, %" PRIu64 " frames, %" PRIu64 " rows\n",
         st.frames_replayed, st.rows);
  return CLI_EXIT_OK;
}

static int cmd_info(const cli_args *a) {
  const char *cmd = "info";
  kj_store *s = NULL;
  kj_stats st;
  int rc = open_read_only(cmd, a, &s);
  if (rc != CLI_EXIT_OK)
    return rc;
  rc = get_stats(cmd, s, &st);
  if (rc != CLI_EXIT_OK) {
    kj_store_close(s);
    return rc;
  }
  printf("store:            %s\n", a->dir);
  printf("format version:   %" PRIu32 "\n", st.format_version);
  printf("segments:         %" PRIu64 "\n", st.segments);
  printf("journal bytes:    %" PRIu64 " (since the last snapshot)\n",
         st.journal_bytes);
  if (st.snapshot_seq)
    printf("snapshot:         after seq %" PRIu64 ", %" PRIu64 " rows, %" PRIu64
           " bytes (%" PRIu64 " before compression)\n",
           st.snapshot_seq, st.snapshot_rows, st.snapshot_bytes,
           st.snapshot_raw_bytes);
  else
    printf("snapshot:         none\n");
  printf("disk bytes:       %" PRIu64 "\n", st.disk_bytes);
  printf("last seq:         %" PRIu64 "\n", st.last_seq);
  printf("commits:          %" PRIu64 " (by this read-only handle)\n",
         st.commits);
  printf("rows:             %" PRIu64 " (%" PRIu64 " key+value bytes)\n",
         st.rows, st.logical_bytes);
  int header = 0;
  for (unsigned t = KJ_TABLE_MIN; t <= KJ_TABLE_MAX; t++) {
    uint64_t rows = 0, bytes = 0;
    int krc = kj_table_count(s, t, &rows, &bytes);
    if (krc != KJ_OK) {
      char what[32];
      snprintf(what, sizeof what, "table %u", t);
      cli_kj_error(cmd, what, krc, kj_store_errmsg(s));
      kj_store_close(s);
      return cli_exit_for(krc);
    }
    if (rows == 0)
      continue;
    if (!header) {
      printf("  table        rows         bytes\n");
      header = 1;
    }
    printf("  %5u %11" PRIu64 " %13" PRIu64 "\n", t, rows, bytes);
  }
  printf("last recovery:    %" PRIu64 " frames replayed, %" PRIu64
         " tail bytes cut, %" PRIu64 " us\n",
         st.frames_replayed, st.tail_bytes_cut, st.recovery_usec);
  print_tail_note(cmd, &st);
  return close_store(cmd, s);
}

/* ---- dispatch -------------------------------------------------------- */

static int is_help(const char *arg) {
  return strcmp(arg, "help") == 0 || strcmp(arg, "--help") == 0 ||
         strcmp(arg, "-h") == 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    cli_usage(stderr, NULL);
    return CLI_EXIT_USAGE;
  }
  const char *cmd = argv[1];
  if (is_help(cmd)) {
    if (argc > 2 && strcmp(argv[2], "oracle") == 0) {
      printf("Usage:\n%s", CLI_USAGE_ORACLE);
      return CLI_EXIT_OK;
    }
    if (argc > 2 && strcmp(argv[2], "bench") == 0) {
      printf("Usage:\n%s", CLI_USAGE_BENCH);
      return CLI_EXIT_OK;
    }
    if (argc > 2 &&
        (strcmp(argv[2], "demo") == 0 || strcmp(argv[2], "verify") == 0 ||
         strcmp(argv[2], "info") == 0))
      cli_usage(stdout, argv[2]);
    else
      cli_usage(stdout, NULL);
    return CLI_EXIT_OK;
  }
  if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
    puts(CLI_VERSION_TEXT);
    return CLI_EXIT_OK;
  }
  if (strcmp(cmd, "oracle") == 0 || strcmp(cmd, "bench") == 0)
    return cmd_oracle(argc - 1, argv + 1);
  int is_demo = strcmp(cmd, "demo") == 0;
  int is_verify = strcmp(cmd, "verify") == 0;
  int is_info = strcmp(cmd, "info") == 0;
  if (!is_demo && !is_verify && !is_info) {
    cli_error(NULL, "unknown command '%s' (see 'keyjournal help')", cmd);
    return CLI_EXIT_USAGE;
  }
  if (sodium_init() < 0) {
    cli_error(cmd, "libsodium failed to initialise");
    return CLI_EXIT_FAIL;
  }
  if (is_demo)
    return cli_demo(argc - 1, argv + 1);

  cli_args a;
  int rc = cli_parse_args(cmd, argc, argv, 2, 0, &a);
  if (rc != CLI_EXIT_OK)
    return rc;
  if (a.help) {
    cli_usage(stdout, cmd);
    return CLI_EXIT_OK;
  }
  if (a.dir == NULL) {
    cli_error(cmd, "missing DIR (usage: keyjournal %s [--key-file F] DIR)",
              cmd);
    return CLI_EXIT_USAGE;
  }
  return is_verify ? cmd_verify(&a) : cmd_info(&a);
}
