/*
 * keyjournal/backend.h - the domain handle: opening a backend, and
 * transactions across all the domain stores.
 *
 * The domain stores (signal.h, appsync.h, protocol.h, device.h, ratchet.h)
 * are functions on a kj_backend. A backend is one implementation of the
 * contract in doc/CONTRACT.md: the native journal engine
 * (kj_backend_open), the SQLite reference in the oracle, or one of your
 * own (keyjournal/sys/backend.h). Every function dispatches through the
 * backend of the handle, after the argument checks, which are common to all
 * backends.
 *
 * Conventions for every domain call:
 *   - (kj_backend *b, kj_tx *t, ...): t is NULL (the call is atomic on its
 *     own) or a transaction begun on b. Any sequence of calls can be
 *     grouped in one transaction that commits or rolls back as a whole.
 *   - uint32_t dev is a device slot (device.h). Rows of one slot are
 *     invisible to every other. Writes to a slot that does not exist fail
 *     with KJ_NOTFOUND; reads find nothing.
 *   - Identifiers (addresses, JIDs, names, ids, MACs) are byte strings of
 *     1..KJ_MAX_ID bytes; records are 1..KJ_MAX_RECORD bytes unless a
 *     header says otherwise. Anything else: KJ_EINVAL, nothing changed.
 *   - KJ_NOTFOUND is a normal result, never an error that poisons anything.
 *   - Lists are sorted ascending by their key bytes (memcmp, shorter first
 *     on a common prefix) unless the header says otherwise.
 *
 * Ownership, the same in every store: every pointer a call returns through
 * an out parameter (a value, a list, a record struct) is ONE allocation,
 * with everything it points to inside it. Free it with kj_free(). On any
 * status other than KJ_OK the out pointer is set to NULL.
 */
#ifndef KEYJOURNAL_BACKEND_H
#define KEYJOURNAL_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Identifier length limit (addresses, JIDs, names, ids, MACs). */
#define KJ_MAX_ID 1024u
/* Record length limit (session records, pre-keys, blobs, tokens...). */
#define KJ_MAX_RECORD (1024u * 1024u)
/* Most items one batch call takes (pre-key batches, id lists, MAC lists,
 * JID lists); more is KJ_EINVAL. A batch must also fit one transaction
 * (KJ_MAX_TXN_BYTES), else KJ_EINVAL and nothing changes. */
#define KJ_MAX_BATCH 100000u

size_t kj_max_id(void);
size_t kj_max_record(void);

typedef struct kj_backend kj_backend;
typedef struct kj_tx kj_tx;

/* A byte string inside a returned allocation. */
typedef struct kj_blob {
  const uint8_t *p;
  size_t len;
} kj_blob;

/* A list of byte strings (one allocation). */
typedef struct kj_blob_list {
  size_t n;
  kj_blob v[];
} kj_blob_list;

/* A list of u32 (slot ids, device ids; one allocation). */
typedef struct kj_u32_list {
  size_t n;
  uint32_t v[];
} kj_u32_list;

/* Open the native backend on the store at path (NULL: memory-only), with
 * the engine options of store.h. Errors: those of kj_store_open(). *errmsg
 * as there. Cost: opening the store. */
int kj_backend_open(const char *path, const kj_options *opts, kj_backend **out,
                    char **errmsg);

/* Close b (any backend). No transaction may be open. NULL is a no-op.
 * Returns the status of the final sync; b is freed either way, except a
 * backend of another interface version (keyjournal/sys/backend.h), which
 * the library refuses with KJ_EFORMAT without calling into it. */
int kj_backend_close(kj_backend *b);

/* The engine store under a native backend (for kj_store_stats,
 * kj_store_checkpoint...), or NULL for another backend. Owned by b. */
kj_store *kj_backend_store(kj_backend *b);

/* Name of the implementation ("native", "sqlite", ...). */
const char *kj_backend_name(const kj_backend *b);

/* Detail of the last failure on b ("" if none); see kj_store_errmsg. */
const char *kj_backend_errmsg(kj_backend *b);

/* Begin a transaction on b. One write transaction at a time per handle:
 * a begin from another thread waits until the open one ends. A begin, or
 * a write with t == NULL, from the thread that holds the open transaction
 * would wait for itself: it fails at once with KJ_EDEADLK and changes
 * nothing (the open transaction stays usable; a read with t == NULL sees
 * the committed state). Errors: KJ_EINVAL, KJ_EPOISONED, KJ_EREADONLY,
 * KJ_EDEADLK, KJ_ENOMEM. */
int kj_backend_begin(kj_backend *b, kj_tx **out);
/* Commit every call made in t, atomically; frees t whatever it returns.
 * On failure nothing of t is applied. */
int kj_backend_commit(kj_tx *t);
/* Drop every change of t and free it. NULL is a no-op. */
void kj_backend_rollback(kj_tx *t);

#ifdef __cplusplus
}
#endif

#endif /* KEYJOURNAL_BACKEND_H */
