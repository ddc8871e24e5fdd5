/*
 * src/cli/readonly.c - a store opened read-only, for verify, info and extra
 * (and read-write, for upgrade).
 *
 * Owns how the read-only commands reach a store: the key from the usual
 * sources (keysrc.c), wiped as soon as the open returns; read-only
 * opening, which replays and authenticates every journal frame; a bounded
 * wait for a store held by another handle; the store's figures; and the
 * note on a torn tail, which is not damage. A DIR that is missing, not a
 * directory, or a directory without a store is "not a store": exit 3, as
 * for a wrong key (README).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "keyjournal/errors.h"
#include "keyjournal/store.h"

/* How long verify/info wait for a store held by another handle. */
#define CLI_BUSY_TIMEOUT_MS 2000u

/* DIR must be a directory before a key is asked for: a missing path or a
 * file is "not a store" (exit 3), as is a directory without a store (the
 * KJ_NOTFOUND of the open below). */
static int check_dir(const char *cmd, const char *dir) {
  struct stat st;
  if (stat(dir, &st) != 0) {
    int e = errno;
    if (e == ENOENT || e == ENOTDIR) {
      cli_error(cmd, "not a keyjournal store: %s: %s", dir, strerror(e));
      return CLI_EXIT_KEY;
    }
    cli_error(cmd, "cannot reach %s: %s", dir, strerror(e));
    return CLI_EXIT_FAIL;
  }
  if (!S_ISDIR(st.st_mode)) {
    cli_error(cmd, "not a keyjournal store: %s is not a directory", dir);
    return CLI_EXIT_KEY;
  }
  return CLI_EXIT_OK;
}

int cli_open_read_only(const char *cmd, const cli_args *a, kj_store **out) {
  return cli_open_store(cmd, a, 1, out);
}

int cli_open_store(const char *cmd, const cli_args *a, int read_only,
                   kj_store **out) {
  char *msg = NULL;
  *out = NULL;
  int drc = check_dir(cmd, a->dir);
  if (drc != CLI_EXIT_OK)
    return drc;
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
  o.read_only = read_only;
  o.busy_timeout_ms = CLI_BUSY_TIMEOUT_MS;
  *out = NULL;
  int krc = kj_store_open(a->dir, &o, out, &msg);
  /* Options are only read during the call: wipe the key now. */
  cli_key_free(k);
  if (krc != KJ_OK) {
    cli_kj_error(cmd, NULL, krc, msg != NULL && msg[0] ? msg : a->dir);
    kj_free(msg);
    /* KJ_NOTFOUND: a directory without a store header, "not a store". */
    return krc == KJ_NOTFOUND ? CLI_EXIT_KEY : cli_exit_for(krc);
  }
  kj_free(msg);
  return CLI_EXIT_OK;
}

int cli_close_store(const char *cmd, kj_store *s) {
  int rc = kj_store_close(s);
  if (rc != KJ_OK) {
    cli_kj_error(cmd, "close", rc, NULL);
    return cli_exit_for(rc);
  }
  return CLI_EXIT_OK;
}

int cli_get_stats(const char *cmd, kj_store *s, kj_stats *st) {
  *st = (kj_stats)KJ_STATS_INIT;
  int rc = kj_store_stats(s, st);
  if (rc != KJ_OK) {
    cli_kj_error(cmd, "stats", rc, kj_store_errmsg(s));
    return cli_exit_for(rc);
  }
  return CLI_EXIT_OK;
}

void cli_print_tail_note(const char *cmd, const kj_stats *st) {
  if (st->tail_bytes_cut > 0)
    printf("%s: torn/unsynced tail of %" PRIu64
           " bytes (not damage; it will be cut on the next read-write "
           "open)\n",
           cmd, st->tail_bytes_cut);
}
