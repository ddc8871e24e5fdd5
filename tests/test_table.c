/*
 * tests/test_table.c - unit test for the in-memory ordered map
 * (src/engine/map.c).
 *
 * Fixed edge cases first (empty map, empty key, key order, oversize lengths,
 * entry pointer stability), then a randomized differential run: ~20k random
 * puts, tombstones, deletes, gets and seeks against a plain sorted array, with
 * keys drawn from a tiny alphabet so that prefixes, equal keys and 0x00/0xff
 * bytes come up constantly. Finally sorted bulk loads check that the
 * iterator's path stack stays within the AVL height bound.
 *
 * Checks inside loops are aggregated: each reports once, with the first
 * mismatch as a TAP diagnostic. The seed can be given as argv[1] to replay.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/map.h"
#include "keyjournal/errors.h"
#include "tap.h"

#define KMAX 5   /* key lengths 0..KMAX-1 */
#define VMAX 300 /* value lengths 0..VMAX-1 */
#define NOPS 20000

/* xorshift64*: deterministic, so a failure replays from its seed. */
static uint64_t rng_next(uint64_t *s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 2685821657736338717ULL;
}
static unsigned rng_below(uint64_t *s, unsigned n) {
  return (unsigned)(rng_next(s) % n);
}

/* Is h a possible AVL height for n entries? The sparsest AVL tree of height h
 * has N(h) = N(h-1) + N(h-2) + 1 nodes (N(0) = 0, N(1) = 1), which is where
 * the 1.44*log2(n+2) bound comes from; this exact form is the tighter check
 * and needs no libm. */
static int avl_height_ok(int h, uint64_t n) {
  uint64_t a = 0, b = 1; /* N(k-1), N(k) */
  int k;
  if (h < 0)
    return 0;
  if (h == 0)
    return n == 0;
  for (k = 1; k < h; k++) {
    uint64_t c = a + b + 1;
    a = b;
    b = c;
  }
  return b <= n;
}

/* Independent of kj_key_cmp on purpose, so the reference does not inherit a
 * bug in the code under test. */
static int ref_cmp(const unsigned char *a, size_t alen, const unsigned char *b,
                   size_t blen) {
  size_t i;
  for (i = 0; i < alen && i < blen; i++)
    if (a[i] != b[i])
      return a[i] < b[i] ? -1 : 1;
  return alen < blen ? -1 : alen > blen ? 1 : 0;
}

struct ref_row {
  unsigned char key[KMAX];
  size_t klen;
  unsigned char val[VMAX];
  size_t vlen;
  int tomb;
};

/* The reference map: rows sorted by ref_cmp. 1 + 4 + ... + 4^4 = 341 keys
 * exist, so a fixed array is enough. */
struct ref {
  struct ref_row rows[400];
  size_t n;
};

/* Index of the first row >= key. */
static size_t ref_lower(const struct ref *r, const unsigned char *key,
                        size_t klen) {
  size_t lo = 0, hi = r->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (ref_cmp(r->rows[mid].key, r->rows[mid].klen, key, klen) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static int ref_found(const struct ref *r, size_t i, const unsigned char *key,
                     size_t klen) {
  return i < r->n && ref_cmp(r->rows[i].key, r->rows[i].klen, key, klen) == 0;
}

static void ref_put(struct ref *r, const unsigned char *key, size_t klen,
                    const unsigned char *val, size_t vlen, int tomb) {
  size_t i = ref_lower(r, key, klen);
  if (!ref_found(r, i, key, klen)) {
    memmove(&r->rows[i + 1], &r->rows[i], (r->n - i) * sizeof r->rows[0]);
    r->n++;
    memcpy(r->rows[i].key, key, klen);
    r->rows[i].klen = klen;
  }
  memcpy(r->rows[i].val, val, vlen);
  r->rows[i].vlen = vlen;
  r->rows[i].tomb = tomb;
}

static int ref_del(struct ref *r, const unsigned char *key, size_t klen) {
  size_t i = ref_lower(r, key, klen);
  if (!ref_found(r, i, key, klen))
    return 0;
  memmove(&r->rows[i], &r->rows[i + 1], (r->n - i - 1) * sizeof r->rows[0]);
  r->n--;
  return 1;
}

static uint64_t ref_bytes(const struct ref *r) {
  uint64_t b = 0;
  size_t i;
  for (i = 0; i < r->n; i++)
    b += r->rows[i].klen + r->rows[i].vlen;
  return b;
}

/* Does entry e hold exactly row w? */
static int entry_matches(const kj_entry *e, const struct ref_row *w) {
  if (!e)
    return 0;
  if (ref_cmp(kj_entry_key(e), kj_entry_klen(e), w->key, w->klen) != 0)
    return 0;
  if (kj_entry_vlen(e) != w->vlen || !kj_entry_tomb(e) != !w->tomb)
    return 0;
  return w->vlen == 0 || memcmp(kj_entry_val(e), w->val, w->vlen) == 0;
}

static void fmt_key(char *out, const unsigned char *k, size_t klen) {
  size_t i;
  out[0] = '"';
  for (i = 0; i < klen; i++)
    sprintf(out + 1 + 2 * i, "%02x", k[i]);
  strcpy(out + 1 + 2 * klen, "\"");
}

/* A check that runs many times: counts failures, remembers the first. */
struct agg {
  long runs, fails;
  char first[160];
};

static void agg_check(struct agg *a, int cond, long op, const char *what,
                      const unsigned char *k, size_t klen) {
  a->runs++;
  if (cond || a->fails++)
    return;
  {
    char ks[2 * KMAX + 3];
    fmt_key(ks, k, klen);
    snprintf(a->first, sizeof a->first, "op %ld: %s, key %s", op, what, ks);
  }
}

static void agg_report(const struct agg *a, const char *name) {
  ok(a->runs > 0 && a->fails == 0, "%s (%ld checks)", name, a->runs);
  if (a->fails)
    printf("#   %ld failed; first: %s\n", a->fails, a->first);
}

/* Walk the map from bound (klen 0 = from the start) and compare every entry
 * with the reference rows from the same bound; also require the iterator to
 * end exactly when the reference does and to stay ended. */
static int iter_matches(const kj_map *m, const struct ref *r,
                        const unsigned char *bound, size_t blen) {
  kj_iter it;
  size_t i = blen ? ref_lower(r, bound, blen) : 0;
  const kj_entry *e;
  kj_iter_seek(&it, m, blen ? bound : NULL, blen);
  for (; i < r->n; i++)
    if (!entry_matches(kj_iter_next(&it), &r->rows[i]))
      return 0;
  e = kj_iter_next(&it);
  return e == NULL && kj_iter_next(&it) == NULL;
}

static size_t rand_key(uint64_t *s, unsigned char *k) {
  /* A four-letter alphabet with both extreme bytes, so unsigned comparison
   * and prefix order are exercised on nearly every operation. */
  static const unsigned char alpha[4] = {0x00, 'a', 'b', 0xff};
  size_t n = rng_below(s, KMAX), i;
  for (i = 0; i < n; i++)
    k[i] = alpha[rng_below(s, 4)];
  return n;
}

static size_t rand_val(uint64_t *s, unsigned char *v) {
  /* Mostly short or empty values, sometimes long ones, so replacements
   * change the node size in both directions. */
  unsigned kind = rng_below(s, 10);
  size_t n = kind < 3 ? 0 : kind < 8 ? rng_below(s, 16) : rng_below(s, VMAX);
  size_t i;
  for (i = 0; i < n; i++)
    v[i] = (unsigned char)rng_next(s);
  return n;
}

static void test_key_cmp(void) {
  ok(kj_key_cmp(NULL, 0, NULL, 0) == 0, "cmp: (NULL,0) == (NULL,0)");
  ok(kj_key_cmp(NULL, 0, "", 0) == 0, "cmp: (NULL,0) == (\"\",0)");
  ok(kj_key_cmp(NULL, 0, "a", 1) < 0, "cmp: empty < \"a\"");
  ok(kj_key_cmp("a", 1, NULL, 0) > 0, "cmp: \"a\" > empty");
  ok(kj_key_cmp("ab", 2, "ab", 2) == 0, "cmp: equal keys");
  ok(kj_key_cmp("a", 1, "ab", 2) < 0, "cmp: prefix sorts first");
  ok(kj_key_cmp("ab", 2, "a", 1) > 0, "cmp: longer sorts after its prefix");
  ok(kj_key_cmp("b", 1, "ab", 2) > 0, "cmp: first byte beats length");
  ok(kj_key_cmp("\xff", 1, "\x01", 1) > 0, "cmp: bytes compare unsigned");
  ok(kj_key_cmp("a\0b", 3, "a\0c", 3) < 0, "cmp: embedded NUL is a byte");
}

static void test_empty_and_basics(void) {
  kj_map *m = kj_map_new();
  kj_iter it;
  const kj_entry *e;

  ok(m != NULL, "new map");
  is(kj_map_count(m), 0, "empty: count 0");
  is(kj_map_bytes(m), 0, "empty: bytes 0");
  ok(kj_map_get(m, "a", 1) == NULL, "empty: get misses");
  ok(kj_map_get(m, NULL, 0) == NULL, "empty: get of empty key misses");
  is(kj_map_del(m, "a", 1), 0, "empty: del of absent key returns 0");
  kj_iter_seek(&it, m, NULL, 0);
  ok(kj_iter_next(&it) == NULL, "empty: iterator yields nothing");

  /* The empty key is a real key, passed as (NULL, 0). */
  is(kj_map_put(m, NULL, 0, "v", 1, 0), KJ_OK, "put empty key");
  e = kj_map_get(m, "", 0);
  ok(e && kj_entry_klen(e) == 0 && kj_entry_vlen(e) == 1 &&
         memcmp(kj_entry_val(e), "v", 1) == 0 && !kj_entry_tomb(e),
     "get empty key");
  is(kj_map_put(m, "k", 1, NULL, 0, 0), KJ_OK, "put empty value as (NULL,0)");
  e = kj_map_get(m, "k", 1);
  ok(e && kj_entry_vlen(e) == 0 && !kj_entry_tomb(e), "empty value is live");
  is(kj_map_put(m, "t", 1, NULL, 0, 1), KJ_OK, "put tombstone");
  e = kj_map_get(m, "t", 1);
  ok(e && kj_entry_tomb(e) == 1 && kj_entry_vlen(e) == 0,
     "tombstone is found and flagged");
  is(kj_map_count(m), 3, "tombstones count as entries");
  is(kj_map_bytes(m), 0 + 1 + 1 + 0 + 1 + 0, "bytes include tombstone keys");

  is(kj_map_put(m, "k", 1, "longer", 6, 0), KJ_OK, "replace value");
  is(kj_map_count(m), 3, "replace keeps count");
  is(kj_map_bytes(m), 1 + 7 + 1, "replace adjusts bytes");

  kj_iter_seek(&it, m, NULL, 0);
  e = kj_iter_next(&it);
  ok(e && kj_entry_klen(e) == 0, "seek(NULL) starts at the empty key");
  kj_iter_seek(&it, m, "z", 1);
  ok(kj_iter_next(&it) == NULL, "seek past the last key yields nothing");
  kj_iter_seek(&it, m, "j", 1);
  e = kj_iter_next(&it);
  ok(e && kj_entry_klen(e) == 1 && memcmp(kj_entry_key(e), "k", 1) == 0,
     "seek to an absent key lands on its successor");

  kj_map_clear(m);
  is(kj_map_count(m), 0, "clear: count 0");
  is(kj_map_bytes(m), 0, "clear: bytes 0");
  ok(kj_map_get(m, "k", 1) == NULL, "clear: entries gone");
  is(kj_map_put(m, "k", 1, "v", 1, 0), KJ_OK, "map usable after clear");
  is(kj_map_count(m), 1, "count after clear and put");
  kj_map_free(m);
  kj_map_free(NULL);
  ok(1, "kj_map_free(NULL) returns (a crash fails the run)");
}

/* Lengths stored as uint32 cannot exceed it; the put must fail cleanly.
 * This relies on the length check coming before any read of the buffers,
 * which is the only sane order for it. */
static void test_oversize(void) {
#if SIZE_MAX > UINT32_MAX
  kj_map *m = kj_map_new();
  const kj_entry *e;
  size_t huge = (size_t)UINT32_MAX + 1;
  kj_map_put(m, "k", 1, "old", 3, 0);
  is(kj_map_put(m, "k", huge, "x", 1, 0), KJ_ENOMEM, "oversize key: ENOMEM");
  is(kj_map_put(m, "k", 1, "x", huge, 0), KJ_ENOMEM, "oversize value: ENOMEM");
  e = kj_map_get(m, "k", 1);
  ok(e && kj_entry_vlen(e) == 3 && memcmp(kj_entry_val(e), "old", 3) == 0 &&
         kj_map_count(m) == 1 && kj_map_bytes(m) == 4,
     "failed puts leave the map unchanged");
  kj_map_free(m);
#else
  ok(1, "# SKIP oversize lengths need a 64-bit size_t");
#endif
}

/* Entries other than the one replaced or removed must not move: rotations
 * relink nodes but may not reallocate them. ASan turns a violation into a
 * use-after-free report as well. */
static void test_pointer_stability(void) {
  kj_map *m = kj_map_new();
  const kj_entry *held[8];
  char key[16];
  int i, good = 1;
  for (i = 0; i < 8; i++) {
    snprintf(key, sizeof key, "held%d", i);
    kj_map_put(m, key, strlen(key), key, strlen(key), 0);
    held[i] = kj_map_get(m, key, strlen(key));
  }
  for (i = 0; i < 5000; i++) {
    snprintf(key, sizeof key, "%05d", i);
    kj_map_put(m, key, strlen(key), "x", 1, 0);
  }
  for (i = 0; i < 5000; i += 2) {
    snprintf(key, sizeof key, "%05d", i);
    kj_map_del(m, key, strlen(key));
  }
  for (i = 0; i < 8; i++) {
    snprintf(key, sizeof key, "held%d", i);
    if (kj_map_get(m, key, strlen(key)) != held[i] ||
        kj_entry_klen(held[i]) != strlen(key) ||
        memcmp(kj_entry_val(held[i]), key, strlen(key)) != 0)
      good = 0;
  }
  ok(good, "entry pointers survive rebalancing by other keys");
  kj_map_free(m);
}

static void test_random(uint64_t seed) {
  static struct ref r; /* ~120 KB: keep it off the stack */
  kj_map *m = kj_map_new();
  uint64_t s = seed;
  struct agg a_put = {0}, a_get = {0}, a_del = {0}, a_cnt = {0}, a_bytes = {0},
             a_full = {0}, a_seek = {0}, a_avl = {0};
  unsigned char k[KMAX], v[VMAX];
  long op;
  int cleared = 0;

  r.n = 0;
  for (op = 0; op < NOPS; op++) {
    size_t klen = rand_key(&s, k), vlen, i;
    unsigned what = rng_below(&s, 100);
    if (what < 40) { /* put */
      vlen = rand_val(&s, v);
      agg_check(&a_put, kj_map_put(m, k, klen, v, vlen, 0) == KJ_OK, op,
                "put failed", k, klen);
      ref_put(&r, k, klen, v, vlen, 0);
    } else if (what < 52) { /* tombstone */
      agg_check(&a_put, kj_map_put(m, k, klen, NULL, 0, 1) == KJ_OK, op,
                "tombstone put failed", k, klen);
      ref_put(&r, k, klen, v, 0, 1);
    } else if (what < 72) { /* delete, often of an absent key */
      int want = ref_del(&r, k, klen);
      agg_check(&a_del, kj_map_del(m, k, klen) == want, op,
                "del returned the wrong presence", k, klen);
    } else if (what < 92) { /* get */
      const kj_entry *e = kj_map_get(m, k, klen);
      i = ref_lower(&r, k, klen);
      if (ref_found(&r, i, k, klen))
        agg_check(&a_get, entry_matches(e, &r.rows[i]), op,
                  "get mismatch for present key", k, klen);
      else
        agg_check(&a_get, e == NULL, op, "get found an absent key", k, klen);
    } else { /* iterate from a random bound */
      agg_check(&a_seek, iter_matches(m, &r, k, klen), op,
                "iteration from bound differs", k, klen);
    }
    agg_check(&a_cnt, kj_map_count(m) == r.n, op, "count differs", k, klen);
    agg_check(&a_bytes, kj_map_bytes(m) == ref_bytes(&r), op, "bytes differ", k,
              klen);
    agg_check(&a_avl, avl_height_ok(kj_map_check(m), r.n), op,
              "tree invariant or AVL height broken after op on", k, klen);
    if (op % 250 == 0)
      agg_check(&a_full, iter_matches(m, &r, NULL, 0), op,
                "full iteration differs", k, klen);
    /* Start over once in the middle, so clear is followed by real use. */
    if (!cleared && op == NOPS / 2) {
      kj_map_clear(m);
      r.n = 0;
      cleared = 1;
    }
  }
  agg_check(&a_full, iter_matches(m, &r, NULL, 0), op,
            "final full iteration differs", k, 0);
  /* The workload must have reached a reasonably full map, otherwise the
   * checks above prove little. */
  ok(r.n > 100, "random: map filled up (%zu keys at the end)", r.n);
  agg_report(&a_put, "random: puts succeed");
  agg_report(&a_get, "random: get matches reference");
  agg_report(&a_del, "random: del presence matches reference");
  agg_report(&a_cnt, "random: count matches reference");
  agg_report(&a_bytes, "random: bytes match reference");
  agg_report(&a_full, "random: full in-order iteration matches reference");
  agg_report(&a_seek, "random: iteration from random bounds matches");
  agg_report(&a_avl, "random: kj_map_check passes, height is AVL");
  kj_map_free(m);
}

/* AVL height for n nodes is below 1.4405*log2(n+2); the iterator's stack
 * never holds more than one root-to-leaf path. Sorted loads are the classic
 * way to degenerate a tree that fails to rebalance; kj_map_check() checks
 * the shape directly and the iterator's stack depth checks it from outside. */
static const char *const load_names[3] = {"ascending", "descending",
                                          "shuffled"};

/* Fill order[] with 0..n-1 ascending (mode 0), descending (1) or shuffled
 * (2, Fisher-Yates from the test's seeded generator). */
static void load_order(int *order, int n, int mode, uint64_t *s) {
  int i;
  for (i = 0; i < n; i++)
    order[i] = mode == 1 ? n - 1 - i : i;
  if (mode == 2)
    for (i = n - 1; i > 0; i--) {
      int j = (int)rng_below(s, (unsigned)i + 1), t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
}

static void test_load(int mode, uint64_t seed) {
  const int n = 50000;
  const char *name = load_names[mode];
  kj_map *m = kj_map_new();
  kj_iter it;
  char key[16];
  int i, maxdepth = 0, order_ok = 1, seen = 0, lg = 0, h;
  double bound;
  const kj_entry *e, *prev = NULL;
  int *order = malloc(n * sizeof *order);

  if (!order) {
    ok(0, "%s load: allocating the key order", name);
    kj_map_free(m);
    return;
  }
  load_order(order, n, mode, &seed);
  /* ceil(log2(n)), so the bound is a little looser than 1.45*log2(n)+2 and
   * the test needs no libm. */
  while ((1L << lg) < n)
    lg++;
  bound = 1.45 * lg + 2;
  for (i = 0; i < n; i++) {
    snprintf(key, sizeof key, "%08d", order[i]);
    kj_map_put(m, key, 8, key, 8, 0);
    /* A tree that does not balance makes this load quadratic; catch that
     * early so the test fails instead of timing out. */
    if (i == 4095 && !avl_height_ok(kj_map_check(m), 4096)) {
      ok(0, "%s load: tree broken after 4096 puts, giving up", name);
      kj_map_free(m);
      free(order);
      return;
    }
  }
  is(kj_map_count(m), n, "%s load: count", name);
  h = kj_map_check(m);
  ok(avl_height_ok(h, (uint64_t)n) && h <= bound,
     "%s load: tree checks out, height %d", name, h);
  for (i = 0; i < n; i += 7) {
    snprintf(key, sizeof key, "%08d", i);
    kj_iter_seek(&it, m, key, 8);
    if (it.depth > maxdepth)
      maxdepth = it.depth;
  }
  kj_iter_seek(&it, m, NULL, 0);
  while ((e = kj_iter_next(&it)) != NULL) {
    if (it.depth > maxdepth)
      maxdepth = it.depth;
    if (prev && kj_key_cmp(kj_entry_key(prev), kj_entry_klen(prev),
                           kj_entry_key(e), kj_entry_klen(e)) >= 0)
      order_ok = 0;
    prev = e;
    seen++;
  }
  ok(order_ok && seen == n, "%s load: iteration in order, %d entries", name,
     seen);
  ok(maxdepth > 0 && maxdepth <= bound,
     "%s load: iterator stack depth %d within AVL bound %.1f", name, maxdepth,
     bound);
  /* Delete every other key, then check the survivors and the bound again. */
  for (i = 0; i < n; i++) {
    if (order[i] % 2 == 0) {
      snprintf(key, sizeof key, "%08d", order[i]);
      kj_map_del(m, key, 8);
    }
  }
  maxdepth = 0;
  seen = 0;
  kj_iter_seek(&it, m, NULL, 0);
  while ((e = kj_iter_next(&it)) != NULL) {
    if (it.depth > maxdepth)
      maxdepth = it.depth;
    seen++;
  }
  ok(seen == n / 2 && kj_map_count(m) == (uint64_t)n / 2 &&
         kj_map_bytes(m) == (uint64_t)n / 2 * 16,
     "%s load: half deleted, count and bytes right", name);
  h = kj_map_check(m);
  ok(avl_height_ok(h, (uint64_t)n / 2) && h <= bound,
     "%s load: after deletes, tree checks out, height %d", name, h);
  ok(maxdepth > 0 && maxdepth <= bound,
     "%s load: after deletes, stack depth %d within bound", name, maxdepth);
  kj_map_free(m);
  free(order);
}

/* The two maps hold the same keys in the same order, with values of the
 * same lengths, and a holds no tombstone. */
static int same_entries(const kj_map *a, const kj_map *b) {
  kj_iter ia, ib;
  kj_iter_seek(&ia, a, NULL, 0);
  kj_iter_seek(&ib, b, NULL, 0);
  const kj_entry *ea, *eb = NULL;
  int same = 1;
  while ((ea = kj_iter_next(&ia)) && (eb = kj_iter_next(&ib)))
    same &= kj_key_cmp(kj_entry_key(ea), kj_entry_klen(ea), kj_entry_key(eb),
                       kj_entry_klen(eb)) == 0 &&
            kj_entry_vlen(ea) == kj_entry_vlen(eb) && !kj_entry_tomb(ea);
  return same && !ea && !kj_iter_next(&ib);
}

/* Bulk load: appends in key order build the same map as puts, balanced;
 * out-of-order appends and appends to a non-empty map still give the right
 * map (they become puts). */
static void test_bulk(void) {
  kj_map *a = kj_map_new(), *b = kj_map_new();
  char k[16];
  int all_ok = 1;
  const int n = 100000;
  for (int i = 0; i < n; i++) {
    snprintf(k, sizeof k, "k%08d", i);
    all_ok &= kj_map_append(a, k, 9, k, (size_t)(i % 7)) == KJ_OK;
    all_ok &= kj_map_put(b, k, 9, k, (size_t)(i % 7), 0) == KJ_OK;
  }
  ok(all_ok, "bulk: %d appends and puts", n);
  is(kj_map_check(a), -1, "bulk: an unsealed map does not check out");
  is(kj_map_seal(a), KJ_OK, "bulk: seal");
  int h = kj_map_check(a);
  ok(h > 0 && h <= 17, "bulk: sealed tree is balanced (height %d, n %d)", h, n);
  ok(kj_map_count(a) == kj_map_count(b) && kj_map_bytes(a) == kj_map_bytes(b),
     "bulk: same count and bytes as puts");
  ok(same_entries(a, b), "bulk: same entries in order");
  /* Later puts and deletes on the sealed tree keep it valid. */
  kj_map_put(a, "k00000005", 9, "x", 1, 0);
  kj_map_del(a, "k00000006", 9);
  kj_map_put(a, "a", 1, "y", 1, 0);
  ok(kj_map_check(a) > 0 && kj_map_count(a) == (uint64_t)n,
     "bulk: put/del after seal keep the tree valid");
  kj_map_free(a);
  kj_map_free(b);

  /* Out of order, duplicates, a non-empty map: still the right map. */
  kj_map *c = kj_map_new();
  kj_map_append(c, "b", 1, "1", 1);
  kj_map_append(c, "d", 1, "2", 1);
  kj_map_append(c, "c", 1, "3", 1); /* below the last: a put */
  kj_map_append(c, "d", 1, "4", 1); /* a duplicate: a put, replaces */
  kj_map_append(c, "e", 1, "5", 1); /* the map is no longer empty: a put */
  is(kj_map_seal(c), KJ_OK, "bulk: seal after mixed appends");
  const kj_entry *d = kj_map_get(c, "d", 1);
  ok(kj_map_check(c) > 0 && kj_map_count(c) == 4 && d &&
         kj_entry_vlen(d) == 1 && !memcmp(kj_entry_val(d), "4", 1),
     "bulk: out-of-order and duplicate appends give the right map");
  kj_map_free(c);

  /* Freeing an unsealed map frees its pending nodes (ASan checks). */
  kj_map *u = kj_map_new();
  kj_map_append(u, "x", 1, "1", 1);
  kj_map_append(u, "y", 1, "2", 1);
  kj_map_clear(u);
  ok(kj_map_count(u) == 0 && kj_map_check(u) == 0,
     "bulk: clear drops pending nodes");
  kj_map_append(u, "z", 1, "3", 1);
  kj_map_free(u);
}

/* Staged replay: random puts and deletes (with repeats of keys), staged and
 * applied in batches over a map that already holds rows, give the same map
 * as applying them one by one. */
static void test_staged(uint64_t seed) {
  uint64_t x = seed | 1;
  kj_map *a = kj_map_new(), *b = kj_map_new();
  char k[24];
  int all_ok = 1;
  /* Rows already there (as from a snapshot). */
  for (int i = 0; i < 3000; i += 3) {
    snprintf(k, sizeof k, "key%05d", i);
    all_ok &= kj_map_append(a, k, strlen(k), k, 3) == KJ_OK;
    all_ok &= kj_map_put(b, k, strlen(k), k, 3, 0) == KJ_OK;
  }
  kj_map_seal(a);
  for (int round = 0; round < 4; round++) {
    for (int i = 0; i < 20000; i++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      /* Keys of several lengths sharing long prefixes. */
      int id = (int)(x % 5000), del = (x >> 20) % 4 == 0;
      int len = snprintf(k, sizeof k,
                         (x >> 30) % 2 ? "key%05d" : "key%05d-long-x", id);
      size_t vl = (size_t)((x >> 40) % 9);
      all_ok &= kj_map_stage(a, k, (size_t)len, k, vl, del) == KJ_OK;
      if (del)
        kj_map_del(b, k, (size_t)len);
      else
        all_ok &= kj_map_put(b, k, (size_t)len, k, vl, 0) == KJ_OK;
    }
    is(kj_map_check(a), -1, "staged %d: pending ops make the map unchecked",
       round);
    all_ok &= kj_map_apply_staged(a) == KJ_OK;
  }
  ok(all_ok, "staged: every stage and apply succeeded");
  int h = kj_map_check(a);
  ok(h > 0, "staged: the rebuilt tree checks out (height %d)", h);
  ok(kj_map_count(a) == kj_map_count(b) && kj_map_bytes(a) == kj_map_bytes(b),
     "staged: same count and bytes as one-by-one (%llu rows)",
     (unsigned long long)kj_map_count(b));
  ok(same_entries(a, b), "staged: same entries and values, no tombstones left");
  /* A put after staging applies the staged ops first. */
  kj_map_stage(a, "zz", 2, "1", 1, 0);
  kj_map_stage(a, "zz", 2, NULL, 0, 1);
  kj_map_put(a, "zy", 2, "2", 1, 0);
  ok(kj_map_check(a) > 0 && !kj_map_get(a, "zz", 2) && kj_map_get(a, "zy", 2),
     "staged: put applies pending ops first, in order");
  /* Freeing with staged ops pending frees them (ASan checks). */
  kj_map_stage(a, "zx", 2, "3", 1, 0);
  kj_map_free(a);
  kj_map_free(b);
}

/* The hash index of exact lookups: built when a map reaches 256 entries,
 * grown through several doublings, kept right through replacements and
 * deletions (backward shifts), and rebuilt by bulk loads and staged
 * replays; kj_map_check() verifies it against the tree after each step. */
static void test_index(uint64_t seed) {
  uint64_t x = seed | 1;
  kj_map *m = kj_map_new();
  char k[32];
  int all_ok = 1, checks_ok = 1, gets_ok = 1;
  for (int i = 0; i < 255; i++) {
    int n = snprintf(k, sizeof k, "idx%06d", i);
    all_ok &= kj_map_put(m, k, (size_t)n, k, 4, 0) == KJ_OK;
  }
  ok(!kj_map_indexed(m) && kj_map_check(m) > 0,
     "index: a map of 255 entries walks its tree");
  all_ok &= kj_map_put(m, "idx000255", 9, "v", 1, 0) == KJ_OK;
  ok(kj_map_indexed(m) && kj_map_check(m) > 0,
     "index: the 256th entry builds it, and it checks out");
  /* Random puts, replacements and deletions over 20,000 keys: the table
   * doubles several times and deletions shift runs back. */
  static unsigned char present[20000];
  memset(present, 0, sizeof present);
  for (int i = 0; i < 256; i++)
    present[i] = 1;
  for (int op = 0; op < 60000; op++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    int id = (int)(x % 20000), n = snprintf(k, sizeof k, "idx%06d", id);
    if ((x >> 32) % 3) {
      all_ok &=
          kj_map_put(m, k, (size_t)n, k, (size_t)((x >> 40) % 7), 0) == KJ_OK;
      present[id] = 1;
    } else {
      all_ok &= kj_map_del(m, k, (size_t)n) == present[id];
      present[id] = 0;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    id = (int)(x % 20000);
    n = snprintf(k, sizeof k, "idx%06d", id);
    const kj_entry *e = kj_map_get(m, k, (size_t)n);
    gets_ok &= (e != NULL) == present[id] &&
               (!e || (kj_entry_klen(e) == (size_t)n &&
                       !memcmp(kj_entry_key(e), k, (size_t)n)));
    if (op % 5000 == 0)
      checks_ok &= kj_map_check(m) > 0;
  }
  ok(all_ok, "index: puts succeed and deletions find what is present");
  ok(gets_ok, "index: every lookup agrees with the reference");
  ok(checks_ok && kj_map_indexed(m) && kj_map_check(m) > 0,
     "index: it checks out through growth, replacements and deletions "
     "(%llu rows)",
     (unsigned long long)kj_map_count(m));
  /* Delete all but a few: the index stays right on a sparse table. */
  for (int id = 0; id < 20000; id++) {
    if (id % 1000 == 0 || !present[id])
      continue;
    int n = snprintf(k, sizeof k, "idx%06d", id);
    all_ok &= kj_map_del(m, k, (size_t)n) == 1;
    present[id] = 0;
  }
  int found = 1;
  for (int id = 0; id < 20000; id++) {
    int n = snprintf(k, sizeof k, "idx%06d", id);
    found &= (kj_map_get(m, k, (size_t)n) != NULL) == present[id];
  }
  ok(all_ok && found && kj_map_check(m) >= 0,
     "index: deleting down to a few rows keeps lookups right");
  /* A staged replay rebuilds it from the new tree. */
  for (int id = 0; id < 3000; id++) {
    int n = snprintf(k, sizeof k, "st%05d", id);
    all_ok &= kj_map_stage(m, k, (size_t)n, k, 2, 0) == KJ_OK;
  }
  all_ok &= kj_map_apply_staged(m) == KJ_OK;
  ok(!kj_map_indexed(m) && kj_map_check(m) > 0 && kj_map_get(m, "st02999", 7),
     "index: a staged replay leaves the rebuilt tree unindexed (found by "
     "walking it)");
  kj_map_index(m);
  ok(all_ok && kj_map_indexed(m) && kj_map_check(m) > 0 &&
         kj_map_get(m, "st02999", 7) && !kj_map_get(m, "st03000", 7),
     "index: kj_map_index then indexes it");
  kj_map_index(m);
  ok(kj_map_indexed(m) && kj_map_check(m) > 0,
     "index: a second kj_map_index keeps it");
  /* Every size around the doublings, built in one go: each checks out. */
  int sizes_ok = 1;
  for (int n0 = 250; n0 < 3200; n0 += 37) {
    kj_map *q = kj_map_new();
    for (int id = 0; id < n0; id++) {
      int n = snprintf(k, sizeof k, "sz%05d", id);
      kj_map_stage(q, k, (size_t)n, k, 1, 0);
    }
    sizes_ok &= kj_map_apply_staged(q) == KJ_OK;
    kj_map_index(q);
    sizes_ok &= kj_map_indexed(q) == (n0 >= 256) && kj_map_check(q) > 0;
    for (int id = 0; id < n0; id += 7) {
      int n = snprintf(k, sizeof k, "sz%05d", id);
      sizes_ok &= kj_map_get(q, k, (size_t)n) != NULL;
    }
    kj_map_free(q);
  }
  ok(sizes_ok, "index: built in one go at sizes 250..3200, it checks out");
  kj_map_clear(m);
  ok(!kj_map_indexed(m) && kj_map_check(m) == 0 && !kj_map_get(m, "st00001", 7),
     "index: clear drops it");
  /* A bulk load indexes the sealed tree. */
  for (int id = 0; id < 1000; id++) {
    int n = snprintf(k, sizeof k, "bk%05d", id);
    all_ok &= kj_map_append(m, k, (size_t)n, k, 1) == KJ_OK;
  }
  all_ok &= kj_map_seal(m) == KJ_OK;
  ok(all_ok && kj_map_indexed(m) && kj_map_check(m) > 0 &&
         kj_map_get(m, "bk00500", 7),
     "index: a bulk load indexes the sealed tree");
  /* The empty key is a key like any other. */
  all_ok &= kj_map_put(m, NULL, 0, "e", 1, 0) == KJ_OK;
  ok(all_ok && kj_map_get(m, NULL, 0) && kj_map_del(m, NULL, 0) == 1 &&
         !kj_map_get(m, "", 0) && kj_map_check(m) > 0,
     "index: the empty key is found and deleted");
  kj_map_free(m);
}

int main(int argc, char **argv) {
  uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 0x6b6a7461626c65ULL;
  if (seed == 0)
    seed = 1; /* xorshift must not start at zero */
  printf("# seed %llu\n", (unsigned long long)seed);
  test_key_cmp();
  test_empty_and_basics();
  test_oversize();
  test_pointer_stability();
  test_random(seed);
  test_load(0, seed);
  test_load(1, seed);
  test_load(2, seed);
  test_bulk();
  test_staged(seed);
  test_index(seed);
  return tap_done();
}
