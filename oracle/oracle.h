/*
 * oracle/oracle.h - the test oracle: a SQLite reference backend, seeded
 * workloads, a differential runner, a fault-injecting VFS and crash
 * campaigns. Built into liboracle (needs SQLite); used by the keyjournal
 * command (`keyjournal oracle`), the tests and the benchmarks.
 *
 * Anyone who writes a backend (keyjournal/sys/backend.h) can run the
 * differential runner against it: ora_diff_run takes any two backends.
 */
#ifndef ORA_ORACLE_H
#define ORA_ORACLE_H

#include <stddef.h>
#include <stdint.h>

#include "keyjournal.h"
#include "keyjournal/sys/backend.h"
#include "keyjournal/sys/vfs.h"

/* ---- SQLite reference backend (oracle/sqlite_backend.c) -------------- */

/* A test oracle, not a store for real keys: it writes rows, and the extra
 * bytes of kj_device_snapshot_copy, in plaintext (the native backend seals
 * everything, doc/FORMAT.md).
 *
 * Open the SQLite reference on file path (":memory:" for none), with
 * synchronous=FULL (or NORMAL when normal is 1), WAL mode, foreign keys
 * on. clock gives milliseconds (NULL: wall clock). Errors: KJ_EIO (with
 * *errmsg, free with kj_free), KJ_ENOMEM. */
int ora_sqlite_open(const char *path, int normal, kj_clock_fn clock,
                    void *clock_ctx, kj_backend **out, char **errmsg);
/* The same on an encrypted database: SQLCipher's PRAGMA key with the raw
 * key (keylen 32, no key derivation) is the connection's first statement,
 * then everything as ora_sqlite_open. Needs the library to be SQLCipher
 * (bench/bench_sqlcipher links it; with plain SQLite: KJ_EINVAL). A wrong
 * key or an unencrypted file: KJ_EKEY. */
int ora_sqlite_open_keyed(const char *path, int normal, const uint8_t *key,
                          size_t keylen, kj_clock_fn clock, void *clock_ctx,
                          kj_backend **out, char **errmsg);

/* ---- growable byte buffer -------------------------------------------- */

typedef struct ora_obuf {
  uint8_t *p;
  size_t len, cap;
} ora_obuf;

void ora_obuf_add(ora_obuf *b, const void *p, size_t n);
void ora_obuf_addf(ora_obuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void ora_obuf_free(ora_obuf *b);

/* ---- workloads (oracle/workload.c) ------------------------------------ */

/* One operation of a workload: a kind and its arguments, drawn from a
 * small universe of slots, addresses, ids and values so that operations
 * collide. Opaque outside workload.c except for the kind. */
typedef struct ora_wop ora_wop;

typedef enum ora_mix {
  ORA_MIX_REALISTIC = 0,  /* session updates dominate, see workload.c */
  ORA_MIX_ADVERSARIAL = 1 /* boundary sizes, empty sets, duplicates, ... */
} ora_mix;

typedef struct ora_workload {
  uint64_t seed;
  size_t n;
  ora_wop *ops; /* n operations */
  ora_mix mix;  /* the mix it was generated with (subsets keep it) */
} ora_workload;

/* Generate n operations from seed. Deterministic: the same seed, n and mix
 * give the same workload. KJ_OK or KJ_ENOMEM. */
int ora_workload_gen(uint64_t seed, size_t n, ora_mix mix, ora_workload *w);
void ora_workload_free(ora_workload *w);
/* Op i of w (i < w->n): ops cannot be indexed outside workload.c, where
 * struct ora_wop is defined. */
const ora_wop *ora_workload_op(const ora_workload *w, size_t i);
/* A copy holding only ops[i] for which keep[i] is non-zero (shrinking). */
int ora_workload_subset(const ora_workload *w, const uint8_t *keep,
                        ora_workload *out);

/* Transaction operations carry these kinds; the runner applies them. */
int ora_wop_is_begin(const ora_wop *op);
int ora_wop_is_commit(const ora_wop *op);
int ora_wop_is_rollback(const ora_wop *op);

/* Apply one non-transaction operation to b in t (NULL: autocommit),
 * appending to res a canonical text of the status and every output (so
 * two backends agree iff the texts are equal). Slot ids in ops are
 * indexes into slots[] (filled by device-create ops; *nslots grows). */
void ora_wop_apply(const ora_wop *op, kj_backend *b, kj_tx *t, uint32_t *slots,
                   size_t *nslots, ora_obuf *res);

/* Most device slots one workload creates (and so the room ora_wop_apply
 * needs in slots[]); device-create ops beyond it are not recorded. */
#define ORA_WORKLOAD_MAX_SLOTS 16u

/* The kind of op, 0..ora_wop_nkinds()-1, and the public function it calls
 * ("kj_session_put", "kj_backend_begin", ...): for coverage checks. */
int ora_wop_kind(const ora_wop *op);
int ora_wop_nkinds(void);
const char *ora_wop_kind_name(int kind);

/* The deterministic clock of differential runs, a kj_clock_fn: ctx is an
 * int64_t * holding the time in ms, or NULL for the clock of the
 * ora_diff_run in progress on this thread (it starts at a fixed epoch for
 * each pair of fresh backends and advances 1000 ms per op), so that
 * factories can pass ora_oracle_clock with a NULL ctx to any backend. */
int64_t ora_oracle_clock(void *ctx);

/* A sign of progress for the campaign's watchdog (oracle/beat.c): every
 * operation applied calls it. A no-op until ora_beat_attach() gave it a
 * counter (a watched campaign's child does, in a page its watcher reads). */
void ora_beat(void);
void ora_beat_attach(uint64_t *counter);

/* Describe op as one line of C-like text (for reproducers). */
void ora_wop_describe(const ora_wop *op, ora_obuf *out);

/* Canonical dump of everything a workload can have touched in b: every
 * slot, and in each every key of the workload universe through the public
 * API, in a fixed order. Two backends hold the same state iff the dumps
 * are equal. */
void ora_workload_dump(kj_backend *b, const uint32_t *slots, size_t nslots,
                       ora_obuf *out);

/* ---- differential runner (oracle/runner.c) ---------------------------- */

typedef struct ora_diff_result {
  size_t ops_run;
  int diverged;    /* 1 if the backends disagreed */
  size_t op_index; /* first disagreeing op (or checkpoint after it) */
  ora_obuf report; /* what differed, and the shrunk reproducer */
} ora_diff_result;

typedef int (*ora_backend_factory)(void *ctx, kj_backend **out);

/* Run w on a fresh backend from each factory, comparing every result and,
 * every check_every ops and at the end, the canonical dumps. On a
 * divergence, shrink the workload to a small reproducer (if shrink) and
 * describe it in res->report. KJ_OK when the run itself worked (diverged
 * or not); an error opening a backend otherwise. */
int ora_diff_run(const ora_workload *w, ora_backend_factory a, void *actx,
                 ora_backend_factory b, void *bctx, size_t check_every,
                 int shrink, ora_diff_result *res);

/* ---- temporary directories (oracle/tmpdir.c) -------------------------- */

/* A new directory PREFIX.XXXXXX under $KJ_TEST_TMPDIR, else $TMPDIR, else
 * /dev/shm when prefer_shm and it is writable, else /tmp (free with
 * free()); NULL on failure. */
char *ora_tmpdir(const char *prefix, int prefer_shm);
/* Remove path and everything under it (symlinks are not followed). */
void ora_rmtree(const char *path);

/* ---- shrinking (oracle/shrink.c) ------------------------------------- */

/* Delta debugging: remove chunks of idx[0..*m) (halves, quarters, ...,
 * single elements) while still(arg, candidate, k) says the candidate
 * still fails, in place; *runs counts the calls, at most max_runs. */
void ora_shrink(size_t *idx, size_t *m, size_t max_runs, size_t *runs,
                int (*still)(void *arg, const size_t *idx, size_t m),
                void *arg);

/* ---- fault VFS (oracle/faultvfs.c) ------------------------------------ */

typedef struct ora_fault_vfs ora_fault_vfs;

/* A VFS over POSIX that buffers every write since each file's last sync,
 * and can crash: each unsynced write is kept, dropped, torn (a prefix) or
 * garbage over a 512-byte sector; creations, renames, unlinks and mkdirs
 * not made durable by a sync of their directory may be undone. It can also fail
 * the Nth operation (write, sync, read, rename, open) with KJ_EIO or KJ_ENOSPC,
 * once or from then on. */
ora_fault_vfs *ora_fault_vfs_new(uint64_t seed);
void ora_fault_vfs_free(ora_fault_vfs *f);
const kj_vfs *ora_fault_vfs_get(ora_fault_vfs *f);

/* Damage patterns of ora_fault_vfs_crash(). For each pending (unsynced)
 * write, truncate and non-durable directory operation: */
#define ORA_CRASH_DROP 0 /* every pending write and directory op is lost */
#define ORA_CRASH_KEEP 1 /* every pending write and directory op survives */
#define ORA_CRASH_RANDOM                                                       \
  2 /* each write kept, dropped or torn (seeded);                              \
       each directory op kept or undone (seeded), those on one                 \
       name in order */
#define ORA_CRASH_TEAR                                                         \
  3 /* each file's last pending write is torn (a                               \
       prefix survives), earlier ones kept; directory                          \
       ops kept */
#define ORA_CRASH_GARBAGE                                                      \
  4 /* one random pending write gets garbage over one                          \
       512-byte sector (within the write's bytes),                             \
       the rest kept; of each directory's ops a                                \
       random prefix survives */
#define ORA_CRASH_NPATTERNS 5

/* Power loss now: resolve every pending write and directory operation per
 * pattern, write the result to the real files (so the directories hold
 * exactly what a disk could after power loss) and forget all pending state.
 * Files left open keep working on the new state; the VFS comes back to life
 * (a ora_fault_vfs_set_crash_at() death is cleared; counters and Nth faults
 * are not). Close every store on the VFS first. */
void ora_fault_vfs_crash(ora_fault_vfs *f, int pattern);

/* Operation counter: every call of every method counts (1-based). From
 * call op_index on, every call fails with KJ_EIO (close still frees its
 * handle) and changes nothing: the process died there. 0 disarms. */
void ora_fault_vfs_set_crash_at(ora_fault_vfs *f, uint64_t op_index);
/* Calls so far (since creation or ora_fault_vfs_reset()). */
uint64_t ora_fault_vfs_ops(ora_fault_vfs *f);
/* 1 once a set_crash_at death has happened (until crash/reset). */
int ora_fault_vfs_dead(ora_fault_vfs *f);

/* Methods for ora_fault_vfs_fail(). */
#define ORA_FAULT_WRITE 0
#define ORA_FAULT_SYNC 1 /* file syncs and directory syncs */
#define ORA_FAULT_READ 2
#define ORA_FAULT_RENAME 3
#define ORA_FAULT_OPEN 4
#define ORA_FAULT_NMETHODS 5

/* Fail the nth call (1-based, counted from now) of method with status
 * (KJ_EIO or KJ_ENOSPC), changing nothing; with persistent, that call and
 * every later one of the method. One arming per method. */
void ora_fault_vfs_fail(ora_fault_vfs *f, int method, uint64_t nth, int status,
                        int persistent);
/* Checker self-test: a persistent sync fault blocks its caller forever
 * instead of failing (a sync that never returns, as an engine that
 * retries a failed fdatasync without end would), so that a test can see
 * the watchdog report the hang and its replay. 0: real use. Affects every
 * fault VFS of the process. */
void ora_fault_vfs_selftest_hang(int on);
/* Failures injected so far (Nth faults and crash_at deaths). */
uint64_t ora_fault_vfs_injected(ora_fault_vfs *f);
/* Zero the counters and disarm everything (crash_at and Nth faults); the
 * pending state is kept. */
void ora_fault_vfs_reset(ora_fault_vfs *f);
/* Call fn(arg) after each successful sync of a journal segment, a file
 * named *.kjl (NULL fn: none): what makes NORMAL commits durable. Syncs
 * of other files (new files, among them a segment made ahead, still
 * *.kjl.tmp; runs; the header) make no frame durable. It runs with the
 * VFS lock held and must not call the VFS. */
void ora_fault_vfs_on_sync(ora_fault_vfs *f, void (*fn)(void *arg), void *arg);
/* Call fn(arg, op, kind) after each rename ('r') or unlink ('u') the VFS
 * makes, op its call number (NULL: none). It runs with the VFS's lock
 * held: it may record, nothing more. */
void ora_fault_vfs_on_dirop(ora_fault_vfs *f,
                            void (*fn)(void *arg, uint64_t op, int kind),
                            void *arg);
/* Call fn(arg, op) at the start of every call, with the call's 1-based
 * index, before the VFS lock is taken (NULL fn: none). fn may fork; the
 * VFS must then be used by one thread only. */
void ora_fault_vfs_on_op(ora_fault_vfs *f, void (*fn)(void *arg, uint64_t op),
                         void *arg);
/* Give every file sync a duration of usec microseconds (0, the default:
 * none), during which the VFS lock is released and other threads' calls
 * go on: a sync makes durable only the writes issued before it began, as
 * a real fsync may. For crash runs with concurrent writers. */
void ora_fault_vfs_sync_window(ora_fault_vfs *f, unsigned usec);
/* Give an injected sync fault (ora_fault_vfs_fail) a duration of usec
 * microseconds before it returns, with the VFS lock released (0, the
 * default: it returns at once). With concurrent writers, every other
 * committer then waits for that failing sync, and must be woken by it. */
void ora_fault_vfs_fault_window(ora_fault_vfs *f, unsigned usec);
/* The k-th successful file sync from now is the process's last act: it
 * returns success, and every later call fails as after set_crash_at
 * (0 disarms). A crash then lands right after a group commit's sync, where
 * a commit acknowledged by it but written after it began is not durable. */
void ora_fault_vfs_die_after_syncs(ora_fault_vfs *f, uint64_t k);
/* Restart the damage-pattern generator as ora_fault_vfs_new(seed) does. */
void ora_fault_vfs_reseed(ora_fault_vfs *f, uint64_t seed);
/* For a forked copy of a process: copy the real (durable) files of the
 * flat directory from into the existing directory to, and make every
 * pending write and directory operation under from refer to to instead,
 * so that a crash and recovery in the child leave the parent's files
 * alone. Handles open before keep their old files: call this only when
 * every later call will fail (set_crash_at). KJ_OK or the copy's error. */
int ora_fault_vfs_fork_dir(ora_fault_vfs *f, const char *from, const char *to);

/* ---- campaigns (oracle/crash.c) --------------------------------------- */

typedef struct ora_campaign {
  uint64_t seed;
  size_t workloads;
  size_t ops;
  int crash_all;       /* sweep every I/O operation */
  size_t crash_sample; /* else this many sampled crash points */
  int normal;          /* KJ_SYNC_NORMAL instead of FULL; 2: both, workloads
                          2 and 3 of every 4 under NORMAL */
  size_t kills;        /* SIGKILL runs */
  int progress;        /* print a progress line on stderr */
  /* Results. */
  uint64_t ops_run, crash_points, kills_run, divergences;
  ora_obuf report;
  /* Checker self-test (appended): open the native stores of the crash
   * sweeps with KJ_SYNC_OFF while checking them as FULL/NORMAL, so that
   * acknowledged commits can be lost and the campaign must report
   * divergences; 2: only the later generations of chained crashes (a
   * failure the first generation does not show). 0 in real use. */
  int selftest_sync_off;
  /* Crash points checked at once (forked children; 0 or 1: one at a
   * time). The results do not depend on it. */
  size_t jobs;
  /* Appended (issue 14). Each capability below is on when its field is
   * non-zero; keyjournal oracle turns them all on by default. */
  size_t threads;       /* writer threads of the group-commit crash runs */
  int kv;               /* raw key-value differential runs (oracle/kv.c) */
  int damage;           /* damage to durable bytes (oracle/damage.c) */
  int tamper;           /* edits by an adversary without the key */
  size_t generations;   /* chained crashes: crash, recover, work, ... */
  unsigned watchdog_ms; /* an op or crash point slower than this hangs */
  /* Results of the appended runs. */
  uint64_t kv_ops, damage_cases, tamper_cases, thread_points, chain_points,
      hangs;
  /* Crash and fault divergences shrunk so far (the campaign shrinks the
   * first one; every line can be replayed and shrunk with ora_replay). */
  uint64_t shrinks;
  /* When the campaign had its first divergence: ms since it started, and
   * the workload (1-based) that found it; 0 while there is none. */
  uint64_t first_divergence_ms;
  size_t first_divergence_workload;
  /* Of damage_cases and tamper_cases, those that edit a run file. */
  uint64_t run_cases;
} ora_campaign;

/* Differential runs (native vs SQLite), crash sweeps and SIGKILL runs as
 * configured. KJ_OK when the campaign ran (see divergences). */
int ora_campaign_run(ora_campaign *c);

/* ---- raw key-value differential runs (oracle/kv.c) -------------------- */

/* One seeded mix of ops ops on the raw store API (kj_put, kj_get,
 * kj_delete, kj_scan, transactions and savepoints) against a SQLite
 * reference of the same operations: every result and, at the end, the
 * whole state must agree. Divergences are added to c (divergences,
 * report: a shrunk reproducer); c->kv_ops counts the ops run. KJ_OK when
 * the run itself worked. */
int ora_kv_check(ora_campaign *c, uint64_t seed, size_t ops);
/* Checker self-test: make the SQLite reference of ora_kv_check wrong on
 * purpose, so that the runs must report divergences. which: 0 the real
 * reference; 1 in a write transaction, a get of a key the transaction
 * deleted returns the committed row (read-your-writes forgotten after a
 * delete); 2 kj_txn_rollback_savepoint keeps the changes; 3 a scan in a
 * write transaction ignores the transaction's own writes. Not for use while
 * other threads run ora_kv_check. */
void ora_kv_selftest_break(int which);

/* ---- damage and tamper campaigns (oracle/damage.c) -------------------- */

/* Build a store from seed (ops commits, with roll-overs and a checkpoint),
 * close it cleanly, then for each case damage one durable region (flipped,
 * zeroed or cut bytes in a segment, the run file or the header) and reopen
 * and verify: the outcome must be KJ_ECORRUPT naming the file and offset
 * (for damage inside a run block, at the open or at the read of the
 * block), or the full state; a silent loss is a divergence. c->damage_cases
 * counts the cases, c->run_cases those on the run file. */
int ora_damage_check(ora_campaign *c, uint64_t seed, size_t ops);

/* The same store, edited by an adversary who holds the files but not the
 * key: frames swapped, replayed or spliced in from another history of the
 * same store, runs relabelled or their blocks moved, unkeyed checksums
 * recomputed. Every edit must fail authentication (KJ_ECORRUPT); any other
 * outcome is a divergence. c->tamper_cases counts the cases, c->run_cases
 * those that edit a run file. */
int ora_tamper_check(ora_campaign *c, uint64_t seed, size_t ops);

/* Checker self-test: make the two checks above mis-judge on purpose, so
 * that a test can see them report divergences (0: real use, the default).
 *   1: ora_damage_check compares with the recorded state less one row
 *      (every open that keeps the full state, at least the untouched
 *      store's, is then a divergence);
 *   2: ora_tamper_check also runs a case left out as undetectable by
 *      design: the header kept, the run and the whole journal taken
 *      from another, longer history of the store; the open succeeds with
 *      that history's state, a divergence;
 *   3: ora_damage_check expects every message to name a file that is not
 *      the damaged one (every KJ_ECORRUPT is then a divergence);
 *   4: ora_tamper_check does not recompute the unkeyed checksums after its
 *      edits (the cases that only authentication may catch then fail a
 *      checksum instead, and their messages do not say "authentication");
 *   5: ora_damage_check's process that judges the cases dies (SIGKILL) in
 *      the second case and hangs in the third (until c->watchdog_ms, or 20
 *      s when 0): a crash and a hang, the rest of the cases still run.
 *   6: ora_damage_check's killed store expects its full state even where
 *      a frame without evidence may be cut as a torn tail.
 *   7: both checks take a failed read after a successful open as a
 *      divergence even for damage inside a run block (which the engine
 *      finds only when it reads the block).
 * Affects every later call in the process. */
void ora_damage_selftest_break(int which);

/* One fault schedule for ora_crash_check(). */
typedef struct ora_crash_plan {
  uint64_t point;          /* die at this VFS call (1-based; 0: never) */
  int pattern;             /* ORA_CRASH_*: power loss after the run */
  uint64_t recovery_point; /* also die at this call of the recovery (0: no) */
  int fault_method;        /* ORA_FAULT_* for an Nth-call fault, -1: none */
  uint64_t fault_nth;      /* 1-based */
  int fault_status;        /* KJ_EIO or KJ_ENOSPC */
  int fault_persistent;
  uint64_t salt;       /* seeds the damage pattern */
  int small_snapshots; /* checkpoint every 8 KiB of journal */
} ora_crash_plan;

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
int ora_crash_check(ora_campaign *c, const ora_workload *w,
                    const ora_crash_plan *plan);

/* Replay one reproducer line of a campaign report: a crash point
 * ("crash: seed=S ops=N mix=M mode=X snapshots=Y point=P pattern=T
 * recovery_crash=R salt=A ...") or an Nth-call fault ("fault: seed=S ops=N
 * mix=M mode=X snapshots=Y method=W nth=K status=E once|persistent ..."),
 * optionally with "keep=0-3,7,12" (the ops of the workload kept, in
 * order). The line's check runs once on the workload it names (c->normal
 * is set from mode); a divergence is added to c as in a campaign and,
 * when shrink_ms is non-zero, shrunk for at most that long: ops are
 * removed while the check still fails, the crash point following the op
 * it fell in, and a "shrunk:" line with the replay of the smaller case
 * and its ops is added to the report. A chain line ("chain: seed=S ...
 * salt=A") or a threads line ("threads: seed=S threads=N ...") runs that
 * chain or that concurrent-writer run again. With c->watchdog_ms set,
 * every check runs in a child process under that watchdog: a case that
 * stops making progress (c->hangs) or whose process dies is a divergence,
 * and is shrunk as one. KJ_EINVAL (with a line in the report) when the
 * line is not one of these. */
int ora_replay(ora_campaign *c, const char *line, unsigned shrink_ms);

/* The watchdog for a replay of one case (keyjournal oracle --replay, and
 * a campaign's shrinking of a case that hung): the case beats at every op
 * it applies, and no op or recovery of a store of a few thousand ops
 * takes a fraction of it. */
#define ORA_REPLAY_WATCHDOG_MS 500u

#endif
