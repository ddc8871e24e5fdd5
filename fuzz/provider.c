/*
 * fuzz/provider.c - the fuzz data provider and file helpers declared in
 * fuzz/fuzz.h. Integers are taken little-endian from the front of the
 * input; once it is exhausted every choice is zero (or empty), so a
 * harness always terminates and never reads outside the input.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "keyjournal.h"

const uint8_t fz_key[32] = {0x6b, 0x6a, 0x2d, 0x66, 0x75, 0x7a, 0x7a, 0x2d,
                            0x6b, 0x65, 0x79, 0x00, 0x01, 0x02, 0x03, 0x04,
                            0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c,
                            0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14};

static uint64_t rng_state;

static uint64_t splitmix64(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static const char *det_name(void) { return "kjfuzz-deterministic"; }
static uint32_t det_random(void) { return (uint32_t)splitmix64(); }
static void det_buf(void *const buf, const size_t n) {
  uint8_t *b = buf;
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = splitmix64();
    size_t k = n - i < 8 ? n - i : 8;
    memcpy(b + i, &v, k);
  }
}

static struct randombytes_implementation det_impl = {
    .implementation_name = det_name,
    .random = det_random,
    .stir = NULL,
    .uniform = NULL,
    .buf = det_buf,
    .close = NULL,
};

void fz_random_reset(uint64_t seed) {
  static int installed;
  if (!installed) {
    if (randombytes_set_implementation(&det_impl) != 0 || sodium_init() < 0)
      abort();
    installed = 1;
  }
  rng_state = seed;
}

void fz_init(fz_provider *fp, const uint8_t *data, size_t size) {
  fp->p = data;
  fp->left = data ? size : 0;
}

fz_provider fz_start(const uint8_t *data, size_t size, uint64_t seed) {
  fz_random_reset(seed);
  fz_provider fp;
  fz_init(&fp, data, size);
  return fp;
}

size_t fz_remaining(const fz_provider *fp) { return fp->left; }

static uint64_t take_le(fz_provider *fp, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n && fp->left > 0; i++) {
    v |= (uint64_t)fp->p[0] << (8 * i);
    fp->p++;
    fp->left--;
  }
  return v;
}

uint8_t fz_u8(fz_provider *fp) { return (uint8_t)take_le(fp, 1); }
uint32_t fz_u32(fz_provider *fp) { return (uint32_t)take_le(fp, 4); }
uint64_t fz_u64(fz_provider *fp) { return take_le(fp, 8); }
int fz_bool(fz_provider *fp) { return fz_u8(fp) & 1; }

uint64_t fz_range(fz_provider *fp, uint64_t lo, uint64_t hi) {
  if (hi <= lo)
    return lo;
  uint64_t span = hi - lo, v = 0;
  size_t nbytes = 0;
  for (uint64_t s = span; s > 0; s >>= 8)
    nbytes++;
  v = take_le(fp, nbytes);
  if (span == UINT64_MAX)
    return v;
  return lo + v % (span + 1);
}

const uint8_t *fz_bytes(fz_provider *fp, size_t n, size_t *got) {
  if (n > fp->left)
    n = fp->left;
  const uint8_t *r = fp->p;
  fp->p += n;
  fp->left -= n;
  *got = n;
  return r;
}

const uint8_t *fz_lbytes(fz_provider *fp, size_t max, size_t *got) {
  size_t n = (size_t)fz_range(fp, 0, max);
  return fz_bytes(fp, n, got);
}

const uint8_t *fz_rest(fz_provider *fp, size_t *got) {
  return fz_bytes(fp, fp->left, got);
}

const uint8_t *fz_key_bytes(fz_provider *fp, size_t max, size_t *got) {
  const uint8_t *k = fz_lbytes(fp, max, got);
  if (*got == 0) {
    k = (const uint8_t *)"k";
    *got = 1;
  }
  return k;
}

void fz_overwrite(fz_provider *fp, uint8_t *b, size_t len, size_t off,
                  size_t max) {
  size_t n;
  const uint8_t *p = fz_lbytes(fp, max, &n);
  if (n > len - off)
    n = len - off;
  if (n > 0)
    memcpy(b + off, p, n);
}

uint8_t *fz_append(fz_provider *fp, uint8_t *b, size_t *len, size_t max) {
  size_t n;
  const uint8_t *p = fz_lbytes(fp, max, &n);
  uint8_t *nb = realloc(b, *len + n + 1);
  if (!nb)
    abort();
  memcpy(nb + *len, p, n);
  *len += n;
  return nb;
}

char *fz_mkdtemp(void) {
  const char *t = getenv("TMPDIR");
  char buf[4096];
  snprintf(buf, sizeof buf, "%s/kjfuzz.XXXXXX", t && *t ? t : "/tmp");
  if (!mkdtemp(buf)) {
    perror("fuzz: mkdtemp");
    abort();
  }
  char *r = strdup(buf);
  if (!r)
    abort();
  return r;
}

char *fz_join(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *r = malloc(a + b + 2);
  if (!r)
    abort();
  memcpy(r, dir, a);
  r[a] = '/';
  memcpy(r + a + 1, name, b + 1);
  return r;
}

int fz_write_file(const char *dir, const char *name, const void *p, size_t n) {
  char *path = fz_join(dir, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  free(path);
  if (fd < 0)
    return -1;
  const uint8_t *b = p;
  while (n > 0) {
    ssize_t w = write(fd, b, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      close(fd);
      return -1;
    }
    b += w;
    n -= (size_t)w;
  }
  return close(fd) == 0 ? 0 : -1;
}

uint8_t *fz_read_file(const char *path, size_t *n) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size < 0) {
    close(fd);
    return NULL;
  }
  size_t len = (size_t)st.st_size, off = 0;
  uint8_t *b = malloc(len ? len : 1);
  if (!b) {
    close(fd);
    return NULL;
  }
  while (off < len) {
    ssize_t r = read(fd, b + off, len - off);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    off += (size_t)r;
  }
  close(fd);
  *n = off;
  return b;
}

void fz_rmrf(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0)
    return;
  if (S_ISDIR(st.st_mode)) {
    DIR *d = opendir(path);
    if (d) {
      struct dirent *e;
      while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
          continue;
        char *c = fz_join(path, e->d_name);
        fz_rmrf(c);
        free(c);
      }
      closedir(d);
    }
    rmdir(path);
  } else {
    unlink(path);
  }
}

/* ---- stores ------------------------------------------------------------ */

int64_t fz_clock(void *ctx) {
  (void)ctx;
  return 1700000000000;
}

/* Zeroed options of this version with fz_key and clock. */
static void base_options(kj_options *o, int64_t (*clock)(void *ctx)) {
  memset(o, 0, sizeof *o);
  o->version = KJ_OPTIONS_VERSION;
  o->key = fz_key;
  o->clock = clock;
}

int fz_open_backend(int64_t (*clock)(void *ctx), kj_backend **out) {
  kj_options o;
  base_options(&o, clock);
  char *em = NULL;
  int rc = kj_backend_open(NULL, &o, out, &em);
  kj_free(em);
  return rc;
}

void fz_store_options(kj_options *o, uint64_t segment_bytes) {
  base_options(o, fz_clock);
  o->segment_bytes = segment_bytes;
  o->snapshot_threshold = UINT64_MAX;
}

kj_store *fz_create_store(const char *dir, uint64_t segment_bytes, int sync) {
  kj_options o;
  fz_store_options(&o, segment_bytes);
  o.sync = (kj_sync)sync;
  o.mode = KJ_OPEN_CREATE_NEW;
  kj_store *s = NULL;
  char *em = NULL;
  int rc = kj_store_open(dir, &o, &s, &em);
  kj_free(em);
  if (rc != KJ_OK)
    abort();
  return s;
}

fz_op fz_next_op(fz_provider *fp, unsigned kinds, size_t max_key) {
  fz_op op;
  op.what = fz_u8(fp) % kinds;
  op.table = (unsigned)fz_range(fp, 1, 4);
  op.k = fz_key_bytes(fp, max_key, &op.kl);
  return op;
}

static int count_row(void *arg, const void *key, size_t klen, const void *val,
                     size_t vlen) {
  (void)key;
  (void)val;
  *(uint64_t *)arg += klen + vlen;
  return 0;
}

void fz_try_open(const char *dir, uint64_t segment_bytes, int commit,
                 const char *who) {
  for (int pass = 0; pass < 3; pass++) {
    kj_options o;
    fz_store_options(&o, segment_bytes);
    o.mode = KJ_OPEN_EXISTING;
    o.read_only = pass != 1;
    kj_store *s = NULL;
    char *em = NULL;
    int rc = kj_store_open(dir, &o, &s, &em);
    if (getenv("FZ_VERBOSE")) /* replay aid: what each open returned */
      fprintf(stderr, "%s: pass %d: %d %s\n", who, pass, rc, em ? em : "");
    kj_free(em);
    if (rc != KJ_OK) {
      if (s)
        abort(); /* a failed open must not hand out a handle */
      continue;
    }
    uint64_t sum = 0;
    for (unsigned t = KJ_TABLE_MIN; t <= KJ_TABLE_MAX; t++)
      (void)kj_scan_range(s, NULL, t, NULL, 0, NULL, 0, count_row, &sum);
    kj_stats st = {.version = KJ_STATS_VERSION};
    (void)kj_store_stats(s, &st);
    if (pass == 1 && commit)
      (void)kj_put(s, NULL, 1, "after", 5, "open", 4);
    (void)kj_store_close(s);
  }
}
