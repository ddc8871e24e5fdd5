/*
 * keyjournal/protocol.h - protocol bookkeeping of one device slot: sender
 * key distribution recipients, LID <-> phone number mappings, base keys,
 * the device registry, sender-key forget marks and trusted-contact tokens.
 *
 * Conventions (transactions, device slots, limits, ownership: one
 * allocation, freed with kj_free) are in keyjournal/backend.h.
 */
#ifndef KEYJOURNAL_PROTOCOL_H
#define KEYJOURNAL_PROTOCOL_H

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- SKDM recipients: group -> set of device JIDs --------------------- */

/* The device JIDs that got the group's sender key distribution message,
 * ascending. An unknown group gives an empty list. */
int kj_skdm_get(kj_backend *b, kj_tx *t, uint32_t dev, const void *group,
                size_t glen, kj_blob_list **out);
/* Add jids[0..n) to the group's set; those already present are ignored. */
int kj_skdm_add(kj_backend *b, kj_tx *t, uint32_t dev, const void *group,
                size_t glen, const kj_blob *jids, size_t n);
/* Empty the group's set. */
int kj_skdm_clear(kj_backend *b, kj_tx *t, uint32_t dev, const void *group,
                  size_t glen);

/* ---- LID <-> phone number mappings, keyed by LID ---------------------- */

typedef struct kj_lid_mapping {
  kj_blob lid;   /* 1..KJ_MAX_ID */
  kj_blob phone; /* 1..KJ_MAX_ID */
  int64_t created_at;
  int64_t updated_at;
  kj_blob source; /* 0..KJ_MAX_ID */
} kj_lid_mapping;

typedef struct kj_lid_mapping_list {
  size_t n;
  kj_lid_mapping v[];
} kj_lid_mapping_list;

/* Store the mapping of m->lid. A new LID is stored as given; an existing
 * one keeps its original created_at and takes phone, updated_at and source
 * from m. */
int kj_lid_put(kj_backend *b, kj_tx *t, uint32_t dev, const kj_lid_mapping *m);
/* KJ_OK with *out (n == 1), or KJ_NOTFOUND. */
int kj_lid_get_by_lid(kj_backend *b, kj_tx *t, uint32_t dev, const void *lid,
                      size_t llen, kj_lid_mapping_list **out);
/* The mapping with the greatest updated_at among the LIDs mapped to phone;
 * on a tie, the smallest LID. KJ_OK with *out (n == 1), or KJ_NOTFOUND.
 * Cost: O(log n + LIDs of that phone). */
int kj_lid_get_by_phone(kj_backend *b, kj_tx *t, uint32_t dev,
                        const void *phone, size_t plen,
                        kj_lid_mapping_list **out);
/* Every mapping, ascending by LID. */
int kj_lid_get_all(kj_backend *b, kj_tx *t, uint32_t dev,
                   kj_lid_mapping_list **out);

/* ---- base keys: (address, message id) -> base key --------------------- */

int kj_base_key_save(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                     size_t alen, const void *msg_id, size_t mlen,
                     const void *base_key, size_t klen);
/* *same = 1 only if an entry exists and equals base_key byte for byte. */
int kj_base_key_has_same(kj_backend *b, kj_tx *t, uint32_t dev,
                         const void *addr, size_t alen, const void *msg_id,
                         size_t mlen, const void *base_key, size_t klen,
                         int *same);
int kj_base_key_delete(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                       size_t alen, const void *msg_id, size_t mlen);

/* ---- device registry: user -> device list record ---------------------- */

/* Most devices one record may list. */
#define KJ_MAX_DEVICES 4096u

typedef struct kj_device_entry {
  uint32_t device_id;
  int has_key_index; /* 0: key_index is none */
  uint32_t key_index;
} kj_device_entry;

typedef struct kj_device_list {
  kj_blob user; /* 1..KJ_MAX_ID */
  int64_t timestamp;
  int has_phash;            /* 0: phash is none */
  kj_blob phash;            /* 0..KJ_MAX_ID when present */
  size_t n;                 /* 0..KJ_MAX_DEVICES */
  kj_device_entry *devices; /* in the order given */
} kj_device_list;

/* Replace the whole record of r->user. */
int kj_device_list_update(kj_backend *b, kj_tx *t, uint32_t dev,
                          const kj_device_list *r);
/* KJ_OK with *out (one allocation), or KJ_NOTFOUND. */
int kj_device_list_get(kj_backend *b, kj_tx *t, uint32_t dev, const void *user,
                       size_t ulen, kj_device_list **out);
int kj_device_list_delete(kj_backend *b, kj_tx *t, uint32_t dev,
                          const void *user, size_t ulen);

/* ---- sender-key status: group -> participants to forget --------------- */

/* Mark participant's sender key in group to be forgotten (idempotent). */
int kj_sender_key_mark_forget(kj_backend *b, kj_tx *t, uint32_t dev,
                              const void *group, size_t glen,
                              const void *participant, size_t plen);
/* Take the group's marked participants, ascending, and unmark them, in one
 * atomic step: two consumers never both get a participant. */
int kj_sender_key_consume_forget(kj_backend *b, kj_tx *t, uint32_t dev,
                                 const void *group, size_t glen,
                                 kj_blob_list **out);

/* ---- trusted-contact tokens: jid -> token ----------------------------- */

typedef struct kj_tc_token {
  kj_blob token; /* 1..KJ_MAX_RECORD */
  int64_t token_ts;
  int has_sender_ts; /* 0: sender_ts is none */
  int64_t sender_ts;
} kj_tc_token;

int kj_tc_token_put(kj_backend *b, kj_tx *t, uint32_t dev, const void *jid,
                    size_t jlen, const kj_tc_token *tok);
/* KJ_OK with *out (one allocation), or KJ_NOTFOUND. */
int kj_tc_token_get(kj_backend *b, kj_tx *t, uint32_t dev, const void *jid,
                    size_t jlen, kj_tc_token **out);
int kj_tc_token_delete(kj_backend *b, kj_tx *t, uint32_t dev, const void *jid,
                       size_t jlen);
/* Every JID with a token, ascending. */
int kj_tc_token_all_jids(kj_backend *b, kj_tx *t, uint32_t dev,
                         kj_blob_list **out);
/* Remove the tokens with token_ts < cutoff; *removed gets how many.
 * Cost: O(tokens of the slot). */
int kj_tc_token_delete_expired(kj_backend *b, kj_tx *t, uint32_t dev,
                               int64_t cutoff, uint64_t *removed);

#ifdef __cplusplus
}
#endif

#endif /* KEYJOURNAL_PROTOCOL_H */
