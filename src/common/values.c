/*
 * src/common/values.c - the public value helpers that every layer needs:
 * the one-allocation layout of a ratchet state (kj_ratchet_state_alloc,
 * keyjournal/ratchet.h) and the copy-label rule of
 * kj_device_snapshot_copy (kj_backend_copy_label, keyjournal/sys/backend.h).
 *
 * They sit below the domain and every backend so that a backend builds its
 * results with the same code the domain layer uses, without calling up
 * into it. This file depends on the public headers only.
 */
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "keyjournal/sys/backend.h"

/* Where the skipped keys start inside a state allocation: right after the
 * struct, rounded up so that their int64 fields are aligned. */
#define SKIPPED_OFFSET                                                         \
  ((sizeof(kj_ratchet_state) + alignof(kj_skipped_key) - 1) /                  \
   alignof(kj_skipped_key) * alignof(kj_skipped_key))

kj_ratchet_state *kj_ratchet_state_alloc(size_t n) {
  if (n > KJ_MAX_SKIPPED)
    return NULL;
  kj_ratchet_state *s = calloc(1, SKIPPED_OFFSET + n * sizeof(kj_skipped_key));
  if (!s)
    return NULL;
  s->n_skipped = n;
  s->skipped = n ? (kj_skipped_key *)((uint8_t *)s + SKIPPED_OFFSET) : NULL;
  return s;
}

void kj_backend_copy_label(const void *label, size_t llen, char *out) {
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
