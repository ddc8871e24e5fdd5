/*
 * src/engine/overlay.h - the committed rows of one table as readers see them:
 * an overlay (a kj_map of every change since the run, tombstones included)
 * merged over a run file (internal). Ordered cursors for scans and
 * checkpoints, and the count of what the two show together.
 *
 * An overlay entry hides the run's row of its key; a tombstone entry hides
 * it and shows nothing. The caller keeps both layers from changing while it
 * uses them (the store's row lock or writer lock).
 */
#ifndef KJ_OVERLAY_H
#define KJ_OVERLAY_H

#include <stddef.h>
#include <stdint.h>

#include "bcache.h"
#include "errbuf.h"
#include "map.h"
#include "run.h"

/* Overlay layers a cursor merges at most (the overlay and a frozen one a
 * background checkpoint is writing into a run). */
#define KJ_ROWS_MAPS 2

/* An ordered cursor over one table. Fields are its own. */
typedef struct kj_rows_cursor {
  kj_iter oi[KJ_ROWS_MAPS];
  const kj_entry *o[KJ_ROWS_MAPS]; /* each layer's head, newest first */
  int nmaps;
  kj_run_iter ri;
  int rhave; /* the run head below is valid and of this table */
  int rnext; /* the run head was handed out: advance before the next */
  const uint8_t *rk, *rv;
  size_t rkl, rvl;
  unsigned table;
  int err; /* a failure to read the run (e says why); ends the rows */
  kj_errbuf e;
} kj_rows_cursor;

/* Position c at the first row of table at or above start (slen 0: the
 * table's first). maps: nmaps (1..KJ_ROWS_MAPS) overlay layers, newest
 * first, NULL ones skipped; an entry of a newer layer hides the rows of
 * its key below it. run NULL: the maps alone. cache: what the run is read
 * through (NULL: each block decoded privately, as a checkpoint reads). */
void kj_rows_seek(kj_rows_cursor *c, kj_map *const *maps, int nmaps,
                  kj_run *run, kj_bcache *cache, unsigned table,
                  const void *start, size_t slen);
/* The next row shown: 1 with its key and value, valid until the next call
 * or the close; 0 at the end, or on a failure (c->err, c->e). */
int kj_rows_next(kj_rows_cursor *c, const uint8_t **k, size_t *kl,
                 const uint8_t **v, size_t *vl);
/* Release the block the cursor pins. Safe twice. */
void kj_rows_close(kj_rows_cursor *c);

/* The rows and key + value bytes that overlay over run shows for table:
 * the run's counts, corrected by every overlay entry (one run lookup for
 * each entry whose key the run's Bloom filter may hold). Drops tombstones
 * over keys the run does not hold. KJ_OK, or the failure to read the run. */
int kj_rows_count(kj_map *overlay, kj_run *run, kj_bcache *cache,
                  unsigned table, uint64_t *rows, uint64_t *bytes,
                  kj_errbuf *e);

#endif
