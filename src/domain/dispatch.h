/*
 * src/domain/dispatch.h - argument checks shared by every public domain
 * function (internal).
 *
 * A public domain function checks its arguments here, then calls the
 * backend's function pointer: the checks are common to every backend, so
 * all of them reject the same input with the same KJ_EINVAL, and a backend
 * may rely on what was checked (keyjournal/sys/backend.h).
 *
 * Each check returns KJ_OK or records a detail message on b and returns
 * KJ_EINVAL, so a function reads as a chain of `if ((rc = ...)) return rc;`.
 */
#ifndef KJ_DISPATCH_H
#define KJ_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "keyjournal/sys/backend.h"

/* Start of every call: b non-NULL, t NULL or begun on b, op implemented.
 * Clears b's dispatch-level message. */
int kj_d_start(kj_backend *b, kj_tx *t, const void *op, const char *fn);
/* Identifier: p non-NULL, 1..KJ_MAX_ID bytes. */
int kj_d_id(kj_backend *b, const void *p, size_t n, const char *what);
/* Record: p non-NULL, 1..KJ_MAX_RECORD bytes. */
int kj_d_rec(kj_backend *b, const void *p, size_t n, const char *what);
/* Optional bytes: 0..max, p non-NULL unless n is 0. */
int kj_d_opt(kj_backend *b, const void *p, size_t n, size_t max,
             const char *what);
/* A pointer that must not be NULL (outputs, structs, fixed-size keys). */
int kj_d_ptr(kj_backend *b, const void *p, const char *what);
/* An array of n items: p non-NULL unless n is 0, n <= max. */
int kj_d_array(kj_backend *b, const void *p, size_t n, size_t max,
               const char *what);
/* A 0/1 flag. */
int kj_d_flag(kj_backend *b, int v, const char *what);
/* Record a detail message and return rc. */
int kj_d_fail(kj_backend *b, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
