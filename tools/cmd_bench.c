/*
 * tools/cmd_bench.c - `keyjournal bench` (in keyjournal-oracle): the
 * side-by-side benchmark of bench/ (bench/bench.h). Owns only the
 * command's --help; the benchmark parses its own options and re-executes
 * this program as `keyjournal-oracle bench --rss-child ...` for its
 * peak-RSS children.
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "cli/usage_oracle.h"
#include "tools.h"

int tool_bench(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      printf("Usage:\n%s", CLI_USAGE_BENCH);
      return TOOL_EXIT_OK;
    }
  return kj_bench_main(argc, argv, "bench");
}
