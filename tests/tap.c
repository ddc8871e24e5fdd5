/*
 * tests/tap.c - the state of tests/tap.h: one check counter per program.
 */
#include "tap.h"

#include <stdarg.h>

static int tap_n;
static int tap_failed;

void tap_result(int ok, const char *file, int line, const char *fmt, ...) {
  va_list ap;
  tap_n++;
  if (!ok)
    tap_failed++;
  printf("%sok %d - ", ok ? "" : "not ", tap_n);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
  if (!ok)
    printf("# failed at %s:%d\n", file, line);
  fflush(stdout);
}

int tap_done(void) {
  printf("1..%d\n", tap_n);
  fflush(stdout); /* a leak report exits without flushing stdio */
  return tap_failed ? 1 : 0;
}
