/*
 * src/native/device.c - the device store of the native backend: slot ids
 * (table 1, "next_device_id"), slot rows and device records (table 2),
 * slot labels (table 3: label -> slot, table 4: slot|label), deleting a
 * slot with every row it owns, and the debugging copy of the whole store.
 * Byte layouts: doc/FORMAT.md section 8.
 *
 * The public layer (src/domain/device.c) has checked the arguments and answered
 * slot id 0 itself, so every id seen here is >= 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/values.h"
#include "native.h"

static const char META_NEXT_ID[] = "next_device_id";

static void meta_key(kj_kbuf *k) {
  k->len = 0;
  kj_k_raw(k, META_NEXT_ID, sizeof META_NEXT_ID - 1);
}

/* ---- slot ids --------------------------------------------------------- */

/* The id the next create hands out: 1 when the counter row is absent (no
 * slot was ever created). */
static int read_next_id(nat_op *op, uint32_t *next) {
  kj_kbuf k;
  meta_key(&k);
  void *v;
  size_t vlen;
  int rc = nat_get(op, NT_META, &k, &v, &vlen);
  if (rc == KJ_NOTFOUND) {
    *next = 1;
    return KJ_OK;
  }
  if (rc)
    return rc;
  kj_rbuf r;
  rc = nat_r_open(&r, v, vlen);
  *next = kj_r_u32(&r);
  if (!rc)
    rc = kj_r_done(&r);
  kj_free(v);
  if (!rc && *next == 0)
    rc = KJ_ECORRUPT; /* ids start at 1 */
  if (rc)
    return nat_fail(op->b, rc, "table 1: malformed next_device_id row");
  return KJ_OK;
}

/* In op: take the next slot id, create its slot row and move the counter
 * on. */
static int create_in(nat_op *op, uint32_t *id) {
  uint32_t next = 0;
  int rc = read_next_id(op, &next);
  /* The counter only grows, so an id is never handed out twice; the last
   * id is kept back so that the counter itself cannot wrap to 0. */
  if (!rc && next == UINT32_MAX)
    rc = nat_fail(op->b, KJ_ENOSPC, "kj_device_create: no slot ids left");
  if (!rc) {
    int ex = nat_slot_exists(op, next);
    if (ex < 0)
      rc = ex;
    else if (ex) /* the counter is behind an existing slot */
      rc = nat_fail(op->b, KJ_ECORRUPT,
                    "table 1: next_device_id %u names an existing slot", next);
  }
  if (!rc) {
    kj_kbuf k;
    kj_k_dev(&k, next);
    const uint8_t slot[2] = {KJ_ROW_VERSION, 0}; /* no record yet */
    rc = nat_put(op, NT_DEVICE, &k, slot, sizeof slot);
  }
  if (!rc) {
    kj_kbuf k;
    meta_key(&k);
    uint8_t v[5] = {KJ_ROW_VERSION};
    kj_put32(v + 1, next + 1);
    rc = nat_put(op, NT_META, &k, v, sizeof v);
  }
  *id = next;
  return rc;
}

static int nat_device_create(kj_backend *b, kj_tx *t, uint32_t *id) {
  nat_op op;
  uint32_t next;
  int rc = nat_begin(b, t, NAT_WRITE_ANY, 0, &op);
  if (!rc)
    rc = nat_end(&op, create_in(&op, &next));
  if (!rc)
    *id = next;
  return rc;
}

/* ---- labels ----------------------------------------------------------- */

/* A table-3 value: u32 slot id (not 0). */
static int dec_label_slot(const void *v, size_t vlen, void *out) {
  kj_rbuf r;
  int rc = nat_r_open(&r, v, vlen);
  uint32_t id = kj_r_u32(&r);
  if (!rc)
    rc = kj_r_done(&r);
  if (!rc && id == 0)
    rc = KJ_ECORRUPT;
  if (!rc)
    *(uint32_t *)out = id;
  return rc;
}

/* In op: a new slot carrying label, unless a slot carries it already. */
static int create_labeled_in(nat_op *op, const void *label, size_t llen,
                             uint32_t *id) {
  kj_kbuf lk;
  lk.len = 0;
  kj_k_raw(&lk, label, llen);
  int rc = kj_get(op->s, op->txn, NT_LABEL, lk.b, lk.len, NULL, NULL);
  if (rc == KJ_OK)
    return nat_fail(op->b, KJ_EEXIST,
                    "kj_device_create_labeled: a slot has that label");
  if (rc != KJ_NOTFOUND)
    return rc;
  rc = create_in(op, id);
  if (!rc) {
    uint8_t v[5] = {KJ_ROW_VERSION};
    kj_put32(v + 1, *id);
    rc = nat_put(op, NT_LABEL, &lk, v, sizeof v);
  }
  if (!rc) {
    kj_kbuf k;
    nat_key(&k, *id, label, llen);
    const uint8_t mark[1] = {KJ_ROW_VERSION};
    rc = nat_put(op, NT_SLOT_LABEL, &k, mark, sizeof mark);
  }
  return rc;
}

static int nat_device_create_labeled(kj_backend *b, kj_tx *t, const void *label,
                                     size_t llen, uint32_t *id) {
  nat_op op;
  uint32_t next = 0;
  int rc = nat_begin(b, t, NAT_WRITE_ANY, 0, &op);
  if (!rc)
    rc = nat_end(&op, create_labeled_in(&op, label, llen, &next));
  if (!rc)
    *id = next;
  return rc;
}

static int nat_device_find(kj_backend *b, kj_tx *t, const void *label,
                           size_t llen, uint32_t *id) {
  kj_kbuf k;
  k.len = 0;
  kj_k_raw(&k, label, llen);
  int rc = nat_read_row(b, t, NT_LABEL, &k, dec_label_slot, id);
  if (rc == KJ_ECORRUPT || rc == KJ_EFORMAT)
    nat_fail(b, rc, "table 3: malformed label row");
  return rc;
}

/* Labels of a slot collected from its table-4 keys, to delete from
 * table 3 after the scan (a scan callback must not write). */
typedef struct label_acc {
  kj_wbuf w; /* (u16 length, label)* */
} label_acc;

static int collect_label(void *arg, const void *key, size_t klen,
                         const void *val, size_t vlen) {
  (void)val;
  (void)vlen;
  label_acc *a = arg;
  if (klen <= 4 || klen - 4 > KJ_MAX_ID) /* not a label: nothing to free */
    return 0;
  size_t n = klen - 4;
  uint8_t lb[2] = {(uint8_t)(n >> 8), (uint8_t)n};
  kj_w_bytes(&a->w, lb, 2);
  kj_w_bytes(&a->w, (const uint8_t *)key + 4, n);
  return a->w.oom ? KJ_ENOMEM : 0;
}

/* In op: remove the table-3 row of slot id's label, if it has one. Read
 * from the table-4 key alone (its value is a mark), so no value can stop
 * a slot from being deleted; the table-4 row goes with the slot's other
 * rows. */
static int drop_label_in(nat_op *op, uint32_t id) {
  kj_kbuf k;
  kj_k_dev(&k, id);
  label_acc a;
  kj_w_init(&a.w);
  int rc = nat_scan(op, NT_SLOT_LABEL, &k, collect_label, &a);
  for (size_t off = 0; !rc && off < a.w.len;) {
    size_t n = (size_t)a.w.p[off] << 8 | a.w.p[off + 1];
    kj_kbuf lk;
    lk.len = 0;
    kj_k_raw(&lk, a.w.p + off + 2, n);
    rc = nat_del(op, NT_LABEL, &lk);
    off += 2 + n;
  }
  kj_w_free(&a.w);
  return rc;
}

/* ---- listing ---------------------------------------------------------- */

typedef struct id_acc {
  kj_wbuf w; /* uint32_t ids, host order */
  size_t n;
} id_acc;

static int collect_id(void *arg, const void *key, size_t klen, const void *val,
                      size_t vlen) {
  (void)val;
  (void)vlen;
  id_acc *a = arg;
  if (klen != 4)
    return KJ_ECORRUPT;
  uint32_t id = kj_k_get_u32(key);
  if (id == 0)
    return KJ_ECORRUPT;
  kj_w_bytes(&a->w, &id, sizeof id);
  a->n++;
  return a->w.oom ? KJ_ENOMEM : 0;
}

static int nat_device_list_ids(kj_backend *b, kj_tx *t, kj_u32_list **out) {
  id_acc a;
  kj_w_init(&a.w);
  a.n = 0;
  kj_kbuf all;
  all.len = 0;
  /* Keys are big-endian ids, so key order is numeric order. */
  int rc = nat_scan_rows(b, t, NT_DEVICE, &all, collect_id, &a);
  if (rc == KJ_ECORRUPT)
    nat_fail(b, rc, "table 2: malformed slot key");
  return nat_u32_list(rc, &a.w, a.n, out);
}

/* In op: *exists is whether slot id exists. */
static int exists_in(nat_op *op, uint32_t id, int *exists) {
  int ex = nat_slot_exists(op, id);
  if (ex < 0)
    return ex;
  *exists = ex;
  return KJ_OK;
}

static int nat_device_exists(kj_backend *b, kj_tx *t, uint32_t id,
                             int *exists) {
  nat_op op;
  int rc = nat_begin(b, t, NAT_READ, 0, &op);
  return rc ? rc : nat_end(&op, exists_in(&op, id, exists));
}

/* ---- the device record ------------------------------------------------ */

static void enc_opt(kj_wbuf *w, int has, const kj_blob *v) {
  kj_w_u8(w, has ? 1 : 0);
  if (has)
    kj_w_blob(w, v->p, v->len);
}

/* Table 2 value of a slot holding r. */
static void enc_record(kj_wbuf *w, const kj_device_record *r) {
  kj_w_u8(w, KJ_ROW_VERSION);
  kj_w_u8(w, 1); /* has_record */
  enc_opt(w, r->has_phone_jid, &r->phone_jid);
  enc_opt(w, r->has_lid, &r->lid);
  kj_w_u32(w, r->registration_id);
  kj_w_bytes(w, r->noise_pub, 32);
  kj_w_bytes(w, r->noise_priv, 32);
  kj_w_bytes(w, r->identity_pub, 32);
  kj_w_bytes(w, r->identity_priv, 32);
  kj_w_bytes(w, r->signed_prekey_pub, 32);
  kj_w_bytes(w, r->signed_prekey_priv, 32);
  kj_w_u32(w, r->signed_prekey_id);
  kj_w_bytes(w, r->signed_prekey_sig, 64);
  kj_w_bytes(w, r->adv_secret, 32);
  enc_opt(w, r->has_account, &r->account);
  kj_w_blob(w, r->push_name.p, r->push_name.len);
  for (int i = 0; i < 3; i++)
    kj_w_u32(w, r->app_version[i]);
  kj_w_i64(w, r->app_version_fetched_at_ms);
  enc_opt(w, r->has_edge_routing, &r->edge_routing);
  enc_opt(w, r->has_props_hash, &r->props_hash);
}

/* An optional blob; v points into the row until the record is moved into
 * its own allocation. */
static void dec_opt(kj_rbuf *r, int *has, kj_blob *v, size_t max) {
  *has = kj_r_flag(r);
  v->p = NULL;
  v->len = 0;
  if (*has)
    v->p = kj_r_blob(r, max, &v->len);
}

/* Move a blob into the data area at *d (present blobs, even empty ones,
 * get a pointer inside the allocation; absent ones stay NULL). */
static void place(int has, kj_blob *v, uint8_t **d) {
  if (!has) {
    v->p = NULL;
    v->len = 0;
    return;
  }
  if (v->len)
    memcpy(*d, v->p, v->len);
  v->p = *d;
  *d += v->len;
}

/* Decode a table-2 value: KJ_OK with *(kj_device_record **)out (one
 * allocation), KJ_NOTFOUND for a slot with no record, KJ_ECORRUPT /
 * KJ_EFORMAT. */
static int dec_record(const void *val, size_t vlen, void *out) {
  kj_rbuf r;
  int rc = nat_r_open(&r, val, vlen);
  if (rc)
    return rc;
  int has_record = kj_r_flag(&r);
  if (!has_record)
    return kj_r_done(&r) ? KJ_ECORRUPT : KJ_NOTFOUND;
  kj_device_record d;
  memset(&d, 0, sizeof d);
  dec_opt(&r, &d.has_phone_jid, &d.phone_jid, KJ_MAX_ID);
  dec_opt(&r, &d.has_lid, &d.lid, KJ_MAX_ID);
  d.registration_id = kj_r_u32(&r);
  kj_r_copy(&r, d.noise_pub, 32);
  kj_r_copy(&r, d.noise_priv, 32);
  kj_r_copy(&r, d.identity_pub, 32);
  kj_r_copy(&r, d.identity_priv, 32);
  kj_r_copy(&r, d.signed_prekey_pub, 32);
  kj_r_copy(&r, d.signed_prekey_priv, 32);
  d.signed_prekey_id = kj_r_u32(&r);
  kj_r_copy(&r, d.signed_prekey_sig, 64);
  kj_r_copy(&r, d.adv_secret, 32);
  dec_opt(&r, &d.has_account, &d.account, KJ_MAX_RECORD);
  d.push_name.p = kj_r_blob(&r, KJ_MAX_ID, &d.push_name.len);
  for (int i = 0; i < 3; i++)
    d.app_version[i] = kj_r_u32(&r);
  d.app_version_fetched_at_ms = kj_r_i64(&r);
  dec_opt(&r, &d.has_edge_routing, &d.edge_routing, KJ_MAX_ID);
  dec_opt(&r, &d.has_props_hash, &d.props_hash, KJ_MAX_ID);
  if ((rc = kj_r_done(&r)))
    return rc;

  size_t data = d.phone_jid.len + d.lid.len + d.account.len + d.push_name.len +
                d.edge_routing.len + d.props_hash.len;
  kj_device_record *o = malloc(sizeof *o + data);
  if (!o)
    return KJ_ENOMEM;
  *o = d;
  uint8_t *p = (uint8_t *)(o + 1);
  place(o->has_phone_jid, &o->phone_jid, &p);
  place(o->has_lid, &o->lid, &p);
  place(o->has_account, &o->account, &p);
  place(1, &o->push_name, &p);
  place(o->has_edge_routing, &o->edge_routing, &p);
  place(o->has_props_hash, &o->props_hash, &p);
  *(kj_device_record **)out = o;
  return KJ_OK;
}

static int nat_device_save(kj_backend *b, kj_tx *t, uint32_t id,
                           const kj_device_record *r) {
  kj_kbuf k;
  kj_k_dev(&k, id);
  kj_wbuf w;
  kj_w_init(&w);
  enc_record(&w, r);
  /* A write to slot id: KJ_NOTFOUND when there is no such slot. */
  return nat_put_row(b, t, id, NT_DEVICE, &k, &w);
}

static int nat_device_load(kj_backend *b, kj_tx *t, uint32_t id,
                           kj_device_record **out) {
  kj_kbuf k;
  kj_k_dev(&k, id);
  int rc = nat_read_row(b, t, NT_DEVICE, &k, dec_record, out);
  if (rc == KJ_ECORRUPT || rc == KJ_EFORMAT)
    nat_fail(b, rc, "table 2: malformed record of slot %u", id);
  return rc;
}

/* ---- deleting a slot -------------------------------------------------- */

/* In op: slot id's row and every row keyed under it, in one engine
 * transaction, so they go in the same commit or none of them does. An
 * absent slot is KJ_OK with nothing written. */
static int delete_in(nat_op *op, uint32_t id) {
  int rc = nat_slot_exists(op, id);
  if (rc <= 0)
    return rc;
  rc = drop_label_in(op, id);
  kj_kbuf k;
  kj_k_dev(&k, id);
  if (!rc)
    rc = nat_del(op, NT_DEVICE, &k);
  for (size_t i = 0; !rc && i < nat_slot_ntables; i++)
    rc = nat_del_prefix(op, nat_slot_tables[i], &k, NULL, NULL, NULL);
  return rc;
}

static int nat_device_delete(kj_backend *b, kj_tx *t, uint32_t id) {
  nat_op op;
  int rc = nat_begin(b, t, NAT_WRITE_ANY, 0, &op);
  return rc ? rc : nat_end(&op, delete_in(&op, id));
}

/* ---- the debugging copy ----------------------------------------------- */

/* <store>/copies/<label>: the engine writes the copy and extra.bin through
 * the store's VFS, creating copies/ when missing (it must be a real
 * directory: a symlink there could carry the copy outside the store). */
static int nat_device_snapshot_copy(kj_backend *b, kj_tx *t, const void *label,
                                    size_t llen, const void *extra, size_t elen,
                                    char **path) {
  nat_clear_msg(b); /* the one operation that needs no nat_begin */
  kj_store *s = ((nat_backend *)b)->s;
  const char *dir = kj_store_path(s);
  kj_stats st = KJ_STATS_INIT;
  int rc = kj_store_stats(s, &st);
  if (rc)
    return rc;
  /* Refused before copies/ is created: a read-only handle changes no file
   * (and the engine could not copy from it anyway). */
  if (!dir || st.memory_only || st.read_only)
    return nat_fail(b, KJ_EINVAL, "kj_device_snapshot_copy: %s store",
                    dir && !st.memory_only ? "read-only" : "memory-only");
  size_t dlen = strlen(dir);
  while (dlen > 1 && dir[dlen - 1] == '/')
    dlen--;
  char name[KJ_COPY_LABEL_MAX + 1];
  kj_v_copy_label(label, llen, name);

  size_t cap = dlen + sizeof "/copies/" + KJ_COPY_LABEL_MAX + 1;
  char *copy = malloc(cap);
  if (!copy)
    return KJ_ENOMEM;
  snprintf(copy, cap, "%.*s/copies/%s", (int)dlen, dir, name);
  /* Inside the caller's transaction, the engine copies the committed state
   * under the writer lock this thread already holds (a NULL txn would wait
   * for it forever). A failed extra.bin leaves the copy behind, as a failed
   * engine copy may: it is a debugging aid, never read by the store. */
  rc = kj_store_copy_ex(s, t ? ((nat_tx *)t)->txn : NULL, copy, extra,
                        extra ? elen : 0, KJ_COPY_PARENT);
  if (!rc && path) {
    *path = copy;
    copy = NULL;
  }
  free(copy);
  return rc;
}

const kj_device_ops nat_device_ops = {
    .device_create = nat_device_create,
    .device_list_ids = nat_device_list_ids,
    .device_exists = nat_device_exists,
    .device_save = nat_device_save,
    .device_load = nat_device_load,
    .device_delete = nat_device_delete,
    .device_snapshot_copy = nat_device_snapshot_copy,
    .device_create_labeled = nat_device_create_labeled,
    .device_find = nat_device_find,
};
