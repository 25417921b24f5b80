/*
 * test_webhook.c - Standard Webhooks signatures against the published
 * example (Svix / standardwebhooks docs), and the SSRF guard on every
 * special range and on tricky spellings of loopback.
 */
#include <arpa/inet.h>

#include "ft/webhook.h"
#include "ftest.h"

FT_TEST(webhook_signature_matches_published_example)
{
	char sig[64];
	struct ft_err e;
	ft_err_clear(&e);
	const char *body = "{\"test\": 2432232314}";
	FT_CHECK(ft_webhook_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
				 "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body),
				 sig, &e) == FT_OK);
	FT_CHECK_STR(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	FT_CHECK(ft_webhook_sign("nope", "id", 1, "", 0, sig, &e) == FT_EINVAL);
	FT_CHECK_STR(e.msg, "webhook secret must start with \"whsec_\"");
	char secret[64];
	ft_webhook_secret_new(secret);
	FT_CHECK(strncmp(secret, "whsec_", 6) == 0 && strlen(secret) == 6 + 32);
}

static const char *why(const char *addr)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, addr, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		ss.ss_family = AF_INET;
	} else {
		FT_ASSERT(inet_pton(AF_INET6, addr, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1);
		ss.ss_family = AF_INET6;
	}
	return ft_ssrf_blocked_reason((struct sockaddr *)&ss);
}

FT_TEST(ssrf_classifies_special_ranges)
{
	static const char *const blocked[] = {
		"127.0.0.1",
		"127.255.255.254",
		"10.1.2.3",
		"172.16.0.1",
		"172.31.255.255",
		"192.168.1.1",
		"169.254.169.254",
		"100.64.0.1",
		"0.0.0.0",
		"224.0.0.1",
		"240.0.0.1",
		"255.255.255.255",
		"192.0.2.5",
		"198.18.0.1",
		"::1",
		"::",
		"::ffff:127.0.0.1",
		"::ffff:10.0.0.1",
		"64:ff9b::7f00:1",
		"fe80::1",
		"fc00::1",
		"fd12:3456::1",
		"ff02::1",
		"2001:db8::1",
		"::127.0.0.1",
	};
	static const char *const public_[] = {
		"8.8.8.8",	 "1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:4700:4700::1111",
		"::ffff:8.8.8.8"
	};
	for (size_t i = 0; i < FT_ARRAY_LEN(blocked); i++) {
		if (!why(blocked[i]))
			fprintf(stderr, "%s should be blocked\n", blocked[i]);
		FT_CHECK(why(blocked[i]) != NULL);
	}
	for (size_t i = 0; i < FT_ARRAY_LEN(public_); i++) {
		if (why(public_[i]))
			fprintf(stderr, "%s should be allowed\n", public_[i]);
		FT_CHECK(why(public_[i]) == NULL);
	}
	FT_CHECK_STR(why("169.254.169.254"), "link-local / cloud metadata (169.254.0.0/16)");
	FT_CHECK_STR(why("::ffff:127.0.0.1"), "loopback (127.0.0.0/8)");
}

FT_TEST(ssrf_refuses_loopback_in_every_spelling)
{
	static const char *const urls[] = {
		"http://127.0.0.1/hook",
		"http://2130706433/hook",
		"http://0x7f000001/hook",
		"http://017700000001/hook",
		"http://127.1/hook",
		"http://[::1]/hook",
		"http://[::ffff:127.0.0.1]/hook",
		"http://localhost:8080/x",
		"http://0.0.0.0/",
		"http://169.254.169.254/latest/meta-data/",
	};
	for (size_t i = 0; i < FT_ARRAY_LEN(urls); i++) {
		char pin[320];
		struct ft_err e;
		ft_err_clear(&e);
		enum ft_rc rc = ft_webhook_check_url(urls[i], true, "", pin, &e);
		if (rc != FT_EPERM)
			fprintf(stderr, "%s: rc %d (%s)\n", urls[i], rc, e.msg);
		FT_CHECK(rc == FT_EPERM);
		FT_CHECK_STR(e.code, "blocked_address");
	}
}

FT_TEST(ssrf_allow_list_scheme_and_credentials)
{
	char pin[320];
	struct ft_err e;
	ft_err_clear(&e);
	FT_CHECK(ft_webhook_check_url("http://127.0.0.1:9999/h", true, "10.0.0.0/8, 127.0.0.1/32",
				      pin, &e) == FT_OK);
	FT_CHECK_STR(pin, "127.0.0.1:9999:127.0.0.1");
	ft_err_clear(&e);
	FT_CHECK(ft_webhook_check_url("http://127.0.0.2:9999/h", true, "127.0.0.1/32", pin, &e) ==
		 FT_EPERM);
	ft_err_clear(&e);
	FT_CHECK(ft_webhook_check_url("http://127.0.0.1/h", false, "127.0.0.1/32", pin, &e) ==
		 FT_EINVAL);
	FT_CHECK_STR(e.msg, "webhook url must use https (got \"http\")");
	ft_err_clear(&e);
	FT_CHECK(ft_webhook_check_url("https://user:pw@127.0.0.1/h", false, "127.0.0.1/32", pin,
				      &e) == FT_EINVAL);
	FT_CHECK_STR(e.msg, "webhook url must not contain credentials");
	ft_err_clear(&e);
	FT_CHECK(ft_webhook_check_url("ftp://127.0.0.1/h", true, "", pin, &e) == FT_EINVAL);
	ft_err_clear(&e);
	FT_CHECK(ft_webhook_check_url("not a url", true, "", pin, &e) == FT_EINVAL);
	ft_err_clear(&e);
	FT_CHECK(ft_webhook_check_url("https://[::1]:8443/h", false, "::1/128", pin, &e) == FT_OK);
	FT_CHECK_STR(pin, "[::1]:8443:[::1]");
}

FT_TEST_MAIN()
