/*
 * tests/test_faultvfs.c - the oracle's fault-injecting VFS as a disk model:
 * unsynced writes lost, kept, torn or garbled at a crash; synced data
 * surviving every damage pattern; creations, renames and unlinks undone
 * unless a directory sync made them durable; reads and sizes seeing the
 * pending writes (shared between handles); set_crash_at killing an
 * operation and all later ones; Nth-call faults once and persistent; and a
 * real store surviving a crash through it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "oracle.h"
#include "tap.h"
#include "testutil.h"

static const kj_vfs *V;
static void *C;

static kj_vfs_file *vopen(const char *path, unsigned flags) {
  kj_vfs_file *h = NULL;
  if (V->open(C, path, flags, &h) != KJ_OK)
    return NULL;
  return h;
}

static int vwrite_fill(kj_vfs_file *h, int c, size_t n, uint64_t off) {
  uint8_t *b = malloc(n);
  memset(b, c, n);
  int rc = V->write(C, h, b, n, off);
  free(b);
  return rc;
}

static int all_bytes(const uint8_t *p, size_t from, size_t to, int c) {
  for (size_t i = from; i < to; i++)
    if (p[i] != (uint8_t)c)
      return 0;
  return 1;
}

/* A durable file of n bytes of c at path (created, synced, dir synced). */
static void durable_file(const char *dir, const char *path, int c, size_t n) {
  kj_vfs_file *h = vopen(path, KJ_VFS_WRITE | KJ_VFS_CREATE);
  vwrite_fill(h, c, n, 0);
  V->sync(C, h);
  V->close(C, h);
  V->sync_dir(C, dir);
}

static ora_fault_vfs *fresh(uint64_t seed) {
  ora_fault_vfs *f = ora_fault_vfs_new(seed);
  V = ora_fault_vfs_get(f);
  C = V->ctx;
  return f;
}

static void test_pending_reads(const char *dir) {
  ora_fault_vfs *f = fresh(1);
  char *p = tu_path(dir, "a");
  durable_file(dir, p, 'B', 1000);
  kj_vfs_file *h1 = vopen(p, KJ_VFS_WRITE), *h2 = vopen(p, KJ_VFS_READ);
  ok(h1 && h2, "two handles on one path");
  vwrite_fill(h1, 'A', 100, 950); /* extends to 1050 */
  uint64_t sz = 0;
  V->size(C, h2, &sz);
  is(sz, 1050, "size through the other handle counts the pending write");
  uint8_t buf[200];
  size_t got = 0;
  V->read(C, h2, buf, sizeof buf, 900, &got);
  is(got, 150, "short read at logical EOF");
  ok(all_bytes(buf, 0, 50, 'B') && all_bytes(buf, 50, 150, 'A'),
     "read sees durable bytes with the pending write over them");
  size_t rl = 0;
  uint8_t *r = tu_read_file(p, &rl);
  is(rl, 1000, "real file holds only the durable bytes");
  free(r);
  V->truncate(C, h1, 10);
  V->size(C, h2, &sz);
  is(sz, 10, "pending truncate shrinks the logical size");
  vwrite_fill(h1, 'C', 5, 20);
  V->read(C, h2, buf, 30, 0, &got);
  ok(got == 25 && all_bytes(buf, 0, 10, 'B') && all_bytes(buf, 10, 20, 0) &&
         all_bytes(buf, 20, 25, 'C'),
     "write after truncate leaves a zero gap");
  V->close(C, h1);
  V->close(C, h2);
  ora_fault_vfs_crash(f, ORA_CRASH_DROP);
  r = tu_read_file(p, &rl);
  ok(r && rl == 1000 && all_bytes(r, 0, 1000, 'B'),
     "crash DROP: truncate and writes lost, durable bytes intact");
  free(r);
  ora_fault_vfs_free(f);
  free(p);
}

/* On a fresh fault VFS (seed): 4096 durable bytes of old in file p, an
 * unsynced write of n bytes of 'A' at off, then a crash with pattern. The
 * file's real bytes afterwards (malloc'd, *rl of them). */
static uint8_t *crash_after_write(const char *dir, const char *p, uint64_t seed,
                                  int old, size_t n, uint64_t off, int pattern,
                                  size_t *rl) {
  ora_fault_vfs *f = fresh(seed);
  durable_file(dir, p, old, 4096);
  kj_vfs_file *h = vopen(p, KJ_VFS_WRITE);
  vwrite_fill(h, 'A', n, off);
  V->close(C, h);
  ora_fault_vfs_crash(f, pattern);
  uint8_t *r = tu_read_file(p, rl);
  ora_fault_vfs_free(f);
  return r;
}

static void test_patterns(const char *dir) {
  char *p = tu_path(dir, "b");
  /* DROP and KEEP. */
  for (int pat = 0; pat < 2; pat++) {
    size_t rl;
    uint8_t *r = crash_after_write(dir, p, 2, 'B', 4096, 0, pat, &rl);
    ok(r && rl == 4096 && all_bytes(r, 0, 4096, pat ? 'A' : 'B'),
       "unsynced write %s by crash pattern %d", pat ? "kept" : "lost", pat);
    free(r);
  }
  /* TEAR: a strict prefix of the last write survives. */
  int torn_ok = 1, torn_some = 0;
  for (uint64_t seed = 0; seed < 8; seed++) {
    size_t rl, k = 0;
    uint8_t *r =
        crash_after_write(dir, p, seed, 'B', 4096, 0, ORA_CRASH_TEAR, &rl);
    while (r && k < rl && r[k] == 'A')
      k++;
    if (!r || rl != 4096 || k >= 4096 || !all_bytes(r, k, 4096, 'B'))
      torn_ok = 0;
    torn_some += k > 0;
    free(r);
  }
  ok(torn_ok, "crash TEAR: a strict prefix of the last write, then old bytes");
  ok(torn_some > 0, "crash TEAR: some tears keep a non-empty prefix");
  /* GARBAGE: one sector of the write's bytes garbled, the rest exact. */
  int garb_ok = 1;
  for (uint64_t seed = 0; seed < 8; seed++) {
    size_t rl;
    uint8_t *r =
        crash_after_write(dir, p, seed, 0, 1024, 512, ORA_CRASH_GARBAGE, &rl);
    int s1 = r && all_bytes(r, 512, 1024, 'A');
    int s2 = r && all_bytes(r, 1024, 1536, 'A');
    if (!r || rl != 4096 || !all_bytes(r, 0, 512, 0) ||
        !all_bytes(r, 1536, 4096, 0) || s1 == s2)
      garb_ok = 0;
    free(r);
  }
  ok(garb_ok, "crash GARBAGE: exactly one sector of the write garbled");
  /* Synced data survives every pattern. */
  for (int pat = 0; pat < ORA_CRASH_NPATTERNS; pat++) {
    ora_fault_vfs *f = fresh((uint64_t)pat + 100);
    durable_file(dir, p, 'B', 4096);
    kj_vfs_file *h = vopen(p, KJ_VFS_WRITE);
    vwrite_fill(h, 'S', 2048, 0);
    V->sync(C, h);
    vwrite_fill(h, 'U', 2048, 2048);
    V->close(C, h);
    ora_fault_vfs_crash(f, pat);
    size_t rl;
    uint8_t *r = tu_read_file(p, &rl);
    ok(r && rl == 4096 && all_bytes(r, 0, 2048, 'S'),
       "synced bytes survive crash pattern %d", pat);
    free(r);
    ora_fault_vfs_free(f);
  }
  /* RANDOM: over many writes some are kept and some not. */
  {
    ora_fault_vfs *f = fresh(7);
    durable_file(dir, p, 'B', 64 * 16);
    kj_vfs_file *h = vopen(p, KJ_VFS_WRITE);
    for (int i = 0; i < 64; i++)
      vwrite_fill(h, 'A', 16, (uint64_t)i * 16);
    V->close(C, h);
    ora_fault_vfs_crash(f, ORA_CRASH_RANDOM);
    size_t rl;
    uint8_t *r = tu_read_file(p, &rl);
    int kept = 0, lost = 0;
    for (int i = 0; r && i < 64; i++) {
      kept += all_bytes(r, (size_t)i * 16, (size_t)i * 16 + 16, 'A');
      lost += all_bytes(r, (size_t)i * 16, (size_t)i * 16 + 16, 'B');
    }
    ok(kept > 0 && lost > 0, "crash RANDOM keeps some writes, drops others");
    free(r);
    ora_fault_vfs_free(f);
  }
  free(p);
}

static int exists(const char *p) {
  size_t n;
  uint8_t *r = tu_read_file(p, &n);
  if (!r)
    return 0;
  free(r);
  return 1;
}

static void test_dirops(const char *dir) {
  char *a = tu_path(dir, "x"), *b = tu_path(dir, "y"), *c = tu_path(dir, "z");
  size_t rl;
  uint8_t *r;
  for (int pat = 0; pat < 2; pat++) {
    tu_rmrf(a), tu_rmrf(b), tu_rmrf(c);
    ora_fault_vfs *f = fresh(3);
    durable_file(dir, b, 'O', 100); /* old y, durable */
    durable_file(dir, c, 'Z', 50);  /* z, durable */
    /* Non-durable: create x, write and sync its data, rename x -> y over
     * the old y, unlink z. */
    kj_vfs_file *h = vopen(a, KJ_VFS_WRITE | KJ_VFS_CREATE | KJ_VFS_EXCL);
    vwrite_fill(h, 'N', 10, 0);
    V->sync(C, h);
    V->close(C, h);
    V->rename(C, a, b);
    V->unlink(C, c);
    ok(!exists(a) && !exists(c), "rename and unlink happen at once");
    ora_fault_vfs_crash(f, pat);
    if (pat == ORA_CRASH_DROP) {
      r = tu_read_file(b, &rl);
      ok(!exists(a) && r && rl == 100 && all_bytes(r, 0, 100, 'O'),
         "non-durable rename undone: old target back, source creation gone");
      free(r);
      r = tu_read_file(c, &rl);
      ok(r && rl == 50 && all_bytes(r, 0, 50, 'Z'),
         "non-durable unlink undone with the durable content");
      free(r);
    } else {
      r = tu_read_file(b, &rl);
      ok(!exists(a) && r && rl == 10 && all_bytes(r, 0, 10, 'N'),
         "crash KEEP: rename kept");
      free(r);
      ok(!exists(c), "crash KEEP: unlink kept");
    }
    ora_fault_vfs_free(f);
  }
  /* Durable ones stay whatever the pattern. */
  tu_rmrf(a), tu_rmrf(b), tu_rmrf(c);
  ora_fault_vfs *f = fresh(4);
  durable_file(dir, c, 'Z', 50);
  kj_vfs_file *h = vopen(a, KJ_VFS_WRITE | KJ_VFS_CREATE);
  vwrite_fill(h, 'N', 10, 0);
  V->sync(C, h);
  V->close(C, h);
  V->rename(C, a, b);
  V->unlink(C, c);
  V->sync_dir(C, dir);
  ora_fault_vfs_crash(f, ORA_CRASH_DROP);
  r = tu_read_file(b, &rl);
  ok(r && rl == 10 && !exists(a) && !exists(c),
     "durable create, rename and unlink survive crash DROP");
  free(r);
  /* A non-durable creation vanishes even with its data synced. */
  h = vopen(a, KJ_VFS_WRITE | KJ_VFS_CREATE);
  vwrite_fill(h, 'N', 10, 0);
  V->sync(C, h);
  V->close(C, h);
  ora_fault_vfs_crash(f, ORA_CRASH_DROP);
  ok(!exists(a), "non-durable creation undone by crash DROP");
  /* A sync of another directory does not help. */
  char *sub = tu_path(dir, "sub");
  V->mkdir(C, sub);
  h = vopen(a, KJ_VFS_WRITE | KJ_VFS_CREATE);
  V->close(C, h);
  V->sync_dir(C, sub);
  ora_fault_vfs_crash(f, ORA_CRASH_DROP);
  ok(!exists(a), "sync_dir of another directory leaves a creation undoable");
  tu_rmrf(sub);
  free(sub);
  ora_fault_vfs_free(f);
  free(a), free(b), free(c);
}

static void count_dirop(void *arg, uint64_t op, int kind) {
  (void)op;
  int *n = arg;
  n[kind == 'u' ? 0 : kind == 'r' ? 1 : 2]++;
}

/* RANDOM: unsynced directory operations survive each on its own, those on
 * one name in order. Over many seeds: the source and the target of a
 * rename never both exist; an unlink survives while an earlier rename is
 * lost (the order across names is not kept), and the other way round. */
static void test_dirops_random(const char *dir) {
  char *a = tu_path(dir, "x"), *b = tu_path(dir, "y"), *c = tu_path(dir, "z");
  int orphan = 0, unlink_only = 0, rename_only = 0, hooked[3] = {0, 0, 0};
  for (uint64_t seed = 1; seed <= 64; seed++) {
    tu_rmrf(a), tu_rmrf(b), tu_rmrf(c);
    ora_fault_vfs *f = fresh(seed);
    ora_fault_vfs_on_dirop(f, count_dirop, hooked);
    durable_file(dir, c, 'Z', 50);
    kj_vfs_file *h = vopen(a, KJ_VFS_WRITE | KJ_VFS_CREATE | KJ_VFS_EXCL);
    vwrite_fill(h, 'N', 10, 0);
    V->sync(C, h);
    V->close(C, h);
    V->rename(C, a, b); /* create x, rename x -> y, unlink z: unsynced */
    V->unlink(C, c);
    ora_fault_vfs_crash(f, ORA_CRASH_RANDOM);
    int x = exists(a), y = exists(b), z = exists(c);
    orphan += y && x;
    unlink_only += !z && !y;
    rename_only += y && z;
    ora_fault_vfs_free(f);
  }
  is(orphan, 0, "RANDOM never leaves both the source and the target");
  ok(unlink_only > 0, "an unlink survives a lost rename (%d of 64)",
     unlink_only);
  ok(rename_only > 0, "a rename survives a lost unlink (%d of 64)",
     rename_only);
  ok(hooked[0] == 64 && hooked[1] == 64 && hooked[2] == 0,
     "on_dirop saw each unlink and rename (%d, %d)", hooked[0], hooked[1]);
  free(a), free(b), free(c);
}

static void test_crash_at(const char *dir) {
  ora_fault_vfs *f = fresh(5);
  char *p = tu_path(dir, "d");
  kj_vfs_file *h = vopen(p, KJ_VFS_WRITE | KJ_VFS_CREATE);
  uint64_t n0 = ora_fault_vfs_ops(f);
  is(n0, 1, "open counted as one operation");
  ora_fault_vfs_set_crash_at(f, n0 + 3);
  ok(vwrite_fill(h, 'A', 10, 0) == KJ_OK, "op before the crash point works");
  ok(V->sync(C, h) == KJ_OK, "op before the crash point works (sync)");
  ok(!ora_fault_vfs_dead(f), "not dead yet");
  is(vwrite_fill(h, 'B', 10, 10), KJ_EIO, "op at the crash point fails EIO");
  ok(ora_fault_vfs_dead(f), "dead after the crash point");
  uint64_t sz = 0;
  is(V->size(C, h, &sz), KJ_EIO, "every later op fails (size)");
  is(V->sync(C, h), KJ_EIO, "every later op fails (sync)");
  kj_vfs_file *h2 = NULL;
  is(V->open(C, p, KJ_VFS_READ, &h2), KJ_EIO, "every later op fails (open)");
  is(V->close(C, h), KJ_EIO, "close after death reports EIO, frees");
  is(V->sync_dir(C, dir), KJ_EIO, "a directory sync after death fails too");
  ora_fault_vfs_crash(f, ORA_CRASH_DROP);
  ok(!ora_fault_vfs_dead(f), "crash() brings the VFS back");
  size_t rl;
  uint8_t *r = tu_read_file(p, &rl);
  ok(!r, "creation not made durable before the death is undone at crash");
  free(r);
  ok(ora_fault_vfs_injected(f) >= 5, "injected failures counted");
  ora_fault_vfs_reset(f);
  is(ora_fault_vfs_ops(f), 0, "reset zeroes the op counter");
  ora_fault_vfs_free(f);
  free(p);
}

static void record_op(void *arg, uint64_t op) {
  uint64_t *v = arg;
  if (v[0] < 15)
    v[1 + v[0]++] = op;
}

/* What a forked crash-sweep child does: see every call coming (on_op),
 * take a copy of the durable files (fork_dir), die and crash there, while
 * the original directory keeps its own bytes and pending writes. */
static void test_fork_dir(const char *dir) {
  char *d1 = tu_path(dir, "f1"), *d2 = tu_path(dir, "f2");
  ora_fault_vfs *f = fresh(8);
  uint64_t seen[16] = {0};
  ora_fault_vfs_on_op(f, record_op, seen);
  ok(V->mkdir(C, d1) == KJ_OK, "mkdir");
  char *a = tu_path(d1, "a"), *b = tu_path(d1, "b");
  durable_file(d1, a, 'D', 1000);
  int in_order = seen[0] == 6;
  for (uint64_t i = 0; i < seen[0]; i++)
    in_order = in_order && seen[1 + i] == i + 1;
  ok(in_order, "on_op sees every call with its index before it runs (%llu)",
     (unsigned long long)seen[0]);
  ora_fault_vfs_on_op(f, NULL, NULL);
  /* Pending: an overwrite of a, and a new file b. */
  kj_vfs_file *h = vopen(a, KJ_VFS_WRITE);
  vwrite_fill(h, 'P', 100, 0);
  kj_vfs_file *hb = vopen(b, KJ_VFS_WRITE | KJ_VFS_CREATE);
  vwrite_fill(hb, 'B', 10, 0);
  ok(mkdir(d2, 0700) == 0, "the child's directory");
  is(ora_fault_vfs_fork_dir(f, d1, d2), KJ_OK, "fork_dir copies and rebases");
  ora_fault_vfs_set_crash_at(f, ora_fault_vfs_ops(f) + 1);
  is(vwrite_fill(h, 'X', 10, 0), KJ_EIO, "dead after fork_dir + crash_at");
  V->close(C, h);
  V->close(C, hb);
  ora_fault_vfs_crash(f, ORA_CRASH_KEEP);
  char *a2 = tu_path(d2, "a"), *b2 = tu_path(d2, "b");
  size_t l1 = 0, l2 = 0, lb = 0;
  uint8_t *r1 = tu_read_file(a, &l1), *r2 = tu_read_file(a2, &l2),
          *rb = tu_read_file(b, &lb), *rb2 = tu_read_file(b2, &lb);
  ok(r2 && l2 == 1000 && all_bytes(r2, 0, 100, 'P') &&
         all_bytes(r2, 100, 1000, 'D'),
     "the crash applied the pending write to the copy");
  ok(r1 && l1 == 1000 && all_bytes(r1, 0, 1000, 'D'),
     "the original keeps its durable bytes only");
  ok(rb2 && lb == 10 && all_bytes(rb2, 0, 10, 'B'),
     "a pending creation lands in the copy");
  ok(rb != NULL, "the original's real new file is left alone");
  free(r1);
  free(r2);
  free(rb);
  free(rb2);
  /* reseed gives the same damage as a fresh VFS with that seed. */
  ora_fault_vfs_reseed(f, 77);
  ora_fault_vfs *g = ora_fault_vfs_new(77);
  const kj_vfs *vf = ora_fault_vfs_get(f), *vg = ora_fault_vfs_get(g);
  char *c1 = tu_path(d1, "c"), *c2 = tu_path(d2, "c");
  kj_vfs_file *hc1 = NULL, *hc2 = NULL;
  vf->open(vf->ctx, c1, KJ_VFS_WRITE | KJ_VFS_CREATE, &hc1);
  vg->open(vg->ctx, c2, KJ_VFS_WRITE | KJ_VFS_CREATE, &hc2);
  uint8_t buf[4096];
  memset(buf, 'R', sizeof buf);
  for (int i = 0; i < 8; i++) {
    vf->write(vf->ctx, hc1, buf, sizeof buf, (uint64_t)i * sizeof buf);
    vg->write(vg->ctx, hc2, buf, sizeof buf, (uint64_t)i * sizeof buf);
  }
  vf->close(vf->ctx, hc1);
  vg->close(vg->ctx, hc2);
  ora_fault_vfs_crash(f, ORA_CRASH_RANDOM);
  ora_fault_vfs_crash(g, ORA_CRASH_RANDOM);
  size_t lc1 = 0, lc2 = 0;
  uint8_t *rc1 = tu_read_file(c1, &lc1), *rc2 = tu_read_file(c2, &lc2);
  ok((!rc1 && !rc2) ||
         (rc1 && rc2 && lc1 == lc2 && (!lc1 || !memcmp(rc1, rc2, lc1))),
     "reseed: the same random damage as a new VFS with that seed");
  free(rc1);
  free(rc2);
  ora_fault_vfs_free(g);
  ora_fault_vfs_free(f);
  free(a);
  free(b);
  free(a2);
  free(b2);
  free(c1);
  free(c2);
  free(d1);
  free(d2);
}

static void test_nth(const char *dir) {
  ora_fault_vfs *f = fresh(6);
  char *p = tu_path(dir, "e"), *q = tu_path(dir, "e2");
  kj_vfs_file *h = vopen(p, KJ_VFS_WRITE | KJ_VFS_CREATE);
  ora_fault_vfs_fail(f, ORA_FAULT_WRITE, 2, KJ_ENOSPC, 0);
  int r1 = vwrite_fill(h, 'A', 4, 0), r2 = vwrite_fill(h, 'B', 4, 4),
      r3 = vwrite_fill(h, 'C', 4, 8);
  ok(r1 == KJ_OK && r2 == KJ_ENOSPC && r3 == KJ_OK,
     "write: 2nd call fails ENOSPC once");
  uint8_t buf[16];
  size_t got = 0;
  V->read(C, h, buf, sizeof buf, 0, &got);
  ok(got == 12 && all_bytes(buf, 4, 8, 0), "a failed write changes nothing");
  ora_fault_vfs_fail(f, ORA_FAULT_SYNC, 1, KJ_EIO, 1);
  ok(V->sync(C, h) == KJ_EIO && V->sync(C, h) == KJ_EIO &&
         V->sync_dir(C, dir) == KJ_EIO,
     "sync: persistent EIO from the 1st call");
  ora_fault_vfs_fail(f, ORA_FAULT_READ, 2, KJ_EIO, 1);
  int a = V->read(C, h, buf, 4, 0, &got), b = V->read(C, h, buf, 4, 0, &got),
      c = V->read(C, h, buf, 4, 0, &got);
  ok(a == KJ_OK && b == KJ_EIO && c == KJ_EIO, "read: persistent from 2nd");
  ora_fault_vfs_fail(f, ORA_FAULT_RENAME, 1, KJ_EIO, 0);
  ok(V->rename(C, p, q) == KJ_EIO && exists(p) && !exists(q),
     "rename: failed once, nothing moved");
  ok(V->rename(C, q, p) == KJ_NOTFOUND, "rename of an absent file NOTFOUND");
  ok(V->rename(C, p, q) == KJ_OK && exists(q), "rename works after once");
  ora_fault_vfs_fail(f, ORA_FAULT_OPEN, 1, KJ_ENOSPC, 0);
  kj_vfs_file *h2 = NULL;
  ok(V->open(C, q, KJ_VFS_READ, &h2) == KJ_ENOSPC, "open fails once");
  ok(V->open(C, q, KJ_VFS_READ, &h2) == KJ_OK, "open works after");
  V->close(C, h2);
  V->close(C, h);
  ora_fault_vfs_reset(f);
  ok(V->sync_dir(C, dir) == KJ_OK, "reset disarms persistent faults");
  is(V->open(C, p, KJ_VFS_READ, &h2), KJ_NOTFOUND, "open of absent NOTFOUND");
  ora_fault_vfs_free(f);
  tu_rmrf(q);
  free(p), free(q);
}

static void count_sync(void *arg) { (*(int *)arg)++; }

static void test_store(void) {
  char *dir = tu_mkdtemp();
  ora_fault_vfs *f = fresh(8);
  int syncs = 0;
  ora_fault_vfs_on_sync(f, count_sync, &syncs);
  kj_options o;
  tu_options(&o);
  o.vfs = ora_fault_vfs_get(f);
  kj_store *s = NULL;
  int rc = kj_store_open(dir, &o, &s, NULL);
  is(rc, KJ_OK, "store opens through the fault VFS (directory lock)");
  if (rc)
    goto out;
  kj_store *s2 = NULL;
  is(kj_store_open(dir, &o, &s2, NULL), KJ_EBUSY,
     "second handle sees the lock through the fault VFS");
  ok(kj_put(s, NULL, 1, "k1", 2, "v1", 2) == KJ_OK, "put (FULL)");
  int before = syncs;
  ok(kj_put(s, NULL, 1, "k2", 2, "v2", 2) == KJ_OK, "second put");
  ok(syncs > before, "a FULL commit calls the on_sync hook");
  /* Die at the very next operation: the third put is in flight. */
  ora_fault_vfs_set_crash_at(f, ora_fault_vfs_ops(f) + 1);
  ok(kj_put(s, NULL, 1, "k3", 2, "v3", 2) != KJ_OK, "put after death fails");
  kj_store_close(s);
  ora_fault_vfs_crash(f, ORA_CRASH_DROP);
  ora_fault_vfs_on_sync(f, NULL, NULL);
  rc = kj_store_open(dir, &o, &s, NULL);
  is(rc, KJ_OK, "store reopens after the crash");
  if (rc)
    goto out;
  ok(tu_get_str_eq(s, NULL, 1, "k2", "v2"),
     "acknowledged FULL commit survives crash DROP");
  void *v = NULL;
  size_t vl = 0;
  ok(kj_get(s, NULL, 1, "k3", 2, &v, &vl) == KJ_NOTFOUND,
     "the failed commit is absent");
  kj_store_close(s);
out:
  ora_fault_vfs_free(f);
  tu_rmrf(dir);
  free(dir);
}

static int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* A mkdir is a directory entry like a creation: undone by a crash unless
 * its parent was synced, with what it holds; and two directories' entries
 * are crashed independently. */
static void test_mkdir_undo(const char *dir) {
  char *sub = tu_path(dir, "m"), *in = tu_path(sub, "f");
  tu_rmrf(sub);
  ora_fault_vfs *f = fresh(11);
  is(V->mkdir(C, sub), KJ_OK, "mkdir through the fault VFS");
  kj_vfs_file *h = vopen(in, KJ_VFS_WRITE | KJ_VFS_CREATE);
  vwrite_fill(h, 'D', 10, 0);
  V->sync(C, h);
  V->close(C, h);
  V->sync_dir(C, sub); /* the file's entry is durable, not the mkdir */
  ora_fault_vfs_crash(f, ORA_CRASH_DROP);
  ok(!is_dir(sub) && !exists(in),
     "a mkdir whose parent was not synced is undone with its contents");
  V->mkdir(C, sub);
  V->sync_dir(C, dir);
  h = vopen(in, KJ_VFS_WRITE | KJ_VFS_CREATE);
  V->close(C, h);
  V->sync_dir(C, sub);
  ora_fault_vfs_crash(f, ORA_CRASH_DROP);
  ok(is_dir(sub), "a mkdir made durable by its parent's sync stays");
  ok(exists(in), "with the entries made durable in it");
  ora_fault_vfs_free(f);
  tu_rmrf(sub);
  free(in);
  free(sub);
}

/* With a sync window, a sync makes durable only what was written before it
 * began; die_after_syncs lets that sync return, then kills every call. */
static void test_sync_window(const char *dir) {
  char *a = tu_path(dir, "w");
  tu_rmrf(a);
  ora_fault_vfs *f = fresh(12);
  durable_file(dir, a, 0, 0);
  ora_fault_vfs_sync_window(f, 1000);
  ora_fault_vfs_die_after_syncs(f, 1);
  kj_vfs_file *h = vopen(a, KJ_VFS_WRITE);
  vwrite_fill(h, 'A', 10, 0);
  is(V->sync(C, h), KJ_OK, "the k-th sync returns success");
  ok(V->sync(C, h) != KJ_OK, "and the next call finds the process dead");
  V->close(C, h);
  ora_fault_vfs_crash(f, ORA_CRASH_DROP);
  size_t rl;
  uint8_t *r = tu_read_file(a, &rl);
  ok(r && rl == 10 && all_bytes(r, 0, 10, 'A'),
     "what was written before the sync began is durable");
  free(r);
  ora_fault_vfs_free(f);
  tu_rmrf(a);
  free(a);
}

/* A fault window: an injected sync fault lasts its window with the VFS
 * lock released (another thread writes meanwhile), then fails. */
typedef struct slow_sync {
  kj_vfs_file *h;
  int rc;
  double secs;
  volatile int done;
} slow_sync;

static double mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *slow_sync_main(void *arg) {
  slow_sync *x = arg;
  double t0 = mono_now();
  x->rc = V->sync(C, x->h);
  x->secs = mono_now() - t0;
  x->done = 1;
  return NULL;
}

static void test_fault_window(const char *dir) {
  char *a = tu_path(dir, "fw"), *b = tu_path(dir, "fw2");
  tu_rmrf(a);
  tu_rmrf(b);
  ora_fault_vfs *f = fresh(14);
  durable_file(dir, a, 0, 0);
  durable_file(dir, b, 0, 0);
  ora_fault_vfs_fail(f, ORA_FAULT_SYNC, 1, KJ_EIO, 0);
  ora_fault_vfs_fault_window(f, 200000);
  slow_sync x = {vopen(a, KJ_VFS_WRITE), 0, 0, 0};
  kj_vfs_file *h2 = vopen(b, KJ_VFS_WRITE);
  pthread_t th;
  int started = x.h && h2 && pthread_create(&th, NULL, slow_sync_main, &x) == 0;
  ok(started, "a thread syncs with a fault armed");
  if (started) {
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    is(vwrite_fill(h2, 'B', 10, 0), KJ_OK,
       "another thread writes while the failing sync lasts");
    ok(!x.done, "... before that sync returned (the lock is not held)");
    pthread_join(th, NULL);
    is(x.rc, KJ_EIO, "the sync fails with the armed status");
    ok(x.secs >= 0.19, "after its window (%.3f s)", x.secs);
  }
  if (x.h)
    V->close(C, x.h);
  if (h2)
    V->close(C, h2);
  ora_fault_vfs_free(f);
  tu_rmrf(a);
  tu_rmrf(b);
  free(a);
  free(b);
}

/* A store created in a new directory, and a returned snapshot copy beside
 * it, survive a power loss: their directory entries are synced in their
 * parent (store.h). */
static void test_new_dirs_durable(void) {
  char *base = tu_mkdtemp();
  char *dir = tu_path(base, "store"), *copy = tu_path(base, "copy");
  ora_fault_vfs *f = fresh(13);
  kj_options o;
  tu_options(&o);
  o.vfs = ora_fault_vfs_get(f);
  kj_store *s = NULL;
  int rc = kj_store_open(dir, &o, &s, NULL);
  is(rc, KJ_OK, "a store created in a new directory");
  if (!rc) {
    ok(kj_put(s, NULL, 1, "k", 1, "v", 1) == KJ_OK, "an acknowledged row");
    /* The copy's parent sync would cover the store's entry too: crash
     * once before it. */
    ora_fault_vfs_crash(f, ORA_CRASH_DROP);
    ok(is_dir(dir), "the new store's directory survives a power loss");
    is(kj_store_copy(s, NULL, copy), KJ_OK, "a copy beside it");
    /* Power loss with the store still open: only what was synced stays. */
    ora_fault_vfs_set_crash_at(f, ora_fault_vfs_ops(f) + 1);
    kj_store_close(s);
    ora_fault_vfs_crash(f, ORA_CRASH_DROP);
    kj_options co;
    tu_options(&co);
    co.mode = KJ_OPEN_EXISTING;
    const char *names[2] = {dir, copy};
    for (int i = 0; i < 2; i++) {
      kj_store *c = NULL;
      rc = kj_store_open(names[i], &co, &c, NULL);
      is(rc, KJ_OK, "the %s opens after a power loss", i ? "copy" : "store");
      if (!rc) {
        ok(tu_get_str_eq(c, NULL, 1, "k", "v"), "and holds the row");
        kj_store_close(c);
      }
    }
  }
  ora_fault_vfs_free(f);
  tu_rmrf(base);
  free(copy);
  free(dir);
  free(base);
}

/* The mapping methods (vfs.h, version 2): a private copy that reaches the
 * model only through map_wrote(), as a write does; faults and crashes see
 * it as one. */
static void test_map(const char *dir) {
  ora_fault_vfs *f = fresh(9);
  char *p = tu_path(dir, "m");
  durable_file(dir, p, 'B', 8192);
  kj_vfs_file *h = vopen(p, KJ_VFS_WRITE), *r = vopen(p, KJ_VFS_READ);
  void *m = NULL;
  ok(V->version >= 2 && V->map && V->map_reserve && V->map_wrote && V->unmap,
     "map: the fault VFS offers the version 2 methods");
  is(V->map(C, r, 8192, &m), KJ_EINVAL, "map: a read-only handle is refused");
  is(V->map(C, h, 9000, &m), KJ_EINVAL, "map: beyond the file is refused");
  ok(m == NULL, "map: a refused map hands out nothing");
  is(V->map(C, h, 8192, &m), KJ_OK, "map: the whole file");
  uint8_t *b = m;
  ok(b && all_bytes(b, 0, 8192, 'B'), "map: holds the file's bytes");
  is(V->map_reserve(C, h, m, 100, 100), KJ_OK, "map_reserve in range");
  memset(b + 100, 'A', 100);
  uint8_t buf[300];
  size_t got = 0;
  V->read(C, r, buf, 300, 0, &got);
  ok(got == 300 && all_bytes(buf, 0, 300, 'B'),
     "a store not yet reported is not in the file");
  is(V->map_wrote(C, h, m, 100, 100), KJ_OK, "map_wrote");
  V->read(C, r, buf, 300, 0, &got);
  ok(all_bytes(buf, 0, 100, 'B') && all_bytes(buf, 100, 200, 'A') &&
         all_bytes(buf, 200, 300, 'B'),
     "after map_wrote the bytes are the file's, as after a write");
  is(V->map_wrote(C, h, m, 8000, 193), KJ_EIO, "map_wrote past the mapping");
  is(V->map_reserve(C, h, b + 1, 0, 1), KJ_EIO,
     "map_reserve of another address");
  ora_fault_vfs_fail(f, ORA_FAULT_WRITE, 1, KJ_ENOSPC, 0);
  memset(b + 300, 'C', 10);
  is(V->map_wrote(C, h, m, 300, 10), KJ_ENOSPC,
     "an Nth-write fault lands on map_wrote");
  V->read(C, r, buf, 10, 300, &got);
  ok(all_bytes(buf, 0, 10, 'B'), "and the failed one changes nothing");
  uint64_t ops = ora_fault_vfs_ops(f);
  is(V->map_reserve(C, h, m, 400, 10), KJ_OK,
     "map_reserve is not a call of the model");
  is(ora_fault_vfs_ops(f), ops, "and is not counted as one");
  is(V->unmap(C, h, m, 8192), KJ_OK, "unmap");
  V->close(C, h);
  V->close(C, r);
  ora_fault_vfs_crash(f, ORA_CRASH_DROP);
  size_t rl = 0;
  uint8_t *d = tu_read_file(p, &rl);
  ok(d && rl == 8192 && all_bytes(d, 0, 8192, 'B'),
     "crash DROP: an unsynced mapped write is lost");
  free(d);
  ora_fault_vfs_free(f);

  f = fresh(10);
  h = vopen(p, KJ_VFS_WRITE);
  V->map(C, h, 8192, &m);
  memset((uint8_t *)m + 10, 'S', 20);
  V->map_wrote(C, h, m, 10, 20);
  ok(V->sync(C, h) == KJ_OK, "sync of a mapped write");
  memset((uint8_t *)m + 40, 'U', 20);
  V->map_wrote(C, h, m, 40, 20);
  V->close(C, h); /* without unmap: close frees the copy */
  ora_fault_vfs_crash(f, ORA_CRASH_DROP);
  d = tu_read_file(p, &rl);
  ok(d && all_bytes(d, 10, 30, 'S') && all_bytes(d, 40, 60, 'B'),
     "crash DROP: the synced mapped write stays, the later one is lost");
  free(d);
  ora_fault_vfs_free(f);
  free(p);
}

int main(void) {
  char *dir = tu_mkdtemp_or_bail();
  test_mkdir_undo(dir);
  test_sync_window(dir);
  test_fault_window(dir);
  test_new_dirs_durable();
  test_pending_reads(dir);
  test_patterns(dir);
  test_dirops(dir);
  test_dirops_random(dir);
  test_crash_at(dir);
  test_nth(dir);
  test_map(dir);
  test_fork_dir(dir);
  test_store();
  tu_rmrf(dir);
  free(dir);
  return tap_done();
}
