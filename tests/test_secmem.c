/*
 * tests/test_secmem.c - the row-memory allocator (src/engine/secmem.c).
 *
 * What the engine relies on: blocks of every size are usable and 16-byte
 * aligned; a freed block holds none of its old bytes when it is handed
 * out again (including bytes a shrinking realloc gave up before the free);
 * realloc keeps the contents; sizes past what fits return NULL; and
 * concurrent threads never get the same block.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/secmem.h"
#include "tap.h"

static int all_are(const unsigned char *p, size_t n, unsigned char v) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != v)
      return 0;
  return 1;
}

/* Sizes around every class edge and a spread between them. */
static size_t sizes[2048];
static size_t nsizes;

static void make_sizes(void) {
  for (size_t n = 0; n <= 1100; n += 7)
    sizes[nsizes++] = n;
  for (size_t n = 1024; n <= 96 * 1024; n += n / 19 + 1) {
    sizes[nsizes++] = n - 17;
    sizes[nsizes++] = n - 16;
    sizes[nsizes++] = n;
  }
  sizes[nsizes++] = 80 * 1024 - 16; /* largest small block */
  sizes[nsizes++] = 80 * 1024 - 15; /* smallest large block */
}

static void test_sizes_and_reuse(void) {
  int bad_align = 0, bad_reuse = 0, not_zero = 0;
  for (size_t i = 0; i < nsizes; i++) {
    size_t n = sizes[i];
    unsigned char *p = kj_sec_alloc(n);
    if (!p) {
      ok(0, "kj_sec_alloc(%zu) failed", n);
      return;
    }
    if ((uintptr_t)p % 16)
      bad_align++;
    memset(p, 0xA5, n);
    kj_sec_free(p);
    unsigned char *q = kj_sec_alloc(n);
    /* A small block goes back to the head of its class's list, so the
     * same thread gets it again; a large one is a fresh mapping. */
    if (n <= 80 * 1024 - 16 && q != p)
      bad_reuse++;
    if (!all_are(q, n, 0))
      not_zero++;
    kj_sec_free(q);
  }
  is(bad_align, 0, "every block is 16-byte aligned (%zu sizes)", nsizes);
  is(bad_reuse, 0, "a freed small block is the next one of its size");
  is(not_zero, 0, "a block handed out again holds none of its old bytes");
}

static void test_shrink_then_free(void) {
  /* A shrink gives up the tail; the free must still leave nothing. */
  unsigned char *p = kj_sec_alloc(1000);
  memset(p, 0x5A, 1000);
  unsigned char *r = kj_sec_realloc(p, 100);
  ok(r == p, "a shrinking realloc keeps the block");
  ok(all_are(r, 100, 0x5A), "and its first bytes");
  kj_sec_free(r);
  unsigned char *q = kj_sec_alloc(1000);
  ok(q == p, "the same block comes back for the old size");
  ok(all_are(q, 1000, 0), "with neither the kept bytes nor the given-up tail");

  /* Growing in place exposes only zeros past the old length. */
  memset(q, 0x77, 1000);
  q = kj_sec_realloc(q, 10);
  q = kj_sec_realloc(q, 1000);
  ok(q == p, "growing back within the block keeps it");
  ok(all_are(q, 10, 0x77) && all_are(q + 10, 990, 0),
     "and bytes past the shrunk length read as zero");
  kj_sec_free(q);
}

static void test_realloc_keeps(void) {
  unsigned char *p = NULL;
  size_t have = 0;
  int bad = 0;
  for (size_t n = 1; n <= 300 * 1024; n = n * 3 / 2 + 1) {
    unsigned char *q = kj_sec_realloc(p, n);
    if (!q) {
      ok(0, "kj_sec_realloc to %zu failed", n);
      kj_sec_free(p);
      return;
    }
    for (size_t i = 0; i < have; i++)
      if (q[i] != (unsigned char)(i * 31 + 7))
        bad++;
    for (size_t i = have; i < n; i++)
      q[i] = (unsigned char)(i * 31 + 7);
    p = q;
    have = n;
  }
  is(bad, 0, "growing realloc keeps every byte, across small and large");
  for (size_t n = have; n > 0; n /= 3) {
    p = kj_sec_realloc(p, n);
    bad += !p || p[0] != 7 || p[n - 1] != (unsigned char)((n - 1) * 31 + 7);
  }
  is(bad, 0, "shrinking realloc keeps the prefix");
  kj_sec_free(p);
  kj_sec_free(NULL);
  ok(1, "kj_sec_free(NULL) is a no-op");
}

/* A freed large block is unmapped the first time a block that long is
 * freed, and kept after that (secmem.c): the next request it fits gets
 * it back, holding none of its old bytes, and one twice as small does
 * not take it. Large blocks are 16-byte aligned too. */
static void test_large_kept(void) {
  const size_t n = 3u << 20; /* longer than any block freed before */
  unsigned char *a = kj_sec_alloc(n);
  ok(a && (uintptr_t)a % 16 == 0, "a large block, 16-byte aligned");
  if (!a)
    return;
  memset(a, 0x5A, n);
  kj_sec_free(a); /* the first of its length: unmapped */
  unsigned char *b = kj_sec_alloc(n);
  if (!b) {
    ok(0, "kj_sec_alloc(%zu) failed", n);
    return;
  }
  memset(b, 0xA5, n);
  kj_sec_free(b); /* kept */
  unsigned char *small = kj_sec_alloc(n / 2 - 4096);
  ok(small != b, "a kept mapping does not serve a request half its size");
  kj_sec_free(small);
  unsigned char *c = kj_sec_alloc(n - 100);
  ok(c == b, "the kept mapping serves the next request it fits");
  ok(c && all_are(c, n - 100, 0), "and holds none of its old bytes");
  if (c) {
    c = kj_sec_realloc(c, n); /* grows in place, up to its mapping */
    ok(c == b && all_are(c + n - 100, 100, 0), "realloc grows it in place");
    memset(c, 0x3C, n);
    kj_sec_free(c);
    unsigned char *d = kj_sec_alloc(n);
    ok(d && all_are(d, n, 0), "every byte the grown block held is wiped");
    kj_sec_free(d);
  }
}

static void test_limits(void) {
  ok(kj_sec_alloc(SIZE_MAX) == NULL, "SIZE_MAX bytes: NULL");
  ok(kj_sec_alloc(SIZE_MAX - 8) == NULL, "SIZE_MAX - 8 bytes: NULL");
  ok(kj_sec_calloc(SIZE_MAX / 2, 3) == NULL, "calloc overflow: NULL");
  unsigned char *p = kj_sec_calloc(100, 17);
  ok(p && all_are(p, 1700, 0), "calloc zeroes");
  unsigned char *q = kj_sec_realloc(p, SIZE_MAX);
  ok(q == NULL && p[0] == 0, "a failed realloc leaves the block alone");
  kj_sec_free(p);
  void *z = kj_sec_alloc(0);
  ok(z != NULL, "zero bytes gives a valid block");
  kj_sec_free(z);
}

#define THREADS 4
#define ROUNDS 20000
#define SLOTS 64

static void *churn(void *arg) {
  unsigned id = (unsigned)(uintptr_t)arg, seed = id * 2654435761u + 1;
  unsigned char *slot[SLOTS] = {0};
  size_t len[SLOTS] = {0};
  long bad = 0;
  for (int r = 0; r < ROUNDS; r++) {
    seed = seed * 1103515245u + 12345u;
    unsigned i = (seed >> 8) % SLOTS;
    if (slot[i]) {
      if (!all_are(slot[i], len[i], (unsigned char)(id + 1)))
        bad++;
      kj_sec_free(slot[i]);
      slot[i] = NULL;
    } else {
      len[i] = (seed >> 16) % ((seed & 1) ? 200 : 9000);
      if (!(slot[i] = kj_sec_alloc(len[i])))
        return (void *)-1;
      memset(slot[i], id + 1, len[i]);
    }
  }
  for (unsigned i = 0; i < SLOTS; i++) {
    if (slot[i] && !all_are(slot[i], len[i], (unsigned char)(id + 1)))
      bad++;
    kj_sec_free(slot[i]);
  }
  return (void *)(intptr_t)bad;
}

static void test_threads(void) {
  pthread_t t[THREADS];
  long bad = 0;
  for (uintptr_t i = 0; i < THREADS; i++)
    pthread_create(&t[i], NULL, churn, (void *)i);
  for (int i = 0; i < THREADS; i++) {
    void *r;
    pthread_join(t[i], &r);
    bad += (long)(intptr_t)r;
  }
  is(bad, 0, "%d threads never share a block (%d rounds each)", THREADS,
     ROUNDS);
}

int main(void) {
  make_sizes();
  test_sizes_and_reuse();
  test_shrink_then_free();
  test_realloc_keeps();
  test_large_kept();
  test_limits();
  test_threads();
  return tap_done();
}
