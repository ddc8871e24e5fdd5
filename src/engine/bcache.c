/*
 * src/engine/bcache.c - the block cache of src/engine/bcache.h.
 *
 * A chained hash table of blocks keyed by (owner, number), and an LRU list
 * of the cached blocks that nobody pins: a block leaves the list when it is
 * pinned and comes back at the head when its last pin is released, so the
 * tail is always the block to evict and eviction never walks past pinned
 * ones. Everything is guarded by one mutex, held for O(1) work (plus the
 * evictions an insertion or a release makes).
 *
 * A block is one secmem allocation: the kj_bblock header followed by its
 * bytes. A block is in one of three states:
 *   cached, unpinned: in the table and on the LRU list;
 *   cached, pinned:   in the table, off the list;
 *   private:          in no table (no cache, capacity 0, or forgotten
 *                     while pinned): freed at its last release.
 * A block decoded by two readers at once is inserted by the first; the
 * second copy is freed at once and its reader pins the first.
 * It depends on secmem.c only.
 */
#include "bcache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "keyjournal/errors.h"
#include "secmem.h"

/* The first table size, and the load (blocks per bucket) that doubles it. */
#define BUCKETS_MIN 64u
#define LOAD_MAX 1u

struct kj_bcache {
  pthread_mutex_t mu;
  size_t capacity;
  kj_bblock **buckets; /* nbuckets chains; a power of two */
  size_t nbuckets;
  kj_bblock *lru_head, *lru_tail; /* most recently used first */
  uint64_t entries, held, pinned; /* pinned: cost of pinned cached blocks */
  uint64_t hits, misses, inserts, evictions;
};

static atomic_uint_fast64_t next_owner = 1;

uint64_t kj_bcache_owner(void) {
  return (uint64_t)atomic_fetch_add(&next_owner, 1);
}

/* The block header, secmem's 8-byte allocation header and one table slot. */
size_t kj_bcache_cost(size_t len) {
  return len + sizeof(kj_bblock) + 8 + sizeof(kj_bblock *);
}

static size_t slot(const kj_bcache *c, uint64_t owner, uint64_t no) {
  /* Owners and block numbers are small counters chosen by the engine, not
   * by an adversary: a multiplicative mix spreads them well enough. */
  uint64_t h = owner * UINT64_C(0x9E3779B97F4A7C15) ^ no;
  h ^= h >> 29;
  h *= UINT64_C(0xBF58476D1CE4E5B9);
  h ^= h >> 32;
  return (size_t)h & (c->nbuckets - 1);
}

int kj_bcache_new(size_t capacity, kj_bcache **out) {
  *out = NULL;
  kj_bcache *c = calloc(1, sizeof *c);
  if (!c)
    return KJ_ENOMEM;
  c->capacity = capacity;
  if (capacity) {
    c->buckets = calloc(BUCKETS_MIN, sizeof *c->buckets);
    if (!c->buckets) {
      free(c);
      return KJ_ENOMEM;
    }
    c->nbuckets = BUCKETS_MIN;
  }
  if (pthread_mutex_init(&c->mu, NULL)) {
    free(c->buckets);
    free(c);
    return KJ_ENOMEM;
  }
  *out = c;
  return KJ_OK;
}

void kj_bcache_free(kj_bcache *c) {
  if (!c)
    return;
  for (size_t i = 0; i < c->nbuckets; i++)
    for (kj_bblock *b = c->buckets[i], *n; b; b = n) {
      n = b->hnext;
      kj_sec_free(b);
    }
  free(c->buckets);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

/* ---- the LRU list (mutex held) ------------------------------------------ */

static void lru_unlink(kj_bcache *c, kj_bblock *b) {
  if (b->lru_prev)
    b->lru_prev->lru_next = b->lru_next;
  else
    c->lru_head = b->lru_next;
  if (b->lru_next)
    b->lru_next->lru_prev = b->lru_prev;
  else
    c->lru_tail = b->lru_prev;
  b->lru_prev = b->lru_next = NULL;
}

static void lru_push_head(kj_bcache *c, kj_bblock *b) {
  b->lru_prev = NULL;
  b->lru_next = c->lru_head;
  if (c->lru_head)
    c->lru_head->lru_prev = b;
  else
    c->lru_tail = b;
  c->lru_head = b;
}

/* ---- the table (mutex held) --------------------------------------------- */

static void table_remove(kj_bcache *c, kj_bblock *b) {
  kj_bblock **pp = &c->buckets[slot(c, b->owner, b->no)];
  while (*pp != b)
    pp = &(*pp)->hnext;
  *pp = b->hnext;
  b->hnext = NULL;
  b->cached = 0;
  c->entries--;
  c->held -= kj_bcache_cost(b->len);
}

/* Double the table when it is loaded past LOAD_MAX; without memory for a
 * bigger one it stays as it is. */
static void table_grow(kj_bcache *c) {
  if (c->entries <= (uint64_t)c->nbuckets * LOAD_MAX)
    return;
  size_t n = c->nbuckets * 2;
  kj_bblock **nb = calloc(n, sizeof *nb);
  if (!nb)
    return;
  kj_bblock **old = c->buckets;
  size_t on = c->nbuckets;
  c->buckets = nb;
  c->nbuckets = n;
  for (size_t i = 0; i < on; i++)
    for (kj_bblock *b = old[i], *next; b; b = next) {
      next = b->hnext;
      size_t s = slot(c, b->owner, b->no);
      b->hnext = nb[s];
      nb[s] = b;
    }
  free(old);
}

/* Evict unpinned blocks, least recently used first, until held fits the
 * capacity or only pinned blocks are left. */
static void evict(kj_bcache *c) {
  while (c->held > c->capacity && c->lru_tail) {
    kj_bblock *b = c->lru_tail;
    lru_unlink(c, b);
    table_remove(c, b);
    c->evictions++;
    kj_sec_free(b);
  }
}

/* ---- the public calls --------------------------------------------------- */

kj_bblock *kj_bcache_get(kj_bcache *c, uint64_t owner, uint64_t no) {
  if (!c)
    return NULL;
  pthread_mutex_lock(&c->mu);
  if (!c->capacity) {
    c->misses++;
    pthread_mutex_unlock(&c->mu);
    return NULL;
  }
  kj_bblock *b = c->buckets[slot(c, owner, no)];
  while (b && (b->owner != owner || b->no != no))
    b = b->hnext;
  if (b) {
    if (b->pins++ == 0) {
      lru_unlink(c, b);
      c->pinned += kj_bcache_cost(b->len);
    }
    c->hits++;
  } else {
    c->misses++;
  }
  pthread_mutex_unlock(&c->mu);
  return b;
}

kj_bblock *kj_bcache_alloc(size_t len) {
  if (len > SIZE_MAX - sizeof(kj_bblock))
    return NULL;
  kj_bblock *b = kj_sec_alloc(sizeof *b + len);
  if (!b)
    return NULL;
  memset(b, 0, sizeof *b);
  b->data = (uint8_t *)(b + 1);
  b->len = len;
  return b;
}

void kj_bcache_discard(kj_bblock *b) { kj_sec_free(b); }

kj_bblock *kj_bcache_insert(kj_bcache *c, uint64_t owner, uint64_t no,
                            kj_bblock *b) {
  b->owner = owner;
  b->no = no;
  b->pins = 1;
  b->cached = 0;
  if (!c || !c->capacity)
    return b; /* private */
  pthread_mutex_lock(&c->mu);
  size_t s = slot(c, owner, no);
  kj_bblock *x = c->buckets[s];
  while (x && (x->owner != owner || x->no != no))
    x = x->hnext;
  if (x) { /* another reader decoded it first: share that one */
    if (x->pins++ == 0) {
      lru_unlink(c, x);
      c->pinned += kj_bcache_cost(x->len);
    }
    pthread_mutex_unlock(&c->mu);
    kj_sec_free(b);
    return x;
  }
  b->hnext = c->buckets[s];
  c->buckets[s] = b;
  b->cached = 1;
  c->entries++;
  c->inserts++;
  c->held += kj_bcache_cost(b->len);
  c->pinned += kj_bcache_cost(b->len);
  evict(c);
  table_grow(c);
  pthread_mutex_unlock(&c->mu);
  return b;
}

void kj_bcache_release(kj_bcache *c, kj_bblock *b) {
  if (!c || !c->capacity) { /* private: the caller is its only user */
    if (--b->pins == 0)
      kj_sec_free(b);
    return;
  }
  pthread_mutex_lock(&c->mu);
  int drop = 0;
  if (--b->pins == 0) {
    if (b->cached) {
      c->pinned -= kj_bcache_cost(b->len);
      lru_push_head(c, b);
      evict(c);
    } else {
      drop = 1; /* forgotten while pinned */
    }
  }
  pthread_mutex_unlock(&c->mu);
  if (drop)
    kj_sec_free(b);
}

void kj_bcache_forget(kj_bcache *c, uint64_t owner) {
  if (!c || !c->capacity)
    return;
  pthread_mutex_lock(&c->mu);
  for (size_t i = 0; i < c->nbuckets; i++) {
    kj_bblock **pp = &c->buckets[i];
    while (*pp) {
      kj_bblock *b = *pp;
      if (b->owner != owner) {
        pp = &b->hnext;
        continue;
      }
      *pp = b->hnext;
      b->hnext = NULL;
      b->cached = 0;
      c->entries--;
      c->held -= kj_bcache_cost(b->len);
      if (b->pins) {
        c->pinned -= kj_bcache_cost(b->len); /* freed at its release */
      } else {
        lru_unlink(c, b);
        kj_sec_free(b);
      }
    }
  }
  pthread_mutex_unlock(&c->mu);
}

void kj_bcache_stats(kj_bcache *c, kj_bcache_counters *st) {
  memset(st, 0, sizeof *st);
  if (!c)
    return;
  pthread_mutex_lock(&c->mu);
  st->capacity = c->capacity;
  st->hits = c->hits;
  st->misses = c->misses;
  st->inserts = c->inserts;
  st->evictions = c->evictions;
  st->entries = c->entries;
  st->bytes_held = c->held;
  st->bytes_pinned = c->pinned;
  pthread_mutex_unlock(&c->mu);
}
