/*
 * src/engine/store.c - the store's entry points other than transactions:
 * open and close (options, the lock, the store header of doc/FORMAT.md
 * section 3, keys, recovery), sync, copy, checkpoint on request, and the
 * statistics getters.
 *
 * Open order: lock first (so two openers never race on creation), then
 * the header (create, or check it before trusting anything else), then
 * the newest snapshot (checkpoint.c), then the journal replay into the
 * tables (staged, through body.c). The header is the commit point of a
 * store's creation and of a copy's, written last through durable.c, and is
 * rewritten the same way, by the journal's record hook, at each roll-over
 * and clean close to record the journal's durable end (FORMAT.md 3.1).
 *
 * It calls only downwards: checkpoint.c, handle.c, snapshot.c, journal.c,
 * body.c, map.c, durable.c, crypto.c, errors.c; never txn.c.
 */
#include <errno.h>
#include <inttypes.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "body.h"
#include "checkpoint.h"
#include "common/codec.h"
#include "durable.h"
#include "handle.h"
#include "run.h"

#define HDR_NAME "keyjournal.hdr"
#define HDR_BYTES KJ_STORE_HEADER_BYTES
#define HDR_MAGIC "KJSTORE\0"
/* The header's format version: 2 once a store may hold run files (new
 * stores, and older ones after their first run); 1 is still read. */
#define FORMAT_VERSION 2u
#define FORMAT_VERSION_MIN 1u
#define DEFAULT_CACHE_BYTES (8u << 20)
#define KEY_RAW 1u
#define KEY_PASSPHRASE 2u
#define DEFAULT_SEGMENT (8u << 20)
#define MIN_SEGMENT 4096u
#define DEFAULT_SYNC_INTERVAL (1u << 20)
#define DEFAULT_SNAPSHOT_THRESHOLD (64u << 20)

size_t kj_max_key(void) { return KJ_MAX_KEY; }
size_t kj_max_value(void) { return KJ_MAX_VALUE; }
/* Values handed to the caller are plain malloc blocks (the caller may keep
 * them as long as it likes); kj_free wipes one before releasing it, so a
 * row read and freed leaves no plaintext in the heap. */
void kj_free(void *p) {
  if (!p)
    return;
#ifdef __GLIBC__
  sodium_memzero(p, malloc_usable_size(p));
#endif
  free(p);
}

const char *kj_store_errmsg(kj_store *s) { return s ? s->errmsg : ""; }

void kj_store_errmsg_copy(kj_store *s, char *buf, size_t len) {
  if (!buf || !len)
    return;
  if (!s) {
    buf[0] = 0;
    return;
  }
  pthread_mutex_lock(&s->mu);
  snprintf(buf, len, "%s", s->errmsg);
  pthread_mutex_unlock(&s->mu);
}

static int64_t wall_clock(void *ctx) {
  (void)ctx;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- handle lifetime -------------------------------------------------- */

static kj_store *store_new(void) {
  kj_store *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  pthread_mutex_init(&s->writer, NULL);
  pthread_mutex_init(&s->mu, NULL);
  pthread_mutex_init(&s->pend_mu, NULL);
  pthread_mutex_init(&s->ckpt_mu, NULL);
  /* Writers first: a stream of readers must not starve commits. */
  pthread_rwlockattr_t a;
  pthread_rwlockattr_init(&a);
  pthread_rwlockattr_setkind_np(&a,
                                PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&s->rows, &a);
  pthread_rwlockattr_destroy(&a);
  memset(s->stats_dirty, 0xff, sizeof s->stats_dirty);
  for (unsigned t = KJ_TABLE_MIN; t <= KJ_TABLE_MAX; t++) {
    if (!(s->tables[t] = kj_map_new())) {
      for (unsigned u = KJ_TABLE_MIN; u < t; u++)
        kj_map_free(s->tables[u]);
      free(s);
      return NULL;
    }
  }
  return s;
}

static void store_free(kj_store *s) {
  for (unsigned t = KJ_TABLE_MIN; s->has_frozen && t <= KJ_TABLE_MAX; t++)
    kj_map_free(s->frozen[t]);
  kj_run_close(s->run, s->cache);
  kj_bcache_free(s->cache);
  while (s->pend_head) { /* none: every committer has returned */
    kj_pending *p = s->pend_head;
    s->pend_head = p->next;
    free(p);
  }
  for (unsigned t = KJ_TABLE_MIN; t <= KJ_TABLE_MAX; t++)
    kj_map_free(s->tables[t]);
  if (s->lockfile)
    s->vfs->close(s->vfs->ctx, s->lockfile);
  kj_keys_free(s->keys);
  free(s->dir);
  pthread_rwlock_destroy(&s->rows);
  pthread_mutex_destroy(&s->writer);
  pthread_mutex_destroy(&s->mu);
  pthread_mutex_destroy(&s->pend_mu);
  pthread_mutex_destroy(&s->ckpt_mu);
  free(s);
}

/* ---- lock ------------------------------------------------------------- */

static void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) && errno == EINTR)
    ;
}

/* The store lock is a flock on the store directory itself: it exists
 * before the store does (creation is locked too), needs no file, so a
 * read-only open creates nothing, and cannot go missing from a copy. */
/* A read-only open never holds the lock, so that it never holds up a
 * writer's open: it only tries it, shared, at once, to learn whether a
 * writer holds it (*beside_writer) and lets it go (FORMAT.md section 1). */
static int take_lock(kj_store *s, uint32_t timeout_ms, int *beside_writer,
                     kj_errbuf *e) {
  *beside_writer = 0;
  errno = 0;
  int rc = s->vfs->open(s->vfs->ctx, s->dir, KJ_VFS_READ, &s->lockfile);
  if (rc) {
    s->lockfile = NULL;
    return kj_err(e, rc, "open directory %s to lock it: %s", s->dir,
                  kj_err_cause());
  }
  int mode = s->read_only ? KJ_VFS_LOCK_SHARED : KJ_VFS_LOCK_EXCLUSIVE;
  unsigned waited = 0, step = 1;
  for (;;) {
    errno = 0;
    rc = s->vfs->lock(s->vfs->ctx, s->lockfile, mode);
    if (s->read_only && (rc == KJ_OK || rc == KJ_EBUSY)) {
      s->vfs->close(s->vfs->ctx, s->lockfile); /* lets a shared lock go */
      s->lockfile = NULL;
      *beside_writer = rc == KJ_EBUSY;
      return KJ_OK;
    }
    if (rc != KJ_EBUSY)
      break;
    if (waited >= timeout_ms)
      return kj_err(e, KJ_EBUSY, "%s is held by another handle (waited %u ms)",
                    s->dir, waited);
    unsigned nap = step;
    if (nap > timeout_ms - waited)
      nap = timeout_ms - waited;
    sleep_ms(nap);
    waited += nap;
    if (step < 100)
      step *= 2;
  }
  if (rc)
    return kj_err(e, rc, "lock %s: %s", s->dir, kj_err_cause());
  return KJ_OK;
}

/* ---- header ----------------------------------------------------------- */

typedef struct header {
  uint32_t version;
  uint32_t key_mode;
  uint8_t store_id[KJ_STORE_ID_BYTES];
  uint8_t salt[KJ_SALT_BYTES];
  uint64_t opslimit, memlimit;
  uint64_t rec_segno, rec_seq; /* the record; 0 and 0: none */
} header;

/* Bytes 64..79 hold the record: the last segment and the last durable seq
 * (zero in headers written before it existed: no record). The key check
 * covers them, then the XXH3. */
static void header_seal(const kj_keys *k, uint8_t b[HDR_BYTES]) {
  kj_header_mac(k, b, 88, b + 88);
  kj_put64(b + 120, XXH3_64bits(b, 120));
}

static void header_set_record(const kj_keys *k, uint8_t b[HDR_BYTES],
                              uint64_t segno, uint64_t seq) {
  kj_put64(b + 64, segno);
  kj_put64(b + 72, segno ? seq : 0);
  header_seal(k, b);
}

static void header_encode(const header *h, const kj_keys *k,
                          uint8_t b[HDR_BYTES]) {
  memset(b, 0, HDR_BYTES);
  memcpy(b, HDR_MAGIC, 8);
  kj_put32(b + 8, h->version);
  kj_put32(b + 12, h->key_mode);
  memcpy(b + 16, h->store_id, KJ_STORE_ID_BYTES);
  memcpy(b + 32, h->salt, KJ_SALT_BYTES);
  kj_put64(b + 48, h->opslimit);
  kj_put64(b + 56, h->memlimit);
  header_set_record(k, b, h->rec_segno, h->rec_seq);
}

/* Rules 1-3 of FORMAT.md section 3 (before the key is known). */
static int header_decode(const uint8_t *b, uint64_t n, header *h,
                         const char *path, kj_errbuf *e) {
  if (n != HDR_BYTES || memcmp(b, HDR_MAGIC, 8))
    return kj_err(e, KJ_EKEY, "%s: not a keyjournal store header", path);
  if (XXH3_64bits(b, 120) != kj_get64(b + 120))
    return kj_err(e, KJ_ECORRUPT, "%s at offset 0: store header damaged", path);
  uint32_t v = kj_get32(b + 8);
  if (v < FORMAT_VERSION_MIN || v > FORMAT_VERSION)
    return kj_err(e, KJ_EFORMAT,
                  "%s: format version %" PRIu32 " (this build reads %u to %u)",
                  path, v, FORMAT_VERSION_MIN, FORMAT_VERSION);
  h->version = v;
  h->key_mode = kj_get32(b + 12);
  memcpy(h->store_id, b + 16, KJ_STORE_ID_BYTES);
  memcpy(h->salt, b + 32, KJ_SALT_BYTES);
  h->opslimit = kj_get64(b + 48);
  h->memlimit = kj_get64(b + 56);
  h->rec_segno = kj_get64(b + 64);
  h->rec_seq = h->rec_segno ? kj_get64(b + 72) : 0;
  return KJ_OK;
}

static int derive(const kj_options *o, const header *h, kj_keys **k,
                  kj_errbuf *e) {
  int rc = kj_keys_derive(o->key, o->passphrase, h->salt, h->opslimit,
                          h->memlimit, k);
  if (rc == KJ_EINVAL)
    return kj_err(e, rc,
                  "Argon2id limits out of range (ops %" PRIu64 ", mem %" PRIu64
                  ")",
                  h->opslimit, h->memlimit);
  if (rc)
    return kj_err(e, rc, "deriving keys: out of memory");
  return KJ_OK;
}

static int read_header(kj_store *s, uint8_t b[HDR_BYTES], uint64_t *n,
                       kj_errbuf *e) {
  char p[KJ_PATH_MAX];
  kj_path(p, s->dir, HDR_NAME);
  kj_vfs_file *f;
  errno = 0;
  int rc = s->vfs->open(s->vfs->ctx, p, KJ_VFS_READ, &f);
  if (rc == KJ_NOTFOUND)
    return KJ_NOTFOUND;
  if (rc)
    return kj_err(e, rc, "open %s: %s", p, kj_err_cause());
  size_t got = 0;
  uint64_t size = 0;
  if (!(rc = s->vfs->size(s->vfs->ctx, f, &size)))
    rc = s->vfs->read(s->vfs->ctx, f, b, HDR_BYTES, 0, &got);
  s->vfs->close(s->vfs->ctx, f);
  if (rc)
    return kj_err(e, rc, "read %s: %s", p, kj_err_cause());
  *n = size; /* a longer file is not a header either */
  return KJ_OK;
}

/* The journal's record hook (kj_record_fn): rewrite the header through
 * durable.c (tmp, sync, rename, sync the directory), so that a crash
 * leaves the old header or the new one, each claiming only what is
 * durable. Unchanged records are not rewritten. */
/* The journal's joining hook: write transactions queued for the writer
 * lock (txn.c counts them around the lock). */
static int writers_queued(void *arg) {
  kj_store *s = arg;
  return atomic_load_explicit(&s->writers_queued, memory_order_relaxed);
}

static int write_record(void *arg, uint64_t segno, uint64_t seq, kj_errbuf *e) {
  kj_store *s = arg;
  if (segno == s->rec_segno && seq == s->rec_seq)
    return KJ_OK;
  uint8_t b[HDR_BYTES];
  memcpy(b, s->header, HDR_BYTES);
  header_set_record(s->keys, b, segno, seq);
  int rc = kj_durable_file(s->vfs, s->dir, HDR_NAME, b, sizeof b, e);
  if (rc)
    return rc; /* the next roll-over or close tries again */
  memcpy(s->header, b, HDR_BYTES);
  s->rec_segno = segno;
  s->rec_seq = seq;
  return KJ_OK;
}

/* s->upgrade_header: the same header as format version 2, durably. */
static int upgrade_header(kj_store *s, kj_errbuf *e) {
  uint8_t b[HDR_BYTES];
  memcpy(b, s->header, HDR_BYTES);
  kj_put32(b + 8, FORMAT_VERSION);
  header_seal(s->keys, b);
  int rc = kj_durable_file(s->vfs, s->dir, HDR_NAME, b, sizeof b, e);
  if (rc)
    return rc; /* the next checkpoint tries again */
  memcpy(s->header, b, HDR_BYTES);
  s->header_version = FORMAT_VERSION;
  return KJ_OK;
}

/* ---- open ------------------------------------------------------------- */

static int check_options(const kj_options *o, kj_errbuf *e) {
  if (o->version < 1 || o->version > KJ_OPTIONS_VERSION)
    return kj_err(e, KJ_EINVAL, "options version %d not supported", o->version);
  if (!o->key == !o->passphrase)
    return kj_err(e, KJ_EINVAL, "give exactly one of key and passphrase");
  if (o->passphrase && !o->passphrase[0])
    return kj_err(e, KJ_EINVAL, "empty passphrase");
  if ((unsigned)o->sync > KJ_SYNC_OFF || (unsigned)o->mode > KJ_OPEN_CREATE_NEW)
    return kj_err(e, KJ_EINVAL, "bad sync or open mode");
  if (o->passphrase &&
      ((o->pwhash_opslimit && o->pwhash_opslimit < KJ_PWHASH_OPS_MIN) ||
       (o->pwhash_memlimit && o->pwhash_memlimit < KJ_PWHASH_MEM_MIN)))
    return kj_err(e, KJ_EINVAL, "Argon2id limits below the minimum");
  if (o->segment_bytes && o->segment_bytes < MIN_SEGMENT)
    return kj_err(e, KJ_EINVAL, "segment_bytes below %u", MIN_SEGMENT);
  if (o->vfs && (o->vfs->version < 1 || o->vfs->version > KJ_VFS_VERSION))
    return kj_err(e, KJ_EINVAL, "vfs version %d not supported",
                  o->vfs->version);
  return KJ_OK;
}

/* Recovery: each replayed commit is staged, and applied in bulk below. */
static int replay_cb(void *arg, const uint8_t *body, size_t len, kj_errbuf *e) {
  kj_store *s = arg;
  kj_apply a;
  kj_store_applier(s, &a, NULL);
  return kj_body_apply(&a, KJ_BODY_STAGE, body, len, e);
}

static int create_store(kj_store *s, const kj_options *o, header *h,
                        kj_errbuf *e) {
  memset(h, 0, sizeof *h);
  kj_random(h->store_id, sizeof h->store_id);
  if (o->passphrase) {
    h->key_mode = KEY_PASSPHRASE;
    kj_random(h->salt, sizeof h->salt);
    h->opslimit = o->pwhash_opslimit ? o->pwhash_opslimit : 2;
    h->memlimit = o->pwhash_memlimit ? o->pwhash_memlimit : (64u << 20);
  } else {
    h->key_mode = KEY_RAW;
  }
  h->version = FORMAT_VERSION;
  h->rec_segno = 1; /* segment 1, no frame yet: true once it is written */
  int rc = derive(o, h, &s->keys, e);
  if (rc)
    return rc;
  kj_journal_cfg jc = {.vfs = s->vfs,
                       .dir = s->dir,
                       .store_id = h->store_id,
                       .key = s->keys->journal,
                       .sync = o->sync,
                       .segment_bytes = o->segment_bytes ? o->segment_bytes
                                                         : DEFAULT_SEGMENT};
  if ((rc = kj_journal_create(&jc, e)))
    return rc;
  header_encode(h, s->keys, s->header);
  /* The commit point of the creation. */
  return kj_durable_file(s->vfs, s->dir, HDR_NAME, s->header, HDR_BYTES, e);
}

static void parent_of(const char *path, char out[KJ_PATH_MAX]);

/* Reads of a store beside its writer before a failure counts (open_dir). */
#define BESIDE_WRITER_ATTEMPTS 32u

/* Read the header, the newest snapshot and the journal. Keys are derived
 * on the first call only; a later call (a retry beside a writer) requires
 * the same header parameters. */
static int load(kj_store *s, const kj_options *o, kj_errbuf *e) {
  int may_create = o->mode != KJ_OPEN_EXISTING && !o->read_only;
  uint8_t b[HDR_BYTES];
  uint64_t n = 0;
  header h;
  /* Again, now that no one else writes (or, read-only, beside the writer:
   * open_dir retries what changed under it). */
  int rc = read_header(s, b, &n, e);
  if (rc == KJ_NOTFOUND) {
    if (!may_create)
      return kj_err(e, KJ_NOTFOUND, "%s: no keyjournal store there", s->dir);
    if ((rc = create_store(s, o, &h, e)))
      return rc;
  } else if (rc) {
    return rc;
  } else {
    char p[KJ_PATH_MAX];
    kj_path(p, s->dir, HDR_NAME);
    if (o->mode == KJ_OPEN_CREATE_NEW)
      return kj_err(e, KJ_EEXIST, "%s: a store exists there", s->dir);
    if ((rc = header_decode(b, n, &h, p, e)))
      return rc;
    uint32_t want = o->passphrase ? KEY_PASSPHRASE : KEY_RAW;
    if (h.key_mode != want)
      return kj_err(e, KJ_EKEY, "%s: store uses a %s", p,
                    h.key_mode == KEY_RAW ? "raw key, not a passphrase"
                                          : "passphrase, not a raw key");
    if (s->keys && memcmp(b, s->header, 64) != 0)
      return kj_err(e, KJ_ECORRUPT, "%s: store replaced while opening", p);
    if (!s->keys && (rc = derive(o, &h, &s->keys, e)))
      return rc;
    if (!kj_header_mac_ok(s->keys, b, 88, b + 88))
      return kj_err(e, KJ_EKEY, "%s: wrong key or passphrase", p);
    memcpy(s->header, b, HDR_BYTES);
  }
  memcpy(s->store_id, h.store_id, KJ_STORE_ID_BYTES);
  s->header_version = kj_get32(s->header + 8);
  s->rec_segno = h.rec_segno;
  s->rec_seq = h.rec_seq;
  if ((rc = kj_checkpoint_load(s, e)))
    return rc;
  kj_journal_cfg jc = {
      .vfs = s->vfs,
      .dir = s->dir,
      .store_id = h.store_id,
      .key = s->keys->journal,
      .sync = o->sync,
      .segment_bytes = o->segment_bytes ? o->segment_bytes : DEFAULT_SEGMENT,
      .sync_interval = o->sync_interval_bytes ? o->sync_interval_bytes
                                              : DEFAULT_SYNC_INTERVAL,
      .read_only = o->read_only,
      .durable_only = o->read_only && o->version >= 2 && o->read_durable,
      .base_segno = s->snap.base,
      .base_seq = s->snap.seq,
      .base_tag = s->snap.seq ? s->snap.prev_tag : NULL,
      .rec_segno = h.rec_segno,
      .rec_seq = h.rec_seq,
      .record = o->read_only ? NULL : write_record,
      .record_arg = s,
      .joining = writers_queued,
      .joining_arg = s,
      .ahead_inline = s->ckpt_inline};
  rc = kj_journal_open(&jc, replay_cb, s, &s->journal, e);
  if (!rc && kj_body_apply_staged(s->tables))
    rc = kj_err(e, KJ_ENOMEM, "applying the replayed journal: out of memory");
  if (!rc)
    rc = kj_checkpoint_count(s, e);
  return rc;
}

static int open_dir(kj_store *s, const kj_options *o, kj_errbuf *e) {
  int may_create = o->mode != KJ_OPEN_EXISTING && !o->read_only;
  if (may_create) {
    errno = 0;
    int rc = s->vfs->mkdir(s->vfs->ctx, s->dir);
    if (rc && rc != KJ_EEXIST)
      return kj_err(e, rc, "create directory %s: %s", s->dir, kj_err_cause());
    if (!rc) { /* created: make its entry in the parent durable first */
      char parent[KJ_PATH_MAX];
      parent_of(s->dir, parent);
      errno = 0;
      if ((rc = s->vfs->sync_dir(s->vfs->ctx, parent[0] ? parent : ".")))
        return kj_err(e, rc, "sync directory %s: %s", parent[0] ? parent : ".",
                      kj_err_cause());
    }
  }
  uint8_t b[HDR_BYTES];
  uint64_t n = 0;
  /* Nothing is created where no store is to be opened. */
  int rc = read_header(s, b, &n, e);
  if (rc == KJ_NOTFOUND && !may_create)
    return kj_err(e, KJ_NOTFOUND, "%s: no keyjournal store there", s->dir);
  if (rc && rc != KJ_NOTFOUND)
    return rc;
  int beside_writer;
  if ((rc = take_lock(s, o->busy_timeout_ms, &beside_writer, e)))
    return rc;
  /* Beside a writer (read-only: none holds the lock, rule 5.9), the files
   * may change while they are read: a segment or snapshot removed by a
   * checkpoint, a header rewritten at a roll-over, a tail cut by a writer's
   * recovery. What looks like damage or a missing file is read again from
   * the start, while a writer holds the store (or took it meanwhile), a
   * bounded number of times; damage that stays is reported. */
  for (unsigned attempt = 1;; attempt++) {
    rc = load(s, o, e);
    if (!rc || attempt >= BESIDE_WRITER_ATTEMPTS ||
        (rc != KJ_ECORRUPT && rc != KJ_NOTFOUND))
      break;
    if (!beside_writer) {
      kj_errbuf ignored;
      if (!o->read_only || take_lock(s, 0, &beside_writer, &ignored) ||
          !beside_writer)
        break;
    }
    for (unsigned t = KJ_TABLE_MIN; t <= KJ_TABLE_MAX; t++)
      kj_map_clear(s->tables[t]);
    kj_run_close(s->run, s->cache);
    s->run = NULL;
    if (s->journal) {
      kj_errbuf ignored;
      kj_journal_close(s->journal, &ignored);
      s->journal = NULL;
    }
    sleep_ms(attempt < 5 ? 1u << attempt : 20);
  }
  if (rc)
    return rc;
  if (!o->read_only && s->header_version < FORMAT_VERSION) {
    /* A format 1 store: its rows become a run, then its header says
     * format 2 (kj_checkpoint_locked); an empty one only needs the
     * header. Crash-safe at every step: FORMAT.md 6A.8. */
    if (!(rc = kj_checkpoint_locked(s, e)) &&
        s->header_version < FORMAT_VERSION)
      rc = upgrade_header(s, e);
    if (rc)
      return rc;
  }
  if (!o->read_only) {
    kj_errbuf ignored; /* leftovers of an interrupted checkpoint: retried */
    kj_checkpoint_drop_old(s, &ignored);
  }
  return KJ_OK;
}

int kj_store_open(const char *path, const kj_options *opts, kj_store **out,
                  char **errmsg) {
  kj_errbuf e = {{0}};
  int rc;
  kj_store *s = NULL;
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  if (errmsg)
    *errmsg = NULL;
  if (out)
    *out = NULL;
  if (!out || !opts) {
    rc = kj_err(&e, KJ_EINVAL, "kj_store_open: NULL out or options");
    goto done;
  }
  if ((rc = check_options(opts, &e)))
    goto done;
  if ((rc = kj_crypto_init())) {
    kj_err(&e, rc, "libsodium failed to initialise");
    goto done;
  }
  if (!(s = store_new())) {
    rc = kj_err(&e, KJ_ENOMEM, "out of memory");
    goto done;
  }
  s->vfs = opts->vfs ? opts->vfs : kj_vfs_posix();
  s->upgrade_header = upgrade_header;
  s->header_version = FORMAT_VERSION;
  s->ckpt_inline = opts->version >= 3 && opts->checkpoint_inline;
  if (path && kj_bcache_new(opts->version >= 3 && opts->cache_bytes
                                ? (size_t)opts->cache_bytes
                                : DEFAULT_CACHE_BYTES,
                            &s->cache)) {
    rc = kj_err(&e, KJ_ENOMEM, "out of memory");
    goto done;
  }
  s->read_only = opts->read_only;
  s->clock = opts->clock ? opts->clock : wall_clock;
  s->clock_ctx = opts->clock ? opts->clock_ctx : NULL;
  s->snapshot_threshold = opts->snapshot_threshold ? opts->snapshot_threshold
                                                   : DEFAULT_SNAPSHOT_THRESHOLD;
  s->next_checkpoint = s->snapshot_threshold;
  if (!path) {
    /* Memory-only: nothing is encrypted, so no key is derived. */
  } else if (!path[0] || strlen(path) > KJ_PATH_MAX - 64) {
    rc = kj_err(&e, KJ_EINVAL, "store path empty or too long");
  } else if (!(s->dir = strdup(path))) {
    rc = kj_err(&e, KJ_ENOMEM, "out of memory");
  } else {
    rc = open_dir(s, opts, &e);
  }
done:
  if (rc) {
    if (s) {
      if (s->journal) {
        kj_errbuf ignored;
        kj_journal_close(s->journal, &ignored);
      }
      store_free(s);
    }
    if (errmsg)
      *errmsg = strdup(e.msg);
    return rc;
  }
  s->recovery_usec = kj_usec_since(&t0);
  kj_store_refresh_stats(s);
  *out = s;
  return KJ_OK;
}

int kj_store_close(kj_store *s) {
  if (!s)
    return KJ_OK;
  /* A group commit waiting for its sync holds no lock but counts in
   * committing (raised before it released the writer lock). */
  if (atomic_load(&s->readers) || atomic_load(&s->committing))
    return kj_store_fail_msg(s, KJ_EINVAL,
                             "kj_store_close: a transaction is still open");
  /* A background checkpoint gives up (the journal still holds all it was
   * merging) or, past its rename, finishes; it takes the writer lock to
   * install its run, so it is waited for before that lock is taken. */
  atomic_store(&s->ckpt_cancel, 1);
  kj_checkpoint_join(s);
  if (pthread_mutex_trylock(&s->writer) != 0) {
    atomic_store(&s->ckpt_cancel, 0); /* the handle goes on */
    return kj_store_fail_msg(s, KJ_EINVAL,
                             "kj_store_close: a transaction is still open");
  }
  if (atomic_load(&s->committing)) { /* raised before we took the lock */
    atomic_store(&s->ckpt_cancel, 0);
    pthread_mutex_unlock(&s->writer);
    return kj_store_fail_msg(s, KJ_EINVAL,
                             "kj_store_close: a commit is still running");
  }
  kj_errbuf e;
  int rc = s->journal ? kj_journal_close(s->journal, &e) : KJ_OK;
  s->journal = NULL;
  pthread_mutex_unlock(&s->writer);
  store_free(s);
  return rc;
}

int kj_store_sync(kj_store *s) {
  if (!s)
    return KJ_EINVAL;
  if (!s->journal)
    return KJ_OK;
  kj_errbuf e;
  if (kj_writer_check(s, "kj_store_sync"))
    return KJ_EDEADLK;
  pthread_mutex_lock(&s->writer);
  int rc = kj_journal_sync(s->journal, &e);
  if (rc && kj_journal_poisoned(s->journal))
    atomic_store(&s->poisoned, 1);
  kj_store_refresh_stats(s);
  pthread_mutex_unlock(&s->writer);
  return rc ? kj_store_fail(s, rc, &e) : KJ_OK;
}

int64_t kj_store_clock(kj_store *s) { return s->clock(s->clock_ctx); }

const char *kj_store_path(kj_store *s) { return s ? s->dir : NULL; }

/* Segment, snapshot, then the header (the commit point of a store's
 * creation, FORMAT.md section 1), all durably; then the directory entry of
 * dir itself, in its parent: without that sync a power loss could take the
 * whole copy away after kj_store_copy() returned. */
static int copy_locked(kj_store *s, const char *dir, kj_errbuf *e) {
  errno = 0;
  int rc = s->vfs->mkdir(s->vfs->ctx, dir);
  if (rc)
    return kj_err(e, rc, "create directory %s: %s", dir, kj_err_cause());
  /* KJ_SYNC_FULL: the tables may hold group commits whose sync is still
   * running; copy them only once they are durable (a failed sync fails
   * the copy, and undoes them). */
  if ((rc = kj_journal_flush(s->journal, e))) {
    if (kj_journal_poisoned(s->journal))
      atomic_store(&s->poisoned, 1);
    return rc;
  }
  kj_snap_info info = {0};
  kj_journal_tail(s->journal, &info.seq, info.prev_tag);
  info.base = 1;
  kj_journal_cfg jc = {.vfs = s->vfs,
                       .dir = dir,
                       .store_id = s->store_id,
                       .key = s->keys->journal,
                       .sync = KJ_SYNC_FULL,
                       .segment_bytes = MIN_SEGMENT,
                       .base_segno = 1,
                       .base_seq = info.seq};
  if ((rc = kj_journal_create(&jc, e)))
    return rc;
  int renamed;
  if (info.seq && (rc = kj_checkpoint_write_run(s, dir, 1, &info, &renamed, e)))
    return rc;
  /* The copy's own record: segment 1, and every frame (the run holds
   * them) durable; format version 2, since it holds a run. */
  uint8_t b[HDR_BYTES];
  memcpy(b, s->header, HDR_BYTES);
  kj_put32(b + 8, FORMAT_VERSION);
  header_set_record(s->keys, b, 1, info.seq);
  if ((rc = kj_durable_file(s->vfs, dir, HDR_NAME, b, sizeof b, e)))
    return rc;
  char parent[KJ_PATH_MAX];
  parent_of(dir, parent);
  errno = 0;
  if ((rc = s->vfs->sync_dir(s->vfs->ctx, parent[0] ? parent : ".")))
    return kj_err(e, rc, "sync directory %s: %s", parent[0] ? parent : ".",
                  kj_err_cause());
  return KJ_OK;
}

/* The directory holding path's last entry, into out: "" when path has no
 * '/' (the working directory), "/" for an entry of the root. */
static void parent_of(const char *path, char out[KJ_PATH_MAX]) {
  size_t n = strlen(path);
  while (n > 1 && path[n - 1] == '/')
    n--;
  while (n > 0 && path[n - 1] != '/')
    n--;
  while (n > 1 && path[n - 1] == '/')
    n--;
  snprintf(out, KJ_PATH_MAX, "%.*s", (int)n, path);
}

/* The parent of dir: created (and its own directory entry synced) when
 * missing, else it must be a directory and not a link (KJ_VFS_DIRECTORY). */
static int ensure_parent(kj_store *s, const char *dir, kj_errbuf *e) {
  char parent[KJ_PATH_MAX], grand[KJ_PATH_MAX];
  parent_of(dir, parent);
  if (!parent[0])
    return KJ_OK;
  const kj_vfs *v = s->vfs;
  errno = 0;
  int rc = v->mkdir(v->ctx, parent);
  if (rc == KJ_OK) {
    parent_of(parent, grand);
    errno = 0;
    if ((rc = v->sync_dir(v->ctx, grand[0] ? grand : ".")))
      return kj_err(e, rc, "sync directory %s: %s", grand[0] ? grand : ".",
                    kj_err_cause());
    return KJ_OK;
  }
  if (rc != KJ_EEXIST)
    return kj_err(e, rc, "create directory %s: %s", parent, kj_err_cause());
  kj_vfs_file *f;
  errno = 0;
  rc = v->open(v->ctx, parent, KJ_VFS_READ | KJ_VFS_DIRECTORY, &f);
  if (rc)
    return kj_err(e, KJ_EIO, "%s exists and is not a directory", parent);
  v->close(v->ctx, f);
  return KJ_OK;
}

/* ---- a copy's extra bytes (doc/FORMAT.md 6.4) ---------------------------
 *
 * extra.bin is sealed like everything else the engine writes: a 64-byte
 * header (magic, store id, nonce, length) that is the associated data of
 * XChaCha20-Poly1305 under the side-file subkey, then the ciphertext. */

#define EXTRA_NAME "extra.bin"
#define EXTRA_MAGIC "KJEXTRA\001"
#define EXTRA_HDR 64u

static int extra_write(kj_store *s, const char *dir, const void *m, size_t n,
                       kj_errbuf *e) {
  size_t len = EXTRA_HDR + n + KJ_TAG_BYTES;
  uint8_t *b = calloc(1, len);
  if (!b)
    return kj_err(e, KJ_ENOMEM, "sealing %s: out of memory", EXTRA_NAME);
  memcpy(b, EXTRA_MAGIC, 8);
  memcpy(b + 8, s->store_id, KJ_STORE_ID_BYTES);
  kj_random(b + 24, KJ_NONCE_BYTES);
  kj_put64(b + 48, n);
  kj_seal(s->keys->side, b + EXTRA_HDR, m, n, b, EXTRA_HDR, b + 24);
  int rc = kj_durable_file(s->vfs, dir, EXTRA_NAME, b, len, e);
  free(b);
  return rc;
}

int kj_store_read_extra(kj_store *s, void **extra, size_t *elen) {
  if (!s)
    return KJ_EINVAL;
  if (extra)
    *extra = NULL;
  if (elen)
    *elen = 0;
  if (!extra || !elen || !s->dir)
    return kj_store_fail_msg(
        s, KJ_EINVAL,
        "kj_store_read_extra: NULL output or a memory-only store");
  kj_errbuf e;
  char p[KJ_PATH_MAX];
  kj_path(p, s->dir, EXTRA_NAME);
  kj_vfs_file *f;
  errno = 0;
  int rc = s->vfs->open(s->vfs->ctx, p, KJ_VFS_READ, &f);
  if (rc == KJ_NOTFOUND)
    kj_err(&e, rc, "%s: no extra bytes in this store", p);
  else if (rc)
    kj_err(&e, rc, "open %s: %s", p, kj_err_cause());
  if (rc)
    return kj_store_fail(s, rc, &e);
  uint64_t size = 0;
  uint8_t *b = NULL;
  size_t got = 0;
  if ((rc = s->vfs->size(s->vfs->ctx, f, &size)))
    kj_err(&e, rc, "size of %s: %s", p, kj_err_cause());
  else if (size < EXTRA_HDR + KJ_TAG_BYTES ||
           size > (uint64_t)EXTRA_HDR + KJ_TAG_BYTES + KJ_MAX_VALUE)
    rc = kj_err(&e, KJ_ECORRUPT,
                "%s: %" PRIu64 " bytes is not the size of an extra-bytes file",
                p, size);
  else if (!(b = malloc((size_t)size)))
    rc = kj_err(&e, KJ_ENOMEM, "reading %s: out of memory", p);
  else if ((rc = s->vfs->read(s->vfs->ctx, f, b, (size_t)size, 0, &got)))
    kj_err(&e, rc, "read %s: %s", p, kj_err_cause());
  s->vfs->close(s->vfs->ctx, f);
  size_t n =
      got > EXTRA_HDR + KJ_TAG_BYTES ? got - EXTRA_HDR - KJ_TAG_BYTES : 0;
  uint8_t *m = NULL;
  if (rc) {
    /* e says why */
  } else if (got != size || memcmp(b, EXTRA_MAGIC, 8))
    rc = kj_err(&e, KJ_ECORRUPT,
                "%s at offset 0: not an extra-bytes file (bad magic or "
                "version)",
                p);
  else if (memcmp(b + 8, s->store_id, KJ_STORE_ID_BYTES))
    rc = kj_err(&e, KJ_ECORRUPT, "%s at offset 8: written by another store", p);
  else if (kj_get64(b + 48) != n)
    rc = kj_err(&e, KJ_ECORRUPT,
                "%s at offset 48: length %" PRIu64 " but %zu bytes follow", p,
                kj_get64(b + 48), n);
  else if (!(m = malloc(n ? n : 1)))
    rc = kj_err(&e, KJ_ENOMEM, "reading %s: out of memory", p);
  else if (kj_unseal(s->keys->side, m, b + EXTRA_HDR, n + KJ_TAG_BYTES, b,
                     EXTRA_HDR, b + 24)) {
    free(m);
    m = NULL;
    rc = kj_err(&e, KJ_ECORRUPT,
                "%s at offset %u: authentication failed (damaged, or sealed "
                "with another key)",
                p, EXTRA_HDR);
  }
  free(b);
  if (rc)
    return kj_store_fail(s, rc, &e);
  if (!n) {
    free(m);
    m = NULL;
  }
  *extra = m;
  *elen = n;
  return KJ_OK;
}

int kj_store_copy_ex(kj_store *s, kj_txn *txn, const char *dir,
                     const void *extra, size_t elen, unsigned flags) {
  if (!s)
    return KJ_EINVAL;
  kj_errbuf e;
  if (!s->journal || s->read_only || !dir || !dir[0] ||
      strlen(dir) > KJ_PATH_MAX - 64 || (txn && (txn->s != s || !txn->ws)) ||
      (flags & ~KJ_COPY_PARENT) || (!extra && elen) || elen > KJ_MAX_VALUE)
    return kj_store_fail_msg(
        s, KJ_EINVAL,
        "kj_store_copy: memory-only or read-only store, bad directory, "
        "transaction, flags or extra bytes");
  if (!txn && kj_writer_check(s, "kj_store_copy with txn NULL"))
    return KJ_EDEADLK;
  if (!txn)
    pthread_mutex_lock(&s->writer);
  int rc = KJ_OK;
  if (flags & KJ_COPY_PARENT)
    rc = ensure_parent(s, dir, &e);
  if (!rc)
    rc = copy_locked(s, dir, &e);
  if (!rc && extra)
    rc = extra_write(s, dir, extra, elen, &e);
  if (!txn)
    pthread_mutex_unlock(&s->writer);
  return rc ? kj_store_fail(s, rc, &e) : KJ_OK;
}

int kj_store_copy(kj_store *s, kj_txn *txn, const char *dir) {
  return kj_store_copy_ex(s, txn, dir, NULL, 0, 0);
}

int kj_store_checkpoint(kj_store *s) {
  if (!s)
    return KJ_EINVAL;
  kj_errbuf e;
  if (kj_writer_check(s, "kj_store_checkpoint"))
    return KJ_EDEADLK;
  /* A background checkpoint takes the writer lock to install its run:
   * wait for it first, then run one under the lock (merging what it left
   * frozen if it failed). */
  pthread_mutex_lock(&s->writer);
  while (atomic_load(&s->ckpt_running)) {
    pthread_mutex_unlock(&s->writer);
    kj_checkpoint_join(s);
    pthread_mutex_lock(&s->writer);
  }
  int rc = kj_checkpoint_locked(s, &e);
  pthread_mutex_unlock(&s->writer);
  return rc ? kj_store_fail(s, rc, &e) : KJ_OK;
}

/* ---- statistics ------------------------------------------------------- */

static int stats_fill(kj_store *s, kj_stats *out) {
  memset(out, 0, sizeof *out);
  out->format_version = s->header_version;
  out->memory_only = s->journal == NULL;
  out->read_only = s->read_only;
  out->poisoned = atomic_load(&s->poisoned) || atomic_load(&s->broken);
  pthread_mutex_lock(&s->mu);
  const kj_journal_stats *js = &s->jstats;
  out->last_seq = js->last_seq;
  out->segments = js->segments;
  out->journal_bytes = js->journal_bytes;
  out->disk_bytes =
      s->journal ? js->disk_bytes + HDR_BYTES + s->snap.file_bytes : 0;
  out->frames_replayed = js->frames_replayed;
  out->tail_bytes_cut = js->tail_bytes_cut;
  out->segments_ahead = js->segments_ahead;
  for (unsigned t = KJ_TABLE_MIN; t <= KJ_TABLE_MAX; t++) {
    out->rows += s->table_rows[t];
    out->logical_bytes += s->table_bytes[t];
  }
  out->commits = s->commits;
  out->recovery_usec = s->recovery_usec;
  out->snapshot_seq = s->snap.seq;
  out->snapshot_rows = s->snap.rows;
  out->snapshot_bytes = s->snap.file_bytes;
  out->snapshot_raw_bytes = s->snap.raw_bytes;
  out->snapshots_written = s->snapshots_written;
  out->snapshot_usec = s->snapshot_usec;
  out->snapshot_failures = s->snapshot_failures;
  pthread_mutex_unlock(&s->mu);
  out->syncs = s->journal ? kj_journal_syncs(s->journal) : 0;
  return KJ_OK;
}

int kj_store_stats(kj_store *s, kj_stats *out) {
  if (!s || !out || out->version < 1)
    return KJ_EINVAL;
  /* A caller built against an older version has a shorter struct. */
  int version =
      out->version >= KJ_STATS_VERSION ? KJ_STATS_VERSION : out->version;
  size_t size = version >= 3   ? sizeof *out
                : version == 2 ? offsetof(kj_stats, segments_ahead)
                               : offsetof(kj_stats, syncs);
  kj_stats st;
  int rc = stats_fill(s, &st);
  st.version = version;
  memcpy(out, &st, size);
  return rc;
}

int kj_table_count(kj_store *s, unsigned table, uint64_t *rows,
                   uint64_t *bytes) {
  if (!s || table < KJ_TABLE_MIN || table > KJ_TABLE_MAX)
    return KJ_EINVAL;
  pthread_mutex_lock(&s->mu);
  if (rows)
    *rows = s->table_rows[table];
  if (bytes)
    *bytes = s->table_bytes[table];
  pthread_mutex_unlock(&s->mu);
  return KJ_OK;
}
