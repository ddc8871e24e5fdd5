/*
 * src/engine/txn.c - transactions, row access, commit and group commit.
 *
 * A write transaction is an ordered write set (a kj_map keyed by the table
 * id byte followed by the row key, with tombstones for deletes: body.h)
 * over the committed tables. Reads merge the two. Commit encodes the write
 * set as one commit body (body.c), hands it to the journal and applies it
 * to the tables - through kj_body_apply(), the same decoder recovery uses.
 *
 * KJ_SYNC_NORMAL and OFF apply once the frame is written. KJ_SYNC_FULL uses
 * group commit: the frame is written and applied under the writer lock,
 * together with an undo body (the rows it overwrites), then the lock is
 * released and the committer waits for a shared fdatasync outside it
 * (kj_journal_wait_durable), so the next transactions write their frames
 * meanwhile and join the next sync. If that sync fails, every commit not
 * durable is undone before its committer returns the failure. Commits
 * whose undo would be large, and the one that triggers a snapshot, wait
 * under the writer lock instead and apply only once durable.
 *
 * One commit only calls downwards: body.c (encode), journal.c (append,
 * wait), body.c (apply), handle.c (statistics, failure detail) and
 * checkpoint.c (a snapshot when due); never store.c.
 */
#include <stdlib.h>
#include <string.h>

#include "body.h"
#include "checkpoint.h"
#include "handle.h"
#include "overlay.h"
#include "run.h"
#include "secmem.h"

/* Largest undo body kept for a group commit; a commit that overwrites more
 * waits for its sync under the writer lock (see kj_txn_commit). */
#define GROUP_UNDO_MAX (1u << 20)

/* ---- argument checks -------------------------------------------------- */

static int bad_table(unsigned table) { return !kj_table_ok(table); }

static int bad_key(const void *key, size_t klen) {
  return !key || klen < 1 || klen > KJ_MAX_KEY;
}

static int check_txn(kj_store *s, kj_txn *txn) {
  return !s || (txn && txn->s != s);
}

/* ---- what the calling thread holds ------------------------------------ */

/* A call that would wait for a lock its own thread holds fails at once with
 * KJ_EDEADLK instead (store.h "Threads"). Two facts are kept, both cheap
 * to test on the hot path:
 *   - the writer: s->writer_owner is the id of the thread whose write
 *     transaction holds the writer lock, one compare;
 *   - reads: per thread, the stores on which it holds read-only
 *     transactions or is inside a scan without a transaction (below); the
 *     common case, none, is one compare of a count.
 * The first read hold of a thread on a store takes the row read lock and
 * the later ones share it: a second rdlock of the writer-preferring lock
 * would queue behind a commit that itself waits for this thread. */

/* Read holds on more stores at once than this are taken untracked, as a
 * lock of their own (no KJ_EDEADLK for them). */
#define HELD_MAX 16

typedef struct held {
  const kj_store *s;
  unsigned ro;    /* read-only transactions */
  unsigned scans; /* scans with txn == NULL in progress */
} held;

/* All a thread keeps, in one thread-local object. In a shared library
 * each use of a thread-local variable may cost a call to find it
 * (__tls_get_addr; GCC repeats the call for every access), so the
 * functions below take its address once, from me(), which is not inlined
 * for that reason. Its address is also the thread's id, unique among the
 * threads alive. */
typedef struct thread_holds {
  unsigned n; /* tab[0 .. n) are in use */
  held tab[HELD_MAX];
} thread_holds;

static _Thread_local thread_holds holds;

#if defined(__GNUC__) || defined(__clang__)
__attribute__((noinline))
#endif
static thread_holds *
me(void) {
  return &holds;
}
static const void *self_id(void) { return me(); }

static held *held_find(thread_holds *me, const kj_store *s) {
  for (unsigned i = 0; i < me->n; i++)
    if (me->tab[i].s == s)
      return &me->tab[i];
  return NULL;
}

/* Take a read hold on s for this thread (a scan's or a read-only
 * transaction's). Returns 1 when it is tracked, 0 when the table was full
 * and the lock was taken untracked. */
static int read_enter(thread_holds *t, kj_store *s, int scan) {
  held *h = t->n ? held_find(t, s) : NULL;
  if (!h) {
    pthread_rwlock_rdlock(&s->rows);
    if (t->n == HELD_MAX)
      return 0;
    h = &t->tab[t->n++];
    *h = (held){s, 0, 0};
  }
  if (scan)
    h->scans++;
  else
    h->ro++;
  return 1;
}

static void read_leave(thread_holds *t, kj_store *s, int scan, int tracked) {
  held *h = tracked && t->n ? held_find(t, s) : NULL;
  if (h) {
    if (scan)
      h->scans--;
    else
      h->ro--;
    if (h->scans || h->ro)
      return; /* the lock stays with the holds still open */
    *h = t->tab[--t->n];
  }
  pthread_rwlock_unlock(&s->rows);
}

/* This thread's read hold on s, or NULL. */
static const held *read_held(const kj_store *s) {
  thread_holds *t = me();
  return t->n ? held_find(t, s) : NULL;
}

static int deadlk(kj_store *s, const char *what, const char *why) {
  kj_errbuf e;
  return kj_store_fail(s, kj_err(&e, KJ_EDEADLK, "%s: %s", what, why), &e);
}

static const char held_writer_msg[] =
    "this thread already holds a write transaction on this store and would "
    "wait for itself; a transaction cannot start within a transaction "
    "(pass the one it holds to every call)";

/* The writer lock may be taken on this thread: KJ_OK or KJ_EDEADLK. Not
 * while this thread holds it, and not while it holds the row read lock:
 * the commit of the write would wait for that, and taking the writer lock
 * after the row lock reverses the lock order (a committer holding the
 * writer lock may be waiting for the row lock). */
int kj_writer_check(kj_store *s, const char *what) {
  if (atomic_load_explicit(&s->writer_owner, memory_order_relaxed) == self_id())
    return deadlk(s, what, held_writer_msg);
  const held *h = read_held(s);
  if (h && h->scans)
    return deadlk(s, what,
                  "called from a scan callback on this store; a scan "
                  "callback must not write to the store (its commit would "
                  "wait for the scan)");
  if (h && h->ro)
    return deadlk(s, what,
                  "this thread holds a read-only transaction on this store "
                  "and would wait for itself; a transaction cannot start "
                  "within a transaction (end it first)");
  return KJ_OK;
}

/* ---- begin / rollback ------------------------------------------------- */

/* kj_txn_begin; what names the call in a KJ_EDEADLK message. */
static int txn_begin(kj_store *s, unsigned flags, kj_txn **out,
                     const char *what) {
  if (out)
    *out = NULL;
  if (!s || !out || (flags & ~KJ_TXN_READONLY))
    return s ? kj_store_fail_msg(s, KJ_EINVAL, "kj_txn_begin: bad arguments")
             : KJ_EINVAL;
  if (atomic_load(&s->broken))
    return kj_store_fail_msg(s, KJ_EPOISONED,
                             "handle is broken; reopen the store");
  int ro = flags & KJ_TXN_READONLY;
  if (!ro && s->read_only)
    return kj_store_fail_msg(s, KJ_EREADONLY,
                             "write transaction on a read-only handle");
  if (!ro && atomic_load(&s->poisoned))
    return kj_store_fail_msg(s, KJ_EPOISONED,
                             "handle poisoned by an earlier failure");
  int rc = ro ? KJ_OK : kj_writer_check(s, what);
  if (rc)
    return rc;
  kj_txn *t = calloc(1, sizeof *t);
  if (!t || (!ro && !(t->ws = kj_map_new()))) {
    free(t);
    return kj_store_fail_msg(s, KJ_ENOMEM, "kj_txn_begin: out of memory");
  }
  t->s = s;
  t->flags = flags;
  if (ro) {
    /* Never waits for this thread: a second read-only transaction shares
     * its read hold, and inside its own write transaction no commit can
     * queue for the row lock (that needs the writer lock). */
    t->holds = me();
    t->tracked = read_enter(t->holds, s, 0);
    atomic_fetch_add(&s->readers, 1);
  } else {
    atomic_fetch_add(&s->writers_queued, 1);
    pthread_mutex_lock(&s->writer);
    atomic_fetch_sub(&s->writers_queued, 1);
    if (atomic_load(&s->poisoned)) { /* poisoned while we waited */
      pthread_mutex_unlock(&s->writer);
      kj_map_free(t->ws);
      free(t);
      return kj_store_fail_msg(s, KJ_EPOISONED,
                               "handle poisoned by an earlier failure");
    }
    atomic_store_explicit(&s->writer_owner, self_id(), memory_order_relaxed);
  }
  *out = t;
  return KJ_OK;
}

int kj_txn_begin(kj_store *s, unsigned flags, kj_txn **out) {
  return txn_begin(s, flags, out, "kj_txn_begin");
}

static void txn_end(kj_txn *t) {
  kj_map_free(t->undo);
  if (t->flags & KJ_TXN_READONLY) {
    atomic_fetch_sub(&t->s->readers, 1);
    read_leave(t->holds, t->s, 0, t->tracked);
  } else {
    kj_map_free(t->ws);
    atomic_store_explicit(&t->s->writer_owner, NULL, memory_order_relaxed);
    pthread_mutex_unlock(&t->s->writer);
  }
  free(t);
}

void kj_txn_rollback(kj_txn *t) {
  if (t)
    txn_end(t);
}

/* ---- group commit ----------------------------------------------------- */

/* The pending record of t: an undo body that puts back, for each key of
 * the write set, its committed value, or deletes it where there is none.
 * Ops come in write-set order, so kj_body_apply() accepts it. NULL when it
 * would exceed GROUP_UNDO_MAX or memory is short: the commit then goes the
 * serial way. Caller holds the writer lock (the tables do not change). */
static kj_pending *pending_new(const kj_txn *t, const int64_t *below) {
  kj_store *s = t->s;
  uint64_t n = kj_body_undo_len(s->tables, t->ws, below, GROUP_UNDO_MAX);
  if (!n)
    return NULL;
  kj_pending *pd = kj_sec_alloc(sizeof *pd + (size_t)n);
  if (!pd)
    return NULL;
  pd->len = kj_body_encode_undo(pd->undo, s->tables, t->ws, below);
  pd->prev = pd->next = NULL;
  pd->seq = 0;
  return pd;
}

static void pending_unlink(kj_store *s, kj_pending *pd) {
  if (pd->prev)
    pd->prev->next = pd->next;
  else
    s->pend_head = pd->next;
  if (pd->next)
    pd->next->prev = pd->prev;
  else
    s->pend_tail = pd->prev;
}

/* After a failed sync: undo, newest first, every pending commit that is not
 * durable (durable_seq no longer moves, see kj_journal_wait_durable), so
 * the tables hold exactly the commits that succeeded. Idempotent: every
 * committer that fails calls it. Caller holds the writer lock. */
static void undo_pending(kj_store *s) {
  uint64_t durable = kj_journal_durable_seq(s->journal);
  pthread_rwlock_wrlock(&s->rows);
  pthread_mutex_lock(&s->pend_mu);
  while (s->pend_tail && s->pend_tail->seq > durable) {
    kj_pending *pd = s->pend_tail;
    pending_unlink(s, pd);
    kj_errbuf e;
    kj_apply a;
    kj_store_applier(s, &a, NULL);
    if (kj_body_apply(&a, KJ_BODY_UNDO, pd->undo, pd->len, &e))
      atomic_store(&s->broken, 1); /* memory no longer matches */
    kj_sec_free(pd);
  }
  pthread_mutex_unlock(&s->pend_mu);
  pthread_rwlock_unlock(&s->rows);
}

/* The second half of a group commit, after the writer lock was released:
 * wait for the shared sync of frame seq, whose pending record is pd. Once
 * published, pd may be freed at any time by another committer whose sync
 * failed (undo_pending), unless this frame is durable: so seq comes by
 * value, and pd is touched only after the wait succeeded. The decrement
 * of s->committing is the last touch of s (kj_store_close checks it). */
static int group_wait(kj_store *s, kj_pending *pd, uint64_t seq) {
  kj_errbuf e;
  int rc = kj_journal_wait_grouped(s->journal, seq, &e);
  if (!rc) {
    pthread_mutex_lock(&s->pend_mu);
    pending_unlink(s, pd);
    pthread_mutex_unlock(&s->pend_mu);
    kj_sec_free(pd);
    pthread_mutex_lock(&s->mu);
    s->commits++;
    pthread_mutex_unlock(&s->mu);
  } else {
    /* pd belongs to the list until undo_pending frees it (ours or another
     * failed committer's): do not touch it. */
    atomic_store(&s->poisoned, 1);
    pthread_mutex_lock(&s->writer);
    undo_pending(s);
    kj_store_refresh_stats(s);
    pthread_mutex_unlock(&s->writer);
    kj_store_fail(s, rc, &e);
  }
  atomic_fetch_sub(&s->committing, 1);
  return rc;
}

/* What the run holds under each key of t's write set that the overlay has
 * no entry for (kj_apply.below): its value length, or -1. Read before the
 * frame is written, so that a run that cannot be read fails the commit
 * with nothing changed. *out NULL without a run. Writer lock held. */
static int below_of(kj_txn *t, int64_t **out, kj_errbuf *e) {
  kj_store *s = t->s;
  *out = NULL;
  if (!s->run && !s->has_frozen)
    return KJ_OK;
  int64_t *b = malloc(kj_map_count(t->ws) * sizeof *b);
  if (!b)
    return kj_err(e, KJ_ENOMEM, "commit: out of memory");
  kj_iter it;
  kj_iter_seek(&it, t->ws, NULL, 0);
  uint64_t i = 0;
  for (const kj_entry *w; (w = kj_iter_next(&it)); i++) {
    const uint8_t *k = kj_entry_key(w);
    size_t klen = kj_entry_klen(w) - 1;
    b[i] = -1;
    if (kj_map_get(s->tables[k[0]], k + 1, klen))
      continue;
    const kj_entry *f =
        s->has_frozen ? kj_map_get(s->frozen[k[0]], k + 1, klen) : NULL;
    if (f) {
      b[i] = kj_entry_tomb(f) ? -1 : (int64_t)kj_entry_vlen(f);
      continue;
    }
    if (!s->run || !kj_run_may_have(s->run, k[0], k + 1, klen))
      continue;
    kj_run_ref ref;
    int rc = kj_run_find(s->run, s->cache, k[0], k + 1, klen, &ref, e);
    if (rc == KJ_OK) {
      b[i] = (int64_t)ref.vlen;
      kj_run_ref_release(s->cache, &ref);
    } else if (rc != KJ_NOTFOUND) {
      free(b);
      return rc;
    }
  }
  *out = b;
  return KJ_OK;
}

int kj_txn_commit(kj_txn *t) {
  if (!t)
    return KJ_EINVAL;
  kj_store *s = t->s;
  if ((t->flags & KJ_TXN_READONLY) || !kj_map_count(t->ws)) {
    txn_end(t);
    return KJ_OK;
  }
  if (read_held(s)) { /* applying needs the row write lock */
    txn_end(t);
    return deadlk(s, "kj_txn_commit",
                  "this thread holds a read-only transaction or is inside "
                  "a scan on this store, and the commit would wait for it "
                  "(end it first); the transaction was rolled back");
  }
  kj_errbuf e;
  int rc = KJ_OK;
  size_t len = 0;
  uint8_t *body = NULL;
  uint64_t seq = 0;
  int full = s->journal && kj_journal_mode(s->journal) == KJ_SYNC_FULL;
  kj_pending *pd = NULL;
  int64_t *below = NULL;
  if (atomic_load(&s->poisoned) || atomic_load(&s->broken))
    rc = kj_err(&e, KJ_EPOISONED, "handle poisoned by an earlier failure");
  else if ((rc = below_of(t, &below, &e)))
    ; /* e says why */
  else if (!(body =
                 kj_sec_alloc(kj_body_len(kj_map_count(t->ws), t->ws_bytes))))
    rc = kj_err(&e, KJ_ENOMEM, "commit: out of memory");
  else {
    len = kj_body_encode(body, t->ws);
    if (full)
      pd = pending_new(t, below); /* NULL: the serial way below */
    if (s->journal &&
        (rc = kj_journal_append(s->journal, body, len, &seq, &e)) &&
        kj_journal_poisoned(s->journal))
      atomic_store(&s->poisoned, 1);
    if (!rc)
      kj_checkpoint_ahead(s);
  }
  if (!rc && pd && kj_checkpoint_due(s)) {
    kj_sec_free(pd); /* the snapshot must follow this commit's sync: serial */
    pd = NULL;
  }
  if (!rc && full && !pd &&
      (rc = kj_journal_wait_durable(s->journal, seq, &e)) &&
      kj_journal_poisoned(s->journal))
    atomic_store(&s->poisoned, 1); /* serial: durable before applied */
  if (!rc) {
    kj_apply a;
    kj_store_applier(s, &a, below);
    pthread_rwlock_wrlock(&s->rows);
    rc = kj_body_apply(&a, KJ_BODY_APPLY, body, len, &e);
    pthread_rwlock_unlock(&s->rows);
    if (rc) /* journal and memory now disagree: only a reopen can help */
      atomic_store(&s->broken, 1);
  }
  kj_sec_free(body);
  free(below);
  if (!rc && pd) {
    /* Group commit: publish the undo, let the next writer in, then wait
     * for the shared sync. */
    pd->seq = seq;
    pthread_mutex_lock(&s->pend_mu);
    pd->prev = s->pend_tail;
    if (s->pend_tail)
      s->pend_tail->next = pd;
    else
      s->pend_head = pd;
    s->pend_tail = pd;
    pthread_mutex_unlock(&s->pend_mu);
    kj_store_refresh_stats(s);
    atomic_fetch_add(&s->committing, 1);
    txn_end(t);
    return group_wait(s, pd, seq);
  }
  kj_sec_free(pd);
  if (!rc) {
    pthread_mutex_lock(&s->mu);
    s->commits++;
    pthread_mutex_unlock(&s->mu);
  }
  kj_store_refresh_stats(s);
  if (!rc)
    kj_checkpoint_maybe(s);
  txn_end(t);
  return rc ? kj_store_fail(s, rc, &e) : KJ_OK;
}

/* ---- savepoints ------------------------------------------------------- */

/* Remember the write-set state of key tk before its first change since the
 * savepoint (old: its entry, or NULL when the write set has none). */
static int undo_record(kj_txn *t, const uint8_t *tk, size_t tklen,
                       const kj_entry *old) {
  size_t vlen = old && !kj_entry_tomb(old) ? kj_entry_vlen(old) : 0;
  uint8_t *v = kj_sec_alloc(1 + vlen);
  if (!v)
    return KJ_ENOMEM;
  v[0] = !old ? 0 : kj_entry_tomb(old) ? 1 : 2;
  if (vlen)
    memcpy(v + 1, kj_entry_val(old), vlen);
  int rc = kj_map_put(t->undo, tk, tklen, v, 1 + vlen, 0);
  kj_sec_free(v);
  return rc;
}

int kj_txn_savepoint(kj_txn *t) {
  if (!t || !t->ws)
    return KJ_EINVAL;
  if (t->undo)
    kj_map_clear(t->undo);
  else if (!(t->undo = kj_map_new()))
    return KJ_ENOMEM;
  t->undo_ws_bytes = t->ws_bytes;
  return KJ_OK;
}

void kj_txn_release_savepoint(kj_txn *t) {
  if (t && t->undo) {
    kj_map_free(t->undo);
    t->undo = NULL;
  }
}

void kj_txn_rollback_savepoint(kj_txn *t) {
  if (!t || !t->undo)
    return;
  kj_iter it;
  kj_iter_seek(&it, t->undo, NULL, 0);
  /* Restoring never allocates more than the write set held at the
   * savepoint; a put that fails here would leave a change behind, so a
   * failure marks the handle broken rather than pretend. */
  for (const kj_entry *u; (u = kj_iter_next(&it));) {
    const uint8_t *v = kj_entry_val(u);
    int rc = KJ_OK;
    if (v[0] == 0)
      kj_map_del(t->ws, kj_entry_key(u), kj_entry_klen(u));
    else
      rc = kj_map_put(t->ws, kj_entry_key(u), kj_entry_klen(u), v + 1,
                      kj_entry_vlen(u) - 1, v[0] == 1);
    if (rc)
      atomic_store(&t->s->broken, 1);
  }
  t->ws_bytes = t->undo_ws_bytes;
  kj_map_free(t->undo);
  t->undo = NULL;
}

/* ---- rows ------------------------------------------------------------- */

static int ws_write(kj_txn *t, unsigned table, const void *key, size_t klen,
                    const void *val, size_t vlen, int tomb) {
  kj_store *s = t->s;
  if (t->flags & KJ_TXN_READONLY)
    return kj_store_fail_msg(s, KJ_EINVAL, "write in a read-only transaction");
  if (t->scanning)
    return kj_store_fail_msg(s, KJ_EINVAL,
                             "write to a transaction during its own scan");
  uint8_t tk[1 + KJ_MAX_KEY];
  size_t tklen = kj_ws_key(tk, table, key, klen);
  const kj_entry *old = kj_map_get(t->ws, tk, tklen);
  uint64_t bytes = t->ws_bytes + kj_body_op_bytes(klen, tomb, vlen);
  if (old)
    bytes -= kj_body_op_bytes(klen, kj_entry_tomb(old), kj_entry_vlen(old));
  if (bytes > KJ_MAX_TXN_BYTES)
    return kj_store_fail_msg(s, KJ_EINVAL,
                             "transaction exceeds KJ_MAX_TXN_BYTES");
  if (t->undo && !kj_map_get(t->undo, tk, tklen) &&
      undo_record(t, tk, tklen, old))
    return kj_store_fail_msg(s, KJ_ENOMEM, "out of memory");
  if (kj_map_put(t->ws, tk, tklen, val, vlen, tomb))
    return kj_store_fail_msg(s, KJ_ENOMEM, "out of memory");
  t->ws_bytes = bytes;
  return KJ_OK;
}

/* Run one write, in txn or as a transaction of its own. */
static int do_write(kj_store *s, kj_txn *txn, unsigned table, const void *key,
                    size_t klen, const void *val, size_t vlen, int tomb) {
  if (txn)
    return ws_write(txn, table, key, klen, val, vlen, tomb);
  kj_txn *t;
  int rc = txn_begin(s, 0, &t,
                     tomb ? "kj_delete with txn NULL" : "kj_put with txn NULL");
  if (rc)
    return rc;
  rc = ws_write(t, table, key, klen, val, vlen, tomb);
  if (rc) {
    kj_txn_rollback(t);
    return rc;
  }
  return kj_txn_commit(t);
}

int kj_put(kj_store *s, kj_txn *txn, unsigned table, const void *key,
           size_t klen, const void *val, size_t vlen) {
  if (check_txn(s, txn))
    return s ? kj_store_fail_msg(s, KJ_EINVAL,
                                 "kj_put: transaction of another store")
             : KJ_EINVAL;
  if (bad_table(table) || bad_key(key, klen) || vlen > KJ_MAX_VALUE ||
      (vlen && !val))
    return kj_store_fail_msg(s, KJ_EINVAL,
                             "kj_put: bad table id, key or value");
  return do_write(s, txn, table, key, klen, val, vlen, 0);
}

int kj_delete(kj_store *s, kj_txn *txn, unsigned table, const void *key,
              size_t klen) {
  if (check_txn(s, txn))
    return s ? kj_store_fail_msg(s, KJ_EINVAL,
                                 "kj_delete: transaction of another store")
             : KJ_EINVAL;
  if (bad_table(table) || bad_key(key, klen))
    return kj_store_fail_msg(s, KJ_EINVAL, "kj_delete: bad table id or key");
  return do_write(s, txn, table, key, klen, NULL, 0, 1);
}

static int copy_out(const void *v, size_t n, void **val, size_t *vlen) {
  if (!val) /* kj_get's presence test: nothing to copy */
    return KJ_OK;
  *val = NULL;
  *vlen = n;
  if (!n)
    return KJ_OK;
  if (!(*val = malloc(n)))
    return KJ_ENOMEM;
  memcpy(*val, v, n);
  return KJ_OK;
}

int kj_get(kj_store *s, kj_txn *txn, unsigned table, const void *key,
           size_t klen, void **val, size_t *vlen) {
  if (val)
    *val = NULL;
  if (vlen)
    *vlen = 0;
  if (check_txn(s, txn))
    return s ? kj_store_fail_msg(s, KJ_EINVAL,
                                 "kj_get: transaction of another store")
             : KJ_EINVAL;
  if (bad_table(table) || bad_key(key, klen) || !val != !vlen)
    return kj_store_fail_msg(s, KJ_EINVAL,
                             "kj_get: bad table id, key or output");
  if (atomic_load(&s->broken))
    return kj_store_fail_msg(s, KJ_EPOISONED,
                             "handle is broken; reopen the store");
  if (txn && txn->ws) {
    uint8_t tk[1 + KJ_MAX_KEY];
    const kj_entry *w =
        kj_map_get(txn->ws, tk, kj_ws_key(tk, table, key, klen));
    if (w) {
      if (kj_entry_tomb(w))
        return KJ_NOTFOUND;
      return copy_out(kj_entry_val(w), kj_entry_vlen(w), val, vlen)
                 ? kj_store_fail_msg(s, KJ_ENOMEM, "kj_get: out of memory")
                 : KJ_OK;
    }
  }
  /* A write transaction holds the writer lock, so no commit can change the
   * tables under it; a read-only one holds the read lock, and so does a
   * thread with a read hold on s (it shares it rather than queue behind a
   * waiting commit). */
  int lock = !txn && !read_held(s);
  if (lock)
    pthread_rwlock_rdlock(&s->rows);
  const kj_entry *c = kj_map_get(s->tables[table], key, klen);
  if (!c && s->has_frozen)
    c = kj_map_get(s->frozen[table], key, klen);
  kj_errbuf e;
  e.msg[0] = 0;
  int rc;
  if (c) {
    rc = kj_entry_tomb(c)
             ? KJ_NOTFOUND
             : copy_out(kj_entry_val(c), kj_entry_vlen(c), val, vlen);
  } else if (!s->run) {
    rc = KJ_NOTFOUND;
  } else {
    kj_run_ref ref;
    rc = kj_run_find(s->run, s->cache, table, key, klen, &ref, &e);
    if (rc == KJ_OK) {
      rc = copy_out(ref.val, ref.vlen, val, vlen);
      kj_run_ref_release(s->cache, &ref);
    }
  }
  if (lock)
    pthread_rwlock_unlock(&s->rows);
  if (rc == KJ_ENOMEM)
    return kj_store_fail_msg(s, rc, "kj_get: out of memory");
  if (rc != KJ_OK && rc != KJ_NOTFOUND)
    return kj_store_fail(s, rc, &e);
  return rc;
}

/* ---- scans ------------------------------------------------------------ */

/* Merge the committed rows and the write set of txn, in key order, over
 * [start, end) (end NULL: unbounded). */
static int scan(kj_store *s, kj_txn *txn, unsigned table, const void *start,
                size_t slen, const void *end, size_t elen, kj_scan_fn fn,
                void *arg) {
  kj_rows_cursor cc;
  kj_map *maps[2];
  kj_store_maps(s, table, maps);
  kj_rows_seek(&cc, maps, 2, s->run, s->cache, table, start, slen);
  const uint8_t *ck = NULL, *cv = NULL;
  size_t cl = 0, cvl = 0;
  int have_c = kj_rows_next(&cc, &ck, &cl, &cv, &cvl);
  kj_iter wi;
  const kj_entry *w = NULL;
  if (txn && txn->ws) {
    uint8_t tk[1 + KJ_MAX_KEY];
    kj_iter_seek(&wi, txn->ws, tk, kj_ws_key(tk, table, start, slen));
    w = kj_iter_next(&wi);
    txn->scanning = 1;
  }
  int rc = KJ_OK;
  for (;;) {
    if (w && ((const uint8_t *)kj_entry_key(w))[0] != table)
      w = NULL;
    if (cc.err || (!have_c && !w))
      break;
    const uint8_t *wk = w ? (const uint8_t *)kj_entry_key(w) + 1 : NULL;
    size_t wl = w ? kj_entry_klen(w) - 1 : 0;
    int cmp = !w ? -1 : !have_c ? 1 : kj_key_cmp(ck, cl, wk, wl);
    const uint8_t *k = cmp < 0 ? ck : wk;
    size_t kl = cmp < 0 ? cl : wl;
    if (end && kj_key_cmp(k, kl, end, elen) >= 0)
      break;
    int skip = cmp >= 0 && kj_entry_tomb(w);
    if (!skip) {
      const uint8_t *v = cmp < 0 ? cv : kj_entry_val(w);
      size_t vl = cmp < 0 ? cvl : kj_entry_vlen(w);
      if ((rc = fn(arg, k, kl, v, vl)))
        break;
    }
    /* Advance only after the callback: a run row lives in the block the
     * committed cursor pins until its next step. */
    if (cmp <= 0)
      have_c = kj_rows_next(&cc, &ck, &cl, &cv, &cvl);
    if (cmp >= 0)
      w = kj_iter_next(&wi);
  }
  if (!rc && cc.err)
    rc = kj_store_fail(s, cc.err, &cc.e);
  kj_rows_close(&cc);
  if (txn)
    txn->scanning = 0;
  return rc;
}

int kj_scan_range(kj_store *s, kj_txn *txn, unsigned table, const void *start,
                  size_t start_len, const void *end, size_t end_len,
                  kj_scan_fn fn, void *arg) {
  if (check_txn(s, txn))
    return s ? kj_store_fail_msg(s, KJ_EINVAL,
                                 "kj_scan: transaction of another store")
             : KJ_EINVAL;
  if (bad_table(table) || !fn || (start_len && !start) ||
      start_len > KJ_MAX_KEY || (end && end_len > KJ_MAX_KEY))
    return kj_store_fail_msg(s, KJ_EINVAL,
                             "kj_scan: bad table id, bound or callback");
  if (atomic_load(&s->broken))
    return kj_store_fail_msg(s, KJ_EPOISONED,
                             "handle is broken; reopen the store");
  if (!start_len)
    start = NULL;
  /* Without a transaction the scan is a read hold of this thread, so a
   * write from its callback fails with KJ_EDEADLK instead of waiting. */
  thread_holds *mine = txn ? NULL : me();
  int tracked = txn ? 0 : read_enter(mine, s, 1);
  int rc = scan(s, txn, table, start, start_len, end, end_len, fn, arg);
  if (!txn)
    read_leave(mine, s, 1, tracked);
  return rc;
}

int kj_scan_prefix(kj_store *s, kj_txn *txn, unsigned table, const void *prefix,
                   size_t plen, kj_scan_fn fn, void *arg) {
  if (plen > KJ_MAX_KEY || (plen && !prefix))
    return s ? kj_store_fail_msg(s, KJ_EINVAL, "kj_scan_prefix: bad prefix")
             : KJ_EINVAL;
  /* Keys with the prefix are exactly [prefix, prefix+1) where +1
   * increments the last byte that is not 0xff, dropping those after it;
   * an all-0xff prefix has no upper bound. */
  uint8_t end[KJ_MAX_KEY];
  size_t elen = plen;
  if (plen)
    memcpy(end, prefix, plen);
  while (elen && end[elen - 1] == 0xff)
    elen--;
  if (elen)
    end[elen - 1]++;
  return kj_scan_range(s, txn, table, prefix, plen, elen ? end : NULL, elen, fn,
                       arg);
}
