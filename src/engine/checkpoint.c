/*
 * src/engine/checkpoint.c - the snapshot protocol: when a snapshot is written,
 * in which order the files change, which snapshot an open starts from, and
 * removing the snapshots a newer one replaces. It drives snapshot.c (the
 * file format) and journal.c (roll-over, dropping segments) for store.c
 * and txn.c, and calls nothing above it.
 *
 * A checkpoint at frame S (the newest) runs, under the writer lock:
 *   1. sync the journal and move it to a new segment B (first seq S+1);
 *      that sync also covers every group commit still waiting for its
 *      own (their changes are in the tables already), so the snapshot
 *      below never holds a change that is not durable;
 *   2. write snapshot-S: temporary file, sync, rename, sync directory
 *      (durable.c);
 *   3. remove the segments before B and the snapshots before S.
 * A crash before 2 completes leaves the old snapshot and every segment: the
 * new segment is just replayed after them. A crash after it leaves extra
 * old files that the next open ignores and removes. At no point is a state
 * reachable only through a file that could be missing.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checkpoint.h"
#include "durable.h"
#include "handle.h"
#include "overlay.h"
#include "run.h"

/* ---- finding runs and snapshots ----------------------------------------- */

/* The seqs of s's run files (or, snapshots, its format 1 snapshot files)
 * in dir, ascending. */
typedef struct seq_list {
  uint64_t *v;
  size_t n;
} seq_list;

static int list_files(kj_store *s, int runs, seq_list *l, kj_errbuf *e) {
  return kj_list_numbered(s->vfs, s->dir,
                          runs ? kj_run_parse_name : kj_snapshot_parse_name,
                          NULL, NULL, &l->v, &l->n, e);
}

static uint64_t newest_of(const seq_list *l, int *any) {
  uint64_t m = 0;
  *any = l->n > 0;
  for (size_t i = 0; i < l->n; i++)
    if (l->v[i] > m)
      m = l->v[i];
  return m;
}

static int load_row(void *arg, unsigned table, const uint8_t *key, size_t klen,
                    const uint8_t *val, size_t vlen) {
  kj_store *s = arg;
  /* Rows come in (table, key) order: a bulk load, sealed below. */
  return kj_map_append(s->tables[table], key, klen, val, vlen);
}

/* A format 1 snapshot: every row into the overlay (there is no run). */
static int load_snapshot(kj_store *s, uint64_t seq, kj_errbuf *e) {
  char name[64], path[KJ_PATH_MAX];
  kj_snapshot_name(seq, name, sizeof name);
  kj_path(path, s->dir, name);
  kj_snap_info info;
  int rc = kj_snapshot_read(s->vfs, path, s->keys->snapshot, s->store_id,
                            load_row, s, &info, e);
  for (unsigned t = KJ_TABLE_MIN; t <= KJ_TABLE_MAX; t++)
    if (s->tables[t])
      kj_map_seal(s->tables[t]);
  if (rc)
    return rc;
  if (info.seq != seq || info.base < 1)
    return kj_err(e, KJ_ECORRUPT,
                  "%s at offset 32: snapshot header does not match its name",
                  path);
  s->snap = info;
  return KJ_OK;
}

int kj_checkpoint_load(kj_store *s, kj_errbuf *e) {
  memset(&s->snap, 0, sizeof s->snap);
  s->snap.base = 1;
  seq_list runs, snaps;
  int rc = list_files(s, 1, &runs, e);
  if (rc)
    return rc;
  if ((rc = list_files(s, 0, &snaps, e))) {
    free(runs.v);
    return rc;
  }
  int any_run, any_snap;
  uint64_t rseq = newest_of(&runs, &any_run);
  uint64_t sseq = newest_of(&snaps, &any_snap);
  free(runs.v);
  free(snaps.v);
  /* The newest state must be sound: falling back to an older one would
   * silently roll the store back. A run at the same seq as a snapshot is
   * its upgrade. */
  if (any_snap && (!any_run || sseq > rseq))
    return load_snapshot(s, sseq, e);
  if (!any_run)
    return KJ_OK;
  char name[64], path[KJ_PATH_MAX];
  kj_run_name(rseq, name, sizeof name);
  kj_path(path, s->dir, name);
  kj_snap_info info;
  if ((rc = kj_run_open(s->vfs, path, s->keys->snapshot, s->store_id, rseq,
                        &s->run, &info, e)))
    return rc;
  if (info.base < 1) {
    kj_run_close(s->run, s->cache);
    s->run = NULL;
    return kj_err(e, KJ_ECORRUPT, "%s: base segment 0", path);
  }
  s->snap = info;
  return KJ_OK;
}

int kj_checkpoint_count(kj_store *s, kj_errbuf *e) {
  for (unsigned t = KJ_TABLE_MIN; t <= KJ_TABLE_MAX; t++) {
    if (!s->run) { /* no tombstones without a run */
      s->live_rows[t] = kj_map_count(s->tables[t]);
      s->live_bytes[t] = kj_map_bytes(s->tables[t]);
      continue;
    }
    int rc = kj_rows_count(s->tables[t], s->run, s->cache, t, &s->live_rows[t],
                           &s->live_bytes[t], e);
    if (rc)
      return rc;
  }
  memset(s->stats_dirty, 0xff, sizeof s->stats_dirty);
  return KJ_OK;
}

/* Remove the files of kind runs (else snapshots) that the state at
 * s->snap replaces: those below its seq, and a snapshot at its seq once a
 * run holds it. */
static int drop_kind(kj_store *s, int runs, int *removed, kj_errbuf *e) {
  seq_list l;
  int rc = list_files(s, runs, &l, e);
  for (size_t i = 0; !rc && i < l.n; i++) {
    if (l.v[i] > s->snap.seq || (l.v[i] == s->snap.seq && (runs || !s->run)))
      continue;
    char name[64], path[KJ_PATH_MAX];
    if (runs)
      kj_run_name(l.v[i], name, sizeof name);
    else
      kj_snapshot_name(l.v[i], name, sizeof name);
    kj_path(path, s->dir, name);
    errno = 0;
    if ((rc = s->vfs->unlink(s->vfs->ctx, path)))
      kj_err(e, rc, "remove %s: %s", path, kj_err_cause());
    *removed = 1;
  }
  free(l.v);
  return rc;
}

int kj_checkpoint_drop_old(kj_store *s, kj_errbuf *e) {
  int removed = 0;
  int rc = drop_kind(s, 1, &removed, e);
  if (!rc)
    rc = drop_kind(s, 0, &removed, e);
  errno = 0;
  if (!rc && removed && (rc = s->vfs->sync_dir(s->vfs->ctx, s->dir)))
    kj_err(e, rc, "sync directory %s: %s", s->dir, kj_err_cause());
  return rc;
}

/* ---- writing ---------------------------------------------------------- */

/* Rows merged between two looks at a cancel request (close). */
#define CANCEL_EVERY 4096u

int kj_checkpoint_write_run(kj_store *s, const char *dir, int with_overlay,
                            kj_snap_info *info, int *renamed, kj_errbuf *e) {
  kj_run_writer *w;
  *renamed = 0;
  int rc = kj_run_writer_begin(s->vfs, dir, s->keys->snapshot, s->store_id,
                               info, &w, e);
  if (rc)
    return rc;
  uint64_t n = 0;
  for (unsigned t = KJ_TABLE_MIN; !rc && t <= KJ_TABLE_MAX; t++) {
    /* The checkpoint thread (with_overlay 0) reads no overlay pointer: the
     * writer may be replacing entries there. */
    kj_map *maps[2] = {with_overlay ? s->tables[t] : NULL,
                       s->has_frozen ? s->frozen[t] : NULL};
    uint64_t rrows = 0;
    if (s->run)
      kj_run_table_count(s->run, t, &rrows, NULL);
    if (!rrows && (!maps[0] || !kj_map_count(maps[0])) &&
        (!maps[1] || !kj_map_count(maps[1])))
      continue;
    /* The old run is read around the cache (NULL): a checkpoint must not
     * evict what readers use. */
    kj_rows_cursor c;
    kj_rows_seek(&c, maps, 2, s->run, NULL, t, NULL, 0);
    const uint8_t *k, *v;
    size_t kl, vl;
    while (!rc && kj_rows_next(&c, &k, &kl, &v, &vl)) {
      rc = kj_run_writer_add(w, t, k, kl, v, vl, e);
      if (!rc && ++n % CANCEL_EVERY == 0 && atomic_load(&s->ckpt_cancel))
        rc = kj_err(e, KJ_EBUSY, "checkpoint: given up (store closing)");
    }
    if (!rc && c.err) {
      rc = c.err;
      *e = c.e;
    }
    kj_rows_close(&c);
  }
  if (rc) {
    kj_run_writer_abort(w);
    return rc;
  }
  return kj_run_writer_finish(w, info, renamed, e);
}

/* Open the run at info->seq, just written (the checkpoint thread reads its
 * index before it takes any lock). */
static int open_new_run(kj_store *s, const kj_snap_info *info, kj_run **nr,
                        kj_errbuf *e) {
  char name[64], path[KJ_PATH_MAX];
  kj_run_name(info->seq, name, sizeof name);
  kj_path(path, s->dir, name);
  kj_snap_info got;
  return kj_run_open(s->vfs, path, s->keys->snapshot, s->store_id, info->seq,
                     nr, &got, e);
}

/* nr, the run just written, becomes the store's, in place of the old run
 * and the frozen overlay it merged; with clear_overlay the overlay empties
 * too (the run holds all of it: a checkpoint that ran under the writer
 * lock). Writer lock held. */
static void install_run(kj_store *s, kj_run *nr, int clear_overlay) {
  pthread_rwlock_wrlock(&s->rows);
  kj_run *old = s->run;
  s->run = nr;
  for (unsigned t = KJ_TABLE_MIN; t <= KJ_TABLE_MAX; t++) {
    if (s->has_frozen) {
      kj_map_free(s->frozen[t]);
      s->frozen[t] = NULL;
    }
    if (!clear_overlay)
      continue;
    uint64_t r, b;
    kj_run_table_count(nr, t, &r, &b);
    /* The counts kept commit by commit must be what the run holds. */
    assert(r == s->live_rows[t] && b == s->live_bytes[t]);
    s->live_rows[t] = r;
    s->live_bytes[t] = b;
    kj_map_clear(s->tables[t]);
  }
  s->has_frozen = 0;
  memset(s->stats_dirty, 0xff, sizeof s->stats_dirty);
  pthread_rwlock_unlock(&s->rows);
  kj_run_close(old, s->cache);
}

/* Step 3 of FORMAT.md 6.1 once the run at info is installed, and its
 * statistics. Writer lock held. */
static int note_install(kj_store *s, const kj_snap_info *info,
                        const struct timespec *t0, kj_errbuf *e) {
  pthread_mutex_lock(&s->mu);
  s->snap = *info;
  s->snapshots_written++;
  s->snapshot_usec = kj_usec_since(t0);
  pthread_mutex_unlock(&s->mu);
  /* A format 1 header says so now (older builds then refuse the store
   * rather than miss its run). */
  return s->header_version < 2 ? s->upgrade_header(s, e) : KJ_OK;
}

/* Step 4: remove what the run at info replaces, the segments before its
 * base and the older runs and snapshots, and sync the directory. Needs no
 * lock (the checkpoint thread runs it after letting the writer lock go, so
 * that commits do not wait for the unlinks): nothing else writes or
 * removes those files, and the next checkpoint starts only after this one
 * has ended. The journal's own count of them is then updated under the
 * writer lock (kj_journal_forget_before). */
static int drop_replaced(kj_store *s, const kj_snap_info *info, kj_errbuf *e) {
  int rc = kj_journal_remove_before(s->journal, info->base, e);
  if (!rc)
    rc = kj_checkpoint_drop_old(s, e);
  return rc;
}

static int checkable(kj_store *s, kj_errbuf *e) {
  if (s->read_only)
    return kj_err(e, KJ_EREADONLY, "checkpoint on a read-only handle");
  if (atomic_load(&s->poisoned) || atomic_load(&s->broken))
    return kj_err(e, KJ_EPOISONED, "handle poisoned by an earlier failure");
  return KJ_OK;
}

/* The checkpoint protocol under the writer lock. fresh: an automatic
 * checkpoint in the commit that crossed the threshold, whose roll-over
 * goes to a small segment unless one was made ahead (kj_journal_roll). */
static int checkpoint_run(kj_store *s, int fresh, kj_errbuf *e) {
  if (!s->journal)
    return KJ_OK;
  int rc = checkable(s, e);
  if (rc)
    return rc;
  kj_snap_info info = {0};
  kj_journal_tail(s->journal, &info.seq, info.prev_tag);
  /* Nothing new since the last run; a format 1 snapshot with nothing new
   * still becomes a run (the upgrade). A frozen overlay left by a failed
   * background checkpoint is merged by this one. */
  if (info.seq == s->snap.seq && !s->has_frozen && (s->run || !info.seq))
    return KJ_OK;
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);

  /* 1. Frames after S go to a new segment. */
  rc = kj_journal_roll(s->journal, fresh, &info.base, e);
  /* 2. The run itself. Commits are held off (we hold the writer lock)
   * and readers only read, so the overlay over the frozen one and the run
   * is the state at S. */
  int renamed = 0;
  if (!rc)
    rc = kj_checkpoint_write_run(s, s->dir, 1, &info, &renamed, e);
  kj_run *nr = NULL;
  if (!rc && !(rc = open_new_run(s, &info, &nr, e)))
    install_run(s, nr, 1);
  if (!rc)
    rc = note_install(s, &info, &t0, e);
  if (!rc && !(rc = drop_replaced(s, &info, e)))
    kj_journal_forget_before(s->journal, info.base);
  if (kj_journal_poisoned(s->journal) || (rc && renamed))
    atomic_store(&s->poisoned, 1); /* the directory's state is unknown */
  kj_store_refresh_stats(s);
  return rc;
}

int kj_checkpoint_locked(kj_store *s, kj_errbuf *e) {
  return checkpoint_run(s, 0, e);
}

/* ---- in the background -------------------------------------------------- */

/* After a checkpoint: the next at another threshold's worth of journal
 * (after a failure too, so that it is retried later, not at once). */
static void next_due(kj_store *s) {
  kj_journal_stats js;
  kj_journal_get_stats(s->journal, &js);
  s->next_checkpoint = js.journal_bytes > UINT64_MAX - s->snapshot_threshold
                           ? UINT64_MAX
                           : js.journal_bytes + s->snapshot_threshold;
}

static void count_failure(kj_store *s, int rc, const kj_errbuf *e) {
  pthread_mutex_lock(&s->mu);
  s->snapshot_failures++;
  pthread_mutex_unlock(&s->mu);
  kj_store_fail(s, rc, e);
}

/* The checkpoint thread: merge the frozen overlay over the run into the
 * run at s->frozen_info and open it (read its index), with no lock held
 * (nothing it reads changes: the frozen maps are written by nobody, the
 * run is replaced only by this thread or, after joining it, by a
 * checkpoint under the writer lock); install it under the writer lock;
 * remove what it replaces with no lock held; and take the writer lock
 * again, briefly, for the journal's count and the statistics. So commits
 * wait only for the swap, not for any I/O. */
static void *checkpoint_main(void *arg) {
  kj_store *s = arg;
  kj_errbuf e;
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  kj_snap_info info = s->frozen_info;
  int renamed = 0;
  int rc = kj_checkpoint_write_run(s, s->dir, 0, &info, &renamed, &e);
  if (rc && atomic_load(&s->ckpt_cancel)) { /* closing: not a failure */
    atomic_store(&s->ckpt_done, 1);
    return NULL;
  }
  kj_run *nr = NULL;
  if (!rc)
    rc = open_new_run(s, &info, &nr, &e); /* its index, before the lock */
  pthread_mutex_lock(&s->writer);
  if (!rc && (atomic_load(&s->poisoned) || atomic_load(&s->broken))) {
    rc = kj_err(&e, KJ_EPOISONED, "handle poisoned by an earlier failure");
    kj_run_close(nr, NULL);
  }
  if (!rc)
    install_run(s, nr, 0);
  if (!rc)
    rc = note_install(s, &info, &t0, &e);
  int installed = !rc;
  if (installed)
    pthread_mutex_unlock(&s->writer);
  if (installed) {
    rc = drop_replaced(s, &info, &e);
    pthread_mutex_lock(&s->writer);
    if (!rc)
      kj_journal_forget_before(s->journal, info.base);
  }
  if (kj_journal_poisoned(s->journal) || (rc && renamed))
    atomic_store(&s->poisoned, 1); /* the directory's state is unknown */
  if (rc) {
    count_failure(s, rc, &e);
    next_due(s);
  } else {
    s->next_checkpoint = s->snapshot_threshold; /* bytes since this run */
  }
  kj_store_refresh_stats(s);
  pthread_mutex_unlock(&s->writer);
  atomic_store(&s->ckpt_done, 1);
  return NULL;
}

/* Join a started thread; ckpt_mu held. */
static void join_locked(kj_store *s) {
  if (!atomic_load(&s->ckpt_running))
    return;
  pthread_join(s->ckpt_thread, NULL);
  atomic_store(&s->ckpt_running, 0);
  atomic_store(&s->ckpt_done, 0);
}

void kj_checkpoint_join(kj_store *s) {
  pthread_mutex_lock(&s->ckpt_mu);
  join_locked(s);
  pthread_mutex_unlock(&s->ckpt_mu);
}

/* Freeze the overlay at the journal's newest frame S (after the roll that
 * starts segment B) and start the thread. Writer lock and ckpt_mu held. */
static int start_background(kj_store *s, kj_errbuf *e) {
  if (!s->has_frozen) {
    kj_snap_info info = {0};
    kj_journal_tail(s->journal, &info.seq, info.prev_tag);
    kj_map *fresh[KJ_NTABLES] = {0};
    for (unsigned t = KJ_TABLE_MIN; t <= KJ_TABLE_MAX; t++)
      if (!(fresh[t] = kj_map_new())) {
        for (unsigned u = KJ_TABLE_MIN; u < t; u++)
          kj_map_free(fresh[u]);
        return kj_err(e, KJ_ENOMEM, "checkpoint: out of memory");
      }
    /* 1. Frames after S go to a new segment (its sync also covers every
     * group commit still waiting for its own). */
    int rc = kj_journal_roll(s->journal, 1, &info.base, e);
    if (rc) {
      for (unsigned t = KJ_TABLE_MIN; t <= KJ_TABLE_MAX; t++)
        kj_map_free(fresh[t]);
      if (kj_journal_poisoned(s->journal))
        atomic_store(&s->poisoned, 1);
      return rc;
    }
    pthread_rwlock_wrlock(&s->rows);
    for (unsigned t = KJ_TABLE_MIN; t <= KJ_TABLE_MAX; t++) {
      s->frozen[t] = s->tables[t];
      s->tables[t] = fresh[t];
    }
    s->has_frozen = 1;
    s->frozen_info = info;
    pthread_rwlock_unlock(&s->rows);
  }
  atomic_store(&s->ckpt_done, 0);
  int err = pthread_create(&s->ckpt_thread, NULL, checkpoint_main, s);
  if (err)
    return kj_err(e, KJ_ENOMEM, "checkpoint: no thread (error %d)", err);
  atomic_store(&s->ckpt_running, 1);
  return KJ_OK;
}

int kj_checkpoint_due(kj_store *s) {
  if (!s->journal || s->read_only || s->snapshot_threshold == UINT64_MAX ||
      (atomic_load(&s->ckpt_running) && !atomic_load(&s->ckpt_done)))
    return 0;
  kj_journal_stats js;
  kj_journal_get_stats(s->journal, &js);
  return js.journal_bytes >= s->next_checkpoint;
}

void kj_checkpoint_ahead(kj_store *s) {
  /* While one runs, the next is at least a threshold away. */
  if (!s->journal || s->read_only || s->snapshot_threshold == UINT64_MAX ||
      atomic_load(&s->ckpt_running))
    return;
  kj_journal_stats js;
  kj_journal_get_stats(s->journal, &js);
  kj_journal_roll_expected(s->journal,
                           js.journal_bytes >= s->next_checkpoint
                               ? 0
                               : s->next_checkpoint - js.journal_bytes);
}

void kj_checkpoint_maybe(kj_store *s) {
  if (!kj_checkpoint_due(s))
    return;
  kj_errbuf e;
  int rc = checkable(s, &e);
  if (!rc && !s->ckpt_inline) {
    /* A thread that waits for the checkpoint thread holds ckpt_mu: it
     * checkpoints itself once that is done (kj_store_checkpoint). */
    if (pthread_mutex_trylock(&s->ckpt_mu))
      return;
    join_locked(s); /* done: at once */
    if ((rc = start_background(s, &e))) {
      count_failure(s, rc, &e);
      next_due(s); /* retried after another threshold */
    }
    pthread_mutex_unlock(&s->ckpt_mu);
    return;
  }
  if (!rc)
    rc = checkpoint_run(s, 1, &e);
  if (rc) {
    count_failure(s, rc, &e);
    next_due(s);
    return;
  }
  s->next_checkpoint = s->snapshot_threshold;
}
