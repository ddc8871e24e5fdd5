/*
 * src/native/signal.c - the Signal store (keyjournal/signal.h) on the
 * journal engine: identity keys, sessions, pre-keys, signed pre-keys and
 * sender keys as rows of tables 10..14, the user records of sessions and
 * sender keys in tables 15 and 16 (same keys as their rows in 11 and 14),
 * and the slot's local identity in table 17 (doc/FORMAT.md section 8).
 *
 * A session named by (name, device id) is the table-11 row at the address
 * dev|lp(name)|u32 device id, the bytes kj_address_encode() gives after
 * dev, so the sessions of one name are the rows under dev|lp(name) whose
 * key is exactly 4 bytes longer: listing and removing them is a prefix
 * scan. A user-record row exists only beside its record row: every write
 * of a record row writes or removes it, every delete removes it.
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

/* Table 10: rest: the key, 32 or 33 bytes. */
static void enc_identity(kj_wbuf *w, const uint8_t *key, size_t klen) {
  kj_w_u8(w, KJ_ROW_VERSION);
  kj_w_bytes(w, key, klen);
}

/* A public key as stored: 32 or 33 bytes. */
typedef struct pubkey {
  uint8_t k[KJ_IDENTITY_KEY_MAX];
  size_t n;
} pubkey;

/* The rest of r as a public key into *pk, written only when r is good. */
static int dec_pubkey(kj_rbuf *r, int rc, pubkey *pk) {
  size_t n;
  const uint8_t *k = nat_r_rest(r, KJ_IDENTITY_KEY_MAX, &n);
  if (!rc)
    rc = kj_r_done(r);
  if (!rc && n != KJ_IDENTITY_KEY_BYTES && n != KJ_IDENTITY_KEY_MAX)
    rc = KJ_ECORRUPT;
  if (!rc) {
    memcpy(pk->k, k, n);
    pk->n = n;
  }
  return rc;
}

/* A table-10 value into *(pubkey *)out, written only when the whole row
 * is good. */
static int dec_identity(const void *v, size_t vlen, void *out) {
  kj_rbuf r;
  int rc = nat_r_open(&r, v, vlen);
  return dec_pubkey(&r, rc, out);
}

/* Table 17: u32 registration_id, 32 private key bytes, rest: public key
 * (32 or 33 bytes). */
static void enc_local(kj_wbuf *w, const kj_local_identity *id) {
  kj_w_u8(w, KJ_ROW_VERSION);
  kj_w_u32(w, id->registration_id);
  kj_w_bytes(w, id->private_key, KJ_IDENTITY_KEY_BYTES);
  kj_w_bytes(w, id->public_key, id->public_len);
}

/* Into *(kj_local_identity *)out, written only when the whole row is
 * good. */
static int dec_local(const void *v, size_t vlen, void *out) {
  kj_rbuf r;
  int rc = nat_r_open(&r, v, vlen);
  kj_local_identity id;
  memset(&id, 0, sizeof id);
  id.registration_id = kj_r_u32(&r);
  kj_r_copy(&r, id.private_key, KJ_IDENTITY_KEY_BYTES);
  pubkey pk;
  rc = dec_pubkey(&r, rc, &pk);
  if (!rc) {
    memcpy(id.public_key, pk.k, pk.n);
    id.public_len = pk.n;
    memcpy(out, &id, sizeof id);
  }
  kj_wipe(&id, sizeof id);
  kj_wipe(&pk, sizeof pk);
  return rc;
}

/* Tables 11, 13, 14, 15, 16: rest: record. One layout, one codec. */
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

/* Encode a record row (table 13) and write it. */
static int put_record(kj_backend *b, kj_tx *t, uint32_t dev, unsigned table,
                      const kj_kbuf *k, const void *rec, size_t rlen) {
  kj_wbuf w;
  kj_w_init(&w);
  enc_record(&w, rec, rlen);
  return nat_put_row(b, t, dev, table, k, &w);
}

/* ---- records with a user record (tables 11 + 15, 14 + 16) ------------- */

/* The user-record table beside a record table. */
static unsigned user_table(unsigned table) {
  return table == NT_SESSION ? NT_SESSION_USER : NT_SENDER_USER;
}

/* In op: delete the row at k of table when it is there. A point lookup
 * first, so that the common case (no user record) writes nothing. */
static int del_if_there(nat_op *op, unsigned table, const kj_kbuf *k) {
  int rc = kj_get(op->s, op->txn, table, k->b, k->len, NULL, NULL);
  if (rc == KJ_NOTFOUND)
    return KJ_OK;
  return rc ? rc : nat_del(op, table, k);
}

/* In op: the record row at k of table, and its user record (written when
 * ulen > 0, else removed). */
static int store_rec_in(nat_op *op, unsigned table, const kj_kbuf *k,
                        const void *rec, size_t rlen, const void *urec,
                        size_t ulen) {
  kj_wbuf w;
  kj_w_init(&w);
  enc_record(&w, rec, rlen);
  int rc = nat_put_w(op, table, k, &w);
  if (!rc && ulen) {
    w.len = 0;
    enc_record(&w, urec, ulen);
    rc = nat_put_w(op, user_table(table), k, &w);
  } else if (!rc) {
    rc = del_if_there(op, user_table(table), k);
  }
  kj_w_free(&w);
  return rc;
}

static int store_row(kj_backend *b, kj_tx *t, uint32_t dev, unsigned table,
                     const kj_kbuf *k, const void *rec, size_t rlen,
                     const void *urec, size_t ulen) {
  nat_op op;
  int rc = nat_begin(b, t, NAT_WRITE, dev, &op);
  return rc ? rc
            : nat_end(&op, store_rec_in(&op, table, k, rec, rlen, urec, ulen));
}

/* In op: the record row at k and its user record. */
static int remove_in(nat_op *op, unsigned table, const kj_kbuf *k) {
  int rc = nat_del(op, table, k);
  return rc ? rc : del_if_there(op, user_table(table), k);
}

static int remove_row(kj_backend *b, kj_tx *t, uint32_t dev, unsigned table,
                      const kj_kbuf *k) {
  nat_op op;
  int rc = nat_begin(b, t, NAT_WRITE, dev, &op);
  return rc ? rc : nat_end(&op, remove_in(&op, table, k));
}

/* In op: the record at k of table and its user record (NULL, 0 if none),
 * each in its own allocation; nothing is handed out on failure. */
static int load_in(nat_op *op, unsigned table, const kj_kbuf *k, void **rec,
                   size_t *rlen, void **urec, size_t *ulen) {
  void *v, *r, *u = NULL;
  size_t vlen, rn, un = 0;
  int rc = nat_get(op, table, k, &v, &vlen);
  if (!rc)
    rc = nat_rest_in_place(v, vlen, NULL, 0, KJ_MAX_RECORD, &r, &rn);
  if (rc)
    return rc;
  rc = nat_get(op, user_table(table), k, &v, &vlen);
  if (rc == KJ_NOTFOUND)
    rc = KJ_OK;
  else if (!rc)
    rc = nat_rest_in_place(v, vlen, NULL, 0, KJ_MAX_RECORD, &u, &un);
  if (rc) {
    nat_free_wiped(r, rn);
    return rc;
  }
  *rec = r;
  *rlen = rn;
  *urec = u;
  *ulen = un;
  return KJ_OK;
}

static int load_row(kj_backend *b, kj_tx *t, unsigned table, const kj_kbuf *k,
                    void **rec, size_t *rlen, void **urec, size_t *ulen) {
  nat_op op;
  int rc = nat_begin(b, t, NAT_READ, 0, &op);
  return rc ? rc : nat_end(&op, load_in(&op, table, k, rec, rlen, urec, ulen));
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

static int nat_identity_put_key(kj_backend *b, kj_tx *t, uint32_t dev,
                                const void *addr, size_t alen,
                                const uint8_t *key, size_t klen) {
  kj_kbuf k;
  nat_key(&k, dev, addr, alen);
  kj_wbuf w;
  kj_w_init(&w);
  enc_identity(&w, key, klen);
  return nat_put_row(b, t, dev, NT_IDENTITY, &k, &w);
}

static int nat_identity_put(kj_backend *b, kj_tx *t, uint32_t dev,
                            const void *addr, size_t alen,
                            const uint8_t key[KJ_IDENTITY_KEY_BYTES]) {
  return nat_identity_put_key(b, t, dev, addr, alen, key,
                              KJ_IDENTITY_KEY_BYTES);
}

static int nat_identity_get_key(kj_backend *b, kj_tx *t, uint32_t dev,
                                const void *addr, size_t alen,
                                uint8_t key_out[KJ_IDENTITY_KEY_MAX],
                                size_t *klen) {
  kj_kbuf k;
  nat_key(&k, dev, addr, alen);
  pubkey pk;
  int rc = nat_read_row(b, t, NT_IDENTITY, &k, dec_identity, &pk);
  if (!rc) {
    memcpy(key_out, pk.k, pk.n);
    *klen = pk.n;
  }
  kj_wipe(&pk, sizeof pk);
  return rc;
}

/* A corrupt row leaves key_out alone; a 33-byte key gives its last 32
 * bytes, the key without its type byte. */
static int nat_identity_load(kj_backend *b, kj_tx *t, uint32_t dev,
                             const void *addr, size_t alen,
                             uint8_t key_out[KJ_IDENTITY_KEY_BYTES]) {
  kj_kbuf k;
  nat_key(&k, dev, addr, alen);
  pubkey pk;
  int rc = nat_read_row(b, t, NT_IDENTITY, &k, dec_identity, &pk);
  if (!rc)
    memcpy(key_out, pk.k + pk.n - KJ_IDENTITY_KEY_BYTES, KJ_IDENTITY_KEY_BYTES);
  kj_wipe(&pk, sizeof pk);
  return rc;
}

static int nat_identity_delete(kj_backend *b, kj_tx *t, uint32_t dev,
                               const void *addr, size_t alen) {
  return nat_del_id(b, t, dev, NT_IDENTITY, addr, alen);
}

/* ---- the local identity ------------------------------------------------ */

static int nat_local_identity_save(kj_backend *b, kj_tx *t, uint32_t dev,
                                   const kj_local_identity *id) {
  kj_kbuf k;
  kj_k_dev(&k, dev);
  kj_wbuf w;
  kj_w_init(&w);
  enc_local(&w, id);
  return nat_put_row(b, t, dev, NT_LOCAL_ID, &k, &w);
}

static int nat_local_identity_load(kj_backend *b, kj_tx *t, uint32_t dev,
                                   kj_local_identity *out) {
  kj_kbuf k;
  kj_k_dev(&k, dev);
  return nat_read_row(b, t, NT_LOCAL_ID, &k, dec_local, out);
}

static int nat_local_identity_delete(kj_backend *b, kj_tx *t, uint32_t dev) {
  kj_kbuf k;
  kj_k_dev(&k, dev);
  return nat_del_row(b, t, dev, NT_LOCAL_ID, &k);
}

/* ---- sessions ---------------------------------------------------------- */

/* A put has no user record: one stored by kj_session_store goes. */
static int nat_session_put(kj_backend *b, kj_tx *t, uint32_t dev,
                           const void *addr, size_t alen, const void *rec,
                           size_t rlen) {
  kj_kbuf k;
  nat_key(&k, dev, addr, alen);
  return store_row(b, t, dev, NT_SESSION, &k, rec, rlen, NULL, 0);
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

/* A well-formed pre-key row (table 12, with its flag): *has is set. */
static int dec_has_flagged(const void *v, size_t vlen, void *has) {
  int uploaded;
  const uint8_t *rec;
  size_t rlen;
  int rc = dec_record_row(v, vlen, 1, &uploaded, &rec, &rlen);
  if (!rc)
    *(int *)has = 1;
  return rc;
}

/* *has for the row at k of table, decoded by dec: a damaged row is its
 * status, never a yes. */
static int has_row(kj_backend *b, kj_tx *t, unsigned table, const kj_kbuf *k,
                   nat_dec_fn dec, int *has) {
  int rc = nat_read_row(b, t, table, k, dec, has);
  return rc == KJ_NOTFOUND ? KJ_OK : rc; /* *has is already 0 */
}

/* has checks the row is well-formed too, so it never says yes to a session
 * that get would refuse. */
static int nat_session_has(kj_backend *b, kj_tx *t, uint32_t dev,
                           const void *addr, size_t alen, int *has) {
  kj_kbuf k;
  nat_key(&k, dev, addr, alen);
  return has_row(b, t, NT_SESSION, &k, dec_has, has);
}

static int nat_session_delete(kj_backend *b, kj_tx *t, uint32_t dev,
                              const void *addr, size_t alen) {
  kj_kbuf k;
  nat_key(&k, dev, addr, alen);
  return remove_row(b, t, dev, NT_SESSION, &k);
}

/* ---- sessions by (name, device id) ------------------------------------- */

/* dev|lp(name): the prefix of every session of name. */
static void key_name(kj_kbuf *k, uint32_t dev, const void *name, size_t nlen) {
  kj_k_dev(k, dev);
  kj_k_lp(k, name, nlen);
}

/* dev|lp(name)|u32 device_id: the session of (name, device_id), which is
 * the address key of kj_address_encode(name, device_id). */
static void key_name_dev(kj_kbuf *k, uint32_t dev, const void *name,
                         size_t nlen, uint32_t device_id) {
  key_name(k, dev, name, nlen);
  kj_k_u32(k, device_id);
}

static int nat_session_store(kj_backend *b, kj_tx *t, uint32_t dev,
                             const void *name, size_t nlen, uint32_t device_id,
                             const void *rec, size_t rlen, const void *urec,
                             size_t ulen) {
  kj_kbuf k;
  key_name_dev(&k, dev, name, nlen, device_id);
  return store_row(b, t, dev, NT_SESSION, &k, rec, rlen, urec, ulen);
}

static int nat_session_load(kj_backend *b, kj_tx *t, uint32_t dev,
                            const void *name, size_t nlen, uint32_t device_id,
                            void **rec, size_t *rlen, void **urec,
                            size_t *ulen) {
  kj_kbuf k;
  key_name_dev(&k, dev, name, nlen, device_id);
  return load_row(b, t, NT_SESSION, &k, rec, rlen, urec, ulen);
}

static int nat_session_contains(kj_backend *b, kj_tx *t, uint32_t dev,
                                const void *name, size_t nlen,
                                uint32_t device_id, int *has) {
  kj_kbuf k;
  key_name_dev(&k, dev, name, nlen, device_id);
  return has_row(b, t, NT_SESSION, &k, dec_has, has);
}

static int nat_session_remove(kj_backend *b, kj_tx *t, uint32_t dev,
                              const void *name, size_t nlen,
                              uint32_t device_id) {
  kj_kbuf k;
  key_name_dev(&k, dev, name, nlen, device_id);
  return remove_row(b, t, dev, NT_SESSION, &k);
}

/* A key under the prefix of a name that is one of its sessions: exactly 4
 * bytes (the device id) past the prefix. Longer or shorter keys there are
 * sessions of other addresses (address calls), not of the name. */
static int is_name_session(size_t plen, size_t klen) {
  return klen == plen + 4;
}

typedef struct dev_acc {
  size_t plen; /* the name prefix's length */
  kj_wbuf w;   /* uint32_t device ids, host order */
  size_t n;
} dev_acc;

static int collect_dev(void *arg, const void *key, size_t klen, const void *val,
                       size_t vlen) {
  (void)val;
  (void)vlen;
  dev_acc *a = arg;
  if (!is_name_session(a->plen, klen))
    return 0;
  uint32_t id = kj_k_get_u32((const uint8_t *)key + a->plen);
  kj_w_bytes(&a->w, &id, sizeof id);
  a->n++;
  return a->w.oom ? KJ_ENOMEM : 0;
}

/* Keys of one name end in the big-endian device id, so key order is
 * numeric order, and each id is one key. */
static int nat_session_list_devices(kj_backend *b, kj_tx *t, uint32_t dev,
                                    const void *name, size_t nlen,
                                    kj_u32_list **out) {
  kj_kbuf prefix;
  key_name(&prefix, dev, name, nlen);
  dev_acc a;
  a.plen = prefix.len;
  kj_w_init(&a.w);
  a.n = 0;
  int rc = nat_scan_rows(b, t, NT_SESSION, &prefix, collect_dev, &a);
  return nat_u32_list(rc, &a.w, a.n, out);
}

static int keep_name_session(void *ctx, const uint8_t *key, size_t klen,
                             const uint8_t *val, size_t vlen) {
  (void)key;
  (void)val;
  (void)vlen;
  return is_name_session(*(const size_t *)ctx, klen);
}

/* In op: the name's sessions, then their user records. */
static int remove_all_in(nat_op *op, const kj_kbuf *prefix, uint64_t *n) {
  size_t plen = prefix->len;
  int rc = nat_del_prefix(op, NT_SESSION, prefix, keep_name_session, &plen, n);
  if (!rc)
    rc = nat_del_prefix(op, NT_SESSION_USER, prefix, keep_name_session, &plen,
                        NULL);
  return rc;
}

static int nat_session_remove_all(kj_backend *b, kj_tx *t, uint32_t dev,
                                  const void *name, size_t nlen,
                                  uint64_t *removed) {
  kj_kbuf prefix;
  key_name(&prefix, dev, name, nlen);
  uint64_t n = 0;
  nat_op op;
  int rc = nat_begin(b, t, NAT_WRITE, dev, &op);
  if (!rc)
    rc = nat_end(&op, remove_all_in(&op, &prefix, &n));
  if (!rc)
    *removed = n;
  return rc;
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

static int nat_prekey_has(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id,
                          int *has) {
  kj_kbuf k;
  key_id(&k, dev, id);
  return has_row(b, t, NT_PREKEY, &k, dec_has_flagged, has);
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

/* Table 13 rows have no flag: dec_has reads them as table 11's. */
static int nat_signed_prekey_has(kj_backend *b, kj_tx *t, uint32_t dev,
                                 uint32_t id, int *has) {
  kj_kbuf k;
  key_id(&k, dev, id);
  return has_row(b, t, NT_SIGNED_PREKEY, &k, dec_has, has);
}

/* ---- sender keys ------------------------------------------------------- */

static int nat_sender_key_put(kj_backend *b, kj_tx *t, uint32_t dev,
                              const void *name, size_t nlen, const void *rec,
                              size_t rlen) {
  kj_kbuf k;
  nat_key(&k, dev, name, nlen);
  return store_row(b, t, dev, NT_SENDER_KEY, &k, rec, rlen, NULL, 0);
}

static int nat_sender_key_store(kj_backend *b, kj_tx *t, uint32_t dev,
                                const void *name, size_t nlen, const void *rec,
                                size_t rlen, const void *urec, size_t ulen) {
  kj_kbuf k;
  nat_key(&k, dev, name, nlen);
  return store_row(b, t, dev, NT_SENDER_KEY, &k, rec, rlen, urec, ulen);
}

static int nat_sender_key_load(kj_backend *b, kj_tx *t, uint32_t dev,
                               const void *name, size_t nlen, void **rec,
                               size_t *rlen, void **urec, size_t *ulen) {
  kj_kbuf k;
  nat_key(&k, dev, name, nlen);
  return load_row(b, t, NT_SENDER_KEY, &k, rec, rlen, urec, ulen);
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
  kj_kbuf k;
  nat_key(&k, dev, name, nlen);
  return remove_row(b, t, dev, NT_SENDER_KEY, &k);
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
    .identity_put_key = nat_identity_put_key,
    .identity_get_key = nat_identity_get_key,
    .local_identity_save = nat_local_identity_save,
    .local_identity_load = nat_local_identity_load,
    .local_identity_delete = nat_local_identity_delete,
    .session_store = nat_session_store,
    .session_load = nat_session_load,
    .session_contains = nat_session_contains,
    .session_remove = nat_session_remove,
    .session_list_devices = nat_session_list_devices,
    .session_remove_all = nat_session_remove_all,
    .prekey_has = nat_prekey_has,
    .signed_prekey_has = nat_signed_prekey_has,
    .sender_key_store = nat_sender_key_store,
    .sender_key_load = nat_sender_key_load,
};
