/*
 * examples/crypto_openssl.h - a crypto provider for libsignal-protocol-c
 * made with OpenSSL 3 (EVP): random bytes, HMAC-SHA256, SHA-512 and
 * AES-CBC/CTR, the functions signal_crypto_provider asks for.
 *
 * libsignal-protocol-c ships no crypto of its own and neither does
 * libkeyjournal-signal: the application gives libsignal a provider. This
 * one is shared by examples/signal_chat.c and tests/test_libsignal.c; an
 * application may copy it (it links -lcrypto only) or use its platform's
 * crypto instead.
 */
#ifndef KJ_EXAMPLES_CRYPTO_OPENSSL_H
#define KJ_EXAMPLES_CRYPTO_OPENSSL_H

#include <signal_protocol.h>

/* Set ctx's crypto provider to the OpenSSL one: libsignal's status
 * (SG_SUCCESS, or that of signal_context_set_crypto_provider). */
int crypto_openssl_install(signal_context *ctx);

#endif /* KJ_EXAMPLES_CRYPTO_OPENSSL_H */
