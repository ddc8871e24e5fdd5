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
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "keyjournal/errors.h"
#include "secmem.h"

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

struct kj_sealer {
  uint8_t subkey[32];
};

kj_sealer *kj_sealer_new(const uint8_t key[32], const uint8_t prefix[16]) {
  (void)key;
  (void)prefix;
  return calloc(1, sizeof(kj_sealer));
}

void kj_sealer_free(kj_sealer *s) { free(s); }

void kj_sealer_seal(const kj_sealer *s, uint8_t *c, const uint8_t *m,
                    size_t mlen, const uint8_t *ad, size_t adlen,
                    uint64_t ctr) {
  uint8_t nonce[KJ_NONCE_BYTES] = {0};
  (void)ctr;
  kj_seal(s->subkey, c, m, mlen, ad, adlen, nonce);
}
#else
/* libsodium's ChaCha20 passes a message's last partial block through a
 * buffer on its own stack and leaves it there, plaintext after a decrypt
 * or an encrypt: the stack it used is overwritten (secmem.h). */
void kj_seal(const uint8_t key[32], uint8_t *c, const uint8_t *m, size_t mlen,
             const uint8_t *ad, size_t adlen,
             const uint8_t nonce[KJ_NONCE_BYTES]) {
  crypto_aead_xchacha20poly1305_ietf_encrypt(c, NULL, m, mlen, ad, adlen, NULL,
                                             nonce, key);
  kj_sec_burn_stack(2048);
}

int kj_unseal(const uint8_t key[32], uint8_t *m, const uint8_t *c, size_t clen,
              const uint8_t *ad, size_t adlen,
              const uint8_t nonce[KJ_NONCE_BYTES]) {
  int rc = crypto_aead_xchacha20poly1305_ietf_decrypt(m, NULL, NULL, c, clen,
                                                      ad, adlen, nonce, key);
  kj_sec_burn_stack(2048);
  return rc == 0 ? 0 : -1;
}
/* The sealer composes XChaCha20-Poly1305-IETF from its parts (the
 * construction of libsodium's crypto_aead_xchacha20poly1305_ietf_*):
 * subkey = HChaCha20(key, nonce[0..15]); ChaCha20-IETF under the subkey
 * with the 12-byte nonce 0^4 || nonce[16..23]; keystream block 0 keys
 * Poly1305 (its first 32 bytes), blocks 1.. encrypt; the tag is Poly1305
 * of ad, zero pad to 16, ciphertext, zero pad to 16, adlen and mlen as u64
 * LE (RFC 8439 2.8).
 *
 * Beyond the subkey derived once, it generates the keystream of a frame of
 * up to SEAL_KS_BYTES in one call whose length is a multiple of 256 bytes:
 * libsodium's ChaCha20 runs 8 or 4 blocks at once with SIMD and the odd
 * blocks at the end one at a time, much slower, so a 600-byte frame spent a
 * third of its seal on its last two blocks. Sealing a 600-byte body went
 * from 1.2-1.5 us to 0.8-0.95 us on the development machine. */
#define SEAL_KS_BYTES 2048u

struct kj_sealer {
  uint8_t subkey[crypto_stream_chacha20_ietf_KEYBYTES];
};

kj_sealer *kj_sealer_new(const uint8_t key[32], const uint8_t prefix[16]) {
  kj_sealer *s = sodium_malloc(sizeof *s);
  if (s)
    crypto_core_hchacha20(s->subkey, prefix, key, NULL);
  return s;
}

void kj_sealer_free(kj_sealer *s) {
  if (s)
    sodium_free(s); /* wipes */
}

static const uint8_t zero_pad[16];

void kj_sealer_seal(const kj_sealer *s, uint8_t *c, const uint8_t *m,
                    size_t mlen, const uint8_t *ad, size_t adlen,
                    uint64_t ctr) {
  uint8_t n[crypto_stream_chacha20_ietf_NONCEBYTES] = {0};
  for (unsigned i = 0; i < 8; i++)
    n[4 + i] = (uint8_t)(ctr >> (8 * i));
  _Alignas(64) uint8_t ks[SEAL_KS_BYTES];
  size_t gen = (64 + mlen + 255) & ~(size_t)255;
  if (gen <= sizeof ks) {
    crypto_stream_chacha20_ietf(ks, gen, n, s->subkey);
    size_t i = 0;
    for (; i + 8 <= mlen; i += 8) {
      uint64_t a, b;
      memcpy(&a, m + i, 8);
      memcpy(&b, ks + 64 + i, 8);
      a ^= b;
      memcpy(c + i, &a, 8);
    }
    for (; i < mlen; i++)
      c[i] = m[i] ^ ks[64 + i];
  } else {
    gen = 64;
    crypto_stream_chacha20_ietf(ks, gen, n, s->subkey);
    crypto_stream_chacha20_ietf_xor_ic(c, m, mlen, n, 1, s->subkey);
  }
  crypto_onetimeauth_poly1305_state st;
  crypto_onetimeauth_poly1305_init(&st, ks);
  crypto_onetimeauth_poly1305_update(&st, ad, adlen);
  crypto_onetimeauth_poly1305_update(&st, zero_pad, (16 - adlen % 16) % 16);
  crypto_onetimeauth_poly1305_update(&st, c, mlen);
  crypto_onetimeauth_poly1305_update(&st, zero_pad, (16 - mlen % 16) % 16);
  uint8_t lens[16];
  for (unsigned i = 0; i < 8; i++) {
    lens[i] = (uint8_t)((uint64_t)adlen >> (8 * i));
    lens[8 + i] = (uint8_t)((uint64_t)mlen >> (8 * i));
  }
  crypto_onetimeauth_poly1305_update(&st, lens, sizeof lens);
  crypto_onetimeauth_poly1305_final(&st, c + mlen);
  sodium_memzero(ks, gen); /* keystream XOR ciphertext is the plaintext */
  sodium_memzero(&st, sizeof st);
}
#endif

void kj_random(void *buf, size_t n) { randombytes_buf(buf, n); }
