/*
 * src/engine/map.h - in-memory ordered map (internal).
 *
 * One kj_map per table holds the committed rows; a transaction's write set is
 * another kj_map whose entries may be tombstones. Keys are ordered by memcmp,
 * shorter first on a common prefix. Inserts and deletes are O(log n) (AVL
 * tree); exact lookups are O(1) expected in a map of 256 entries or more
 * (a keyed hash index beside the tree, map.c), O(log n) below; ordered
 * iteration from any lower bound is O(log n + k).
 *
 * The map owns copies of keys and values. Entry pointers returned by
 * kj_map_get()/kj_iter_next() stay valid until the entry is replaced or
 * removed, or the map is freed. Not thread-safe: callers lock.
 */
#ifndef KJ_MAP_H
#define KJ_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct kj_map kj_map;
typedef struct kj_entry kj_entry;

kj_map *kj_map_new(void);
void kj_map_free(kj_map *m);
/* Remove every entry. */
void kj_map_clear(kj_map *m);

/* Insert or replace key -> (val, tomb). tomb marks a deletion in a write
 * set (val ignored, vlen must be 0). Returns KJ_OK or KJ_ENOMEM (map
 * unchanged). */
int kj_map_put(kj_map *m, const void *key, size_t klen, const void *val,
               size_t vlen, int tomb);
/* Bulk load, for rows that arrive in increasing key order (a snapshot):
 * kj_map_append() on an empty map keeps the new entries aside in O(1)
 * each, and kj_map_seal() builds a balanced tree from them in O(n), instead
 * of n inserts with rebalancing. A key not above the last one, or a map
 * that was not empty, makes append an ordinary kj_map_put(), so any order
 * still gives the right map. Call kj_map_seal() before any lookup or
 * iteration (put and del seal first by themselves). Both return KJ_OK or
 * KJ_ENOMEM (the map unchanged). */
int kj_map_append(kj_map *m, const void *key, size_t klen, const void *val,
                  size_t vlen);
int kj_map_seal(kj_map *m);
/* Staged replay, for many puts and deletes in arbitrary key order (journal
 * recovery): kj_map_stage() records one (a put, or a delete when tomb) in
 * O(1); kj_map_apply_staged() applies every staged op as if in arrival
 * order - sorted once by key (stable), the last op of each key merged with
 * the map's entries - and rebuilds a balanced tree: O(n + s log s) with few
 * cache misses, instead of s inserts into a large tree. Staged ops are not
 * visible until applied: apply before any other use of the map (kj_map_check
 * fails meanwhile). KJ_OK or KJ_ENOMEM (nothing applied, ops kept). */
int kj_map_stage(kj_map *m, const void *key, size_t klen, const void *val,
                 size_t vlen, int tomb);
/* kj_map_stage's tomb for a delete that leaves a tombstone entry (a lower
 * layer, a run file, may hold the key) instead of removing the key. */
#define KJ_TOMB_KEEP 2
int kj_map_apply_staged(kj_map *m);
/* Build the hash index of exact lookups when the map has none and holds
 * 256 entries or more (kj_map_apply_staged leaves it unbuilt, so that a
 * recovery of many batches builds it once; a put builds it too). Without
 * memory for it, lookups walk the tree: never an error. */
void kj_map_index(kj_map *m);
/* Ops staged and not yet applied. */
size_t kj_map_staged(const kj_map *m);
/* Remove key. Returns 1 if it was present, 0 if not. */
int kj_map_del(kj_map *m, const void *key, size_t klen);
/* What a put or a delete replaced: present 0 when the key had no entry,
 * else its tomb flag and value length. */
typedef struct kj_map_old {
  int present, tomb;
  size_t vlen;
} kj_map_old;
/* kj_map_put and kj_map_del that also say what they replaced (was may be
 * NULL). */
int kj_map_put_old(kj_map *m, const void *key, size_t klen, const void *val,
                   size_t vlen, int tomb, kj_map_old *was);
int kj_map_del_old(kj_map *m, const void *key, size_t klen, kj_map_old *was);
/* Exact lookup; NULL if absent. */
const kj_entry *kj_map_get(const kj_map *m, const void *key, size_t klen);

/* Entries (tombstones included), and sum of klen+vlen of all entries. */
uint64_t kj_map_count(const kj_map *m);
uint64_t kj_map_bytes(const kj_map *m);

const void *kj_entry_key(const kj_entry *e);
size_t kj_entry_klen(const kj_entry *e);
const void *kj_entry_val(const kj_entry *e);
size_t kj_entry_vlen(const kj_entry *e);
int kj_entry_tomb(const kj_entry *e);

/* In-order iterator. Holds a path stack; no allocation. The map must not
 * be modified while an iterator over it is in use. */
#define KJ_ITER_DEPTH 64
typedef struct kj_iter {
  const void *stack[KJ_ITER_DEPTH];
  int depth;
} kj_iter;

/* Position it at the first entry with key >= (key, klen); key NULL or klen
 * 0 means the first entry. */
void kj_iter_seek(kj_iter *it, const kj_map *m, const void *key, size_t klen);
/* Return the current entry and advance; NULL when done. */
const kj_entry *kj_iter_next(kj_iter *it);

/* memcmp order, shorter first on a common prefix: <0, 0, >0. */
int kj_key_cmp(const void *a, size_t alen, const void *b, size_t blen);

/* Test aid: verify the whole tree in O(n) - key order, stored heights, AVL
 * balance, a height the iterator stack can hold, and the count and bytes
 * totals - and the hash index, when there is one: exactly the tree's
 * entries, each found from its home slot, within the load. Returns the
 * tree height (0 when empty), or -1 if anything is off. */
int kj_map_check(const kj_map *m);
/* Test aid: 1 when exact lookups go through the hash index (built once a
 * map holds 256 entries, dropped only when memory for it ran out). */
int kj_map_indexed(const kj_map *m);

#endif
