/*
 * src/cli/cmd_upgrade.c - "keyjournal upgrade DIR": a store written by an
 * older format brought to this build's.
 *
 * A read-write open upgrades a format 1 store by itself (its rows become a
 * run file, then its header says format 2; doc/FORMAT.md 6A.8). This command
 * does that and nothing else, and says what it found: a read-only open
 * first, which changes nothing, then the read-write open when the format is
 * older. A store held by another handle is not waited for long.
 */
#include <inttypes.h>
#include <stdio.h>

#include "cli.h"
#include "keyjournal/errors.h"
#include "keyjournal/store.h"

const char cli_usage_upgrade[] =
    "  keyjournal upgrade [--key-file F] DIR\n"
    "      Bring the store DIR to this build's format (a read-write open\n"
    "      does the same by itself). Prints the format before and after;\n"
    "      a store already current is left alone. Exit 0 when the store is\n"
    "      current at the end.\n";

/* Open DIR (read-only or read-write, which upgrades), take its figures
 * and close it. Returns an exit status. */
static int open_close(const char *cmd, const cli_args *a, int read_only,
                      kj_stats *st) {
  kj_store *s = NULL;
  int rc = cli_open_store(cmd, a, read_only, &s);
  if (rc != CLI_EXIT_OK)
    return rc;
  rc = cli_get_stats(cmd, s, st);
  int closed = cli_close_store(cmd, s);
  return rc != CLI_EXIT_OK ? rc : closed;
}

static int upgrade(const char *cmd, const cli_args *a) {
  kj_stats st;
  int rc = open_close(cmd, a, 1, &st);
  if (rc != CLI_EXIT_OK)
    return rc;
  uint32_t before = st.format_version;
  if ((rc = open_close(cmd, a, 0, &st)) != CLI_EXIT_OK)
    return rc;
  if (before == st.format_version)
    printf("%s: format %" PRIu32 ", already current\n", a->dir, before);
  else
    printf("%s: format %" PRIu32 " -> %" PRIu32 ", %" PRIu64
           " rows in the run after seq %" PRIu64 "\n",
           a->dir, before, st.format_version, st.rows, st.snapshot_seq);
  return CLI_EXIT_OK;
}

int cmd_upgrade(int argc, char **argv) {
  cli_args a;
  int rc = cli_parse_dir_args(argv[0], argc, argv, &a);
  if (rc != CLI_GO_ON)
    return rc;
  return upgrade(argv[0], &a);
}
