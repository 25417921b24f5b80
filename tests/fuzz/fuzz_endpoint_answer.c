/*
 * fuzz_endpoint_answer.c - what the deployment controller reads from an
 * inference server (common/services/src/deploy.c), on arbitrary bytes:
 * GET /v1/models' list of ids, the account of an error answer that becomes
 * a deployment's status_reason, and the "store:sha256:" references of
 * lora_path. The error text must always be NUL-terminated, within its
 * buffer, and printable UTF-8 (PostgreSQL stores it as text); the ids are
 * non-empty strings within the bound; a store reference is accepted only as
 * the prefix and 64 lower-case hex characters.
 */
#include "ft/deploy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Well-formed UTF-8 without control characters. */
static void check_text(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		size_t n = p[0] < 0x80 ? 1 : p[0] < 0xe0 ? 2 : p[0] < 0xf0 ? 3 : 4;
		FT_ASSERT(p[0] >= 0x20 && p[0] != 0x7f && (p[0] < 0x80 || p[0] >= 0xc2));
		FT_ASSERT(p[0] < 0xf5);
		for (size_t k = 1; k < n; k++)
			FT_ASSERT((p[k] & 0xc0) == 0x80);
		if (n == 3) {
			unsigned cp = (p[0] & 0x0fu) << 12 | (p[1] & 0x3fu) << 6 | (p[2] & 0x3fu);
			FT_ASSERT(cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff));
		} else if (n == 4) {
			unsigned cp = (p[0] & 0x07u) << 18 | (p[1] & 0x3fu) << 12 |
				      (p[2] & 0x3fu) << 6 | (p[3] & 0x3fu);
			FT_ASSERT(cp >= 0x10000 && cp <= 0x10ffff);
		}
		p += n;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char **names;
	size_t n;
	struct ft_err e;
	ft_err_clear(&e);
	if (ft_endpoint_models_parse((const char *)data, size, &names, &n, &e) == FT_OK) {
		FT_ASSERT(n <= FT_ENDPOINT_MAX_MODELS);
		for (size_t i = 0; i < n; i++)
			FT_ASSERT(names[i][0] && strlen(names[i]) <= FT_ENDPOINT_NAME_MAX);
		ft_endpoint_models_free(names, n);
	} else {
		FT_ASSERT(names == NULL && n == 0);
	}
	for (size_t cap = 1; cap <= 301; cap += 60) {
		char out[302];
		memset(out, 'x', sizeof(out));
		ft_endpoint_error_text((const char *)data, size, out, cap);
		FT_ASSERT(memchr(out, 0, cap) != NULL && out[cap] == 'x');
		check_text(out);
	}
	char *s = malloc(size + 1), hex[65];
	FT_ASSERT(s != NULL);
	memcpy(s, data, size);
	s[size] = '\0';
	if (ft_store_ref_parse(s, hex)) {
		FT_ASSERT(strlen(s) == strlen(FT_STORE_REF_PREFIX) + 64 && strlen(hex) == 64);
		FT_ASSERT(strcmp(s + strlen(FT_STORE_REF_PREFIX), hex) == 0);
	}
	free(s);
	return 0;
}
