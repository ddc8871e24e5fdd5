/*
 * oracle/shrink.c - delta debugging over a list of op indices, shared by
 * every phase that shrinks a failing run: the differential runner
 * (runner.c), the key-value runs (kv.c) and the crash and fault checks
 * (crash.c). The caller says whether a candidate list still fails; the
 * list only ever loses elements, in order, so a workload prefix stays a
 * subsequence of the original.
 */
#include <stdlib.h>
#include <string.h>

#include "oracle.h"

void ora_shrink(size_t *idx, size_t *m, size_t max_runs, size_t *runs,
                int (*still)(void *arg, const size_t *idx, size_t m),
                void *arg) {
  size_t *cand = malloc((*m ? *m : 1) * sizeof *cand);
  if (!cand)
    return;
  /* Drop chunks of half the list, then of a quarter, ..., then single
   * ops, keeping every removal after which the run still fails; go on
   * at the same size while removals succeed. */
  size_t chunk = *m / 2 ? *m / 2 : 1;
  while (*m > 1 && *runs < max_runs) {
    int progress = 0;
    size_t start = 0;
    while (start < *m && *runs < max_runs) {
      size_t end = start + chunk < *m ? start + chunk : *m, k = 0;
      for (size_t i = 0; i < *m; i++)
        if (i < start || i >= end)
          cand[k++] = idx[i];
      (*runs)++;
      if (k > 0 && still(arg, cand, k)) {
        memcpy(idx, cand, k * sizeof *idx);
        *m = k;
        progress = 1;
      } else {
        start = end;
      }
    }
    if (chunk == 1 && !progress)
      break;
    if (!progress || chunk > *m / 2)
      chunk = chunk / 2 ? chunk / 2 : 1;
  }
  free(cand);
}
