/*
 * tests/testutil.h - helpers shared by the keyjournal test programs.
 *
 * Temp store directories, a fixed test key and option filler, a counting /
 * failure-injecting VFS wrapped around kj_vfs_posix(), table dumps that can
 * be compared as strings, a directory copier (to snapshot a store as if the
 * process had crashed) and a deterministic PRNG.
 *
 * Nothing here prints TAP; the test programs do the asserting.
 */
#ifndef KJ_TESTS_TESTUTIL_H
#define KJ_TESTS_TESTUTIL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "keyjournal/store.h"
#include "keyjournal/sys/vfs.h"

/* ---- temp directories and files ---------------------------------------- */

/* Create a fresh empty directory under $KJ_TEST_TMPDIR, else $TMPDIR, else
 * /tmp. Returns a malloc'd
 * path (free()), or NULL on failure. */
char *tu_mkdtemp(void);
/* Remove path and everything below it (nftw, no symlink following).
 * Returns 0 on success; a missing path counts as success. NULL is a no-op. */
int tu_rmrf(const char *path);
/* malloc'd "dir/name". */
char *tu_path(const char *dir, const char *name);
/* Copy every regular file of src into dst (created if absent; existing
 * files of the same name are replaced). Not recursive. Returns 0 or -1. */
int tu_copy_dir(const char *src, const char *dst);
/* 1 if both directories hold the same set of regular files with identical
 * contents, 0 if not, -1 on an error. */
int tu_dirs_equal(const char *a, const char *b);
/* Number of entries in dir other than "." and "..", or -1. */
int tu_count_entries(const char *dir);
/* Write (create/replace) a file with the given bytes. Returns 0 or -1. */
int tu_write_file(const char *path, const void *data, size_t len);
/* Size of a file, or -1. */
long long tu_file_size(const char *path);
/* Call fn(arg, dir, name) for each regular file of dir; returns -1 on an
 * error opening dir, else the number of files visited. */
int tu_for_each_file(const char *dir,
                     void (*fn)(void *arg, const char *dir, const char *name),
                     void *arg);
/* Milliseconds of CLOCK_MONOTONIC. */
int64_t tu_now_ms(void);
/* Sleep for ms milliseconds. */
void tu_sleep_ms(unsigned ms);

/* ---- keys and options -----------------------------------------------------
 */

/* The fixed raw test key, and a different one for wrong-key tests. */
extern const uint8_t tu_key[KJ_KEY_BYTES];
extern const uint8_t tu_key_other[KJ_KEY_BYTES];

/* Small segments so that tests roll over to several segment files. */
#define TU_SEGMENT_BYTES (64u * 1024u)

/* *o = KJ_OPTIONS_INIT with key = tu_key, segment_bytes = TU_SEGMENT_BYTES,
 * busy_timeout_ms = 0, sync = KJ_SYNC_FULL, mode = KJ_OPEN_CREATE. */
void tu_options(kj_options *o);
/* As tu_options() but with passphrase instead of key and the cheapest
 * Argon2id limits (opslimit 1, memlimit 8192). */
void tu_options_pass(kj_options *o, const char *passphrase);

/* ---- test VFS --------------------------------------------------------------
 */

typedef enum tu_method {
  TU_OPEN = 0,
  TU_CLOSE,
  TU_READ,
  TU_WRITE,
  TU_SYNC,
  TU_TRUNCATE,
  TU_SIZE,
  TU_LOCK,
  TU_RENAME,
  TU_UNLINK,
  TU_SYNC_DIR,
  TU_MKDIR,
  TU_LIST,
  TU_NMETHODS
} tu_method;

/* tu_vfs_arm() flags */
#define TU_ARM_ONCE 0x0u    /* fail only the Nth call, then disarm */
#define TU_ARM_PERSIST 0x1u /* fail the Nth call and every later one */
#define TU_ARM_PARTIAL                                                         \
  0x2u /* TU_WRITE only: a failing write first writes                          \
          the first half of its bytes (a torn write) */

typedef struct tu_vfs {
  kj_vfs vfs; /* pass &tv->vfs as kj_options.vfs */
  const kj_vfs *base;
  pthread_mutex_t mu;
  uint64_t calls[TU_NMETHODS];
  /* arming */
  int armed;
  tu_method arm_method;
  uint64_t arm_nth;   /* 1-based, counted from arming */
  uint64_t arm_seen;  /* calls of arm_method since arming */
  int arm_status;     /* KJ_EIO or KJ_ENOSPC */
  unsigned arm_flags; /* TU_ARM_* */
  uint64_t injected;  /* failures injected since tu_vfs_init() */
} tu_vfs;

/* Initialise tv as a pass-through wrapper around kj_vfs_posix(). */
void tu_vfs_init(tu_vfs *tv);
void tu_vfs_destroy(tu_vfs *tv);
/* Fail the nth (1-based, counted from now) call of method with status. */
void tu_vfs_arm(tu_vfs *tv, tu_method method, uint64_t nth, int status,
                unsigned flags);
void tu_vfs_disarm(tu_vfs *tv);
/* Calls of method so far (since init or tu_vfs_reset_counts()). */
uint64_t tu_vfs_calls(tu_vfs *tv, tu_method method);
/* Sum of calls of every method. */
uint64_t tu_vfs_total_calls(tu_vfs *tv);
/* Failures injected so far. */
uint64_t tu_vfs_injected(tu_vfs *tv);
void tu_vfs_reset_counts(tu_vfs *tv);
const char *tu_method_name(tu_method m);

/* ---- growable string and table dumps ------------------------------------ */

typedef struct tu_buf {
  char *p; /* NUL-terminated once anything was added; may be NULL if empty */
  size_t len, cap;
} tu_buf;

void tu_buf_init(tu_buf *b);
void tu_buf_free(tu_buf *b);
void tu_buf_add(tu_buf *b, const void *data, size_t n);
void tu_buf_addf(tu_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Hand the buffer's string over (malloc'd, never NULL: "" if empty). */
char *tu_buf_take(tu_buf *b);

/* Append one row as "<hex key>=<hex value>\n" (the dump format). */
void tu_dump_row(tu_buf *b, const void *key, size_t klen, const void *val,
                 size_t vlen);
/* Dump every row of table (via kj_scan_prefix with plen 0) into *out, a
 * malloc'd string (free()). Returns the scan status; *out is NULL unless
 * the scan returned KJ_OK. */
int tu_dump_table(kj_store *s, kj_txn *txn, unsigned table, char **out);
/* Every table of s (1..KJ_TABLE_MAX) as tu_dump_tables does: the whole
 * observable state of a store. malloc'd, NULL if a scan failed. */
char *tu_dump_store(kj_store *s);
/* 1 if row key of table in s is exactly (v, vl); prints a TAP comment
 * saying what it found otherwise. */
int tu_row_eq(kj_store *s, unsigned table, const void *k, size_t kl,
              const void *v, size_t vl);
/* 1 if both dumps exist and are equal. */
int tu_same_dump(const char *a, const char *b);
/* Dump several tables: "T<id>\n" followed by the rows of each. */
int tu_dump_tables(kj_store *s, kj_txn *txn, const unsigned *tables,
                   size_t ntables, char **out);

/* ---- deterministic PRNG (splitmix64) ---------------------------------------
 */

typedef struct tu_rng {
  uint64_t s;
} tu_rng;

void tu_rng_seed(tu_rng *r, uint64_t seed);
uint64_t tu_rng_next(tu_rng *r);
/* Uniform in [0, n); n > 0. */
uint64_t tu_rng_below(tu_rng *r, uint64_t n);
void tu_rng_fill(tu_rng *r, void *buf, size_t n);

#endif
