/*
 * tests/test_sqlite_backend.c - the SQLite reference backend of the oracle
 * (oracle/sqlite_backend.c, ora_sqlite_open).
 *
 * Three parts: every operation of every store once, with an assertion on
 * its result, on a ":memory:" and on a file database; what only a file
 * database has (the snapshot copy, reopening, a failing op inside and
 * outside a transaction, made to fail by a trigger added through a second
 * connection, and a damaged row); and a differential run: one fixed
 * script of varied operations (every store, a commit, a rollback, slot
 * create / delete, bad arguments) on the native memory backend and on the
 * SQLite one, whose every status and output byte must agree. A fourth part
 * checks the issue-17 additions (sessions by name and device id, user
 * records, 33-byte identity keys, the local identity, pre-key has, slot
 * labels) with the same assertions on the native backend and on SQLite.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "keyjournal.h"
#include "keyjournal/sys/backend.h"
#include "oracle.h"
#include "tap.h"
#include "testutil.h"

#define T0_MS 1700000000123LL /* the test clock starts here */

static int64_t test_clock(void *ctx) { return *(int64_t *)ctx; }

/* ---- a string builder for canonical outputs ----------------------------- */

typedef tu_buf sb;

/* Bytes as hex; a NULL pointer is "~", so that an empty blob returned as
 * NULL differs from one returned as a real pointer. */
static void sb_hex(sb *s, const void *p, size_t n) {
  if (!p) {
    tu_buf_addf(s, "~%zu", n);
    return;
  }
  tu_buf_addf(s, "[");
  for (size_t i = 0; i < n; i++)
    tu_buf_addf(s, "%02x", ((const uint8_t *)p)[i]);
  tu_buf_addf(s, "]");
}

static void sb_blob(sb *s, kj_blob b) { sb_hex(s, b.p, b.len); }

/* A space, then the blob. */
static void sb_sp_blob(sb *s, kj_blob b) {
  tu_buf_addf(s, " ");
  sb_blob(s, b);
}

/* ---- canonical text of every output type -------------------------------- */

/* Each f_ prints a result that is there (OUTL skips a NULL one). */
static void f_prekeys(sb *s, const kj_prekey_list *l) {
  tu_buf_addf(s, " n=%zu", l->n);
  for (size_t i = 0; i < l->n; i++) {
    tu_buf_addf(s, " {%u,%d,", l->v[i].id, l->v[i].uploaded);
    sb_blob(s, l->v[i].record);
    tu_buf_addf(s, "}");
  }
}

static void f_blobs(sb *s, const kj_blob_list *l) {
  tu_buf_addf(s, " n=%zu", l->n);
  for (size_t i = 0; i < l->n; i++)
    sb_sp_blob(s, l->v[i]);
}

static void f_lids(sb *s, const kj_lid_mapping_list *l) {
  tu_buf_addf(s, " n=%zu", l->n);
  for (size_t i = 0; i < l->n; i++) {
    tu_buf_addf(s, " {");
    sb_blob(s, l->v[i].lid);
    sb_blob(s, l->v[i].phone);
    tu_buf_addf(s, ",%lld,%lld,", (long long)l->v[i].created_at,
                (long long)l->v[i].updated_at);
    sb_blob(s, l->v[i].source);
    tu_buf_addf(s, "}");
  }
}

static void f_sync_key(sb *s, const kj_sync_key *k) {
  sb_sp_blob(s, k->key_data);
  sb_blob(s, k->fingerprint);
  tu_buf_addf(s, " ts=%lld", (long long)k->timestamp);
}

static void f_version(sb *s, const kj_sync_version *v) {
  tu_buf_addf(s, " v=%llu hash=", (unsigned long long)v->version);
  sb_hex(s, v->hash, sizeof v->hash);
  tu_buf_addf(s, " n=%zu entries=%s", v->n, v->entries ? "ptr" : "NULL");
  for (size_t i = 0; i < v->n; i++) {
    sb_sp_blob(s, v->entries[i].name);
    tu_buf_addf(s, "=");
    sb_blob(s, v->entries[i].value);
  }
}

static void f_devlist(sb *s, const kj_device_list *d) {
  tu_buf_addf(s, " user=");
  sb_blob(s, d->user);
  tu_buf_addf(s, " ts=%lld phash=%d", (long long)d->timestamp, d->has_phash);
  sb_blob(s, d->phash);
  tu_buf_addf(s, " n=%zu devices=%s", d->n, d->devices ? "ptr" : "NULL");
  for (size_t i = 0; i < d->n; i++)
    tu_buf_addf(s, " (%u,%d,%u)", d->devices[i].device_id,
                d->devices[i].has_key_index, d->devices[i].key_index);
}

static void f_token(sb *s, const kj_tc_token *t) {
  sb_sp_blob(s, t->token);
  tu_buf_addf(s, " ts=%lld sender=%d,%lld", (long long)t->token_ts,
              t->has_sender_ts, (long long)t->sender_ts);
}

static void f_record(sb *s, const kj_device_record *r) {
  const struct {
    int has;
    kj_blob v;
  } opt[] = {{r->has_phone_jid, r->phone_jid},
             {r->has_lid, r->lid},
             {r->has_account, r->account},
             {1, r->push_name},
             {r->has_edge_routing, r->edge_routing},
             {r->has_props_hash, r->props_hash}};
  for (size_t i = 0; i < sizeof opt / sizeof opt[0]; i++) {
    tu_buf_addf(s, " %d", opt[i].has);
    sb_blob(s, opt[i].v);
  }
  tu_buf_addf(s, " reg=%u spk=%u app=%u.%u.%u at=%lld ", r->registration_id,
              r->signed_prekey_id, r->app_version[0], r->app_version[1],
              r->app_version[2], (long long)r->app_version_fetched_at_ms);
  const uint8_t *k[] = {r->noise_pub,         r->noise_priv,
                        r->identity_pub,      r->identity_priv,
                        r->signed_prekey_pub, r->signed_prekey_priv,
                        r->adv_secret};
  for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
    sb_hex(s, k[i], 32);
  sb_hex(s, r->signed_prekey_sig, 64);
}

static void f_ratchet(sb *s, const kj_ratchet_state *st) {
  tu_buf_addf(s, " root=");
  sb_hex(s, st->root_key, 32);
  tu_buf_addf(s, " send=%d", st->has_sending_chain);
  sb_hex(s, st->sending_chain, 32);
  tu_buf_addf(s, " recv=%d", st->has_receiving_chain);
  sb_hex(s, st->receiving_chain, 32);
  tu_buf_addf(s, " self=");
  sb_hex(s, st->dh_self_secret, 32);
  tu_buf_addf(s, " remote=%d", st->has_dh_remote);
  sb_hex(s, st->dh_remote, 32);
  tu_buf_addf(s, " ctr=%u,%u,%u n=%zu skipped=%s", st->msg_send, st->msg_recv,
              st->prev_chain_len, st->n_skipped, st->skipped ? "ptr" : "NULL");
  for (size_t i = 0; i < st->n_skipped; i++) {
    tu_buf_addf(s, " {");
    sb_hex(s, st->skipped[i].public_key, 4);
    tu_buf_addf(s, ",%u,", st->skipped[i].msg_num);
    sb_hex(s, st->skipped[i].message_key, 4);
    tu_buf_addf(s, ",%lld}", (long long)st->skipped[i].created_at);
  }
}

static void f_u32s(sb *s, const kj_u32_list *l) {
  tu_buf_addf(s, " n=%zu", l->n);
  for (size_t i = 0; i < l->n; i++)
    tu_buf_addf(s, " %u", l->v[i]);
}

/* ---- fixtures ------------------------------------------------------------ */

static void make_record(kj_device_record *r, uint8_t seed) {
  memset(r, 0, sizeof *r);
  r->has_phone_jid = 1;
  r->phone_jid = (kj_blob){(const uint8_t *)"123@s.whatsapp.net", 18};
  r->has_lid = 1;
  r->lid = (kj_blob){(const uint8_t *)"", 0}; /* present but empty */
  r->registration_id = 4242u + seed;
  tu_device_keys(r, seed);
  r->signed_prekey_id = 77;
  r->has_account = 0;
  r->push_name = (kj_blob){(const uint8_t *)"", 0};
  r->app_version[0] = 2;
  r->app_version[1] = 3000;
  r->app_version[2] = UINT32_MAX;
  r->app_version_fetched_at_ms = -5;
  r->has_edge_routing = 1;
  r->edge_routing = (kj_blob){(const uint8_t *)"\x00\x01\x02", 3};
  r->has_props_hash = 0;
}

static kj_ratchet_state *make_state(size_t n, uint8_t seed) {
  kj_ratchet_state *s = kj_ratchet_state_alloc(n);
  if (!s)
    abort();
  tu_fill(s->root_key, 32, seed);
  s->has_sending_chain = 1;
  tu_fill(s->sending_chain, 32, seed + 1);
  s->has_receiving_chain = 0;
  tu_fill(s->receiving_chain, 32, 0x55); /* absent: must read back as zeros */
  tu_fill(s->dh_self_secret, 32, seed + 2);
  s->has_dh_remote = 1;
  tu_fill(s->dh_remote, 32, seed + 3);
  s->msg_send = 3;
  s->msg_recv = 9;
  s->prev_chain_len = UINT32_MAX;
  return s;
}

static void set_skipped(kj_skipped_key *k, uint8_t pk, uint32_t num,
                        uint8_t mk) {
  memset(k->public_key, pk, 32);
  k->msg_num = num;
  memset(k->message_key, mk, 32);
  k->created_at = 123456; /* ignored on save */
}

static kj_backend *open_native(int64_t *clk) {
  kj_options o;
  tu_options(&o);
  o.clock = test_clock;
  o.clock_ctx = clk;
  return tu_backend_open(NULL, &o);
}

static kj_backend *open_sqlite(const char *path, int64_t *clk) {
  kj_backend *b = NULL;
  char *em = NULL;
  int rc = ora_sqlite_open(path, 0, test_clock, clk, &b, &em);
  if (rc)
    printf("# ora_sqlite_open(%s): %d %s\n", path, rc, em ? em : "");
  kj_free(em);
  return b;
}

/* ---- part 1: every operation once ---------------------------------------- */

#define A(s) (s), (sizeof(s) - 1)

/* Checks of every_op(): call returns want (KJ_OK, KJ_NOTFOUND), described
 * as "<what>: <desc>". */
#define IS_RC(call, want, desc) is(call, want, "%s: " desc, what)
#define IS_OK(call, desc) IS_RC(call, KJ_OK, desc)
#define IS_GONE(call, desc) IS_RC(call, KJ_NOTFOUND, desc)

static void every_op(kj_backend *b, int64_t *clk, const char *what) {
  uint32_t d1 = 0, d2 = 0;
  IS_OK(kj_device_create(b, NULL, &d1), "create");
  is(d1, 1, "%s: first slot is 1", what);
  IS_OK(kj_device_create(b, NULL, &d2), "create again");
  is(d2, 2, "%s: second slot is 2", what);
  ok(!strcmp(kj_backend_name(b), "sqlite"), "%s: name", what);
  ok(kj_backend_store(b) == NULL, "%s: no engine store", what);

  /* signal */
  uint8_t key[32], got[32];
  tu_fill(key, 32, 9);
  memset(got, 0, sizeof got);
  IS_OK(kj_identity_put(b, NULL, d1, A("alice"), key), "identity_put");
  ok(kj_identity_load(b, NULL, d1, A("alice"), got) == KJ_OK &&
         !memcmp(got, key, 32),
     "%s: identity_load returns the key", what);
  IS_GONE(kj_identity_load(b, NULL, d2, A("alice"), got),
          "identity invisible in another slot");
  IS_GONE(kj_identity_put(b, NULL, 9, A("alice"), key),
          "identity_put to a missing slot");
  IS_OK(kj_identity_delete(b, NULL, d1, A("alice")), "identity_delete");
  IS_GONE(kj_identity_load(b, NULL, d1, A("alice"), got), "identity gone");

  void *rec = NULL;
  size_t rlen = 0;
  int has = -1;
  IS_OK(kj_session_put(b, NULL, d1, A("bob"), A("sess1")), "session_put");
  ok(kj_session_get(b, NULL, d1, A("bob"), &rec, &rlen) == KJ_OK && rlen == 5 &&
         !memcmp(rec, "sess1", 5),
     "%s: session_get", what);
  kj_free(rec);
  ok(kj_session_has(b, NULL, d1, A("bob"), &has) == KJ_OK && has == 1,
     "%s: session_has yes", what);
  IS_OK(kj_session_delete(b, NULL, d1, A("bob")), "session_delete");
  ok(kj_session_has(b, NULL, d1, A("bob"), &has) == KJ_OK && has == 0,
     "%s: session_has no", what);

  kj_prekey_list *pl = NULL;
  IS_OK(kj_prekey_store(b, NULL, d1, 10, A("pk10"), 0), "prekey_store");
  kj_prekey batch[3] = {{5, 0, {(const uint8_t *)"a", 1}},
                        {20, 0, {(const uint8_t *)"b", 1}},
                        {5, 0, {(const uint8_t *)"c", 1}}};
  IS_OK(kj_prekey_store_batch(b, NULL, d1, batch, 3, 1), "prekey_store_batch");
  ok(kj_prekey_load(b, NULL, d1, 5, &pl) == KJ_OK && pl->n == 1 &&
         pl->v[0].record.len == 1 && pl->v[0].record.p[0] == 'c' &&
         pl->v[0].uploaded == 1,
     "%s: prekey_load: the last duplicate won", what);
  kj_free(pl);
  uint32_t ids[] = {20, 99, 5, 20};
  ok(kj_prekey_load_batch(b, NULL, d1, ids, 4, &pl) == KJ_OK && pl->n == 2 &&
         pl->v[0].id == 5 && pl->v[1].id == 20,
     "%s: prekey_load_batch: existing ids ascending, once", what);
  kj_free(pl);
  uint32_t up[] = {10, 11};
  IS_OK(kj_prekey_mark_uploaded(b, NULL, d1, up, 2), "prekey_mark_uploaded");
  ok(kj_prekey_load(b, NULL, d1, 10, &pl) == KJ_OK && pl->v[0].uploaded == 1,
     "%s: marked uploaded", what);
  kj_free(pl);
  IS_GONE(kj_prekey_load(b, NULL, d1, 11, &pl),
          "mark_uploaded did not resurrect");
  uint32_t mx = 0;
  ok(kj_prekey_max_id(b, NULL, d1, &mx) == KJ_OK && mx == 20,
     "%s: prekey_max_id", what);
  IS_OK(kj_prekey_remove(b, NULL, d1, 20), "prekey_remove");
  ok(kj_prekey_max_id(b, NULL, d1, &mx) == KJ_OK && mx == 10,
     "%s: max after remove", what);
  ok(kj_prekey_max_id(b, NULL, d2, &mx) == KJ_OK && mx == 0,
     "%s: max of an empty slot is 0", what);

  IS_OK(kj_signed_prekey_store(b, NULL, d1, 300, A("s300")),
        "signed_prekey_store");
  IS_OK(kj_signed_prekey_store(b, NULL, d1, 4, A("s4")),
        "signed_prekey_store 2");
  ok(kj_signed_prekey_load(b, NULL, d1, 4, &pl) == KJ_OK && pl->n == 1 &&
         pl->v[0].uploaded == 0 && pl->v[0].record.len == 2,
     "%s: signed_prekey_load", what);
  kj_free(pl);
  ok(kj_signed_prekey_load_all(b, NULL, d1, &pl) == KJ_OK && pl->n == 2 &&
         pl->v[0].id == 4 && pl->v[1].id == 300,
     "%s: signed_prekey_load_all numeric order", what);
  kj_free(pl);
  IS_OK(kj_signed_prekey_remove(b, NULL, d1, 4), "signed_prekey_remove");
  IS_GONE(kj_signed_prekey_load(b, NULL, d1, 4, &pl), "signed pre-key gone");

  IS_OK(kj_sender_key_put(b, NULL, d1, A("grp::bob"), A("skrec")),
        "sender_key_put");
  ok(kj_sender_key_get(b, NULL, d1, A("grp::bob"), &rec, &rlen) == KJ_OK &&
         rlen == 5,
     "%s: sender_key_get", what);
  kj_free(rec);
  IS_OK(kj_sender_key_delete(b, NULL, d1, A("grp::bob")), "sender_key_delete");
  IS_GONE(kj_sender_key_get(b, NULL, d1, A("grp::bob"), &rec, &rlen),
          "sender key gone");

  /* app-state sync */
  kj_sync_key sk = {{(const uint8_t *)"kd", 2}, {(const uint8_t *)"", 0}, 900};
  kj_sync_key *skp = NULL;
  IS_OK(kj_sync_key_set(b, NULL, d1, A("idB"), &sk), "sync_key_set");
  sk.timestamp = 1;
  IS_OK(kj_sync_key_set(b, NULL, d1, A("idA"), &sk), "sync_key_set 2");
  ok(kj_sync_key_get(b, NULL, d1, A("idA"), &skp) == KJ_OK &&
         skp->timestamp == 1 && skp->fingerprint.p != NULL &&
         skp->fingerprint.len == 0,
     "%s: sync_key_get (empty fingerprint is a real pointer)", what);
  kj_free(skp);
  ok(kj_sync_key_latest(b, NULL, d1, &rec, &rlen) == KJ_OK && rlen == 3 &&
         !memcmp(rec, "idA", 3),
     "%s: sync_key_latest is the last set, not the newest timestamp", what);
  kj_free(rec);
  kj_sync_version *sv = NULL;
  ok(kj_sync_version_get(b, NULL, d1, A("coll"), &sv) == KJ_OK &&
         sv->version == 0 && sv->n == 0,
     "%s: sync_version_get of unknown is the zero state", what);
  kj_free(sv);
  kj_sync_entry ents[2] = {
      {{(const uint8_t *)"zz", 2}, {(const uint8_t *)"v", 1}},
      {{(const uint8_t *)"a", 1}, {(const uint8_t *)"", 0}}};
  kj_sync_version v = {.version = UINT64_MAX, .n = 2, .entries = ents};
  memset(v.hash, 0xab, sizeof v.hash);
  IS_OK(kj_sync_version_set(b, NULL, d1, A("coll"), &v), "sync_version_set");
  ok(kj_sync_version_get(b, NULL, d1, A("coll"), &sv) == KJ_OK &&
         sv->version == UINT64_MAX && sv->n == 2 &&
         sv->entries[0].name.len == 1 && sv->entries[1].name.len == 2 &&
         sv->hash[127] == 0xab,
     "%s: sync_version_get: u64 max and entries ascending", what);
  kj_free(sv);
  kj_mutation_mac macs[2] = {
      {{(const uint8_t *)"i1", 2}, {(const uint8_t *)"v1", 2}},
      {{(const uint8_t *)"i2", 2}, {(const uint8_t *)"v2", 2}}};
  uint64_t ver = 0;
  IS_OK(kj_mutation_mac_put(b, NULL, d1, A("coll"), 7, macs, 2),
        "mutation_mac_put");
  ok(kj_mutation_mac_get(b, NULL, d1, A("coll"), A("i2"), &rec, &rlen, &ver) ==
             KJ_OK &&
         ver == 7 && rlen == 2 && !memcmp(rec, "v2", 2),
     "%s: mutation_mac_get", what);
  kj_free(rec);
  kj_blob del[1] = {{(const uint8_t *)"i2", 2}};
  IS_OK(kj_mutation_mac_delete(b, NULL, d1, A("coll"), del, 1),
        "mutation_mac_delete");
  IS_GONE(
      kj_mutation_mac_get(b, NULL, d1, A("coll"), A("i2"), &rec, &rlen, NULL),
      "mac gone");

  /* protocol */
  kj_blob_list *bl = NULL;
  kj_blob jids[2] = {{(const uint8_t *)"j2", 2}, {(const uint8_t *)"j1", 2}};
  IS_OK(kj_skdm_add(b, NULL, d1, A("g"), jids, 2), "skdm_add");
  ok(kj_skdm_get(b, NULL, d1, A("g"), &bl) == KJ_OK && bl->n == 2 &&
         bl->v[0].p[1] == '1',
     "%s: skdm_get ascending", what);
  kj_free(bl);
  IS_OK(kj_skdm_clear(b, NULL, d1, A("g")), "skdm_clear");
  ok(kj_skdm_get(b, NULL, d1, A("g"), &bl) == KJ_OK && bl->n == 0,
     "%s: skdm empty after clear", what);
  kj_free(bl);

  kj_lid_mapping m = {{(const uint8_t *)"L1", 2},
                      {(const uint8_t *)"P", 1},
                      10,
                      20,
                      {(const uint8_t *)"s", 1}};
  kj_lid_mapping_list *ll = NULL;
  IS_OK(kj_lid_put(b, NULL, d1, &m), "lid_put");
  m.created_at = 99;
  m.updated_at = 30;
  IS_OK(kj_lid_put(b, NULL, d1, &m), "lid_put update");
  ok(kj_lid_get_by_lid(b, NULL, d1, A("L1"), &ll) == KJ_OK && ll->n == 1 &&
         ll->v[0].created_at == 10 && ll->v[0].updated_at == 30,
     "%s: lid_get_by_lid: update kept created_at", what);
  kj_free(ll);
  m.lid = (kj_blob){(const uint8_t *)"L0", 2};
  IS_OK(kj_lid_put(b, NULL, d1, &m), "lid_put L0");
  ok(kj_lid_get_by_phone(b, NULL, d1, A("P"), &ll) == KJ_OK && ll->n == 1 &&
         ll->v[0].lid.p[1] == '0',
     "%s: lid_get_by_phone: tie goes to the smallest lid", what);
  kj_free(ll);
  ok(kj_lid_get_all(b, NULL, d1, &ll) == KJ_OK && ll->n == 2, "%s: lid_get_all",
     what);
  kj_free(ll);

  int same = -1;
  IS_OK(kj_base_key_save(b, NULL, d1, A("addr"), A("m1"), A("bk")),
        "base_key_save");
  ok(kj_base_key_has_same(b, NULL, d1, A("addr"), A("m1"), A("bk"), &same) ==
             KJ_OK &&
         same == 1,
     "%s: base_key_has_same", what);
  IS_OK(kj_base_key_delete(b, NULL, d1, A("addr"), A("m1")), "base_key_delete");
  ok(kj_base_key_has_same(b, NULL, d1, A("addr"), A("m1"), A("bk"), &same) ==
             KJ_OK &&
         same == 0,
     "%s: base key gone", what);

  kj_device_entry de[2] = {{9, 0, 0}, {3, 1, 44}};
  kj_device_list dl = {{(const uint8_t *)"u", 1}, 5, 0, {NULL, 0}, 2, de};
  kj_device_list *dlp = NULL;
  IS_OK(kj_device_list_update(b, NULL, d1, &dl), "device_list_update");
  ok(kj_device_list_get(b, NULL, d1, A("u"), &dlp) == KJ_OK && dlp->n == 2 &&
         dlp->devices[0].device_id == 9 && dlp->devices[1].key_index == 44 &&
         !dlp->has_phash,
     "%s: device_list_get keeps the given order", what);
  kj_free(dlp);
  IS_OK(kj_device_list_delete(b, NULL, d1, A("u")), "device_list_delete");
  IS_GONE(kj_device_list_get(b, NULL, d1, A("u"), &dlp), "device list gone");

  IS_OK(kj_sender_key_mark_forget(b, NULL, d1, A("g"), A("p2")), "mark_forget");
  IS_OK(kj_sender_key_mark_forget(b, NULL, d1, A("g"), A("p1")),
        "mark_forget 2");
  ok(kj_sender_key_consume_forget(b, NULL, d1, A("g"), &bl) == KJ_OK &&
         bl->n == 2 && bl->v[0].p[1] == '1',
     "%s: consume_forget ascending", what);
  kj_free(bl);
  ok(kj_sender_key_consume_forget(b, NULL, d1, A("g"), &bl) == KJ_OK &&
         bl->n == 0,
     "%s: consume_forget took them", what);
  kj_free(bl);

  kj_tc_token tok = {{(const uint8_t *)"tk", 2}, 100, 1, -7};
  kj_tc_token *tp = NULL;
  IS_OK(kj_tc_token_put(b, NULL, d1, A("jid1"), &tok), "tc_token_put");
  tok.token_ts = 300;
  IS_OK(kj_tc_token_put(b, NULL, d1, A("jid2"), &tok), "tc_token_put 2");
  ok(kj_tc_token_get(b, NULL, d1, A("jid1"), &tp) == KJ_OK &&
         tp->sender_ts == -7 && tp->has_sender_ts == 1,
     "%s: tc_token_get", what);
  kj_free(tp);
  ok(kj_tc_token_all_jids(b, NULL, d1, &bl) == KJ_OK && bl->n == 2,
     "%s: tc_token_all_jids", what);
  kj_free(bl);
  uint64_t removed = 0;
  ok(kj_tc_token_delete_expired(b, NULL, d1, 200, &removed) == KJ_OK &&
         removed == 1,
     "%s: tc_token_delete_expired counts", what);
  IS_OK(kj_tc_token_delete(b, NULL, d1, A("jid2")), "tc_token_delete");
  IS_GONE(kj_tc_token_get(b, NULL, d1, A("jid2"), &tp), "token gone");

  /* ratchet */
  kj_ratchet_state *st = make_state(2, 1), *ld = NULL;
  set_skipped(&st->skipped[0], 2, 1, 1);
  set_skipped(&st->skipped[1], 1, 5, 1);
  IS_OK(kj_ratchet_save(b, NULL, d1, A("conv"), st), "ratchet_save");
  *clk += 10500;
  set_skipped(&st->skipped[0], 3, 0, 1); /* new; (1,5) stays */
  IS_OK(kj_ratchet_save(b, NULL, d1, A("conv"), st), "ratchet_save 2");
  ok(kj_ratchet_load(b, NULL, d1, A("conv"), &ld) == KJ_OK &&
         ld->n_skipped == 2 && ld->skipped[0].public_key[0] == 1 &&
         ld->skipped[0].created_at == T0_MS / 1000 &&
         ld->skipped[1].created_at == (T0_MS + 10500) / 1000 &&
         ld->has_receiving_chain == 0 && ld->receiving_chain[0] == 0,
     "%s: ratchet_load: kept key kept created_at, new one got now", what);
  kj_free(ld);
  int ex = -1;
  ok(kj_ratchet_exists(b, NULL, d1, A("conv"), &ex) == KJ_OK && ex == 1,
     "%s: ratchet_exists", what);
  ok(kj_ratchet_cleanup_skipped(b, NULL, d1, 5, &removed) == KJ_OK &&
         removed == 1,
     "%s: ratchet_cleanup_skipped removed the old key", what);
  IS_OK(kj_ratchet_delete(b, NULL, d1, A("conv")), "ratchet_delete");
  IS_GONE(kj_ratchet_load(b, NULL, d1, A("conv"), &ld), "ratchet gone");
  kj_free(st);

  /* device store */
  kj_device_record r, *rp = NULL;
  make_record(&r, 3);
  IS_GONE(kj_device_load(b, NULL, d1, &rp), "device_load before save");
  IS_OK(kj_device_save(b, NULL, d1, &r), "device_save");
  ok(kj_device_load(b, NULL, d1, &rp) == KJ_OK && rp->has_lid &&
         rp->lid.p != NULL && rp->lid.len == 0 && !rp->has_account &&
         rp->account.p == NULL && rp->app_version[2] == UINT32_MAX &&
         !memcmp(rp->signed_prekey_sig, r.signed_prekey_sig, 64),
     "%s: device_load", what);
  kj_free(rp);
  IS_GONE(kj_device_save(b, NULL, 7, &r), "device_save of a missing slot");
  ok(kj_device_exists(b, NULL, d2, &ex) == KJ_OK && ex == 1,
     "%s: device_exists", what);
  kj_u32_list *ul = NULL;
  ok(kj_device_list_ids(b, NULL, &ul) == KJ_OK && ul->n == 2 && ul->v[1] == 2,
     "%s: device_list_ids", what);
  kj_free(ul);
  IS_OK(kj_session_put(b, NULL, d2, A("x"), A("y")), "a row in slot 2");
  IS_OK(kj_device_delete(b, NULL, d2), "device_delete");
  ok(kj_session_has(b, NULL, d2, A("x"), &has) == KJ_OK && has == 0,
     "%s: slot rows went with it", what);
  uint32_t d3 = 0;
  ok(kj_device_create(b, NULL, &d3) == KJ_OK && d3 == 3,
     "%s: ids are never reused", what);

  /* transactions */
  kj_tx *t = NULL;
  IS_OK(kj_backend_begin(b, &t), "tx_begin");
  IS_OK(kj_session_put(b, t, d3, A("t1"), A("v")), "put in tx");
  IS_OK(kj_backend_commit(t), "tx_commit");
  ok(kj_session_has(b, NULL, d3, A("t1"), &has) == KJ_OK && has == 1,
     "%s: committed", what);
  IS_OK(kj_backend_begin(b, &t), "tx_begin 2");
  IS_OK(kj_session_put(b, t, d3, A("t2"), A("v")), "put in tx 2");
  kj_backend_rollback(t);
  ok(kj_session_has(b, NULL, d3, A("t2"), &has) == KJ_OK && has == 0,
     "%s: rolled back", what);
}

#undef IS_OK
#undef IS_GONE
#undef IS_RC

/* ---- part 2: what a file database has ------------------------------------ */

static void exec_side(const char *path, const char *sql) {
  sqlite3 *db = NULL;
  int r = sqlite3_open(path, &db);
  if (r == SQLITE_OK)
    r = sqlite3_exec(db, sql, NULL, NULL, NULL);
  if (r != SQLITE_OK)
    printf("# side connection: %s\n", sqlite3_errmsg(db));
  sqlite3_close(db);
}

static void file_only(const char *dir) {
  int64_t clk = T0_MS;
  char *path = tu_path(dir, "ref.db");
  kj_backend *b = open_sqlite(path, &clk);
  ok(b != NULL, "file: open");
  if (!b) {
    free(path);
    return;
  }
  uint32_t d = 0;
  kj_device_create(b, NULL, &d);
  is(kj_session_put(b, NULL, d, A("keep"), A("v")), KJ_OK, "file: a row");

  /* snapshot copy */
  char *cp = NULL;
  is(kj_device_snapshot_copy(b, NULL, A("../evil/.x y"), A("EXTRA"), &cp),
     KJ_OK, "file: snapshot_copy");
  char *want = NULL;
  if (cp) {
    size_t wl = strlen(dir) + 64;
    want = malloc(wl);
    snprintf(want, wl, "%s/copies/_._evil_.x_y.db", dir);
  }
  ok(cp && want && !strcmp(cp, want),
     "file: copy path is copies/<sanitised label>.db (%s)", cp ? cp : "");
  if (cp) {
    size_t xl = strlen(cp) + 8, n = 0;
    char *x = malloc(xl);
    snprintf(x, xl, "%s.extra", cp);
    char *data = tu_read_file(x, &n);
    ok(data && n == 5 && !memcmp(data, "EXTRA", 5), "file: extra bytes");
    free(data);
    free(x);
    int64_t c2 = T0_MS;
    kj_backend *cb = open_sqlite(cp, &c2);
    int has = 0;
    ok(cb && kj_session_has(cb, NULL, d, A("keep"), &has) == KJ_OK && has == 1,
       "file: the copy opens and holds the row");
    kj_backend_close(cb);
  }
  char *cp2 = NULL;
  is(kj_device_snapshot_copy(b, NULL, A("../evil/.x y"), NULL, 0, &cp2),
     KJ_EEXIST, "file: same label again is KJ_EEXIST");
  ok(cp2 == NULL, "file: no path on failure");
  /* Inside a transaction the copy is the committed state. */
  kj_tx *t = NULL;
  kj_backend_begin(b, &t);
  kj_session_put(b, t, d, A("uncommitted"), A("v"));
  is(kj_device_snapshot_copy(b, t, NULL, 0, NULL, 0, &cp2), KJ_OK,
     "file: snapshot_copy inside a tx");
  kj_backend_rollback(t);
  if (cp2) {
    size_t pl = strlen(cp2);
    ok(pl > 8 && !strcmp(cp2 + pl - 8, "/copy.db"),
       "file: empty label is \"copy\"");
    int64_t c2 = T0_MS;
    kj_backend *cb = open_sqlite(cp2, &c2);
    int has = 1;
    ok(cb && kj_session_has(cb, NULL, d, A("uncommitted"), &has) == KJ_OK &&
           has == 0,
       "file: the copy does not hold the open tx's row");
    kj_backend_close(cb);
  }
  free(cp);
  free(cp2);
  free(want);

  /* A failing op (a trigger aborts the second insert of a batch) changes
   * nothing, alone or inside a tx whose other work then commits. */
  exec_side(path, "CREATE TRIGGER boom BEFORE INSERT ON prekeys"
                  " WHEN NEW.id = 13 BEGIN SELECT RAISE(ABORT, 'boom'); END;");
  kj_prekey batch[2] = {{12, 0, {(const uint8_t *)"a", 1}},
                        {13, 0, {(const uint8_t *)"b", 1}}};
  kj_prekey_list *pl = NULL;
  int rc = kj_prekey_store_batch(b, NULL, d, batch, 2, 0);
  ok(rc < 0, "file: batch made to fail fails (%d: %s)", rc,
     kj_backend_errmsg(b));
  is(kj_prekey_load(b, NULL, d, 12, &pl), KJ_NOTFOUND,
     "file: failed batch stored nothing");
  is(kj_backend_begin(b, &t), KJ_OK, "file: tx_begin");
  is(kj_session_put(b, t, d, A("before"), A("v")), KJ_OK, "file: op in tx");
  ok(kj_prekey_store_batch(b, t, d, batch, 2, 0) < 0,
     "file: failing op in tx fails");
  is(kj_session_put(b, t, d, A("after"), A("v")), KJ_OK,
     "file: tx goes on after a failed op");
  is(kj_backend_commit(t), KJ_OK, "file: commit");
  int has = 0;
  ok(kj_session_has(b, NULL, d, A("before"), &has) == KJ_OK && has == 1 &&
         kj_session_has(b, NULL, d, A("after"), &has) == KJ_OK && has == 1,
     "file: the tx's good ops committed");
  is(kj_prekey_load(b, NULL, d, 12, &pl), KJ_NOTFOUND,
     "file: the failed op left nothing in the tx");
  exec_side(path, "DROP TRIGGER boom;");

  /* A damaged row is KJ_ECORRUPT and leaves the output alone. */
  uint8_t key[32], out[32];
  tu_fill(key, 32, 1);
  memset(out, 0xee, sizeof out);
  kj_identity_put(b, NULL, d, A("dmg"), key);
  exec_side(path, "UPDATE identity_keys SET public_key=x'0102';");
  is(kj_identity_load(b, NULL, d, A("dmg"), out), KJ_ECORRUPT,
     "file: damaged identity key");
  ok(out[0] == 0xee && out[31] == 0xee, "file: key_out untouched");

  /* Reopen: rows and the slot counter survive. */
  is(kj_backend_close(b), KJ_OK, "file: close");
  b = open_sqlite(path, &clk);
  ok(b && kj_session_has(b, NULL, d, A("keep"), &has) == KJ_OK && has == 1,
     "file: reopened with the rows");
  kj_device_delete(b, NULL, d);
  uint32_t d2 = 0;
  rc = kj_device_create(b, NULL, &d2);
  ok(rc == KJ_OK && d2 == d + 1,
     "file: the counter survived the reopen and a delete (%u)", d2);
  /* The last id is held back, as native: the counter never wraps to 0. */
  exec_side(path, "UPDATE meta SET value=4294967294"
                  " WHERE name='next_device_id';");
  rc = kj_device_create(b, NULL, &d2);
  ok(rc == KJ_OK && d2 == UINT32_MAX - 1, "file: slot 2^32-2 (%d, %u)", rc, d2);
  is(kj_device_create(b, NULL, &d2), KJ_ENOSPC,
     "file: no slot 2^32-1: KJ_ENOSPC");
  kj_backend_close(b);

  /* memory: no copy */
  b = open_sqlite(":memory:", &clk);
  is(kj_device_snapshot_copy(b, NULL, A("x"), NULL, 0, &cp), KJ_EINVAL,
     "memory: snapshot_copy is KJ_EINVAL");
  kj_backend_close(b);
  kj_backend *bad = NULL;
  char *em = NULL;
  char *nodir = tu_path(dir, "no/such/dir/x.db");
  rc = ora_sqlite_open(nodir, 0, NULL, NULL, &bad, &em);
  ok(rc == KJ_EIO && !bad && em,
     "open in a missing directory: KJ_EIO with a message (%s)", em ? em : "");
  kj_free(em);
  free(nodir);
  free(path);
}

/* ---- part 3: the differential script ------------------------------------ */

typedef struct lines {
  char **v;
  size_t n, cap;
} lines;

static void emit(lines *l, sb *s) {
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 128;
    l->v = realloc(l->v, l->cap * sizeof *l->v);
    if (!l->v)
      abort();
  }
  l->v[l->n++] = tu_buf_take(s);
}

static void lines_free(lines *l) {
  for (size_t i = 0; i < l->n; i++)
    free(l->v[i]);
  free(l->v);
}

/* One result line: the call's name, the status of call_ (kept in rc) and
 * its outputs. */
#define R(call_, ...)                                                          \
  do {                                                                         \
    rc = (call_);                                                              \
    tu_buf_addf(&s, "%s rc=%d", name, rc);                                     \
    __VA_ARGS__;                                                               \
    emit(out, &s);                                                             \
  } while (0)

#define CALL(label_) name = (label_)

/* A record and user record of a successful load, both freed. */
static void out_vu(sb *s, int rc, void **v, size_t vl, void **u, size_t ul) {
  if (!rc) {
    sb_hex(s, *v, vl);
    sb_hex(s, *u, ul);
  }
  kj_free(*v);
  kj_free(*u);
  *v = *u = NULL;
}

static void out_local(sb *s, const kj_local_identity *li) {
  tu_buf_addf(s, " %u %zu", li->registration_id, li->public_len);
  sb_hex(s, li->public_key, sizeof li->public_key);
  sb_hex(s, li->private_key, sizeof li->private_key);
}

/* The script: the same calls, in the same order, whatever they return
 * (the slot ids used are those of the script's own creates). */
static void script(kj_backend *b, int64_t *clk, lines *out) {
  sb s = {0};
  const char *name;
  int rc;
  uint32_t c1 = 0, c2 = 0, c3 = 0, cx = 0;
  void *v = NULL;
  size_t vl = 0;
  int flag = -1;
  uint8_t key[32];
  kj_prekey_list *pl = NULL;
  kj_blob_list *bl = NULL;
  kj_lid_mapping_list *ll = NULL;
  kj_sync_key *sk = NULL;
  kj_sync_version *sv = NULL;
  kj_device_list *dl = NULL;
  kj_tc_token *tk = NULL;
  kj_device_record *dr = NULL;
  kj_ratchet_state *rs = NULL;
  kj_u32_list *ul = NULL, *ul_ = NULL;
  uint32_t u32 = 0;
  uint64_t u64 = 0;
  kj_tx *t = NULL;

#define OUTV() (!rc ? sb_hex(&s, v, vl) : (void)0), kj_free(v), v = NULL
#define OUTL(f, p) ((p) ? f(&s, p) : (void)0), kj_free(p), p = NULL

  CALL("create");
  R(kj_device_create(b, NULL, &c1), tu_buf_addf(&s, " id=%u", c1));
  R(kj_device_create(b, NULL, &c2), tu_buf_addf(&s, " id=%u", c2));
  R(kj_device_create(b, NULL, &c3), tu_buf_addf(&s, " id=%u", c3));
  CALL("list_ids");
  R(kj_device_list_ids(b, NULL, &ul), OUTL(f_u32s, ul));
  CALL("exists");
  uint32_t probe[] = {c1, 99, 0, UINT32_MAX};
  for (size_t i = 0; i < 4; i++) {
    R(kj_device_exists(b, NULL, probe[i], &flag),
      tu_buf_addf(&s, " %u:%d", probe[i], flag));
  }
  kj_device_record rec;
  make_record(&rec, 5);
  CALL("device_load");
  R(kj_device_load(b, NULL, c1, &dr), OUTL(f_record, dr));
  CALL("device_save");
  R(kj_device_save(b, NULL, c1, &rec));
  R(kj_device_save(b, NULL, 0, &rec));
  R(kj_device_save(b, NULL, 99, &rec));
  rec.has_account = 2; /* bad flag */
  R(kj_device_save(b, NULL, c1, &rec));
  rec.has_account = 1;
  rec.account = (kj_blob){(const uint8_t *)"acct", 4};
  rec.has_props_hash = 1;
  rec.props_hash = (kj_blob){(const uint8_t *)"ph", 2};
  R(kj_device_save(b, NULL, c2, &rec));
  CALL("device_load");
  R(kj_device_load(b, NULL, c1, &dr), OUTL(f_record, dr));
  R(kj_device_load(b, NULL, c2, &dr), OUTL(f_record, dr));
  R(kj_device_load(b, NULL, 0, &dr), OUTL(f_record, dr));

  /* identity */
  tu_fill(key, 32, 0x40);
  CALL("identity_put");
  R(kj_identity_put(b, NULL, c1, A("alice"), key));
  R(kj_identity_put(b, NULL, 99, A("alice"), key));
  R(kj_identity_put(b, NULL, 0, A("alice"), key));
  R(kj_identity_put(b, NULL, c1, "alice", 0, key));
  CALL("identity_load");
  memset(key, 0, 32);
  R(kj_identity_load(b, NULL, c1, A("alice"), key), sb_hex(&s, key, 32));
  R(kj_identity_load(b, NULL, c2, A("alice"), key));
  CALL("identity_delete");
  R(kj_identity_delete(b, NULL, c1, A("nobody")));
  R(kj_identity_delete(b, NULL, 99, A("nobody")));

  /* sessions: "a" and "a\0" are different keys */
  CALL("session_put");
  R(kj_session_put(b, NULL, c1, A("a"), A("rec-a")));
  R(kj_session_put(b, NULL, c1, "a\0", 2, A("rec-a0")));
  R(kj_session_put(b, NULL, c1, A("a"), "", 0));
  CALL("session_get");
  R(kj_session_get(b, NULL, c1, A("a"), &v, &vl), OUTV());
  R(kj_session_get(b, NULL, c1, "a\0", 2, &v, &vl), OUTV());
  R(kj_session_get(b, NULL, c1, NULL, 1, &v, &vl), OUTV());
  CALL("session_has");
  R(kj_session_has(b, NULL, c1, A("b"), &flag), tu_buf_addf(&s, " %d", flag));
  CALL("session_delete");
  R(kj_session_delete(b, NULL, c1, A("a")));
  CALL("session_has");
  R(kj_session_has(b, NULL, c1, A("a"), &flag), tu_buf_addf(&s, " %d", flag));

  /* pre-keys */
  CALL("prekey_store");
  R(kj_prekey_store(b, NULL, c1, 5, A("five"), 0));
  R(kj_prekey_store(b, NULL, c1, UINT32_MAX, A("max"), 1));
  R(kj_prekey_store(b, NULL, c1, 6, A("six"), 2));
  CALL("prekey_store_batch");
  kj_prekey pb[3] = {{300, 0, {(const uint8_t *)"x", 1}},
                     {7, 0, {(const uint8_t *)"y", 1}},
                     {300, 0, {(const uint8_t *)"z", 1}}};
  R(kj_prekey_store_batch(b, NULL, c1, pb, 3, 1));
  R(kj_prekey_store_batch(b, NULL, 99, pb, 0, 1));
  R(kj_prekey_store_batch(b, NULL, c1, pb, 0, 1));
  pb[1].record.len = 0;
  R(kj_prekey_store_batch(b, NULL, c1, pb, 3, 1));
  CALL("prekey_load");
  R(kj_prekey_load(b, NULL, c1, 300, &pl), OUTL(f_prekeys, pl));
  R(kj_prekey_load(b, NULL, c1, 8, &pl), OUTL(f_prekeys, pl));
  CALL("prekey_load_batch");
  uint32_t lb[] = {UINT32_MAX, 8, 5, 300, 5, 0};
  R(kj_prekey_load_batch(b, NULL, c1, lb, 6, &pl), OUTL(f_prekeys, pl));
  R(kj_prekey_load_batch(b, NULL, c1, lb, 0, &pl), OUTL(f_prekeys, pl));
  CALL("prekey_mark_uploaded");
  uint32_t mu[] = {5, 8};
  R(kj_prekey_mark_uploaded(b, NULL, c1, mu, 2));
  R(kj_prekey_mark_uploaded(b, NULL, c3 + 100, mu, 2));
  CALL("prekey_load_batch"); /* 5 is marked, 8 stays absent */
  R(kj_prekey_load_batch(b, NULL, c1, mu, 2, &pl), OUTL(f_prekeys, pl));
  CALL("prekey_max_id");
  R(kj_prekey_max_id(b, NULL, c1, &u32), tu_buf_addf(&s, " %u", u32));
  CALL("prekey_remove");
  R(kj_prekey_remove(b, NULL, c1, UINT32_MAX));
  CALL("prekey_max_id");
  R(kj_prekey_max_id(b, NULL, c1, &u32), tu_buf_addf(&s, " %u", u32));
  R(kj_prekey_max_id(b, NULL, c2, &u32), tu_buf_addf(&s, " %u", u32));

  /* signed pre-keys and sender keys */
  CALL("signed_prekey_store");
  R(kj_signed_prekey_store(b, NULL, c1, 256, A("s256")));
  R(kj_signed_prekey_store(b, NULL, c1, 1, A("s1")));
  R(kj_signed_prekey_store(b, NULL, c1, 2, A("s2")));
  CALL("signed_prekey_remove");
  R(kj_signed_prekey_remove(b, NULL, c1, 2));
  CALL("signed_prekey_load_all");
  R(kj_signed_prekey_load_all(b, NULL, c1, &pl), OUTL(f_prekeys, pl));
  R(kj_signed_prekey_load_all(b, NULL, 77, &pl), OUTL(f_prekeys, pl));
  CALL("signed_prekey_load");
  R(kj_signed_prekey_load(b, NULL, c1, 256, &pl), OUTL(f_prekeys, pl));
  R(kj_signed_prekey_load(b, NULL, c1, 2, &pl), OUTL(f_prekeys, pl));
  CALL("sender_key");
  R(kj_sender_key_put(b, NULL, c1, A("g1::s"), A("sk")));
  R(kj_sender_key_get(b, NULL, c1, A("g1::s"), &v, &vl), OUTV());
  R(kj_sender_key_delete(b, NULL, c1, A("g1::s")));
  R(kj_sender_key_get(b, NULL, c1, A("g1::s"), &v, &vl), OUTV());

  /* app-state sync */
  CALL("sync_key_latest");
  R(kj_sync_key_latest(b, NULL, c1, &v, &vl), OUTV());
  CALL("sync_key_set");
  kj_sync_key key1 = {
      {(const uint8_t *)"data1", 5}, {(const uint8_t *)"f", 1}, 500};
  kj_sync_key key2 = {{(const uint8_t *)"data2", 5}, {NULL, 0}, -1};
  R(kj_sync_key_set(b, NULL, c1, A("k-new"), &key1));
  R(kj_sync_key_set(b, NULL, c1, A("k-old"), &key2));
  R(kj_sync_key_set(b, NULL, 99, A("k-x"), &key2));
  CALL("sync_key_latest");
  R(kj_sync_key_latest(b, NULL, c1, &v, &vl), OUTV());
  CALL("sync_key_get");
  R(kj_sync_key_get(b, NULL, c1, A("k-old"), &sk), OUTL(f_sync_key, sk));
  R(kj_sync_key_get(b, NULL, c1, A("k-new"), &sk), OUTL(f_sync_key, sk));
  R(kj_sync_key_get(b, NULL, c2, A("k-new"), &sk), OUTL(f_sync_key, sk));
  CALL("sync_version_get");
  R(kj_sync_version_get(b, NULL, c1, A("critical"), &sv), OUTL(f_version, sv));
  CALL("sync_version_set");
  kj_sync_entry ents[3] = {
      {{(const uint8_t *)"mm", 2}, {(const uint8_t *)"1", 1}},
      {{(const uint8_t *)"m", 1}, {(const uint8_t *)"", 0}},
      {{(const uint8_t *)"\xff", 1}, {(const uint8_t *)"3", 1}}};
  kj_sync_version ver = {.version = 42, .n = 3, .entries = ents};
  memset(ver.hash, 0x11, sizeof ver.hash);
  R(kj_sync_version_set(b, NULL, c1, A("critical"), &ver));
  CALL("sync_version_get");
  R(kj_sync_version_get(b, NULL, c1, A("critical"), &sv), OUTL(f_version, sv));
  CALL("sync_version_set");
  ver.n = 0;
  ver.version = 43;
  R(kj_sync_version_set(b, NULL, c1, A("critical"), &ver));
  CALL("sync_version_get");
  R(kj_sync_version_get(b, NULL, c1, A("critical"), &sv), OUTL(f_version, sv));
  CALL("sync_version_set");
  ents[2].name = ents[0].name; /* a name given twice */
  ver.n = 3;
  R(kj_sync_version_set(b, NULL, c1, A("critical"), &ver));
  CALL("mutation_mac_put");
  kj_mutation_mac macs[3] = {
      {{(const uint8_t *)"ix1", 3}, {(const uint8_t *)"va", 2}},
      {{(const uint8_t *)"ix2", 3}, {(const uint8_t *)"vb", 2}},
      {{(const uint8_t *)"ix1", 3}, {(const uint8_t *)"vc", 2}}};
  R(kj_mutation_mac_put(b, NULL, c1, A("critical"), UINT64_MAX - 1, macs, 3));
  R(kj_mutation_mac_put(b, NULL, 0, A("critical"), 1, macs, 0));
  CALL("mutation_mac_get");
  R(kj_mutation_mac_get(b, NULL, c1, A("critical"), A("ix1"), &v, &vl, &u64),
    tu_buf_addf(&s, " ver=%llu", (unsigned long long)u64), OUTV());
  CALL("mutation_mac_delete");
  kj_blob md[2] = {{(const uint8_t *)"ix2", 3}, {(const uint8_t *)"nope", 4}};
  R(kj_mutation_mac_delete(b, NULL, c1, A("critical"), md, 2));
  CALL("mutation_mac_get");
  R(kj_mutation_mac_get(b, NULL, c1, A("critical"), A("ix2"), &v, &vl, NULL),
    OUTV());

  /* protocol */
  CALL("skdm_add");
  kj_blob sj[3] = {{(const uint8_t *)"dev2", 4},
                   {(const uint8_t *)"dev10", 5},
                   {(const uint8_t *)"dev2", 4}};
  R(kj_skdm_add(b, NULL, c1, A("grp"), sj, 3));
  R(kj_skdm_add(b, NULL, 99, A("grp"), sj, 0));
  CALL("skdm_get");
  R(kj_skdm_get(b, NULL, c1, A("grp"), &bl), OUTL(f_blobs, bl));
  R(kj_skdm_get(b, NULL, c1, A("unknown"), &bl), OUTL(f_blobs, bl));
  CALL("skdm_clear");
  R(kj_skdm_clear(b, NULL, c1, A("grp")));
  CALL("skdm_get");
  R(kj_skdm_get(b, NULL, c1, A("grp"), &bl), OUTL(f_blobs, bl));

  CALL("lid_put");
  kj_lid_mapping lm = {{(const uint8_t *)"lidB", 4},
                       {(const uint8_t *)"+1", 2},
                       100,
                       200,
                       {(const uint8_t *)"", 0}};
  R(kj_lid_put(b, NULL, c1, &lm));
  lm.lid = (kj_blob){(const uint8_t *)"lidC", 4};
  lm.updated_at = 250;
  R(kj_lid_put(b, NULL, c1, &lm));
  lm.lid = (kj_blob){(const uint8_t *)"lidA", 4};
  lm.updated_at = 250;
  lm.source = (kj_blob){(const uint8_t *)"usync", 5};
  R(kj_lid_put(b, NULL, c1, &lm));
  CALL("lid_get_by_phone");
  R(kj_lid_get_by_phone(b, NULL, c1, A("+1"), &ll), OUTL(f_lids, ll));
  CALL("lid_put");
  lm.phone = (kj_blob){(const uint8_t *)"+2", 2};
  lm.created_at = -1;
  lm.updated_at = 10;
  /* lidA moves to +2 */
  R(kj_lid_put(b, NULL, c1, &lm));
  CALL("lid_get_by_phone");
  R(kj_lid_get_by_phone(b, NULL, c1, A("+1"), &ll), OUTL(f_lids, ll));
  R(kj_lid_get_by_phone(b, NULL, c1, A("+3"), &ll), OUTL(f_lids, ll));
  CALL("lid_get_by_lid");
  R(kj_lid_get_by_lid(b, NULL, c1, A("lidA"), &ll), OUTL(f_lids, ll));
  R(kj_lid_get_by_lid(b, NULL, c1, A("lidZ"), &ll), OUTL(f_lids, ll));
  CALL("lid_get_all");
  R(kj_lid_get_all(b, NULL, c1, &ll), OUTL(f_lids, ll));
  R(kj_lid_get_all(b, NULL, c2, &ll), OUTL(f_lids, ll));

  CALL("base_key");
  R(kj_base_key_save(b, NULL, c1, A("ad"), A("msg"), A("base")));
  R(kj_base_key_has_same(b, NULL, c1, A("ad"), A("msg"), A("base"), &flag),
    tu_buf_addf(&s, " %d", flag));
  R(kj_base_key_has_same(b, NULL, c1, A("ad"), A("msg"), A("bas"), &flag),
    tu_buf_addf(&s, " %d", flag));
  R(kj_base_key_has_same(b, NULL, c1, A("a"), A("dmsg"), A("base"), &flag),
    tu_buf_addf(&s, " %d", flag));
  R(kj_base_key_delete(b, NULL, c1, A("ad"), A("msg")));
  R(kj_base_key_has_same(b, NULL, c1, A("ad"), A("msg"), A("base"), &flag),
    tu_buf_addf(&s, " %d", flag));

  CALL("device_list");
  kj_device_entry de[3] = {{7, 1, 0}, {1, 0, 99}, {UINT32_MAX, 1, 3}};
  kj_device_list dlr = {{(const uint8_t *)"user", 4}, -9, 1,
                        {(const uint8_t *)"", 0},     3,  de};
  R(kj_device_list_update(b, NULL, c1, &dlr));
  R(kj_device_list_get(b, NULL, c1, A("user"), &dl), OUTL(f_devlist, dl));
  dlr.has_phash = 0;
  dlr.n = 0;
  R(kj_device_list_update(b, NULL, c1, &dlr));
  R(kj_device_list_get(b, NULL, c1, A("user"), &dl), OUTL(f_devlist, dl));
  R(kj_device_list_delete(b, NULL, c1, A("user")));
  R(kj_device_list_get(b, NULL, c1, A("user"), &dl), OUTL(f_devlist, dl));

  CALL("forget");
  R(kj_sender_key_mark_forget(b, NULL, c1, A("grp"), A("pz")));
  R(kj_sender_key_mark_forget(b, NULL, c1, A("grp"), A("pa")));
  R(kj_sender_key_mark_forget(b, NULL, c1, A("grp"), A("pa")));
  R(kj_sender_key_mark_forget(b, NULL, c1, A("grp2"), A("pq")));
  R(kj_sender_key_consume_forget(b, NULL, c1, A("grp"), &bl),
    OUTL(f_blobs, bl));
  R(kj_sender_key_consume_forget(b, NULL, c1, A("grp"), &bl),
    OUTL(f_blobs, bl));
  R(kj_sender_key_consume_forget(b, NULL, 99, A("grp"), &bl),
    OUTL(f_blobs, bl));

  CALL("tc_token");
  kj_tc_token tt = {{(const uint8_t *)"T1", 2}, 100, 0, 555};
  R(kj_tc_token_put(b, NULL, c1, A("j1"), &tt));
  tt.token_ts = 200;
  tt.has_sender_ts = 1;
  R(kj_tc_token_put(b, NULL, c1, A("j2"), &tt));
  tt.token_ts = INT64_MIN;
  R(kj_tc_token_put(b, NULL, c1, A("j0"), &tt));
  R(kj_tc_token_get(b, NULL, c1, A("j1"), &tk), OUTL(f_token, tk));
  R(kj_tc_token_all_jids(b, NULL, c1, &bl), OUTL(f_blobs, bl));
  R(kj_tc_token_delete_expired(b, NULL, c1, 150, &u64),
    tu_buf_addf(&s, " removed=%llu", (unsigned long long)u64));
  R(kj_tc_token_delete_expired(b, NULL, 99, 150, &u64),
    tu_buf_addf(&s, " removed=%llu", (unsigned long long)u64));
  R(kj_tc_token_all_jids(b, NULL, c1, &bl), OUTL(f_blobs, bl));
  R(kj_tc_token_delete(b, NULL, c1, A("j2")));
  R(kj_tc_token_get(b, NULL, c1, A("j2"), &tk), OUTL(f_token, tk));

  /* ratchet: created_at from the clock, kept keys keep it */
  CALL("ratchet");
  kj_ratchet_state *st = make_state(4, 9);
  set_skipped(&st->skipped[0], 0xbb, 2, 1);
  set_skipped(&st->skipped[1], 0xaa, 70000, 2);
  set_skipped(&st->skipped[2], 0xaa, 3, 3);
  set_skipped(&st->skipped[3], 0xbb, 2, 4); /* duplicate: last wins */
  R(kj_ratchet_save(b, NULL, c1, A("conv"), st));
  *clk += 61999; /* 61.999 s later */
  set_skipped(&st->skipped[0], 0xcc, 1, 5);
  set_skipped(&st->skipped[1], 0xaa, 3, 6); /* kept, new message key */
  st->n_skipped = 3;
  R(kj_ratchet_save(b, NULL, c1, A("conv"), st));
  R(kj_ratchet_load(b, NULL, c1, A("conv"), &rs), OUTL(f_ratchet, rs));
  R(kj_ratchet_exists(b, NULL, c1, A("conv"), &flag),
    tu_buf_addf(&s, " %d", flag));
  R(kj_ratchet_cleanup_skipped(b, NULL, c1, 30, &u64),
    tu_buf_addf(&s, " removed=%llu", (unsigned long long)u64));
  R(kj_ratchet_cleanup_skipped(b, NULL, c1, -1, &u64),
    tu_buf_addf(&s, " removed=%llu", (unsigned long long)u64));
  R(kj_ratchet_cleanup_skipped(b, NULL, c1, INT64_MAX, &u64),
    tu_buf_addf(&s, " removed=%llu", (unsigned long long)u64));
  R(kj_ratchet_load(b, NULL, c1, A("conv"), &rs), OUTL(f_ratchet, rs));
  st->n_skipped = 0;
  R(kj_ratchet_save(b, NULL, c1, A("conv2"), st));
  R(kj_ratchet_load(b, NULL, c1, A("conv2"), &rs), OUTL(f_ratchet, rs));
  R(kj_ratchet_save(b, NULL, 99, A("conv"), st));
  R(kj_ratchet_delete(b, NULL, c1, A("conv")));
  R(kj_ratchet_exists(b, NULL, c1, A("conv"), &flag),
    tu_buf_addf(&s, " %d", flag));
  R(kj_ratchet_load(b, NULL, c1, A("conv"), &rs), OUTL(f_ratchet, rs));

  /* a transaction that commits, with a NOTFOUND and an EINVAL inside */
  CALL("tx1");
  R(kj_backend_begin(b, &t));
  R(kj_session_put(b, t, c2, A("in-tx"), A("v1")));
  R(kj_identity_put(b, t, 99, A("x"), key));
  R(kj_prekey_store(b, t, c2, 1, "", 0, 0));
  R(kj_sender_key_mark_forget(b, t, c2, A("g"), A("p")));
  R(kj_sender_key_consume_forget(b, t, c2, A("g"), &bl), OUTL(f_blobs, bl));
  R(kj_session_get(b, t, c2, A("in-tx"), &v, &vl), OUTV());
  R(kj_backend_commit(t));
  R(kj_session_get(b, NULL, c2, A("in-tx"), &v, &vl), OUTV());

  /* a transaction that rolls back: a create, a delete, writes */
  CALL("tx2");
  R(kj_backend_begin(b, &t));
  R(kj_device_create(b, t, &cx), tu_buf_addf(&s, " id=%u", cx));
  R(kj_session_put(b, t, c2, A("rolled"), A("v")));
  R(kj_device_delete(b, t, c1));
  R(kj_device_exists(b, t, c1, &flag), tu_buf_addf(&s, " %d", flag));
  R(kj_session_get(b, t, c2, A("rolled"), &v, &vl), OUTV());
  kj_backend_rollback(t);
  R(kj_session_get(b, NULL, c2, A("rolled"), &v, &vl), OUTV());
  R(kj_device_exists(b, NULL, c1, &flag), tu_buf_addf(&s, " %d", flag));
  R(kj_device_create(b, NULL, &cx), tu_buf_addf(&s, " id=%u", cx));

  /* issue 17: names, user records, 33-byte keys, local identity, has,
   * labels; each output in full. */
  CALL("i17 session");
  void *u = NULL;
  size_t usz = 0;
  uint64_t removed = 0;
  kj_local_identity li;
  memset(&li, 0, sizeof li);
#define OUTVU() out_vu(&s, rc, &v, vl, &u, usz)
  R(kj_session_store(b, NULL, c2, A("nm"), 3, A("r3"), A("u3")));
  R(kj_session_store(b, NULL, c2, A("nm"), 0x01000000, A("rbig"), NULL, 0));
  R(kj_session_store(b, NULL, c2, A("nm2"), 1, A("x"), A("")));
  R(kj_session_store(b, NULL, c2, A("nm"), 3, "", 0, NULL, 0));
  R(kj_session_store(b, NULL, 99, A("nm"), 3, A("r"), NULL, 0));
  R(kj_session_load(b, NULL, c2, A("nm"), 3, &v, &vl, &u, &usz), OUTVU());
  R(kj_session_load(b, NULL, c2, A("nm"), 0x01000000, &v, &vl, &u, &usz),
    OUTVU());
  R(kj_session_load(b, NULL, c2, A("nm"), 4, &v, &vl, &u, &usz), OUTVU());
  R(kj_session_contains(b, NULL, c2, A("nm2"), 1, &flag),
    tu_buf_addf(&s, " %d", flag));
  R(kj_session_list_devices(b, NULL, c2, A("nm"), &ul_), OUTL(f_u32s, ul_));
  R(kj_session_list_devices(b, NULL, c2, A("n"), &ul_), OUTL(f_u32s, ul_));
  R(kj_session_remove(b, NULL, c2, A("nm"), 3));
  R(kj_session_remove_all(b, NULL, c2, A("nm"), &removed),
    tu_buf_addf(&s, " %llu", (unsigned long long)removed));
  R(kj_session_remove_all(b, NULL, c2, A("nm2"), &removed),
    tu_buf_addf(&s, " %llu", (unsigned long long)removed));
  R(kj_session_remove_all(b, NULL, 0, A("nm2"), &removed),
    tu_buf_addf(&s, " %llu", (unsigned long long)removed));
  CALL("i17 sender");
  R(kj_sender_key_store(b, NULL, c2, A("g:a"), A("sk"), A("su")));
  R(kj_sender_key_load(b, NULL, c2, A("g:a"), &v, &vl, &u, &usz), OUTVU());
  R(kj_sender_key_put(b, NULL, c2, A("g:a"), A("sk2")));
  R(kj_sender_key_load(b, NULL, c2, A("g:a"), &v, &vl, &u, &usz), OUTVU());
  R(kj_sender_key_load(b, NULL, c2, A("g:b"), &v, &vl, &u, &usz), OUTVU());
  CALL("i17 identity");
  uint8_t k33[33];
  size_t kl = 0;
  tu_fill(k33, 33, 0x21);
  R(kj_identity_put_key(b, NULL, c2, A("id"), k33, 33));
  R(kj_identity_get_key(b, NULL, c2, A("id"), k33, &kl), sb_hex(&s, k33, kl));
  R(kj_identity_load(b, NULL, c2, A("id"), key), sb_hex(&s, key, 32));
  R(kj_identity_put_key(b, NULL, c2, A("id"), k33, 31));
  R(kj_identity_get_key(b, NULL, c2, A("none"), k33, &kl),
    tu_buf_addf(&s, " %zu", kl));
  CALL("i17 local");
  li.registration_id = 77;
  li.public_len = 33;
  tu_fill(li.public_key, 33, 3);
  tu_fill(li.private_key, 32, 4);
  R(kj_local_identity_save(b, NULL, c2, &li));
  memset(&li, 0, sizeof li);
  R(kj_local_identity_load(b, NULL, c2, &li), out_local(&s, &li));
  R(kj_local_identity_delete(b, NULL, c2));
  R(kj_local_identity_load(b, NULL, c2, &li));
  CALL("i17 has");
  R(kj_prekey_has(b, NULL, c2, 10, &flag), tu_buf_addf(&s, " %d", flag));
  R(kj_signed_prekey_has(b, NULL, c2, 300, &flag),
    tu_buf_addf(&s, " %d", flag));
  R(kj_prekey_store(b, NULL, c2, 10, A("p"), 1));
  R(kj_prekey_has(b, NULL, c2, 10, &flag), tu_buf_addf(&s, " %d", flag));
  CALL("i17 label");
  R(kj_device_find(b, NULL, A("lab"), &u32), tu_buf_addf(&s, " %u", u32));
  R(kj_device_create_labeled(b, NULL, A("lab"), &u32),
    tu_buf_addf(&s, " %u", u32));
  R(kj_device_create_labeled(b, NULL, A("lab"), &u32),
    tu_buf_addf(&s, " %u", u32));
  R(kj_device_find(b, NULL, A("lab"), &u32), tu_buf_addf(&s, " %u", u32));
  R(kj_device_delete(b, NULL, u32));
  R(kj_device_find(b, NULL, A("lab"), &u32), tu_buf_addf(&s, " %u", u32));
#undef OUTVU

  /* slot deletion */
  CALL("delete");
  R(kj_device_delete(b, NULL, c1));
  R(kj_device_delete(b, NULL, c1));
  R(kj_device_delete(b, NULL, 0));
  R(kj_prekey_max_id(b, NULL, c1, &u32), tu_buf_addf(&s, " %u", u32));
  R(kj_lid_get_all(b, NULL, c1, &ll), OUTL(f_lids, ll));
  R(kj_device_load(b, NULL, c1, &dr), OUTL(f_record, dr));
  R(kj_sync_key_latest(b, NULL, c1, &v, &vl), OUTV());
  R(kj_session_put(b, NULL, c1, A("a"), A("v")));
  R(kj_device_create(b, NULL, &cx), tu_buf_addf(&s, " id=%u", cx));
  R(kj_device_list_ids(b, NULL, &ul), OUTL(f_u32s, ul));
  R(kj_device_snapshot_copy(b, NULL, A("x"), NULL, 0, NULL));
  R(kj_device_snapshot_copy(b, NULL, NULL, 3, NULL, 0, NULL));
  kj_free(st);
  (void)c3;
}

static void differential(void) {
  int64_t clk_n = T0_MS, clk_s = T0_MS;
  kj_backend *nb = open_native(&clk_n);
  kj_backend *qb = open_sqlite(":memory:", &clk_s);
  ok(nb && qb, "differential: both backends open");
  if (!nb || !qb) {
    kj_backend_close(nb);
    kj_backend_close(qb);
    return;
  }
  lines ln = {0}, lq = {0};
  script(nb, &clk_n, &ln);
  script(qb, &clk_s, &lq);
  is(lq.n, ln.n, "differential: same number of results");
  ok(ln.n >= 100, "differential: %zu operations", ln.n);
  size_t n = ln.n < lq.n ? ln.n : lq.n, mismatches = 0;
  int show = getenv("KJ_DIFF_SHOW") != NULL; /* every result, for debugging */
  for (size_t i = 0; i < n; i++) {
    if (show)
      printf("# %zu %s\n", i, ln.v[i]);
    int same = !strcmp(ln.v[i], lq.v[i]);
    if (!same) {
      mismatches++;
      ok(0, "differential op %zu: %.60s", i, ln.v[i]);
      printf("#   native: %s\n#   sqlite: %s\n", ln.v[i], lq.v[i]);
    }
  }
  is(mismatches, 0, "differential: every status and output agrees (%zu ops)",
     n);
  lines_free(&ln);
  lines_free(&lq);
  is(kj_backend_close(nb), KJ_OK, "differential: close native");
  is(kj_backend_close(qb), KJ_OK, "differential: close sqlite");
}

/* ---- part 4: the issue-17 additions, on every backend ------------------- */

/* These run on the native memory backend and on the SQLite one (memory and
 * file): each rule of keyjournal/signal.h and device.h for sessions by
 * (name, device id), user records, 32- or 33-byte identity keys, the local
 * identity, pre-key has and slot labels, with bad input, missing rows and
 * slots, and transactions. The same assertions on both backends: where one
 * fails, it breaks the contract. "<what>: <desc>" names each check. */

#define N(s) (s), (sizeof(s) - 1) /* a name literal and its length */
#define IS_RC(call, want, desc) is(call, want, "%s: " desc, what)
#define IS_OK(call, desc) IS_RC(call, KJ_OK, desc)
#define IS_GONE(call, desc) IS_RC(call, KJ_NOTFOUND, desc)

/* "id,id,..." of the devices of name, or "rc=<status>". */
static char *devices_of(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                        size_t nlen) {
  kj_u32_list *l = NULL;
  int rc = kj_session_list_devices(b, t, dev, name, nlen, &l);
  sb s = {0};
  if (rc)
    tu_buf_addf(&s, "rc=%d%s", rc, l ? " OUT-NOT-NULL" : "");
  for (size_t i = 0; !rc && i < l->n; i++)
    tu_buf_addf(&s, "%s%u", i ? "," : "", l->v[i]);
  kj_free(l);
  return tu_buf_take(&s);
}

static int devices_are(kj_backend *b, kj_tx *t, uint32_t dev, const void *name,
                       size_t nlen, const char *want) {
  char *got = devices_of(b, t, dev, name, nlen);
  int same = got && !strcmp(got, want);
  if (!same)
    printf("#   devices: got \"%s\" want \"%s\"\n", got ? got : "?", want);
  free(got);
  return same;
}

/* 1 when kj_session_load of (name, id) gives rec and urec (NULL: no user
 * record, which must come back as NULL and 0). */
static int loads(kj_backend *b, kj_tx *t, uint32_t dev, const char *name,
                 uint32_t id, const char *rec, const char *urec) {
  void *r = NULL, *u = NULL;
  size_t rl = 0, ul = 0;
  int rc = kj_session_load(b, t, dev, name, strlen(name), id, &r, &rl, &u, &ul);
  int good =
      rc == KJ_OK && rl == strlen(rec) && !memcmp(r, rec, rl) &&
      (urec ? ul == strlen(urec) && u && !memcmp(u, urec, ul) : !u && ul == 0);
  if (!good)
    printf("#   load %s/%u: rc %d rlen %zu ulen %zu\n", name, id, rc, rl, ul);
  kj_free(r);
  kj_free(u);
  return good;
}

/* 1 when kj_session_load of (name, id) is KJ_NOTFOUND with every output
 * cleared. */
static int load_gone(kj_backend *b, kj_tx *t, uint32_t dev, const char *name,
                     uint32_t id) {
  void *r = (void *)1, *u = (void *)1;
  size_t rl = 1, ul = 1;
  int rc = kj_session_load(b, t, dev, name, strlen(name), id, &r, &rl, &u, &ul);
  return rc == KJ_NOTFOUND && !r && !u && !rl && !ul;
}

static int contains(kj_backend *b, kj_tx *t, uint32_t dev, const char *name,
                    uint32_t id) {
  int has = -1;
  int rc = kj_session_contains(b, t, dev, name, strlen(name), id, &has);
  return rc ? -100 - rc : has;
}

static void i17_sessions(kj_backend *b, const char *what) {
  uint32_t d1 = 0, d2 = 0;
  kj_device_create(b, NULL, &d1);
  kj_device_create(b, NULL, &d2);

  ok(devices_are(b, NULL, d1, N("bob"), ""), "%s: no sessions: empty list",
     what);
  IS_OK(kj_session_store(b, NULL, d1, N("bob"), 7, N("r7"), N("u7")),
        "session_store with a user record");
  IS_OK(kj_session_store(b, NULL, d1, N("bob"), 1, N("r1"), NULL, 0),
        "session_store without one");
  IS_OK(kj_session_store(b, NULL, d1, N("bob"), UINT32_MAX, N("rmax"), "", 0),
        "session_store, device UINT32_MAX, empty user record");
  IS_OK(kj_session_store(b, NULL, d1, N("bob"), 256, N("r256"), N("u")),
        "session_store, device 256");
  IS_OK(kj_session_store(b, NULL, d1, N("bob"), 0, N("r0"), NULL, 0),
        "session_store, device 0");
  IS_OK(kj_session_store(b, NULL, d1, N("bobby"), 2, N("y2"), NULL, 0),
        "session_store of a longer name");
  IS_OK(kj_session_store(b, NULL, d1, N("bo"), 3, N("o3"), NULL, 0),
        "session_store of a shorter name");
  IS_OK(kj_session_store(b, NULL, d1, "bob\0", 4, 5, N("z5"), NULL, 0),
        "session_store of bob\\0");
  ok(devices_are(b, NULL, d1, N("bob"), "0,1,7,256,4294967295"),
     "%s: list_devices: ascending numerically, only that name", what);
  ok(devices_are(b, NULL, d1, N("bobby"), "2") &&
         devices_are(b, NULL, d1, N("bo"), "3") &&
         devices_are(b, NULL, d1, "bob\0", 4, "5"),
     "%s: list_devices: names sharing a prefix are apart", what);
  ok(devices_are(b, NULL, d2, N("bob"), ""),
     "%s: list_devices: another slot sees none", what);
  ok(devices_are(b, NULL, 99, N("bob"), "") &&
         devices_are(b, NULL, 0, N("bob"), ""),
     "%s: list_devices in a missing slot: empty", what);

  ok(loads(b, NULL, d1, "bob", 7, "r7", "u7"),
     "%s: session_load: record and user record", what);
  ok(loads(b, NULL, d1, "bob", 1, "r1", NULL),
     "%s: session_load: no user record is NULL, 0", what);
  ok(loads(b, NULL, d1, "bob", UINT32_MAX, "rmax", NULL),
     "%s: session_load: an empty user record is none", what);
  ok(load_gone(b, NULL, d1, "bob", 2), "%s: session_load absent: NOTFOUND",
     what);
  ok(load_gone(b, NULL, d2, "bob", 7), "%s: session_load in another slot",
     what);
  ok(load_gone(b, NULL, 99, "bob", 7), "%s: session_load in a missing slot",
     what);
  ok(contains(b, NULL, d1, "bob", 7) == 1 &&
         contains(b, NULL, d1, "bob", 8) == 0,
     "%s: session_contains 1 and 0", what);
  ok(contains(b, NULL, 99, "bob", 7) == 0 &&
         contains(b, NULL, 0, "bob", 7) == 0,
     "%s: session_contains in a missing slot: 0", what);
  IS_OK(kj_session_store(b, NULL, d1, N("bob"), 7, N("r7b"), NULL, 0),
        "session_store replaces");
  ok(loads(b, NULL, d1, "bob", 7, "r7b", NULL),
     "%s: ... the record, and drops the user record", what);
  IS_OK(kj_session_store(b, NULL, d1, N("bob"), 7, N("r7"), N("u7")),
        "session_store again with a user record");

  /* The relation with the address calls. */
  uint8_t a[KJ_MAX_ID];
  size_t al = 0;
  IS_OK(kj_address_encode(N("bob"), 7, a, &al), "address_encode");
  ok(al == 9 && !memcmp(a,
                        "\x00\x03"
                        "bob\x00\x00\x00\x07",
                        9),
     "%s: address_encode bytes: 2-byte length, name, 4-byte id", what);
  void *v = NULL;
  size_t vl = 0;
  int has = -1;
  ok(kj_session_get(b, NULL, d1, a, al, &v, &vl) == KJ_OK && vl == 2 &&
         !memcmp(v, "r7", 2),
     "%s: session_get at the encoded address reads the stored session", what);
  kj_free(v);
  ok(kj_session_has(b, NULL, d1, a, al, &has) == KJ_OK && has == 1,
     "%s: session_has at the encoded address", what);
  IS_OK(kj_session_put(b, NULL, d1, a, al, N("p7")), "session_put there");
  ok(loads(b, NULL, d1, "bob", 7, "p7", NULL),
     "%s: ... is the name's session, and has no user record now", what);
  kj_address_encode(N("bob"), 9, a, &al);
  IS_OK(kj_session_put(b, NULL, d1, a, al, N("p9")),
        "session_put at the address of (bob, 9)");
  ok(devices_are(b, NULL, d1, N("bob"), "0,1,7,9,256,4294967295"),
     "%s: ... is listed", what);
  IS_OK(kj_session_delete(b, NULL, d1, a, al), "session_delete of it");
  ok(contains(b, NULL, d1, "bob", 9) == 0, "%s: ... is gone by name", what);
  /* Addresses that are not a name's: never listed nor removed by name. */
  a[al] = 'x';
  IS_OK(kj_session_put(b, NULL, d1, a, al + 1, N("odd")),
        "session_put at an address one byte past (bob, 9)");
  IS_OK(kj_session_put(b, NULL, d1, a, 5, N("odd2")),
        "session_put at the bare prefix of bob");
  IS_OK(kj_session_put(b, NULL, d1, N("bob.1"), N("old")),
        "session_put at an old-style address");
  ok(devices_are(b, NULL, d1, N("bob"), "0,1,7,256,4294967295"),
     "%s: other addresses are not listed", what);

  IS_OK(kj_session_remove(b, NULL, d1, N("bob"), 256), "session_remove");
  ok(load_gone(b, NULL, d1, "bob", 256) &&
         contains(b, NULL, d1, "bob", 256) == 0,
     "%s: ... gone", what);
  IS_OK(kj_session_remove(b, NULL, d1, N("bob"), 256),
        "session_remove of an absent one");
  IS_GONE(kj_session_remove(b, NULL, 99, N("bob"), 1),
          "session_remove in a missing slot");
  IS_GONE(kj_session_store(b, NULL, 99, N("bob"), 1, N("r"), NULL, 0),
          "session_store in a missing slot");
  IS_GONE(kj_session_store(b, NULL, 0, N("bob"), 1, N("r"), NULL, 0),
          "session_store in slot 0");
  IS_OK(kj_session_store(b, NULL, d2, N("bob"), 1, N("other"), N("slot")),
        "session_store in slot 2");

  uint64_t n = 77;
  IS_OK(kj_session_remove_all(b, NULL, d1, N("bob"), &n), "session_remove_all");
  is(n, 4, "%s: ... removed 4", what);
  ok(devices_are(b, NULL, d1, N("bob"), ""), "%s: ... none left", what);
  ok(load_gone(b, NULL, d1, "bob", 7), "%s: ... with their user records", what);
  ok(devices_are(b, NULL, d1, N("bobby"), "2") &&
         devices_are(b, NULL, d1, N("bo"), "3") &&
         devices_are(b, NULL, d1, "bob\0", 4, "5"),
     "%s: ... other names untouched", what);
  ok(kj_session_has(b, NULL, d1, a, al + 1, &has) == KJ_OK && has == 1 &&
         kj_session_has(b, NULL, d1, a, 5, &has) == KJ_OK && has == 1 &&
         kj_session_has(b, NULL, d1, N("bob.1"), &has) == KJ_OK && has == 1,
     "%s: ... addresses that are not the name's untouched", what);
  ok(loads(b, NULL, d2, "bob", 1, "other", "slot"),
     "%s: ... another slot untouched", what);
  n = 77;
  IS_OK(kj_session_remove_all(b, NULL, d1, N("bob"), &n),
        "session_remove_all of none");
  is(n, 0, "%s: ... removed 0", what);
  n = 77;
  IS_GONE(kj_session_remove_all(b, NULL, 99, N("bob"), &n),
          "session_remove_all in a missing slot");
  is(n, 0, "%s: ... removed is 0", what);

  /* A name of KJ_MAX_NAME bytes: its address is KJ_MAX_ID. */
  uint8_t *big = malloc(KJ_MAX_RECORD + 1);
  memset(big, 'n', KJ_MAX_RECORD + 1);
  IS_OK(kj_session_store(b, NULL, d1, big, KJ_MAX_NAME, 9, N("r"), big,
                         KJ_MAX_RECORD),
        "session_store: name KJ_MAX_NAME, user record KJ_MAX_RECORD");
  ok(devices_are(b, NULL, d1, big, KJ_MAX_NAME, "9"), "%s: ... listed", what);
  IS_OK(kj_address_encode(big, KJ_MAX_NAME, 9, a, &al),
        "address_encode of KJ_MAX_NAME");
  is(al, KJ_MAX_ID, "%s: ... is KJ_MAX_ID bytes", what);
  void *u = NULL;
  size_t ul = 0;
  v = NULL;
  ok(kj_session_load(b, NULL, d1, big, KJ_MAX_NAME, 9, &v, &vl, &u, &ul) ==
             KJ_OK &&
         ul == KJ_MAX_RECORD && u && !memcmp(u, big, ul),
     "%s: ... loads with every user-record byte", what);
  kj_free(v);
  kj_free(u);

  /* Bad input: KJ_EINVAL, nothing changed. */
  IS_RC(kj_session_store(b, NULL, d1, big, KJ_MAX_NAME + 1, 1, N("r"), NULL, 0),
        KJ_EINVAL, "session_store: name of KJ_MAX_NAME + 1");
  ok(strstr(kj_backend_errmsg(b), "kj_session_store: name") != NULL,
     "%s: ... says so (%s)", what, kj_backend_errmsg(b));
  IS_RC(kj_session_store(b, NULL, d1, NULL, 3, 1, N("r"), NULL, 0), KJ_EINVAL,
        "session_store: NULL name");
  IS_RC(kj_session_store(b, NULL, d1, "bob", 0, 1, N("r"), NULL, 0), KJ_EINVAL,
        "session_store: empty name");
  IS_RC(kj_session_store(b, NULL, d1, N("bob"), 1, "r", 0, NULL, 0), KJ_EINVAL,
        "session_store: empty record");
  IS_RC(kj_session_store(b, NULL, d1, N("bob"), 1, big, KJ_MAX_RECORD + 1, NULL,
                         0),
        KJ_EINVAL, "session_store: record of KJ_MAX_RECORD + 1");
  IS_RC(kj_session_store(b, NULL, d1, N("bob"), 1, N("r"), NULL, 3), KJ_EINVAL,
        "session_store: NULL user record of 3 bytes");
  IS_RC(kj_session_store(b, NULL, d1, N("bob"), 1, N("r"), big,
                         KJ_MAX_RECORD + 1),
        KJ_EINVAL, "session_store: user record of KJ_MAX_RECORD + 1");
  ok(strstr(kj_backend_errmsg(b), "user record") != NULL,
     "%s: ... says so (%s)", what, kj_backend_errmsg(b));
  IS_RC(kj_session_store(b, NULL, 0, N("bob"), 1, N("r"), NULL, 3), KJ_EINVAL,
        "session_store: bad input in slot 0 is EINVAL first");
  ok(contains(b, NULL, d1, "bob", 1) == 0, "%s: ... and nothing was stored",
     what);
  v = (void *)1;
  u = (void *)1;
  vl = ul = 5;
  IS_RC(kj_session_load(b, NULL, d1, N("bobby"), 2, &v, &vl, NULL, &ul),
        KJ_EINVAL, "session_load: NULL urec");
  ok(v == NULL && vl == 0 && ul == 0, "%s: ... other outputs cleared", what);
  IS_RC(kj_session_load(b, NULL, d1, N("bobby"), 2, &v, &vl, &u, NULL),
        KJ_EINVAL, "session_load: NULL ulen");
  ok(u == NULL, "%s: ... urec cleared", what);
  IS_RC(kj_session_load(b, NULL, d1, N("bobby"), 2, NULL, &vl, &u, &ul),
        KJ_EINVAL, "session_load: NULL rec");
  IS_RC(kj_session_load(b, NULL, d1, "", 0, 2, &v, &vl, &u, &ul), KJ_EINVAL,
        "session_load: empty name");
  IS_RC(kj_session_contains(b, NULL, d1, N("bobby"), 2, NULL), KJ_EINVAL,
        "session_contains: NULL has");
  has = 5;
  IS_RC(kj_session_contains(b, NULL, d1, NULL, 1, 2, &has), KJ_EINVAL,
        "session_contains: NULL name");
  is(has, 0, "%s: ... has cleared", what);
  IS_RC(kj_session_remove(b, NULL, d1, big, KJ_MAX_NAME + 1, 2), KJ_EINVAL,
        "session_remove: oversize name");
  kj_u32_list *l = (kj_u32_list *)1;
  IS_RC(kj_session_list_devices(b, NULL, d1, NULL, 0, &l), KJ_EINVAL,
        "session_list_devices: NULL name");
  ok(l == NULL, "%s: ... out cleared", what);
  IS_RC(kj_session_list_devices(b, NULL, d1, N("bobby"), NULL), KJ_EINVAL,
        "session_list_devices: NULL out");
  IS_RC(kj_session_remove_all(b, NULL, d1, N("bobby"), NULL), KJ_EINVAL,
        "session_remove_all: NULL removed");
  n = 5;
  IS_RC(kj_session_remove_all(b, NULL, d1, big, KJ_MAX_NAME + 1, &n), KJ_EINVAL,
        "session_remove_all: oversize name");
  is(n, 0, "%s: ... removed cleared", what);
  ok(devices_are(b, NULL, d1, N("bobby"), "2"), "%s: bad input removed nothing",
     what);
  al = 5;
  IS_RC(kj_address_encode(big, KJ_MAX_NAME + 1, 1, a, &al), KJ_EINVAL,
        "address_encode: oversize name");
  is(al, 0, "%s: ... alen 0", what);
  IS_RC(kj_address_encode(NULL, 1, 1, a, &al), KJ_EINVAL,
        "address_encode: NULL name");
  IS_RC(kj_address_encode("b", 0, 1, a, &al), KJ_EINVAL,
        "address_encode: empty name");
  IS_RC(kj_address_encode("b", 1, 1, NULL, &al), KJ_EINVAL,
        "address_encode: NULL out");
  IS_RC(kj_address_encode("b", 1, 1, a, NULL), KJ_EINVAL,
        "address_encode: NULL alen");
  free(big);

  /* Transactions: a rollback undoes, a commit keeps; reads inside see the
   * transaction's state. */
  kj_tx *t = NULL;
  IS_OK(kj_backend_begin(b, &t), "begin");
  IS_OK(kj_session_store(b, t, d1, N("carol"), 4, N("c4"), N("cu")),
        "session_store in t");
  IS_OK(kj_session_store(b, t, d1, N("carol"), 2, N("c2"), NULL, 0),
        "session_store in t again");
  ok(devices_are(b, t, d1, N("carol"), "2,4") &&
         loads(b, t, d1, "carol", 4, "c4", "cu"),
     "%s: inside t: listed and loaded", what);
  IS_GONE(kj_session_store(b, t, 99, N("carol"), 1, N("c"), NULL, 0),
          "a failing op inside t");
  ok(contains(b, t, d1, "carol", 2) == 1, "%s: ... t still usable", what);
  kj_backend_rollback(t);
  ok(devices_are(b, NULL, d1, N("carol"), "") &&
         load_gone(b, NULL, d1, "carol", 4),
     "%s: rolled back: nothing of it", what);
  IS_OK(kj_session_store(b, NULL, d1, N("carol"), 4, N("c4"), N("cu")),
        "session_store outside t");
  IS_OK(kj_session_store(b, NULL, d1, N("carol"), 5, N("c5"), NULL, 0),
        "session_store outside t again");
  IS_OK(kj_backend_begin(b, &t), "begin again");
  n = 0;
  IS_OK(kj_session_remove_all(b, t, d1, N("carol"), &n),
        "session_remove_all in t");
  is(n, 2, "%s: ... 2", what);
  ok(devices_are(b, t, d1, N("carol"), ""), "%s: ... gone inside t", what);
  kj_backend_rollback(t);
  ok(loads(b, NULL, d1, "carol", 4, "c4", "cu"),
     "%s: ... rolled back: the user record is back too", what);
  IS_OK(kj_backend_begin(b, &t), "begin a third time");
  IS_OK(kj_session_remove(b, t, d1, N("carol"), 4), "session_remove in t");
  IS_OK(kj_backend_commit(t), "commit");
  ok(devices_are(b, NULL, d1, N("carol"), "5"), "%s: committed", what);

  /* Deleting the slot takes every session. */
  IS_OK(kj_device_delete(b, NULL, d2), "delete slot 2");
  ok(load_gone(b, NULL, d2, "bob", 1) && devices_are(b, NULL, d2, N("bob"), ""),
     "%s: ... its sessions are gone", what);
}

static void i17_sender_keys(kj_backend *b, const char *what) {
  uint32_t d = 0;
  kj_device_create(b, NULL, &d);
  void *r = NULL, *u = NULL;
  size_t rl = 0, ul = 0;
  IS_OK(kj_sender_key_store(b, NULL, d, N("g::alice"), N("sk"), N("user")),
        "sender_key_store");
  ok(kj_sender_key_load(b, NULL, d, N("g::alice"), &r, &rl, &u, &ul) == KJ_OK &&
         rl == 2 && !memcmp(r, "sk", 2) && ul == 4 && !memcmp(u, "user", 4),
     "%s: sender_key_load: record and user record", what);
  kj_free(r);
  kj_free(u);
  ok(kj_sender_key_get(b, NULL, d, N("g::alice"), &r, &rl) == KJ_OK &&
         rl == 2 && !memcmp(r, "sk", 2),
     "%s: sender_key_get: the record only", what);
  kj_free(r);
  IS_OK(kj_sender_key_put(b, NULL, d, N("g::alice"), N("sk2")),
        "sender_key_put");
  u = (void *)1;
  ok(kj_sender_key_load(b, NULL, d, N("g::alice"), &r, &rl, &u, &ul) == KJ_OK &&
         rl == 3 && !u && !ul,
     "%s: ... drops the user record", what);
  kj_free(r);
  IS_OK(kj_sender_key_store(b, NULL, d, N("g::alice"), N("sk3"), N("u3")),
        "sender_key_store again");
  IS_OK(kj_sender_key_delete(b, NULL, d, N("g::alice")), "sender_key_delete");
  r = u = (void *)1;
  rl = ul = 1;
  IS_GONE(kj_sender_key_load(b, NULL, d, N("g::alice"), &r, &rl, &u, &ul),
          "sender_key_load after delete");
  ok(!r && !u && !rl && !ul, "%s: ... outputs cleared", what);
  IS_OK(kj_sender_key_store(b, NULL, d, N("g::alice"), N("sk4"), NULL, 0),
        "sender_key_store without user record");
  IS_GONE(kj_sender_key_store(b, NULL, 99, N("g"), N("r"), N("u")),
          "sender_key_store in a missing slot");
  IS_GONE(kj_sender_key_load(b, NULL, 99, N("g::alice"), &r, &rl, &u, &ul),
          "sender_key_load in a missing slot");
  IS_RC(kj_sender_key_store(b, NULL, d, N("g"), N("r"), NULL, 1), KJ_EINVAL,
        "sender_key_store: NULL user record of 1 byte");
  IS_RC(kj_sender_key_store(b, NULL, d, N("g"), NULL, 1, N("u")), KJ_EINVAL,
        "sender_key_store: NULL record");
  IS_RC(kj_sender_key_store(b, NULL, d, "g", 0, N("r"), N("u")), KJ_EINVAL,
        "sender_key_store: empty name");
  IS_RC(kj_sender_key_load(b, NULL, d, N("g::alice"), &r, &rl, NULL, &ul),
        KJ_EINVAL, "sender_key_load: NULL urec");
  ok(kj_sender_key_get(b, NULL, d, N("g"), &r, &rl) == KJ_NOTFOUND,
     "%s: bad input stored nothing", what);
  kj_tx *t = NULL;
  kj_backend_begin(b, &t);
  IS_OK(kj_sender_key_store(b, t, d, N("g::alice"), N("sk5"), N("u5")),
        "sender_key_store in t");
  ok(kj_sender_key_load(b, t, d, N("g::alice"), &r, &rl, &u, &ul) == KJ_OK &&
         ul == 2 && !memcmp(u, "u5", 2),
     "%s: ... seen in t", what);
  kj_free(r);
  kj_free(u);
  kj_backend_rollback(t);
  ok(kj_sender_key_load(b, NULL, d, N("g::alice"), &r, &rl, &u, &ul) == KJ_OK &&
         rl == 3 && !memcmp(r, "sk4", 3) && !u,
     "%s: ... rolled back", what);
  kj_free(r);
}

static void i17_identity(kj_backend *b, const char *what) {
  uint32_t d = 0;
  kj_device_create(b, NULL, &d);
  uint8_t k33[33], got[33], got32[32];
  k33[0] = 0x05;
  tu_fill(k33 + 1, 32, 0x30);
  size_t gl = 99;
  IS_OK(kj_identity_put_key(b, NULL, d, N("alice"), k33, 33),
        "identity_put_key 33");
  ok(kj_identity_get_key(b, NULL, d, N("alice"), got, &gl) == KJ_OK &&
         gl == 33 && !memcmp(got, k33, 33),
     "%s: identity_get_key: the 33 bytes", what);
  ok(kj_identity_load(b, NULL, d, N("alice"), got32) == KJ_OK &&
         !memcmp(got32, k33 + 1, 32),
     "%s: identity_load: the key without its type byte", what);
  IS_OK(kj_identity_put(b, NULL, d, N("alice"), k33 + 1), "identity_put 32");
  ok(kj_identity_get_key(b, NULL, d, N("alice"), got, &gl) == KJ_OK &&
         gl == 32 && !memcmp(got, k33 + 1, 32),
     "%s: identity_get_key after identity_put: 32 bytes", what);
  IS_OK(kj_identity_put_key(b, NULL, d, N("alice"), k33, 32),
        "identity_put_key 32");
  ok(kj_identity_get_key(b, NULL, d, N("alice"), got, &gl) == KJ_OK &&
         gl == 32 && !memcmp(got, k33, 32),
     "%s: ... 32 bytes back", what);
  memset(got, 0x5a, sizeof got);
  IS_GONE(kj_identity_get_key(b, NULL, d, N("bob"), got, &gl),
          "identity_get_key absent");
  ok(gl == 0 && got[0] == 0x5a, "%s: ... klen 0, key_out untouched", what);
  IS_GONE(kj_identity_get_key(b, NULL, 99, N("alice"), got, &gl),
          "identity_get_key in a missing slot");
  IS_GONE(kj_identity_put_key(b, NULL, 99, N("alice"), k33, 33),
          "identity_put_key in a missing slot");
  IS_RC(kj_identity_put_key(b, NULL, d, N("alice"), k33, 34), KJ_EINVAL,
        "identity_put_key of 34 bytes");
  IS_RC(kj_identity_put_key(b, NULL, d, N("alice"), k33, 0), KJ_EINVAL,
        "identity_put_key of 0 bytes");
  IS_RC(kj_identity_put_key(b, NULL, d, N("alice"), NULL, 33), KJ_EINVAL,
        "identity_put_key of NULL");
  IS_RC(kj_identity_put_key(b, NULL, d, "a", 0, k33, 33), KJ_EINVAL,
        "identity_put_key: empty address");
  IS_RC(kj_identity_get_key(b, NULL, d, N("alice"), NULL, &gl), KJ_EINVAL,
        "identity_get_key: NULL key_out");
  IS_RC(kj_identity_get_key(b, NULL, d, N("alice"), got, NULL), KJ_EINVAL,
        "identity_get_key: NULL klen");
  ok(kj_identity_get_key(b, NULL, d, N("alice"), got, &gl) == KJ_OK && gl == 32,
     "%s: bad input changed nothing", what);
  kj_tx *t = NULL;
  kj_backend_begin(b, &t);
  IS_OK(kj_identity_put_key(b, t, d, N("alice"), k33, 33),
        "identity_put_key in t");
  ok(kj_identity_get_key(b, t, d, N("alice"), got, &gl) == KJ_OK && gl == 33,
     "%s: ... seen in t", what);
  kj_backend_rollback(t);
  ok(kj_identity_get_key(b, NULL, d, N("alice"), got, &gl) == KJ_OK && gl == 32,
     "%s: ... rolled back", what);
}

static int local_is(const kj_local_identity *a, const kj_local_identity *b) {
  return a->registration_id == b->registration_id &&
         a->public_len == b->public_len &&
         !memcmp(a->public_key, b->public_key, a->public_len) &&
         !memcmp(a->private_key, b->private_key, 32);
}

static void i17_local(kj_backend *b, const char *what) {
  uint32_t d = 0, d2 = 0;
  kj_device_create(b, NULL, &d);
  kj_device_create(b, NULL, &d2);
  kj_local_identity id, got;
  memset(&id, 0, sizeof id);
  id.registration_id = 0xFFFFFFFFu;
  id.public_len = 33;
  id.public_key[0] = 5;
  tu_fill(id.public_key + 1, 32, 0x11);
  tu_fill(id.private_key, 32, 0x77);
  memset(&got, 0x5a, sizeof got);
  IS_GONE(kj_local_identity_load(b, NULL, d, &got), "local_identity_load none");
  ok(got.registration_id == 0x5a5a5a5au, "%s: ... out untouched", what);
  IS_OK(kj_local_identity_save(b, NULL, d, &id), "local_identity_save");
  ok(kj_local_identity_load(b, NULL, d, &got) == KJ_OK && local_is(&got, &id),
     "%s: local_identity_load: what was saved", what);
  IS_GONE(kj_local_identity_load(b, NULL, d2, &got),
          "local_identity_load in another slot");
  /* Separate from the device record both ways. */
  kj_device_record rec;
  make_record(&rec, 9);
  IS_OK(kj_device_save(b, NULL, d, &rec), "device_save");
  ok(kj_local_identity_load(b, NULL, d, &got) == KJ_OK && local_is(&got, &id),
     "%s: ... a device save leaves it", what);
  kj_device_record *rp = NULL;
  IS_GONE(kj_device_load(b, NULL, d2, &rp), "device_load of slot 2");
  IS_OK(kj_local_identity_save(b, NULL, d2, &id), "local_identity_save 2");
  IS_GONE(kj_device_load(b, NULL, d2, &rp), "... writes no device record");
  ok(kj_device_load(b, NULL, d, &rp) == KJ_OK && rp &&
         rp->registration_id == rec.registration_id,
     "%s: ... nor changes one", what);
  kj_free(rp);
  id.public_len = 32;
  id.registration_id = 0;
  IS_OK(kj_local_identity_save(b, NULL, d, &id), "local_identity_save 32");
  memset(&got, 0x5a, sizeof got);
  ok(kj_local_identity_load(b, NULL, d, &got) == KJ_OK && local_is(&got, &id) &&
         got.public_key[32] == 0,
     "%s: ... replaces; the byte past 32 reads back 0", what);
  id.public_len = 31;
  IS_RC(kj_local_identity_save(b, NULL, d, &id), KJ_EINVAL,
        "local_identity_save: public_len 31");
  ok(strstr(kj_backend_errmsg(b), "public_len") != NULL, "%s: ... says so (%s)",
     what, kj_backend_errmsg(b));
  id.public_len = 34;
  IS_RC(kj_local_identity_save(b, NULL, d, &id), KJ_EINVAL,
        "local_identity_save: public_len 34");
  IS_RC(kj_local_identity_save(b, NULL, d, NULL), KJ_EINVAL,
        "local_identity_save: NULL");
  IS_RC(kj_local_identity_load(b, NULL, d, NULL), KJ_EINVAL,
        "local_identity_load: NULL");
  id.public_len = 33;
  IS_GONE(kj_local_identity_save(b, NULL, 99, &id),
          "local_identity_save in a missing slot");
  IS_GONE(kj_local_identity_save(b, NULL, 0, &id),
          "local_identity_save in slot 0");
  ok(kj_local_identity_load(b, NULL, d, &got) == KJ_OK && got.public_len == 32,
     "%s: bad input changed nothing", what);
  kj_tx *t = NULL;
  kj_backend_begin(b, &t);
  IS_OK(kj_local_identity_delete(b, t, d), "local_identity_delete in t");
  IS_GONE(kj_local_identity_load(b, t, d, &got), "... gone in t");
  kj_backend_rollback(t);
  IS_OK(kj_local_identity_load(b, NULL, d, &got), "... back after rollback");
  IS_OK(kj_local_identity_delete(b, NULL, d), "local_identity_delete");
  IS_GONE(kj_local_identity_load(b, NULL, d, &got), "... gone");
  IS_OK(kj_local_identity_delete(b, NULL, d), "... again: absent is OK");
  IS_GONE(kj_local_identity_delete(b, NULL, 99),
          "local_identity_delete in a missing slot");
  IS_OK(kj_device_delete(b, NULL, d2), "delete slot 2");
  IS_GONE(kj_local_identity_load(b, NULL, d2, &got),
          "... its local identity went with it");
}

/* *has of prekey_has (signed 0) or signed_prekey_has (signed 1), or
 * -100 - the status when the call failed. */
static int pk_has(kj_backend *b, kj_tx *t, int signed_, uint32_t dev,
                  uint32_t id) {
  int has = -1;
  int rc = signed_ ? kj_signed_prekey_has(b, t, dev, id, &has)
                   : kj_prekey_has(b, t, dev, id, &has);
  return rc ? -100 - rc : has;
}

static void i17_prekey_has(kj_backend *b, const char *what) {
  uint32_t d = 0;
  kj_device_create(b, NULL, &d);
  ok(pk_has(b, NULL, 0, d, 5) == 0, "%s: prekey_has absent: 0", what);
  IS_OK(kj_prekey_store(b, NULL, d, 5, N("pk"), 0), "prekey_store");
  ok(pk_has(b, NULL, 0, d, 5) == 1 && pk_has(b, NULL, 0, d, 6) == 0,
     "%s: prekey_has: 1 for the id, 0 for another", what);
  ok(pk_has(b, NULL, 0, 99, 5) == 0 && pk_has(b, NULL, 0, 0, 5) == 0,
     "%s: prekey_has in a missing slot: 0", what);
  IS_OK(kj_signed_prekey_store(b, NULL, d, UINT32_MAX, N("spk")),
        "signed_prekey_store");
  ok(pk_has(b, NULL, 1, d, UINT32_MAX) == 1 && pk_has(b, NULL, 1, d, 5) == 0,
     "%s: signed_prekey_has: 1 and 0 (pre-keys are another table)", what);
  ok(pk_has(b, NULL, 0, d, UINT32_MAX) == 0,
     "%s: prekey_has does not see signed pre-keys", what);
  kj_tx *t = NULL;
  kj_backend_begin(b, &t);
  IS_OK(kj_prekey_remove(b, t, d, 5), "prekey_remove in t");
  ok(pk_has(b, t, 0, d, 5) == 0, "%s: prekey_has: 0 inside t", what);
  IS_OK(kj_signed_prekey_remove(b, t, d, UINT32_MAX), "signed remove in t");
  ok(pk_has(b, t, 1, d, UINT32_MAX) == 0, "%s: signed_prekey_has: 0 inside t",
     what);
  IS_OK(kj_backend_commit(t), "commit");
  ok(pk_has(b, NULL, 0, d, 5) == 0 && pk_has(b, NULL, 1, d, UINT32_MAX) == 0,
     "%s: ... 0 after the commit", what);
  IS_RC(kj_prekey_has(b, NULL, d, 5, NULL), KJ_EINVAL, "prekey_has: NULL has");
  IS_RC(kj_signed_prekey_has(b, NULL, d, 5, NULL), KJ_EINVAL,
        "signed_prekey_has: NULL has");
}

static uint32_t find(kj_backend *b, kj_tx *t, const void *l, size_t ll) {
  uint32_t id = 12345;
  int rc = kj_device_find(b, t, l, ll, &id);
  return rc == KJ_NOTFOUND && id == 0 ? 0 : rc ? 0xEEEEEEEEu : id;
}

static void i17_labels(kj_backend *b, const char *what) {
  uint32_t first = 0, a = 0, c = 0, x = 12345, next = 0;
  kj_device_create(b, NULL, &first);
  is(find(b, NULL, N("alice")), 0, "%s: device_find absent: NOTFOUND, id 0",
     what);
  IS_OK(kj_device_create_labeled(b, NULL, N("alice"), &a),
        "device_create_labeled");
  is(a, first + 1, "%s: ... the next slot id", what);
  is(find(b, NULL, N("alice")), a, "%s: device_find", what);
  int ex = -1;
  ok(kj_device_exists(b, NULL, a, &ex) == KJ_OK && ex == 1,
     "%s: ... the slot exists", what);
  IS_RC(kj_device_create_labeled(b, NULL, N("alice"), &x), KJ_EEXIST,
        "device_create_labeled of a taken label");
  is(x, 0, "%s: ... id 0", what);
  IS_OK(kj_device_create(b, NULL, &next), "device_create");
  is(next, a + 1, "%s: ... the refused create used no id", what);
  is(find(b, NULL, N("ali")), 0, "%s: a prefix of a label finds nothing", what);
  IS_OK(kj_device_create_labeled(b, NULL, "alice\0", 6, &c),
        "device_create_labeled alice\\0");
  ok(c != a && find(b, NULL, "alice\0", 6) == c &&
         find(b, NULL, N("alice")) == a,
     "%s: ... labels compare exactly", what);
  kj_u32_list *l = NULL;
  ok(kj_device_list_ids(b, NULL, &l) == KJ_OK && l && l->n >= 4 &&
         l->v[l->n - 4] == first && l->v[l->n - 3] == a &&
         l->v[l->n - 2] == next && l->v[l->n - 1] == c,
     "%s: device_list_ids lists labeled slots", what);
  kj_free(l);
  uint8_t big[KJ_MAX_ID + 1];
  memset(big, 'L', sizeof big);
  uint32_t m = 0;
  IS_OK(kj_device_create_labeled(b, NULL, big, KJ_MAX_ID, &m),
        "device_create_labeled, KJ_MAX_ID bytes");
  is(find(b, NULL, big, KJ_MAX_ID), m, "%s: ... found", what);
  IS_RC(kj_device_create_labeled(b, NULL, big, KJ_MAX_ID + 1, &x), KJ_EINVAL,
        "device_create_labeled: KJ_MAX_ID + 1 bytes");
  ok(strstr(kj_backend_errmsg(b), "kj_device_create_labeled: label") != NULL,
     "%s: ... says so (%s)", what, kj_backend_errmsg(b));
  IS_RC(kj_device_create_labeled(b, NULL, NULL, 3, &x), KJ_EINVAL,
        "device_create_labeled: NULL label");
  IS_RC(kj_device_create_labeled(b, NULL, "a", 0, &x), KJ_EINVAL,
        "device_create_labeled: empty label");
  IS_RC(kj_device_create_labeled(b, NULL, N("zed"), NULL), KJ_EINVAL,
        "device_create_labeled: NULL id");
  is(find(b, NULL, N("zed")), 0, "%s: ... created nothing", what);
  IS_RC(kj_device_find(b, NULL, N("alice"), NULL), KJ_EINVAL,
        "device_find: NULL id");
  x = 7;
  IS_RC(kj_device_find(b, NULL, big, KJ_MAX_ID + 1, &x), KJ_EINVAL,
        "device_find: oversize label");
  is(x, 0, "%s: ... id cleared", what);
  IS_RC(kj_device_find(b, NULL, "", 0, &x), KJ_EINVAL,
        "device_find: empty label");

  /* Transactions. */
  kj_tx *t = NULL;
  uint32_t tb = 0;
  IS_OK(kj_backend_begin(b, &t), "begin");
  IS_OK(kj_device_create_labeled(b, t, N("bob"), &tb),
        "device_create_labeled in t");
  is(find(b, t, N("bob")), tb, "%s: ... found in t", what);
  IS_RC(kj_device_create_labeled(b, t, N("bob"), &x), KJ_EEXIST,
        "... a second one in t");
  IS_OK(kj_session_store(b, t, tb, N("n"), 1, N("r"), NULL, 0),
        "... t still usable");
  kj_backend_rollback(t);
  is(find(b, NULL, N("bob")), 0, "%s: rolled back: no label", what);
  IS_OK(kj_device_create_labeled(b, NULL, N("bob"), &tb),
        "device_create_labeled after the rollback");
  is(find(b, NULL, N("bob")), tb, "%s: ... found", what);

  /* Deleting the slot frees its label; the new slot gets a new id. */
  IS_OK(kj_backend_begin(b, &t), "begin");
  IS_OK(kj_device_delete(b, t, a), "delete alice's slot in t");
  is(find(b, t, N("alice")), 0, "%s: ... label gone in t", what);
  kj_backend_rollback(t);
  is(find(b, NULL, N("alice")), a, "%s: ... back after rollback", what);
  IS_OK(kj_device_delete(b, NULL, a), "delete alice's slot");
  is(find(b, NULL, N("alice")), 0, "%s: ... its label is free", what);
  uint32_t a2 = 0;
  IS_OK(kj_device_create_labeled(b, NULL, N("alice"), &a2),
        "device_create_labeled alice again");
  ok(a2 > tb && find(b, NULL, N("alice")) == a2,
     "%s: ... a new slot id (%u), found", what, a2);
  is(find(b, NULL, "alice\0", 6), c, "%s: other labels untouched", what);
}

#undef IS_OK
#undef IS_GONE
#undef IS_RC
#undef N

static void issue17(kj_backend *b, const char *what) {
  if (!b) {
    ok(0, "%s: backend open", what);
    return;
  }
  i17_sessions(b, what);
  i17_sender_keys(b, what);
  i17_identity(b, what);
  i17_local(b, what);
  i17_prekey_has(b, what);
  i17_labels(b, what);
  is(kj_backend_close(b), KJ_OK, "%s: close", what);
}

int main(void) {
  int64_t clk = T0_MS;
  kj_backend *b = open_sqlite(":memory:", &clk);
  ok(b != NULL, "memory: open");
  if (b) {
    every_op(b, &clk, "memory");
    is(kj_backend_close(b), KJ_OK, "memory: close");
  }
  char *dir = tu_mkdtemp();
  ok(dir != NULL, "temp dir");
  if (dir) {
    char *path = tu_path(dir, "every.db");
    clk = T0_MS;
    b = open_sqlite(path, &clk);
    ok(b != NULL, "file: open");
    if (b) {
      every_op(b, &clk, "file");
      is(kj_backend_close(b), KJ_OK, "file: close");
    }
    free(path);
    file_only(dir);
    tu_rmrf(dir);
    free(dir);
  }
  differential();
  clk = T0_MS;
  issue17(open_native(&clk), "i17 native");
  clk = T0_MS;
  issue17(open_sqlite(":memory:", &clk), "i17 sqlite memory");
  dir = tu_mkdtemp();
  if (dir) {
    char *path = tu_path(dir, "i17.db");
    clk = T0_MS;
    issue17(open_sqlite(path, &clk), "i17 sqlite file");
    free(path);
    tu_rmrf(dir);
    free(dir);
  }
  return tap_done();
}
