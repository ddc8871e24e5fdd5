/*
 * tests/test_domain.c - rules that span the domain stores: one transaction
 * over several stores, a failed commit that leaves every store as it was,
 * slot isolation and slot deletion through the public API, time from the
 * store clock, and the backend table's version and missing operations.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyjournal.h"
#include "keyjournal/sys/backend.h"
#include "tap.h"
#include "testutil.h"

static int64_t test_now_ms;
static int64_t test_clock(void *ctx) {
  (void)ctx;
  return test_now_ms;
}

static kj_backend *open_b(const char *dir, const kj_vfs *vfs) {
  kj_options o;
  tu_options(&o);
  o.vfs = vfs;
  o.clock = test_clock;
  return tu_backend_open(dir, &o);
}

/* One row in every store of slot dev, all in transaction t. */
static int fill_slot(kj_backend *b, kj_tx *t, uint32_t dev, int n) {
  char a[32];
  uint8_t k32[32];
  memset(k32, n, sizeof k32);
  snprintf(a, sizeof a, "alice.%d:1", n);
  size_t al = strlen(a);
  int rc = kj_identity_put(b, t, dev, a, al, k32);
  if (!rc)
    rc = kj_session_put(b, t, dev, a, al, "session", 7);
  if (!rc)
    rc = kj_prekey_store(b, t, dev, (uint32_t)n, "prekey", 6, 0);
  if (!rc)
    rc = kj_signed_prekey_store(b, t, dev, (uint32_t)n, "spk", 3);
  if (!rc)
    rc = kj_sender_key_put(b, t, dev, "g@g.us:alice", 12, "sk", 2);
  kj_sync_key sk = {{(const uint8_t *)"kd", 2}, {NULL, 0}, 5};
  if (!rc)
    rc = kj_sync_key_set(b, t, dev, "kid", 3, &sk);
  kj_sync_entry ent = {{(const uint8_t *)"idx", 3}, {(const uint8_t *)"v", 1}};
  kj_sync_version v = {7, {1}, 1, &ent};
  if (!rc)
    rc = kj_sync_version_set(b, t, dev, "regular", 7, &v);
  kj_mutation_mac mm = {{(const uint8_t *)"im", 2}, {(const uint8_t *)"vm", 2}};
  if (!rc)
    rc = kj_mutation_mac_put(b, t, dev, "regular", 7, 7, &mm, 1);
  kj_blob jid = {(const uint8_t *)"bob.0:2", 7};
  if (!rc)
    rc = kj_skdm_add(b, t, dev, "g@g.us", 6, &jid, 1);
  kj_lid_mapping m = {{(const uint8_t *)"lid1", 4},
                      {(const uint8_t *)"+100", 4},
                      1,
                      2,
                      {(const uint8_t *)"src", 3}};
  if (!rc)
    rc = kj_lid_put(b, t, dev, &m);
  if (!rc)
    rc = kj_base_key_save(b, t, dev, a, al, "m1", 2, "bk", 2);
  kj_device_entry de = {1, 1, 3};
  kj_device_list dl = {{(const uint8_t *)"bob", 3}, 9, 0, {NULL, 0}, 1, &de};
  if (!rc)
    rc = kj_device_list_update(b, t, dev, &dl);
  if (!rc)
    rc = kj_sender_key_mark_forget(b, t, dev, "g@g.us", 6, "bob", 3);
  kj_tc_token tok = {{(const uint8_t *)"tok", 3}, 10, 0, 0};
  if (!rc)
    rc = kj_tc_token_put(b, t, dev, "bob@s", 5, &tok);
  /* The issue-17 rows: a name session and a sender key with user
   * records, a 33-byte identity key, the local identity. */
  if (!rc)
    rc = kj_session_store(b, t, dev, "bob", 3, (uint32_t)n, "ns", 2, "nu", 2);
  if (!rc)
    rc = kj_sender_key_store(b, t, dev, "g@g.us:bob", 10, "sk", 2, "su", 2);
  uint8_t k33[33];
  memset(k33, n + 1, sizeof k33);
  if (!rc)
    rc = kj_identity_put_key(b, t, dev, "carol", 5, k33, 33);
  kj_local_identity li = {(uint32_t)n, 33, {5}, {1}};
  if (!rc)
    rc = kj_local_identity_save(b, t, dev, &li);
  kj_ratchet_state *rs = kj_ratchet_state_alloc(1);
  if (!rs)
    return KJ_ENOMEM;
  rs->msg_send = (uint32_t)n;
  rs->skipped[0].msg_num = 4;
  if (!rc)
    rc = kj_ratchet_save(b, t, dev, "conv", 4, rs);
  kj_free(rs);
  return rc;
}

/* Consume a pre-key and create a session as one atomic unit. */
static void test_atomic_unit(void) {
  char *dir = tu_mkdtemp();
  kj_backend *b = open_b(dir, NULL);
  uint32_t dev = 0;
  is(kj_device_create(b, NULL, &dev), KJ_OK, "create a slot");
  kj_prekey in = {42, 0, {(const uint8_t *)"pk42", 4}};
  is(kj_prekey_store_batch(b, NULL, dev, &in, 1, 1), KJ_OK, "store pre-key");

  for (int commit = 0; commit < 2; commit++) {
    kj_tx *t;
    is(kj_backend_begin(b, &t), KJ_OK, "begin");
    kj_prekey_list *pk = NULL;
    int rc = kj_prekey_load(b, t, dev, 42, &pk);
    kj_free(pk);
    rc = rc ? rc : kj_prekey_remove(b, t, dev, 42);
    rc = rc ? rc : kj_session_put(b, t, dev, "carol.0:1", 9, "sess", 4);
    int has = -1;
    kj_session_has(b, t, dev, "carol.0:1", 9, &has);
    ok(rc == KJ_OK && has == 1, "inside the transaction: session visible");
    if (commit) {
      is(kj_backend_commit(t), KJ_OK, "commit");
    } else {
      kj_backend_rollback(t);
    }
    pk = NULL;
    int prc = kj_prekey_load(b, NULL, dev, 42, &pk);
    kj_free(pk);
    kj_session_has(b, NULL, dev, "carol.0:1", 9, &has);
    if (commit)
      ok(prc == KJ_NOTFOUND && has == 1,
         "after commit: pre-key consumed and session there");
    else
      ok(prc == KJ_OK && has == 0,
         "after rollback: pre-key still there and no session");
  }
  kj_backend_close(b);
  tu_rmrf(dir);
  free(dir);
}

/* A commit that fails through the VFS leaves every store as it was: in
 * memory at once, and on disk after reopening (the frame write failed, so
 * nothing of it can be durable). */
static void test_failed_commit(void) {
  char *dir = tu_mkdtemp();
  tu_vfs tv;
  tu_vfs_init(&tv);
  kj_backend *b = open_b(dir, &tv.vfs);
  uint32_t d1 = 0, d2 = 0;
  kj_device_create(b, NULL, &d1);
  kj_device_create(b, NULL, &d2);
  is(fill_slot(b, NULL, d1, 1), KJ_OK, "slot 1 filled, call by call");
  char *before = tu_dump_backend(b);
  kj_tx *t;
  kj_backend_begin(b, &t);
  int rc = fill_slot(b, t, d1, 2);
  rc = rc ? rc : fill_slot(b, t, d2, 3);
  ok(rc == KJ_OK, "every store written in one transaction");
  tu_vfs_arm(&tv, TU_WRITE, 1, KJ_EIO, TU_ARM_ONCE);
  rc = kj_backend_commit(t);
  tu_vfs_disarm(&tv);
  is(rc, KJ_EIO, "the commit's write fails: KJ_EIO");
  char *after = tu_dump_backend(b);
  ok(before && after && !strcmp(before, after),
     "every store in memory is exactly as before");
  free(after);
  kj_backend_close(b);
  b = open_b(dir, NULL);
  after = b ? tu_dump_backend(b) : NULL;
  ok(before && after && !strcmp(before, after),
     "after reopening, every store is exactly as before");
  free(after);
  is(fill_slot(b, NULL, d2, 4), KJ_OK, "writes work again after reopen");
  kj_backend_close(b);
  tu_vfs_destroy(&tv);
  free(before);
  tu_rmrf(dir);
  free(dir);
}

/* Slots never see each other's rows; deleting one removes all of its rows
 * and nothing else, in one commit; its id is never reused. */
static void test_slots(void) {
  kj_backend *b = open_b(NULL, NULL);
  uint32_t d1 = 0, d2 = 0, d3 = 0;
  kj_device_create(b, NULL, &d1);
  kj_device_create(b, NULL, &d2);
  is(fill_slot(b, NULL, d1, 1), KJ_OK, "slot 1 filled");
  void *rec = NULL;
  size_t rlen = 0;
  is(kj_session_get(b, NULL, d2, "alice.1:1", 9, &rec, &rlen), KJ_NOTFOUND,
     "slot 2 does not see slot 1's session");
  kj_blob_list *jids = NULL;
  ok(kj_skdm_get(b, NULL, d2, "g@g.us", 6, &jids) == KJ_OK && jids &&
         jids->n == 0,
     "slot 2 does not see slot 1's SKDM recipients");
  kj_free(jids);
  is(fill_slot(b, NULL, d2, 2), KJ_OK, "slot 2 filled");
  char *full = tu_dump_backend(b);
  kj_tx *t;
  kj_backend_begin(b, &t);
  is(kj_device_delete(b, t, d1), KJ_OK, "delete slot 1 in a transaction");
  kj_backend_rollback(t);
  char *same = tu_dump_backend(b);
  ok(full && same && !strcmp(full, same), "rolled back: nothing deleted");
  free(same);
  is(kj_device_delete(b, NULL, d1), KJ_OK, "delete slot 1");
  int ex = -1;
  kj_device_exists(b, NULL, d1, &ex);
  is(ex, 0, "slot 1 is gone");
  is(kj_session_put(b, NULL, d1, "x", 1, "y", 1), KJ_NOTFOUND,
     "writes to the deleted slot: KJ_NOTFOUND");
  ok(kj_session_get(b, NULL, d2, "alice.2:1", 9, &rec, &rlen) == KJ_OK,
     "slot 2's rows survive");
  kj_free(rec);
  kj_device_create_labeled(b, NULL, "three", 5, &d3);
  is(d3, 3, "the next slot id is 3, never a reused 1");
  is(fill_slot(b, NULL, d3, 3), KJ_OK, "slot 3 (labeled) filled");
  uint8_t k3[4] = {0, 0, 0, 3};
  ok(tu_raw_count(b, 3, "three", 5) == 1 && tu_raw_count(b, 4, k3, 4) == 1 &&
         tu_raw_count(b, 15, k3, 4) == 1 && tu_raw_count(b, 16, k3, 4) == 1 &&
         tu_raw_count(b, 17, k3, 4) == 1,
     "slot 3 has rows in tables 3, 4, 15, 16 and 17");
  /* Refill slot 2 after deleting it elsewhere is impossible; instead check
   * that deleting slot 2 leaves only slot-less rows. */
  kj_device_delete(b, NULL, d2);
  kj_device_delete(b, NULL, d3);
  kj_stats st = KJ_STATS_INIT;
  kj_store_stats(kj_backend_store(b), &st);
  is(st.rows, 1,
     "every slot deleted, labels and user records included: only the id "
     "counter remains");
  uint32_t found = 9;
  is(kj_device_find(b, NULL, "three", 5, &found), KJ_NOTFOUND,
     "the deleted slot's label finds nothing");
  free(full);
  kj_backend_close(b);
}

/* Time comes from the store clock: skipped keys get its now. */
static void test_clock_rules(void) {
  kj_backend *b = open_b(NULL, NULL);
  uint32_t d = 0;
  kj_device_create(b, NULL, &d);
  test_now_ms = 1000000;
  kj_ratchet_state *rs = kj_ratchet_state_alloc(1);
  rs->skipped[0].msg_num = 1;
  is(kj_ratchet_save(b, NULL, d, "c", 1, rs), KJ_OK, "save at t=1000 s");
  kj_free(rs);
  kj_ratchet_state *got = NULL;
  kj_ratchet_load(b, NULL, d, "c", 1, &got);
  ok(got && got->n_skipped == 1 && got->skipped[0].created_at == 1000,
     "created_at is the store clock's now (1000 s)");
  kj_free(got);
  test_now_ms = 1000000 + 61 * 1000;
  uint64_t n = 0;
  is(kj_ratchet_cleanup_skipped(b, NULL, d, 60, &n), KJ_OK, "cleanup");
  is(n, 1, "61 s later a 60 s limit removes it");
  kj_backend_close(b);
}

/* ---- the backend table ------------------------------------------------- */

/* Calls of the backend-level operations of the spy table. */
static int spy_calls;
static int spy_close(kj_backend *b) {
  (void)b;
  spy_calls++;
  return KJ_OK;
}
static const char *spy_errmsg(kj_backend *b) {
  (void)b;
  spy_calls++;
  return "spy";
}
static kj_store *spy_store(kj_backend *b) {
  (void)b;
  spy_calls++;
  return NULL;
}
static int spy_tx_begin(kj_backend *b, kj_tx **out) {
  (void)b;
  (void)out;
  spy_calls++;
  return KJ_OK;
}
static int spy_tx_commit(kj_tx *t) {
  (void)t;
  spy_calls++;
  return KJ_OK;
}
static void spy_tx_rollback(kj_tx *t) {
  (void)t;
  spy_calls++;
}

static int never_step(void *arg, const kj_ratchet_state *cur,
                      kj_ratchet_state **next) {
  (void)arg;
  (void)cur;
  (void)next;
  spy_calls++;
  return KJ_EINVAL;
}

static void refused(kj_backend *b, int rc, const char *fn, int version) {
  char want[160];
  snprintf(want, sizeof want,
           "backend native implements backend interface version %d; this "
           "library implements %d",
           version, KJ_BACKEND_VERSION);
  const char *m = kj_backend_errmsg(b);
  ok(rc == KJ_EFORMAT && strstr(m, fn) && strstr(m, want),
     "version %d: %s refused (%d, %s)", version, fn, rc, m);
}

/* Every entry point on b, whose table has the wrong version. The table's
 * store groups are the native ones on a real store: had any call reached
 * one, it would have answered KJ_OK, KJ_NOTFOUND or KJ_EINVAL, never
 * KJ_EFORMAT (an empty store has no row of a newer format). */
static void call_everything(kj_backend *b, int version) {
#define REFUSED(fn, args) refused(b, fn args, #fn, version)
  uint8_t k32[32] = {1}, k33[33] = {5};
  kj_local_identity li = {1, 32, {1}, {2}};
  void *p = NULL;
  size_t n = 0;
  int flag = 0;
  uint32_t id = 1, u = 0;
  uint64_t u64 = 0;
  kj_prekey pk = {1, 0, {(const uint8_t *)"r", 1}};
  kj_prekey_list *pl = NULL;
  kj_sync_key sk = {{(const uint8_t *)"kd", 2}, {NULL, 0}, 5};
  kj_sync_key *skp = NULL;
  kj_sync_version sv = {0};
  kj_sync_version *svp = NULL;
  kj_mutation_mac mm = {{(const uint8_t *)"i", 1}, {(const uint8_t *)"v", 1}};
  kj_blob jid = {(const uint8_t *)"j", 1};
  kj_blob_list *bl = NULL;
  kj_lid_mapping lm = {
      {(const uint8_t *)"l", 1}, {(const uint8_t *)"p", 1}, 1, 2, {NULL, 0}};
  kj_lid_mapping_list *ll = NULL;
  kj_device_list dl = {0};
  kj_device_list *dlp = NULL;
  kj_tc_token tok = {0};
  kj_tc_token *tokp = NULL;
  kj_u32_list *ul = NULL;
  kj_device_record dr = {0};
  kj_device_record *drp = NULL;
  char *path = NULL;
  kj_ratchet_state rs = {0};
  kj_ratchet_state *rsp = &rs;
  kj_tx *t = NULL;

  REFUSED(kj_identity_put, (b, NULL, 1, "a", 1, k32));
  REFUSED(kj_identity_load, (b, NULL, 1, "a", 1, k32));
  REFUSED(kj_identity_delete, (b, NULL, 1, "a", 1));
  REFUSED(kj_session_put, (b, NULL, 1, "a", 1, "r", 1));
  REFUSED(kj_session_get, (b, NULL, 1, "a", 1, &p, &n));
  REFUSED(kj_session_has, (b, NULL, 1, "a", 1, &flag));
  REFUSED(kj_session_delete, (b, NULL, 1, "a", 1));
  REFUSED(kj_prekey_store, (b, NULL, 1, 1, "r", 1, 0));
  REFUSED(kj_prekey_store_batch, (b, NULL, 1, &pk, 1, 0));
  REFUSED(kj_prekey_load, (b, NULL, 1, 1, &pl));
  REFUSED(kj_prekey_load_batch, (b, NULL, 1, &id, 1, &pl));
  REFUSED(kj_prekey_remove, (b, NULL, 1, 1));
  REFUSED(kj_prekey_mark_uploaded, (b, NULL, 1, &id, 1));
  REFUSED(kj_prekey_max_id, (b, NULL, 1, &u));
  REFUSED(kj_signed_prekey_store, (b, NULL, 1, 1, "r", 1));
  REFUSED(kj_signed_prekey_load, (b, NULL, 1, 1, &pl));
  REFUSED(kj_signed_prekey_load_all, (b, NULL, 1, &pl));
  REFUSED(kj_signed_prekey_remove, (b, NULL, 1, 1));
  REFUSED(kj_sender_key_put, (b, NULL, 1, "g", 1, "r", 1));
  REFUSED(kj_sender_key_get, (b, NULL, 1, "g", 1, &p, &n));
  REFUSED(kj_sender_key_delete, (b, NULL, 1, "g", 1));
  REFUSED(kj_sender_key_store, (b, NULL, 1, "g", 1, "r", 1, "u", 1));
  REFUSED(kj_sender_key_load, (b, NULL, 1, "g", 1, &p, &n, &p, &n));
  REFUSED(kj_identity_put_key, (b, NULL, 1, "a", 1, k32, 32));
  REFUSED(kj_identity_get_key, (b, NULL, 1, "a", 1, k33, &n));
  REFUSED(kj_local_identity_save, (b, NULL, 1, &li));
  REFUSED(kj_local_identity_load, (b, NULL, 1, &li));
  REFUSED(kj_local_identity_delete, (b, NULL, 1));
  REFUSED(kj_session_store, (b, NULL, 1, "n", 1, 2, "r", 1, NULL, 0));
  REFUSED(kj_session_load, (b, NULL, 1, "n", 1, 2, &p, &n, &p, &n));
  REFUSED(kj_session_contains, (b, NULL, 1, "n", 1, 2, &flag));
  REFUSED(kj_session_remove, (b, NULL, 1, "n", 1, 2));
  REFUSED(kj_session_list_devices, (b, NULL, 1, "n", 1, &ul));
  REFUSED(kj_session_remove_all, (b, NULL, 1, "n", 1, &u64));
  REFUSED(kj_prekey_has, (b, NULL, 1, 1, &flag));
  REFUSED(kj_signed_prekey_has, (b, NULL, 1, 1, &flag));
  REFUSED(kj_sync_key_set, (b, NULL, 1, "k", 1, &sk));
  REFUSED(kj_sync_key_get, (b, NULL, 1, "k", 1, &skp));
  REFUSED(kj_sync_key_latest, (b, NULL, 1, &p, &n));
  REFUSED(kj_sync_version_set, (b, NULL, 1, "c", 1, &sv));
  REFUSED(kj_sync_version_get, (b, NULL, 1, "c", 1, &svp));
  REFUSED(kj_mutation_mac_put, (b, NULL, 1, "c", 1, 1, &mm, 1));
  REFUSED(kj_mutation_mac_get, (b, NULL, 1, "c", 1, "i", 1, &p, &n, &u64));
  REFUSED(kj_mutation_mac_delete, (b, NULL, 1, "c", 1, &jid, 1));
  REFUSED(kj_skdm_get, (b, NULL, 1, "g", 1, &bl));
  REFUSED(kj_skdm_add, (b, NULL, 1, "g", 1, &jid, 1));
  REFUSED(kj_skdm_clear, (b, NULL, 1, "g", 1));
  REFUSED(kj_lid_put, (b, NULL, 1, &lm));
  REFUSED(kj_lid_get_by_lid, (b, NULL, 1, "l", 1, &ll));
  REFUSED(kj_lid_get_by_phone, (b, NULL, 1, "p", 1, &ll));
  REFUSED(kj_lid_get_all, (b, NULL, 1, &ll));
  REFUSED(kj_base_key_save, (b, NULL, 1, "a", 1, "m", 1, "k", 1));
  REFUSED(kj_base_key_has_same, (b, NULL, 1, "a", 1, "m", 1, "k", 1, &flag));
  REFUSED(kj_base_key_delete, (b, NULL, 1, "a", 1, "m", 1));
  REFUSED(kj_device_list_update, (b, NULL, 1, &dl));
  REFUSED(kj_device_list_get, (b, NULL, 1, "u", 1, &dlp));
  REFUSED(kj_device_list_delete, (b, NULL, 1, "u", 1));
  REFUSED(kj_sender_key_mark_forget, (b, NULL, 1, "g", 1, "p", 1));
  REFUSED(kj_sender_key_consume_forget, (b, NULL, 1, "g", 1, &bl));
  REFUSED(kj_tc_token_put, (b, NULL, 1, "j", 1, &tok));
  REFUSED(kj_tc_token_get, (b, NULL, 1, "j", 1, &tokp));
  REFUSED(kj_tc_token_delete, (b, NULL, 1, "j", 1));
  REFUSED(kj_tc_token_all_jids, (b, NULL, 1, &bl));
  REFUSED(kj_tc_token_delete_expired, (b, NULL, 1, 0, &u64));
  REFUSED(kj_device_create, (b, NULL, &u));
  REFUSED(kj_device_create_labeled, (b, NULL, "l", 1, &u));
  REFUSED(kj_device_find, (b, NULL, "l", 1, &u));
  REFUSED(kj_device_list_ids, (b, NULL, &ul));
  REFUSED(kj_device_exists, (b, NULL, 1, &flag));
  REFUSED(kj_device_save, (b, NULL, 1, &dr));
  REFUSED(kj_device_load, (b, NULL, 1, &drp));
  REFUSED(kj_device_delete, (b, NULL, 1));
  REFUSED(kj_device_snapshot_copy, (b, NULL, "x", 1, NULL, 0, &path));
  REFUSED(kj_ratchet_save, (b, NULL, 1, "c", 1, &rs));
  REFUSED(kj_ratchet_load, (b, NULL, 1, "c", 1, &rsp));
  REFUSED(kj_ratchet_exists, (b, NULL, 1, "c", 1, &flag));
  REFUSED(kj_ratchet_delete, (b, NULL, 1, "c", 1));
  REFUSED(kj_ratchet_cleanup_skipped, (b, NULL, 1, 0, &u64));
  REFUSED(kj_ratchet_step, (b, NULL, 1, "c", 1, &rsp, never_step, NULL));
  REFUSED(kj_backend_begin, (b, &t));
  ok(t == NULL, "version %d: no transaction", version);
  REFUSED(kj_backend_close, (b));
  ok(kj_backend_store(b) == NULL, "version %d: no store", version);
  refused(b, KJ_EFORMAT, "kj_backend_store", version);
  /* A transaction that claims to be of b (begun before its table
   * changed, say) is refused too. */
  kj_tx fake = {b};
  REFUSED(kj_backend_commit, (&fake));
  kj_backend_rollback(&fake);
  refused(b, KJ_EFORMAT, "kj_backend_rollback", version);
  /* Without a failing call first, errmsg still says why. */
  ok(strstr(kj_backend_errmsg(b), "interface version") != NULL,
     "version %d: errmsg explains", version);
  is(strcmp(kj_backend_name(b), "native"), 0, "version %d: name is read",
     version);
#undef REFUSED
}

static void test_backend_version(void) {
  kj_backend *b = open_b(NULL, NULL);
  uint32_t d = 0;
  is(kj_device_create(b, NULL, &d), KJ_OK, "a slot");
  char *before = tu_dump_backend(b);
  const kj_backend_ops *native = b->ops;
  int versions[] = {KJ_BACKEND_VERSION - 1, KJ_BACKEND_VERSION + 1, 0};
  for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
    kj_backend_ops wrong = *native;
    wrong.version = versions[i];
    wrong.close = spy_close;
    wrong.errmsg = spy_errmsg;
    wrong.store = spy_store;
    wrong.tx_begin = spy_tx_begin;
    wrong.tx_commit = spy_tx_commit;
    wrong.tx_rollback = spy_tx_rollback;
    spy_calls = 0;
    b->ops = &wrong;
    call_everything(b, versions[i]);
    b->ops = native;
    is(spy_calls, 0, "version %d: no operation of the backend called",
       versions[i]);
  }
  char *after = tu_dump_backend(b);
  ok(before && after && strcmp(before, after) == 0, "nothing changed");
  free(before);
  free(after);

  /* A table without operations, and a missing operation or group. */
  b->ops = NULL;
  is(kj_session_delete(b, NULL, d, "a", 1), KJ_EINVAL, "no table: EINVAL");
  ok(strstr(kj_backend_errmsg(b), "operations table") != NULL,
     "no table: said (%s)", kj_backend_errmsg(b));
  kj_backend_ops partial = *native;
  kj_signal_ops signal = *native->signal;
  signal.session_delete = NULL;
  partial.signal = &signal;
  partial.appsync = NULL;
  partial.tx_begin = NULL;
  b->ops = &partial;
  is(kj_session_delete(b, NULL, d, "a", 1), KJ_EINVAL, "NULL op: EINVAL");
  ok(strstr(kj_backend_errmsg(b), "kj_session_delete: not implemented"),
     "NULL op: not implemented (%s)", kj_backend_errmsg(b));
  is(kj_session_put(b, NULL, d, "a", 1, "r", 1), KJ_OK,
     "the rest of the group still works");
  kj_sync_key *sk = NULL;
  is(kj_sync_key_get(b, NULL, d, "k", 1, &sk), KJ_EINVAL, "NULL group: EINVAL");
  ok(strstr(kj_backend_errmsg(b), "kj_sync_key_get: not implemented"),
     "NULL group: not implemented (%s)", kj_backend_errmsg(b));
  kj_tx *t = NULL;
  is(kj_backend_begin(b, &t), KJ_EINVAL, "NULL tx_begin: EINVAL");
  ok(strstr(kj_backend_errmsg(b), "kj_backend_begin: not implemented"),
     "NULL tx_begin: not implemented (%s)", kj_backend_errmsg(b));
  b->ops = native;
  is(kj_backend_close(b), KJ_OK, "closed with its own table");
}

int main(void) {
  test_atomic_unit();
  test_failed_commit();
  test_slots();
  test_clock_rules();
  test_backend_version();
  return tap_done();
}
