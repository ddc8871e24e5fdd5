/*
 * src/domain/signal.c - the public functions of keyjournal/signal.h.
 *
 * Each one clears its outputs, checks its arguments (src/domain/dispatch.h) and
 * calls the backend's function. The checks live here, not in a backend, so
 * every backend rejects the same input the same way and may rely on what
 * was checked. A batch is checked item by item before the backend sees it,
 * so one bad item fails the whole call with nothing stored.
 */
#include "dispatch.h"

#define START(b, t, op, fn) kj_d_start(b, t, KJ_D_OP(b, signal, op), fn)

/* ---- identity keys ----------------------------------------------------- */

int kj_identity_put(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                    size_t alen, const uint8_t key[KJ_IDENTITY_KEY_BYTES]) {
  int rc = START(b, t, identity_put, "kj_identity_put");
  if (!rc)
    rc = kj_d_id(b, addr, alen, "kj_identity_put: address");
  if (!rc)
    rc = kj_d_ptr(b, key, "kj_identity_put: key");
  return rc ? rc : b->ops->signal->identity_put(b, t, dev, addr, alen, key);
}

int kj_identity_load(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                     size_t alen, uint8_t key_out[KJ_IDENTITY_KEY_BYTES]) {
  int rc = START(b, t, identity_load, "kj_identity_load");
  if (!rc)
    rc = kj_d_id(b, addr, alen, "kj_identity_load: address");
  if (!rc)
    rc = kj_d_ptr(b, key_out, "kj_identity_load: key_out");
  return rc ? rc
            : b->ops->signal->identity_load(b, t, dev, addr, alen, key_out);
}

int kj_identity_delete(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                       size_t alen) {
  int rc = START(b, t, identity_delete, "kj_identity_delete");
  if (!rc)
    rc = kj_d_id(b, addr, alen, "kj_identity_delete: address");
  return rc ? rc : b->ops->signal->identity_delete(b, t, dev, addr, alen);
}

/* ---- sessions ---------------------------------------------------------- */

int kj_session_put(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                   size_t alen, const void *rec, size_t rlen) {
  int rc = START(b, t, session_put, "kj_session_put");
  if (!rc)
    rc = kj_d_id(b, addr, alen, "kj_session_put: address");
  if (!rc)
    rc = kj_d_rec(b, rec, rlen, "kj_session_put: record");
  return rc ? rc
            : b->ops->signal->session_put(b, t, dev, addr, alen, rec, rlen);
}

int kj_session_get(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                   size_t alen, void **rec, size_t *rlen) {
  if (rec)
    *rec = NULL;
  if (rlen)
    *rlen = 0;
  int rc = START(b, t, session_get, "kj_session_get");
  if (!rc)
    rc = kj_d_id(b, addr, alen, "kj_session_get: address");
  if (!rc)
    rc = kj_d_ptr(b, rec, "kj_session_get: rec");
  if (!rc)
    rc = kj_d_ptr(b, rlen, "kj_session_get: rlen");
  return rc ? rc
            : b->ops->signal->session_get(b, t, dev, addr, alen, rec, rlen);
}

int kj_session_has(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                   size_t alen, int *has) {
  if (has)
    *has = 0;
  int rc = START(b, t, session_has, "kj_session_has");
  if (!rc)
    rc = kj_d_id(b, addr, alen, "kj_session_has: address");
  if (!rc)
    rc = kj_d_ptr(b, has, "kj_session_has: has");
  return rc ? rc : b->ops->signal->session_has(b, t, dev, addr, alen, has);
}

int kj_session_delete(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                      size_t alen) {
  int rc = START(b, t, session_delete, "kj_session_delete");
  if (!rc)
    rc = kj_d_id(b, addr, alen, "kj_session_delete: address");
  return rc ? rc : b->ops->signal->session_delete(b, t, dev, addr, alen);
}

/* ---- one-time pre-keys ------------------------------------------------- */

int kj_prekey_store(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id,
                    const void *rec, size_t rlen, int uploaded) {
  int rc = START(b, t, prekey_store, "kj_prekey_store");
  if (!rc)
    rc = kj_d_rec(b, rec, rlen, "kj_prekey_store: record");
  if (!rc)
    rc = kj_d_flag(b, uploaded, "kj_prekey_store: uploaded");
  return rc ? rc
            : b->ops->signal->prekey_store(b, t, dev, id, rec, rlen, uploaded);
}

int kj_prekey_store_batch(kj_backend *b, kj_tx *t, uint32_t dev,
                          const kj_prekey *keys, size_t n, int uploaded) {
  int rc = START(b, t, prekey_store_batch, "kj_prekey_store_batch");
  if (!rc)
    rc = kj_d_array(b, keys, n, KJ_MAX_BATCH, "kj_prekey_store_batch: keys");
  if (!rc)
    rc = kj_d_flag(b, uploaded, "kj_prekey_store_batch: uploaded");
  /* keys[i].uploaded is not read: the batch has one flag. */
  for (size_t i = 0; !rc && i < n; i++)
    rc = kj_d_rec(b, keys[i].record.p, keys[i].record.len,
                  "kj_prekey_store_batch: a record");
  return rc ? rc
            : b->ops->signal->prekey_store_batch(b, t, dev, keys, n, uploaded);
}

int kj_prekey_load(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id,
                   kj_prekey_list **out) {
  if (out)
    *out = NULL;
  int rc = START(b, t, prekey_load, "kj_prekey_load");
  if (!rc)
    rc = kj_d_ptr(b, out, "kj_prekey_load: out");
  return rc ? rc : b->ops->signal->prekey_load(b, t, dev, id, out);
}

int kj_prekey_load_batch(kj_backend *b, kj_tx *t, uint32_t dev,
                         const uint32_t *ids, size_t n, kj_prekey_list **out) {
  if (out)
    *out = NULL;
  int rc = START(b, t, prekey_load_batch, "kj_prekey_load_batch");
  if (!rc)
    rc = kj_d_array(b, ids, n, KJ_MAX_BATCH, "kj_prekey_load_batch: ids");
  if (!rc)
    rc = kj_d_ptr(b, out, "kj_prekey_load_batch: out");
  return rc ? rc : b->ops->signal->prekey_load_batch(b, t, dev, ids, n, out);
}

int kj_prekey_remove(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id) {
  int rc = START(b, t, prekey_remove, "kj_prekey_remove");
  return rc ? rc : b->ops->signal->prekey_remove(b, t, dev, id);
}

int kj_prekey_mark_uploaded(kj_backend *b, kj_tx *t, uint32_t dev,
                            const uint32_t *ids, size_t n) {
  int rc = START(b, t, prekey_mark_uploaded, "kj_prekey_mark_uploaded");
  if (!rc)
    rc = kj_d_array(b, ids, n, KJ_MAX_BATCH, "kj_prekey_mark_uploaded: ids");
  return rc ? rc : b->ops->signal->prekey_mark_uploaded(b, t, dev, ids, n);
}

int kj_prekey_max_id(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t *max_id) {
  if (max_id)
    *max_id = 0;
  int rc = START(b, t, prekey_max_id, "kj_prekey_max_id");
  if (!rc)
    rc = kj_d_ptr(b, max_id, "kj_prekey_max_id: max_id");
  return rc ? rc : b->ops->signal->prekey_max_id(b, t, dev, max_id);
}

/* ---- signed pre-keys --------------------------------------------------- */

int kj_signed_prekey_store(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id,
                           const void *rec, size_t rlen) {
  int rc = START(b, t, signed_prekey_store, "kj_signed_prekey_store");
  if (!rc)
    rc = kj_d_rec(b, rec, rlen, "kj_signed_prekey_store: record");
  return rc ? rc
            : b->ops->signal->signed_prekey_store(b, t, dev, id, rec, rlen);
}

int kj_signed_prekey_load(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id,
                          kj_prekey_list **out) {
  if (out)
    *out = NULL;
  int rc = START(b, t, signed_prekey_load, "kj_signed_prekey_load");
  if (!rc)
    rc = kj_d_ptr(b, out, "kj_signed_prekey_load: out");
  return rc ? rc : b->ops->signal->signed_prekey_load(b, t, dev, id, out);
}

int kj_signed_prekey_load_all(kj_backend *b, kj_tx *t, uint32_t dev,
                              kj_prekey_list **out) {
  if (out)
    *out = NULL;
  int rc = START(b, t, signed_prekey_load_all, "kj_signed_prekey_load_all");
  if (!rc)
    rc = kj_d_ptr(b, out, "kj_signed_prekey_load_all: out");
  return rc ? rc : b->ops->signal->signed_prekey_load_all(b, t, dev, out);
}

int kj_signed_prekey_remove(kj_backend *b, kj_tx *t, uint32_t dev,
                            uint32_t id) {
  int rc = START(b, t, signed_prekey_remove, "kj_signed_prekey_remove");
  return rc ? rc : b->ops->signal->signed_prekey_remove(b, t, dev, id);
}

/* ---- sender keys ------------------------------------------------------- */

int kj_sender_key_put(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                      size_t nlen, const void *rec, size_t rlen) {
  int rc = START(b, t, sender_key_put, "kj_sender_key_put");
  if (!rc)
    rc = kj_d_id(b, name, nlen, "kj_sender_key_put: name");
  if (!rc)
    rc = kj_d_rec(b, rec, rlen, "kj_sender_key_put: record");
  return rc ? rc
            : b->ops->signal->sender_key_put(b, t, dev, name, nlen, rec, rlen);
}

int kj_sender_key_get(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                      size_t nlen, void **rec, size_t *rlen) {
  if (rec)
    *rec = NULL;
  if (rlen)
    *rlen = 0;
  int rc = START(b, t, sender_key_get, "kj_sender_key_get");
  if (!rc)
    rc = kj_d_id(b, name, nlen, "kj_sender_key_get: name");
  if (!rc)
    rc = kj_d_ptr(b, rec, "kj_sender_key_get: rec");
  if (!rc)
    rc = kj_d_ptr(b, rlen, "kj_sender_key_get: rlen");
  return rc ? rc
            : b->ops->signal->sender_key_get(b, t, dev, name, nlen, rec, rlen);
}

int kj_sender_key_delete(kj_backend *b, kj_tx *t, uint32_t dev,
                         const void *name, size_t nlen) {
  int rc = START(b, t, sender_key_delete, "kj_sender_key_delete");
  if (!rc)
    rc = kj_d_id(b, name, nlen, "kj_sender_key_delete: name");
  return rc ? rc : b->ops->signal->sender_key_delete(b, t, dev, name, nlen);
}
