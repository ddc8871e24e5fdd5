/*
 * src/engine/crypto.c - key derivation and frame sealing over libsodium.
 *
 * Argon2id stretches passphrases (parameters from the store header), the
 * KDF splits the master key into one subkey per purpose, and
 * XChaCha20-Poly1305-IETF seals journal frames. The journal picks the
 * nonces (doc/FORMAT.md 4.2): 16 random bytes per open handle and a frame
 * counter, never derived from the sequence number, which a cut frame's
 * successor reuses after recovery.
 */
#include <sodium.h>
#include <string.h>

#include "crypto.h"
#include "keyjournal/errors.h"

#define KDF_CONTEXT "kjournal"

int kj_crypto_init(void) { return sodium_init() < 0 ? KJ_EIO : KJ_OK; }

int kj_keys_derive(const uint8_t *raw, const char *passphrase,
                   const uint8_t salt[KJ_SALT_BYTES], uint64_t opslimit,
                   uint64_t memlimit, kj_keys **out) {
  *out = NULL;
  uint8_t *master = sodium_malloc(crypto_kdf_KEYBYTES);
  if (!master)
    return KJ_ENOMEM;
  if (raw) {
    memcpy(master, raw, crypto_kdf_KEYBYTES);
  } else {
    if (opslimit < crypto_pwhash_argon2id_OPSLIMIT_MIN ||
        opslimit > crypto_pwhash_argon2id_OPSLIMIT_MAX ||
        memlimit < crypto_pwhash_argon2id_MEMLIMIT_MIN || memlimit > SIZE_MAX) {
      sodium_free(master);
      return KJ_EINVAL;
    }
    if (crypto_pwhash(master, crypto_kdf_KEYBYTES, passphrase,
                      strlen(passphrase), salt, opslimit, (size_t)memlimit,
                      crypto_pwhash_ALG_ARGON2ID13) != 0) {
      sodium_free(master);
      return KJ_ENOMEM; /* libsodium fails only when it cannot allocate */
    }
  }
  kj_keys *k = sodium_malloc(sizeof *k);
  if (!k) {
    sodium_free(master);
    return KJ_ENOMEM;
  }
  crypto_kdf_derive_from_key(k->header, sizeof k->header, 1, KDF_CONTEXT,
                             master);
  crypto_kdf_derive_from_key(k->journal, sizeof k->journal, 2, KDF_CONTEXT,
                             master);
  crypto_kdf_derive_from_key(k->snapshot, sizeof k->snapshot, 3, KDF_CONTEXT,
                             master);
  crypto_kdf_derive_from_key(k->side, sizeof k->side, 4, KDF_CONTEXT, master);
  sodium_free(master); /* sodium_free wipes before freeing */
  sodium_mprotect_readonly(k);
  *out = k;
  return KJ_OK;
}

void kj_keys_free(kj_keys *k) {
  if (k)
    sodium_free(k);
}

void kj_header_mac(const kj_keys *k, const uint8_t *data, size_t len,
                   uint8_t out[KJ_MAC_BYTES]) {
  crypto_generichash(out, KJ_MAC_BYTES, data, len, k->header, sizeof k->header);
}

int kj_header_mac_ok(const kj_keys *k, const uint8_t *data, size_t len,
                     const uint8_t *mac) {
  uint8_t want[KJ_MAC_BYTES];
  kj_header_mac(k, data, len, want);
  return sodium_memcmp(want, mac, KJ_MAC_BYTES) == 0;
}

#ifdef KJ_FUZZ_TEST_KEY
/* Test-only build switch for the frame fuzz target (fuzz/README.md): frames
 * are "sealed" as plaintext followed by a zero tag and opened without any
 * check, so fuzz inputs reach the plaintext decoder past the MAC. The
 * library is never built with it: see the #error below and Makefile.am. */
#ifdef KJ_LIBRARY_BUILD
#error "KJ_FUZZ_TEST_KEY is for fuzz targets only, never for the library"
#endif
void kj_seal(const uint8_t key[32], uint8_t *c, const uint8_t *m, size_t mlen,
             const uint8_t *ad, size_t adlen,
             const uint8_t nonce[KJ_NONCE_BYTES]) {
  (void)key;
  (void)ad;
  (void)adlen;
  (void)nonce;
  memmove(c, m, mlen);
  memset(c + mlen, 0, crypto_aead_xchacha20poly1305_ietf_ABYTES);
}

int kj_unseal(const uint8_t key[32], uint8_t *m, const uint8_t *c, size_t clen,
              const uint8_t *ad, size_t adlen,
              const uint8_t nonce[KJ_NONCE_BYTES]) {
  (void)key;
  (void)ad;
  (void)adlen;
  (void)nonce;
  if (clen < crypto_aead_xchacha20poly1305_ietf_ABYTES)
    return -1;
  memmove(m, c, clen - crypto_aead_xchacha20poly1305_ietf_ABYTES);
  return 0;
}
#else
void kj_seal(const uint8_t key[32], uint8_t *c, const uint8_t *m, size_t mlen,
             const uint8_t *ad, size_t adlen,
             const uint8_t nonce[KJ_NONCE_BYTES]) {
  crypto_aead_xchacha20poly1305_ietf_encrypt(c, NULL, m, mlen, ad, adlen, NULL,
                                             nonce, key);
}

int kj_unseal(const uint8_t key[32], uint8_t *m, const uint8_t *c, size_t clen,
              const uint8_t *ad, size_t adlen,
              const uint8_t nonce[KJ_NONCE_BYTES]) {
  return crypto_aead_xchacha20poly1305_ietf_decrypt(m, NULL, NULL, c, clen, ad,
                                                    adlen, nonce, key) == 0
             ? 0
             : -1;
}
#endif

void kj_random(void *buf, size_t n) { randombytes_buf(buf, n); }
