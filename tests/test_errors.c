/*
 * tests/test_errors.c - status codes: wrong keys, bad arguments, open modes,
 * busy stores (threads of this process and other processes), read-only
 * handles, injected I/O failures that poison a handle, and kj_strerror().
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keyjournal/store.h"
#include "keyjournal/sys/vfs.h"
#include "tap.h"
#include "testutil.h"

/* ---- small helpers ------------------------------------------------------- */

/* Open expecting failure; returns the status. *out must come back NULL; a
 * detail message, if any, must be non-empty. */
static int open_fail(const char *dir, const kj_options *o, const char *what) {
  kj_store *s = (kj_store *)(uintptr_t)1; /* must be overwritten */
  char *em = NULL;
  int rc = kj_store_open(dir, o, &s, &em);
  if (rc != KJ_OK) {
    ok(s == NULL, "%s: *out is NULL on failure", what);
    ok(em == NULL || em[0] != '\0', "%s: errmsg NULL or non-empty", what);
  } else {
    kj_store_close(s);
  }
  kj_free(em);
  return rc;
}

static int get_absent(kj_store *s, kj_txn *t, unsigned table, const char *k) {
  void *got = NULL;
  size_t gl = 0;
  int rc = kj_get(s, t, table, k, strlen(k), &got, &gl);
  if (rc == KJ_OK)
    kj_free(got);
  return rc == KJ_NOTFOUND;
}

static int put_str(kj_store *s, kj_txn *t, unsigned table, const char *k,
                   const char *v) {
  return kj_put(s, t, table, k, strlen(k), v, strlen(v));
}

/* Create the store in dir with o (checked: "<what>: kj_store_open") and
 * the row k = v in table 1. */
static void store_with_row(const char *dir, const kj_options *o,
                           const char *what) {
  kj_store *s = tu_store_open_ok(dir, o, what);
  if (s != NULL) {
    put_str(s, NULL, 1, "k", "v");
    kj_store_close(s);
  }
}

static int stats_of(kj_store *s, kj_stats *st) {
  kj_stats init = KJ_STATS_INIT;
  *st = init;
  return kj_store_stats(s, st);
}

static const unsigned tabs[] = {1, 2, 3};
#define NTABS 3

static char *dump(kj_store *s) {
  char *d = NULL;
  if (tu_dump_tables(s, NULL, tabs, NTABS, &d) != KJ_OK)
    return NULL;
  return d;
}

static int str_eq(const char *a, const char *b) {
  return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static void cleanup_dir(char *dir) {
  tu_rmrf(dir);
  free(dir);
}

/* ---- kj_strerror ----------------------------------------------------------
 */

static void test_strerror(void) {
  static const int codes[] = {
      KJ_OK,     KJ_NOTFOUND, KJ_EINVAL,    KJ_EKEY,      KJ_ECORRUPT,
      KJ_EIO,    KJ_ENOSPC,   KJ_EBUSY,     KJ_EPOISONED, KJ_EFORMAT,
      KJ_ENOMEM, KJ_EEXIST,   KJ_EREADONLY, KJ_EDEADLK,
  };
  const size_t n = sizeof codes / sizeof codes[0];
  const char *fallback = "unknown keyjournal status";
  int null_or_empty = 0, dup = 0, is_fallback = 0;
  for (size_t i = 0; i < n; i++) {
    const char *a = kj_strerror(codes[i]);
    if (a == NULL || a[0] == '\0') {
      null_or_empty++;
      continue;
    }
    if (strcmp(a, fallback) == 0)
      is_fallback++;
    for (size_t j = 0; j < i; j++) {
      const char *b = kj_strerror(codes[j]);
      if (b != NULL && strcmp(a, b) == 0)
        dup++;
    }
  }
  is(null_or_empty, 0, "kj_strerror: every status has non-empty text");
  is(dup, 0, "kj_strerror: texts are distinct");
  is(is_fallback, 0, "kj_strerror: no known status gives the fallback");
  static const int unknown[] = {2, -13, -1000, 12345, -2147483647 - 1};
  int bad = 0;
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    const char *u = kj_strerror(unknown[i]);
    if (u == NULL || strcmp(u, fallback) != 0)
      bad++;
  }
  is(bad, 0, "kj_strerror: unknown codes give \"%s\"", fallback);
  is(kj_store_close(NULL), KJ_OK, "kj_store_close(NULL) is a no-op");
  kj_free(NULL);
  ok(1, "kj_free(NULL) is a no-op");
}

/* ---- wrong key -------------------------------------------------------------
 */

static void test_wrong_key(void) {
  char *dir = tu_mkdtemp(), *snap = tu_mkdtemp();
  kj_options o;
  tu_options(&o);
  kj_store *s = tu_store_open_ok(dir, &o, "wrongkey create");
  if (s == NULL)
    goto out;
  put_str(s, NULL, 1, "k", "v");
  is(kj_store_close(s), KJ_OK, "wrongkey: close");
  tu_rmrf(snap);
  ok(tu_copy_dir(dir, snap) == 0, "wrongkey: snapshot");

  /* The other raw key, also with KJ_OPEN_EXISTING, also read-only. */
  static const struct {
    kj_open_mode mode;
    int read_only;
    const char *what, *desc;
  } other[] = {
      {KJ_OPEN_CREATE, 0, "other raw key", "wrong raw key: KJ_EKEY"},
      {KJ_OPEN_EXISTING, 0, "other raw key, EXISTING",
       "wrong raw key with KJ_OPEN_EXISTING: KJ_EKEY"},
      {KJ_OPEN_EXISTING, 1, "other raw key, read-only",
       "wrong raw key read-only: KJ_EKEY"},
  };
  kj_options w;
  tu_options(&w);
  w.key = tu_key_other;
  for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
    w.mode = other[i].mode;
    w.read_only = other[i].read_only;
    is(open_fail(dir, &w, other[i].what), KJ_EKEY, "%s", other[i].desc);
  }
  tu_options_pass(&w, "a passphrase");
  is(open_fail(dir, &w, "passphrase on raw-key store"), KJ_EKEY,
     "passphrase on a raw-key store: KJ_EKEY");
  is(tu_dirs_equal(dir, snap), 1, "failed opens changed no file");

  s = tu_store_open_ok(dir, &o, "wrongkey right key");
  if (s != NULL) {
    ok(tu_get_str_eq(s, NULL, 1, "k", "v"), "right key still reads the row");
    kj_store_close(s);
  }

  /* passphrase store */
  char *pdir = tu_mkdtemp();
  kj_options p;
  tu_options_pass(&p, "right passphrase");
  s = tu_store_open_ok(pdir, &p, "passphrase create");
  if (s != NULL) {
    put_str(s, NULL, 1, "pk", "pv");
    kj_store_close(s);
  }
  kj_options wp;
  tu_options_pass(&wp, "wrong passphrase");
  is(open_fail(pdir, &wp, "wrong passphrase"), KJ_EKEY,
     "wrong passphrase: KJ_EKEY");
  tu_options_pass(&wp, "right passphras");
  is(open_fail(pdir, &wp, "truncated passphrase"), KJ_EKEY,
     "passphrase missing its last char: KJ_EKEY");
  tu_options(&wp);
  is(open_fail(pdir, &wp, "raw key on passphrase store"), KJ_EKEY,
     "raw key on a passphrase store: KJ_EKEY");
  s = tu_store_open_ok(pdir, &p, "passphrase reopen");
  if (s != NULL) {
    ok(tu_get_str_eq(s, NULL, 1, "pk", "pv"), "right passphrase reads the row");
    kj_store_close(s);
  }
  cleanup_dir(pdir);
out:
  cleanup_dir(dir);
  cleanup_dir(snap);
}

/* ---- bad arguments ------------------------------------------------------- */

typedef struct scan_write {
  kj_store *s;
  kj_txn *t;
  int put_rc, del_rc, calls;
} scan_write;

static int scan_write_cb(void *arg, const void *key, size_t klen,
                         const void *val, size_t vlen) {
  scan_write *w = arg;
  (void)key;
  (void)klen;
  (void)val;
  (void)vlen;
  w->calls++;
  w->put_rc = kj_put(w->s, w->t, 1, "from-scan", 9, "x", 1);
  w->del_rc = kj_delete(w->s, w->t, 1, "a", 1);
  return 0;
}

static int noop_cb(void *arg, const void *key, size_t klen, const void *val,
                   size_t vlen) {
  (void)arg;
  (void)key;
  (void)klen;
  (void)val;
  (void)vlen;
  return 0;
}

static void test_bad_args(void) {
  char *dir = tu_mkdtemp(), *dir2 = tu_mkdtemp();
  kj_options o;
  tu_options(&o);
  kj_store *s = tu_store_open_ok(dir, &o, "badargs");
  kj_store *s2 = tu_store_open_ok(dir2, &o, "badargs second store");
  if (s == NULL || s2 == NULL) {
    kj_store_close(s);
    kj_store_close(s2);
    cleanup_dir(dir);
    cleanup_dir(dir2);
    return;
  }
  ok(str_eq(kj_store_errmsg(s), ""), "errmsg of a fresh handle is \"\"");
  put_str(s, NULL, 1, "a", "1");
  put_str(s, NULL, 2, "b", "2");
  put_str(s2, NULL, 1, "other", "store");
  char *before = dump(s), *before2 = dump(s2);
  kj_stats st0;
  stats_of(s, &st0);

  unsigned char *bigkey = calloc(1, KJ_MAX_KEY + 1);
  unsigned char *bigval = calloc(1, (size_t)KJ_MAX_VALUE + 1);
  void *val = NULL;
  size_t vlen = 0;
  uint64_t rows = 0, bytes = 0;
  kj_stats st;

  /* NULL store */
  is(kj_get(NULL, NULL, 1, "a", 1, &val, &vlen), KJ_EINVAL, "get NULL store");
  is(kj_put(NULL, NULL, 1, "a", 1, "v", 1), KJ_EINVAL, "put NULL store");
  is(kj_delete(NULL, NULL, 1, "a", 1), KJ_EINVAL, "delete NULL store");
  is(kj_scan_prefix(NULL, NULL, 1, NULL, 0, noop_cb, NULL), KJ_EINVAL,
     "scan_prefix NULL store");
  is(kj_scan_range(NULL, NULL, 1, NULL, 0, NULL, 0, noop_cb, NULL), KJ_EINVAL,
     "scan_range NULL store");
  {
    kj_txn *t = NULL;
    is(kj_txn_begin(NULL, 0, &t), KJ_EINVAL, "txn_begin NULL store");
    ok(t == NULL, "txn_begin NULL store: no txn");
  }
  is(stats_of(NULL, &st), KJ_EINVAL, "stats NULL store");
  is(kj_table_count(NULL, 1, &rows, &bytes), KJ_EINVAL, "table_count NULL");
  is(kj_store_sync(NULL), KJ_EINVAL, "store_sync NULL store");

  /* NULL / empty / oversize keys */
  is(kj_get(s, NULL, 1, NULL, 1, &val, &vlen), KJ_EINVAL, "get NULL key");
  is(kj_put(s, NULL, 1, NULL, 1, "v", 1), KJ_EINVAL, "put NULL key");
  is(kj_delete(s, NULL, 1, NULL, 1), KJ_EINVAL, "delete NULL key");
  is(kj_get(s, NULL, 1, "a", 0, &val, &vlen), KJ_EINVAL, "get klen 0");
  is(kj_put(s, NULL, 1, "a", 0, "v", 1), KJ_EINVAL, "put klen 0");
  is(kj_delete(s, NULL, 1, "a", 0), KJ_EINVAL, "delete klen 0");
  is(kj_put(s, NULL, 1, NULL, 0, "v", 1), KJ_EINVAL, "put NULL key klen 0");
  is(kj_get(s, NULL, 1, bigkey, KJ_MAX_KEY + 1, &val, &vlen), KJ_EINVAL,
     "get klen KJ_MAX_KEY+1");
  is(kj_put(s, NULL, 1, bigkey, KJ_MAX_KEY + 1, "v", 1), KJ_EINVAL,
     "put klen KJ_MAX_KEY+1");
  is(kj_delete(s, NULL, 1, bigkey, KJ_MAX_KEY + 1), KJ_EINVAL,
     "delete klen KJ_MAX_KEY+1");
  /* values */
  is(kj_put(s, NULL, 1, "big", 3, bigval, (size_t)KJ_MAX_VALUE + 1), KJ_EINVAL,
     "put vlen KJ_MAX_VALUE+1");
  is(kj_put(s, NULL, 1, "nul", 3, NULL, 5), KJ_EINVAL, "put NULL val, vlen 5");
  /* table ids */
  static const unsigned badt[] = {0, KJ_TABLE_MAX + 1, 1000};
  for (size_t i = 0; i < 3; i++) {
    unsigned tb = badt[i];
    is(kj_get(s, NULL, tb, "a", 1, &val, &vlen), KJ_EINVAL, "get table %u", tb);
    is(kj_put(s, NULL, tb, "a", 1, "v", 1), KJ_EINVAL, "put table %u", tb);
    is(kj_delete(s, NULL, tb, "a", 1), KJ_EINVAL, "delete table %u", tb);
    is(kj_scan_prefix(s, NULL, tb, NULL, 0, noop_cb, NULL), KJ_EINVAL,
       "scan_prefix table %u", tb);
    is(kj_scan_range(s, NULL, tb, NULL, 0, NULL, 0, noop_cb, NULL), KJ_EINVAL,
       "scan_range table %u", tb);
    is(kj_table_count(s, tb, &rows, &bytes), KJ_EINVAL, "table_count %u", tb);
  }
  /* NULL out pointers */
  is(kj_get(s, NULL, 1, "a", 1, NULL, &vlen), KJ_EINVAL, "get NULL val out");
  is(kj_get(s, NULL, 1, "a", 1, &val, NULL), KJ_EINVAL, "get NULL vlen out");
  is(kj_txn_begin(s, 0, NULL), KJ_EINVAL, "txn_begin NULL out");
  is(kj_txn_begin(s, KJ_TXN_READONLY, NULL), KJ_EINVAL,
     "txn_begin read-only NULL out");
  is(kj_store_stats(s, NULL), KJ_EINVAL, "stats NULL out");
  is(kj_scan_prefix(s, NULL, 1, NULL, 0, NULL, NULL), KJ_EINVAL,
     "scan_prefix NULL callback");
  is(kj_scan_range(s, NULL, 1, NULL, 0, NULL, 0, NULL, NULL), KJ_EINVAL,
     "scan_range NULL callback");
  is(kj_txn_commit(NULL), KJ_EINVAL, "kj_txn_commit(NULL)");
  kj_txn_rollback(NULL);

  ok(kj_store_errmsg(s) != NULL && kj_store_errmsg(s)[0] != '\0',
     "errmsg non-empty after KJ_EINVAL");
  {
    char buf[8];
    memset(buf, 'X', sizeof buf);
    kj_store_errmsg_copy(s, buf, sizeof buf);
    ok(memchr(buf, '\0', sizeof buf) != NULL, "errmsg_copy NUL-terminates");
    ok(strncmp(buf, kj_store_errmsg(s), strlen(buf)) == 0 &&
           strlen(buf) == (strlen(kj_store_errmsg(s)) < 7
                               ? strlen(kj_store_errmsg(s))
                               : 7),
       "errmsg_copy truncates to len-1");
    memset(buf, 'X', sizeof buf);
    kj_store_errmsg_copy(s, buf, 0);
    ok(buf[0] == 'X', "errmsg_copy with len 0 writes nothing");
  }

  /* bad arguments inside a transaction: refused, txn goes on */
  {
    kj_txn *t = NULL;
    is(kj_txn_begin(s, 0, &t), KJ_OK, "begin txn");
    if (t != NULL) {
      is(put_str(s, t, 1, "in-txn", "ok"), KJ_OK, "valid put in txn");
      is(kj_put(s, t, 0, "x", 1, "v", 1), KJ_EINVAL, "txn put table 0");
      is(kj_put(s, t, 1, "x", 0, "v", 1), KJ_EINVAL, "txn put klen 0");
      is(kj_put(s, t, 1, bigkey, KJ_MAX_KEY + 1, "v", 1), KJ_EINVAL,
         "txn put oversize key");
      is(kj_put(s, t, 1, "big", 3, bigval, (size_t)KJ_MAX_VALUE + 1), KJ_EINVAL,
         "txn put oversize value");
      is(kj_delete(s, t, 256, "a", 1), KJ_EINVAL, "txn delete table 256");
      /* a transaction of one store used with another */
      is(put_str(s2, t, 1, "cross", "x"), KJ_EINVAL,
         "put with another store's txn");
      is(kj_delete(s2, t, 1, "other", 5), KJ_EINVAL,
         "delete with another store's txn");
      is(kj_get(s2, t, 1, "other", 5, &val, &vlen), KJ_EINVAL,
         "get with another store's txn");
      is(kj_scan_prefix(s2, t, 1, NULL, 0, noop_cb, NULL), KJ_EINVAL,
         "scan with another store's txn");
      /* close with an open transaction */
      is(kj_store_close(s), KJ_EINVAL, "close with an open txn: KJ_EINVAL");
      ok(tu_get_str_eq(s, t, 1, "a", "1"), "handle and txn still usable");
      /* writes from a scan callback through the same txn */
      scan_write w = {s, t, 99, 99, 0};
      is(kj_scan_prefix(s, t, 1, NULL, 0, scan_write_cb, &w), KJ_OK,
         "scan with writing callback completes");
      ok(w.calls > 0, "callback ran");
      is(w.put_rc, KJ_EINVAL, "put from scan callback: KJ_EINVAL");
      is(w.del_rc, KJ_EINVAL, "delete from scan callback: KJ_EINVAL");
      ok(get_absent(s, t, 1, "from-scan"), "callback's put not applied");
      ok(tu_get_str_eq(s, t, 1, "a", "1"), "callback's delete not applied");
      is(kj_txn_commit(t), KJ_OK, "txn commits after refused calls");
    }
    ok(tu_get_str_eq(s, NULL, 1, "in-txn", "ok"), "txn's valid put committed");
    is(kj_delete(s, NULL, 1, "in-txn", 6), KJ_OK, "undo it");
  }

  /* a read-only transaction refuses writes */
  {
    kj_txn *t = NULL;
    is(kj_txn_begin(s, KJ_TXN_READONLY, &t), KJ_OK, "begin read-only txn");
    if (t != NULL) {
      is(put_str(s, t, 1, "ro", "x"), KJ_EINVAL,
         "put through a read-only txn: KJ_EINVAL");
      is(kj_delete(s, t, 1, "a", 1), KJ_EINVAL,
         "delete through a read-only txn: KJ_EINVAL");
      ok(tu_get_str_eq(s, t, 1, "a", "1"), "read-only txn still reads");
      is(kj_txn_commit(t), KJ_OK, "commit read-only txn");
    }
  }

  char *after = dump(s), *after2 = dump(s2);
  ok(str_eq(after, before), "bad arguments changed nothing in the store");
  ok(str_eq(after2, before2), "nor in the other store");
  kj_stats st1;
  stats_of(s, &st1);
  is(st1.rows, st0.rows, "rows unchanged");
  is(st1.poisoned, 0, "not poisoned by bad arguments");
  free(after);
  free(after2);
  free(before);
  free(before2);
  free(bigkey);
  free(bigval);
  is(kj_store_close(s), KJ_OK, "close");
  is(kj_store_close(s2), KJ_OK, "close second store");
  cleanup_dir(dir);
  cleanup_dir(dir2);
}

/* ---- bad options -----------------------------------------------------------
 */

static void test_bad_options(void) {
  char *dir = tu_mkdtemp();
  kj_options o;
  kj_store *s = NULL;

  tu_options(&o);
  is(kj_store_open(dir, NULL, &s, NULL), KJ_EINVAL, "open NULL options");
  ok(s == NULL, "no handle");
  is(kj_store_open(dir, &o, NULL, NULL), KJ_EINVAL, "open NULL out");

  tu_options(&o);
  o.key = NULL;
  is(open_fail(dir, &o, "no key"), KJ_EINVAL, "neither key nor passphrase");
  tu_options(&o);
  o.passphrase = "both";
  is(open_fail(dir, &o, "both"), KJ_EINVAL, "both key and passphrase");
  tu_options(&o);
  o.segment_bytes = 1024;
  is(open_fail(dir, &o, "tiny segments"), KJ_EINVAL,
     "segment_bytes below 4 KiB");
  tu_options_pass(&o, "pw");
  o.pwhash_memlimit = 4096;
  is(open_fail(dir, &o, "pwhash memlimit"), KJ_EINVAL,
     "pwhash_memlimit below 8 KiB");
  tu_options(&o);
  o.sync = (kj_sync)17;
  is(open_fail(dir, &o, "bad sync"), KJ_EINVAL, "unknown sync mode");
  tu_options(&o);
  o.mode = (kj_open_mode)9;
  is(open_fail(dir, &o, "bad mode"), KJ_EINVAL, "unknown open mode");
  tu_options(&o);
  o.key = NULL;
  is(open_fail(NULL, &o, "memory, no key"), KJ_EINVAL,
     "memory-only store still needs a key");
  is(tu_count_entries(dir), 0, "rejected options created no file");
  cleanup_dir(dir);
}

/* ---- open modes and non-stores ---------------------------------------------
 */

static void garble_one(void *arg, const char *dir, const char *name) {
  tu_rng *r = arg;
  char *p = tu_path(dir, name);
  long long n = tu_file_size(p);
  if (n < 64)
    n = 64;
  unsigned char *b = malloc((size_t)n);
  tu_rng_fill(r, b, (size_t)n);
  tu_write_file(p, b, (size_t)n);
  free(b);
  free(p);
}

static void test_open_modes(void) {
  char *dir = tu_mkdtemp();
  kj_options o;
  tu_options(&o);

  o.mode = KJ_OPEN_EXISTING;
  is(open_fail(dir, &o, "EXISTING on empty dir"), KJ_NOTFOUND,
     "KJ_OPEN_EXISTING on an empty dir: KJ_NOTFOUND");
  is(open_fail(dir, &o, "EXISTING on empty dir again"), KJ_NOTFOUND,
     "... and still KJ_NOTFOUND the second time");
  char *missing = tu_path(dir, "missing");
  is(open_fail(missing, &o, "EXISTING on missing dir"), KJ_NOTFOUND,
     "KJ_OPEN_EXISTING on a missing dir: KJ_NOTFOUND");
  free(missing);

  o.mode = KJ_OPEN_CREATE_NEW;
  kj_store *s = tu_store_open_ok(dir, &o, "CREATE_NEW on empty dir");
  if (s != NULL) {
    put_str(s, NULL, 1, "keep", "me");
    kj_store_close(s);
  }
  is(open_fail(dir, &o, "CREATE_NEW on store"), KJ_EEXIST,
     "KJ_OPEN_CREATE_NEW on an existing store: KJ_EEXIST");
  o.mode = KJ_OPEN_EXISTING;
  s = tu_store_open_ok(dir, &o, "EXISTING on store");
  if (s != NULL) {
    ok(tu_get_str_eq(s, NULL, 1, "keep", "me"), "CREATE_NEW refusal kept data");
    kj_store_close(s);
  }
  o.mode = KJ_OPEN_CREATE;
  s = tu_store_open_ok(dir, &o, "CREATE on store");
  if (s != NULL) {
    ok(tu_get_str_eq(s, NULL, 1, "keep", "me"),
       "CREATE opens the existing one");
    kj_store_close(s);
  }

  /* a directory of unrelated files is "no store" */
  char *junk = tu_mkdtemp(), *junk_snap = tu_mkdtemp();
  {
    char *p1 = tu_path(junk, "notes.txt"), *p2 = tu_path(junk, "random.bin");
    tu_rng r;
    tu_rng_seed(&r, 99);
    unsigned char b[3000];
    tu_rng_fill(&r, b, sizeof b);
    tu_write_file(p1, "hello, not a store\n", 19);
    tu_write_file(p2, b, sizeof b);
    free(p1);
    free(p2);
  }
  tu_copy_dir(junk, junk_snap);
  o.mode = KJ_OPEN_EXISTING;
  is(open_fail(junk, &o, "junk dir EXISTING"), KJ_NOTFOUND,
     "dir with random files and no header: KJ_NOTFOUND");
  is(tu_dirs_equal(junk, junk_snap), 1, "junk files untouched");
  o.read_only = 1;
  o.mode = KJ_OPEN_CREATE;
  int rc = open_fail(junk, &o, "junk dir read-only");
  ok(rc != KJ_OK, "read-only open of a non-store fails (%d)", rc);
  is(tu_dirs_equal(junk, junk_snap), 1, "read-only open created nothing");
  o.read_only = 0;

  /* a store whose files were overwritten with garbage (bad magic) */
  char *garb = tu_mkdtemp();
  tu_options(&o);
  store_with_row(garb, &o, "store to garble");
  tu_rng r;
  tu_rng_seed(&r, 1234);
  ok(tu_for_each_file(garb, garble_one, &r) > 0, "garbled every file");
  is(open_fail(garb, &o, "garbage header CREATE"), KJ_EKEY,
     "header with garbage magic: KJ_EKEY (not a store)");
  o.mode = KJ_OPEN_EXISTING;
  is(open_fail(garb, &o, "garbage header EXISTING"), KJ_EKEY,
     "garbage header with KJ_OPEN_EXISTING: KJ_EKEY");
  o.mode = KJ_OPEN_CREATE_NEW;
  rc = open_fail(garb, &o, "garbage header CREATE_NEW");
  ok(rc == KJ_EEXIST || rc == KJ_EKEY,
     "CREATE_NEW over a garbage header refuses (%d)", rc);

  /* only the header (doc/FORMAT.md: keyjournal.hdr) replaced by garbage
   * of the same size; the journal intact */
  {
    char *hd = tu_mkdtemp();
    tu_options(&o);
    store_with_row(hd, &o, "store for a garbage header");
    char *hp = tu_path(hd, "keyjournal.hdr");
    long long hn = tu_file_size(hp);
    ok(hn > 8, "header file exists (%lld bytes)", hn);
    if (hn > 8) {
      unsigned char *g = malloc((size_t)hn);
      tu_rng_fill(&r, g, (size_t)hn);
      memcpy(g, "NOTASTOR", 8);
      tu_write_file(hp, g, (size_t)hn);
      free(g);
      is(open_fail(hd, &o, "garbage magic"), KJ_EKEY,
         "header file with garbage magic: KJ_EKEY");
      o.mode = KJ_OPEN_EXISTING;
      is(open_fail(hd, &o, "garbage magic EXISTING"), KJ_EKEY,
         "... also with KJ_OPEN_EXISTING");
      o.read_only = 1;
      is(open_fail(hd, &o, "garbage magic read-only"), KJ_EKEY,
         "... also read-only");
      tu_write_file(hp, "", 0);
      o.read_only = 0;
      o.mode = KJ_OPEN_CREATE;
      rc = open_fail(hd, &o, "empty header file");
      ok(rc == KJ_EKEY || rc == KJ_ECORRUPT,
         "empty header file: KJ_EKEY or KJ_ECORRUPT, not a new store (%d)", rc);
    }
    free(hp);
    cleanup_dir(hd);
  }

  /* a path that is a regular file */
  char *file = tu_path(dir, "plainfile");
  tu_write_file(file, "x", 1);
  tu_options(&o);
  rc = open_fail(file, &o, "regular file as dir");
  ok(rc != KJ_OK, "open of a regular file as store dir fails (%d)", rc);
  free(file);

  cleanup_dir(garb);
  cleanup_dir(junk);
  cleanup_dir(junk_snap);
  cleanup_dir(dir);
}

/* ---- busy stores ------------------------------------------------------- */

/* Fork a child that waits for a byte on a pipe, tells the parent (second
 * pipe) that it is about to open, opens dir with the given timeout and exits
 * with a code describing the outcome. */
enum { CHILD_OK = 0, CHILD_NOT_WAITED = 51, CHILD_BAD_READ = 52 };

static int child_code(int rc) { return 100 + rc; }

static pid_t spawn_opener(const char *dir, uint32_t timeout_ms, int want_row,
                          int min_wait_ms, int *wfd, int *rfd) {
  int go[2], ready[2];
  if (pipe(go) != 0)
    return -1;
  if (pipe(ready) != 0) {
    close(go[0]);
    close(go[1]);
    return -1;
  }
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    close(go[1]);
    close(ready[0]);
    alarm(20);
    char c;
    if (read(go[0], &c, 1) != 1)
      _exit(60);
    kj_options o;
    tu_options(&o);
    o.busy_timeout_ms = timeout_ms;
    kj_store *s = NULL;
    int64_t t0 = tu_now_ms();
    if (write(ready[1], "r", 1) != 1)
      _exit(61);
    int rc = kj_store_open(dir, &o, &s, NULL);
    int64_t waited = tu_now_ms() - t0;
    if (rc != KJ_OK)
      _exit(child_code(rc));
    int code = CHILD_OK;
    if (want_row && !tu_get_str_eq(s, NULL, 1, "parent", "again"))
      code = CHILD_BAD_READ;
    else if (waited < min_wait_ms)
      code = CHILD_NOT_WAITED;
    kj_store_close(s);
    _exit(code);
  }
  close(go[0]);
  close(ready[1]);
  if (pid < 0) {
    close(go[1]);
    close(ready[0]);
    return -1;
  }
  *wfd = go[1];
  *rfd = ready[0];
  return pid;
}

static int wait_child(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, 0) != pid)
    return -1;
  if (!WIFEXITED(status))
    return -2;
  return WEXITSTATUS(status);
}

static void test_busy(void) {
  char *dir = tu_mkdtemp();
  kj_options o;
  tu_options(&o);

  /* another process, timeout 0: KJ_EBUSY at once */
  int wfd = -1, rfd = -1;
  char c;
  pid_t pid = spawn_opener(dir, 0, 0, 0, &wfd, &rfd);
  ok(pid > 0, "fork child (EBUSY)");
  kj_store *s = tu_store_open_ok(dir, &o, "busy parent");
  if (pid > 0) {
    ok(write(wfd, "g", 1) == 1, "signal child");
    close(wfd);
    ok(read(rfd, &c, 1) == 1, "child is opening");
    close(rfd);
    is(wait_child(pid), child_code(KJ_EBUSY),
       "child process open with busy_timeout_ms 0: KJ_EBUSY");
  }

  /* this process, second handle */
  if (s != NULL) {
    put_str(s, NULL, 1, "parent", "wrote");
    kj_options o2;
    tu_options(&o2);
    int64_t t0 = tu_now_ms();
    is(open_fail(dir, &o2, "second open"), KJ_EBUSY,
       "second open in the same process: KJ_EBUSY");
    ok(tu_now_ms() - t0 < 1000, "busy_timeout_ms 0 fails at once");
    o2.busy_timeout_ms = 300;
    t0 = tu_now_ms();
    is(open_fail(dir, &o2, "second open, 300 ms"), KJ_EBUSY,
       "second open with timeout: KJ_EBUSY");
    int64_t waited = tu_now_ms() - t0;
    ok(waited >= 250 && waited < 5000, "waited about the timeout (%lld ms)",
       (long long)waited);
    /* A read-only open beside the writer neither waits nor fails
     * (store.h, "Processes"). It reads every commit whose frame is
     * written; with read_durable only those known durable (FORMAT.md rule
     * 5.9): the lone commit's own sync is not on disk for it to see, until
     * a sync marker (kj_store_sync) shows it. */
    o2.read_only = 1;
    o2.busy_timeout_ms = 5000;
    kj_store *r = NULL;
    t0 = tu_now_ms();
    r = tu_store_open_ok(dir, &o2, "read-only open while a writer holds it");
    ok(tu_now_ms() - t0 < 1000, "it did not wait for the writer");
    if (r != NULL) {
      ok(tu_get_str_eq(r, NULL, 1, "parent", "wrote"),
         "beside the writer: its commit is read");
      is(kj_store_close(r), KJ_OK, "close the reader");
    }
    o2.read_durable = 1;
    r = tu_store_open_ok(dir, &o2, "read_durable beside the writer");
    if (r != NULL) {
      void *v = NULL;
      size_t vl = 0;
      is(kj_get(r, NULL, 1, "parent", 6, &v, &vl), KJ_NOTFOUND,
         "read_durable: a commit no frame on disk shows durable is not read");
      kj_free(v);
      is(kj_store_close(r), KJ_OK, "close the reader");
    }
    is(kj_store_sync(s), KJ_OK, "the writer writes a sync marker");
    r = tu_store_open_ok(dir, &o2, "read_durable after the marker");
    if (r != NULL) {
      ok(tu_get_str_eq(r, NULL, 1, "parent", "wrote"),
         "read_durable: the commit the marker shows durable is read");
      put_str(s, NULL, 1, "parent", "again");
      ok(tu_get_str_eq(r, NULL, 1, "parent", "wrote"),
         "the reader keeps the state of its open");
      is(kj_store_close(r), KJ_OK, "close the second reader");
    }
    is(kj_store_close(s), KJ_OK, "close parent handle");
    s = NULL;
  }

  /* another process waits with busy_timeout_ms 3000 while we hold it */
  /* the child's clock starts before it tells us it is opening, and we
   * hold the store 100 ms after hearing that: it must wait >= 100 ms */
  pid = spawn_opener(dir, 3000, 1, 100, &wfd, &rfd);
  ok(pid > 0, "fork child (waiter)");
  s = tu_store_open_ok(dir, &o, "holder");
  if (pid > 0) {
    ok(write(wfd, "g", 1) == 1, "signal waiter");
    close(wfd);
    ok(read(rfd, &c, 1) == 1, "waiter is opening");
    close(rfd);
    tu_sleep_ms(100);
    if (s != NULL)
      is(kj_store_close(s), KJ_OK, "holder closes after 100 ms");
    s = NULL;
    is(wait_child(pid), CHILD_OK,
       "child waited for the store, then opened and read it");
  }
  kj_store_close(s);

  /* after the child closed, we can open again */
  s = tu_store_open_ok(dir, &o, "reopen after child");
  kj_store_close(s);

  /* Read-only handles hold no lock once open (doc/FORMAT.md section 1): a
   * writer opens beside them, and they keep the state of their open. */
  tu_options(&o);
  o.read_only = 1;
  kj_store *r1 = tu_store_open_ok(dir, &o, "read-only 1");
  kj_store *r2 = tu_store_open_ok(dir, &o, "read-only 2 alongside");
  if (r1 != NULL && r2 != NULL) {
    ok(tu_get_str_eq(r2, NULL, 1, "parent", "again"), "both read-only read");
    kj_options w;
    tu_options(&w);
    kj_store *ws = tu_store_open_ok(dir, &w, "writer while readers");
    if (ws != NULL) {
      put_str(ws, NULL, 1, "parent", "third");
      ok(tu_get_str_eq(r1, NULL, 1, "parent", "again"),
         "a reader keeps its state while a writer commits");
      is(kj_store_close(ws), KJ_OK, "close the writer");
    }
  }
  kj_store_close(r1);
  kj_store_close(r2);

  /* The lock is on the store directory itself (doc/FORMAT.md section 1):
   * no lock file exists, so a store restored from a copy cannot lack one,
   * and a read-only open creates nothing. */
  {
    char *lock = tu_path(dir, "LOCK");
    ok(tu_file_size(lock) < 0, "no lock file in the store directory");
    int n0 = tu_count_entries(dir);
    kj_store *r = tu_store_open_ok(dir, &o, "read-only, directory lock");
    if (r != NULL) {
      is(tu_count_entries(dir), n0, "read-only open created no file");
      ok(tu_get_str_eq(r, NULL, 1, "parent", "third"),
         "after the writer's clean close everything is read");
      kj_options w;
      tu_options(&w);
      is(open_fail(dir, &w, "writer vs reader"), KJ_OK,
         "writer open while a read-only handle is open");
      kj_store_close(r);
    }
    free(lock);
  }
  cleanup_dir(dir);
}

/* ---- read-only handles -------------------------------------------------- */

static void test_read_only(const char *dir, const kj_options *created,
                           kj_store *s) {
  put_str(s, NULL, 1, "a", "1");
  put_str(s, NULL, 2, "b", "2");
  char *want = dump(s);
  kj_store_close(s);
  char *snap = tu_mkdtemp();
  tu_rmrf(snap);
  tu_copy_dir(dir, snap);

  kj_options o = *created;
  o.read_only = 1;
  s = tu_store_open_ok(dir, &o, "ro open");
  if (s != NULL) {
    kj_stats st;
    is(stats_of(s, &st), KJ_OK, "ro: stats");
    is(st.read_only, 1, "ro: stats.read_only == 1");
    char *got = dump(s);
    ok(str_eq(got, want), "ro: reads the committed state");
    free(got);
    is(put_str(s, NULL, 1, "x", "y"), KJ_EREADONLY, "ro: put KJ_EREADONLY");
    ok(kj_store_errmsg(s)[0] != '\0', "ro: errmsg set");
    is(kj_delete(s, NULL, 1, "a", 1), KJ_EREADONLY, "ro: delete KJ_EREADONLY");
    is(kj_delete(s, NULL, 1, "absent", 6), KJ_EREADONLY,
       "ro: delete of an absent key KJ_EREADONLY");
    kj_txn *t = NULL;
    is(kj_txn_begin(s, 0, &t), KJ_EREADONLY, "ro: write txn KJ_EREADONLY");
    ok(t == NULL, "ro: no txn returned");
    t = NULL;
    is(kj_txn_begin(s, KJ_TXN_READONLY, &t), KJ_OK, "ro: read-only txn ok");
    if (t != NULL) {
      ok(tu_get_str_eq(s, t, 2, "b", "2"), "ro: read in read-only txn");
      kj_txn_rollback(t);
    }
    got = dump(s);
    ok(str_eq(got, want), "ro: state unchanged after refused writes");
    free(got);
    is(kj_store_close(s), KJ_OK, "ro: close");
  }
  is(tu_dirs_equal(dir, snap), 1, "ro: no file changed");

  /* read-only open of an empty directory creates nothing */
  char *empty = tu_mkdtemp();
  int rc = open_fail(empty, &o, "ro on empty dir");
  ok(rc != KJ_OK, "ro: open of an empty dir fails (%d)", rc);
  is(tu_count_entries(empty), 0, "ro: nothing created in an empty dir");
  cleanup_dir(empty);

  free(want);
  cleanup_dir(snap);
}

/* ---- injected failures poison the handle ----------------------------- */

/* The base state and the failing transaction, so that the two acceptable
 * outcomes can be computed in a memory-only store. */
static void apply_base(kj_store *s) {
  put_str(s, NULL, 1, "a", "base-a");
  put_str(s, NULL, 1, "b", "base-b");
  put_str(s, NULL, 2, "c", "base-c");
  put_str(s, NULL, 3, "gone", "soon");
}

static int apply_failing(kj_store *s, int null_txn) {
  if (null_txn)
    return put_str(s, NULL, 1, "new", "row");
  kj_txn *t = NULL;
  int rc = kj_txn_begin(s, 0, &t);
  if (rc != KJ_OK)
    return rc;
  put_str(s, t, 1, "new", "row");
  put_str(s, t, 1, "a", "changed");
  kj_delete(s, t, 3, "gone", 4);
  return kj_txn_commit(t);
}

static char *expected_state(int with_failing, int null_txn) {
  kj_options o;
  tu_options(&o);
  kj_store *m = NULL;
  if (kj_store_open(NULL, &o, &m, NULL) != KJ_OK)
    return NULL;
  apply_base(m);
  if (with_failing)
    apply_failing(m, null_txn);
  char *d = dump(m);
  kj_store_close(m);
  return d;
}

static void poison_case(const char *name, kj_sync sync, tu_method method,
                        int status, unsigned flags, int null_txn) {
  char *dir = tu_mkdtemp();
  tu_vfs tv;
  kj_options o;
  tu_options_vfs(&o, &tv);
  o.sync = sync;
  char *s0 = expected_state(0, null_txn), *s1 = expected_state(1, null_txn);
  ok(s0 != NULL && s1 != NULL && strcmp(s0, s1) != 0,
     "%s: expected states computed", name);
  kj_store *s = tu_store_open_ok(dir, &o, name);
  if (s == NULL)
    goto out;
  apply_base(s);
  char *d = dump(s);
  ok(str_eq(d, s0), "%s: base state", name);
  free(d);

  tu_vfs_arm(&tv, method, 1, status, flags);
  int rc = apply_failing(s, null_txn);
  tu_vfs_disarm(&tv);
  ok(tu_vfs_injected(&tv) >= 1, "%s: the %s failure was injected", name,
     tu_method_name(method));
  is(rc, status, "%s: commit returns %s", name, kj_strerror(status));
  ok(kj_store_errmsg(s)[0] != '\0', "%s: errmsg set", name);

  /* reads still work and show the state before the failed commit */
  ok(get_absent(s, NULL, 1, "new"), "%s: failed commit's row not visible",
     name);
  d = dump(s);
  ok(str_eq(d, s0), "%s: reads show the pre-failure state", name);
  free(d);
  kj_stats st;
  is(stats_of(s, &st), KJ_OK, "%s: stats work", name);
  is(st.poisoned, 1, "%s: stats.poisoned", name);

  /* writes are refused */
  is(put_str(s, NULL, 1, "later", "x"), KJ_EPOISONED, "%s: put EPOISONED",
     name);
  is(kj_delete(s, NULL, 1, "a", 1), KJ_EPOISONED, "%s: delete EPOISONED", name);
  kj_txn *t = NULL;
  is(kj_txn_begin(s, 0, &t), KJ_EPOISONED, "%s: begin EPOISONED", name);
  if (t != NULL)
    kj_txn_rollback(t);
  ok(kj_store_sync(s) != KJ_OK, "%s: kj_store_sync refused", name);
  t = NULL;
  is(kj_txn_begin(s, KJ_TXN_READONLY, &t), KJ_OK,
     "%s: read-only txn still allowed", name);
  if (t != NULL) {
    ok(tu_get_str_eq(s, t, 1, "a", "base-a"), "%s: read in read-only txn",
       name);
    kj_txn_rollback(t);
  }
  d = dump(s);
  ok(str_eq(d, s0), "%s: still the pre-failure state", name);
  free(d);
  kj_store_close(s); /* status unspecified for a poisoned handle */

  /* reopen (plain POSIX VFS): one of the two consistent states */
  kj_options p;
  tu_options(&p);
  p.sync = sync;
  s = tu_store_open_ok(dir, &p, "reopen after poison");
  if (s != NULL) {
    d = dump(s);
    int before = str_eq(d, s0), with = str_eq(d, s1);
    ok(before || with,
       "%s: reopened state is the pre-failure state or includes the whole "
       "failed commit",
       name);
    printf("# %s: after reopen the store holds %s\n", name,
           before ? "the state before the failed commit"
           : with ? "the failed commit too"
                  : "NEITHER allowed state");
    free(d);
    is(stats_of(s, &st), KJ_OK, "%s: stats after reopen", name);
    is(st.poisoned, 0, "%s: reopened handle not poisoned", name);
    is(put_str(s, NULL, 2, "after", "reopen"), KJ_OK, "%s: writes work again",
       name);
    ok(tu_get_str_eq(s, NULL, 2, "after", "reopen"), "%s: and read back", name);
    char *want = dump(s);
    kj_store_close(s);
    s = tu_store_open_ok(dir, &p, "second reopen after poison");
    if (s != NULL) {
      d = dump(s);
      ok(str_eq(d, want), "%s: post-recovery write survives reopen", name);
      free(d);
      kj_store_close(s);
    }
    free(want);
  }
out:
  free(s0);
  free(s1);
  tu_vfs_destroy(&tv);
  cleanup_dir(dir);
}

static void test_poison(void) {
  poison_case("sync EIO", KJ_SYNC_FULL, TU_SYNC, KJ_EIO, TU_ARM_ONCE, 0);
  poison_case("sync EIO persistent, autocommit put", KJ_SYNC_FULL, TU_SYNC,
              KJ_EIO, TU_ARM_PERSIST, 1);
  poison_case("write ENOSPC", KJ_SYNC_FULL, TU_WRITE, KJ_ENOSPC, TU_ARM_ONCE,
              0);
  poison_case("torn write ENOSPC", KJ_SYNC_FULL, TU_WRITE, KJ_ENOSPC,
              TU_ARM_PARTIAL, 0);
  poison_case("write EIO, SYNC_NORMAL", KJ_SYNC_NORMAL, TU_WRITE, KJ_EIO,
              TU_ARM_ONCE, 0);
}

/* ---- failures while opening / creating --------------------------------------
 */

static void test_open_failures(void) {
  char *dir = tu_mkdtemp();
  tu_vfs tv;
  kj_options o;
  tu_options_vfs(&o, &tv);
  store_with_row(dir, &o, "openfail create");

  tu_vfs_arm(&tv, TU_READ, 1, KJ_EIO, TU_ARM_PERSIST);
  is(open_fail(dir, &o, "read EIO"), KJ_EIO, "open with failing reads: KJ_EIO");
  ok(tu_vfs_injected(&tv) > 0, "read failure injected");
  tu_vfs_disarm(&tv);
  uint64_t inj = tu_vfs_injected(&tv);
  tu_vfs_arm(&tv, TU_OPEN, 1, KJ_EIO, TU_ARM_PERSIST);
  is(open_fail(dir, &o, "open EIO"), KJ_EIO,
     "open with failing open(): KJ_EIO");
  ok(tu_vfs_injected(&tv) > inj, "open failure injected");
  tu_vfs_disarm(&tv);
  kj_store *s = tu_store_open_ok(dir, &o, "open after injected failures");
  if (s != NULL) {
    ok(tu_get_str_eq(s, NULL, 1, "k", "v"), "data intact after failed opens");
    kj_store_close(s);
  }

  /* a failure while creating a store must leave a directory that a retry
   * can create (or open) */
  static const tu_method ms[] = {TU_WRITE, TU_SYNC, TU_RENAME, TU_SYNC_DIR,
                                 TU_OPEN};
  for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
    char *d = tu_mkdtemp();
    const char *mn = tu_method_name(ms[i]);
    inj = tu_vfs_injected(&tv);
    tu_vfs_arm(&tv, ms[i], 1, KJ_EIO, TU_ARM_PERSIST);
    kj_store *c = NULL;
    int rc = kj_store_open(d, &o, &c, NULL);
    tu_vfs_disarm(&tv);
    int fired = tu_vfs_injected(&tv) > inj;
    if (fired) {
      is(rc, KJ_EIO, "create with failing %s: KJ_EIO", mn);
      ok(c == NULL, "create with failing %s: no handle", mn);
    } else {
      is(rc, KJ_OK, "create does not use %s: succeeds", mn);
    }
    kj_store_close(c);
    c = NULL;
    char *em = NULL;
    rc = kj_store_open(d, &o, &c, &em);
    is(rc, KJ_OK, "retry after failing %s during create succeeds", mn);
    if (rc != KJ_OK && em != NULL)
      printf("# %s\n", em);
    kj_free(em);
    if (c != NULL) {
      is(put_str(c, NULL, 1, "k", mn), KJ_OK, "write after retry (%s)", mn);
      kj_store_close(c);
      kj_options e;
      tu_options(&e);
      e.mode = KJ_OPEN_EXISTING;
      c = tu_store_open_ok(d, &e, "reopen after retry");
      if (c != NULL) {
        ok(tu_get_str_eq(c, NULL, 1, "k", mn), "retried store holds data (%s)",
           mn);
        kj_store_close(c);
      }
    }
    cleanup_dir(d);
  }
  tu_vfs_destroy(&tv);
  cleanup_dir(dir);
}

/* ---- closing ------------------------------------------------------------ */

/* Kept reachable so that, if close frees the handle under an open
 * read-only txn, the dangling txn is not also reported as a leak. */
static kj_txn *volatile dangling_txn;

static void test_close(void) {
  char *dir = tu_mkdtemp();
  kj_options o;
  tu_options(&o);
  kj_store *s = tu_store_open_ok(dir, &o, "close ro txn");
  if (s != NULL) {
    put_str(s, NULL, 1, "k", "v");
    kj_txn *t = NULL;
    is(kj_txn_begin(s, KJ_TXN_READONLY, &t), KJ_OK, "begin read-only txn");
    int rc = kj_store_close(s);
    is(rc, KJ_EINVAL, "close with an open read-only txn: KJ_EINVAL");
    if (rc == KJ_EINVAL) {
      ok(tu_get_str_eq(s, t, 1, "k", "v"), "handle and txn still usable");
      kj_txn_rollback(t);
      is(kj_store_close(s), KJ_OK, "close after the txn ended");
    } else {
      dangling_txn = t; /* the handle is gone; t must not be touched */
    }
  }

  /* close returns the status of its final sync */
  tu_vfs tv;
  tu_options_vfs(&o, &tv);
  o.sync = KJ_SYNC_NORMAL;
  s = tu_store_open_ok(dir, &o, "close sync status");
  if (s != NULL) {
    is(put_str(s, NULL, 1, "unsynced", "row"), KJ_OK, "NORMAL put");
    tu_vfs_arm(&tv, TU_SYNC, 1, KJ_EIO, TU_ARM_PERSIST);
    is(kj_store_close(s), KJ_EIO, "close with a failing final sync: KJ_EIO");
    ok(tu_vfs_injected(&tv) >= 1, "close tried to sync");
    tu_vfs_disarm(&tv);
    s = tu_store_open_ok(dir, &o, "reopen after failed close sync");
    if (s != NULL) {
      ok(tu_get_str_eq(s, NULL, 1, "unsynced", "row"),
         "row that reached the OS is there");
      kj_store_close(s);
    }
  }
  o.sync = KJ_SYNC_OFF;
  s = tu_store_open_ok(dir, &o, "close SYNC_OFF");
  if (s != NULL) {
    put_str(s, NULL, 1, "off", "row");
    uint64_t inj = tu_vfs_injected(&tv);
    tu_vfs_arm(&tv, TU_SYNC, 1, KJ_EIO, TU_ARM_PERSIST);
    is(kj_store_close(s), KJ_OK, "SYNC_OFF close does not sync");
    is(tu_vfs_injected(&tv), inj, "no sync attempted at SYNC_OFF close");
    tu_vfs_disarm(&tv);
  }
  tu_vfs_destroy(&tv);
  cleanup_dir(dir);
}

/* ---- transaction size limit ------------------------------------------------
 */

/* store.h: the put or delete that would take a transaction past
 * KJ_MAX_TXN_BYTES fails with KJ_EINVAL and changes nothing; the
 * transaction stays usable. 15 values of KJ_MAX_VALUE (plus keys and
 * per-row overhead) fit in 64 MiB, a 16th does not. */
static void sync_off(kj_options *o) { o->sync = KJ_SYNC_OFF; }

static void test_txn_limit(const char *dir, const kj_options *o, kj_store *s) {
  put_str(s, NULL, 1, "pre", "existing");
  const int fit = (int)(KJ_MAX_TXN_BYTES / KJ_MAX_VALUE) - 1; /* 15 */
  kj_txn *t = NULL;
  is(kj_txn_begin(s, 0, &t), KJ_OK, "begin big txn");
  if (t == NULL) {
    kj_store_close(s);
    return;
  }
  unsigned char *v = calloc(1, KJ_MAX_VALUE);
  int bad = 0;
  char k[16];
  for (int i = 0; i < fit; i++) {
    snprintf(k, sizeof k, "big%02d", i);
    v[0] = (unsigned char)i;
    if (kj_put(s, t, 1, k, strlen(k), v, KJ_MAX_VALUE) != KJ_OK)
      bad++;
  }
  is(bad, 0, "%d puts of KJ_MAX_VALUE bytes fit in one txn", fit);
  snprintf(k, sizeof k, "big%02d", fit);
  v[0] = (unsigned char)fit;
  is(kj_put(s, t, 1, k, strlen(k), v, KJ_MAX_VALUE), KJ_EINVAL,
     "the put that crosses KJ_MAX_TXN_BYTES: KJ_EINVAL");
  ok(kj_store_errmsg(s)[0] != '\0', "errmsg set");
  ok(get_absent(s, t, 1, k), "the refused put changed nothing");
  is(kj_put(s, t, 1, "big00", 5, v, KJ_MAX_VALUE), KJ_OK,
     "replacing a row by one of the same size still fits");
  is(put_str(s, t, 1, "small", "fits"), KJ_OK, "a small put still fits");
  /* shrinking a row frees its bytes: now the refused put fits */
  is(put_str(s, t, 1, "big01", "tiny"), KJ_OK, "shrink big01");
  is(kj_put(s, t, 1, k, strlen(k), v, KJ_MAX_VALUE), KJ_OK,
     "after shrinking another row, the put fits");
  is(kj_put(s, t, 1, "one-more", 8, v, KJ_MAX_VALUE), KJ_EINVAL,
     "and the next big one crosses the limit again");
  is(kj_txn_commit(t), KJ_OK, "commit the txn at the limit");
  kj_stats st;
  stats_of(s, &st);
  is(st.poisoned, 0, "refused puts do not poison");
  uint64_t rows = 0, bytes = 0;
  is(kj_table_count(s, 1, &rows, &bytes), KJ_OK, "table_count");
  is(rows, (uint64_t)fit + 3, "committed: pre, %d big rows, small", fit);
  ok(tu_get_str_eq(s, NULL, 1, "big01", "tiny"), "big01 shrunk");
  ok(get_absent(s, NULL, 1, "one-more"), "refused row absent");
  is(put_str(s, NULL, 1, "post", "ok"), KJ_OK, "writes still work");
  kj_store_close(s);
  s = tu_store_open_ok(dir, o, "txn limit reopen");
  if (s != NULL) {
    void *got = NULL;
    size_t gl = 0;
    is(kj_get(s, NULL, 1, k, strlen(k), &got, &gl), KJ_OK,
       "reopen: last big row");
    ok(gl == KJ_MAX_VALUE && got != NULL && memcmp(got, v, gl) == 0,
       "reopen: big row intact");
    kj_free(got);
    ok(get_absent(s, NULL, 1, "one-more"), "reopen: refused row absent");
    ok(tu_get_str_eq(s, NULL, 1, "post", "ok"), "reopen: later write kept");
    is(kj_table_count(s, 1, &rows, &bytes), KJ_OK, "reopen: table_count");
    is(rows, (uint64_t)fit + 4, "reopen: every committed row");
    kj_store_close(s);
  }
  free(v);
}

/* ---- disk full while preallocating a segment -------------------------- */

/* A commit that needs a new segment fails cleanly when the disk is full
 * while the segment is created: KJ_ENOSPC, nothing applied, the handle not
 * poisoned, and the same commit succeeds once space is back. */
static void test_enospc_preallocate(void) {
  char *dir = tu_mkdtemp();
  tu_vfs tv;
  kj_options o;
  tu_options_vfs(&o, &tv);
  o.segment_bytes = 4096;
  kj_store *s = tu_store_open_ok(dir, &o, "enospc preallocate");
  if (s == NULL) {
    tu_vfs_destroy(&tv);
    cleanup_dir(dir);
    return;
  }
  char val[900];
  memset(val, 'v', sizeof val);
  /* Only segment creation opens files while committing: find the commit
   * that rolls over by failing every open. */
  tu_vfs_arm(&tv, TU_OPEN, 1, KJ_ENOSPC, TU_ARM_PERSIST);
  int rc = KJ_OK, i;
  char k[16];
  for (i = 0; i < 20 && rc == KJ_OK; i++) {
    snprintf(k, sizeof k, "row%02d", i);
    rc = kj_put(s, NULL, 1, k, strlen(k), val, sizeof val);
  }
  tu_vfs_disarm(&tv);
  is(rc, KJ_ENOSPC, "open of the new segment fails: KJ_ENOSPC");
  kj_stats st = KJ_STATS_INIT;
  stats_of(s, &st);
  is(st.poisoned, 0, "not poisoned");
  ok(get_absent(s, NULL, 1, k), "the failed commit is not applied");
  /* Now the realistic case: the zero-fill write runs out of space (write 1
   * is the segment header, write 2 the first chunk of zeros). */
  tu_vfs_arm(&tv, TU_WRITE, 2, KJ_ENOSPC, TU_ARM_ONCE);
  rc = kj_put(s, NULL, 1, k, strlen(k), val, sizeof val);
  tu_vfs_disarm(&tv);
  is(rc, KJ_ENOSPC, "zero-fill runs out of space: KJ_ENOSPC");
  stats_of(s, &st);
  is(st.poisoned, 0, "still not poisoned");
  char *tmp = tu_path(dir, "journal-0000000000000002.kjl.tmp");
  ok(tu_file_size(tmp) < 0, "the half-made segment was removed");
  free(tmp);
  is(kj_put(s, NULL, 1, k, strlen(k), val, sizeof val), KJ_OK,
     "with space back the same commit succeeds");
  is(kj_store_close(s), KJ_OK, "close");
  tu_options(&o);
  s = tu_store_open_ok(dir, &o, "enospc reopen");
  if (s != NULL) {
    uint64_t rows = 0;
    kj_table_count(s, 1, &rows, NULL);
    is(rows, (uint64_t)i, "reopen: every acknowledged row, no other");
    kj_store_close(s);
  }
  tu_vfs_destroy(&tv);
  cleanup_dir(dir);
}

/* ---- the mapped write path (vfs.h, version 2) ---------------------------
 * A copy of the POSIX VFS whose write, map and map_reserve are counted and
 * can be made to fail: the POSIX methods take the POSIX file handles, so
 * the copy may replace any of them. */
static kj_vfs mv;
static int mv_writes, mv_maps, mv_reserves, mv_fail_map, mv_fail_reserve_at;
static int mv_unmaps, mv_syncs, mv_synced_mapped;
static kj_vfs_file *mv_live; /* the file mapped now, if any */

static int mv_write(void *ctx, kj_vfs_file *f, const void *b, size_t n,
                    uint64_t off) {
  mv_writes++;
  return kj_vfs_posix()->write(ctx, f, b, n, off);
}

static int mv_map(void *ctx, kj_vfs_file *f, uint64_t len, void **out) {
  mv_maps++;
  if (mv_fail_map)
    return KJ_EIO;
  int rc = kj_vfs_posix()->map(ctx, f, len, out);
  if (rc == KJ_OK)
    mv_live = f;
  return rc;
}

static int mv_reserve(void *ctx, kj_vfs_file *f, void *p, uint64_t off,
                      uint64_t n) {
  if (++mv_reserves == mv_fail_reserve_at) {
    errno = EFAULT;
    return KJ_EIO;
  }
  return kj_vfs_posix()->map_reserve(ctx, f, p, off, n);
}

static int mv_unmap(void *ctx, kj_vfs_file *f, void *p, uint64_t len) {
  mv_unmaps++;
  mv_live = NULL;
  return kj_vfs_posix()->unmap(ctx, f, p, len);
}

/* Counts the syncs, and those of a file while it was mapped. */
static int mv_sync(void *ctx, kj_vfs_file *f) {
  mv_syncs++;
  mv_synced_mapped += f == mv_live;
  return kj_vfs_posix()->sync(ctx, f);
}

static void mv_init(void) {
  mv = *kj_vfs_posix();
  mv.write = mv_write;
  mv.map = mv_map;
  mv.map_reserve = mv_reserve;
  mv.unmap = mv_unmap;
  mv.sync = mv_sync;
  mv_writes = mv_maps = mv_reserves = mv_fail_map = mv_fail_reserve_at = 0;
  mv_unmaps = mv_syncs = mv_synced_mapped = 0;
  mv_live = NULL;
}

/* n commits of one 512-byte row each, keys from first; KJ_OK or the first
 * failure. */
static int put_rows(kj_store *s, int first, int n) {
  char k[16], v[512];
  memset(v, 'm', sizeof v);
  for (int i = first; i < first + n; i++) {
    snprintf(k, sizeof k, "map%05d", i);
    int rc = kj_put(s, NULL, 1, k, strlen(k), v, sizeof v);
    if (rc)
      return rc;
  }
  return KJ_OK;
}

/* Rows of table 1 in the open store s. */
static uint64_t rows_in(kj_store *s) {
  uint64_t rows = 0;
  kj_table_count(s, 1, &rows, NULL);
  return rows;
}

static uint64_t rows_after_reopen(const char *dir) {
  kj_options o;
  tu_options(&o);
  uint64_t rows = 0;
  kj_store *s = tu_store_open_ok(dir, &o, "mapped: reopen");
  if (s) {
    rows = rows_in(s);
    kj_store_close(s);
  }
  return rows;
}

static void test_mapped(void) {
  const kj_vfs *px = kj_vfs_posix(), *pu = kj_vfs_posix_unmapped();
  ok(px->version == 2 && px->map && px->map_reserve && px->map_wrote &&
         px->unmap,
     "mapped: the POSIX VFS offers the mapping methods");
  ok(pu->version == 2 && !pu->map && !pu->map_reserve && !pu->map_wrote &&
         !pu->unmap && pu->write == px->write,
     "mapped: kj_vfs_posix_unmapped() is the same without them");
  /* Under FULL frames keep going through write() (journal.c map_segment
   * says why); NORMAL and OFF map. */
  for (int mode = 0; mode < 3; mode++) {
    const char *m = mode == 2 ? "OFF" : mode ? "NORMAL" : "FULL";
    int mapped = mode != 0;
    char *dir = tu_mkdtemp();
    kj_options o;
    tu_options(&o);
    mv_init();
    o.vfs = &mv;
    o.sync = mode == 2 ? KJ_SYNC_OFF : mode ? KJ_SYNC_NORMAL : KJ_SYNC_FULL;
    o.segment_bytes = 16 * 1024; /* a few roll-overs */
    kj_store *s = tu_store_open_ok(dir, &o, "mapped: open");
    if (!s) {
      cleanup_dir(dir);
      continue;
    }
    int before = mv_writes, maps = mv_maps;
    is(put_rows(s, 0, 100), KJ_OK, "mapped %s: 100 commits", m);
    kj_stats st = KJ_STATS_INIT;
    stats_of(s, &st);
    ok(st.segments > 1, "mapped %s: across roll-overs (%llu segments)", m,
       (unsigned long long)st.segments);
    if (mapped) {
      /* Writes now come only from roll-overs: the new segment (a header
       * and zeros) and the store header's record of it. */
      ok(mv_writes - before <= 3 * (int)st.segments,
         "mapped %s: no write() per commit (%d writes for %llu segments)", m,
         mv_writes - before, (unsigned long long)st.segments);
      ok(mv_maps > maps, "mapped %s: each new segment is mapped", m);
      ok(mv_reserves > 0 && mv_reserves <= 100 + (int)st.segments * 2,
         "mapped %s: pages reserved (%d calls)", m, mv_reserves);
    } else {
      ok(mv_writes - before >= 100,
         "FULL: one write() per commit (%d), no mapping", mv_writes - before);
      is(mv_maps, maps, "FULL: no segment is mapped");
    }
    is(kj_store_close(s), KJ_OK, "mapped %s: close", m);
    is(rows_after_reopen(dir), 100, "mapped %s: reopen holds every row", m);

    /* A failing map_reserve is a failed write: poisoned, with a message,
     * and nothing acknowledged lost. */
    mv_init();
    s = mapped ? tu_store_open_ok(dir, &o, "mapped: open again") : NULL;
    if (s) {
      mv_fail_reserve_at = 3;
      int rc = put_rows(s, 100, 50);
      is(rc, KJ_EIO, "mapped %s: a failed reserve fails the commit", m);
      const char *msg = kj_store_errmsg(s);
      ok(msg && strstr(msg, "prepare journal segment"),
         "mapped %s: the message says where (%s)", m, msg ? msg : "");
      stats_of(s, &st);
      is(st.poisoned, 1, "mapped %s: and poisons the handle", m);
      uint64_t acked = rows_in(s);
      kj_store_close(s);
      is(rows_after_reopen(dir), acked,
         "mapped %s: reopen holds exactly the acknowledged rows (%llu)", m,
         (unsigned long long)acked);
    }

    /* A VFS that declines to map: frames go through write(). */
    mv_init();
    mv_fail_map = 1;
    s = mapped ? tu_store_open_ok(dir, &o, "mapped: declined") : NULL;
    if (s) {
      uint64_t have = rows_in(s);
      before = mv_writes;
      is(put_rows(s, 1000, 20), KJ_OK, "mapped %s: map declined: commits", m);
      ok(mv_writes - before >= 20,
         "mapped %s: map declined: one write() per commit (%d)", m,
         mv_writes - before);
      kj_store_close(s);
      is(rows_after_reopen(dir), have + 20, "mapped %s: map declined: reopen",
         m);
    }
    cleanup_dir(dir);
  }

  /* NORMAL with a small sync interval: the writer drops the mapping
   * before each interval sync, roll-over and close, so that no sync finds
   * mapped pages to write-protect one by one; it maps again after. */
  char *dir = tu_mkdtemp();
  kj_options o;
  tu_options(&o);
  mv_init();
  o.vfs = &mv;
  o.sync = KJ_SYNC_NORMAL;
  o.segment_bytes = 64 * 1024;
  o.sync_interval_bytes = 4096;
  kj_store *s = tu_store_open_ok(dir, &o, "mapped: interval syncs");
  if (s) {
    is(put_rows(s, 0, 200), KJ_OK, "mapped interval: 200 commits");
    is(kj_store_close(s), KJ_OK, "mapped interval: close");
    ok(mv_syncs > 20, "mapped interval: synced every 4 KiB (%d syncs)",
       mv_syncs);
    is(mv_synced_mapped, 0, "mapped interval: no sync of a mapped segment");
    ok(mv_maps > 20 && mv_maps == mv_unmaps,
       "mapped interval: mapped again after each (%d maps, %d unmaps)", mv_maps,
       mv_unmaps);
    ok(mv_reserves < 200,
       "mapped interval: pages reserved in steps, not per commit (%d)",
       mv_reserves);
    is(rows_after_reopen(dir), 200, "mapped interval: reopen holds every row");
  }
  cleanup_dir(dir);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  test_strerror();
  test_wrong_key();
  test_bad_args();
  test_bad_options();
  test_open_modes();
  test_busy();
  tu_with_store_dir("ro create", NULL, test_read_only);
  test_poison();
  test_open_failures();
  test_close();
  tu_with_store_dir("txn limit", sync_off, test_txn_limit);
  test_enospc_preallocate();
  test_mapped();
  return tap_done();
}
