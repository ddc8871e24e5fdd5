/*
 * src/engine/checkpoint.h - the snapshot protocol of a store handle
 * (internal): which snapshot an open starts from, when a snapshot is
 * written and in which order the files change (checkpoint.c).
 */
#ifndef KJ_CHECKPOINT_H
#define KJ_CHECKPOINT_H

#include "errbuf.h"
#include "handle.h"

/* Open the newest run (s->run), or load a format 1 snapshot newer than
 * any run into s->tables; s->snap describes it (zeroed when there is
 * none). Called by open before the journal replay. */
int kj_checkpoint_load(kj_store *s, kj_errbuf *e);
/* After the journal replay of an open: the rows and bytes each table
 * shows (s->live_rows/bytes), the run's counts corrected by the overlay. */
int kj_checkpoint_count(kj_store *s, kj_errbuf *e);
/* Write the run of s's rows described by info into dir: the overlay (when
 * with_overlay) over the frozen overlay (when there is one) over the run
 * (kj_run_writer_finish: fills info, *renamed). Writer lock held, or, for
 * the frozen overlay alone, the checkpoint thread. Gives up with KJ_EBUSY
 * once a close asked it to (s->ckpt_cancel). */
int kj_checkpoint_write_run(kj_store *s, const char *dir, int with_overlay,
                            kj_snap_info *info, int *renamed, kj_errbuf *e);
/* Wait for the background checkpoint thread, if one was started. Called
 * without the writer lock (the thread takes it to install its run). */
void kj_checkpoint_join(kj_store *s);
/* Remove runs and snapshots older than s->snap (after a checkpoint or an
 * open), and a format 1 snapshot a run of the same seq replaced. */
int kj_checkpoint_drop_old(kj_store *s, kj_errbuf *e);
/* The checkpoint protocol; the caller holds the writer lock. */
int kj_checkpoint_locked(kj_store *s, kj_errbuf *e);
/* After a commit: checkpoint if the journal crossed the threshold - in the
 * background (the overlay is frozen after a roll-over, and a thread merges
 * it into a new run while commits go on) unless the store asked for it
 * inline (kj_options.checkpoint_inline), and one at a time. A failure is
 * recorded (detail message, stats) and retried after another threshold's
 * worth of journal; it never fails the commit, which is durable already.
 * Caller holds the writer lock. */
void kj_checkpoint_maybe(kj_store *s);
/* After a commit's frame: tell the journal how far the next automatic
 * checkpoint's roll-over is, so that it makes that segment ahead
 * (kj_journal_roll_expected). Writer lock held. */
void kj_checkpoint_ahead(kj_store *s);
/* 1 when kj_checkpoint_maybe() would write a snapshot now (writer lock). */
int kj_checkpoint_due(kj_store *s);

#endif
