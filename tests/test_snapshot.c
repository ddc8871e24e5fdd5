/*
 * tests/test_snapshot.c - checkpoints and compaction (doc/FORMAT.md
 * sections 6.1 and 6A): round trips, automatic triggering, a crash at every
 * step of the checkpoint protocol, damaged run files, and run + replay
 * equal to pure replay over random workloads. (Run files are read a block
 * at a time: damage inside a block shows when the block is read, which a
 * full read of the store does.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "common/codec.h"
#include "keyjournal/store.h"
#include "tap.h"
#include "testutil.h"

static const unsigned tables[] = {1, 2, 3, 200};
#define NTABLES (sizeof tables / sizeof tables[0])

static char *dump(kj_store *s) {
  char *d = NULL;
  return tu_dump_tables(s, NULL, tables, NTABLES, &d) ? NULL : d;
}

static kj_stats stats(kj_store *s) {
  kj_stats st = KJ_STATS_INIT;
  kj_store_stats(s, &st);
  return st;
}

/* One random transaction: puts, deletes, overwrites; sometimes empty
 * values, sometimes large ones. */
static int random_txn(kj_store *s, tu_rng *r) {
  kj_txn *t;
  int rc = kj_txn_begin(s, 0, &t);
  if (rc)
    return rc;
  int n = 1 + (int)tu_rng_below(r, 6);
  for (int i = 0; i < n && !rc; i++) {
    unsigned table = tables[tu_rng_below(r, NTABLES)];
    char k[24];
    snprintf(k, sizeof k, "key%03u", (unsigned)tu_rng_below(r, 300));
    if (tu_rng_below(r, 4) == 0) {
      rc = kj_delete(s, t, table, k, strlen(k));
    } else {
      size_t vlen = tu_rng_below(r, 10) == 0 ? 0 : tu_rng_below(r, 700);
      if (tu_rng_below(r, 50) == 0)
        vlen = 70000;
      unsigned char *v = malloc(vlen + 1);
      for (size_t j = 0; j < vlen; j++) /* compressible and not */
        v[j] = (unsigned char)(j % 3 ? tu_rng_next(r) : 'x');
      rc = kj_put(s, t, table, k, strlen(k), v, vlen);
      free(v);
    }
  }
  if (rc) {
    kj_txn_rollback(t);
    return rc;
  }
  return kj_txn_commit(t);
}

/* n random transactions from r; the first failure, else KJ_OK. */
static int random_commits(kj_store *s, tu_rng *r, int n) {
  int rc = KJ_OK;
  for (int i = 0; i < n && !rc; i++)
    rc = random_txn(s, r);
  return rc;
}

/* Automatic checkpoints run inline here, so that each test can count them
 * and their files right after the commit that triggers one; the
 * background ones have their own tests below. */
static kj_store *open_store(const char *dir, uint64_t threshold,
                            const kj_vfs *vfs) {
  kj_options o;
  tu_options(&o);
  o.snapshot_threshold = threshold;
  o.checkpoint_inline = 1;
  o.vfs = vfs;
  return tu_store_open(dir, &o);
}

/* A store in a fresh directory (*dir), without automatic snapshots, after
 * n random transactions from r seeded with seed. */
static kj_store *random_store(char **dir, tu_rng *r, uint64_t seed, int n) {
  *dir = tu_mkdtemp();
  kj_store *s = open_store(*dir, UINT64_MAX, NULL);
  tu_rng_seed(r, seed);
  random_commits(s, r, n);
  return s;
}

/* ---- round trip --------------------------------------------------------- */

static void test_round_trip(void) {
  char *dir = tu_mkdtemp();
  kj_store *s = open_store(dir, UINT64_MAX, NULL);
  tu_rng r;
  tu_rng_seed(&r, 1);
  is(random_commits(s, &r, 300), KJ_OK, "300 random commits");
  kj_stats before = stats(s);
  ok(before.segments > 2, "several segments before the checkpoint (%llu)",
     (unsigned long long)before.segments);
  char *want = dump(s);
  is(kj_store_checkpoint(s), KJ_OK, "kj_store_checkpoint");
  kj_stats st = stats(s);
  is(st.snapshots_written, 1, "one snapshot written");
  is(st.snapshot_seq, before.last_seq, "it covers the newest frame");
  is(st.snapshot_rows, before.rows, "it holds every row");
  ok(st.snapshot_bytes > 0 && st.snapshot_raw_bytes > st.snapshot_bytes,
     "compressed: %llu raw bytes in %llu",
     (unsigned long long)st.snapshot_raw_bytes,
     (unsigned long long)st.snapshot_bytes);
  is(st.segments, 1, "older segments removed");
  is(st.journal_bytes, 0, "journal since the snapshot is empty");
  is(tu_count_prefix(dir, "journal-"), 1, "one segment file left");
  is(tu_count_prefix(dir, "run-"), 1, "one run file");
  is(kj_store_checkpoint(s), KJ_OK, "a second checkpoint with nothing new");
  is(stats(s).snapshots_written, 1, "wrote nothing");
  char *same = dump(s);
  ok(want && same && !strcmp(want, same), "state unchanged by checkpoint");
  free(same);
  random_commits(s, &r, 20);
  char *want2 = dump(s);
  kj_store_close(s);

  s = open_store(dir, UINT64_MAX, NULL);
  ok(s != NULL, "reopen");
  if (s) {
    char *got = dump(s);
    ok(got && want2 && !strcmp(got, want2), "snapshot + replay = state");
    st = stats(s);
    ok(st.frames_replayed <= 21,
       "only frames after the snapshot replayed "
       "(%llu)",
       (unsigned long long)st.frames_replayed);
    is(st.snapshot_seq, before.last_seq, "stats name the snapshot loaded");
    free(got);
    kj_store_close(s);
  }
  /* Read-only open of a store with a snapshot. */
  kj_options o;
  tu_options(&o);
  o.read_only = 1;
  char *em = NULL;
  int rc = kj_store_open(dir, &o, &s, &em);
  is(rc, KJ_OK, "read-only open with a snapshot");
  if (!rc) {
    char *got = dump(s);
    ok(got && !strcmp(got, want2), "read-only sees the same state");
    free(got);
    kj_store_close(s);
  }
  kj_free(em);
  free(want);
  free(want2);
  tu_rmrf(dir);
  free(dir);
}

/* An empty store and a store whose rows were all deleted. */
static void test_empty(void) {
  char *dir = tu_mkdtemp();
  kj_store *s = open_store(dir, UINT64_MAX, NULL);
  is(kj_store_checkpoint(s), KJ_OK, "checkpoint of a new store: no-op");
  is(tu_count_prefix(dir, "run-"), 0, "no run file for no commits");
  kj_put(s, NULL, 1, "a", 1, "b", 1);
  kj_delete(s, NULL, 1, "a", 1);
  is(kj_store_checkpoint(s), KJ_OK, "checkpoint of an emptied store");
  kj_store_close(s);
  s = open_store(dir, UINT64_MAX, NULL);
  ok(s && stats(s).rows == 0 && stats(s).snapshot_seq == 2,
     "reopen: empty snapshot at seq 2");
  kj_store_close(s);
  tu_rmrf(dir);
  free(dir);
}

/* ---- automatic trigger ------------------------------------------------ */

static void test_auto(void) {
  char *dir = tu_mkdtemp();
  kj_store *s = open_store(dir, 32 * 1024, NULL);
  tu_rng r;
  tu_rng_seed(&r, 2);
  is(random_commits(s, &r, 600), KJ_OK,
     "600 commits with a 32 KiB snapshot threshold");
  kj_stats st = stats(s);
  ok(st.snapshots_written >= 5, "automatic snapshots written (%llu)",
     (unsigned long long)st.snapshots_written);
  ok(st.journal_bytes < 32 * 1024 + 100000,
     "journal since the last snapshot stays near the threshold (%llu)",
     (unsigned long long)st.journal_bytes);
  is(st.snapshot_failures, 0, "no automatic snapshot failed");
  ok(tu_count_prefix(dir, "journal-") <= 3 && tu_count_prefix(dir, "run-") == 1,
     "old files removed (%d segments, %d runs)",
     tu_count_prefix(dir, "journal-"), tu_count_prefix(dir, "run-"));
  char *want = dump(s);
  kj_store_close(s);
  s = open_store(dir, 32 * 1024, NULL);
  char *got = s ? dump(s) : NULL;
  ok(got && want && !strcmp(got, want), "reopen: same state");
  free(got);
  free(want);
  kj_store_close(s);
  tu_rmrf(dir);
  free(dir);
}

/* ---- a crash at every step of the protocol ---------------------------- */

/* Base store: some commits, one snapshot, more commits (so the checkpoint
 * under test replaces a snapshot and several segments). */
static char *make_base(char **want) {
  char *dir;
  tu_rng r;
  kj_store *s = random_store(&dir, &r, 3, 60);
  kj_store_checkpoint(s);
  random_commits(s, &r, 60);
  *want = dump(s);
  kj_store_close(s);
  return dir;
}

static void test_crash_steps(void) {
  char *want;
  char *base = make_base(&want);
  /* Count the VFS calls of one checkpoint, per method. */
  uint64_t calls[TU_NMETHODS];
  {
    char *w = tu_mkdtemp();
    tu_copy_dir(base, w);
    tu_vfs tv;
    tu_vfs_init(&tv);
    kj_store *s = open_store(w, UINT64_MAX, &tv.vfs);
    tu_vfs_reset_counts(&tv);
    is(kj_store_checkpoint(s), KJ_OK, "reference checkpoint");
    for (int m = 0; m < TU_NMETHODS; m++)
      calls[m] = tu_vfs_calls(&tv, (tu_method)m);
    kj_store_close(s);
    tu_vfs_destroy(&tv);
    tu_rmrf(w);
    free(w);
  }
  int points = 0, bad_open = 0, bad_state = 0, bad_after = 0;
  for (int m = 0; m < TU_NMETHODS; m++) {
    if (m == TU_CLOSE)
      continue; /* close never fails (the handle is freed either way) */
    for (uint64_t n = 1; n <= calls[m]; n++) {
      char *w = tu_mkdtemp(), *img = tu_mkdtemp();
      tu_copy_dir(base, w);
      tu_vfs tv;
      tu_vfs_init(&tv);
      kj_store *s = open_store(w, UINT64_MAX, &tv.vfs);
      /* Fail call n of method m and every later one: from there on the
       * process does nothing more, as if it had crashed. */
      tu_vfs_arm(&tv, (tu_method)m, n, KJ_EIO, TU_ARM_PERSIST);
      kj_store_checkpoint(s);
      tu_copy_dir(w, img); /* the crash image */
      tu_vfs_disarm(&tv);
      kj_store_close(s);
      tu_vfs_destroy(&tv);
      points++;
      kj_store *r = open_store(img, UINT64_MAX, NULL);
      if (!r) {
        bad_open++;
        printf("# crash at %s #%llu: reopen failed\n",
               tu_method_name((tu_method)m), (unsigned long long)n);
      } else {
        char *got = dump(r);
        if (!got || strcmp(got, want)) {
          bad_state++;
          printf("# crash at %s #%llu: wrong state\n",
                 tu_method_name((tu_method)m), (unsigned long long)n);
        }
        free(got);
        /* The recovered store takes commits and checkpoints again. */
        if (kj_put(r, NULL, 1, "after", 5, "x", 1) || kj_store_checkpoint(r) ||
            kj_store_close(r) || !(r = open_store(img, UINT64_MAX, NULL)) ||
            tu_count_prefix(img, "run-") != 1 ||
            tu_count_prefix(img, "journal-") != 1)
          bad_after++;
        kj_store_close(r);
      }
      tu_rmrf(w);
      tu_rmrf(img);
      free(w);
      free(img);
    }
  }
  ok(points >= 15, "crashed the checkpoint at each of its %d VFS calls",
     points);
  is(bad_open, 0, "every crash image opens");
  is(bad_state, 0, "every crash image holds exactly the committed state");
  is(bad_after, 0, "every recovered store checkpoints again, leftovers gone");
  free(want);
  tu_rmrf(base);
  free(base);
}

/* ---- damaged snapshots ------------------------------------------------ */

static char *run_path(const char *dir) {
  char cmd[512], name[128] = "";
  snprintf(cmd, sizeof cmd, "ls %s | grep '^run-' | tail -n 1", dir);
  FILE *p = popen(cmd, "r");
  if (p) {
    if (!fgets(name, sizeof name, p))
      name[0] = 0;
    pclose(p);
  }
  name[strcspn(name, "\n")] = 0;
  return name[0] ? tu_path(dir, name) : NULL;
}

/* Open dir and read every row: the first failure, its message in em. */
static int open_and_read(const char *dir, char *em, size_t cap) {
  kj_options o;
  tu_options(&o);
  kj_store *s = NULL;
  char *m = NULL;
  int rc = kj_store_open(dir, &o, &s, &m);
  snprintf(em, cap, "%s", m ? m : "");
  kj_free(m);
  if (rc)
    return rc;
  char *d = NULL;
  rc = tu_dump_tables(s, NULL, tables, NTABLES, &d);
  free(d);
  snprintf(em, cap, "%s", kj_store_errmsg(s));
  kj_store_close(s);
  return rc;
}

typedef struct damage {
  const char *what;
  int kind; /* 0 flip at off, 1 truncate to off, 2 append junk */
  long off; /* negative: from the end */
} damage;

static void test_damaged(void) {
  char *dir;
  tu_rng r;
  kj_store *s = random_store(&dir, &r, 4, 80);
  kj_store_checkpoint(s);
  char *older = tu_mkdtemp();
  tu_copy_dir(dir, older); /* holds the first snapshot */
  random_commits(s, &r, 80);
  kj_store_checkpoint(s);
  kj_store_close(s);
  char *snap = run_path(dir);
  size_t n = 0;
  unsigned char *orig = snap ? tu_read_file(snap, &n) : NULL;
  ok(orig && n > 200, "run file of %zu bytes", n);
  const damage ds[] = {
      {"flipped magic", 0, 1},
      {"flipped seq in the header", 0, 33},
      {"flipped nonce prefix in the header", 0, 60},
      {"flipped byte in the first block", 0, 100},
      {"flipped byte in the first block's length", 0, 81},
      {"flipped byte in the footer", 0, -40},
      {"flipped last byte", 0, -1},
      {"cut in the middle", 1, -(long)(n / 2)},
      {"last byte cut", 1, -1},
      {"cut to the header", 1, 64},
      {"junk after the footer", 2, 0},
  };
  const char *base = strrchr(snap ? snap : "/", '/') + 1;
  for (size_t i = 0; orig && i < sizeof ds / sizeof ds[0]; i++) {
    char *w = tu_mkdtemp();
    tu_copy_dir(dir, w);
    char *p = run_path(w);
    unsigned char *b = malloc(n + 8);
    memcpy(b, orig, n);
    size_t len = n;
    long off = ds[i].off < 0 ? (long)n + ds[i].off : ds[i].off;
    if (ds[i].kind == 0)
      b[off] ^= 0x20;
    else if (ds[i].kind == 1)
      len = (size_t)off;
    else {
      memcpy(b + n, "JUNKJUNK", 8);
      len = n + 8;
    }
    tu_write_file(p, b, len);
    char em[600];
    int rc = open_and_read(w, em, sizeof em);
    ok(rc == KJ_ECORRUPT && strstr(em, base), "%s: KJ_ECORRUPT naming %s (%s)",
       ds[i].what, base, em);
    free(b);
    free(p);
    tu_rmrf(w);
    free(w);
  }
  /* The newest snapshot damaged beside an intact older one: never fall
   * back to the older state. */
  {
    char *w = tu_mkdtemp();
    tu_copy_dir(older, w); /* older snapshot + its segments */
    tu_copy_dir(dir, w);   /* newest snapshot + segments */
    char *p = run_path(w);
    unsigned char *b = malloc(n);
    memcpy(b, orig, n);
    b[n / 2] ^= 1;
    tu_write_file(p, b, n);
    char em[600];
    is(open_and_read(w, em, sizeof em), KJ_ECORRUPT,
       "damaged newest run beside an intact older one: KJ_ECORRUPT, no "
       "rollback");
    free(b);
    free(p);
    tu_rmrf(w);
    free(w);
  }
  /* The snapshot deleted: the segments it replaced are gone too. */
  {
    char *w = tu_mkdtemp();
    tu_copy_dir(dir, w);
    char *p = run_path(w);
    remove(p);
    kj_options o;
    tu_options(&o);
    int rc = kj_store_open(w, &o, &s, NULL);
    is(rc, KJ_ECORRUPT, "run removed: KJ_ECORRUPT, not an empty store");
    if (!rc)
      kj_store_close(s);
    free(p);
    tu_rmrf(w);
    free(w);
  }
  /* A snapshot with the wrong key is not readable either. */
  {
    kj_options o;
    tu_options(&o);
    o.key = tu_key_other;
    is(kj_store_open(dir, &o, &s, NULL), KJ_EKEY, "wrong key: KJ_EKEY");
  }
  free(orig);
  free(snap);
  tu_rmrf(dir);
  tu_rmrf(older);
  free(dir);
  free(older);
}

/* A store in dir of 3000 rows of 1 KiB random bytes (a run of many
 * blocks), checkpointed and closed; KJ_OK or the first failure. */
static int write_big_store(const char *dir) {
  kj_store *s = open_store(dir, UINT64_MAX, NULL);
  tu_rng r;
  tu_rng_seed(&r, 5);
  unsigned char v[1024];
  int rc = KJ_OK;
  for (int i = 0; i < 3000 && !rc; i++) { /* ~3 MiB, incompressible */
    char k[16];
    snprintf(k, sizeof k, "r%05d", i);
    tu_rng_fill(&r, v, sizeof v);
    rc = kj_put(s, NULL, 2, k, strlen(k), v, sizeof v);
  }
  rc = rc ? rc : kj_store_checkpoint(s);
  kj_store_close(s);
  return rc;
}

/* A run of many blocks with one byte flipped in the middle of the file:
 * the open reads only the header, footer and index, so it succeeds, and
 * so does a read of a row in another block; reading the damaged block
 * fails with KJ_ECORRUPT naming the file and the block, every time. */
static void test_block_damage(void) {
  char *dir = tu_mkdtemp();
  is(write_big_store(dir), KJ_OK, "3000 rows of random bytes, checkpointed");
  char *run = run_path(dir);
  size_t n = 0;
  unsigned char *b = run ? tu_read_file(run, &n) : NULL;
  ok(b && n > 3000 * 1024, "run file of %zu bytes", n);
  if (b) {
    b[n / 2] ^= 0x10;
    tu_write_file(run, b, n);
    kj_options o;
    tu_options(&o);
    kj_store *s = NULL;
    char *em = NULL;
    int rc = kj_store_open(dir, &o, &s, &em);
    is(rc, KJ_OK, "open reads no block: it succeeds (%s)", em ? em : "");
    kj_free(em);
    if (!rc) {
      void *v = NULL;
      size_t vl = 0;
      is(kj_get(s, NULL, 2, "r00000", 6, &v, &vl), KJ_OK,
         "a row of the first block reads");
      is(vl, 1024, "... whole");
      kj_free(v);
      char *d = NULL;
      for (int i = 0; i < 2; i++) {
        rc = tu_dump_tables(s, NULL, tables, NTABLES, &d);
        free(d);
        d = NULL;
        const char *m = kj_store_errmsg(s);
        ok(rc == KJ_ECORRUPT && strstr(m, strrchr(run, '/') + 1) &&
               strstr(m, "block"),
           "read %d of every row: KJ_ECORRUPT naming the file and block "
           "(%s)",
           i + 1, m);
      }
      kj_store_close(s);
    }
  }
  free(b);
  free(run);
  tu_rmrf(dir);
  free(dir);
}

/* A run file being written when the process died (NAME.tmp) is removed by
 * the next read-write open, not by a read-only one. */
static void test_run_tmp_leftover(void) {
  char *dir = tu_mkdtemp();
  kj_store *s = open_store(dir, UINT64_MAX, NULL);
  kj_put(s, NULL, 1, "k", 1, "v", 1);
  kj_store_checkpoint(s);
  kj_store_close(s);
  char *tmp = tu_path(dir, "run-00000000000000ff.kjr.tmp");
  tu_write_file(tmp, "partial", 7);
  kj_options o;
  tu_options(&o);
  o.read_only = 1;
  s = tu_store_open(dir, &o);
  kj_store_close(s);
  ok(access(tmp, F_OK) == 0, "run .tmp leftover: a read-only open keeps it");
  s = open_store(dir, UINT64_MAX, NULL);
  ok(s && tu_get_str_eq(s, NULL, 1, "k", "v"), "... the store opens");
  kj_store_close(s);
  ok(access(tmp, F_OK) != 0, "... a read-write open removes it");
  free(tmp);
  tu_rmrf(dir);
  free(dir);
}

/* ---- background checkpoints ------------------------------------------- */

/* Two stores fed the same random transactions: a disk store whose
 * automatic checkpoints run in the background (the default), and a
 * memory-only one. They show the same rows after every step, while
 * checkpoints run and after they are installed, and after a reopen. */
static void test_background(void) {
  char *dir = tu_mkdtemp();
  kj_options o;
  tu_options(&o);
  o.snapshot_threshold = 16 * 1024;
  kj_store *s = tu_store_open(dir, &o);
  kj_store *m = tu_store_open(NULL, &o);
  tu_rng r1, r2;
  tu_rng_seed(&r1, 77);
  tu_rng_seed(&r2, 77);
  int bad = 0, rc = KJ_OK;
  for (int i = 0; i < 400 && !rc; i++) {
    rc = random_txn(s, &r1);
    if (!rc)
      rc = random_txn(m, &r2);
    if (i % 20 == 19) {
      char *a = dump(s), *b = dump(m);
      bad += !a || !b || strcmp(a, b);
      free(a);
      free(b);
    }
  }
  is(rc, KJ_OK, "background: 400 commits on both stores");
  is(bad, 0, "background: both show the same rows at every 20th commit");
  kj_stats st = stats(s), sm = stats(m);
  ok(st.snapshots_written >= 3, "background: %llu checkpoints installed",
     (unsigned long long)st.snapshots_written);
  is(st.snapshot_failures, 0, "background: none failed");
  ok(st.rows == sm.rows && st.logical_bytes == sm.logical_bytes,
     "background: the counts agree (%llu rows)", (unsigned long long)st.rows);
  char *want = dump(m);
  kj_store_close(s);
  s = tu_store_open(dir, &o);
  char *got = s ? dump(s) : NULL;
  ok(got && want && !strcmp(got, want), "background: reopened, same rows");
  ok(s && stats(s).frames_replayed < 400,
     "background: the reopen replayed only what came after the run (%llu)",
     s ? (unsigned long long)stats(s).frames_replayed : 0ULL);
  free(got);
  free(want);
  kj_store_close(s);
  kj_store_close(m);
  tu_rmrf(dir);
  free(dir);
}

/* A background checkpoint that fails (its rename, then every VFS call of
 * one kind in turn): the commits go on, the failure is counted, the rows
 * stay right, and kj_store_checkpoint() later merges what it left. */
static void test_background_failure(void) {
  int bad = 0, cases = 0, counted = 0;
  for (int m = TU_OPEN; m < TU_NMETHODS; m++) {
    if (m == TU_CLOSE || m == TU_LOCK || m == TU_MKDIR)
      continue;
    char *dir = tu_mkdtemp();
    tu_vfs tv;
    kj_options o;
    tu_options_vfs(&o, &tv);
    o.snapshot_threshold = 16 * 1024;
    kj_store *s = tu_store_open(dir, &o);
    tu_rng r;
    tu_rng_seed(&r, 88);
    int rc = random_commits(s, &r, 30);
    /* The next calls of method m fail once: some belong to the checkpoint
     * thread (which one depends on timing), some to commits. */
    tu_vfs_arm(&tv, (tu_method)m, 1, KJ_EIO, TU_ARM_ONCE);
    for (int i = 0; i < 100 && !rc; i++) {
      rc = random_txn(s, &r);
      if (rc == KJ_EIO || rc == KJ_EPOISONED)
        break; /* a commit's own call failed: that is the commit's */
    }
    tu_vfs_disarm(&tv);
    cases++;
    counted += stats(s).snapshot_failures > 0;
    if (rc == KJ_OK) {
      char *before = dump(s);
      int ck = kj_store_checkpoint(s);
      char *after = dump(s);
      if (ck || !before || !after || strcmp(before, after)) {
        bad++;
        printf("# background failure at %s: checkpoint %d\n",
               tu_method_name((tu_method)m), ck);
      }
      kj_store_close(s);
      kj_store *t = tu_store_open(dir, &o);
      char *again = t ? dump(t) : NULL;
      if (!again || !before || strcmp(again, before)) {
        bad++;
        printf("# background failure at %s: reopen differs\n",
               tu_method_name((tu_method)m));
      }
      free(again);
      kj_store_close(t);
      free(before);
      free(after);
    } else {
      kj_store_close(s);
      kj_store *t = tu_store_open(dir, &o);
      if (!t) {
        bad++;
        printf("# background failure at %s: no reopen\n",
               tu_method_name((tu_method)m));
      }
      kj_store_close(t);
    }
    tu_vfs_destroy(&tv);
    tu_rmrf(dir);
    free(dir);
  }
  ok(cases >= 8, "background failures: %d methods failed once", cases);
  ok(counted >= 3, "background failures: %d counted as failed checkpoints",
     counted);
  is(bad, 0,
     "background failures: rows kept, a later checkpoint merges, reopen "
     "equal");
}

/* A close while a background checkpoint of a large store runs: the
 * thread gives up (or finishes), and the reopened store has every row. */
static void test_background_close(void) {
  char *dir = tu_mkdtemp();
  is(write_big_store(dir), KJ_OK, "background close: 3000 rows");
  kj_options o;
  tu_options(&o);
  o.snapshot_threshold = 1024; /* the next commit starts a checkpoint */
  kj_store *s = tu_store_open(dir, &o);
  unsigned char v[1024];
  memset(v, 7, sizeof v);
  int rc = KJ_OK;
  for (int i = 0; i < 3 && !rc; i++)
    rc = kj_put(s, NULL, 2, "r99999", 6, v, sizeof v);
  is(rc, KJ_OK, "background close: commits that start a checkpoint");
  is(kj_store_close(s), KJ_OK, "background close: close at once");
  s = tu_store_open(dir, &o);
  uint64_t rows = 0;
  if (s)
    kj_table_count(s, 2, &rows, NULL);
  is(rows, 3001, "background close: reopened with every row");
  ok(s && tu_get_eq(s, NULL, 2, "r99999", 6, v, sizeof v),
     "background close: the last commit is there");
  kj_store_close(s);
  tu_rmrf(dir);
  free(dir);
}

/* ---- snapshot + replay = pure replay ---------------------------------- */

static void test_equivalence(void) {
  int bad = 0, runs = 0;
  for (uint64_t seed = 10; seed < 22; seed++) {
    char *a = tu_mkdtemp(), *b = tu_mkdtemp();
    kj_store *pure = open_store(a, UINT64_MAX, NULL);
    kj_store *snap = open_store(b, 8 * 1024, NULL); /* frequent automatic */
    kj_options mo;
    tu_options(&mo);
    kj_store *mem = NULL;
    kj_store_open(NULL, &mo, &mem, NULL);
    tu_rng ra, rb, rm, pick;
    tu_rng_seed(&ra, seed);
    tu_rng_seed(&rb, seed);
    tu_rng_seed(&rm, seed);
    tu_rng_seed(&pick, seed * 7);
    for (int i = 0; i < 250; i++) {
      random_txn(pure, &ra);
      random_txn(snap, &rb);
      random_txn(mem, &rm);
      if (tu_rng_below(&pick, 40) == 0)
        kj_store_checkpoint(snap);
      if (tu_rng_below(&pick, 60) == 0) { /* reopen mid-way */
        kj_store_close(snap);
        snap = open_store(b, 8 * 1024, NULL);
      }
    }
    kj_store_close(pure);
    kj_store_close(snap);
    pure = open_store(a, UINT64_MAX, NULL);
    snap = open_store(b, 8 * 1024, NULL);
    char *da = pure ? dump(pure) : NULL, *db = snap ? dump(snap) : NULL,
         *dm = dump(mem);
    runs++;
    if (!da || !db || !dm || strcmp(da, db) || strcmp(da, dm)) {
      bad++;
      printf("# seed %llu: states differ\n", (unsigned long long)seed);
    }
    if (snap && stats(snap).snapshot_seq == 0)
      bad++;
    free(da);
    free(db);
    free(dm);
    kj_store_close(pure);
    kj_store_close(snap);
    kj_store_close(mem);
    tu_rmrf(a);
    tu_rmrf(b);
    free(a);
    free(b);
  }
  is(runs, 12, "12 random workloads");
  is(bad, 0, "snapshot + replay equals pure replay and the memory model");
}

int main(void) {
  test_round_trip();
  test_empty();
  test_auto();
  test_crash_steps();
  test_damaged();
  test_block_damage();
  test_run_tmp_leftover();
  test_background();
  test_background_failure();
  test_background_close();
  test_equivalence();
  return tap_done();
}
