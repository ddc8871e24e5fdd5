/*
 * src/common/codec.h - little-endian integers and LEB128 varints (internal).
 *
 * Every on-disk integer goes through these helpers, so the byte order is
 * decided in one place. Decoders take the bytes left and never read past
 * them.
 */
#ifndef KJ_CODEC_H
#define KJ_CODEC_H

#include <stddef.h>
#include <stdint.h>

static inline void kj_put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static inline void kj_put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t kj_get32(const uint8_t *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

static inline uint64_t kj_get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

/* 16 lower-case hex digits at p (file names: FORMAT.md section 1): 1 and
 * *out, or 0 for anything else. */
static inline int kj_parse_hex16(const char *p, uint64_t *out) {
  uint64_t v = 0;
  for (int i = 0; i < 16; i++) {
    char c = p[i];
    int d = (c >= '0' && c <= '9')   ? c - '0'
            : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                                     : -1;
    if (d < 0)
      return 0;
    v = (v << 4) | (uint64_t)d;
  }
  *out = v;
  return 1;
}

#define KJ_VARINT_MAX 10

/* Append v as LEB128 at p; returns bytes written (1..10). */
static inline size_t kj_put_varint(uint8_t *p, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    p[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  p[n++] = (uint8_t)v;
  return n;
}

static inline size_t kj_varint_len(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

/* Read a varint from [*p, end). Returns 0 and advances *p, or -1 when the
 * bytes run out, the value overflows 64 bits, or the encoding is overlong
 * (a final zero byte after the first), so each value has one encoding. */
static inline int kj_get_varint(const uint8_t **p, const uint8_t *end,
                                uint64_t *out) {
  uint64_t v = 0;
  const uint8_t *q = *p;
  for (int shift = 0; shift < 70; shift += 7) {
    if (q >= end)
      return -1;
    uint8_t b = *q++;
    if (shift == 63 && (b & 0xfe))
      return -1;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      if (b == 0 && shift > 0)
        return -1;
      *p = q;
      *out = v;
      return 0;
    }
  }
  return -1;
}

#endif
