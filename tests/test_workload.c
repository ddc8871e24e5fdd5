/*
 * tests/test_workload.c - the oracle's workload generator and differential
 * runner (oracle/workload.c, oracle/runner.c): workloads are deterministic
 * in their seed, the two mixes together use every domain operation, two
 * native backends never diverge, and a deliberately wrong backend (a
 * native one whose session_get corrupts some records) is caught and shrunk
 * to a small reproducer that still diverges. When KJ_TEST_SQLITE_FACTORY
 * is built in (the SQLite reference exists), a native-vs-SQLite run is
 * reported as a diagnostic too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyjournal.h"
#include "keyjournal/sys/backend.h"
#include "oracle.h"
#include "tap.h"
#include "testutil.h"

/* ---- factories ---------------------------------------------------------- */

static int native_factory(void *ctx, kj_backend **out) {
  (void)ctx;
  kj_options o;
  char *em = NULL;
  tu_options(&o);
  o.clock = ora_oracle_clock;
  o.clock_ctx = NULL;
  int rc = kj_backend_open(NULL, &o, out, &em);
  if (rc != KJ_OK)
    fprintf(stderr, "# native open: %s\n", em ? em : "?");
  kj_free(em);
  return rc;
}

/* A native backend whose session_get flips the first byte of records
 * whose length is 3 mod 7. The handle is pointed at a copy of the native
 * table whose signal group differs in that one operation (its struct
 * kj_backend is embedded first in its own struct, so the native functions
 * still get their own object). */
static int (*real_session_get)(kj_backend *, kj_tx *, uint32_t, const void *,
                               size_t, void **, size_t *);
static unsigned long bad_hits;

static int bad_session_get(kj_backend *b, kj_tx *t, uint32_t dev,
                           const void *addr, size_t alen, void **rec,
                           size_t *rlen) {
  int rc = real_session_get(b, t, dev, addr, alen, rec, rlen);
  if (rc == KJ_OK && *rlen % 7 == 3) {
    ((uint8_t *)*rec)[0] ^= 0x40;
    bad_hits++;
  }
  return rc;
}

static int bad_factory(void *ctx, kj_backend **out) {
  int rc = native_factory(ctx, out);
  if (rc != KJ_OK)
    return rc;
  static kj_backend_ops bad_ops;
  static kj_signal_ops bad_signal;
  bad_ops = *(*out)->ops;
  bad_signal = *bad_ops.signal;
  real_session_get = bad_signal.session_get;
  bad_signal.session_get = bad_session_get;
  bad_ops.signal = &bad_signal;
  (*out)->ops = &bad_ops;
  return KJ_OK;
}

/* Natives whose cutoffs are off by one: token expiry removes token_ts <=
 * cutoff (the call gets cutoff + 1), the skipped-key cleanup removes
 * created_at <= now - max_age (the call gets max_age - 1). */
static int (*real_delete_expired)(kj_backend *, kj_tx *, uint32_t, int64_t,
                                  uint64_t *);
static int (*real_cleanup)(kj_backend *, kj_tx *, uint32_t, int64_t,
                           uint64_t *);

static int incl_delete_expired(kj_backend *b, kj_tx *t, uint32_t dev,
                               int64_t cutoff, uint64_t *removed) {
  return real_delete_expired(
      b, t, dev, cutoff == INT64_MAX ? cutoff : cutoff + 1, removed);
}

static int incl_cleanup(kj_backend *b, kj_tx *t, uint32_t dev, int64_t age,
                        uint64_t *removed) {
  return real_cleanup(b, t, dev, age - 1, removed);
}

/* ctx: "token" or "skipped", the one comparison made inclusive. */
static int inclusive_factory(void *ctx, kj_backend **out) {
  int rc = native_factory(NULL, out);
  if (rc != KJ_OK)
    return rc;
  static kj_backend_ops ops;
  static kj_protocol_ops protocol;
  static kj_ratchet_ops ratchet;
  ops = *(*out)->ops;
  protocol = *ops.protocol;
  ratchet = *ops.ratchet;
  real_delete_expired = protocol.tc_token_delete_expired;
  real_cleanup = ratchet.ratchet_cleanup_skipped;
  if (!strcmp(ctx, "token"))
    protocol.tc_token_delete_expired = incl_delete_expired;
  else
    ratchet.ratchet_cleanup_skipped = incl_cleanup;
  ops.protocol = &protocol;
  ops.ratchet = &ratchet;
  (*out)->ops = &ops;
  return KJ_OK;
}

#ifdef KJ_TEST_SQLITE_FACTORY
static int sqlite_factory(void *ctx, kj_backend **out) {
  (void)ctx;
  char *em = NULL;
  int rc = ora_sqlite_open(":memory:", 0, ora_oracle_clock, NULL, out, &em);
  if (rc != KJ_OK)
    fprintf(stderr, "# sqlite open: %s\n", em ? em : "?");
  kj_free(em);
  return rc;
}
#endif

/* ---- helpers --------------------------------------------------------------
 */

static void describe_all(const ora_workload *w, ora_obuf *out) {
  for (size_t i = 0; i < w->n; i++) {
    ora_wop_describe(ora_workload_op(w, i), out);
    ora_obuf_add(out, "\n", 1);
  }
}

static int same(const ora_obuf *a, const ora_obuf *b) {
  return a->len == b->len && (a->len == 0 || !memcmp(a->p, b->p, a->len));
}

/* The op count of "shrunk reproducer: N op(s)" in a report, or -1. */
static long shrunk_len(const ora_obuf *r) {
  if (!r->p)
    return -1;
  const char *s = strstr((const char *)r->p, "shrunk reproducer: ");
  return s ? strtol(s + strlen("shrunk reproducer: "), NULL, 10) : -1;
}

static void diag_report(const ora_obuf *r) {
  if (!r->len)
    return;
  const char *p = (const char *)r->p;
  while (*p) {
    const char *e = strchr(p, '\n');
    int n = e ? (int)(e - p) : (int)strlen(p);
    printf("# %.*s\n", n > 400 ? 400 : n, p);
    if (!e)
      break;
    p = e + 1;
  }
}

/* ---- tests ----------------------------------------------------------------
 */

static void test_determinism(void) {
  for (int mix = 0; mix < 2; mix++) {
    ora_workload w1, w2, w3;
    ora_obuf d1 = {0}, d2 = {0}, d3 = {0};
    is(ora_workload_gen(42, 400, (ora_mix)mix, &w1), KJ_OK, "gen mix %d", mix);
    is(ora_workload_gen(42, 400, (ora_mix)mix, &w2), KJ_OK, "gen again");
    is(ora_workload_gen(43, 400, (ora_mix)mix, &w3), KJ_OK, "gen other seed");
    is(w1.n, 400, "mix %d: n ops", mix);
    describe_all(&w1, &d1);
    describe_all(&w2, &d2);
    describe_all(&w3, &d3);
    ok(d1.len > 400 * 10 && same(&d1, &d2),
       "mix %d: same seed, same workload text", mix);
    ok(!same(&d1, &d3), "mix %d: different seed, different workload", mix);

    /* A subset keeps exactly the chosen ops. */
    uint8_t *keep = calloc(w1.n, 1);
    ora_workload s;
    for (size_t i = 0; i < w1.n; i += 3)
      keep[i] = 1;
    is(ora_workload_subset(&w1, keep, &s), KJ_OK, "subset");
    ora_obuf a = {0}, b = {0};
    for (size_t i = 0, j = 0; i < w1.n; i++)
      if (keep[i]) {
        ora_wop_describe(ora_workload_op(&w1, i), &a);
        ora_wop_describe(ora_workload_op(&s, j++), &b);
      }
    ok(s.n == (w1.n + 2) / 3 && same(&a, &b),
       "mix %d: subset holds the kept ops", mix);
    ora_obuf_free(&a);
    ora_obuf_free(&b);
    ora_workload_free(&s);
    free(keep);
    ora_obuf_free(&d1);
    ora_obuf_free(&d2);
    ora_obuf_free(&d3);
    ora_workload_free(&w1);
    ora_workload_free(&w2);
    ora_workload_free(&w3);
  }
}

static void test_coverage(void) {
  int nk = ora_wop_nkinds();
  unsigned long *cnt = calloc((size_t)nk, sizeof *cnt);
  unsigned long real_sessions = 0, real_total = 0;
  for (int mix = 0; mix < 2; mix++) {
    ora_workload w;
    is(ora_workload_gen(7 + (uint64_t)mix, 5000, (ora_mix)mix, &w), KJ_OK,
       "gen 5000");
    for (size_t i = 0; i < w.n; i++) {
      int k = ora_wop_kind(ora_workload_op(&w, i));
      if (k >= 0 && k < nk)
        cnt[k]++;
      if (mix == 0) {
        real_total++;
        real_sessions += !strncmp(ora_wop_kind_name(k), "kj_session_", 11);
      }
    }
    ora_workload_free(&w);
  }
  int missing = 0;
  for (int k = 0; k < nk; k++)
    if (!cnt[k]) {
      missing++;
      printf("# never generated: %s\n", ora_wop_kind_name(k));
    }
  ok(nk >= 60, "every domain operation has a kind (%d)", nk);
  is(missing, 0, "every op kind appears in a realistic+adversarial sample");
  ok(real_sessions * 100 >= real_total * 35,
     "session ops dominate the realistic mix (%lu of %lu)", real_sessions,
     real_total);
  free(cnt);
}

/* Applying an op directly: outputs and created slot ids are written. */
static void test_apply(void) {
  kj_backend *b = NULL;
  ora_workload w;
  uint32_t slots[ORA_WORKLOAD_MAX_SLOTS];
  size_t nslots = 0;
  ora_obuf res = {0}, d1 = {0}, d2 = {0};
  is(native_factory(NULL, &b), KJ_OK, "open native");
  is(ora_workload_gen(5, 200, ORA_MIX_REALISTIC, &w), KJ_OK, "gen");
  int in_tx = 0;
  for (size_t i = 0; i < w.n; i++)
    if (ora_wop_is_begin(ora_workload_op(&w, i)))
      in_tx = 1;
    else if (ora_wop_is_commit(ora_workload_op(&w, i)) ||
             ora_wop_is_rollback(ora_workload_op(&w, i)))
      in_tx = 0;
    else if (!in_tx)
      ora_wop_apply(ora_workload_op(&w, i), b, NULL, slots, &nslots, &res);
  ok(nslots >= 2 && slots[0] == 1 && slots[1] == 2,
     "device creates fill slots[] (%zu)", nslots);
  ok(res.p && strstr((char *)res.p, "kj_device_create rc=0 id=1\n") &&
         strstr((char *)res.p, "kj_session_put rc=0\n"),
     "apply writes status texts");
  ora_workload_dump(b, slots, nslots, &d1);
  ora_workload_dump(b, slots, nslots, &d2);
  ok(d1.len > 1000 && same(&d1, &d2), "dump is stable (%zu bytes)", d1.len);
  ok(strstr((char *)d1.p, "kj_session_get rc=0 rec=") != NULL,
     "dump shows stored sessions");
  ora_obuf_free(&res);
  ora_obuf_free(&d1);
  ora_obuf_free(&d2);
  ora_workload_free(&w);
  is(kj_backend_close(b), KJ_OK, "close");
}

static void test_native_vs_native(void) {
  static const uint64_t seeds[] = {1, 2, 3, 0xdeadbeef};
  for (int mix = 0; mix < 2; mix++)
    for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++) {
      ora_workload w;
      ora_diff_result r;
      is(ora_workload_gen(seeds[s], 500, (ora_mix)mix, &w), KJ_OK, "gen");
      is(ora_diff_run(&w, native_factory, NULL, native_factory, NULL, 50, 1,
                      &r),
         KJ_OK, "run");
      ok(!r.diverged && r.ops_run == 500,
         "native vs native, mix %d seed %llu: no divergence (%zu ops)", mix,
         (unsigned long long)seeds[s], r.ops_run);
      diag_report(&r.report);
      ora_obuf_free(&r.report);
      ora_workload_free(&w);
    }
}

static void test_divergent(void) {
  ora_workload w;
  ora_diff_result r;
  is(ora_workload_gen(11, 500, ORA_MIX_REALISTIC, &w), KJ_OK, "gen");
  bad_hits = 0;
  is(ora_diff_run(&w, native_factory, NULL, bad_factory, NULL, 50, 1, &r),
     KJ_OK, "run against a wrong backend");
  ok(r.diverged, "the divergence is detected");
  ok(r.op_index < 500, "at op %zu", r.op_index);
  ok(bad_hits > 0, "the wrong backend did corrupt records (%lu)", bad_hits);
  long len = shrunk_len(&r.report);
  ok(len >= 1 && len <= 5, "shrunk to a small reproducer (%ld ops)", len);
  ok(r.report.p && !strstr((char *)r.report.p, "NO LONGER DIVERGES") &&
         strstr((char *)r.report.p, "diverges at step") &&
         strstr((char *)r.report.p, "kj_session_put(b, t, slot[") &&
         strstr((char *)r.report.p, "seed 11"),
     "the reproducer still diverges and names seed and op");
  diag_report(&r.report);
  ora_obuf_free(&r.report);

  /* Without shrinking: the report is there, no reproducer. */
  is(ora_diff_run(&w, native_factory, NULL, bad_factory, NULL, 0, 0, &r), KJ_OK,
     "run without shrinking");
  ok(r.diverged && shrunk_len(&r.report) == -1,
     "diverges, nothing shrunk without shrink");
  ora_obuf_free(&r.report);
  ora_workload_free(&w);
}

/* The generators aim expiry cutoffs and cleanup ages at the timestamps
 * the store holds, exactly or one off, so that a strict cutoff is told
 * from an inclusive one by nearly every realistic workload of 1000 ops,
 * not just by lucky ones: of the 50 realistic workloads of seeds 1..100
 * at most one in ten may miss (3 and 1 do; without the aim all 50 and 17
 * did), and the three of the quick-start campaign (seeds 1, 3, 5) must
 * not. The adversarial mix holds few skipped keys (its saves are mostly
 * empty, duplicated or refused): one in three of its campaign workloads
 * must tell. */
static void test_boundaries(void) {
  static const char *const which[] = {"token", "skipped"};
  for (size_t k = 0; k < 2; k++) {
    unsigned real = 0, missed = 0, quick_missed = 0, adv = 0, adv_told = 0;
    for (uint64_t seed = 1; seed <= 100; seed++) {
      ora_mix mix = seed % 2 ? ORA_MIX_REALISTIC : ORA_MIX_ADVERSARIAL;
      if (mix == ORA_MIX_ADVERSARIAL && seed > 6)
        continue;
      ora_workload w;
      ora_diff_result r;
      if (ora_workload_gen(seed, 1000, mix, &w) != KJ_OK) {
        ok(0, "gen seed %llu", (unsigned long long)seed);
        continue;
      }
      int rc = ora_diff_run(&w, native_factory, NULL, inclusive_factory,
                            (void *)which[k], 0, 0, &r);
      if (rc != KJ_OK)
        ok(0, "run seed %llu: %s", (unsigned long long)seed, kj_strerror(rc));
      if (mix == ORA_MIX_ADVERSARIAL) {
        adv++;
        adv_told += r.diverged != 0;
      } else {
        real++;
        if (!r.diverged) {
          missed++;
          quick_missed += seed <= 6;
          printf("# seed %llu: the inclusive %s cutoff passed\n",
                 (unsigned long long)seed, which[k]);
        }
      }
      ora_obuf_free(&r.report);
      ora_workload_free(&w);
    }
    ok(missed * 10 <= real,
       "%u of %u realistic workloads miss an inclusive %s cutoff", missed, real,
       which[k]);
    is(quick_missed, 0, "no quick-start workload misses it");
    ok(adv_told * 3 >= adv,
       "%u of %u adversarial workloads tell an inclusive %s cutoff", adv_told,
       adv, which[k]);
  }
}

#ifdef KJ_TEST_SQLITE_FACTORY
static void test_native_vs_sqlite(void) {
  for (int mix = 0; mix < 2; mix++) {
    ora_workload w;
    ora_diff_result r;
    ora_workload_gen(100 + (uint64_t)mix, 500, (ora_mix)mix, &w);
    int rc =
        ora_diff_run(&w, native_factory, NULL, sqlite_factory, NULL, 50, 1, &r);
    printf("# native vs sqlite mix %d: rc=%d diverged=%d\n", mix, rc,
           r.diverged);
    diag_report(&r.report);
    ora_obuf_free(&r.report);
    ora_workload_free(&w);
  }
}
#endif

int main(void) {
  test_determinism();
  test_coverage();
  test_apply();
  test_native_vs_native();
  test_divergent();
  test_boundaries();
#ifdef KJ_TEST_SQLITE_FACTORY
  test_native_vs_sqlite();
#endif
  return tap_done();
}
