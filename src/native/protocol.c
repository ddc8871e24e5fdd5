/*
 * src/native/protocol.c - the protocol store (keyjournal/protocol.h) on the
 * journal engine: SKDM recipients, LID mappings and their by-phone index,
 * base keys, the device registry, sender-key forget marks and
 * trusted-contact tokens, as rows of tables 30..36 (doc/FORMAT.md
 * section 8).
 *
 * Each row type has one encoder and one decoder below; decoders trust no
 * byte (KJ_ECORRUPT for anything malformed, KJ_EFORMAT for a newer version
 * byte). Every operation runs in one engine transaction (nat_begin), and
 * reads and checks everything it needs before its first write, so a failure
 * that can be foreseen leaves even a caller's transaction untouched.
 * Returned structs are one allocation: structs and arrays first (so they
 * stay aligned), then the bytes they point to.
 */
#include <stdlib.h>
#include <string.h>

#include "native.h"

/* Value of the rows that are only a key (tables 30, 32, 35). */
static const uint8_t MARK[1] = {KJ_ROW_VERSION};

/* ---- helpers ---------------------------------------------------------- */

/* Tables 30..36 by name, for the detail message of a damaged row. */
static const char *table_name(unsigned table) {
  static const char *const names[] = {
      "SKDM recipients",        "LID mappings",
      "LID by phone",           "base keys",
      "device registry",        "sender-key forget marks",
      "trusted-contact tokens",
  };
  size_t i = table - NT_SKDM;
  return i < sizeof names / sizeof names[0] ? names[i] : "?";
}

/* Name the damaged table in the backend's detail message; other statuses
 * already carry the engine's own. */
static int row_fail(kj_backend *b, int rc, unsigned table, uint32_t dev) {
  if (rc != KJ_ECORRUPT && rc != KJ_EFORMAT)
    return rc;
  return nat_fail(b, rc, "table %u (%s), slot %u: %s", table, table_name(table),
                  dev,
                  rc == KJ_EFORMAT ? "row written by a newer format version"
                                   : "malformed row");
}

static kj_blob copy_blob(uint8_t **p, const void *src, size_t n) {
  kj_blob b = {*p, n};
  if (n)
    memcpy(*p, src, n);
  *p += n;
  return b;
}

/* A decoder's input besides the row value: bytes the value does not hold
 * (the identifier that is the row's key, a value to compare with), and
 * where its result goes. */
typedef struct dec_arg {
  const void *p;
  size_t n;
  void *out;
} dec_arg;

/* A whole read of the row of table keyed dev|id, decoded by dec with
 * {id, idlen, out}; a damaged row is named in the detail message. */
static int read_by_id(kj_backend *b, kj_tx *t, uint32_t dev, unsigned table,
                      const void *id, size_t idlen, nat_dec_fn dec, void *out) {
  kj_kbuf k;
  nat_key(&k, dev, id, idlen);
  dec_arg a = {id, idlen, out};
  return row_fail(b, nat_read_row(b, t, table, &k, dec, &a), table, dev);
}

/* ---- rows of a prefix scan -------------------------------------------- */

/* The rows of a scan, copied out so that the caller may write afterwards
 * (a scan callback must not write) and build its result with its size
 * known. Each row's key loses the scanned prefix; what is left (a JID, a
 * LID, a participant) is an identifier. */
typedef struct rowset {
  kj_wbuf w;   /* (blob key tail, blob value or nothing)* */
  size_t n;    /* rows kept */
  size_t skip; /* prefix length */
  size_t tail_bytes;
  int keep_value;
  /* Check a value: 1 keep the row, 0 skip it, or a negative status. */
  int (*keep)(void *ctx, const uint8_t *v, size_t vlen);
  void *ctx;
} rowset;

static void rows_init(rowset *rs, size_t skip, int keep_value,
                      int (*keep)(void *, const uint8_t *, size_t), void *ctx) {
  memset(rs, 0, sizeof *rs);
  kj_w_init(&rs->w);
  rs->skip = skip;
  rs->keep_value = keep_value;
  rs->keep = keep;
  rs->ctx = ctx;
}

static int rows_collect(void *arg, const void *key, size_t klen,
                        const void *val, size_t vlen) {
  rowset *rs = arg;
  size_t tlen = klen - rs->skip;
  if (tlen < 1 || tlen > KJ_MAX_ID)
    return KJ_ECORRUPT;
  int k = rs->keep ? rs->keep(rs->ctx, val, vlen) : 1;
  if (k <= 0)
    return k;
  kj_w_blob(&rs->w, (const uint8_t *)key + rs->skip, tlen);
  if (rs->keep_value)
    kj_w_blob(&rs->w, val, vlen);
  rs->n++;
  rs->tail_bytes += tlen;
  return rs->w.oom ? KJ_ENOMEM : 0;
}

/* Next row of a filled rowset (its own bytes: cannot be malformed). */
static void rows_next(const rowset *rs, kj_rbuf *r, kj_blob *tail,
                      kj_blob *val) {
  tail->p = kj_r_blob(r, KJ_MAX_KEY, &tail->len);
  val->p = NULL;
  val->len = 0;
  if (rs->keep_value)
    val->p = kj_r_blob(r, KJ_MAX_VALUE, &val->len);
}

static int rows_scan(nat_op *op, unsigned table, const kj_kbuf *prefix,
                     rowset *rs) {
  return nat_scan(op, table, prefix, rows_collect, rs);
}

/* The key tails as a kj_blob_list (one allocation). */
static int rows_blob_list(const rowset *rs, kj_blob_list **out) {
  size_t head = sizeof(kj_blob_list) + rs->n * sizeof(kj_blob);
  kj_blob_list *l = malloc(head + rs->tail_bytes);
  if (!l)
    return KJ_ENOMEM;
  uint8_t *p = (uint8_t *)l + head;
  kj_rbuf r;
  kj_r_init(&r, rs->w.p, rs->w.len);
  l->n = rs->n;
  for (size_t i = 0; i < rs->n; i++) {
    kj_blob tail, val;
    rows_next(rs, &r, &tail, &val);
    l->v[i] = copy_blob(&p, tail.p, tail.len);
  }
  *out = l;
  return KJ_OK;
}

/* Delete prefix+tail for every row of rs. */
static int rows_delete(nat_op *op, unsigned table, const kj_kbuf *prefix,
                       const rowset *rs) {
  kj_rbuf r;
  kj_r_init(&r, rs->w.p, rs->w.len);
  kj_kbuf k = *prefix;
  int rc = KJ_OK;
  for (size_t i = 0; !rc && i < rs->n; i++) {
    kj_blob tail, val;
    rows_next(rs, &r, &tail, &val);
    k.len = prefix->len;
    kj_k_raw(&k, tail.p, tail.len);
    rc = nat_del(op, table, &k);
  }
  return rc;
}

/* ---- row codecs ------------------------------------------------------- */

/* Tables 30, 32, 35: the version byte and nothing else. */
static int mark_decode(const void *v, size_t n) {
  kj_rbuf r;
  int rc = nat_r_open(&r, v, n);
  return rc ? rc : kj_r_done(&r);
}

static int mark_keep(void *ctx, const uint8_t *v, size_t n) {
  (void)ctx;
  int rc = mark_decode(v, n);
  return rc ? rc : 1;
}

/* Table 31: blob phone, i64 created_at, i64 updated_at, blob source. The
 * LID is the key. */
static void lid_encode(kj_wbuf *w, const kj_lid_mapping *m) {
  kj_w_u8(w, KJ_ROW_VERSION);
  kj_w_blob(w, m->phone.p, m->phone.len);
  kj_w_i64(w, m->created_at);
  kj_w_i64(w, m->updated_at);
  kj_w_blob(w, m->source.p, m->source.len);
}

/* Fills every field but lid (zeroed: it is the key), pointing into v. */
static int lid_decode(const void *v, size_t n, kj_lid_mapping *m) {
  memset(m, 0, sizeof *m);
  kj_rbuf r;
  int rc = nat_r_open(&r, v, n);
  m->phone.p = kj_r_blob(&r, KJ_MAX_ID, &m->phone.len);
  m->created_at = kj_r_i64(&r);
  m->updated_at = kj_r_i64(&r);
  m->source.p = kj_r_blob(&r, KJ_MAX_ID, &m->source.len);
  if (!rc && m->phone.len == 0)
    rc = KJ_ECORRUPT; /* a phone is 1..KJ_MAX_ID bytes */
  return rc ? rc : kj_r_done(&r);
}

/* One allocation holding the n mappings v[] and every byte they point
 * to. */
static int lid_list_make(const kj_lid_mapping *v, size_t n,
                         kj_lid_mapping_list **out) {
  size_t head = sizeof(kj_lid_mapping_list) + n * sizeof(kj_lid_mapping);
  size_t bytes = 0;
  for (size_t i = 0; i < n; i++)
    bytes += v[i].lid.len + v[i].phone.len + v[i].source.len;
  kj_lid_mapping_list *l = malloc(head + bytes);
  if (!l)
    return KJ_ENOMEM;
  uint8_t *p = (uint8_t *)l + head;
  l->n = n;
  for (size_t i = 0; i < n; i++) {
    l->v[i] = v[i];
    l->v[i].lid = copy_blob(&p, v[i].lid.p, v[i].lid.len);
    l->v[i].phone = copy_blob(&p, v[i].phone.p, v[i].phone.len);
    l->v[i].source = copy_blob(&p, v[i].source.p, v[i].source.len);
  }
  *out = l;
  return KJ_OK;
}

/* Table 31, read by its LID (a->p): a one-mapping list. */
static int lid_make(const void *v, size_t vlen, void *arg) {
  const dec_arg *a = arg;
  kj_lid_mapping m;
  int rc = lid_decode(v, vlen, &m);
  m.lid = (kj_blob){a->p, a->n};
  return rc ? rc : lid_list_make(&m, 1, a->out);
}

/* Table 33: rest is the base key (1..KJ_MAX_ID bytes). */
static void base_key_encode(kj_wbuf *w, const void *key, size_t n) {
  kj_w_u8(w, KJ_ROW_VERSION);
  kj_w_bytes(w, key, n);
}

static int base_key_decode(const void *v, size_t n, kj_blob *key) {
  kj_rbuf r;
  int rc = nat_r_open(&r, v, n);
  key->p = nat_r_rest(&r, KJ_MAX_ID, &key->len);
  return rc ? rc : kj_r_done(&r);
}

/* Whether the stored base key is a->p (*(int *)a->out). */
static int base_key_same(const void *v, size_t vlen, void *arg) {
  const dec_arg *a = arg;
  kj_blob stored;
  int rc = base_key_decode(v, vlen, &stored);
  if (!rc)
    *(int *)a->out = stored.len == a->n && !memcmp(stored.p, a->p, a->n);
  return rc;
}

/* Table 34: i64 timestamp, opt blob phash, varint n, n x (u32 device_id,
 * u8 has_key_index, u32 key_index). An absent key_index is written as 0
 * and must read back as 0: one encoding per record. */
static void device_list_encode(kj_wbuf *w, const kj_device_list *d) {
  kj_w_u8(w, KJ_ROW_VERSION);
  kj_w_i64(w, d->timestamp);
  kj_w_u8(w, d->has_phash ? 1 : 0);
  if (d->has_phash)
    kj_w_blob(w, d->phash.p, d->phash.len);
  kj_w_varint(w, d->n);
  for (size_t i = 0; i < d->n; i++) {
    const kj_device_entry *e = &d->devices[i];
    kj_w_u32(w, e->device_id);
    kj_w_u8(w, e->has_key_index ? 1 : 0);
    kj_w_u32(w, e->has_key_index ? e->key_index : 0);
  }
}

/* Fills timestamp, has_phash, phash (pointing into v) and n, and zeroes
 * user (it is the key); the entries go to devs when it is not NULL (a
 * first call sizes the result, a second fills it). */
static int device_list_decode(const void *v, size_t len, kj_device_list *d,
                              kj_device_entry *devs) {
  memset(d, 0, sizeof *d);
  kj_rbuf r;
  int rc = nat_r_open(&r, v, len);
  if (rc)
    return rc;
  d->timestamp = kj_r_i64(&r);
  d->has_phash = kj_r_flag(&r);
  if (d->has_phash)
    d->phash.p = kj_r_blob(&r, KJ_MAX_ID, &d->phash.len);
  uint64_t n = kj_r_varint(&r);
  if (r.bad || n > KJ_MAX_DEVICES)
    return KJ_ECORRUPT;
  d->n = (size_t)n;
  for (size_t i = 0; i < d->n && !r.bad; i++) {
    kj_device_entry e;
    e.device_id = kj_r_u32(&r);
    e.has_key_index = kj_r_flag(&r);
    e.key_index = kj_r_u32(&r);
    if (!e.has_key_index && e.key_index)
      return KJ_ECORRUPT;
    if (devs)
      devs[i] = e;
  }
  return kj_r_done(&r);
}

/* Table 34, read by its user (a->p): one allocation, the struct, the
 * entries, then user and phash bytes. */
static int device_list_make(const void *v, size_t vlen, void *arg) {
  const dec_arg *a = arg;
  kj_device_list d;
  int rc = device_list_decode(v, vlen, &d, NULL);
  if (rc)
    return rc;
  size_t head = sizeof d + d.n * sizeof(kj_device_entry);
  kj_device_list *l = malloc(head + a->n + d.phash.len);
  if (!l)
    return KJ_ENOMEM;
  *l = d;
  l->devices = (kj_device_entry *)(l + 1);
  (void)device_list_decode(v, vlen, &d, l->devices); /* checked above */
  uint8_t *p = (uint8_t *)l + head;
  l->user = copy_blob(&p, a->p, a->n);
  if (d.has_phash)
    l->phash = copy_blob(&p, d.phash.p, d.phash.len);
  *(kj_device_list **)a->out = l;
  return KJ_OK;
}

/* Table 36: blob token, i64 token_ts, u8 has_sender_ts, i64 sender_ts (0
 * when absent, and must read back as 0). */
static void token_encode(kj_wbuf *w, const kj_tc_token *t) {
  kj_w_u8(w, KJ_ROW_VERSION);
  kj_w_blob(w, t->token.p, t->token.len);
  kj_w_i64(w, t->token_ts);
  kj_w_u8(w, t->has_sender_ts ? 1 : 0);
  kj_w_i64(w, t->has_sender_ts ? t->sender_ts : 0);
}

/* Fills *t, token pointing into v. */
static int token_decode(const void *v, size_t n, kj_tc_token *t) {
  kj_rbuf r;
  int rc = nat_r_open(&r, v, n);
  t->token.p = kj_r_blob(&r, KJ_MAX_RECORD, &t->token.len);
  t->token_ts = kj_r_i64(&r);
  t->has_sender_ts = kj_r_flag(&r);
  t->sender_ts = kj_r_i64(&r);
  if (!rc && (t->token.len == 0 || (!t->has_sender_ts && t->sender_ts)))
    rc = KJ_ECORRUPT;
  return rc ? rc : kj_r_done(&r);
}

/* Table 36 as one allocation: the struct, then the token bytes. */
static int token_make(const void *v, size_t vlen, void *arg) {
  const dec_arg *a = arg;
  kj_tc_token tok;
  int rc = token_decode(v, vlen, &tok);
  if (rc)
    return rc;
  kj_tc_token *o = malloc(sizeof *o + tok.token.len);
  if (!o)
    return KJ_ENOMEM;
  uint8_t *p = (uint8_t *)(o + 1);
  *o = tok;
  o->token = copy_blob(&p, tok.token.p, tok.token.len);
  *(kj_tc_token **)a->out = o;
  return KJ_OK;
}

static int token_keep(void *ctx, const uint8_t *v, size_t n) {
  (void)ctx;
  kj_tc_token t;
  int rc = token_decode(v, n, &t);
  return rc ? rc : 1;
}

/* Keep the tokens with token_ts < *ctx. */
static int token_expired(void *ctx, const uint8_t *v, size_t n) {
  kj_tc_token t;
  int rc = token_decode(v, n, &t);
  return rc ? rc : t.token_ts < *(const int64_t *)ctx;
}

/* ---- operations on key-only rows and key tails ------------------------ */

/* The key prefix dev|lp(group) of the SKDM rows (table 30) and the forget
 * marks (table 35) of one group. */
static void group_prefix(kj_kbuf *k, uint32_t dev, const void *group,
                         size_t glen) {
  kj_k_dev(k, dev);
  kj_k_lp(k, group, glen);
}

/* Add a key-only row unless it is there already: re-adding is the common
 * case (every send to a group lists its devices), and skipping it keeps
 * the journal from growing by a row per recipient per message. */
static int put_mark_once(nat_op *op, unsigned table, const kj_kbuf *k) {
  int rc = kj_get(op->s, op->txn, table, k->b, k->len, NULL, NULL);
  if (rc == KJ_NOTFOUND)
    rc = nat_put(op, table, k, MARK, sizeof MARK);
  return rc;
}

/* In op: the key-only rows prefix|tails[i] of table, in order. */
static int marks_in(nat_op *op, unsigned table, kj_kbuf *prefix,
                    const kj_blob *tails, size_t n) {
  size_t plen = prefix->len;
  int rc = KJ_OK;
  for (size_t i = 0; !rc && i < n; i++) {
    prefix->len = plen;
    kj_k_raw(prefix, tails[i].p, tails[i].len);
    rc = put_mark_once(op, table, prefix);
  }
  return rc;
}

/* A whole write of marks_in. */
static int add_marks(kj_backend *b, kj_tx *t, uint32_t dev, unsigned table,
                     kj_kbuf *prefix, const kj_blob *tails, size_t n) {
  nat_op op;
  int rc = nat_begin(b, t, NAT_WRITE, dev, &op);
  return rc ? rc : nat_end(&op, marks_in(&op, table, prefix, tails, n));
}

/* A whole read: the key tails under prefix whose value keep accepts, as a
 * kj_blob_list, ascending. */
static int list_tails(kj_backend *b, kj_tx *t, uint32_t dev, unsigned table,
                      const kj_kbuf *prefix,
                      int (*keep)(void *, const uint8_t *, size_t),
                      kj_blob_list **out) {
  rowset rs;
  rows_init(&rs, prefix->len, 0, keep, NULL);
  int rc = nat_scan_rows(b, t, table, prefix, rows_collect, &rs);
  rc = row_fail(b, rc, table, dev);
  if (!rc)
    rc = rows_blob_list(&rs, out);
  kj_w_free(&rs.w);
  return rc;
}

/* In op: delete the rows under prefix whose value keep(ctx) accepts; each
 * is read and checked before the first delete, so a damaged row fails the
 * call with nothing removed. Their key tails go to *out when out is not
 * NULL, their number to *n. */
static int take_tails(nat_op *op, uint32_t dev, unsigned table,
                      const kj_kbuf *prefix,
                      int (*keep)(void *, const uint8_t *, size_t), void *ctx,
                      kj_blob_list **out, size_t *n) {
  rowset rs;
  rows_init(&rs, prefix->len, 0, keep, ctx);
  int rc = row_fail(op->b, rows_scan(op, table, prefix, &rs), table, dev);
  if (!rc && out)
    rc = rows_blob_list(&rs, out);
  if (!rc)
    rc = rows_delete(op, table, prefix, &rs);
  *n = rs.n;
  kj_w_free(&rs.w);
  return rc;
}

/* ---- SKDM recipients (table 30) --------------------------------------- */

static int nat_skdm_get(kj_backend *b, kj_tx *t, uint32_t dev,
                        const void *group, size_t glen, kj_blob_list **out) {
  kj_kbuf k;
  group_prefix(&k, dev, group, glen);
  return list_tails(b, t, dev, NT_SKDM, &k, mark_keep, out);
}

static int nat_skdm_add(kj_backend *b, kj_tx *t, uint32_t dev,
                        const void *group, size_t glen, const kj_blob *jids,
                        size_t n) {
  kj_kbuf k;
  group_prefix(&k, dev, group, glen);
  return add_marks(b, t, dev, NT_SKDM, &k, jids, n);
}

static int nat_skdm_clear(kj_backend *b, kj_tx *t, uint32_t dev,
                          const void *group, size_t glen) {
  kj_kbuf k;
  group_prefix(&k, dev, group, glen);
  nat_op op;
  int rc = nat_begin(b, t, NAT_WRITE, dev, &op);
  return rc ? rc
            : nat_end(&op, nat_del_prefix(&op, NT_SKDM, &k, NULL, NULL, NULL));
}

/* ---- LID mappings (tables 31 and 32) ---------------------------------- */

static void lid_index_key(kj_kbuf *k, uint32_t dev, const void *phone,
                          size_t plen, const void *lid, size_t llen) {
  kj_k_dev(k, dev);
  kj_k_lp(k, phone, plen);
  kj_k_raw(k, lid, llen);
}

/* In op: the mapping row, and its index row moved to the new phone. */
static int lid_put_in(nat_op *op, uint32_t dev, const kj_lid_mapping *m) {
  kj_kbuf k, old_ix;
  old_ix.len = 0; /* no index row to move */
  nat_key(&k, dev, m->lid.p, m->lid.len);
  kj_lid_mapping row = *m;
  void *v;
  size_t vlen;
  int rc = nat_get(op, NT_LID, &k, &v, &vlen);
  if (rc == KJ_OK) {
    kj_lid_mapping old;
    rc = row_fail(op->b, lid_decode(v, vlen, &old), NT_LID, dev);
    if (!rc) {
      /* The first time a LID was seen is history, not a field to set. */
      row.created_at = old.created_at;
      if (old.phone.len != m->phone.len ||
          memcmp(old.phone.p, m->phone.p, m->phone.len))
        lid_index_key(&old_ix, dev, old.phone.p, old.phone.len, m->lid.p,
                      m->lid.len);
    }
  } else if (rc == KJ_NOTFOUND) {
    rc = KJ_OK;
  }
  kj_free(v);
  if (!rc) {
    kj_wbuf w;
    kj_w_init(&w);
    lid_encode(&w, &row);
    rc = nat_put_w(op, NT_LID, &k, &w);
    kj_w_free(&w);
  }
  if (!rc && old_ix.len)
    rc = nat_del(op, NT_LID_BY_PHONE, &old_ix);
  if (!rc) {
    lid_index_key(&k, dev, m->phone.p, m->phone.len, m->lid.p, m->lid.len);
    rc = nat_put(op, NT_LID_BY_PHONE, &k, MARK, sizeof MARK);
  }
  return rc;
}

static int nat_lid_put(kj_backend *b, kj_tx *t, uint32_t dev,
                       const kj_lid_mapping *m) {
  nat_op op;
  int rc = nat_begin(b, t, NAT_WRITE, dev, &op);
  return rc ? rc : nat_end(&op, lid_put_in(&op, dev, m));
}

static int nat_lid_get_by_lid(kj_backend *b, kj_tx *t, uint32_t dev,
                              const void *lid, size_t llen,
                              kj_lid_mapping_list **out) {
  return read_by_id(b, t, dev, NT_LID, lid, llen, lid_make, out);
}

/* In op: the mapping of phone updated last, through the index. */
static int by_phone_in(nat_op *op, uint32_t dev, const void *phone, size_t plen,
                       kj_lid_mapping_list **out) {
  kj_kbuf k;
  kj_k_dev(&k, dev);
  kj_k_lp(&k, phone, plen);
  rowset rs;
  rows_init(&rs, k.len, 0, mark_keep, NULL);
  int rc = row_fail(op->b, rows_scan(op, NT_LID_BY_PHONE, &k, &rs),
                    NT_LID_BY_PHONE, dev);
  if (!rc && rs.n == 0)
    rc = KJ_NOTFOUND;
  /* The index is ascending by LID, so keeping the first of equal
   * updated_at values is the tie rule. */
  void *best_v = NULL; /* the value buffer best points into */
  kj_lid_mapping best;
  memset(&best, 0, sizeof best);
  kj_rbuf r;
  kj_r_init(&r, rs.w.p, rs.w.len);
  for (size_t i = 0; !rc && i < rs.n; i++) {
    kj_blob lid, unused;
    rows_next(&rs, &r, &lid, &unused);
    nat_key(&k, dev, lid.p, lid.len);
    void *v;
    size_t vlen;
    kj_lid_mapping m;
    rc = nat_get(op, NT_LID, &k, &v, &vlen);
    if (rc == KJ_NOTFOUND) /* an index row with no mapping */
      rc = row_fail(op->b, KJ_ECORRUPT, NT_LID_BY_PHONE, dev);
    else if (!rc)
      rc = row_fail(op->b, lid_decode(v, vlen, &m), NT_LID, dev);
    if (!rc && (m.phone.len != plen || memcmp(m.phone.p, phone, plen)))
      rc = row_fail(op->b, KJ_ECORRUPT, NT_LID_BY_PHONE, dev);
    if (!rc && (i == 0 || m.updated_at > best.updated_at)) {
      kj_free(best_v);
      best_v = v;
      best = m;
      best.lid = lid;
    } else {
      kj_free(v);
    }
  }
  if (!rc)
    rc = lid_list_make(&best, 1, out);
  kj_free(best_v);
  kj_w_free(&rs.w);
  return rc;
}

static int nat_lid_get_by_phone(kj_backend *b, kj_tx *t, uint32_t dev,
                                const void *phone, size_t plen,
                                kj_lid_mapping_list **out) {
  nat_op op;
  int rc = nat_begin(b, t, NAT_READ, 0, &op);
  return rc ? rc : nat_end(&op, by_phone_in(&op, dev, phone, plen, out));
}

static int nat_lid_get_all(kj_backend *b, kj_tx *t, uint32_t dev,
                           kj_lid_mapping_list **out) {
  kj_kbuf k;
  kj_k_dev(&k, dev);
  rowset rs;
  rows_init(&rs, k.len, 1, NULL, NULL);
  int rc = nat_scan_rows(b, t, NT_LID, &k, rows_collect, &rs);
  kj_lid_mapping *v = NULL;
  if (!rc && rs.n && !(v = malloc(rs.n * sizeof *v)))
    rc = KJ_ENOMEM;
  kj_rbuf r;
  kj_r_init(&r, rs.w.p, rs.w.len);
  for (size_t i = 0; !rc && i < rs.n; i++) {
    kj_blob lid, val;
    rows_next(&rs, &r, &lid, &val);
    rc = lid_decode(val.p, val.len, &v[i]);
    v[i].lid = lid;
  }
  rc = row_fail(b, rc, NT_LID, dev);
  if (!rc)
    rc = lid_list_make(v, rs.n, out);
  free(v);
  kj_w_free(&rs.w);
  return rc;
}

/* ---- base keys (table 33) --------------------------------------------- */

static void base_key_key(kj_kbuf *k, uint32_t dev, const void *addr,
                         size_t alen, const void *msg_id, size_t mlen) {
  kj_k_dev(k, dev);
  kj_k_lp(k, addr, alen);
  kj_k_raw(k, msg_id, mlen);
}

static int nat_base_key_save(kj_backend *b, kj_tx *t, uint32_t dev,
                             const void *addr, size_t alen, const void *msg_id,
                             size_t mlen, const void *base_key, size_t klen) {
  kj_kbuf k;
  base_key_key(&k, dev, addr, alen, msg_id, mlen);
  kj_wbuf w;
  kj_w_init(&w);
  base_key_encode(&w, base_key, klen);
  return nat_put_row(b, t, dev, NT_BASE_KEY, &k, &w);
}

static int nat_base_key_has_same(kj_backend *b, kj_tx *t, uint32_t dev,
                                 const void *addr, size_t alen,
                                 const void *msg_id, size_t mlen,
                                 const void *base_key, size_t klen, int *same) {
  kj_kbuf k;
  base_key_key(&k, dev, addr, alen, msg_id, mlen);
  dec_arg a = {base_key, klen, same};
  int rc = nat_read_row(b, t, NT_BASE_KEY, &k, base_key_same, &a);
  if (rc == KJ_NOTFOUND)
    return KJ_OK; /* no entry: not the same */
  return row_fail(b, rc, NT_BASE_KEY, dev);
}

static int nat_base_key_delete(kj_backend *b, kj_tx *t, uint32_t dev,
                               const void *addr, size_t alen,
                               const void *msg_id, size_t mlen) {
  kj_kbuf k;
  base_key_key(&k, dev, addr, alen, msg_id, mlen);
  return nat_del_row(b, t, dev, NT_BASE_KEY, &k);
}

/* ---- device registry (table 34) --------------------------------------- */

static int nat_device_list_update(kj_backend *b, kj_tx *t, uint32_t dev,
                                  const kj_device_list *r) {
  kj_kbuf k;
  nat_key(&k, dev, r->user.p, r->user.len);
  kj_wbuf w;
  kj_w_init(&w);
  device_list_encode(&w, r);
  return nat_put_row(b, t, dev, NT_DEVICE_LIST, &k, &w);
}

static int nat_device_list_get(kj_backend *b, kj_tx *t, uint32_t dev,
                               const void *user, size_t ulen,
                               kj_device_list **out) {
  return read_by_id(b, t, dev, NT_DEVICE_LIST, user, ulen, device_list_make,
                    out);
}

static int nat_device_list_delete(kj_backend *b, kj_tx *t, uint32_t dev,
                                  const void *user, size_t ulen) {
  return nat_del_id(b, t, dev, NT_DEVICE_LIST, user, ulen);
}

/* ---- sender-key forget marks (table 35) ------------------------------- */

static int nat_sender_key_mark_forget(kj_backend *b, kj_tx *t, uint32_t dev,
                                      const void *group, size_t glen,
                                      const void *participant, size_t plen) {
  kj_kbuf k;
  group_prefix(&k, dev, group, glen);
  const kj_blob p = {participant, plen};
  return add_marks(b, t, dev, NT_SK_FORGET, &k, &p, 1);
}

/* A write operation even though it returns data: the take and the removal
 * are one engine write transaction, so two consumers (which serialise on
 * the writer lock) never both get a participant. */
static int nat_sender_key_consume_forget(kj_backend *b, kj_tx *t, uint32_t dev,
                                         const void *group, size_t glen,
                                         kj_blob_list **out) {
  kj_kbuf k;
  group_prefix(&k, dev, group, glen);
  kj_blob_list *l = NULL;
  size_t n;
  nat_op op;
  int rc = nat_begin(b, t, NAT_WRITE, dev, &op);
  if (!rc)
    rc = nat_end(
        &op, take_tails(&op, dev, NT_SK_FORGET, &k, mark_keep, NULL, &l, &n));
  if (rc) {
    kj_free(l);
    l = NULL;
  }
  *out = l;
  return rc;
}

/* ---- trusted-contact tokens (table 36) -------------------------------- */

static int nat_tc_token_put(kj_backend *b, kj_tx *t, uint32_t dev,
                            const void *jid, size_t jlen,
                            const kj_tc_token *tok) {
  kj_kbuf k;
  nat_key(&k, dev, jid, jlen);
  kj_wbuf w;
  kj_w_init(&w);
  token_encode(&w, tok);
  return nat_put_row(b, t, dev, NT_TC_TOKEN, &k, &w);
}

static int nat_tc_token_get(kj_backend *b, kj_tx *t, uint32_t dev,
                            const void *jid, size_t jlen, kj_tc_token **out) {
  return read_by_id(b, t, dev, NT_TC_TOKEN, jid, jlen, token_make, out);
}

static int nat_tc_token_delete(kj_backend *b, kj_tx *t, uint32_t dev,
                               const void *jid, size_t jlen) {
  return nat_del_id(b, t, dev, NT_TC_TOKEN, jid, jlen);
}

static int nat_tc_token_all_jids(kj_backend *b, kj_tx *t, uint32_t dev,
                                 kj_blob_list **out) {
  kj_kbuf k;
  kj_k_dev(&k, dev);
  return list_tails(b, t, dev, NT_TC_TOKEN, &k, token_keep, out);
}

static int nat_tc_token_delete_expired(kj_backend *b, kj_tx *t, uint32_t dev,
                                       int64_t cutoff, uint64_t *removed) {
  kj_kbuf k;
  kj_k_dev(&k, dev);
  size_t n;
  nat_op op;
  int rc = nat_begin(b, t, NAT_WRITE, dev, &op);
  if (!rc)
    rc = nat_end(&op, take_tails(&op, dev, NT_TC_TOKEN, &k, token_expired,
                                 &cutoff, NULL, &n));
  if (!rc)
    *removed = n;
  return rc;
}

/* ---- ops table -------------------------------------------------------- */

const kj_protocol_ops nat_protocol_ops = {
    .skdm_get = nat_skdm_get,
    .skdm_add = nat_skdm_add,
    .skdm_clear = nat_skdm_clear,
    .lid_put = nat_lid_put,
    .lid_get_by_lid = nat_lid_get_by_lid,
    .lid_get_by_phone = nat_lid_get_by_phone,
    .lid_get_all = nat_lid_get_all,
    .base_key_save = nat_base_key_save,
    .base_key_has_same = nat_base_key_has_same,
    .base_key_delete = nat_base_key_delete,
    .device_list_update = nat_device_list_update,
    .device_list_get = nat_device_list_get,
    .device_list_delete = nat_device_list_delete,
    .sender_key_mark_forget = nat_sender_key_mark_forget,
    .sender_key_consume_forget = nat_sender_key_consume_forget,
    .tc_token_put = nat_tc_token_put,
    .tc_token_get = nat_tc_token_get,
    .tc_token_delete = nat_tc_token_delete,
    .tc_token_all_jids = nat_tc_token_all_jids,
    .tc_token_delete_expired = nat_tc_token_delete_expired,
};
