/*
 * keyjournal/signal_store.h - libkeyjournal-signal: libsignal-protocol-c's
 * stores on a keyjournal backend.
 *
 * A separate library (pkg-config: keyjournal-signal), built only when
 * configure finds libsignal-protocol-c; libkeyjournal itself never links
 * libsignal. It needs no crypto of its own: the application gives
 * libsignal its crypto provider as usual.
 *
 * What it does. kj_signal_store_open(b, slot) makes a handle on one device
 * slot (keyjournal/device.h) of a backend; kj_signal_store_fill() sets the
 * five stores of a signal_protocol_store_context (session, pre-key, signed
 * pre-key, identity key, sender key) to callbacks on that slot, each
 * store's user_data pointing to the handle. The rows are those of
 * keyjournal/signal.h:
 *   - sessions: kj_session_store/load/contains/remove/list_devices/
 *     remove_all by (name, device id), with the user record;
 *   - pre-keys and signed pre-keys: by id (a pre-key is stored with
 *     uploaded 0; kj_prekey_mark_uploaded sets it);
 *   - remote identity keys: kj_identity_put_key/get_key at the address
 *     kj_address_encode(name, device id), the 33 bytes libsignal gives
 *     (type byte first). Trust on first use: no stored key, or the same
 *     bytes, is trusted; a different key is not (libsignal then fails with
 *     SG_ERR_UNTRUSTED_IDENTITY) until the application saves the new key
 *     (signal_protocol_identity_save_identity). save_identity with no key
 *     removes the stored one.
 *   - the local identity: kj_local_identity_load of the slot (see
 *     kj_signal_save_local_identity below);
 *   - sender keys: kj_sender_key_store/load, with the user record, under
 *     the name  glen(2 bytes, big-endian) || group id ||
 *     kj_address_encode(sender name, sender device id), i.e. 2 + glen + 2 +
 *     nlen + 4 bytes. The encoding is stable (part of the store's
 *     contents) and prefix-free: no (group, sender) pair's name is a prefix
 *     of another's.
 *
 * Transactions. Without kj_signal_begin every callback is a transaction of
 * its own: one libsignal call that writes twice (a pre-key message stores
 * a session, then removes the pre-key) commits twice, and a crash between
 * the two leaves the first. kj_signal_begin(h) opens one kj_tx that every
 * callback of h uses until kj_signal_commit(h) or kj_signal_rollback(h):
 *
 *     kj_signal_begin(h);
 *     rc = session_cipher_decrypt_pre_key_signal_message(c, msg, NULL, &pt);
 *     if (rc == SG_SUCCESS && deliver(pt) == 0) kj_signal_commit(h);
 *     else kj_signal_rollback(h);   // the message can be decrypted again
 *
 * so decrypting a pre-key message is one commit (one fsync under
 * KJ_SYNC_FULL), and a delivery that fails is undone: the session, the
 * consumed pre-key and the message keys are as they were. Inside begin,
 * reads see the transaction's own writes. While a handle's transaction is
 * open, another write on the same backend from the same thread fails with
 * KJ_EDEADLK (backend.h): do all of it through h. Once a callback has
 * failed inside the transaction, kj_signal_commit refuses it: it rolls
 * back and returns that callback's status, so a half-done libsignal call
 * is never committed by mistake.
 *
 * Status mapping. A callback turns a keyjournal status into what its slot
 * of signal_protocol.h asks for:
 *   KJ_OK                          SG_SUCCESS (or 1: "found", "trusted",
 *                                  "deleted", a count)
 *   KJ_NOTFOUND                    load_session, load_sender_key,
 *                                  contains_*: 0; load_pre_key,
 *                                  load_signed_pre_key:
 *                                  SG_ERR_INVALID_KEY_ID; the local
 *                                  identity missing: SG_ERR_INVALID_KEY_ID;
 *                                  a write to a slot that does not exist:
 *                                  SG_ERR_INVAL
 *   KJ_EINVAL                      SG_ERR_INVAL (a name over KJ_MAX_NAME,
 *                                  a record over KJ_MAX_RECORD, a negative
 *                                  device id...)
 *   KJ_ENOMEM                      SG_ERR_NOMEM
 *   every other status (KJ_EIO,    SG_ERR_UNKNOWN: libsignal has no code
 *   KJ_ENOSPC, KJ_ECORRUPT,        for a storage failure; the exact
 *   KJ_EPOISONED, KJ_EBUSY,        keyjournal status is kept, see
 *   KJ_EREADONLY, KJ_EDEADLK,      kj_signal_last_status
 *   KJ_EKEY, KJ_EFORMAT,
 *   KJ_EEXIST)
 * kj_signal_status_to_sg gives the same table (KJ_NOTFOUND there:
 * SG_ERR_INVALID_KEY_ID, libsignal's "no such record").
 *
 * Limits. A handle serves one slot, and one thread at a time (libsignal's
 * own locking functions, signal_context_set_locking_functions, are the
 * usual way to ensure it). Names are 1..KJ_MAX_NAME bytes; a negative
 * device id (libsignal's int32_t) is SG_ERR_INVAL. The sender key store
 * and session store keep libsignal's user records; the identity store
 * keeps no metadata beside the key. delete_all_sessions of more than
 * INT_MAX sessions reports INT_MAX.
 *
 * libomemo-c. libomemo-c (the OMEMO fork of libsignal-protocol-c) is not
 * served from this source and was not built against: it is not installed
 * here, and its store callbacks are not known to keep libsignal's names
 * and signatures: the fork renames the library and its include directory
 * (omemo/), and the OMEMO 0.8 identity keys it adds are Ed25519 keys of
 * 32 bytes, not 33-byte Curve25519 keys. The domain calls underneath
 * (keyjournal/signal.h) accept both key lengths, so an adapter for it is a
 * copy of src/signal_adapter/store.c with the renamed types; doing it with
 * macros over one source is left until it can be built and tested.
 */
#ifndef KEYJOURNAL_SIGNAL_STORE_H
#define KEYJOURNAL_SIGNAL_STORE_H

#include <stdint.h>

#include <ratchet.h>
#include <signal_protocol.h>

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kj_signal_store kj_signal_store;

/* A handle on slot dev of b (b must outlive it). The slot is not checked
 * here: callbacks on a slot that does not exist read nothing and their
 * writes fail (SG_ERR_INVAL). Errors: KJ_EINVAL (b or out NULL),
 * KJ_ENOMEM. */
int kj_signal_store_open(kj_backend *b, uint32_t dev, kj_signal_store **out);
/* Roll back an open transaction and free h. NULL is a no-op. Destroy
 * every store context filled from h first (or at least never use it
 * again): the stores' destroy callbacks do not free h. */
void kj_signal_store_close(kj_signal_store *h);

/* Set the session, pre-key, signed pre-key, identity key and sender key
 * stores of ctx to callbacks on h. Returns libsignal's status (SG_SUCCESS,
 * SG_ERR_INVAL when h or ctx is NULL). */
int kj_signal_store_fill(kj_signal_store *h,
                         signal_protocol_store_context *ctx);

/* Open h's transaction (above). Errors: those of kj_backend_begin, and
 * KJ_EINVAL when one is already open on h. */
int kj_signal_begin(kj_signal_store *h);
/* Commit it: KJ_OK, or the failure of a callback inside it (rolled back),
 * or that of kj_backend_commit (nothing applied). The transaction is over
 * whatever it returns. KJ_EINVAL when none is open. */
int kj_signal_commit(kj_signal_store *h);
/* Drop every change since kj_signal_begin. No-op when none is open. */
void kj_signal_rollback(kj_signal_store *h);
/* 1 while a transaction is open on h, else 0. */
int kj_signal_in_transaction(const kj_signal_store *h);

/* The keyjournal status of the last callback of h that did not succeed
 * (KJ_OK if none has failed yet); KJ_NOTFOUND counts only where it is
 * an error (a missing pre-key, local identity...). */
int kj_signal_last_status(const kj_signal_store *h);

/* The SG_* code for a keyjournal status (the table above). */
int kj_signal_status_to_sg(int kj_status);

/* Store (replace) the slot's own identity key pair and registration id,
 * what get_identity_key_pair and get_local_registration_id return. In h's
 * transaction when one is open. Errors: KJ_EINVAL (NULL key pair, keys
 * that do not serialise to 33 + 32 bytes), KJ_ENOMEM, those of
 * kj_local_identity_save. */
int kj_signal_save_local_identity(kj_signal_store *h,
                                  const ratchet_identity_key_pair *key_pair,
                                  uint32_t registration_id);

#ifdef __cplusplus
}
#endif

#endif /* KEYJOURNAL_SIGNAL_STORE_H */
