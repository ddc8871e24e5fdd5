/*
 * fuzz/fuzz_frame.c - libFuzzer target for the journal frame decoder
 * (doc/FORMAT.md 4.2-4.3 and 5): frame headers, sequence and durable_seq
 * rules, and the commit plaintext (body version, op count, kinds, table
 * ids, varint lengths, keys and values).
 *
 * Authenticated frames cannot be forged by a fuzzer, so this target is
 * built with the test-only switch KJ_FUZZ_TEST_KEY (src/engine/crypto.c): the
 * engine objects linked into it "seal" frames as plaintext followed by a
 * zero tag and skip the MAC and checksum checks, so every input byte reaches
 * the decoder past the MAC. The library itself is never built with it
 * (src/engine/crypto.c refuses it together with KJ_LIBRARY_BUILD). The header
 * key check still uses the fixed fuzz key.
 *
 * The first input byte picks a mode:
 *   0  frames: a fresh store supplies a valid header and segment header;
 *      the input supplies frames (header fields, plaintext, or raw bytes);
 *   1  build and damage: the input drives a real store (puts, deletes,
 *      transactions, syncs), then overwrites bytes of its segment, whose
 *      frames are plaintext in this build.
 * Either way the store is then opened read-only, read-write (one more
 * commit), and read-only again, reading every table.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "fuzz.h"
#include "keyjournal.h"

#ifndef KJ_FUZZ_TEST_KEY
#error "fuzz_frame is built with -DKJ_FUZZ_TEST_KEY (see fuzz/README.md)"
#endif

#define SEG1 "journal-0000000000000001.kjl"
#define SEG_BYTES 65536u
#define FRAME_HDR 64u
#define TAG 16u

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

/* Mode 0: the real segment header, then frames from the input. */
static void mode_frames(fz_provider *fp, const char *dir) {
  kj_store *s = fz_create_store(dir, SEG_BYTES, KJ_SYNC_OFF);
  (void)kj_store_close(s);
  char *path = fz_join(dir, SEG1);
  size_t len = 0;
  uint8_t *old = fz_read_file(path, &len);
  if (!old || len < 64)
    abort();
  uint8_t *seg = calloc(1, SEG_BYTES);
  if (!seg)
    abort();
  memcpy(seg, old, 64);
  free(old);
  size_t off = 64;
  uint64_t seq = 1;
  unsigned frames = (unsigned)fz_range(fp, 0, 24);
  for (unsigned i = 0; i < frames && fz_remaining(fp) > 0; i++) {
    uint8_t how = fz_u8(fp);
    if (how % 8 == 7) { /* raw bytes */
      size_t n;
      const uint8_t *p = fz_lbytes(fp, 512, &n);
      if (n > SEG_BYTES - off)
        n = SEG_BYTES - off;
      memcpy(seg + off, p, n);
      off += n;
      continue;
    }
    size_t plen;
    const uint8_t *pt = fz_lbytes(fp, 4096, &plen);
    if (off + FRAME_HDR + plen + TAG > SEG_BYTES)
      break;
    uint8_t *h = seg + off;
    memcpy(h, "KJFR", 4);
    put32(h + 4, (uint32_t)(plen + TAG));
    uint64_t fseq = how & 0x10 ? fz_u64(fp) : seq;
    put64(h + 8, fseq);
    put64(h + 16, how & 0x20 ? fz_u64(fp) : seq - 1);
    h[24] = how & 0x40 ? fz_u8(fp) : (uint8_t)(how & 0x80 ? 2 : 1);
    memcpy(h + FRAME_HDR, pt, plen);
    /* nonce and tag stay zero; the checksum is right (it is not checked in
     * this build, but a right one keeps the frame valid elsewhere). */
    put64(h + 56,
          XXH3_64bits_withSeed(h + FRAME_HDR, plen + TAG, XXH3_64bits(h, 56)));
    off += FRAME_HDR + plen + TAG;
    seq++;
  }
  (void)fz_write_file(dir, SEG1, seg, SEG_BYTES);
  free(seg);
  free(path);
  fz_try_open(dir, SEG_BYTES, 1, "fuzz_frame");
}

/* Mode 1: a real store, then byte edits in its segment. */
static void mode_build(fz_provider *fp, const char *dir) {
  kj_store *s = fz_create_store(dir, SEG_BYTES, KJ_SYNC_OFF);
  unsigned ops = (unsigned)fz_range(fp, 1, 10);
  for (unsigned i = 0; i < ops; i++) {
    fz_op op = fz_next_op(fp, 4, 16);
    size_t vl;
    switch (op.what) {
    case 0:
    case 1: {
      const uint8_t *v = fz_lbytes(fp, 200, &vl);
      (void)kj_put(s, NULL, op.table, op.k, op.kl, v, vl);
      break;
    }
    case 2:
      (void)kj_delete(s, NULL, op.table, op.k, op.kl);
      break;
    default: {
      kj_txn *t = NULL;
      if (kj_txn_begin(s, 0, &t) == KJ_OK) {
        (void)kj_put(s, t, op.table, op.k, op.kl, "v", 1);
        (void)kj_delete(s, t, op.table + 1, op.k, op.kl);
        (void)kj_txn_commit(t);
      }
    }
    }
  }
  (void)kj_store_close(s);
  char *path = fz_join(dir, SEG1);
  size_t len = 0;
  uint8_t *b = fz_read_file(path, &len);
  if (b && len > 64) {
    unsigned edits = (unsigned)fz_range(fp, 1, 8);
    for (unsigned i = 0; i < edits && fz_remaining(fp) > 0; i++) {
      /* Most edits land in the frames written so far (the first KiB). */
      size_t hi = len < 1024 || fz_bool(fp) ? len - 1 : 1023;
      size_t at = (size_t)fz_range(fp, 64, hi);
      b[at] = fz_u8(fp);
    }
    (void)fz_write_file(dir, SEG1, b, len);
  }
  free(b);
  free(path);
  fz_try_open(dir, SEG_BYTES, 1, "fuzz_frame");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_provider fp = fz_start(data, size, 6);
  char *dir = fz_mkdtemp();
  if (fz_u8(&fp) % 2 == 0)
    mode_frames(&fp, dir);
  else
    mode_build(&fp, dir);
  fz_rmrf(dir);
  free(dir);
  return 0;
}
