/*
 * src/engine/journal.c - segments, frames, sync points and recovery.
 *
 * This file is the one place that writes frames and the one place that
 * decides where the log ends. doc/FORMAT.md is its specification: section 4
 * for the bytes, section 5 for the numbered recovery rules quoted below.
 *
 * Segments are pre-written with zeros so that appending a frame is an
 * overwrite: a durable commit costs one write and one fdatasync, and no
 * change of file size (and so no file-system journal commit). A new
 * segment appears whole, through durable.c. The journal knows nothing of
 * tables or of the store handle: it carries commit bodies as opaque bytes
 * and hands replayed ones to its caller's callback.
 *
 * Group commit (FORMAT.md 4.4): frames are written under the store's
 * writer lock, but the fdatasync that makes a KJ_SYNC_FULL commit durable
 * is shared. group_sync() is the only place that syncs the live segment:
 * a caller that finds no sync in progress becomes the leader, syncs every
 * frame written so far with the mutex dropped, then publishes the new
 * durable_seq and wakes the others; a caller that finds one in progress
 * waits for it and tries again. sync_mu guards the group state and the
 * identity of the live segment file, which roll_over() only replaces once
 * every frame of the old one is durable and no leader holds it.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "body.h"
#include "common/codec.h"
#include "crypto.h"
#include "durable.h"
#include "journal.h"
#include "secmem.h"

#define SEG_MAGIC "KJSEGMT\0"
#define FRAME_MAGIC "KJFR"
#define FORMAT_VERSION 1u
#define FRAME_COMMIT 1u
#define FRAME_MARKER 2u
#define AD_BYTES (KJ_STORE_ID_BYTES + 8 + 32 + KJ_TAG_BYTES)
#define ZERO_CHUNK (1u << 20)
#define AHEAD_SYNC (2u << 20) /* a multiple of ZERO_CHUNK */

struct kj_journal {
  kj_journal_cfg cfg; /* cfg.dir points to dir */
  char *dir;
  uint8_t store_id[KJ_STORE_ID_BYTES];

  /* Write position: the last segment. */
  kj_vfs_file *seg;
  uint64_t segno;
  uint64_t seg_size;
  uint64_t off;

  uint64_t next_seq; /* seq of the next frame */
  /* Frame nonces (FORMAT 4.2): nonce_prefix, random per handle, then
   * nonce_ctr, +1 per frame written by this handle. */
  uint8_t nonce_prefix[16];
  uint64_t nonce_ctr;
  kj_sealer *sealer; /* the journal key and nonce_prefix (crypto.h) */
  /* Recovery replays no frame above it (cfg.durable_only). */
  uint64_t replay_limit;
  uint8_t prev_tag[KJ_TAG_BYTES];
  /* Frame bytes written since the writer side last synced (NORMAL's
   * interval); group syncs by FULL committers leave it alone. */
  uint64_t unsynced_bytes;
  int since_marker; /* frames written since the last sync marker */
  /* Set by a failed write, sync or roll-over; never cleared. Once it is
   * set (and no sync is in progress) durable_seq no longer moves. */
  atomic_int poisoned;

  /* Group commit state, under sync_mu (which is never held while taking
   * another lock or doing I/O). seg and segno are changed under it too. */
  pthread_mutex_t sync_mu;
  pthread_cond_t sync_cv;
  uint64_t written_seq;  /* newest frame whose write has returned */
  uint64_t appended_seq; /* newest frame written or held in pend */
  /* Frames appended while a sync runs, or after such frames, are held
   * here rather than written (write_frame): a write into the file during
   * its fdatasync made that fdatasync 1.5-2x slower on the development
   * machine's ext4, and the next group's frames go in one write. pend
   * holds bytes [pend_off, pend_off + pend_len) of seg, frames up to
   * pend_seq; the next leader takes it (swapping it with flush, which is
   * the leader's alone while syncing is set), writes it and then syncs. */
  uint8_t *pend, *flush;
  size_t pend_len, pend_cap, flush_cap;
  uint64_t pend_off, pend_seq;
  uint64_t durable_seq; /* highest seq covered by a completed sync */
  /* KJ_SYNC_OFF: the frames replayed at open, which this handle does not
   * sync unless it writes more (FORMAT.md 4.4 claims nothing for them). */
  uint64_t clean_seq;
  int syncing; /* a leader is in fdatasync (on seg, unlocked) */
  int sync_rc; /* status of the shared sync that failed, or 0 */
  char sync_msg[256];
  uint64_t syncs; /* completed or failed fdatasyncs of live segments */
  /* Frames the last grouped sync covered: a would-be leader of a grouped
   * wait defers while fewer are pending (group_sync). */
  uint64_t last_group;

  uint8_t *fbuf; /* frame being built (write() path) */
  size_t fcap;

  /* The live segment mapped for appending (vfs.h, version 2), or NULL:
   * frames then go through write(). Bytes [0, map_len) of seg. Writer
   * side only. The pages below res_hi were map_reserve()d while syncs was
   * res_syncs: a sync since then may have cleaned them. */
  uint8_t *map;
  uint64_t map_len;
  uint64_t res_hi;
  uint64_t res_syncs;

  uint64_t segments;
  uint64_t bytes_before; /* frame bytes in segments before the last */
  uint64_t disk_before;  /* file bytes of segments before the last */
  /* What each of those segments adds to them, ascending by number, so that
   * dropping the oldest (a checkpoint's step 4, which may come after later
   * roll-overs when it runs in the background) subtracts exactly theirs. */
  struct seg_tally {
    uint64_t segno, bytes, disk;
  } * tally;
  size_t ntally, captally;
  uint64_t frames_replayed;
  uint64_t tail_cut;

  /* The next segment, made ahead of its roll-over (see "segments made
   * ahead" below). Writer side only, except what the maker thread owns
   * while ah_running: ah_d and ah_rc, read only after it is joined. */
  pthread_t ah_thread;
  int ah_running; /* the maker thread was started and not yet joined */
  int ah_ready;   /* ah_d holds a made segment, NAME.tmp, not yet used */
  int ah_want;    /* start one once the live segment is half full */
  atomic_int ah_cancel;
  uint64_t ah_segno, ah_size;
  kj_durable ah_d;
  int ah_rc;
  uint64_t ah_used; /* roll-overs that used one */
};

/* ---- names and small helpers ------------------------------------------ */

/* A segment before the last, with its frame and file bytes. Without memory
 * the entry is lost: the statistics then keep its bytes after it is gone
 * (a later checkpoint comes sooner than it should), nothing else. */
static void tally_add(kj_journal *j, uint64_t segno, uint64_t bytes,
                      uint64_t disk) {
  j->bytes_before += bytes;
  j->disk_before += disk;
  if (j->ntally == j->captally) {
    size_t c = j->captally ? 2 * j->captally : 8;
    struct seg_tally *t = realloc(j->tally, c * sizeof *t);
    if (!t)
      return;
    j->tally = t;
    j->captally = c;
  }
  j->tally[j->ntally++] = (struct seg_tally){segno, bytes, disk};
}

#define SEG_NAME_BYTES 32

static void seg_name(uint64_t segno, char out[SEG_NAME_BYTES]) {
  snprintf(out, SEG_NAME_BYTES, "journal-%016" PRIx64 ".kjl", segno);
}

static void seg_path(const char *dir, uint64_t segno, char out[KJ_PATH_MAX]) {
  char name[SEG_NAME_BYTES];
  seg_name(segno, name);
  kj_path(out, dir, name);
}

/* Parse "journal-<16 hex>.kjl"; 1 on success. */
static int parse_seg_name(const char *name, uint64_t *segno) {
  return strlen(name) == 8 + 16 + 4 && !strncmp(name, "journal-", 8) &&
         !strcmp(name + 24, ".kjl") && kj_parse_hex16(name + 8, segno);
}

static int all_zero(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i])
      return 0;
  return 1;
}

static uint64_t frame_checksum(const uint8_t *hdr, const uint8_t *ct,
                               size_t len) {
  /* XXH3 of ciphertext seeded with XXH3 of header bytes 0..55 (FORMAT 4.2) */
  return XXH3_64bits_withSeed(ct, len, XXH3_64bits(hdr, 56));
}

static void frame_ad(uint8_t ad[AD_BYTES], const uint8_t *store_id,
                     uint64_t segno, const uint8_t *hdr,
                     const uint8_t *prev_tag) {
  memcpy(ad, store_id, KJ_STORE_ID_BYTES);
  kj_put64(ad + KJ_STORE_ID_BYTES, segno);
  memcpy(ad + KJ_STORE_ID_BYTES + 8, hdr, 32);
  memcpy(ad + KJ_STORE_ID_BYTES + 8 + 32, prev_tag, KJ_TAG_BYTES);
}

/* A frame is sound (FORMAT 5.5) when its header and body lie within
 * [0,size), magic, reserved bytes and length hold, and the checksum
 * matches. Returns the body length or 0. */
static uint32_t frame_sound(const uint8_t *b, uint64_t size, uint64_t off) {
  if (off > size || size - off < KJ_FRAME_HEADER)
    return 0;
  const uint8_t *h = b + off;
  if (memcmp(h, FRAME_MAGIC, 4) || !all_zero(h + 25, 7))
    return 0;
  uint32_t len = kj_get32(h + 4);
  if (len < KJ_TAG_BYTES + 1 || len > KJ_MAX_FRAME_BODY ||
      size - off - KJ_FRAME_HEADER < len)
    return 0;
#ifndef KJ_FUZZ_TEST_KEY /* test-only: see src/engine/crypto.c */
  if (frame_checksum(h, h + KJ_FRAME_HEADER, len) != kj_get64(h + 56))
    return 0;
#endif
  return len;
}

/* A buffer that holds one whole file at a time, reused from file to file
 * and released with free(p). It holds sealed frames only (ciphertext), so
 * it needs neither a wipe nor exclusion from core dumps, and it comes from
 * plain malloc: a segment is megabytes, above glibc's mmap threshold, so
 * the first one is a mapping of its own that free returns to the OS, and
 * glibc then serves later ones from its heap. Reusing one buffer for
 * every segment of a replay pays its page faults once, not per segment. */
typedef struct file_buf {
  uint8_t *p;
  size_t cap;
} file_buf;

/* Read the whole file at path into fb (grown when too small); its bytes
 * are fb->p[0 .. *size). */
static int read_file(const kj_vfs *vfs, const char *path, file_buf *fb,
                     uint64_t *size, kj_errbuf *e) {
  kj_vfs_file *f;
  errno = 0;
  int rc = vfs->open(vfs->ctx, path, KJ_VFS_READ, &f);
  if (rc)
    return kj_err(e, rc, "open %s: %s", path, kj_err_cause());
  uint64_t sz;
  rc = vfs->size(vfs->ctx, f, &sz);
  if (rc) {
    vfs->close(vfs->ctx, f);
    return kj_err(e, rc, "size of %s: %s", path, kj_err_cause());
  }
  if (sz > SIZE_MAX - 1) {
    vfs->close(vfs->ctx, f);
    return kj_err(e, KJ_ENOMEM, "%s is too large to read", path);
  }
  if (!fb->p || fb->cap < sz) {
    free(fb->p); /* no realloc: the old bytes are not wanted */
    fb->cap = 0;
    if (!(fb->p = malloc(sz))) {
      vfs->close(vfs->ctx, f);
      return kj_err(e, KJ_ENOMEM, "reading %s: out of memory", path);
    }
    fb->cap = sz;
  }
  size_t got = 0;
  rc = vfs->read(vfs->ctx, f, fb->p, sz, 0, &got);
  vfs->close(vfs->ctx, f);
  if (rc)
    return kj_err(e, rc, "read %s: %s", path, kj_err_cause());
  *size = got; /* a file that shrank under us reads short: trust the bytes */
  return KJ_OK;
}

/* Write n zero bytes at off. */
/* Zeros over [off, off + n) of f, ZERO_CHUNK bytes at a time. With
 * cancel, stops with KJ_EBUSY (no message) at the first chunk after it was
 * set. With sync_each, each AHEAD_SYNC bytes are synced before more are
 * written: a segment made ahead, beside commits, never puts more than that
 * in the device's queue ahead of a commit's fdatasync (on the development
 * machine 2 MiB took about 2.5 ms to write back: a commit that waits
 * behind it waits that long, and 8 MiB holds up four or so commits). */
static int write_zeros(const kj_vfs *vfs, kj_vfs_file *f, uint64_t off,
                       uint64_t n, atomic_int *cancel, int sync_each) {
  uint8_t *z = calloc(1, ZERO_CHUNK);
  if (!z)
    return KJ_ENOMEM;
  int rc = KJ_OK;
  while (n && !rc) {
    if (cancel && atomic_load(cancel)) {
      rc = KJ_EBUSY;
      break;
    }
    size_t k = n < ZERO_CHUNK ? (size_t)n : ZERO_CHUNK;
    rc = vfs->write(vfs->ctx, f, z, k, off);
    off += k;
    n -= k;
    if (!rc && sync_each && (off % AHEAD_SYNC == 0 || !n))
      rc = vfs->sync(vfs->ctx, f);
  }
  free(z);
  return rc;
}

/* ---- the mapped write path (vfs.h, version 2) -------------------------- */

static int vfs_maps(const kj_vfs *v) {
  return v->version >= 2 && v->map && v->map_reserve && v->map_wrote &&
         v->unmap;
}

/* Map the live segment for appending, when the VFS can and the whole
 * segment is in the file; otherwise (or when map() declines) frames go
 * through write(), which is always correct.
 *
 * Not under KJ_SYNC_FULL: there every commit's fdatasync writes back and
 * write-protects the page the next commit stores into, whose fault then
 * updates the file's times, and on ext4 that made each fdatasync write
 * the inode too (a 512-byte commit took 330-430 us mapped against 165-200
 * us written, doc/ARCHITECTURE.md "Mapped writes"). Under NORMAL and OFF
 * that happens once per sync interval, and the commit makes no system
 * call. */
static void map_segment(kj_journal *j) {
  const kj_vfs *v = j->cfg.vfs;
  uint64_t size;
  void *p;
  j->map = NULL;
  if (!vfs_maps(v) || j->cfg.read_only || j->cfg.sync == KJ_SYNC_FULL ||
      v->size(v->ctx, j->seg, &size) || size < j->seg_size ||
      v->map(v->ctx, j->seg, j->seg_size, &p))
    return;
  j->map = p;
  j->map_len = j->seg_size;
  j->res_hi = 0;
  j->res_syncs = UINT64_MAX;
}

static void unmap_segment(kj_journal *j) {
  if (j->map)
    j->cfg.vfs->unmap(j->cfg.vfs->ctx, j->seg, j->map, j->map_len);
  j->map = NULL;
}

/* Before storing [off, off+n) into the mapping: prefault what no
 * map_reserve() covered since the last sync of the segment (syncs: the
 * count read with durable_seq). In steps of RESERVE_STEP, so a run of
 * small frames makes one system call per 64 KiB, not one per page (7% of
 * a NORMAL commit loop). A prefaulted page counts as written: the next
 * sync writes it, zeros and all, so a sync writes at most one step more
 * than the frames hold (under NORMAL, 64 KiB in sync_interval_bytes). */
#define RESERVE_STEP 65536u
static int map_reserve(kj_journal *j, uint64_t off, uint64_t n,
                       uint64_t syncs) {
  uint64_t lo = off;
  if (syncs == j->res_syncs && j->res_hi > lo)
    lo = j->res_hi;
  uint64_t hi = (off + n + RESERVE_STEP - 1) & ~(uint64_t)(RESERVE_STEP - 1);
  if (hi > j->map_len)
    hi = j->map_len;
  if (lo >= off + n)
    return KJ_OK;
  int rc =
      j->cfg.vfs->map_reserve(j->cfg.vfs->ctx, j->seg, j->map, lo, hi - lo);
  if (rc)
    return rc;
  j->res_hi = hi;
  j->res_syncs = syncs;
  return KJ_OK;
}

/* ---- segments --------------------------------------------------------- */

/* Segments grow (FORMAT.md 4): a store's first is FIRST_SEGMENT bytes,
 * each next one four times the one before, up to segment_bytes; so does
 * the first after a checkpoint's roll-over. Creating a segment writes and
 * syncs all of it, so a new store costs a 64 KiB write, not 8 MiB
 * (56 ms), opening a small store reads 64 KiB, and the commit that starts
 * a checkpoint creates 64 KiB; a busy store reaches full-size segments
 * after four roll-overs. */
#define FIRST_SEGMENT (64u * 1024u)

/* The size of the segment after one of prev bytes (0: a store's first). */
static uint64_t next_segment_size(const kj_journal_cfg *cfg, uint64_t prev) {
  uint64_t size =
      prev ? (prev > UINT64_MAX / 4 ? UINT64_MAX : prev * 4) : FIRST_SEGMENT;
  if (size < FIRST_SEGMENT)
    size = FIRST_SEGMENT;
  return size < cfg->segment_bytes ? size : cfg->segment_bytes;
}

/* A segment's first step: NAME.tmp of size zeros, open for writing in d
 * (kj_durable_begin), synced too with sync_now (unless KJ_SYNC_OFF), so
 * that finish_segment()'s sync has only the header left to write back.
 * cancel as write_zeros(). On failure nothing is left. */
static int prepare_segment(const kj_journal_cfg *cfg, uint64_t segno,
                           uint64_t size, int sync_now, atomic_int *cancel,
                           kj_durable *d, kj_errbuf *e) {
  const kj_vfs *vfs = cfg->vfs;
  unsigned flags = cfg->sync != KJ_SYNC_OFF ? KJ_DURABLE_SYNC : 0;
  char name[SEG_NAME_BYTES];
  seg_name(segno, name);
  int rc = kj_durable_begin(d, vfs, cfg->dir, name, flags, e);
  if (rc)
    return rc;
  errno = 0;
  rc = write_zeros(vfs, d->f, 0, size, cancel, sync_now && flags);
  if (rc) {
    if (rc != KJ_EBUSY)
      kj_err(e, rc, "preallocate %s (%" PRIu64 " bytes): %s", d->tmp, size,
             kj_err_cause());
    kj_durable_abort(d);
  }
  return rc;
}

/* A segment's last step: its header (number segno, first frame first_seq)
 * over the prepared zeros, then kj_durable_commit (sync, rename, sync of
 * the directory); the segment is left open for writing in *out. *renamed
 * as kj_durable's. */
static int finish_segment(const kj_journal_cfg *cfg, const uint8_t *store_id,
                          uint64_t segno, uint64_t first_seq, kj_durable *d,
                          kj_vfs_file **out, int *renamed, kj_errbuf *e) {
  const kj_vfs *vfs = cfg->vfs;
  *renamed = 0;
  uint8_t h[KJ_SEGMENT_HEADER] = {0};
  memcpy(h, SEG_MAGIC, 8);
  kj_put32(h + 8, FORMAT_VERSION);
  memcpy(h + 16, store_id, KJ_STORE_ID_BYTES);
  kj_put64(h + 32, segno);
  kj_put64(h + 40, first_seq);
  kj_put64(h + 56, XXH3_64bits(h, 56));
  errno = 0;
  int rc = kj_durable_write(d, h, sizeof h, 0, NULL);
  if (rc) {
    kj_err(e, rc, "write %s: %s", d->tmp, kj_err_cause());
    kj_durable_abort(d);
    return rc;
  }
  rc = kj_durable_commit(d, e);
  *renamed = d->renamed;
  if (rc)
    return rc;
  errno = 0;
  rc = vfs->open(vfs->ctx, d->fin, KJ_VFS_WRITE, out);
  if (rc)
    return kj_err(e, rc, "open %s: %s", d->fin, kj_err_cause());
  return KJ_OK;
}

/* Create segment segno durably (kj_durable: tmp, zeros and header, sync,
 * rename, sync dir; no syncs under KJ_SYNC_OFF) and leave it open for
 * writing in *out. *renamed as kj_durable's. */
static int create_segment(const kj_journal_cfg *cfg, const uint8_t *store_id,
                          uint64_t segno, uint64_t first_seq, uint64_t size,
                          kj_vfs_file **out, int *renamed, kj_errbuf *e) {
  *renamed = 0;
  kj_durable d;
  int rc = prepare_segment(cfg, segno, size, 0, NULL, &d, e);
  if (rc)
    return rc;
  return finish_segment(cfg, store_id, segno, first_seq, &d, out, renamed, e);
}

/* ---- segments made ahead ---------------------------------------------- */

/* A roll-over needs the next segment: up to segment_bytes of zeros,
 * written and synced (8 MiB took about 12 ms on the development machine),
 * in the commit that rolls, under the writer lock. So once segments are
 * large (AHEAD_MIN, or full size), the next one is prepared ahead: when
 * the live segment is half full, a thread of its own writes and syncs
 * NAME.tmp (FORMAT.md 1: a .tmp is never trusted; close removes it, and so
 * does the next read-write open after a crash), a chunk at a time, while
 * commits go on. The roll-over then only writes the header, syncs,
 * renames and syncs the directory. Half full: early enough that the
 * segment is made long before it is needed unless commits outrun the disk
 * (the roll-over then waits for the rest), late enough that a handle
 * that commits a little and closes never makes one. cfg.ahead_inline
 * prepares it in the committing thread instead, at the same point
 * (deterministic, for the crash sweep). A failure to prepare one costs
 * nothing but the time: the roll-over creates the segment itself, as it
 * always did, and reports what fails then. A frame too large for the
 * segment made has one created for it, and the made one is removed.
 * Disk: one more segment, while the store is open. */
#define AHEAD_MIN (1024u * 1024u)

static void *ahead_main(void *arg) {
  kj_journal *j = arg;
  j->ah_rc = prepare_segment(&j->cfg, j->ah_segno, j->ah_size, 1, &j->ah_cancel,
                             &j->ah_d, NULL);
  return NULL;
}

/* Wait for the maker thread, if one runs; ah_ready then says whether it
 * made its segment. */
static void ahead_join(kj_journal *j) {
  if (!j->ah_running)
    return;
  pthread_join(j->ah_thread, NULL);
  j->ah_running = 0;
  j->ah_ready = j->ah_rc == KJ_OK;
}

/* Stop the maker and remove what it made. */
static void ahead_drop(kj_journal *j) {
  atomic_store(&j->ah_cancel, 1);
  ahead_join(j);
  if (j->ah_ready)
    kj_durable_abort(&j->ah_d);
  j->ah_ready = 0;
}

/* Start making segment segno + 1, when segments are large enough for it
 * to matter and none is made or being made. */
static void ahead_start(kj_journal *j) {
  uint64_t size = next_segment_size(&j->cfg, j->seg_size);
  if (j->ah_running || j->ah_ready ||
      (size < AHEAD_MIN && size < j->cfg.segment_bytes))
    return;
  j->ah_segno = j->segno + 1;
  j->ah_size = size;
  atomic_store(&j->ah_cancel, 0);
  if (j->cfg.ahead_inline) {
    j->ah_ready = prepare_segment(&j->cfg, j->ah_segno, j->ah_size, 1, NULL,
                                  &j->ah_d, NULL) == KJ_OK;
    return;
  }
  j->ah_running = pthread_create(&j->ah_thread, NULL, ahead_main, j) == 0;
}

/* The segment numbers of a directory, ascending. */
typedef struct seg_list {
  uint64_t *v;
  size_t n;
} seg_list;

/* Files being created (FORMAT.md section 1): never trusted. */
static int is_tmp_name(const char *name) {
  size_t n = strlen(name);
  return n > 4 && !strcmp(name + n - 4, ".tmp") &&
         (!strncmp(name, "journal-", 8) || !strncmp(name, "snapshot-", 9) ||
          !strncmp(name, "run-", 4) || !strncmp(name, "keyjournal.", 11));
}

static int remove_tmp_cb(void *arg, const char *name) {
  const kj_journal_cfg *cfg = arg;
  if (is_tmp_name(name)) {
    char p[KJ_PATH_MAX];
    kj_path(p, cfg->dir, name);
    cfg->vfs->unlink(cfg->vfs->ctx, p);
  }
  return 0;
}

/* List the segments; remove_tmp: also remove leftover temporary files. */
static int list_segments(const kj_journal_cfg *cfg, int remove_tmp, seg_list *l,
                         kj_errbuf *e) {
  return kj_list_numbered(cfg->vfs, cfg->dir, parse_seg_name,
                          remove_tmp ? remove_tmp_cb : NULL, (void *)cfg, &l->v,
                          &l->n, e);
}

int kj_journal_create(const kj_journal_cfg *cfg, kj_errbuf *e) {
  seg_list l;
  int rc = list_segments(cfg, 1, &l, e);
  if (rc)
    return rc;
  /* Only an empty segment 1 (a creation that crashed) may be replaced. */
  file_buf fb = {NULL, 0};
  for (size_t i = 0; i < l.n && !rc; i++) {
    char p[KJ_PATH_MAX];
    seg_path(cfg->dir, l.v[i], p);
    uint64_t size;
    if (l.v[i] != 1) {
      rc = kj_err(e, KJ_ECORRUPT, "%s: journal segment without a store header",
                  p);
      break;
    }
    if ((rc = read_file(cfg->vfs, p, &fb, &size, e)))
      break;
    if (size > KJ_SEGMENT_HEADER &&
        !all_zero(fb.p + KJ_SEGMENT_HEADER, size - KJ_SEGMENT_HEADER))
      rc = kj_err(e, KJ_ECORRUPT,
                  "%s: journal data without a store header (refusing to "
                  "overwrite it)",
                  p);
  }
  free(fb.p);
  free(l.v);
  if (rc)
    return rc;
  kj_vfs_file *f = NULL;
  int renamed;
  uint64_t segno = cfg->base_segno ? cfg->base_segno : 1;
  rc = create_segment(cfg, cfg->store_id, segno, cfg->base_seq + 1,
                      next_segment_size(cfg, 0), &f, &renamed, e);
  if (f)
    cfg->vfs->close(cfg->vfs->ctx, f);
  return rc;
}

/* ---- recovery --------------------------------------------------------- */

/* Highest durable_seq claimed by any sound frame starting in b[from,size). */
static uint64_t durable_evidence(const uint8_t *b, uint64_t size,
                                 uint64_t from) {
  uint64_t ev = 0;
  while (from + KJ_FRAME_HEADER <= size) {
    const uint8_t *p = memmem(b + from, size - from, FRAME_MAGIC, 4);
    if (!p)
      break;
    uint64_t at = (uint64_t)(p - b);
    if (frame_sound(b, size, at)) {
      uint64_t d = kj_get64(p + 16);
      if (d > ev)
        ev = d;
    }
    from = at + 1;
  }
  return ev;
}

static uint64_t nonzero_extent(const uint8_t *b, uint64_t size, uint64_t from) {
  uint64_t end = size;
  while (end > from && b[end - 1] == 0)
    end--;
  return end - from;
}

typedef struct replay {
  kj_journal *j;
  kj_replay_fn fn;
  void *arg;
  uint8_t *pt; /* plaintext buffer */
  size_t ptcap;
} replay;

/* Replay the frames of one segment from offset 64 (rules 5.4-5.6).
 * *end receives the offset where its frames end. */
static int replay_segment(replay *r, const char *path, uint64_t segno,
                          const uint8_t *b, uint64_t size, uint64_t *end,
                          kj_errbuf *e) {
  kj_journal *j = r->j;
  if (size < KJ_SEGMENT_HEADER || memcmp(b, SEG_MAGIC, 8) ||
      XXH3_64bits(b, 56) != kj_get64(b + 56))
    return kj_err(e, KJ_ECORRUPT, "%s at offset 0: segment header damaged",
                  path);
  if (kj_get32(b + 8) != FORMAT_VERSION)
    return kj_err(e, KJ_EFORMAT, "%s: segment format version %" PRIu32, path,
                  kj_get32(b + 8));
  if (memcmp(b + 16, j->store_id, KJ_STORE_ID_BYTES) ||
      kj_get64(b + 32) != segno)
    return kj_err(e, KJ_ECORRUPT,
                  "%s at offset 0: segment belongs to another store or "
                  "place",
                  path);
  if (kj_get64(b + 40) != j->next_seq)
    return kj_err(e, KJ_ECORRUPT,
                  "%s at offset 40: segment starts at seq %" PRIu64
                  ", expected %" PRIu64 " (frames missing)",
                  path, kj_get64(b + 40), j->next_seq);

  uint64_t off = KJ_SEGMENT_HEADER;
  for (;;) {
    if (size - off < KJ_FRAME_HEADER || all_zero(b + off, KJ_FRAME_HEADER))
      break;
    uint32_t len = frame_sound(b, size, off);
    const uint8_t *h = b + off;
    if (!len || kj_get64(h + 8) != j->next_seq || j->next_seq > j->replay_limit)
      break;
    uint8_t ad[AD_BYTES];
    frame_ad(ad, j->store_id, segno, h, j->prev_tag);
    size_t ptlen = len - KJ_TAG_BYTES;
    if (ptlen > r->ptcap) {
      uint8_t *p = kj_sec_realloc(r->pt, ptlen); /* plaintext rows */
      if (!p)
        return kj_err(e, KJ_ENOMEM, "replay %s: out of memory", path);
      r->pt = p;
      r->ptcap = ptlen;
    }
    if (kj_unseal(j->cfg.key, r->pt, h + KJ_FRAME_HEADER, len, ad, sizeof ad,
                  h + 32))
      return kj_err(e, KJ_ECORRUPT,
                    "%s at offset %" PRIu64 ": frame seq %" PRIu64
                    " fails authentication (tampered, or not from this "
                    "place in this store)",
                    path, off, j->next_seq);
    unsigned type = h[24];
    if (type == FRAME_COMMIT) {
      int rc = r->fn(r->arg, r->pt, ptlen, e);
      if (rc) {
        char inner[sizeof e->msg];
        memcpy(inner, e->msg, sizeof inner);
        return kj_err(e, rc,
                      "%s at offset %" PRIu64 ": frame seq %" PRIu64 ": %s",
                      path, off, j->next_seq, inner);
      }
    } else if (type == FRAME_MARKER) {
      if (ptlen != 1 || r->pt[0] != KJ_BODY_VERSION)
        return kj_err(e, KJ_ECORRUPT,
                      "%s at offset %" PRIu64 ": malformed sync marker", path,
                      off);
    } else {
      return kj_err(e, KJ_EFORMAT,
                    "%s at offset %" PRIu64 ": unknown frame type %u", path,
                    off, type);
    }
    memcpy(j->prev_tag, h + KJ_FRAME_HEADER + len - KJ_TAG_BYTES, KJ_TAG_BYTES);
    j->next_seq++;
    j->frames_replayed++;
    off += KJ_FRAME_HEADER + len;
  }
  *end = off;
  return KJ_OK;
}

/* Rule 5.6.3: zero the stray bytes of segment path from off, drop later
 * segments, make it durable. */
static int cut_tail(kj_journal *j, const char *path, uint64_t off, uint64_t n,
                    const seg_list *l, size_t later, kj_errbuf *e) {
  const kj_vfs *vfs = j->cfg.vfs;
  kj_vfs_file *f;
  errno = 0;
  int rc = vfs->open(vfs->ctx, path, KJ_VFS_WRITE, &f);
  if (rc)
    return kj_err(e, rc, "open %s to cut the tail: %s", path, kj_err_cause());
  errno = 0;
  rc = write_zeros(vfs, f, off, n, NULL, 0);
  if (!rc)
    rc = vfs->sync(vfs->ctx, f);
  vfs->close(vfs->ctx, f);
  if (rc)
    return kj_err(e, rc, "cut tail of %s at offset %" PRIu64 ": %s", path, off,
                  kj_err_cause());
  for (size_t i = later; i < l->n; i++) {
    char p[KJ_PATH_MAX];
    seg_path(j->cfg.dir, l->v[i], p);
    errno = 0;
    if ((rc = vfs->unlink(vfs->ctx, p)))
      return kj_err(e, rc, "remove %s: %s", p, kj_err_cause());
  }
  if (later < l->n && (rc = vfs->sync_dir(vfs->ctx, j->cfg.dir)))
    return kj_err(e, rc, "sync directory %s: %s", j->cfg.dir, kj_err_cause());
  return KJ_OK;
}

/* Rule 5.8: the frames end at off of path, before the seq that the store
 * header records as durable. */
static int ends_before_record(const kj_journal *j, const char *path,
                              uint64_t off, kj_errbuf *e) {
  return kj_err(e, KJ_ECORRUPT,
                "%s at offset %" PRIu64 ": the journal ends at seq %" PRIu64
                ", but the store header records seq %" PRIu64
                " as synced (frames %" PRIu64 "..%" PRIu64 " missing)",
                path, off, j->next_seq - 1, j->cfg.rec_seq, j->next_seq,
                j->cfg.rec_seq);
}

static int recover(kj_journal *j, replay *r, kj_errbuf *e) {
  const kj_journal_cfg *cfg = &j->cfg;
  seg_list l;
  int rc = list_segments(cfg, 0, &l, e);
  if (rc)
    return rc;
  /* Rule 5.3: segments base..n without a gap; older ones are leftovers of
   * a checkpoint that the snapshot already covers. */
  size_t first = 0;
  while (first < l.n && l.v[first] < cfg->base_segno) {
    if (!cfg->read_only) {
      char p[KJ_PATH_MAX];
      seg_path(cfg->dir, l.v[first], p);
      cfg->vfs->unlink(cfg->vfs->ctx, p);
    }
    first++;
  }
  for (size_t i = first; i <= l.n; i++) {
    if (i == l.n ? i == first : l.v[i] != cfg->base_segno + (i - first)) {
      char p[KJ_PATH_MAX];
      seg_path(cfg->dir, cfg->base_segno + (i - first), p);
      free(l.v);
      return kj_err(e, KJ_ECORRUPT, "%s: journal segment missing", p);
    }
  }
  /* Rule 5.8: the store header records segments up to rec_segno. Those
   * below the snapshot's base may be gone (the snapshot covers them). */
  if (cfg->rec_segno >= cfg->base_segno && l.v[l.n - 1] < cfg->rec_segno) {
    char p[KJ_PATH_MAX];
    seg_path(cfg->dir, l.v[l.n - 1] + 1, p);
    free(l.v);
    return kj_err(e, KJ_ECORRUPT,
                  "%s: journal segment missing (the store header records "
                  "segments up to %016" PRIx64 " and frames up to seq %" PRIu64
                  ")",
                  p, cfg->rec_segno, cfg->rec_seq);
  }
  j->next_seq = cfg->base_seq + 1;
  j->replay_limit = UINT64_MAX;
  if (cfg->durable_only) {
    /* Rule 5.9: a first pass finds the newest frame a sync covered. The
     * writer may append meanwhile; what it appends is above the limit. */
    file_buf fb = {NULL, 0};
    uint64_t limit =
        cfg->rec_seq > cfg->base_seq ? cfg->rec_seq : cfg->base_seq;
    for (size_t i = first; i < l.n && !rc; i++) {
      char path[KJ_PATH_MAX];
      seg_path(cfg->dir, l.v[i], path);
      uint64_t size, d;
      if (!(rc = read_file(cfg->vfs, path, &fb, &size, e)) &&
          (d = durable_evidence(fb.p, size, KJ_SEGMENT_HEADER)) > limit)
        limit = d;
    }
    free(fb.p);
    if (rc) {
      free(l.v);
      return rc;
    }
    j->replay_limit = limit;
  }
  if (cfg->base_tag)
    memcpy(j->prev_tag, cfg->base_tag, KJ_TAG_BYTES);
  else
    memset(j->prev_tag, 0, sizeof j->prev_tag);
  uint64_t end = 0, last = 0, last_size = 0;
  file_buf fb = {NULL, 0}; /* one buffer for every segment read below */
  for (size_t i = first; i < l.n && !rc; i++) {
    char path[KJ_PATH_MAX];
    seg_path(cfg->dir, l.v[i], path);
    uint64_t size;
    if ((rc = read_file(cfg->vfs, path, &fb, &size, e)))
      break;
    const uint8_t *b = fb.p;
    if ((rc = replay_segment(r, path, l.v[i], b, size, &end, e)))
      break;
    last = l.v[i];
    last_size = size;
    uint64_t stray = nonzero_extent(b, size, end);
    if (stray && j->next_seq > j->replay_limit) {
      /* Rule 5.9: the frames above the limit are not known durable yet. */
      j->tail_cut = stray;
      break;
    }
    if (!stray) { /* rule 5.6.1: clean end */
      if (i + 1 < l.n)
        tally_add(j, l.v[i], end - KJ_SEGMENT_HEADER, size);
      continue;
    }
    /* Rule 5.8 before 5.6.3: the header says the frame was synced, or
     * that a later segment, which the cut would remove, exists. */
    if (cfg->rec_seq >= j->next_seq) {
      rc = ends_before_record(j, path, end, e);
      break;
    }
    if (l.v[i] < cfg->rec_segno) {
      rc = kj_err(e, KJ_ECORRUPT,
                  "%s at offset %" PRIu64 ": stray bytes after frame seq "
                  "%" PRIu64 ", but the store header records segments up "
                  "to %016" PRIx64 " (a segment before the last roll-over "
                  "is damaged)",
                  path, end, j->next_seq - 1, cfg->rec_segno);
      break;
    }
    /* Rule 5.6.2: is there evidence that the missing frame was synced? */
    uint64_t ev = durable_evidence(b, size, end);
    uint64_t later_bytes = 0;
    for (size_t k = i + 1; k < l.n && !rc; k++) {
      char lp[KJ_PATH_MAX];
      seg_path(cfg->dir, l.v[k], lp);
      uint64_t lsize;
      if ((rc = read_file(cfg->vfs, lp, &fb, &lsize, e)))
        break;
      const uint8_t *lb = fb.p;
      uint64_t d = durable_evidence(lb, lsize, KJ_SEGMENT_HEADER);
      if (d > ev)
        ev = d;
      if (lsize > KJ_SEGMENT_HEADER)
        later_bytes += nonzero_extent(lb, lsize, KJ_SEGMENT_HEADER);
    }
    if (rc)
      break;
    if (ev >= j->next_seq) {
      rc = kj_err(e, KJ_ECORRUPT,
                  "%s at offset %" PRIu64 ": frame seq %" PRIu64
                  " is missing or damaged, but a later frame records seq "
                  "%" PRIu64 " as synced",
                  path, end, j->next_seq, ev);
      break;
    }
    /* Rule 5.6.3: a torn or unsynced tail. */
    j->tail_cut = stray + later_bytes;
    if (!cfg->read_only)
      rc = cut_tail(j, path, end, stray, &l, i + 1, e);
    break;
  }
  free(fb.p);
  free(l.v);
  if (!rc && cfg->rec_seq >= j->next_seq) { /* rule 5.8: a clean end */
    char path[KJ_PATH_MAX];
    seg_path(cfg->dir, last, path);
    rc = ends_before_record(j, path, end, e);
  }
  if (rc)
    return rc;
  j->segno = last;
  j->seg_size = last_size;
  j->off = end;
  j->segments = last - cfg->base_segno + 1;
  if (cfg->read_only)
    return KJ_OK;
  char path[KJ_PATH_MAX];
  seg_path(cfg->dir, last, path);
  errno = 0;
  rc = cfg->vfs->open(cfg->vfs->ctx, path, KJ_VFS_WRITE, &j->seg);
  if (rc)
    return kj_err(e, rc, "open %s: %s", path, kj_err_cause());
  /* Rule 5.7: what we replayed may be in the page cache only. */
  if (cfg->sync != KJ_SYNC_OFF) {
    errno = 0;
    if ((rc = cfg->vfs->sync(cfg->vfs->ctx, j->seg)))
      return kj_err(e, rc, "sync %s: %s", path, kj_err_cause());
    j->durable_seq = j->next_seq - 1;
  }
  /* Rule 5.3: the leftover .tmp files go once the journal is known good
   * (a refused open changes none). Failing to list them again leaves
   * them: nothing reads them, and a file made under such a name first
   * removes what is there. */
  seg_list again;
  if (!list_segments(cfg, 1, &again, NULL))
    free(again.v);
  j->ah_want = 1;
  map_segment(j);
  return KJ_OK;
}

int kj_journal_open(const kj_journal_cfg *cfg, kj_replay_fn fn, void *arg,
                    kj_journal **out, kj_errbuf *e) {
  *out = NULL;
  kj_journal *j = calloc(1, sizeof *j);
  if (!j)
    return kj_err(e, KJ_ENOMEM, "out of memory");
  j->cfg = *cfg;
  kj_random(j->nonce_prefix, sizeof j->nonce_prefix);
  if (!cfg->read_only &&
      !(j->sealer = kj_sealer_new(cfg->key, j->nonce_prefix))) {
    free(j);
    return kj_err(e, KJ_ENOMEM, "out of memory");
  }
  j->cfg.dir = j->dir = strdup(cfg->dir);
  if (!j->dir) {
    kj_sealer_free(j->sealer);
    free(j);
    return kj_err(e, KJ_ENOMEM, "out of memory");
  }
  memcpy(j->store_id, cfg->store_id, KJ_STORE_ID_BYTES);
  j->cfg.store_id = j->store_id;
  if (!j->cfg.base_segno)
    j->cfg.base_segno = 1;
  pthread_mutex_init(&j->sync_mu, NULL);
  pthread_cond_init(&j->sync_cv, NULL);
  replay r = {j, fn, arg, NULL, 0};
  int rc = recover(j, &r, e);
  j->cfg.base_tag = NULL; /* the caller's buffer: not kept */
  kj_sec_free(r.pt);
  if (rc) {
    if (j->seg)
      cfg->vfs->close(cfg->vfs->ctx, j->seg);
    pthread_cond_destroy(&j->sync_cv);
    pthread_mutex_destroy(&j->sync_mu);
    kj_sealer_free(j->sealer);
    free(j->dir);
    free(j->tally);
    free(j);
    return rc;
  }
  /* Nothing else runs yet: no lock needed. Under KJ_SYNC_OFF rule 5.7 did
   * not sync, so durable_seq claims nothing replayed, and clean_seq keeps
   * a roll-over from syncing what this handle did not write. */
  j->written_seq = j->appended_seq = j->next_seq - 1;
  if (cfg->sync == KJ_SYNC_OFF)
    j->clean_seq = j->next_seq - 1;
  *out = j;
  return KJ_OK;
}

/* ---- writing ---------------------------------------------------------- */

static int poison(kj_journal *j, int rc) {
  atomic_store(&j->poisoned, 1);
  return rc;
}

/* Make every frame up to target durable (FORMAT.md 4.4): the group commit
 * protocol. Safe from any number of threads at once, with or without the
 * writer lock; target must not exceed the newest written frame.
 *
 * A caller whose target is not durable yet waits while a sync is in
 * progress; else it becomes the leader: it notes the newest written frame
 * and the live segment, syncs it with sync_mu dropped, and only after the
 * sync returned raises durable_seq to what it covered (every write that
 * had returned before it began) and wakes the waiters. A failed sync
 * poisons the journal; every caller not yet covered then fails with that
 * sync's status (KJ_EIO, KJ_ENOSPC), or KJ_EPOISONED when another failure
 * poisoned it. No caller fails while a sync is still in progress, and no
 * sync starts once the journal is poisoned, so after the first failure is
 * returned durable_seq stays where it is.
 *
 * With defer (a caller that holds no writer lock), a would-be leader
 * first waits on sync_cv in short steps, for at most KJ_GROUP_DEFER_USEC,
 * while cfg.joining reports writers queued for their frames, or fewer
 * frames are pending than the last grouped sync covered (its committers,
 * woken by that sync, are on their way back): the last of them leads one
 * sync for all, where the first would otherwise sync its frame alone and
 * leave the rest to the next. A lone committer defers at most once (its
 * sync then covers one frame, and so sets last_group to 1). A sync that
 * starts or ends meanwhile wakes it; nothing else changes. */
static int group_sync(kj_journal *j, uint64_t target, int defer, kj_errbuf *e) {
  int rc = KJ_OK;
  struct timespec until = {0, 0};
  defer = defer && j->cfg.joining;
  pthread_mutex_lock(&j->sync_mu);
  while (target > j->durable_seq && target > j->clean_seq) {
    if (j->syncing) {
      pthread_cond_wait(&j->sync_cv, &j->sync_mu);
      continue;
    }
    if (atomic_load(&j->poisoned)) {
      rc = j->sync_rc ? kj_err(e, j->sync_rc, "%s", j->sync_msg)
                      : kj_err(e, KJ_EPOISONED,
                               "journal poisoned by an earlier failure");
      break;
    }
    if (defer && (j->cfg.joining(j->cfg.joining_arg) > 0 ||
                  j->appended_seq - j->durable_seq < j->last_group)) {
      struct timespec now, step;
      clock_gettime(CLOCK_REALTIME, &now);
      if (!until.tv_sec) {
        until = now;
        until.tv_nsec += KJ_GROUP_DEFER_USEC * 1000L;
        if (until.tv_nsec >= 1000000000L) {
          until.tv_sec++;
          until.tv_nsec -= 1000000000L;
        }
      }
      if (now.tv_sec < until.tv_sec ||
          (now.tv_sec == until.tv_sec && now.tv_nsec < until.tv_nsec)) {
        step = now;
        step.tv_nsec += 10000L; /* re-check every 10 us */
        if (step.tv_nsec >= 1000000000L) {
          step.tv_sec++;
          step.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&j->sync_cv, &j->sync_mu, &step);
        continue;
      }
      defer = 0; /* waited long enough: lead */
    }
    uint64_t upto = j->written_seq, segno = j->segno, from = j->durable_seq;
    int grouped = defer || until.tv_sec;
    kj_vfs_file *f = j->seg;
    j->syncing = 1;
    /* The held frames come first: written, then covered by this sync. */
    size_t flen = j->pend_len;
    uint64_t foff = j->pend_off;
    uint8_t *fp = j->pend;
    if (flen) {
      size_t cap = j->pend_cap;
      j->pend = j->flush;
      j->pend_cap = j->flush_cap;
      j->flush = fp;
      j->flush_cap = cap;
      j->pend_len = 0;
      upto = j->pend_seq;
    }
    pthread_mutex_unlock(&j->sync_mu);
    char msg[sizeof j->sync_msg];
    int src = KJ_OK;
    errno = 0;
    if (flen && (src = j->cfg.vfs->write(j->cfg.vfs->ctx, f, fp, flen, foff)))
      snprintf(msg, sizeof msg,
               "write journal segment %" PRIu64 " at offset %" PRIu64 ": %s",
               segno, foff, kj_err_cause());
    int synced = !src;
    if (synced && (src = j->cfg.vfs->sync(j->cfg.vfs->ctx, f)))
      snprintf(msg, sizeof msg, "sync journal segment %" PRIu64 ": %s", segno,
               kj_err_cause());
    pthread_mutex_lock(&j->sync_mu);
    j->syncing = 0;
    j->syncs += (uint64_t)synced;
    if (flen && synced)
      j->written_seq = upto; /* in the file, whatever the sync did */
    if (src) {
      if (!j->sync_rc) {
        j->sync_rc = src;
        memcpy(j->sync_msg, msg, sizeof msg);
      }
      atomic_store(&j->poisoned, 1);
    } else if (upto > j->durable_seq) {
      j->durable_seq = upto;
      if (grouped)
        j->last_group = upto - from;
    }
    pthread_cond_broadcast(&j->sync_cv);
  }
  pthread_mutex_unlock(&j->sync_mu);
  return rc;
}

/* Writer side: make every frame written so far durable. */
static int sync_segment(kj_journal *j, kj_errbuf *e) {
  int rc = group_sync(j, j->next_seq - 1, 0, e);
  if (!rc)
    j->unsynced_bytes = 0;
  return rc;
}

/* Hand the record (the live segment, durable_seq) to the store, when it
 * asked for it and the mode promises durability. Called only right after
 * a sync (of the old segment at a roll-over, of the marker at close). */
static int tell_record(kj_journal *j, kj_errbuf *e) {
  if (!j->cfg.record || j->cfg.sync == KJ_SYNC_OFF)
    return KJ_OK;
  pthread_mutex_lock(&j->sync_mu);
  uint64_t durable = j->durable_seq;
  pthread_mutex_unlock(&j->sync_mu);
  return j->cfg.record(j->cfg.record_arg, j->segno, durable, e);
}

/* Move to a new segment big enough for a frame of need bytes: the size
 * after the live one's, or with fresh (a checkpoint's roll-over) a first
 * segment's, unless one was made ahead. */
static int roll_over(kj_journal *j, uint64_t need, int fresh, kj_errbuf *e) {
  /* Unmapped first (the mapping is the writer's alone, and sync_mu covers
   * no I/O), so that the sync finds no mapped page to write-protect. */
  unmap_segment(j);
  /* Synced even under KJ_SYNC_OFF: a later kj_journal_sync() syncs only
   * the new segment, and its claims must cover this one too. This also
   * covers every committer still waiting on a frame of the old segment,
   * so none waits on a file that is about to be closed. */
  int rc = sync_segment(j, e);
  if (rc)
    return rc;
  uint64_t size = next_segment_size(&j->cfg, fresh ? 0 : j->seg_size);
  if (size < KJ_SEGMENT_HEADER + need)
    size = (KJ_SEGMENT_HEADER + need + 4095) & ~(uint64_t)4095;
  kj_vfs_file *f = NULL;
  int renamed;
  ahead_join(j);
  if (j->ah_ready &&
      (j->ah_segno != j->segno + 1 || j->ah_size < KJ_SEGMENT_HEADER + need))
    ahead_drop(j); /* made for another segment, or too small for need */
  if (j->ah_ready) {
    j->ah_ready = 0; /* finish_segment() consumes it, whatever it returns */
    size = j->ah_size;
    rc = finish_segment(&j->cfg, j->store_id, j->segno + 1, j->next_seq,
                        &j->ah_d, &f, &renamed, e);
    j->ah_used += !rc;
  } else {
    rc = create_segment(&j->cfg, j->store_id, j->segno + 1, j->next_seq, size,
                        &f, &renamed, e);
  }
  if (rc) {
    if (f)
      j->cfg.vfs->close(j->cfg.vfs->ctx, f);
    /* Failing to preallocate leaves the log as it was (ENOSPC is then a
     * clean failure); once the rename happened the directory is unknown. */
    if (renamed)
      return poison(j, rc);
    map_segment(j); /* the old segment goes on */
    return rc;
  }
  /* Every frame written is durable and we hold the writer lock, so no new
   * leader can start; wait out one that might still hold the old file. */
  pthread_mutex_lock(&j->sync_mu);
  while (j->syncing)
    pthread_cond_wait(&j->sync_cv, &j->sync_mu);
  kj_vfs_file *old = j->seg;
  j->seg = f;
  j->segno++;
  pthread_mutex_unlock(&j->sync_mu);
  j->cfg.vfs->close(j->cfg.vfs->ctx, old);
  tally_add(j, j->segno - 1, j->off - KJ_SEGMENT_HEADER, j->seg_size);
  j->segments++;
  j->seg_size = size;
  j->off = KJ_SEGMENT_HEADER;
  j->unsynced_bytes = 0;
  j->ah_want = 1;
  map_segment(j);
  /* The new segment is durable and so is every frame before it: now the
   * store header may say so (FORMAT.md 3). A failure leaves the older
   * record, which claims less: nothing to poison. */
  return tell_record(j, e);
}

static int write_frame(kj_journal *j, unsigned type, const uint8_t *body,
                       size_t len, kj_errbuf *e) {
  if (atomic_load(&j->poisoned))
    return kj_err(e, KJ_EPOISONED, "journal poisoned by an earlier failure");
  if (j->cfg.read_only)
    return kj_err(e, KJ_EREADONLY, "store is open read-only");
  if (len > KJ_MAX_FRAME_BODY - KJ_TAG_BYTES)
    return kj_err(e, KJ_EINVAL, "commit of %zu bytes is too large", len);
  uint64_t clen = len + KJ_TAG_BYTES;
  uint64_t need = KJ_FRAME_HEADER + clen;
  int rc;
  if (j->ah_want && j->off >= j->seg_size / 2) {
    j->ah_want = 0;
    ahead_start(j);
  }
  if (j->off + need > j->seg_size && (rc = roll_over(j, need, 0, e)))
    return rc;
  if (!j->map && need > j->fcap) {
    uint8_t *p = realloc(j->fbuf, need);
    if (!p)
      return kj_err(e, KJ_ENOMEM, "out of memory building a frame");
    j->fbuf = p;
    j->fcap = need;
  }
  /* The claim: only what a completed sync covered (FORMAT.md 4.4). */
  pthread_mutex_lock(&j->sync_mu);
  uint64_t durable = j->durable_seq, syncs = j->syncs;
  pthread_mutex_unlock(&j->sync_mu);
  /* Mapped: the frame is built in place, in the segment's pages. */
  uint8_t *h = j->map ? j->map + j->off : j->fbuf;
  errno = 0;
  if (j->map && (rc = map_reserve(j, j->off, need, syncs)))
    return poison(j, kj_err(e, rc,
                            "prepare journal segment %" PRIu64
                            " at offset %" PRIu64 " for writing: %s",
                            j->segno, j->off, kj_err_cause()));
  memset(h, 0, KJ_FRAME_HEADER);
  memcpy(h, FRAME_MAGIC, 4);
  kj_put32(h + 4, (uint32_t)clen);
  kj_put64(h + 8, j->next_seq);
  kj_put64(h + 16, durable);
  h[24] = (uint8_t)type;
  uint8_t ad[AD_BYTES];
  frame_ad(ad, j->store_id, j->segno, h, j->prev_tag);
  memcpy(h + 32, j->nonce_prefix, sizeof j->nonce_prefix);
  kj_put64(h + 48, j->nonce_ctr++);
  kj_sealer_seal(j->sealer, h + KJ_FRAME_HEADER, body, len, ad, sizeof ad,
                 kj_get64(h + 48));
  kj_put64(h + 56, frame_checksum(h, h + KJ_FRAME_HEADER, clen));
  if (!j->map) {
    /* While a sync runs, or behind frames held for the next one, the
     * frame is held (pend), in order; the next leader writes it. */
    pthread_mutex_lock(&j->sync_mu);
    if (j->syncing || j->pend_len) {
      if (j->pend_len + need > j->pend_cap) {
        size_t cap = j->pend_cap ? j->pend_cap : 65536;
        while (cap < j->pend_len + need)
          cap *= 2;
        uint8_t *p = realloc(j->pend, cap);
        if (!p) {
          pthread_mutex_unlock(&j->sync_mu);
          return kj_err(e, KJ_ENOMEM, "out of memory holding a frame");
        }
        j->pend = p;
        j->pend_cap = cap;
      }
      if (!j->pend_len)
        j->pend_off = j->off;
      memcpy(j->pend + j->pend_len, h, need);
      j->pend_len += need;
      j->pend_seq = j->appended_seq = j->next_seq++;
      pthread_mutex_unlock(&j->sync_mu);
      memcpy(j->prev_tag, h + need - KJ_TAG_BYTES, KJ_TAG_BYTES);
      j->off += need;
      j->unsynced_bytes += need;
      return KJ_OK;
    }
    pthread_mutex_unlock(&j->sync_mu);
  }
  errno = 0;
  rc = j->map ? j->cfg.vfs->map_wrote(j->cfg.vfs->ctx, j->seg, j->map, j->off,
                                      need)
              : j->cfg.vfs->write(j->cfg.vfs->ctx, j->seg, h, need, j->off);
  if (rc)
    return poison(j, kj_err(e, rc,
                            "write journal segment %" PRIu64
                            " at offset %" PRIu64 ": %s",
                            j->segno, j->off, kj_err_cause()));
  memcpy(j->prev_tag, h + need - KJ_TAG_BYTES, KJ_TAG_BYTES);
  j->off += need;
  j->unsynced_bytes += need;
  /* Published only now that the write returned: a leader that sees it
   * syncs a file that holds the frame. */
  pthread_mutex_lock(&j->sync_mu);
  j->written_seq = j->appended_seq = j->next_seq++;
  pthread_mutex_unlock(&j->sync_mu);
  return KJ_OK;
}

int kj_journal_append(kj_journal *j, const uint8_t *body, size_t len,
                      uint64_t *seq, kj_errbuf *e) {
  int rc = write_frame(j, FRAME_COMMIT, body, len, e);
  if (rc)
    return rc;
  j->since_marker = 1;
  *seq = j->next_seq - 1;
  /* KJ_SYNC_FULL: the caller waits with kj_journal_wait_durable(). */
  if (j->cfg.sync == KJ_SYNC_NORMAL &&
      j->unsynced_bytes >= j->cfg.sync_interval) {
    /* Unmapped around the sync: with the pages mapped, writeback would
     * write-protect them one at a time, each with a TLB flush on every
     * CPU the process ran on (9% of a NORMAL commit loop); munmap drops
     * them all with one flush. */
    int mapped = j->map != NULL;
    unmap_segment(j);
    int rc = sync_segment(j, e);
    if (!rc && mapped)
      map_segment(j);
    return rc;
  }
  return KJ_OK;
}

int kj_journal_wait_durable(kj_journal *j, uint64_t seq, kj_errbuf *e) {
  if (j->cfg.sync != KJ_SYNC_FULL)
    return KJ_OK;
  return group_sync(j, seq, 0, e);
}

int kj_journal_wait_grouped(kj_journal *j, uint64_t seq, kj_errbuf *e) {
  if (j->cfg.sync != KJ_SYNC_FULL)
    return KJ_OK;
  return group_sync(j, seq, 1, e);
}

int kj_journal_flush(kj_journal *j, kj_errbuf *e) {
  if (j->cfg.read_only || j->cfg.sync != KJ_SYNC_FULL)
    return KJ_OK;
  return sync_segment(j, e);
}

uint64_t kj_journal_durable_seq(kj_journal *j) {
  pthread_mutex_lock(&j->sync_mu);
  uint64_t d = j->durable_seq;
  pthread_mutex_unlock(&j->sync_mu);
  return d;
}

uint64_t kj_journal_syncs(kj_journal *j) {
  pthread_mutex_lock(&j->sync_mu);
  uint64_t n = j->syncs;
  pthread_mutex_unlock(&j->sync_mu);
  return n;
}

kj_sync kj_journal_mode(const kj_journal *j) { return j->cfg.sync; }

int kj_journal_sync(kj_journal *j, kj_errbuf *e) {
  if (j->cfg.read_only)
    return KJ_OK;
  if (atomic_load(&j->poisoned))
    return kj_err(e, KJ_EPOISONED, "journal poisoned by an earlier failure");
  if (!j->since_marker)
    return sync_segment(j, e);
  /* A marker's plaintext is a commit body's version byte alone (FORMAT.md
   * 4.3). */
  static const uint8_t marker[1] = {KJ_BODY_VERSION};
  int rc = sync_segment(j, e);
  if (!rc)
    rc = write_frame(j, FRAME_MARKER, marker, sizeof marker, e);
  if (!rc)
    rc = sync_segment(j, e);
  if (!rc)
    j->since_marker = 0;
  return rc;
}

int kj_journal_close(kj_journal *j, kj_errbuf *e) {
  if (!j)
    return KJ_OK;
  int rc = KJ_OK;
  /* No segment is made ahead any more (the marker below might roll). */
  j->ah_want = 0;
  ahead_drop(j);
  /* Unmapped before the last sync, which then finds no mapped page to
   * write-protect (the marker goes through write()). */
  unmap_segment(j);
  if (!j->cfg.read_only && !atomic_load(&j->poisoned) &&
      j->cfg.sync != KJ_SYNC_OFF) {
    rc = kj_journal_sync(j, e);
    /* The marker is synced: every frame is durable. */
    if (!rc)
      rc = tell_record(j, e);
  }
  if (j->seg)
    j->cfg.vfs->close(j->cfg.vfs->ctx, j->seg);
  pthread_cond_destroy(&j->sync_cv);
  pthread_mutex_destroy(&j->sync_mu);
  free(j->fbuf);
  free(j->pend); /* frames still held belong to commits that failed */
  free(j->flush);
  free(j->tally);
  kj_sealer_free(j->sealer);
  free(j->dir);
  free(j);
  return rc;
}

int kj_journal_poisoned(kj_journal *j) { return atomic_load(&j->poisoned); }

void kj_journal_tail(const kj_journal *j, uint64_t *seq,
                     uint8_t tag[KJ_TAG_BYTES]) {
  *seq = j->next_seq - 1;
  memcpy(tag, j->prev_tag, KJ_TAG_BYTES);
}

void kj_journal_roll_expected(kj_journal *j, uint64_t in_bytes) {
  if (j->ah_want && in_bytes <= j->seg_size / 2) {
    j->ah_want = 0;
    ahead_start(j);
  }
}

int kj_journal_roll(kj_journal *j, int fresh, uint64_t *base, kj_errbuf *e) {
  if (atomic_load(&j->poisoned))
    return kj_err(e, KJ_EPOISONED, "journal poisoned by an earlier failure");
  if (j->cfg.read_only)
    return kj_err(e, KJ_EREADONLY, "store is open read-only");
  int rc = roll_over(j, 0, fresh, e);
  if (!rc)
    *base = j->segno;
  return rc;
}

int kj_journal_remove_before(kj_journal *j, uint64_t base, kj_errbuf *e) {
  seg_list l;
  int rc = list_segments(&j->cfg, 0, &l, e);
  if (rc)
    return rc;
  for (size_t i = 0; i < l.n && !rc; i++) {
    if (l.v[i] >= base)
      continue;
    char p[KJ_PATH_MAX];
    seg_path(j->cfg.dir, l.v[i], p);
    errno = 0;
    if ((rc = j->cfg.vfs->unlink(j->cfg.vfs->ctx, p)))
      kj_err(e, rc, "remove %s: %s", p, kj_err_cause());
  }
  free(l.v);
  if (rc)
    return rc; /* the leftovers are removed by the next open */
  errno = 0;
  if (j->cfg.sync != KJ_SYNC_OFF &&
      (rc = j->cfg.vfs->sync_dir(j->cfg.vfs->ctx, j->cfg.dir)))
    return poison(
        j, kj_err(e, rc, "sync directory %s: %s", j->cfg.dir, kj_err_cause()));
  return KJ_OK;
}

void kj_journal_forget_before(kj_journal *j, uint64_t base) {
  j->cfg.base_segno = base;
  j->segments = j->segno - base + 1;
  size_t keep = 0;
  for (size_t i = 0; i < j->ntally; i++) {
    if (j->tally[i].segno < base) {
      j->bytes_before -= j->tally[i].bytes;
      j->disk_before -= j->tally[i].disk;
    } else {
      j->tally[keep++] = j->tally[i];
    }
  }
  j->ntally = keep;
  if (j->segno == base) { /* exact even when an entry was lost */
    j->bytes_before = 0;
    j->disk_before = 0;
    j->ntally = 0;
  }
}

void kj_journal_get_stats(const kj_journal *j, kj_journal_stats *out) {
  out->last_seq = j->next_seq - 1;
  out->segments = j->segments;
  out->journal_bytes = j->bytes_before + (j->off - KJ_SEGMENT_HEADER);
  out->disk_bytes = j->disk_before + j->seg_size;
  out->frames_replayed = j->frames_replayed;
  out->tail_bytes_cut = j->tail_cut;
  out->segments_ahead = j->ah_used;
}
