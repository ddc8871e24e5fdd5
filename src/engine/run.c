/*
 * src/engine/run.c - writing and reading run files (src/engine/run.h,
 * doc/FORMAT.md section 6A).
 *
 * A run file is a plaintext header, data blocks, a sealed index and a
 * fixed-size sealed footer at the very end. Each block holds rows in
 * (table, key) order and an offset table, is compressed on its own with
 * zstd (or stored when that does not shrink it) and sealed with
 * XChaCha20-Poly1305 under the snapshot subkey. Every sealed unit's nonce is
 * the file's random 16-byte prefix and the unit's number (a block's number,
 * the block count for the index, 2^64 - 1 for the footer), and its
 * associated data is the store id, S, that number and the unit's kind, so a
 * unit authenticates only in its own place of its own file.
 *
 * What this file relies on, and checks before relying on it:
 *   - open checks the header, authenticates the footer and the index, and
 *     checks that the blocks tile the file from the header to the index
 *     (offset of block i + 1 = end of block i), that first keys strictly
 *     ascend and that the index's row counts add up to the footer's. So the
 *     index alone tells which block may hold a key.
 *   - a block is checked whole when it is decoded (load_block): its rows are
 *     well formed, contiguous, each where the offset table says, strictly
 *     ascending, its first row is the index's first key, its last row is
 *     below the next block's first key and its row count is the index's.
 *     Only a block so checked is ever handed out (or put in the cache), so
 *     lookups inside a block parse without bounds checks beyond the block.
 *
 * The writer keeps one block, the growing index and a write buffer; the
 * reader keeps the index, and decodes blocks into the block cache (bcache.c)
 * with decoders (zstd context and buffers) taken from a small pool, so
 * parallel readers decode in parallel. Plaintext (rows, keys of the index,
 * compressed blocks, zstd's contexts) lives in secmem memory.
 *
 * A warm lookup of a large run is bound by memory latency, not by
 * instructions: each line it touches that no recent read touched is a
 * cache and TLB miss. So the index is searched through 16-byte key
 * prefixes in two steps of one page each (ix_upper), and a cached block
 * carries a search aid, 8 bytes of each row's key, beside its header
 * (build_aux), so the search inside it reads one small array instead of a
 * row per step. Neither is on disk; both are derived when reading.
 */
#include "run.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_customMem: contexts in row memory */
#include <zstd.h>

#include "common/codec.h"
#include "crypto.h"
#include "durable.h"
#include "journal.h"
#include "keyjournal/errors.h"
#include "keyjournal/store.h"
#include "map.h"
#include "secmem.h"

#define RUN_MAGIC "KJRUN\0\0\0"
#define FOOT_MAGIC "KJRUNEND"
#define HDR 80u        /* plaintext file header */
#define FOOT_PLAIN 80u /* footer plaintext */
#define FOOT (FOOT_PLAIN + KJ_TAG_BYTES)
#define BLK_PREFIX 5u /* u8 encoding, u32 decoded length */
#define ENC_STORED 0u
#define ENC_ZSTD 1u
#define KIND_BLOCK 1u
#define KIND_INDEX 2u
#define KIND_FOOTER 3u
#define FOOTER_NO UINT64_MAX
#define AD_BYTES (KJ_STORE_ID_BYTES + 8u + 8u + 1u)
/* The shortest row: table, key length, one key byte, value length. */
#define ROW_MIN 4u
/* The shortest block plaintext: one row, its offset, the row count. */
#define BLOCK_MIN (ROW_MIN + 4u + 4u)
#define SEALED_MIN (KJ_TAG_BYTES + BLK_PREFIX + 1u)
#define SEALED_MAX (KJ_TAG_BYTES + BLK_PREFIX + KJ_RUN_BLOCK_MAX)
/* Rows a block can hold: each costs at least ROW_MIN bytes and an offset. */
#define BLOCK_ROWS_MAX (KJ_RUN_BLOCK_MAX / (ROW_MIN + 4u))
#define ZLEVEL 1
#define WBUF (1u << 20) /* the writer's write buffer */
/* Bloom filter (FORMAT.md 6A.5): 64-byte blocks, about 10 bits per row,
 * 7 bits set per key, all in the block its hash picks (one cache line per
 * test; about 1% false positives). */
#define BLOOM_BLOCK 64u
#define BLOOM_BITS_PER_ROW 10u
#define BLOOM_K 7u
/* A decoder's buffers above this go back to the allocator after use. */
#define DEC_KEEP (256u << 10)

void kj_run_name(uint64_t seq, char *out, size_t len) {
  snprintf(out, len, "run-%016" PRIx64 ".kjr", seq);
}

int kj_run_parse_name(const char *name, uint64_t *seq) {
  return strlen(name) == 4 + 16 + 4 && !strncmp(name, "run-", 4) &&
         !strcmp(name + 20, ".kjr") && kj_parse_hex16(name + 4, seq);
}

/* ---- shared pieces ------------------------------------------------------ */

static void make_nonce(uint8_t n[KJ_NONCE_BYTES], const uint8_t prefix[16],
                       uint64_t no) {
  memcpy(n, prefix, 16);
  kj_put64(n + 16, no);
}

static void make_ad(uint8_t ad[AD_BYTES], const uint8_t *store_id, uint64_t seq,
                    uint64_t no, unsigned kind) {
  memcpy(ad, store_id, KJ_STORE_ID_BYTES);
  kj_put64(ad + 16, seq);
  kj_put64(ad + 24, no);
  ad[32] = (uint8_t)kind;
}

/* (ta, ka) against (tb, kb) in run order: table, then key as map.c. */
static int tk_cmp(unsigned ta, const uint8_t *ka, size_t kla, unsigned tb,
                  const uint8_t *kb, size_t klb) {
  if (ta != tb)
    return ta < tb ? -1 : 1;
  return kj_key_cmp(ka, kla, kb, klb);
}

/* zstd's windows and buffers hold plaintext rows: its contexts allocate
 * from row memory too (secmem.h). */
/* The Bloom hash of (table, key) under a run's seed (the first 8 bytes of
 * its nonce prefix): XXH3 of the key, the table folded into the seed. */
static uint64_t bloom_hash(uint64_t seed, unsigned table, const void *key,
                           size_t klen) {
  return XXH3_64bits_withSeed(key, klen,
                              seed ^ ((uint64_t)table * 0x9E3779B97F4A7C15u));
}

/* The block of nblocks that h picks (the high 32 bits scaled), and the
 * BLOOM_K bit positions in it: 9-bit fields of h mixed once more. */
static uint64_t bloom_block(uint64_t h, uint64_t nblocks) {
  return (uint64_t)(((h >> 32) * nblocks) >> 32);
}

static uint64_t bloom_mix(uint64_t h) {
  h ^= h >> 29;
  h *= 0xBF58476D1CE4E5B9u;
  return h ^ (h >> 32);
}

static void bloom_set(uint8_t *bits, uint64_t nblocks, uint64_t h) {
  uint8_t *b = bits + BLOOM_BLOCK * bloom_block(h, nblocks);
  uint64_t m = bloom_mix(h);
  for (unsigned i = 0; i < BLOOM_K; i++) {
    unsigned pos = (unsigned)(m >> (9 * i)) & 511u;
    b[pos >> 3] |= (uint8_t)(1u << (pos & 7));
  }
}

static int bloom_test(const uint8_t *bits, uint64_t nblocks, uint64_t h) {
  const uint8_t *b = bits + BLOOM_BLOCK * bloom_block(h, nblocks);
  uint64_t m = bloom_mix(h);
  for (unsigned i = 0; i < BLOOM_K; i++) {
    unsigned pos = (unsigned)(m >> (9 * i)) & 511u;
    if (!(b[pos >> 3] & (1u << (pos & 7))))
      return 0;
  }
  return 1;
}

/* zstd's contexts allocate from row memory (secmem.h). */
static const ZSTD_customMem zs_mem = {kj_sec_zalloc, kj_sec_zfree, NULL};

/* Grow the secmem buffer *p of *cap bytes to hold n. 0 or -1. */
static int sec_reserve(uint8_t **p, size_t *cap, size_t n) {
  if (n <= *cap)
    return 0;
  size_t c = *cap ? *cap : 4096;
  while (c < n)
    c = c > SIZE_MAX / 2 ? n : c * 2;
  uint8_t *q = kj_sec_realloc(*p, c);
  if (!q)
    return -1;
  *p = q;
  *cap = c;
  return 0;
}

/* ---- writing ------------------------------------------------------------ */

struct kj_run_writer {
  kj_durable d;
  char dir[KJ_PATH_MAX]; /* kj_durable keeps a pointer to it until finish */
  const uint8_t *key;
  uint8_t store_id[KJ_STORE_ID_BYTES];
  kj_snap_info info;
  uint8_t prefix[16];
  uint64_t off; /* file offset of the next sealed byte */
  uint64_t nblocks, rows, raw;
  int err; /* sticky: a failed write or allocation */
  kj_errbuf eb;
  /* The open block: BLK_PREFIX bytes of room, then `used` bytes of rows;
   * offs[0..nrows) their offsets. */
  uint8_t *blk;
  size_t blkcap, used;
  uint32_t *offs;
  size_t nrows, offscap;
  ZSTD_CCtx *z;
  uint8_t *zbuf; /* a compressed block, BLK_PREFIX first (secmem) */
  size_t zcap;
  /* Sealed bytes not yet written: wb[0..wpos) belong at off - wpos. */
  uint8_t *wb;
  size_t wpos;
  uint8_t *big; /* a sealed unit larger than the write buffer */
  size_t bigcap;
  uint8_t *ix; /* the encoded index so far (secmem) */
  size_t ixlen, ixcap;
  /* The previous row, for the order check. */
  unsigned ltable;
  uint8_t *lkey;
  size_t lklen;
  /* Per table: rows and key + value bytes; every row's Bloom hash. */
  uint64_t trows[256], tbytes[256];
  uint64_t *hash; /* secmem: derived from keys */
  size_t nhash, hashcap;
};

static int w_fail(kj_run_writer *w, int rc, kj_errbuf *e) {
  w->err = rc;
  if (e)
    *e = w->eb;
  return rc;
}

static int w_flush(kj_run_writer *w) {
  if (!w->wpos)
    return KJ_OK;
  int rc = kj_durable_write(&w->d, w->wb, w->wpos, w->off - w->wpos, &w->eb);
  w->wpos = 0;
  return rc;
}

/* Seal plen bytes of m as unit (no, kind) at w->off, through the write
 * buffer. */
static int w_seal(kj_run_writer *w, const uint8_t *m, size_t plen, uint64_t no,
                  unsigned kind) {
  uint8_t nonce[KJ_NONCE_BYTES], ad[AD_BYTES];
  make_nonce(nonce, w->prefix, no);
  make_ad(ad, w->store_id, w->info.seq, no, kind);
  size_t n = plen + KJ_TAG_BYTES;
  int rc;
  if (w->wpos + n > WBUF && (rc = w_flush(w)))
    return rc;
  if (n <= WBUF) {
    kj_seal(w->key, w->wb + w->wpos, m, plen, ad, sizeof ad, nonce);
    w->wpos += n;
    w->off += n;
    return KJ_OK;
  }
  if (n > w->bigcap) { /* ciphertext only: ordinary memory */
    uint8_t *b = realloc(w->big, n);
    if (!b)
      return kj_err(&w->eb, KJ_ENOMEM, "write %s: out of memory", w->d.tmp);
    w->big = b;
    w->bigcap = n;
  }
  kj_seal(w->key, w->big, m, plen, ad, sizeof ad, nonce);
  rc = kj_durable_write(&w->d, w->big, n, w->off, &w->eb);
  w->off += n;
  return rc;
}

/* Close the open block: append its offset table and row count, compress,
 * seal and write it, and add its index entry. */
static int w_emit(kj_run_writer *w) {
  uint8_t *p = w->blk + BLK_PREFIX;
  size_t n = w->nrows;
  for (size_t i = 0; i < n; i++)
    kj_put32(p + w->used + 4 * i, w->offs[i]);
  kj_put32(p + w->used + 4 * n, (uint32_t)n);
  size_t len = w->used + 4 * n + 4; /* the block plaintext */
  w->raw += len;

  const uint8_t *unit = w->blk;
  size_t ulen = BLK_PREFIX + len;
  size_t bound = ZSTD_compressBound(len);
  if (!sec_reserve(&w->zbuf, &w->zcap, BLK_PREFIX + bound)) {
    size_t zr =
        ZSTD_compressCCtx(w->z, w->zbuf + BLK_PREFIX, bound, p, len, ZLEVEL);
    kj_sec_burn_stack(16384);
    if (!ZSTD_isError(zr) && zr < len) {
      unit = w->zbuf;
      ulen = BLK_PREFIX + zr;
    }
  } /* else (no memory for it) the block is stored: still correct */
  uint8_t *u = (uint8_t *)unit;
  u[0] = (uint8_t)(unit == w->zbuf ? ENC_ZSTD : ENC_STORED);
  kj_put32(u + 1, (uint32_t)len);

  /* The index entry: the first row's table and key, where the block goes,
   * its sealed length and row count. */
  const uint8_t *q = p + 1;
  uint64_t klen = 0;
  (void)kj_get_varint(&q, p + w->used, &klen); /* written just above */
  size_t need = w->ixlen + 1 + KJ_VARINT_MAX + (size_t)klen + 16;
  if (sec_reserve(&w->ix, &w->ixcap, need))
    return kj_err(&w->eb, KJ_ENOMEM, "write %s: out of memory", w->d.tmp);
  uint8_t *x = w->ix + w->ixlen;
  *x++ = p[0];
  x += kj_put_varint(x, klen);
  memcpy(x, q, (size_t)klen);
  x += klen;
  kj_put64(x, w->off);
  kj_put32(x + 8, (uint32_t)(ulen + KJ_TAG_BYTES));
  kj_put32(x + 12, (uint32_t)n);
  w->ixlen = (size_t)(x + 16 - w->ix);

  int rc = w_seal(w, unit, ulen, w->nblocks, KIND_BLOCK);
  w->nblocks++;
  w->used = 0;
  w->nrows = 0;
  return rc;
}

static void header_encode(uint8_t h[HDR], const uint8_t *store_id,
                          const kj_snap_info *info, const uint8_t prefix[16]) {
  memset(h, 0, HDR);
  memcpy(h, RUN_MAGIC, 8);
  kj_put32(h + 8, KJ_RUN_VERSION);
  memcpy(h + 16, store_id, KJ_STORE_ID_BYTES);
  kj_put64(h + 32, info->seq);
  kj_put64(h + 40, info->base);
  memcpy(h + 48, prefix, 16);
  kj_put64(h + 72, XXH3_64bits(h, 72));
}

static void w_free(kj_run_writer *w) {
  ZSTD_freeCCtx(w->z);
  kj_sec_free(w->blk);
  free(w->offs);
  kj_sec_free(w->zbuf);
  free(w->wb);
  free(w->big);
  kj_sec_free(w->ix);
  kj_sec_free(w->lkey);
  kj_sec_free(w->hash);
  free(w);
}

int kj_run_writer_begin(const kj_vfs *vfs, const char *dir, const uint8_t *key,
                        const uint8_t *store_id, const kj_snap_info *info,
                        kj_run_writer **out, kj_errbuf *e) {
  *out = NULL;
  char name[64];
  kj_run_name(info->seq, name, sizeof name);
  kj_run_writer *w = calloc(1, sizeof *w);
  if (!w)
    return kj_err(e, KJ_ENOMEM, "run %s: out of memory", name);
  w->key = key;
  memcpy(w->store_id, store_id, KJ_STORE_ID_BYTES);
  w->info = *info;
  w->z = ZSTD_createCCtx_advanced(zs_mem);
  w->wb = malloc(WBUF); /* ciphertext only */
  w->lkey = kj_sec_alloc(KJ_MAX_KEY);
  if (!w->z || !w->wb || !w->lkey ||
      sec_reserve(&w->blk, &w->blkcap, BLK_PREFIX + KJ_RUN_BLOCK_TARGET) ||
      sec_reserve(&w->ix, &w->ixcap, 4096)) {
    w_free(w);
    return kj_err(e, KJ_ENOMEM, "run %s: out of memory", name);
  }
  if (strlen(dir) >= sizeof w->dir) {
    w_free(w);
    return kj_err(e, KJ_EINVAL, "run %s: directory path too long", name);
  }
  strcpy(w->dir, dir);
  int rc = kj_durable_begin(&w->d, vfs, w->dir, name, KJ_DURABLE_SYNC, e);
  if (rc) {
    w_free(w);
    return rc;
  }
  kj_random(w->prefix, sizeof w->prefix);
  uint8_t h[HDR];
  header_encode(h, store_id, info, w->prefix);
  memcpy(w->wb, h, HDR);
  w->wpos = HDR;
  w->off = HDR;
  *out = w;
  return KJ_OK;
}

int kj_run_writer_add(kj_run_writer *w, unsigned table, const void *key,
                      size_t klen, const void *val, size_t vlen, kj_errbuf *e) {
  if (w->err)
    return w_fail(w, w->err, e);
  if (table < KJ_TABLE_MIN || table > KJ_TABLE_MAX || !key || klen < 1 ||
      klen > KJ_MAX_KEY || vlen > KJ_MAX_VALUE || (vlen && !val))
    return kj_err(e, KJ_EINVAL,
                  "run %s: row of table %u, key %zu bytes, value %zu bytes "
                  "out of range",
                  w->d.tmp, table, klen, vlen);
  if (w->rows && tk_cmp(w->ltable, w->lkey, w->lklen, table, key, klen) >= 0)
    return kj_err(e, KJ_EINVAL,
                  "run %s: row %" PRIu64
                  " (table %u) is not above the previous one (table %u)",
                  w->d.tmp, w->rows, table, w->ltable);
  size_t rs = 1 + kj_varint_len(klen) + klen + kj_varint_len(vlen) + vlen;
  /* Pack rows until the next one would take the block past the target; a
   * row larger than the target gets a block of its own. */
  if (w->nrows && w->used + rs + 4 * (w->nrows + 1) + 4 > KJ_RUN_BLOCK_TARGET) {
    int rc = w_emit(w);
    if (rc)
      return w_fail(w, rc, e);
  }
  if (sec_reserve(&w->blk, &w->blkcap,
                  BLK_PREFIX + w->used + rs + 4 * (w->nrows + 1) + 4))
    return w_fail(
        w, kj_err(&w->eb, KJ_ENOMEM, "write %s: out of memory", w->d.tmp), e);
  if (w->nhash == w->hashcap) {
    size_t c = w->hashcap ? 2 * w->hashcap : 1024;
    uint64_t *h = kj_sec_realloc(w->hash, c * sizeof *h);
    if (!h)
      return w_fail(
          w, kj_err(&w->eb, KJ_ENOMEM, "write %s: out of memory", w->d.tmp), e);
    w->hash = h;
    w->hashcap = c;
  }
  if (w->nrows == w->offscap) {
    size_t c = w->offscap ? 2 * w->offscap : 256;
    uint32_t *o = realloc(w->offs, c * sizeof *o);
    if (!o)
      return w_fail(
          w, kj_err(&w->eb, KJ_ENOMEM, "write %s: out of memory", w->d.tmp), e);
    w->offs = o;
    w->offscap = c;
  }
  w->offs[w->nrows++] = (uint32_t)w->used;
  uint8_t *p = w->blk + BLK_PREFIX + w->used;
  *p++ = (uint8_t)table;
  p += kj_put_varint(p, klen);
  memcpy(p, key, klen);
  p += klen;
  p += kj_put_varint(p, vlen);
  if (vlen)
    memcpy(p, val, vlen);
  w->used += rs;
  w->ltable = table;
  memcpy(w->lkey, key, klen);
  w->lklen = klen;
  w->rows++;
  w->trows[table]++;
  w->tbytes[table] += klen + vlen;
  w->hash[w->nhash++] = bloom_hash(kj_get64(w->prefix), table, key, klen);
  return KJ_OK;
}

/* After the index entries: the tables' counts and the Bloom filter
 * (FORMAT.md 6A.5). */
static int w_index_tail(kj_run_writer *w) {
  unsigned ntables = 0;
  for (unsigned t = KJ_TABLE_MIN; t <= KJ_TABLE_MAX; t++)
    ntables += w->trows[t] != 0;
  uint64_t nbloom = w->rows
                        ? (w->rows * BLOOM_BITS_PER_ROW + 8 * BLOOM_BLOCK - 1) /
                              (8 * BLOOM_BLOCK)
                        : 0;
  if (nbloom > UINT32_MAX)
    nbloom = UINT32_MAX;
  size_t need = w->ixlen + KJ_VARINT_MAX +
                (size_t)ntables * (1 + 2 * KJ_VARINT_MAX) + 4 +
                (size_t)nbloom * BLOOM_BLOCK;
  if (sec_reserve(&w->ix, &w->ixcap, need))
    return kj_err(&w->eb, KJ_ENOMEM, "write %s: out of memory", w->d.tmp);
  uint8_t *x = w->ix + w->ixlen;
  x += kj_put_varint(x, ntables);
  for (unsigned t = KJ_TABLE_MIN; t <= KJ_TABLE_MAX; t++) {
    if (!w->trows[t])
      continue;
    *x++ = (uint8_t)t;
    x += kj_put_varint(x, w->trows[t]);
    x += kj_put_varint(x, w->tbytes[t]);
  }
  kj_put32(x, (uint32_t)nbloom);
  x += 4;
  memset(x, 0, (size_t)nbloom * BLOOM_BLOCK);
  for (size_t i = 0; i < w->nhash; i++)
    bloom_set(x, nbloom, w->hash[i]);
  x += nbloom * BLOOM_BLOCK;
  w->ixlen = (size_t)(x - w->ix);
  return KJ_OK;
}

int kj_run_writer_finish(kj_run_writer *w, kj_snap_info *info, int *renamed,
                         kj_errbuf *e) {
  *renamed = 0;
  int rc = w->err;
  if (!rc && w->nrows)
    rc = w_emit(w);
  uint64_t ixoff = w->off;
  if (!rc)
    rc = w_index_tail(w);
  if (!rc)
    rc = w_seal(w, w->ix, w->ixlen, w->nblocks, KIND_INDEX);
  if (!rc) {
    uint8_t f[FOOT_PLAIN];
    memset(f, 0, sizeof f);
    memcpy(f, FOOT_MAGIC, 8);
    kj_put32(f + 8, KJ_RUN_VERSION);
    kj_put64(f + 16, w->info.base);
    kj_put64(f + 24, ixoff);
    kj_put64(f + 32, w->ixlen + KJ_TAG_BYTES);
    kj_put64(f + 40, w->nblocks);
    kj_put64(f + 48, w->rows);
    kj_put64(f + 56, w->raw);
    memcpy(f + 64, w->info.prev_tag, KJ_TAG_BYTES);
    rc = w_seal(w, f, sizeof f, FOOTER_NO, KIND_FOOTER);
  }
  if (!rc)
    rc = w_flush(w);
  if (rc) {
    if (e)
      *e = w->eb;
    kj_durable_abort(&w->d);
    w_free(w);
    return rc;
  }
  *info = w->info;
  info->rows = w->rows;
  info->raw_bytes = w->raw;
  info->file_bytes = w->off;
  rc = kj_durable_commit(&w->d, e); /* cleans up after itself */
  *renamed = w->d.renamed;
  w_free(w);
  return rc;
}

void kj_run_writer_abort(kj_run_writer *w) {
  if (!w)
    return;
  kj_durable_abort(&w->d);
  w_free(w);
}

/* ---- reading: the file and its index ------------------------------------ */

/* The first 16 bytes of (table, key) - the table id, then the key's first
 * 15 bytes, zero-padded - as two big-endian numbers: what the index search
 * compares, 16 bytes per block in an array of their own, so a lookup's
 * binary search touches one cache line per step and no key. Prefix order
 * never contradicts (table, key) order: keys that differ within their
 * first 15 bytes compare as their prefixes do, a key that ends there sorts
 * before its extensions whose next byte is not zero, and every other pair
 * has equal prefixes and is compared in full. */
typedef struct ixpfx {
  uint64_t hi, lo;
} ixpfx;

static uint64_t be64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | p[i];
  return v;
}

static ixpfx make_pfx(unsigned table, const uint8_t *key, size_t klen) {
  uint8_t b[16] = {0};
  b[0] = (uint8_t)table;
  if (klen)
    memcpy(b + 1, key, klen < 15 ? klen : 15);
  ixpfx x = {be64(b), be64(b + 8)};
  return x;
}

/* The index search runs in two steps: over `top`, every GROUP-th prefix
 * (a page or two for any run that fits a disk), then over one group of
 * GROUP prefixes (one 4 KiB page). A plain binary search over all of them
 * touched a page per step, and a warm read then spent most of its time in
 * TLB misses. */
#define GROUP 256u

static int pfx_cmp(const ixpfx *a, const ixpfx *b) {
  if (a->hi != b->hi)
    return a->hi < b->hi ? -1 : 1;
  if (a->lo != b->lo)
    return a->lo < b->lo ? -1 : 1;
  return 0;
}

/* One block's index entry, decoded. */
typedef struct ixent {
  const uint8_t *key; /* its first row's key, inside kj_run.ixplain */
  uint64_t off;       /* where its sealed bytes start */
  uint32_t slen;      /* sealed length */
  uint32_t rows;
  uint16_t klen;
  uint8_t table;
} ixent;

/* What decoding a block needs besides the block: taken from the run's pool
 * by one reader at a time. */
typedef struct decoder {
  struct decoder *next;
  ZSTD_DCtx *z;
  uint8_t *ct; /* sealed bytes (ordinary memory) */
  size_t ctcap;
  uint8_t *pt; /* unsealed bytes (secmem) */
  size_t ptcap;
} decoder;

struct kj_run {
  const kj_vfs *vfs;
  kj_vfs_file *f;
  pthread_mutex_t io; /* one VFS call at a time on f (vfs.h) */
  pthread_mutex_t pool_mu;
  decoder *pool;
  const uint8_t *key;
  uint8_t store_id[KJ_STORE_ID_BYTES];
  uint8_t prefix[16];
  uint64_t seq, base, owner;
  uint64_t nblocks, rows, raw, size, ixoff;
  ixent *ix;  /* nblocks entries (secmem) */
  ixpfx *ixp; /* their first keys' prefixes (secmem: key bytes) */
  ixpfx *top; /* ixp[0], ixp[GROUP], ixp[2 * GROUP], ... (secmem) */
  uint64_t ntop;
  uint8_t *ixplain; /* the index plaintext the entries point into (secmem) */
  uint64_t trows[256], tbytes[256]; /* per table, from the index */
  const uint8_t *bloom;             /* nbloom blocks, inside ixplain */
  uint64_t nbloom;
  char path[];
};

uint64_t kj_run_owner(const kj_run *r) { return r->owner; }
uint64_t kj_run_blocks(const kj_run *r) { return r->nblocks; }

void kj_run_block_place(const kj_run *r, uint64_t no, uint64_t *off,
                        uint32_t *len, uint32_t *rows) {
  *off = r->ix[no].off;
  *len = r->ix[no].slen;
  *rows = r->ix[no].rows;
}

/* Read n bytes at off; a file that ends first is KJ_ECORRUPT (open checked
 * its size: it was cut since, or the index lies). */
static int read_at(kj_run *r, uint64_t off, void *buf, size_t n,
                   const char *what, kj_errbuf *e) {
  size_t got = 0;
  pthread_mutex_lock(&r->io);
  errno = 0;
  int rc = r->vfs->read(r->vfs->ctx, r->f, buf, n, off, &got);
  int err = errno;
  pthread_mutex_unlock(&r->io);
  if (rc) {
    errno = err;
    return kj_err(e, rc, "read %s at offset %" PRIu64 ": %s", r->path, off,
                  kj_err_cause());
  }
  if (got < n)
    return kj_err(e, KJ_ECORRUPT,
                  "%s at offset %" PRIu64 ": run file ends inside the %s",
                  r->path, off + got, what);
  return KJ_OK;
}

static void pool_free(kj_run *r) {
  for (decoder *d = r->pool, *n; d; d = n) {
    n = d->next;
    ZSTD_freeDCtx(d->z);
    free(d->ct);
    kj_sec_free(d->pt);
    free(d);
  }
  r->pool = NULL;
}

void kj_run_close(kj_run *r, kj_bcache *c) {
  if (!r)
    return;
  kj_bcache_forget(c, r->owner);
  pool_free(r);
  if (r->f)
    r->vfs->close(r->vfs->ctx, r->f);
  kj_sec_free(r->ix);
  kj_sec_free(r->ixp);
  kj_sec_free(r->top);
  kj_sec_free(r->ixplain);
  pthread_mutex_destroy(&r->io);
  pthread_mutex_destroy(&r->pool_mu);
  free(r);
}

/* Check the header (h, HDR bytes) against the caller's expectations. */
static int check_header(kj_run *r, const uint8_t *h, const uint8_t *store_id,
                        uint64_t seq, kj_errbuf *e) {
  if (memcmp(h, RUN_MAGIC, 8))
    return kj_err(e, KJ_ECORRUPT, "%s at offset 0: not a run file (magic)",
                  r->path);
  if (XXH3_64bits(h, 72) != kj_get64(h + 72))
    return kj_err(e, KJ_ECORRUPT,
                  "%s at offset 72: run header damaged (checksum)", r->path);
  if (kj_get32(h + 8) != KJ_RUN_VERSION)
    return kj_err(e, KJ_EFORMAT, "%s: run format version %" PRIu32, r->path,
                  kj_get32(h + 8));
  if (kj_get32(h + 12) || kj_get64(h + 64))
    return kj_err(e, KJ_ECORRUPT,
                  "%s at offset %u: run header reserved bytes not zero",
                  r->path, kj_get32(h + 12) ? 12u : 64u);
  if (memcmp(h + 16, store_id, KJ_STORE_ID_BYTES))
    return kj_err(e, KJ_ECORRUPT, "%s at offset 16: run of another store",
                  r->path);
  r->seq = kj_get64(h + 32);
  r->base = kj_get64(h + 40);
  if (seq && r->seq != seq)
    return kj_err(e, KJ_ECORRUPT,
                  "%s at offset 32: run of seq %" PRIu64 ", expected %" PRIu64,
                  r->path, r->seq, seq);
  memcpy(r->store_id, store_id, KJ_STORE_ID_BYTES);
  memcpy(r->prefix, h + 48, 16);
  return KJ_OK;
}

/* Authenticate and check the footer; fills the index place, the block and
 * row counts, raw bytes and prev_tag. */
static int read_footer(kj_run *r, uint64_t *ixlen, kj_snap_info *info,
                       kj_errbuf *e) {
  uint8_t c[FOOT], f[FOOT_PLAIN], nonce[KJ_NONCE_BYTES], ad[AD_BYTES];
  uint64_t at = r->size - FOOT;
  int rc = read_at(r, at, c, FOOT, "footer", e);
  if (rc)
    return rc;
  make_nonce(nonce, r->prefix, FOOTER_NO);
  make_ad(ad, r->store_id, r->seq, FOOTER_NO, KIND_FOOTER);
  if (kj_unseal(r->key, f, c, FOOT, ad, sizeof ad, nonce))
    return kj_err(e, KJ_ECORRUPT,
                  "%s at offset %" PRIu64
                  ": run footer fails authentication (file cut, extended, "
                  "damaged, or not this run's)",
                  r->path, at);
  int bad = memcmp(f, FOOT_MAGIC, 8) || kj_get32(f + 8) != KJ_RUN_VERSION ||
            kj_get32(f + 12);
  if (bad)
    return kj_err(e, KJ_ECORRUPT,
                  "%s at offset %" PRIu64 ": run footer damaged", r->path, at);
  uint64_t base = kj_get64(f + 16);
  r->ixoff = kj_get64(f + 24);
  *ixlen = kj_get64(f + 32);
  r->nblocks = kj_get64(f + 40);
  r->rows = kj_get64(f + 48);
  r->raw = kj_get64(f + 56);
  memcpy(info->prev_tag, f + 64, KJ_TAG_BYTES);
  if (base != r->base)
    return kj_err(e, KJ_ECORRUPT,
                  "%s at offset 40: run header's base segment %" PRIu64
                  " is not the footer's %" PRIu64,
                  r->path, r->base, base);
  /* The blocks fill [HDR, ixoff) and the index [ixoff, size - FOOT). */
  if (r->ixoff < HDR || r->ixoff > at || *ixlen != at - r->ixoff ||
      *ixlen < KJ_TAG_BYTES || r->nblocks > (r->ixoff - HDR) / SEALED_MIN ||
      r->raw > r->nblocks * (uint64_t)KJ_RUN_BLOCK_MAX)
    return kj_err(e, KJ_ECORRUPT,
                  "%s at offset %" PRIu64
                  ": run footer's index (offset %" PRIu64 ", %" PRIu64
                  " bytes) or %" PRIu64 " blocks do not fit the file",
                  r->path, at, r->ixoff, *ixlen, r->nblocks);
  return KJ_OK;
}

/* Read, authenticate and decode the index into r->ix. */
static int read_index(kj_run *r, uint64_t ixlen, kj_errbuf *e) {
  if (ixlen > SIZE_MAX - 1)
    return kj_err(e, KJ_ENOMEM, "reading %s: index too large", r->path);
  size_t plen = (size_t)ixlen - KJ_TAG_BYTES;
  /* An entry takes at least 19 bytes (table, a 1-byte length, one key
   * byte, 16): bound the arrays below by the index's size, not only by
   * the footer's block count. */
  if (r->nblocks > plen / 19 || r->nblocks > SIZE_MAX / sizeof(ixent))
    return kj_err(e, KJ_ECORRUPT,
                  "%s at offset %" PRIu64 ": run index of %zu bytes cannot "
                  "hold %" PRIu64 " blocks",
                  r->path, r->ixoff, plen, r->nblocks);
  uint8_t *c = malloc((size_t)ixlen);
  r->ixplain = kj_sec_alloc(plen + 1);
  r->ix = kj_sec_calloc(r->nblocks ? (size_t)r->nblocks : 1, sizeof *r->ix);
  r->ixp = kj_sec_calloc(r->nblocks ? (size_t)r->nblocks : 1, sizeof *r->ixp);
  if (!c || !r->ixplain || !r->ix || !r->ixp) {
    free(c);
    return kj_err(e, KJ_ENOMEM, "reading %s: out of memory", r->path);
  }
  int rc = read_at(r, r->ixoff, c, (size_t)ixlen, "index", e);
  if (rc) {
    free(c);
    return rc;
  }
  uint8_t nonce[KJ_NONCE_BYTES], ad[AD_BYTES];
  make_nonce(nonce, r->prefix, r->nblocks);
  make_ad(ad, r->store_id, r->seq, r->nblocks, KIND_INDEX);
  int bad =
      kj_unseal(r->key, r->ixplain, c, (size_t)ixlen, ad, sizeof ad, nonce);
  free(c);
  if (bad)
    return kj_err(e, KJ_ECORRUPT,
                  "%s at offset %" PRIu64 ": run index fails authentication",
                  r->path, r->ixoff);
  const uint8_t *p = r->ixplain, *end = r->ixplain + plen;
  uint64_t at = HDR, rows = 0, i;
  for (i = 0; i < r->nblocks; i++) {
    ixent *x = &r->ix[i];
    uint64_t klen;
    if (p == end || *p < KJ_TABLE_MIN)
      goto malformed;
    x->table = *p++;
    if (kj_get_varint(&p, end, &klen) || klen < 1 || klen > KJ_MAX_KEY ||
        (uint64_t)(end - p) < klen + 16)
      goto malformed;
    x->key = p;
    x->klen = (uint16_t)klen;
    p += klen;
    x->off = kj_get64(p);
    x->slen = kj_get32(p + 8);
    x->rows = kj_get32(p + 12);
    p += 16;
    if (x->off != at || x->slen < SEALED_MIN || x->slen > SEALED_MAX ||
        x->slen > r->ixoff - at || x->rows < 1 || x->rows > BLOCK_ROWS_MAX)
      return kj_err(e, KJ_ECORRUPT,
                    "%s: run index entry %" PRIu64 " (block at offset %" PRIu64
                    ", %" PRIu32 " bytes, %" PRIu32
                    " rows) does not follow the block before it",
                    r->path, i, x->off, x->slen, x->rows);
    if (i && tk_cmp(x[-1].table, x[-1].key, x[-1].klen, x->table, x->key,
                    x->klen) >= 0)
      return kj_err(e, KJ_ECORRUPT,
                    "%s: run index out of order at block %" PRIu64, r->path, i);
    r->ixp[i] = make_pfx(x->table, x->key, x->klen);
    at += x->slen;
    rows += x->rows;
  }
  if (at != r->ixoff)
    return kj_err(e, KJ_ECORRUPT,
                  "%s at offset %" PRIu64
                  ": run index does not end where the blocks end",
                  r->path, r->ixoff);
  /* The tables' counts, ascending table ids, adding up to the rows; then
   * the Bloom filter, about 10 bits per row, and nothing after it. */
  uint64_t ntables, trows = 0, prev = 0;
  if (kj_get_varint(&p, end, &ntables) || ntables > KJ_TABLE_MAX)
    goto malformed_tail;
  for (uint64_t k = 0; k < ntables; k++) {
    uint64_t tr, tb;
    if (p == end || *p <= prev || *p < KJ_TABLE_MIN)
      goto malformed_tail;
    unsigned t = *p++;
    if (kj_get_varint(&p, end, &tr) || kj_get_varint(&p, end, &tb) || !tr ||
        tr > r->rows || tb > tr * (uint64_t)(KJ_MAX_KEY + KJ_MAX_VALUE))
      goto malformed_tail;
    r->trows[t] = tr;
    r->tbytes[t] = tb;
    trows += tr;
    prev = t;
  }
  if (trows != r->rows || end - p < 4)
    goto malformed_tail;
  r->nbloom = kj_get32(p);
  p += 4;
  if ((r->nbloom == 0) != (r->rows == 0) ||
      (uint64_t)(end - p) != r->nbloom * BLOOM_BLOCK)
    goto malformed_tail;
  r->bloom = p;
  if (rows != r->rows)
    return kj_err(e, KJ_ECORRUPT,
                  "%s: run footer claims %" PRIu64 " rows, the index %" PRIu64,
                  r->path, r->rows, rows);
  r->ntop = (r->nblocks + GROUP - 1) / GROUP;
  r->top = kj_sec_calloc(r->ntop ? (size_t)r->ntop : 1, sizeof *r->top);
  if (!r->top)
    return kj_err(e, KJ_ENOMEM, "reading %s: out of memory", r->path);
  for (uint64_t g = 0; g < r->ntop; g++)
    r->top[g] = r->ixp[g * GROUP];
  return KJ_OK;
malformed:
  return kj_err(e, KJ_ECORRUPT,
                "%s at offset %" PRIu64 ": run index entry %" PRIu64
                " malformed",
                r->path, r->ixoff, i);
malformed_tail:
  return kj_err(e, KJ_ECORRUPT,
                "%s at offset %" PRIu64
                ": run index: the tables' counts or the Bloom filter "
                "malformed",
                r->path, r->ixoff);
}

void kj_run_table_count(const kj_run *r, unsigned table, uint64_t *rows,
                        uint64_t *bytes) {
  if (rows)
    *rows = table < 256 ? r->trows[table] : 0;
  if (bytes)
    *bytes = table < 256 ? r->tbytes[table] : 0;
}

int kj_run_may_have(const kj_run *r, unsigned table, const void *key,
                    size_t klen) {
  return r->nbloom &&
         bloom_test(r->bloom, r->nbloom,
                    bloom_hash(kj_get64(r->prefix), table, key, klen));
}

int kj_run_open(const kj_vfs *vfs, const char *path, const uint8_t *key,
                const uint8_t *store_id, uint64_t seq, kj_run **out,
                kj_snap_info *info, kj_errbuf *e) {
  *out = NULL;
  memset(info, 0, sizeof *info);
  size_t plen = strlen(path);
  kj_run *r = calloc(1, sizeof *r + plen + 1);
  if (!r)
    return kj_err(e, KJ_ENOMEM, "opening %s: out of memory", path);
  memcpy(r->path, path, plen + 1);
  r->vfs = vfs;
  r->key = key;
  r->owner = kj_bcache_owner();
  if (pthread_mutex_init(&r->io, NULL)) {
    free(r);
    return kj_err(e, KJ_ENOMEM, "opening %s: out of memory", path);
  }
  if (pthread_mutex_init(&r->pool_mu, NULL)) {
    pthread_mutex_destroy(&r->io);
    free(r);
    return kj_err(e, KJ_ENOMEM, "opening %s: out of memory", path);
  }
  errno = 0;
  int rc = vfs->open(vfs->ctx, path, KJ_VFS_READ, &r->f);
  if (rc) {
    r->f = NULL;
    kj_err(e, rc, "open %s: %s", path, kj_err_cause());
    goto fail;
  }
  errno = 0;
  if ((rc = vfs->size(vfs->ctx, r->f, &r->size))) {
    kj_err(e, rc, "size of %s: %s", path, kj_err_cause());
    goto fail;
  }
  if (r->size < HDR + KJ_TAG_BYTES + FOOT) {
    uint8_t h[8] = {0};
    size_t got = 0;
    (void)vfs->read(vfs->ctx, r->f, h, sizeof h, 0, &got);
    rc = kj_err(e, KJ_ECORRUPT,
                "%s at offset %" PRIu64 ": %s (%" PRIu64 " bytes)", path,
                r->size,
                got == 8 && !memcmp(h, RUN_MAGIC, 8) ? "run file cut short"
                                                     : "not a run file",
                r->size);
    goto fail;
  }
  uint8_t h[HDR];
  uint64_t ixlen = 0;
  if ((rc = read_at(r, 0, h, HDR, "header", e)) ||
      (rc = check_header(r, h, store_id, seq, e)) ||
      (rc = read_footer(r, &ixlen, info, e)) || (rc = read_index(r, ixlen, e)))
    goto fail;
  info->seq = r->seq;
  info->base = r->base;
  info->rows = r->rows;
  info->raw_bytes = r->raw;
  info->file_bytes = r->size;
  *out = r;
  return KJ_OK;
fail:
  kj_run_close(r, NULL);
  memset(info, 0, sizeof *info);
  return rc;
}

/* ---- reading: blocks ---------------------------------------------------- */

static decoder *dec_take(kj_run *r) {
  pthread_mutex_lock(&r->pool_mu);
  decoder *d = r->pool;
  if (d)
    r->pool = d->next;
  pthread_mutex_unlock(&r->pool_mu);
  if (!d)
    d = calloc(1, sizeof *d);
  return d;
}

static void dec_put(kj_run *r, decoder *d) {
  if (d->ctcap > DEC_KEEP) { /* after a huge row: do not keep its buffers */
    free(d->ct);
    kj_sec_free(d->pt);
    d->ct = d->pt = NULL;
    d->ctcap = d->ptcap = 0;
  }
  pthread_mutex_lock(&r->pool_mu);
  d->next = r->pool;
  r->pool = d;
  pthread_mutex_unlock(&r->pool_mu);
}

/* The row at data + off, trusted (its block was checked): table, key, and
 * the position of its value length. */
static const uint8_t *row_key(const uint8_t *data, const uint8_t *end,
                              uint32_t off, unsigned *table,
                              const uint8_t **key, size_t *klen) {
  const uint8_t *p = data + off;
  uint64_t kl = 0;
  *table = *p++;
  (void)kj_get_varint(&p, end, &kl);
  *key = p;
  *klen = (size_t)kl;
  return p + kl;
}

/* Check the block plaintext d (len bytes) of block no: everything the
 * readers rely on (the top of this file). Hands each row to fn when not
 * NULL. */
static int check_block(kj_run *r, uint64_t no, const uint8_t *d, size_t len,
                       kj_snap_row_fn fn, void *arg, kj_errbuf *e) {
  const ixent *x = &r->ix[no];
  const char *why;
  uint32_t n = len >= 4 ? kj_get32(d + len - 4) : 0;
  if (n != x->rows || (uint64_t)n * 4 + 4 > len) {
    why = "row count is not the index's";
    goto bad;
  }
  size_t rows_end = len - 4 - 4 * (size_t)n;
  const uint8_t *offs = d + rows_end, *end = d + rows_end;
  size_t pos = 0;
  unsigned pt = 0;
  const uint8_t *pk = NULL;
  size_t pkl = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (kj_get32(offs + 4 * (size_t)i) != pos) {
      why = "row not where the offset table says";
      goto bad;
    }
    const uint8_t *p = d + pos;
    uint64_t kl, vl;
    if (p == end || *p < KJ_TABLE_MIN) {
      why = "malformed row";
      goto bad;
    }
    unsigned t = *p++;
    if (kj_get_varint(&p, end, &kl) || kl < 1 || kl > KJ_MAX_KEY ||
        (uint64_t)(end - p) < kl) {
      why = "malformed row";
      goto bad;
    }
    const uint8_t *k = p;
    p += kl;
    if (kj_get_varint(&p, end, &vl) || vl > KJ_MAX_VALUE ||
        (uint64_t)(end - p) < vl) {
      why = "malformed row";
      goto bad;
    }
    if (i == 0 ? tk_cmp(t, k, (size_t)kl, x->table, x->key, x->klen) != 0
               : tk_cmp(pt, pk, pkl, t, k, (size_t)kl) >= 0) {
      why = i == 0 ? "first row is not the index's first key"
                   : "rows out of order";
      goto bad;
    }
    if (fn) {
      int rc = fn(arg, t, k, (size_t)kl, p, (size_t)vl);
      if (rc)
        return kj_err(e, rc, "%s: row %" PRIu32 " of run block %" PRIu64 ": %s",
                      r->path, i, no, kj_strerror(rc));
    }
    pt = t;
    pk = k;
    pkl = (size_t)kl;
    pos = (size_t)(p + vl - d);
  }
  if (pos != rows_end) {
    why = "bytes between the last row and the offset table";
    goto bad;
  }
  if (no + 1 < r->nblocks &&
      tk_cmp(pt, pk, pkl, x[1].table, x[1].key, x[1].klen) >= 0) {
    why = "last row not below the next block's first key";
    goto bad;
  }
  return KJ_OK;
bad:
  return kj_err(e, KJ_ECORRUPT,
                "%s at offset %" PRIu64 ": run block %" PRIu64 " damaged: %s",
                r->path, x->off, no, why);
}

/* The search aid of a decoded block (kj_bblock.aux), built when the block
 * is decoded and kept beside it in the cache: for each row an 8-byte
 * fragment of its key, so that the binary search inside the block reads
 * one small array next to the block's header instead of a row per step.
 * Rows of one table share the key prefix of the block's first and last
 * rows (cp bytes: any key between two keys with a prefix has it too), and
 * a row's fragment is its key's 8 bytes after it; a block with rows of
 * several tables has cp 0 and fragments of the table and 7 key bytes.
 * Zero-padded big-endian, fragments order like the rows except that equal
 * fragments say nothing (compare the rows in full then). */
#define AUX_HDR 32u
#define AUX_P 20u /* bytes of the shared prefix kept in the header */

typedef struct blkaux {
  uint32_t n;    /* rows */
  uint32_t cp;   /* length of the prefix every key shares (one table) */
  uint8_t mixed; /* rows of several tables */
  uint8_t table; /* the table of every row, when not mixed */
  uint8_t pad[2];
  uint8_t p[AUX_P]; /* the shared prefix's first min(cp, AUX_P) bytes */
} blkaux;

_Static_assert(sizeof(blkaux) == AUX_HDR, "the aid's header is AUX_HDR bytes");

static uint64_t frag(const uint8_t *k, size_t kl) {
  uint8_t b[8] = {0};
  if (kl)
    memcpy(b, k, kl < 8 ? kl : 8);
  return be64(b);
}

/* The fragments come first and the aid's header last, right before the
 * block's header in the same allocation, so pinning a block brings the
 * search's first lines in with it. */
static uint64_t *aux_frags(const kj_bblock *b) {
  return (uint64_t *)(void *)b->aux;
}
static blkaux *aux_head(const kj_bblock *b) {
  return (blkaux *)(void *)(b->aux + b->auxlen - AUX_HDR);
}

/* Fill b->aux for the n rows of b (a checked block). */
static void build_aux(kj_bblock *b, uint32_t n) {
  const uint8_t *end = b->data + b->len, *offs = end - 4 - 4 * (size_t)n;
  blkaux *a = aux_head(b);
  unsigned t0, t1;
  const uint8_t *k0, *k1;
  size_t kl0, kl1;
  row_key(b->data, offs, 0, &t0, &k0, &kl0);
  row_key(b->data, offs, kj_get32(offs + 4 * ((size_t)n - 1)), &t1, &k1, &kl1);
  memset(a, 0, sizeof *a);
  a->n = n;
  a->mixed = t0 != t1;
  a->table = (uint8_t)t0;
  if (!a->mixed) {
    size_t cp = 0, m = kl0 < kl1 ? kl0 : kl1;
    while (cp < m && k0[cp] == k1[cp])
      cp++;
    a->cp = (uint32_t)cp;
    memcpy(a->p, k0, cp < AUX_P ? cp : AUX_P);
  }
  uint64_t *f = aux_frags(b);
  for (uint32_t i = 0; i < n; i++) {
    unsigned t;
    const uint8_t *k;
    size_t kl;
    row_key(b->data, offs, kj_get32(offs + 4 * (size_t)i), &t, &k, &kl);
    f[i] = a->mixed ? (uint64_t)t << 56 | frag(k, kl) >> 8
                    : frag(k + a->cp, kl - a->cp);
  }
}

/* Read, authenticate, decompress and check block no into a new block of
 * the cache's kind (not inserted). */
static int load_block(kj_run *r, uint64_t no, kj_snap_row_fn fn, void *arg,
                      kj_bblock **out, kj_errbuf *e) {
  const ixent *x = &r->ix[no];
  *out = NULL;
  decoder *d = dec_take(r);
  if (!d)
    return kj_err(e, KJ_ENOMEM, "reading %s: out of memory", r->path);
  kj_bblock *b = NULL;
  int rc = KJ_OK;
  if (x->slen > d->ctcap) {
    uint8_t *c = realloc(d->ct, x->slen);
    if (!c) {
      rc = kj_err(e, KJ_ENOMEM, "reading %s: out of memory", r->path);
      goto out;
    }
    d->ct = c;
    d->ctcap = x->slen;
  }
  if (sec_reserve(&d->pt, &d->ptcap, x->slen)) {
    rc = kj_err(e, KJ_ENOMEM, "reading %s: out of memory", r->path);
    goto out;
  }
  if ((rc = read_at(r, x->off, d->ct, x->slen, "block", e)))
    goto out;
  uint8_t nonce[KJ_NONCE_BYTES], ad[AD_BYTES];
  make_nonce(nonce, r->prefix, no);
  make_ad(ad, r->store_id, r->seq, no, KIND_BLOCK);
  if (kj_unseal(r->key, d->pt, d->ct, x->slen, ad, sizeof ad, nonce)) {
    rc = kj_err(e, KJ_ECORRUPT,
                "%s at offset %" PRIu64 ": run block %" PRIu64
                " fails authentication",
                r->path, x->off, no);
    goto out;
  }
  size_t plen = x->slen - KJ_TAG_BYTES;
  unsigned enc = d->pt[0];
  uint32_t len = kj_get32(d->pt + 1);
  if (len < BLOCK_MIN || len > KJ_RUN_BLOCK_MAX ||
      (enc == ENC_STORED && plen - BLK_PREFIX != len) ||
      (enc != ENC_STORED && enc != ENC_ZSTD)) {
    rc = kj_err(e, KJ_ECORRUPT,
                "%s at offset %" PRIu64 ": run block %" PRIu64
                " damaged: encoding %u, length %" PRIu32,
                r->path, x->off, no, enc, len);
    goto out;
  }
  if (!(b = kj_bcache_alloc(len, 8 * (size_t)x->rows + AUX_HDR))) {
    rc = kj_err(e, KJ_ENOMEM, "reading %s: out of memory", r->path);
    goto out;
  }
  if (enc == ENC_STORED) {
    memcpy(b->data, d->pt + BLK_PREFIX, len);
  } else {
    if (!d->z && !(d->z = ZSTD_createDCtx_advanced(zs_mem))) {
      rc = kj_err(e, KJ_ENOMEM, "reading %s: out of memory", r->path);
      goto out;
    }
    size_t zr = ZSTD_decompressDCtx(d->z, b->data, len, d->pt + BLK_PREFIX,
                                    plen - BLK_PREFIX);
    kj_sec_burn_stack(16384);
    if (ZSTD_isError(zr) || zr != len) {
      rc = kj_err(e, KJ_ECORRUPT,
                  "%s at offset %" PRIu64 ": run block %" PRIu64
                  " damaged: compressed data: %s",
                  r->path, x->off, no,
                  ZSTD_isError(zr) ? ZSTD_getErrorName(zr) : "short");
      goto out;
    }
  }
  if (!(rc = check_block(r, no, b->data, len, fn, arg, e)))
    build_aux(b, x->rows);
out:
  if (rc && b) {
    kj_bcache_discard(b);
    b = NULL;
  }
  dec_put(r, d);
  *out = b;
  return rc;
}

/* Block no of r, pinned in c (or private), decoded if c lacks it. */
static int get_block(kj_run *r, kj_bcache *c, uint64_t no, kj_bblock **out,
                     kj_errbuf *e) {
  kj_bblock *b = kj_bcache_get(c, r->owner, no);
  if (!b) {
    int rc = load_block(r, no, NULL, NULL, &b, e);
    if (rc)
      return rc;
    b = kj_bcache_insert(c, r->owner, no, b);
  }
  *out = b;
  return KJ_OK;
}

/* How many blocks start at or below (table, key): the block that may hold
 * it is the one before (none when 0). */
static uint64_t ix_upper(const kj_run *r, unsigned table, const uint8_t *key,
                         size_t klen) {
  ixpfx t = make_pfx(table, key, klen);
  /* The first group whose first prefix is not below t. */
  uint64_t lo = 0, hi = r->ntop;
  while (lo < hi) {
    uint64_t mid = lo + (hi - lo) / 2;
    if (pfx_cmp(&r->top[mid], &t) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  /* Groups [0, lo) start below t: their first blocks are at or below the
   * key, so the answer is at least the start of group lo - 1. Group lo
   * starts at or above t: above, and no block from it on is at or below
   * the key; equal (keys sharing their first 15 bytes), and the answer may
   * lie anywhere after it, so search to the end. */
  hi = lo < r->ntop && pfx_cmp(&r->top[lo], &t) > 0 ? lo * GROUP : r->nblocks;
  lo = lo ? (lo - 1) * GROUP : 0;
  while (lo < hi) {
    uint64_t mid = lo + (hi - lo) / 2;
    int c = pfx_cmp(&r->ixp[mid], &t);
    if (!c)
      c = tk_cmp(r->ix[mid].table, r->ix[mid].key, r->ix[mid].klen, table, key,
                 klen);
    if (c <= 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* The first row of block b at or above (table, key), and *eq when it is
 * that key; *n is the block's row count. */
static uint32_t blk_lower(const kj_bblock *b, unsigned table,
                          const uint8_t *key, size_t klen, uint32_t *n,
                          int *eq) {
  const blkaux *a = aux_head(b);
  const uint64_t *f = aux_frags(b);
  const uint8_t *d = b->data, *end = b->data + b->len;
  uint32_t cnt = a->n;
  const uint8_t *offs = end - 4 - 4 * (size_t)cnt;
  *n = cnt;
  *eq = 0;
  if (!key) /* (table, empty): no arithmetic or memcmp on NULL below */
    key = (const uint8_t *)"";
  uint64_t t8;
  if (a->mixed) {
    t8 = (uint64_t)table << 56 | frag(key, klen) >> 8;
  } else {
    /* A key of another table, or without the shared prefix, is below or
     * above every row. */
    if (table != a->table)
      return table < a->table ? 0 : cnt;
    if (a->cp) {
      const uint8_t *p = a->p;
      unsigned t;
      size_t pl;
      if (a->cp > AUX_P)
        row_key(d, offs, 0, &t, &p, &pl); /* the first row's key */
      int c = memcmp(key, p, klen < a->cp ? klen : a->cp);
      if (c || klen < a->cp)
        return c > 0 ? cnt : 0;
    }
    t8 = frag(key + a->cp, klen - a->cp);
  }
  uint32_t lo = 0, hi = cnt;
  int c = 1;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    int cm = f[mid] < t8 ? -1 : f[mid] > t8;
    if (!cm) {
      unsigned t;
      const uint8_t *k;
      size_t kl;
      row_key(d, offs, kj_get32(offs + 4 * (size_t)mid), &t, &k, &kl);
      cm = tk_cmp(t, k, kl, table, key, klen);
    }
    if (cm < 0) {
      lo = mid + 1;
    } else {
      hi = mid;
      c = cm;
    }
  }
  *eq = lo < cnt && c == 0;
  return lo;
}

/* The value of row i of block b. */
static void row_value(const kj_bblock *b, uint32_t n, uint32_t i,
                      unsigned *table, const uint8_t **key, size_t *klen,
                      const uint8_t **val, size_t *vlen) {
  const uint8_t *end = b->data + b->len;
  const uint8_t *offs = end - 4 - 4 * (size_t)n;
  const uint8_t *p =
      row_key(b->data, offs, kj_get32(offs + 4 * (size_t)i), table, key, klen);
  uint64_t vl = 0;
  (void)kj_get_varint(&p, offs, &vl);
  *val = p;
  *vlen = (size_t)vl;
}

static int bad_key(kj_run *r, unsigned table, const void *key, size_t klen,
                   kj_errbuf *e) {
  if (table >= KJ_TABLE_MIN && table <= KJ_TABLE_MAX && key && klen >= 1 &&
      klen <= KJ_MAX_KEY)
    return 0;
  return kj_err(e, KJ_EINVAL, "%s: lookup of table %u, key of %zu bytes",
                r->path, table, key ? klen : 0);
}

int kj_run_find(kj_run *r, kj_bcache *c, unsigned table, const void *key,
                size_t klen, kj_run_ref *ref, kj_errbuf *e) {
  memset(ref, 0, sizeof *ref);
  int rc = bad_key(r, table, key, klen, e);
  if (rc)
    return rc;
  if (!kj_run_may_have(r, table, key, klen))
    return KJ_NOTFOUND; /* no block read for most absent keys */
  uint64_t i = ix_upper(r, table, key, klen);
  if (i == 0)
    return KJ_NOTFOUND;
  kj_bblock *b;
  if ((rc = get_block(r, c, i - 1, &b, e)))
    return rc;
  uint32_t n;
  int eq;
  uint32_t at = blk_lower(b, table, key, klen, &n, &eq);
  if (!eq) {
    kj_bcache_release(c, b);
    return KJ_NOTFOUND;
  }
  unsigned t;
  const uint8_t *k;
  size_t kl;
  ref->blk = b;
  row_value(b, n, at, &t, &k, &kl, &ref->val, &ref->vlen);
  return KJ_OK;
}

void kj_run_ref_release(kj_bcache *c, kj_run_ref *ref) {
  if (ref->blk)
    kj_bcache_release(c, ref->blk);
  memset(ref, 0, sizeof *ref);
}

int kj_run_get(kj_run *r, kj_bcache *c, unsigned table, const void *key,
               size_t klen, void *buf, size_t cap, size_t *vlen, kj_errbuf *e) {
  kj_run_ref ref;
  int rc = kj_run_find(r, c, table, key, klen, &ref, e);
  *vlen = ref.vlen;
  if (rc == KJ_OK && ref.vlen <= cap && ref.vlen)
    memcpy(buf, ref.val, ref.vlen);
  kj_run_ref_release(c, &ref);
  return rc;
}

int kj_run_has(kj_run *r, kj_bcache *c, unsigned table, const void *key,
               size_t klen, kj_errbuf *e) {
  kj_run_ref ref;
  int rc = kj_run_find(r, c, table, key, klen, &ref, e);
  kj_run_ref_release(c, &ref);
  return rc;
}

/* ---- reading: iteration ------------------------------------------------- */

int kj_run_iter_seek(kj_run_iter *it, kj_run *r, kj_bcache *c, unsigned table,
                     const void *key, size_t klen, kj_errbuf *e) {
  memset(it, 0, sizeof *it); /* a caller re-seeking closes it first */
  it->run = r;
  it->cache = c;
  if (table > KJ_TABLE_MAX || klen > KJ_MAX_KEY || (klen && !key))
    return it->err = kj_err(e, KJ_EINVAL,
                            "%s: seek to table %u, key of %zu "
                            "bytes",
                            r->path, table, klen);
  if (!klen)
    key = NULL;
  uint64_t i = ix_upper(r, table, key, klen);
  if (i == 0)
    return KJ_OK; /* below every row: block 0, row 0 */
  it->block = i - 1;
  int rc = get_block(r, c, it->block, &it->blk, e);
  if (rc)
    return it->err = rc;
  int eq;
  it->row = blk_lower(it->blk, table, key, klen, &it->nrows, &eq);
  return KJ_OK;
}

int kj_run_iter_next(kj_run_iter *it, unsigned *table, const uint8_t **key,
                     size_t *klen, const uint8_t **val, size_t *vlen,
                     kj_errbuf *e) {
  if (it->err)
    return kj_err(e, it->err, "%s: iterator stopped by an earlier failure: %s",
                  it->run->path, kj_strerror(it->err));
  for (;;) {
    if (!it->blk) {
      if (it->block >= it->run->nblocks)
        return KJ_NOTFOUND;
      int rc = get_block(it->run, it->cache, it->block, &it->blk, e);
      if (rc)
        return it->err = rc;
      it->nrows = kj_get32(it->blk->data + it->blk->len - 4);
    }
    if (it->row < it->nrows) {
      row_value(it->blk, it->nrows, it->row++, table, key, klen, val, vlen);
      return KJ_OK;
    }
    kj_bcache_release(it->cache, it->blk);
    it->blk = NULL;
    it->block++;
    it->row = 0;
  }
}

void kj_run_iter_close(kj_run_iter *it) {
  if (it->blk)
    kj_bcache_release(it->cache, it->blk);
  it->blk = NULL;
}

/* ---- verify ------------------------------------------------------------- */

/* kj_run_verify's row sink: each row counts for its table and must pass
 * the Bloom filter, then goes to the caller's sink. */
typedef struct verify_ctx {
  kj_run *r;
  kj_snap_row_fn fn;
  void *arg;
  uint64_t trows[256], tbytes[256];
  uint64_t not_in_filter;
} verify_ctx;

static int verify_row(void *arg, unsigned table, const uint8_t *key,
                      size_t klen, const uint8_t *val, size_t vlen) {
  verify_ctx *v = arg;
  v->trows[table]++;
  v->tbytes[table] += klen + vlen;
  v->not_in_filter += !kj_run_may_have(v->r, table, key, klen);
  return v->fn ? v->fn(v->arg, table, key, klen, val, vlen) : KJ_OK;
}

int kj_run_verify(kj_run *r, kj_snap_row_fn fn, void *arg, kj_errbuf *e) {
  uint64_t raw = 0, rows = 0;
  verify_ctx *v = calloc(1, sizeof *v);
  if (!v)
    return kj_err(e, KJ_ENOMEM, "verifying %s: out of memory", r->path);
  v->r = r;
  v->fn = fn;
  v->arg = arg;
  for (uint64_t no = 0; no < r->nblocks; no++) {
    kj_bblock *b;
    int rc = load_block(r, no, verify_row, v, &b, e);
    if (rc) {
      free(v);
      return rc;
    }
    raw += b->len;
    rows += r->ix[no].rows;
    kj_bcache_discard(b);
  }
  /* check_block matched each block's rows to the index, and open the
   * index's sum to the footer's; raw bytes are only known now. */
  int same = 1;
  for (unsigned t = 0; t < 256; t++)
    same &= v->trows[t] == r->trows[t] && v->tbytes[t] == r->tbytes[t];
  uint64_t missed = v->not_in_filter;
  free(v);
  if (raw != r->raw || rows != r->rows)
    return kj_err(e, KJ_ECORRUPT,
                  "%s: run footer claims %" PRIu64 " rows of %" PRIu64
                  " bytes, the blocks hold %" PRIu64 " of %" PRIu64,
                  r->path, r->rows, r->raw, rows, raw);
  if (!same || missed)
    return kj_err(e, KJ_ECORRUPT, "%s: run index %s", r->path,
                  !same ? "counts other rows per table than the blocks hold"
                        : "Bloom filter leaves out rows the blocks hold");
  return KJ_OK;
}
