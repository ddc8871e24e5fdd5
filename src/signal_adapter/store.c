/*
 * src/signal_adapter/store.c - libkeyjournal-signal: the five stores of a
 * signal_protocol_store_context as callbacks on the domain calls of
 * keyjournal/signal.h (keyjournal/signal_store.h says what and why).
 *
 * It uses the public headers only, like any application of libkeyjournal.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <curve.h>

#include "keyjournal/signal.h"
#include "keyjournal/signal_store.h"
#include "keyjournal/store.h"

struct kj_signal_store {
  kj_backend *b;
  uint32_t dev;
  kj_tx *tx;       /* open transaction (kj_signal_begin), or NULL */
  int tx_failed;   /* status of the first callback that failed in tx */
  int last_status; /* kj_signal_last_status */
};

int kj_signal_status_to_sg(int st) {
  switch (st) {
  case KJ_OK:
    return SG_SUCCESS;
  case KJ_NOTFOUND:
    return SG_ERR_INVALID_KEY_ID;
  case KJ_EINVAL:
    return SG_ERR_INVAL;
  case KJ_ENOMEM:
    return SG_ERR_NOMEM;
  default:
    return SG_ERR_UNKNOWN;
  }
}

/* Record a failure of a callback (st a keyjournal status that is an error
 * where it happened) and give its SG code. */
static int fail(kj_signal_store *h, int st) {
  h->last_status = st;
  if (h->tx && h->tx_failed == KJ_OK)
    h->tx_failed = st;
  /* A write to a slot that does not exist is KJ_NOTFOUND: bad argument. */
  return st == KJ_NOTFOUND ? SG_ERR_INVAL : kj_signal_status_to_sg(st);
}

/* The failure of a read: KJ_NOTFOUND is no failure there. */
static int fail_read(kj_signal_store *h, int st) {
  h->last_status = st;
  if (h->tx && h->tx_failed == KJ_OK)
    h->tx_failed = st;
  return kj_signal_status_to_sg(st);
}

static int check_address(const signal_protocol_address *a) {
  if (!a || !a->name || a->name_len == 0 || a->name_len > KJ_MAX_NAME ||
      a->device_id < 0)
    return KJ_EINVAL;
  return KJ_OK;
}

/* ---- handle and transactions ------------------------------------------ */

int kj_signal_store_open(kj_backend *b, uint32_t dev, kj_signal_store **out) {
  if (out)
    *out = NULL;
  if (!b || !out)
    return KJ_EINVAL;
  kj_signal_store *h = calloc(1, sizeof *h);
  if (!h)
    return KJ_ENOMEM;
  h->b = b;
  h->dev = dev;
  *out = h;
  return KJ_OK;
}

void kj_signal_store_close(kj_signal_store *h) {
  if (!h)
    return;
  kj_signal_rollback(h);
  free(h);
}

int kj_signal_begin(kj_signal_store *h) {
  if (!h || h->tx)
    return KJ_EINVAL;
  int st = kj_backend_begin(h->b, &h->tx);
  if (st != KJ_OK) {
    h->tx = NULL;
    h->last_status = st;
    return st;
  }
  h->tx_failed = KJ_OK;
  return KJ_OK;
}

int kj_signal_commit(kj_signal_store *h) {
  if (!h || !h->tx)
    return KJ_EINVAL;
  kj_tx *t = h->tx;
  int failed = h->tx_failed;
  h->tx = NULL;
  h->tx_failed = KJ_OK;
  if (failed != KJ_OK) {
    kj_backend_rollback(t);
    return failed;
  }
  int st = kj_backend_commit(t);
  if (st != KJ_OK)
    h->last_status = st;
  return st;
}

void kj_signal_rollback(kj_signal_store *h) {
  if (!h || !h->tx)
    return;
  kj_backend_rollback(h->tx);
  h->tx = NULL;
  h->tx_failed = KJ_OK;
}

int kj_signal_in_transaction(const kj_signal_store *h) {
  return h && h->tx ? 1 : 0;
}

int kj_signal_last_status(const kj_signal_store *h) {
  return h ? h->last_status : KJ_EINVAL;
}

int kj_signal_save_local_identity(kj_signal_store *h,
                                  const ratchet_identity_key_pair *key_pair,
                                  uint32_t registration_id) {
  if (!h || !key_pair)
    return KJ_EINVAL;
  signal_buffer *pub = NULL, *priv = NULL;
  int st = KJ_OK;
  kj_local_identity id;
  memset(&id, 0, sizeof id);
  if (ec_public_key_serialize(
          &pub, ratchet_identity_key_pair_get_public(key_pair)) < 0 ||
      ec_private_key_serialize(
          &priv, ratchet_identity_key_pair_get_private(key_pair)) < 0) {
    st = KJ_ENOMEM;
    goto out;
  }
  if (signal_buffer_len(pub) != KJ_IDENTITY_KEY_MAX ||
      signal_buffer_len(priv) != KJ_IDENTITY_KEY_BYTES) {
    st = KJ_EINVAL;
    goto out;
  }
  id.registration_id = registration_id;
  id.public_len = signal_buffer_len(pub);
  memcpy(id.public_key, signal_buffer_data(pub), id.public_len);
  memcpy(id.private_key, signal_buffer_data(priv), KJ_IDENTITY_KEY_BYTES);
  st = kj_local_identity_save(h->b, h->tx, h->dev, &id);
  if (st != KJ_OK)
    (void)fail(h, st);
out:
  memset(&id, 0, sizeof id);
  signal_buffer_free(pub);
  signal_buffer_bzero_free(priv);
  return st;
}

/* ---- session store ----------------------------------------------------- */

static int load_session(signal_buffer **record, signal_buffer **user_record,
                        const signal_protocol_address *a, void *ud) {
  kj_signal_store *h = ud;
  int st = check_address(a);
  if (st != KJ_OK)
    return fail_read(h, st);
  void *rec = NULL, *urec = NULL;
  size_t rlen = 0, ulen = 0;
  st = kj_session_load(h->b, h->tx, h->dev, a->name, a->name_len,
                       (uint32_t)a->device_id, &rec, &rlen, &urec, &ulen);
  if (st == KJ_NOTFOUND)
    return 0;
  if (st != KJ_OK)
    return fail_read(h, st);
  signal_buffer *r = signal_buffer_create(rec, rlen);
  signal_buffer *u = NULL;
  if (r && urec && ulen > 0)
    u = signal_buffer_create(urec, ulen);
  kj_free(rec);
  kj_free(urec);
  if (!r || (urec && ulen > 0 && !u)) {
    signal_buffer_free(r);
    signal_buffer_free(u);
    return fail_read(h, KJ_ENOMEM);
  }
  *record = r;
  if (u)
    *user_record = u;
  return 1;
}

static int get_sub_device_sessions(signal_int_list **sessions, const char *name,
                                   size_t name_len, void *ud) {
  kj_signal_store *h = ud;
  if (!name || name_len == 0 || name_len > KJ_MAX_NAME)
    return fail_read(h, KJ_EINVAL);
  kj_u32_list *l = NULL;
  int st = kj_session_list_devices(h->b, h->tx, h->dev, name, name_len, &l);
  if (st != KJ_OK)
    return fail_read(h, st);
  signal_int_list *out = signal_int_list_alloc();
  if (!out) {
    kj_free(l);
    return fail_read(h, KJ_ENOMEM);
  }
  int n = 0;
  for (size_t i = 0; i < l->n; i++) {
    if (l->v[i] > INT32_MAX)
      continue; /* not a device id libsignal can name */
    if (signal_int_list_push_back(out, (int)l->v[i]) < 0) {
      kj_free(l);
      signal_int_list_free(out);
      return fail_read(h, KJ_ENOMEM);
    }
    n++;
  }
  kj_free(l);
  *sessions = out;
  return n;
}

static int store_session(const signal_protocol_address *a, uint8_t *record,
                         size_t record_len, uint8_t *user_record,
                         size_t user_record_len, void *ud) {
  kj_signal_store *h = ud;
  int st = check_address(a);
  if (st == KJ_OK)
    st = kj_session_store(h->b, h->tx, h->dev, a->name, a->name_len,
                          (uint32_t)a->device_id, record, record_len,
                          user_record, user_record ? user_record_len : 0);
  return st == KJ_OK ? SG_SUCCESS : fail(h, st);
}

static int contains_session(const signal_protocol_address *a, void *ud) {
  kj_signal_store *h = ud;
  int st = check_address(a);
  if (st != KJ_OK)
    return fail_read(h, st);
  int has = 0;
  st = kj_session_contains(h->b, h->tx, h->dev, a->name, a->name_len,
                           (uint32_t)a->device_id, &has);
  if (st != KJ_OK)
    return fail_read(h, st);
  return has ? 1 : 0;
}

static int delete_session(const signal_protocol_address *a, void *ud) {
  kj_signal_store *h = ud;
  int st = check_address(a);
  int has = 0;
  if (st == KJ_OK)
    st = kj_session_contains(h->b, h->tx, h->dev, a->name, a->name_len,
                             (uint32_t)a->device_id, &has);
  if (st == KJ_OK && has)
    st = kj_session_remove(h->b, h->tx, h->dev, a->name, a->name_len,
                           (uint32_t)a->device_id);
  if (st != KJ_OK)
    return fail(h, st);
  return has ? 1 : 0;
}

static int delete_all_sessions(const char *name, size_t name_len, void *ud) {
  kj_signal_store *h = ud;
  if (!name || name_len == 0 || name_len > KJ_MAX_NAME)
    return fail(h, KJ_EINVAL);
  uint64_t removed = 0;
  int st = kj_session_remove_all(h->b, h->tx, h->dev, name, name_len, &removed);
  if (st != KJ_OK)
    return fail(h, st);
  return removed > INT_MAX ? INT_MAX : (int)removed;
}

/* ---- pre-key and signed pre-key stores ---------------------------------- */

static int prekey_result(kj_signal_store *h, int st, kj_prekey_list *l,
                         signal_buffer **record) {
  if (st == KJ_NOTFOUND) {
    h->last_status = st;
    return SG_ERR_INVALID_KEY_ID;
  }
  if (st != KJ_OK)
    return fail_read(h, st);
  signal_buffer *r = signal_buffer_create(l->v[0].record.p, l->v[0].record.len);
  kj_free(l);
  if (!r)
    return fail_read(h, KJ_ENOMEM);
  *record = r;
  return SG_SUCCESS;
}

static int load_pre_key(signal_buffer **record, uint32_t id, void *ud) {
  kj_signal_store *h = ud;
  kj_prekey_list *l = NULL;
  int st = kj_prekey_load(h->b, h->tx, h->dev, id, &l);
  return prekey_result(h, st, l, record);
}

static int store_pre_key(uint32_t id, uint8_t *record, size_t record_len,
                         void *ud) {
  kj_signal_store *h = ud;
  int st = kj_prekey_store(h->b, h->tx, h->dev, id, record, record_len, 0);
  return st == KJ_OK ? SG_SUCCESS : fail(h, st);
}

static int contains_pre_key(uint32_t id, void *ud) {
  kj_signal_store *h = ud;
  int has = 0;
  int st = kj_prekey_has(h->b, h->tx, h->dev, id, &has);
  if (st != KJ_OK)
    return fail_read(h, st);
  return has ? 1 : 0;
}

static int remove_pre_key(uint32_t id, void *ud) {
  kj_signal_store *h = ud;
  int st = kj_prekey_remove(h->b, h->tx, h->dev, id);
  return st == KJ_OK ? SG_SUCCESS : fail(h, st);
}

static int load_signed_pre_key(signal_buffer **record, uint32_t id, void *ud) {
  kj_signal_store *h = ud;
  kj_prekey_list *l = NULL;
  int st = kj_signed_prekey_load(h->b, h->tx, h->dev, id, &l);
  return prekey_result(h, st, l, record);
}

static int store_signed_pre_key(uint32_t id, uint8_t *record, size_t record_len,
                                void *ud) {
  kj_signal_store *h = ud;
  int st = kj_signed_prekey_store(h->b, h->tx, h->dev, id, record, record_len);
  return st == KJ_OK ? SG_SUCCESS : fail(h, st);
}

static int contains_signed_pre_key(uint32_t id, void *ud) {
  kj_signal_store *h = ud;
  int has = 0;
  int st = kj_signed_prekey_has(h->b, h->tx, h->dev, id, &has);
  if (st != KJ_OK)
    return fail_read(h, st);
  return has ? 1 : 0;
}

static int remove_signed_pre_key(uint32_t id, void *ud) {
  kj_signal_store *h = ud;
  int st = kj_signed_prekey_remove(h->b, h->tx, h->dev, id);
  return st == KJ_OK ? SG_SUCCESS : fail(h, st);
}

/* ---- identity key store ------------------------------------------------- */

static int get_identity_key_pair(signal_buffer **public_data,
                                 signal_buffer **private_data, void *ud) {
  kj_signal_store *h = ud;
  kj_local_identity id;
  int st = kj_local_identity_load(h->b, h->tx, h->dev, &id);
  if (st == KJ_NOTFOUND) {
    h->last_status = st;
    return SG_ERR_INVALID_KEY_ID;
  }
  if (st != KJ_OK)
    return fail_read(h, st);
  signal_buffer *pub = signal_buffer_create(id.public_key, id.public_len);
  signal_buffer *priv =
      signal_buffer_create(id.private_key, KJ_IDENTITY_KEY_BYTES);
  memset(&id, 0, sizeof id);
  if (!pub || !priv) {
    signal_buffer_free(pub);
    signal_buffer_bzero_free(priv);
    return fail_read(h, KJ_ENOMEM);
  }
  *public_data = pub;
  *private_data = priv;
  return SG_SUCCESS;
}

static int get_local_registration_id(void *ud, uint32_t *registration_id) {
  kj_signal_store *h = ud;
  kj_local_identity id;
  int st = kj_local_identity_load(h->b, h->tx, h->dev, &id);
  if (st == KJ_NOTFOUND) {
    h->last_status = st;
    return SG_ERR_INVALID_KEY_ID;
  }
  if (st != KJ_OK)
    return fail_read(h, st);
  *registration_id = id.registration_id;
  memset(&id, 0, sizeof id);
  return SG_SUCCESS;
}

static int encode_address(const signal_protocol_address *a,
                          uint8_t out[KJ_MAX_ID], size_t *alen) {
  int st = check_address(a);
  if (st != KJ_OK)
    return st;
  return kj_address_encode(a->name, a->name_len, (uint32_t)a->device_id, out,
                           alen);
}

static int save_identity(const signal_protocol_address *a, uint8_t *key_data,
                         size_t key_len, void *ud) {
  kj_signal_store *h = ud;
  uint8_t addr[KJ_MAX_ID];
  size_t alen = 0;
  int st = encode_address(a, addr, &alen);
  if (st == KJ_OK) {
    if (key_data)
      st = kj_identity_put_key(h->b, h->tx, h->dev, addr, alen, key_data,
                               key_len);
    else
      st = kj_identity_delete(h->b, h->tx, h->dev, addr, alen);
  }
  return st == KJ_OK ? SG_SUCCESS : fail(h, st);
}

static int is_trusted_identity(const signal_protocol_address *a,
                               uint8_t *key_data, size_t key_len, void *ud) {
  kj_signal_store *h = ud;
  uint8_t addr[KJ_MAX_ID];
  size_t alen = 0;
  int st = encode_address(a, addr, &alen);
  if (st != KJ_OK || !key_data)
    return fail_read(h, st != KJ_OK ? st : KJ_EINVAL);
  uint8_t stored[KJ_IDENTITY_KEY_MAX];
  size_t slen = 0;
  st = kj_identity_get_key(h->b, h->tx, h->dev, addr, alen, stored, &slen);
  if (st == KJ_NOTFOUND)
    return 1; /* trust on first use */
  if (st != KJ_OK)
    return fail_read(h, st);
  return slen == key_len && memcmp(stored, key_data, slen) == 0 ? 1 : 0;
}

/* ---- sender key store --------------------------------------------------- */

/* glen (2 bytes, big-endian) || group id || kj_address_encode(sender). */
static int encode_sender_key_name(const signal_protocol_sender_key_name *n,
                                  uint8_t out[KJ_MAX_ID], size_t *len) {
  if (!n || !n->group_id || n->group_id_len == 0 || n->group_id_len > 0xffff)
    return KJ_EINVAL;
  int st = check_address(&n->sender);
  if (st != KJ_OK)
    return st;
  size_t need = 2 + n->group_id_len + 2 + n->sender.name_len + 4;
  if (need > KJ_MAX_ID)
    return KJ_EINVAL;
  out[0] = (uint8_t)(n->group_id_len >> 8);
  out[1] = (uint8_t)n->group_id_len;
  memcpy(out + 2, n->group_id, n->group_id_len);
  uint8_t addr[KJ_MAX_ID];
  size_t alen = 0;
  st = kj_address_encode(n->sender.name, n->sender.name_len,
                         (uint32_t)n->sender.device_id, addr, &alen);
  if (st != KJ_OK)
    return st;
  memcpy(out + 2 + n->group_id_len, addr, alen);
  *len = 2 + n->group_id_len + alen;
  return KJ_OK;
}

static int store_sender_key(const signal_protocol_sender_key_name *n,
                            uint8_t *record, size_t record_len,
                            uint8_t *user_record, size_t user_record_len,
                            void *ud) {
  kj_signal_store *h = ud;
  uint8_t name[KJ_MAX_ID];
  size_t nlen = 0;
  int st = encode_sender_key_name(n, name, &nlen);
  if (st == KJ_OK)
    st =
        kj_sender_key_store(h->b, h->tx, h->dev, name, nlen, record, record_len,
                            user_record, user_record ? user_record_len : 0);
  return st == KJ_OK ? SG_SUCCESS : fail(h, st);
}

static int load_sender_key(signal_buffer **record, signal_buffer **user_record,
                           const signal_protocol_sender_key_name *n, void *ud) {
  kj_signal_store *h = ud;
  uint8_t name[KJ_MAX_ID];
  size_t nlen = 0;
  int st = encode_sender_key_name(n, name, &nlen);
  if (st != KJ_OK)
    return fail_read(h, st);
  void *rec = NULL, *urec = NULL;
  size_t rlen = 0, ulen = 0;
  st = kj_sender_key_load(h->b, h->tx, h->dev, name, nlen, &rec, &rlen, &urec,
                          &ulen);
  if (st == KJ_NOTFOUND)
    return 0;
  if (st != KJ_OK)
    return fail_read(h, st);
  signal_buffer *r = signal_buffer_create(rec, rlen);
  signal_buffer *u = NULL;
  if (r && urec && ulen > 0)
    u = signal_buffer_create(urec, ulen);
  kj_free(rec);
  kj_free(urec);
  if (!r || (urec && ulen > 0 && !u)) {
    signal_buffer_free(r);
    signal_buffer_free(u);
    return fail_read(h, KJ_ENOMEM);
  }
  *record = r;
  if (u)
    *user_record = u;
  return 1;
}

/* ---- filling a store context ------------------------------------------- */

int kj_signal_store_fill(kj_signal_store *h,
                         signal_protocol_store_context *ctx) {
  if (!h || !ctx)
    return SG_ERR_INVAL;
  signal_protocol_session_store ss = {
      .load_session_func = load_session,
      .get_sub_device_sessions_func = get_sub_device_sessions,
      .store_session_func = store_session,
      .contains_session_func = contains_session,
      .delete_session_func = delete_session,
      .delete_all_sessions_func = delete_all_sessions,
      .destroy_func = NULL,
      .user_data = h,
  };
  signal_protocol_pre_key_store ps = {
      .load_pre_key = load_pre_key,
      .store_pre_key = store_pre_key,
      .contains_pre_key = contains_pre_key,
      .remove_pre_key = remove_pre_key,
      .destroy_func = NULL,
      .user_data = h,
  };
  signal_protocol_signed_pre_key_store sps = {
      .load_signed_pre_key = load_signed_pre_key,
      .store_signed_pre_key = store_signed_pre_key,
      .contains_signed_pre_key = contains_signed_pre_key,
      .remove_signed_pre_key = remove_signed_pre_key,
      .destroy_func = NULL,
      .user_data = h,
  };
  signal_protocol_identity_key_store is = {
      .get_identity_key_pair = get_identity_key_pair,
      .get_local_registration_id = get_local_registration_id,
      .save_identity = save_identity,
      .is_trusted_identity = is_trusted_identity,
      .destroy_func = NULL,
      .user_data = h,
  };
  signal_protocol_sender_key_store sks = {
      .store_sender_key = store_sender_key,
      .load_sender_key = load_sender_key,
      .destroy_func = NULL,
      .user_data = h,
  };
  int rc = signal_protocol_store_context_set_session_store(ctx, &ss);
  if (rc == 0)
    rc = signal_protocol_store_context_set_pre_key_store(ctx, &ps);
  if (rc == 0)
    rc = signal_protocol_store_context_set_signed_pre_key_store(ctx, &sps);
  if (rc == 0)
    rc = signal_protocol_store_context_set_identity_key_store(ctx, &is);
  if (rc == 0)
    rc = signal_protocol_store_context_set_sender_key_store(ctx, &sks);
  return rc;
}
