/*
 * keyjournal/signal.h - the Signal store: identity keys, sessions,
 * pre-keys, signed pre-keys and sender keys of one device slot, and the
 * slot's own identity key pair and registration id.
 *
 * Conventions (transactions, device slots, limits, ownership: one
 * allocation, freed with kj_free) are in keyjournal/backend.h. Every call
 * is O(log n) in the slot's rows unless it says otherwise.
 *
 * Two ways to name a peer. The address calls (kj_identity_*,
 * kj_session_put/get/has/delete) take an address: any identifier bytes the
 * application chooses. The name calls (kj_session_store/load/contains/
 * remove/list_devices/remove_all) take a peer's name and device id, the
 * shape of libsignal's signal_protocol_address, and are the address calls
 * at the address kj_address_encode(name, device_id) gives: the same rows,
 * so a session stored by name is read by kj_session_get at that address
 * and the other way round. Sessions stored under any other address (rows
 * written before the name calls existed, say "alice.1") stay where they
 * are, reachable by the address calls only: the name calls neither list
 * nor remove them. To move one, read it with kj_session_get and store it
 * with kj_session_store.
 */
#ifndef KEYJOURNAL_SIGNAL_H
#define KEYJOURNAL_SIGNAL_H

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A raw public or private key (Curve25519). */
#define KJ_IDENTITY_KEY_BYTES 32u
/* A public key as libsignal serialises it: a type byte (0x05 for
 * Curve25519), then the 32 key bytes. */
#define KJ_IDENTITY_KEY_MAX 33u

/* ---- addresses: (name, device id) -> address -------------------------- */

/* Longest name of the name calls: its address must fit KJ_MAX_ID. */
#define KJ_MAX_NAME (KJ_MAX_ID - 6u)

/* The address of (name, device_id): the name's length as 2 bytes
 * big-endian, the name, then device_id as 4 bytes big-endian, nlen + 6
 * bytes in all, written to out (*alen gets the length). Addresses of one
 * name share the prefix of the first 2 + nlen bytes and sort by device id
 * (numeric); no name's prefix is another name's. name is 1..KJ_MAX_NAME
 * bytes, else KJ_EINVAL (out untouched, *alen 0). A pure function: no
 * backend, no row. */
int kj_address_encode(const void *name, size_t nlen, uint32_t device_id,
                      uint8_t out[KJ_MAX_ID], size_t *alen);

/* ---- identity keys: address -> public key (32 or 33 bytes) ------------ */

/* Store (replace) the identity key of address. key is exactly 32 bytes
 * (the same as kj_identity_put_key with klen 32). */
int kj_identity_put(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                    size_t alen, const uint8_t key[KJ_IDENTITY_KEY_BYTES]);
/* KJ_OK with the 32 key bytes copied into key_out, or KJ_NOTFOUND. A key
 * stored with 33 bytes gives its last 32 (the key without its type byte).
 * On any other status key_out is untouched. */
int kj_identity_load(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                     size_t alen, uint8_t key_out[KJ_IDENTITY_KEY_BYTES]);
/* Remove it; absent is KJ_OK. */
int kj_identity_delete(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                       size_t alen);

/* Store (replace) the identity key of address as klen bytes: 32 (a raw
 * key) or 33 (libsignal's form, type byte first: ec_public_key_serialize
 * and the key_data of save_identity). Any other length, or key NULL:
 * KJ_EINVAL. The bytes are kept as given; the type byte is not checked. */
int kj_identity_put_key(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                        size_t alen, const uint8_t *key, size_t klen);
/* KJ_OK with the key exactly as stored (32 or 33 bytes) copied into
 * key_out and its length in *klen, or KJ_NOTFOUND (*klen 0). On any status
 * other than KJ_OK key_out is untouched. key_out and klen non-NULL. */
int kj_identity_get_key(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                        size_t alen, uint8_t key_out[KJ_IDENTITY_KEY_MAX],
                        size_t *klen);

/* ---- the slot's own identity: key pair and registration id ------------ */

/* What libsignal asks of get_identity_key_pair and
 * get_local_registration_id, one per slot. It is separate from the device
 * record (device.h): saving one never changes the other. */
typedef struct kj_local_identity {
  uint32_t registration_id;
  size_t public_len; /* 32 or 33 (type byte first) */
  uint8_t public_key[KJ_IDENTITY_KEY_MAX];
  uint8_t private_key[KJ_IDENTITY_KEY_BYTES];
} kj_local_identity;

/* Store (replace) the local identity of slot dev. public_len other than
 * 32 or 33, or id NULL: KJ_EINVAL. Bytes of public_key past public_len
 * are not read. */
int kj_local_identity_save(kj_backend *b, kj_tx *t, uint32_t dev,
                           const kj_local_identity *id);
/* KJ_OK with the identity copied into *out (public_key bytes past
 * public_len are zero), or KJ_NOTFOUND. On any status other than KJ_OK
 * *out is untouched. */
int kj_local_identity_load(kj_backend *b, kj_tx *t, uint32_t dev,
                           kj_local_identity *out);
/* Remove it; absent is KJ_OK. */
int kj_local_identity_delete(kj_backend *b, kj_tx *t, uint32_t dev);

/* ---- sessions: address -> record (and user record) --------------------- */

/* Store (replace) the session at addr: the record, and no user record
 * (one stored by kj_session_store is dropped). */
int kj_session_put(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                   size_t alen, const void *rec, size_t rlen);
/* KJ_OK with *rec (free with kj_free) and *rlen, or KJ_NOTFOUND. */
int kj_session_get(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                   size_t alen, void **rec, size_t *rlen);
/* KJ_OK with *has 1 or 0. */
int kj_session_has(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                   size_t alen, int *has);
/* Remove the session and its user record; absent is KJ_OK. */
int kj_session_delete(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                      size_t alen);

/* ---- sessions by (name, device id): record and user record ------------ */

/* A session may carry a user record: 0..KJ_MAX_RECORD bytes the
 * application keeps beside the record (libsignal's user_record). 0 bytes
 * is no user record (urec may then be NULL); there is no difference
 * between an empty and an absent one. kj_session_put writes a session
 * without one (replacing one there); kj_session_get returns the record
 * only; kj_session_has and kj_session_delete see and remove the session
 * whichever call wrote it.
 *
 * Every name is 1..KJ_MAX_NAME bytes, compared exactly ("bob" is not
 * "bobby"); device_id is any u32, 0 included. */

/* Store (replace) the session of (name, device_id): record 1..KJ_MAX_RECORD
 * bytes, user record as above. The same row as kj_session_put at
 * kj_address_encode(name, device_id). */
int kj_session_store(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                     size_t nlen, uint32_t device_id, const void *rec,
                     size_t rlen, const void *urec, size_t ulen);
/* KJ_OK with *rec, *rlen and *urec, *ulen (two allocations, each freed
 * with kj_free; *urec NULL and *ulen 0 when there is no user record), or
 * KJ_NOTFOUND. All four pointers non-NULL. */
int kj_session_load(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                    size_t nlen, uint32_t device_id, void **rec, size_t *rlen,
                    void **urec, size_t *ulen);
/* KJ_OK with *has 1 or 0 (kj_session_has at the name's address). */
int kj_session_contains(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                        size_t nlen, uint32_t device_id, int *has);
/* Remove the session and its user record; absent is KJ_OK. */
int kj_session_remove(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                      size_t nlen, uint32_t device_id);
/* The device ids of name's sessions, ascending (numeric), each once; an
 * empty list when there is none. Cost: O(k log n) for k sessions of the
 * name (a prefix scan). */
int kj_session_list_devices(kj_backend *b, kj_tx *t, uint32_t dev,
                            const void *name, size_t nlen, kj_u32_list **out);
/* Remove every session of name (each with its user record), atomically;
 * *removed gets how many (0: none, still KJ_OK). Other names, "bob" beside
 * "bobby" included, are untouched. Cost: O(k log n). */
int kj_session_remove_all(kj_backend *b, kj_tx *t, uint32_t dev,
                          const void *name, size_t nlen, uint64_t *removed);

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
/* KJ_OK with *has 1 if pre-key id is stored, else 0. */
int kj_prekey_has(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id, int *has);

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
/* KJ_OK with *has 1 if signed pre-key id is stored, else 0. */
int kj_signed_prekey_has(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id,
                         int *has);

/* ---- sender keys: sender key name (group + sender) -> record ---------- */

int kj_sender_key_put(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                      size_t nlen, const void *rec, size_t rlen);
int kj_sender_key_get(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                      size_t nlen, void **rec, size_t *rlen);
/* Remove the record and its user record; absent is KJ_OK. */
int kj_sender_key_delete(kj_backend *b, kj_tx *t, uint32_t dev,
                         const void *name, size_t nlen);

/* A sender key may carry a user record, with the rules of a session's
 * (above): kj_sender_key_put writes none (replacing one there),
 * kj_sender_key_get returns the record only. */

/* Store (replace) the record (1..KJ_MAX_RECORD bytes) and user record
 * (0..KJ_MAX_RECORD) of name. */
int kj_sender_key_store(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                        size_t nlen, const void *rec, size_t rlen,
                        const void *urec, size_t ulen);
/* KJ_OK with *rec, *rlen and *urec, *ulen (two allocations; *urec NULL and
 * *ulen 0 when there is no user record), or KJ_NOTFOUND. */
int kj_sender_key_load(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                       size_t nlen, void **rec, size_t *rlen, void **urec,
                       size_t *ulen);

#ifdef __cplusplus
}
#endif

#endif /* KEYJOURNAL_SIGNAL_H */
