/*
 * src/common/values.h - the rules of the public values that every layer
 * needs: the one-allocation layout of a ratchet state (behind
 * kj_ratchet_state_alloc, keyjournal/ratchet.h) and the copy-label rule of
 * kj_device_snapshot_copy (behind kj_backend_copy_label,
 * keyjournal/sys/backend.h).
 *
 * They sit below the domain and every backend, so that the native backend
 * builds its results with the same code as the public functions without
 * calling up into the domain layer. Header-only, so that every program
 * built from the layer folders gets them; the exported functions are
 * one-line wrappers in src/domain. Depends on the public headers only.
 */
#ifndef KJ_VALUES_H
#define KJ_VALUES_H

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "keyjournal/sys/backend.h"

/* Where the skipped keys start inside a state allocation: right after the
 * struct, rounded up so that their int64 fields are aligned. */
#define KJ_V_SKIPPED_OFFSET                                                    \
  ((sizeof(kj_ratchet_state) + alignof(kj_skipped_key) - 1) /                  \
   alignof(kj_skipped_key) * alignof(kj_skipped_key))

/* kj_ratchet_state_alloc (keyjournal/ratchet.h). */
static inline kj_ratchet_state *kj_v_ratchet_state_alloc(size_t n) {
  if (n > KJ_MAX_SKIPPED)
    return NULL;
  kj_ratchet_state *s =
      calloc(1, KJ_V_SKIPPED_OFFSET + n * sizeof(kj_skipped_key));
  if (!s)
    return NULL;
  s->n_skipped = n;
  s->skipped =
      n ? (kj_skipped_key *)((uint8_t *)s + KJ_V_SKIPPED_OFFSET) : NULL;
  return s;
}

/* kj_backend_copy_label (keyjournal/sys/backend.h). */
static inline void kj_v_copy_label(const void *label, size_t llen, char *out) {
  const uint8_t *l = label;
  size_t m = llen < KJ_COPY_LABEL_MAX ? llen : KJ_COPY_LABEL_MAX;
  for (size_t i = 0; i < m; i++) {
    uint8_t c = l[i];
    int keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
               (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    out[i] = keep ? (char)c : '_';
  }
  out[m] = '\0';
  if (m == 0)
    strcpy(out, "copy");
  else if (out[0] == '.')
    out[0] = '_';
}

#endif
