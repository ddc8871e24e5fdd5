/*
 * keyjournal/ratchet.h - double-ratchet conversations of one device slot,
 * and a session layer with rollback semantics.
 *
 * Conventions (transactions, device slots, limits, ownership: one
 * allocation, freed with kj_free) are in keyjournal/backend.h. Time is the
 * store's clock (kj_options.clock), in seconds.
 */
#ifndef KEYJOURNAL_RATCHET_H
#define KEYJOURNAL_RATCHET_H

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Most skipped message keys one conversation may hold. */
#define KJ_MAX_SKIPPED 65536u

typedef struct kj_skipped_key {
  uint8_t public_key[32];
  uint32_t msg_num;
  uint8_t message_key[32];
  int64_t created_at; /* seconds; set by the store, ignored on save */
} kj_skipped_key;

typedef struct kj_ratchet_state {
  uint8_t root_key[32];
  int has_sending_chain;
  uint8_t sending_chain[32];
  int has_receiving_chain;
  uint8_t receiving_chain[32];
  uint8_t dh_self_secret[32];
  int has_dh_remote;
  uint8_t dh_remote[32];
  uint32_t msg_send, msg_recv, prev_chain_len;
  size_t n_skipped; /* 0..KJ_MAX_SKIPPED */
  kj_skipped_key *skipped;
} kj_ratchet_state;

/* A state with room for n skipped keys, zeroed, in one allocation
 * (kj_free); NULL if out of memory or n > KJ_MAX_SKIPPED. */
kj_ratchet_state *kj_ratchet_state_alloc(size_t n);

/* Writes (save, delete, cleanup) to a slot that does not exist fail with
 * KJ_NOTFOUND; max_age_secs < 0 is KJ_EINVAL. A save's rows count towards
 * the transaction limit (store.h KJ_MAX_TXN_BYTES): KJ_MAX_SKIPPED keys
 * with a conversation id of more than about 450 bytes exceed it and fail
 * with KJ_EINVAL. */

/* Replace the conversation's state and skipped-key set in one atomic step.
 * A skipped key (public_key, msg_num) already stored keeps its created_at;
 * a new one gets the store clock's now; stored keys missing from s are
 * removed. A (public_key, msg_num) given twice: the last one wins. */
int kj_ratchet_save(kj_backend *b, kj_tx *t, uint32_t dev, const void *conv,
                    size_t clen, const kj_ratchet_state *s);
/* KJ_OK with *out (one allocation; skipped keys ascending by (public_key,
 * msg_num)), or KJ_NOTFOUND. */
int kj_ratchet_load(kj_backend *b, kj_tx *t, uint32_t dev, const void *conv,
                    size_t clen, kj_ratchet_state **out);
int kj_ratchet_exists(kj_backend *b, kj_tx *t, uint32_t dev, const void *conv,
                      size_t clen, int *exists);
/* Remove the conversation and its skipped keys; absent is KJ_OK. */
int kj_ratchet_delete(kj_backend *b, kj_tx *t, uint32_t dev, const void *conv,
                      size_t clen);
/* Remove the skipped keys with created_at < now - max_age_secs, across
 * every conversation of the slot; *removed gets how many. Cost: O(skipped
 * keys of the slot). */
int kj_ratchet_cleanup_skipped(kj_backend *b, kj_tx *t, uint32_t dev,
                               int64_t max_age_secs, uint64_t *removed);

/* ---- session layer ---------------------------------------------------- */

/* One cryptographic step (encrypt or decrypt): compute the next state
 * from cur (which it must not change) into *next, allocated with
 * kj_ratchet_state_alloc. Return KJ_OK, or any non-zero value to fail the
 * step (nothing is saved; the value is returned by kj_ratchet_step). */
typedef int (*kj_ratchet_step_fn)(void *arg, const kj_ratchet_state *cur,
                                  kj_ratchet_state **next);

/* Run step on *state and save the result, with rollback semantics: only
 * when both the step and the save succeed is *state replaced by the new
 * state (the old one is freed). On any failure *state is exactly what it
 * was and nothing is stored. *state must come from kj_ratchet_load or
 * kj_ratchet_state_alloc. With t not NULL the save is part of t: if t is
 * later rolled back, the store keeps the old state while *state holds the
 * new one, so reload it (kj_ratchet_load) after a rollback. */
int kj_ratchet_step(kj_backend *b, kj_tx *t, uint32_t dev, const void *conv,
                    size_t clen, kj_ratchet_state **state,
                    kj_ratchet_step_fn step, void *arg);

#ifdef __cplusplus
}
#endif

#endif /* KEYJOURNAL_RATCHET_H */
