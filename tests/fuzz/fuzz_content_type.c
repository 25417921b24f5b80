/*
 * fuzz_content_type.c - ft-api's check that a Content-Type header names
 * JSON (api_media_is_json) on arbitrary bytes. It must never read past the
 * string, and whenever it says yes the media type (before any ';', without
 * surrounding blanks) is application/json or application/<x>+json.
 */
#include <ctype.h>
#include <stdlib.h>

#include "../../api/src/api_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1); /* exact size: ASan sees any overread */
	FT_ASSERT(s != NULL);
	memcpy(s, data, size);
	s[size] = 0;
	if (api_media_is_json(s)) {
		const char *p = s;
		while (*p == ' ' || *p == '\t')
			p++;
		size_t n = strcspn(p, ";");
		while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		FT_ASSERT(n >= 16 && strncasecmp(p, "application/", 12) == 0);
		FT_ASSERT(strncasecmp(p + n - 4, "json", 4) == 0);
		FT_ASSERT(n == 16 || p[n - 5] == '+');
		for (size_t i = 12; i < n; i++)
			FT_ASSERT(p[i] != '/');
	}
	free(s);
	return 0;
}
