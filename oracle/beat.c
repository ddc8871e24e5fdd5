/*
 * oracle/beat.c - the progress beacon of the campaign watchdog (ora_beat
 * of oracle/oracle.h). Below every other oracle file: the runner and the
 * workloads beat, the campaign (crash.c) attaches the counter it watches.
 */
#include <stdint.h>

#include "oracle.h"

static uint64_t *beats; /* in a page shared with the watching process */

void ora_beat(void) {
  if (beats)
    __atomic_add_fetch(beats, 1, __ATOMIC_RELAXED);
}

void ora_beat_attach(uint64_t *counter) { beats = counter; }
