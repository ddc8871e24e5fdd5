/*
 * bench/measure.c - the figures of the benchmark: what is measured.
 *
 * Owns the workloads and how each figure is taken from them: durable (or
 * NORMAL) commits of 512 B session records, eight writer threads on one
 * handle, point reads, pre-key batches of 100, ratchet saves with 50
 * skipped keys, and the open time, disk bytes and peak RSS of stores of
 * the configured sizes. Every workload goes through the domain contract
 * (kj_backend), so each contender runs exactly the same code here and
 * differs only in how its store is opened (contender_*.c); every
 * measurement reseeds the generator, so each writes the same bytes and
 * reads the same keys. The SQLCipher helper runs these same functions.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

int bench_open(bench_run *r, int c, const char *dir, uint64_t snap_threshold,
               kj_backend **out) {
  if (bench_is_native(c))
    return bench_native_open(r, c, dir, snap_threshold, out);
  return bench_sqlite_open(r, c, dir, out);
}

static int addr_of(char *a, size_t cap, int thread, long i) {
  return snprintf(a, cap, "+1555%02d%07ld.0:1", thread, i);
}

/* Fresh (emptied) store for contender c and purpose tag, with a slot. */
static int open_fresh(bench_run *r, int c, const char *tag, uint32_t *dev,
                      kj_backend **out) {
  char dir[4300];
  snprintf(dir, sizeof dir, "%s/%s-%s", r->base_dir, bench_cont_key[c], tag);
  bench_rm_rf(dir);
  if (bench_open(r, c, dir, 0, out) != 0)
    return BENCH_FAILED;
  if (bench_check(&r->err, kj_device_create(*out, NULL, dev), *out,
                  "device create") != 0) {
    kj_backend_close(*out);
    return BENCH_FAILED;
  }
  return 0;
}

/* ---- operations -------------------------------------------------------- */

typedef struct put_ctx {
  kj_backend *b;
  uint32_t dev;
  int thread;
  long naddr;
  bench_err *err; /* the run's, or a writer thread's own */
  bench_rng *rng; /* op_get only (never in writer threads) */
  uint8_t rec[512];
} put_ctx;

static int op_put(void *vc, long i) {
  put_ctx *c = vc;
  char a[40];
  int al = addr_of(a, sizeof a, c->thread, i % c->naddr);
  memcpy(c->rec, &i, sizeof i);
  return bench_check(
      c->err,
      kj_session_put(c->b, NULL, c->dev, a, (size_t)al, c->rec, sizeof c->rec),
      c->b, "session put");
}

static int op_get(void *vc, long i) {
  put_ctx *c = vc;
  char a[40];
  long k = (long)(bench_rng_next(c->rng) % (uint64_t)c->naddr);
  (void)i;
  int al = addr_of(a, sizeof a, 0, k);
  void *rec = NULL;
  size_t rl = 0;
  int rc = kj_session_get(c->b, NULL, c->dev, a, (size_t)al, &rec, &rl);
  kj_free(rec);
  return bench_check(c->err, rc, c->b, "session get");
}

typedef struct prekey_ctx {
  kj_backend *b;
  uint32_t dev;
  bench_err *err;
  kj_prekey keys[100];
  uint8_t recs[100][96];
} prekey_ctx;

static int op_prekeys(void *vc, long i) {
  prekey_ctx *c = vc;
  for (int k = 0; k < 100; k++) {
    c->keys[k].id = (uint32_t)(i * 100 + k + 1);
    c->keys[k].uploaded = 0;
    c->recs[k][0] = (uint8_t)i;
    c->keys[k].record.p = c->recs[k];
    c->keys[k].record.len = sizeof c->recs[k];
  }
  return bench_check(c->err,
                     kj_prekey_store_batch(c->b, NULL, c->dev, c->keys, 100, 0),
                     c->b, "prekey batch");
}

typedef struct ratchet_ctx {
  kj_backend *b;
  uint32_t dev;
  bench_err *err;
  kj_ratchet_state *s;
} ratchet_ctx;

/* 50 skipped keys, half of them new at each save. */
static int op_ratchet(void *vc, long i) {
  ratchet_ctx *c = vc;
  kj_ratchet_state *s = c->s;
  s->msg_send = (uint32_t)i;
  for (int k = 0; k < 50; k++) {
    memset(s->skipped[k].public_key, k % 5, 32);
    s->skipped[k].msg_num = (uint32_t)(i * 25 + k);
    memset(s->skipped[k].message_key, k, 32);
  }
  return bench_check(
      c->err, kj_ratchet_save(c->b, NULL, c->dev, "conversation-1", 14, s),
      c->b, "ratchet save");
}

/* ---- per-rep figures --------------------------------------------------- */

/* Durable (or NORMAL) commit: seconds per session put to 500 addresses. */
static int m_commit(bench_run *r, int c, double budget, double *out) {
  bench_rng_seed(&r->rng, 1);
  put_ctx pc = {.naddr = 500, .err = &r->err, .rng = &r->rng};
  if (open_fresh(r, c, "commit", &pc.dev, &pc.b) != 0)
    return BENCH_FAILED;
  bench_fill_random(&r->rng, pc.rec, sizeof pc.rec);
  int rc = 0;
  for (long i = 0; rc == 0 && i < 20; i++) /* warm up: rows, first segment */
    rc = op_put(&pc, i);
  if (rc == 0)
    rc = bench_timed_loop(r, op_put, &pc, budget, 20, 2000000, out);
  kj_backend_close(pc.b);
  return rc;
}

#define NTHREADS 8

/* 8 writer threads on one handle, each its own slot: total ops/s. */
static int m_threads(bench_run *r, int c, double budget, double *out) {
  bench_rng_seed(&r->rng, 2);
  uint32_t dev;
  kj_backend *b;
  if (open_fresh(r, c, "threads", &dev, &b) != 0)
    return BENCH_FAILED;
  put_ctx *pc = calloc(NTHREADS, sizeof *pc);
  bench_err *errs = calloc(NTHREADS, sizeof *errs);
  void *ctx[NTHREADS];
  int rc = pc && errs ? 0 : bench_errf(&r->err, "out of memory");
  for (int t = 0; rc == 0 && t < NTHREADS; t++) {
    pc[t].b = b;
    pc[t].err = &errs[t];
    if (t == 0)
      pc[t].dev = dev;
    else
      rc = bench_check(&r->err, kj_device_create(b, NULL, &pc[t].dev), b,
                       "device create");
    pc[t].thread = t;
    pc[t].naddr = 500;
    bench_fill_random(&r->rng, pc[t].rec, sizeof pc[t].rec);
    ctx[t] = &pc[t];
  }
  if (rc == 0)
    rc = bench_threads(r, NTHREADS, op_put, ctx, budget, out);
  for (int t = 0; rc == 0 && t < NTHREADS; t++)
    if (errs[t].msg[0])
      rc = bench_errf(&r->err, "%s", errs[t].msg);
  free(pc);
  free(errs);
  kj_backend_close(b);
  return rc;
}

/* Point reads, prekey batches and ratchet saves on one store: s/op each. */
static int m_misc(bench_run *r, int c, double budget, double *get,
                  double *prekey, double *ratchet) {
  bench_rng_seed(&r->rng, 3);
  put_ctx pc = {.naddr = 1000, .err = &r->err, .rng = &r->rng};
  if (open_fresh(r, c, "misc", &pc.dev, &pc.b) != 0)
    return BENCH_FAILED;
  kj_backend *b = pc.b;
  bench_fill_random(&r->rng, pc.rec, sizeof pc.rec);
  kj_tx *t = NULL;
  int rc = bench_check(&r->err, kj_backend_begin(b, &t), b, "tx begin");
  if (rc == 0) {
    for (long i = 0; rc == 0 && i < pc.naddr; i++) {
      char a[40];
      int al = addr_of(a, sizeof a, 0, i);
      rc = bench_check(
          &r->err,
          kj_session_put(b, t, pc.dev, a, (size_t)al, pc.rec, sizeof pc.rec), b,
          "session put");
    }
    if (rc == 0)
      rc = bench_check(&r->err, kj_backend_commit(t), b, "tx commit");
    else
      kj_backend_rollback(t);
  }
  for (long i = 0; rc == 0 && i < 1000; i++)
    rc = op_get(&pc, i);
  if (rc == 0)
    rc = bench_timed_loop(r, op_get, &pc, budget, 1000, 50000000, get);

  if (rc == 0) {
    prekey_ctx *kc = calloc(1, sizeof *kc);
    if (!kc) {
      rc = bench_errf(&r->err, "out of memory");
    } else {
      kc->b = b;
      kc->dev = pc.dev;
      kc->err = &r->err;
      bench_fill_random(&r->rng, &kc->recs[0][0], sizeof kc->recs);
      rc = op_prekeys(kc, 0);
      if (rc == 0)
        rc = bench_timed_loop(r, op_prekeys, kc, budget, 10, 1000000, prekey);
      free(kc);
    }
  }

  if (rc == 0) {
    ratchet_ctx rs = {
        .b = b, .dev = pc.dev, .err = &r->err, .s = kj_ratchet_state_alloc(50)};
    if (!rs.s) {
      rc = bench_errf(&r->err, "out of memory");
    } else {
      memset(rs.s->root_key, 1, 32);
      rs.s->has_sending_chain = 1;
      rc = op_ratchet(&rs, 0);
      if (rc == 0)
        rc = bench_timed_loop(r, op_ratchet, &rs, budget, 10, 1000000, ratchet);
      kj_free(rs.s);
    }
  }
  kj_backend_close(b);
  return rc;
}

int bench_measure_rep(bench_run *r, int c, int rep) {
  const bench_cfg *g = &r->cfg;
  double(*v)[BENCH_MAXREPS] = r->repv[c];
  bench_progress(r, "rep %d/%d: %s commit", rep + 1, g->reps,
                 bench_cont_name[c]);
  if (m_commit(r, c, g->b_commit, &v[F_COMMIT][rep]) != 0)
    return BENCH_FAILED;
  if (bench_is_normal(c))
    return 0;
  bench_progress(r, "rep %d/%d: %s 8 threads", rep + 1, g->reps,
                 bench_cont_name[c]);
  if (m_threads(r, c, g->b_thr, &v[F_THREADS][rep]) != 0)
    return BENCH_FAILED;
  bench_progress(r, "rep %d/%d: %s reads, pre-keys, ratchet", rep + 1, g->reps,
                 bench_cont_name[c]);
  return m_misc(r, c, g->b_misc, &v[F_GET][rep], &v[F_PREKEY][rep],
                &v[F_RATCHET][rep]);
}

void bench_rep_medians(bench_run *r, int c) {
  for (int f = 0; f < NREPFIG; f++)
    if (f == F_COMMIT || !bench_is_normal(c))
      bench_put_fig(r, c, f, bench_median(r->repv[c][f], r->cfg.reps));
}

/* ---- store figures ----------------------------------------------------- */

/* A closed store of n session rows (512 B records, batched 1000 per
 * transaction) for contender c at dir; the logical bytes (sum of key and
 * value lengths) in *logical. Native: no snapshot. */
static int build_store(bench_run *r, int c, const char *dir, long n,
                       uint64_t *logical) {
  bench_rng_seed(&r->rng, 4);
  bench_rm_rf(dir);
  kj_backend *b;
  if (bench_open(r, c, dir, UINT64_MAX, &b) != 0)
    return BENCH_FAILED;
  uint32_t dev;
  int rc =
      bench_check(&r->err, kj_device_create(b, NULL, &dev), b, "device create");
  uint8_t rec[512];
  *logical = 0;
  for (long i = 0; rc == 0 && i < n;) {
    kj_tx *t = NULL;
    rc = bench_check(&r->err, kj_backend_begin(b, &t), b, "tx begin");
    for (long k = 0; rc == 0 && k < 1000 && i < n; k++, i++) {
      char a[40];
      int al = addr_of(a, sizeof a, 0, i);
      bench_fill_random(&r->rng, rec, sizeof rec);
      rc = bench_check(
          &r->err, kj_session_put(b, t, dev, a, (size_t)al, rec, sizeof rec), b,
          "session put");
      *logical += (uint64_t)al + sizeof rec;
    }
    if (rc == 0)
      rc = bench_check(&r->err, kj_backend_commit(t), b, "tx commit");
    else
      kj_backend_rollback(t);
    if (rc == 0 && i % 50000 == 0)
      bench_progress(r, "%s: building a %ld-row store: %ld", bench_cont_name[c],
                     n, i);
  }
  if (rc != 0) {
    kj_backend_close(b);
    return rc;
  }
  return bench_check(&r->err, kj_backend_close(b), NULL, "close");
}

/* Median seconds to open (and recover) the closed store at dir; with
 * cold, its files' pages are dropped from the page cache before each. */
static int time_open(bench_run *r, int c, const char *dir, int cold,
                     double *out) {
  double v[BENCH_MAXREPS];
  for (int i = 0; i < r->cfg.reps; i++) {
    if (cold)
      bench_drop_cache(dir);
    double t0 = bench_now();
    kj_backend *b;
    if (bench_open(r, c, dir, UINT64_MAX, &b) != 0)
      return BENCH_FAILED;
    v[i] = bench_now() - t0;
    kj_backend_close(b);
  }
  *out = bench_median(v, r->cfg.reps);
  return 0;
}

/* The largest store's extras: its open with a cold page cache, and the
 * peak RSS of a child that opens it and reads BENCH_READS random rows. */
static int measure_cold(bench_run *r, int c, int si, const char *d) {
  double t;
  long kib;
  char kind[64];
  bench_progress(r, "%s: open %ld rows, cold page cache", bench_cont_name[c],
                 r->cfg.sizes[si]);
  if (time_open(r, c, d, 1, &t) != 0)
    return BENCH_FAILED;
  bench_put_fig(r, c, F_OPEN_COLD + si, t);
  if (si != r->cfg.nsizes - 1)
    return 0;
  snprintf(kind, sizeof kind, "%s@%ld", bench_cont_key[c], r->cfg.sizes[si]);
  bench_progress(r, "%s: peak RSS of a child opening %ld rows and reading %d",
                 bench_cont_name[c], r->cfg.sizes[si], BENCH_READS);
  if (bench_child_rss(r, kind, d, &kib) != 0)
    return BENCH_FAILED;
  bench_put_fig(r, c, F_RSS_READS, (double)kib);
  return 0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* BENCH_LAT_N FULL session puts on the closed store at dir (rows rows),
 * each timed; sorted into v. With threshold, the store is opened with
 * that snapshot threshold, so that one commit in the middle crosses it
 * and runs a checkpoint. */
static int timed_commits(bench_run *r, int c, const char *dir, long rows,
                         uint64_t threshold, double *v) {
  kj_backend *b;
  if (bench_open(r, c, dir, threshold, &b) != 0)
    return BENCH_FAILED;
  uint8_t rec[512];
  int rc = 0;
  for (int i = 0; rc == 0 && i < BENCH_LAT_N; i++) {
    char a[40];
    int al = addr_of(a, sizeof a, 0, (long)(i * 7919L % rows));
    bench_fill_random(&r->rng, rec, sizeof rec);
    double t0 = bench_now();
    rc = bench_check(&r->err,
                     kj_session_put(b, NULL, 1, a, (size_t)al, rec, sizeof rec),
                     b, "session put");
    v[i] = bench_now() - t0;
  }
  if (rc == 0)
    rc = bench_check(&r->err, kj_backend_close(b), NULL, "close");
  else
    kj_backend_close(b);
  qsort(v, BENCH_LAT_N, sizeof *v, cmp_double);
  return rc;
}

/* Commit latency on the largest store (native, after its checkpoint):
 * the median without a checkpoint, then the 99th percentile and the
 * maximum of commits among which one crosses the snapshot threshold
 * (half way: about 700 journal bytes a put). */
static int measure_latency(bench_run *r, int c, const char *d, long rows) {
  static double v[BENCH_LAT_N];
  bench_progress(r, "%s: commit latency around a checkpoint of %ld rows",
                 bench_cont_name[c], rows);
  if (timed_commits(r, c, d, rows, UINT64_MAX, v) != 0)
    return BENCH_FAILED;
  bench_put_fig(r, c, F_LAT_P50, v[BENCH_LAT_N / 2]);
  if (bench_native_checkpoint(r, c, d, NULL) != 0 ||
      timed_commits(r, c, d, rows, (uint64_t)BENCH_LAT_N / 2 * 700, v) != 0)
    return BENCH_FAILED;
  bench_put_fig(r, c, F_LAT_P99, v[BENCH_LAT_N * 99 / 100]);
  bench_put_fig(r, c, F_LAT_MAX, v[BENCH_LAT_N - 1]);
  return 0;
}

/* Reads of the largest store after its checkpoint, through the run and
 * the default block cache: among BENCH_HOT keys spread over the store
 * (their blocks stay cached: warm), and among every row (cold: the block
 * is mostly not in the 8 MiB cache, the file is in the page cache). */
typedef struct read_ctx {
  kj_backend *b;
  bench_rng *rng;
  bench_err *err;
  long rows, among;
} read_ctx;

static int op_read_run(void *vc, long i) {
  read_ctx *c = vc;
  char a[40];
  (void)i;
  long k = (long)(bench_rng_next(c->rng) % (uint64_t)c->among);
  if (c->among < c->rows) /* the hot keys, spread over the store */
    k = (long)((uint64_t)k * 7919u % (uint64_t)c->rows);
  int al = addr_of(a, sizeof a, 0, k);
  void *rec = NULL;
  size_t rl = 0;
  int rc = kj_session_get(c->b, NULL, 1, a, (size_t)al, &rec, &rl);
  kj_free(rec);
  return bench_check(c->err, rc, c->b, "session get");
}

static int measure_run_reads(bench_run *r, int c, const char *d, long rows) {
  bench_progress(r, "%s: point reads through the run of %ld rows",
                 bench_cont_name[c], rows);
  read_ctx x = {.rng = &r->rng, .err = &r->err, .rows = rows};
  if (bench_open(r, c, d, UINT64_MAX, &x.b) != 0)
    return BENCH_FAILED;
  double v[BENCH_MAXREPS];
  int rc = 0;
  for (int warm = 1; rc == 0 && warm >= 0; warm--) {
    x.among = warm ? (rows < BENCH_HOT ? rows : BENCH_HOT) : rows;
    for (int rep = 0; rc == 0 && rep < r->cfg.reps; rep++) {
      bench_rng_seed(&r->rng, 31 + (uint64_t)rep);
      for (long i = 0; rc == 0 && warm && i < 4 * BENCH_HOT; i++)
        rc = op_read_run(&x, i); /* fill the cache with the hot blocks */
      if (rc == 0)
        rc = bench_timed_loop(r, op_read_run, &x, r->cfg.b_misc, 1000, 50000000,
                              &v[rep]);
    }
    if (rc == 0)
      bench_put_fig(r, c, warm ? F_READ_WARM : F_READ_COLD,
                    bench_median(v, r->cfg.reps));
  }
  if (rc == 0)
    rc = bench_check(&r->err, kj_backend_close(x.b), NULL, "close");
  else
    kj_backend_close(x.b);
  return rc;
}

/* One size: build, prove (SQLCipher), time the opens, measure the medium
 * store's bytes and RSS; native stores again after a checkpoint. */
static int measure_size(bench_run *r, int c, int si, const char *d) {
  long n = r->cfg.sizes[si];
  uint64_t logical;
  double tj, tc;
  long kib;
  if (build_store(r, c, d, n, &logical) != 0)
    return BENCH_FAILED;
  if (c == SQLC_FULL && bench_sqlcipher_prove_encrypted(r, d) != 0)
    return BENCH_FAILED;
  bench_progress(r, "%s: open %ld rows", bench_cont_name[c], n);
  if (time_open(r, c, d, 0, &tj) != 0)
    return BENCH_FAILED;
  bench_put_fig(r, c, F_OPEN_J + si, tj);
  if (si == BENCH_MEDIUM) {
    bench_put_fig(r, c, F_LOGICAL, (double)logical);
    bench_put_fig(r, c, F_DISK_J, (double)bench_disk_bytes(d));
    bench_progress(r, "%s: peak RSS of a child opening %ld rows",
                   bench_cont_name[c], n);
    if (bench_child_rss(r, bench_cont_key[c], d, &kib) != 0)
      return BENCH_FAILED;
    bench_put_fig(r, c, F_RSS_J, (double)kib);
  }
  if (!bench_is_native(c)) { /* no checkpoint step: the same store */
    bench_put_fig(r, c, F_OPEN_C + si, tj);
    if (si == BENCH_MEDIUM) {
      bench_put_fig(r, c, F_DISK_C, r->fig[c][F_DISK_J]);
      bench_put_fig(r, c, F_RSS_C, r->fig[c][F_RSS_J]);
    }
    return measure_cold(r, c, si, d);
  }
  bench_progress(r, "%s: checkpoint, open %ld rows", bench_cont_name[c], n);
  double ck;
  if (bench_native_checkpoint(r, c, d, &ck) != 0 ||
      time_open(r, c, d, 0, &tc) != 0)
    return BENCH_FAILED;
  if (si == r->cfg.nsizes - 1 && ck > 0)
    bench_put_fig(r, c, F_CKPT_MBS, (double)logical / ck / 1e6);
  if (si == r->cfg.nsizes - 1 && c == NAT_FULL &&
      (measure_run_reads(r, c, d, n) != 0 || measure_latency(r, c, d, n) != 0))
    return BENCH_FAILED;
  bench_put_fig(r, c, F_OPEN_C + si, tc);
  if (si == BENCH_MEDIUM) {
    bench_put_fig(r, c, F_DISK_C, (double)bench_disk_bytes(d));
    if (bench_child_rss(r, bench_cont_key[c], d, &kib) != 0)
      return BENCH_FAILED;
    bench_put_fig(r, c, F_RSS_C, (double)kib);
  }
  return measure_cold(r, c, si, d);
}

/* A new process's first steps with a small store: the median time to
 * create an empty store (open of an empty directory, closed untimed),
 * and to open a closed store of BENCH_TINY session rows. */
static int measure_small(bench_run *r, int c, const char *d) {
  double v[BENCH_MAXREPS];
  bench_progress(r, "%s: create an empty store", bench_cont_name[c]);
  for (int i = 0; i < r->cfg.reps; i++) {
    bench_rm_rf(d);
    double t0 = bench_now();
    kj_backend *b;
    if (bench_open(r, c, d, UINT64_MAX, &b) != 0)
      return BENCH_FAILED;
    v[i] = bench_now() - t0;
    if (bench_check(&r->err, kj_backend_close(b), NULL, "close") != 0)
      return BENCH_FAILED;
  }
  bench_put_fig(r, c, F_CREATE, bench_median(v, r->cfg.reps));
  uint64_t logical;
  double t;
  if (build_store(r, c, d, BENCH_TINY, &logical) != 0 ||
      time_open(r, c, d, 0, &t) != 0)
    return BENCH_FAILED;
  bench_put_fig(r, c, F_OPEN_TINY, t);
  return 0;
}

int bench_measure_stores(bench_run *r, int c) {
  char small[4300];
  snprintf(small, sizeof small, "%s/%s-small", r->base_dir, bench_cont_key[c]);
  int src = measure_small(r, c, small);
  bench_rm_rf(small);
  if (src != 0)
    return src;
  for (int si = 0; si < r->cfg.nsizes; si++) {
    char d[4300];
    snprintf(d, sizeof d, "%s/%s-open-%ld", r->base_dir, bench_cont_key[c],
             r->cfg.sizes[si]);
    int rc = measure_size(r, c, si, d);
    bench_rm_rf(d);
    if (rc != 0)
      return rc;
  }
  return 0;
}

/* BENCH_READS session reads at random among the rows 0..rows-1 that
 * build_store wrote for slot dev 1 (the store's first slot). */
static int random_reads(bench_run *r, kj_backend *b, long rows) {
  bench_rng_seed(&r->rng, 5);
  int rc = 0;
  for (int i = 0; rc == 0 && i < BENCH_READS; i++) {
    char a[40];
    int al = addr_of(a, sizeof a, 0,
                     (long)(bench_rng_next(&r->rng) % (uint64_t)rows));
    void *rec = NULL;
    size_t rl = 0;
    rc = bench_check(&r->err,
                     kj_session_get(b, NULL, 1, a, (size_t)al, &rec, &rl), b,
                     "session get");
    kj_free(rec);
  }
  return rc;
}

int bench_rss_child_main(bench_run *r, const char *kind, const char *dir) {
  int rc = 0, c = -1;
  /* KIND, or KIND@ROWS: then read BENCH_READS of the ROWS rows too. */
  char name[64];
  long rows = 0;
  snprintf(name, sizeof name, "%s", kind);
  char *at = strchr(name, '@');
  if (at) {
    *at = 0;
    rows = strtol(at + 1, NULL, 10);
  }
  for (int i = 0; i < NCONT; i++)
    if (!bench_is_normal(i) && strcmp(name, bench_cont_key[i]) == 0)
      c = i;
  if ((c < 0 && strcmp(kind, "none") != 0) || (at && (c < 0 || rows <= 0)))
    return bench_exit_status(
        r, bench_errf(&r->err, "--rss-child: unknown kind %s", kind));
  if (c >= 0) {
    kj_backend *b;
    if (bench_open(r, c, dir, UINT64_MAX, &b) != 0)
      return bench_exit_status(r, BENCH_FAILED);
    if (rows && random_reads(r, b, rows) != 0) {
      kj_backend_close(b);
      return bench_exit_status(r, BENCH_FAILED);
    }
    rc = kj_backend_close(b) ? 1 : 0;
  }
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kib = 0;
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, "VmHWM:", 6) == 0)
      kib = strtol(line + 6, NULL, 10);
  if (f)
    fclose(f);
  printf("%ld\n", kib);
  return rc;
}
