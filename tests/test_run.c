/*
 * tests/test_run.c - run files and the block cache (src/engine/run.h,
 * src/engine/bcache.h, doc/FORMAT.md section 6A).
 *
 * Round trips (no row, one row, 100k small rows, rows of the largest key
 * and value, rows in many tables), lookups that hit and miss everywhere a
 * key can be missing, iteration from every kind of lower bound, the cache's
 * bound, eviction and capacity 0, four threads reading one run through one
 * cache, damage (every byte flipped, every truncation, a trailing byte,
 * blocks swapped, a block of another run of the same store, another store,
 * another S, a newer version), the writer's argument and order checks, and
 * failed writes through the failure-injecting VFS of testutil.
 *
 * Runs are written to a temporary directory; the damage cases read their
 * damaged copies through a read-only memory VFS defined here, so each of the
 * thousands of variants costs no file system work.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/codec.h"
#include "engine/bcache.h"
#include "engine/map.h"
#include "engine/run.h"
#include "keyjournal/store.h"
#include "tap.h"
#include "testutil.h"

static const uint8_t store_id[16] = "test-run-storeid";
static const uint8_t other_id[16] = "another-store-id";
static char *dir;

/* ---- the rows of a run: row i of a spec, generated on demand ------------ */

typedef struct spec {
  const char *name;
  uint64_t n;
  /* Row i: table, key (into k, KJ_MAX_KEY bytes), value (into v). */
  void (*row)(uint64_t i, unsigned *t, uint8_t *k, size_t *kl, uint8_t *v,
              size_t *vl);
} spec;

/* Value bytes of row i: compressible (a repeated pattern) when i % 3, else
 * pseudo-random. */
static void fill_val(uint64_t i, uint8_t *v, size_t n) {
  tu_rng r;
  tu_rng_seed(&r, i * 7919 + 1);
  if (i % 3) {
    for (size_t j = 0; j < n; j++)
      v[j] = (uint8_t)("value-"[j % 6] + (i & 7));
  } else {
    tu_rng_fill(&r, v, n);
  }
}

/* 100k small rows of table 5; keys "k" and 9 digits of 2i + 2, so the odd
 * numbers between them are absent. */
static void row_small(uint64_t i, unsigned *t, uint8_t *k, size_t *kl,
                      uint8_t *v, size_t *vl) {
  *t = 5;
  *kl = (size_t)sprintf((char *)k, "k%09" PRIu64, 2 * i + 2);
  *vl = (size_t)(i * 13 % 61);
  fill_val(i, v, *vl);
}
static const spec S_SMALL = {"100k small rows", 100000, row_small};

/* 30 rows in each table 1..255 not divisible by 7 (those are empty). */
#define TROWS 30u
static unsigned nonempty_table(uint64_t j) {
  return (unsigned)(j / 6 * 7 + j % 6 + 1);
}
static void row_tables(uint64_t i, unsigned *t, uint8_t *k, size_t *kl,
                       uint8_t *v, size_t *vl) {
  *t = nonempty_table(i / TROWS);
  *kl = (size_t)sprintf((char *)k, "t%03u-%05" PRIu64, *t, (i % TROWS) * 2 + 2);
  *vl = (size_t)(i % 200);
  fill_val(i, v, *vl);
}
/* Tables 1..255 without the multiples of 7: 219 of them. */
static const spec S_TABLES = {"rows in 219 tables", 219 * TROWS, row_tables};

/* The largest key, and values of 4 MiB, 0, 1 byte, 4 MiB - 1, 4 MiB. */
static void row_big(uint64_t i, unsigned *t, uint8_t *k, size_t *kl, uint8_t *v,
                    size_t *vl) {
  static const size_t lens[] = {KJ_MAX_VALUE, 0, 1, KJ_MAX_VALUE - 1,
                                KJ_MAX_VALUE};
  *t = 200;
  *kl = KJ_MAX_KEY;
  memset(k, 'a' + (int)i, KJ_MAX_KEY);
  *vl = lens[i];
  fill_val(i, v, *vl);
}
static const spec S_BIG = {"largest keys and values", 5, row_big};

static void row_one(uint64_t i, unsigned *t, uint8_t *k, size_t *kl, uint8_t *v,
                    size_t *vl) {
  (void)i;
  *t = 1;
  *kl = 1;
  k[0] = 'x';
  *vl = 3;
  memcpy(v, "one", 3);
}
static const spec S_ONE = {"one row", 1, row_one};
static const spec S_NONE = {"no row", 0, row_one};

/* The damage run: 16 random rows of 1000 bytes (block 0, stored: 16 rows
 * of 1008 bytes fill a block), then 24 compressible ones (zstd blocks). */
static void row_damage(uint64_t i, unsigned *t, uint8_t *k, size_t *kl,
                       uint8_t *v, size_t *vl) {
  *t = 3;
  *kl = (size_t)sprintf((char *)k, "d%03" PRIu64, i * 2 + 2);
  *vl = 1000;
  tu_rng r;
  tu_rng_seed(&r, i + 99);
  if (i < 16)
    tu_rng_fill(&r, v, *vl);
  else
    for (size_t j = 0; j < *vl; j++)
      v[j] = (uint8_t)('A' + (j + i) % 5);
}
static const spec S_DAMAGE = {"damage run", 40, row_damage};

/* Equal blocks: 60 rows of 1000 random bytes each; the first block has
 * rows 0..15 (16 * 1011 + 68 bytes), the second rows 16..31, so both
 * blocks are stored and their sealed lengths are equal. */
static void row_equal(uint64_t i, unsigned *t, uint8_t *k, size_t *kl,
                      uint8_t *v, size_t *vl) {
  *t = 9;
  *kl = (size_t)sprintf((char *)k, "e%04" PRIu64, i);
  *vl = 1000;
  tu_rng r;
  tu_rng_seed(&r, i + 12345);
  tu_rng_fill(&r, v, *vl);
}
static const spec S_EQUAL = {"equal blocks", 60, row_equal};

/* 6000 rows whose keys share 30 bytes (every index prefix ties, every
 * block's shared prefix is longer than the aid keeps), some with a tail;
 * 1500-byte values: about 10 rows a block, 600 blocks, 3 index groups. */
#define LONG_P "shared-prefix-of-thirty-bytes-"
static void row_long(uint64_t i, unsigned *t, uint8_t *k, size_t *kl,
                     uint8_t *v, size_t *vl) {
  *t = 77;
  *kl = (size_t)sprintf((char *)k, LONG_P "%08" PRIu64 "%s", 2 * i + 2,
                        i % 3 ? "" : "-tail-xyz");
  *vl = 1500;
  fill_val(i, v, *vl);
}
static const spec S_LONG = {"long shared prefixes", 6000, row_long};

/* Keys "k", a 2-digit group that changes every 5 rows, "CONSTANT", then 6
 * digits: a block spans several groups, so its shared prefix is "k" and
 * the aid's fragments of rows of one group are equal (ties). */
static void row_ties(uint64_t i, unsigned *t, uint8_t *k, size_t *kl,
                     uint8_t *v, size_t *vl) {
  *t = 12;
  *kl = (size_t)sprintf((char *)k, "k%02" PRIu64 "CONSTANT%06" PRIu64,
                        i / 5 % 100, 2 * i + 2);
  *vl = (size_t)(i % 700);
  fill_val(i, v, *vl);
}
static const spec S_TIES = {"fragment ties", 450, row_ties};

/* Scratch for one generated row. */
typedef struct genrow {
  unsigned t;
  uint8_t k[KJ_MAX_KEY + 1]; /* + 1: room to append a byte to any key */
  size_t kl;
  uint8_t *v; /* KJ_MAX_VALUE bytes */
  size_t vl;
} genrow;

static genrow *genrow_new(void) {
  genrow *g = calloc(1, sizeof *g);
  g->v = malloc(KJ_MAX_VALUE);
  return g;
}
static void genrow_free(genrow *g) {
  free(g->v);
  free(g);
}
static void gen(const spec *s, uint64_t i, genrow *g) {
  s->row(i, &g->t, g->k, &g->kl, g->v, &g->vl);
}

/* ---- writing and opening ------------------------------------------------ */

static char *run_path(uint64_t seq) {
  char name[64];
  kj_run_name(seq, name, sizeof name);
  return tu_path(dir, name);
}

/* Write the rows of s as run seq of store id; KJ_OK or the first failure
 * (a "#" comment says which). */
static int write_run_vfs(const kj_vfs *vfs, const spec *s, uint64_t seq,
                         const uint8_t *id, kj_snap_info *info) {
  kj_snap_info in;
  memset(&in, 0, sizeof in);
  in.seq = seq;
  in.base = seq + 1;
  memset(in.prev_tag, (int)(seq & 0xff), sizeof in.prev_tag);
  kj_run_writer *w;
  kj_errbuf e;
  int rc = kj_run_writer_begin(vfs, dir, tu_key, id, &in, &w, &e);
  if (rc) {
    printf("# begin: %d %s\n", rc, e.msg);
    return rc;
  }
  genrow *g = genrow_new();
  for (uint64_t i = 0; i < s->n && !rc; i++) {
    gen(s, i, g);
    rc = kj_run_writer_add(w, g->t, g->k, g->kl, g->v, g->vl, &e);
  }
  genrow_free(g);
  if (rc) {
    printf("# add: %d %s\n", rc, e.msg);
    kj_run_writer_abort(w);
    return rc;
  }
  int renamed;
  rc = kj_run_writer_finish(w, info, &renamed, &e);
  if (rc)
    printf("# finish: %d %s\n", rc, e.msg);
  return rc;
}

static int write_run(const spec *s, uint64_t seq, kj_snap_info *info) {
  return write_run_vfs(kj_vfs_posix(), s, seq, store_id, info);
}

static kj_run *open_run(uint64_t seq, kj_snap_info *info) {
  char *p = run_path(seq);
  kj_run *r = NULL;
  kj_errbuf e;
  int rc = kj_run_open(kj_vfs_posix(), p, tu_key, store_id, seq, &r, info, &e);
  if (rc)
    printf("# open %s: %d %s\n", p, rc, e.msg);
  free(p);
  return r;
}

/* ---- checks over a whole run -------------------------------------------- */

/* Every row of r, in order, equals the spec's (iteration from the start). */
static int iter_all_eq(kj_run *r, kj_bcache *c, const spec *s) {
  kj_run_iter it;
  kj_errbuf e;
  genrow *g = genrow_new();
  int good = kj_run_iter_seek(&it, r, c, 0, NULL, 0, &e) == KJ_OK;
  uint64_t i = 0;
  for (; good; i++) {
    unsigned t;
    const uint8_t *k, *v;
    size_t kl, vl;
    int rc = kj_run_iter_next(&it, &t, &k, &kl, &v, &vl, &e);
    if (rc == KJ_NOTFOUND)
      break;
    if (rc != KJ_OK || i >= s->n) {
      printf("# row %" PRIu64 ": %d %s\n", i, rc, rc ? e.msg : "extra");
      good = 0;
      break;
    }
    gen(s, i, g);
    if (t != g->t || kl != g->kl || memcmp(k, g->k, kl) || vl != g->vl ||
        (vl && memcmp(v, g->v, vl))) {
      printf("# row %" PRIu64 " differs\n", i);
      good = 0;
    }
  }
  kj_run_iter_close(&it);
  genrow_free(g);
  if (good && i != s->n) {
    printf("# %" PRIu64 " rows, want %" PRIu64 "\n", i, s->n);
    good = 0;
  }
  return good;
}

/* Rows i (every step-th) read back right with get, find and has. */
static int gets_eq(kj_run *r, kj_bcache *c, const spec *s, uint64_t step) {
  genrow *g = genrow_new();
  uint8_t *buf = malloc(KJ_MAX_VALUE);
  kj_errbuf e;
  int good = 1;
  for (uint64_t i = 0; i < s->n && good; i += step) {
    gen(s, i, g);
    size_t vl = 99;
    int rc = kj_run_get(r, c, g->t, g->k, g->kl, buf, KJ_MAX_VALUE, &vl, &e);
    if (rc != KJ_OK || vl != g->vl || (vl && memcmp(buf, g->v, vl))) {
      printf("# get row %" PRIu64 ": %d %s\n", i, rc, rc ? e.msg : "");
      good = 0;
    }
    kj_run_ref ref;
    rc = kj_run_find(r, c, g->t, g->k, g->kl, &ref, &e);
    if (rc != KJ_OK || ref.vlen != g->vl ||
        (ref.vlen && memcmp(ref.val, g->v, ref.vlen))) {
      printf("# find row %" PRIu64 ": %d\n", i, rc);
      good = 0;
    }
    kj_run_ref_release(c, &ref);
    if (kj_run_has(r, c, g->t, g->k, g->kl, &e) != KJ_OK) {
      printf("# has row %" PRIu64 "\n", i);
      good = 0;
    }
  }
  free(buf);
  genrow_free(g);
  return good;
}

/* NOTFOUND (and *vlen 0) for key. */
static int get_misses(kj_run *r, kj_bcache *c, unsigned t, const void *k,
                      size_t kl) {
  uint8_t buf[8];
  size_t vl = 99;
  kj_errbuf e;
  int rc = kj_run_get(r, c, t, k, kl, buf, sizeof buf, &vl, &e);
  kj_run_ref ref;
  int rc2 = kj_run_find(r, c, t, k, kl, &ref, &e);
  int rc3 = kj_run_has(r, c, t, k, kl, &e);
  return rc == KJ_NOTFOUND && vl == 0 && rc2 == KJ_NOTFOUND && !ref.blk &&
         rc3 == KJ_NOTFOUND;
}

static int verify_ok(kj_run *r) {
  kj_errbuf e;
  int rc = kj_run_verify(r, NULL, NULL, &e);
  if (rc)
    printf("# verify: %d %s\n", rc, e.msg);
  return rc == KJ_OK;
}

/* ---- round trips ------------------------------------------------------- */

static void test_names(void) {
  char name[64];
  uint64_t seq = 0;
  kj_run_name(0x1234abcdULL, name, sizeof name);
  ok(!strcmp(name, "run-000000001234abcd.kjr"), "names: run-<16 hex>.kjr");
  ok(kj_run_parse_name(name, &seq) && seq == 0x1234abcdULL,
     "names: parse gives S back");
  ok(!kj_run_parse_name("run-000000001234ABCD.kjr", &seq) &&
         !kj_run_parse_name("run-000000001234abcd.kjs", &seq) &&
         !kj_run_parse_name("run-1234abcd.kjr", &seq) &&
         !kj_run_parse_name("snapshot-000000001234abcd.kjs", &seq),
     "names: upper case, other suffix, short, snapshot names refused");
}

static void round_trip(const spec *s, uint64_t seq, uint64_t get_step) {
  kj_snap_info wi, ri;
  is(write_run(s, seq, &wi), KJ_OK, "%s: written", s->name);
  kj_run *r = open_run(seq, &ri);
  ok(r != NULL, "%s: opens", s->name);
  if (!r)
    return;
  uint8_t tag[KJ_TAG_BYTES];
  memset(tag, (int)(seq & 0xff), sizeof tag);
  ok(ri.seq == seq && ri.base == seq + 1 && !memcmp(ri.prev_tag, tag, 16) &&
         ri.rows == s->n && wi.rows == s->n && ri.raw_bytes == wi.raw_bytes &&
         ri.file_bytes == wi.file_bytes,
     "%s: info (S, B, prev_tag, rows %" PRIu64 ", raw %" PRIu64
     ", file %" PRIu64 ") as written",
     s->name, ri.rows, ri.raw_bytes, ri.file_bytes);
  char *p = run_path(seq);
  is(tu_file_size(p), (long long)wi.file_bytes, "%s: file_bytes is the size",
     s->name);
  free(p);
  kj_bcache *c;
  kj_bcache_new(8u << 20, &c);
  ok(iter_all_eq(r, c, s), "%s: iteration gives every row in order", s->name);
  ok(gets_eq(r, c, s, get_step),
     "%s: get, find and has of every %" PRIu64 "th row", s->name, get_step);
  ok(verify_ok(r), "%s: verify (%" PRIu64 " blocks)", s->name,
     kj_run_blocks(r));
  genrow *g = genrow_new();
  int miss = get_misses(r, c, 1, "\x01", 1) && get_misses(r, c, 255, "\xff", 1);
  for (uint64_t i = 0; i < s->n && miss; i += get_step) {
    gen(s, i, g);
    /* The key with a zero byte appended sorts right after it, the key
     * without its last byte right before it; the specs' keys within a
     * table all have one length, so neither is there. */
    g->k[g->kl] = 0;
    if (g->kl < KJ_MAX_KEY)
      miss = get_misses(r, c, g->t, g->k, g->kl + 1);
    if (g->kl > 1)
      miss = miss && get_misses(r, c, g->t, g->k, g->kl - 1);
  }
  genrow_free(g);
  ok(miss, "%s: misses around the keys", s->name);
  kj_run_close(r, c);
  kj_bcache_counters st;
  kj_bcache_stats(c, &st);
  is(st.entries, 0, "%s: close drops the run's blocks", s->name);
  kj_bcache_free(c);
}

/* Misses of S_SMALL and S_TABLES at every kind of place. */
static void test_misses(void) {
  kj_snap_info info;
  kj_run *r = open_run(1, &info); /* S_SMALL */
  kj_bcache *c;
  kj_bcache_new(1u << 20, &c);
  ok(r && get_misses(r, c, 5, "k000000001", 10) &&
         get_misses(r, c, 5, "a", 1) && get_misses(r, c, 5, "k", 1),
     "small: misses before the first key");
  ok(r && get_misses(r, c, 5, "k000000003", 10) &&
         get_misses(r, c, 5, "k000100001", 10) &&
         get_misses(r, c, 5, "k00000000", 9) &&
         get_misses(r, c, 5, "k0000000020", 11),
     "small: misses between keys (odd numbers, prefixes, extensions)");
  ok(r && get_misses(r, c, 5, "k000200001", 10) &&
         get_misses(r, c, 5, "l", 1) && get_misses(r, c, 5, "\xff\xff", 2),
     "small: misses after the last key");
  ok(r && get_misses(r, c, 4, "k000000002", 10) &&
         get_misses(r, c, 6, "k000000002", 10) &&
         get_misses(r, c, 1, "k000000002", 10) &&
         get_misses(r, c, 255, "k000000002", 10),
     "small: a present key in other tables misses");
  kj_errbuf e;
  uint8_t buf[4];
  size_t vl;
  ok(r && kj_run_get(r, c, 0, "k", 1, buf, 4, &vl, &e) == KJ_EINVAL &&
         kj_run_get(r, c, 256, "k", 1, buf, 4, &vl, &e) == KJ_EINVAL &&
         kj_run_get(r, c, 5, "k", 0, buf, 4, &vl, &e) == KJ_EINVAL &&
         kj_run_get(r, c, 5, NULL, 1, buf, 4, &vl, &e) == KJ_EINVAL &&
         kj_run_has(r, c, 5, "k", KJ_MAX_KEY + 1, &e) == KJ_EINVAL,
     "small: bad table or key: EINVAL");
  /* Size negotiation: a short buffer gets the length and no bytes. */
  uint8_t small[4] = {7, 7, 7, 7};
  int rc = r ? kj_run_get(r, c, 5, "k000000004", 10, small, 4, &vl, &e) : -1;
  genrow *g = genrow_new();
  gen(&S_SMALL, 1, g);
  ok(rc == KJ_OK && vl == g->vl && g->vl > 4 && small[0] == 7 && small[3] == 7,
     "small: a buffer too short gets the length and nothing copied");
  genrow_free(g);
  kj_run_close(r, c);
  kj_bcache_free(c);

  r = open_run(2, &info); /* S_TABLES */
  ok(r && get_misses(r, NULL, 7, "t007-00002", 10) &&
         get_misses(r, NULL, 14, "t014-00002", 10) &&
         get_misses(r, NULL, 1, "t002-00002", 10) &&
         get_misses(r, NULL, 2, "t001-00002", 10),
     "tables: empty tables and keys of other tables miss");
  ok(r && get_misses(r, NULL, 255, "t255-00062", 10) &&
         get_misses(r, NULL, 1, "t001-00001", 10),
     "tables: misses after the last and before the first row");
  kj_run_close(r, NULL);
}

/* The writer keeps its own copy of the directory's name: a background
 * checkpoint's caller need not keep its string alive (ASan would report a
 * use after free at the finish's directory sync otherwise). */
static void test_writer_dir_copy(void) {
  char *d = strdup(dir);
  kj_snap_info in, out;
  memset(&in, 0, sizeof in);
  in.seq = 40;
  in.base = 41;
  kj_run_writer *w = NULL;
  kj_errbuf e;
  int rc =
      kj_run_writer_begin(kj_vfs_posix(), d, tu_key, store_id, &in, &w, &e);
  memset(d, 'x', strlen(d)); /* the caller's string changes, then goes */
  free(d);
  if (!rc)
    rc = kj_run_writer_add(w, 1, "k", 1, "v", 1, &e);
  int renamed = 0;
  if (!rc)
    rc = kj_run_writer_finish(w, &out, &renamed, &e);
  else
    kj_run_writer_abort(w);
  kj_run *r = rc ? NULL : open_run(40, &out);
  ok(!rc && renamed && r && out.rows == 1,
     "writer: the caller's directory string may go after begin");
  kj_run_close(r, NULL);
}

/* ---- the tables' counts and the Bloom filter (FORMAT.md 6A.5) ------------ */

static void test_counts_bloom(void) {
  static const struct {
    const spec *s;
    uint64_t seq;
  } runs[] = {{&S_SMALL, 1}, {&S_TABLES, 2}, {&S_NONE, 4}, {&S_ONE, 5}};
  genrow *g = genrow_new();
  for (size_t n = 0; n < sizeof runs / sizeof *runs; n++) {
    const spec *s = runs[n].s;
    kj_snap_info info;
    kj_run *r = open_run(runs[n].seq, &info);
    if (!r) {
      ok(0, "%s: open", s->name);
      continue;
    }
    uint64_t want_rows[256] = {0}, want_bytes[256] = {0};
    uint64_t absent = 0;
    for (uint64_t i = 0; i < s->n; i++) {
      gen(s, i, g);
      want_rows[g->t]++;
      want_bytes[g->t] += g->kl + g->vl;
      absent += !kj_run_may_have(r, g->t, g->k, g->kl);
    }
    int same = 1;
    for (unsigned t = 0; t < 256; t++) {
      uint64_t rows, bytes;
      kj_run_table_count(r, t, &rows, &bytes);
      same &= rows == want_rows[t] && bytes == want_bytes[t];
    }
    ok(same, "%s: every table's rows and bytes as written", s->name);
    is(absent, 0, "%s: the Bloom filter says no present row is absent",
       s->name);
    kj_run_close(r, NULL);
  }
  /* False positives: keys between S_SMALL's (odd numbers), none there. */
  kj_snap_info info;
  kj_run *r = open_run(1, &info);
  kj_bcache *c = NULL;
  kj_bcache_new(1u << 20, &c);
  uint64_t maybe = 0, tries = 100000;
  for (uint64_t i = 0; r && i < tries; i++) {
    char k[16];
    int kl = sprintf(k, "k%09" PRIu64, 2 * i + 3);
    maybe += (uint64_t)kj_run_may_have(r, 5, k, (size_t)kl);
  }
  printf("# Bloom filter: %" PRIu64 " of %" PRIu64 " absent keys may be in\n",
         maybe, tries);
  ok(r && maybe < tries / 30,
     "small: under 3.3%% false positives (%" PRIu64 " of %" PRIu64 ")", maybe,
     tries);
  /* An absent key the filter rules out reads no block. */
  kj_bcache_counters c0, c1;
  kj_bcache_stats(c, &c0);
  kj_errbuf e;
  uint64_t ruled_out = 0;
  for (uint64_t i = 0; r && i < 1000; i++) {
    char k[16];
    int kl = sprintf(k, "k%09" PRIu64, 2 * i + 3);
    if (!kj_run_may_have(r, 5, k, (size_t)kl)) {
      ruled_out++;
      if (kj_run_has(r, c, 5, k, (size_t)kl, &e) != KJ_NOTFOUND)
        ruled_out = 0;
    }
  }
  kj_bcache_stats(c, &c1);
  ok(ruled_out > 900 && c1.misses == c0.misses && c1.hits == c0.hits,
     "small: %" PRIu64 " absent keys ruled out by the filter read no block",
     ruled_out);
  kj_run_close(r, c);
  kj_bcache_free(c);
  genrow_free(g);
}

/* ---- iteration bounds -------------------------------------------------- */

/* Iterating from (t, k) gives rows first.. of s, in order, to the end
 * (checked for `limit` rows, then counted). */
static int iter_from(kj_run *r, kj_bcache *c, const spec *s, unsigned t,
                     const void *k, size_t kl, uint64_t first, uint64_t limit) {
  kj_run_iter it;
  kj_errbuf e;
  genrow *g = genrow_new();
  int good = kj_run_iter_seek(&it, r, c, t, k, kl, &e) == KJ_OK;
  uint64_t i = first;
  while (good) {
    unsigned rt;
    const uint8_t *rk, *rv;
    size_t rkl, rvl;
    int rc = kj_run_iter_next(&it, &rt, &rk, &rkl, &rv, &rvl, &e);
    if (rc == KJ_NOTFOUND)
      break;
    if (rc || i >= s->n) {
      good = 0;
      break;
    }
    if (i - first < limit) {
      gen(s, i, g);
      good = rt == g->t && rkl == g->kl && !memcmp(rk, g->k, rkl) &&
             rvl == g->vl && !memcmp(rv, g->v, rvl);
    }
    i++;
  }
  kj_run_iter_close(&it);
  kj_run_iter_close(&it); /* twice is fine */
  genrow_free(g);
  if (!good || i != s->n)
    printf("# from table %u key %.*s: stopped at %" PRIu64 " of %" PRIu64
           ", started at %" PRIu64 "\n",
           t, (int)kl, k ? (const char *)k : "", i, s->n, first);
  return good && i == s->n;
}

static void test_iteration(void) {
  kj_snap_info info;
  kj_run *r = open_run(2, &info); /* S_TABLES */
  kj_bcache *c;
  kj_bcache_new(1u << 20, &c);
  uint64_t n = S_TABLES.n;
  ok(r && iter_from(r, c, &S_TABLES, 0, NULL, 0, 0, 50),
     "iter: from table 0 (the start)");
  ok(r && iter_from(r, c, &S_TABLES, 1, NULL, 0, 0, 50) &&
         iter_from(r, c, &S_TABLES, 1, "a", 1, 0, 50),
     "iter: from before the first key");
  ok(r && iter_from(r, c, &S_TABLES, 1, "t001-00002", 10, 0, 50),
     "iter: from the first key");
  ok(r && iter_from(r, c, &S_TABLES, 2, "t002-00010", 10, TROWS + 4, 50),
     "iter: from an exact key");
  ok(r && iter_from(r, c, &S_TABLES, 2, "t002-00011", 10, TROWS + 5, 50) &&
         iter_from(r, c, &S_TABLES, 2, "t002-0001", 9, TROWS + 4, 50),
     "iter: from between keys (an odd number, a prefix)");
  ok(r && iter_from(r, c, &S_TABLES, 7, NULL, 0, 6 * TROWS, 50) &&
         iter_from(r, c, &S_TABLES, 7, "zzz", 3, 6 * TROWS, 50),
     "iter: from an empty table: the next table's first row");
  ok(r && iter_from(r, c, &S_TABLES, 2, "t002-99999", 10, 2 * TROWS, 50),
     "iter: from after a table's last key: the next table");
  ok(r && iter_from(r, c, &S_TABLES, 255, "t255-00060", 10, n - 1, 50),
     "iter: from the last key");
  ok(r && iter_from(r, c, &S_TABLES, 255, "t255-00061", 10, n, 50) &&
         iter_from(r, c, &S_TABLES, 255, "\xff", 1, n, 50),
     "iter: from after the last key: nothing");
  /* Every block's first key, last key, and the gaps beside them. */
  int good = r != NULL;
  genrow *g = genrow_new();
  uint64_t i = 0;
  for (uint64_t b = 0; r && b < kj_run_blocks(r) && good; b++) {
    uint64_t off;
    uint32_t len, rows;
    kj_run_block_place(r, b, &off, &len, &rows);
    gen(&S_TABLES, i, g); /* first row of block b */
    good = iter_from(r, c, &S_TABLES, g->t, g->k, g->kl, i, 3);
    g->k[g->kl - 1]--; /* just below it (an odd number) */
    good = good && iter_from(r, c, &S_TABLES, g->t, g->k, g->kl, i, 3);
    i += rows;
    gen(&S_TABLES, i - 1, g); /* last row of block b */
    good = good && iter_from(r, c, &S_TABLES, g->t, g->k, g->kl, i - 1, 3);
    g->k[g->kl - 1]++; /* just above it */
    good = good && iter_from(r, c, &S_TABLES, g->t, g->k, g->kl, i, 3);
  }
  genrow_free(g);
  ok(good && r && kj_run_blocks(r) > 3,
     "iter: from each block's first and last key and the gaps beside them "
     "(%" PRIu64 " blocks)",
     r ? kj_run_blocks(r) : 0);
  kj_run_iter it;
  kj_errbuf e;
  ok(r && kj_run_iter_seek(&it, r, c, 256, "a", 1, &e) == KJ_EINVAL,
     "iter: table 256: EINVAL");
  kj_run_iter_close(&it);
  kj_run_close(r, c);

  /* An empty run has nothing from anywhere. */
  r = open_run(4, &info); /* S_NONE */
  ok(r && iter_from(r, c, &S_NONE, 0, NULL, 0, 0, 1) &&
         iter_from(r, c, &S_NONE, 9, "x", 1, 0, 1),
     "iter: an empty run gives nothing");
  kj_run_close(r, c);
  kj_bcache_free(c);
}

/* The first row of s at or above (t, k): a binary search over the
 * generator, the reference for the run's search. */
static uint64_t ref_lower(const spec *s, genrow *g, unsigned t,
                          const uint8_t *k, size_t kl) {
  uint64_t lo = 0, hi = s->n;
  while (lo < hi) {
    uint64_t mid = lo + (hi - lo) / 2;
    gen(s, mid, g);
    int c = g->t != t ? (g->t < t ? -1 : 1) : kj_key_cmp(g->k, g->kl, k, kl);
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Targets made from the keys of s - the key, its prefixes, extensions,
 * a byte one up or down, other tables - each looked up and iterated from,
 * against ref_lower(). */
static void random_bounds(const spec *s, uint64_t seq, int rounds) {
  kj_snap_info info;
  kj_run *r = open_run(seq, &info);
  kj_bcache *c;
  kj_bcache_new(4u << 20, &c);
  genrow *g = genrow_new(), *h = genrow_new();
  uint8_t *buf = malloc(KJ_MAX_VALUE);
  tu_rng rng;
  tu_rng_seed(&rng, seq);
  int good = r != NULL, hits = 0;
  uint8_t k[KJ_MAX_KEY];
  kj_errbuf e;
  for (int round = 0; round < rounds && good; round++) {
    gen(s, tu_rng_below(&rng, s->n), g);
    unsigned t = g->t;
    size_t kl = g->kl;
    memcpy(k, g->k, kl);
    switch (tu_rng_below(&rng, 6)) {
    case 0: /* the key itself */
      break;
    case 1: /* a prefix */
      kl = 1 + (size_t)tu_rng_below(&rng, kl);
      break;
    case 2: /* an extension */
      if (kl < KJ_MAX_KEY)
        k[kl++] = (uint8_t)tu_rng_below(&rng, 256);
      break;
    case 3: { /* a byte one up or down */
      size_t at = (size_t)tu_rng_below(&rng, kl);
      k[at] = (uint8_t)(k[at] + (tu_rng_below(&rng, 2) ? 1 : 255));
      break;
    }
    case 4: /* a neighbouring table */
      t = t < KJ_TABLE_MAX && tu_rng_below(&rng, 2) ? t + 1 : t - 1;
      break;
    default: /* a prefix with its last byte changed */
      kl = 1 + (size_t)tu_rng_below(&rng, kl);
      k[kl - 1] ^= (uint8_t)(1 + tu_rng_below(&rng, 255));
      break;
    }
    if (t < KJ_TABLE_MIN)
      continue;
    uint64_t want = ref_lower(s, h, t, k, kl);
    int present = 0;
    if (want < s->n) {
      gen(s, want, h);
      present = h->t == t && h->kl == kl && !memcmp(h->k, k, kl);
    }
    size_t vl;
    int rc = kj_run_get(r, c, t, k, kl, buf, KJ_MAX_VALUE, &vl, &e);
    hits += rc == KJ_OK;
    if (rc != (present ? KJ_OK : KJ_NOTFOUND) ||
        (present && (vl != h->vl || memcmp(buf, h->v, vl)))) {
      printf("# %s round %d: get %d, want %s\n", s->name, round, rc,
             present ? "found" : "absent");
      good = 0;
    }
    kj_run_iter it;
    good = good && kj_run_iter_seek(&it, r, c, t, k, kl, &e) == KJ_OK;
    for (uint64_t i = want; good && i < want + 3; i++) {
      unsigned rt;
      const uint8_t *rk, *rv;
      size_t rkl, rvl;
      rc = kj_run_iter_next(&it, &rt, &rk, &rkl, &rv, &rvl, &e);
      if (i >= s->n) {
        good = rc == KJ_NOTFOUND;
        break;
      }
      gen(s, i, h);
      good =
          rc == KJ_OK && rt == h->t && rkl == h->kl && !memcmp(rk, h->k, rkl);
      if (!good)
        printf("# %s round %d: iterator row %" PRIu64 " wrong (%d)\n", s->name,
               round, i, rc);
    }
    kj_run_iter_close(&it);
  }
  ok(good,
     "%s: %d lookups and seeks at keys, prefixes, extensions, neighbours "
     "(%d present) agree with the reference",
     s->name, rounds, hits);
  free(buf);
  genrow_free(g);
  genrow_free(h);
  kj_run_close(r, c);
  kj_bcache_free(c);
}

/* ---- the cache --------------------------------------------------------- */

static int within(kj_bcache *c) {
  kj_bcache_counters st;
  kj_bcache_stats(c, &st);
  if (st.bytes_held <= st.capacity + st.bytes_pinned)
    return 1;
  printf("# held %" PRIu64 " > capacity %" PRIu64 " + pinned %" PRIu64 "\n",
         st.bytes_held, st.capacity, st.bytes_pinned);
  return 0;
}

/* The number of the first row of block no of r. */
static uint64_t first_row(const kj_run *r, uint64_t no) {
  uint64_t row0 = 0, off;
  uint32_t len, rows;
  for (uint64_t b = 0; b < no; b++) {
    kj_run_block_place(r, b, &off, &len, &rows);
    row0 += rows;
  }
  return row0;
}

static void test_cache(void) {
  kj_snap_info info;
  kj_run *r = open_run(1, &info); /* S_SMALL */
  if (!r) {
    ok(0, "cache: run opens");
    return;
  }
  kj_bcache *c;
  size_t cap = 5 * kj_bcache_cost(KJ_RUN_BLOCK_TARGET, 0);
  is(kj_bcache_new(cap, &c), KJ_OK, "cache: new");
  tu_rng rng;
  tu_rng_seed(&rng, 4);
  genrow *g = genrow_new();
  uint8_t *buf = malloc(KJ_MAX_VALUE);
  int good = 1, bound = 1;
  kj_errbuf e;
  for (int j = 0; j < 20000 && good; j++) {
    uint64_t i = tu_rng_below(&rng, S_SMALL.n);
    gen(&S_SMALL, i, g);
    size_t vl;
    good = kj_run_get(r, c, g->t, g->k, g->kl, buf, KJ_MAX_VALUE, &vl, &e) ==
               KJ_OK &&
           vl == g->vl && !memcmp(buf, g->v, vl);
    bound = bound && within(c);
  }
  ok(good, "cache: 20000 random gets through a 5-block cache");
  ok(bound, "cache: bytes held never above the capacity");
  kj_bcache_counters st;
  kj_bcache_stats(c, &st);
  ok(st.evictions > 1000 && st.misses > 1000 && st.hits > 0 &&
         st.entries <= 5 && st.bytes_held <= cap && st.bytes_pinned == 0,
     "cache: evicts (%" PRIu64 " evictions, %" PRIu64 " misses, %" PRIu64
     " hits, %" PRIu64 " blocks held)",
     st.evictions, st.misses, st.hits, st.entries);

  /* A block larger than the whole cache is served private: the blocks the
   * cache holds stay (run 3 holds 4 MiB values, S_BIG). */
  {
    kj_snap_info bi;
    kj_run *big = open_run(3, &bi);
    kj_bcache_counters b0, b1;
    kj_bcache_stats(c, &b0);
    genrow *bg = genrow_new();
    gen(&S_BIG, 0, bg);
    size_t vl = 0;
    int got = big &&
              kj_run_get(big, c, bg->t, bg->k, bg->kl, buf, KJ_MAX_VALUE, &vl,
                         &e) == KJ_OK &&
              vl == bg->vl && !memcmp(buf, bg->v, vl);
    kj_bcache_stats(c, &b1);
    ok(got && b0.entries > 0 && b1.entries == b0.entries &&
           b1.evictions == b0.evictions && b1.bytes_pinned == 0,
       "cache: a block larger than the cache is read without evicting the "
       "%" PRIu64 " blocks held",
       b0.entries);
    genrow_free(bg);
    kj_run_close(big, c);
    kj_bcache_stats(c, &st);
  }

  /* Hits: the same key again and again is one miss then hits. */
  uint64_t h0 = st.hits, m0 = st.misses;
  gen(&S_SMALL, 777, g);
  for (int j = 0; j < 10; j++)
    kj_run_has(r, c, g->t, g->k, g->kl, &e);
  kj_bcache_stats(c, &st);
  ok(st.hits - h0 >= 9 && st.misses - m0 <= 1, "cache: repeated reads hit");

  /* Pins: hold 12 refs in 12 blocks; the cache goes past its capacity by
   * pinned blocks only, and comes back under it when they are released. */
  kj_run_ref refs[12];
  uint64_t nb = kj_run_blocks(r);
  good = 1;
  for (int j = 0; j < 12; j++) {
    gen(&S_SMALL, first_row(r, (uint64_t)j * (nb / 12)), g);
    good = good &&
           kj_run_find(r, c, g->t, g->k, g->kl, &refs[j], &e) == KJ_OK &&
           refs[j].vlen == g->vl && !memcmp(refs[j].val, g->v, g->vl);
    bound = within(c);
  }
  kj_bcache_stats(c, &st);
  ok(good && bound && st.bytes_held > cap && st.bytes_pinned >= st.bytes_held,
     "cache: 12 pinned blocks: held %" PRIu64 " > capacity, all pinned",
     st.bytes_held);
  /* Reads go on while everything is pinned. */
  gen(&S_SMALL, S_SMALL.n / 2 + 1, g);
  size_t vl;
  ok(kj_run_get(r, c, g->t, g->k, g->kl, buf, KJ_MAX_VALUE, &vl, &e) == KJ_OK &&
         vl == g->vl && !memcmp(buf, g->v, vl) && within(c),
     "cache: a read while every block is pinned");
  /* The pinned values stay put through eviction pressure. */
  for (int j = 0; j < 2000; j++) {
    gen(&S_SMALL, tu_rng_below(&rng, S_SMALL.n), g);
    kj_run_has(r, c, g->t, g->k, g->kl, &e);
  }
  good = 1;
  for (int j = 0; j < 12; j++) {
    gen(&S_SMALL, first_row(r, (uint64_t)j * (nb / 12)), g);
    good = good && refs[j].vlen == g->vl && !memcmp(refs[j].val, g->v, g->vl);
    kj_run_ref_release(c, &refs[j]);
  }
  kj_bcache_stats(c, &st);
  ok(good && st.bytes_held <= cap && st.bytes_pinned == 0,
     "cache: pinned values intact; released, the cache is back under its "
     "capacity (%" PRIu64 ")",
     st.bytes_held);

  /* Forget while pinned: the block leaves the table, the pin stays good. */
  gen(&S_SMALL, 5, g);
  kj_run_ref ref;
  kj_run_find(r, c, g->t, g->k, g->kl, &ref, &e);
  kj_bcache_forget(c, kj_run_owner(r));
  kj_bcache_stats(c, &st);
  ok(ref.blk && st.entries == 0 && st.bytes_held == 0 && st.bytes_pinned == 0 &&
         ref.vlen == g->vl && !memcmp(ref.val, g->v, g->vl),
     "cache: forget empties it; a pinned block survives until released");
  kj_run_ref_release(c, &ref);
  kj_bcache_free(c);

  /* Capacity 0: every read decodes privately; nothing is held. */
  kj_bcache_new(0, &c);
  ok(gets_eq(r, c, &S_SMALL, 997) && iter_all_eq(r, c, &S_SMALL),
     "cache: capacity 0 reads right");
  kj_bcache_stats(c, &st);
  ok(st.entries == 0 && st.bytes_held == 0 && st.hits == 0 && st.misses > 100,
     "cache: capacity 0 holds nothing (%" PRIu64 " misses)", st.misses);
  kj_bcache_free(c);
  ok(gets_eq(r, NULL, &S_SMALL, 4999), "cache: no cache at all reads right");

  /* A block larger than the whole capacity is served, then dropped. */
  kj_run *big = open_run(3, &info); /* S_BIG */
  kj_bcache_new(1u << 20, &c);
  ok(big && gets_eq(big, c, &S_BIG, 1) && within(c),
     "cache: 4 MiB blocks through a 1 MiB cache");
  kj_bcache_stats(c, &st);
  ok(st.bytes_held <= (1u << 20), "cache: ... none kept (%" PRIu64 " held)",
     st.bytes_held);
  kj_run_close(big, c);
  kj_bcache_free(c);
  kj_run_close(r, NULL);
  free(buf);
  genrow_free(g);
}

/* ---- threads ----------------------------------------------------------- */

typedef struct reader {
  kj_run *r;
  kj_bcache *c;
  uint64_t seed;
  int good;
} reader;

static void *reader_main(void *arg) {
  reader *rd = arg;
  tu_rng rng;
  tu_rng_seed(&rng, rd->seed);
  genrow *g = genrow_new();
  uint8_t *buf = malloc(256);
  kj_errbuf e;
  rd->good = 1;
  for (int j = 0; j < 4000 && rd->good; j++) {
    uint64_t i = tu_rng_below(&rng, S_SMALL.n);
    gen(&S_SMALL, i, g);
    if (j % 100 == 99) { /* a short scan */
      kj_run_iter it;
      rd->good =
          kj_run_iter_seek(&it, rd->r, rd->c, g->t, g->k, g->kl, &e) == KJ_OK;
      for (uint64_t x = i; x < i + 100 && x < S_SMALL.n && rd->good; x++) {
        unsigned t;
        const uint8_t *k, *v;
        size_t kl, vl;
        gen(&S_SMALL, x, g);
        rd->good = kj_run_iter_next(&it, &t, &k, &kl, &v, &vl, &e) == KJ_OK &&
                   kl == g->kl && !memcmp(k, g->k, kl) && vl == g->vl &&
                   !memcmp(v, g->v, vl);
      }
      kj_run_iter_close(&it);
      continue;
    }
    size_t vl;
    rd->good = kj_run_get(rd->r, rd->c, g->t, g->k, g->kl, buf, 256, &vl, &e) ==
                   KJ_OK &&
               vl == g->vl && !memcmp(buf, g->v, vl);
    g->k[g->kl] = '0';
    rd->good = rd->good && get_misses(rd->r, rd->c, g->t, g->k, g->kl + 1);
  }
  free(buf);
  genrow_free(g);
  return NULL;
}

static void test_threads(void) {
  kj_snap_info info;
  kj_run *r = open_run(1, &info);
  if (!r) {
    ok(0, "threads: run opens");
    return;
  }
  /* A cache of 8 blocks: constant eviction, races to decode one block. */
  size_t caps[] = {8 * kj_bcache_cost(KJ_RUN_BLOCK_TARGET, 0), 64u << 20, 0};
  for (int ci = 0; ci < 3; ci++) {
    kj_bcache *c;
    kj_bcache_new(caps[ci], &c);
    pthread_t th[4];
    reader rd[4];
    for (int i = 0; i < 4; i++) {
      rd[i] = (reader){r, c, (uint64_t)(i + 1) * 1000 + (uint64_t)ci, 0};
      pthread_create(&th[i], NULL, reader_main, &rd[i]);
    }
    int good = 1;
    for (int i = 0; i < 4; i++) {
      pthread_join(th[i], NULL);
      good = good && rd[i].good;
    }
    kj_bcache_counters st;
    kj_bcache_stats(c, &st);
    ok(good && st.bytes_pinned == 0 && within(c),
       "threads: 4 readers at once, cache of %zu bytes (%" PRIu64
       " hits, %" PRIu64 " misses)",
       caps[ci], st.hits, st.misses);
    kj_bcache_free(c);
  }
  kj_run_close(r, NULL);
}

/* ---- a read-only memory VFS for damaged copies ------------------------- */

static const uint8_t *mem_p;
static size_t mem_n;

struct kj_vfs_file {
  int unused;
};
static struct kj_vfs_file mem_file;

static int mem_open(void *ctx, const char *path, unsigned flags,
                    kj_vfs_file **out) {
  (void)ctx;
  (void)path;
  if (flags != KJ_VFS_READ)
    return KJ_EIO;
  *out = &mem_file;
  return KJ_OK;
}
static int mem_close(void *ctx, kj_vfs_file *f) {
  (void)ctx;
  (void)f;
  return KJ_OK;
}
static int mem_read(void *ctx, kj_vfs_file *f, void *buf, size_t n,
                    uint64_t off, size_t *got) {
  (void)ctx;
  (void)f;
  size_t k = off >= mem_n              ? 0
             : mem_n - (size_t)off < n ? mem_n - (size_t)off
                                       : n;
  if (k)
    memcpy(buf, mem_p + off, k);
  *got = k;
  return KJ_OK;
}
static int mem_size(void *ctx, kj_vfs_file *f, uint64_t *out) {
  (void)ctx;
  (void)f;
  *out = mem_n;
  return KJ_OK;
}
static const kj_vfs mem_vfs = {.version = 1,
                               .open = mem_open,
                               .close = mem_close,
                               .read = mem_read,
                               .size = mem_size};

/* The scratch row of probe(), made once (4 MiB). */
static genrow *probe_row;

/* What reading the damaged bytes (p, n) gives: 0 all refused with
 * KJ_ECORRUPT (the open, or the verify and at least one row), 1 read
 * fully and right, -1 wrong: another status, a wrong row, or success. */
static int probe(const uint8_t *p, size_t n, const spec *s, uint64_t seq,
                 const uint8_t *id, int *why) {
  mem_p = p;
  mem_n = n;
  kj_run *r;
  kj_snap_info info;
  kj_errbuf e;
  int rc = kj_run_open(&mem_vfs, "mem.kjr", tu_key, id, seq, &r, &info, &e);
  *why = rc;
  if (rc)
    return rc == KJ_ECORRUPT && !r && strstr(e.msg, "mem.kjr") ? 0 : -1;
  int vr = kj_run_verify(r, NULL, NULL, &e);
  /* Every row through an iterator (through a cache) and through get: each
   * is either right or KJ_ECORRUPT, never anything else. */
  kj_bcache *c;
  kj_bcache_new(1u << 20, &c);
  if (!probe_row)
    probe_row = genrow_new();
  genrow *g = probe_row;
  uint8_t buf[2048];
  int bad = 0, refused = 0;
  kj_run_iter it;
  rc = kj_run_iter_seek(&it, r, c, 0, NULL, 0, &e);
  for (uint64_t i = 0; !rc && !bad; i++) {
    unsigned t;
    const uint8_t *k, *v;
    size_t kl, vl;
    rc = kj_run_iter_next(&it, &t, &k, &kl, &v, &vl, &e);
    if (rc)
      break;
    gen(s, i, g);
    bad = i >= s->n || t != g->t || kl != g->kl || memcmp(k, g->k, kl) ||
          vl != g->vl || memcmp(v, g->v, vl);
  }
  kj_run_iter_close(&it);
  if (rc == KJ_ECORRUPT)
    refused = 1;
  else if (rc != KJ_NOTFOUND)
    bad = 1;
  for (uint64_t i = 0; i < s->n && !bad; i++) {
    gen(s, i, g);
    size_t vl;
    rc = kj_run_get(r, c, g->t, g->k, g->kl, buf, 2048, &vl, &e);
    if (rc == KJ_ECORRUPT)
      refused = 1;
    else if (rc != KJ_OK || vl != g->vl || memcmp(buf, g->v, vl))
      bad = 1;
  }
  kj_run_close(r, c);
  kj_bcache_free(c);
  *why = vr;
  if (bad || (vr != KJ_OK && vr != KJ_ECORRUPT))
    return -1;
  if (vr == KJ_ECORRUPT)
    return refused ? 0 : -1; /* some row of the damaged block must fail */
  return refused ? -1 : 1;
}

static void test_damage(void) {
  kj_snap_info info;
  is(write_run(&S_DAMAGE, 40, &info), KJ_OK, "damage: run written");
  char *path = run_path(40);
  size_t n;
  uint8_t *f = tu_read_file(path, &n);
  free(path);
  int why;
  ok(f && probe(f, n, &S_DAMAGE, 40, store_id, &why) == 1,
     "damage: the undamaged file reads right through the memory VFS");
  kj_run *r;
  kj_errbuf e;
  mem_p = f;
  mem_n = n;
  kj_run_open(&mem_vfs, "mem.kjr", tu_key, store_id, 40, &r, &info, &e);
  uint64_t nb = r ? kj_run_blocks(r) : 0;
  kj_run_close(r, NULL);
  ok(nb >= 3, "damage: %" PRIu64 " blocks in %zu bytes", nb, n);

  /* Every byte flipped, one at a time. */
  int fails = 0;
  for (size_t i = 0; i < n; i++) {
    f[i] ^= 0x20;
    int p = probe(f, n, &S_DAMAGE, 40, store_id, &why);
    f[i] ^= 0x20;
    if (p != 0 && fails++ < 5)
      printf("# flip at %zu: %d (%d)\n", i, p, why);
  }
  ok(fails == 0,
     "damage: each of %zu flipped bytes is refused with "
     "KJ_ECORRUPT, never a wrong row",
     n);
  /* Every truncation, and a trailing byte. */
  fails = 0;
  for (size_t len = 0; len < n; len++)
    if (probe(f, len, &S_DAMAGE, 40, store_id, &why) != 0 && fails++ < 5)
      printf("# cut at %zu: %d\n", len, why);
  ok(fails == 0, "damage: each cut (0..%zu bytes) is KJ_ECORRUPT", n - 1);
  uint8_t *g = malloc(n + 1);
  memcpy(g, f, n);
  g[n] = 0;
  ok(probe(g, n + 1, &S_DAMAGE, 40, store_id, &why) == 0 && why == KJ_ECORRUPT,
     "damage: a trailing byte is KJ_ECORRUPT");
  /* Another store, another S. */
  ok(probe(f, n, &S_DAMAGE, 40, other_id, &why) == 0,
     "damage: another store's run is KJ_ECORRUPT");
  ok(probe(f, n, &S_DAMAGE, 41, store_id, &why) == 0,
     "damage: a run of another S than expected is KJ_ECORRUPT");
  /* The header's S or store id rewritten with a valid checksum: every
   * sealed unit refuses it. */
  memcpy(g, f, n);
  kj_put64(g + 32, 41);
  kj_put64(g + 72, XXH3_64bits(g, 72));
  ok(probe(g, n, &S_DAMAGE, 0, store_id, &why) == 0,
     "damage: S rewritten in the header (checksum fixed) is KJ_ECORRUPT");
  memcpy(g, f, n);
  memcpy(g + 16, other_id, 16);
  kj_put64(g + 72, XXH3_64bits(g, 72));
  ok(probe(g, n, &S_DAMAGE, 40, other_id, &why) == 0,
     "damage: store id rewritten (checksum fixed) is KJ_ECORRUPT");
  memcpy(g, f, n);
  kj_put64(g + 40, 7);
  kj_put64(g + 72, XXH3_64bits(g, 72));
  ok(probe(g, n, &S_DAMAGE, 40, store_id, &why) == 0,
     "damage: B rewritten (checksum fixed) is KJ_ECORRUPT");
  /* A newer version, checksum fixed: KJ_EFORMAT. */
  memcpy(g, f, n);
  kj_put32(g + 8, 3);
  kj_put64(g + 72, XXH3_64bits(g, 72));
  mem_p = g;
  mem_n = n;
  int rc =
      kj_run_open(&mem_vfs, "mem.kjr", tu_key, store_id, 40, &r, &info, &e);
  ok(rc == KJ_EFORMAT && !r && strstr(e.msg, "version 3"),
     "damage: format version 3 is KJ_EFORMAT (%s)", e.msg);
  free(g);
  free(f);
}

/* Blocks swapped, and blocks of other runs of the same store. */
static void test_moved_blocks(void) {
  kj_snap_info info;
  is(write_run(&S_EQUAL, 50, &info), KJ_OK, "moved: run at S 50 written");
  is(write_run(&S_EQUAL, 60, &info), KJ_OK, "moved: run at S 60 written");
  char *p50 = run_path(50), *p60 = run_path(60);
  size_t n50, n60;
  uint8_t *a = tu_read_file(p50, &n50), *b = tu_read_file(p60, &n60);
  kj_run *r = open_run(50, &info);
  uint64_t off0 = 0, off1 = 0;
  uint32_t len0 = 0, len1 = 0, rows;
  if (r && kj_run_blocks(r) >= 3) {
    kj_run_block_place(r, 0, &off0, &len0, &rows);
    kj_run_block_place(r, 1, &off1, &len1, &rows);
  }
  kj_run_close(r, NULL);
  ok(a && b && n50 == n60 && len0 && len0 == len1,
     "moved: blocks 0 and 1 are %" PRIu32 " and %" PRIu32 " bytes", len0, len1);
  if (!(a && b && n50 == n60 && len0 && len0 == len1)) {
    free(a);
    free(b);
    free(p50);
    free(p60);
    return;
  }
  int why;
  uint8_t *g = malloc(n50);
  memcpy(g, a, n50);
  memcpy(g + off0, a + off1, len0);
  memcpy(g + off1, a + off0, len0);
  ok(probe(g, n50, &S_EQUAL, 50, store_id, &why) == 0,
     "moved: blocks 0 and 1 swapped: KJ_ECORRUPT");
  memcpy(g, a, n50);
  memcpy(g + off1, b + off1, len0);
  ok(probe(g, n50, &S_EQUAL, 50, store_id, &why) == 0,
     "moved: block 1 of the run at S 60 in the run at S 50: KJ_ECORRUPT");
  memcpy(g, a, n50);
  memcpy(g + off1, a + off0, len0);
  ok(probe(g, n50, &S_EQUAL, 50, store_id, &why) == 0,
     "moved: block 0 copied over block 1: KJ_ECORRUPT");
  /* Rewritten at the same S (a checkpoint redone after a crash): another
   * nonce prefix, so the old file's blocks do not fit the new one. */
  uint8_t *a2;
  size_t n2;
  is(write_run(&S_EQUAL, 50, &info), KJ_OK, "moved: run at S 50 rewritten");
  a2 = tu_read_file(p50, &n2);
  ok(a2 && n2 == n50 && memcmp(a2 + 48, a + 48, 16),
     "moved: the rewrite has another nonce prefix");
  if (a2 && n2 == n50) {
    memcpy(g, a2, n50);
    memcpy(g + off1, a + off1, len0);
    ok(probe(g, n50, &S_EQUAL, 50, store_id, &why) == 0,
       "moved: a block of the earlier file at the same S: KJ_ECORRUPT");
    memcpy(g, a2, n50);
    memcpy(g + n50 - 96, a + n50 - 96, 96);
    ok(probe(g, n50, &S_EQUAL, 50, store_id, &why) == 0,
       "moved: the earlier file's footer: KJ_ECORRUPT");
  }
  free(a2);
  free(g);
  free(a);
  free(b);
  free(p50);
  free(p60);
}

/* ---- the writer's checks and failures ------------------------------------ */

static void test_writer_checks(void) {
  kj_snap_info in, info;
  memset(&in, 0, sizeof in);
  in.seq = 70;
  in.base = 71;
  kj_run_writer *w;
  kj_errbuf e;
  is(kj_run_writer_begin(kj_vfs_posix(), dir, tu_key, store_id, &in, &w, &e),
     KJ_OK, "writer: begin");
  uint8_t *big = calloc(1, KJ_MAX_VALUE + 1);
  uint8_t key[KJ_MAX_KEY + 1];
  memset(key, 'k', sizeof key);
  is(kj_run_writer_add(w, 3, "b", 1, "1", 1, &e), KJ_OK, "writer: first row");
  is(kj_run_writer_add(w, 3, "b", 1, "1", 1, &e), KJ_EINVAL,
     "writer: the same key again: EINVAL");
  ok(strstr(e.msg, "not above"), "writer: ... saying why (%s)", e.msg);
  is(kj_run_writer_add(w, 3, "a", 1, "1", 1, &e), KJ_EINVAL,
     "writer: a lower key: EINVAL");
  is(kj_run_writer_add(w, 2, "z", 1, "1", 1, &e), KJ_EINVAL,
     "writer: a lower table: EINVAL");
  is(kj_run_writer_add(w, 3, "bb", 2, "2", 1, &e), KJ_OK,
     "writer: a longer key with the same prefix sorts after");
  is(kj_run_writer_add(w, 3, "b", 1, "1", 1, &e), KJ_EINVAL,
     "writer: ... and its prefix before: EINVAL");
  is(kj_run_writer_add(w, 0, "c", 1, "", 0, &e), KJ_EINVAL,
     "writer: table 0: EINVAL");
  is(kj_run_writer_add(w, 256, "c", 1, "", 0, &e), KJ_EINVAL,
     "writer: table 256: EINVAL");
  is(kj_run_writer_add(w, 3, "c", 0, "", 0, &e), KJ_EINVAL,
     "writer: empty key: EINVAL");
  is(kj_run_writer_add(w, 3, key, KJ_MAX_KEY + 1, "", 0, &e), KJ_EINVAL,
     "writer: key over KJ_MAX_KEY: EINVAL");
  is(kj_run_writer_add(w, 3, "c", 1, big, KJ_MAX_VALUE + 1, &e), KJ_EINVAL,
     "writer: value over KJ_MAX_VALUE: EINVAL");
  is(kj_run_writer_add(w, 3, "c", 1, "3", 1, &e), KJ_OK,
     "writer: goes on after refused rows");
  is(kj_run_writer_add(w, 4, key, KJ_MAX_KEY, big, KJ_MAX_VALUE, &e), KJ_OK,
     "writer: the largest row");
  int renamed;
  is(kj_run_writer_finish(w, &info, &renamed, &e), KJ_OK, "writer: finish");
  ok(renamed && info.rows == 4, "writer: 4 rows taken");
  kj_run *r = open_run(70, &info);
  uint8_t buf[4];
  size_t vl;
  ok(r && verify_ok(r) &&
         kj_run_get(r, NULL, 3, "bb", 2, buf, 4, &vl, &e) == KJ_OK && vl == 1 &&
         buf[0] == '2' && kj_run_has(r, NULL, 4, key, KJ_MAX_KEY, &e) == KJ_OK,
     "writer: its run reads back");
  kj_run_close(r, NULL);
  free(big);

  /* Abort removes NAME.tmp. */
  in.seq = 71;
  kj_run_writer_begin(kj_vfs_posix(), dir, tu_key, store_id, &in, &w, &e);
  kj_run_writer_add(w, 1, "a", 1, "b", 1, &e);
  char *tmp = tu_path(dir, "run-0000000000000047.kjr.tmp");
  ok(tu_file_size(tmp) >= 0, "writer: NAME.tmp while writing");
  kj_run_writer_abort(w);
  ok(tu_file_size(tmp) < 0, "writer: abort removes NAME.tmp");
  free(tmp);
  char *fin = run_path(71);
  ok(tu_file_size(fin) < 0, "writer: ... and leaves no run");
  free(fin);
}

/* Fail the nth call of method while writing S_SMALL (a 100k rows, 2.4 MB
 * run: blocks go through the write buffer in several writes). */
static int failed_write(tu_method m, uint64_t nth, int *renamed_out) {
  tu_vfs tv;
  tu_vfs_init(&tv);
  tu_vfs_arm(&tv, m, nth, m == TU_WRITE && nth % 2 ? KJ_ENOSPC : KJ_EIO,
             TU_ARM_ONCE | (m == TU_WRITE ? TU_ARM_PARTIAL : 0));
  kj_snap_info info;
  int rc = write_run_vfs(&tv.vfs, &S_SMALL, 80, store_id, &info);
  *renamed_out = tu_vfs_injected(&tv) > 0;
  tu_vfs_destroy(&tv);
  return rc;
}

static void test_failed_writes(void) {
  static const struct {
    tu_method m;
    const char *name;
  } ms[] = {{TU_OPEN, "create"},
            {TU_WRITE, "write"},
            {TU_SYNC, "sync"},
            {TU_RENAME, "rename"}};
  char *fin = run_path(80), *tmp = NULL;
  char name[64];
  kj_run_name(80, name, sizeof name);
  strcat(name, ".tmp");
  tmp = tu_path(dir, name);
  for (size_t k = 0; k < sizeof ms / sizeof ms[0]; k++) {
    int all = 1, tried = 0;
    for (uint64_t nth = 1; nth < 10; nth++) {
      int injected;
      int rc = failed_write(ms[k].m, nth, &injected);
      if (!injected) {
        all = all && rc == KJ_OK && tu_file_size(fin) > 0;
        unlink(fin);
        break;
      }
      tried++;
      if (!(rc == KJ_EIO || rc == KJ_ENOSPC) || tu_file_size(fin) >= 0 ||
          tu_file_size(tmp) >= 0) {
        printf("# %s #%" PRIu64 ": %d\n", ms[k].name, nth, rc);
        all = 0;
      }
      unlink(fin);
    }
    ok(all && tried > 0,
       "failed writes: a failed %s (%d cases) fails the write and leaves no "
       "file",
       ms[k].name, tried);
  }
  /* The directory sync after the rename: the run exists, the failure is
   * reported. */
  tu_vfs tv;
  tu_vfs_init(&tv);
  tu_vfs_arm(&tv, TU_SYNC_DIR, 1, KJ_EIO, TU_ARM_ONCE);
  kj_snap_info in, info;
  memset(&in, 0, sizeof in);
  in.seq = 80;
  kj_run_writer *w;
  kj_errbuf e;
  int rc = kj_run_writer_begin(&tv.vfs, dir, tu_key, store_id, &in, &w, &e);
  kj_run_writer_add(w, 1, "a", 1, "b", 1, &e);
  int renamed = 0;
  if (!rc)
    rc = kj_run_writer_finish(w, &info, &renamed, &e);
  ok(rc == KJ_EIO && renamed && tu_file_size(fin) > 0 && tu_file_size(tmp) < 0,
     "failed writes: a failed directory sync is reported, renamed is set");
  tu_vfs_destroy(&tv);
  unlink(fin);
  free(fin);
  free(tmp);
}

int main(void) {
  dir = tu_mkdtemp_or_bail();
  test_names();
  round_trip(&S_NONE, 4, 1);
  round_trip(&S_ONE, 5, 1);
  round_trip(&S_SMALL, 1, 97);
  round_trip(&S_TABLES, 2, 7);
  round_trip(&S_BIG, 3, 1);
  round_trip(&S_LONG, 6, 1);
  round_trip(&S_TIES, 7, 1);
  test_misses();
  test_counts_bloom();
  test_writer_dir_copy();
  random_bounds(&S_SMALL, 1, 3000);
  random_bounds(&S_TABLES, 2, 3000);
  random_bounds(&S_LONG, 6, 3000);
  random_bounds(&S_TIES, 7, 3000);
  test_iteration();
  test_cache();
  test_threads();
  test_damage();
  test_moved_blocks();
  test_writer_checks();
  test_failed_writes();
  if (probe_row)
    genrow_free(probe_row);
  tu_rmrf(dir);
  free(dir);
  return tap_done();
}
