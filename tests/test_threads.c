/*
 * tests/test_threads.c - concurrent readers and writers on one handle.
 *
 * Two writer threads commit transactions that each write a pair of rows
 * A<w><i> and B<w><i> with the same value, and overwrite the shared pair
 * "pairA"/"pairB" with one new value. Four reader threads read outside
 * transactions (kj_get, kj_scan_prefix) and inside KJ_TXN_READONLY
 * transactions, checking that a pair is never seen half-committed.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keyjournal/store.h"
#include "keyjournal/sys/vfs.h"
#include "tap.h"
#include "testutil.h"

#define NWRITERS 2
#define NREADERS 4
#define COMMITS_PER_WRITER 1000
#define TABLE 1

typedef struct shared {
  kj_store *s;
  atomic_int writers_done;
  atomic_int commits_done;
  /* failures, by kind (read by the main thread after joining) */
  atomic_int write_err;
  atomic_int get_err;       /* unexpected kj_get status or value */
  atomic_int scan_err;      /* unexpected scan status, order or value */
  atomic_int pair_torn;     /* A without B (or different values) */
  atomic_int ro_err;        /* read-only txn failures */
  atomic_int monotonic_err; /* a later read saw fewer rows */
  atomic_int reader_iters;
  atomic_int ro_txns;
} shared;

typedef struct writer_arg {
  shared *sh;
  int id;
} writer_arg;

static void make_val(char *buf, size_t n, int w, int i) {
  snprintf(buf, n, "value-w%d-i%05d-%s", w, i, "padding-to-make-it-longer");
}

static void *writer_main(void *p) {
  writer_arg *a = p;
  shared *sh = a->sh;
  for (int i = 0; i < COMMITS_PER_WRITER; i++) {
    char ka[32], kb[32], v[80];
    snprintf(ka, sizeof ka, "A%d%05d", a->id, i);
    snprintf(kb, sizeof kb, "B%d%05d", a->id, i);
    make_val(v, sizeof v, a->id, i);
    kj_txn *t = NULL;
    int rc = kj_txn_begin(sh->s, 0, &t);
    if (rc != KJ_OK) {
      atomic_fetch_add(&sh->write_err, 1);
      continue;
    }
    if (kj_put(sh->s, t, TABLE, ka, strlen(ka), v, strlen(v)) != KJ_OK ||
        kj_put(sh->s, t, TABLE, "pairA", 5, v, strlen(v)) != KJ_OK ||
        kj_put(sh->s, t, TABLE, kb, strlen(kb), v, strlen(v)) != KJ_OK ||
        kj_put(sh->s, t, TABLE, "pairB", 5, v, strlen(v)) != KJ_OK) {
      atomic_fetch_add(&sh->write_err, 1);
      kj_txn_rollback(t);
      continue;
    }
    /* every 50th transaction is rolled back after its writes: its rows
     * must never be seen */
    if (i % 50 == 49) {
      kj_txn_rollback(t);
      continue;
    }
    if (kj_txn_commit(t) != KJ_OK)
      atomic_fetch_add(&sh->write_err, 1);
    else
      atomic_fetch_add(&sh->commits_done, 1);
  }
  atomic_fetch_add(&sh->writers_done, 1);
  return NULL;
}

/* Parse "A<w><iiiii>" / "B<w><iiiii>"; -1 if malformed. */
static int parse_key(const void *key, size_t klen, char *ab, int *w, int *i) {
  const char *k = key;
  if (klen != 7 || (k[0] != 'A' && k[0] != 'B') || k[1] < '0' ||
      k[1] >= '0' + NWRITERS)
    return -1;
  *ab = k[0];
  *w = k[1] - '0';
  *i = 0;
  for (int j = 2; j < 7; j++) {
    if (k[j] < '0' || k[j] > '9')
      return -1;
    *i = *i * 10 + (k[j] - '0');
  }
  return 0;
}

static int rolled_back(int i) { return i % 50 == 49; }

/* Scan state: counts of A and B rows, order and value checks. */
typedef struct scan_state {
  int a, b, bad;
  char last[16];
  size_t lastn;
  int have_last;
} scan_state;

static int scan_cb(void *arg, const void *key, size_t klen, const void *val,
                   size_t vlen) {
  scan_state *st = arg;
  if (st->have_last) {
    size_t n = st->lastn < klen ? st->lastn : klen;
    int c = memcmp(st->last, key, n);
    if (c > 0 || (c == 0 && st->lastn >= klen))
      st->bad++;
  }
  if (klen <= sizeof st->last) {
    memcpy(st->last, key, klen);
    st->lastn = klen;
    st->have_last = 1;
  }
  char ab;
  int w, i;
  if (parse_key(key, klen, &ab, &w, &i) != 0)
    return 0; /* pairA / pairB */
  char want[80];
  make_val(want, sizeof want, w, i);
  if (rolled_back(i) || vlen != strlen(want) || memcmp(val, want, vlen) != 0)
    st->bad++;
  if (ab == 'A')
    st->a++;
  else
    st->b++;
  return 0;
}

/* 0 if both pair rows are absent or hold the same value. */
static int check_pair(kj_store *s, kj_txn *t, int *err) {
  void *va = NULL, *vb = NULL;
  size_t la = 0, lb = 0;
  int ra = kj_get(s, t, TABLE, "pairA", 5, &va, &la);
  int rb = kj_get(s, t, TABLE, "pairB", 5, &vb, &lb);
  int torn = 0;
  if ((ra != KJ_OK && ra != KJ_NOTFOUND) || (rb != KJ_OK && rb != KJ_NOTFOUND))
    (*err)++;
  else if (ra != rb)
    torn = 1;
  else if (ra == KJ_OK && (la != lb || memcmp(va, vb, la) != 0))
    torn = 1;
  kj_free(va);
  kj_free(vb);
  return torn;
}

static void *reader_main(void *p) {
  shared *sh = p;
  tu_rng r;
  tu_rng_seed(&r, (uint64_t)(uintptr_t)p ^ (uint64_t)pthread_self());
  int last_a = 0, iter = 0;
  /* Run until the writers are done, and at least a few rounds. */
  while (atomic_load(&sh->writers_done) < NWRITERS || iter < 20) {
    iter++;
    /* 1. point reads outside a transaction */
    for (int j = 0; j < 8; j++) {
      int w = (int)tu_rng_below(&r, NWRITERS);
      int i = (int)tu_rng_below(&r, COMMITS_PER_WRITER);
      char k[32], want[80];
      snprintf(k, sizeof k, "%c%d%05d", j % 2 ? 'A' : 'B', w, i);
      make_val(want, sizeof want, w, i);
      void *v = NULL;
      size_t vl = 0;
      int rc = kj_get(sh->s, NULL, TABLE, k, strlen(k), &v, &vl);
      if (rc == KJ_OK) {
        if (rolled_back(i) || vl != strlen(want) || memcmp(v, want, vl) != 0)
          atomic_fetch_add(&sh->get_err, 1);
        kj_free(v);
      } else if (rc != KJ_NOTFOUND) {
        atomic_fetch_add(&sh->get_err, 1);
      }
    }
    /* 2. one scan outside a transaction is one committed state */
    scan_state st;
    memset(&st, 0, sizeof st);
    int rc = kj_scan_prefix(sh->s, NULL, TABLE, NULL, 0, scan_cb, &st);
    if (rc != KJ_OK || st.bad)
      atomic_fetch_add(&sh->scan_err, 1);
    if (st.a != st.b)
      atomic_fetch_add(&sh->pair_torn, 1);
    if (st.a < last_a)
      atomic_fetch_add(&sh->monotonic_err, 1);
    last_a = st.a;
    /* prefix scans "A" then "B": B is read later, so it may only be ahead */
    scan_state sa, sb;
    memset(&sa, 0, sizeof sa);
    memset(&sb, 0, sizeof sb);
    if (kj_scan_prefix(sh->s, NULL, TABLE, "A", 1, scan_cb, &sa) != KJ_OK ||
        kj_scan_prefix(sh->s, NULL, TABLE, "B", 1, scan_cb, &sb) != KJ_OK ||
        sa.bad || sb.bad || sa.b != 0 || sb.a != 0)
      atomic_fetch_add(&sh->scan_err, 1);
    if (sb.b < sa.a || sa.a < last_a)
      atomic_fetch_add(&sh->monotonic_err, 1);
    last_a = sa.a;
    /* 3. a read-only transaction: a stable view across several calls */
    if (iter % 2 == 0) {
      kj_txn *t = NULL;
      if (kj_txn_begin(sh->s, KJ_TXN_READONLY, &t) != KJ_OK) {
        atomic_fetch_add(&sh->ro_err, 1);
      } else {
        int err = 0;
        if (check_pair(sh->s, t, &err))
          atomic_fetch_add(&sh->pair_torn, 1);
        scan_state ta, tb;
        memset(&ta, 0, sizeof ta);
        memset(&tb, 0, sizeof tb);
        if (kj_scan_prefix(sh->s, t, TABLE, "A", 1, scan_cb, &ta) != KJ_OK ||
            kj_scan_prefix(sh->s, t, TABLE, "B", 1, scan_cb, &tb) != KJ_OK ||
            ta.bad || tb.bad)
          err++;
        if (ta.a != tb.b)
          atomic_fetch_add(&sh->pair_torn, 1);
        /* every A row seen has its B row, by point lookup in the txn */
        for (int j = 0; j < 4; j++) {
          int w = (int)tu_rng_below(&r, NWRITERS);
          int i = (int)tu_rng_below(&r, COMMITS_PER_WRITER);
          char ka[32], kb[32];
          snprintf(ka, sizeof ka, "A%d%05d", w, i);
          snprintf(kb, sizeof kb, "B%d%05d", w, i);
          void *v = NULL;
          size_t vl = 0;
          int r1 = kj_get(sh->s, t, TABLE, ka, 7, &v, &vl);
          kj_free(v);
          v = NULL;
          int r2 = kj_get(sh->s, t, TABLE, kb, 7, &v, &vl);
          kj_free(v);
          if ((r1 != KJ_OK && r1 != KJ_NOTFOUND) ||
              (r2 != KJ_OK && r2 != KJ_NOTFOUND))
            err++;
          else if (r1 != r2)
            atomic_fetch_add(&sh->pair_torn, 1);
        }
        if (check_pair(sh->s, t, &err))
          atomic_fetch_add(&sh->pair_torn, 1);
        if (err)
          atomic_fetch_add(&sh->ro_err, err);
        if (iter % 4 == 0) {
          if (kj_txn_commit(t) != KJ_OK)
            atomic_fetch_add(&sh->ro_err, 1);
        } else {
          kj_txn_rollback(t);
        }
        atomic_fetch_add(&sh->ro_txns, 1);
      }
    }
    /* 4. the pair outside a transaction: two calls, may straddle a
     * commit, so only statuses are checked */
    {
      int err = 0;
      (void)check_pair(sh->s, NULL, &err);
      if (err)
        atomic_fetch_add(&sh->get_err, err);
    }
    atomic_fetch_add(&sh->reader_iters, 1);
    /* let writers in now and then (readers hold the read lock often) */
    if (iter % 4 == 0)
      tu_sleep_ms(1);
  }
  return NULL;
}

static int count_rows(kj_store *s, const char *prefix) {
  scan_state st;
  memset(&st, 0, sizeof st);
  if (kj_scan_prefix(s, NULL, TABLE, prefix, strlen(prefix), scan_cb, &st) !=
          KJ_OK ||
      st.bad)
    return -1;
  return prefix[0] == 'A' ? st.a : st.b;
}

int main(void) {
  alarm(120); /* a deadlock fails the test instead of hanging it */
  char *dir = tu_mkdtemp();
  ok(dir != NULL, "temp dir");
  kj_options o;
  tu_options(&o);
  o.sync = KJ_SYNC_OFF;
  o.segment_bytes = 1024 * 1024;
  kj_store *s = NULL;
  char *em = NULL;
  int rc = kj_store_open(dir, &o, &s, &em);
  is(rc, KJ_OK, "open store");
  kj_free(em);
  if (s == NULL) {
    tu_rmrf(dir);
    free(dir);
    return tap_done();
  }

  shared sh;
  memset(&sh, 0, sizeof sh);
  sh.s = s;
  pthread_t wt[NWRITERS], rt[NREADERS];
  writer_arg wa[NWRITERS];
  int started_r = 0, started_w = 0;
  for (int i = 0; i < NREADERS; i++)
    if (pthread_create(&rt[i], NULL, reader_main, &sh) == 0)
      started_r++;
  for (int i = 0; i < NWRITERS; i++) {
    wa[i].sh = &sh;
    wa[i].id = i;
    if (pthread_create(&wt[i], NULL, writer_main, &wa[i]) == 0)
      started_w++;
  }
  is(started_r, NREADERS, "started %d readers", NREADERS);
  is(started_w, NWRITERS, "started %d writers", NWRITERS);
  int64_t t0 = tu_now_ms();
  for (int i = 0; i < started_w; i++)
    pthread_join(wt[i], NULL);
  if (started_w < NWRITERS)
    atomic_store(&sh.writers_done, NWRITERS);
  for (int i = 0; i < started_r; i++)
    pthread_join(rt[i], NULL);
  int64_t elapsed = tu_now_ms() - t0;
  printf("# %d commits, %d reader iterations, %d read-only txns in %lld ms\n",
         atomic_load(&sh.commits_done), atomic_load(&sh.reader_iters),
         atomic_load(&sh.ro_txns), (long long)elapsed);

  const int per_writer =
      COMMITS_PER_WRITER - COMMITS_PER_WRITER / 50; /* minus rollbacks */
  const int want_rows = NWRITERS * per_writer;
  is(atomic_load(&sh.write_err), 0, "writers: no errors");
  is(atomic_load(&sh.commits_done), want_rows, "writers: all commits done");
  is(atomic_load(&sh.get_err), 0, "readers: kj_get results valid");
  is(atomic_load(&sh.scan_err), 0, "readers: scans ordered and valid");
  is(atomic_load(&sh.pair_torn), 0, "readers: pairs never seen torn");
  is(atomic_load(&sh.ro_err), 0, "readers: read-only txns without errors");
  is(atomic_load(&sh.monotonic_err), 0,
     "readers: committed state never goes backwards");
  ok(atomic_load(&sh.ro_txns) > 0, "readers ran read-only txns");

  is(count_rows(s, "A"), want_rows, "final: A rows");
  is(count_rows(s, "B"), want_rows, "final: B rows");
  kj_stats st = KJ_STATS_INIT;
  is(kj_store_stats(s, &st), KJ_OK, "stats");
  is(st.commits, (uint64_t)want_rows, "stats.commits counts every commit");
  is(st.rows, (uint64_t)(2 * want_rows + 2), "stats.rows");
  char *before = NULL;
  is(tu_dump_table(s, NULL, TABLE, &before), KJ_OK, "dump");
  is(kj_store_close(s), KJ_OK, "close");

  s = NULL;
  rc = kj_store_open(dir, &o, &s, NULL);
  is(rc, KJ_OK, "reopen");
  if (s != NULL) {
    char *after = NULL;
    is(tu_dump_table(s, NULL, TABLE, &after), KJ_OK, "dump after reopen");
    ok(before != NULL && after != NULL && strcmp(before, after) == 0,
       "reopen holds exactly the committed rows");
    free(after);
    int err = 0;
    ok(!check_pair(s, NULL, &err) && err == 0, "pair consistent after reopen");
    kj_store_close(s);
  }
  free(before);
  tu_rmrf(dir);
  free(dir);
  return tap_done();
}
