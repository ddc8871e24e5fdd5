/*
 * src/engine/bcache.h - a bounded cache of decoded blocks (internal).
 *
 * Run files (run.h, doc/FORMAT.md section 6A) are read a block at a time; a
 * block is read, authenticated and decompressed once, then served from
 * here until it is evicted. The cache knows nothing of the format: a block
 * is a byte string keyed by (owner, number), where the owner is a number
 * kj_bcache_owner() hands out once per process, one per open run file, so
 * blocks of two runs (or of a run closed and another opened) never meet.
 *
 * Invariants:
 *   - bytes held (kj_bcache_cost() of every block in the cache) stay at or
 *     below the capacity, except by blocks pinned at the moment: eviction
 *     takes unpinned blocks not used recently (CLOCK, an approximation of
 *     least recently used that costs a hit no list update) until it fits,
 *     and a pinned block is never freed, so while every block is pinned the
 *     cache may hold more. Afterwards held <= max(capacity, pinned bytes).
 *   - a pinned block's bytes never change and stay valid until its pin is
 *     released, whatever happens to the cache meanwhile (eviction,
 *     kj_bcache_forget()).
 *   - decoded bytes are plaintext rows: blocks live in secmem memory (out
 *     of core dumps, wiped when freed).
 *   - one mutex guards the table, the clock ring and the counters, held only
 *     for a lookup, an insertion or a release, never while a caller reads a
 *     block's bytes or decodes one. Any number of threads may use one cache.
 *
 * A capacity of 0 (or a NULL cache) caches nothing: every block a reader
 * decodes is private to it and freed at its release.
 */
#ifndef KJ_BCACHE_H
#define KJ_BCACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct kj_bcache kj_bcache;

/* A decoded block. data and len are the block's bytes, aux and auxlen a
 * place for what its reader derives from them (a search aid); both are
 * read-only once the block was inserted, the other fields belong to the
 * cache. One allocation holds the bytes, aux, then this header, so that
 * touching the header to pin the block also brings in aux and the block's
 * tail (a run block's offset table). */
typedef struct kj_bblock {
  uint8_t *data;
  size_t len;
  uint8_t *aux;
  size_t auxlen;
  /* ---- the cache's ---- */
  uint64_t owner, no, hash;
  struct kj_bblock *prev, *next; /* the clock ring, while cached */
  uint32_t pins;                 /* guarded by the cache's mutex */
  uint8_t ref;                   /* used since the clock hand last passed */
  uint8_t cached;                /* in the table (counted as held) */
} kj_bblock;

typedef struct kj_bcache_counters {
  uint64_t capacity;     /* bytes */
  uint64_t hits;         /* kj_bcache_get() that found the block */
  uint64_t misses;       /* kj_bcache_get() that did not */
  uint64_t inserts;      /* blocks put in the cache */
  uint64_t evictions;    /* blocks dropped to make room */
  uint64_t entries;      /* blocks held */
  uint64_t bytes_held;   /* kj_bcache_cost() of the blocks held */
  uint64_t bytes_pinned; /* of those, the ones pinned now */
} kj_bcache_counters;

/* A new owner number, never 0, never the same twice in a process. */
uint64_t kj_bcache_owner(void);

/* What a block of len bytes and auxlen bytes of aux counts against the
 * capacity: both, and the cache's own overhead (padding, block header,
 * allocation header, two table slots: the table is at most half full). */
size_t kj_bcache_cost(size_t len, size_t auxlen);

/* A cache of capacity bytes in *out. KJ_OK or KJ_ENOMEM. */
int kj_bcache_new(size_t capacity, kj_bcache **out);
/* Free c and every block it holds. No block of c may be pinned. NULL is a
 * no-op. */
void kj_bcache_free(kj_bcache *c);

/* The block (owner, no), pinned, or NULL when c does not hold it (counted
 * as a miss). Allocation-free. c may be NULL (always a miss, not counted). */
kj_bblock *kj_bcache_get(kj_bcache *c, uint64_t owner, uint64_t no);

/* A new block of len bytes and auxlen bytes of aux for a reader to fill
 * (not in any cache yet), or NULL when out of memory. Hand it to
 * kj_bcache_insert() once filled, or to kj_bcache_discard(). */
kj_bblock *kj_bcache_alloc(size_t len, size_t auxlen);
/* Free a block from kj_bcache_alloc() that was never inserted. */
void kj_bcache_discard(kj_bblock *b);

/* Insert the filled block b as (owner, no) and return it pinned. When
 * another thread inserted the same block first, b is freed and that one is
 * returned pinned instead (its bytes are the same: a block's decoding is a
 * function of its file). With c NULL or of capacity 0, or when b alone
 * costs more than the capacity (admitting it would evict every other
 * block, then itself), b is returned as a private pinned block that its
 * release frees. Never fails: a table that cannot grow keeps its size and
 * chains get longer. */
kj_bblock *kj_bcache_insert(kj_bcache *c, uint64_t owner, uint64_t no,
                            kj_bblock *b);

/* Release one pin of b, which came from c (or was private: c NULL or of
 * capacity 0). An unpinned cached block becomes the most recently used,
 * and the cache evicts down to its capacity. */
void kj_bcache_release(kj_bcache *c, kj_bblock *b);

/* Drop every block of owner from c (a run being closed). Pinned ones leave
 * the table at once and are freed at their last release. NULL c is a
 * no-op. */
void kj_bcache_forget(kj_bcache *c, uint64_t owner);

/* The counters of c now (all zero for NULL). */
void kj_bcache_stats(kj_bcache *c, kj_bcache_counters *st);

#endif
