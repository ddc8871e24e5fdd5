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
#include <string.h>

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

int main(void) {
  run("full", 1, 2, 40, 20, 0, 0, 3);
  run("normal", 2, 2, 40, 20, 0, 1, 2);
  run("sweep-all", 3, 1, 20, 0, 1, 0, 0);
  negative();
  return tap_done();
}
