/*
 * tests/test_crypto.c - the journal's sealer (crypto.h) against libsodium.
 *
 * kj_sealer_seal composes XChaCha20-Poly1305-IETF from HChaCha20, ChaCha20
 * and Poly1305 (crypto.c says why). Its output must be the very bytes of
 * crypto_aead_xchacha20poly1305_ietf_encrypt under the nonce prefix || ctr,
 * for every length on both sides of its one-call keystream limit, every
 * padding of the associated data, and counters that use all 64 bits; and
 * kj_unseal (libsodium's decrypt) must open it.
 */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/crypto.h"
#include "tap.h"

/* Compare one seal; 1 when identical and it opens again. */
static int same(const kj_sealer *s, const uint8_t key[32],
                const uint8_t prefix[16], const uint8_t *m, size_t mlen,
                const uint8_t *ad, size_t adlen, uint64_t ctr, uint8_t *c1,
                uint8_t *c2, uint8_t *back) {
  uint8_t nonce[KJ_NONCE_BYTES];
  memcpy(nonce, prefix, 16);
  for (unsigned i = 0; i < 8; i++)
    nonce[16 + i] = (uint8_t)(ctr >> (8 * i));
  crypto_aead_xchacha20poly1305_ietf_encrypt(c1, NULL, m, mlen, ad, adlen, NULL,
                                             nonce, key);
  memset(c2, 0xa5, mlen + KJ_TAG_BYTES);
  kj_sealer_seal(s, c2, m, mlen, ad, adlen, ctr);
  if (memcmp(c1, c2, mlen + KJ_TAG_BYTES) != 0)
    return 0;
  if (kj_unseal(key, back, c2, mlen + KJ_TAG_BYTES, ad, adlen, nonce) != 0)
    return 0;
  return memcmp(back, m, mlen) == 0;
}

int main(void) {
  ok(kj_crypto_init() == 0, "libsodium starts");
  uint8_t key[32], prefix[16], ad[200];
  randombytes_buf(key, sizeof key);
  randombytes_buf(prefix, sizeof prefix);
  randombytes_buf(ad, sizeof ad);
  size_t big = (size_t)1 << 20;
  uint8_t *m = malloc(big), *c1 = malloc(big + 16), *c2 = malloc(big + 16),
          *back = malloc(big);
  if (!m || !c1 || !c2 || !back)
    return 1;
  randombytes_buf(m, big);
  kj_sealer *s = kj_sealer_new(key, prefix);
  ok(s != NULL, "a sealer is made");

  /* Every length up to 2200 bytes (the one-call keystream ends at 1984),
   * with the associated data's padding cycling through all 16 cases. */
  size_t bad = SIZE_MAX;
  for (size_t len = 0; len <= 2200 && bad == SIZE_MAX; len++)
    if (!same(s, key, prefix, m, len, ad, 64 + len % 17, len * 7919u, c1, c2,
              back))
      bad = len;
  ok(bad == SIZE_MAX,
     "every length 0..2200 seals as libsodium does (first "
     "difference at %zu)",
     bad);

  static const size_t lens[] = {4095, 4096, 65536 + 3, 1u << 20};
  for (size_t i = 0; i < sizeof lens / sizeof *lens; i++)
    ok(same(s, key, prefix, m, lens[i], ad, 72, i, c1, c2, back),
       "%zu bytes seal as libsodium does", lens[i]);
  static const uint64_t ctrs[] = {0, 1, 0xffffffffu, 0x100000000u, UINT64_MAX};
  for (size_t i = 0; i < sizeof ctrs / sizeof *ctrs; i++)
    ok(same(s, key, prefix, m, 600, ad, 72, ctrs[i], c1, c2, back),
       "counter %llu: the same bytes", (unsigned long long)ctrs[i]);
  ok(same(s, key, prefix, m, 600, NULL, 0, 5, c1, c2, back),
     "no associated data: the same bytes");

  /* The nonce prefix and the key both matter. */
  uint8_t other[16];
  memcpy(other, prefix, 16);
  other[15] ^= 1;
  kj_sealer *s2 = kj_sealer_new(key, other);
  ok(s2 != NULL, "a second sealer is made");
  kj_sealer_seal(s, c1, m, 600, ad, 72, 9);
  kj_sealer_seal(s2, c2, m, 600, ad, 72, 9);
  ok(memcmp(c1, c2, 616) != 0, "another prefix gives other bytes");
  kj_sealer_free(s2);
  kj_sealer_free(s);
  kj_sealer_free(NULL);
  free(m);
  free(c1);
  free(c2);
  free(back);
  return tap_done();
}
