/*
 * src/engine/bcache.c - the block cache of src/engine/bcache.h.
 *
 * A hit is one mutex, one table slot and the block's header, nothing else:
 * a warm read of a large run finds every one of those in memory that no
 * recent read touched, so each line a hit touches is a likely cache miss.
 * Hence:
 *   - the table is open addressing (linear probing, a power of two slots, at
 *     most half full), each slot the block's 64-bit hash and its pointer,
 *     four to a cache line; a deletion shifts the following slots back (no
 *     tombstones). Owner and number are compared in the block's header,
 *     which a hit touches anyway to pin it.
 *   - replacement is CLOCK: cached blocks form a ring with a hand; a hit
 *     only sets the block's `ref` bit, and eviction moves the hand, clearing
 *     bits, skipping pinned blocks, and evicting the first unpinned block
 *     whose bit is clear. (An LRU list made every hit relink two neighbours,
 *     two more misses.)
 *   - the header sits after the block's bytes in one secmem allocation,
 *     next to the block's tail, which a run reader reads first.
 * Everything is guarded by one mutex, held for O(1) expected work, plus
 * the evictions an insertion or a release makes.
 *
 * A block is in one of three states:
 *   cached:  in the table and on the ring, pinned or not;
 *   private: in no table (no cache, capacity 0, a table that could not
 *            grow, or forgotten while pinned): freed at its last release;
 *   new:     from kj_bcache_alloc(), not yet inserted.
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

#define SLOTS_MIN 64u

typedef struct slot {
  uint64_t hash;
  kj_bblock *b; /* NULL: empty */
} slot;

struct kj_bcache {
  pthread_mutex_t mu;
  size_t capacity;
  slot *slots; /* nslots, a power of two; entries <= nslots / 2 */
  size_t nslots;
  kj_bblock *hand; /* the clock hand: next block to look at, NULL if none */
  uint64_t entries, held, pinned; /* pinned: cost of pinned cached blocks */
  uint64_t hits, misses, inserts, evictions;
};

static atomic_uint_fast64_t next_owner = 1;

uint64_t kj_bcache_owner(void) {
  return (uint64_t)atomic_fetch_add(&next_owner, 1);
}

static size_t pad16(size_t n) { return (n + 15) & ~(size_t)15; }

size_t kj_bcache_cost(size_t len, size_t auxlen) {
  return pad16(len) + pad16(auxlen) + sizeof(kj_bblock) + 8 + 2 * sizeof(slot);
}

static size_t cost(const kj_bblock *b) {
  return kj_bcache_cost(b->len, b->auxlen);
}

/* Owners and block numbers are counters the engine chooses, not an
 * adversary: a strong 64-bit mix of both is enough. */
static uint64_t mix(uint64_t owner, uint64_t no) {
  uint64_t h = owner * UINT64_C(0x9E3779B97F4A7C15) + no;
  h ^= h >> 30;
  h *= UINT64_C(0xBF58476D1CE4E5B9);
  h ^= h >> 27;
  h *= UINT64_C(0x94D049BB133111EB);
  return h ^ (h >> 31);
}

int kj_bcache_new(size_t capacity, kj_bcache **out) {
  *out = NULL;
  kj_bcache *c = calloc(1, sizeof *c);
  if (!c)
    return KJ_ENOMEM;
  c->capacity = capacity;
  if (capacity) {
    c->slots = calloc(SLOTS_MIN, sizeof *c->slots);
    if (!c->slots) {
      free(c);
      return KJ_ENOMEM;
    }
    c->nslots = SLOTS_MIN;
  }
  if (pthread_mutex_init(&c->mu, NULL)) {
    free(c->slots);
    free(c);
    return KJ_ENOMEM;
  }
  *out = c;
  return KJ_OK;
}

void kj_bcache_free(kj_bcache *c) {
  if (!c)
    return;
  for (size_t i = 0; i < c->nslots; i++)
    if (c->slots[i].b)
      kj_sec_free(c->slots[i].b->data);
  free(c->slots);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

/* ---- the table (mutex held) --------------------------------------------- */

static kj_bblock *find(const kj_bcache *c, uint64_t h, uint64_t owner,
                       uint64_t no) {
  size_t mask = c->nslots - 1;
  for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
    const slot *s = &c->slots[i];
    if (!s->b)
      return NULL;
    if (s->hash == h && s->b->owner == owner && s->b->no == no)
      return s->b;
  }
}

static void slot_put(slot *slots, size_t nslots, kj_bblock *b) {
  size_t mask = nslots - 1, i = (size_t)b->hash & mask;
  while (slots[i].b)
    i = (i + 1) & mask;
  slots[i].hash = b->hash;
  slots[i].b = b;
}

/* Remove b's slot, shifting back the slots after it that may move (their
 * probe path from home passes the hole), so no probe meets a gap. */
static void slot_del(kj_bcache *c, kj_bblock *b) {
  size_t mask = c->nslots - 1, i = (size_t)b->hash & mask;
  while (c->slots[i].b != b)
    i = (i + 1) & mask;
  for (size_t j = (i + 1) & mask; c->slots[j].b; j = (j + 1) & mask) {
    size_t home = (size_t)c->slots[j].hash & mask;
    if (((i - home) & mask) < ((j - home) & mask)) {
      c->slots[i] = c->slots[j];
      i = j;
    }
  }
  c->slots[i].b = NULL;
}

/* Make room for one more entry at a load of at most a half. 0, or -1 when
 * the table is full and cannot grow. */
static int table_room(kj_bcache *c) {
  if ((c->entries + 1) * 2 <= c->nslots)
    return 0;
  size_t n = c->nslots * 2;
  slot *ns = calloc(n, sizeof *ns);
  if (!ns) /* keep the old table while a free slot is left for probes */
    return c->entries + 2 <= c->nslots ? 0 : -1;
  for (size_t i = 0; i < c->nslots; i++)
    if (c->slots[i].b)
      slot_put(ns, n, c->slots[i].b);
  free(c->slots);
  c->slots = ns;
  c->nslots = n;
  return 0;
}

/* ---- the clock ring (mutex held) ---------------------------------------- */

/* Insert b just behind the hand: the last block the hand will reach. */
static void ring_add(kj_bcache *c, kj_bblock *b) {
  if (!c->hand) {
    b->prev = b->next = b;
    c->hand = b;
    return;
  }
  b->next = c->hand;
  b->prev = c->hand->prev;
  b->prev->next = b;
  c->hand->prev = b;
}

static void ring_del(kj_bcache *c, kj_bblock *b) {
  if (b->next == b) {
    c->hand = NULL;
  } else {
    b->prev->next = b->next;
    b->next->prev = b->prev;
    if (c->hand == b)
      c->hand = b->next;
  }
  b->prev = b->next = NULL;
}

/* Take b out of the cache (table, ring, counts). */
static void uncache(kj_bcache *c, kj_bblock *b) {
  slot_del(c, b);
  ring_del(c, b);
  b->cached = 0;
  c->entries--;
  c->held -= cost(b);
}

/* Evict until held fits the capacity: the hand clears `ref` bits and skips
 * pinned blocks; two turns of the ring without an eviction mean only pinned
 * blocks (or none) are left. */
static void evict(kj_bcache *c) {
  uint64_t budget = 2 * c->entries + 1;
  while (c->held > c->capacity && c->hand && budget) {
    kj_bblock *b = c->hand;
    c->hand = b->next;
    if (b->pins) {
      budget--;
    } else if (b->ref) {
      b->ref = 0;
      budget--;
    } else {
      uncache(c, b);
      c->evictions++;
      kj_sec_free(b->data);
      budget = 2 * c->entries + 1;
    }
  }
}

/* ---- the public calls --------------------------------------------------- */

kj_bblock *kj_bcache_get(kj_bcache *c, uint64_t owner, uint64_t no) {
  if (!c)
    return NULL;
  uint64_t h = mix(owner, no);
  pthread_mutex_lock(&c->mu);
  kj_bblock *b = c->capacity ? find(c, h, owner, no) : NULL;
  if (b) {
    b->ref = 1;
    if (b->pins++ == 0)
      c->pinned += cost(b);
    c->hits++;
  } else {
    c->misses++;
  }
  pthread_mutex_unlock(&c->mu);
  return b;
}

kj_bblock *kj_bcache_alloc(size_t len, size_t auxlen) {
  if (len > SIZE_MAX / 4 || auxlen > SIZE_MAX / 4)
    return NULL;
  uint8_t *p = kj_sec_alloc(pad16(len) + pad16(auxlen) + sizeof(kj_bblock));
  if (!p)
    return NULL;
  kj_bblock *b = (kj_bblock *)(void *)(p + pad16(len) + pad16(auxlen));
  memset(b, 0, sizeof *b);
  b->data = p;
  b->len = len;
  b->aux = p + pad16(len);
  b->auxlen = auxlen;
  return b;
}

void kj_bcache_discard(kj_bblock *b) {
  if (b)
    kj_sec_free(b->data);
}

kj_bblock *kj_bcache_insert(kj_bcache *c, uint64_t owner, uint64_t no,
                            kj_bblock *b) {
  b->owner = owner;
  b->no = no;
  b->hash = mix(owner, no);
  b->pins = 1;
  b->ref = 1;
  b->cached = 0;
  /* A block larger than the whole cache is served private: admitting it
   * would evict every other block and then itself. */
  if (!c || !c->capacity || cost(b) > c->capacity)
    return b; /* private */
  pthread_mutex_lock(&c->mu);
  kj_bblock *x = find(c, b->hash, owner, no);
  if (x) { /* another reader decoded it first: share that one */
    x->ref = 1;
    if (x->pins++ == 0)
      c->pinned += cost(x);
    pthread_mutex_unlock(&c->mu);
    kj_sec_free(b->data);
    return x;
  }
  if (table_room(c)) { /* no memory for a larger table: serve it private */
    pthread_mutex_unlock(&c->mu);
    return b;
  }
  slot_put(c->slots, c->nslots, b);
  ring_add(c, b);
  b->cached = 1;
  c->entries++;
  c->inserts++;
  c->held += cost(b);
  c->pinned += cost(b);
  evict(c);
  pthread_mutex_unlock(&c->mu);
  return b;
}

void kj_bcache_release(kj_bcache *c, kj_bblock *b) {
  if (!c || !c->capacity) { /* private: the caller is its only user */
    if (--b->pins == 0)
      kj_sec_free(b->data);
    return;
  }
  pthread_mutex_lock(&c->mu);
  int drop = 0;
  if (--b->pins == 0) {
    if (b->cached) {
      c->pinned -= cost(b);
      if (c->held > c->capacity)
        evict(c);
    } else {
      drop = 1; /* private, or forgotten while pinned */
    }
  }
  pthread_mutex_unlock(&c->mu);
  if (drop)
    kj_sec_free(b->data);
}

void kj_bcache_forget(kj_bcache *c, uint64_t owner) {
  if (!c || !c->capacity)
    return;
  pthread_mutex_lock(&c->mu);
  for (size_t i = 0; i < c->nslots;) {
    kj_bblock *b = c->slots[i].b;
    if (!b || b->owner != owner) {
      i++;
      continue;
    }
    /* slot i now holds what shifted back into it, if anything: look at it
     * again before moving on. A block shifted from the table's start to its
     * end is met again there, which does no harm. */
    if (b->pins)
      c->pinned -= cost(b); /* freed at its last release */
    uncache(c, b);
    if (!b->pins)
      kj_sec_free(b->data);
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
