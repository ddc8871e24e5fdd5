/*
 * src/native/native.h - the native backend: the domain contract on the
 * journal engine (internal).
 *
 * Each domain store is a set of engine tables (ids below, layouts in
 * doc/FORMAT.md section 8). Every operation runs in one engine transaction:
 * the caller's (kj_tx given) or one of its own, read-only for reads, so
 * that even a multi-row operation is atomic and sees one state.
 */
#ifndef KJ_NATIVE_H
#define KJ_NATIVE_H

#include <pthread.h>
#include <stdatomic.h>

#include "common/rowcodec.h"
#include "keyjournal/store.h"
#include "keyjournal/sys/backend.h"

/* Engine table ids of the domain rows (doc/FORMAT.md section 8). */
enum {
  NT_META = 1,           /* "next_device_id" -> u32 */
  NT_DEVICE = 2,         /* dev -> slot (and its device record) */
  NT_LABEL = 3,          /* label -> u32 dev: the slot a label names */
  NT_SLOT_LABEL = 4,     /* dev|label -> (mark): the label of a slot */
  NT_IDENTITY = 10,      /* dev|addr -> identity key */
  NT_SESSION = 11,       /* dev|addr -> session record */
  NT_PREKEY = 12,        /* dev|id -> uploaded, record */
  NT_SIGNED_PREKEY = 13, /* dev|id -> record */
  NT_SENDER_KEY = 14,    /* dev|name -> record */
  NT_SESSION_USER = 15,  /* dev|addr -> user record of a table-11 row */
  NT_SENDER_USER = 16,   /* dev|name -> user record of a table-14 row */
  NT_LOCAL_ID = 17,      /* dev -> registration id, identity key pair */
  NT_SYNC_KEY = 20,      /* dev|key_id -> sync key */
  NT_SYNC_LATEST = 21,   /* dev -> key_id of the latest set */
  NT_SYNC_VERSION = 22,  /* dev|name -> hash state */
  NT_MUTATION_MAC = 23,  /* dev|lp(name)|index_mac -> version, value_mac */
  NT_SKDM = 30,          /* dev|lp(group)|jid -> (empty) */
  NT_LID = 31,           /* dev|lid -> mapping */
  NT_LID_BY_PHONE = 32,  /* dev|lp(phone)|lid -> (empty): index */
  NT_BASE_KEY = 33,      /* dev|lp(addr)|msg_id -> base key */
  NT_DEVICE_LIST = 34,   /* dev|user -> device list record */
  NT_SK_FORGET = 35,     /* dev|lp(group)|participant -> (empty) */
  NT_TC_TOKEN = 36,      /* dev|jid -> token */
  NT_RATCHET = 40,       /* dev|conv -> ratchet state */
  NT_SKIPPED = 41,       /* dev|lp(conv)|public_key|msg_num -> skipped */
};

typedef struct nat_backend {
  kj_backend base; /* first */
  kj_store *s;
  /* The detail of a failure the backend itself found (a malformed row, no
   * slot ids left...), reported by its errmsg operation instead of the
   * store's until the next operation begins. */
  pthread_mutex_t msg_mu; /* one writer of msg at a time */
  atomic_int has_msg;
  char msg[256];
} nat_backend;

typedef struct nat_tx {
  kj_tx base; /* first */
  kj_txn *txn;
} nat_tx;

/* The engine transaction one operation runs in. */
typedef struct nat_op {
  kj_backend *b;
  kj_store *s;
  kj_txn *txn;
  int own; /* begun by nat_begin: nat_end commits or rolls it back */
  int write;
} nat_op;

/* What an operation does, for nat_begin. */
enum {
  NAT_READ = 0,      /* reads only; a missing slot just has no rows */
  NAT_WRITE = 1,     /* writes into slot dev, which must exist */
  NAT_WRITE_ANY = 2, /* writes not scoped to one slot (slot create/delete) */
};

/* Start an operation: t's transaction, or a new one (read-only for
 * NAT_READ). NAT_WRITE fails with KJ_NOTFOUND unless slot dev exists (slot
 * 0 never does). */
int nat_begin(kj_backend *b, kj_tx *t, int mode, uint32_t dev, nat_op *op);
/* Finish: an own transaction commits when rc is KJ_OK (or KJ_NOTFOUND)
 * and this is a write, else rolls back. Returns rc, or the commit's
 * failure. */
int nat_end(nat_op *op, int rc);

/* Record a detail message on b and return rc. */
int nat_fail(kj_backend *b, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Forget b's detail message: an operation begins. */
void nat_clear_msg(kj_backend *b);

/* 1 if slot dev exists, 0 if not, or a negative status. */
int nat_slot_exists(nat_op *op, uint32_t dev);
/* The store clock, in milliseconds. */
int64_t nat_now_ms(nat_op *op);

/* Start reading a row value: KJ_OK when its version byte is this format's
 * (kj_r_version). */
static inline int nat_r_open(kj_rbuf *r, const void *v, size_t n) {
  kj_r_init(r, v, n);
  return kj_r_version(r);
}

/* A value's last field, which runs to its end: the bytes left in r when
 * there are 1..max of them, else NULL with r marked bad. */
static inline const uint8_t *nat_r_rest(kj_rbuf *r, size_t max, size_t *n) {
  *n = (size_t)(r->end - r->p);
  if (*n < 1 || *n > max)
    r->bad = 1;
  return kj_r_bytes(r, *n);
}

/* The key dev|bytes: a row named by one identifier of slot dev. */
static inline void nat_key(kj_kbuf *k, uint32_t dev, const void *p, size_t n) {
  kj_k_dev(k, dev);
  kj_k_raw(k, p, n);
}

/* ---- whole operations, each its own nat_begin / nat_end ------------- */

/* Read: the row's value (KJ_NOTFOUND with *v NULL if absent). */
int nat_get_row(kj_backend *b, kj_tx *t, unsigned table, const kj_kbuf *k,
                void **v, size_t *vlen);
/* A decoder of a row value into out: KJ_OK, or why the value is malformed. */
typedef int (*nat_dec_fn)(const void *v, size_t vlen, void *out);
/* Read and decode: dec's status on the row's value, which is wiped and
 * freed after (KJ_NOTFOUND if there is no row). */
int nat_read_row(kj_backend *b, kj_tx *t, unsigned table, const kj_kbuf *k,
                 nat_dec_fn dec, void *out);
/* Read a value laid out as the version byte, hlen fixed bytes (copied to
 * head) and then 1..max bytes, which are handed out in place: moved to the
 * start of the engine's buffer, *p (kj_free) and *n. */
int nat_get_rest(kj_backend *b, kj_tx *t, unsigned table, const kj_kbuf *k,
                 void *head, size_t hlen, size_t max, void **p, size_t *n);
/* The same for a value v already read (vlen bytes, from kj_get): hlen
 * head bytes copied out, the record moved to the start of v (which
 * becomes *p; the bytes after it wiped). On failure v is wiped and
 * freed. */
int nat_rest_in_place(void *v, size_t vlen, void *head, size_t hlen, size_t max,
                      void **p, size_t *n);
/* Write the encoded row w into slot dev, then wipe and free w. */
int nat_put_row(kj_backend *b, kj_tx *t, uint32_t dev, unsigned table,
                const kj_kbuf *k, kj_wbuf *w);
/* Scan: fn on every row of table under prefix, ascending. */
int nat_scan_rows(kj_backend *b, kj_tx *t, unsigned table,
                  const kj_kbuf *prefix, kj_scan_fn fn, void *arg);
/* After a scan that gathered n uint32_t ids into w (host order): KJ_OK
 * with *out a kj_u32_list of them (kj_free), or rc when the scan failed,
 * or KJ_ENOMEM; w is freed either way. */
int nat_u32_list(int rc, kj_wbuf *w, size_t n, kj_u32_list **out);
/* Delete one row of slot dev (absent is KJ_OK). */
int nat_del_row(kj_backend *b, kj_tx *t, uint32_t dev, unsigned table,
                const kj_kbuf *k);
/* Delete the row dev|id (nat_key) of slot dev. */
int nat_del_id(kj_backend *b, kj_tx *t, uint32_t dev, unsigned table,
               const void *id, size_t idlen);

/* ---- in an operation -------------------------------------------------- */

/* Engine row access in op's transaction. */
int nat_get(nat_op *op, unsigned table, const kj_kbuf *k, void **v,
            size_t *vlen);
int nat_put(nat_op *op, unsigned table, const kj_kbuf *k, const void *v,
            size_t vlen);
int nat_put_w(nat_op *op, unsigned table, const kj_kbuf *k, kj_wbuf *w);
int nat_del(nat_op *op, unsigned table, const kj_kbuf *k);
/* Rows whose key starts with prefix, ascending. */
int nat_scan(nat_op *op, unsigned table, const kj_kbuf *prefix, kj_scan_fn fn,
             void *arg);
/* Which rows nat_del_prefix deletes: 1 this one, 0 not, or a negative
 * status, which fails the call before anything is deleted. */
typedef int (*nat_keep_fn)(void *ctx, const uint8_t *key, size_t klen,
                           const uint8_t *val, size_t vlen);
/* Delete the rows of table whose key starts with prefix and that keep
 * (NULL: every row) picks; *n (if not NULL) gets how many. */
int nat_del_prefix(nat_op *op, unsigned table, const kj_kbuf *prefix,
                   nat_keep_fn keep, void *ctx, uint64_t *n);

/* Free a value that held key material, wiping it first (kj_w_free wipes
 * a writer). */
void nat_free_wiped(void *p, size_t n);

/* The store groups of the backend's table, one per store file. */
extern const kj_signal_ops nat_signal_ops;
extern const kj_appsync_ops nat_appsync_ops;
extern const kj_protocol_ops nat_protocol_ops;
extern const kj_device_ops nat_device_ops;
extern const kj_ratchet_ops nat_ratchet_ops;

/* The backend's table (native.c), and its open, for kj_backend_open. */
extern const kj_backend_ops nat_backend_ops;
int nat_open(const char *path, const kj_options *opts, kj_backend **out,
             char **errmsg);

/* Every domain table id, for slot deletion. */
extern const unsigned nat_slot_tables[];
extern const size_t nat_slot_ntables;

#endif
