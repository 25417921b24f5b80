/*
 * safetensors.c - read, validate and write safetensors files, and open a
 * model folder's (possibly sharded) weights.
 *
 * File layout:
 *
 *   offset   size  field
 *   0        8     N, u64 little-endian: header length
 *   8        N     header, UTF-8 JSON object:
 *                    "<name>": {"dtype": "F32", "shape": [d0, ...],
 *                               "data_offsets": [begin, end]}   one per tensor
 *                    "__metadata__": {"<key>": "<value>", ...}  optional
 *   8 + N    ...   data; a tensor's bytes are data[begin, end), row-major,
 *                  little-endian
 *
 * Validation (matches the `safetensors` package, 0.8, checked by
 * tests/system/test_safetensors_peer.py, except where noted):
 *   - N <= FT_ST_MAX_HEADER and 8 + N <= file size;
 *   - the header is a JSON object (duplicate keys are rejected; the package
 *     keeps the last one), UTF-8, no NUL characters;
 *   - each entry has "dtype" (a known name), "shape" (at most FT_ST_MAX_DIMS
 *     non-negative integers) and "data_offsets" (two non-negative integers,
 *     begin <= end); other keys in an entry are ignored, as the package does;
 *   - prod(shape) * dtype size == end - begin, computed without overflow;
 *   - sorted by (begin, end), each tensor starts where the previous one
 *     ended (no overlap, no gap) and the last one ends at the end of the
 *     file (no trailing bytes);
 *   - "__metadata__" is null or an object of string values.
 *
 * Writing follows the package byte for byte: tensors sorted by dtype
 * alignment rank, descending, then by name (bytewise); offsets packed from
 * 0; the header is compact JSON (serde_json's escaping) with "__metadata__"
 * first (keys sorted here; the package's order is a hash map's), padded
 * with spaces to a multiple of 8 bytes.
 */
#include <fcntl.h>
#include <libgen.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "ft/json.h"
#include "ft/safetensors.h"

/* ---------------------------------------------------------------- dtypes */

struct dtype_info {
	const char *name;
	size_t size;
	int rank; /* the package's alignment order; writing sorts descending */
};

/* clang-format off */
static const struct dtype_info dtypes[FT_DTYPE_COUNT] = {
	[FT_DTYPE_F32]  = { "F32",  4, 11 },
	[FT_DTYPE_F16]  = { "F16",  2, 7 },
	[FT_DTYPE_BF16] = { "BF16", 2, 8 },
	[FT_DTYPE_U8]   = { "U8",   1, 1 },
	[FT_DTYPE_I8]   = { "I8",   1, 2 },
	[FT_DTYPE_I32]  = { "I32",  4, 9 },
	[FT_DTYPE_I64]  = { "I64",  8, 13 },
	[FT_DTYPE_F64]  = { "F64",  8, 12 },
	[FT_DTYPE_BOOL] = { "BOOL", 1, 0 },
};
/* clang-format on */

#define SUPPORTED_DTYPES "F32, F16, BF16, U8, I8, I32, I64, F64, BOOL"

const char *ft_dtype_name(enum ft_dtype d)
{
	return (unsigned)d < FT_DTYPE_COUNT ? dtypes[d].name : "?";
}

size_t ft_dtype_size(enum ft_dtype d)
{
	return (unsigned)d < FT_DTYPE_COUNT ? dtypes[d].size : 0;
}

bool ft_dtype_parse(const char *s, enum ft_dtype *out)
{
	for (int i = 0; i < FT_DTYPE_COUNT; i++)
		if (strcmp(s, dtypes[i].name) == 0) {
			*out = (enum ft_dtype)i;
			return true;
		}
	return false;
}

/* ------------------------------------------------------- half precision */

/* IEEE binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits. Normal
 * numbers re-bias the exponent to 127; subnormals are mant * 2^-24, exact
 * in fp32; exponent 31 is inf (mant 0) or NaN (payload kept). */
float ft_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
	uint32_t exp = (h >> 10) & 0x1fu;
	uint32_t mant = h & 0x3ffu;
	uint32_t bits;
	float f;
	if (exp == 0) {
		f = (float)mant * 0x1p-24f;
		return sign ? -f : f;
	}
	if (exp == 31)
		bits = sign | 0x7f800000u | (mant << 13);
	else
		bits = sign | ((exp + 112u) << 23) | (mant << 13);
	memcpy(&f, &bits, sizeof(f));
	return f;
}

/* bfloat16 is the top half of an fp32. */
float ft_bf16_to_f32(uint16_t b)
{
	uint32_t bits = (uint32_t)b << 16;
	float f;
	memcpy(&f, &bits, sizeof(f));
	return f;
}

static uint16_t load_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint64_t load_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

enum ft_rc ft_st_to_f32(const struct ft_st_tensor *t, float *dst, struct ft_err *err)
{
	const uint8_t *p = t->data;
	if (!p && t->nelem)
		return ft_failf(err, FT_EINVAL, NULL, "tensor \"%s\": data is not loaded", t->name);
	switch (t->dtype) {
	case FT_DTYPE_F32:
		if (t->nelem)
			memcpy(dst, p, t->nelem * sizeof(float));
		return FT_OK;
	case FT_DTYPE_F16:
		for (uint64_t i = 0; i < t->nelem; i++)
			dst[i] = ft_f16_to_f32(load_u16(p + 2 * i));
		return FT_OK;
	case FT_DTYPE_BF16:
		for (uint64_t i = 0; i < t->nelem; i++)
			dst[i] = ft_bf16_to_f32(load_u16(p + 2 * i));
		return FT_OK;
	default:
		return ft_failf(err, FT_EINVAL, "unsupported_dtype",
				"tensor \"%s\": cannot convert %s to F32 (only F32, F16 and BF16)",
				t->name, ft_dtype_name(t->dtype));
	}
}

/* fp32 -> bfloat16: keep the top half, rounding the dropped 16 bits to
 * nearest even (add 0x7fff plus the lowest kept bit). */
uint16_t ft_f32_to_bf16(float f)
{
	uint32_t x;
	memcpy(&x, &f, sizeof(x));
	if ((x & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((x >> 16) & 0x8000u) | 0x7fc0u;
	return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

/* Round m >> shift to nearest even. */
static uint32_t shift_rne(uint32_t m, unsigned shift)
{
	uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
	return r + (rem > half || (rem == half && (r & 1u)));
}

/* fp32 -> binary16. |f| >= 65520 rounds to inf; below 2^-14 the result is
 * subnormal: round(|f| * 2^24), with the fp32 significand m (implicit bit
 * included) and biased exponent e, |f| * 2^24 = m >> (126 - e). Normal
 * results re-bias the exponent (e - 112) and round the 13 dropped mantissa
 * bits; a carry into the exponent is the correct next binade. */
uint16_t ft_f32_to_f16(float f)
{
	uint32_t x, sign, e, m;
	memcpy(&x, &f, sizeof(x));
	sign = (x >> 16) & 0x8000u;
	x &= 0x7fffffffu;
	if (x > 0x7f800000u) /* NaN: quieted, top payload bits kept (x86 F16C, ARM) */
		return (uint16_t)(sign | 0x7e00u | ((x >> 13) & 0x3ffu));
	if (x >= 0x477ff000u)
		return (uint16_t)(sign | 0x7c00u);
	e = x >> 23;
	m = (x & 0x7fffffu) | 0x800000u;
	if (e < 113) {
		if (126 - e > 24)
			return (uint16_t)sign;
		return (uint16_t)(sign | shift_rne(m, 126 - e));
	}
	return (uint16_t)(sign | shift_rne(((e - 112) << 23) | (x & 0x7fffffu), 13));
}

enum ft_rc ft_st_from_f32(const float *src, uint64_t n, enum ft_dtype dtype, void *dst,
			  struct ft_err *err)
{
	uint8_t *d = dst;
	switch (dtype) {
	case FT_DTYPE_F32:
		if (n)
			memcpy(dst, src, n * sizeof(float));
		return FT_OK;
	case FT_DTYPE_F16:
	case FT_DTYPE_BF16:
		for (uint64_t i = 0; i < n; i++) {
			uint16_t h = dtype == FT_DTYPE_F16 ? ft_f32_to_f16(src[i])
							   : ft_f32_to_bf16(src[i]);
			d[2 * i] = (uint8_t)h;
			d[2 * i + 1] = (uint8_t)(h >> 8);
		}
		return FT_OK;
	default:
		return ft_failf(err, FT_EINVAL, "unsupported_dtype",
				"cannot convert F32 to %s (only F32, F16 and BF16)",
				ft_dtype_name(dtype));
	}
}

/* ---------------------------------------------------------------- reading */

struct st_meta {
	const char *key;
	const char *value;
};

struct ft_st_file {
	char *path; /* "" when parsed from memory */
	void *map; /* the mapping (NULL for ft_st_parse) */
	size_t map_len;
	size_t n;
	struct ft_st_tensor *tensors; /* in file order */
	const struct ft_st_tensor **by_name; /* sorted by name */
	struct st_meta *meta; /* sorted by key */
	size_t n_meta;
	char *strings; /* every name, key and value above */
};

size_t ft_st_count(const struct ft_st_file *f)
{
	return f->n;
}

const struct ft_st_tensor *ft_st_at(const struct ft_st_file *f, size_t i)
{
	return i < f->n ? &f->tensors[i] : NULL;
}

const struct ft_st_tensor *ft_st_find(const struct ft_st_file *f, const char *name)
{
	size_t lo = 0, hi = f->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(f->by_name[mid]->name, name);
		if (c == 0)
			return f->by_name[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const char *ft_st_metadata(const struct ft_st_file *f, const char *key)
{
	for (size_t i = 0; i < f->n_meta; i++)
		if (strcmp(f->meta[i].key, key) == 0)
			return f->meta[i].value;
	return NULL;
}

size_t ft_st_metadata_count(const struct ft_st_file *f)
{
	return f->n_meta;
}

const char *ft_st_metadata_at(const struct ft_st_file *f, size_t i, const char **value)
{
	if (i >= f->n_meta)
		return NULL;
	*value = f->meta[i].value;
	return f->meta[i].key;
}

void ft_st_close(struct ft_st_file *f)
{
	if (!f)
		return;
	if (f->map)
		munmap(f->map, f->map_len);
	free(f->tensors);
	free(f->by_name);
	free(f->meta);
	free(f->strings);
	free(f->path);
	free(f);
}

/* "[10, 4]" */
static void fmt_shape(char *out, size_t outsz, int ndim, const int64_t *shape)
{
	size_t o = 0;
	o += (size_t)snprintf(out, outsz, "[");
	for (int i = 0; i < ndim && o < outsz; i++)
		o += (size_t)snprintf(out + o, outsz - o, "%s%" PRId64, i ? ", " : "", shape[i]);
	if (o < outsz)
		snprintf(out + o, outsz - o, "]");
}

/* Working record of one entry while validating. */
struct st_entry {
	struct ft_st_tensor t;
	uint64_t begin, end;
};

static int cmp_by_offsets(const void *a, const void *b)
{
	const struct st_entry *x = a, *y = b;
	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return strcmp(x->t.name, y->t.name);
}

static int cmp_item(const void *a, const void *b)
{
	return strcmp((*(const struct ft_st_tensor *const *)a)->name,
		      (*(const struct ft_st_tensor *const *)b)->name);
}

static int cmp_meta(const void *a, const void *b)
{
	return strcmp(((const struct st_meta *)a)->key, ((const struct st_meta *)b)->key);
}

/* Copy s into the strings blob at *pos. */
static const char *blob_put(char *blob, size_t *pos, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = blob + *pos;
	memcpy(p, s, n);
	*pos += n;
	return p;
}

/* A non-negative JSON integer, or false. */
static bool json_u64(const json_t *v, uint64_t *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*out = (uint64_t)json_integer_value(v);
	return true;
}

/* Validate one tensor entry into e (name already set). */
static enum ft_rc parse_entry(const char *name, json_t *v, uint64_t data_len, struct st_entry *e,
			      struct ft_err *err)
{
	json_t *dt, *shape, *offs, *x;
	char sh[256];
	size_t i;
	if (!json_is_object(v))
		return ft_failf(err, FT_EFORMAT, NULL,
				"tensor \"%s\": entry must be an object (got %s)", name,
				ft_json_type_name(v));

	dt = json_object_get(v, "dtype");
	if (!dt)
		return ft_failf(err, FT_EFORMAT, NULL, "tensor \"%s\": \"dtype\" is missing", name);
	if (!json_is_string(dt))
		return ft_failf(err, FT_EFORMAT, NULL,
				"tensor \"%s\": \"dtype\" must be a string (got %s)", name,
				ft_json_type_name(dt));
	if (!ft_dtype_parse(json_string_value(dt), &e->t.dtype))
		return ft_failf(
			err, FT_EFORMAT, "unsupported_dtype",
			"tensor \"%s\": unsupported dtype \"%s\" (supported: " SUPPORTED_DTYPES ")",
			name, json_string_value(dt));

	shape = json_object_get(v, "shape");
	if (!shape)
		return ft_failf(err, FT_EFORMAT, NULL, "tensor \"%s\": \"shape\" is missing", name);
	if (!json_is_array(shape))
		return ft_failf(err, FT_EFORMAT, NULL,
				"tensor \"%s\": \"shape\" must be a list (got %s)", name,
				ft_json_type_name(shape));
	if (json_array_size(shape) > FT_ST_MAX_DIMS)
		return ft_failf(
			err, FT_EFORMAT, NULL,
			"tensor \"%s\": shape has %zu dimensions (at most %d are supported)", name,
			json_array_size(shape), FT_ST_MAX_DIMS);
	e->t.ndim = (int)json_array_size(shape);
	json_array_foreach(shape, i, x)
	{
		uint64_t d;
		if (!json_u64(x, &d)) {
			if (json_is_integer(x))
				return ft_failf(err, FT_EFORMAT, NULL,
						"tensor \"%s\": shape[%zu] must be a non-negative "
						"integer (got %" JSON_INTEGER_FORMAT ")",
						name, i, json_integer_value(x));
			return ft_failf(
				err, FT_EFORMAT, NULL,
				"tensor \"%s\": shape[%zu] must be a non-negative integer (got %s)",
				name, i, ft_json_type_name(x));
		}
		e->t.shape[i] = (int64_t)d;
	}

	offs = json_object_get(v, "data_offsets");
	if (!offs)
		return ft_failf(err, FT_EFORMAT, NULL, "tensor \"%s\": \"data_offsets\" is missing",
				name);
	if (!json_is_array(offs) || json_array_size(offs) != 2 ||
	    !json_u64(json_array_get(offs, 0), &e->begin) ||
	    !json_u64(json_array_get(offs, 1), &e->end))
		return ft_failf(
			err, FT_EFORMAT, NULL,
			"tensor \"%s\": \"data_offsets\" must be a list of 2 non-negative integers",
			name);
	if (e->begin > e->end)
		return ft_failf(err, FT_EFORMAT, NULL,
				"tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64
				"] are reversed (begin > end)",
				name, e->begin, e->end);

	fmt_shape(sh, sizeof(sh), e->t.ndim, e->t.shape);
	uint64_t nelem = 1, nbytes;
	for (int d = 0; d < e->t.ndim; d++)
		if (__builtin_mul_overflow(nelem, (uint64_t)e->t.shape[d], &nelem))
			return ft_failf(err, FT_EFORMAT, NULL,
					"tensor \"%s\": shape %s is too large (the element count "
					"overflows)",
					name, sh);
	if (__builtin_mul_overflow(nelem, (uint64_t)ft_dtype_size(e->t.dtype), &nbytes))
		return ft_failf(err, FT_EFORMAT, NULL,
				"tensor \"%s\": shape %s is too large (the byte size overflows)",
				name, sh);
	if (e->end - e->begin != nbytes)
		return ft_failf(err, FT_EFORMAT, NULL,
				"tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64
				"] do not match shape %s of %s (%" PRIu64 " bytes)",
				name, e->begin, e->end, sh, ft_dtype_name(e->t.dtype), nbytes);
	if (e->end > data_len)
		return ft_failf(err, FT_EFORMAT, NULL,
				"tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64
				"] run past the end of the data (%" PRIu64 " bytes)",
				name, e->begin, e->end, data_len);
	e->t.nelem = nelem;
	e->t.nbytes = nbytes;
	return FT_OK;
}

static enum ft_rc parse_metadata(json_t *v, size_t *count, size_t *bytes, struct ft_err *err)
{
	const char *k;
	json_t *x;
	if (json_is_null(v))
		return FT_OK;
	if (!json_is_object(v))
		return ft_failf(err, FT_EFORMAT, NULL,
				"\"__metadata__\" must be an object of strings (got %s)",
				ft_json_type_name(v));
	json_object_foreach(v, k, x)
	{
		if (!json_is_string(x))
			return ft_failf(
				err, FT_EFORMAT, NULL,
				"\"__metadata__\" value for \"%s\" must be a string (got %s)", k,
				ft_json_type_name(x));
		(*count)++;
		*bytes += strlen(k) + 1 + json_string_length(x) + 1;
	}
	return FT_OK;
}

/* Check the packing of entries sorted by offsets: contiguous from 0 to
 * data_len. */
static enum ft_rc check_packing(const struct st_entry *e, size_t n, uint64_t data_len,
				struct ft_err *err)
{
	uint64_t at = 0;
	for (size_t i = 0; i < n; i++) {
		if (e[i].begin < at)
			return ft_failf(err, FT_EFORMAT, NULL,
					"tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64
					"] overlap tensor \"%s\" (which ends at %" PRIu64 ")",
					e[i].t.name, e[i].begin, e[i].end, e[i - 1].t.name, at);
		if (e[i].begin > at) {
			if (i == 0)
				return ft_failf(err, FT_EFORMAT, NULL,
						"tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64
						"] leave a gap: the first tensor must start at 0",
						e[i].t.name, e[i].begin, e[i].end);
			return ft_failf(err, FT_EFORMAT, NULL,
					"tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64
					"] leave a gap after tensor \"%s\" (which ends at %" PRIu64
					")",
					e[i].t.name, e[i].begin, e[i].end, e[i - 1].t.name, at);
		}
		at = e[i].end;
	}
	if (at != data_len)
		return ft_failf(err, FT_EFORMAT, NULL,
				"the data section is %" PRIu64
				" bytes but the tensors cover %" PRIu64
				" (trailing bytes after the last tensor)",
				data_len, at);
	return FT_OK;
}

enum ft_rc ft_st_parse(const uint8_t *buf, size_t len, uint64_t file_size, struct ft_st_file **out,
		       struct ft_err *err)
{
	struct ft_st_file *f = NULL;
	struct st_entry *ents = NULL;
	json_t *root = NULL, *meta = NULL, *v;
	json_error_t je;
	const char *k;
	size_t n = 0, n_meta = 0, bytes = 0, pos = 0, i;
	uint64_t hlen, data_len;
	enum ft_rc rc;

	*out = NULL;
	if (len < 8 || file_size < 8)
		return ft_failf(err, FT_EFORMAT, NULL,
				"file is too small to be safetensors (%" PRIu64
				" bytes; the 8-byte header length is missing)",
				file_size < len ? file_size : (uint64_t)len);
	hlen = load_u64(buf);
	if (hlen > FT_ST_MAX_HEADER)
		return ft_failf(err, FT_EFORMAT, NULL,
				"header length %" PRIu64 " is over the limit of %u bytes", hlen,
				FT_ST_MAX_HEADER);
	if (8 + hlen > file_size || 8 + hlen > len)
		return ft_failf(err, FT_EFORMAT, NULL,
				"header length %" PRIu64 " runs past the end of the file (%" PRIu64
				" bytes)",
				hlen, file_size);
	data_len = file_size - 8 - hlen;

	root = json_loadb((const char *)buf + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return ft_failf(err, FT_EFORMAT, "invalid_json",
				"header is not valid JSON (at byte %d): %s", je.position, je.text);
	if (!json_is_object(root)) {
		rc = ft_failf(err, FT_EFORMAT, NULL, "header must be a JSON object (got %s)",
			      ft_json_type_name(root));
		goto free_json;
	}

	/* First pass: count, and size the strings blob. */
	json_object_foreach(root, k, v)
	{
		if (strcmp(k, "__metadata__") == 0) {
			meta = v;
			rc = parse_metadata(v, &n_meta, &bytes, err);
			if (rc)
				goto free_json;
			continue;
		}
		n++;
		bytes += strlen(k) + 1;
	}

	rc = FT_ENOMEM;
	f = calloc(1, sizeof(*f));
	ents = calloc(n ? n : 1, sizeof(*ents));
	if (!f || !ents)
		goto fail_nomem;
	f->strings = malloc(bytes ? bytes : 1);
	f->tensors = calloc(n ? n : 1, sizeof(*f->tensors));
	f->by_name = calloc(n ? n : 1, sizeof(*f->by_name));
	f->meta = calloc(n_meta ? n_meta : 1, sizeof(*f->meta));
	f->path = strdup("");
	if (!f->strings || !f->tensors || !f->by_name || !f->meta || !f->path)
		goto fail_nomem;

	/* Second pass: validate each entry. */
	i = 0;
	json_object_foreach(root, k, v)
	{
		if (v == meta)
			continue;
		ents[i].t.name = blob_put(f->strings, &pos, k);
		rc = parse_entry(ents[i].t.name, v, data_len, &ents[i], err);
		if (rc)
			goto free_file;
		i++;
	}
	if (meta && json_is_object(meta)) {
		i = 0;
		json_object_foreach(meta, k, v)
		{
			f->meta[i].key = blob_put(f->strings, &pos, k);
			f->meta[i].value = blob_put(f->strings, &pos, json_string_value(v));
			i++;
		}
		qsort(f->meta, n_meta, sizeof(*f->meta), cmp_meta);
	}
	f->n_meta = n_meta;

	qsort(ents, n, sizeof(*ents), cmp_by_offsets);
	rc = check_packing(ents, n, data_len, err);
	if (rc)
		goto free_file;

	for (i = 0; i < n; i++) {
		uint64_t at = 8 + hlen + ents[i].begin;
		f->tensors[i] = ents[i].t;
		/* Data past what the caller's buffer holds stays NULL. */
		f->tensors[i].data = at + ents[i].t.nbytes <= len ? buf + at : NULL;
		f->by_name[i] = &f->tensors[i];
	}
	f->n = n;
	qsort(f->by_name, n, sizeof(*f->by_name), cmp_item);

	free(ents);
	json_decref(root);
	*out = f;
	return FT_OK;

fail_nomem:
	rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory reading the safetensors header");
free_file:
	ft_st_close(f);
	free(ents);
free_json:
	json_decref(root);
	return rc;
}

enum ft_rc ft_st_open(const char *path, struct ft_st_file **out, struct ft_err *err)
{
	struct ft_st_file *f = NULL;
	struct stat st;
	void *map;
	enum ft_rc rc;
	int fd;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ft_failf(err, errno == ENOENT ? FT_ENOTFOUND : FT_EIO, NULL,
				"%s: cannot open: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0) {
		rc = ft_failf(err, FT_EIO, NULL, "%s: cannot stat: %s", path, strerror(errno));
		goto close_fd;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = ft_failf(err, FT_EFORMAT, NULL, "%s: not a regular file", path);
		goto close_fd;
	}
	if (st.st_size < 8) {
		rc = ft_failf(err, FT_EFORMAT, NULL,
			      "%s: file is too small to be safetensors (%lld bytes; the 8-byte "
			      "header length is missing)",
			      path, (long long)st.st_size);
		goto close_fd;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED) {
		rc = ft_failf(err, FT_EIO, NULL, "%s: cannot map: %s", path, strerror(errno));
		goto close_fd;
	}
	close(fd);
	rc = ft_st_parse(map, (size_t)st.st_size, (uint64_t)st.st_size, &f, err);
	if (rc) {
		munmap(map, (size_t)st.st_size);
		ft_err_prefixf(err, "%s: ", path);
		return rc;
	}
	f->map = map;
	f->map_len = (size_t)st.st_size;
	free(f->path);
	f->path = strdup(path);
	if (!f->path) {
		ft_st_close(f);
		return ft_failf(err, FT_ENOMEM, NULL, "%s: out of memory", path);
	}
	*out = f;
	return FT_OK;

close_fd:
	close(fd);
	return rc;
}

/* ---------------------------------------------------------------- writing */

struct st_wtensor {
	char *name;
	enum ft_dtype dtype;
	int ndim;
	int64_t shape[FT_ST_MAX_DIMS];
	const void *data;
	uint64_t nbytes;
	ft_st_fill_fn fill; /* when set, data is made at write time */
	void *ctx;
};

struct st_wmeta {
	char *key;
	char *value;
};

struct ft_st_writer {
	struct st_wtensor *t;
	size_t n, cap;
	struct st_wmeta *meta;
	size_t n_meta, meta_cap;
};

struct ft_st_writer *ft_st_writer_new(void)
{
	return ft_xcalloc(1, sizeof(struct ft_st_writer));
}

void ft_st_writer_free(struct ft_st_writer *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->n; i++)
		free(w->t[i].name);
	for (size_t i = 0; i < w->n_meta; i++) {
		free(w->meta[i].key);
		free(w->meta[i].value);
	}
	free(w->t);
	free(w->meta);
	free(w);
}

/* Strict UTF-8 (no overlong forms, no surrogates, at most U+10FFFF), as
 * readers of the header demand. */
static bool utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		unsigned c = *p++;
		int more;
		unsigned cp, min;
		if (c < 0x80)
			continue;
		if ((c & 0xe0) == 0xc0) {
			more = 1;
			cp = c & 0x1f;
			min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			more = 2;
			cp = c & 0x0f;
			min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			more = 3;
			cp = c & 0x07;
			min = 0x10000;
		} else {
			return false;
		}
		for (int i = 0; i < more; i++, p++) {
			if ((*p & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (*p & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
	}
	return true;
}

enum ft_rc ft_st_writer_add(struct ft_st_writer *w, const char *name, enum ft_dtype dtype, int ndim,
			    const int64_t *shape, const void *data, struct ft_err *err)
{
	struct st_wtensor *t;
	uint64_t nelem = 1, nbytes;
	if (!name[0] || strcmp(name, "__metadata__") == 0 || !utf8_valid(name))
		return ft_failf(err, FT_EINVAL, NULL,
				"tensor name \"%s\" is not allowed (must be non-empty UTF-8, not "
				"\"__metadata__\")",
				name);
	if ((unsigned)dtype >= FT_DTYPE_COUNT)
		return ft_failf(err, FT_EINVAL, NULL, "tensor \"%s\": unknown dtype %d", name,
				(int)dtype);
	if (ndim < 0 || ndim > FT_ST_MAX_DIMS)
		return ft_failf(err, FT_EINVAL, NULL,
				"tensor \"%s\": %d dimensions (0 to %d are supported)", name, ndim,
				FT_ST_MAX_DIMS);
	for (int d = 0; d < ndim; d++)
		if (shape[d] < 0 || __builtin_mul_overflow(nelem, (uint64_t)shape[d], &nelem))
			return ft_failf(err, FT_EINVAL, NULL,
					"tensor \"%s\": bad shape (dimension %d is %" PRId64 ")",
					name, d, shape[d]);
	if (__builtin_mul_overflow(nelem, (uint64_t)ft_dtype_size(dtype), &nbytes))
		return ft_failf(err, FT_EINVAL, NULL, "tensor \"%s\": shape is too large", name);
	for (size_t i = 0; i < w->n; i++)
		if (strcmp(w->t[i].name, name) == 0)
			return ft_failf(err, FT_EINVAL, NULL, "tensor \"%s\" was added twice",
					name);
	if (w->n == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 16;
		struct st_wtensor *nt = realloc(w->t, cap * sizeof(*nt));
		if (!nt)
			return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
		w->t = nt;
		w->cap = cap;
	}
	t = &w->t[w->n];
	memset(t, 0, sizeof(*t));
	t->name = strdup(name);
	if (!t->name)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	t->dtype = dtype;
	t->ndim = ndim;
	for (int d = 0; d < ndim; d++)
		t->shape[d] = shape[d];
	t->data = data;
	t->nbytes = nbytes;
	w->n++;
	return FT_OK;
}

enum ft_rc ft_st_writer_add_fill(struct ft_st_writer *w, const char *name, enum ft_dtype dtype,
				 int ndim, const int64_t *shape, ft_st_fill_fn fill, void *ctx,
				 struct ft_err *err)
{
	enum ft_rc rc = ft_st_writer_add(w, name, dtype, ndim, shape, NULL, err);
	if (!rc) {
		w->t[w->n - 1].fill = fill;
		w->t[w->n - 1].ctx = ctx;
	}
	return rc;
}

enum ft_rc ft_st_writer_meta(struct ft_st_writer *w, const char *key, const char *value,
			     struct ft_err *err)
{
	if (!utf8_valid(key) || !utf8_valid(value))
		return ft_failf(err, FT_EINVAL, NULL, "metadata \"%s\": not valid UTF-8", key);
	for (size_t i = 0; i < w->n_meta; i++)
		if (strcmp(w->meta[i].key, key) == 0) {
			char *v = strdup(value);
			if (!v)
				return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
			free(w->meta[i].value);
			w->meta[i].value = v;
			return FT_OK;
		}
	if (w->n_meta == w->meta_cap) {
		size_t cap = w->meta_cap ? 2 * w->meta_cap : 8;
		struct st_wmeta *nm = realloc(w->meta, cap * sizeof(*nm));
		if (!nm)
			return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
		w->meta = nm;
		w->meta_cap = cap;
	}
	w->meta[w->n_meta].key = strdup(key);
	w->meta[w->n_meta].value = strdup(value);
	if (!w->meta[w->n_meta].key || !w->meta[w->n_meta].value) {
		free(w->meta[w->n_meta].key);
		free(w->meta[w->n_meta].value);
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	}
	w->n_meta++;
	return FT_OK;
}

/* A JSON string the way serde_json writes it: \" \\ \b \f \n \r \t, other
 * control characters as \u00xx (lower-case hex), everything else raw. */
static enum ft_rc json_str(struct ft_buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	enum ft_rc rc = ft_buf_addch(b, '"');
	for (const unsigned char *p = (const unsigned char *)s; *p && !rc; p++) {
		unsigned char c = *p;
		switch (c) {
		case '"': rc = ft_buf_addstr(b, "\\\""); break;
		case '\\': rc = ft_buf_addstr(b, "\\\\"); break;
		case '\b': rc = ft_buf_addstr(b, "\\b"); break;
		case '\f': rc = ft_buf_addstr(b, "\\f"); break;
		case '\n': rc = ft_buf_addstr(b, "\\n"); break;
		case '\r': rc = ft_buf_addstr(b, "\\r"); break;
		case '\t': rc = ft_buf_addstr(b, "\\t"); break;
		default:
			if (c < 0x20) {
				char u[7] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0 };
				rc = ft_buf_addstr(b, u);
			} else {
				rc = ft_buf_addch(b, (char)c);
			}
		}
	}
	return rc ? rc : ft_buf_addch(b, '"');
}

static int cmp_wtensor(const void *a, const void *b)
{
	const struct st_wtensor *x = a, *y = b;
	if (dtypes[x->dtype].rank != dtypes[y->dtype].rank)
		return dtypes[x->dtype].rank > dtypes[y->dtype].rank ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int cmp_wmeta(const void *a, const void *b)
{
	return strcmp(((const struct st_wmeta *)a)->key, ((const struct st_wmeta *)b)->key);
}

/* Build the padded header for the (already sorted) tensors. */
static enum ft_rc build_header(const struct ft_st_writer *w, struct ft_buf *h)
{
	uint64_t off = 0;
	enum ft_rc rc = ft_buf_addch(h, '{');
	bool first = true;
	if (w->n_meta && !rc) {
		rc = ft_buf_addstr(h, "\"__metadata__\":{");
		for (size_t i = 0; i < w->n_meta && !rc; i++) {
			rc = (i ? ft_buf_addch(h, ',') : FT_OK);
			rc = rc ? rc : json_str(h, w->meta[i].key);
			rc = rc ? rc : ft_buf_addch(h, ':');
			rc = rc ? rc : json_str(h, w->meta[i].value);
		}
		rc = rc ? rc : ft_buf_addch(h, '}');
		first = false;
	}
	for (size_t i = 0; i < w->n && !rc; i++) {
		const struct st_wtensor *t = &w->t[i];
		rc = first ? FT_OK : ft_buf_addch(h, ',');
		first = false;
		rc = rc ? rc : json_str(h, t->name);
		rc = rc ? rc
			: ft_buf_addf(h, ":{\"dtype\":\"%s\",\"shape\":[", ft_dtype_name(t->dtype));
		for (int d = 0; d < t->ndim && !rc; d++)
			rc = ft_buf_addf(h, "%s%" PRId64, d ? "," : "", t->shape[d]);
		rc = rc ? rc
			: ft_buf_addf(h, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off,
				      off + t->nbytes);
		off += t->nbytes;
	}
	rc = rc ? rc : ft_buf_addch(h, '}');
	while (!rc && h->len % 8)
		rc = ft_buf_addch(h, ' ');
	return rc;
}

static enum ft_rc write_all(int fd, const void *p, uint64_t n, const char *path, struct ft_err *err)
{
	const uint8_t *c = p;
	while (n) {
		size_t chunk = n > (1u << 30) ? (1u << 30) : (size_t)n;
		ssize_t k = write(fd, c, chunk);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return ft_failf(err, FT_EIO, NULL, "%s: write failed: %s", path,
					k < 0 ? strerror(errno) : "no progress");
		c += k;
		n -= (uint64_t)k;
	}
	return FT_OK;
}

/* fsync the folder holding path so that the rename is durable. */
static void sync_parent(const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return;
	int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(copy);
}

enum ft_rc ft_st_writer_write(struct ft_st_writer *w, const char *path, struct ft_err *err)
{
	struct ft_buf h = FT_BUF_INIT(FT_ST_MAX_HEADER);
	struct ft_buf tmp = FT_BUF_INIT(8192);
	uint8_t len8[8];
	enum ft_rc rc;
	int fd;
	void *scratch = NULL;
	uint64_t scratch_len = 0;

	if (w->n)
		qsort(w->t, w->n, sizeof(*w->t), cmp_wtensor);
	if (w->n_meta)
		qsort(w->meta, w->n_meta, sizeof(*w->meta), cmp_wmeta);
	if (build_header(w, &h)) {
		rc = ft_failf(err, FT_ELIMIT, NULL, "%s: the header would exceed %u bytes", path,
			      FT_ST_MAX_HEADER);
		goto release_header;
	}
	for (int i = 0; i < 8; i++)
		len8[i] = (uint8_t)((uint64_t)h.len >> (8 * i));

	if (ft_buf_addf(&tmp, "%s.tmp-XXXXXX", path)) {
		rc = ft_failf(err, FT_ELIMIT, NULL, "%s: path is too long", path);
		goto release_header;
	}
	fd = mkstemp(tmp.ptr);
	if (fd < 0) {
		rc = ft_failf(err, FT_EIO, NULL, "%s: cannot create a temporary file: %s", path,
			      strerror(errno));
		goto release_tmp;
	}
	rc = write_all(fd, len8, 8, path, err);
	rc = rc ? rc : write_all(fd, h.ptr, h.len, path, err);
	for (size_t i = 0; i < w->n && !rc; i++) {
		const void *data = w->t[i].data;
		if (w->t[i].fill) {
			/* one scratch buffer, grown to the largest filled tensor */
			if (w->t[i].nbytes > scratch_len) {
				void *ns = realloc(scratch, w->t[i].nbytes);
				if (!ns) {
					rc = ft_failf(err, FT_ENOMEM, NULL,
						      "%s: out of memory for tensor \"%s\"", path,
						      w->t[i].name);
					break;
				}
				scratch = ns;
				scratch_len = w->t[i].nbytes;
			}
			if ((rc = w->t[i].fill(w->t[i].ctx, scratch, w->t[i].nbytes, err)))
				break;
			data = scratch;
		}
		rc = write_all(fd, data, w->t[i].nbytes, path, err);
	}
	free(scratch);
	if (!rc && fchmod(fd, 0644) != 0)
		rc = ft_failf(err, FT_EIO, NULL, "%s: chmod failed: %s", path, strerror(errno));
	if (!rc && fsync(fd) != 0)
		rc = ft_failf(err, FT_EIO, NULL, "%s: fsync failed: %s", path, strerror(errno));
	if (close(fd) != 0 && !rc)
		rc = ft_failf(err, FT_EIO, NULL, "%s: close failed: %s", path, strerror(errno));
	if (!rc && rename(tmp.ptr, path) != 0)
		rc = ft_failf(err, FT_EIO, NULL, "%s: rename failed: %s", path, strerror(errno));
	if (rc)
		unlink(tmp.ptr);
	else
		sync_parent(path);
release_tmp:
	ft_buf_release(&tmp);
release_header:
	ft_buf_release(&h);
	return rc;
}

/* ------------------------------------------------------- model folders */

#define INDEX_NAME "model.safetensors.index.json"
#define SINGLE_NAME "model.safetensors"
#define MAX_INDEX_BYTES (64u << 20)

struct ft_st_set {
	struct ft_st_file **files;
	size_t n_files;
	const struct ft_st_tensor **items; /* sorted by name */
	size_t n;
};

void ft_st_set_close(struct ft_st_set *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_files; i++)
		ft_st_close(s->files[i]);
	free(s->files);
	free(s->items);
	free(s);
}

size_t ft_st_set_count(const struct ft_st_set *s)
{
	return s->n;
}

const struct ft_st_tensor *ft_st_set_at(const struct ft_st_set *s, size_t i)
{
	return i < s->n ? s->items[i] : NULL;
}

const struct ft_st_tensor *ft_st_set_find(const struct ft_st_set *s, const char *name)
{
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->items[mid]->name, name);
		if (c == 0)
			return s->items[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Read a whole small file into out (initialised by the caller, whose cap
 * bounds the size). */
static enum ft_rc read_small(const char *path, struct ft_buf *out, struct ft_err *err)
{
	FILE *fp = fopen(path, "rb");
	char chunk[65536];
	size_t k;
	if (!fp)
		return ft_failf(err, errno == ENOENT ? FT_ENOTFOUND : FT_EIO, NULL,
				"%s: cannot open: %s", path, strerror(errno));
	while ((k = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		if (ft_buf_add(out, chunk, k)) {
			fclose(fp);
			return ft_failf(err, FT_ELIMIT, NULL, "%s: larger than %zu bytes", path,
					out->max);
		}
	if (ferror(fp)) {
		fclose(fp);
		return ft_failf(err, FT_EIO, NULL, "%s: read failed", path);
	}
	fclose(fp);
	return FT_OK;
}

/* A shard name from the index must be a plain file name in the folder. */
static bool plain_file_name(const char *s)
{
	return s[0] && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static enum ft_rc set_open_sharded(const char *dir, const char *index_path, struct ft_st_set *s,
				   struct ft_err *err)
{
	struct ft_buf text = FT_BUF_INIT(MAX_INDEX_BYTES), path = FT_BUF_INIT(8192);
	json_t *root = NULL, *map = NULL, *v;
	const char **shard_names = NULL;
	const char *k;
	size_t n;
	enum ft_rc rc;

	rc = read_small(index_path, &text, err);
	if (rc)
		goto release_text;
	root = ft_json_parse(ft_buf_str(&text), text.len, err);
	if (!root) {
		rc = FT_EFORMAT;
		if (err)
			err->rc = FT_EFORMAT;
		goto prefix;
	}
	if (!json_is_object(root)) {
		rc = ft_failf(err, FT_EFORMAT, NULL, "must be a JSON object (got %s)",
			      ft_json_type_name(root));
		goto prefix;
	}
	map = json_object_get(root, "weight_map");
	if (!json_is_object(map)) {
		rc = ft_failf(err, FT_EFORMAT, NULL, "\"weight_map\" must be an object (got %s)",
			      ft_json_type_name(map));
		goto prefix;
	}
	n = json_object_size(map);
	rc = FT_ENOMEM;
	shard_names = calloc(n ? n : 1, sizeof(*shard_names));
	s->files = calloc(n ? n : 1, sizeof(*s->files));
	s->items = calloc(n ? n : 1, sizeof(*s->items));
	if (!shard_names || !s->files || !s->items) {
		rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
		goto prefix;
	}

	/* Open each distinct shard once, in the order the map first names it. */
	json_object_foreach(map, k, v)
	{
		const char *shard;
		size_t f;
		if (!json_is_string(v) || !plain_file_name(json_string_value(v))) {
			rc = ft_failf(err, FT_EFORMAT, NULL,
				      "\"weight_map\" entry for \"%s\" must be a file name in the "
				      "model folder",
				      k);
			goto prefix;
		}
		shard = json_string_value(v);
		for (f = 0; f < s->n_files; f++)
			if (strcmp(shard_names[f], shard) == 0)
				break;
		if (f == s->n_files) {
			ft_buf_reset(&path);
			if (ft_buf_addf(&path, "%s/%s", dir, shard)) {
				rc = ft_failf(err, FT_ELIMIT, NULL, "path too long");
				goto prefix;
			}
			rc = ft_st_open(path.ptr, &s->files[f], err);
			if (rc == FT_ENOTFOUND) {
				/* Replace the bare "cannot open" with the story. */
				struct ft_err e2;
				ft_err_clear(&e2);
				ft_failf(&e2, FT_ENOTFOUND, "missing_shard",
					 "%s: shard \"%s\" is missing (the weight_map names it for "
					 "tensor \"%s\")",
					 index_path, shard, k);
				if (err)
					*err = e2;
				goto free_json;
			}
			if (rc)
				goto free_json;
			shard_names[f] = shard;
			s->n_files++;
		}
		s->items[s->n] = ft_st_find(s->files[f], k);
		if (!s->items[s->n]) {
			rc = ft_failf(err, FT_EFORMAT, "missing_tensor",
				      "tensor \"%s\" is mapped to shard \"%s\", which does not "
				      "contain it",
				      k, shard);
			goto prefix;
		}
		s->n++;
	}
	qsort(s->items, s->n, sizeof(*s->items), cmp_item);
	rc = FT_OK;
	goto free_json;

prefix:
	ft_err_prefixf(err, "%s: ", index_path);
free_json:
	free(shard_names);
	json_decref(root);
release_text:
	ft_buf_release(&text);
	ft_buf_release(&path);
	return rc;
}

enum ft_rc ft_st_set_open(const char *model_dir, struct ft_st_set **out, struct ft_err *err)
{
	struct ft_buf p = FT_BUF_INIT(8192);
	struct ft_st_set *s = ft_xcalloc(1, sizeof(*s));
	struct stat st;
	enum ft_rc rc;

	*out = NULL;
	/* model.safetensors first, then the index: transformers' order. */
	if (ft_buf_addf(&p, "%s/" SINGLE_NAME, model_dir)) {
		rc = ft_failf(err, FT_ELIMIT, NULL, "%s: path too long", model_dir);
		goto fail;
	}
	if (stat(p.ptr, &st) != 0) {
		ft_buf_reset(&p);
		if (ft_buf_addf(&p, "%s/" INDEX_NAME, model_dir)) {
			rc = ft_failf(err, FT_ELIMIT, NULL, "%s: path too long", model_dir);
			goto fail;
		}
		if (stat(p.ptr, &st) != 0) {
			rc = ft_failf(err, FT_ENOTFOUND, "no_weights",
				      "%s: no " SINGLE_NAME " or " INDEX_NAME
				      " in the model folder",
				      model_dir);
			goto fail;
		}
		rc = set_open_sharded(model_dir, p.ptr, s, err);
		if (rc)
			goto fail;
		goto done;
	}
	s->files = ft_xcalloc(1, sizeof(*s->files));
	rc = ft_st_open(p.ptr, &s->files[0], err);
	if (rc)
		goto fail;
	s->n_files = 1;
	s->n = ft_st_count(s->files[0]);
	s->items = calloc(s->n ? s->n : 1, sizeof(*s->items));
	if (!s->items) {
		rc = ft_failf(err, FT_ENOMEM, NULL, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < s->n; i++)
		s->items[i] = ft_st_at(s->files[0], i);
	qsort(s->items, s->n, sizeof(*s->items), cmp_item);
done:
	ft_buf_release(&p);
	*out = s;
	return FT_OK;
fail:
	ft_buf_release(&p);
	ft_st_set_close(s);
	return rc;
}
