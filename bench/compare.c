/*
 * bench/compare.c - the side-by-side benchmark as a command (`keyjournal
 * bench`, bench/bench_compare, `make bench`).
 *
 * Owns the order of a run and its exit status: the native engine, the
 * SQLite reference backend (oracle/oracle.h) and SQLCipher, through the
 * same domain contract, with the same generated workloads, in one command
 * run. Contenders: native FULL, native NORMAL, SQLite FULL, SQLite NORMAL
 * (in this process) and SQLCipher FULL (in a helper process,
 * contender_sqlite.c). Every figure is the median of --reps repetitions on
 * fresh stores under DIR ($KJ_BENCH_DIR, $TMPDIR or /tmp), printed with its
 * ratio to SQLite FULL measured in the same run, with the disk's raw
 * fdatasync rate as the physical limit of a durable commit; the project's
 * targets are listed met or missed (report.c). Figures only: a missed
 * target is not a failure (the exit status is 0 unless the benchmark itself
 * fails). Caches are warm: open times are those of a store just written,
 * not of a cold boot. Kept apart from the measuring code so that the
 * SQLCipher helper, which has its own main, links none of the report.
 *
 *   bench_compare [--reps N] [--quick] [--large] [--json] [DIR]
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

/* Everything after the options: measure, then report. */
static int compare(bench_run *r, const char *dir) {
  const bench_cfg *g = &r->cfg;
  snprintf(r->base_dir, sizeof r->base_dir, "%s/kj-bench-compare.%ld", dir,
           (long)getpid());
  if (mkdir(r->base_dir, 0700) != 0)
    return bench_errf(&r->err, "mkdir %s: %s", r->base_dir, strerror(errno));
  r->base_owner = getpid();

  double fs[BENCH_MAXREPS];
  for (int i = 0; i < g->reps; i++) {
    bench_progress(r, "rep %d/%d: fdatasync limit", i + 1, g->reps);
    if (bench_fdatasync_rate(r, g->b_commit, &fs[i]) != 0)
      return BENCH_FAILED;
    for (int c = 0; c < SQLC_FULL; c++)
      if (bench_measure_rep(r, c, i) != 0)
        return BENCH_FAILED;
  }
  double fsync_rate = bench_median(fs, g->reps);
  for (int c = 0; c < SQLC_FULL; c++)
    bench_rep_medians(r, c);
  if (bench_measure_stores(r, NAT_FULL) != 0 ||
      bench_measure_stores(r, SQL_FULL) != 0 || bench_sqlcipher_run(r) != 0)
    return BENCH_FAILED;
  long rss_base;
  if (bench_child_rss(r, "none", r->base_dir, &rss_base) != 0 ||
      bench_kv_run(r) != 0)
    return BENCH_FAILED;
  bench_rm_rf(r->base_dir);
  bench_progress_end(r);
  return bench_report(r, dir, fsync_rate, rss_base);
}

int kj_bench_main(int argc, char **argv, const char *subcmd) {
  bench_run *r =
      bench_run_new(subcmd ? "keyjournal bench" : "bench_compare", subcmd);
  if (r == NULL) {
    fprintf(stderr, "%s: out of memory\n",
            subcmd ? "keyjournal bench" : "bench_compare");
    return 1;
  }
  int status;
  const char *dir;
  int child;
  if (argc == 4 && strcmp(argv[1], "--rss-child") == 0 &&
      strncmp(argv[2], "kv_", 3) == 0) {
    int found;
    status =
        bench_exit_status(r, bench_kv_rss_open(r, argv[2], argv[3], &found));
    if (status == 0 && !found)
      status = bench_exit_status(
          r, bench_errf(&r->err, "--rss-child: unknown kind %s", argv[2]));
    if (status == 0)
      status = bench_rss_child_main(r, "none", argv[3]);
  } else if (argc == 4 && strcmp(argv[1], "--rss-child") == 0) {
    status = bench_rss_child_main(r, argv[2], argv[3]);
  } else if ((status = bench_parse_args(r, argc, argv, &dir, &child)) >= 0) {
    /* --help or bad usage: done */
  } else if (child) {
    fprintf(stderr, "%s: --sqlcipher-child: this is not the helper\n", r->prog);
    status = 2;
  } else {
    status = bench_exit_status(r, compare(r, dir));
    if (status == 0 && fflush(stdout))
      status = 1;
  }
  bench_run_free(r);
  return status;
}
