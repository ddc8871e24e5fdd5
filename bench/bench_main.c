/*
 * bench/bench_main.c - main of bench/bench_compare and of its SQLCipher
 * helper bench/bench_sqlcipher: the benchmark itself is a function
 * (bench/bench.h), also run by `keyjournal bench`.
 */
#include <stddef.h>

#include "bench.h"

int main(int argc, char **argv) { return kj_bench_main(argc, argv, NULL); }
