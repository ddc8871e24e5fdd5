/*
 * src/cli/cmd_info.c - "keyjournal info DIR": what a store holds.
 *
 * Prints the figures of kj_store_stats() (format version, segments, journal
 * and snapshot sizes, disk bytes, rows) and kj_table_count() for each
 * table that has rows, and what the read-only open had to recover. Opens
 * the store read-only and changes nothing on disk.
 */
#include <inttypes.h>
#include <stdio.h>

#include "cli.h"
#include "keyjournal/errors.h"
#include "keyjournal/store.h"

const char cli_usage_info[] =
    "  keyjournal info [--key-file F] DIR\n"
    "      Print format version, sizes, rows and bytes per table, and the\n"
    "      figures of the last recovery.\n";

static int info(const char *cmd, const cli_args *a) {
  kj_store *s = NULL;
  kj_stats st;
  int rc = cli_open_read_only(cmd, a, &s);
  if (rc != CLI_EXIT_OK)
    return rc;
  rc = cli_get_stats(cmd, s, &st);
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
  cli_print_tail_note(cmd, &st);
  return cli_close_store(cmd, s);
}

int cmd_info(int argc, char **argv) {
  cli_args a;
  int rc = cli_parse_dir_args(argv[0], argc, argv, &a);
  if (rc != CLI_GO_ON)
    return rc;
  return info(argv[0], &a);
}
