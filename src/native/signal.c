/*
 * src/native/signal.c - the Signal store (keyjournal/signal.h) on the
 * journal engine: identity keys, sessions, pre-keys, signed pre-keys and
 * sender keys as rows of tables 10..14 (doc/FORMAT.md section 8).
 *
 * Every row type has one encoder and one decoder here; decoders take the
 * raw row value, check its version byte, limits and length, and never
 * trust a byte. Each operation runs in one engine transaction (nat_begin /
 * nat_end), so a multi-row operation is atomic and reads one state.
 */
#include <stdlib.h>
#include <string.h>

#include "native.h"

/* Returned by a scan callback to stop early; not a status code. */
#define SCAN_STOP 1000

/* ---- codecs ------------------------------------------------------------ */

/* Table 10: 32 key bytes. */
static void enc_identity(kj_wbuf *w, const uint8_t key[KJ_IDENTITY_KEY_BYTES]) {
  kj_w_u8(w, KJ_ROW_VERSION);
  kj_w_bytes(w, key, KJ_IDENTITY_KEY_BYTES);
}

/* key is written only when the whole row is good. */
static int dec_identity(const void *v, size_t vlen, void *key) {
  kj_rbuf r;
  int rc = nat_r_open(&r, v, vlen);
  const uint8_t *k = kj_r_bytes(&r, KJ_IDENTITY_KEY_BYTES);
  if (!rc)
    rc = kj_r_done(&r);
  if (!rc)
    memcpy(key, k, KJ_IDENTITY_KEY_BYTES);
  return rc;
}

/* Tables 11, 13, 14: rest: record. One layout, one codec. */
static void enc_record(kj_wbuf *w, const void *rec, size_t rlen) {
  kj_w_u8(w, KJ_ROW_VERSION);
  kj_w_bytes(w, rec, rlen);
}

/* Table 12: u8 uploaded, rest: record. */
static void enc_prekey(kj_wbuf *w, int uploaded, const void *rec, size_t rlen) {
  kj_w_u8(w, KJ_ROW_VERSION);
  kj_w_u8(w, (uint8_t)uploaded);
  kj_w_bytes(w, rec, rlen);
}

/* Both: *uploaded (0 for table 11, 13, 14 rows, which have no flag), then
 * every byte left is the record, 1..KJ_MAX_RECORD. */
static int dec_record_row(const void *v, size_t vlen, int flagged,
                          int *uploaded, const uint8_t **rec, size_t *rlen) {
  kj_rbuf r;
  int rc = nat_r_open(&r, v, vlen);
  *uploaded = flagged ? kj_r_flag(&r) : 0;
  *rec = nat_r_rest(&r, KJ_MAX_RECORD, rlen);
  return rc ? rc : kj_r_done(&r);
}

/* ---- shared row operations --------------------------------------------- */

static void key_id(kj_kbuf *k, uint32_t dev, uint32_t id) {
  kj_k_dev(k, dev);
  kj_k_u32(k, id);
}

/* Encode a record row (tables 11, 13, 14) and write it. */
static int put_record(kj_backend *b, kj_tx *t, uint32_t dev, unsigned table,
                      const kj_kbuf *k, const void *rec, size_t rlen) {
  kj_wbuf w;
  kj_w_init(&w);
  enc_record(&w, rec, rlen);
  return nat_put_row(b, t, dev, table, k, &w);
}

/* ---- pre-key lists: built in pieces, returned as one allocation -------- */

typedef struct pk_item {
  uint32_t id;
  int uploaded;
  size_t off, len; /* record bytes in the builder's wbuf */
} pk_item;

typedef struct pk_builder {
  kj_wbuf items; /* pk_item array */
  size_t n;
  kj_wbuf bytes;
} pk_builder;

static void pkb_init(pk_builder *pb) {
  kj_w_init(&pb->items);
  pb->n = 0;
  kj_w_init(&pb->bytes);
}

static void pkb_free(pk_builder *pb) {
  kj_w_free(&pb->items);
  kj_w_free(&pb->bytes);
}

static int pkb_add(pk_builder *pb, uint32_t id, int uploaded,
                   const uint8_t *rec, size_t rlen) {
  pk_item it = {id, uploaded, pb->bytes.len, rlen};
  kj_w_bytes(&pb->items, &it, sizeof it);
  pb->n++;
  kj_w_bytes(&pb->bytes, rec, rlen);
  return pb->items.oom || pb->bytes.oom ? KJ_ENOMEM : KJ_OK;
}

/* The list: header and array first, then every record's bytes, with the
 * blob pointers set inside the one allocation. */
static int pkb_finish(pk_builder *pb, kj_prekey_list **out) {
  size_t head = sizeof(kj_prekey_list) + pb->n * sizeof(kj_prekey);
  kj_prekey_list *l = malloc(head + pb->bytes.len);
  if (!l)
    return KJ_ENOMEM;
  uint8_t *bytes = (uint8_t *)l + head;
  if (pb->bytes.len)
    memcpy(bytes, pb->bytes.p, pb->bytes.len);
  l->n = pb->n;
  for (size_t i = 0; i < pb->n; i++) {
    const pk_item *it = (const pk_item *)pb->items.p + i;
    l->v[i] = (kj_prekey){it->id, it->uploaded, {bytes + it->off, it->len}};
  }
  *out = l;
  return KJ_OK;
}

/* Decode a row of table 12 (a pre-key, with its uploaded flag) or 13 (a
 * signed pre-key) into pb. */
static int pkb_add_row(pk_builder *pb, unsigned table, uint32_t id,
                       const void *v, size_t vlen) {
  int uploaded;
  const uint8_t *rec;
  size_t rlen;
  int rc = dec_record_row(v, vlen, table == NT_PREKEY, &uploaded, &rec, &rlen);
  return rc ? rc : pkb_add(pb, id, uploaded, rec, rlen);
}

/* Load one id of table (12 or 13) as a one-item list, or KJ_NOTFOUND. */
static int load_one(kj_backend *b, kj_tx *t, uint32_t dev, unsigned table,
                    uint32_t id, kj_prekey_list **out) {
  kj_kbuf k;
  key_id(&k, dev, id);
  void *v;
  size_t vlen;
  int rc = nat_get_row(b, t, table, &k, &v, &vlen);
  if (rc)
    return rc;
  pk_builder pb;
  pkb_init(&pb);
  rc = pkb_add_row(&pb, table, id, v, vlen);
  nat_free_wiped(v, vlen);
  if (!rc)
    rc = pkb_finish(&pb, out);
  pkb_free(&pb);
  return rc;
}

/* ---- identity keys ----------------------------------------------------- */

static int nat_identity_put(kj_backend *b, kj_tx *t, uint32_t dev,
                            const void *addr, size_t alen,
                            const uint8_t key[KJ_IDENTITY_KEY_BYTES]) {
  kj_kbuf k;
  nat_key(&k, dev, addr, alen);
  kj_wbuf w;
  kj_w_init(&w);
  enc_identity(&w, key);
  return nat_put_row(b, t, dev, NT_IDENTITY, &k, &w);
}

/* A corrupt row leaves key_out alone. */
static int nat_identity_load(kj_backend *b, kj_tx *t, uint32_t dev,
                             const void *addr, size_t alen,
                             uint8_t key_out[KJ_IDENTITY_KEY_BYTES]) {
  kj_kbuf k;
  nat_key(&k, dev, addr, alen);
  return nat_read_row(b, t, NT_IDENTITY, &k, dec_identity, key_out);
}

static int nat_identity_delete(kj_backend *b, kj_tx *t, uint32_t dev,
                               const void *addr, size_t alen) {
  return nat_del_id(b, t, dev, NT_IDENTITY, addr, alen);
}

/* ---- sessions ---------------------------------------------------------- */

static int nat_session_put(kj_backend *b, kj_tx *t, uint32_t dev,
                           const void *addr, size_t alen, const void *rec,
                           size_t rlen) {
  kj_kbuf k;
  nat_key(&k, dev, addr, alen);
  return put_record(b, t, dev, NT_SESSION, &k, rec, rlen);
}

static int nat_session_get(kj_backend *b, kj_tx *t, uint32_t dev,
                           const void *addr, size_t alen, void **rec,
                           size_t *rlen) {
  kj_kbuf k;
  nat_key(&k, dev, addr, alen);
  return nat_get_rest(b, t, NT_SESSION, &k, NULL, 0, KJ_MAX_RECORD, rec, rlen);
}

/* A well-formed session row: *has is set. */
static int dec_has(const void *v, size_t vlen, void *has) {
  int uploaded;
  const uint8_t *rec;
  size_t rlen;
  int rc = dec_record_row(v, vlen, 0, &uploaded, &rec, &rlen);
  if (!rc)
    *(int *)has = 1;
  return rc;
}

/* has checks the row is well-formed too, so it never says yes to a session
 * that get would refuse. */
static int nat_session_has(kj_backend *b, kj_tx *t, uint32_t dev,
                           const void *addr, size_t alen, int *has) {
  kj_kbuf k;
  nat_key(&k, dev, addr, alen);
  int rc = nat_read_row(b, t, NT_SESSION, &k, dec_has, has);
  return rc == KJ_NOTFOUND ? KJ_OK : rc; /* *has is already 0 */
}

static int nat_session_delete(kj_backend *b, kj_tx *t, uint32_t dev,
                              const void *addr, size_t alen) {
  return nat_del_id(b, t, dev, NT_SESSION, addr, alen);
}

/* ---- one-time pre-keys ------------------------------------------------- */

static int nat_prekey_store(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id,
                            const void *rec, size_t rlen, int uploaded) {
  kj_kbuf k;
  key_id(&k, dev, id);
  kj_wbuf w;
  kj_w_init(&w);
  enc_prekey(&w, uploaded, rec, rlen);
  return nat_put_row(b, t, dev, NT_PREKEY, &k, &w);
}

/* In op: every key of the batch, in order, so a duplicate id ends with its
 * last record. */
static int store_in(nat_op *op, uint32_t dev, const kj_prekey *keys, size_t n,
                    int uploaded) {
  kj_wbuf w;
  kj_w_init(&w);
  int rc = KJ_OK;
  for (size_t i = 0; !rc && i < n; i++) {
    kj_kbuf k;
    key_id(&k, dev, keys[i].id);
    w.len = 0;
    enc_prekey(&w, uploaded, keys[i].record.p, keys[i].record.len);
    rc = nat_put_w(op, NT_PREKEY, &k, &w);
  }
  kj_w_free(&w);
  return rc;
}

static int nat_prekey_store_batch(kj_backend *b, kj_tx *t, uint32_t dev,
                                  const kj_prekey *keys, size_t n,
                                  int uploaded) {
  nat_op op;
  int rc = nat_begin(b, t, NAT_WRITE, dev, &op);
  return rc ? rc : nat_end(&op, store_in(&op, dev, keys, n, uploaded));
}

static int nat_prekey_load(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id,
                           kj_prekey_list **out) {
  return load_one(b, t, dev, NT_PREKEY, id, out);
}

static int cmp_u32(const void *x, const void *y) {
  uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
  return (a > b) - (a < b);
}

/* Sort a copy of ids and drop repeats, so the result is ascending with each
 * id once whatever order the caller used. *m gets the count. */
static int sorted_ids(const uint32_t *ids, size_t n, uint32_t **out,
                      size_t *m) {
  *out = NULL;
  *m = 0;
  if (!n)
    return KJ_OK;
  uint32_t *s = malloc(n * sizeof *s);
  if (!s)
    return KJ_ENOMEM;
  memcpy(s, ids, n * sizeof *s);
  qsort(s, n, sizeof *s, cmp_u32);
  size_t j = 0;
  for (size_t i = 0; i < n; i++)
    if (!j || s[i] != s[j - 1])
      s[j++] = s[i];
  *out = s;
  *m = j;
  return KJ_OK;
}

/* In op: the rows of the ascending ids s[0..m-1] that exist, into pb. */
static int load_ids_in(nat_op *op, uint32_t dev, const uint32_t *s, size_t m,
                       pk_builder *pb) {
  int rc = KJ_OK;
  for (size_t i = 0; !rc && i < m; i++) {
    kj_kbuf k;
    key_id(&k, dev, s[i]);
    void *v;
    size_t vlen;
    rc = nat_get(op, NT_PREKEY, &k, &v, &vlen);
    if (rc == KJ_NOTFOUND) {
      rc = KJ_OK;
      continue;
    }
    if (!rc) {
      rc = pkb_add_row(pb, NT_PREKEY, s[i], v, vlen);
      nat_free_wiped(v, vlen);
    }
  }
  return rc;
}

static int nat_prekey_load_batch(kj_backend *b, kj_tx *t, uint32_t dev,
                                 const uint32_t *ids, size_t n,
                                 kj_prekey_list **out) {
  uint32_t *s;
  size_t m;
  int rc = sorted_ids(ids, n, &s, &m);
  if (rc)
    return rc;
  pk_builder pb;
  pkb_init(&pb);
  nat_op op;
  rc = nat_begin(b, t, NAT_READ, 0, &op);
  if (!rc)
    rc = nat_end(&op, load_ids_in(&op, dev, s, m, &pb));
  if (!rc)
    rc = pkb_finish(&pb, out);
  pkb_free(&pb);
  free(s);
  return rc;
}

static int nat_prekey_remove(kj_backend *b, kj_tx *t, uint32_t dev,
                             uint32_t id) {
  kj_kbuf k;
  key_id(&k, dev, id);
  return nat_del_row(b, t, dev, NT_PREKEY, &k);
}

/* Rewrite an existing pre-key row with uploaded = 1. An absent id is
 * skipped: a consumed key is never resurrected. */
static int mark_one(nat_op *op, uint32_t dev, uint32_t id) {
  kj_kbuf k;
  key_id(&k, dev, id);
  void *v;
  size_t vlen;
  int rc = nat_get(op, NT_PREKEY, &k, &v, &vlen);
  if (rc == KJ_NOTFOUND)
    return KJ_OK;
  if (rc)
    return rc;
  int uploaded;
  const uint8_t *rec;
  size_t rlen;
  rc = dec_record_row(v, vlen, 1, &uploaded, &rec, &rlen);
  if (!rc && !uploaded) {
    kj_wbuf w;
    kj_w_init(&w);
    enc_prekey(&w, 1, rec, rlen);
    rc = nat_put_w(op, NT_PREKEY, &k, &w);
    kj_w_free(&w);
  }
  nat_free_wiped(v, vlen);
  return rc;
}

/* In op: mark every id; a damaged row fails the whole call, and nat_end
 * then undoes the rows already marked, in an own transaction or
 * (savepoint) in the caller's. */
static int mark_in(nat_op *op, uint32_t dev, const uint32_t *ids, size_t n) {
  int rc = KJ_OK;
  for (size_t i = 0; !rc && i < n; i++)
    rc = mark_one(op, dev, ids[i]);
  return rc;
}

static int nat_prekey_mark_uploaded(kj_backend *b, kj_tx *t, uint32_t dev,
                                    const uint32_t *ids, size_t n) {
  nat_op op;
  int rc = nat_begin(b, t, NAT_WRITE, dev, &op);
  return rc ? rc : nat_end(&op, mark_in(&op, dev, ids, n));
}

/* The first pre-key id >= from in slot dev (*found 1), or none. */
typedef struct probe {
  uint32_t id;
  int found, bad;
} probe;

static int probe_cb(void *arg, const void *key, size_t klen, const void *val,
                    size_t vlen) {
  (void)val;
  (void)vlen;
  probe *p = arg;
  if (klen != 8)
    p->bad = 1;
  else
    p->id = kj_k_get_u32((const uint8_t *)key + 4);
  p->found = 1;
  return SCAN_STOP;
}

static int probe_from(nat_op *op, uint32_t dev, uint32_t from, probe *p) {
  kj_kbuf start, end;
  key_id(&start, dev, from);
  kj_k_dev(&end, dev + 1);
  memset(p, 0, sizeof *p);
  /* The last slot has no next prefix: then scan to the end of the table. */
  int rc =
      kj_scan_range(op->s, op->txn, NT_PREKEY, start.b, start.len,
                    dev == UINT32_MAX ? NULL : end.b, end.len, probe_cb, p);
  if (rc == SCAN_STOP)
    rc = KJ_OK;
  return !rc && p->bad ? KJ_ECORRUPT : rc;
}

/* The engine scans forwards only, so the largest id is found by binary
 * search on "is there an id >= x": at most 33 probes, each O(log n) and
 * stopping at its first row, so O(log n) overall, however many pre-keys
 * the slot holds (a plain prefix scan keeping the last key would be O(n)). */
static int max_id_in(nat_op *op, uint32_t dev, uint32_t *max_id) {
  probe p;
  int rc = probe_from(op, dev, 0, &p);
  if (rc || !p.found)
    return rc;
  /* Invariant: lo exists; no id above hi exists. */
  uint32_t lo = p.id, hi = UINT32_MAX;
  while (!rc && lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2 + 1;
    rc = probe_from(op, dev, mid, &p);
    if (!rc && p.found)
      lo = p.id;
    else
      hi = mid - 1;
  }
  if (!rc)
    *max_id = lo;
  return rc;
}

static int nat_prekey_max_id(kj_backend *b, kj_tx *t, uint32_t dev,
                             uint32_t *max_id) {
  nat_op op;
  int rc = nat_begin(b, t, NAT_READ, 0, &op);
  return rc ? rc : nat_end(&op, max_id_in(&op, dev, max_id));
}

/* ---- signed pre-keys --------------------------------------------------- */

static int nat_signed_prekey_store(kj_backend *b, kj_tx *t, uint32_t dev,
                                   uint32_t id, const void *rec, size_t rlen) {
  kj_kbuf k;
  key_id(&k, dev, id);
  return put_record(b, t, dev, NT_SIGNED_PREKEY, &k, rec, rlen);
}

static int nat_signed_prekey_load(kj_backend *b, kj_tx *t, uint32_t dev,
                                  uint32_t id, kj_prekey_list **out) {
  return load_one(b, t, dev, NT_SIGNED_PREKEY, id, out);
}

static int load_all_cb(void *arg, const void *key, size_t klen, const void *val,
                       size_t vlen) {
  if (klen != 8)
    return KJ_ECORRUPT;
  return pkb_add_row(arg, NT_SIGNED_PREKEY,
                     kj_k_get_u32((const uint8_t *)key + 4), val, vlen);
}

/* Keys are dev then the id big-endian, so key order is numeric order. */
static int nat_signed_prekey_load_all(kj_backend *b, kj_tx *t, uint32_t dev,
                                      kj_prekey_list **out) {
  kj_kbuf prefix;
  kj_k_dev(&prefix, dev);
  pk_builder pb;
  pkb_init(&pb);
  int rc = nat_scan_rows(b, t, NT_SIGNED_PREKEY, &prefix, load_all_cb, &pb);
  if (!rc)
    rc = pkb_finish(&pb, out);
  pkb_free(&pb);
  return rc;
}

static int nat_signed_prekey_remove(kj_backend *b, kj_tx *t, uint32_t dev,
                                    uint32_t id) {
  kj_kbuf k;
  key_id(&k, dev, id);
  return nat_del_row(b, t, dev, NT_SIGNED_PREKEY, &k);
}

/* ---- sender keys ------------------------------------------------------- */

static int nat_sender_key_put(kj_backend *b, kj_tx *t, uint32_t dev,
                              const void *name, size_t nlen, const void *rec,
                              size_t rlen) {
  kj_kbuf k;
  nat_key(&k, dev, name, nlen);
  return put_record(b, t, dev, NT_SENDER_KEY, &k, rec, rlen);
}

static int nat_sender_key_get(kj_backend *b, kj_tx *t, uint32_t dev,
                              const void *name, size_t nlen, void **rec,
                              size_t *rlen) {
  kj_kbuf k;
  nat_key(&k, dev, name, nlen);
  return nat_get_rest(b, t, NT_SENDER_KEY, &k, NULL, 0, KJ_MAX_RECORD, rec,
                      rlen);
}

static int nat_sender_key_delete(kj_backend *b, kj_tx *t, uint32_t dev,
                                 const void *name, size_t nlen) {
  return nat_del_id(b, t, dev, NT_SENDER_KEY, name, nlen);
}

const kj_signal_ops nat_signal_ops = {
    .identity_put = nat_identity_put,
    .identity_load = nat_identity_load,
    .identity_delete = nat_identity_delete,
    .session_put = nat_session_put,
    .session_get = nat_session_get,
    .session_has = nat_session_has,
    .session_delete = nat_session_delete,
    .prekey_store = nat_prekey_store,
    .prekey_store_batch = nat_prekey_store_batch,
    .prekey_load = nat_prekey_load,
    .prekey_load_batch = nat_prekey_load_batch,
    .prekey_remove = nat_prekey_remove,
    .prekey_mark_uploaded = nat_prekey_mark_uploaded,
    .prekey_max_id = nat_prekey_max_id,
    .signed_prekey_store = nat_signed_prekey_store,
    .signed_prekey_load = nat_signed_prekey_load,
    .signed_prekey_load_all = nat_signed_prekey_load_all,
    .signed_prekey_remove = nat_signed_prekey_remove,
    .sender_key_put = nat_sender_key_put,
    .sender_key_get = nat_sender_key_get,
    .sender_key_delete = nat_sender_key_delete,
};
