/*
 * src/domain/backend.c - the backend handle: opening the native backend,
 * closing any backend, transactions, and the checks of
 * src/domain/dispatch.h, the first of which is the one place where a
 * backend's table version is compared with this library's before anything
 * of the table is read (keyjournal/sys/backend.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/values.h"
#include "dispatch.h"

/* The native backend (src/native/native.c): its table, and its open. */
extern const kj_backend_ops nat_backend_ops;
int nat_open(const char *path, const kj_options *opts, kj_backend **out,
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

int kj_d_backend(kj_backend *b, const char *fn) {
  if (!b)
    return KJ_EINVAL;
  if (!b->ops)
    return kj_d_fail(b, KJ_EINVAL, "%s: backend without an operations table",
                     fn);
  if (b->ops->version != KJ_BACKEND_VERSION)
    return kj_d_fail(b, KJ_EFORMAT,
                     "%s: backend %s implements backend interface version %d;"
                     " this library implements %d",
                     fn, b->ops->name ? b->ops->name : "?", b->ops->version,
                     KJ_BACKEND_VERSION);
  return KJ_OK;
}

int kj_d_start(kj_backend *b, kj_tx *t, const void *op, const char *fn) {
  if (b && d_msg_owner == b)
    d_msg_owner = NULL;
  int rc = kj_d_backend(b, fn);
  if (rc)
    return rc;
  if (t && t->backend != b)
    return kj_d_fail(b, KJ_EINVAL, "%s: transaction of another backend", fn);
  if (!op)
    return kj_d_fail(b, KJ_EINVAL, "%s: not implemented by backend %s", fn,
                     b->ops->name ? b->ops->name : "?");
  return KJ_OK;
}

int kj_d_id(kj_backend *b, const void *p, size_t n, const char *what) {
  if (!p || n < 1 || n > KJ_MAX_ID)
    return kj_d_fail(b, KJ_EINVAL, "%s: must be 1..%u bytes (got %zu%s)", what,
                     KJ_MAX_ID, n, p ? "" : ", NULL");
  return KJ_OK;
}

int kj_d_name(kj_backend *b, const void *p, size_t n, const char *what) {
  if (!p || n < 1 || n > KJ_MAX_NAME)
    return kj_d_fail(b, KJ_EINVAL, "%s: must be 1..%u bytes (got %zu%s)", what,
                     KJ_MAX_NAME, n, p ? "" : ", NULL");
  return KJ_OK;
}

int kj_d_pubkey(kj_backend *b, const void *p, size_t n, const char *what) {
  if (!p || (n != KJ_IDENTITY_KEY_BYTES && n != KJ_IDENTITY_KEY_MAX))
    return kj_d_fail(b, KJ_EINVAL, "%s: must be %u or %u bytes (got %zu%s)",
                     what, KJ_IDENTITY_KEY_BYTES, KJ_IDENTITY_KEY_MAX, n,
                     p ? "" : ", NULL");
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

void kj_backend_copy_label(const void *label, size_t llen, char *out) {
  kj_v_copy_label(label, llen, out);
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
  /* The native table is checked like any backend's, before the first call
   * into it. */
  if (nat_backend_ops.version != KJ_BACKEND_VERSION) {
    if (errmsg) {
      char m[160];
      snprintf(m, sizeof m,
               "kj_backend_open: backend native implements backend interface "
               "version %d; this library implements %d",
               nat_backend_ops.version, KJ_BACKEND_VERSION);
      *errmsg = strdup(m);
    }
    return KJ_EFORMAT;
  }
  return nat_open(path, opts, out, errmsg);
}

int kj_backend_close(kj_backend *b) {
  if (!b)
    return KJ_OK;
  const char *fn = "kj_backend_close";
  int rc = kj_d_start(b, NULL,
                      kj_d_usable(b) ? (const void *)b->ops->close : NULL, fn);
  return rc ? rc : b->ops->close(b);
}

kj_store *kj_backend_store(kj_backend *b) {
  if (!b || kj_d_backend(b, "kj_backend_store"))
    return NULL;
  return b->ops->store ? b->ops->store(b) : NULL;
}

const char *kj_backend_name(const kj_backend *b) {
  /* version and name are the first two fields of every table version. */
  return b && b->ops && b->ops->name ? b->ops->name : "";
}

const char *kj_backend_errmsg(kj_backend *b) {
  if (!b)
    return "";
  if (d_msg_owner == b)
    return d_msg;
  if (kj_d_backend(b, "kj_backend_errmsg"))
    return d_msg; /* why the library refuses b */
  return b->ops->errmsg ? b->ops->errmsg(b) : "";
}

int kj_backend_begin(kj_backend *b, kj_tx **out) {
  if (out)
    *out = NULL;
  int rc = kj_d_start(b, NULL,
                      kj_d_usable(b) ? (const void *)b->ops->tx_begin : NULL,
                      "kj_backend_begin");
  if (!rc)
    rc = kj_d_ptr(b, out, "kj_backend_begin: out");
  return rc ? rc : b->ops->tx_begin(b, out);
}

int kj_backend_commit(kj_tx *t) {
  if (!t)
    return KJ_EINVAL;
  kj_backend *b = t->backend;
  int rc = kj_d_start(b, NULL,
                      kj_d_usable(b) ? (const void *)b->ops->tx_commit : NULL,
                      "kj_backend_commit");
  return rc ? rc : b->ops->tx_commit(t);
}

void kj_backend_rollback(kj_tx *t) {
  if (t && kj_d_backend(t->backend, "kj_backend_rollback") == KJ_OK &&
      t->backend->ops->tx_rollback)
    t->backend->ops->tx_rollback(t);
}
