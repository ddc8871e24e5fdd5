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
  if (out)
    *out = NULL;
  int rc;
  if ((rc = kj_d_start(b, t, KJ_D_OP(b, protocol, skdm_get), "kj_skdm_get")) ||
      (rc = kj_d_id(b, group, glen, "kj_skdm_get: group")) ||
      (rc = kj_d_ptr(b, out, "kj_skdm_get: out")))
    return rc;
  return b->ops->protocol->skdm_get(b, t, dev, group, glen, out);
}

int kj_skdm_add(kj_backend *b, kj_tx *t, uint32_t dev, const void *group,
                size_t glen, const kj_blob *jids, size_t n) {
  int rc;
  if ((rc = kj_d_start(b, t, KJ_D_OP(b, protocol, skdm_add), "kj_skdm_add")) ||
      (rc = kj_d_id(b, group, glen, "kj_skdm_add: group")) ||
      (rc = kj_d_array(b, jids, n, KJ_MAX_BATCH, "kj_skdm_add: jids")) ||
      (rc = check_ids(b, jids, n, "kj_skdm_add: jids")))
    return rc;
  return b->ops->protocol->skdm_add(b, t, dev, group, glen, jids, n);
}

int kj_skdm_clear(kj_backend *b, kj_tx *t, uint32_t dev, const void *group,
                  size_t glen) {
  int rc;
  if ((rc = kj_d_start(b, t, KJ_D_OP(b, protocol, skdm_clear),
                       "kj_skdm_clear")) ||
      (rc = kj_d_id(b, group, glen, "kj_skdm_clear: group")))
    return rc;
  return b->ops->protocol->skdm_clear(b, t, dev, group, glen);
}

/* ---- LID <-> phone number mappings ------------------------------------ */

int kj_lid_put(kj_backend *b, kj_tx *t, uint32_t dev, const kj_lid_mapping *m) {
  int rc;
  if ((rc = kj_d_start(b, t, KJ_D_OP(b, protocol, lid_put), "kj_lid_put")) ||
      (rc = kj_d_ptr(b, m, "kj_lid_put: mapping")) ||
      (rc = kj_d_id(b, m->lid.p, m->lid.len, "kj_lid_put: lid")) ||
      (rc = kj_d_id(b, m->phone.p, m->phone.len, "kj_lid_put: phone")) ||
      (rc = kj_d_opt(b, m->source.p, m->source.len, KJ_MAX_ID,
                     "kj_lid_put: source")))
    return rc;
  return b->ops->protocol->lid_put(b, t, dev, m);
}

int kj_lid_get_by_lid(kj_backend *b, kj_tx *t, uint32_t dev, const void *lid,
                      size_t llen, kj_lid_mapping_list **out) {
  if (out)
    *out = NULL;
  int rc;
  if ((rc = kj_d_start(b, t, KJ_D_OP(b, protocol, lid_get_by_lid),
                       "kj_lid_get_by_lid")) ||
      (rc = kj_d_id(b, lid, llen, "kj_lid_get_by_lid: lid")) ||
      (rc = kj_d_ptr(b, out, "kj_lid_get_by_lid: out")))
    return rc;
  return b->ops->protocol->lid_get_by_lid(b, t, dev, lid, llen, out);
}

int kj_lid_get_by_phone(kj_backend *b, kj_tx *t, uint32_t dev,
                        const void *phone, size_t plen,
                        kj_lid_mapping_list **out) {
  if (out)
    *out = NULL;
  int rc;
  if ((rc = kj_d_start(b, t, KJ_D_OP(b, protocol, lid_get_by_phone),
                       "kj_lid_get_by_phone")) ||
      (rc = kj_d_id(b, phone, plen, "kj_lid_get_by_phone: phone")) ||
      (rc = kj_d_ptr(b, out, "kj_lid_get_by_phone: out")))
    return rc;
  return b->ops->protocol->lid_get_by_phone(b, t, dev, phone, plen, out);
}

int kj_lid_get_all(kj_backend *b, kj_tx *t, uint32_t dev,
                   kj_lid_mapping_list **out) {
  if (out)
    *out = NULL;
  int rc;
  if ((rc = kj_d_start(b, t, KJ_D_OP(b, protocol, lid_get_all),
                       "kj_lid_get_all")) ||
      (rc = kj_d_ptr(b, out, "kj_lid_get_all: out")))
    return rc;
  return b->ops->protocol->lid_get_all(b, t, dev, out);
}

/* ---- base keys -------------------------------------------------------- */

int kj_base_key_save(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                     size_t alen, const void *msg_id, size_t mlen,
                     const void *base_key, size_t klen) {
  int rc;
  if ((rc = kj_d_start(b, t, KJ_D_OP(b, protocol, base_key_save),
                       "kj_base_key_save")) ||
      (rc = kj_d_id(b, addr, alen, "kj_base_key_save: address")) ||
      (rc = kj_d_id(b, msg_id, mlen, "kj_base_key_save: message id")) ||
      (rc = kj_d_id(b, base_key, klen, "kj_base_key_save: base key")))
    return rc;
  return b->ops->protocol->base_key_save(b, t, dev, addr, alen, msg_id, mlen,
                                         base_key, klen);
}

int kj_base_key_has_same(kj_backend *b, kj_tx *t, uint32_t dev,
                         const void *addr, size_t alen, const void *msg_id,
                         size_t mlen, const void *base_key, size_t klen,
                         int *same) {
  if (same)
    *same = 0;
  int rc;
  if ((rc = kj_d_start(b, t, KJ_D_OP(b, protocol, base_key_has_same),
                       "kj_base_key_has_same")) ||
      (rc = kj_d_id(b, addr, alen, "kj_base_key_has_same: address")) ||
      (rc = kj_d_id(b, msg_id, mlen, "kj_base_key_has_same: message id")) ||
      (rc = kj_d_id(b, base_key, klen, "kj_base_key_has_same: base key")) ||
      (rc = kj_d_ptr(b, same, "kj_base_key_has_same: same")))
    return rc;
  return b->ops->protocol->base_key_has_same(b, t, dev, addr, alen, msg_id,
                                             mlen, base_key, klen, same);
}

int kj_base_key_delete(kj_backend *b, kj_tx *t, uint32_t dev, const void *addr,
                       size_t alen, const void *msg_id, size_t mlen) {
  int rc;
  if ((rc = kj_d_start(b, t, KJ_D_OP(b, protocol, base_key_delete),
                       "kj_base_key_delete")) ||
      (rc = kj_d_id(b, addr, alen, "kj_base_key_delete: address")) ||
      (rc = kj_d_id(b, msg_id, mlen, "kj_base_key_delete: message id")))
    return rc;
  return b->ops->protocol->base_key_delete(b, t, dev, addr, alen, msg_id, mlen);
}

/* ---- device registry -------------------------------------------------- */

int kj_device_list_update(kj_backend *b, kj_tx *t, uint32_t dev,
                          const kj_device_list *r) {
  int rc;
  if ((rc = kj_d_start(b, t, KJ_D_OP(b, protocol, device_list_update),
                       "kj_device_list_update")) ||
      (rc = kj_d_ptr(b, r, "kj_device_list_update: record")) ||
      (rc =
           kj_d_id(b, r->user.p, r->user.len, "kj_device_list_update: user")) ||
      (rc = kj_d_flag(b, r->has_phash, "kj_device_list_update: has_phash")) ||
      (r->has_phash && (rc = kj_d_opt(b, r->phash.p, r->phash.len, KJ_MAX_ID,
                                      "kj_device_list_update: phash"))) ||
      (rc = kj_d_array(b, r->devices, r->n, KJ_MAX_DEVICES,
                       "kj_device_list_update: devices")))
    return rc;
  for (size_t i = 0; i < r->n; i++)
    if (r->devices[i].has_key_index != 0 && r->devices[i].has_key_index != 1)
      return kj_d_fail(b, KJ_EINVAL,
                       "kj_device_list_update: devices[%zu].has_key_index: "
                       "must be 0 or 1 (got %d)",
                       i, r->devices[i].has_key_index);
  return b->ops->protocol->device_list_update(b, t, dev, r);
}

int kj_device_list_get(kj_backend *b, kj_tx *t, uint32_t dev, const void *user,
                       size_t ulen, kj_device_list **out) {
  if (out)
    *out = NULL;
  int rc;
  if ((rc = kj_d_start(b, t, KJ_D_OP(b, protocol, device_list_get),
                       "kj_device_list_get")) ||
      (rc = kj_d_id(b, user, ulen, "kj_device_list_get: user")) ||
      (rc = kj_d_ptr(b, out, "kj_device_list_get: out")))
    return rc;
  return b->ops->protocol->device_list_get(b, t, dev, user, ulen, out);
}

int kj_device_list_delete(kj_backend *b, kj_tx *t, uint32_t dev,
                          const void *user, size_t ulen) {
  int rc;
  if ((rc = kj_d_start(b, t, KJ_D_OP(b, protocol, device_list_delete),
                       "kj_device_list_delete")) ||
      (rc = kj_d_id(b, user, ulen, "kj_device_list_delete: user")))
    return rc;
  return b->ops->protocol->device_list_delete(b, t, dev, user, ulen);
}

/* ---- sender-key status ------------------------------------------------ */

int kj_sender_key_mark_forget(kj_backend *b, kj_tx *t, uint32_t dev,
                              const void *group, size_t glen,
                              const void *participant, size_t plen) {
  int rc;
  if ((rc = kj_d_start(b, t, KJ_D_OP(b, protocol, sender_key_mark_forget),
                       "kj_sender_key_mark_forget")) ||
      (rc = kj_d_id(b, group, glen, "kj_sender_key_mark_forget: group")) ||
      (rc = kj_d_id(b, participant, plen,
                    "kj_sender_key_mark_forget: participant")))
    return rc;
  return b->ops->protocol->sender_key_mark_forget(b, t, dev, group, glen,
                                                  participant, plen);
}

int kj_sender_key_consume_forget(kj_backend *b, kj_tx *t, uint32_t dev,
                                 const void *group, size_t glen,
                                 kj_blob_list **out) {
  if (out)
    *out = NULL;
  int rc;
  if ((rc = kj_d_start(b, t, KJ_D_OP(b, protocol, sender_key_consume_forget),
                       "kj_sender_key_consume_forget")) ||
      (rc = kj_d_id(b, group, glen, "kj_sender_key_consume_forget: group")) ||
      (rc = kj_d_ptr(b, out, "kj_sender_key_consume_forget: out")))
    return rc;
  return b->ops->protocol->sender_key_consume_forget(b, t, dev, group, glen,
                                                     out);
}

/* ---- trusted-contact tokens ------------------------------------------- */

int kj_tc_token_put(kj_backend *b, kj_tx *t, uint32_t dev, const void *jid,
                    size_t jlen, const kj_tc_token *tok) {
  int rc;
  if ((rc = kj_d_start(b, t, KJ_D_OP(b, protocol, tc_token_put),
                       "kj_tc_token_put")) ||
      (rc = kj_d_id(b, jid, jlen, "kj_tc_token_put: jid")) ||
      (rc = kj_d_ptr(b, tok, "kj_tc_token_put: token")) ||
      (rc = kj_d_rec(b, tok->token.p, tok->token.len,
                     "kj_tc_token_put: token bytes")) ||
      (rc = kj_d_flag(b, tok->has_sender_ts, "kj_tc_token_put: has_sender_ts")))
    return rc;
  return b->ops->protocol->tc_token_put(b, t, dev, jid, jlen, tok);
}

int kj_tc_token_get(kj_backend *b, kj_tx *t, uint32_t dev, const void *jid,
                    size_t jlen, kj_tc_token **out) {
  if (out)
    *out = NULL;
  int rc;
  if ((rc = kj_d_start(b, t, KJ_D_OP(b, protocol, tc_token_get),
                       "kj_tc_token_get")) ||
      (rc = kj_d_id(b, jid, jlen, "kj_tc_token_get: jid")) ||
      (rc = kj_d_ptr(b, out, "kj_tc_token_get: out")))
    return rc;
  return b->ops->protocol->tc_token_get(b, t, dev, jid, jlen, out);
}

int kj_tc_token_delete(kj_backend *b, kj_tx *t, uint32_t dev, const void *jid,
                       size_t jlen) {
  int rc;
  if ((rc = kj_d_start(b, t, KJ_D_OP(b, protocol, tc_token_delete),
                       "kj_tc_token_delete")) ||
      (rc = kj_d_id(b, jid, jlen, "kj_tc_token_delete: jid")))
    return rc;
  return b->ops->protocol->tc_token_delete(b, t, dev, jid, jlen);
}

int kj_tc_token_all_jids(kj_backend *b, kj_tx *t, uint32_t dev,
                         kj_blob_list **out) {
  if (out)
    *out = NULL;
  int rc;
  if ((rc = kj_d_start(b, t, KJ_D_OP(b, protocol, tc_token_all_jids),
                       "kj_tc_token_all_jids")) ||
      (rc = kj_d_ptr(b, out, "kj_tc_token_all_jids: out")))
    return rc;
  return b->ops->protocol->tc_token_all_jids(b, t, dev, out);
}

int kj_tc_token_delete_expired(kj_backend *b, kj_tx *t, uint32_t dev,
                               int64_t cutoff, uint64_t *removed) {
  if (removed)
    *removed = 0;
  int rc;
  if ((rc = kj_d_start(b, t, KJ_D_OP(b, protocol, tc_token_delete_expired),
                       "kj_tc_token_delete_expired")) ||
      (rc = kj_d_ptr(b, removed, "kj_tc_token_delete_expired: removed")))
    return rc;
  return b->ops->protocol->tc_token_delete_expired(b, t, dev, cutoff, removed);
}
