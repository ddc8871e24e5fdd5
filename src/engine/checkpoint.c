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
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checkpoint.h"
#include "durable.h"
#include "handle.h"

/* ---- finding snapshots ------------------------------------------------ */

/* The snapshot seqs of s's directory, ascending. */
typedef struct snap_list {
  uint64_t *v;
  size_t n;
} snap_list;

static int list_snapshots(kj_store *s, snap_list *l, kj_errbuf *e) {
  return kj_list_numbered(s->vfs, s->dir, kj_snapshot_parse_name, NULL, NULL,
                          &l->v, &l->n, e);
}

static int load_row(void *arg, unsigned table, const uint8_t *key, size_t klen,
                    const uint8_t *val, size_t vlen) {
  kj_store *s = arg;
  /* Rows come in (table, key) order: a bulk load, sealed below. */
  return kj_map_append(s->tables[table], key, klen, val, vlen);
}

int kj_checkpoint_load(kj_store *s, kj_errbuf *e) {
  memset(&s->snap, 0, sizeof s->snap);
  s->snap.base = 1;
  snap_list l;
  int rc = list_snapshots(s, &l, e);
  if (rc)
    return rc;
  uint64_t newest = 0;
  for (size_t i = 0; i < l.n; i++)
    if (l.v[i] > newest)
      newest = l.v[i];
  size_t n = l.n;
  free(l.v);
  if (!n)
    return KJ_OK;
  /* The newest snapshot must be sound: falling back to an older one would
   * silently roll the store back. */
  char name[64], path[KJ_PATH_MAX];
  kj_snapshot_name(newest, name, sizeof name);
  kj_path(path, s->dir, name);
  kj_snap_info info;
  rc = kj_snapshot_read(s->vfs, path, s->keys->snapshot, s->store_id, load_row,
                        s, &info, e);
  for (unsigned t = KJ_TABLE_MIN; t <= KJ_TABLE_MAX; t++)
    if (s->tables[t])
      kj_map_seal(s->tables[t]);
  if (rc)
    return rc;
  if (info.seq != newest || info.base < 1)
    return kj_err(e, KJ_ECORRUPT,
                  "%s at offset 32: snapshot header does not match its name",
                  path);
  s->snap = info;
  return KJ_OK;
}

int kj_checkpoint_drop_old(kj_store *s, kj_errbuf *e) {
  snap_list l;
  int rc = list_snapshots(s, &l, e), removed = 0;
  for (size_t i = 0; !rc && i < l.n; i++) {
    if (l.v[i] >= s->snap.seq)
      continue;
    char name[64], path[KJ_PATH_MAX];
    kj_snapshot_name(l.v[i], name, sizeof name);
    kj_path(path, s->dir, name);
    errno = 0;
    if ((rc = s->vfs->unlink(s->vfs->ctx, path)))
      kj_err(e, rc, "remove %s: %s", path, kj_err_cause());
    removed = 1;
  }
  free(l.v);
  errno = 0;
  if (!rc && removed && (rc = s->vfs->sync_dir(s->vfs->ctx, s->dir)))
    kj_err(e, rc, "sync directory %s: %s", s->dir, kj_err_cause());
  return rc;
}

/* ---- writing ---------------------------------------------------------- */

int kj_checkpoint_locked(kj_store *s, kj_errbuf *e) {
  if (!s->journal)
    return KJ_OK;
  if (s->read_only)
    return kj_err(e, KJ_EREADONLY, "checkpoint on a read-only handle");
  if (atomic_load(&s->poisoned) || atomic_load(&s->broken))
    return kj_err(e, KJ_EPOISONED, "handle poisoned by an earlier failure");
  kj_snap_info info = {0};
  kj_journal_tail(s->journal, &info.seq, info.prev_tag);
  if (info.seq == s->snap.seq)
    return KJ_OK; /* nothing new since the last snapshot */
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);

  /* 1. Frames after S go to a new segment. */
  int rc = kj_journal_roll(s->journal, &info.base, e);
  /* 2. The snapshot itself. Commits are held off (we hold the writer lock)
   * and readers only read, so the tables are the state at S. */
  int renamed = 0;
  if (!rc)
    rc = kj_snapshot_write(s->vfs, s->dir, s->keys->snapshot, s->store_id,
                           s->tables, &info, &renamed, e);
  if (!rc) {
    pthread_mutex_lock(&s->mu);
    s->snap = info;
    s->snapshots_written++;
    s->snapshot_usec = kj_usec_since(&t0);
    pthread_mutex_unlock(&s->mu);
    /* 3. What the snapshot replaces. */
    rc = kj_journal_drop_before(s->journal, info.base, e);
    if (!rc)
      rc = kj_checkpoint_drop_old(s, e);
  }
  if (kj_journal_poisoned(s->journal) || (rc && renamed))
    atomic_store(&s->poisoned, 1); /* the directory's state is unknown */
  kj_store_refresh_stats(s);
  return rc;
}

int kj_checkpoint_due(kj_store *s) {
  if (!s->journal || s->read_only || s->snapshot_threshold == UINT64_MAX)
    return 0;
  kj_journal_stats js;
  kj_journal_get_stats(s->journal, &js);
  return js.journal_bytes >= s->next_checkpoint;
}

void kj_checkpoint_maybe(kj_store *s) {
  if (!kj_checkpoint_due(s))
    return;
  kj_journal_stats js;
  kj_errbuf e;
  int rc = kj_checkpoint_locked(s, &e);
  kj_journal_get_stats(s->journal, &js);
  if (rc) {
    /* Retry after another threshold's worth of journal, not at once. */
    s->next_checkpoint = js.journal_bytes > UINT64_MAX - s->snapshot_threshold
                             ? UINT64_MAX
                             : js.journal_bytes + s->snapshot_threshold;
    pthread_mutex_lock(&s->mu);
    s->snapshot_failures++;
    pthread_mutex_unlock(&s->mu);
    kj_store_fail(s, rc, &e);
    return;
  }
  s->next_checkpoint = s->snapshot_threshold;
}
