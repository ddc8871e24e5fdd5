/*
 * bench/bench_snapshot.c - what snapshots cost and what they save.
 *
 * For stores of N rows (a messaging-like mix of value sizes) it measures:
 * open time with the whole history in the journal, the snapshot write time,
 * open time right after a snapshot, disk bytes against logical bytes, and
 * the latency of durable commits around an automatic snapshot (p50, p99 and
 * the commit that triggered it). Figures only; it asserts nothing.
 *
 *   bench_snapshot [DIR] [ROWS...]     default: $TMPDIR, 100000 1000000
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keyjournal/store.h"

static const uint8_t bench_key[32] = {0x6b, 0x6a};

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Row i of the mix: table and value size as a messaging client has them
 * (identities 32 B, pre-keys ~100 B, sessions ~512 B, sender keys ~1 KB). */
static void row(uint64_t i, unsigned *table, char *key, size_t *klen,
                size_t *vlen) {
  static const unsigned t[] = {1, 1, 1, 1, 1, 3, 3, 3, 2, 2, 2, 5};
  static const size_t v[] = {32,  32,  32,  32,  32,  100,
                             100, 100, 512, 512, 512, 1000};
  unsigned k = (unsigned)(i % 12);
  *table = t[k];
  *vlen = v[k];
  *klen = (size_t)snprintf(key, 64, "%08llx.device%llu:%u",
                           (unsigned long long)(i * 2654435761u),
                           (unsigned long long)i, k);
}

static int open_store(const char *dir, kj_sync sync, uint64_t threshold,
                      kj_store **s) {
  kj_options o = KJ_OPTIONS_INIT;
  o.key = bench_key;
  o.sync = sync;
  o.snapshot_threshold = threshold;
  char *em = NULL;
  int rc = kj_store_open(dir, &o, s, &em);
  if (rc)
    fprintf(stderr, "open %s: %s: %s\n", dir, kj_strerror(rc), em ? em : "");
  kj_free(em);
  return rc;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double timed_open(const char *dir, kj_stats *st) {
  kj_store *s;
  double t0 = now();
  if (open_store(dir, KJ_SYNC_FULL, UINT64_MAX, &s))
    exit(1);
  double t = now() - t0;
  *st = (kj_stats)KJ_STATS_INIT;
  kj_store_stats(s, st);
  kj_store_close(s);
  return t;
}

static void bench_rows(const char *base, uint64_t n) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/kj-bench-%llu", base, (unsigned long long)n);
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    exit(1);
  kj_store *s;
  if (open_store(dir, KJ_SYNC_NORMAL, UINT64_MAX, &s))
    exit(1);
  uint64_t seed = n;
  unsigned char *val = malloc(1000);
  double t0 = now();
  for (uint64_t i = 0; i < n;) {
    kj_txn *t;
    kj_txn_begin(s, 0, &t);
    for (int b = 0; b < 1000 && i < n; b++, i++) {
      unsigned table;
      char key[64];
      size_t klen, vlen;
      row(i, &table, key, &klen, &vlen);
      for (size_t j = 0; j < vlen; j += 8) {
        uint64_t r = rng_next(&seed);
        memcpy(val + j, &r, vlen - j < 8 ? vlen - j : 8);
      }
      kj_put(s, t, table, key, klen, val, vlen);
    }
    if (kj_txn_commit(t)) {
      fprintf(stderr, "commit: %s\n", kj_store_errmsg(s));
      exit(1);
    }
  }
  double load = now() - t0;
  kj_store_close(s);

  kj_stats st;
  double open_journal = timed_open(dir, &st);
  uint64_t disk_journal = st.disk_bytes, logical = st.logical_bytes;
  uint64_t frames = st.frames_replayed;

  if (open_store(dir, KJ_SYNC_FULL, UINT64_MAX, &s))
    exit(1);
  t0 = now();
  kj_store_checkpoint(s);
  double snap = now() - t0;
  kj_stats ss = KJ_STATS_INIT;
  kj_store_stats(s, &ss);
  kj_store_close(s);
  double open_snap = timed_open(dir, &st);

  printf("rows %llu: logical %.1f MB (loaded in %.2f s)\n",
         (unsigned long long)n, (double)logical / 1e6, load);
  printf("  open, whole history in the journal: %7.3f s  (%llu frames, "
         "disk %.1f MB = %.2fx logical)\n",
         open_journal, (unsigned long long)frames, (double)disk_journal / 1e6,
         (double)disk_journal / (double)logical);
  printf("  snapshot write:                     %7.3f s  (%.1f MB raw -> "
         "%.1f MB file, ratio %.2f)\n",
         snap, (double)ss.snapshot_raw_bytes / 1e6,
         (double)ss.snapshot_bytes / 1e6,
         (double)ss.snapshot_raw_bytes / (double)ss.snapshot_bytes);
  printf("  open, right after the snapshot:     %7.3f s  (disk %.1f MB = "
         "%.2fx logical)\n",
         open_snap, (double)st.disk_bytes / 1e6,
         (double)st.disk_bytes / (double)logical);

  /* Durable session updates with automatic snapshots: the threshold is set
   * so that the run crosses it once. */
  enum { COMMITS = 3000 };
  double *lat = malloc(COMMITS * sizeof *lat);
  if (open_store(dir, KJ_SYNC_FULL, 600 * 1000, &s))
    exit(1);
  int trigger = -1;
  uint64_t before = 0;
  for (int i = 0; i < COMMITS; i++) {
    char key[64];
    size_t klen = (size_t)snprintf(key, sizeof key, "session.%d", i % 500);
    double a = now();
    if (kj_put(s, NULL, 2, key, klen, val, 512)) {
      fprintf(stderr, "commit: %s\n", kj_store_errmsg(s));
      exit(1);
    }
    lat[i] = now() - a;
    kj_stats c = KJ_STATS_INIT;
    kj_store_stats(s, &c);
    if (c.snapshots_written != before && trigger < 0)
      trigger = i;
    before = c.snapshots_written;
  }
  kj_store_close(s);
  double trig = trigger >= 0 ? lat[trigger] : 0;
  qsort(lat, COMMITS, sizeof *lat, cmp_d);
  printf("  FULL commits around an automatic snapshot: p50 %.0f us, p99 %.0f "
         "us, max %.0f us; the triggering commit %.0f us (%.0fx p50)\n",
         lat[COMMITS / 2] * 1e6, lat[COMMITS * 99 / 100] * 1e6,
         lat[COMMITS - 1] * 1e6, trig * 1e6, trig / lat[COMMITS / 2]);
  free(lat);
  free(val);
  if (system(cmd) != 0)
    exit(1);
}

int main(int argc, char **argv) {
  const char *base = argc > 1 ? argv[1] : getenv("TMPDIR");
  if (!base)
    base = "/tmp";
  if (argc > 2) {
    for (int i = 2; i < argc; i++)
      bench_rows(base, strtoull(argv[i], NULL, 10));
  } else {
    bench_rows(base, 100000);
    bench_rows(base, 1000000);
  }
  return 0;
}
