/*
 * keyjournal.h - umbrella header.
 *
 * keyjournal stores the long-lived state of an end-to-end-encrypted
 * messaging client in an encrypted, append-only, write-ahead journal.
 *
 *   keyjournal/errors.h   status codes and kj_strerror()
 *   keyjournal/store.h    the engine: a store, transactions, table rows
 *   keyjournal/backend.h  the domain handle and its transactions
 *   keyjournal/signal.h   identity keys, sessions, pre-keys, sender keys
 *   keyjournal/appsync.h  app-state sync keys, versions, mutation MACs
 *   keyjournal/protocol.h SKDM, LID mappings, base keys, device registry,
 *                         sender-key status, trusted-contact tokens
 *   keyjournal/device.h   device slots (accounts) and their records
 *   keyjournal/ratchet.h  double-ratchet conversations
 *
 * Implementers of a file system layer or of a backend include
 * keyjournal/sys/vfs.h or keyjournal/sys/backend.h themselves; consumers
 * never need them. doc/FORMAT.md describes the files.
 */
#ifndef KEYJOURNAL_H
#define KEYJOURNAL_H

#include "keyjournal/appsync.h"
#include "keyjournal/backend.h"
#include "keyjournal/device.h"
#include "keyjournal/errors.h"
#include "keyjournal/protocol.h"
#include "keyjournal/ratchet.h"
#include "keyjournal/signal.h"
#include "keyjournal/store.h"

#endif /* KEYJOURNAL_H */
