/*
 * src/native/rows.c - what every native store file builds on: the list of
 * per-slot tables, the backend's detail message, and the per-operation
 * helpers (begin and end one operation in the caller's transaction or its
 * own, slot checks, row reads, writes, deletes and scans over the engine's
 * public key-value API).
 *
 * It sits below the store files (signal.c, appsync.c, ...), which sit
 * below native.c (open, close, the operations table): nothing here calls
 * up into either.
 */
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "native.h"

const unsigned nat_slot_tables[] = {
    NT_SLOT_LABEL,    NT_IDENTITY,    NT_SESSION,      NT_PREKEY,
    NT_SIGNED_PREKEY, NT_SENDER_KEY,  NT_SESSION_USER, NT_SENDER_USER,
    NT_LOCAL_ID,      NT_SYNC_KEY,    NT_SYNC_LATEST,  NT_SYNC_VERSION,
    NT_MUTATION_MAC,  NT_SKDM,        NT_LID,          NT_LID_BY_PHONE,
    NT_BASE_KEY,      NT_DEVICE_LIST, NT_SK_FORGET,    NT_TC_TOKEN,
    NT_RATCHET,       NT_SKIPPED,
};
const size_t nat_slot_ntables =
    sizeof nat_slot_tables / sizeof nat_slot_tables[0];

/* ---- detail messages -------------------------------------------------- */

int nat_fail(kj_backend *b, int rc, const char *fmt, ...) {
  nat_backend *nb = (nat_backend *)b;
  va_list ap;
  va_start(ap, fmt);
  pthread_mutex_lock(&nb->msg_mu);
  vsnprintf(nb->msg, sizeof nb->msg, fmt, ap);
  atomic_store(&nb->has_msg, 1);
  pthread_mutex_unlock(&nb->msg_mu);
  va_end(ap);
  return rc;
}

void nat_clear_msg(kj_backend *b) {
  nat_backend *nb = (nat_backend *)b;
  /* Read first: the common case (no message) writes nothing shared. */
  if (atomic_load_explicit(&nb->has_msg, memory_order_relaxed))
    atomic_store(&nb->has_msg, 0);
}

/* ---- operations ------------------------------------------------------- */

int nat_slot_exists(nat_op *op, uint32_t dev) {
  kj_kbuf k;
  kj_k_dev(&k, dev);
  int rc = kj_get(op->s, op->txn, NT_DEVICE, k.b, k.len, NULL, NULL);
  return rc == KJ_OK ? 1 : rc == KJ_NOTFOUND ? 0 : rc;
}

int nat_begin(kj_backend *b, kj_tx *t, int mode, uint32_t dev, nat_op *op) {
  int write = mode != NAT_READ;
  nat_clear_msg(b);
  if (mode == NAT_WRITE && dev == 0)
    return KJ_NOTFOUND; /* slot ids start at 1 */
  op->b = b;
  op->s = ((nat_backend *)b)->s;
  op->write = write;
  op->own = !t;
  if (t) {
    /* In the caller's transaction a failed operation must still change
     * nothing: nat_end rolls back to this savepoint. */
    op->txn = ((nat_tx *)t)->txn;
    if (write) {
      int rc = kj_txn_savepoint(op->txn);
      if (rc)
        return rc;
    }
  } else {
    int rc = kj_txn_begin(op->s, write ? 0 : KJ_TXN_READONLY, &op->txn);
    if (rc)
      return rc;
  }
  if (mode == NAT_WRITE) {
    int r = nat_slot_exists(op, dev);
    if (r != 1) {
      nat_end(op, KJ_EINVAL); /* roll back an own transaction */
      return r ? r : KJ_NOTFOUND;
    }
  }
  return KJ_OK;
}

int nat_end(nat_op *op, int rc) {
  if (!op->own) {
    if (op->write && rc != KJ_OK && rc != KJ_NOTFOUND)
      kj_txn_rollback_savepoint(op->txn);
    else if (op->write)
      kj_txn_release_savepoint(op->txn);
    return rc;
  }
  if (op->write && (rc == KJ_OK || rc == KJ_NOTFOUND)) {
    int c = kj_txn_commit(op->txn);
    return c ? c : rc;
  }
  if (op->write)
    kj_txn_rollback(op->txn);
  else
    kj_txn_commit(op->txn); /* ends a read-only transaction */
  return rc;
}

void nat_free_wiped(void *p, size_t n) {
  if (p)
    sodium_memzero(p, n);
  kj_free(p);
}

int64_t nat_now_ms(nat_op *op) { return kj_store_clock(op->s); }

int nat_get(nat_op *op, unsigned table, const kj_kbuf *k, void **v,
            size_t *vlen) {
  return kj_get(op->s, op->txn, table, k->b, k->len, v, vlen);
}

int nat_put(nat_op *op, unsigned table, const kj_kbuf *k, const void *v,
            size_t vlen) {
  return kj_put(op->s, op->txn, table, k->b, k->len, v, vlen);
}

int nat_put_w(nat_op *op, unsigned table, const kj_kbuf *k, kj_wbuf *w) {
  if (w->oom)
    return KJ_ENOMEM;
  if (w->len > KJ_MAX_VALUE)
    return KJ_EINVAL;
  return nat_put(op, table, k, w->p, w->len);
}

int nat_del(nat_op *op, unsigned table, const kj_kbuf *k) {
  return kj_delete(op->s, op->txn, table, k->b, k->len);
}

int nat_get_row(kj_backend *b, kj_tx *t, unsigned table, const kj_kbuf *k,
                void **v, size_t *vlen) {
  nat_op op;
  *v = NULL;
  if (!t) {
    /* One row outside a transaction: the engine's own read of one row
     * (under the row read lock) is as consistent as a read-only
     * transaction around it, without its allocation and counters. */
    nat_clear_msg(b);
    return kj_get(((nat_backend *)b)->s, NULL, table, k->b, k->len, v, vlen);
  }
  int rc = nat_begin(b, t, NAT_READ, 0, &op);
  if (rc)
    return rc;
  return nat_end(&op, nat_get(&op, table, k, v, vlen));
}

int nat_read_row(kj_backend *b, kj_tx *t, unsigned table, const kj_kbuf *k,
                 nat_dec_fn dec, void *out) {
  void *v;
  size_t vlen;
  int rc = nat_get_row(b, t, table, k, &v, &vlen);
  if (rc)
    return rc;
  rc = dec(v, vlen, out);
  nat_free_wiped(v, vlen);
  return rc;
}

int nat_rest_in_place(void *v, size_t vlen, void *head, size_t hlen, size_t max,
                      void **p, size_t *n) {
  kj_rbuf r;
  int rc = nat_r_open(&r, v, vlen);
  if (!rc && hlen)
    kj_r_copy(&r, head, hlen);
  size_t rest;
  const uint8_t *bytes = nat_r_rest(&r, max, &rest);
  if (!rc)
    rc = kj_r_done(&r);
  if (rc) {
    nat_free_wiped(v, vlen);
    return rc;
  }
  memmove(v, bytes, rest);
  kj_wipe((uint8_t *)v + rest, vlen - rest);
  *p = v;
  *n = rest;
  return KJ_OK;
}

int nat_get_rest(kj_backend *b, kj_tx *t, unsigned table, const kj_kbuf *k,
                 void *head, size_t hlen, size_t max, void **p, size_t *n) {
  void *v;
  size_t vlen;
  int rc = nat_get_row(b, t, table, k, &v, &vlen);
  return rc ? rc : nat_rest_in_place(v, vlen, head, hlen, max, p, n);
}

int nat_put_row(kj_backend *b, kj_tx *t, uint32_t dev, unsigned table,
                const kj_kbuf *k, kj_wbuf *w) {
  nat_op op;
  int rc = nat_begin(b, t, NAT_WRITE, dev, &op);
  if (!rc)
    rc = nat_end(&op, nat_put_w(&op, table, k, w));
  kj_w_free(w);
  return rc;
}

int nat_del_row(kj_backend *b, kj_tx *t, uint32_t dev, unsigned table,
                const kj_kbuf *k) {
  nat_op op;
  int rc = nat_begin(b, t, NAT_WRITE, dev, &op);
  if (rc)
    return rc;
  return nat_end(&op, nat_del(&op, table, k));
}

int nat_del_id(kj_backend *b, kj_tx *t, uint32_t dev, unsigned table,
               const void *id, size_t idlen) {
  kj_kbuf k;
  nat_key(&k, dev, id, idlen);
  return nat_del_row(b, t, dev, table, &k);
}

int nat_scan(nat_op *op, unsigned table, const kj_kbuf *prefix, kj_scan_fn fn,
             void *arg) {
  return kj_scan_prefix(op->s, op->txn, table, prefix->b, prefix->len, fn, arg);
}

int nat_scan_rows(kj_backend *b, kj_tx *t, unsigned table,
                  const kj_kbuf *prefix, kj_scan_fn fn, void *arg) {
  nat_op op;
  int rc = nat_begin(b, t, NAT_READ, 0, &op);
  return rc ? rc : nat_end(&op, nat_scan(&op, table, prefix, fn, arg));
}

int nat_u32_list(int rc, kj_wbuf *w, size_t n, kj_u32_list **out) {
  kj_u32_list *l = NULL;
  if (!rc && !(l = malloc(sizeof *l + n * sizeof l->v[0])))
    rc = KJ_ENOMEM;
  if (!rc) {
    l->n = n;
    if (n)
      memcpy(l->v, w->p, n * sizeof l->v[0]);
    *out = l;
  }
  kj_w_free(w);
  return rc;
}

/* Keys collected by a scan, to delete after it (a scan callback must not
 * write to its own transaction). */
typedef struct keylist {
  kj_wbuf w; /* (u16 length, key)* */
  uint64_t n;
  nat_keep_fn keep; /* NULL: every row */
  void *ctx;
} keylist;

static int collect_key(void *arg, const void *key, size_t klen, const void *val,
                       size_t vlen) {
  keylist *l = arg;
  int keep = l->keep ? l->keep(l->ctx, key, klen, val, vlen) : 1;
  if (keep <= 0)
    return keep;
  uint8_t lb[2] = {(uint8_t)(klen >> 8), (uint8_t)klen};
  kj_w_bytes(&l->w, lb, 2);
  kj_w_bytes(&l->w, key, klen);
  l->n++;
  return l->w.oom ? KJ_ENOMEM : 0;
}

int nat_del_prefix(nat_op *op, unsigned table, const kj_kbuf *prefix,
                   nat_keep_fn keep, void *ctx, uint64_t *n) {
  keylist l = {.keep = keep, .ctx = ctx};
  kj_w_init(&l.w);
  int rc = nat_scan(op, table, prefix, collect_key, &l);
  for (size_t off = 0; !rc && off < l.w.len;) {
    size_t klen = (size_t)l.w.p[off] << 8 | l.w.p[off + 1];
    rc = kj_delete(op->s, op->txn, table, l.w.p + off + 2, klen);
    off += 2 + klen;
  }
  if (n)
    *n = rc ? 0 : l.n;
  kj_w_free(&l.w);
  return rc;
}
