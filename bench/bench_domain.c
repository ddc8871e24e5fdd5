/*
 * bench/bench_domain.c - per-operation cost of the domain stores on the
 * native backend: session put (durable and NORMAL), session get, and a
 * ratchet save with 50 skipped keys. Medians of several repetitions;
 * figures only, it asserts nothing.
 *
 *   bench_domain [DIR]     default: $TMPDIR
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keyjournal.h"

#define REPS 5

static const uint8_t bench_key[32] = {0x6b, 0x6a, 0x64};

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return v[n / 2];
}

static kj_backend *open_b(const char *dir, kj_sync sync) {
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    exit(1);
  kj_options o = KJ_OPTIONS_INIT;
  o.key = bench_key;
  o.sync = sync;
  kj_backend *b = NULL;
  char *em = NULL;
  if (kj_backend_open(dir, &o, &b, &em)) {
    fprintf(stderr, "open %s: %s\n", dir, em ? em : "?");
    exit(1);
  }
  return b;
}

static void check(int rc, kj_backend *b, const char *what) {
  if (rc) {
    fprintf(stderr, "%s: %s: %s\n", what, kj_strerror(rc),
            kj_backend_errmsg(b));
    exit(1);
  }
}

/* Microseconds per session put over n puts to 500 addresses. */
static double session_puts(kj_backend *b, uint32_t dev, int n) {
  uint8_t rec[512];
  memset(rec, 0x5a, sizeof rec);
  double t0 = now();
  for (int i = 0; i < n; i++) {
    char a[32];
    int al = snprintf(a, sizeof a, "+1555%07d.0:1", i % 500);
    rec[0] = (uint8_t)i;
    check(kj_session_put(b, NULL, dev, a, (size_t)al, rec, sizeof rec), b,
          "session put");
  }
  return (now() - t0) / n * 1e6;
}

int main(int argc, char **argv) {
  const char *base = argc > 1 ? argv[1] : getenv("TMPDIR");
  if (!base)
    base = "/tmp";
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/kj-bench-domain", base);
  double full[REPS], normal[REPS], get[REPS], rsave[REPS];

  for (int r = 0; r < REPS; r++) {
    kj_backend *b = open_b(dir, KJ_SYNC_FULL);
    uint32_t dev;
    check(kj_device_create(b, NULL, &dev), b, "device create");
    full[r] = session_puts(b, dev, 1000);

    /* Point reads of the 500 sessions, many times over. */
    double t0 = now();
    int n = 200000;
    for (int i = 0; i < n; i++) {
      char a[32];
      int al = snprintf(a, sizeof a, "+1555%07d.0:1", i % 500);
      void *rec;
      size_t rl;
      check(kj_session_get(b, NULL, dev, a, (size_t)al, &rec, &rl), b,
            "session get");
      kj_free(rec);
    }
    get[r] = (now() - t0) / n * 1e6;

    /* Ratchet saves with 50 skipped keys, half of them new each time. */
    kj_ratchet_state *s = kj_ratchet_state_alloc(50);
    memset(s->root_key, 1, 32);
    s->has_sending_chain = 1;
    int saves = 500;
    t0 = now();
    for (int i = 0; i < saves; i++) {
      s->msg_send = (uint32_t)i;
      for (int k = 0; k < 50; k++) {
        memset(s->skipped[k].public_key, k % 5, 32);
        s->skipped[k].msg_num = (uint32_t)(i * 25 + k);
        memset(s->skipped[k].message_key, k, 32);
      }
      check(kj_ratchet_save(b, NULL, dev, "conversation-1", 14, s), b,
            "ratchet save");
    }
    rsave[r] = (now() - t0) / saves * 1e6;
    kj_free(s);
    kj_backend_close(b);

    b = open_b(dir, KJ_SYNC_NORMAL);
    check(kj_device_create(b, NULL, &dev), b, "device create");
    normal[r] = session_puts(b, dev, 20000);
    kj_backend_close(b);
  }
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    return 1;
  printf("native backend, median of %d runs:\n", REPS);
  printf("  session put (512 B), FULL:    %8.1f us\n", median(full, REPS));
  printf("  session put (512 B), NORMAL:  %8.2f us\n", median(normal, REPS));
  printf("  session get:                  %8.3f us\n", median(get, REPS));
  printf("  ratchet save, 50 skipped, FULL: %6.1f us\n", median(rsave, REPS));
  return 0;
}
