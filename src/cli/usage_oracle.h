/*
 * src/cli/usage_oracle.h - the usage text of `keyjournal oracle` and
 * `keyjournal bench`.
 *
 * keyjournal runs these two commands in a program of their own,
 * keyjournal-oracle (tools/), so that the installed keyjournal links
 * neither the oracle, the benchmark nor SQLite. Both programs print this
 * text: keyjournal in `keyjournal help` (also when keyjournal-oracle is not
 * installed), keyjournal-oracle for --help. One copy, so the two cannot
 * drift. String literals only: the header includes nothing, and including
 * it adds no code or dependency.
 */
#ifndef KJ_CLI_USAGE_ORACLE_H
#define KJ_CLI_USAGE_ORACLE_H

#define CLI_USAGE_ORACLE                                                       \
  "  keyjournal oracle [--seed N] [--ops N] [--workloads N]\n"                 \
  "                    [--crash none|sample:N|all] [--sync "                   \
  "full|normal|both]\n"                                                        \
  "                    [--kill N] [--jobs N] [--threads N] [--generations "    \
  "N]\n"                                                                       \
  "                    [--watchdog MS] [--kv on|off] [--damage on|off]\n"      \
  "                    [--tamper on|off]\n"                                    \
  "      Drive the native engine and the SQLite reference with the same\n"     \
  "      seeded workloads and compare every result and the whole state;\n"     \
  "      crash the engine at I/O operations (--crash) and kill it with\n"      \
  "      SIGKILL (--kill), and check what it recovers; crash N writer\n"       \
  "      threads committing at once right after a group commit's sync\n"       \
  "      (--threads, 0: off); crash, recover, work on and crash again for\n"   \
  "      N generations (--generations, 0: off); report an operation or a\n"    \
  "      recovery that makes no progress for MS ms as a hang (--watchdog,\n"   \
  "      0: off); run the raw key-value API against a SQLite model of it\n"    \
  "      (--kv); damage the durable bytes of a closed store, which must be\n"  \
  "      reported (--damage), and edit its files as one without the key\n"     \
  "      would, which must fail authentication (--tamper). --sync both\n"      \
  "      runs workloads 2 and 3 of every 4 under\n"                            \
  "      NORMAL, where the loss after a power cut must fit the sync\n"         \
  "      interval. Defaults: a time seed, 500 ops, 4 workloads, --crash\n"     \
  "      sample:50, --sync both, --kill 10, --jobs 1, --threads 4,\n"          \
  "      --generations 3, --watchdog 20000. --jobs N checks up to N crash\n"   \
  "      points at once (1..16; the results do not depend on it).\n"           \
  "      Temporary stores go under $TMPDIR (default /tmp). Exit 0 when\n"      \
  "      nothing diverged, 1 otherwise, 2 on bad usage. A divergence prints\n" \
  "      a command that reproduces it; the first crash or fault divergence\n"  \
  "      is also shrunk to a few ops, with a --replay command, and so is\n"    \
  "      the case that hung of a hang.\n"                                      \
  "  keyjournal oracle --replay 'LINE'\n"                                      \
  "      Check again the one crash point or I/O fault of a report line\n"      \
  "      (\"crash: seed=... point=...\", \"fault: seed=... nth=...\", with\n"  \
  "      keep=... for a shrunk one) and, when it still fails, shrink it for\n" \
  "      up to 60 s; or the one chain of crashes (\"chain: ...\") or\n"        \
  "      concurrent-writer run (\"threads: ...\") of a line. Each check\n"     \
  "      runs under a 500 ms watchdog: a case that makes no progress is\n"     \
  "      reported as a hang. Exit 0 when it passes, 1 when it fails, 2 on\n"   \
  "      a line it cannot read.\n"

#define CLI_USAGE_BENCH                                                        \
  "  keyjournal bench [--reps N] [--quick] [--large] [--json] [DIR]\n"         \
  "      Benchmark side by side, with the same generated workloads: the\n"     \
  "      native engine (FULL and NORMAL), the SQLite reference backend\n"      \
  "      (FULL and NORMAL) and SQLCipher (FULL: the same schema, a raw\n"      \
  "      32-byte key set by PRAGMA key, measured by the helper program\n"      \
  "      bench/bench_sqlcipher of the build tree, or $KJ_BENCH_SQLCIPHER;\n"   \
  "      when it is missing the column says why). Prints each figure\n"        \
  "      (durable and NORMAL commits, 8 writer threads, point reads,\n"        \
  "      pre-key batches, ratchet saves, open times, disk bytes, peak RSS)\n"  \
  "      with its ratio to SQLite FULL from the same run, the disk's\n"        \
  "      fdatasync limit and the engine's targets, met or missed. Then a\n"    \
  "      key-value table: kj_put/kj_get/kj_scan_range against LMDB\n"          \
  "      (default sync; MDB_NOSYNC) and RocksDB (sync=true; sync=false) at\n"  \
  "      the same durability (commits, 8 threads, batches of 100, reads\n"     \
  "      in stores of 1k and 100k rows, scans, bytes, RSS; a contender\n"      \
  "      configure did not find says why). Medians\n"                          \
  "      of --reps N runs (default 5, 1 with --quick); --quick: tiny time\n"   \
  "      budgets and stores (a smoke test, seconds; the figures mean\n"        \
  "      nothing); --large adds the 1M-row stores; --json: the same as\n"      \
  "      JSON (the key-value table as its member \"kv\").\n"                   \
  "      Stores go under DIR (default $KJ_BENCH_DIR, $TMPDIR or /tmp) and\n"   \
  "      are removed. Progress on stderr when it is a terminal. Exit 0\n"      \
  "      when the benchmark ran (a missed target is not a failure), 1\n"       \
  "      when it failed, 2 on bad usage.\n"

#endif /* KJ_CLI_USAGE_ORACLE_H */
