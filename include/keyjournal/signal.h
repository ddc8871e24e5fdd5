/*
 * keyjournal/signal.h - the Signal store: identity keys, sessions,
 * pre-keys, signed pre-keys and sender keys of one device slot.
 *
 * Conventions (transactions, device slots, limits, ownership: one
 * allocation, freed with kj_free) are in keyjournal/backend.h. Every call
 * is O(log n) in the slot's rows unless it says otherwise.
 */
#ifndef KEYJOURNAL_SIGNAL_H
#define KEYJOURNAL_SIGNAL_H

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KJ_IDENTITY_KEY_BYTES 32u

/* ---- identity keys: address -> 32-byte public key --------------------- */

/* Store (replace) the identity key of address. key is exactly 32 bytes. */
int kj_identity_put(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                    size_t alen, const uint8_t key[KJ_IDENTITY_KEY_BYTES]);
/* KJ_OK with the key copied into key_out, or KJ_NOTFOUND. */
int kj_identity_load(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                     size_t alen, uint8_t key_out[KJ_IDENTITY_KEY_BYTES]);
/* Remove it; absent is KJ_OK. */
int kj_identity_delete(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                       size_t alen);

/* ---- sessions: address -> record -------------------------------------- */

int kj_session_put(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                   size_t alen, const void *rec, size_t rlen);
/* KJ_OK with *rec (free with kj_free) and *rlen, or KJ_NOTFOUND. */
int kj_session_get(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                   size_t alen, void **rec, size_t *rlen);
/* KJ_OK with *has 1 or 0. */
int kj_session_has(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                   size_t alen, int *has);
int kj_session_delete(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                      size_t alen);

/* ---- one-time pre-keys: u32 id -> (record, uploaded) ------------------ */

typedef struct kj_prekey {
  uint32_t id;
  int uploaded; /* 0 or 1 */
  kj_blob record;
} kj_prekey;

/* One allocation: the array and every record it points to. */
typedef struct kj_prekey_list {
  size_t n;
  kj_prekey v[];
} kj_prekey_list;

/* Store (replace) pre-key id with its uploaded flag. */
int kj_prekey_store(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id,
                    const void *rec, size_t rlen, int uploaded);
/* Store n pre-keys atomically, all with the same uploaded flag. n may be
 * 0 (nothing happens). A duplicate id in the batch: the last one wins.
 * Any bad record: KJ_EINVAL and nothing stored. */
int kj_prekey_store_batch(kj_backend *b, kj_tx *t, uint32_t dev,
                          const kj_prekey *keys, size_t n, int uploaded);
/* KJ_OK with *out (one allocation, n == 1), or KJ_NOTFOUND. */
int kj_prekey_load(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id,
                   kj_prekey_list **out);
/* The pre-keys among ids[0..n) that exist, ascending by id, each once.
 * Cost: O(n log n). */
int kj_prekey_load_batch(kj_backend *b, kj_tx *t, uint32_t dev,
                         const uint32_t *ids, size_t n, kj_prekey_list **out);
/* Remove (consume) pre-key id; absent is KJ_OK. */
int kj_prekey_remove(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id);
/* Set uploaded on each of ids[0..n) that exists. An absent id stays
 * absent: a consumed key is never resurrected. */
int kj_prekey_mark_uploaded(kj_backend *b, kj_tx *t, uint32_t dev,
                            const uint32_t *ids, size_t n);
/* Largest stored id, 0 when there is none. Cost: O(log n). */
int kj_prekey_max_id(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t *max_id);

/* ---- signed pre-keys: u32 id -> record -------------------------------- */

int kj_signed_prekey_store(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id,
                           const void *rec, size_t rlen);
/* KJ_OK with *out (n == 1; uploaded is 0), or KJ_NOTFOUND. */
int kj_signed_prekey_load(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id,
                          kj_prekey_list **out);
/* Every signed pre-key of the slot, ascending by id (numeric). */
int kj_signed_prekey_load_all(kj_backend *b, kj_tx *t, uint32_t dev,
                              kj_prekey_list **out);
int kj_signed_prekey_remove(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id);

/* ---- sender keys: sender key name (group + sender) -> record ---------- */

int kj_sender_key_put(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                      size_t nlen, const void *rec, size_t rlen);
int kj_sender_key_get(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                      size_t nlen, void **rec, size_t *rlen);
int kj_sender_key_delete(kj_backend *b, kj_tx *t, uint32_t dev,
                         const void *name, size_t nlen);

#ifdef __cplusplus
}
#endif

#endif /* KEYJOURNAL_SIGNAL_H */
