/*
 * banned_probe.c - compiled by CTest with one -DPROBE_<fn> at a time; each
 * such build must fail because ft/base.h pulls in banned.h. Built with no
 * PROBE_ macro it must succeed (so the failures are the ban, not a typo).
 */
#include "ft/base.h"

int probe(char *dst, size_t n, const char *src);
int probe(char *dst, size_t n, const char *src)
{
	char *save = NULL;
	(void)save;
#if defined(PROBE_sprintf)
	return sprintf(dst, "%s", src);
#elif defined(PROBE_strcpy)
	return strcpy(dst, src) != NULL;
#elif defined(PROBE_strcat)
	return strcat(dst, src) != NULL;
#elif defined(PROBE_strtok)
	return strtok(dst, src) != NULL;
#elif defined(PROBE_strncpy)
	return strncpy(dst, src, n) != NULL;
#elif defined(PROBE_vsprintf)
	va_list ap;
	return vsprintf(dst, src, ap);
#else
	return (int)ft_strlcpy(dst, src, n);
#endif
}
