/*
 * modelref.c - the model-reference grammar of ft/modelref.h.
 */
#include "ft/modelref.h"

static bool name_char(char c, bool first)
{
	if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
		return true;
	return !first && (c == '.' || c == '_' || c == '-');
}

bool ft_registered_name_valid(const char *s)
{
	size_t n = 0;
	for (; s[n]; n++)
		if (n >= FT_NAME_MAX || !name_char(s[n], n == 0))
			return false;
	return n > 0;
}

bool ft_alias_valid(const char *s)
{
	size_t n = 0;
	for (; s[n]; n++) {
		char c = s[n];
		bool ok = (c >= 'a' && c <= 'z') ||
			  (n > 0 && ((c >= '0' && c <= '9') || c == '_' || c == '-'));
		if (n >= FT_ALIAS_MAX || !ok)
			return false;
	}
	return n > 0;
}

/* A decimal number of at most 9 digits, no sign, no leading zero. */
static bool small_number(const char *s, long *out)
{
	size_t n = strlen(s);
	if (n == 0 || n > 9 || (n > 1 && s[0] == '0'))
		return false;
	long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/* "ft:BASE:JOB[:ckpt-step-N]", read from the end since BASE may hold ':'. */
static bool parse_ft(const char *s, struct ft_model_ref *out)
{
	char buf[600];
	if (ft_strlcpy(buf, s + 3, sizeof(buf)) >= sizeof(buf))
		return false;
	char *last = strrchr(buf, ':');
	if (!last)
		return false;
	if (strncmp(last + 1, "ckpt-step-", 10) == 0) {
		if (!small_number(last + 11, &out->step))
			return false;
		*last = '\0';
		last = strrchr(buf, ':');
		if (!last)
			return false;
		out->kind = FT_REF_CHECKPOINT;
	} else {
		out->kind = FT_REF_FT_MODEL;
	}
	if (!ft_id_valid(FT_ID_JOB, last + 1) || last == buf)
		return false;
	ft_strlcpy(out->job, last + 1, sizeof(out->job));
	*last = '\0';
	return ft_strlcpy(out->name, buf, sizeof(out->name)) < sizeof(out->name);
}

void ft_model_ref_parse(const char *s, struct ft_model_ref *out, bool *malformed)
{
	memset(out, 0, sizeof(*out));
	*malformed = false;
	if (strncmp(s, "ft:", 3) == 0) {
		if (!parse_ft(s, out)) {
			memset(out, 0, sizeof(*out));
			*malformed = true;
		}
		return;
	}
	const char *at = strrchr(s, '@'), *slash = strrchr(s, '/');
	const char *sep = at && (!slash || at > slash) ? at : slash;
	if (!sep || sep == s)
		return;
	char name[FT_NAME_MAX + 1];
	size_t n = (size_t)(sep - s);
	if (n > FT_NAME_MAX) {
		*malformed = true;
		return;
	}
	memcpy(name, s, n);
	name[n] = '\0';
	if (!ft_registered_name_valid(name))
		return; /* "org/model": a base model's name */
	if (*sep == '@') {
		if (!ft_alias_valid(sep + 1)) {
			*malformed = true;
			return;
		}
		out->kind = FT_REF_ALIAS;
		ft_strlcpy(out->alias, sep + 1, sizeof(out->alias));
	} else {
		if (!small_number(sep + 1, &out->version) || out->version < 1)
			return; /* "org/model-v2": a base model's name */
		out->kind = FT_REF_VERSION;
	}
	ft_strlcpy(out->name, name, sizeof(out->name));
}

void ft_model_ref_ft_name(const char *base, const char *job, char *out, size_t n)
{
	snprintf(out, n, "ft:%s:%s", base, job);
}

void ft_model_ref_ckpt_name(const char *base, const char *job, long step, char *out, size_t n)
{
	snprintf(out, n, "ft:%s:%s:ckpt-step-%ld", base, job, step);
}

bool ft_registered_name_from(const char *s, char out[FT_NAME_MAX + 1])
{
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p && o < FT_NAME_MAX; p++) {
		if (*p >= 0x80 && (*p & 0xc0) == 0x80)
			continue; /* the rest of a UTF-8 character already replaced */
		char c = *p < 0x80 ? (char)*p : '-';
		if (!name_char(c, false))
			c = '-';
		if (o == 0 && !name_char(c, true))
			continue;
		out[o++] = c;
	}
	out[o] = '\0';
	return o > 0;
}
