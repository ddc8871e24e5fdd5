/*
 * tests/test_device.c - the device store (keyjournal/device.h) on the
 * native backend: slot ids (from 1, never reused, also across a reopen),
 * listing, device records (every field, optional fields absent vs present
 * but empty, the table-2 bytes of doc/FORMAT.md section 8), deleting a slot
 * with every row it owns in every domain table in one commit, argument
 * checks, damaged rows, slot labels (tables 3 and 4: their bytes, a reopen,
 * damaged rows), and the debugging snapshot copy (an openable copy
 * equal to the store, extra.bin, label sanitising that never leaves
 * <store>/copies, KJ_EEXIST, memory-only and read-only stores).
 *
 * Rows of the other stores are written straight into the engine tables
 * (keys prefixed with the slot id), so the slot deletion is tested against
 * the table list of FORMAT.md, not against those stores' code.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keyjournal/device.h"
#include "keyjournal/ratchet.h"
#include "tap.h"
#include "testutil.h"

/* Every per-slot table of doc/FORMAT.md section 8 (4, 10..41). */
static const unsigned slot_tables[] = {4,  10, 11, 12, 13, 14, 15, 16,
                                       17, 20, 21, 22, 23, 30, 31, 32,
                                       33, 34, 35, 36, 40, 41};
#define NSLOT_TABLES (sizeof slot_tables / sizeof slot_tables[0])

/* ---- helpers ------------------------------------------------------------ */

static kj_backend *open_b(const char *dir, int read_only) {
  kj_options o;
  tu_options(&o);
  o.sync = KJ_SYNC_OFF; /* speed: durability is not what is tested here */
  o.read_only = read_only;
  return tu_backend_open(dir, &o);
}

/* Rows of table whose key starts with slot id dev (-1 on error). */
static long rows_of(kj_backend *b, unsigned table, uint32_t dev) {
  uint8_t p[4];
  tu_be32(p, dev);
  return tu_raw_count(b, table, p, 4);
}

static int list_is(kj_backend *b, const uint32_t *want, size_t n) {
  kj_u32_list *l = NULL;
  int rc = kj_device_list_ids(b, NULL, &l);
  int res = rc == KJ_OK && l && l->n == n &&
            (n == 0 || memcmp(l->v, want, n * sizeof *want) == 0);
  if (!res) {
    printf("#   list rc=%d:", rc);
    for (size_t i = 0; l && i < l->n; i++)
      printf(" %u", l->v[i]);
    printf("\n");
  }
  kj_free(l);
  return res;
}

static int exists(kj_backend *b, uint32_t id) {
  int e = 7;
  int rc = kj_device_exists(b, NULL, id, &e);
  return rc ? -rc - 100 : e;
}

static uint64_t commits(kj_backend *b) {
  kj_stats st = KJ_STATS_INIT;
  kj_store_stats(kj_backend_store(b), &st);
  return st.commits;
}

/* ---- records ------------------------------------------------------------ */

static uint8_t big_account[KJ_MAX_RECORD];
static uint8_t big_id[KJ_MAX_ID + 1];

/* A record with every field set and every optional blob present. */
static void full_record(kj_device_record *r, uint8_t seed) {
  memset(r, 0, sizeof *r);
  r->has_phone_jid = 1;
  r->phone_jid = (kj_blob){(const uint8_t *)"15551234567@s.whatsapp.net", 26};
  r->has_lid = 1;
  r->lid = (kj_blob){(const uint8_t *)"123456789@lid", 13};
  r->registration_id = 0xdeadbeefu + seed;
  tu_device_keys(r, seed + 1);
  r->signed_prekey_id = 0x01020304u + seed;
  r->has_account = 1;
  r->account = (kj_blob){(const uint8_t *)"\x00\x01"
                                          "account\xff",
                         10};
  r->push_name = (kj_blob){(const uint8_t *)"Alice \xe2\x9c\x93", 9};
  r->app_version[0] = 2;
  r->app_version[1] = 2413 + seed;
  r->app_version[2] = 51;
  r->app_version_fetched_at_ms = -1234567890123LL - seed;
  r->has_edge_routing = 1;
  r->edge_routing = (kj_blob){(const uint8_t *)"\x08\x02\x00"
                                               "edge",
                              7};
  r->has_props_hash = 1;
  r->props_hash = (kj_blob){(const uint8_t *)"props-hash", 10};
}

static int blob_eq(int has_a, const kj_blob *a, int has_b, const kj_blob *b) {
  if (has_a != has_b)
    return 0;
  if (!has_a)
    return 1;
  return a->len == b->len && (a->len == 0 || !memcmp(a->p, b->p, a->len));
}

/* Field-by-field equality; absent blobs of `got` must be NULL/0. */
static int rec_eq(const kj_device_record *got, const kj_device_record *want) {
  kj_blob none = {NULL, 0};
  const kj_blob *g[] = {&got->phone_jid, &got->lid, &got->account,
                        &got->edge_routing, &got->props_hash};
  const int gh[] = {got->has_phone_jid, got->has_lid, got->has_account,
                    got->has_edge_routing, got->has_props_hash};
  for (int i = 0; i < 5; i++)
    if (!gh[i] && (g[i]->p != none.p || g[i]->len != 0))
      return 0;
  return blob_eq(got->has_phone_jid, &got->phone_jid, want->has_phone_jid,
                 &want->phone_jid) &&
         blob_eq(got->has_lid, &got->lid, want->has_lid, &want->lid) &&
         got->registration_id == want->registration_id &&
         !memcmp(got->noise_pub, want->noise_pub, 32) &&
         !memcmp(got->noise_priv, want->noise_priv, 32) &&
         !memcmp(got->identity_pub, want->identity_pub, 32) &&
         !memcmp(got->identity_priv, want->identity_priv, 32) &&
         !memcmp(got->signed_prekey_pub, want->signed_prekey_pub, 32) &&
         !memcmp(got->signed_prekey_priv, want->signed_prekey_priv, 32) &&
         got->signed_prekey_id == want->signed_prekey_id &&
         !memcmp(got->signed_prekey_sig, want->signed_prekey_sig, 64) &&
         !memcmp(got->adv_secret, want->adv_secret, 32) &&
         blob_eq(got->has_account, &got->account, want->has_account,
                 &want->account) &&
         blob_eq(1, &got->push_name, 1, &want->push_name) &&
         !memcmp(got->app_version, want->app_version,
                 sizeof got->app_version) &&
         got->app_version_fetched_at_ms == want->app_version_fetched_at_ms &&
         blob_eq(got->has_edge_routing, &got->edge_routing,
                 want->has_edge_routing, &want->edge_routing) &&
         blob_eq(got->has_props_hash, &got->props_hash, want->has_props_hash,
                 &want->props_hash);
}

/* A new slot holding full_record(r, 1); its id. */
static uint32_t slot_with_record(kj_backend *b, kj_device_record *r) {
  uint32_t id = 0;
  kj_device_create(b, NULL, &id);
  full_record(r, 1);
  kj_device_save(b, NULL, id, r);
  return id;
}

/* Save r into slot id, load it back, compare. */
static int round_trip(kj_backend *b, uint32_t id, const kj_device_record *r) {
  int rc = kj_device_save(b, NULL, id, r);
  if (rc) {
    printf("#   save: %d %s\n", rc, kj_backend_errmsg(b));
    return 0;
  }
  kj_device_record *got = NULL;
  rc = kj_device_load(b, NULL, id, &got);
  int res = rc == KJ_OK && got && rec_eq(got, r);
  if (!res)
    printf("#   load: %d\n", rc);
  kj_free(got);
  return res;
}

/* A backend on a fresh directory, for tests that also reopen it. */
typedef struct disk {
  char *dir;
  kj_backend *b;
} disk;

/* Close d's backend and open the store again. */
static kj_backend *reopen(disk *d) {
  kj_backend_close(d->b);
  return d->b = open_b(d->dir, 0);
}

/* Run fn on a backend on a fresh directory; then close it and remove the
 * directory. */
static void on_disk(void (*fn)(disk *d)) {
  disk d = {tu_mkdtemp(), NULL};
  d.b = open_b(d.dir, 0);
  fn(&d);
  kj_backend_close(d.b);
  tu_rmrf(d.dir);
  free(d.dir);
}

/* ---- slot ids ------------------------------------------------------------ */

static void test_ids(const char *dir) {
  kj_backend *b = open_b(dir, 0);
  ok(b != NULL, "ids: open");
  if (!b)
    return;
  ok(list_is(b, NULL, 0), "ids: a new store lists no slot");
  uint32_t id = 99;
  is(kj_device_create(b, NULL, &id), KJ_OK, "ids: create");
  is(id, 1, "ids: the first id is 1");
  kj_device_create(b, NULL, &id);
  is(id, 2, "ids: then 2");
  kj_device_create(b, NULL, &id);
  is(id, 3, "ids: then 3");
  ok(list_is(b, (uint32_t[]){1, 2, 3}, 3), "ids: list 1 2 3");
  is(exists(b, 1), 1, "ids: exists(1)");
  is(exists(b, 3), 1, "ids: exists(3)");
  is(exists(b, 4), 0, "ids: exists(4) is 0");
  is(exists(b, 0), 0, "ids: exists(0) is 0 (0 is never a slot)");
  is(exists(b, UINT32_MAX), 0, "ids: exists(UINT32_MAX) is 0");

  is(kj_device_delete(b, NULL, 3), KJ_OK, "ids: delete the newest slot");
  is(exists(b, 3), 0, "ids: deleted slot no longer exists");
  kj_device_create(b, NULL, &id);
  is(id, 4, "ids: the next id after deleting the newest is 4 (not 3)");
  is(kj_device_delete(b, NULL, 2), KJ_OK, "ids: delete slot 2");
  ok(list_is(b, (uint32_t[]){1, 4}, 2), "ids: list 1 4");

  /* The raw rows of FORMAT.md: meta counter (version, u32 LE) and an empty
   * slot (version, has_record 0). */
  uint8_t *v = NULL;
  size_t vl = 0;
  int rc = tu_raw_get(b, 1, "next_device_id", 14, &v, &vl);
  ok(rc == KJ_OK && vl == 5 && !memcmp(v, "\x01\x05\x00\x00\x00", 5),
     "ids: table 1 next_device_id = 01 05000000");
  kj_free(v);
  uint8_t k[4];
  tu_be32(k, 4);
  rc = tu_raw_get(b, 2, k, 4, &v, &vl);
  ok(rc == KJ_OK && vl == 2 && !memcmp(v, "\x01\x00", 2),
     "ids: table 2 row of a new slot is 01 00 under its BE id");
  kj_free(v);
  kj_backend_close(b);

  b = open_b(dir, 0);
  ok(b != NULL, "ids: reopen");
  if (!b)
    return;
  ok(list_is(b, (uint32_t[]){1, 4}, 2), "ids: list survives a reopen");
  kj_device_create(b, NULL, &id);
  is(id, 5, "ids: after a reopen the counter goes on (5)");
  kj_device_delete(b, NULL, 5);
  kj_backend_close(b);
  b = open_b(dir, 0);
  kj_device_create(b, NULL, &id);
  is(id, 6, "ids: a deleted id is not reused after a reopen either");
  kj_backend_close(b);
}

static void test_list_many(disk *d) {
  kj_backend *b = d->b;
  kj_tx *t = NULL;
  int rc = kj_backend_begin(b, &t);
  uint32_t want[300], id = 0;
  for (int i = 0; i < 300 && !rc; i++) {
    rc = kj_device_create(b, t, &id);
    want[i] = id;
  }
  if (!rc)
    rc = kj_backend_commit(t);
  else
    kj_backend_rollback(t);
  is(rc, KJ_OK, "list: 300 creates in one transaction");
  is(want[299], 300, "list: the 300th id is 300");
  /* Ids past 255 sort after 255 only if keys are big-endian. */
  kj_device_delete(b, NULL, 7);
  memmove(want + 6, want + 7, (300 - 7) * sizeof *want);
  ok(list_is(b, want, 299), "list: ascending numerically across 255/256");
}

static void test_tx(disk *d) {
  kj_backend *b = d->b;
  uint32_t id = 0;
  kj_device_create(b, NULL, &id);
  char *before = tu_dump_backend(b);

  kj_tx *t = NULL;
  kj_backend_begin(b, &t);
  uint32_t tid = 0;
  is(kj_device_create(b, t, &tid), KJ_OK, "tx: create in a transaction");
  is(tid, 2, "tx: id 2");
  int e = 0;
  kj_device_exists(b, t, tid, &e);
  is(e, 1, "tx: the transaction sees its slot");
  kj_device_record r;
  full_record(&r, 1);
  is(kj_device_save(b, t, tid, &r), KJ_OK, "tx: save into the new slot");
  kj_backend_rollback(t);
  ok(tu_backend_unchanged(b, before),
     "tx: rollback leaves every table unchanged");
  is(exists(b, 2), 0, "tx: rolled-back slot does not exist");

  kj_backend_begin(b, &t);
  kj_device_create(b, t, &tid);
  kj_device_save(b, t, tid, &r);
  is(kj_backend_commit(t), KJ_OK, "tx: commit");
  ok(round_trip(b, tid, &r), "tx: committed slot and record are there");
  free(before);
}

/* ---- records --------------------------------------------------------------
 */

static void test_records(disk *d) {
  kj_backend *b = d->b;
  uint32_t id = 0, id2 = 0;
  kj_device_create(b, NULL, &id);
  kj_device_create(b, NULL, &id2);

  kj_device_record *got = (kj_device_record *)&got;
  is(kj_device_load(b, NULL, id, &got), KJ_NOTFOUND,
     "record: a new slot has no record (KJ_NOTFOUND)");
  ok(got == NULL, "record: *out NULL on KJ_NOTFOUND");

  kj_device_record r;
  full_record(&r, 3);
  ok(round_trip(b, id, &r), "record: every field present round-trips");

  /* Absent optional fields: the blobs are ignored (garbage pointers and
   * lengths), and come back NULL/0 with their flag 0. */
  kj_device_record a;
  full_record(&a, 4);
  a.has_phone_jid = a.has_lid = a.has_account = 0;
  a.has_edge_routing = a.has_props_hash = 0;
  a.phone_jid = a.lid = a.account = a.edge_routing = a.props_hash =
      (kj_blob){(const uint8_t *)"ignored", SIZE_MAX};
  a.push_name = (kj_blob){NULL, 0};
  ok(round_trip(b, id, &a), "record: every optional field absent");

  /* Present but empty differs from absent. */
  kj_device_record e;
  full_record(&e, 5);
  e.phone_jid = e.lid = e.account = e.edge_routing = e.props_hash =
      (kj_blob){NULL, 0};
  ok(round_trip(b, id, &e), "record: every optional field present and empty");
  kj_device_load(b, NULL, id, &got);
  ok(got && got->has_phone_jid && got->has_lid && got->has_account &&
         got->has_edge_routing && got->has_props_hash &&
         got->phone_jid.len == 0 && got->account.len == 0,
     "record: present-empty comes back present with length 0");
  kj_free(got);

  /* Limits: identifiers KJ_MAX_ID, account KJ_MAX_RECORD. */
  kj_device_record m;
  full_record(&m, 6);
  tu_fill(big_account, sizeof big_account, 9);
  tu_fill(big_id, sizeof big_id, 11);
  m.phone_jid = m.lid = m.push_name = m.edge_routing = m.props_hash =
      (kj_blob){big_id, KJ_MAX_ID};
  m.account = (kj_blob){big_account, KJ_MAX_RECORD};
  ok(round_trip(b, id, &m), "record: blobs at their limits round-trip");

  /* Replace, and slots are separate. */
  full_record(&r, 7);
  kj_device_record r2;
  full_record(&r2, 8);
  kj_device_save(b, NULL, id2, &r2);
  ok(round_trip(b, id, &r), "record: save replaces the previous record");
  kj_device_load(b, NULL, id2, &got);
  ok(got && rec_eq(got, &r2), "record: the other slot keeps its own record");
  kj_free(got);

  /* Byte layout of table 2 (FORMAT.md section 8). */
  kj_device_record s;
  memset(&s, 0, sizeof s);
  s.has_lid = 1;
  s.lid = (kj_blob){(const uint8_t *)"L", 1};
  s.registration_id = 0x04030201u;
  memset(s.noise_pub, 0xa1, 32);
  memset(s.noise_priv, 0xa2, 32);
  memset(s.identity_pub, 0xa3, 32);
  memset(s.identity_priv, 0xa4, 32);
  memset(s.signed_prekey_pub, 0xa5, 32);
  memset(s.signed_prekey_priv, 0xa6, 32);
  s.signed_prekey_id = 7;
  memset(s.signed_prekey_sig, 0xa7, 64);
  memset(s.adv_secret, 0xa8, 32);
  s.has_account = 1; /* present, empty */
  s.push_name = (kj_blob){(const uint8_t *)"pn", 2};
  s.app_version[0] = 1;
  s.app_version[1] = 2;
  s.app_version[2] = 3;
  s.app_version_fetched_at_ms = 0x0102030405060708LL;
  s.has_props_hash = 1;
  s.props_hash = (kj_blob){(const uint8_t *)"ph", 2};
  uint8_t want[400], *p = want;
  *p++ = 1;           /* version */
  *p++ = 1;           /* has_record */
  *p++ = 0;           /* phone_jid absent */
  *p++ = 1, *p++ = 1; /* lid: present, varint 1 */
  *p++ = 'L';         /*   "L" */
  memcpy(p, "\x01\x02\x03\x04", 4), p += 4;
  for (int i = 0; i < 6; i++)
    memset(p, 0xa1 + i, 32), p += 32;
  memcpy(p, "\x07\x00\x00\x00", 4), p += 4;
  memset(p, 0xa7, 64), p += 64;
  memset(p, 0xa8, 32), p += 32;
  *p++ = 1, *p++ = 0;               /* account present, empty */
  *p++ = 2, *p++ = 'p', *p++ = 'n'; /* push_name */
  memcpy(p, "\x01\0\0\0\x02\0\0\0\x03\0\0\0", 12), p += 12;
  memcpy(p, "\x08\x07\x06\x05\x04\x03\x02\x01", 8), p += 8;
  *p++ = 0;                                   /* edge_routing absent */
  *p++ = 1, *p++ = 2, *p++ = 'p', *p++ = 'h'; /* props_hash */
  kj_device_save(b, NULL, id2, &s);
  uint8_t k[4], *v = NULL;
  size_t vl = 0;
  tu_be32(k, id2);
  tu_raw_get(b, 2, k, 4, &v, &vl);
  ok(v && vl == (size_t)(p - want) && !memcmp(v, want, vl),
     "record: table-2 bytes are exactly the FORMAT.md layout");
  kj_free(v);

  /* Slot id 0 and absent slots. */
  uint32_t ghost = id2 + 10;
  char *before = tu_dump_backend(b);
  is(kj_device_save(b, NULL, ghost, &r), KJ_NOTFOUND,
     "record: save into an absent slot is KJ_NOTFOUND");
  is(kj_device_save(b, NULL, 0, &r), KJ_NOTFOUND,
     "record: save into slot 0 is KJ_NOTFOUND");
  got = (kj_device_record *)&got;
  is(kj_device_load(b, NULL, ghost, &got), KJ_NOTFOUND,
     "record: load of an absent slot is KJ_NOTFOUND");
  ok(got == NULL, "record: *out NULL");
  is(kj_device_load(b, NULL, 0, &got), KJ_NOTFOUND,
     "record: load of slot 0 is KJ_NOTFOUND");
  is(kj_device_delete(b, NULL, ghost), KJ_OK,
     "record: delete of an absent slot is KJ_OK");
  is(kj_device_delete(b, NULL, 0), KJ_OK, "record: delete of slot 0 is KJ_OK");
  ok(tu_backend_unchanged(b, before), "record: none of that changed a row");
  free(before);

  b = reopen(d);
  ok(round_trip(b, id, &r), "record: survives a reopen");
}

/* ---- argument checks -------------------------------------------------------
 */

static void test_bad_args(disk *d) {
  kj_backend *b = d->b;
  kj_device_record good;
  uint32_t id = slot_with_record(b, &good);
  char *before = tu_dump_backend(b);

  uint32_t xid = 5;
  is(kj_device_create(NULL, NULL, &xid), KJ_EINVAL, "args: create(NULL b)");
  is(xid, 0, "args: *id zeroed on failure");
  is(kj_device_create(b, NULL, NULL), KJ_EINVAL, "args: create(NULL id)");
  is(kj_device_list_ids(b, NULL, NULL), KJ_EINVAL, "args: list(NULL out)");
  is(kj_device_exists(b, NULL, id, NULL), KJ_EINVAL, "args: exists(NULL)");
  is(kj_device_load(b, NULL, id, NULL), KJ_EINVAL, "args: load(NULL out)");
  is(kj_device_save(b, NULL, id, NULL), KJ_EINVAL, "args: save(NULL record)");
  is(kj_device_delete(NULL, NULL, id), KJ_EINVAL, "args: delete(NULL b)");

  kj_device_record r;
#define BAD(mutate, what)                                                      \
  do {                                                                         \
    full_record(&r, 2);                                                        \
    mutate;                                                                    \
    is(kj_device_save(b, NULL, id, &r), KJ_EINVAL, "args: save with %s",       \
       what);                                                                  \
  } while (0)
  BAD(r.has_phone_jid = 2, "has_phone_jid 2");
  BAD(r.has_lid = -1, "has_lid -1");
  BAD(r.has_account = 2, "has_account 2");
  BAD(r.has_edge_routing = 3, "has_edge_routing 3");
  BAD(r.has_props_hash = 2, "has_props_hash 2");
  BAD(r.phone_jid = ((kj_blob){big_id, KJ_MAX_ID + 1}), "phone_jid too long");
  BAD(r.lid = ((kj_blob){big_id, KJ_MAX_ID + 1}), "lid too long");
  BAD(r.account = ((kj_blob){big_account, KJ_MAX_RECORD + 1}),
      "account too long");
  BAD(r.push_name = ((kj_blob){big_id, KJ_MAX_ID + 1}), "push_name too long");
  BAD(r.edge_routing = ((kj_blob){big_id, KJ_MAX_ID + 1}),
      "edge_routing too long");
  BAD(r.props_hash = ((kj_blob){big_id, KJ_MAX_ID + 1}), "props_hash too long");
  BAD(r.phone_jid = ((kj_blob){NULL, 3}), "phone_jid NULL with length 3");
  BAD(r.push_name = ((kj_blob){NULL, 1}), "push_name NULL with length 1");
  BAD(r.account = ((kj_blob){NULL, 1}), "account NULL with length 1");
#undef BAD
  ok(kj_backend_errmsg(b)[0] != '\0', "args: a detail message is recorded");

  char *path = (char *)&path;
  is(kj_device_snapshot_copy(b, NULL, NULL, 3, NULL, 0, &path), KJ_EINVAL,
     "args: snapshot label NULL with length 3");
  ok(path == NULL, "args: *path NULL on failure");
  is(kj_device_snapshot_copy(b, NULL, big_id, KJ_MAX_ID + 1, NULL, 0, NULL),
     KJ_EINVAL, "args: snapshot label over KJ_MAX_ID");
  is(kj_device_snapshot_copy(b, NULL, "x", 1, big_account, KJ_MAX_RECORD + 1,
                             NULL),
     KJ_EINVAL, "args: snapshot extra over KJ_MAX_RECORD");
  is(kj_device_snapshot_copy(b, NULL, "x", 1, NULL, 4, NULL), KJ_EINVAL,
     "args: snapshot extra NULL with length 4");

  /* A transaction of another backend. */
  kj_backend *m = open_b(NULL, 0);
  kj_tx *t = NULL;
  kj_backend_begin(m, &t);
  is(kj_device_create(b, t, &xid), KJ_EINVAL,
     "args: transaction of another backend");
  is(kj_device_save(b, t, id, &good), KJ_EINVAL,
     "args: save with another backend's transaction");
  kj_backend_rollback(t);
  kj_backend_close(m);

  char *after = tu_dump_backend(b);
  ok(tu_same_dump(before, after), "args: no bad call changed a row");
  char *cp = tu_path(d->dir, "copies");
  ok(access(cp, F_OK) != 0, "args: no copies/ directory was created");
  free(cp);
  free(before);
  free(after);
}

/* ---- deleting a slot ------------------------------------------------------
 */

/* Two rows keyed under dev in every per-slot table. */
static int fill_slot(kj_backend *b, uint32_t dev) {
  int rc = 0;
  for (size_t i = 0; i < NSLOT_TABLES && !rc; i++) {
    uint8_t k[16];
    tu_be32(k, dev);
    rc = tu_raw_put(b, slot_tables[i], k, 4, "whole-key", 9); /* key = dev */
    memcpy(k + 4, "\x00\x01row", 5);
    if (!rc)
      rc = tu_raw_put(b, slot_tables[i], k, 9, "v", 1);
  }
  return rc;
}

static void test_delete(disk *d) {
  kj_backend *b = d->b;
  uint32_t a = 0, c = 0;
  kj_device_create(b, NULL, &a);
  kj_device_create(b, NULL, &c);
  kj_device_record r;
  full_record(&r, 1);
  kj_device_save(b, NULL, a, &r);
  kj_device_save(b, NULL, c, &r);
  is(fill_slot(b, a), KJ_OK, "delete: rows in every table for slot A");
  is(fill_slot(b, c), KJ_OK, "delete: rows in every table for slot C");
  kj_ratchet_state *st = kj_ratchet_state_alloc(2);
  st->skipped[1].msg_num = 1;
  is(kj_ratchet_save(b, NULL, a, "conv", 4, st), KJ_OK,
     "delete: a ratchet state with skipped keys in slot A");
  char *before = tu_dump_backend(b);

  /* Rolled back: everything stays. */
  kj_tx *t = NULL;
  kj_backend_begin(b, &t);
  is(kj_device_delete(b, t, a), KJ_OK, "delete: inside a transaction");
  int e = 1;
  kj_device_exists(b, t, a, &e);
  is(e, 0, "delete: the transaction no longer sees the slot");
  kj_backend_rollback(t);
  ok(tu_backend_unchanged(b, before),
     "delete: rollback keeps every row of the slot");

  uint64_t c0 = commits(b);
  is(kj_device_delete(b, NULL, a), KJ_OK, "delete: slot A");
  is(commits(b) - c0, 1, "delete: in exactly one commit");
  is(exists(b, a), 0, "delete: A no longer exists");
  is(rows_of(b, 2, a), 0, "delete: no table-2 row of A");
  int all_gone = 1, others_kept = 1;
  for (size_t i = 0; i < NSLOT_TABLES; i++) {
    long na = rows_of(b, slot_tables[i], a), nc = rows_of(b, slot_tables[i], c);
    if (na != 0) {
      all_gone = 0;
      printf("#   table %u: %ld rows of A left\n", slot_tables[i], na);
    }
    if (nc != 2) {
      others_kept = 0;
      printf("#   table %u: %ld rows of C\n", slot_tables[i], nc);
    }
  }
  ok(all_gone, "delete: no row of A left in any of tables 4, 10..41");
  ok(others_kept, "delete: every row of C is still there");
  kj_device_record *got = NULL;
  kj_device_load(b, NULL, c, &got);
  ok(got && rec_eq(got, &r), "delete: C's record is intact");
  kj_free(got);
  uint8_t *v = NULL;
  size_t vl = 0;
  int rc = tu_raw_get(b, 1, "next_device_id", 14, &v, &vl);
  ok(rc == KJ_OK && vl == 5 && v[1] == 3, "delete: the id counter stays (3)");
  kj_free(v);

  /* Writes to the deleted slot. */
  char *gone = tu_dump_backend(b);
  is(kj_device_save(b, NULL, a, &r), KJ_NOTFOUND,
     "delete: device save to the deleted slot is KJ_NOTFOUND");
  is(kj_ratchet_save(b, NULL, a, "conv", 4, st), KJ_NOTFOUND,
     "delete: ratchet save to the deleted slot is KJ_NOTFOUND");
  uint64_t n = 9;
  is(kj_ratchet_cleanup_skipped(b, NULL, a, 0, &n), KJ_NOTFOUND,
     "delete: ratchet cleanup of the deleted slot is KJ_NOTFOUND");
  is(kj_device_load(b, NULL, a, &got), KJ_NOTFOUND,
     "delete: load of the deleted slot is KJ_NOTFOUND");
  is(kj_device_delete(b, NULL, a), KJ_OK, "delete: deleting it again is KJ_OK");
  ok(tu_backend_unchanged(b, gone), "delete: none of that wrote a row");
  free(gone);
  free(before);
  kj_free(st);

  b = reopen(d);
  ok(list_is(b, &c, 1), "delete: after a reopen only C is listed");
  uint32_t id = 0;
  kj_device_create(b, NULL, &id);
  is(id, 3, "delete: the next id is 3");
  is(rows_of(b, 10, a) + rows_of(b, 41, a), 0,
     "delete: A's rows stay gone after a reopen");
}

/* ---- labels --------------------------------------------------------------
 */

static uint32_t found(kj_backend *b, const char *label) {
  uint32_t id = 777;
  int rc = kj_device_find(b, NULL, label, strlen(label), &id);
  return rc == KJ_OK ? id : rc == KJ_NOTFOUND && id == 0 ? 0 : 0xEEEEEEEEu;
}

/* The rows of FORMAT.md 8 (table 3: label -> 01, u32 LE slot; table 4:
 * dev|label -> 01), across a reopen, and damaged ones. */
static void test_labels(disk *d) {
  kj_backend *b = d->b;
  uint32_t plain = 0, home = 0, work = 0;
  kj_device_create(b, NULL, &plain);
  is(kj_device_create_labeled(b, NULL, "home", 4, &home), KJ_OK,
     "labels: create");
  is(home, plain + 1, "labels: ... the next id");
  uint8_t v3[5] = {1};
  v3[1] = (uint8_t)home; /* little-endian */
  ok(tu_raw_eq(b, 3, "home", 4, v3, 5), "labels: table-3 row layout");
  uint8_t k4[8];
  tu_slot_key(k4, home, "home", 4);
  ok(tu_raw_eq(b, 4, k4, 8, "\x01", 1), "labels: table-4 row layout");
  is(rows_of(b, 4, plain), 0, "labels: a plain slot has no table-4 row");
  kj_device_create_labeled(b, NULL, "work", 4, &work);

  b = reopen(d);
  ok(found(b, "home") == home && found(b, "work") == work,
     "labels: found after a reopen");
  uint32_t x = 9;
  is(kj_device_create_labeled(b, NULL, "home", 4, &x), KJ_EEXIST,
     "labels: taken after a reopen");
  ok(strstr(kj_backend_errmsg(b), "label") != NULL, "labels: ... said (%s)",
     kj_backend_errmsg(b));

  /* Damaged table-3 rows: the status, never a slot id. */
  struct {
    const char *what, *v;
    size_t len;
    int want;
  } bad[] = {
      {"empty", "", 0, KJ_ECORRUPT},
      {"short", "\x01\x02\x00", 3, KJ_ECORRUPT},
      {"slot 0", "\x01\x00\x00\x00\x00", 5, KJ_ECORRUPT},
      {"trailing byte", "\x01\x02\x00\x00\x00\x00", 6, KJ_ECORRUPT},
      {"version 2", "\x02\x02\x00\x00\x00", 5, KJ_EFORMAT},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    tu_raw_put(b, 3, "work", 4, bad[i].v, bad[i].len);
    x = 9;
    is(kj_device_find(b, NULL, "work", 4, &x), bad[i].want, "labels: %s",
       bad[i].what);
    is(x, 0, "labels: %s: id 0", bad[i].what);
  }
  ok(strstr(kj_backend_errmsg(b), "table 3") != NULL, "labels: ... named (%s)",
     kj_backend_errmsg(b));
  /* A damaged table-4 value cannot stop a delete: the label is its key. */
  tu_raw_put(b, 4, k4, 8, "junk", 4);
  is(kj_device_delete(b, NULL, home), KJ_OK,
     "labels: delete over a damaged table-4 value");
  ok(found(b, "home") == 0 && rows_of(b, 4, home) == 0,
     "labels: ... both label rows gone");
  x = 0;
  is(kj_device_create_labeled(b, NULL, "home", 4, &x), KJ_OK,
     "labels: the label is free again");
  ok(x > work, "labels: ... on a new id (%u)", x);
}

/* ---- damaged rows ----------------------------------------------------------
 */

static void test_corrupt(disk *d) {
  kj_backend *b = d->b;
  kj_device_record r;
  uint32_t id = slot_with_record(b, &r);
  uint8_t k[4], *good = NULL;
  size_t gl = 0;
  tu_be32(k, id);
  tu_raw_get(b, 2, k, 4, &good, &gl);

  uint8_t buf[600];
  struct {
    const char *what;
    size_t len;
    int want;
  } cases[] = {
      {"empty value", 0, KJ_ECORRUPT},
      {"version only", 1, KJ_ECORRUPT},
      {"has_record 2", 2, KJ_ECORRUPT},
      {"empty slot + trailing byte", 3, KJ_ECORRUPT},
      {"version 2", gl, KJ_EFORMAT},
      {"truncated by one byte", gl - 1, KJ_ECORRUPT},
      {"one trailing byte", gl + 1, KJ_ECORRUPT},
      {"garbage", 200, KJ_ECORRUPT},
      {"phone_jid flag 2", gl, KJ_ECORRUPT},
      {"phone_jid length over KJ_MAX_ID", 0, KJ_ECORRUPT},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t len = cases[i].len;
    memset(buf, 0, sizeof buf);
    if (i < 4) {
      memcpy(buf, "\x01\x02\x00", 3);
      if (i == 3)
        buf[1] = 0;
    } else if (i == 7) {
      tu_rng rng;
      tu_rng_seed(&rng, 42);
      tu_rng_fill(&rng, buf, len);
      buf[0] = 1, buf[1] = 1, buf[2] = 1, buf[3] = 0xff, buf[4] = 0x7f;
    } else if (i == 9) {
      /* 01 01 | 01 varint(1025) | 1025 bytes ... */
      memcpy(buf, "\x01\x01\x01\x81\x08", 5);
      len = 5 + 590;
    } else {
      memcpy(buf, good, gl < len ? gl : len);
      if (i == 4)
        buf[0] = 2;
      if (i == 8)
        buf[2] = 2;
    }
    tu_raw_put(b, 2, k, 4, buf, len);
    kj_device_record *got = (kj_device_record *)&got;
    is(kj_device_load(b, NULL, id, &got), cases[i].want, "corrupt: %s",
       cases[i].what);
    ok(got == NULL, "corrupt: %s: *out NULL", cases[i].what);
  }
  is(exists(b, id), 1, "corrupt: the slot still exists");
  ok(round_trip(b, id, &r), "corrupt: a save replaces the damaged record");
  kj_free(good);

  /* The id counter. */
  struct {
    const char *what, *v;
    size_t len;
    int want;
  } meta[] = {
      {"short", "\x01\x02\x00\x00", 4, KJ_ECORRUPT},
      {"version 2", "\x02\x02\x00\x00\x00", 5, KJ_EFORMAT},
      {"zero", "\x01\x00\x00\x00\x00", 5, KJ_ECORRUPT},
      {"trailing byte", "\x01\x02\x00\x00\x00\x00", 6, KJ_ECORRUPT},
      {"names an existing slot", "\x01\x01\x00\x00\x00", 5, KJ_ECORRUPT},
  };
  for (size_t i = 0; i < sizeof meta / sizeof meta[0]; i++) {
    tu_raw_put(b, 1, "next_device_id", 14, meta[i].v, meta[i].len);
    uint32_t nid = 77;
    is(kj_device_create(b, NULL, &nid), meta[i].want,
       "corrupt: next_device_id %s", meta[i].what);
    is(nid, 0, "corrupt: *id 0");
  }
  is(rows_of(b, 2, 2), 0, "corrupt: no slot was created meanwhile");
  tu_raw_put(b, 1, "next_device_id", 14, "\x01\x02\x00\x00\x00", 5);
  uint32_t nid = 0;
  is(kj_device_create(b, NULL, &nid), KJ_OK, "corrupt: repaired counter");
  is(nid, 2, "corrupt: id 2");

  tu_raw_put(b, 2, "abc", 3, "\x01\x00", 2);
  kj_u32_list *l = (kj_u32_list *)&l;
  is(kj_device_list_ids(b, NULL, &l), KJ_ECORRUPT,
     "corrupt: a 3-byte slot key fails the list");
  ok(l == NULL, "corrupt: list *out NULL");
}

/* ---- snapshot copy ---------------------------------------------------------
 */

/* 1 if path is directly inside the real directory copies and named name. */
static int lands_in(const char *path, const char *copies, const char *name) {
  char rp[PATH_MAX], rc[PATH_MAX];
  if (!path || !realpath(path, rp) || !realpath(copies, rc))
    return 0;
  size_t n = strlen(rc);
  struct stat st;
  int res = !strncmp(rp, rc, n) && rp[n] == '/' && !strcmp(rp + n + 1, name) &&
            stat(path, &st) == 0 && S_ISDIR(st.st_mode);
  if (!res)
    printf("#   %s is not %s/%s\n", rp, rc, name);
  return res;
}

/* 1 when the n bytes at p contain the string w. */
static int has_bytes(const void *p, size_t n, const char *w) {
  size_t m = strlen(w);
  for (size_t i = 0; i + m <= n; i++)
    if (!memcmp((const char *)p + i, w, m))
      return 1;
  return 0;
}

/* `keyjournal extra --key-file K DIR`, K holding tu_key: its exit status
 * (-1 when it could not run), its stdout in *out (tu_read_file). */
static int run_extra(const char *root, const char *dir, void **out,
                     size_t *olen) {
  const char *kj = getenv("KEYJOURNAL");
  char *kf = tu_path(root, "cli.key"), *of = tu_path(root, "cli.out");
  char cmd[4096];
  int st = -1;
  *out = NULL;
  *olen = 0;
  if (kj && tu_write_file(kf, tu_key, KJ_KEY_BYTES) == 0 &&
      chmod(kf, 0600) == 0 &&
      snprintf(cmd, sizeof cmd, "'%s' extra --key-file '%s' '%s' >'%s' 2>&1",
               kj, kf, dir, of) < (int)sizeof cmd) {
    int w = system(cmd);
    st = w != -1 && WIFEXITED(w) ? WEXITSTATUS(w) : -1;
    *out = tu_read_file(of, olen);
  }
  unlink(kf);
  unlink(of);
  free(kf);
  free(of);
  return st;
}

/* The command-line reader of the extra bytes (make check sets KEYJOURNAL):
 * the bytes as they are, exit 4 when damaged, 1 when there are none. The
 * file ep is left as it was. */
static void cli_extra(const char *root, const char *dir, const void *want,
                      size_t wlen, const char *ep) {
  void *o;
  size_t ol;
  ok(getenv("KEYJOURNAL") != NULL, "cli: KEYJOURNAL names the command");
  is(run_extra(root, dir, &o, &ol), 0, "cli: keyjournal extra exits 0");
  ok(o && ol == wlen && !memcmp(o, want, wlen),
     "cli: ... and writes exactly the extra bytes");
  free(o);
  size_t fl = 0;
  uint8_t *f = tu_read_file(ep, &fl);
  if (f && fl > 70) {
    f[70] ^= 1;
    tu_write_file(ep, f, fl);
    is(run_extra(root, dir, &o, &ol), 4, "cli: damaged extra.bin exits 4");
    ok(o && has_bytes(o, ol, "authentication failed"), "cli: ... and says why");
    free(o);
    unlink(ep);
    is(run_extra(root, dir, &o, &ol), 1, "cli: no extra.bin exits 1");
    ok(o && has_bytes(o, ol, "no extra bytes"), "cli: ... and says so");
    free(o);
    f[70] ^= 1;
    tu_write_file(ep, f, fl);
  }
  ok(f != NULL, "cli: extra.bin read for the damage cases");
  free(f);
}

static void test_snapshot_copy(void) {
  char *root = tu_mkdtemp();
  char *dir = tu_path(root, "store");
  char *copies = tu_path(dir, "copies");
  kj_backend *b = open_b(dir, 0);
  kj_device_record r;
  uint32_t id = slot_with_record(b, &r);
  fill_slot(b, id);
  kj_ratchet_state *st = kj_ratchet_state_alloc(1);
  kj_ratchet_save(b, NULL, id, "c", 1, st);
  kj_free(st);
  char *orig = tu_dump_backend(b);

  char *path = NULL;
  static const char extra[] = "extra\0bytes";
  int rc = kj_device_snapshot_copy(b, NULL, "snap-1.ok", 9, extra, sizeof extra,
                                   &path);
  is(rc, KJ_OK, "copy: snapshot_copy");
  if (rc)
    printf("#   %s\n", kj_backend_errmsg(b));
  ok(lands_in(path, copies, "snap-1.ok"), "copy: at <store>/copies/snap-1.ok");
  kj_backend *cb = path ? open_b(path, 0) : NULL;
  ok(cb != NULL, "copy: opens with the same key");
  if (cb) {
    char *cd = tu_dump_backend(cb);
    ok(tu_same_dump(orig, cd), "copy: every row of every table is equal");
    free(cd);
    kj_device_record *got = NULL;
    kj_device_load(cb, NULL, id, &got);
    ok(got && rec_eq(got, &r), "copy: the device record loads from the copy");
    kj_free(got);
    kj_backend_close(cb);
  }
  char *ep = tu_path(path ? path : "/nonexistent", "extra.bin");
  size_t el = 0;
  char *ed = tu_read_file(ep, &el);
  ok(ed && el == 64 + sizeof extra + 16,
     "copy: extra.bin is a 64-byte header, the sealed bytes and a tag");
  ok(ed && !has_bytes(ed, el, "bytes"), "copy: extra.bin holds no plaintext");
  free(ed);
  if (path) {
    kj_backend *rb = open_b(path, 0);
    void *x = NULL;
    size_t xl = 0;
    is(rb ? kj_store_read_extra(kj_backend_store(rb), &x, &xl) : -1, KJ_OK,
       "copy: kj_store_read_extra on the opened copy");
    ok(x && xl == sizeof extra && !memcmp(x, extra, xl),
       "copy: ... gives back the extra bytes");
    kj_free(x);
    /* Damage: a flipped byte in the header, in the ciphertext, a cut. */
    size_t fl = 0;
    uint8_t *f = tu_read_file(ep, &fl);
    static const struct {
      size_t off;
      const char *where;
    } flips[] = {{3, "at offset 0:"},
                 {12, "at offset 8:"},
                 {30, "at offset 64:"},
                 {70, "at offset 64:"}};
    for (size_t i = 0; f && rb && i < sizeof flips / sizeof flips[0]; i++) {
      f[flips[i].off] ^= 0x20;
      tu_write_file(ep, f, fl);
      f[flips[i].off] ^= 0x20;
      x = (void *)&x;
      is(kj_store_read_extra(kj_backend_store(rb), &x, &xl), KJ_ECORRUPT,
         "copy: extra.bin with byte %zu flipped is KJ_ECORRUPT", flips[i].off);
      ok(x == NULL && strstr(kj_backend_errmsg(rb), flips[i].where) &&
             strstr(kj_backend_errmsg(rb), "extra.bin"),
         "copy: ... naming the file and '%s' (%s)", flips[i].where,
         kj_backend_errmsg(rb));
    }
    if (f) {
      tu_write_file(ep, f, fl - 1);
      is(kj_store_read_extra(kj_backend_store(rb), &x, &xl), KJ_ECORRUPT,
         "copy: a cut extra.bin is KJ_ECORRUPT");
      tu_write_file(ep, f, 10);
      is(kj_store_read_extra(kj_backend_store(rb), &x, &xl), KJ_ECORRUPT,
         "copy: a 10-byte extra.bin is KJ_ECORRUPT");
      tu_write_file(ep, f, fl);
      is(kj_store_read_extra(kj_backend_store(rb), &x, &xl), KJ_OK,
         "copy: restored, it reads again");
      kj_free(x);
    }
    free(f);
    is(kj_store_read_extra(kj_backend_store(rb), NULL, &xl), KJ_EINVAL,
       "copy: NULL extra is KJ_EINVAL");
    is(kj_store_read_extra(kj_backend_store(rb), &x, NULL), KJ_EINVAL,
       "copy: NULL elen is KJ_EINVAL");
    is(kj_store_read_extra(NULL, &x, &xl), KJ_EINVAL,
       "copy: NULL store is KJ_EINVAL");
    kj_backend_close(rb);
    cli_extra(root, path, extra, sizeof extra, ep);
  }
  /* The same store's bytes moved into another store: refused. */
  {
    char *odir = tu_mkdtemp(); /* not beside the store: checked below */
    kj_backend *ob = open_b(odir, 0);
    char *oe = tu_path(odir, "extra.bin");
    size_t fl = 0;
    uint8_t *f = tu_read_file(ep, &fl);
    ok(f && tu_write_file(oe, f, fl) == 0,
       "copy: extra.bin put in another store");
    void *x = (void *)&x;
    size_t xl = 0;
    is(ob ? kj_store_read_extra(kj_backend_store(ob), &x, &xl) : -1,
       KJ_ECORRUPT, "copy: another store's extra.bin is KJ_ECORRUPT");
    ok(ob && strstr(kj_backend_errmsg(ob), "written by another store"),
       "copy: ... 'written by another store'");
    unlink(oe);
    is(ob ? kj_store_read_extra(kj_backend_store(ob), &x, &xl) : -1,
       KJ_NOTFOUND, "copy: a store without extra.bin is KJ_NOTFOUND");
    kj_backend_close(ob);
    free(f);
    free(oe);
    tu_rmrf(odir);
    free(odir);
  }
  free(ep);
  {
    kj_options o;
    tu_options(&o);
    o.key = tu_key_other;
    kj_backend *wb = NULL;
    is(kj_backend_open(path, &o, &wb, NULL), KJ_EKEY,
       "copy: another key does not open it");
    kj_backend_close(wb);
  }

  char *p2 = (char *)&p2;
  is(kj_device_snapshot_copy(b, NULL, "snap-1.ok", 9, NULL, 0, &p2), KJ_EEXIST,
     "copy: the same label again is KJ_EEXIST");
  ok(p2 == NULL, "copy: *path NULL on KJ_EEXIST");
  is(kj_device_snapshot_copy(b, NULL, "snap/1.ok", 9, NULL, 0, NULL), KJ_OK,
     "copy: without extra, path not wanted");
  ep = tu_path(copies, "snap_1.ok/extra.bin");
  ok(access(ep, F_OK) != 0, "copy: no extra.bin when extra is NULL");
  free(ep);
  is(kj_device_snapshot_copy(b, NULL, "empty-extra", 11, "", 0, NULL), KJ_OK,
     "copy: extra non-NULL, 0 bytes");
  ep = tu_path(copies, "empty-extra/extra.bin");
  is(tu_file_size(ep), 64 + 16, "copy: an empty extra.bin is header and tag");
  free(ep);
  {
    char *ed2 = tu_path(copies, "empty-extra");
    kj_backend *eb = open_b(ed2, 0);
    void *x = (void *)&x;
    size_t xl = 1;
    is(eb ? kj_store_read_extra(kj_backend_store(eb), &x, &xl) : -1, KJ_OK,
       "copy: empty extra bytes read back");
    ok(x == NULL && xl == 0, "copy: ... as NULL and 0");
    kj_backend_close(eb);
    free(ed2);
  }
  free(path);

  /* Label sanitising: always one entry directly inside copies/. */
  char long_label[1024];
  for (size_t i = 0; i < sizeof long_label; i++)
    long_label[i] = i % 10 == 3 ? '/' : 'x';
  char long_want[65];
  memcpy(long_want, long_label, 64);
  for (int i = 0; i < 64; i++)
    if (long_want[i] == '/')
      long_want[i] = '_';
  long_want[64] = 0;
  struct {
    const char *label;
    size_t len;
    const char *want;
  } labels[] = {
      {"../", 3, "_._"},
      {"/abs/path", 9, "_abs_path"},
      {"a/../../b", 9, "a_.._.._b"},
      {"a\0b/../c", 8, "a_b_.._c"},
      {"\0\0", 2, "__"},
      {".hidden", 7, "_hidden"},
      {"..", 2, "_."},
      {".", 1, "_"},
      {"", 0, "copy"},
      {"h\xc3\xa9llo w\xf6rld", 12, "h__llo_w_rld"},
      {"~user\\x:y*?", 11, "_user_x_y__"},
      {long_label, sizeof long_label, long_want},
  };
  for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++) {
    char *lp = NULL;
    rc = kj_device_snapshot_copy(b, NULL, labels[i].label, labels[i].len, NULL,
                                 0, &lp);
    is(rc, KJ_OK, "copy: label #%zu (%s)", i, labels[i].want);
    ok(lands_in(lp, copies, labels[i].want),
       "copy: label #%zu lands in copies/ as %s", i, labels[i].want);
    char *hdr = tu_path(lp ? lp : "/nonexistent", "keyjournal.hdr");
    ok(tu_file_size(hdr) > 0, "copy: label #%zu is a store", i);
    free(hdr);
    free(lp);
  }
  is(kj_device_snapshot_copy(b, NULL, NULL, 0, NULL, 0, NULL), KJ_EEXIST,
     "copy: NULL label is the empty label (\"copy\" exists)");
  is(tu_count_entries(copies), 3 + (int)(sizeof labels / sizeof labels[0]),
     "copy: copies/ holds exactly the copies made");
  is(tu_count_entries(root), 1, "copy: nothing was written beside the store");

  /* 5000 bytes: over the label limit, nothing created. */
  char huge[5000];
  memset(huge, '.', sizeof huge);
  is(kj_device_snapshot_copy(b, NULL, huge, sizeof huge, NULL, 0, NULL),
     KJ_EINVAL, "copy: a 5000-byte label is KJ_EINVAL");
  is(tu_count_entries(copies), 3 + (int)(sizeof labels / sizeof labels[0]),
     "copy: and creates nothing");

  /* Inside a transaction: no deadlock; the committed state is copied. */
  kj_tx *t = NULL;
  kj_backend_begin(b, &t);
  uint32_t tid = 0;
  kj_device_create(b, t, &tid);
  char *tp = NULL;
  is(kj_device_snapshot_copy(b, t, "in-tx", 5, NULL, 0, &tp), KJ_OK,
     "copy: inside the caller's transaction");
  is(kj_backend_commit(t), KJ_OK, "copy: the transaction still commits");
  cb = tp ? open_b(tp, 0) : NULL;
  ok(cb != NULL, "copy: the in-transaction copy opens");
  if (cb) {
    char *cd = tu_dump_backend(cb);
    ok(tu_same_dump(orig, cd),
       "copy: it holds the committed state, not the open transaction");
    free(cd);
    kj_backend_close(cb);
  }
  free(tp);
  is(exists(b, tid), 1, "copy: the transaction's slot was committed");

  /* The store itself still opens with copies/ inside it. */
  kj_device_delete(b, NULL, tid);
  kj_backend_close(b);
  b = open_b(dir, 0);
  ok(b != NULL, "copy: the store reopens with copies/ inside");
  kj_device_record *got = NULL;
  if (b)
    kj_device_load(b, NULL, id, &got);
  ok(got && rec_eq(got, &r), "copy: and reads its rows");
  kj_free(got);

  /* Read-only handle: refused before anything is created. */
  kj_backend_close(b);
  b = open_b(dir, 1);
  is(kj_device_snapshot_copy(b, NULL, "ro", 2, NULL, 0, NULL), KJ_EINVAL,
     "copy: read-only store is KJ_EINVAL");
  char *ro = tu_path(copies, "ro");
  ok(access(ro, F_OK) != 0, "copy: and writes nothing");
  free(ro);
  kj_backend_close(b);

  /* copies/ must be a real directory, not a link elsewhere. */
  char *other = tu_mkdtemp();
  char *dir2 = tu_path(root, "store2");
  char *copies2 = tu_path(dir2, "copies");
  b = open_b(dir2, 0);
  ok(symlink(other, copies2) == 0, "copy: copies/ made a symlink");
  is(kj_device_snapshot_copy(b, NULL, "x", 1, NULL, 0, NULL), KJ_EIO,
     "copy: a symlinked copies/ is refused (KJ_EIO)");
  is(tu_count_entries(other), 0, "copy: nothing landed at the link target");
  kj_backend_close(b);
  tu_rmrf(other);
  free(other);
  free(copies2);
  free(dir2);

  /* Memory-only. */
  b = open_b(NULL, 0);
  char *mp = (char *)&mp;
  is(kj_device_snapshot_copy(b, NULL, "m", 1, NULL, 0, &mp), KJ_EINVAL,
     "copy: memory-only store is KJ_EINVAL");
  ok(mp == NULL, "copy: *path NULL");
  kj_backend_close(b);

  free(orig);
  free(copies);
  free(dir);
  tu_rmrf(root);
  free(root);
}

int main(void) {
  char *dir = tu_mkdtemp_or_bail();
  test_ids(dir);
  tu_rmrf(dir);
  free(dir);
  on_disk(test_list_many);
  on_disk(test_tx);
  on_disk(test_records);
  on_disk(test_bad_args);
  on_disk(test_delete);
  on_disk(test_corrupt);
  on_disk(test_labels);
  test_snapshot_copy();
  return tap_done();
}
