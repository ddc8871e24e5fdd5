/*
 * src/native/ratchet.c - the ratchet store of the native backend: one state
 * row per conversation (table 40) and one row per skipped message key
 * (table 41, keyed dev|lp(conv)|public_key|msg_num so that a conversation's
 * keys are one key prefix, ascending by (public_key, msg_num)). Byte
 * layouts: doc/FORMAT.md section 8.
 *
 * The public layer (src/domain/ratchet.c) has checked the arguments.
 */
#include <stdlib.h>
#include <string.h>

#include "common/values.h"
#include "native.h"

#define STATE_BYTES (1 + 32 + 33 + 33 + 32 + 33 + 3 * 4)
#define SKIPPED_BYTES (1 + 32 + 8)
#define SKIPPED_SUFFIX (32 + 4) /* public_key, msg_num after lp(conv) */

/* The key prefix of every skipped key of one conversation. */
static void skipped_prefix(kj_kbuf *k, uint32_t dev, const void *conv,
                           size_t clen) {
  kj_k_dev(k, dev);
  kj_k_lp(k, conv, clen);
}

static void skipped_key(kj_kbuf *k, const kj_kbuf *prefix, const uint8_t *pk,
                        uint32_t msg_num) {
  memcpy(k->b, prefix->b, prefix->len);
  k->len = prefix->len;
  kj_k_raw(k, pk, 32);
  kj_k_u32(k, msg_num); /* big-endian: key order is numeric order */
}

/* The store clock in whole seconds, rounded down (also before 1970). */
static int64_t now_secs(nat_op *op) {
  int64_t ms = nat_now_ms(op);
  return ms / 1000 - (ms % 1000 < 0);
}

/* ---- the state row ---------------------------------------------------- */

/* An optional 32-byte field: flag, then the bytes, or zeros when absent (so
 * a stale chain key never lingers in an absent slot). */
static void enc_opt32(uint8_t **p, int has, const uint8_t v[32]) {
  *(*p)++ = has ? 1 : 0;
  if (has)
    memcpy(*p, v, 32);
  else
    memset(*p, 0, 32);
  *p += 32;
}

static void enc_state(uint8_t out[STATE_BYTES], const kj_ratchet_state *s) {
  uint8_t *p = out;
  *p++ = KJ_ROW_VERSION;
  memcpy(p, s->root_key, 32);
  p += 32;
  enc_opt32(&p, s->has_sending_chain, s->sending_chain);
  enc_opt32(&p, s->has_receiving_chain, s->receiving_chain);
  memcpy(p, s->dh_self_secret, 32);
  p += 32;
  enc_opt32(&p, s->has_dh_remote, s->dh_remote);
  kj_put32(p, s->msg_send);
  kj_put32(p + 4, s->msg_recv);
  kj_put32(p + 8, s->prev_chain_len);
}

static int all_zero(const uint8_t *p, size_t n) {
  uint8_t acc = 0;
  for (size_t i = 0; i < n; i++)
    acc |= p[i];
  return acc == 0;
}

static void dec_opt32(kj_rbuf *r, int *has, uint8_t v[32]) {
  *has = kj_r_flag(r);
  const uint8_t *p = kj_r_bytes(r, 32);
  if (!p)
    return;
  if (!*has && !all_zero(p, 32))
    r->bad = 1; /* an absent key is written as zeros */
  memcpy(v, p, 32);
}

/* The state fields of a table-40 value into s (n_skipped untouched). */
static int dec_state(const void *val, size_t vlen, kj_ratchet_state *s) {
  kj_rbuf r;
  int rc = nat_r_open(&r, val, vlen);
  if (rc)
    return rc;
  kj_r_copy(&r, s->root_key, 32);
  dec_opt32(&r, &s->has_sending_chain, s->sending_chain);
  dec_opt32(&r, &s->has_receiving_chain, s->receiving_chain);
  kj_r_copy(&r, s->dh_self_secret, 32);
  dec_opt32(&r, &s->has_dh_remote, s->dh_remote);
  s->msg_send = kj_r_u32(&r);
  s->msg_recv = kj_r_u32(&r);
  s->prev_chain_len = kj_r_u32(&r);
  return kj_r_done(&r);
}

/* ---- skipped-key rows ------------------------------------------------- */

static void enc_skipped(uint8_t out[SKIPPED_BYTES], const uint8_t mk[32],
                        int64_t created_at) {
  out[0] = KJ_ROW_VERSION;
  memcpy(out + 1, mk, 32);
  kj_put64(out + 33, (uint64_t)created_at);
}

static int dec_skipped(const void *val, size_t vlen, uint8_t mk[32],
                       int64_t *created_at) {
  kj_rbuf r;
  int rc = nat_r_open(&r, val, vlen);
  kj_r_copy(&r, mk, 32);
  *created_at = kj_r_i64(&r);
  return rc ? rc : kj_r_done(&r);
}

/* Skipped keys of one conversation, read by a scan (a scan callback must
 * not write, so a save or cleanup collects first and writes after). */
typedef struct skip_acc {
  size_t prefix_len; /* a key is prefix + SKIPPED_SUFFIX bytes */
  kj_wbuf v;         /* kj_skipped_key array */
  kj_wbuf status;    /* int per key: KJ_OK, or why its value is malformed */
  size_t n;
  int lazy; /* save: a bad value matters only if that key is kept */
} skip_acc;

static int collect_skipped(void *arg, const void *key, size_t klen,
                           const void *val, size_t vlen) {
  skip_acc *a = arg;
  if (klen != a->prefix_len + SKIPPED_SUFFIX)
    return KJ_ECORRUPT;
  kj_skipped_key k;
  const uint8_t *kp = (const uint8_t *)key + a->prefix_len;
  memcpy(k.public_key, kp, 32);
  k.msg_num = kj_k_get_u32(kp + 32);
  int rc = dec_skipped(val, vlen, k.message_key, &k.created_at);
  if (rc && !a->lazy)
    return rc;
  kj_w_bytes(&a->v, &k, sizeof k);
  kj_w_bytes(&a->status, &rc, sizeof rc);
  a->n++;
  return a->v.oom || a->status.oom ? KJ_ENOMEM : 0;
}

static void skip_acc_free(skip_acc *a) {
  kj_w_free(&a->v);
  kj_w_free(&a->status);
}

static int cmp_slot(const kj_skipped_key *x, const kj_skipped_key *y) {
  int c = memcmp(x->public_key, y->public_key, 32);
  if (c)
    return c;
  return x->msg_num < y->msg_num ? -1 : x->msg_num > y->msg_num;
}

/* By (public_key, msg_num), then by position in the caller's array, so
 * that the last of equal keys is the last of its run. */
static int cmp_given(const void *a, const void *b) {
  const kj_skipped_key *x = *(const kj_skipped_key *const *)a;
  const kj_skipped_key *y = *(const kj_skipped_key *const *)b;
  int c = cmp_slot(x, y);
  return c ? c : x < y ? -1 : x > y;
}

/* ---- operations ------------------------------------------------------- */

/* Replace the state row and make the stored skipped keys equal the given
 * set: a merge of the given keys (sorted, last duplicate wins) with the
 * stored ones (already in key order). */
static int save_in(nat_op *op, uint32_t dev, const void *conv, size_t clen,
                   const kj_ratchet_state *s) {
  size_t n = s->n_skipped;
  const kj_skipped_key **g = NULL;
  if (n && !(g = malloc(n * sizeof *g)))
    return KJ_ENOMEM;
  for (size_t i = 0; i < n; i++)
    g[i] = &s->skipped[i];
  if (n > 1)
    qsort(g, n, sizeof *g, cmp_given);
  size_t m = 0; /* keep the last of every run of equal keys */
  for (size_t i = 0; i < n; i++) {
    if (i + 1 < n && cmp_slot(g[i], g[i + 1]) == 0)
      continue;
    g[m++] = g[i];
  }

  kj_kbuf prefix, k;
  skipped_prefix(&prefix, dev, conv, clen);
  skip_acc a = {.prefix_len = prefix.len, .lazy = 1};
  int rc = nat_scan(op, NT_SKIPPED, &prefix, collect_skipped, &a);
  const kj_skipped_key *sv = (const kj_skipped_key *)a.v.p;
  const int *status = (const int *)a.status.p;

  int64_t now = now_secs(op);
  uint8_t row[SKIPPED_BYTES];
  size_t i = 0, j = 0;
  while (!rc && (i < m || j < a.n)) {
    int c = i == m ? 1 : j == a.n ? -1 : cmp_slot(g[i], &sv[j]);
    if (c > 0) { /* stored, not given: removed */
      skipped_key(&k, &prefix, sv[j].public_key, sv[j].msg_num);
      rc = nat_del(op, NT_SKIPPED, &k);
      j++;
      continue;
    }
    int64_t created = now;
    if (c == 0) { /* kept: its created_at stays */
      if ((rc = status[j]))
        break;
      created = sv[j].created_at;
      int same = !memcmp(g[i]->message_key, sv[j].message_key, 32);
      j++;
      if (same) { /* the row would not change */
        i++;
        continue;
      }
    }
    skipped_key(&k, &prefix, g[i]->public_key, g[i]->msg_num);
    enc_skipped(row, g[i]->message_key, created);
    rc = nat_put(op, NT_SKIPPED, &k, row, sizeof row);
    i++;
  }
  skip_acc_free(&a);
  free(g);
  if (!rc) {
    uint8_t v[STATE_BYTES];
    enc_state(v, s);
    nat_key(&k, dev, conv, clen);
    rc = nat_put(op, NT_RATCHET, &k, v, sizeof v);
  }
  return rc;
}

static int nat_ratchet_save(kj_backend *b, kj_tx *t, uint32_t dev,
                            const void *conv, size_t clen,
                            const kj_ratchet_state *s) {
  nat_op op;
  int rc = nat_begin(b, t, NAT_WRITE, dev, &op);
  /* One transaction: the state row and the whole skipped-key set change
   * together or not at all (save_in never returns KJ_NOTFOUND, which
   * nat_end would commit). */
  if (!rc)
    rc = nat_end(&op, save_in(&op, dev, conv, clen, s));
  if (rc == KJ_ECORRUPT || rc == KJ_EFORMAT)
    nat_fail(b, rc, "table 41: malformed skipped key of slot %u", dev);
  return rc;
}

static int load_in(nat_op *op, uint32_t dev, const void *conv, size_t clen,
                   kj_ratchet_state **out, unsigned *table) {
  kj_kbuf k;
  nat_key(&k, dev, conv, clen);
  void *v;
  size_t vlen;
  *table = NT_RATCHET;
  int rc = nat_get(op, NT_RATCHET, &k, &v, &vlen);
  if (rc)
    return rc;
  kj_ratchet_state st;
  memset(&st, 0, sizeof st);
  rc = dec_state(v, vlen, &st);
  kj_free(v);
  if (rc)
    return rc;

  *table = NT_SKIPPED;
  skipped_prefix(&k, dev, conv, clen);
  skip_acc a = {.prefix_len = k.len};
  rc = nat_scan(op, NT_SKIPPED, &k, collect_skipped, &a);
  if (!rc && a.n > KJ_MAX_SKIPPED)
    rc = KJ_ECORRUPT;
  kj_ratchet_state *o = NULL;
  if (!rc && !(o = kj_v_ratchet_state_alloc(a.n)))
    rc = KJ_ENOMEM;
  if (!rc) {
    st.n_skipped = o->n_skipped;
    st.skipped = o->skipped;
    *o = st;
    if (a.n) /* the scan went in key order: (public_key, msg_num) */
      memcpy(o->skipped, a.v.p, a.n * sizeof *o->skipped);
    *out = o;
  }
  skip_acc_free(&a);
  return rc;
}

static int nat_ratchet_load(kj_backend *b, kj_tx *t, uint32_t dev,
                            const void *conv, size_t clen,
                            kj_ratchet_state **out) {
  nat_op op;
  int rc = nat_begin(b, t, NAT_READ, 0, &op);
  unsigned table = NT_RATCHET;
  /* One read transaction: the state and its keys are from one commit. */
  if (!rc)
    rc = nat_end(&op, load_in(&op, dev, conv, clen, out, &table));
  if (rc == KJ_ECORRUPT || rc == KJ_EFORMAT)
    nat_fail(b, rc, "table %u: malformed ratchet row of slot %u", table, dev);
  return rc;
}

static int nat_ratchet_exists(kj_backend *b, kj_tx *t, uint32_t dev,
                              const void *conv, size_t clen, int *exists) {
  kj_kbuf k;
  nat_key(&k, dev, conv, clen);
  void *v;
  size_t vlen;
  int rc = nat_get_row(b, t, NT_RATCHET, &k, &v, &vlen);
  kj_free(v);
  if (rc == KJ_OK)
    *exists = 1;
  return rc == KJ_NOTFOUND ? KJ_OK : rc; /* else *exists is already 0 */
}

/* The state row and every skipped key of the conversation. */
static int delete_in(nat_op *op, uint32_t dev, const void *conv, size_t clen) {
  kj_kbuf k;
  nat_key(&k, dev, conv, clen);
  int rc = nat_del(op, NT_RATCHET, &k);
  if (!rc) {
    skipped_prefix(&k, dev, conv, clen);
    rc = nat_del_prefix(op, NT_SKIPPED, &k, NULL, NULL, NULL);
  }
  return rc;
}

static int nat_ratchet_delete(kj_backend *b, kj_tx *t, uint32_t dev,
                              const void *conv, size_t clen) {
  nat_op op;
  int rc = nat_begin(b, t, NAT_WRITE, dev, &op);
  return rc ? rc : nat_end(&op, delete_in(&op, dev, conv, clen));
}

/* Pick the skipped keys created before *(int64_t *)ctx, checking every key
 * and value on the way. */
static int expired(void *ctx, const uint8_t *key, size_t klen,
                   const uint8_t *val, size_t vlen) {
  /* dev, lp(conv) with a non-empty conv, public_key, msg_num */
  if (klen < 6 || ((size_t)key[4] << 8 | key[5]) < 1 ||
      klen != 6 + ((size_t)key[4] << 8 | key[5]) + SKIPPED_SUFFIX)
    return KJ_ECORRUPT;
  uint8_t mk[32];
  int64_t created;
  int rc = dec_skipped(val, vlen, mk, &created);
  return rc ? rc : created < *(const int64_t *)ctx;
}

static int nat_ratchet_cleanup_skipped(kj_backend *b, kj_tx *t, uint32_t dev,
                                       int64_t max_age_secs,
                                       uint64_t *removed) {
  nat_op op;
  int rc = nat_begin(b, t, NAT_WRITE, dev, &op);
  if (rc)
    return rc;
  int64_t now = now_secs(&op);
  /* now - max_age, saturated both ways. The domain layer passes
   * max_age >= 0 only; a negative age (a cutoff in the future, which the
   * oracle's off-by-one wrappers use) must not overflow either. */
  int64_t cutoff;
  if (max_age_secs >= 0)
    cutoff = now < INT64_MIN + max_age_secs ? INT64_MIN : now - max_age_secs;
  else
    cutoff = now > INT64_MAX + max_age_secs ? INT64_MAX : now - max_age_secs;
  kj_kbuf k;
  kj_k_dev(&k, dev); /* every conversation of the slot */
  uint64_t n;
  rc = nat_end(&op, nat_del_prefix(&op, NT_SKIPPED, &k, expired, &cutoff, &n));
  if (rc == KJ_ECORRUPT || rc == KJ_EFORMAT)
    nat_fail(b, rc, "table 41: malformed skipped key of slot %u", dev);
  if (!rc)
    *removed = n;
  return rc;
}

const kj_ratchet_ops nat_ratchet_ops = {
    .ratchet_save = nat_ratchet_save,
    .ratchet_load = nat_ratchet_load,
    .ratchet_exists = nat_ratchet_exists,
    .ratchet_delete = nat_ratchet_delete,
    .ratchet_cleanup_skipped = nat_ratchet_cleanup_skipped,
};
