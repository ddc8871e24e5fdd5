/*
 * oracle/crash.c - crash campaigns (ora_campaign_run of oracle/oracle.h).
 *
 * For each workload (seed c->seed + i, realistic and adversarial mixes in
 * turn) a campaign makes:
 *
 *  a. a differential run, native (memory) against SQLite (":memory:");
 *  b. a crash sweep: a reference run of the native engine on a temp
 *     directory through the fault VFS counts its N VFS operations and
 *     records every op's result text, while a SQLite oracle fed the same
 *     ops gives the canonical dump at every transaction boundary. Then one
 *     more run repeats the reference and, at the start of each crash point
 *     p (all of 1..N, or a sample), forks one child per damage pattern (two
 *     or three). The child takes a copy of the durable files, dies at VFS
 *     operation p; the ops before the first one whose result differs from
 *     the reference completed (m of them); ora_fault_vfs_crash() plays power
 *     loss; for some points the recovery is crashed too; a clean reopen
 *     must then hold the oracle state at some boundary q with lo <= q <=
 *     hi, where hi is m, or m + 1 when op m (in flight) could have
 *     committed, and lo is the last boundary <= m under FULL (every
 *     acknowledged commit kept) or, under NORMAL, the last boundary
 *     completed before the last successful sync (the on_sync hook). Dumps
 *     compare whole states, so a partial transaction never matches. Each
 *     crash point thus costs one recovery, not one replay of the workload
 *     up to it: sweeping every point stays linear in the workload's length;
 *  c. Nth-operation faults: for a few N and each of EIO/ENOSPC x once /
 *     persistent x write/sync/read/rename/open, a run in which the open
 *     or op that meets the failure must return KJ_EIO, KJ_ENOSPC or
 *     KJ_EPOISONED (never its normal status with other outputs), and a
 *     reopen (no power loss) that must hold q in [last boundary <= m, hi]:
 *     nothing acknowledged lost. The crash sweeps check the dying op the
 *     same way;
 *  d. SIGKILL runs (c->kills spread over the workloads): a child on the
 *     real POSIX VFS (FULL) reports each boundary it reaches through a
 *     pipe and is killed after a seeded delay; the reopened store must hold
 *     the state at the last reported boundary or the next one.
 *
 * Every divergence adds one reproducer line (seed, ops, mode, crash point,
 * pattern, recovery crash) to c->report. Runs use ora_oracle_clock with a
 * clock that advances 1000 ms per op (fixed while dumping), so all runs of
 * a workload see the same times. Native stores use 16 KiB segments, a
 * 4 KiB NORMAL sync interval and, on even (realistic) workloads, an 8 KiB
 * snapshot threshold, so that roll-overs, interval syncs and
 * checkpoints - creations, renames, unlinks, directory syncs - happen
 * inside the sweeps.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "oracle.h"

#define CLOCK_EPOCH_MS INT64_C(1700000000000)
#define SEGMENT_BYTES 4096u /* the minimum: roll-overs in every workload */
#define SNAPSHOT_SMALL 8192u
/* KJ_SYNC_NORMAL syncs every this many journal bytes: a quarter of a
 * segment, so that a store that syncs only at roll-overs (never every
 * interval) loses more than the bound allows and is caught. */
#define SYNC_INTERVAL 1024u
/* Nth-call values tried by the fault runs. */
static const uint64_t fault_nth[] = {1, 3, 10, 30};
/* Concurrent-writer crash schedules and chains of crashes per workload. */
#define THREAD_POINTS 8u
/* Commits of the store the damage and tamper runs edit. */
#define DAMAGE_OPS 300u
#define CHAINS 4u
/* How long a campaign may spend shrinking its first crash or fault
 * divergence (ms). */
#define CAMPAIGN_SHRINK_MS 10000
/* A restarted chain generation dies within its first this many VFS calls. */
#define CHAIN_EARLY_CALLS 64u
/* Crash points after a rename or unlink added to a sampled sweep. */
#define DIROP_POINTS 12u
/* A crashed recovery dies within its first this many VFS operations. */
#define RECOVERY_CRASH_SPAN 40u

static const uint8_t campaign_key[32] = {
    0x6b, 0x6a, 0x2d, 0x63, 0x72, 0x61, 0x73, 0x68, 0x2d, 0x63, 0x61,
    0x6d, 0x70, 0x61, 0x69, 0x67, 0x6e, 0x2d, 0x6b, 0x65, 0x79, 0x2d,
    0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39};

/* ---- small helpers ----------------------------------------------------- */

static uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static int text_eq(const ora_obuf *a, const ora_obuf *b) {
  return a->len == b->len && (a->len == 0 || !memcmp(a->p, b->p, a->len));
}

static char *mktemp_dir(void) { return ora_tmpdir("kjcrash", 0); }

static void rm_dir(char *path) {
  ora_rmtree(path);
  free(path);
}

static const char *pattern_name(int p) {
  static const char *n[] = {"drop", "keep", "random", "tear", "garbage"};
  return p >= 0 && p < ORA_CRASH_NPATTERNS ? n[p] : "?";
}

static const char *mix_name(const ora_workload *w) {
  return w->mix == ORA_MIX_ADVERSARIAL ? "adversarial" : "realistic";
}

/* The status an Nth-call fault returns, as lines name it. */
static const char *status_name(int rc) {
  return rc == KJ_ENOSPC ? "ENOSPC" : rc == KJ_EIO ? "EIO" : "?";
}

static const char *fault_name(int m) {
  static const char *n[] = {"write", "sync", "read", "rename", "open"};
  return m >= 0 && m < ORA_FAULT_NMETHODS ? n[m] : "?";
}

/* ---- the watchdog -------------------------------------------------------- */

/* Each workload runs in a child process (when c->watchdog_ms is set) that
 * beats once per operation applied (ora_beat) into a page it shares with
 * the campaign, and says there which phase, op and crash point it is in.
 * The campaign kills the child's process group when no beat came for
 * watchdog_ms, and reports the hang as a divergence: an operation that
 * never returns, or a recovery that never ends, at that place. The crash
 * sweep's children share the page, so a recovery that hangs at one crash
 * point is caught the same way. */
typedef struct beacon {
  uint64_t beats;
  uint64_t op;    /* index of the op being applied (phase-relative) */
  uint64_t point; /* crash point being recovered, 0: none */
  int pattern;
  char phase[16];
  /* The line that replays what the process is doing now (a crash, fault,
   * chain or threads line for ora_replay), "" when there is none: a hang
   * report prints it, and the campaign shrinks it. */
  char repro[400];
  /* What the watched function sends back that must survive its death
   * (the replay's anchor of its crash point, say). */
  uint64_t user[16];
} beacon;

static beacon *the_beacon; /* shared mapping, or NULL when off */

/* A function run in a watched child (watched): shared is beacon.user of
 * the child's beacon, zeroed, which outlives the child. */
typedef int (*watched_fn)(ora_campaign *c, void *arg, uint64_t *shared);

/* How a watched child ended. */
typedef struct watched_end {
  int hung; /* it stopped beating for c->watchdog_ms and was killed */
  int died; /* it died otherwise, with this wait status */
  int status;
  beacon last; /* its beacon as it left it */
} watched_end;

static int watched(ora_campaign *c, watched_fn fn, void *arg, watched_end *e);

static void beacon_repro(const char *line) {
  if (the_beacon)
    snprintf(the_beacon->repro, sizeof the_beacon->repro, "%s",
             line ? line : "");
}

static void plan_text(ora_obuf *o, const char *tag, uint64_t seed,
                      size_t gen_ops, ora_mix mix, int normal,
                      const struct ora_crash_plan *p);

/* The replay of workload w run whole, with no crash and a clean close (a
 * crash line with point=0 and pattern=keep): what the differential run,
 * the reference run and the sweep's own run do. */
static void beacon_plain(const ora_workload *w, int normal, int small) {
  if (!the_beacon)
    return;
  ora_crash_plan p;
  memset(&p, 0, sizeof p);
  p.fault_method = -1;
  p.pattern = ORA_CRASH_KEEP;
  p.small_snapshots = small;
  ora_obuf o = {0};
  plan_text(&o, "crash", w->seed, w->n, w->mix, normal, &p);
  beacon_repro(o.p ? (const char *)o.p : "");
  ora_obuf_free(&o);
}

static void beacon_op(uint64_t op) {
  if (the_beacon)
    __atomic_store_n(&the_beacon->op, op, __ATOMIC_RELAXED);
}

static void beacon_point(uint64_t point, int pattern) {
  if (the_beacon) {
    the_beacon->pattern = pattern;
    __atomic_store_n(&the_beacon->point, point, __ATOMIC_RELAXED);
  }
}

static void progress(ora_campaign *c, size_t wi, const char *phase) {
  if (the_beacon) {
    if (strncmp(the_beacon->phase, phase, sizeof the_beacon->phase)) {
      the_beacon->op = 0; /* what an earlier phase left is not this one's */
      the_beacon->point = 0;
    }
    snprintf(the_beacon->phase, sizeof the_beacon->phase, "%s", phase);
    ora_beat();
  }
  if (!c->progress)
    return;
  fprintf(stderr,
          "\rcampaign: workload %zu/%zu %-8s ops %" PRIu64
          " crash points %" PRIu64 " kills %" PRIu64 " divergences %" PRIu64
          "   ",
          wi + 1, c->workloads, phase, c->ops_run, c->crash_points,
          c->kills_run, c->divergences);
  fflush(stderr);
}

/* ---- one workload's reference ------------------------------------------ */

typedef struct wref {
  ora_campaign *c;
  const ora_workload *w;
  size_t n;
  int variant;    /* small snapshot threshold */
  uint8_t *bnd;   /* [n+1] position p (ops applied) is outside any tx */
  ora_obuf *res;  /* [n] result texts of the native reference run */
  ora_obuf *dump; /* [n+1] oracle dumps at boundaries */
  size_t *nslots_nat, *nslots_sql;            /* [n+1] */
  uint32_t nat_slots[ORA_WORKLOAD_MAX_SLOTS]; /* native reference's slots */
  uint32_t sql_slots[ORA_WORKLOAD_MAX_SLOTS];
  uint64_t vfs_ops;    /* N: VFS calls of the reference run, open to close */
  uint64_t *jtot;      /* [n+1] journal bytes the reference run had appended
                          at each boundary (monotonic across snapshots) */
  uint64_t *vfs_at;    /* [n+1] VFS calls of the reference run before op i
                          (vfs_at[n]: before the close) */
  uint64_t *dirop;     /* the calls right after each rename or unlink of the
                          reference run (ascending) */
  uint8_t *dirop_kind; /* 'r' or 'u' */
  size_t ndirop, dirop_cap;
  size_t chain_g; /* the generation of the chain running (0: first) */
  int64_t clock;  /* ms, ora_oracle_clock ctx for every run */
  size_t wi;      /* workload index in the campaign */
} wref;

/* An empty reference of w for campaign c; variant: small snapshots. */
static void wref_init(wref *r, ora_campaign *c, const ora_workload *w,
                      int variant) {
  memset(r, 0, sizeof *r);
  r->c = c;
  r->w = w;
  r->n = w->n;
  r->variant = variant;
}

static void wref_free(wref *r) {
  for (size_t i = 0; r->res && i < r->n; i++)
    ora_obuf_free(&r->res[i]);
  for (size_t i = 0; r->dump && i <= r->n; i++)
    ora_obuf_free(&r->dump[i]);
  free(r->res);
  free(r->dump);
  free(r->bnd);
  free(r->nslots_nat);
  free(r->nslots_sql);
  free(r->jtot);
  free(r->vfs_at);
  free(r->dirop);
  free(r->dirop_kind);
}

static void set_op_clock(wref *r, size_t i) {
  r->clock = CLOCK_EPOCH_MS + 1000 * (int64_t)(i + 1);
  beacon_op(i);
}

static void disk_options(wref *r, kj_options *o, const kj_vfs *vfs) {
  kj_options z = KJ_OPTIONS_INIT;
  *o = z;
  o->key = campaign_key;
  /* selftest_sync_off: 1 every store, 2 a chain's later generations. */
  int off = r->c->selftest_sync_off == 1 ||
            (r->c->selftest_sync_off == 2 && r->chain_g > 0);
  o->sync = off ? KJ_SYNC_OFF : r->c->normal ? KJ_SYNC_NORMAL : KJ_SYNC_FULL;
  o->vfs = vfs;
  o->clock = ora_oracle_clock;
  o->clock_ctx = &r->clock;
  o->segment_bytes = SEGMENT_BYTES;
  o->snapshot_threshold = r->variant ? SNAPSHOT_SMALL : 0;
  /* In the committing thread: a crash point is the n-th VFS call, the same
   * call in every run of the workload. (The SIGKILL and thread phases run
   * checkpoints in the background.) */
  o->checkpoint_inline = 1;
  o->sync_interval_bytes = SYNC_INTERVAL;
}

/* A backend walking the workload, with the runner's transaction rules: a
 * begin while a transaction is open, and a commit or rollback without one,
 * are no-ops. */
typedef struct walker {
  kj_backend *b;
  kj_tx *t;
  uint32_t slots[ORA_WORKLOAD_MAX_SLOTS];
  size_t nslots;
} walker;

static void walk_op(walker *k, const ora_wop *op, ora_obuf *res) {
  ora_beat();
  if (ora_wop_is_begin(op)) {
    if (k->t) {
      ora_obuf_addf(res, "begin skipped\n");
      return;
    }
    int rc = kj_backend_begin(k->b, &k->t);
    if (rc)
      k->t = NULL;
    ora_obuf_addf(res, "begin rc=%d\n", rc);
  } else if (ora_wop_is_commit(op)) {
    if (!k->t) {
      ora_obuf_addf(res, "commit skipped\n");
      return;
    }
    int rc = kj_backend_commit(k->t);
    k->t = NULL;
    ora_obuf_addf(res, "commit rc=%d\n", rc);
  } else if (ora_wop_is_rollback(op)) {
    if (!k->t) {
      ora_obuf_addf(res, "rollback skipped\n");
      return;
    }
    kj_backend_rollback(k->t);
    k->t = NULL;
    ora_obuf_addf(res, "rollback\n");
  } else {
    ora_wop_apply(op, k->b, k->t, k->slots, &k->nslots, res);
  }
}

static void walk_end(walker *k) {
  kj_backend_rollback(k->t);
  k->t = NULL;
  kj_backend_close(k->b);
  k->b = NULL;
}

static void divergence(ora_campaign *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void divergence(ora_campaign *c, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  c->divergences++;
  ora_obuf_addf(&c->report, "%s\n", line);
}

/* The largest boundary <= m. */
static size_t bnd_floor(const wref *r, size_t m) {
  while (m > 0 && !r->bnd[m])
    m--;
  return m;
}

static void record_dirop(void *arg, uint64_t op, int kind) {
  wref *r = arg;
  if (r->ndirop == r->dirop_cap) {
    size_t cap = r->dirop_cap ? 2 * r->dirop_cap : 64;
    uint64_t *v = realloc(r->dirop, cap * sizeof *v);
    uint8_t *k = realloc(r->dirop_kind, cap);
    if (v)
      r->dirop = v;
    if (k)
      r->dirop_kind = k;
    if (!v || !k)
      return; /* fewer points to choose from, nothing worse */
    r->dirop_cap = cap;
  }
  r->dirop[r->ndirop] = op + 1;
  r->dirop_kind[r->ndirop++] = (uint8_t)kind;
}

/* Build the reference: boundaries, oracle dumps, native reference results
 * and VFS operation count. KJ_OK or an error opening a backend. */
static int wref_build(wref *r, char **why) {
  size_t n = r->n;
  r->bnd = calloc(n + 1, 1);
  r->res = calloc(n ? n : 1, sizeof *r->res);
  r->dump = calloc(n + 1, sizeof *r->dump);
  r->nslots_nat = calloc(n + 1, sizeof *r->nslots_nat);
  r->nslots_sql = calloc(n + 1, sizeof *r->nslots_sql);
  r->jtot = calloc(n + 1, sizeof *r->jtot);
  r->vfs_at = calloc(n + 1, sizeof *r->vfs_at);
  if (!r->bnd || !r->res || !r->dump || !r->nslots_nat || !r->nslots_sql ||
      !r->jtot || !r->vfs_at)
    return KJ_ENOMEM;

  /* The oracle. */
  walker sq = {0};
  r->clock = CLOCK_EPOCH_MS;
  int rc = ora_sqlite_open(":memory:", r->c->normal, ora_oracle_clock,
                           &r->clock, &sq.b, why);
  if (rc)
    return rc;
  r->bnd[0] = 1;
  ora_workload_dump(sq.b, sq.slots, 0, &r->dump[0]);
  ora_obuf *sres = calloc(n ? n : 1, sizeof *sres);
  if (!sres) {
    walk_end(&sq);
    return KJ_ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    set_op_clock(r, i);
    walk_op(&sq, ora_workload_op(r->w, i), &sres[i]);
    r->c->ops_run++;
    r->nslots_sql[i + 1] = sq.nslots;
    if (!sq.t) {
      r->bnd[i + 1] = 1;
      r->clock = CLOCK_EPOCH_MS;
      ora_workload_dump(sq.b, sq.slots, sq.nslots, &r->dump[i + 1]);
    }
  }
  memcpy(r->sql_slots, sq.slots, sizeof sq.slots);
  walk_end(&sq);

  /* The native reference on disk through a fault VFS that never fails. */
  char *dir = mktemp_dir();
  ora_fault_vfs *fv = ora_fault_vfs_new(r->w->seed);
  if (!dir || !fv) {
    ora_fault_vfs_free(fv);
    rm_dir(dir);
    for (size_t i = 0; i < n; i++)
      ora_obuf_free(&sres[i]);
    free(sres);
    return KJ_ENOMEM;
  }
  kj_options o;
  disk_options(r, &o, ora_fault_vfs_get(fv));
  walker nt = {0};
  int diverged = 0;
  r->clock = CLOCK_EPOCH_MS;
  ora_fault_vfs_on_dirop(fv, record_dirop, r);
  rc = kj_backend_open(dir, &o, &nt.b, why);
  if (rc == KJ_OK) {
    uint64_t jt = 0, prev_jb = 0;
    for (size_t i = 0; i < n; i++) {
      set_op_clock(r, i);
      r->vfs_at[i] = ora_fault_vfs_ops(fv);
      walk_op(&nt, ora_workload_op(r->w, i), &r->res[i]);
      r->c->ops_run++;
      r->nslots_nat[i + 1] = nt.nslots;
      kj_stats st = KJ_STATS_INIT;
      if (kj_store_stats(kj_backend_store(nt.b), &st) == KJ_OK) {
        /* journal_bytes restarts after a snapshot */
        jt += st.journal_bytes >= prev_jb ? st.journal_bytes - prev_jb
                                          : st.journal_bytes;
        prev_jb = st.journal_bytes;
      }
      r->jtot[i + 1] = jt;
      if (!diverged && !text_eq(&r->res[i], &sres[i])) {
        diverged = 1;
        divergence(r->c,
                   "native on disk differs from the oracle: seed=%" PRIu64
                   " ops=%zu op_index=%zu: native \"%.*s\" oracle \"%.*s\"",
                   r->w->seed, n, i, (int)r->res[i].len, (char *)r->res[i].p,
                   (int)sres[i].len, (char *)sres[i].p);
      }
    }
    memcpy(r->nat_slots, nt.slots, sizeof nt.slots);
    r->vfs_at[n] = ora_fault_vfs_ops(fv);
    walk_end(&nt);
    ora_fault_vfs_on_dirop(fv, NULL, NULL);
    r->vfs_ops = ora_fault_vfs_ops(fv);
    /* A clean reopen holds the final state. */
    ora_fault_vfs_reset(fv);
    r->clock = CLOCK_EPOCH_MS;
    if (kj_backend_open(dir, &o, &nt.b, NULL) == KJ_OK) {
      /* The last boundary (a workload may end in an open transaction),
       * with the slots known there. */
      size_t last = bnd_floor(r, n);
      ora_obuf d = {0};
      ora_workload_dump(nt.b, r->nat_slots, r->nslots_nat[last], &d);
      if (!text_eq(&d, &r->dump[last]))
        divergence(r->c,
                   "clean reopen: state differs from the oracle: seed=%" PRIu64
                   " ops=%zu",
                   r->w->seed, n);
      ora_obuf_free(&d);
      kj_backend_close(nt.b);
    } else {
      divergence(r->c, "clean reopen failed: seed=%" PRIu64 " ops=%zu",
                 r->w->seed, n);
    }
  }
  ora_fault_vfs_free(fv);
  rm_dir(dir);
  for (size_t i = 0; i < n; i++)
    ora_obuf_free(&sres[i]);
  free(sres);
  return rc;
}

/* The state of b equals the oracle's at some boundary in [lo, hi]? */
static int state_in(wref *r, kj_backend *b, size_t lo, size_t hi,
                    size_t *match) {
  ora_obuf d = {0};
  size_t have = SIZE_MAX;
  int found = 0;
  r->clock = CLOCK_EPOCH_MS;
  for (size_t q = hi + 1; q-- > lo && !found;) {
    if (!r->bnd[q])
      continue;
    if (r->nslots_nat[q] != have) {
      have = r->nslots_nat[q];
      d.len = 0;
      ora_workload_dump(b, r->nat_slots, have, &d);
    }
    if (text_eq(&d, &r->dump[q])) {
      found = 1;
      *match = q;
    }
  }
  ora_obuf_free(&d);
  return found;
}

/* A run through fv: opens, walks until the first op whose result differs
 * from the reference, closes. Returns m, the ops that completed like the
 * reference (n when all did). */
typedef struct runstate {
  size_t cur_bnd; /* last boundary completed */
  size_t synced;  /* cur_bnd at the last successful sync */
  int open_rc;
  int failed_rc; /* status of op m (the first that differed), or 0 */
  int same_rc;   /* op m returned the reference's status, other output */
} runstate;

/* The status in a result text ("... rc=N ..."), or 0. */
static int text_rc(const ora_obuf *t) {
  if (!t->len)
    return 0;
  const char *p = strstr((const char *)t->p, "rc=");
  return p ? (int)strtol(p + 3, NULL, 10) : 0;
}

static int clear_status(int rc) {
  return rc == KJ_EIO || rc == KJ_ENOSPC || rc == KJ_EPOISONED;
}

/* The op that met the failure must say so clearly: an I/O status, never
 * a success with other outputs, nor another status. */
static void check_failed_op(wref *r, const runstate *s, size_t m,
                            const char *repro) {
  if (s->open_rc != KJ_OK) {
    if (!clear_status(s->open_rc))
      divergence(r->c, "%s: open failed with an unclear status %s", repro,
                 kj_strerror(s->open_rc));
    return;
  }
  if (m >= r->n)
    return;
  if (s->same_rc)
    divergence(r->c,
               "%s: op %zu returned its normal status with other outputs "
               "after an I/O failure",
               repro, m);
  else if (!clear_status(s->failed_rc))
    divergence(r->c, "%s: op %zu failed with an unclear status %s", repro, m,
               kj_strerror(s->failed_rc));
}

static void on_sync_cb(void *arg) {
  runstate *s = arg;
  s->synced = s->cur_bnd;
}

/* Run ops start..n-1 (start: a boundary the store in dir holds) through
 * fv; see runstate. */
/* Where a chain's generation dies, tied to the run: at an absolute VFS
 * call (kind 0: in the open, or never), at call off of op j (kind 1), or
 * at call off of the close (kind 2); point is the absolute call it was
 * in the run that recorded it. */
typedef struct chain_gen {
  int kind;
  size_t j;
  uint64_t off, point;
  int pattern;
} chain_gen;

/* run_from, also recording calls_at[m] (the VFS calls made before op m,
 * and before the close at [r->n]) when calls_at is not NULL, and arming
 * the death of arm (kind 1 or 2) when the run gets there. */
static size_t run_from_x(wref *r, const char *dir, ora_fault_vfs *fv,
                         runstate *s, size_t start, uint64_t *calls_at,
                         const chain_gen *arm);

static size_t run_from(wref *r, const char *dir, ora_fault_vfs *fv, runstate *s,
                       size_t start) {
  return run_from_x(r, dir, fv, s, start, NULL, NULL);
}

static size_t run_from_x(wref *r, const char *dir, ora_fault_vfs *fv,
                         runstate *s, size_t start, uint64_t *calls_at,
                         const chain_gen *arm) {
  kj_options o;
  disk_options(r, &o, ora_fault_vfs_get(fv));
  s->cur_bnd = s->synced = start;
  ora_fault_vfs_on_sync(fv, on_sync_cb, s);
  walker k = {0};
  /* The slots the reference had created by then, with the same ids. */
  memcpy(k.slots, r->nat_slots, sizeof k.slots);
  k.nslots = r->nslots_nat[start];
  r->clock = CLOCK_EPOCH_MS;
  s->open_rc = kj_backend_open(dir, &o, &k.b, NULL);
  s->failed_rc = s->same_rc = 0;
  size_t m = start;
  if (s->open_rc == KJ_OK) {
    ora_obuf res = {0};
    for (; m < r->n; m++) {
      uint64_t now = ora_fault_vfs_ops(fv);
      if (calls_at)
        calls_at[m] = now;
      if (arm && arm->kind == 1 && arm->j == m)
        ora_fault_vfs_set_crash_at(fv, now + arm->off);
      set_op_clock(r, m);
      res.len = 0;
      walk_op(&k, ora_workload_op(r->w, m), &res);
      r->c->ops_run++;
      if (!text_eq(&res, &r->res[m])) {
        s->failed_rc = text_rc(&res);
        s->same_rc = s->failed_rc == text_rc(&r->res[m]);
        break;
      }
      if (r->bnd[m + 1])
        s->cur_bnd = m + 1;
    }
    ora_obuf_free(&res);
    if (m == r->n) {
      uint64_t now = ora_fault_vfs_ops(fv);
      if (calls_at)
        calls_at[m] = now;
      if (arm && arm->kind == 2)
        ora_fault_vfs_set_crash_at(fv, now + arm->off);
    }
    walk_end(&k);
  }
  ora_fault_vfs_on_sync(fv, NULL, NULL);
  return m;
}

static size_t run_faulty(wref *r, const char *dir, ora_fault_vfs *fv,
                         runstate *s) {
  return run_from(r, dir, fv, s, 0);
}

/* Reopen cleanly through fv and check the state is in [lo, hi]. Returns
 * the boundary it holds, or SIZE_MAX (a divergence was added). */
static size_t check_recovered(wref *r, const char *dir, ora_fault_vfs *fv,
                              size_t lo, size_t hi, const char *repro) {
  ora_fault_vfs_reset(fv);
  kj_options o;
  disk_options(r, &o, ora_fault_vfs_get(fv));
  kj_backend *b = NULL;
  char *err = NULL;
  r->clock = CLOCK_EPOCH_MS;
  int rc = kj_backend_open(dir, &o, &b, &err);
  if (rc) {
    divergence(r->c, "%s: reopen failed: %s (%s)", repro, kj_strerror(rc),
               err ? err : "");
    kj_free(err);
    return SIZE_MAX;
  }
  size_t q = SIZE_MAX;
  if (!state_in(r, b, lo, hi, &q)) {
    divergence(r->c,
               "%s: recovered state matches no commit in [%zu, %zu] "
               "(lost acknowledged data or partial transaction)",
               repro, lo, hi);
    q = SIZE_MAX;
  }
  kj_backend_close(b);
  return q;
}

/* Under KJ_SYNC_NORMAL the store promises a sync every sync_interval_bytes
 * of journal: a power loss may lose the commits of at most that many
 * bytes, plus the frame that crossed it. q is the boundary recovered, m
 * the ops completed. */
static void check_normal_bound(wref *r, size_t q, size_t m, const char *repro) {
  size_t last = bnd_floor(r, m);
  if (q == SIZE_MAX || q >= last)
    return;
  uint64_t frame = 0;
  for (size_t b = q, p = q; b++ < last;)
    if (r->bnd[b]) {
      if (r->jtot[b] - r->jtot[p] > frame)
        frame = r->jtot[b] - r->jtot[p];
      p = b;
    }
  uint64_t lost = r->jtot[last] - r->jtot[q];
  if (lost > SYNC_INTERVAL + frame)
    divergence(r->c,
               "%s: NORMAL lost %" PRIu64 " journal bytes of acknowledged "
               "commits (boundaries %zu..%zu), more than the sync interval "
               "(%u) plus one frame (%" PRIu64 ")",
               repro, lost, q, last, SYNC_INTERVAL, frame);
}

static size_t in_flight_hi(const wref *r, size_t m) {
  return m < r->n && r->bnd[m + 1] ? m + 1 : m;
}

/* b. The crash sweep. One run of the workload through the fault VFS; at
 * the start of each chosen VFS call (the crash point) the run forks one
 * child per damage pattern. A child copies the store directory's durable
 * files to a directory of its own (ora_fault_vfs_fork_dir), dies at that
 * call (set_crash_at), lets the run finish failing, plays power loss with
 * its pattern, sometimes crashes the recovery too, then checks the
 * recovered state and sends its counters and report lines to the parent
 * through a pipe. The parent's run goes on untouched, so the sweep costs
 * one run plus one recovery per point instead of one run per point. */

#define MAX_JOBS 16

typedef struct kid {
  pid_t pid;
  int fd;
  char repro[320]; /* its crash line, for a hang report */
} kid;

typedef struct sweep {
  wref *r;
  ora_fault_vfs *fv;
  const char *dir;
  runstate *s;
  uint64_t npoints, next, fired;
  uint64_t *pts;   /* [npoints] the crash points, ascending */
  uint8_t *random; /* [npoints] 1: a point after a directory operation,
                      whose second child plays RANDOM */
  kid kids[MAX_JOBS];
  size_t nkids, jobs;
  /* In a child: */
  int child, pattern, crash_recovery, pipe_fd;
  uint64_t point, salt;
  char *cdir;
  uint64_t base_ops, base_points, base_div;
  size_t base_report;
} sweep;

/* The crash point of sample j (1-based VFS call index). */
static uint64_t sweep_point(const sweep *w, uint64_t j) {
  const ora_campaign *c = w->r->c;
  uint64_t n = w->r->vfs_ops, stride = w->npoints ? n / w->npoints : 1;
  if (c->crash_all || stride <= 1)
    return j + 1;
  /* Sampled points are spread evenly with a seeded jitter. */
  return 1 + j * stride + mix64(w->r->w->seed + j) % stride;
}

/* The crash line of the sweep's child for (point, pattern), without its
 * completed= count; the recovery's own crash point follows from the salt. */
static uint64_t sweep_rpoint(uint64_t point, int crash_recovery,
                             uint64_t salt) {
  return crash_recovery ? 1 + mix64(salt + point) % RECOVERY_CRASH_SPAN : 0;
}

static int sweep_repro(const sweep *w, uint64_t point, int pattern,
                       int crash_recovery, uint64_t salt, char *buf,
                       size_t cap) {
  const wref *r = w->r;
  return snprintf(
      buf, cap,
      "crash: seed=%" PRIu64 " ops=%zu mix=%s mode=%s "
      "snapshots=%s point=%" PRIu64 " pattern=%s "
      "recovery_crash=%" PRIu64 " salt=%" PRIu64,
      r->w->seed, r->n, mix_name(r->w), r->c->normal ? "normal" : "full",
      r->variant ? "small" : "default", point, pattern_name(pattern),
      sweep_rpoint(point, crash_recovery, salt), salt);
}

/* Read a child's results to the end and reap it. While it waits, the
 * beacon names the child's case: a child that hangs stops the beats. */
static void kid_collect(sweep *w, kid *k) {
  ora_campaign *c = w->r->c;
  ora_obuf in = {0};
  uint8_t buf[4096];
  char was[sizeof the_beacon->repro] = "";
  if (the_beacon) {
    memcpy(was, the_beacon->repro, sizeof was);
    beacon_repro(k->repro);
  }
  for (;;) {
    ssize_t got = read(k->fd, buf, sizeof buf);
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0)
      break;
    ora_obuf_add(&in, buf, (size_t)got);
  }
  close(k->fd);
  int st = 0;
  while (waitpid(k->pid, &st, 0) < 0 && errno == EINTR)
    ;
  if (the_beacon)
    beacon_repro(was);
  uint64_t head[3];
  /* The ready byte was read at the fork. */
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || in.len < sizeof head) {
    divergence(c,
               "crash: seed=%" PRIu64 " ops=%zu: a crash-point child died "
               "(status %d)",
               w->r->w->seed, w->r->n, st);
  } else {
    memcpy(head, in.p, sizeof head);
    c->ops_run += head[0];
    c->crash_points += head[1];
    c->divergences += head[2];
    if (in.len > sizeof head)
      ora_obuf_add(&c->report, in.p + sizeof head, in.len - sizeof head);
  }
  ora_obuf_free(&in);
}

static void kid_collect_oldest(sweep *w) {
  kid k = w->kids[0];
  memmove(w->kids, w->kids + 1, (w->nkids - 1) * sizeof *w->kids);
  w->nkids--;
  kid_collect(w, &k);
}

/* Fork the child for (point, pattern). Returns in the parent, and in the
 * child with w->child set (the run goes on there and fails at once). */
static void fork_one(sweep *w, uint64_t point, int pattern, int crash_recovery,
                     uint64_t salt) {
  while (w->nkids >= w->jobs)
    kid_collect_oldest(w);
  int fds[2];
  if (pipe(fds) != 0) {
    divergence(w->r->c, "crash: pipe failed: %s", strerror(errno));
    return;
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    divergence(w->r->c, "crash: fork failed: %s", strerror(errno));
    return;
  }
  if (pid > 0) {
    close(fds[1]);
    /* The run must not touch the directory until the child has its copy:
     * wait for the child's first byte. */
    char ready = 0;
    ssize_t got;
    while ((got = read(fds[0], &ready, 1)) < 0 && errno == EINTR)
      ;
    (void)got; /* a child that died is reported by kid_collect */
    w->kids[w->nkids].pid = pid;
    w->kids[w->nkids].fd = fds[0];
    sweep_repro(w, point, pattern, crash_recovery, salt,
                w->kids[w->nkids].repro, sizeof w->kids[w->nkids].repro);
    w->nkids++;
    return;
  }
  /* The child. */
  close(fds[0]);
  for (size_t i = 0; i < w->nkids; i++)
    close(w->kids[i].fd);
  w->nkids = 0;
  ora_campaign *c = w->r->c;
  w->child = 1;
  w->pipe_fd = fds[1];
  w->point = point;
  w->pattern = pattern;
  w->crash_recovery = crash_recovery;
  w->salt = salt;
  w->base_ops = c->ops_run;
  w->base_points = c->crash_points;
  w->base_div = c->divergences;
  w->base_report = c->report.len;
  ora_fault_vfs_on_op(w->fv, NULL, NULL);
  w->cdir = mktemp_dir();
  if (!w->cdir || ora_fault_vfs_fork_dir(w->fv, w->dir, w->cdir) != KJ_OK)
    _exit(5);
  if (write(w->pipe_fd, "r", 1) != 1)
    _exit(6);
  ora_fault_vfs_set_crash_at(w->fv, point);
  ora_fault_vfs_reseed(w->fv, mix64(w->r->w->seed ^ salt));
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* The sweep's points: the sampled ones (or all), and, unless all are
 * swept, up to DIROP_POINTS of the calls right after a rename or an
 * unlink of the reference run, spread over them, unlinks first: there a
 * missing directory sync shows, when power loss keeps one directory
 * operation and loses another (RANDOM). -1: out of memory. */
static int sweep_plan(sweep *w) {
  const wref *r = w->r;
  size_t cap = (size_t)w->npoints + DIROP_POINTS, n = 0;
  w->pts = malloc((cap ? cap : 1) * sizeof *w->pts);
  w->random = calloc(cap ? cap : 1, 1);
  if (!w->pts || !w->random)
    return -1;
  for (uint64_t j = 0; j < w->npoints; j++)
    w->pts[n++] = sweep_point(w, j);
  if (!r->c->crash_all && w->npoints) {
    size_t nu = 0;
    for (size_t i = 0; i < r->ndirop; i++)
      nu += r->dirop_kind[i] == 'u';
    size_t want_u = nu < DIROP_POINTS ? nu : DIROP_POINTS;
    size_t left = DIROP_POINTS - want_u, nr = r->ndirop - nu;
    size_t want_r = nr < left ? nr : left;
    for (int pass = 0; pass < 2; pass++) {
      size_t have = pass ? nr : nu, want = pass ? want_r : want_u, k = 0;
      for (size_t i = 0; i < r->ndirop && want; i++) {
        if ((r->dirop_kind[i] == 'u') == pass)
          continue;
        if (k++ * want % have < want && r->dirop[i] <= r->vfs_ops) {
          w->random[n] = 1;
          w->pts[n++] = r->dirop[i];
        }
      }
    }
  }
  /* Sort (flags along), then drop repeats, keeping a RANDOM flag. */
  uint64_t *key = malloc((n ? n : 1) * 2 * sizeof *key);
  if (!key)
    return -1;
  for (size_t i = 0; i < n; i++) {
    key[2 * i] = w->pts[i];
    key[2 * i + 1] = w->random[i];
  }
  qsort(key, n, 2 * sizeof *key, cmp_u64);
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    if (m && w->pts[m - 1] == key[2 * i]) {
      w->random[m - 1] |= (uint8_t)key[2 * i + 1];
      continue;
    }
    w->pts[m] = key[2 * i];
    w->random[m++] = (uint8_t)key[2 * i + 1];
  }
  free(key);
  w->npoints = m;
  return 0;
}

static void sweep_on_op(void *arg, uint64_t op) {
  sweep *w = arg;
  if (w->child || w->next >= w->npoints || w->pts[w->next] != op)
    return;
  uint64_t j = w->next++, p = op;
  w->fired++;
  fork_one(w, p, ORA_CRASH_DROP, 0, j * 8 + 0);
  if (w->child)
    return;
  fork_one(w, p,
           w->random[j] ? ORA_CRASH_RANDOM : ORA_CRASH_RANDOM + (int)(j % 3),
           j % 3 == 1, j * 8 + 1);
  if (w->child)
    return;
  if (j % 4 == 0)
    fork_one(w, p, ORA_CRASH_KEEP, 1, j * 8 + 2);
  if (w->child)
    return;
  if (j % 8 == 0)
    progress(w->r->c, w->r->wi, "crash");
}

/* In a child, after its run: power loss, recovery, the check; never
 * returns. */
static void sweep_child_finish(sweep *w, size_t m) {
  wref *r = w->r;
  ora_campaign *c = r->c;
  const runstate *s = w->s;
  ora_fault_vfs *fv = w->fv;
  beacon_point(w->point, w->pattern);
  ora_fault_vfs_crash(fv, w->pattern);
  uint64_t rpoint = sweep_rpoint(w->point, w->crash_recovery, w->salt);
  if (w->crash_recovery) {
    /* Crash the recovery too, then crash again. */
    ora_fault_vfs_reset(fv);
    ora_fault_vfs_set_crash_at(fv, rpoint);
    kj_options o;
    disk_options(r, &o, ora_fault_vfs_get(fv));
    kj_backend *b = NULL;
    r->clock = CLOCK_EPOCH_MS;
    if (kj_backend_open(w->cdir, &o, &b, NULL) == KJ_OK)
      kj_backend_close(b);
    ora_fault_vfs_crash(fv, (w->pattern + 2) % ORA_CRASH_NPATTERNS);
  }
  size_t hi = s->open_rc ? 0 : in_flight_hi(r, m);
  /* KEEP loses nothing the OS had: a process crash, where NORMAL too
   * keeps every acknowledged commit. */
  size_t lo =
      c->normal && w->pattern != ORA_CRASH_KEEP ? s->synced : bnd_floor(r, m);
  if (lo > hi)
    lo = hi;
  char repro[320];
  int len = sweep_repro(w, w->point, w->pattern, w->crash_recovery, w->salt,
                        repro, sizeof repro);
  if (len > 0 && (size_t)len < sizeof repro)
    snprintf(repro + len, sizeof repro - (size_t)len, " completed=%zu", m);
  check_failed_op(r, s, m, repro);
  size_t q = check_recovered(r, w->cdir, fv, lo, hi, repro);
  if (c->normal && w->pattern != ORA_CRASH_KEEP)
    check_normal_bound(r, q, m, repro);

  c->crash_points++;
  uint64_t head[3] = {c->ops_run - w->base_ops,
                      c->crash_points - w->base_points,
                      c->divergences - w->base_div};
  ora_obuf out = {0};
  ora_obuf_add(&out, head, sizeof head);
  if (c->report.len > w->base_report) /* report.p may still be NULL */
    ora_obuf_add(&out, c->report.p + w->base_report,
                 c->report.len - w->base_report);
  size_t off = 0;
  while (off < out.len) {
    ssize_t put = write(w->pipe_fd, out.p + off, out.len - off);
    if (put < 0 && errno == EINTR)
      continue;
    if (put <= 0)
      _exit(6);
    off += (size_t)put;
  }
  close(w->pipe_fd);
  rm_dir(w->cdir);
  _exit(0);
}

static void crash_sweep(wref *r, uint64_t npoints) {
  ora_campaign *c = r->c;
  char *dir = mktemp_dir();
  ora_fault_vfs *fv = ora_fault_vfs_new(r->w->seed);
  if (!dir || !fv) {
    ora_fault_vfs_free(fv);
    rm_dir(dir);
    divergence(c, "crash: seed=%" PRIu64 ": out of memory", r->w->seed);
    return;
  }
  runstate s;
  sweep w;
  memset(&w, 0, sizeof w);
  w.r = r;
  w.fv = fv;
  w.dir = dir;
  w.s = &s;
  w.npoints = npoints;
  w.jobs = c->jobs < 1 ? 1 : c->jobs > MAX_JOBS ? MAX_JOBS : c->jobs;
  if (sweep_plan(&w) != 0) {
    ora_fault_vfs_free(fv);
    rm_dir(dir);
    divergence(c, "crash: seed=%" PRIu64 ": out of memory", r->w->seed);
    return;
  }
  npoints = w.npoints;
  ora_fault_vfs_on_op(fv, sweep_on_op, &w);
  size_t m = run_faulty(r, dir, fv, &s);
  if (w.child)
    sweep_child_finish(&w, m);
  ora_fault_vfs_on_op(fv, NULL, NULL);
  while (w.nkids)
    kid_collect_oldest(&w);
  /* The run repeats the reference, so it meets every chosen point. */
  if (m != r->n || w.fired != npoints)
    divergence(c,
               "crash: seed=%" PRIu64 " ops=%zu: the sweep run completed %zu "
               "ops and met %" PRIu64 " of %" PRIu64 " crash points",
               r->w->seed, r->n, m, w.fired, npoints);
  free(w.pts);
  free(w.random);
  ora_fault_vfs_free(fv);
  rm_dir(dir);
}

/* c. One Nth-operation fault. */
static void fault_one(wref *r, int method, uint64_t nth, int status,
                      int persistent) {
  ora_campaign *c = r->c;
  char *dir = mktemp_dir();
  ora_fault_vfs *fv = ora_fault_vfs_new(r->w->seed + nth);
  if (!dir || !fv) {
    ora_fault_vfs_free(fv);
    rm_dir(dir);
    return;
  }
  runstate s;
  ora_fault_vfs_fail(fv, method, nth, status, persistent);
  char repro[320];
  int len =
      snprintf(repro, sizeof repro,
               "fault: seed=%" PRIu64 " ops=%zu mix=%s mode=%s snapshots=%s "
               "method=%s nth=%" PRIu64 " status=%s %s",
               r->w->seed, r->n, mix_name(r->w), c->normal ? "normal" : "full",
               r->variant ? "small" : "default", fault_name(method), nth,
               status_name(status), persistent ? "persistent" : "once");
  beacon_repro(repro);
  size_t m = run_faulty(r, dir, fv, &s);
  if (len > 0 && (size_t)len < sizeof repro)
    snprintf(repro + len, sizeof repro - (size_t)len, " completed=%zu", m);
  check_failed_op(r, &s, m, repro);
  /* No power loss: the OS keeps every write. */
  check_recovered(r, dir, fv, bnd_floor(r, m),
                  s.open_rc ? 0 : in_flight_hi(r, m), repro);
  ora_fault_vfs_free(fv);
  rm_dir(dir);
}

/* d. SIGKILL runs. */
static void child_run(wref *r, const char *dir, int fd) {
  kj_options o;
  disk_options(r, &o, NULL);
  o.sync = KJ_SYNC_FULL;
  /* Background checkpoints, often: kills land while one runs. */
  o.snapshot_threshold = SNAPSHOT_SMALL;
  o.checkpoint_inline = 0;
  walker k = {0};
  r->clock = CLOCK_EPOCH_MS;
  if (kj_backend_open(dir, &o, &k.b, NULL) != KJ_OK)
    _exit(2);
  ora_obuf res = {0};
  for (size_t i = 0; i < r->n; i++) {
    set_op_clock(r, i);
    res.len = 0;
    walk_op(&k, ora_workload_op(r->w, i), &res);
    if (!text_eq(&res, &r->res[i]))
      _exit(3);
    if (r->bnd[i + 1]) {
      uint32_t p = (uint32_t)(i + 1);
      if (write(fd, &p, sizeof p) != (ssize_t)sizeof p)
        _exit(4);
    }
  }
  ora_obuf_free(&res);
  walk_end(&k);
  _exit(0);
}

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t now_ms(void) { return now_us() / 1000; }

static void kill_as_crash(wref *r, size_t acked, size_t hi);
static void plan_text(ora_obuf *o, const char *tag, uint64_t seed,
                      size_t gen_ops, ora_mix mix, int normal,
                      const ora_crash_plan *p);
static int plan_check(wref *r, const ora_crash_plan *plan, const char *tag,
                      size_t gen_ops, const char *keep);

/* One child run; delay_us < 0: let it finish. Returns the time from the
 * fork to the last acknowledgement read. */
static int64_t kill_one(wref *r, int64_t delay_us, uint64_t salt, int *killed) {
  ora_campaign *c = r->c;
  *killed = 0;
  /* The kill runs use their own reference under FULL on the real VFS; the
   * result texts and dumps are those of the sweep. */
  char *dir = mktemp_dir();
  int fds[2];
  if (!dir || pipe(fds) != 0) {
    rm_dir(dir);
    return 0;
  }
  fflush(NULL);
  int64_t t0 = now_us();
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    rm_dir(dir);
    return 0;
  }
  if (pid == 0) {
    close(fds[0]);
    child_run(r, dir, fds[1]);
  }
  close(fds[1]);
  if (delay_us >= 0) {
    struct timespec ts = {(time_t)(delay_us / 1000000),
                          (long)(delay_us % 1000000) * 1000};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
  }
  /* Read the acknowledgements as they come (until the child's end), so
   * that a whole run measures the time to its last one. */
  int64_t elapsed = 0;
  size_t acked = 0;
  uint32_t p;
  for (;;) {
    ssize_t got = read(fds[0], &p, sizeof p);
    if (got < 0 && errno == EINTR)
      continue;
    if (got != (ssize_t)sizeof p)
      break;
    acked = p;
    elapsed = now_us() - t0;
  }
  close(fds[0]);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
    ;
  char repro[200];
  snprintf(repro, sizeof repro,
           "sigkill: seed=%" PRIu64 " ops=%zu delay_us=%" PRId64
           " salt=%" PRIu64 " acked=%zu",
           r->w->seed, r->n, delay_us, salt, acked);
  if (WIFEXITED(st) && WEXITSTATUS(st) != 0) {
    divergence(c, "%s: child failed (exit %d)", repro, WEXITSTATUS(st));
  } else if (WIFSIGNALED(st) && (delay_us < 0 || WTERMSIG(st) != SIGKILL)) {
    /* Only the SIGKILL sent above is a planned death: a child that
     * crashed on its own (a segfault, an abort) is the engine's fault,
     * even when the store it left behind recovers. */
    divergence(c, "%s: child died of signal %d (%s)%s", repro, WTERMSIG(st),
               strsignal(WTERMSIG(st)),
               delay_us < 0 ? " in a run that was not killed" : "");
  } else {
    size_t hi = acked;
    while (hi < r->n && !r->bnd[hi + 1])
      hi++;
    if (hi < r->n)
      hi++;
    if (WIFEXITED(st))
      hi = acked; /* finished: everything acknowledged */
    kj_options o;
    disk_options(r, &o, NULL);
    o.sync = KJ_SYNC_FULL;
    o.snapshot_threshold = 0;
    kj_backend *b = NULL;
    char *err = NULL;
    r->clock = CLOCK_EPOCH_MS;
    int rc = kj_backend_open(dir, &o, &b, &err);
    if (rc) {
      divergence(c, "%s: reopen failed: %s (%s)", repro, kj_strerror(rc),
                 err ? err : "");
      kj_free(err);
      if (c->shrinks == 0)
        kill_as_crash(r, acked, hi);
    } else {
      size_t q;
      int bad = !state_in(r, b, acked, hi, &q);
      if (bad)
        divergence(c, "%s: recovered state matches no commit in [%zu, %zu]",
                   repro, acked, hi);
      kj_backend_close(b);
      if (bad && c->shrinks == 0)
        kill_as_crash(r, acked, hi);
    }
  }
  if (delay_us >= 0)
    c->kills_run++;
  *killed = WIFSIGNALED(st);
  rm_dir(dir);
  return elapsed;
}

/* ---- f. chained crashes ------------------------------------------------ */

/* Crash, recover, go on working on the recovered store, crash again, for
 * c->generations generations: a bug in where appends resume after a
 * recovery (a frame overwritten, a sequence number reused, a segment
 * reopened at the wrong offset) shows only in the recovery after next.
 * Generation g runs the workload on from the boundary q the previous
 * recovery held (its results must be the reference's: the same ops on
 * the same state), dies at a seeded VFS call, and the recovery must hold
 * a boundary in [lo, hi] as in the sweep. */
/* Most generations a chain line may name. */
#define CHAIN_MAX_GENS 32u

/* One chain on r: its generations' deaths derived from salt (fixed NULL),
 * or the nfixed of fixed (their kind, op and offset; kind 0 the absolute
 * point). rec, when not NULL, gets each generation's death as it fell
 * (up to CHAIN_MAX_GENS). gen_ops and keep name the workload in the lines
 * (the length it was generated with, and a keep= list or NULL). Returns
 * the generations run. */
static size_t chain_run(wref *r, uint64_t salt, const chain_gen *fixed,
                        size_t nfixed, chain_gen *rec, size_t gen_ops,
                        const char *keep) {
  ora_campaign *c = r->c;
  char *dir = mktemp_dir();
  ora_fault_vfs *fv = ora_fault_vfs_new(mix64(r->w->seed ^ salt));
  uint64_t *calls_at = calloc(r->n + 1, sizeof *calls_at);
  size_t g = 0, ran = 0;
  if (!dir || !fv || !calls_at) {
    free(calls_at);
    ora_fault_vfs_free(fv);
    rm_dir(dir);
    return 0;
  }
  size_t start = 0;
  char trail[400] = "";
  size_t tl = 0;
  /* Odd chains check each recovery on a copy of the crashed directory, so
   * that the next generation's open is the one that recovers (cuts a torn
   * tail, removes what follows it) and goes on writing, as a restarted
   * process does; and they crash it early, while what that recovery
   * changed may not be durable yet. */
  int restart = (int)(salt & 1);
  size_t gens = fixed ? nfixed : c->generations;
  char head[240];
  int hl = snprintf(head, sizeof head,
                    "chain: seed=%" PRIu64 " ops=%zu mix=%s mode=%s "
                    "snapshots=%s salt=%" PRIu64,
                    r->w->seed, gen_ops, mix_name(r->w),
                    c->normal ? "normal" : "full",
                    r->variant ? "small" : "default", salt);
  if (keep && hl > 0 && (size_t)hl < sizeof head)
    snprintf(head + hl, sizeof head - (size_t)hl, " keep=%s", keep);
  beacon_repro(head);
  for (; g < gens && start < r->n; g++) {
    chain_gen d;
    memset(&d, 0, sizeof d);
    if (fixed) {
      d = fixed[g];
    } else {
      uint64_t h = mix64(salt * 1000003u + g);
      /* The calls left: the reference's, in proportion to the ops left. */
      uint64_t span = r->vfs_ops * (r->n - start) / (r->n ? r->n : 1) + 1;
      if (restart && g && span > CHAIN_EARLY_CALLS)
        span = CHAIN_EARLY_CALLS;
      d.point = 1 + h % span;
      d.pattern = (int)((h >> 32) % ORA_CRASH_NPATTERNS);
    }
    int pattern = d.pattern;
    ora_fault_vfs_reset(fv);
    if (d.kind == 0)
      ora_fault_vfs_set_crash_at(fv, d.point);
    runstate st;
    memset(calls_at, 0, (r->n + 1) * sizeof *calls_at);
    r->chain_g = g;
    size_t m = run_from_x(r, dir, fv, &st, start, calls_at, d.kind ? &d : NULL);
    r->chain_g = 0;
    /* Where the death fell, tied to the run (the shrinker's anchor). */
    uint64_t point = d.kind == 1   ? calls_at[d.j] + d.off
                     : d.kind == 2 ? calls_at[r->n] + d.off
                                   : d.point;
    chain_gen fell = {0, 0, 0, point, pattern};
    if (ora_fault_vfs_dead(fv) && !st.open_rc && point > calls_at[start]) {
      if (m == r->n && point > calls_at[r->n]) {
        fell.kind = 2;
        fell.off = point - calls_at[r->n];
      } else {
        /* The op whose calls hold it: op m, or an earlier one that still
         * returned the reference's result (a call whose failure it
         * tolerates). */
        size_t j = m < r->n ? m : r->n - 1;
        while (j > start && calls_at[j] >= point)
          j--;
        if (calls_at[j] < point) {
          fell.kind = 1;
          fell.j = j;
          fell.off = point - calls_at[j];
        }
      }
    }
    if (rec && g < CHAIN_MAX_GENS)
      rec[g] = fell;
    ran = g + 1;
    ora_fault_vfs_crash(fv, pattern);
    if (tl < sizeof trail)
      tl += (size_t)snprintf(trail + tl, sizeof trail - tl, "%s%" PRIu64 "/%s",
                             g ? "," : "", point, pattern_name(pattern));
    size_t hi = st.open_rc ? start : in_flight_hi(r, m);
    size_t lo =
        c->normal && pattern != ORA_CRASH_KEEP ? st.synced : bnd_floor(r, m);
    if (lo < start)
      lo = start;
    if (lo > hi)
      lo = hi;
    char repro[800];
    snprintf(repro, sizeof repro,
             "%s generation=%zu from=%zu crashes=%s completed=%zu", head, g + 1,
             start, trail, m);
    check_failed_op(r, &st, m, repro);
    size_t q = SIZE_MAX;
    if (restart && g + 1 < gens) {
      char *copy = mktemp_dir();
      if (copy && ora_fault_vfs_fork_dir(fv, dir, copy) == KJ_OK)
        q = check_recovered(r, copy, fv, lo, hi, repro);
      else
        divergence(c, "%s: could not copy the crashed store", repro);
      rm_dir(copy);
    } else {
      q = check_recovered(r, dir, fv, lo, hi, repro);
    }
    if (c->normal && pattern != ORA_CRASH_KEEP)
      check_normal_bound(r, q, m, repro);
    c->chain_points++;
    if (q == SIZE_MAX)
      break;
    start = q;
  }
  free(calls_at);
  ora_fault_vfs_free(fv);
  rm_dir(dir);
  return ran;
}

static void chain_one(wref *r, uint64_t salt) {
  chain_run(r, salt, NULL, 0, NULL, r->n, NULL);
}

/* ---- e. concurrent writers under crash ------------------------------- */

/* c->threads writer threads commit at once on one native store (FULL,
 * small segments) through the fault VFS, whose syncs last a while with
 * its lock released, so that frames are written while a group commit's
 * sync runs. Thread t commits TW_COMMITS transactions, each putting its
 * counter i under "t<t>" and a row "t<t>/<i>"; a value is (t, i) and
 * padding derived from them. The process dies right after the k-th sync
 * returns (or at a sampled VFS call), power loss follows, and the reopened
 * store must hold, for every thread, a counter v with acked <= v <= tried
 * (every acknowledged commit kept, none invented) and exactly the rows
 * 1..v. Thread interleavings vary from run to run: a reproducer names the
 * schedule, which finds the same bug again with high probability, not
 * certainty.
 *
 * Other schedules fail the f-th sync with KJ_EIO instead, a failure that
 * lasts TW_FAULT_USEC: every other writer's commit is then written and
 * waiting for that sync, and each must return a clear failure (no thread
 * may sleep on: the watchdog reports it as a hang), and the store after a
 * crash still holds what the writers' acknowledgements allow. */
#define TW_COMMITS 24u
#define TW_MAX 16u
#define TW_SYNC_USEC 200u
#define TW_VLEN 150u
#define TW_FAULT_USEC 20000u

/* One schedule: n threads of `commits` commits each; the process dies
 * after the k-th sync (k > 0) or at VFS call point, or the f-th sync
 * fails (fail > 0); then a crash with pattern. */
typedef struct tcase {
  uint64_t seed, k, point, fail;
  unsigned fail_usec; /* how long the failing sync takes (0: at once) */
  unsigned n;
  size_t commits;
  int pattern;
} tcase;

typedef struct twriter {
  kj_store *s;
  unsigned id;
  size_t commits; /* to try: TW_COMMITS, fewer in a shrunk case */
  size_t tried, acked;
  int rc;
} twriter;

static void tw_value(unsigned t, size_t i, uint8_t *v) {
  for (unsigned k = 0; k < TW_VLEN; k++)
    v[k] = (uint8_t)(mix64((uint64_t)t << 32 ^ i ^ (uint64_t)k << 48) >> 56);
  memcpy(v, &i, sizeof i);
}

static void *tw_main(void *arg) {
  twriter *w = arg;
  char key[32];
  uint8_t val[TW_VLEN];
  for (size_t i = 1; i <= w->commits; i++) {
    kj_txn *t = NULL;
    w->tried = i;
    int rc = kj_txn_begin(w->s, 0, &t);
    tw_value(w->id, i, val);
    int kl = snprintf(key, sizeof key, "t%u", w->id);
    if (!rc)
      rc = kj_put(w->s, t, 1, key, (size_t)kl, val, sizeof val);
    kl = snprintf(key, sizeof key, "t%u/%06zu", w->id, i);
    if (!rc)
      rc = kj_put(w->s, t, 2, key, (size_t)kl, val, 8);
    if (!rc) {
      rc = kj_txn_commit(t); /* frees t */
    } else {
      kj_txn_rollback(t);
    }
    ora_beat();
    if (rc) {
      w->rc = rc;
      return NULL;
    }
    w->acked = i;
  }
  return NULL;
}

static void tw_options(kj_options *o, const kj_vfs *vfs, int64_t *clock) {
  kj_options z = KJ_OPTIONS_INIT;
  *o = z;
  o->key = campaign_key;
  o->sync = KJ_SYNC_FULL;
  o->vfs = vfs;
  o->clock = ora_oracle_clock;
  o->clock_ctx = clock;
  o->segment_bytes = SEGMENT_BYTES;
  /* Background checkpoints, often: crashes at the writers' syncs land
   * while one runs, and its own syncs are crash points too. */
  o->snapshot_threshold = SNAPSHOT_SMALL;
}

/* Does store s hold what the writers' acknowledgements allow: for each
 * thread, its counter between the commits acknowledged and those tried,
 * and exactly the rows of the commits up to it? Adds a divergence (with
 * repro, and where: "recovered" or "live") when not. */
static void tw_check_store(ora_campaign *c, kj_store *s, const twriter *w,
                           unsigned n, const char *repro, const char *where) {
  for (unsigned t = 0; t < n; t++) {
    char key[32];
    uint8_t want[TW_VLEN];
    int kl = snprintf(key, sizeof key, "t%u", t);
    void *v = NULL;
    size_t vl = 0;
    size_t got = 0;
    int rc = kj_get(s, NULL, 1, key, (size_t)kl, &v, &vl);
    if (rc == KJ_OK && vl == TW_VLEN) {
      memcpy(&got, v, sizeof got);
      tw_value(t, got, want);
      if (memcmp(v, want, TW_VLEN))
        rc = KJ_ECORRUPT;
    } else if (rc == KJ_OK) {
      rc = KJ_ECORRUPT;
    }
    kj_free(v);
    if (rc != KJ_OK && rc != KJ_NOTFOUND) {
      divergence(c, "%s: %s: thread %u's counter reads %s", repro, where, t,
                 kj_strerror(rc));
      break;
    }
    if (got < w[t].acked || got > w[t].tried) {
      divergence(c,
                 "%s: %s: thread %u: commit %zu, but %zu were "
                 "acknowledged and %zu tried (an acknowledged commit lost, or "
                 "one invented)",
                 repro, where, t, got, w[t].acked, w[t].tried);
      break;
    }
    size_t rows = 0, bad = 0;
    for (size_t i = 1; i <= w[t].commits; i++) {
      kl = snprintf(key, sizeof key, "t%u/%06zu", t, i);
      v = NULL;
      rc = kj_get(s, NULL, 2, key, (size_t)kl, &v, &vl);
      kj_free(v);
      rows += rc == KJ_OK;
      bad += (rc == KJ_OK) != (i <= got);
    }
    if (bad) {
      divergence(c,
                 "%s: %s: thread %u: counter %zu but %zu of its rows, not "
                 "rows 1..%zu (a commit split or lost in the middle)",
                 repro, where, t, got, rows, got);
      break;
    }
  }
}

/* The recovered store in dir holds what the writers' acknowledgements
 * allow? Adds a divergence (with repro) when not. */
static void tw_check(ora_campaign *c, const char *dir, ora_fault_vfs *fv,
                     const twriter *w, unsigned n, const char *repro) {
  ora_fault_vfs_reset(fv);
  int64_t clock = CLOCK_EPOCH_MS;
  kj_options o;
  tw_options(&o, ora_fault_vfs_get(fv), &clock);
  kj_store *s = NULL;
  char *err = NULL;
  int rc = kj_store_open(dir, &o, &s, &err);
  if (rc) {
    divergence(c, "%s: reopen failed: %s (%s)", repro, kj_strerror(rc),
               err ? err : "");
    kj_free(err);
    return;
  }
  tw_check_store(c, s, w, n, repro, "recovered");
  kj_store_close(s);
}

static void tw_line(char *buf, size_t cap, const tcase *t) {
  snprintf(buf, cap,
           "threads: seed=%" PRIu64
           " threads=%u commits=%zu die_after_sync=%" PRIu64 " point=%" PRIu64
           " fail_sync=%" PRIu64 " fail_usec=%u pattern=%s",
           t->seed, t->n, t->commits, t->k, t->point, t->fail, t->fail_usec,
           pattern_name(t->pattern));
}

/* Run schedule tc; *calls_seen (when not NULL): the VFS calls it made. */
static void tw_one(ora_campaign *c, const tcase *tc, uint64_t *calls_seen) {
  uint64_t seed = tc->seed, k = tc->k, point = tc->point;
  unsigned n = tc->n;
  int pattern = tc->pattern;
  char *dir = mktemp_dir();
  ora_fault_vfs *fv =
      ora_fault_vfs_new(mix64(seed ^ (k << 20) ^ point ^ (tc->fail << 40)));
  if (!dir || !fv) {
    ora_fault_vfs_free(fv);
    rm_dir(dir);
    return;
  }
  ora_fault_vfs_sync_window(fv, TW_SYNC_USEC);
  int64_t clock = CLOCK_EPOCH_MS;
  kj_options o;
  tw_options(&o, ora_fault_vfs_get(fv), &clock);
  if (c->selftest_sync_off == 1)
    o.sync = KJ_SYNC_OFF;
  kj_store *s = NULL;
  twriter w[TW_MAX];
  memset(w, 0, sizeof w);
  char repro[256];
  tw_line(repro, sizeof repro, tc);
  beacon_repro(repro);
  if (kj_store_open(dir, &o, &s, NULL) != KJ_OK) {
    divergence(c, "%s: could not create the store", repro);
    ora_fault_vfs_free(fv);
    rm_dir(dir);
    return;
  }
  ora_fault_vfs_reset(fv); /* count from here */
  if (k)
    ora_fault_vfs_die_after_syncs(fv, k);
  else if (point)
    ora_fault_vfs_set_crash_at(fv, point);
  if (tc->fail) {
    ora_fault_vfs_fail(fv, ORA_FAULT_SYNC, tc->fail, KJ_EIO, 0);
    ora_fault_vfs_fault_window(fv, tc->fail_usec);
  }
  pthread_t th[TW_MAX];
  unsigned started = 0;
  for (unsigned t = 0; t < n; t++) {
    w[t].s = s;
    w[t].id = t;
    w[t].commits = tc->commits;
    if (pthread_create(&th[t], NULL, tw_main, &w[t]) != 0)
      break;
    started++;
  }
  for (unsigned t = 0; t < started; t++)
    pthread_join(th[t], NULL);
  if (calls_seen)
    *calls_seen = ora_fault_vfs_ops(fv);
  /* After a failed sync the handle is poisoned but still answers reads:
   * its memory must hold every acknowledged commit and none that failed
   * halfway (the undo of the group commits that were not durable). */
  if (tc->fail && !k && !point)
    tw_check_store(c, s, w, started, repro, "live, after the failed sync");
  kj_store_close(s);
  for (unsigned t = 0; t < started; t++)
    if (w[t].rc && !clear_status(w[t].rc) && w[t].rc != KJ_EPOISONED) {
      divergence(c,
                 "%s: thread %u's commit %zu failed with an unclear status %s",
                 repro, t, w[t].tried, kj_strerror(w[t].rc));
      break;
    }
  ora_fault_vfs_crash(fv, pattern);
  tw_check(c, dir, fv, w, started, repro);
  c->thread_points++;
  ora_fault_vfs_free(fv);
  rm_dir(dir);
}

/* The concurrent-writer crash runs of one workload seed. */
static void thread_sweep(ora_campaign *c, uint64_t seed, size_t points) {
  unsigned n = c->threads > TW_MAX ? TW_MAX : (unsigned)c->threads;
  if (n < 2 || !points)
    return;
  /* A run that never dies: how many VFS calls a run makes. */
  uint64_t calls = 0;
  tcase base = {seed, 0, 0, 0, 0, n, TW_COMMITS, ORA_CRASH_KEEP};
  tw_one(c, &base, &calls);
  /* Group commits make fewer syncs than commits: aim within the first. */
  uint64_t syncs = n * TW_COMMITS / 2 + 1;
  for (size_t j = 0; j < points; j++) {
    uint64_t h = mix64(seed * 7919 + j);
    tcase t = base;
    t.pattern = j % 3 == 2 ? ORA_CRASH_RANDOM : ORA_CRASH_DROP;
    if (j % 4 == 3)
      t.point = 1 + h % (calls ? calls : 1);
    else if (j % 4 == 1) {
      /* A failure that takes a while, as a failing device's sync does, so
       * that waiters queue behind it. */
      t.fail = 2 + h % (syncs / 2);
      t.fail_usec = TW_FAULT_USEC;
    } else
      t.k = 1 + h % syncs;
    tw_one(c, &t, NULL);
  }
  /* Failures at once, while the committers of the sync before are still
   * on their way back, with twice the writers (more committers than
   * cores, so that some of them are still waking up when the failure's
   * undo runs). Whether the undo meets such a committer is a race of
   * microseconds that one schedule wins only now and then (about one in
   * four or five on 2 cores), so there are as many of these as of all
   * the others: a bug of that race is then seen with near certainty in a
   * campaign of a few workloads, not by luck. */
  for (size_t j = 0; j < points; j++) {
    uint64_t h = mix64(seed * 7927 + j);
    tcase t = base;
    t.pattern = j % 2 ? ORA_CRASH_RANDOM : ORA_CRASH_DROP;
    t.fail = 2 + h % (syncs / 2);
    t.fail_usec = 0;
    t.n = 2 * n > TW_MAX ? TW_MAX : 2 * n;
    tw_one(c, &t, NULL);
  }
}

/* ---- a. differential run ------------------------------------------------ */

static int native_mem_factory(void *ctx, kj_backend **out) {
  (void)ctx;
  kj_options o = KJ_OPTIONS_INIT;
  o.key = campaign_key;
  o.clock = ora_oracle_clock;
  return kj_backend_open(NULL, &o, out, NULL);
}

static int sqlite_factory(void *ctx, kj_backend **out) {
  const int *normal = ctx;
  char *err = NULL;
  int rc =
      ora_sqlite_open(":memory:", *normal, ora_oracle_clock, NULL, out, &err);
  kj_free(err);
  return rc;
}

/* ---- the campaign -------------------------------------------------------- */

/* A copy of c's settings, with no report and no divergence yet: checks
 * run on it to learn whether a case fails, without counting it in c. */
static void scratch_of(ora_campaign *sc, const ora_campaign *c) {
  memcpy(sc, c, sizeof *sc);
  memset(&sc->report, 0, sizeof sc->report);
  sc->divergences = 0;
}

/* Shrink the case of a crash or fault line (ora_replay on a copy of the
 * campaign, so that the divergence is not counted twice) and add its
 * "shrunk:" lines to c's report. */
static void append_shrunk(ora_campaign *c, const char *line) {
  ora_campaign sc;
  scratch_of(&sc, c);
  if (sc.watchdog_ms > ORA_REPLAY_WATCHDOG_MS)
    sc.watchdog_ms = ORA_REPLAY_WATCHDOG_MS;
  if (ora_replay(&sc, line, CAMPAIGN_SHRINK_MS) == KJ_OK) {
    /* An ora_obuf keeps a NUL after its bytes. */
    const char *r = sc.report.len ? (const char *)sc.report.p : "";
    const char *s = strstr(r, "  as a crash point: ");
    if (!s)
      s = strstr(r, "  shrunk:");
    if (s)
      ora_obuf_add(&c->report, s,
                   sc.report.len - (size_t)(s - (const char *)sc.report.p));
    c->shrinks++;
  }
  ora_obuf_free(&sc.report);
}

/* A SIGKILL divergence depends on timing; a process that dies keeps every
 * write it made, which is the fault VFS's KEEP crash. Look for a
 * deterministic twin: a KEEP crash at each VFS call of the ops from the
 * last acknowledged one to the one after hi, on the workload's reference.
 * The first that fails is reported as a crash line, and shrunk. */
static void kill_as_crash(wref *r, size_t acked, size_t hi) {
  ora_campaign *c = r->c, sc;
  scratch_of(&sc, c);
  r->c = &sc;
  size_t last = hi + 1 < r->n ? hi + 1 : r->n;
  ora_crash_plan p;
  memset(&p, 0, sizeof p);
  p.pattern = ORA_CRASH_KEEP;
  p.fault_method = -1;
  p.small_snapshots = r->variant;
  int found = 0;
  for (p.point = r->vfs_at[acked] + 1; p.point <= r->vfs_at[last] && !found;
       p.point++) {
    plan_check(r, &p, "crash", r->n, NULL);
    found = sc.divergences > 0;
  }
  r->c = c;
  if (found) {
    ora_obuf line = {0};
    plan_text(&line, "crash", r->w->seed, r->n, r->w->mix, c->normal, &p);
    ora_obuf_addf(&c->report, "  as a crash point: %s\n", (char *)line.p);
    append_shrunk(c, (const char *)line.p);
    ora_obuf_free(&line);
  } else {
    ora_obuf_addf(&c->report,
                  "  (no KEEP crash point of ops %zu..%zu fails the same way: "
                  "a timing-dependent case)\n",
                  acked, last);
  }
  ora_obuf_free(&sc.report);
}

/* A line ora_replay reads. */
static int replayable(const char *p) {
  return !strncmp(p, "crash: ", 7) || !strncmp(p, "fault: ", 7) ||
         !strncmp(p, "threads: ", 9) || !strncmp(p, "chain: ", 7);
}

/* Shrink the first crash, fault, threads or chain line of c->report after
 * offset from (ora_replay on a copy of the campaign, so that the
 * divergence is not counted twice): its "shrunk:" lines go under it. */
static void shrink_first(ora_campaign *c, size_t from) {
  if (c->shrinks || c->report.len <= from)
    return; /* a campaign shrinks its first divergence only */
  const char *p = (const char *)c->report.p + from,
             *end = (const char *)c->report.p + c->report.len;
  while (p < end && !replayable(p)) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    p = nl ? nl + 1 : end;
  }
  if (p >= end)
    return;
  const char *nl = memchr(p, '\n', (size_t)(end - p));
  size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
  char *line = malloc(len + 1);
  if (!line)
    return;
  memcpy(line, p, len);
  line[len] = 0;
  append_shrunk(c, line);
  free(line);
}

static int one_workload(ora_campaign *c, size_t wi, size_t kills) {
  ora_workload w = {0};
  size_t base_report = c->report.len;
  uint64_t seed = c->seed + wi;
  int rc = ora_workload_gen(
      seed, c->ops, wi % 2 ? ORA_MIX_ADVERSARIAL : ORA_MIX_REALISTIC, &w);
  if (rc)
    return rc;

  /* a. */
  progress(c, wi, "diff");
  beacon_plain(&w, c->normal, wi % 2 == 0);
  ora_diff_result dr;
  memset(&dr, 0, sizeof dr);
  int normal = c->normal;
  rc = ora_diff_run(&w, native_mem_factory, NULL, sqlite_factory, &normal, 10,
                    1, &dr);
  if (rc == KJ_OK) {
    c->ops_run += dr.ops_run;
    if (dr.diverged) {
      c->divergences++;
      ora_obuf_addf(&c->report, "diff: seed=%" PRIu64 " ops=%zu op_index=%zu\n",
                    seed, w.n, dr.op_index);
      if (dr.report.len)
        ora_obuf_add(&c->report, dr.report.p, dr.report.len);
    }
  }
  ora_obuf_free(&dr.report);
  if (rc) {
    ora_workload_free(&w);
    return rc;
  }

  /* b. */
  wref r;
  wref_init(&r, c, &w, wi % 2 == 0); /* the realistic mix writes more */
  r.wi = wi;
  char *why = NULL;
  progress(c, wi, "ref");
  rc = wref_build(&r, &why);
  if (rc) {
    ora_obuf_addf(&c->report,
                  "reference run failed: seed=%" PRIu64 ": %s (%s)\n", seed,
                  kj_strerror(rc), why ? why : "");
    kj_free(why);
    wref_free(&r);
    ora_workload_free(&w);
    return rc;
  }
  uint64_t npoints = c->crash_all                  ? r.vfs_ops
                     : c->crash_sample < r.vfs_ops ? c->crash_sample
                                                   : r.vfs_ops;
  crash_sweep(&r, npoints);

  /* c. */
  progress(c, wi, "faults");
  for (size_t k = 0; k < sizeof fault_nth / sizeof fault_nth[0]; k++)
    for (int m = 0; m < ORA_FAULT_NMETHODS; m++)
      for (int st = 0; st < 2; st++)
        for (int pers = 0; pers < 2; pers++)
          fault_one(&r, m, fault_nth[k], st ? KJ_ENOSPC : KJ_EIO, pers);
  if (c->shrinks == 0 && c->report.len > base_report) {
    progress(c, wi, "shrink");
    shrink_first(c, base_report);
  }

  /* g. */
  beacon_repro(NULL); /* the phases below set their own, or have none */
  if (c->kv) {
    progress(c, wi, "kv");
    int krc = ora_kv_check(c, seed, c->ops);
    if (krc)
      divergence(c, "kv: seed=%" PRIu64 " ops=%zu: the run failed: %s", seed,
                 c->ops, kj_strerror(krc));
  }

  /* h. */
  if (c->damage || c->tamper) {
    /* A store of its own, smaller than the workload: every region of
     * every file is damaged in turn. */
    size_t dops = c->ops < DAMAGE_OPS ? c->ops : DAMAGE_OPS;
    progress(c, wi, "damage");
    beacon_repro(NULL);
    int drc = c->damage ? ora_damage_check(c, seed, dops) : KJ_OK;
    int trc = c->tamper ? ora_tamper_check(c, seed, dops) : KJ_OK;
    if (drc || trc)
      divergence(c, "damage: seed=%" PRIu64 " ops=%zu: the run failed: %s",
                 seed, dops, kj_strerror(drc ? drc : trc));
  }

  /* e. */
  if (c->threads > 1) {
    progress(c, wi, "threads");
    size_t from = c->report.len;
    thread_sweep(c, seed, THREAD_POINTS);
    progress(c, wi, "shrink");
    shrink_first(c, from);
  }

  /* f. */
  if (c->generations > 1) {
    progress(c, wi, "chains");
    size_t from = c->report.len;
    for (size_t k = 0; k < CHAINS; k++)
      chain_one(&r, seed * 131 + k);
    progress(c, wi, "shrink");
    shrink_first(c, from);
  }

  /* d. */
  if (kills) {
    progress(c, wi, "kills");
    beacon_repro(NULL);
    int killed;
    /* How long a whole run takes; later runs are faster (warm caches), so
     * the span shrinks whenever a child finished before its kill. */
    int64_t span = kill_one(&r, -1, 0, &killed);
    for (size_t k = 0; k < kills; k++) {
      if (span < 1000)
        span = 1000;
      int64_t delay = (int64_t)(mix64(seed * 131 + k) % (uint64_t)span);
      kill_one(&r, delay, k, &killed);
      if (!killed)
        span = span * 3 / 4;
    }
  }
  progress(c, wi, "done");
  wref_free(&r);
  ora_workload_free(&w);
  return KJ_OK;
}

/* Check one plan on a built reference (see ora_crash_check). */
/* A line that names a plan: "TAG: seed=S ops=N mix=M mode=X snapshots=Y"
 * then the crash point or the fault; gen_ops is the length the workload
 * was generated with. */
static void plan_text(ora_obuf *o, const char *tag, uint64_t seed,
                      size_t gen_ops, ora_mix mix, int normal,
                      const ora_crash_plan *p) {
  ora_obuf_addf(
      o, "%s: seed=%" PRIu64 " ops=%zu mix=%s mode=%s snapshots=%s ", tag, seed,
      gen_ops, mix == ORA_MIX_ADVERSARIAL ? "adversarial" : "realistic",
      normal ? "normal" : "full", p->small_snapshots ? "small" : "default");
  if (p->fault_method >= 0)
    ora_obuf_addf(o, "method=%s nth=%" PRIu64 " status=%s %s",
                  fault_name(p->fault_method), p->fault_nth,
                  status_name(p->fault_status),
                  p->fault_persistent ? "persistent" : "once");
  else
    ora_obuf_addf(
        o,
        "point=%" PRIu64 " pattern=%s recovery_crash=%" PRIu64 " salt=%" PRIu64,
        p->point, pattern_name(p->pattern), p->recovery_point, p->salt);
}

/* Check one plan on a built reference (see ora_crash_check); the lines it
 * reports start with tag and name the plan, the workload's generated
 * length and keep (a keep= list, or NULL). */
static int plan_check(wref *r, const ora_crash_plan *plan, const char *tag,
                      size_t gen_ops, const char *keep) {
  ora_campaign *c = r->c;
  const ora_workload *w = r->w;
  char *dir = mktemp_dir();
  ora_fault_vfs *fv = ora_fault_vfs_new(mix64(w->seed ^ plan->salt));
  if (!dir || !fv) {
    ora_fault_vfs_free(fv);
    rm_dir(dir);
    return KJ_ENOMEM;
  }
  runstate s;
  if (plan->point)
    ora_fault_vfs_set_crash_at(fv, plan->point);
  if (plan->fault_method >= 0 && plan->fault_nth)
    ora_fault_vfs_fail(fv, plan->fault_method, plan->fault_nth,
                       plan->fault_status == KJ_ENOSPC ? KJ_ENOSPC : KJ_EIO,
                       plan->fault_persistent);
  size_t m = run_faulty(r, dir, fv, &s);
  ora_fault_vfs_crash(fv, plan->pattern);
  if (plan->recovery_point) {
    ora_fault_vfs_reset(fv);
    ora_fault_vfs_set_crash_at(fv, plan->recovery_point);
    kj_options o;
    disk_options(r, &o, ora_fault_vfs_get(fv));
    kj_backend *b = NULL;
    r->clock = CLOCK_EPOCH_MS;
    if (kj_backend_open(dir, &o, &b, NULL) == KJ_OK)
      kj_backend_close(b);
    ora_fault_vfs_crash(fv, (plan->pattern + 2) % ORA_CRASH_NPATTERNS);
  }
  size_t hi = s.open_rc ? 0 : in_flight_hi(r, m);
  size_t lo =
      c->normal && plan->pattern != ORA_CRASH_KEEP ? s.synced : bnd_floor(r, m);
  if (lo > hi)
    lo = hi;
  ora_obuf line = {0};
  plan_text(&line, tag, w->seed, gen_ops, w->mix, c->normal, plan);
  if (keep)
    ora_obuf_addf(&line, " keep=%s", keep);
  ora_obuf_addf(&line, " completed=%zu", m);
  const char *repro = line.p ? (const char *)line.p : tag;
  check_failed_op(r, &s, m, repro);
  size_t q = check_recovered(r, dir, fv, lo, hi, repro);
  if (c->normal && plan->pattern != ORA_CRASH_KEEP)
    check_normal_bound(r, q, m, repro);
  c->crash_points++;
  ora_obuf_free(&line);
  ora_fault_vfs_free(fv);
  rm_dir(dir);
  return KJ_OK;
}

int ora_crash_check(ora_campaign *c, const ora_workload *w,
                    const ora_crash_plan *plan) {
  if (!c || !w || !plan || plan->pattern < 0 ||
      plan->pattern >= ORA_CRASH_NPATTERNS ||
      plan->fault_method >= ORA_FAULT_NMETHODS)
    return KJ_EINVAL;
  wref r;
  wref_init(&r, c, w, plan->small_snapshots != 0);
  char *why = NULL;
  int rc = wref_build(&r, &why);
  if (rc) {
    ora_obuf_addf(&c->report,
                  "reference run failed: seed=%" PRIu64 ": %s (%s)\n", w->seed,
                  kj_strerror(rc), why ? why : "");
    kj_free(why);
  } else {
    rc = plan_check(&r, plan, "check", w->n, NULL);
  }
  wref_free(&r);
  return rc;
}

/* ---- replaying and shrinking one reproducer line ----------------------- */

/* The value after " key=" (or at the start) in line, up to a space. */
static const char *line_field(const char *line, const char *key, char *buf,
                              size_t cap) {
  size_t kl = strlen(key);
  for (const char *p = line; (p = strstr(p, key)) != NULL; p += kl) {
    if (p != line && p[-1] != ' ')
      continue;
    p += kl;
    size_t n = strcspn(p, " \n");
    if (n >= cap)
      return NULL;
    memcpy(buf, p, n);
    buf[n] = 0;
    return buf;
  }
  return NULL;
}

static int line_u64(const char *line, const char *key, uint64_t *v) {
  char buf[32], *end;
  if (!line_field(line, key, buf, sizeof buf) || !buf[0] || buf[0] == '-')
    return -1;
  errno = 0;
  *v = strtoull(buf, &end, 10);
  return errno || *end ? -1 : 0;
}

static int name_index(const char *v, const char *const *names, int n) {
  for (int i = 0; v && i < n; i++)
    if (!strcmp(v, names[i]))
      return i;
  return -1;
}

/* "0-3,7,12": keep[i] = 1 for those i < n. -1 when malformed. */
static int parse_keep(const char *v, uint8_t *keep, size_t n) {
  while (*v) {
    char *end;
    errno = 0;
    unsigned long long a = strtoull(v, &end, 10), b = a;
    if (errno || end == v)
      return -1;
    if (*end == '-') {
      v = end + 1;
      b = strtoull(v, &end, 10);
      if (errno || end == v || b < a)
        return -1;
    }
    if (b >= n)
      return -1;
    for (unsigned long long i = a; i <= b; i++)
      keep[i] = 1;
    v = end;
    if (*v == ',')
      v++;
    else if (*v)
      return -1;
  }
  return 0;
}

static void add_keep(ora_obuf *o, const size_t *idx, size_t m) {
  for (size_t i = 0; i < m;) {
    size_t j = i;
    while (j + 1 < m && idx[j + 1] == idx[j] + 1)
      j++;
    ora_obuf_addf(o, "%s%zu", i ? "," : "", idx[i]);
    if (j > i)
      ora_obuf_addf(o, "-%zu", idx[j]);
    i = j + 1;
  }
}

/* The ops a line keeps (its keep= list; all without one): *idx (malloc'd,
 * ascending, *m of them) and the workload w of them; kv gets the list
 * ("" without one). KJ_OK, KJ_EINVAL for a malformed list, KJ_ENOMEM. */
static int line_kept(const char *line, const ora_workload *full, char *kv,
                     size_t kvcap, size_t **idx, size_t *m, ora_workload *w) {
  *idx = calloc(full->n ? full->n : 1, sizeof **idx);
  uint8_t *keep = calloc(full->n ? full->n : 1, 1);
  *m = 0;
  kv[0] = 0;
  int rc = *idx && keep ? KJ_OK : KJ_ENOMEM;
  if (rc == KJ_OK && line_field(line, "keep=", kv, kvcap)) {
    if (parse_keep(kv, keep, full->n))
      rc = KJ_EINVAL;
  } else if (rc == KJ_OK) {
    memset(keep, 1, full->n);
  }
  for (size_t i = 0; rc == KJ_OK && i < full->n; i++)
    if (keep[i])
      (*idx)[(*m)++] = i;
  if (rc == KJ_OK)
    rc = ora_workload_subset(full, keep, w);
  free(keep);
  if (rc) {
    free(*idx);
    *idx = NULL;
  }
  return rc;
}

/* The ops idx[0..m) of w under a "shrunk:" line (the first 40). */
static void list_ops(ora_obuf *o, const ora_workload *w, const size_t *idx,
                     size_t m) {
  for (size_t i = 0; i < m && i < 40; i++) {
    ora_obuf_addf(o, "    %zu. ", i + 1);
    ora_wop_describe(ora_workload_op(w, idx[i]), o);
    ora_obuf_addf(o, "   /* op %zu */\n", idx[i]);
  }
  if (m > 40)
    ora_obuf_addf(o, "    ... %zu more\n", m - 40);
}

/* What a line asks for. */
typedef struct replay {
  char tag[8]; /* "crash" or "fault" */
  uint64_t seed, ops;
  ora_mix mix;
  int normal;
  ora_crash_plan plan;
} replay;

static int replay_parse(const char *line, replay *x) {
  static const char *const mixes[] = {"realistic", "adversarial"};
  static const char *const modes[] = {"full", "normal"};
  static const char *const snaps[] = {"default", "small"};
  static const char *const pats[] = {"drop", "keep", "random", "tear",
                                     "garbage"};
  static const char *const methods[] = {"write", "sync", "read", "rename",
                                        "open"};
  char v[32];
  memset(x, 0, sizeof *x);
  x->plan.fault_method = -1;
  int fault = !strncmp(line, "fault: ", 7);
  if (!fault && strncmp(line, "crash: ", 7) && strncmp(line, "check: ", 7))
    return -1;
  memcpy(x->tag, line, 5);
  int mix = name_index(line_field(line, "mix=", v, sizeof v), mixes, 2);
  x->normal = name_index(line_field(line, "mode=", v, sizeof v), modes, 2);
  x->plan.small_snapshots =
      name_index(line_field(line, "snapshots=", v, sizeof v), snaps, 2);
  if (line_u64(line, "seed=", &x->seed) || line_u64(line, "ops=", &x->ops) ||
      x->ops == 0 || x->ops > 1000000 || mix < 0 || x->normal < 0 ||
      x->plan.small_snapshots < 0)
    return -1;
  x->mix = (ora_mix)mix;
  if (fault) {
    uint64_t nth;
    int m = name_index(line_field(line, "method=", v, sizeof v), methods, 5);
    const char *st = line_field(line, "status=", v, sizeof v);
    if (m < 0 || line_u64(line, "nth=", &nth) || nth == 0 || !st)
      return -1;
    x->plan.fault_status = !strcmp(st, "ENOSPC") ? KJ_ENOSPC
                           : !strcmp(st, "EIO")  ? KJ_EIO
                                                 : 0;
    if (!x->plan.fault_status)
      return -1;
    x->plan.fault_method = m;
    x->plan.fault_nth = nth;
    x->plan.fault_persistent = strstr(line, " persistent") != NULL;
    x->plan.pattern = ORA_CRASH_KEEP; /* no power loss */
    return 0;
  }
  x->plan.pattern =
      name_index(line_field(line, "pattern=", v, sizeof v), pats, 5);
  if (x->plan.pattern < 0 || line_u64(line, "point=", &x->plan.point) ||
      line_u64(line, "recovery_crash=", &x->plan.recovery_point) ||
      line_u64(line, "salt=", &x->plan.salt))
    return -1;
  return 0;
}

/* The replay line of x on the ops idx[0..m) of a workload of n ops. */
static void replay_line(ora_obuf *o, const replay *x, const ora_crash_plan *p,
                        const size_t *idx, size_t m, size_t n) {
  plan_text(o, x->tag, x->seed, (size_t)x->ops, x->mix, x->normal, p);
  if (m < n) {
    ora_obuf_addf(o, " keep=");
    add_keep(o, idx, m);
  }
}

/* The shrinker's state: the crash point of the plan is tied to the op it
 * fell in (or to the open, or the close), at the same distance from that
 * op's first VFS call, so it follows the op as others are removed. */
typedef struct pshrink {
  const ora_campaign *c;
  const ora_workload *w; /* the whole workload */
  ora_crash_plan plan, found;
  int anchor; /* 0: the open, 1: op j, 2: the close */
  size_t j;
  uint64_t off;
  int64_t deadline_ms;
} pshrink;

/* Where op j is among idx[0..m), or m. */
static size_t idx_pos(const size_t *idx, size_t m, size_t j) {
  size_t i = 0;
  while (i < m && idx[i] != j)
    i++;
  return i;
}

/* The ops idx[0..m) of w, in order, as a workload: KJ_OK or an error. */
static int subset_of(const ora_workload *w, const size_t *idx, size_t m,
                     ora_workload *sub) {
  uint8_t *keep = calloc(w->n ? w->n : 1, 1);
  if (!keep)
    return KJ_ENOMEM;
  for (size_t i = 0; i < m; i++)
    keep[idx[i]] = 1;
  int rc = ora_workload_subset(w, keep, sub);
  free(keep);
  return rc;
}

/* One try of the shrinker: the plan on the ops kept. */
typedef struct ptry {
  const pshrink *x;
  const ora_workload *sub; /* the ops kept */
  size_t jj;               /* where op x->j is among them */
  size_t m;
} ptry;

/* shared[0] = 1 and [1] = the crash point, once placed; [2] = 1 when the
 * reference of the ops kept was built without a divergence (a divergence
 * after that is the plan's). */
static int plan_try(ora_campaign *sc, void *arg, uint64_t *sh) {
  const ptry *t = arg;
  const pshrink *x = t->x;
  wref r;
  wref_init(&r, sc, t->sub, x->plan.small_snapshots != 0);
  char *why = NULL;
  if (wref_build(&r, &why) == KJ_OK && sc->divergences == 0) {
    ora_crash_plan p = x->plan;
    int ok = 1;
    if (p.point && x->anchor == 1) {
      p.point = r.vfs_at[t->jj] + x->off;
      ok = p.point <= r.vfs_at[t->jj + 1];
    } else if (p.point && x->anchor == 2) {
      p.point = r.vfs_at[t->m] + x->off;
      ok = p.point <= r.vfs_ops;
    }
    sh[0] = 1;
    sh[1] = p.point;
    sh[2] = ok;
    if (ok)
      plan_check(&r, &p, "check", x->w->n, NULL);
  }
  kj_free(why);
  wref_free(&r);
  return KJ_OK;
}

/* Does the plan still fail on ops idx[0..m) of x->w? */
static int plan_fails(void *arg, const size_t *idx, size_t m) {
  pshrink *x = arg;
  if (now_ms() > x->deadline_ms)
    return 0;
  size_t jj = x->anchor == 1 ? idx_pos(idx, m, x->j) : 0;
  ora_workload sub;
  if (jj == m || subset_of(x->w, idx, m, &sub) != KJ_OK)
    return 0;
  ora_campaign sc;
  scratch_of(&sc, x->c);
  ptry t = {x, &sub, jj, m};
  uint64_t sh[sizeof((beacon *)0)->user / sizeof(uint64_t)];
  memset(sh, 0, sizeof sh);
  int fails = 0;
  if (sc.watchdog_ms) {
    /* A hang (or a death) is a failure too: the case that hung is shrunk
     * the same way. */
    watched_end e;
    watched(&sc, plan_try, &t, &e);
    memcpy(sh, e.last.user, sizeof sh);
    fails = e.hung || e.died || (sh[2] && sc.divergences);
  } else {
    plan_try(&sc, &t, sh);
    fails = sh[2] && sc.divergences;
  }
  if (fails) {
    x->found = x->plan;
    if (sh[0])
      x->found.point = sh[1];
  }
  ora_obuf_free(&sc.report);
  ora_workload_free(&sub);
  return fails;
}

/* Most checks one shrink may run. */
#define REPLAY_SHRINK_RUNS 600

static int tw_try(ora_campaign *c, void *arg, uint64_t *shared) {
  (void)shared;
  tw_one(c, arg, NULL);
  return KJ_OK;
}

/* A threads case, and whether it fails: in up to `tries` runs on a copy
 * of c, at least one diverges (the interleaving is the scheduler's). Under
 * a watchdog each run is a watched child, and one that hangs fails. */
static int tcase_fails(const ora_campaign *c, const tcase *t, int tries) {
  for (int i = 0; i < tries; i++) {
    ora_campaign sc;
    scratch_of(&sc, c);
    int hung = 0;
    if (sc.watchdog_ms) {
      watched_end e;
      watched(&sc, tw_try, (void *)t, &e);
      hung = e.hung || e.died;
    } else {
      tw_one(&sc, t, NULL);
    }
    ora_obuf_free(&sc.report);
    if (sc.divergences || hung)
      return 1;
  }
  return 0;
}

/* Runs a shrinking candidate gets: a concurrency bug shows in most runs of
 * its schedule, not all. */
#define TW_SHRINK_TRIES 3

/* Shrink a failing threads case for at most shrink_ms: fewer threads,
 * fewer commits, an earlier death, while it still fails; adds a "shrunk:"
 * line with its replay. */
static void tw_shrink(ora_campaign *c, tcase cur, unsigned shrink_ms) {
  int64_t deadline = now_ms() + (int64_t)shrink_ms;
  size_t runs = 0;
  unsigned n0 = cur.n;
  size_t commits0 = cur.commits;
  for (int changed = 1; changed && now_ms() < deadline;) {
    changed = 0;
    tcase cand[10];
    size_t nc = 0;
    if (cur.n > 2) {
      cand[nc] = cur, cand[nc++].n = cur.n / 2 < 2 ? 2 : cur.n / 2;
      cand[nc] = cur, cand[nc++].n = cur.n - 1;
    }
    if (cur.commits > 1) {
      cand[nc] = cur, cand[nc++].commits = cur.commits / 2;
      cand[nc] = cur, cand[nc++].commits = cur.commits - 1;
    }
    if (cur.k > 1) {
      cand[nc] = cur, cand[nc++].k = cur.k / 2;
      cand[nc] = cur, cand[nc++].k = cur.k - 1;
    }
    if (cur.point > 1) {
      cand[nc] = cur, cand[nc++].point = cur.point / 2;
      cand[nc] = cur, cand[nc++].point = cur.point - 1;
    }
    if (cur.fail > 1) {
      cand[nc] = cur, cand[nc++].fail = cur.fail / 2;
      cand[nc] = cur, cand[nc++].fail = cur.fail - 1;
    }
    for (size_t i = 0; i < nc && !changed && now_ms() < deadline; i++) {
      runs++;
      if (tcase_fails(c, &cand[i], TW_SHRINK_TRIES)) {
        cur = cand[i];
        changed = 1;
      }
    }
  }
  char line[256];
  tw_line(line, sizeof line, &cur);
  ora_obuf_addf(&c->report,
                "  shrunk: %u of %u threads, %zu of %zu commits each (%zu "
                "checks%s): keyjournal oracle --replay '%s'\n",
                cur.n, n0, cur.commits, commits0, runs,
                now_ms() >= deadline ? ", time up" : "", line);
  c->shrinks++;
}

/* "threads: seed=S threads=N commits=C die_after_sync=K point=P
 * [fail_sync=F] pattern=T": that one concurrent-writer run again (its
 * interleaving is the scheduler's: a rerun finds the bug with high
 * probability). With shrink_ms, a run that passes is tried twice more,
 * and a failing case is shrunk. Under a watchdog each run is a watched
 * child: a run that hangs is reported as a hang, and shrunk too. */
static int replay_threads(ora_campaign *c, const char *line,
                          unsigned shrink_ms) {
  static const char *const pats[] = {"drop", "keep", "random", "tear",
                                     "garbage"};
  char v[32];
  uint64_t seed, n, commits, k, point, fail = 0, fail_usec = TW_FAULT_USEC;
  int pattern = name_index(line_field(line, "pattern=", v, sizeof v), pats, 5);
  if (line_u64(line, "seed=", &seed) || line_u64(line, "threads=", &n) ||
      n < 2 || n > TW_MAX || line_u64(line, "commits=", &commits) ||
      commits < 1 || commits > 100000 ||
      line_u64(line, "die_after_sync=", &k) ||
      line_u64(line, "point=", &point) || pattern < 0 ||
      (strstr(line, " fail_sync=") && line_u64(line, "fail_sync=", &fail)) ||
      (strstr(line, " fail_usec=") &&
       (line_u64(line, "fail_usec=", &fail_usec) || fail_usec > 10000000)))
    return -1;
  tcase t = {
      seed,   k, point, fail, (unsigned)fail_usec, (unsigned)n, (size_t)commits,
      pattern};
  uint64_t before = c->divergences;
  for (int i = 0; i < (shrink_ms ? TW_SHRINK_TRIES : 1); i++) {
    if (c->watchdog_ms) {
      watched_end e;
      watched(c, tw_try, &t, &e);
      if (e.hung || e.died) {
        c->hangs += e.hung;
        divergence(c, "%s: %s: %s", e.hung ? "hang" : "crash", line,
                   e.hung ? "no progress (a writer that never returns)"
                          : "the run's process died");
      }
    } else {
      tw_one(c, &t, NULL);
    }
    if (c->divergences > before)
      break;
  }
  if (c->divergences > before && shrink_ms)
    tw_shrink(c, t, shrink_ms);
  return 0;
}

/* "P/pattern,P/pattern,...": the deaths of a chain line's generations,
 * as absolute VFS calls. How many, or -1 when malformed. */
static int parse_crashes(const char *v, chain_gen *g, size_t max) {
  static const char *const pats[] = {"drop", "keep", "random", "tear",
                                     "garbage"};
  size_t n = 0;
  while (*v) {
    char *end, name[16];
    errno = 0;
    unsigned long long p = strtoull(v, &end, 10);
    if (n == max || errno || end == v || *end != '/' || p == 0 || *v == '-')
      return -1;
    v = end + 1;
    size_t l = strcspn(v, ",");
    if (l == 0 || l >= sizeof name)
      return -1;
    memcpy(name, v, l);
    name[l] = 0;
    memset(&g[n], 0, sizeof g[n]);
    g[n].point = p;
    if ((g[n].pattern = name_index(name, pats, 5)) < 0)
      return -1;
    n++;
    v += l;
    if (*v == ',' && !*++v)
      return -1;
  }
  return (int)n;
}

/* The chain shrinker's state: each generation's death is tied to the op
 * it fell in (kind 1: the same call of that op), to the open (kind 0) or
 * to the close (kind 2), so it follows the op as others are removed. */
typedef struct cshrink {
  const ora_campaign *c;
  const ora_workload *w; /* the whole workload */
  uint64_t salt;
  int small;
  chain_gen gens[CHAIN_MAX_GENS]; /* a kind 1's j is an op of w */
  size_t ngen;
  chain_gen found[CHAIN_MAX_GENS]; /* the deaths of the last failing try */
  size_t nfound;
  int64_t deadline_ms;
} cshrink;

/* Does the chain still fail on ops idx[0..m) of x->w? */
static int chain_fails(void *arg, const size_t *idx, size_t m) {
  cshrink *x = arg;
  if (now_ms() > x->deadline_ms)
    return 0;
  chain_gen g[CHAIN_MAX_GENS];
  for (size_t i = 0; i < x->ngen; i++) {
    g[i] = x->gens[i];
    if (g[i].kind == 1 && (g[i].j = idx_pos(idx, m, g[i].j)) == m)
      return 0;
  }
  ora_workload sub;
  if (subset_of(x->w, idx, m, &sub) != KJ_OK)
    return 0;
  ora_campaign sc;
  scratch_of(&sc, x->c);
  wref r;
  wref_init(&r, &sc, &sub, x->small);
  char *why = NULL;
  int fails = 0;
  if (wref_build(&r, &why) == KJ_OK && sc.divergences == 0) {
    chain_gen rec[CHAIN_MAX_GENS];
    size_t ran = chain_run(&r, x->salt, g, x->ngen, rec, x->w->n, NULL);
    if (sc.divergences) {
      fails = 1;
      memcpy(x->found, rec, ran * sizeof *rec);
      x->nfound = ran;
    }
  }
  kj_free(why);
  wref_free(&r);
  ora_obuf_free(&sc.report);
  ora_workload_free(&sub);
  return fails;
}

/* "chain: seed=S ops=N mix=M mode=X snapshots=Y salt=A ...": that chain
 * of crashes again (deterministic), with the deaths of crashes= when the
 * line has one (then as many generations) and the ops of keep=. A first
 * generation that fails is a plain crash point (the chain's VFS is fresh
 * there): it is printed as a crash line and shrunk. A later one is shrunk
 * as a chain: ops are removed while it still fails, each generation's
 * death following the op it fell in. */
static int replay_chain(ora_campaign *c, const char *line, unsigned shrink_ms) {
  static const char *const mixes[] = {"realistic", "adversarial"};
  static const char *const modes[] = {"full", "normal"};
  static const char *const snaps[] = {"default", "small"};
  char v[512];
  uint64_t seed, ops, salt;
  int mix = name_index(line_field(line, "mix=", v, sizeof v), mixes, 2);
  int normal = name_index(line_field(line, "mode=", v, sizeof v), modes, 2);
  int small = name_index(line_field(line, "snapshots=", v, sizeof v), snaps, 2);
  if (line_u64(line, "seed=", &seed) || line_u64(line, "ops=", &ops) ||
      ops == 0 || ops > 1000000 || line_u64(line, "salt=", &salt) || mix < 0 ||
      normal < 0 || small < 0)
    return -1;
  chain_gen fixed[CHAIN_MAX_GENS];
  int nfixed = 0;
  if (line_field(line, "crashes=", v, sizeof v) &&
      (nfixed = parse_crashes(v, fixed, CHAIN_MAX_GENS)) <= 0)
    return -1;
  ora_workload full;
  if (ora_workload_gen(seed, (size_t)ops, (ora_mix)mix, &full) != KJ_OK)
    return -2;
  char kv[4096];
  size_t *idx, m;
  ora_workload w;
  int krc = line_kept(line, &full, kv, sizeof kv, &idx, &m, &w);
  if (krc) {
    ora_workload_free(&full);
    return krc == KJ_EINVAL ? -1 : -2;
  }
  c->normal = normal;
  if (nfixed)
    c->generations = (size_t)nfixed;
  else if (c->generations < 2)
    c->generations = 3;
  wref r;
  wref_init(&r, c, &w, small);
  char *why = NULL;
  size_t from = c->report.len;
  uint64_t before = c->divergences;
  chain_gen rec[CHAIN_MAX_GENS];
  size_t ran = 0;
  if (wref_build(&r, &why) == KJ_OK)
    ran = chain_run(&r, salt, nfixed ? fixed : NULL, (size_t)nfixed, rec,
                    full.n, kv[0] ? kv : NULL);
  kj_free(why);
  /* The generation that failed first. */
  const char *gen =
      c->divergences > before && c->report.len > from
          ? strstr((const char *)c->report.p + from, " generation=")
          : NULL;
  unsigned long failed =
      gen ? strtoul(gen + strlen(" generation="), NULL, 10) : 0;
  const char *cr = failed == 1 ? strstr(gen, " crashes=") : NULL;
  if (cr && shrink_ms) {
    ora_crash_plan p;
    memset(&p, 0, sizeof p);
    p.fault_method = -1;
    p.small_snapshots = small;
    p.salt = salt;
    char pat[16] = "";
    unsigned long long point = 0;
    if (sscanf(cr, " crashes=%llu/%15[a-z]", &point, pat) == 2) {
      static const char *const pats[] = {"drop", "keep", "random", "tear",
                                         "garbage"};
      p.point = point;
      p.pattern = name_index(pat, pats, 5);
      if (p.pattern >= 0) {
        ora_obuf text = {0};
        plan_text(&text, "crash", seed, full.n, (ora_mix)mix, normal, &p);
        if (kv[0])
          ora_obuf_addf(&text, " keep=%s", kv);
        ora_obuf_addf(&c->report, "  as a crash point: %s\n", (char *)text.p);
        append_shrunk(c, (const char *)text.p);
        ora_obuf_free(&text);
      }
    }
  } else if (failed > 1 && failed <= ran && failed <= CHAIN_MAX_GENS &&
             shrink_ms) {
    cshrink sx;
    memset(&sx, 0, sizeof sx);
    sx.c = c;
    sx.w = &full;
    sx.salt = salt;
    sx.small = small;
    sx.ngen = failed;
    for (size_t i = 0; i < sx.ngen; i++) {
      sx.gens[i] = rec[i];
      if (rec[i].kind == 1)
        sx.gens[i].j = idx[rec[i].j];
    }
    memcpy(sx.found, rec, sx.ngen * sizeof *rec);
    sx.nfound = sx.ngen;
    sx.deadline_ms = now_ms() + (int64_t)shrink_ms;
    size_t runs = 0, n0 = m;
    /* The ops after the last generation's death never ran. */
    const chain_gen *last = &rec[sx.ngen - 1];
    if (last->kind == 1 && last->j + 1 < m) {
      runs++;
      if (chain_fails(&sx, idx, last->j + 1))
        m = last->j + 1;
    }
    ora_shrink(idx, &m, REPLAY_SHRINK_RUNS, &runs, chain_fails, &sx);
    int time_up = now_ms() > sx.deadline_ms;
    sx.deadline_ms = INT64_MAX;
    int still = m == n0 || chain_fails(&sx, idx, m);
    ora_obuf_addf(&c->report,
                  "  shrunk: %zu of %zu ops, %zu generations (%zu checks%s)%s: "
                  "keyjournal oracle --replay 'chain: seed=%" PRIu64
                  " ops=%zu mix=%s mode=%s snapshots=%s salt=%" PRIu64
                  " crashes=",
                  m, full.n, sx.ngen, runs, time_up ? ", time up" : "",
                  still ? "" : " [NO LONGER FAILS]", seed, full.n, mixes[mix],
                  modes[normal], snaps[small], salt);
    for (size_t i = 0; i < sx.nfound; i++)
      ora_obuf_addf(&c->report, "%s%" PRIu64 "/%s", i ? "," : "",
                    sx.found[i].point, pattern_name(sx.found[i].pattern));
    if (m < full.n) {
      ora_obuf_addf(&c->report, " keep=");
      add_keep(&c->report, idx, m);
    }
    ora_obuf_addf(&c->report, "'\n");
    list_ops(&c->report, &full, idx, m);
    c->shrinks++;
  }
  wref_free(&r);
  ora_workload_free(&w);
  free(idx);
  ora_workload_free(&full);
  return 0;
}

/* A chain or threads line, replayed (ora_replay). */
typedef struct rother {
  const char *line;
  unsigned shrink_ms;
} rother;

static int replay_other(ora_campaign *c, void *arg, uint64_t *shared) {
  (void)shared;
  const rother *o = arg;
  int bad = o->line[0] == 't' ? replay_threads(c, o->line, o->shrink_ms)
                              : replay_chain(c, o->line, o->shrink_ms);
  if (bad == -2)
    return KJ_ENOMEM;
  if (bad)
    ora_obuf_addf(&c->report, "replay: cannot read: %.200s\n", o->line);
  return bad ? KJ_EINVAL : KJ_OK;
}

/* The first check of a crash or fault line: the reference of the ops
 * kept, where the crash point falls among them (the shrinker's anchor,
 * written to shared before the check, so that it survives a hang), then
 * the plan. shared: [0] 1 once placed, [1] the anchor, [2] the index of
 * its op among the ops kept, [3] the point's distance from that op's
 * first VFS call, [4] how many ops ran before the death. */
typedef struct rfirst {
  const ora_workload *w; /* the ops kept */
  const replay *x;
  size_t gen_n;   /* the length the workload was generated with */
  const char *kv; /* the line's keep= list, or NULL */
} rfirst;

static int replay_first(ora_campaign *c, void *arg, uint64_t *sh) {
  const rfirst *f = arg;
  const ora_crash_plan *p = &f->x->plan;
  size_t n = f->w->n;
  wref r;
  wref_init(&r, c, f->w, p->small_snapshots);
  char *why = NULL;
  int rc = wref_build(&r, &why);
  if (rc) {
    ora_obuf_addf(&c->report,
                  "reference run failed: seed=%" PRIu64 ": %s (%s)\n",
                  f->w->seed, kj_strerror(rc), why ? why : "");
    kj_free(why);
    wref_free(&r);
    return rc;
  }
  sh[1] = 0;
  sh[4] = n;
  if (p->point && p->point <= r.vfs_at[0]) {
    sh[4] = 0;
  } else if (p->point && p->point <= r.vfs_at[n]) {
    size_t j = 0;
    while (j + 1 < n && r.vfs_at[j + 1] < p->point)
      j++;
    sh[1] = 1;
    sh[2] = j;
    sh[3] = p->point - r.vfs_at[j];
    sh[4] = j + 1; /* the ops after the one it died in never ran */
  } else if (p->point) {
    sh[1] = 2;
    sh[3] = p->point - r.vfs_at[n];
  }
  sh[0] = 1;
  rc = plan_check(&r, p, f->x->tag, f->gen_n, f->kv);
  wref_free(&r);
  return rc;
}

int ora_replay(ora_campaign *c, const char *line, unsigned shrink_ms) {
  if (!c || !line)
    return KJ_EINVAL;
  watched_end e;
  if (!strncmp(line, "threads: ", 9) || !strncmp(line, "chain: ", 7)) {
    rother o = {line, shrink_ms};
    /* A threads line watches each of its runs itself (a run that hangs
     * is reported and shrunk). */
    if (!c->watchdog_ms || line[0] == 't')
      return replay_other(c, &o, NULL);
    int rc = watched(c, replay_other, &o, &e);
    if (e.hung || e.died) {
      c->hangs += e.hung;
      divergence(c, "%s: %s: %s", e.hung ? "hang" : "crash", line,
                 e.hung ? "no progress (an operation or a recovery that "
                          "never returns)"
                        : "the replay's process died");
    }
    return rc;
  }
  replay x;
  if (replay_parse(line, &x)) {
    ora_obuf_addf(&c->report,
                  "replay: not a crash, fault, chain or threads line with the "
                  "fields the oracle prints: %.200s\n",
                  line);
    return KJ_EINVAL;
  }
  ora_workload full;
  int rc = ora_workload_gen(x.seed, (size_t)x.ops, x.mix, &full);
  if (rc)
    return rc;
  /* The ops the line keeps (all without keep=). */
  char kv[4096];
  size_t *idx, m;
  ora_workload w;
  if ((rc = line_kept(line, &full, kv, sizeof kv, &idx, &m, &w)) != KJ_OK) {
    if (rc == KJ_EINVAL)
      ora_obuf_addf(&c->report, "replay: bad keep= list: %.200s\n", kv);
    ora_workload_free(&full);
    return rc;
  }
  c->normal = x.normal;
  uint64_t before = c->divergences;
  uint64_t sh[sizeof e.last.user / sizeof(uint64_t)];
  memset(sh, 0, sizeof sh);
  rfirst f = {&w, &x, full.n, kv[0] ? kv : NULL};
  if (c->watchdog_ms) {
    /* Under a watchdog: a case that hangs is reported (and shrunk) rather
     * than hanging the replay. */
    rc = watched(c, replay_first, &f, &e);
    memcpy(sh, e.last.user, sizeof sh);
    if (e.hung) {
      c->hangs++;
      divergence(c,
                 "hang: %s: no progress for %u ms (an operation or a "
                 "recovery that never returns)",
                 line, c->watchdog_ms);
    } else if (e.died) {
      divergence(c, "crash: %s: the replay's process died (status %d)", line,
                 e.status);
    }
  } else {
    rc = replay_first(c, &f, sh);
  }
  if (rc == KJ_OK && c->divergences > before && shrink_ms) {
    /* Where the crash point fell, in ops of w, then of full. */
    pshrink sx;
    memset(&sx, 0, sizeof sx);
    sx.c = c;
    sx.w = &full;
    sx.plan = sx.found = x.plan;
    sx.deadline_ms = now_ms() + (int64_t)shrink_ms;
    size_t cut = m; /* ops kept before shrinking */
    if (sh[0]) {
      sx.anchor = (int)sh[1];
      sx.j = sh[1] == 1 && sh[2] < m ? idx[sh[2]] : 0;
      sx.off = sh[3];
      cut = sh[4] < m ? (size_t)sh[4] : m;
    }
    size_t runs = 0, n0 = m;
    if (cut < m && plan_fails(&sx, idx, cut))
      m = cut;
    runs++;
    ora_shrink(idx, &m, REPLAY_SHRINK_RUNS, &runs, plan_fails, &sx);
    /* The final case, checked once more for the report. */
    int time_up = now_ms() > sx.deadline_ms;
    sx.deadline_ms = INT64_MAX;
    int still = m == n0 || plan_fails(&sx, idx, m);
    ora_obuf_addf(&c->report, "  shrunk: %zu of %zu ops (%zu checks%s)%s: ", m,
                  full.n, runs, time_up ? ", time up" : "",
                  still ? "" : " [NO LONGER FAILS]");
    ora_obuf_addf(&c->report, "keyjournal oracle --replay '");
    replay_line(&c->report, &x, m == n0 ? &x.plan : &sx.found, idx, m, full.n);
    ora_obuf_addf(&c->report, "'\n");
    list_ops(&c->report, &full, idx, m);
    c->shrinks++;
  }
  ora_workload_free(&w);
  free(idx);
  ora_workload_free(&full);
  return rc;
}

/* The counters a workload adds to its campaign, in the order they travel
 * from a watched child to the campaign. */
#define NCOUNTS 11
static void counts_of(const ora_campaign *c, uint64_t *v) {
  const uint64_t x[NCOUNTS] = {
      c->ops_run,      c->crash_points, c->kills_run,    c->divergences,
      c->kv_ops,       c->damage_cases, c->tamper_cases, c->thread_points,
      c->chain_points, c->hangs,        c->shrinks};
  memcpy(v, x, sizeof x);
}
static void counts_add(ora_campaign *c, const uint64_t *d) {
  uint64_t *f[NCOUNTS] = {&c->ops_run,      &c->crash_points,  &c->kills_run,
                          &c->divergences,  &c->kv_ops,        &c->damage_cases,
                          &c->tamper_cases, &c->thread_points, &c->chain_points,
                          &c->hangs,        &c->shrinks};
  for (int i = 0; i < NCOUNTS; i++)
    *f[i] += d[i];
}

/* Run fn(c, arg, shared) in a child process under the watchdog: the
 * child beats into a page it shares with this process (ora_beat, and the
 * beacon's phase, op, point and replay line), sends back the counters it
 * added to c and its report lines, and this process adds them to c. A
 * child that stops beating for c->watchdog_ms is killed (with its process
 * group: a crash sweep's children too) and e->hung is set; a child that
 * dies otherwise sets e->died and e->status. e->last is the beacon as the
 * child left it, shared (beacon.user) what fn wrote there. Returns fn's
 * status, KJ_OK when it did not return, or KJ_ENOMEM / KJ_EIO when the
 * child could not be started. Inside a watched child (nested) the child
 * stays in the group, dies with its parent, and each beat of it is a beat
 * of the parent too. */
static int watched(ora_campaign *c, watched_fn fn, void *arg, watched_end *e) {
  memset(e, 0, sizeof *e);
  beacon *bc = mmap(NULL, sizeof *bc, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  int fds[2];
  if (bc == MAP_FAILED)
    return KJ_ENOMEM;
  if (pipe(fds) != 0) {
    munmap(bc, sizeof *bc);
    return KJ_EIO;
  }
  memset(bc, 0, sizeof *bc);
  int nested = the_beacon != NULL;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    munmap(bc, sizeof *bc);
    return KJ_EIO;
  }
  if (pid == 0) {
    if (!nested)
      setpgid(0, 0);
#ifdef __linux__
    else
      prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
    close(fds[0]);
    the_beacon = bc;
    ora_beat_attach(&bc->beats);
    uint64_t base[NCOUNTS], now[NCOUNTS];
    counts_of(c, base);
    size_t base_report = c->report.len;
    int rc = fn(c, arg, bc->user);
    counts_of(c, now);
    ora_obuf out = {0};
    int32_t rc32 = rc;
    ora_obuf_add(&out, &rc32, sizeof rc32);
    for (int i = 0; i < NCOUNTS; i++) {
      uint64_t d = now[i] - base[i];
      ora_obuf_add(&out, &d, sizeof d);
    }
    if (c->report.len > base_report)
      ora_obuf_add(&out, c->report.p + base_report,
                   c->report.len - base_report);
    for (size_t off = 0; off < out.len;) {
      ssize_t put = write(fds[1], out.p + off, out.len - off);
      if (put < 0 && errno == EINTR)
        continue;
      if (put <= 0)
        _exit(6);
      off += (size_t)put;
    }
    _exit(0);
  }
  if (!nested)
    setpgid(pid, pid); /* also here: no race with the child's own call */
  close(fds[1]);
  ora_obuf in = {0};
  uint64_t last_beats = 0;
  int64_t last_change = now_ms();
  for (;;) {
    struct pollfd pfd = {fds[0], POLLIN, 0};
    int pr = poll(&pfd, 1, 50);
    if (pr < 0 && errno != EINTR)
      break;
    if (pr > 0) {
      uint8_t buf[4096];
      ssize_t got = read(fds[0], buf, sizeof buf);
      if (got < 0 && errno == EINTR)
        continue;
      if (got <= 0)
        break;
      ora_obuf_add(&in, buf, (size_t)got);
      continue;
    }
    uint64_t beats = __atomic_load_n(&bc->beats, __ATOMIC_RELAXED);
    if (beats != last_beats) {
      last_beats = beats;
      last_change = now_ms();
      if (nested)
        ora_beat();
    } else if (now_ms() - last_change >= (int64_t)c->watchdog_ms) {
      e->hung = 1;
      kill(nested ? pid : -pid, SIGKILL);
      break;
    }
  }
  close(fds[0]);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
    ;
  if (e->hung && !nested) /* reap what the group left (sweep children) */
    while (waitpid(-pid, NULL, 0) > 0 || errno == EINTR)
      ;
  memcpy(&e->last, bc, sizeof e->last);
  e->last.phase[sizeof e->last.phase - 1] = 0;
  e->last.repro[sizeof e->last.repro - 1] = 0;
  int rc = KJ_OK;
  size_t head = sizeof(int32_t) + NCOUNTS * sizeof(uint64_t);
  if (e->hung) {
    /* reported by the caller */
  } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || in.len < head) {
    e->died = 1;
    e->status = st;
  } else {
    int32_t rc32;
    uint64_t d[NCOUNTS];
    memcpy(&rc32, in.p, sizeof rc32);
    memcpy(d, in.p + sizeof rc32, sizeof d);
    counts_add(c, d);
    if (in.len > head)
      ora_obuf_add(&c->report, in.p + head, in.len - head);
    rc = rc32;
  }
  ora_obuf_free(&in);
  munmap(bc, sizeof *bc);
  return rc;
}

typedef struct wl_arg {
  size_t wi, kills;
} wl_arg;

static int workload_fn(ora_campaign *c, void *arg, uint64_t *shared) {
  (void)shared;
  const wl_arg *a = arg;
  return one_workload(c, a->wi, a->kills);
}

/* Run one workload under the watchdog (watched). A hang is reported with
 * where it was, the line that replays the case that hung, and that case
 * shrunk (with a short watchdog: the replay of one case beats per op). */
static int watched_workload(ora_campaign *c, size_t wi, size_t kills) {
  wl_arg a = {wi, kills};
  watched_end e;
  int rc = watched(c, workload_fn, &a, &e);
  if (e.hung) {
    c->hangs++;
    divergence(
        c,
        "hang: seed=%" PRIu64 " ops=%zu mode=%s phase=%s op_index=%" PRIu64
        " point=%" PRIu64 " pattern=%s: no progress for %u ms (an "
        "operation or a recovery that never returns)",
        c->seed + wi, c->ops, c->normal ? "normal" : "full", e.last.phase,
        e.last.op, e.last.point,
        e.last.point ? pattern_name(e.last.pattern) : "none", c->watchdog_ms);
    if (e.last.repro[0]) {
      ora_obuf_addf(&c->report, "  the case that hung: %s\n", e.last.repro);
      append_shrunk(c, e.last.repro);
    } else {
      ora_obuf_addf(&c->report,
                    "  (phase %s has no single-case replay: the campaign's "
                    "command reruns it)\n",
                    e.last.phase);
    }
  } else if (e.died) {
    divergence(c,
               "crash: seed=%" PRIu64 " ops=%zu: the workload's process died "
               "(status %d) in phase %s",
               c->seed + wi, c->ops, e.status, e.last.phase);
  }
  return rc;
}

int ora_campaign_run(ora_campaign *c) {
  if (!c)
    return KJ_EINVAL;
  int rc = KJ_OK;
  int64_t t0 = now_ms();
  for (size_t wi = 0; wi < c->workloads && rc == KJ_OK; wi++) {
    size_t kills = c->workloads ? c->kills / c->workloads +
                                      (wi < c->kills % c->workloads ? 1 : 0)
                                : 0;
    int mode = c->normal;
    if (mode == 2) /* both: workloads 2 and 3 of every 4 under NORMAL */
      c->normal = (int)(wi / 2 % 2);
    uint64_t hangs = c->hangs;
    rc = c->watchdog_ms ? watched_workload(c, wi, kills)
                        : one_workload(c, wi, kills);
    c->normal = mode;
    if (c->divergences && !c->first_divergence_workload) {
      c->first_divergence_ms = (uint64_t)(now_ms() - t0);
      c->first_divergence_workload = wi + 1;
    }
    if (c->hangs > hangs) { /* the engine is stuck: report it now */
      ora_obuf_addf(&c->report,
                    "hang: the campaign stops after workload %zu of %zu\n",
                    wi + 1, c->workloads);
      break;
    }
  }
  if (c->progress)
    fprintf(stderr, "\n");
  return rc;
}
