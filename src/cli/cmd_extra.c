/*
 * src/cli/cmd_extra.c - "keyjournal extra DIR": a copy's extra bytes.
 *
 * A snapshot copy (kj_store_copy_ex, kj_device_snapshot_copy) may carry
 * extra bytes, sealed with the store key in DIR/extra.bin (doc/FORMAT.md
 * 6.4). This opens DIR read-only with the key, reads them with
 * kj_store_read_extra and writes them, unchanged, to standard output.
 * Changes nothing on disk.
 */
#include <stdio.h>

#include "cli.h"
#include "keyjournal/errors.h"
#include "keyjournal/store.h"

const char cli_usage_extra[] =
    "  keyjournal extra [--key-file F] DIR\n"
    "      Write the extra bytes of the snapshot copy DIR (its sealed\n"
    "      extra.bin) to standard output. Exit 1 when it has none.\n";

static int extra(const char *cmd, const cli_args *a) {
  kj_store *s = NULL;
  int rc = cli_open_read_only(cmd, a, &s);
  if (rc != CLI_EXIT_OK)
    return rc;
  void *x = NULL;
  size_t n = 0;
  int krc = kj_store_read_extra(s, &x, &n);
  if (krc != KJ_OK) {
    cli_kj_error(cmd, "extra bytes", krc, kj_store_errmsg(s));
    kj_store_close(s);
    return cli_exit_for(krc);
  }
  int bad = (n && fwrite(x, 1, n, stdout) != n) || fflush(stdout) != 0;
  kj_free(x);
  if (bad) {
    cli_error(cmd, "writing to standard output failed");
    kj_store_close(s);
    return CLI_EXIT_FAIL;
  }
  return cli_close_store(cmd, s);
}

int cmd_extra(int argc, char **argv) {
  cli_args a;
  int rc = cli_parse_dir_args(argv[0], argc, argv, &a);
  if (rc != CLI_GO_ON)
    return rc;
  return extra(argv[0], &a);
}
