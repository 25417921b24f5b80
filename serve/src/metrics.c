/*
 * metrics.c - ft-serve's Prometheus text (GET /metrics): the latency
 * histograms (time to first token, between tokens, whole request), the
 * batching loop's queue, running sequences, KV cache use and throughput,
 * and the request log's queue to Redis (depth, bytes, sent, dropped).
 */
#include "ft/clock.h"
#include "ft/metrics.h"
#include "serve_int.h"

const double srv_hist_bounds[SRV_NBUCKETS] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
					       0.5,   1,    2.5,   5,	 10,  60 };

void srv_hist_add(struct srv_ctx *c, struct srv_hist *h, double seconds)
{
	pthread_mutex_lock(&c->mu);
	for (int i = 0; i < SRV_NBUCKETS; i++)
		if (seconds <= srv_hist_bounds[i]) {
			h->buckets[i]++;
			break;
		}
	h->count++;
	h->sum += seconds;
	pthread_mutex_unlock(&c->mu);
}

static void hist(struct ft_buf *out, const char *name, const char *help, const struct srv_hist *h)
{
	ft_metrics_help(out, name, "histogram", help);
	uint64_t cum = 0;
	for (int i = 0; i < SRV_NBUCKETS; i++) {
		char labels[32];
		cum += h->buckets[i];
		snprintf(labels, sizeof labels, "le=\"%g\"", srv_hist_bounds[i]);
		char n[96];
		snprintf(n, sizeof n, "%s_bucket", name);
		ft_metrics_value(out, n, labels, (double)cum);
	}
	char n[96];
	snprintf(n, sizeof n, "%s_bucket", name);
	ft_metrics_value(out, n, "le=\"+Inf\"", (double)h->count);
	snprintf(n, sizeof n, "%s_sum", name);
	ft_metrics_value(out, n, NULL, h->sum);
	snprintf(n, sizeof n, "%s_count", name);
	ft_metrics_value(out, n, NULL, (double)h->count);
}

void srv_metrics_text(struct srv_ctx *c, struct ft_buf *out)
{
	struct ft_srv_stats st;
	ft_srv_stats(c->srv, &st);
	pthread_mutex_lock(&c->mu);
	struct srv_hist ttft = c->ttft, itl = c->itl, e2e = c->e2e;
	uint64_t ok = c->requests_ok, failed = c->requests_failed, gone = c->disconnects;
	pthread_mutex_unlock(&c->mu);
	hist(out, "ftserve_time_to_first_token_seconds", "time from the request to its first token",
	     &ttft);
	hist(out, "ftserve_inter_token_latency_seconds", "time between two tokens of a stream",
	     &itl);
	hist(out, "ftserve_request_duration_seconds", "time from the request to its last token",
	     &e2e);
	ft_metrics_help(out, "ftserve_requests_total", "counter", "requests ended, by outcome");
	ft_metrics_value(out, "ftserve_requests_total", "outcome=\"ok\"", (double)ok);
	ft_metrics_value(out, "ftserve_requests_total", "outcome=\"failed\"", (double)failed);
	ft_metrics_help(out, "ftserve_client_disconnects_total", "counter",
			"requests whose client went away before the end (their sequences freed)");
	ft_metrics_value(out, "ftserve_client_disconnects_total", NULL, (double)gone);
	ft_metrics_help(out, "ftserve_queue_depth", "gauge",
			"requests waiting for a sequence slot");
	ft_metrics_value(out, "ftserve_queue_depth", NULL, st.queued);
	ft_metrics_help(out, "ftserve_running_sequences", "gauge", "sequences being generated");
	ft_metrics_value(out, "ftserve_running_sequences", NULL, st.running);
	ft_metrics_help(out, "ftserve_kv_cache_usage_ratio", "gauge",
			"positions of the KV cache holding a running sequence's tokens");
	ft_metrics_value(out, "ftserve_kv_cache_usage_ratio", NULL,
			 st.kv_positions ? (double)st.kv_positions_used / (double)st.kv_positions
					 : 0);
	ft_metrics_help(out, "ftserve_generated_tokens_total", "counter", "tokens generated");
	ft_metrics_value(out, "ftserve_generated_tokens_total", NULL, (double)st.tokens_generated);
	ft_metrics_help(out, "ftserve_prompt_tokens_total", "counter", "prompt tokens read");
	ft_metrics_value(out, "ftserve_prompt_tokens_total", NULL, (double)st.prompt_tokens);
	ft_metrics_help(out, "ftserve_prompt_tokens_cached_total", "counter",
			"prompt tokens found in the prefix cache (not computed again)");
	ft_metrics_value(out, "ftserve_prompt_tokens_cached_total", NULL,
			 (double)st.prompt_tokens_cached);
	ft_metrics_help(out, "ftserve_prefix_cache_hits_total", "counter",
			"requests that found a start of their prompt in the prefix cache");
	ft_metrics_value(out, "ftserve_prefix_cache_hits_total", NULL, (double)st.prefix_hits);
	ft_metrics_help(out, "ftserve_tokens_per_second", "gauge",
			"tokens generated per second of model time, since the start");
	ft_metrics_value(out, "ftserve_tokens_per_second", NULL,
			 st.busy_seconds > 0 ? (double)st.tokens_generated / st.busy_seconds : 0);
	ft_metrics_help(out, "ftserve_steps_total", "counter", "batched steps the model ran");
	ft_metrics_value(out, "ftserve_steps_total", NULL, (double)st.steps);
	if (!c->log)
		return;
	struct srv_reqlog_stats ls;
	srv_reqlog_stats(c->log, &ls);
	ft_metrics_help(out, "ftserve_request_log_queue_depth", "gauge",
			"request log records waiting to be sent to Redis");
	ft_metrics_value(out, "ftserve_request_log_queue_depth", NULL, (double)ls.depth);
	ft_metrics_help(out, "ftserve_request_log_queue_bytes", "gauge",
			"bytes those waiting records take");
	ft_metrics_value(out, "ftserve_request_log_queue_bytes", NULL, (double)ls.bytes);
	ft_metrics_help(out, "ftserve_request_log_sent_total", "counter",
			"request log records sent to Redis (XADD)");
	ft_metrics_value(out, "ftserve_request_log_sent_total", NULL, (double)ls.sent);
	ft_metrics_help(out, "ftserve_request_log_dropped_total", "counter",
			"request log records dropped because the queue was full (oldest first)");
	ft_metrics_value(out, "ftserve_request_log_dropped_total", NULL, (double)ls.dropped);
	ft_metrics_help(out, "ftserve_request_log_redis_up", "gauge",
			"1 when the last XADD of the request log succeeded");
	ft_metrics_value(out, "ftserve_request_log_redis_up", NULL, ls.redis_up ? 1 : 0);
}

enum ft_rc srv_metrics_route(struct srv_req *r)
{
	struct ft_buf b;
	ft_buf_init(&b, 1 << 20);
	srv_metrics_text(r->ctx, &b);
	r->resp = json_string(ft_buf_str(&b));
	ft_buf_release(&b);
	r->status = 200;
	return FT_OK;
}
