/*
 * src/engine/checkpoint.h - the snapshot protocol of a store handle
 * (internal): which snapshot an open starts from, when a snapshot is
 * written and in which order the files change (checkpoint.c).
 */
#ifndef KJ_CHECKPOINT_H
#define KJ_CHECKPOINT_H

#include "errbuf.h"
#include "handle.h"

/* Load the newest snapshot into s->tables (s->snap describes it; zeroed
 * when there is none). Called by open before the journal replay. */
int kj_checkpoint_load(kj_store *s, kj_errbuf *e);
/* Remove snapshots older than s->snap (after a checkpoint or an open). */
int kj_checkpoint_drop_old(kj_store *s, kj_errbuf *e);
/* The checkpoint protocol; the caller holds the writer lock. */
int kj_checkpoint_locked(kj_store *s, kj_errbuf *e);
/* After a commit: checkpoint if the journal crossed the threshold. A
 * failure is recorded (detail message, stats) but does not fail the
 * commit, which is durable already. Caller holds the writer lock. */
void kj_checkpoint_maybe(kj_store *s);
/* 1 when kj_checkpoint_maybe() would write a snapshot now (writer lock). */
int kj_checkpoint_due(kj_store *s);

#endif
