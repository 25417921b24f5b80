/*
 * webhooks.c - delivering the webhook outbox (webhook_deliveries).
 *
 * Every ft-scheduler process (leader or not) runs one delivery thread with
 * its own PostgreSQL connection; rows are claimed with FOR UPDATE SKIP LOCKED
 * so two threads never send the same delivery at once. One attempt:
 *   - the URL is checked by the SSRF guard (ft/webhook.h) and the connection
 *     pinned to the checked address; redirects are not followed;
 *   - headers webhook-id (the delivery id, stable across retries),
 *     webhook-timestamp (now) and webhook-signature ("v1,…" with the current
 *     secret, plus the previous secret while its rotation overlap lasts);
 *   - 2xx: succeeded. 410 Gone: the endpoint is disabled, the delivery failed.
 *     Anything else (other status, timeout, refused address): retry after
 *     base * 2^attempts (capped at 12 h) with +-20% jitter, until the
 *     delivery is older than webhook_max_age_hours (about three days): then
 *     abandoned.
 */
#include <pthread.h>

#include <curl/curl.h>

#include "ft/webhook.h"
#include "sched_int.h"

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
	FT_UNUSED(p);
	FT_UNUSED(ud);
	return size * n;
}

struct attempt {
	long status; /* HTTP status, 0 when no response */
	char error[512]; /* why it failed, when it did */
};

static void send_one(const struct ft_sched_opts *o, const char *id, const char *url,
		     const char *body, const char *secret, const char *prev_secret,
		     struct attempt *a)
{
	struct ft_err err;
	char pin[320], sig1[64], sig2[64], h_id[128], h_ts[64], h_sig[200];
	long long ts = ft_time_wall_ms() / 1000;
	struct curl_slist *hdrs = NULL, *resolve = NULL;
	CURL *c = NULL;

	a->status = 0;
	a->error[0] = '\0';
	ft_err_clear(&err);
	if (ft_webhook_check_url(url, o->webhook_allow_http, o->webhook_allow_cidrs, pin, &err) ||
	    ft_webhook_sign(secret, id, ts, body, strlen(body), sig1, &err) ||
	    (prev_secret && ft_webhook_sign(prev_secret, id, ts, body, strlen(body), sig2, &err))) {
		snprintf(a->error, sizeof(a->error), "%s", err.msg);
		return;
	}
	snprintf(h_id, sizeof(h_id), "webhook-id: %s", id);
	snprintf(h_ts, sizeof(h_ts), "webhook-timestamp: %lld", ts);
	snprintf(h_sig, sizeof(h_sig), "webhook-signature: %s%s%s", sig1, prev_secret ? " " : "",
		 prev_secret ? sig2 : "");
	hdrs = curl_slist_append(hdrs, "content-type: application/json");
	hdrs = curl_slist_append(hdrs, "user-agent: ftplat-webhooks/1");
	hdrs = curl_slist_append(hdrs, h_id);
	hdrs = curl_slist_append(hdrs, h_ts);
	hdrs = curl_slist_append(hdrs, h_sig);
	resolve = curl_slist_append(resolve, pin);
	c = curl_easy_init();
	if (!c || !hdrs || !resolve) {
		snprintf(a->error, sizeof(a->error), "out of memory");
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_RESOLVE, resolve);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, o->webhook_allow_http ? "http,https" : "https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)o->webhook_timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)FT_MIN(o->webhook_timeout_ms, 5000));
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE, 1L << 20);
	CURLcode cr = curl_easy_perform(c);
	if (cr != CURLE_OK) {
		snprintf(a->error, sizeof(a->error), "%s", curl_easy_strerror(cr));
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
	if (a->status < 200 || a->status > 299)
		snprintf(a->error, sizeof(a->error), "endpoint answered HTTP %ld", a->status);
out:
	curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	curl_slist_free_all(resolve);
}

/* Backoff before attempt n+1 (n >= 1 attempts made), with jitter. */
/* doubling from webhook_backoff_ms up to 12 hours, 80% .. 120% of it */
static long long backoff_ms(const struct ft_sched_opts *o, int n)
{
	return ft_backoff_ms(o->webhook_backoff_ms, n, 12LL * 3600 * 1000, 80, 120);
}

/* Claim and send one due delivery; false when none was due. */
static bool deliver_next(const struct ft_sched_opts *o, PGconn *pg)
{
	struct ft_err err;
	bool did = false;
	ft_err_clear(&err);
	if (ft_pg_command(pg, &err, "BEGIN", 0, NULL))
		return false;
	char age[32];
	snprintf(age, sizeof(age), "%d", o->webhook_max_age_hours);
	const char *p0[] = { age };
	PGresult *r = ft_pg_exec(pg, &err,
				 "SELECT d.id, d.payload::text, d.attempts, d.created_at < now() - "
				 "$1::int * interval '1 hour',"
				 " w.id, w.url, w.secret,"
				 " CASE WHEN w.previous_secret_expires_at > now() THEN "
				 "w.previous_secret END, w.enabled"
				 " FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id"
				 " WHERE d.status = 'pending' AND d.next_attempt_at <= now()"
				 " ORDER BY d.next_attempt_at LIMIT 1 FOR UPDATE OF d SKIP LOCKED",
				 1, p0);
	if (!r || PQntuples(r) == 0)
		goto done;
	did = true;
	const char *id = PQgetvalue(r, 0, 0), *wid = PQgetvalue(r, 0, 4);
	int attempts = atoi(PQgetvalue(r, 0, 2)) + 1;
	bool too_old = PQgetvalue(r, 0, 3)[0] == 't';
	bool enabled = PQgetvalue(r, 0, 8)[0] == 't';
	struct attempt a = { 0 };
	if (!enabled) {
		const char *p[] = { id };
		ft_pg_command(pg, &err,
			      "UPDATE webhook_deliveries SET status = 'abandoned',"
			      " last_error = 'the webhook endpoint is disabled' WHERE id = $1",
			      1, p);
		goto done;
	}
	send_one(o, id, PQgetvalue(r, 0, 5), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 6),
		 PQgetisnull(r, 0, 7) ? NULL : PQgetvalue(r, 0, 7), &a);
	char att[16], code[16], delay[32];
	snprintf(att, sizeof(att), "%d", attempts);
	snprintf(code, sizeof(code), "%ld", a.status);
	snprintf(delay, sizeof(delay), "%lld", backoff_ms(o, attempts));
	const char *p[] = { id, att, a.status ? code : NULL, a.error[0] ? a.error : NULL, delay };
	if (!a.error[0]) {
		ft_pg_command(
			pg, &err,
			"UPDATE webhook_deliveries SET status = 'succeeded', attempts = $2::int,"
			" last_status_code = $3::int, last_error = NULL, delivered_at = now() "
			"WHERE id = $1",
			3, p);
	} else if (a.status == 410) {
		ft_pg_command(pg, &err,
			      "UPDATE webhook_deliveries SET status = 'failed', attempts = $2::int,"
			      " last_status_code = $3::int, last_error = $4 WHERE id = $1",
			      4, p);
		const char *pw[] = { wid };
		ft_pg_command(pg, &err,
			      "UPDATE webhooks SET enabled = false,"
			      " disabled_reason = 'the endpoint answered 410 Gone' WHERE id = $1",
			      1, pw);
		ft_warn("webhook %s disabled: its endpoint answered 410 Gone", wid);
	} else if (too_old) {
		ft_pg_command(
			pg, &err,
			"UPDATE webhook_deliveries SET status = 'abandoned', attempts = $2::int,"
			" last_status_code = $3::int, last_error = $4 WHERE id = $1",
			4, p);
	} else {
		ft_pg_command(pg, &err,
			      "UPDATE webhook_deliveries SET attempts = $2::int, last_status_code "
			      "= $3::int,"
			      " last_error = $4, next_attempt_at = now() + $5::bigint * interval "
			      "'1 millisecond'"
			      " WHERE id = $1",
			      5, p);
	}
done:
	PQclear(r);
	if (err.rc)
		PQclear(PQexec(pg, "ROLLBACK"));
	else
		ft_pg_command(pg, &err, "COMMIT", 0, NULL);
	return did;
}

static struct sched_loop loop = { .next = deliver_next };

void sched_webhooks_start(const struct ft_sched_opts *o)
{
	sched_loop_start(&loop, o);
}

void sched_webhooks_stop(void)
{
	sched_loop_stop(&loop);
}
