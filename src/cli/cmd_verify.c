/*
 * src/cli/cmd_verify.c - "keyjournal verify DIR": is this store sound?
 *
 * Opens the store read-only, which replays and authenticates every journal
 * frame (a damaged durable frame fails the open with KJ_ECORRUPT, naming
 * the file and offset: exit 4), then reads every row of every table once
 * and checks that the per-table counts and the store's total agree with
 * what the scans saw. A torn tail left by a crash is reported, not
 * counted as damage. Changes nothing on disk.
 */
#include <inttypes.h>
#include <stdio.h>

#include "cli.h"
#include "keyjournal/errors.h"
#include "keyjournal/store.h"

const char cli_usage_verify[] =
    "  keyjournal verify [--key-file F] DIR\n"
    "      Open read-only, replay and authenticate every journal frame.\n"
    "      A torn tail left by a crash is reported, not counted as damage.\n";

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

static int verify(const char *cmd, const cli_args *a) {
  kj_store *s = NULL;
  kj_stats st;
  int rc = cli_open_read_only(cmd, a, &s);
  if (rc != CLI_EXIT_OK)
    return rc;
  rc = cli_get_stats(cmd, s, &st);
  if (rc == CLI_EXIT_OK)
    rc = cross_check_tables(cmd, s, &st);
  int crc = cli_close_store(cmd, s);
  if (rc == CLI_EXIT_OK)
    rc = crc;
  if (rc != CLI_EXIT_OK)
    return rc;
  cli_print_tail_note(cmd, &st);
  printf("verify: OK, %" PRIu64 " frames, %" PRIu64 " rows\n",
         st.frames_replayed, st.rows);
  return CLI_EXIT_OK;
}

int cmd_verify(int argc, char **argv) {
  cli_args a;
  int rc = cli_parse_dir_args(argv[0], argc, argv, &a);
  if (rc != CLI_GO_ON)
    return rc;
  return verify(argv[0], &a);
}
