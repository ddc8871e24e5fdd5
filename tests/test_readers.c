/*
 * tests/test_readers.c - read-only handles in other processes beside a
 * writer (doc/FORMAT.md section 1 and rule 5.9).
 *
 * A writer process commits without pause: each transaction puts row
 * k<i> and sets row "last" to i, on small segments and with a small
 * snapshot threshold, so roll-overs and checkpoints (which remove files)
 * happen all the time. Reader processes open the store read-only in a loop
 * (one of them with read_durable, one without) and check that what they
 * see is exactly the state after some commit L:
 * "last" is L, the rows k1..kL hold their values, there is no k<L+1>, and
 * a scan counts L rows; and that L never goes down from one open to the
 * next (intact frames are never cut, and durable ones never lost). The parent
 * SIGKILLs the writer (and starts it again: it recovers and goes on from
 * its "last") and the readers at random. Nothing may fail: no open, no
 * check; and readers must have seen the writer's progress.
 *
 * Then the same with a writer under KJ_SYNC_NORMAL, whose frames become
 * durable only at its interval syncs.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keyjournal.h"
#include "tap.h"
#include "testutil.h"

#define NREADERS 2
#define RUN_MS 3000
#define VAL_BYTES 96

static void row_key(char *k, long i) { snprintf(k, 24, "k%08ld", i); }

static void row_val(char *v, long i) {
  for (int j = 0; j < VAL_BYTES; j++)
    v[j] = (char)('a' + (i * 7 + j) % 26);
}

static void options(kj_options *o, kj_sync sync) {
  tu_options(o);
  o->sync = sync;
  o->snapshot_threshold = 48 * 1024;
  o->sync_interval_bytes = 16 * 1024;
}

static long get_last(kj_store *s) {
  void *v = NULL;
  size_t vl = 0;
  long last = 0;
  int rc = kj_get(s, NULL, 1, "last", 4, &v, &vl);
  if (rc == KJ_OK && vl < 32) {
    char buf[32];
    memcpy(buf, v, vl);
    buf[vl] = 0;
    last = atol(buf);
  } else if (rc != KJ_NOTFOUND) {
    last = -1;
  }
  kj_free(v);
  return last;
}

/* The writer: commits until killed. Exit codes above 0 are failures. */
static void writer(const char *dir, kj_sync sync) {
  kj_options o;
  options(&o, sync);
  o.busy_timeout_ms = 5000; /* the writer it replaces may still be dying */
  kj_store *s = NULL;
  if (kj_store_open(dir, &o, &s, NULL) != KJ_OK)
    _exit(10);
  long i = get_last(s);
  if (i < 0)
    _exit(11);
  char k[24], v[VAL_BYTES], n[32];
  for (;;) {
    i++;
    kj_txn *t;
    if (kj_txn_begin(s, 0, &t) != KJ_OK)
      _exit(12);
    row_key(k, i);
    row_val(v, i);
    int nl = snprintf(n, sizeof n, "%ld", i);
    if (kj_put(s, t, 1, k, strlen(k), v, VAL_BYTES) != KJ_OK ||
        kj_put(s, t, 1, "last", 4, n, (size_t)nl) != KJ_OK)
      _exit(13);
    if (kj_txn_commit(t) != KJ_OK)
      _exit(14);
  }
}

typedef struct count_arg {
  long rows;
} count_arg;

static int count_row(void *arg, const void *key, size_t klen, const void *val,
                     size_t vlen) {
  (void)key;
  (void)klen;
  (void)val;
  (void)vlen;
  ((count_arg *)arg)->rows++;
  return 0;
}

/* Check one view; 0, or a failure code. */
static int check_view(kj_store *r, long *last_out) {
  long last = get_last(r);
  if (last < 0)
    return 30;
  *last_out = last;
  char k[24], v[VAL_BYTES];
  long probe[6] = {1, last, last / 2, last / 3 + 1, last - 1, last / 7 + 2};
  for (int p = 0; p < 6; p++) {
    long i = probe[p];
    if (i < 1 || i > last)
      continue;
    row_key(k, i);
    row_val(v, i);
    void *got = NULL;
    size_t gl = 0;
    int rc = kj_get(r, NULL, 1, k, strlen(k), &got, &gl);
    int same = rc == KJ_OK && gl == VAL_BYTES && !memcmp(got, v, gl);
    kj_free(got);
    if (!same)
      return 31;
  }
  row_key(k, last + 1);
  void *got = NULL;
  size_t gl = 0;
  int rc = kj_get(r, NULL, 1, k, strlen(k), &got, &gl);
  kj_free(got);
  if (rc != KJ_NOTFOUND)
    return 32;
  count_arg c = {0};
  if (kj_scan_prefix(r, NULL, 1, "k", 1, count_row, &c) != KJ_OK ||
      c.rows != last)
    return 33;
  return 0;
}

/* A reader: opens, checks and closes in a loop, reporting each view on fd
 * as 'v' and a failure as 'E' with its code, until killed. */
static void reader(const char *dir, int fd, int durable) {
  kj_options o;
  options(&o, KJ_SYNC_FULL);
  o.read_only = 1;
  o.read_durable = durable;
  long prev = 0;
  for (;;) {
    kj_store *r = NULL;
    char *em = NULL;
    int rc = kj_store_open(dir, &o, &r, &em);
    if (rc == KJ_NOTFOUND) { /* the first writer has not created it yet */
      kj_free(em);
      tu_sleep_ms(5);
      continue;
    }
    char msg[2];
    if (rc != KJ_OK) {
      dprintf(fd, "E%d %s\n", -rc, em ? em : "");
      kj_free(em);
      _exit(20);
    }
    long last = 0;
    int bad = check_view(r, &last);
    if (!bad && last < prev)
      bad = 34;
    kj_store_close(r);
    if (bad) {
      dprintf(fd, "E%d view of last %ld after %ld\n", bad, last, prev);
      _exit(21);
    }
    prev = last;
    msg[0] = last > 0 ? 'v' : '0';
    if (write(fd, msg, 1) != 1)
      _exit(22);
  }
}

static pid_t spawn_writer(const char *dir, kj_sync sync) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    alarm(60);
    writer(dir, sync);
  }
  return pid;
}

static pid_t spawn_reader(const char *dir, int fd, int durable) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    alarm(60);
    reader(dir, fd, durable);
  }
  return pid;
}

/* Kill pid and reap it; the writer's status must be a kill, not a failed
 * exit. Returns 0 or the failing exit code. */
static int kill_reap(pid_t pid) {
  int status = 0;
  kill(pid, SIGKILL);
  if (waitpid(pid, &status, 0) != pid)
    return 99;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 0;
}

static void campaign(kj_sync sync, const char *name) {
  char *dir = tu_mkdtemp();
  int p[2];
  if (!dir || pipe(p) != 0) {
    ok(0, "%s: set up", name);
    return;
  }
  fcntl(p[0], F_SETFL, O_NONBLOCK);
  pid_t w = spawn_writer(dir, sync), rd[NREADERS];
  for (int i = 0; i < NREADERS; i++)
    rd[i] = spawn_reader(dir, p[1], i % 2);
  unsigned seed = 7;
  int writer_fail = 0, writer_kills = 0, reader_kills = 0;
  long views = 0, nonempty = 0;
  char err[512] = "";
  int64_t t0 = tu_now_ms();
  while (tu_now_ms() - t0 < RUN_MS && !err[0]) {
    tu_sleep_ms(20 + rand_r(&seed) % 200);
    if (rand_r(&seed) % 2) {
      int rc = kill_reap(w);
      if (rc && !writer_fail)
        writer_fail = rc;
      writer_kills++;
      w = spawn_writer(dir, sync);
    } else {
      int i = (int)(rand_r(&seed) % NREADERS);
      kill_reap(rd[i]);
      reader_kills++;
      rd[i] = spawn_reader(dir, p[1], i % 2);
    }
    char buf[4096];
    ssize_t n;
    while ((n = read(p[0], buf, sizeof buf - 1)) > 0) {
      buf[n] = 0;
      for (ssize_t j = 0; j < n; j++) {
        if (buf[j] == 'E') {
          snprintf(err, sizeof err, "%s", buf + j);
          break;
        }
        views++;
        nonempty += buf[j] == 'v';
      }
    }
  }
  int rc = kill_reap(w);
  if (rc && !writer_fail)
    writer_fail = rc;
  for (int i = 0; i < NREADERS; i++)
    kill_reap(rd[i]);
  close(p[0]);
  close(p[1]);
  ok(!err[0], "%s: every reader open and view was sound (%s)", name,
     err[0] ? err : "no failure");
  is(writer_fail, 0, "%s: the writer never failed (%d kills)", name,
     writer_kills);
  ok(views >= 20, "%s: readers checked %ld views (%d reader kills)", name,
     views, reader_kills);
  ok(nonempty > 0, "%s: %ld views held commits", name, nonempty);

  /* The writer's state after all: a reopen holds a sound prefix too. */
  kj_options o;
  options(&o, sync);
  kj_store *s = tu_store_open_ok(dir, &o, "reopen after the campaign");
  if (s != NULL) {
    long last = 0;
    is(check_view(s, &last), 0, "%s: the final state is sound (last %ld)", name,
       last);
    ok(last > 0, "%s: the writer made progress", name);
    kj_store_close(s);
  }
  tu_rmrf(dir);
  free(dir);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  campaign(KJ_SYNC_FULL, "FULL writer");
  campaign(KJ_SYNC_NORMAL, "NORMAL writer");
  return tap_done();
}
