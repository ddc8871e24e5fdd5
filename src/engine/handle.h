/*
 * src/engine/handle.h - the store handle and the transaction handle
 * (internal): struct kj_store, struct kj_txn and the group commit's
 * pending records, plus what every layer above does with a handle: record
 * a failure's detail and refresh the statistics copies.
 *
 * Lock order: writer, rows, pend_mu (pend_mu alone for an unlink). mu is
 * innermost: it may be taken with any of them held, and nothing is locked
 * or read from disk while it is held. The writer lock is held across the
 * journal's I/O (frame writes, serial syncs, checkpoints); rows, pend_mu
 * and mu never are, and a group commit waits for its sync holding none.
 */
#ifndef KJ_HANDLE_H
#define KJ_HANDLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "body.h"
#include "crypto.h"
#include "errbuf.h"
#include "journal.h"
#include "keyjournal/store.h"
#include "keyjournal/sys/vfs.h"
#include "map.h"
#include "snapshot.h"

/* A KJ_SYNC_FULL commit applied to the tables whose frame may not be
 * durable yet (group commit, see kj_txn_commit). undo is a commit body
 * (FORMAT.md 4.3) that puts back what the commit overwrote: a put of the
 * previous value, or a delete where there was none. */
typedef struct kj_pending {
  struct kj_pending *prev, *next;
  uint64_t seq; /* its frame */
  size_t len;
  uint8_t undo[];
} kj_pending;

struct kj_store {
  const kj_vfs *vfs;
  char *dir;             /* NULL for memory-only */
  kj_vfs_file *lockfile; /* holds the flock */
  kj_keys *keys;
  kj_journal *journal; /* NULL for memory-only */
  int read_only;
  kj_clock_fn clock;
  void *clock_ctx;

  /* Committed rows: the newest run file (NULL: none, or a memory-only
   * store) read through a block cache, and over it the overlay, one map
   * per table id (index 0 unused) holding every change since the run. An
   * overlay entry hides the run's row of its key; a tombstone entry hides
   * it and shows nothing (there is one only where the run's Bloom filter
   * may hold the key). run and the overlay change together, under the
   * writer and row locks (a checkpoint). */
  kj_map *tables[KJ_NTABLES];
  struct kj_run *run;
  struct kj_bcache *cache;
  /* A checkpoint's frozen overlay (has_frozen): the overlay as it was at
   * frozen_info.seq, which a background checkpoint merges over run into
   * the next run while commits go on into a fresh overlay. Reads look in
   * tables, then frozen, then run. Frozen maps are never written: the
   * checkpoint thread reads them without a lock. Set and cleared under the
   * writer and row locks. A failed background checkpoint leaves them, to
   * be merged by the next checkpoint. */
  kj_map *frozen[KJ_NTABLES];
  int has_frozen;
  kj_snap_info frozen_info;
  /* The background checkpoint thread: started (ckpt_running) until joined;
   * ckpt_done once it has finished (joined without waiting); ckpt_cancel
   * asks it to give up (close). ckpt_thread and the start and join are
   * under ckpt_mu, which a committer holding the writer lock only tries
   * (the thread takes the writer lock, and a join waits for the thread). */
  pthread_mutex_t ckpt_mu;
  pthread_t ckpt_thread;
  atomic_int ckpt_running, ckpt_done, ckpt_cancel;
  int ckpt_inline; /* kj_options.checkpoint_inline */
  /* Rows and key + value bytes each table shows (run and overlay
   * together), kept by every apply; writer side (writer lock, or the row
   * write lock), copied to table_rows/bytes below for statistics. */
  uint64_t live_rows[KJ_NTABLES], live_bytes[KJ_NTABLES];

  /* One write transaction at a time. A KJ_SYNC_FULL commit releases it
   * once its frame is written and applied, and waits for the shared sync
   * outside it (group commit). */
  pthread_mutex_t writer;
  /* The thread whose write transaction holds writer (its kj_self_id()),
   * or NULL: a begin from that thread would wait for itself, so it fails
   * with KJ_EDEADLK instead (txn.c). Only ever compared with the caller's
   * own id, so relaxed loads suffice. */
  _Atomic(const void *) writer_owner;
  /* Readers of committed tables vs. the commit that applies to them. */
  pthread_rwlock_t rows;
  /* errmsg and counters. */
  pthread_mutex_t mu;

  /* Set by a failed write/sync (refuse writes) or a failed apply (refuse
   * everything: memory no longer matches the journal). */
  atomic_int poisoned;
  atomic_int broken;
  atomic_int readers; /* open read-only transactions */
  /* Commits waiting for their sync outside the writer lock. */
  atomic_int committing;
  /* Write transactions queued for the writer lock: the journal's group
   * commit defers a sync briefly while there are any (journal.h). */
  atomic_int writers_queued;
  /* Group commit: the pending commits, oldest (lowest seq) first. Linked
   * under the writer lock; a committer unlinks its own once durable; after
   * a failed sync, every one not durable is undone, newest first, under
   * the writer and row locks before any of their committers returns.
   * Lock order: writer, rows, pend_mu (pend_mu alone for an unlink). */
  pthread_mutex_t pend_mu;
  kj_pending *pend_head, *pend_tail;
  /* Under mu: copies refreshed after every commit and sync, so statistics
   * never wait for the writer or the row lock (a caller may hold either). */
  uint64_t commits;
  uint64_t recovery_usec;
  uint64_t table_rows[KJ_NTABLES], table_bytes[KJ_NTABLES];
  /* Tables changed since the last kj_store_refresh_stats() (bit t), so a
   * commit copies the counters of the tables it wrote, not of all 255.
   * Set by kj_body_apply(); read and cleared under the writer lock (or
   * before the handle is shared). All ones at creation. */
  uint64_t stats_dirty[KJ_NTABLES / 64];
  kj_journal_stats jstats;
  kj_snap_info snap; /* newest snapshot */
  uint64_t snapshots_written, snapshot_usec, snapshot_failures;

  /* Writer side only. */
  uint64_t snapshot_threshold;
  uint64_t next_checkpoint; /* journal bytes that trigger the next one */
  uint8_t store_id[KJ_STORE_ID_BYTES];
  /* The store header as last written (FORMAT.md 3) and its record: the
   * last segment and the last durable seq, 0 and 0 for none. Rewritten
   * under the writer lock, at each roll-over and at a clean close. */
  uint8_t header[KJ_STORE_HEADER_BYTES];
  uint32_t header_version; /* of s->header: 1 until the first run */
  /* Rewrite the header as format version 2 (store.c; checkpoint.c calls
   * it after a store's first run is durable). */
  int (*upgrade_header)(kj_store *s, kj_errbuf *e);
  uint64_t rec_segno, rec_seq;
  char errmsg[512];
};

struct kj_txn {
  kj_store *s;
  unsigned flags;
  /* Write set: key = table id byte || row key; tombstones for deletes. */
  kj_map *ws;
  /* Encoded size of the write set's ops (kj_body_op_bytes()). */
  uint64_t ws_bytes;
  int scanning;
  /* Read-only: its read hold is counted in the beginning thread's table
   * (txn.c), 0 when that table was full and the lock was taken as such;
   * holds is that table (the transaction ends on the same thread). */
  int tracked;
  struct thread_holds *holds;
  /* Savepoint: the write-set state of every key changed since, keyed like
   * ws; value: 0 = absent, 1 = tombstone, 2 + value = a put. */
  kj_map *undo;
  uint64_t undo_ws_bytes;
};

/* KJ_OK, or KJ_EDEADLK (recorded as the handle's detail, naming the
 * call what) when the calling thread holds s's write transaction, a
 * read-only transaction on s or is inside a scan of s, so that taking the
 * writer lock would wait for itself (or reverse the lock order). Defined
 * in txn.c; callers that take the writer lock with txn == NULL (sync,
 * checkpoint, copy) check it first. */
int kj_writer_check(kj_store *s, const char *what);

/* The overlay layers of table t, newest first: the overlay, then the
 * frozen one (NULL when none). */
static inline void kj_store_maps(const kj_store *s, unsigned t,
                                 kj_map *out[2]) {
  out[0] = s->tables[t];
  out[1] = s->has_frozen ? s->frozen[t] : NULL;
}

/* The kj_apply of s (its overlay over its run), counting into
 * s->live_rows/bytes; below as kj_apply.below. */
void kj_store_applier(kj_store *s, kj_apply *a, const int64_t *below);

/* Record e's message as the handle's detail and return rc. */
int kj_store_fail(kj_store *s, int rc, const kj_errbuf *e);
/* The same with a fixed message. */
int kj_store_fail_msg(kj_store *s, int rc, const char *msg);

/* Refresh the statistics copies; the caller holds the writer lock (or is
 * the only user of s) so neither tables nor journal change meanwhile. */
void kj_store_refresh_stats(kj_store *s);

/* Microseconds since t0 (CLOCK_MONOTONIC), for the timing statistics. */
uint64_t kj_usec_since(const struct timespec *t0);

#endif
