/*
 * s3_xml.c - reading the few leaf elements ft-registry needs out of an S3
 * server's XML answers (registry_int.h says which). Outside input: fuzzed
 * by tests/fuzz/fuzz_s3_xml.c.
 */
#include <time.h>

#include "registry_int.h"

struct entity {
	const char *name;
	char ch;
};

static const struct entity entities[] = {
	{ "amp", '&' }, { "lt", '<' }, { "gt", '>' }, { "quot", '"' }, { "apos", '\'' },
};

/* Decode the entity in [p, semi) (without '&' and ';'); 0 when unknown. */
static char entity_char(const char *p, size_t n)
{
	for (size_t i = 0; i < FT_ARRAY_LEN(entities); i++)
		if (strlen(entities[i].name) == n && memcmp(entities[i].name, p, n) == 0)
			return entities[i].ch;
	if (n < 2 || p[0] != '#')
		return 0;
	bool hex = p[1] == 'x' || p[1] == 'X';
	long v = 0;
	size_t i = hex ? 2 : 1;
	if (i == n)
		return 0;
	for (; i < n; i++) {
		int d;
		char c = p[i];
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (hex && c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (hex && c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return 0;
		v = v * (hex ? 16 : 10) + d;
		if (v > 127)
			return 0;
	}
	return v > 0 ? (char)v : 0;
}

bool ft_s3_xml_text(const char *xml, size_t len, const char *tag, size_t *pos, char *out,
		    size_t outsz)
{
	char open[72], close[72];
	size_t tl = strlen(tag);
	if (!xml || tl == 0 || tl > 64 || outsz == 0 || *pos > len)
		return false;
	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	const char *start = memmem(xml + *pos, len - *pos, open, tl + 2);
	if (!start)
		return false;
	const char *text = start + tl + 2;
	const char *end = memmem(text, (size_t)(xml + len - text), close, tl + 3);
	if (!end)
		return false;
	size_t o = 0;
	for (const char *p = text; p < end;) {
		char ch = *p;
		if (ch == '&') {
			const char *semi = memchr(p, ';', (size_t)(end - p));
			if (!semi || semi - p > 10)
				return false;
			ch = entity_char(p + 1, (size_t)(semi - p - 1));
			if (!ch)
				return false;
			p = semi + 1;
		} else {
			p++;
		}
		if (o + 1 >= outsz)
			return false;
		out[o++] = ch;
	}
	out[o] = '\0';
	*pos = (size_t)(end - xml) + tl + 3;
	return true;
}

long long ft_s3_iso8601_parse(const char *s)
{
	struct tm tm = { 0 };
	int n = 0;
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
		   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6 ||
	    n != 19)
		return -1;
	const char *p = s + n;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -1;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (strcmp(p, "Z") != 0)
		return -1;
	if (tm.tm_year < 1970 || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 ||
	    tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (long long)timegm(&tm);
}
