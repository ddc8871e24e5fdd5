/*
 * keyjournal.h - umbrella header.
 *
 * keyjournal stores the long-lived state of an end-to-end-encrypted
 * messaging client in an encrypted, append-only, write-ahead journal.
 *
 *   keyjournal/errors.h   status codes and kj_strerror()
 *   keyjournal/store.h    opening a store, transactions, rows, statistics
 *
 * Implementers of a file system layer include keyjournal/sys/vfs.h
 * themselves; consumers never need it. doc/FORMAT.md describes the files.
 */
#ifndef KEYJOURNAL_H
#define KEYJOURNAL_H

#include "keyjournal/errors.h"
#include "keyjournal/store.h"

#endif /* KEYJOURNAL_H */
