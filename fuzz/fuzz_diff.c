/*
 * fuzz/fuzz_diff.c - libFuzzer target for differential testing: the input
 * chooses a seeded oracle workload (seed, length, mix, check interval;
 * oracle/workload.c generates the domain operations) and ora_diff_run
 * (oracle/runner.c) applies it to the memory-only native backend and to
 * the SQLite reference in memory, comparing every result and the whole
 * state. A divergence prints the runner's report and calls abort() so that
 * libFuzzer records the input. Needs the oracle sources and SQLite. Owns
 * nothing beyond one run: both backends are closed by the runner.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "keyjournal.h"
#include "keyjournal/sys/backend.h"
#include "oracle.h"

static int native_factory(void *ctx, kj_backend **out) {
  (void)ctx;
  return fz_open_backend(ora_oracle_clock, out);
}

static int sqlite_factory(void *ctx, kj_backend **out) {
  (void)ctx;
  char *em = NULL;
  int rc = ora_sqlite_open(":memory:", 0, ora_oracle_clock, NULL, out, &em);
  kj_free(em);
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_provider fp = fz_start(data, size, 4);
  uint64_t seed = fz_u64(&fp);
  size_t n = (size_t)fz_range(&fp, 1, 300);
  ora_mix mix = fz_bool(&fp) ? ORA_MIX_ADVERSARIAL : ORA_MIX_REALISTIC;
  /* Full-state dumps are costly (one per check): keep them sparse. */
  size_t check_every = (size_t)fz_range(&fp, 16, 128);
  ora_workload w;
  if (ora_workload_gen(seed, n, mix, &w) != KJ_OK)
    return 0; /* out of memory: not a finding */
  ora_diff_result r;
  memset(&r, 0, sizeof r);
  int rc = ora_diff_run(&w, native_factory, NULL, sqlite_factory, NULL,
                        check_every, 0, &r);
  if (rc != KJ_OK) {
    fprintf(stderr, "fuzz_diff: ora_diff_run failed: %d\n", rc);
    abort();
  }
  if (r.diverged) {
    fprintf(stderr,
            "fuzz_diff: divergence (seed %llu, n %zu, mix %d) at op %zu\n"
            "%.*s\n",
            (unsigned long long)seed, n, (int)mix, r.op_index,
            (int)r.report.len, r.report.p ? (const char *)r.report.p : "");
    abort();
  }
  ora_obuf_free(&r.report);
  ora_workload_free(&w);
  return 0;
}
