/*
 * examples/crypto_openssl.c - libsignal-protocol-c's crypto provider with
 * OpenSSL 3 (crypto_openssl.h).
 */
#include <stdlib.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "crypto_openssl.h"

static int cp_random(uint8_t *data, size_t len, void *ud) {
  (void)ud;
  return RAND_bytes(data, (int)len) == 1 ? 0 : SG_ERR_UNKNOWN;
}

static int cp_hmac_init(void **ctx, const uint8_t *key, size_t key_len,
                        void *ud) {
  (void)ud;
  EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  if (!mac)
    return SG_ERR_UNKNOWN;
  EVP_MAC_CTX *c = EVP_MAC_CTX_new(mac);
  EVP_MAC_free(mac);
  if (!c)
    return SG_ERR_NOMEM;
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end()};
  if (EVP_MAC_init(c, key, key_len, params) != 1) {
    EVP_MAC_CTX_free(c);
    return SG_ERR_UNKNOWN;
  }
  *ctx = c;
  return 0;
}

static int cp_hmac_update(void *ctx, const uint8_t *data, size_t len,
                          void *ud) {
  (void)ud;
  return EVP_MAC_update(ctx, data, len) == 1 ? 0 : SG_ERR_UNKNOWN;
}

static int cp_hmac_final(void *ctx, signal_buffer **out, void *ud) {
  (void)ud;
  uint8_t md[EVP_MAX_MD_SIZE];
  size_t n = 0;
  if (EVP_MAC_final(ctx, md, &n, sizeof md) != 1)
    return SG_ERR_UNKNOWN;
  *out = signal_buffer_create(md, n);
  return *out ? 0 : SG_ERR_NOMEM;
}

static void cp_hmac_cleanup(void *ctx, void *ud) {
  (void)ud;
  EVP_MAC_CTX_free(ctx);
}

static int cp_sha512_init(void **ctx, void *ud) {
  (void)ud;
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  if (!c)
    return SG_ERR_NOMEM;
  if (EVP_DigestInit_ex(c, EVP_sha512(), NULL) != 1) {
    EVP_MD_CTX_free(c);
    return SG_ERR_UNKNOWN;
  }
  *ctx = c;
  return 0;
}

static int cp_sha512_update(void *ctx, const uint8_t *data, size_t len,
                            void *ud) {
  (void)ud;
  return EVP_DigestUpdate(ctx, data, len) == 1 ? 0 : SG_ERR_UNKNOWN;
}

static int cp_sha512_final(void *ctx, signal_buffer **out, void *ud) {
  (void)ud;
  uint8_t md[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  if (EVP_DigestFinal_ex(ctx, md, &n) != 1 ||
      EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) != 1)
    return SG_ERR_UNKNOWN;
  *out = signal_buffer_create(md, n);
  return *out ? 0 : SG_ERR_NOMEM;
}

static void cp_sha512_cleanup(void *ctx, void *ud) {
  (void)ud;
  EVP_MD_CTX_free(ctx);
}

static const EVP_CIPHER *cp_cipher(int cipher, size_t key_len) {
  int cbc = cipher == SG_CIPHER_AES_CBC_PKCS5;
  if (cipher != SG_CIPHER_AES_CBC_PKCS5 &&
      cipher != SG_CIPHER_AES_CTR_NOPADDING)
    return NULL;
  switch (key_len) {
  case 16:
    return cbc ? EVP_aes_128_cbc() : EVP_aes_128_ctr();
  case 24:
    return cbc ? EVP_aes_192_cbc() : EVP_aes_192_ctr();
  case 32:
    return cbc ? EVP_aes_256_cbc() : EVP_aes_256_ctr();
  default:
    return NULL;
  }
}

static int cp_crypt(int enc, signal_buffer **out, int cipher,
                    const uint8_t *key, size_t key_len, const uint8_t *iv,
                    size_t iv_len, const uint8_t *in, size_t in_len) {
  const EVP_CIPHER *ev = cp_cipher(cipher, key_len);
  if (!ev || iv_len != 16)
    return SG_ERR_INVAL;
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  if (!c)
    return SG_ERR_NOMEM;
  uint8_t *buf = malloc(in_len + 32);
  int n1 = 0, n2 = 0, rc = SG_ERR_UNKNOWN;
  if (buf && EVP_CipherInit_ex(c, ev, NULL, key, iv, enc) == 1 &&
      EVP_CipherUpdate(c, buf, &n1, in, (int)in_len) == 1 &&
      EVP_CipherFinal_ex(c, buf + n1, &n2) == 1) {
    *out = signal_buffer_create(buf, (size_t)(n1 + n2));
    rc = *out ? 0 : SG_ERR_NOMEM;
  }
  free(buf);
  EVP_CIPHER_CTX_free(c);
  return rc;
}

static int cp_encrypt(signal_buffer **out, int cipher, const uint8_t *key,
                      size_t key_len, const uint8_t *iv, size_t iv_len,
                      const uint8_t *pt, size_t pt_len, void *ud) {
  (void)ud;
  return cp_crypt(1, out, cipher, key, key_len, iv, iv_len, pt, pt_len);
}

static int cp_decrypt(signal_buffer **out, int cipher, const uint8_t *key,
                      size_t key_len, const uint8_t *iv, size_t iv_len,
                      const uint8_t *ct, size_t ct_len, void *ud) {
  (void)ud;
  return cp_crypt(0, out, cipher, key, key_len, iv, iv_len, ct, ct_len);
}

int crypto_openssl_install(signal_context *ctx) {
  signal_crypto_provider cp = {
      .random_func = cp_random,
      .hmac_sha256_init_func = cp_hmac_init,
      .hmac_sha256_update_func = cp_hmac_update,
      .hmac_sha256_final_func = cp_hmac_final,
      .hmac_sha256_cleanup_func = cp_hmac_cleanup,
      .sha512_digest_init_func = cp_sha512_init,
      .sha512_digest_update_func = cp_sha512_update,
      .sha512_digest_final_func = cp_sha512_final,
      .sha512_digest_cleanup_func = cp_sha512_cleanup,
      .encrypt_func = cp_encrypt,
      .decrypt_func = cp_decrypt,
      .user_data = NULL,
  };
  /* libsignal copies the structure: cp may go out of scope. */
  return signal_context_set_crypto_provider(ctx, &cp);
}
