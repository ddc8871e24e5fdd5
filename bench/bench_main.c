/*
 * bench/bench_main.c - main of bench/bench_compare and of its SQLCipher
 * helper bench/bench_sqlcipher (compiled with -DKJ_BENCH_SQLCIPHER): the
 * benchmark itself is a function (bench/bench.h), also run by `keyjournal
 * bench` through keyjournal-oracle, so that every program runs the same
 * code.
 */
#include <stddef.h>

#include "bench.h"

int main(int argc, char **argv) {
#ifdef KJ_BENCH_SQLCIPHER
  return kj_bench_sqlcipher_main(argc, argv);
#else
  return kj_bench_main(argc, argv, NULL);
#endif
}
