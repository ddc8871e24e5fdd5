/*
 * tests/test_appsync.c - the app-state sync store (keyjournal/appsync.h)
 * on the native backend: sync keys and the latest key in set order,
 * collection versions (zero state, sorted maps, map limits), mutation MACs,
 * argument checks that change nothing, transactions, slot isolation,
 * persistence, the exact row layout of doc/FORMAT.md section 8, and
 * decoders that refuse damaged rows.
 *
 * Slots are made by writing their table-2 row directly (a slot exists while
 * that row does), so this program depends on no other store.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyjournal/appsync.h"
#include "tap.h"
#include "testutil.h"

#define B(s) ((const uint8_t *)(s))
/* A string literal as (bytes, length), embedded NULs included. */
#define L(s) s, sizeof(s) - 1

/* ---- helpers -------------------------------------------------------------
 */

/* dev, lp(name), index_mac */
static size_t mac_key(uint8_t *k, uint32_t dev, const char *name,
                      const char *imac) {
  size_t n = tu_slot_name_key(k, dev, name), il = strlen(imac);
  memcpy(k + n, imac, il);
  return n + il;
}

static int set_key(kj_backend *b, kj_tx *t, uint32_t dev, const char *id,
                   const char *data, const char *fp, int64_t ts) {
  kj_sync_key k = {{B(data), strlen(data)}, {B(fp), strlen(fp)}, ts};
  return kj_sync_key_set(b, t, dev, id, strlen(id), &k);
}

/* 1 if key id reads back as (data, fp, ts). */
static int key_is(kj_backend *b, kj_tx *t, uint32_t dev, const char *id,
                  const char *data, const char *fp, int64_t ts) {
  kj_sync_key *k = NULL;
  int rc = kj_sync_key_get(b, t, dev, id, strlen(id), &k);
  int res = rc == KJ_OK && k && k->key_data.len == strlen(data) &&
            !memcmp(k->key_data.p, data, k->key_data.len) &&
            k->fingerprint.len == strlen(fp) && k->fingerprint.p &&
            !memcmp(k->fingerprint.p, fp, k->fingerprint.len) &&
            k->timestamp == ts;
  if (!res)
    printf("#   sync key %s: rc %d\n", id, rc);
  kj_free(k);
  return res;
}

/* 1 if the latest key id is want (NULL: NOTFOUND). */
static int latest_is(kj_backend *b, kj_tx *t, uint32_t dev, const char *want) {
  void *id = (void *)1;
  size_t n = 1;
  int rc = kj_sync_key_latest(b, t, dev, &id, &n);
  int res = want ? rc == KJ_OK && n == strlen(want) && !memcmp(id, want, n)
                 : rc == KJ_NOTFOUND && id == NULL && n == 0;
  if (!res)
    printf("#   latest: rc %d len %zu want %s\n", rc, n, want ? want : "none");
  if (!rc)
    kj_free(id);
  return res;
}

/* "version:hash0:name=value,..." */
static char *version_str(const kj_sync_version *v) {
  tu_buf s;
  tu_buf_init(&s);
  tu_buf_addf(&s, "%llu:%u:", (unsigned long long)v->version, v->hash[0]);
  for (size_t i = 0; i < v->n; i++)
    tu_buf_addf(&s, "%s%.*s=%.*s", i ? "," : "", (int)v->entries[i].name.len,
                (const char *)v->entries[i].name.p,
                (int)v->entries[i].value.len,
                (const char *)v->entries[i].value.p);
  return tu_buf_take(&s);
}

static int version_is(kj_backend *b, kj_tx *t, uint32_t dev, const char *name,
                      const char *want) {
  kj_sync_version *v = NULL;
  int rc = kj_sync_version_get(b, t, dev, name, strlen(name), &v);
  char *s = rc ? NULL : version_str(v);
  int res = rc == KJ_OK && !strcmp(s, want);
  if (!res)
    printf("#   version %s: rc %d got \"%s\" want \"%s\"\n", name, rc,
           s ? s : "", want);
  free(s);
  kj_free(v);
  return res;
}

static int mac_is(kj_backend *b, kj_tx *t, uint32_t dev, const char *name,
                  const char *imac, const char *vmac, uint64_t version) {
  void *vm = NULL;
  size_t vl = 0;
  uint64_t ver = 0;
  int rc = kj_mutation_mac_get(b, t, dev, name, strlen(name), imac,
                               strlen(imac), &vm, &vl, &ver);
  int res = rc == KJ_OK && vl == strlen(vmac) && !memcmp(vm, vmac, vl) &&
            ver == version;
  if (!res)
    printf("#   mac %s/%s: rc %d len %zu version %llu\n", name, imac, rc, vl,
           (unsigned long long)ver);
  kj_free(vm);
  return res;
}

static int mac_absent(kj_backend *b, kj_tx *t, uint32_t dev, const char *name,
                      const char *imac) {
  void *vm = (void *)1;
  size_t vl = 1;
  int rc = kj_mutation_mac_get(b, t, dev, name, strlen(name), imac,
                               strlen(imac), &vm, &vl, NULL);
  return rc == KJ_NOTFOUND && vm == NULL && vl == 0;
}

/* Delete n index_macs of collection "regular" in slot 1, outside a tx. */
static int del_macs(kj_backend *b, const kj_blob *imacs, size_t n) {
  return kj_mutation_mac_delete(b, NULL, 1, "regular", 7, imacs, n);
}

/* ---- sync keys ------------------------------------------------------------
 */

static void test_sync_key(kj_backend *b) {
  ok(latest_is(b, NULL, 1, NULL), "sync key: latest is NOTFOUND when none");
  kj_sync_key *k = (kj_sync_key *)1;
  is(kj_sync_key_get(b, NULL, 1, "A", 1, &k), KJ_NOTFOUND,
     "sync key: get absent is NOTFOUND");
  ok(k == NULL, "sync key: ... with NULL out");

  is(set_key(b, NULL, 1, "A", "dataA", "fpA", 100), KJ_OK, "sync key: set A");
  ok(key_is(b, NULL, 1, "A", "dataA", "fpA", 100), "sync key: get A");
  ok(latest_is(b, NULL, 1, "A"), "sync key: latest is A");
  is(set_key(b, NULL, 1, "B", "dataB", "", -5), KJ_OK,
     "sync key: set B with an older timestamp and no fingerprint");
  ok(key_is(b, NULL, 1, "B", "dataB", "", -5),
     "sync key: empty fingerprint reads back (non-NULL, length 0)");
  ok(latest_is(b, NULL, 1, "B"),
     "sync key: latest follows set order, not the largest timestamp");
  is(set_key(b, NULL, 1, "A", "dataA2", "f", 1), KJ_OK,
     "sync key: set A again");
  ok(key_is(b, NULL, 1, "A", "dataA2", "f", 1),
     "sync key: a set replaces (upsert)");
  ok(latest_is(b, NULL, 1, "A"), "sync key: re-setting A makes it latest");

  /* Exact rows (FORMAT.md 8, tables 20 and 21). */
  uint8_t kk[64];
  size_t kl = tu_slot_key(kk, 1, "A", 1);
  ok(tu_raw_eq(b, T_SYNC_KEY, kk, kl,
               L("\x01\x06"
                 "dataA2"
                 "\x01"
                 "f"
                 "\x01\x00\x00\x00\x00\x00\x00\x00")),
     "sync key: row layout (blob, blob, i64 LE)");
  ok(tu_raw_eq(b, T_SYNC_LATEST, L("\0\0\0\x01"),
               L("\x01"
                 "A")),
     "sync key: latest row layout (dev -> 01, key_id)");

  /* Large key data and fingerprint. */
  uint8_t *big = malloc(KJ_MAX_RECORD + 1);
  memset(big, 'd', KJ_MAX_RECORD + 1);
  kj_sync_key sk = {{big, KJ_MAX_RECORD}, {big, KJ_MAX_RECORD}, 9};
  is(kj_sync_key_set(b, NULL, 1, "big", 3, &sk), KJ_OK,
     "sync key: key_data and fingerprint of KJ_MAX_RECORD bytes");
  k = NULL;
  is(kj_sync_key_get(b, NULL, 1, "big", 3, &k), KJ_OK, "sync key: ... gets");
  ok(k && k->key_data.len == KJ_MAX_RECORD &&
         k->fingerprint.len == KJ_MAX_RECORD &&
         !memcmp(k->key_data.p, big, KJ_MAX_RECORD) &&
         !memcmp(k->fingerprint.p, big, KJ_MAX_RECORD),
     "sync key: ... every byte");
  kj_free(k);
  ok(latest_is(b, NULL, 1, "big"), "sync key: latest is big");

  const struct {
    kj_sync_key k;
    const char *what;
  } bad_keys[] = {
      {{{big, KJ_MAX_RECORD + 1}, {NULL, 0}, 0}, "key_data of KJ_MAX_RECORD+1"},
      {{{big, 1}, {big, KJ_MAX_RECORD + 1}, 0},
       "fingerprint of KJ_MAX_RECORD+1"},
      {{{big, 0}, {NULL, 0}, 0}, "empty key_data"},
      {{{NULL, 3}, {NULL, 0}, 0}, "NULL key_data"},
      {{{big, 1}, {NULL, 2}, 0}, "NULL fingerprint of length 2"},
  };
  for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++)
    FAILS_CLEAN(b, KJ_EINVAL,
                kj_sync_key_set(b, NULL, 1, "A", 1, &bad_keys[i].k),
                "sync key: %s is EINVAL", bad_keys[i].what);
  sk = (kj_sync_key){{big, 1}, {NULL, 0}, 0};
  FAILS_CLEAN(b, KJ_EINVAL, kj_sync_key_set(b, NULL, 1, "A", 0, &sk),
              "sync key: empty key_id is EINVAL");
  FAILS_CLEAN(b, KJ_EINVAL,
              kj_sync_key_set(b, NULL, 1, big, KJ_MAX_ID + 1, &sk),
              "sync key: key_id of KJ_MAX_ID+1 is EINVAL");
  FAILS_CLEAN(b, KJ_EINVAL, kj_sync_key_set(b, NULL, 1, "A", 1, NULL),
              "sync key: NULL key is EINVAL");
  ok(kj_backend_errmsg(b)[0] != '\0', "sync key: EINVAL leaves a detail");
  is(kj_sync_key_set(b, NULL, 1, big, KJ_MAX_ID, &sk), KJ_OK,
     "sync key: key_id of KJ_MAX_ID bytes");
  free(big);
  is(kj_sync_key_get(b, NULL, 1, "A", 1, NULL), KJ_EINVAL,
     "sync key: get into NULL is EINVAL");
  size_t n;
  is(kj_sync_key_latest(b, NULL, 1, NULL, &n), KJ_EINVAL,
     "sync key: latest into NULL is EINVAL");
}

/* ---- collection versions --------------------------------------------------
 */

static void test_version(kj_backend *b) {
  kj_sync_version *v = NULL;
  is(kj_sync_version_get(b, NULL, 1, "regular", 7, &v), KJ_OK,
     "version: get of an unknown name is OK");
  int zero = v && v->version == 0 && v->n == 0;
  for (size_t i = 0; v && i < KJ_SYNC_HASH_BYTES; i++)
    zero = zero && v->hash[i] == 0;
  ok(zero, "version: ... the zero state (version 0, zero hash, empty map)");
  kj_free(v);

  kj_sync_entry e[] = {
      {{B("b"), 1}, {B("vb"), 2}},
      {{B("ab"), 2}, {B(""), 0}},
      {{B("a"), 1}, {B("va"), 2}},
      {{B("a\xff"), 2}, {NULL, 0}},
  };
  kj_sync_version sv = {.version = 42, .n = 4, .entries = e};
  memset(sv.hash, 0xab, sizeof sv.hash);
  is(kj_sync_version_set(b, NULL, 1, "regular", 7, &sv), KJ_OK,
     "version: set (entries unsorted)");
  ok(version_is(b, NULL, 1, "regular", "42:171:a=va,ab=,a\xff=,b=vb"),
     "version: get returns the map ascending by name bytes");
  ok(e[0].name.p[0] == 'b' && e[2].name.p[0] == 'a',
     "version: the caller's entries are left in their order");
  v = NULL;
  kj_sync_version_get(b, NULL, 1, "regular", 7, &v);
  int hash = v != NULL;
  for (size_t i = 0; v && i < KJ_SYNC_HASH_BYTES; i++)
    hash = hash && v->hash[i] == 0xab;
  ok(hash, "version: every hash byte reads back");
  ok(v && v->n == 4 && v->entries[1].value.len == 0 &&
         v->entries[1].value.p != NULL,
     "version: an empty value reads back (non-NULL, length 0)");
  kj_free(v);

  /* Exact row (FORMAT.md 8, table 22). */
  uint8_t want[1 + 8 + 128 + 1 + 32], *w = want;
  *w++ = 1;
  memcpy(w, "\x2a\0\0\0\0\0\0\0", 8);
  w += 8;
  memset(w, 0xab, 128);
  w += 128;
  *w++ = 4;
  static const char map[] = "\x01"
                            "a\x02"
                            "va\x02"
                            "ab\x00\x02"
                            "a\xff\x00\x01"
                            "b\x02"
                            "vb";
  memcpy(w, map, sizeof map - 1);
  w += sizeof map - 1;
  uint8_t kk[64];
  size_t kl = tu_slot_key(kk, 1, "regular", 7);
  ok(tu_raw_eq(b, T_SYNC_VERSION, kk, kl, want, (size_t)(w - want)),
     "version: row layout");

  kj_sync_version sv2 = {.version = 43, .n = 0, .entries = NULL};
  is(kj_sync_version_set(b, NULL, 1, "regular", 7, &sv2), KJ_OK,
     "version: set again with an empty map");
  ok(version_is(b, NULL, 1, "regular", "43:0:"),
     "version: a set replaces the whole state");
  ok(version_is(b, NULL, 1, "other", "0:0:"),
     "version: another name is still the zero state");

  /* Bad maps change nothing. */
  is(kj_sync_version_set(b, NULL, 1, "regular", 7, &sv), KJ_OK,
     "version: restore the 4-entry map");
  kj_sync_entry dup[] = {
      {{B("x"), 1}, {B("1"), 1}},
      {{B("y"), 1}, {B("2"), 1}},
      {{B("x"), 1}, {B("3"), 1}},
  };
  kj_sync_version bad = {.version = 1, .n = 3, .entries = dup};
  FAILS_CLEAN(b, KJ_EINVAL, kj_sync_version_set(b, NULL, 1, "regular", 7, &bad),
              "version: a name given twice is EINVAL");
  dup[2].name = (kj_blob){B("x"), 0};
  FAILS_CLEAN(b, KJ_EINVAL, kj_sync_version_set(b, NULL, 1, "regular", 7, &bad),
              "version: an empty entry name is EINVAL");
  uint8_t *huge = calloc(1, KJ_MAX_ID + 1);
  dup[2].name = (kj_blob){huge, KJ_MAX_ID + 1};
  FAILS_CLEAN(b, KJ_EINVAL, kj_sync_version_set(b, NULL, 1, "regular", 7, &bad),
              "version: an entry name of KJ_MAX_ID+1 is EINVAL");
  dup[2].name = (kj_blob){B("z"), 1};
  dup[2].value = (kj_blob){huge, KJ_MAX_ID + 1};
  FAILS_CLEAN(b, KJ_EINVAL, kj_sync_version_set(b, NULL, 1, "regular", 7, &bad),
              "version: an entry value of KJ_MAX_ID+1 is EINVAL");
  dup[2].value = (kj_blob){NULL, 1};
  FAILS_CLEAN(b, KJ_EINVAL, kj_sync_version_set(b, NULL, 1, "regular", 7, &bad),
              "version: a NULL value of length 1 is EINVAL");
  bad.entries = NULL;
  FAILS_CLEAN(b, KJ_EINVAL, kj_sync_version_set(b, NULL, 1, "regular", 7, &bad),
              "version: NULL entries with n 3 is EINVAL");
  FAILS_CLEAN(b, KJ_EINVAL, kj_sync_version_set(b, NULL, 1, "regular", 7, NULL),
              "version: NULL state is EINVAL");
  FAILS_CLEAN(b, KJ_EINVAL, kj_sync_version_set(b, NULL, 1, "", 0, &sv),
              "version: empty name is EINVAL");
  is(kj_sync_version_get(b, NULL, 1, "regular", 7, NULL), KJ_EINVAL,
     "version: get into NULL is EINVAL");

  /* Map size: sum of (name + value + 8) up to exactly KJ_MAX_RECORD. 1012
   * entries of a 4-byte name and KJ_MAX_ID-byte value cost 1036 each; one
   * more of 4 + 132 + 8 fills the limit exactly. */
  size_t nbig = 1013;
  kj_sync_entry *be = calloc(nbig, sizeof *be);
  uint8_t *names = malloc(nbig * 4);
  memset(huge, 'v', KJ_MAX_ID);
  for (size_t i = 0; i < nbig; i++) {
    tu_be32(names + 4 * i, (uint32_t)(nbig - i)); /* descending on purpose */
    be[i].name = (kj_blob){names + 4 * i, 4};
    be[i].value = (kj_blob){huge, i + 1 < nbig ? KJ_MAX_ID : 132};
  }
  kj_sync_version bigv = {.version = 7, .n = nbig, .entries = be};
  is(kj_sync_version_set(b, NULL, 1, "big", 3, &bigv), KJ_OK,
     "version: a map of exactly KJ_MAX_RECORD counted bytes is OK");
  v = NULL;
  is(kj_sync_version_get(b, NULL, 1, "big", 3, &v), KJ_OK, "version: ... gets");
  int sorted = v && v->n == nbig;
  for (size_t i = 1; sorted && i < v->n; i++)
    sorted = memcmp(v->entries[i - 1].name.p, v->entries[i].name.p, 4) < 0;
  ok(sorted, "version: ... all entries, ascending");
  ok(v && v->entries[0].value.len == 132 &&
         v->entries[1].value.len == KJ_MAX_ID,
     "version: ... values with their entries");
  kj_free(v);
  be[nbig - 1].value.len = 133;
  FAILS_CLEAN(b, KJ_EINVAL, kj_sync_version_set(b, NULL, 1, "big", 3, &bigv),
              "version: a map one byte over KJ_MAX_RECORD is EINVAL");
  free(be);
  free(names);
  free(huge);
}

/* ---- mutation MACs --------------------------------------------------------
 */

static void test_mac(kj_backend *b) {
  ok(mac_absent(b, NULL, 1, "regular", "i1"), "mac: get absent is NOTFOUND");
  kj_mutation_mac m[] = {
      {{B("i1"), 2}, {B("v1"), 2}},
      {{B("i2"), 2}, {B("v2"), 2}},
      {{B("i1"), 2}, {B("v1-last"), 7}},
  };
  is(kj_mutation_mac_put(b, NULL, 1, "regular", 7, 5, m, 3), KJ_OK,
     "mac: put a batch");
  ok(mac_is(b, NULL, 1, "regular", "i1", "v1-last", 5),
     "mac: a duplicate index_mac in the batch: the last one wins");
  ok(mac_is(b, NULL, 1, "regular", "i2", "v2", 5), "mac: get with version");
  void *vm = NULL;
  size_t vl = 0;
  is(kj_mutation_mac_get(b, NULL, 1, "regular", 7, "i2", 2, &vm, &vl, NULL),
     KJ_OK, "mac: get without version");
  ok(vl == 2 && !memcmp(vm, "v2", 2), "mac: ... value_mac");
  kj_free(vm);

  kj_mutation_mac m2 = {{B("i2"), 2}, {B("v2b"), 3}};
  is(kj_mutation_mac_put(b, NULL, 1, "regular", 7, 9, &m2, 1), KJ_OK,
     "mac: put an existing index_mac");
  ok(mac_is(b, NULL, 1, "regular", "i2", "v2b", 9),
     "mac: a put replaces value_mac and version");
  ok(mac_is(b, NULL, 1, "regular", "i1", "v1-last", 5),
     "mac: other MACs keep their version");

  /* Keyed by (name, index_mac): lp(name) keeps ("ab","c") from ("a","bc"). */
  kj_mutation_mac mc = {{B("c"), 1}, {B("abc"), 3}};
  kj_mutation_mac_put(b, NULL, 1, "ab", 2, 1, &mc, 1);
  ok(mac_absent(b, NULL, 1, "a", "bc"), "mac: (ab, c) is not (a, bc)");
  ok(mac_absent(b, NULL, 1, "other", "i1"), "mac: names are separate");
  uint8_t kk[64];
  size_t kl = mac_key(kk, 1, "ab", "c");
  ok(tu_raw_eq(b, T_MAC, kk, kl, L("\x01\x01\0\0\0\0\0\0\0abc")),
     "mac: row layout (dev, lp(name), index_mac -> 01, u64 LE, value_mac)");

  FAILS_CLEAN(b, KJ_OK,
              kj_mutation_mac_put(b, NULL, 1, "regular", 7, 1, NULL, 0),
              "mac: put of nothing is OK");
  kj_blob del[] = {{B("i1"), 2}, {B("absent"), 6}, {B("i1"), 2}};
  is(del_macs(b, del, 3), KJ_OK,
     "mac: delete, with absent and repeated index_macs");
  ok(mac_absent(b, NULL, 1, "regular", "i1"), "mac: deleted is NOTFOUND");
  ok(mac_is(b, NULL, 1, "regular", "i2", "v2b", 9), "mac: others stay");
  FAILS_CLEAN(b, KJ_OK, del_macs(b, del, 2),
              "mac: delete of absent MACs is OK");
  FAILS_CLEAN(b, KJ_OK, del_macs(b, NULL, 0), "mac: delete of nothing is OK");

  /* Bad arguments: a bad item anywhere stores nothing. */
  uint8_t *huge = calloc(1, KJ_MAX_ID + 1);
  kj_mutation_mac bm[3] = {
      {{B("n1"), 2}, {B("x"), 1}},
      {{B("i2"), 2}, {B("changed"), 7}},
  };
  /* The bad third item: (index_mac, value_mac). */
  const struct {
    kj_mutation_mac m;
    const char *what;
  } bad_macs[] = {
      {{{B("n3"), 2}, {B("x"), 0}}, "an empty value_mac"},
      {{{B("n3"), 2}, {huge, KJ_MAX_ID + 1}}, "a value_mac of KJ_MAX_ID+1"},
      {{{B("x"), 0}, {B("x"), 1}}, "an empty index_mac"},
      {{{huge, KJ_MAX_ID + 1}, {B("x"), 1}}, "an index_mac of KJ_MAX_ID+1"},
      {{{NULL, 2}, {B("x"), 1}}, "a NULL index_mac"},
  };
  for (size_t i = 0; i < sizeof bad_macs / sizeof bad_macs[0]; i++) {
    bm[2] = bad_macs[i].m;
    FAILS_CLEAN(b, KJ_EINVAL,
                kj_mutation_mac_put(b, NULL, 1, "regular", 7, 1, bm, 3),
                "mac: %s is EINVAL", bad_macs[i].what);
  }
  FAILS_CLEAN(b, KJ_EINVAL,
              kj_mutation_mac_put(b, NULL, 1, "regular", 7, 1, NULL, 1),
              "mac: NULL macs with n 1 is EINVAL");
  FAILS_CLEAN(b, KJ_EINVAL, kj_mutation_mac_put(b, NULL, 1, "", 0, 1, bm, 2),
              "mac: an empty name is EINVAL");
  FAILS_CLEAN(b, KJ_EINVAL,
              kj_mutation_mac_put(b, NULL, 1, huge, KJ_MAX_ID + 1, 1, bm, 2),
              "mac: a name of KJ_MAX_ID+1 is EINVAL");
  kj_blob bd[] = {{B("i2"), 2}, {B("x"), 0}};
  FAILS_CLEAN(b, KJ_EINVAL, del_macs(b, bd, 2),
              "mac: delete with an empty index_mac is EINVAL");
  FAILS_CLEAN(b, KJ_EINVAL, del_macs(b, NULL, 2),
              "mac: delete with NULL list and n 2 is EINVAL");
  vm = (void *)1;
  is(kj_mutation_mac_get(b, NULL, 1, "regular", 7, "i2", 2, &vm, NULL, NULL),
     KJ_EINVAL, "mac: get with NULL vlen is EINVAL");
  ok(vm == NULL, "mac: ... and *value_mac is NULL");
  is(kj_mutation_mac_get(b, NULL, 1, "regular", 7, "", 0, &vm, &vl, NULL),
     KJ_EINVAL, "mac: get with empty index_mac is EINVAL");
  free(huge);
}

/* ---- slots ----------------------------------------------------------------
 */

static void fill(kj_backend *b, uint32_t dev, const char *tag) {
  set_key(b, NULL, dev, "kid", tag, tag, 1);
  kj_sync_entry e = {{B("idx"), 3}, {B(tag), strlen(tag)}};
  kj_sync_version v = {.version = 3, .n = 1, .entries = &e};
  kj_sync_version_set(b, NULL, dev, "regular", 7, &v);
  kj_mutation_mac m = {{B("im"), 2}, {B(tag), strlen(tag)}};
  kj_mutation_mac_put(b, NULL, dev, "regular", 7, 3, &m, 1);
}

static int slot_reads(kj_backend *b, uint32_t dev, const char *tag) {
  char v[64];
  snprintf(v, sizeof v, "3:0:idx=%s", tag);
  return key_is(b, NULL, dev, "kid", tag, tag, 1) &&
         latest_is(b, NULL, dev, "kid") &&
         version_is(b, NULL, dev, "regular", v) &&
         mac_is(b, NULL, dev, "regular", "im", tag, 3);
}

static void test_slots(kj_backend *b) {
  fill(b, 1, "one");
  fill(b, 2, "two");
  ok(slot_reads(b, 1, "one"), "slots: slot 1 sees its own rows");
  ok(slot_reads(b, 2, "two"), "slots: slot 2 sees its own rows");
  set_key(b, NULL, 2, "later", "d", "", 2);
  ok(latest_is(b, NULL, 1, "kid"), "slots: latest is per slot");
  kj_blob im = {B("im"), 2};
  kj_mutation_mac_delete(b, NULL, 2, "regular", 7, &im, 1);
  ok(slot_reads(b, 1, "one"), "slots: deletes in slot 2 leave slot 1");

  kj_sync_key sk = {{B("d"), 1}, {NULL, 0}, 0};
  kj_sync_version sv = {.version = 1};
  kj_mutation_mac m = {{B("i"), 1}, {B("v"), 1}};
  for (uint32_t dev = 0; dev <= 3; dev += 3) {
    FAILS_CLEAN(b, KJ_NOTFOUND, kj_sync_key_set(b, NULL, dev, "k", 1, &sk),
                "slots: sync_key_set to missing slot %u", dev);
    FAILS_CLEAN(b, KJ_NOTFOUND, kj_sync_version_set(b, NULL, dev, "n", 1, &sv),
                "slots: sync_version_set to missing slot %u", dev);
    FAILS_CLEAN(b, KJ_NOTFOUND,
                kj_mutation_mac_put(b, NULL, dev, "n", 1, 1, &m, 1),
                "slots: mutation_mac_put to missing slot %u", dev);
    FAILS_CLEAN(b, KJ_NOTFOUND,
                kj_mutation_mac_delete(b, NULL, dev, "n", 1, &im, 1),
                "slots: mutation_mac_delete in missing slot %u", dev);
    ok(latest_is(b, NULL, dev, NULL),
       "slots: latest in missing slot %u is NOTFOUND", dev);
    ok(version_is(b, NULL, dev, "regular", "0:0:"),
       "slots: version in missing slot %u is the zero state", dev);
    ok(mac_absent(b, NULL, dev, "regular", "im"),
       "slots: mac in missing slot %u is NOTFOUND", dev);
  }
}

/* ---- transactions ---------------------------------------------------------
 */

static int tx_writes(kj_backend *b, kj_tx *t) {
  kj_sync_entry e = {{B("e"), 1}, {B("tx"), 2}};
  kj_sync_version v = {.version = 99, .n = 1, .entries = &e};
  kj_mutation_mac m = {{B("tm"), 2}, {B("tv"), 2}};
  kj_blob bm = {B("bm"), 2};
  int rc = set_key(b, t, 1, "T1", "t1", "", 50);
  if (!rc)
    rc = set_key(b, t, 1, "T0", "t0", "", 10);
  if (!rc)
    rc = kj_sync_version_set(b, t, 1, "regular", 7, &v);
  if (!rc)
    rc = kj_mutation_mac_put(b, t, 1, "regular", 7, 99, &m, 1);
  if (!rc)
    rc = kj_mutation_mac_delete(b, t, 1, "regular", 7, &bm, 1);
  return rc;
}

static int tx_visible(kj_backend *b, kj_tx *t) {
  return key_is(b, t, 1, "T1", "t1", "", 50) &&
         key_is(b, t, 1, "T0", "t0", "", 10) && latest_is(b, t, 1, "T0") &&
         version_is(b, t, 1, "regular", "99:0:e=tx") &&
         mac_is(b, t, 1, "regular", "tm", "tv", 99) &&
         mac_absent(b, t, 1, "regular", "bm");
}

static void base_rows(kj_backend *b) {
  set_key(b, NULL, 1, "base", "kd", "fp", 1);
  kj_sync_version v = {.version = 1};
  kj_sync_version_set(b, NULL, 1, "regular", 7, &v);
  kj_mutation_mac m = {{B("bm"), 2}, {B("bv"), 2}};
  kj_mutation_mac_put(b, NULL, 1, "regular", 7, 1, &m, 1);
}

static const tu_tx_script tx_script = {base_rows, tx_writes, tx_visible};

static void test_tx(kj_backend *b) {
  base_rows(b);
  char *before = tu_dump_backend(b);
  kj_tx *t = tu_tx_begin_writes(b, &tx_script);
  ok(latest_is(b, NULL, 1, "base"), "tx: outside, latest is still base");
  tu_tx_rollback_clean(b, t, before);
  ok(latest_is(b, NULL, 1, "base"), "tx: rollback restores the latest key");

  t = NULL;
  is(kj_backend_begin(b, &t), KJ_OK, "tx: begin again");
  is(tx_writes(b, t), KJ_OK, "tx: writes again");
  kj_mutation_mac bad[] = {{{B("n1"), 2}, {B("v"), 1}},
                           {{B("n2"), 2}, {NULL, 0}}};
  is(kj_mutation_mac_put(b, t, 1, "regular", 7, 1, bad, 2), KJ_EINVAL,
     "tx: a bad batch inside the tx is EINVAL");
  ok(mac_absent(b, t, 1, "regular", "n1"), "tx: ... stores nothing in the tx");
  is(kj_backend_commit(t), KJ_OK, "tx: commit");
  ok(tx_visible(b, NULL), "tx: commit makes every write visible");
  free(before);
}

/* A MAC batch the engine refuses part-way (over KJ_MAX_TXN_BYTES) stores
 * nothing, alone or inside the caller's transaction. */
static int put_macs(kj_backend *b, kj_tx *t, const void *m, size_t n) {
  return kj_mutation_mac_put(b, t, 1, "regular", 7, 1, m, n);
}

static int set_key_k(kj_backend *b, kj_tx *t) {
  return set_key(b, t, 1, "k", "d", "", 1);
}

static void test_batch_too_big(kj_backend *b) {
  size_t n = 40000; /* about 80 MiB of rows */
  uint8_t *pool = malloc(n + KJ_MAX_ID);
  tu_rng r;
  tu_rng_seed(&r, 5);
  tu_rng_fill(&r, pool, n + KJ_MAX_ID);
  kj_mutation_mac *m = calloc(n, sizeof *m);
  for (size_t i = 0; i < n; i++)
    m[i] = (kj_mutation_mac){{pool + i, KJ_MAX_ID}, {pool + i, KJ_MAX_ID}};
  char *before = NULL;
  kj_tx *t = tu_big_batch_fails(b, &(tu_big_batch){put_macs, m, n, set_key_k},
                                &before);
  void *vm = NULL;
  size_t vl = 0;
  is(kj_mutation_mac_get(b, t, 1, "regular", 7, pool, KJ_MAX_ID, &vm, &vl,
                         NULL),
     KJ_NOTFOUND, "big batch: ... its first item is not in the tx");
  ok(key_is(b, t, 1, "k", "d", "", 1), "big batch: ... earlier writes stay");
  is(kj_backend_commit(t), KJ_OK, "big batch: the tx still commits");
  char *after = tu_dump_backend(b);
  ok(!tu_same_dump(before, after) && latest_is(b, NULL, 1, "k"),
     "big batch: only the tx's other write was committed");
  free(after);
  free(before);
  free(m);
  free(pool);
}

/* ---- damaged rows ---------------------------------------------------------
 */

/* A damaged row value (v, n) and the status a read of it must give. */
typedef struct bad_row {
  const char *v;
  size_t n;
  int want;
  const char *what;
} bad_row;

static int key_rc(kj_backend *b, const char *id) {
  kj_sync_key *k = (kj_sync_key *)1;
  int rc = kj_sync_key_get(b, NULL, 1, id, strlen(id), &k);
  return tu_out_rc(rc, k, 0);
}

static int version_rc(kj_backend *b, const char *name) {
  kj_sync_version *v = (kj_sync_version *)1;
  int rc = kj_sync_version_get(b, NULL, 1, name, strlen(name), &v);
  return tu_out_rc(rc, v, 0);
}

static int latest_rc(kj_backend *b) {
  void *id = (void *)1;
  size_t n = 1;
  int rc = kj_sync_key_latest(b, NULL, 1, &id, &n);
  return tu_out_rc(rc, id, n);
}

static int mac_rc(kj_backend *b, const char *name, const char *imac) {
  void *vm = (void *)1;
  size_t vl = 1;
  uint64_t ver = 0;
  int rc = kj_mutation_mac_get(b, NULL, 1, name, strlen(name), imac,
                               strlen(imac), &vm, &vl, &ver);
  return tu_out_rc(rc, vm, vl);
}

/* A version row: header (version, hash), then body bytes as given. */
static int put_version_row(kj_backend *b, const char *name, uint8_t vbyte,
                           const void *body, size_t blen) {
  uint8_t v[256];
  v[0] = vbyte;
  memset(v + 1, 0, 8 + 128);
  memcpy(v + 137, body, blen);
  uint8_t k[64];
  size_t kl = tu_slot_key(k, 1, name, strlen(name));
  return tu_raw_put(b, T_SYNC_VERSION, k, kl, v, 137 + blen);
}

/* Put random value v under a key of table T_SYNC_KEY + pick and read it
 * back: 1 if the status is a decoder's. */
static int damaged_read(kj_backend *b, tu_rng *rng, unsigned pick, uint8_t *v,
                        size_t vl) {
  unsigned table = T_SYNC_KEY + pick;
  uint8_t k[64];
  size_t kl = table == T_MAC           ? mac_key(k, 1, "z", "z")
              : table == T_SYNC_LATEST ? tu_slot_key(k, 1, "", 0)
                                       : tu_slot_key(k, 1, "z", 1);
  /* Mostly a valid version header, so the map decoder gets exercised. */
  if (table == T_SYNC_VERSION && vl > 137 && tu_rng_below(rng, 4)) {
    v[0] = 1;
    v[137] = (uint8_t)tu_rng_below(rng, 5);
  }
  tu_raw_put(b, table, k, kl, v, vl);
  switch (table) {
  case T_SYNC_KEY:
    return tu_damage_rc_ok(key_rc(b, "z"));
  case T_SYNC_LATEST:
    return tu_damage_rc_ok(latest_rc(b));
  case T_SYNC_VERSION:
    return tu_damage_rc_ok(version_rc(b, "z"));
  default:
    return tu_damage_rc_ok(mac_rc(b, "z", "z"));
  }
}

static void test_corrupt(kj_backend *b) {
  uint8_t k[64];
  size_t kl = tu_slot_key(k, 1, "K", 1);

  /* sync keys (table 20). */
  static const bad_row sk[] = {
      {L("\x01\x01"
         "d\x00\0\0\0\0\0\0\0\0"),
       KJ_OK, "a well-formed row"},
      {L("\x02\x01"
         "d\x00\0\0\0\0\0\0\0\0"),
       KJ_EFORMAT, "version 2 is EFORMAT"},
      {L("\x01\x00\x00\0\0\0\0\0\0\0\0"), KJ_ECORRUPT, "empty key_data"},
      {L("\x01\x01"
         "d\x00\0\0\0\0\0\0\0"),
       KJ_ECORRUPT, "truncated timestamp"},
      {L("\x01\x01"
         "d\x00\0\0\0\0\0\0\0\0\0"),
       KJ_ECORRUPT, "a trailing byte"},
      {L("\x01\x05"
         "d"),
       KJ_ECORRUPT, "a blob longer than the row"},
      {L("\x01\xff\xff\xff\xff\x0f"), KJ_ECORRUPT, "a huge blob length"},
      {L("\x01\x81\x00"), KJ_ECORRUPT, "an overlong varint"},
      {L(""), KJ_ECORRUPT, "an empty value"},
  };
  for (size_t i = 0; i < sizeof sk / sizeof sk[0]; i++) {
    tu_raw_put(b, T_SYNC_KEY, k, kl, sk[i].v, sk[i].n);
    is(key_rc(b, "K"), sk[i].want, "corrupt: sync key: %s", sk[i].what);
  }

  /* latest (table 21). */
  tu_raw_put(b, T_SYNC_LATEST, "\0\0\0\x01", 4, "\x01", 1);
  is(latest_rc(b), KJ_ECORRUPT, "corrupt: latest with an empty key_id");
  tu_raw_put(b, T_SYNC_LATEST, "\0\0\0\x01", 4, "\x02K", 2);
  is(latest_rc(b), KJ_EFORMAT, "corrupt: latest version 2 is EFORMAT");
  tu_raw_put(b, T_SYNC_LATEST, "\0\0\0\x01", 4, NULL, 0);
  is(latest_rc(b), KJ_ECORRUPT, "corrupt: latest empty value");
  uint8_t *big = calloc(1, KJ_MAX_ID + 2);
  big[0] = 1;
  tu_raw_put(b, T_SYNC_LATEST, "\0\0\0\x01", 4, big, KJ_MAX_ID + 2);
  is(latest_rc(b), KJ_ECORRUPT, "corrupt: latest key_id over KJ_MAX_ID");
  tu_raw_put(b, T_SYNC_LATEST, "\0\0\0\x01", 4, big, KJ_MAX_ID + 1);
  is(latest_rc(b), KJ_OK, "corrupt: latest key_id of KJ_MAX_ID is fine");

  /* versions (table 22). */
  static const bad_row vr[] = {
      {L("\x00"), KJ_OK, "an empty map"},
      {L("\x02\x01"
         "a\x00\x01"
         "b\x01"
         "x"),
       KJ_OK, "a sorted map"},
      {L("\x02\x01"
         "b\x00\x01"
         "a\x00"),
       KJ_ECORRUPT, "names out of order"},
      {L("\x02\x01"
         "a\x00\x01"
         "a\x00"),
       KJ_ECORRUPT, "a name twice"},
      {L("\x02\x02"
         "ab\x00\x01"
         "a\x00"),
       KJ_ECORRUPT, "a longer name before its prefix"},
      {L("\x01\x00\x00"), KJ_ECORRUPT, "an empty name"},
      {L("\x01\x01"
         "a\x00\x00"),
       KJ_ECORRUPT, "a trailing byte"},
      {L("\x03\x01"
         "a\x00"),
       KJ_ECORRUPT, "more entries than bytes"},
      {L("\xff\xff\xff\xff\x0f"), KJ_ECORRUPT, "a huge entry count"},
      {L("\x01\x01"
         "a\x05"
         "x"),
       KJ_ECORRUPT, "a value longer than the row"},
      {L(""), KJ_ECORRUPT, "no entry count"},
  };
  for (size_t i = 0; i < sizeof vr / sizeof vr[0]; i++) {
    put_version_row(b, "V", 1, vr[i].v, vr[i].n);
    is(version_rc(b, "V"), vr[i].want, "corrupt: version: %s", vr[i].what);
  }
  put_version_row(b, "V", 2, "\x00", 1);
  is(version_rc(b, "V"), KJ_EFORMAT, "corrupt: version 2 is EFORMAT");
  kl = tu_slot_key(k, 1, "V", 1);
  tu_raw_put(b, T_SYNC_VERSION, k, kl, "\x01\0\0\0\0\0\0\0\0\0", 10);
  is(version_rc(b, "V"), KJ_ECORRUPT, "corrupt: version truncated hash");
  /* One entry whose name is KJ_MAX_ID bytes (fine), then one more. */
  for (size_t len = KJ_MAX_ID; len <= KJ_MAX_ID + 1; len++) {
    uint8_t *row = calloc(1, 137 + 4 + len);
    row[0] = 1;
    uint8_t *e = row + 137;
    e[0] = 1;
    e[1] = (uint8_t)((len & 0x7f) | 0x80); /* varint of a 2-byte length */
    e[2] = (uint8_t)(len >> 7);
    memset(e + 3, 'n', len);
    tu_raw_put(b, T_SYNC_VERSION, k, kl, row, 137 + 4 + len);
    is(version_rc(b, "V"), len > KJ_MAX_ID ? KJ_ECORRUPT : KJ_OK,
       "corrupt: version entry name of %zu bytes", len);
    free(row);
  }

  /* MACs (table 23). */
  kl = mac_key(k, 1, "n", "i");
  tu_raw_put(b, T_MAC, k, kl, "\x01\0\0\0\0\0\0\0\0", 9);
  is(mac_rc(b, "n", "i"), KJ_ECORRUPT, "corrupt: mac without value_mac");
  tu_raw_put(b, T_MAC, k, kl, "\x01\0\0\0", 4);
  is(mac_rc(b, "n", "i"), KJ_ECORRUPT, "corrupt: mac truncated version");
  tu_raw_put(b, T_MAC, k, kl, "\x02\0\0\0\0\0\0\0\0v", 10);
  is(mac_rc(b, "n", "i"), KJ_EFORMAT, "corrupt: mac version 2 is EFORMAT");
  uint8_t *mb = calloc(1, 9 + KJ_MAX_ID + 1);
  mb[0] = 1;
  tu_raw_put(b, T_MAC, k, kl, mb, 9 + KJ_MAX_ID + 1);
  is(mac_rc(b, "n", "i"), KJ_ECORRUPT, "corrupt: mac value over KJ_MAX_ID");
  tu_raw_put(b, T_MAC, k, kl, mb, 9 + KJ_MAX_ID);
  is(mac_rc(b, "n", "i"), KJ_OK, "corrupt: mac value of KJ_MAX_ID is fine");
  free(mb);
  free(big);

  /* Random garbage: never a crash, only OK, ECORRUPT or EFORMAT. */
  tu_check_damage_rounds(b, 11, 3000, 200, 4, 4, damaged_read);
}

int main(void) {
  tu_with_slots("sync key", 1, test_sync_key);
  tu_with_slots("version", 1, test_version);
  tu_with_slots("mac", 1, test_mac);
  tu_run_domain_suite(&(tu_domain_suite){
      test_slots, test_tx, test_batch_too_big, &tx_script, test_corrupt});
  return tap_done();
}
