/*
 * tests/testutil.h - helpers shared by the keyjournal test programs.
 *
 * Temp store directories, a fixed test key and option filler, opening
 * stores and backends, raw rows of the domain tables, a counting /
 * failure-injecting VFS wrapped around kj_vfs_posix(), table dumps that can
 * be compared as strings, a directory copier (to snapshot a store as if the
 * process had crashed) and a deterministic PRNG.
 *
 * Only the functions and macros said to check something print TAP results
 * (through tap.h); the rest at most print a "#" comment on a failure.
 */
#ifndef KJ_TESTS_TESTUTIL_H
#define KJ_TESTS_TESTUTIL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "keyjournal/backend.h"
#include "keyjournal/device.h"
#include "keyjournal/store.h"
#include "keyjournal/sys/vfs.h"

/* ---- temp directories and files ---------------------------------------- */

/* Create a fresh empty directory under $KJ_TEST_TMPDIR, else $TMPDIR, else
 * /tmp. Returns a malloc'd
 * path (free()), or NULL on failure. */
char *tu_mkdtemp(void);
/* tu_mkdtemp(), or a TAP "Bail out!" and exit(1) when that fails. */
char *tu_mkdtemp_or_bail(void);
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
/* Entries of dir whose name starts with prefix; -1 if dir cannot be read. */
int tu_count_prefix(const char *dir, const char *prefix);
/* The bytes of the file at path, read straight (not through a VFS):
 * malloc'd, with a NUL byte after the *len bytes; NULL on an error. */
void *tu_read_file(const char *path, size_t *len);
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

/* ---- opening stores and backends ------------------------------------------
 */

/* kj_store_open() with *o (NULL: tu_options()). NULL on failure, after a
 * "#" comment with the status and the detail message. */
kj_store *tu_store_open(const char *dir, const kj_options *o);
/* The same, checked: "<what>: kj_store_open" is KJ_OK, and a failing open
 * left *out NULL. NULL on failure. */
kj_store *tu_store_open_ok(const char *dir, const kj_options *o,
                           const char *what);
/* Fixture: fn(dir, o, s) on a store opened with tu_options() as changed
 * by tune (if not NULL) in a fresh directory, checked as "<what>:
 * kj_store_open"; fn does not run if it did not open. fn closes s (and may
 * reopen the store in dir with o); the directory is removed afterwards. */
void tu_with_store_dir(const char *what, void (*tune)(kj_options *o),
                       void (*fn)(const char *dir, const kj_options *o,
                                  kj_store *s));
/* kj_backend_open() on dir (NULL: memory-only) with *o (NULL:
 * tu_options()). NULL on failure, after a "#" comment. */
kj_backend *tu_backend_open(const char *dir, const kj_options *o);

/* Fixture: run fn on a fresh memory-only backend with the slots 1..nslots,
 * then close it. Checks "<name>: backend and slot(s)" first; fn is not run
 * when the backend did not open. */
void tu_with_slots(const char *name, unsigned nslots, void (*fn)(kj_backend *));

/* ---- raw rows of the domain tables (doc/FORMAT.md section 8) -------------
 */

/* Engine table ids of the domain rows (doc/FORMAT.md section 8), spelled
 * out here rather than taken from src/ so that a renumbering is caught. */
enum {
  T_DEVICE = 2, /* one row per device slot */
  T_IDENTITY = 10,
  T_SESSION = 11,
  T_PREKEY = 12,
  T_SIGNED = 13,
  T_SENDER = 14,
  T_SYNC_KEY = 20,
  T_SYNC_LATEST = 21,
  T_SYNC_VERSION = 22,
  T_MAC = 23,
  T_SKDM = 30,
  T_LID = 31,
  T_LID_BY_PHONE = 32,
  T_BASE_KEY = 33,
  T_DEVICE_LIST = 34,
  T_SK_FORGET = 35,
  T_TC_TOKEN = 36,
  T_RATCHET = 40,
  T_SKIPPED = 41,
};

void tu_be32(uint8_t *p, uint32_t v);
/* A slot row key into k: dev (big-endian) then n bytes of p. Its length. */
size_t tu_slot_key(uint8_t *k, uint32_t dev, const void *p, size_t n);
/* dev, then name with a 2-byte big-endian length prefix: the key prefix of
 * the rows of one name (collection, conversation). Its length. */
size_t tu_slot_name_key(uint8_t *k, uint32_t dev, const char *name);
/* Make slot dev exist without the device store: its table-2 row (version 1,
 * no device record). */
int tu_make_slot(kj_backend *b, uint32_t dev);
/* kj_put / kj_get straight into the engine table of b, outside any
 * transaction. */
int tu_raw_put(kj_backend *b, unsigned table, const void *k, size_t kl,
               const void *v, size_t vl);
int tu_raw_get(kj_backend *b, unsigned table, const void *k, size_t kl,
               uint8_t **v, size_t *vl);
/* tu_row_eq() on the store of b. */
int tu_raw_eq(kj_backend *b, unsigned table, const void *k, size_t kl,
              const void *v, size_t vl);
/* Rows of table whose key starts with prefix (-1 on a scan error). */
long tu_raw_count(kj_backend *b, unsigned table, const void *prefix,
                  size_t plen);
/* tu_dump_store() of the store of b: every table a domain call could touch,
 * the whole observable state. */
char *tu_dump_backend(kj_backend *b);

/* Test bytes: p[i] = seed + 7 * i. */
void tu_fill(uint8_t *p, size_t n, uint8_t seed);
/* The key material of a device record, each field tu_fill()ed from its own
 * seed: noise_pub with seed, noise_priv seed + 1, identity_pub, identity_priv,
 * signed_prekey_pub, signed_prekey_priv, signed_prekey_sig, and adv_secret
 * with seed + 7. */
void tu_device_keys(kj_device_record *r, uint8_t seed);

/* 1 if b still dumps (tu_dump_backend) as before; the new dump is freed. */
int tu_backend_unchanged(kj_backend *b, const char *before);

/* A check like ok() and is() of tap.h: call fails with want and leaves
 * every table of backend b as it was ("<desc>", then "  ... and changes
 * nothing"). */
#define FAILS_CLEAN(b, want, call, ...)                                        \
  do {                                                                         \
    char *d0_ = tu_dump_backend(b);                                            \
    int rc_ = (call);                                                          \
    char *d1_ = tu_dump_backend(b);                                            \
    is(rc_, want, __VA_ARGS__);                                                \
    ok(tu_same_dump(d0_, d1_), "  ... and changes nothing");                   \
    free(d0_);                                                                 \
    free(d1_);                                                                 \
  } while (0)

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
  struct tu_vfs_arming {
    int on;
    tu_method method;
    uint64_t nth;   /* 1-based, counted from arming */
    uint64_t seen;  /* calls of method since arming */
    int status;     /* KJ_EIO or KJ_ENOSPC */
    unsigned flags; /* TU_ARM_* */
  } arm;
  uint64_t injected; /* failures injected since tu_vfs_init() */
} tu_vfs;

/* Initialise tv as a pass-through wrapper around kj_vfs_posix(). */
void tu_vfs_init(tu_vfs *tv);
/* tu_options(o) on the counting VFS tv, which this initialises. */
void tu_options_vfs(kj_options *o, tu_vfs *tv);
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
/* 1 if kj_get of k in table (in t) is KJ_OK with exactly (v, vl); prints
 * a TAP comment with what it got otherwise. */
int tu_get_eq(kj_store *s, kj_txn *t, unsigned table, const void *k, size_t kl,
              const void *v, size_t vl);
/* tu_get_eq with a string key and value. */
int tu_get_str_eq(kj_store *s, kj_txn *t, unsigned table, const char *k,
                  const char *v);
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

/* ---- checks shared by the domain store tests ------------------------------
 */

/* What the transaction tests of one domain store write and read back, all
 * in slot 1. */
typedef struct tu_tx_script {
  void (*base_rows)(kj_backend *b);        /* rows there before the tx */
  int (*writes)(kj_backend *b, kj_tx *t);  /* every kind of write; 1st error */
  int (*visible)(kj_backend *b, kj_tx *t); /* 1 if every write reads back */
} tu_tx_script;

/* Begin a transaction on b and run the script's writes in it, checking
 * "tx: begin", "tx: every write op inside a transaction" and "tx: reads
 * inside the tx see the tx's writes". Returns the transaction. */
kj_tx *tu_tx_begin_writes(kj_backend *b, const tu_tx_script *s);
/* Check that nothing of t shows outside it ("tx: nothing visible outside
 * before commit"), roll it back, and check that b is as dumped in before
 * ("tx: rollback leaves nothing"). */
void tu_tx_rollback_clean(kj_backend *b, kj_tx *t, const char *before);
/* The "persist: ..." checks: the script's base rows and writes, committed
 * to a store in a new directory, read back the same after a reopen. */
void tu_check_persistence(const tu_tx_script *s);

/* A call that writes the n items of a batch too big for one transaction
 * (over KJ_MAX_TXN_BYTES) in t, and a small write to make before it. */
typedef struct tu_big_batch {
  int (*batch)(kj_backend *b, kj_tx *t, const void *items, size_t n);
  const void *items;
  size_t n;
  int (*write)(kj_backend *b, kj_tx *t);
} tu_big_batch;

/* The batch must fail alone and store nothing ("big batch: alone fails",
 * "big batch: ... and stores nothing"), then fail again in a transaction
 * after the small write ("big batch: begin", "big batch: in a tx fails").
 * Returns that transaction, still open; *before gets the dump of b from
 * before the batch (free()). */
kj_tx *tu_big_batch_fails(kj_backend *b, const tu_big_batch *bb, char **before);

/* The tests that every domain store has, in the order tu_run_domain_suite()
 * runs them: slot isolation ("slots", on two slots), transactions ("tx"),
 * a batch over the transaction limit ("big batch"), persistence (the tx
 * script's rows across a reopen) and damaged rows ("corrupt"). */
typedef struct tu_domain_suite {
  void (*slots)(kj_backend *b);
  void (*tx)(kj_backend *b);
  void (*big_batch)(kj_backend *b);
  const tu_tx_script *persist;
  void (*corrupt)(kj_backend *b);
} tu_domain_suite;

void tu_run_domain_suite(const tu_domain_suite *s);

/* The status of a read, or 99 when a failing read left its result set
 * (out not NULL or len not 0; a "#" comment says so). Frees out. */
int tu_out_rc(int rc, void *out, size_t len);

/* 1 if rc is what a decoder may answer for a damaged row: KJ_OK,
 * KJ_ECORRUPT or KJ_EFORMAT. */
int tu_damage_rc_ok(int rc);
/* Random row values for the decoders of b: rounds times, a value of fewer
 * than cap random bytes goes to probe() with pick uniform in [0, npick).
 * The first byte of a value is made format version 1 unless a 1-in-odds
 * draw says otherwise, so that most values get past the version check.
 * Checks that probe() found every round right (returned 1): "corrupt: random
 * values give OK, ECORRUPT or EFORMAT only". */
void tu_check_damage_rounds(kj_backend *b, uint64_t seed, int rounds,
                            size_t cap, unsigned odds, unsigned npick,
                            int (*probe)(kj_backend *b, tu_rng *r,
                                         unsigned pick, uint8_t *v, size_t vl));

#endif
