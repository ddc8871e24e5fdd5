/*
 * src/engine/snapshot.c - writing and reading snapshot files.
 *
 * A snapshot is the whole table state at one journal sequence number:
 * rows serialised in (table, key) order, compressed as one zstd stream, and
 * the compressed bytes encrypted in chunks with libsodium's secretstream
 * (XChaCha20-Poly1305). The last chunk carries the FINAL tag, so a file cut
 * short is detected; the plaintext file header is bound into the first
 * chunk as associated data. doc/FORMAT.md section 6 has the bytes.
 *
 * Both directions stream with bounded buffers, so a snapshot never needs
 * memory for the whole state beyond the tables themselves. The file is
 * written through durable.c; when to write one, and which one to load, is
 * checkpoint.c's business.
 */
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_customMem: contexts in row memory */
#include <zstd.h>

#include "common/codec.h"
#include "durable.h"
#include "journal.h"
#include "keyjournal/store.h"
#include "secmem.h"
#include "snapshot.h"

#define SNAP_MAGIC "KJSNAP\0\0"
#define SNAP_VERSION 1u
#define BODY_VERSION 1u
#define HDR 64u
#define SS_HDR crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define SS_ABYTES crypto_secretstream_xchacha20poly1305_ABYTES
#define CHUNK (1u << 20) /* compressed bytes per encrypted chunk */
#define STAGE (256u << 10)
#define ZLEVEL 1

void kj_snapshot_name(uint64_t seq, char *out, size_t len) {
  snprintf(out, len, "snapshot-%016" PRIx64 ".kjs", seq);
}

int kj_snapshot_parse_name(const char *name, uint64_t *seq) {
  return strlen(name) == 9 + 16 + 4 && !strncmp(name, "snapshot-", 9) &&
         !strcmp(name + 25, ".kjs") && kj_parse_hex16(name + 9, seq);
}

static void header_encode(uint8_t h[HDR], const uint8_t *store_id,
                          const kj_snap_info *info) {
  memset(h, 0, HDR);
  memcpy(h, SNAP_MAGIC, 8);
  kj_put32(h + 8, SNAP_VERSION);
  memcpy(h + 16, store_id, KJ_STORE_ID_BYTES);
  kj_put64(h + 32, info->seq);
  kj_put64(h + 40, info->base);
  kj_put64(h + 56, XXH3_64bits(h, 56));
}

/* ---- writing ---------------------------------------------------------- */

typedef struct writer {
  kj_durable d; /* the file */
  uint64_t off;
  crypto_secretstream_xchacha20poly1305_state ss;
  uint8_t hdr[HDR];
  int first;
  ZSTD_CCtx *z;
  uint8_t *zout; /* compressed bytes of the next chunk */
  size_t zpos;
  uint8_t *ct; /* 4-byte length + ciphertext */
  uint8_t *stage;
  size_t spos;
  uint64_t raw;
} writer;

/* Encrypt and write the pending compressed bytes as one chunk. */
static int emit_chunk(writer *w, int final) {
  unsigned long long clen;
  crypto_secretstream_xchacha20poly1305_push(
      &w->ss, w->ct + 4, &clen, w->zout, w->zpos, w->first ? w->hdr : NULL,
      w->first ? HDR : 0,
      final ? crypto_secretstream_xchacha20poly1305_TAG_FINAL : 0);
  w->first = 0;
  kj_put32(w->ct, (uint32_t)clen);
  int rc = kj_durable_write(&w->d, w->ct, 4 + (size_t)clen, w->off, NULL);
  w->off += 4 + clen;
  w->zpos = 0;
  return rc;
}

/* Compress in[0,n) (end: finish the stream and emit the final chunk). */
static int compress(writer *w, const uint8_t *in, size_t n, int end) {
  ZSTD_inBuffer ib = {in, n, 0};
  for (;;) {
    ZSTD_outBuffer ob = {w->zout, CHUNK, w->zpos};
    size_t r = ZSTD_compressStream2(w->z, &ob, &ib,
                                    end ? ZSTD_e_end : ZSTD_e_continue);
    kj_sec_burn_stack(16384);
    if (ZSTD_isError(r))
      return KJ_ENOMEM; /* zstd fails only on allocation here */
    w->zpos = ob.pos;
    if (end && r == 0)
      return emit_chunk(w, 1);
    if (w->zpos == CHUNK) {
      int rc = emit_chunk(w, 0);
      if (rc)
        return rc;
      continue;
    }
    if (!end && ib.pos == ib.size)
      return KJ_OK;
  }
}

static int feed(writer *w, const void *p, size_t n) {
  w->raw += n;
  if (w->spos + n > STAGE) {
    int rc = compress(w, w->stage, w->spos, 0);
    w->spos = 0;
    if (rc)
      return rc;
    if (n >= STAGE)
      return compress(w, p, n, 0);
  }
  if (n)
    memcpy(w->stage + w->spos, p, n);
  w->spos += n;
  return KJ_OK;
}

static int feed_varint(writer *w, uint64_t v) {
  uint8_t b[KJ_VARINT_MAX];
  return feed(w, b, kj_put_varint(b, v));
}

static int write_body(writer *w, kj_map *const *tables, kj_snap_info *info) {
  uint64_t rows = 0;
  for (unsigned t = KJ_TABLE_MIN; t <= KJ_TABLE_MAX; t++)
    rows += kj_map_count(tables[t]);
  uint8_t v = BODY_VERSION;
  int rc = feed(w, &v, 1);
  if (!rc)
    rc = feed(w, info->prev_tag, KJ_TAG_BYTES);
  if (!rc)
    rc = feed_varint(w, rows);
  for (unsigned t = KJ_TABLE_MIN; t <= KJ_TABLE_MAX && !rc; t++) {
    kj_iter it;
    kj_iter_seek(&it, tables[t], NULL, 0);
    uint8_t tb = (uint8_t)t;
    for (const kj_entry *e; !rc && (e = kj_iter_next(&it));) {
      rc = feed(w, &tb, 1);
      if (!rc)
        rc = feed_varint(w, kj_entry_klen(e));
      if (!rc)
        rc = feed(w, kj_entry_key(e), kj_entry_klen(e));
      if (!rc)
        rc = feed_varint(w, kj_entry_vlen(e));
      if (!rc)
        rc = feed(w, kj_entry_val(e), kj_entry_vlen(e));
    }
  }
  if (!rc)
    rc = compress(w, w->stage, w->spos, 1);
  info->rows = rows;
  info->raw_bytes = w->raw;
  return rc;
}

/* zstd's contexts allocate from row memory (secmem.h). */
static const ZSTD_customMem zs_mem = {kj_sec_zalloc, kj_sec_zfree, NULL};

int kj_snapshot_write(const kj_vfs *vfs, const char *dir, const uint8_t *key,
                      const uint8_t *store_id, kj_map *const *tables,
                      kj_snap_info *info, int *renamed, kj_errbuf *e) {
  char name[64];
  kj_snapshot_name(info->seq, name, sizeof name);
  *renamed = 0;
  writer w = {0};
  w.first = 1;
  w.z = ZSTD_createCCtx_advanced(zs_mem);
  w.zout = kj_sec_alloc(CHUNK);
  w.ct = malloc(4 + CHUNK + SS_ABYTES); /* ciphertext only */
  w.stage = kj_sec_alloc(STAGE);
  int rc = KJ_OK, started = 0;
  if (!w.z || !w.zout || !w.ct || !w.stage ||
      ZSTD_isError(
          ZSTD_CCtx_setParameter(w.z, ZSTD_c_compressionLevel, ZLEVEL))) {
    rc = kj_err(e, KJ_ENOMEM, "snapshot: out of memory");
    goto out;
  }
  if ((rc = kj_durable_begin(&w.d, vfs, dir, name, KJ_DURABLE_SYNC, e)))
    goto out;
  started = 1;
  header_encode(w.hdr, store_id, info);
  uint8_t ssh[SS_HDR];
  crypto_secretstream_xchacha20poly1305_init_push(&w.ss, ssh, key);
  if ((rc = kj_durable_write(&w.d, w.hdr, HDR, 0, e)) ||
      (rc = kj_durable_write(&w.d, ssh, SS_HDR, HDR, e)))
    goto out;
  w.off = HDR + SS_HDR;
  errno = 0;
  if ((rc = write_body(&w, tables, info))) {
    kj_err(e, rc, "write %s: %s", w.d.tmp,
           rc == KJ_ENOMEM ? "out of memory" : kj_err_cause());
    goto out;
  }
  info->file_bytes = w.off;
  started = 0; /* commit cleans up after itself */
  rc = kj_durable_commit(&w.d, e);
  *renamed = w.d.renamed;
out:
  if (rc && started)
    kj_durable_abort(&w.d);
  sodium_memzero(&w.ss, sizeof w.ss);
  ZSTD_freeCCtx(w.z);
  kj_sec_free(w.zout);
  free(w.ct);
  kj_sec_free(w.stage);
  return rc;
}

/* ---- reading ---------------------------------------------------------- */

/* Incremental parser of the decompressed body. */
typedef struct parser {
  int stage; /* 0: body header, 1: rows, 2: all rows read */
  uint64_t nrows, seen;
  uint8_t *pb; /* decompressed bytes not parsed yet */
  size_t len, cap;
  unsigned ptable; /* previous row, for the order check */
  uint8_t pkey[KJ_MAX_KEY];
  size_t pklen;
  kj_snap_row_fn fn;
  void *arg;
  kj_snap_info *info;
} parser;

/* Varint at *p: 1 ok, 0 needs more bytes, -1 malformed. */
static int take_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  if (!kj_get_varint(p, end, v))
    return 1;
  return end - *p < KJ_VARINT_MAX ? 0 : -1;
}

/* Parse what is complete in pb. KJ_OK (maybe waiting for more) or a
 * status with e filled. */
static int parse(parser *ps, const char *name, kj_errbuf *e) {
  /* Nothing buffered yet (a chunk can decompress to no bytes): pb is still
   * NULL, and NULL + 0 is undefined, so parse an empty array instead. */
  static const uint8_t none[1] = {0};
  const uint8_t *base = ps->pb ? ps->pb : none;
  const uint8_t *p = base, *end = base + ps->len;
  int r;
  if (ps->stage == 0) {
    if (end - p < 1 + KJ_TAG_BYTES + 1)
      return KJ_OK;
    if (p[0] != BODY_VERSION)
      return kj_err(e, KJ_EFORMAT, "%s: snapshot body version %u", name, p[0]);
    memcpy(ps->info->prev_tag, p + 1, KJ_TAG_BYTES);
    const uint8_t *q = p + 1 + KJ_TAG_BYTES;
    if ((r = take_varint(&q, end, &ps->nrows)) <= 0)
      return r ? kj_err(e, KJ_ECORRUPT, "%s: malformed row count", name)
               : KJ_OK;
    p = q;
    ps->stage = ps->nrows ? 1 : 2;
  }
  while (ps->stage == 1) {
    const uint8_t *q = p;
    uint64_t klen, vlen;
    if (q == end)
      break;
    unsigned table = *q++;
    if ((r = take_varint(&q, end, &klen)) < 0)
      return kj_err(e, KJ_ECORRUPT, "%s: malformed row %" PRIu64, name,
                    ps->seen);
    if (!r)
      break;
    if (table < KJ_TABLE_MIN || klen < 1 || klen > KJ_MAX_KEY)
      return kj_err(e, KJ_ECORRUPT,
                    "%s: bad table or key length in row %" PRIu64, name,
                    ps->seen);
    if ((uint64_t)(end - q) < klen)
      break;
    const uint8_t *key = q;
    q += klen;
    if ((r = take_varint(&q, end, &vlen)) < 0 || (r && vlen > KJ_MAX_VALUE))
      return kj_err(e, KJ_ECORRUPT, "%s: bad value length in row %" PRIu64,
                    name, ps->seen);
    if (!r || (uint64_t)(end - q) < vlen)
      break;
    if (ps->seen && (table < ps->ptable ||
                     (table == ps->ptable &&
                      kj_key_cmp(ps->pkey, ps->pklen, key, (size_t)klen) >= 0)))
      return kj_err(e, KJ_ECORRUPT, "%s: rows out of order at row %" PRIu64,
                    name, ps->seen);
    int rc = ps->fn(ps->arg, table, key, (size_t)klen, q, (size_t)vlen);
    if (rc)
      return kj_err(e, rc, "%s: loading row %" PRIu64 ": %s", name, ps->seen,
                    kj_strerror(rc));
    ps->ptable = table;
    memcpy(ps->pkey, key, (size_t)klen);
    ps->pklen = (size_t)klen;
    q += vlen;
    p = q;
    if (++ps->seen == ps->nrows)
      ps->stage = 2;
  }
  if (ps->stage == 2 && p != end)
    return kj_err(e, KJ_ECORRUPT, "%s: bytes after the last row", name);
  size_t used = (size_t)(p - base);
  if (used)
    memmove(ps->pb, p, ps->len - used);
  ps->len -= used;
  return KJ_OK;
}

static int append(parser *ps, const uint8_t *b, size_t n) {
  if (!n)
    return KJ_OK;
  if (ps->len + n > ps->cap) {
    size_t cap = ps->cap ? ps->cap : 1u << 16;
    while (cap < ps->len + n)
      cap *= 2;
    uint8_t *pb = kj_sec_realloc(ps->pb, cap);
    if (!pb)
      return KJ_ENOMEM;
    ps->pb = pb;
    ps->cap = cap;
  }
  memcpy(ps->pb + ps->len, b, n);
  ps->len += n;
  return KJ_OK;
}

int kj_snapshot_decode(kj_snap_read_fn rd, void *rd_arg, const char *name,
                       const uint8_t *key, const uint8_t *store_id,
                       kj_snap_row_fn fn, void *arg, kj_snap_info *info,
                       kj_errbuf *e) {
  uint8_t h[HDR + SS_HDR];
  size_t got = 0;
  int rc = rd(rd_arg, 0, h, sizeof h, &got);
  if (rc)
    return kj_err(e, rc, "read %s: %s", name, kj_err_cause());
  if (got < sizeof h || memcmp(h, SNAP_MAGIC, 8) ||
      XXH3_64bits(h, 56) != kj_get64(h + 56))
    return kj_err(e, KJ_ECORRUPT, "%s at offset 0: snapshot header damaged",
                  name);
  if (kj_get32(h + 8) != SNAP_VERSION)
    return kj_err(e, KJ_EFORMAT, "%s: snapshot format version %" PRIu32, name,
                  kj_get32(h + 8));
  if (memcmp(h + 16, store_id, KJ_STORE_ID_BYTES))
    return kj_err(e, KJ_ECORRUPT, "%s at offset 16: snapshot of another store",
                  name);
  info->seq = kj_get64(h + 32);
  info->base = kj_get64(h + 40);

  crypto_secretstream_xchacha20poly1305_state ss;
  if (crypto_secretstream_xchacha20poly1305_init_pull(&ss, h + HDR, key))
    return kj_err(e, KJ_ECORRUPT, "%s at offset %u: bad stream header", name,
                  HDR);
  parser ps = {0};
  ps.fn = fn;
  ps.arg = arg;
  ps.info = info;
  ZSTD_DCtx *z = ZSTD_createDCtx_advanced(zs_mem);
  size_t zcap = ZSTD_DStreamOutSize();
  uint8_t *ct = malloc(4 + CHUNK + SS_ABYTES), *pt = kj_sec_alloc(CHUNK),
          *zout = kj_sec_alloc(zcap);
  if (!z || !ct || !pt || !zout) {
    rc = kj_err(e, KJ_ENOMEM, "reading %s: out of memory", name);
    goto out;
  }
  uint64_t off = HDR + SS_HDR;
  int first = 1, final = 0;
  size_t zleft = 1; /* zstd: 0 once a frame is complete */
  while (!final) {
    uint8_t lb[4];
    if ((rc = rd(rd_arg, off, lb, 4, &got))) {
      kj_err(e, rc, "read %s: %s", name, kj_err_cause());
      goto out;
    }
    uint32_t clen = got == 4 ? kj_get32(lb) : 0;
    if (got < 4 || clen < SS_ABYTES || clen > CHUNK + SS_ABYTES) {
      rc = kj_err(e, KJ_ECORRUPT,
                  "%s at offset %" PRIu64 ": snapshot truncated or damaged "
                  "(no final chunk)",
                  name, off);
      goto out;
    }
    if ((rc = rd(rd_arg, off + 4, ct, clen, &got))) {
      kj_err(e, rc, "read %s: %s", name, kj_err_cause());
      goto out;
    }
    unsigned long long plen;
    unsigned char tag;
    if (got < clen || crypto_secretstream_xchacha20poly1305_pull(
                          &ss, pt, &plen, &tag, ct, clen, first ? h : NULL,
                          first ? HDR : 0)) {
      rc = kj_err(e, KJ_ECORRUPT,
                  "%s at offset %" PRIu64
                  ": snapshot chunk truncated or fails authentication",
                  name, off);
      goto out;
    }
    first = 0;
    off += 4 + clen;
    final = tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL;
    ZSTD_inBuffer ib = {pt, (size_t)plen, 0};
    while (ib.pos < ib.size) {
      ZSTD_outBuffer ob = {zout, zcap, 0};
      zleft = ZSTD_decompressStream(z, &ob, &ib);
      kj_sec_burn_stack(16384);
      if (ZSTD_isError(zleft)) {
        rc = kj_err(e, KJ_ECORRUPT, "%s: compressed data damaged: %s", name,
                    ZSTD_getErrorName(zleft));
        goto out;
      }
      info->raw_bytes += ob.pos;
      if ((rc = append(&ps, zout, ob.pos))) {
        kj_err(e, rc, "reading %s: out of memory", name);
        goto out;
      }
      if ((rc = parse(&ps, name, e)))
        goto out;
    }
  }
  uint8_t extra;
  if ((rc = rd(rd_arg, off, &extra, 1, &got))) {
    kj_err(e, rc, "read %s: %s", name, kj_err_cause());
    goto out;
  }
  if (got || zleft != 0 || ps.stage != 2 || ps.len)
    rc = kj_err(
        e, KJ_ECORRUPT, "%s at offset %" PRIu64 ": snapshot %s", name, off,
        got ? "has bytes after its final chunk" : "ends before its last row");
  info->rows = ps.seen;
  info->file_bytes = off;
out:
  sodium_memzero(&ss, sizeof ss);
  ZSTD_freeDCtx(z);
  free(ct);
  kj_sec_free(pt);
  kj_sec_free(zout);
  kj_sec_free(ps.pb);
  return rc;
}

typedef struct file_rd {
  const kj_vfs *vfs;
  kj_vfs_file *f;
} file_rd;

static int file_read(void *arg, uint64_t off, void *buf, size_t n,
                     size_t *got) {
  file_rd *r = arg;
  errno = 0;
  return r->vfs->read(r->vfs->ctx, r->f, buf, n, off, got);
}

int kj_snapshot_read(const kj_vfs *vfs, const char *path, const uint8_t *key,
                     const uint8_t *store_id, kj_snap_row_fn fn, void *arg,
                     kj_snap_info *info, kj_errbuf *e) {
  file_rd r = {vfs, NULL};
  errno = 0;
  int rc = vfs->open(vfs->ctx, path, KJ_VFS_READ, &r.f);
  if (rc)
    return kj_err(e, rc, "open %s: %s", path, kj_err_cause());
  memset(info, 0, sizeof *info);
  rc = kj_snapshot_decode(file_read, &r, path, key, store_id, fn, arg, info, e);
  vfs->close(vfs->ctx, r.f);
  return rc;
}
