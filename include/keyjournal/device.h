/*
 * keyjournal/device.h - device slots (accounts) and their device records.
 *
 * One store holds any number of device slots. Every row of the other
 * stores belongs to one slot; deleting a slot deletes all its rows in one
 * commit. Conventions (transactions, ownership: one allocation, freed with
 * kj_free) are in keyjournal/backend.h.
 */
#ifndef KEYJOURNAL_DEVICE_H
#define KEYJOURNAL_DEVICE_H

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a client keeps about its own device. Optional fields have a has_
 * flag; their blobs are 0..KJ_MAX_ID bytes (account: 0..KJ_MAX_RECORD). */
typedef struct kj_device_record {
  int has_phone_jid;
  kj_blob phone_jid;
  int has_lid;
  kj_blob lid;
  uint32_t registration_id;
  uint8_t noise_pub[32], noise_priv[32];
  uint8_t identity_pub[32], identity_priv[32];
  uint8_t signed_prekey_pub[32], signed_prekey_priv[32];
  uint32_t signed_prekey_id;
  uint8_t signed_prekey_sig[64];
  uint8_t adv_secret[32];
  int has_account;
  kj_blob account;
  kj_blob push_name; /* 0..KJ_MAX_ID */
  uint32_t app_version[3];
  int64_t app_version_fetched_at_ms;
  int has_edge_routing;
  kj_blob edge_routing;
  int has_props_hash;
  kj_blob props_hash;
} kj_device_record;

/* Create an empty slot: ids are 1, 2, 3, ... and never reused, even after
 * kj_device_delete. Id 0 is never a slot: every function below treats it
 * as an absent slot. */
int kj_device_create(kj_backend *b, kj_tx *t, uint32_t *id);
/* Create an empty slot, as kj_device_create, that carries label: 1..KJ_MAX_ID
 * bytes naming at most one slot of the store, so that an application can
 * find its slot again (kj_device_find) without keeping the id elsewhere.
 * A label already carried by a slot: KJ_EEXIST, nothing created (no id
 * used). The label stays with the slot until kj_device_delete frees it; a
 * slot made by kj_device_create has none. */
int kj_device_create_labeled(kj_backend *b, kj_tx *t, const void *label,
                             size_t llen, uint32_t *id);
/* KJ_OK with *id the slot that carries label, or KJ_NOTFOUND (*id 0).
 * Labels compare exactly, as every identifier. */
int kj_device_find(kj_backend *b, kj_tx *t, const void *label, size_t llen,
                   uint32_t *id);
/* Every slot id, ascending. */
int kj_device_list_ids(kj_backend *b, kj_tx *t, kj_u32_list **out);
/* KJ_OK with *exists 1 or 0. */
int kj_device_exists(kj_backend *b, kj_tx *t, uint32_t id, int *exists);
/* Store (replace) the record of slot id; KJ_NOTFOUND if no such slot
 * (id 0 included). */
int kj_device_save(kj_backend *b, kj_tx *t, uint32_t id,
                   const kj_device_record *r);
/* KJ_OK with *out (one allocation), or KJ_NOTFOUND (no slot, or nothing
 * saved in it yet). */
int kj_device_load(kj_backend *b, kj_tx *t, uint32_t id,
                   kj_device_record **out);
/* Delete slot id and every row it owns (its label included), atomically;
 * absent is KJ_OK. Cost: O(rows of the slot). */
int kj_device_delete(kj_backend *b, kj_tx *t, uint32_t id);

/* Write a consistent, openable copy of the whole store (committed state;
 * same key) for debugging, plus extra bytes (NULL: none), under the
 * directory copies/ next to the store's files. The label is sanitised so
 * that it can never name a path outside copies/: bytes other than
 * [A-Za-z0-9._-] become '_', a leading '.' becomes '_', it is cut to 64
 * bytes, and an empty label becomes "copy". The label is 0..KJ_MAX_ID
 * bytes (NULL only when llen is 0). copies/ is created if absent and must
 * be a real directory (a symlink there: KJ_EIO).
 *
 * Where the copy goes depends on the backend, and *path (if not NULL;
 * kj_free) receives it:
 *   native:  <store dir>/copies/<label>/, a store directory that opens with
 *            kj_backend_open(path, same key); extra bytes sealed with the
 *            store's key in extra.bin in it, read back with
 *            kj_store_read_extra(kj_backend_store(copy), ...);
 *   SQLite (the test oracle's reference, not for real data): <db
 *            dir>/copies/<label>.db, a database file; extra bytes in
 *            plaintext in <label>.db.extra, as its database is.
 * A failure after the copy itself was written (writing the extra bytes)
 * leaves the copy in place.
 *
 * Errors: KJ_EEXIST (that label exists), KJ_EINVAL (memory-only or
 * read-only store, label over KJ_MAX_ID, extra over KJ_MAX_RECORD),
 * KJ_EIO, KJ_ENOSPC. Cost: a snapshot write. */
int kj_device_snapshot_copy(kj_backend *b, kj_tx *t, const void *label,
                            size_t llen, const void *extra, size_t elen,
                            char **path);

#ifdef __cplusplus
}
#endif

#endif /* KEYJOURNAL_DEVICE_H */
