/*
 * src/domain/signal.c - the public functions of keyjournal/signal.h.
 *
 * Each one clears its outputs, checks its arguments (src/domain/dispatch.h) and
 * calls the backend's function. The checks live here, not in a backend, so
 * every backend rejects the same input the same way and may rely on what
 * was checked. A batch is checked item by item before the backend sees it,
 * so one bad item fails the whole call with nothing stored.
 */
#include <string.h>

#include "dispatch.h"

/* ---- addresses --------------------------------------------------------- */

int kj_address_encode(const void *name, size_t nlen, uint32_t device_id,
                      uint8_t out[KJ_MAX_ID], size_t *alen) {
  if (alen)
    *alen = 0;
  if (!name || nlen < 1 || nlen > KJ_MAX_NAME || !out || !alen)
    return KJ_EINVAL;
  out[0] = (uint8_t)(nlen >> 8);
  out[1] = (uint8_t)nlen;
  memcpy(out + 2, name, nlen);
  uint8_t *d = out + 2 + nlen;
  d[0] = (uint8_t)(device_id >> 24);
  d[1] = (uint8_t)(device_id >> 16);
  d[2] = (uint8_t)(device_id >> 8);
  d[3] = (uint8_t)device_id;
  *alen = nlen + 6;
  return KJ_OK;
}

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

int kj_identity_put_key(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                        size_t alen, const uint8_t *key, size_t klen) {
  KJ_D_FORWARD(b, t, signal, identity_put_key,
               (b, t, dev, addr, alen, key, klen),
               kj_d_id(b, addr, alen, "kj_identity_put_key: address"),
               kj_d_pubkey(b, key, klen, "kj_identity_put_key: key"));
}

int kj_identity_get_key(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                        size_t alen, uint8_t key_out[KJ_IDENTITY_KEY_MAX],
                        size_t *klen) {
  KJ_D_CLEAR(klen);
  KJ_D_FORWARD(b, t, signal, identity_get_key,
               (b, t, dev, addr, alen, key_out, klen),
               kj_d_id(b, addr, alen, "kj_identity_get_key: address"),
               kj_d_ptr(b, key_out, "kj_identity_get_key: key_out"),
               kj_d_ptr(b, klen, "kj_identity_get_key: klen"));
}

/* ---- the local identity ------------------------------------------------ */

/* Its public key length (id checked). */
static int check_local(kj_backend *b, const kj_local_identity *id) {
  size_t n = id->public_len;
  if (n != KJ_IDENTITY_KEY_BYTES && n != KJ_IDENTITY_KEY_MAX)
    return kj_d_fail(b, KJ_EINVAL,
                     "kj_local_identity_save: public_len must be %u or %u "
                     "(got %zu)",
                     KJ_IDENTITY_KEY_BYTES, KJ_IDENTITY_KEY_MAX, n);
  return KJ_OK;
}

int kj_local_identity_save(kj_backend *b, kj_tx *t, uint32_t dev,
                           const kj_local_identity *id) {
  KJ_D_FORWARD(b, t, signal, local_identity_save, (b, t, dev, id),
               kj_d_ptr(b, id, "kj_local_identity_save: id"),
               check_local(b, id));
}

int kj_local_identity_load(kj_backend *b, kj_tx *t, uint32_t dev,
                           kj_local_identity *out) {
  /* Not cleared: like kj_identity_load, a failed load leaves *out alone. */
  KJ_D_FORWARD(b, t, signal, local_identity_load, (b, t, dev, out),
               kj_d_ptr(b, out, "kj_local_identity_load: out"));
}

int kj_local_identity_delete(kj_backend *b, kj_tx *t, uint32_t dev) {
  KJ_D_FORWARD(b, t, signal, local_identity_delete, (b, t, dev), KJ_OK);
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

/* ---- sessions by (name, device id) ------------------------------------- */

int kj_session_store(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                     size_t nlen, uint32_t device_id, const void *rec,
                     size_t rlen, const void *urec, size_t ulen) {
  KJ_D_FORWARD(
      b, t, signal, session_store,
      (b, t, dev, name, nlen, device_id, rec, rlen, urec, ulen),
      kj_d_name(b, name, nlen, "kj_session_store: name"),
      kj_d_rec(b, rec, rlen, "kj_session_store: record"),
      kj_d_opt(b, urec, ulen, KJ_MAX_RECORD, "kj_session_store: user record"));
}

int kj_session_load(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                    size_t nlen, uint32_t device_id, void **rec, size_t *rlen,
                    void **urec, size_t *ulen) {
  KJ_D_CLEAR(rec);
  KJ_D_CLEAR(rlen);
  KJ_D_CLEAR(urec);
  KJ_D_CLEAR(ulen);
  KJ_D_FORWARD(b, t, signal, session_load,
               (b, t, dev, name, nlen, device_id, rec, rlen, urec, ulen),
               kj_d_name(b, name, nlen, "kj_session_load: name"),
               kj_d_ptr(b, rec, "kj_session_load: rec"),
               kj_d_ptr(b, rlen, "kj_session_load: rlen"),
               kj_d_ptr(b, urec, "kj_session_load: urec"),
               kj_d_ptr(b, ulen, "kj_session_load: ulen"));
}

int kj_session_contains(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                        size_t nlen, uint32_t device_id, int *has) {
  KJ_D_CLEAR(has);
  KJ_D_FORWARD(b, t, signal, session_contains,
               (b, t, dev, name, nlen, device_id, has),
               kj_d_name(b, name, nlen, "kj_session_contains: name"),
               kj_d_ptr(b, has, "kj_session_contains: has"));
}

int kj_session_remove(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                      size_t nlen, uint32_t device_id) {
  KJ_D_FORWARD(b, t, signal, session_remove, (b, t, dev, name, nlen, device_id),
               kj_d_name(b, name, nlen, "kj_session_remove: name"));
}

int kj_session_list_devices(kj_backend *b, kj_tx *t, uint32_t dev,
                            const void *name, size_t nlen, kj_u32_list **out) {
  KJ_D_CLEAR(out);
  KJ_D_FORWARD(b, t, signal, session_list_devices, (b, t, dev, name, nlen, out),
               kj_d_name(b, name, nlen, "kj_session_list_devices: name"),
               kj_d_ptr(b, out, "kj_session_list_devices: out"));
}

int kj_session_remove_all(kj_backend *b, kj_tx *t, uint32_t dev,
                          const void *name, size_t nlen, uint64_t *removed) {
  KJ_D_CLEAR(removed);
  KJ_D_FORWARD(b, t, signal, session_remove_all,
               (b, t, dev, name, nlen, removed),
               kj_d_name(b, name, nlen, "kj_session_remove_all: name"),
               kj_d_ptr(b, removed, "kj_session_remove_all: removed"));
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

int kj_prekey_has(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id,
                  int *has) {
  KJ_D_GET(b, t, signal, prekey_has, (b, t, dev, id, has), has);
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

int kj_signed_prekey_has(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id,
                         int *has) {
  KJ_D_GET(b, t, signal, signed_prekey_has, (b, t, dev, id, has), has);
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

int kj_sender_key_store(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                        size_t nlen, const void *rec, size_t rlen,
                        const void *urec, size_t ulen) {
  KJ_D_FORWARD(b, t, signal, sender_key_store,
               (b, t, dev, name, nlen, rec, rlen, urec, ulen),
               kj_d_id(b, name, nlen, "kj_sender_key_store: name"),
               kj_d_rec(b, rec, rlen, "kj_sender_key_store: record"),
               kj_d_opt(b, urec, ulen, KJ_MAX_RECORD,
                        "kj_sender_key_store: user record"));
}

int kj_sender_key_load(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                       size_t nlen, void **rec, size_t *rlen, void **urec,
                       size_t *ulen) {
  KJ_D_CLEAR(rec);
  KJ_D_CLEAR(rlen);
  KJ_D_CLEAR(urec);
  KJ_D_CLEAR(ulen);
  KJ_D_FORWARD(b, t, signal, sender_key_load,
               (b, t, dev, name, nlen, rec, rlen, urec, ulen),
               kj_d_id(b, name, nlen, "kj_sender_key_load: name"),
               kj_d_ptr(b, rec, "kj_sender_key_load: rec"),
               kj_d_ptr(b, rlen, "kj_sender_key_load: rlen"),
               kj_d_ptr(b, urec, "kj_sender_key_load: urec"),
               kj_d_ptr(b, ulen, "kj_sender_key_load: ulen"));
}
