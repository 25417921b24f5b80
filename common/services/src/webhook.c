/*
 * webhook.c - Standard Webhooks signatures and the SSRF guard (ft/webhook.h).
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "ft/buf.h"
#include "ft/crypto.h"
#include "ft/id.h"
#include "ft/pg.h"
#include "ft/webhook.h"

void ft_webhook_secret_new(char out[64])
{
	unsigned char key[24];
	ft_random_bytes(key, sizeof(key));
	memcpy(out, "whsec_", 6);
	ft_base64_encode(key, sizeof(key), out + 6);
}

enum ft_rc ft_webhook_sign(const char *secret, const char *msg_id, long long timestamp,
			   const char *body, size_t body_len, char out[64], struct ft_err *err)
{
	unsigned char key[256], mac[32];
	char ts[32], b64[48];
	long klen;
	if (strncmp(secret, "whsec_", 6) != 0)
		return ft_failf(err, FT_EINVAL, "invalid_secret",
				"webhook secret must start with \"whsec_\"");
	klen = ft_base64_decode(secret + 6, strlen(secret + 6), key, sizeof(key));
	if (klen <= 0)
		return ft_failf(err, FT_EINVAL, "invalid_secret",
				"webhook secret is not valid base64");
	snprintf(ts, sizeof(ts), "%lld", timestamp);
	/* HMAC over id "." ts "." body. */
	struct ft_buf content = FT_BUF_INIT((size_t)1 << 31);
	if (ft_buf_addf(&content, "%s.%s.", msg_id, ts) || ft_buf_add(&content, body, body_len)) {
		ft_buf_release(&content);
		return ft_failf(err, FT_ENOMEM, NULL, "webhook body too large to sign");
	}
	ft_hmac_sha256(key, (size_t)klen, content.ptr, content.len, mac);
	ft_buf_release(&content);
	ft_base64_encode(mac, sizeof(mac), b64);
	snprintf(out, 64, "v1,%s", b64);
	return FT_OK;
}

struct range4 {
	uint32_t net;
	int bits;
	const char *why;
};

/* IANA special-purpose IPv4 ranges (RFC 6890 and friends). */
static const struct range4 blocked4[] = {
	{ 0x00000000, 8, "this network (0.0.0.0/8)" },
	{ 0x0A000000, 8, "private (10.0.0.0/8)" },
	{ 0x64400000, 10, "carrier-grade NAT (100.64.0.0/10)" },
	{ 0x7F000000, 8, "loopback (127.0.0.0/8)" },
	{ 0xA9FE0000, 16, "link-local / cloud metadata (169.254.0.0/16)" },
	{ 0xAC100000, 12, "private (172.16.0.0/12)" },
	{ 0xC0000000, 24, "IETF protocol assignments (192.0.0.0/24)" },
	{ 0xC0000200, 24, "documentation (192.0.2.0/24)" },
	{ 0xC0586300, 24, "6to4 relay anycast (192.88.99.0/24)" },
	{ 0xC0A80000, 16, "private (192.168.0.0/16)" },
	{ 0xC6120000, 15, "benchmarking (198.18.0.0/15)" },
	{ 0xC6336400, 24, "documentation (198.51.100.0/24)" },
	{ 0xCB007100, 24, "documentation (203.0.113.0/24)" },
	{ 0xE0000000, 4, "multicast (224.0.0.0/4)" },
	{ 0xF0000000, 4, "reserved (240.0.0.0/4)" },
};

static const char *blocked_v4(uint32_t a)
{
	for (size_t i = 0; i < FT_ARRAY_LEN(blocked4); i++) {
		uint32_t mask = blocked4[i].bits ? ~0u << (32 - blocked4[i].bits) : 0;
		if ((a & mask) == blocked4[i].net)
			return blocked4[i].why;
	}
	return NULL;
}

const char *ft_ssrf_blocked_reason(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
		return blocked_v4(ntohl(s4->sin_addr.s_addr));
	}
	if (sa->sa_family != AF_INET6)
		return "not an internet address";
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
	const uint8_t *b = s6->sin6_addr.s6_addr;
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	static const uint8_t nat64[12] = { 0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0 };
	static const uint8_t zero[16] = { 0 };
	if (memcmp(b, mapped, 12) == 0 || memcmp(b, nat64, 12) == 0) {
		uint32_t v4 = (uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 |
			      b[15];
		const char *why = blocked_v4(v4);
		return why ? why : NULL;
	}
	if (memcmp(b, zero, 15) == 0 && (b[15] == 0 || b[15] == 1))
		return b[15] ? "loopback (::1)" : "unspecified (::)";
	if (memcmp(b, zero, 12) == 0)
		return "IPv4-compatible (::/96, deprecated)";
	if ((b[0] & 0xfe) == 0xfc)
		return "unique local (fc00::/7)";
	if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
		return "link-local (fe80::/10)";
	if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)
		return "site-local (fec0::/10)";
	if (b[0] == 0xff)
		return "multicast (ff00::/8)";
	if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8)
		return "documentation (2001:db8::/32)";
	if (b[0] == 0x20 && b[1] == 0x02)
		return "6to4 (2002::/16)";
	if (b[0] == 0x01 && b[1] == 0 && memcmp(b + 2, zero, 6) == 0)
		return "discard-only (100::/64)";
	return NULL;
}

static bool in_cidr(const struct sockaddr *sa, const char *cidr)
{
	char addr[64];
	const char *slash = strchr(cidr, '/');
	size_t n = slash ? (size_t)(slash - cidr) : strlen(cidr);
	if (n == 0 || n >= sizeof(addr))
		return false;
	memcpy(addr, cidr, n);
	addr[n] = '\0';
	int bits = slash ? atoi(slash + 1) : -1;
	uint8_t net[16], a[16];
	int len;
	if (sa->sa_family == AF_INET && inet_pton(AF_INET, addr, net) == 1) {
		memcpy(a, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
		len = 4;
	} else if (sa->sa_family == AF_INET6 && inet_pton(AF_INET6, addr, net) == 1) {
		memcpy(a, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
		len = 16;
	} else {
		return false;
	}
	if (bits < 0)
		bits = len * 8;
	if (bits > len * 8)
		return false;
	for (int i = 0; i < bits; i++) {
		int byte = i / 8, bit = 7 - i % 8;
		if (((a[byte] >> bit) & 1) != ((net[byte] >> bit) & 1))
			return false;
	}
	return true;
}

bool ft_ssrf_allowed(const struct sockaddr *sa, const char *allow_cidrs)
{
	char item[128];
	const char *p = allow_cidrs;
	while (p && *p) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		while (n && (*p == ' ')) {
			p++;
			n--;
		}
		if (n && n < sizeof(item)) {
			memcpy(item, p, n);
			item[n] = '\0';
			if (in_cidr(sa, item))
				return true;
		}
		p = comma ? comma + 1 : NULL;
	}
	return false;
}

enum ft_rc ft_webhook_check_url(const char *url, bool allow_http, const char *allow_cidrs,
				char pin[320], struct ft_err *err)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *user = NULL, *port = NULL;
	struct addrinfo hints = { 0 }, *res = NULL;
	enum ft_rc rc = FT_OK;

	if (!u)
		return ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
		rc = ft_failf(err, FT_EINVAL, "invalid_url",
			      "webhook url \"%s\" is not a valid URL", url);
		goto out;
	}
	curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
	curl_url_get(u, CURLUPART_HOST, &host, 0);
	curl_url_get(u, CURLUPART_USER, &user, 0);
	curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
	if (!scheme ||
	    (strcmp(scheme, "https") != 0 && !(allow_http && strcmp(scheme, "http") == 0))) {
		rc = ft_failf(err, FT_EINVAL, "invalid_url",
			      "webhook url must use https%s (got \"%s\")",
			      allow_http ? " or http" : "", scheme ? scheme : "");
		goto out;
	}
	if (user) {
		rc = ft_failf(err, FT_EINVAL, "invalid_url",
			      "webhook url must not contain credentials");
		goto out;
	}
	if (!host || !*host || !port) {
		rc = ft_failf(err, FT_EINVAL, "invalid_url", "webhook url has no host");
		goto out;
	}
	/* curl keeps the brackets of an IPv6 literal. */
	char name[256];
	size_t hl = strlen(host);
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']')
		snprintf(name, sizeof(name), "%.*s", (int)(hl - 2), host + 1);
	else
		snprintf(name, sizeof(name), "%s", host);
	hints.ai_socktype = SOCK_STREAM;
	int gr = getaddrinfo(name, port, &hints, &res);
	if (gr != 0) {
		rc = ft_failf(err, FT_EINVAL, "unresolvable_host",
			      "webhook host \"%s\" does not resolve: %s", name, gai_strerror(gr));
		goto out;
	}
	char chosen[INET6_ADDRSTRLEN] = "";
	for (struct addrinfo *a = res; a; a = a->ai_next) {
		char txt[INET6_ADDRSTRLEN] = "";
		const void *ap =
			a->ai_family == AF_INET
				? (const void *)&((struct sockaddr_in *)(void *)a->ai_addr)
					  ->sin_addr
				: (const void *)&((struct sockaddr_in6 *)(void *)a->ai_addr)
					  ->sin6_addr;
		inet_ntop(a->ai_family, ap, txt, sizeof(txt));
		const char *why = ft_ssrf_blocked_reason(a->ai_addr);
		if (why && !ft_ssrf_allowed(a->ai_addr, allow_cidrs)) {
			rc = ft_failf(err, FT_EPERM, "blocked_address",
				      "webhook host \"%s\" resolves to %s, which is %s", name, txt,
				      why);
			ft_err_hintf(err, "an admin can allow it with webhook_allow_cidrs");
			goto out;
		}
		if (!chosen[0])
			ft_strlcpy(chosen, txt, sizeof(chosen));
	}
	if (!chosen[0]) {
		rc = ft_failf(err, FT_EINVAL, "unresolvable_host",
			      "webhook host \"%s\" has no address", name);
		goto out;
	}
	if (strchr(chosen, ':'))
		snprintf(pin, 320, "%s:%s:[%s]", host, port, chosen);
	else
		snprintf(pin, 320, "%s:%s:%s", host, port, chosen);
out:
	if (res)
		freeaddrinfo(res);
	curl_free(scheme);
	curl_free(host);
	curl_free(user);
	curl_free(port);
	curl_url_cleanup(u);
	return rc;
}

enum ft_rc ft_webhook_queue(PGconn *db, const char *team, const char *type, json_t *payload,
			    struct ft_err *err)
{
	const char *p[] = { team, type };
	PGresult *r = ft_pg_exec(
		db, err,
		"SELECT id FROM webhooks WHERE team_id = $1 AND enabled AND $2 = ANY(events)", 2,
		p);
	if (!r)
		return err->rc;
	char *body = json_dumps(payload, JSON_COMPACT);
	enum ft_rc rc = body ? FT_OK : ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	for (int i = 0; i < PQntuples(r) && !rc; i++) {
		char id[FT_ID_MAX];
		ft_id_new(FT_ID_DELIVERY, id);
		const char *q[] = { id, PQgetvalue(r, i, 0), type, body };
		rc = ft_pg_command(
			db, err,
			"INSERT INTO webhook_deliveries (id, webhook_id, event_type, payload)"
			" VALUES ($1, $2, $3, $4::jsonb)",
			4, q);
	}
	free(body);
	PQclear(r);
	return rc;
}
