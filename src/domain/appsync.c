/*
 * src/domain/appsync.c - the public functions of keyjournal/appsync.h.
 *
 * Each one clears its outputs, checks its arguments (src/domain/dispatch.h) and
 * calls the backend's function. The checks live here so every backend
 * rejects the same input the same way; that includes the whole content of
 * a version map (sizes, duplicate names, total size) and of every item of
 * a MAC batch, so a bad item fails the call before anything is written.
 */
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"

/* Bytes a version map entry counts besides its name and value (the header's
 * rule), so a map of empty values still has a bounded size. */
#define SYNC_ENTRY_OVERHEAD 8u

/* ---- sync keys --------------------------------------------------------- */

int kj_sync_key_set(kj_backend *b, kj_tx *t, uint32_t dev, const void *key_id,
                    size_t idlen, const kj_sync_key *key) {
  KJ_D_FORWARD(b, t, appsync, sync_key_set, (b, t, dev, key_id, idlen, key),
               kj_d_id(b, key_id, idlen, "kj_sync_key_set: key_id"),
               kj_d_ptr(b, key, "kj_sync_key_set: key"),
               kj_d_rec(b, key->key_data.p, key->key_data.len,
                        "kj_sync_key_set: key_data"),
               kj_d_opt(b, key->fingerprint.p, key->fingerprint.len,
                        KJ_MAX_RECORD, "kj_sync_key_set: fingerprint"));
}

int kj_sync_key_get(kj_backend *b, kj_tx *t, uint32_t dev, const void *key_id,
                    size_t idlen, kj_sync_key **out) {
  KJ_D_GET_BY_ID(b, t, appsync, sync_key_get, dev, key_id, idlen, "key_id",
                 out);
}

int kj_sync_key_latest(kj_backend *b, kj_tx *t, uint32_t dev, void **id,
                       size_t *idlen) {
  KJ_D_CLEAR(id);
  KJ_D_CLEAR(idlen);
  KJ_D_FORWARD(b, t, appsync, sync_key_latest, (b, t, dev, id, idlen),
               kj_d_ptr(b, id, "kj_sync_key_latest: id"),
               kj_d_ptr(b, idlen, "kj_sync_key_latest: idlen"));
}

/* ---- collection versions ----------------------------------------------- */

static int cmp_entry_name(const void *x, const void *y) {
  const kj_sync_entry *a = *(const kj_sync_entry *const *)x;
  const kj_sync_entry *b = *(const kj_sync_entry *const *)y;
  size_t n = a->name.len < b->name.len ? a->name.len : b->name.len;
  int c = memcmp(a->name.p, b->name.p, n);
  if (c)
    return c;
  return (a->name.len > b->name.len) - (a->name.len < b->name.len);
}

/* Sizes of every entry, the total, then duplicate names: sorting pointers
 * to the entries finds a duplicate in O(n log n) without touching the
 * caller's array. */
static int check_map(kj_backend *b, const kj_sync_version *v) {
  /* Every entry counts at least SYNC_ENTRY_OVERHEAD + 1 bytes, so a map
   * with more entries than this is over the total anyway. */
  int rc =
      kj_d_array(b, v->entries, v->n, KJ_MAX_RECORD / (SYNC_ENTRY_OVERHEAD + 1),
                 "kj_sync_version_set: entries");
  size_t total = 0;
  for (size_t i = 0; !rc && i < v->n; i++) {
    const kj_sync_entry *e = &v->entries[i];
    rc = kj_d_id(b, e->name.p, e->name.len, "kj_sync_version_set: a name");
    if (!rc)
      rc = kj_d_opt(b, e->value.p, e->value.len, KJ_MAX_ID,
                    "kj_sync_version_set: a value");
    total += e->name.len + e->value.len + SYNC_ENTRY_OVERHEAD;
  }
  if (!rc && total > KJ_MAX_RECORD)
    rc = kj_d_fail(b, KJ_EINVAL,
                   "kj_sync_version_set: map of %zu bytes (at most %u)", total,
                   KJ_MAX_RECORD);
  if (rc || v->n < 2)
    return rc;
  const kj_sync_entry **ix = malloc(v->n * sizeof *ix);
  if (!ix)
    return kj_d_fail(b, KJ_ENOMEM, "kj_sync_version_set: out of memory");
  for (size_t i = 0; i < v->n; i++)
    ix[i] = &v->entries[i];
  qsort(ix, v->n, sizeof *ix, cmp_entry_name);
  for (size_t i = 1; !rc && i < v->n; i++)
    if (!cmp_entry_name(&ix[i - 1], &ix[i]))
      rc = kj_d_fail(b, KJ_EINVAL, "kj_sync_version_set: a name given twice");
  free(ix);
  return rc;
}

int kj_sync_version_set(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                        size_t nlen, const kj_sync_version *v) {
  KJ_D_FORWARD(b, t, appsync, sync_version_set, (b, t, dev, name, nlen, v),
               kj_d_id(b, name, nlen, "kj_sync_version_set: name"),
               kj_d_ptr(b, v, "kj_sync_version_set: v"), check_map(b, v));
}

int kj_sync_version_get(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                        size_t nlen, kj_sync_version **out) {
  KJ_D_GET_BY_ID(b, t, appsync, sync_version_get, dev, name, nlen, "name", out);
}

/* ---- mutation MACs ----------------------------------------------------- */

static int check_macs(kj_backend *b, const kj_mutation_mac *macs, size_t n) {
  int rc = KJ_OK;
  for (size_t i = 0; !rc && i < n; i++) {
    rc = kj_d_id(b, macs[i].index_mac.p, macs[i].index_mac.len,
                 "kj_mutation_mac_put: an index_mac");
    if (!rc)
      rc = kj_d_id(b, macs[i].value_mac.p, macs[i].value_mac.len,
                   "kj_mutation_mac_put: a value_mac");
  }
  return rc;
}

int kj_mutation_mac_put(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                        size_t nlen, uint64_t version,
                        const kj_mutation_mac *macs, size_t n) {
  KJ_D_FORWARD(
      b, t, appsync, mutation_mac_put,
      (b, t, dev, name, nlen, version, macs, n),
      kj_d_id(b, name, nlen, "kj_mutation_mac_put: name"),
      kj_d_array(b, macs, n, KJ_MAX_BATCH, "kj_mutation_mac_put: macs"),
      check_macs(b, macs, n));
}

int kj_mutation_mac_get(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                        size_t nlen, const void *index_mac, size_t ilen,
                        void **value_mac, size_t *vlen, uint64_t *version) {
  KJ_D_CLEAR(value_mac);
  KJ_D_CLEAR(vlen);
  KJ_D_CLEAR(version);
  KJ_D_FORWARD(
      b, t, appsync, mutation_mac_get,
      (b, t, dev, name, nlen, index_mac, ilen, value_mac, vlen, version),
      kj_d_id(b, name, nlen, "kj_mutation_mac_get: name"),
      kj_d_id(b, index_mac, ilen, "kj_mutation_mac_get: index_mac"),
      kj_d_ptr(b, value_mac, "kj_mutation_mac_get: value_mac"),
      kj_d_ptr(b, vlen, "kj_mutation_mac_get: vlen"));
}

static int check_index_macs(kj_backend *b, const kj_blob *index_macs,
                            size_t n) {
  int rc = KJ_OK;
  for (size_t i = 0; !rc && i < n; i++)
    rc = kj_d_id(b, index_macs[i].p, index_macs[i].len,
                 "kj_mutation_mac_delete: an index_mac");
  return rc;
}

int kj_mutation_mac_delete(kj_backend *b, kj_tx *t, uint32_t dev,
                           const void *name, size_t nlen,
                           const kj_blob *index_macs, size_t n) {
  KJ_D_FORWARD(b, t, appsync, mutation_mac_delete,
               (b, t, dev, name, nlen, index_macs, n),
               kj_d_id(b, name, nlen, "kj_mutation_mac_delete: name"),
               kj_d_array(b, index_macs, n, KJ_MAX_BATCH,
                          "kj_mutation_mac_delete: index_macs"),
               check_index_macs(b, index_macs, n));
}
