/*
 * ft/webhook.h - Standard Webhooks signing and the SSRF guard.
 *
 * Signing (https://www.standardwebhooks.com): a secret is "whsec_" + base64
 * of the key bytes; the signed content is "<webhook-id>.<webhook-timestamp>.<body>";
 * the signature is "v1," + base64(HMAC-SHA256(key, content)). Several
 * signatures (secret rotation) are separated by spaces in one
 * webhook-signature header.
 *
 * SSRF guard: a webhook URL is resolved once, every resolved address is
 * classified, and the connection is pinned to a checked address (so a DNS
 * answer cannot change between the check and the connect). Addresses in
 * special ranges - loopback, private, link-local (incl. the cloud metadata
 * 169.254.169.254), carrier-grade NAT, multicast, reserved, documentation,
 * unspecified, and IPv6 unique-local, link-local, IPv4-mapped / NAT64 forms
 * of those - are refused unless an allow-list CIDR (admin configuration)
 * contains them. Spellings such as 2130706433, 0x7f000001, 017700000001 or
 * [::ffff:127.0.0.1] resolve to the same numbers and are refused the same.
 */
#ifndef FT_WEBHOOK_H
#define FT_WEBHOOK_H

#include <netinet/in.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "ft/err.h"

/* New random secret "whsec_" + base64(24 bytes); out holds 64 bytes. */
void ft_webhook_secret_new(char out[64]);

/* out: "v1,<base64>" (at most 48 bytes with NUL). FT_EINVAL for a secret
 * that is not "whsec_<base64>". */
enum ft_rc ft_webhook_sign(const char *secret, const char *msg_id, long long timestamp,
			   const char *body, size_t body_len, char out[64], struct ft_err *err);

/* Why an address is special, or NULL when it is an ordinary public one. */
const char *ft_ssrf_blocked_reason(const struct sockaddr *sa);

/* True when sa is inside one of the comma-separated CIDRs ("127.0.0.1/32,10.0.0.0/8,::1/128"). */
bool ft_ssrf_allowed(const struct sockaddr *sa, const char *allow_cidrs);

/* Parse and check a webhook URL: scheme (https, or http when allow_http),
 * no credentials, then resolve the host and pick the first address that is
 * public or allow-listed; refuse when any resolved address is blocked and
 * not allowed (a name must not mix public and private answers). On success
 * `pin` is "host:port:address" for CURLOPT_RESOLVE. */
enum ft_rc ft_webhook_check_url(const char *url, bool allow_http, const char *allow_cidrs,
				char pin[320], struct ft_err *err);

/* The outbox: queue one delivery of an event for every enabled endpoint
 * of team that subscribes to type, in the caller's transaction on db (the
 * event and its deliveries commit together). payload is the body sent:
 * {"type": type, "id": <event id>, "data": {...}}. ft-scheduler (job and
 * export events, model versions) and ft-api (alias moves, promotions) both
 * queue through this one function. */
enum ft_rc ft_webhook_queue(PGconn *db, const char *team, const char *type, json_t *payload,
			    struct ft_err *err);

#endif
