/*
 * fuzz_apikey_header.c - the parse of an Authorization header that ft-api
 * and ft-serve both run before any database lookup (ft_apikey_parse,
 * common/services/src/apikey.c), on arbitrary bytes. It must never read
 * past the string; when it accepts, the header is "Bearer" (any case),
 * blanks, then exactly "ftk-" and 44 base62 characters, the prefix is the
 * 12 after "ftk-", and the hash is SHA-256 of the key as PostgreSQL prints
 * a bytea; when it refuses, it says why with one of its two codes.
 */
#include <ctype.h>
#include <stdlib.h>
#include <strings.h>

#include "ft/apikey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1); /* exact size: ASan sees any overread */
	FT_ASSERT(s != NULL);
	memcpy(s, data, size);
	s[size] = 0;
	char prefix[FT_APIKEY_PREFIX_LEN + 1], hash[FT_APIKEY_HASH_LEN + 1];
	struct ft_err e;
	ft_err_clear(&e);
	if (ft_apikey_parse(s, prefix, hash, &e) == FT_OK) {
		FT_ASSERT(strncasecmp(s, "Bearer ", 7) == 0);
		const char *k = s + 7;
		while (*k == ' ')
			k++;
		FT_ASSERT(strlen(k) == FT_APIKEY_LEN && strncmp(k, "ftk-", 4) == 0);
		for (const char *c = k + 4; *c; c++)
			FT_ASSERT(isalnum((unsigned char)*c));
		FT_ASSERT(memcmp(prefix, k + 4, FT_APIKEY_PREFIX_LEN) == 0);
		char hex[FT_SHA256_HEX_LEN + 1];
		ft_sha256_hex(k, FT_APIKEY_LEN, hex);
		FT_ASSERT(hash[0] == '\\' && hash[1] == 'x' && strcmp(hash + 2, hex) == 0);
	} else {
		FT_ASSERT(e.rc == FT_EAUTH);
		FT_ASSERT(!strcmp(e.code, "missing_api_key") || !strcmp(e.code, "invalid_api_key"));
	}
	free(s);
	return 0;
}
