/*
 * examples/signal_chat.c - from nothing to an encrypted conversation
 * persisted in keyjournal.
 *
 * Two users, Alice and Bob, each with a keyjournal store of their own,
 * talk through libsignal-protocol-c. The program
 *   1. opens both stores and finds (or creates) each user's device slot;
 *   2. on the first run, generates each user's identity, registration id,
 *      pre-keys and signed pre-key, and saves them in one commit;
 *   3. has Alice start a session from Bob's pre-key bundle (X3DH), unless
 *      she already has one, and send; Bob decrypts each message inside
 *      kj_signal_begin / kj_signal_commit and replies;
 *   4. closes both stores, reopens them and goes on talking: every key and
 *      session came back from disk.
 * Run it again on the same directory and it finds the slots, keys and
 * sessions of the last run and continues the same conversation.
 *
 *   signal_chat [DIR]     stores in DIR/alice and DIR/bob (created when
 *                         missing); without DIR, in a new temporary dir
 *
 * Exit status 0 when every message decrypted, 1 on any failure (the
 * message says which call failed and why).
 *
 * In a real client the two parties are two devices and the "wire" is your
 * server; here both live in one process and a message is a buffer passed
 * from one to the other. libsignal needs a crypto provider:
 * crypto_openssl.c is one made with OpenSSL 3.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* mkdtemp, with -std=c11 */
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <key_helper.h> /* libsignal-protocol-c, pkg-config libsignal-protocol-c */
#include <protocol.h>
#include <session_builder.h>
#include <session_cipher.h>
#include <session_pre_key.h>
#include <signal_protocol.h>

#include <keyjournal.h> /* pkg-config keyjournal-signal */
#include <keyjournal/signal_store.h>

#include "crypto_openssl.h"

enum { PRE_KEYS = 10, SIGNED_PRE_KEY_ID = 1 };

/* The store key: KJ_KEY_BYTES (32) bytes that encrypt and authenticate
 * everything on disk. A constant only to keep the example short: a real
 * app makes 32 random bytes once (randombytes_buf) and keeps them in the
 * OS keystore (Android Keystore, iOS/macOS Keychain, libsecret, DPAPI),
 * or opens the store with kj_options.passphrase instead. */
static const uint8_t demo_key[KJ_KEY_BYTES] = {
    0x5e, 0x1d, 0x6a, 0x2c, 0x91, 0x0b, 0x7f, 0x33, 0xc4, 0x58, 0xe2,
    0x19, 0xad, 0x46, 0x80, 0xf7, 0x2b, 0x64, 0x0e, 0x9c, 0x37, 0xd5,
    0x71, 0xa8, 0x03, 0xbe, 0x4f, 0x12, 0xe9, 0x6d, 0x85, 0xc0};

static signal_context *g_sig; /* libsignal's context, crypto provider set */

typedef struct party {
  const char *name; /* the libsignal address name and the slot's label */
  signal_protocol_address addr;
  char dir[4096];
  kj_backend *b;                     /* the open store */
  uint32_t slot;                     /* this user's device slot in it */
  kj_signal_store *h;                /* libkeyjournal-signal's handle on it */
  signal_protocol_store_context *sc; /* libsignal's stores, filled from h */
} party;

/* ---- failing loudly ------------------------------------------------------ */

static void die(const party *p, const char *what, const char *why) {
  fflush(stdout); /* what happened so far, then the error */
  fprintf(stderr, "signal_chat: %s: %s failed: %s\n", p ? p->name : "setup",
          what, why);
  exit(1); /* nothing uncommitted is kept: the stores stay consistent */
}

/* A keyjournal status. */
static void kj_ok(const party *p, int st, const char *what) {
  if (st != KJ_OK)
    die(p, what, kj_strerror(st));
}

/* A libsignal status (negative is an error). SG_ERR_UNKNOWN from a store
 * callback is a storage failure: the adapter keeps keyjournal's status. */
static void sg_ok(const party *p, int rc, const char *what) {
  char why[160];
  if (rc >= 0)
    return;
  if (rc == SG_ERR_UNKNOWN && p && kj_signal_last_status(p->h) != KJ_OK)
    snprintf(why, sizeof why, "libsignal error %d, storage: %s", rc,
             kj_strerror(kj_signal_last_status(p->h)));
  else
    snprintf(why, sizeof why,
             "libsignal error %d (SG_ERR_* in "
             "signal_protocol.h)",
             rc);
  die(p, what, why);
}

/* ---- opening a store, finding the slot ----------------------------------- */

static void party_open(party *p) {
  kj_options o = KJ_OPTIONS_INIT; /* KJ_SYNC_FULL, KJ_OPEN_CREATE */
  o.key = demo_key;
  char *msg = NULL;
  int st = kj_backend_open(p->dir, &o, &p->b, &msg);
  if (st != KJ_OK)
    die(p, "kj_backend_open", msg ? msg : kj_strerror(st));

  /* One store can hold many accounts, one slot each. A labeled slot is
   * found again by its label on the next start: no id to keep elsewhere. */
  size_t len = strlen(p->name);
  st = kj_device_find(p->b, NULL, p->name, len, &p->slot);
  if (st == KJ_NOTFOUND) {
    kj_ok(p, kj_device_create_labeled(p->b, NULL, p->name, len, &p->slot),
          "kj_device_create_labeled");
    printf("%s: created slot %u \"%s\" in %s\n", p->name, p->slot, p->name,
           p->dir);
  } else {
    kj_ok(p, st, "kj_device_find");
    printf("%s: found slot %u \"%s\" in %s\n", p->name, p->slot, p->name,
           p->dir);
  }

  /* libsignal's five stores (sessions, pre-keys, signed pre-keys,
   * identities, sender keys) as callbacks on that slot. */
  kj_ok(p, kj_signal_store_open(p->b, p->slot, &p->h), "kj_signal_store_open");
  sg_ok(p, signal_protocol_store_context_create(&p->sc, g_sig),
        "signal_protocol_store_context_create");
  sg_ok(p, kj_signal_store_fill(p->h, p->sc), "kj_signal_store_fill");
}

static void party_close(party *p) {
  signal_protocol_store_context_destroy(p->sc); /* first: it uses h */
  kj_signal_store_close(p->h);
  kj_ok(p, kj_backend_close(p->b), "kj_backend_close"); /* final sync */
  p->sc = NULL;
  p->h = NULL;
  p->b = NULL;
}

/* ---- keys: once per device ----------------------------------------------- */

/* On the first run, a new identity key pair, registration id, PRE_KEYS
 * one-time pre-keys and a signed pre-key, saved in one transaction: after
 * a crash the slot has all of them or none. A real client then uploads the
 * public halves to its server (and marks them with kj_prekey_mark_uploaded). */
static void party_keys(party *p) {
  uint32_t reg = 0;
  if (signal_protocol_identity_get_local_registration_id(p->sc, &reg) ==
      SG_SUCCESS) {
    printf("%s: identity found, registration id %u\n", p->name, reg);
    return;
  }
  ratchet_identity_key_pair *identity = NULL;
  signal_protocol_key_helper_pre_key_list_node *pre_keys = NULL;
  session_signed_pre_key *signed_pre_key = NULL;
  uint64_t now_ms = (uint64_t)time(NULL) * 1000;
  sg_ok(p,
        signal_protocol_key_helper_generate_identity_key_pair(&identity, g_sig),
        "generate identity");
  sg_ok(p, signal_protocol_key_helper_generate_registration_id(&reg, 0, g_sig),
        "generate registration id");
  sg_ok(p,
        signal_protocol_key_helper_generate_pre_keys(&pre_keys, 1, PRE_KEYS,
                                                     g_sig),
        "generate pre-keys");
  sg_ok(p,
        signal_protocol_key_helper_generate_signed_pre_key(
            &signed_pre_key, identity, SIGNED_PRE_KEY_ID, now_ms, g_sig),
        "generate signed pre-key");

  kj_ok(p, kj_signal_begin(p->h), "kj_signal_begin");
  kj_ok(p, kj_signal_save_local_identity(p->h, identity, reg),
        "kj_signal_save_local_identity");
  for (signal_protocol_key_helper_pre_key_list_node *n = pre_keys; n;
       n = signal_protocol_key_helper_key_list_next(n))
    sg_ok(p,
          signal_protocol_pre_key_store_key(
              p->sc, signal_protocol_key_helper_key_list_element(n)),
          "store pre-key");
  sg_ok(p, signal_protocol_signed_pre_key_store_key(p->sc, signed_pre_key),
        "store signed pre-key");
  kj_ok(p, kj_signal_commit(p->h), "kj_signal_commit");
  printf("%s: new identity, registration id %u, pre-keys 1..%d, signed "
         "pre-key %d: saved in one commit\n",
         p->name, reg, PRE_KEYS, SIGNED_PRE_KEY_ID);

  signal_protocol_key_helper_key_list_free(pre_keys);
  SIGNAL_UNREF(signed_pre_key);
  SIGNAL_UNREF(identity);
}

/* ---- X3DH ---------------------------------------------------------------- */

/* Bob's pre-key bundle, as his server would hand it to Alice: his
 * registration id and identity key, one unused pre-key, the signed pre-key
 * with its signature. Read back from Bob's store. */
static session_pre_key_bundle *bundle_of(party *p) {
  uint32_t reg = 0, pre_key_id = 1;
  while (pre_key_id <= PRE_KEYS &&
         signal_protocol_pre_key_contains_key(p->sc, pre_key_id) != 1)
    pre_key_id++; /* skip the pre-keys already consumed */
  if (pre_key_id > PRE_KEYS)
    die(p, "bundle", "no unused pre-key left");
  ratchet_identity_key_pair *identity = NULL;
  session_pre_key *pk = NULL;
  session_signed_pre_key *spk = NULL;
  session_pre_key_bundle *bundle = NULL;
  sg_ok(p, signal_protocol_identity_get_local_registration_id(p->sc, &reg),
        "load registration id");
  sg_ok(p, signal_protocol_identity_get_key_pair(p->sc, &identity),
        "load identity");
  sg_ok(p, signal_protocol_pre_key_load_key(p->sc, &pk, pre_key_id),
        "load pre-key");
  sg_ok(p,
        signal_protocol_signed_pre_key_load_key(p->sc, &spk, SIGNED_PRE_KEY_ID),
        "load signed pre-key");
  sg_ok(p,
        session_pre_key_bundle_create(
            &bundle, reg, p->addr.device_id, pre_key_id,
            ec_key_pair_get_public(session_pre_key_get_key_pair(pk)),
            SIGNED_PRE_KEY_ID,
            ec_key_pair_get_public(session_signed_pre_key_get_key_pair(spk)),
            session_signed_pre_key_get_signature(spk),
            session_signed_pre_key_get_signature_len(spk),
            ratchet_identity_key_pair_get_public(identity)),
        "session_pre_key_bundle_create");
  printf("%s: pre-key bundle with pre-key %u\n", p->name, pre_key_id);
  SIGNAL_UNREF(identity);
  SIGNAL_UNREF(pk);
  SIGNAL_UNREF(spk);
  return bundle;
}

/* Alice starts a session with Bob, unless her store already has one. */
static void start_session(party *alice, party *bob) {
  if (signal_protocol_session_contains_session(alice->sc, &bob->addr) == 1) {
    printf("%s: session with %s found: continuing the conversation\n",
           alice->name, bob->name);
    return;
  }
  printf("%s: no session with %s yet: X3DH from %s's pre-key bundle\n",
         alice->name, bob->name, bob->name);
  session_pre_key_bundle *bundle = bundle_of(bob);
  session_builder *builder = NULL;
  sg_ok(alice, session_builder_create(&builder, alice->sc, &bob->addr, g_sig),
        "session_builder_create");
  /* Checks the signature, trusts Bob's identity on first use and stores
   * the new session: two writes, so one transaction. */
  kj_ok(alice, kj_signal_begin(alice->h), "kj_signal_begin");
  sg_ok(alice, session_builder_process_pre_key_bundle(builder, bundle),
        "session_builder_process_pre_key_bundle");
  kj_ok(alice, kj_signal_commit(alice->h), "kj_signal_commit");
  session_builder_free(builder);
  SIGNAL_UNREF(bundle);
}

/* ---- sending and receiving ----------------------------------------------- */

typedef struct wire {
  int type;             /* CIPHERTEXT_PREKEY_TYPE or CIPHERTEXT_SIGNAL_TYPE */
  signal_buffer *bytes; /* what the server carries */
} wire;

static wire send_text(party *from, const party *to, const char *text) {
  session_cipher *cipher = NULL;
  ciphertext_message *m = NULL;
  wire w;
  sg_ok(from, session_cipher_create(&cipher, from->sc, &to->addr, g_sig),
        "session_cipher_create");
  /* One write (the advanced session), hence one commit of its own. */
  sg_ok(from,
        session_cipher_encrypt(cipher, (const uint8_t *)text, strlen(text), &m),
        "session_cipher_encrypt");
  w.type = ciphertext_message_get_type(m);
  w.bytes = signal_buffer_copy(ciphertext_message_get_serialized(m));
  printf("%s -> %s: %s, %zu bytes\n", from->name, to->name,
         w.type == CIPHERTEXT_PREKEY_TYPE ? "pre-key message" : "message",
         signal_buffer_len(w.bytes));
  SIGNAL_UNREF(m);
  session_cipher_free(cipher);
  return w;
}

static uint64_t commits_of(party *p, uint64_t *syncs) {
  kj_stats s = KJ_STATS_INIT;
  kj_ok(p, kj_store_stats(kj_backend_store(p->b), &s), "kj_store_stats");
  *syncs = s.syncs;
  return s.commits;
}

/* Decrypt w inside one transaction: a pre-key message stores the new
 * session, trusts the sender's identity and consumes the pre-key, which
 * is one commit (one fsync) instead of one per write. */
static void receive(party *to, const party *from, wire *w) {
  session_cipher *cipher = NULL;
  signal_buffer *plain = NULL;
  uint64_t s0, s1, c0 = commits_of(to, &s0);
  int rc;
  sg_ok(to, session_cipher_create(&cipher, to->sc, &from->addr, g_sig),
        "session_cipher_create");
  kj_ok(to, kj_signal_begin(to->h), "kj_signal_begin");
  if (w->type == CIPHERTEXT_PREKEY_TYPE) {
    pre_key_signal_message *m = NULL;
    rc = pre_key_signal_message_deserialize(&m, signal_buffer_data(w->bytes),
                                            signal_buffer_len(w->bytes), g_sig);
    if (rc == SG_SUCCESS)
      rc = session_cipher_decrypt_pre_key_signal_message(cipher, m, NULL,
                                                         &plain);
    SIGNAL_UNREF(m);
  } else {
    signal_message *m = NULL;
    rc = signal_message_deserialize(&m, signal_buffer_data(w->bytes),
                                    signal_buffer_len(w->bytes), g_sig);
    if (rc == SG_SUCCESS)
      rc = session_cipher_decrypt_signal_message(cipher, m, NULL, &plain);
    SIGNAL_UNREF(m);
  }
  if (rc != SG_SUCCESS) {
    kj_signal_rollback(to->h); /* the stores are as before the call */
    sg_ok(to, rc, "decrypt");
  }
  /* Deliver, then commit. A real client saves the message in its own
   * database here and calls kj_signal_rollback if that fails: the message
   * then decrypts again on the next try instead of being lost. */
  printf("%s reads: \"%.*s\"\n", to->name, (int)signal_buffer_len(plain),
         (const char *)signal_buffer_data(plain));
  kj_ok(to, kj_signal_commit(to->h), "kj_signal_commit");
  uint64_t c1 = commits_of(to, &s1);
  if (w->type == CIPHERTEXT_PREKEY_TYPE)
    printf("%s: pre-key message handled in %llu commit, %llu fsync\n", to->name,
           (unsigned long long)(c1 - c0), (unsigned long long)(s1 - s0));
  signal_buffer_free(plain);
  session_cipher_free(cipher);
  signal_buffer_free(w->bytes);
  w->bytes = NULL;
}

/* Alice sends two messages, Bob reads them and answers. */
static void converse(party *alice, party *bob, const char *when) {
  char text[2][128];
  snprintf(text[0], sizeof text[0], "Hi Bob, %s.", when);
  snprintf(text[1], sizeof text[1], "Still there, %s?", when);
  wire w[2] = {send_text(alice, bob, text[0]), send_text(alice, bob, text[1])};
  receive(bob, alice, &w[0]);
  receive(bob, alice, &w[1]);
  snprintf(text[0], sizeof text[0], "Hi Alice, got both, %s.", when);
  wire r = send_text(bob, alice, text[0]);
  receive(alice, bob, &r);
}

/* ---- main ---------------------------------------------------------------- */

static void party_init(party *p, const char *name, const char *dir) {
  memset(p, 0, sizeof *p);
  p->name = name;
  p->addr.name = name;
  p->addr.name_len = strlen(name);
  p->addr.device_id = 1;
  if (snprintf(p->dir, sizeof p->dir, "%s/%s", dir, name) >= (int)sizeof p->dir)
    die(p, "store path", "too long");
  if (mkdir(p->dir, 0700) != 0 && errno != EEXIST)
    die(p, "mkdir", strerror(errno));
}

int main(int argc, char **argv) {
  char tmp[] = "/tmp/signal_chat.XXXXXX";
  const char *dir = argc > 1 ? argv[1] : mkdtemp(tmp);
  if (argc > 2 || !dir) {
    fprintf(stderr, "usage: signal_chat [DIR]\n");
    return 1;
  }
  if (mkdir(dir, 0700) != 0 && errno != EEXIST)
    die(NULL, "mkdir", strerror(errno));

  sg_ok(NULL, signal_context_create(&g_sig, NULL), "signal_context_create");
  sg_ok(NULL, crypto_openssl_install(g_sig), "crypto_openssl_install");

  party alice, bob;
  party_init(&alice, "alice", dir);
  party_init(&bob, "bob", dir);
  party_open(&alice);
  party_open(&bob);
  party_keys(&alice);
  party_keys(&bob);
  start_session(&alice, &bob);
  converse(&alice, &bob, "before the reopen");

  printf("-- closing both stores and opening them again --\n");
  party_close(&alice);
  party_close(&bob);
  party_open(&alice);
  party_open(&bob);
  converse(&alice, &bob, "after the reopen");

  party_close(&alice);
  party_close(&bob);
  signal_context_destroy(g_sig);
  printf("conversation OK: run `signal_chat %s` again to continue it\n", dir);
  return 0;
}
