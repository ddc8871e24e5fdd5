/*
 * src/common/rowcodec.h - building row keys and encoding row values (internal).
 *
 * Every domain row key starts with the device slot id (u32 big-endian, so a
 * slot is a key prefix and ids sort numerically); composite keys put a
 * 2-byte big-endian length before every component but the last, so that
 * ("ab", "c") and ("a", "bc") differ. Values start with a version byte.
 * doc/FORMAT.md section 8 lists every table.
 *
 * The writer records running out of memory and the reader running out of
 * bytes in a flag, so an encoder or decoder is a straight sequence of calls
 * checked once at the end; the reader never reads out of bounds.
 */
#ifndef KJ_ROWCODEC_H
#define KJ_ROWCODEC_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "keyjournal/errors.h"
#include "keyjournal/store.h"

#define KJ_ROW_VERSION 1u

/* ---- keys ------------------------------------------------------------- */

typedef struct kj_kbuf {
  uint8_t b[KJ_MAX_KEY];
  size_t len;
} kj_kbuf;

static inline void kj_k_u32(kj_kbuf *k, uint32_t v) {
  k->b[k->len++] = (uint8_t)(v >> 24);
  k->b[k->len++] = (uint8_t)(v >> 16);
  k->b[k->len++] = (uint8_t)(v >> 8);
  k->b[k->len++] = (uint8_t)v;
}

/* Start a key with the device slot. */
static inline void kj_k_dev(kj_kbuf *k, uint32_t dev) {
  k->len = 0;
  kj_k_u32(k, dev);
}

/* Last component: raw bytes. */
static inline void kj_k_raw(kj_kbuf *k, const void *p, size_t n) {
  if (n)
    memcpy(k->b + k->len, p, n);
  k->len += n;
}

/* Inner component: 2-byte big-endian length, then the bytes. */
static inline void kj_k_lp(kj_kbuf *k, const void *p, size_t n) {
  k->b[k->len++] = (uint8_t)(n >> 8);
  k->b[k->len++] = (uint8_t)n;
  kj_k_raw(k, p, n);
}

static inline uint32_t kj_k_get_u32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         p[3];
}

/* ---- value writer ----------------------------------------------------- */

typedef struct kj_wbuf {
  uint8_t *p;
  size_t len, cap;
  int oom;
} kj_wbuf;

/* Encoded rows are plaintext: a buffer is wiped before it is released or
 * moved, so no copy is left behind in the heap. A memset the compiler may
 * not drop as a dead store (the empty asm claims to read the memory):
 * vectorised, where a volatile byte loop costs a store per byte on every
 * point read's key buffer. */
static inline void kj_wipe(void *p, size_t n) {
#if defined(__GNUC__) || defined(__clang__)
  memset(p, 0, n);
  __asm__ __volatile__("" : : "r"(p) : "memory");
#else
  volatile uint8_t *v = (volatile uint8_t *)p;
  while (n--)
    *v++ = 0;
#endif
}

static inline void kj_w_init(kj_wbuf *w) { memset(w, 0, sizeof *w); }
static inline void kj_w_free(kj_wbuf *w) {
  if (w->p)
    kj_wipe(w->p, w->cap);
  free(w->p);
}

static inline void kj_w_bytes(kj_wbuf *w, const void *p, size_t n) {
  if (w->oom)
    return;
  if (w->len + n > w->cap) {
    size_t cap = w->cap ? w->cap : 64;
    while (cap < w->len + n)
      cap *= 2;
    uint8_t *q = malloc(cap);
    if (!q) {
      w->oom = 1;
      return;
    }
    if (w->len)
      memcpy(q, w->p, w->len);
    kj_w_free(w);
    w->p = q;
    w->cap = cap;
  }
  if (n)
    memcpy(w->p + w->len, p, n);
  w->len += n;
}

static inline void kj_w_u8(kj_wbuf *w, uint8_t v) { kj_w_bytes(w, &v, 1); }
static inline void kj_w_u32(kj_wbuf *w, uint32_t v) {
  uint8_t b[4];
  kj_put32(b, v);
  kj_w_bytes(w, b, 4);
}
static inline void kj_w_u64(kj_wbuf *w, uint64_t v) {
  uint8_t b[8];
  kj_put64(b, v);
  kj_w_bytes(w, b, 8);
}
static inline void kj_w_i64(kj_wbuf *w, int64_t v) { kj_w_u64(w, (uint64_t)v); }
static inline void kj_w_varint(kj_wbuf *w, uint64_t v) {
  uint8_t b[KJ_VARINT_MAX];
  kj_w_bytes(w, b, kj_put_varint(b, v));
}
/* varint length, then the bytes */
static inline void kj_w_blob(kj_wbuf *w, const void *p, size_t n) {
  kj_w_varint(w, n);
  kj_w_bytes(w, p, n);
}

/* ---- value reader ----------------------------------------------------- */

typedef struct kj_rbuf {
  const uint8_t *p, *end;
  int bad;
} kj_rbuf;

static inline void kj_r_init(kj_rbuf *r, const void *p, size_t n) {
  /* An empty value comes back from kj_get as NULL; NULL + 0 is undefined
   * pointer arithmetic, so read from an empty array instead. */
  static const uint8_t none[1] = {0};
  r->p = p ? (const uint8_t *)p : none;
  r->end = r->p + (p ? n : 0);
  r->bad = 0;
}

static inline const uint8_t *kj_r_bytes(kj_rbuf *r, size_t n) {
  if (r->bad || (size_t)(r->end - r->p) < n) {
    r->bad = 1;
    return NULL;
  }
  const uint8_t *q = r->p;
  r->p += n;
  return q;
}

static inline uint8_t kj_r_u8(kj_rbuf *r) {
  const uint8_t *q = kj_r_bytes(r, 1);
  return q ? q[0] : 0;
}
static inline uint32_t kj_r_u32(kj_rbuf *r) {
  const uint8_t *q = kj_r_bytes(r, 4);
  return q ? kj_get32(q) : 0;
}
static inline uint64_t kj_r_u64(kj_rbuf *r) {
  const uint8_t *q = kj_r_bytes(r, 8);
  return q ? kj_get64(q) : 0;
}
static inline int64_t kj_r_i64(kj_rbuf *r) { return (int64_t)kj_r_u64(r); }
static inline uint64_t kj_r_varint(kj_rbuf *r) {
  uint64_t v = 0;
  if (!r->bad && kj_get_varint(&r->p, r->end, &v))
    r->bad = 1;
  return v;
}
/* n bytes into dst (left as is when they run out). */
static inline void kj_r_copy(kj_rbuf *r, void *dst, size_t n) {
  const uint8_t *q = kj_r_bytes(r, n);
  if (q)
    memcpy(dst, q, n);
}
/* A 0/1 flag; anything else is malformed. */
static inline int kj_r_flag(kj_rbuf *r) {
  uint8_t v = kj_r_u8(r);
  if (v > 1)
    r->bad = 1;
  return v;
}
/* varint length (at most max), then the bytes. */
static inline const uint8_t *kj_r_blob(kj_rbuf *r, size_t max, size_t *n) {
  uint64_t len = kj_r_varint(r);
  if (len > max)
    r->bad = 1;
  *n = r->bad ? 0 : (size_t)len;
  return kj_r_bytes(r, *n);
}
/* The version byte: KJ_EFORMAT for a newer one, KJ_ECORRUPT if missing or
 * zero. */
static inline int kj_r_version(kj_rbuf *r) {
  uint8_t v = kj_r_u8(r);
  if (r->bad || v == 0)
    return KJ_ECORRUPT;
  return v == KJ_ROW_VERSION ? KJ_OK : KJ_EFORMAT;
}
/* KJ_OK when every byte was consumed and nothing ran out. */
static inline int kj_r_done(const kj_rbuf *r) {
  return r->bad || r->p != r->end ? KJ_ECORRUPT : KJ_OK;
}

#endif
