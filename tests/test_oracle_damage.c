/*
 * tests/test_oracle_damage.c - the damage and tamper campaigns
 * (oracle/damage.c): on a few seeds, every damaged or tampered store is
 * refused with KJ_ECORRUPT (or opens with its full state where the bytes do
 * not matter), with no divergence; and the checker can fail: with each
 * deliberate mis-judgement of ora_damage_selftest_break() it reports
 * divergences (a wrong state, a wrong file named, an undetectable splice,
 * checksums not recomputed, a failed read of a damaged run block, a crash
 * and a hang of the judging process), and a reported case replays alone,
 * quickly. The stores checkpoint, so both checks edit their run files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "oracle.h"
#include "tap.h"

#define OPS 300u

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

static int has(const ora_campaign *c, const char *s) {
  if (!c->report.len)
    return 0;
  ora_obuf_add((ora_obuf *)&c->report, "", 1);
  ((ora_obuf *)&c->report)->len--;
  return strstr((const char *)c->report.p, s) != NULL;
}

static void clean(uint64_t seed) {
  ora_campaign c;
  memset(&c, 0, sizeof c);
  double t0 = now_s();
  int rc = ora_damage_check(&c, seed, OPS);
  double t1 = now_s();
  is(rc, KJ_OK, "damage seed %llu: ran", (unsigned long long)seed);
  ok(c.damage_cases >= 100, "damage seed %llu: %llu cases in %.2f s",
     (unsigned long long)seed, (unsigned long long)c.damage_cases, t1 - t0);
  ok(c.run_cases >= 30 && c.run_cases < c.damage_cases,
     "damage seed %llu: %llu of the cases damage the run file",
     (unsigned long long)seed, (unsigned long long)c.run_cases);
  is(c.divergences, 0, "damage seed %llu: no divergence",
     (unsigned long long)seed);
  if (c.divergences || rc)
    show_report(&c, 6000);
  ora_obuf_free(&c.report);

  memset(&c, 0, sizeof c);
  t0 = now_s();
  rc = ora_tamper_check(&c, seed, OPS);
  t1 = now_s();
  is(rc, KJ_OK, "tamper seed %llu: ran", (unsigned long long)seed);
  ok(c.tamper_cases >= 50, "tamper seed %llu: %llu cases in %.2f s",
     (unsigned long long)seed, (unsigned long long)c.tamper_cases, t1 - t0);
  ok(c.run_cases >= 15 && c.run_cases < c.tamper_cases,
     "tamper seed %llu: %llu of the cases edit the run file",
     (unsigned long long)seed, (unsigned long long)c.run_cases);
  is(c.divergences, 0, "tamper seed %llu: no divergence",
     (unsigned long long)seed);
  if (c.divergences || rc)
    show_report(&c, 6000);
  ora_obuf_free(&c.report);
}

/* The value of the first "(replay: NAME='...')" in the report. */
static char *replay_value(const ora_campaign *c, const char *name) {
  if (!has(c, name))
    return NULL;
  const char *p = strstr((const char *)c->report.p, name);
  p += strlen(name) + 2; /* NAME=' */
  const char *e = strchr(p, '\'');
  if (!e)
    return NULL;
  char *v = malloc((size_t)(e - p) + 1);
  if (v) {
    memcpy(v, p, (size_t)(e - p));
    v[e - p] = 0;
  }
  return v;
}

static void broken_damage(int which, const char *says) {
  ora_campaign c;
  memset(&c, 0, sizeof c);
  ora_damage_selftest_break(which);
  int rc = ora_damage_check(&c, 7, 120);
  is(rc, KJ_OK, "selftest %d: damage check ran", which);
  ok(c.divergences > 0, "selftest %d: the damage checker reports it (%llu)",
     which, (unsigned long long)c.divergences);
  ok(has(&c, "damage: seed=7 ops=120 file="),
     "selftest %d: report lines name seed, ops and file", which);
  ok(has(&c, says), "selftest %d: the report says '%s'", which, says);
  if (c.report.len)
    show_report(&c, 400);

  /* The first reported case replays alone (its time is printed, not
   * asserted: tests never assert on timing). */
  char *only = replay_value(&c, "ORA_DAMAGE_ONLY");
  ok(only != NULL, "selftest %d: the report gives a replay", which);
  if (only) {
    ora_campaign r;
    memset(&r, 0, sizeof r);
    setenv("ORA_DAMAGE_ONLY", only, 1);
    double t0 = now_s();
    rc = ora_damage_check(&r, 7, 120);
    double t = now_s() - t0;
    unsetenv("ORA_DAMAGE_ONLY");
    is(r.damage_cases, 1, "selftest %d: the replay runs one case", which);
    is(r.divergences, 1, "selftest %d: and it diverges again", which);
    printf("# selftest %d: the replay took %.3f s\n", which, t);
    ora_obuf_free(&r.report);
    free(only);
  }
  ora_damage_selftest_break(0);
  ora_obuf_free(&c.report);
}

static void broken_tamper(int which, const char *says) {
  ora_campaign c;
  memset(&c, 0, sizeof c);
  ora_damage_selftest_break(which);
  int rc = ora_tamper_check(&c, 8, 120);
  is(rc, KJ_OK, "selftest %d: tamper check ran", which);
  ok(c.divergences > 0, "selftest %d: the tamper checker reports it (%llu)",
     which, (unsigned long long)c.divergences);
  ok(has(&c, "tamper: seed=8 ops=120 case="),
     "selftest %d: report lines name seed, ops and case", which);
  ok(has(&c, says), "selftest %d: the report says '%s'", which, says);
  if (c.report.len)
    show_report(&c, 400);
  char *only = replay_value(&c, "ORA_TAMPER_ONLY");
  ok(only != NULL, "selftest %d: the report gives a replay", which);
  if (only) {
    ora_campaign r;
    memset(&r, 0, sizeof r);
    setenv("ORA_TAMPER_ONLY", only, 1);
    ora_tamper_check(&r, 8, 120);
    unsetenv("ORA_TAMPER_ONLY");
    is(r.tamper_cases, 1, "selftest %d: the replay runs one case", which);
    is(r.divergences, 1, "selftest %d: and it diverges again", which);
    ora_obuf_free(&r.report);
    free(only);
  }
  ora_damage_selftest_break(0);
  ora_obuf_free(&c.report);
}

/* The worker that judges the cases crashes in one and hangs in the next:
 * both are divergences, and every other case still runs. */
static void broken_worker(void) {
  ora_campaign c, ref;
  memset(&ref, 0, sizeof ref);
  ora_damage_check(&ref, 9, 120);
  ora_obuf_free(&ref.report);
  memset(&c, 0, sizeof c);
  c.watchdog_ms = 1500;
  ora_damage_selftest_break(5);
  int rc = ora_damage_check(&c, 9, 120);
  ora_damage_selftest_break(0);
  is(rc, KJ_OK, "selftest 5: damage check ran");
  is(c.divergences, 2, "selftest 5: a crash and a hang reported");
  is(c.hangs, 1, "selftest 5: the hang is counted");
  ok(has(&c, "outcome=crash: the checking process died of signal"),
     "selftest 5: the crash is named");
  ok(has(&c, "outcome=hang: no outcome after 1500 ms"),
     "selftest 5: the hang is named");
  is(c.damage_cases, ref.damage_cases, "selftest 5: every case still ran");
  if (c.report.len)
    show_report(&c, 600);
  ora_obuf_free(&c.report);
}

/* The killed store's cases: each replays alone by name, and one that may
 * be cut is reported when the checker is made to expect the full state. */
static void killed(void) {
  static const char *const names[] = {
      "killed last header, untouched",
      "killed first-roll-over header, untouched"};
  for (size_t i = 0; i < 2; i++) {
    ora_campaign c;
    memset(&c, 0, sizeof c);
    setenv("ORA_DAMAGE_ONLY", names[i], 1);
    int rc = ora_damage_check(&c, 3, OPS);
    unsetenv("ORA_DAMAGE_ONLY");
    is(rc, KJ_OK, "%s: ran", names[i]);
    is(c.damage_cases, 1, "%s: one case", names[i]);
    is(c.divergences, 0, "%s: opens with the state after every commit",
       names[i]);
    ora_obuf_free(&c.report);
  }
  ora_campaign c;
  memset(&c, 0, sizeof c);
  ora_damage_selftest_break(6);
  is(ora_damage_check(&c, 3, OPS), KJ_OK, "selftest 6: ran");
  ora_damage_selftest_break(0);
  ok(c.divergences > 0 && has(&c, "damage: seed=3 killed ") &&
         has(&c, "(may be cut)") && has(&c, "succeeded with another state"),
     "selftest 6: a torn tail cut from the killed store is reported when "
     "the full state is expected");
  if (c.report.len)
    show_report(&c, 400);
  ora_obuf_free(&c.report);
}

int main(void) {
  clean(1);
  clean(2);
  broken_damage(1, "succeeded with another state");
  broken_damage(3, "the message does not name no-such-file.kjl");
  /* Damage inside a run block is found when the block is read: taken as a
   * divergence, some case reports that failed read (so the read path of
   * the checker is exercised, not only refusals at the open). */
  broken_damage(7, "reading the rows failed: KJ_ECORRUPT");
  broken_tamper(2, "succeeded with another state");
  broken_tamper(4, "does not say 'authentication'");
  broken_worker();
  killed();
  return tap_done();
}
