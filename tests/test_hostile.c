/*
 * tests/test_hostile.c - what a careless or hostile environment finds.
 *
 * Store files that are not regular files: a FIFO in place of the header,
 * a segment or the run file, a socket, a symbolic link to a FIFO or to a
 * device, and a symbolic link to a regular copy of a segment. Each must be
 * refused at once with KJ_EIO and a message naming the file and its type
 * (vfs.h); a store directory reached through a link still opens.
 *
 * Calls that would wait for their own thread: a second begin, a txn ==
 * NULL write (and sync, checkpoint, copy) inside a transaction, a write
 * from a scan callback, a commit while the thread still holds a read.
 * Each must fail at once with KJ_EDEADLK and change nothing, while other
 * threads still wait and then proceed; the domain layer's begin inside
 * begin likewise.
 *
 * Every case runs in a child process under alarm(), so a regression to a
 * hang fails the check instead of hanging the suite.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "keyjournal.h"
#include "tap.h"
#include "testutil.h"

/* Seconds a case may take before it counts as hung. */
#define GUARD_SECS 10
#define TABLE 1

/* ---- running a case in a child under alarm() ------------------------------
 */

typedef struct result {
  int rc;         /* the status of the call under test */
  int extra;      /* what the case checked after it (1: fine) */
  double secs;    /* how long the call under test took */
  char msg[1024]; /* its detail message */
} result;

typedef void (*case_fn)(void *arg, result *r);

/* Run fn in a child; 0 when it finished in time, -1 when it hung or died. */
static int guarded(case_fn fn, void *arg, result *r) {
  memset(r, 0, sizeof *r);
  r->rc = 12345;
  int p[2];
  if (pipe(p) != 0)
    return -1;
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    close(p[0]);
    alarm(GUARD_SECS);
    result c;
    memset(&c, 0, sizeof c);
    fn(arg, &c);
    ssize_t w = write(p[1], &c, sizeof c);
    _exit(w == (ssize_t)sizeof c ? 0 : 1);
  }
  close(p[1]);
  size_t got = 0;
  while (got < sizeof *r) {
    ssize_t n = read(p[0], (char *)r + got, sizeof *r - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  close(p[0]);
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
    ;
  if (got != sizeof *r || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    if (WIFSIGNALED(st))
      printf("# child died of signal %d%s\n", WTERMSIG(st),
             WTERMSIG(st) == SIGALRM ? " (hung: alarm)" : "");
    return -1;
  }
  return 0;
}

static double now_secs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- non-regular store files ----------------------------------------------
 */

/* A store with a few commits, a snapshot when snap, closed. */
static int make_store(const char *dir, int snap) {
  kj_options o;
  tu_options(&o);
  o.sync = KJ_SYNC_OFF;
  kj_store *s = tu_store_open(dir, &o);
  if (!s)
    return -1;
  int rc = 0;
  for (int i = 0; i < 20 && !rc; i++) {
    char k[16];
    snprintf(k, sizeof k, "k%02d", i);
    rc = kj_put(s, NULL, TABLE, k, strlen(k), "value", 5);
  }
  if (!rc && snap)
    rc = kj_store_checkpoint(s);
  if (!rc && snap)
    rc = kj_put(s, NULL, TABLE, "after", 5, "snapshot", 8);
  int c = kj_store_close(s);
  return rc ? rc : c;
}

typedef struct open_case {
  const char *dir;
  int read_only;
} open_case;

static void open_child(void *arg, result *r) {
  const open_case *oc = arg;
  kj_options o;
  tu_options(&o);
  o.mode = KJ_OPEN_EXISTING;
  o.read_only = oc->read_only;
  kj_store *s = NULL;
  char *err = NULL;
  double t0 = now_secs();
  r->rc = kj_store_open(oc->dir, &o, &s, &err);
  r->secs = now_secs() - t0;
  snprintf(r->msg, sizeof r->msg, "%s", err ? err : "");
  kj_free(err);
  r->extra = s == NULL;
  if (s)
    kj_store_close(s);
}

/* Open dir (read-only and read-write) in a child: refused with KJ_EIO,
 * quickly, the message naming name and type. */
static void check_refused(const char *what, const char *dir, const char *name,
                          const char *type) {
  for (int ro = 1; ro >= 0; ro--) {
    open_case oc = {dir, ro};
    result r;
    const char *mode = ro ? "read-only" : "read-write";
    ok(guarded(open_child, &oc, &r) == 0, "%s (%s): the open returns", what,
       mode);
    is(r.rc, KJ_EIO, "%s (%s): KJ_EIO", what, mode);
    ok(r.extra, "%s (%s): *out stays NULL", what, mode);
    ok(r.secs < 2.0, "%s (%s): refused at once (%.3f s)", what, mode, r.secs);
    ok(strstr(r.msg, name) != NULL, "%s (%s): the message names %s", what, mode,
       name);
    ok(strstr(r.msg, type) != NULL, "%s (%s): the message says %s", what, mode,
       type);
    if (!strstr(r.msg, name) || !strstr(r.msg, type))
      printf("#   message: %s\n", r.msg);
  }
}

/* Replace dir/name with a FIFO. */
static int fifo_in_place(const char *dir, const char *name) {
  char *p = tu_path(dir, name);
  int rc = unlink(p) || mkfifo(p, 0600);
  free(p);
  return rc;
}

static void test_fifo_header(void) {
  char *dir = tu_mkdtemp_or_bail();
  ok(make_store(dir, 0) == 0, "fifo header: store made");
  ok(fifo_in_place(dir, "keyjournal.hdr") == 0, "fifo header: FIFO in place");
  check_refused("fifo header", dir, "keyjournal.hdr", "FIFO");
  tu_rmrf(dir);
  free(dir);
}

static void test_fifo_segment(void) {
  char *dir = tu_mkdtemp_or_bail();
  ok(make_store(dir, 0) == 0, "fifo segment: store made");
  ok(fifo_in_place(dir, "journal-0000000000000001.kjl") == 0,
     "fifo segment: FIFO in place");
  check_refused("fifo segment", dir, "journal-0000000000000001.kjl", "FIFO");
  tu_rmrf(dir);
  free(dir);
}

static char *snapshot_name;

static int find_snapshot(void *arg, const char *name) {
  (void)arg;
  if (!strncmp(name, "run-", 4) && strstr(name, ".kjr")) {
    free(snapshot_name);
    snapshot_name = strdup(name);
  }
  return 0;
}

static void test_fifo_snapshot(void) {
  char *dir = tu_mkdtemp_or_bail();
  ok(make_store(dir, 1) == 0, "fifo run file: store with a run made");
  kj_vfs_posix()->list(NULL, dir, find_snapshot, NULL);
  ok(snapshot_name != NULL, "fifo run file: the run file exists");
  if (snapshot_name) {
    ok(fifo_in_place(dir, snapshot_name) == 0, "fifo run file: FIFO in place");
    check_refused("fifo run file", dir, snapshot_name, "FIFO");
  }
  free(snapshot_name);
  snapshot_name = NULL;
  tu_rmrf(dir);
  free(dir);
}

static void test_socket_header(void) {
  char *dir = tu_mkdtemp_or_bail();
  ok(make_store(dir, 0) == 0, "socket header: store made");
  char *p = tu_path(dir, "keyjournal.hdr");
  unlink(p);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  int made = fd >= 0 && strlen(p) < sizeof sa.sun_path;
  if (made) {
    memcpy(sa.sun_path, p, strlen(p) + 1);
    made = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
  }
  ok(made, "socket header: a socket in place");
  if (made)
    check_refused("socket header", dir, "keyjournal.hdr", "socket");
  if (fd >= 0)
    close(fd);
  free(p);
  tu_rmrf(dir);
  free(dir);
}

static void test_links(void) {
  char *dir = tu_mkdtemp_or_bail();
  ok(make_store(dir, 0) == 0, "links: store made");
  char *hdr = tu_path(dir, "keyjournal.hdr");
  char *saved = tu_path(dir, "saved.hdr");
  char *fifo = tu_path(dir, "a-fifo");
  ok(rename(hdr, saved) == 0 && mkfifo(fifo, 0600) == 0 &&
         symlink("a-fifo", hdr) == 0,
     "links: header is a symbolic link to a FIFO");
  check_refused("link to a FIFO as header", dir, "keyjournal.hdr",
                "symbolic link to a FIFO");
  ok(unlink(hdr) == 0 && symlink("/dev/null", hdr) == 0,
     "links: header is a symbolic link to /dev/null");
  check_refused("link to a device as header", dir, "keyjournal.hdr",
                "symbolic link to a character device");
  ok(unlink(hdr) == 0 && rename(saved, hdr) == 0, "links: header restored");

  /* A symbolic link to a regular copy of a segment: refused too (the
   * store's directory syncs and removals would act on the link). */
  char *seg = tu_path(dir, "journal-0000000000000001.kjl");
  char *elsewhere = tu_mkdtemp_or_bail();
  char *target = tu_path(elsewhere, "segment-copy");
  ok(rename(seg, target) == 0 && symlink(target, seg) == 0,
     "links: segment 1 is a symbolic link to a regular file");
  check_refused("symlinked segment", dir, "journal-0000000000000001.kjl",
                "symbolic link to a regular file");
  ok(unlink(seg) == 0 && rename(target, seg) == 0, "links: segment restored");

  /* The store directory itself may be reached through a link. */
  char *link = tu_path(elsewhere, "store-link");
  ok(symlink(dir, link) == 0, "links: a link to the store directory");
  kj_options o;
  tu_options(&o);
  o.mode = KJ_OPEN_EXISTING;
  kj_store *s = tu_store_open(link, &o);
  ok(s != NULL, "links: a store reached through a linked directory opens");
  if (s) {
    ok(tu_get_str_eq(s, NULL, TABLE, "k07", "value"),
       "links: ... and reads its rows");
    is(kj_put(s, NULL, TABLE, "via", 3, "link", 4), KJ_OK,
       "links: ... and writes");
    is(kj_store_close(s), KJ_OK, "links: ... and closes");
  }
  tu_rmrf(elsewhere);
  free(elsewhere);
  free(link);
  free(target);
  free(seg);
  free(hdr);
  free(saved);
  free(fifo);
  tu_rmrf(dir);
  free(dir);
}

/* ---- self-deadlocks --------------------------------------------------------
 */

static kj_store *open_dl(const char *dir) {
  kj_options o;
  tu_options(&o);
  o.sync = KJ_SYNC_OFF;
  return tu_store_open(dir, &o);
}

static void finish(kj_store *s, result *r, double t0, int rc) {
  r->secs = now_secs() - t0;
  r->rc = rc;
  snprintf(r->msg, sizeof r->msg, "%s", kj_store_errmsg(s));
}

/* Does table TABLE hold key with value v (NULL: absent)? */
static int row_is(kj_store *s, const char *key, const char *v) {
  void *got = NULL;
  size_t n = 0;
  int rc = kj_get(s, NULL, TABLE, key, strlen(key), &got, &n);
  int same = v ? rc == KJ_OK && n == strlen(v) && !memcmp(got, v, n)
               : rc == KJ_NOTFOUND;
  kj_free(got);
  return same;
}

typedef enum dl_kind {
  DL_BEGIN_IN_WRITE,
  DL_BEGIN_IN_RO,
  DL_PUT_IN_WRITE,
  DL_DELETE_IN_WRITE,
  DL_PUT_IN_RO,
  DL_SYNC_IN_WRITE,
  DL_CHECKPOINT_IN_WRITE,
  DL_COPY_IN_WRITE,
  DL_COMMIT_UNDER_RO,
  DL_CHECKPOINT_IN_RO,
} dl_kind;

typedef struct dl_case {
  const char *dir;
  dl_kind kind;
} dl_case;

static void dl_child(void *arg, result *r) {
  const dl_case *c = arg;
  kj_store *s = open_dl(c->dir);
  if (!s)
    return;
  kj_put(s, NULL, TABLE, "old", 3, "v0", 2);
  int ro = c->kind == DL_BEGIN_IN_RO || c->kind == DL_PUT_IN_RO ||
           c->kind == DL_CHECKPOINT_IN_RO;
  kj_txn *t = NULL, *t2 = NULL;
  if (kj_txn_begin(s, ro ? KJ_TXN_READONLY : 0, &t) != KJ_OK)
    return;
  if (!ro)
    kj_put(s, t, TABLE, "mine", 4, "v1", 2);
  double t0 = now_secs();
  char *copy = NULL;
  switch (c->kind) {
  case DL_BEGIN_IN_WRITE:
  case DL_BEGIN_IN_RO:
    finish(s, r, t0, kj_txn_begin(s, 0, &t2));
    r->extra = t2 == NULL;
    break;
  case DL_PUT_IN_WRITE:
  case DL_PUT_IN_RO:
    finish(s, r, t0, kj_put(s, NULL, TABLE, "old", 3, "v2", 2));
    r->extra = 1;
    break;
  case DL_DELETE_IN_WRITE:
    finish(s, r, t0, kj_delete(s, NULL, TABLE, "old", 3));
    r->extra = 1;
    break;
  case DL_SYNC_IN_WRITE:
    finish(s, r, t0, kj_store_sync(s));
    r->extra = 1;
    break;
  case DL_CHECKPOINT_IN_WRITE:
  case DL_CHECKPOINT_IN_RO:
    finish(s, r, t0, kj_store_checkpoint(s));
    r->extra = 1;
    break;
  case DL_COPY_IN_WRITE:
    copy = tu_path(c->dir, "copy");
    finish(s, r, t0, kj_store_copy(s, NULL, copy));
    r->extra = access(copy, F_OK) != 0;
    break;
  case DL_COMMIT_UNDER_RO: {
    kj_txn *rt = NULL;
    r->extra = kj_txn_begin(s, KJ_TXN_READONLY, &rt) == KJ_OK;
    t0 = now_secs();
    finish(s, r, t0, kj_txn_commit(t));
    t = NULL; /* freed by the failed commit */
    kj_txn_rollback(rt);
    r->extra = r->extra && row_is(s, "mine", NULL);
    break;
  }
  }
  /* The transaction the thread holds is still usable and commits. */
  if (t && !ro) {
    r->extra = r->extra && kj_put(s, t, TABLE, "more", 4, "v3", 2) == KJ_OK &&
               kj_txn_commit(t) == KJ_OK && row_is(s, "mine", "v1") &&
               row_is(s, "more", "v3") && row_is(s, "old", "v0");
  } else if (t) {
    kj_txn_rollback(t);
    r->extra = r->extra && row_is(s, "old", "v0");
  }
  free(copy);
  if (kj_store_close(s) != KJ_OK)
    r->extra = 0;
}

static void check_dl(const char *what, dl_kind kind, const char *rule) {
  char *dir = tu_mkdtemp_or_bail();
  dl_case c = {dir, kind};
  result r;
  ok(guarded(dl_child, &c, &r) == 0, "%s: returns (no hang)", what);
  is(r.rc, KJ_EDEADLK, "%s: KJ_EDEADLK", what);
  ok(r.secs < 1.0, "%s: at once (%.3f s)", what, r.secs);
  ok(strstr(r.msg, rule) != NULL, "%s: the message names the rule", what);
  if (!strstr(r.msg, rule))
    printf("#   message: %s\n", r.msg);
  ok(r.extra, "%s: nothing changed, the held transaction still works", what);
  tu_rmrf(dir);
  free(dir);
}

/* A write from a scan callback (txn NULL, or a read-only transaction). */
typedef struct scan_state {
  kj_store *s;
  int put_rc, get_rc, rows;
  char msg[1024];
} scan_state;

static int scan_cb(void *arg, const void *k, size_t kl, const void *v,
                   size_t vl) {
  (void)k, (void)kl, (void)v, (void)vl;
  scan_state *st = arg;
  if (st->rows++ == 0) {
    st->put_rc = kj_put(st->s, NULL, TABLE, "from-cb", 7, "x", 1);
    snprintf(st->msg, sizeof st->msg, "%s", kj_store_errmsg(st->s));
    void *g = NULL;
    size_t n;
    st->get_rc = kj_get(st->s, NULL, TABLE, "k1", 2, &g, &n);
    kj_free(g);
  }
  return 0;
}

static void scan_child(void *arg, result *r) {
  const dl_case *c = arg; /* kind: 0 txn NULL, 1 read-only transaction */
  kj_store *s = open_dl(c->dir);
  if (!s)
    return;
  kj_put(s, NULL, TABLE, "k1", 2, "a", 1);
  kj_put(s, NULL, TABLE, "k2", 2, "b", 1);
  scan_state st = {.s = s};
  kj_txn *t = NULL;
  if (c->kind)
    kj_txn_begin(s, KJ_TXN_READONLY, &t);
  double t0 = now_secs();
  int src = kj_scan_prefix(s, t, TABLE, NULL, 0, scan_cb, &st);
  r->secs = now_secs() - t0;
  kj_txn_rollback(t);
  r->rc = st.put_rc;
  snprintf(r->msg, sizeof r->msg, "%s", st.msg);
  r->extra = src == KJ_OK && st.rows == 2 && st.get_rc == KJ_OK &&
             row_is(s, "from-cb", NULL) &&
             kj_put(s, NULL, TABLE, "after", 5, "y", 1) == KJ_OK;
  if (kj_store_close(s) != KJ_OK)
    r->extra = 0;
}

static void check_scan(const char *what, int in_ro, const char *rule) {
  char *dir = tu_mkdtemp_or_bail();
  dl_case c = {dir, (dl_kind)in_ro};
  result r;
  ok(guarded(scan_child, &c, &r) == 0, "%s: returns (no hang)", what);
  is(r.rc, KJ_EDEADLK, "%s: the write gets KJ_EDEADLK", what);
  ok(r.secs < 1.0, "%s: at once (%.3f s)", what, r.secs);
  ok(strstr(r.msg, rule) != NULL, "%s: the message names the rule", what);
  if (!strstr(r.msg, rule))
    printf("#   message: %s\n", r.msg);
  ok(r.extra,
     "%s: the scan went on, a read in the callback worked, nothing written, "
     "a later write works",
     what);
  tu_rmrf(dir);
  free(dir);
}

/* Another thread still waits for the holder, and proceeds once it ends. */
typedef struct waiter {
  kj_store *s;
  kj_backend *b;
  atomic_int done;
  int rc;
} waiter;

static void *waiter_put(void *arg) {
  waiter *w = arg;
  w->rc = kj_put(w->s, NULL, TABLE, "other", 5, "thread", 6);
  atomic_store(&w->done, 1);
  return NULL;
}

static void *waiter_begin(void *arg) {
  waiter *w = arg;
  kj_txn *t = NULL;
  w->rc = kj_txn_begin(w->s, 0, &t);
  if (!w->rc) {
    kj_put(w->s, t, TABLE, "other", 5, "thread", 6);
    w->rc = kj_txn_commit(t);
  }
  atomic_store(&w->done, 1);
  return NULL;
}

static void others_child(void *arg, result *r) {
  const dl_case *c = arg; /* kind: 0 holder writes, 1 holder reads */
  kj_store *s = open_dl(c->dir);
  if (!s)
    return;
  waiter w = {.s = s};
  kj_txn *t = NULL;
  pthread_t th;
  if (c->kind == 0) {
    kj_txn_begin(s, 0, &t);
    kj_put(s, t, TABLE, "mine", 4, "v", 1);
    pthread_create(&th, NULL, waiter_begin, &w);
  } else {
    kj_txn_begin(s, KJ_TXN_READONLY, &t);
    pthread_create(&th, NULL, waiter_put, &w);
  }
  tu_sleep_ms(300);
  int waited = !atomic_load(&w.done);
  /* Meanwhile this thread's own refused call returns at once, and (read
   * side) a nested read-only transaction and a read do not queue behind
   * the waiting commit. */
  double t0 = now_secs();
  kj_txn *t2 = NULL;
  int nested = 1;
  if (c->kind == 0) {
    r->rc = kj_put(s, NULL, TABLE, "x", 1, "y", 1);
  } else {
    r->rc = kj_put(s, NULL, TABLE, "x", 1, "y", 1);
    void *g = NULL;
    size_t n;
    nested = kj_txn_begin(s, KJ_TXN_READONLY, &t2) == KJ_OK &&
             kj_get(s, t2, TABLE, "nope", 4, &g, &n) == KJ_NOTFOUND &&
             kj_get(s, NULL, TABLE, "nope", 4, &g, &n) == KJ_NOTFOUND;
    kj_txn_rollback(t2);
  }
  r->secs = now_secs() - t0;
  snprintf(r->msg, sizeof r->msg, "%s", kj_store_errmsg(s));
  int still_waiting = !atomic_load(&w.done);
  int end = c->kind == 0 ? kj_txn_commit(t) : KJ_OK;
  if (c->kind == 1)
    kj_txn_rollback(t);
  pthread_join(th, NULL);
  r->extra = waited && still_waiting && nested && end == KJ_OK &&
             w.rc == KJ_OK && row_is(s, "other", "thread") &&
             row_is(s, "x", NULL) && (c->kind == 1 || row_is(s, "mine", "v"));
  if (!r->extra)
    snprintf(r->msg + strlen(r->msg), sizeof r->msg - strlen(r->msg),
             " [waited %d still %d nested %d end %d other %d]", waited,
             still_waiting, nested, end, w.rc);
  if (kj_store_close(s) != KJ_OK)
    r->extra = 0;
}

static void check_others(const char *what, int kind) {
  char *dir = tu_mkdtemp_or_bail();
  dl_case c = {dir, (dl_kind)kind};
  result r;
  ok(guarded(others_child, &c, &r) == 0, "%s: returns (no hang)", what);
  is(r.rc, KJ_EDEADLK, "%s: the holder's own txn-NULL write: KJ_EDEADLK", what);
  ok(r.secs < 1.0, "%s: the holder is not blocked (%.3f s)", what, r.secs);
  ok(r.extra, "%s: the other thread waited, then proceeded", what);
  if (!r.extra)
    printf("#   %s\n", r.msg);
  tu_rmrf(dir);
  free(dir);
}

/* ---- the domain layer ------------------------------------------------------
 */

static void *waiter_backend(void *arg) {
  waiter *w = arg;
  uint32_t dev = 0;
  w->rc = kj_device_create(w->b, NULL, &dev);
  atomic_store(&w->done, 1);
  return NULL;
}

static void domain_child(void *arg, result *r) {
  const dl_case *c = arg;
  kj_options o;
  tu_options(&o);
  o.sync = KJ_SYNC_OFF;
  kj_backend *b = tu_backend_open(c->dir, &o);
  if (!b)
    return;
  uint32_t dev = 0;
  int ok1 = kj_device_create(b, NULL, &dev) == KJ_OK &&
            kj_session_put(b, NULL, dev, "alice", 5, "rec0", 4) == KJ_OK;
  kj_tx *t = NULL, *t2 = NULL;
  ok1 = ok1 && kj_backend_begin(b, &t) == KJ_OK &&
        kj_session_put(b, t, dev, "alice", 5, "rec1", 4) == KJ_OK;
  waiter w = {.b = b};
  pthread_t th;
  pthread_create(&th, NULL, waiter_backend, &w);
  tu_sleep_ms(200);
  double t0 = now_secs();
  r->rc = kj_backend_begin(b, &t2);
  snprintf(r->msg, sizeof r->msg, "%s", kj_backend_errmsg(b));
  uint32_t dev2 = 0;
  int put_rc = kj_session_put(b, NULL, dev, "bob", 3, "x", 1);
  int create_rc = kj_device_create(b, NULL, &dev2);
  void *rec = NULL;
  size_t n = 0;
  int get_rc = kj_session_get(b, NULL, dev, "alice", 5, &rec, &n);
  int committed_view = get_rc == KJ_OK && n == 4 && !memcmp(rec, "rec0", 4);
  kj_free(rec);
  r->secs = now_secs() - t0;
  int waited = !atomic_load(&w.done);
  int commit_rc = kj_backend_commit(t);
  pthread_join(th, NULL);
  rec = NULL;
  int after = kj_session_get(b, NULL, dev, "alice", 5, &rec, &n) == KJ_OK &&
              n == 4 && !memcmp(rec, "rec1", 4);
  kj_free(rec);
  int has_bob = 1;
  kj_session_has(b, NULL, dev, "bob", 3, &has_bob);
  r->extra = ok1 && t2 == NULL && put_rc == KJ_EDEADLK &&
             create_rc == KJ_EDEADLK && committed_view && waited &&
             commit_rc == KJ_OK && w.rc == KJ_OK && after && !has_bob;
  if (!r->extra)
    snprintf(r->msg + strlen(r->msg), sizeof r->msg - strlen(r->msg),
             " [ok1 %d put %d create %d view %d waited %d commit %d other %d "
             "after %d bob %d]",
             ok1, put_rc, create_rc, committed_view, waited, commit_rc, w.rc,
             after, has_bob);
  kj_backend_close(b);
}

static void test_domain(void) {
  char *dir = tu_mkdtemp_or_bail();
  dl_case c = {dir, 0};
  result r;
  ok(guarded(domain_child, &c, &r) == 0, "domain: returns (no hang)");
  is(r.rc, KJ_EDEADLK, "domain: kj_backend_begin inside begin: KJ_EDEADLK");
  ok(r.secs < 1.0, "domain: at once (%.3f s)", r.secs);
  ok(strstr(r.msg, "within a transaction") != NULL,
     "domain: the message names the rule");
  ok(r.extra,
     "domain: txn-NULL writes KJ_EDEADLK, a txn-NULL read sees the committed "
     "state, the held transaction commits, another thread waited and "
     "proceeded");
  if (!r.extra || !strstr(r.msg, "within a transaction"))
    printf("#   %s\n", r.msg);
  tu_rmrf(dir);
  free(dir);
}

int main(void) {
  test_fifo_header();
  test_fifo_segment();
  test_fifo_snapshot();
  test_socket_header();
  test_links();

  const char *within = "within a transaction";
  check_dl("begin inside a write transaction", DL_BEGIN_IN_WRITE, within);
  check_dl("begin inside a read-only transaction", DL_BEGIN_IN_RO, within);
  check_dl("put(NULL) inside a write transaction", DL_PUT_IN_WRITE, within);
  check_dl("delete(NULL) inside a write transaction", DL_DELETE_IN_WRITE,
           within);
  check_dl("put(NULL) inside a read-only transaction", DL_PUT_IN_RO, within);
  check_dl("sync inside a write transaction", DL_SYNC_IN_WRITE, within);
  check_dl("checkpoint inside a write transaction", DL_CHECKPOINT_IN_WRITE,
           within);
  check_dl("copy(NULL) inside a write transaction", DL_COPY_IN_WRITE, within);
  check_dl("checkpoint inside a read-only transaction", DL_CHECKPOINT_IN_RO,
           within);
  check_dl("commit while holding a read-only transaction", DL_COMMIT_UNDER_RO,
           "end it first");
  check_scan("put(NULL) from a scan callback", 0, "scan callback");
  check_scan("put(NULL) from a read-only transaction's scan callback", 1,
             "read-only transaction");
  check_others("holder of a write transaction", 0);
  check_others("holder of a read-only transaction", 1);
  test_domain();
  return tap_done();
}
