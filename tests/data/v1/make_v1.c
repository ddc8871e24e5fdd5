/*
 * tests/data/v1/make_v1.c - writes the format 1 stores of this folder
 * (tests/test_upgrade.c opens them). It uses the public API only and was
 * built against the last build that wrote format 1 (commit 3c46c01):
 *
 *   cc -std=c11 -I include tests/data/v1/make_v1.c .libs/libkeyjournal.a \
 *      -lsodium -lzstd -lxxhash -lpthread -o make_v1
 *   ./make_v1 tests/data/v1/snapshot tests/data/v1/journal
 *
 * The rows follow v1_row() in tests/test_upgrade.c, which must stay in
 * step with this file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyjournal/store.h"

/* tests/testutil.c's tu_key */
static const uint8_t key[KJ_KEY_BYTES] = {
    0x6b, 0x65, 0x79, 0x6a, 0x6f, 0x75, 0x72, 0x6e, 0x61, 0x6c, 0x2d,
    0x74, 0x65, 0x73, 0x74, 0x2d, 0x6b, 0x65, 0x79, 0x00, 0x01, 0x02,
    0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c};

static void val(char *out, size_t cap, const char *tag, int i) {
  int n = snprintf(out, cap, "%s-%03d:", tag, i);
  int end = n + 20 + i % 50;
  for (int j = n; j < end; j++)
    out[j] = (char)('a' + (i + j) % 26);
  out[end] = 0;
}

static int put(kj_store *s, unsigned t, int i, const char *tag) {
  char k[16], v[128];
  snprintf(k, sizeof k, "k%03d", i);
  val(v, sizeof v, tag, i);
  return kj_put(s, NULL, t, k, strlen(k), v, strlen(v));
}

static int del(kj_store *s, unsigned t, int i) {
  char k[16];
  snprintf(k, sizeof k, "k%03d", i);
  return kj_delete(s, NULL, t, k, strlen(k));
}

static kj_store *open_at(const char *dir) {
  kj_options o = KJ_OPTIONS_INIT;
  o.key = key;
  o.segment_bytes = 64 * 1024;
  o.snapshot_threshold = UINT64_MAX;
  kj_store *s = NULL;
  char *em = NULL;
  if (kj_store_open(dir, &o, &s, &em)) {
    fprintf(stderr, "open %s: %s\n", dir, em ? em : "?");
    exit(1);
  }
  return s;
}

int main(int argc, char **argv) {
  if (argc != 3)
    return 2;
  int rc = 0;
  /* With a snapshot: 200 rows, a checkpoint, then deletes, updates and
   * new rows in the journal after it. */
  kj_store *s = open_at(argv[1]);
  for (int i = 0; i < 200; i++)
    rc |= put(s, 1, i, "old");
  rc |= kj_store_checkpoint(s);
  for (int i = 0; i < 50; i++)
    rc |= del(s, 1, i);
  for (int i = 100; i < 150; i++)
    rc |= put(s, 1, i, "new");
  for (int i = 200; i < 250; i++)
    rc |= put(s, 1, i, "new");
  for (int i = 0; i < 10; i++)
    rc |= put(s, 3, i, "three");
  rc |= kj_store_close(s);
  /* The journal alone: 100 rows, 10 of them deleted. */
  s = open_at(argv[2]);
  for (int i = 0; i < 100; i++)
    rc |= put(s, 1, i, "old");
  for (int i = 0; i < 10; i++)
    rc |= del(s, 1, i);
  rc |= kj_store_close(s);
  return rc ? 1 : 0;
}
