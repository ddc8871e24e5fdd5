/*
 * tests/bench_run.c - a microbenchmark of run files and the block cache,
 * run by hand (not a test: `make tests/bench_run && ./tests/bench_run
 * [ROWS [DIR]]`). With DIR the run file is kept there and reused;
 * BENCH_PHASES=write,warm8,warm1g,cold,scan (any subset) picks what runs.
 *
 * Writes ROWS (default 1M) rows of 11-byte keys and 512-byte values (half
 * of them random, half a repeated pattern) as one run, then measures:
 *   - write throughput: logical bytes (keys + values) per second, the
 *     durable sequence (sync, rename, directory sync) included;
 *   - open: header, footer and index;
 *   - warm point reads (kj_run_get, value copied out) with an 8 MiB cache
 *     over a hot set of keys whose blocks fit in it, and with a 1 GiB cache
 *     over every key once all blocks are cached;
 *   - uniform random reads through the 8 MiB cache (mostly misses);
 *   - cold reads: a cache of capacity 0 (each read reads, authenticates,
 *     decompresses and checks its block) with the file in the page cache,
 *     and after the file was dropped from the page cache
 *     (POSIX_FADV_DONTNEED);
 *   - a full scan with the iterator and kj_run_verify.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/bcache.h"
#include "engine/run.h"
#include "keyjournal/store.h"
#include "testutil.h"

static const uint8_t store_id[16] = "bench-run-store!";

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define KLEN 11
#define VLEN 512

/* "key" and 8 digits (ROWS below 10^8). */
static void key_of(uint64_t i, uint8_t k[32]) {
  snprintf((char *)k, 32, "key%08" PRIu64, i % 100000000u);
}

static void val_of(uint64_t i, uint8_t v[VLEN]) {
  tu_rng r;
  tu_rng_seed(&r, i);
  if (i % 2)
    tu_rng_fill(&r, v, VLEN);
  else
    for (size_t j = 0; j < VLEN; j++)
      v[j] = (uint8_t)("session-record"[j % 14] ^ (uint8_t)i);
}

/* ns per kj_run_get of n keys drawn by pick(): the keys are formatted
 * first, and the best of `reps` passes over them is taken (the machine may
 * be shared). */
static double time_gets(kj_run *r, kj_bcache *c, uint64_t n, int reps,
                        uint64_t (*pick)(tu_rng *rng, void *arg), void *arg,
                        uint64_t seed) {
  tu_rng rng;
  tu_rng_seed(&rng, seed);
  uint8_t(*keys)[16] = malloc(n * sizeof *keys), buf[VLEN], k[32];
  kj_errbuf e;
  for (uint64_t i = 0; i < n; i++) {
    key_of(pick(&rng, arg), k);
    memcpy(keys[i], k, 16);
  }
  double best = 1e30;
  for (int rep = 0; rep < reps; rep++) {
    double t0 = now();
    for (uint64_t i = 0; i < n; i++) {
      size_t vl;
      if (kj_run_get(r, c, 1, keys[i], KLEN, buf, sizeof buf, &vl, &e) !=
              KJ_OK ||
          vl != VLEN) {
        fprintf(stderr, "get %.11s failed: %s\n", (char *)keys[i], e.msg);
        exit(1);
      }
    }
    double t = now() - t0;
    best = t < best ? t : best;
  }
  free(keys);
  return best * 1e9 / (double)n;
}

static uint64_t rows_total;
static uint64_t pick_any(tu_rng *rng, void *arg) {
  (void)arg;
  return tu_rng_below(rng, rows_total);
}
/* Keys of the first `hot` blocks' rows. */
static uint64_t pick_hot(tu_rng *rng, void *arg) {
  return tu_rng_below(rng, *(uint64_t *)arg);
}

static void drop_page_cache(const char *path) {
  int fd = open(path, O_RDONLY);
  if (fd >= 0) {
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
  }
}

/* Whether phase ph runs (BENCH_PHASES unset: all). */
static int want(const char *ph) {
  const char *p = getenv("BENCH_PHASES");
  return !p || strstr(p, ph) != NULL;
}

int main(int argc, char **argv) {
  rows_total = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
  char *dir = argc > 2 ? strdup(argv[2]) : tu_mkdtemp_or_bail();
  kj_snap_info in, info;
  memset(&in, 0, sizeof in);
  in.seq = 1;
  in.base = 2;
  kj_run_writer *w;
  kj_errbuf e;
  uint8_t k[32], v[VLEN];

  double t0, logical = (double)rows_total * (KLEN + VLEN);
  char name[64];
  kj_run_name(1, name, sizeof name);
  char *path = tu_path(dir, name);
  if (!want("write"))
    goto read;

  /* Write. */
  t0 = now();
  if (kj_run_writer_begin(kj_vfs_posix(), dir, tu_key, store_id, &in, &w, &e)) {
    fprintf(stderr, "%s\n", e.msg);
    return 1;
  }
  for (uint64_t i = 0; i < rows_total; i++) {
    key_of(i, k);
    val_of(i, v);
    if (kj_run_writer_add(w, 1, k, KLEN, v, VLEN, &e)) {
      fprintf(stderr, "%s\n", e.msg);
      return 1;
    }
  }
  int renamed;
  if (kj_run_writer_finish(w, &info, &renamed, &e)) {
    fprintf(stderr, "%s\n", e.msg);
    return 1;
  }
  double tw = now() - t0;
  /* The same rows generated without writing, to report the writer alone. */
  t0 = now();
  volatile uint8_t sink = 0;
  for (uint64_t i = 0; i < rows_total; i++) {
    key_of(i, k);
    val_of(i, v);
    sink ^= v[7];
  }
  (void)sink;
  double tg = now() - t0;
  printf("rows %" PRIu64 ", logical %.1f MB, raw (block plaintext) %.1f MB, "
         "file %.1f MB\n",
         rows_total, logical / 1e6, (double)info.raw_bytes / 1e6,
         (double)info.file_bytes / 1e6);
  printf("write: %.3f s = %.1f MB/s logical (%.1f MB/s without generating "
         "the rows)\n",
         tw, logical / tw / 1e6, logical / (tw - tg) / 1e6);

read:;
  /* Open. */
  kj_run *r;
  t0 = now();
  if (kj_run_open(kj_vfs_posix(), path, tu_key, store_id, 1, &r, &info, &e)) {
    fprintf(stderr, "%s\n", e.msg);
    return 1;
  }
  printf("open: %.2f ms, %" PRIu64 " blocks\n", (now() - t0) * 1e3,
         kj_run_blocks(r));

  kj_bcache *c;
  kj_bcache_counters st;
  if (!want("warm8"))
    goto warm1g;
  /* Warm, 8 MiB: a hot set of rows whose blocks fit (400 blocks). */
  kj_bcache_new(8u << 20, &c);
  uint64_t off;
  uint32_t len, rows;
  uint64_t hot = 0;
  for (uint64_t b = 0; b < 400 && b < kj_run_blocks(r); b++) {
    kj_run_block_place(r, b, &off, &len, &rows);
    hot += rows;
  }
  time_gets(r, c, 200000, 1, pick_hot, &hot, 7); /* warm up */
  double warm8 = time_gets(r, c, 1000000, 5, pick_hot, &hot, 8);
  kj_bcache_stats(c, &st);
  printf("warm point read, 8 MiB cache, hot set of %" PRIu64
         " rows (400 blocks): %.0f ns; %" PRIu64 " blocks held\n",
         hot, warm8, st.entries);
  double any8 = time_gets(r, c, 100000, 1, pick_any, NULL, 9);
  kj_bcache_counters st2;
  kj_bcache_stats(c, &st2);
  printf("uniform random read, 8 MiB cache: %.2f us, hit rate %.1f%%\n",
         any8 / 1e3,
         100.0 * (double)(st2.hits - st.hits) /
             (double)(st2.hits - st.hits + st2.misses - st.misses));
  kj_bcache_forget(c, kj_run_owner(r));
  kj_bcache_free(c);

warm1g:
  if (!want("warm1g"))
    goto cold;
  /* Warm, 1 GiB: every block cached first by a pass of gets. */
  kj_bcache_new(1u << 30, &c);
  for (uint64_t i = 0; i < rows_total; i += 10) {
    size_t vl;
    key_of(i, k);
    kj_run_get(r, c, 1, k, KLEN, v, VLEN, &vl, &e);
  }
  kj_bcache_stats(c, &st);
  double warm1g = time_gets(r, c, 1000000, 5, pick_any, NULL, 10);
  printf("warm point read, 1 GiB cache, all %" PRIu64
         " blocks cached (%.0f MiB held), uniform keys: %.0f ns\n",
         st.entries, (double)st.bytes_held / 1048576.0, warm1g);
  kj_bcache_forget(c, kj_run_owner(r));
  kj_bcache_free(c);

cold:
  if (!want("cold"))
    goto scan;
  /* Cold: capacity 0, file in the page cache, then dropped from it. */
  kj_bcache_new(0, &c);
  double cold = time_gets(r, c, 20000, 3, pick_any, NULL, 11);
  printf("cold read (block not cached, file in the page cache): %.1f us\n",
         cold / 1e3);
  drop_page_cache(path);
  double colder = time_gets(r, c, 2000, 1, pick_any, NULL, 12);
  printf("cold read (file dropped from the page cache first): %.1f us "
         "(2000 reads)\n",
         colder / 1e3);

  kj_bcache_free(c);

scan:
  if (!want("scan"))
    goto out;
  /* Scan and verify. */
  t0 = now();
  kj_run_iter it;
  kj_run_iter_seek(&it, r, NULL, 0, NULL, 0, &e);
  uint64_t n = 0;
  unsigned t;
  const uint8_t *rk, *rv;
  size_t kl, vl;
  while (kj_run_iter_next(&it, &t, &rk, &kl, &rv, &vl, &e) == KJ_OK)
    n++;
  kj_run_iter_close(&it);
  double ts = now() - t0;
  printf("scan: %" PRIu64 " rows in %.3f s = %.1f MB/s logical\n", n, ts,
         logical / ts / 1e6);
  t0 = now();
  int rc = kj_run_verify(r, NULL, NULL, &e);
  printf("verify: %s in %.3f s\n", rc ? e.msg : "ok", now() - t0);
out:
  kj_run_close(r, NULL);
  if (argc <= 2)
    tu_rmrf(dir);
  free(path);
  free(dir);
  return 0;
}
