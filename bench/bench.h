/*
 * bench/bench.h - the side-by-side benchmark (bench/bench_compare.c) as a
 * function, so that bench/bench_compare (bench/bench_main.c) and
 * `keyjournal bench` (src/cli/bench.c) run the same code.
 */
#ifndef KJ_BENCH_H
#define KJ_BENCH_H

/* Run the benchmark with the command line of bench_compare:
 *   [--reps N] [--quick] [--large] [--json] [DIR]
 * argv[0] names the command. The benchmark re-executes its own program
 * (/proc/self/exe) for child processes (peak RSS): subcmd is the argument
 * that selects it in that program ("bench" for keyjournal), or NULL when
 * the program is the benchmark itself. Returns the exit status: 0 when
 * the benchmark ran (a missed target is not a failure), 2 on bad usage;
 * a failure of the benchmark itself exits 1 after a message. */
int kj_bench_main(int argc, char **argv, const char *subcmd);

#endif
