/*
 * test_safetensors.c - the safetensors reader's validation (one hand-built
 * file per error, each message asserted), half-precision conversion against
 * hand-computed values, the writer against the reference implementation's
 * own test vectors (safetensors/src/tensor.rs: test_serialization,
 * test_empty), and sharded folders.
 */
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ftest.h"
#include "ft/safetensors.h"

/* A file image: u64 header length, the header text, then data_len bytes
 * counting up from 0. Returns the total length. */
static size_t mk(uint8_t *out, size_t cap, const char *hdr, size_t data_len)
{
	size_t n = strlen(hdr);
	FT_ASSERT(8 + n + data_len <= cap);
	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t)((uint64_t)n >> (8 * i));
	memcpy(out + 8, hdr, n);
	for (size_t i = 0; i < data_len; i++)
		out[8 + n + i] = (uint8_t)i;
	return 8 + n + data_len;
}

/* Parse hdr + data_len bytes and return the error message ("" on success). */
static const char *parse_msg(const char *hdr, size_t data_len, struct ft_err *err)
{
	static uint8_t buf[4096];
	struct ft_st_file *f = NULL;
	size_t n = mk(buf, sizeof(buf), hdr, data_len);
	ft_err_clear(err);
	enum ft_rc rc = ft_st_parse(buf, n, n, &f, err);
	ft_st_close(f);
	if (rc == FT_OK)
		return "";
	FT_ASSERT(f == NULL);
	return err->msg;
}

#define T1(name, dt, shape, offs) \
	"{\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":" offs "}}"

FT_TEST(parse_valid_file)
{
	uint8_t buf[1024];
	struct ft_st_file *f;
	struct ft_err err;
	const char *hdr =
		"{\"__metadata__\":{\"format\":\"pt\",\"a\":\"b\"},"
		"\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
		"\"s\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[24,32]},"
		"\"e\":{\"dtype\":\"BF16\",\"shape\":[0,4],\"data_offsets\":[32,32]},"
		"\"b\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offsets\":[32,33],\"x\":1}}";
	size_t n = mk(buf, sizeof(buf), hdr, 33);
	ft_err_clear(&err);
	FT_CHECK_INT(ft_st_parse(buf, n, n, &f, &err), FT_OK);
	FT_CHECK_INT(ft_st_count(f), 4);
	/* File order: by offset, ties (the empty tensor) by (begin, end). */
	FT_CHECK_STR(ft_st_at(f, 0)->name, "w");
	FT_CHECK_STR(ft_st_at(f, 1)->name, "s");
	FT_CHECK_STR(ft_st_at(f, 2)->name, "e");
	FT_CHECK_STR(ft_st_at(f, 3)->name, "b");
	FT_CHECK(ft_st_at(f, 4) == NULL);
	const struct ft_st_tensor *w = ft_st_find(f, "w");
	FT_CHECK(w != NULL);
	FT_CHECK_INT(w->dtype, FT_DTYPE_F32);
	FT_CHECK_INT(w->ndim, 2);
	FT_CHECK_INT(w->shape[0], 2);
	FT_CHECK_INT(w->shape[1], 3);
	FT_CHECK_INT(w->nelem, 6);
	FT_CHECK_INT(w->nbytes, 24);
	FT_CHECK(w->data == buf + 8 + strlen(hdr));
	const struct ft_st_tensor *s = ft_st_find(f, "s");
	FT_CHECK_INT(s->ndim, 0);
	FT_CHECK_INT(s->nelem, 1);
	FT_CHECK_INT(((const uint8_t *)s->data)[0], 24);
	FT_CHECK_INT(ft_st_find(f, "e")->nelem, 0);
	FT_CHECK(ft_st_find(f, "nope") == NULL);
	FT_CHECK_STR(ft_st_metadata(f, "format"), "pt");
	FT_CHECK(ft_st_metadata(f, "other") == NULL);
	FT_CHECK_INT(ft_st_metadata_count(f), 2);
	const char *v;
	FT_CHECK_STR(ft_st_metadata_at(f, 0, &v), "a");
	FT_CHECK_STR(v, "b");
	FT_CHECK(ft_st_metadata_at(f, 2, &v) == NULL);
	ft_st_close(f);
}

FT_TEST(parse_empty_and_null_metadata)
{
	struct ft_err err;
	FT_CHECK_STR(parse_msg("{}", 0, &err), "");
	FT_CHECK_STR(parse_msg("  {\"__metadata__\":null}  ", 0, &err), "");
}

FT_TEST(error_too_small)
{
	uint8_t b[4] = { 1, 0, 0, 0 };
	struct ft_st_file *f;
	struct ft_err err;
	ft_err_clear(&err);
	FT_CHECK_INT(ft_st_parse(b, 4, 4, &f, &err), FT_EFORMAT);
	FT_CHECK_STR(err.msg, "file is too small to be safetensors (4 bytes; the 8-byte header "
			      "length is missing)");
}

FT_TEST(error_header_over_cap)
{
	uint8_t b[16] = { 0 };
	uint64_t n = (uint64_t)FT_ST_MAX_HEADER + 1;
	struct ft_st_file *f;
	struct ft_err err;
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(n >> (8 * i));
	ft_err_clear(&err);
	FT_CHECK_INT(ft_st_parse(b, 16, 16, &f, &err), FT_EFORMAT);
	FT_CHECK_STR(err.msg, "header length 104857601 is over the limit of 104857600 bytes");
	/* The top byte set: a length no 64-bit sum may wrap around. */
	memset(b, 0xff, 8);
	ft_err_clear(&err);
	FT_CHECK_INT(ft_st_parse(b, 16, 16, &f, &err), FT_EFORMAT);
	FT_CHECK_STR(err.msg,
		     "header length 18446744073709551615 is over the limit of 104857600 bytes");
}

FT_TEST(error_header_past_end)
{
	uint8_t b[10] = { 0xe8, 0x03 }; /* 1000 */
	struct ft_st_file *f;
	struct ft_err err;
	ft_err_clear(&err);
	FT_CHECK_INT(ft_st_parse(b, 10, 10, &f, &err), FT_EFORMAT);
	FT_CHECK_STR(err.msg, "header length 1000 runs past the end of the file (10 bytes)");
}

FT_TEST(error_json)
{
	struct ft_err err;
	FT_CHECK_STR(
		parse_msg("{", 0, &err),
		"header is not valid JSON (at byte 1): string or '}' expected near end of file");
	FT_CHECK_INT(err.rc, FT_EFORMAT);
	FT_CHECK_STR(parse_msg("{\"a\":{},\"a\":{}}", 0, &err),
		     "header is not valid JSON (at byte 11): duplicate object key near '\"a\"'");
	FT_CHECK_STR(parse_msg("{\"a\xff\":{}}", 0, &err),
		     "header is not valid JSON (at byte 3): unable to decode byte 0xff near '\"a'");
	FT_CHECK_STR(parse_msg("{\"\\u0000\":{}}", 0, &err),
		     "header is not valid JSON (at byte 9): NUL byte in object key not supported "
		     "near '\"\\u0000\"'");
	FT_CHECK_STR(parse_msg("[]", 0, &err), "header must be a JSON object (got list)");
}

FT_TEST(error_entry_shape)
{
	struct ft_err err;
	FT_CHECK_STR(parse_msg("{\"a\":1}", 0, &err),
		     "tensor \"a\": entry must be an object (got integer)");
	FT_CHECK_STR(parse_msg("{\"a\":{\"shape\":[],\"data_offsets\":[0,4]}}", 4, &err),
		     "tensor \"a\": \"dtype\" is missing");
	FT_CHECK_STR(
		parse_msg(T1("a", "F32\",\"dtype\":1,\"y\":\"", "[]", "[0,4]"), 4, &err),
		"header is not valid JSON (at byte 27): duplicate object key near '\"dtype\"'");
	FT_CHECK_STR(
		parse_msg("{\"a\":{\"dtype\":7,\"shape\":[],\"data_offsets\":[0,4]}}", 4, &err),
		"tensor \"a\": \"dtype\" must be a string (got integer)");
	FT_CHECK_STR(parse_msg(T1("a", "U16", "[2]", "[0,4]"), 4, &err),
		     "tensor \"a\": unsupported dtype \"U16\" (supported: F32, F16, BF16, U8, I8, "
		     "I32, I64, F64, BOOL)");
	FT_CHECK_STR(parse_msg("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, &err),
		     "tensor \"a\": \"shape\" is missing");
	FT_CHECK_STR(parse_msg(T1("a", "F32", "{}", "[0,4]"), 4, &err),
		     "tensor \"a\": \"shape\" must be a list (got object)");
	FT_CHECK_STR(parse_msg(T1("a", "F32", "[1,1,1,1,1,1,1,1,1]", "[0,4]"), 4, &err),
		     "tensor \"a\": shape has 9 dimensions (at most 8 are supported)");
	FT_CHECK_STR(parse_msg(T1("a", "F32", "[2,-2]", "[0,4]"), 4, &err),
		     "tensor \"a\": shape[1] must be a non-negative integer (got -2)");
	FT_CHECK_STR(parse_msg(T1("a", "F32", "[2.0]", "[0,8]"), 8, &err),
		     "tensor \"a\": shape[0] must be a non-negative integer (got number)");
	FT_CHECK_STR(parse_msg("{\"a\":{\"dtype\":\"F32\",\"shape\":[]}}", 4, &err),
		     "tensor \"a\": \"data_offsets\" is missing");
	FT_CHECK_STR(parse_msg(T1("a", "F32", "[]", "[0,4,4]"), 4, &err),
		     "tensor \"a\": \"data_offsets\" must be a list of 2 non-negative integers");
	FT_CHECK_STR(parse_msg(T1("a", "F32", "[]", "[-1,3]"), 4, &err),
		     "tensor \"a\": \"data_offsets\" must be a list of 2 non-negative integers");
	FT_CHECK_STR(parse_msg(T1("a", "F32", "[0]", "[8,0]"), 8, &err),
		     "tensor \"a\": data_offsets [8, 0] are reversed (begin > end)");
}

FT_TEST(error_sizes)
{
	struct ft_err err;
	/* The example of the issue: 10 * 4 * 4 bytes declared as 100. */
	FT_CHECK_STR(
		parse_msg(T1("model.embed_tokens.weight", "F32", "[10,4]", "[0,100]"), 100, &err),
		"tensor \"model.embed_tokens.weight\": data_offsets [0, 100] do not match shape "
		"[10, 4] of F32 (160 bytes)");
	FT_CHECK_INT(err.rc, FT_EFORMAT);
	/* 2^32 * 2^32 overflows 64 bits; 2^62 * 8 bytes overflows the byte count. */
	FT_CHECK_STR(parse_msg(T1("a", "F32", "[4294967296,4294967296]", "[0,8]"), 8, &err),
		     "tensor \"a\": shape [4294967296, 4294967296] is too large (the element count "
		     "overflows)");
	FT_CHECK_STR(
		parse_msg(T1("a", "I64", "[4611686018427387904]", "[0,8]"), 8, &err),
		"tensor \"a\": shape [4611686018427387904] is too large (the byte size overflows)");
	FT_CHECK_STR(parse_msg(T1("a", "F32", "[4]", "[0,16]"), 8, &err),
		     "tensor \"a\": data_offsets [0, 16] run past the end of the data (8 bytes)");
}

FT_TEST(error_packing)
{
	struct ft_err err;
	FT_CHECK_STR(
		parse_msg(T1("a", "F32", "[2]", "[4,12]"), 12, &err),
		"tensor \"a\": data_offsets [4, 12] leave a gap: the first tensor must start at 0");
	FT_CHECK_STR(parse_msg("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
			       "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
			       12, &err),
		     "tensor \"b\": data_offsets [8, 12] leave a gap after tensor \"a\" (which "
		     "ends at 4)");
	FT_CHECK_STR(parse_msg("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
			       "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
			       8, &err),
		     "tensor \"b\": data_offsets [4, 8] overlap tensor \"a\" (which ends at 8)");
	FT_CHECK_STR(parse_msg(T1("a", "F32", "[2]", "[0,8]"), 9, &err),
		     "the data section is 9 bytes but the tensors cover 8 (trailing bytes after "
		     "the last tensor)");
	FT_CHECK_STR(parse_msg("{}", 1, &err), "the data section is 1 bytes but the tensors cover "
					       "0 (trailing bytes after the last tensor)");
}

FT_TEST(error_metadata)
{
	struct ft_err err;
	FT_CHECK_STR(parse_msg("{\"__metadata__\":[]}", 0, &err),
		     "\"__metadata__\" must be an object of strings (got list)");
	FT_CHECK_STR(parse_msg("{\"__metadata__\":{\"x\":1}}", 0, &err),
		     "\"__metadata__\" value for \"x\" must be a string (got integer)");
}

static const char *tmpdir(void)
{
	static char dir[256];
	const char *base = getenv("TMPDIR");
	snprintf(dir, sizeof(dir), "%s/ftst-XXXXXX", base && base[0] ? base : "/tmp");
	FT_ASSERT(mkdtemp(dir));
	return dir;
}

static void write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	FT_ASSERT(f && fwrite(p, 1, n, f) == n);
	fclose(f);
}

FT_TEST(open_names_the_file)
{
	uint8_t buf[256];
	char path[512];
	struct ft_st_file *f;
	struct ft_err err;
	const char *dir = tmpdir();
	snprintf(path, sizeof(path), "%s/model.safetensors", dir);
	size_t n = mk(buf, sizeof(buf), T1("model.embed_tokens.weight", "F32", "[10,4]", "[0,100]"),
		      100);
	write_file(path, buf, n);
	ft_err_clear(&err);
	FT_CHECK_INT(ft_st_open(path, &f, &err), FT_EFORMAT);
	char want[1024];
	snprintf(want, sizeof(want),
		 "%s: tensor \"model.embed_tokens.weight\": data_offsets [0, 100] do not match "
		 "shape [10, 4] of F32 (160 bytes)",
		 path);
	FT_CHECK_STR(err.msg, want);
	write_file(path, buf, 3);
	ft_err_clear(&err);
	FT_CHECK_INT(ft_st_open(path, &f, &err), FT_EFORMAT);
	snprintf(want, sizeof(want),
		 "%s: file is too small to be safetensors (3 bytes; the 8-byte header length is "
		 "missing)",
		 path);
	FT_CHECK_STR(err.msg, want);
	unlink(path);
	ft_err_clear(&err);
	FT_CHECK_INT(ft_st_open(path, &f, &err), FT_ENOTFOUND);
	snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", path);
	FT_CHECK_STR(err.msg, want);
	rmdir(dir);
}

FT_TEST(f16_values)
{
	/* Hand-computed: sign, 5-bit exponent (bias 15), 10-bit mantissa. */
	FT_CHECK(ft_f16_to_f32(0x3C00) == 1.0f);
	FT_CHECK(ft_f16_to_f32(0xC000) == -2.0f);
	FT_CHECK(ft_f16_to_f32(0x3555) == 0x1.554p-2f); /* 0.333251953125 */
	FT_CHECK(ft_f16_to_f32(0x7BFF) == 65504.0f); /* largest normal */
	FT_CHECK(ft_f16_to_f32(0x0400) == 0x1p-14f); /* smallest normal */
	FT_CHECK(ft_f16_to_f32(0x0001) == 0x1p-24f); /* smallest subnormal */
	FT_CHECK(ft_f16_to_f32(0x03FF) == 1023 * 0x1p-24f); /* largest subnormal */
	FT_CHECK(ft_f16_to_f32(0x8001) == -0x1p-24f);
	FT_CHECK(ft_f16_to_f32(0x7C00) == INFINITY);
	FT_CHECK(ft_f16_to_f32(0xFC00) == -INFINITY);
	float z = ft_f16_to_f32(0x8000);
	FT_CHECK(z == 0.0f && signbit(z));
	float nan = ft_f16_to_f32(0x7E01);
	uint32_t bits;
	memcpy(&bits, &nan, 4);
	FT_CHECK(isnan(nan));
	FT_CHECK_INT(bits, 0x7FC02000u); /* quiet bit and payload kept */
}

FT_TEST(bf16_values)
{
	FT_CHECK(ft_bf16_to_f32(0x3F80) == 1.0f);
	FT_CHECK(ft_bf16_to_f32(0xC000) == -2.0f);
	FT_CHECK(ft_bf16_to_f32(0x3EAB) == 0.333984375f);
	FT_CHECK(ft_bf16_to_f32(0x0001) == 0x1p-133f); /* smallest subnormal */
	FT_CHECK(ft_bf16_to_f32(0x7F80) == INFINITY);
	FT_CHECK(isnan(ft_bf16_to_f32(0x7FC0)));
}

FT_TEST(f32_to_f16_values)
{
	/* Hand-computed; ties go to the even neighbour. */
	FT_CHECK_INT(ft_f32_to_f16(1.0f), 0x3C00);
	FT_CHECK_INT(ft_f32_to_f16(-2.0f), 0xC000);
	FT_CHECK_INT(ft_f32_to_f16(65504.0f), 0x7BFF);
	FT_CHECK_INT(ft_f32_to_f16(65519.996f), 0x7BFF); /* just below the tie */
	FT_CHECK_INT(ft_f32_to_f16(65520.0f), 0x7C00); /* tie with 2^16: even is inf */
	FT_CHECK_INT(ft_f32_to_f16(1e9f), 0x7C00);
	FT_CHECK_INT(ft_f32_to_f16(-INFINITY), 0xFC00);
	FT_CHECK_INT(ft_f32_to_f16(NAN), 0x7E00);
	FT_CHECK_INT(ft_f32_to_f16(1.0f + 0x1p-11f), 0x3C00); /* tie, 0x3C00 even */
	FT_CHECK_INT(ft_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3C02); /* tie, 0x3C02 even */
	FT_CHECK_INT(ft_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3C01);
	FT_CHECK_INT(ft_f32_to_f16(0x1p-14f), 0x0400);
	FT_CHECK_INT(ft_f32_to_f16(0x1p-24f), 0x0001);
	FT_CHECK_INT(ft_f32_to_f16(0x1p-25f), 0x0000); /* tie with 0 */
	FT_CHECK_INT(ft_f32_to_f16(0x1.8p-25f), 0x0001);
	FT_CHECK_INT(ft_f32_to_f16(3 * 0x1p-25f), 0x0002); /* 1.5 ulp: tie, even 2 */
	FT_CHECK_INT(ft_f32_to_f16(-0x1p-30f), 0x8000);
	FT_CHECK_INT(ft_f32_to_f16(1023.5f * 0x1p-24f), 0x0400); /* rounds up to normal */
}

FT_TEST(f32_to_bf16_values)
{
	FT_CHECK_INT(ft_f32_to_bf16(1.0f), 0x3F80);
	FT_CHECK_INT(ft_f32_to_bf16(-2.0f), 0xC000);
	FT_CHECK_INT(ft_f32_to_bf16(1.0f + 0x1p-8f), 0x3F80); /* tie, even */
	FT_CHECK_INT(ft_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3F82); /* tie, even */
	FT_CHECK_INT(ft_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3F81);
	FT_CHECK_INT(ft_f32_to_bf16(NAN), 0x7FC0);
	FT_CHECK_INT(ft_f32_to_bf16(-INFINITY), 0xFF80);
	FT_CHECK_INT(ft_f32_to_bf16(0x1.fffffep127f), 0x7F80); /* FLT_MAX rounds to inf */
}

FT_TEST(to_f32_tensor)
{
	/* F16 [1, -2, 2^-24] and BF16 [1, -2] in one file, plus an I32. */
	const char *hdr = "{\"h\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,6]},"
			  "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[6,10]},"
			  "\"i\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[10,14]},"
			  "\"f\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[14,18]}}";
	uint8_t buf[512];
	size_t n = mk(buf, sizeof(buf), hdr, 18);
	uint8_t *d = buf + 8 + strlen(hdr);
	const uint8_t data[18] = { 0x00, 0x3C, 0x00, 0xC0, 0x01, 0x00, 0x80, 0x3F, 0x00,
				   0xC0, 7,    0,    0,	   0,	 0x00, 0x00, 0x40, 0x40 };
	memcpy(d, data, sizeof(data));
	struct ft_st_file *f;
	struct ft_err err;
	float out[3];
	ft_err_clear(&err);
	FT_CHECK_INT(ft_st_parse(buf, n, n, &f, &err), FT_OK);
	FT_CHECK_INT(ft_st_to_f32(ft_st_find(f, "h"), out, &err), FT_OK);
	FT_CHECK(out[0] == 1.0f && out[1] == -2.0f && out[2] == 0x1p-24f);
	FT_CHECK_INT(ft_st_to_f32(ft_st_find(f, "b"), out, &err), FT_OK);
	FT_CHECK(out[0] == 1.0f && out[1] == -2.0f);
	FT_CHECK_INT(ft_st_to_f32(ft_st_find(f, "f"), out, &err), FT_OK);
	FT_CHECK(out[0] == 3.0f);
	FT_CHECK_INT(ft_st_to_f32(ft_st_find(f, "i"), out, &err), FT_EINVAL);
	FT_CHECK_STR(err.msg, "tensor \"i\": cannot convert I32 to F32 (only F32, F16 and BF16)");
	ft_st_close(f);
}

static size_t slurp(const char *path, uint8_t *buf, size_t cap)
{
	FILE *f = fopen(path, "rb");
	FT_ASSERT(f);
	size_t n = fread(buf, 1, cap, f);
	fclose(f);
	return n;
}

FT_TEST(writer_matches_reference_vectors)
{
	/* safetensors/src/tensor.rs test_serialization: "attn.0", F32 [1, 2, 3]
	 * holding 0..5. */
	static const uint8_t want[] = { 64,  0,	  0,   0,  0,	0,  0,	 0,   123, 34,	97,  116,
					116, 110, 46,  48, 34,	58, 123, 34,  100, 116, 121, 112,
					101, 34,  58,  34, 70,	51, 50,	 34,  44,  34,	115, 104,
					97,  112, 101, 34, 58,	91, 49,	 44,  50,  44,	51,  93,
					44,  34,  100, 97, 116, 97, 95,	 111, 102, 102, 115, 101,
					116, 115, 34,  58, 91,	48, 44,	 50,  52,  93,	125, 125,
					0,   0,	  0,   0,  0,	0,  128, 63,  0,   0,	0,   64,
					0,   0,	  64,  64, 0,	0,  128, 64,  0,   0,	160, 64 };
	/* test_empty with metadata {"framework": "pt"}. */
	static const uint8_t want_meta[] = { 40,  0,   0,   0,	 0,   0,  0,   0,   123, 34,
					     95,  95,  109, 101, 116, 97, 100, 97,  116, 97,
					     95,  95,  34,  58,	 123, 34, 102, 114, 97,	 109,
					     101, 119, 111, 114, 107, 34, 58,  34,  112, 116,
					     34,  125, 125, 32,	 32,  32, 32,  32 };
	static const uint8_t want_empty[] = { 8,   0,	0,  0,	0,  0,	0,  0,
					      123, 125, 32, 32, 32, 32, 32, 32 };
	const float data[6] = { 0, 1, 2, 3, 4, 5 };
	const int64_t shape[3] = { 1, 2, 3 };
	char path[512];
	uint8_t got[512];
	struct ft_err err;
	const char *dir = tmpdir();
	snprintf(path, sizeof(path), "%s/t.safetensors", dir);
	ft_err_clear(&err);

	struct ft_st_writer *w = ft_st_writer_new();
	FT_CHECK_INT(ft_st_writer_add(w, "attn.0", FT_DTYPE_F32, 3, shape, data, &err), FT_OK);
	FT_CHECK_INT(ft_st_writer_write(w, path, &err), FT_OK);
	ft_st_writer_free(w);
	FT_CHECK_INT(slurp(path, got, sizeof(got)), sizeof(want));
	FT_CHECK(memcmp(got, want, sizeof(want)) == 0);

	w = ft_st_writer_new();
	FT_CHECK_INT(ft_st_writer_meta(w, "framework", "pt", &err), FT_OK);
	FT_CHECK_INT(ft_st_writer_write(w, path, &err), FT_OK);
	ft_st_writer_free(w);
	FT_CHECK_INT(slurp(path, got, sizeof(got)), sizeof(want_meta));
	FT_CHECK(memcmp(got, want_meta, sizeof(want_meta)) == 0);

	w = ft_st_writer_new();
	FT_CHECK_INT(ft_st_writer_write(w, path, &err), FT_OK);
	ft_st_writer_free(w);
	FT_CHECK_INT(slurp(path, got, sizeof(got)), sizeof(want_empty));
	FT_CHECK(memcmp(got, want_empty, sizeof(want_empty)) == 0);
	unlink(path);
	rmdir(dir);
}

FT_TEST(writer_round_trip)
{
	/* Several dtypes, a scalar, an empty tensor, a name needing escapes. */
	const int16_t h[3] = { 0x3C00, (int16_t)0xC000, 0x0001 };
	const int64_t i64[2] = { -1, 1LL << 40 };
	const uint8_t flags[3] = { 1, 0, 1 };
	const double sc = 2.5;
	const int64_t s3[1] = { 3 }, s2[1] = { 2 }, s0[2] = { 0, 5 };
	char path[512];
	struct ft_st_file *f;
	struct ft_err err;
	const char *dir = tmpdir();
	snprintf(path, sizeof(path), "%s/rt.safetensors", dir);
	ft_err_clear(&err);

	struct ft_st_writer *w = ft_st_writer_new();
	FT_CHECK_INT(ft_st_writer_add(w, "h", FT_DTYPE_F16, 1, s3, h, &err), FT_OK);
	FT_CHECK_INT(ft_st_writer_add(w, "q\"\\\n\x01/é", FT_DTYPE_I64, 1, s2, i64, &err), FT_OK);
	FT_CHECK_INT(ft_st_writer_add(w, "bool", FT_DTYPE_BOOL, 1, s3, flags, &err), FT_OK);
	FT_CHECK_INT(ft_st_writer_add(w, "scalar", FT_DTYPE_F64, 0, NULL, &sc, &err), FT_OK);
	FT_CHECK_INT(ft_st_writer_add(w, "empty", FT_DTYPE_F32, 2, s0, NULL, &err), FT_OK);
	FT_CHECK_INT(ft_st_writer_meta(w, "k", "v1", &err), FT_OK);
	FT_CHECK_INT(ft_st_writer_meta(w, "k", "v2", &err), FT_OK);
	/* Errors: a duplicate, a reserved name, a negative dimension. */
	FT_CHECK_INT(ft_st_writer_add(w, "h", FT_DTYPE_F16, 1, s3, h, &err), FT_EINVAL);
	FT_CHECK_STR(err.msg, "tensor \"h\" was added twice");
	ft_err_clear(&err);
	FT_CHECK_INT(ft_st_writer_add(w, "__metadata__", FT_DTYPE_F16, 1, s3, h, &err), FT_EINVAL);
	FT_CHECK_STR(err.msg, "tensor name \"__metadata__\" is not allowed (must be non-empty "
			      "UTF-8, not \"__metadata__\")");
	ft_err_clear(&err);
	const int64_t neg[1] = { -1 };
	FT_CHECK_INT(ft_st_writer_add(w, "n", FT_DTYPE_F16, 1, neg, h, &err), FT_EINVAL);
	FT_CHECK_STR(err.msg, "tensor \"n\": bad shape (dimension 0 is -1)");
	ft_err_clear(&err);
	FT_CHECK_INT(ft_st_writer_write(w, path, &err), FT_OK);
	ft_st_writer_free(w);

	FT_CHECK_INT(ft_st_open(path, &f, &err), FT_OK);
	FT_CHECK_INT(ft_st_count(f), 5);
	/* The package's order: dtype rank descending (I64 > F64 > F32 > F16 >
	 * BOOL), then name. */
	FT_CHECK_STR(ft_st_at(f, 0)->name, "q\"\\\n\x01/é");
	FT_CHECK_STR(ft_st_at(f, 1)->name, "scalar");
	FT_CHECK_STR(ft_st_at(f, 2)->name, "empty");
	FT_CHECK_STR(ft_st_at(f, 3)->name, "h");
	FT_CHECK_STR(ft_st_at(f, 4)->name, "bool");
	FT_CHECK(memcmp(ft_st_at(f, 0)->data, i64, sizeof(i64)) == 0);
	FT_CHECK(memcmp(ft_st_at(f, 1)->data, &sc, sizeof(sc)) == 0);
	FT_CHECK_INT(ft_st_at(f, 2)->ndim, 2);
	FT_CHECK_INT(ft_st_at(f, 2)->shape[1], 5);
	FT_CHECK(memcmp(ft_st_at(f, 3)->data, h, sizeof(h)) == 0);
	FT_CHECK(memcmp(ft_st_at(f, 4)->data, flags, sizeof(flags)) == 0);
	FT_CHECK_STR(ft_st_metadata(f, "k"), "v2");
	ft_st_close(f);
	/* The header is padded to a multiple of 8 bytes, as the package does. */
	uint8_t head[8];
	FT_CHECK_INT(slurp(path, head, 8), 8);
	FT_CHECK_INT(head[0] % 8, 0);
	unlink(path);
	rmdir(dir);
}

/* A two-shard folder written by our writer plus a hand-written index. */
static void make_sharded(const char *dir, const char *index)
{
	char path[512];
	const float a[2] = { 1, 2 }, b[1] = { 3 };
	const int64_t s2[1] = { 2 }, s1[1] = { 1 };
	struct ft_err err;
	ft_err_clear(&err);
	struct ft_st_writer *w = ft_st_writer_new();
	FT_ASSERT(!ft_st_writer_add(w, "a", FT_DTYPE_F32, 1, s2, a, &err));
	snprintf(path, sizeof(path), "%s/m-1.safetensors", dir);
	FT_ASSERT(!ft_st_writer_write(w, path, &err));
	ft_st_writer_free(w);
	w = ft_st_writer_new();
	FT_ASSERT(!ft_st_writer_add(w, "b", FT_DTYPE_F32, 1, s1, b, &err));
	snprintf(path, sizeof(path), "%s/m-2.safetensors", dir);
	FT_ASSERT(!ft_st_writer_write(w, path, &err));
	ft_st_writer_free(w);
	snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
	write_file(path, index, strlen(index));
}

static void clean_sharded(const char *dir)
{
	char path[512];
	const char *names[] = { "m-1.safetensors", "m-2.safetensors",
				"model.safetensors.index.json" };
	for (size_t i = 0; i < FT_ARRAY_LEN(names); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

FT_TEST(sharded_set)
{
	struct ft_st_set *s;
	struct ft_err err;
	const char *dir = tmpdir();
	make_sharded(dir, "{\"metadata\":{\"total_size\":12},"
			  "\"weight_map\":{\"b\":\"m-2.safetensors\",\"a\":\"m-1.safetensors\"}}");
	ft_err_clear(&err);
	FT_CHECK_INT(ft_st_set_open(dir, &s, &err), FT_OK);
	FT_CHECK_INT(ft_st_set_count(s), 2);
	FT_CHECK_STR(ft_st_set_at(s, 0)->name, "a");
	FT_CHECK_STR(ft_st_set_at(s, 1)->name, "b");
	FT_CHECK(ft_st_set_at(s, 2) == NULL);
	float v;
	memcpy(&v, ft_st_set_find(s, "b")->data, 4);
	FT_CHECK(v == 3.0f);
	FT_CHECK(ft_st_set_find(s, "c") == NULL);
	ft_st_set_close(s);
	clean_sharded(dir);
}

FT_TEST(sharded_errors)
{
	struct ft_st_set *s;
	struct ft_err err;
	char want[1024];
	const char *dir = tmpdir();

	make_sharded(dir, "{\"weight_map\":{\"a\":\"m-1.safetensors\",\"c\":\"m-3.safetensors\"}}");
	ft_err_clear(&err);
	FT_CHECK_INT(ft_st_set_open(dir, &s, &err), FT_ENOTFOUND);
	snprintf(want, sizeof(want),
		 "%s/model.safetensors.index.json: shard \"m-3.safetensors\" is missing (the "
		 "weight_map names it for tensor \"c\")",
		 dir);
	FT_CHECK_STR(err.msg, want);
	clean_sharded(dir);

	dir = tmpdir();
	make_sharded(dir, "{\"weight_map\":{\"a\":\"m-1.safetensors\",\"b\":\"m-1.safetensors\"}}");
	ft_err_clear(&err);
	FT_CHECK_INT(ft_st_set_open(dir, &s, &err), FT_EFORMAT);
	snprintf(want, sizeof(want),
		 "%s/model.safetensors.index.json: tensor \"b\" is mapped to shard "
		 "\"m-1.safetensors\", which does not contain it",
		 dir);
	FT_CHECK_STR(err.msg, want);
	clean_sharded(dir);

	dir = tmpdir();
	make_sharded(dir, "{\"weight_map\":{\"a\":\"../m-1.safetensors\"}}");
	ft_err_clear(&err);
	FT_CHECK_INT(ft_st_set_open(dir, &s, &err), FT_EFORMAT);
	snprintf(want, sizeof(want),
		 "%s/model.safetensors.index.json: \"weight_map\" entry for \"a\" must be a file "
		 "name in the model folder",
		 dir);
	FT_CHECK_STR(err.msg, want);
	clean_sharded(dir);

	dir = tmpdir();
	make_sharded(dir, "{\"weight_map\":[]}");
	ft_err_clear(&err);
	FT_CHECK_INT(ft_st_set_open(dir, &s, &err), FT_EFORMAT);
	snprintf(want, sizeof(want),
		 "%s/model.safetensors.index.json: \"weight_map\" must be an object (got list)",
		 dir);
	FT_CHECK_STR(err.msg, want);
	clean_sharded(dir);

	dir = tmpdir();
	ft_err_clear(&err);
	FT_CHECK_INT(ft_st_set_open(dir, &s, &err), FT_ENOTFOUND);
	snprintf(want, sizeof(want),
		 "%s: no model.safetensors or model.safetensors.index.json in the model folder",
		 dir);
	FT_CHECK_STR(err.msg, want);
	rmdir(dir);
}

FT_TEST_MAIN()
