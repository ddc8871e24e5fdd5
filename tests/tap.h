/*
 * tests/tap.h - a tiny TAP producer for automake's tap-driver.
 *
 * Each check prints "ok N - what" or "not ok N - what" with the file and line
 * of a failure; tap_done() prints the plan and returns the exit status.
 * The counters live in tests/tap.c, so the shared checks of testutil.c
 * number their results in the same sequence as the test program's own.
 */
#ifndef KJ_TESTS_TAP_H
#define KJ_TESTS_TAP_H

#include <stdio.h>
#include <string.h>

void tap_result(int ok, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Print the plan; the exit status of the program (1 if any check failed). */
int tap_done(void);

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

#endif
