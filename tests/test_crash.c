/*
 * tests/test_crash.c - bounded crash campaigns (oracle/crash.c): FULL and
 * NORMAL sweeps over sampled crash points, a full sweep of every VFS
 * operation of a short workload, Nth-operation faults and SIGKILL runs,
 * all without a divergence from the SQLite oracle; and a negative test:
 * stores opened with KJ_SYNC_OFF while the campaign checks them as FULL
 * must be caught losing acknowledged commits, which shows the checker can
 * fail.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "oracle.h"
#include "tap.h"

/* Print a report as TAP comments (at most max bytes). */
static void show_report(const ora_campaign *c, size_t max) {
  size_t n = c->report.len < max ? c->report.len : max;
  const char *p = (const char *)c->report.p;
  size_t i = 0;
  while (i < n) {
    size_t e = i;
    while (e < n && p[e] != '\n')
      e++;
    printf("# %.*s\n", (int)(e - i), p + i);
    i = e + 1;
  }
}

static void run(const char *what, uint64_t seed, size_t workloads, size_t ops,
                size_t sample, int all, int normal, size_t kills) {
  ora_campaign c;
  memset(&c, 0, sizeof c);
  c.seed = seed;
  c.workloads = workloads;
  c.ops = ops;
  c.crash_sample = sample;
  c.crash_all = all;
  c.normal = normal;
  c.kills = kills;
  int rc = ora_campaign_run(&c);
  is(rc, KJ_OK, "%s: campaign ran", what);
  ok(c.crash_points > 0, "%s: crash points tried (%llu)", what,
     (unsigned long long)c.crash_points);
  ok(c.ops_run > ops * workloads, "%s: ops run (%llu)", what,
     (unsigned long long)c.ops_run);
  if (kills)
    is(c.kills_run, kills, "%s: SIGKILL runs", what);
  is(c.divergences, 0, "%s: no divergence", what);
  if (c.divergences)
    show_report(&c, 4000);
  ora_obuf_free(&c.report);
}

static void negative(void) {
  ora_campaign c;
  memset(&c, 0, sizeof c);
  c.seed = 11;
  c.workloads = 1;
  c.ops = 40;
  c.crash_sample = 20;
  c.selftest_sync_off = 1;
  int rc = ora_campaign_run(&c);
  is(rc, KJ_OK, "negative: campaign ran");
  ok(c.divergences > 0,
     "negative: KJ_SYNC_OFF checked as FULL is caught (%llu divergences)",
     (unsigned long long)c.divergences);
  ok(c.report.len > 0 && strstr((const char *)c.report.p, "crash: seed=11"),
     "negative: the report has a crash reproducer line");
  ok(c.report.len > 0 && strstr((const char *)c.report.p, "matches no commit"),
     "negative: lost acknowledged commits are named as such");
  if (c.report.len)
    show_report(&c, 600);
  ora_obuf_free(&c.report);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The line after "keyjournal oracle --replay '" in the report, in buf. */
static int replay_of(const ora_campaign *c, char *buf, size_t cap) {
  const char *p = c->report.len ? strstr((const char *)c->report.p,
                                         "keyjournal oracle --replay '")
                                : NULL;
  if (!p)
    return 0;
  p += strlen("keyjournal oracle --replay '");
  size_t n = strcspn(p, "'");
  if (n >= cap)
    return 0;
  memcpy(buf, p, n);
  buf[n] = 0;
  return 1;
}

/* A one-workload campaign of ops ops and sample crash points. */
static void one(ora_campaign *c, uint64_t seed, size_t ops, size_t sample) {
  memset(c, 0, sizeof *c);
  c->seed = seed;
  c->workloads = 1;
  c->ops = ops;
  c->crash_sample = sample;
}

/* The campaign shrinks its first crash divergence to a few ops, and the
 * shrunk line replays the failure on its own in well under a second. */
static void shrunk_replay(void) {
  ora_campaign c;
  one(&c, 12, 150, 6);
  c.selftest_sync_off = 1;
  is(ora_campaign_run(&c), KJ_OK, "shrink: campaign ran");
  ok(c.divergences > 0, "shrink: the lost commits are caught");
  is(c.shrinks, 1, "shrink: the first crash divergence was shrunk");
  const char *sh =
      c.report.len ? strstr((const char *)c.report.p, "  shrunk: ") : NULL;
  ok(sh && !strstr(sh, "NO LONGER"), "shrink: the shrunk case still fails");
  char line[2048];
  ok(replay_of(&c, line, sizeof line), "shrink: a --replay line is printed");
  if (c.report.len)
    show_report(&c, 1200);
  ora_obuf_free(&c.report);

  /* A crash point late in the workload (op 123 of 300, which a crash at
   * VFS call 320 meets in that campaign): shrunk to a few ops. */
  memset(&c, 0, sizeof c);
  c.selftest_sync_off = 1;
  is(ora_replay(&c,
                "crash: seed=12 ops=300 mix=realistic mode=full "
                "snapshots=small point=320 pattern=drop recovery_crash=0 "
                "salt=16",
                30000),
     KJ_OK, "shrink: replay of a late crash point");
  sh = c.report.len ? strstr((const char *)c.report.p, "  shrunk: ") : NULL;
  unsigned long kept = sh ? strtoul(sh + strlen("  shrunk: "), NULL, 10) : 0;
  ok(c.divergences == 1 && sh && kept >= 1 && kept <= 12 &&
         !strstr(sh, "NO LONGER"),
     "shrink: to %lu of 300 ops, still failing", kept);
  ok(replay_of(&c, line, sizeof line) && strstr(line, " keep="),
     "shrink: its --replay line keeps those ops");
  if (c.report.len)
    show_report(&c, 2500);
  ora_obuf_free(&c.report);

  /* The shrunk line alone: it fails again, quickly. */
  memset(&c, 0, sizeof c);
  c.selftest_sync_off = 1;
  double t0 = now_s();
  is(ora_replay(&c, line, 0), KJ_OK, "replay: the line reads");
  double dt = now_s() - t0;
  ok(c.divergences > 0, "replay: it fails again");
  printf("# replay of the shrunk line: %.3f s\n", dt); /* not asserted */
  ora_obuf_free(&c.report);

  /* The same line on a correct store passes. */
  memset(&c, 0, sizeof c);
  is(ora_replay(&c, line, 0), KJ_OK, "replay without the planted loss");
  is(c.divergences, 0, "replay: a correct store passes it");
  ora_obuf_free(&c.report);

  /* A chain whose first generation lost commits: replayed alone, it is
   * printed as a crash point and shrunk; thread lines replay too. */
  one(&c, 13, 120, 0);
  c.generations = 3;
  c.selftest_sync_off = 1;
  is(ora_campaign_run(&c), KJ_OK, "chain: campaign ran");
  const char *ch =
      c.report.len ? strstr((const char *)c.report.p, "chain: seed=13 ") : NULL;
  ok(ch != NULL, "chain: a chain line is reported");
  char chain[1024] = "";
  if (ch) {
    size_t n = strcspn(ch, "\n");
    if (n < sizeof chain) {
      memcpy(chain, ch, n);
      chain[n] = 0;
    }
  }
  ora_obuf_free(&c.report);
  memset(&c, 0, sizeof c);
  c.selftest_sync_off = 1;
  is(ora_replay(&c, chain, 3000), KJ_OK, "chain: the line replays");
  ok(c.divergences > 0, "chain: and fails again");
  if (strstr(chain, " generation=1 "))
    ok(c.report.len && strstr((const char *)c.report.p, "as a crash point: ") &&
           strstr((const char *)c.report.p, "  shrunk: "),
       "chain: a first-generation failure is shrunk as a crash point");
  if (c.report.len)
    show_report(&c, 1500);
  ora_obuf_free(&c.report);
  memset(&c, 0, sizeof c);
  is(ora_replay(&c,
                "threads: seed=3 threads=4 commits=24 die_after_sync=5 "
                "point=0 pattern=drop",
                0),
     KJ_OK, "threads: the line replays");
  is(c.thread_points, 1, "threads: one run");
  is(c.divergences, 0, "threads: a correct engine passes it");
  ora_obuf_free(&c.report);
  memset(&c, 0, sizeof c);
  c.watchdog_ms = 500;
  is(ora_replay(&c,
                "threads: seed=3 threads=4 commits=24 die_after_sync=0 "
                "point=0 fail_sync=3 pattern=drop",
                0),
     KJ_OK, "threads: a line whose third sync fails replays, watched");
  is(c.thread_points, 1, "threads: one run (counted through its child)");
  ok(c.divergences == 0 && c.hangs == 0,
     "threads: every writer returns after the failing sync, nothing lost");
  if (c.report.len)
    show_report(&c, 1500);
  ora_obuf_free(&c.report);

  /* Lines it cannot read. */
  static const char *const bad[] = {
      "",
      "crash: seed=1",
      "kills: seed=1 ops=10",
      "crash: seed=1 ops=10 mix=realistic mode=full snapshots=small "
      "point=3 pattern=melt recovery_crash=0 salt=0",
      "crash: seed=1 ops=10 mix=realistic mode=full snapshots=small "
      "point=3 pattern=drop recovery_crash=0 salt=0 keep=4-2",
      "crash: seed=1 ops=10 mix=realistic mode=full snapshots=small "
      "point=3 pattern=drop recovery_crash=0 salt=0 keep=10",
      "fault: seed=1 ops=10 mix=realistic mode=full snapshots=small "
      "method=write nth=0 status=EIO once"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    memset(&c, 0, sizeof c);
    is(ora_replay(&c, bad[i], 0), KJ_EINVAL, "replay refuses \"%s\"", bad[i]);
    ok(c.report.len > 0 && c.divergences == 0, "with a line, no divergence");
    ora_obuf_free(&c.report);
  }
}

/* A chain that fails only in a later generation (its stores synced
 * nothing from the second generation on): the campaign shrinks it as a
 * chain, each death following its op, to a line with crashes= and keep=
 * that fails again alone and passes on a correct engine. */
static void chain_shrink(void) {
  ora_campaign c;
  one(&c, 17, 150, 4);
  c.generations = 3;
  c.selftest_sync_off = 2;
  is(ora_campaign_run(&c), KJ_OK, "chain shrink: campaign ran");
  const char *r = c.report.len ? (const char *)c.report.p : "";
  ok(c.divergences > 0 && strstr(r, "chain: seed=17 ") &&
         !strstr(r, " generation=1 "),
     "chain shrink: only later generations fail");
  const char *sh = strstr(r, "  shrunk: ");
  unsigned long kept = sh ? strtoul(sh + strlen("  shrunk: "), NULL, 10) : 0;
  ok(sh && strstr(sh, " generations (") && !strstr(sh, "NO LONGER") &&
         kept >= 1 && kept < 150,
     "chain shrink: shrunk as a chain to %lu of 150 ops", kept);
  char line[4096] = "";
  ok(replay_of(&c, line, sizeof line) && !strncmp(line, "chain: ", 7) &&
         strstr(line, " crashes=") && strstr(line, " keep="),
     "chain shrink: its line names the deaths and the ops kept");
  if (c.report.len)
    show_report(&c, 2500);
  ora_obuf_free(&c.report);

  memset(&c, 0, sizeof c);
  c.selftest_sync_off = 2;
  is(ora_replay(&c, line, 0), KJ_OK, "chain shrink: the line replays");
  ok(c.divergences > 0, "chain shrink: and fails again");
  ora_obuf_free(&c.report);
  memset(&c, 0, sizeof c);
  is(ora_replay(&c, line, 0), KJ_OK, "chain shrink: on a correct engine");
  ok(c.divergences == 0 && c.chain_points > 1,
     "chain shrink: it passes (%llu generations)",
     (unsigned long long)c.chain_points);
  ora_obuf_free(&c.report);

  static const char *const bad[] = {
      "chain: seed=1 ops=10 mix=realistic mode=full snapshots=small salt=1 "
      "crashes=",
      "chain: seed=1 ops=10 mix=realistic mode=full snapshots=small salt=1 "
      "crashes=3/melt",
      "chain: seed=1 ops=10 mix=realistic mode=full snapshots=small salt=1 "
      "crashes=0/drop",
      "chain: seed=1 ops=10 mix=realistic mode=full snapshots=small salt=1 "
      "crashes=3/drop,",
      "chain: seed=1 ops=10 mix=realistic mode=full snapshots=small salt=1 "
      "keep=9-12"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    memset(&c, 0, sizeof c);
    is(ora_replay(&c, bad[i], 0), KJ_EINVAL, "replay refuses \"%s\"", bad[i]);
    ora_obuf_free(&c.report);
  }
}

/* A threads line shrinks too: a planted loss (stores that sync nothing)
 * fails with fewer threads and commits. */
static void threads_shrink(void) {
  ora_campaign c;
  memset(&c, 0, sizeof c);
  c.selftest_sync_off = 1;
  is(ora_replay(&c,
                "threads: seed=3 threads=4 commits=24 die_after_sync=5 "
                "point=0 pattern=drop",
                20000),
     KJ_OK, "threads shrink: the line replays");
  const char *r = c.report.len ? (const char *)c.report.p : "";
  const char *sh = strstr(r, "  shrunk: ");
  unsigned long n = sh ? strtoul(sh + strlen("  shrunk: "), NULL, 10) : 0;
  ok(c.divergences > 0 && sh && n >= 2 && n < 4 &&
         strstr(sh, "--replay 'threads: seed=3 "),
     "threads shrink: it fails, and is shrunk to %lu threads", n);
  if (c.report.len)
    show_report(&c, 1500);
  ora_obuf_free(&c.report);
}

/* A sync that never returns (the fault VFS's self-test): the campaign's
 * watchdog reports the hang with the case that hung, shrunk, and the
 * shrunk line, replayed under a watchdog, reports the hang again instead
 * of hanging; without the planted hang the same line passes. */
static void hang_replay(void) {
  ora_fault_vfs_selftest_hang(1);
  ora_campaign c;
  one(&c, 14, 60, 4);
  c.watchdog_ms = 1000;
  is(ora_campaign_run(&c), KJ_OK, "hang: campaign ran");
  is(c.hangs, 1, "hang: one hang reported");
  const char *r = c.report.len ? (const char *)c.report.p : "";
  ok(strstr(r, "hang: seed=14 ") && strstr(r, "phase=faults"),
     "hang: the report names the seed and the phase");
  const char *hc = strstr(r, "the case that hung: fault: seed=14 ");
  ok(hc && strstr(hc, " method=sync ") && strstr(hc, " persistent"),
     "hang: and the case that hung (a persistent sync fault)");
  const char *sh = strstr(r, "  shrunk: ");
  unsigned long kept = sh ? strtoul(sh + strlen("  shrunk: "), NULL, 10) : 0;
  ok(sh && !strstr(sh, "NO LONGER") && kept >= 1 && kept < 60,
     "hang: shrunk to %lu of 60 ops, still hanging", kept);
  char line[2048] = "";
  ok(replay_of(&c, line, sizeof line) && !strncmp(line, "fault: ", 7),
     "hang: a --replay line is printed");
  if (c.report.len)
    show_report(&c, 2500);
  ora_obuf_free(&c.report);

  memset(&c, 0, sizeof c);
  c.watchdog_ms = ORA_REPLAY_WATCHDOG_MS;
  double t0 = now_s();
  is(ora_replay(&c, line, 0), KJ_OK, "hang: the shrunk line replays");
  printf("# replay of the hang: %.3f s\n", now_s() - t0); /* not asserted */
  ok(c.hangs == 1 && c.divergences == 1 && c.report.len &&
         strstr((const char *)c.report.p, "hang: fault: "),
     "hang: and reports the hang again");
  ora_obuf_free(&c.report);

  ora_fault_vfs_selftest_hang(0);
  memset(&c, 0, sizeof c);
  c.watchdog_ms = ORA_REPLAY_WATCHDOG_MS;
  is(ora_replay(&c, line, 0), KJ_OK, "hang: replay without the planted hang");
  ok(c.hangs == 0 && c.divergences == 0, "hang: a correct store passes it");
  ora_obuf_free(&c.report);
}

int main(void) {
  run("full", 1, 2, 40, 20, 0, 0, 3);
  run("normal", 2, 2, 40, 20, 0, 1, 2);
  run("sweep-all", 3, 1, 20, 0, 1, 0, 0);
  negative();
  shrunk_replay();
  chain_shrink();
  threads_shrink();
  hang_replay();
  return tap_done();
}
