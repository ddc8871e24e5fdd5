/*
 * bench/contender_native.c - the native engine as a contender of the
 * benchmark: native FULL and native NORMAL.
 *
 * Owns how the benchmark opens the engine (encrypted with the benchmark's
 * key, KJ_SYNC_FULL or KJ_SYNC_NORMAL, the snapshot threshold a
 * measurement asks for) and its checkpoint step, which only the engine
 * has. Uses the public API only, so `keyjournal bench` measures the
 * installed library as an application would use it.
 */
#include "bench.h"

int bench_native_open(bench_run *r, int c, const char *dir,
                      uint64_t snap_threshold, kj_backend **out) {
  char *em = NULL;
  kj_options o = KJ_OPTIONS_INIT;
  o.key = bench_key;
  o.sync = bench_is_normal(c) ? KJ_SYNC_NORMAL : KJ_SYNC_FULL;
  o.snapshot_threshold = snap_threshold;
  *out = NULL;
  int rc = kj_backend_open(dir, &o, out, &em);
  if (rc) {
    bench_errf(&r->err, "open %s (%s): %s: %s", dir, bench_cont_name[c],
               kj_strerror(rc), em ? em : "");
    kj_free(em);
    return BENCH_FAILED;
  }
  kj_free(em);
  return 0;
}

int bench_native_checkpoint(bench_run *r, int c, const char *dir,
                            double *secs) {
  kj_backend *b;
  if (bench_native_open(r, c, dir, UINT64_MAX, &b) != 0)
    return BENCH_FAILED;
  kj_store *s = kj_backend_store(b);
  if (!s) {
    kj_backend_close(b);
    return bench_errf(&r->err, "no engine store under %s", bench_cont_name[c]);
  }
  double t0 = bench_now();
  if (bench_check(&r->err, kj_store_checkpoint(s), b, "checkpoint") != 0) {
    kj_backend_close(b);
    return BENCH_FAILED;
  }
  if (secs)
    *secs = bench_now() - t0;
  return bench_check(&r->err, kj_backend_close(b), NULL, "close");
}
