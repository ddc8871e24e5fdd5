/*
 * tests/test_libsignal.c - libkeyjournal-signal with the real
 * libsignal-protocol-c between two stores, Alice and Bob: X3DH from a
 * pre-key bundle and a conversation of more than 200 messages each way,
 * out-of-order delivery, both stores closed and reopened between messages,
 * one atomic commit (one fsync) per pre-key decryption and its rollback, a
 * child SIGKILLed in the middle of the conversation, group messages with
 * sender keys, an identity change, and the status mapping.
 *
 * libsignal's crypto provider is examples/crypto_openssl.c (OpenSSL 3,
 * shared with examples/signal_chat.c); the adapter library itself needs
 * none.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curve.h>
#include <group_cipher.h>
#include <group_session_builder.h>
#include <key_helper.h>
#include <protocol.h>
#include <ratchet.h>
#include <session_builder.h>
#include <session_cipher.h>
#include <session_pre_key.h>
#include <signal_protocol.h>

#include "crypto_openssl.h"
#include "keyjournal/device.h"
#include "keyjournal/signal.h"
#include "keyjournal/signal_store.h"
#include "keyjournal/store.h"
#include "tap.h"
#include "testutil.h"

/* ---- libsignal context (OpenSSL 3 provider: examples/crypto_openssl.c) */

static signal_context *g_ctx;

static void make_context(void) {
  if (signal_context_create(&g_ctx, NULL) != 0 ||
      crypto_openssl_install(g_ctx) != 0) {
    printf("Bail out! signal_context_create\n");
    exit(1);
  }
}

/* ---- parties ------------------------------------------------------------ */

typedef struct party {
  const char *name;
  int32_t device;
  char *dir;
  kj_backend *b;
  uint32_t slot;
  kj_signal_store *h;
  signal_protocol_store_context *sc;
} party;

static signal_protocol_address addr_of(const party *p) {
  signal_protocol_address a = {p->name, strlen(p->name), p->device};
  return a;
}

static void bail(const char *what) {
  printf("Bail out! %s\n", what);
  exit(1);
}

static void party_open(party *p) {
  p->b = tu_backend_open(p->dir, NULL);
  if (!p->b)
    bail("kj_backend_open");
  int st = kj_device_find(p->b, NULL, p->name, strlen(p->name), &p->slot);
  if (st == KJ_NOTFOUND)
    st = kj_device_create_labeled(p->b, NULL, p->name, strlen(p->name),
                                  &p->slot);
  if (st != KJ_OK)
    bail("slot");
  if (kj_signal_store_open(p->b, p->slot, &p->h) != KJ_OK ||
      signal_protocol_store_context_create(&p->sc, g_ctx) != 0 ||
      kj_signal_store_fill(p->h, p->sc) != 0)
    bail("kj_signal_store_open/fill");
}

static void party_close(party *p) {
  signal_protocol_store_context_destroy(p->sc);
  p->sc = NULL;
  kj_signal_store_close(p->h);
  p->h = NULL;
  if (kj_backend_close(p->b) != KJ_OK)
    bail("kj_backend_close");
  p->b = NULL;
}

static void party_reopen(party *p) {
  party_close(p);
  party_open(p);
}

static void party_new(party *p, const char *name, int32_t device) {
  memset(p, 0, sizeof *p);
  p->name = name;
  p->device = device;
  p->dir = tu_mkdtemp_or_bail();
  party_open(p);
}

/* A fresh identity, registration id, pre-keys [first, first + n) and
 * signed pre-key 1, all stored through the adapter. */
static void party_keys(party *p, uint32_t first, unsigned n) {
  ratchet_identity_key_pair *kp = NULL;
  uint32_t reg = 0;
  if (signal_protocol_key_helper_generate_identity_key_pair(&kp, g_ctx) ||
      signal_protocol_key_helper_generate_registration_id(&reg, 0, g_ctx))
    bail("generate identity");
  if (kj_signal_save_local_identity(p->h, kp, reg) != KJ_OK)
    bail("kj_signal_save_local_identity");
  signal_protocol_key_helper_pre_key_list_node *head = NULL;
  if (signal_protocol_key_helper_generate_pre_keys(&head, first, n, g_ctx))
    bail("generate pre-keys");
  if (kj_signal_begin(p->h) != KJ_OK)
    bail("begin");
  for (signal_protocol_key_helper_pre_key_list_node *e = head; e;
       e = signal_protocol_key_helper_key_list_next(e))
    if (signal_protocol_pre_key_store_key(
            p->sc, signal_protocol_key_helper_key_list_element(e)) != 0)
      bail("store pre-key");
  signal_protocol_key_helper_key_list_free(head);
  session_signed_pre_key *spk = NULL;
  if (signal_protocol_key_helper_generate_signed_pre_key(
          &spk, kp, 1, 1700000000000ull, g_ctx) ||
      signal_protocol_signed_pre_key_store_key(p->sc, spk))
    bail("signed pre-key");
  SIGNAL_UNREF(spk);
  SIGNAL_UNREF(kp);
  if (kj_signal_commit(p->h) != KJ_OK)
    bail("commit keys");
}

/* p's pre-key bundle with pre-key id, read back from p's store. */
static session_pre_key_bundle *party_bundle(party *p, uint32_t pre_key_id) {
  uint32_t reg = 0;
  ratchet_identity_key_pair *kp = NULL;
  session_pre_key *pk = NULL;
  session_signed_pre_key *spk = NULL;
  session_pre_key_bundle *bundle = NULL;
  if (signal_protocol_identity_get_local_registration_id(p->sc, &reg) ||
      signal_protocol_identity_get_key_pair(p->sc, &kp) ||
      signal_protocol_pre_key_load_key(p->sc, &pk, pre_key_id) ||
      signal_protocol_signed_pre_key_load_key(p->sc, &spk, 1))
    bail("load bundle keys");
  if (session_pre_key_bundle_create(
          &bundle, reg, p->device, pre_key_id,
          ec_key_pair_get_public(session_pre_key_get_key_pair(pk)), 1,
          ec_key_pair_get_public(session_signed_pre_key_get_key_pair(spk)),
          session_signed_pre_key_get_signature(spk),
          session_signed_pre_key_get_signature_len(spk),
          ratchet_identity_key_pair_get_public(kp)))
    bail("bundle");
  SIGNAL_UNREF(kp);
  SIGNAL_UNREF(pk);
  SIGNAL_UNREF(spk);
  return bundle;
}

/* from builds a session with to_addr from bundle: libsignal's status. */
static int build_session(party *from, const signal_protocol_address *to_addr,
                         session_pre_key_bundle *bundle) {
  session_builder *sb = NULL;
  if (session_builder_create(&sb, from->sc, to_addr, g_ctx))
    bail("session_builder_create");
  int rc = session_builder_process_pre_key_bundle(sb, bundle);
  session_builder_free(sb);
  return rc;
}

typedef struct msg {
  int type;
  signal_buffer *ct;
  char pt[64];
} msg;

/* from encrypts text to to_addr (in a transaction of its own when tx). */
static msg send_msg(party *from, const signal_protocol_address *to_addr,
                    const char *text, int tx) {
  msg m;
  memset(&m, 0, sizeof m);
  snprintf(m.pt, sizeof m.pt, "%s", text);
  session_cipher *c = NULL;
  ciphertext_message *cm = NULL;
  if (tx && kj_signal_begin(from->h) != KJ_OK)
    bail("begin send");
  if (session_cipher_create(&c, from->sc, to_addr, g_ctx) ||
      session_cipher_encrypt(c, (const uint8_t *)m.pt, strlen(m.pt), &cm))
    bail("encrypt");
  if (tx && kj_signal_commit(from->h) != KJ_OK)
    bail("commit send");
  m.type = ciphertext_message_get_type(cm);
  m.ct = signal_buffer_copy(ciphertext_message_get_serialized(cm));
  SIGNAL_UNREF(cm);
  session_cipher_free(c);
  return m;
}

/* to decrypts m from from_addr: libsignal's status; on success the
 * plaintext must be m's (a mismatch is SG_ERR_UNKNOWN). */
static int recv_msg(party *to, const signal_protocol_address *from_addr,
                    const msg *m) {
  session_cipher *c = NULL;
  signal_buffer *pt = NULL;
  int rc;
  if (session_cipher_create(&c, to->sc, from_addr, g_ctx))
    bail("session_cipher_create");
  if (m->type == CIPHERTEXT_PREKEY_TYPE) {
    pre_key_signal_message *pm = NULL;
    rc = pre_key_signal_message_deserialize(&pm, signal_buffer_data(m->ct),
                                            signal_buffer_len(m->ct), g_ctx);
    if (rc == 0)
      rc = session_cipher_decrypt_pre_key_signal_message(c, pm, NULL, &pt);
    SIGNAL_UNREF(pm);
  } else {
    signal_message *sm = NULL;
    rc = signal_message_deserialize(&sm, signal_buffer_data(m->ct),
                                    signal_buffer_len(m->ct), g_ctx);
    if (rc == 0)
      rc = session_cipher_decrypt_signal_message(c, sm, NULL, &pt);
    SIGNAL_UNREF(sm);
  }
  if (rc == 0 && (signal_buffer_len(pt) != strlen(m->pt) ||
                  memcmp(signal_buffer_data(pt), m->pt, strlen(m->pt)) != 0))
    rc = SG_ERR_UNKNOWN;
  signal_buffer_free(pt);
  session_cipher_free(c);
  return rc;
}

/* recv_msg inside begin/commit (commit only on success). */
static int recv_tx(party *to, const signal_protocol_address *from_addr,
                   const msg *m) {
  if (kj_signal_begin(to->h) != KJ_OK)
    bail("begin recv");
  int rc = recv_msg(to, from_addr, m);
  if (rc == 0) {
    int st = kj_signal_commit(to->h);
    if (st != KJ_OK)
      return kj_signal_status_to_sg(st);
  } else {
    kj_signal_rollback(to->h);
  }
  return rc;
}

static void msg_free(msg *m) {
  signal_buffer_free(m->ct);
  m->ct = NULL;
}

static kj_stats party_stats(party *p) {
  kj_stats s = KJ_STATS_INIT;
  if (kj_store_stats(kj_backend_store(p->b), &s) != KJ_OK)
    bail("kj_store_stats");
  return s;
}

static void shuffle(size_t *v, size_t n) {
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)rand() % i;
    size_t t = v[i - 1];
    v[i - 1] = v[j];
    v[j] = t;
  }
}

static party alice, bob;

/* ---- X3DH, one atomic pre-key decryption, the conversation -------------- */

static void test_x3dh(void) {
  party_new(&alice, "alice", 1);
  party_new(&bob, "bob", 2);
  party_keys(&alice, 100, 5);
  party_keys(&bob, 1, 10);
  signal_protocol_address aa = addr_of(&alice), ba = addr_of(&bob);

  /* Alice builds her session from Bob's bundle: one commit. */
  session_pre_key_bundle *bundle = party_bundle(&bob, 1);
  kj_stats s0 = party_stats(&alice);
  ok(kj_signal_begin(alice.h) == KJ_OK, "x3dh: begin");
  is(build_session(&alice, &ba, bundle), SG_SUCCESS,
     "x3dh: Alice processes Bob's pre-key bundle");
  is(kj_signal_commit(alice.h), KJ_OK, "x3dh: commit");
  kj_stats s1 = party_stats(&alice);
  is(s1.commits - s0.commits, 1, "x3dh: building the session is one commit");
  SIGNAL_UNREF(bundle);
  is(signal_protocol_session_contains_session(alice.sc, &ba), 1,
     "x3dh: Alice has a session with Bob");

  msg m = send_msg(&alice, &ba, "hello bob", 1);
  is(m.type, CIPHERTEXT_PREKEY_TYPE,
     "x3dh: the first message is a pre-key "
     "message");

  /* A failed delivery is undone: decrypt, then roll back. */
  ok(kj_signal_begin(bob.h) == KJ_OK, "rollback: begin");
  is(recv_msg(&bob, &aa, &m), SG_SUCCESS, "rollback: Bob decrypts");
  ok(kj_signal_in_transaction(bob.h), "rollback: still in the transaction");
  kj_signal_rollback(bob.h);
  int has = -1;
  ok(kj_prekey_has(bob.b, NULL, bob.slot, 1, &has) == KJ_OK && has == 1,
     "rollback: pre-key 1 is back");
  is(signal_protocol_session_contains_session(bob.sc, &aa), 0,
     "rollback: no session with Alice");

  /* Decrypting it for good: one commit, one fsync. */
  kj_stats b0 = party_stats(&bob);
  is(recv_tx(&bob, &aa, &m), SG_SUCCESS,
     "atomic: the same message decrypts again, in one transaction");
  kj_stats b1 = party_stats(&bob);
  is(b1.commits - b0.commits, 1, "atomic: one commit");
  is(b1.syncs - b0.syncs, 1, "atomic: one fsync");
  ok(kj_prekey_has(bob.b, NULL, bob.slot, 1, &has) == KJ_OK && has == 0,
     "atomic: pre-key 1 is consumed");
  is(signal_protocol_session_contains_session(bob.sc, &aa), 1,
     "atomic: Bob has a session with Alice");
  is(recv_tx(&bob, &aa, &m), SG_ERR_DUPLICATE_MESSAGE,
     "atomic: the pre-key message does not decrypt twice");
  msg_free(&m);

  /* Without begin, the same message commits twice (session, then
   * pre-key removal): the reason for begin/commit. */
  party carol;
  party_new(&carol, "carol", 3);
  party_keys(&carol, 500, 2);
  bundle = party_bundle(&bob, 2);
  is(build_session(&carol, &ba, bundle), SG_SUCCESS,
     "no tx: Carol builds a session with Bob");
  SIGNAL_UNREF(bundle);
  signal_protocol_address ca = addr_of(&carol);
  m = send_msg(&carol, &ba, "hi from carol", 0);
  b0 = party_stats(&bob);
  is(recv_msg(&bob, &ca, &m), SG_SUCCESS, "no tx: Bob decrypts Carol's");
  b1 = party_stats(&bob);
  ok(b1.commits - b0.commits >= 2,
     "no tx: each callback commits on its own (%llu commits)",
     (unsigned long long)(b1.commits - b0.commits));
  msg_free(&m);
  party_close(&carol);
  tu_rmrf(carol.dir);
  free(carol.dir);
}

static void test_conversation(void) {
  signal_protocol_address aa = addr_of(&alice), ba = addr_of(&bob);
  int a2b = 0, b2a = 0, bad = 0, reopens = 0;
  char text[64];
  for (int round = 0; round < 120; round++) {
    /* Alice sends 1..3, Bob answers 1..3: the ratchet turns every round. */
    int na = 1 + round % 3, nb = 1 + (round / 3) % 3;
    for (int i = 0; i < na; i++) {
      snprintf(text, sizeof text, "a->b %d.%d", round, i);
      msg m = send_msg(&alice, &ba, text, round % 2);
      int rc = round % 2 ? recv_tx(&bob, &aa, &m) : recv_msg(&bob, &aa, &m);
      if (rc != 0) {
        bad++;
        printf("# round %d a->b %d: %d\n", round, i, rc);
      }
      a2b++;
      msg_free(&m);
    }
    if (round % 10 == 9) {
      party_reopen(&alice);
      party_reopen(&bob);
      reopens++;
    }
    for (int i = 0; i < nb; i++) {
      snprintf(text, sizeof text, "b->a %d.%d", round, i);
      msg m = send_msg(&bob, &aa, text, round % 2 == 0);
      int rc = round % 2 ? recv_msg(&alice, &ba, &m) : recv_tx(&alice, &ba, &m);
      if (rc != 0) {
        bad++;
        printf("# round %d b->a %d: %d\n", round, i, rc);
      }
      b2a++;
      msg_free(&m);
    }
  }
  is(bad, 0, "conversation: every message decrypts");
  ok(a2b >= 200 && b2a >= 200,
     "conversation: %d messages Alice to Bob, %d Bob "
     "to Alice",
     a2b, b2a);
  ok(reopens >= 10, "conversation: both stores reopened %d times", reopens);
}

/* ---- out-of-order delivery ---------------------------------------------- */

static void ooo_one_way(party *from, party *to, const char *what) {
  signal_protocol_address fa = addr_of(from), ta = addr_of(to);
  enum { N = 30 };
  msg m[N];
  size_t order[N];
  char text[64];
  for (size_t i = 0; i < N; i++) {
    snprintf(text, sizeof text, "%s ooo %zu", what, i);
    m[i] = send_msg(from, &ta, text, 1);
    order[i] = i;
  }
  shuffle(order, N);
  int bad = 0, dup = 0;
  for (size_t k = 0; k < N; k++) {
    if (k == N / 2)
      party_reopen(to); /* skipped message keys survive a reopen */
    if (recv_tx(to, &fa, &m[order[k]]) != SG_SUCCESS)
      bad++;
  }
  for (size_t i = 0; i < N; i++)
    if (recv_tx(to, &fa, &m[i]) == SG_ERR_DUPLICATE_MESSAGE)
      dup++;
  is(bad, 0, "out of order %s: %d shuffled messages decrypt, across a reopen",
     what, N);
  is(dup, N, "out of order %s: none decrypts twice", what);
  for (size_t i = 0; i < N; i++)
    msg_free(&m[i]);
}

static void test_out_of_order(void) {
  ooo_one_way(&alice, &bob, "a->b");
  ooo_one_way(&bob, &alice, "b->a");
}

/* ---- a child SIGKILLed in the middle of the conversation ----------------- */

/* The child is Alice: for each of Bob's messages, in one transaction, it
 * decrypts it and encrypts a reply, commits (KJ_SYNC_FULL), and only then
 * acknowledges: "j, reply" on the pipe. */
static void kill_child(int fd, msg *from_bob, int n) {
  party_open(&alice);
  signal_protocol_address ba = addr_of(&bob);
  for (int j = 0; j < n; j++) {
    if (kj_signal_begin(alice.h) != KJ_OK)
      _exit(2);
    if (recv_msg(&alice, &ba, &from_bob[j]) != 0)
      _exit(3);
    char text[64];
    snprintf(text, sizeof text, "reply %d", j);
    session_cipher *c = NULL;
    ciphertext_message *cm = NULL;
    if (session_cipher_create(&c, alice.sc, &ba, g_ctx) ||
        session_cipher_encrypt(c, (const uint8_t *)text, strlen(text), &cm))
      _exit(4);
    if (kj_signal_commit(alice.h) != KJ_OK)
      _exit(5);
    signal_buffer *s = ciphertext_message_get_serialized(cm);
    uint32_t hdr[3] = {(uint32_t)j, (uint32_t)ciphertext_message_get_type(cm),
                       (uint32_t)signal_buffer_len(s)};
    uint8_t rec[4096];
    if (sizeof hdr + signal_buffer_len(s) > sizeof rec)
      _exit(6);
    memcpy(rec, hdr, sizeof hdr);
    memcpy(rec + sizeof hdr, signal_buffer_data(s), signal_buffer_len(s));
    /* One write under PIPE_BUF: atomic. */
    if (write(fd, rec, sizeof hdr + signal_buffer_len(s)) < 0)
      _exit(7);
    SIGNAL_UNREF(cm);
    session_cipher_free(c);
  }
  _exit(0);
}

static int read_full(int fd, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, (uint8_t *)buf + got, n - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return got == 0 ? 0 : -1;
    got += (size_t)r;
  }
  return 1;
}

static void test_sigkill_round(int round, int kill_after) {
  enum { M = 300 };
  signal_protocol_address aa = addr_of(&alice), ba = addr_of(&bob);
  static msg from_bob[M];
  char text[64];
  /* Bob's messages, encrypted in one transaction. */
  ok(kj_signal_begin(bob.h) == KJ_OK, "kill %d: begin", round);
  for (int j = 0; j < M; j++) {
    snprintf(text, sizeof text, "kill %d msg %d", round, j);
    from_bob[j] = send_msg(&bob, &aa, text, 0);
  }
  is(kj_signal_commit(bob.h), KJ_OK, "kill %d: Bob's %d messages committed",
     round, M);

  party_close(&alice);
  int fds[2];
  if (pipe(fds) != 0)
    bail("pipe");
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0)
    bail("fork");
  if (pid == 0) {
    close(fds[0]);
    kill_child(fds[1], from_bob, M);
  }
  close(fds[1]);
  static msg replies[M];
  int acked = 0, killed = 0;
  for (;;) {
    uint32_t hdr[3];
    int r = read_full(fds[0], hdr, sizeof hdr);
    if (r <= 0)
      break; /* EOF: the child is gone; a torn record is not an ack */
    uint8_t body[4096];
    if (hdr[2] > sizeof body || read_full(fds[0], body, hdr[2]) != 1)
      break;
    if ((int)hdr[0] != acked)
      break;
    memset(&replies[acked], 0, sizeof replies[acked]);
    replies[acked].type = (int)hdr[1];
    replies[acked].ct = signal_buffer_create(body, hdr[2]);
    snprintf(replies[acked].pt, sizeof replies[acked].pt, "reply %d", acked);
    acked++;
    if (!killed && acked == kill_after) {
      kill(pid, SIGKILL);
      killed = 1;
    }
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
     "kill %d: the child was killed in the middle (status %d)", round, status);
  ok(acked >= kill_after && acked < M - 12,
     "kill %d: %d messages acknowledged (killed after %d)", round, acked,
     kill_after);

  party_open(&alice);
  /* Every acknowledged message's state is there: none decrypts again. */
  int dup = 0;
  for (int j = 0; j < acked; j++) {
    if (kj_signal_begin(alice.h) != KJ_OK)
      bail("begin");
    if (recv_msg(&alice, &ba, &from_bob[j]) == SG_ERR_DUPLICATE_MESSAGE)
      dup++;
    kj_signal_rollback(alice.h);
  }
  is(dup, acked, "kill %d: all %d acknowledged messages are consumed", round,
     acked);
  /* The one after may have committed without its ack; the rest did not. */
  int next = recv_tx(&alice, &ba, &from_bob[acked]);
  ok(next == SG_SUCCESS || next == SG_ERR_DUPLICATE_MESSAGE,
     "kill %d: message %d decrypts or was committed unacknowledged (%d)", round,
     acked, next);
  int fresh = 0, twice = 0;
  for (int j = acked + 1; j < acked + 11; j++) {
    if (recv_tx(&alice, &ba, &from_bob[j]) == SG_SUCCESS)
      fresh++;
    if (recv_tx(&alice, &ba, &from_bob[j]) == SG_ERR_DUPLICATE_MESSAGE)
      twice++;
  }
  is(fresh, 10, "kill %d: the 10 unacknowledged messages after it decrypt once",
     round);
  is(twice, 10, "kill %d: ... and not twice", round);
  /* Bob reads every acknowledged reply. */
  int got = 0;
  for (int j = 0; j < acked; j++)
    if (recv_tx(&bob, &aa, &replies[j]) == SG_SUCCESS)
      got++;
  is(got, acked, "kill %d: Bob decrypts all %d acknowledged replies", round,
     acked);
  /* Alice's sending state survived: a new message after the reopen is
   * new to Bob (a lost state would reuse a message key: a duplicate). */
  msg m = send_msg(&alice, &ba, "after the kill", 1);
  is(recv_tx(&bob, &aa, &m), SG_SUCCESS,
     "kill %d: Alice's next message after the reopen decrypts", round);
  msg_free(&m);
  m = send_msg(&bob, &aa, "and back", 1);
  is(recv_tx(&alice, &ba, &m), SG_SUCCESS, "kill %d: and Bob's to Alice",
     round);
  msg_free(&m);
  for (int j = 0; j < M; j++)
    msg_free(&from_bob[j]);
  for (int j = 0; j < acked; j++)
    msg_free(&replies[j]);
}

static void test_sigkill(void) {
  test_sigkill_round(1, 1 + rand() % 10);
  test_sigkill_round(2, 20 + rand() % 40);
  test_sigkill_round(3, 100 + rand() % 100);
}

/* ---- group messages with sender keys ------------------------------------ */

static sender_key_message *
group_encrypt(party *p, const signal_protocol_sender_key_name *skn,
              const char *text) {
  group_cipher *gc = NULL;
  ciphertext_message *cm = NULL;
  if (kj_signal_begin(p->h) != KJ_OK ||
      group_cipher_create(&gc, p->sc, skn, g_ctx) ||
      group_cipher_encrypt(gc, (const uint8_t *)text, strlen(text), &cm) ||
      kj_signal_commit(p->h) != KJ_OK)
    bail("group encrypt");
  group_cipher_free(gc);
  return (sender_key_message *)cm;
}

static int group_decrypt(party *p, const signal_protocol_sender_key_name *skn,
                         sender_key_message *m, const char *want) {
  group_cipher *gc = NULL;
  signal_buffer *pt = NULL;
  if (group_cipher_create(&gc, p->sc, skn, g_ctx))
    bail("group_cipher_create");
  if (kj_signal_begin(p->h) != KJ_OK)
    bail("begin");
  int rc = group_cipher_decrypt(gc, m, NULL, &pt);
  if (rc == 0 && (signal_buffer_len(pt) != strlen(want) ||
                  memcmp(signal_buffer_data(pt), want, strlen(want)) != 0))
    rc = SG_ERR_UNKNOWN;
  if (rc == 0)
    rc = kj_signal_status_to_sg(kj_signal_commit(p->h));
  else
    kj_signal_rollback(p->h);
  signal_buffer_free(pt);
  group_cipher_free(gc);
  return rc;
}

/* sender distributes its sender key of group to receiver over their
 * pairwise session. */
static void distribute(party *sender, party *receiver,
                       const signal_protocol_sender_key_name *skn) {
  group_session_builder *gb = NULL;
  sender_key_distribution_message *dm = NULL;
  if (group_session_builder_create(&gb, sender->sc, g_ctx) ||
      kj_signal_begin(sender->h) != KJ_OK ||
      group_session_builder_create_session(gb, &dm, skn) ||
      kj_signal_commit(sender->h) != KJ_OK)
    bail("create group session");
  group_session_builder_free(gb);
  signal_buffer *ser =
      ciphertext_message_get_serialized((ciphertext_message *)dm);
  /* Over the 1:1 session. */
  signal_protocol_address ra = addr_of(receiver), sa = addr_of(sender);
  session_cipher *c = NULL;
  ciphertext_message *cm = NULL;
  if (session_cipher_create(&c, sender->sc, &ra, g_ctx) ||
      session_cipher_encrypt(c, signal_buffer_data(ser), signal_buffer_len(ser),
                             &cm))
    bail("encrypt distribution");
  session_cipher_free(c);
  SIGNAL_UNREF(dm);
  signal_message *sm = NULL;
  signal_buffer *pt = NULL;
  signal_buffer *wire = ciphertext_message_get_serialized(cm);
  if (signal_message_deserialize(&sm, signal_buffer_data(wire),
                                 signal_buffer_len(wire), g_ctx) ||
      session_cipher_create(&c, receiver->sc, &sa, g_ctx) ||
      kj_signal_begin(receiver->h) != KJ_OK ||
      session_cipher_decrypt_signal_message(c, sm, NULL, &pt))
    bail("decrypt distribution");
  SIGNAL_UNREF(sm);
  SIGNAL_UNREF(cm);
  session_cipher_free(c);
  sender_key_distribution_message *rdm = NULL;
  if (sender_key_distribution_message_deserialize(
          &rdm, signal_buffer_data(pt), signal_buffer_len(pt), g_ctx) ||
      group_session_builder_create(&gb, receiver->sc, g_ctx) ||
      group_session_builder_process_session(gb, skn, rdm) ||
      kj_signal_commit(receiver->h) != KJ_OK)
    bail("process distribution");
  group_session_builder_free(gb);
  SIGNAL_UNREF(rdm);
  signal_buffer_free(pt);
}

static void group_one_way(party *sender, party *receiver, const char *group) {
  signal_protocol_sender_key_name skn = {
      group,
      strlen(group),
      {sender->name, strlen(sender->name), sender->device}};
  distribute(sender, receiver, &skn);
  enum { N = 60 };
  sender_key_message *m[N];
  char text[N][64];
  size_t order[N];
  for (int i = 0; i < N; i++) {
    snprintf(text[i], sizeof text[i], "%s: %s says %d", group, sender->name, i);
    m[i] = group_encrypt(sender, &skn, text[i]);
    order[i] = (size_t)i;
    if (i == N / 2)
      party_reopen(sender);
  }
  int bad = 0;
  for (int i = 0; i < N / 2; i++)
    if (group_decrypt(receiver, &skn, m[i], text[i]) != SG_SUCCESS)
      bad++;
  party_reopen(receiver);
  shuffle(order + N / 2, N - N / 2);
  for (int i = N / 2; i < N; i++)
    if (group_decrypt(receiver, &skn, m[order[i]], text[order[i]]) !=
        SG_SUCCESS)
      bad++;
  is(bad, 0,
     "group %s from %s: %d messages, in order then shuffled, "
     "across reopens",
     group, sender->name, N);
  int dup = 0;
  for (int i = 0; i < N; i++)
    if (group_decrypt(receiver, &skn, m[i], text[i]) ==
        SG_ERR_DUPLICATE_MESSAGE)
      dup++;
  is(dup, N, "group %s from %s: none decrypts twice", group, sender->name);
  /* Another group of the same sender has no sender key. */
  signal_protocol_sender_key_name other = skn;
  other.group_id = "other-group";
  other.group_id_len = strlen(other.group_id);
  is(group_decrypt(receiver, &other, m[0], text[0]), SG_ERR_NO_SESSION,
     "group %s from %s: another group's name finds no sender key", group,
     sender->name);
  for (int i = 0; i < N; i++)
    SIGNAL_UNREF(m[i]);
}

static void test_group(void) {
  group_one_way(&alice, &bob, "family");
  group_one_way(&bob, &alice, "family");
  group_one_way(&alice, &bob, "work");
}

/* ---- an identity change -------------------------------------------------- */

static void test_identity_change(void) {
  signal_protocol_address aa = addr_of(&alice), ba = addr_of(&bob);
  /* Alice reinstalls: the same address, a new store and a new identity. */
  party alice2;
  party_new(&alice2, "alice", 1);
  party_keys(&alice2, 700, 2);
  session_pre_key_bundle *bundle = party_bundle(&bob, 3);
  is(build_session(&alice2, &ba, bundle), SG_SUCCESS,
     "identity: the new Alice builds a session with Bob");
  SIGNAL_UNREF(bundle);
  msg m = send_msg(&alice2, &ba, "new phone", 1);
  is(m.type, CIPHERTEXT_PREKEY_TYPE, "identity: a pre-key message");
  is(recv_tx(&bob, &aa, &m), SG_ERR_UNTRUSTED_IDENTITY,
     "identity: Bob refuses Alice's changed identity");
  int has = 0;
  ok(kj_prekey_has(bob.b, NULL, bob.slot, 3, &has) == KJ_OK && has == 1,
     "identity: the refused message consumed no pre-key");
  msg old = send_msg(&alice, &ba, "still the old phone", 1);
  is(recv_tx(&bob, &aa, &old), SG_SUCCESS,
     "identity: the old session still works");
  msg_free(&old);
  /* Bob accepts the new key (the user verified it). */
  ratchet_identity_key_pair *kp = NULL;
  if (signal_protocol_identity_get_key_pair(alice2.sc, &kp))
    bail("get key pair");
  is(signal_protocol_identity_save_identity(
         bob.sc, &aa, ratchet_identity_key_pair_get_public(kp)),
     SG_SUCCESS, "identity: Bob saves the new key");
  SIGNAL_UNREF(kp);
  is(recv_tx(&bob, &aa, &m), SG_SUCCESS, "identity: then the message decrypts");
  msg_free(&m);
  m = send_msg(&bob, &aa, "welcome back", 1);
  is(recv_tx(&alice2, &ba, &m), SG_SUCCESS, "identity: and Bob's reply too");
  msg_free(&m);

  /* Alice's side: a bundle for Bob signed by another identity. */
  party mallory;
  party_new(&mallory, "mallory", 9);
  party_keys(&mallory, 900, 2);
  bundle = party_bundle(&mallory, 900);
  is(build_session(&alice, &ba, bundle), SG_ERR_UNTRUSTED_IDENTITY,
     "identity: Alice refuses a bundle for Bob with another identity");
  SIGNAL_UNREF(bundle);
  party_close(&mallory);
  tu_rmrf(mallory.dir);
  free(mallory.dir);
  party_close(&alice2);
  tu_rmrf(alice2.dir);
  free(alice2.dir);
}

/* ---- status mapping ----------------------------------------------------- */

static void test_status_mapping(void) {
  is(kj_signal_status_to_sg(KJ_OK), SG_SUCCESS, "map: KJ_OK");
  is(kj_signal_status_to_sg(KJ_NOTFOUND), SG_ERR_INVALID_KEY_ID,
     "map: KJ_NOTFOUND");
  is(kj_signal_status_to_sg(KJ_EINVAL), SG_ERR_INVAL, "map: KJ_EINVAL");
  is(kj_signal_status_to_sg(KJ_ENOMEM), SG_ERR_NOMEM, "map: KJ_ENOMEM");
  const int others[] = {KJ_EKEY,      KJ_ECORRUPT,  KJ_EIO,     KJ_ENOSPC,
                        KJ_EBUSY,     KJ_EPOISONED, KJ_EFORMAT, KJ_EEXIST,
                        KJ_EREADONLY, KJ_EDEADLK};
  int unk = 0;
  for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
    unk += kj_signal_status_to_sg(others[i]) == SG_ERR_UNKNOWN;
  is(unk, 10, "map: every storage failure is SG_ERR_UNKNOWN");

  /* Through the callbacks. */
  signal_protocol_address nobody = {"nobody", 6, 4};
  is(signal_protocol_session_contains_session(bob.sc, &nobody), 0,
     "callbacks: contains of an absent session is 0");
  session_pre_key *pk = NULL;
  is(signal_protocol_pre_key_load_key(bob.sc, &pk, 424242),
     SG_ERR_INVALID_KEY_ID, "callbacks: an absent pre-key");
  session_signed_pre_key *spk = NULL;
  is(signal_protocol_signed_pre_key_load_key(bob.sc, &spk, 77),
     SG_ERR_INVALID_KEY_ID, "callbacks: an absent signed pre-key");
  signal_protocol_address neg = {"bob", 3, -1};
  is(signal_protocol_session_contains_session(bob.sc, &neg), SG_ERR_INVAL,
     "callbacks: a negative device id is SG_ERR_INVAL");
  is(kj_signal_last_status(bob.h), KJ_EINVAL, "callbacks: last status");
  signal_int_list *devs = NULL;
  is(signal_protocol_session_get_sub_device_sessions(bob.sc, &devs, "alice", 5),
     1, "callbacks: Bob has one session with Alice's devices");
  signal_int_list_free(devs);

  /* A failed callback inside a transaction: commit refuses it. */
  ok(kj_signal_begin(bob.h) == KJ_OK, "failed tx: begin");
  is(signal_protocol_session_delete_session(bob.sc, &neg), SG_ERR_INVAL,
     "failed tx: a callback fails");
  is(kj_signal_commit(bob.h), KJ_EINVAL,
     "failed tx: commit rolls back and reports it");
  ok(!kj_signal_in_transaction(bob.h), "failed tx: over");
  is(kj_signal_commit(bob.h), KJ_EINVAL, "failed tx: no transaction open");

  /* A slot that does not exist: writes are SG_ERR_INVAL, reads empty. */
  kj_signal_store *ghost = NULL;
  signal_protocol_store_context *gsc = NULL;
  ok(kj_signal_store_open(bob.b, 999999, &ghost) == KJ_OK &&
         signal_protocol_store_context_create(&gsc, g_ctx) == 0 &&
         kj_signal_store_fill(ghost, gsc) == 0,
     "ghost slot: filled");
  uint8_t rec[] = {1, 2, 3};
  signal_protocol_session_store ss;
  (void)ss;
  is(signal_protocol_session_contains_session(gsc, &nobody), 0,
     "ghost slot: reads find nothing");
  session_record *sr = NULL;
  is(signal_protocol_session_load_session(gsc, &sr, &nobody), 0,
     "ghost slot: load_session of nothing is a fresh record");
  is(signal_protocol_session_store_session(gsc, &nobody, sr), SG_ERR_INVAL,
     "ghost slot: a write is SG_ERR_INVAL");
  is(kj_signal_last_status(ghost), KJ_NOTFOUND,
     "ghost slot: the keyjournal status is KJ_NOTFOUND");
  SIGNAL_UNREF(sr);
  (void)rec;
  signal_protocol_store_context_destroy(gsc);
  kj_signal_store_close(ghost);

  /* A read-only store: writes fail with SG_ERR_UNKNOWN, reads work. */
  party_close(&bob);
  kj_options o;
  tu_options(&o);
  o.read_only = 1;
  kj_backend *rb = tu_backend_open(bob.dir, &o);
  ok(rb != NULL, "read-only: open");
  if (rb) {
    kj_signal_store *rh = NULL;
    signal_protocol_store_context *rsc = NULL;
    uint32_t slot = 0;
    kj_device_find(rb, NULL, "bob", 3, &slot);
    kj_signal_store_open(rb, slot, &rh);
    signal_protocol_store_context_create(&rsc, g_ctx);
    kj_signal_store_fill(rh, rsc);
    signal_protocol_address aa = addr_of(&alice);
    is(signal_protocol_session_contains_session(rsc, &aa), 1,
       "read-only: reads work");
    is(signal_protocol_pre_key_remove_key(rsc, 5), SG_ERR_UNKNOWN,
       "read-only: a write is SG_ERR_UNKNOWN");
    is(kj_signal_last_status(rh), KJ_EREADONLY,
       "read-only: the keyjournal status is KJ_EREADONLY");
    signal_protocol_store_context_destroy(rsc);
    kj_signal_store_close(rh);
    kj_backend_close(rb);
  }
  party_open(&bob);
}

int main(void) {
  srand((unsigned)getpid());
  printf("# seed %u\n", (unsigned)getpid());
  make_context();
  test_x3dh();
  test_conversation();
  test_out_of_order();
  test_sigkill();
  test_group();
  test_identity_change();
  test_status_mapping();
  party_close(&alice);
  party_close(&bob);
  tu_rmrf(alice.dir);
  tu_rmrf(bob.dir);
  free(alice.dir);
  free(bob.dir);
  signal_context_destroy(g_ctx);
  return tap_done();
}
