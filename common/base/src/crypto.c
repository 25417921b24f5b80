/*
 * crypto.c - hashing, MACs and encoders over OpenSSL 3 (EVP and HMAC()).
 */
#include <ctype.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "ft/crypto.h"

enum ft_rc ft_sha256_init(struct ft_sha256 *h)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		return FT_ENOMEM;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		return FT_EINTERNAL;
	}
	h->ctx = ctx;
	return FT_OK;
}

void ft_sha256_update(struct ft_sha256 *h, const void *data, size_t len)
{
	FT_ASSERT(h->ctx);
	FT_ASSERT(EVP_DigestUpdate(h->ctx, data, len) == 1);
}

void ft_sha256_final(struct ft_sha256 *h, unsigned char out[FT_SHA256_LEN])
{
	unsigned int n = 0;
	FT_ASSERT(h->ctx);
	FT_ASSERT(EVP_DigestFinal_ex(h->ctx, out, &n) == 1 && n == FT_SHA256_LEN);
	ft_sha256_release(h);
}

void ft_sha256_release(struct ft_sha256 *h)
{
	EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
}

void ft_sha256_digest(const void *data, size_t len, unsigned char out[FT_SHA256_LEN])
{
	unsigned int n = 0;
	FT_ASSERT(EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) == 1);
}

void ft_sha256_hex(const void *data, size_t len, char out[FT_SHA256_HEX_LEN + 1])
{
	unsigned char d[FT_SHA256_LEN];
	ft_sha256_digest(data, len, d);
	ft_hex_encode(d, sizeof(d), out);
}

void ft_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
		    unsigned char out[FT_SHA256_LEN])
{
	unsigned int n = 0;
	static const unsigned char empty;
	FT_ASSERT(keylen <= INT_MAX);
	FT_ASSERT(HMAC(EVP_sha256(), keylen ? key : &empty, (int)keylen, len ? data : &empty, len,
		       out, &n) != NULL);
	FT_ASSERT(n == FT_SHA256_LEN);
}

void ft_random_bytes(void *out, size_t len)
{
	FT_ASSERT(len <= INT_MAX);
	FT_ASSERT(RAND_bytes(out, (int)len) == 1);
}

void ft_hex_encode(const void *data, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * len] = '\0';
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t ft_base64_encode(const void *data, size_t len, char *out)
{
	const unsigned char *p = data;
	size_t o = 0, i = 0;
	for (; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = b64[(v >> 6) & 63];
		out[o++] = b64[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0);
		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = i + 1 < len ? b64[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

long ft_base64_decode(const char *in, size_t inlen, unsigned char *out, size_t outsz)
{
	size_t o = 0;
	if (inlen % 4)
		return -1;
	for (size_t i = 0; i < inlen; i += 4) {
		int v[4], pad = 0;
		for (int k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)in[i + k];
			if (c == '=' && i + 4 == inlen && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			if (pad) /* data after padding */
				return -1;
			v[k] = b64_value(c);
			if (v[k] < 0)
				return -1;
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
			     (uint32_t)v[3];
		unsigned char bytes[3] = { (unsigned char)(w >> 16), (unsigned char)(w >> 8),
					   (unsigned char)w };
		for (int k = 0; k < 3 - pad; k++) {
			if (o >= outsz)
				return -1;
			out[o++] = bytes[k];
		}
	}
	return (long)o;
}

void ft_secure_zero(void *p, size_t n)
{
	OPENSSL_cleanse(p, n);
}

bool ft_ct_equal(const void *a, const void *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) == 0;
}

/* ---- secret box ------------------------------------------------------------ */

#define BOX_PREFIX "fts1."
#define BOX_NONCE 12
#define BOX_TAG 16

enum ft_rc ft_secretbox_key_parse(const char *text, unsigned char key[FT_SECRETBOX_KEY_LEN],
				  struct ft_err *err)
{
	size_t n = text ? strlen(text) : 0;
	for (size_t i = 0; n == 2 * FT_SECRETBOX_KEY_LEN && i < n; i++)
		if (!isxdigit((unsigned char)text[i]))
			n = 0;
	if (n != 2 * FT_SECRETBOX_KEY_LEN)
		return ft_failf(err, FT_EINVAL, "invalid_secret_key",
				"secret_key must be 64 hex characters (32 random bytes, e.g. "
				"`openssl rand -hex 32`)");
	for (size_t i = 0; i < FT_SECRETBOX_KEY_LEN; i++) {
		unsigned v;
		sscanf(text + 2 * i, "%2x", &v);
		key[i] = (unsigned char)v;
	}
	return FT_OK;
}

/* One AES-256-GCM pass: encrypt (enc) or decrypt in[0..n) into out, with
 * the tag written (enc) or checked. false on any failure, a bad tag included. */
static bool gcm(bool enc, const unsigned char *key, const unsigned char *nonce, const char *aad,
		const unsigned char *in, size_t n, unsigned char *out, unsigned char *tag)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int len = 0;
	bool ok = c && n <= INT_MAX && strlen(aad) <= INT_MAX &&
		  EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) == 1 &&
		  EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, BOX_NONCE, NULL) == 1 &&
		  EVP_CipherInit_ex(c, NULL, NULL, key, nonce, enc) == 1 &&
		  EVP_CipherUpdate(c, NULL, &len, (const unsigned char *)aad, (int)strlen(aad)) ==
			  1 &&
		  (n == 0 || EVP_CipherUpdate(c, out, &len, in, (int)n) == 1) &&
		  (enc || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, BOX_TAG, tag) == 1) &&
		  EVP_CipherFinal_ex(c, out + (n ? len : 0), &len) == 1 &&
		  (!enc || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, BOX_TAG, tag) == 1);
	EVP_CIPHER_CTX_free(c);
	return ok;
}

enum ft_rc ft_secretbox_seal(const unsigned char key[FT_SECRETBOX_KEY_LEN], const char *aad,
			     const void *plain, size_t n, char **out, struct ft_err *err)
{
	*out = NULL;
	if (n > FT_SECRETBOX_MAX)
		return ft_failf(err, FT_EINVAL, "secret_too_long",
				"a secret holds at most %d bytes (got %zu)", FT_SECRETBOX_MAX, n);
	size_t raw_n = BOX_NONCE + n + BOX_TAG;
	unsigned char *raw = malloc(raw_n);
	char *text = malloc(sizeof(BOX_PREFIX) + 4 * ((raw_n + 2) / 3) + 1);
	if (!raw || !text) {
		free(raw);
		free(text);
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	}
	ft_random_bytes(raw, BOX_NONCE);
	if (!gcm(true, key, raw, aad ? aad : "", plain, n, raw + BOX_NONCE, raw + BOX_NONCE + n)) {
		free(raw);
		free(text);
		return ft_failf(err, FT_EINTERNAL, NULL, "sealing a secret failed (libcrypto)");
	}
	memcpy(text, BOX_PREFIX, sizeof(BOX_PREFIX) - 1);
	ft_base64_encode(raw, raw_n, text + sizeof(BOX_PREFIX) - 1);
	free(raw);
	*out = text;
	return FT_OK;
}

enum ft_rc ft_secretbox_open(const unsigned char key[FT_SECRETBOX_KEY_LEN], const char *aad,
			     const char *sealed, char **out, size_t *n, struct ft_err *err)
{
	*out = NULL;
	*n = 0;
	size_t len = sealed ? strlen(sealed) : 0, pre = sizeof(BOX_PREFIX) - 1;
	size_t max_b64 = 4 * ((BOX_NONCE + FT_SECRETBOX_MAX + BOX_TAG + 2) / 3);
	if (len < pre || strncmp(sealed, BOX_PREFIX, pre) != 0 || len - pre > max_b64)
		return ft_failf(err, FT_EFORMAT, "secret_unreadable",
				"a sealed secret must start with \"" BOX_PREFIX "\"");
	size_t cap = 3 * ((len - pre) / 4) + 3;
	unsigned char *raw = malloc(cap);
	if (!raw)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	long got = ft_base64_decode(sealed + pre, len - pre, raw, cap);
	if (got < BOX_NONCE + BOX_TAG) {
		free(raw);
		return ft_failf(err, FT_EFORMAT, "secret_unreadable",
				"a sealed secret is base64 of at least %d bytes",
				BOX_NONCE + BOX_TAG);
	}
	size_t m = (size_t)got - BOX_NONCE - BOX_TAG;
	char *plain = malloc(m + 1);
	if (!plain) {
		free(raw);
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	}
	bool ok = gcm(false, key, raw, aad ? aad : "", raw + BOX_NONCE, m, (unsigned char *)plain,
		      raw + BOX_NONCE + m);
	free(raw);
	if (!ok) {
		OPENSSL_cleanse(plain, m + 1);
		free(plain);
		return ft_failf(err, FT_EFORMAT, "secret_unreadable",
				"a sealed secret does not open with this secret_key (another key, "
				"another row, or changed bytes)");
	}
	plain[m] = '\0';
	*out = plain;
	*n = m;
	return FT_OK;
}

void ft_secretbox_free(char *plain)
{
	if (!plain)
		return;
	OPENSSL_cleanse(plain, strlen(plain));
	free(plain);
}
