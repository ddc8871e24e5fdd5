/*
 * tests/test_oracle_kv.c - raw key-value differential runs (oracle/kv.c):
 * seeded runs of the raw store API against the SQLite reference agree on
 * every result and on the final state, and count their ops; and negative
 * tests: with the reference made wrong on purpose (ora_kv_selftest_break:
 * read-your-writes forgotten after a delete, rollback_savepoint ignored, a
 * scan blind to the transaction's writes) a run must report a divergence
 * with a small shrunk reproducer that still diverges, the same report
 * each time for the same seed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "oracle.h"
#include "tap.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

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

static const char *report(const ora_campaign *c) {
  return c->report.len ? (const char *)c->report.p : "";
}

static void clean_runs(void) {
  static const uint64_t seeds[] = {1, 2, 3, 4, 5, 6, 7, 8, 0xdeadbeefull};
  ora_campaign c;
  memset(&c, 0, sizeof c);
  uint64_t want = 0;
  for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
    double t0 = now_s();
    int rc = ora_kv_check(&c, seeds[i], 1000);
    double dt = now_s() - t0;
    want += 1000;
    is(rc, KJ_OK, "seed %llu: the run worked", (unsigned long long)seeds[i]);
    is(c.divergences, 0, "seed %llu: no divergence (%.3f s for 1000 ops)",
       (unsigned long long)seeds[i], dt);
    is(c.kv_ops, want, "seed %llu: kv_ops counts the ops run",
       (unsigned long long)seeds[i]);
    if (c.divergences) {
      show_report(&c, 6000);
      break;
    }
  }
  ora_obuf_free(&c.report);

  /* A longer run, and no ops at all. */
  memset(&c, 0, sizeof c);
  is(ora_kv_check(&c, 99, 5000), KJ_OK, "5000 ops: the run worked");
  is(c.divergences, 0, "5000 ops: no divergence");
  is(c.kv_ops, 5000, "5000 ops: kv_ops");
  if (c.divergences)
    show_report(&c, 6000);
  is(ora_kv_check(&c, 5, 0), KJ_OK, "0 ops: the run worked");
  is(c.kv_ops, 5000, "0 ops: kv_ops unchanged");
  is(c.divergences, 0, "0 ops: no divergence");
  ora_obuf_free(&c.report);
  is(ora_kv_check(NULL, 1, 10), KJ_EINVAL, "NULL campaign: KJ_EINVAL");
}

/* The step count of the shrunk reproducer, or -1. */
static long shrunk_ops(const char *r) {
  const char *p = strstr(r, "shrunk reproducer: ");
  return p ? strtol(p + strlen("shrunk reproducer: "), NULL, 10) : -1;
}

/* Lines of the reproducer ("    N. ..."). */
static long repro_lines(const char *r) {
  const char *p = strstr(r, "shrunk reproducer: ");
  long n = 0;
  if (!p)
    return -1;
  p = strchr(p, '\n');
  while (p && !strncmp(p + 1, "    ", 4)) {
    n++;
    p = strchr(p + 1, '\n');
  }
  return n;
}

static void broken(int which, const char *what) {
  ora_campaign c;
  memset(&c, 0, sizeof c);
  ora_kv_selftest_break(which);
  uint64_t seed = 0;
  double dt = 0;
  for (uint64_t s = 1; s <= 20 && !c.divergences; s++) {
    double t0 = now_s();
    int rc = ora_kv_check(&c, s, 400);
    dt = now_s() - t0;
    if (rc != KJ_OK) {
      is(rc, KJ_OK, "%s: the run worked", what);
      break;
    }
    seed = s;
  }
  ok(c.divergences == 1, "%s: caught (seed %llu, %.3f s with the shrink)", what,
     (unsigned long long)seed, dt);
  const char *r = report(&c);
  char head[64];
  snprintf(head, sizeof head,
           "kv: seed=%llu ops=400 op_index=", (unsigned long long)seed);
  ok(!strncmp(r, head, strlen(head)), "%s: the report starts with '%s'", what,
     head);
  long m = shrunk_ops(r);
  ok(m >= 1 && m <= 8, "%s: the reproducer is small (%ld ops)", what, m);
  is(repro_lines(r), m, "%s: one line per reproducer op", what);
  ok(!strstr(r, "NO LONGER DIVERGES") && strstr(r, "diverges at step"),
     "%s: the reproducer still diverges", what);
  ok(strstr(r, "native:") && strstr(r, "reference:"),
     "%s: both texts are quoted", what);
  show_report(&c, 3000);

  /* The same seed gives the same report. */
  ora_campaign d;
  memset(&d, 0, sizeof d);
  is(ora_kv_check(&d, seed, 400), KJ_OK, "%s: rerun worked", what);
  ok(d.report.len == c.report.len &&
         !memcmp(d.report.p, c.report.p, c.report.len),
     "%s: same seed, same report", what);
  ora_obuf_free(&d.report);
  ora_obuf_free(&c.report);
  ora_kv_selftest_break(0);
}

int main(void) {
  clean_runs();
  broken(1, "read-your-writes after delete forgotten");
  broken(2, "rollback_savepoint ignored");
  broken(3, "scan ignores the transaction's writes");
  return tap_done();
}
