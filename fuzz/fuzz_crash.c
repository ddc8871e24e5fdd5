/*
 * fuzz/fuzz_crash.c - libFuzzer target for crash recovery: the input
 * chooses a seeded oracle workload (seed, length, mix, sync mode) and a
 * fault schedule - the VFS call at which the process dies, the damage
 * pattern of the power loss that follows, a death during recovery, and an
 * Nth-call EIO/ENOSPC fault on write, sync, read, rename or open -, and
 * ora_crash_check (oracle/crash.c) runs it through the fault VFS and
 * compares the recovered store with the SQLite oracle: the state must be
 * the oracle's after some commit between the last durable one and the one
 * in flight, and the op that met a failure must have reported it. A
 * divergence prints the check's report and calls abort() so that libFuzzer
 * records the input. Temporary stores go under $TMPDIR.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "keyjournal.h"
#include "oracle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_provider fp = fz_start(data, size, 5);
  uint64_t seed = fz_u64(&fp);
  size_t n = (size_t)fz_range(&fp, 1, 120);
  ora_mix mix = fz_bool(&fp) ? ORA_MIX_ADVERSARIAL : ORA_MIX_REALISTIC;
  ora_campaign c;
  memset(&c, 0, sizeof c);
  c.normal = fz_bool(&fp);
  ora_crash_plan plan;
  memset(&plan, 0, sizeof plan);
  /* A short workload makes a few hundred VFS calls: points past its end
   * mean "no death", then power loss after the clean close. */
  plan.point = fz_range(&fp, 0, 600);
  plan.pattern = (int)fz_range(&fp, 0, ORA_CRASH_NPATTERNS - 1);
  plan.recovery_point = fz_bool(&fp) ? fz_range(&fp, 1, 60) : 0;
  plan.fault_method = (int)fz_range(&fp, 0, ORA_FAULT_NMETHODS) - 1;
  plan.fault_nth = fz_range(&fp, 1, 40);
  plan.fault_status = fz_bool(&fp) ? KJ_ENOSPC : KJ_EIO;
  plan.fault_persistent = fz_bool(&fp);
  plan.salt = fz_u64(&fp);
  plan.small_snapshots = fz_bool(&fp);

  ora_workload w;
  if (ora_workload_gen(seed, n, mix, &w) != KJ_OK)
    return 0; /* out of memory: not a finding */
  int rc = ora_crash_check(&c, &w, &plan);
  if (rc != KJ_OK) {
    fprintf(stderr, "fuzz_crash: ora_crash_check failed: %s\n",
            kj_strerror(rc));
    abort();
  }
  if (c.divergences) {
    fprintf(stderr, "fuzz_crash: divergence (seed %llu, n %zu, mix %d)\n%.*s",
            (unsigned long long)seed, n, (int)mix, (int)c.report.len,
            c.report.p ? (const char *)c.report.p : "");
    abort();
  }
  ora_obuf_free(&c.report);
  ora_workload_free(&w);
  return 0;
}
