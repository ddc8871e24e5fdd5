/*
 * tests/test_signal.c - the Signal store (keyjournal/signal.h) on the
 * native backend: every rule of the contract for identity keys, sessions,
 * pre-keys, signed pre-keys and sender keys, argument checks that change
 * nothing, transactions, slot isolation, persistence, the exact row layout
 * of doc/FORMAT.md section 8, and decoders that refuse damaged rows.
 *
 * Slots are made by writing their table-2 row directly (a slot exists while
 * that row does), so this program depends on no other store.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyjournal/signal.h"
#include "tap.h"
#include "testutil.h"

/* ---- helpers -------------------------------------------------------------
 */

static size_t id_key(uint8_t *k, uint32_t dev, uint32_t id) {
  tu_be32(k, dev);
  tu_be32(k + 4, id);
  return 8;
}

static int session_is(kj_backend *b, kj_tx *t, uint32_t dev, const char *a,
                      const char *want) {
  void *r = NULL;
  size_t rl = 0;
  int rc = kj_session_get(b, t, dev, a, strlen(a), &r, &rl);
  int res = rc == KJ_OK && rl == strlen(want) && !memcmp(r, want, rl);
  if (!res)
    printf("#   session %s: rc %d len %zu\n", a, rc, rl);
  kj_free(r);
  return res;
}

static int session_absent(kj_backend *b, kj_tx *t, uint32_t dev,
                          const char *a) {
  void *r = (void *)1;
  size_t rl = 1;
  int rc = kj_session_get(b, t, dev, a, strlen(a), &r, &rl);
  return rc == KJ_NOTFOUND && r == NULL && rl == 0;
}

/* "id:uploaded:record,..." for a pre-key list; "" for none. */
static char *list_str(const kj_prekey_list *l) {
  tu_buf s;
  tu_buf_init(&s);
  for (size_t i = 0; l && i < l->n; i++)
    tu_buf_addf(&s, "%s%u:%d:%.*s", i ? "," : "", l->v[i].id, l->v[i].uploaded,
                (int)l->v[i].record.len, (const char *)l->v[i].record.p);
  return tu_buf_take(&s);
}

/* 1 if the list call returned rc_want and its list reads as want. */
static int list_is(int rc, kj_prekey_list *l, const char *want) {
  char *s = list_str(l);
  int res = rc == KJ_OK && l && !strcmp(s, want);
  if (!res)
    printf("#   list: rc %d got \"%s\" want \"%s\"\n", rc, s, want);
  free(s);
  kj_free(l);
  return res;
}

static int prekey_is(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id,
                     const char *want) {
  kj_prekey_list *l = NULL;
  int rc = kj_prekey_load(b, t, dev, id, &l);
  return list_is(rc, l, want);
}

static int prekey_absent(kj_backend *b, kj_tx *t, uint32_t dev, uint32_t id) {
  kj_prekey_list *l = (kj_prekey_list *)1;
  int rc = kj_prekey_load(b, t, dev, id, &l);
  return rc == KJ_NOTFOUND && l == NULL;
}

static uint32_t max_id(kj_backend *b, kj_tx *t, uint32_t dev) {
  uint32_t m = 0xdeadbeef;
  int rc = kj_prekey_max_id(b, t, dev, &m);
  return rc ? 0xdeadbeef : m;
}

static const uint8_t K1[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                               12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                               23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t K2[32] = {0xAA, 0xBB, 0xCC};

/* ---- identity keys --------------------------------------------------------
 */

static void test_identity(kj_backend *b) {
  uint8_t got[32];
  is(kj_identity_load(b, NULL, 1, "alice", 5, got), KJ_NOTFOUND,
     "identity: load absent is NOTFOUND");
  is(kj_identity_put(b, NULL, 1, "alice", 5, K1), KJ_OK, "identity: put");
  memset(got, 0, sizeof got);
  is(kj_identity_load(b, NULL, 1, "alice", 5, got), KJ_OK, "identity: load");
  ok(!memcmp(got, K1, 32), "identity: load returns the key put");
  is(kj_identity_put(b, NULL, 1, "alice", 5, K2), KJ_OK, "identity: put again");
  kj_identity_load(b, NULL, 1, "alice", 5, got);
  ok(!memcmp(got, K2, 32), "identity: a put replaces the key (upsert)");

  /* Addresses are bytes: embedded NULs, and a prefix is another address. */
  is(kj_identity_put(b, NULL, 1, "a\0b", 3, K1), KJ_OK, "identity: NUL addr");
  is(kj_identity_load(b, NULL, 1, "a\0c", 3, got), KJ_NOTFOUND,
     "identity: a\\0c is not a\\0b");
  is(kj_identity_load(b, NULL, 1, "a", 1, got), KJ_NOTFOUND,
     "identity: a prefix of an address is not that address");

  /* Exact row (FORMAT.md 8, table 10): dev|addr -> 01, 32 key bytes. */
  uint8_t k[64], v[33];
  size_t kl = tu_slot_key(k, 1, "alice", 5);
  v[0] = 1;
  memcpy(v + 1, K2, 32);
  ok(tu_raw_eq(b, T_IDENTITY, k, kl, v, 33), "identity: row layout");

  uint8_t big[KJ_MAX_ID + 1];
  memset(big, 'x', sizeof big);
  is(kj_identity_put(b, NULL, 1, big, KJ_MAX_ID, K1), KJ_OK,
     "identity: address of KJ_MAX_ID bytes");
  is(kj_identity_load(b, NULL, 1, big, KJ_MAX_ID, got), KJ_OK,
     "identity: ... loads");

  is(kj_identity_delete(b, NULL, 1, "alice", 5), KJ_OK, "identity: delete");
  is(kj_identity_load(b, NULL, 1, "alice", 5, got), KJ_NOTFOUND,
     "identity: deleted is NOTFOUND");
  FAILS_CLEAN(b, KJ_OK, kj_identity_delete(b, NULL, 1, "alice", 5),
              "identity: delete of an absent address is OK");

  /* A load that fails leaves key_out alone. */
  memset(got, 0x5a, sizeof got);
  kj_identity_load(b, NULL, 1, "nobody", 6, got);
  ok(got[0] == 0x5a && got[31] == 0x5a, "identity: NOTFOUND leaves key_out");

  /* 33-byte keys (libsignal's form): kept as given; the 32-byte load
   * gives the key without its type byte. Row: 01, the 33 bytes. */
  uint8_t k33[33], got33[33];
  k33[0] = 0x05;
  memcpy(k33 + 1, K1, 32);
  size_t glen = 99;
  is(kj_identity_put_key(b, NULL, 1, "dave", 4, k33, 33), KJ_OK,
     "identity: put_key of 33 bytes");
  kl = tu_slot_key(k, 1, "dave", 4);
  uint8_t v34[34] = {1};
  memcpy(v34 + 1, k33, 33);
  ok(tu_raw_eq(b, T_IDENTITY, k, kl, v34, 34),
     "identity: row layout of a 33-byte key");
  is(kj_identity_get_key(b, NULL, 1, "dave", 4, got33, &glen), KJ_OK,
     "identity: get_key");
  ok(glen == 33 && !memcmp(got33, k33, 33), "identity: ... all 33 bytes");
  memset(got, 0, sizeof got);
  is(kj_identity_load(b, NULL, 1, "dave", 4, got), KJ_OK,
     "identity: load of a 33-byte key");
  ok(!memcmp(got, K1, 32), "identity: ... is the key without its type byte");
  is(kj_identity_put_key(b, NULL, 1, "dave", 4, K2, 32), KJ_OK,
     "identity: put_key of 32 bytes replaces it");
  kj_identity_get_key(b, NULL, 1, "dave", 4, got33, &glen);
  ok(glen == 32 && !memcmp(got33, K2, 32), "identity: ... 32 bytes back");
  ok(tu_raw_eq(b, T_IDENTITY, k, kl, v, 33),
     "identity: ... the row of kj_identity_put (01, 32 bytes)");
  memset(got33, 0x5a, sizeof got33);
  is(kj_identity_get_key(b, NULL, 1, "nobody", 6, got33, &glen), KJ_NOTFOUND,
     "identity: get_key absent is NOTFOUND");
  ok(glen == 0 && got33[0] == 0x5a, "identity: ... klen 0, key_out alone");
  FAILS_CLEAN(b, KJ_EINVAL, kj_identity_put_key(b, NULL, 1, "d", 1, k33, 34),
              "identity: put_key of 34 bytes is EINVAL");
  FAILS_CLEAN(b, KJ_EINVAL, kj_identity_put_key(b, NULL, 1, "d", 1, k33, 31),
              "identity: put_key of 31 bytes is EINVAL");
  FAILS_CLEAN(b, KJ_EINVAL, kj_identity_put_key(b, NULL, 1, "d", 1, NULL, 32),
              "identity: put_key of NULL is EINVAL");
  ok(strstr(kj_backend_errmsg(b), "kj_identity_put_key: key") != NULL,
     "identity: ... says which argument (%s)", kj_backend_errmsg(b));
  is(kj_identity_get_key(b, NULL, 1, "dave", 4, got33, NULL), KJ_EINVAL,
     "identity: get_key with NULL klen is EINVAL");
  is(kj_identity_get_key(b, NULL, 1, "dave", 4, NULL, &glen), KJ_EINVAL,
     "identity: get_key into NULL is EINVAL");
  kj_identity_delete(b, NULL, 1, "dave", 4);

  kj_identity_put(b, NULL, 1, "alice", 5, K1);
  FAILS_CLEAN(b, KJ_EINVAL, kj_identity_put(b, NULL, 1, "alice", 5, NULL),
              "identity: key NULL is EINVAL");
  FAILS_CLEAN(b, KJ_EINVAL, kj_identity_put(b, NULL, 1, NULL, 5, K2),
              "identity: address NULL is EINVAL");
  FAILS_CLEAN(b, KJ_EINVAL, kj_identity_put(b, NULL, 1, "alice", 0, K2),
              "identity: empty address is EINVAL");
  FAILS_CLEAN(b, KJ_EINVAL, kj_identity_put(b, NULL, 1, big, KJ_MAX_ID + 1, K2),
              "identity: address of KJ_MAX_ID+1 bytes is EINVAL");
  FAILS_CLEAN(b, KJ_EINVAL, kj_identity_delete(b, NULL, 1, "alice", 0),
              "identity: delete with empty address is EINVAL");
  FAILS_CLEAN(b, KJ_EINVAL, kj_identity_delete(b, NULL, 1, big, KJ_MAX_ID + 1),
              "identity: delete with oversize address is EINVAL");
  is(kj_identity_load(b, NULL, 1, "alice", 5, NULL), KJ_EINVAL,
     "identity: load into NULL is EINVAL");
  is(kj_identity_load(b, NULL, 1, "", 0, got), KJ_EINVAL,
     "identity: load of empty address is EINVAL");
  is(kj_identity_put(NULL, NULL, 1, "alice", 5, K1), KJ_EINVAL,
     "identity: NULL backend is EINVAL");
  ok(kj_backend_errmsg(b)[0] != '\0', "identity: EINVAL leaves a detail");
}

/* ---- sessions -------------------------------------------------------------
 */

static void test_session(kj_backend *b) {
  int has = 7;
  is(kj_session_has(b, NULL, 1, "bob", 3, &has), KJ_OK, "session: has absent");
  is(has, 0, "session: has absent is 0");
  ok(session_absent(b, NULL, 1, "bob"), "session: get absent is NOTFOUND");
  is(kj_session_put(b, NULL, 1, "bob", 3, "rec1", 4), KJ_OK, "session: put");
  ok(session_is(b, NULL, 1, "bob", "rec1"), "session: get");
  is(kj_session_has(b, NULL, 1, "bob", 3, &has), KJ_OK, "session: has");
  is(has, 1, "session: has is 1");
  is(kj_session_put(b, NULL, 1, "bob", 3, "record2", 7), KJ_OK,
     "session: put again");
  ok(session_is(b, NULL, 1, "bob", "record2"),
     "session: a put replaces the record (upsert)");

  uint8_t k[64];
  size_t kl = tu_slot_key(k, 1, "bob", 3);
  ok(tu_raw_eq(b, T_SESSION, k, kl, "\x01record2", 8), "session: row layout");

  /* Records up to KJ_MAX_RECORD. */
  uint8_t *big = malloc(KJ_MAX_RECORD + 1);
  memset(big, 'r', KJ_MAX_RECORD + 1);
  big[KJ_MAX_RECORD - 1] = 'z';
  is(kj_session_put(b, NULL, 1, "carol", 5, big, KJ_MAX_RECORD), KJ_OK,
     "session: record of KJ_MAX_RECORD bytes");
  void *r = NULL;
  size_t rl = 0;
  is(kj_session_get(b, NULL, 1, "carol", 5, &r, &rl), KJ_OK,
     "session: ... gets");
  ok(rl == KJ_MAX_RECORD && r && !memcmp(r, big, rl),
     "session: ... with every byte");
  kj_free(r);

  FAILS_CLEAN(b, KJ_EINVAL,
              kj_session_put(b, NULL, 1, "bob", 3, big, KJ_MAX_RECORD + 1),
              "session: record of KJ_MAX_RECORD+1 bytes is EINVAL");
  FAILS_CLEAN(b, KJ_EINVAL, kj_session_put(b, NULL, 1, "bob", 3, "x", 0),
              "session: empty record is EINVAL");
  FAILS_CLEAN(b, KJ_EINVAL, kj_session_put(b, NULL, 1, "bob", 3, NULL, 4),
              "session: NULL record is EINVAL");
  FAILS_CLEAN(b, KJ_EINVAL, kj_session_put(b, NULL, 1, "", 0, "rec", 3),
              "session: empty address is EINVAL");
  FAILS_CLEAN(b, KJ_EINVAL, kj_session_delete(b, NULL, 1, NULL, 3),
              "session: delete with NULL address is EINVAL");
  free(big);
  r = (void *)1;
  is(kj_session_get(b, NULL, 1, "bob", 3, &r, NULL), KJ_EINVAL,
     "session: get with NULL rlen is EINVAL");
  ok(r == NULL, "session: ... and *rec is NULL");
  is(kj_session_get(b, NULL, 1, "bob", 3, NULL, &rl), KJ_EINVAL,
     "session: get with NULL rec is EINVAL");
  is(kj_session_has(b, NULL, 1, "bob", 3, NULL), KJ_EINVAL,
     "session: has with NULL out is EINVAL");

  is(kj_session_delete(b, NULL, 1, "bob", 3), KJ_OK, "session: delete");
  ok(session_absent(b, NULL, 1, "bob"), "session: deleted is NOTFOUND");
  kj_session_has(b, NULL, 1, "bob", 3, &has);
  is(has, 0, "session: deleted has is 0");
  FAILS_CLEAN(b, KJ_OK, kj_session_delete(b, NULL, 1, "bob", 3),
              "session: delete of an absent address is OK");
}

/* ---- one-time pre-keys ----------------------------------------------------
 */

static void test_prekey(kj_backend *b) {
  is(max_id(b, NULL, 1), 0, "prekey: max_id is 0 when there are none");
  ok(prekey_absent(b, NULL, 1, 5), "prekey: load absent is NOTFOUND");
  is(kj_prekey_store(b, NULL, 1, 5, "five", 4, 0), KJ_OK, "prekey: store");
  ok(prekey_is(b, NULL, 1, 5, "5:0:five"), "prekey: load");
  is(kj_prekey_store(b, NULL, 1, 5, "FIVE!", 5, 1), KJ_OK,
     "prekey: store again");
  ok(prekey_is(b, NULL, 1, 5, "5:1:FIVE!"),
     "prekey: a store replaces record and flag (upsert)");

  uint8_t k[16];
  size_t kl = id_key(k, 1, 5);
  ok(tu_raw_eq(b, T_PREKEY, k, kl,
               "\x01\x01"
               "FIVE!",
               7),
     "prekey: row layout (dev, u32 BE id -> 01, uploaded, record)");

  /* Batch: n 0 is nothing; duplicates: the last one wins. */
  FAILS_CLEAN(b, KJ_OK, kj_prekey_store_batch(b, NULL, 1, NULL, 0, 1),
              "prekey: empty batch is OK and changes nothing");
  kj_prekey keys[] = {
      {9, 1, {(const uint8_t *)"nine", 4}},
      {1, 1, {(const uint8_t *)"one", 3}},
      {9, 1, {(const uint8_t *)"NINE", 4}},
  };
  is(kj_prekey_store_batch(b, NULL, 1, keys, 3, 0), KJ_OK,
     "prekey: store_batch");
  ok(prekey_is(b, NULL, 1, 9, "9:0:NINE"),
     "prekey: batch duplicate id: the last one wins; flag from the call");
  ok(prekey_is(b, NULL, 1, 1, "1:0:one"), "prekey: batch item stored");

  /* load_batch: only existing ids, ascending, each once. */
  uint32_t want[] = {9, 3, 1, 9, 5, 1, 1000};
  kj_prekey_list *l = NULL;
  int rc = kj_prekey_load_batch(b, NULL, 1, want, 7, &l);
  ok(list_is(rc, l, "1:0:one,5:1:FIVE!,9:0:NINE"),
     "prekey: load_batch returns only existing ids, ascending, once each");
  l = NULL;
  rc = kj_prekey_load_batch(b, NULL, 1, NULL, 0, &l);
  ok(list_is(rc, l, ""), "prekey: load_batch of nothing is an empty list");
  uint32_t none[] = {2, 3};
  l = NULL;
  rc = kj_prekey_load_batch(b, NULL, 1, none, 2, &l);
  ok(list_is(rc, l, ""), "prekey: load_batch of absent ids is an empty list");

  /* max_id. */
  is(max_id(b, NULL, 1), 9, "prekey: max_id");
  kj_prekey_store(b, NULL, 1, 65536, "big", 3, 0);
  is(max_id(b, NULL, 1), 65536, "prekey: max_id is numeric (65536 > 9)");
  kj_prekey_store(b, NULL, 1, UINT32_MAX, "max", 3, 0);
  is(max_id(b, NULL, 1), UINT32_MAX, "prekey: max_id of id 0xFFFFFFFF");
  kj_prekey_remove(b, NULL, 1, UINT32_MAX);
  kj_prekey_remove(b, NULL, 1, 65536);
  is(max_id(b, NULL, 1), 9, "prekey: max_id after removing the largest");

  /* remove, and mark_uploaded that never resurrects. */
  is(kj_prekey_remove(b, NULL, 1, 9), KJ_OK, "prekey: remove");
  ok(prekey_absent(b, NULL, 1, 9), "prekey: removed is NOTFOUND");
  FAILS_CLEAN(b, KJ_OK, kj_prekey_remove(b, NULL, 1, 9),
              "prekey: remove of an absent id is OK");
  uint32_t mark[] = {1, 9, 42};
  is(kj_prekey_mark_uploaded(b, NULL, 1, mark, 3), KJ_OK,
     "prekey: mark_uploaded");
  ok(prekey_is(b, NULL, 1, 1, "1:1:one"), "prekey: marked id is uploaded");
  ok(prekey_absent(b, NULL, 1, 9),
     "prekey: mark_uploaded never resurrects a removed pre-key");
  ok(prekey_absent(b, NULL, 1, 42),
     "prekey: mark_uploaded never creates an unknown id");
  ok(prekey_is(b, NULL, 1, 5, "5:1:FIVE!"), "prekey: unmarked id unchanged");
  FAILS_CLEAN(b, KJ_OK, kj_prekey_mark_uploaded(b, NULL, 1, NULL, 0),
              "prekey: mark_uploaded of nothing is OK");
  is(max_id(b, NULL, 1), 5, "prekey: max_id after removals");

  /* id 0 is an id like any other. */
  is(kj_prekey_store(b, NULL, 1, 0, "zero", 4, 0), KJ_OK, "prekey: id 0");
  ok(prekey_is(b, NULL, 1, 0, "0:0:zero"), "prekey: id 0 loads");

  /* Bad arguments change nothing, even for an id that exists. */
  FAILS_CLEAN(b, KJ_EINVAL, kj_prekey_store(b, NULL, 1, 5, "x", 1, 2),
              "prekey: uploaded 2 is EINVAL");
  FAILS_CLEAN(b, KJ_EINVAL, kj_prekey_store(b, NULL, 1, 5, "x", 1, -1),
              "prekey: uploaded -1 is EINVAL");
  FAILS_CLEAN(b, KJ_EINVAL, kj_prekey_store(b, NULL, 1, 5, "x", 0, 0),
              "prekey: empty record is EINVAL");
  FAILS_CLEAN(b, KJ_EINVAL, kj_prekey_store(b, NULL, 1, 5, NULL, 3, 0),
              "prekey: NULL record is EINVAL");
  FAILS_CLEAN(b, KJ_EINVAL,
              kj_prekey_store(b, NULL, 1, 5, "x", (size_t)KJ_MAX_RECORD + 1, 0),
              "prekey: record of KJ_MAX_RECORD+1 bytes is EINVAL");
  FAILS_CLEAN(b, KJ_EINVAL, kj_prekey_store_batch(b, NULL, 1, keys, 3, 2),
              "prekey: batch with uploaded 2 is EINVAL");
  FAILS_CLEAN(b, KJ_EINVAL, kj_prekey_store_batch(b, NULL, 1, NULL, 2, 0),
              "prekey: batch NULL with n 2 is EINVAL");
  FAILS_CLEAN(b, KJ_EINVAL, kj_prekey_mark_uploaded(b, NULL, 1, NULL, 1),
              "prekey: mark_uploaded NULL with n 1 is EINVAL");
  FAILS_CLEAN(b, KJ_EINVAL, kj_prekey_mark_uploaded(b, NULL, 1, mark, 100001),
              "prekey: mark_uploaded of 100001 ids is EINVAL");
  l = (kj_prekey_list *)1;
  is(kj_prekey_load_batch(b, NULL, 1, NULL, 1, &l), KJ_EINVAL,
     "prekey: load_batch NULL with n 1 is EINVAL");
  ok(l == NULL, "prekey: ... and *out is NULL");
  is(kj_prekey_load(b, NULL, 1, 5, NULL), KJ_EINVAL,
     "prekey: load into NULL is EINVAL");
  is(kj_prekey_max_id(b, NULL, 1, NULL), KJ_EINVAL,
     "prekey: max_id into NULL is EINVAL");

  /* Batch atomicity: one bad record anywhere stores nothing. */
  kj_prekey bad[] = {
      {100, 0, {(const uint8_t *)"a", 1}},
      {5, 0, {(const uint8_t *)"b", 1}},
      {101, 0, {(const uint8_t *)"c", 0}},
  };
  FAILS_CLEAN(b, KJ_EINVAL, kj_prekey_store_batch(b, NULL, 1, bad, 3, 0),
              "prekey: batch with an empty record is EINVAL");
  bad[2].record = (kj_blob){NULL, 1};
  FAILS_CLEAN(b, KJ_EINVAL, kj_prekey_store_batch(b, NULL, 1, bad, 3, 0),
              "prekey: batch with a NULL record is EINVAL");
  bad[2].record = (kj_blob){(const uint8_t *)"c", (size_t)KJ_MAX_RECORD + 1};
  FAILS_CLEAN(b, KJ_EINVAL, kj_prekey_store_batch(b, NULL, 1, bad, 3, 0),
              "prekey: batch with an oversize record is EINVAL");
  ok(prekey_absent(b, NULL, 1, 100), "prekey: ... its good items absent");
}

/* max_id against a brute-force maximum over random id sets, with
 * neighbour slots full of larger and smaller ids. */
static void test_max_id_random(void) {
  kj_backend *b = tu_backend_open(NULL, NULL);
  if (!b) {
    ok(0, "max_id random: backend");
    return;
  }
  tu_make_slot(b, 1);
  tu_make_slot(b, 2);
  tu_make_slot(b, 3);
  kj_prekey_store(b, NULL, 1, UINT32_MAX, "n", 1, 0);
  kj_prekey_store(b, NULL, 3, 0, "n", 1, 0);
  tu_rng r;
  tu_rng_seed(&r, 42);
  int bad = 0;
  uint32_t ids[64];
  size_t n = 0;
  for (int round = 0; round < 300; round++) {
    if (n < 64 && tu_rng_below(&r, 3)) {
      uint32_t id;
      switch (tu_rng_below(&r, 4)) {
      case 0:
        id = (uint32_t)tu_rng_below(&r, 300);
        break;
      case 1:
        id = UINT32_MAX - (uint32_t)tu_rng_below(&r, 3);
        break;
      default:
        id = (uint32_t)tu_rng_next(&r);
      }
      kj_prekey_store(b, NULL, 2, id, "k", 1, 0);
      size_t j;
      for (j = 0; j < n && ids[j] != id; j++)
        ;
      if (j == n)
        ids[n++] = id;
    } else if (n) {
      size_t j = (size_t)tu_rng_below(&r, n);
      kj_prekey_remove(b, NULL, 2, ids[j]);
      ids[j] = ids[--n];
    }
    uint32_t want = 0;
    for (size_t j = 0; j < n; j++)
      want = ids[j] > want ? ids[j] : want;
    uint32_t got = max_id(b, NULL, 2);
    if (got != want) {
      printf("#   round %d: max_id %u want %u\n", round, got, want);
      bad++;
    }
  }
  is(bad, 0, "max_id random: equals the brute-force maximum every round");
  is(max_id(b, NULL, 1), UINT32_MAX, "max_id random: slot 1 unaffected");
  is(max_id(b, NULL, 3), 0, "max_id random: slot 3 holds only id 0");

  /* The last possible slot: its prefix has no successor. */
  is(tu_make_slot(b, UINT32_MAX), KJ_OK, "max_id: slot 0xFFFFFFFF");
  is(max_id(b, NULL, UINT32_MAX), 0, "max_id: last slot empty is 0");
  kj_prekey_store(b, NULL, UINT32_MAX, 77, "k", 1, 0);
  kj_prekey_store(b, NULL, UINT32_MAX, 7, "k", 1, 0);
  is(max_id(b, NULL, UINT32_MAX), 77, "max_id: last slot");
  kj_backend_close(b);
}

/* ---- signed pre-keys ------------------------------------------------------
 */

static void test_signed_prekey(kj_backend *b) {
  kj_prekey_list *l = NULL;
  int rc = kj_signed_prekey_load_all(b, NULL, 1, &l);
  ok(list_is(rc, l, ""), "signed: load_all of none is an empty list");
  l = (kj_prekey_list *)1;
  is(kj_signed_prekey_load(b, NULL, 1, 2, &l), KJ_NOTFOUND,
     "signed: load absent is NOTFOUND");
  ok(l == NULL, "signed: ... and *out is NULL");

  /* Little-endian keys would sort 256 (00 01 00 00) before 2. */
  uint32_t ids[] = {65536, 2, 256, 16777216, 10};
  const char *recs[] = {"r65536", "r2", "r256", "r16777216", "r10"};
  for (int i = 0; i < 5; i++)
    is(kj_signed_prekey_store(b, NULL, 1, ids[i], recs[i], strlen(recs[i])),
       KJ_OK, "signed: store %u", ids[i]);
  l = NULL;
  rc = kj_signed_prekey_load_all(b, NULL, 1, &l);
  ok(list_is(rc, l,
             "2:0:r2,10:0:r10,256:0:r256,65536:0:r65536,16777216:0:"
             "r16777216"),
     "signed: load_all ascending by numeric id");
  l = NULL;
  rc = kj_signed_prekey_load(b, NULL, 1, 256, &l);
  ok(list_is(rc, l, "256:0:r256"), "signed: load (uploaded is 0)");

  kj_signed_prekey_store(b, NULL, 1, 256, "new", 3);
  l = NULL;
  rc = kj_signed_prekey_load(b, NULL, 1, 256, &l);
  ok(list_is(rc, l, "256:0:new"), "signed: a store replaces (upsert)");
  uint8_t k[16];
  size_t kl = id_key(k, 1, 256);
  ok(tu_raw_eq(b, T_SIGNED, k, kl, "\x01new", 4), "signed: row layout");

  is(kj_signed_prekey_remove(b, NULL, 1, 65536), KJ_OK, "signed: remove");
  FAILS_CLEAN(b, KJ_OK, kj_signed_prekey_remove(b, NULL, 1, 65536),
              "signed: remove of an absent id is OK");
  l = NULL;
  rc = kj_signed_prekey_load_all(b, NULL, 1, &l);
  ok(list_is(rc, l, "2:0:r2,10:0:r10,256:0:new,16777216:0:r16777216"),
     "signed: load_all after remove");

  FAILS_CLEAN(b, KJ_EINVAL, kj_signed_prekey_store(b, NULL, 1, 2, "x", 0),
              "signed: empty record is EINVAL");
  FAILS_CLEAN(b, KJ_EINVAL, kj_signed_prekey_store(b, NULL, 1, 2, NULL, 1),
              "signed: NULL record is EINVAL");
  FAILS_CLEAN(
      b, KJ_EINVAL,
      kj_signed_prekey_store(b, NULL, 1, 2, "x", (size_t)KJ_MAX_RECORD + 1),
      "signed: oversize record is EINVAL");
  is(kj_signed_prekey_load_all(b, NULL, 1, NULL), KJ_EINVAL,
     "signed: load_all into NULL is EINVAL");
  is(kj_signed_prekey_load(b, NULL, 1, 2, NULL), KJ_EINVAL,
     "signed: load into NULL is EINVAL");
}

/* ---- sender keys ----------------------------------------------------------
 */

static void test_sender_key(kj_backend *b) {
  const char *n = "group@g.us::alice:1";
  size_t nl = strlen(n);
  void *r = (void *)1;
  size_t rl = 1;
  is(kj_sender_key_get(b, NULL, 1, n, nl, &r, &rl), KJ_NOTFOUND,
     "sender: get absent is NOTFOUND");
  ok(r == NULL && rl == 0, "sender: ... with NULL outputs");
  is(kj_sender_key_put(b, NULL, 1, n, nl, "sk1", 3), KJ_OK, "sender: put");
  is(kj_sender_key_put(b, NULL, 1, n, nl, "sk-two", 6), KJ_OK,
     "sender: put again");
  is(kj_sender_key_get(b, NULL, 1, n, nl, &r, &rl), KJ_OK, "sender: get");
  ok(rl == 6 && !memcmp(r, "sk-two", 6), "sender: a put replaces (upsert)");
  kj_free(r);
  uint8_t k[64];
  size_t kl = tu_slot_key(k, 1, n, nl);
  ok(tu_raw_eq(b, T_SENDER, k, kl, "\x01sk-two", 7), "sender: row layout");
  FAILS_CLEAN(b, KJ_EINVAL, kj_sender_key_put(b, NULL, 1, n, 0, "x", 1),
              "sender: empty name is EINVAL");
  FAILS_CLEAN(b, KJ_EINVAL, kj_sender_key_put(b, NULL, 1, n, nl, "x", 0),
              "sender: empty record is EINVAL");
  FAILS_CLEAN(b, KJ_EINVAL,
              kj_sender_key_put(b, NULL, 1, n, KJ_MAX_ID + 1, "x", 1),
              "sender: oversize name is EINVAL");
  is(kj_sender_key_get(b, NULL, 1, n, nl, NULL, &rl), KJ_EINVAL,
     "sender: get into NULL is EINVAL");
  is(kj_sender_key_delete(b, NULL, 1, n, nl), KJ_OK, "sender: delete");
  r = NULL;
  is(kj_sender_key_get(b, NULL, 1, n, nl, &r, &rl), KJ_NOTFOUND,
     "sender: deleted is NOTFOUND");
  FAILS_CLEAN(b, KJ_OK, kj_sender_key_delete(b, NULL, 1, n, nl),
              "sender: delete of an absent name is OK");
}

/* ---- issue-17 rows: names, user records, the local identity --------------
 */

/* The bytes of FORMAT.md section 8 for each new row. */
static void test_i17_rows(kj_backend *b) {
  /* A name session: table 11 at dev|lp(name)|u32 BE device id, its user
   * record in table 15 under the same key. */
  uint8_t k[64];
  memcpy(k,
         "\x00\x00\x00\x01\x00\x03"
         "bob\x00\x00\x01\x02",
         13);
  is(kj_session_store(b, NULL, 1, "bob", 3, 258, "rec", 3, "usr", 3), KJ_OK,
     "i17: session_store");
  ok(tu_raw_eq(b, T_SESSION, k, 13, "\x01rec", 4),
     "i17: the session row: dev, lp(name), u32 device id");
  ok(tu_raw_eq(b, 15, k, 13, "\x01usr", 4),
     "i17: its user record in table 15, same key");
  is(kj_session_store(b, NULL, 1, "bob", 3, 258, "rec2", 4, NULL, 0), KJ_OK,
     "i17: session_store without a user record");
  uint8_t *v = NULL;
  size_t vl = 0;
  is(tu_raw_get(b, 15, k, 13, &v, &vl), KJ_NOTFOUND,
     "i17: ... the table-15 row is gone");
  kj_session_store(b, NULL, 1, "bob", 3, 258, "rec", 3, "usr", 3);
  is(kj_session_put(b, NULL, 1, k + 4, 9, "p", 1), KJ_OK,
     "i17: session_put at the same address");
  is(tu_raw_get(b, 15, k, 13, &v, &vl), KJ_NOTFOUND,
     "i17: ... drops the table-15 row");
  kj_session_store(b, NULL, 1, "bob", 3, 258, "rec", 3, "usr", 3);
  is(kj_session_delete(b, NULL, 1, k + 4, 9), KJ_OK,
     "i17: session_delete at that address");
  ok(tu_raw_get(b, 15, k, 13, &v, &vl) == KJ_NOTFOUND &&
         tu_raw_get(b, T_SESSION, k, 13, &v, &vl) == KJ_NOTFOUND,
     "i17: ... drops both rows");
  kj_session_store(b, NULL, 1, "bob", 3, 258, "rec", 3, "usr", 3);
  uint64_t n = 0;
  is(kj_session_remove_all(b, NULL, 1, "bob", 3, &n), KJ_OK,
     "i17: session_remove_all");
  ok(n == 1 && tu_raw_count(b, 15, k, 6) == 0 &&
         tu_raw_count(b, T_SESSION, k, 6) == 0,
     "i17: ... no row of the name left in table 11 or 15");

  /* A sender key's user record: table 16, the key of its table-14 row. */
  is(kj_sender_key_store(b, NULL, 1, "g", 1, "sk", 2, "su", 2), KJ_OK,
     "i17: sender_key_store");
  size_t kl = tu_slot_key(k, 1, "g", 1);
  ok(tu_raw_eq(b, T_SENDER, k, kl, "\x01sk", 3) &&
         tu_raw_eq(b, 16, k, kl, "\x01su", 3),
     "i17: sender key rows in tables 14 and 16");
  is(kj_sender_key_delete(b, NULL, 1, "g", 1), KJ_OK, "i17: sender delete");
  is(tu_raw_get(b, 16, k, kl, &v, &vl), KJ_NOTFOUND,
     "i17: ... the table-16 row goes too");

  /* The local identity: table 17 at dev: u32 LE registration id, 32
   * private bytes, rest: the public key. */
  kj_local_identity li;
  memset(&li, 0, sizeof li);
  li.registration_id = 0x01020304;
  li.public_len = 33;
  memset(li.public_key, 0xBB, 33);
  memset(li.private_key, 0xAA, 32);
  is(kj_local_identity_save(b, NULL, 1, &li), KJ_OK, "i17: local save");
  uint8_t want[1 + 4 + 32 + 33];
  want[0] = 1;
  memcpy(want + 1, "\x04\x03\x02\x01", 4);
  memset(want + 5, 0xAA, 32);
  memset(want + 37, 0xBB, 33);
  ok(tu_raw_eq(b, 17, "\x00\x00\x00\x01", 4, want, sizeof want),
     "i17: the table-17 row");
  ok(tu_raw_eq(b, T_DEVICE, "\x00\x00\x00\x01", 4, "\x01\x00", 2),
     "i17: ... the slot's table-2 row untouched");
}

/* Damaged issue-17 rows: the decoder's status, outputs cleared or left
 * alone, never a yes from a has. */
static void test_i17_corrupt(kj_backend *b) {
  uint8_t k[64];
  memcpy(k, "\x00\x00\x00\x01\x00\x01z\x00\x00\x00\x05", 11);
  tu_raw_put(b, T_SESSION, k, 11, "\x01r", 2);
  struct {
    const char *what, *v;
    size_t len;
    int want;
  } bad[] = {
      {"empty", "", 0, KJ_ECORRUPT},
      {"version only", "\x01", 1, KJ_ECORRUPT},
      {"version 2", "\x02u", 2, KJ_EFORMAT},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    tu_raw_put(b, 15, k, 11, bad[i].v, bad[i].len);
    void *r = (void *)1, *u = (void *)1;
    size_t rl = 1, ul = 1;
    is(kj_session_load(b, NULL, 1, "z", 1, 5, &r, &rl, &u, &ul), bad[i].want,
       "i17 corrupt: user record %s", bad[i].what);
    ok(!r && !u && !rl && !ul, "i17 corrupt: ... every output cleared");
    tu_raw_put(b, 16, "\x00\x00\x00\x01z", 5, bad[i].v, bad[i].len);
    tu_raw_put(b, T_SENDER, "\x00\x00\x00\x01z", 5, "\x01s", 2);
    r = u = (void *)1;
    is(kj_sender_key_load(b, NULL, 1, "z", 1, &r, &rl, &u, &ul), bad[i].want,
       "i17 corrupt: sender user record %s", bad[i].what);
    ok(!r && !u, "i17 corrupt: ... outputs cleared");
  }
  tu_raw_put(b, 15, k, 11, "\x01u", 2);
  tu_raw_put(b, T_SESSION, k, 11, "\x01", 1);
  int has = 7;
  is(kj_session_contains(b, NULL, 1, "z", 1, 5, &has), KJ_ECORRUPT,
     "i17 corrupt: contains over an empty record");
  is(has, 0, "i17 corrupt: ... has 0");
  void *r = NULL, *u = NULL;
  size_t rl, ul;
  is(kj_session_load(b, NULL, 1, "z", 1, 5, &r, &rl, &u, &ul), KJ_ECORRUPT,
     "i17 corrupt: load over an empty record");

  /* Pre-key has decodes the row too. */
  uint8_t pk[8];
  id_key(pk, 1, 42);
  tu_raw_put(b, T_PREKEY, pk, 8, "\x01\x02r", 3);
  has = 7;
  is(kj_prekey_has(b, NULL, 1, 42, &has), KJ_ECORRUPT,
     "i17 corrupt: prekey_has over an uploaded flag of 2");
  is(has, 0, "i17 corrupt: ... has 0");
  tu_raw_put(b, T_SIGNED, pk, 8, "\x01", 1);
  is(kj_signed_prekey_has(b, NULL, 1, 42, &has), KJ_ECORRUPT,
     "i17 corrupt: signed_prekey_has over an empty record");

  /* Local identity: 01, u32, 32, then 32 or 33 bytes. */
  uint8_t v[80];
  memset(v, 3, sizeof v);
  v[0] = 1;
  size_t lens[] = {0, 4, 37, 37 + 31, 37 + 34};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    tu_raw_put(b, 17, "\x00\x00\x00\x01", 4, v, lens[i]);
    kj_local_identity li;
    memset(&li, 0x5a, sizeof li);
    is(kj_local_identity_load(b, NULL, 1, &li), KJ_ECORRUPT,
       "i17 corrupt: local identity of %zu bytes", lens[i]);
    ok(li.registration_id == 0x5a5a5a5au, "i17 corrupt: ... out untouched");
  }
  tu_raw_put(b, 17, "\x00\x00\x00\x01", 4, v, 37 + 33);
  kj_local_identity li;
  is(kj_local_identity_load(b, NULL, 1, &li), KJ_OK,
     "i17 corrupt: 70 bytes is a good row");
  ok(li.public_len == 33 && li.registration_id == 0x03030303u,
     "i17 corrupt: ... read back");
  v[0] = 2;
  tu_raw_put(b, 17, "\x00\x00\x00\x01", 4, v, 37 + 33);
  is(kj_local_identity_load(b, NULL, 1, &li), KJ_EFORMAT,
     "i17 corrupt: local identity version 2");
}

/* ---- slots ----------------------------------------------------------------
 */

static void fill(kj_backend *b, uint32_t dev, const char *tag) {
  uint8_t key[32];
  memset(key, tag[0], sizeof key);
  kj_identity_put(b, NULL, dev, "addr", 4, key);
  kj_session_put(b, NULL, dev, "addr", 4, tag, strlen(tag));
  kj_prekey_store(b, NULL, dev, 7, tag, strlen(tag), 0);
  kj_signed_prekey_store(b, NULL, dev, 7, tag, strlen(tag));
  kj_sender_key_put(b, NULL, dev, "skn", 3, tag, strlen(tag));
}

static int slot_reads(kj_backend *b, uint32_t dev, const char *tag) {
  uint8_t key[32], want[32];
  memset(want, tag[0], sizeof want);
  int good = !kj_identity_load(b, NULL, dev, "addr", 4, key) &&
             !memcmp(key, want, 32) && session_is(b, NULL, dev, "addr", tag);
  char s[64];
  snprintf(s, sizeof s, "7:0:%s", tag);
  good = good && prekey_is(b, NULL, dev, 7, s);
  kj_prekey_list *l = NULL;
  int rc = kj_signed_prekey_load_all(b, NULL, dev, &l);
  good = good && list_is(rc, l, s);
  void *r = NULL;
  size_t rl = 0;
  good = good && !kj_sender_key_get(b, NULL, dev, "skn", 3, &r, &rl) &&
         rl == strlen(tag) && !memcmp(r, tag, rl);
  kj_free(r);
  return good;
}

static void test_slots(kj_backend *b) {
  fill(b, 1, "one");
  fill(b, 2, "two");
  ok(slot_reads(b, 1, "one"), "slots: slot 1 sees its own rows");
  ok(slot_reads(b, 2, "two"), "slots: slot 2 sees its own rows");
  kj_prekey_store(b, NULL, 2, 500, "x", 1, 0);
  is(max_id(b, NULL, 1), 7, "slots: max_id does not see another slot's ids");
  kj_session_delete(b, NULL, 2, "addr", 4);
  kj_prekey_remove(b, NULL, 2, 7);
  ok(slot_reads(b, 1, "one"), "slots: deletes in slot 2 leave slot 1");
  uint32_t ids[] = {7, 500};
  kj_prekey_list *l = NULL;
  int rc = kj_prekey_load_batch(b, NULL, 1, ids, 2, &l);
  ok(list_is(rc, l, "7:0:one"), "slots: load_batch stays in its slot");

  /* Slot 3 does not exist: writes are NOTFOUND, reads find nothing. */
  uint8_t got[32];
  kj_prekey one = {1, 0, {(const uint8_t *)"x", 1}};
  uint32_t id1 = 7;
  for (uint32_t dev = 0; dev <= 3; dev += 3) {
    FAILS_CLEAN(b, KJ_NOTFOUND, kj_identity_put(b, NULL, dev, "a", 1, K1),
                "slots: identity_put to missing slot %u", dev);
    FAILS_CLEAN(b, KJ_NOTFOUND, kj_identity_delete(b, NULL, dev, "addr", 4),
                "slots: identity_delete in missing slot %u", dev);
    FAILS_CLEAN(b, KJ_NOTFOUND, kj_session_put(b, NULL, dev, "a", 1, "r", 1),
                "slots: session_put to missing slot %u", dev);
    FAILS_CLEAN(b, KJ_NOTFOUND, kj_session_delete(b, NULL, dev, "a", 1),
                "slots: session_delete in missing slot %u", dev);
    FAILS_CLEAN(b, KJ_NOTFOUND, kj_prekey_store(b, NULL, dev, 1, "r", 1, 0),
                "slots: prekey_store to missing slot %u", dev);
    FAILS_CLEAN(b, KJ_NOTFOUND, kj_prekey_store_batch(b, NULL, dev, &one, 1, 0),
                "slots: prekey_store_batch to missing slot %u", dev);
    FAILS_CLEAN(b, KJ_NOTFOUND, kj_prekey_remove(b, NULL, dev, 1),
                "slots: prekey_remove in missing slot %u", dev);
    FAILS_CLEAN(b, KJ_NOTFOUND, kj_prekey_mark_uploaded(b, NULL, dev, &id1, 1),
                "slots: prekey_mark_uploaded in missing slot %u", dev);
    FAILS_CLEAN(b, KJ_NOTFOUND, kj_signed_prekey_store(b, NULL, dev, 1, "r", 1),
                "slots: signed_prekey_store to missing slot %u", dev);
    FAILS_CLEAN(b, KJ_NOTFOUND, kj_signed_prekey_remove(b, NULL, dev, 1),
                "slots: signed_prekey_remove in missing slot %u", dev);
    FAILS_CLEAN(b, KJ_NOTFOUND, kj_sender_key_put(b, NULL, dev, "n", 1, "r", 1),
                "slots: sender_key_put to missing slot %u", dev);
    FAILS_CLEAN(b, KJ_NOTFOUND, kj_sender_key_delete(b, NULL, dev, "n", 1),
                "slots: sender_key_delete in missing slot %u", dev);
    is(kj_identity_load(b, NULL, dev, "addr", 4, got), KJ_NOTFOUND,
       "slots: identity_load in missing slot %u finds nothing", dev);
    is(max_id(b, NULL, dev), 0, "slots: max_id in missing slot %u is 0", dev);
    l = NULL;
    rc = kj_signed_prekey_load_all(b, NULL, dev, &l);
    ok(list_is(rc, l, ""), "slots: load_all in missing slot %u is empty", dev);
  }

  /* A transaction of another backend is refused. */
  kj_backend *b2 = tu_backend_open(NULL, NULL);
  kj_tx *t2 = NULL;
  if (b2 && !kj_backend_begin(b2, &t2)) {
    FAILS_CLEAN(b, KJ_EINVAL, kj_identity_put(b, t2, 1, "a", 1, K1),
                "slots: a transaction of another backend is EINVAL");
    kj_backend_rollback(t2);
  } else {
    ok(0, "slots: second backend");
  }
  kj_backend_close(b2);
}

/* ---- transactions ---------------------------------------------------------
 */

/* Every kind of write in t; returns the first failure. */
static int tx_writes(kj_backend *b, kj_tx *t) {
  kj_prekey keys[] = {{21, 0, {(const uint8_t *)"b21", 3}},
                      {22, 0, {(const uint8_t *)"b22", 3}}};
  uint32_t mark = 1;
  int rc = kj_identity_put(b, t, 1, "tx", 2, K2);
  if (!rc)
    rc = kj_identity_delete(b, t, 1, "base", 4);
  if (!rc)
    rc = kj_session_put(b, t, 1, "tx", 2, "txs", 3);
  if (!rc)
    rc = kj_session_delete(b, t, 1, "base", 4);
  if (!rc)
    rc = kj_prekey_store(b, t, 1, 20, "p20", 3, 0);
  if (!rc)
    rc = kj_prekey_store_batch(b, t, 1, keys, 2, 1);
  if (!rc)
    rc = kj_prekey_mark_uploaded(b, t, 1, &mark, 1);
  if (!rc)
    rc = kj_prekey_remove(b, t, 1, 2);
  if (!rc)
    rc = kj_signed_prekey_store(b, t, 1, 30, "s30", 3);
  if (!rc)
    rc = kj_signed_prekey_remove(b, t, 1, 3);
  if (!rc)
    rc = kj_sender_key_put(b, t, 1, "tx", 2, "sk", 2);
  if (!rc)
    rc = kj_sender_key_delete(b, t, 1, "base", 4);
  return rc;
}

/* 1 if every write of tx_writes is visible through t. */
static int tx_visible(kj_backend *b, kj_tx *t) {
  uint8_t got[32];
  int has = 1;
  void *r = NULL;
  size_t rl;
  kj_prekey_list *l = NULL;
  int good = !kj_identity_load(b, t, 1, "tx", 2, got) && !memcmp(got, K2, 32) &&
             kj_identity_load(b, t, 1, "base", 4, got) == KJ_NOTFOUND &&
             session_is(b, t, 1, "tx", "txs") &&
             !kj_session_has(b, t, 1, "base", 4, &has) && !has &&
             prekey_is(b, t, 1, 20, "20:0:p20") &&
             prekey_is(b, t, 1, 1, "1:1:p1") && prekey_absent(b, t, 1, 2) &&
             max_id(b, t, 1) == 22;
  uint32_t ids[] = {1, 2, 21, 22};
  int rc = kj_prekey_load_batch(b, t, 1, ids, 4, &l);
  good = list_is(rc, l, "1:1:p1,21:1:b21,22:1:b22") && good;
  l = NULL;
  rc = kj_signed_prekey_load_all(b, t, 1, &l);
  good = list_is(rc, l, "30:0:s30") && good;
  good = good && !kj_sender_key_get(b, t, 1, "tx", 2, &r, &rl) && rl == 2;
  kj_free(r);
  r = NULL;
  good = good && kj_sender_key_get(b, t, 1, "base", 4, &r, &rl) == KJ_NOTFOUND;
  return good;
}

static void base_rows(kj_backend *b) {
  kj_identity_put(b, NULL, 1, "base", 4, K1);
  kj_session_put(b, NULL, 1, "base", 4, "s", 1);
  kj_prekey_store(b, NULL, 1, 1, "p1", 2, 0);
  kj_prekey_store(b, NULL, 1, 2, "p2", 2, 0);
  kj_signed_prekey_store(b, NULL, 1, 3, "s3", 2);
  kj_sender_key_put(b, NULL, 1, "base", 4, "k", 1);
}

static const tu_tx_script tx_script = {base_rows, tx_writes, tx_visible};

static void test_tx(kj_backend *b) {
  base_rows(b);
  char *before = tu_dump_backend(b);

  kj_tx *t = tu_tx_begin_writes(b, &tx_script);
  tu_tx_rollback_clean(b, t, before);
  ok(!tx_visible(b, NULL), "tx: rolled-back writes are not readable");

  t = NULL;
  is(kj_backend_begin(b, &t), KJ_OK, "tx: begin again");
  is(tx_writes(b, t), KJ_OK, "tx: writes again");
  /* A failing call inside the tx leaves the tx usable and unchanged. */
  kj_prekey bad[] = {{40, 0, {(const uint8_t *)"a", 1}}, {41, 0, {NULL, 0}}};
  is(kj_prekey_store_batch(b, t, 1, bad, 2, 0), KJ_EINVAL,
     "tx: a bad batch inside the tx is EINVAL");
  ok(prekey_absent(b, t, 1, 40), "tx: ... and stores nothing in the tx");
  is(kj_identity_put(b, t, 9, "x", 1, K1), KJ_NOTFOUND,
     "tx: a write to a missing slot inside the tx is NOTFOUND");
  is(kj_backend_commit(t), KJ_OK, "tx: commit");
  ok(tx_visible(b, NULL), "tx: commit makes every write visible");
  free(before);
}

/* A batch the engine refuses part-way (over KJ_MAX_TXN_BYTES) stores
 * nothing, alone or inside the caller's transaction, which stays usable. */
static int store_keys(kj_backend *b, kj_tx *t, const void *keys, size_t n) {
  return kj_prekey_store_batch(b, t, 1, keys, n, 0);
}

static int store_one(kj_backend *b, kj_tx *t) {
  return kj_prekey_store(b, t, 1, 1, "one", 3, 0);
}

static void test_batch_too_big(kj_backend *b) {
  size_t n = 70; /* 70 MiB of records */
  uint8_t *rec = calloc(1, KJ_MAX_RECORD);
  kj_prekey *keys = calloc(n, sizeof *keys);
  for (size_t i = 0; i < n; i++)
    keys[i] = (kj_prekey){(uint32_t)(100 + i), 0, {rec, KJ_MAX_RECORD}};
  char *before = NULL;
  kj_tx *t = tu_big_batch_fails(
      b, &(tu_big_batch){store_keys, keys, n, store_one}, &before);
  ok(prekey_absent(b, t, 1, 100),
     "big batch: ... its first item is not in the tx");
  ok(prekey_is(b, t, 1, 1, "1:0:one"), "big batch: ... earlier writes stay");
  is(kj_backend_commit(t), KJ_OK, "big batch: the tx still commits");
  ok(prekey_is(b, NULL, 1, 1, "1:0:one") && prekey_absent(b, NULL, 1, 100),
     "big batch: committed without any item of the batch");
  free(before);
  free(keys);
  free(rec);
}

/* ---- damaged rows ---------------------------------------------------------
 */

/* Put random value v under a key of table T_IDENTITY + pick and read it
 * back: 1 if the status is a decoder's and a failure left no result. */
static int damaged_read(kj_backend *b, tu_rng *rng, unsigned pick, uint8_t *v,
                        size_t vl) {
  (void)rng;
  unsigned table = T_IDENTITY + pick;
  uint8_t k[64], got[33];
  size_t kl = table == T_PREKEY || table == T_SIGNED
                  ? id_key(k, 1, 99)
                  : tu_slot_key(k, 1, "z", 1);
  if (table == 17)
    kl = 4;
  else if (table == 15) /* beside a good record of ("z", 5) */
    kl = tu_slot_key(k, 1, "\x00\x01z\x00\x00\x00\x05", 7);
  unsigned rec_table = table == 15 ? T_SESSION : T_SENDER;
  if (table == 15 || table == 16)
    tu_raw_put(b, rec_table, k, kl, "\x01r", 2);
  tu_raw_put(b, table, k, kl, v, vl);
  kj_prekey_list *l = NULL;
  void *r = NULL, *u = NULL;
  size_t rl, ul;
  kj_local_identity li;
  int rc;
  switch (table) {
  case T_IDENTITY:
    rc = kj_identity_load(b, NULL, 1, "z", 1, got);
    if (tu_damage_rc_ok(rc))
      rc = kj_identity_get_key(b, NULL, 1, "z", 1, got, &rl);
    break;
  case 15:
    rc = kj_session_load(b, NULL, 1, "z", 1, 5, &r, &rl, &u, &ul);
    break;
  case 16:
    rc = kj_sender_key_load(b, NULL, 1, "z", 1, &r, &rl, &u, &ul);
    break;
  case 17:
    rc = kj_local_identity_load(b, NULL, 1, &li);
    break;
  case T_SESSION:
    rc = kj_session_get(b, NULL, 1, "z", 1, &r, &rl);
    break;
  case T_PREKEY:
    rc = kj_prekey_load(b, NULL, 1, 99, &l);
    break;
  case T_SIGNED:
    rc = kj_signed_prekey_load(b, NULL, 1, 99, &l);
    break;
  default:
    rc = kj_sender_key_get(b, NULL, 1, "z", 1, &r, &rl);
  }
  int good = tu_damage_rc_ok(rc) && (rc == KJ_OK || (!l && !r && !u));
  kj_free(l);
  kj_free(r);
  kj_free(u);
  kj_delete(kj_backend_store(b), NULL, table, k, kl);
  if (table == 15 || table == 16)
    kj_delete(kj_backend_store(b), NULL, rec_table, k, kl);
  return good;
}

static void test_corrupt(kj_backend *b) {
  uint8_t k[64], v[64];
  size_t kl;
  uint8_t got[32];
  int rc;

  /* identity (table 10): exactly 01 + 32 or 33 bytes. */
  kl = tu_slot_key(k, 1, "a", 1);
  memset(v, 7, sizeof v);
  v[0] = 1;
  tu_raw_put(b, T_IDENTITY, k, kl, v, 32);
  memset(got, 0x5a, sizeof got);
  is(kj_identity_load(b, NULL, 1, "a", 1, got), KJ_ECORRUPT,
     "corrupt: identity truncated to 31 bytes");
  ok(got[0] == 0x5a, "corrupt: ... leaves key_out alone");
  uint8_t got33[33];
  size_t glen = 9;
  memset(got33, 0x5a, sizeof got33);
  is(kj_identity_get_key(b, NULL, 1, "a", 1, got33, &glen), KJ_ECORRUPT,
     "corrupt: get_key of a 31-byte identity");
  ok(got33[0] == 0x5a && glen == 0,
     "corrupt: ... leaves key_out alone, klen 0");
  tu_raw_put(b, T_IDENTITY, k, kl, v, 35);
  is(kj_identity_load(b, NULL, 1, "a", 1, got), KJ_ECORRUPT,
     "corrupt: identity of 34 bytes (33 and a trailing byte)");
  is(kj_identity_get_key(b, NULL, 1, "a", 1, got33, &glen), KJ_ECORRUPT,
     "corrupt: ... get_key too");
  tu_raw_put(b, T_IDENTITY, k, kl, NULL, 0);
  is(kj_identity_load(b, NULL, 1, "a", 1, got), KJ_ECORRUPT,
     "corrupt: identity empty value");
  v[0] = 2;
  tu_raw_put(b, T_IDENTITY, k, kl, v, 33);
  is(kj_identity_load(b, NULL, 1, "a", 1, got), KJ_EFORMAT,
     "corrupt: identity version 2 is EFORMAT");

  /* record rows (tables 11, 13, 14): 01 + 1.. record bytes. */
  void *r = (void *)1;
  size_t rl = 1;
  int has = 1;
  kl = tu_slot_key(k, 1, "s", 1);
  tu_raw_put(b, T_SESSION, k, kl, "\x01", 1);
  is(kj_session_get(b, NULL, 1, "s", 1, &r, &rl), KJ_ECORRUPT,
     "corrupt: session with an empty record");
  ok(r == NULL && rl == 0, "corrupt: ... and NULL outputs");
  is(kj_session_has(b, NULL, 1, "s", 1, &has), KJ_ECORRUPT,
     "corrupt: session_has of a damaged row is ECORRUPT");
  tu_raw_put(b, T_SESSION, k, kl, "\x02rec", 4);
  is(kj_session_get(b, NULL, 1, "s", 1, &r, &rl), KJ_EFORMAT,
     "corrupt: session version 2 is EFORMAT");
  tu_raw_put(b, T_SESSION, k, kl, NULL, 0);
  is(kj_session_get(b, NULL, 1, "s", 1, &r, &rl), KJ_ECORRUPT,
     "corrupt: session empty value");
  kl = tu_slot_key(k, 1, "g", 1);
  tu_raw_put(b, T_SENDER, k, kl, "\x00rec", 4);
  /* Version 0 was never written: refused, as damage or as unknown. */
  rc = kj_sender_key_get(b, NULL, 1, "g", 1, &r, &rl);
  ok(rc == KJ_EFORMAT || rc == KJ_ECORRUPT,
     "corrupt: sender key version 0 is refused (got %d)", rc);
  tu_raw_put(b, T_SENDER, k, kl, "\x02rec", 4);
  is(kj_sender_key_get(b, NULL, 1, "g", 1, &r, &rl), KJ_EFORMAT,
     "corrupt: sender key version 2 is EFORMAT");
  tu_raw_put(b, T_SENDER, k, kl, "\x01", 1);
  is(kj_sender_key_get(b, NULL, 1, "g", 1, &r, &rl), KJ_ECORRUPT,
     "corrupt: sender key with an empty record");

  /* pre-keys (table 12): 01, flag 0/1, 1.. record bytes. */
  kj_prekey_store(b, NULL, 1, 1, "good", 4, 0);
  kl = id_key(k, 1, 2);
  tu_raw_put(b, T_PREKEY, k, kl, "\x01\x02rec", 5);
  kj_prekey_list *l = (kj_prekey_list *)1;
  is(kj_prekey_load(b, NULL, 1, 2, &l), KJ_ECORRUPT,
     "corrupt: pre-key flag 2 is ECORRUPT");
  ok(l == NULL, "corrupt: ... with NULL out");
  uint32_t ids[] = {1, 2};
  l = (kj_prekey_list *)1;
  is(kj_prekey_load_batch(b, NULL, 1, ids, 2, &l), KJ_ECORRUPT,
     "corrupt: load_batch over a damaged row is ECORRUPT");
  ok(l == NULL, "corrupt: ... with NULL out");
  /* A failed call changes nothing, even inside the caller's transaction:
   * id 1 is marked before id 2 fails, and must come back unmarked. */
  kj_tx *t = NULL;
  kj_backend_begin(b, &t);
  is(kj_prekey_mark_uploaded(b, t, 1, ids, 2), KJ_ECORRUPT,
     "corrupt: mark_uploaded over a damaged row is ECORRUPT");
  ok(prekey_is(b, t, 1, 1, "1:0:good"),
     "corrupt: ... and marks nothing, even in the caller's tx");
  kj_backend_rollback(t);
  tu_raw_put(b, T_PREKEY, k, kl, "\x01\x01", 2);
  is(kj_prekey_load(b, NULL, 1, 2, &l), KJ_ECORRUPT,
     "corrupt: pre-key without a record");
  tu_raw_put(b, T_PREKEY, k, kl, "\x01", 1);
  is(kj_prekey_load(b, NULL, 1, 2, &l), KJ_ECORRUPT,
     "corrupt: pre-key without a flag");
  tu_raw_put(b, T_PREKEY, k, kl, "\x02\x00rec", 5);
  is(kj_prekey_load(b, NULL, 1, 2, &l), KJ_EFORMAT,
     "corrupt: pre-key version 2 is EFORMAT");
  /* A key of the wrong length under the slot's prefix. */
  tu_raw_put(b, T_PREKEY, "\x00\x00\x00\x01\x00\x00\x00\x09\x00", 9,
             "\x01\x00r", 3);
  uint32_t m = 5;
  is(kj_prekey_max_id(b, NULL, 1, &m), KJ_ECORRUPT,
     "corrupt: max_id over a 9-byte pre-key key is ECORRUPT");

  /* signed pre-keys (table 13). */
  kj_signed_prekey_store(b, NULL, 1, 1, "good", 4);
  kl = id_key(k, 1, 2);
  tu_raw_put(b, T_SIGNED, k, kl, "\x01", 1);
  l = (kj_prekey_list *)1;
  is(kj_signed_prekey_load_all(b, NULL, 1, &l), KJ_ECORRUPT,
     "corrupt: load_all over a damaged row is ECORRUPT");
  ok(l == NULL, "corrupt: ... with NULL out");
  is(kj_signed_prekey_load(b, NULL, 1, 2, &l), KJ_ECORRUPT,
     "corrupt: signed pre-key with an empty record");
  tu_raw_put(b, T_SIGNED, k, kl, "\x01r", 2);
  tu_raw_put(b, T_SIGNED, "\x00\x00\x00\x01\x00\x00\x03", 7, "\x01r", 2);
  is(kj_signed_prekey_load_all(b, NULL, 1, &l), KJ_ECORRUPT,
     "corrupt: load_all over a 7-byte key is ECORRUPT");

  /* Random garbage: never a crash, only OK, ECORRUPT or EFORMAT. */
  tu_check_damage_rounds(b, 7, 2000, 80, 2, 8, damaged_read);
}

int main(void) {
  tu_with_slots("identity", 1, test_identity);
  tu_with_slots("session", 1, test_session);
  tu_with_slots("prekey", 1, test_prekey);
  test_max_id_random();
  tu_with_slots("signed", 1, test_signed_prekey);
  tu_with_slots("sender", 1, test_sender_key);
  tu_with_slots("i17 rows", 1, test_i17_rows);
  tu_with_slots("i17 corrupt", 1, test_i17_corrupt);
  tu_run_domain_suite(&(tu_domain_suite){
      test_slots, test_tx, test_batch_too_big, &tx_script, test_corrupt});
  return tap_done();
}
