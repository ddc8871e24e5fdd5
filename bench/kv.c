/*
 * bench/kv.c - the key-value table of the benchmark: the engine's own
 * key-value API (kj_put, kj_get, kj_scan_range) against LMDB and RocksDB,
 * the stores a C developer would pick instead, with the same keys, the
 * same values and the same durability.
 *
 * Owns the pairings and their figures. Durable: native FULL, LMDB with its
 * default sync at commit, RocksDB with sync=true. Unsynced: native NORMAL,
 * LMDB MDB_NOSYNC, RocksDB sync=false. Figures: one put per commit, 8
 * writer threads on one handle (durable only), a batch of 100 puts in one
 * commit, point reads (value copied out) in stores of 1k, 100k and, with
 * --large, 1M rows, an ordered scan of 1,000 rows, the disk bytes of the
 * 100k store and the peak RSS of a child that opens it and reads one row.
 * LMDB and RocksDB are optional at build time (HAVE_LMDB, HAVE_ROCKSDB);
 * a contender that was not built says so in its column. Keys are 11
 * bytes ("k" and 10 digits, so key order is row order), values 512
 * random bytes. The native store is encrypted, the others are not.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#ifdef HAVE_LMDB
#include <lmdb.h>
#endif
#ifdef HAVE_ROCKSDB
#include <rocksdb/c.h>
#endif

#include "bench.h"

#define KV_VLEN 512
#define KV_KLEN 11
#define KV_TABLE 1
#define KV_THREADS 8
#define KV_BATCH 100
#define KV_SCAN 1000

const char *const bench_kv_name[KV_NCONT] = {"native FULL",  "native NORMAL",
                                             "LMDB",         "LMDB NOSYNC",
                                             "RocksDB sync", "RocksDB nosync"};
const char *const bench_kv_key[KV_NCONT] = {
    "kv_native_full", "kv_native_normal", "kv_lmdb",
    "kv_lmdb_nosync", "kv_rocksdb_sync",  "kv_rocksdb_nosync"};

static int kv_durable(int c) {
  return c == KV_NAT_FULL || c == KV_LMDB || c == KV_ROCKS;
}

/* ---- one store, whichever contender ------------------------------------ */

typedef struct kvdb {
  int c;
  kj_store *s;
#ifdef HAVE_LMDB
  MDB_env *env;
  MDB_dbi dbi;
  MDB_txn *rtxn; /* a reset read transaction, renewed per read */
#endif
#ifdef HAVE_ROCKSDB
  rocksdb_t *db;
  rocksdb_options_t *opt;
  rocksdb_writeoptions_t *wo;
  rocksdb_readoptions_t *ro;
#endif
} kvdb;

int bench_kv_available(int c, char *why, size_t cap) {
  if (c == KV_LMDB || c == KV_LMDB_NOSYNC) {
#ifndef HAVE_LMDB
    snprintf(why, cap,
             "not built: configure found no LMDB (on Debian: "
             "apt-get install liblmdb-dev, then configure again)");
    return 0;
#endif
  }
  if (c == KV_ROCKS || c == KV_ROCKS_NOSYNC) {
#ifndef HAVE_ROCKSDB
    snprintf(why, cap,
             "not built: configure found no RocksDB (on Debian: "
             "apt-get install librocksdb-dev, then configure "
             "again)");
    return 0;
#endif
  }
  (void)why;
  (void)cap;
  return 1;
}

static void kv_key(char *k, long i) {
  char buf[24];
  snprintf(buf, sizeof buf, "k%010ld", i % 10000000000l);
  memcpy(k, buf, KV_KLEN);
}

static int kv_open(bench_run *r, int c, const char *dir, kvdb **out) {
  kvdb *d = calloc(1, sizeof *d);
  *out = NULL;
  if (!d)
    return bench_errf(&r->err, "out of memory");
  d->c = c;
  if (c == KV_NAT_FULL || c == KV_NAT_NORMAL) {
    kj_options o = KJ_OPTIONS_INIT;
    o.key = bench_key;
    o.sync = c == KV_NAT_FULL ? KJ_SYNC_FULL : KJ_SYNC_NORMAL;
    o.snapshot_threshold = UINT64_MAX;
    char *em = NULL;
    int rc = kj_store_open(dir, &o, &d->s, &em);
    if (rc) {
      bench_errf(&r->err, "open %s (%s): %s: %s", dir, bench_kv_name[c],
                 kj_strerror(rc), em ? em : "");
      kj_free(em);
      free(d);
      return BENCH_FAILED;
    }
    kj_free(em);
  } else if (c == KV_LMDB || c == KV_LMDB_NOSYNC) {
#ifdef HAVE_LMDB
    int rc = mkdir(dir, 0700) != 0 && errno != EEXIST ? errno : 0;
    if (!rc)
      rc = mdb_env_create(&d->env);
    if (!rc) /* sparse: room for the 1M-row store with --large */
      rc = mdb_env_set_mapsize(d->env, (size_t)8 << 30);
    if (!rc)
      rc =
          mdb_env_open(d->env, dir, c == KV_LMDB_NOSYNC ? MDB_NOSYNC : 0, 0600);
    MDB_txn *t = NULL;
    if (!rc)
      rc = mdb_txn_begin(d->env, NULL, 0, &t);
    if (!rc)
      rc = mdb_dbi_open(t, NULL, 0, &d->dbi);
    if (!rc)
      rc = mdb_txn_commit(t);
    else if (t)
      mdb_txn_abort(t);
    if (rc) {
      if (d->env)
        mdb_env_close(d->env);
      free(d);
      return bench_errf(&r->err, "LMDB open %s: %s", dir, mdb_strerror(rc));
    }
#endif
  } else {
#ifdef HAVE_ROCKSDB
    char *err = NULL;
    d->opt = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(d->opt, 1);
    d->wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(d->wo, c == KV_ROCKS);
    d->ro = rocksdb_readoptions_create();
    d->db = rocksdb_open(d->opt, dir, &err);
    if (err) {
      bench_errf(&r->err, "RocksDB open %s: %s", dir, err);
      rocksdb_free(err);
      rocksdb_readoptions_destroy(d->ro);
      rocksdb_writeoptions_destroy(d->wo);
      rocksdb_options_destroy(d->opt);
      free(d);
      return BENCH_FAILED;
    }
#endif
  }
  *out = d;
  return 0;
}

static int kv_close(bench_run *r, kvdb *d) {
  int rc = 0;
  if (!d)
    return 0;
  if (d->s)
    rc = bench_check(&r->err, kj_store_close(d->s), NULL, "close");
#ifdef HAVE_LMDB
  if (d->env) {
    if (d->rtxn)
      mdb_txn_abort(d->rtxn);
    mdb_env_close(d->env);
  }
#endif
#ifdef HAVE_ROCKSDB
  if (d->db) {
    rocksdb_close(d->db);
    rocksdb_readoptions_destroy(d->ro);
    rocksdb_writeoptions_destroy(d->wo);
    rocksdb_options_destroy(d->opt);
  }
#endif
  free(d);
  return rc;
}

/* n puts (keys[i], vals + i * KV_VLEN) in one commit. */
static int kv_write(kvdb *d, const char *keys, const uint8_t *vals, long n,
                    bench_err *e) {
  if (d->s) {
    kj_txn *t = NULL;
    int rc = kj_txn_begin(d->s, 0, &t);
    for (long i = 0; !rc && i < n; i++)
      rc = kj_put(d->s, t, KV_TABLE, keys + i * KV_KLEN, KV_KLEN,
                  vals + i * KV_VLEN, KV_VLEN);
    if (!rc)
      return bench_check(e, kj_txn_commit(t), NULL, "commit");
    if (t)
      kj_txn_rollback(t);
    return bench_check(e, rc, NULL, "put");
  }
#ifdef HAVE_LMDB
  if (d->env) {
    MDB_txn *t;
    int rc = mdb_txn_begin(d->env, NULL, 0, &t);
    for (long i = 0; !rc && i < n; i++) {
      MDB_val k = {KV_KLEN, (void *)(keys + i * KV_KLEN)};
      MDB_val v = {KV_VLEN, (void *)(vals + i * KV_VLEN)};
      rc = mdb_put(t, d->dbi, &k, &v, 0);
    }
    if (!rc)
      rc = mdb_txn_commit(t);
    else
      mdb_txn_abort(t);
    return rc ? bench_errf(e, "LMDB put: %s", mdb_strerror(rc)) : 0;
  }
#endif
#ifdef HAVE_ROCKSDB
  if (d->db) {
    char *err = NULL;
    if (n == 1) {
      rocksdb_put(d->db, d->wo, keys, KV_KLEN, (const char *)vals, KV_VLEN,
                  &err);
    } else {
      rocksdb_writebatch_t *b = rocksdb_writebatch_create();
      for (long i = 0; i < n; i++)
        rocksdb_writebatch_put(b, keys + i * KV_KLEN, KV_KLEN,
                               (const char *)vals + i * KV_VLEN, KV_VLEN);
      rocksdb_write(d->db, d->wo, b, &err);
      rocksdb_writebatch_destroy(b);
    }
    if (err) {
      bench_errf(e, "RocksDB put: %s", err);
      rocksdb_free(err);
      return BENCH_FAILED;
    }
    return 0;
  }
#endif
  return bench_errf(e, "no store");
}

/* Read key into out (KV_VLEN bytes). */
static int kv_read(kvdb *d, const char *key, uint8_t *out, bench_err *e) {
  if (d->s) {
    void *v = NULL;
    size_t vl = 0;
    int rc = kj_get(d->s, NULL, KV_TABLE, key, KV_KLEN, &v, &vl);
    if (!rc && vl == KV_VLEN)
      memcpy(out, v, KV_VLEN);
    kj_free(v);
    return rc              ? bench_check(e, rc, NULL, "get")
           : vl != KV_VLEN ? bench_errf(e, "get: %zu bytes", vl)
                           : 0;
  }
#ifdef HAVE_LMDB
  if (d->env) {
    int rc = d->rtxn ? mdb_txn_renew(d->rtxn)
                     : mdb_txn_begin(d->env, NULL, MDB_RDONLY, &d->rtxn);
    MDB_val k = {KV_KLEN, (void *)key}, v = {0, NULL};
    if (!rc)
      rc = mdb_get(d->rtxn, d->dbi, &k, &v);
    if (!rc && v.mv_size == KV_VLEN)
      memcpy(out, v.mv_data, KV_VLEN);
    if (d->rtxn)
      mdb_txn_reset(d->rtxn);
    return rc ? bench_errf(e, "LMDB get: %s", mdb_strerror(rc))
           : v.mv_size != KV_VLEN ? bench_errf(e, "LMDB get: wrong size")
                                  : 0;
  }
#endif
#ifdef HAVE_ROCKSDB
  if (d->db) {
    char *err = NULL;
    rocksdb_pinnableslice_t *p =
        rocksdb_get_pinned(d->db, d->ro, key, KV_KLEN, &err);
    size_t vl = 0;
    const char *v = p ? rocksdb_pinnableslice_value(p, &vl) : NULL;
    if (v && vl == KV_VLEN)
      memcpy(out, v, KV_VLEN);
    rocksdb_pinnableslice_destroy(p);
    if (err) {
      bench_errf(e, "RocksDB get: %s", err);
      rocksdb_free(err);
      return BENCH_FAILED;
    }
    return vl == KV_VLEN ? 0 : bench_errf(e, "RocksDB get: not found");
  }
#endif
  return bench_errf(e, "no store");
}

static int scan_row(void *arg, const void *key, size_t klen, const void *val,
                    size_t vlen) {
  uint64_t *sum = arg;
  (void)key;
  *sum += klen + ((const uint8_t *)val)[vlen - 1];
  return ++sum[1] == KV_SCAN ? 1 : 0;
}

/* KV_SCAN rows in key order from key start, each value touched. */
static int kv_scan(kvdb *d, const char *start, bench_err *e) {
  uint64_t acc[2] = {0, 0};
  if (d->s) {
    int rc = kj_scan_range(d->s, NULL, KV_TABLE, start, KV_KLEN, NULL, 0,
                           scan_row, acc);
    if (rc < 0)
      return bench_check(e, rc, NULL, "scan");
  }
#ifdef HAVE_LMDB
  if (d->env) {
    MDB_txn *t;
    MDB_cursor *cur;
    int rc = mdb_txn_begin(d->env, NULL, MDB_RDONLY, &t);
    if (rc)
      return bench_errf(e, "LMDB scan: %s", mdb_strerror(rc));
    rc = mdb_cursor_open(t, d->dbi, &cur);
    MDB_val k = {KV_KLEN, (void *)start}, v;
    for (int op = MDB_SET_RANGE; !rc && acc[1] < KV_SCAN; op = MDB_NEXT) {
      rc = mdb_cursor_get(cur, &k, &v, (MDB_cursor_op)op);
      if (!rc)
        scan_row(acc, k.mv_data, k.mv_size, v.mv_data, v.mv_size);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(t);
    if (rc && rc != MDB_NOTFOUND)
      return bench_errf(e, "LMDB scan: %s", mdb_strerror(rc));
  }
#endif
#ifdef HAVE_ROCKSDB
  if (d->db) {
    rocksdb_iterator_t *it = rocksdb_create_iterator(d->db, d->ro);
    for (rocksdb_iter_seek(it, start, KV_KLEN);
         rocksdb_iter_valid(it) && acc[1] < KV_SCAN; rocksdb_iter_next(it)) {
      size_t kl, vl;
      const char *k = rocksdb_iter_key(it, &kl);
      const char *v = rocksdb_iter_value(it, &vl);
      scan_row(acc, k, kl, v, vl);
    }
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    rocksdb_iter_destroy(it);
    if (err) {
      bench_errf(e, "RocksDB scan: %s", err);
      rocksdb_free(err);
      return BENCH_FAILED;
    }
  }
#endif
  return acc[1] == KV_SCAN
             ? 0
             : bench_errf(e, "scan: %llu rows", (unsigned long long)acc[1]);
}

/* ---- the figures --------------------------------------------------------- */

typedef struct kvop {
  kvdb *d;
  bench_err *err;
  bench_rng *rng;
  long base, nkeys;
  char keys[KV_BATCH * KV_KLEN];
  uint8_t vals[KV_BATCH * KV_VLEN];
} kvop;

static int op_commit(void *vc, long i) {
  kvop *o = vc;
  kv_key(o->keys, o->base + i);
  memcpy(o->vals, &i, sizeof i);
  return kv_write(o->d, o->keys, o->vals, 1, o->err);
}

static int op_batch(void *vc, long i) {
  kvop *o = vc;
  for (long k = 0; k < KV_BATCH; k++) {
    kv_key(o->keys + k * KV_KLEN, (i * KV_BATCH + k) % 100000);
    memcpy(o->vals + k * KV_VLEN, &i, sizeof i);
  }
  return kv_write(o->d, o->keys, o->vals, KV_BATCH, o->err);
}

static int op_read(void *vc, long i) {
  kvop *o = vc;
  (void)i;
  kv_key(o->keys, (long)(bench_rng_next(o->rng) % (uint64_t)o->nkeys));
  return kv_read(o->d, o->keys, o->vals, o->err);
}

static int op_scan(void *vc, long i) {
  kvop *o = vc;
  (void)i;
  long span = o->nkeys > KV_SCAN ? o->nkeys - KV_SCAN : 1;
  kv_key(o->keys, (long)(bench_rng_next(o->rng) % (uint64_t)span));
  return kv_scan(o->d, o->keys, o->err);
}

static int fresh(bench_run *r, int c, const char *tag, kvdb **d) {
  char dir[4300];
  snprintf(dir, sizeof dir, "%s/%s-%s", r->base_dir, bench_kv_key[c], tag);
  bench_rm_rf(dir);
  return kv_open(r, c, dir, d);
}

/* 8 writer threads on one handle, keys of their own: total ops/s. */
static int m_threads(bench_run *r, int c, double budget, double *out) {
  kvdb *d;
  if (fresh(r, c, "threads", &d) != 0)
    return BENCH_FAILED;
  kvop *o = calloc(KV_THREADS, sizeof *o);
  bench_err *errs = calloc(KV_THREADS, sizeof *errs);
  void *ctx[KV_THREADS];
  int rc = o && errs ? 0 : bench_errf(&r->err, "out of memory");
  bench_rng_seed(&r->rng, 12);
  for (int t = 0; rc == 0 && t < KV_THREADS; t++) {
    o[t].d = d;
    o[t].err = &errs[t];
    o[t].base = (long)t * 100000000l;
    bench_fill_random(&r->rng, o[t].vals, KV_VLEN);
    ctx[t] = &o[t];
  }
  if (rc == 0)
    rc = bench_threads(r, KV_THREADS, op_commit, ctx, budget, out);
  for (int t = 0; rc == 0 && t < KV_THREADS; t++)
    if (errs[t].msg[0])
      rc = bench_errf(&r->err, "%s", errs[t].msg);
  free(o);
  free(errs);
  if (kv_close(r, d) != 0)
    rc = BENCH_FAILED;
  return rc;
}

/* One rep of the per-operation figures of contender c. */
static int kv_rep(bench_run *r, bench_kv *k, int c, int rep) {
  const bench_cfg *g = &r->cfg;
  kvop *o = calloc(1, sizeof *o);
  if (!o)
    return bench_errf(&r->err, "out of memory");
  o->err = &r->err;
  o->rng = &r->rng;
  bench_rng_seed(&r->rng, 11);
  bench_fill_random(&r->rng, o->vals, sizeof o->vals);
  bench_progress(r, "rep %d/%d: key-value %s commit", rep + 1, g->reps,
                 bench_kv_name[c]);
  int rc = fresh(r, c, "commit", &o->d);
  for (long i = 0; rc == 0 && i < 20; i++) /* warm up */
    rc = op_commit(o, i);
  o->base = 20;
  if (rc == 0)
    rc = bench_timed_loop(r, op_commit, o, g->b_commit, 20, 2000000,
                          &k->repv[c][KF_COMMIT][rep]);
  if (kv_close(r, o->d) != 0)
    rc = BENCH_FAILED;
  o->d = NULL;
  bench_progress(r, "rep %d/%d: key-value %s batch of %d", rep + 1, g->reps,
                 bench_kv_name[c], KV_BATCH);
  if (rc == 0)
    rc = fresh(r, c, "batch", &o->d);
  if (rc == 0)
    rc = bench_timed_loop(r, op_batch, o, g->b_commit, 5, 1000000,
                          &k->repv[c][KF_BATCH][rep]);
  if (o->d && kv_close(r, o->d) != 0)
    rc = BENCH_FAILED;
  free(o);
  if (rc == 0 && kv_durable(c)) {
    bench_progress(r, "rep %d/%d: key-value %s 8 threads", rep + 1, g->reps,
                   bench_kv_name[c]);
    rc = m_threads(r, c, g->b_thr, &k->repv[c][KF_THREADS][rep]);
  }
  return rc;
}

/* A closed store of n rows (1,000 per commit) at dir. */
static int build(bench_run *r, int c, const char *dir, long n) {
  bench_rm_rf(dir);
  kvdb *d;
  if (kv_open(r, c, dir, &d) != 0)
    return BENCH_FAILED;
  uint8_t *vals = malloc((size_t)1000 * KV_VLEN);
  char *keys = malloc((size_t)1000 * KV_KLEN);
  int rc = vals && keys ? 0 : bench_errf(&r->err, "out of memory");
  bench_rng_seed(&r->rng, 13);
  for (long i = 0; rc == 0 && i < n;) {
    long m = n - i < 1000 ? n - i : 1000;
    for (long j = 0; j < m; j++)
      kv_key(keys + j * KV_KLEN, i + j);
    bench_fill_random(&r->rng, vals, (size_t)m * KV_VLEN);
    rc = kv_write(d, keys, vals, m, &r->err);
    i += m;
    if (rc == 0 && i % 100000 == 0)
      bench_progress(r, "key-value %s: building a %ld-row store: %ld",
                     bench_kv_name[c], n, i);
  }
  free(vals);
  free(keys);
  if (kv_close(r, d) != 0)
    rc = BENCH_FAILED;
  return rc;
}

/* Reads (and, in the medium store, scans, bytes and RSS) of the stores of
 * every size, for durable contender c. */
static int kv_stores(bench_run *r, bench_kv *k, int c) {
  const bench_cfg *g = &r->cfg;
  for (int si = 0; si < k->nsizes; si++) {
    long n = k->sizes[si];
    char dir[4300];
    snprintf(dir, sizeof dir, "%s/%s-%ld", r->base_dir, bench_kv_key[c], n);
    bench_progress(r, "key-value %s: a %ld-row store", bench_kv_name[c], n);
    int rc = build(r, c, dir, n);
    kvop *o = rc == 0 ? calloc(1, sizeof *o) : NULL;
    if (rc == 0 && !o)
      rc = bench_errf(&r->err, "out of memory");
    if (rc == 0) {
      o->err = &r->err;
      o->rng = &r->rng;
      o->nkeys = n;
      rc = kv_open(r, c, dir, &o->d);
    }
    double v[BENCH_MAXREPS];
    for (int rep = 0; rc == 0 && rep < g->reps; rep++) {
      bench_rng_seed(&r->rng, 14 + (uint64_t)rep);
      for (long i = 0; rc == 0 && i < 1000; i++) /* warm up */
        rc = op_read(o, i);
      if (rc == 0)
        rc =
            bench_timed_loop(r, op_read, o, g->b_misc, 1000, 50000000, &v[rep]);
    }
    if (rc == 0)
      k->fig[c][KF_GET0 + si] = bench_median(v, g->reps);
    if (rc == 0 && si == BENCH_MEDIUM) {
      for (int rep = 0; rc == 0 && rep < g->reps; rep++) {
        bench_rng_seed(&r->rng, 24 + (uint64_t)rep);
        rc = bench_timed_loop(r, op_scan, o, g->b_misc, 5, 1000000, &v[rep]);
      }
      if (rc == 0)
        k->fig[c][KF_SCAN] = bench_median(v, g->reps);
    }
    if (o && o->d && kv_close(r, o->d) != 0)
      rc = BENCH_FAILED;
    free(o);
    if (rc == 0 && si == BENCH_MEDIUM) {
      long kib;
      k->fig[c][KF_DISK] = (double)bench_disk_bytes(dir);
      rc = bench_child_rss(r, bench_kv_key[c], dir, &kib);
      if (rc == 0)
        k->fig[c][KF_RSS] = (double)kib;
    }
    bench_rm_rf(dir);
    if (rc)
      return rc;
  }
  return 0;
}

int bench_kv_run(bench_run *r) {
  bench_kv *k = &r->kv;
  const bench_cfg *g = &r->cfg;
  static const long sizes[2][3] = {{1000, 100000, 1000000}, {200, 1000, 3000}};
  memcpy(k->sizes, sizes[g->quick], sizeof k->sizes);
  k->nsizes = g->large ? 3 : 2;
  for (int c = 0; c < KV_NCONT; c++)
    k->ok[c] = bench_kv_available(c, k->why[c], sizeof k->why[c]);
  for (int rep = 0; rep < g->reps; rep++)
    for (int c = 0; c < KV_NCONT; c++)
      if (k->ok[c] && kv_rep(r, k, c, rep) != 0)
        return BENCH_FAILED;
  for (int c = 0; c < KV_NCONT; c++) {
    if (!k->ok[c])
      continue;
    k->fig[c][KF_COMMIT] = bench_median(k->repv[c][KF_COMMIT], g->reps);
    k->fig[c][KF_BATCH] = bench_median(k->repv[c][KF_BATCH], g->reps);
    if (kv_durable(c)) {
      k->fig[c][KF_THREADS] = bench_median(k->repv[c][KF_THREADS], g->reps);
      if (kv_stores(r, k, c) != 0)
        return BENCH_FAILED;
    }
  }
  return 0;
}

/* The child side of the RSS figure: open the store, read one row. */
int bench_kv_rss_open(bench_run *r, const char *kind, const char *dir,
                      int *found) {
  *found = 0;
  for (int c = 0; c < KV_NCONT; c++) {
    if (strcmp(kind, bench_kv_key[c]) != 0)
      continue;
    *found = 1;
    kvdb *d;
    if (kv_open(r, c, dir, &d) != 0)
      return BENCH_FAILED;
    char key[KV_KLEN];
    uint8_t v[KV_VLEN];
    kv_key(key, 0);
    int rc = kv_read(d, key, v, &r->err);
    if (kv_close(r, d) != 0)
      rc = BENCH_FAILED;
    return rc;
  }
  return 0;
}
