/*
 * src/engine/body.h - the commit body: the plaintext of a commit frame
 * (internal). doc/FORMAT.md 4.3 is the specification:
 *
 *   u8 version = 1, varint op count (>= 1), then per op: u8 kind (1 = put,
 *   2 = delete), u8 table id (1..255), varint key length, key bytes, and
 *   for a put a varint value length and the value bytes.
 *
 * Ops are strictly ascending by (table, key), one per key. Commit, group
 * commit undo and recovery all go through this codec; nothing else knows
 * the layout. The codec knows tables only as an array of kj_map indexed by
 * table id, never the store handle.
 */
#ifndef KJ_BODY_H
#define KJ_BODY_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/codec.h"
#include "errbuf.h"
#include "keyjournal/store.h"
#include "map.h"

#define KJ_BODY_VERSION 1u
/* Table ids are one byte: a table array has KJ_NTABLES slots, 0 unused. */
#define KJ_NTABLES 256

static inline int kj_table_ok(unsigned table) {
  return table >= KJ_TABLE_MIN && table <= KJ_TABLE_MAX;
}

/* A write set is a kj_map keyed by the table id byte followed by the row
 * key (so it iterates in body order), with tombstones for deletes. Builds
 * that key in buf (1 + KJ_MAX_KEY bytes) and returns its length. */
static inline size_t kj_ws_key(uint8_t *buf, unsigned table, const void *key,
                               size_t klen) {
  buf[0] = (uint8_t)table;
  if (klen)
    memcpy(buf + 1, key, klen);
  return klen + 1;
}

/* Encoded size of one op: a delete (tomb) or a put of vlen bytes. */
static inline uint64_t kj_body_op_bytes(size_t klen, int tomb, size_t vlen) {
  uint64_t n = 2 + kj_varint_len(klen) + klen;
  if (!tomb)
    n += kj_varint_len(vlen) + vlen;
  return n;
}

/* Size of a body of count ops whose kj_body_op_bytes() sum to ops_bytes. */
static inline size_t kj_body_len(uint64_t count, uint64_t ops_bytes) {
  return 1 + kj_varint_len(count) + (size_t)ops_bytes;
}

/* The body of write set ws into out (kj_body_len() bytes of the write
 * set's ops); returns its length. */
size_t kj_body_encode(uint8_t *out, const kj_map *ws);

/* The undo body of ws against the committed tables (the overlay of a
 * store with a run below it): for each key of ws, what its entry in tables
 * is before ws applies - a put of its value, a tombstone, or no entry
 * ("drop", carrying what the layer below holds: below[i] for the i-th key
 * of ws, the value length or -1 for none; below NULL: none) - so applying
 * it in KJ_BODY_UNDO mode after ws's body puts the tables, and the counts,
 * back. Tombstones and drops exist only in undo bodies, which never leave
 * memory. kj_body_undo_len() is its size, or 0 when that exceeds max;
 * kj_body_encode_undo() writes it (the tables must not change in between)
 * and returns its length. */
uint64_t kj_body_undo_len(kj_map *const *tables, const kj_map *ws,
                          const int64_t *below, uint64_t max);
size_t kj_body_encode_undo(uint8_t *out, kj_map *const *tables,
                           const kj_map *ws, const int64_t *below);

/* kj_body_apply() modes. */
#define KJ_BODY_APPLY 0 /* apply each op to its table */
#define KJ_BODY_STAGE 1 /* recovery: stage the ops (kj_map_stage) */
#define KJ_BODY_UNDO 2  /* an undo body (kj_body_encode_undo) */

/* Where kj_body_apply() applies a body: one map per table id (the overlay)
 * over an optional lower layer (the store's run file). */
typedef struct kj_apply {
  kj_map *const *tables;
  uint64_t *dirty; /* bit t set for each table t changed (KJ_NTABLES bits) */
  /* The lower layer: may(arg, table, key, klen) is 1 when it may hold the
   * key (a delete then leaves a tombstone entry that hides it), 0 when it
   * surely does not (a delete removes the entry). NULL: no lower layer. */
  int (*may)(void *arg, unsigned table, const void *key, size_t klen);
  void *arg;
  /* KJ_BODY_APPLY: for the i-th op whose key has no entry in tables, the
   * value length the lower layer holds, or -1 for none. NULL: none. */
  const int64_t *below;
  /* KJ_BODY_APPLY and KJ_BODY_UNDO: the rows and key + value bytes each
   * table shows (tables over the lower layer), kept up to date op by op.
   * NULL: not counted (recovery counts once it has replayed everything). */
  uint64_t *rows, *bytes;
} kj_apply;

/* Validate the whole body, then apply it to a's tables (the caller holds
 * what keeps readers out). One decoder for commit, undo and recovery.
 * Returns KJ_OK, KJ_ECORRUPT (malformed: nothing applied) or KJ_ENOMEM
 * (partly applied). KJ_BODY_STAGE applies a table's staged ops in bulk once
 * enough have gathered; kj_body_apply_staged() applies the rest at the end
 * of recovery (KJ_OK or KJ_ENOMEM). */
int kj_body_apply(const kj_apply *a, int mode, const uint8_t *body, size_t len,
                  kj_errbuf *e);
int kj_body_apply_staged(kj_map *const *tables);

#endif
