/*
 * src/engine/secmem.c - size-class allocator over MADV_DONTDUMP mappings.
 *
 * Every block starts with a 16-byte header: its class index, or for a
 * large block the length of its own mapping. Classes (header included)
 * step by a quarter of each power of two (32, 40, 48, 56, 64, 80, 96, 112,
 * 128, 160, ... 80 KiB), so a block wastes at most a fifth of its size. A
 * class's free list is threaded through the freed blocks' payloads; a class
 * with an empty list carves one more block from its current slab, and maps a
 * new slab when that one is used up.
 *
 * Invariants: a block on a free list is wiped (kj_sec_free wipes before
 * linking it); a class's slab cursor only moves forward; slabs are never
 * unmapped, so a block's class cannot change under a concurrent free.
 * Each class's mutex guards its list and cursor, and is never held across
 * a system call other than the mmap of a new slab.
 */
#include "secmem.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Under AddressSanitizer the allocator tells it which bytes are live: a
 * freed block and the slack after a block's length are poisoned, so a use
 * after free or an overflow in row memory is still reported. */
#if defined(__SANITIZE_ADDRESS__)
#define KJ_SEC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KJ_SEC_ASAN 1
#endif
#endif
#ifdef KJ_SEC_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define HDR 16u
#define SLAB (256u * 1024u)
#define LARGE_TAG UINT64_MAX

/* Class sizes include the header: 4 steps per doubling from 32 up to
 * 80 KiB (class 45). */
#define NCLASS 46

typedef struct sec_block {
  uint64_t tag; /* class index, or LARGE_TAG */
  uint64_t len; /* a large block's mapping length, else the bytes asked */
} sec_block;

typedef struct sec_class {
  pthread_mutex_t mu;
  void *free;         /* list of freed blocks (link in the payload) */
  unsigned char *cur; /* next uncarved byte of the current slab */
  unsigned char *end; /* end of the current slab */
} sec_class;

static sec_class classes[NCLASS];
static size_t class_size[NCLASS];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init_classes(void) {
  size_t n = 0, s = 32;
  while (n < NCLASS) {
    size_t step = s / 4;
    for (int i = 0; i < 4 && n < NCLASS; i++, s += step)
      class_size[n++] = s;
  }
  for (size_t i = 0; i < NCLASS; i++)
    pthread_mutex_init(&classes[i].mu, NULL);
}

/* The smallest class holding total bytes (header included), or NCLASS. */
static size_t class_of(size_t total) {
  size_t lo = 0, hi = NCLASS;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (class_size[mid] < total)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static void wipe(void *p, size_t n) {
  volatile unsigned char *v = p;
  while (n--)
    *v++ = 0;
}

/* A fresh anonymous mapping of len bytes marked not to be dumped. */
static void *map_dontdump(size_t len) {
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
  if (p == MAP_FAILED)
    return NULL;
#ifdef MADV_DONTDUMP
  (void)madvise(p, len, MADV_DONTDUMP); /* best effort: see kj_sec_dontdump */
#endif
  return p;
}

int kj_sec_dontdump(void) {
#ifdef MADV_DONTDUMP
  return 1;
#else
  return 0;
#endif
}

static size_t page_size(void) {
  long p = sysconf(_SC_PAGESIZE);
  return p > 0 ? (size_t)p : 4096u;
}

void *kj_sec_alloc(size_t n) {
  pthread_once(&once, init_classes);
  if (n > SIZE_MAX - HDR - 65536u)
    return NULL;
  size_t total = n + HDR;
  size_t c = class_of(total);
  sec_block *b;
  if (c == NCLASS) {
    size_t pg = page_size(), len = (total + pg - 1) / pg * pg;
    if (!(b = map_dontdump(len)))
      return NULL;
    b->tag = LARGE_TAG;
    b->len = len;
    return (unsigned char *)b + HDR;
  }
  sec_class *k = &classes[c];
  size_t sz = class_size[c];
  pthread_mutex_lock(&k->mu);
  if (k->free) {
    b = k->free;
    unsigned char *pl = (unsigned char *)b + HDR;
    UNPOISON(pl, sizeof(void *));
    k->free = *(void **)pl;
    *(void **)pl = NULL; /* blocks on the list are wiped */
  } else {
    if ((size_t)(k->end - k->cur) < sz) {
      size_t slab = sz > SLAB / 4 ? 4 * sz : SLAB;
      unsigned char *p = map_dontdump(slab);
      if (!p) {
        pthread_mutex_unlock(&k->mu);
        return NULL;
      }
      /* The rest of the old slab is lost to this class: at most one block. */
      k->cur = p;
      k->end = p + slab;
    }
    b = (sec_block *)k->cur;
    k->cur += sz;
  }
  pthread_mutex_unlock(&k->mu);
  b->tag = c;
  b->len = n;
  POISON((unsigned char *)b + HDR, sz - HDR);
  UNPOISON((unsigned char *)b + HDR, n);
  return (unsigned char *)b + HDR;
}

void *kj_sec_calloc(size_t n, size_t size) {
  if (size && n > SIZE_MAX / size)
    return NULL;
  /* Fresh slab memory and wiped listed blocks are zero already; the memset
   * keeps this correct should that ever change. */
  void *p = kj_sec_alloc(n * size);
  if (p)
    memset(p, 0, n * size);
  return p;
}

/* The payload capacity of the block at p. */
static size_t capacity(const sec_block *b) {
  return b->tag == LARGE_TAG ? b->len - HDR : class_size[b->tag] - HDR;
}

void kj_sec_free(void *p) {
  if (!p)
    return;
  sec_block *b = (sec_block *)((unsigned char *)p - HDR);
  if (b->tag == LARGE_TAG) {
    /* No wipe: the kernel zero-fills any page it maps again. */
    munmap(b, b->len);
    return;
  }
  size_t c = (size_t)b->tag;
  UNPOISON(p, class_size[c] - HDR);
  wipe(p, class_size[c] - HDR);
  b->len = 0;
  sec_class *k = &classes[c];
  pthread_mutex_lock(&k->mu);
  *(void **)p = k->free;
  k->free = b;
  POISON(p, class_size[c] - HDR);
  pthread_mutex_unlock(&k->mu);
}

void *kj_sec_realloc(void *p, size_t n) {
  if (!p)
    return kj_sec_alloc(n);
  sec_block *b = (sec_block *)((unsigned char *)p - HDR);
  size_t cap = capacity(b);
  if (b->tag != LARGE_TAG && n <= cap) {
    POISON(p, cap);
    UNPOISON(p, n);
    b->len = n;
    return p;
  }
  if (b->tag == LARGE_TAG && n <= cap)
    return p;
  void *q = kj_sec_alloc(n);
  if (!q)
    return NULL;
  size_t keep = b->tag == LARGE_TAG ? cap : (size_t)b->len;
  memcpy(q, p, keep < n ? keep : n);
  kj_sec_free(p);
  return q;
}
