/*
 * src/engine/body.c - the commit body codec (src/engine/body.h).
 *
 * This file owns the byte layout of doc/FORMAT.md 4.3: one encoder, used
 * for a commit's body and for the undo body of a group commit, and one
 * decoder, kj_body_apply(), used for commits, undos and recovery alike. The
 * decoder checks the whole body (every op well formed, in strictly
 * ascending (table, key) order, no trailing bytes) before it changes
 * anything, so a malformed body is rejected with the tables untouched.
 * It depends only on map.c and the common codecs.
 */
#include "body.h"

#include "keyjournal/errors.h"

#define OP_PUT 1u
#define OP_DEL 2u
/* Recovery applies staged ops of a table once this many have gathered
 * (and at least as many as its rows). */
#define STAGE_BATCH 65536u

/* ---- encoding --------------------------------------------------------- */

/* The one encoder: an op for every key of ws, in ws order. tables NULL:
 * the commit, each op writing ws's own entry (a tombstone is a delete).
 * Else the undo: each op writing the committed row of that key in tables,
 * or deleting the key where there is none. */
static size_t encode(uint8_t *out, const kj_map *ws, kj_map *const *tables) {
  uint8_t *p = out;
  *p++ = KJ_BODY_VERSION;
  p += kj_put_varint(p, kj_map_count(ws));
  kj_iter it;
  kj_iter_seek(&it, ws, NULL, 0);
  for (const kj_entry *w; (w = kj_iter_next(&it));) {
    const uint8_t *k = kj_entry_key(w);
    size_t klen = kj_entry_klen(w) - 1;
    const kj_entry *v = tables ? kj_map_get(tables[k[0]], k + 1, klen)
                        : kj_entry_tomb(w) ? NULL
                                           : w;
    *p++ = v ? OP_PUT : OP_DEL;
    *p++ = k[0];
    p += kj_put_varint(p, klen);
    memcpy(p, k + 1, klen);
    p += klen;
    if (v) {
      size_t vlen = kj_entry_vlen(v);
      p += kj_put_varint(p, vlen);
      if (vlen)
        memcpy(p, kj_entry_val(v), vlen);
      p += vlen;
    }
  }
  return (size_t)(p - out);
}

size_t kj_body_encode(uint8_t *out, const kj_map *ws) {
  return encode(out, ws, NULL);
}

uint64_t kj_body_undo_len(kj_map *const *tables, const kj_map *ws,
                          uint64_t max) {
  uint64_t n = 1 + kj_varint_len(kj_map_count(ws));
  kj_iter it;
  kj_iter_seek(&it, ws, NULL, 0);
  for (const kj_entry *w; (w = kj_iter_next(&it));) {
    const uint8_t *k = kj_entry_key(w);
    size_t klen = kj_entry_klen(w) - 1;
    const kj_entry *c = kj_map_get(tables[k[0]], k + 1, klen);
    n += kj_body_op_bytes(klen, !c, c ? kj_entry_vlen(c) : 0);
    if (n > max)
      return 0;
  }
  return n;
}

size_t kj_body_encode_undo(uint8_t *out, kj_map *const *tables,
                           const kj_map *ws) {
  return encode(out, ws, tables);
}

/* ---- decoding --------------------------------------------------------- */

typedef struct body_op {
  unsigned kind, table;
  const uint8_t *key, *val;
  size_t klen, vlen;
} body_op;

static int next_op(const uint8_t **p, const uint8_t *end, body_op *op) {
  uint64_t klen, vlen = 0;
  if (end - *p < 2)
    return -1;
  op->kind = *(*p)++;
  op->table = *(*p)++;
  if ((op->kind != OP_PUT && op->kind != OP_DEL) || !kj_table_ok(op->table) ||
      kj_get_varint(p, end, &klen) || klen < 1 || klen > KJ_MAX_KEY ||
      (uint64_t)(end - *p) < klen)
    return -1;
  op->key = *p;
  op->klen = (size_t)klen;
  *p += klen;
  op->val = NULL;
  if (op->kind == OP_PUT) {
    if (kj_get_varint(p, end, &vlen) || vlen > KJ_MAX_VALUE ||
        (uint64_t)(end - *p) < vlen)
      return -1;
    op->val = *p;
    *p += vlen;
  }
  op->vlen = (size_t)vlen;
  return 0;
}

int kj_body_apply_staged(kj_map *const *tables) {
  int rc = KJ_OK;
  for (unsigned t = KJ_TABLE_MIN; t <= KJ_TABLE_MAX; t++) {
    if (kj_map_staged(tables[t]) && !rc)
      rc = kj_map_apply_staged(tables[t]);
    if (!rc)
      kj_map_index(tables[t]);
  }
  return rc;
}

int kj_body_apply(kj_map *const *tables, uint64_t *dirty, int mode,
                  const uint8_t *body, size_t len, kj_errbuf *e) {
  const uint8_t *end = body + len, *p = body;
  uint64_t count;
  if (len < 2 || *p++ != KJ_BODY_VERSION || kj_get_varint(&p, end, &count) ||
      count < 1)
    return kj_err(e, KJ_ECORRUPT, "malformed commit body header");
  /* Pass 1: the whole body must decode, ops strictly ascending by (table,
   * key), before anything is applied. */
  const uint8_t *ops = p;
  body_op prev = {0}, op;
  for (uint64_t i = 0; i < count; i++) {
    if (next_op(&p, end, &op))
      return kj_err(e, KJ_ECORRUPT, "malformed op %llu of commit body",
                    (unsigned long long)i);
    if (i && (op.table < prev.table ||
              (op.table == prev.table &&
               kj_key_cmp(prev.key, prev.klen, op.key, op.klen) >= 0)))
      return kj_err(e, KJ_ECORRUPT, "commit body ops out of order at %llu",
                    (unsigned long long)i);
    prev = op;
  }
  if (p != end)
    return kj_err(e, KJ_ECORRUPT, "trailing bytes after commit body");
  /* Pass 2: apply. Only allocation can fail here. */
  p = ops;
  for (uint64_t i = 0; i < count; i++) {
    next_op(&p, end, &op);
    kj_map *m = tables[op.table];
    dirty[op.table / 64] |= UINT64_C(1) << (op.table % 64);
    if (mode == KJ_BODY_STAGE) {
      /* Recovery: stage, and apply in bulk once enough has gathered (the
       * staged nodes stay within max(64k, rows) per table). */
      if (kj_map_stage(m, op.key, op.klen, op.val, op.vlen,
                       op.kind == OP_DEL) ||
          (kj_map_staged(m) >= STAGE_BATCH &&
           kj_map_staged(m) >= kj_map_count(m) && kj_map_apply_staged(m)))
        return kj_err(e, KJ_ENOMEM, "applying a commit: out of memory");
    } else if (op.kind == OP_DEL) {
      kj_map_del(m, op.key, op.klen);
    } else if (kj_map_put(m, op.key, op.klen, op.val, op.vlen, 0)) {
      return kj_err(e, KJ_ENOMEM, "applying a commit: out of memory");
    }
  }
  return KJ_OK;
}
