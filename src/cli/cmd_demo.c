/*
 * src/cli/cmd_demo.c - "keyjournal demo DIR": a crash test anyone can run.
 *
 * Owns the demo: it creates a new store in DIR holding messaging-client
 * rows, forks a child that commits numbered transactions with KJ_SYNC_FULL
 * and reports ("acknowledges") each commit number over a pipe once
 * kj_txn_commit() returned KJ_OK, SIGKILLs the child at a seeded random
 * point, then reopens the store and checks that it holds exactly the state
 * after transaction n_rec, where last_acked <= n_rec <= last_acked + 1: no
 * acknowledged commit lost, no partial transaction, nothing invented.
 *
 * Schema (tables 1..6):
 *   1 identities       key "alice.0:1"-style address, value 32-byte key
 *   2 sessions         key address, value 512-byte session record
 *   3 pre-keys         key 4-byte big-endian id 1..1000, 69-byte record
 *   4 signed pre-keys  key 4-byte big-endian id 1..5, 100-byte record
 *   5 sender keys      key "family@g.us:alice.0:1", 180-byte record
 *   6 meta             "commit" -> 8-byte big-endian transaction number,
 *                      "schema" -> "keyjournal-demo/1"
 *
 * Every value is a pure function of (table, row, generation): a keyed
 * XChaCha20 stream, and for records a header of magic, generation and row.
 * The initial rows are generation 0. Transaction n, in one kj_txn, rewrites
 * row n % rows of tables 1, 2, 4 and 5 with generation n, deletes pre-key n
 * and sets meta "commit" to n. So the full expected state after any n is
 * known, and the check compares every row of every table with it: a torn
 * transaction shows up as rows of different generations.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"
#include "keyjournal/errors.h"
#include "keyjournal/store.h"

static const char *const CMD = "demo";

const char cli_usage_demo[] =
    "  keyjournal demo [--key-file F] [--seed N] DIR\n"
    "      Create a store in DIR (absent or empty) holding messaging-client\n"
    "      rows, let a child process commit transactions with KJ_SYNC_FULL,\n"
    "      SIGKILL it at a random point, reopen the store and check that\n"
    "      every acknowledged commit survived and no transaction is partial.\n"
    "      --seed N picks the kill point (default: time-based; printed).\n"
    "      Exit 0 when the check passes, 1 when it fails, 2 on bad usage.\n";

/* ---- schema ---------------------------------------------------------- */

enum {
  T_IDENTITY = 1,
  T_SESSION = 2,
  T_PREKEY = 3,
  T_SIGNED = 4,
  T_SENDER = 5,
  T_META = 6,
  T_COUNT = 6,
};

#define N_PREKEYS 1000u
#define REC_HEADER 16u /* magic[4], generation BE64, row BE32 */
#define MAX_VALUE 512u
#define MAX_KEY 96u

typedef struct demo_table {
  const char *name;
  uint32_t rows; /* rows at generation 0 */
  size_t vlen;   /* value length */
  char magic[5]; /* record magic ("" for raw 32-byte keys) */
} demo_table;

/* Indexed by table id; [0] unused. Row r of table 3 is pre-key id r + 1. */
static const demo_table demo_tables[T_COUNT + 1] = {
    {"", 0, 0, ""},
    {"identities", 100, 32, ""},
    {"sessions", 50, 512, "SESS"},
    {"pre-keys", N_PREKEYS, 69, "PREK"},
    {"signed pre-keys", 5, 100, "SPRK"},
    {"sender keys", 20, 180, "SKEY"},
    {"meta", 2, 8, ""},
};

static const char *const demo_names[20] = {
    "alice", "bob",    "carol", "dave",  "erin",    "frank",  "grace",
    "heidi", "ivan",   "judy",  "ken",   "mallory", "niaj",   "olivia",
    "peggy", "rupert", "sybil", "trent", "victor",  "walter",
};
static const char *const demo_groups[4] = {"family", "work", "climbing",
                                           "bookclub"};

static const char META_COMMIT[] = "commit";
static const char META_SCHEMA[] = "schema";
static const char SCHEMA_TEXT[] = "keyjournal-demo/1";

/* Fixed key of the value stream: values only need to look random. */
static const uint8_t demo_stream_key[crypto_stream_xchacha20_KEYBYTES] =
    "keyjournal demo value stream v1";

static void put_be32(uint8_t *p, uint32_t v) {
  for (int i = 3; i >= 0; i--, v >>= 8)
    p[i] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8)
    p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | p[i];
  return v;
}

/* "alice.0:1", "bob.0:2", ..., "alice2.0:1" for rows 20..39, and so on. */
static size_t demo_address(uint32_t row, char *buf, size_t cap) {
  unsigned suffix = row / 20, device = 1 + row % 4;
  int n = suffix == 0
              ? snprintf(buf, cap, "%s.0:%u", demo_names[row % 20], device)
              : snprintf(buf, cap, "%s%u.0:%u", demo_names[row % 20],
                         suffix + 1, device);
  return n < 0 ? 0 : (size_t)n;
}

/* Key of row `row` of table (1..5) into buf (MAX_KEY bytes). */
static size_t demo_key(unsigned table, uint32_t row, uint8_t *buf) {
  char *c = (char *)buf;
  switch (table) {
  case T_IDENTITY:
  case T_SESSION:
    return demo_address(row, c, MAX_KEY);
  case T_PREKEY:
  case T_SIGNED:
    put_be32(buf, row + 1);
    return 4;
  case T_SENDER: {
    int n = snprintf(c, MAX_KEY, "%s@g.us:", demo_groups[row % 4]);
    return (size_t)n + demo_address(row, c + n, MAX_KEY - (size_t)n);
  }
  default:
    return 0;
  }
}

/* Value of row `row` of table (1..5) at generation gen into out (vlen of the
 * table). */
static void demo_value(unsigned table, uint32_t row, uint64_t gen,
                       uint8_t *out) {
  const demo_table *t = &demo_tables[table];
  uint8_t nonce[crypto_stream_xchacha20_NONCEBYTES] = {0};
  nonce[0] = (uint8_t)table;
  put_be32(nonce + 1, row);
  put_be64(nonce + 5, gen);
  crypto_stream_xchacha20(out, t->vlen, nonce, demo_stream_key);
  if (t->magic[0] != '\0') {
    memcpy(out, t->magic, 4);
    put_be64(out + 4, gen);
    put_be32(out + 12, row);
  }
}

/* Generation of a row rewritten by every transaction m with m % k == row:
 * the last such m <= n, or 0 (initial) if there is none. */
static uint64_t last_touch(uint64_t n, uint32_t row, uint32_t k) {
  uint64_t back = (n % k + k - row) % k;
  return back >= n ? 0 : n - back;
}

/* Rows of table at state n (after transaction n). */
static uint64_t demo_rows_at(unsigned table, uint64_t n) {
  if (table == T_PREKEY)
    return n >= N_PREKEYS ? 0 : N_PREKEYS - n;
  return demo_tables[table].rows;
}

/* ---- writing --------------------------------------------------------- */

/* Write-side failure: which call and the store's detail message. */
typedef struct demo_err {
  int rc;
  char what[96];
  char detail[256];
} demo_err;

static int fail_kj(demo_err *e, kj_store *s, int rc, const char *what) {
  e->rc = rc;
  snprintf(e->what, sizeof e->what, "%s", what);
  if (s != NULL)
    kj_store_errmsg_copy(s, e->detail, sizeof e->detail);
  else
    e->detail[0] = '\0';
  return rc;
}

static int put_row(kj_store *s, kj_txn *txn, unsigned table, uint32_t row,
                   uint64_t gen, demo_err *e) {
  uint8_t key[MAX_KEY], val[MAX_VALUE];
  size_t klen = demo_key(table, row, key);
  demo_value(table, row, gen, val);
  int rc = kj_put(s, txn, table, key, klen, val, demo_tables[table].vlen);
  if (rc != KJ_OK) {
    char what[64];
    snprintf(what, sizeof what, "put into table %u (%s)", table,
             demo_tables[table].name);
    return fail_kj(e, s, rc, what);
  }
  return KJ_OK;
}

static int put_commit(kj_store *s, kj_txn *txn, uint64_t n, demo_err *e) {
  uint8_t v[8];
  put_be64(v, n);
  int rc = kj_put(s, txn, T_META, META_COMMIT, sizeof META_COMMIT - 1, v, 8);
  return rc == KJ_OK ? KJ_OK : fail_kj(e, s, rc, "put meta \"commit\"");
}

/* End txn: commit it if its writes succeeded (rc), else roll it back. */
static int finish_txn(kj_store *s, kj_txn *txn, int rc, demo_err *e) {
  if (rc != KJ_OK) {
    kj_txn_rollback(txn);
    return rc;
  }
  rc = kj_txn_commit(txn);
  return rc == KJ_OK ? KJ_OK : fail_kj(e, s, rc, "commit");
}

/* The initial rows (generation 0) and meta, in one transaction. */
static int demo_populate(kj_store *s, demo_err *e) {
  kj_txn *txn = NULL;
  int rc = kj_txn_begin(s, 0, &txn);
  if (rc != KJ_OK)
    return fail_kj(e, s, rc, "begin");
  for (unsigned t = T_IDENTITY; t <= T_SENDER && rc == KJ_OK; t++)
    for (uint32_t r = 0; r < demo_tables[t].rows && rc == KJ_OK; r++)
      rc = put_row(s, txn, t, r, 0, e);
  if (rc == KJ_OK)
    rc = put_commit(s, txn, 0, e);
  if (rc == KJ_OK) {
    rc = kj_put(s, txn, T_META, META_SCHEMA, sizeof META_SCHEMA - 1,
                SCHEMA_TEXT, sizeof SCHEMA_TEXT - 1);
    if (rc != KJ_OK)
      fail_kj(e, s, rc, "put meta \"schema\"");
  }
  return finish_txn(s, txn, rc, e);
}

/* Transaction n: one kj_txn touching all six tables. */
static int demo_txn(kj_store *s, uint64_t n, demo_err *e) {
  static const unsigned rewritten[] = {T_IDENTITY, T_SESSION, T_SIGNED,
                                       T_SENDER};
  kj_txn *txn = NULL;
  int rc = kj_txn_begin(s, 0, &txn);
  if (rc != KJ_OK)
    return fail_kj(e, s, rc, "begin");
  rc = put_commit(s, txn, n, e);
  for (size_t i = 0; i < sizeof rewritten / sizeof rewritten[0]; i++) {
    unsigned t = rewritten[i];
    if (rc == KJ_OK)
      rc = put_row(s, txn, t, (uint32_t)(n % demo_tables[t].rows), n, e);
  }
  if (rc == KJ_OK && n <= N_PREKEYS) {
    uint8_t key[4];
    put_be32(key, (uint32_t)n); /* pre-key id n is consumed */
    rc = kj_delete(s, txn, T_PREKEY, key, sizeof key);
    if (rc != KJ_OK)
      fail_kj(e, s, rc, "delete from table 3 (pre-keys)");
  }
  return finish_txn(s, txn, rc, e);
}

/* ---- checking -------------------------------------------------------- */

/* Printable form of a key of table. */
static void key_text(unsigned table, const uint8_t *key, size_t klen, char *buf,
                     size_t cap) {
  if ((table == T_PREKEY || table == T_SIGNED) && klen == 4)
    snprintf(buf, cap, "id %u",
             (unsigned)key[0] << 24 | (unsigned)key[1] << 16 |
                 (unsigned)key[2] << 8 | key[3]);
  else
    snprintf(buf, cap, "'%.*s'", (int)klen, (const char *)key);
}

/* Read meta "commit". Returns KJ_OK, KJ_NOTFOUND, or an error; *why set on
 * anything but KJ_OK. */
static int read_commit(kj_store *s, uint64_t *n, char *why, size_t cap) {
  void *v = NULL;
  size_t vlen = 0;
  int rc =
      kj_get(s, NULL, T_META, META_COMMIT, sizeof META_COMMIT - 1, &v, &vlen);
  if (rc == KJ_NOTFOUND) {
    snprintf(why, cap, "meta \"commit\" row is missing");
    return rc;
  }
  if (rc != KJ_OK) {
    snprintf(why, cap, "reading meta \"commit\": %s: %s", kj_strerror(rc),
             kj_store_errmsg(s));
    return rc;
  }
  if (vlen != 8) {
    snprintf(why, cap, "meta \"commit\" holds %zu bytes, not 8", vlen);
    kj_free(v);
    return KJ_ECORRUPT;
  }
  *n = get_be64(v);
  kj_free(v);
  return KJ_OK;
}

/* Which transaction wrote val (a row without a header)? Tries generation 0
 * and every transaction up to n + rows that rewrites this row. */
static int guess_gen(unsigned table, uint32_t row, uint64_t n,
                     const uint8_t *val, uint64_t *gen) {
  const demo_table *t = &demo_tables[table];
  uint8_t v[MAX_VALUE];
  /* Generation 0, then the transactions m with m % rows == row. */
  uint64_t m = 0, next = row == 0 ? t->rows : row;
  for (;;) {
    demo_value(table, row, m, v);
    if (memcmp(v, val, t->vlen) == 0) {
      *gen = m;
      return 1;
    }
    if (next > n + t->rows)
      return 0;
    m = next;
    next += t->rows;
  }
}

/* Compare one row with state n. Returns 0 or -1 with *why set. */
static int check_row(kj_store *s, unsigned table, uint32_t row, uint64_t n,
                     char *why, size_t cap) {
  const demo_table *t = &demo_tables[table];
  uint8_t key[MAX_KEY], want[MAX_VALUE];
  char kt[MAX_KEY + 8];
  size_t klen = demo_key(table, row, key);
  void *v = NULL;
  size_t vlen = 0;
  int present = 1;
  uint64_t gen = 0, seen = 0;
  if (table == T_PREKEY)
    present = (uint64_t)row + 1 > n; /* ids 1..n were consumed */
  else
    gen = last_touch(n, row, t->rows);

  key_text(table, key, klen, kt, sizeof kt);
  int rc = kj_get(s, NULL, table, key, klen, &v, &vlen);
  if (rc != KJ_OK && rc != KJ_NOTFOUND) {
    snprintf(why, cap, "reading table %u (%s) key %s: %s: %s", table, t->name,
             kt, kj_strerror(rc), kj_store_errmsg(s));
    return -1;
  }
  if (!present) {
    kj_free(v);
    if (rc == KJ_OK) {
      snprintf(why, cap,
               "table %u (%s) key %s is present, but transaction %" PRIu64
               " had consumed it",
               table, t->name, kt, (uint64_t)row + 1);
      return -1;
    }
    return 0;
  }
  if (rc == KJ_NOTFOUND) {
    snprintf(why, cap, "table %u (%s) key %s is missing", table, t->name, kt);
    return -1;
  }
  demo_value(table, row, gen, want);
  int same = vlen == t->vlen && memcmp(v, want, vlen) == 0;
  if (!same) {
    const uint8_t *got = v;
    if (t->magic[0] != '\0' && vlen == t->vlen && memcmp(got, t->magic, 4) == 0)
      snprintf(why, cap,
               "table %u (%s) key %s holds the row of transaction %" PRIu64
               ", expected %" PRIu64,
               table, t->name, kt, get_be64(got + 4), gen);
    else if (vlen == t->vlen && guess_gen(table, row, n, got, &seen))
      snprintf(why, cap,
               "table %u (%s) key %s holds the value of transaction %" PRIu64
               ", expected %" PRIu64,
               table, t->name, kt, seen, gen);
    else
      snprintf(why, cap,
               "table %u (%s) key %s: value (%zu bytes) differs from the "
               "one written by transaction %" PRIu64,
               table, t->name, kt, vlen, gen);
  }
  kj_free(v);
  return same ? 0 : -1;
}

/* Does the store hold exactly the state after transaction n? Every row of
 * tables 1..5 is compared, and per-table and total row counts rule out
 * extra rows. Returns 0, or -1 with *why set. */
static int demo_check(kj_store *s, uint64_t n, char *why, size_t cap) {
  uint64_t total = 0;
  for (unsigned t = T_IDENTITY; t <= T_SENDER; t++) {
    uint32_t rows = demo_tables[t].rows;
    for (uint32_t r = 0; r < rows; r++)
      if (check_row(s, t, r, n, why, cap) != 0)
        return -1;
  }
  uint64_t got = 0;
  if (read_commit(s, &got, why, cap) != KJ_OK)
    return -1;
  if (got != n) {
    snprintf(why, cap, "meta \"commit\" is %" PRIu64 ", expected %" PRIu64, got,
             n);
    return -1;
  }
  for (unsigned t = T_IDENTITY; t <= T_META; t++) {
    uint64_t rows = 0, bytes = 0;
    int rc = kj_table_count(s, t, &rows, &bytes);
    if (rc != KJ_OK) {
      snprintf(why, cap, "counting table %u: %s: %s", t, kj_strerror(rc),
               kj_store_errmsg(s));
      return -1;
    }
    if (rows != demo_rows_at(t, n)) {
      snprintf(why, cap,
               "table %u (%s) holds %" PRIu64 " rows, expected %" PRIu64, t,
               demo_tables[t].name, rows, demo_rows_at(t, n));
      return -1;
    }
    total += rows;
  }
  kj_stats st = KJ_STATS_INIT;
  int rc = kj_store_stats(s, &st);
  if (rc != KJ_OK) {
    snprintf(why, cap, "stats: %s: %s", kj_strerror(rc), kj_store_errmsg(s));
    return -1;
  }
  if (st.rows != total) {
    snprintf(why, cap,
             "the store holds %" PRIu64 " rows, expected %" PRIu64
             " (rows outside tables 1..6?)",
             st.rows, total);
    return -1;
  }
  return 0;
}

/* ---- the child ------------------------------------------------------- */

static int write_all(int fd, const void *buf, size_t n) {
  const uint8_t *p = buf;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static void child_fail(const demo_err *e, uint64_t n) {
  char what[160];
  snprintf(what, sizeof what, "child: transaction %" PRIu64 ": %s", n, e->what);
  cli_kj_error(CMD, what, e->rc, e->detail);
}

/* Open the store and commit transactions until killed; acknowledge each
 * with its number (a native uint64_t) on wfd after kj_txn_commit() returned
 * KJ_OK. Never returns. */
static void demo_child(const char *dir, const cli_key *k, int wfd) {
  kj_options o = KJ_OPTIONS_INIT;
  kj_store *s = NULL;
  char *msg = NULL;
  char why[256];
  demo_err e;
  uint64_t n = 0;

  cli_key_apply(k, &o);
  o.mode = KJ_OPEN_EXISTING;
  o.sync = KJ_SYNC_FULL;
  o.busy_timeout_ms = 10000;
  int rc = kj_store_open(dir, &o, &s, &msg);
  if (rc != KJ_OK) {
    cli_kj_error(CMD, "child: open", rc, msg);
    kj_free(msg);
    _exit(CLI_EXIT_FAIL);
  }
  if (read_commit(s, &n, why, sizeof why) != KJ_OK) {
    cli_error(CMD, "child: %s", why);
    _exit(CLI_EXIT_FAIL);
  }
  for (n = n + 1;; n++) {
    if (demo_txn(s, n, &e) != KJ_OK) {
      child_fail(&e, n);
      _exit(CLI_EXIT_FAIL);
    }
    if (write_all(wfd, &n, sizeof n) != 0)
      _exit(CLI_EXIT_FAIL); /* the parent is gone */
  }
}

/* ---- the parent ------------------------------------------------------ */

/* splitmix64: the kill point depends only on the seed. */
static uint64_t next_random(uint64_t *state) {
  uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

/* Acknowledgements read so far. */
typedef struct acks {
  uint8_t part[8]; /* a partly read number */
  size_t have;
  uint64_t last;  /* last acknowledged transaction */
  uint64_t count; /* acknowledgements */
  int bad;        /* out of sequence */
  char why[128];
} acks;

static void acks_feed(acks *a, const uint8_t *p, size_t n) {
  while (n > 0) {
    size_t take = sizeof a->part - a->have;
    if (take > n)
      take = n;
    memcpy(a->part + a->have, p, take);
    a->have += take;
    p += take;
    n -= take;
    if (a->have < sizeof a->part)
      break;
    a->have = 0;
    uint64_t v;
    memcpy(&v, a->part, sizeof v);
    if (!a->bad && v != a->last + 1) {
      a->bad = 1;
      snprintf(a->why, sizeof a->why,
               "the child acknowledged transaction %" PRIu64 " after %" PRIu64,
               v, a->last);
    }
    a->last = v;
    a->count++;
  }
}

/* Read what is available (poll first, up to timeout_ms). Returns bytes
 * read, 0 at end of file, -1 on error, -2 on timeout. */
static ssize_t acks_read(acks *a, int fd, int timeout_ms) {
  uint8_t buf[4096];
  struct pollfd p = {fd, POLLIN, 0};
  for (;;) {
    int r = poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -1;
    if (r == 0)
      return -2;
    break;
  }
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n > 0)
      acks_feed(a, buf, (size_t)n);
    return n;
  }
}

static void describe_status(int status, char *buf, size_t cap) {
  if (WIFEXITED(status))
    snprintf(buf, cap, "exited with status %d", WEXITSTATUS(status));
  else if (WIFSIGNALED(status))
    snprintf(buf, cap, "was killed by signal %d", WTERMSIG(status));
  else
    snprintf(buf, cap, "stopped (status %d)", status);
}

static pid_t wait_child(pid_t pid, int *status) {
  pid_t r;
  do
    r = waitpid(pid, status, 0);
  while (r < 0 && errno == EINTR);
  return r;
}

/* Outcome of running the child. */
typedef struct demo_run {
  uint64_t target;   /* acks before the kill */
  uint32_t delay_us; /* then this delay */
  uint64_t acked;    /* last acknowledged transaction */
  uint64_t count;    /* acknowledgements */
  char why[256];     /* failure, "" if none */
} demo_run;

/* Seconds without an acknowledgement before the child counts as hung. */
#define DEMO_STALL_MS 120000

static void demo_parent(pid_t pid, int rfd, demo_run *run) {
  acks a;
  int status = 0;
  memset(&a, 0, sizeof a);
  run->why[0] = '\0';

  while (a.count < run->target && !a.bad) {
    ssize_t n = acks_read(&a, rfd, DEMO_STALL_MS);
    if (n == -2) {
      snprintf(run->why, sizeof run->why,
               "no acknowledgement for %d s after %" PRIu64 "; child hung?",
               DEMO_STALL_MS / 1000, a.count);
      break;
    }
    if (n == 0) {
      char st[64];
      wait_child(pid, &status);
      describe_status(status, st, sizeof st);
      snprintf(run->why, sizeof run->why,
               "the child %s after %" PRIu64 " acknowledgements", st, a.count);
      pid = -1;
      break;
    }
    if (n < 0) {
      snprintf(run->why, sizeof run->why, "reading the pipe: %s",
               strerror(errno));
      break;
    }
  }
  if (pid > 0) {
    if (run->why[0] == '\0' && !a.bad) {
      struct timespec d = {0, (long)run->delay_us * 1000L};
      while (nanosleep(&d, &d) != 0 && errno == EINTR)
        ;
    }
    kill(pid, SIGKILL);
    wait_child(pid, &status);
    if (run->why[0] == '\0' &&
        !(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
      char st[64];
      describe_status(status, st, sizeof st);
      snprintf(run->why, sizeof run->why, "the child %s before the kill", st);
    }
  }
  /* Acknowledgements written before the child died are still in the pipe;
   * every write end is closed now, so this ends. */
  while (acks_read(&a, rfd, DEMO_STALL_MS) > 0)
    ;
  if (run->why[0] == '\0' && a.bad)
    snprintf(run->why, sizeof run->why, "%s", a.why);
  if (run->why[0] == '\0' && a.have != 0)
    snprintf(run->why, sizeof run->why, "a torn acknowledgement on the pipe");
  run->acked = a.last;
  run->count = a.count;
}

/* ---- setup ----------------------------------------------------------- */

/* DIR must be absent or an empty directory. Returns an exit status and
 * sets *exists. */
static int check_dir(const char *dir, int *exists) {
  struct stat st;
  *exists = 0;
  if (stat(dir, &st) != 0) {
    if (errno == ENOENT)
      return CLI_EXIT_OK;
    cli_error(CMD, "%s: %s", dir, strerror(errno));
    return CLI_EXIT_FAIL;
  }
  if (!S_ISDIR(st.st_mode)) {
    cli_error(CMD,
              "%s exists and is not a directory; the demo needs a new "
              "or empty directory",
              dir);
    return CLI_EXIT_USAGE;
  }
  DIR *d = opendir(dir);
  if (d == NULL) {
    cli_error(CMD, "%s: %s", dir, strerror(errno));
    return CLI_EXIT_FAIL;
  }
  struct dirent *ent;
  int empty = 1;
  while ((ent = readdir(d)) != NULL)
    if (strcmp(ent->d_name, ".") != 0 && strcmp(ent->d_name, "..") != 0) {
      empty = 0;
      break;
    }
  closedir(d);
  if (!empty) {
    cli_error(CMD,
              "%s exists and is not empty; the demo creates a new store "
              "and needs a new or empty directory",
              dir);
    return CLI_EXIT_USAGE;
  }
  *exists = 1;
  return CLI_EXIT_OK;
}

/* "DIR.key" next to DIR (trailing slashes dropped); NULL with a message
 * when DIR has no usable last component. Caller frees. */
static char *key_path_for(const char *dir) {
  size_t n = strlen(dir);
  while (n > 1 && dir[n - 1] == '/')
    n--;
  size_t base = n;
  while (base > 0 && dir[base - 1] != '/')
    base--;
  size_t blen = n - base;
  if (blen == 0 || (blen == 1 && dir[base] == '.') ||
      (blen == 2 && dir[base] == '.' && dir[base + 1] == '.')) {
    cli_error(CMD,
              "cannot put a key file next to '%s'; name the directory "
              "(e.g. ../store) or pass --key-file",
              dir);
    return NULL;
  }
  char *p = malloc(n + sizeof ".key");
  if (p == NULL) {
    cli_error(CMD, "out of memory");
    return NULL;
  }
  memcpy(p, dir, n);
  memcpy(p + n, ".key", sizeof ".key");
  return p;
}

static int parse_seed(const char *text, uint64_t *seed) {
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || text[0] == '-') {
    cli_error(CMD, "--seed wants a decimal number, not '%s'", text);
    return CLI_EXIT_USAGE;
  }
  *seed = (uint64_t)v;
  return CLI_EXIT_OK;
}

static uint64_t default_seed(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  /* Seconds and microseconds, readable and unique enough. */
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void print_rows(kj_store *s) {
  printf("demo: rows:");
  for (unsigned t = T_IDENTITY; t <= T_META; t++) {
    uint64_t rows = 0, bytes = 0;
    if (kj_table_count(s, t, &rows, &bytes) == KJ_OK)
      printf("%s %u %s %" PRIu64, t == T_IDENTITY ? "" : ",", t,
             demo_tables[t].name, rows);
  }
  printf("\n");
}

/* Open dir with k; reports the error. */
static int open_store(const char *dir, const cli_key *k, int read_only,
                      kj_open_mode mode, kj_store **s, char *why, size_t cap) {
  kj_options o = KJ_OPTIONS_INIT;
  char *msg = NULL;
  cli_key_apply(k, &o);
  o.mode = mode;
  o.read_only = read_only;
  o.sync = KJ_SYNC_FULL;
  o.busy_timeout_ms = 10000;
  *s = NULL;
  int rc = kj_store_open(dir, &o, s, &msg);
  if (rc != KJ_OK)
    snprintf(why, cap, "%s%s%s", kj_strerror(rc),
             msg != NULL && msg[0] ? ": " : "", msg != NULL ? msg : "");
  kj_free(msg);
  return rc;
}

/* Create the store and write generation 0. Returns an exit status. */
static int demo_create(const char *dir, const cli_key *k) {
  kj_store *s = NULL;
  char why[512];
  demo_err e;
  int rc = open_store(dir, k, 0, KJ_OPEN_CREATE_NEW, &s, why, sizeof why);
  if (rc != KJ_OK) {
    cli_error(CMD, "creating the store: %s", why);
    return rc == KJ_EEXIST ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
  }
  rc = demo_populate(s, &e);
  if (rc != KJ_OK) {
    cli_kj_error(CMD, e.what, e.rc, e.detail);
    kj_store_close(s);
    return CLI_EXIT_FAIL;
  }
  if (demo_check(s, 0, why, sizeof why) != 0) {
    cli_error(CMD, "the rows just written read back wrong: %s", why);
    kj_store_close(s);
    return CLI_EXIT_FAIL;
  }
  rc = kj_store_close(s);
  if (rc != KJ_OK) {
    cli_kj_error(CMD, "close", rc, NULL);
    return CLI_EXIT_FAIL;
  }
  uint64_t total = 0;
  for (unsigned t = T_IDENTITY; t <= T_META; t++)
    total += demo_rows_at(t, 0);
  printf("demo: created the store with %" PRIu64
         " rows in tables 1..6 (one transaction)\n",
         total);
  return CLI_EXIT_OK;
}

/* Fork the committing child and kill it. Returns an exit status (failures
 * of the run itself are reported by the caller through run->why). */
static int demo_crash(const char *dir, const cli_key *k, demo_run *run) {
  int fds[2];
  if (pipe(fds) != 0) {
    cli_error(CMD, "pipe: %s", strerror(errno));
    return CLI_EXIT_FAIL;
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    cli_error(CMD, "fork: %s", strerror(errno));
    close(fds[0]);
    close(fds[1]);
    return CLI_EXIT_FAIL;
  }
  if (pid == 0) {
    close(fds[0]);
    demo_child(dir, k, fds[1]);
    _exit(CLI_EXIT_FAIL);
  }
  close(fds[1]);
  printf("demo: child %ld commits with KJ_SYNC_FULL; SIGKILL after %" PRIu64
         " acknowledgements + %" PRIu32 " us\n",
         (long)pid, run->target, run->delay_us);
  fflush(stdout);
  demo_parent(pid, fds[0], run);
  close(fds[0]);
  return CLI_EXIT_OK;
}

/* Reopen read-write (cutting the torn tail) and check; then reopen
 * read-only and check again. Returns 0 or -1 with why set. */
static int demo_recover(const char *dir, const cli_key *k, const demo_run *run,
                        char *why, size_t cap) {
  kj_store *s = NULL;
  kj_stats st;
  uint64_t n = 0;
  char what[384];
  int rc = open_store(dir, k, 0, KJ_OPEN_EXISTING, &s, what, sizeof what);
  if (rc != KJ_OK) {
    snprintf(why, cap, "reopening: %s", what);
    return -1;
  }
  st = (kj_stats)KJ_STATS_INIT;
  rc = kj_store_stats(s, &st);
  if (rc != KJ_OK) {
    snprintf(why, cap, "stats: %s: %s", kj_strerror(rc), kj_store_errmsg(s));
    kj_store_close(s);
    return -1;
  }
  int ok = read_commit(s, &n, why, cap) == KJ_OK;
  if (ok) {
    printf("demo: commit recovered: %" PRIu64 "%s\n", n,
           n == run->acked + 1 ? " (the one in flight at the kill)"
           : n == run->acked   ? " (the last acknowledged)"
                               : "");
    printf("demo: recovery: %" PRIu64 " frames replayed, %" PRIu64
           " tail bytes cut, %" PRIu64 " us\n",
           st.frames_replayed, st.tail_bytes_cut, st.recovery_usec);
    print_rows(s);
  }
  if (ok && n < run->acked) {
    snprintf(why, cap,
             "recovered commit %" PRIu64 " but %" PRIu64
             " was acknowledged: acknowledged commits were lost",
             n, run->acked);
    ok = 0;
  }
  if (ok && n > run->acked + 1) {
    snprintf(why, cap,
             "recovered commit %" PRIu64 " but only %" PRIu64
             " was acknowledged and one more can be in flight",
             n, run->acked);
    ok = 0;
  }
  if (ok && demo_check(s, n, why, cap) != 0)
    ok = 0;
  rc = kj_store_close(s);
  if (ok && rc != KJ_OK) {
    snprintf(why, cap, "close after recovery: %s", kj_strerror(rc));
    ok = 0;
  }
  if (!ok)
    return -1;

  /* The tail was cut: a second, read-only open must find a clean journal
   * and the same state. */
  rc = open_store(dir, k, 1, KJ_OPEN_EXISTING, &s, what, sizeof what);
  if (rc != KJ_OK) {
    snprintf(why, cap, "second (read-only) open: %s", what);
    return -1;
  }
  st = (kj_stats)KJ_STATS_INIT;
  rc = kj_store_stats(s, &st);
  if (rc != KJ_OK) {
    snprintf(why, cap, "second open: stats: %s", kj_strerror(rc));
    ok = 0;
  } else if (st.tail_bytes_cut != 0) {
    snprintf(why, cap,
             "second open still finds a torn tail of %" PRIu64
             " bytes after the read-write open cut it",
             st.tail_bytes_cut);
    ok = 0;
  } else if (demo_check(s, n, what, sizeof what) != 0) {
    snprintf(why, cap, "second open: %s", what);
    ok = 0;
  }
  kj_store_close(s);
  return ok ? 0 : -1;
}

/* ---- the command ----------------------------------------------------- */

int cmd_demo(int argc, char **argv) {
  cli_args a;
  int rc = cli_parse_args(CMD, argc, argv, 1, 1, &a);
  if (rc != CLI_EXIT_OK)
    return rc;
  if (a.help) {
    cli_usage(stdout, CMD);
    return CLI_EXIT_OK;
  }
  if (a.dir == NULL) {
    cli_error(CMD, "missing DIR (usage: keyjournal demo [--key-file F] "
                   "[--seed N] DIR)");
    return CLI_EXIT_USAGE;
  }
  uint64_t seed = 0;
  if (a.seed != NULL) {
    rc = parse_seed(a.seed, &seed);
    if (rc != CLI_EXIT_OK)
      return rc;
  } else {
    seed = default_seed();
  }
  int existed = 0;
  rc = check_dir(a.dir, &existed);
  if (rc != CLI_EXIT_OK)
    return rc;

  cli_key *k = cli_key_new();
  if (k == NULL) {
    cli_error(CMD, "out of memory");
    return CLI_EXIT_FAIL;
  }
  char *key_path = NULL; /* the key file we wrote, if any */
  if (a.key_file != NULL) {
    rc = cli_key_from_file(k, a.key_file, CMD);
  } else {
    rc = cli_key_from_env(k, CMD);
    if (rc < 0) {
      key_path = key_path_for(a.dir);
      rc = CLI_EXIT_USAGE;
      if (key_path != NULL) {
        cli_key_generate(k);
        rc = cli_key_write_file(k, key_path, CMD);
        if (rc != CLI_EXIT_OK) {
          free(key_path);
          key_path = NULL;
        }
      }
    }
  }
  if (rc != CLI_EXIT_OK) {
    cli_key_free(k);
    return rc;
  }

  uint64_t rs = seed;
  demo_run run;
  memset(&run, 0, sizeof run);
  run.target = 200 + next_random(&rs) % 601;
  run.delay_us = (uint32_t)(next_random(&rs) % 2001);
  printf("demo: seed %" PRIu64 " (repeat the kill point with --seed %" PRIu64
         ")\n",
         seed, seed);
  if (key_path != NULL)
    printf("demo: random key written to %s (mode 0600); the store cannot be "
           "opened without it\n",
           key_path);
  else
    printf("demo: key: %s\n", cli_key_describe(k));

  if (!existed && mkdir(a.dir, 0700) != 0) {
    cli_error(CMD, "cannot create %s: %s", a.dir, strerror(errno));
    rc = CLI_EXIT_FAIL;
  }
  if (rc == CLI_EXIT_OK)
    rc = demo_create(a.dir, k);
  if (rc != CLI_EXIT_OK) {
    /* No store uses the key we generated: do not leave it behind. */
    if (key_path != NULL)
      unlink(key_path);
    if (!existed)
      rmdir(a.dir); /* only succeeds if nothing was left in it */
    free(key_path);
    cli_key_free(k);
    return rc;
  }

  rc = demo_crash(a.dir, k, &run);
  char why[512] = "";
  if (rc == CLI_EXIT_OK) {
    printf("demo: commits acknowledged: %" PRIu64 " (last: %" PRIu64 ")\n",
           run.count, run.acked);
    if (run.why[0] != '\0')
      snprintf(why, sizeof why, "%s", run.why);
    else
      demo_recover(a.dir, k, &run, why, sizeof why);
  }
  cli_key_free(k);

  if (rc == CLI_EXIT_OK) {
    if (key_path != NULL)
      printf("demo: check it yourself: keyjournal verify --key-file %s %s\n",
             key_path, a.dir);
    else if (a.key_file != NULL)
      printf("demo: check it yourself: keyjournal verify --key-file %s %s\n",
             a.key_file, a.dir);
    else
      printf("demo: check it yourself: keyjournal verify %s (same "
             "KJ_PASSPHRASE)\n",
             a.dir);
    if (why[0] != '\0') {
      printf("demo: FAILED: %s\n", why);
      rc = CLI_EXIT_FAIL;
    } else {
      printf("demo: OK\n");
    }
  }
  free(key_path);
  return rc;
}
