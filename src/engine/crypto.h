/*
 * src/engine/crypto.h - keys and authenticated encryption (internal).
 *
 * The master key (raw, or Argon2id of a passphrase) is only used to derive
 * the per-purpose subkeys below and is wiped at once. Subkeys live in
 * sodium_malloc memory (locked, guard pages) and are wiped on free.
 */
#ifndef KJ_CRYPTO_H
#define KJ_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define KJ_TAG_BYTES 16u
#define KJ_NONCE_BYTES 24u
#define KJ_SALT_BYTES 16u
#define KJ_MAC_BYTES 32u

/* Argon2id minimums (libsodium's): 1 pass, 8 KiB. */
#define KJ_PWHASH_OPS_MIN 1u
#define KJ_PWHASH_MEM_MIN 8192u

typedef struct kj_keys {
  uint8_t header[32];   /* subkey 1: header key check */
  uint8_t journal[32];  /* subkey 2: journal frames */
  uint8_t snapshot[32]; /* subkey 3: snapshots */
  uint8_t side[32];     /* subkey 4: side files (a copy's extra.bin) */
} kj_keys;

/* Once per process before any other call; safe to repeat. KJ_OK or
 * KJ_ENOMEM-free failure KJ_EIO when libsodium cannot start. */
int kj_crypto_init(void);

/* Derive subkeys from raw (32 bytes) or from passphrase with Argon2id
 * (salt, opslimit, memlimit). *out is freed with kj_keys_free. KJ_OK,
 * KJ_ENOMEM, KJ_EINVAL (limits out of range). */
int kj_keys_derive(const uint8_t *raw, const char *passphrase,
                   const uint8_t salt[KJ_SALT_BYTES], uint64_t opslimit,
                   uint64_t memlimit, kj_keys **out);
void kj_keys_free(kj_keys *k);

/* Keyed BLAKE2b-256 of data with the header subkey. */
void kj_header_mac(const kj_keys *k, const uint8_t *data, size_t len,
                   uint8_t out[KJ_MAC_BYTES]);

/* 1 when mac (KJ_MAC_BYTES) is the header MAC of data; constant time. */
int kj_header_mac_ok(const kj_keys *k, const uint8_t *data, size_t len,
                     const uint8_t *mac);

/* XChaCha20-Poly1305: seal m (mlen) into c (mlen + KJ_TAG_BYTES) under
 * nonce, which the caller never uses twice with one key. c and m must not
 * overlap. */
void kj_seal(const uint8_t key[32], uint8_t *c, const uint8_t *m, size_t mlen,
             const uint8_t *ad, size_t adlen,
             const uint8_t nonce[KJ_NONCE_BYTES]);
/* Open c (clen >= KJ_TAG_BYTES) into m (clen - KJ_TAG_BYTES). Returns 0,
 * or -1 when authentication fails (m is then zeroed). */
int kj_unseal(const uint8_t key[32], uint8_t *m, const uint8_t *c, size_t clen,
              const uint8_t *ad, size_t adlen,
              const uint8_t nonce[KJ_NONCE_BYTES]);

/* A sealer: kj_seal for every nonce that starts with one fixed 16-byte
 * prefix (a journal handle's frames, FORMAT.md 4.2). XChaCha20 derives a
 * subkey from the key and the first 16 nonce bytes (HChaCha20); the sealer
 * derives it once, keeps it in locked, guarded memory (sodium_malloc) and
 * wipes it when freed. kj_sealer_new returns NULL when out of memory. */
typedef struct kj_sealer kj_sealer;
kj_sealer *kj_sealer_new(const uint8_t key[32], const uint8_t prefix[16]);
void kj_sealer_free(kj_sealer *s);
/* kj_seal(key, c, m, mlen, ad, adlen, prefix || ctr as u64 LE): the same
 * bytes (tests/test_crypto.c compares them with libsodium's). */
void kj_sealer_seal(const kj_sealer *s, uint8_t *c, const uint8_t *m,
                    size_t mlen, const uint8_t *ad, size_t adlen, uint64_t ctr);

/* Fill buf with random bytes. */
void kj_random(void *buf, size_t n);

#endif
