/*
 * keyjournal/store.h - opening a store, transactions, and table rows.
 *
 * A store is a directory holding an authenticated header file, encrypted
 * journal segments and a lock file (doc/FORMAT.md has the bytes), or, when
 * opened with no path, a memory-only store that never touches a disk.
 *
 * Data model: up to 255 tables, each addressed by a small integer id
 * (KJ_TABLE_MIN..KJ_TABLE_MAX). A table is an ordered map from key bytes to
 * value bytes; keys are ordered by memcmp, a shorter key first on a common
 * prefix. Every change happens inside a transaction; a call with txn == NULL
 * is a transaction of its own that commits before the call returns.
 *
 * Threads: a kj_store may be shared by threads. Writers are serialised: one
 * write transaction at a time per handle (kj_txn_begin() of a second one
 * waits until the first commits or rolls back). Reads outside a transaction
 * run concurrently with each other and with an open write transaction, and
 * see the last committed state. A read-only transaction
 * (KJ_TXN_READONLY) gives a stable view: it holds the handle's read lock, so
 * commits wait until it ends; keep it short. A kj_txn must be used by one
 * thread at a time, and ends (commit or rollback) on the thread that began
 * it. A thread that holds a transaction passes it to every call it makes on
 * that store meanwhile. Whatever would wait for the calling thread itself
 * fails at once with KJ_EDEADLK instead of hanging (like SQLite's "cannot
 * start a transaction within a transaction"), and changes nothing:
 *   - a write kj_txn_begin() on a thread that holds a transaction on that
 *     store (write or read-only), or from inside a scan callback on it;
 *   - a write with txn == NULL (kj_put, kj_delete, and the domain calls
 *     over them), kj_store_sync(), kj_store_checkpoint() or
 *     kj_store_copy(s, NULL, ...) in the same situations;
 *   - kj_txn_commit() of a write transaction with changes on a thread that
 *     still holds a read-only transaction or a scan on that store (the
 *     transaction is rolled back and freed, as for any failed commit; one
 *     without changes writes nothing, waits for nothing and returns
 *     KJ_OK).
 * Other threads are not affected: their begins and writes wait as before.
 * Reads never wait for the calling thread: a read-only kj_txn_begin(), a
 * kj_get() or a scan with txn == NULL on a thread that already holds a
 * read-only transaction or a scan there shares its read lock, and one on a
 * thread inside its own write transaction sees the committed state. A
 * scan callback may read the store but must not write to it. (The check
 * costs one compare when the thread holds nothing; a thread holding read
 * transactions or scans on more than 16 stores at once is checked for the
 * first 16 only.)
 *
 * Group commit (KJ_SYNC_FULL): a commit writes its journal frame and
 * applies its changes to the tables while it holds the write side, then
 * lets the next write transaction start and waits for its fdatasync
 * outside: commits of several threads share one fdatasync (doc/FORMAT.md
 * 4.4), so 8 threads commit many times faster than one. A thread alone
 * still gets one fdatasync per commit, at once. Consequently other threads
 * may read a commit (and build on it) before its fdatasync has returned,
 * i.e. before its own kj_txn_commit() returned. That is safe for
 * durability: a commit made after such a read comes later in the same
 * journal and is acknowledged only once a sync covered it, and with it
 * every earlier frame, and recovery keeps a prefix of the journal, never a
 * later commit without an earlier one. Only a KJ_OK from kj_txn_commit()
 * says that a commit is durable; a read does not (if the shared fdatasync
 * fails, the commit is taken back: see kj_txn_commit). A thread that holds
 * a write transaction must not wait for another thread's commit to return:
 * after a failed fdatasync that commit needs the write side to undo
 * itself. Commits whose overwritten rows exceed 1 MiB, and the commit that
 * triggers an automatic checkpoint, keep the write side until their own
 * fdatasync returned and are applied only then.
 *
 * Processes: one read-write handle at a time per store directory. A second
 * read-write open (from this process or another) waits with exponential
 * backoff up to busy_timeout_ms and then fails with KJ_EBUSY. Read-only
 * handles open at any time, beside a writer too, never wait for it and
 * never hold it up: a read-only handle reads the journal and the run's
 * index once, at its open, and then holds no lock and reads only the run
 * file it opened (kept open: a writer's checkpoint may remove it), so a
 * writer may open, commit and checkpoint beside it. What it reads is a
 * committed prefix, the state after one commit: every commit whose frame was
 * completely written when the open read it, as the writer's own readers see
 * commits before their sync returns (so under KJ_SYNC_NORMAL it may hold
 * commits a power failure takes back, as the writer's may). read_durable limits
 * it to the commits known durable. Each open sees at least what an earlier open
 * saw, as long as the machine does not lose power. To see later commits, open
 * again. Opened beside a writer, it retries for about half a second when a
 * file it reads changes under it (a checkpoint removed it) and then
 * reports what it found.
 *
 * Memory: the rows of a store live in its newest run file (doc/FORMAT.md
 * 6A), read on demand, and in an overlay of the changes since that run. A
 * handle holds, besides its fixed size (about 50 KiB) and a transaction's
 * write set:
 *   - the overlay: every row put or deleted since the last checkpoint, at
 *     about 60 bytes plus its key and value each (a delete of a row the
 *     run holds keeps its key); checkpoints bound it, since one starts once
 *     the journal holds snapshot_threshold bytes (default 64 MiB of frames,
 *     which is at most about that much of rows). While a background
 *     checkpoint runs, the overlay it is merging is kept too, frozen, and
 *     the next one starts only after it: so up to twice that, more if
 *     commits outrun the checkpoint thread;
 *   - the block cache: decoded blocks of the run, at most cache_bytes
 *     (default 8 MiB; a block being read is counted while it is in use,
 *     and a block larger than the cache is read privately and dropped);
 *   - the run's index, kept from the open: about 70 bytes plus the first
 *     key per 8 KiB block, and a Bloom filter of about 1.25 bytes per row
 *     (about 7 MB for a million rows of 512 bytes).
 * A checkpoint also holds, while it writes the new run, one block and
 * 8 bytes per row. A memory-only store (path NULL) has no run: all its rows
 * are the overlay.
 *
 * Disk: the newest run file, the journal segments written since it (up to
 * segment_bytes each: a new store's first is 64 KiB, each next one four
 * times the one before), the header and the lock file. A checkpoint writes
 * its run beside the old one and then removes the old run and segments.
 * While a read-write handle is open and its segments have reached 1 MiB
 * (or segment_bytes, if smaller), the next segment is also written ahead,
 * as zeros, once the live one is half full, in a thread of its own
 * (checkpoint_inline: in the committing thread): a file journal-*.kjl.tmp
 * of up to segment_bytes, which close removes. A roll-over to a new
 * segment then only writes its header, instead of all of it within a
 * commit. The segment a checkpoint rolls over to starts again at 64 KiB.
 *
 * Ownership: kj_store_open() allocates the handle, kj_store_close() frees it.
 * kj_txn_begin() allocates a transaction; kj_txn_commit() and
 * kj_txn_rollback() free it, whatever they return. kj_get() returns a value
 * in a buffer the caller frees with kj_free(). Options and all input buffers
 * are only read during the call and may be freed after it.
 */
#ifndef KEYJOURNAL_STORE_H
#define KEYJOURNAL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- limits ---------------------------------------------------------- */

/* Table ids a caller may use. */
#define KJ_TABLE_MIN 1u
#define KJ_TABLE_MAX 255u
/* Key length: 1..KJ_MAX_KEY bytes. */
#define KJ_MAX_KEY 4096u
/* Value length: 0..KJ_MAX_VALUE bytes. */
#define KJ_MAX_VALUE (4u * 1024u * 1024u)
/* Bytes one transaction may write (encoded keys, values and per-row
 * overhead of a few bytes). The put or delete that would cross it fails
 * with KJ_EINVAL and changes nothing; the transaction stays usable. */
#define KJ_MAX_TXN_BYTES (64u * 1024u * 1024u)
/* Length of a raw key. */
#define KJ_KEY_BYTES 32u

/* Runtime twins of the limits, for bindings. */
size_t kj_max_key(void);
size_t kj_max_value(void);

/* ---- opening --------------------------------------------------------- */

typedef struct kj_store kj_store;
typedef struct kj_txn kj_txn;

/* Durability of a commit; see doc/FORMAT.md and README "Durability". */
typedef enum kj_sync {
  /* A commit returns only after its frame is on stable storage
   * (fdatasync; concurrent commits share one: group commit, see
   * "Threads" above). After a crash the store holds every acknowledged
   * commit, and possibly some of those that were in flight (a prefix). */
  KJ_SYNC_FULL = 0,
  /* A commit returns once the frame reached the OS; the journal is synced
   * every sync_interval_bytes and at close. After power loss the store
   * holds a prefix of the commits; after a process crash, all of them. */
  KJ_SYNC_NORMAL = 1,
  /* Never sync. For tests and throw-away stores. */
  KJ_SYNC_OFF = 2,
} kj_sync;

/* What to do when the directory holds no store / holds one. */
typedef enum kj_open_mode {
  KJ_OPEN_CREATE = 0,     /* open an existing store or create a new one */
  KJ_OPEN_EXISTING = 1,   /* open an existing store; KJ_NOTFOUND if none */
  KJ_OPEN_CREATE_NEW = 2, /* create a new store; KJ_EEXIST if one exists */
} kj_open_mode;

/* Store clock: milliseconds since the Unix epoch. */
typedef int64_t (*kj_clock_fn)(void *ctx);

struct kj_vfs;

#define KJ_OPTIONS_VERSION 3

typedef struct kj_options {
  /* KJ_OPTIONS_VERSION. Set with KJ_OPTIONS_INIT; fields are appended. */
  int version;

  /* Exactly one of key / passphrase. key points to KJ_KEY_BYTES raw key
   * bytes. passphrase (NUL-terminated) is stretched with Argon2id; its
   * salt and cost are kept in the store header, so reopening needs only
   * the passphrase. Wrong key or passphrase: KJ_EKEY. */
  const uint8_t *key;
  const char *passphrase;
  /* Argon2id cost for a new passphrase store; 0 picks libsodium's
   * "interactive" limits (2 passes, 64 MiB). Ignored when opening an
   * existing store (its header says). Minimums: 1 pass, 8 KiB. */
  uint64_t pwhash_opslimit;
  uint64_t pwhash_memlimit;

  kj_sync sync;
  kj_open_mode mode;
  /* Open for reading only: no file is changed, a torn tail is reported but
   * not cut, writes fail with KJ_EREADONLY. */
  int read_only;

  /* File system; NULL means kj_vfs_posix(). */
  const struct kj_vfs *vfs;
  /* Clock; NULL means the wall clock. */
  kj_clock_fn clock;
  void *clock_ctx;

  /* How long kj_store_open() waits for a busy store; 0 fails at once. */
  uint32_t busy_timeout_ms;

  /* Space reserved per journal segment (bytes), at most. 0 means the
   * default, 8 MiB. Segment files are written full of zeros when they are
   * created, so a durable commit overwrites reserved space and costs one
   * fdatasync with no change of file size. A store's first segment is
   * 64 KiB (creating a store is cheap) and each next one four times the
   * one before, up to this. Minimum 4 KiB. */
  uint64_t segment_bytes;
  /* KJ_SYNC_NORMAL: sync after this many journal bytes since the last
   * sync. 0 means the default, 1 MiB. */
  uint64_t sync_interval_bytes;

  /* Checkpoint (write a run file) once the journal holds this many bytes
   * of frames since the last one, at the end of the commit that crosses
   * it; this also bounds the overlay (see "Memory" above). 0 means
   * the default, 64 MiB, which keeps the replay part of an open to about a
   * tenth of a second; UINT64_MAX turns automatic checkpoints off
   * (kj_store_checkpoint() still works). */
  uint64_t snapshot_threshold;

  /* Version 2. With read_only: read only the commits known to be durable
   * (doc/FORMAT.md rule 5.9), for a reader that must never see a state a
   * power failure could still take back (a backup). Without it, a reader
   * sees every commit whose frame was completely written (see "Processes"
   * above). */
  int read_durable;

  /* Version 3. Bytes of decoded run blocks kept in memory (the block
   * cache, see "Memory" above); 0 means the default, 8 MiB. */
  uint64_t cache_bytes;
  /* Version 3. Automatic checkpoints (snapshot_threshold) run in a
   * background thread by default: the commit that crosses the threshold
   * only rolls the journal over and freezes the overlay, and commits go on
   * while the thread merges it into a new run (the frozen overlay stays in
   * memory until then; one checkpoint at a time). Non-zero: in the commit
   * that crosses the threshold, which then waits for the whole run, as
   * kj_store_checkpoint() does; and the next journal segment (see "Disk"
   * above) is made in the commit after a roll-over, not in a thread of its
   * own. Deterministic: for tests. */
  int checkpoint_inline;
} kj_options;

/* Every other field zero: FULL sync, KJ_OPEN_CREATE, POSIX VFS, wall
 * clock, no busy wait, default segment and sync sizes. */
#define KJ_OPTIONS_INIT                                                        \
  { .version = KJ_OPTIONS_VERSION }

/* Open (or create) the store in directory path, or a memory-only store
 * when path is NULL (nothing touches a disk; a key or passphrase is still
 * required, so switching a caller between the two modes changes no other
 * option, but none is derived; the vfs, sync, mode and read_only options
 * are ignored; state is lost at close).
 *
 * On open the journal is replayed. A torn or unsynced tail (normal after a
 * crash) is cut off and reported in kj_stats.tail_bytes_cut; damage to data
 * that had been made durable fails with KJ_ECORRUPT naming file and offset.
 * So does a journal that ends before what the store header records (the
 * last segment and synced frame at the last roll-over or clean close,
 * doc/FORMAT.md 3.1): newest segments deleted or cut back after a close.
 *
 * Errors: KJ_EINVAL (NULL out or opts, no key, both key and passphrase,
 * bad option), KJ_NOTFOUND (KJ_OPEN_EXISTING, no store), KJ_EEXIST
 * (KJ_OPEN_CREATE_NEW, store exists), KJ_EKEY, KJ_ECORRUPT, KJ_EFORMAT,
 * KJ_EBUSY, KJ_EIO, KJ_ENOSPC, KJ_ENOMEM. On failure *out is NULL and, if
 * errmsg is not NULL, *errmsg receives a malloc'd detail message to free
 * with kj_free() (or NULL).
 *
 * Cost: reads every journal frame once; Argon2id for passphrase stores. */
int kj_store_open(const char *path, const kj_options *opts, kj_store **out,
                  char **errmsg);

/* Close the handle: rolls back nothing (an open transaction must have been
 * ended first, and every kj_txn_commit() must have returned; else KJ_EINVAL
 * and nothing is closed), syncs the journal
 * (unless KJ_SYNC_OFF) and then records its end in the store header,
 * releases the lock, wipes keys and frees s. Returns the status of the
 * final sync or of the header's rewrite; the handle is freed either way.
 * NULL is a no-op. */
int kj_store_close(kj_store *s);

/* Detail message of the last failed call on this handle ("" if none). The
 * pointer stays valid until the next call on the handle; with several
 * threads, use kj_store_errmsg_copy(). */
const char *kj_store_errmsg(kj_store *s);
/* Copy the detail message into buf (always NUL-terminated if len > 0). */
void kj_store_errmsg_copy(kj_store *s, char *buf, size_t len);

/* Free a buffer returned by keyjournal (kj_get values, errmsg). NULL ok. */
void kj_free(void *p);

/* ---- transactions ---------------------------------------------------- */

#define KJ_TXN_READONLY 0x1u

/* Start a transaction. A write transaction waits for any other thread's
 * write transaction on the handle to end; on a thread that holds a
 * transaction on s itself, or inside a scan callback on s, it fails at
 * once with KJ_EDEADLK ("Threads" above). Errors: KJ_EINVAL, KJ_EPOISONED
 * (write on a poisoned handle), KJ_EREADONLY (write txn on a read-only
 * handle), KJ_EDEADLK, KJ_ENOMEM. */
int kj_txn_begin(kj_store *s, unsigned flags, kj_txn **out);

/* Commit: one journal frame holding every change, applied to the tables and
 * synced per the store's kj_sync. Frees t. KJ_SYNC_FULL: KJ_OK only once an
 * fdatasync covering the frame has returned (acknowledged = durable).
 *
 * On failure nothing of t is left applied; a failed write or sync also
 * poisons the handle (KJ_EIO or KJ_ENOSPC is returned, later writes get
 * KJ_EPOISONED; reads still work). Under KJ_SYNC_FULL a failed shared
 * fdatasync fails every commit not yet covered by an earlier sync: each of
 * their committers gets that sync's KJ_EIO / KJ_ENOSPC (or KJ_EPOISONED if
 * the handle was poisoned otherwise first). Their changes were visible to
 * other threads meanwhile (group commit, "Threads" above); each failed
 * commit takes them out of the tables before it returns, so once every
 * committer has returned, the handle shows exactly the commits that
 * returned KJ_OK. On disk a failed commit may or may not have landed: a
 * reopen (the only way to write again) recovers what the journal holds, a
 * prefix of the commits that includes every one acknowledged with KJ_OK,
 * possibly followed by some of the failed ones, each whole. Committing a
 * transaction with no changes writes nothing. Cost: one write and (FULL)
 * one fdatasync, shared with concurrent commits. */
int kj_txn_commit(kj_txn *t);

/* Drop every change of t and free it. NULL is a no-op. */
void kj_txn_rollback(kj_txn *t);

/* Savepoint: remember the write transaction's changes so far. A later
 * kj_txn_rollback_savepoint() undoes every put and delete made since then
 * (the transaction stays open); kj_txn_release_savepoint() keeps them. One
 * savepoint at a time: a second kj_txn_savepoint() moves it. Errors:
 * KJ_EINVAL (NULL or read-only transaction). Cost: each write after it
 * also records the key's previous state in the transaction. */
int kj_txn_savepoint(kj_txn *t);
void kj_txn_rollback_savepoint(kj_txn *t);
void kj_txn_release_savepoint(kj_txn *t);

/* ---- rows ------------------------------------------------------------ */

/* In all row calls, txn may be NULL (the call is its own transaction) or a
 * transaction begun on s. Reads in a write transaction see its own
 * changes. Bad table id, NULL or empty key, key over KJ_MAX_KEY, value over
 * KJ_MAX_VALUE: KJ_EINVAL and nothing changes. */

/* Look up key. KJ_OK with *val (malloc'd, free with kj_free; NULL when the
 * value is empty) and *vlen, or KJ_NOTFOUND. With val and vlen both NULL,
 * only whether the key exists: KJ_OK or KJ_NOTFOUND, nothing copied (one
 * of them NULL: KJ_EINVAL). Cost: O(1) expected in a table
 * of 256 rows or more (a hash index keyed with a per-table secret, so keys
 * chosen by a peer cannot be made to collide), O(log n) below. */
int kj_get(kj_store *s, kj_txn *txn, unsigned table, const void *key,
           size_t klen, void **val, size_t *vlen);

/* Insert or replace. Cost: O(log n) (+ a commit when txn is NULL). */
int kj_put(kj_store *s, kj_txn *txn, unsigned table, const void *key,
           size_t klen, const void *val, size_t vlen);

/* Remove key; removing an absent key succeeds and changes nothing. */
int kj_delete(kj_store *s, kj_txn *txn, unsigned table, const void *key,
              size_t klen);

/* Scan callback: key and value are valid only during the call. Return 0 to
 * go on, anything else to stop the scan (kj_scan then returns that value).
 * It may read the store but must not write to it: a write through the same
 * transaction fails with KJ_EINVAL, a write with txn == NULL (or a write
 * kj_txn_begin) with KJ_EDEADLK ("Threads" above). */
typedef int (*kj_scan_fn)(void *arg, const void *key, size_t klen,
                          const void *val, size_t vlen);

/* Visit rows in ascending key order with start <= key < end. start NULL
 * (or start_len 0) means from the first key; end NULL means to the last.
 * Cost: O(log n + rows visited). */
int kj_scan_range(kj_store *s, kj_txn *txn, unsigned table, const void *start,
                  size_t start_len, const void *end, size_t end_len,
                  kj_scan_fn fn, void *arg);

/* Visit rows whose key starts with prefix (plen 0: every row), ascending. */
int kj_scan_prefix(kj_store *s, kj_txn *txn, unsigned table, const void *prefix,
                   size_t plen, kj_scan_fn fn, void *arg);

/* ---- maintenance and statistics -------------------------------------- */

/* Sync the journal now and write a sync marker, so that every commit so far
 * is durable and checkable. Errors: as for a commit. */
int kj_store_sync(kj_store *s);

/* Checkpoint now (doc/FORMAT.md 6.1): the journal moves to a new segment,
 * and a new run file holding every row (the previous run merged with the
 * overlay of changes since it) is written to a temporary file, synced,
 * renamed and the directory synced; only then are the older segments and
 * runs removed, and the overlay emptied. Opening then reads the run's index
 * and replays only what came after it. Commits wait while it runs; an
 * automatic checkpoint running in the background is waited for first (and
 * what it left, if it failed, is merged by this one). Nothing
 * to do (no commit since the last run, memory-only store): KJ_OK. Errors:
 * KJ_EREADONLY, KJ_EPOISONED, KJ_ECORRUPT (a block of the previous run
 * is damaged), KJ_EIO, KJ_ENOSPC, KJ_ENOMEM. A failure while writing the
 * run file changes nothing; one after its rename (directory sync, removal)
 * poisons the handle. Cost: reading, compressing and encrypting every row,
 * plus three syncs. */
int kj_store_checkpoint(kj_store *s);

/* Write a consistent copy of the committed state of s into the directory
 * dir, which must not exist yet (KJ_EEXIST otherwise): a store that opens
 * with the same key, holding one run file. txn is NULL, or a write
 * transaction of the calling thread on s (its own changes are not in the
 * copy). Errors: KJ_EINVAL (memory-only or read-only store), KJ_EEXIST,
 * KJ_EIO, KJ_ENOSPC, KJ_ENOMEM; a failed copy may leave dir partly
 * written, never s changed. Commits wait while it runs. Under
 * KJ_SYNC_FULL it first waits for the fdatasync of commits still waiting
 * for theirs (group commit), so the copy holds only durable commits; if
 * that sync fails, so does the copy (and s is poisoned, as for a commit).
 * Once it returns KJ_OK the copy is durable, its directory entry in the
 * parent of dir included (the parent is synced last). Cost: a run file
 * write. */
int kj_store_copy(kj_store *s, kj_txn *txn, const char *dir);

/* kj_store_copy_ex flags. */
/* Create dir's parent directory first when it is missing (mode 0700). An
 * existing parent must be a directory itself, not a symbolic link (KJ_EIO
 * otherwise), so a link cannot carry the copy elsewhere. */
#define KJ_COPY_PARENT 0x1u

/* kj_store_copy, and then, when extra is non-NULL, elen bytes of the
 * caller's written durably as dir/extra.bin, sealed with the store's key
 * like every other file (FORMAT.md 6.4; kj_store_read_extra reads
 * them back); flags is 0 or KJ_COPY_PARENT. Every file and directory goes
 * through the store's VFS. Errors: those of kj_store_copy, and KJ_EINVAL
 * for unknown flags, NULL extra with elen > 0, or elen over kj_max_value().
 * A failure after the copy leaves it behind without extra.bin. Cost:
 * kj_store_copy plus sealing and writing elen bytes. */
int kj_store_copy_ex(kj_store *s, kj_txn *txn, const char *dir,
                     const void *extra, size_t elen, unsigned flags);

/* The extra bytes that kj_store_copy_ex wrote into the store s is open on
 * (a copy, opened with the key of the store it was copied from; the
 * native backend's kj_device_snapshot_copy makes one: kj_backend_store()
 * gives its kj_store). KJ_OK with *extra (free with kj_free; NULL when
 * *elen is 0) and *elen; KJ_NOTFOUND when the store has no extra.bin;
 * KJ_ECORRUPT, with the file and offset in the message, when the file is
 * damaged, was written by another store or does not authenticate under
 * this key; KJ_EINVAL for NULL arguments or a memory-only store. Reads
 * one file; changes nothing. */
int kj_store_read_extra(kj_store *s, void **extra, size_t *elen);

/* The store's clock (kj_options.clock): milliseconds since the epoch. */
int64_t kj_store_clock(kj_store *s);

/* The directory the store was opened on, as given to kj_store_open(), or
 * NULL for a memory-only store (or s NULL). Owned by s; valid until
 * kj_store_close(). */
const char *kj_store_path(kj_store *s);

#define KJ_STATS_VERSION 3

typedef struct kj_stats {
  int version; /* KJ_STATS_VERSION; set by the caller (KJ_STATS_INIT) */
  uint32_t format_version;
  int memory_only;
  int read_only;
  int poisoned;
  uint64_t commits;       /* commits acknowledged by this handle */
  uint64_t last_seq;      /* sequence number of the newest frame */
  uint64_t segments;      /* journal segment files */
  uint64_t journal_bytes; /* bytes of frames since the last checkpoint */
  uint64_t disk_bytes;    /* bytes of every file of the store */
  uint64_t rows;          /* live rows, all tables */
  uint64_t logical_bytes; /* sum of live key and value lengths */
  /* Last recovery (kj_store_open). */
  uint64_t frames_replayed;
  uint64_t tail_bytes_cut; /* torn/unsynced tail found (cut unless RO) */
  uint64_t recovery_usec;
  /* Checkpoints: the newest run file (or, in a format 1 store not yet
   * upgraded, its snapshot; format_version says which). */
  uint64_t snapshot_seq;       /* last frame the newest run covers */
  uint64_t snapshot_rows;      /* rows in it */
  uint64_t snapshot_bytes;     /* its file size */
  uint64_t snapshot_raw_bytes; /* its serialised size before compression */
  uint64_t snapshots_written;  /* by this handle */
  uint64_t snapshot_usec;      /* time the last one took to write */
  /* Automatic checkpoints that failed. The commit that triggered one still
   * succeeded (it was durable first); a failure after the run file
   * was renamed, or while rolling the journal, poisons the handle, so the
   * next write returns KJ_EPOISONED and kj_store_errmsg() says why. */
  uint64_t snapshot_failures;
  /* Version 2. fdatasyncs of journal segments by this handle: per group of
   * KJ_SYNC_FULL commits (concurrent commits share one, so with several
   * writer threads this is lower than commits; one thread alone syncs
   * once per commit), NORMAL interval syncs, sync markers
   * (kj_store_sync, close) and segment roll-overs. Syncs of recovery at
   * open, of new files and of the directory are not counted. */
  uint64_t syncs;
  /* Version 3. Roll-overs that found their new segment already made:
   * once segments are 1 MiB or full size, the next one is written and
   * synced ahead, off the commit path (see "Disk" above). */
  uint64_t segments_ahead;
} kj_stats;

#define KJ_STATS_INIT                                                          \
  { .version = KJ_STATS_VERSION }

int kj_store_stats(kj_store *s, kj_stats *out);

/* Rows and key+value bytes of one table. */
int kj_table_count(kj_store *s, unsigned table, uint64_t *rows,
                   uint64_t *bytes);

#ifdef __cplusplus
}
#endif

#endif /* KEYJOURNAL_STORE_H */
