/*
 * keyjournal/sys/backend.h - the domain contract as a table of operations
 * (implementer header).
 *
 * A backend is an implementation's own struct with a struct kj_backend
 * embedded FIRST; that struct points to ONE table of operations, a
 * kj_backend_ops the implementation defines `static const`, shared by all
 * its handles (like SQLite's sqlite3_io_methods):
 *
 *   static const kj_signal_ops my_signal = {.identity_put = my_identity_put,
 *                                           ...};
 *   static const kj_backend_ops my_ops = {
 *       KJ_BACKEND_OPS_INIT("mine"), // first: version and name
 *       .close = my_close, .errmsg = my_errmsg, ...,
 *       .signal = &my_signal, ...};
 *
 *   my_backend *m = calloc(1, sizeof *m);
 *   m->base.ops = &my_ops;   // or KJ_BACKEND_INIT(&my_ops) in an initializer
 *   *out = &m->base;
 *
 * Each operation has exactly the signature of the public function of the
 * same name (kj_<name>) and the same contract; it is called only after the
 * public function has checked the arguments (non-NULL pointers, lengths
 * within KJ_MAX_ID / KJ_MAX_RECORD, exact key sizes, t begun on b), so an
 * implementation may rely on them. Out pointers are set to NULL by the
 * caller before the call. A NULL operation, or a NULL store group (every
 * operation of that store), makes the public function fail with KJ_EINVAL
 * ("not implemented") without a call.
 *
 * Versions: the table's version says which layout it was built against;
 * KJ_BACKEND_OPS_INIT sets it to the KJ_BACKEND_VERSION of the header the
 * backend was compiled with. Every function of the library that takes a
 * backend (every domain function, kj_backend_close, kj_backend_errmsg,
 * kj_backend_begin/commit/rollback, kj_backend_store) first checks it and
 * refuses a backend of any other version with KJ_EFORMAT ("backend X
 * implements backend interface version N; this library implements M", in
 * kj_backend_errmsg) without calling any of its operations; such a handle
 * cannot be closed by the library either. version and name stay the first
 * two fields in every version, so the refusal can name the backend.
 *
 * Transactions: an implementation defines its own transaction struct with a
 * struct kj_tx embedded first; tx_begin allocates it, tx_commit and
 * tx_rollback free it. Every operation receives t (possibly NULL: then the
 * operation must be atomic on its own).
 */
#ifndef KEYJOURNAL_SYS_BACKEND_H
#define KEYJOURNAL_SYS_BACKEND_H

#include "../appsync.h"
#include "../backend.h"
#include "../device.h"
#include "../protocol.h"
#include "../ratchet.h"
#include "../signal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 2: the operations moved out of struct kj_backend into one shared
 * kj_backend_ops table, the store groups are pointers.
 * 3: kj_signal_ops and kj_device_ops grew the operations of issue 17
 * (sessions by name and device id, user records, identity keys of 32 or
 * 33 bytes, the local identity, pre-key has, slot labels), at their ends. */
#define KJ_BACKEND_VERSION 3

/* Every transaction struct starts with this. */
struct kj_tx {
  kj_backend *backend;
};

/* keyjournal/signal.h */
typedef struct kj_signal_ops {
  int (*identity_put)(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                      size_t alen, const uint8_t key[KJ_IDENTITY_KEY_BYTES]);
  int (*identity_load)(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                       size_t alen, uint8_t key_out[KJ_IDENTITY_KEY_BYTES]);
  int (*identity_delete)(kj_backend *b, kj_tx *t, uint32_t dev,
                         const void *addr, size_t alen);
  int (*session_put)(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                     size_t alen, const void *rec, size_t rlen);
  int (*session_get)(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                     size_t alen, void **rec, size_t *rlen);
  int (*session_has)(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                     size_t alen, int *has);
  int (*session_delete)(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                        size_t alen);
  int (*prekey_store)(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id,
                      const void *rec, size_t rlen, int uploaded);
  int (*prekey_store_batch)(kj_backend *b, kj_tx *t, uint32_t dev,
                            const kj_prekey *keys, size_t n, int uploaded);
  int (*prekey_load)(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id,
                     kj_prekey_list **out);
  int (*prekey_load_batch)(kj_backend *b, kj_tx *t, uint32_t dev,
                           const uint32_t *ids, size_t n, kj_prekey_list **out);
  int (*prekey_remove)(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id);
  int (*prekey_mark_uploaded)(kj_backend *b, kj_tx *t, uint32_t dev,
                              const uint32_t *ids, size_t n);
  int (*prekey_max_id)(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t *max_id);
  int (*signed_prekey_store)(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id,
                             const void *rec, size_t rlen);
  int (*signed_prekey_load)(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id,
                            kj_prekey_list **out);
  int (*signed_prekey_load_all)(kj_backend *b, kj_tx *t, uint32_t dev,
                                kj_prekey_list **out);
  int (*signed_prekey_remove)(kj_backend *b, kj_tx *t, uint32_t dev,
                              uint32_t id);
  int (*sender_key_put)(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                        size_t nlen, const void *rec, size_t rlen);
  int (*sender_key_get)(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                        size_t nlen, void **rec, size_t *rlen);
  int (*sender_key_delete)(kj_backend *b, kj_tx *t, uint32_t dev,
                           const void *name, size_t nlen);
  /* version 3 */
  int (*identity_put_key)(kj_backend *b, kj_tx *t, uint32_t dev,
                          const void *addr, size_t alen, const uint8_t *key,
                          size_t klen);
  int (*identity_get_key)(kj_backend *b, kj_tx *t, uint32_t dev,
                          const void *addr, size_t alen,
                          uint8_t key_out[KJ_IDENTITY_KEY_MAX], size_t *klen);
  int (*local_identity_save)(kj_backend *b, kj_tx *t, uint32_t dev,
                             const kj_local_identity *id);
  int (*local_identity_load)(kj_backend *b, kj_tx *t, uint32_t dev,
                             kj_local_identity *out);
  int (*local_identity_delete)(kj_backend *b, kj_tx *t, uint32_t dev);
  int (*session_store)(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                       size_t nlen, uint32_t device_id, const void *rec,
                       size_t rlen, const void *urec, size_t ulen);
  int (*session_load)(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                      size_t nlen, uint32_t device_id, void **rec, size_t *rlen,
                      void **urec, size_t *ulen);
  int (*session_contains)(kj_backend *b, kj_tx *t, uint32_t dev,
                          const void *name, size_t nlen, uint32_t device_id,
                          int *has);
  int (*session_remove)(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                        size_t nlen, uint32_t device_id);
  int (*session_list_devices)(kj_backend *b, kj_tx *t, uint32_t dev,
                              const void *name, size_t nlen, kj_u32_list **out);
  int (*session_remove_all)(kj_backend *b, kj_tx *t, uint32_t dev,
                            const void *name, size_t nlen, uint64_t *removed);
  int (*prekey_has)(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id,
                    int *has);
  int (*signed_prekey_has)(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id,
                           int *has);
  int (*sender_key_store)(kj_backend *b, kj_tx *t, uint32_t dev,
                          const void *name, size_t nlen, const void *rec,
                          size_t rlen, const void *urec, size_t ulen);
  int (*sender_key_load)(kj_backend *b, kj_tx *t, uint32_t dev,
                         const void *name, size_t nlen, void **rec,
                         size_t *rlen, void **urec, size_t *ulen);
} kj_signal_ops;

/* keyjournal/appsync.h */
typedef struct kj_appsync_ops {
  int (*sync_key_set)(kj_backend *b, kj_tx *t, uint32_t dev, const void *key_id,
                      size_t idlen, const kj_sync_key *key);
  int (*sync_key_get)(kj_backend *b, kj_tx *t, uint32_t dev, const void *key_id,
                      size_t idlen, kj_sync_key **out);
  int (*sync_key_latest)(kj_backend *b, kj_tx *t, uint32_t dev, void **id,
                         size_t *idlen);
  int (*sync_version_set)(kj_backend *b, kj_tx *t, uint32_t dev,
                          const void *name, size_t nlen,
                          const kj_sync_version *v);
  int (*sync_version_get)(kj_backend *b, kj_tx *t, uint32_t dev,
                          const void *name, size_t nlen, kj_sync_version **out);
  int (*mutation_mac_put)(kj_backend *b, kj_tx *t, uint32_t dev,
                          const void *name, size_t nlen, uint64_t version,
                          const kj_mutation_mac *macs, size_t n);
  int (*mutation_mac_get)(kj_backend *b, kj_tx *t, uint32_t dev,
                          const void *name, size_t nlen, const void *index_mac,
                          size_t ilen, void **value_mac, size_t *vlen,
                          uint64_t *version);
  int (*mutation_mac_delete)(kj_backend *b, kj_tx *t, uint32_t dev,
                             const void *name, size_t nlen,
                             const kj_blob *index_macs, size_t n);
} kj_appsync_ops;

/* keyjournal/protocol.h */
typedef struct kj_protocol_ops {
  int (*skdm_get)(kj_backend *b, kj_tx *t, uint32_t dev, const void *group,
                  size_t glen, kj_blob_list **out);
  int (*skdm_add)(kj_backend *b, kj_tx *t, uint32_t dev, const void *group,
                  size_t glen, const kj_blob *jids, size_t n);
  int (*skdm_clear)(kj_backend *b, kj_tx *t, uint32_t dev, const void *group,
                    size_t glen);
  int (*lid_put)(kj_backend *b, kj_tx *t, uint32_t dev,
                 const kj_lid_mapping *m);
  int (*lid_get_by_lid)(kj_backend *b, kj_tx *t, uint32_t dev, const void *lid,
                        size_t llen, kj_lid_mapping_list **out);
  int (*lid_get_by_phone)(kj_backend *b, kj_tx *t, uint32_t dev,
                          const void *phone, size_t plen,
                          kj_lid_mapping_list **out);
  int (*lid_get_all)(kj_backend *b, kj_tx *t, uint32_t dev,
                     kj_lid_mapping_list **out);
  int (*base_key_save)(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                       size_t alen, const void *msg_id, size_t mlen,
                       const void *base_key, size_t klen);
  int (*base_key_has_same)(kj_backend *b, kj_tx *t, uint32_t dev,
                           const void *addr, size_t alen, const void *msg_id,
                           size_t mlen, const void *base_key, size_t klen,
                           int *same);
  int (*base_key_delete)(kj_backend *b, kj_tx *t, uint32_t dev,
                         const void *addr, size_t alen, const void *msg_id,
                         size_t mlen);
  int (*device_list_update)(kj_backend *b, kj_tx *t, uint32_t dev,
                            const kj_device_list *r);
  int (*device_list_get)(kj_backend *b, kj_tx *t, uint32_t dev,
                         const void *user, size_t ulen, kj_device_list **out);
  int (*device_list_delete)(kj_backend *b, kj_tx *t, uint32_t dev,
                            const void *user, size_t ulen);
  int (*sender_key_mark_forget)(kj_backend *b, kj_tx *t, uint32_t dev,
                                const void *group, size_t glen,
                                const void *participant, size_t plen);
  int (*sender_key_consume_forget)(kj_backend *b, kj_tx *t, uint32_t dev,
                                   const void *group, size_t glen,
                                   kj_blob_list **out);
  int (*tc_token_put)(kj_backend *b, kj_tx *t, uint32_t dev, const void *jid,
                      size_t jlen, const kj_tc_token *tok);
  int (*tc_token_get)(kj_backend *b, kj_tx *t, uint32_t dev, const void *jid,
                      size_t jlen, kj_tc_token **out);
  int (*tc_token_delete)(kj_backend *b, kj_tx *t, uint32_t dev, const void *jid,
                         size_t jlen);
  int (*tc_token_all_jids)(kj_backend *b, kj_tx *t, uint32_t dev,
                           kj_blob_list **out);
  int (*tc_token_delete_expired)(kj_backend *b, kj_tx *t, uint32_t dev,
                                 int64_t cutoff, uint64_t *removed);
} kj_protocol_ops;

/* keyjournal/device.h */
typedef struct kj_device_ops {
  int (*device_create)(kj_backend *b, kj_tx *t, uint32_t *id);
  int (*device_list_ids)(kj_backend *b, kj_tx *t, kj_u32_list **out);
  int (*device_exists)(kj_backend *b, kj_tx *t, uint32_t id, int *exists);
  int (*device_save)(kj_backend *b, kj_tx *t, uint32_t id,
                     const kj_device_record *r);
  int (*device_load)(kj_backend *b, kj_tx *t, uint32_t id,
                     kj_device_record **out);
  int (*device_delete)(kj_backend *b, kj_tx *t, uint32_t id);
  int (*device_snapshot_copy)(kj_backend *b, kj_tx *t, const void *label,
                              size_t llen, const void *extra, size_t elen,
                              char **path);
  /* version 3 */
  int (*device_create_labeled)(kj_backend *b, kj_tx *t, const void *label,
                               size_t llen, uint32_t *id);
  int (*device_find)(kj_backend *b, kj_tx *t, const void *label, size_t llen,
                     uint32_t *id);
} kj_device_ops;

/* keyjournal/ratchet.h */
typedef struct kj_ratchet_ops {
  int (*ratchet_save)(kj_backend *b, kj_tx *t, uint32_t dev, const void *conv,
                      size_t clen, const kj_ratchet_state *s);
  int (*ratchet_load)(kj_backend *b, kj_tx *t, uint32_t dev, const void *conv,
                      size_t clen, kj_ratchet_state **out);
  int (*ratchet_exists)(kj_backend *b, kj_tx *t, uint32_t dev, const void *conv,
                        size_t clen, int *exists);
  int (*ratchet_delete)(kj_backend *b, kj_tx *t, uint32_t dev, const void *conv,
                        size_t clen);
  int (*ratchet_cleanup_skipped)(kj_backend *b, kj_tx *t, uint32_t dev,
                                 int64_t max_age_secs, uint64_t *removed);
} kj_ratchet_ops;

typedef struct kj_backend_ops {
  int version;      /* KJ_BACKEND_VERSION (KJ_BACKEND_OPS_INIT) */
  const char *name; /* "native", "sqlite", ... (static) */

  /* Free everything; no transaction is open. Returns the final status. */
  int (*close)(kj_backend *b);
  /* Detail of the last failure ("" if none); valid until the next call. */
  const char *(*errmsg)(kj_backend *b);
  /* The engine store, for a backend built on one; else NULL. */
  kj_store *(*store)(kj_backend *b);

  int (*tx_begin)(kj_backend *b, kj_tx **out);
  int (*tx_commit)(kj_tx *t);
  void (*tx_rollback)(kj_tx *t);

  /* One group per store header; NULL: the backend has none of its
   * operations. */
  const kj_signal_ops *signal;
  const kj_appsync_ops *appsync;
  const kj_protocol_ops *protocol;
  const kj_device_ops *device;
  const kj_ratchet_ops *ratchet;
} kj_backend_ops;

/* First in the initializer of every kj_backend_ops. */
#define KJ_BACKEND_OPS_INIT(backend_name)                                      \
  .version = KJ_BACKEND_VERSION, .name = (backend_name)

/* Embedded first in every backend's own struct. */
struct kj_backend {
  const kj_backend_ops *ops; /* the backend's static const table */
};

#define KJ_BACKEND_INIT(table)                                                 \
  { .ops = (table) }

/* Longest sanitised copy label. */
#define KJ_COPY_LABEL_MAX 64u

/* The label rule of kj_device_snapshot_copy (keyjournal/device.h), for
 * every backend: bytes other than [A-Za-z0-9._-] become '_', a leading '.'
 * becomes '_' (so neither "." nor ".." nor a hidden name), at most
 * KJ_COPY_LABEL_MAX bytes, empty -> "copy". The result never contains '/'
 * and so always names an entry directly inside copies/. out holds
 * KJ_COPY_LABEL_MAX + 1 bytes and is NUL-terminated. */
void kj_backend_copy_label(const void *label, size_t llen, char *out);

#ifdef __cplusplus
}
#endif

#endif /* KEYJOURNAL_SYS_BACKEND_H */
