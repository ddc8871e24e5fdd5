/*
 * tests/test_upgrade.c - stores written by format 1 (tests/data/v1, made by
 * tests/data/v1/make_v1.c with the last build that wrote it): a read-only
 * open reads them as they are and changes nothing; a read-write open turns
 * them into format 2 (a run file, header version 2, the snapshot and old
 * segments gone) with every row kept, and a failure at any VFS call of that
 * upgrade leaves a store that opens with every row (doc/FORMAT.md 6A.8).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "keyjournal/store.h"
#include "tap.h"
#include "testutil.h"

/* The rows of make_v1.c: table 1 keys k000.., values built by val(). */
static size_t val(char *out, size_t cap, const char *tag, int i) {
  int n = snprintf(out, cap, "%s-%03d:", tag, i);
  int end = n + 20 + i % 50;
  for (int j = n; j < end; j++)
    out[j] = (char)('a' + (i + j) % 26);
  out[end] = 0;
  return (size_t)end;
}

/* What fixture snap (1) or journal (0) holds for (table, i): the value's
 * tag, or NULL for no row. */
static const char *v1_row(int snap, unsigned table, int i) {
  if (!snap)
    return table == 1 && i >= 10 && i < 100 ? "old" : NULL;
  if (table == 3)
    return i < 10 ? "three" : NULL;
  if (table != 1 || i < 50 || i >= 250)
    return NULL;
  return (i >= 100 && i < 150) || i >= 200 ? "new" : "old";
}

/* Every row of the fixture as expected: 0 mismatches, else how many. */
static int check_rows(kj_store *s, int snap, const char *what) {
  int bad = 0;
  uint64_t want_rows = 0;
  for (unsigned t = 1; t <= 3; t++) {
    uint64_t want_t = 0, want_b = 0;
    for (int i = 0; i < 260; i++) {
      char k[16], v[128];
      snprintf(k, sizeof k, "k%03d", i);
      const char *tag = v1_row(snap, t, i);
      void *got = NULL;
      size_t gl = 0;
      int rc = kj_get(s, NULL, t, k, strlen(k), &got, &gl);
      if (!tag) {
        bad += rc != KJ_NOTFOUND;
      } else {
        size_t n = val(v, sizeof v, tag, i);
        bad += rc != KJ_OK || gl != n || memcmp(got, v, n);
        want_t++;
        want_b += strlen(k) + n;
      }
      kj_free(got);
    }
    uint64_t rows = 0, bytes = 0;
    kj_table_count(s, t, &rows, &bytes);
    if (rows != want_t || bytes != want_b) {
      printf("# %s: table %u counts %llu rows %llu bytes, want %llu %llu\n",
             what, t, (unsigned long long)rows, (unsigned long long)bytes,
             (unsigned long long)want_t, (unsigned long long)want_b);
      bad++;
    }
    want_rows += want_t;
  }
  kj_stats st = KJ_STATS_INIT;
  kj_store_stats(s, &st);
  if (st.rows != want_rows)
    bad++;
  return bad;
}

static const char *fixture(const char *name) {
  static char p[1024];
  const char *src = getenv("srcdir");
  snprintf(p, sizeof p, "%s/tests/data/v1/%s", src ? src : ".", name);
  return p;
}

/* XXH3 over the names and bytes of every file in dir, in name order. */
static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}
static uint64_t dir_digest(const char *dir) {
  char *names[64];
  int n = 0;
  DIR *d = opendir(dir);
  struct dirent *de;
  while (d && n < 64 && (de = readdir(d)))
    if (de->d_name[0] != '.')
      names[n++] = strdup(de->d_name);
  if (d)
    closedir(d);
  qsort(names, (size_t)n, sizeof *names, cmp_names);
  XXH3_state_t *st = XXH3_createState();
  XXH3_64bits_reset(st);
  for (int i = 0; i < n; i++) {
    char *p = tu_path(dir, names[i]);
    size_t len = 0;
    void *b = tu_read_file(p, &len);
    XXH3_64bits_update(st, names[i], strlen(names[i]) + 1);
    if (b)
      XXH3_64bits_update(st, b, len);
    free(b);
    free(p);
    free(names[i]);
  }
  uint64_t h = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  return h;
}

static kj_stats stats_of(kj_store *s) {
  kj_stats st = KJ_STATS_INIT;
  kj_store_stats(s, &st);
  return st;
}

static kj_store *open_at(const char *dir, int read_only, const kj_vfs *vfs,
                         int *rc_out) {
  kj_options o;
  tu_options(&o);
  o.read_only = read_only;
  o.mode = KJ_OPEN_EXISTING;
  o.vfs = vfs;
  kj_store *s = NULL;
  char *em = NULL;
  int rc = kj_store_open(dir, &o, &s, &em);
  if (rc && !rc_out)
    printf("# open %s: %s\n", dir, em ? em : "");
  kj_free(em);
  if (rc_out)
    *rc_out = rc;
  return rc ? NULL : s;
}

static void test_fixture(int snap) {
  const char *name = snap ? "snapshot" : "journal";
  char *w = tu_mkdtemp();
  ok(tu_copy_dir(fixture(name), w) == 0, "%s: fixture copied", name);
  uint64_t before = dir_digest(w);

  kj_store *s = open_at(w, 1, NULL, NULL);
  ok(s != NULL, "%s: read-only open of format 1", name);
  if (s) {
    is(stats_of(s).format_version, 1, "%s: it says format 1", name);
    is(check_rows(s, snap, name), 0, "%s: every row, read-only", name);
    kj_store_close(s);
  }
  ok(dir_digest(w) == before, "%s: the read-only open changed no file", name);

  s = open_at(w, 0, NULL, NULL);
  ok(s != NULL, "%s: read-write open upgrades", name);
  if (s) {
    is(stats_of(s).format_version, 2, "%s: format 2 now", name);
    is(check_rows(s, snap, name), 0, "%s: every row after the upgrade", name);
    kj_store_close(s);
  }
  is(tu_count_prefix(w, "run-"), 1, "%s: one run file", name);
  is(tu_count_prefix(w, "snapshot-"), 0, "%s: no format 1 snapshot left", name);
  is(tu_count_prefix(w, "journal-"), 1, "%s: one segment left", name);
  s = open_at(w, 1, NULL, NULL);
  ok(s && stats_of(s).format_version == 2 && !check_rows(s, snap, name) &&
         stats_of(s).frames_replayed == 0,
     "%s: reopened read-only: format 2, every row, nothing replayed", name);
  kj_store_close(s);
  s = open_at(w, 0, NULL, NULL);
  ok(s && !kj_put(s, NULL, 2, "after", 5, "x", 1), "%s: takes commits", name);
  kj_store_close(s);
  tu_rmrf(w);
  free(w);
}

/* A failure at VFS call n of method m during the upgrade, and every call
 * after it (the process does nothing more, as if it had died there): the
 * directory then opens read-write with every row, in format 2. */
static void test_upgrade_failures(int snap) {
  const char *name = snap ? "snapshot" : "journal";
  uint64_t calls[TU_NMETHODS];
  {
    char *w = tu_mkdtemp();
    tu_copy_dir(fixture(name), w);
    tu_vfs tv;
    tu_vfs_init(&tv);
    tu_vfs_reset_counts(&tv);
    kj_store *s = open_at(w, 0, &tv.vfs, NULL);
    ok(s != NULL, "%s: reference upgrade through the test VFS", name);
    for (int m = 0; m < TU_NMETHODS; m++)
      calls[m] = tu_vfs_calls(&tv, (tu_method)m);
    kj_store_close(s);
    tu_vfs_destroy(&tv);
    tu_rmrf(w);
    free(w);
  }
  int points = 0, bad = 0;
  for (int m = 0; m < TU_NMETHODS; m++) {
    if (m == TU_CLOSE)
      continue;
    for (uint64_t n = 1; n <= calls[m]; n++) {
      char *w = tu_mkdtemp();
      tu_copy_dir(fixture(name), w);
      tu_vfs tv;
      tu_vfs_init(&tv);
      tu_vfs_arm(&tv, (tu_method)m, n, KJ_EIO, TU_ARM_PERSIST);
      int rc;
      kj_store *s = open_at(w, 0, &tv.vfs, &rc);
      if (s)
        kj_store_close(s);
      tu_vfs_disarm(&tv);
      tu_vfs_destroy(&tv);
      points++;
      s = open_at(w, 0, NULL, NULL);
      if (!s || check_rows(s, snap, name) || stats_of(s).format_version != 2) {
        bad++;
        printf("# %s: failure at %s #%llu: %s\n", name,
               tu_method_name((tu_method)m), (unsigned long long)n,
               s ? "wrong rows or format" : "does not open");
      }
      kj_store_close(s);
      tu_rmrf(w);
      free(w);
    }
  }
  ok(points >= 10, "%s: failed the upgrade at each of its %d VFS calls", name,
     points);
  is(bad, 0, "%s: every such store opens with every row, in format 2", name);
}

int main(void) {
  test_fixture(1);
  test_fixture(0);
  test_upgrade_failures(1);
  test_upgrade_failures(0);
  return tap_done();
}
