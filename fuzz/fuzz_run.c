/*
 * fuzz/fuzz_run.c - libFuzzer target for run files (src/engine/run.h,
 * doc/FORMAT.md 6A), an internal module: the header, footer, index and
 * block decoders, and every read over them (open, lookups, presence tests,
 * seeks, iteration, verify) through a small block cache.
 *
 * Sealed units cannot be forged by a fuzzer, so this target is built, like
 * fuzz_frame, with the test-only switch KJ_FUZZ_TEST_KEY (fuzz/README.md):
 * its engine objects "seal" a unit as its plaintext and 16 zero bytes and
 * open one without checking anything, so the footer, index and block
 * decoders see every input byte. The library is never built with it.
 *
 * The first input byte picks a mode:
 *   0  raw: 32 bytes choose seeks and lookups, the rest is the run file;
 *   1  build and damage: rows chosen by the input (sorted, duplicates
 *      dropped) are written by kj_run_writer into a temporary directory,
 *      then the input flips, overwrites, cuts or extends bytes of the file.
 * The file is then read through a memory VFS. What must hold (abort()
 * otherwise): open fails only with KJ_ECORRUPT or KJ_EFORMAT and leaves no
 * run; reads fail only with KJ_ECORRUPT; rows come out strictly ascending
 * and within the limits; a row the iterator returned reads back the same
 * through kj_run_get and kj_run_has (unless the Bloom filter, forged here,
 * leaves it out; a verify that passed checks it); a seek lands at or above
 * its key;
 * after a verify that passed, iteration returns exactly the footer's rows.
 *
 * FZ_RUN_SAVE=PATH makes mode 1 write its undamaged file, as a mode 0
 * input, to PATH (how the seed corpus was made).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/bcache.h"
#include "engine/map.h"
#include "engine/run.h"
#include "fuzz.h"
#include "keyjournal.h"

#ifndef KJ_FUZZ_TEST_KEY
#error "fuzz_run is built with -DKJ_FUZZ_TEST_KEY (see fuzz/README.md)"
#endif

static const uint8_t store_id[16] = "kj-fuzz-storeid";

/* ---- a read-only memory VFS over the input ------------------------------ */

static const uint8_t *mem_p;
static size_t mem_n;

struct kj_vfs_file {
  int unused;
};
static struct kj_vfs_file mem_file;

static int mem_open(void *ctx, const char *path, unsigned flags,
                    kj_vfs_file **out) {
  (void)ctx;
  (void)path;
  if (flags != KJ_VFS_READ)
    abort(); /* a reader that writes */
  *out = &mem_file;
  return KJ_OK;
}
static int mem_close(void *ctx, kj_vfs_file *f) {
  (void)ctx;
  (void)f;
  return KJ_OK;
}
static int mem_read(void *ctx, kj_vfs_file *f, void *buf, size_t n,
                    uint64_t off, size_t *got) {
  (void)ctx;
  (void)f;
  size_t k = 0;
  if (off < mem_n)
    k = mem_n - (size_t)off < n ? mem_n - (size_t)off : n;
  if (k)
    memcpy(buf, mem_p + off, k);
  *got = k;
  return KJ_OK;
}
static int mem_size(void *ctx, kj_vfs_file *f, uint64_t *out) {
  (void)ctx;
  (void)f;
  *out = mem_n;
  return KJ_OK;
}
static const kj_vfs mem_vfs = {.version = 1,
                               .open = mem_open,
                               .close = mem_close,
                               .read = mem_read,
                               .size = mem_size};

/* ---- reading everything ------------------------------------------------- */

#define KEEP 8 /* rows kept to read back */

typedef struct kept {
  unsigned table;
  uint8_t *key, *val;
  size_t klen, vlen;
} kept;

static void check_read_rc(int rc) {
  if (rc != KJ_OK && rc != KJ_NOTFOUND && rc != KJ_ECORRUPT)
    abort();
}

static void exercise(const uint8_t *p, size_t n, fz_provider *fp) {
  mem_p = p;
  mem_n = n;
  kj_run *r = NULL;
  kj_snap_info info;
  kj_errbuf e;
  int rc =
      kj_run_open(&mem_vfs, "fuzz.kjr", fz_key, store_id, 0, &r, &info, &e);
  if (getenv("FZ_VERBOSE")) /* replay aid */
    fprintf(stderr, "fuzz_run: open %d, %llu rows in %llu blocks %s\n", rc,
            (unsigned long long)info.rows,
            (unsigned long long)(r ? kj_run_blocks(r) : 0), rc ? e.msg : "");
  if (rc) {
    if ((rc != KJ_ECORRUPT && rc != KJ_EFORMAT) || r)
      abort();
    return;
  }
  int vr = kj_run_verify(r, NULL, NULL, &e);
  if (getenv("FZ_VERBOSE"))
    fprintf(stderr, "fuzz_run: verify %d %s\n", vr, vr ? e.msg : "");
  if (vr != KJ_OK && vr != KJ_ECORRUPT)
    abort();
  kj_bcache *c;
  if (kj_bcache_new(64u << 10, &c))
    abort();

  /* Iterate from the start: ascending rows within the limits. */
  kept k[KEEP];
  int nk = 0;
  kj_run_iter it;
  rc = kj_run_iter_seek(&it, r, c, 0, NULL, 0, &e);
  check_read_rc(rc);
  uint64_t rows = 0;
  unsigned pt = 0;
  uint8_t *pk = malloc(KJ_MAX_KEY);
  size_t pkl = 0;
  if (!pk)
    abort();
  while (rc == KJ_OK) {
    unsigned t;
    const uint8_t *key, *val;
    size_t kl, vl;
    rc = kj_run_iter_next(&it, &t, &key, &kl, &val, &vl, &e);
    check_read_rc(rc);
    if (rc)
      break;
    if (t < KJ_TABLE_MIN || t > KJ_TABLE_MAX || kl < 1 || kl > KJ_MAX_KEY ||
        vl > KJ_MAX_VALUE)
      abort();
    if (rows && (t < pt || (t == pt && kj_key_cmp(pk, pkl, key, kl) >= 0)))
      abort(); /* out of order */
    pt = t;
    memcpy(pk, key, kl);
    pkl = kl;
    if (nk < KEEP && (rows % 3 == 0)) {
      k[nk].table = t;
      k[nk].key = malloc(kl);
      k[nk].val = malloc(vl ? vl : 1);
      if (!k[nk].key || !k[nk].val)
        abort();
      memcpy(k[nk].key, key, kl);
      if (vl)
        memcpy(k[nk].val, val, vl);
      k[nk].klen = kl;
      k[nk].vlen = vl;
      nk++;
    }
    rows++;
  }
  kj_run_iter_close(&it);
  if (vr == KJ_OK && (rc != KJ_NOTFOUND || rows != info.rows))
    abort(); /* verified, yet iteration failed or disagrees */

  /* Rows the iterator returned read back the same (their blocks decoded
   * once, so they decode again: the decoding is a function of the file). */
  for (int i = 0; i < nk; i++) {
    uint8_t *buf = malloc(k[i].vlen ? k[i].vlen : 1);
    size_t vl;
    if (!buf)
      abort();
    rc = kj_run_get(r, c, k[i].table, k[i].key, k[i].klen, buf, k[i].vlen, &vl,
                    &e);
    /* Only a forged Bloom filter (this build's units are not sealed) can
     * leave a row out, and a verify that passed checked it. */
    int filtered = !kj_run_may_have(r, k[i].table, k[i].key, k[i].klen);
    if (filtered && vr == KJ_OK)
      abort();
    if (filtered ? rc != KJ_NOTFOUND
                 : rc != KJ_OK || vl != k[i].vlen || memcmp(buf, k[i].val, vl))
      abort();
    if (kj_run_has(r, NULL, k[i].table, k[i].key, k[i].klen, &e) !=
        (filtered ? KJ_NOTFOUND : KJ_OK))
      abort();
    free(buf);
    free(k[i].key);
    free(k[i].val);
  }

  /* Seeks and lookups at keys from the input. */
  for (int i = 0; i < 4 && fz_remaining(fp); i++) {
    unsigned t = (unsigned)fz_range(fp, 0, 255);
    size_t kl;
    const uint8_t *key = fz_lbytes(fp, 24, &kl);
    rc = kj_run_iter_seek(&it, r, c, t, key, kl, &e);
    check_read_rc(rc);
    if (!rc) {
      unsigned rt;
      const uint8_t *rk, *rv;
      size_t rkl, rvl;
      rc = kj_run_iter_next(&it, &rt, &rk, &rkl, &rv, &rvl, &e);
      check_read_rc(rc);
      if (!rc &&
          (rt < t || (rt == t && kl && kj_key_cmp(rk, rkl, key, kl) < 0)))
        abort(); /* landed below its bound */
    }
    kj_run_iter_close(&it);
    if (t >= KJ_TABLE_MIN && kl) {
      uint8_t small[8];
      size_t vl;
      int g = kj_run_get(r, c, t, key, kl, small, sizeof small, &vl, &e);
      int h = kj_run_has(r, c, t, key, kl, &e);
      check_read_rc(g);
      if (g != h)
        abort();
    }
  }
  free(pk);
  kj_bcache_counters st;
  kj_bcache_stats(c, &st);
  if (st.bytes_pinned)
    abort(); /* a pin leaked */
  kj_run_close(r, c);
  kj_bcache_free(c);
}

/* ---- mode 1: a real run of rows from the input -------------------------- */

typedef struct row {
  unsigned table;
  const uint8_t *key, *val;
  size_t klen, vlen;
} row;

static int row_cmp(const void *a, const void *b) {
  const row *x = a, *y = b;
  if (x->table != y->table)
    return x->table < y->table ? -1 : 1;
  return kj_key_cmp(x->key, x->klen, y->key, y->klen);
}

static void mode_build(fz_provider *fp) {
  row rows[40];
  unsigned n = (unsigned)fz_range(fp, 0, 40);
  for (unsigned i = 0; i < n; i++) {
    rows[i].table = (unsigned)fz_range(fp, 1, 6);
    rows[i].key = fz_key_bytes(fp, 20, &rows[i].klen);
    rows[i].val = fz_lbytes(fp, fz_bool(fp) ? 3000 : 40, &rows[i].vlen);
  }
  qsort(rows, n, sizeof *rows, row_cmp);
  kj_snap_info in, info;
  memset(&in, 0, sizeof in);
  in.seq = fz_range(fp, 0, 3);
  in.base = in.seq + 1;
  char *dir = fz_mkdtemp();
  kj_run_writer *w;
  kj_errbuf e;
  if (kj_run_writer_begin(kj_vfs_posix(), dir, fz_key, store_id, &in, &w, &e))
    abort();
  for (unsigned i = 0; i < n; i++) {
    int rc = kj_run_writer_add(w, rows[i].table, rows[i].key, rows[i].klen,
                               rows[i].val, rows[i].vlen, &e);
    /* Duplicates (after the sort, equal neighbours) are refused. */
    if (rc && !(rc == KJ_EINVAL && i && !row_cmp(&rows[i - 1], &rows[i])))
      abort();
  }
  int renamed;
  if (kj_run_writer_finish(w, &info, &renamed, &e))
    abort();
  char name[64];
  kj_run_name(in.seq, name, sizeof name);
  char *path = fz_join(dir, name);
  size_t len = 0;
  uint8_t *b = fz_read_file(path, &len);
  if (!b || len != info.file_bytes)
    abort();
  const char *save = getenv("FZ_RUN_SAVE");
  if (save) {
    FILE *f = fopen(save, "wb");
    if (f) {
      fputc(0, f); /* mode 0: 32 bytes of seeks, then the file */
      for (int i = 0; i < 32; i++)
        fputc(i % 8 == 0 ? 1 + i / 8 : 'a' + i % 8, f);
      fwrite(b, 1, len, f);
      fclose(f);
    }
  }
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
  exercise(b, len, fp);
  free(b);
  free(path);
  fz_rmrf(dir);
  free(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_provider fp = fz_start(data, size, 5);
  uint8_t mode = fz_u8(&fp) % 2;
  if (mode == 1) {
    mode_build(&fp);
  } else {
    /* 32 bytes for the seeks and lookups, then the file. */
    size_t qn, n;
    const uint8_t *q = fz_bytes(&fp, 32, &qn);
    const uint8_t *p = fz_rest(&fp, &n);
    fz_provider sp;
    fz_init(&sp, q, qn);
    exercise(p, n, &sp);
  }
  return 0;
}
