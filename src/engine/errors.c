/*
 * src/engine/errors.c - status code text and the detail-message buffer.
 *
 * kj_strerror() is the fixed table of English texts; kj_err() formats the
 * per-call detail (file, offset, cause) that a store handle keeps for its
 * last failure, and kj_err_cause() is the one place that turns errno into
 * the cause quoted after a failed VFS call (or the more precise cause the
 * default VFS noted, kj_err_note_cause()). Depends on nothing else of the
 * engine.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "errbuf.h"
#include "keyjournal/errors.h"

const char *kj_strerror(int status) {
  switch (status) {
  case KJ_OK:
    return "ok";
  case KJ_NOTFOUND:
    return "not found";
  case KJ_EINVAL:
    return "invalid argument";
  case KJ_EKEY:
    return "wrong key, or not a keyjournal store";
  case KJ_ECORRUPT:
    return "store data is damaged";
  case KJ_EIO:
    return "I/O error";
  case KJ_ENOSPC:
    return "no space left on device";
  case KJ_EBUSY:
    return "store is busy (held by another handle)";
  case KJ_EPOISONED:
    return "handle poisoned by an earlier failed write or sync; reopen the "
           "store";
  case KJ_EFORMAT:
    return "unsupported store format version";
  case KJ_ENOMEM:
    return "out of memory";
  case KJ_EEXIST:
    return "store already exists";
  case KJ_EREADONLY:
    return "store is open read-only";
  case KJ_EDEADLK:
    return "the calling thread would wait for itself (it holds a transaction "
           "or a scan on this store)";
  default:
    return "unknown keyjournal status";
  }
}

int kj_err(kj_errbuf *e, int rc, const char *fmt, ...) {
  if (e) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
  }
  return rc;
}

/* The noted cause (thread-local): valid until the next note, quoted once. */
static _Thread_local char note[192];
static _Thread_local int note_errno, note_live;

void kj_err_note_cause(int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(note, sizeof note, fmt, ap);
  va_end(ap);
  note_errno = err;
  note_live = 1;
  errno = err;
}

const char *kj_err_cause(void) {
  if (note_live && errno == note_errno) {
    note_live = 0;
    return note;
  }
  note_live = 0;
  return errno ? strerror(errno) : "failed";
}
