/*
 * keyjournal/errors.h - status codes.
 *
 * Every fallible keyjournal call returns an int: KJ_OK (0) on success,
 * KJ_NOTFOUND (a normal "no such row" result, never an error that poisons
 * anything), or a negative KJ_E* code. The values are part of the ABI and are
 * never renumbered; new codes are only ever appended.
 *
 * The return code is the truth. A store handle also keeps a detail message
 * for its last failed call (file, offset, cause; see kj_store_errmsg()), which
 * is for people, not for program logic.
 */
#ifndef KEYJOURNAL_ERRORS_H
#define KEYJOURNAL_ERRORS_H

#ifdef __cplusplus
extern "C" {
#endif

enum kj_status {
  KJ_OK = 0,
  /* Not found: a normal result, e.g. kj_get() of an absent key. */
  KJ_NOTFOUND = 1,

  /* Bad argument: NULL where a value is required, empty or oversize key,
   * value over the limit, table id out of range, misuse of a handle.
   * Nothing was changed. */
  KJ_EINVAL = -1,
  /* Wrong key or passphrase, or the directory is not a keyjournal store. */
  KJ_EKEY = -2,
  /* Data that had been made durable is damaged or was tampered with. The
   * detail message names the file and the byte offset. */
  KJ_ECORRUPT = -3,
  /* An I/O operation failed (read, write, sync, rename, ...), or a store
   * file is not a regular file (a FIFO, a socket, a device, a symbolic
   * link): refused at once, the message names the file and its type. */
  KJ_EIO = -4,
  /* The disk is full. */
  KJ_ENOSPC = -5,
  /* Another handle (this process or another) holds the store, and the busy
   * timeout ran out. */
  KJ_EBUSY = -6,
  /* An earlier write or sync failed; this handle refuses writes until the
   * store is closed and reopened. Reopening recovers a consistent state. */
  KJ_EPOISONED = -7,
  /* The store was written by an unsupported format version. */
  KJ_EFORMAT = -8,
  /* Out of memory. */
  KJ_ENOMEM = -9,
  /* kj_store_open() with KJ_OPEN_CREATE_NEW and a store already exists. */
  KJ_EEXIST = -10,
  /* A write on a store opened read-only. */
  KJ_EREADONLY = -11,
  /* The call would wait for the calling thread itself, so it fails at once
   * instead of hanging: a write transaction begun (or a call with txn ==
   * NULL that writes, syncs, checkpoints or copies) on a thread that
   * already holds a transaction on that store or is inside a scan callback
   * of it, or a commit with changes on a thread that still holds a
   * read-only transaction or a scan there. A transaction cannot start within a
   * transaction: pass the one the thread holds. Nothing was changed (a
   * refused kj_txn_commit() frees its transaction, as always). The detail
   * message names the rule. */
  KJ_EDEADLK = -12,
};

/* Static English text for a status code; never NULL (unknown codes give
 * "unknown keyjournal status"). Thread-safe. */
const char *kj_strerror(int status);

#ifdef __cplusplus
}
#endif

#endif /* KEYJOURNAL_ERRORS_H */
