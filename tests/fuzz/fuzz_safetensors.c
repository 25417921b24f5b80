/*
 * fuzz_safetensors.c - the safetensors header parser (ft_st_parse) on
 * arbitrary bytes, as ft_st_open sees a mapped file. On success every
 * tensor's data range is read (so an offset past the buffer is an ASan
 * error) and F32/F16/BF16 tensors go through ft_st_to_f32.
 *
 * Each input is parsed twice: as it is, and with its 8-byte length prefix
 * rewritten to end where the top-level JSON object closes. The second form
 * keeps mutations inside the JSON from being lost to a stale length, so the
 * fuzzer reaches the per-tensor validation.
 */
#include "ft/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const uint8_t *data, size_t size)
{
	struct ft_st_file *f = NULL;
	struct ft_err err;
	ft_err_clear(&err);
	if (ft_st_parse(data, size, size, &f, &err) != FT_OK) {
		FT_ASSERT(f == NULL && err.rc == FT_EFORMAT && err.msg[0]);
		return;
	}
	unsigned sum = 0;
	for (size_t i = 0; i < ft_st_count(f); i++) {
		const struct ft_st_tensor *t = ft_st_at(f, i);
		FT_ASSERT(ft_st_find(f, t->name) != NULL);
		FT_ASSERT(t->nbytes == t->nelem * ft_dtype_size(t->dtype));
		FT_ASSERT(t->nbytes == 0 || (const uint8_t *)t->data >= data);
		for (uint64_t b = 0; b < t->nbytes; b++)
			sum += ((const uint8_t *)t->data)[b];
		if ((t->dtype == FT_DTYPE_F32 || t->dtype == FT_DTYPE_F16 ||
		     t->dtype == FT_DTYPE_BF16) &&
		    t->nelem <= (1u << 16)) {
			float *out = malloc(t->nelem ? t->nelem * sizeof(float) : 1);
			FT_ASSERT(out && ft_st_to_f32(t, out, &err) == FT_OK);
			free(out);
		}
	}
	const char *k, *v;
	for (size_t i = 0; (k = ft_st_metadata_at(f, i, &v)); i++)
		FT_ASSERT(ft_st_metadata(f, k) != NULL);
	(void)sum;
	ft_st_close(f);
}

/* Index one past the '}' closing the object that starts at data[from], or 0. */
static size_t object_end(const uint8_t *data, size_t size, size_t from)
{
	int depth = 0;
	bool in_str = false, esc = false;
	for (size_t i = from; i < size; i++) {
		uint8_t c = data[i];
		if (in_str) {
			if (esc)
				esc = false;
			else if (c == '\\')
				esc = true;
			else if (c == '"')
				in_str = false;
		} else if (c == '"') {
			in_str = true;
		} else if (c == '{' || c == '[') {
			depth++;
		} else if (c == '}' || c == ']') {
			if (--depth == 0)
				return i + 1;
		}
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check(data, size);
	if (size < 9)
		return 0;
	size_t end = object_end(data, size, 8);
	if (!end)
		return 0;
	uint8_t *copy = malloc(size);
	FT_ASSERT(copy);
	memcpy(copy, data, size);
	for (int i = 0; i < 8; i++)
		copy[i] = (uint8_t)((uint64_t)(end - 8) >> (8 * i));
	if (memcmp(copy, data, 8) != 0)
		check(copy, size);
	free(copy);
	return 0;
}
