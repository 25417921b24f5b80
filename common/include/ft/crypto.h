/*
 * ft/crypto.h - SHA-256, HMAC-SHA256, random bytes, hex / base64 encoders
 * and a constant-time compare, over OpenSSL's libcrypto.
 */
#ifndef FT_CRYPTO_H
#define FT_CRYPTO_H

#include "ft/err.h"

#define FT_SHA256_LEN 32
#define FT_SHA256_HEX_LEN 64

/* Streaming SHA-256 (for uploads that are never held whole). */
struct ft_sha256 {
	void *ctx; /* EVP_MD_CTX */
};
enum ft_rc ft_sha256_init(struct ft_sha256 *h);
void ft_sha256_update(struct ft_sha256 *h, const void *data, size_t len);
/* Writes 32 bytes and releases the context. */
void ft_sha256_final(struct ft_sha256 *h, unsigned char out[FT_SHA256_LEN]);
/* Release without a result (error paths). Safe after final. */
void ft_sha256_release(struct ft_sha256 *h);

void ft_sha256_digest(const void *data, size_t len, unsigned char out[FT_SHA256_LEN]);
/* 64 lower-case hex characters + NUL. */
void ft_sha256_hex(const void *data, size_t len, char out[FT_SHA256_HEX_LEN + 1]);

void ft_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
		    unsigned char out[FT_SHA256_LEN]);

/* Cryptographically strong random bytes; aborts if the RNG fails. */
void ft_random_bytes(void *out, size_t len);

/* Lower-case hex; out must hold 2*len+1 bytes. */
void ft_hex_encode(const void *data, size_t len, char *out);
/* Standard base64 with padding; out must hold 4*((len+2)/3)+1 bytes. */
size_t ft_base64_encode(const void *data, size_t len, char *out);
/* Decode standard base64; returns bytes written or -1 on bad input. out
 * must hold 3*(strlen(in)/4) bytes. */
long ft_base64_decode(const char *in, size_t inlen, unsigned char *out, size_t outsz);

/* Constant-time equality of two byte strings of the same length. */
bool ft_ct_equal(const void *a, const void *b, size_t len);

#endif
