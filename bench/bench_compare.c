/*
 * bench/bench_compare.c - side-by-side benchmark of the native engine and
 * the SQLite reference backend (oracle/oracle.h), through the same domain
 * contract, in one process run. Contenders: native FULL, native NORMAL,
 * SQLite FULL, SQLite NORMAL. Every figure is the median of --reps
 * repetitions on fresh stores under DIR ($KJ_BENCH_DIR, $TMPDIR or /tmp),
 * reported with its native/SQLite ratio measured in the same run (for
 * latencies the ratio is a speedup, sqlite_time / native_time), the disk's
 * raw fdatasync rate as the physical limit of a durable commit, and the
 * project's targets marked met or missed. Figures only; a missed target is
 * not a failure (the exit status is 0 unless the benchmark itself fails).
 * Caches are warm: open times are those of a store just written, not of a
 * cold boot. SQLCipher is not a contender (the reference backend is not
 * built against it).
 *
 *   bench_compare [--reps N] [--large] [--json] [DIR]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "keyjournal.h"
#include "oracle.h"

/* ---- contenders -------------------------------------------------------- */

enum { NAT_FULL, NAT_NORMAL, SQL_FULL, SQL_NORMAL, NCONT };

static const char *const cont_name[NCONT] = {"native FULL", "native NORMAL",
                                             "SQLite FULL", "SQLite NORMAL"};
static const char *const cont_key[NCONT] = {"native_full", "native_normal",
                                            "sqlite_full", "sqlite_normal"};

static int is_native(int c) { return c == NAT_FULL || c == NAT_NORMAL; }
static int is_normal(int c) { return c == NAT_NORMAL || c == SQL_NORMAL; }

static const uint8_t bench_key[32] = {0x6b, 0x6a, 0x62, 0x63};

/* ---- small helpers ----------------------------------------------------- */

static int progress_on;

static void progress(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static void progress(const char *fmt, ...) {
  if (!progress_on)
    return;
  char line[200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\r\033[K[bench_compare] %s", line);
  fflush(stderr);
}

static void progress_end(void) {
  if (progress_on)
    fprintf(stderr, "\r\033[K");
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void die(const char *fmt, ...) {
  progress_end();
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "bench_compare: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(1);
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void check(int rc, kj_backend *b, const char *what) {
  if (rc)
    die("%s: %s: %s", what, kj_strerror(rc), b ? kj_backend_errmsg(b) : "");
}

static int rm_cb(const char *p, const struct stat *st, int flag,
                 struct FTW *f) {
  (void)st;
  (void)flag;
  (void)f;
  return remove(p);
}

static void rm_rf(const char *p) {
  struct stat st;
  if (lstat(p, &st) == 0)
    nftw(p, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static uint64_t du_sum;
static int du_cb(const char *p, const struct stat *st, int flag,
                 struct FTW *f) {
  (void)p;
  (void)f;
  if (flag == FTW_F)
    du_sum += (uint64_t)st->st_size;
  return 0;
}

/* Sum of the sizes of the regular files under p. */
static uint64_t disk_bytes(const char *p) {
  du_sum = 0;
  nftw(p, du_cb, 16, FTW_PHYS);
  return du_sum;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void) {
  uint64_t x = rng_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return rng_state = x;
}

/* Incompressible bytes, like the key material of a real session record. */
static void fill_random(uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i += 8) {
    uint64_t r = rng();
    memcpy(p + i, &r, n - i < 8 ? n - i : 8);
  }
}

static int addr_of(char *a, size_t cap, int thread, long i) {
  return snprintf(a, cap, "+1555%02d%07ld.0:1", thread, i);
}

/* ---- opening ----------------------------------------------------------- */

static char base_dir[4096];

/* Fresh (emptied) directory for contender c and purpose tag. */
static void store_dir(char *out, size_t cap, int c, const char *tag) {
  snprintf(out, cap, "%s/%s-%s", base_dir, cont_key[c], tag);
}

static kj_backend *open_at(int c, const char *dir, uint64_t snap_threshold) {
  kj_backend *b = NULL;
  char *em = NULL;
  int rc;
  if (is_native(c)) {
    kj_options o = KJ_OPTIONS_INIT;
    o.key = bench_key;
    o.sync = is_normal(c) ? KJ_SYNC_NORMAL : KJ_SYNC_FULL;
    o.snapshot_threshold = snap_threshold;
    rc = kj_backend_open(dir, &o, &b, &em);
  } else {
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
      die("mkdir %s: %s", dir, strerror(errno));
    char path[4200];
    snprintf(path, sizeof path, "%s/store.sqlite", dir);
    rc = kj_sqlite_open(path, is_normal(c), NULL, NULL, &b, &em);
  }
  if (rc)
    die("open %s (%s): %s: %s", dir, cont_name[c], kj_strerror(rc),
        em ? em : "");
  return b;
}

static kj_backend *open_fresh(int c, const char *tag, uint32_t *dev) {
  char dir[4300];
  store_dir(dir, sizeof dir, c, tag);
  rm_rf(dir);
  kj_backend *b = open_at(c, dir, 0);
  check(kj_device_create(b, NULL, dev), b, "device create");
  return b;
}

/* ---- measurements ------------------------------------------------------ */

/* Run op until budget seconds or max_ops, at least min_ops; seconds/op. */
typedef void (*op_fn)(void *ctx, long i);

static double timed_loop(op_fn f, void *ctx, double budget, long min_ops,
                         long max_ops) {
  double t0 = now(), t = t0;
  long n = 0;
  while (n < max_ops && (n < min_ops || t - t0 < budget)) {
    f(ctx, n++);
    if ((n & 7) == 0 || n < 64)
      t = now();
  }
  t = now();
  return (t - t0) / (double)n;
}

typedef struct put_ctx {
  kj_backend *b;
  uint32_t dev;
  int thread;
  long naddr;
  uint8_t rec[512];
} put_ctx;

static void op_put(void *vc, long i) {
  put_ctx *c = vc;
  char a[40];
  int al = addr_of(a, sizeof a, c->thread, i % c->naddr);
  memcpy(c->rec, &i, sizeof i);
  check(
      kj_session_put(c->b, NULL, c->dev, a, (size_t)al, c->rec, sizeof c->rec),
      c->b, "session put");
}

static void op_get(void *vc, long i) {
  put_ctx *c = vc;
  char a[40];
  long k = (long)(rng() % (uint64_t)c->naddr);
  (void)i;
  int al = addr_of(a, sizeof a, 0, k);
  void *rec = NULL;
  size_t rl = 0;
  check(kj_session_get(c->b, NULL, c->dev, a, (size_t)al, &rec, &rl), c->b,
        "session get");
  kj_free(rec);
}

typedef struct prekey_ctx {
  kj_backend *b;
  uint32_t dev;
  kj_prekey keys[100];
  uint8_t recs[100][96];
} prekey_ctx;

static void op_prekeys(void *vc, long i) {
  prekey_ctx *c = vc;
  for (int k = 0; k < 100; k++) {
    c->keys[k].id = (uint32_t)(i * 100 + k + 1);
    c->keys[k].uploaded = 0;
    c->recs[k][0] = (uint8_t)i;
    c->keys[k].record.p = c->recs[k];
    c->keys[k].record.len = sizeof c->recs[k];
  }
  check(kj_prekey_store_batch(c->b, NULL, c->dev, c->keys, 100, 0), c->b,
        "prekey batch");
}

typedef struct ratchet_ctx {
  kj_backend *b;
  uint32_t dev;
  kj_ratchet_state *s;
} ratchet_ctx;

/* 50 skipped keys, half of them new at each save. */
static void op_ratchet(void *vc, long i) {
  ratchet_ctx *c = vc;
  kj_ratchet_state *s = c->s;
  s->msg_send = (uint32_t)i;
  for (int k = 0; k < 50; k++) {
    memset(s->skipped[k].public_key, k % 5, 32);
    s->skipped[k].msg_num = (uint32_t)(i * 25 + k);
    memset(s->skipped[k].message_key, k, 32);
  }
  check(kj_ratchet_save(c->b, NULL, c->dev, "conversation-1", 14, s), c->b,
        "ratchet save");
}

/* Durable (or NORMAL) commit: seconds per session put to 500 addresses. */
static double m_commit(int c, double budget) {
  uint32_t dev;
  kj_backend *b = open_fresh(c, "commit", &dev);
  put_ctx pc = {.b = b, .dev = dev, .naddr = 500};
  fill_random(pc.rec, sizeof pc.rec);
  for (long i = 0; i < 20; i++) /* warm up: first rows, first segment */
    op_put(&pc, i);
  double r = timed_loop(op_put, &pc, budget, 20, 2000000);
  kj_backend_close(b);
  return r;
}

#define NTHREADS 8

typedef struct thr_arg {
  put_ctx pc;
  atomic_int *stop;
  long ops;
} thr_arg;

static void *thr_main(void *v) {
  thr_arg *a = v;
  long n = 0;
  while (!atomic_load(a->stop))
    op_put(&a->pc, n++);
  a->ops = n;
  return NULL;
}

/* 8 writer threads on one handle, each its own slot: total ops/s. */
static double m_threads(int c, double budget) {
  uint32_t dev;
  kj_backend *b = open_fresh(c, "threads", &dev);
  thr_arg ta[NTHREADS];
  atomic_int stop = 0;
  for (int t = 0; t < NTHREADS; t++) {
    memset(&ta[t], 0, sizeof ta[t]);
    ta[t].pc.b = b;
    if (t == 0)
      ta[t].pc.dev = dev;
    else
      check(kj_device_create(b, NULL, &ta[t].pc.dev), b, "device create");
    ta[t].pc.thread = t;
    ta[t].pc.naddr = 500;
    fill_random(ta[t].pc.rec, sizeof ta[t].pc.rec);
    ta[t].stop = &stop;
  }
  pthread_t th[NTHREADS];
  double t0 = now();
  for (int t = 0; t < NTHREADS; t++)
    if (pthread_create(&th[t], NULL, thr_main, &ta[t]))
      die("pthread_create failed");
  struct timespec ts = {(time_t)budget,
                        (long)((budget - (double)(time_t)budget) * 1e9)};
  nanosleep(&ts, NULL);
  atomic_store(&stop, 1);
  long total = 0;
  for (int t = 0; t < NTHREADS; t++) {
    pthread_join(th[t], NULL);
    total += ta[t].ops;
  }
  double el = now() - t0;
  kj_backend_close(b);
  return (double)total / el;
}

/* Point reads, prekey batches and ratchet saves on one store: s/op each. */
static void m_misc(int c, double budget, double *get, double *prekey,
                   double *ratchet) {
  uint32_t dev;
  kj_backend *b = open_fresh(c, "misc", &dev);
  put_ctx pc = {.b = b, .dev = dev, .naddr = 1000};
  fill_random(pc.rec, sizeof pc.rec);
  kj_tx *t;
  check(kj_tx_begin(b, &t), b, "tx begin");
  for (long i = 0; i < pc.naddr; i++) {
    char a[40];
    int al = addr_of(a, sizeof a, 0, i);
    check(kj_session_put(b, t, dev, a, (size_t)al, pc.rec, sizeof pc.rec), b,
          "session put");
  }
  check(kj_tx_commit(t), b, "tx commit");
  for (long i = 0; i < 1000; i++)
    op_get(&pc, i);
  *get = timed_loop(op_get, &pc, budget, 1000, 50000000);

  prekey_ctx *kc = calloc(1, sizeof *kc);
  if (!kc)
    die("out of memory");
  kc->b = b;
  kc->dev = dev;
  fill_random(&kc->recs[0][0], sizeof kc->recs);
  op_prekeys(kc, 0);
  *prekey = timed_loop(op_prekeys, kc, budget, 10, 1000000);
  free(kc);

  ratchet_ctx rc = {.b = b, .dev = dev, .s = kj_ratchet_state_alloc(50)};
  if (!rc.s)
    die("out of memory");
  memset(rc.s->root_key, 1, 32);
  rc.s->has_sending_chain = 1;
  op_ratchet(&rc, 0);
  *ratchet = timed_loop(op_ratchet, &rc, budget, 10, 1000000);
  kj_free(rc.s);
  kj_backend_close(b);
}

/* Raw fdatasync rate: 512 B pwrite over a preallocated, zero-filled and
 * synced file, then fdatasync; ops/s. */
static double m_fdatasync(double budget) {
  char path[4200];
  snprintf(path, sizeof path, "%s/fdatasync.probe", base_dir);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0)
    die("open %s: %s", path, strerror(errno));
  static uint8_t zero[1 << 16];
  const long size = 16l << 20;
  for (long off = 0; off < size; off += (long)sizeof zero)
    if (pwrite(fd, zero, sizeof zero, off) != (ssize_t)sizeof zero)
      die("pwrite: %s", strerror(errno));
  if (fsync(fd))
    die("fsync: %s", strerror(errno));
  uint8_t buf[512];
  fill_random(buf, sizeof buf);
  double t0 = now(), t = t0;
  long n = 0;
  while (n < 20 || t - t0 < budget) {
    off_t off = (off_t)((n * 512) % size);
    if (pwrite(fd, buf, sizeof buf, off) != (ssize_t)sizeof buf)
      die("pwrite: %s", strerror(errno));
    if (fdatasync(fd))
      die("fdatasync: %s", strerror(errno));
    n++;
    t = now();
  }
  close(fd);
  unlink(path);
  return (double)n / (t - t0);
}

/* A closed store of n session rows (512 B records, batched 1000 per
 * transaction) for contender c at dir; returns the logical bytes (sum of
 * key and value lengths) and the slot in *dev. Native: no snapshot. */
static uint64_t build_store(int c, const char *dir, long n, uint32_t *dev) {
  rm_rf(dir);
  kj_backend *b = open_at(c, dir, UINT64_MAX);
  check(kj_device_create(b, NULL, dev), b, "device create");
  uint8_t rec[512];
  uint64_t logical = 0;
  for (long i = 0; i < n;) {
    kj_tx *t;
    check(kj_tx_begin(b, &t), b, "tx begin");
    for (long k = 0; k < 1000 && i < n; k++, i++) {
      char a[40];
      int al = addr_of(a, sizeof a, 0, i);
      fill_random(rec, sizeof rec);
      check(kj_session_put(b, t, *dev, a, (size_t)al, rec, sizeof rec), b,
            "session put");
      logical += (uint64_t)al + sizeof rec;
    }
    check(kj_tx_commit(t), b, "tx commit");
    if (i % 50000 == 0)
      progress("building %ld-row store (%s): %ld", n, cont_name[c], i);
  }
  check(kj_backend_close(b), NULL, "close");
  return logical;
}

/* Median seconds to open (and recover) the closed store at dir. */
static double time_open(int c, const char *dir, int reps) {
  double v[64];
  for (int r = 0; r < reps; r++) {
    double t0 = now();
    kj_backend *b = open_at(c, dir, UINT64_MAX);
    v[r] = now() - t0;
    kj_backend_close(b);
  }
  return median(v, reps);
}

static void checkpoint_store(int c, const char *dir) {
  kj_backend *b = open_at(c, dir, UINT64_MAX);
  kj_store *s = kj_backend_store(b);
  if (!s)
    die("no engine store under %s", cont_name[c]);
  check(kj_store_checkpoint(s), b, "checkpoint");
  check(kj_backend_close(b), NULL, "close");
}

/* Peak RSS (KiB) of a child (this program re-executed) that only opens
 * the store at dir (kind "native", "sqlite" or "none") and closes it. The
 * child reports its own VmHWM (/proc/self/status) through a pipe: the
 * ru_maxrss of a child would include the parent's RSS at fork, which
 * Linux carries across exec. */
static long child_rss(const char *kind, const char *dir) {
  static char exe[4096];
  if (!exe[0]) {
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
      die("readlink /proc/self/exe: %s", strerror(errno));
    exe[n] = 0;
  }
  int fd[2];
  if (pipe(fd))
    die("pipe: %s", strerror(errno));
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    die("fork: %s", strerror(errno));
  if (pid == 0) {
    close(fd[0]);
    if (dup2(fd[1], 1) < 0)
      _exit(127);
    execl(exe, "bench_compare", "--rss-child", kind, dir, (char *)NULL);
    _exit(127);
  }
  close(fd[1]);
  char buf[64] = {0};
  size_t got = 0;
  ssize_t k;
  while (got < sizeof buf - 1 &&
         (k = read(fd[0], buf + got, sizeof buf - 1 - got)) > 0)
    got += (size_t)k;
  close(fd[0]);
  int st;
  if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
    die("rss child (%s) failed", kind);
  long kib = strtol(buf, NULL, 10);
  if (kib <= 0)
    die("rss child (%s) reported no VmHWM", kind);
  return kib;
}

static int rss_child_main(const char *kind, const char *dir) {
  int rc = 0;
  if (strcmp(kind, "none") != 0) {
    kj_backend *b = open_at(strcmp(kind, "native") == 0 ? NAT_FULL : SQL_FULL,
                            dir, UINT64_MAX);
    rc = kj_backend_close(b) ? 1 : 0;
  }
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kib = 0;
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, "VmHWM:", 6) == 0)
      kib = strtol(line + 6, NULL, 10);
  if (f)
    fclose(f);
  printf("%ld\n", kib);
  return rc;
}

/* ---- the table --------------------------------------------------------- */

enum ratio_kind { R_NONE, R_SPEEDUP, R_NATIVE_OVER_SQLITE };
enum target_kind { T_NONE, T_RATIO_GE, T_RATIO_LE, T_NATIVE_LE, T_NATIVE_GE };

typedef struct row {
  char name[64];
  char unit[16];
  double v[NCONT];
  int has[NCONT];
  int rkind;
  double ratio;
  int has_ratio;
  int tkind;
  double tval;
  char ttext[48];
  int status; /* -1 n/a, 0 missed, 1 met */
  char note[96];
} row;

static row rows[40];
static int nrows;

static row *add_row(const char *name, const char *unit, int rkind) {
  row *r = &rows[nrows++];
  memset(r, 0, sizeof *r);
  snprintf(r->name, sizeof r->name, "%s", name);
  snprintf(r->unit, sizeof r->unit, "%s", unit);
  r->rkind = rkind;
  r->status = -1;
  return r;
}

static void set(row *r, int c, double v) {
  r->v[c] = v;
  r->has[c] = 1;
}

static void set_target(row *r, int kind, double val, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void set_target(row *r, int kind, double val, const char *fmt, ...) {
  r->tkind = kind;
  r->tval = val;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->ttext, sizeof r->ttext, fmt, ap);
  va_end(ap);
}

/* The native value a target applies to (FULL, else NORMAL). */
static int native_col(const row *r) {
  return r->has[NAT_FULL] ? NAT_FULL : r->has[NAT_NORMAL] ? NAT_NORMAL : -1;
}

static void finish_row(row *r) {
  int n = -1, s = -1;
  if (r->has[NAT_FULL] && r->has[SQL_FULL])
    n = NAT_FULL, s = SQL_FULL;
  else if (r->has[NAT_NORMAL] && r->has[SQL_NORMAL])
    n = NAT_NORMAL, s = SQL_NORMAL;
  if (n >= 0 && r->rkind != R_NONE && r->v[n] > 0 && r->v[s] > 0) {
    r->ratio = r->rkind == R_SPEEDUP ? r->v[s] / r->v[n] : r->v[n] / r->v[s];
    r->has_ratio = 1;
  }
  int nc = native_col(r);
  switch (r->tkind) {
  case T_RATIO_GE:
    r->status = r->has_ratio ? r->ratio >= r->tval : -1;
    break;
  case T_RATIO_LE:
    r->status = r->has_ratio ? r->ratio <= r->tval : -1;
    break;
  case T_NATIVE_LE:
    r->status = nc >= 0 ? r->v[nc] <= r->tval : -1;
    break;
  case T_NATIVE_GE:
    r->status = nc >= 0 ? r->v[nc] >= r->tval : -1;
    break;
  default:
    break;
  }
}

static void fmt_val(char *out, size_t cap, double v, const char *unit) {
  if (strcmp(unit, "B") == 0 || strcmp(unit, "KiB") == 0)
    snprintf(out, cap, "%.0f", v);
  else if (v >= 1000)
    snprintf(out, cap, "%.0f", v);
  else if (v >= 10)
    snprintf(out, cap, "%.1f", v);
  else if (v >= 0.1)
    snprintf(out, cap, "%.3f", v);
  else
    snprintf(out, cap, "%.4f", v);
}

static const char *status_text(int s) {
  return s < 0 ? "n/a" : s ? "met" : "MISSED";
}

static void print_text(int reps, const char *dir, double fsync_rate,
                       const char *sqlcipher) {
  printf("keyjournal bench_compare: native engine vs SQLite reference, "
         "median of %d reps, dir %s\n",
         reps, dir);
  printf("fdatasync limit (512 B pwrite + fdatasync, preallocated): %.0f "
         "ops/s\n",
         fsync_rate);
  printf("%s\n\n", sqlcipher);
  printf("%-40s %-5s %12s %12s %12s %12s %9s  %-26s %s\n", "figure", "unit",
         cont_name[0], cont_name[1], cont_name[2], cont_name[3], "nat/SQL",
         "target", "status");
  for (int i = 0; i < nrows; i++) {
    row *r = &rows[i];
    char cells[NCONT][32], ratio[32];
    for (int c = 0; c < NCONT; c++) {
      if (r->has[c])
        fmt_val(cells[c], sizeof cells[c], r->v[c], r->unit);
      else
        snprintf(cells[c], sizeof cells[c], "-");
    }
    if (r->has_ratio)
      snprintf(ratio, sizeof ratio, "%.2fx", r->ratio);
    else
      snprintf(ratio, sizeof ratio, "-");
    printf("%-40s %-5s %12s %12s %12s %12s %9s  %-26s %s%s%s\n", r->name,
           r->unit, cells[0], cells[1], cells[2], cells[3], ratio,
           r->ttext[0] ? r->ttext : "-",
           r->tkind == T_NONE ? "" : status_text(r->status),
           r->note[0] ? "  " : "", r->note);
  }
  printf("\nnat/SQL: for times (us, ms) the speedup sqlite_time/native_time; "
         "for rates and bytes native/sqlite.\n");
}

static void json_str(const char *s) {
  putchar('"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\')
      printf("\\%c", *s);
    else if ((unsigned char)*s < 0x20)
      printf("\\u%04x", *s);
    else
      putchar(*s);
  }
  putchar('"');
}

static void print_json(int reps, const char *dir, double fsync_rate,
                       const char *sqlcipher) {
  printf("{\n  \"reps\": %d,\n  \"dir\": ", reps);
  json_str(dir);
  printf(",\n  \"fdatasync_ops_per_s\": %.1f,\n  \"sqlcipher\": ", fsync_rate);
  json_str(sqlcipher);
  printf(",\n  \"rows\": [\n");
  for (int i = 0; i < nrows; i++) {
    row *r = &rows[i];
    printf("    {\"figure\": ");
    json_str(r->name);
    printf(", \"unit\": ");
    json_str(r->unit);
    for (int c = 0; c < NCONT; c++) {
      printf(", \"%s\": ", cont_key[c]);
      if (r->has[c])
        printf("%.6g", r->v[c]);
      else
        printf("null");
    }
    printf(", \"ratio\": ");
    if (r->has_ratio)
      printf("%.4g", r->ratio);
    else
      printf("null");
    printf(", \"ratio_kind\": \"%s\"", r->rkind == R_SPEEDUP ? "speedup"
                                       : r->rkind == R_NATIVE_OVER_SQLITE
                                           ? "native_over_sqlite"
                                           : "none");
    printf(", \"target\": ");
    if (r->tkind == T_NONE)
      printf("null");
    else
      json_str(r->ttext);
    printf(", \"status\": ");
    if (r->tkind == T_NONE || r->status < 0)
      printf("null");
    else
      json_str(status_text(r->status));
    if (r->note[0]) {
      printf(", \"note\": ");
      json_str(r->note);
    }
    printf("}%s\n", i + 1 < nrows ? "," : "");
  }
  printf("  ]\n}\n");
}

/* ---- main -------------------------------------------------------------- */

static void usage(void) {
  fprintf(stderr, "usage: bench_compare [--reps N] [--large] [--json] [DIR]\n"
                  "  DIR default: $KJ_BENCH_DIR, $TMPDIR or /tmp\n");
  exit(2);
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "--rss-child") == 0)
    return rss_child_main(argv[2], argv[3]);
  int reps = 5, large = 0, json = 0;
  const char *dir = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
      reps = atoi(argv[++i]);
      if (reps < 1 || reps > 64)
        usage();
    } else if (strcmp(argv[i], "--large") == 0)
      large = 1;
    else if (strcmp(argv[i], "--json") == 0)
      json = 1;
    else if (argv[i][0] == '-')
      usage();
    else if (!dir)
      dir = argv[i];
    else
      usage();
  }
  if (!dir)
    dir = getenv("KJ_BENCH_DIR");
  if (!dir)
    dir = getenv("TMPDIR");
  if (!dir)
    dir = "/tmp";
  snprintf(base_dir, sizeof base_dir, "%s/kj-bench-compare.%ld", dir,
           (long)getpid());
  if (mkdir(base_dir, 0700) != 0)
    die("mkdir %s: %s", base_dir, strerror(errno));
  progress_on = isatty(2);

  const double b_commit = 0.4, b_thr = 0.5, b_misc = 0.25;
  double fs[64], commit[NCONT][64], thr[NCONT][64], get[NCONT][64],
      pk[NCONT][64], rt[NCONT][64];
  for (int r = 0; r < reps; r++) {
    progress("rep %d/%d: fdatasync limit", r + 1, reps);
    fs[r] = m_fdatasync(b_commit);
    for (int c = 0; c < NCONT; c++) {
      progress("rep %d/%d: %s commit", r + 1, reps, cont_name[c]);
      commit[c][r] = m_commit(c, b_commit);
      if (!is_normal(c)) {
        progress("rep %d/%d: %s 8 threads", r + 1, reps, cont_name[c]);
        thr[c][r] = m_threads(c, b_thr);
        progress("rep %d/%d: %s reads, pre-keys, ratchet", r + 1, reps,
                 cont_name[c]);
        m_misc(c, b_misc, &get[c][r], &pk[c][r], &rt[c][r]);
      }
    }
  }
  double fsync_rate = median(fs, reps);

  row *rw;
  rw = add_row("durable commit, 512 B session put", "us", R_SPEEDUP);
  for (int c = NAT_FULL; c <= SQL_FULL; c += 2)
    set(rw, c, median(commit[c], reps) * 1e6);
  set_target(rw, T_RATIO_GE, 1.2, ">=1.2x SQLite FULL");
  row *dur_ops = add_row("durable commit, 512 B session put", "ops/s",
                         R_NATIVE_OVER_SQLITE);
  for (int c = NAT_FULL; c <= SQL_FULL; c += 2)
    set(dur_ops, c, 1e6 / rw->v[c]);
  set_target(dur_ops, T_RATIO_GE, 1.2, ">=1.2x SQLite FULL");
  row *frac = add_row("durable commit / fdatasync limit", "frac", R_NONE);
  for (int c = NAT_FULL; c <= SQL_FULL; c += 2)
    set(frac, c, dur_ops->v[c] / fsync_rate);
  set_target(frac, T_NATIVE_GE, 0.9, ">=0.9 of fdatasync limit");

  rw = add_row("durable commit, 8 threads (total)", "ops/s",
               R_NATIVE_OVER_SQLITE);
  for (int c = NAT_FULL; c <= SQL_FULL; c += 2)
    set(rw, c, median(thr[c], reps));
  set_target(rw, T_RATIO_GE, 4, ">=4x SQLite FULL");

  rw = add_row("NORMAL commit, 512 B session put", "us", R_SPEEDUP);
  for (int c = NAT_NORMAL; c <= SQL_NORMAL; c += 2)
    set(rw, c, median(commit[c], reps) * 1e6);
  set_target(rw, T_RATIO_GE, 5, ">=5x SQLite NORMAL");
  row *nops = add_row("NORMAL commit, 512 B session put", "ops/s",
                      R_NATIVE_OVER_SQLITE);
  for (int c = NAT_NORMAL; c <= SQL_NORMAL; c += 2)
    set(nops, c, 1e6 / rw->v[c]);
  set_target(nops, T_RATIO_GE, 5, ">=5x SQLite NORMAL");

  rw = add_row("point read, session get (1000 rows)", "us", R_SPEEDUP);
  for (int c = NAT_FULL; c <= SQL_FULL; c += 2)
    set(rw, c, median(get[c], reps) * 1e6);
  set_target(rw, T_RATIO_GE, 10, ">=10x SQLite");
  rw = add_row("pre-key batch of 100, one call (FULL)", "us", R_SPEEDUP);
  for (int c = NAT_FULL; c <= SQL_FULL; c += 2)
    set(rw, c, median(pk[c], reps) * 1e6);
  rw = add_row("ratchet save, 50 skipped keys (FULL)", "us", R_SPEEDUP);
  for (int c = NAT_FULL; c <= SQL_FULL; c += 2)
    set(rw, c, median(rt[c], reps) * 1e6);

  /* Open/recovery, disk bytes and RSS. */
  long sizes[3] = {10000, 100000, 1000000};
  int nsizes = large ? 3 : 2;
  uint64_t logical100k = 0;
  long rss[3] = {0, 0, 0}; /* native journal, native snapshot, sqlite */
  uint64_t disk[3] = {0, 0, 0};
  for (int si = 0; si < 3; si++) {
    char label[64];
    long n = sizes[si];
    const char *nl = n == 10000 ? "10k" : n == 100000 ? "100k" : "1M";
    if (si >= nsizes) {
      snprintf(label, sizeof label, "open %s rows, journal only", nl);
      rw = add_row(label, "ms", R_SPEEDUP);
      snprintf(rw->note, sizeof rw->note, "not run (needs --large)");
      set_target(rw, T_NATIVE_LE, 1000, "<=1 s");
      snprintf(label, sizeof label, "open %s rows, after checkpoint", nl);
      rw = add_row(label, "ms", R_SPEEDUP);
      snprintf(rw->note, sizeof rw->note, "not run (needs --large)");
      set_target(rw, T_NATIVE_LE, 1000, "<=1 s");
      continue;
    }
    char nd[4300], sd[4300];
    uint32_t dev;
    snprintf(nd, sizeof nd, "%s/native-open-%ld", base_dir, n);
    snprintf(sd, sizeof sd, "%s/sqlite-open-%ld", base_dir, n);
    uint64_t logical = build_store(NAT_FULL, nd, n, &dev);
    build_store(SQL_FULL, sd, n, &dev);
    progress("open %s rows: timing", nl);
    double tj = time_open(NAT_FULL, nd, reps);
    double ts = time_open(SQL_FULL, sd, reps);
    if (n == 100000) {
      logical100k = logical;
      disk[0] = disk_bytes(nd);
      disk[2] = disk_bytes(sd);
      progress("peak RSS: children loading the 100k stores");
      rss[0] = child_rss("native", nd);
      rss[2] = child_rss("sqlite", sd);
    }
    progress("open %s rows: checkpoint", nl);
    checkpoint_store(NAT_FULL, nd);
    double tc = time_open(NAT_FULL, nd, reps);
    if (n == 100000) {
      disk[1] = disk_bytes(nd);
      rss[1] = child_rss("native", nd);
    }
    snprintf(label, sizeof label, "open %s rows, journal only", nl);
    rw = add_row(label, "ms", R_SPEEDUP);
    set(rw, NAT_FULL, tj * 1e3);
    set(rw, SQL_FULL, ts * 1e3);
    if (n == 1000000)
      set_target(rw, T_NATIVE_LE, 1000, "<=1 s");
    snprintf(rw->note, sizeof rw->note,
             "warm cache; SQLite opens lazily (reads no rows)");
    snprintf(label, sizeof label, "open %s rows, after checkpoint", nl);
    rw = add_row(label, "ms", R_SPEEDUP);
    set(rw, NAT_FULL, tc * 1e3);
    set(rw, SQL_FULL, ts * 1e3);
    if (n == 1000000)
      set_target(rw, T_NATIVE_LE, 1000, "<=1 s");
    rm_rf(nd);
    rm_rf(sd);
  }

  rw = add_row("disk bytes 100k rows, journal only", "B", R_NATIVE_OVER_SQLITE);
  set(rw, NAT_FULL, (double)disk[0]);
  set(rw, SQL_FULL, (double)disk[2]);
  set_target(rw, T_RATIO_LE, 0.6, "<=0.6x SQLite");
  snprintf(rw->note, sizeof rw->note,
           "file sizes incl. preallocated segment space");
  rw = add_row("disk bytes 100k rows, after checkpoint", "B",
               R_NATIVE_OVER_SQLITE);
  set(rw, NAT_FULL, (double)disk[1]);
  set(rw, SQL_FULL, (double)disk[2]);
  set_target(rw, T_RATIO_LE, 0.6, "<=0.6x SQLite");
  rw = add_row("logical bytes 100k rows (key+value)", "B", R_NONE);
  set(rw, NAT_FULL, (double)logical100k);
  set(rw, SQL_FULL, (double)logical100k);

  long rss_base = child_rss("none", base_dir);
  double rss_lim = 2.0 * (double)logical100k / 1024.0;
  rw = add_row("peak RSS, open 100k store, journal", "KiB",
               R_NATIVE_OVER_SQLITE);
  set(rw, NAT_FULL, (double)rss[0]);
  set(rw, SQL_FULL, (double)rss[2]);
  set_target(rw, T_NATIVE_LE, rss_lim, "<=2x logical (%.0f KiB)", rss_lim);
  snprintf(rw->note, sizeof rw->note,
           "child VmHWM, SQLite lazy; empty child: %ld KiB", rss_base);
  rw = add_row("peak RSS, open 100k store, checkpoint", "KiB",
               R_NATIVE_OVER_SQLITE);
  set(rw, NAT_FULL, (double)rss[1]);
  set(rw, SQL_FULL, (double)rss[2]);
  set_target(rw, T_NATIVE_LE, rss_lim, "<=2x logical (%.0f KiB)", rss_lim);

  for (int i = 0; i < nrows; i++)
    finish_row(&rows[i]);
  rm_rf(base_dir);
  progress_end();

  const char *sqlcipher =
      "SQLCipher: not measured (the SQLite reference backend is not built "
      "against SQLCipher)";
  if (json)
    print_json(reps, dir, fsync_rate, sqlcipher);
  else
    print_text(reps, dir, fsync_rate, sqlcipher);
  return 0;
}
