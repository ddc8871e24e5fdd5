/*
 * src/domain/protocol.c - the public functions of keyjournal/protocol.h:
 * argument checks, then dispatch to the backend's protocol ops.
 *
 * Every check that can be made without reading the store is made here, the
 * items of nested arrays included, so that every backend rejects the same
 * input with the same KJ_EINVAL before anything is touched, and a backend
 * may trust what it receives (keyjournal/sys/backend.h).
 */
#include "keyjournal/protocol.h"

#include "dispatch.h"

/* Each v[i] an identifier (1..KJ_MAX_ID bytes). The index is in the
 * message, so a caller can tell which item of a long list was bad. */
static int check_ids(kj_backend *b, const kj_blob *v, size_t n,
                     const char *what) {
  for (size_t i = 0; i < n; i++)
    if (!v[i].p || v[i].len < 1 || v[i].len > KJ_MAX_ID)
      return kj_d_fail(b, KJ_EINVAL, "%s[%zu]: must be 1..%u bytes (got %zu%s)",
                       what, i, KJ_MAX_ID, v[i].len, v[i].p ? "" : ", NULL");
  return KJ_OK;
}

/* ---- SKDM recipients -------------------------------------------------- */

int kj_skdm_get(kj_backend *b, kj_tx *t, uint32_t dev, const void *group,
                size_t glen, kj_blob_list **out) {
  KJ_D_GET_BY_ID(b, t, protocol, skdm_get, dev, group, glen, "group", out);
}

int kj_skdm_add(kj_backend *b, kj_tx *t, uint32_t dev, const void *group,
                size_t glen, const kj_blob *jids, size_t n) {
  KJ_D_FORWARD(b, t, protocol, skdm_add, (b, t, dev, group, glen, jids, n),
               kj_d_id(b, group, glen, "kj_skdm_add: group"),
               kj_d_array(b, jids, n, KJ_MAX_BATCH, "kj_skdm_add: jids"),
               check_ids(b, jids, n, "kj_skdm_add: jids"));
}

int kj_skdm_clear(kj_backend *b, kj_tx *t, uint32_t dev, const void *group,
                  size_t glen) {
  KJ_D_FORWARD(b, t, protocol, skdm_clear, (b, t, dev, group, glen),
               kj_d_id(b, group, glen, "kj_skdm_clear: group"));
}

/* ---- LID <-> phone number mappings ------------------------------------ */

int kj_lid_put(kj_backend *b, kj_tx *t, uint32_t dev, const kj_lid_mapping *m) {
  KJ_D_FORWARD(
      b, t, protocol, lid_put, (b, t, dev, m),
      kj_d_ptr(b, m, "kj_lid_put: mapping"),
      kj_d_id(b, m->lid.p, m->lid.len, "kj_lid_put: lid"),
      kj_d_id(b, m->phone.p, m->phone.len, "kj_lid_put: phone"),
      kj_d_opt(b, m->source.p, m->source.len, KJ_MAX_ID, "kj_lid_put: source"));
}

int kj_lid_get_by_lid(kj_backend *b, kj_tx *t, uint32_t dev, const void *lid,
                      size_t llen, kj_lid_mapping_list **out) {
  KJ_D_GET_BY_ID(b, t, protocol, lid_get_by_lid, dev, lid, llen, "lid", out);
}

int kj_lid_get_by_phone(kj_backend *b, kj_tx *t, uint32_t dev,
                        const void *phone, size_t plen,
                        kj_lid_mapping_list **out) {
  KJ_D_GET_BY_ID(b, t, protocol, lid_get_by_phone, dev, phone, plen, "phone",
                 out);
}

int kj_lid_get_all(kj_backend *b, kj_tx *t, uint32_t dev,
                   kj_lid_mapping_list **out) {
  KJ_D_GET(b, t, protocol, lid_get_all, (b, t, dev, out), out);
}

/* ---- base keys -------------------------------------------------------- */

int kj_base_key_save(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                     size_t alen, const void *msg_id, size_t mlen,
                     const void *base_key, size_t klen) {
  KJ_D_FORWARD(b, t, protocol, base_key_save,
               (b, t, dev, addr, alen, msg_id, mlen, base_key, klen),
               kj_d_id(b, addr, alen, "kj_base_key_save: address"),
               kj_d_id(b, msg_id, mlen, "kj_base_key_save: message id"),
               kj_d_id(b, base_key, klen, "kj_base_key_save: base key"));
}

int kj_base_key_has_same(kj_backend *b, kj_tx *t, uint32_t dev,
                         const void *addr, size_t alen, const void *msg_id,
                         size_t mlen, const void *base_key, size_t klen,
                         int *same) {
  KJ_D_CLEAR(same);
  KJ_D_FORWARD(b, t, protocol, base_key_has_same,
               (b, t, dev, addr, alen, msg_id, mlen, base_key, klen, same),
               kj_d_id(b, addr, alen, "kj_base_key_has_same: address"),
               kj_d_id(b, msg_id, mlen, "kj_base_key_has_same: message id"),
               kj_d_id(b, base_key, klen, "kj_base_key_has_same: base key"),
               kj_d_ptr(b, same, "kj_base_key_has_same: same"));
}

int kj_base_key_delete(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                       size_t alen, const void *msg_id, size_t mlen) {
  KJ_D_FORWARD(b, t, protocol, base_key_delete,
               (b, t, dev, addr, alen, msg_id, mlen),
               kj_d_id(b, addr, alen, "kj_base_key_delete: address"),
               kj_d_id(b, msg_id, mlen, "kj_base_key_delete: message id"));
}

/* ---- device registry -------------------------------------------------- */

/* The record's phash and devices (r checked); an entry's bad has_key_index
 * is named by its index. */
static int check_devices(kj_backend *b, const kj_device_list *r) {
  int rc;
  if (KJ_D_CHECKS(
          rc, kj_d_flag(b, r->has_phash, "kj_device_list_update: has_phash"),
          r->has_phash ? kj_d_opt(b, r->phash.p, r->phash.len, KJ_MAX_ID,
                                  "kj_device_list_update: phash")
                       : KJ_OK,
          kj_d_array(b, r->devices, r->n, KJ_MAX_DEVICES,
                     "kj_device_list_update: devices")))
    return rc;
  for (size_t i = 0; i < r->n; i++)
    if (r->devices[i].has_key_index != 0 && r->devices[i].has_key_index != 1)
      return kj_d_fail(b, KJ_EINVAL,
                       "kj_device_list_update: devices[%zu].has_key_index: "
                       "must be 0 or 1 (got %d)",
                       i, r->devices[i].has_key_index);
  return KJ_OK;
}

int kj_device_list_update(kj_backend *b, kj_tx *t, uint32_t dev,
                          const kj_device_list *r) {
  KJ_D_FORWARD(
      b, t, protocol, device_list_update, (b, t, dev, r),
      kj_d_ptr(b, r, "kj_device_list_update: record"),
      kj_d_id(b, r->user.p, r->user.len, "kj_device_list_update: user"),
      check_devices(b, r));
}

int kj_device_list_get(kj_backend *b, kj_tx *t, uint32_t dev, const void *user,
                       size_t ulen, kj_device_list **out) {
  KJ_D_GET_BY_ID(b, t, protocol, device_list_get, dev, user, ulen, "user", out);
}

int kj_device_list_delete(kj_backend *b, kj_tx *t, uint32_t dev,
                          const void *user, size_t ulen) {
  KJ_D_FORWARD(b, t, protocol, device_list_delete, (b, t, dev, user, ulen),
               kj_d_id(b, user, ulen, "kj_device_list_delete: user"));
}

/* ---- sender-key status ------------------------------------------------ */

int kj_sender_key_mark_forget(kj_backend *b, kj_tx *t, uint32_t dev,
                              const void *group, size_t glen,
                              const void *participant, size_t plen) {
  KJ_D_FORWARD(
      b, t, protocol, sender_key_mark_forget,
      (b, t, dev, group, glen, participant, plen),
      kj_d_id(b, group, glen, "kj_sender_key_mark_forget: group"),
      kj_d_id(b, participant, plen, "kj_sender_key_mark_forget: participant"));
}

int kj_sender_key_consume_forget(kj_backend *b, kj_tx *t, uint32_t dev,
                                 const void *group, size_t glen,
                                 kj_blob_list **out) {
  KJ_D_GET_BY_ID(b, t, protocol, sender_key_consume_forget, dev, group, glen,
                 "group", out);
}

/* ---- trusted-contact tokens ------------------------------------------- */

int kj_tc_token_put(kj_backend *b, kj_tx *t, uint32_t dev, const void *jid,
                    size_t jlen, const kj_tc_token *tok) {
  KJ_D_FORWARD(
      b, t, protocol, tc_token_put, (b, t, dev, jid, jlen, tok),
      kj_d_id(b, jid, jlen, "kj_tc_token_put: jid"),
      kj_d_ptr(b, tok, "kj_tc_token_put: token"),
      kj_d_rec(b, tok->token.p, tok->token.len, "kj_tc_token_put: token bytes"),
      kj_d_flag(b, tok->has_sender_ts, "kj_tc_token_put: has_sender_ts"));
}

int kj_tc_token_get(kj_backend *b, kj_tx *t, uint32_t dev, const void *jid,
                    size_t jlen, kj_tc_token **out) {
  KJ_D_GET_BY_ID(b, t, protocol, tc_token_get, dev, jid, jlen, "jid", out);
}

int kj_tc_token_delete(kj_backend *b, kj_tx *t, uint32_t dev, const void *jid,
                       size_t jlen) {
  KJ_D_FORWARD(b, t, protocol, tc_token_delete, (b, t, dev, jid, jlen),
               kj_d_id(b, jid, jlen, "kj_tc_token_delete: jid"));
}

int kj_tc_token_all_jids(kj_backend *b, kj_tx *t, uint32_t dev,
                         kj_blob_list **out) {
  KJ_D_GET(b, t, protocol, tc_token_all_jids, (b, t, dev, out), out);
}

int kj_tc_token_delete_expired(kj_backend *b, kj_tx *t, uint32_t dev,
                               int64_t cutoff, uint64_t *removed) {
  KJ_D_GET(b, t, protocol, tc_token_delete_expired,
           (b, t, dev, cutoff, removed), removed);
}
