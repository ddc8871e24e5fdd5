/*
 * tests/test_protocol.c - the protocol store (keyjournal/protocol.h) on the
 * native backend: every rule of the contract's "Protocol store" section,
 * the exact row bytes of doc/FORMAT.md section 8 (tables 30..36), device
 * slot isolation, argument checks that change nothing, transactions,
 * persistence across reopen, and decoders fed damaged rows.
 *
 * Slots are made by writing the table-2 row straight into the engine, so
 * this test does not depend on the device store.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* malloc_usable_size */
#endif

#include <inttypes.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyjournal/backend.h"
#include "keyjournal/protocol.h"
#include "tap.h"
#include "testutil.h"

/* The tables a protocol-store call could touch (testutil.h names them). */
static const unsigned dump_tables_ids[] = {
    T_DEVICE,   T_SKDM,        T_LID,       T_LID_BY_PHONE,
    T_BASE_KEY, T_DEVICE_LIST, T_SK_FORGET, T_TC_TOKEN,
};

/* A kj_blob from a string literal, embedded NULs included. */
#define BL(s) ((kj_blob){(const uint8_t *)(s), sizeof(s) - 1})
#define S(s) (s), (sizeof(s) - 1)

/* ---- helpers ---------------------------------------------------------- */

static kj_backend *open_backend(const char *dir) {
  kj_backend *b = tu_backend_open(dir, NULL);
  if (b == NULL) {
    printf("Bail out! kj_backend_open failed\n");
    exit(1);
  }
  return b;
}

static kj_store *st(kj_backend *b) { return kj_backend_store(b); }

static char *dump(kj_backend *b) {
  char *out = NULL;
  int rc =
      tu_dump_tables(st(b), NULL, dump_tables_ids,
                     sizeof dump_tables_ids / sizeof dump_tables_ids[0], &out);
  if (rc != KJ_OK) {
    printf("Bail out! dump: %d\n", rc);
    exit(1);
  }
  return out;
}

/* 1 if [p, p+len) lies inside the single allocation base (the ownership
 * rule: one allocation per result). Only glibc can tell an allocation's
 * size; elsewhere this checks nothing and ASan's leak check remains. */
static int inside(const void *base, const void *p, size_t len) {
#ifdef __GLIBC__
  const uint8_t *b = base, *q = p;
  size_t cap = malloc_usable_size((void *)base);
  return q >= b && q + len <= b + cap;
#else
  (void)base;
  (void)p;
  (void)len;
  return 1;
#endif
}

static int blob_eq(kj_blob a, kj_blob b) {
  return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* 1 if l holds exactly want[0..n), in order, inside its allocation. */
static int list_eq(const kj_blob_list *l, const kj_blob *want, size_t n) {
  if (!l) {
    printf("#   list is NULL\n");
    return 0;
  }
  if (l->n != n) {
    printf("#   list has %zu items, want %zu\n", l->n, n);
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    if (!blob_eq(l->v[i], want[i])) {
      printf("#   item %zu differs\n", i);
      return 0;
    }
    if (!inside(l, l->v[i].p, l->v[i].len)) {
      printf("#   item %zu is outside the allocation\n", i);
      return 0;
    }
  }
  return 1;
}

/* Bytes for hand-built keys and values, written as FORMAT.md says. */
typedef struct bb {
  uint8_t b[40000]; /* a registry row of KJ_MAX_DEVICES + 1 entries */
  size_t len;
} bb;

static bb *bb_raw(bb *x, const void *p, size_t n) {
  memcpy(x->b + x->len, p, n);
  x->len += n;
  return x;
}
static bb *bb_u8(bb *x, uint8_t v) { return bb_raw(x, &v, 1); }
static bb *bb_be32(bb *x, uint32_t v) {
  uint8_t p[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8),
                  (uint8_t)v};
  return bb_raw(x, p, 4);
}
static bb *bb_lp(bb *x, const void *p, size_t n) {
  bb_u8(x, (uint8_t)(n >> 8));
  bb_u8(x, (uint8_t)n);
  return bb_raw(x, p, n);
}
static bb *bb_le32(bb *x, uint32_t v) {
  for (int i = 0; i < 4; i++)
    bb_u8(x, (uint8_t)(v >> (8 * i)));
  return x;
}
static bb *bb_le64(bb *x, int64_t sv) {
  uint64_t v = (uint64_t)sv;
  for (int i = 0; i < 8; i++)
    bb_u8(x, (uint8_t)(v >> (8 * i)));
  return x;
}
static bb *bb_var(bb *x, uint64_t v) {
  while (v >= 0x80) {
    bb_u8(x, (uint8_t)(v | 0x80));
    v >>= 7;
  }
  return bb_u8(x, (uint8_t)v);
}
static bb *bb_blob(bb *x, const void *p, size_t n) {
  bb_var(x, n);
  return bb_raw(x, p, n);
}
static bb *bb_dev(bb *x, uint32_t dev) {
  x->len = 0;
  return bb_be32(x, dev);
}

/* 1 if the engine row (table, key) holds exactly want. */
static int row_is(kj_backend *b, unsigned table, const bb *key,
                  const bb *want) {
  void *v = NULL;
  size_t vlen = 0;
  int rc = kj_get(st(b), NULL, table, key->b, key->len, &v, &vlen);
  int res = rc == KJ_OK && vlen == want->len &&
            (vlen == 0 || memcmp(v, want->b, vlen) == 0);
  if (!res)
    printf("#   row: rc=%d len=%zu (want %zu)\n", rc, vlen, want->len);
  kj_free(v);
  return res;
}

static int row_absent(kj_backend *b, unsigned table, const bb *key) {
  void *v = NULL;
  size_t vlen = 0;
  int rc = kj_get(st(b), NULL, table, key->b, key->len, &v, &vlen);
  kj_free(v);
  return rc == KJ_NOTFOUND;
}

static int put_row(kj_backend *b, unsigned table, const bb *key, const void *v,
                   size_t vlen) {
  return kj_put(st(b), NULL, table, key->b, key->len, v, vlen);
}

static kj_lid_mapping lidm(kj_blob lid, kj_blob phone, int64_t created,
                           int64_t updated, kj_blob source) {
  kj_lid_mapping m = {lid, phone, created, updated, source};
  return m;
}

/* 1 if l is one mapping equal to want, inside its allocation. */
static int mapping_is(const kj_lid_mapping_list *l, kj_lid_mapping want) {
  if (!l || l->n != 1) {
    printf("#   want exactly one mapping (got %s%zu)\n", l ? "" : "NULL ",
           l ? l->n : 0);
    return 0;
  }
  const kj_lid_mapping *m = &l->v[0];
  int res =
      blob_eq(m->lid, want.lid) && blob_eq(m->phone, want.phone) &&
      blob_eq(m->source, want.source) && m->created_at == want.created_at &&
      m->updated_at == want.updated_at && inside(l, m->lid.p, m->lid.len) &&
      inside(l, m->phone.p, m->phone.len) &&
      inside(l, m->source.p, m->source.len);
  if (!res)
    printf("#   mapping: lid %.*s phone %.*s created %" PRId64
           " updated %" PRId64 "\n",
           (int)m->lid.len, (const char *)m->lid.p, (int)m->phone.len,
           (const char *)m->phone.p, m->created_at, m->updated_at);
  return res;
}

/* The LID get_by_phone picks, as a string, or "" on NOTFOUND, "!" on an
 * error. Static buffer: one call at a time. */
static const char *by_phone(kj_backend *b, kj_tx *t, uint32_t dev,
                            const char *phone) {
  static char buf[64];
  kj_lid_mapping_list *l = NULL;
  int rc = kj_lid_get_by_phone(b, t, dev, phone, strlen(phone), &l);
  if (rc == KJ_NOTFOUND)
    snprintf(buf, sizeof buf, "%s", l ? "!" : "");
  else if (rc != KJ_OK || !l || l->n != 1)
    snprintf(buf, sizeof buf, "!");
  else
    snprintf(buf, sizeof buf, "%.*s", (int)l->v[0].lid.len,
             (const char *)l->v[0].lid.p);
  kj_free(l);
  return buf;
}

static size_t skdm_count(kj_backend *b, kj_tx *t, uint32_t dev,
                         const char *group) {
  kj_blob_list *l = NULL;
  int rc = kj_skdm_get(b, t, dev, group, strlen(group), &l);
  size_t n = rc == KJ_OK && l ? l->n : (size_t)-1;
  kj_free(l);
  return n;
}

static int has_same(kj_backend *b, kj_tx *t, uint32_t dev, const char *addr,
                    const char *msg, const void *key, size_t klen) {
  int same = -1;
  int rc = kj_base_key_has_same(b, t, dev, addr, strlen(addr), msg, strlen(msg),
                                key, klen, &same);
  return rc == KJ_OK ? same : -100 + rc;
}

static int token_ts(kj_backend *b, kj_tx *t, uint32_t dev, const char *jid,
                    int64_t *ts) {
  kj_tc_token *tok = NULL;
  int rc = kj_tc_token_get(b, t, dev, jid, strlen(jid), &tok);
  if (rc == KJ_OK)
    *ts = tok->token_ts;
  kj_free(tok);
  return rc;
}

/* ---- SKDM recipients -------------------------------------------------- */

static void test_skdm(kj_backend *b) {
  kj_blob_list *l = (kj_blob_list *)1;
  is(kj_skdm_get(b, NULL, 1, S("g"), &l), KJ_OK, "skdm: unknown group is OK");
  ok(list_eq(l, NULL, 0), "skdm: unknown group gives an empty list");
  kj_free(l);

  kj_blob add1[] = {BL("b"), BL("\xff"), BL("a\0"), BL("ab"), BL("a")};
  is(kj_skdm_add(b, NULL, 1, S("g"), add1, 5), KJ_OK, "skdm: add");
  kj_blob want1[] = {BL("a"), BL("a\0"), BL("ab"), BL("b"), BL("\xff")};
  l = NULL;
  is(kj_skdm_get(b, NULL, 1, S("g"), &l), KJ_OK, "skdm: get");
  ok(list_eq(l, want1, 5), "skdm: get is ascending memcmp, shorter first");
  kj_free(l);

  char *before = dump(b);
  kj_blob again[] = {BL("ab"), BL("a"), BL("ab")};
  is(kj_skdm_add(b, NULL, 1, S("g"), again, 3), KJ_OK,
     "skdm: add of present jids");
  char *after = dump(b);
  ok(strcmp(before, after) == 0, "skdm: present jids are ignored (no change)");
  free(before);
  free(after);

  kj_blob add2[] = {BL("c"), BL("a"), BL("c")};
  is(kj_skdm_add(b, NULL, 1, S("g"), add2, 3), KJ_OK,
     "skdm: add with duplicates in the call");
  kj_blob want2[] = {BL("a"), BL("a\0"), BL("ab"),
                     BL("b"), BL("c"),   BL("\xff")};
  l = NULL;
  is(kj_skdm_get(b, NULL, 1, S("g"), &l), KJ_OK, "skdm: get after add");
  ok(list_eq(l, want2, 6), "skdm: each jid once, new one in order");
  kj_free(l);

  is(kj_skdm_add(b, NULL, 1, S("g"), NULL, 0), KJ_OK, "skdm: add of none");
  is(skdm_count(b, NULL, 1, "g"), 6, "skdm: add of none changes nothing");

  /* ("a", "bc") and ("ab", "c") are different rows. */
  kj_blob bc[] = {BL("bc")}, c[] = {BL("c")};
  is(kj_skdm_add(b, NULL, 1, S("a"), bc, 1), KJ_OK, "skdm: group a");
  is(kj_skdm_add(b, NULL, 1, S("ab"), c, 1), KJ_OK, "skdm: group ab");
  l = NULL;
  kj_skdm_get(b, NULL, 1, S("a"), &l);
  ok(list_eq(l, bc, 1), "skdm: group a holds only its jid");
  kj_free(l);
  l = NULL;
  kj_skdm_get(b, NULL, 1, S("ab"), &l);
  ok(list_eq(l, c, 1), "skdm: group ab holds only its jid");
  kj_free(l);

  is(kj_skdm_clear(b, NULL, 1, S("g")), KJ_OK, "skdm: clear");
  is(skdm_count(b, NULL, 1, "g"), 0, "skdm: cleared group is empty");
  is(skdm_count(b, NULL, 1, "a"), 1, "skdm: clear leaves other groups");
  is(skdm_count(b, NULL, 1, "ab"), 1, "skdm: clear leaves other groups (2)");
  is(kj_skdm_clear(b, NULL, 1, S("nope")), KJ_OK,
     "skdm: clear of an unknown group succeeds");

  /* Largest group and jid. */
  uint8_t *big = malloc(KJ_MAX_ID);
  memset(big, 'x', KJ_MAX_ID);
  kj_blob bigj = {big, KJ_MAX_ID};
  is(kj_skdm_add(b, NULL, 1, big, KJ_MAX_ID, &bigj, 1), KJ_OK,
     "skdm: KJ_MAX_ID group and jid");
  l = NULL;
  kj_skdm_get(b, NULL, 1, big, KJ_MAX_ID, &l);
  ok(list_eq(l, &bigj, 1), "skdm: KJ_MAX_ID jid round trip");
  kj_free(l);
  free(big);
}

/* ---- LID mappings ----------------------------------------------------- */

static void test_lid(kj_backend *b) {
  kj_lid_mapping_list *l = (kj_lid_mapping_list *)1;
  is(kj_lid_get_by_lid(b, NULL, 1, S("L1"), &l), KJ_NOTFOUND,
     "lid: unknown lid is NOTFOUND");
  ok(l == NULL, "lid: out is NULL on NOTFOUND");
  l = (kj_lid_mapping_list *)1;
  is(kj_lid_get_by_phone(b, NULL, 1, S("P"), &l), KJ_NOTFOUND,
     "lid: unknown phone is NOTFOUND");
  ok(l == NULL, "lid: out is NULL on NOTFOUND (by phone)");

  kj_lid_mapping m1 = lidm(BL("L1"), BL("P"), -5, 200, BL("src"));
  is(kj_lid_put(b, NULL, 1, &m1), KJ_OK, "lid: put new");
  l = NULL;
  is(kj_lid_get_by_lid(b, NULL, 1, S("L1"), &l), KJ_OK, "lid: get new");
  ok(mapping_is(l, m1), "lid: a new lid is stored as given");
  kj_free(l);

  /* Update: created_at stays, the rest is replaced (source to empty). */
  kj_lid_mapping up = lidm(BL("L1"), BL("P"), 999, 300, BL(""));
  up.source.p = NULL;
  is(kj_lid_put(b, NULL, 1, &up), KJ_OK, "lid: update");
  l = NULL;
  kj_lid_get_by_lid(b, NULL, 1, S("L1"), &l);
  ok(mapping_is(l, lidm(BL("L1"), BL("P"), -5, 300, BL(""))),
     "lid: update keeps the original created_at, takes updated_at, source");
  kj_free(l);

  /* get_by_phone: greatest updated_at; ties to the smallest lid, whatever
   * the insertion order. */
  kj_lid_mapping m3 = lidm(BL("L3"), BL("P"), 1, 500, BL("s3"));
  kj_lid_mapping m2 = lidm(BL("L2"), BL("P"), 1, 500, BL("s2"));
  kj_lid_mapping m0 = lidm(BL("L0"), BL("P"), 1, 100, BL("s0"));
  is(kj_lid_put(b, NULL, 1, &m3), KJ_OK, "lid: put L3");
  ok(strcmp(by_phone(b, NULL, 1, "P"), "L3") == 0,
     "lid: by phone: newest updated_at (L3 500 over L1 300)");
  is(kj_lid_put(b, NULL, 1, &m2), KJ_OK, "lid: put L2");
  is(kj_lid_put(b, NULL, 1, &m0), KJ_OK, "lid: put L0");
  ok(strcmp(by_phone(b, NULL, 1, "P"), "L2") == 0,
     "lid: by phone: tie on updated_at goes to the smallest lid");
  l = NULL;
  kj_lid_get_by_phone(b, NULL, 1, S("P"), &l);
  ok(mapping_is(l, m2), "lid: by phone returns the whole mapping");
  kj_free(l);

  /* Phone change moves the index. */
  kj_lid_mapping m2q = lidm(BL("L2"), BL("Q"), 7, 600, BL("s2"));
  is(kj_lid_put(b, NULL, 1, &m2q), KJ_OK, "lid: L2 moves to phone Q");
  ok(strcmp(by_phone(b, NULL, 1, "Q"), "L2") == 0,
     "lid: new phone finds the lid");
  ok(strcmp(by_phone(b, NULL, 1, "P"), "L3") == 0,
     "lid: old phone no longer finds it");
  bb k;
  bb_lp(bb_dev(&k, 1), "P", 1);
  bb_raw(&k, "L2", 2);
  ok(row_absent(b, T_LID_BY_PHONE, &k), "lid: old index row removed");
  l = NULL;
  kj_lid_get_by_lid(b, NULL, 1, S("L2"), &l);
  ok(mapping_is(l, lidm(BL("L2"), BL("Q"), 1, 600, BL("s2"))),
     "lid: phone change also keeps created_at");
  kj_free(l);

  /* Everyone leaves P. */
  kj_lid_mapping mv[] = {lidm(BL("L0"), BL("R"), 0, 1, BL("")),
                         lidm(BL("L1"), BL("R"), 0, 1, BL("")),
                         lidm(BL("L3"), BL("R"), 0, 1, BL(""))};
  for (int i = 0; i < 3; i++)
    kj_lid_put(b, NULL, 1, &mv[i]);
  ok(strcmp(by_phone(b, NULL, 1, "P"), "") == 0,
     "lid: phone with no lids left is NOTFOUND");
  ok(strcmp(by_phone(b, NULL, 1, "R"), "L0") == 0,
     "lid: three-way tie picks the smallest");

  /* get_all ascending by lid bytes. */
  kj_lid_mapping more[] = {lidm(BL("\x80"), BL("x"), 0, 0, BL("")),
                           lidm(BL("L"), BL("x"), 0, 0, BL("")),
                           lidm(BL("L1\0"), BL("x"), 0, 0, BL(""))};
  for (int i = 0; i < 3; i++)
    kj_lid_put(b, NULL, 1, &more[i]);
  l = NULL;
  is(kj_lid_get_all(b, NULL, 1, &l), KJ_OK, "lid: get_all");
  const char *order[] = {"L", "L0", "L1", "L1\0", "L2", "L3", "\x80"};
  size_t olen[] = {1, 2, 2, 3, 2, 2, 1};
  int good = l && l->n == 7;
  for (size_t i = 0; good && i < 7; i++)
    good = l->v[i].lid.len == olen[i] &&
           memcmp(l->v[i].lid.p, order[i], olen[i]) == 0 &&
           inside(l, l->v[i].phone.p, l->v[i].phone.len);
  ok(good, "lid: get_all ascending by lid, one allocation");
  ok(good && l->v[4].updated_at == 600 && l->v[4].created_at == 1 &&
         blob_eq(l->v[4].phone, BL("Q")) && blob_eq(l->v[4].source, BL("s2")),
     "lid: get_all carries every field");
  kj_free(l);

  is(tu_make_slot(b, 2), KJ_OK, "lid: slot 2");
  l = NULL;
  is(kj_lid_get_all(b, NULL, 2, &l), KJ_OK, "lid: get_all of an empty slot");
  ok(l && l->n == 0, "lid: empty list");
  kj_free(l);
}

/* ---- base keys -------------------------------------------------------- */

static void test_base_keys(kj_backend *b) {
  is(has_same(b, NULL, 1, "a", "m", S("abc")), 0,
     "base key: no entry is not the same");
  is(kj_base_key_save(b, NULL, 1, S("a"), S("m"), S("abc")), KJ_OK,
     "base key: save");
  is(has_same(b, NULL, 1, "a", "m", S("abc")), 1, "base key: equal bytes");
  is(has_same(b, NULL, 1, "a", "m", S("ab")), 0, "base key: prefix is not");
  is(has_same(b, NULL, 1, "a", "m", S("abcd")), 0, "base key: longer is not");
  is(has_same(b, NULL, 1, "a", "m", S("abd")), 0, "base key: other bytes");
  is(has_same(b, NULL, 1, "a", "m2", S("abc")), 0, "base key: other message");
  is(has_same(b, NULL, 1, "b", "m", S("abc")), 0, "base key: other address");

  /* (address "a", id "bc") and ("ab", "c") are different entries. */
  is(kj_base_key_save(b, NULL, 1, S("a"), S("bc"), S("K1")), KJ_OK,
     "base key: save (a, bc)");
  is(kj_base_key_save(b, NULL, 1, S("ab"), S("c"), S("K2")), KJ_OK,
     "base key: save (ab, c)");
  is(has_same(b, NULL, 1, "a", "bc", S("K1")), 1, "base key: (a, bc) kept");
  is(has_same(b, NULL, 1, "ab", "c", S("K2")), 1, "base key: (ab, c) kept");

  is(kj_base_key_save(b, NULL, 1, S("a"), S("m"), S("xyz")), KJ_OK,
     "base key: save replaces");
  is(has_same(b, NULL, 1, "a", "m", S("abc")), 0, "base key: old key gone");
  is(has_same(b, NULL, 1, "a", "m", S("xyz")), 1, "base key: new key");

  is(kj_base_key_delete(b, NULL, 1, S("a"), S("m")), KJ_OK, "base key: delete");
  is(has_same(b, NULL, 1, "a", "m", S("xyz")), 0, "base key: deleted");
  is(has_same(b, NULL, 1, "a", "bc", S("K1")), 1,
     "base key: delete leaves the others");
  is(kj_base_key_delete(b, NULL, 1, S("a"), S("m")), KJ_OK,
     "base key: delete of an absent entry succeeds");
}

/* ---- device registry -------------------------------------------------- */

static void test_device_registry(kj_backend *b) {
  kj_device_list *d = (kj_device_list *)1;
  is(kj_device_list_get(b, NULL, 1, S("u"), &d), KJ_NOTFOUND,
     "registry: unknown user");
  ok(d == NULL, "registry: out NULL on NOTFOUND");

  kj_device_entry e1[] = {{5, 1, 7}, {1, 0, 99}, {3, 1, 0}};
  kj_device_list r = {BL("u"), -42, 0, {(const uint8_t *)"junk", 4}, 3, e1};
  is(kj_device_list_update(b, NULL, 1, &r), KJ_OK, "registry: update");
  d = NULL;
  is(kj_device_list_get(b, NULL, 1, S("u"), &d), KJ_OK, "registry: get");
  ok(d && d->n == 3 && d->devices[0].device_id == 5 &&
         d->devices[1].device_id == 1 && d->devices[2].device_id == 3,
     "registry: devices keep the order given");
  ok(d && d->devices[0].has_key_index == 1 && d->devices[0].key_index == 7 &&
         d->devices[1].has_key_index == 0 && d->devices[1].key_index == 0 &&
         d->devices[2].has_key_index == 1 && d->devices[2].key_index == 0,
     "registry: key_index none vs 0 (none reads back as 0)");
  ok(d && d->timestamp == -42 && d->has_phash == 0 && d->phash.p == NULL &&
         d->phash.len == 0,
     "registry: timestamp, phash none");
  ok(d && blob_eq(d->user, BL("u")) && inside(d, d->user.p, d->user.len) &&
         inside(d, d->devices, 3 * sizeof *d->devices),
     "registry: user and devices inside the one allocation");
  kj_free(d);

  /* Empty phash is not none; the whole record is replaced. */
  kj_device_list r2 = {BL("u"), 9, 1, {NULL, 0}, 0, NULL};
  is(kj_device_list_update(b, NULL, 1, &r2), KJ_OK,
     "registry: update with empty phash, no devices");
  d = NULL;
  kj_device_list_get(b, NULL, 1, S("u"), &d);
  ok(d && d->has_phash == 1 && d->phash.len == 0 && d->n == 0 &&
         d->timestamp == 9,
     "registry: empty phash is present; update replaced the whole record");
  kj_free(d);

  kj_device_entry e3[] = {{2, 0, 0}};
  kj_device_list r3 = {BL("u"), 10, 1, BL("hash"), 1, e3};
  is(kj_device_list_update(b, NULL, 1, &r3), KJ_OK, "registry: update phash");
  d = NULL;
  kj_device_list_get(b, NULL, 1, S("u"), &d);
  ok(d && d->has_phash == 1 && blob_eq(d->phash, BL("hash")) &&
         inside(d, d->phash.p, d->phash.len) && d->n == 1 &&
         d->devices[0].device_id == 2,
     "registry: phash round trip");
  kj_free(d);

  /* Largest record. */
  kj_device_entry *many = calloc(KJ_MAX_DEVICES, sizeof *many);
  for (uint32_t i = 0; i < KJ_MAX_DEVICES; i++)
    many[i] = (kj_device_entry){KJ_MAX_DEVICES - i, (int)(i & 1), i * 3};
  kj_device_list rm = {BL("v"), 0, 0, {NULL, 0}, KJ_MAX_DEVICES, many};
  is(kj_device_list_update(b, NULL, 1, &rm), KJ_OK,
     "registry: KJ_MAX_DEVICES devices");
  d = NULL;
  kj_device_list_get(b, NULL, 1, S("v"), &d);
  int good = d && d->n == KJ_MAX_DEVICES;
  for (uint32_t i = 0; good && i < KJ_MAX_DEVICES; i++)
    good = d->devices[i].device_id == KJ_MAX_DEVICES - i &&
           d->devices[i].has_key_index == (int)(i & 1) &&
           d->devices[i].key_index == ((i & 1) ? i * 3 : 0);
  ok(good, "registry: KJ_MAX_DEVICES round trip in order");
  kj_free(d);
  free(many);

  is(kj_device_list_delete(b, NULL, 1, S("u")), KJ_OK, "registry: delete");
  d = NULL;
  is(kj_device_list_get(b, NULL, 1, S("u"), &d), KJ_NOTFOUND,
     "registry: deleted");
  d = NULL;
  is(kj_device_list_get(b, NULL, 1, S("v"), &d), KJ_OK,
     "registry: delete leaves other users");
  kj_free(d);
  is(kj_device_list_delete(b, NULL, 1, S("u")), KJ_OK,
     "registry: delete of an absent user succeeds");
}

/* 1 if consuming the forget marks of group g in slot dev takes exactly
 * want[0..n). */
static int takes(kj_backend *b, kj_tx *t, uint32_t dev, const char *g,
                 const kj_blob *want, size_t n) {
  kj_blob_list *l = NULL;
  int rc = kj_sender_key_consume_forget(b, t, dev, g, strlen(g), &l);
  if (rc != KJ_OK)
    printf("#   consume %s: rc %d\n", g, rc);
  int res = rc == KJ_OK && list_eq(l, want, n);
  kj_free(l);
  return res;
}

/* ---- sender-key forget marks ------------------------------------------ */

static void test_forget(kj_backend *b) {
  kj_blob_list *l = (kj_blob_list *)1;
  is(kj_sender_key_consume_forget(b, NULL, 1, S("g"), &l), KJ_OK,
     "forget: consume with nothing marked");
  ok(list_eq(l, NULL, 0), "forget: empty list");
  kj_free(l);

  const char *marks[] = {"c", "a", "b", "a"};
  for (int i = 0; i < 4; i++)
    is(kj_sender_key_mark_forget(b, NULL, 1, S("g"), marks[i], 1), KJ_OK,
       "forget: mark %s", marks[i]);
  is(kj_sender_key_mark_forget(b, NULL, 1, S("g2"), S("z")), KJ_OK,
     "forget: mark in another group");

  kj_blob want[] = {BL("a"), BL("b"), BL("c")};
  l = NULL;
  is(kj_sender_key_consume_forget(b, NULL, 1, S("g"), &l), KJ_OK,
     "forget: consume");
  ok(list_eq(l, want, 3), "forget: marked participants, ascending, once");
  kj_free(l);
  l = NULL;
  is(kj_sender_key_consume_forget(b, NULL, 1, S("g"), &l), KJ_OK,
     "forget: second consume");
  ok(list_eq(l, NULL, 0), "forget: second consume gets nothing (taken)");
  kj_free(l);
  ok(takes(b, NULL, 1, "g2", (kj_blob[]){BL("z")}, 1),
     "forget: other group untouched");

  /* Consume inside a rolled-back transaction leaves the marks. */
  kj_sender_key_mark_forget(b, NULL, 1, S("g"), S("x"));
  kj_tx *t = NULL;
  is(kj_backend_begin(b, &t), KJ_OK, "forget: begin");
  l = NULL;
  is(kj_sender_key_consume_forget(b, t, 1, S("g"), &l), KJ_OK,
     "forget: consume in tx");
  ok(list_eq(l, (kj_blob[]){BL("x")}, 1), "forget: tx consume takes x");
  kj_free(l);
  ok(takes(b, t, 1, "g", NULL, 0), "forget: the tx sees its own take");
  kj_backend_rollback(t);
  ok(takes(b, NULL, 1, "g", (kj_blob[]){BL("x")}, 1),
     "forget: after rollback the mark is still there");

  /* And in a committed one it is gone. */
  kj_sender_key_mark_forget(b, NULL, 1, S("g"), S("y"));
  t = NULL;
  kj_backend_begin(b, &t);
  ok(takes(b, t, 1, "g", (kj_blob[]){BL("y")}, 1),
     "forget: tx consume takes y");
  is(kj_backend_commit(t), KJ_OK, "forget: commit");
  ok(takes(b, NULL, 1, "g", NULL, 0), "forget: after commit the mark is gone");
}

/* Two consumers racing a marker: every participant is taken exactly once. */
#define RACE_N 300

typedef struct race {
  kj_backend *b;
  atomic_int *done;
  int got[RACE_N];
  int bad;
} race;

static void race_take(race *r) {
  kj_blob_list *l = NULL;
  if (kj_sender_key_consume_forget(r->b, NULL, 1, S("rg"), &l) != KJ_OK) {
    r->bad++;
    return;
  }
  for (size_t i = 0; i < l->n; i++) {
    char s[8] = {0};
    memcpy(s, l->v[i].p, l->v[i].len < 7 ? l->v[i].len : 7);
    int k = atoi(s);
    if (k >= 0 && k < RACE_N)
      r->got[k]++;
    else
      r->bad++;
  }
  kj_free(l);
}

static void *race_consumer(void *arg) {
  race *r = arg;
  while (!atomic_load(r->done))
    race_take(r);
  race_take(r);
  return NULL;
}

static void *race_marker(void *arg) {
  race *r = arg;
  for (int i = 0; i < RACE_N; i++) {
    char s[8];
    int n = snprintf(s, sizeof s, "%04d", i);
    if (kj_sender_key_mark_forget(r->b, NULL, 1, S("rg"), s, (size_t)n))
      r->bad++;
  }
  atomic_store(r->done, 1);
  return NULL;
}

static void test_forget_race(void) {
  kj_backend *b = open_backend(NULL);
  tu_make_slot(b, 1);
  atomic_int done = 0;
  race m = {.b = b, .done = &done}, c1 = {.b = b, .done = &done},
       c2 = {.b = b, .done = &done};
  pthread_t tm, t1, t2;
  pthread_create(&t1, NULL, race_consumer, &c1);
  pthread_create(&t2, NULL, race_consumer, &c2);
  pthread_create(&tm, NULL, race_marker, &m);
  pthread_join(tm, NULL);
  pthread_join(t1, NULL);
  pthread_join(t2, NULL);
  race_take(&m); /* anything left over */
  int once = 1;
  for (int i = 0; i < RACE_N; i++)
    if (c1.got[i] + c2.got[i] + m.got[i] != 1)
      once = 0;
  ok(once && !m.bad && !c1.bad && !c2.bad,
     "forget: concurrent consumers take each participant exactly once");
  kj_backend_close(b);
}

/* ---- trusted-contact tokens ------------------------------------------- */

static void test_tokens(kj_backend *b) {
  kj_blob_list *jl = (kj_blob_list *)1;
  is(kj_tc_token_all_jids(b, NULL, 1, &jl), KJ_OK, "token: all_jids empty");
  ok(list_eq(jl, NULL, 0), "token: no jids");
  kj_free(jl);

  kj_tc_token t1 = {BL("tok1"), 100, 0, 77}; /* 77 ignored: none */
  kj_tc_token t2 = {BL("tok2"), 200, 1, -5};
  kj_tc_token t3 = {BL("tok3"), 99, 1, 0};
  kj_tc_token t4 = {BL("tok4"), -1000, 0, 0};
  is(kj_tc_token_put(b, NULL, 1, S("j2"), &t2), KJ_OK, "token: put j2");
  is(kj_tc_token_put(b, NULL, 1, S("j1"), &t1), KJ_OK, "token: put j1");
  is(kj_tc_token_put(b, NULL, 1, S("j3"), &t3), KJ_OK, "token: put j3");
  is(kj_tc_token_put(b, NULL, 1, S("j"), &t4), KJ_OK, "token: put j");

  kj_tc_token *g = NULL;
  is(kj_tc_token_get(b, NULL, 1, S("j2"), &g), KJ_OK, "token: get j2");
  ok(g && blob_eq(g->token, BL("tok2")) && g->token_ts == 200 &&
         g->has_sender_ts == 1 && g->sender_ts == -5 &&
         inside(g, g->token.p, g->token.len),
     "token: fields round trip, one allocation");
  kj_free(g);
  g = NULL;
  kj_tc_token_get(b, NULL, 1, S("j1"), &g);
  ok(g && g->has_sender_ts == 0 && g->sender_ts == 0 && g->token_ts == 100,
     "token: sender_ts none reads back as none (0)");
  kj_free(g);
  g = NULL;
  kj_tc_token_get(b, NULL, 1, S("j3"), &g);
  ok(g && g->has_sender_ts == 1 && g->sender_ts == 0,
     "token: sender_ts 0 is not none");
  kj_free(g);

  jl = NULL;
  kj_tc_token_all_jids(b, NULL, 1, &jl);
  kj_blob want[] = {BL("j"), BL("j1"), BL("j2"), BL("j3")};
  ok(list_eq(jl, want, 4), "token: all_jids ascending");
  kj_free(jl);

  uint64_t n = 99;
  is(kj_tc_token_delete_expired(b, NULL, 1, INT64_MIN, &n), KJ_OK,
     "token: delete_expired(min)");
  is(n, 0, "token: nothing is older than INT64_MIN");
  n = 99;
  is(kj_tc_token_delete_expired(b, NULL, 1, 100, &n), KJ_OK,
     "token: delete_expired(100)");
  is(n, 2, "token: removed count (ts -1000 and 99)");
  int64_t ts = 0;
  is(token_ts(b, NULL, 1, "j1", &ts), KJ_OK, "token: token_ts == cutoff stays");
  is(token_ts(b, NULL, 1, "j3", &ts), KJ_NOTFOUND,
     "token: token_ts < cutoff removed");
  is(token_ts(b, NULL, 1, "j", &ts), KJ_NOTFOUND,
     "token: negative token_ts removed");
  n = 99;
  kj_tc_token_delete_expired(b, NULL, 1, 100, &n);
  is(n, 0, "token: second delete_expired removes nothing");

  /* Put replaces. */
  kj_tc_token t1b = {BL("new"), 300, 1, 1};
  is(kj_tc_token_put(b, NULL, 1, S("j1"), &t1b), KJ_OK, "token: replace");
  g = NULL;
  kj_tc_token_get(b, NULL, 1, S("j1"), &g);
  ok(g && blob_eq(g->token, BL("new")) && g->token_ts == 300 &&
         g->has_sender_ts == 1 && g->sender_ts == 1,
     "token: replaced");
  kj_free(g);

  is(kj_tc_token_delete(b, NULL, 1, S("j1")), KJ_OK, "token: delete");
  g = (kj_tc_token *)1;
  is(kj_tc_token_get(b, NULL, 1, S("j1"), &g), KJ_NOTFOUND, "token: deleted");
  ok(g == NULL, "token: out NULL on NOTFOUND");
  is(kj_tc_token_delete(b, NULL, 1, S("j1")), KJ_OK,
     "token: delete of an absent jid succeeds");
  jl = NULL;
  kj_tc_token_all_jids(b, NULL, 1, &jl);
  ok(list_eq(jl, (kj_blob[]){BL("j2")}, 1), "token: one left");
  kj_free(jl);

  /* Largest token. */
  uint8_t *big = malloc(KJ_MAX_RECORD);
  memset(big, 't', KJ_MAX_RECORD);
  kj_tc_token tb = {{big, KJ_MAX_RECORD}, 1, 0, 0};
  is(kj_tc_token_put(b, NULL, 1, S("big"), &tb), KJ_OK,
     "token: KJ_MAX_RECORD token");
  g = NULL;
  kj_tc_token_get(b, NULL, 1, S("big"), &g);
  ok(g && blob_eq(g->token, tb.token), "token: KJ_MAX_RECORD round trip");
  kj_free(g);
  free(big);
}

/* ---- exact rows (doc/FORMAT.md section 8) ----------------------------- */

static void test_format(void) {
  kj_backend *b = open_backend(NULL);
  const uint32_t dev = 0x01020304;
  is(tu_make_slot(b, dev), KJ_OK, "format: slot 0x01020304");
  bb k, v;

  kj_skdm_add(b, NULL, dev, S("grp"), (kj_blob[]){BL("jid")}, 1);
  bb_raw(bb_lp(bb_dev(&k, dev), "grp", 3), "jid", 3);
  v.len = 0;
  ok(row_is(b, T_SKDM, &k, bb_u8(&v, 1)),
     "format: table 30 = dev, lp(group), jid -> version");

  kj_lid_mapping m =
      lidm(BL("lid"), BL("ph"), -2, 0x0102030405060708, BL("so"));
  kj_lid_put(b, NULL, dev, &m);
  bb_raw(bb_dev(&k, dev), "lid", 3);
  v.len = 0;
  bb_blob(
      bb_le64(bb_le64(bb_blob(bb_u8(&v, 1), "ph", 2), -2), 0x0102030405060708),
      "so", 2);
  ok(row_is(b, T_LID, &k, &v),
     "format: table 31 = dev, lid -> blob phone, i64 created, i64 updated, "
     "blob source");
  bb_raw(bb_lp(bb_dev(&k, dev), "ph", 2), "lid", 3);
  v.len = 0;
  ok(row_is(b, T_LID_BY_PHONE, &k, bb_u8(&v, 1)),
     "format: table 32 = dev, lp(phone), lid -> version");

  kj_base_key_save(b, NULL, dev, S("ad"), S("mid"), S("KEY"));
  bb_raw(bb_lp(bb_dev(&k, dev), "ad", 2), "mid", 3);
  v.len = 0;
  ok(row_is(b, T_BASE_KEY, &k, bb_raw(bb_u8(&v, 1), "KEY", 3)),
     "format: table 33 = dev, lp(addr), msg_id -> rest base key");

  kj_device_entry e[] = {{0x11223344, 1, 0x55667788}, {9, 0, 0}};
  kj_device_list r = {BL("usr"), -3, 1, BL("ph"), 2, e};
  kj_device_list_update(b, NULL, dev, &r);
  bb_raw(bb_dev(&k, dev), "usr", 3);
  v.len = 0;
  bb_var(bb_blob(bb_u8(bb_le64(bb_u8(&v, 1), -3), 1), "ph", 2), 2);
  bb_le32(bb_u8(bb_le32(&v, 0x11223344), 1), 0x55667788);
  bb_le32(bb_u8(bb_le32(&v, 9), 0), 0);
  ok(row_is(b, T_DEVICE_LIST, &k, &v),
     "format: table 34 = dev, user -> i64 ts, opt blob phash, varint n, "
     "entries");
  r.has_phash = 0;
  r.n = 0;
  kj_device_list_update(b, NULL, dev, &r);
  v.len = 0;
  bb_var(bb_u8(bb_le64(bb_u8(&v, 1), -3), 0), 0);
  ok(row_is(b, T_DEVICE_LIST, &k, &v), "format: table 34, phash none");

  kj_sender_key_mark_forget(b, NULL, dev, S("grp"), S("pt"));
  bb_raw(bb_lp(bb_dev(&k, dev), "grp", 3), "pt", 2);
  v.len = 0;
  ok(row_is(b, T_SK_FORGET, &k, bb_u8(&v, 1)),
     "format: table 35 = dev, lp(group), participant -> version");

  kj_tc_token tok = {BL("tk"), 5, 1, -1};
  kj_tc_token_put(b, NULL, dev, S("jd"), &tok);
  bb_raw(bb_dev(&k, dev), "jd", 2);
  v.len = 0;
  bb_le64(bb_u8(bb_le64(bb_blob(bb_u8(&v, 1), "tk", 2), 5), 1), -1);
  ok(row_is(b, T_TC_TOKEN, &k, &v),
     "format: table 36 = dev, jid -> blob token, i64 ts, u8 has, i64 sender");
  tok.has_sender_ts = 0;
  kj_tc_token_put(b, NULL, dev, S("jd"), &tok);
  v.len = 0;
  bb_le64(bb_u8(bb_le64(bb_blob(bb_u8(&v, 1), "tk", 2), 5), 0), 0);
  ok(row_is(b, T_TC_TOKEN, &k, &v), "format: table 36, sender_ts none is 0");

  kj_backend_close(b);
}

/* ---- slots ------------------------------------------------------------ */

/* One row of every kind in slot dev, with values that name the slot. */
static int fill_slot(kj_backend *b, kj_tx *t, uint32_t dev, const char *tag) {
  size_t n = strlen(tag);
  kj_blob jt = {(const uint8_t *)tag, n};
  kj_lid_mapping m = lidm(BL("L"), jt, 1, 2, jt);
  kj_device_entry e = {(uint32_t)n, 1, 0};
  kj_device_list r = {BL("U"), 1, 1, jt, 1, &e};
  kj_tc_token tok = {jt, 1, 0, 0};
  int rc;
  if ((rc = kj_skdm_add(b, t, dev, S("G"), &jt, 1)) ||
      (rc = kj_lid_put(b, t, dev, &m)) ||
      (rc = kj_base_key_save(b, t, dev, S("A"), S("M"), tag, n)) ||
      (rc = kj_device_list_update(b, t, dev, &r)) ||
      (rc = kj_sender_key_mark_forget(b, t, dev, S("G"), tag, n)) ||
      (rc = kj_tc_token_put(b, t, dev, S("J"), &tok)))
    return rc;
  return KJ_OK;
}

/* 1 if slot dev reads back what fill_slot(tag) wrote (consumes nothing). */
static int slot_holds(kj_backend *b, kj_tx *t, uint32_t dev, const char *tag) {
  size_t n = strlen(tag);
  kj_blob jt = {(const uint8_t *)tag, n};
  int good = 1;
  kj_blob_list *l = NULL;
  good &= kj_skdm_get(b, t, dev, S("G"), &l) == KJ_OK && list_eq(l, &jt, 1);
  kj_free(l);
  kj_lid_mapping_list *ml = NULL;
  good &= kj_lid_get_by_lid(b, t, dev, S("L"), &ml) == KJ_OK &&
          mapping_is(ml, lidm(BL("L"), jt, 1, 2, jt));
  kj_free(ml);
  ml = NULL;
  good &= kj_lid_get_by_phone(b, t, dev, tag, n, &ml) == KJ_OK && ml &&
          blob_eq(ml->v[0].lid, BL("L"));
  kj_free(ml);
  good &= has_same(b, t, dev, "A", "M", tag, n) == 1;
  kj_device_list *d = NULL;
  good &= kj_device_list_get(b, t, dev, S("U"), &d) == KJ_OK && d->n == 1 &&
          d->devices[0].device_id == n && blob_eq(d->phash, jt);
  kj_free(d);
  kj_tc_token *tok = NULL;
  good &= kj_tc_token_get(b, t, dev, S("J"), &tok) == KJ_OK &&
          blob_eq(tok->token, jt);
  kj_free(tok);
  l = NULL;
  good &= kj_tc_token_all_jids(b, t, dev, &l) == KJ_OK &&
          list_eq(l, (kj_blob[]){BL("J")}, 1);
  kj_free(l);
  return good;
}

/* 1 if every read of slot dev finds nothing. */
static int slot_empty(kj_backend *b, uint32_t dev) {
  int good = 1;
  kj_blob_list *l = NULL;
  good &= kj_skdm_get(b, NULL, dev, S("G"), &l) == KJ_OK && l->n == 0;
  kj_free(l);
  kj_lid_mapping_list *ml = NULL;
  good &= kj_lid_get_by_lid(b, NULL, dev, S("L"), &ml) == KJ_NOTFOUND;
  good &= kj_lid_get_by_phone(b, NULL, dev, S("one"), &ml) == KJ_NOTFOUND;
  good &= kj_lid_get_all(b, NULL, dev, &ml) == KJ_OK && ml->n == 0;
  kj_free(ml);
  good &= has_same(b, NULL, dev, "A", "M", S("one")) == 0;
  kj_device_list *d = NULL;
  good &= kj_device_list_get(b, NULL, dev, S("U"), &d) == KJ_NOTFOUND;
  kj_tc_token *tok = NULL;
  good &= kj_tc_token_get(b, NULL, dev, S("J"), &tok) == KJ_NOTFOUND;
  l = NULL;
  good &= kj_tc_token_all_jids(b, NULL, dev, &l) == KJ_OK && l->n == 0;
  kj_free(l);
  return good;
}

static void test_slots(kj_backend *b) {
  is(tu_make_slot(b, 256), KJ_OK, "slots: slot 256");
  is(fill_slot(b, NULL, 1, "one"), KJ_OK, "slots: fill slot 1");
  is(fill_slot(b, NULL, 256, "two!"), KJ_OK, "slots: fill slot 256");
  ok(slot_holds(b, NULL, 1, "one"), "slots: slot 1 sees its own rows");
  ok(slot_holds(b, NULL, 256, "two!"), "slots: slot 256 sees its own rows");
  ok(slot_empty(b, 2), "slots: slot 2 (absent) reads nothing");
  ok(slot_empty(b, 0), "slots: slot 0 reads nothing");

  ok(takes(b, NULL, 1, "G", (kj_blob[]){BL("one")}, 1),
     "slots: consume in slot 1");
  ok(takes(b, NULL, 256, "G", (kj_blob[]){BL("two!")}, 1),
     "slots: slot 256's mark survived slot 1's consume");
  uint64_t n = 0;
  kj_tc_token_delete_expired(b, NULL, 1, 100, &n);
  is(n, 1, "slots: delete_expired in slot 1");
  kj_tc_token *tok = NULL;
  is(kj_tc_token_get(b, NULL, 256, S("J"), &tok), KJ_OK,
     "slots: slot 256's token survived");
  kj_free(tok);
  is(kj_skdm_clear(b, NULL, 1, S("G")), KJ_OK, "slots: clear in slot 1");
  is(skdm_count(b, NULL, 256, "G"), 1, "slots: slot 256's SKDM survived");

  /* Writes to a slot that does not exist. */
  char *before = dump(b);
  kj_lid_mapping m = lidm(BL("L"), BL("P"), 0, 0, BL(""));
  kj_device_list r = {BL("U"), 0, 0, {NULL, 0}, 0, NULL};
  kj_tc_token tk = {BL("t"), 0, 0, 0};
  for (uint32_t dev = 0; dev < 3; dev += 2) {
    is(kj_skdm_add(b, NULL, dev, S("G"), (kj_blob[]){BL("j")}, 1), KJ_NOTFOUND,
       "slots: skdm_add to missing slot %u", dev);
    is(kj_skdm_clear(b, NULL, dev, S("G")), KJ_NOTFOUND,
       "slots: skdm_clear on missing slot %u", dev);
    is(kj_lid_put(b, NULL, dev, &m), KJ_NOTFOUND,
       "slots: lid_put to missing slot %u", dev);
    is(kj_base_key_save(b, NULL, dev, S("A"), S("M"), S("K")), KJ_NOTFOUND,
       "slots: base_key_save to missing slot %u", dev);
    is(kj_base_key_delete(b, NULL, dev, S("A"), S("M")), KJ_NOTFOUND,
       "slots: base_key_delete on missing slot %u", dev);
    is(kj_device_list_update(b, NULL, dev, &r), KJ_NOTFOUND,
       "slots: device_list_update to missing slot %u", dev);
    is(kj_device_list_delete(b, NULL, dev, S("U")), KJ_NOTFOUND,
       "slots: device_list_delete on missing slot %u", dev);
    is(kj_sender_key_mark_forget(b, NULL, dev, S("G"), S("p")), KJ_NOTFOUND,
       "slots: mark_forget to missing slot %u", dev);
    kj_blob_list *l = (kj_blob_list *)1;
    is(kj_sender_key_consume_forget(b, NULL, dev, S("G"), &l), KJ_NOTFOUND,
       "slots: consume_forget on missing slot %u", dev);
    ok(l == NULL, "slots: consume out NULL on NOTFOUND");
    is(kj_tc_token_put(b, NULL, dev, S("J"), &tk), KJ_NOTFOUND,
       "slots: tc_token_put to missing slot %u", dev);
    is(kj_tc_token_delete(b, NULL, dev, S("J")), KJ_NOTFOUND,
       "slots: tc_token_delete on missing slot %u", dev);
    n = 7;
    is(kj_tc_token_delete_expired(b, NULL, dev, 100, &n), KJ_NOTFOUND,
       "slots: delete_expired on missing slot %u", dev);
    is(n, 0, "slots: delete_expired count 0 on NOTFOUND");
  }
  char *after = dump(b);
  ok(strcmp(before, after) == 0, "slots: writes to missing slots changed "
                                 "nothing");
  free(before);
  free(after);
}

/* ---- argument checks -------------------------------------------------- */

typedef struct einval_ctx {
  kj_backend *b;
  char *before;
} einval_ctx;

/* The call must fail with KJ_EINVAL and leave every table as it was. */
static void expect_einval(einval_ctx *c, int rc, const char *what) {
  is(rc, KJ_EINVAL, "einval: %s", what);
  char *after = dump(c->b);
  ok(strcmp(c->before, after) == 0, "einval: %s: nothing changed", what);
  free(after);
}

/* expect_einval() of a call that must also set its result out to NULL
 * ("einval: <fn> out set to NULL"). */
#define EINVAL_OUT(c, out, call, what, fn)                                     \
  do {                                                                         \
    out = (void *)1;                                                           \
    expect_einval(c, call, what);                                              \
    ok(out == NULL, "einval: %s out set to NULL", fn);                         \
  } while (0)

static void test_einval(void) {
  kj_backend *b = open_backend(NULL);
  tu_make_slot(b, 1);
  /* Something in every table, so "nothing changed" means something. */
  fill_slot(b, NULL, 1, "one");
  einval_ctx c = {b, dump(b)};
  uint8_t *big = calloc(1, KJ_MAX_RECORD + 1);
  memset(big, 'z', KJ_MAX_RECORD + 1);
  kj_blob_list *l;
  kj_lid_mapping_list *ml;
  kj_device_list *dl;
  kj_tc_token *tk;

  /* Handle and transaction. */
  expect_einval(&c, kj_skdm_add(NULL, NULL, 1, S("g"), NULL, 0), "NULL b");
  l = (kj_blob_list *)1;
  is(kj_skdm_get(NULL, NULL, 1, S("g"), &l), KJ_EINVAL, "einval: get NULL b");
  ok(l == NULL, "einval: out NULL even with a NULL b");
  kj_backend *b2 = open_backend(NULL);
  tu_make_slot(b2, 1);
  kj_tx *t2 = NULL;
  kj_backend_begin(b2, &t2);
  expect_einval(&c, kj_skdm_add(b, t2, 1, S("g"), (kj_blob[]){BL("x")}, 1),
                "transaction of another backend");
  kj_backend_rollback(t2);
  kj_backend_close(b2);

  /* SKDM */
  EINVAL_OUT(&c, l, kj_skdm_get(b, NULL, 1, NULL, 1, &l), "skdm_get NULL",
             "skdm_get");
  expect_einval(&c, kj_skdm_get(b, NULL, 1, "g", 0, &l), "skdm_get empty");
  expect_einval(&c, kj_skdm_get(b, NULL, 1, big, KJ_MAX_ID + 1, &l),
                "skdm_get group KJ_MAX_ID+1");
  expect_einval(&c, kj_skdm_get(b, NULL, 1, S("G"), NULL), "skdm_get out NULL");
  expect_einval(&c, kj_skdm_add(b, NULL, 1, "", 0, (kj_blob[]){BL("x")}, 1),
                "skdm_add empty group");
  expect_einval(&c, kj_skdm_add(b, NULL, 1, S("G"), NULL, 1),
                "skdm_add jids NULL, n 1");
  kj_blob bad_last[] = {BL("new1"), BL("new2"), {big, KJ_MAX_ID + 1}};
  expect_einval(&c, kj_skdm_add(b, NULL, 1, S("G"), bad_last, 3),
                "skdm_add last jid KJ_MAX_ID+1 (earlier ones not added)");
  kj_blob bad_empty[] = {BL("new1"), {(const uint8_t *)"x", 0}};
  expect_einval(&c, kj_skdm_add(b, NULL, 1, S("G"), bad_empty, 2),
                "skdm_add empty jid");
  kj_blob bad_null[] = {{NULL, 3}, BL("new1")};
  expect_einval(&c, kj_skdm_add(b, NULL, 1, S("G"), bad_null, 2),
                "skdm_add NULL jid");
  size_t toomany = 100001;
  kj_blob *many = malloc(toomany * sizeof *many);
  for (size_t i = 0; i < toomany; i++)
    many[i] = BL("m");
  expect_einval(&c, kj_skdm_add(b, NULL, 1, S("G"), many, toomany),
                "skdm_add 100001 jids");
  free(many);
  expect_einval(&c, kj_skdm_clear(b, NULL, 1, NULL, 0), "skdm_clear NULL");
  expect_einval(&c, kj_skdm_clear(b, NULL, 1, big, KJ_MAX_ID + 1),
                "skdm_clear KJ_MAX_ID+1");

  /* LID */
  kj_lid_mapping m = lidm(BL("L"), BL("new"), 0, 0, BL(""));
  expect_einval(&c, kj_lid_put(b, NULL, 1, NULL), "lid_put NULL mapping");
  m.lid = (kj_blob){NULL, 0};
  expect_einval(&c, kj_lid_put(b, NULL, 1, &m), "lid_put empty lid");
  m.lid = (kj_blob){big, KJ_MAX_ID + 1};
  expect_einval(&c, kj_lid_put(b, NULL, 1, &m), "lid_put lid KJ_MAX_ID+1");
  m.lid = BL("L");
  m.phone = (kj_blob){(const uint8_t *)"p", 0};
  expect_einval(&c, kj_lid_put(b, NULL, 1, &m), "lid_put empty phone");
  m.phone = (kj_blob){big, KJ_MAX_ID + 1};
  expect_einval(&c, kj_lid_put(b, NULL, 1, &m), "lid_put phone KJ_MAX_ID+1");
  m.phone = BL("new");
  m.source = (kj_blob){NULL, 3};
  expect_einval(&c, kj_lid_put(b, NULL, 1, &m), "lid_put source NULL, len 3");
  m.source = (kj_blob){big, KJ_MAX_ID + 1};
  expect_einval(&c, kj_lid_put(b, NULL, 1, &m), "lid_put source KJ_MAX_ID+1");
  EINVAL_OUT(&c, ml, kj_lid_get_by_lid(b, NULL, 1, NULL, 1, &ml),
             "lid_get_by_lid NULL", "lid_get_by_lid");
  expect_einval(&c, kj_lid_get_by_lid(b, NULL, 1, S("L"), NULL),
                "lid_get_by_lid out NULL");
  expect_einval(&c, kj_lid_get_by_phone(b, NULL, 1, big, KJ_MAX_ID + 1, &ml),
                "lid_get_by_phone KJ_MAX_ID+1");
  expect_einval(&c, kj_lid_get_by_phone(b, NULL, 1, "x", 0, &ml),
                "lid_get_by_phone empty");
  expect_einval(&c, kj_lid_get_all(b, NULL, 1, NULL), "lid_get_all out NULL");

  /* Base keys */
  expect_einval(&c, kj_base_key_save(b, NULL, 1, "", 0, S("M"), S("K")),
                "base_key_save empty address");
  expect_einval(
      &c, kj_base_key_save(b, NULL, 1, S("A"), big, KJ_MAX_ID + 1, S("K")),
      "base_key_save message id KJ_MAX_ID+1");
  expect_einval(&c, kj_base_key_save(b, NULL, 1, S("A"), S("M"), "K", 0),
                "base_key_save empty base key");
  expect_einval(
      &c, kj_base_key_save(b, NULL, 1, S("A"), S("M"), big, KJ_MAX_ID + 1),
      "base_key_save base key KJ_MAX_ID+1");
  int same = 5;
  expect_einval(
      &c, kj_base_key_has_same(b, NULL, 1, S("A"), S("M"), NULL, 1, &same),
      "has_same NULL base key");
  is(same, 0, "einval: has_same sets *same to 0");
  expect_einval(&c,
                kj_base_key_has_same(b, NULL, 1, S("A"), S("M"), S("K"), NULL),
                "has_same same NULL");
  expect_einval(&c, kj_base_key_delete(b, NULL, 1, S("A"), NULL, 2),
                "base_key_delete NULL message id");

  /* Device registry */
  kj_device_entry e[] = {{1, 0, 0}, {2, 1, 5}};
  kj_device_list r = {BL("U"), 0, 0, {NULL, 0}, 2, e};
  expect_einval(&c, kj_device_list_update(b, NULL, 1, NULL),
                "device_list_update NULL record");
  r.user = (kj_blob){NULL, 0};
  expect_einval(&c, kj_device_list_update(b, NULL, 1, &r),
                "device_list_update empty user");
  r.user = BL("U");
  r.has_phash = 2;
  expect_einval(&c, kj_device_list_update(b, NULL, 1, &r),
                "device_list_update has_phash 2");
  r.has_phash = 1;
  r.phash = (kj_blob){NULL, 5};
  expect_einval(&c, kj_device_list_update(b, NULL, 1, &r),
                "device_list_update phash NULL, len 5");
  r.phash = (kj_blob){big, KJ_MAX_ID + 1};
  expect_einval(&c, kj_device_list_update(b, NULL, 1, &r),
                "device_list_update phash KJ_MAX_ID+1");
  r.phash = BL("h");
  r.devices = NULL;
  expect_einval(&c, kj_device_list_update(b, NULL, 1, &r),
                "device_list_update devices NULL, n 2");
  r.devices = e;
  e[1].has_key_index = 2;
  expect_einval(&c, kj_device_list_update(b, NULL, 1, &r),
                "device_list_update devices[1].has_key_index 2");
  e[1].has_key_index = -1;
  expect_einval(&c, kj_device_list_update(b, NULL, 1, &r),
                "device_list_update devices[1].has_key_index -1");
  e[1].has_key_index = 1;
  kj_device_entry *tooMany = calloc(KJ_MAX_DEVICES + 1, sizeof *tooMany);
  r.devices = tooMany;
  r.n = KJ_MAX_DEVICES + 1;
  expect_einval(&c, kj_device_list_update(b, NULL, 1, &r),
                "device_list_update KJ_MAX_DEVICES+1 devices");
  free(tooMany);
  EINVAL_OUT(&c, dl, kj_device_list_get(b, NULL, 1, big, KJ_MAX_ID + 1, &dl),
             "device_list_get user KJ_MAX_ID+1", "device_list_get");
  expect_einval(&c, kj_device_list_get(b, NULL, 1, S("U"), NULL),
                "device_list_get out NULL");
  expect_einval(&c, kj_device_list_delete(b, NULL, 1, "", 0),
                "device_list_delete empty user");

  /* Forget marks */
  expect_einval(&c, kj_sender_key_mark_forget(b, NULL, 1, S("G"), "", 0),
                "mark_forget empty participant");
  expect_einval(
      &c, kj_sender_key_mark_forget(b, NULL, 1, big, KJ_MAX_ID + 1, S("p")),
      "mark_forget group KJ_MAX_ID+1");
  EINVAL_OUT(&c, l, kj_sender_key_consume_forget(b, NULL, 1, "", 0, &l),
             "consume_forget empty group", "consume");
  expect_einval(&c, kj_sender_key_consume_forget(b, NULL, 1, S("G"), NULL),
                "consume_forget out NULL (marks stay)");

  /* Tokens */
  kj_tc_token tok = {BL("t"), 0, 0, 0};
  expect_einval(&c, kj_tc_token_put(b, NULL, 1, "", 0, &tok),
                "tc_token_put empty jid");
  expect_einval(&c, kj_tc_token_put(b, NULL, 1, S("J"), NULL),
                "tc_token_put NULL token");
  tok.token = (kj_blob){(const uint8_t *)"t", 0};
  expect_einval(&c, kj_tc_token_put(b, NULL, 1, S("J"), &tok),
                "tc_token_put empty token");
  tok.token = (kj_blob){big, KJ_MAX_RECORD + 1};
  expect_einval(&c, kj_tc_token_put(b, NULL, 1, S("J"), &tok),
                "tc_token_put token KJ_MAX_RECORD+1");
  tok.token = BL("t");
  tok.has_sender_ts = 2;
  expect_einval(&c, kj_tc_token_put(b, NULL, 1, S("J"), &tok),
                "tc_token_put has_sender_ts 2");
  EINVAL_OUT(&c, tk, kj_tc_token_get(b, NULL, 1, NULL, 0, &tk),
             "tc_token_get NULL jid", "tc_token_get");
  expect_einval(&c, kj_tc_token_get(b, NULL, 1, S("J"), NULL),
                "tc_token_get out NULL");
  expect_einval(&c, kj_tc_token_delete(b, NULL, 1, big, KJ_MAX_ID + 1),
                "tc_token_delete jid KJ_MAX_ID+1");
  expect_einval(&c, kj_tc_token_all_jids(b, NULL, 1, NULL),
                "tc_token_all_jids out NULL");
  expect_einval(&c, kj_tc_token_delete_expired(b, NULL, 1, INT64_MAX, NULL),
                "tc_token_delete_expired removed NULL");

  ok(kj_backend_errmsg(b)[0] != '\0', "einval: a detail message is set");

  free(big);
  free(c.before);
  kj_backend_close(b);
}

/* ---- transactions ----------------------------------------------------- */

static void test_tx(void) {
  kj_backend *b = open_backend(NULL);
  tu_make_slot(b, 1);
  char *empty = dump(b);

  /* Every write in a transaction, seen inside it, gone after rollback. */
  kj_tx *t = NULL;
  is(kj_backend_begin(b, &t), KJ_OK, "tx: begin");
  is(fill_slot(b, t, 1, "one"), KJ_OK, "tx: every write in a tx");
  ok(slot_holds(b, t, 1, "one"), "tx: reads in the tx see its writes");
  ok(strcmp(by_phone(b, t, 1, "one"), "L") == 0, "tx: index seen in the tx");
  kj_backend_rollback(t);
  char *now = dump(b);
  ok(strcmp(empty, now) == 0, "tx: rollback leaves nothing");
  free(now);
  ok(slot_empty(b, 1), "tx: rolled-back rows are not read");

  /* Commit keeps them. */
  t = NULL;
  kj_backend_begin(b, &t);
  is(fill_slot(b, t, 1, "one"), KJ_OK, "tx: writes again");
  is(kj_backend_commit(t), KJ_OK, "tx: commit");
  ok(slot_holds(b, NULL, 1, "one"), "tx: committed rows are read");
  char *full = dump(b);

  /* Every delete and a phone move in a transaction, rolled back. */
  t = NULL;
  kj_backend_begin(b, &t);
  kj_lid_mapping mv = lidm(BL("L"), BL("two"), 0, 3, BL(""));
  uint64_t n = 0;
  kj_blob_list *l = NULL;
  int rc = kj_skdm_clear(b, t, 1, S("G"));
  rc |= kj_lid_put(b, t, 1, &mv);
  rc |= kj_base_key_delete(b, t, 1, S("A"), S("M"));
  rc |= kj_device_list_delete(b, t, 1, S("U"));
  rc |= kj_sender_key_consume_forget(b, t, 1, S("G"), &l);
  rc |= kj_tc_token_delete_expired(b, t, 1, 2, &n);
  is(rc, KJ_OK, "tx: every delete in a tx");
  ok(list_eq(l, (kj_blob[]){BL("one")}, 1), "tx: consume in the tx");
  kj_free(l);
  is(n, 1, "tx: delete_expired count in the tx");
  ok(skdm_count(b, t, 1, "G") == 0 &&
         has_same(b, t, 1, "A", "M", S("one")) == 0,
     "tx: deletes seen in the tx");
  ok(strcmp(by_phone(b, t, 1, "two"), "L") == 0 &&
         strcmp(by_phone(b, t, 1, "one"), "") == 0,
     "tx: phone move seen in the tx");
  int64_t ts;
  is(token_ts(b, t, 1, "J", &ts), KJ_NOTFOUND, "tx: expired token gone in tx");
  is(kj_tc_token_put(b, t, 2, S("J"), &(kj_tc_token){BL("x"), 0, 0, 0}),
     KJ_NOTFOUND, "tx: write to a missing slot inside a tx");
  kj_backend_rollback(t);
  now = dump(b);
  ok(strcmp(full, now) == 0, "tx: rolled-back deletes change nothing");
  free(now);
  ok(slot_holds(b, NULL, 1, "one"), "tx: rows still read after rollback");

  /* A failed call inside a transaction leaves it usable. */
  t = NULL;
  kj_backend_begin(b, &t);
  is(kj_tc_token_put(b, t, 2, S("J"), &(kj_tc_token){BL("x"), 0, 0, 0}),
     KJ_NOTFOUND, "tx: NOTFOUND inside a tx");
  is(kj_skdm_add(b, t, 1, "", 0, NULL, 0), KJ_EINVAL, "tx: EINVAL inside a tx");
  is(kj_skdm_add(b, t, 1, S("G"), (kj_blob[]){BL("two")}, 1), KJ_OK,
     "tx: a later write in the same tx");
  is(kj_backend_commit(t), KJ_OK, "tx: commit after failed calls");
  is(skdm_count(b, NULL, 1, "G"), 2, "tx: the later write is committed");

  free(full);
  free(empty);
  kj_backend_close(b);
}

/* ---- persistence ------------------------------------------------------ */

static void test_persist(void) {
  char *dir = tu_mkdtemp();
  if (!dir) {
    ok(0, "persist: temp dir");
    return;
  }
  kj_backend *b = open_backend(dir);
  tu_make_slot(b, 1);
  tu_make_slot(b, 2);
  is(fill_slot(b, NULL, 1, "one"), KJ_OK, "persist: fill slot 1");
  is(fill_slot(b, NULL, 2, "two"), KJ_OK, "persist: fill slot 2");
  char *before = dump(b);
  is(kj_backend_close(b), KJ_OK, "persist: close");

  b = open_backend(dir);
  char *after = dump(b);
  ok(strcmp(before, after) == 0, "persist: same rows after reopen");
  free(after);
  ok(slot_holds(b, NULL, 1, "one") && slot_holds(b, NULL, 2, "two"),
     "persist: every store reads back after reopen");

  /* Through a snapshot, then a journal tail. */
  is(kj_store_checkpoint(st(b)), KJ_OK, "persist: checkpoint");
  kj_blob_list *l = NULL;
  kj_sender_key_consume_forget(b, NULL, 1, S("G"), &l);
  kj_free(l);
  kj_lid_mapping mv = lidm(BL("L"), BL("moved"), 50, 60, BL("z"));
  kj_lid_put(b, NULL, 2, &mv);
  free(before);
  before = dump(b);
  kj_backend_close(b);

  b = open_backend(dir);
  after = dump(b);
  ok(strcmp(before, after) == 0,
     "persist: same rows after snapshot + journal replay");
  ok(takes(b, NULL, 1, "G", NULL, 0), "persist: a consume stays consumed");
  ok(strcmp(by_phone(b, NULL, 2, "moved"), "L") == 0 &&
         strcmp(by_phone(b, NULL, 2, "two"), "") == 0,
     "persist: the phone index survives reopen");
  kj_lid_mapping_list *ml = NULL;
  kj_lid_get_by_lid(b, NULL, 2, S("L"), &ml);
  ok(mapping_is(ml, lidm(BL("L"), BL("moved"), 1, 60, BL("z"))),
     "persist: created_at kept across reopen");
  kj_free(ml);
  kj_backend_close(b);

  free(before);
  free(after);
  tu_rmrf(dir);
  free(dir);
}

/* ---- damaged rows ----------------------------------------------------- */

/* Replace the row (table, key) with bad, run the read, and expect want. */
typedef int (*read_fn)(kj_backend *b);

/* A read op whose result must stay NULL when it fails: the status of
 * call (which stores into out), or 99. */
#define READ_FN(name, type, call)                                              \
  static int name(kj_backend *b) {                                             \
    type *out = (type *)1;                                                     \
    int rc = call;                                                             \
    return tu_out_rc(rc, out, 0);                                              \
  }

READ_FN(rd_lid, kj_lid_mapping_list,
        kj_lid_get_by_lid(b, NULL, 1, S("L"), &out))
READ_FN(rd_lid_all, kj_lid_mapping_list, kj_lid_get_all(b, NULL, 1, &out))
READ_FN(rd_lid_phone, kj_lid_mapping_list,
        kj_lid_get_by_phone(b, NULL, 1, S("P"), &out))
READ_FN(rd_skdm, kj_blob_list, kj_skdm_get(b, NULL, 1, S("G"), &out))
READ_FN(rd_devlist, kj_device_list,
        kj_device_list_get(b, NULL, 1, S("U"), &out))
READ_FN(rd_forget, kj_blob_list,
        kj_sender_key_consume_forget(b, NULL, 1, S("G"), &out))
READ_FN(rd_token, kj_tc_token, kj_tc_token_get(b, NULL, 1, S("J"), &out))
READ_FN(rd_token_jids, kj_blob_list, kj_tc_token_all_jids(b, NULL, 1, &out))

static int wr_lid(kj_backend *b) {
  kj_lid_mapping m = lidm(BL("L"), BL("Q"), 0, 0, BL(""));
  return kj_lid_put(b, NULL, 1, &m);
}
static int rd_base(kj_backend *b) {
  int same = 7;
  int rc = kj_base_key_has_same(b, NULL, 1, S("A"), S("M"), S("K"), &same);
  return rc == KJ_OK ? 100 + same : rc;
}
static int rd_token_expire(kj_backend *b) {
  uint64_t n = 5;
  int rc = kj_tc_token_delete_expired(b, NULL, 1, INT64_MAX, &n);
  return rc != KJ_OK && n ? 99 : rc;
}

typedef struct damage_case {
  const char *what;
  unsigned table;
  bb key;
  bb good; /* the row as written by the store */
  read_fn fns[4];
  int truncations; /* every proper prefix is malformed */
} damage_case;

/* Write v at (table, key), run each fn, expect want, and check that
 * nothing else changed (a failing write or consume must not have acted). */
static void damage(kj_backend *b, const damage_case *dc, const void *v,
                   size_t vlen, int want, const char *how) {
  put_row(b, dc->table, &dc->key, v, vlen);
  char *before = dump(b);
  for (int i = 0; i < 4 && dc->fns[i]; i++) {
    int rc = dc->fns[i](b);
    is(rc, want, "damage: %s, %s (op %d)", dc->what, how, i);
    char *after = dump(b);
    ok(strcmp(before, after) == 0, "damage: %s, %s (op %d): nothing changed",
       dc->what, how, i);
    free(after);
  }
  free(before);
}

/* The row as the store wrote it must be dc->good ("damage: <row>"); then
 * every generic damage of it, and the good row back. */
static void damage_all(kj_backend *b, damage_case *dc, const char *row) {
  ok(row_is(b, dc->table, &dc->key, &dc->good), "damage: %s", row);
  const bb *g = &dc->good;
  uint8_t buf[sizeof g->b + 1];
  /* Garbage: an overlong varint right after the version byte. */
  static const uint8_t garbage[] = {1,    0xff, 0xff, 0xff, 0xff, 0xff,
                                    0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
  damage(b, dc, garbage, sizeof garbage, KJ_ECORRUPT, "garbage");
  damage(b, dc, NULL, 0, KJ_ECORRUPT, "empty value");
  memcpy(buf, g->b, g->len);
  buf[g->len] = 0;
  damage(b, dc, buf, g->len + 1, KJ_ECORRUPT, "trailing byte");
  buf[0] = 2;
  damage(b, dc, buf, g->len, KJ_EFORMAT, "version byte 2");
  buf[0] = 1;
  if (dc->truncations)
    for (size_t n = 1; n < g->len; n++)
      damage(b, dc, buf, n, KJ_ECORRUPT, "truncated");
  put_row(b, dc->table, &dc->key, g->b, g->len);
}

/* The good row of dc with byte i set to x must read as KJ_ECORRUPT. */
static void damage_byte(kj_backend *b, const damage_case *dc, size_t i,
                        uint8_t x, const char *how) {
  bb v = dc->good;
  v.b[i] = x;
  damage(b, dc, v.b, v.len, KJ_ECORRUPT, how);
}

static void test_damage(void) {
  kj_backend *b = open_backend(NULL);
  tu_make_slot(b, 1);
  kj_lid_mapping m = lidm(BL("L"), BL("P"), 1, 2, BL("src"));
  kj_lid_put(b, NULL, 1, &m);
  kj_skdm_add(b, NULL, 1, S("G"), (kj_blob[]){BL("j")}, 1);
  kj_base_key_save(b, NULL, 1, S("A"), S("M"), S("K"));
  kj_device_entry e[] = {{1, 1, 2}, {3, 0, 0}};
  kj_device_list r = {BL("U"), 1, 1, BL("ph"), 2, e};
  kj_device_list_update(b, NULL, 1, &r);
  kj_sender_key_mark_forget(b, NULL, 1, S("G"), S("p"));
  kj_tc_token tok = {BL("tk"), 1, 1, 2};
  kj_tc_token_put(b, NULL, 1, S("J"), &tok);

  damage_case dc;
  /* Table 31. */
  dc = (damage_case){.what = "LID mapping",
                     .table = T_LID,
                     .fns = {rd_lid, rd_lid_all, rd_lid_phone, wr_lid},
                     .truncations = 1};
  bb_raw(bb_dev(&dc.key, 1), "L", 1);
  bb_blob(bb_le64(bb_le64(bb_blob(bb_u8(&dc.good, 1), "P", 1), 1), 2), "src",
          3);
  damage_all(b, &dc, "LID row as expected");
  bb v = {.len = 0};
  bb_blob(bb_le64(bb_le64(bb_blob(bb_u8(&v, 1), "", 0), 1), 2), "", 0);
  damage(b, &dc, v.b, v.len, KJ_ECORRUPT, "empty phone");
  v.len = 0;
  bb_blob(bb_le64(bb_le64(bb_blob(bb_u8(&v, 1), "P", 1), 1), 2), "", 0);
  v.b[1] = 0x80; /* a phone length that runs into the next field */
  damage(b, &dc, v.b, v.len, KJ_ECORRUPT, "bad phone varint");
  put_row(b, dc.table, &dc.key, dc.good.b, dc.good.len);
  is(rd_lid_phone(b), KJ_OK, "damage: LID restored");

  /* Table 32: an index row with no mapping, one naming the wrong phone,
   * and a damaged index value. */
  bb ik;
  bb_raw(bb_lp(bb_dev(&ik, 1), "P", 1), "L9", 2);
  put_row(b, T_LID_BY_PHONE, &ik, "\x01", 1);
  is(rd_lid_phone(b), KJ_ECORRUPT, "damage: index row with no mapping");
  ok(strstr(kj_backend_errmsg(b), "32") != NULL,
     "damage: detail message names table 32 (%s)", kj_backend_errmsg(b));
  kj_delete(st(b), NULL, T_LID_BY_PHONE, ik.b, ik.len);
  bb_raw(bb_lp(bb_dev(&ik, 1), "Z", 1), "L", 1);
  put_row(b, T_LID_BY_PHONE, &ik, "\x01", 1);
  kj_lid_mapping_list *ml = NULL;
  is(kj_lid_get_by_phone(b, NULL, 1, S("Z"), &ml), KJ_ECORRUPT,
     "damage: index row whose mapping has another phone");
  ok(ml == NULL, "damage: out NULL");
  kj_delete(st(b), NULL, T_LID_BY_PHONE, ik.b, ik.len);
  bb_raw(bb_lp(bb_dev(&ik, 1), "P", 1), "L", 1);
  put_row(b, T_LID_BY_PHONE, &ik, "\x02", 1);
  is(rd_lid_phone(b), KJ_EFORMAT, "damage: index row version 2");
  put_row(b, T_LID_BY_PHONE, &ik, "\x01\x00", 2);
  is(rd_lid_phone(b), KJ_ECORRUPT, "damage: index row trailing byte");
  put_row(b, T_LID_BY_PHONE, &ik, "\x01", 1);
  is(rd_lid_phone(b), KJ_OK, "damage: index restored");

  /* Table 30, including a key with no jid after the group. */
  dc = (damage_case){.what = "SKDM", .table = T_SKDM, .fns = {rd_skdm}};
  bb_raw(bb_lp(bb_dev(&dc.key, 1), "G", 1), "j", 1);
  bb_u8(&dc.good, 1);
  damage_all(b, &dc, "SKDM row as expected");
  bb sk;
  bb_lp(bb_dev(&sk, 1), "G", 1);
  put_row(b, T_SKDM, &sk, "\x01", 1);
  is(rd_skdm(b), KJ_ECORRUPT, "damage: SKDM key without a jid");
  kj_delete(st(b), NULL, T_SKDM, sk.b, sk.len);
  is(rd_skdm(b), KJ_OK, "damage: SKDM restored");

  /* Table 33: rest is the key, so only a missing key is malformed. */
  dc = (damage_case){.what = "base key", .table = T_BASE_KEY, .fns = {rd_base}};
  bb_raw(bb_lp(bb_dev(&dc.key, 1), "A", 1), "M", 1);
  bb_raw(bb_u8(&dc.good, 1), "K", 1);
  ok(row_is(b, dc.table, &dc.key, &dc.good), "damage: base key row");
  damage(b, &dc, NULL, 0, KJ_ECORRUPT, "empty value");
  damage(b, &dc, "\x01", 1, KJ_ECORRUPT, "no key bytes");
  damage(b, &dc, "\x02K", 2, KJ_EFORMAT, "version byte 2");
  uint8_t *longkey = calloc(1, KJ_MAX_ID + 2);
  longkey[0] = 1;
  damage(b, &dc, longkey, KJ_MAX_ID + 2, KJ_ECORRUPT, "key KJ_MAX_ID+1");
  free(longkey);
  damage(b, &dc, "\x01K", 2, 101, "restored: same");

  /* Table 34. */
  dc = (damage_case){.what = "device registry",
                     .table = T_DEVICE_LIST,
                     .fns = {rd_devlist},
                     .truncations = 1};
  bb_raw(bb_dev(&dc.key, 1), "U", 1);
  bb_var(bb_blob(bb_u8(bb_le64(bb_u8(&dc.good, 1), 1), 1), "ph", 2), 2);
  bb_le32(bb_u8(bb_le32(&dc.good, 1), 1), 2);
  bb_le32(bb_u8(bb_le32(&dc.good, 3), 0), 0);
  damage_all(b, &dc, "registry row");
  damage_byte(b, &dc, 9, 2, "has_phash 2");
  /* has_key_index of the last entry */
  damage_byte(b, &dc, dc.good.len - 5, 2, "has_key_index 2");
  /* key_index set while has_key_index is 0 */
  damage_byte(b, &dc, dc.good.len - 1, 1, "key_index without has_key_index");
  v.len = 0;
  bb_var(bb_u8(bb_le64(bb_u8(&v, 1), 1), 0), KJ_MAX_DEVICES + 1);
  for (unsigned i = 0; i <= KJ_MAX_DEVICES; i++)
    bb_le32(bb_u8(bb_le32(&v, i), 0), 0);
  damage(b, &dc, v.b, v.len, KJ_ECORRUPT, "KJ_MAX_DEVICES+1 entries");
  v.len = 0;
  bb_var(bb_u8(bb_le64(bb_u8(&v, 1), 1), 0), 1000000);
  damage(b, &dc, v.b, v.len, KJ_ECORRUPT, "count far past the bytes");
  put_row(b, dc.table, &dc.key, dc.good.b, dc.good.len);

  /* Table 35. The consume must not remove anything when a row is bad. */
  dc = (damage_case){
      .what = "forget mark", .table = T_SK_FORGET, .fns = {rd_forget}};
  bb_raw(bb_lp(bb_dev(&dc.key, 1), "G", 1), "p", 1);
  bb_u8(&dc.good, 1);
  damage_all(b, &dc, "forget row");

  /* Table 36. */
  dc = (damage_case){.what = "token",
                     .table = T_TC_TOKEN,
                     .fns = {rd_token, rd_token_jids, rd_token_expire},
                     .truncations = 1};
  bb_raw(bb_dev(&dc.key, 1), "J", 1);
  bb_le64(bb_u8(bb_le64(bb_blob(bb_u8(&dc.good, 1), "tk", 2), 1), 1), 2);
  damage_all(b, &dc, "token row");
  /* has_sender_ts 0 with sender_ts 2 */
  damage_byte(b, &dc, dc.good.len - 9, 0, "sender_ts without has_sender_ts");
  damage_byte(b, &dc, dc.good.len - 9, 3, "has_sender_ts 3");
  v.len = 0;
  bb_le64(bb_u8(bb_le64(bb_blob(bb_u8(&v, 1), "", 0), 1), 0), 0);
  damage(b, &dc, v.b, v.len, KJ_ECORRUPT, "empty token");
  ok(strstr(kj_backend_errmsg(b), "36") != NULL,
     "damage: detail message names table 36 (%s)", kj_backend_errmsg(b));

  /* delete_expired with one bad row among good ones removes nothing. */
  kj_tc_token old = {BL("o"), -1, 0, 0};
  kj_tc_token_put(b, NULL, 1, S("A-old"), &old);
  char *before = dump(b);
  uint64_t n = 9;
  is(kj_tc_token_delete_expired(b, NULL, 1, 0, &n), KJ_ECORRUPT,
     "damage: delete_expired meets a bad row");
  is(n, 0, "damage: removed count 0 on failure");
  char *after = dump(b);
  ok(strcmp(before, after) == 0,
     "damage: delete_expired removed nothing (not even the valid expired)");
  free(before);
  free(after);
  put_row(b, dc.table, &dc.key, dc.good.b, dc.good.len);
  n = 9;
  is(kj_tc_token_delete_expired(b, NULL, 1, 0, &n), KJ_OK,
     "damage: delete_expired after repair");
  is(n, 1, "damage: the expired one is removed now");

  kj_backend_close(b);
}

/* Random bytes in every protocol table must never crash a read: each call
 * returns a status, and ASan/UBSan watch the decoders. */
static void test_fuzz_rows(void) {
  kj_backend *b = open_backend(NULL);
  tu_make_slot(b, 1);
  tu_rng rng;
  tu_rng_seed(&rng, 0x5eed);
  static const unsigned tables[] = {T_SKDM,     T_LID,         T_LID_BY_PHONE,
                                    T_BASE_KEY, T_DEVICE_LIST, T_SK_FORGET,
                                    T_TC_TOKEN};
  read_fn fns[] = {rd_lid,   rd_lid_all,    rd_lid_phone,   wr_lid,
                   rd_skdm,  rd_base,       rd_devlist,     rd_forget,
                   rd_token, rd_token_jids, rd_token_expire};
  int sane = 1;
  for (int round = 0; round < 400; round++) {
    bb k, v;
    unsigned table = tables[tu_rng_below(&rng, 7)];
    bb_dev(&k, 1);
    switch (table) {
    case T_LID:
      bb_raw(&k, "L", 1);
      break;
    case T_LID_BY_PHONE:
      bb_raw(bb_lp(&k, "P", 1), "L", 1);
      break;
    case T_BASE_KEY:
      bb_raw(bb_lp(&k, "A", 1), "M", 1);
      break;
    case T_DEVICE_LIST:
      bb_raw(&k, "U", 1);
      break;
    case T_TC_TOKEN:
      bb_raw(&k, "J", 1);
      break;
    default:
      bb_raw(bb_lp(&k, "G", 1), "p", 1);
      break;
    }
    v.len = tu_rng_below(&rng, 40);
    tu_rng_fill(&rng, v.b, v.len);
    if (v.len && tu_rng_below(&rng, 4))
      v.b[0] = 1; /* mostly past the version check */
    put_row(b, table, &k, v.b, v.len);
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
      int rc = fns[i](b);
      if (rc == 99 || (rc < 0 && rc != KJ_ECORRUPT && rc != KJ_EFORMAT))
        sane = 0;
    }
  }
  ok(sane, "damage: random rows give a status, never a crash");
  kj_backend_close(b);
}

int main(void) {
  tu_with_slots("skdm", 1, test_skdm);
  tu_with_slots("lid", 1, test_lid);
  tu_with_slots("base key", 1, test_base_keys);
  tu_with_slots("registry", 1, test_device_registry);
  tu_with_slots("forget", 1, test_forget);
  test_forget_race();
  tu_with_slots("token", 1, test_tokens);
  test_format();
  tu_with_slots("slots", 1, test_slots);
  test_einval();
  test_tx();
  test_persist();
  test_damage();
  test_fuzz_rows();
  return tap_done();
}
