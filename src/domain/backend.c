/*
 * src/domain/backend.c - the backend handle: opening the native backend,
 * closing any backend, transactions, and the argument checks of
 * src/domain/dispatch.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dispatch.h"

int kj_native_open(const char *path, const kj_options *opts, kj_backend **out,
                   char **errmsg);

/* Dispatch-level detail messages, one per handle. A backend struct has no
 * room for it (it is the implementer's), so the checks keep it here, keyed
 * by nothing: a message is only read back right after a failing call on
 * the same thread, so a thread-local buffer is exact. */
static _Thread_local char d_msg[256];
static _Thread_local const kj_backend *d_msg_owner;

size_t kj_max_id(void) { return KJ_MAX_ID; }
size_t kj_max_record(void) { return KJ_MAX_RECORD; }

int kj_d_fail(kj_backend *b, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(d_msg, sizeof d_msg, fmt, ap);
  va_end(ap);
  d_msg_owner = b;
  return rc;
}

int kj_d_start(kj_backend *b, kj_tx *t, const void *op, const char *fn) {
  if (!b)
    return KJ_EINVAL;
  if (d_msg_owner == b)
    d_msg_owner = NULL;
  if (t && t->backend != b)
    return kj_d_fail(b, KJ_EINVAL, "%s: transaction of another backend", fn);
  if (!op)
    return kj_d_fail(b, KJ_EINVAL, "%s: not implemented by backend %s", fn,
                     b->name ? b->name : "?");
  return KJ_OK;
}

int kj_d_id(kj_backend *b, const void *p, size_t n, const char *what) {
  if (!p || n < 1 || n > KJ_MAX_ID)
    return kj_d_fail(b, KJ_EINVAL, "%s: must be 1..%u bytes (got %zu%s)", what,
                     KJ_MAX_ID, n, p ? "" : ", NULL");
  return KJ_OK;
}

int kj_d_rec(kj_backend *b, const void *p, size_t n, const char *what) {
  if (!p || n < 1 || n > KJ_MAX_RECORD)
    return kj_d_fail(b, KJ_EINVAL, "%s: must be 1..%u bytes (got %zu%s)", what,
                     KJ_MAX_RECORD, n, p ? "" : ", NULL");
  return KJ_OK;
}

int kj_d_opt(kj_backend *b, const void *p, size_t n, size_t max,
             const char *what) {
  if ((!p && n) || n > max)
    return kj_d_fail(b, KJ_EINVAL, "%s: must be 0..%zu bytes (got %zu)", what,
                     max, n);
  return KJ_OK;
}

int kj_d_ptr(kj_backend *b, const void *p, const char *what) {
  return p ? KJ_OK : kj_d_fail(b, KJ_EINVAL, "%s: NULL", what);
}

int kj_d_array(kj_backend *b, const void *p, size_t n, size_t max,
               const char *what) {
  if ((!p && n) || n > max)
    return kj_d_fail(b, KJ_EINVAL, "%s: %zu items (at most %zu)%s", what, n,
                     max, !p && n ? ", NULL" : "");
  return KJ_OK;
}

int kj_d_flag(kj_backend *b, int v, const char *what) {
  return v == 0 || v == 1
             ? KJ_OK
             : kj_d_fail(b, KJ_EINVAL, "%s: must be 0 or 1 (got %d)", what, v);
}

/* ---- the handle ------------------------------------------------------- */

int kj_backend_open(const char *path, const kj_options *opts, kj_backend **out,
                    char **errmsg) {
  if (out)
    *out = NULL;
  if (errmsg)
    *errmsg = NULL;
  if (!out)
    return KJ_EINVAL;
  return kj_native_open(path, opts, out, errmsg);
}

int kj_backend_close(kj_backend *b) { return b ? b->close(b) : KJ_OK; }

kj_store *kj_backend_store(kj_backend *b) {
  return b && b->store ? b->store(b) : NULL;
}

const char *kj_backend_name(const kj_backend *b) {
  return b && b->name ? b->name : "";
}

const char *kj_backend_errmsg(kj_backend *b) {
  if (!b)
    return "";
  if (d_msg_owner == b)
    return d_msg;
  return b->errmsg ? b->errmsg(b) : "";
}

int kj_backend_begin(kj_backend *b, kj_tx **out) {
  if (out)
    *out = NULL;
  int rc = kj_d_start(b, NULL, b ? (const void *)b->tx_begin : NULL,
                      "kj_backend_begin");
  if (!rc)
    rc = kj_d_ptr(b, out, "kj_backend_begin: out");
  return rc ? rc : b->tx_begin(b, out);
}

int kj_backend_commit(kj_tx *t) {
  return t ? t->backend->tx_commit(t) : KJ_EINVAL;
}

void kj_backend_rollback(kj_tx *t) {
  if (t)
    t->backend->tx_rollback(t);
}
