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

/* ---- identity keys ----------------------------------------------------- */

int kj_identity_put(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                    size_t alen, const uint8_t key[KJ_IDENTITY_KEY_BYTES]) {
  KJ_D_FORWARD(b, t, signal, identity_put, (b, t, dev, addr, alen, key),
               kj_d_id(b, addr, alen, "kj_identity_put: address"),
               kj_d_ptr(b, key, "kj_identity_put: key"));
}

int kj_identity_load(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                     size_t alen, uint8_t key_out[KJ_IDENTITY_KEY_BYTES]) {
  KJ_D_FORWARD(b, t, signal, identity_load, (b, t, dev, addr, alen, key_out),
               kj_d_id(b, addr, alen, "kj_identity_load: address"),
               kj_d_ptr(b, key_out, "kj_identity_load: key_out"));
}

int kj_identity_delete(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                       size_t alen) {
  KJ_D_FORWARD(b, t, signal, identity_delete, (b, t, dev, addr, alen),
               kj_d_id(b, addr, alen, "kj_identity_delete: address"));
}

/* ---- sessions ---------------------------------------------------------- */

int kj_session_put(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                   size_t alen, const void *rec, size_t rlen) {
  KJ_D_FORWARD(b, t, signal, session_put, (b, t, dev, addr, alen, rec, rlen),
               kj_d_id(b, addr, alen, "kj_session_put: address"),
               kj_d_rec(b, rec, rlen, "kj_session_put: record"));
}

int kj_session_get(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                   size_t alen, void **rec, size_t *rlen) {
  KJ_D_CLEAR(rec);
  KJ_D_CLEAR(rlen);
  KJ_D_FORWARD(b, t, signal, session_get, (b, t, dev, addr, alen, rec, rlen),
               kj_d_id(b, addr, alen, "kj_session_get: address"),
               kj_d_ptr(b, rec, "kj_session_get: rec"),
               kj_d_ptr(b, rlen, "kj_session_get: rlen"));
}

int kj_session_has(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                   size_t alen, int *has) {
  KJ_D_GET_BY_ID(b, t, signal, session_has, dev, addr, alen, "address", has);
}

int kj_session_delete(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                      size_t alen) {
  KJ_D_FORWARD(b, t, signal, session_delete, (b, t, dev, addr, alen),
               kj_d_id(b, addr, alen, "kj_session_delete: address"));
}

/* ---- one-time pre-keys ------------------------------------------------- */

int kj_prekey_store(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id,
                    const void *rec, size_t rlen, int uploaded) {
  KJ_D_FORWARD(b, t, signal, prekey_store, (b, t, dev, id, rec, rlen, uploaded),
               kj_d_rec(b, rec, rlen, "kj_prekey_store: record"),
               kj_d_flag(b, uploaded, "kj_prekey_store: uploaded"));
}

/* Every record of the batch; keys[i].uploaded is not read: the batch has
 * one flag. */
static int check_prekeys(kj_backend *b, const kj_prekey *keys, size_t n) {
  int rc = KJ_OK;
  for (size_t i = 0; !rc && i < n; i++)
    rc = kj_d_rec(b, keys[i].record.p, keys[i].record.len,
                  "kj_prekey_store_batch: a record");
  return rc;
}

int kj_prekey_store_batch(kj_backend *b, kj_tx *t, uint32_t dev,
                          const kj_prekey *keys, size_t n, int uploaded) {
  KJ_D_FORWARD(
      b, t, signal, prekey_store_batch, (b, t, dev, keys, n, uploaded),
      kj_d_array(b, keys, n, KJ_MAX_BATCH, "kj_prekey_store_batch: keys"),
      kj_d_flag(b, uploaded, "kj_prekey_store_batch: uploaded"),
      check_prekeys(b, keys, n));
}

int kj_prekey_load(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id,
                   kj_prekey_list **out) {
  KJ_D_GET(b, t, signal, prekey_load, (b, t, dev, id, out), out);
}

int kj_prekey_load_batch(kj_backend *b, kj_tx *t, uint32_t dev,
                         const uint32_t *ids, size_t n, kj_prekey_list **out) {
  KJ_D_CLEAR(out);
  KJ_D_FORWARD(b, t, signal, prekey_load_batch, (b, t, dev, ids, n, out),
               kj_d_array(b, ids, n, KJ_MAX_BATCH, "kj_prekey_load_batch: ids"),
               kj_d_ptr(b, out, "kj_prekey_load_batch: out"));
}

int kj_prekey_remove(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id) {
  KJ_D_FORWARD(b, t, signal, prekey_remove, (b, t, dev, id), KJ_OK);
}

int kj_prekey_mark_uploaded(kj_backend *b, kj_tx *t, uint32_t dev,
                            const uint32_t *ids, size_t n) {
  KJ_D_FORWARD(
      b, t, signal, prekey_mark_uploaded, (b, t, dev, ids, n),
      kj_d_array(b, ids, n, KJ_MAX_BATCH, "kj_prekey_mark_uploaded: ids"));
}

int kj_prekey_max_id(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t *max_id) {
  KJ_D_GET(b, t, signal, prekey_max_id, (b, t, dev, max_id), max_id);
}

/* ---- signed pre-keys --------------------------------------------------- */

int kj_signed_prekey_store(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id,
                           const void *rec, size_t rlen) {
  KJ_D_FORWARD(b, t, signal, signed_prekey_store, (b, t, dev, id, rec, rlen),
               kj_d_rec(b, rec, rlen, "kj_signed_prekey_store: record"));
}

int kj_signed_prekey_load(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id,
                          kj_prekey_list **out) {
  KJ_D_GET(b, t, signal, signed_prekey_load, (b, t, dev, id, out), out);
}

int kj_signed_prekey_load_all(kj_backend *b, kj_tx *t, uint32_t dev,
                              kj_prekey_list **out) {
  KJ_D_GET(b, t, signal, signed_prekey_load_all, (b, t, dev, out), out);
}

int kj_signed_prekey_remove(kj_backend *b, kj_tx *t, uint32_t dev,
                            uint32_t id) {
  KJ_D_FORWARD(b, t, signal, signed_prekey_remove, (b, t, dev, id), KJ_OK);
}

/* ---- sender keys ------------------------------------------------------- */

int kj_sender_key_put(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                      size_t nlen, const void *rec, size_t rlen) {
  KJ_D_FORWARD(b, t, signal, sender_key_put, (b, t, dev, name, nlen, rec, rlen),
               kj_d_id(b, name, nlen, "kj_sender_key_put: name"),
               kj_d_rec(b, rec, rlen, "kj_sender_key_put: record"));
}

int kj_sender_key_get(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                      size_t nlen, void **rec, size_t *rlen) {
  KJ_D_CLEAR(rec);
  KJ_D_CLEAR(rlen);
  KJ_D_FORWARD(b, t, signal, sender_key_get, (b, t, dev, name, nlen, rec, rlen),
               kj_d_id(b, name, nlen, "kj_sender_key_get: name"),
               kj_d_ptr(b, rec, "kj_sender_key_get: rec"),
               kj_d_ptr(b, rlen, "kj_sender_key_get: rlen"));
}

int kj_sender_key_delete(kj_backend *b, kj_tx *t, uint32_t dev,
                         const void *name, size_t nlen) {
  KJ_D_FORWARD(b, t, signal, sender_key_delete, (b, t, dev, name, nlen),
               kj_d_id(b, name, nlen, "kj_sender_key_delete: name"));
}
