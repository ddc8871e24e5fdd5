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
 * KJ_EINVAL, so a function reads as its chain of checks and the call they
 * guard (KJ_D_FORWARD below).
 */
#ifndef KJ_DISPATCH_H
#define KJ_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "keyjournal/sys/backend.h"

/* 1 when the library may read b's table: b and its table non-NULL, of
 * this library's KJ_BACKEND_VERSION. Records nothing. */
static inline int kj_d_usable(const kj_backend *b) {
  return b && b->ops && b->ops->version == KJ_BACKEND_VERSION;
}

/* Operation op of b's store group grp, or NULL when b is not usable (the
 * table is read only once its version is known) or lacks it. */
#define KJ_D_OP(b, grp, op)                                                    \
  (kj_d_usable(b) && (b)->ops->grp ? (const void *)(b)->ops->grp->op : NULL)

/* A backend the library may call: KJ_OK, or records why not (KJ_EINVAL for
 * a NULL backend or table, KJ_EFORMAT for another interface version). */
int kj_d_backend(kj_backend *b, const char *fn);
/* Start of every call: b usable, t NULL or begun on b, op (KJ_D_OP)
 * implemented. Clears b's dispatch-level message. */
int kj_d_start(kj_backend *b, kj_tx *t, const void *op, const char *fn);
/* Identifier: p non-NULL, 1..KJ_MAX_ID bytes. */
int kj_d_id(kj_backend *b, const void *p, size_t n, const char *what);
/* Peer name of the name calls (signal.h): p non-NULL, 1..KJ_MAX_NAME
 * bytes. */
int kj_d_name(kj_backend *b, const void *p, size_t n, const char *what);
/* Public key: p non-NULL, KJ_IDENTITY_KEY_BYTES or KJ_IDENTITY_KEY_MAX
 * bytes. */
int kj_d_pubkey(kj_backend *b, const void *p, size_t n, const char *what);
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

/* ---- the shape of a public function ----------------------------------- */

/* Clear output p (a pointer, a count, a flag) when the caller gave one: it
 * is done first, so a call that fails on any check leaves it empty. */
#define KJ_D_CLEAR(p)                                                          \
  do {                                                                         \
    if (p)                                                                     \
      *(p) = 0;                                                                \
  } while (0)

/* KJ_D_CHECKS(rc, c1, c2, ...) evaluates the checks c1, c2, ... (each an
 * expression giving a status, up to six) in order and stops at the first
 * that is not KJ_OK, so a check may rely on the ones before it (a struct
 * read only once the pointer to it was checked). Its value, also left in
 * rc, is the status of the check that failed, or KJ_OK. */
#define KJ_D_CHECKS(rc, ...)                                                   \
  KJ_D_PICK_(__VA_ARGS__, KJ_D_C6_, KJ_D_C5_, KJ_D_C4_, KJ_D_C3_, KJ_D_C2_,    \
             KJ_D_C1_, -)                                                      \
  (rc, __VA_ARGS__)
#define KJ_D_PICK_(c1, c2, c3, c4, c5, c6, m, ...) m
#define KJ_D_C1_(r, c) ((r) = (c))
#define KJ_D_C2_(r, c, ...) (((r) = (c)) ? (r) : KJ_D_C1_(r, __VA_ARGS__))
#define KJ_D_C3_(r, c, ...) (((r) = (c)) ? (r) : KJ_D_C2_(r, __VA_ARGS__))
#define KJ_D_C4_(r, c, ...) (((r) = (c)) ? (r) : KJ_D_C3_(r, __VA_ARGS__))
#define KJ_D_C5_(r, c, ...) (((r) = (c)) ? (r) : KJ_D_C4_(r, __VA_ARGS__))
#define KJ_D_C6_(r, c, ...) (((r) = (c)) ? (r) : KJ_D_C5_(r, __VA_ARGS__))

/* kj_d_start for the public function kj_<op> of store group grp. */
#define KJ_D_START(b, t, grp, op)                                              \
  kj_d_start(b, t, KJ_D_OP(b, grp, op), "kj_" #op)

/* The body of the public function kj_<op>: KJ_D_START, then its own checks
 * (KJ_D_CHECKS: one to five; KJ_OK when it has none), then the backend's
 * operation op of group grp with the parenthesised arguments args. Returns
 * the status of the first check that fails, or the operation's. */
#define KJ_D_FORWARD(b, t, grp, op, args, ...)                                 \
  do {                                                                         \
    int rc_;                                                                   \
    if (KJ_D_CHECKS(rc_, KJ_D_START(b, t, grp, op), __VA_ARGS__))              \
      return rc_;                                                              \
    return (b)->ops->grp->op args;                                             \
  } while (0)

/* The body of kj_<op> whose only argument to check is its output out: out
 * is cleared, then checked (named by its own name in the message), then
 * the operation is called with args. */
#define KJ_D_GET(b, t, grp, op, args, out)                                     \
  do {                                                                         \
    KJ_D_CLEAR(out);                                                           \
    KJ_D_FORWARD(b, t, grp, op, args, kj_d_ptr(b, out, "kj_" #op ": " #out));  \
  } while (0)

/* The body of kj_<op>(b, t, dev, id, idlen, out), a read of what slot dev
 * holds under the identifier id into *out: as KJ_D_GET, with id (idname in
 * its message) checked before out. */
#define KJ_D_GET_BY_ID(b, t, grp, op, dev, id, idlen, idname, out)             \
  do {                                                                         \
    KJ_D_CLEAR(out);                                                           \
    KJ_D_FORWARD(b, t, grp, op, (b, t, dev, id, idlen, out),                   \
                 kj_d_id(b, id, idlen, "kj_" #op ": " idname),                 \
                 kj_d_ptr(b, out, "kj_" #op ": " #out));                       \
  } while (0)

#endif
