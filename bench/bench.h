/*
 * bench/bench.h - the side-by-side benchmark (`keyjournal bench`,
 * bench/bench_compare, `make bench`): the interface between its parts.
 *
 *   harness.c           the machinery every measurement shares: failures,
 *                       progress, clocks, medians, the generator, scratch
 *                       directories, timed loops, the fork/exec helper,
 *                       peak-RSS children, the fdatasync limit, options
 *   measure.c           the figures: the same workloads for every contender
 *   contender_native.c  opening the native engine (FULL, NORMAL)
 *   contender_sqlite.c  opening the SQLite reference backend and SQLCipher,
 *                       the SQLCipher helper program and its parent side
 *   report.c            the table or JSON: ratios to SQLite FULL, targets
 *   compare.c           the command: what runs in which order, exit status
 *
 * All the state of one run is a bench_run passed down by pointer; nothing
 * is kept in mutable globals, so the parts share no hidden state and the
 * benchmark can be run as a function by several programs. A failure is
 * recorded (bench_errf) and returned as BENCH_FAILED up to the command's
 * main, which prints it and sets the exit status: library-like code never
 * exits.
 */
#ifndef KJ_BENCH_H
#define KJ_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "keyjournal.h"

/* Run the benchmark with the command line of bench_compare:
 *   [--reps N] [--quick] [--large] [--json] [DIR]
 * argv[0] names the command. The benchmark re-executes its own program
 * (/proc/self/exe) for child processes (peak RSS): subcmd is the argument
 * that selects it in that program ("bench" for keyjournal-oracle), or NULL
 * when the program is the benchmark itself. Returns the exit status: 0
 * when the benchmark ran (a missed target is not a failure), 1 when it
 * failed (after a message), 2 on bad usage. (compare.c) */
int kj_bench_main(int argc, char **argv, const char *subcmd);

/* main of the SQLCipher helper bench/bench_sqlcipher, run by the benchmark
 * as `bench_sqlcipher --sqlcipher-child [--reps N] [--quick] [--large]
 * DIR`. Returns the exit status. (contender_sqlite.c) */
int kj_bench_sqlcipher_main(int argc, char **argv);

/* ---- contenders and figures ------------------------------------------- */

enum { NAT_FULL, NAT_NORMAL, SQL_FULL, SQL_NORMAL, SQLC_FULL, NCONT };

extern const char *const bench_cont_name[NCONT]; /* "native FULL", ... */
extern const char *const bench_cont_key[NCONT];  /* "native_full", ... */

/* The key of every encrypted store: the native engine's and SQLCipher's. */
extern const uint8_t bench_key[32];

int bench_is_native(int c);
int bench_is_normal(int c);

/* What is measured for each contender, in base units (seconds, ops/s,
 * bytes, KiB). The first NREPFIG are measured once per rep (medians);
 * the others on stores of cfg.sizes[] rows, per size (F_OPEN_J + si). */
enum {
  F_COMMIT,  /* s per session put (FULL or NORMAL per contender) */
  F_THREADS, /* ops/s, 8 writer threads */
  F_GET,     /* s per point read */
  F_PREKEY,  /* s per pre-key batch of 100 */
  F_RATCHET, /* s per ratchet save with 50 skipped keys */
  NREPFIG,
  F_OPEN_J = NREPFIG,      /* s to open a store of sizes[si] rows */
  F_OPEN_C = F_OPEN_J + 3, /* the same after a checkpoint */
  F_DISK_J = F_OPEN_C + 3, /* bytes of the medium store */
  F_DISK_C,
  F_LOGICAL, /* key+value bytes of the medium store */
  F_RSS_J,   /* KiB, peak RSS of a child opening the medium store */
  F_RSS_C,
  F_CREATE,    /* s to create an empty store (open of an empty dir) */
  F_OPEN_TINY, /* s to open a closed store of BENCH_TINY session rows */
  F_OPEN_COLD, /* s to open sizes[si] rows with the store's pages dropped
                  from the page cache (F_OPEN_COLD + si); native: after a
                  checkpoint */
  F_RSS_READS = F_OPEN_COLD + 3, /* KiB, peak RSS of a child opening the
                                    largest store and reading BENCH_READS
                                    random rows */
  F_CKPT_MBS,  /* native: logical MB/s of a checkpoint of the largest store */
  F_LAT_P50,   /* native: s, median FULL commit on the largest store */
  F_LAT_P99,   /* native: s, 99th percentile of the commits around one that
                  crosses the snapshot threshold (a checkpoint) */
  F_LAT_MAX,   /* native: s, the slowest of those commits */
  F_READ_WARM, /* native: s, a session get on the largest store after its
                  checkpoint, of a key among BENCH_HOT read again and
                  again (its block stays in the block cache) */
  F_READ_COLD, /* native: s, the same at random among every row (a block
                  the 8 MiB cache mostly does not hold; page cache warm) */
  NFIG
};

/* Names of the figures in the helper's "fig NAME VALUE" lines. */
extern const char *const bench_fig_key[NFIG];

#define BENCH_MEDIUM 1    /* the size of the disk-bytes and RSS figures */
#define BENCH_TINY 10     /* rows of the tiny store whose open is timed */
#define BENCH_READS 10000 /* random reads of the F_RSS_READS child */
#define BENCH_HOT 200     /* the hot keys of F_READ_WARM */
#define BENCH_LAT_N 2000  /* commits timed one by one for F_LAT_* */
#define BENCH_MAXREPS 64

/* ---- the key-value table (kv.c) ------------------------------------------ */

/* The contenders of the key-value table, durable and unsynced pairs. */
enum {
  KV_NAT_FULL,     /* kj_put/kj_get, KJ_SYNC_FULL */
  KV_NAT_NORMAL,   /* KJ_SYNC_NORMAL */
  KV_LMDB,         /* LMDB, its default sync at commit */
  KV_LMDB_NOSYNC,  /* MDB_NOSYNC */
  KV_ROCKS,        /* RocksDB, WriteOptions sync=true */
  KV_ROCKS_NOSYNC, /* sync=false (the WAL still written) */
  KV_NCONT
};
extern const char *const bench_kv_name[KV_NCONT];
extern const char *const bench_kv_key[KV_NCONT];

/* Its figures: the first NKVREP per rep (medians), then per store. */
enum {
  KF_COMMIT,  /* s per one-put commit */
  KF_THREADS, /* ops/s, 8 writer threads (durable contenders) */
  KF_BATCH,   /* s per commit of 100 puts */
  NKVREP,
  KF_GET0 = NKVREP,      /* s per point read, stores of sizes[0..2] rows */
  KF_SCAN = KF_GET0 + 3, /* s per ordered scan of 1,000 rows (medium) */
  KF_DISK,               /* bytes of the medium store */
  KF_RSS,                /* KiB, a child opening it and reading a row */
  NKF
};

typedef struct bench_kv {
  int ok[KV_NCONT];          /* built into this program */
  char why[KV_NCONT][200];   /* when not */
  long sizes[3];             /* rows of the read stores */
  int nsizes;                /* 3 with --large */
  double fig[KV_NCONT][NKF]; /* 0: not measured */
  double repv[KV_NCONT][NKVREP][BENCH_MAXREPS];
} bench_kv;

/* ---- one run ------------------------------------------------------------ */

#define BENCH_FAILED (-1) /* returned after bench_errf recorded why */

/* The first failure of a run (or of one writer thread). */
typedef struct bench_err {
  char msg[1024];
} bench_err;

/* The generated workloads: every measurement restarts the generator from
 * its own seed, so each contender gets the same bytes and the same access
 * sequence, in this process and in the helper alike. */
typedef struct bench_rng {
  uint64_t state;
} bench_rng;

typedef struct bench_cfg {
  int reps, quick, large, json;
  double b_commit, b_thr, b_misc; /* seconds per timed loop */
  long sizes[3];                  /* rows of the small, medium, large store */
  int nsizes;                     /* 3 with --large */
} bench_cfg;

/* The SQLCipher column: measured (ok) or why not. */
typedef struct bench_cipher {
  int ok;
  char reason[700];    /* when !ok */
  char version[64];    /* PRAGMA cipher_version */
  char sqlite[64];     /* the SQLite it is built on */
  int upsert_replace;  /* SQLite < 3.24: upserts ran as INSERT OR REPLACE */
  char encrypted[700]; /* the proof */
  char helper[4096];   /* the program that measured it */
  long rss_base;       /* KiB, peak RSS of the helper opening nothing */
} bench_cipher;

typedef struct bench_run {
  const char *prog;   /* in messages */
  const char *subcmd; /* re-executing: argument selecting us, or NULL */
  int child_mode;     /* SQLCipher helper: failures on stdout too */
  int progress_on;    /* progress lines on stderr (a terminal) */
  bench_cfg cfg;
  char base_dir[4096]; /* the run's scratch directory */
  pid_t base_owner;    /* the process that made it */
  char exe[4096];      /* /proc/self/exe, once read */
  bench_rng rng;
  bench_err err;
  double fig[NCONT][NFIG];
  int has_fig[NCONT][NFIG];
  double repv[NCONT][NREPFIG][BENCH_MAXREPS];
  bench_cipher sqlc;
  bench_kv kv;
} bench_run;

/* ---- harness.c ---------------------------------------------------------- */

/* A new run (zeroed, NULL when out of memory) named prog in messages. */
bench_run *bench_run_new(const char *prog, const char *subcmd);
void bench_run_free(bench_run *r);

/* Record a failure in e unless one is there already (newlines become
 * spaces). Returns BENCH_FAILED. */
int bench_errf(bench_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* BENCH_FAILED after recording "what: kj_strerror(rc): errmsg" when rc is
 * a failure, else 0. b may be NULL. */
int bench_check(bench_err *e, int rc, kj_backend *b, const char *what);
/* The exit status for rc (0 or BENCH_FAILED): on a failure, print it
 * ("prog: message" on stderr, and "error message" on stdout in the helper
 * child) and remove the scratch directory this process made; 1. */
int bench_exit_status(bench_run *r, int rc);

void bench_progress(const bench_run *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void bench_progress_end(const bench_run *r);

/* s as a JSON string, quoted and escaped, on stdout. */
void bench_json_str(const char *s);

double bench_now(void);
/* Sorts v. */
double bench_median(double *v, int n);

/* Inline: the point-read loop draws a key per timed operation, and a call
 * into another file would add to what is measured. */
static inline void bench_rng_seed(bench_rng *g, uint64_t seed) {
  g->state = 0x9e3779b97f4a7c15ull ^ (seed * 0xbf58476d1ce4e5b9ull);
}
static inline uint64_t bench_rng_next(bench_rng *g) {
  uint64_t x = g->state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return g->state = x;
}
/* Incompressible bytes, like the key material of a real session record. */
void bench_fill_random(bench_rng *g, uint8_t *p, size_t n);

void bench_rm_rf(const char *path);
/* Sum of the sizes of the regular files under path. */
uint64_t bench_disk_bytes(const char *path);
/* Drop the pages of every file under path from the page cache
 * (posix_fadvise DONTNEED after fdatasync), for a cold open. */
void bench_drop_cache(const char *path);

/* Run op until budget seconds or max_ops, at least min_ops (5 at most
 * with --quick); *sec_per_op. An op returns 0 or BENCH_FAILED, which
 * stops the loop and is returned. */
typedef int (*bench_op_fn)(void *ctx, long i);
int bench_timed_loop(const bench_run *r, bench_op_fn f, void *ctx,
                     double budget, long min_ops, long max_ops,
                     double *sec_per_op);

/* Run op(ctx[t], 0), op(ctx[t], 1), ... in n threads at once for budget
 * seconds (a thread stops at its first failure, which op records where
 * its context says); *ops_per_s: the ops of all threads per second.
 * BENCH_FAILED only when a thread could not start: the caller checks the
 * failures its contexts recorded. */
int bench_threads(bench_run *r, int n, bench_op_fn op, void *const *ctx,
                  double budget, double *ops_per_s);

/* Run argv (argv[0]: the program's path) with its stdout captured in *out
 * (malloc'd, NUL-terminated) and the waitpid status in *st. A child that
 * cannot exec prints "error exec ..." and exits 127. */
int bench_run_capture(bench_run *r, const char *const *argv, int *st,
                      char **out);
/* Peak RSS (KiB) of a child (this program re-executed) that only opens the
 * store at dir (kind: a FULL contender's key, or "none") and closes it. */
int bench_child_rss(bench_run *r, const char *kind, const char *dir, long *kib);
/* The child side of bench_child_rss: `--rss-child KIND DIR`. Returns the
 * exit status. */
int bench_rss_child_main(bench_run *r, const char *kind, const char *dir);

/* Raw fdatasync rate (ops/s) of the disk under r->base_dir. */
int bench_fdatasync_rate(bench_run *r, double budget, double *rate);

/* Parse [--reps N] [--quick] [--large] [--json] [--sqlcipher-child] [DIR]
 * into r->cfg (with its budgets and sizes), *dir (the default applied) and
 * *sqlcipher_child. Returns -1 to go on, else the exit status (0 after
 * --help, 2 after a usage message). */
int bench_parse_args(bench_run *r, int argc, char **argv, const char **dir,
                     int *sqlcipher_child);

/* ---- measure.c ---------------------------------------------------------- */

/* Open (creating when absent) contender c's store at dir. */
int bench_open(bench_run *r, int c, const char *dir, uint64_t snap_threshold,
               kj_backend **out);
/* One rep of the per-operation figures of contender c. */
int bench_measure_rep(bench_run *r, int c, int rep);
/* Medians of the reps of contender c, as its figures. */
void bench_rep_medians(bench_run *r, int c);
/* Open times, disk bytes and peak RSS of FULL contender c. */
int bench_measure_stores(bench_run *r, int c);
void bench_put_fig(bench_run *r, int c, int f, double v);

/* ---- contender_native.c ------------------------------------------------- */

int bench_native_open(bench_run *r, int c, const char *dir,
                      uint64_t snap_threshold, kj_backend **out);
/* A checkpoint of the closed store at dir; *secs (when not NULL): the
 * seconds of kj_store_checkpoint() alone, without the open and close. */
int bench_native_checkpoint(bench_run *r, int c, const char *dir, double *secs);

/* ---- contender_sqlite.c ------------------------------------------------- */

/* SQLite FULL or NORMAL, or SQLCipher FULL (in the helper only). */
int bench_sqlite_open(bench_run *r, int c, const char *dir, kj_backend **out);
/* Fail unless the SQLCipher database under dir is encrypted; the proof
 * goes to r->sqlc.encrypted. */
int bench_sqlcipher_prove_encrypted(bench_run *r, const char *dir);
/* Fill r->sqlc (and the SQLCipher figures) from the helper, or say why
 * not: only a failure of this process (pipe, fork) is a failure. */
int bench_sqlcipher_run(bench_run *r);
/* One line on what each contender is. */
void bench_describe_sqlite(char *out, size_t cap);
void bench_describe_sqlcipher(const bench_run *r, char *out, size_t cap);

/* ---- kv.c ---------------------------------------------------------------- */

/* 1 when contender c is built into this program, else 0 and why. */
int bench_kv_available(int c, char *why, size_t cap);
/* Measure the key-value table into r->kv. */
int bench_kv_run(bench_run *r);
/* The child side of its RSS figure, for kind (a bench_kv_key): open the
 * store at dir, read a row, close. *found is 0 when kind is not one. */
int bench_kv_rss_open(bench_run *r, const char *kind, const char *dir,
                      int *found);
/* The key-value table as text, or as the JSON member "kv" (kvreport.c). */
void bench_kv_print_text(const bench_run *r);
void bench_kv_print_json(const bench_run *r);

/* ---- report.c ----------------------------------------------------------- */

/* Print the figures of r as the table (or JSON with --json). */
int bench_report(bench_run *r, const char *dir, double fsync_rate,
                 long rss_base);

#endif
