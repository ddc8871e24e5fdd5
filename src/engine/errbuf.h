/*
 * src/engine/errbuf.h - the detail message of one failing internal call.
 */
#ifndef KJ_ERRBUF_H
#define KJ_ERRBUF_H

/* "what: file at offset: cause", filled by the layer that failed. */
typedef struct kj_errbuf {
  char msg[512];
} kj_errbuf;

/* Format a detail message into e (may be NULL) and return rc. */
int kj_err(kj_errbuf *e, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The cause to quote after a failed VFS call: strerror(errno), or "failed"
 * when the VFS left errno at 0 (callers clear errno before the call). */
const char *kj_err_cause(void);

/* Set errno to err and note a cause more precise than strerror(err) for
 * the failure the caller (the default VFS) is about to return, e.g. "is a
 * FIFO, not a regular file". The next kj_err_cause() on this thread quotes
 * it once, if errno still holds err. */
void kj_err_note_cause(int err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
