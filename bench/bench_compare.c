/*
 * bench/bench_compare.c - the side-by-side benchmark (`keyjournal bench`,
 * bench/bench_compare, `make bench`): the native engine, the SQLite
 * reference backend (oracle/oracle.h) and SQLCipher, through the same
 * domain contract, with the same generated workloads (every measurement
 * reseeds the generator), in one command run. Contenders: native FULL,
 * native NORMAL, SQLite FULL, SQLite NORMAL (in this process) and
 * SQLCipher FULL (in a helper process, below). Every figure is the median
 * of --reps repetitions on fresh stores under DIR ($KJ_BENCH_DIR, $TMPDIR
 * or /tmp), printed with its ratio to SQLite FULL measured in the same run
 * (for times the speedup sqlite_full_time / time, for rates and sizes
 * value / sqlite_full), with the disk's raw fdatasync rate as the physical
 * limit of a durable commit; the project's targets are listed met or
 * missed. Figures only: a missed target is not a failure (the exit status
 * is 0 unless the benchmark itself fails). Caches are warm: open times are
 * those of a store just written, not of a cold boot.
 *
 * SQLCipher is measured by a separate program because Debian's
 * libsqlcipher exports the same sqlite3_* symbols as libsqlite3: the two
 * cannot share a process. bench/bench.am builds this file a second time,
 * with -DKJ_BENCH_SQLCIPHER, together with oracle/sqlite_backend.c,
 * against libsqlcipher alone, as bench/bench_sqlcipher. Run as
 * `bench_sqlcipher --sqlcipher-child [--reps N] [--quick] [--large] DIR`
 * it measures the SQLCipher FULL contender with the functions below (the
 * reference backend's schema and statements, opened by
 * ora_sqlite_open_keyed: PRAGMA key with a raw 32-byte key), proves that
 * the database file is encrypted (no SQLite header, an unkeyed open fails)
 * or fails, and prints "fig NAME VALUE" lines. The main program runs the
 * helper named by $KJ_BENCH_SQLCIPHER, else the one of the build tree
 * (KJ_BENCH_SQLCIPHER_PATH, defined when configure found SQLCipher), and
 * merges its figures; when it is missing or fails, the column says why
 * (JSON: null values and a reason), it is never filled in.
 *
 *   bench_compare [--reps N] [--quick] [--large] [--json] [DIR]
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

#include <sqlite3.h>

#include "bench.h"
#include "keyjournal.h"
#include "oracle.h"

/* ---- contenders -------------------------------------------------------- */

enum { NAT_FULL, NAT_NORMAL, SQL_FULL, SQL_NORMAL, SQLC_FULL, NCONT };

static const char *const cont_name[NCONT] = {"native FULL", "native NORMAL",
                                             "SQLite FULL", "SQLite NORMAL",
                                             "SQLCipher FULL"};
static const char *const cont_key[NCONT] = {"native_full", "native_normal",
                                            "sqlite_full", "sqlite_normal",
                                            "sqlcipher_full"};

static int is_native(int c) { return c == NAT_FULL || c == NAT_NORMAL; }
static int is_normal(int c) { return c == NAT_NORMAL || c == SQL_NORMAL; }

/* The key of every encrypted store: the native engine's and SQLCipher's. */
static const uint8_t bench_key[32] = {0x6b, 0x6a, 0x62, 0x63};

/* ---- run configuration ------------------------------------------------- */

typedef struct cfg {
  int reps, quick, large, json;
  double b_commit, b_thr, b_misc; /* seconds per timed loop */
  long sizes[3];                  /* rows of the small, medium, large store */
  int nsizes;                     /* 3 with --large */
} cfg;

#define MEDIUM 1 /* the size of the disk-bytes and RSS figures */

static const char *prog = "bench_compare"; /* in messages */
static const char *subcmd; /* re-executing: argument selecting us, or NULL */
static int child_mode;     /* SQLCipher helper child: errors on stdout too */
static int quick;
static char base_dir[4096]; /* the run's scratch directory */
static pid_t base_owner;    /* the process that made it */

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
  fprintf(stderr, "\r\033[K[bench] %s", line);
  fflush(stderr);
}

static void progress_end(void) {
  if (progress_on)
    fprintf(stderr, "\r\033[K");
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

/* Report and exit 1, removing the scratch directory this process made. A
 * helper child also prints "error MESSAGE" on stdout for its parent. */
static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void die(const char *fmt, ...) {
  progress_end();
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  for (char *p = msg; *p; p++)
    if (*p == '\n' || *p == '\r')
      *p = ' ';
  fprintf(stderr, "%s: %s\n", prog, msg);
  if (child_mode) {
    printf("error %s\n", msg);
    fflush(stdout);
  }
  if (base_dir[0] && base_owner == getpid())
    rm_rf(base_dir);
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

/* The generated workloads: every measurement starts the generator from
 * its own seed, so each contender gets the same bytes and the same
 * access sequence, in this process and in the helper alike. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static void rng_seed(uint64_t seed) {
  rng_state = 0x9e3779b97f4a7c15ull ^ (seed * 0xbf58476d1ce4e5b9ull);
}
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
    if (c == SQLC_FULL)
      rc = ora_sqlite_open_keyed(path, 0, bench_key, sizeof bench_key, NULL,
                                 NULL, &b, &em);
    else
      rc = ora_sqlite_open(path, is_normal(c), NULL, NULL, &b, &em);
  }
  if (rc)
    die("open %s (%s): %s: %s", dir, cont_name[c], kj_strerror(rc),
        em ? em : "");
  kj_free(em);
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

/* Run op until budget seconds or max_ops, at least min_ops (5 at most
 * with --quick); seconds/op. */
typedef void (*op_fn)(void *ctx, long i);

static double timed_loop(op_fn f, void *ctx, double budget, long min_ops,
                         long max_ops) {
  if (quick && min_ops > 5)
    min_ops = 5;
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
  rng_seed(1);
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
  rng_seed(2);
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
  rng_seed(3);
  uint32_t dev;
  kj_backend *b = open_fresh(c, "misc", &dev);
  put_ctx pc = {.b = b, .dev = dev, .naddr = 1000};
  fill_random(pc.rec, sizeof pc.rec);
  kj_tx *t;
  check(kj_backend_begin(b, &t), b, "tx begin");
  for (long i = 0; i < pc.naddr; i++) {
    char a[40];
    int al = addr_of(a, sizeof a, 0, i);
    check(kj_session_put(b, t, dev, a, (size_t)al, pc.rec, sizeof pc.rec), b,
          "session put");
  }
  check(kj_backend_commit(t), b, "tx commit");
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

#ifndef KJ_BENCH_SQLCIPHER
/* Raw fdatasync rate: 512 B pwrite over a preallocated, zero-filled and
 * synced file, then fdatasync; ops/s. */
static double m_fdatasync(double budget) {
  char path[4200];
  snprintf(path, sizeof path, "%s/fdatasync.probe", base_dir);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0)
    die("open %s: %s", path, strerror(errno));
  static uint8_t zero[1 << 16];
  const long size = quick ? 1l << 20 : 16l << 20;
  for (long off = 0; off < size; off += (long)sizeof zero)
    if (pwrite(fd, zero, sizeof zero, off) != (ssize_t)sizeof zero)
      die("pwrite: %s", strerror(errno));
  if (fsync(fd))
    die("fsync: %s", strerror(errno));
  uint8_t buf[512];
  fill_random(buf, sizeof buf);
  double t0 = now(), t = t0;
  long n = 0;
  while (n < (quick ? 5 : 20) || t - t0 < budget) {
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
#endif

/* A closed store of n session rows (512 B records, batched 1000 per
 * transaction) for contender c at dir; returns the logical bytes (sum of
 * key and value lengths) and the slot in *dev. Native: no snapshot. */
static uint64_t build_store(int c, const char *dir, long n, uint32_t *dev) {
  rng_seed(4);
  rm_rf(dir);
  kj_backend *b = open_at(c, dir, UINT64_MAX);
  check(kj_device_create(b, NULL, dev), b, "device create");
  uint8_t rec[512];
  uint64_t logical = 0;
  for (long i = 0; i < n;) {
    kj_tx *t;
    check(kj_backend_begin(b, &t), b, "tx begin");
    for (long k = 0; k < 1000 && i < n; k++, i++) {
      char a[40];
      int al = addr_of(a, sizeof a, 0, i);
      fill_random(rec, sizeof rec);
      check(kj_session_put(b, t, *dev, a, (size_t)al, rec, sizeof rec), b,
            "session put");
      logical += (uint64_t)al + sizeof rec;
    }
    check(kj_backend_commit(t), b, "tx commit");
    if (i % 50000 == 0)
      progress("%s: building a %ld-row store: %ld", cont_name[c], n, i);
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

/* Run argv (argv[0]: the program's path) with its stdout captured.
 * Returns the output (malloc'd, NUL-terminated) and the waitpid status in
 * *st. A child that cannot exec prints "error exec ..." and exits 127. */
static char *run_capture(const char *const *argv, int *st) {
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
    execv(argv[0], (char *const *)argv);
    fprintf(stderr, "%s: exec %s: %s\n", prog, argv[0], strerror(errno));
    printf("error exec %s: %s\n", argv[0], strerror(errno));
    fflush(stdout);
    _exit(127);
  }
  close(fd[1]);
  size_t len = 0, cap = 4096;
  char *out = malloc(cap);
  ssize_t k;
  while (out && (k = read(fd[0], out + len, cap - len - 1)) > 0) {
    len += (size_t)k;
    if (cap - len < 1024) {
      char *o = realloc(out, cap *= 2);
      if (!o)
        free(out);
      out = o;
    }
  }
  close(fd[0]);
  if (waitpid(pid, st, 0) != pid)
    die("waitpid: %s", strerror(errno));
  if (!out)
    die("out of memory");
  out[len] = 0;
  return out;
}

/* Peak RSS (KiB) of a child (this program re-executed) that only opens
 * the store at dir (kind: a FULL contender's key, or "none") and closes
 * it. The child reports its own VmHWM (/proc/self/status) through a pipe:
 * the ru_maxrss of a child would include the parent's RSS at fork, which
 * Linux carries across exec. */
static long child_rss(const char *kind, const char *dir) {
  static char exe[4096];
  if (!exe[0]) {
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
      die("readlink /proc/self/exe: %s", strerror(errno));
    exe[n] = 0;
  }
  const char *argv[] = {exe,
                        subcmd ? subcmd : "--rss-child",
                        subcmd ? "--rss-child" : kind,
                        subcmd ? kind : dir,
                        subcmd ? dir : NULL,
                        NULL};
  int st;
  char *buf = run_capture(argv, &st);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    die("rss child (%s) failed", kind);
  long kib = strtol(buf, NULL, 10);
  free(buf);
  if (kib <= 0)
    die("rss child (%s) reported no VmHWM", kind);
  return kib;
}

static int rss_child_main(const char *kind, const char *dir) {
  int rc = 0, c = -1;
  for (int i = 0; i < NCONT; i++)
    if (!is_normal(i) && strcmp(kind, cont_key[i]) == 0)
      c = i;
  if (c < 0 && strcmp(kind, "none") != 0)
    die("--rss-child: unknown kind %s", kind);
  if (c >= 0) {
    kj_backend *b = open_at(c, dir, UINT64_MAX);
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

/* ---- figures ----------------------------------------------------------- */

/* What is measured for each contender, in base units (seconds, ops/s,
 * bytes, KiB). The first NREPFIG are measured once per rep (medians);
 * the others on stores of cfg.sizes[] rows, per size (F_OPEN_J + si). */
enum {
  F_COMMIT,  /* s per session put (FULL or NORMAL per contender) */
  F_THREADS, /* ops/s, 8 writer threads */
  F_GET,     /* s per point read */
  F_PREKEY,  /* s per pre-key batch of 100 */
  F_RATCHET, /* s per ratchet save with 50 skipped keys */
  NREPFIG,
  F_OPEN_J = NREPFIG,      /* s to open a store of sizes[si] rows */
  F_OPEN_C = F_OPEN_J + 3, /* the same after a checkpoint */
  F_DISK_J = F_OPEN_C + 3, /* bytes of the medium store */
  F_DISK_C,
  F_LOGICAL, /* key+value bytes of the medium store */
  F_RSS_J,   /* KiB, peak RSS of a child opening the medium store */
  F_RSS_C,
  NFIG
};

/* Names of the figures in the helper's "fig NAME VALUE" lines. */
static const char *const fig_key[NFIG] = {
    "commit",  "threads", "get",     "prekey",  "ratchet", "open_j0",
    "open_j1", "open_j2", "open_c0", "open_c1", "open_c2", "disk_j",
    "disk_c",  "logical", "rss_j",   "rss_c"};

static double fig[NCONT][NFIG];
static int has_fig[NCONT][NFIG];
static double repv[NCONT][NREPFIG][64];

static void put_fig(int c, int f, double v) {
  fig[c][f] = v;
  has_fig[c][f] = 1;
}

/* One rep of the per-operation figures of contender c. */
static void measure_rep(const cfg *g, int c, int r) {
  progress("rep %d/%d: %s commit", r + 1, g->reps, cont_name[c]);
  repv[c][F_COMMIT][r] = m_commit(c, g->b_commit);
  if (is_normal(c))
    return;
  progress("rep %d/%d: %s 8 threads", r + 1, g->reps, cont_name[c]);
  repv[c][F_THREADS][r] = m_threads(c, g->b_thr);
  progress("rep %d/%d: %s reads, pre-keys, ratchet", r + 1, g->reps,
           cont_name[c]);
  m_misc(c, g->b_misc, &repv[c][F_GET][r], &repv[c][F_PREKEY][r],
         &repv[c][F_RATCHET][r]);
}

static void rep_medians(const cfg *g, int c) {
  for (int f = 0; f < NREPFIG; f++)
    if (f == F_COMMIT || !is_normal(c))
      put_fig(c, f, median(repv[c][f], g->reps));
}

#ifdef KJ_BENCH_SQLCIPHER
static char encrypted_note[600];

/* Fail unless the SQLCipher database under dir is encrypted: its first 16
 * bytes are not SQLite's header and an unkeyed open fails. */
static void prove_encrypted(const char *dir) {
  char path[4400];
  snprintf(path, sizeof path, "%s/store.sqlite", dir);
  unsigned char head[16];
  FILE *f = fopen(path, "rb");
  size_t got = f ? fread(head, 1, sizeof head, f) : 0;
  if (f)
    fclose(f);
  if (got != sizeof head)
    die("%s: cannot read its first 16 bytes", path);
  if (memcmp(head, "SQLite format 3", 16) == 0)
    die("%s is NOT encrypted: it starts with the SQLite header", path);
  kj_backend *b = NULL;
  char *em = NULL;
  int rc = ora_sqlite_open(path, 0, NULL, NULL, &b, &em);
  if (rc == KJ_OK) {
    kj_backend_close(b);
    die("%s is NOT encrypted: it opens without the key", path);
  }
  const char *why = em ? em : kj_strerror(rc), *p = strstr(why, path);
  if (p && p[strlen(path)] == ':') /* "sqlite open PATH: message" */
    why = p + strlen(path) + 2;
  snprintf(encrypted_note, sizeof encrypted_note,
           "no SQLite header, an unkeyed open fails (%s)", why);
  kj_free(em);
}
#endif

/* Open times, disk bytes and peak RSS of FULL contender c. */
static void measure_stores(const cfg *g, int c) {
  for (int si = 0; si < g->nsizes; si++) {
    long n = g->sizes[si];
    char d[4300];
    uint32_t dev;
    snprintf(d, sizeof d, "%s/%s-open-%ld", base_dir, cont_key[c], n);
    uint64_t logical = build_store(c, d, n, &dev);
#ifdef KJ_BENCH_SQLCIPHER
    if (c == SQLC_FULL)
      prove_encrypted(d);
#endif
    progress("%s: open %ld rows", cont_name[c], n);
    double tj = time_open(c, d, g->reps);
    put_fig(c, F_OPEN_J + si, tj);
    if (si == MEDIUM) {
      put_fig(c, F_LOGICAL, (double)logical);
      put_fig(c, F_DISK_J, (double)disk_bytes(d));
      progress("%s: peak RSS of a child opening %ld rows", cont_name[c], n);
      put_fig(c, F_RSS_J, (double)child_rss(cont_key[c], d));
    }
    if (is_native(c)) {
      progress("%s: checkpoint, open %ld rows", cont_name[c], n);
      checkpoint_store(c, d);
      put_fig(c, F_OPEN_C + si, time_open(c, d, g->reps));
      if (si == MEDIUM) {
        put_fig(c, F_DISK_C, (double)disk_bytes(d));
        put_fig(c, F_RSS_C, (double)child_rss(cont_key[c], d));
      }
    } else { /* no checkpoint step: the same store */
      put_fig(c, F_OPEN_C + si, tj);
      if (si == MEDIUM) {
        put_fig(c, F_DISK_C, fig[c][F_DISK_J]);
        put_fig(c, F_RSS_C, fig[c][F_RSS_J]);
      }
    }
    rm_rf(d);
  }
}

/* ---- SQLCipher --------------------------------------------------------- */

/* The SQLCipher column: measured (ok) or why not. */
typedef struct cipher_info {
  int ok;
  char reason[700];    /* when !ok */
  char version[64];    /* PRAGMA cipher_version */
  char sqlite[64];     /* the SQLite it is built on */
  int upsert_replace;  /* SQLite < 3.24: upserts ran as INSERT OR REPLACE */
  char encrypted[700]; /* the proof */
  char helper[4096];   /* the program that measured it */
  long rss_base;       /* KiB, peak RSS of the helper opening nothing */
} cipher_info;

static cipher_info sqlc;

#ifdef KJ_BENCH_SQLCIPHER
/* `bench_sqlcipher --sqlcipher-child ... DIR`: measure SQLCipher FULL in a
 * scratch directory under DIR and print, on stdout, "key value" lines:
 * sqlcipher_version, sqlite_version, upsert_replace, encrypted, a "fig
 * NAME VALUE" line per figure, and "done" last. On failure "error
 * MESSAGE" (die) and exit 1. */
static int sqlcipher_child(const cfg *g, const char *dir) {
  child_mode = 1;
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  const unsigned char *cv = NULL;
  if (sqlite3_open(":memory:", &db) == SQLITE_OK &&
      sqlite3_prepare_v2(db, "PRAGMA cipher_version", -1, &st, NULL) ==
          SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    cv = sqlite3_column_text(st, 0);
  if (!cv || !*cv)
    die("this program is not linked against SQLCipher (PRAGMA "
        "cipher_version gives nothing)");
  snprintf(sqlc.version, sizeof sqlc.version, "%s", (const char *)cv);
  sqlite3_finalize(st);
  sqlite3_close(db);

  snprintf(base_dir, sizeof base_dir, "%s/sqlcipher.%ld", dir, (long)getpid());
  if (mkdir(base_dir, 0700) != 0)
    die("mkdir %s: %s", base_dir, strerror(errno));
  base_owner = getpid();
  for (int r = 0; r < g->reps; r++)
    measure_rep(g, SQLC_FULL, r);
  rep_medians(g, SQLC_FULL);
  measure_stores(g, SQLC_FULL);
  long rss_base = child_rss("none", base_dir);
  rm_rf(base_dir);
  progress_end();
  printf("sqlcipher_version %s\n", sqlc.version);
  printf("sqlite_version %s\n", sqlite3_libversion());
  printf("upsert_replace %d\n", sqlite3_libversion_number() < 3024000);
  printf("encrypted %s\n", encrypted_note);
  printf("rss_base %ld\n", rss_base);
  for (int f = 0; f < NFIG; f++)
    if (has_fig[SQLC_FULL][f])
      printf("fig %s %.17g\n", fig_key[f], fig[SQLC_FULL][f]);
  printf("done\n");
  return fflush(stdout) ? 1 : 0;
}
#else
/* Fill sqlc (and the SQLCipher figures) from the helper, or say why not. */
static void run_sqlcipher(const cfg *g) {
  const char *path = getenv("KJ_BENCH_SQLCIPHER");
  if (!path || !*path) {
#ifdef KJ_BENCH_SQLCIPHER_PATH
    path = KJ_BENCH_SQLCIPHER_PATH;
#else
    snprintf(sqlc.reason, sizeof sqlc.reason,
             "not built (configure found no libsqlcipher-dev; "
             "KJ_BENCH_SQLCIPHER can name a bench_sqlcipher helper)");
    return;
#endif
  }
  snprintf(sqlc.helper, sizeof sqlc.helper, "%s", path);
  if (access(path, X_OK) != 0) {
    snprintf(sqlc.reason, sizeof sqlc.reason,
             "helper %s: %s (make bench/bench_sqlcipher builds it)", path,
             strerror(errno));
    return;
  }
  char reps[16];
  snprintf(reps, sizeof reps, "%d", g->reps);
  const char *argv[10];
  int n = 0;
  argv[n++] = path;
  argv[n++] = "--sqlcipher-child";
  argv[n++] = "--reps";
  argv[n++] = reps;
  if (g->quick)
    argv[n++] = "--quick";
  if (g->large)
    argv[n++] = "--large";
  argv[n++] = base_dir;
  argv[n] = NULL;
  progress("SQLCipher FULL: starting %s", path);
  int st;
  char *out = run_capture(argv, &st);
  progress_end();

  int done = 0;
  char error[600] = "";
  for (char *line = out, *next; line && *line; line = next) {
    next = strchr(line, '\n');
    if (next)
      *next++ = 0;
    char name[32];
    double v;
    if (strncmp(line, "error ", 6) == 0)
      snprintf(error, sizeof error, "%s", line + 6);
    else if (strncmp(line, "sqlcipher_version ", 18) == 0)
      snprintf(sqlc.version, sizeof sqlc.version, "%s", line + 18);
    else if (strncmp(line, "sqlite_version ", 15) == 0)
      snprintf(sqlc.sqlite, sizeof sqlc.sqlite, "%s", line + 15);
    else if (strncmp(line, "upsert_replace ", 15) == 0)
      sqlc.upsert_replace = atoi(line + 15);
    else if (strncmp(line, "encrypted ", 10) == 0)
      snprintf(sqlc.encrypted, sizeof sqlc.encrypted, "%s", line + 10);
    else if (strncmp(line, "rss_base ", 9) == 0)
      sqlc.rss_base = atol(line + 9);
    else if (strcmp(line, "done") == 0)
      done = 1;
    else if (sscanf(line, "fig %31s %lf", name, &v) == 2 && v > 0)
      for (int f = 0; f < NFIG; f++)
        if (strcmp(name, fig_key[f]) == 0)
          put_fig(SQLC_FULL, f, v);
  }
  free(out);
  int good = WIFEXITED(st) && WEXITSTATUS(st) == 0;
  if (good && done && sqlc.encrypted[0]) {
    sqlc.ok = 1;
    return;
  }
  memset(has_fig[SQLC_FULL], 0, sizeof has_fig[SQLC_FULL]);
  if (error[0])
    snprintf(sqlc.reason, sizeof sqlc.reason, "helper %s failed: %s", path,
             error);
  else if (WIFSIGNALED(st))
    snprintf(sqlc.reason, sizeof sqlc.reason, "helper %s killed by signal %d",
             path, WTERMSIG(st));
  else if (!good)
    snprintf(sqlc.reason, sizeof sqlc.reason, "helper %s exited with status %d",
             path, WEXITSTATUS(st));
  else
    snprintf(sqlc.reason, sizeof sqlc.reason,
             "helper %s gave incomplete results", path);
}
#endif

#ifndef KJ_BENCH_SQLCIPHER
/* ---- the table --------------------------------------------------------- */

/* How a figure compares to SQLite FULL: times as the speedup
 * sqlite_full / value (above 1: faster), rates and sizes as value /
 * sqlite_full; R_NONE for derived figures. */
enum ratio_kind { R_NONE, R_SPEEDUP, R_OVER };

typedef struct row {
  char id[40]; /* stable name (JSON) */
  char name[96];
  char unit[8];
  int rkind;
  double v[NCONT];
  int has[NCONT];
  char note[128];
} row;

static row rows[40];
static int nrows;

static row *add_row(const char *id, const char *name, const char *unit,
                    int rkind) {
  row *r = &rows[nrows++];
  memset(r, 0, sizeof *r);
  snprintf(r->id, sizeof r->id, "%s", id);
  snprintf(r->name, sizeof r->name, "%s", name);
  snprintf(r->unit, sizeof r->unit, "%s", unit);
  r->rkind = rkind;
  return r;
}

static row *find_row(const char *id) {
  for (int i = 0; i < nrows; i++)
    if (strcmp(rows[i].id, id) == 0)
      return &rows[i];
  return NULL;
}

/* Row cells from figure f: value * scale, or (inv) scale / value. */
static void row_from(row *r, int f, double scale, int inv) {
  for (int c = 0; c < NCONT; c++)
    if (has_fig[c][f] && fig[c][f] > 0) {
      r->v[c] = inv ? scale / fig[c][f] : fig[c][f] * scale;
      r->has[c] = 1;
    }
}

/* The ratio of cell c to SQLite FULL; 0 when there is none. */
static double ratio_to_sqlite(const row *r, int c) {
  if (r->rkind == R_NONE || !r->has[c] || !r->has[SQL_FULL] || r->v[c] <= 0 ||
      r->v[SQL_FULL] <= 0)
    return 0;
  return r->rkind == R_SPEEDUP ? r->v[SQL_FULL] / r->v[c]
                               : r->v[c] / r->v[SQL_FULL];
}

/* A target of the project: contender c's figure against reference ref
 * (a ratio in the row's direction), or absolute (ref < 0). */
typedef struct target {
  const row *r;
  int c, ref, ge;
  double val;
  char text[64];
  double got;
  int status; /* -1 n/a, 0 missed, 1 met */
} target;

static target targets[16];
static int ntargets;

static void add_target(const char *id, int c, int ref, int ge, double val,
                       const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void add_target(const char *id, int c, int ref, int ge, double val,
                       const char *fmt, ...) {
  target *t = &targets[ntargets++];
  memset(t, 0, sizeof *t);
  t->r = find_row(id);
  t->c = c;
  t->ref = ref;
  t->ge = ge;
  t->val = val;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t->text, sizeof t->text, fmt, ap);
  va_end(ap);
  t->status = -1;
  const row *r = t->r;
  if (!r || !r->has[c] || r->v[c] <= 0 ||
      (ref >= 0 && (!r->has[ref] || r->v[ref] <= 0)))
    return;
  t->got = ref < 0                 ? r->v[c]
           : r->rkind == R_SPEEDUP ? r->v[ref] / r->v[c]
                                   : r->v[c] / r->v[ref];
  t->status = ge ? t->got >= val : t->got <= val;
}

static const char *size_label(char *out, size_t cap, long n) {
  if (n >= 1000000 && n % 1000000 == 0)
    snprintf(out, cap, "%ldM", n / 1000000);
  else if (n >= 1000 && n % 1000 == 0)
    snprintf(out, cap, "%ldk", n / 1000);
  else
    snprintf(out, cap, "%ld", n);
  return out;
}

static void build_rows(const cfg *g, double fsync_rate, long rss_base) {
  static const char *const size_id[3] = {"small", "medium", "large"};
  char id[40], name[96], nl[32];
  row *r;
  r = add_row("commit_us", "commit, 512 B session put", "us", R_SPEEDUP);
  row_from(r, F_COMMIT, 1e6, 0);
  r = add_row("commit_ops", "commit, 512 B session put", "ops/s", R_OVER);
  row_from(r, F_COMMIT, 1, 1);
  r = add_row("commit_fdatasync_frac", "commit / fdatasync limit", "frac",
              R_NONE);
  row_from(r, F_COMMIT, 1 / fsync_rate, 1);
  r = add_row("threads8_ops", "FULL commit, 8 threads (total)", "ops/s",
              R_OVER);
  row_from(r, F_THREADS, 1, 0);
  r = add_row("get_us", "point read, session get (1000 rows)", "us", R_SPEEDUP);
  row_from(r, F_GET, 1e6, 0);
  r = add_row("prekey100_us", "pre-key batch of 100, one call", "us",
              R_SPEEDUP);
  row_from(r, F_PREKEY, 1e6, 0);
  r = add_row("ratchet50_us", "ratchet save, 50 skipped keys", "us", R_SPEEDUP);
  row_from(r, F_RATCHET, 1e6, 0);

  long sizes[3] = {g->sizes[0], g->sizes[1], g->sizes[2]};
  for (int si = 0; si < 3; si++) {
    size_label(nl, sizeof nl, sizes[si]);
    snprintf(id, sizeof id, "open_%s_journal_ms", size_id[si]);
    snprintf(name, sizeof name, "open %s rows, journal only", nl);
    r = add_row(id, name, "ms", R_SPEEDUP);
    row_from(r, F_OPEN_J + si, 1e3, 0);
    if (si >= g->nsizes)
      snprintf(r->note, sizeof r->note, "not run (needs --large)");
    else
      snprintf(r->note, sizeof r->note,
               "warm cache; SQLite, SQLCipher open lazily (read no rows)");
    snprintf(id, sizeof id, "open_%s_checkpoint_ms", size_id[si]);
    snprintf(name, sizeof name, "open %s rows, after checkpoint", nl);
    r = add_row(id, name, "ms", R_SPEEDUP);
    row_from(r, F_OPEN_C + si, 1e3, 0);
    if (si >= g->nsizes)
      snprintf(r->note, sizeof r->note, "not run (needs --large)");
    else
      snprintf(r->note, sizeof r->note,
               "SQLite, SQLCipher: the same store (no checkpoint step)");
  }
  size_label(nl, sizeof nl, sizes[MEDIUM]);
  snprintf(name, sizeof name, "disk bytes %s rows, journal only", nl);
  r = add_row("disk_journal_bytes", name, "B", R_OVER);
  row_from(r, F_DISK_J, 1, 0);
  snprintf(r->note, sizeof r->note,
           "file sizes, native incl. preallocated segment space");
  snprintf(name, sizeof name, "disk bytes %s rows, after checkpoint", nl);
  r = add_row("disk_checkpoint_bytes", name, "B", R_OVER);
  row_from(r, F_DISK_C, 1, 0);
  snprintf(name, sizeof name, "logical bytes %s rows (key+value)", nl);
  r = add_row("logical_bytes", name, "B", R_NONE);
  row_from(r, F_LOGICAL, 1, 0);
  snprintf(name, sizeof name, "peak RSS, open %s rows, journal", nl);
  r = add_row("rss_journal_kib", name, "KiB", R_OVER);
  row_from(r, F_RSS_J, 1, 0);
  if (sqlc.ok)
    snprintf(r->note, sizeof r->note,
             "child VmHWM, SQLite lazy; empty child: %ld KiB (SQLCipher "
             "helper: %ld KiB)",
             rss_base, sqlc.rss_base);
  else
    snprintf(r->note, sizeof r->note,
             "child VmHWM, SQLite lazy; empty child: %ld KiB", rss_base);
  snprintf(name, sizeof name, "peak RSS, open %s rows, checkpoint", nl);
  r = add_row("rss_checkpoint_kib", name, "KiB", R_OVER);
  row_from(r, F_RSS_C, 1, 0);

  double logical = has_fig[NAT_FULL][F_LOGICAL] ? fig[NAT_FULL][F_LOGICAL] : 0;
  double rss_lim = 2.0 * logical / 1024.0;
  add_target("commit_us", NAT_FULL, SQL_FULL, 1, 1.2, ">=1.2x SQLite FULL");
  add_target("commit_us", NAT_NORMAL, SQL_NORMAL, 1, 5, ">=5x SQLite NORMAL");
  add_target("commit_fdatasync_frac", NAT_FULL, -1, 1, 0.9,
             ">=0.9 of fdatasync limit");
  add_target("threads8_ops", NAT_FULL, SQL_FULL, 1, 4, ">=4x SQLite FULL");
  add_target("get_us", NAT_FULL, SQL_FULL, 1, 10, ">=10x SQLite FULL");
  add_target("open_large_journal_ms", NAT_FULL, -1, 0, 1000, "<=1 s");
  add_target("open_large_checkpoint_ms", NAT_FULL, -1, 0, 1000, "<=1 s");
  add_target("disk_journal_bytes", NAT_FULL, SQL_FULL, 0, 0.6,
             "<=0.6x SQLite FULL");
  add_target("disk_checkpoint_bytes", NAT_FULL, SQL_FULL, 0, 0.6,
             "<=0.6x SQLite FULL");
  add_target("rss_journal_kib", NAT_FULL, -1, 0, rss_lim,
             "<=2x logical (%.0f KiB)", rss_lim);
  add_target("rss_checkpoint_kib", NAT_FULL, -1, 0, rss_lim,
             "<=2x logical (%.0f KiB)", rss_lim);
}

static void fmt_val(char *out, size_t cap, double v, const char *unit) {
  if (strcmp(unit, "B") == 0 || strcmp(unit, "KiB") == 0 || v >= 1000)
    snprintf(out, cap, "%.0f", v);
  else if (v >= 10)
    snprintf(out, cap, "%.1f", v);
  else if (v >= 0.1)
    snprintf(out, cap, "%.3f", v);
  else
    snprintf(out, cap, "%.4f", v);
}

static void fmt_ratio(char *out, size_t cap, double x) {
  snprintf(out, cap,
           x >= 100   ? "%.0fx"
           : x >= 10  ? "%.1fx"
           : x >= 0.1 ? "%.2fx"
                      : "%.3fx",
           x);
}

static const char *status_text(int s) {
  return s < 0 ? "n/a" : s ? "met" : "MISSED";
}

/* One line on what each contender is. */
static void describe_sqlite(char *out, size_t cap) {
  snprintf(out, cap,
           "SQLite %s, the reference backend (oracle/sqlite_backend.c), WAL, "
           "foreign keys on, not encrypted",
           sqlite3_libversion());
}

static void describe_sqlcipher(char *out, size_t cap) {
  if (!sqlc.ok) {
    snprintf(out, cap, "not measured: %s", sqlc.reason);
    return;
  }
  snprintf(out, cap,
           "SQLCipher %s on SQLite %s (separate process %s), the reference "
           "backend's schema and statements%s, raw 32-byte key by PRAGMA key; "
           "database file encrypted: %s",
           sqlc.version, sqlc.sqlite, sqlc.helper,
           sqlc.upsert_replace ? " (upserts as INSERT OR REPLACE: SQLite "
                                 "before 3.24 has no UPSERT)"
                               : "",
           sqlc.encrypted);
}

static void print_text(const cfg *g, const char *dir, double fsync_rate) {
  char line[8192];
  printf("keyjournal bench: native engine, SQLite and SQLCipher side by "
         "side; median of %d rep%s; dir %s\n",
         g->reps, g->reps == 1 ? "" : "s", dir);
  if (g->quick)
    printf("QUICK RUN: tiny time budgets and stores; the figures mean "
           "nothing\n");
  printf("fdatasync limit (512 B pwrite + fdatasync, preallocated): %.0f "
         "ops/s\n",
         fsync_rate);
  describe_sqlite(line, sizeof line);
  printf("SQLite FULL, SQLite NORMAL: %s\n", line);
  describe_sqlcipher(line, sizeof line);
  printf("SQLCipher FULL: %s\n\n", line);
  printf("%-38s %-5s", "figure", "unit");
  for (int c = 0; c < NCONT; c++)
    printf(" %17s", cont_name[c]);
  printf("\n");
  for (int i = 0; i < nrows; i++) {
    const row *r = &rows[i];
    printf("%-38s %-5s", r->name, r->unit);
    for (int c = 0; c < NCONT; c++) {
      char cell[64], v[32], x[24];
      double q = ratio_to_sqlite(r, c);
      if (!r->has[c])
        snprintf(cell, sizeof cell, "%s",
                 c == SQLC_FULL && !sqlc.ok ? "n/a" : "-");
      else {
        fmt_val(v, sizeof v, r->v[c], r->unit);
        if (c == SQL_FULL || q <= 0)
          snprintf(cell, sizeof cell, "%s", v);
        else {
          fmt_ratio(x, sizeof x, q);
          snprintf(cell, sizeof cell, "%s (%s)", v, x);
        }
      }
      printf(" %17s", cell);
    }
    printf("%s%s\n", r->note[0] ? "  " : "", r->note);
  }
  printf("\n(Nx): ratio to SQLite FULL in this run. Times (us, ms): the "
         "speedup sqlite_full_time / time,\nabove 1 is faster. Rates "
         "(ops/s) and sizes (B, KiB): value / sqlite_full. -: not measured"
         "%s.\n",
         sqlc.ok ? "" : "; n/a: SQLCipher not measured (see above)");
  printf("\nTargets of the native engine (informative: a missed target is "
         "not a failure):\n");
  for (int i = 0; i < ntargets; i++) {
    const target *t = &targets[i];
    char got[32] = "-";
    if (t->status >= 0) {
      if (t->ref >= 0)
        fmt_ratio(got, sizeof got, t->got);
      else
        fmt_val(got, sizeof got, t->got, t->r->unit);
    }
    snprintf(line, sizeof line, "%s (%s), %s", t->r ? t->r->name : "?",
             t->r ? t->r->unit : "", cont_name[t->c]);
    printf("  %-60s %-26s %10s  %s\n", line, t->text, got,
           status_text(t->status));
  }
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

static void json_num_or_null(int has, double v) {
  if (has)
    printf("%.10g", v);
  else
    printf("null");
}

static void print_json(const cfg *g, const char *dir, double fsync_rate) {
  char line[8192];
  printf("{\n  \"reps\": %d,\n  \"quick\": %s,\n  \"large\": %s,\n"
         "  \"dir\": ",
         g->reps, g->quick ? "true" : "false", g->large ? "true" : "false");
  json_str(dir);
  printf(",\n  \"fdatasync_ops_per_s\": %.1f,\n  \"contenders\": [\n",
         fsync_rate);
  for (int c = 0; c < NCONT; c++) {
    printf("    {\"key\": \"%s\", \"name\": \"%s\", \"available\": %s, "
           "\"reason\": ",
           cont_key[c], cont_name[c],
           c != SQLC_FULL || sqlc.ok ? "true" : "false");
    if (c == SQLC_FULL && !sqlc.ok)
      json_str(sqlc.reason);
    else
      printf("null");
    printf(", \"about\": ");
    if (is_native(c))
      json_str(c == NAT_FULL ? "keyjournal native engine, KJ_SYNC_FULL"
                             : "keyjournal native engine, KJ_SYNC_NORMAL");
    else if (c == SQLC_FULL) {
      describe_sqlcipher(line, sizeof line);
      json_str(line);
    } else {
      describe_sqlite(line, sizeof line);
      json_str(line);
    }
    if (c == SQLC_FULL && sqlc.ok) {
      printf(", \"version\": ");
      json_str(sqlc.version);
      printf(", \"sqlite_version\": ");
      json_str(sqlc.sqlite);
      printf(", \"encrypted\": ");
      json_str(sqlc.encrypted);
    }
    printf("}%s\n", c + 1 < NCONT ? "," : "");
  }
  printf("  ],\n  \"figures\": [\n");
  for (int i = 0; i < nrows; i++) {
    const row *r = &rows[i];
    printf("    {\"id\": ");
    json_str(r->id);
    printf(", \"figure\": ");
    json_str(r->name);
    printf(", \"unit\": ");
    json_str(r->unit);
    printf(", \"ratio_kind\": \"%s\",\n     \"values\": {",
           r->rkind == R_SPEEDUP ? "speedup"
           : r->rkind == R_OVER  ? "value_over_sqlite_full"
                                 : "none");
    for (int c = 0; c < NCONT; c++) {
      printf("%s\"%s\": ", c ? ", " : "", cont_key[c]);
      json_num_or_null(r->has[c], r->v[c]);
    }
    printf("},\n     \"vs_sqlite_full\": {");
    for (int c = 0; c < NCONT; c++) {
      double q = ratio_to_sqlite(r, c);
      printf("%s\"%s\": ", c ? ", " : "", cont_key[c]);
      json_num_or_null(q > 0, q);
    }
    printf("}");
    if (r->note[0]) {
      printf(", \"note\": ");
      json_str(r->note);
    }
    printf("}%s\n", i + 1 < nrows ? "," : "");
  }
  printf("  ],\n  \"targets\": [\n");
  for (int i = 0; i < ntargets; i++) {
    const target *t = &targets[i];
    printf("    {\"figure\": ");
    json_str(t->r ? t->r->id : "?");
    printf(", \"contender\": \"%s\", \"reference\": ", cont_key[t->c]);
    if (t->ref >= 0)
      printf("\"%s\"", cont_key[t->ref]);
    else
      printf("null");
    printf(", \"target\": ");
    json_str(t->text);
    printf(", \"achieved\": ");
    json_num_or_null(t->status >= 0, t->got);
    printf(", \"status\": ");
    if (t->status < 0)
      printf("null");
    else
      json_str(status_text(t->status));
    printf("}%s\n", i + 1 < ntargets ? "," : "");
  }
  printf("  ]\n}\n");
}

#endif /* !KJ_BENCH_SQLCIPHER */

/* ---- main -------------------------------------------------------------- */

static int usage_to(FILE *to) {
  fprintf(to,
          "usage: %s [--reps N] [--quick] [--large] [--json] [DIR]\n"
          "  DIR default: $KJ_BENCH_DIR, $TMPDIR or /tmp\n",
          prog);
  return 2;
}

static int usage(void) { return usage_to(stderr); }

int kj_bench_main(int argc, char **argv, const char *sub) {
  subcmd = sub;
#ifdef KJ_BENCH_SQLCIPHER
  prog = "bench_sqlcipher";
#else
  prog = sub ? "keyjournal bench" : "bench_compare";
#endif
  if (argc == 4 && strcmp(argv[1], "--rss-child") == 0)
    return rss_child_main(argv[2], argv[3]);
  cfg g;
  memset(&g, 0, sizeof g);
  int sqlcipher_child_mode = 0;
  const char *dir = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--reps") == 0) {
      char *end;
      long n = i + 1 < argc ? strtol(argv[++i], &end, 10) : 0;
      if (n < 1 || n > 64 || *end) {
        fprintf(stderr, "%s: --reps takes 1..64\n", prog);
        return usage();
      }
      g.reps = (int)n;
    } else if (strcmp(argv[i], "--quick") == 0)
      g.quick = 1;
    else if (strcmp(argv[i], "--large") == 0)
      g.large = 1;
    else if (strcmp(argv[i], "--json") == 0)
      g.json = 1;
    else if (strcmp(argv[i], "--sqlcipher-child") == 0)
      sqlcipher_child_mode = 1;
    else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      usage_to(stdout);
      return 0;
    } else if (argv[i][0] == '-') {
      fprintf(stderr, "%s: unknown option %s\n", prog, argv[i]);
      return usage();
    } else if (!dir)
      dir = argv[i];
    else
      return usage();
  }
  quick = g.quick;
  if (!g.reps)
    g.reps = g.quick ? 1 : 5;
  g.b_commit = g.quick ? 0.02 : 0.4;
  g.b_thr = g.quick ? 0.05 : 0.5;
  g.b_misc = g.quick ? 0.02 : 0.25;
  long sizes[2][3] = {{10000, 100000, 1000000}, {500, 2000, 5000}};
  memcpy(g.sizes, sizes[g.quick], sizeof g.sizes);
  g.nsizes = g.large ? 3 : 2;
  progress_on = isatty(2);
  if (!dir)
    dir = getenv("KJ_BENCH_DIR");
  if (!dir)
    dir = getenv("TMPDIR");
  if (!dir)
    dir = "/tmp";

#ifdef KJ_BENCH_SQLCIPHER
  if (!sqlcipher_child_mode) {
    fprintf(stderr,
            "%s: the SQLCipher helper of bench_compare and `keyjournal "
            "bench`; run one of those\n",
            prog);
    return 2;
  }
  return sqlcipher_child(&g, dir);
#else
  if (sqlcipher_child_mode) {
    fprintf(stderr, "%s: --sqlcipher-child: this is not the helper\n", prog);
    return 2;
  }
  snprintf(base_dir, sizeof base_dir, "%s/kj-bench-compare.%ld", dir,
           (long)getpid());
  if (mkdir(base_dir, 0700) != 0)
    die("mkdir %s: %s", base_dir, strerror(errno));
  base_owner = getpid();

  double fs[64];
  for (int r = 0; r < g.reps; r++) {
    progress("rep %d/%d: fdatasync limit", r + 1, g.reps);
    fs[r] = m_fdatasync(g.b_commit);
    for (int c = 0; c < SQLC_FULL; c++)
      measure_rep(&g, c, r);
  }
  double fsync_rate = median(fs, g.reps);
  for (int c = 0; c < SQLC_FULL; c++)
    rep_medians(&g, c);
  measure_stores(&g, NAT_FULL);
  measure_stores(&g, SQL_FULL);
  run_sqlcipher(&g);
  long rss_base = child_rss("none", base_dir);
  rm_rf(base_dir);
  progress_end();

  build_rows(&g, fsync_rate, rss_base);
  if (g.json)
    print_json(&g, dir, fsync_rate);
  else
    print_text(&g, dir, fsync_rate);
  return fflush(stdout) ? 1 : 0;
#endif
}
