/*
 * src/cli/bench.c - `keyjournal bench`: the side-by-side benchmark of
 * bench/bench_compare.c (bench/bench.h). Built into every keyjournal; it
 * runs only where configure found SQLite (KJ_HAVE_ORACLE: the reference
 * backend is a contender), and otherwise says so and exits 1.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#ifdef KJ_HAVE_ORACLE
#include "bench.h"
#endif

const char cli_bench_usage_text[] =
    "  keyjournal bench [--reps N] [--quick] [--large] [--json] [DIR]\n"
    "      Benchmark side by side, with the same generated workloads: the\n"
    "      native engine (FULL and NORMAL), the SQLite reference backend\n"
    "      (FULL and NORMAL) and SQLCipher (FULL: the same schema, a raw\n"
    "      32-byte key set by PRAGMA key, measured by the helper program\n"
    "      bench/bench_sqlcipher of the build tree, or $KJ_BENCH_SQLCIPHER;\n"
    "      when it is missing the column says why). Prints each figure\n"
    "      (durable and NORMAL commits, 8 writer threads, point reads,\n"
    "      pre-key batches, ratchet saves, open times, disk bytes, peak RSS)\n"
    "      with its ratio to SQLite FULL from the same run, the disk's\n"
    "      fdatasync limit and the engine's targets, met or missed. Medians\n"
    "      of --reps N runs (default 5, 1 with --quick); --quick: tiny time\n"
    "      budgets and stores (a smoke test, seconds; the figures mean\n"
    "      nothing); --large adds the 1M-row open; --json: the same as JSON.\n"
    "      Stores go under DIR (default $KJ_BENCH_DIR, $TMPDIR or /tmp) and\n"
    "      are removed. Progress on stderr when it is a terminal. Exit 0\n"
    "      when the benchmark ran (a missed target is not a failure), 1\n"
    "      when it failed or this build has no SQLite, 2 on bad usage.\n";

int cli_bench(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      printf("Usage:\n%s", cli_bench_usage_text);
      return CLI_EXIT_OK;
    }
#ifdef KJ_HAVE_ORACLE
  return kj_bench_main(argc, argv, "bench");
#else
  cli_error("bench", "bench needs SQLite (configure found none; on "
                     "Debian/Ubuntu: apt-get install libsqlite3-dev, then "
                     "configure again)");
  return CLI_EXIT_FAIL;
#endif
}
