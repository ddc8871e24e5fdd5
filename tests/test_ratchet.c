/*
 * tests/test_ratchet.c - the ratchet store and session layer
 * (keyjournal/ratchet.h) on the native backend: state round trips (absent
 * chains, the table 40/41 bytes of doc/FORMAT.md section 8), the skipped-key
 * set (created_at kept for stored keys, the clock's now for new ones,
 * missing ones removed, last duplicate wins, ascending numeric order),
 * conversations and slots kept apart, delete, cleanup_skipped by age, the
 * rollback semantics of kj_ratchet_step, argument checks and damaged rows.
 *
 * Time is a test clock (kj_options.clock) that the tests move by hand.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyjournal/device.h"
#include "keyjournal/ratchet.h"
#include "tap.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------ */

typedef struct tclock {
  int64_t ms;
} tclock;

static int64_t tclock_now(void *ctx) { return ((tclock *)ctx)->ms; }

static tclock clk = {1700000000000LL};

static kj_backend *open_b(const char *dir, int read_only) {
  kj_options o;
  tu_options(&o);
  o.sync = KJ_SYNC_OFF;
  o.read_only = read_only;
  o.clock = tclock_now;
  o.clock_ctx = &clk;
  return tu_backend_open(dir, &o);
}

static void fill(uint8_t *p, size_t n, uint8_t seed) {
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)(seed * 31 + i);
}

/* A state with n skipped keys: public keys from pk_seed[i], msg_nums from
 * nums[i], message keys derived from mk_seed. */
static kj_ratchet_state *mkstate(uint8_t seed, size_t n, const uint8_t *pk,
                                 const uint32_t *nums, uint8_t mk_seed) {
  kj_ratchet_state *s = kj_ratchet_state_alloc(n);
  fill(s->root_key, 32, seed);
  s->has_sending_chain = 1;
  fill(s->sending_chain, 32, seed + 1);
  s->has_receiving_chain = 1;
  fill(s->receiving_chain, 32, seed + 2);
  fill(s->dh_self_secret, 32, seed + 3);
  s->has_dh_remote = 1;
  fill(s->dh_remote, 32, seed + 4);
  s->msg_send = 100u + seed;
  s->msg_recv = 200u + seed;
  s->prev_chain_len = 0xfffffff0u + seed;
  for (size_t i = 0; i < n; i++) {
    memset(s->skipped[i].public_key, pk[i], 32);
    s->skipped[i].msg_num = nums[i];
    fill(s->skipped[i].message_key, 32, (uint8_t)(mk_seed + i));
    s->skipped[i].created_at = 12345; /* ignored by save */
  }
  return s;
}

static int state_fields_eq(const kj_ratchet_state *a,
                           const kj_ratchet_state *b) {
  return !memcmp(a->root_key, b->root_key, 32) &&
         a->has_sending_chain == b->has_sending_chain &&
         (!a->has_sending_chain ||
          !memcmp(a->sending_chain, b->sending_chain, 32)) &&
         a->has_receiving_chain == b->has_receiving_chain &&
         (!a->has_receiving_chain ||
          !memcmp(a->receiving_chain, b->receiving_chain, 32)) &&
         !memcmp(a->dh_self_secret, b->dh_self_secret, 32) &&
         a->has_dh_remote == b->has_dh_remote &&
         (!a->has_dh_remote || !memcmp(a->dh_remote, b->dh_remote, 32)) &&
         a->msg_send == b->msg_send && a->msg_recv == b->msg_recv &&
         a->prev_chain_len == b->prev_chain_len;
}

/* The skipped key (pk byte, msg_num) of s, or NULL. */
static const kj_skipped_key *find(const kj_ratchet_state *s, uint8_t pk,
                                  uint32_t num) {
  for (size_t i = 0; i < s->n_skipped; i++)
    if (s->skipped[i].public_key[0] == pk && s->skipped[i].msg_num == num)
      return &s->skipped[i];
  return NULL;
}

static kj_ratchet_state *load(kj_backend *b, uint32_t dev, const char *conv) {
  kj_ratchet_state *s = NULL;
  int rc = kj_ratchet_load(b, NULL, dev, conv, strlen(conv), &s);
  if (rc && rc != KJ_NOTFOUND)
    printf("#   load: %d %s\n", rc, kj_backend_errmsg(b));
  return s;
}

static int save(kj_backend *b, uint32_t dev, const char *conv,
                const kj_ratchet_state *s) {
  int rc = kj_ratchet_save(b, NULL, dev, conv, strlen(conv), s);
  if (rc)
    printf("#   save: %d %s\n", rc, kj_backend_errmsg(b));
  return rc;
}

/* Exact bytes of a whole state allocation (struct + skipped keys), for
 * "unchanged" checks. */
static size_t state_bytes(const kj_ratchet_state *s) {
  return sizeof *s + s->n_skipped * sizeof(kj_skipped_key);
}
static uint8_t *snapshot_state(const kj_ratchet_state *s) {
  uint8_t *p = malloc(state_bytes(s));
  memcpy(p, s, sizeof *s);
  if (s->n_skipped)
    memcpy(p + sizeof *s, s->skipped, s->n_skipped * sizeof(kj_skipped_key));
  return p;
}
static int state_unchanged(const kj_ratchet_state *s, const uint8_t *snap) {
  return !memcmp(snap, s, sizeof *s) &&
         (!s->n_skipped || !memcmp(snap + sizeof *s, s->skipped,
                                   s->n_skipped * sizeof(kj_skipped_key)));
}

/* ---- kj_ratchet_state_alloc --------------------------------------------- */

static void test_alloc(void) {
  kj_ratchet_state *s = kj_ratchet_state_alloc(3);
  ok(s != NULL, "alloc: 3 keys");
  int zero = 1;
  const uint8_t *p = (const uint8_t *)s->root_key;
  for (size_t i = 0; i < 32; i++)
    zero &= p[i] == 0;
  ok(zero && !s->has_sending_chain && s->msg_send == 0, "alloc: zeroed");
  is(s->n_skipped, 3, "alloc: n_skipped = n");
  ok((const uint8_t *)s->skipped >= (const uint8_t *)(s + 1) &&
         (const uint8_t *)s->skipped < (const uint8_t *)(s + 1) + 16,
     "alloc: skipped keys right after the struct");
  ok(s->skipped[2].msg_num == 0 && s->skipped[2].created_at == 0,
     "alloc: skipped keys zeroed");
  s->skipped[2].message_key[31] = 1; /* ASan: inside the allocation */
  kj_free(s);
  s = kj_ratchet_state_alloc(0);
  ok(s && s->n_skipped == 0, "alloc: 0 keys");
  kj_free(s);
  ok(kj_ratchet_state_alloc(KJ_MAX_SKIPPED + 1) == NULL,
     "alloc: over KJ_MAX_SKIPPED is NULL");
  s = kj_ratchet_state_alloc(KJ_MAX_SKIPPED);
  ok(s != NULL, "alloc: KJ_MAX_SKIPPED");
  kj_free(s);
}

/* ---- save / load ----------------------------------------------------------
 */

static void test_round_trip(kj_backend *b, uint32_t dev) {
  kj_ratchet_state *got = (kj_ratchet_state *)&got;
  is(kj_ratchet_load(b, NULL, dev, "alice", 5, &got), KJ_NOTFOUND,
     "load: unknown conversation is KJ_NOTFOUND");
  ok(got == NULL, "load: *out NULL");
  int e = 7;
  is(kj_ratchet_exists(b, NULL, dev, "alice", 5, &e), KJ_OK, "exists: KJ_OK");
  is(e, 0, "exists: 0 before a save");

  /* Unsorted input; msg_nums that sort wrongly as little-endian bytes. */
  uint8_t pk[] = {9, 3, 3, 3, 3, 1};
  uint32_t nums[] = {5, 65536, 256, 1, 0x01000000u, 7};
  clk.ms = 1700000000999LL; /* 1700000000 s: rounded down */
  kj_ratchet_state *s = mkstate(1, 6, pk, nums, 50);
  is(save(b, dev, "alice", s), KJ_OK, "save: a state with 6 skipped keys");
  got = load(b, dev, "alice");
  ok(got && state_fields_eq(got, s), "load: every state field round-trips");
  is(got ? got->n_skipped : 0, 6, "load: 6 skipped keys");
  static const uint8_t wpk[] = {1, 3, 3, 3, 3, 9};
  static const uint32_t wnum[] = {7, 1, 256, 65536, 0x01000000u, 5};
  int order = got && got->n_skipped == 6;
  int created = order, mk = order;
  for (size_t i = 0; order && i < 6; i++) {
    order &= got->skipped[i].public_key[0] == wpk[i] &&
             got->skipped[i].public_key[31] == wpk[i] &&
             got->skipped[i].msg_num == wnum[i];
    created &= got->skipped[i].created_at == 1700000000;
    const kj_skipped_key *in = NULL;
    for (size_t j = 0; j < 6; j++)
      if (pk[j] == wpk[i] && nums[j] == wnum[i])
        in = &s->skipped[j];
    mk &= in && !memcmp(in->message_key, got->skipped[i].message_key, 32);
  }
  ok(order, "load: skipped keys ascending by (public_key, numeric msg_num)");
  ok(created, "save: new keys get the clock's now in seconds (not the "
              "caller's created_at)");
  ok(mk, "load: message keys round-trip");
  ok(got && (got->n_skipped == 0 ||
             ((const uint8_t *)got->skipped > (const uint8_t *)got &&
              (const uint8_t *)got->skipped < (const uint8_t *)(got + 1) + 16)),
     "load: skipped keys inside the one allocation");
  kj_free(got);
  kj_ratchet_exists(b, NULL, dev, "alice", 5, &e);
  is(e, 1, "exists: 1 after a save");

  /* Absent optional keys: garbage in the struct, zeros stored. */
  kj_ratchet_state *a = mkstate(2, 0, NULL, NULL, 0);
  a->has_sending_chain = a->has_receiving_chain = a->has_dh_remote = 0;
  is(save(b, dev, "absent", a), KJ_OK, "save: every optional key absent");
  got = load(b, dev, "absent");
  uint8_t z[32] = {0};
  ok(got && state_fields_eq(got, a) && !memcmp(got->sending_chain, z, 32) &&
         !memcmp(got->receiving_chain, z, 32) && !memcmp(got->dh_remote, z, 32),
     "load: absent keys come back absent and zeroed");
  ok(got && got->n_skipped == 0 && got->skipped == NULL,
     "load: no skipped keys");
  kj_free(got);

  /* Byte layout (FORMAT.md section 8). */
  uint8_t k[64], *v = NULL;
  size_t vl = 0;
  tu_be32(k, dev);
  memcpy(k + 4, "absent", 6);
  kj_get(kj_backend_store(b), NULL, 40, k, 10, (void **)&v, &vl);
  uint8_t want[176], *p = want;
  *p++ = 1;
  memcpy(p, a->root_key, 32), p += 32;
  *p++ = 0, memset(p, 0, 32), p += 32;
  *p++ = 0, memset(p, 0, 32), p += 32;
  memcpy(p, a->dh_self_secret, 32), p += 32;
  *p++ = 0, memset(p, 0, 32), p += 32;
  memcpy(p, "\x66\0\0\0\xca\0\0\0\xf2\xff\xff\xff", 12), p += 12;
  ok(v && vl == sizeof want && p == want + sizeof want && !memcmp(v, want, vl),
     "layout: table-40 row is the FORMAT.md layout (absent keys zero)");
  kj_free(v);
  uint8_t sk[64];
  size_t sl = tu_slot_name_key(sk, dev, "alice");
  memset(sk + sl, 3, 32);
  memcpy(sk + sl + 32, "\x00\x00\x01\x00", 4); /* msg_num 256, big-endian */
  v = NULL;
  int rc = kj_get(kj_backend_store(b), NULL, 41, sk, sl + 36, (void **)&v, &vl);
  uint8_t wsk[41];
  wsk[0] = 1;
  fill(wsk + 1, 32, 50 + 2); /* pk 3 / 256 was input #2 */
  memcpy(wsk + 33, "\x00\xf1\x53\x65\x00\x00\x00\x00", 8); /* 1700000000 LE */
  ok(rc == KJ_OK && vl == 41 && !memcmp(v, wsk, 41),
     "layout: table-41 key dev|lp(conv)|pk|BE msg_num, value mk|i64 LE");
  kj_free(v);
  kj_free(a);
  kj_free(s);
}

static void test_skipped_set(kj_backend *b, uint32_t dev) {
  clk.ms = 1000000; /* 1000 s */
  uint8_t pk1[] = {1, 2, 3};
  uint32_t n1[] = {1, 1, 1};
  kj_ratchet_state *s = mkstate(3, 3, pk1, n1, 10);
  save(b, dev, "set", s);
  kj_free(s);

  clk.ms = 2000500; /* 2000 s */
  /* keep (2,1) with a new message key, drop (1,1) and (3,1), add (4,9) and
   * (3,2); (4,9) is given twice: the last wins. */
  uint8_t pk2[] = {4, 2, 3, 4};
  uint32_t n2[] = {9, 1, 2, 9};
  s = mkstate(4, 4, pk2, n2, 90);
  is(save(b, dev, "set", s), KJ_OK, "set: second save");
  kj_ratchet_state *got = load(b, dev, "set");
  is(got ? got->n_skipped : 0, 3, "set: 3 keys (duplicate folded, 2 removed)");
  const kj_skipped_key *k21 = got ? find(got, 2, 1) : NULL;
  ok(k21 && k21->created_at == 1000,
     "set: a kept key keeps its created_at (1000, not 2000)");
  ok(k21 && !memcmp(k21->message_key, s->skipped[1].message_key, 32),
     "set: a kept key takes the new message key");
  const kj_skipped_key *k32 = got ? find(got, 3, 2) : NULL;
  ok(k32 && k32->created_at == 2000, "set: a new key gets now (2000)");
  const kj_skipped_key *k49 = got ? find(got, 4, 9) : NULL;
  ok(k49 && !memcmp(k49->message_key, s->skipped[3].message_key, 32),
     "set: the last of a duplicated key wins");
  ok(got && !find(got, 1, 1) && !find(got, 3, 1),
     "set: keys missing from the new set are removed");
  ok(got && state_fields_eq(got, s), "set: state fields replaced");
  kj_free(got);

  /* Same set again later: created_at still unchanged. */
  clk.ms = 3000000;
  save(b, dev, "set", s);
  got = load(b, dev, "set");
  k21 = got ? find(got, 2, 1) : NULL;
  k32 = got ? find(got, 3, 2) : NULL;
  ok(k21 && k21->created_at == 1000 && k32 && k32->created_at == 2000,
     "set: resaving the same set changes no created_at");
  kj_free(got);
  kj_free(s);

  /* Empty set removes every key of the conversation (only of it). */
  uint8_t pkx[] = {7};
  uint32_t nx[] = {7};
  s = mkstate(5, 1, pkx, nx, 1);
  save(b, dev, "set2", s); /* "set" is a prefix of "set2" */
  save(b, dev, "se", s);   /* and "se" of "set" */
  kj_free(s);
  s = mkstate(6, 0, NULL, NULL, 0);
  save(b, dev, "set", s);
  got = load(b, dev, "set");
  ok(got && got->n_skipped == 0, "set: an empty set removes every key");
  kj_free(got);
  uint8_t pfx[64];
  size_t pl = tu_slot_name_key(pfx, dev, "set");
  is(tu_raw_count(b, 41, pfx, pl), 0,
     "set: no table-41 row of the conversation");
  got = load(b, dev, "set2");
  ok(got && got->n_skipped == 1, "set: conversation set2 kept its key");
  kj_free(got);
  got = load(b, dev, "se");
  ok(got && got->n_skipped == 1, "set: conversation se kept its key");
  kj_free(got);
  kj_free(s);

  /* Clock before 1970 rounds down too. */
  clk.ms = -1;
  s = mkstate(7, 1, pkx, nx, 1);
  save(b, dev, "neg", s);
  got = load(b, dev, "neg");
  ok(got && got->n_skipped == 1 && got->skipped[0].created_at == -1,
     "set: clock -1 ms is -1 s (floor)");
  kj_free(got);
  kj_free(s);
  kj_ratchet_delete(b, NULL, dev, "neg", 3); /* out of test_cleanup's way */
}

/* Slots and conversations are separate; delete. */
static void test_isolation_delete(kj_backend *b, uint32_t d1, uint32_t d2) {
  clk.ms = 5000000;
  uint8_t pk[] = {1, 2};
  uint32_t n[] = {1, 2};
  kj_ratchet_state *s1 = mkstate(10, 2, pk, n, 1);
  kj_ratchet_state *s2 = mkstate(11, 1, pk, n, 2);
  save(b, d1, "bob", s1);
  save(b, d2, "bob", s2);
  kj_ratchet_state *got = load(b, d2, "bob");
  ok(got && state_fields_eq(got, s2) && got->n_skipped == 1,
     "slots: the same conversation id is separate per slot");
  kj_free(got);
  got = load(b, d1, "bob");
  ok(got && state_fields_eq(got, s1) && got->n_skipped == 2,
     "slots: and the first slot's is untouched");
  kj_free(got);

  char *before = tu_dump_backend(b);
  kj_tx *t = NULL;
  kj_backend_begin(b, &t);
  is(kj_ratchet_delete(b, t, d1, "bob", 3), KJ_OK, "delete: in a transaction");
  got = (kj_ratchet_state *)&got;
  is(kj_ratchet_load(b, t, d1, "bob", 3, &got), KJ_NOTFOUND,
     "delete: the transaction sees it gone");
  kj_backend_rollback(t);
  ok(tu_backend_unchanged(b, before), "delete: rollback keeps state and keys");
  free(before);

  is(kj_ratchet_delete(b, NULL, d1, "bob", 3), KJ_OK, "delete: conversation");
  int e = 1;
  kj_ratchet_exists(b, NULL, d1, "bob", 3, &e);
  is(e, 0, "delete: exists 0");
  got = (kj_ratchet_state *)&got;
  is(kj_ratchet_load(b, NULL, d1, "bob", 3, &got), KJ_NOTFOUND,
     "delete: load KJ_NOTFOUND");
  uint8_t pfx[64];
  size_t pl = tu_slot_name_key(pfx, d1, "bob");
  is(tu_raw_count(b, 41, pfx, pl), 0, "delete: its skipped keys are removed");
  got = load(b, d2, "bob");
  ok(got && got->n_skipped == 1, "delete: the other slot's keeps its keys");
  kj_free(got);
  is(kj_ratchet_delete(b, NULL, d1, "bob", 3), KJ_OK,
     "delete: absent conversation is KJ_OK");
  is(kj_ratchet_delete(b, NULL, d1 + 1000, "bob", 3), KJ_NOTFOUND,
     "delete: in an absent slot is KJ_NOTFOUND (a write)");

  /* Absent and zero slots. */
  before = tu_dump_backend(b);
  is(kj_ratchet_save(b, NULL, 0, "bob", 3, s1), KJ_NOTFOUND,
     "slots: save into slot 0 is KJ_NOTFOUND");
  is(kj_ratchet_save(b, NULL, d2 + 1000, "bob", 3, s1), KJ_NOTFOUND,
     "slots: save into an absent slot is KJ_NOTFOUND");
  is(kj_ratchet_delete(b, NULL, 0, "bob", 3), KJ_NOTFOUND,
     "slots: delete in slot 0 is KJ_NOTFOUND");
  uint64_t rm = 5;
  is(kj_ratchet_cleanup_skipped(b, NULL, 0, 0, &rm), KJ_NOTFOUND,
     "slots: cleanup of slot 0 is KJ_NOTFOUND");
  is(rm, 0, "slots: *removed 0 on failure");
  got = (kj_ratchet_state *)&got;
  is(kj_ratchet_load(b, NULL, 0, "bob", 3, &got), KJ_NOTFOUND,
     "slots: load in slot 0 finds nothing");
  kj_ratchet_exists(b, NULL, d2 + 1000, "bob", 3, &e);
  is(e, 0, "slots: exists in an absent slot is 0");
  ok(tu_backend_unchanged(b, before), "slots: none of that wrote a row");
  free(before);
  kj_free(s1);
  kj_free(s2);
}

static void test_cleanup(kj_backend *b, uint32_t dev, uint32_t other) {
  uint8_t pk[] = {1, 2};
  uint32_t n[] = {1, 2};
  kj_ratchet_state *s = mkstate(20, 2, pk, n, 1);
  clk.ms = 1000 * 1000LL;
  save(b, dev, "c1", s);   /* 2 keys at 1000 */
  save(b, other, "c1", s); /* another slot, also old */
  clk.ms = 1500 * 1000LL + 999;
  save(b, dev, "c2", s); /* 2 keys at 1500 */
  clk.ms = 2000 * 1000LL;
  save(b, dev, "c3", s);        /* 2 keys at 2000 */
  clk.ms = 2500 * 1000LL + 500; /* now = 2500 s */

  uint64_t rm = 99;
  is(kj_ratchet_cleanup_skipped(b, NULL, dev, 1000, &rm), KJ_OK,
     "cleanup: max_age 1000 at now 2500");
  is(rm, 2, "cleanup: removed the 2 keys older than 1500 (1500 stays)");
  kj_ratchet_state *g1 = load(b, dev, "c1"), *g2 = load(b, dev, "c2"),
                   *g3 = load(b, dev, "c3");
  ok(g1 && g1->n_skipped == 0, "cleanup: c1's keys (1000) are gone");
  ok(g1 && state_fields_eq(g1, s), "cleanup: c1's state stays");
  ok(g2 && g2->n_skipped == 2 && g2->skipped[0].created_at == 1500,
     "cleanup: c2's keys (created_at == now - max_age) stay");
  ok(g3 && g3->n_skipped == 2, "cleanup: c3's keys stay");
  kj_free(g1);
  kj_free(g2);
  kj_free(g3);
  g1 = load(b, other, "c1");
  ok(g1 && g1->n_skipped == 2, "cleanup: another slot's old keys stay");
  kj_free(g1);

  is(kj_ratchet_cleanup_skipped(b, NULL, dev, 999, &rm), KJ_OK,
     "cleanup: max_age 999");
  is(rm, 2, "cleanup: across conversations: c2's 2 keys");
  is(kj_ratchet_cleanup_skipped(b, NULL, dev, 0, &rm), KJ_OK,
     "cleanup: max_age 0");
  is(rm, 2, "cleanup: c3's 2 keys (2000 < 2500)");
  is(kj_ratchet_cleanup_skipped(b, NULL, dev, 0, &rm), KJ_OK,
     "cleanup: nothing left");
  is(rm, 0, "cleanup: returns 0");
  is(kj_ratchet_cleanup_skipped(b, NULL, other, INT64_MAX, &rm), KJ_OK,
     "cleanup: max_age INT64_MAX (no overflow)");
  is(rm, 0, "cleanup: removes nothing");

  /* In a rolled-back transaction: nothing removed. */
  char *before = tu_dump_backend(b);
  kj_tx *t = NULL;
  kj_backend_begin(b, &t);
  kj_ratchet_cleanup_skipped(b, t, other, 0, &rm);
  is(rm, 2, "cleanup: 2 in a transaction");
  kj_backend_rollback(t);
  ok(tu_backend_unchanged(b, before), "cleanup: rollback keeps them");
  free(before);
  kj_free(s);
}

/* ---- session layer --------------------------------------------------------
 */

typedef struct step_ctx {
  int fail;        /* return this from the step */
  int no_state;    /* return OK with no next */
  int bad_state;   /* produce a state with has_dh_remote 2 */
  int alloc_first; /* allocate next before failing */
  int calls;
} step_ctx;

/* Advance: msg_send + 1, a new skipped key. */
static int step_fn(void *arg, const kj_ratchet_state *cur,
                   kj_ratchet_state **next) {
  step_ctx *c = arg;
  c->calls++;
  if (c->no_state)
    return KJ_OK;
  kj_ratchet_state *n = kj_ratchet_state_alloc(cur->n_skipped + 1);
  if (!n)
    return KJ_ENOMEM;
  kj_skipped_key *keys = n->skipped;
  *n = *cur;
  n->skipped = keys;
  n->n_skipped = cur->n_skipped + 1;
  if (cur->n_skipped)
    memcpy(keys, cur->skipped, cur->n_skipped * sizeof *keys);
  memset(keys[cur->n_skipped].public_key, 0xee, 32);
  keys[cur->n_skipped].msg_num = cur->msg_send;
  n->msg_send++;
  if (c->bad_state)
    n->has_dh_remote = 2;
  if (c->fail) {
    if (c->alloc_first)
      *next = n;
    else
      kj_free(n);
    return c->fail;
  }
  *next = n;
  return KJ_OK;
}

static void test_step(const char *dir, kj_backend **bp, uint32_t dev) {
  kj_backend *b = *bp;
  clk.ms = 10000 * 1000LL;
  uint8_t pk[] = {1};
  uint32_t n[] = {1};
  kj_ratchet_state *s = mkstate(30, 1, pk, n, 1);
  save(b, dev, "sess", s);
  kj_free(s);
  kj_ratchet_state *st = load(b, dev, "sess");
  if (!st) {
    ok(0, "step: load");
    return;
  }
  kj_ratchet_state *orig_ptr = st;
  uint8_t *snap = snapshot_state(st);
  char *before = tu_dump_backend(b);

  step_ctx c = {.fail = 4242};
  is(kj_ratchet_step(b, NULL, dev, "sess", 4, &st, step_fn, &c), 4242,
     "step: a failing step returns its value");
  ok(st == orig_ptr && state_unchanged(st, snap),
     "step: failing step: *state unchanged");
  ok(tu_backend_unchanged(b, before), "step: failing step: nothing stored");

  c = (step_ctx){.fail = -7, .alloc_first = 1};
  is(kj_ratchet_step(b, NULL, dev, "sess", 4, &st, step_fn, &c), -7,
     "step: failing step that set *next (freed: no leak)");
  ok(st == orig_ptr && state_unchanged(st, snap), "step: *state unchanged");

  c = (step_ctx){.no_state = 1};
  is(kj_ratchet_step(b, NULL, dev, "sess", 4, &st, step_fn, &c), KJ_EINVAL,
     "step: KJ_OK without a state is KJ_EINVAL");
  ok(st == orig_ptr && state_unchanged(st, snap), "step: *state unchanged");

  c = (step_ctx){.bad_state = 1};
  is(kj_ratchet_step(b, NULL, dev, "sess", 4, &st, step_fn, &c), KJ_EINVAL,
     "step: a malformed new state fails the save (KJ_EINVAL)");
  ok(st == orig_ptr && state_unchanged(st, snap), "step: *state unchanged");

  c = (step_ctx){0};
  is(kj_ratchet_step(b, NULL, dev + 1000, "sess", 4, &st, step_fn, &c),
     KJ_NOTFOUND, "step: save into an absent slot fails (KJ_NOTFOUND)");
  is(c.calls, 1, "step: the step ran");
  ok(st == orig_ptr && state_unchanged(st, snap),
     "step: failed save: *state unchanged");
  ok(tu_backend_unchanged(b, before),
     "step: none of the failures stored anything");

  /* Save fails in a read-only backend (a writer excludes readers: close
   * it meanwhile). */
  kj_backend_close(b);
  kj_backend *ro = open_b(dir, 1);
  if (ro) {
    kj_ratchet_state *rs = load(ro, dev, "sess");
    kj_ratchet_state *rs_ptr = rs;
    uint8_t *rsnap = rs ? snapshot_state(rs) : NULL;
    c = (step_ctx){0};
    is(rs ? kj_ratchet_step(ro, NULL, dev, "sess", 4, &rs, step_fn, &c) : -1,
       KJ_EREADONLY, "step: save on a read-only backend fails");
    ok(rs && rs == rs_ptr && state_unchanged(rs, rsnap),
       "step: read-only: *state unchanged");
    free(rsnap);
    kj_free(rs);
    kj_backend_close(ro);
  } else {
    ok(0, "step: read-only open");
  }
  *bp = b = open_b(dir, 0);
  if (!b) {
    ok(0, "step: reopen");
    free(before);
    free(snap);
    kj_free(st);
    return;
  }

  /* Success. */
  c = (step_ctx){0};
  is(kj_ratchet_step(b, NULL, dev, "sess", 4, &st, step_fn, &c), KJ_OK,
     "step: success");
  ok(st && st->msg_send == 131 && st->n_skipped == 2,
     "step: *state is the new state");
  kj_ratchet_state *got = load(b, dev, "sess");
  ok(got && st && state_fields_eq(got, st) && got->n_skipped == 2,
     "step: the new state is stored");
  kj_free(got);

  /* Bad arguments. */
  is(kj_ratchet_step(b, NULL, dev, "sess", 4, NULL, step_fn, &c), KJ_EINVAL,
     "step: NULL state pointer");
  kj_ratchet_state *nul = NULL;
  is(kj_ratchet_step(b, NULL, dev, "sess", 4, &nul, step_fn, &c), KJ_EINVAL,
     "step: *state NULL");
  is(kj_ratchet_step(b, NULL, dev, "sess", 4, &st, NULL, &c), KJ_EINVAL,
     "step: NULL step");
  is(kj_ratchet_step(b, NULL, dev, "", 0, &st, step_fn, &c), KJ_EINVAL,
     "step: empty conversation");

  /* Inside a transaction. */
  kj_tx *t = NULL;
  kj_backend_begin(b, &t);
  c = (step_ctx){0};
  is(kj_ratchet_step(b, t, dev, "sess", 4, &st, step_fn, &c), KJ_OK,
     "step: inside a transaction");
  kj_ratchet_state *tg = NULL;
  kj_ratchet_load(b, t, dev, "sess", 4, &tg);
  ok(tg && tg->msg_send == 132, "step: visible in the transaction");
  kj_free(tg);
  is(kj_backend_commit(t), KJ_OK, "step: commit");
  got = load(b, dev, "sess");
  ok(got && got->msg_send == 132, "step: committed");
  kj_free(got);

  free(before);
  free(snap);
  kj_free(st);
}

/* ---- argument checks -------------------------------------------------------
 */

static uint8_t big[KJ_MAX_ID + 1];

static void test_bad_args(kj_backend *b, uint32_t dev) {
  kj_ratchet_state *s = mkstate(40, 0, NULL, NULL, 0);
  save(b, dev, "args", s);
  char *before = tu_dump_backend(b);
  const char *c = "args";
#define BADS(mutate, what)                                                     \
  do {                                                                         \
    kj_ratchet_state *m =                                                      \
        mkstate(41, 2, (uint8_t[]){1, 2}, (uint32_t[]){1, 2}, 0);              \
    mutate;                                                                    \
    is(kj_ratchet_save(b, NULL, dev, c, 4, m), KJ_EINVAL, "args: save %s",     \
       what);                                                                  \
    kj_free(m);                                                                \
  } while (0)
  BADS(m->has_sending_chain = 2, "has_sending_chain 2");
  BADS(m->has_receiving_chain = -1, "has_receiving_chain -1");
  BADS(m->has_dh_remote = 5, "has_dh_remote 5");
  BADS(m->skipped = NULL, "skipped NULL with n_skipped 2");
#undef BADS
  {
    /* A real array of KJ_MAX_SKIPPED + 1 distinct keys (not an allocation
     * of kj_ratchet_state_alloc, which refuses that many). */
    kj_ratchet_state over = *s;
    over.n_skipped = KJ_MAX_SKIPPED + 1;
    over.skipped = calloc(over.n_skipped, sizeof *over.skipped);
    for (size_t i = 0; i < over.n_skipped; i++)
      over.skipped[i].msg_num = (uint32_t)i;
    is(kj_ratchet_save(b, NULL, dev, c, 4, &over), KJ_EINVAL,
       "args: save n_skipped over KJ_MAX_SKIPPED");
    free(over.skipped);
  }
  is(kj_ratchet_save(b, NULL, dev, c, 4, NULL), KJ_EINVAL, "args: NULL state");
  is(kj_ratchet_save(b, NULL, dev, NULL, 4, s), KJ_EINVAL, "args: NULL conv");
  is(kj_ratchet_save(b, NULL, dev, c, 0, s), KJ_EINVAL, "args: empty conv");
  is(kj_ratchet_save(b, NULL, dev, big, KJ_MAX_ID + 1, s), KJ_EINVAL,
     "args: conv over KJ_MAX_ID");
  is(kj_ratchet_save(NULL, NULL, dev, c, 4, s), KJ_EINVAL, "args: NULL b");
  kj_ratchet_state *out = (kj_ratchet_state *)&out;
  is(kj_ratchet_load(b, NULL, dev, c, 0, &out), KJ_EINVAL,
     "args: load empty conv");
  ok(out == NULL, "args: load *out NULL on failure");
  is(kj_ratchet_load(b, NULL, dev, c, 4, NULL), KJ_EINVAL,
     "args: load NULL out");
  int e = 5;
  is(kj_ratchet_exists(b, NULL, dev, big, KJ_MAX_ID + 1, &e), KJ_EINVAL,
     "args: exists conv over KJ_MAX_ID");
  is(e, 0, "args: *exists 0 on failure");
  is(kj_ratchet_exists(b, NULL, dev, c, 4, NULL), KJ_EINVAL,
     "args: exists NULL out");
  is(kj_ratchet_delete(b, NULL, dev, NULL, 1), KJ_EINVAL,
     "args: delete NULL conv");
  uint64_t rm = 3;
  is(kj_ratchet_cleanup_skipped(b, NULL, dev, -1, &rm), KJ_EINVAL,
     "args: cleanup max_age -1");
  is(rm, 0, "args: *removed 0 on failure");
  is(kj_ratchet_cleanup_skipped(b, NULL, dev, INT64_MIN, &rm), KJ_EINVAL,
     "args: cleanup max_age INT64_MIN");
  is(kj_ratchet_cleanup_skipped(b, NULL, dev, 0, NULL), KJ_EINVAL,
     "args: cleanup NULL removed");
  kj_backend *m = open_b(NULL, 0);
  kj_tx *t = NULL;
  kj_backend_begin(m, &t);
  is(kj_ratchet_save(b, t, dev, c, 4, s), KJ_EINVAL,
     "args: another backend's transaction");
  kj_backend_rollback(t);
  kj_backend_close(m);
  ok(tu_backend_unchanged(b, before), "args: no bad call changed a row");
  free(before);
  kj_free(s);

  /* n_skipped == KJ_MAX_SKIPPED is accepted. */
  s = kj_ratchet_state_alloc(KJ_MAX_SKIPPED);
  for (size_t i = 0; i < KJ_MAX_SKIPPED; i++) {
    s->skipped[i].public_key[0] = (uint8_t)(i >> 8);
    s->skipped[i].msg_num = (uint32_t)i;
  }
  is(kj_ratchet_save(b, NULL, dev, "max", 3, s), KJ_OK,
     "args: KJ_MAX_SKIPPED keys are accepted");
  kj_ratchet_state *g = load(b, dev, "max");
  ok(g && g->n_skipped == KJ_MAX_SKIPPED &&
         g->skipped[KJ_MAX_SKIPPED - 1].msg_num == KJ_MAX_SKIPPED - 1,
     "args: and load back");
  kj_free(g);
  kj_free(s);
  kj_ratchet_delete(b, NULL, dev, "max", 3);
}

/* ---- damaged rows ----------------------------------------------------------
 */

static void test_corrupt(kj_backend *b, uint32_t dev) {
  uint8_t pk[] = {1};
  uint32_t n[] = {1};
  kj_ratchet_state *s = mkstate(50, 1, pk, n, 1);
  save(b, dev, "bad", s);
  uint8_t k[16];
  tu_be32(k, dev);
  memcpy(k + 4, "bad", 3);
  uint8_t *good = NULL;
  size_t gl = 0;
  kj_get(kj_backend_store(b), NULL, 40, k, 7, (void **)&good, &gl);

  uint8_t buf[300];
  struct {
    const char *what;
    size_t len;
    int want;
    int mutate; /* index to change, or -1 */
    uint8_t to;
  } cases[] = {
      {"empty value", 0, KJ_ECORRUPT, -1, 0},
      {"truncated", 175, KJ_ECORRUPT, -1, 0},
      {"trailing byte", 177, KJ_ECORRUPT, -1, 0},
      {"version 2", 176, KJ_EFORMAT, 0, 2},
      {"has_sending_chain 2", 176, KJ_ECORRUPT, 33, 2},
      {"absent key with non-zero bytes", 176, KJ_ECORRUPT, 33, 0},
      {"garbage", 176, KJ_ECORRUPT, -2, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    memset(buf, 0, sizeof buf);
    memcpy(buf, good, gl);
    if (cases[i].mutate >= 0)
      buf[cases[i].mutate] = cases[i].to;
    if (cases[i].mutate == -2) {
      tu_rng r;
      tu_rng_seed(&r, 7);
      tu_rng_fill(&r, buf, sizeof buf);
      buf[0] = 1;
    }
    tu_raw_put(b, 40, k, 7, buf, cases[i].len);
    kj_ratchet_state *got = (kj_ratchet_state *)&got;
    is(kj_ratchet_load(b, NULL, dev, "bad", 3, &got), cases[i].want,
       "corrupt: table 40 %s", cases[i].what);
    ok(got == NULL, "corrupt: *out NULL");
  }
  tu_raw_put(b, 40, k, 7, good, gl);
  kj_ratchet_state *got = load(b, dev, "bad");
  ok(got != NULL, "corrupt: the repaired state loads");
  kj_free(got);

  /* Table 41 values. */
  uint8_t sk[64];
  size_t sl = tu_slot_name_key(sk, dev, "bad");
  memset(sk + sl, 1, 32);
  tu_be32(sk + sl + 32, 1);
  uint8_t *gv = NULL;
  size_t gvl = 0;
  kj_get(kj_backend_store(b), NULL, 41, sk, sl + 36, (void **)&gv, &gvl);
  struct {
    const char *what;
    const void *v;
    size_t len;
    int want;
  } sv[] = {
      {"empty", "", 0, KJ_ECORRUPT},
      {"truncated", gv, 40, KJ_ECORRUPT},
      {"version 2", "\x02xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 41,
       KJ_EFORMAT},
  };
  for (size_t i = 0; i < sizeof sv / sizeof sv[0]; i++) {
    tu_raw_put(b, 41, sk, sl + 36, sv[i].v, sv[i].len);
    got = (kj_ratchet_state *)&got;
    is(kj_ratchet_load(b, NULL, dev, "bad", 3, &got), sv[i].want,
       "corrupt: table 41 %s: load", sv[i].what);
    ok(got == NULL, "corrupt: *out NULL");
    uint64_t rm = 9;
    is(kj_ratchet_cleanup_skipped(b, NULL, dev, 0, &rm), sv[i].want,
       "corrupt: table 41 %s: cleanup", sv[i].what);
    char *before = tu_dump_backend(b);
    is(kj_ratchet_save(b, NULL, dev, "bad", 3, s), sv[i].want,
       "corrupt: table 41 %s: a save keeping that key", sv[i].what);
    char *after = tu_dump_backend(b);
    ok(tu_same_dump(before, after), "corrupt: the failed save wrote nothing");
    free(before);
    free(after);
  }
  /* A save that drops the damaged key repairs the conversation. */
  kj_ratchet_state *e = mkstate(51, 0, NULL, NULL, 0);
  is(kj_ratchet_save(b, NULL, dev, "bad", 3, e), KJ_OK,
     "corrupt: a save without the damaged key succeeds");
  kj_free(e);
  got = load(b, dev, "bad");
  ok(got && got->n_skipped == 0, "corrupt: and removes it");
  kj_free(got);

  /* A key of the wrong length under the conversation's prefix. */
  tu_raw_put(b, 41, sk, sl + 35, gv, gvl);
  got = (kj_ratchet_state *)&got;
  is(kj_ratchet_load(b, NULL, dev, "bad", 3, &got), KJ_ECORRUPT,
     "corrupt: a short table-41 key");
  uint64_t rm = 0;
  is(kj_ratchet_cleanup_skipped(b, NULL, dev, 0, &rm), KJ_ECORRUPT,
     "corrupt: cleanup sees it too");
  kj_delete(kj_backend_store(b), NULL, 41, sk, sl + 35);
  kj_free(gv);
  kj_free(good);
  kj_free(s);
}

int main(void) {
  char *dir = tu_mkdtemp();
  kj_backend *b = dir ? open_b(dir, 0) : NULL;
  if (!b) {
    printf("Bail out! cannot open a store\n");
    return 1;
  }
  uint32_t d1 = 0, d2 = 0;
  kj_device_create(b, NULL, &d1);
  kj_device_create(b, NULL, &d2);
  test_alloc();
  test_round_trip(b, d1);
  test_skipped_set(b, d1);
  test_isolation_delete(b, d1, d2);
  test_cleanup(b, d1, d2);
  test_bad_args(b, d1);
  test_corrupt(b, d1);
  test_step(dir, &b, d1);
  kj_backend_close(b);
  tu_rmrf(dir);
  free(dir);
  return tap_done();
}
