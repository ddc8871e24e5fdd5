/*
 * oracle/oracle.h - the test oracle: a SQLite reference backend, seeded
 * workloads, a differential runner, a fault-injecting VFS and crash
 * campaigns. Built into liboracle (needs SQLite); used by the keyjournal
 * command (`keyjournal oracle`), the tests and the benchmarks.
 *
 * Anyone who writes a backend (keyjournal/sys/backend.h) can run the
 * differential runner against it: kj_diff_run takes any two backends.
 */
#ifndef KJ_ORACLE_H
#define KJ_ORACLE_H

#include <stddef.h>
#include <stdint.h>

#include "keyjournal.h"
#include "keyjournal/sys/backend.h"
#include "keyjournal/sys/vfs.h"

/* ---- SQLite reference backend (oracle/sqlite_backend.c) -------------- */

/* Open the SQLite reference on file path (":memory:" for none), with
 * synchronous=FULL (or NORMAL when normal is 1), WAL mode, foreign keys
 * on. clock gives milliseconds (NULL: wall clock). Errors: KJ_EIO (with
 * *errmsg, free with kj_free), KJ_ENOMEM. */
int kj_sqlite_open(const char *path, int normal, kj_clock_fn clock,
                   void *clock_ctx, kj_backend **out, char **errmsg);
/* The same on an encrypted database: SQLCipher's PRAGMA key with the raw
 * key (keylen 32, no key derivation) is the connection's first statement,
 * then everything as kj_sqlite_open. Needs the library to be SQLCipher
 * (bench/bench_sqlcipher links it; with plain SQLite: KJ_EINVAL). A wrong
 * key or an unencrypted file: KJ_EKEY. */
int kj_sqlite_open_keyed(const char *path, int normal, const uint8_t *key,
                         size_t keylen, kj_clock_fn clock, void *clock_ctx,
                         kj_backend **out, char **errmsg);

/* ---- growable byte buffer -------------------------------------------- */

typedef struct kj_obuf {
  uint8_t *p;
  size_t len, cap;
} kj_obuf;

void kj_obuf_add(kj_obuf *b, const void *p, size_t n);
void kj_obuf_addf(kj_obuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void kj_obuf_free(kj_obuf *b);

/* ---- workloads (oracle/workload.c) ------------------------------------ */

/* One operation of a workload: a kind and its arguments, drawn from a
 * small universe of slots, addresses, ids and values so that operations
 * collide. Opaque outside workload.c except for the kind. */
typedef struct kj_wop kj_wop;

typedef enum kj_mix {
  KJ_MIX_REALISTIC = 0,  /* session updates dominate, see workload.c */
  KJ_MIX_ADVERSARIAL = 1 /* boundary sizes, empty sets, duplicates, ... */
} kj_mix;

typedef struct kj_workload {
  uint64_t seed;
  size_t n;
  kj_wop *ops; /* n operations */
} kj_workload;

/* Generate n operations from seed. Deterministic: the same seed, n and mix
 * give the same workload. KJ_OK or KJ_ENOMEM. */
int kj_workload_gen(uint64_t seed, size_t n, kj_mix mix, kj_workload *w);
void kj_workload_free(kj_workload *w);
/* Op i of w (i < w->n): ops cannot be indexed outside workload.c, where
 * struct kj_wop is defined. */
const kj_wop *kj_workload_op(const kj_workload *w, size_t i);
/* A copy holding only ops[i] for which keep[i] is non-zero (shrinking). */
int kj_workload_subset(const kj_workload *w, const uint8_t *keep,
                       kj_workload *out);

/* Transaction operations carry these kinds; the runner applies them. */
int kj_wop_is_begin(const kj_wop *op);
int kj_wop_is_commit(const kj_wop *op);
int kj_wop_is_rollback(const kj_wop *op);

/* Apply one non-transaction operation to b in t (NULL: autocommit),
 * appending to res a canonical text of the status and every output (so
 * two backends agree iff the texts are equal). Slot ids in ops are
 * indexes into slots[] (filled by device-create ops; *nslots grows). */
void kj_wop_apply(const kj_wop *op, kj_backend *b, kj_tx *t, uint32_t *slots,
                  size_t *nslots, kj_obuf *res);

/* Most device slots one workload creates (and so the room kj_wop_apply
 * needs in slots[]); device-create ops beyond it are not recorded. */
#define KJ_WORKLOAD_MAX_SLOTS 16u

/* The kind of op, 0..kj_wop_nkinds()-1, and the public function it calls
 * ("kj_session_put", "kj_tx_begin", ...): for coverage checks. */
int kj_wop_kind(const kj_wop *op);
int kj_wop_nkinds(void);
const char *kj_wop_kind_name(int kind);

/* The deterministic clock of differential runs, a kj_clock_fn: ctx is an
 * int64_t * holding the time in ms, or NULL for the clock of the
 * kj_diff_run in progress on this thread (it starts at a fixed epoch for
 * each pair of fresh backends and advances 1000 ms per op), so that
 * factories can pass kj_oracle_clock with a NULL ctx to any backend. */
int64_t kj_oracle_clock(void *ctx);

/* Describe op as one line of C-like text (for reproducers). */
void kj_wop_describe(const kj_wop *op, kj_obuf *out);

/* Canonical dump of everything a workload can have touched in b: every
 * slot, and in each every key of the workload universe through the public
 * API, in a fixed order. Two backends hold the same state iff the dumps
 * are equal. */
void kj_workload_dump(kj_backend *b, const uint32_t *slots, size_t nslots,
                      kj_obuf *out);

/* ---- differential runner (oracle/runner.c) ---------------------------- */

typedef struct kj_diff_result {
  size_t ops_run;
  int diverged;    /* 1 if the backends disagreed */
  size_t op_index; /* first disagreeing op (or checkpoint after it) */
  kj_obuf report;  /* what differed, and the shrunk reproducer */
} kj_diff_result;

typedef int (*kj_backend_factory)(void *ctx, kj_backend **out);

/* Run w on a fresh backend from each factory, comparing every result and,
 * every check_every ops and at the end, the canonical dumps. On a
 * divergence, shrink the workload to a small reproducer (if shrink) and
 * describe it in res->report. KJ_OK when the run itself worked (diverged
 * or not); an error opening a backend otherwise. */
int kj_diff_run(const kj_workload *w, kj_backend_factory a, void *actx,
                kj_backend_factory b, void *bctx, size_t check_every,
                int shrink, kj_diff_result *res);

/* ---- fault VFS (oracle/faultvfs.c) ------------------------------------ */

typedef struct kj_fault_vfs kj_fault_vfs;

/* A VFS over POSIX that buffers every write since each file's last sync,
 * and can crash: each unsynced write is kept, dropped, torn (a prefix) or
 * garbage over a 512-byte sector; creations, renames and unlinks not made
 * durable by a directory sync may be undone. It can also fail the Nth
 * operation (write, sync, read, rename, open) with KJ_EIO or KJ_ENOSPC,
 * once or from then on. */
kj_fault_vfs *kj_fault_vfs_new(uint64_t seed);
void kj_fault_vfs_free(kj_fault_vfs *f);
const kj_vfs *kj_fault_vfs_get(kj_fault_vfs *f);

/* Damage patterns of kj_fault_vfs_crash(). For each pending (unsynced)
 * write, truncate and non-durable directory operation: */
#define KJ_CRASH_DROP 0 /* every pending write and directory op is lost */
#define KJ_CRASH_KEEP 1 /* every pending write and directory op survives */
#define KJ_CRASH_RANDOM                                                        \
  2 /* each write kept, dropped or torn (seeded);                              \
       a random prefix of the directory ops survives */
#define KJ_CRASH_TEAR                                                          \
  3 /* each file's last pending write is torn (a                               \
       prefix survives), earlier ones kept; directory                          \
       ops kept */
#define KJ_CRASH_GARBAGE                                                       \
  4 /* one random pending write gets garbage over one                          \
       512-byte sector (within the write's bytes),                             \
       the rest kept; a random prefix of the                                   \
       directory ops survives */
#define KJ_CRASH_NPATTERNS 5

/* Power loss now: resolve every pending write and directory operation per
 * pattern, write the result to the real files (so the directories hold
 * exactly what a disk could after power loss) and forget all pending state.
 * Files left open keep working on the new state; the VFS comes back to life
 * (a kj_fault_vfs_set_crash_at() death is cleared; counters and Nth faults
 * are not). Close every store on the VFS first. */
void kj_fault_vfs_crash(kj_fault_vfs *f, int pattern);

/* Operation counter: every call of every method counts (1-based). From
 * call op_index on, every call fails with KJ_EIO (close still frees its
 * handle) and changes nothing: the process died there. 0 disarms. */
void kj_fault_vfs_set_crash_at(kj_fault_vfs *f, uint64_t op_index);
/* Calls so far (since creation or kj_fault_vfs_reset()). */
uint64_t kj_fault_vfs_ops(kj_fault_vfs *f);
/* 1 once a set_crash_at death has happened (until crash/reset). */
int kj_fault_vfs_dead(kj_fault_vfs *f);

/* Methods for kj_fault_vfs_fail(). */
#define KJ_FAULT_WRITE 0
#define KJ_FAULT_SYNC 1 /* file syncs and directory syncs */
#define KJ_FAULT_READ 2
#define KJ_FAULT_RENAME 3
#define KJ_FAULT_OPEN 4
#define KJ_FAULT_NMETHODS 5

/* Fail the nth call (1-based, counted from now) of method with status
 * (KJ_EIO or KJ_ENOSPC), changing nothing; with persistent, that call and
 * every later one of the method. One arming per method. */
void kj_fault_vfs_fail(kj_fault_vfs *f, int method, uint64_t nth, int status,
                       int persistent);
/* Failures injected so far (Nth faults and crash_at deaths). */
uint64_t kj_fault_vfs_injected(kj_fault_vfs *f);
/* Zero the counters and disarm everything (crash_at and Nth faults); the
 * pending state is kept. */
void kj_fault_vfs_reset(kj_fault_vfs *f);
/* Call fn(arg) after each successful file sync (NULL fn: none). It runs
 * with the VFS lock held and must not call the VFS. */
void kj_fault_vfs_on_sync(kj_fault_vfs *f, void (*fn)(void *arg), void *arg);
/* Call fn(arg, op) at the start of every call, with the call's 1-based
 * index, before the VFS lock is taken (NULL fn: none). fn may fork; the
 * VFS must then be used by one thread only. */
void kj_fault_vfs_on_op(kj_fault_vfs *f, void (*fn)(void *arg, uint64_t op),
                        void *arg);
/* Restart the damage-pattern generator as kj_fault_vfs_new(seed) does. */
void kj_fault_vfs_reseed(kj_fault_vfs *f, uint64_t seed);
/* For a forked copy of a process: copy the real (durable) files of the
 * flat directory from into the existing directory to, and make every
 * pending write and directory operation under from refer to to instead,
 * so that a crash and recovery in the child leave the parent's files
 * alone. Handles open before keep their old files: call this only when
 * every later call will fail (set_crash_at). KJ_OK or the copy's error. */
int kj_fault_vfs_fork_dir(kj_fault_vfs *f, const char *from, const char *to);

/* ---- campaigns (oracle/crash.c) --------------------------------------- */

typedef struct kj_campaign {
  uint64_t seed;
  size_t workloads;
  size_t ops;
  int crash_all;       /* sweep every I/O operation */
  size_t crash_sample; /* else this many sampled crash points */
  int normal;          /* KJ_SYNC_NORMAL instead of FULL */
  size_t kills;        /* SIGKILL runs */
  int progress;        /* print a progress line on stderr */
  /* Results. */
  uint64_t ops_run, crash_points, kills_run, divergences;
  kj_obuf report;
  /* Checker self-test (appended): open the native stores of the crash
   * sweeps with KJ_SYNC_OFF while checking them as FULL/NORMAL, so that
   * acknowledged commits can be lost and the campaign must report
   * divergences. 0 in real use. */
  int selftest_sync_off;
  /* Crash points checked at once (forked children; 0 or 1: one at a
   * time). The results do not depend on it. */
  size_t jobs;
} kj_campaign;

/* Differential runs (native vs SQLite), crash sweeps and SIGKILL runs as
 * configured. KJ_OK when the campaign ran (see divergences). */
int kj_campaign_run(kj_campaign *c);

/* One fault schedule for kj_crash_check(). */
typedef struct kj_crash_plan {
  uint64_t point;          /* die at this VFS call (1-based; 0: never) */
  int pattern;             /* KJ_CRASH_*: power loss after the run */
  uint64_t recovery_point; /* also die at this call of the recovery (0: no) */
  int fault_method;        /* KJ_FAULT_* for an Nth-call fault, -1: none */
  uint64_t fault_nth;      /* 1-based */
  int fault_status;        /* KJ_EIO or KJ_ENOSPC */
  int fault_persistent;
  uint64_t salt;       /* seeds the damage pattern */
  int small_snapshots; /* checkpoint every 8 KiB of journal */
} kj_crash_plan;

/* Check one schedule on workload w as the campaigns do (c->normal picks
 * the sync mode): build the reference (SQLite oracle dumps at every
 * transaction boundary, a native reference run), run the workload through
 * the fault VFS with the plan's death and fault, play power loss with the
 * pattern (always: a run that never died ends with a clean close), crash
 * the recovery if asked, then reopen: the op that met a failure must have
 * said so clearly, and the state must be the oracle's after some commit
 * between the last durable one and the one in flight. Divergences are
 * added to c (divergences, report); c->crash_points counts the check.
 * KJ_OK when the check ran. */
int kj_crash_check(kj_campaign *c, const kj_workload *w,
                   const kj_crash_plan *plan);

#endif
