/*
 * fuzz_console_path.c - the check ft-api applies to a console path before
 * it reaches the file system (api_console_path_type). On arbitrary bytes it
 * must never crash, and whatever it accepts must be a relative path of
 * [A-Za-z0-9._-] segments, none empty or starting with '.', with a known
 * type: so never a ".." segment, an absolute path, or a hidden file.
 */
#include "../../api/src/api_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[512];
	size_t n = FT_MIN(size, sizeof(path) - 1);
	memcpy(path, data, n);
	path[n] = '\0';
	const char *type = api_console_path_type(path);
	if (!type)
		return 0;
	n = strlen(path);
	FT_ASSERT(n > 0 && n <= 255);
	/* every segment: not empty, not starting with '.' (so never "." or ".."
	 * or hidden; dots inside a name, "a..b.js", are a plain name) */
	FT_ASSERT(path[0] != '/' && path[0] != '.' && path[n - 1] != '/');
	FT_ASSERT(!strstr(path, "//") && !strstr(path, "/."));
	for (size_t i = 0; i < n; i++) {
		char c = path[i];
		FT_ASSERT((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' || c == '/');
	}
	return 0;
}
