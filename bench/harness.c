/*
 * bench/harness.c - the machinery every figure of the benchmark shares.
 *
 * Owns how a run measures, independent of what it measures: recording the
 * first failure and turning it into the exit status, progress lines,
 * the clock, medians, the seeded generator, scratch directories and their
 * sizes, timed loops, the fork/exec helper that captures a child's stdout
 * (the SQLCipher helper, peak-RSS children), the peak-RSS children
 * themselves (this program re-executed with --rss-child), the disk's raw
 * fdatasync rate, and the options every mode parses. Kept apart from the
 * workloads (measure.c) and the contenders so that the SQLCipher helper
 * measures with exactly the same machinery as the main program.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

const char *const bench_cont_name[NCONT] = {"native FULL", "native NORMAL",
                                            "SQLite FULL", "SQLite NORMAL",
                                            "SQLCipher FULL"};
const char *const bench_cont_key[NCONT] = {"native_full", "native_normal",
                                           "sqlite_full", "sqlite_normal",
                                           "sqlcipher_full"};
const char *const bench_fig_key[NFIG] = {
    "commit",     "threads",   "get",       "prekey",     "ratchet",
    "open_j0",    "open_j1",   "open_j2",   "open_c0",    "open_c1",
    "open_c2",    "disk_j",    "disk_c",    "logical",    "rss_j",
    "rss_c",      "create",    "open_tiny", "open_cold0", "open_cold1",
    "open_cold2", "rss_reads", "ckpt_mbs",  "lat_p50",    "lat_p99",
    "lat_max",    "read_warm", "read_cold"};

const uint8_t bench_key[32] = {0x6b, 0x6a, 0x62, 0x63};

int bench_is_native(int c) { return c == NAT_FULL || c == NAT_NORMAL; }
int bench_is_normal(int c) { return c == NAT_NORMAL || c == SQL_NORMAL; }

/* ---- the run and its failures ------------------------------------------ */

bench_run *bench_run_new(const char *prog, const char *subcmd) {
  bench_run *r = calloc(1, sizeof *r);
  if (r == NULL)
    return NULL;
  r->prog = prog;
  r->subcmd = subcmd;
  bench_rng_seed(&r->rng, 0);
  return r;
}

void bench_run_free(bench_run *r) { free(r); }

int bench_errf(bench_err *e, const char *fmt, ...) {
  if (e->msg[0] != '\0')
    return BENCH_FAILED;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
  for (char *p = e->msg; *p; p++)
    if (*p == '\n' || *p == '\r')
      *p = ' ';
  if (e->msg[0] == '\0') /* a failure is never silent */
    snprintf(e->msg, sizeof e->msg, "failed");
  return BENCH_FAILED;
}

int bench_check(bench_err *e, int rc, kj_backend *b, const char *what) {
  if (rc == 0)
    return 0;
  return bench_errf(e, "%s: %s: %s", what, kj_strerror(rc),
                    b ? kj_backend_errmsg(b) : "");
}

int bench_exit_status(bench_run *r, int rc) {
  if (rc == 0)
    return 0;
  bench_progress_end(r);
  const char *msg = r->err.msg[0] ? r->err.msg : "failed";
  fprintf(stderr, "%s: %s\n", r->prog, msg);
  if (r->child_mode) {
    printf("error %s\n", msg);
    fflush(stdout);
  }
  if (r->base_dir[0] && r->base_owner == getpid())
    bench_rm_rf(r->base_dir);
  return 1;
}

/* ---- progress, clock, medians, generator ------------------------------- */

void bench_progress(const bench_run *r, const char *fmt, ...) {
  if (!r->progress_on)
    return;
  char line[200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\r\033[K[bench] %s", line);
  fflush(stderr);
}

void bench_progress_end(const bench_run *r) {
  if (r->progress_on)
    fprintf(stderr, "\r\033[K");
}

void bench_json_str(const char *s) {
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

double bench_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

double bench_median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void bench_fill_random(bench_rng *g, uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = bench_rng_next(g);
    memcpy(p + i, &v, n - i < 8 ? n - i : 8);
  }
}

/* ---- scratch directories ----------------------------------------------- */

static int rm_cb(const char *p, const struct stat *st, int flag,
                 struct FTW *f) {
  (void)st;
  (void)flag;
  (void)f;
  return remove(p);
}

void bench_rm_rf(const char *path) {
  struct stat st;
  if (lstat(path, &st) == 0)
    nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Regular files count, symbolic links are not followed: what nftw with
 * FTW_PHYS reports as FTW_F. A walk of our own because nftw's callback
 * cannot carry the sum without a global. */
static void add_disk_bytes(const char *path, uint64_t *sum, int drop) {
  struct stat st;
  if (lstat(path, &st) != 0 || S_ISLNK(st.st_mode))
    return;
  if (!S_ISDIR(st.st_mode)) {
    *sum += (uint64_t)st.st_size;
    int fd = drop && S_ISREG(st.st_mode) ? open(path, O_RDONLY) : -1;
    if (fd >= 0) {
      (void)fdatasync(fd); /* dirty pages are not dropped */
      (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
      close(fd);
    }
    return;
  }
  DIR *d = opendir(path);
  if (d == NULL)
    return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    char sub[4608];
    int n = snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
    if (n > 0 && (size_t)n < sizeof sub)
      add_disk_bytes(sub, sum, drop);
  }
  closedir(d);
}

uint64_t bench_disk_bytes(const char *path) {
  uint64_t sum = 0;
  add_disk_bytes(path, &sum, 0);
  return sum;
}

void bench_drop_cache(const char *path) {
  uint64_t sum = 0;
  add_disk_bytes(path, &sum, 1);
}

/* ---- timed loops ------------------------------------------------------- */

typedef struct thr {
  bench_op_fn op;
  void *ctx;
  atomic_int *stop;
  long ops;
} thr;

static void *thr_main(void *v) {
  thr *a = v;
  long n = 0;
  while (!atomic_load(a->stop))
    if (a->op(a->ctx, n++) != 0)
      break;
  a->ops = n;
  return NULL;
}

int bench_threads(bench_run *r, int n, bench_op_fn op, void *const *ctx,
                  double budget, double *ops_per_s) {
  thr *ta = calloc((size_t)n, sizeof *ta);
  pthread_t *th = calloc((size_t)n, sizeof *th);
  if (!ta || !th) {
    free(ta);
    free(th);
    return bench_errf(&r->err, "out of memory");
  }
  atomic_int stop = 0;
  int started = 0, rc = 0;
  double t0 = bench_now();
  for (; started < n; started++) {
    ta[started] = (thr){op, ctx[started], &stop, 0};
    if (pthread_create(&th[started], NULL, thr_main, &ta[started])) {
      rc = bench_errf(&r->err, "pthread_create failed");
      break;
    }
  }
  if (rc == 0) {
    struct timespec ts = {(time_t)budget,
                          (long)((budget - (double)(time_t)budget) * 1e9)};
    nanosleep(&ts, NULL);
  }
  atomic_store(&stop, 1);
  long total = 0;
  for (int t = 0; t < started; t++) {
    pthread_join(th[t], NULL);
    total += ta[t].ops;
  }
  *ops_per_s = (double)total / (bench_now() - t0);
  free(ta);
  free(th);
  return rc;
}

int bench_timed_loop(const bench_run *r, bench_op_fn f, void *ctx,
                     double budget, long min_ops, long max_ops,
                     double *sec_per_op) {
  if (r->cfg.quick && min_ops > 5)
    min_ops = 5;
  double t0 = bench_now(), t = t0;
  long n = 0;
  while (n < max_ops && (n < min_ops || t - t0 < budget)) {
    if (f(ctx, n++) != 0)
      return BENCH_FAILED;
    if ((n & 7) == 0 || n < 64)
      t = bench_now();
  }
  t = bench_now();
  *sec_per_op = (t - t0) / (double)n;
  return 0;
}

/* ---- child processes --------------------------------------------------- */

int bench_run_capture(bench_run *r, const char *const *argv, int *st,
                      char **out) {
  int fd[2];
  *out = NULL;
  if (pipe(fd))
    return bench_errf(&r->err, "pipe: %s", strerror(errno));
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(fd[0]);
    close(fd[1]);
    return bench_errf(&r->err, "fork: %s", strerror(e));
  }
  if (pid == 0) {
    close(fd[0]);
    if (dup2(fd[1], 1) < 0)
      _exit(127);
    execv(argv[0], (char *const *)argv);
    fprintf(stderr, "%s: exec %s: %s\n", r->prog, argv[0], strerror(errno));
    printf("error exec %s: %s\n", argv[0], strerror(errno));
    fflush(stdout);
    _exit(127);
  }
  close(fd[1]);
  size_t len = 0, cap = 4096;
  char *buf = malloc(cap);
  ssize_t k;
  while (buf && (k = read(fd[0], buf + len, cap - len - 1)) > 0) {
    len += (size_t)k;
    if (cap - len < 1024) {
      char *o = realloc(buf, cap *= 2);
      if (!o)
        free(buf);
      buf = o;
    }
  }
  close(fd[0]);
  if (waitpid(pid, st, 0) != pid) {
    int e = errno;
    free(buf);
    return bench_errf(&r->err, "waitpid: %s", strerror(e));
  }
  if (!buf)
    return bench_errf(&r->err, "out of memory");
  buf[len] = 0;
  *out = buf;
  return 0;
}

/* The child reports its own VmHWM (/proc/self/status) through a pipe: the
 * ru_maxrss of a child would include the parent's RSS at fork, which Linux
 * carries across exec. */
int bench_child_rss(bench_run *r, const char *kind, const char *dir,
                    long *kib) {
  if (!r->exe[0]) {
    ssize_t n = readlink("/proc/self/exe", r->exe, sizeof r->exe - 1);
    if (n <= 0)
      return bench_errf(&r->err, "readlink /proc/self/exe: %s",
                        strerror(errno));
    r->exe[n] = 0;
  }
  const char *sub = r->subcmd;
  const char *argv[] = {
      r->exe,           sub ? sub : "--rss-child", sub ? "--rss-child" : kind,
      sub ? kind : dir, sub ? dir : NULL,          NULL};
  int st;
  char *buf;
  if (bench_run_capture(r, argv, &st, &buf) != 0)
    return BENCH_FAILED;
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    free(buf);
    return bench_errf(&r->err, "rss child (%s) failed", kind);
  }
  *kib = strtol(buf, NULL, 10);
  free(buf);
  if (*kib <= 0)
    return bench_errf(&r->err, "rss child (%s) reported no VmHWM", kind);
  return 0;
}

/* ---- the disk ---------------------------------------------------------- */

/* 512 B pwrite over a preallocated, zero-filled and synced file, then
 * fdatasync: the physical limit of a durable commit. */
int bench_fdatasync_rate(bench_run *r, double budget, double *rate) {
  char path[4200];
  snprintf(path, sizeof path, "%s/fdatasync.probe", r->base_dir);
  const size_t zlen = 1 << 16;
  uint8_t *zero = calloc(1, zlen);
  if (zero == NULL)
    return bench_errf(&r->err, "out of memory");
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) {
    free(zero);
    return bench_errf(&r->err, "open %s: %s", path, strerror(errno));
  }
  int rc = 0;
  const long size = r->cfg.quick ? 1l << 20 : 16l << 20;
  for (long off = 0; rc == 0 && off < size; off += (long)zlen)
    if (pwrite(fd, zero, zlen, off) != (ssize_t)zlen)
      rc = bench_errf(&r->err, "pwrite: %s", strerror(errno));
  free(zero);
  if (rc == 0 && fsync(fd))
    rc = bench_errf(&r->err, "fsync: %s", strerror(errno));
  uint8_t buf[512];
  bench_fill_random(&r->rng, buf, sizeof buf);
  double t0 = bench_now(), t = t0;
  long n = 0;
  while (rc == 0 && (n < (r->cfg.quick ? 5 : 20) || t - t0 < budget)) {
    off_t off = (off_t)((n * 512) % size);
    if (pwrite(fd, buf, sizeof buf, off) != (ssize_t)sizeof buf)
      rc = bench_errf(&r->err, "pwrite: %s", strerror(errno));
    else if (fdatasync(fd))
      rc = bench_errf(&r->err, "fdatasync: %s", strerror(errno));
    n++;
    t = bench_now();
  }
  close(fd);
  unlink(path);
  if (rc == 0)
    *rate = (double)n / (t - t0);
  return rc;
}

/* ---- options ----------------------------------------------------------- */

static int usage_to(const bench_run *r, FILE *to) {
  fprintf(to,
          "usage: %s [--reps N] [--quick] [--large] [--json] [DIR]\n"
          "  DIR default: $KJ_BENCH_DIR, $TMPDIR or /tmp\n",
          r->prog);
  return 2;
}

int bench_parse_args(bench_run *r, int argc, char **argv, const char **dir,
                     int *sqlcipher_child) {
  bench_cfg *g = &r->cfg;
  memset(g, 0, sizeof *g);
  *sqlcipher_child = 0;
  *dir = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--reps") == 0) {
      char *end = NULL;
      long n = i + 1 < argc ? strtol(argv[++i], &end, 10) : 0;
      if (n < 1 || n > BENCH_MAXREPS || *end) {
        fprintf(stderr, "%s: --reps takes 1..%d\n", r->prog, BENCH_MAXREPS);
        return usage_to(r, stderr);
      }
      g->reps = (int)n;
    } else if (strcmp(argv[i], "--quick") == 0)
      g->quick = 1;
    else if (strcmp(argv[i], "--large") == 0)
      g->large = 1;
    else if (strcmp(argv[i], "--json") == 0)
      g->json = 1;
    else if (strcmp(argv[i], "--sqlcipher-child") == 0)
      *sqlcipher_child = 1;
    else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      usage_to(r, stdout);
      return 0;
    } else if (argv[i][0] == '-') {
      fprintf(stderr, "%s: unknown option %s\n", r->prog, argv[i]);
      return usage_to(r, stderr);
    } else if (!*dir)
      *dir = argv[i];
    else
      return usage_to(r, stderr);
  }
  if (!g->reps)
    g->reps = g->quick ? 1 : 5;
  g->b_commit = g->quick ? 0.02 : 0.4;
  g->b_thr = g->quick ? 0.05 : 0.5;
  g->b_misc = g->quick ? 0.02 : 0.25;
  static const long sizes[2][3] = {{10000, 100000, 1000000}, {500, 2000, 5000}};
  memcpy(g->sizes, sizes[g->quick], sizeof g->sizes);
  g->nsizes = g->large ? 3 : 2;
  r->progress_on = isatty(2);
  if (!*dir)
    *dir = getenv("KJ_BENCH_DIR");
  if (!*dir)
    *dir = getenv("TMPDIR");
  if (!*dir)
    *dir = "/tmp";
  return -1;
}

void bench_put_fig(bench_run *r, int c, int f, double v) {
  r->fig[c][f] = v;
  r->has_fig[c][f] = 1;
}
