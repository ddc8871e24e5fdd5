/*
 * src/native/appsync.c - the app-state sync store (keyjournal/appsync.h)
 * on the journal engine: sync keys, the latest-key pointer, collection
 * versions and mutation MACs as rows of tables 20..23 (doc/FORMAT.md
 * section 8).
 *
 * Every row type has one encoder and one decoder here; decoders check the
 * version byte, every length against its limit and that no byte is left
 * over. Each operation runs in one engine transaction (nat_begin /
 * nat_end), so a multi-row operation is atomic and reads one state.
 */
#include <stdlib.h>
#include <string.h>

#include "native.h"

/* Memory order of names, shorter first on a common prefix: the order of
 * the map in a version row. */
static int cmp_bytes(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
  int c = memcmp(a, b, an < bn ? an : bn);
  return c ? c : (an > bn) - (an < bn);
}

/* ---- codecs ------------------------------------------------------------ */

/* Table 20: blob key_data, blob fingerprint, i64 timestamp. */
static void enc_sync_key(kj_wbuf *w, const kj_sync_key *key) {
  kj_w_u8(w, KJ_ROW_VERSION);
  kj_w_blob(w, key->key_data.p, key->key_data.len);
  kj_w_blob(w, key->fingerprint.p, key->fingerprint.len);
  kj_w_i64(w, key->timestamp);
}

/* Into one allocation (*(kj_sync_key **)out): the struct, then key_data,
 * then fingerprint. */
static int dec_sync_key(const void *v, size_t vlen, void *out) {
  kj_rbuf r;
  int rc = nat_r_open(&r, v, vlen);
  size_t kn, fn;
  const uint8_t *kd = kj_r_blob(&r, KJ_MAX_RECORD, &kn);
  const uint8_t *fp = kj_r_blob(&r, KJ_MAX_RECORD, &fn);
  int64_t ts = kj_r_i64(&r);
  if (!rc)
    rc = kj_r_done(&r);
  if (!rc && kn < 1)
    rc = KJ_ECORRUPT;
  if (rc)
    return rc;
  kj_sync_key *k = malloc(sizeof *k + kn + fn);
  if (!k)
    return KJ_ENOMEM;
  uint8_t *p = (uint8_t *)(k + 1);
  memcpy(p, kd, kn);
  if (fn)
    memcpy(p + kn, fp, fn);
  /* An empty fingerprint still points inside the allocation, so a caller
   * may memcmp it without a NULL check. */
  k->key_data = (kj_blob){p, kn};
  k->fingerprint = (kj_blob){p + kn, fn};
  k->timestamp = ts;
  *(kj_sync_key **)out = k;
  return KJ_OK;
}

/* Table 21: rest: key_id. */
static void enc_latest(kj_wbuf *w, const void *key_id, size_t idlen) {
  kj_w_u8(w, KJ_ROW_VERSION);
  kj_w_bytes(w, key_id, idlen);
}

/* Table 22: u64 version, 128 hash bytes, varint n, n x (blob name, blob
 * value) ascending by name. entries are in that order already. */
static void enc_version(kj_wbuf *w, const kj_sync_version *v,
                        const kj_sync_entry *const *entries) {
  kj_w_u8(w, KJ_ROW_VERSION);
  kj_w_u64(w, v->version);
  kj_w_bytes(w, v->hash, KJ_SYNC_HASH_BYTES);
  kj_w_varint(w, v->n);
  for (size_t i = 0; i < v->n; i++) {
    kj_w_blob(w, entries[i]->name.p, entries[i]->name.len);
    kj_w_blob(w, entries[i]->value.p, entries[i]->value.len);
  }
}

/* Two passes over the row: the first checks every entry (limits, strictly
 * ascending names, no bytes left) and adds up the sizes, the second fills
 * the one allocation: the struct, the entry array, then the bytes. Every
 * entry reads at least one byte, so a damaged count runs out of bytes in
 * the first pass, before it sizes anything. */
static int dec_version(const void *v, size_t vlen, void *out) {
  kj_rbuf r;
  int rc = nat_r_open(&r, v, vlen);
  if (rc)
    return rc;
  uint64_t version = kj_r_u64(&r);
  const uint8_t *hash = kj_r_bytes(&r, KJ_SYNC_HASH_BYTES);
  uint64_t n = kj_r_varint(&r);
  if (r.bad)
    return KJ_ECORRUPT;
  const uint8_t *body = r.p;
  size_t bytes = 0;
  const uint8_t *prev = NULL;
  size_t prevn = 0;
  for (uint64_t i = 0; i < n; i++) {
    size_t nn, vn;
    const uint8_t *name = kj_r_blob(&r, KJ_MAX_ID, &nn);
    kj_r_blob(&r, KJ_MAX_ID, &vn);
    if (r.bad || nn < 1 || (prev && cmp_bytes(prev, prevn, name, nn) >= 0))
      return KJ_ECORRUPT;
    prev = name;
    prevn = nn;
    bytes += nn + vn;
  }
  if ((rc = kj_r_done(&r)))
    return rc;

  size_t head = sizeof(kj_sync_version) + (size_t)n * sizeof(kj_sync_entry);
  kj_sync_version *sv = malloc(head + bytes);
  if (!sv)
    return KJ_ENOMEM;
  sv->version = version;
  memcpy(sv->hash, hash, KJ_SYNC_HASH_BYTES);
  sv->n = (size_t)n;
  sv->entries = (kj_sync_entry *)(sv + 1);
  uint8_t *p = (uint8_t *)sv + head;
  kj_r_init(&r, body, (size_t)(((const uint8_t *)v + vlen) - body));
  for (size_t i = 0; i < sv->n; i++) {
    kj_blob *f[2] = {&sv->entries[i].name, &sv->entries[i].value};
    for (int j = 0; j < 2; j++) {
      size_t len;
      const uint8_t *src = kj_r_blob(&r, KJ_MAX_ID, &len);
      if (len)
        memcpy(p, src, len);
      *f[j] = (kj_blob){p, len};
      p += len;
    }
  }
  *(kj_sync_version **)out = sv;
  return KJ_OK;
}

/* Table 23: u64 version, rest: value_mac. */
static void enc_mac(kj_wbuf *w, uint64_t version, const kj_blob *value_mac) {
  kj_w_u8(w, KJ_ROW_VERSION);
  kj_w_u64(w, version);
  kj_w_bytes(w, value_mac->p, value_mac->len);
}

/* ---- keys -------------------------------------------------------------- */

static void key_mac(kj_kbuf *k, uint32_t dev, const void *name, size_t nlen,
                    const void *index_mac, size_t ilen) {
  kj_k_dev(k, dev);
  kj_k_lp(k, name, nlen);
  kj_k_raw(k, index_mac, ilen);
}

/* ---- sync keys --------------------------------------------------------- */

/* In op: the key row, then the latest pointer. */
static int key_set_in(nat_op *op, uint32_t dev, const void *key_id,
                      size_t idlen, const kj_sync_key *key) {
  kj_kbuf k;
  nat_key(&k, dev, key_id, idlen);
  kj_wbuf w;
  kj_w_init(&w);
  enc_sync_key(&w, key);
  int rc = nat_put_w(op, NT_SYNC_KEY, &k, &w);
  if (!rc) {
    kj_k_dev(&k, dev);
    w.len = 0;
    enc_latest(&w, key_id, idlen);
    rc = nat_put_w(op, NT_SYNC_LATEST, &k, &w);
  }
  kj_w_free(&w);
  return rc;
}

/* The key row and the latest pointer in one transaction, so the latest key
 * is always the last one set in commit order, whatever its timestamp. */
static int nat_sync_key_set(kj_backend *b, kj_tx *t, uint32_t dev,
                            const void *key_id, size_t idlen,
                            const kj_sync_key *key) {
  nat_op op;
  int rc = nat_begin(b, t, NAT_WRITE, dev, &op);
  return rc ? rc : nat_end(&op, key_set_in(&op, dev, key_id, idlen, key));
}

static int nat_sync_key_get(kj_backend *b, kj_tx *t, uint32_t dev,
                            const void *key_id, size_t idlen,
                            kj_sync_key **out) {
  kj_kbuf k;
  nat_key(&k, dev, key_id, idlen);
  return nat_read_row(b, t, NT_SYNC_KEY, &k, dec_sync_key, out);
}

static int nat_sync_key_latest(kj_backend *b, kj_tx *t, uint32_t dev, void **id,
                               size_t *idlen) {
  kj_kbuf k;
  kj_k_dev(&k, dev);
  return nat_get_rest(b, t, NT_SYNC_LATEST, &k, NULL, 0, KJ_MAX_ID, id, idlen);
}

/* ---- collection versions ----------------------------------------------- */

static int cmp_entry(const void *x, const void *y) {
  const kj_sync_entry *a = *(const kj_sync_entry *const *)x;
  const kj_sync_entry *b = *(const kj_sync_entry *const *)y;
  return cmp_bytes(a->name.p, a->name.len, b->name.p, b->name.len);
}

/* The row holds the map sorted by name (the caller's order is free), so a
 * get returns it ascending and two equal maps are equal rows. Names are
 * unique: the public function checked that. */
static int nat_sync_version_set(kj_backend *b, kj_tx *t, uint32_t dev,
                                const void *name, size_t nlen,
                                const kj_sync_version *v) {
  const kj_sync_entry **ix = NULL;
  if (v->n) {
    ix = malloc(v->n * sizeof *ix);
    if (!ix)
      return KJ_ENOMEM;
    for (size_t i = 0; i < v->n; i++)
      ix[i] = &v->entries[i];
    qsort(ix, v->n, sizeof *ix, cmp_entry);
  }
  kj_wbuf w;
  kj_w_init(&w);
  enc_version(&w, v, ix);
  free(ix);
  kj_kbuf k;
  nat_key(&k, dev, name, nlen);
  return nat_put_row(b, t, dev, NT_SYNC_VERSION, &k, &w);
}

static int nat_sync_version_get(kj_backend *b, kj_tx *t, uint32_t dev,
                                const void *name, size_t nlen,
                                kj_sync_version **out) {
  kj_kbuf k;
  nat_key(&k, dev, name, nlen);
  int rc = nat_read_row(b, t, NT_SYNC_VERSION, &k, dec_version, out);
  if (rc != KJ_NOTFOUND)
    return rc;
  /* An unknown collection is at version 0: the zero state, not absent. */
  kj_sync_version *z = calloc(1, sizeof *z);
  if (!z)
    return KJ_ENOMEM;
  z->entries = (kj_sync_entry *)(z + 1);
  *out = z;
  return KJ_OK;
}

/* ---- mutation MACs ----------------------------------------------------- */

/* In op: every MAC, in order, so a duplicate index_mac ends with its last
 * value_mac. */
static int macs_put_in(nat_op *op, uint32_t dev, const void *name, size_t nlen,
                       uint64_t version, const kj_mutation_mac *macs,
                       size_t n) {
  kj_wbuf w;
  kj_w_init(&w);
  int rc = KJ_OK;
  for (size_t i = 0; !rc && i < n; i++) {
    kj_kbuf k;
    key_mac(&k, dev, name, nlen, macs[i].index_mac.p, macs[i].index_mac.len);
    w.len = 0;
    enc_mac(&w, version, &macs[i].value_mac);
    rc = nat_put_w(op, NT_MUTATION_MAC, &k, &w);
  }
  kj_w_free(&w);
  return rc;
}

static int nat_mutation_mac_put(kj_backend *b, kj_tx *t, uint32_t dev,
                                const void *name, size_t nlen, uint64_t version,
                                const kj_mutation_mac *macs, size_t n) {
  nat_op op;
  int rc = nat_begin(b, t, NAT_WRITE, dev, &op);
  return rc ? rc
            : nat_end(&op, macs_put_in(&op, dev, name, nlen, version, macs, n));
}

static int nat_mutation_mac_get(kj_backend *b, kj_tx *t, uint32_t dev,
                                const void *name, size_t nlen,
                                const void *index_mac, size_t ilen,
                                void **value_mac, size_t *vlen,
                                uint64_t *version) {
  kj_kbuf k;
  key_mac(&k, dev, name, nlen, index_mac, ilen);
  uint8_t ver[8];
  int rc = nat_get_rest(b, t, NT_MUTATION_MAC, &k, ver, sizeof ver, KJ_MAX_ID,
                        value_mac, vlen);
  if (!rc && version)
    *version = kj_get64(ver);
  return rc;
}

static int macs_del_in(nat_op *op, uint32_t dev, const void *name, size_t nlen,
                       const kj_blob *index_macs, size_t n) {
  int rc = KJ_OK;
  for (size_t i = 0; !rc && i < n; i++) {
    kj_kbuf k;
    key_mac(&k, dev, name, nlen, index_macs[i].p, index_macs[i].len);
    rc = nat_del(op, NT_MUTATION_MAC, &k);
  }
  return rc;
}

static int nat_mutation_mac_delete(kj_backend *b, kj_tx *t, uint32_t dev,
                                   const void *name, size_t nlen,
                                   const kj_blob *index_macs, size_t n) {
  nat_op op;
  int rc = nat_begin(b, t, NAT_WRITE, dev, &op);
  return rc ? rc
            : nat_end(&op, macs_del_in(&op, dev, name, nlen, index_macs, n));
}

const kj_appsync_ops nat_appsync_ops = {
    .sync_key_set = nat_sync_key_set,
    .sync_key_get = nat_sync_key_get,
    .sync_key_latest = nat_sync_key_latest,
    .sync_version_set = nat_sync_version_set,
    .sync_version_get = nat_sync_version_get,
    .mutation_mac_put = nat_mutation_mac_put,
    .mutation_mac_get = nat_mutation_mac_get,
    .mutation_mac_delete = nat_mutation_mac_delete,
};
