/*
 * id.c - "<prefix>-<24 base62>" ids. Base62 digits are drawn from random
 * bytes by rejection sampling (bytes >= 248 are dropped) so that every digit
 * is uniform: 62 * 4 = 248.
 */
#include "ft/crypto.h"
#include "ft/id.h"

static const char base62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static bool valid_prefix(const char *prefix, size_t *len)
{
	size_t n = strlen(prefix);
	if (n == 0 || n > 32)
		return false;
	for (size_t i = 0; i < n; i++)
		if (prefix[i] < 'a' || prefix[i] > 'z')
			return false;
	*len = n;
	return true;
}

void ft_id_new(const char *prefix, char out[FT_ID_MAX])
{
	size_t plen = 0, o;
	unsigned char rnd[64];
	size_t used = sizeof(rnd);

	FT_ASSERT(valid_prefix(prefix, &plen));
	memcpy(out, prefix, plen);
	out[plen] = '-';
	o = plen + 1;
	while (o < plen + 1 + FT_ID_RAND_LEN) {
		if (used == sizeof(rnd)) {
			ft_random_bytes(rnd, sizeof(rnd));
			used = 0;
		}
		unsigned char c = rnd[used++];
		if (c < 248)
			out[o++] = base62[c % 62];
	}
	out[o] = '\0';
}

bool ft_id_valid(const char *prefix, const char *s)
{
	size_t plen = 0;
	if (!s || !valid_prefix(prefix, &plen))
		return false;
	if (strncmp(s, prefix, plen) != 0 || s[plen] != '-')
		return false;
	s += plen + 1;
	size_t n = 0;
	for (; s[n]; n++) {
		char c = s[n];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
			return false;
	}
	return n == FT_ID_RAND_LEN;
}
