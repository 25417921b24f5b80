/*
 * crypto.c - hashing, MACs and encoders over OpenSSL 3 (EVP and HMAC()).
 */
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

bool ft_ct_equal(const void *a, const void *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) == 0;
}
