/*
 * fuzz_manifest.c - the reader of stored folders' manifests
 * (ft_manifest_parse, registry/src/manifest.c) on arbitrary bytes, as they
 * could come out of an object store. What it accepts must keep its rules:
 * every path relative, without an empty, "." or ".." segment, printable;
 * every digest 64 lower-case hex characters. Unpacking writes nothing
 * outside its folder because of them (ft_store_get_dir).
 */
#include "ft/registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ft_manifest m;
	struct ft_err e;
	ft_err_clear(&e);
	if (ft_manifest_parse((const char *)data, size, &m, &e) != FT_OK) {
		FT_ASSERT(m.files == NULL && m.n == 0 && e.rc == FT_EFORMAT);
		return 0;
	}
	for (size_t i = 0; i < m.n; i++) {
		const char *p = m.files[i].path;
		size_t n = strlen(p);
		FT_ASSERT(n > 0 && n <= 1024 && p[0] != '/' && p[n - 1] != '/');
		for (const char *s = p; *s; s++) {
			FT_ASSERT((unsigned char)*s >= 0x20 && *s != 0x7f && *s != '\\');
			if (s == p || s[-1] == '/') {
				FT_ASSERT(*s != '/');
				FT_ASSERT(!(s[0] == '.' && (s[1] == '/' || !s[1])));
				FT_ASSERT(!(s[0] == '.' && s[1] == '.' && (s[2] == '/' || !s[2])));
			}
		}
		FT_ASSERT(strlen(m.files[i].sha256) == 64);
		for (const char *h = m.files[i].sha256; *h; h++)
			FT_ASSERT((*h >= '0' && *h <= '9') || (*h >= 'a' && *h <= 'f'));
	}
	ft_manifest_release(&m);
	return 0;
}
