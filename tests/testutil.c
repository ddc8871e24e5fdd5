/*
 * tests/testutil.c - helpers shared by the keyjournal test programs.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "testutil.h"

#include "tap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* ---- temp directories and files ---------------------------------------- */

char *tu_mkdtemp(void) {
  /* KJ_TEST_TMPDIR is set by `make check` (scratch space in the build
   * tree); else $TMPDIR; else /tmp. */
  const char *base = getenv("KJ_TEST_TMPDIR");
  if (base == NULL || base[0] == '\0')
    base = getenv("TMPDIR");
  if (base == NULL || base[0] == '\0')
    base = "/tmp";
  char *p = tu_path(base, "kjtest.XXXXXX");
  if (p != NULL && mkdtemp(p) == NULL) {
    free(p);
    p = NULL;
  }
  return p;
}

char *tu_mkdtemp_or_bail(void) {
  char *dir = tu_mkdtemp();
  if (dir == NULL) {
    printf("Bail out! no temp dir\n");
    exit(1);
  }
  return dir;
}

static int rm_cb(const char *path, const struct stat *st, int flag,
                 struct FTW *ftw) {
  (void)st;
  (void)ftw;
  int rc = (flag == FTW_DP || flag == FTW_D) ? rmdir(path) : unlink(path);
  return rc == 0 || errno == ENOENT ? 0 : -1;
}

int tu_rmrf(const char *path) {
  struct stat st;
  if (path == NULL)
    return 0;
  if (lstat(path, &st) != 0)
    return errno == ENOENT ? 0 : -1;
  return nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}

char *tu_path(const char *dir, const char *name) {
  size_t n = strlen(dir) + 1 + strlen(name) + 1;
  char *p = malloc(n);
  if (p != NULL)
    snprintf(p, n, "%s/%s", dir, name);
  return p;
}

static int read_file(const char *path, char **data, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  size_t cap = 4096, n = 0;
  char *p = malloc(cap);
  if (p == NULL) {
    close(fd);
    return -1;
  }
  for (;;) {
    if (n == cap) {
      char *q = realloc(p, cap * 2);
      if (q == NULL) {
        free(p);
        close(fd);
        return -1;
      }
      p = q;
      cap *= 2;
    }
    ssize_t r = read(fd, p + n, cap - n);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      free(p);
      close(fd);
      return -1;
    }
    if (r == 0)
      break;
    n += (size_t)r;
  }
  close(fd);
  *data = p;
  *len = n;
  return 0;
}

void *tu_read_file(const char *path, size_t *len) {
  char *data = NULL;
  size_t n = 0;
  if (read_file(path, &data, &n) != 0)
    return NULL;
  char *p = realloc(data, n + 1);
  if (p == NULL) {
    free(data);
    return NULL;
  }
  p[n] = '\0';
  *len = n;
  return p;
}

int tu_write_file(const char *path, const void *data, size_t len) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return -1;
  const char *p = data;
  while (len > 0) {
    ssize_t w = write(fd, p, len);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      close(fd);
      return -1;
    }
    p += w;
    len -= (size_t)w;
  }
  return close(fd) == 0 ? 0 : -1;
}

long long tu_file_size(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0)
    return -1;
  return (long long)st.st_size;
}

int tu_for_each_file(const char *dir,
                     void (*fn)(void *arg, const char *dir, const char *name),
                     void *arg) {
  DIR *d = opendir(dir);
  if (d == NULL)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    char *p = tu_path(dir, e->d_name);
    struct stat st;
    int reg = p != NULL && lstat(p, &st) == 0 && S_ISREG(st.st_mode);
    free(p);
    if (!reg)
      continue;
    fn(arg, dir, e->d_name);
    n++;
  }
  closedir(d);
  return n;
}

int tu_count_prefix(const char *dir, const char *prefix) {
  DIR *d = opendir(dir);
  if (d == NULL)
    return -1;
  int n = 0;
  size_t pl = strlen(prefix);
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
        strncmp(e->d_name, prefix, pl) == 0)
      n++;
  closedir(d);
  return n;
}

int tu_count_entries(const char *dir) { return tu_count_prefix(dir, ""); }

struct copy_ctx {
  const char *dst;
  int err;
};

static void copy_one(void *arg, const char *dir, const char *name) {
  struct copy_ctx *c = arg;
  char *from = tu_path(dir, name), *to = tu_path(c->dst, name);
  char *data = NULL;
  size_t len = 0;
  if (from == NULL || to == NULL || read_file(from, &data, &len) != 0 ||
      tu_write_file(to, data, len) != 0)
    c->err = 1;
  free(data);
  free(from);
  free(to);
}

int tu_copy_dir(const char *src, const char *dst) {
  if (mkdir(dst, 0700) != 0 && errno != EEXIST)
    return -1;
  struct copy_ctx c = {dst, 0};
  if (tu_for_each_file(src, copy_one, &c) < 0 || c.err)
    return -1;
  return 0;
}

struct cmp_ctx {
  const char *other;
  int differ;
  int err;
};

static void cmp_one(void *arg, const char *dir, const char *name) {
  struct cmp_ctx *c = arg;
  char *pa = tu_path(dir, name), *pb = tu_path(c->other, name);
  char *da = NULL, *db = NULL;
  size_t la = 0, lb = 0;
  if (pa == NULL || pb == NULL || read_file(pa, &da, &la) != 0)
    c->err = 1;
  else if (read_file(pb, &db, &lb) != 0)
    c->differ = 1; /* missing in the other directory */
  else if (la != lb || memcmp(da, db, la) != 0)
    c->differ = 1;
  free(da);
  free(db);
  free(pa);
  free(pb);
}

int tu_dirs_equal(const char *a, const char *b) {
  struct cmp_ctx c = {b, 0, 0};
  int na = tu_for_each_file(a, cmp_one, &c);
  if (na < 0 || c.err)
    return -1;
  struct cmp_ctx c2 = {a, 0, 0};
  int nb = tu_for_each_file(b, cmp_one, &c2);
  if (nb < 0 || c2.err)
    return -1;
  return (na == nb && !c.differ && !c2.differ) ? 1 : 0;
}

int64_t tu_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tu_sleep_ms(unsigned ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* ---- keys and options -----------------------------------------------------
 */

const uint8_t tu_key[KJ_KEY_BYTES] = {
    0x6b, 0x65, 0x79, 0x6a, 0x6f, 0x75, 0x72, 0x6e, 0x61, 0x6c, 0x2d,
    0x74, 0x65, 0x73, 0x74, 0x2d, 0x6b, 0x65, 0x79, 0x00, 0x01, 0x02,
    0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c};

const uint8_t tu_key_other[KJ_KEY_BYTES] = {
    0x6b, 0x65, 0x79, 0x6a, 0x6f, 0x75, 0x72, 0x6e, 0x61, 0x6c, 0x2d,
    0x74, 0x65, 0x73, 0x74, 0x2d, 0x6b, 0x65, 0x79, 0x00, 0x01, 0x02,
    0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0d};

void tu_options(kj_options *o) {
  kj_options init = KJ_OPTIONS_INIT;
  *o = init;
  o->key = tu_key;
  o->segment_bytes = TU_SEGMENT_BYTES;
  o->busy_timeout_ms = 0;
  o->sync = KJ_SYNC_FULL;
  o->mode = KJ_OPEN_CREATE;
}

void tu_options_pass(kj_options *o, const char *passphrase) {
  tu_options(o);
  o->key = NULL;
  o->passphrase = passphrase;
  o->pwhash_opslimit = 1;
  o->pwhash_memlimit = 8192;
}

/* ---- opening stores and backends ------------------------------------------
 */

/* o, or the defaults of tu_options() when o is NULL. */
static const kj_options *opts_or_default(const kj_options *o, kj_options *tmp) {
  if (o != NULL)
    return o;
  tu_options(tmp);
  return tmp;
}

static void diag_open(const char *fn, const char *dir, int rc, char *em) {
  if (rc != KJ_OK)
    printf("# %s(%s): %d %s\n", fn, dir ? dir : "(memory)", rc, em ? em : "");
  kj_free(em);
}

/* kj_store_open() with o or the defaults; *rc gets its status. */
static kj_store *store_open(const char *dir, const kj_options *o,
                            const char *what, int *rc) {
  kj_options tmp;
  kj_store *s = NULL;
  char *em = NULL;
  *rc = kj_store_open(dir, opts_or_default(o, &tmp), &s, &em);
  diag_open(what, dir, *rc, em);
  return s;
}

kj_store *tu_store_open(const char *dir, const kj_options *o) {
  int rc;
  kj_store *s = store_open(dir, o, "kj_store_open", &rc);
  return rc == KJ_OK ? s : NULL;
}

kj_store *tu_store_open_ok(const char *dir, const kj_options *o,
                           const char *what) {
  int rc;
  kj_store *s = store_open(dir, o, what, &rc);
  is(rc, KJ_OK, "%s: kj_store_open", what);
  if (rc != KJ_OK && s != NULL) {
    ok(0, "%s: *out must be NULL on failure", what);
    s = NULL;
  }
  return s;
}

void tu_with_store_dir(const char *what, void (*tune)(kj_options *o),
                       void (*fn)(const char *dir, const kj_options *o,
                                  kj_store *s)) {
  kj_options o;
  tu_options(&o);
  if (tune != NULL)
    tune(&o);
  char *dir = tu_mkdtemp();
  kj_store *s = tu_store_open_ok(dir, &o, what);
  if (s != NULL)
    fn(dir, &o, s);
  tu_rmrf(dir);
  free(dir);
}

kj_backend *tu_backend_open(const char *dir, const kj_options *o) {
  kj_options tmp;
  kj_backend *b = NULL;
  char *em = NULL;
  int rc = kj_backend_open(dir, opts_or_default(o, &tmp), &b, &em);
  diag_open("kj_backend_open", dir, rc, em);
  return rc == KJ_OK ? b : NULL;
}

void tu_with_slots(const char *name, unsigned nslots,
                   void (*fn)(kj_backend *)) {
  kj_backend *b = tu_backend_open(NULL, NULL);
  int slots_ok = b != NULL;
  for (unsigned i = 1; slots_ok && i <= nslots; i++)
    slots_ok = tu_make_slot(b, i) == KJ_OK;
  ok(slots_ok, "%s: backend and slot%s", name, nslots > 1 ? "s" : "");
  if (b != NULL)
    fn(b);
  kj_backend_close(b);
}

/* ---- raw rows of the domain tables -----------------------------------------
 */

void tu_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

size_t tu_slot_key(uint8_t *k, uint32_t dev, const void *p, size_t n) {
  tu_be32(k, dev);
  if (n > 0)
    memcpy(k + 4, p, n);
  return 4 + n;
}

size_t tu_slot_name_key(uint8_t *k, uint32_t dev, const char *name) {
  size_t n = strlen(name);
  tu_be32(k, dev);
  k[4] = (uint8_t)(n >> 8);
  k[5] = (uint8_t)n;
  memcpy(k + 6, name, n);
  return 6 + n;
}

int tu_make_slot(kj_backend *b, uint32_t dev) {
  uint8_t k[4];
  tu_be32(k, dev);
  return tu_raw_put(b, T_DEVICE, k, 4, "\x01\x00", 2);
}

int tu_raw_put(kj_backend *b, unsigned table, const void *k, size_t kl,
               const void *v, size_t vl) {
  return kj_put(kj_backend_store(b), NULL, table, k, kl, v, vl);
}

int tu_raw_get(kj_backend *b, unsigned table, const void *k, size_t kl,
               uint8_t **v, size_t *vl) {
  return kj_get(kj_backend_store(b), NULL, table, k, kl, (void **)v, vl);
}

int tu_raw_eq(kj_backend *b, unsigned table, const void *k, size_t kl,
              const void *v, size_t vl) {
  return tu_row_eq(kj_backend_store(b), table, k, kl, v, vl);
}

static int count_cb(void *arg, const void *k, size_t kl, const void *v,
                    size_t vl) {
  (void)k;
  (void)kl;
  (void)v;
  (void)vl;
  (*(size_t *)arg)++;
  return 0;
}

long tu_raw_count(kj_backend *b, unsigned table, const void *prefix,
                  size_t plen) {
  size_t n = 0;
  int rc = kj_scan_prefix(kj_backend_store(b), NULL, table, prefix, plen,
                          count_cb, &n);
  return rc ? -1 : (long)n;
}

int tu_backend_unchanged(kj_backend *b, const char *before) {
  char *now = tu_dump_backend(b);
  int same = tu_same_dump(before, now);
  free(now);
  return same;
}

void tu_fill(uint8_t *p, size_t n, uint8_t seed) {
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)(seed + i * 7);
}

void tu_device_keys(kj_device_record *r, uint8_t seed) {
  uint8_t *keys[] = {r->noise_pub,         r->noise_priv,
                     r->identity_pub,      r->identity_priv,
                     r->signed_prekey_pub, r->signed_prekey_priv};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    tu_fill(keys[i], 32, (uint8_t)(seed + i));
  tu_fill(r->signed_prekey_sig, 64, (uint8_t)(seed + 6));
  tu_fill(r->adv_secret, 32, (uint8_t)(seed + 7));
}

char *tu_dump_backend(kj_backend *b) {
  return tu_dump_store(kj_backend_store(b));
}

/* ---- test VFS --------------------------------------------------------------
 */

static const char *const method_names[TU_NMETHODS] = {
    "open", "close",  "read",   "write",    "sync",  "truncate", "size",
    "lock", "rename", "unlink", "sync_dir", "mkdir", "list"};

const char *tu_method_name(tu_method m) {
  return (unsigned)m < TU_NMETHODS ? method_names[m] : "?";
}

/* Count a call of m; return 0 to forward it or a status to fail it with.
 * *partial is set when a failing write should first write half its bytes. */
static int tv_enter(tu_vfs *tv, tu_method m, int *partial) {
  int fail = 0;
  pthread_mutex_lock(&tv->mu);
  tv->calls[m]++;
  struct tu_vfs_arming *a = &tv->arm;
  if (a->on && a->method == m) {
    a->seen++;
    if (a->seen == a->nth ||
        (a->seen > a->nth && (a->flags & TU_ARM_PERSIST))) {
      fail = a->status;
      tv->injected++;
      if (partial != NULL)
        *partial = (a->flags & TU_ARM_PARTIAL) != 0;
      if (!(a->flags & TU_ARM_PERSIST))
        a->on = 0;
    }
  }
  pthread_mutex_unlock(&tv->mu);
  if (fail != 0)
    errno = fail == KJ_ENOSPC ? ENOSPC : EIO;
  return fail;
}

/* A method that is counted, failed when armed, else forwarded to the base
 * VFS with the same arguments. */
#define TV_FORWARD(name, method, params, ...)                                  \
  static int tv_##name params {                                                \
    tu_vfs *tv = ctx;                                                          \
    int rc = tv_enter(tv, method, NULL);                                       \
    return rc != 0 ? rc : tv->base->name(tv->base->ctx, __VA_ARGS__);          \
  }

TV_FORWARD(open, TU_OPEN,
           (void *ctx, const char *path, unsigned flags, kj_vfs_file **out),
           path, flags, out)
TV_FORWARD(read, TU_READ,
           (void *ctx, kj_vfs_file *f, void *buf, size_t n, uint64_t off,
            size_t *got),
           f, buf, n, off, got)
TV_FORWARD(sync, TU_SYNC, (void *ctx, kj_vfs_file *f), f)
TV_FORWARD(truncate, TU_TRUNCATE, (void *ctx, kj_vfs_file *f, uint64_t size), f,
           size)
TV_FORWARD(size, TU_SIZE, (void *ctx, kj_vfs_file *f, uint64_t *out), f, out)
TV_FORWARD(lock, TU_LOCK, (void *ctx, kj_vfs_file *f, int mode), f, mode)
TV_FORWARD(rename, TU_RENAME, (void *ctx, const char *from, const char *to),
           from, to)
TV_FORWARD(unlink, TU_UNLINK, (void *ctx, const char *path), path)
TV_FORWARD(sync_dir, TU_SYNC_DIR, (void *ctx, const char *dir), dir)
TV_FORWARD(mkdir, TU_MKDIR, (void *ctx, const char *dir), dir)
TV_FORWARD(list, TU_LIST,
           (void *ctx, const char *dir, int (*fn)(void *arg, const char *name),
            void *arg),
           dir, fn, arg)

static int tv_close(void *ctx, kj_vfs_file *f) {
  tu_vfs *tv = ctx;
  /* close is counted but never failed: the handle must be freed. */
  pthread_mutex_lock(&tv->mu);
  tv->calls[TU_CLOSE]++;
  pthread_mutex_unlock(&tv->mu);
  return tv->base->close(tv->base->ctx, f);
}

static int tv_write(void *ctx, kj_vfs_file *f, const void *buf, size_t n,
                    uint64_t off) {
  tu_vfs *tv = ctx;
  int partial = 0;
  int rc = tv_enter(tv, TU_WRITE, &partial);
  if (rc != 0) {
    if (partial && n / 2 > 0)
      (void)tv->base->write(tv->base->ctx, f, buf, n / 2, off);
    errno = rc == KJ_ENOSPC ? ENOSPC : EIO;
    return rc;
  }
  return tv->base->write(tv->base->ctx, f, buf, n, off);
}

void tu_vfs_init(tu_vfs *tv) {
  memset(tv, 0, sizeof *tv);
  tv->base = kj_vfs_posix();
  pthread_mutex_init(&tv->mu, NULL);
  tv->vfs.version = KJ_VFS_VERSION;
  tv->vfs.ctx = tv;
  tv->vfs.open = tv_open;
  tv->vfs.close = tv_close;
  tv->vfs.read = tv_read;
  tv->vfs.write = tv_write;
  tv->vfs.sync = tv_sync;
  tv->vfs.truncate = tv_truncate;
  tv->vfs.size = tv_size;
  tv->vfs.lock = tv_lock;
  tv->vfs.rename = tv_rename;
  tv->vfs.unlink = tv_unlink;
  tv->vfs.sync_dir = tv_sync_dir;
  tv->vfs.mkdir = tv_mkdir;
  tv->vfs.list = tv_list;
}

void tu_options_vfs(kj_options *o, tu_vfs *tv) {
  tu_vfs_init(tv);
  tu_options(o);
  o->vfs = &tv->vfs;
}

void tu_vfs_destroy(tu_vfs *tv) { pthread_mutex_destroy(&tv->mu); }

void tu_vfs_arm(tu_vfs *tv, tu_method method, uint64_t nth, int status,
                unsigned flags) {
  pthread_mutex_lock(&tv->mu);
  tv->arm =
      (struct tu_vfs_arming){1, method, nth == 0 ? 1 : nth, 0, status, flags};
  pthread_mutex_unlock(&tv->mu);
}

void tu_vfs_disarm(tu_vfs *tv) {
  pthread_mutex_lock(&tv->mu);
  tv->arm.on = 0;
  pthread_mutex_unlock(&tv->mu);
}

/* Every counter of tv, read in one go under its lock. */
typedef struct tv_counts {
  uint64_t calls[TU_NMETHODS];
  uint64_t injected;
} tv_counts;

static tv_counts tv_read_counts(tu_vfs *tv) {
  tv_counts c;
  pthread_mutex_lock(&tv->mu);
  memcpy(c.calls, tv->calls, sizeof c.calls);
  c.injected = tv->injected;
  pthread_mutex_unlock(&tv->mu);
  return c;
}

uint64_t tu_vfs_calls(tu_vfs *tv, tu_method method) {
  return (unsigned)method < TU_NMETHODS ? tv_read_counts(tv).calls[method] : 0;
}

uint64_t tu_vfs_total_calls(tu_vfs *tv) {
  tv_counts c = tv_read_counts(tv);
  uint64_t n = 0;
  for (int i = 0; i < TU_NMETHODS; i++)
    n += c.calls[i];
  return n;
}

uint64_t tu_vfs_injected(tu_vfs *tv) { return tv_read_counts(tv).injected; }

void tu_vfs_reset_counts(tu_vfs *tv) {
  pthread_mutex_lock(&tv->mu);
  memset(tv->calls, 0, sizeof tv->calls);
  pthread_mutex_unlock(&tv->mu);
}

/* ---- growable string and table dumps ------------------------------------ */

void tu_buf_init(tu_buf *b) {
  b->p = NULL;
  b->len = b->cap = 0;
}

void tu_buf_free(tu_buf *b) {
  free(b->p);
  tu_buf_init(b);
}

static void buf_reserve(tu_buf *b, size_t extra) {
  if (b->len + extra + 1 <= b->cap)
    return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + extra + 1)
    cap *= 2;
  char *p = realloc(b->p, cap);
  if (p == NULL)
    abort(); /* tests: out of memory is fatal */
  b->p = p;
  b->cap = cap;
}

void tu_buf_add(tu_buf *b, const void *data, size_t n) {
  buf_reserve(b, n);
  if (n > 0)
    memcpy(b->p + b->len, data, n);
  b->len += n;
  b->p[b->len] = '\0';
}

void tu_buf_addf(tu_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0)
    abort();
  buf_reserve(b, (size_t)n);
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

char *tu_buf_take(tu_buf *b) {
  if (b->p == NULL)
    tu_buf_add(b, "", 0);
  char *p = b->p;
  tu_buf_init(b);
  return p;
}

static void add_hex(tu_buf *b, const void *data, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *p = data;
  buf_reserve(b, 2 * n);
  for (size_t i = 0; i < n; i++) {
    b->p[b->len++] = hex[p[i] >> 4];
    b->p[b->len++] = hex[p[i] & 15];
  }
  b->p[b->len] = '\0';
}

void tu_dump_row(tu_buf *b, const void *key, size_t klen, const void *val,
                 size_t vlen) {
  add_hex(b, key, klen);
  tu_buf_add(b, "=", 1);
  add_hex(b, val, vlen);
  tu_buf_add(b, "\n", 1);
}

static int dump_cb(void *arg, const void *key, size_t klen, const void *val,
                   size_t vlen) {
  tu_dump_row(arg, key, klen, val, vlen);
  return 0;
}

int tu_dump_table(kj_store *s, kj_txn *txn, unsigned table, char **out) {
  tu_buf b;
  tu_buf_init(&b);
  *out = NULL;
  int rc = kj_scan_prefix(s, txn, table, NULL, 0, dump_cb, &b);
  if (rc != KJ_OK) {
    tu_buf_free(&b);
    return rc;
  }
  *out = tu_buf_take(&b);
  return KJ_OK;
}

int tu_dump_tables(kj_store *s, kj_txn *txn, const unsigned *tables,
                   size_t ntables, char **out) {
  tu_buf b;
  tu_buf_init(&b);
  *out = NULL;
  for (size_t i = 0; i < ntables; i++) {
    tu_buf_addf(&b, "T%u\n", tables[i]);
    int rc = kj_scan_prefix(s, txn, tables[i], NULL, 0, dump_cb, &b);
    if (rc != KJ_OK) {
      tu_buf_free(&b);
      return rc;
    }
  }
  *out = tu_buf_take(&b);
  return KJ_OK;
}

/* ---- deterministic PRNG (splitmix64) ---------------------------------------
 */

void tu_rng_seed(tu_rng *r, uint64_t seed) { r->s = seed; }

uint64_t tu_rng_next(tu_rng *r) {
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t tu_rng_below(tu_rng *r, uint64_t n) { return tu_rng_next(r) % n; }

void tu_rng_fill(tu_rng *r, void *buf, size_t n) {
  unsigned char *p = buf;
  while (n > 0) {
    uint64_t x = tu_rng_next(r);
    for (int i = 0; i < 8 && n > 0; i++, n--) {
      *p++ = (unsigned char)x;
      x >>= 8;
    }
  }
}

char *tu_dump_store(kj_store *s) {
  unsigned t[KJ_TABLE_MAX];
  for (unsigned i = 0; i < KJ_TABLE_MAX; i++)
    t[i] = i + 1;
  char *d = NULL;
  return tu_dump_tables(s, NULL, t, KJ_TABLE_MAX, &d) ? NULL : d;
}

int tu_get_eq(kj_store *s, kj_txn *t, unsigned table, const void *k, size_t kl,
              const void *v, size_t vl) {
  void *got = NULL;
  size_t gl = (size_t)-1;
  int rc = kj_get(s, t, table, k, kl, &got, &gl);
  int res = rc == KJ_OK && gl == vl &&
            (vl == 0 || (got != NULL && memcmp(got, v, vl) == 0));
  if (!res)
    printf("#   get: rc=%d len=%zu (want %zu)\n", rc, gl, vl);
  kj_free(got);
  return res;
}

int tu_get_str_eq(kj_store *s, kj_txn *t, unsigned table, const char *k,
                  const char *v) {
  return tu_get_eq(s, t, table, k, strlen(k), v, strlen(v));
}

int tu_same_dump(const char *a, const char *b) {
  return a && b && strcmp(a, b) == 0;
}

int tu_row_eq(kj_store *s, unsigned table, const void *k, size_t kl,
              const void *v, size_t vl) {
  void *got = NULL;
  size_t gl = 0;
  int rc = kj_get(s, NULL, table, k, kl, &got, &gl);
  int res = rc == KJ_OK && gl == vl && (!vl || !memcmp(got, v, vl));
  if (!res)
    printf("#   raw row: rc %d len %zu (want %zu)\n", rc, gl, vl);
  kj_free(got);
  return res;
}

/* ---- checks shared by the domain store tests ------------------------------
 */

kj_tx *tu_tx_begin_writes(kj_backend *b, const tu_tx_script *s) {
  kj_tx *t = NULL;
  is(kj_backend_begin(b, &t), KJ_OK, "tx: begin");
  is(s->writes(b, t), KJ_OK, "tx: every write op inside a transaction");
  ok(s->visible(b, t), "tx: reads inside the tx see the tx's writes");
  return t;
}

void tu_tx_rollback_clean(kj_backend *b, kj_tx *t, const char *before) {
  ok(tu_backend_unchanged(b, before),
     "tx: nothing visible outside before commit");
  kj_backend_rollback(t);
  ok(tu_backend_unchanged(b, before), "tx: rollback leaves nothing");
}

void tu_check_persistence(const tu_tx_script *s) {
  char *dir = tu_mkdtemp();
  kj_backend *b = dir ? tu_backend_open(dir, NULL) : NULL;
  ok(b && !tu_make_slot(b, 1), "persist: backend on a directory");
  if (!b) {
    free(dir);
    return;
  }
  s->base_rows(b);
  kj_tx *t = NULL;
  kj_backend_begin(b, &t);
  s->writes(b, t);
  kj_backend_commit(t);
  char *before = tu_dump_backend(b);
  is(kj_backend_close(b), KJ_OK, "persist: close");
  b = tu_backend_open(dir, NULL);
  ok(b != NULL, "persist: reopen");
  if (b) {
    char *after = tu_dump_backend(b);
    ok(tu_same_dump(before, after), "persist: every row survives reopen");
    free(after);
    ok(s->visible(b, NULL), "persist: every value reads back after reopen");
    kj_backend_close(b);
  }
  free(before);
  tu_rmrf(dir);
  free(dir);
}

kj_tx *tu_big_batch_fails(kj_backend *b, const tu_big_batch *bb,
                          char **before) {
  *before = tu_dump_backend(b);
  int rc = bb->batch(b, NULL, bb->items, bb->n);
  ok(rc != KJ_OK, "big batch: alone fails (got %d)", rc);
  ok(tu_backend_unchanged(b, *before), "big batch: ... and stores nothing");
  kj_tx *t = NULL;
  is(kj_backend_begin(b, &t), KJ_OK, "big batch: begin");
  bb->write(b, t);
  rc = bb->batch(b, t, bb->items, bb->n);
  ok(rc != KJ_OK, "big batch: in a tx fails (got %d)", rc);
  return t;
}

void tu_run_domain_suite(const tu_domain_suite *s) {
  tu_with_slots("slots", 2, s->slots);
  tu_with_slots("tx", 1, s->tx);
  tu_with_slots("big batch", 1, s->big_batch);
  tu_check_persistence(s->persist);
  tu_with_slots("corrupt", 1, s->corrupt);
}

int tu_out_rc(int rc, void *out, size_t len) {
  if (rc != KJ_OK && (out != NULL || len != 0)) {
    printf("#   out not NULL on failure\n");
    return 99;
  }
  kj_free(out);
  return rc;
}

int tu_damage_rc_ok(int rc) {
  return rc == KJ_OK || rc == KJ_ECORRUPT || rc == KJ_EFORMAT;
}

void tu_check_damage_rounds(kj_backend *b, uint64_t seed, int rounds,
                            size_t cap, unsigned odds, unsigned npick,
                            int (*probe)(kj_backend *b, tu_rng *r,
                                         unsigned pick, uint8_t *v,
                                         size_t vl)) {
  uint8_t *v = malloc(cap);
  if (v == NULL)
    abort();
  tu_rng r;
  tu_rng_seed(&r, seed);
  int bad = 0;
  for (int i = 0; i < rounds; i++) {
    size_t vl = (size_t)tu_rng_below(&r, cap);
    tu_rng_fill(&r, v, vl);
    if (vl && tu_rng_below(&r, odds))
      v[0] = 1;
    if (!probe(b, &r, (unsigned)tu_rng_below(&r, npick), v, vl))
      bad++;
  }
  free(v);
  is(bad, 0, "corrupt: random values give OK, ECORRUPT or EFORMAT only");
}
