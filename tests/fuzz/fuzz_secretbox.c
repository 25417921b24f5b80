/*
 * fuzz_secretbox.c - opening sealed endpoint credentials (ft_secretbox_open,
 * common/base/src/crypto.c) on arbitrary text, as it could be read back from
 * the database. Without the key's tag nothing opens: arbitrary input is
 * refused, without a crash, a leak or any plaintext out; a value sealed
 * from the input's bytes opens to exactly them, and to nothing under
 * another row's id.
 */
#include "ft/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char key[FT_SECRETBOX_KEY_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	struct ft_err e;
	char *s = malloc(size + 1), *plain, *sealed;
	size_t n;
	FT_ASSERT(s != NULL);
	memcpy(s, data, size);
	s[size] = '\0';
	ft_err_clear(&e);
	FT_ASSERT(ft_secretbox_open(key, "ep-x", s, &plain, &n, &e) != FT_OK);
	FT_ASSERT(plain == NULL && n == 0);
	ft_err_clear(&e);
	if (size <= FT_SECRETBOX_MAX) {
		FT_ASSERT(ft_secretbox_seal(key, "ep-x", data, size, &sealed, &e) == FT_OK);
		FT_ASSERT(ft_secretbox_open(key, "ep-x", sealed, &plain, &n, &e) == FT_OK);
		FT_ASSERT(n == size && memcmp(plain, data, size) == 0);
		free(plain);
		FT_ASSERT(ft_secretbox_open(key, "ep-y", sealed, &plain, &n, &e) != FT_OK);
		free(sealed);
	}
	free(s);
	return 0;
}
