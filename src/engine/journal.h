/*
 * src/engine/journal.h - the write-ahead journal: segments of encrypted frames
 * (internal). doc/FORMAT.md sections 4 and 5 are the specification.
 *
 * The journal knows nothing of tables: it appends opaque commit bodies as
 * frames, and on open hands each replayed body to a callback. The store
 * calls it under its writer lock, except for the calls marked
 * "thread-safe", which may run at any time between open and close, from
 * any number of threads, alongside the writer-lock holder's calls.
 */
#ifndef KJ_JOURNAL_H
#define KJ_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "errbuf.h"
#include "keyjournal/store.h"
#include "keyjournal/sys/vfs.h"

#define KJ_FRAME_HEADER 64u
#define KJ_SEGMENT_HEADER 64u
/* Largest ciphertext (body + tag) of one frame. */
#define KJ_MAX_FRAME_BODY ((64u << 20) + (1u << 20))
#define KJ_STORE_ID_BYTES 16u
#define KJ_STORE_HEADER_BYTES 128u

/* Called, under the writer lock, once (segno, seq) is true on disk: segment
 * segno exists durably and every frame up to seq is synced. The store
 * keeps it in its header (FORMAT.md 3). A failure is the status of the
 * roll-over or close that called it. */
typedef int (*kj_record_fn)(void *arg, uint64_t segno, uint64_t seq,
                            kj_errbuf *e);

typedef struct kj_journal kj_journal;

typedef struct kj_journal_cfg {
  const kj_vfs *vfs;
  const char *dir;
  const uint8_t *store_id; /* KJ_STORE_ID_BYTES */
  const uint8_t *key;      /* journal subkey, 32 bytes; not copied */
  kj_sync sync;
  uint64_t segment_bytes;
  uint64_t sync_interval;
  int read_only;
  /* Read-only, kj_options.read_durable (FORMAT.md rule 5.9): replay only
   * the frames a completed sync is known to cover - up to the highest of
   * the header's record and the durable_seq claims of the frames on disk -
   * and leave the rest as an unsynced tail. */
  int durable_only;
  /* Where replay starts: 1, 0 and zeros for a store without snapshot; else
   * the snapshot's base segment, its last seq and that frame's tag. */
  uint64_t base_segno;
  uint64_t base_seq;
  const uint8_t *base_tag; /* KJ_TAG_BYTES, or NULL for zeros */
  /* The store header's record (FORMAT.md 3, rule 5.8): recovery refuses a
   * journal that ends before it. rec_segno 0: no record. */
  uint64_t rec_segno, rec_seq;
  /* Told the new record after each roll-over and at a clean close (not
   * under KJ_SYNC_OFF, which promises nothing). NULL: not told. */
  kj_record_fn record;
  void *record_arg;
  /* How many writers are on their way to a frame (queued for the store's
   * writer lock), or NULL: a grouped wait (kj_journal_wait_grouped) that
   * would lead a sync first gives them up to KJ_GROUP_DEFER_USEC to write
   * their frames, so that one sync covers them too. */
  int (*joining)(void *arg);
  void *joining_arg;
  /* Prepare the next segment in the committing thread rather than in a
   * thread of its own (journal.c, "segments made ahead"). */
  int ahead_inline;
} kj_journal_cfg;

/* The longest a would-be leader of a grouped wait defers its sync for
 * writers on their way: about a third of an fdatasync on a fast disk, so
 * that a lone waiter never pays much for a queue that does not come. */
#define KJ_GROUP_DEFER_USEC 60

typedef struct kj_journal_stats {
  uint64_t last_seq;
  uint64_t segments;
  uint64_t journal_bytes;
  uint64_t disk_bytes;
  uint64_t frames_replayed;
  uint64_t tail_bytes_cut;
  uint64_t segments_ahead; /* roll-overs that found their segment made */
} kj_journal_stats;

/* Replay callback: apply one commit body. Return KJ_OK or a status (with
 * e filled) that aborts the open. */
typedef int (*kj_replay_fn)(void *arg, const uint8_t *body, size_t len,
                            kj_errbuf *e);

/* Write the first segment of a new store, durably: number cfg->base_segno
 * (0 means 1), first seq cfg->base_seq + 1. Fails with KJ_ECORRUPT when the
 * directory already holds journal data (segments without a header). */
int kj_journal_create(const kj_journal_cfg *cfg, kj_errbuf *e);

/* Recover (FORMAT.md section 5), replaying every commit through fn. */
int kj_journal_open(const kj_journal_cfg *cfg, kj_replay_fn fn, void *arg,
                    kj_journal **out, kj_errbuf *e);

/* Append one commit frame holding body; *seq receives its sequence
 * number. KJ_SYNC_NORMAL syncs here once sync_interval bytes are unsynced;
 * KJ_SYNC_FULL does not sync here: the commit is durable once
 * kj_journal_wait_durable(j, *seq) returned KJ_OK. Errors: KJ_EINVAL (too
 * large), KJ_EPOISONED, KJ_EIO, KJ_ENOSPC, KJ_ENOMEM. A failed write or
 * sync poisons the journal. */
int kj_journal_append(kj_journal *j, const uint8_t *body, size_t len,
                      uint64_t *seq, kj_errbuf *e);

/* Thread-safe. KJ_SYNC_FULL: return once frame seq is durable, sharing
 * one fdatasync with every other frame written before it started (group
 * commit, FORMAT.md 4.4); other modes return KJ_OK at once. Errors: the
 * status of the failed shared sync (KJ_EIO, KJ_ENOSPC; the journal is then
 * poisoned), or KJ_EPOISONED when the journal was poisoned before seq was
 * durable. Once one caller got a failure, durable_seq never moves again:
 * each frame then either is durable or fails for every waiter. */
int kj_journal_wait_durable(kj_journal *j, uint64_t seq, kj_errbuf *e);
/* The same, for a caller that holds no lock a writer needs (the second
 * half of a group commit): before leading a sync it waits, at most
 * KJ_GROUP_DEFER_USEC, while cfg.joining reports writers on their way
 * and no sync has started. What becomes durable, and every error, are
 * those of kj_journal_wait_durable; only the grouping differs. */
int kj_journal_wait_grouped(kj_journal *j, uint64_t seq, kj_errbuf *e);

/* KJ_SYNC_FULL: make every frame written so far durable (joining or
 * leading a group sync); other modes and read-only: KJ_OK. Errors as
 * kj_journal_wait_durable(). */
int kj_journal_flush(kj_journal *j, kj_errbuf *e);

/* Thread-safe: highest seq covered by a completed sync. */
uint64_t kj_journal_durable_seq(kj_journal *j);

/* Thread-safe: fdatasyncs of live journal segments by this handle (FULL
 * commits sharing one count once; interval syncs, sync markers and
 * roll-overs count too; syncs at open and of new files do not). */
uint64_t kj_journal_syncs(kj_journal *j);

/* The handle's sync mode (fixed at open; thread-safe). */
kj_sync kj_journal_mode(const kj_journal *j);

/* If anything was written since the last marker: sync, write a sync
 * marker, sync again (FORMAT.md 4.3). */
int kj_journal_sync(kj_journal *j, kj_errbuf *e);

/* Close: a sync marker first unless the mode is KJ_SYNC_OFF, the journal
 * is poisoned or read-only. Frees j; returns the marker's status. */
int kj_journal_close(kj_journal *j, kj_errbuf *e);

/* Sequence number and tag of the newest frame (0 and zeros: none). */
void kj_journal_tail(const kj_journal *j, uint64_t *seq,
                     uint8_t tag[KJ_TAG_BYTES]);

/* The caller expects to call kj_journal_roll() after about in_bytes more
 * bytes of frames: once that is within half the live segment, the next
 * segment is made ahead now (as when the live segment is half full), so
 * that the roll-over does not create it. Writer side. */
void kj_journal_roll_expected(kj_journal *j, uint64_t in_bytes);

/* Checkpoint step 1: sync and move to a new segment, the one made ahead
 * if there is one, else of the size after the live one's or, with fresh
 * (a checkpoint inside a commit), of a first segment's, so that the
 * commit writes little; *base receives its number. Frames from now on go
 * there. Errors as kj_journal_append(). */
int kj_journal_roll(kj_journal *j, int fresh, uint64_t *base, kj_errbuf *e);

/* A checkpoint's last step, once a run covering every frame before segment
 * base is durable: remove the older segments and sync the directory. A
 * failed directory sync poisons the journal. It changes nothing else, so
 * it may run without the writer lock, beside commits (never beside a
 * roll-over to a segment below base, nor beside another call of it). */
int kj_journal_remove_before(kj_journal *j, uint64_t base, kj_errbuf *e);

/* After kj_journal_remove_before() succeeded: the segments below base are
 * gone from the statistics and from what the journal counts. Writer lock
 * held. */
void kj_journal_forget_before(kj_journal *j, uint64_t base);

/* Thread-safe. */
int kj_journal_poisoned(kj_journal *j);
void kj_journal_get_stats(const kj_journal *j, kj_journal_stats *out);

#endif
