/*
 * tests/tap.h - a tiny TAP producer for automake's tap-driver.
 *
 * Each check prints "ok N - what" or "not ok N - what" with the file and line
 * of a failure; tap_done() prints the plan and returns the exit status.
 * Header-only so every test program is one file.
 */
#ifndef KJ_TESTS_TAP_H
#define KJ_TESTS_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_n;
static int tap_failed;

static void tap_result(int ok, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void tap_result(int ok, const char *file, int line, const char *fmt,
                       ...) {
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

/* ok(cond, "printf-style description") */
#define ok(cond, ...) tap_result(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
/* is(got, want, desc): integer equality, printing both on failure */
#define is(got, want, ...)                                                     \
  do {                                                                         \
    long long tap_g_ = (long long)(got), tap_w_ = (long long)(want);           \
    tap_result(tap_g_ == tap_w_, __FILE__, __LINE__, __VA_ARGS__);             \
    if (tap_g_ != tap_w_)                                                      \
      printf("#   got %lld, want %lld\n", tap_g_, tap_w_);                     \
  } while (0)

static inline int tap_done(void) {
  printf("1..%d\n", tap_n);
  fflush(stdout); /* a leak report exits without flushing stdio */
  return tap_failed ? 1 : 0;
}

#endif
