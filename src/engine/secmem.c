/*
 * src/engine/secmem.c - size-class allocator over MADV_DONTDUMP mappings.
 *
 * Every block starts with an 8-byte header: its class and the bytes
 * asked, or for a large block the length of its own mapping. Classes
 * (header included) step by 16 bytes up to 1 KiB, then by a sixteenth of
 * each power of two up to 80 KiB (1024, 1088, ... 2048, 2176, ...), so a
 * block wastes at most 15 bytes or a sixteenth of its size. With the
 * 8-byte header that is what glibc's malloc spends on the same request,
 * which matters because every row of an open store lives in one of these
 * blocks: the peak RSS of opening 100k rows is malloc's, within 0.5%. A class's
 * free list is threaded through the freed blocks' payloads; a class with an
 * empty list carves one more block from its current slab, and maps a new slab
 * when that one is used up.
 *
 * Invariants: in every small block, the payload bytes past its length are
 * zero (fresh slabs are zero, kj_sec_free wipes the length it was given,
 * kj_sec_realloc wipes what a shrink gives up), so wiping a block's length
 * wipes all it ever held; a class's slab cursor only moves forward; slabs
 * are never unmapped, so a block's class cannot change under a concurrent
 * free.
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

/* A block is an 8-byte header word and then the payload. The word holds
 * the block's class (or LARGE) in its top byte and, below, the bytes asked
 * (a small block) or the length of its own mapping (a large one). Class
 * sizes are multiples of 16 and a slab's first block starts 8 bytes in,
 * so every header sits at 8 mod 16 and every payload is 16-byte aligned;
 * a large block's header sits 8 bytes into its mapping. */
#define HDR 8u
#define SLAB (256u * 1024u)
#define LARGE 0xFFu
#define LEN_BITS 56
#define LEN_MASK ((UINT64_C(1) << LEN_BITS) - 1)

/* Class sizes include the header: 16-byte steps from 32 to 1 KiB (63
 * classes), then 16 steps per doubling to 64 KiB (96), then 4 steps of
 * 4 KiB to the largest, 80 KiB. */
#define NCLASS 163
#define SMALL_MAX (80u * 1024u)

static uint64_t *word_of(void *p) {
  return (uint64_t *)(void *)((unsigned char *)p - HDR);
}
static unsigned tag_of(uint64_t w) { return (unsigned)(w >> LEN_BITS); }
static size_t len_of(uint64_t w) { return (size_t)(w & LEN_MASK); }
static uint64_t make_word(unsigned tag, size_t len) {
  return (uint64_t)tag << LEN_BITS | (uint64_t)len;
}

typedef struct sec_class {
  pthread_mutex_t mu;
  void *free;           /* list of freed blocks (link in the payload) */
  unsigned char *cur;   /* next uncarved byte of the current slab */
  unsigned char *end;   /* end of the current slab */
  unsigned char *first; /* the class's slabs, chained by their first word */
  unsigned char *slab;  /* the slab being carved */
  size_t live;          /* blocks handed out and not freed */
} sec_class;

static sec_class classes[NCLASS];
static size_t class_size[NCLASS];
static size_t nclass; /* classes in use: NCLASS unless the table changes */
static pthread_once_t once = PTHREAD_ONCE_INIT;

static unsigned kj_log2(size_t s) {
  unsigned r = 0;
  while (s >>= 1)
    r++;
  return r;
}

static void init_classes(void) {
  size_t n = 0;
  for (size_t s = 32; s <= SMALL_MAX && n < NCLASS;) {
    class_size[n++] = s;
    s += s < 1024 ? 16 : s < 65536 ? (size_t)1 << (kj_log2(s) - 4) : 4096;
  }
  nclass = n;
  for (size_t i = 0; i < NCLASS; i++)
    pthread_mutex_init(&classes[i].mu, NULL);
}

/* The smallest class holding total bytes (header included), or nclass. */
static size_t class_of(size_t total) {
  size_t lo = 0, hi = nclass;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (class_size[mid] < total)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Zero n bytes in a way the compiler may not drop as a dead store: a
 * memset (vectorised, unlike a byte loop through a volatile pointer) and
 * then an empty asm that claims to read the memory. */
static void wipe(void *p, size_t n) {
#if defined(__GNUC__) || defined(__clang__)
  memset(p, 0, n);
  __asm__ __volatile__("" : : "r"(p) : "memory");
#else
  volatile unsigned char *v = p;
  while (n--)
    *v++ = 0;
#endif
}

/* A fresh anonymous mapping of len bytes marked not to be dumped; with
 * populate, its pages are faulted in by the mmap itself. */
static void *map_dontdump(size_t len, int populate) {
  void *p =
      mmap(NULL, len, PROT_READ | PROT_WRITE,
           MAP_PRIVATE | MAP_ANONYMOUS | (populate ? MAP_POPULATE : 0), -1, 0);
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

/* Freed large mappings are kept, up to CACHE_SLOTS of them and CACHE_MAX
 * bytes in all, for later large requests they fit (at most twice the
 * request), instead of unmapped: opening a store reads a snapshot through
 * several large buffers (zstd's window, a chunk of plaintext, the parser's
 * buffer), and opening one again in the same process would otherwise map
 * and fault in all of them afresh (60% slower for 10k rows). As glibc's
 * dynamic mmap threshold does, a mapping is kept only when one at least
 * as long was freed before: a process that opens a store once gets every
 * large buffer back to the OS and holds no kept pages after the open; one
 * that opens stores again and again keeps what it reuses. A kept mapping
 * is wiped and holds only zeros. */
#define CACHE_SLOTS 8
#define CACHE_MAX (32u * 1024u * 1024u)
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned char *cache_map[CACHE_SLOTS];
static size_t cache_len[CACHE_SLOTS]; /* 0: the slot is empty */
static size_t cache_total;
static size_t freed_max; /* the longest large mapping freed so far */

/* The shortest kept mapping that suits a request of *len bytes (then *len
 * is its length); else NULL. */
static unsigned char *take_cached(size_t *len) {
  unsigned char *m = NULL;
  size_t best = CACHE_SLOTS;
  pthread_mutex_lock(&cache_mu);
  for (size_t i = 0; i < CACHE_SLOTS; i++)
    if (cache_map[i] && cache_len[i] >= *len && cache_len[i] / 2 <= *len &&
        (best == CACHE_SLOTS || cache_len[i] < cache_len[best]))
      best = i;
  if (best < CACHE_SLOTS) {
    m = cache_map[best];
    *len = cache_len[best];
    cache_total -= cache_len[best];
    cache_map[best] = NULL;
    cache_len[best] = 0;
  }
  pthread_mutex_unlock(&cache_mu);
  return m;
}

/* A free slot reserved for a freed mapping of len bytes if the rule
 * above keeps it (its map stays NULL until release_large fills it, so
 * take_cached skips it), else -1: then the caller unmaps the mapping
 * without wiping it, as its pages go back to the OS. */
static int reserve_slot(size_t len) {
  int slot = -1;
  pthread_mutex_lock(&cache_mu);
  if (len <= freed_max && len <= CACHE_MAX - cache_total)
    for (int i = 0; i < CACHE_SLOTS && slot < 0; i++)
      if (!cache_len[i]) {
        slot = i;
        cache_len[i] = len;
        cache_total += len;
      }
  if (len > freed_max)
    freed_max = len;
  pthread_mutex_unlock(&cache_mu);
  return slot;
}

static void release_large(int slot, unsigned char *m) {
  pthread_mutex_lock(&cache_mu);
  cache_map[slot] = m;
  pthread_mutex_unlock(&cache_mu);
}

/* A class's slab length for blocks of sz bytes: room for many small
 * blocks, or four large ones. A slab's first 8 bytes link it to the next
 * slab of its class; its blocks start after them. */
static size_t slab_len(size_t sz) {
  return sz > SLAB / 4 ? 4 * sz + HDR : SLAB;
}

/* Called with k->mu held when the class's last live block was freed:
 * forget the free list and carve the slabs again from the first, in
 * address order. A store closed and opened again then gets its rows laid
 * out in order as on the first open, not scattered in the order the
 * close freed them (which costs a TLB miss per row: 50% slower opens).
 * Listed blocks are wiped but for their link, which is zeroed here, so
 * the slabs hold only zeros again. */
static void restart(sec_class *k, size_t sz) {
  if (!k->first)
    return;
  for (unsigned char *b = k->free; b;) {
    void **link = (void **)(void *)(b + HDR);
    UNPOISON(link, sizeof *link);
    b = *link;
    *link = NULL;
    POISON(link, sizeof *link);
  }
  k->free = NULL;
  k->slab = k->first;
  k->cur = k->first + HDR;
  k->end = k->first + slab_len(sz);
}

void *kj_sec_alloc(size_t n) {
  pthread_once(&once, init_classes);
  size_t pg = page_size();
  if (n > LEN_MASK - 2 * pg || n > SIZE_MAX - 2 * pg)
    return NULL;
  size_t c = class_of(n + HDR);
  unsigned char *blk; /* the header word's address */
  if (c == nclass) {
    size_t len = (n + 2 * HDR + pg - 1) / pg * pg;
    unsigned char *m = take_cached(&len); /* may be longer */
    if (!m && !(m = map_dontdump(len, 0)))
      return NULL;
    /* The first word holds the most bytes ever asked of the block (what
     * its free must wipe); the header word follows, so the payload, at
     * m + 16, is 16-byte aligned. */
    *(uint64_t *)(void *)m = n;
    blk = m + HDR;
    *(uint64_t *)(void *)blk = make_word(LARGE, len);
    UNPOISON(blk + HDR, n);
    return blk + HDR;
  }
  sec_class *k = &classes[c];
  size_t sz = class_size[c];
  pthread_mutex_lock(&k->mu);
  if (k->free) {
    blk = k->free;
    unsigned char *pl = blk + HDR;
    UNPOISON(pl, sizeof(void *));
    k->free = *(void **)pl;
    *(void **)pl = NULL; /* blocks on the list are wiped */
  } else {
    if ((size_t)(k->end - k->cur) < sz) {
      /* The rest of the slab is lost to this class: at most one block. */
      size_t slab = slab_len(sz);
      unsigned char *m = k->slab ? *(unsigned char **)(void *)k->slab : NULL;
      if (!m) { /* no slab left from before a restart: map one */
        /* A class's first slab is faulted in page by page, as it is
         * used, so a small store costs little memory; a class that filled
         * a slab is a busy one, and its next slabs come in whole with the
         * mmap: a page fault each would cost more than the copy into the
         * page (a fifth of a NORMAL commit loop that adds rows). */
        if (!(m = map_dontdump(slab, k->first != NULL))) {
          pthread_mutex_unlock(&k->mu);
          return NULL;
        }
        *(unsigned char **)(void *)m = NULL;
        if (k->slab)
          *(unsigned char **)(void *)k->slab = m;
        else
          k->first = m;
      }
      k->slab = m;
      k->cur = m + HDR;
      k->end = m + slab;
    }
    blk = k->cur;
    k->cur += sz;
  }
  k->live++;
  pthread_mutex_unlock(&k->mu);
  *(uint64_t *)(void *)blk = make_word((unsigned)c, n);
  POISON(blk + HDR, sz - HDR);
  UNPOISON(blk + HDR, n);
  return blk + HDR;
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

/* The payload capacity of the block whose header word is w. */
static size_t capacity(uint64_t w) {
  return tag_of(w) == LARGE ? len_of(w) - 2 * HDR : class_size[tag_of(w)] - HDR;
}

void kj_sec_free(void *p) {
  if (!p)
    return;
  uint64_t *wp = word_of(p), w = *wp;
  if (tag_of(w) == LARGE) {
    unsigned char *m = (unsigned char *)wp - HDR;
    size_t used = (size_t) * (uint64_t *)(void *)m, len = len_of(w);
    int slot = reserve_slot(len);
    UNPOISON(p, len - 2 * HDR);
    if (slot < 0) { /* unmapped: the pages go back to the OS */
      munmap(m, len);
      return;
    }
    wipe(p, used); /* all it ever held: the mapping is kept for reuse */
    POISON(p, len - 2 * HDR);
    *(uint64_t *)(void *)m = 0;
    *wp = 0; /* the mapping is all zeros again */
    release_large(slot, m);
    return;
  }
  size_t c = tag_of(w), cap = class_size[c] - HDR, len = len_of(w);
  UNPOISON(p, cap);
  wipe(p, len > sizeof(void *) ? len : sizeof(void *));
  *wp = make_word((unsigned)c, 0);
  sec_class *k = &classes[c];
  pthread_mutex_lock(&k->mu);
  *(void **)p = k->free;
  k->free = wp;
  POISON(p, cap);
  if (--k->live == 0)
    restart(k, class_size[c]);
  pthread_mutex_unlock(&k->mu);
}

void *kj_sec_realloc(void *p, size_t n) {
  if (!p)
    return kj_sec_alloc(n);
  uint64_t *wp = word_of(p), w = *wp;
  size_t cap = capacity(w), len = len_of(w);
  int large = tag_of(w) == LARGE;
  if (!large && n <= cap) {
    if (n < len) /* keep the tail past the length zero */
      wipe((unsigned char *)p + n, len - n);
    POISON(p, cap);
    UNPOISON(p, n);
    *wp = make_word(tag_of(w), n);
    return p;
  }
  if (large && n <= cap) {
    uint64_t *used = (uint64_t *)(void *)((unsigned char *)wp - HDR);
    if (n > *used) /* the free wipes up to the most ever asked */
      *used = n;
    UNPOISON(p, n);
    return p;
  }
  void *q = kj_sec_alloc(n);
  if (!q)
    return NULL;
  size_t keep =
      large ? (size_t) * (uint64_t *)(void *)((unsigned char *)wp - HDR) : len;
  memcpy(q, p, keep < n ? keep : n);
  kj_sec_free(p);
  return q;
}

void *kj_sec_zalloc(void *opaque, size_t n) {
  (void)opaque;
  return kj_sec_alloc(n);
}

void kj_sec_zfree(void *opaque, void *p) {
  (void)opaque;
  kj_sec_free(p);
}

__attribute__((noinline)) void kj_sec_burn_stack(size_t n) {
  unsigned char buf[16384];
  if (n > sizeof buf)
    n = sizeof buf;
  /* The top of buf lies next to the caller's frame. */
  memset(buf + sizeof buf - n, 0, n);
  /* The stores must happen although buf is never read again. */
  __asm__ __volatile__("" : : "r"(buf) : "memory");
}
