/*
 * src/native/native.c - the native backend object: open and close, its
 * transactions, and its static operations table, which points at the
 * tables of the store files (signal.c, appsync.c, ...). The helpers those
 * files share live below them, in rows.c.
 */
#include <stdlib.h>

#include "native.h"

static kj_store *store_of(kj_backend *b) { return ((nat_backend *)b)->s; }

/* ---- backend object --------------------------------------------------- */

static int nat_close(kj_backend *b) {
  int rc = kj_store_close(store_of(b));
  pthread_mutex_destroy(&((nat_backend *)b)->msg_mu);
  free(b);
  return rc;
}

static const char *nat_errmsg(kj_backend *b) {
  nat_backend *nb = (nat_backend *)b;
  return atomic_load(&nb->has_msg) ? nb->msg : kj_store_errmsg(nb->s);
}

static int nat_tx_begin(kj_backend *b, kj_tx **out) {
  nat_clear_msg(b);
  nat_tx *t = calloc(1, sizeof *t);
  if (!t)
    return KJ_ENOMEM;
  int rc = kj_txn_begin(store_of(b), 0, &t->txn);
  if (rc) {
    free(t);
    return rc;
  }
  t->base.backend = b;
  *out = &t->base;
  return KJ_OK;
}

static int nat_tx_commit(kj_tx *t) {
  int rc = kj_txn_commit(((nat_tx *)t)->txn);
  free(t);
  return rc;
}

static void nat_tx_rollback(kj_tx *t) {
  kj_txn_rollback(((nat_tx *)t)->txn);
  free(t);
}

const kj_backend_ops nat_backend_ops = {
    KJ_BACKEND_OPS_INIT("native"),  .close = nat_close,
    .errmsg = nat_errmsg,           .store = store_of,
    .tx_begin = nat_tx_begin,       .tx_commit = nat_tx_commit,
    .tx_rollback = nat_tx_rollback, .signal = &nat_signal_ops,
    .appsync = &nat_appsync_ops,    .protocol = &nat_protocol_ops,
    .device = &nat_device_ops,      .ratchet = &nat_ratchet_ops,
};

int nat_open(const char *path, const kj_options *opts, kj_backend **out,
             char **errmsg) {
  nat_backend *nb = calloc(1, sizeof *nb);
  if (!nb)
    return KJ_ENOMEM;
  int rc = kj_store_open(path, opts, &nb->s, errmsg);
  if (rc) {
    free(nb);
    return rc;
  }
  pthread_mutex_init(&nb->msg_mu, NULL);
  nb->base.ops = &nat_backend_ops;
  *out = &nb->base;
  return KJ_OK;
}
