/*
 * fuzz/fuzz_open.c - libFuzzer target for opening a store from untrusted
 * files (doc/FORMAT.md sections 3-6): kj_store_open, read-only then
 * read-write, must return a status for any directory content, never crash,
 * leak or hang. The first input byte picks a mode:
 *   0  raw: the input is a container of file bodies (header, segment 1,
 *      optional segment 2 and snapshot), so every byte of every file is
 *      fuzzed; it rarely gets past the header's key check.
 *   1  real header: a fresh store (deterministic randomness, fixed key)
 *      supplies a valid keyjournal.hdr, and the input supplies segment 1
 *      and an optional snapshot, so the segment and frame parsers are hit.
 *   2  build and damage: the input drives a real store (puts, deletes,
 *      syncs, checkpoints), then damages its files (xor, set, truncate,
 *      append, remove) before reopening - deep coverage of recovery,
 *      authentication and snapshot loading.
 * Owns only its temporary directory, removed before returning.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>

#include "fuzz.h"
#include "keyjournal.h"

#define SEG1 "journal-0000000000000001.kjl"
#define SEG2 "journal-0000000000000002.kjl"
#define HDR "keyjournal.hdr"

static void mode_raw(fz_provider *fp, const char *dir) {
  uint8_t flags = fz_u8(fp);
  size_t n;
  const uint8_t *p = fz_lbytes(fp, 256, &n);
  if (!(flags & 0x10))
    (void)fz_write_file(dir, HDR, p, n);
  p = fz_lbytes(fp, 16384, &n);
  (void)fz_write_file(dir, SEG1, p, n);
  if (flags & 1) {
    char name[64];
    snprintf(name, sizeof name, "snapshot-%016llx.kjs",
             (unsigned long long)fz_range(fp, 0, 255));
    p = fz_lbytes(fp, 16384, &n);
    (void)fz_write_file(dir, name, p, n);
  }
  if (flags & 2) {
    p = fz_rest(fp, &n);
    (void)fz_write_file(dir, SEG2, p, n);
  }
  fz_try_open(dir, 4096, 0, "fuzz_open");
}

static void mode_real_header(fz_provider *fp, const char *dir) {
  kj_store *s = fz_create_store(dir, 4096, KJ_SYNC_OFF);
  (void)kj_store_close(s);
  uint8_t flags = fz_u8(fp);
  size_t n;
  const uint8_t *p = fz_lbytes(fp, 16384, &n);
  (void)fz_write_file(dir, SEG1, p, n);
  if (flags & 1) {
    char name[64];
    snprintf(name, sizeof name, "snapshot-%016llx.kjs",
             (unsigned long long)fz_range(fp, 0, 255));
    p = fz_rest(fp, &n);
    (void)fz_write_file(dir, name, p, n);
  }
  fz_try_open(dir, 4096, 0, "fuzz_open");
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The directory's regular entries, sorted (at most 16). */
static size_t list_files(const char *dir, char **names, size_t max) {
  size_t n = 0;
  DIR *d = opendir(dir);
  if (!d)
    return 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL && n < max) {
    if (e->d_name[0] == '.')
      continue;
    names[n] = strdup(e->d_name);
    if (!names[n])
      abort();
    n++;
  }
  closedir(d);
  qsort(names, n, sizeof *names, cmp_str);
  return n;
}

static void damage(fz_provider *fp, const char *dir) {
  unsigned edits = (unsigned)fz_range(fp, 0, 6);
  for (unsigned i = 0; i < edits && fz_remaining(fp) > 0; i++) {
    char *names[16];
    size_t nf = list_files(dir, names, 16);
    if (nf == 0)
      return;
    size_t fi = (size_t)fz_range(fp, 0, nf - 1);
    char *path = fz_join(dir, names[fi]);
    size_t len = 0;
    uint8_t *b = fz_read_file(path, &len);
    unsigned op = fz_u8(fp) % 6;
    size_t off = len ? (size_t)fz_range(fp, 0, len - 1) : 0;
    if (b) {
      switch (op) {
      case 0: /* xor one byte */
      case 1:
        if (len)
          b[off] ^= (uint8_t)(fz_u8(fp) | 1);
        (void)fz_write_file(dir, names[fi], b, len);
        break;
      case 2: /* overwrite a span */
        fz_overwrite(fp, b, len, off, 64);
        (void)fz_write_file(dir, names[fi], b, len);
        break;
      case 3: /* truncate */
        (void)fz_write_file(dir, names[fi], b, off);
        break;
      case 4: /* append */
        b = fz_append(fp, b, &len, 128);
        (void)fz_write_file(dir, names[fi], b, len);
        break;
      default: /* remove */
        (void)remove(path);
        break;
      }
    }
    free(b);
    free(path);
    for (size_t k = 0; k < nf; k++)
      free(names[k]);
  }
}

static void mode_build(fz_provider *fp, const char *dir) {
  kj_sync sync = (kj_sync)fz_range(fp, 0, 2);
  kj_store *s = fz_create_store(dir, 4096, sync);
  unsigned ops = (unsigned)fz_range(fp, 0, 12);
  for (unsigned i = 0; i < ops; i++) {
    fz_op op = fz_next_op(fp, 8, 24);
    size_t vl;
    if (op.what <= 3) {
      const uint8_t *v = fz_lbytes(fp, op.what == 3 ? 3000 : 48, &vl);
      (void)kj_put(s, NULL, op.table, op.k, op.kl, v, vl);
    } else if (op.what == 4) {
      (void)kj_delete(s, NULL, op.table, op.k, op.kl);
    } else if (op.what == 5) {
      (void)kj_store_sync(s);
    } else if (op.what == 6) {
      (void)kj_store_checkpoint(s);
    } else {
      kj_txn *t = NULL;
      if (kj_txn_begin(s, 0, &t) == KJ_OK) {
        (void)kj_put(s, t, op.table, op.k, op.kl, "v", 1);
        (void)kj_put(s, t, op.table + 1, op.k, op.kl, "w", 1);
        (void)kj_txn_commit(t);
      }
    }
  }
  (void)kj_store_close(s);
  damage(fp, dir);
  fz_try_open(dir, 4096, 0, "fuzz_open");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_provider fp = fz_start(data, size, 1);
  char *dir = fz_mkdtemp();
  switch (fz_u8(&fp) % 3) {
  case 0:
    mode_raw(&fp, dir);
    break;
  case 1:
    mode_real_header(&fp, dir);
    break;
  default:
    mode_build(&fp, dir);
    break;
  }
  fz_rmrf(dir);
  free(dir);
  return 0;
}
