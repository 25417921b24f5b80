/*
 * test_crypto.c - SHA-256 against FIPS 180-2 examples, HMAC-SHA256 against
 * all seven RFC 4231 test cases, base64 against RFC 4648 section 10.
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

FT_TEST_MAIN()
