/*
 * oracle/damage.c - damage and tamper campaigns (ora_damage_check and
 * ora_tamper_check of oracle/oracle.h).
 *
 * Both build small stores on disk (4 KiB segments, so several segments;
 * manual checkpoints after bulk rows, so a run file of several blocks with
 * segments after it), close them cleanly and record the full state (every
 * row of every table). Each case then writes an edited copy of the
 * directory and opens it three ways, in a forked worker process (so that a
 * crash or a hang of the engine is an outcome of its case, not the end of
 * the campaign):
 *
 *   1. read-only (what `keyjournal verify` does: the library has no verify
 *      call of its own; it replays and authenticates every frame) - then
 *      every row is read and each table's count checked against its scan;
 *   2. read-write, which may repair (cut a torn tail); a refused
 *      read-write open must leave the files as they were (FORMAT.md 5.8);
 *   3. after a successful read-write open, read-only again: the repair
 *      kept the state.
 *
 * Both opens must agree. The outcomes allowed:
 *
 *   damage (ora_damage_check): one durable region of one file gets a
 *   flipped byte, a zeroed run, is cut (truncation) or gets bytes appended:
 *   every field of keyjournal.hdr, the header fields, payload and tag of
 *   chosen frames, segment headers, the slack after the last frame of a
 *   segment; every field of the run's header, its first, a middle and its
 *   last block, its index and its footer, and cuts inside its header, at a
 *   block boundary, where the blocks end, before the footer and before its
 *   last byte. The open must fail with KJ_ECORRUPT and a message that names
 *   the damaged file and an offset at or before the damage, or succeed
 *   with exactly the recorded state (bytes nothing reads, like a segment's
 *   zero slack, may be ignored or cut; a run has no such byte, so an edit
 *   of a run must be refused unless it changed nothing). Damage inside a
 *   run block may also let the open succeed and fail the read of that
 *   block: reading the rows must then fail with KJ_ECORRUPT naming the run
 *   and an offset at or before the damage (FORMAT.md 6A.7: blocks are read
 *   on demand); for any other damage a failed read is a divergence.
 *   Exceptions, each documented in FORMAT.md: a keyjournal.hdr that is not
 *   128 bytes or lost its magic is "not a keyjournal store" (KJ_EKEY,
 *   section 3 rule 1, no offset); a run header whose bytes 0..71 changed
 *   fails its checksum, reported at that field (offset 72, 6A.7); a
 *   segment before the newest cut at a frame boundary ends cleanly, and
 *   the next segment's first seq is what no longer matches (rule 5.4: that
 *   segment is named, "frames missing"). A refused read-write open may
 *   have removed what rule 5.3 removes before the journal is read (*.tmp,
 *   segments below the base B of the newest run, once its footer, which
 *   repeats B, authenticates), nothing else.
 *
 *   The model finds a run's blocks in its index, which is sealed: it opens
 *   the footer and the index with the store key through libsodium, as
 *   FORMAT.md 6A.3 seals them (the oracle may not call the engine's
 *   reader, tools/layers.sh). A run whose footer or index does not open so
 *   is itself a divergence ("the run as written"); its cases then treat
 *   the bytes between the header and the footer as one region. Format 1
 *   snapshots (snapshot-*.kjs) are not modelled: checkpoints no longer
 *   write them, and only an upgrade from format 1 reads them
 *   (tests/test_upgrade).
 *
 *   tamper (ora_tamper_check): an adversary with the files but not the key
 *   swaps frames within a segment, swaps segments, copies a frame to
 *   another place, replays an older frame over a newer one, splices frames,
 *   segments, a run or a whole journal in from another history of the
 *   same store (a copy of the directory continued with other commits),
 *   puts the older run in place of the newest (as it is, renamed,
 *   relabelled), swaps a run's blocks or copies one over another, puts
 *   another store's run at the same S in place, deletes or cuts files, and
 *   edits fields while recomputing every unkeyed checksum of the format
 *   (the XXH3 of keyjournal.hdr, of segment headers, of frames and of the
 *   run header), so that only the keyed authentication can tell (for a
 *   run: the store id, S, unit number and kind in every sealed unit's
 *   associated data, the nonce prefix in its nonce). The open must refuse:
 *   KJ_ECORRUPT naming a store file, where a case names the reason it must
 *   give ("authentication" when only the key can catch the edit); for a
 *   moved block, the read of it may be what refuses. Exceptions, each
 *   documented in FORMAT.md: the header's own authentication failure is
 *   KJ_EKEY ("wrong key or passphrase", rule 5; a changed key mode also
 *   KJ_EKEY, rule 4), a changed format version is KJ_EFORMAT (rule 3,
 *   FORMAT.md 5.4, 6A.7); edits of bytes that nothing reads (reserved bytes
 *   of a segment header), an appended segment that holds no frame, and an
 *   older keyjournal.hdr alone (its record claims less, never more) may
 *   also open with the untouched state.
 *
 * Left out because they are undetectable by design (nothing outside the
 * directory says what it should hold):
 *   - the whole directory, header included, replaced by an older copy or
 *     by another history of the store (a rollback);
 *   - the header kept, but the run and every segment replaced by
 *     those of another history that reaches the header's record: the
 *     record names a segment number and a seq (FORMAT.md 3.1), not their
 *     contents. ora_damage_selftest_break(2) runs exactly this to show that
 *     the checker reports an open that succeeds with another state;
 *   - an older keyjournal.hdr together with the removal of the segments
 *     after its record (a rollback of the record), or the cut of frames
 *     after the record (the window of undetectable loss, FORMAT.md 3.1).
 *     Every store here is closed cleanly, so its own record covers every
 *     frame and nothing is in the window.
 *
 * Cases are chosen from the seed (every file type and region kind each
 * run, offsets sampled). Each divergence adds one report line, "damage:
 * seed=S ops=N file=F offset=O kind=K region=R outcome=..." or "tamper:
 * seed=S ops=N case=C outcome=...". Setting ORA_DAMAGE_ONLY to the line's
 * "file=F offset=O kind=K" (or ORA_TAMPER_ONLY to C) runs that one case
 * alone; ORA_DAMAGE_VERBOSE=1 prints every case's outcome on stderr.
 *
 * Temp directories go under $TMPDIR, else /dev/shm when it exists, else
 * /tmp, and are removed at the end.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "oracle.h"

/* ---- the format (doc/FORMAT.md) ----------------------------------------- */

#define HDR_NAME "keyjournal.hdr"
#define HDR_BYTES 128u
#define SEG_HDR 64u
#define FRAME_HDR 64u
#define TAG_BYTES 16u
#define MIN_BODY 17u
#define FRAME_COMMIT 1u
#define FRAME_MARKER 2u
/* Run files (FORMAT.md 6A): a plaintext header, blocks, the sealed index,
 * the sealed footer; every sealed unit XChaCha20-Poly1305 under subkey 3. */
#define RUN_HDR 80u
#define RUN_XXH_AT 72u /* the header's XXH3 covers bytes 0..71 */
#define RUN_FOOT 96u
#define RUN_FOOT_PLAIN 80u
#define RUN_AD 33u /* store id, S, unit number, kind */
#define RUN_KIND_BLOCK 1u
#define RUN_KIND_INDEX 2u
#define RUN_KIND_FOOTER 3u
#define RUN_FOOTER_NO UINT64_MAX
#define RUN_SUBKEY 3u

/* ---- parameters -----------------------------------------------------------
 */

#define SEGMENT_BYTES 4096u /* the minimum: several segments per store */
#define MIN_OPS 96u         /* fewer ops would not give several segments */
#define MAX_TXN_OPS 6u
#define MAX_VALUE 160u
#define NKEYS 12u
/* Rows written before a checkpoint so that its run has several blocks
 * (about 8 KiB each): values of random bytes, which zstd cannot shrink,
 * under keys the random ops never touch, in a table they do not use. */
#define BULK_ROWS 28u
#define BULK_VALUE 1000u
#define BULK_TABLE 200u
#define DEFAULT_TIMEOUT_MS 20000u

static const unsigned tables[] = {1, 2, 9, 255};
#define NTABLES (sizeof tables / sizeof tables[0])

static const uint8_t damage_key[32] = {
    0x6b, 0x6a, 0x2d, 0x64, 0x61, 0x6d, 0x61, 0x67, 0x65, 0x2d, 0x6f,
    0x72, 0x61, 0x63, 0x6c, 0x65, 0x2d, 0x6b, 0x65, 0x79, 0x2d, 0x30,
    0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x61};

static int selftest_break;

void ora_damage_selftest_break(int which) { selftest_break = which; }

/* ---- small helpers --------------------------------------------------------
 */

static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p) {
  return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

typedef struct drng {
  uint64_t s;
} drng;

static uint64_t dr_next(drng *r) {
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint64_t dr_below(drng *r, uint64_t n) { return n ? dr_next(r) % n : 0; }

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *st_name(int rc) {
  switch (rc) {
  case KJ_OK:
    return "OK";
  case KJ_NOTFOUND:
    return "KJ_NOTFOUND";
  case KJ_EINVAL:
    return "KJ_EINVAL";
  case KJ_EKEY:
    return "KJ_EKEY";
  case KJ_ECORRUPT:
    return "KJ_ECORRUPT";
  case KJ_EIO:
    return "KJ_EIO";
  case KJ_ENOSPC:
    return "KJ_ENOSPC";
  case KJ_EBUSY:
    return "KJ_EBUSY";
  case KJ_EPOISONED:
    return "KJ_EPOISONED";
  case KJ_EFORMAT:
    return "KJ_EFORMAT";
  case KJ_ENOMEM:
    return "KJ_ENOMEM";
  case KJ_EEXIST:
    return "KJ_EEXIST";
  case KJ_EREADONLY:
    return "KJ_EREADONLY";
  case KJ_EDEADLK:
    return "KJ_EDEADLK";
  default:
    return "unknown status";
  }
}

static const char *obuf_str(ora_obuf *b) {
  ora_obuf_add(b, "", 1);
  b->len--;
  return (const char *)b->p;
}

/* ---- temp directories -----------------------------------------------------
 */

static char *make_root(void) { return ora_tmpdir("kjdamage", 1); }

static void rm_tree(const char *path) { ora_rmtree(path); }

static char *path_join(const char *dir, const char *name) {
  size_t n = strlen(dir) + strlen(name) + 2;
  char *p = malloc(n);
  if (p)
    snprintf(p, n, "%s/%s", dir, name);
  return p;
}

/* ---- a directory's files in memory ----------------------------------------
 */

typedef struct dfile {
  char name[64];
  uint8_t *p;
  size_t len;
} dfile;

typedef struct dset {
  dfile *f;
  size_t n;
} dset;

static void dset_free(dset *d) {
  for (size_t i = 0; i < d->n; i++)
    free(d->f[i].p);
  free(d->f);
  d->f = NULL;
  d->n = 0;
}

static int dfile_cmp(const void *a, const void *b) {
  return strcmp(((const dfile *)a)->name, ((const dfile *)b)->name);
}

static int read_whole(const char *path, uint8_t **out, size_t *len) {
  int fd = open(path, O_RDONLY);
  if (fd < 0)
    return -1;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    return -1;
  }
  size_t n = (size_t)st.st_size;
  uint8_t *p = malloc(n ? n : 1);
  size_t got = 0;
  while (p && got < n) {
    ssize_t r = read(fd, p + got, n - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  close(fd);
  if (!p || got != n) {
    free(p);
    return -1;
  }
  *out = p;
  *len = n;
  return 0;
}

static int write_whole(const char *path, const uint8_t *p, size_t n) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0)
    return -1;
  size_t done = 0;
  while (done < n) {
    ssize_t w = write(fd, p + done, n - done);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      break;
    done += (size_t)w;
  }
  return close(fd) == 0 && done == n ? 0 : -1;
}

/* Every regular file of dir, sorted by name. */
static int dset_load(const char *dir, dset *d) {
  d->f = NULL;
  d->n = 0;
  DIR *dp = opendir(dir);
  if (!dp)
    return -1;
  struct dirent *de;
  size_t cap = 0;
  int rc = 0;
  while (!rc && (de = readdir(dp))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
        strlen(de->d_name) >= sizeof d->f[0].name)
      continue;
    char *p = path_join(dir, de->d_name);
    struct stat st;
    if (!p || lstat(p, &st) != 0) {
      free(p);
      rc = -1;
      break;
    }
    if (!S_ISREG(st.st_mode)) {
      free(p);
      continue;
    }
    if (d->n == cap) {
      cap = cap ? 2 * cap : 16;
      dfile *nf = realloc(d->f, cap * sizeof *nf);
      if (!nf) {
        free(p);
        rc = -1;
        break;
      }
      d->f = nf;
    }
    dfile *f = &d->f[d->n];
    memcpy(f->name, de->d_name, strlen(de->d_name) + 1); /* fits: above */
    if (read_whole(p, &f->p, &f->len) != 0)
      rc = -1;
    else
      d->n++;
    free(p);
  }
  closedir(dp);
  if (rc)
    dset_free(d);
  else if (d->n)
    qsort(d->f, d->n, sizeof *d->f, dfile_cmp);
  return rc;
}

static int dset_clone(const dset *s, dset *d) {
  d->n = 0;
  d->f = calloc(s->n + 1, sizeof *d->f);
  if (!d->f)
    return -1;
  for (size_t i = 0; i < s->n; i++) {
    d->f[i] = s->f[i];
    d->f[i].p = malloc(s->f[i].len ? s->f[i].len : 1);
    if (!d->f[i].p) {
      dset_free(d);
      return -1;
    }
    memcpy(d->f[i].p, s->f[i].p, s->f[i].len);
    d->n++;
  }
  return 0;
}

static dfile *dset_get(const dset *d, const char *name) {
  for (size_t i = 0; i < d->n; i++)
    if (!strcmp(d->f[i].name, name))
      return &d->f[i];
  return NULL;
}

/* Add or replace file name with a copy of p[0..n). */
static dfile *dset_set(dset *d, const char *name, const uint8_t *p, size_t n) {
  uint8_t *c = malloc(n ? n : 1);
  if (!c)
    return NULL;
  memcpy(c, p, n);
  dfile *f = dset_get(d, name);
  if (!f) {
    dfile *nf = realloc(d->f, (d->n + 1) * sizeof *nf);
    if (!nf) {
      free(c);
      return NULL;
    }
    d->f = nf;
    f = &d->f[d->n++];
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
  } else {
    free(f->p);
  }
  f->p = c;
  f->len = n;
  return f;
}

static void dset_del(dset *d, const char *name) {
  dfile *f = dset_get(d, name);
  if (!f)
    return;
  free(f->p);
  *f = d->f[--d->n];
}

/* Write d as the whole content of dir (made anew). */
static int dset_store(const dset *d, const char *dir) {
  rm_tree(dir);
  if (mkdir(dir, 0700) != 0)
    return -1;
  for (size_t i = 0; i < d->n; i++) {
    char *p = path_join(dir, d->f[i].name);
    int rc = p ? write_whole(p, d->f[i].p, d->f[i].len) : -1;
    free(p);
    if (rc)
      return -1;
  }
  return 0;
}

/* d as the content of dir, but file name holds p[0..n). */
static int dset_store_with(const dset *d, const char *dir, const char *name,
                           const uint8_t *p, size_t n) {
  rm_tree(dir);
  if (mkdir(dir, 0700) != 0)
    return -1;
  for (size_t i = 0; i < d->n; i++) {
    char *path = path_join(dir, d->f[i].name);
    int same = !strcmp(d->f[i].name, name);
    int rc =
        path ? write_whole(path, same ? p : d->f[i].p, same ? n : d->f[i].len)
             : -1;
    free(path);
    if (rc)
      return -1;
  }
  return 0;
}

/* ---- parsing a store (FORMAT.md 3, 4, 6) ----------------------------------
 */

typedef struct dframe {
  size_t off;   /* of its header in the segment file */
  uint32_t len; /* body_len */
  uint64_t seq;
  uint8_t type;
} dframe;

typedef struct dseg {
  const dfile *f;
  uint64_t no, first;
  dframe *fr;
  size_t nfr;
  size_t end; /* where its frames end */
} dseg;

/* A block of a run file: where its sealed bytes lie. */
typedef struct dblock {
  size_t off;
  uint32_t len;
} dblock;

typedef struct model {
  const dset *d;
  const dfile *hdr;
  const dfile *run; /* NULL: none */
  uint64_t run_seq, run_base;
  dblock *blk; /* from its index, decoded with the key */
  size_t nblk;
  size_t ix_off, ix_len;  /* the sealed index; the footer is the last 96 */
  const char *run_unread; /* NULL, or why the footer or index did not open:
                             then nblk is 0 */
  dseg *seg;
  size_t nseg;
  uint64_t rec_seg, rec_seq;
  uint64_t last_seq; /* of the newest frame */
} model;

static void model_free(model *m) {
  for (size_t i = 0; i < m->nseg; i++)
    free(m->seg[i].fr);
  free(m->seg);
  free(m->blk);
  memset(m, 0, sizeof *m);
}

static int parse_numbered(const char *name, const char *prefix,
                          const char *suffix, uint64_t *no) {
  size_t pl = strlen(prefix), sl = strlen(suffix);
  if (strlen(name) != pl + 16 + sl || strncmp(name, prefix, pl) ||
      strcmp(name + pl + 16, suffix))
    return 0;
  char hex[17];
  memcpy(hex, name + pl, 16);
  hex[16] = 0;
  char *e;
  *no = strtoull(hex, &e, 16);
  return *e == 0;
}

static void seg_name(uint64_t no, char out[64]) {
  snprintf(out, 64, "journal-%016" PRIx64 ".kjl", no);
}

static void run_name(uint64_t seq, char out[64]) {
  snprintf(out, 64, "run-%016" PRIx64 ".kjr", seq);
}

/* ---- decoding a run's footer and index (FORMAT.md 6A.3, 6A.5, 6A.6) ------
 *
 * Independently of the engine's reader (src/engine/run.c, which the oracle
 * may not call): the places of the blocks are only in the sealed index, so
 * the model opens the footer and the index with the store key, as the
 * format describes them. */

static int run_unseal(const uint8_t *head, uint64_t no, unsigned kind,
                      const uint8_t *c, size_t clen, uint8_t *m) {
  uint8_t sub[32], nonce[24], ad[RUN_AD];
  if (sodium_init() < 0 || clen < TAG_BYTES)
    return -1;
  crypto_kdf_derive_from_key(sub, sizeof sub, RUN_SUBKEY, "kjournal",
                             damage_key);
  memcpy(nonce, head + 48, 16); /* the nonce prefix */
  put64(nonce + 16, no);
  memcpy(ad, head + 16, 16);     /* store id */
  memcpy(ad + 16, head + 32, 8); /* S */
  put64(ad + 24, no);
  ad[32] = (uint8_t)kind;
  unsigned long long mlen = 0;
  int rc = crypto_aead_xchacha20poly1305_ietf_decrypt(
      m, &mlen, NULL, c, clen, ad, sizeof ad, nonce, sub);
  sodium_memzero(sub, sizeof sub);
  return rc;
}

static int get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  *v = 0;
  for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
    uint8_t b = *(*p)++;
    *v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80))
      return 0;
  }
  return -1;
}

/* The footer of run file f (RUN_FOOT_PLAIN bytes into plain): 0 when it
 * authenticates under the file's own header and has its magic. */
static int run_footer(const dfile *f, uint8_t plain[RUN_FOOT_PLAIN]) {
  if (f->len < RUN_HDR + TAG_BYTES + RUN_FOOT)
    return -1;
  if (run_unseal(f->p, RUN_FOOTER_NO, RUN_KIND_FOOTER, f->p + f->len - RUN_FOOT,
                 RUN_FOOT, plain))
    return -1;
  return memcmp(plain, "KJRUNEND", 8) ? -1 : 0;
}

/* Fill m's run fields from run file f: its header, footer and index. A
 * footer or index that does not open or parse as the format says is not a
 * failure of the model: m->run_unread says why (the checks report it as a
 * divergence, FORMAT.md 6A is what the engine must write) and the model
 * knows no block (nblk 0), so the cases treat the bytes between the header
 * and the footer as one region. -1: the file is too short to be a run. */
static int run_parse(model *m, const dfile *f, ora_obuf *why) {
  if (f->len < RUN_HDR + TAG_BYTES + RUN_FOOT) {
    ora_obuf_addf(why, "%s: %zu bytes, too short for a run", f->name, f->len);
    return -1;
  }
  m->run = f;
  m->run_base = get64(f->p + 40);
  uint8_t foot[RUN_FOOT_PLAIN];
  if (run_footer(f, foot)) {
    m->run_unread = "its footer does not open under the nonce and associated "
                    "data of FORMAT.md 6A.3, or lacks its magic";
    return 0;
  }
  uint64_t ix = get64(foot + 24), ixlen = get64(foot + 32),
           n = get64(foot + 40);
  if (ix < RUN_HDR || ixlen < TAG_BYTES || ix + ixlen + RUN_FOOT != f->len ||
      n > (ix - RUN_HDR) / TAG_BYTES || get64(foot + 16) != m->run_base) {
    m->run_unread = "its footer's index place, block count or B do not fit";
    return 0;
  }
  uint8_t *plain = malloc((size_t)ixlen);
  dblock *blk = calloc(n ? n : 1, sizeof *blk);
  if (!plain || !blk) {
    free(plain);
    free(blk);
    ora_obuf_addf(why, "out of memory");
    return -1;
  }
  size_t nblk = 0, at = RUN_HDR;
  int rc = run_unseal(f->p, n, RUN_KIND_INDEX, f->p + ix, (size_t)ixlen, plain);
  if (rc)
    m->run_unread = "its index does not open under the nonce and associated "
                    "data of FORMAT.md 6A.3";
  const uint8_t *p = plain, *end = plain + ixlen - TAG_BYTES;
  for (uint64_t i = 0; !rc && i < n; i++) {
    uint64_t klen;
    if (p == end || (p++, get_varint(&p, end, &klen)) ||
        (uint64_t)(end - p) < klen + 16 || get64(p + klen) != at) {
      rc = -1;
      break;
    }
    p += klen;
    blk[nblk].off = at;
    blk[nblk++].len = get32(p + 8);
    at += get32(p + 8);
    p += 16;
  }
  free(plain);
  if (!rc && (at != ix || !nblk)) {
    rc = -1;
    m->run_unread = "its index's blocks do not tile the file up to the index";
  } else if (rc && !m->run_unread) {
    m->run_unread = "its index does not parse";
  }
  if (rc) {
    free(blk);
    return 0;
  }
  m->blk = blk;
  m->nblk = nblk;
  m->ix_off = (size_t)ix;
  m->ix_len = (size_t)ixlen;
  return 0;
}

/* d must stay unchanged while m is used. */
static int model_parse(const dset *d, model *m, ora_obuf *why) {
  memset(m, 0, sizeof *m);
  m->d = d;
  m->hdr = dset_get(d, HDR_NAME);
  if (!m->hdr || m->hdr->len != HDR_BYTES) {
    ora_obuf_addf(why, "no 128-byte %s", HDR_NAME);
    return -1;
  }
  m->rec_seg = get64(m->hdr->p + 64);
  m->rec_seq = get64(m->hdr->p + 72);
  m->seg = calloc(d->n + 1, sizeof *m->seg);
  if (!m->seg)
    return -1;
  for (size_t i = 0; i < d->n; i++) { /* sorted: segments ascend */
    const dfile *f = &d->f[i];
    uint64_t no;
    if (parse_numbered(f->name, "run-", ".kjr", &no)) {
      if (m->run) {
        ora_obuf_addf(why, "two runs");
        return -1;
      }
      m->run_seq = no;
      if (run_parse(m, f, why))
        return -1;
      continue;
    }
    if (!parse_numbered(f->name, "journal-", ".kjl", &no))
      continue;
    if (f->len < SEG_HDR) {
      ora_obuf_addf(why, "short segment %s", f->name);
      return -1;
    }
    dseg *s = &m->seg[m->nseg++];
    s->f = f;
    s->no = no;
    s->first = get64(f->p + 40);
    size_t off = SEG_HDR;
    while (off + FRAME_HDR <= f->len) {
      const uint8_t *h = f->p + off;
      if (memcmp(h, "KJFR", 4))
        break;
      uint32_t len = get32(h + 4);
      if (len < MIN_BODY || off + FRAME_HDR + len > f->len)
        break;
      dframe *nf = realloc(s->fr, (s->nfr + 1) * sizeof *nf);
      if (!nf)
        return -1;
      s->fr = nf;
      s->fr[s->nfr].off = off;
      s->fr[s->nfr].len = len;
      s->fr[s->nfr].seq = get64(h + 8);
      s->fr[s->nfr++].type = h[24];
      m->last_seq = get64(h + 8);
      off += FRAME_HDR + len;
    }
    s->end = off;
  }
  if (!m->nseg) {
    ora_obuf_addf(why, "no segment");
    return -1;
  }
  return 0;
}

/* The frame with seq q: 1 and *si, *fi, or 0. */
static int model_find(const model *m, uint64_t q, size_t *si, size_t *fi) {
  for (size_t i = 0; i < m->nseg; i++)
    for (size_t j = 0; j < m->seg[i].nfr; j++)
      if (m->seg[i].fr[j].seq == q) {
        *si = i;
        *fi = j;
        return 1;
      }
  return 0;
}

static const dseg *model_seg_no(const model *m, uint64_t no) {
  for (size_t i = 0; i < m->nseg; i++)
    if (m->seg[i].no == no)
      return &m->seg[i];
  return NULL;
}

/* ---- unkeyed checksums (ora_damage_selftest_break(4) skips them) ------- */

static void fix_header_xxh(uint8_t *h) {
  if (selftest_break != 4)
    put64(h + 120, XXH3_64bits(h, 120));
}

/* Segment header: XXH3 of bytes 0..55 at 56. */
static void fix_head56(uint8_t *h) {
  if (selftest_break != 4)
    put64(h + 56, XXH3_64bits(h, 56));
}

/* Run header: XXH3 of bytes 0..71 at 72. */
static void fix_run_xxh(uint8_t *h) {
  if (selftest_break != 4)
    put64(h + RUN_XXH_AT, XXH3_64bits(h, RUN_XXH_AT));
}

static void fix_frame_sum(uint8_t *h) {
  if (selftest_break != 4) {
    uint32_t len = get32(h + 4);
    put64(h + 56, XXH3_64bits_withSeed(h + FRAME_HDR, len, XXH3_64bits(h, 56)));
  }
}

/* ---- stores ---------------------------------------------------------------
 */

static void store_options(kj_options *o, int read_only, kj_open_mode mode) {
  kj_options z = KJ_OPTIONS_INIT;
  *o = z;
  o->key = damage_key;
  o->sync = KJ_SYNC_FULL;
  o->mode = mode;
  o->read_only = read_only;
  o->segment_bytes = SEGMENT_BYTES;
  o->snapshot_threshold = UINT64_MAX; /* checkpoints where we say */
}

static int store_open(const char *dir, int create, kj_store **s,
                      ora_obuf *why) {
  kj_options o;
  store_options(&o, 0, create ? KJ_OPEN_CREATE_NEW : KJ_OPEN_EXISTING);
  char *msg = NULL;
  int rc = kj_store_open(dir, &o, s, &msg);
  if (rc)
    ora_obuf_addf(why, "open %s: %s: %s", dir, st_name(rc), msg ? msg : "");
  kj_free(msg);
  return rc;
}

static size_t make_key(unsigned t, unsigned k, uint8_t *out) {
  size_t len = 1 + (k * 5 + t) % 23;
  out[0] = (uint8_t)k;
  for (size_t i = 1; i < len; i++)
    out[i] = (uint8_t)(t * 31 + k * 17 + i * 7);
  return len;
}

/* n raw puts and deletes drawn from r, in transactions of 1..6 of them. */
static int write_ops(kj_store *s, drng *r, size_t n, ora_obuf *why) {
  size_t done = 0;
  while (done < n) {
    size_t m = 1 + (size_t)dr_below(r, MAX_TXN_OPS);
    if (m > n - done)
      m = n - done;
    kj_txn *t = NULL;
    int rc = kj_txn_begin(s, 0, &t);
    for (size_t i = 0; !rc && i < m; i++) {
      unsigned tb = tables[dr_below(r, NTABLES)];
      uint8_t key[32], val[MAX_VALUE];
      size_t klen = make_key(tb, (unsigned)dr_below(r, NKEYS), key);
      if (dr_below(r, 4) == 0) {
        rc = kj_delete(s, t, tb, key, klen);
      } else {
        size_t vlen = (size_t)dr_below(r, MAX_VALUE + 1);
        for (size_t j = 0; j < vlen; j++)
          val[j] = (uint8_t)dr_next(r);
        rc = kj_put(s, t, tb, key, klen, val, vlen);
      }
    }
    if (rc) {
      kj_txn_rollback(t);
    } else {
      rc = kj_txn_commit(t);
    }
    if (rc) {
      ora_obuf_addf(why, "write: %s: %s", st_name(rc), kj_store_errmsg(s));
      return rc;
    }
    done += m;
  }
  return KJ_OK;
}

/* A row every store holds (so a state is never empty). */
static int put_sentinel(kj_store *s, ora_obuf *why) {
  int rc = kj_put(s, NULL, 1, "sentinel", 8, "present", 7);
  if (rc)
    ora_obuf_addf(why, "sentinel: %s", st_name(rc));
  return rc;
}

/* BULK_ROWS rows of BULK_VALUE bytes drawn from seed, one commit each, so
 * that the next checkpoint's run has several blocks. */
static int put_bulk(kj_store *s, uint64_t seed, ora_obuf *why) {
  drng r = {seed ^ 0x62756c6b00000000ull};
  uint8_t v[BULK_VALUE];
  int rc = KJ_OK;
  for (unsigned i = 0; !rc && i < BULK_ROWS; i++) {
    char key[16];
    int klen = snprintf(key, sizeof key, "bulk-%03u", i);
    for (size_t j = 0; j < sizeof v; j++)
      v[j] = (uint8_t)dr_next(&r);
    rc = kj_put(s, NULL, BULK_TABLE, key, (size_t)klen, v, sizeof v);
  }
  if (rc)
    ora_obuf_addf(why, "bulk rows: %s: %s", st_name(rc), kj_store_errmsg(s));
  return rc;
}

static int store_close(kj_store *s, ora_obuf *why) {
  int rc = kj_store_close(s);
  if (rc)
    ora_obuf_addf(why, "close: %s", st_name(rc));
  return rc;
}

static int checkpoint(kj_store *s, ora_obuf *why) {
  int rc = kj_store_checkpoint(s);
  if (rc)
    ora_obuf_addf(why, "checkpoint: %s: %s", st_name(rc), kj_store_errmsg(s));
  return rc;
}

static uint64_t segment_files(kj_store *s) {
  kj_stats st = KJ_STATS_INIT;
  return kj_store_stats(s, &st) == KJ_OK ? st.segments : 0;
}

static uint64_t last_seq(kj_store *s) {
  kj_stats st = KJ_STATS_INIT;
  return kj_store_stats(s, &st) == KJ_OK ? st.last_seq : 0;
}

/* ---- state dumps -----------------------------------------------------------
 */

typedef struct scan_acc {
  ora_obuf *out;
  unsigned table;
  uint64_t rows, bytes;
} scan_acc;

static void add_hex(ora_obuf *b, const void *p, size_t n) {
  static const char hx[] = "0123456789abcdef";
  const uint8_t *q = p;
  char buf[128];
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    buf[k++] = hx[q[i] >> 4];
    buf[k++] = hx[q[i] & 15];
    if (k == sizeof buf) {
      ora_obuf_add(b, buf, k);
      k = 0;
    }
  }
  ora_obuf_add(b, buf, k);
}

static int scan_row(void *arg, const void *key, size_t klen, const void *val,
                    size_t vlen) {
  scan_acc *a = arg;
  ora_obuf_addf(a->out, "t=%u k=", a->table);
  add_hex(a->out, key, klen);
  ora_obuf_addf(a->out, " v=");
  add_hex(a->out, val, vlen);
  ora_obuf_addf(a->out, "\n");
  a->rows++;
  a->bytes += klen + vlen;
  return 0;
}

/* A read that failed: its status and message. */
typedef struct readfail {
  int rc;
  char msg[512];
} readfail;

/* Every row of every table, one line each; and, as `keyjournal verify`
 * does, each table's count against its scan. A read that fails goes to rf
 * when not NULL (the caller judges it), else to why. */
static int dump_store_rf(kj_store *s, ora_obuf *out, ora_obuf *why,
                         readfail *rf) {
  uint64_t total = 0;
  for (unsigned t = KJ_TABLE_MIN; t <= KJ_TABLE_MAX; t++) {
    scan_acc a = {out, t, 0, 0};
    uint64_t rows = 0, bytes = 0;
    int rc = kj_table_count(s, t, &rows, &bytes);
    if (!rc)
      rc = kj_scan_range(s, NULL, t, NULL, 0, NULL, 0, scan_row, &a);
    if (rc && rf) {
      rf->rc = rc;
      snprintf(rf->msg, sizeof rf->msg, "%s", kj_store_errmsg(s));
      return -1;
    }
    if (rc) {
      ora_obuf_addf(why, "reading table %u: %s: %s; ", t, st_name(rc),
                    kj_store_errmsg(s));
      return -1;
    }
    if (rows != a.rows || bytes != a.bytes) {
      ora_obuf_addf(why,
                    "table %u counts %" PRIu64 " rows/%" PRIu64
                    " bytes but its scan read %" PRIu64 "/%" PRIu64 "; ",
                    t, rows, bytes, a.rows, a.bytes);
      return -1;
    }
    total += rows;
  }
  kj_stats st = KJ_STATS_INIT;
  if (kj_store_stats(s, &st) == KJ_OK && st.rows != total) {
    ora_obuf_addf(why,
                  "the store counts %" PRIu64 " rows, its tables %" PRIu64 "; ",
                  st.rows, total);
    return -1;
  }
  return 0;
}

static int dump_store(kj_store *s, ora_obuf *out, ora_obuf *why) {
  return dump_store_rf(s, out, why, NULL);
}

static size_t count_lines(const ora_obuf *b) {
  size_t n = 0;
  for (size_t i = 0; i < b->len; i++)
    n += b->p[i] == '\n';
  return n;
}

static void describe_diff(const ora_obuf *want, const ora_obuf *got,
                          ora_obuf *why) {
  size_t i = 0, line = 0;
  while (i < want->len && i < got->len && want->p[i] == got->p[i]) {
    if (want->p[i] == '\n')
      line++;
    i++;
  }
  size_t a = i, b = i;
  while (a > 0 && want->p[a - 1] != '\n')
    a--;
  while (b > 0 && got->p[b - 1] != '\n')
    b--;
  size_t ae = a, be = b;
  while (ae < want->len && want->p[ae] != '\n')
    ae++;
  while (be < got->len && got->p[be] != '\n')
    be++;
  int al = (int)(ae - a > 70 ? 70 : ae - a),
      bl = (int)(be - b > 70 ? 70 : be - b);
  ora_obuf_addf(why,
                "%zu rows instead of %zu, first difference at row %zu: "
                "expected '%.*s' got '%.*s'; ",
                count_lines(got), count_lines(want), line, al,
                (const char *)want->p + a, bl, (const char *)got->p + b);
}

/* ---- judging one open ------------------------------------------------------
 */

#define A_OK 1u      /* opens with the expected state */
#define A_CORRUPT 2u /* KJ_ECORRUPT */
#define A_EKEY 4u    /* KJ_EKEY (keyjournal.hdr rules 1, 4, 5) */
#define A_EFORMAT 8u /* KJ_EFORMAT (a changed format version) */
/* Opens, and reading the rows fails with KJ_ECORRUPT: damage inside a run
 * block, found only when the block is read (FORMAT.md 6A.7). */
#define A_RCORRUPT 16u

typedef struct expect {
  const ora_obuf *state; /* the full (untouched) state */
  const char *file;      /* a refusal names it; NULL: any store file */
  const char *alt; /* or names this one and says that frames are missing */
  int need_offset; /* ... and an offset <= max_off */
  uint64_t max_off;
  unsigned allow;
  const char *want; /* a refusal's message holds this (NULL: any) */
} expect;

static int names_store_file(const char *msg) {
  return strstr(msg, ".kjl") || strstr(msg, ".kjr") || strstr(msg, HDR_NAME);
}

/* A refusal (what = "open") or a failed read ("read") allowed by x: does
 * its message name the file, say what x wants, name an offset at or
 * before the damage? */
static void judge_message(const expect *x, const char *tag, const char *what,
                          int rc, const char *m, ora_obuf *why) {
  int named = x->file ? strstr(m, x->file) != NULL : names_store_file(m);
  int alt =
      !named && x->alt && strstr(m, x->alt) && strstr(m, "frames missing");
  if (!named && !alt)
    ora_obuf_addf(why, "%s %s: the message does not name %s: '%s'; ", tag, what,
                  x->file ? x->file : "a store file", m);
  if (x->want && !strstr(m, x->want))
    ora_obuf_addf(why, "%s %s: the message does not say '%s': '%s'; ", tag,
                  what, x->want, m);
  if (x->need_offset && rc == KJ_ECORRUPT && !alt) {
    const char *p = strstr(m, "offset ");
    if (!p)
      ora_obuf_addf(why, "%s %s: the message names no offset: '%s'; ", tag,
                    what, m);
    else if (strtoull(p + 7, NULL, 10) > x->max_off)
      ora_obuf_addf(why,
                    "%s %s: the message names an offset after the damage at "
                    "%" PRIu64 ": '%s'; ",
                    tag, what, x->max_off, m);
  }
}

/* Open dir (read-only or not), read everything, close; append what is
 * wrong to why and the outcome to info. Returns the open's status. */
static int open_judge(const char *dir, const char *tag, int read_only,
                      const expect *x, ora_obuf *why, ora_obuf *info) {
  kj_options o;
  store_options(&o, read_only, KJ_OPEN_EXISTING);
  kj_store *s = NULL;
  char *msg = NULL;
  int rc = kj_store_open(dir, &o, &s, &msg);
  if (rc == KJ_OK) {
    kj_stats st = KJ_STATS_INIT;
    kj_store_stats(s, &st);
    ora_obuf got = {0};
    readfail rf = {0, ""};
    int drc = dump_store_rf(s, &got, why, &rf);
    int crc = kj_store_close(s);
    ora_obuf_addf(info, "%s=OK(cut %" PRIu64 ") ", tag, st.tail_bytes_cut);
    if (crc)
      ora_obuf_addf(why, "%s: close failed: %s; ", tag, st_name(crc));
    if (rf.rc) {
      /* Only damage inside a run block may be found after the open. */
      ora_obuf_addf(info, "%s read=%s '%s' ", tag, st_name(rf.rc), rf.msg);
      if (rf.rc != KJ_ECORRUPT || !(x->allow & A_RCORRUPT) ||
          selftest_break == 7)
        ora_obuf_addf(why, "%s: reading the rows failed: %s: '%s'; ", tag,
                      st_name(rf.rc), rf.msg);
      else
        judge_message(x, tag, "read", rf.rc, rf.msg, why);
    } else if (drc == 0) {
      int same = got.len == x->state->len &&
                 (!got.len || !memcmp(got.p, x->state->p, got.len));
      if (!same) {
        ora_obuf_addf(why,
                      "%s open succeeded with another state (silent "
                      "loss or change): ",
                      tag);
        describe_diff(x->state, &got, why);
      } else if (!(x->allow & A_OK)) {
        ora_obuf_addf(why, "%s open succeeded: the edit went undetected; ",
                      tag);
      }
    }
    ora_obuf_free(&got);
    kj_free(msg);
    return rc;
  }
  const char *m = msg ? msg : "";
  ora_obuf_addf(info, "%s=%s '%s' ", tag, st_name(rc), m);
  unsigned bit = rc == KJ_ECORRUPT  ? A_CORRUPT
                 : rc == KJ_EKEY    ? A_EKEY
                 : rc == KJ_EFORMAT ? A_EFORMAT
                                    : 0;
  if (!(x->allow & bit))
    ora_obuf_addf(why, "%s open returned %s: '%s'; ", tag, st_name(rc), m);
  else
    judge_message(x, tag, "open", rc, m, why);
  kj_free(msg);
  return rc;
}

/* after is before, less what FORMAT.md 5.3 lets a read-write open remove
 * before it knows whether the store is sound: *.tmp files and segments
 * numbered below the newest run's base B. The engine trusts B once the
 * run's footer, which repeats it, authenticates: so B counts here only
 * when the footer opens and holds the header's B (another history's run,
 * authentic under the same key, so removes segments before the open is
 * refused; a header with an edited B removes none). */
static int changed_as_allowed(const dset *before, const dset *after) {
  uint64_t newest = 0, base = 0, no;
  const dfile *run = NULL;
  for (size_t i = 0; i < before->n; i++)
    if (parse_numbered(before->f[i].name, "run-", ".kjr", &no) &&
        (!run || no >= newest)) {
      newest = no;
      run = &before->f[i];
    }
  uint8_t foot[RUN_FOOT_PLAIN];
  if (run && run_footer(run, foot) == 0 &&
      get64(foot + 16) == get64(run->p + 40))
    base = get64(run->p + 40);
  for (size_t i = 0; i < before->n; i++) {
    const dfile *f = &before->f[i];
    const dfile *g = dset_get(after, f->name);
    size_t nl = strlen(f->name);
    if (g ? g->len != f->len || (f->len && memcmp(g->p, f->p, f->len))
          : !((parse_numbered(f->name, "journal-", ".kjl", &no) && no < base) ||
              (nl > 4 && !strcmp(f->name + nl - 4, ".tmp"))))
      return 0;
  }
  for (size_t i = 0; i < after->n; i++)
    if (!dset_get(before, after->f[i].name))
      return 0;
  return 1;
}

/* The three opens of a case (see the top of the file). */
static void judge(const char *dir, const expect *x, ora_obuf *why,
                  ora_obuf *info) {
  int rc1 = open_judge(dir, "ro", 1, x, why, info);
  dset before, after;
  int have = dset_load(dir, &before) == 0;
  int rc2 = open_judge(dir, "rw", 0, x, why, info);
  if (rc1 != rc2)
    ora_obuf_addf(why, "read-only open %s but read-write open %s; ",
                  st_name(rc1), st_name(rc2));
  if (rc2 == KJ_OK) {
    open_judge(dir, "reopen", 1, x, why, info);
  } else if (have && dset_load(dir, &after) == 0) {
    if (!changed_as_allowed(&before, &after))
      ora_obuf_addf(why, "the refused read-write open changed files; ");
    dset_free(&after);
  }
  if (have)
    dset_free(&before);
}

/* ---- running cases in a worker process ----------------------------------- */

/* Cases run one after another in a forked worker, which reports the start
 * and the outcome of each through a pipe: a crash or a hang of the engine
 * ends that case as a divergence, and a new worker goes on with the next
 * one. (One process for all cases, not one per case: a fresh child pays
 * copy-on-write faults on every page the engine touches.) */

/* Judge case i: append what is wrong to why (nothing: it passed) and the
 * outcomes to info. Runs in the worker. */
typedef void (*case_fn)(void *arg, size_t i, ora_obuf *why, ora_obuf *info);
/* Take the result of case i (bad: why says what went wrong). Runs in the
 * parent, in case order. */
typedef void (*result_fn)(void *arg, size_t i, int bad, const char *why,
                          const char *info, int64_t ms);

static int write_full(int fd, const void *p, size_t n) {
  const uint8_t *q = p;
  while (n) {
    ssize_t w = write(fd, q, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    q += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Record: 'B' u32 case (begun), or 'R' u32 case u32 wlen u32 ilen, why,
 * info (done). */
static void worker(int fd, size_t from, size_t n, const uint8_t *skip,
                   case_fn fn, void *arg) {
  for (size_t i = from; i < n; i++) {
    if (skip[i])
      continue;
    uint8_t h[13];
    h[0] = 'B';
    put32(h + 1, (uint32_t)i);
    if (write_full(fd, h, 5))
      _exit(3);
    ora_obuf w = {0}, info = {0};
    fn(arg, i, &w, &info);
    h[0] = 'R';
    put32(h + 5, (uint32_t)w.len);
    put32(h + 9, (uint32_t)info.len);
    if (write_full(fd, h, 13) || write_full(fd, w.p, w.len) ||
        write_full(fd, info.p, info.len))
      _exit(3);
    ora_obuf_free(&w);
    ora_obuf_free(&info);
  }
  _exit(0);
}

static void run_cases(ora_campaign *c, size_t n, const uint8_t *skip,
                      case_fn fn, void *arg, result_fn done, void *darg) {
  unsigned timeout = c->watchdog_ms ? c->watchdog_ms : DEFAULT_TIMEOUT_MS;
  size_t next = 0;
  for (;;) {
    while (next < n && skip[next])
      next++;
    if (next >= n)
      return;
    int pfd[2];
    if (pipe(pfd) != 0) {
      done(darg, next, 1, "pipe failed", "", 0);
      next++;
      continue;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
      close(pfd[0]);
      close(pfd[1]);
      done(darg, next, 1, "fork failed", "", 0);
      next++;
      continue;
    }
    if (pid == 0) {
      close(pfd[0]);
      worker(pfd[1], next, n, skip, fn, arg);
    }
    close(pfd[1]);
    ora_obuf in = {0};
    size_t used = 0, cur = SIZE_MAX;
    int64_t t0 = now_ms(), deadline = t0 + timeout;
    int hung = 0, progress = 0;
    for (;;) {
      /* Complete records first. */
      for (;;) {
        size_t avail = in.len - used;
        if (!avail)
          break; /* nothing read yet: in.p may still be NULL */
        const uint8_t *p = in.p + used;
        if (avail >= 5 && p[0] == 'B') {
          cur = get32(p + 1);
          t0 = now_ms();
          deadline = t0 + timeout;
          used += 5;
          progress = 1;
        } else if (avail >= 13 && p[0] == 'R' &&
                   avail >= 13 + (size_t)get32(p + 5) + get32(p + 9)) {
          size_t i = get32(p + 1), wl = get32(p + 5), il = get32(p + 9);
          char *w = strndup((const char *)p + 13, wl);
          char *inf = strndup((const char *)p + 13 + wl, il);
          done(darg, i, wl != 0, w ? w : "", inf ? inf : "", now_ms() - t0);
          free(w);
          free(inf);
          used += 13 + wl + il;
          next = i + 1;
          cur = SIZE_MAX;
        } else {
          break;
        }
      }
      int64_t left = deadline - now_ms();
      if (cur != SIZE_MAX && left <= 0) {
        hung = 1;
        break;
      }
      struct pollfd pl = {pfd[0], POLLIN, 0};
      int r = poll(&pl, 1, cur != SIZE_MAX ? (int)left : (int)timeout);
      if (r < 0 && errno == EINTR)
        continue;
      if (r == 0) {
        if (cur == SIZE_MAX) /* between cases, nothing for a whole timeout */
          cur = next;
        hung = 1;
        break;
      }
      if (r < 0)
        break;
      uint8_t buf[8192];
      ssize_t got = read(pfd[0], buf, sizeof buf);
      if (got < 0 && errno == EINTR)
        continue;
      if (got <= 0)
        break;
      ora_obuf_add(&in, buf, (size_t)got);
      ora_beat(); /* a case judged: progress for the campaign's watchdog */
    }
    close(pfd[0]);
    if (hung)
      kill(pid, SIGKILL);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
      ;
    ora_obuf_free(&in);
    if (cur == SIZE_MAX && !hung && WIFEXITED(st) && WEXITSTATUS(st) == 0)
      return;              /* every case done */
    if (cur == SIZE_MAX) { /* died between cases: blame the next one */
      while (next < n && skip[next])
        next++;
      if (next >= n)
        return;
      cur = next;
    }
    char why[160];
    if (hung) {
      c->hangs++;
      snprintf(why, sizeof why, "hang: no outcome after %u ms", timeout);
    } else if (WIFSIGNALED(st)) {
      snprintf(why, sizeof why,
               "crash: the checking process died of signal %d (%s)",
               WTERMSIG(st), strsignal(WTERMSIG(st)));
    } else {
      snprintf(why, sizeof why,
               "the checking process exited (%d) without an outcome",
               WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }
    done(darg, cur, 1, why, "", now_ms() - t0);
    next = cur + 1;
    if (!progress && !hung && !WIFSIGNALED(st))
      next = n; /* a worker that cannot start: give up */
  }
}

static int verbose(void) {
  const char *v = getenv("ORA_DAMAGE_VERBOSE");
  return v && *v && strcmp(v, "0");
}

/* ---- damage cases -----------------------------------------------------------
 */

#define K_NONE 0
#define K_FLIP 1
#define K_ZERO 2
#define K_TRUNC 3
#define K_APPEND 4 /* n bytes of 0xa5 after the end */

#define KF_FLIP (1u << K_FLIP)
#define KF_ZERO (1u << K_ZERO)
#define KF_TRUNC (1u << K_TRUNC)

typedef struct dcase {
  char file[64];
  uint64_t off;
  uint32_t n; /* K_ZERO: bytes */
  uint8_t kind, mask;
  const char *region;
  unsigned allow;
  uint64_t report_at; /* a refusal names an offset <= this */
  char alt[64]; /* or names this file (the next segment) and frames missing */
} dcase;

typedef struct dcases {
  dcase *v;
  size_t n, cap;
} dcases;

static void dc_add(dcases *cs, const char *file, uint64_t off, int kind,
                   uint32_t n, uint8_t mask, const char *region,
                   unsigned allow) {
  if (cs->n == cs->cap) {
    size_t cap = cs->cap ? 2 * cs->cap : 64;
    dcase *v = realloc(cs->v, cap * sizeof *v);
    if (!v)
      return;
    cs->v = v;
    cs->cap = cap;
  }
  dcase *k = &cs->v[cs->n++];
  memset(k, 0, sizeof *k);
  snprintf(k->file, sizeof k->file, "%s", file);
  k->off = off;
  k->n = n;
  k->kind = (uint8_t)kind;
  k->mask = mask;
  k->region = region;
  k->allow = allow;
  k->report_at = kind == K_ZERO ? off + n - 1 : off;
}

static void dc_kind(const dcase *k, char *out, size_t n) {
  switch (k->kind) {
  case K_FLIP:
    snprintf(out, n, "flip:0x%02x", k->mask);
    break;
  case K_ZERO:
    snprintf(out, n, "zero:%" PRIu32, k->n);
    break;
  case K_TRUNC:
    snprintf(out, n, "trunc");
    break;
  case K_APPEND:
    snprintf(out, n, "append:%" PRIu32, k->n);
    break;
  default:
    snprintf(out, n, "none");
  }
}

static void dc_desc(const dcase *k, char *out, size_t n) {
  char kind[32];
  dc_kind(k, kind, sizeof kind);
  snprintf(out, n, "file=%s offset=%" PRIu64 " kind=%s", k->file, k->off, kind);
}

/* Cases of the given kinds at sampled offsets of f[start, start + len). */
static void dc_region(dcases *cs, drng *r, const dfile *f, size_t start,
                      size_t len, const char *region, unsigned kinds,
                      unsigned allow) {
  if (start >= f->len)
    return;
  if (len > f->len - start)
    len = f->len - start;
  if (!len)
    return;
  allow |= A_OK | A_CORRUPT;
  if (kinds & KF_FLIP)
    dc_add(cs, f->name, start + dr_below(r, len), K_FLIP, 0,
           (uint8_t)(1u << dr_below(r, 8)), region, allow);
  if (kinds & KF_ZERO) {
    /* A run that is zero already would change nothing: prefer one that
     * is not (a few tries), else the whole region. */
    size_t off = start, n = len;
    for (int tries = 0; tries < 4; tries++) {
      size_t o = start + (size_t)dr_below(r, len);
      size_t room = start + len - o;
      size_t m = 1 + (size_t)dr_below(r, room < 24 ? room : 24);
      size_t j = 0;
      while (j < m && !f->p[o + j])
        j++;
      if (j < m) {
        off = o;
        n = m;
        break;
      }
    }
    dc_add(cs, f->name, off, K_ZERO, (uint32_t)n, 0, region, allow);
  }
  if (kinds & KF_TRUNC)
    dc_add(cs, f->name, start + dr_below(r, len), K_TRUNC, 0, 0, region, allow);
}

typedef struct field {
  const char *name;
  size_t off, len;
} field;

static const field hdr_fields[] = {
    {"hdr.magic", 0, 8},      {"hdr.version", 8, 4},  {"hdr.keymode", 12, 4},
    {"hdr.storeid", 16, 16},  {"hdr.salt", 32, 16},   {"hdr.pwcost", 48, 16},
    {"hdr.rec_seg", 64, 8},   {"hdr.rec_seq", 72, 8}, {"hdr.reserved", 80, 8},
    {"hdr.keycheck", 88, 32}, {"hdr.xxh3", 120, 8}};

static const field seg_fields[] = {
    {"seg.magic", 0, 8},      {"seg.version", 8, 4}, {"seg.reserved", 12, 4},
    {"seg.storeid", 16, 16},  {"seg.segno", 32, 8},  {"seg.firstseq", 40, 8},
    {"seg.reserved2", 48, 8}, {"seg.xxh3", 56, 8}};

static const field run_fields[] = {{"run.magic", 0, 8},
                                   {"run.version", 8, 4},
                                   {"run.reserved", 12, 4},
                                   {"run.storeid", 16, 16},
                                   {"run.S", 32, 8},
                                   {"run.B", 40, 8},
                                   {"run.nonce_prefix", 48, 16},
                                   {"run.reserved2", 64, 8},
                                   {"run.xxh3", 72, 8}};

#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

/* Fields of frame fr; the last two depend on body_len. */
static void frame_regions(dcases *cs, drng *r, const dfile *f,
                          const dframe *fr) {
  static const field ff[] = {
      {"frame.magic", 0, 4},   {"frame.body_len", 4, 4},
      {"frame.seq", 8, 8},     {"frame.durable_seq", 16, 8},
      {"frame.type", 24, 1},   {"frame.reserved", 25, 7},
      {"frame.nonce", 32, 24}, {"frame.checksum", 56, 8}};
  for (size_t i = 0; i < NFIELDS(ff); i++)
    dc_region(cs, r, f, fr->off + ff[i].off, ff[i].len, ff[i].name,
              KF_FLIP | KF_ZERO, 0);
  dc_region(cs, r, f, fr->off + FRAME_HDR, fr->len - TAG_BYTES, "frame.payload",
            KF_FLIP | KF_ZERO | KF_TRUNC, 0);
  dc_region(cs, r, f, fr->off + FRAME_HDR + fr->len - TAG_BYTES, TAG_BYTES,
            "frame.tag", KF_FLIP | KF_ZERO, 0);
  /* Cut exactly at the frame's start, and inside its header. */
  dc_add(cs, f->name, fr->off, K_TRUNC, 0, 0, "frame.start", A_OK | A_CORRUPT);
  dc_region(cs, r, f, fr->off + 1, FRAME_HDR - 1, "frame.header", KF_TRUNC, 0);
}

/* The run file: every header field; the first, a middle and the last
 * block (a byte anywhere, its first byte and its tag's last; a zeroed run;
 * a cut inside it); cuts inside the header, at a block boundary, where the
 * blocks end, before the footer and before the last byte; the index and
 * the footer; bytes appended; the file cut to nothing. Every byte of a run
 * is read (the header and the footer by the open, the index's length from
 * the footer and the blocks tiling the rest), so each edit must be
 * refused: the open fails, or, for damage inside a block, which is read
 * only when a lookup or a scan needs it, reading the rows fails
 * (A_RCORRUPT). The untouched state is allowed only where an edit
 * changed no byte (damage_case_fn). */
static void run_regions(dcases *cs, drng *r, const model *m) {
  const dfile *f = m->run;
  size_t n0 = cs->n;
  for (size_t i = 0; i < NFIELDS(run_fields); i++)
    dc_region(cs, r, f, run_fields[i].off, run_fields[i].len,
              run_fields[i].name, KF_FLIP | KF_ZERO, 0);
  dc_region(cs, r, f, 1, RUN_HDR - 1, "run.header", KF_TRUNC, 0);
  if (!m->nblk) /* the blocks and the index, not told apart */
    dc_region(cs, r, f, RUN_HDR, f->len - RUN_HDR - RUN_FOOT, "run.body",
              KF_FLIP | KF_ZERO | KF_TRUNC, A_RCORRUPT);
  size_t pick[3] = {0, m->nblk / 2, m->nblk - 1};
  for (size_t i = 0; m->nblk && i < 3; i++) {
    if ((i > 0 && pick[i] == pick[0]) || (i == 2 && pick[2] == pick[1]))
      continue;
    const dblock *b = &m->blk[pick[i]];
    dc_region(cs, r, f, b->off, b->len, "run.block",
              KF_FLIP | KF_ZERO | KF_TRUNC, A_RCORRUPT);
    dc_add(cs, f->name, b->off, K_FLIP, 0, (uint8_t)(1u << dr_below(r, 8)),
           "run.block_start", A_CORRUPT | A_RCORRUPT);
    dc_add(cs, f->name, b->off + b->len - 1, K_FLIP, 0, 0x80, "run.block_tag",
           A_CORRUPT | A_RCORRUPT);
    if (pick[i] > 0)
      dc_add(cs, f->name, b->off, K_TRUNC, 0, 0, "run.block_boundary",
             A_CORRUPT);
  }
  if (m->nblk) {
    dc_add(cs, f->name, m->ix_off, K_TRUNC, 0, 0, "run.blocks_end", A_CORRUPT);
    dc_region(cs, r, f, m->ix_off, m->ix_len, "run.index",
              KF_FLIP | KF_ZERO | KF_TRUNC, 0);
    dc_add(cs, f->name, m->ix_off + m->ix_len - 1, K_FLIP, 0, 0x01,
           "run.index_tag", A_CORRUPT);
  }
  dc_region(cs, r, f, f->len - RUN_FOOT, RUN_FOOT, "run.footer",
            KF_FLIP | KF_ZERO | KF_TRUNC, 0);
  dc_add(cs, f->name, f->len - RUN_FOOT, K_TRUNC, 0, 0, "run.footer_start",
         A_CORRUPT);
  dc_add(cs, f->name, f->len - 1, K_TRUNC, 0, 0, "run.end", A_CORRUPT);
  dc_add(cs, f->name, f->len, K_APPEND, 1 + (uint32_t)dr_below(r, 64), 0,
         "run.append", A_CORRUPT);
  dc_add(cs, f->name, 0, K_TRUNC, 0, 0, "run.all", A_CORRUPT);
  for (size_t i = n0; i < cs->n; i++)
    cs->v[i].allow &= ~A_OK;
}

static void damage_cases(const model *m, drng *r, dcases *cs) {
  /* The untouched store: it must open with the full state. */
  dc_add(cs, HDR_NAME, 0, K_NONE, 0, 0, "none", A_OK);

  /* keyjournal.hdr: each field; a cut or lost magic is rule 1 (KJ_EKEY). */
  const dfile *h = m->hdr;
  for (size_t i = 0; i < NFIELDS(hdr_fields); i++)
    dc_region(cs, r, h, hdr_fields[i].off, hdr_fields[i].len,
              hdr_fields[i].name, KF_FLIP | KF_ZERO, i == 0 ? A_EKEY : 0);
  dc_add(cs, HDR_NAME, 0, K_TRUNC, 0, 0, "hdr.all", A_OK | A_CORRUPT | A_EKEY);
  dc_region(cs, r, h, 1, HDR_BYTES - 1, "hdr.all", KF_TRUNC, A_EKEY);

  if (m->run)
    run_regions(cs, r, m);

  /* Segments: the base one, the newest, one between; every header field of
   * each. Then chosen frames: the first of the base segment, the first of
   * the newest, the newest commit, the sync marker of the clean close, a
   * sync marker between (kj_store_sync), one at random. */
  size_t pick[3] = {0, m->nseg - 1,
                    m->nseg > 2 ? 1 + dr_below(r, m->nseg - 2) : 0};
  for (size_t i = 0; i < 3; i++) {
    if (i > 0 && (pick[i] == pick[0] || (i == 2 && pick[2] == pick[1])))
      continue;
    const dseg *s = &m->seg[pick[i]];
    for (size_t j = 0; j < NFIELDS(seg_fields); j++)
      dc_region(cs, r, s->f, seg_fields[j].off, seg_fields[j].len,
                seg_fields[j].name, KF_FLIP | KF_ZERO, 0);
    dc_region(cs, r, s->f, 0, SEG_HDR, "seg.header", KF_TRUNC, 0);
  }
  const dseg *first = &m->seg[0], *last = &m->seg[m->nseg - 1];
  typedef struct fpick {
    size_t s, f;
  } fpick;
  fpick fp[6];
  size_t nfp = 0;
  if (first->nfr)
    fp[nfp++] = (fpick){0, 0};
  if (last->nfr)
    fp[nfp++] = (fpick){m->nseg - 1, 0};
  if (last->nfr)
    fp[nfp++] = (fpick){m->nseg - 1, last->nfr - 1};
  if (last->nfr >= 2)
    fp[nfp++] = (fpick){m->nseg - 1, last->nfr - 2};
  for (size_t i = 0; i < m->nseg && nfp < 5; i++)
    for (size_t j = 0; j < m->seg[i].nfr; j++)
      if (m->seg[i].fr[j].type == FRAME_MARKER &&
          !(i == m->nseg - 1 && j == last->nfr - 1)) {
        fp[nfp++] = (fpick){i, j};
        i = m->nseg;
        break;
      }
  size_t si = (size_t)dr_below(r, m->nseg);
  if (m->seg[si].nfr)
    fp[nfp++] = (fpick){si, (size_t)dr_below(r, m->seg[si].nfr)};
  for (size_t i = 0; i < nfp; i++) {
    int dup = 0;
    for (size_t j = 0; j < i; j++)
      dup |= fp[j].s == fp[i].s && fp[j].f == fp[i].f;
    if (!dup)
      frame_regions(cs, r, m->seg[fp[i].s].f, &m->seg[fp[i].s].fr[fp[i].f]);
  }

  /* Slack after the frames: in a segment before the newest (it was synced
   * whole at its roll-over) and in the newest, where nothing follows the
   * clean close's sync marker: a flip or a cut there may be cut or
   * ignored, never lose a row. */
  for (size_t i = 0; i < m->nseg; i++) {
    const dseg *s = &m->seg[i];
    if (s->end >= s->f->len || (i != m->nseg - 1 && i != si && i != 0))
      continue;
    size_t slack = s->f->len - s->end;
    dc_region(cs, r, s->f, s->end, slack, "seg.slack", KF_FLIP | KF_TRUNC, 0);
    if (i == m->nseg - 1) {
      dc_add(cs, s->f->name, s->end, K_FLIP, 0, 0x01, "seg.slack_start",
             A_OK | A_CORRUPT);
      dc_add(cs, s->f->name, s->f->len - 1, K_FLIP, 0, 0x80, "seg.slack_end",
             A_OK | A_CORRUPT);
      dc_add(cs, s->f->name, s->end, K_TRUNC, 0, 0, "seg.slack_start",
             A_OK | A_CORRUPT);
      dc_add(cs, s->f->name, s->end - 1, K_TRUNC, 0, 0, "seg.frames_end",
             A_OK | A_CORRUPT);
    }
  }

  /* Bytes appended to each kind of file; every file cut to nothing. */
  dc_add(cs, HDR_NAME, HDR_BYTES, K_APPEND, 1, 0, "hdr.append",
         A_OK | A_CORRUPT | A_EKEY);
  dc_add(cs, first->f->name, first->f->len, K_APPEND,
         1 + (uint32_t)dr_below(r, 64), 0, "seg.append", A_OK | A_CORRUPT);
  if (m->nseg > 1)
    dc_add(cs, last->f->name, last->f->len, K_APPEND,
           1 + (uint32_t)dr_below(r, 64), 0, "seg.append", A_OK | A_CORRUPT);
  dc_add(cs, last->f->name, 0, K_TRUNC, 0, 0, "seg.all", A_OK | A_CORRUPT);

  /* Two places where the refusal may name another offset or file: a run
   * header whose bytes 0..71 changed fails its checksum, which the engine
   * reports at the checksum's offset (72; a lost magic at 0); and a
   * segment before the newest cut at a frame boundary ends cleanly, so the
   * next segment's first seq is what no longer matches (FORMAT.md 5.4,
   * "frames missing"). */
  for (size_t i = 0; i < cs->n; i++) {
    dcase *k = &cs->v[i];
    if (m->run && !strcmp(k->file, m->run->name) && k->off < RUN_XXH_AT &&
        (k->kind == K_FLIP || k->kind == K_ZERO))
      k->report_at = RUN_XXH_AT;
    for (size_t j = 0; k->kind == K_TRUNC && j + 1 < m->nseg; j++)
      if (!strcmp(k->file, m->seg[j].f->name))
        snprintf(k->alt, sizeof k->alt, "%s", m->seg[j + 1].f->name);
  }
}

typedef struct dctx {
  const char *work;
  const dset *orig;
  const dcases *cs;
  const ora_obuf *state;
  ora_campaign *c;
  uint64_t seed;
  size_t ops;
} dctx;

/* In the worker: write the store with case i's edit, judge it. */
static void damage_case_fn(void *arg, size_t i, ora_obuf *why, ora_obuf *info) {
  dctx *x = arg;
  const dcase *k = &x->cs->v[i];
  const dfile *f = dset_get(x->orig, k->file);
  if (!f) {
    ora_obuf_addf(why, "no file %s", k->file);
    return;
  }
  if (selftest_break == 5 && i == 1)
    raise(SIGKILL); /* a crash */
  while (selftest_break == 5 && i == 2)
    pause(); /* a hang */
  uint8_t *p = malloc(f->len + (k->kind == K_APPEND ? k->n : 0) + 1);
  if (!p) {
    ora_obuf_addf(why, "out of memory");
    return;
  }
  memcpy(p, f->p, f->len);
  size_t len = f->len;
  switch (k->kind) {
  case K_APPEND:
    memset(p + len, 0xa5, k->n);
    len += k->n;
    break;
  case K_FLIP:
    p[k->off] ^= k->mask;
    break;
  case K_ZERO:
    memset(p + k->off, 0, k->n);
    break;
  case K_TRUNC:
    len = (size_t)k->off;
    break;
  default:
    break;
  }
  /* An edit that changed no byte (zeros over zeros) leaves the store as it
   * was: it must open with its state. */
  int same = len == f->len && !memcmp(p, f->p, len);
  if (dset_store_with(x->orig, x->work, k->file, p, len) != 0) {
    ora_obuf_addf(why, "writing %s: %s", x->work, strerror(errno));
  } else {
    expect e = {x->state,
                selftest_break == 3 ? "no-such-file.kjl" : k->file,
                k->alt[0] ? k->alt : NULL,
                1,
                k->report_at,
                k->allow | (same ? A_OK : 0),
                NULL};
    judge(x->work, &e, why, info);
  }
  free(p);
}

static void damage_result(void *arg, size_t i, int bad, const char *why,
                          const char *info, int64_t ms) {
  dctx *x = arg;
  const dcase *k = &x->cs->v[i];
  char desc[160];
  dc_desc(k, desc, sizeof desc);
  if (verbose())
    fprintf(stderr, "damage: %s region=%s %s: %s%s(%" PRId64 " ms)\n", desc,
            k->region, bad ? "DIVERGENCE" : "ok", info, bad ? why : "", ms);
  if (bad) {
    x->c->divergences++;
    ora_obuf_addf(&x->c->report,
                  "damage: seed=%" PRIu64 " ops=%zu %s region=%s "
                  "outcome=%s[%s] (replay: ORA_DAMAGE_ONLY='%s')\n",
                  x->seed, x->ops, desc, k->region, why, info, desc);
  }
}

static int build_damage_store(const char *dir, uint64_t seed, size_t n,
                              ora_obuf *why) {
  drng r = {seed ^ 0x64616d6167650000ull};
  kj_store *s = NULL;
  int rc = store_open(dir, 1, &s, why);
  if (rc)
    return rc;
  size_t before = n * 2 / 5, mid = (n - before) / 2;
  if (!(rc = write_ops(s, &r, before, why)) && !(rc = put_bulk(s, seed, why)) &&
      !(rc = checkpoint(s, why)) && !(rc = write_ops(s, &r, mid, why))) {
    rc = kj_store_sync(s); /* a sync marker between commits */
    if (rc)
      ora_obuf_addf(why, "sync: %s", st_name(rc));
  }
  if (!rc)
    rc = write_ops(s, &r, n - before - mid, why);
  if (!rc)
    rc = put_sentinel(s, why);
  int crc = store_close(s, why);
  return rc ? rc : crc;
}

/* The recorded full state of the store in dir (selftest 1: one row less). */
static int record_state(const char *dir, ora_obuf *state, ora_obuf *why) {
  kj_store *s = NULL;
  int rc = store_open(dir, 0, &s, why);
  if (rc)
    return rc;
  if (dump_store(s, state, why) != 0)
    rc = KJ_EIO;
  int crc = store_close(s, why);
  if (!rc && selftest_break == 1 && state->len) {
    uint8_t *nl = memchr(state->p, '\n', state->len);
    size_t cut = (size_t)(nl - state->p) + 1;
    memmove(state->p, state->p + cut, state->len - cut);
    state->len -= cut;
  }
  return rc ? rc : crc;
}

static void report_setup(ora_campaign *c, const char *what, uint64_t seed,
                         size_t ops, ora_obuf *why) {
  ora_obuf_addf(&c->report, "%s: seed=%" PRIu64 " ops=%zu setup failed: %s\n",
                what, seed, ops, obuf_str(why));
}

/* ---- damage to a store whose process was killed -------------------------
 *
 * A killed store has no sync marker and its header's record is the one of
 * its last roll-over, so the frames written since are covered only by the
 * evidence later frames carry (FORMAT.md rule 5.6.2: a frame that records
 * seq q as synced proves q was). The child that builds it commits one
 * frame at a time and dies without closing; it also keeps the header of
 * its first roll-over, whose record lags further (a later header rewrite
 * that failed leaves such a header, and the journal goes on), and, after
 * that roll-over, makes one commit whose frame ends exactly at the end of
 * its segment (which recovery must read like any other). The parent
 * replays the same commits on a memory store for the state after each.
 *
 * For each header, the last frames of the newest segments are zeroed or
 * get a flipped byte. With evidence that the frame was synced (a later
 * frame claims it, the record claims it, or it lies in a segment before
 * the record's), the open must fail with KJ_ECORRUPT naming the segment
 * and an offset at or before the damage; without, it may also cut the
 * frame and everything after it as a torn tail, and must then hold
 * exactly the state before that frame. */

#define KILL_SEGMENTS 4u /* the killed store has at least this many */

typedef struct kcase {
  int old_header;
  size_t seg, fr; /* in the model */
  int kind;       /* K_ZERO (the whole frame), K_FLIP (a body byte), or 0:
                     untouched */
  size_t commit;  /* the damaged frame is commit number commit (1-based) */
  int evidence;
  int emptied; /* the newest segment's frames zeroed too (as if the process
                  died right after a roll-over) */
} kcase;

typedef struct kworld {
  dset d;
  model m;
  uint8_t old_hdr[HDR_BYTES];
  ora_obuf *states; /* [ncommits + 1]: after the first j commits */
  size_t ncommits;
  kcase *v;
  size_t n;
  const char *work;
  ora_campaign *c;
  uint64_t seed;
} kworld;

static void kworld_free(kworld *w) {
  for (size_t i = 0; w->states && i <= w->ncommits; i++)
    ora_obuf_free(&w->states[i]);
  free(w->states);
  free(w->v);
  model_free(&w->m);
  dset_free(&w->d);
}

/* The child: commit one frame at a time until the store has
 * KILL_SEGMENTS segments and a few frames in the newest, keeping the
 * header of the first roll-over in old_path, then die. */
/* The commit that fills its segment to the last byte: a put of vlen bytes
 * drawn from the seed under a fixed key. */
static int fill_put(kj_store *s, uint64_t seed, size_t vlen) {
  uint8_t *v = malloc(vlen ? vlen : 1);
  if (!v)
    return KJ_ENOMEM;
  drng r = {seed ^ 0x66696c6c00000000ull ^ vlen};
  for (size_t i = 0; i < vlen; i++)
    v[i] = (uint8_t)dr_next(&r);
  int rc = kj_put(s, NULL, 1, "fill", 4, v, vlen);
  free(v);
  return rc;
}

/* Where the frames of dir's newest segment end, and its size. */
static int newest_end(const char *dir, size_t *end, size_t *size) {
  dset d;
  model m;
  ora_obuf why = {0};
  int rc = -1;
  if (dset_load(dir, &d) == 0) {
    if (model_parse(&d, &m, &why) == 0) {
      *end = m.seg[m.nseg - 1].end;
      *size = m.seg[m.nseg - 1].f->len;
      rc = 0;
    }
    model_free(&m);
    dset_free(&d);
  }
  ora_obuf_free(&why);
  return rc;
}

/* Once the first roll-over is behind: a put whose frame ends exactly at
 * its segment's end (the writer allows it; recovery must read it back).
 * A first put of 200 bytes measures a put's frame overhead (lengths of 128
 * bytes to 16 KiB take the same room), the second takes what is left. Appends
 * the commits' numbers and value lengths to fills. 1: done, 0: not this time,
 * -1: failed. */
static int fill_segment(kj_store *s, const char *dir, uint64_t seed,
                        size_t *commits, size_t fills[2][2]) {
  size_t end0, end1, size;
  if (newest_end(dir, &end0, &size) || size - end0 < 700)
    return 0;
  if (fill_put(s, seed, 200))
    return -1;
  fills[0][0] = ++*commits;
  fills[0][1] = 200;
  if (newest_end(dir, &end1, &size) || end1 <= end0)
    return -1;
  size_t overhead = end1 - end0 - 200, left = size - end1;
  if (left <= overhead + 1)
    return -1;
  if (fill_put(s, seed, left - overhead))
    return -1;
  fills[1][0] = ++*commits;
  fills[1][1] = left - overhead;
  size_t end2;
  return newest_end(dir, &end2, &size) == 0 && end2 == size ? 1 : -1;
}

static void killed_child(const char *dir, const char *old_path,
                         const char *fill_path, uint64_t seed) {
  drng r = {seed ^ 0x6b696c6c65640000ull};
  kj_store *s = NULL;
  ora_obuf why = {0};
  if (store_open(dir, 1, &s, &why))
    _exit(2);
  int kept = 0, filled = 0;
  size_t extra = 0, commits = 0, fills[2][2] = {{0, 0}, {0, 0}};
  for (size_t i = 0; i < 4000 && extra < 3; i++) {
    if (write_ops(s, &r, 1, &why))
      _exit(3);
    commits++;
    uint64_t segs = segment_files(s);
    if (!filled && segs >= 2) {
      int f = fill_segment(s, dir, seed, &commits, fills);
      if (f < 0 ||
          write_whole(fill_path, (const uint8_t *)fills, sizeof fills) != 0)
        _exit(6);
      filled = f;
    }
    if (!kept && segs >= 2) {
      char *h = path_join(dir, HDR_NAME);
      uint8_t *p = NULL;
      size_t n = 0;
      if (!h || read_whole(h, &p, &n) || n != HDR_BYTES ||
          write_whole(old_path, p, n))
        _exit(4);
      free(p);
      free(h);
      kept = 1;
    }
    extra += segs >= KILL_SEGMENTS;
  }
  /* No close: no marker, no new record. */
  _exit(extra >= 3 && filled ? 0 : 5);
}

/* Has any frame after seq q (in the journal's order) recorded q as
 * synced, or do the record or the roll-overs claim it? */
static int synced_evidence(const model *m, const uint8_t *hdr, size_t si,
                           uint64_t q) {
  uint64_t rec_seg = get64(hdr + 64), rec_seq = get64(hdr + 72);
  if (rec_seq >= q || m->seg[si].no < rec_seg)
    return 1;
  for (size_t i = si; i < m->nseg; i++)
    for (size_t j = 0; j < m->seg[i].nfr; j++)
      if (m->seg[i].fr[j].seq > q &&
          get64(m->seg[i].f->p + m->seg[i].fr[j].off + 16) >= q)
        return 1;
  return 0;
}

static int build_killed(const char *root, uint64_t seed, kworld *w,
                        ora_obuf *why) {
  char *dir = path_join(root, "k"), *old = path_join(root, "k-old.hdr"),
       *fill = path_join(root, "k-fill");
  size_t fills[2][2] = {{0, 0}, {0, 0}};
  int rc = KJ_ENOMEM;
  if (!dir || !old || !fill)
    goto out;
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0)
    killed_child(dir, old, fill, seed);
  int st = 0;
  while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
    ;
  if (pid < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    ora_obuf_addf(why, "the killed store's writer failed (status %d)", st);
    rc = KJ_EIO;
    goto out;
  }
  uint8_t *p = NULL;
  size_t n = 0;
  if (read_whole(old, &p, &n) || n != HDR_BYTES) {
    free(p);
    ora_obuf_addf(why, "no header of the first roll-over");
    rc = KJ_EIO;
    goto out;
  }
  memcpy(w->old_hdr, p, HDR_BYTES);
  free(p);
  if (read_whole(fill, &p, &n) || n != sizeof fills) {
    free(p);
    ora_obuf_addf(why, "no record of the segment-filling commit");
    rc = KJ_EIO;
    goto out;
  }
  memcpy(fills, p, sizeof fills);
  free(p);
  if (dset_load(dir, &w->d) || model_parse(&w->d, &w->m, why)) {
    rc = KJ_EIO;
    goto out;
  }
  /* The commits' states, replayed on a memory store. */
  for (size_t i = 0; i < w->m.nseg; i++)
    for (size_t j = 0; j < w->m.seg[i].nfr; j++)
      w->ncommits += w->m.seg[i].fr[j].type == 1;
  w->states = calloc(w->ncommits + 1, sizeof *w->states);
  if (!w->states)
    goto out;
  drng r = {seed ^ 0x6b696c6c65640000ull};
  kj_options o;
  store_options(&o, 0, KJ_OPEN_CREATE);
  kj_store *s = NULL;
  if ((rc = kj_store_open(NULL, &o, &s, NULL)) != KJ_OK) {
    ora_obuf_addf(why, "memory store: %s", st_name(rc));
    goto out;
  }
  rc = dump_store(s, &w->states[0], why) ? KJ_EIO : KJ_OK;
  for (size_t j = 1; !rc && j <= w->ncommits; j++) {
    int k = j == fills[0][0] ? 0 : j == fills[1][0] ? 1 : -1;
    rc = k < 0 ? write_ops(s, &r, 1, why) : fill_put(s, seed, fills[k][1]);
    if (!rc)
      rc = dump_store(s, &w->states[j], why) ? KJ_EIO : KJ_OK;
  }
  kj_store_close(s);
out:
  free(dir);
  free(old);
  free(fill);
  return rc;
}

static void kcase_desc(const kworld *w, const kcase *k, char *out, size_t n) {
  const dseg *s = &w->m.seg[k->seg];
  if (!k->kind)
    snprintf(out, n, "killed %s header, untouched",
             k->old_header ? "first-roll-over" : "last");
  else
    snprintf(out, n, "killed %s header%s, %s frame seq %" PRIu64 " of %s",
             k->old_header ? "first-roll-over" : "last",
             k->emptied ? ", newest segment emptied" : "",
             k->kind == K_ZERO ? "zeroed" : "flipped", s->fr[k->fr].seq,
             s->f->name);
}

static void killed_cases(kworld *w) {
  size_t cap = 64, commit = 0;
  w->v = calloc(cap, sizeof *w->v);
  if (!w->v)
    return;
  const model *m = &w->m;
  for (int h = 0; h < 2; h++) /* as the store was left */
    w->v[w->n++].old_header = h;
  for (size_t i = 0; i < m->nseg; i++)
    for (size_t j = 0; j < m->seg[i].nfr; j++) {
      const dframe *f = &m->seg[i].fr[j];
      commit += f->type == 1;
      /* The last frames of the newest segment, and the last frame of each
       * of the two before it. */
      int newest = i + 1 == m->nseg;
      if (f->type != 1 || i + 3 < m->nseg ||
          (newest ? j + 3 < m->seg[i].nfr : j + 1 < m->seg[i].nfr))
        continue;
      for (int h = 0; h < 2; h++)
        for (int kind = 0; kind < 2 && w->n < cap; kind++) {
          kcase *k = &w->v[w->n++];
          k->old_header = h;
          k->seg = i;
          k->fr = j;
          k->kind = kind ? K_FLIP : K_ZERO;
          k->commit = commit;
          k->evidence =
              synced_evidence(m, h ? w->old_hdr : m->hdr->p, i, f->seq);
        }
      /* The process died right after rolling over to the newest segment,
       * and its header lags: the last frame of the segment before, damaged,
       * has no evidence, and its cut removes the (empty) newest segment.
       * (Zeroed, it would look like the segment's clean end, and the
       * newest segment's first seq would no longer match: rule 5.4.) */
      if (i + 2 == m->nseg && j + 1 == m->seg[i].nfr && w->n < cap &&
          m->seg[i].no >= get64(w->old_hdr + 64) &&
          get64(w->old_hdr + 72) < f->seq) {
        kcase *k = &w->v[w->n++];
        k->old_header = 1;
        k->seg = i;
        k->fr = j;
        k->kind = K_FLIP; /* stray bytes, not a clean end */
        k->commit = commit;
        k->emptied = 1;
      }
    }
}

/* A store that an open may repair (cut a torn tail, remove the segments
 * after it): open it through the fault VFS, commit twice, and lose power
 * before anything else is synced. What the repair removed must stay
 * removed, and the commits must survive: the reopen holds exactly the
 * state seen before the power loss. */
static void crash_after_repair(const char *dir, uint64_t seed, ora_obuf *why,
                               ora_obuf *info) {
  ora_fault_vfs *fv = ora_fault_vfs_new(seed);
  if (!fv)
    return;
  kj_options o;
  store_options(&o, 0, KJ_OPEN_EXISTING);
  o.vfs = ora_fault_vfs_get(fv);
  kj_store *s = NULL;
  ora_obuf want = {0};
  if (kj_store_open(dir, &o, &s, NULL) == KJ_OK) {
    /* Two commits: one would stand exactly where the cut frame stood, and
     * the removed segment's first seq would follow it again. */
    int rc = kj_put(s, NULL, 1, "after-repair", 12, "row", 3);
    if (rc == KJ_OK)
      rc = kj_put(s, NULL, 1, "after-repair", 12, "row 2", 5);
    if (rc == KJ_OK && dump_store(s, &want, why) == 0) {
      ora_fault_vfs_set_crash_at(fv, ora_fault_vfs_ops(fv) + 1);
      kj_store_close(s); /* every call fails: the process is gone */
      s = NULL;
      ora_fault_vfs_crash(fv, ORA_CRASH_DROP);
      expect e = {&want, NULL, NULL, 0, 0, A_OK, NULL};
      open_judge(dir, "after-repair-crash", 0, &e, why, info);
    } else if (rc) {
      ora_obuf_addf(why, "commit after the repair: %s; ", st_name(rc));
    }
    if (s)
      kj_store_close(s);
  }
  ora_obuf_free(&want);
  ora_fault_vfs_free(fv);
}

static void killed_case_fn(void *arg, size_t i, ora_obuf *why, ora_obuf *info) {
  kworld *w = arg;
  const kcase *k = &w->v[i];
  const dseg *s = &w->m.seg[k->seg];
  const dframe *f = &s->fr[k->fr];
  dset d;
  if (dset_clone(&w->d, &d)) {
    ora_obuf_addf(why, "out of memory");
    return;
  }
  if (k->old_header)
    dset_set(&d, HDR_NAME, w->old_hdr, HDR_BYTES);
  dfile *g = dset_get(&d, s->f->name);
  size_t at = f->off;
  if (k->emptied) {
    dfile *nw = dset_get(&d, w->m.seg[w->m.nseg - 1].f->name);
    memset(nw->p + SEG_HDR, 0, nw->len - SEG_HDR);
  }
  if (k->kind == K_ZERO) {
    memset(g->p + f->off, 0, FRAME_HDR + f->len);
  } else if (k->kind == K_FLIP) {
    at = f->off + FRAME_HDR + f->len / 2;
    g->p[at] ^= 0x10;
  }
  if (dset_store(&d, w->work) != 0) {
    ora_obuf_addf(why, "writing %s: %s", w->work, strerror(errno));
  } else if (!k->kind) {
    expect e = {&w->states[w->ncommits], NULL, NULL, 0, 0, A_OK, NULL};
    judge(w->work, &e, why, info);
  } else {
    /* A segment's last frame zeroed looks like its clean end: the next
     * segment's first seq is what no longer matches (rule 5.4). */
    const char *next = k->seg + 1 < w->m.nseg && k->fr + 1 == s->nfr
                           ? w->m.seg[k->seg + 1].f->name
                           : NULL;
    int full = k->evidence || selftest_break == 6;
    expect e = {
        &w->states[full ? w->ncommits : k->commit - 1], s->f->name, next, 1, at,
        k->evidence ? A_CORRUPT : A_OK | A_CORRUPT,     NULL};
    judge(w->work, &e, why, info);
    if (!k->evidence && dset_store(&d, w->work) == 0)
      crash_after_repair(w->work, w->seed, why, info);
  }
  dset_free(&d);
}

static void killed_result(void *arg, size_t i, int bad, const char *why,
                          const char *info, int64_t ms) {
  kworld *w = arg;
  char desc[200];
  kcase_desc(w, &w->v[i], desc, sizeof desc);
  if (verbose())
    fprintf(stderr, "damage: %s (%s): %s: %s%s(%" PRId64 " ms)\n", desc,
            w->v[i].evidence ? "synced" : "may be cut",
            bad ? "DIVERGENCE" : "ok", info, bad ? why : "", ms);
  if (bad) {
    w->c->divergences++;
    ora_obuf_addf(&w->c->report,
                  "damage: seed=%" PRIu64 " %s (%s) outcome=%s[%s] (replay: "
                  "ORA_DAMAGE_ONLY='%s')\n",
                  w->seed, desc,
                  w->v[i].evidence ? "proved synced" : "may be cut", why, info,
                  desc);
  }
}

/* The killed store's cases (part of ora_damage_check). */
static int killed_check(ora_campaign *c, uint64_t seed, const char *root,
                        ora_obuf *why) {
  kworld w;
  memset(&w, 0, sizeof w);
  char *work = path_join(root, "kw");
  int rc = work ? build_killed(root, seed, &w, why) : KJ_ENOMEM;
  if (!rc) {
    killed_cases(&w);
    w.work = work;
    w.c = c;
    w.seed = seed;
    const char *only = getenv("ORA_DAMAGE_ONLY");
    uint8_t *skip = calloc(w.n + 1, 1);
    if (!skip) {
      rc = KJ_ENOMEM;
    } else {
      for (size_t i = 0; i < w.n; i++) {
        char desc[200];
        kcase_desc(&w, &w.v[i], desc, sizeof desc);
        skip[i] = only && *only && strcmp(only, desc);
        c->damage_cases += !skip[i];
      }
      run_cases(c, w.n, skip, killed_case_fn, &w, killed_result, &w);
      free(skip);
    }
  }
  kworld_free(&w);
  free(work);
  return rc;
}

int ora_damage_check(ora_campaign *c, uint64_t seed, size_t ops) {
  size_t n = ops < MIN_OPS ? MIN_OPS : ops;
  ora_obuf why = {0}, state = {0};
  char *root = make_root(), *orig = NULL, *work = NULL;
  dset d = {0};
  model m;
  memset(&m, 0, sizeof m);
  dcases cs = {0};
  int rc = KJ_ENOMEM;
  if (!root || !(orig = path_join(root, "orig")) ||
      !(work = path_join(root, "w"))) {
    ora_obuf_addf(&why, "temp directory: %s", strerror(errno));
    rc = KJ_EIO;
    goto out;
  }
  if ((rc = build_damage_store(orig, seed, n, &why)) ||
      (rc = record_state(orig, &state, &why)))
    goto out;
  if (dset_load(orig, &d) != 0 || model_parse(&d, &m, &why) != 0) {
    ora_obuf_addf(&why, " (reading %s)", orig);
    rc = KJ_EIO;
    goto out;
  }
  if (m.run && m.run_unread) {
    c->divergences++;
    ora_obuf_addf(&c->report,
                  "damage: seed=%" PRIu64 " ops=%zu file=%s: the run as "
                  "written: %s\n",
                  seed, ops, m.run->name, m.run_unread);
  }
  drng r = {seed * 0x2545f4914f6cdd1dull + 0xd3a};
  damage_cases(&m, &r, &cs);
  const char *only = getenv("ORA_DAMAGE_ONLY");
  uint8_t *skip = calloc(cs.n + 1, 1);
  if (!skip) {
    rc = KJ_ENOMEM;
    goto out;
  }
  for (size_t i = 0; i < cs.n; i++) {
    char desc[160];
    dc_desc(&cs.v[i], desc, sizeof desc);
    skip[i] = only && *only && strcmp(only, desc);
    c->damage_cases += !skip[i];
    c->run_cases += !skip[i] && m.run && !strcmp(cs.v[i].file, m.run->name);
  }
  dctx x = {work, &d, &cs, &state, c, seed, ops};
  run_cases(c, cs.n, skip, damage_case_fn, &x, damage_result, &x);
  free(skip);
  rc = killed_check(c, seed, root, &why);
out:
  if (rc)
    report_setup(c, "damage", seed, ops, &why);
  free(cs.v);
  model_free(&m);
  dset_free(&d);
  ora_obuf_free(&state);
  ora_obuf_free(&why);
  if (root)
    rm_tree(root);
  free(orig);
  free(work);
  free(root);
  return rc;
}

/* ---- tamper -----------------------------------------------------------------
 */

/* The histories (build_tamper):
 *   OLD   phase 1 and bulk rows, checkpoint 1 (run S1), phase 2, clean
 *         close
 *   FORK  then phase 3, checkpoint 2 (S2), phase 4a, clean close
 *   A     FORK continued: phase 4b, at least two roll-overs, clean close -
 *         the store every case edits
 *   BS    FORK continued with other commits (a few), clean close
 *   B     BS continued: checkpoint, commits until it is longer than A's
 *         record, clean close
 * A and B share the run S2 and the frames up to FORK's last.
 *   A2, C2 two stores created afresh under the same key, each with the same
 *         ops (one stream of the generator) and two roll-overs: only their
 *         store ids tell their journals apart.
 *   A2R, C2R  A2 and C2 reopened and checkpointed: two runs at the same S
 *         that only their store ids (and nonce prefixes) tell apart. */
typedef struct tworld {
  dset a, old, fork, bs, b;
  dset a2, c2; /* two new stores under the same key: the same ops, other
                  store ids, no run (their journals start at seq 1) */
  dset a2r, c2r;
  model ma, mold, mfork, mbs, mb;
  ora_obuf state; /* A's */
} tworld;

static void tworld_free(tworld *w) {
  model_free(&w->ma);
  model_free(&w->mold);
  model_free(&w->mfork);
  model_free(&w->mbs);
  model_free(&w->mb);
  dset_free(&w->a);
  dset_free(&w->old);
  dset_free(&w->fork);
  dset_free(&w->bs);
  dset_free(&w->b);
  dset_free(&w->a2);
  dset_free(&w->c2);
  dset_free(&w->a2r);
  dset_free(&w->c2r);
  ora_obuf_free(&w->state);
}

static uint64_t max_segno(const char *dir) {
  DIR *dp = opendir(dir);
  uint64_t mx = 0, no;
  struct dirent *de;
  while (dp && (de = readdir(dp)))
    if (parse_numbered(de->d_name, "journal-", ".kjl", &no) && no > mx)
      mx = no;
  if (dp)
    closedir(dp);
  return mx;
}

/* The first commit after the fork, in both histories: the same size, other
 * bytes, so that each history's frame fits where the other's stands. */
static int fork_commit(kj_store *s, drng *r, ora_obuf *why) {
  uint8_t v[32];
  for (size_t i = 0; i < sizeof v; i++)
    v[i] = (uint8_t)dr_next(r);
  int rc = kj_put(s, NULL, 2, "fork", 4, v, sizeof v);
  if (rc)
    ora_obuf_addf(why, "fork commit: %s", st_name(rc));
  return rc;
}

static int build_tamper(const char *root, uint64_t seed, size_t n, tworld *w,
                        ora_obuf *why) {
  drng r = {seed ^ 0x74616d7065720000ull};
  char *a = path_join(root, "a"), *b = path_join(root, "b");
  kj_store *s = NULL;
  int rc = KJ_ENOMEM;
  if (!a || !b)
    goto out;
  size_t p = n / 5;
  /* OLD */
  if ((rc = store_open(a, 1, &s, why)) || (rc = write_ops(s, &r, p, why)) ||
      (rc = put_bulk(s, seed, why)) || (rc = checkpoint(s, why)) ||
      (rc = write_ops(s, &r, p, why)) || (rc = put_sentinel(s, why)))
    goto out;
  rc = store_close(s, why);
  s = NULL;
  if (rc || (rc = dset_load(a, &w->old) ? KJ_EIO : 0))
    goto out;
  /* FORK */
  if ((rc = store_open(a, 0, &s, why)) || (rc = write_ops(s, &r, p, why)) ||
      (rc = checkpoint(s, why)) || (rc = write_ops(s, &r, p / 2, why)))
    goto out;
  rc = store_close(s, why);
  s = NULL;
  if (rc || (rc = dset_load(a, &w->fork) ? KJ_EIO : 0))
    goto out;
  /* A: the rest, and at least two roll-overs after the fork, so that the
   * fork's segment is not A's newest. */
  if ((rc = store_open(a, 0, &s, why)) || (rc = fork_commit(s, &r, why)))
    goto out;
  uint64_t segs = segment_files(s);
  rc = write_ops(s, &r, n - 3 * p - p / 2, why);
  for (int i = 0; !rc && segment_files(s) < segs + 2 && i < 1000; i++)
    rc = write_ops(s, &r, MAX_TXN_OPS, why);
  if (rc)
    goto out;
  rc = store_close(s, why);
  s = NULL;
  if (rc || (rc = dset_load(a, &w->a) ? KJ_EIO : 0))
    goto out;
  if (model_parse(&w->a, &w->ma, why) || model_parse(&w->old, &w->mold, why) ||
      model_parse(&w->fork, &w->mfork, why)) {
    rc = KJ_EIO;
    goto out;
  }
  if ((rc = record_state(a, &w->state, why)))
    goto out;
  /* BS and B: other commits (another stream of the generator). */
  drng rb = {seed ^ 0x6f74686572000000ull};
  if (dset_store(&w->fork, b) != 0) {
    rc = KJ_EIO;
    goto out;
  }
  if ((rc = store_open(b, 0, &s, why)) || (rc = fork_commit(s, &rb, why)) ||
      (rc = write_ops(s, &rb, MAX_TXN_OPS, why)))
    goto out;
  rc = store_close(s, why);
  s = NULL;
  if (rc || (rc = dset_load(b, &w->bs) ? KJ_EIO : 0))
    goto out;
  if ((rc = store_open(b, 0, &s, why)) ||
      (rc = write_ops(s, &rb, n / 10, why)) || (rc = checkpoint(s, why)))
    goto out;
  for (int i = 0;
       !rc && i < 4000 &&
       (last_seq(s) <= w->ma.rec_seq + 2 || max_segno(b) < w->ma.rec_seg);
       i++)
    rc = write_ops(s, &rb, MAX_TXN_OPS, why);
  if (rc)
    goto out;
  rc = store_close(s, why);
  s = NULL;
  if (rc || (rc = dset_load(b, &w->b) ? KJ_EIO : 0))
    goto out;
  if (model_parse(&w->b, &w->mb, why) || model_parse(&w->bs, &w->mbs, why)) {
    rc = KJ_EIO;
    goto out;
  }
  /* A2 and C2. */
  for (int i = 0; i < 2; i++) {
    char *d = path_join(root, i ? "c2" : "a2");
    drng rt = {seed ^ 0x74776f0000000000ull};
    rc = d ? store_open(d, 1, &s, why) : KJ_ENOMEM;
    for (int k = 0; !rc && (k < 2 || segment_files(s) < 3) && k < 1000; k++)
      rc = write_ops(s, &rt, MAX_TXN_OPS, why);
    if (s) {
      int crc = store_close(s, why);
      s = NULL;
      rc = rc ? rc : crc;
    }
    if (!rc && dset_load(d, i ? &w->c2 : &w->a2))
      rc = KJ_EIO;
    /* A2R, C2R: the same, checkpointed. */
    if (!rc && !(rc = store_open(d, 0, &s, why))) {
      rc = checkpoint(s, why);
      int crc = store_close(s, why);
      s = NULL;
      rc = rc ? rc : crc;
    }
    if (!rc && dset_load(d, i ? &w->c2r : &w->a2r))
      rc = KJ_EIO;
    free(d);
    if (rc)
      goto out;
  }
out:
  if (s)
    kj_store_close(s);
  if (rc && !why->len)
    ora_obuf_addf(why, "building the histories: %s", st_name(rc));
  free(a);
  free(b);
  return rc;
}

enum {
  T_NONE,
  T_SWAP_FRAMES, /* a: segment, b, c: frames; relabel */
  T_SWAP_SEGS,   /* a, b: segments; relabel */
  T_COPY_FRAME,  /* a: src segment, b: src frame, c, d: destination */
  T_B_FRAME,     /* v: seq - B's frame over A's */
  T_B_SEG,       /* v: segment number - B's file over A's */
  T_B_EXTRA_SEG, /* v: B's segment after A's newest */
  T_B_RUN,       /* B's run instead of A's */
  T_B_SHORT_ALL, /* BS's files but A's header */
  T_B_ALL,       /* selftest 2: B's files but A's header */
  T_OLD_RUN,     /* a: variant */
  T_OLD_HEADER,  /* a: 0 OLD's header, 1 FORK's */
  T_HDR_FIELD,   /* a: edit */
  T_SEG_FIELD,   /* a: segment, b: edit */
  T_FRAME_FIELD, /* a: segment, b: frame, c: edit */
  T_RUN_FIELD,   /* a: edit */
  T_RUN_BLOCKS,  /* a: 0 swap blocks b and c, 1 copy block b over c */
  T_RUN_FOOTER,  /* the older run's footer over A's */
  T_DELETE,      /* a: what */
  T_CUT,         /* a: frame index from the end of the newest segment */
  T_ZERO_MARKER, /* the clean close's sync marker, all zero */
  T_FORGE_SEG,   /* a: 0 empty, 1 holding a relabeled frame */
  T_MOVE_FRAME,  /* a: segment; its last frame moved to the front of a + 1 */
  T_FOREIGN,     /* C2's journal, store ids rewritten, under A2's header */
  T_FOREIGN_RUN  /* A2R with C2R's run, its store id rewritten */
};

/* Does case op (a: its variant) edit a run file? */
static int tc_is_run(int op, size_t a) {
  return op == T_B_RUN || op == T_OLD_RUN || op == T_RUN_FIELD ||
         op == T_RUN_BLOCKS || op == T_RUN_FOOTER || op == T_FOREIGN_RUN ||
         (op == T_DELETE && a == 0);
}

typedef struct tcase {
  char name[128];
  int op;
  size_t a, b, c, d;
  uint64_t v;
  int relabel;
  unsigned allow;
  const char *want;
} tcase;

typedef struct tcases {
  tcase *v;
  size_t n, cap;
} tcases;

static tcase *tc_add(tcases *cs, int op, unsigned allow, const char *want,
                     const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static tcase *tc_add(tcases *cs, int op, unsigned allow, const char *want,
                     const char *fmt, ...) {
  static tcase dummy;
  if (cs->n == cs->cap) {
    size_t cap = cs->cap ? 2 * cs->cap : 64;
    tcase *v = realloc(cs->v, cap * sizeof *v);
    if (!v)
      return &dummy;
    cs->v = v;
    cs->cap = cap;
  }
  tcase *k = &cs->v[cs->n++];
  memset(k, 0, sizeof *k);
  k->op = op;
  k->allow = allow;
  k->want = want;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(k->name, sizeof k->name, fmt, ap);
  va_end(ap);
  return k;
}

#define AUTH "authentication"

/* Rebuild segment file f: its header, then the frames v[0..n) (whole
 * frames: header and body) back to back, then zeros up to size. -1: they
 * do not fit. */
typedef struct fbytes {
  const uint8_t *p;
  size_t len;
} fbytes;

static int seg_rebuild(dset *d, const char *name, const uint8_t *head,
                       size_t size, const fbytes *v, size_t n) {
  size_t need = SEG_HDR;
  for (size_t i = 0; i < n; i++)
    need += v[i].len;
  if (need > size)
    return -1;
  uint8_t *p = calloc(1, size);
  if (!p)
    return -1;
  memcpy(p, head, SEG_HDR);
  size_t off = SEG_HDR;
  for (size_t i = 0; i < n; i++) {
    memcpy(p + off, v[i].p, v[i].len);
    off += v[i].len;
  }
  dfile *f = dset_set(d, name, p, size);
  free(p);
  return f ? 0 : -1;
}

static fbytes frame_bytes(const dseg *s, size_t i) {
  fbytes b = {s->f->p + s->fr[i].off, FRAME_HDR + s->fr[i].len};
  return b;
}

/* Give the frames of segment file name consecutive seqs from first, and
 * recompute their checksums. */
static void relabel_frames(dset *d, const char *name, uint64_t first) {
  dfile *f = dset_get(d, name);
  size_t off = SEG_HDR;
  while (f && off + FRAME_HDR <= f->len && !memcmp(f->p + off, "KJFR", 4)) {
    uint8_t *h = f->p + off;
    uint32_t len = get32(h + 4);
    if (off + FRAME_HDR + len > f->len)
      break;
    put64(h + 8, first++);
    fix_frame_sum(h);
    off += FRAME_HDR + len;
  }
}

/* Segment s of A with frame i replaced by frame bytes fb (seq set to the
 * replaced frame's and checksum recomputed when relabel). */
static int replace_frame(dset *d, const dseg *s, size_t i, fbytes fb,
                         int relabel) {
  fbytes *v = calloc(s->nfr, sizeof *v);
  uint8_t *copy = malloc(fb.len);
  int rc = -1;
  if (v && copy) {
    memcpy(copy, fb.p, fb.len);
    if (relabel) {
      put64(copy + 8, s->fr[i].seq);
      fix_frame_sum(copy);
    }
    for (size_t j = 0; j < s->nfr; j++)
      v[j] = j == i ? (fbytes){copy, fb.len} : frame_bytes(s, j);
    rc = seg_rebuild(d, s->f->name, s->f->p, s->f->len, v, s->nfr);
  }
  free(v);
  free(copy);
  return rc;
}

static int fits(const dseg *s, size_t i, size_t newlen) {
  return s->end - (FRAME_HDR + s->fr[i].len) + newlen <= s->f->len;
}

/* The other history's frame with seq q: from BS, which still holds the
 * frames right after the fork (B's checkpoint removed them from B), else
 * from B. */
static int other_frame(const tworld *w, uint64_t q, const dseg **s,
                       size_t *fi) {
  size_t si;
  if (model_find(&w->mbs, q, &si, fi)) {
    *s = &w->mbs.seg[si];
    return 1;
  }
  if (model_find(&w->mb, q, &si, fi)) {
    *s = &w->mb.seg[si];
    return 1;
  }
  return 0;
}

/* The other history's segment number no: B's, else BS's. */
static const dseg *other_seg(const tworld *w, uint64_t no) {
  const dseg *s = model_seg_no(&w->mb, no);
  return s ? s : model_seg_no(&w->mbs, no);
}

/* Apply case k to out (a copy of A). -1: could not. */
static int tamper_apply(const tworld *w, const tcase *k, dset *out) {
  const model *m = &w->ma;
  char name[64];
  switch (k->op) {
  case T_NONE:
    return 0;
  case T_SWAP_FRAMES: {
    const dseg *s = &m->seg[k->a];
    fbytes *v = calloc(s->nfr, sizeof *v);
    if (!v)
      return -1;
    for (size_t j = 0; j < s->nfr; j++)
      v[j] = frame_bytes(s, j == k->b ? k->c : j == k->c ? k->b : j);
    int rc = seg_rebuild(out, s->f->name, s->f->p, s->f->len, v, s->nfr);
    free(v);
    if (!rc && k->relabel)
      relabel_frames(out, s->f->name, s->first);
    return rc;
  }
  case T_SWAP_SEGS: {
    const dseg *x = &m->seg[k->a], *y = &m->seg[k->b];
    if (!dset_set(out, x->f->name, y->f->p, y->f->len) ||
        !dset_set(out, y->f->name, x->f->p, x->f->len))
      return -1;
    if (k->relabel) {
      const dseg *pair[2][2] = {{x, y}, {y, x}};
      for (int i = 0; i < 2; i++) {
        dfile *f = dset_get(out, pair[i][0]->f->name);
        put64(f->p + 32, pair[i][0]->no);
        put64(f->p + 40, pair[i][0]->first);
        fix_head56(f->p);
        relabel_frames(out, f->name, pair[i][0]->first);
      }
    }
    return 0;
  }
  case T_COPY_FRAME:
    return replace_frame(out, &m->seg[k->c], k->d,
                         frame_bytes(&m->seg[k->a], k->b), k->relabel);
  case T_MOVE_FRAME: {
    /* The seqs and the tag chain stay as they were: only the segment
     * number in the frame's associated data can tell. */
    const dseg *x = &m->seg[k->a], *y = &m->seg[k->a + 1];
    fbytes *v = calloc(x->nfr + y->nfr + 1, sizeof *v);
    if (!v)
      return -1;
    for (size_t j = 0; j + 1 < x->nfr; j++)
      v[j] = frame_bytes(x, j);
    int rc = seg_rebuild(out, x->f->name, x->f->p, x->f->len, v, x->nfr - 1);
    v[0] = frame_bytes(x, x->nfr - 1);
    for (size_t j = 0; j < y->nfr; j++)
      v[j + 1] = frame_bytes(y, j);
    if (!rc)
      rc = seg_rebuild(out, y->f->name, y->f->p, y->f->len, v, y->nfr + 1);
    free(v);
    if (!rc) {
      uint8_t *h = dset_get(out, y->f->name)->p;
      put64(h + 40, x->fr[x->nfr - 1].seq);
      fix_head56(h);
    }
    return rc;
  }
  case T_FOREIGN: {
    /* Only the store id in the frames' associated data can tell. */
    const dfile *h2 = dset_get(&w->a2, HDR_NAME);
    dset c;
    if (!h2 || dset_clone(&w->c2, &c))
      return -1;
    int rc = dset_set(&c, HDR_NAME, h2->p, h2->len) ? 0 : -1;
    for (size_t i = 0; !rc && i < c.n; i++) {
      uint64_t no;
      if (!parse_numbered(c.f[i].name, "journal-", ".kjl", &no) ||
          c.f[i].len < SEG_HDR)
        continue;
      memcpy(c.f[i].p + 16, h2->p + 16, 16);
      fix_head56(c.f[i].p);
    }
    dset_free(out);
    *out = c;
    return rc;
  }
  case T_B_FRAME: {
    size_t sa, fa, fb;
    const dseg *sb;
    if (!model_find(m, k->v, &sa, &fa) || !other_frame(w, k->v, &sb, &fb))
      return -1;
    return replace_frame(out, &m->seg[sa], fa, frame_bytes(sb, fb), 0);
  }
  case T_B_SEG:
  case T_B_EXTRA_SEG: {
    const dseg *s = other_seg(w, k->v);
    return s && dset_set(out, s->f->name, s->f->p, s->f->len) ? 0 : -1;
  }
  case T_FOREIGN_RUN: {
    /* Only the store id in the run's associated data can tell: the runs
     * are of the same ops and S, and the nonce prefix travels with C2R's
     * header. */
    const dfile *ha = dset_get(&w->a2r, HDR_NAME);
    const dfile *rc2 = NULL;
    for (size_t i = 0; i < w->c2r.n; i++)
      if (!strncmp(w->c2r.f[i].name, "run-", 4))
        rc2 = &w->c2r.f[i];
    dset c;
    if (!ha || !rc2 || rc2->len < RUN_HDR || !dset_get(&w->a2r, rc2->name) ||
        dset_clone(&w->a2r, &c))
      return -1;
    dfile *f = dset_set(&c, rc2->name, rc2->p, rc2->len);
    if (f) {
      memcpy(f->p + 16, ha->p + 16, 16);
      fix_run_xxh(f->p);
    }
    dset_free(out);
    *out = c;
    return f ? 0 : -1;
  }
  case T_B_RUN:
    if (!w->mb.run || !m->run)
      return -1;
    dset_del(out, m->run->name);
    return dset_set(out, w->mb.run->name, w->mb.run->p, w->mb.run->len) ? 0
                                                                        : -1;
  case T_B_SHORT_ALL:
  case T_B_ALL: {
    const dset *src = k->op == T_B_ALL ? &w->b : &w->bs;
    dset keep;
    if (dset_clone(src, &keep))
      return -1;
    int rc = dset_set(&keep, HDR_NAME, m->hdr->p, m->hdr->len) ? 0 : -1;
    dset_free(out);
    *out = keep;
    return rc;
  }
  case T_OLD_RUN: {
    const dfile *os = w->mold.run;
    if (!os || !m->run)
      return -1;
    dset_del(out, m->run->name);
    if (k->a == 0 || k->a == 4) {
      if (!dset_set(out, os->name, os->p, os->len))
        return -1;
      for (size_t i = 0; k->a == 4 && i < w->mold.nseg; i++)
        if (!dset_get(out, w->mold.seg[i].f->name) &&
            !dset_set(out, w->mold.seg[i].f->name, w->mold.seg[i].f->p,
                      w->mold.seg[i].f->len))
          return -1;
      return 0;
    }
    dfile *f = dset_set(out, m->run->name, os->p, os->len);
    if (!f)
      return -1;
    if (k->a >= 2) { /* claim to be S2 (2: and base B2), XXH3 redone: only
                        the associated data can tell */
      put64(f->p + 32, m->run_seq);
      if (k->a == 2)
        put64(f->p + 40, m->run_base);
      fix_run_xxh(f->p);
    }
    return 0;
  }
  case T_RUN_BLOCKS: {
    /* The blocks' bytes rebuilt between the header and the index, block c
     * replaced by block b (and, a swap, b by c): the index still claims
     * the old places and lengths. */
    const dfile *f = m->run;
    const dblock *bb = &m->blk[k->b], *bc = &m->blk[k->c];
    size_t len = f->len + (k->a ? (size_t)bb->len - bc->len : 0);
    uint8_t *p = malloc(len);
    if (!p)
      return -1;
    memcpy(p, f->p, RUN_HDR);
    size_t at = RUN_HDR;
    for (size_t i = 0; i < m->nblk; i++) {
      const dblock *src = i == k->c                ? bb
                          : k->a == 0 && i == k->b ? bc
                                                   : &m->blk[i];
      memcpy(p + at, f->p + src->off, src->len);
      at += src->len;
    }
    memcpy(p + at, f->p + m->ix_off, f->len - m->ix_off);
    dfile *g = dset_set(out, f->name, p, len);
    free(p);
    return g ? 0 : -1;
  }
  case T_RUN_FOOTER: {
    const dfile *os = w->mold.run;
    dfile *f = dset_get(out, m->run->name);
    if (!os || !f || os->len < RUN_FOOT)
      return -1;
    memcpy(f->p + f->len - RUN_FOOT, os->p + os->len - RUN_FOOT, RUN_FOOT);
    return 0;
  }
  case T_OLD_HEADER: {
    const dfile *h = k->a ? w->mfork.hdr : w->mold.hdr;
    return dset_set(out, HDR_NAME, h->p, h->len) ? 0 : -1;
  }
  case T_HDR_FIELD: {
    uint8_t *h = dset_get(out, HDR_NAME)->p;
    switch (k->a) {
    case 0:
      put64(h + 64, get64(h + 64) + 1);
      break;
    case 1:
      put64(h + 64, get64(h + 64) - 1);
      break;
    case 2:
      put64(h + 72, get64(h + 72) - 1);
      break;
    case 3:
      put64(h + 72, get64(h + 72) + 1);
      break;
    case 4:
      memset(h + 64, 0, 16); /* "no record" */
      break;
    case 5:
      h[80] ^= 1;
      break;
    case 6:
      h[16] ^= 1;
      break;
    case 7:
      h[40] ^= 1;
      break;
    case 8:
      h[100] ^= 1;
      break;
    case 9:
      put64(h + 48, 1);
      break;
    case 10:
      put32(h + 12, 2);
      break;
    default: /* a version above the current one */
      put32(h + 8, get32(h + 8) + 1);
      break;
    }
    fix_header_xxh(h);
    return 0;
  }
  case T_SEG_FIELD: {
    uint8_t *h = dset_get(out, m->seg[k->a].f->name)->p;
    switch (k->b) {
    case 0:
      put64(h + 32, get64(h + 32) + 1);
      break;
    case 1:
      put64(h + 40, get64(h + 40) + 1);
      break;
    case 2:
      put64(h + 40, get64(h + 40) - 1);
      break;
    case 3:
      h[20] ^= 1;
      break;
    case 4:
      put32(h + 8, 2);
      break;
    case 5:
      h[13] ^= 1;
      break;
    default:
      h[50] ^= 1;
      break;
    }
    fix_head56(h);
    return 0;
  }
  case T_FRAME_FIELD: {
    const dseg *s = &m->seg[k->a];
    uint8_t *h = dset_get(out, s->f->name)->p + s->fr[k->b].off;
    uint32_t len = get32(h + 4);
    switch (k->c) {
    case 0:
      put64(h + 8, get64(h + 8) + 1);
      break;
    case 1:
      put64(h + 16, get64(h + 16) ? get64(h + 16) - 1 : 1);
      break;
    case 2:
      put64(h + 16, get64(h + 16) + 1);
      break;
    case 3:
      h[24] = h[24] == FRAME_COMMIT ? FRAME_MARKER : FRAME_COMMIT;
      break;
    case 4:
      h[24] = 3;
      break;
    case 5:
      h[40] ^= 0x20;
      break;
    case 6:
      h[FRAME_HDR + len / 2] ^= 0x04;
      break;
    case 7:
      h[FRAME_HDR + len - 1] ^= 0x80;
      break;
    case 8:
      put32(h + 4, len - 1);
      break;
    default:
      h[27] = 1;
      break;
    }
    fix_frame_sum(h);
    return 0;
  }
  case T_RUN_FIELD: {
    dfile *f = dset_get(out, m->run->name);
    uint8_t *h = f->p;
    switch (k->a) {
    case 0:
    case 1:
    case 2: {
      uint64_t s = k->a == 2 ? m->run_seq - 1 : m->run_seq + 1;
      put64(h + 32, s);
      fix_run_xxh(h);
      if (k->a != 1) {
        run_name(s, name);
        uint8_t *copy = malloc(f->len);
        size_t len = f->len;
        if (!copy)
          return -1;
        memcpy(copy, f->p, len);
        dset_del(out, m->run->name);
        dfile *nf = dset_set(out, name, copy, len);
        free(copy);
        return nf ? 0 : -1;
      }
      return 0;
    }
    case 3:
      put64(h + 40, get64(h + 40) + 1);
      break;
    case 4:
      put64(h + 40, get64(h + 40) - 1);
      break;
    case 5:
      h[50] ^= 1; /* the nonce prefix */
      break;
    case 6:
      h[17] ^= 1; /* the store id */
      break;
    case 7:
      h[12] ^= 1;
      break;
    case 8:
      h[66] ^= 1;
      break;
    default:
      put32(h + 8, get32(h + 8) + 1); /* a version above the current one */
      break;
    }
    fix_run_xxh(h);
    return 0;
  }
  case T_DELETE:
    switch (k->a) {
    case 0:
      dset_del(out, m->run->name);
      break;
    case 1:
      dset_del(out, m->seg[0].f->name);
      break;
    case 2:
      dset_del(out, m->seg[m->nseg / 2].f->name);
      break;
    case 3:
      dset_del(out, m->seg[m->nseg - 1].f->name);
      break;
    default:
      dset_del(out, m->seg[m->nseg - 1].f->name);
      dset_del(out, m->seg[m->nseg - 2].f->name);
      break;
    }
    return 0;
  case T_CUT: {
    const dseg *s = &m->seg[m->nseg - 1];
    dset_get(out, s->f->name)->len = s->fr[s->nfr - 1 - k->a].off;
    return 0;
  }
  case T_ZERO_MARKER: {
    const dseg *s = &m->seg[m->nseg - 1];
    const dframe *fr = &s->fr[s->nfr - 1];
    memset(dset_get(out, s->f->name)->p + fr->off, 0, FRAME_HDR + fr->len);
    return 0;
  }
  case T_FORGE_SEG: {
    const dseg *s = &m->seg[m->nseg - 1];
    uint8_t *p = calloc(1, SEGMENT_BYTES);
    if (!p)
      return -1;
    memcpy(p, s->f->p, SEG_HDR);
    put64(p + 32, s->no + 1);
    put64(p + 40, m->last_seq + 1);
    fix_head56(p);
    if (k->a) { /* the newest commit, relabeled as the next frame */
      fbytes fb = frame_bytes(s, s->nfr - 2);
      memcpy(p + SEG_HDR, fb.p, fb.len);
      put64(p + SEG_HDR + 8, m->last_seq + 1);
      fix_frame_sum(p + SEG_HDR);
    }
    seg_name(s->no + 1, name);
    dfile *f = dset_set(out, name, p, SEGMENT_BYTES);
    free(p);
    return f ? 0 : -1;
  }
  default:
    return -1;
  }
}

typedef struct tctx {
  const char *work;
  const tworld *w;
  const tcases *cs;
  ora_campaign *c;
  uint64_t seed;
  size_t ops;
} tctx;

static void tamper_case_fn(void *arg, size_t i, ora_obuf *why, ora_obuf *info) {
  tctx *x = arg;
  const tcase *k = &x->cs->v[i];
  dset out;
  if (dset_clone(&x->w->a, &out) != 0) {
    ora_obuf_addf(why, "out of memory");
    return;
  }
  if (tamper_apply(x->w, k, &out) != 0) {
    ora_obuf_addf(why, "could not apply the edit");
  } else if (dset_store(&out, x->work) != 0) {
    ora_obuf_addf(why, "writing %s: %s", x->work, strerror(errno));
  } else {
    expect e = {&x->w->state, NULL, NULL, 0, 0, k->allow, k->want};
    judge(x->work, &e, why, info);
  }
  dset_free(&out);
}

static void tamper_result(void *arg, size_t i, int bad, const char *why,
                          const char *info, int64_t ms) {
  tctx *x = arg;
  const tcase *k = &x->cs->v[i];
  if (verbose())
    fprintf(stderr, "tamper: %s: %s: %s%s(%" PRId64 " ms)\n", k->name,
            bad ? "DIVERGENCE" : "ok", info, bad ? why : "", ms);
  if (bad) {
    x->c->divergences++;
    ora_obuf_addf(&x->c->report,
                  "tamper: seed=%" PRIu64 " ops=%zu case=%s outcome=%s[%s] "
                  "(replay: ORA_TAMPER_ONLY='%s')\n",
                  x->seed, x->ops, k->name, why, info, k->name);
  }
}

static void tamper_cases(const tworld *w, drng *r, tcases *cs) {
  const model *m = &w->ma;
  size_t ns = m->nseg;
  const dseg *newest = &m->seg[ns - 1];

  tc_add(cs, T_NONE, A_OK, NULL, "untouched");

  /* Frames swapped within a segment: neighbours and a random pair, as
   * they are (their seqs betray them) and relabeled with the seqs of
   * their new places and recomputed checksums (only the MAC can tell). */
  for (size_t t = 0; t < 3; t++) {
    size_t si = t == 0 ? ns - 1 : (size_t)dr_below(r, ns);
    const dseg *s = &m->seg[si];
    if (s->nfr < 2)
      continue;
    size_t i = (size_t)dr_below(r, s->nfr - 1);
    size_t j = t == 1 ? i + 1 + (size_t)dr_below(r, s->nfr - 1 - i) : i + 1;
    for (int rl = 0; rl < 2; rl++) {
      tcase *k = tc_add(cs, T_SWAP_FRAMES, A_CORRUPT, rl ? AUTH : NULL,
                        "swap-frames %s #%zu,#%zu%s", s->f->name, i, j,
                        rl ? " relabeled" : "");
      k->a = si;
      k->b = i;
      k->c = j;
      k->relabel = rl;
    }
  }

  /* Whole segments swapped (renamed), as they are and with their headers
   * and frames relabeled for their new places. */
  if (ns >= 2) {
    size_t pairs[2][2] = {{ns - 2, ns - 1},
                          {0, (size_t)1 + dr_below(r, ns - 1)}};
    for (size_t t = 0; t < 2; t++)
      for (int rl = 0; rl < 2; rl++) {
        tcase *k = tc_add(cs, T_SWAP_SEGS, A_CORRUPT, rl ? AUTH : NULL,
                          "swap-segments %s,%s%s", m->seg[pairs[t][0]].f->name,
                          m->seg[pairs[t][1]].f->name, rl ? " relabeled" : "");
        k->a = pairs[t][0];
        k->b = pairs[t][1];
        k->relabel = rl;
      }
  }

  /* A frame moved across a segment boundary, the last of one segment to
   * the front of the next, its seq and the tag chain intact. */
  for (size_t i = ns - 1; i-- > 0;) {
    const dseg *x = &m->seg[i], *y = &m->seg[i + 1];
    if (y->no != x->no + 1 || x->nfr < 2 ||
        y->end + FRAME_HDR + x->fr[x->nfr - 1].len > y->f->len)
      continue;
    tcase *k = tc_add(cs, T_MOVE_FRAME, A_CORRUPT, AUTH,
                      "move-frame seq %" PRIu64 " from %s to the front of %s",
                      x->fr[x->nfr - 1].seq, x->f->name, y->f->name);
    k->a = i;
    break;
  }
  /* Another store's journal under the same key. */
  if (w->a2.n && w->c2.n)
    tc_add(cs, T_FOREIGN, A_CORRUPT, AUTH,
           "foreign-journal: another store's, under the same key, with this "
           "store's id");

  /* A frame copied over another in another segment; an older frame
   * replayed over a newer one (same segment, and from an earlier one). */
  for (size_t t = 0; t < 12 && ns >= 2; t++) {
    size_t sa = (size_t)dr_below(r, ns), sb = (size_t)dr_below(r, ns);
    int older = t % 3 != 0;
    if (t % 3 == 1)
      sb = sa;
    if (!older && sa == sb)
      continue;
    const dseg *a = &m->seg[sa], *b = &m->seg[sb];
    if (!a->nfr || !b->nfr)
      continue;
    size_t fa = (size_t)dr_below(r, a->nfr), fb = (size_t)dr_below(r, b->nfr);
    if (older && a->fr[fa].seq >= b->fr[fb].seq)
      continue;
    if (!fits(b, fb, FRAME_HDR + a->fr[fa].len))
      continue;
    for (int rl = 0; rl < 2; rl++) {
      tcase *k = tc_add(cs, T_COPY_FRAME, A_CORRUPT, rl ? AUTH : NULL,
                        "%s seq %" PRIu64 " over seq %" PRIu64 " (%s#%zu)%s",
                        older ? "replay-older" : "copy-frame", a->fr[fa].seq,
                        b->fr[fb].seq, b->f->name, fb, rl ? " relabeled" : "");
      k->a = sa;
      k->b = fa;
      k->c = sb;
      k->d = fb;
      k->relabel = rl;
    }
  }

  /* Another history (B, continued from FORK): its frames with the same
   * seqs (the first after the fork authenticates where it stands, so the
   * next of A's must fail), its segments with the same numbers, one past
   * A's newest, its run, its shorter journal under A's header. */
  uint64_t fork_seq = w->mfork.last_seq;
  uint64_t cand[10] = {fork_seq + 1, fork_seq + 2};
  for (size_t t = 2; t < 10 && m->last_seq > fork_seq + 2; t++)
    cand[t] = fork_seq + 3 + dr_below(r, m->last_seq - fork_seq - 2);
  for (size_t t = 0, added = 0; t < 10 && added < 4; t++) {
    size_t sa, fa, fb;
    const dseg *sb;
    int dup = 0;
    for (size_t j = 0; j < t; j++)
      dup |= cand[j] == cand[t];
    if (dup || !cand[t] || !model_find(m, cand[t], &sa, &fa) ||
        !other_frame(w, cand[t], &sb, &fb) ||
        !fits(&m->seg[sa], fa, FRAME_HDR + sb->fr[fb].len))
      continue;
    tcase *k =
        tc_add(cs, T_B_FRAME, A_CORRUPT, AUTH,
               "splice-frame seq %" PRIu64 " from another history", cand[t]);
    k->v = cand[t];
    added++;
  }
  const dseg *fseg = &w->mfork.seg[w->mfork.nseg - 1];
  for (size_t i = 0; i < ns; i++) {
    const dseg *sb = other_seg(w, m->seg[i].no);
    if (m->seg[i].no < fseg->no || !sb ||
        (sb->f->len == m->seg[i].f->len &&
         !memcmp(sb->f->p, m->seg[i].f->p, sb->f->len)))
      continue;
    tcase *k =
        tc_add(cs, T_B_SEG, A_CORRUPT, NULL,
               "splice-segment %s from another history", m->seg[i].f->name);
    k->v = m->seg[i].no;
  }
  if (model_seg_no(&w->mb, newest->no + 1)) {
    tcase *k = tc_add(cs, T_B_EXTRA_SEG, A_CORRUPT, NULL,
                      "append segment %016" PRIx64 " from another history",
                      newest->no + 1);
    k->v = newest->no + 1;
  }
  if (w->mb.run && m->run && w->mb.run_seq != m->run_seq)
    tc_add(cs, T_B_RUN, A_CORRUPT, NULL, "run from another history (%s)",
           w->mb.run->name);
  tc_add(cs, T_B_SHORT_ALL, A_CORRUPT, NULL,
         "journal and run of a shorter other history, header kept");
  if (selftest_break == 2)
    tc_add(cs, T_B_ALL, A_CORRUPT, NULL,
           "journal and run of a longer other history, header kept "
           "(selftest: undetectable by design)");

  /* The run replaced by the older one of the same store (its header says
   * S1, B1): as it is (the segments from B1 on are gone), under the name of
   * the newest (its S is not the name's), relabelled as the newest with the
   * header's XXH3 redone (S2 and B2: the footer's associated data holds S,
   * and the footer repeats B; S2 alone: the associated data only), and with
   * the older segments put back. */
  if (w->mold.run && m->run) {
    static const char *what[] = {
        "older run instead of the newest",
        "older run under the name of the newest",
        "older run as the newest, header S and B rewritten, XXH3 redone",
        "older run as the newest, header S rewritten, XXH3 redone",
        "older run with its segments instead of the newest"};
    static const char *want[] = {NULL, "expected", AUTH, AUTH, NULL};
    for (size_t i = 0; i < NFIELDS(what); i++) {
      tcase *k = tc_add(cs, T_OLD_RUN, A_CORRUPT, want[i], "%s", what[i]);
      k->a = i;
    }
    tc_add(cs, T_RUN_FOOTER, A_CORRUPT, AUTH,
           "footer of the older run over the newest's");
  }

  /* Blocks moved within the run: two swapped (neighbours, a random pair),
   * one copied over another. Where the lengths match, the index's places
   * still fit and only the unit number in the nonce and the associated
   * data can tell; the damage shows when the block is read. A copy of
   * another length moves the index and the footer. */
  if (m->run && m->nblk >= 2) {
    size_t nb = m->nblk, i = (size_t)dr_below(r, nb - 1);
    size_t sw[2][2] = {{0, 1}, {i, i + 1 + (size_t)dr_below(r, nb - 1 - i)}};
    for (size_t t = 0; t < 2; t++) {
      if (t == 1 && sw[1][0] == 0 && sw[1][1] == 1)
        continue;
      tcase *k = tc_add(
          cs, T_RUN_BLOCKS, A_CORRUPT | A_RCORRUPT, AUTH,
          "swap run blocks %zu and %zu (%" PRIu32 ", %" PRIu32 " bytes)",
          sw[t][0], sw[t][1], m->blk[sw[t][0]].len, m->blk[sw[t][1]].len);
      k->b = sw[t][0];
      k->c = sw[t][1];
    }
    size_t from = 0, to = 1;
    for (size_t x = 0; x < nb; x++)
      for (size_t y = 0; y < nb; y++)
        if (x != y && m->blk[x].len == m->blk[y].len) {
          from = x;
          to = y;
          x = nb;
          break;
        }
    int fit = m->blk[from].len == m->blk[to].len;
    tcase *k = tc_add(
        cs, T_RUN_BLOCKS, A_CORRUPT | A_RCORRUPT, fit ? AUTH : NULL,
        "copy run block %zu over block %zu (%" PRIu32 ", %" PRIu32 " bytes)",
        from, to, m->blk[from].len, m->blk[to].len);
    k->a = 1;
    k->b = from;
    k->c = to;
  }
  if (w->a2r.n && w->c2r.n)
    tc_add(cs, T_FOREIGN_RUN, A_CORRUPT, AUTH,
           "foreign-run: another store's, at the same S under the same key, "
           "with this store's id, XXH3 redone");
  /* An older keyjournal.hdr alone claims less than the journal holds:
   * the untouched state, or a refusal. */
  tcase *k = tc_add(cs, T_OLD_HEADER, A_OK | A_CORRUPT, NULL,
                    "older keyjournal.hdr (before the newest checkpoint)");
  k->a = 0;
  k = tc_add(cs, T_OLD_HEADER, A_OK | A_CORRUPT, NULL,
             "older keyjournal.hdr (after the newest checkpoint)");
  k->a = 1;

  /* keyjournal.hdr edited, its XXH3 recomputed: the key check (BLAKE2b
   * keyed) fails, which FORMAT.md 3 rule 5 reports as KJ_EKEY; a changed
   * key mode is rule 4 (KJ_EKEY), a changed version rule 3 (KJ_EFORMAT). */
  static const char *hdr_what[] = {"record segment +1", "record segment -1",
                                   "record seq -1",     "record seq +1",
                                   "record removed",    "reserved byte",
                                   "store id",          "salt",
                                   "key check",         "opslimit",
                                   "key mode",          "version"};
  for (size_t i = 0; i < NFIELDS(hdr_what); i++) {
    unsigned allow = i == 11 ? A_EFORMAT : A_EKEY;
    const char *want = i == 11   ? "format version"
                       : i == 10 ? "passphrase"
                                 : "wrong key";
    k = tc_add(cs, T_HDR_FIELD, allow, want, "keyjournal.hdr %s, XXH3 redone",
               hdr_what[i]);
    k->a = i;
  }

  /* Segment headers edited, XXH3 recomputed. Reserved bytes are neither
   * checked nor authenticated (FORMAT.md 5.4), and read by nothing. */
  static const char *seg_what[] = {
      "segment number +1", "first seq +1",    "first seq -1",   "store id",
      "version",           "reserved 12..15", "reserved 48..55"};
  static const char *seg_want[] = {"another store or place",
                                   "starts at seq",
                                   "starts at seq",
                                   "another store or place",
                                   "format version",
                                   NULL,
                                   NULL};
  size_t spick[2] = {ns - 1, (size_t)dr_below(r, ns)};
  for (size_t t = 0; t < 2; t++) {
    if (t == 1 && spick[1] == spick[0])
      continue;
    for (size_t i = 0; i < NFIELDS(seg_what); i++) {
      unsigned allow = i == 4   ? A_EFORMAT
                       : i >= 5 ? A_OK | A_CORRUPT
                                : A_CORRUPT;
      if (i == 2 && m->seg[spick[t]].first <= 1)
        continue;
      k = tc_add(cs, T_SEG_FIELD, allow, seg_want[i],
                 "%s header %s, XXH3 redone", m->seg[spick[t]].f->name,
                 seg_what[i]);
      k->a = spick[t];
      k->b = i;
    }
  }

  /* Frames edited, checksum recomputed: every field the MAC covers must
   * fail authentication; a seq or reserved byte makes it unsound. */
  static const char *fr_what[] = {
      "seq +1",      "durable_seq -1", "durable_seq +1", "type swapped",
      "type 3",      "nonce byte",     "payload byte",   "tag byte",
      "body_len -1", "reserved byte"};
  typedef struct fpick {
    size_t s, f;
  } fpick;
  fpick fp[4] = {{0, 0},
                 {ns - 1, newest->nfr - 1},
                 {ns - 1, newest->nfr >= 2 ? newest->nfr - 2 : 0},
                 {0, 0}};
  size_t rs = (size_t)dr_below(r, ns);
  fp[3] = (fpick){rs, m->seg[rs].nfr ? (size_t)dr_below(r, m->seg[rs].nfr) : 0};
  for (size_t t = 0; t < 4; t++) {
    const dseg *s = &m->seg[fp[t].s];
    if (!s->nfr)
      continue;
    int dup = 0;
    for (size_t j = 0; j < t; j++)
      dup |= fp[j].s == fp[t].s && fp[j].f == fp[t].f;
    if (dup)
      continue;
    const dframe *fr = &s->fr[fp[t].f];
    for (size_t i = 0; i < NFIELDS(fr_what); i++) {
      if (i == 8 && fr->len - 1 < MIN_BODY)
        continue;
      int auth = i >= 1 && i <= 8;
      k = tc_add(cs, T_FRAME_FIELD, A_CORRUPT, auth ? AUTH : NULL,
                 "%s frame seq %" PRIu64 " %s, checksum redone", s->f->name,
                 fr->seq, fr_what[i]);
      k->a = fp[t].s;
      k->b = fp[t].f;
      k->c = i;
    }
  }

  /* The run's header edited, XXH3 recomputed. S is in every unit's
   * associated data, the nonce prefix in every nonce, B is repeated by the
   * footer; the store id, the reserved bytes and S against the file name are
   * checked as they are read, the version is KJ_EFORMAT (FORMAT.md 6A.7). */
  if (m->run) {
    static const char *rn_what[] = {"S +1 (renamed to match)",
                                    "S +1",
                                    "S -1 (renamed to match)",
                                    "B +1",
                                    "B -1",
                                    "nonce prefix byte",
                                    "store id",
                                    "reserved 12..15",
                                    "reserved 64..71",
                                    "version"};
    static const char *rn_want[] = {
        AUTH, "expected",      AUTH,       "footer",   "footer",
        AUTH, "another store", "reserved", "reserved", "format version"};
    for (size_t i = 0; i < NFIELDS(rn_what); i++) {
      if ((i == 2 && m->run_seq <= 1) || (i == 4 && m->run_base <= 1))
        continue;
      k = tc_add(cs, T_RUN_FIELD, i == 9 ? A_EFORMAT : A_CORRUPT, rn_want[i],
                 "run %s, XXH3 redone", rn_what[i]);
      k->a = i;
    }
  }

  /* Files removed or cut: after a clean close the header's record covers
   * every frame, so none of this is in the window of undetectable loss. */
  static const char *del_what[] = {"the run", "the base segment",
                                   "a middle segment", "the newest segment",
                                   "the two newest segments"};
  for (size_t i = 0; i < NFIELDS(del_what); i++) {
    if ((i == 0 && !m->run) || (i == 2 && ns < 3) || (i == 4 && ns < 2))
      continue;
    k = tc_add(cs, T_DELETE, A_CORRUPT, NULL, "delete %s", del_what[i]);
    k->a = i;
  }
  for (size_t i = 0; i < 2 && i < newest->nfr; i++) {
    k = tc_add(cs, T_CUT, A_CORRUPT, NULL, "cut %s at its %s frame",
               newest->f->name, i ? "next to last" : "last");
    k->a = i;
  }
  tc_add(cs, T_ZERO_MARKER, A_CORRUPT, NULL,
         "zero the sync marker of the clean close");

  /* A forged segment after the newest (every field of its header is
   * unkeyed): empty, it holds nothing and changes nothing; holding a
   * relabeled frame, that frame must fail authentication. */
  tc_add(cs, T_FORGE_SEG, A_OK | A_CORRUPT, NULL,
         "append a forged empty segment");
  if (newest->nfr >= 2) {
    k = tc_add(cs, T_FORGE_SEG, A_CORRUPT, AUTH,
               "append a forged segment holding a relabeled frame");
    k->a = 1;
  }
}

int ora_tamper_check(ora_campaign *c, uint64_t seed, size_t ops) {
  size_t n = ops < MIN_OPS ? MIN_OPS : ops;
  ora_obuf why = {0};
  tworld w;
  memset(&w, 0, sizeof w);
  tcases cs = {0};
  char *root = make_root(), *work = NULL;
  int rc = KJ_ENOMEM;
  if (!root || !(work = path_join(root, "w"))) {
    ora_obuf_addf(&why, "temp directory: %s", strerror(errno));
    rc = KJ_EIO;
    goto out;
  }
  if ((rc = build_tamper(root, seed, n, &w, &why)))
    goto out;
  if (w.ma.run && w.ma.run_unread) {
    c->divergences++;
    ora_obuf_addf(&c->report,
                  "tamper: seed=%" PRIu64 " ops=%zu case=none: the run %s "
                  "as written: %s\n",
                  seed, ops, w.ma.run->name, w.ma.run_unread);
  }
  drng r = {seed * 0x9e3779b97f4a7c15ull + 0x7a3};
  tamper_cases(&w, &r, &cs);
  const char *only = getenv("ORA_TAMPER_ONLY");
  uint8_t *skip = calloc(cs.n + 1, 1);
  if (!skip) {
    rc = KJ_ENOMEM;
    goto out;
  }
  for (size_t i = 0; i < cs.n; i++) {
    skip[i] = only && *only && strcmp(only, cs.v[i].name);
    c->tamper_cases += !skip[i];
    c->run_cases += !skip[i] && tc_is_run(cs.v[i].op, cs.v[i].a);
  }
  tctx x = {work, &w, &cs, c, seed, ops};
  run_cases(c, cs.n, skip, tamper_case_fn, &x, tamper_result, &x);
  free(skip);
  rc = KJ_OK;
out:
  if (rc)
    report_setup(c, "tamper", seed, ops, &why);
  free(cs.v);
  tworld_free(&w);
  ora_obuf_free(&why);
  if (root)
    rm_tree(root);
  free(work);
  free(root);
  return rc;
}
