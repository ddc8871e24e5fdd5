/*
 * src/engine/handle.c - what every layer does with a store handle
 * (src/engine/handle.h): record a failure's detail message and refresh the
 * statistics copies that kj_store_stats() and kj_table_count() read.
 *
 * Both only take s->mu, the innermost lock, so they may be called with the
 * writer or row lock held. The refresh reads the journal's counters and
 * the table maps, so this file sits above journal.c and map.c, and below
 * everything that holds a handle.
 */
#include "handle.h"

#include "run.h"

#include <stdio.h>

int kj_store_fail(kj_store *s, int rc, const kj_errbuf *e) {
  pthread_mutex_lock(&s->mu);
  snprintf(s->errmsg, sizeof s->errmsg, "%s", e->msg);
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int kj_store_fail_msg(kj_store *s, int rc, const char *msg) {
  kj_errbuf e;
  kj_err(&e, rc, "%s", msg);
  return kj_store_fail(s, rc, &e);
}

void kj_store_refresh_stats(kj_store *s) {
  kj_journal_stats js = {0};
  if (s->journal)
    kj_journal_get_stats(s->journal, &js);
  pthread_mutex_lock(&s->mu);
  s->jstats = js;
  for (unsigned w = 0; w < KJ_NTABLES / 64; w++) {
    uint64_t bits = s->stats_dirty[w];
    s->stats_dirty[w] = 0;
    while (bits) {
      unsigned t = w * 64 + (unsigned)__builtin_ctzll(bits);
      bits &= bits - 1;
      if (t >= KJ_TABLE_MIN && t <= KJ_TABLE_MAX) {
        s->table_rows[t] = s->live_rows[t];
        s->table_bytes[t] = s->live_bytes[t];
      }
    }
  }
  pthread_mutex_unlock(&s->mu);
}

/* Whether a layer below the overlay may hold the key: the frozen overlay
 * holds an entry of it, or the run's Bloom filter says maybe. */
static int below_may(void *arg, unsigned table, const void *key, size_t klen) {
  const kj_store *s = arg;
  if (s->has_frozen && kj_map_get(s->frozen[table], key, klen))
    return 1;
  return s->run && kj_run_may_have(s->run, table, key, klen);
}

void kj_store_applier(kj_store *s, kj_apply *a, const int64_t *below) {
  *a = (kj_apply){.tables = s->tables,
                  .dirty = s->stats_dirty,
                  .may = s->run || s->has_frozen ? below_may : NULL,
                  .arg = s,
                  .below = below,
                  .rows = s->live_rows,
                  .bytes = s->live_bytes};
}

uint64_t kj_usec_since(const struct timespec *t0) {
  struct timespec t1;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  return (uint64_t)((t1.tv_sec - t0->tv_sec) * 1000000 +
                    (t1.tv_nsec - t0->tv_nsec) / 1000);
}
