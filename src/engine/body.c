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
/* Undo bodies only (memory, never a frame): */
#define OP_TOMB 3u /* put a tombstone entry */
#define OP_DROP 4u /* remove the entry; varint: below's value length + 1 */
/* Recovery applies staged ops of a table once this many have gathered
 * (and at least as many as its rows). */
#define STAGE_BATCH 65536u

/* ---- encoding --------------------------------------------------------- */

/* The kind and size of the undo op of ws entry w (the i-th), against the
 * tables' entry c of its key. */
static unsigned undo_kind(const kj_entry *c) {
  return !c ? OP_DROP : kj_entry_tomb(c) ? OP_TOMB : OP_PUT;
}

static uint64_t below_code(const int64_t *below, uint64_t i) {
  return below && below[i] >= 0 ? (uint64_t)below[i] + 1 : 0;
}

/* The one encoder: an op for every key of ws, in ws order. tables NULL:
 * the commit, each op writing ws's own entry (a tombstone is a delete).
 * Else the undo: each op restoring the tables' entry of that key. */
static size_t encode(uint8_t *out, const kj_map *ws, kj_map *const *tables,
                     const int64_t *below) {
  uint8_t *p = out;
  *p++ = KJ_BODY_VERSION;
  p += kj_put_varint(p, kj_map_count(ws));
  kj_iter it;
  kj_iter_seek(&it, ws, NULL, 0);
  uint64_t i = 0;
  for (const kj_entry *w; (w = kj_iter_next(&it)); i++) {
    const uint8_t *k = kj_entry_key(w);
    size_t klen = kj_entry_klen(w) - 1;
    unsigned kind;
    const kj_entry *v;
    if (tables) {
      v = kj_map_get(tables[k[0]], k + 1, klen);
      kind = undo_kind(v);
    } else {
      v = kj_entry_tomb(w) ? NULL : w;
      kind = v ? OP_PUT : OP_DEL;
    }
    *p++ = (uint8_t)kind;
    *p++ = k[0];
    p += kj_put_varint(p, klen);
    memcpy(p, k + 1, klen);
    p += klen;
    if (kind == OP_PUT) {
      size_t vlen = kj_entry_vlen(v);
      p += kj_put_varint(p, vlen);
      if (vlen)
        memcpy(p, kj_entry_val(v), vlen);
      p += vlen;
    } else if (kind == OP_DROP) {
      p += kj_put_varint(p, below_code(below, i));
    }
  }
  return (size_t)(p - out);
}

size_t kj_body_encode(uint8_t *out, const kj_map *ws) {
  return encode(out, ws, NULL, NULL);
}

uint64_t kj_body_undo_len(kj_map *const *tables, const kj_map *ws,
                          const int64_t *below, uint64_t max) {
  uint64_t n = 1 + kj_varint_len(kj_map_count(ws));
  kj_iter it;
  kj_iter_seek(&it, ws, NULL, 0);
  uint64_t i = 0;
  for (const kj_entry *w; (w = kj_iter_next(&it)); i++) {
    const uint8_t *k = kj_entry_key(w);
    size_t klen = kj_entry_klen(w) - 1;
    const kj_entry *c = kj_map_get(tables[k[0]], k + 1, klen);
    unsigned kind = undo_kind(c);
    n += kj_body_op_bytes(klen, kind != OP_PUT, c ? kj_entry_vlen(c) : 0);
    if (kind == OP_DROP)
      n += kj_varint_len(below_code(below, i));
    if (n > max)
      return 0;
  }
  return n;
}

size_t kj_body_encode_undo(uint8_t *out, kj_map *const *tables,
                           const kj_map *ws, const int64_t *below) {
  return encode(out, ws, tables, below);
}

/* ---- decoding --------------------------------------------------------- */

typedef struct body_op {
  unsigned kind, table;
  const uint8_t *key, *val;
  size_t klen, vlen;
} body_op;

static int next_op(const uint8_t **p, const uint8_t *end, int mode,
                   body_op *op) {
  uint64_t klen, vlen = 0;
  if (end - *p < 2)
    return -1;
  op->kind = *(*p)++;
  op->table = *(*p)++;
  int kind_ok =
      mode == KJ_BODY_UNDO
          ? op->kind == OP_PUT || op->kind == OP_TOMB || op->kind == OP_DROP
          : op->kind == OP_PUT || op->kind == OP_DEL;
  if (!kind_ok || !kj_table_ok(op->table) || kj_get_varint(p, end, &klen) ||
      klen < 1 || klen > KJ_MAX_KEY || (uint64_t)(end - *p) < klen)
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
  } else if (op->kind == OP_DROP) {
    /* below's value length + 1, 0 for none, in vlen */
    if (kj_get_varint(p, end, &vlen) || vlen > (uint64_t)KJ_MAX_VALUE + 1)
      return -1;
  }
  op->vlen = (size_t)vlen;
  return 0;
}

/* Rows and bytes shown for one key: present, and klen + vlen. */
static void count_key(const kj_apply *a, unsigned t, size_t klen, int before,
                      size_t bvlen, int after, size_t avlen) {
  if (!a->rows)
    return;
  a->rows[t] += (uint64_t)(after - before);
  a->bytes[t] += (after ? (uint64_t)klen + avlen : 0) -
                 (before ? (uint64_t)klen + bvlen : 0);
}

/* One op in KJ_BODY_APPLY or KJ_BODY_UNDO mode (the i-th of the body). */
static int apply_op(const kj_apply *a, int mode, uint64_t i,
                    const body_op *op) {
  kj_map *m = a->tables[op->table];
  kj_map_old was;
  int rc = KJ_OK, after = 0;
  size_t avlen = 0;
  switch (op->kind) {
  case OP_PUT:
    rc = kj_map_put_old(m, op->key, op->klen, op->val, op->vlen, 0, &was);
    after = 1;
    avlen = op->vlen;
    break;
  case OP_DEL:
    if (a->may && a->may(a->arg, op->table, op->key, op->klen))
      rc = kj_map_put_old(m, op->key, op->klen, NULL, 0, 1, &was);
    else
      kj_map_del_old(m, op->key, op->klen, &was);
    break;
  case OP_TOMB:
    rc = kj_map_put_old(m, op->key, op->klen, NULL, 0, 1, &was);
    break;
  default: /* OP_DROP: what is below shows again */
    kj_map_del_old(m, op->key, op->klen, &was);
    after = op->vlen > 0;
    avlen = after ? op->vlen - 1 : 0;
    break;
  }
  if (rc)
    return rc;
  int before;
  size_t bvlen = 0;
  if (was.present) {
    before = !was.tomb;
    bvlen = was.vlen;
  } else {
    /* No entry: the lower layer shows through (an undo's key always had
     * an entry, or none below: its commit left a tombstone where the
     * lower layer may hold the key). */
    int64_t b = mode == KJ_BODY_APPLY && a->below ? a->below[i] : -1;
    before = b >= 0;
    bvlen = before ? (size_t)b : 0;
  }
  count_key(a, op->table, op->klen, before, bvlen, after, avlen);
  return KJ_OK;
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

int kj_body_apply(const kj_apply *a, int mode, const uint8_t *body, size_t len,
                  kj_errbuf *e) {
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
    if (next_op(&p, end, mode, &op))
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
    next_op(&p, end, mode, &op);
    kj_map *m = a->tables[op.table];
    a->dirty[op.table / 64] |= UINT64_C(1) << (op.table % 64);
    if (mode == KJ_BODY_STAGE) {
      /* Recovery: stage, and apply in bulk once enough has gathered (the
       * staged nodes stay within max(64k, rows) per table). A delete over
       * a lower layer that may hold the key stages a tombstone entry. */
      int tomb = op.kind != OP_DEL ? 0
                 : a->may && a->may(a->arg, op.table, op.key, op.klen)
                     ? KJ_TOMB_KEEP
                     : 1;
      if (kj_map_stage(m, op.key, op.klen, op.val, op.vlen, tomb) ||
          (kj_map_staged(m) >= STAGE_BATCH &&
           kj_map_staged(m) >= kj_map_count(m) && kj_map_apply_staged(m)))
        return kj_err(e, KJ_ENOMEM, "applying a commit: out of memory");
    } else if (apply_op(a, mode, i, &op)) {
      return kj_err(e, KJ_ENOMEM, "applying a commit: out of memory");
    }
  }
  return KJ_OK;
}
