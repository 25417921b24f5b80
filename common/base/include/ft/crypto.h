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

/* Zero memory that held a secret (not optimised away). */
void ft_secure_zero(void *p, size_t n);

/* Constant-time equality of two byte strings of the same length. */
bool ft_ct_equal(const void *a, const void *b, size_t len);

/* ---- secret box: small secrets encrypted at rest --------------------------
 * Endpoint credentials (docs/deployments.md) are stored sealed: AES-256-GCM
 * under the platform's secret_key (32 bytes, given as 64 hex characters),
 * a random 96-bit nonce per seal, and the row's id as associated data, so a
 * sealed value copied onto another row does not open. The text stored:
 *
 *   "fts1." base64( nonce[12] | ciphertext[n] | tag[16] )
 *
 * Opening checks the tag: a wrong key, a wrong id, or any changed byte is
 * FT_EFORMAT (code "secret_unreadable") and nothing of the plaintext. */
#define FT_SECRETBOX_KEY_LEN 32
#define FT_SECRETBOX_MAX 4096 /* plaintext bytes a box holds */

/* Parse a secret_key (64 hex characters); FT_EINVAL naming it otherwise. */
enum ft_rc ft_secretbox_key_parse(const char *text, unsigned char key[FT_SECRETBOX_KEY_LEN],
				  struct ft_err *err);
/* Seal plain[0..n) (n <= FT_SECRETBOX_MAX); *out is malloc'ed, the caller frees. */
enum ft_rc ft_secretbox_seal(const unsigned char key[FT_SECRETBOX_KEY_LEN], const char *aad,
			     const void *plain, size_t n, char **out, struct ft_err *err);
/* Open a sealed text; *out (malloc'ed, NUL-terminated, *n bytes before the
 * NUL) is the caller's to wipe and free (ft_secretbox_free). */
enum ft_rc ft_secretbox_open(const unsigned char key[FT_SECRETBOX_KEY_LEN], const char *aad,
			     const char *sealed, char **out, size_t *n, struct ft_err *err);
/* Zero and free an opened secret (NULL is fine). */
void ft_secretbox_free(char *plain);

#endif
