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

#define RAT_START(b, t, op, fn) kj_d_start(b, t, KJ_D_OP(b, ratchet, op), fn)

kj_ratchet_state *kj_ratchet_state_alloc(size_t n) {
  return kj_v_ratchet_state_alloc(n);
}

static int check_state(kj_backend *b, const kj_ratchet_state *s) {
  int rc = kj_d_ptr(b, s, "kj_ratchet_save: state");
  if (!rc)
    rc = kj_d_flag(b, s->has_sending_chain,
                   "kj_ratchet_save: has_sending_chain");
  if (!rc)
    rc = kj_d_flag(b, s->has_receiving_chain,
                   "kj_ratchet_save: has_receiving_chain");
  if (!rc)
    rc = kj_d_flag(b, s->has_dh_remote, "kj_ratchet_save: has_dh_remote");
  if (!rc)
    rc = kj_d_array(b, s->skipped, s->n_skipped, KJ_MAX_SKIPPED,
                    "kj_ratchet_save: skipped");
  return rc;
}

int kj_ratchet_save(kj_backend *b, kj_tx *t, uint32_t dev, const void *conv,
                    size_t clen, const kj_ratchet_state *s) {
  int rc = RAT_START(b, t, ratchet_save, "kj_ratchet_save");
  if (!rc)
    rc = kj_d_id(b, conv, clen, "kj_ratchet_save: conversation");
  if (!rc)
    rc = check_state(b, s);
  return rc ? rc : b->ops->ratchet->ratchet_save(b, t, dev, conv, clen, s);
}

int kj_ratchet_load(kj_backend *b, kj_tx *t, uint32_t dev, const void *conv,
                    size_t clen, kj_ratchet_state **out) {
  if (out)
    *out = NULL;
  int rc = RAT_START(b, t, ratchet_load, "kj_ratchet_load");
  if (!rc)
    rc = kj_d_id(b, conv, clen, "kj_ratchet_load: conversation");
  if (!rc)
    rc = kj_d_ptr(b, out, "kj_ratchet_load: out");
  return rc ? rc : b->ops->ratchet->ratchet_load(b, t, dev, conv, clen, out);
}

int kj_ratchet_exists(kj_backend *b, kj_tx *t, uint32_t dev, const void *conv,
                      size_t clen, int *exists) {
  if (exists)
    *exists = 0;
  int rc = RAT_START(b, t, ratchet_exists, "kj_ratchet_exists");
  if (!rc)
    rc = kj_d_id(b, conv, clen, "kj_ratchet_exists: conversation");
  if (!rc)
    rc = kj_d_ptr(b, exists, "kj_ratchet_exists: exists");
  return rc ? rc
            : b->ops->ratchet->ratchet_exists(b, t, dev, conv, clen, exists);
}

int kj_ratchet_delete(kj_backend *b, kj_tx *t, uint32_t dev, const void *conv,
                      size_t clen) {
  int rc = RAT_START(b, t, ratchet_delete, "kj_ratchet_delete");
  if (!rc)
    rc = kj_d_id(b, conv, clen, "kj_ratchet_delete: conversation");
  return rc ? rc : b->ops->ratchet->ratchet_delete(b, t, dev, conv, clen);
}

int kj_ratchet_cleanup_skipped(kj_backend *b, kj_tx *t, uint32_t dev,
                               int64_t max_age_secs, uint64_t *removed) {
  if (removed)
    *removed = 0;
  int rc =
      RAT_START(b, t, ratchet_cleanup_skipped, "kj_ratchet_cleanup_skipped");
  if (!rc)
    rc = kj_d_ptr(b, removed, "kj_ratchet_cleanup_skipped: removed");
  if (!rc && max_age_secs < 0)
    rc = kj_d_fail(b, KJ_EINVAL,
                   "kj_ratchet_cleanup_skipped: max_age_secs < 0 (%lld)",
                   (long long)max_age_secs);
  return rc ? rc
            : b->ops->ratchet->ratchet_cleanup_skipped(b, t, dev, max_age_secs,
                                                       removed);
}

/* ---- session layer ---------------------------------------------------- */

int kj_ratchet_step(kj_backend *b, kj_tx *t, uint32_t dev, const void *conv,
                    size_t clen, kj_ratchet_state **state,
                    kj_ratchet_step_fn step, void *arg) {
  int rc = RAT_START(b, t, ratchet_save, "kj_ratchet_step");
  if (!rc)
    rc = kj_d_id(b, conv, clen, "kj_ratchet_step: conversation");
  if (!rc)
    rc = kj_d_ptr(b, state, "kj_ratchet_step: state");
  if (!rc)
    rc = kj_d_ptr(b, *state, "kj_ratchet_step: *state");
  if (!rc)
    rc = kj_d_ptr(b, (const void *)step, "kj_ratchet_step: step");
  if (rc)
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
