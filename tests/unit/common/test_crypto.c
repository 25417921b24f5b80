/*
 * test_crypto.c - SHA-256 against FIPS 180-2 examples, HMAC-SHA256 against
 * all seven RFC 4231 test cases, base64 against RFC 4648 section 10, the
 * secret box against the GCM specification's AES-256 test cases 14 and 16.
 */
#include "ft/crypto.h"
#include "ftest.h"

static void hex_of(const unsigned char *d, size_t n, char *out)
{
	ft_hex_encode(d, n, out);
}

FT_TEST(sha256_fips_vectors)
{
	char hex[65];
	ft_sha256_hex("abc", 3, hex);
	FT_CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	ft_sha256_hex("", 0, hex);
	FT_CHECK_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	ft_sha256_hex(m, strlen(m), hex);
	FT_CHECK_STR(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

FT_TEST(sha256_streaming_million_a)
{
	/* One million 'a' fed in uneven chunks must equal the FIPS value. */
	struct ft_sha256 h;
	unsigned char d[32];
	char hex[65], chunk[997];
	memset(chunk, 'a', sizeof(chunk));
	FT_CHECK(ft_sha256_init(&h) == FT_OK);
	size_t left = 1000000;
	while (left) {
		size_t n = left < sizeof(chunk) ? left : sizeof(chunk);
		ft_sha256_update(&h, chunk, n);
		left -= n;
	}
	ft_sha256_final(&h, d);
	hex_of(d, 32, hex);
	FT_CHECK_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

struct hmac_case {
	unsigned char key[131];
	size_t keylen;
	const char *data;
	size_t datalen;
	const char *want; /* hex, maybe truncated (case 5 checks 128 bits) */
};

FT_TEST(hmac_sha256_rfc4231)
{
	static struct hmac_case c[7];
	unsigned char dd[50], cd[50];
	memset(dd, 0xdd, sizeof(dd));
	memset(cd, 0xcd, sizeof(cd));
	memset(c[0].key, 0x0b, 20), c[0].keylen = 20, c[0].data = "Hi There", c[0].datalen = 8;
	c[0].want = "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7";
	memcpy(c[1].key, "Jefe", 4), c[1].keylen = 4;
	c[1].data = "what do ya want for nothing?", c[1].datalen = 28;
	c[1].want = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
	memset(c[2].key, 0xaa, 20), c[2].keylen = 20, c[2].data = (const char *)dd,
				    c[2].datalen = 50;
	c[2].want = "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe";
	for (int i = 0; i < 25; i++)
		c[3].key[i] = (unsigned char)(i + 1);
	c[3].keylen = 25, c[3].data = (const char *)cd, c[3].datalen = 50;
	c[3].want = "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b";
	memset(c[4].key, 0x0c, 20), c[4].keylen = 20, c[4].data = "Test With Truncation";
	c[4].datalen = 20, c[4].want = "a3b6167473100ee06e0c796c2955552b";
	memset(c[5].key, 0xaa, 131), c[5].keylen = 131;
	c[5].data = "Test Using Larger Than Block-Size Key - Hash Key First";
	c[5].datalen = strlen(c[5].data);
	c[5].want = "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54";
	memset(c[6].key, 0xaa, 131), c[6].keylen = 131;
	c[6].data = "This is a test using a larger than block-size key and a larger than "
		    "block-size data. The key needs to be hashed before being used by the HMAC "
		    "algorithm.";
	c[6].datalen = strlen(c[6].data);
	c[6].want = "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2";

	for (int i = 0; i < 7; i++) {
		unsigned char mac[32];
		char hex[65];
		ft_hmac_sha256(c[i].key, c[i].keylen, c[i].data, c[i].datalen, mac);
		hex_of(mac, 32, hex);
		hex[strlen(c[i].want)] = '\0';
		if (strcmp(hex, c[i].want) != 0)
			fprintf(stderr, "RFC 4231 test case %d\n", i + 1);
		FT_CHECK_STR(hex, c[i].want);
	}
}

FT_TEST(base64_rfc4648)
{
	static const char *const in[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const out[] = { "",	       "Zg==",	   "Zm8=",    "Zm9v",
					   "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
	for (size_t i = 0; i < FT_ARRAY_LEN(in); i++) {
		char enc[16];
		unsigned char dec[16];
		ft_base64_encode(in[i], strlen(in[i]), enc);
		FT_CHECK_STR(enc, out[i]);
		long n = ft_base64_decode(enc, strlen(enc), dec, sizeof(dec));
		FT_CHECK_INT(n, (long)strlen(in[i]));
		FT_CHECK(memcmp(dec, in[i], (size_t)n) == 0);
	}
	unsigned char dec[16];
	FT_CHECK_INT(ft_base64_decode("Zm9", 3, dec, sizeof(dec)), -1); /* not a multiple of 4 */
	FT_CHECK_INT(ft_base64_decode("Zm9*", 4, dec, sizeof(dec)), -1); /* bad character */
	FT_CHECK_INT(ft_base64_decode("Z===", 4, dec, sizeof(dec)), -1); /* padding too early */
	FT_CHECK_INT(ft_base64_decode("Zm9vYmFy", 8, dec, 5), -1); /* output too small */
}

FT_TEST(ct_equal_and_random)
{
	unsigned char a[32], b[32];
	ft_random_bytes(a, sizeof(a));
	memcpy(b, a, sizeof(a));
	FT_CHECK(ft_ct_equal(a, b, sizeof(a)));
	b[31] ^= 1;
	FT_CHECK(!ft_ct_equal(a, b, sizeof(a)));
	/* Two 32-byte draws colliding would mean a broken RNG. */
	ft_random_bytes(b, sizeof(b));
	FT_CHECK(!ft_ct_equal(a, b, sizeof(a)));
}

/* ---- secret box ---- */

static void unhex(const char *h, unsigned char *out)
{
	for (size_t i = 0; h[2 * i]; i++) {
		unsigned v;
		sscanf(h + 2 * i, "%2x", &v);
		out[i] = (unsigned char)v;
	}
}

/* "fts1." + base64(nonce | ciphertext | tag) of a known vector. */
static void boxed(const char *iv, const char *ct, const char *tag, char *out)
{
	unsigned char raw[256];
	size_t n = 0;
	unhex(iv, raw);
	n += strlen(iv) / 2;
	unhex(ct, raw + n);
	n += strlen(ct) / 2;
	unhex(tag, raw + n);
	n += strlen(tag) / 2;
	memcpy(out, "fts1.", 5);
	ft_base64_encode(raw, n, out + 5);
}

FT_TEST(secretbox_opens_the_gcm_spec_vectors)
{
	/* McGrew & Viega, "The Galois/Counter Mode of Operation", test case 16
	 * (AES-256, 96-bit IV, 20 bytes of associated data) */
	unsigned char key[32], want[60];
	char sealed[512], *plain;
	size_t n;
	struct ft_err e;
	ft_err_clear(&e);
	unhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", key);
	unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532f"
	      "cf0e2449a6b525b16aedf5aa0de657ba637b39",
	      want);
	boxed("cafebabefacedbaddecaf888",
	      "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7"
	      "b08b1056828838c5f61e6393ba7a0abcc9f662",
	      "76fc6ece0f4e1768cddf8853bb2d551b", sealed);
	unsigned char aad[21] = { 0 };
	unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2", aad);
	FT_CHECK(ft_secretbox_open(key, (const char *)aad, sealed, &plain, &n, &e) == FT_OK);
	FT_CHECK(n == 60 && memcmp(plain, want, 60) == 0);
	ft_secretbox_free(plain);
	/* test case 14: the zero key and nonce, 16 zero bytes, no associated data */
	memset(key, 0, sizeof key);
	boxed("000000000000000000000000", "cea7403d4d606b6e074ec5d3baf39d18",
	      "d0d1c8a799996bf0265b98b5d48ab919", sealed);
	FT_CHECK(ft_secretbox_open(key, "", sealed, &plain, &n, &e) == FT_OK);
	unsigned char zeros[16] = { 0 };
	FT_CHECK(n == 16 && memcmp(plain, zeros, 16) == 0);
	free(plain); /* holds NULs: ft_secretbox_free wipes up to the first */
}

FT_TEST(secretbox_round_trip_and_refusals)
{
	unsigned char key[32], other[32];
	struct ft_err e;
	char *sealed, *again, *plain;
	size_t n;
	ft_err_clear(&e);
	FT_CHECK(ft_secretbox_key_parse(
			 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", key,
			 &e) == FT_OK);
	FT_CHECK(key[0] == 0 && key[31] == 0x1f);
	memcpy(other, key, 32);
	other[5] ^= 1;
	const char *secret = "vllm-token-123";
	FT_CHECK(ft_secretbox_seal(key, "ep-AAAAAAAAAAAAAAAAAAAAAAAA", secret, strlen(secret),
				   &sealed, &e) == FT_OK);
	FT_CHECK(strncmp(sealed, "fts1.", 5) == 0 && !strstr(sealed, secret));
	/* 12 + 14 + 16 bytes in base64 */
	FT_CHECK(strlen(sealed) == 5 + 4 * ((12 + 14 + 16 + 2) / 3));
	FT_CHECK(ft_secretbox_seal(key, "ep-AAAAAAAAAAAAAAAAAAAAAAAA", secret, strlen(secret),
				   &again, &e) == FT_OK);
	FT_CHECK(strcmp(sealed, again) != 0); /* a fresh nonce each time */
	FT_CHECK(ft_secretbox_open(key, "ep-AAAAAAAAAAAAAAAAAAAAAAAA", sealed, &plain, &n, &e) ==
		 FT_OK);
	FT_CHECK_STR(plain, secret);
	FT_CHECK(n == strlen(secret));
	ft_secretbox_free(plain);
	/* another key, another row, a changed byte, garbage: refused, nothing out */
	FT_CHECK(ft_secretbox_open(other, "ep-AAAAAAAAAAAAAAAAAAAAAAAA", sealed, &plain, &n, &e) ==
		 FT_EFORMAT);
	FT_CHECK(plain == NULL && n == 0);
	FT_CHECK_STR(e.code, "secret_unreadable");
	ft_err_clear(&e);
	FT_CHECK(ft_secretbox_open(key, "ep-BBBBBBBBBBBBBBBBBBBBBBBB", sealed, &plain, &n, &e) ==
		 FT_EFORMAT);
	ft_err_clear(&e);
	sealed[10] = sealed[10] == 'A' ? 'B' : 'A';
	FT_CHECK(ft_secretbox_open(key, "ep-AAAAAAAAAAAAAAAAAAAAAAAA", sealed, &plain, &n, &e) ==
		 FT_EFORMAT);
	ft_err_clear(&e);
	FT_CHECK(ft_secretbox_open(key, "x", "fts1.AAAA", &plain, &n, &e) == FT_EFORMAT);
	ft_err_clear(&e);
	FT_CHECK(ft_secretbox_open(key, "x", "plain-token", &plain, &n, &e) == FT_EFORMAT);
	ft_err_clear(&e);
	FT_CHECK(ft_secretbox_key_parse("abc", key, &e) == FT_EINVAL);
	ft_err_clear(&e);
	FT_CHECK(ft_secretbox_key_parse(
			 "zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", key,
			 &e) == FT_EINVAL);
	free(sealed);
	free(again);
}

FT_TEST_MAIN()
