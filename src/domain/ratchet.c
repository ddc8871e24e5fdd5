/*
 * src/domain/ratchet.c - the public ratchet store of keyjournal/ratchet.h:
 * argument checks (src/domain/dispatch.h) and dispatch to the backend's
 * kj_ratchet_ops, plus the session layer kj_ratchet_step, built on the
 * public save (the same for every backend, so not in the ops table), and
 * kj_ratchet_state_alloc, whose one-allocation layout is in
 * src/common/values.h, below both the domain and the backends.
 */
#include "common/values.h"
#include "dispatch.h"

kj_ratchet_state *kj_ratchet_state_alloc(size_t n) {
  return kj_v_ratchet_state_alloc(n);
}

static int check_state(kj_backend *b, const kj_ratchet_state *s) {
  int rc;
  return KJ_D_CHECKS(
      rc, kj_d_ptr(b, s, "kj_ratchet_save: state"),
      kj_d_flag(b, s->has_sending_chain, "kj_ratchet_save: has_sending_chain"),
      kj_d_flag(b, s->has_receiving_chain,
                "kj_ratchet_save: has_receiving_chain"),
      kj_d_flag(b, s->has_dh_remote, "kj_ratchet_save: has_dh_remote"),
      kj_d_array(b, s->skipped, s->n_skipped, KJ_MAX_SKIPPED,
                 "kj_ratchet_save: skipped"));
}

int kj_ratchet_save(kj_backend *b, kj_tx *t, uint32_t dev, const void *conv,
                    size_t clen, const kj_ratchet_state *s) {
  KJ_D_FORWARD(b, t, ratchet, ratchet_save, (b, t, dev, conv, clen, s),
               kj_d_id(b, conv, clen, "kj_ratchet_save: conversation"),
               check_state(b, s));
}

int kj_ratchet_load(kj_backend *b, kj_tx *t, uint32_t dev, const void *conv,
                    size_t clen, kj_ratchet_state **out) {
  KJ_D_GET_BY_ID(b, t, ratchet, ratchet_load, dev, conv, clen, "conversation",
                 out);
}

int kj_ratchet_exists(kj_backend *b, kj_tx *t, uint32_t dev, const void *conv,
                      size_t clen, int *exists) {
  KJ_D_GET_BY_ID(b, t, ratchet, ratchet_exists, dev, conv, clen, "conversation",
                 exists);
}

int kj_ratchet_delete(kj_backend *b, kj_tx *t, uint32_t dev, const void *conv,
                      size_t clen) {
  KJ_D_FORWARD(b, t, ratchet, ratchet_delete, (b, t, dev, conv, clen),
               kj_d_id(b, conv, clen, "kj_ratchet_delete: conversation"));
}

static int check_max_age(kj_backend *b, int64_t max_age_secs) {
  if (max_age_secs < 0)
    return kj_d_fail(b, KJ_EINVAL,
                     "kj_ratchet_cleanup_skipped: max_age_secs < 0 (%lld)",
                     (long long)max_age_secs);
  return KJ_OK;
}

int kj_ratchet_cleanup_skipped(kj_backend *b, kj_tx *t, uint32_t dev,
                               int64_t max_age_secs, uint64_t *removed) {
  KJ_D_CLEAR(removed);
  KJ_D_FORWARD(b, t, ratchet, ratchet_cleanup_skipped,
               (b, t, dev, max_age_secs, removed),
               kj_d_ptr(b, removed, "kj_ratchet_cleanup_skipped: removed"),
               check_max_age(b, max_age_secs));
}

/* ---- session layer ---------------------------------------------------- */

int kj_ratchet_step(kj_backend *b, kj_tx *t, uint32_t dev, const void *conv,
                    size_t clen, kj_ratchet_state **state,
                    kj_ratchet_step_fn step, void *arg) {
  int rc;
  if (KJ_D_CHECKS(rc,
                  kj_d_start(b, t, KJ_D_OP(b, ratchet, ratchet_save),
                             "kj_ratchet_step"),
                  kj_d_id(b, conv, clen, "kj_ratchet_step: conversation"),
                  kj_d_ptr(b, state, "kj_ratchet_step: state"),
                  kj_d_ptr(b, *state, "kj_ratchet_step: *state"),
                  kj_d_ptr(b, (const void *)step, "kj_ratchet_step: step")))
    return rc;

  /* Until both the step and the save succeed, *state is not touched: the
   * new state lives in next, which every failure path frees. */
  kj_ratchet_state *next = NULL;
  rc = step(arg, *state, &next);
  if (rc) {
    if (next != *state)
      kj_free(next);
    return rc;
  }
  if (!next || next == *state) /* nothing new to install */
    return kj_d_fail(b, KJ_EINVAL, "kj_ratchet_step: step returned %s",
                     next ? "the current state" : "no state");
  /* The public save, so that a step's result passes the same argument
   * checks as any caller's state (a bad one is KJ_EINVAL, not stored). */
  rc = kj_ratchet_save(b, t, dev, conv, clen, next);
  if (rc) {
    kj_free(next);
    return rc;
  }
  kj_free(*state);
  *state = next;
  return KJ_OK;
}
