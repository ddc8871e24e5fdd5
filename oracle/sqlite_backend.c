/*
 * oracle/sqlite_backend.c - the SQLite reference backend of the test
 * oracle (ora_sqlite_open, oracle/oracle.h), and, built against SQLCipher,
 * the encrypted contender of the benchmark (ora_sqlite_open_keyed).
 *
 * It owns one more implementation of the whole domain contract
 * (keyjournal/sys/backend.h, doc/CONTRACT.md), written the way a
 * SQLite-based messaging client stores the same rows, so that the
 * differential runner can compare the native journal engine against
 * something simple and obviously right. Every edge-case choice copies the
 * native backend (src/native/): where the two disagree, one of them has
 * a bug. Clarity beats speed here: one statement per step, explicit
 * transactions, no cleverness.
 *
 * Plaintext: the unkeyed database, and the extra bytes of a snapshot copy
 * (<label>.db.extra), are written in clear. This is a test oracle, never a
 * store for real keys; the native backend seals both (doc/FORMAT.md 6.4).
 *
 * Schema (every key and identifier a BLOB, so ORDER BY compares with
 * memcmp, shorter first on a common prefix: exactly the contract's order;
 * u32 / u64 / i64 numbers as INTEGER, a u64 stored as its i64 bit pattern):
 *
 *   meta(name TEXT PRIMARY KEY, value INTEGER)
 *       'next_device_id': the id the next kj_device_create hands out
 *       (absent: 1). It only grows, so an id is never reused.
 *   devices(id INTEGER PRIMARY KEY, label BLOB UNIQUE)    one row per slot;
 *       label NULL for a slot made by kj_device_create
 *   device_records(device_id PK, phone_jid, lid, registration_id,
 *       noise_pub, noise_priv, identity_pub, identity_priv,
 *       signed_prekey_pub, signed_prekey_priv, signed_prekey_id,
 *       signed_prekey_sig, adv_secret, account, push_name, app_version_0..2,
 *       app_version_fetched_at_ms, edge_routing, props_hash)
 *       optional fields NULL when absent (a present empty one is a
 *       zero-length BLOB)
 *   local_identity(device_id PK, registration_id, public_key, private_key)
 *   identity_keys(device_id, address, public_key)       PK(device_id, address)
 *       public_key 32 or 33 bytes
 *   sessions(device_id, address, record, user_record NULL)
 *                                                       PK(device_id, address)
 *       a session of (name, device id) is the row at the address
 *       kj_address_encode() gives (computed here by sq_address)
 *   prekeys(device_id, id, record, uploaded)            PK(device_id, id)
 *   signed_prekeys(device_id, id, record)               PK(device_id, id)
 *   sender_keys(device_id, name, record, user_record NULL)
 *                                                       PK(device_id, name)
 *       user_record NULL when there is none (an empty one is none)
 *   sync_keys(device_id, key_id, key_data, fingerprint, timestamp)
 *                                                       PK(device_id, key_id)
 *   sync_latest(device_id PK, key_id)          the key_id set last (commit
 *                                               order, not the timestamp)
 *   sync_versions(device_id, name, version, hash)       PK(device_id, name)
 *   sync_version_entries(device_id, name, entry_name, entry_value)
 *                                          PK(device_id, name, entry_name)
 *   mutation_macs(device_id, name, index_mac, version, value_mac)
 *                                           PK(device_id, name, index_mac)
 *   skdm_recipients(device_id, group_id, jid)  PK(device_id, group_id, jid)
 *   lid_mappings(device_id, lid, phone, created_at, updated_at, source)
 *       PK(device_id, lid), INDEX lid_mappings_by_phone(device_id, phone)
 *   base_keys(device_id, address, msg_id, base_key)
 *                                           PK(device_id, address, msg_id)
 *   device_lists(device_id, user, timestamp, phash NULL) PK(device_id, user)
 *   device_list_entries(device_id, user, pos, wa_device_id, key_index NULL)
 *                                           PK(device_id, user, pos)
 *   sender_key_forget(device_id, group_id, participant)
 *                                     PK(device_id, group_id, participant)
 *   tc_tokens(device_id, jid, token, token_ts, sender_ts NULL)
 *                                                       PK(device_id, jid)
 *   ratchets(device_id, conv, root_key, sending_chain NULL,
 *       receiving_chain NULL, dh_self_secret, dh_remote NULL, msg_send,
 *       msg_recv, prev_chain_len)                       PK(device_id, conv)
 *   skipped_keys(device_id, conv, public_key, msg_num, message_key,
 *       created_at)                 PK(device_id, conv, public_key, msg_num)
 *
 * Every device_id column is REFERENCES devices(id) ON DELETE CASCADE, so
 * deleting a slot is one `DELETE FROM devices WHERE id=?`.
 *
 * Transactions: kj_tx is BEGIN IMMEDIATE ... COMMIT / ROLLBACK; inside it
 * every write op runs under SAVEPOINT ora_op so that a failing op changes
 * nothing; an op without a kj_tx runs in its own BEGIN (IMMEDIATE for
 * writes) ... COMMIT. The connection is NOMUTEX: a mutex serialises the
 * handle's calls, and a condition variable makes a second kj_tx (or an op
 * without one) from another thread wait for the open kj_tx, as the native
 * backend's writer lock does.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "oracle.h"

/* The benchmark also builds this file against SQLCipher (bench/bench.am:
 * bench/bench_sqlcipher), and Debian's SQLCipher 3.4.1 is SQLite 3.15.2:
 * no sqlite3_prepare_v3 (3.20), sqlite3_changes64 (3.37) or UPSERT (3.24,
 * see upsert_compat). These bridge the gap; with the SQLite the oracle
 * links, nothing changes. */
#if SQLITE_VERSION_NUMBER < 3020000
#define SQLITE_PREPARE_PERSISTENT 0
#define sqlite3_prepare_v3(db, sql, n, flags, st, tail)                        \
  sqlite3_prepare_v2(db, sql, n, st, tail)
#endif
#if SQLITE_VERSION_NUMBER < 3037000
#define sqlite3_changes64 sqlite3_changes
#endif

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY,"
    " value INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS devices(id INTEGER PRIMARY KEY,"
    " label BLOB UNIQUE);"
#define DEV                                                                    \
  "device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE"
    "CREATE TABLE IF NOT EXISTS device_records(" DEV ", phone_jid BLOB,"
    " lid BLOB, registration_id INTEGER NOT NULL, noise_pub BLOB NOT NULL,"
    " noise_priv BLOB NOT NULL, identity_pub BLOB NOT NULL,"
    " identity_priv BLOB NOT NULL, signed_prekey_pub BLOB NOT NULL,"
    " signed_prekey_priv BLOB NOT NULL, signed_prekey_id INTEGER NOT NULL,"
    " signed_prekey_sig BLOB NOT NULL, adv_secret BLOB NOT NULL,"
    " account BLOB, push_name BLOB NOT NULL, app_version_0 INTEGER NOT NULL,"
    " app_version_1 INTEGER NOT NULL, app_version_2 INTEGER NOT NULL,"
    " app_version_fetched_at_ms INTEGER NOT NULL, edge_routing BLOB,"
    " props_hash BLOB, PRIMARY KEY(device_id));"
    "CREATE TABLE IF NOT EXISTS local_identity(" DEV ","
    " registration_id INTEGER NOT NULL, public_key BLOB NOT NULL,"
    " private_key BLOB NOT NULL, PRIMARY KEY(device_id));"
    "CREATE TABLE IF NOT EXISTS identity_keys(" DEV ", address BLOB NOT NULL,"
    " public_key BLOB NOT NULL, PRIMARY KEY(device_id, address));"
    "CREATE TABLE IF NOT EXISTS sessions(" DEV ", address BLOB NOT NULL,"
    " record BLOB NOT NULL, user_record BLOB,"
    " PRIMARY KEY(device_id, address));"
    "CREATE TABLE IF NOT EXISTS prekeys(" DEV ", id INTEGER NOT NULL,"
    " record BLOB NOT NULL, uploaded INTEGER NOT NULL,"
    " PRIMARY KEY(device_id, id));"
    "CREATE TABLE IF NOT EXISTS signed_prekeys(" DEV ", id INTEGER NOT NULL,"
    " record BLOB NOT NULL, PRIMARY KEY(device_id, id));"
    "CREATE TABLE IF NOT EXISTS sender_keys(" DEV ", name BLOB NOT NULL,"
    " record BLOB NOT NULL, user_record BLOB, PRIMARY KEY(device_id, name));"
    "CREATE TABLE IF NOT EXISTS sync_keys(" DEV ", key_id BLOB NOT NULL,"
    " key_data BLOB NOT NULL, fingerprint BLOB NOT NULL,"
    " timestamp INTEGER NOT NULL, PRIMARY KEY(device_id, key_id));"
    "CREATE TABLE IF NOT EXISTS sync_latest(" DEV ", key_id BLOB NOT NULL,"
    " PRIMARY KEY(device_id));"
    "CREATE TABLE IF NOT EXISTS sync_versions(" DEV ", name BLOB NOT NULL,"
    " version INTEGER NOT NULL, hash BLOB NOT NULL,"
    " PRIMARY KEY(device_id, name));"
    "CREATE TABLE IF NOT EXISTS sync_version_entries(" DEV ","
    " name BLOB NOT NULL, entry_name BLOB NOT NULL,"
    " entry_value BLOB NOT NULL, PRIMARY KEY(device_id, name, entry_name));"
    "CREATE TABLE IF NOT EXISTS mutation_macs(" DEV ", name BLOB NOT NULL,"
    " index_mac BLOB NOT NULL, version INTEGER NOT NULL,"
    " value_mac BLOB NOT NULL, PRIMARY KEY(device_id, name, index_mac));"
    "CREATE TABLE IF NOT EXISTS skdm_recipients(" DEV ","
    " group_id BLOB NOT NULL, jid BLOB NOT NULL,"
    " PRIMARY KEY(device_id, group_id, jid));"
    "CREATE TABLE IF NOT EXISTS lid_mappings(" DEV ", lid BLOB NOT NULL,"
    " phone BLOB NOT NULL, created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL, source BLOB NOT NULL,"
    " PRIMARY KEY(device_id, lid));"
    "CREATE INDEX IF NOT EXISTS lid_mappings_by_phone"
    " ON lid_mappings(device_id, phone);"
    "CREATE TABLE IF NOT EXISTS base_keys(" DEV ", address BLOB NOT NULL,"
    " msg_id BLOB NOT NULL, base_key BLOB NOT NULL,"
    " PRIMARY KEY(device_id, address, msg_id));"
    "CREATE TABLE IF NOT EXISTS device_lists(" DEV ", user BLOB NOT NULL,"
    " timestamp INTEGER NOT NULL, phash BLOB, PRIMARY KEY(device_id, user));"
    "CREATE TABLE IF NOT EXISTS device_list_entries(" DEV ","
    " user BLOB NOT NULL, pos INTEGER NOT NULL,"
    " wa_device_id INTEGER NOT NULL, key_index INTEGER,"
    " PRIMARY KEY(device_id, user, pos));"
    "CREATE TABLE IF NOT EXISTS sender_key_forget(" DEV ","
    " group_id BLOB NOT NULL, participant BLOB NOT NULL,"
    " PRIMARY KEY(device_id, group_id, participant));"
    "CREATE TABLE IF NOT EXISTS tc_tokens(" DEV ", jid BLOB NOT NULL,"
    " token BLOB NOT NULL, token_ts INTEGER NOT NULL, sender_ts INTEGER,"
    " PRIMARY KEY(device_id, jid));"
    "CREATE TABLE IF NOT EXISTS ratchets(" DEV ", conv BLOB NOT NULL,"
    " root_key BLOB NOT NULL, sending_chain BLOB, receiving_chain BLOB,"
    " dh_self_secret BLOB NOT NULL, dh_remote BLOB,"
    " msg_send INTEGER NOT NULL, msg_recv INTEGER NOT NULL,"
    " prev_chain_len INTEGER NOT NULL, PRIMARY KEY(device_id, conv));"
    "CREATE TABLE IF NOT EXISTS skipped_keys(" DEV ", conv BLOB NOT NULL,"
    " public_key BLOB NOT NULL, msg_num INTEGER NOT NULL,"
    " message_key BLOB NOT NULL, created_at INTEGER NOT NULL,"
    " PRIMARY KEY(device_id, conv, public_key, msg_num));";
#undef DEV

/* ---- the handle --------------------------------------------------------- */

typedef struct sq_cached {
  const char *sql; /* a string literal: cached by its address */
  sqlite3_stmt *st;
} sq_cached;

typedef struct sq_backend {
  kj_backend base; /* first */
  sqlite3 *db;
  kj_clock_fn clock;
  void *clock_ctx;
  pthread_mutex_t mu; /* one call on the connection at a time */
  pthread_cond_t cv;  /* signalled when the open kj_tx ends */
  int tx_open;
  pthread_t tx_owner;
  sq_cached *cache;
  size_t ncache, capcache;
  char err[512];
} sq_backend;

typedef struct sq_tx {
  kj_tx base; /* first */
  /* SQLite rolled the whole transaction back after an error (it does so
   * on SQLITE_FULL, IOERR, NOMEM...): every later op and the commit fail. */
  int broken;
} sq_tx;

static sq_backend *sqb(kj_backend *b) { return (sq_backend *)b; }

static int failf(sq_backend *b, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int failf(sq_backend *b, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(b->err, sizeof b->err, fmt, ap);
  va_end(ap);
  return rc;
}

static int map_sqlite(int code) {
  switch (code & 0xff) {
  case SQLITE_FULL:
    return KJ_ENOSPC;
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    return KJ_EBUSY;
  case SQLITE_NOMEM:
    return KJ_ENOMEM;
  default:
    return KJ_EIO;
  }
}

/* Map a failed SQLite call and keep its message. */
static int sq_fail(sq_backend *b, int code) {
  return failf(b, map_sqlite(code), "sqlite: %s (%d)", sqlite3_errmsg(b->db),
               code);
}

/* ---- statements --------------------------------------------------------- */

static size_t count_char(const char *p, const char *end, char c) {
  size_t n = 0;
  for (; p < end; p++)
    n += *p == c;
  return n;
}

/* SQLite before 3.24 has no UPSERT. "INSERT INTO t(cols) VALUES(...) ON
 * CONFLICT(keys) DO UPDATE SET c=excluded.c, ..." whose SET gives every
 * column outside keys its new value writes the same row as "INSERT OR
 * REPLACE INTO t(cols) VALUES(...)" (no foreign key refers to these
 * tables, and there are no triggers): that text, malloc'd, or NULL when sql
 * is not such a statement (it then fails to prepare there, loudly). Only
 * used on an old SQLite (the SQLCipher benchmark helper). */
static char *upsert_compat(const char *sql) {
  static const char ins[] = "INSERT INTO ", oc_s[] = " ON CONFLICT(",
                    set_s[] = " DO UPDATE SET ", ex_s[] = "=excluded.";
  const char *oc = strstr(sql, oc_s);
  if (strncmp(sql, ins, sizeof ins - 1) != 0 || !oc)
    return NULL;
  const char *cols = strchr(sql, '(');
  const char *cols_end = cols ? strchr(cols, ')') : NULL;
  const char *keys = oc + sizeof oc_s - 1, *keys_end = strchr(keys, ')');
  const char *set = keys_end ? strstr(keys_end, set_s) : NULL;
  if (!cols_end || cols_end > oc || !set)
    return NULL;
  size_t ncols = count_char(cols, cols_end, ',') + 1;
  size_t nkeys = count_char(keys, keys_end, ',') + 1;
  size_t nset = 0;
  for (const char *p = set; (p = strstr(p, ex_s)) != NULL; p++)
    nset++;
  if (nset + nkeys != ncols ||
      count_char(set, set + strlen(set), ',') + 1 != nset)
    return NULL;
  size_t head = (size_t)(oc - sql) - (sizeof "INSERT" - 1);
  size_t n = sizeof "INSERT OR REPLACE" + head;
  char *out = malloc(n);
  if (out)
    snprintf(out, n, "INSERT OR REPLACE%.*s", (int)head,
             sql + sizeof "INSERT" - 1);
  return out;
}

/* The cached statement of sql, reset and unbound. */
static int prep(sq_backend *b, const char *sql, sqlite3_stmt **st) {
  for (size_t i = 0; i < b->ncache; i++)
    if (b->cache[i].sql == sql) {
      sqlite3_reset(b->cache[i].st);
      sqlite3_clear_bindings(b->cache[i].st);
      *st = b->cache[i].st;
      return KJ_OK;
    }
  if (b->ncache == b->capcache) {
    size_t cap = b->capcache ? 2 * b->capcache : 64;
    sq_cached *c = realloc(b->cache, cap * sizeof *c);
    if (!c)
      return failf(b, KJ_ENOMEM, "out of memory");
    b->cache = c;
    b->capcache = cap;
  }
  char *alt = sqlite3_libversion_number() < 3024000 ? upsert_compat(sql) : NULL;
  int r = sqlite3_prepare_v3(b->db, alt ? alt : sql, -1,
                             SQLITE_PREPARE_PERSISTENT, st, NULL);
  free(alt);
  if (r != SQLITE_OK)
    return sq_fail(b, r);
  b->cache[b->ncache++] = (sq_cached){sql, *st};
  return KJ_OK;
}

/* One step: 1 a row, 0 done, or a negative status; the statement is reset
 * unless it stopped on a row. */
static int step(sq_backend *b, sqlite3_stmt *st) {
  int r = sqlite3_step(st);
  if (r == SQLITE_ROW)
    return 1;
  if (r == SQLITE_DONE) {
    sqlite3_reset(st);
    return 0;
  }
  int rc = sq_fail(b, r);
  sqlite3_reset(st);
  return rc;
}

/* Arguments of a statement, bound as ?1, ?2, ... */
typedef struct sq_arg {
  int kind; /* 0 NULL, 1 blob, 2 integer */
  const void *p;
  size_t n;
  int64_t i;
} sq_arg;

#define AB(p_, n_) ((sq_arg){1, (p_), (n_), 0})
#define AI(v_) ((sq_arg){2, NULL, 0, (int64_t)(v_)})
#define AN ((sq_arg){0, NULL, 0, 0})
/* An optional blob (kj_blob with a has_ flag). */
#define AOPT(has_, b_) ((has_) ? AB((b_).p, (b_).len) : AN)
#define ARGS(...)                                                              \
  (const sq_arg[]){__VA_ARGS__},                                               \
      (int)(sizeof((const sq_arg[]){__VA_ARGS__}) / sizeof(sq_arg))

static int bind(sq_backend *b, sqlite3_stmt *st, const sq_arg *a, int n) {
  for (int i = 0; i < n; i++) {
    int r;
    if (a[i].kind == 1) /* never a NULL pointer: that would bind NULL */
      r = sqlite3_bind_blob64(st, i + 1, a[i].n ? a[i].p : (const void *)"",
                              a[i].n, SQLITE_STATIC);
    else if (a[i].kind == 2)
      r = sqlite3_bind_int64(st, i + 1, a[i].i);
    else
      r = sqlite3_bind_null(st, i + 1);
    if (r != SQLITE_OK)
      return sq_fail(b, r);
  }
  return KJ_OK;
}

static int stmt(sq_backend *b, const char *sql, const sq_arg *a, int n,
                sqlite3_stmt **st) {
  int rc = prep(b, sql, st);
  return rc ? rc : bind(b, *st, a, n);
}

/* Run a statement that returns no row. */
static int exec(sq_backend *b, const char *sql, const sq_arg *a, int n) {
  sqlite3_stmt *st;
  int rc = stmt(b, sql, a, n, &st);
  if (rc)
    return rc;
  int r = step(b, st);
  if (r == 1) {
    sqlite3_reset(st);
    r = 0;
  }
  return r;
}

/* Run a query: KJ_OK with *st on its first row (the caller resets it),
 * KJ_NOTFOUND, or an error. */
static int query(sq_backend *b, const char *sql, const sq_arg *a, int n,
                 sqlite3_stmt **st) {
  int rc = stmt(b, sql, a, n, st);
  if (rc)
    return rc;
  int r = step(b, *st);
  return r == 1 ? KJ_OK : r == 0 ? KJ_NOTFOUND : r;
}

static int run(sq_backend *b, const char *sql) { return exec(b, sql, NULL, 0); }

/* ---- columns ------------------------------------------------------------ */

/* A BLOB column (zero-length blobs come back as a NULL pointer: give a real
 * one, so memcpy never sees NULL). *has is 0 for SQL NULL. */
static const uint8_t *col_blob(sqlite3_stmt *st, int i, size_t *n, int *has) {
  int type = sqlite3_column_type(st, i);
  if (has)
    *has = type != SQLITE_NULL;
  const uint8_t *p = sqlite3_column_blob(st, i);
  *n = (size_t)sqlite3_column_bytes(st, i);
  return p ? p : (const uint8_t *)"";
}

/* A fixed-size BLOB column into dst, or KJ_ECORRUPT. */
static int col_fixed(sq_backend *b, sqlite3_stmt *st, int i, uint8_t *dst,
                     size_t n) {
  size_t len;
  int has;
  const uint8_t *p = col_blob(st, i, &len, &has);
  if (!has || len != n)
    return failf(b, KJ_ECORRUPT, "column %s: %zu bytes, want %zu",
                 sqlite3_column_name(st, i), len, n);
  memcpy(dst, p, n);
  return KJ_OK;
}

/* An optional fixed-size column: *has 0 for NULL (dst left zeroed). */
static int col_opt_fixed(sq_backend *b, sqlite3_stmt *st, int i, int *has,
                         uint8_t *dst, size_t n) {
  *has = sqlite3_column_type(st, i) != SQLITE_NULL;
  return *has ? col_fixed(b, st, i, dst, n) : KJ_OK;
}

/* ---- growable buffer ---------------------------------------------------- */

typedef struct sq_buf {
  uint8_t *p;
  size_t len, cap;
  int oom;
} sq_buf;

static size_t buf_add(sq_buf *w, const void *p, size_t n) {
  size_t off = w->len;
  if (w->oom || !n)
    return off;
  if (w->len + n > w->cap) {
    size_t cap = w->cap ? w->cap : 256;
    while (cap < w->len + n)
      cap *= 2;
    uint8_t *q = realloc(w->p, cap);
    if (!q) {
      w->oom = 1;
      return off;
    }
    w->p = q;
    w->cap = cap;
  }
  memcpy(w->p + w->len, p, n);
  w->len += n;
  return off;
}

static void buf_free(sq_buf *w) {
  free(w->p);
  memset(w, 0, sizeof *w);
}

/* The n uint32_t ids gathered in ids as *out (kj_free), unless rc (or
 * running out of memory) says otherwise; ids is freed either way. */
static int u32_list_out(int rc, sq_buf *ids, size_t n, kj_u32_list **out) {
  if (!rc && ids->oom)
    rc = KJ_ENOMEM;
  kj_u32_list *l = rc ? NULL : malloc(sizeof *l + n * sizeof l->v[0]);
  if (!rc && !l)
    rc = KJ_ENOMEM;
  if (!rc) {
    l->n = n;
    if (n)
      memcpy(l->v, ids->p, n * sizeof l->v[0]);
    *out = l;
  }
  buf_free(ids);
  return rc;
}

/* ---- operations: transaction and slot handling ------------------------- */

enum { OP_READ = 0, OP_WRITE = 1, OP_WRITE_ANY = 2 };

typedef struct sq_op {
  sq_backend *b;
  sq_tx *t;
  int write;
} sq_op;

/* Take the handle for one call. Without a kj_tx, wait for another
 * thread's open kj_tx to end; this thread's own would never end while it
 * waits, so that is refused (the native backend would block forever on a
 * write; a read would see the committed state). */
static int lock_handle(sq_backend *b, kj_tx *t) {
  pthread_mutex_lock(&b->mu);
  while (!t && b->tx_open) {
    if (pthread_equal(b->tx_owner, pthread_self())) {
      failf(b, KJ_EDEADLK,
            "sqlite: a call without its kj_tx while this thread holds one");
      pthread_mutex_unlock(&b->mu);
      return KJ_EDEADLK;
    }
    pthread_cond_wait(&b->cv, &b->mu);
  }
  return KJ_OK;
}

static int slot_exists(sq_backend *b, uint32_t dev) {
  sqlite3_stmt *st;
  int rc = query(b, "SELECT 1 FROM devices WHERE id=?1", ARGS(AI(dev)), &st);
  if (rc == KJ_OK) {
    sqlite3_reset(st);
    return 1;
  }
  return rc == KJ_NOTFOUND ? 0 : rc;
}

static int op_end(sq_op *op, int rc);

/* Start an op as nat_begin does: OP_WRITE into slot dev fails with
 * KJ_NOTFOUND unless the slot exists (0 never does), before anything else
 * is looked at. */
static int op_begin(kj_backend *kb, kj_tx *t, int mode, uint32_t dev,
                    sq_op *op) {
  sq_backend *b = sqb(kb);
  if (mode == OP_WRITE && dev == 0)
    return KJ_NOTFOUND; /* slot ids start at 1 */
  op->b = b;
  op->t = (sq_tx *)t;
  op->write = mode != OP_READ;
  int rc = lock_handle(b, t);
  if (rc)
    return rc;
  if (t && op->t->broken)
    rc = failf(b, KJ_EIO,
               "sqlite: the transaction was rolled back by an "
               "earlier failure");
  else if (t)
    rc = op->write ? run(b, "SAVEPOINT ora_op") : KJ_OK;
  else
    rc = run(b, op->write ? "BEGIN IMMEDIATE" : "BEGIN");
  if (rc) {
    pthread_mutex_unlock(&b->mu);
    return rc;
  }
  if (mode == OP_WRITE) {
    int ex = slot_exists(b, dev);
    if (ex != 1) {
      op_end(op, KJ_EINVAL); /* undo the savepoint / own transaction */
      return ex ? ex : KJ_NOTFOUND;
    }
  }
  return KJ_OK;
}

/* Finish an op as nat_end does: KJ_OK and KJ_NOTFOUND keep the writes,
 * anything else undoes them (to the savepoint inside a kj_tx). */
static int op_end(sq_op *op, int rc) {
  sq_backend *b = op->b;
  int keep = rc == KJ_OK || rc == KJ_NOTFOUND;
  if (op->t) {
    if (op->write && !sqlite3_get_autocommit(b->db)) {
      int r = keep ? KJ_OK : run(b, "ROLLBACK TO ora_op");
      int r2 = run(b, "RELEASE ora_op");
      if (keep && !rc)
        rc = r2;
      if (r || r2)
        op->t->broken = 1;
    }
    if (sqlite3_get_autocommit(b->db)) { /* SQLite dropped the whole tx */
      op->t->broken = 1;
      if (keep)
        rc = failf(b, KJ_EIO, "sqlite: transaction rolled back");
    }
  } else if (!sqlite3_get_autocommit(b->db)) {
    if (op->write && keep) {
      int c = run(b, "COMMIT");
      if (c) {
        rc = c;
        if (!sqlite3_get_autocommit(b->db))
          run(b, "ROLLBACK");
      }
    } else {
      run(b, op->write ? "ROLLBACK" : "COMMIT");
    }
  } else if (keep && op->write) {
    rc = failf(b, KJ_EIO, "sqlite: transaction rolled back");
  }
  pthread_mutex_unlock(&b->mu);
  return rc;
}

/* A single write statement in slot dev. */
static int write1(kj_backend *kb, kj_tx *t, uint32_t dev, const char *sql,
                  const sq_arg *a, int n) {
  sq_op op;
  int rc = op_begin(kb, t, OP_WRITE, dev, &op);
  if (rc)
    return rc;
  return op_end(&op, exec(op.b, sql, a, n));
}

static int64_t now_ms(sq_backend *b) {
  if (b->clock)
    return b->clock(b->clock_ctx);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The clock in whole seconds, rounded down (also before 1970), as the
 * native ratchet store does. */
static int64_t now_secs(sq_backend *b) {
  int64_t ms = now_ms(b);
  return ms / 1000 - (ms % 1000 < 0);
}

/* A copy of a blob column in its own allocation (session records,
 * sender keys, latest key id, value MACs). */
static int take_blob(sqlite3_stmt *st, int i, void **out, size_t *len) {
  size_t n;
  const uint8_t *p = col_blob(st, i, &n, NULL);
  uint8_t *o = malloc(n ? n : 1);
  if (!o)
    return KJ_ENOMEM;
  memcpy(o, p, n);
  *out = o;
  *len = n;
  return KJ_OK;
}

/* A read of one blob column of one row. */
static int read_blob(kj_backend *kb, kj_tx *t, const char *sql, const sq_arg *a,
                     int n, void **out, size_t *len) {
  sq_op op;
  int rc = op_begin(kb, t, OP_READ, 0, &op);
  if (rc)
    return rc;
  sqlite3_stmt *st;
  rc = query(op.b, sql, a, n, &st);
  if (rc == KJ_OK) {
    rc = take_blob(st, 0, out, len);
    sqlite3_reset(st);
  }
  return op_end(&op, rc);
}

/* ---- lists -------------------------------------------------------------- */

/* Rows of byte strings collected from a query, then one kj_blob_list. */
typedef struct blob_rows {
  sq_buf items; /* size_t (off, len) pairs */
  sq_buf bytes;
  size_t n;
} blob_rows;

static void blob_rows_add(blob_rows *r, const void *p, size_t len) {
  size_t it[2] = {buf_add(&r->bytes, p, len), len};
  buf_add(&r->items, it, sizeof it);
  r->n++;
}

static int blob_rows_finish(blob_rows *r, kj_blob_list **out) {
  int rc = KJ_OK;
  if (r->items.oom || r->bytes.oom)
    rc = KJ_ENOMEM;
  size_t head = sizeof(kj_blob_list) + r->n * sizeof(kj_blob);
  kj_blob_list *l = rc ? NULL : malloc(head + r->bytes.len);
  if (!rc && !l)
    rc = KJ_ENOMEM;
  if (!rc) {
    uint8_t *p = (uint8_t *)l + head;
    if (r->bytes.len)
      memcpy(p, r->bytes.p, r->bytes.len);
    l->n = r->n;
    for (size_t i = 0; i < r->n; i++) {
      size_t it[2];
      memcpy(it, r->items.p + i * sizeof it, sizeof it);
      l->v[i] = (kj_blob){p + it[0], it[1]};
    }
    *out = l;
  }
  buf_free(&r->items);
  buf_free(&r->bytes);
  return rc;
}

/* Collect column 0 of every row of the query (already bound, stepped
 * once by query(): rc is its status). */
static int collect_blobs(sq_backend *b, sqlite3_stmt *st, int rc,
                         blob_rows *r) {
  while (rc == KJ_OK) {
    size_t n;
    const uint8_t *p = col_blob(st, 0, &n, NULL);
    blob_rows_add(r, p, n);
    int s = step(b, st);
    rc = s == 1 ? KJ_OK : s == 0 ? KJ_NOTFOUND : s;
  }
  return rc == KJ_NOTFOUND ? KJ_OK : rc;
}

static int read_blob_list(kj_backend *kb, kj_tx *t, const char *sql,
                          const sq_arg *a, int n, kj_blob_list **out) {
  sq_op op;
  int rc = op_begin(kb, t, OP_READ, 0, &op);
  if (rc)
    return rc;
  sqlite3_stmt *st;
  blob_rows r;
  memset(&r, 0, sizeof r);
  rc = query(op.b, sql, a, n, &st);
  rc = collect_blobs(op.b, st, rc, &r);
  rc = op_end(&op, rc);
  if (!rc)
    return blob_rows_finish(&r, out);
  buf_free(&r.items);
  buf_free(&r.bytes);
  return rc;
}

/* Pre-key rows, then one kj_prekey_list. */
typedef struct pk_item {
  uint32_t id;
  int uploaded;
  size_t off, len;
} pk_item;

typedef struct pk_rows {
  sq_buf items, bytes;
  size_t n;
} pk_rows;

static void pk_add(pk_rows *r, uint32_t id, int uploaded, const void *p,
                   size_t len) {
  pk_item it = {id, uploaded, buf_add(&r->bytes, p, len), len};
  buf_add(&r->items, &it, sizeof it);
  r->n++;
}

static void pk_free(pk_rows *r) {
  buf_free(&r->items);
  buf_free(&r->bytes);
}

static int pk_finish(pk_rows *r, kj_prekey_list **out) {
  int rc = r->items.oom || r->bytes.oom ? KJ_ENOMEM : KJ_OK;
  size_t head = sizeof(kj_prekey_list) + r->n * sizeof(kj_prekey);
  kj_prekey_list *l = rc ? NULL : malloc(head + r->bytes.len);
  if (!rc && !l)
    rc = KJ_ENOMEM;
  if (!rc) {
    uint8_t *p = (uint8_t *)l + head;
    if (r->bytes.len)
      memcpy(p, r->bytes.p, r->bytes.len);
    l->n = r->n;
    for (size_t i = 0; i < r->n; i++) {
      pk_item it;
      memcpy(&it, r->items.p + i * sizeof it, sizeof it);
      l->v[i] = (kj_prekey){it.id, it.uploaded, {p + it.off, it.len}};
    }
    *out = l;
  }
  pk_free(r);
  return rc;
}

/* Add the current row (id, record, uploaded) of st; uploaded column -1:
 * none (signed pre-keys). */
static void pk_add_row(pk_rows *r, sqlite3_stmt *st, int up_col) {
  size_t n;
  const uint8_t *p = col_blob(st, 1, &n, NULL);
  int up = up_col >= 0 && sqlite3_column_int64(st, up_col) != 0;
  pk_add(r, (uint32_t)sqlite3_column_int64(st, 0), up, p, n);
}

/* ---- Signal store ------------------------------------------------------- */

/* The address of (name, device_id), as kj_address_encode() documents it
 * (keyjournal/signal.h), spelled out again here: 2-byte big-endian length,
 * the name, 4-byte big-endian id. buf holds KJ_MAX_ID bytes. */
static size_t sq_address(const void *name, size_t nlen, uint32_t device_id,
                         uint8_t *buf) {
  buf[0] = (uint8_t)(nlen >> 8);
  buf[1] = (uint8_t)nlen;
  memcpy(buf + 2, name, nlen);
  for (int i = 0; i < 4; i++)
    buf[2 + nlen + (size_t)i] = (uint8_t)(device_id >> (24 - 8 * i));
  return nlen + 6;
}

static int s_identity_put_key(kj_backend *b, kj_tx *t, uint32_t dev,
                              const void *addr, size_t alen, const uint8_t *key,
                              size_t klen) {
  return write1(b, t, dev,
                "INSERT INTO identity_keys(device_id, address, public_key)"
                " VALUES(?1, ?2, ?3) ON CONFLICT(device_id, address)"
                " DO UPDATE SET public_key=excluded.public_key",
                ARGS(AI(dev), AB(addr, alen), AB(key, klen)));
}

static int s_identity_put(kj_backend *b, kj_tx *t, uint32_t dev,
                          const void *addr, size_t alen,
                          const uint8_t key[KJ_IDENTITY_KEY_BYTES]) {
  return s_identity_put_key(b, t, dev, addr, alen, key, KJ_IDENTITY_KEY_BYTES);
}

/* A public-key column: 32 or 33 bytes into key (KJ_IDENTITY_KEY_MAX
 * bytes), its length in *n, or KJ_ECORRUPT. */
static int col_pubkey(sq_backend *b, sqlite3_stmt *st, int i, uint8_t *key,
                      size_t *n) {
  int has;
  const uint8_t *p = col_blob(st, i, n, &has);
  if (!has || (*n != KJ_IDENTITY_KEY_BYTES && *n != KJ_IDENTITY_KEY_MAX))
    return failf(b, KJ_ECORRUPT, "column %s: %zu bytes, want 32 or 33",
                 sqlite3_column_name(st, i), *n);
  memcpy(key, p, *n);
  return KJ_OK;
}

/* The identity key of addr into key (KJ_IDENTITY_KEY_MAX bytes) and *n. */
static int identity_read(kj_backend *kb, kj_tx *t, uint32_t dev,
                         const void *addr, size_t alen, uint8_t *key,
                         size_t *n) {
  sq_op op;
  int rc = op_begin(kb, t, OP_READ, 0, &op);
  if (rc)
    return rc;
  sqlite3_stmt *st;
  rc = query(op.b,
             "SELECT public_key FROM identity_keys"
             " WHERE device_id=?1 AND address=?2",
             ARGS(AI(dev), AB(addr, alen)), &st);
  if (rc == KJ_OK) {
    rc = col_pubkey(op.b, st, 0, key, n);
    sqlite3_reset(st);
  }
  return op_end(&op, rc);
}

/* Via a scratch copy: a damaged row leaves key_out alone. A 33-byte key
 * gives its last 32 bytes. */
static int s_identity_load(kj_backend *kb, kj_tx *t, uint32_t dev,
                           const void *addr, size_t alen,
                           uint8_t key_out[KJ_IDENTITY_KEY_BYTES]) {
  uint8_t key[KJ_IDENTITY_KEY_MAX];
  size_t n = 0;
  int rc = identity_read(kb, t, dev, addr, alen, key, &n);
  if (!rc)
    memcpy(key_out, key + n - KJ_IDENTITY_KEY_BYTES, KJ_IDENTITY_KEY_BYTES);
  return rc;
}

static int s_identity_get_key(kj_backend *kb, kj_tx *t, uint32_t dev,
                              const void *addr, size_t alen,
                              uint8_t key_out[KJ_IDENTITY_KEY_MAX],
                              size_t *klen) {
  uint8_t key[KJ_IDENTITY_KEY_MAX];
  size_t n = 0;
  int rc = identity_read(kb, t, dev, addr, alen, key, &n);
  if (!rc) {
    memcpy(key_out, key, n);
    *klen = n;
  }
  return rc;
}

/* ---- the local identity ------------------------------------------------- */

static int s_local_identity_save(kj_backend *b, kj_tx *t, uint32_t dev,
                                 const kj_local_identity *id) {
  return write1(b, t, dev,
                "INSERT INTO local_identity(device_id, registration_id,"
                " public_key, private_key) VALUES(?1, ?2, ?3, ?4)"
                " ON CONFLICT(device_id) DO UPDATE SET"
                " registration_id=excluded.registration_id,"
                " public_key=excluded.public_key,"
                " private_key=excluded.private_key",
                ARGS(AI(dev), AI(id->registration_id),
                     AB(id->public_key, id->public_len),
                     AB(id->private_key, KJ_IDENTITY_KEY_BYTES)));
}

/* Into a scratch copy first: a damaged row leaves *out alone. */
static int s_local_identity_load(kj_backend *kb, kj_tx *t, uint32_t dev,
                                 kj_local_identity *out) {
  sq_op op;
  int rc = op_begin(kb, t, OP_READ, 0, &op);
  if (rc)
    return rc;
  sqlite3_stmt *st;
  rc = query(op.b,
             "SELECT registration_id, public_key, private_key"
             " FROM local_identity WHERE device_id=?1",
             ARGS(AI(dev)), &st);
  if (rc == KJ_OK) {
    kj_local_identity id;
    memset(&id, 0, sizeof id);
    id.registration_id = (uint32_t)sqlite3_column_int64(st, 0);
    rc = col_pubkey(op.b, st, 1, id.public_key, &id.public_len);
    if (!rc)
      rc = col_fixed(op.b, st, 2, id.private_key, KJ_IDENTITY_KEY_BYTES);
    if (!rc)
      *out = id;
    sqlite3_reset(st);
  }
  return op_end(&op, rc);
}

static int s_local_identity_delete(kj_backend *b, kj_tx *t, uint32_t dev) {
  return write1(b, t, dev, "DELETE FROM local_identity WHERE device_id=?1",
                ARGS(AI(dev)));
}

static int s_identity_delete(kj_backend *b, kj_tx *t, uint32_t dev,
                             const void *addr, size_t alen) {
  return write1(b, t, dev,
                "DELETE FROM identity_keys WHERE device_id=?1 AND address=?2",
                ARGS(AI(dev), AB(addr, alen)));
}

/* A user record of ulen bytes as an argument: NULL when there is none. */
#define AUSER(urec_, ulen_) ((ulen_) ? AB((urec_), (ulen_)) : AN)

static int session_write(kj_backend *b, kj_tx *t, uint32_t dev,
                         const void *addr, size_t alen, const void *rec,
                         size_t rlen, const void *urec, size_t ulen) {
  return write1(
      b, t, dev,
      "INSERT INTO sessions(device_id, address, record, user_record)"
      " VALUES(?1, ?2, ?3, ?4) ON CONFLICT(device_id, address)"
      " DO UPDATE SET record=excluded.record,"
      " user_record=excluded.user_record",
      ARGS(AI(dev), AB(addr, alen), AB(rec, rlen), AUSER(urec, ulen)));
}

/* No user record: one there is dropped. */
static int s_session_put(kj_backend *b, kj_tx *t, uint32_t dev,
                         const void *addr, size_t alen, const void *rec,
                         size_t rlen) {
  return session_write(b, t, dev, addr, alen, rec, rlen, NULL, 0);
}

static int s_session_get(kj_backend *b, kj_tx *t, uint32_t dev,
                         const void *addr, size_t alen, void **rec,
                         size_t *rlen) {
  return read_blob(
      b, t, "SELECT record FROM sessions WHERE device_id=?1 AND address=?2",
      ARGS(AI(dev), AB(addr, alen)), rec, rlen);
}

static int s_session_has(kj_backend *kb, kj_tx *t, uint32_t dev,
                         const void *addr, size_t alen, int *has) {
  sq_op op;
  int rc = op_begin(kb, t, OP_READ, 0, &op);
  if (rc)
    return rc;
  sqlite3_stmt *st;
  rc = query(op.b, "SELECT 1 FROM sessions WHERE device_id=?1 AND address=?2",
             ARGS(AI(dev), AB(addr, alen)), &st);
  if (rc == KJ_OK) {
    sqlite3_reset(st);
    *has = 1;
  } else if (rc == KJ_NOTFOUND) {
    rc = KJ_OK; /* *has is already 0 */
  }
  return op_end(&op, rc);
}

static int s_session_delete(kj_backend *b, kj_tx *t, uint32_t dev,
                            const void *addr, size_t alen) {
  return write1(b, t, dev,
                "DELETE FROM sessions WHERE device_id=?1 AND address=?2",
                ARGS(AI(dev), AB(addr, alen)));
}

/* A record and its user record (column 1, NULL: none) from one row, each
 * in its own allocation. */
static int take_with_user(sqlite3_stmt *st, void **rec, size_t *rlen,
                          void **urec, size_t *ulen) {
  void *r = NULL, *u = NULL;
  size_t rn = 0, un = 0;
  int rc = take_blob(st, 0, &r, &rn);
  if (!rc && sqlite3_column_type(st, 1) != SQLITE_NULL)
    rc = take_blob(st, 1, &u, &un);
  if (rc) {
    free(r);
    return rc;
  }
  *rec = r;
  *rlen = rn;
  *urec = u;
  *ulen = un;
  return KJ_OK;
}

static int read_with_user(kj_backend *kb, kj_tx *t, const char *sql,
                          const sq_arg *a, int n, void **rec, size_t *rlen,
                          void **urec, size_t *ulen) {
  sq_op op;
  int rc = op_begin(kb, t, OP_READ, 0, &op);
  if (rc)
    return rc;
  sqlite3_stmt *st;
  rc = query(op.b, sql, a, n, &st);
  if (rc == KJ_OK) {
    rc = take_with_user(st, rec, rlen, urec, ulen);
    sqlite3_reset(st);
  }
  return op_end(&op, rc);
}

static int s_session_store(kj_backend *b, kj_tx *t, uint32_t dev,
                           const void *name, size_t nlen, uint32_t device_id,
                           const void *rec, size_t rlen, const void *urec,
                           size_t ulen) {
  uint8_t addr[KJ_MAX_ID];
  size_t alen = sq_address(name, nlen, device_id, addr);
  return session_write(b, t, dev, addr, alen, rec, rlen, urec, ulen);
}

static int s_session_load(kj_backend *b, kj_tx *t, uint32_t dev,
                          const void *name, size_t nlen, uint32_t device_id,
                          void **rec, size_t *rlen, void **urec, size_t *ulen) {
  uint8_t addr[KJ_MAX_ID];
  size_t alen = sq_address(name, nlen, device_id, addr);
  return read_with_user(b, t,
                        "SELECT record, user_record FROM sessions"
                        " WHERE device_id=?1 AND address=?2",
                        ARGS(AI(dev), AB(addr, alen)), rec, rlen, urec, ulen);
}

static int s_session_contains(kj_backend *b, kj_tx *t, uint32_t dev,
                              const void *name, size_t nlen, uint32_t device_id,
                              int *has) {
  uint8_t addr[KJ_MAX_ID];
  size_t alen = sq_address(name, nlen, device_id, addr);
  return s_session_has(b, t, dev, addr, alen, has);
}

static int s_session_remove(kj_backend *b, kj_tx *t, uint32_t dev,
                            const void *name, size_t nlen, uint32_t device_id) {
  uint8_t addr[KJ_MAX_ID];
  size_t alen = sq_address(name, nlen, device_id, addr);
  return s_session_delete(b, t, dev, addr, alen);
}

/* The sessions of a name: the addresses that are its prefix (?4, ?3
 * bytes: length and name) and exactly 4 bytes more (?2 in all). */
#define NAME_ROWS                                                              \
  "device_id=?1 AND length(address)=?2 AND substr(address, 1, ?3)=?4"
#define NAME_ARGS(dev_, p_, nlen_)                                             \
  ARGS(AI(dev_), AI((nlen_) + 6), AI((nlen_) + 2), AB((p_), (nlen_) + 2))

static int s_session_list_devices(kj_backend *kb, kj_tx *t, uint32_t dev,
                                  const void *name, size_t nlen,
                                  kj_u32_list **out) {
  uint8_t p[KJ_MAX_ID];
  sq_address(name, nlen, 0, p);
  sq_op op;
  int rc = op_begin(kb, t, OP_READ, 0, &op);
  if (rc)
    return rc;
  sqlite3_stmt *st;
  sq_buf ids = {0};
  size_t n = 0;
  rc = query(
      op.b, "SELECT address FROM sessions WHERE " NAME_ROWS " ORDER BY address",
      NAME_ARGS(dev, p, nlen), &st);
  while (rc == KJ_OK) {
    size_t alen;
    const uint8_t *a = col_blob(st, 0, &alen, NULL);
    const uint8_t *d = a + alen - 4;
    uint32_t id = (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 |
                  (uint32_t)d[2] << 8 | d[3];
    buf_add(&ids, &id, sizeof id);
    n++;
    int r = step(op.b, st);
    rc = r == 1 ? KJ_OK : r == 0 ? KJ_NOTFOUND : r;
  }
  if (rc == KJ_NOTFOUND)
    rc = KJ_OK;
  rc = op_end(&op, rc);
  return u32_list_out(rc, &ids, n, out);
}

static int s_session_remove_all(kj_backend *kb, kj_tx *t, uint32_t dev,
                                const void *name, size_t nlen,
                                uint64_t *removed) {
  uint8_t p[KJ_MAX_ID];
  sq_address(name, nlen, 0, p);
  sq_op op;
  int rc = op_begin(kb, t, OP_WRITE, dev, &op);
  if (rc)
    return rc;
  rc = exec(op.b, "DELETE FROM sessions WHERE " NAME_ROWS,
            NAME_ARGS(dev, p, nlen));
  uint64_t n = rc ? 0 : (uint64_t)sqlite3_changes64(op.b->db);
  rc = op_end(&op, rc);
  if (!rc)
    *removed = n;
  return rc;
}

static const char SQL_PREKEY_PUT[] =
    "INSERT INTO prekeys(device_id, id, record, uploaded)"
    " VALUES(?1, ?2, ?3, ?4) ON CONFLICT(device_id, id)"
    " DO UPDATE SET record=excluded.record, uploaded=excluded.uploaded";

static int s_prekey_store(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id,
                          const void *rec, size_t rlen, int uploaded) {
  return write1(b, t, dev, SQL_PREKEY_PUT,
                ARGS(AI(dev), AI(id), AB(rec, rlen), AI(uploaded ? 1 : 0)));
}

/* In order, so a duplicate id ends with its last record. */
static int s_prekey_store_batch(kj_backend *kb, kj_tx *t, uint32_t dev,
                                const kj_prekey *keys, size_t n, int uploaded) {
  sq_op op;
  int rc = op_begin(kb, t, OP_WRITE, dev, &op);
  if (rc)
    return rc;
  for (size_t i = 0; !rc && i < n; i++)
    rc = exec(op.b, SQL_PREKEY_PUT,
              ARGS(AI(dev), AI(keys[i].id),
                   AB(keys[i].record.p, keys[i].record.len),
                   AI(uploaded ? 1 : 0)));
  return op_end(&op, rc);
}

static const char SQL_PREKEY_GET[] =
    "SELECT id, record, uploaded FROM prekeys WHERE device_id=?1 AND id=?2";

static int s_prekey_load(kj_backend *kb, kj_tx *t, uint32_t dev, uint32_t id,
                         kj_prekey_list **out) {
  sq_op op;
  int rc = op_begin(kb, t, OP_READ, 0, &op);
  if (rc)
    return rc;
  sqlite3_stmt *st;
  pk_rows r;
  memset(&r, 0, sizeof r);
  rc = query(op.b, SQL_PREKEY_GET, ARGS(AI(dev), AI(id)), &st);
  if (rc == KJ_OK) {
    pk_add_row(&r, st, 2);
    sqlite3_reset(st);
  }
  rc = op_end(&op, rc);
  if (!rc)
    return pk_finish(&r, out);
  pk_free(&r);
  return rc;
}

static int cmp_u32(const void *x, const void *y) {
  uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
  return (a > b) - (a < b);
}

/* The ids sorted and each once, looked up one by one: ascending, each
 * once, whatever order the caller used (as the native backend). */
static int s_prekey_load_batch(kj_backend *kb, kj_tx *t, uint32_t dev,
                               const uint32_t *ids, size_t n,
                               kj_prekey_list **out) {
  uint32_t *s = NULL;
  size_t m = 0;
  if (n) {
    if (!(s = malloc(n * sizeof *s)))
      return KJ_ENOMEM;
    memcpy(s, ids, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_u32);
    for (size_t i = 0; i < n; i++)
      if (!m || s[i] != s[m - 1])
        s[m++] = s[i];
  }
  sq_op op;
  int rc = op_begin(kb, t, OP_READ, 0, &op);
  if (rc) {
    free(s);
    return rc;
  }
  pk_rows r;
  memset(&r, 0, sizeof r);
  for (size_t i = 0; !rc && i < m; i++) {
    sqlite3_stmt *st;
    rc = query(op.b, SQL_PREKEY_GET, ARGS(AI(dev), AI(s[i])), &st);
    if (rc == KJ_OK) {
      pk_add_row(&r, st, 2);
      sqlite3_reset(st);
    } else if (rc == KJ_NOTFOUND) {
      rc = KJ_OK;
    }
  }
  free(s);
  rc = op_end(&op, rc);
  if (!rc)
    return pk_finish(&r, out);
  pk_free(&r);
  return rc;
}

static int s_prekey_remove(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id) {
  return write1(b, t, dev, "DELETE FROM prekeys WHERE device_id=?1 AND id=?2",
                ARGS(AI(dev), AI(id)));
}

/* An UPDATE touches existing rows only: a consumed key stays consumed. */
static int s_prekey_mark_uploaded(kj_backend *kb, kj_tx *t, uint32_t dev,
                                  const uint32_t *ids, size_t n) {
  sq_op op;
  int rc = op_begin(kb, t, OP_WRITE, dev, &op);
  if (rc)
    return rc;
  for (size_t i = 0; !rc && i < n; i++)
    rc =
        exec(op.b, "UPDATE prekeys SET uploaded=1 WHERE device_id=?1 AND id=?2",
             ARGS(AI(dev), AI(ids[i])));
  return op_end(&op, rc);
}

static int s_prekey_max_id(kj_backend *kb, kj_tx *t, uint32_t dev,
                           uint32_t *max_id) {
  sq_op op;
  int rc = op_begin(kb, t, OP_READ, 0, &op);
  if (rc)
    return rc;
  sqlite3_stmt *st;
  rc = query(op.b, "SELECT max(id) FROM prekeys WHERE device_id=?1",
             ARGS(AI(dev)), &st);
  if (rc == KJ_OK) { /* max() of no rows is NULL: 0 */
    *max_id = (uint32_t)sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
  }
  return op_end(&op, rc);
}

/* *has for a query that returns a row when the key is there. */
static int has1(kj_backend *kb, kj_tx *t, const char *sql, const sq_arg *a,
                int n, int *has) {
  sq_op op;
  int rc = op_begin(kb, t, OP_READ, 0, &op);
  if (rc)
    return rc;
  sqlite3_stmt *st;
  rc = query(op.b, sql, a, n, &st);
  if (rc == KJ_OK) {
    sqlite3_reset(st);
    *has = 1;
  } else if (rc == KJ_NOTFOUND) {
    rc = KJ_OK; /* *has is already 0 */
  }
  return op_end(&op, rc);
}

static int s_prekey_has(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id,
                        int *has) {
  return has1(b, t, "SELECT 1 FROM prekeys WHERE device_id=?1 AND id=?2",
              ARGS(AI(dev), AI(id)), has);
}

static int s_signed_prekey_has(kj_backend *b, kj_tx *t, uint32_t dev,
                               uint32_t id, int *has) {
  return has1(b, t, "SELECT 1 FROM signed_prekeys WHERE device_id=?1 AND id=?2",
              ARGS(AI(dev), AI(id)), has);
}

static int s_signed_prekey_store(kj_backend *b, kj_tx *t, uint32_t dev,
                                 uint32_t id, const void *rec, size_t rlen) {
  return write1(b, t, dev,
                "INSERT INTO signed_prekeys(device_id, id, record)"
                " VALUES(?1, ?2, ?3) ON CONFLICT(device_id, id)"
                " DO UPDATE SET record=excluded.record",
                ARGS(AI(dev), AI(id), AB(rec, rlen)));
}

/* All signed pre-keys of dev (one = 0) or the one with id (one = 1). */
static int signed_load(kj_backend *kb, kj_tx *t, uint32_t dev, int one,
                       uint32_t id, kj_prekey_list **out) {
  sq_op op;
  int rc = op_begin(kb, t, OP_READ, 0, &op);
  if (rc)
    return rc;
  sqlite3_stmt *st;
  pk_rows r;
  memset(&r, 0, sizeof r);
  if (one)
    rc = query(op.b,
               "SELECT id, record FROM signed_prekeys"
               " WHERE device_id=?1 AND id=?2",
               ARGS(AI(dev), AI(id)), &st);
  else
    rc = query(op.b,
               "SELECT id, record FROM signed_prekeys WHERE device_id=?1"
               " ORDER BY id",
               ARGS(AI(dev)), &st);
  while (rc == KJ_OK) {
    pk_add_row(&r, st, -1);
    int s = step(op.b, st);
    rc = s == 1 ? KJ_OK : s == 0 ? KJ_NOTFOUND : s;
  }
  if (rc == KJ_NOTFOUND && (!one || r.n))
    rc = KJ_OK;
  rc = op_end(&op, rc);
  if (!rc)
    return pk_finish(&r, out);
  pk_free(&r);
  return rc;
}

static int s_signed_prekey_load(kj_backend *b, kj_tx *t, uint32_t dev,
                                uint32_t id, kj_prekey_list **out) {
  return signed_load(b, t, dev, 1, id, out);
}

static int s_signed_prekey_load_all(kj_backend *b, kj_tx *t, uint32_t dev,
                                    kj_prekey_list **out) {
  return signed_load(b, t, dev, 0, 0, out);
}

static int s_signed_prekey_remove(kj_backend *b, kj_tx *t, uint32_t dev,
                                  uint32_t id) {
  return write1(b, t, dev,
                "DELETE FROM signed_prekeys WHERE device_id=?1 AND id=?2",
                ARGS(AI(dev), AI(id)));
}

static int s_sender_key_store(kj_backend *b, kj_tx *t, uint32_t dev,
                              const void *name, size_t nlen, const void *rec,
                              size_t rlen, const void *urec, size_t ulen) {
  return write1(
      b, t, dev,
      "INSERT INTO sender_keys(device_id, name, record, user_record)"
      " VALUES(?1, ?2, ?3, ?4) ON CONFLICT(device_id, name)"
      " DO UPDATE SET record=excluded.record,"
      " user_record=excluded.user_record",
      ARGS(AI(dev), AB(name, nlen), AB(rec, rlen), AUSER(urec, ulen)));
}

/* No user record: one there is dropped. */
static int s_sender_key_put(kj_backend *b, kj_tx *t, uint32_t dev,
                            const void *name, size_t nlen, const void *rec,
                            size_t rlen) {
  return s_sender_key_store(b, t, dev, name, nlen, rec, rlen, NULL, 0);
}

static int s_sender_key_load(kj_backend *b, kj_tx *t, uint32_t dev,
                             const void *name, size_t nlen, void **rec,
                             size_t *rlen, void **urec, size_t *ulen) {
  return read_with_user(b, t,
                        "SELECT record, user_record FROM sender_keys"
                        " WHERE device_id=?1 AND name=?2",
                        ARGS(AI(dev), AB(name, nlen)), rec, rlen, urec, ulen);
}

static int s_sender_key_get(kj_backend *b, kj_tx *t, uint32_t dev,
                            const void *name, size_t nlen, void **rec,
                            size_t *rlen) {
  return read_blob(
      b, t, "SELECT record FROM sender_keys WHERE device_id=?1 AND name=?2",
      ARGS(AI(dev), AB(name, nlen)), rec, rlen);
}

static int s_sender_key_delete(kj_backend *b, kj_tx *t, uint32_t dev,
                               const void *name, size_t nlen) {
  return write1(b, t, dev,
                "DELETE FROM sender_keys WHERE device_id=?1 AND name=?2",
                ARGS(AI(dev), AB(name, nlen)));
}

/* ---- app-state sync store ---------------------------------------------- */

/* The key row and the latest pointer in one transaction, so the latest key
 * is the last one set in commit order, whatever its timestamp. */
static int a_sync_key_set(kj_backend *kb, kj_tx *t, uint32_t dev,
                          const void *key_id, size_t idlen,
                          const kj_sync_key *key) {
  sq_op op;
  int rc = op_begin(kb, t, OP_WRITE, dev, &op);
  if (rc)
    return rc;
  rc = exec(
      op.b,
      "INSERT INTO sync_keys(device_id, key_id, key_data, fingerprint,"
      " timestamp) VALUES(?1, ?2, ?3, ?4, ?5)"
      " ON CONFLICT(device_id, key_id) DO UPDATE SET"
      " key_data=excluded.key_data, fingerprint=excluded.fingerprint,"
      " timestamp=excluded.timestamp",
      ARGS(AI(dev), AB(key_id, idlen), AB(key->key_data.p, key->key_data.len),
           AB(key->fingerprint.p, key->fingerprint.len), AI(key->timestamp)));
  if (!rc)
    rc = exec(op.b,
              "INSERT INTO sync_latest(device_id, key_id) VALUES(?1, ?2)"
              " ON CONFLICT(device_id) DO UPDATE SET key_id=excluded.key_id",
              ARGS(AI(dev), AB(key_id, idlen)));
  return op_end(&op, rc);
}

static int a_sync_key_get(kj_backend *kb, kj_tx *t, uint32_t dev,
                          const void *key_id, size_t idlen, kj_sync_key **out) {
  sq_op op;
  int rc = op_begin(kb, t, OP_READ, 0, &op);
  if (rc)
    return rc;
  sqlite3_stmt *st;
  rc = query(op.b,
             "SELECT key_data, fingerprint, timestamp FROM sync_keys"
             " WHERE device_id=?1 AND key_id=?2",
             ARGS(AI(dev), AB(key_id, idlen)), &st);
  if (rc == KJ_OK) {
    size_t kn, fn;
    const uint8_t *kd = col_blob(st, 0, &kn, NULL);
    const uint8_t *fp = col_blob(st, 1, &fn, NULL);
    /* One allocation: the struct, key_data, fingerprint (an empty one
     * still points inside it, as native). */
    kj_sync_key *k = malloc(sizeof *k + kn + fn);
    if (!k) {
      rc = KJ_ENOMEM;
    } else {
      uint8_t *p = (uint8_t *)(k + 1);
      memcpy(p, kd, kn);
      memcpy(p + kn, fp, fn);
      k->key_data = (kj_blob){p, kn};
      k->fingerprint = (kj_blob){p + kn, fn};
      k->timestamp = sqlite3_column_int64(st, 2);
      *out = k;
    }
    sqlite3_reset(st);
  }
  return op_end(&op, rc);
}

static int a_sync_key_latest(kj_backend *b, kj_tx *t, uint32_t dev, void **id,
                             size_t *idlen) {
  return read_blob(b, t, "SELECT key_id FROM sync_latest WHERE device_id=?1",
                   ARGS(AI(dev)), id, idlen);
}

/* Header row plus one row per map entry, replaced as a whole. */
static int a_sync_version_set(kj_backend *kb, kj_tx *t, uint32_t dev,
                              const void *name, size_t nlen,
                              const kj_sync_version *v) {
  sq_op op;
  int rc = op_begin(kb, t, OP_WRITE, dev, &op);
  if (rc)
    return rc;
  rc = exec(op.b,
            "INSERT INTO sync_versions(device_id, name, version, hash)"
            " VALUES(?1, ?2, ?3, ?4) ON CONFLICT(device_id, name) DO UPDATE"
            " SET version=excluded.version, hash=excluded.hash",
            ARGS(AI(dev), AB(name, nlen), AI(v->version),
                 AB(v->hash, KJ_SYNC_HASH_BYTES)));
  if (!rc)
    rc = exec(op.b,
              "DELETE FROM sync_version_entries WHERE device_id=?1 AND name=?2",
              ARGS(AI(dev), AB(name, nlen)));
  for (size_t i = 0; !rc && i < v->n; i++)
    rc = exec(op.b,
              "INSERT INTO sync_version_entries(device_id, name, entry_name,"
              " entry_value) VALUES(?1, ?2, ?3, ?4)",
              ARGS(AI(dev), AB(name, nlen),
                   AB(v->entries[i].name.p, v->entries[i].name.len),
                   AB(v->entries[i].value.p, v->entries[i].value.len)));
  return op_end(&op, rc);
}

static int a_sync_version_get(kj_backend *kb, kj_tx *t, uint32_t dev,
                              const void *name, size_t nlen,
                              kj_sync_version **out) {
  sq_op op;
  int rc = op_begin(kb, t, OP_READ, 0, &op);
  if (rc)
    return rc;
  sqlite3_stmt *st;
  uint64_t version = 0;
  uint8_t hash[KJ_SYNC_HASH_BYTES];
  memset(hash, 0, sizeof hash);
  /* An unknown collection is at version 0: the zero state, not absent. */
  rc = query(op.b,
             "SELECT version, hash FROM sync_versions"
             " WHERE device_id=?1 AND name=?2",
             ARGS(AI(dev), AB(name, nlen)), &st);
  if (rc == KJ_OK) {
    version = (uint64_t)sqlite3_column_int64(st, 0);
    rc = col_fixed(op.b, st, 1, hash, sizeof hash);
    sqlite3_reset(st);
  } else if (rc == KJ_NOTFOUND) {
    rc = KJ_OK;
  }
  /* (name, value) pairs as items (name off/len, value off/len). */
  sq_buf items = {0}, bytes = {0};
  size_t n = 0;
  if (!rc)
    rc = query(op.b,
               "SELECT entry_name, entry_value FROM sync_version_entries"
               " WHERE device_id=?1 AND name=?2 ORDER BY entry_name",
               ARGS(AI(dev), AB(name, nlen)), &st);
  while (rc == KJ_OK) {
    size_t en, vn;
    const uint8_t *e = col_blob(st, 0, &en, NULL);
    const uint8_t *v = col_blob(st, 1, &vn, NULL);
    size_t it[4] = {buf_add(&bytes, e, en), en, 0, vn};
    it[2] = buf_add(&bytes, v, vn);
    buf_add(&items, it, sizeof it);
    n++;
    int s = step(op.b, st);
    rc = s == 1 ? KJ_OK : s == 0 ? KJ_NOTFOUND : s;
  }
  if (rc == KJ_NOTFOUND)
    rc = KJ_OK;
  rc = op_end(&op, rc);
  if (!rc && (items.oom || bytes.oom))
    rc = KJ_ENOMEM;
  size_t head = sizeof(kj_sync_version) + n * sizeof(kj_sync_entry);
  kj_sync_version *sv = rc ? NULL : malloc(head + bytes.len);
  if (!rc && !sv)
    rc = KJ_ENOMEM;
  if (!rc) {
    sv->version = version;
    memcpy(sv->hash, hash, sizeof hash);
    sv->n = n;
    sv->entries = (kj_sync_entry *)(sv + 1);
    uint8_t *p = (uint8_t *)sv + head;
    if (bytes.len)
      memcpy(p, bytes.p, bytes.len);
    for (size_t i = 0; i < n; i++) {
      size_t it[4];
      memcpy(it, items.p + i * sizeof it, sizeof it);
      sv->entries[i].name = (kj_blob){p + it[0], it[1]};
      sv->entries[i].value = (kj_blob){p + it[2], it[3]};
    }
    *out = sv;
  }
  buf_free(&items);
  buf_free(&bytes);
  return rc;
}

/* In order, so a duplicate index_mac ends with its last value_mac. */
static int a_mutation_mac_put(kj_backend *kb, kj_tx *t, uint32_t dev,
                              const void *name, size_t nlen, uint64_t version,
                              const kj_mutation_mac *macs, size_t n) {
  sq_op op;
  int rc = op_begin(kb, t, OP_WRITE, dev, &op);
  if (rc)
    return rc;
  for (size_t i = 0; !rc && i < n; i++)
    rc = exec(op.b,
              "INSERT INTO mutation_macs(device_id, name, index_mac, version,"
              " value_mac) VALUES(?1, ?2, ?3, ?4, ?5)"
              " ON CONFLICT(device_id, name, index_mac) DO UPDATE SET"
              " version=excluded.version, value_mac=excluded.value_mac",
              ARGS(AI(dev), AB(name, nlen),
                   AB(macs[i].index_mac.p, macs[i].index_mac.len), AI(version),
                   AB(macs[i].value_mac.p, macs[i].value_mac.len)));
  return op_end(&op, rc);
}

static int a_mutation_mac_get(kj_backend *kb, kj_tx *t, uint32_t dev,
                              const void *name, size_t nlen,
                              const void *index_mac, size_t ilen,
                              void **value_mac, size_t *vlen,
                              uint64_t *version) {
  sq_op op;
  int rc = op_begin(kb, t, OP_READ, 0, &op);
  if (rc)
    return rc;
  sqlite3_stmt *st;
  rc = query(op.b,
             "SELECT value_mac, version FROM mutation_macs"
             " WHERE device_id=?1 AND name=?2 AND index_mac=?3",
             ARGS(AI(dev), AB(name, nlen), AB(index_mac, ilen)), &st);
  if (rc == KJ_OK) {
    rc = take_blob(st, 0, value_mac, vlen);
    if (!rc && version)
      *version = (uint64_t)sqlite3_column_int64(st, 1);
    sqlite3_reset(st);
  }
  return op_end(&op, rc);
}

static int a_mutation_mac_delete(kj_backend *kb, kj_tx *t, uint32_t dev,
                                 const void *name, size_t nlen,
                                 const kj_blob *index_macs, size_t n) {
  sq_op op;
  int rc = op_begin(kb, t, OP_WRITE, dev, &op);
  if (rc)
    return rc;
  for (size_t i = 0; !rc && i < n; i++)
    rc = exec(
        op.b,
        "DELETE FROM mutation_macs"
        " WHERE device_id=?1 AND name=?2 AND index_mac=?3",
        ARGS(AI(dev), AB(name, nlen), AB(index_macs[i].p, index_macs[i].len)));
  return op_end(&op, rc);
}

/* ---- protocol store ----------------------------------------------------- */

static int p_skdm_get(kj_backend *b, kj_tx *t, uint32_t dev, const void *group,
                      size_t glen, kj_blob_list **out) {
  return read_blob_list(b, t,
                        "SELECT jid FROM skdm_recipients"
                        " WHERE device_id=?1 AND group_id=?2 ORDER BY jid",
                        ARGS(AI(dev), AB(group, glen)), out);
}

static int p_skdm_add(kj_backend *kb, kj_tx *t, uint32_t dev, const void *group,
                      size_t glen, const kj_blob *jids, size_t n) {
  sq_op op;
  int rc = op_begin(kb, t, OP_WRITE, dev, &op);
  if (rc)
    return rc;
  for (size_t i = 0; !rc && i < n; i++)
    rc = exec(op.b,
              "INSERT OR IGNORE INTO skdm_recipients(device_id, group_id, jid)"
              " VALUES(?1, ?2, ?3)",
              ARGS(AI(dev), AB(group, glen), AB(jids[i].p, jids[i].len)));
  return op_end(&op, rc);
}

static int p_skdm_clear(kj_backend *b, kj_tx *t, uint32_t dev,
                        const void *group, size_t glen) {
  return write1(
      b, t, dev,
      "DELETE FROM skdm_recipients WHERE device_id=?1 AND group_id=?2",
      ARGS(AI(dev), AB(group, glen)));
}

/* An existing LID keeps created_at: the upsert does not set it. */
static int p_lid_put(kj_backend *b, kj_tx *t, uint32_t dev,
                     const kj_lid_mapping *m) {
  return write1(b, t, dev,
                "INSERT INTO lid_mappings(device_id, lid, phone, created_at,"
                " updated_at, source) VALUES(?1, ?2, ?3, ?4, ?5, ?6)"
                " ON CONFLICT(device_id, lid) DO UPDATE SET"
                " phone=excluded.phone, updated_at=excluded.updated_at,"
                " source=excluded.source",
                ARGS(AI(dev), AB(m->lid.p, m->lid.len),
                     AB(m->phone.p, m->phone.len), AI(m->created_at),
                     AI(m->updated_at), AB(m->source.p, m->source.len)));
}

/* Mappings of a query's rows (lid, phone, created_at, updated_at, source),
 * as one kj_lid_mapping_list. want_one: no row is KJ_NOTFOUND. */
static int read_lids(kj_backend *kb, kj_tx *t, const char *sql, const sq_arg *a,
                     int na, int want_one, kj_lid_mapping_list **out) {
  sq_op op;
  int rc = op_begin(kb, t, OP_READ, 0, &op);
  if (rc)
    return rc;
  sqlite3_stmt *st;
  sq_buf items = {0}, bytes = {0};
  size_t n = 0;
  /* item: lid off/len, phone off/len, source off/len, created, updated */
  typedef struct {
    size_t o[6];
    int64_t created, updated;
  } lid_item;
  rc = query(op.b, sql, a, na, &st);
  while (rc == KJ_OK) {
    lid_item it;
    for (int c = 0, k = 0; c < 5; c++) {
      if (c == 2 || c == 3)
        continue;
      size_t len;
      const uint8_t *p = col_blob(st, c, &len, NULL);
      it.o[k] = buf_add(&bytes, p, len);
      it.o[k + 1] = len;
      k += 2;
    }
    it.created = sqlite3_column_int64(st, 2);
    it.updated = sqlite3_column_int64(st, 3);
    buf_add(&items, &it, sizeof it);
    n++;
    int s = step(op.b, st);
    rc = s == 1 ? KJ_OK : s == 0 ? KJ_NOTFOUND : s;
  }
  if (rc == KJ_NOTFOUND && (!want_one || n))
    rc = KJ_OK;
  rc = op_end(&op, rc);
  if (!rc && (items.oom || bytes.oom))
    rc = KJ_ENOMEM;
  size_t head = sizeof(kj_lid_mapping_list) + n * sizeof(kj_lid_mapping);
  kj_lid_mapping_list *l = rc ? NULL : malloc(head + bytes.len);
  if (!rc && !l)
    rc = KJ_ENOMEM;
  if (!rc) {
    uint8_t *p = (uint8_t *)l + head;
    if (bytes.len)
      memcpy(p, bytes.p, bytes.len);
    l->n = n;
    for (size_t i = 0; i < n; i++) {
      lid_item it;
      memcpy(&it, items.p + i * sizeof it, sizeof it);
      l->v[i] = (kj_lid_mapping){{p + it.o[0], it.o[1]},
                                 {p + it.o[2], it.o[3]},
                                 it.created,
                                 it.updated,
                                 {p + it.o[4], it.o[5]}};
    }
    *out = l;
  }
  buf_free(&items);
  buf_free(&bytes);
  return rc;
}

static int p_lid_get_by_lid(kj_backend *b, kj_tx *t, uint32_t dev,
                            const void *lid, size_t llen,
                            kj_lid_mapping_list **out) {
  return read_lids(b, t,
                   "SELECT lid, phone, created_at, updated_at, source"
                   " FROM lid_mappings WHERE device_id=?1 AND lid=?2",
                   ARGS(AI(dev), AB(lid, llen)), 1, out);
}

/* Greatest updated_at; on a tie the smallest LID. */
static int p_lid_get_by_phone(kj_backend *b, kj_tx *t, uint32_t dev,
                              const void *phone, size_t plen,
                              kj_lid_mapping_list **out) {
  return read_lids(b, t,
                   "SELECT lid, phone, created_at, updated_at, source"
                   " FROM lid_mappings WHERE device_id=?1 AND phone=?2"
                   " ORDER BY updated_at DESC, lid ASC LIMIT 1",
                   ARGS(AI(dev), AB(phone, plen)), 1, out);
}

static int p_lid_get_all(kj_backend *b, kj_tx *t, uint32_t dev,
                         kj_lid_mapping_list **out) {
  return read_lids(b, t,
                   "SELECT lid, phone, created_at, updated_at, source"
                   " FROM lid_mappings WHERE device_id=?1 ORDER BY lid",
                   ARGS(AI(dev)), 0, out);
}

static int p_base_key_save(kj_backend *b, kj_tx *t, uint32_t dev,
                           const void *addr, size_t alen, const void *msg_id,
                           size_t mlen, const void *base_key, size_t klen) {
  return write1(
      b, t, dev,
      "INSERT INTO base_keys(device_id, address, msg_id, base_key)"
      " VALUES(?1, ?2, ?3, ?4)"
      " ON CONFLICT(device_id, address, msg_id)"
      " DO UPDATE SET base_key=excluded.base_key",
      ARGS(AI(dev), AB(addr, alen), AB(msg_id, mlen), AB(base_key, klen)));
}

static int p_base_key_has_same(kj_backend *kb, kj_tx *t, uint32_t dev,
                               const void *addr, size_t alen,
                               const void *msg_id, size_t mlen,
                               const void *base_key, size_t klen, int *same) {
  sq_op op;
  int rc = op_begin(kb, t, OP_READ, 0, &op);
  if (rc)
    return rc;
  sqlite3_stmt *st;
  rc = query(op.b,
             "SELECT base_key FROM base_keys"
             " WHERE device_id=?1 AND address=?2 AND msg_id=?3",
             ARGS(AI(dev), AB(addr, alen), AB(msg_id, mlen)), &st);
  if (rc == KJ_OK) {
    size_t n;
    const uint8_t *p = col_blob(st, 0, &n, NULL);
    *same = n == klen && !memcmp(p, base_key, klen);
    sqlite3_reset(st);
  } else if (rc == KJ_NOTFOUND) {
    rc = KJ_OK; /* no entry: not the same */
  }
  return op_end(&op, rc);
}

static int p_base_key_delete(kj_backend *b, kj_tx *t, uint32_t dev,
                             const void *addr, size_t alen, const void *msg_id,
                             size_t mlen) {
  return write1(b, t, dev,
                "DELETE FROM base_keys"
                " WHERE device_id=?1 AND address=?2 AND msg_id=?3",
                ARGS(AI(dev), AB(addr, alen), AB(msg_id, mlen)));
}

/* The whole record is replaced: header upserted, entries rewritten. An
 * absent key_index is NULL (read back as has 0, index 0). */
static int p_device_list_update(kj_backend *kb, kj_tx *t, uint32_t dev,
                                const kj_device_list *r) {
  sq_op op;
  int rc = op_begin(kb, t, OP_WRITE, dev, &op);
  if (rc)
    return rc;
  rc = exec(op.b,
            "INSERT INTO device_lists(device_id, user, timestamp, phash)"
            " VALUES(?1, ?2, ?3, ?4) ON CONFLICT(device_id, user) DO UPDATE"
            " SET timestamp=excluded.timestamp, phash=excluded.phash",
            ARGS(AI(dev), AB(r->user.p, r->user.len), AI(r->timestamp),
                 AOPT(r->has_phash, r->phash)));
  if (!rc)
    rc = exec(op.b,
              "DELETE FROM device_list_entries WHERE device_id=?1 AND user=?2",
              ARGS(AI(dev), AB(r->user.p, r->user.len)));
  for (size_t i = 0; !rc && i < r->n; i++) {
    const kj_device_entry *e = &r->devices[i];
    rc = exec(op.b,
              "INSERT INTO device_list_entries(device_id, user, pos,"
              " wa_device_id, key_index) VALUES(?1, ?2, ?3, ?4, ?5)",
              ARGS(AI(dev), AB(r->user.p, r->user.len), AI(i), AI(e->device_id),
                   e->has_key_index ? AI(e->key_index) : AN));
  }
  return op_end(&op, rc);
}

static int p_device_list_get(kj_backend *kb, kj_tx *t, uint32_t dev,
                             const void *user, size_t ulen,
                             kj_device_list **out) {
  sq_op op;
  int rc = op_begin(kb, t, OP_READ, 0, &op);
  if (rc)
    return rc;
  sqlite3_stmt *st;
  kj_device_list d;
  memset(&d, 0, sizeof d);
  sq_buf phash = {0}, ents = {0};
  rc = query(op.b,
             "SELECT timestamp, phash FROM device_lists"
             " WHERE device_id=?1 AND user=?2",
             ARGS(AI(dev), AB(user, ulen)), &st);
  if (rc == KJ_OK) {
    d.timestamp = sqlite3_column_int64(st, 0);
    size_t n;
    const uint8_t *p = col_blob(st, 1, &n, &d.has_phash);
    buf_add(&phash, p, n);
    d.phash.len = n;
    sqlite3_reset(st);
    rc = query(op.b,
               "SELECT wa_device_id, key_index FROM device_list_entries"
               " WHERE device_id=?1 AND user=?2 ORDER BY pos",
               ARGS(AI(dev), AB(user, ulen)), &st);
    while (rc == KJ_OK) {
      kj_device_entry e;
      e.device_id = (uint32_t)sqlite3_column_int64(st, 0);
      e.has_key_index = sqlite3_column_type(st, 1) != SQLITE_NULL;
      e.key_index = (uint32_t)sqlite3_column_int64(st, 1);
      buf_add(&ents, &e, sizeof e);
      d.n++;
      int s = step(op.b, st);
      rc = s == 1 ? KJ_OK : s == 0 ? KJ_NOTFOUND : s;
    }
    if (rc == KJ_NOTFOUND)
      rc = KJ_OK;
  }
  rc = op_end(&op, rc);
  if (!rc && (phash.oom || ents.oom))
    rc = KJ_ENOMEM;
  /* One allocation: the struct, the entries, then user and phash. */
  size_t head = sizeof d + d.n * sizeof(kj_device_entry);
  kj_device_list *l = rc ? NULL : malloc(head + ulen + d.phash.len);
  if (!rc && !l)
    rc = KJ_ENOMEM;
  if (!rc) {
    *l = d;
    l->devices = (kj_device_entry *)(l + 1);
    if (d.n)
      memcpy(l->devices, ents.p, d.n * sizeof(kj_device_entry));
    uint8_t *p = (uint8_t *)l + head;
    memcpy(p, user, ulen);
    l->user = (kj_blob){p, ulen};
    if (d.has_phash) {
      if (d.phash.len)
        memcpy(p + ulen, phash.p, d.phash.len);
      l->phash = (kj_blob){p + ulen, d.phash.len};
    } else {
      l->phash = (kj_blob){NULL, 0};
    }
    *out = l;
  }
  buf_free(&phash);
  buf_free(&ents);
  return rc;
}

static int p_device_list_delete(kj_backend *kb, kj_tx *t, uint32_t dev,
                                const void *user, size_t ulen) {
  sq_op op;
  int rc = op_begin(kb, t, OP_WRITE, dev, &op);
  if (rc)
    return rc;
  rc = exec(op.b, "DELETE FROM device_lists WHERE device_id=?1 AND user=?2",
            ARGS(AI(dev), AB(user, ulen)));
  if (!rc)
    rc = exec(op.b,
              "DELETE FROM device_list_entries WHERE device_id=?1 AND user=?2",
              ARGS(AI(dev), AB(user, ulen)));
  return op_end(&op, rc);
}

static int p_sender_key_mark_forget(kj_backend *b, kj_tx *t, uint32_t dev,
                                    const void *group, size_t glen,
                                    const void *participant, size_t plen) {
  return write1(b, t, dev,
                "INSERT OR IGNORE INTO sender_key_forget(device_id, group_id,"
                " participant) VALUES(?1, ?2, ?3)",
                ARGS(AI(dev), AB(group, glen), AB(participant, plen)));
}

/* A write op although it returns data: the take and the removal are one
 * write transaction, so two consumers never both get a participant. */
static int p_sender_key_consume_forget(kj_backend *kb, kj_tx *t, uint32_t dev,
                                       const void *group, size_t glen,
                                       kj_blob_list **out) {
  sq_op op;
  int rc = op_begin(kb, t, OP_WRITE, dev, &op);
  if (rc)
    return rc;
  sqlite3_stmt *st;
  blob_rows r;
  memset(&r, 0, sizeof r);
  rc = query(op.b,
             "SELECT participant FROM sender_key_forget"
             " WHERE device_id=?1 AND group_id=?2 ORDER BY participant",
             ARGS(AI(dev), AB(group, glen)), &st);
  rc = collect_blobs(op.b, st, rc, &r);
  if (!rc)
    rc =
        exec(op.b,
             "DELETE FROM sender_key_forget WHERE device_id=?1 AND group_id=?2",
             ARGS(AI(dev), AB(group, glen)));
  /* Built before the commit, so a failure to build undoes the removal. */
  kj_blob_list *l = NULL;
  if (!rc)
    rc = blob_rows_finish(&r, &l);
  rc = op_end(&op, rc);
  buf_free(&r.items);
  buf_free(&r.bytes);
  if (rc) {
    kj_free(l);
    return rc;
  }
  *out = l;
  return KJ_OK;
}

static int p_tc_token_put(kj_backend *b, kj_tx *t, uint32_t dev,
                          const void *jid, size_t jlen,
                          const kj_tc_token *tok) {
  return write1(b, t, dev,
                "INSERT INTO tc_tokens(device_id, jid, token, token_ts,"
                " sender_ts) VALUES(?1, ?2, ?3, ?4, ?5)"
                " ON CONFLICT(device_id, jid) DO UPDATE SET"
                " token=excluded.token, token_ts=excluded.token_ts,"
                " sender_ts=excluded.sender_ts",
                ARGS(AI(dev), AB(jid, jlen), AB(tok->token.p, tok->token.len),
                     AI(tok->token_ts),
                     tok->has_sender_ts ? AI(tok->sender_ts) : AN));
}

static int p_tc_token_get(kj_backend *kb, kj_tx *t, uint32_t dev,
                          const void *jid, size_t jlen, kj_tc_token **out) {
  sq_op op;
  int rc = op_begin(kb, t, OP_READ, 0, &op);
  if (rc)
    return rc;
  sqlite3_stmt *st;
  rc = query(op.b,
             "SELECT token, token_ts, sender_ts FROM tc_tokens"
             " WHERE device_id=?1 AND jid=?2",
             ARGS(AI(dev), AB(jid, jlen)), &st);
  if (rc == KJ_OK) {
    size_t n;
    const uint8_t *p = col_blob(st, 0, &n, NULL);
    kj_tc_token *o = malloc(sizeof *o + n);
    if (!o) {
      rc = KJ_ENOMEM;
    } else {
      memcpy(o + 1, p, n);
      o->token = (kj_blob){(const uint8_t *)(o + 1), n};
      o->token_ts = sqlite3_column_int64(st, 1);
      o->has_sender_ts = sqlite3_column_type(st, 2) != SQLITE_NULL;
      o->sender_ts = sqlite3_column_int64(st, 2); /* NULL reads as 0 */
      *out = o;
    }
    sqlite3_reset(st);
  }
  return op_end(&op, rc);
}

static int p_tc_token_delete(kj_backend *b, kj_tx *t, uint32_t dev,
                             const void *jid, size_t jlen) {
  return write1(b, t, dev,
                "DELETE FROM tc_tokens WHERE device_id=?1 AND jid=?2",
                ARGS(AI(dev), AB(jid, jlen)));
}

static int p_tc_token_all_jids(kj_backend *b, kj_tx *t, uint32_t dev,
                               kj_blob_list **out) {
  return read_blob_list(
      b, t, "SELECT jid FROM tc_tokens WHERE device_id=?1 ORDER BY jid",
      ARGS(AI(dev)), out);
}

static int p_tc_token_delete_expired(kj_backend *kb, kj_tx *t, uint32_t dev,
                                     int64_t cutoff, uint64_t *removed) {
  sq_op op;
  int rc = op_begin(kb, t, OP_WRITE, dev, &op);
  if (rc)
    return rc;
  rc = exec(op.b, "DELETE FROM tc_tokens WHERE device_id=?1 AND token_ts<?2",
            ARGS(AI(dev), AI(cutoff)));
  uint64_t n = rc ? 0 : (uint64_t)sqlite3_changes64(op.b->db);
  rc = op_end(&op, rc);
  *removed = rc ? 0 : n;
  return rc;
}

/* ---- device store ------------------------------------------------------- */

/* In an op: a new slot with label (llen 0: none) in *id, unless a slot
 * carries the label already (KJ_EEXIST, looked at first, as native). */
static int create_in(sq_backend *b, const void *label, size_t llen,
                     int64_t *id) {
  sqlite3_stmt *st;
  int rc = KJ_OK;
  if (llen) {
    rc = query(b, "SELECT id FROM devices WHERE label=?1",
               ARGS(AB(label, llen)), &st);
    if (rc == KJ_OK) {
      sqlite3_reset(st);
      return failf(b, KJ_EEXIST,
                   "kj_device_create_labeled: a slot has that label");
    }
    if (rc != KJ_NOTFOUND)
      return rc;
  }
  int64_t next = 1; /* no counter row: no slot was ever created */
  rc = query(b, "SELECT value FROM meta WHERE name='next_device_id'", NULL, 0,
             &st);
  if (rc == KJ_OK) {
    next = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (next < 1 || next > UINT32_MAX)
      rc = failf(b, KJ_ECORRUPT, "meta: next_device_id %lld out of range",
                 (long long)next);
  } else if (rc == KJ_NOTFOUND) {
    rc = KJ_OK;
  }
  /* As native: the last id is kept back, so the counter never wraps. */
  if (!rc && next == UINT32_MAX)
    rc = failf(b, KJ_ENOSPC, "kj_device_create: no slot ids left");
  if (!rc) {
    int ex = slot_exists(b, (uint32_t)next);
    if (ex < 0)
      rc = ex;
    else if (ex)
      rc = failf(b, KJ_ECORRUPT, "meta: next_device_id %lld names a slot",
                 (long long)next);
  }
  if (!rc)
    rc = exec(b, "INSERT INTO devices(id, label) VALUES(?1, ?2)",
              ARGS(AI(next), llen ? AB(label, llen) : AN));
  if (!rc)
    rc = exec(b,
              "INSERT INTO meta(name, value) VALUES('next_device_id', ?1)"
              " ON CONFLICT(name) DO UPDATE SET value=excluded.value",
              ARGS(AI(next + 1)));
  *id = next;
  return rc;
}

static int d_create_labeled(kj_backend *kb, kj_tx *t, const void *label,
                            size_t llen, uint32_t *id) {
  sq_op op;
  int rc = op_begin(kb, t, OP_WRITE_ANY, 0, &op);
  if (rc)
    return rc;
  int64_t next = 0;
  rc = op_end(&op, create_in(op.b, label, llen, &next));
  if (!rc)
    *id = (uint32_t)next;
  return rc;
}

static int d_create(kj_backend *kb, kj_tx *t, uint32_t *id) {
  return d_create_labeled(kb, t, NULL, 0, id);
}

static int d_find(kj_backend *kb, kj_tx *t, const void *label, size_t llen,
                  uint32_t *id) {
  sq_op op;
  int rc = op_begin(kb, t, OP_READ, 0, &op);
  if (rc)
    return rc;
  sqlite3_stmt *st;
  rc = query(op.b, "SELECT id FROM devices WHERE label=?1",
             ARGS(AB(label, llen)), &st);
  if (rc == KJ_OK) {
    *id = (uint32_t)sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
  }
  return op_end(&op, rc);
}

static int d_list_ids(kj_backend *kb, kj_tx *t, kj_u32_list **out) {
  sq_op op;
  int rc = op_begin(kb, t, OP_READ, 0, &op);
  if (rc)
    return rc;
  sqlite3_stmt *st;
  sq_buf ids = {0};
  size_t n = 0;
  rc = query(op.b, "SELECT id FROM devices ORDER BY id", NULL, 0, &st);
  while (rc == KJ_OK) {
    uint32_t id = (uint32_t)sqlite3_column_int64(st, 0);
    buf_add(&ids, &id, sizeof id);
    n++;
    int s = step(op.b, st);
    rc = s == 1 ? KJ_OK : s == 0 ? KJ_NOTFOUND : s;
  }
  if (rc == KJ_NOTFOUND)
    rc = KJ_OK;
  rc = op_end(&op, rc);
  return u32_list_out(rc, &ids, n, out);
}

static int d_exists(kj_backend *kb, kj_tx *t, uint32_t id, int *exists) {
  sq_op op;
  int rc = op_begin(kb, t, OP_READ, 0, &op);
  if (rc)
    return rc;
  int ex = slot_exists(op.b, id);
  rc = op_end(&op, ex < 0 ? ex : KJ_OK);
  if (!rc)
    *exists = ex;
  return rc;
}

static int d_save(kj_backend *b, kj_tx *t, uint32_t id,
                  const kj_device_record *r) {
  return write1(
      b, t, id,
      "INSERT OR REPLACE INTO device_records(device_id, phone_jid, lid,"
      " registration_id, noise_pub, noise_priv, identity_pub, identity_priv,"
      " signed_prekey_pub, signed_prekey_priv, signed_prekey_id,"
      " signed_prekey_sig, adv_secret, account, push_name, app_version_0,"
      " app_version_1, app_version_2, app_version_fetched_at_ms,"
      " edge_routing, props_hash) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
      " ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
      ARGS(AI(id), AOPT(r->has_phone_jid, r->phone_jid),
           AOPT(r->has_lid, r->lid), AI(r->registration_id),
           AB(r->noise_pub, 32), AB(r->noise_priv, 32), AB(r->identity_pub, 32),
           AB(r->identity_priv, 32), AB(r->signed_prekey_pub, 32),
           AB(r->signed_prekey_priv, 32), AI(r->signed_prekey_id),
           AB(r->signed_prekey_sig, 64), AB(r->adv_secret, 32),
           AOPT(r->has_account, r->account),
           AB(r->push_name.p, r->push_name.len), AI(r->app_version[0]),
           AI(r->app_version[1]), AI(r->app_version[2]),
           AI(r->app_version_fetched_at_ms),
           AOPT(r->has_edge_routing, r->edge_routing),
           AOPT(r->has_props_hash, r->props_hash)));
}

/* The optional blob of column c into the data area at *d (present ones,
 * even empty, point inside the allocation; absent ones stay NULL). */
static void place_col(sqlite3_stmt *st, int c, int *has, kj_blob *v,
                      uint8_t **d) {
  size_t n;
  int h;
  const uint8_t *p = col_blob(st, c, &n, &h);
  if (has)
    *has = h;
  if (!h) {
    *v = (kj_blob){NULL, 0};
    return;
  }
  memcpy(*d, p, n);
  *v = (kj_blob){*d, n};
  *d += n;
}

static int d_load(kj_backend *kb, kj_tx *t, uint32_t id,
                  kj_device_record **out) {
  sq_op op;
  int rc = op_begin(kb, t, OP_READ, 0, &op);
  if (rc)
    return rc;
  sq_backend *b = op.b;
  sqlite3_stmt *st;
  rc = query(b,
             "SELECT phone_jid, lid, account, push_name, edge_routing,"
             " props_hash, registration_id, noise_pub, noise_priv,"
             " identity_pub, identity_priv, signed_prekey_pub,"
             " signed_prekey_priv, signed_prekey_id, signed_prekey_sig,"
             " adv_secret, app_version_0, app_version_1, app_version_2,"
             " app_version_fetched_at_ms FROM device_records"
             " WHERE device_id=?1",
             ARGS(AI(id)), &st);
  if (rc == KJ_OK) {
    size_t data = 0;
    for (int c = 0; c < 6; c++)
      data += (size_t)sqlite3_column_bytes(st, c);
    kj_device_record *o = calloc(1, sizeof *o + data);
    if (!o)
      rc = KJ_ENOMEM;
    if (!rc) {
      uint8_t *d = (uint8_t *)(o + 1);
      place_col(st, 0, &o->has_phone_jid, &o->phone_jid, &d);
      place_col(st, 1, &o->has_lid, &o->lid, &d);
      place_col(st, 2, &o->has_account, &o->account, &d);
      place_col(st, 3, NULL, &o->push_name, &d);
      place_col(st, 4, &o->has_edge_routing, &o->edge_routing, &d);
      place_col(st, 5, &o->has_props_hash, &o->props_hash, &d);
      o->registration_id = (uint32_t)sqlite3_column_int64(st, 6);
      uint8_t *fixed[] = {o->noise_pub,         o->noise_priv,
                          o->identity_pub,      o->identity_priv,
                          o->signed_prekey_pub, o->signed_prekey_priv};
      for (int i = 0; !rc && i < 6; i++)
        rc = col_fixed(b, st, 7 + i, fixed[i], 32);
      o->signed_prekey_id = (uint32_t)sqlite3_column_int64(st, 13);
      if (!rc)
        rc = col_fixed(b, st, 14, o->signed_prekey_sig, 64);
      if (!rc)
        rc = col_fixed(b, st, 15, o->adv_secret, 32);
      for (int i = 0; i < 3; i++)
        o->app_version[i] = (uint32_t)sqlite3_column_int64(st, 16 + i);
      o->app_version_fetched_at_ms = sqlite3_column_int64(st, 19);
      if (rc)
        free(o);
      else
        *out = o;
    }
    sqlite3_reset(st);
  }
  return op_end(&op, rc);
}

/* Every row of the slot goes with it: ON DELETE CASCADE. Absent: KJ_OK. */
static int d_delete(kj_backend *kb, kj_tx *t, uint32_t id) {
  sq_op op;
  int rc = op_begin(kb, t, OP_WRITE_ANY, 0, &op);
  if (rc)
    return rc;
  return op_end(&op,
                exec(op.b, "DELETE FROM devices WHERE id=?1", ARGS(AI(id))));
}

static int errno_status(int err) {
  return err == ENOSPC || err == EDQUOT ? KJ_ENOSPC
         : err == ENOMEM                ? KJ_ENOMEM
                                        : KJ_EIO;
}

static int fsync_path(const char *p, int flags) {
  int fd = open(p, flags | O_CLOEXEC);
  if (fd < 0)
    return -1;
  int r = fsync(fd);
  close(fd);
  return r;
}

static int write_file(sq_backend *b, const char *p, const void *data,
                      size_t n) {
  int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  int rc = KJ_OK;
  const uint8_t *q = data;
  while (fd >= 0 && n) {
    ssize_t w = write(fd, q, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      break;
    q += w;
    n -= (size_t)w;
  }
  if (fd < 0 || n || fsync(fd))
    rc = failf(b, errno_status(errno), "write %s: %s", p, strerror(errno));
  if (fd >= 0 && close(fd) && !rc)
    rc = failf(b, KJ_EIO, "close %s: %s", p, strerror(errno));
  return rc;
}

/* VACUUM INTO <dir of db>/copies/<label>.db, plus <that>.extra (the extra
 * bytes in plaintext: see the top of this file). VACUUM
 * cannot run inside a transaction, and a caller's kj_tx must not leak into
 * the copy, so the copy is made by a second, read-only connection, which
 * (WAL) sees exactly the committed state. */
static int d_snapshot_copy(kj_backend *kb, kj_tx *t, const void *label,
                           size_t llen, const void *extra, size_t elen,
                           char **path) {
  (void)t;
  sq_backend *b = sqb(kb);
  pthread_mutex_lock(&b->mu);
  const char *file = sqlite3_db_filename(b->db, "main");
  int rc = KJ_OK;
  char *copies = NULL, *copy = NULL, *xpath = NULL;
  sqlite3 *src = NULL;
  if (!file || !*file) {
    rc = failf(b, KJ_EINVAL, "kj_device_snapshot_copy: memory-only store");
    goto out;
  }
  const char *slash = strrchr(file, '/');
  size_t dlen = slash ? (size_t)(slash - file) : 1;
  const char *dir = slash ? file : ".";
  if (slash && dlen == 0)
    dlen = 1; /* a database in "/" */
  char name[KJ_COPY_LABEL_MAX + 1];
  kj_backend_copy_label(label, llen, name);
  size_t cap =
      dlen + sizeof "/copies/" + KJ_COPY_LABEL_MAX + sizeof ".db.extra";
  copies = malloc(cap);
  copy = malloc(cap);
  xpath = malloc(cap);
  if (!copies || !copy || !xpath) {
    rc = failf(b, KJ_ENOMEM, "out of memory");
    goto out;
  }
  snprintf(copies, cap, "%.*s/copies", (int)dlen, dir);
  snprintf(copy, cap, "%s/%s.db", copies, name);
  snprintf(xpath, cap, "%s.extra", copy);
  /* copies/ must be a real directory: a symlink could lead outside. */
  if (mkdir(copies, 0700) != 0) {
    int err = errno;
    struct stat st;
    if (err != EEXIST) {
      rc = failf(b, errno_status(err), "create directory %s: %s", copies,
                 strerror(err));
      goto out;
    }
    if (lstat(copies, &st) != 0 || !S_ISDIR(st.st_mode)) {
      rc = failf(b, KJ_EIO, "%s exists and is not a directory", copies);
      goto out;
    }
  }
  struct stat st;
  if (lstat(copy, &st) == 0 || lstat(xpath, &st) == 0) {
    rc = failf(b, KJ_EEXIST, "kj_device_snapshot_copy: %s exists", copy);
    goto out;
  }
  int r = sqlite3_open_v2(file, &src, SQLITE_OPEN_READONLY, NULL);
  if (r == SQLITE_OK) {
    sqlite3_busy_timeout(src, 5000);
    sqlite3_stmt *vs = NULL;
    r = sqlite3_prepare_v2(src, "VACUUM INTO ?1", -1, &vs, NULL);
    if (r == SQLITE_OK) {
      sqlite3_bind_text(vs, 1, copy, -1, SQLITE_STATIC);
      r = sqlite3_step(vs);
      if (r == SQLITE_DONE)
        r = SQLITE_OK;
    }
    sqlite3_finalize(vs);
  }
  if (r != SQLITE_OK) {
    rc = failf(b, map_sqlite(r), "VACUUM INTO %s: %s", copy,
               src ? sqlite3_errmsg(src) : "cannot open");
    goto out;
  }
  if (fsync_path(copy, O_RDONLY) ||
      fsync_path(copies, O_RDONLY | O_DIRECTORY)) {
    rc = failf(b, errno_status(errno), "sync %s: %s", copy, strerror(errno));
    goto out;
  }
  /* A failure here leaves the copy in place, as native does. */
  if (extra) {
    rc = write_file(b, xpath, extra, elen);
    if (!rc && fsync_path(copies, O_RDONLY | O_DIRECTORY))
      rc = failf(b, KJ_EIO, "sync %s: %s", copies, strerror(errno));
  }
out:
  sqlite3_close(src);
  pthread_mutex_unlock(&b->mu);
  if (!rc && path) {
    *path = copy;
    copy = NULL;
  }
  free(copies);
  free(copy);
  free(xpath);
  return rc;
}

/* ---- ratchet store ------------------------------------------------------ */

static int cmp_slot(const kj_skipped_key *x, const kj_skipped_key *y) {
  int c = memcmp(x->public_key, y->public_key, 32);
  if (c)
    return c;
  return x->msg_num < y->msg_num ? -1 : x->msg_num > y->msg_num;
}

/* By (public_key, msg_num), then position, so the last of equal keys is
 * the last of its run. */
static int cmp_given(const void *a, const void *b) {
  const kj_skipped_key *x = *(const kj_skipped_key *const *)a;
  const kj_skipped_key *y = *(const kj_skipped_key *const *)b;
  int c = cmp_slot(x, y);
  return c ? c : x < y ? -1 : x > y;
}

static int cmp_stored(const void *a, const void *b) { return cmp_slot(a, b); }

/* The conversation's state row and skipped-key set, replaced as one:
 * stored keys keep created_at, new ones get now (seconds), missing ones go
 * (delete all, insert the given set). */
static int r_save(kj_backend *kb, kj_tx *t, uint32_t dev, const void *conv,
                  size_t clen, const kj_ratchet_state *s) {
  size_t n = s->n_skipped;
  const kj_skipped_key **g = NULL;
  if (n && !(g = malloc(n * sizeof *g)))
    return KJ_ENOMEM;
  for (size_t i = 0; i < n; i++)
    g[i] = &s->skipped[i];
  if (n > 1)
    qsort(g, n, sizeof *g, cmp_given);
  size_t m = 0; /* the last of every run of equal keys */
  for (size_t i = 0; i < n; i++)
    if (!(i + 1 < n && cmp_slot(g[i], g[i + 1]) == 0))
      g[m++] = g[i];

  sq_op op;
  int rc = op_begin(kb, t, OP_WRITE, dev, &op);
  if (rc) {
    free(g);
    return rc;
  }
  sq_backend *b = op.b;
  int64_t now = now_secs(b);
  /* Stored keys (public_key, msg_num, created_at), in key order. */
  sq_buf old = {0};
  size_t nold = 0;
  sqlite3_stmt *st;
  rc = query(b,
             "SELECT public_key, msg_num, created_at FROM skipped_keys"
             " WHERE device_id=?1 AND conv=?2 ORDER BY public_key, msg_num",
             ARGS(AI(dev), AB(conv, clen)), &st);
  while (rc == KJ_OK) {
    kj_skipped_key k;
    memset(&k, 0, sizeof k);
    rc = col_fixed(b, st, 0, k.public_key, 32);
    if (rc) {
      sqlite3_reset(st);
      break;
    }
    k.msg_num = (uint32_t)sqlite3_column_int64(st, 1);
    k.created_at = sqlite3_column_int64(st, 2);
    buf_add(&old, &k, sizeof k);
    nold++;
    int sr = step(b, st);
    rc = sr == 1 ? KJ_OK : sr == 0 ? KJ_NOTFOUND : sr;
  }
  if (rc == KJ_NOTFOUND)
    rc = old.oom ? KJ_ENOMEM : KJ_OK;
  if (!rc)
    rc = exec(b, "DELETE FROM skipped_keys WHERE device_id=?1 AND conv=?2",
              ARGS(AI(dev), AB(conv, clen)));
  for (size_t i = 0; !rc && i < m; i++) {
    const kj_skipped_key *f =
        nold ? bsearch(g[i], old.p, nold, sizeof *g[i], cmp_stored) : NULL;
    rc = exec(b,
              "INSERT INTO skipped_keys(device_id, conv, public_key, msg_num,"
              " message_key, created_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
              ARGS(AI(dev), AB(conv, clen), AB(g[i]->public_key, 32),
                   AI(g[i]->msg_num), AB(g[i]->message_key, 32),
                   AI(f ? f->created_at : now)));
  }
  if (!rc)
    rc = exec(b,
              "INSERT OR REPLACE INTO ratchets(device_id, conv, root_key,"
              " sending_chain, receiving_chain, dh_self_secret, dh_remote,"
              " msg_send, msg_recv, prev_chain_len)"
              " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
              ARGS(AI(dev), AB(conv, clen), AB(s->root_key, 32),
                   s->has_sending_chain ? AB(s->sending_chain, 32) : AN,
                   s->has_receiving_chain ? AB(s->receiving_chain, 32) : AN,
                   AB(s->dh_self_secret, 32),
                   s->has_dh_remote ? AB(s->dh_remote, 32) : AN,
                   AI(s->msg_send), AI(s->msg_recv), AI(s->prev_chain_len)));
  buf_free(&old);
  free(g);
  return op_end(&op, rc);
}

static int r_load(kj_backend *kb, kj_tx *t, uint32_t dev, const void *conv,
                  size_t clen, kj_ratchet_state **out) {
  sq_op op;
  int rc = op_begin(kb, t, OP_READ, 0, &op);
  if (rc)
    return rc;
  sq_backend *b = op.b;
  sqlite3_stmt *st;
  kj_ratchet_state s;
  memset(&s, 0, sizeof s);
  rc = query(b,
             "SELECT root_key, sending_chain, receiving_chain, dh_self_secret,"
             " dh_remote, msg_send, msg_recv, prev_chain_len FROM ratchets"
             " WHERE device_id=?1 AND conv=?2",
             ARGS(AI(dev), AB(conv, clen)), &st);
  if (rc == KJ_OK) {
    rc = col_fixed(b, st, 0, s.root_key, 32);
    if (!rc)
      rc = col_opt_fixed(b, st, 1, &s.has_sending_chain, s.sending_chain, 32);
    if (!rc)
      rc = col_opt_fixed(b, st, 2, &s.has_receiving_chain, s.receiving_chain,
                         32);
    if (!rc)
      rc = col_fixed(b, st, 3, s.dh_self_secret, 32);
    if (!rc)
      rc = col_opt_fixed(b, st, 4, &s.has_dh_remote, s.dh_remote, 32);
    s.msg_send = (uint32_t)sqlite3_column_int64(st, 5);
    s.msg_recv = (uint32_t)sqlite3_column_int64(st, 6);
    s.prev_chain_len = (uint32_t)sqlite3_column_int64(st, 7);
    sqlite3_reset(st);
  }
  sq_buf keys = {0};
  size_t n = 0;
  if (!rc) {
    rc = query(b,
               "SELECT public_key, msg_num, message_key, created_at"
               " FROM skipped_keys WHERE device_id=?1 AND conv=?2"
               " ORDER BY public_key, msg_num",
               ARGS(AI(dev), AB(conv, clen)), &st);
    while (rc == KJ_OK) {
      kj_skipped_key k;
      memset(&k, 0, sizeof k);
      rc = col_fixed(b, st, 0, k.public_key, 32);
      if (!rc)
        rc = col_fixed(b, st, 2, k.message_key, 32);
      if (rc) {
        sqlite3_reset(st);
        break;
      }
      k.msg_num = (uint32_t)sqlite3_column_int64(st, 1);
      k.created_at = sqlite3_column_int64(st, 3);
      buf_add(&keys, &k, sizeof k);
      n++;
      int sr = step(b, st);
      rc = sr == 1 ? KJ_OK : sr == 0 ? KJ_NOTFOUND : sr;
    }
    if (rc == KJ_NOTFOUND)
      rc = keys.oom ? KJ_ENOMEM : KJ_OK;
    if (!rc && n > KJ_MAX_SKIPPED)
      rc = failf(b, KJ_ECORRUPT, "conversation with %zu skipped keys", n);
  }
  rc = op_end(&op, rc);
  kj_ratchet_state *o = NULL;
  if (!rc && !(o = kj_ratchet_state_alloc(n)))
    rc = KJ_ENOMEM;
  if (!rc) {
    s.n_skipped = o->n_skipped;
    s.skipped = o->skipped;
    *o = s;
    if (n)
      memcpy(o->skipped, keys.p, n * sizeof(kj_skipped_key));
    *out = o;
  }
  buf_free(&keys);
  return rc;
}

static int r_exists(kj_backend *kb, kj_tx *t, uint32_t dev, const void *conv,
                    size_t clen, int *exists) {
  sq_op op;
  int rc = op_begin(kb, t, OP_READ, 0, &op);
  if (rc)
    return rc;
  sqlite3_stmt *st;
  rc = query(op.b, "SELECT 1 FROM ratchets WHERE device_id=?1 AND conv=?2",
             ARGS(AI(dev), AB(conv, clen)), &st);
  if (rc == KJ_OK)
    sqlite3_reset(st);
  rc = op_end(&op, rc);
  if (rc && rc != KJ_NOTFOUND)
    return rc;
  *exists = rc == KJ_OK;
  return KJ_OK;
}

static int r_delete(kj_backend *kb, kj_tx *t, uint32_t dev, const void *conv,
                    size_t clen) {
  sq_op op;
  int rc = op_begin(kb, t, OP_WRITE, dev, &op);
  if (rc)
    return rc;
  rc = exec(op.b, "DELETE FROM ratchets WHERE device_id=?1 AND conv=?2",
            ARGS(AI(dev), AB(conv, clen)));
  if (!rc)
    rc = exec(op.b, "DELETE FROM skipped_keys WHERE device_id=?1 AND conv=?2",
              ARGS(AI(dev), AB(conv, clen)));
  return op_end(&op, rc);
}

static int r_cleanup_skipped(kj_backend *kb, kj_tx *t, uint32_t dev,
                             int64_t max_age_secs, uint64_t *removed) {
  sq_op op;
  int rc = op_begin(kb, t, OP_WRITE, dev, &op);
  if (rc)
    return rc;
  int64_t now = now_secs(op.b);
  /* now - max_age, saturated both ways (the domain passes max_age >= 0;
   * a negative one, from a test's wrapper, must not overflow). */
  int64_t cutoff;
  if (max_age_secs >= 0)
    cutoff = now < INT64_MIN + max_age_secs ? INT64_MIN : now - max_age_secs;
  else
    cutoff = now > INT64_MAX + max_age_secs ? INT64_MAX : now - max_age_secs;
  rc = exec(op.b,
            "DELETE FROM skipped_keys WHERE device_id=?1 AND created_at<?2",
            ARGS(AI(dev), AI(cutoff)));
  uint64_t n = rc ? 0 : (uint64_t)sqlite3_changes64(op.b->db);
  rc = op_end(&op, rc);
  if (!rc)
    *removed = n;
  return rc;
}

/* ---- backend object ----------------------------------------------------- */

static int sq_close(kj_backend *kb) {
  sq_backend *b = sqb(kb);
  for (size_t i = 0; i < b->ncache; i++)
    sqlite3_finalize(b->cache[i].st);
  free(b->cache);
  int r = sqlite3_close(b->db);
  pthread_cond_destroy(&b->cv);
  pthread_mutex_destroy(&b->mu);
  free(b);
  return r == SQLITE_OK ? KJ_OK : map_sqlite(r);
}

static const char *sq_errmsg(kj_backend *kb) { return sqb(kb)->err; }

static kj_store *sq_store(kj_backend *kb) {
  (void)kb;
  return NULL;
}

static int sq_tx_begin(kj_backend *kb, kj_tx **out) {
  sq_backend *b = sqb(kb);
  sq_tx *t = calloc(1, sizeof *t);
  if (!t)
    return KJ_ENOMEM;
  pthread_mutex_lock(&b->mu);
  /* One kj_tx at a time: a second begin waits, as native; from the thread
   * that holds the open one it would wait forever, so it fails. */
  while (b->tx_open && !pthread_equal(b->tx_owner, pthread_self()))
    pthread_cond_wait(&b->cv, &b->mu);
  int rc = b->tx_open ? failf(b, KJ_EDEADLK,
                              "sqlite: this thread already holds"
                              " a kj_tx on the handle")
                      : run(b, "BEGIN IMMEDIATE");
  if (!rc) {
    b->tx_open = 1;
    b->tx_owner = pthread_self();
  }
  pthread_mutex_unlock(&b->mu);
  if (rc) {
    free(t);
    return rc;
  }
  t->base.backend = kb;
  *out = &t->base;
  return KJ_OK;
}

/* End the open kj_tx: COMMIT (commit = 1) or ROLLBACK, and free it. */
static int tx_end(kj_tx *kt, int commit) {
  sq_tx *t = (sq_tx *)kt;
  sq_backend *b = sqb(kt->backend);
  pthread_mutex_lock(&b->mu);
  int rc = KJ_OK;
  if (commit && t->broken)
    rc = failf(b, KJ_EIO,
               "sqlite: the transaction was rolled back by an "
               "earlier failure");
  else if (commit)
    rc = run(b, "COMMIT");
  /* Nothing of a failed commit may stay: roll back what is still open. */
  if ((!commit || rc) && !sqlite3_get_autocommit(b->db))
    run(b, "ROLLBACK");
  b->tx_open = 0;
  pthread_cond_broadcast(&b->cv);
  pthread_mutex_unlock(&b->mu);
  free(t);
  return rc;
}

static int sq_tx_commit(kj_tx *t) { return tx_end(t, 1); }

static void sq_tx_rollback(kj_tx *t) { tx_end(t, 0); }

/* The table of every handle. */
static const kj_signal_ops sq_signal_ops = {
    .identity_put = s_identity_put,
    .identity_load = s_identity_load,
    .identity_delete = s_identity_delete,
    .session_put = s_session_put,
    .session_get = s_session_get,
    .session_has = s_session_has,
    .session_delete = s_session_delete,
    .prekey_store = s_prekey_store,
    .prekey_store_batch = s_prekey_store_batch,
    .prekey_load = s_prekey_load,
    .prekey_load_batch = s_prekey_load_batch,
    .prekey_remove = s_prekey_remove,
    .prekey_mark_uploaded = s_prekey_mark_uploaded,
    .prekey_max_id = s_prekey_max_id,
    .signed_prekey_store = s_signed_prekey_store,
    .signed_prekey_load = s_signed_prekey_load,
    .signed_prekey_load_all = s_signed_prekey_load_all,
    .signed_prekey_remove = s_signed_prekey_remove,
    .sender_key_put = s_sender_key_put,
    .sender_key_get = s_sender_key_get,
    .sender_key_delete = s_sender_key_delete,
    .identity_put_key = s_identity_put_key,
    .identity_get_key = s_identity_get_key,
    .local_identity_save = s_local_identity_save,
    .local_identity_load = s_local_identity_load,
    .local_identity_delete = s_local_identity_delete,
    .session_store = s_session_store,
    .session_load = s_session_load,
    .session_contains = s_session_contains,
    .session_remove = s_session_remove,
    .session_list_devices = s_session_list_devices,
    .session_remove_all = s_session_remove_all,
    .prekey_has = s_prekey_has,
    .signed_prekey_has = s_signed_prekey_has,
    .sender_key_store = s_sender_key_store,
    .sender_key_load = s_sender_key_load,
};

static const kj_appsync_ops sq_appsync_ops = {
    .sync_key_set = a_sync_key_set,
    .sync_key_get = a_sync_key_get,
    .sync_key_latest = a_sync_key_latest,
    .sync_version_set = a_sync_version_set,
    .sync_version_get = a_sync_version_get,
    .mutation_mac_put = a_mutation_mac_put,
    .mutation_mac_get = a_mutation_mac_get,
    .mutation_mac_delete = a_mutation_mac_delete,
};

static const kj_protocol_ops sq_protocol_ops = {
    .skdm_get = p_skdm_get,
    .skdm_add = p_skdm_add,
    .skdm_clear = p_skdm_clear,
    .lid_put = p_lid_put,
    .lid_get_by_lid = p_lid_get_by_lid,
    .lid_get_by_phone = p_lid_get_by_phone,
    .lid_get_all = p_lid_get_all,
    .base_key_save = p_base_key_save,
    .base_key_has_same = p_base_key_has_same,
    .base_key_delete = p_base_key_delete,
    .device_list_update = p_device_list_update,
    .device_list_get = p_device_list_get,
    .device_list_delete = p_device_list_delete,
    .sender_key_mark_forget = p_sender_key_mark_forget,
    .sender_key_consume_forget = p_sender_key_consume_forget,
    .tc_token_put = p_tc_token_put,
    .tc_token_get = p_tc_token_get,
    .tc_token_delete = p_tc_token_delete,
    .tc_token_all_jids = p_tc_token_all_jids,
    .tc_token_delete_expired = p_tc_token_delete_expired,
};

static const kj_device_ops sq_device_ops = {
    .device_create = d_create,
    .device_list_ids = d_list_ids,
    .device_exists = d_exists,
    .device_save = d_save,
    .device_load = d_load,
    .device_delete = d_delete,
    .device_snapshot_copy = d_snapshot_copy,
    .device_create_labeled = d_create_labeled,
    .device_find = d_find,
};

static const kj_ratchet_ops sq_ratchet_ops = {
    .ratchet_save = r_save,
    .ratchet_load = r_load,
    .ratchet_exists = r_exists,
    .ratchet_delete = r_delete,
    .ratchet_cleanup_skipped = r_cleanup_skipped,
};

static const kj_backend_ops sq_ops = {
    KJ_BACKEND_OPS_INIT("sqlite"), .close = sq_close,
    .errmsg = sq_errmsg,           .store = sq_store,
    .tx_begin = sq_tx_begin,       .tx_commit = sq_tx_commit,
    .tx_rollback = sq_tx_rollback, .signal = &sq_signal_ops,
    .appsync = &sq_appsync_ops,    .protocol = &sq_protocol_ops,
    .device = &sq_device_ops,      .ratchet = &sq_ratchet_ops,
};

/* SQLCipher's raw-key form, PRAGMA key = "x'<64 hex digits>'" (no key
 * derivation), in buf (cap >= 80). */
static void key_pragma(char *buf, size_t cap, const uint8_t *key,
                       size_t keylen) {
  static const char hex[] = "0123456789abcdef";
  size_t n = (size_t)snprintf(buf, cap, "PRAGMA key = \"x'");
  for (size_t i = 0; i < keylen && n + 2 < cap; i++) {
    buf[n++] = hex[key[i] >> 4];
    buf[n++] = hex[key[i] & 15];
  }
  snprintf(buf + n, cap - n, "'\"");
}

/* 1 when the library in use encrypts (SQLCipher answers PRAGMA
 * cipher_version; SQLite ignores unknown pragmas and PRAGMA key). */
static int has_cipher(sqlite3 *db) {
  sqlite3_stmt *st = NULL;
  int yes = 0;
  if (sqlite3_prepare_v2(db, "PRAGMA cipher_version", -1, &st, NULL) ==
      SQLITE_OK)
    yes = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) &&
          *sqlite3_column_text(st, 0);
  sqlite3_finalize(st);
  return yes;
}

/* ora_sqlite_open, and with key (keylen bytes, NULL: none) the keyed open
 * of ora_sqlite_open_keyed. */
static int sq_open(const char *path, int normal, const uint8_t *key,
                   size_t keylen, kj_clock_fn clock, void *clock_ctx,
                   kj_backend **out, char **errmsg) {
  if (out)
    *out = NULL;
  if (errmsg)
    *errmsg = NULL;
  if (!out || (key && keylen != 32))
    return KJ_EINVAL;
  sq_backend *b = calloc(1, sizeof *b);
  if (!b)
    return KJ_ENOMEM;
  b->clock = clock;
  b->clock_ctx = clock_ctx;
  pthread_mutex_init(&b->mu, NULL);
  pthread_cond_init(&b->cv, NULL);
  int r = sqlite3_open_v2(
      path ? path : ":memory:", &b->db,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  const char *nocipher = NULL;
  if (key && r == SQLITE_OK) {
    /* First statement on the connection: SQLCipher reads nothing before
     * the key is set. */
    char kp[96];
    key_pragma(kp, sizeof kp, key, keylen);
    r = sqlite3_exec(b->db, kp, NULL, NULL, NULL);
    explicit_bzero(kp, sizeof kp);
    if (r == SQLITE_OK && !has_cipher(b->db)) {
      r = SQLITE_MISUSE;
      nocipher = "this SQLite does not encrypt (no PRAGMA cipher_version): "
                 "a keyed open needs SQLCipher";
    }
  }
  const char *setup[] = {
      "PRAGMA foreign_keys=ON",
      "PRAGMA journal_mode=WAL",
      normal ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL",
      "BEGIN IMMEDIATE",
      SCHEMA,
      "COMMIT",
  };
  if (r == SQLITE_OK)
    r = sqlite3_busy_timeout(b->db, 5000);
  for (size_t i = 0; r == SQLITE_OK && i < sizeof setup / sizeof *setup; i++)
    r = sqlite3_exec(b->db, setup[i], NULL, NULL, NULL);
  if (r != SQLITE_OK) {
    int rc = nocipher                             ? KJ_EINVAL
             : r == SQLITE_NOMEM || !b->db        ? KJ_ENOMEM
             : key && (r & 0xff) == SQLITE_NOTADB ? KJ_EKEY
                                                  : KJ_EIO;
    if (errmsg) {
      const char *m = nocipher ? nocipher
                      : b->db  ? sqlite3_errmsg(b->db)
                               : "out of memory";
      size_t n = strlen(m) + sizeof "sqlite open : " + strlen(path ? path : "");
      char *e = malloc(n);
      if (e)
        snprintf(e, n, "sqlite open %s: %s", path ? path : ":memory:", m);
      *errmsg = e;
    }
    sqlite3_close(b->db);
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    free(b);
    return rc;
  }
  b->base.ops = &sq_ops;
  *out = &b->base;
  return KJ_OK;
}

int ora_sqlite_open(const char *path, int normal, kj_clock_fn clock,
                    void *clock_ctx, kj_backend **out, char **errmsg) {
  return sq_open(path, normal, NULL, 0, clock, clock_ctx, out, errmsg);
}

int ora_sqlite_open_keyed(const char *path, int normal, const uint8_t *key,
                          size_t keylen, kj_clock_fn clock, void *clock_ctx,
                          kj_backend **out, char **errmsg) {
  if (!key) {
    if (out)
      *out = NULL;
    if (errmsg)
      *errmsg = NULL;
    return KJ_EINVAL;
  }
  return sq_open(path, normal, key, keylen, clock, clock_ctx, out, errmsg);
}
