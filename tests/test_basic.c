/*
 * tests/test_basic.c - round trips, ordered scans, transactions, reopen,
 * memory-only and passphrase stores, sync modes, statistics, and a
 * randomized comparison against a reference model.
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

/* ---- small helpers ------------------------------------------------------- */

static void close_ok(kj_store *s, const char *what) {
  is(kj_store_close(s), KJ_OK, "%s: kj_store_close", what);
}

/* close_ok(s, closing), then the store in dir opened again (checked as
 * "<opening>: kj_store_open"). */
static kj_store *reopen_ok(kj_store *s, const char *dir, const kj_options *o,
                           const char *closing, const char *opening) {
  close_ok(s, closing);
  return tu_store_open_ok(dir, o, opening);
}

/* 1 if get returns KJ_NOTFOUND. */
static int get_absent(kj_store *s, kj_txn *t, unsigned table, const void *k,
                      size_t kl) {
  void *got = NULL;
  size_t gl = 0;
  int rc = kj_get(s, t, table, k, kl, &got, &gl);
  if (rc == KJ_OK)
    kj_free(got);
  if (rc != KJ_NOTFOUND)
    printf("#   get (want NOTFOUND): rc=%d\n", rc);
  return rc == KJ_NOTFOUND;
}

static int put_str(kj_store *s, kj_txn *t, unsigned table, const char *k,
                   const char *v) {
  return kj_put(s, t, table, k, strlen(k), v, strlen(v));
}

static int del_str(kj_store *s, kj_txn *t, unsigned table, const char *k) {
  return kj_delete(s, t, table, k, strlen(k));
}

/* Reads "outside" an open write transaction come from another thread: per
 * store.h a txn == NULL call from the thread that holds a transaction
 * waits for that transaction. The other thread must not wait (reads run
 * concurrently with an open write transaction); main() sets an alarm so a
 * deadlock fails instead of hanging. */
typedef struct outside {
  kj_store *s;
  int kind; /* 0: get equals (v, vl); 1: get is absent; 2: dump tables */
  unsigned table;
  const void *k, *v;
  size_t kl, vl;
  const unsigned *tables;
  size_t ntables;
  char *dump;
  int result;
} outside;

static void *outside_main(void *p) {
  outside *o = p;
  if (o->kind == 0)
    o->result = tu_get_eq(o->s, NULL, o->table, o->k, o->kl, o->v, o->vl);
  else if (o->kind == 1)
    o->result = get_absent(o->s, NULL, o->table, o->k, o->kl);
  else
    o->result =
        tu_dump_tables(o->s, NULL, o->tables, o->ntables, &o->dump) == KJ_OK;
  return NULL;
}

static void outside_run(outside *o) {
  pthread_t th;
  if (pthread_create(&th, NULL, outside_main, o) != 0) {
    o->result = 0;
    return;
  }
  pthread_join(th, NULL);
}

static int outside_get_eq(kj_store *s, unsigned table, const void *k, size_t kl,
                          const void *v, size_t vl) {
  outside o = {s, 0, table, k, v, kl, vl, NULL, 0, NULL, 0};
  outside_run(&o);
  return o.result;
}

static int outside_get_str_eq(kj_store *s, unsigned table, const char *k,
                              const char *v) {
  return outside_get_eq(s, table, k, strlen(k), v, strlen(v));
}

static int outside_get_absent(kj_store *s, unsigned table, const void *k,
                              size_t kl) {
  outside o = {s, 1, table, k, NULL, kl, 0, NULL, 0, NULL, 0};
  outside_run(&o);
  return o.result;
}

/* malloc'd dump of tables read by another thread, or NULL. */
static char *outside_dump(kj_store *s, const unsigned *tables, size_t n) {
  outside o = {s, 2, 0, NULL, NULL, 0, 0, tables, n, NULL, 0};
  outside_run(&o);
  if (!o.result) {
    free(o.dump);
    return NULL;
  }
  return o.dump;
}

static int key_cmp(const void *a, size_t al, const void *b, size_t bl) {
  size_t n = al < bl ? al : bl;
  int c = n ? memcmp(a, b, n) : 0;
  if (c != 0)
    return c;
  return al < bl ? -1 : al > bl ? 1 : 0;
}

/* Compare two dumps; print the first difference on mismatch. */
static int dumps_equal(const char *got, const char *want) {
  if (got == NULL || want == NULL)
    return 0;
  if (strcmp(got, want) == 0)
    return 1;
  size_t i = 0;
  while (got[i] && got[i] == want[i])
    i++;
  size_t from = i > 40 ? i - 40 : 0;
  printf("#   dumps differ at byte %zu\n#   got:  %.80s\n#   want: %.80s\n", i,
         got + from, want + from);
  return 0;
}

static int stats_of(kj_store *s, kj_stats *st) {
  kj_stats init = KJ_STATS_INIT;
  *st = init;
  return kj_store_stats(s, st);
}

/* Checks that tables tabs[0..2] of s, read in t, dump as want: the scan
 * ("<scan_what>") and its rows ("<rows_what>"). */
static void dump_is(kj_store *s, kj_txn *t, const unsigned *tabs,
                    const char *want, const char *scan_what,
                    const char *rows_what) {
  char *got = NULL;
  is(tu_dump_tables(s, t, tabs, 3, &got), KJ_OK, "%s", scan_what);
  ok(dumps_equal(got, want), "%s", rows_what);
  free(got);
}

/* Close s and reopen the store in dir (reopen_ok(what[0], what[1])); if it
 * opened, check that it dumps as want (dump_is(what[2], what[3])) and close
 * it again (close_ok(what[1])). */
static void reopen_dump_is(kj_store *s, const char *dir, const kj_options *o,
                           const unsigned *tabs, const char *want,
                           const char *const what[4]) {
  s = reopen_ok(s, dir, o, what[0], what[1]);
  if (s != NULL) {
    dump_is(s, NULL, tabs, want, what[2], what[3]);
    close_ok(s, what[1]);
  }
}

/* ---- round trips ----------------------------------------------------------
 */

static void test_roundtrip(void) {
  char *dir = tu_mkdtemp();
  ok(dir != NULL, "roundtrip: temp dir");
  if (dir == NULL)
    return;
  kj_options o;
  tu_options(&o);
  kj_store *s = tu_store_open_ok(dir, &o, "roundtrip");
  if (s == NULL) {
    tu_rmrf(dir);
    free(dir);
    return;
  }

  /* simple put / get / delete */
  is(put_str(s, NULL, 1, "alpha", "one"), KJ_OK, "put alpha");
  ok(tu_get_str_eq(s, NULL, 1, "alpha", "one"), "get alpha");
  ok(get_absent(s, NULL, 1, "alph", 4), "a prefix of a key is absent");
  ok(get_absent(s, NULL, 1, "alphab", 6), "a longer key is absent");
  ok(get_absent(s, NULL, 2, "alpha", 5), "same key in another table absent");
  is(del_str(s, NULL, 1, "alpha"), KJ_OK, "delete alpha");
  ok(get_absent(s, NULL, 1, "alpha", 5), "alpha gone after delete");
  is(del_str(s, NULL, 1, "alpha"), KJ_OK, "delete of absent key succeeds");
  is(del_str(s, NULL, 1, "never-there"), KJ_OK,
     "delete of never-written key succeeds");
  ok(get_absent(s, NULL, 1, "never-there", 11), "still absent");

  /* empty value: KJ_OK, *val NULL, *vlen 0 */
  is(kj_put(s, NULL, 1, "empty", 5, "x", 0), KJ_OK, "put empty value");
  {
    void *v = (void *)&o; /* non-NULL sentinel */
    size_t vl = 99;
    is(kj_get(s, NULL, 1, "empty", 5, &v, &vl), KJ_OK, "get empty value");
    ok(v == NULL, "empty value: *val is NULL");
    is(vl, 0, "empty value: *vlen is 0");
    if (v != (void *)&o)
      kj_free(v);
  }

  /* binary keys with NUL bytes; keys differing only after a NUL */
  static const unsigned char k0[] = {0x00};
  static const unsigned char k00[] = {0x00, 0x00};
  static const unsigned char kb1[] = {'a', 0x00, 'b'};
  static const unsigned char kb2[] = {'a', 0x00, 'c'};
  static const unsigned char vbin[] = {0x00, 0xff, 0x00, 0x01};
  is(kj_put(s, NULL, 3, k0, 1, "zero", 4), KJ_OK, "put key \\0");
  is(kj_put(s, NULL, 3, k00, 2, "zerozero", 8), KJ_OK, "put key \\0\\0");
  is(kj_put(s, NULL, 3, kb1, 3, vbin, sizeof vbin), KJ_OK, "put a\\0b");
  is(kj_put(s, NULL, 3, kb2, 3, "c", 1), KJ_OK, "put a\\0c");
  ok(tu_get_eq(s, NULL, 3, k0, 1, "zero", 4), "get \\0");
  ok(tu_get_eq(s, NULL, 3, k00, 2, "zerozero", 8), "get \\0\\0");
  ok(tu_get_eq(s, NULL, 3, kb1, 3, vbin, sizeof vbin),
     "get a\\0b (binary value)");
  ok(tu_get_eq(s, NULL, 3, kb2, 3, "c", 1), "get a\\0c");
  ok(get_absent(s, NULL, 3, "a", 2), "\"a\\0\" (C string + NUL) absent");

  /* KJ_MAX_KEY-length key */
  unsigned char *bigkey = malloc(KJ_MAX_KEY);
  tu_rng rng;
  tu_rng_seed(&rng, 42);
  tu_rng_fill(&rng, bigkey, KJ_MAX_KEY);
  is(kj_put(s, NULL, 4, bigkey, KJ_MAX_KEY, "max", 3), KJ_OK,
     "put KJ_MAX_KEY-byte key");
  ok(tu_get_eq(s, NULL, 4, bigkey, KJ_MAX_KEY, "max", 3), "get KJ_MAX_KEY key");
  ok(get_absent(s, NULL, 4, bigkey, KJ_MAX_KEY - 1),
     "KJ_MAX_KEY-1 prefix absent");
  is(kj_max_key(), KJ_MAX_KEY, "kj_max_key()");
  is(kj_max_value(), KJ_MAX_VALUE, "kj_max_value()");

  /* 1 MiB value (larger than a segment) and a KJ_MAX_VALUE value */
  size_t mib = 1024 * 1024;
  unsigned char *big = malloc(KJ_MAX_VALUE);
  tu_rng_fill(&rng, big, KJ_MAX_VALUE);
  is(kj_put(s, NULL, 5, "mib", 3, big, mib), KJ_OK, "put 1 MiB value");
  ok(tu_get_eq(s, NULL, 5, "mib", 3, big, mib), "get 1 MiB value");
  is(kj_put(s, NULL, 5, "max", 3, big + 1, KJ_MAX_VALUE - 1), KJ_OK,
     "put KJ_MAX_VALUE-1 byte value");
  is(kj_put(s, NULL, 5, "maxv", 4, big, KJ_MAX_VALUE), KJ_OK,
     "put KJ_MAX_VALUE byte value");
  ok(tu_get_eq(s, NULL, 5, "maxv", 4, big, KJ_MAX_VALUE), "get KJ_MAX_VALUE");

  /* overwrite: longer, shorter, empty, back */
  is(put_str(s, NULL, 1, "ow", "first"), KJ_OK, "put ow");
  is(put_str(s, NULL, 1, "ow", "second-and-longer"), KJ_OK, "overwrite ow");
  ok(tu_get_str_eq(s, NULL, 1, "ow", "second-and-longer"), "overwritten value");
  is(put_str(s, NULL, 1, "ow", "s"), KJ_OK, "overwrite ow shorter");
  ok(tu_get_str_eq(s, NULL, 1, "ow", "s"), "shorter overwrite");
  is(put_str(s, NULL, 1, "ow", ""), KJ_OK, "overwrite ow with empty");
  ok(tu_get_str_eq(s, NULL, 1, "ow", ""), "empty overwrite");
  is(put_str(s, NULL, 1, "ow", "final"), KJ_OK, "overwrite ow again");

  /* table ids at the ends of the range are independent */
  is(put_str(s, NULL, KJ_TABLE_MIN, "edge", "min"), KJ_OK, "put table 1");
  is(put_str(s, NULL, KJ_TABLE_MAX, "edge", "max"), KJ_OK, "put table 255");
  ok(tu_get_str_eq(s, NULL, KJ_TABLE_MIN, "edge", "min"), "get table 1");
  ok(tu_get_str_eq(s, NULL, KJ_TABLE_MAX, "edge", "max"), "get table 255");

  /* everything survives a reopen */
  close_ok(s, "roundtrip");
  s = tu_store_open_ok(dir, &o, "roundtrip reopen");
  if (s != NULL) {
    ok(get_absent(s, NULL, 1, "alpha", 5), "reopen: deleted key absent");
    ok(tu_get_eq(s, NULL, 1, "empty", 5, "", 0), "reopen: empty value");
    ok(tu_get_eq(s, NULL, 3, k0, 1, "zero", 4), "reopen: \\0");
    ok(tu_get_eq(s, NULL, 3, k00, 2, "zerozero", 8), "reopen: \\0\\0");
    ok(tu_get_eq(s, NULL, 3, kb1, 3, vbin, sizeof vbin), "reopen: a\\0b");
    ok(tu_get_eq(s, NULL, 4, bigkey, KJ_MAX_KEY, "max", 3),
       "reopen: KJ_MAX_KEY key");
    ok(tu_get_eq(s, NULL, 5, "mib", 3, big, mib), "reopen: 1 MiB value");
    ok(tu_get_eq(s, NULL, 5, "max", 3, big + 1, KJ_MAX_VALUE - 1),
       "reopen: KJ_MAX_VALUE-1 value");
    ok(tu_get_eq(s, NULL, 5, "maxv", 4, big, KJ_MAX_VALUE),
       "reopen: KJ_MAX_VALUE value");
    ok(tu_get_str_eq(s, NULL, 1, "ow", "final"), "reopen: last overwrite wins");
    ok(tu_get_str_eq(s, NULL, KJ_TABLE_MAX, "edge", "max"),
       "reopen: table 255");
    close_ok(s, "roundtrip reopen");
  }
  free(big);
  free(bigkey);
  tu_rmrf(dir);
  free(dir);
}

/* ---- ordered scans ---------------------------------------------------- */

typedef struct skey {
  const char *k;
  size_t n;
} skey;

#define SK(lit)                                                                \
  { lit, sizeof(lit) - 1 }

/* Stored keys (inserted in this, unsorted, order). */
static const skey scan_keys[] = {
    SK("b"),   SK("abd"),      SK("a"),     SK("\xff"),  SK("ab"),
    SK("ba"),  SK("b\0\0"),    SK("\0"),    SK("ac"),    SK("abc"),
    SK("b\0"), SK("\xff\xff"), SK("b\x01"), SK("a\xff"), SK("\0a"),
};
#define NSCAN_KEYS (sizeof scan_keys / sizeof scan_keys[0])

/* Probe keys for bounds: stored ones plus absent ones in between. */
static const skey probe_keys[] = {
    SK("b"),     SK("abd"),          SK("a"),
    SK("\xff"),  SK("ab"),           SK("ba"),
    SK("b\0\0"), SK("\0"),           SK("ac"),
    SK("abc"),   SK("b\0"),          SK("\xff\xff"),
    SK("b\x01"), SK("a\xff"),        SK("\0a"),
    SK("\0\0"),  SK("aa"),           SK("abb"),
    SK("abcd"),  SK("b\0\0\0"),      SK("bb"),
    SK("c"),     SK("\xff\xff\xff"), SK("a\0"),
    SK("\x01"),
};
#define NPROBE_KEYS (sizeof probe_keys / sizeof probe_keys[0])

static int skey_qcmp(const void *a, const void *b) {
  const skey *x = a, *y = b;
  return key_cmp(x->k, x->n, y->k, y->n);
}

/* Collects visited keys as a dump (values are "v:" + key). */
typedef struct collect {
  tu_buf b;
  int visited;
  int stop_after; /* 0: never stop */
  int stop_value;
  int order_ok;
  unsigned char last[64];
  size_t lastn;
  int have_last;
} collect;

static void collect_init(collect *c, int stop_after, int stop_value) {
  memset(c, 0, sizeof *c);
  tu_buf_init(&c->b);
  c->stop_after = stop_after;
  c->stop_value = stop_value;
  c->order_ok = 1;
}

static int collect_cb(void *arg, const void *key, size_t klen, const void *val,
                      size_t vlen) {
  collect *c = arg;
  if (c->have_last && key_cmp(c->last, c->lastn, key, klen) >= 0)
    c->order_ok = 0;
  if (klen <= sizeof c->last) {
    memcpy(c->last, key, klen);
    c->lastn = klen;
    c->have_last = 1;
  }
  tu_dump_row(&c->b, key, klen, val, vlen);
  c->visited++;
  if (c->stop_after && c->visited >= c->stop_after)
    return c->stop_value;
  return 0;
}

static void expect_row(tu_buf *b, const skey *k) {
  char v[80];
  int n = snprintf(v, sizeof v, "v:");
  memcpy(v + n, k->k, k->n);
  tu_dump_row(b, k->k, k->n, v, (size_t)n + k->n);
}

static void put_scan_keys(kj_store *s, kj_txn *t, unsigned table) {
  int bad = 0;
  for (size_t i = 0; i < NSCAN_KEYS; i++) {
    char v[80];
    int n = snprintf(v, sizeof v, "v:");
    memcpy(v + n, scan_keys[i].k, scan_keys[i].n);
    if (kj_put(s, t, table, scan_keys[i].k, scan_keys[i].n, v,
               (size_t)n + scan_keys[i].n) != KJ_OK)
      bad++;
  }
  is(bad, 0, "scan keys stored in table %u", table);
}

static int has_prefix(const skey *k, const skey *p) {
  return k->n >= p->n && memcmp(k->k, p->k, p->n) == 0;
}

/* 1 if a scan collected exactly the rows of want; a failed scan counts in
 * *rc_bad, one out of order in *order_bad. */
static int scan_matches(int rc, const collect *c, const tu_buf *want,
                        int *rc_bad, int *order_bad) {
  if (rc != KJ_OK)
    (*rc_bad)++;
  if (!c->order_ok)
    (*order_bad)++;
  return strcmp(c->b.p ? c->b.p : "", want->p ? want->p : "") == 0;
}

/* Check every prefix and every (start, end) pair of probe keys. */
static void check_all_scans(kj_store *s, kj_txn *t, unsigned table,
                            const char *what) {
  skey sorted[NSCAN_KEYS];
  memcpy(sorted, scan_keys, sizeof sorted);
  qsort(sorted, NSCAN_KEYS, sizeof sorted[0], skey_qcmp);

  int prefix_bad = 0, range_bad = 0, order_bad = 0, rc_bad = 0;

  /* full scans, both spellings */
  {
    tu_buf want;
    tu_buf_init(&want);
    for (size_t i = 0; i < NSCAN_KEYS; i++)
      expect_row(&want, &sorted[i]);
    collect c;
    collect_init(&c, 0, 0);
    is(kj_scan_prefix(s, t, table, NULL, 0, collect_cb, &c), KJ_OK,
       "%s: full prefix scan", what);
    ok(dumps_equal(c.b.p, want.p),
       "%s: full scan order (memcmp, shorter "
       "first)",
       what);
    tu_buf_free(&c.b);
    collect_init(&c, 0, 0);
    is(kj_scan_range(s, t, table, NULL, 0, NULL, 0, collect_cb, &c), KJ_OK,
       "%s: full range scan", what);
    ok(dumps_equal(c.b.p, want.p), "%s: full range scan rows", what);
    tu_buf_free(&c.b);
    collect_init(&c, 0, 0);
    is(kj_scan_range(s, t, table, "zz", 0, NULL, 0, collect_cb, &c), KJ_OK,
       "%s: range scan with start_len 0", what);
    ok(dumps_equal(c.b.p, want.p), "%s: start_len 0 means from the first",
       what);
    tu_buf_free(&c.b);
    collect_init(&c, 0, 0);
    is(kj_scan_prefix(s, t, table, "zz", 0, collect_cb, &c), KJ_OK,
       "%s: prefix scan with plen 0", what);
    ok(dumps_equal(c.b.p, want.p), "%s: plen 0 means every row", what);
    tu_buf_free(&c.b);
    tu_buf_free(&want);
  }

  for (size_t p = 0; p < NPROBE_KEYS; p++) {
    tu_buf want;
    tu_buf_init(&want);
    for (size_t i = 0; i < NSCAN_KEYS; i++)
      if (has_prefix(&sorted[i], &probe_keys[p]))
        expect_row(&want, &sorted[i]);
    collect c;
    collect_init(&c, 0, 0);
    int rc = kj_scan_prefix(s, t, table, probe_keys[p].k, probe_keys[p].n,
                            collect_cb, &c);
    if (!scan_matches(rc, &c, &want, &rc_bad, &order_bad)) {
      prefix_bad++;
      printf("#   prefix #%zu: got %d rows\n", p, c.visited);
    }
    tu_buf_free(&c.b);
    tu_buf_free(&want);
  }

  for (size_t a = 0; a <= NPROBE_KEYS; a++) {
    for (size_t e = 0; e <= NPROBE_KEYS; e++) {
      /* index NPROBE_KEYS stands for NULL (unbounded) */
      const skey *st = a < NPROBE_KEYS ? &probe_keys[a] : NULL;
      const skey *en = e < NPROBE_KEYS ? &probe_keys[e] : NULL;
      tu_buf want;
      tu_buf_init(&want);
      for (size_t i = 0; i < NSCAN_KEYS; i++) {
        if (st && key_cmp(sorted[i].k, sorted[i].n, st->k, st->n) < 0)
          continue;
        if (en && key_cmp(sorted[i].k, sorted[i].n, en->k, en->n) >= 0)
          continue;
        expect_row(&want, &sorted[i]);
      }
      collect c;
      collect_init(&c, 0, 0);
      int rc = kj_scan_range(s, t, table, st ? st->k : NULL, st ? st->n : 0,
                             en ? en->k : NULL, en ? en->n : 0, collect_cb, &c);
      if (!scan_matches(rc, &c, &want, &rc_bad, &order_bad)) {
        range_bad++;
        if (range_bad <= 5)
          printf("#   range [%zu, %zu): got %d rows\n", a, e, c.visited);
      }
      tu_buf_free(&c.b);
      tu_buf_free(&want);
    }
  }
  is(rc_bad, 0, "%s: every scan returned KJ_OK", what);
  is(order_bad, 0, "%s: every scan strictly ascending", what);
  is(prefix_bad, 0, "%s: %zu prefix scans match", what, NPROBE_KEYS);
  is(range_bad, 0, "%s: %zu range scans match (start incl., end excl.)", what,
     (NPROBE_KEYS + 1) * (NPROBE_KEYS + 1));
}

static void test_scans(const char *dir, const kj_options *o, kj_store *s) {
  put_scan_keys(s, NULL, 9);
  is(put_str(s, NULL, 8, "b", "other table"), KJ_OK, "neighbour table 8");
  is(put_str(s, NULL, 10, "a", "other table"), KJ_OK, "neighbour table 10");
  check_all_scans(s, NULL, 9, "committed");

  /* specific expectations spelled out, and early stops, which return the
   * callback's value */
  static const struct {
    int range; /* kj_scan_range [a, b), else kj_scan_prefix a */
    unsigned table;
    skey a, b;
    int stop_after, stop_value; /* collect_init() */
    int want_rc, want_visited;
    const char *what_rc, *what_visited; /* what_visited NULL: not checked */
  } cases[] = {
      {1, 9, SK("abc"), SK("abd"), 0, 0, KJ_OK, 1, "range [abc, abd)",
       "[abc, abd) visits only abc"},
      {1, 9, SK("abc"), SK("abc"), 0, 0, KJ_OK, 0, "range [abc, abc)",
       "[abc, abc) is empty"},
      {1, 9, SK("b"), SK("a"), 0, 0, KJ_OK, 0, "range with start > end",
       "start > end visits nothing"},
      {1, 9, SK("b"), SK("b\0"), 0, 0, KJ_OK, 1, "range [b, b\\0)",
       "[b, b\\0) visits only b (shorter key first)"},
      {0,
       9,
       SK("b\0"),
       {NULL, 0},
       0,
       0,
       KJ_OK,
       2,
       "prefix b\\0",
       "prefix b\\0 visits b\\0 and b\\0\\0"},
      {0,
       9,
       SK("zz"),
       {NULL, 0},
       0,
       0,
       KJ_OK,
       0,
       "prefix with no match",
       "no rows for absent prefix"},
      {0,
       77,
       {NULL, 0},
       {NULL, 0},
       0,
       0,
       KJ_OK,
       0,
       "scan of an empty table",
       "empty table has no rows"},
      {0,
       9,
       {NULL, 0},
       {NULL, 0},
       3,
       42,
       42,
       3,
       "prefix scan stopped by callback returns 42",
       "no row visited after the stop"},
      {1,
       9,
       SK("ab"),
       {NULL, 0},
       1,
       7,
       7,
       1,
       "range scan stopped by callback returns 7",
       "range scan stopped after one row"},
      {0,
       9,
       SK("b"),
       {NULL, 0},
       2,
       1,
       1,
       2,
       "stop value 1 (== KJ_NOTFOUND numerically) returned as is",
       "stopped after two rows"},
      {0,
       9,
       {NULL, 0},
       {NULL, 0},
       (int)NSCAN_KEYS,
       5,
       5,
       0,
       "stop on the very last row still returns the value",
       NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    collect c;
    collect_init(&c, cases[i].stop_after, cases[i].stop_value);
    const skey *a = &cases[i].a, *b = &cases[i].b;
    int rc = cases[i].range ? kj_scan_range(s, NULL, cases[i].table, a->k, a->n,
                                            b->k, b->n, collect_cb, &c)
                            : kj_scan_prefix(s, NULL, cases[i].table, a->k,
                                             a->n, collect_cb, &c);
    is(rc, cases[i].want_rc, "%s", cases[i].what_rc);
    if (cases[i].what_visited)
      is(c.visited, cases[i].want_visited, "%s", cases[i].what_visited);
    tu_buf_free(&c.b);
  }

  /* same scans inside a write transaction (overlay over an empty table) */
  {
    kj_txn *t = NULL;
    is(kj_txn_begin(s, 0, &t), KJ_OK, "begin txn for overlay scans");
    if (t != NULL) {
      put_scan_keys(s, t, 11);
      check_all_scans(s, t, 11, "txn-only rows");
      check_all_scans(s, t, 9, "committed rows read in a txn");
      collect c;
      collect_init(&c, 2, 9);
      is(kj_scan_prefix(s, t, 11, NULL, 0, collect_cb, &c), 9,
         "txn scan stop value");
      tu_buf_free(&c.b);
      kj_txn_rollback(t);
    }
  }
  /* after a reopen */
  s = reopen_ok(s, dir, o, "scans", "scans reopen");
  if (s != NULL) {
    check_all_scans(s, NULL, 9, "after reopen");
    close_ok(s, "scans reopen");
  }
}

/* ---- transactions ---------------------------------------------------------
 */

typedef struct stats_job {
  kj_store *s;
  pthread_t th;
  kj_stats st;
  int rc;
  atomic_int done;
} stats_job;

static void *stats_thread(void *p) {
  stats_job *j = p;
  j->rc = stats_of(j->s, &j->st);
  atomic_store(&j->done, 1);
  return NULL;
}

static void test_txn_overlay(const char *dir, const kj_options *o,
                             kj_store *s) {
  const char *ks[] = {"k1", "k2", "k3", "k4", "k5", "k7"};
  for (size_t i = 0; i < 6; i++) {
    char v[16];
    snprintf(v, sizeof v, "old%zu", i);
    put_str(s, NULL, 1, ks[i], v);
  }
  put_str(s, NULL, 2, "t2", "committed");
  char *before = NULL;
  unsigned tabs[] = {1, 2, 3};
  is(tu_dump_tables(s, NULL, tabs, 3, &before), KJ_OK, "dump before txn");
  kj_stats st0;
  is(stats_of(s, &st0), KJ_OK, "stats before txn");

  kj_txn *t = NULL;
  is(kj_txn_begin(s, 0, &t), KJ_OK, "begin write txn");
  if (t == NULL) {
    free(before);
    kj_store_close(s);
    return;
  }
  is(put_str(s, t, 1, "k3", "new3"), KJ_OK, "txn: overwrite committed k3");
  is(del_str(s, t, 1, "k2"), KJ_OK, "txn: delete committed k2");
  is(put_str(s, t, 1, "k6", "new6"), KJ_OK, "txn: insert k6");
  is(put_str(s, t, 1, "k0", "new0"), KJ_OK, "txn: insert k0 (before all)");
  is(del_str(s, t, 1, "k9"), KJ_OK, "txn: delete absent k9");
  is(del_str(s, t, 1, "k4"), KJ_OK, "txn: delete k4 ...");
  is(put_str(s, t, 1, "k4", "new4"), KJ_OK, "txn: ... and put it back");
  is(put_str(s, t, 1, "k8", "tmp"), KJ_OK, "txn: put k8 ...");
  is(del_str(s, t, 1, "k8"), KJ_OK, "txn: ... and delete it");
  is(del_str(s, t, 1, "k7"), KJ_OK, "txn: delete last committed k7");
  is(put_str(s, t, 3, "t3", "txn-only"), KJ_OK, "txn: put in empty table");
  is(del_str(s, t, 2, "t2"), KJ_OK, "txn: delete only row of table 2");

  /* the transaction sees its own writes */
  ok(tu_get_str_eq(s, t, 1, "k1", "old0"), "txn get: untouched committed row");
  ok(get_absent(s, t, 1, "k2", 2), "txn get: deleted committed row absent");
  ok(tu_get_str_eq(s, t, 1, "k3", "new3"), "txn get: overwritten row");
  ok(tu_get_str_eq(s, t, 1, "k4", "new4"), "txn get: deleted then re-put");
  ok(tu_get_str_eq(s, t, 1, "k5", "old4"), "txn get: k5 committed");
  ok(tu_get_str_eq(s, t, 1, "k6", "new6"), "txn get: inserted row");
  ok(tu_get_str_eq(s, t, 1, "k0", "new0"), "txn get: inserted first row");
  ok(get_absent(s, t, 1, "k8", 2), "txn get: put then deleted absent");
  ok(get_absent(s, t, 1, "k7", 2), "txn get: deleted last row absent");
  ok(get_absent(s, t, 1, "k9", 2), "txn get: k9 absent");
  ok(tu_get_str_eq(s, t, 3, "t3", "txn-only"), "txn get: new table row");
  ok(get_absent(s, t, 2, "t2", 2), "txn get: table 2 row deleted");

  tu_buf w;
  tu_buf_init(&w);
  tu_buf_addf(&w, "T1\n");
  tu_dump_row(&w, "k0", 2, "new0", 4);
  tu_dump_row(&w, "k1", 2, "old0", 4);
  tu_dump_row(&w, "k3", 2, "new3", 4);
  tu_dump_row(&w, "k4", 2, "new4", 4);
  tu_dump_row(&w, "k5", 2, "old4", 4);
  tu_dump_row(&w, "k6", 2, "new6", 4);
  tu_buf_addf(&w, "T2\nT3\n");
  tu_dump_row(&w, "t3", 2, "txn-only", 8);
  char *want = tu_buf_take(&w);

  dump_is(s, t, tabs, want, "txn scan",
          "txn scan merges overlay with committed rows");

  {
    collect c;
    collect_init(&c, 0, 0);
    is(kj_scan_range(s, t, 1, "k2", 2, "k6", 2, collect_cb, &c), KJ_OK,
       "txn range scan");
    tu_buf e;
    tu_buf_init(&e);
    tu_dump_row(&e, "k3", 2, "new3", 4);
    tu_dump_row(&e, "k4", 2, "new4", 4);
    tu_dump_row(&e, "k5", 2, "old4", 4);
    ok(dumps_equal(c.b.p, e.p), "txn range [k2, k6) merged");
    tu_buf_free(&e);
    tu_buf_free(&c.b);
    collect_init(&c, 2, 33);
    is(kj_scan_prefix(s, t, 1, "k", 1, collect_cb, &c), 33,
       "txn scan stop value");
    is(c.visited, 2, "txn scan stopped after two rows");
    tu_buf_free(&c.b);
  }

  /* outside the transaction (another thread) nothing is visible yet */
  char *out = outside_dump(s, tabs, 3);
  ok(out != NULL, "scan outside the open txn");
  ok(dumps_equal(out, before), "open txn's changes invisible outside");
  free(out);
  ok(outside_get_str_eq(s, 1, "k3", "old2"), "outside get: old k3");
  ok(outside_get_absent(s, 1, "k6", 2), "outside get: k6 absent");
  ok(outside_get_str_eq(s, 1, "k2", "old1"), "outside get: k2 still there");
  {
    uint64_t rows = 0, bytes = 0;
    is(kj_table_count(s, 1, &rows, &bytes), KJ_OK, "table_count during txn");
    is(rows, 6, "table_count ignores the open txn");
  }
  /* kj_store_stats() while a write txn is open: run it in another thread
   * so that an engine that blocks (or deadlocks) fails instead of hanging */
  stats_job job;
  memset(&job, 0, sizeof job);
  job.s = s;
  int have_thread = pthread_create(&job.th, NULL, stats_thread, &job) == 0;
  ok(have_thread, "start stats thread");
  int64_t t0 = tu_now_ms();
  while (have_thread && !atomic_load(&job.done) && tu_now_ms() - t0 < 2000)
    tu_sleep_ms(5);
  int stats_done = have_thread && atomic_load(&job.done);
  ok(stats_done, "kj_store_stats does not block while a write txn is open");
  if (stats_done) {
    pthread_join(job.th, NULL);
    is(job.rc, KJ_OK, "stats during txn");
    is(job.st.rows, st0.rows, "stats.rows ignores the open txn");
  }

  is(kj_txn_commit(t), KJ_OK, "commit");
  if (have_thread && !stats_done)
    pthread_join(job.th, NULL); /* unblocked by the commit */
  dump_is(s, NULL, tabs, want, "scan after commit",
          "committed state equals the txn's view");

  /* rollback drops everything */
  t = NULL;
  is(kj_txn_begin(s, 0, &t), KJ_OK, "begin txn to roll back");
  if (t != NULL) {
    put_str(s, t, 1, "k1", "rolled");
    del_str(s, t, 1, "k3");
    put_str(s, t, 4, "x", "rolled");
    ok(tu_get_str_eq(s, t, 1, "k1", "rolled"), "rollback txn sees its put");
    kj_txn_rollback(t);
  }
  kj_txn_rollback(NULL); /* no-op */
  dump_is(s, NULL, tabs, want, "scan after rollback",
          "rollback changed nothing");
  ok(get_absent(s, NULL, 4, "x", 1), "rolled-back put absent");

  /* an empty transaction writes nothing */
  {
    kj_stats a, b;
    stats_of(s, &a);
    t = NULL;
    is(kj_txn_begin(s, 0, &t), KJ_OK, "begin empty txn");
    is(kj_txn_commit(t), KJ_OK, "commit empty txn");
    stats_of(s, &b);
    is(b.journal_bytes, a.journal_bytes, "empty commit wrote no bytes");
    is(b.last_seq, a.last_seq, "empty commit used no sequence number");
  }

  /* read-only transaction */
  t = NULL;
  is(kj_txn_begin(s, KJ_TXN_READONLY, &t), KJ_OK, "begin read-only txn");
  if (t != NULL) {
    ok(tu_get_str_eq(s, t, 1, "k6", "new6"), "read-only txn get");
    dump_is(s, t, tabs, want, "read-only txn scan",
            "read-only txn sees committed state");
    is(kj_txn_commit(t), KJ_OK, "commit read-only txn");
  }

  /* after reopen: committed txn present, rolled-back one absent */
  reopen_dump_is(
      s, dir, o, tabs, want,
      (const char *const[]){"txn", "txn reopen", "scan after reopen",
                            "reopen: committed txn, no rolled-back one"});
  free(before);
  free(want);
}

/* ---- reopen across many commits and segments ---------------------------- */

static void sync_normal(kj_options *o) { o->sync = KJ_SYNC_NORMAL; }

static void test_reopen_many(const char *dir, const kj_options *o,
                             kj_store *s) {
  tu_rng rng;
  tu_rng_seed(&rng, 7);
  unsigned tabs[] = {1, 2, 200};
  int bad = 0, ncommits = 0;
  for (int i = 0; i < 400; i++) {
    char k[32];
    unsigned char v[600];
    size_t vl = 100 + (size_t)tu_rng_below(&rng, 500);
    tu_rng_fill(&rng, v, vl);
    snprintf(k, sizeof k, "key%05d", i % 150);
    if (i % 3 == 0) {
      kj_txn *t = NULL;
      if (kj_txn_begin(s, 0, &t) != KJ_OK) {
        bad++;
        continue;
      }
      for (int j = 0; j < 3; j++)
        if (kj_put(s, t, tabs[j], k, strlen(k), v, vl) != KJ_OK)
          bad++;
      if (i % 7 == 0 && kj_delete(s, t, 2, "key00001", 8) != KJ_OK)
        bad++;
      if (kj_txn_commit(t) != KJ_OK)
        bad++;
    } else if (kj_put(s, NULL, tabs[i % 3], k, strlen(k), v, vl) != KJ_OK) {
      bad++;
    }
    ncommits++;
  }
  is(bad, 0, "400 commits over 3 tables succeeded");
  kj_stats st;
  is(stats_of(s, &st), KJ_OK, "stats");
  ok(st.segments > 1, "several segments used (%llu)",
     (unsigned long long)st.segments);
  is(st.commits, (uint64_t)ncommits, "stats.commits counts every commit");
  ok(st.journal_bytes > TU_SEGMENT_BYTES, "journal bigger than a segment");
  ok(st.disk_bytes >= st.journal_bytes, "disk_bytes >= journal_bytes");
  uint64_t seq = st.last_seq;
  ok(seq >= (uint64_t)ncommits, "last_seq >= commits");
  char *want = NULL;
  is(tu_dump_tables(s, NULL, tabs, 3, &want), KJ_OK, "dump before close");
  close_ok(s, "many");

  s = tu_store_open_ok(dir, o, "many reopen");
  if (s != NULL) {
    dump_is(s, NULL, tabs, want, "dump after reopen",
            "reopen preserves all tables");
    is(stats_of(s, &st), KJ_OK, "stats after reopen");
    is(st.commits, 0, "commits counts this handle only");
    ok(st.last_seq >= seq, "last_seq survives reopen");
    ok(st.frames_replayed >= (uint64_t)ncommits, "frames_replayed >= %d",
       ncommits);
    is(st.tail_bytes_cut, 0, "no tail cut after clean close");
    ok(st.rows > 0 && st.logical_bytes > 0, "rows and bytes recovered");
    /* more writes after reopen, then reopen again */
    is(put_str(s, NULL, 2, "after", "reopen"), KJ_OK, "write after reopen");
    is(del_str(s, NULL, 1, "key00000"), KJ_OK, "delete after reopen");
    free(want);
    want = NULL;
    is(tu_dump_tables(s, NULL, tabs, 3, &want), KJ_OK, "dump 2");
    reopen_dump_is(s, dir, o, tabs, want,
                   (const char *const[]){"many reopen", "many reopen 2",
                                         "dump after reopen 2",
                                         "second reopen preserves state"});
  }
  free(want);
}

/* ---- memory-only stores ----------------------------------------------- */

static void test_memory_only(void) {
  char cwd[4096];
  ok(getcwd(cwd, sizeof cwd) != NULL, "memory: getcwd");
  char *dir = tu_mkdtemp();
  ok(dir != NULL && chdir(dir) == 0, "memory: chdir to an empty temp dir");

  tu_vfs tv;
  tu_vfs_init(&tv);
  kj_options o;
  tu_options(&o);
  o.vfs = &tv.vfs; /* must be ignored */
  kj_store *s = tu_store_open_ok(NULL, &o, "memory");
  kj_store *s2 = tu_store_open_ok(NULL, &o, "second memory store");
  if (s != NULL) {
    kj_stats st;
    is(stats_of(s, &st), KJ_OK, "memory: stats");
    is(st.memory_only, 1, "memory: memory_only == 1");
    is(st.read_only, 0, "memory: read_only == 0");
    is(put_str(s, NULL, 1, "a", "1"), KJ_OK, "memory: put");
    is(put_str(s, NULL, 1, "b", "2"), KJ_OK, "memory: put b");
    is(put_str(s, NULL, 2, "c", "3"), KJ_OK, "memory: put table 2");
    ok(tu_get_str_eq(s, NULL, 1, "a", "1"), "memory: get");
    is(del_str(s, NULL, 1, "a"), KJ_OK, "memory: delete");
    ok(get_absent(s, NULL, 1, "a", 1), "memory: deleted");
    kj_txn *t = NULL;
    is(kj_txn_begin(s, 0, &t), KJ_OK, "memory: begin");
    if (t != NULL) {
      put_str(s, t, 1, "d", "4");
      ok(outside_get_absent(s, 1, "d", 1), "memory: txn invisible outside");
      is(kj_txn_commit(t), KJ_OK, "memory: commit");
    }
    ok(tu_get_str_eq(s, NULL, 1, "d", "4"), "memory: committed");
    t = NULL;
    is(kj_txn_begin(s, 0, &t), KJ_OK, "memory: begin 2");
    if (t != NULL) {
      put_str(s, t, 1, "e", "5");
      kj_txn_rollback(t);
    }
    ok(get_absent(s, NULL, 1, "e", 1), "memory: rolled back");
    char *d = NULL;
    is(tu_dump_table(s, NULL, 1, &d), KJ_OK, "memory: scan");
    tu_buf w;
    tu_buf_init(&w);
    tu_dump_row(&w, "b", 1, "2", 1);
    tu_dump_row(&w, "d", 1, "4", 1);
    ok(dumps_equal(d, w.p), "memory: scan rows");
    tu_buf_free(&w);
    free(d);
    uint64_t rows = 9, tbytes = 0;
    is(kj_store_sync(s), KJ_OK, "memory: kj_store_sync");
    is(stats_of(s, &st), KJ_OK, "memory: stats 2");
    is(st.rows, 3, "memory: rows");
    is(st.commits, 5, "memory: commits");
    is(st.disk_bytes, 0, "memory: no disk bytes");
    is(kj_table_count(s, 2, &rows, &tbytes) == KJ_OK ? (long long)rows : -1, 1,
       "memory: table_count");
    if (s2 != NULL)
      ok(get_absent(s2, NULL, 1, "b", 1), "memory stores are independent");
    close_ok(s, "memory");
  }
  if (s2 != NULL)
    close_ok(s2, "second memory store");
  s = tu_store_open_ok(NULL, &o, "memory reopen");
  if (s != NULL) {
    ok(get_absent(s, NULL, 1, "b", 1), "a new memory store starts empty");
    close_ok(s, "memory reopen");
  }
  is(tu_vfs_total_calls(&tv), 0, "memory: the vfs option was never called");
  is(tu_count_entries("."), 0, "memory: nothing created in the cwd");
  ok(chdir(cwd) == 0, "memory: chdir back");
  is(tu_count_entries(dir), 0, "memory: temp dir still empty");
  tu_vfs_destroy(&tv);
  tu_rmrf(dir);
  free(dir);
}

/* ---- passphrase store ------------------------------------------------- */

static void passphrase(kj_options *o) {
  tu_options_pass(o, "correct horse battery staple");
}

static void test_passphrase(const char *dir, const kj_options *created,
                            kj_store *s) {
  is(put_str(s, NULL, 1, "secret", "value"), KJ_OK, "passphrase: put");
  close_ok(s, "passphrase create");
  /* cost options are ignored for an existing store */
  kj_options o = *created;
  o.pwhash_opslimit = 3;
  o.pwhash_memlimit = 16384;
  s = tu_store_open_ok(dir, &o, "passphrase reopen");
  if (s != NULL) {
    ok(tu_get_str_eq(s, NULL, 1, "secret", "value"), "passphrase: reopen get");
    is(put_str(s, NULL, 1, "more", "data"), KJ_OK, "passphrase: put 2");
    close_ok(s, "passphrase reopen");
  }
  o.passphrase = "correct horse battery staple";
  o.pwhash_opslimit = 0; /* would be the expensive default for a new store */
  o.pwhash_memlimit = 0;
  o.mode = KJ_OPEN_EXISTING;
  s = tu_store_open_ok(dir, &o, "passphrase reopen EXISTING");
  if (s != NULL) {
    ok(tu_get_str_eq(s, NULL, 1, "more", "data"), "passphrase: second reopen");
    close_ok(s, "passphrase reopen 2");
  }
}

/* ---- sync modes --------------------------------------------------------- */

static void sync_mode_case(kj_sync mode, const char *name) {
  char *dir = tu_mkdtemp();
  char *snap = tu_mkdtemp();
  tu_vfs tv;
  kj_options o;
  tu_options_vfs(&o, &tv);
  o.sync = mode;
  o.segment_bytes = 1024 * 1024; /* no rollover within this test */
  o.sync_interval_bytes = 4096;
  kj_store *s = tu_store_open_ok(dir, &o, name);
  if (s == NULL)
    goto out;
  uint64_t syncs0 = tu_vfs_calls(&tv, TU_SYNC);
  int bad = 0;
  char v[1000];
  memset(v, 'v', sizeof v);
  for (int i = 0; i < 50; i++) {
    char k[16];
    snprintf(k, sizeof k, "k%02d", i);
    v[0] = (char)('A' + i % 26);
    if (kj_put(s, NULL, 1, k, strlen(k), v, sizeof v) != KJ_OK)
      bad++;
  }
  is(bad, 0, "%s: 50 commits", name);
  uint64_t syncs = tu_vfs_calls(&tv, TU_SYNC) - syncs0;
  if (mode == KJ_SYNC_FULL)
    ok(syncs >= 50, "%s: a sync per commit (%llu)", name,
       (unsigned long long)syncs);
  else if (mode == KJ_SYNC_NORMAL)
    ok(syncs >= 1 && syncs < 50,
       "%s: syncs every sync_interval_bytes, not per commit (%llu)", name,
       (unsigned long long)syncs);
  else
    is(syncs, 0, "%s: never syncs", name);

  if (mode != KJ_SYNC_OFF) {
    /* a process crash now (copy the files while the store is open) must
     * keep every acknowledged commit */
    ok(tu_copy_dir(dir, snap) == 0, "%s: snapshot while open", name);
    kj_options o2;
    tu_options(&o2);
    o2.sync = mode;
    o2.segment_bytes = o.segment_bytes;
    kj_store *c = tu_store_open_ok(snap, &o2, "crash snapshot");
    if (c != NULL) {
      uint64_t rows = 0, tbytes = 0;
      is(kj_table_count(c, 1, &rows, &tbytes), KJ_OK, "%s: snapshot count",
         name);
      is(rows, 50, "%s: crash snapshot holds every commit", name);
      v[0] = (char)('A' + 49 % 26);
      ok(tu_get_eq(c, NULL, 1, "k49", 3, v, sizeof v),
         "%s: crash snapshot holds the last commit", name);
      close_ok(c, "crash snapshot");
    }
  }
  syncs0 = tu_vfs_calls(&tv, TU_SYNC);
  is(kj_store_sync(s), KJ_OK, "%s: kj_store_sync", name);
  if (mode != KJ_SYNC_OFF)
    ok(tu_vfs_calls(&tv, TU_SYNC) > syncs0, "%s: kj_store_sync syncs", name);
  close_ok(s, name);

  s = tu_store_open_ok(dir, &o, name);
  if (s != NULL) {
    uint64_t rows = 0, tbytes = 0;
    is(kj_table_count(s, 1, &rows, &tbytes), KJ_OK, "%s: count after reopen",
       name);
    is(rows, 50, "%s: every commit after clean close", name);
    v[0] = (char)('A' + 7);
    ok(tu_get_eq(s, NULL, 1, "k07", 3, v, sizeof v), "%s: k07 after reopen",
       name);
    close_ok(s, name);
  }
out:
  tu_vfs_destroy(&tv);
  tu_rmrf(dir);
  tu_rmrf(snap);
  free(dir);
  free(snap);
}

static void test_sync_modes(void) {
  sync_mode_case(KJ_SYNC_FULL, "SYNC_FULL");
  sync_mode_case(KJ_SYNC_NORMAL, "SYNC_NORMAL");
  sync_mode_case(KJ_SYNC_OFF, "SYNC_OFF");
}

/* ---- statistics -------------------------------------------------------------
 */

static void test_stats(const char *dir, const kj_options *o, kj_store *s) {
  kj_stats st;
  is(stats_of(s, &st), KJ_OK, "stats: fresh");
  is(st.rows, 0, "fresh: rows 0");
  is(st.logical_bytes, 0, "fresh: logical_bytes 0");
  is(st.commits, 0, "fresh: commits 0");
  is(st.memory_only, 0, "fresh: not memory_only");
  is(st.read_only, 0, "fresh: not read_only");
  is(st.poisoned, 0, "fresh: not poisoned");
  ok(st.format_version >= 1, "format_version set");
  ok(st.disk_bytes > 0, "disk_bytes counts the store's files");

  put_str(s, NULL, 1, "a", "12345"); /* 1 + 5 */
  put_str(s, NULL, 1, "bb", "");     /* 2 + 0 */
  put_str(s, NULL, 1, "ccc", "xyz"); /* 3 + 3 */
  kj_txn *t = NULL;
  is(kj_txn_begin(s, 0, &t), KJ_OK, "stats: begin");
  put_str(s, t, 2, "dddd", "0123456789"); /* 4 + 10 */
  put_str(s, t, 2, "e", "ee");            /* 1 + 2 */
  is(kj_txn_commit(t), KJ_OK, "stats: commit");
  is(stats_of(s, &st), KJ_OK, "stats after 4 commits");
  is(st.rows, 5, "rows 5");
  is(st.logical_bytes, 31, "logical_bytes 31");
  is(st.commits, 4, "commits 4");
  uint64_t rows = 0, bytes = 0;
  is(kj_table_count(s, 1, &rows, &bytes), KJ_OK, "table_count 1");
  is(rows, 3, "table 1 rows");
  is(bytes, 14, "table 1 bytes");
  is(kj_table_count(s, 2, &rows, &bytes), KJ_OK, "table_count 2");
  is(rows, 2, "table 2 rows");
  is(bytes, 17, "table 2 bytes");
  rows = bytes = 99;
  is(kj_table_count(s, 3, &rows, &bytes), KJ_OK, "table_count untouched");
  is(rows, 0, "untouched table rows 0");
  is(bytes, 0, "untouched table bytes 0");

  put_str(s, NULL, 1, "a", "1234567890"); /* +5 */
  del_str(s, NULL, 2, "e");               /* -3 */
  is(stats_of(s, &st), KJ_OK, "stats after overwrite and delete");
  is(st.rows, 4, "rows 4");
  is(st.logical_bytes, 33, "logical_bytes 33");
  is(st.commits, 6, "commits 6");
  is(kj_table_count(s, 1, &rows, &bytes), KJ_OK, "table_count 1 again");
  is(bytes, 19, "table 1 bytes after overwrite");
  uint64_t seq = st.last_seq;
  ok(seq >= 6, "last_seq >= 6");

  s = reopen_ok(s, dir, o, "stats", "stats reopen");
  if (s != NULL) {
    is(stats_of(s, &st), KJ_OK, "stats after reopen");
    is(st.rows, 4, "reopen: rows 4");
    is(st.logical_bytes, 33, "reopen: logical_bytes 33");
    is(st.commits, 0, "reopen: commits of this handle 0");
    ok(st.last_seq >= seq, "reopen: last_seq kept");
    is(kj_table_count(s, 2, &rows, &bytes), KJ_OK, "reopen: table_count 2");
    is(rows, 1, "reopen: table 2 rows");
    is(bytes, 14, "reopen: table 2 bytes");
    close_ok(s, "stats reopen");
  }
}

/* ---- creating the store directory ------------------------------------ */

static void test_create_missing_dir(void) {
  char *dir = tu_mkdtemp();
  char *sub = tu_path(dir, "store");
  kj_options o;
  tu_options(&o);
  kj_store *s = NULL;
  is(kj_store_open(sub, &o, &s, NULL), KJ_OK,
     "KJ_OPEN_CREATE creates a missing store directory");
  if (s != NULL) {
    is(put_str(s, NULL, 1, "k", "v"), KJ_OK, "put in new directory");
    close_ok(s, "new directory");
    ok(tu_count_entries(sub) > 0, "store files were created");
  }
  tu_rmrf(dir);
  free(sub);
  free(dir);
}

/* ---- randomized comparison against a model ------------------------------ */

#define NT 3
static const unsigned rtables[NT] = {1, 7, 255};

typedef struct mrow {
  unsigned char k[4];
  size_t kl;
  unsigned char *v;
  size_t vl;
} mrow;

typedef struct mtable {
  mrow *r;
  size_t n, cap;
} mtable;

typedef struct model {
  mtable t[NT];
} model;

static void model_free(model *m) {
  for (int i = 0; i < NT; i++) {
    for (size_t j = 0; j < m->t[i].n; j++)
      free(m->t[i].r[j].v);
    free(m->t[i].r);
  }
  memset(m, 0, sizeof *m);
}

static void model_copy(model *dst, const model *src) {
  memset(dst, 0, sizeof *dst);
  for (int i = 0; i < NT; i++) {
    const mtable *a = &src->t[i];
    mtable *b = &dst->t[i];
    b->cap = a->n ? a->n : 1;
    b->r = malloc(b->cap * sizeof *b->r);
    b->n = a->n;
    for (size_t j = 0; j < a->n; j++) {
      b->r[j] = a->r[j];
      b->r[j].v = malloc(a->r[j].vl ? a->r[j].vl : 1);
      if (a->r[j].vl)
        memcpy(b->r[j].v, a->r[j].v, a->r[j].vl);
    }
  }
}

/* index of key, or -(insertion point) - 1 */
static long mfind(const mtable *t, const void *k, size_t kl) {
  size_t lo = 0, hi = t->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = key_cmp(t->r[mid].k, t->r[mid].kl, k, kl);
    if (c == 0)
      return (long)mid;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -(long)lo - 1;
}

static void model_put(model *m, int ti, const void *k, size_t kl, const void *v,
                      size_t vl) {
  mtable *t = &m->t[ti];
  long i = mfind(t, k, kl);
  unsigned char *copy = malloc(vl ? vl : 1);
  if (vl)
    memcpy(copy, v, vl);
  if (i >= 0) {
    free(t->r[i].v);
    t->r[i].v = copy;
    t->r[i].vl = vl;
    return;
  }
  size_t at = (size_t)(-i - 1);
  if (t->n == t->cap) {
    t->cap = t->cap ? t->cap * 2 : 8;
    t->r = realloc(t->r, t->cap * sizeof *t->r);
  }
  memmove(&t->r[at + 1], &t->r[at], (t->n - at) * sizeof *t->r);
  memcpy(t->r[at].k, k, kl);
  t->r[at].kl = kl;
  t->r[at].v = copy;
  t->r[at].vl = vl;
  t->n++;
}

static void model_del(model *m, int ti, const void *k, size_t kl) {
  mtable *t = &m->t[ti];
  long i = mfind(t, k, kl);
  if (i < 0)
    return;
  free(t->r[i].v);
  memmove(&t->r[i], &t->r[i + 1], (t->n - (size_t)i - 1) * sizeof *t->r);
  t->n--;
}

static char *model_dump(const model *m, const void *prefix, size_t plen,
                        int ti_only) {
  tu_buf b;
  tu_buf_init(&b);
  for (int i = 0; i < NT; i++) {
    if (ti_only >= 0 && i != ti_only)
      continue;
    if (ti_only < 0)
      tu_buf_addf(&b, "T%u\n", rtables[i]);
    for (size_t j = 0; j < m->t[i].n; j++) {
      const mrow *r = &m->t[i].r[j];
      if (r->kl >= plen && (plen == 0 || memcmp(r->k, prefix, plen) == 0))
        tu_dump_row(&b, r->k, r->kl, r->v, r->vl);
    }
  }
  return tu_buf_take(&b);
}

static void model_totals(const model *m, uint64_t *rows, uint64_t *bytes) {
  *rows = *bytes = 0;
  for (int i = 0; i < NT; i++)
    for (size_t j = 0; j < m->t[i].n; j++) {
      (*rows)++;
      *bytes += m->t[i].r[j].kl + m->t[i].r[j].vl;
    }
}

/* Keys over the alphabet {0x00, 'a', 0xff}, length 1..4: many are prefixes
 * of each other. */
static size_t rand_key(tu_rng *r, unsigned char *k) {
  static const unsigned char alpha[3] = {0x00, 'a', 0xff};
  size_t n = 1 + (size_t)tu_rng_below(r, 4);
  for (size_t i = 0; i < n; i++)
    k[i] = alpha[tu_rng_below(r, 3)];
  return n;
}

static size_t rand_val(tu_rng *r, unsigned char *v) {
  size_t n = (size_t)tu_rng_below(r, 8) == 0 ? 0 : (size_t)tu_rng_below(r, 64);
  tu_rng_fill(r, v, n);
  return n;
}

typedef struct rstate {
  int get_bad, scan_bad, op_bad, cmp_bad, stat_bad;
  int commits, rollbacks, reopens, checks;
} rstate;

static void check_against(kj_store *s, const model *m, rstate *rs) {
  char *got = NULL;
  char *want = model_dump(m, NULL, 0, -1);
  rs->checks++;
  if (tu_dump_tables(s, NULL, rtables, NT, &got) != KJ_OK ||
      strcmp(got, want) != 0) {
    if (rs->cmp_bad++ == 0)
      dumps_equal(got, want);
  }
  free(got);
  free(want);
  kj_stats st;
  uint64_t rows, bytes;
  model_totals(m, &rows, &bytes);
  if (stats_of(s, &st) != KJ_OK || st.rows != rows || st.logical_bytes != bytes)
    rs->stat_bad++;
}

/* Put a random value under k (put) or delete k, in table ti of s (in t)
 * and of the model m. 0 if the store refused. */
static int write_op(kj_store *s, kj_txn *t, model *m, tu_rng *r, int ti,
                    const unsigned char *k, size_t kl, int put) {
  unsigned char v[64];
  if (put) {
    size_t vl = rand_val(r, v);
    model_put(m, ti, k, kl, v, vl);
    return kj_put(s, t, rtables[ti], k, kl, v, vl) == KJ_OK;
  }
  model_del(m, ti, k, kl);
  return kj_delete(s, t, rtables[ti], k, kl) == KJ_OK;
}

/* 1 if a get of k in table ti of s (in t) finds what the model m holds. */
static int get_matches(kj_store *s, kj_txn *t, const model *m, int ti,
                       const unsigned char *k, size_t kl) {
  long i = mfind(&m->t[ti], k, kl);
  return i >= 0 ? tu_get_eq(s, t, rtables[ti], k, kl, m->t[ti].r[i].v,
                            m->t[ti].r[i].vl)
                : get_absent(s, t, rtables[ti], k, kl);
}

/* Small segments, no syncs: many segments, quickly. */
static void random_options(kj_options *o) {
  o->sync = KJ_SYNC_OFF;
  o->segment_bytes = 16 * 1024;
}

static void test_random(const char *dir, const kj_options *o, kj_store *s) {
  tu_rng r;
  tu_rng_seed(&r, 0x5eed1234u);
  model m;
  memset(&m, 0, sizeof m);
  rstate rs;
  memset(&rs, 0, sizeof rs);
  unsigned char k[4];
  int ops = 0, next_reopen = 400;

  while (ops < 2000 && s != NULL) {
    if (tu_rng_below(&r, 10) < 4) {
      /* autocommit op */
      int ti = (int)tu_rng_below(&r, NT);
      size_t kl = rand_key(&r, k);
      uint64_t what = tu_rng_below(&r, 10);
      ops++;
      if (what < 8) {
        rs.op_bad += !write_op(s, NULL, &m, &r, ti, k, kl, what < 5);
      } else {
        rs.get_bad += !get_matches(s, NULL, &m, ti, k, kl);
        continue;
      }
      check_against(s, &m, &rs);
    } else {
      /* a transaction of 1..12 ops, committed or rolled back */
      kj_txn *t = NULL;
      if (kj_txn_begin(s, 0, &t) != KJ_OK) {
        rs.op_bad++;
        ops++;
        continue;
      }
      model tm;
      model_copy(&tm, &m);
      int n = 1 + (int)tu_rng_below(&r, 12);
      for (int j = 0; j < n; j++, ops++) {
        int ti = (int)tu_rng_below(&r, NT);
        size_t kl = rand_key(&r, k);
        uint64_t what = tu_rng_below(&r, 20);
        if (what < 14) {
          rs.op_bad += !write_op(s, t, &tm, &r, ti, k, kl, what < 9);
        } else if (what < 17) {
          /* get inside the txn, and outside it (committed state) */
          rs.get_bad += !get_matches(s, t, &tm, ti, k, kl);
          long i = mfind(&m.t[ti], k, kl);
          if (i >= 0 ? !outside_get_eq(s, rtables[ti], k, kl, m.t[ti].r[i].v,
                                       m.t[ti].r[i].vl)
                     : !outside_get_absent(s, rtables[ti], k, kl))
            rs.get_bad++;
        } else {
          /* prefix scan inside the txn */
          size_t pl = (size_t)tu_rng_below(&r, kl + 1);
          char *want = model_dump(&tm, k, pl, ti);
          collect c;
          collect_init(&c, 0, 0);
          int rc = kj_scan_prefix(s, t, rtables[ti], k, pl, collect_cb, &c);
          const char *g = c.b.p ? c.b.p : "";
          if (rc != KJ_OK || strcmp(g, want) != 0 || !c.order_ok)
            rs.scan_bad++;
          tu_buf_free(&c.b);
          free(want);
        }
      }
      if (tu_rng_below(&r, 4) == 0) {
        kj_txn_rollback(t);
        rs.rollbacks++;
        model_free(&tm);
      } else {
        if (kj_txn_commit(t) != KJ_OK)
          rs.op_bad++;
        rs.commits++;
        model_free(&m);
        m = tm;
      }
      check_against(s, &m, &rs);
    }
    if (ops >= next_reopen) {
      next_reopen += 400;
      if (kj_store_close(s) != KJ_OK)
        rs.op_bad++;
      s = NULL;
      if (kj_store_open(dir, o, &s, NULL) != KJ_OK) {
        rs.op_bad++;
        break;
      }
      rs.reopens++;
      check_against(s, &m, &rs);
    }
  }
  is(rs.op_bad, 0, "random: every put/delete/commit/reopen succeeded");
  is(rs.get_bad, 0, "random: every get matched the model");
  is(rs.scan_bad, 0, "random: every in-txn prefix scan matched the model");
  is(rs.cmp_bad, 0, "random: all %d full comparisons matched", rs.checks);
  is(rs.stat_bad, 0, "random: stats rows/logical_bytes matched");
  ok(rs.commits > 50 && rs.rollbacks > 10 && rs.reopens >= 4,
     "random: exercised commits (%d), rollbacks (%d), reopens (%d)", rs.commits,
     rs.rollbacks, rs.reopens);
  if (s != NULL) {
    s = reopen_ok(s, dir, o, "random", "random final reopen");
  }
  if (s != NULL) {
    rstate fin;
    memset(&fin, 0, sizeof fin);
    check_against(s, &m, &fin);
    is(fin.cmp_bad + fin.stat_bad, 0, "random: final reopen matches model");
    kj_stats st;
    stats_of(s, &st);
    ok(st.segments > 1, "random: several segments (%llu)",
       (unsigned long long)st.segments);
    close_ok(s, "random final");
  }
  model_free(&m);
}

/* Savepoints: undo every change since the savepoint (puts over existing
 * write-set entries, tombstones, new keys) and keep what came before. */
static void test_savepoint(void) {
  kj_options o;
  tu_options(&o);
  kj_store *s = NULL;
  kj_store_open(NULL, &o, &s, NULL);
  kj_put(s, NULL, 1, "committed", 9, "c0", 2);
  kj_txn *t = NULL;
  kj_txn_begin(s, 0, &t);
  kj_put(s, t, 1, "a", 1, "a1", 2);
  kj_delete(s, t, 1, "committed", 9);
  char *before = NULL;
  tu_dump_table(s, t, 1, &before);
  is(kj_txn_savepoint(t), KJ_OK, "savepoint");
  kj_put(s, t, 1, "a", 1, "a2-longer", 9);  /* overwrite a ws put */
  kj_put(s, t, 1, "committed", 9, "c1", 2); /* overwrite a ws tombstone */
  kj_put(s, t, 1, "new", 3, "n", 1);        /* a key new to the ws */
  kj_delete(s, t, 1, "a", 1);               /* and a second change */
  kj_txn_rollback_savepoint(t);
  char *after = NULL;
  tu_dump_table(s, t, 1, &after);
  ok(before && after && !strcmp(before, after),
     "rollback to savepoint restores the transaction's view exactly");
  is(kj_txn_savepoint(t), KJ_OK, "savepoint again");
  kj_put(s, t, 1, "kept", 4, "k", 1);
  kj_txn_release_savepoint(t);
  kj_txn_rollback_savepoint(t); /* no savepoint: no-op */
  is(kj_txn_commit(t), KJ_OK, "commit");
  ok(tu_get_str_eq(s, NULL, 1, "a", "a1"),
     "the change before the savepoint is committed");
  void *v = NULL;
  size_t vl = 0;
  is(kj_get(s, NULL, 1, "committed", 9, &v, &vl), KJ_NOTFOUND,
     "the delete before the savepoint is committed");
  is(kj_get(s, NULL, 1, "new", 3, &v, &vl), KJ_NOTFOUND,
     "the undone put is not");
  ok(kj_get(s, NULL, 1, "kept", 4, &v, &vl) == KJ_OK,
     "the change under a released savepoint is");
  kj_free(v);
  kj_txn *r = NULL;
  kj_txn_begin(s, KJ_TXN_READONLY, &r);
  is(kj_txn_savepoint(r), KJ_EINVAL, "no savepoint in a read-only txn");
  kj_txn_rollback(r);
  is(kj_txn_savepoint(NULL), KJ_EINVAL, "savepoint(NULL): KJ_EINVAL");
  free(before);
  free(after);
  kj_store_close(s);
}

/* kj_get with val and vlen NULL: whether the key exists, committed or in
 * the transaction's own write set, with nothing copied. */
static void test_presence(const char *dir, const kj_options *o, kj_store *s) {
  (void)dir, (void)o;
  void *v = NULL;
  size_t vl = 0;
  is(put_str(s, NULL, 1, "here", "1"), KJ_OK, "presence: put");
  is(kj_put(s, NULL, 1, "empty", 5, NULL, 0), KJ_OK, "presence: put empty");
  is(kj_get(s, NULL, 1, "here", 4, NULL, NULL), KJ_OK, "presence: committed");
  is(kj_get(s, NULL, 1, "empty", 5, NULL, NULL), KJ_OK,
     "presence: an empty value exists");
  is(kj_get(s, NULL, 1, "gone", 4, NULL, NULL), KJ_NOTFOUND,
     "presence: absent");
  is(kj_get(s, NULL, 2, "here", 4, NULL, NULL), KJ_NOTFOUND,
     "presence: another table");
  is(kj_get(s, NULL, 1, "here", 4, NULL, &vl), KJ_EINVAL,
     "presence: val NULL alone is EINVAL");
  is(kj_get(s, NULL, 1, "here", 4, &v, NULL), KJ_EINVAL,
     "presence: vlen NULL alone is EINVAL");
  ok(v == NULL, "presence: a refused get leaves *val NULL");
  kj_txn *t = NULL;
  is(kj_txn_begin(s, 0, &t), KJ_OK, "presence: begin");
  if (t) {
    is(put_str(s, t, 1, "new", "2"), KJ_OK, "presence: put in txn");
    is(del_str(s, t, 1, "here"), KJ_OK, "presence: delete in txn");
    is(kj_get(s, t, 1, "new", 3, NULL, NULL), KJ_OK,
       "presence: the txn's own put");
    is(kj_get(s, t, 1, "here", 4, NULL, NULL), KJ_NOTFOUND,
       "presence: the txn's own delete");
    is(kj_get(s, NULL, 1, "new", 3, NULL, NULL), KJ_NOTFOUND,
       "presence: not outside before the commit");
    kj_txn_rollback(t);
  }
  is(kj_get(s, NULL, 1, "here", 4, NULL, NULL), KJ_OK,
     "presence: rolled back delete");
  is(kj_store_close(s), KJ_OK, "presence: close");
}

/* Segments grow (FORMAT.md 4): a store's first is 64 KiB, each next one
 * four times the one before, up to segment_bytes; a smaller segment_bytes
 * caps the first too. */
static long long seg_size(const char *dir, unsigned n) {
  char name[64];
  snprintf(name, sizeof name, "journal-%016x.kjl", n);
  char *p = tu_path(dir, name);
  long long size = tu_file_size(p);
  free(p);
  return size;
}

static void test_segment_growth(void) {
  static const struct {
    uint64_t cap;
    long long want[6];
  } cases[] = {
      {0, {65536, 262144, 1048576, 4194304, 8388608, 8388608}},
      {1u << 20, {65536, 262144, 1048576, 1048576, 1048576, 1048576}},
      {16384, {16384, 16384, 16384, 16384, 16384, 16384}},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    char *dir = tu_mkdtemp();
    kj_options o;
    tu_options(&o);
    o.sync = KJ_SYNC_OFF;
    o.segment_bytes = cases[c].cap;
    o.snapshot_threshold = UINT64_MAX;
    kj_store *s = tu_store_open_ok(dir, &o, "growth");
    if (!s) {
      tu_rmrf(dir);
      free(dir);
      continue;
    }
    is(seg_size(dir, 1), cases[c].want[0],
       "growth, cap %llu: a new store's segment",
       (unsigned long long)cases[c].cap);
    /* Commits of about 4 KiB until the sixth segment exists. */
    char v[4000], k[16];
    memset(v, 'g', sizeof v);
    kj_stats st = KJ_STATS_INIT;
    int rc = KJ_OK;
    for (int i = 0; !rc && st.segments < 6 && i < 10000; i++) {
      snprintf(k, sizeof k, "g%06d", i);
      rc = kj_put(s, NULL, 1, k, strlen(k), v, sizeof v);
      stats_of(s, &st);
    }
    is(rc, KJ_OK, "growth, cap %llu: commits",
       (unsigned long long)cases[c].cap);
    for (unsigned n = 1; n <= 6; n++)
      is(seg_size(dir, n), cases[c].want[n - 1], "growth, cap %llu: segment %u",
         (unsigned long long)cases[c].cap, n);
    /* A checkpoint on request rolls over to the next size, as segments
     * grow (test_checkpoint_roll: one inside a commit may not). */
    is(kj_store_checkpoint(s), KJ_OK, "growth: checkpoint");
    is(seg_size(dir, 7), cases[c].want[5],
       "growth, cap %llu: the segment after a checkpoint on request",
       (unsigned long long)cases[c].cap);
    uint64_t rows = 0;
    kj_table_count(s, 1, &rows, NULL);
    is(kj_store_close(s), KJ_OK, "growth: close");
    s = tu_store_open_ok(dir, &o, "growth: reopen");
    uint64_t again = 0;
    if (s) {
      kj_table_count(s, 1, &again, NULL);
      kj_store_close(s);
    }
    ok(rows > 0 && again == rows, "growth, cap %llu: reopen holds %llu rows",
       (unsigned long long)cases[c].cap, (unsigned long long)rows);
    tu_rmrf(dir);
    free(dir);
  }
}

/* The roll-over of an automatic checkpoint, inside the commit that
 * crossed the threshold: into the segment made ahead for it (the store
 * asks for one once the threshold is within half a segment), or, when
 * none could be made, into a small one (64 KiB), not into a full-size
 * segment written within the commit. */
static void test_checkpoint_roll(void) {
  char *dir = tu_mkdtemp();
  tu_vfs tv;
  kj_options o;
  tu_options_vfs(&o, &tv);
  o.sync = KJ_SYNC_OFF;
  o.segment_bytes = 0; /* the default, 8 MiB */
  o.snapshot_threshold = UINT64_MAX;
  o.checkpoint_inline = 1;
  kj_store *s = tu_store_open_ok(dir, &o, "ckpt roll");
  char v[4000], k[16];
  memset(v, 'c', sizeof v);
  kj_stats st = KJ_STATS_INIT;
  int rc = KJ_OK, i = 0;
  while (s && !rc && st.segments < 4 && i < 10000) { /* 64K .. 4M */
    snprintf(k, sizeof k, "c%06d", i++);
    rc = kj_put(s, NULL, 1, k, strlen(k), v, sizeof v);
    stats_of(s, &st);
  }
  is(rc, KJ_OK, "ckpt roll: %d commits, %llu segments", i,
     (unsigned long long)st.segments);
  is(seg_size(dir, 4), 4 << 20, "ckpt roll: the live segment is 4 MiB");
  kj_store_close(s);

  /* Every commit now crosses the threshold. The first makes segment 5
   * ahead (8 MiB) and its checkpoint rolls into it. */
  o.snapshot_threshold = 1;
  s = tu_store_open_ok(dir, &o, "ckpt roll: reopen");
  is(s ? kj_put(s, NULL, 1, "x1", 2, v, sizeof v) : -1, KJ_OK,
     "ckpt roll: a commit that checkpoints");
  stats_of(s, &st);
  is(st.snapshots_written, 1, "ckpt roll: it checkpointed");
  is(st.segments_ahead, 1, "ckpt roll: into the segment made ahead");
  is(seg_size(dir, 5), 8 << 20, "ckpt roll: of 8 MiB");
  /* The next: making segment 6 ahead fails (its file cannot be
   * created), so the checkpoint rolls into a 64 KiB segment. */
  tu_vfs_arm(&tv, TU_OPEN, 1, KJ_EIO, TU_ARM_ONCE);
  is(s ? kj_put(s, NULL, 1, "x2", 2, v, sizeof v) : -1, KJ_OK,
     "ckpt roll: a commit whose segment could not be made ahead");
  tu_vfs_disarm(&tv);
  stats_of(s, &st);
  is(tu_vfs_injected(&tv), 1, "ckpt roll: the creation failed");
  is(st.snapshots_written, 2, "ckpt roll: it checkpointed");
  is(st.segments_ahead, 1, "ckpt roll: not into a segment made ahead");
  is(seg_size(dir, 6), 64 * 1024, "ckpt roll: into a 64 KiB one");
  uint64_t rows = 0, again = 0;
  kj_table_count(s, 1, &rows, NULL);
  is(kj_store_close(s), KJ_OK, "ckpt roll: close");
  o.snapshot_threshold = 0;
  s = tu_store_open_ok(dir, &o, "ckpt roll: reopen");
  if (s)
    kj_table_count(s, 1, &again, NULL);
  ok(s && again == rows && tu_get_eq(s, NULL, 1, "x2", 2, v, sizeof v),
     "ckpt roll: reopen holds all %llu rows", (unsigned long long)rows);
  kj_store_close(s);
  tu_vfs_destroy(&tv);
  tu_rmrf(dir);
  free(dir);
}

/* Segments made ahead (journal.c): once segments are full size (64 KiB
 * here), the next one is written and synced ahead, as a .tmp, so that a
 * roll-over only writes its header. Every roll-over of a handle uses the
 * one made for it; one that failed to be made (a failed write) leaves the
 * roll-over to create its segment itself; a frame too large for it gets a
 * segment of its own; close removes the one left. Both ways of making
 * them: in a thread of its own, and inline (checkpoint_inline). */
static int ahead_exists(const char *dir, uint64_t segno, long long *size) {
  char name[64];
  snprintf(name, sizeof name, "journal-%016llx.kjl.tmp",
           (unsigned long long)segno);
  char *p = tu_path(dir, name);
  *size = tu_file_size(p);
  free(p);
  return *size >= 0;
}

static void test_segments_ahead(void) {
  for (int inl = 0; inl <= 1; inl++) {
    char *dir = tu_mkdtemp();
    tu_vfs tv;
    kj_options o;
    tu_options_vfs(&o, &tv);
    o.segment_bytes = 64 * 1024;
    o.snapshot_threshold = UINT64_MAX;
    o.checkpoint_inline = inl;
    kj_store *s = tu_store_open_ok(dir, &o, "ahead");
    if (!s) {
      tu_vfs_destroy(&tv);
      tu_rmrf(dir);
      free(dir);
      continue;
    }
    char v[4000], k[16];
    memset(v, 'a', sizeof v);
    kj_stats st = KJ_STATS_INIT;
    int rc = KJ_OK, i = 0, armed = 0;
    uint64_t rolls_then = 0;
    while (!rc && st.segments < 12 && i < 1000) {
      snprintf(k, sizeof k, "a%06d", i++);
      uint64_t before = st.segments;
      rc = kj_put(s, NULL, 1, k, strlen(k), v, sizeof v);
      stats_of(s, &st);
      /* Inline, after the fourth roll-over: the commit that fills half of
       * the fifth segment makes the sixth, and the creation of its file
       * fails (commits open no file, and roll-overs do not come before). */
      if (inl && !armed && st.segments == 5 && before == 4) {
        tu_vfs_arm(&tv, TU_OPEN, 1, KJ_ENOSPC, TU_ARM_ONCE);
        armed = 1;
        rolls_then = st.segments_ahead;
      }
    }
    tu_vfs_disarm(&tv);
    is(rc, KJ_OK, "ahead (%s): %d commits of 4 KB, %llu segments",
       inl ? "inline" : "thread", i, (unsigned long long)st.segments);
    if (inl) {
      is(tu_vfs_injected(&tv), 1, "ahead (inline): one file creation failed");
      is(rolls_then, 4, "ahead (inline): the first four rolls used theirs");
      is(st.segments_ahead, st.segments - 2,
         "ahead (inline): every roll-over but the one whose segment failed "
         "used one (%llu of %llu)",
         (unsigned long long)st.segments_ahead,
         (unsigned long long)st.segments - 1);
      long long size;
      ok(!ahead_exists(dir, st.segments + 1, &size),
         "ahead (inline): none made in a segment that just began");
      for (int n = 0; !rc && n < 9; n++) {
        snprintf(k, sizeof k, "a%06d", i++);
        rc = kj_put(s, NULL, 1, k, strlen(k), v, sizeof v);
      }
      stats_of(s, &st);
      ok(!rc && ahead_exists(dir, st.segments + 1, &size) && size == 64 * 1024,
         "ahead (inline): once it is half full, the next one waits as a "
         ".tmp of 64 KiB");
    } else {
      is(st.segments_ahead, st.segments - 1,
         "ahead (thread): every roll-over used the segment made (%llu of "
         "%llu)",
         (unsigned long long)st.segments_ahead,
         (unsigned long long)st.segments - 1);
    }
    /* A frame larger than a segment: its own segment, sized for it. */
    uint64_t segs = st.segments, used = st.segments_ahead;
    size_t big = 100 * 1024;
    char *bv = malloc(big);
    memset(bv, 'B', big);
    is(kj_put(s, NULL, 2, "big", 3, bv, big), KJ_OK,
       "ahead (%s): a 100 KB value", inl ? "inline" : "thread");
    stats_of(s, &st);
    is(st.segments, segs + 1, "ahead: it rolled over");
    is(st.segments_ahead, used, "ahead: not into the segment made ahead");
    ok(seg_size(dir, (unsigned)st.segments) > (long long)big,
       "ahead: its segment holds it (%lld bytes)",
       seg_size(dir, (unsigned)st.segments));
    uint64_t rows = 0;
    kj_table_count(s, 1, &rows, NULL);
    is(kj_store_close(s), KJ_OK, "ahead: close");
    long long size;
    ok(!ahead_exists(dir, st.segments + 1, &size),
       "ahead (%s): close removed the segment made ahead",
       inl ? "inline" : "thread");
    is(tu_count_prefix(dir, "journal-"), (int)st.segments,
       "ahead: no other file left");
    s = tu_store_open_ok(dir, &o, "ahead: reopen");
    uint64_t again = 0;
    if (s) {
      kj_table_count(s, 1, &again, NULL);
      ok(tu_get_eq(s, NULL, 2, "big", 3, bv, big), "ahead: the big value");
      kj_store_close(s);
    }
    is(again, rows, "ahead (%s): reopen holds all %llu rows",
       inl ? "inline" : "thread", (unsigned long long)rows);
    free(bv);
    tu_vfs_destroy(&tv);
    tu_rmrf(dir);
    free(dir);
  }
}

int main(void) {
  alarm(300); /* a deadlock fails the run instead of hanging it */
  test_roundtrip();
  tu_with_store_dir("scans", NULL, test_scans);
  tu_with_store_dir("txn", NULL, test_txn_overlay);
  tu_with_store_dir("many", sync_normal, test_reopen_many);
  test_memory_only();
  tu_with_store_dir("passphrase create", passphrase, test_passphrase);
  test_sync_modes();
  tu_with_store_dir("stats", NULL, test_stats);
  test_create_missing_dir();
  tu_with_store_dir("random", random_options, test_random);
  test_savepoint();
  tu_with_store_dir("presence", NULL, test_presence);
  test_segment_growth();
  test_segments_ahead();
  test_checkpoint_roll();
  return tap_done();
}
