/*
 * fuzz/fuzz_snapshot.c - libFuzzer target for the snapshot decoder
 * (src/engine/snapshot.h, doc/FORMAT.md section 6), an internal function: build
 * with -Isrc and the library sources. The first input byte picks a mode:
 *   0  raw: the rest of the input is the snapshot file, served through the
 *      read callback (short reads at the end, as from a file) and decoded
 *      with a fixed key and store id.
 *   1  valid then damaged: the input chooses rows, kj_snapshot_write
 *      writes a real snapshot of them (fixed key and store id,
 *      deterministic randomness) into a temporary directory, then the
 *      input flips, overwrites, truncates or extends bytes of it before it
 *      is decoded - past authentication into zstd and the row parser only
 *      when the damage is nil, so this mode mostly checks that every kind
 *      of damage is refused cleanly.
 *   2  sealed: the input is the snapshot *plaintext* - the row body
 *      (compressed here with zstd level 1) or, on a flag, the compressed
 *      stream itself - which the harness encrypts into a well-formed file
 *      (header, secretstream chunks, final tag; flags drop the final tag
 *      or append a byte) with the fixed key, so authentication passes and
 *      zstd and the row parser see arbitrary bytes.
 * The row sink checks the documented order (strictly ascending by table
 * and key) and aborts on a violation. Owns its temporary directory.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <xxhash.h>
#include <zstd.h>

#include "common/codec.h"
#include "engine/map.h"
#include "engine/snapshot.h"
#include "fuzz.h"
#include "keyjournal.h"

static const uint8_t store_id[16] = "kj-fuzz-storeid";

typedef struct src {
  const uint8_t *p;
  size_t n;
} src;

static int rd(void *arg, uint64_t off, void *buf, size_t n, size_t *got) {
  src *s = arg;
  if (off >= s->n) {
    *got = 0;
    return KJ_OK;
  }
  size_t k = s->n - (size_t)off < n ? s->n - (size_t)off : n;
  memcpy(buf, s->p + off, k);
  *got = k;
  return KJ_OK;
}

typedef struct order {
  unsigned table;
  uint8_t key[KJ_MAX_KEY];
  size_t klen;
  int any;
} order;

static int row(void *arg, unsigned table, const uint8_t *key, size_t klen,
               const uint8_t *val, size_t vlen) {
  order *o = arg;
  (void)val;
  (void)vlen;
  if (table < KJ_TABLE_MIN || table > KJ_TABLE_MAX || klen < 1 ||
      klen > KJ_MAX_KEY)
    abort(); /* the decoder handed out a row it must have refused */
  if (o->any &&
      (table < o->table ||
       (table == o->table && kj_key_cmp(key, klen, o->key, o->klen) <= 0)))
    abort(); /* rows out of order */
  o->table = table;
  memcpy(o->key, key, klen);
  o->klen = klen;
  o->any = 1;
  return KJ_OK;
}

static void decode(const uint8_t *p, size_t n) {
  src s = {p, n};
  order *o = calloc(1, sizeof *o);
  if (!o)
    abort();
  kj_snap_info info;
  memset(&info, 0, sizeof info);
  kj_errbuf e;
  e.msg[0] = 0;
  int rc = kj_snapshot_decode(rd, &s, "fuzz.kjs", fz_key, store_id, row, o,
                              &info, &e);
  if (getenv("FZ_VERBOSE")) /* replay aid */
    fprintf(stderr, "fuzz_snapshot: %d rows %llu %s\n", rc,
            (unsigned long long)info.rows, rc ? e.msg : "");
  free(o);
}

static void mode_build(fz_provider *fp) {
  kj_map *tables[KJ_TABLE_MAX + 1];
  for (unsigned t = 0; t <= KJ_TABLE_MAX; t++) {
    tables[t] = kj_map_new();
    if (!tables[t])
      abort();
  }
  unsigned rows = (unsigned)fz_range(fp, 0, 10);
  for (unsigned i = 0; i < rows; i++) {
    unsigned t = (unsigned)fz_range(fp, 1, 255);
    size_t kl, vl;
    const uint8_t *k = fz_key_bytes(fp, 16, &kl);
    const uint8_t *v = fz_lbytes(fp, 600, &vl);
    (void)kj_map_put(tables[t], k, kl, v, vl, 0);
  }
  kj_snap_info info;
  memset(&info, 0, sizeof info);
  info.seq = fz_range(fp, 0, 3);
  info.base = 1 + info.seq;
  char *dir = fz_mkdtemp();
  int renamed = 0;
  kj_errbuf e;
  int rc = kj_snapshot_write(kj_vfs_posix(), dir, fz_key, store_id, tables,
                             &info, &renamed, &e);
  for (unsigned t = 0; t <= KJ_TABLE_MAX; t++)
    kj_map_free(tables[t]);
  if (rc != KJ_OK)
    abort();
  char name[64];
  kj_snapshot_name(info.seq, name, sizeof name);
  char *path = fz_join(dir, name);
  size_t len = 0;
  uint8_t *b = fz_read_file(path, &len);
  if (!b)
    abort();
  unsigned edits = (unsigned)fz_range(fp, 0, 4);
  for (unsigned i = 0; i < edits && len > 0; i++) {
    size_t off = (size_t)fz_range(fp, 0, len - 1);
    switch (fz_u8(fp) % 4) {
    case 0:
      b[off] ^= (uint8_t)(fz_u8(fp) | 1);
      break;
    case 1:
      fz_overwrite(fp, b, len, off, 32);
      break;
    case 2:
      len = off;
      break;
    default:
      b = fz_append(fp, b, &len, 64);
      break;
    }
  }
  decode(b, len);
  /* The same file through the VFS path as well. */
  (void)fz_write_file(dir, name, b, len);
  order *o = calloc(1, sizeof *o);
  if (!o)
    abort();
  memset(&info, 0, sizeof info);
  (void)kj_snapshot_read(kj_vfs_posix(), path, fz_key, store_id, row, o, &info,
                         &e);
  free(o);
  free(b);
  free(path);
  fz_rmrf(dir);
  free(dir);
}

#define SS_ABYTES crypto_secretstream_xchacha20poly1305_ABYTES
#define SS_HDR crypto_secretstream_xchacha20poly1305_HEADERBYTES

static void mode_sealed(fz_provider *fp) {
  uint8_t flags = fz_u8(fp);
  unsigned nchunks = (unsigned)fz_range(fp, 1, 4);
  uint64_t seq = fz_range(fp, 0, 3);
  size_t n;
  const uint8_t *body = fz_rest(fp, &n);
  uint8_t *z = NULL;
  if (!(flags & 1)) { /* compress the body as the writer does */
    size_t cap = ZSTD_compressBound(n);
    z = malloc(cap ? cap : 1);
    if (!z)
      abort();
    size_t r = ZSTD_compress(z, cap, body, n, 1);
    if (ZSTD_isError(r))
      abort();
    body = z;
    n = r;
  }
  size_t cap = 64 + SS_HDR + nchunks * (4 + SS_ABYTES) + n + 1;
  uint8_t *f = calloc(1, cap);
  if (!f)
    abort();
  memcpy(f, "KJSNAP\0\0", 8);
  kj_put32(f + 8, 1);
  memcpy(f + 16, store_id, 16);
  kj_put64(f + 32, seq);
  kj_put64(f + 40, seq + 1);
  kj_put64(f + 56, XXH3_64bits(f, 56));
  crypto_secretstream_xchacha20poly1305_state ss;
  crypto_secretstream_xchacha20poly1305_init_push(&ss, f + 64, fz_key);
  size_t off = 64 + SS_HDR, done = 0;
  for (unsigned c = 0; c < nchunks; c++) {
    size_t part = c + 1 == nchunks ? n - done : (n - done) / 2;
    int last = c + 1 == nchunks;
    unsigned char tag = last && !(flags & 2)
                            ? crypto_secretstream_xchacha20poly1305_TAG_FINAL
                            : 0;
    unsigned long long clen;
    crypto_secretstream_xchacha20poly1305_push(
        &ss, f + off + 4, &clen, body + done, part, c == 0 ? f : NULL,
        c == 0 ? 64 : 0, tag);
    kj_put32(f + off, (uint32_t)clen);
    off += 4 + (size_t)clen;
    done += part;
  }
  if (flags & 4)
    f[off++] = 0; /* a byte after the final chunk */
  decode(f, off);
  free(f);
  free(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_provider fp = fz_start(data, size, 3);
  uint8_t mode = fz_u8(&fp) % 3;
  if (mode == 1) {
    mode_build(&fp);
  } else if (mode == 2) {
    mode_sealed(&fp);
  } else {
    size_t n;
    const uint8_t *p = fz_rest(&fp, &n);
    decode(p, n);
  }
  return 0;
}
