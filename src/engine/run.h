/*
 * src/engine/run.h - run files: the whole table state at one journal
 * sequence number as a sorted run on disk, read on demand a block at a time
 * through a block cache (internal). doc/FORMAT.md section 6A is the
 * specification: this module is the format, its writer and its reader
 * (checkpoint.c writes runs, overlay.c and txn.c read them).
 *
 * A run describes the same thing as a snapshot (kj_snap_info: S, B,
 * prev_tag, rows, raw_bytes, file_bytes). Its rows are strictly ascending
 * by (table, key), keys compared as map.c does (kj_key_cmp: memcmp, the
 * shorter first on a common prefix), packed into blocks of about
 * KJ_RUN_BLOCK_TARGET plaintext bytes, each compressed and sealed on its
 * own; an index of the blocks' first keys and a footer end the file. Opening
 * reads the header, the footer and the index only (the index stays in
 * memory); a lookup reads at most one block.
 *
 * Threads: a kj_run is immutable once open. Any number of threads may call
 * the read functions on one run (and one cache) at once; its file is read
 * by one of them at a time (vfs.h: never two calls at once on one file),
 * the decoding runs in parallel. A writer is one thread's.
 *
 * Keys: `key` is the snapshot subkey (kj_keys.snapshot, 32 bytes). It is
 * not copied: it must outlive the writer or the run.
 */
#ifndef KJ_RUN_H
#define KJ_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "bcache.h"
#include "errbuf.h"
#include "keyjournal/sys/vfs.h"
#include "snapshot.h"

/* The format version of run files (format version 1 is the rest of the
 * store, FORMAT.md sections 1-8). */
#define KJ_RUN_VERSION 2u
/* Block plaintext the writer packs rows up to (FORMAT.md 6A.4 says why). */
#define KJ_RUN_BLOCK_TARGET (8u * 1024u)
/* The largest block plaintext: one row of the largest key and value, its
 * offset and the row count. */
#define KJ_RUN_BLOCK_MAX (4u * 1024u * 1024u + 8192u)

typedef struct kj_run kj_run;
typedef struct kj_run_writer kj_run_writer;

/* File name of the run at seq, "run-<16 hex>.kjr". */
void kj_run_name(uint64_t seq, char *out, size_t len);
/* 1 and *seq if name is a run file name. */
int kj_run_parse_name(const char *name, uint64_t *seq);

/* ---- writing ------------------------------------------------------------
 *
 * Streaming: begin, add every row in order, finish. Memory: one block, the
 * growing index (a first key and 16 bytes per block) and 8 bytes per row
 * (its Bloom hash) until finish, which builds the filter (about 1.25 bytes
 * a row) and seals the index with it: about 12 MB per million rows, in
 * ordinary and secmem memory. The file is dir/run-S.kjr, written as
 * NAME.tmp, synced, renamed and the directory synced (durable.h), so a
 * background checkpoint can merge the rows of an overlay and an older run
 * into it one at a time.
 */

/* Start the run of info->seq (S), info->base (B) and info->prev_tag into
 * dir: creates NAME.tmp and writes the header. KJ_OK and *out, or the
 * VFS's status or KJ_ENOMEM (nothing left behind). */
int kj_run_writer_begin(const kj_vfs *vfs, const char *dir, const uint8_t *key,
                        const uint8_t *store_id, const kj_snap_info *info,
                        kj_run_writer **out, kj_errbuf *e);

/* Append one row. It must be above the previous row in (table, key) order,
 * with table in 1..255, key 1..KJ_MAX_KEY bytes and value 0..KJ_MAX_VALUE
 * bytes: else KJ_EINVAL, and the row is not taken (the writer goes on).
 * A failed write (VFS status) or KJ_ENOMEM is sticky: this and every later
 * call return it, and finish removes the file. */
int kj_run_writer_add(kj_run_writer *w, unsigned table, const void *key,
                      size_t klen, const void *val, size_t vlen, kj_errbuf *e);

/* Write the last block, the index and the footer, then sync, rename and
 * sync the directory. Fills info->rows, raw_bytes and file_bytes (and
 * copies seq, base, prev_tag). *renamed tells whether the final name was
 * reached (after which a failure leaves the directory's state unknown).
 * Frees w in every case; on a failure before the rename NAME.tmp is
 * removed. */
int kj_run_writer_finish(kj_run_writer *w, kj_snap_info *info, int *renamed,
                         kj_errbuf *e);

/* Give up: remove NAME.tmp and free w. NULL is a no-op. */
void kj_run_writer_abort(kj_run_writer *w);

/* ---- reading ------------------------------------------------------------ */

/* Open the run file at path: check its header, footer and index (every
 * block's place and first key) and keep the index in memory. seq: the S
 * the caller expects (from the file name), or 0 to accept any. Fills
 * *info. Damage anywhere in what it reads, a file cut or extended, a run of
 * another store or S: KJ_ECORRUPT naming the file and the offset; a newer
 * format: KJ_EFORMAT; else the VFS's status or KJ_ENOMEM. Damage inside a
 * block is found when the block is read (or by kj_run_verify). */
int kj_run_open(const kj_vfs *vfs, const char *path, const uint8_t *key,
                const uint8_t *store_id, uint64_t seq, kj_run **out,
                kj_snap_info *info, kj_errbuf *e);

/* Drop r's blocks from c (when not NULL: the cache r was read through) and
 * close r. No block of r may be pinned (iterators closed, refs released).
 * NULL r is a no-op. */
void kj_run_close(kj_run *r, kj_bcache *c);

/* The cache owner number of r's blocks. */
uint64_t kj_run_owner(const kj_run *r);
/* Number of blocks of r. */
uint64_t kj_run_blocks(const kj_run *r);
/* Where block no (< kj_run_blocks) lies in the file: its sealed bytes at
 * *off, *len of them, and its row count (for verify's report and the
 * damage tests). */
void kj_run_block_place(const kj_run *r, uint64_t no, uint64_t *off,
                        uint32_t *len, uint32_t *rows);

/* Rows and key + value bytes of one table in r (from its index); either
 * output may be NULL. */
void kj_run_table_count(const kj_run *r, unsigned table, uint64_t *rows,
                        uint64_t *bytes);
/* 0 when (table, key) is surely not in r, 1 when it may be: the run's Bloom
 * filter, in memory since the open (about 1% false positives, no I/O).
 * kj_run_find and what calls it test it first. */
int kj_run_may_have(const kj_run *r, unsigned table, const void *key,
                    size_t klen);

/* A value found in a run: val and vlen point into blk, a block pinned in
 * the cache until kj_run_ref_release(). */
typedef struct kj_run_ref {
  kj_bblock *blk;
  const uint8_t *val;
  size_t vlen;
} kj_run_ref;

/* Every read below takes c, the cache to read through (NULL or of capacity
 * 0: each read decodes its block privately), and returns KJ_OK, KJ_NOTFOUND,
 * KJ_EINVAL (table not in 1..255, key NULL or not 1..KJ_MAX_KEY bytes), or
 * the failure to read its block: KJ_ECORRUPT (naming the file, the block
 * and its offset), the VFS's status, KJ_ENOMEM. A damaged block fails every
 * read that needs it and no other. */

/* Look up key: KJ_OK with *ref pinning the value, or KJ_NOTFOUND (*ref
 * zeroed). No lock is held on return: release the ref when done. */
int kj_run_find(kj_run *r, kj_bcache *c, unsigned table, const void *key,
                size_t klen, kj_run_ref *ref, kj_errbuf *e);
/* Release ref (a zeroed one is a no-op) and zero it. */
void kj_run_ref_release(kj_bcache *c, kj_run_ref *ref);

/* Look up key and copy its value out: KJ_OK with *vlen its length, the
 * bytes copied to buf only when *vlen <= cap (else nothing is copied: call
 * again with a buffer of *vlen bytes). KJ_NOTFOUND with *vlen 0. */
int kj_run_get(kj_run *r, kj_bcache *c, unsigned table, const void *key,
               size_t klen, void *buf, size_t cap, size_t *vlen, kj_errbuf *e);

/* Whether key is in r: KJ_OK or KJ_NOTFOUND, nothing copied. */
int kj_run_has(kj_run *r, kj_bcache *c, unsigned table, const void *key,
               size_t klen, kj_errbuf *e);

/* An ordered iterator over r from a lower bound to the end, a block at a
 * time through the cache, which pins the block it is in. Fields are the
 * iterator's own; a caller declares one and passes it to the calls. */
typedef struct kj_run_iter {
  kj_run *run;
  kj_bcache *cache;
  kj_bblock *blk;      /* pinned block `block`, or NULL */
  uint64_t block;      /* the block the next row is in (== blocks: end) */
  uint32_t row, nrows; /* next row in it, its row count */
  int err;             /* a sticky failure */
} kj_run_iter;

/* Position it at the first row at or above (table, key) (key NULL or klen
 * 0: the start of table; table 0: the first row of r). KJ_OK, or the
 * failure to read the block (then also returned by every next). Close it
 * afterwards in every case, and before seeking it again (a seek starts
 * from a zeroed iterator and would leave its pinned block pinned). */
int kj_run_iter_seek(kj_run_iter *it, kj_run *r, kj_bcache *c, unsigned table,
                     const void *key, size_t klen, kj_errbuf *e);
/* The next row: KJ_OK with its table, key and value, which stay valid until
 * the next call or the close; KJ_NOTFOUND at the end; or a failure. */
int kj_run_iter_next(kj_run_iter *it, unsigned *table, const uint8_t **key,
                     size_t *klen, const uint8_t **val, size_t *vlen,
                     kj_errbuf *e);
/* Release the block it pins. Safe on a zeroed iterator and twice. */
void kj_run_iter_close(kj_run_iter *it);

/* Decode every block in order, bypassing any cache, and check all of r:
 * each block's authentication, compression and rows, row order across
 * blocks, the row count and raw bytes the footer claims. Hands every row
 * to fn (when not NULL; a non-zero return stops and is returned) in
 * ascending (table, key) order. KJ_OK, KJ_ECORRUPT naming the file, block
 * and offset, the VFS's status or KJ_ENOMEM. */
int kj_run_verify(kj_run *r, kj_snap_row_fn fn, void *arg, kj_errbuf *e);

#endif
