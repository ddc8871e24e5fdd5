/*
 * oracle/kv.c - raw key-value differential runs (ora_kv_check): the raw
 * store API (keyjournal/store.h: kj_put, kj_get, kj_delete,
 * kj_scan_range, transactions, savepoints) of a memory-only kj_store
 * against a SQLite reference of the same operations written here.
 *
 * The ops: a seeded sequence (same seed and count, same ops) of
 * autocommit puts, deletes, gets and scans (txn NULL), write transactions
 * with the same inside them, savepoints (set, moved by a second one,
 * rolled back, released), commits and rollbacks, read-only transactions,
 * nested read-only peeks, and the misuses store.h gives a status for
 * (KJ_EINVAL for bad arguments and writes through a read-only
 * transaction, KJ_EDEADLK for a write with txn NULL or a write begin while
 * the thread holds a transaction, or a commit under its own read-only
 * transaction). The universe is small so that ops collide: tables 1, 2
 * and 255 (and the bad ids 0, 256, 1000) and about forty keys chosen for
 * their order: 1-byte keys, keys that are prefixes of each other, keys
 * with 0x00 and 0xff bytes, keys of KJ_MAX_KEY bytes; values from empty to
 * KJ_MAX_VALUE (+1; rows that large are replaced within a few ops, since
 * every op that meets one copies megabytes). Scans are bounded by keys of
 * the universe (inclusive start, exclusive end), unbounded, empty (start
 * == end, start > end, an empty end), stop early through their callback,
 * and from the callback may write (which must fail), read each row back,
 * or begin transactions (a write one must fail with KJ_EDEADLK, a
 * read-only one works).
 *
 * The reference: one in-memory SQLite database,
 *   kv(tbl INTEGER, k BLOB, v BLOB, PRIMARY KEY(tbl, k))
 * where a kj transaction is BEGIN ... COMMIT / ROLLBACK and the one kj
 * savepoint is SQLite's SAVEPOINT sp (a second kj savepoint is RELEASE sp;
 * SAVEPOINT sp, a rollback to it ROLLBACK TO sp; RELEASE sp). Keys are
 * BLOBs, which SQLite compares with memcmp and then by length, shorter
 * first: exactly kj's key order (kj_key_cmp, src/engine/map.c), so scans
 * are ORDER BY k. Reads that store.h says see the committed state while a
 * write transaction is open (txn NULL, a read-only transaction) read
 *   pre(tbl, k, existed, v)
 * first: the row as it was before the open transaction first changed it
 * (written by the reference before each of its writes, cleared when the
 * transaction ends; ROLLBACK TO undoes its rows with the writes they
 * describe). The statuses of misuses are predicted from store.h's rules,
 * arguments checked first; among them, store.h's KJ_EDEADLK cases, where
 * the commit of a write transaction with no changes, under the thread's
 * own read-only transaction, succeeds (nothing to apply, so nothing waits;
 * see OP_COMMIT_UNDER_RO).
 *
 * Every op gives a canonical text on each side (status, outputs, and
 * whether a transaction is open); the texts must be equal. Every 50 ops
 * (deferred while a transaction is open) and at the end (after rolling
 * back an open transaction) the full dumps are compared: every row of
 * every table in order, kj_table_count of every table and the row and
 * byte totals of kj_store_stats.
 *
 * On the first divergence the run is shrunk by delta debugging (as
 * oracle/runner.c does: drop chunks of ops while any divergence remains;
 * an op meant for the open transaction that finds none is a no-op on
 * both sides) and reported in c->report: `kv: seed=S ops=N op_index=I`, the op
 * and both texts, then the reproducer, one op per line, and its texts.
 *
 * ora_kv_selftest_break() makes the reference deliberately wrong, so that
 * the tests can show the checker failing.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "oracle.h"

/* Full dumps every this many ops (when no transaction is open). */
#define DUMP_EVERY 50
/* Most runs one shrink may try. */
#define SHRINK_MAX_RUNS 3000
/* Most bytes of one text quoted in a report. */
#define REPORT_TEXT_MAX 1500

static int selftest_break;

void ora_kv_selftest_break(int which) { selftest_break = which; }

static const uint8_t kv_key[KJ_KEY_BYTES] = {
    0x6b, 0x76, 0x2d, 0x6f, 0x72, 0x61, 0x63, 0x6c, 0x65, 0x2d, 0x6b,
    0x65, 0x79, 0x2d, 0x30, 0x31, 0x02, 0x03, 0x05, 0x07, 0x0b, 0x0d,
    0x11, 0x13, 0x17, 0x1d, 0x1f, 0x25, 0x29, 0x2b, 0x2f, 0x35};

/* ---- the universe ------------------------------------------------------- */

static const unsigned good_tables[] = {1, 2, 255};
static const unsigned bad_tables[] = {0, 256, 1000};

/* A key: nfill bytes of fill, then the tail. */
typedef struct kspec {
  uint16_t nfill;
  uint8_t fill;
  const char *tail;
  uint8_t tlen;
} kspec;

#define S(str)                                                                 \
  { 0, 0, str, sizeof str - 1 }
#define L(n, f, str)                                                           \
  { n, f, str, sizeof str - 1 }

/* No escape is followed by a hex digit (C would read it into the escape). */
static const kspec kspecs[] = {
    S("\x00"),
    S("\x01"),
    S("a"),
    S("b"),
    S("z"),
    S("\x7f"),
    S("\x80"),
    S("\xff"),
    S("ab"),
    S("abc"),
    S("abd"),
    S("ab\x00"),
    S("ab\xff"),
    S("abcd"),
    S("abc\x00"),
    S("a\x00"),
    S("a\x00\x00"),
    S("b\x00"),
    S("ba"),
    S("\x00\x00"),
    S("\x00\x01"),
    S("\xff\xff"),
    S("\xff\x00"),
    S("\x7f\xff"),
    S("\x80\x00"),
    S("key"),
    S("key1"),
    S("key10"),
    S("key2"),
    L(32, 'k', ""),
    L(255, 'k', ""),
    L(256, 'k', ""),
    L(256, 'k', "\x00"),
    L(4095, 'a', ""),
    L(4096, 'a', ""),
    L(4095, 'a', "b"),
    L(4095, 'a', "\x00"),
    L(4096, 0xff, ""),
    L(4095, 0, "\x01"),
    L(KJ_MAX_KEY, 'k', ""),
};

#define NKEYS (sizeof kspecs / sizeof kspecs[0])

/* Key codes: 0 .. NKEYS-1 are the universe, then these. */
enum {
  C_NULL0 = 1000, /* NULL, 0: no key / no bound */
  C_EMPTY,        /* "", 0 */
  C_NULLLEN,      /* NULL, 3 */
  C_OVER          /* KJ_MAX_KEY + 1 bytes of 'a' */
};

/* Scan callback modes: CB_WRITE puts its first row back through the
 * scan's transaction (or NULL), CB_READ gets every row back, CB_BEGIN
 * begins a write transaction at the first row (KJ_EDEADLK) and a
 * read-only one (allowed), and ends it. */
enum { CB_PLAIN, CB_WRITE, CB_READ, CB_BEGIN };

enum kind {
  OP_BEGIN,
  OP_BEGIN_BAD,
  OP_COMMIT,
  OP_ROLLBACK,
  OP_SP,
  OP_SP_ROLLBACK,
  OP_SP_RELEASE,
  OP_PUT,
  OP_DEL,
  OP_GET,
  OP_SCAN,
  OP_PEEK,
  OP_COMMIT_UNDER_RO
};

#define BAD_FLAGS 0x80u

typedef struct kvop {
  uint8_t kind;
  uint8_t use_txn; /* row ops: the open transaction (1) or NULL (0) */
  uint8_t ro;      /* OP_BEGIN: KJ_TXN_READONLY */
  uint8_t vnull;   /* OP_PUT: the value pointer is NULL */
  uint8_t outnull; /* OP_GET: the value output is NULL */
  uint8_t fnnull;  /* OP_SCAN: the callback is NULL */
  uint8_t cb;      /* OP_SCAN: CB_* */
  uint8_t vs;      /* value: offset into the pattern */
  uint16_t key, lo, hi;
  uint32_t table, vlen, stop; /* stop: the scan stops after this many rows */
  int32_t ret;                /* what the callback returns to stop */
} kvop;

/* Everything a run needs that does not change: key bytes and the value
 * pattern (V(s) of n bytes is pat[s .. s+n)). */
typedef struct kvx {
  uint8_t *keys[NKEYS];
  size_t klen[NKEYS];
  uint8_t *over;
  const uint8_t *pat;
} kvx;

/* The value pattern: fixed bytes, made once per process (4 MiB). */
#define PAT_BYTES ((size_t)KJ_MAX_VALUE + 1 + 256)
static uint8_t *pattern;
static pthread_once_t pattern_once = PTHREAD_ONCE_INIT;

static void pattern_init(void) {
  uint8_t *p = malloc(PAT_BYTES);
  if (!p)
    return;
  uint64_t s = 0x243f6a8885a308d3ull;
  for (size_t i = 0; i < PAT_BYTES; i += 8) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    memcpy(p + i, &s, PAT_BYTES - i < 8 ? PAT_BYTES - i : 8);
  }
  pattern = p;
}

static void kvx_free(kvx *x) {
  for (size_t i = 0; i < NKEYS; i++)
    free(x->keys[i]);
  free(x->over);
}

static int kvx_init(kvx *x) {
  memset(x, 0, sizeof *x);
  for (size_t i = 0; i < NKEYS; i++) {
    const kspec *k = &kspecs[i];
    size_t n = (size_t)k->nfill + k->tlen;
    if (!(x->keys[i] = malloc(n)))
      goto nomem;
    memset(x->keys[i], k->fill, k->nfill);
    memcpy(x->keys[i] + k->nfill, k->tail, k->tlen);
    x->klen[i] = n;
  }
  x->over = malloc(KJ_MAX_KEY + 1);
  pthread_once(&pattern_once, pattern_init);
  if (!x->over || !(x->pat = pattern))
    goto nomem;
  memset(x->over, 'a', KJ_MAX_KEY + 1);
  return KJ_OK;
nomem:
  kvx_free(x);
  return KJ_ENOMEM;
}

static const uint8_t empty_byte[1];

static void key_of(const kvx *x, unsigned code, const void **p, size_t *n) {
  switch (code) {
  case C_NULL0:
    *p = NULL, *n = 0;
    return;
  case C_EMPTY:
    *p = empty_byte, *n = 0;
    return;
  case C_NULLLEN:
    *p = NULL, *n = 3;
    return;
  case C_OVER:
    *p = x->over, *n = KJ_MAX_KEY + 1;
    return;
  default:
    *p = x->keys[code], *n = x->klen[code];
  }
}

static void val_of(const kvx *x, const kvop *op, const void **p, size_t *n) {
  *p = op->vnull ? NULL : x->pat + op->vs;
  *n = op->vlen;
}

/* ---- canonical texts ---------------------------------------------------- */

/* Not cryptographic: four independent lanes, so that hashing a value of
 * KJ_MAX_VALUE bytes costs about as much as copying it. */
static uint64_t hash_bytes(const uint8_t *p, size_t n) {
  uint64_t h[4] = {0x9e3779b97f4a7c15ull ^ (uint64_t)n, 0xc2b2ae3d27d4eb4full,
                   0x165667b19e3779f9ull, 0x27d4eb2f165667c5ull};
  size_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int l = 0; l < 4; l++) {
      uint64_t w;
      memcpy(&w, p + i + 8 * l, 8);
      h[l] = (h[l] ^ w) * 0xff51afd7ed558ccdull;
      h[l] ^= h[l] >> 29;
    }
  uint64_t r = h[0] ^ (h[1] * 3) ^ (h[2] * 5) ^ (h[3] * 7);
  for (; i < n; i++)
    r = (r ^ p[i]) * 0x100000001b3ull;
  r ^= r >> 31;
  r *= 0xbf58476d1ce4e5b9ull;
  return r ^ (r >> 29);
}

/* Short byte strings in hex, long ones as length and hash. */
static void bytes_text(ora_obuf *o, const void *p, size_t n) {
  if (n == 0) {
    ora_obuf_addf(o, "''");
    return;
  }
  if (n <= 24) {
    for (size_t i = 0; i < n; i++)
      ora_obuf_addf(o, "%02x", ((const uint8_t *)p)[i]);
    return;
  }
  ora_obuf_addf(o, "<%zu:%016" PRIx64 ">", n, hash_bytes(p, n));
}

static void row_text(ora_obuf *o, const char *sep, const void *k, size_t kl,
                     const void *v, size_t vl) {
  ora_obuf_addf(o, "%s", sep);
  bytes_text(o, k, kl);
  ora_obuf_addf(o, "=");
  bytes_text(o, v, vl);
}

/* ---- the native side ---------------------------------------------------- */

typedef struct nat {
  kj_store *s;
  kj_txn *t;
  int ro;
} nat;

typedef struct ncb {
  kj_store *s;
  kj_txn *t;
  unsigned table;
  const kvop *op;
  ora_obuf *rows;
  size_t n;
} ncb;

static int nat_cb(void *arg, const void *k, size_t kl, const void *v,
                  size_t vl) {
  ncb *c = arg;
  c->n++;
  row_text(c->rows, " ", k, kl, v, vl);
  if (c->op->cb == CB_WRITE && c->n == 1) {
    int rc = kj_put(c->s, c->t, c->table, k, kl, "w", 1);
    ora_obuf_addf(c->rows, "(w=%d)", rc);
  } else if (c->op->cb == CB_READ) {
    void *g = NULL;
    size_t gl = 0;
    int rc = kj_get(c->s, c->t, c->table, k, kl, &g, &gl);
    if (rc == KJ_OK && gl == vl && (!vl || (g && !memcmp(g, v, vl))))
      ora_obuf_addf(c->rows, "(r=ok)");
    else
      ora_obuf_addf(c->rows, "(r=%d,%zu)", rc, gl);
    kj_free(g);
  } else if (c->op->cb == CB_BEGIN && c->n == 1) {
    kj_txn *w = NULL, *r = NULL;
    int rw = kj_txn_begin(c->s, 0, &w), began = w != NULL;
    if (began) /* it should not have: end it to go on */
      kj_txn_rollback(w);
    int rr = kj_txn_begin(c->s, KJ_TXN_READONLY, &r);
    int re = r ? kj_txn_commit(r) : KJ_EINVAL;
    ora_obuf_addf(c->rows, "(b=%d%s,%d,%d)", rw, began ? " began" : "", rr, re);
  }
  if (c->op->stop && c->n == c->op->stop)
    return c->op->ret;
  return 0;
}

static void nat_scan(const kvx *x, kj_store *s, kj_txn *t, const kvop *op,
                     int whole, ora_obuf *o) {
  const void *lo = NULL, *hi = NULL;
  size_t lol = 0, hil = 0;
  if (!whole) {
    key_of(x, op->lo, &lo, &lol);
    key_of(x, op->hi, &hi, &hil);
  }
  ora_obuf rows = {0};
  kvop plain = *op;
  if (whole)
    plain.cb = CB_PLAIN, plain.stop = 0;
  ncb c = {s, t, op->table, &plain, &rows, 0};
  int rc = kj_scan_range(s, t, op->table, lo, lol, hi, hil,
                         op->fnnull && !whole ? NULL : nat_cb, &c);
  ora_obuf_addf(o, "rc=%d n=%zu:", rc, c.n);
  if (rows.len)
    ora_obuf_add(o, rows.p, rows.len);
  ora_obuf_free(&rows);
}

static void nat_get(const kvx *x, kj_store *s, kj_txn *t, const kvop *op,
                    ora_obuf *o) {
  const void *k;
  size_t kl;
  key_of(x, op->key, &k, &kl);
  void *v = NULL;
  size_t vl = 0;
  int rc = kj_get(s, t, op->table, k, kl, op->outnull ? NULL : &v, &vl);
  ora_obuf_addf(o, "rc=%d", rc);
  if (rc == KJ_OK && vl && !v) {
    ora_obuf_addf(o, " v=(NULL value of %zu bytes)", vl);
  } else if (rc == KJ_OK) {
    ora_obuf_addf(o, " v=");
    bytes_text(o, v, vl);
    if (vl == 0 && v) /* store.h: NULL when the value is empty */
      ora_obuf_addf(o, " (empty value not NULL)");
  }
  kj_free(v);
}

static int nat_open(nat *n) {
  memset(n, 0, sizeof *n);
  kj_options o = KJ_OPTIONS_INIT;
  o.key = kv_key;
  return kj_store_open(NULL, &o, &n->s, NULL);
}

static void nat_close(nat *n) {
  if (n->t)
    kj_txn_rollback(n->t);
  n->t = NULL;
  kj_store_close(n->s);
  n->s = NULL;
}

static void nat_apply(const kvx *x, nat *n, const kvop *op, ora_obuf *o) {
  kj_store *s = n->s;
  int rc;
  switch ((enum kind)op->kind) {
  case OP_BEGIN:
    if (n->t && op->ro) {
      ora_obuf_addf(o, "skip (open)");
    } else if (n->t) {
      kj_txn *t2 = NULL;
      rc = kj_txn_begin(s, 0, &t2);
      ora_obuf_addf(o, "rc=%d", rc);
      if (t2) { /* it should not have begun: end it to go on */
        ora_obuf_addf(o, " (second transaction)");
        kj_txn_rollback(t2);
      }
    } else {
      rc = kj_txn_begin(s, op->ro ? KJ_TXN_READONLY : 0, &n->t);
      ora_obuf_addf(o, "rc=%d", rc);
      if (rc != KJ_OK)
        n->t = NULL;
      n->ro = op->ro;
    }
    break;
  case OP_BEGIN_BAD: {
    kj_txn *t2 = NULL;
    rc = kj_txn_begin(s, BAD_FLAGS, &t2);
    ora_obuf_addf(o, "rc=%d", rc);
    if (t2) {
      ora_obuf_addf(o, " (began)");
      kj_txn_rollback(t2);
    }
    break;
  }
  case OP_COMMIT:
    rc = kj_txn_commit(n->t);
    n->t = NULL;
    ora_obuf_addf(o, "rc=%d", rc);
    break;
  case OP_ROLLBACK:
    kj_txn_rollback(n->t);
    n->t = NULL;
    ora_obuf_addf(o, "done");
    break;
  case OP_SP:
    ora_obuf_addf(o, "rc=%d", kj_txn_savepoint(n->t));
    break;
  case OP_SP_ROLLBACK:
    kj_txn_rollback_savepoint(n->t);
    ora_obuf_addf(o, "done");
    break;
  case OP_SP_RELEASE:
    kj_txn_release_savepoint(n->t);
    ora_obuf_addf(o, "done");
    break;
  case OP_PUT:
  case OP_DEL:
  case OP_GET:
  case OP_SCAN: {
    if (op->use_txn && !n->t) {
      ora_obuf_addf(o, "skip (no transaction)");
      break;
    }
    kj_txn *t = op->use_txn ? n->t : NULL;
    const void *k, *v;
    size_t kl, vl;
    key_of(x, op->key, &k, &kl);
    if (op->kind == OP_PUT) {
      val_of(x, op, &v, &vl);
      ora_obuf_addf(o, "rc=%d", kj_put(s, t, op->table, k, kl, v, vl));
    } else if (op->kind == OP_DEL) {
      ora_obuf_addf(o, "rc=%d", kj_delete(s, t, op->table, k, kl));
    } else if (op->kind == OP_GET) {
      nat_get(x, s, t, op, o);
    } else {
      nat_scan(x, s, t, op, 0, o);
    }
    break;
  }
  case OP_PEEK:
  case OP_COMMIT_UNDER_RO: {
    if (op->kind == OP_COMMIT_UNDER_RO && (!n->t || n->ro)) {
      ora_obuf_addf(o, "skip (no write transaction)");
      break;
    }
    kj_txn *r = NULL;
    rc = kj_txn_begin(s, KJ_TXN_READONLY, &r);
    ora_obuf_addf(o, "begin=%d", rc);
    if (rc != KJ_OK)
      break;
    if (op->kind == OP_COMMIT_UNDER_RO) {
      rc = kj_txn_commit(n->t);
      n->t = NULL;
      ora_obuf_addf(o, " commit=%d", rc);
    }
    ora_obuf_addf(o, " get:");
    nat_get(x, s, r, op, o);
    if (op->kind == OP_PEEK) {
      ora_obuf_addf(o, " scan:");
      nat_scan(x, s, r, op, 1, o);
    }
    ora_obuf_addf(o, " end=%d", kj_txn_commit(r));
    break;
  }
  }
  ora_obuf_addf(o, " | %s", !n->t ? "-" : n->ro ? "R" : "W");
}

typedef struct dcb {
  ora_obuf *o;
  size_t n;
} dcb;

static int dump_cb(void *arg, const void *k, size_t kl, const void *v,
                   size_t vl) {
  dcb *d = arg;
  d->n++;
  row_text(d->o, "  ", k, kl, v, vl);
  ora_obuf_add(d->o, "\n", 1);
  return 0;
}

static void nat_dump(nat *n, ora_obuf *o) {
  kj_stats st = KJ_STATS_INIT;
  int rc = kj_store_stats(n->s, &st);
  ora_obuf_addf(o, "stats rc=%d rows=%" PRIu64 " bytes=%" PRIu64 "\n", rc,
                st.rows, st.logical_bytes);
  ora_obuf rows = {0};
  for (unsigned t = KJ_TABLE_MIN; t <= KJ_TABLE_MAX; t++) {
    uint64_t cnt = 0, bytes = 0;
    int crc = kj_table_count(n->s, t, &cnt, &bytes);
    rows.len = 0;
    dcb d = {&rows, 0};
    int src = kj_scan_range(n->s, NULL, t, NULL, 0, NULL, 0, dump_cb, &d);
    if (crc || src || cnt || d.n) {
      ora_obuf_addf(o, "table %u count=%" PRIu64 " bytes=%" PRIu64, t, cnt,
                    bytes);
      if (crc || src)
        ora_obuf_addf(o, " count rc=%d scan rc=%d", crc, src);
      ora_obuf_add(o, "\n", 1);
      if (rows.len)
        ora_obuf_add(o, rows.p, rows.len);
    }
  }
  ora_obuf_free(&rows);
}

/* ---- the SQLite reference ----------------------------------------------- */

enum q {
  Q_PUT,
  Q_DEL,
  Q_GET,
  Q_PRE_GET,
  Q_PRE_REC,
  Q_PRE_CLEAR,
  Q_PRE_ANY,
  Q_SCAN,
  Q_SCAN_C,
  Q_DUMP,
  Q_TOTAL,
  Q_BEGIN,
  Q_COMMIT,
  Q_ROLLBACK,
  Q_SP,
  Q_SP_ROLLBACK,
  Q_SP_RELEASE,
  NQ
};

static const char *const qsql[NQ] = {
    [Q_PUT] = "INSERT OR REPLACE INTO kv(tbl, k, v) VALUES(?1, ?2, ?3)",
    [Q_DEL] = "DELETE FROM kv WHERE tbl = ?1 AND k = ?2",
    [Q_GET] = "SELECT v FROM kv WHERE tbl = ?1 AND k = ?2",
    [Q_PRE_GET] = "SELECT existed, v FROM pre WHERE tbl = ?1 AND k = ?2",
    [Q_PRE_REC] = "INSERT OR IGNORE INTO pre(tbl, k, existed, v) VALUES(?1, ?2,"
                  " (SELECT count(*) FROM kv WHERE tbl = ?1 AND k = ?2),"
                  " (SELECT v FROM kv WHERE tbl = ?1 AND k = ?2))",
    [Q_PRE_CLEAR] = "DELETE FROM pre",
    [Q_PRE_ANY] = "SELECT EXISTS (SELECT 1 FROM pre)",
    [Q_SCAN] = "SELECT k, v FROM kv WHERE tbl = ?1"
               " AND (?2 IS NULL OR k >= ?2) AND (?3 IS NULL OR k < ?3)"
               " ORDER BY k",
    /* The committed state while a write transaction is open. */
    [Q_SCAN_C] = "SELECT k, v FROM kv WHERE tbl = ?1"
                 " AND (?2 IS NULL OR k >= ?2) AND (?3 IS NULL OR k < ?3)"
                 " AND NOT EXISTS (SELECT 1 FROM pre p"
                 "  WHERE p.tbl = ?1 AND p.k = kv.k)"
                 " UNION ALL "
                 "SELECT k, v FROM pre WHERE tbl = ?1 AND existed"
                 " AND (?2 IS NULL OR k >= ?2) AND (?3 IS NULL OR k < ?3)"
                 " ORDER BY 1",
    [Q_DUMP] = "SELECT tbl, k, v FROM kv ORDER BY tbl, k",
    [Q_TOTAL] = "SELECT count(*), total(length(k) + length(v)) FROM kv",
    [Q_BEGIN] = "BEGIN",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_SP] = "SAVEPOINT sp",
    [Q_SP_ROLLBACK] = "ROLLBACK TO sp",
    [Q_SP_RELEASE] = "RELEASE sp",
};

/* Rowid tables: in a WITHOUT ROWID table the value would be part of the
 * b-tree key, and every lookup past a row of megabytes would read it. */
static const char SCHEMA[] =
    "CREATE TABLE kv(tbl INTEGER NOT NULL, k BLOB NOT NULL, v BLOB NOT NULL,"
    " PRIMARY KEY(tbl, k));"
    "CREATE TABLE pre(tbl INTEGER NOT NULL, k BLOB NOT NULL,"
    " existed INTEGER NOT NULL, v BLOB, PRIMARY KEY(tbl, k));";

#define TX_NONE 0
#define TX_W 1
#define TX_RO 2

typedef struct ref {
  sqlite3 *db;
  sqlite3_stmt *q[NQ];
  int open; /* TX_* */
  int sp;   /* the savepoint is set */
  int err;  /* a SQLite call failed (the run is void) */
  char errmsg[256];
} ref;

static void ref_fail(ref *r, const char *what) {
  if (r->err)
    return;
  r->err = 1;
  snprintf(r->errmsg, sizeof r->errmsg, "%s: %s", what,
           r->db ? sqlite3_errmsg(r->db) : "no database");
}

static void ref_close(ref *r) {
  for (int i = 0; i < NQ; i++)
    sqlite3_finalize(r->q[i]);
  sqlite3_close(r->db);
  memset(r->q, 0, sizeof r->q);
  r->db = NULL;
}

static int ref_open(ref *r) {
  memset(r, 0, sizeof *r);
  if (sqlite3_open_v2(":memory:", &r->db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                          SQLITE_OPEN_NOMUTEX,
                      NULL) != SQLITE_OK) {
    ref_fail(r, "open");
    ref_close(r);
    return KJ_EIO;
  }
  if (sqlite3_exec(r->db, SCHEMA, NULL, NULL, NULL) != SQLITE_OK) {
    ref_fail(r, "schema");
    ref_close(r);
    return KJ_EIO;
  }
  for (int i = 0; i < NQ; i++)
    if (sqlite3_prepare_v2(r->db, qsql[i], -1, &r->q[i], NULL) != SQLITE_OK) {
      ref_fail(r, qsql[i]);
      ref_close(r);
      return KJ_EIO;
    }
  return KJ_OK;
}

/* Bind a byte string: NULL stays SQL NULL, anything else is a BLOB (an
 * empty one too). */
static void bind_bytes(sqlite3_stmt *st, int i, const void *p, size_t n) {
  if (!p)
    sqlite3_bind_null(st, i);
  else if (!n)
    sqlite3_bind_zeroblob(st, i, 0);
  else
    sqlite3_bind_blob64(st, i, p, n, SQLITE_STATIC);
}

static void q_reset(sqlite3_stmt *st) {
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
}

/* Run a statement that returns no rows. */
static void q_exec(ref *r, enum q which) {
  sqlite3_stmt *st = r->q[which];
  if (sqlite3_step(st) != SQLITE_DONE)
    ref_fail(r, qsql[which]);
  q_reset(st);
}

static void q_bind_tk(sqlite3_stmt *st, unsigned table, const void *k,
                      size_t kl) {
  sqlite3_bind_int64(st, 1, (sqlite3_int64)table);
  bind_bytes(st, 2, k, kl);
}

static int table_ok(uint32_t t) {
  return t >= KJ_TABLE_MIN && t <= KJ_TABLE_MAX;
}

static int key_ok(const void *k, size_t kl) {
  return k && kl >= 1 && kl <= KJ_MAX_KEY;
}

/* Look a row up: in the transaction's current state, or (committed) as it
 * was before the open write transaction changed it. 1 found (the text of
 * its value appended to v), 0 not. */
static int ref_lookup(ref *r, unsigned table, const void *k, size_t kl,
                      int committed, ora_obuf *v) {
  int found = -1;
  if (committed && r->open == TX_W) {
    sqlite3_stmt *st = r->q[Q_PRE_GET];
    q_bind_tk(st, table, k, kl);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) {
      found = sqlite3_column_int(st, 0) != 0;
      if (found)
        bytes_text(v, sqlite3_column_blob(st, 1),
                   (size_t)sqlite3_column_bytes(st, 1));
    } else if (s != SQLITE_DONE) {
      ref_fail(r, "pre lookup");
    }
    q_reset(st);
    if (found >= 0)
      return found;
  }
  sqlite3_stmt *st = r->q[Q_GET];
  q_bind_tk(st, table, k, kl);
  int s = sqlite3_step(st);
  found = 0;
  if (s == SQLITE_ROW) {
    found = 1;
    bytes_text(v, sqlite3_column_blob(st, 0),
               (size_t)sqlite3_column_bytes(st, 0));
  } else if (s != SQLITE_DONE) {
    ref_fail(r, "lookup");
  }
  q_reset(st);
  if (!found && !committed && selftest_break == 1 && r->open == TX_W) {
    /* Wrong on purpose: a row the transaction deleted reads as committed. */
    return ref_lookup(r, table, k, kl, 1, v);
  }
  return found;
}

/* A write of the open transaction (or an autocommit one). */
static void ref_write(ref *r, unsigned table, const void *k, size_t kl,
                      const void *v, size_t vl, int del) {
  if (r->open == TX_W) {
    sqlite3_stmt *st = r->q[Q_PRE_REC];
    q_bind_tk(st, table, k, kl);
    if (sqlite3_step(st) != SQLITE_DONE)
      ref_fail(r, "pre record");
    q_reset(st);
  }
  sqlite3_stmt *st = r->q[del ? Q_DEL : Q_PUT];
  q_bind_tk(st, table, k, kl);
  if (!del)
    bind_bytes(st, 3, v ? v : empty_byte, vl);
  if (sqlite3_step(st) != SQLITE_DONE)
    ref_fail(r, del ? "delete" : "put");
  q_reset(st);
}

static void ref_get(ref *r, const kvx *x, const kvop *op, int committed,
                    ora_obuf *o) {
  const void *k;
  size_t kl;
  key_of(x, op->key, &k, &kl);
  if (!table_ok(op->table) || !key_ok(k, kl) || op->outnull) {
    ora_obuf_addf(o, "rc=%d", KJ_EINVAL);
    return;
  }
  ora_obuf v = {0};
  if (ref_lookup(r, op->table, k, kl, committed, &v)) {
    ora_obuf_addf(o, "rc=%d v=", KJ_OK);
    ora_obuf_add(o, v.p, v.len);
  } else {
    ora_obuf_addf(o, "rc=%d", KJ_NOTFOUND);
  }
  ora_obuf_free(&v);
}

/* A scan: status, rows and what the callback did. scan_txn is what the
 * native scan passes (TX_NONE: NULL; TX_W, TX_RO: that transaction). */
static void ref_scan(ref *r, const kvx *x, const kvop *op, int whole,
                     int committed, int scan_txn, ora_obuf *o) {
  const void *lo = NULL, *hi = NULL;
  size_t lol = 0, hil = 0;
  if (!whole) {
    key_of(x, op->lo, &lo, &lol);
    key_of(x, op->hi, &hi, &hil);
  }
  if (!table_ok(op->table) || (op->fnnull && !whole) || (lol && !lo) ||
      lol > KJ_MAX_KEY || (hi && hil > KJ_MAX_KEY)) {
    ora_obuf_addf(o, "rc=%d n=0:", KJ_EINVAL);
    return;
  }
  if (!lol)
    lo = NULL; /* no lower bound */
  int cb = whole ? CB_PLAIN : op->cb;
  uint32_t stop = whole ? 0 : op->stop;
  sqlite3_stmt *st = r->q[committed && r->open == TX_W ? Q_SCAN_C : Q_SCAN];
  sqlite3_bind_int64(st, 1, (sqlite3_int64)op->table);
  bind_bytes(st, 2, lo, lol);
  bind_bytes(st, 3, hi, hil);
  ora_obuf rows = {0};
  size_t n = 0;
  int rc = KJ_OK, s;
  while ((s = sqlite3_step(st)) == SQLITE_ROW) {
    n++;
    row_text(&rows, " ", sqlite3_column_blob(st, 0),
             (size_t)sqlite3_column_bytes(st, 0), sqlite3_column_blob(st, 1),
             (size_t)sqlite3_column_bytes(st, 1));
    /* A callback's write through the scan's own transaction is refused
     * (read-only, or a write during its own scan); with txn NULL it would
     * wait for the thread's own scan. */
    if (cb == CB_WRITE && n == 1)
      ora_obuf_addf(&rows, "(w=%d)",
                    scan_txn == TX_NONE ? KJ_EDEADLK : KJ_EINVAL);
    else if (cb == CB_READ)
      ora_obuf_addf(&rows, "(r=ok)");
    else if (cb == CB_BEGIN && n == 1)
      /* A write begin from a scan callback would wait for the thread
       * itself; a read-only one never waits for it. */
      ora_obuf_addf(&rows, "(b=%d,%d,%d)", KJ_EDEADLK, KJ_OK, KJ_OK);
    if (stop && n == stop && op->ret) { /* 0 goes on */
      rc = op->ret;
      break;
    }
  }
  if (s != SQLITE_ROW && s != SQLITE_DONE)
    ref_fail(r, "scan");
  q_reset(st);
  ora_obuf_addf(o, "rc=%d n=%zu:", rc, n);
  if (rows.len)
    ora_obuf_add(o, rows.p, rows.len);
  ora_obuf_free(&rows);
}

/* Does the open write transaction have changes (rows in pre)? */
static int ref_pre_any(ref *r) {
  sqlite3_stmt *st = r->q[Q_PRE_ANY];
  int any = 0;
  if (sqlite3_step(st) == SQLITE_ROW)
    any = sqlite3_column_int(st, 0) != 0;
  else
    ref_fail(r, qsql[Q_PRE_ANY]);
  q_reset(st);
  return any;
}

/* End the reference's transaction (commit or roll back). */
static void ref_end(ref *r, int commit) {
  if (r->open)
    q_exec(r, commit ? Q_COMMIT : Q_ROLLBACK);
  if (r->open == TX_W)
    q_exec(r, Q_PRE_CLEAR);
  r->open = TX_NONE;
  r->sp = 0;
}

static void ref_apply(ref *r, const kvx *x, const kvop *op, ora_obuf *o) {
  switch ((enum kind)op->kind) {
  case OP_BEGIN:
    if (r->open && op->ro) {
      ora_obuf_addf(o, "skip (open)");
    } else if (r->open) {
      /* A write begin on a thread that holds a transaction. */
      ora_obuf_addf(o, "rc=%d", KJ_EDEADLK);
    } else {
      q_exec(r, Q_BEGIN);
      r->open = op->ro ? TX_RO : TX_W;
      r->sp = 0;
      ora_obuf_addf(o, "rc=%d", KJ_OK);
    }
    break;
  case OP_BEGIN_BAD:
    ora_obuf_addf(o, "rc=%d", KJ_EINVAL);
    break;
  case OP_COMMIT:
    ora_obuf_addf(o, "rc=%d", r->open ? KJ_OK : KJ_EINVAL);
    ref_end(r, 1);
    break;
  case OP_ROLLBACK:
    ref_end(r, 0);
    ora_obuf_addf(o, "done");
    break;
  case OP_SP:
    if (r->open == TX_W) {
      if (r->sp) /* one savepoint: a second one moves it */
        q_exec(r, Q_SP_RELEASE);
      q_exec(r, Q_SP);
      r->sp = 1;
      ora_obuf_addf(o, "rc=%d", KJ_OK);
    } else {
      ora_obuf_addf(o, "rc=%d", KJ_EINVAL);
    }
    break;
  case OP_SP_ROLLBACK:
    if (r->open == TX_W && r->sp) {
      if (selftest_break != 2) /* wrong on purpose: keep the changes */
        q_exec(r, Q_SP_ROLLBACK);
      q_exec(r, Q_SP_RELEASE);
      r->sp = 0;
    }
    ora_obuf_addf(o, "done");
    break;
  case OP_SP_RELEASE:
    if (r->open == TX_W && r->sp) {
      q_exec(r, Q_SP_RELEASE);
      r->sp = 0;
    }
    ora_obuf_addf(o, "done");
    break;
  case OP_PUT:
  case OP_DEL: {
    if (op->use_txn && !r->open) {
      ora_obuf_addf(o, "skip (no transaction)");
      break;
    }
    const void *k, *v = NULL;
    size_t kl, vl = 0;
    key_of(x, op->key, &k, &kl);
    if (op->kind == OP_PUT)
      val_of(x, op, &v, &vl);
    if (!table_ok(op->table) || !key_ok(k, kl) || vl > KJ_MAX_VALUE ||
        (vl && !v))
      ora_obuf_addf(o, "rc=%d", KJ_EINVAL);
    else if (!op->use_txn && r->open) /* would wait for its own thread */
      ora_obuf_addf(o, "rc=%d", KJ_EDEADLK);
    else if (op->use_txn && r->open == TX_RO)
      ora_obuf_addf(o, "rc=%d", KJ_EINVAL);
    else {
      ref_write(r, op->table, k, kl, v, vl, op->kind == OP_DEL);
      ora_obuf_addf(o, "rc=%d", KJ_OK);
    }
    break;
  }
  case OP_GET:
    if (op->use_txn && !r->open) {
      ora_obuf_addf(o, "skip (no transaction)");
      break;
    }
    ref_get(r, x, op, !op->use_txn || r->open == TX_RO, o);
    break;
  case OP_SCAN: {
    if (op->use_txn && !r->open) {
      ora_obuf_addf(o, "skip (no transaction)");
      break;
    }
    int committed = !op->use_txn || r->open == TX_RO;
    if (selftest_break == 3) /* wrong on purpose: ignore own writes */
      committed = 1;
    ref_scan(r, x, op, 0, committed, op->use_txn ? r->open : TX_NONE, o);
    break;
  }
  case OP_PEEK:
  case OP_COMMIT_UNDER_RO:
    if (op->kind == OP_COMMIT_UNDER_RO && r->open != TX_W) {
      ora_obuf_addf(o, "skip (no write transaction)");
      break;
    }
    ora_obuf_addf(o, "begin=%d", KJ_OK);
    if (op->kind == OP_COMMIT_UNDER_RO) {
      /* The commit would wait for the thread's own read-only transaction:
       * refused, and the transaction is rolled back. Except (the engine's
       * choice, which store.h's list of KJ_EDEADLK cases does not make)
       * when the transaction has no changes: then nothing is applied,
       * nothing waits, and the commit succeeds. Its changes are exactly
       * the keys in pre (a failed write records none; ROLLBACK TO takes
       * back the rows of the keys first changed after the savepoint, as
       * kj_txn_rollback_savepoint takes them out of the write set). */
      int changed = ref_pre_any(r);
      ref_end(r, !changed);
      ora_obuf_addf(o, " commit=%d", changed ? KJ_EDEADLK : KJ_OK);
    }
    ora_obuf_addf(o, " get:");
    ref_get(r, x, op, 1, o);
    if (op->kind == OP_PEEK) {
      ora_obuf_addf(o, " scan:");
      ref_scan(r, x, op, 1, 1, TX_RO, o);
    }
    ora_obuf_addf(o, " end=%d", KJ_OK);
    break;
  }
  ora_obuf_addf(o, " | %s", !r->open ? "-" : r->open == TX_RO ? "R" : "W");
}

static void ref_dump(ref *r, ora_obuf *o) {
  sqlite3_stmt *st = r->q[Q_TOTAL];
  if (sqlite3_step(st) == SQLITE_ROW)
    ora_obuf_addf(o, "stats rc=0 rows=%" PRIu64 " bytes=%" PRIu64 "\n",
                  (uint64_t)sqlite3_column_int64(st, 0),
                  (uint64_t)sqlite3_column_int64(st, 1));
  else
    ref_fail(r, "totals");
  q_reset(st);
  st = r->q[Q_DUMP];
  ora_obuf rows = {0};
  int64_t cur = -1;
  uint64_t cnt = 0, bytes = 0;
  int s;
  for (;;) {
    s = sqlite3_step(st);
    int64_t t = s == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -2;
    if (t != cur && cur >= 0) {
      ora_obuf_addf(o,
                    "table %" PRId64 " count=%" PRIu64 " bytes=%" PRIu64 "\n",
                    cur, cnt, bytes);
      ora_obuf_add(o, rows.p, rows.len);
      rows.len = 0;
      cnt = bytes = 0;
    }
    if (s != SQLITE_ROW)
      break;
    cur = t;
    size_t kl = (size_t)sqlite3_column_bytes(st, 1);
    size_t vl = (size_t)sqlite3_column_bytes(st, 2);
    row_text(&rows, "  ", sqlite3_column_blob(st, 1), kl,
             sqlite3_column_blob(st, 2), vl);
    ora_obuf_add(&rows, "\n", 1);
    cnt++;
    bytes += kl + vl;
  }
  if (s != SQLITE_DONE)
    ref_fail(r, "dump");
  q_reset(st);
  ora_obuf_free(&rows);
}

/* ---- generation ----------------------------------------------------------
 */

typedef struct gen {
  uint64_t s;
  const kvx *x;
  kvop *ops;
  size_t n, cap;
  int open; /* TX_* as the ops so far leave it */
  /* (table, key) pairs written lately, so that ops meet them again. */
  uint32_t rt[16];
  uint16_t rk[16];
  unsigned nrecent, ri;
} gen;

static uint64_t rnd(gen *g) {
  uint64_t z = (g->s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static uint32_t below(gen *g, uint32_t n) { return (uint32_t)(rnd(g) % n); }
static int chance(gen *g, unsigned pct) { return below(g, 100) < pct; }

static kvop *emit(gen *g, int kind) {
  if (g->n >= g->cap)
    return NULL;
  kvop *op = &g->ops[g->n++];
  memset(op, 0, sizeof *op);
  op->kind = (uint8_t)kind;
  op->key = op->lo = op->hi = C_NULL0;
  op->table = good_tables[0];
  switch (kind) { /* gen_one sets open after a begin it means to work */
  case OP_COMMIT:
  case OP_ROLLBACK:
  case OP_COMMIT_UNDER_RO:
    g->open = TX_NONE;
    break;
  default:
    break;
  }
  return op;
}

static void remember(gen *g, uint32_t t, uint16_t k) {
  if (!table_ok(t) || k >= NKEYS)
    return;
  g->rt[g->ri] = t;
  g->rk[g->ri] = k;
  g->ri = (g->ri + 1) % 16;
  if (g->nrecent < 16)
    g->nrecent++;
}

static uint32_t pick_table(gen *g) {
  uint32_t r = below(g, 100);
  if (r < 50)
    return 1;
  if (r < 78)
    return 2;
  if (r < 96)
    return 255;
  return bad_tables[below(g, 3)];
}

/* A valid (table, key) pair, often one written lately. */
static void pick_valid(gen *g, uint32_t *t, uint16_t *k) {
  if (g->nrecent && chance(g, 55)) {
    unsigned i = below(g, g->nrecent);
    *t = g->rt[i];
    *k = g->rk[i];
    return;
  }
  *t = good_tables[below(g, 3)];
  *k = (uint16_t)below(g, NKEYS);
}

/* Any (table, key) pair: mostly valid, sometimes a bad table or key. */
static void pick_any(gen *g, uint32_t *t, uint16_t *k) {
  pick_valid(g, t, k);
  if (chance(g, 4))
    *t = pick_table(g);
  if (chance(g, 5)) {
    static const uint16_t bad[] = {C_NULL0, C_EMPTY, C_NULLLEN, C_OVER};
    *k = bad[below(g, 4)];
  }
}

static void pick_value(gen *g, kvop *op) {
  uint32_t r = below(g, 1000);
  op->vs = (uint8_t)below(g, 256);
  if (r < 100)
    op->vlen = 0;
  else if (r < 200)
    op->vlen = 1;
  else if (r < 700)
    op->vlen = 2 + below(g, 39);
  else if (r < 968)
    op->vlen = 41 + below(g, 3000);
  else if (r < 978)
    op->vlen = KJ_MAX_VALUE + 1; /* the largest valid ones: g_big */
  else if (r < 990)
    op->vnull = 1, op->vlen = 0; /* NULL, 0: an empty value */
  else
    op->vnull = 1, op->vlen = 5; /* NULL, 5: KJ_EINVAL */
}

static uint16_t pick_bound(gen *g) {
  uint32_t r = below(g, 100);
  if (r < 25)
    return C_NULL0;
  if (r < 30)
    return C_EMPTY;
  if (r < 32)
    return C_NULLLEN;
  if (r < 34)
    return C_OVER;
  if (g->nrecent && r < 70)
    return g->rk[below(g, g->nrecent)];
  return (uint16_t)below(g, NKEYS);
}

static int kcmp(const kvx *x, uint16_t a, uint16_t b) {
  size_t n = x->klen[a] < x->klen[b] ? x->klen[a] : x->klen[b];
  int c = memcmp(x->keys[a], x->keys[b], n);
  if (c)
    return c;
  return x->klen[a] < x->klen[b] ? -1 : x->klen[a] > x->klen[b];
}

static kvop *g_put(gen *g, int use_txn, uint32_t t, uint16_t k) {
  kvop *op = emit(g, OP_PUT);
  if (!op)
    return NULL;
  op->use_txn = (uint8_t)use_txn;
  op->table = t;
  op->key = k;
  pick_value(g, op);
  if (!op->vnull && op->vlen <= KJ_MAX_VALUE)
    remember(g, t, k);
  return op;
}

static kvop *g_row(gen *g, int kind, int use_txn, uint32_t t, uint16_t k) {
  kvop *op = emit(g, kind);
  if (!op)
    return NULL;
  op->use_txn = (uint8_t)use_txn;
  op->table = t;
  op->key = k;
  if (kind == OP_GET && chance(g, 2))
    op->outnull = 1;
  return op;
}

static kvop *g_scan(gen *g, int use_txn, uint32_t t) {
  kvop *op = emit(g, OP_SCAN);
  if (!op)
    return NULL;
  op->use_txn = (uint8_t)use_txn;
  op->table = t;
  op->lo = pick_bound(g);
  op->hi = chance(g, 12) ? op->lo : pick_bound(g);
  uint32_t r = below(g, 100);
  op->cb = r < 70 ? CB_PLAIN : r < 82 ? CB_WRITE : r < 92 ? CB_READ : CB_BEGIN;
  if (chance(g, 22)) {
    op->stop = 1 + below(g, 4);
    op->ret = chance(g, 50) ? 42 : -77;
  }
  if (chance(g, 1))
    op->fnnull = 1;
  return op;
}

/* A scan of table t between two keys, in one of the boundary shapes. */
static void g_scan_bounds(gen *g, uint32_t t) {
  uint16_t a = (uint16_t)below(g, NKEYS), b = (uint16_t)below(g, NKEYS);
  if (g->nrecent) {
    unsigned i = below(g, g->nrecent);
    t = g->rt[i];
    a = g->rk[i];
  }
  kvop *op = g_scan(g, 1, t);
  if (!op)
    return;
  op->cb = CB_PLAIN;
  op->fnnull = 0;
  switch (below(g, 5)) {
  case 0: /* start == end: nothing */
    op->lo = op->hi = a;
    break;
  case 1: /* start > end: nothing */
    op->lo = kcmp(g->x, a, b) >= 0 ? a : b;
    op->hi = kcmp(g->x, a, b) >= 0 ? b : a;
    break;
  case 2: /* start on an existing key: included */
    op->lo = a;
    op->hi = C_NULL0;
    break;
  case 3: /* end on an existing key: excluded */
    op->lo = C_NULL0;
    op->hi = a;
    break;
  default: /* [a, b) in order */
    op->lo = kcmp(g->x, a, b) <= 0 ? a : b;
    op->hi = kcmp(g->x, a, b) <= 0 ? b : a;
    break;
  }
}

/* A value of KJ_MAX_VALUE (or one byte less) bytes, read back by a get and
 * a scan that starts on its key, then replaced by a small one: every op
 * that meets a row that size copies and hashes megabytes, so such rows
 * live only a few ops. */
static void g_big(gen *g, int use_txn) {
  uint32_t t;
  uint16_t k;
  pick_valid(g, &t, &k);
  kvop *op = g_put(g, use_txn, t, k);
  if (op) {
    op->vnull = 0;
    op->vlen = chance(g, 70) ? KJ_MAX_VALUE : KJ_MAX_VALUE - 1;
  }
  g_row(g, OP_GET, use_txn, t, k);
  if ((op = g_scan(g, use_txn, t))) {
    op->lo = k;
    op->hi = C_NULL0;
    op->fnnull = 0;
    op->stop = 1 + below(g, 2);
    op->ret = 42;
  }
  if ((op = g_put(g, use_txn, t, k)) && (op->vnull || op->vlen > 3000)) {
    op->vnull = 0;
    op->vlen = below(g, 40);
  }
}

/* Scripted sequences inside a write transaction. */
static void g_pattern(gen *g) {
  uint32_t t, t2;
  uint16_t k, k2, k3;
  pick_valid(g, &t, &k);
  pick_valid(g, &t2, &k2);
  k3 = (uint16_t)below(g, NKEYS);
  switch (below(g, 6)) {
  case 0: /* read-your-writes around a delete */
    g_put(g, 1, t, k);
    g_row(g, OP_DEL, 1, t, k);
    g_row(g, OP_GET, 1, t, k);
    g_scan_bounds(g, t);
    g_put(g, 1, t, k);
    g_row(g, OP_GET, 1, t, k);
    break;
  case 1: /* delete a (probably) committed row, read around it */
    g_row(g, OP_DEL, 1, t, k);
    g_row(g, OP_GET, 1, t, k);
    g_row(g, OP_GET, 0, t, k);
    g_scan(g, 1, t);
    break;
  case 2: /* roll back to a savepoint after deletes */
    emit(g, OP_SP);
    g_row(g, OP_DEL, 1, t, k);
    g_row(g, OP_DEL, 1, t2, k2);
    g_put(g, 1, t, k3);
    g_scan(g, 1, t);
    emit(g, OP_SP_ROLLBACK);
    g_row(g, OP_GET, 1, t, k);
    g_row(g, OP_GET, 1, t2, k2);
    g_row(g, OP_GET, 1, t, k3);
    g_scan(g, 1, t);
    break;
  case 3: /* a second savepoint moves the first */
    emit(g, OP_SP);
    g_put(g, 1, t, k);
    emit(g, OP_SP);
    g_put(g, 1, t2, k2);
    g_row(g, OP_DEL, 1, t, k);
    emit(g, OP_SP_ROLLBACK);
    g_row(g, OP_GET, 1, t, k);
    g_row(g, OP_GET, 1, t2, k2);
    emit(g, OP_SP_ROLLBACK); /* none left: nothing */
    g_row(g, OP_GET, 1, t, k);
    break;
  case 4: /* released: a rollback to it does nothing */
    emit(g, OP_SP);
    g_put(g, 1, t, k);
    emit(g, OP_SP_RELEASE);
    emit(g, OP_SP_ROLLBACK);
    g_row(g, OP_GET, 1, t, k);
    break;
  default: /* scan boundaries over the transaction's writes */
    g_put(g, 1, t, k);
    g_row(g, OP_DEL, 1, t, k3);
    for (int i = 0; i < 3; i++)
      g_scan_bounds(g, t);
    break;
  }
}

static void gen_one(gen *g) {
  uint32_t t;
  uint16_t k;
  uint32_t r = below(g, 1000);
  kvop *op;
  if (g->open == TX_NONE) {
    if (r < 140) {
      if ((op = emit(g, OP_BEGIN)))
        g->open = TX_W;
    } else if (r < 180) {
      if ((op = emit(g, OP_BEGIN))) {
        op->ro = 1;
        g->open = TX_RO;
      }
    } else if (r < 190) {
      emit(g, OP_BEGIN_BAD);
    } else if (r < 197) {
      emit(g, OP_COMMIT);
    } else if (r < 202) {
      emit(g, OP_ROLLBACK);
    } else if (r < 210) {
      emit(g, OP_SP + (int)below(g, 3));
    } else if (r < 500) {
      pick_any(g, &t, &k);
      g_put(g, 0, t, k);
    } else if (r < 620) {
      pick_any(g, &t, &k);
      g_row(g, OP_DEL, 0, t, k);
    } else if (r < 780) {
      pick_any(g, &t, &k);
      g_row(g, OP_GET, 0, t, k);
    } else if (r < 940) {
      g_scan(g, 0, chance(g, 95) ? good_tables[below(g, 3)] : pick_table(g));
    } else if (r < 941 && chance(g, 50)) {
      g_big(g, 0);
    } else {
      pick_valid(g, &t, &k);
      g_row(g, OP_PEEK, 0, t, k);
    }
    return;
  }
  if (g->open == TX_W) {
    if (r < 58) {
      g_pattern(g);
    } else if (r < 59 && chance(g, 50)) {
      g_big(g, 1);
    } else if (r < 300) {
      pick_any(g, &t, &k);
      g_put(g, 1, t, k);
    } else if (r < 400) {
      pick_any(g, &t, &k);
      g_row(g, OP_DEL, 1, t, k);
    } else if (r < 530) {
      pick_any(g, &t, &k);
      g_row(g, OP_GET, 1, t, k);
    } else if (r < 620) {
      g_scan(g, 1, chance(g, 95) ? good_tables[below(g, 3)] : pick_table(g));
    } else if (r < 660) {
      emit(g, OP_SP);
    } else if (r < 690) {
      emit(g, OP_SP_ROLLBACK);
    } else if (r < 710) {
      emit(g, OP_SP_RELEASE);
    } else if (r < 790) {
      emit(g, OP_COMMIT);
    } else if (r < 820) {
      emit(g, OP_ROLLBACK);
    } else if (r < 845) {
      pick_valid(g, &t, &k);
      g_row(g, OP_GET, 0, t, k); /* the committed state */
    } else if (r < 865) {
      g_scan(g, 0, good_tables[below(g, 3)]);
    } else if (r < 890) {
      pick_valid(g, &t, &k); /* KJ_EDEADLK */
      if ((op = g_row(g, chance(g, 50) ? OP_PUT : OP_DEL, 0, t, k)))
        op->vlen = 3;
    } else if (r < 905) {
      emit(g, OP_BEGIN); /* KJ_EDEADLK */
    } else if (r < 935) {
      pick_valid(g, &t, &k);
      g_row(g, OP_PEEK, 0, t, k);
    } else if (r < 945) {
      pick_valid(g, &t, &k);
      g_row(g, OP_COMMIT_UNDER_RO, 0, t, k);
    } else if (r < 950) {
      emit(g, OP_BEGIN_BAD);
    } else {
      pick_valid(g, &t, &k);
      g_put(g, 1, t, k);
    }
    return;
  }
  /* A read-only transaction. */
  if (r < 250) {
    pick_any(g, &t, &k);
    g_row(g, OP_GET, 1, t, k);
  } else if (r < 450) {
    g_scan(g, 1, good_tables[below(g, 3)]);
  } else if (r < 520) {
    pick_valid(g, &t, &k); /* KJ_EINVAL */
    if (chance(g, 50))
      g_put(g, 1, t, k);
    else
      g_row(g, OP_DEL, 1, t, k);
  } else if (r < 570) {
    emit(g, OP_SP + (int)below(g, 3));
  } else if (r < 620) {
    pick_valid(g, &t, &k); /* KJ_EDEADLK */
    if ((op = g_row(g, OP_PUT, 0, t, k)))
      op->vlen = 2;
  } else if (r < 670) {
    pick_valid(g, &t, &k);
    g_row(g, OP_GET, 0, t, k);
  } else if (r < 720) {
    pick_valid(g, &t, &k);
    g_row(g, OP_PEEK, 0, t, k);
  } else if (r < 750) {
    emit(g, OP_BEGIN); /* a write begin: KJ_EDEADLK */
  } else if (r < 880) {
    emit(g, OP_COMMIT);
  } else {
    emit(g, OP_ROLLBACK);
  }
}

static int gen_ops(const kvx *x, uint64_t seed, size_t n, kvop **out) {
  gen g;
  memset(&g, 0, sizeof g);
  g.s = seed ^ 0x6b762d6f70730000ull;
  g.x = x;
  g.cap = n;
  g.ops = calloc(n ? n : 1, sizeof *g.ops);
  if (!g.ops)
    return KJ_ENOMEM;
  while (g.n < n)
    gen_one(&g);
  *out = g.ops;
  return KJ_OK;
}

/* ---- describing ops ----------------------------------------------------- */

static void d_key(ora_obuf *o, const kvx *x, unsigned code) {
  switch (code) {
  case C_NULL0:
    ora_obuf_addf(o, "NULL, 0");
    return;
  case C_EMPTY:
    ora_obuf_addf(o, "\"\", 0");
    return;
  case C_NULLLEN:
    ora_obuf_addf(o, "NULL, 3");
    return;
  case C_OVER:
    ora_obuf_addf(o, "K(%u x 'a'), %u", KJ_MAX_KEY + 1, KJ_MAX_KEY + 1);
    return;
  default:
    break;
  }
  const kspec *k = &kspecs[code];
  if (k->nfill) {
    ora_obuf_addf(o, "K(%u x ", (unsigned)k->nfill);
    if (k->fill >= 0x20 && k->fill < 0x7f)
      ora_obuf_addf(o, "'%c'", k->fill);
    else
      ora_obuf_addf(o, "'\\%03o'", k->fill);
    if (k->tlen)
      ora_obuf_addf(o, " + ");
  }
  if (k->tlen || !k->nfill) {
    ora_obuf_addf(o, "\"");
    for (size_t i = 0; i < k->tlen; i++) {
      uint8_t c = (uint8_t)k->tail[i];
      if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
        ora_obuf_addf(o, "%c", c);
      else
        ora_obuf_addf(o, "\\%03o", c);
    }
    ora_obuf_addf(o, "\"");
  }
  if (k->nfill)
    ora_obuf_addf(o, ")");
  ora_obuf_addf(o, ", %zu", x->klen[code]);
}

static const char *txn_arg(const kvop *op) {
  return op->use_txn ? "t" : "NULL";
}

/* One op as a C statement (with a comment on what the scan callback
 * does). */
static void d_op(ora_obuf *o, const kvx *x, const kvop *op) {
  switch ((enum kind)op->kind) {
  case OP_BEGIN:
    ora_obuf_addf(o, "kj_txn_begin(s, %s, &t);",
                  op->ro ? "KJ_TXN_READONLY" : "0");
    return;
  case OP_BEGIN_BAD:
    ora_obuf_addf(o, "kj_txn_begin(s, 0x%x, &t2);", BAD_FLAGS);
    return;
  case OP_COMMIT:
    ora_obuf_addf(o, "kj_txn_commit(t);");
    return;
  case OP_ROLLBACK:
    ora_obuf_addf(o, "kj_txn_rollback(t);");
    return;
  case OP_SP:
    ora_obuf_addf(o, "kj_txn_savepoint(t);");
    return;
  case OP_SP_ROLLBACK:
    ora_obuf_addf(o, "kj_txn_rollback_savepoint(t);");
    return;
  case OP_SP_RELEASE:
    ora_obuf_addf(o, "kj_txn_release_savepoint(t);");
    return;
  case OP_PUT:
    ora_obuf_addf(o, "kj_put(s, %s, %" PRIu32 ", ", txn_arg(op), op->table);
    d_key(o, x, op->key);
    if (op->vnull)
      ora_obuf_addf(o, ", NULL, %" PRIu32 ");", op->vlen);
    else
      ora_obuf_addf(o, ", V(%u), %" PRIu32 ");", op->vs, op->vlen);
    return;
  case OP_DEL:
    ora_obuf_addf(o, "kj_delete(s, %s, %" PRIu32 ", ", txn_arg(op), op->table);
    d_key(o, x, op->key);
    ora_obuf_addf(o, ");");
    return;
  case OP_GET:
    ora_obuf_addf(o, "kj_get(s, %s, %" PRIu32 ", ", txn_arg(op), op->table);
    d_key(o, x, op->key);
    ora_obuf_addf(o, ", %s, &vlen);", op->outnull ? "NULL" : "&v");
    return;
  case OP_SCAN:
    ora_obuf_addf(o, "kj_scan_range(s, %s, %" PRIu32 ", ", txn_arg(op),
                  op->table);
    d_key(o, x, op->lo);
    ora_obuf_addf(o, ", ");
    d_key(o, x, op->hi);
    ora_obuf_addf(o, ", %s, &arg);", op->fnnull ? "NULL" : "cb");
    if (op->fnnull)
      return;
    if (op->cb == CB_WRITE)
      ora_obuf_addf(o, " /* cb puts its first row back through the scan's "
                       "txn */");
    else if (op->cb == CB_READ)
      ora_obuf_addf(o, " /* cb reads every row back */");
    else if (op->cb == CB_BEGIN)
      ora_obuf_addf(o, " /* cb at row 1: kj_txn_begin(s, 0, &w), "
                       "kj_txn_begin(s, KJ_TXN_READONLY, &r), "
                       "kj_txn_commit(r) */");
    if (op->stop)
      ora_obuf_addf(o, " /* cb returns %" PRId32 " at row %" PRIu32 " */",
                    op->ret, op->stop);
    return;
  case OP_PEEK:
  case OP_COMMIT_UNDER_RO:
    ora_obuf_addf(o, "{ kj_txn_begin(s, KJ_TXN_READONLY, &r); ");
    if (op->kind == OP_COMMIT_UNDER_RO)
      ora_obuf_addf(o, "kj_txn_commit(t); ");
    ora_obuf_addf(o, "kj_get(s, r, %" PRIu32 ", ", op->table);
    d_key(o, x, op->key);
    ora_obuf_addf(o, ", &v, &vlen); ");
    if (op->kind == OP_PEEK)
      ora_obuf_addf(o,
                    "kj_scan_range(s, r, %" PRIu32 ", NULL, 0, NULL, 0, "
                    "cb, &arg); ",
                    op->table);
    ora_obuf_addf(o, "kj_txn_commit(r); }");
    return;
  }
}

/* ---- runs ----------------------------------------------------------------
 */

typedef struct outcome {
  int diverged;
  int at_dump;
  size_t index;
  size_t ops_run;
  ora_obuf ta, tb;
} outcome;

static void outcome_free(outcome *o) {
  ora_obuf_free(&o->ta);
  ora_obuf_free(&o->tb);
}

static int text_eq(const ora_obuf *a, const ora_obuf *b) {
  return a->len == b->len && (!a->len || !memcmp(a->p, b->p, a->len));
}

/* The first differing line of two dumps, with the table it is in. */
static void first_diff(const ora_obuf *a, const ora_obuf *b, outcome *o) {
  size_t n = a->len < b->len ? a->len : b->len, i = 0, line = 0, sec = 0;
  while (i < n && a->p[i] == b->p[i]) {
    if (a->p[i] == '\n') {
      line = i + 1;
      if (line + 6 <= a->len && !memcmp(a->p + line, "table ", 6))
        sec = line;
    }
    i++;
  }
  const ora_obuf *src[2] = {a, b};
  ora_obuf *dst[2] = {&o->ta, &o->tb};
  for (int k = 0; k < 2; k++) {
    const ora_obuf *s = src[k];
    if (sec < line) {
      size_t e = sec;
      while (e < s->len && s->p[e] != '\n')
        e++;
      ora_obuf_addf(dst[k], "[%.*s] ", (int)(e - sec), s->p + sec);
    }
    size_t end = line;
    while (end < s->len && s->p[end] != '\n')
      end++;
    if (line < s->len)
      ora_obuf_add(dst[k], s->p + line, end - line);
    else
      ora_obuf_addf(dst[k], "<end of dump>");
  }
}

static int dumps_differ(nat *n, ref *r, outcome *o) {
  ora_obuf da = {0}, db = {0};
  nat_dump(n, &da);
  ref_dump(r, &db);
  int differ = !text_eq(&da, &db);
  if (differ)
    first_diff(&da, &db, o);
  ora_obuf_free(&da);
  ora_obuf_free(&db);
  return differ;
}

/* Run ops[idx[0..m)] (idx NULL: ops[0..m)) on a fresh store and a fresh
 * reference. KJ_OK, or the error that kept the run from working. */
static int run_ops(const kvx *x, const kvop *ops, const size_t *idx, size_t m,
                   outcome *o, char *why, size_t whylen) {
  nat n;
  ref r;
  memset(o, 0, sizeof *o);
  int rc = nat_open(&n);
  if (rc != KJ_OK) {
    snprintf(why, whylen, "kj_store_open: %s", kj_strerror(rc));
    return rc;
  }
  rc = ref_open(&r);
  if (rc != KJ_OK) {
    snprintf(why, whylen, "SQLite %s", r.errmsg);
    nat_close(&n);
    return rc;
  }
  ora_obuf ta = {0}, tb = {0};
  int pending = 0;
  for (size_t i = 0; i < m && !o->diverged && !r.err; i++) {
    const kvop *op = &ops[idx ? idx[i] : i];
    ta.len = tb.len = 0;
    ora_beat();
    nat_apply(x, &n, op, &ta);
    ref_apply(&r, x, op, &tb);
    o->ops_run = i + 1;
    if (!text_eq(&ta, &tb)) {
      o->diverged = 1;
      o->index = i;
      ora_obuf_add(&o->ta, ta.p, ta.len);
      ora_obuf_add(&o->tb, tb.p, tb.len);
      break;
    }
    if ((i + 1) % DUMP_EVERY == 0)
      pending = 1;
    if (pending && !n.t && !r.open) {
      pending = 0;
      if (dumps_differ(&n, &r, o)) {
        o->diverged = 1;
        o->at_dump = 1;
        o->index = i;
      }
    }
  }
  if (n.t)
    kj_txn_rollback(n.t);
  n.t = NULL;
  ref_end(&r, 0);
  if (!o->diverged && !r.err && dumps_differ(&n, &r, o)) {
    o->diverged = 1;
    o->at_dump = 1;
    o->index = m ? m - 1 : 0;
  }
  ora_obuf_free(&ta);
  ora_obuf_free(&tb);
  rc = KJ_OK;
  if (r.err) {
    snprintf(why, whylen, "SQLite reference: %s", r.errmsg);
    rc = KJ_EIO;
  }
  nat_close(&n);
  ref_close(&r);
  return rc;
}

/* Does ops[idx[0..m)] diverge? (ora_shrink's test) */
typedef struct shrink_ctx {
  const kvx *x;
  const kvop *ops;
} shrink_ctx;

static int diverges(void *arg, const size_t *idx, size_t m) {
  const shrink_ctx *sx = arg;
  outcome o;
  char why[300];
  int d = run_ops(sx->x, sx->ops, idx, m, &o, why, sizeof why) == KJ_OK &&
          o.diverged;
  outcome_free(&o);
  return d;
}

static void quote_text(ora_obuf *r, const char *label, const ora_obuf *t) {
  size_t n = t->len < REPORT_TEXT_MAX ? t->len : REPORT_TEXT_MAX;
  ora_obuf_addf(r, "  %s", label);
  if (n)
    ora_obuf_add(r, t->p, n);
  ora_obuf_addf(r, "%s\n", n < t->len ? " ..." : "");
}

static void report_texts(ora_obuf *r, const outcome *o) {
  if (o->at_dump)
    ora_obuf_addf(r, "  state dumps differ:\n");
  quote_text(r, "native:    ", &o->ta);
  quote_text(r, "reference: ", &o->tb);
}

int ora_kv_check(ora_campaign *c, uint64_t seed, size_t ops) {
  if (!c)
    return KJ_EINVAL;
  kvx x;
  int rc = kvx_init(&x);
  if (rc != KJ_OK)
    return rc;
  kvop *seq = NULL;
  if ((rc = gen_ops(&x, seed, ops, &seq)) != KJ_OK) {
    kvx_free(&x);
    return rc;
  }
  outcome o;
  char why[300] = "";
  rc = run_ops(&x, seq, NULL, ops, &o, why, sizeof why);
  c->kv_ops += o.ops_run;
  if (rc != KJ_OK) {
    ora_obuf_addf(&c->report,
                  "kv: seed=%" PRIu64 " ops=%zu: the run failed: %s\n", seed,
                  ops, why);
    outcome_free(&o);
    free(seq);
    kvx_free(&x);
    return rc;
  }
  if (o.diverged) {
    ora_obuf *r = &c->report;
    c->divergences++;
    ora_obuf_addf(r, "kv: seed=%" PRIu64 " ops=%zu op_index=%zu%s\n", seed, ops,
                  o.index, o.at_dump ? " (state dump)" : "");
    ora_obuf_addf(r, "  op: ");
    d_op(r, &x, &seq[o.index]);
    ora_obuf_addf(r, "\n");
    report_texts(r, &o);
    size_t m = o.index + 1, runs = 0;
    size_t *idx = calloc(m, sizeof *idx);
    if (idx) {
      for (size_t i = 0; i < m; i++)
        idx[i] = i;
      shrink_ctx sx = {&x, seq};
      ora_shrink(idx, &m, SHRINK_MAX_RUNS, &runs, diverges, &sx);
      outcome so;
      int src = run_ops(&x, seq, idx, m, &so, why, sizeof why);
      int still = src == KJ_OK && so.diverged;
      ora_obuf_addf(r,
                    "  shrunk reproducer: %zu op%s (%zu runs)%s; on a fresh "
                    "memory-only store s; K(n x 'c' + \"t\") is n bytes c "
                    "then t; V(i), n is n bytes of the oracle's fixed value "
                    "pattern from offset i\n",
                    m, m == 1 ? "" : "s", runs,
                    still ? "" : " [NO LONGER DIVERGES]");
      for (size_t i = 0; i < m; i++) {
        ora_obuf_addf(r, "    %zu. ", i + 1);
        d_op(r, &x, &seq[idx[i]]);
        ora_obuf_addf(r, "   /* op %zu */\n", idx[i]);
      }
      if (still) {
        ora_obuf_addf(r, "  diverges at step %zu%s\n", so.index + 1,
                      so.at_dump ? " (state dump)" : "");
        report_texts(r, &so);
      }
      outcome_free(&so);
      free(idx);
    }
  }
  outcome_free(&o);
  free(seq);
  kvx_free(&x);
  return KJ_OK;
}
