/*
 * tests/test_group_commit.c - group commit of KJ_SYNC_FULL commits
 * (doc/FORMAT.md 4.4, include/keyjournal/store.h "Threads").
 *
 * The store runs on a wrapper around the counting VFS of testutil whose
 * sync can sleep before it syncs, and can hold the next sync until a given
 * number of frames were appended ("gate", read from kj_stats.last_seq:
 * frames appended while a sync runs are held in memory and written by the
 * next sync's leader, FORMAT.md 4.4). A gated sync that sees 7 more frames
 * appended while it waits proves that the writer lock is not held across
 * the sync; the number of syncs then shows the frames shared one. Nothing
 * here asserts on timing: the sleeps only make overlap likely, the gates
 * make it certain, and the assertions hold whatever the interleaving.
 *
 *  1. 8 threads x N durable commits: all succeed, fewer syncs than
 *     commits, every row after reopen;
 *  2. one gated round: 8 commits in at most 2 syncs;
 *  3. a failing sync with 8 committers waiting on it: all fail with an
 *     I/O error, none of their rows stays visible, the handle is
 *     poisoned, reopen keeps everything acknowledged before;
 *  4. a sync that fails in the middle of 8 looping writers: each stops
 *     with KJ_EIO or KJ_EPOISONED, the handle shows exactly the
 *     acknowledged commits, reopen keeps all of them;
 *  5. roll-overs, automatic snapshots, kj_store_sync, kj_store_checkpoint
 *     and a reader while 8 threads commit: nothing fails, reopen holds
 *     every row;
 *  6. one thread alone: one sync per commit (acknowledged = durable);
 *  7. KJ_SYNC_NORMAL with 8 threads: every commit kept by a clean close;
 *  8. SIGKILL of a process whose 8 threads commit: the reopened store
 *     holds every commit reported acknowledged, each thread's rows a
 *     prefix of what it wrote.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keyjournal/store.h"
#include "keyjournal/sys/vfs.h"
#include "tap.h"
#include "testutil.h"

#define NTHREADS 8
#define TABLE 1
#define VALUE_BYTES 512
#define GATE_TIMEOUT_MS 20000

/* ---- the VFS: testutil's counting VFS, with a slow, gateable sync ------ */

typedef struct gc_vfs {
  kj_vfs vfs; /* what the store uses: tv's methods, sync replaced */
  tu_vfs tv;  /* counts and fails calls */
  atomic_uint delay_us;
  /* When gate_seq != 0, the next sync first waits until gate_store's
   * newest frame (kj_stats.last_seq) reaches it (or GATE_TIMEOUT_MS
   * pass). */
  atomic_ullong gate_seq;
  kj_store *_Atomic gate_store;
  /* VFS writes made while the gated sync waited (FORMAT.md 4.4: frames
   * appended during a sync are held, none is written into the file). */
  atomic_ullong gate_writes_during;
  atomic_int gate_reached, gate_timed_out;
} gc_vfs;

static gc_vfs *gc_of(void *ctx) {
  return (gc_vfs *)(void *)((char *)ctx - offsetof(gc_vfs, tv));
}

static int gc_sync(void *ctx, kj_vfs_file *f) {
  gc_vfs *g = gc_of(ctx);
  uint64_t want = atomic_exchange(&g->gate_seq, 0);
  if (want) {
    uint64_t w0 = tu_vfs_calls(&g->tv, TU_WRITE);
    int64_t t0 = tu_now_ms();
    for (;;) {
      kj_stats st = KJ_STATS_INIT;
      kj_store_stats(atomic_load(&g->gate_store), &st);
      if (st.last_seq >= want)
        break;
      if (tu_now_ms() - t0 > GATE_TIMEOUT_MS) {
        atomic_store(&g->gate_timed_out, 1);
        break;
      }
      tu_sleep_ms(1);
    }
    if (!atomic_load(&g->gate_timed_out))
      atomic_store(&g->gate_reached, 1);
    atomic_store(&g->gate_writes_during, tu_vfs_calls(&g->tv, TU_WRITE) - w0);
  }
  unsigned us = atomic_load(&g->delay_us);
  if (us)
    usleep(us);
  return g->tv.vfs.sync(ctx, f);
}

static void gc_init(gc_vfs *g) {
  memset(g, 0, sizeof *g);
  tu_vfs_init(&g->tv);
  g->vfs = g->tv.vfs; /* ctx stays &g->tv */
  g->vfs.sync = gc_sync;
}

/* Hold the next sync until s holds n more frames. */
static void gc_gate(gc_vfs *g, kj_store *s, uint64_t n) {
  kj_stats st = KJ_STATS_INIT;
  kj_store_stats(s, &st);
  atomic_store(&g->gate_reached, 0);
  atomic_store(&g->gate_timed_out, 0);
  atomic_store(&g->gate_store, s);
  atomic_store(&g->gate_seq, st.last_seq + n);
}

/* ---- helpers ------------------------------------------------------------ */

static void opts(kj_options *o, gc_vfs *g, kj_sync mode) {
  tu_options(o);
  o->sync = mode;
  o->vfs = g ? &g->vfs : NULL;
  o->segment_bytes = 4u << 20; /* no roll-over unless a test wants one */
  o->snapshot_threshold = UINT64_MAX;
}

/* Row i of a thread: its key into k[n], its VALUE_BYTES value into v. */
static void row_of(char *k, size_t n, uint8_t *v, int thread, int i) {
  snprintf(k, n, "t%d-%05d", thread, i);
  for (int j = 0; j < VALUE_BYTES; j++)
    v[j] = (uint8_t)(thread * 31 + i * 7 + j);
}

static int put_row(kj_store *s, int thread, int i) {
  char k[32];
  uint8_t v[VALUE_BYTES];
  row_of(k, sizeof k, v, thread, i);
  return kj_put(s, NULL, TABLE, k, strlen(k), v, sizeof v);
}

/* 1 row present with the right value, 0 absent, -1 wrong or error. */
static int row_state(kj_store *s, int thread, int i) {
  char k[32];
  uint8_t v[VALUE_BYTES];
  row_of(k, sizeof k, v, thread, i);
  void *got = NULL;
  size_t gl = 0;
  int rc = kj_get(s, NULL, TABLE, k, strlen(k), &got, &gl);
  int st = rc == KJ_NOTFOUND                                      ? 0
           : rc == KJ_OK && gl == sizeof v && !memcmp(got, v, gl) ? 1
                                                                  : -1;
  kj_free(got);
  return st;
}

static uint64_t rows_of(kj_store *s) {
  uint64_t rows = 0;
  kj_table_count(s, TABLE, &rows, NULL);
  return rows;
}

static kj_stats stats_of(kj_store *s) {
  kj_stats st = KJ_STATS_INIT;
  kj_store_stats(s, &st);
  return st;
}

/* ---- writer threads ----------------------------------------------------- */

typedef struct run {
  kj_store *s;
  int first;         /* each thread writes rows first..first+commits-1 */
  int commits;       /* per thread */
  int stop_on_error; /* stop at the first failure */
  pthread_barrier_t start;
  /* per thread, read after the join */
  int acked[NTHREADS];     /* rows first..first+acked-1 returned KJ_OK */
  int first_err[NTHREADS]; /* status of the first failure, 0 if none */
  int errors[NTHREADS];
  int bad_status[NTHREADS]; /* failures other than EIO/ENOSPC/EPOISONED */
} run;

typedef struct warg {
  run *r;
  int id;
} warg;

static void *writer_main(void *p) {
  warg *a = p;
  run *r = a->r;
  pthread_barrier_wait(&r->start);
  for (int k = 0; k < r->commits; k++) {
    int rc = put_row(r->s, a->id, r->first + k);
    if (rc == KJ_OK) {
      if (!r->errors[a->id])
        r->acked[a->id] = k + 1;
      continue;
    }
    if (!r->first_err[a->id])
      r->first_err[a->id] = rc;
    if (rc != KJ_EIO && rc != KJ_ENOSPC && rc != KJ_EPOISONED)
      r->bad_status[a->id]++;
    r->errors[a->id]++;
    if (r->stop_on_error)
      break;
  }
  return NULL;
}

/* Start NTHREADS writers and `helpers` helper threads (which must wait on
 * r->start first) together; join the writers (helpers are the caller's). */
static void start_threads(run *r, pthread_t *th, warg *wa, int helpers,
                          void *(*helper)(void *), void *hargs, size_t hsize,
                          pthread_t *ht) {
  pthread_barrier_init(&r->start, NULL, (unsigned)(NTHREADS + helpers));
  for (int h = 0; h < helpers; h++)
    if (pthread_create(&ht[h], NULL, helper, (char *)hargs + h * hsize) != 0)
      abort(); /* the others would wait on the barrier forever */
  for (int t = 0; t < NTHREADS; t++) {
    wa[t].r = r;
    wa[t].id = t;
    if (pthread_create(&th[t], NULL, writer_main, &wa[t]) != 0)
      abort();
  }
  for (int t = 0; t < NTHREADS; t++)
    pthread_join(th[t], NULL);
}

static void run_writers(run *r) {
  pthread_t th[NTHREADS];
  warg wa[NTHREADS];
  start_threads(r, th, wa, 0, NULL, NULL, 0, NULL);
}

static run *run_new(kj_store *s, int first, int commits) {
  run *r = calloc(1, sizeof *r);
  if (!r)
    abort();
  r->s = s;
  r->first = first;
  r->commits = commits;
  return r;
}

static void run_free(run *r) {
  pthread_barrier_destroy(&r->start);
  free(r);
}

/* The sum over the threads of a per-thread field of a run. */
static int total(const int per_thread[NTHREADS]) {
  int n = 0;
  for (int t = 0; t < NTHREADS; t++)
    n += per_thread[t];
  return n;
}

/* Problems among the rows r wrote: an acknowledged row missing or wrong;
 * with exact, also an unacknowledged row present; without, a present
 * unacknowledged row with a wrong value. *extra receives how many
 * unacknowledged rows are present. */
static int check_rows(kj_store *s, const run *r, int exact, int *extra) {
  int bad = 0, more = 0;
  for (int t = 0; t < NTHREADS; t++)
    for (int k = 0; k < r->commits; k++) {
      int st = row_state(s, t, r->first + k);
      int acked = k < r->acked[t];
      if (!acked && st == 1)
        more++;
      if (st < 0 || (acked && st != 1) || (exact && !acked && st != 0)) {
        if (bad < 5)
          printf("# row t%d-%05d: state %d, acknowledged %d\n", t, r->first + k,
                 st, acked);
        bad++;
      }
    }
  if (extra)
    *extra = more;
  return bad;
}

/* ---- the fixture: a temp dir, the VFS and the store of one test --------- */

typedef struct fx {
  const char *what; /* the prefix of the test's TAP descriptions */
  char *dir;
  gc_vfs g;
  kj_options o; /* what fx_open uses: the test may change them first */
  kj_store *s;  /* the open store or NULL; fx_done closes it */
} fx;

/* A temp dir, the VFS, and options for mode on that VFS. */
static void fx_init(fx *f, const char *what, kj_sync mode) {
  f->what = what;
  f->dir = tu_mkdtemp();
  gc_init(&f->g);
  opts(&f->o, &f->g, mode);
  f->s = NULL;
}

static kj_store *fx_open(fx *f) {
  f->s = tu_store_open_ok(f->dir, &f->o, f->what);
  return f->s;
}

/* Close the store; with checked, the close must succeed (a poisoned
 * handle's close status is unspecified: pass 0). */
static void fx_close(fx *f, int checked) {
  int rc = kj_store_close(f->s);
  f->s = NULL;
  if (checked)
    is(rc, KJ_OK, "%s: close", f->what);
}

/* fx_close, then open the directory again on the plain VFS. */
static kj_store *fx_reopen(fx *f, kj_sync mode, int checked) {
  fx_close(f, checked);
  kj_options p;
  opts(&p, NULL, mode);
  f->s = tu_store_open_ok(f->dir, &p, f->what);
  return f->s;
}

/* fx_reopen after a clean run; then the store must hold exactly the rows
 * r acknowledged, `want` of them, each with its value. */
static void fx_reopen_exact(fx *f, kj_sync mode, const run *r, uint64_t want) {
  if (!fx_reopen(f, mode, 1))
    return;
  is(rows_of(f->s), want, "%s: every row after reopen", f->what);
  is(check_rows(f->s, r, 1, NULL), 0, "%s: every value after reopen", f->what);
}

/* After the reopen that follows a failure: every row r acknowledged is
 * there, the failed ones whole or absent (desc), and the store holds
 * `known` rows besides the failed ones that reached the disk. */
static void check_failed_rows(fx *f, const run *r, uint64_t known,
                              const char *desc) {
  int extra = 0;
  is(check_rows(f->s, r, 0, &extra), 0, "%s: %s", f->what, desc);
  printf("# %s: %d of the failed commits are on disk\n", f->what, extra);
  is(rows_of(f->s), known + (uint64_t)extra, "%s: no other row", f->what);
}

/* Run r's writers on the fixture; the number of syncs they caused. */
static uint64_t fx_run_writers(fx *f, run *r) {
  uint64_t syncs0 = tu_vfs_calls(&f->g.tv, TU_SYNC);
  run_writers(r);
  return tu_vfs_calls(&f->g.tv, TU_SYNC) - syncs0;
}

static void fx_done(fx *f) {
  if (f->s)
    kj_store_close(f->s);
  tu_vfs_destroy(&f->g.tv);
  tu_rmrf(f->dir);
  free(f->dir);
}

/* Run test fn on a fixture: fx_init(what, mode), its options changed by
 * tune if given, fx_open (fn does not run if that failed), then fx_done. */
static void fx_run(const char *what, kj_sync mode, void (*tune)(kj_options *o),
                   void (*fn)(fx *f)) {
  fx f;
  fx_init(&f, what, mode);
  if (tune != NULL)
    tune(&f.o);
  if (fx_open(&f))
    fn(&f);
  fx_done(&f);
}

/* ---- 1. many overlapping durable commits -------------------------------- */

static void test_overlap(fx *f) {
  const char *what = f->what;
  atomic_store(&f->g.delay_us, 1500); /* commits pile up behind each sync */
  run *r = run_new(f->s, 0, 60);
  kj_stats st0 = stats_of(f->s);
  uint64_t syncs = fx_run_writers(f, r);
  kj_stats st = stats_of(f->s);
  const int want = NTHREADS * r->commits;
  is(total(r->errors), 0, "%s: every commit succeeded", what);
  is(total(r->acked), want, "%s: %d commits acknowledged", what, want);
  is(st.commits - st0.commits, want, "%s: stats.commits", what);
  printf("# %s: %d commits, %llu syncs\n", what, want,
         (unsigned long long)syncs);
  ok(syncs < (uint64_t)want,
     "%s: fewer syncs than commits (%llu < %d): commits shared a sync", what,
     (unsigned long long)syncs, want);
  /* A roll-over syncs two more files (the new segment, then the store
   * header's record of it) besides its sync of the old segment; and a
   * segment made ahead (for each roll-over, and the next one: FORMAT.md 4)
   * is synced every 2 MiB and at its end, in a thread of its own that may
   * still be at work. */
  uint64_t rolls = st.segments - st0.segments;
  uint64_t counted = st.syncs - st0.syncs + 2 * rolls;
  uint64_t ahead = (rolls + 1) * ((f->o.segment_bytes >> 21) + 1);
  ok(syncs >= counted && syncs <= counted + ahead,
     "%s: stats.syncs counts the same (%llu, with 2 more for each of %llu "
     "roll-overs; the file system saw %llu, at most %llu more for segments "
     "made ahead)",
     what, (unsigned long long)counted, (unsigned long long)rolls,
     (unsigned long long)syncs, (unsigned long long)ahead);
  is(rows_of(f->s), want, "%s: every row in the handle", what);
  atomic_store(&f->g.delay_us, 0);
  fx_reopen_exact(f, KJ_SYNC_FULL, r, want);
  run_free(r);
}

/* ---- 2. a gated round: 8 commits, 2 syncs ------------------------------- */

static void test_gated(fx *f) {
  const char *what = f->what;
  run *r = run_new(f->s, 0, 1);
  /* The first commit's sync waits until all 8 frames are written: that
   * needs the writer lock to be free while a sync runs. */
  gc_gate(&f->g, f->s, NTHREADS);
  uint64_t syncs = fx_run_writers(f, r);
  is(atomic_load(&f->g.gate_timed_out), 0,
     "%s: the other 7 frames were appended before the first sync returned",
     what);
  is(atomic_load(&f->g.gate_reached), 1, "%s: the gate opened", what);
  is(atomic_load(&f->g.gate_writes_during), 0,
     "%s: none of them was written into the file during the sync", what);
  is(total(r->acked), NTHREADS, "%s: all %d commits succeeded", what, NTHREADS);
  /* The first sync covers the leader's frame and any written before it
   * began (possibly all 8); the next leader's covers all the rest. */
  ok(syncs >= 1 && syncs <= 2, "%s: %d commits in at most 2 syncs (%llu)", what,
     NTHREADS, (unsigned long long)syncs);
  fx_reopen_exact(f, KJ_SYNC_FULL, r, NTHREADS);
  run_free(r);
}

/* ---- 3. a failing shared sync with 8 committers on it ------------------- */

static void test_failed_group(fx *f) {
  const char *what = f->what;
  run *before = run_new(f->s, 0, 5);
  run_writers(before);
  is(total(before->acked), 5 * NTHREADS, "%s: commits before the failure",
     what);
  char *good = tu_dump_store(f->s);

  /* 8 commits whose frames are all written while the first sync, which
   * fails, is running. */
  run *r = run_new(f->s, 5, 1);
  gc_gate(&f->g, f->s, NTHREADS);
  tu_vfs_arm(&f->g.tv, TU_SYNC, 1, KJ_EIO, TU_ARM_ONCE);
  run_writers(r);
  tu_vfs_disarm(&f->g.tv);
  is(atomic_load(&f->g.gate_timed_out), 0,
     "%s: every frame was appended before the sync failed", what);
  is(total(r->acked), 0, "%s: no commit of the failed group succeeded", what);
  int eio = 0;
  for (int t = 0; t < NTHREADS; t++)
    eio += r->first_err[t] == KJ_EIO;
  is(eio, NTHREADS, "%s: each of the %d committers got KJ_EIO", what, NTHREADS);
  kj_stats st = stats_of(f->s);
  is(st.poisoned, 1, "%s: the handle is poisoned", what);
  is(st.commits, 5 * NTHREADS, "%s: stats.commits counts only successes", what);
  is(put_row(f->s, 0, 99), KJ_EPOISONED, "%s: a later commit: KJ_EPOISONED",
     what);
  ok(kj_store_errmsg(f->s)[0] != '\0', "%s: errmsg set", what);
  char *now = tu_dump_store(f->s);
  ok(tu_same_dump(good, now),
     "%s: the handle shows exactly the acknowledged commits", what);
  free(now);

  /* the close of a poisoned handle: status unspecified, unchecked */
  if (fx_reopen(f, KJ_SYNC_FULL, 0)) {
    is(stats_of(f->s).poisoned, 0, "%s: reopened handle not poisoned", what);
    is(check_rows(f->s, before, 1, NULL), 0,
       "%s: every acknowledged commit after reopen", what);
    check_failed_rows(f, r, 5 * NTHREADS,
                      "failed commits after reopen are absent or whole");
    is(put_row(f->s, 0, 99), KJ_OK, "%s: writes work again", what);
  }
  free(good);
  run_free(before);
  run_free(r);
}

/* ---- 4. a sync failing while 8 writers loop ----------------------------- */

static void test_failed_loop(int status) {
  char what[64];
  snprintf(what, sizeof what, "failing loop %s", kj_strerror(status));
  fx f;
  fx_init(&f, what, KJ_SYNC_FULL);
  if (!fx_open(&f))
    goto out;
  atomic_store(&f.g.delay_us, 1000);
  run *r = run_new(f.s, 0, 200);
  r->stop_on_error = 1;
  tu_vfs_arm(&f.g.tv, TU_SYNC, 15, status, TU_ARM_PERSIST);
  run_writers(r);
  tu_vfs_disarm(&f.g.tv);
  atomic_store(&f.g.delay_us, 0);
  int stopped = 0, synced_err = 0;
  for (int t = 0; t < NTHREADS; t++) {
    stopped += r->errors[t] == 1;
    synced_err += r->first_err[t] == status;
  }
  is(stopped, NTHREADS, "%s: every writer met the failure", what);
  is(total(r->bad_status), 0, "%s: each got %s or KJ_EPOISONED", what,
     kj_strerror(status));
  ok(synced_err >= 1, "%s: %d committer(s) got the sync's own status", what,
     synced_err);
  const int acked = total(r->acked);
  printf("# %s: %d commits acknowledged before the failure\n", what, acked);
  kj_stats st = stats_of(f.s);
  is(st.poisoned, 1, "%s: the handle is poisoned", what);
  is(st.commits, acked, "%s: stats.commits = acknowledged", what);
  is(check_rows(f.s, r, 1, NULL), 0,
     "%s: the handle shows exactly the acknowledged commits", what);
  is(rows_of(f.s), acked, "%s: and no other row", what);

  /* the close of a poisoned handle: status unspecified, unchecked */
  if (fx_reopen(&f, KJ_SYNC_FULL, 0))
    check_failed_rows(&f, r, (uint64_t)acked,
                      "after reopen every acknowledged commit is there, the "
                      "failed ones whole or absent");
  run_free(r);
out:
  fx_done(&f);
}

/* ---- 5. roll-overs, snapshots, syncs and a reader under load ------------- */

typedef struct helper_arg {
  run *r;
  atomic_int *stop;
  atomic_int errors, calls;
  int kind; /* 0: kj_store_sync / checkpoint, 1: reader */
} helper_arg;

static int count_cb(void *arg, const void *key, size_t klen, const void *val,
                    size_t vlen) {
  (void)key;
  (void)klen;
  (void)val;
  *(uint64_t *)arg += vlen == VALUE_BYTES;
  return 0;
}

static void *helper_main(void *p) {
  helper_arg *h = p;
  pthread_barrier_wait(&h->r->start);
  uint64_t last = 0;
  int i = 0;
  while (!atomic_load(h->stop)) {
    if (h->kind == 0) {
      int rc =
          (++i % 8) ? kj_store_sync(h->r->s) : kj_store_checkpoint(h->r->s);
      if (rc != KJ_OK)
        atomic_fetch_add(&h->errors, 1);
      tu_sleep_ms(2);
    } else {
      uint64_t n = 0;
      if (kj_scan_prefix(h->r->s, NULL, TABLE, NULL, 0, count_cb, &n) !=
              KJ_OK ||
          n < last)
        atomic_fetch_add(&h->errors, 1);
      last = n;
      tu_sleep_ms(1); /* let the writers in now and then */
    }
    atomic_fetch_add(&h->calls, 1);
  }
  return NULL;
}

static void busy_options(kj_options *o) {
  o->segment_bytes = 16 * 1024;      /* a roll-over every ~25 commits */
  o->snapshot_threshold = 96 * 1024; /* and automatic snapshots */
}

static void test_busy(fx *f) {
  const char *what = f->what;
  atomic_store(&f->g.delay_us, 500);
  run *r = run_new(f->s, 0, 80);
  atomic_int stop = 0;
  helper_arg ha[2];
  memset(ha, 0, sizeof ha);
  pthread_t ht[2];
  for (int h = 0; h < 2; h++) {
    ha[h].r = r;
    ha[h].stop = &stop;
    ha[h].kind = h;
  }
  pthread_t th[NTHREADS];
  warg wa[NTHREADS];
  start_threads(r, th, wa, 2, helper_main, ha, sizeof ha[0], ht);
  atomic_store(&stop, 1);
  for (int h = 0; h < 2; h++)
    pthread_join(ht[h], NULL);
  atomic_store(&f->g.delay_us, 0);
  const int want = NTHREADS * r->commits;
  is(total(r->errors), 0, "%s: every commit succeeded", what);
  is(atomic_load(&ha[0].errors), 0, "%s: kj_store_sync/checkpoint succeeded",
     what);
  is(atomic_load(&ha[1].errors), 0, "%s: reader scans fine, never shrink",
     what);
  kj_stats st = stats_of(f->s);
  printf("# %s: %llu syncs, %llu snapshots, %d sync/checkpoint calls, %d "
         "scans\n",
         what, (unsigned long long)st.syncs,
         (unsigned long long)st.snapshots_written, atomic_load(&ha[0].calls),
         atomic_load(&ha[1].calls));
  ok(st.snapshots_written >= 1, "%s: snapshots were written", what);
  is(st.poisoned, 0, "%s: not poisoned", what);
  is(st.commits, want, "%s: stats.commits", what);
  is(rows_of(f->s), want, "%s: every row in the handle", what);
  char *before = tu_dump_store(f->s);
  if (fx_reopen(f, KJ_SYNC_FULL, 1)) {
    char *after = tu_dump_store(f->s);
    ok(tu_same_dump(before, after), "%s: reopen holds the same rows", what);
    is(check_rows(f->s, r, 1, NULL), 0, "%s: every value after reopen", what);
    free(after);
  }
  free(before);
  run_free(r);
}

/* ---- 6. one thread: one sync per commit --------------------------------- */

static void test_single(fx *f) {
  const char *what = f->what;
  tu_vfs *tv = &f->g.tv;
  kj_stats st0 = stats_of(f->s);
  uint64_t syncs0 = tu_vfs_calls(tv, TU_SYNC);
  uint64_t writes0 = tu_vfs_calls(tv, TU_WRITE);
  int bad = 0, order = 0;
  for (int i = 0; i < 50; i++) {
    if (put_row(f->s, 0, i) != KJ_OK)
      bad++;
    /* acknowledged = durable: the sync came after the write, before the
     * return */
    if (tu_vfs_calls(tv, TU_SYNC) - syncs0 != (uint64_t)i + 1 ||
        tu_vfs_calls(tv, TU_WRITE) - writes0 != (uint64_t)i + 1)
      order++;
  }
  is(bad, 0, "%s: 50 commits", what);
  is(order, 0, "%s: each commit returned after its own write and sync", what);
  is(tu_vfs_calls(tv, TU_SYNC) - syncs0, 50, "%s: 50 syncs", what);
  kj_stats st = stats_of(f->s);
  is(st.syncs - st0.syncs, 50, "%s: stats.syncs = 50", what);
  is(st.commits - st0.commits, 50, "%s: stats.commits = 50", what);
  /* a version-1 caller gets the version-1 fields only */
  kj_stats v1;
  memset(&v1, 0xab, sizeof v1);
  v1.version = 1;
  is(kj_store_stats(f->s, &v1), KJ_OK, "%s: version-1 stats", what);
  is(v1.version, 1, "%s: version-1 stats say version 1", what);
  is(v1.commits, st.commits, "%s: version-1 stats filled", what);
  uint64_t untouched;
  memset(&untouched, 0xab, sizeof untouched);
  ok(!memcmp(&v1.syncs, &untouched, sizeof untouched),
     "%s: version-1 stats: nothing written past the version-1 struct", what);
  fx_close(f, 1);
}

/* ---- 7. KJ_SYNC_NORMAL with 8 threads ------------------------------------ */

static void normal_options(kj_options *o) { o->sync_interval_bytes = 8192; }

static void test_normal(fx *f) {
  const char *what = f->what;
  run *r = run_new(f->s, 0, 50);
  uint64_t syncs = fx_run_writers(f, r);
  const int want = NTHREADS * r->commits;
  is(total(r->errors), 0, "%s: every commit succeeded", what);
  ok(syncs >= 1 && syncs < (uint64_t)want / 4, "%s: interval syncs only (%llu)",
     what, (unsigned long long)syncs);
  fx_reopen_exact(f, KJ_SYNC_NORMAL, r, want);
  run_free(r);
}

/* ---- 8. SIGKILL while 8 threads commit ---------------------------------- */

typedef struct kill_arg {
  kj_store *s;
  int id, fd;
} kill_arg;

static void *kill_writer(void *p) {
  kill_arg *a = p;
  for (int i = 0; i < 100000; i++) {
    if (put_row(a->s, a->id, i) != KJ_OK)
      _exit(3);
    char line[32];
    int n = snprintf(line, sizeof line, "%d %d\n", a->id, i);
    if (write(a->fd, line, (size_t)n) != n) /* atomic: < PIPE_BUF */
      _exit(4);
  }
  return NULL;
}

/* The child's "thread row" lines, parsed as they arrive. */
typedef struct acks {
  int acked[NTHREADS]; /* highest row reported acknowledged, + 1 */
  int lines, bad_order;
  char part[64];
  size_t plen;
} acks;

static void acks_parse(acks *a, const char *buf, size_t n) {
  for (size_t k = 0; k < n; k++) {
    if (buf[k] != '\n') {
      if (a->plen < sizeof a->part - 1)
        a->part[a->plen++] = buf[k];
      continue;
    }
    a->part[a->plen] = 0;
    a->plen = 0;
    int t, i;
    if (sscanf(a->part, "%d %d", &t, &i) == 2 && t >= 0 && t < NTHREADS) {
      if (i != a->acked[t])
        a->bad_order++;
      a->acked[t] = i + 1;
      a->lines++;
    }
  }
}

static void test_sigkill(void) {
  const char *what = "SIGKILL";
  char *dir = tu_mkdtemp();
  int fds[2];
  if (!dir || pipe(fds) != 0) {
    ok(0, "%s: temp dir and pipe", what);
    free(dir);
    return;
  }
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    kj_options o;
    opts(&o, NULL, KJ_SYNC_FULL);
    o.segment_bytes = 64 * 1024; /* roll-overs, and snapshots too */
    o.snapshot_threshold = 256 * 1024;
    kj_store *s = NULL;
    if (kj_store_open(dir, &o, &s, NULL) != KJ_OK)
      _exit(2);
    pthread_t th[NTHREADS];
    kill_arg ka[NTHREADS];
    for (int t = 0; t < NTHREADS; t++) {
      ka[t].s = s;
      ka[t].id = t;
      ka[t].fd = fds[1];
      if (pthread_create(&th[t], NULL, kill_writer, &ka[t]) != 0)
        _exit(5);
    }
    for (int t = 0; t < NTHREADS; t++)
      pthread_join(th[t], NULL);
    _exit(0);
  }
  close(fds[1]);
  ok(pid > 0, "%s: fork", what);
  acks ap;
  memset(&ap, 0, sizeof ap);
  char buf[4096];
  int64_t t0 = tu_now_ms();
  while (pid > 0 && ap.lines < 400 && tu_now_ms() - t0 < 20000) {
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    acks_parse(&ap, buf, (size_t)n);
  }
  if (pid > 0) {
    kill(pid, SIGKILL);
    int st = 0;
    waitpid(pid, &st, 0);
    ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
       "%s: the child was killed while committing (status %d)", what, st);
  }
  /* what the child acknowledged after our last read still counts: read
   * the rest of the pipe */
  for (;;) {
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n <= 0)
      break;
    acks_parse(&ap, buf, (size_t)n);
  }
  close(fds[0]);
  ok(ap.lines >= 400, "%s: %d commits acknowledged before the kill", what,
     ap.lines);
  is(ap.bad_order, 0, "%s: each thread acknowledged in order", what);
  kj_options p;
  opts(&p, NULL, KJ_SYNC_FULL);
  p.segment_bytes = 64 * 1024;
  kj_store *s = tu_store_open_ok(dir, &p, what);
  if (s) {
    int missing = 0, holes = 0, wrong = 0, beyond = 0;
    for (int t = 0; t < NTHREADS; t++) {
      int present = 1;
      for (int i = 0; i < ap.acked[t] + 64; i++) {
        int st = row_state(s, t, i);
        if (st < 0)
          wrong++;
        if (i < ap.acked[t] && st != 1)
          missing++;
        if (st == 1 && !present)
          holes++; /* a later row of the thread without an earlier one */
        if (st != 1)
          present = 0;
        else if (i >= ap.acked[t])
          beyond++;
      }
    }
    is(missing, 0, "%s: every acknowledged commit survived", what);
    is(wrong, 0, "%s: every row has its value", what);
    is(holes, 0, "%s: each thread's rows are a prefix (no holes)", what);
    printf("# %s: %d acknowledged, %d more in flight kept\n", what, ap.lines,
           beyond);
    kj_store_close(s);
  }
  tu_rmrf(dir);
  free(dir);
}

int main(void) {
  alarm(300); /* a deadlock fails the test instead of hanging it */
  fx_run("single thread", KJ_SYNC_FULL, NULL, test_single);
  fx_run("overlap", KJ_SYNC_FULL, NULL, test_overlap);
  fx_run("gated", KJ_SYNC_FULL, NULL, test_gated);
  fx_run("failed group", KJ_SYNC_FULL, NULL, test_failed_group);
  test_failed_loop(KJ_EIO);
  test_failed_loop(KJ_ENOSPC);
  fx_run("roll-over, snapshots, syncs", KJ_SYNC_FULL, busy_options, test_busy);
  fx_run("NORMAL, 8 threads", KJ_SYNC_NORMAL, normal_options, test_normal);
  test_sigkill();
  return tap_done();
}
