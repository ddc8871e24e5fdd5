/*
 * keyjournal/appsync.h - the app-state sync store: sync keys, collection
 * versions (hash states) and mutation MACs of one device slot.
 *
 * Conventions (transactions, device slots, limits, ownership: one
 * allocation, freed with kj_free) are in keyjournal/backend.h.
 */
#ifndef KEYJOURNAL_APPSYNC_H
#define KEYJOURNAL_APPSYNC_H

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- sync keys: key_id -> {key_data, fingerprint, timestamp} ---------- */

typedef struct kj_sync_key {
  kj_blob key_data;    /* 1..KJ_MAX_RECORD bytes */
  kj_blob fingerprint; /* 0..KJ_MAX_RECORD bytes */
  int64_t timestamp;
} kj_sync_key;

/* Store (replace) key_id. It becomes the latest key (kj_sync_key_latest),
 * whatever its timestamp. */
int kj_sync_key_set(kj_backend *b, kj_tx *t, uint32_t dev, const void *key_id,
                    size_t idlen, const kj_sync_key *key);
/* KJ_OK with *out (one allocation), or KJ_NOTFOUND. */
int kj_sync_key_get(kj_backend *b, kj_tx *t, uint32_t dev, const void *key_id,
                    size_t idlen, kj_sync_key **out);
/* The key_id of the most recently set key, in commit order (not the
 * largest timestamp): KJ_OK with *id (kj_free) and *idlen, or KJ_NOTFOUND
 * when no key was ever set in the slot. */
int kj_sync_key_latest(kj_backend *b, kj_tx *t, uint32_t dev, void **id,
                       size_t *idlen);

/* ---- collection versions: name -> hash state ------------------------- */

#define KJ_SYNC_HASH_BYTES 128u

typedef struct kj_sync_entry {
  kj_blob name;  /* index: 1..KJ_MAX_ID bytes, unique within a map */
  kj_blob value; /* 0..KJ_MAX_ID bytes */
} kj_sync_entry;

typedef struct kj_sync_version {
  uint64_t version;
  uint8_t hash[KJ_SYNC_HASH_BYTES];
  size_t n;               /* entries of the index -> value map */
  kj_sync_entry *entries; /* on output: ascending by name */
} kj_sync_version;

/* Replace the state of collection name. entries may come in any order; a
 * name given twice, or a map whose names and values add up to more than
 * KJ_MAX_RECORD bytes (counting 8 bytes per entry besides): KJ_EINVAL. */
int kj_sync_version_set(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                        size_t nlen, const kj_sync_version *v);
/* KJ_OK with *out (one allocation). An unknown name gives the zero state
 * (version 0, zero hash, empty map), not KJ_NOTFOUND. */
int kj_sync_version_get(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                        size_t nlen, kj_sync_version **out);

/* ---- mutation MACs: (name, index_mac) -> (version, value_mac) --------- */

typedef struct kj_mutation_mac {
  kj_blob index_mac; /* 1..KJ_MAX_ID bytes */
  kj_blob value_mac; /* 1..KJ_MAX_ID bytes */
} kj_mutation_mac;

/* Store n MACs of collection name at version, atomically; an existing
 * (name, index_mac) gets the new value_mac and version. A duplicate
 * index_mac in the batch: the last one wins. n may be 0. */
int kj_mutation_mac_put(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                        size_t nlen, uint64_t version,
                        const kj_mutation_mac *macs, size_t n);
/* KJ_OK with *value_mac (kj_free), *vlen and (if version is not NULL)
 * *version, or KJ_NOTFOUND. */
int kj_mutation_mac_get(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                        size_t nlen, const void *index_mac, size_t ilen,
                        void **value_mac, size_t *vlen, uint64_t *version);
/* Remove the MACs index_macs[0..n) of collection name; absent ones are
 * ignored. */
int kj_mutation_mac_delete(kj_backend *b, kj_tx *t, uint32_t dev,
                           const void *name, size_t nlen,
                           const kj_blob *index_macs, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* KEYJOURNAL_APPSYNC_H */
