/*
 * tests/test_recovery.c - crash recovery and damage detection
 * (doc/FORMAT.md section 5).
 *
 * A "crash image" is a copy of a store directory taken while the store is
 * still open: every acknowledged frame is in it, and no close marker. The
 * tests damage copies of such images byte by byte and check that open
 * either recovers exactly the previous commit (a torn tail) or refuses
 * with KJ_ECORRUPT naming the file and offset (damaged durable data), and
 * that a refused open changes no file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "common/codec.h"
#include "engine/crypto.h"
#include "keyjournal/store.h"
#include "tap.h"
#include "testutil.h"

#define SEG1 "journal-0000000000000001.kjl"
#define NCOMMITS 5

static const unsigned tables[] = {1, 2};

/* Commit n writes rows that make its state unique. */
static int do_commit(kj_store *s, int n) {
  kj_txn *t;
  char k[32], v[300];
  int rc = kj_txn_begin(s, 0, &t);
  if (rc)
    return rc;
  snprintf(k, sizeof k, "session.%d", n);
  memset(v, 'a' + n, sizeof v);
  rc = kj_put(s, t, 1, k, strlen(k), v, sizeof v);
  if (!rc)
    rc = kj_put(s, t, 2, "counter", 7, &n, sizeof n);
  if (!rc && n > 1) {
    snprintf(k, sizeof k, "session.%d", n - 1);
    rc = kj_delete(s, t, 1, k, strlen(k));
  }
  if (rc) {
    kj_txn_rollback(t);
    return rc;
  }
  return kj_txn_commit(t);
}

static char *dump(kj_store *s) {
  char *d = NULL;
  if (tu_dump_tables(s, NULL, tables, 2, &d))
    return NULL;
  return d;
}

/* The crash image: store after NCOMMITS commits, still open. states[i] is
 * the dump after commit i; fstart/fend bound each commit's frame in
 * segment 1. */
typedef struct image {
  char *dir;
  char *states[NCOMMITS + 1];
  uint64_t fstart[NCOMMITS + 1], fend[NCOMMITS + 1];
} image;

static int make_image(image *im, int close_cleanly) {
  kj_options o;
  tu_options(&o);
  o.segment_bytes = 16 << 10; /* one segment holds every commit */
  char *src = tu_mkdtemp();
  im->dir = tu_mkdtemp();
  kj_store *s;
  if (!src || !im->dir || kj_store_open(src, &o, &s, NULL))
    return -1;
  im->states[0] = dump(s);
  for (int n = 1; n <= NCOMMITS; n++) {
    kj_stats st = KJ_STATS_INIT;
    kj_store_stats(s, &st);
    im->fstart[n] = 64 + st.journal_bytes;
    if (do_commit(s, n))
      return -1;
    st = (kj_stats)KJ_STATS_INIT;
    kj_store_stats(s, &st);
    im->fend[n] = 64 + st.journal_bytes;
    im->states[n] = dump(s);
  }
  if (close_cleanly) {
    if (kj_store_close(s))
      return -1;
    if (tu_copy_dir(src, im->dir))
      return -1;
  } else {
    if (tu_copy_dir(src, im->dir))
      return -1;
    kj_store_close(s);
  }
  tu_rmrf(src);
  free(src);
  return 0;
}

static void free_image(image *im) {
  tu_rmrf(im->dir);
  free(im->dir);
  for (int i = 0; i <= NCOMMITS; i++)
    free(im->states[i]);
}

/* A working copy of the image: its directory and the bytes of segment 1,
 * to be damaged and written back. */
typedef struct copy {
  char *dir;
  unsigned char *seg;
  size_t n;
} copy;

/* Copy the image to a fresh dir (dir or seg NULL on a failure). */
static copy work_copy(const image *im) {
  copy c = {tu_mkdtemp(), NULL, 0};
  if (c.dir && tu_copy_dir(im->dir, c.dir) == 0) {
    char *p = tu_path(c.dir, SEG1);
    c.seg = tu_read_file(p, &c.n);
    free(p);
  }
  return c;
}

static void drop_copy(copy *c) {
  free(c->seg);
  tu_rmrf(c->dir);
  free(c->dir);
}

typedef struct outcome {
  int rc;
  char *state;
  uint64_t tail;
  int unchanged; /* open_copy() WATCH_FILES: the open left every file */
  char msg[600];
} outcome;

static void try_open(const char *dir, int read_only, outcome *out) {
  kj_options o;
  tu_options(&o);
  o.read_only = read_only;
  o.mode = KJ_OPEN_EXISTING;
  kj_store *s;
  char *em = NULL;
  memset(out, 0, sizeof *out);
  out->rc = kj_store_open(dir, &o, &s, &em);
  if (em)
    snprintf(out->msg, sizeof out->msg, "%s", em);
  kj_free(em);
  if (out->rc == KJ_OK) {
    kj_stats st = KJ_STATS_INIT;
    kj_store_stats(s, &st);
    out->tail = st.tail_bytes_cut;
    out->state = dump(s);
    kj_store_close(s);
  }
}

/* open_copy() flags */
#define READ_ONLY 1   /* open read-only */
#define WATCH_FILES 2 /* set outcome.unchanged */

/* Write the first n bytes of c->seg back as segment 1 and open the copy:
 * the outcome, whose state the caller frees. */
static outcome open_copy(const copy *c, size_t n, unsigned flags) {
  char *p = tu_path(c->dir, SEG1);
  tu_write_file(p, c->seg, n);
  free(p);
  char *before = NULL;
  if (flags & WATCH_FILES) {
    before = tu_mkdtemp();
    tu_copy_dir(c->dir, before);
  }
  outcome r;
  try_open(c->dir, (flags & READ_ONLY) != 0, &r);
  r.unchanged = before && tu_dirs_equal(c->dir, before) == 1;
  tu_rmrf(before);
  free(before);
  return r;
}

/* ---- torn tails --------------------------------------------------------- */

/* Damage [cut, end) of the last frame: zeros, garbage or truncation. Every
 * cut must recover commit NCOMMITS-1, report the tail, and leave a store
 * that takes new commits. */
static void test_tail_cuts(const image *im) {
  uint64_t start = im->fstart[NCOMMITS], end = im->fend[NCOMMITS];
  const char *how[] = {"zeroed", "garbage", "truncated"};
  for (int mode = 0; mode < 3; mode++) {
    int bad_state = 0, bad_rc = 0, bad_tail = 0, runs = 0;
    for (uint64_t cut = start; cut < end; cut++) {
      copy c = work_copy(im);
      if (!c.seg) {
        bad_rc++;
        break;
      }
      if (mode == 0)
        memset(c.seg + cut, 0, end - cut);
      else if (mode == 1)
        for (uint64_t i = cut; i < end; i++) /* never the byte it was */
          c.seg[i] ^= (unsigned char)((0xA5 ^ (i * 7)) | 1);
      outcome r = open_copy(&c, mode == 2 ? cut : c.n, 0);
      runs++;
      if (r.rc != KJ_OK)
        bad_rc++;
      else if (!r.state || strcmp(r.state, im->states[NCOMMITS - 1]))
        bad_state++;
      else if (mode == 0 &&
               (cut == start ? r.tail != 0
                             : (r.tail == 0 || r.tail > cut - start)))
        bad_tail++;
      else if (mode == 1 && r.tail == 0)
        bad_tail++;
      free(r.state);
      if (cut == start + (end - start) / 2) {
        /* After the cut the store takes and keeps new commits. */
        kj_options o;
        tu_options(&o);
        kj_store *s;
        int ok1 = kj_store_open(c.dir, &o, &s, NULL) == KJ_OK;
        ok1 = ok1 && do_commit(s, 99) == KJ_OK && kj_store_close(s) == KJ_OK;
        outcome again;
        try_open(c.dir, 0, &again);
        ok(ok1 && again.rc == KJ_OK && again.tail == 0,
           "%s tail: after recovery a new commit persists, no tail left",
           how[mode]);
        free(again.state);
      }
      drop_copy(&c);
    }
    is(runs, (int)(end - start), "%s tail: tried every byte of the last frame",
       how[mode]);
    is(bad_rc, 0, "%s tail: every cut opens", how[mode]);
    is(bad_state, 0, "%s tail: every cut recovers exactly the previous commit",
       how[mode]);
    is(bad_tail, 0, "%s tail: the cut bytes are reported", how[mode]);
  }
}

/* A read-only open reports a torn tail and changes no file. */
static void test_readonly_tail(const image *im) {
  copy c = work_copy(im);
  uint64_t mid = (im->fstart[NCOMMITS] + im->fend[NCOMMITS]) / 2;
  memset(c.seg + mid, 0, im->fend[NCOMMITS] - mid);
  outcome r = open_copy(&c, c.n, READ_ONLY | WATCH_FILES);
  ok(r.rc == KJ_OK && r.tail > 0 && r.state &&
         !strcmp(r.state, im->states[NCOMMITS - 1]),
     "read-only open of a torn tail: previous commit, tail reported");
  is(r.unchanged, 1, "read-only open changed no file");
  free(r.state);
  drop_copy(&c);
}

/* ---- damage to durable data ------------------------------------------- */

/* Flip one bit of every byte of a frame: each flip
 * must be KJ_ECORRUPT naming the segment and the frame's offset, and the
 * failed open must leave the files as they were. */
static void test_bitflips(const image *im, int frame, const char *what) {
  uint64_t start = im->fstart[frame], end = im->fend[frame];
  int bad_rc = 0, bad_msg = 0, changed = 0, runs = 0, shown = 0;
  char want[64];
  snprintf(want, sizeof want, "offset %llu", (unsigned long long)start);
  for (uint64_t at = start; at < end; at++) {
    copy c = work_copy(im);
    c.seg[at] ^= (unsigned char)(1u << (at % 8));
    outcome r = open_copy(&c, c.n, WATCH_FILES);
    runs++;
    if (r.rc != KJ_ECORRUPT)
      bad_rc++;
    else if (!strstr(r.msg, SEG1) || !strstr(r.msg, want))
      bad_msg++;
    if (!r.unchanged)
      changed++;
    if ((r.rc != KJ_ECORRUPT || !strstr(r.msg, want)) && !shown++)
      printf("# first miss at byte %llu: rc %d, msg '%s'\n",
             (unsigned long long)at, r.rc, r.msg);
    free(r.state);
    drop_copy(&c);
  }
  is(runs, (int)(end - start), "%s: flipped a bit in every byte", what);
  is(bad_rc, 0, "%s: every flip gives KJ_ECORRUPT", what);
  is(bad_msg, 0, "%s: the message names %s and the frame offset", what, SEG1);
  is(changed, 0, "%s: a refused open changed no file", what);
}

/* Re-checksum a tampered frame: the checksum holds, authentication fails. */
static void test_tamper(const image *im) {
  copy c = work_copy(im);
  uint64_t st = im->fstart[2], en = im->fend[2];
  c.seg[st + 64 + 5] ^= 1; /* ciphertext byte */
  uint64_t sum = XXH3_64bits_withSeed(c.seg + st + 64, en - st - 64,
                                      XXH3_64bits(c.seg + st, 56));
  kj_put64(c.seg + st + 56, sum);
  outcome r = open_copy(&c, c.n, 0);
  is(r.rc, KJ_ECORRUPT, "re-checksummed tampered frame: KJ_ECORRUPT");
  ok(strstr(r.msg, "authentication") != NULL,
     "tampered frame: message says authentication failed (%s)", r.msg);
  free(r.state);
  drop_copy(&c);
}

/* Swap two whole frames: each is sound on its own but out of place. */
static void test_reorder(const image *im) {
  copy w = work_copy(im);
  uint64_t a = im->fstart[2], b = im->fstart[3], c = im->fend[3];
  unsigned char *tmp = malloc(c - a);
  memcpy(tmp, w.seg + b, c - b);
  memcpy(tmp + (c - b), w.seg + a, b - a);
  memcpy(w.seg + a, tmp, c - a);
  free(tmp);
  outcome r = open_copy(&w, w.n, 0);
  is(r.rc, KJ_ECORRUPT, "two frames swapped: KJ_ECORRUPT (%s)", r.msg);
  free(r.state);
  drop_copy(&w);
}

/* Drop a middle frame (zero it): a later frame claims it was synced. */
static void test_lost_frame(const image *im) {
  copy c = work_copy(im);
  memset(c.seg + im->fstart[3], 0, im->fend[3] - im->fstart[3]);
  outcome r = open_copy(&c, c.n, 0);
  is(r.rc, KJ_ECORRUPT, "a zeroed middle frame: KJ_ECORRUPT (%s)", r.msg);
  free(r.state);
  drop_copy(&c);
}

/* Checks that an open of w is refused with KJ_ECORRUPT naming the file
 * name: "<what>: KJ_ECORRUPT naming it (<message>)". */
static void refused_naming(const char *w, const char *name, const char *what) {
  outcome r;
  try_open(w, 0, &r);
  ok(r.rc == KJ_ECORRUPT && strstr(r.msg, name),
     "%s: KJ_ECORRUPT naming it (%s)", what, r.msg);
  free(r.state);
}

/* Copy store d to w and flip the bits mask of byte at of its file name:
 * that file's bytes (malloc'd, *n of them). */
static unsigned char *flipped_copy(const char *d, const char *w,
                                   const char *name, size_t at, unsigned mask,
                                   size_t *n) {
  tu_copy_dir(d, w);
  char *p = tu_path(w, name);
  unsigned char *b = tu_read_file(p, n);
  b[at] ^= (unsigned char)mask;
  tu_write_file(p, b, *n);
  free(p);
  return b;
}

static void test_header_and_segments(void) {
  kj_options o;
  tu_options(&o);
  o.segment_bytes = 4096;
  char *d = tu_mkdtemp();
  kj_store *s;
  int rc = kj_store_open(d, &o, &s, NULL);
  for (int n = 1; rc == KJ_OK && n <= 40; n++)
    rc = do_commit(s, n);
  kj_stats st = KJ_STATS_INIT;
  kj_store_stats(s, &st);
  kj_store_close(s);
  ok(rc == KJ_OK && st.segments >= 3, "setup: %llu segments",
     (unsigned long long)st.segments);

  /* A missing middle segment. */
  char *w = tu_mkdtemp();
  tu_copy_dir(d, w);
  char *p = tu_path(w, "journal-0000000000000002.kjl");
  remove(p);
  free(p);
  outcome r;
  refused_naming(w, "journal-0000000000000002.kjl", "missing segment 2");
  tu_rmrf(w);

  /* The whole journal gone. */
  tu_copy_dir(d, w);
  for (int i = 1; i <= (int)st.segments; i++) {
    char name[64];
    snprintf(name, sizeof name, "journal-%016x.kjl", i);
    p = tu_path(w, name);
    remove(p);
    free(p);
  }
  try_open(w, 0, &r);
  is(r.rc, KJ_ECORRUPT, "every segment removed: KJ_ECORRUPT, not empty");
  free(r.state);
  tu_rmrf(w);

  /* A damaged store header. */
  size_t n;
  unsigned char *h = flipped_copy(d, w, "keyjournal.hdr", 20, 0x10, &n);
  refused_naming(w, "keyjournal.hdr", "damaged header");
  /* A different format version with a valid checksum. */
  h[20] ^= 0x10;
  h[8] = 9;
  kj_put64(h + 120, XXH3_64bits(h, 120));
  p = tu_path(w, "keyjournal.hdr");
  tu_write_file(p, h, n);
  try_open(w, 0, &r);
  is(r.rc, KJ_EFORMAT, "header of format version 9: KJ_EFORMAT");
  free(r.state);
  free(h);
  free(p);
  tu_rmrf(w);

  /* A damaged segment header. */
  free(flipped_copy(d, w, "journal-0000000000000002.kjl", 33, 1, &n));
  refused_naming(w, "journal-0000000000000002.kjl", "damaged segment header");
  tu_rmrf(w);

  /* A leftover temporary file is removed by a read-write open. */
  tu_copy_dir(d, w);
  p = tu_path(w, "journal-0000000000000009.kjl.tmp");
  tu_write_file(p, "junk", 4);
  try_open(w, 0, &r);
  ok(r.rc == KJ_OK && tu_file_size(p) < 0,
     "leftover .tmp file ignored and removed");
  free(r.state);
  free(p);
  tu_rmrf(w);

  /* Segments without a header are never overwritten by a create. */
  tu_copy_dir(d, w);
  p = tu_path(w, "keyjournal.hdr");
  remove(p);
  free(p);
  tu_options(&o);
  rc = kj_store_open(w, &o, &s, NULL);
  is(rc, KJ_ECORRUPT, "journal without header: create refuses");
  if (rc == KJ_OK)
    kj_store_close(s);

  free(w);
  tu_rmrf(d);
  free(d);
}

/* ---- the store header's record (rule 5.8) -------------------------------- */

/* 200 rows, one commit each, in 4 KiB segments: a dozen of them. The
 * store header records the last segment and the last synced seq at each
 * roll-over and at a clean close; a journal that ends before the record
 * is damage, whatever was cut. Frames after the record (a crash since the
 * last roll-over) are the window in which a cut is still a torn tail. */
#define REC_ROWS 200
#define diag(...) (printf("# "), printf(__VA_ARGS__), printf("\n"))

typedef struct rec_image {
  char *clean;           /* closed cleanly */
  char *crash;           /* copied while still open: no close marker */
  uint64_t last;         /* last segment number (no snapshot: 1..last) */
  uint64_t rows_at_roll; /* rows when segment last was created */
} rec_image;

static const char *rec_seg(uint64_t n) {
  static char name[64];
  snprintf(name, sizeof name, "journal-%016llx.kjl", (unsigned long long)n);
  return name;
}

static int make_rec_image(rec_image *im) {
  kj_options o;
  tu_options(&o);
  o.segment_bytes = 4096;
  char *src = tu_mkdtemp();
  im->clean = tu_mkdtemp();
  im->crash = tu_mkdtemp();
  kj_store *s;
  if (!src || !im->clean || !im->crash || kj_store_open(src, &o, &s, NULL))
    return -1;
  uint64_t segs = 1;
  for (int i = 0; i < REC_ROWS; i++) {
    kj_txn *t;
    char k[32], v[100];
    snprintf(k, sizeof k, "row.%03d", i);
    memset(v, 'a' + i % 26, sizeof v);
    if (kj_txn_begin(s, 0, &t) || kj_put(s, t, 1, k, strlen(k), v, sizeof v) ||
        kj_txn_commit(t))
      return -1;
    kj_stats st = KJ_STATS_INIT;
    kj_store_stats(s, &st);
    if (st.segments != segs) {
      segs = st.segments;
      im->rows_at_roll = (uint64_t)i; /* this commit went to the new one */
    }
  }
  im->last = segs;
  if (tu_copy_dir(src, im->crash) || kj_store_close(s) ||
      tu_copy_dir(src, im->clean))
    return -1;
  tu_rmrf(src);
  free(src);
  return segs >= 4 ? 0 : -1;
}

/* Open dir (read-only or not): the status, the rows of table 1 and the
 * message. */
static int rec_open(const char *dir, int read_only, uint64_t *rows,
                    char msg[600]) {
  kj_options o;
  tu_options(&o);
  o.segment_bytes = 4096;
  o.read_only = read_only;
  o.mode = KJ_OPEN_EXISTING;
  kj_store *s;
  char *em = NULL;
  *rows = 0;
  int rc = kj_store_open(dir, &o, &s, &em);
  snprintf(msg, 600, "%s", em ? em : "");
  kj_free(em);
  if (rc == KJ_OK) {
    kj_table_count(s, 1, rows, NULL);
    kj_store_close(s);
  }
  return rc;
}

/* Both opens refuse dir with KJ_ECORRUPT naming name (and the read-write
 * one changes no file). */
static void rec_refused(const char *dir, const char *name, const char *what) {
  char *before = tu_mkdtemp();
  tu_copy_dir(dir, before);
  uint64_t rows;
  char msg[600];
  int rc = rec_open(dir, 0, &rows, msg);
  is(rc, KJ_ECORRUPT, "%s: KJ_ECORRUPT", what);
  ok(strstr(msg, name) != NULL, "  ... naming %s", name);
  if (!strstr(msg, name))
    diag("message: %s", msg);
  ok(tu_dirs_equal(dir, before) == 1, "  ... changing no file");
  is(rec_open(dir, 1, &rows, msg), KJ_ECORRUPT, "  ... read-only too");
  tu_rmrf(before);
  free(before);
}

static void rec_remove(const char *dir, uint64_t segno) {
  char *p = tu_path(dir, rec_seg(segno));
  remove(p);
  free(p);
}

/* End offsets of the frames of a segment, from offset 64 (at most max). */
static size_t frame_ends(const unsigned char *b, size_t n, uint64_t *ends,
                         size_t max) {
  size_t k = 0;
  uint64_t off = 64;
  while (k < max && off + 64 <= n && !memcmp(b + off, "KJFR", 4)) {
    off += 64 + kj_get32(b + off + 4);
    ends[k++] = off;
  }
  return k;
}

/* The frame boundaries of segment segno in dir: ends[0] = 64 (the segment
 * header's end), ends[1..k] the end of each frame; returns k (0 when the
 * segment cannot be read). */
static size_t seg_boundaries(const char *dir, uint64_t segno,
                             uint64_t ends[256]) {
  char *sp = tu_path(dir, rec_seg(segno));
  size_t n;
  unsigned char *seg = tu_read_file(sp, &n);
  free(sp);
  size_t k = seg ? frame_ends(seg, n, ends + 1, 255) : 0;
  free(seg);
  ends[0] = 64;
  return k;
}

/* A copy of img with segment segno damaged: its frames kept up to byte
 * keep, then truncated (zero_tail 0) or zeroed to the end (1). */
static char *rec_damaged(const char *img, uint64_t segno, uint64_t keep,
                         int zero_tail) {
  char *w = tu_mkdtemp();
  tu_copy_dir(img, w);
  char *p = tu_path(w, rec_seg(segno));
  size_t n;
  unsigned char *b = tu_read_file(p, &n);
  if (b && keep <= n) {
    if (zero_tail)
      memset(b + keep, 0, n - keep);
    tu_write_file(p, b, zero_tail ? n : keep);
  }
  free(b);
  free(p);
  return w;
}

static void test_record_clean(const rec_image *im) {
  char *p = tu_path(im->clean, "keyjournal.hdr");
  size_t n;
  unsigned char *h = tu_read_file(p, &n);
  ok(h && n == 128 && kj_get64(h + 64) == im->last &&
         kj_get64(h + 72) == REC_ROWS + 1,
     "clean close: the header records segment %llu and seq %d (200 "
     "commits and the marker)",
     (unsigned long long)im->last, REC_ROWS + 1);
  free(h);
  free(p);
  uint64_t rows;
  char msg[600];
  is(rec_open(im->clean, 1, &rows, msg), KJ_OK, "clean image opens");
  is((long long)rows, REC_ROWS, "  ... with every row");

  /* (a) the last segment deleted. */
  char *w = tu_mkdtemp();
  tu_copy_dir(im->clean, w);
  rec_remove(w, im->last);
  rec_refused(w, rec_seg(im->last), "last segment deleted after a clean close");
  tu_rmrf(w);

  /* (b) the last two deleted. */
  tu_copy_dir(im->clean, w);
  rec_remove(w, im->last);
  rec_remove(w, im->last - 1);
  rec_refused(w, rec_seg(im->last - 1),
              "last two segments deleted after a clean close");
  tu_rmrf(w);
  free(w);

  /* (c) and (d): the last segment cut, or its tail zeroed, at every frame
   * boundary (offset 64: every frame gone; the last: only the marker). */
  uint64_t ends[256];
  size_t k = seg_boundaries(im->clean, im->last, ends);
  ok(k >= 2, "last segment holds %zu frames", k);
  for (int zero = 0; zero < 2; zero++) {
    int bad_rc = 0, bad_msg = 0;
    for (size_t i = 0; i < k; i++) { /* ends[k] is the whole segment */
      char *d = rec_damaged(im->clean, im->last, ends[i], zero);
      int rc = rec_open(d, 0, &rows, msg);
      if (rc != KJ_ECORRUPT) {
        bad_rc++;
        diag("kept %llu bytes: %s, %llu rows", (unsigned long long)ends[i],
             kj_strerror(rc), (unsigned long long)rows);
      } else if (!strstr(msg, rec_seg(im->last)) ||
                 !strstr(msg, "store header records seq")) {
        bad_msg++;
        diag("message: %s", msg);
      }
      if (rec_open(d, 1, &rows, msg) != KJ_ECORRUPT)
        bad_rc++;
      tu_rmrf(d);
      free(d);
    }
    ok(!bad_rc && !bad_msg,
       "last segment %s at each of its %zu frame boundaries after a clean "
       "close: KJ_ECORRUPT naming it and the missing seqs",
       zero ? "zeroed from" : "cut", k);
  }
  /* An earlier segment cut at a frame boundary: the next one then starts
   * at a seq the journal does not reach (rule 5.4), and says so. */
  char *d = rec_damaged(im->clean, im->last - 1, 64, 0);
  rec_refused(d, rec_seg(im->last), "an earlier segment cut");
  tu_rmrf(d);
  free(d);
}

/* (e) The same damage to frames written after the last record (a crash
 * since the last roll-over) is a torn or unsynced tail, as before. */
static void test_record_window(const rec_image *im) {
  char *hp = tu_path(im->crash, "keyjournal.hdr");
  size_t n;
  unsigned char *h = tu_read_file(hp, &n);
  ok(h && kj_get64(h + 64) == im->last && kj_get64(h + 72) == im->rows_at_roll,
     "crash image: the header records the last roll-over (segment %llu, "
     "seq %llu)",
     (unsigned long long)im->last, (unsigned long long)im->rows_at_roll);
  free(h);
  free(hp);
  uint64_t ends[256];
  size_t k = seg_boundaries(im->crash, im->last, ends);
  ok(k >= 1, "crash image: %zu frames after the record", k);
  for (int zero = 0; zero < 2; zero++) {
    int bad = 0;
    for (size_t i = 0; i < k; i++) {
      char *d = rec_damaged(im->crash, im->last, ends[i], zero);
      uint64_t rows, rows_ro;
      char msg[600];
      int rc_ro = rec_open(d, 1, &rows_ro, msg);
      int rc = rec_open(d, 0, &rows, msg);
      if (rc || rc_ro || rows != im->rows_at_roll + i || rows_ro != rows) {
        bad++;
        diag("kept %llu bytes: %s, %llu rows, want %llu (%s)",
             (unsigned long long)ends[i], kj_strerror(rc),
             (unsigned long long)rows,
             (unsigned long long)(im->rows_at_roll + i), msg);
      }
      tu_rmrf(d);
      free(d);
    }
    ok(!bad,
       "crash image, last segment %s at each frame boundary after the "
       "record: recovered to that frame",
       zero ? "zeroed" : "cut");
  }
  /* Before the record: damage. */
  char *w = tu_mkdtemp();
  tu_copy_dir(im->crash, w);
  rec_remove(w, im->last);
  rec_refused(w, rec_seg(im->last), "crash image, last segment deleted");
  tu_rmrf(w);
  free(w);
  char *d = rec_damaged(im->crash, im->last - 1, 64, 1);
  rec_refused(d, rec_seg(im->last),
              "crash image, the segment before the record zeroed");
  tu_rmrf(d);
  free(d);
  /* Stray bytes after the frames of the segment before the record, and
   * nothing after the record that claims them synced: the cut would
   * remove the recorded segment. */
  d = rec_damaged(im->crash, im->last, 64, 1);
  char *p = tu_path(d, rec_seg(im->last - 1));
  unsigned char *b = tu_read_file(p, &n);
  k = b ? frame_ends(b, n, ends, 255) : 0;
  if (k && ends[k - 1] + 8 <= n) {
    memset(b + ends[k - 1], 0x5a, 8);
    tu_write_file(p, b, n);
  }
  free(b);
  free(p);
  rec_refused(d, rec_seg(im->last - 1),
              "crash image, stray bytes after the segment before the record");
  tu_rmrf(d);
  free(d);
}

/* (f) A header without the record (bytes 64..79 zero, as written before
 * the record existed) opens; a read-write close adds the record. */
static void test_record_old_header(const rec_image *im) {
  char *w = tu_mkdtemp();
  tu_copy_dir(im->clean, w);
  char *hp = tu_path(w, "keyjournal.hdr");
  size_t n;
  unsigned char *h = tu_read_file(hp, &n);
  kj_keys *keys = NULL;
  uint8_t salt[KJ_SALT_BYTES] = {0};
  if (!h || n != 128 || kj_crypto_init() ||
      kj_keys_derive(tu_key, NULL, salt, 0, 0, &keys)) {
    ok(0, "old header made");
    free(h);
    free(hp);
    free(w);
    return;
  }
  memset(h + 64, 0, 16);
  kj_header_mac(keys, h, 88, h + 88);
  kj_put64(h + 120, XXH3_64bits(h, 120));
  kj_keys_free(keys);
  tu_write_file(hp, h, n);

  char *old = tu_mkdtemp();
  tu_copy_dir(w, old);
  uint64_t rows;
  char msg[600];
  is(rec_open(old, 1, &rows, msg), KJ_OK, "header without a record opens");
  is((long long)rows, REC_ROWS, "  ... with every row");
  rec_remove(old, im->last);
  is(rec_open(old, 1, &rows, msg), KJ_OK,
     "without a record, a deleted last segment is not noticed (as before)");
  tu_rmrf(old);
  free(old);

  /* Upgrade: a read-write open and close writes the record. */
  is(rec_open(w, 0, &rows, msg), KJ_OK, "read-write open of the old header");
  unsigned char *h2 = tu_read_file(hp, &n);
  ok(h2 && kj_get64(h2 + 64) == im->last && kj_get64(h2 + 72) == REC_ROWS + 1,
     "  ... its close recorded segment %llu and seq %d",
     (unsigned long long)im->last, REC_ROWS + 1);
  free(h2);
  rec_remove(w, im->last);
  rec_refused(w, rec_seg(im->last), "upgraded header, last segment deleted");
  free(h);
  free(hp);
  tu_rmrf(w);
  free(w);
}

static void test_record(void) {
  rec_image im = {0};
  int made = make_rec_image(&im) == 0;
  ok(made, "200 rows in 4 KiB segments");
  if (!made) {
    free(im.clean);
    free(im.crash);
    return;
  }
  test_record_clean(&im);
  test_record_window(&im);
  test_record_old_header(&im);
  tu_rmrf(im.clean);
  tu_rmrf(im.crash);
  free(im.clean);
  free(im.crash);
}

int main(void) {
  image crash = {0}, clean = {0};
  ok(make_image(&crash, 0) == 0, "crash image made");
  ok(make_image(&clean, 1) == 0, "cleanly closed image made");

  test_tail_cuts(&crash);
  test_readonly_tail(&crash);
  test_bitflips(&crash, 3, "middle frame (crash image)");
  /* A clean close wrote a sync marker: the newest commit is checked too. */
  test_bitflips(&clean, NCOMMITS, "last commit frame (after clean close)");
  test_tamper(&crash);
  test_reorder(&crash);
  test_lost_frame(&crash);
  test_header_and_segments();
  test_record();

  free_image(&crash);
  free_image(&clean);
  return tap_done();
}
