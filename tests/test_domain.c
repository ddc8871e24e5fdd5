/*
 * tests/test_domain.c - rules that span the domain stores: one transaction
 * over several stores, a failed commit that leaves every store as it was,
 * slot isolation and slot deletion through the public API, and time from
 * the store clock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyjournal.h"
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
  kj_device_create(b, NULL, &d3);
  is(d3, 3, "the next slot id is 3, never a reused 1");
  /* Refill slot 2 after deleting it elsewhere is impossible; instead check
   * that deleting slot 2 leaves only slot-less rows. */
  kj_device_delete(b, NULL, d2);
  kj_device_delete(b, NULL, d3);
  kj_stats st = KJ_STATS_INIT;
  kj_store_stats(kj_backend_store(b), &st);
  is(st.rows, 1, "every slot deleted: only the id counter remains");
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

int main(void) {
  test_atomic_unit();
  test_failed_commit();
  test_slots();
  test_clock_rules();
  return tap_done();
}
