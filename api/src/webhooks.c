/*
 * webhooks.c - /v1/webhooks: endpoints that receive signed events
 * (Standard Webhooks; delivery is ft-scheduler's, see scheduler/src/webhooks.c).
 *
 *   POST   /v1/webhooks                                   create; the secret is shown once
 *   GET    /v1/webhooks, /v1/webhooks/{id}                 list, one (no secret)
 *   DELETE /v1/webhooks/{id}                               delete (its deliveries go too)
 *   POST   /v1/webhooks/{id}/rotate_secret                 new secret, shown once; the old one
 *                                                          keeps signing for 24 h
 *   GET    /v1/webhooks/{id}/deliveries                    the delivery log, newest first
 *   POST   /v1/webhooks/{id}/deliveries/{did}/redeliver    send a delivery again now
 *
 * A URL is checked at creation by the same SSRF guard that delivery uses
 * (the check is repeated at every delivery, since DNS answers change).
 */
#include "ft/webhook.h"
#include "api_int.h"

#define WH_COLS                                                                               \
	"id, url, events, enabled, disabled_reason, extract(epoch from created_at)::bigint, " \
	"previous_secret_expires_at IS NOT NULL AND previous_secret_expires_at > now()"
#define DL_COLS                                                                                 \
	"id, webhook_id, event_type, status, attempts, last_status_code, last_error, "          \
	"extract(epoch from created_at)::bigint, extract(epoch from next_attempt_at)::bigint, " \
	"extract(epoch from delivered_at)::bigint, payload::text"

/* The event types an endpoint may subscribe to (docs/api.md, "Webhooks"). */
static const char *const event_types[] = { "fine_tuning.job.succeeded",
					   "fine_tuning.job.failed",
					   "fine_tuning.job.cancelled",
					   "model.version.created",
					   "model.alias.moved",
					   "model.export.succeeded",
					   "model.export.failed",
					   "eval.succeeded",
					   "eval.failed",
					   "experiment.arm.stopped",
					   "experiment.decided",
					   "monitor.drift.detected",
					   NULL };

static json_t *events_json(const char *pgarray)
{
	/* text[] comes back as {a,b}; our event names contain no commas or quotes. */
	json_t *a = json_array();
	const char *p = pgarray;
	if (*p == '{')
		p++;
	while (*p && *p != '}') {
		const char *e = p + strcspn(p, ",}");
		json_array_append_new(a, json_stringn(p, (size_t)(e - p)));
		p = *e == ',' ? e + 1 : e;
	}
	return a;
}

static json_t *webhook_json(const PGresult *res, int i)
{
	json_t *w = json_object();
	json_object_set_new(w, "id", json_string(PQgetvalue(res, i, 0)));
	json_object_set_new(w, "object", json_string("webhook"));
	json_object_set_new(w, "url", json_string(PQgetvalue(res, i, 1)));
	json_object_set_new(w, "events", events_json(PQgetvalue(res, i, 2)));
	json_object_set_new(w, "enabled", json_boolean(PQgetvalue(res, i, 3)[0] == 't'));
	json_object_set_new(w, "disabled_reason", api_text_or_null(res, i, 4));
	json_object_set_new(w, "created_at", api_epoch(res, i, 5));
	json_object_set_new(w, "rotating", json_boolean(PQgetvalue(res, i, 6)[0] == 't'));
	return w;
}

static json_t *delivery_json(const PGresult *res, int i)
{
	json_t *d = json_object();
	json_object_set_new(d, "id", json_string(PQgetvalue(res, i, 0)));
	json_object_set_new(d, "object", json_string("webhook.delivery"));
	json_object_set_new(d, "webhook_id", json_string(PQgetvalue(res, i, 1)));
	json_object_set_new(d, "event_type", json_string(PQgetvalue(res, i, 2)));
	json_object_set_new(d, "status", json_string(PQgetvalue(res, i, 3)));
	json_object_set_new(d, "attempts", json_integer(strtoll(PQgetvalue(res, i, 4), NULL, 10)));
	json_object_set_new(d, "last_status_code",
			    PQgetisnull(res, i, 5)
				    ? json_null()
				    : json_integer(strtoll(PQgetvalue(res, i, 5), NULL, 10)));
	json_object_set_new(d, "last_error", api_text_or_null(res, i, 6));
	json_object_set_new(d, "created_at", api_epoch(res, i, 7));
	json_object_set_new(d, "next_attempt_at", api_epoch(res, i, 8));
	json_object_set_new(d, "delivered_at", api_epoch(res, i, 9));
	json_object_set_new(d, "payload", api_jsonb(res, i, 10));
	return d;
}

/* The webhook {id} of the caller's team, or a 404. */
static enum ft_rc own_webhook(struct api_req *r, const char *id)
{
	if (!ft_id_valid(FT_ID_WEBHOOK, id))
		return api_not_found(r, "webhook", id);
	const char *p[] = { id, r->team_id };
	PGresult *res = api_db(r, "SELECT 1 FROM webhooks WHERE id = $1 AND team_id = $2", 2, p);
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "webhook", id);
	return FT_OK;
}

static enum ft_rc one(struct api_req *r, const char *id, const char *secret)
{
	const char *p[] = { id };
	PGresult *res = api_db(r, "SELECT " WH_COLS " FROM webhooks WHERE id = $1", 1, p);
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "webhook", id);
	json_t *w = webhook_json(res, 0);
	if (secret) {
		json_object_set_new(w, "secret", json_string(secret));
		r->secret_field = "secret"; /* shown once: not replayed */
	}
	r->resp = api_own(r, w);
	r->obj_type = "webhook";
	r->obj_id = api_strdup(r->arena, id);
	return FT_OK;
}

enum ft_rc h_webhooks_create(struct api_req *r)
{
	static const char *const keys[] = { "url", "events", NULL };
	json_t *b, *ev = NULL;
	const char *url = NULL;
	if (api_body_object(r, false, &b) || api_check_keys(r, b, NULL, keys) ||
	    ft_json_get_str(b, "url", FT_JSON_REQUIRED | FT_JSON_NONEMPTY, &url, &r->err) ||
	    ft_json_get_arr(b, "events", FT_JSON_REQUIRED, &ev, &r->err))
		return FT_EINVAL;
	if (strlen(url) > 2048) {
		ft_failf(&r->err, FT_EINVAL, "invalid_value", "\"url\" is longer than 2048 bytes");
		ft_err_param(&r->err, "url");
		return FT_EINVAL;
	}
	if (json_array_size(ev) == 0 || json_array_size(ev) > 16) {
		ft_failf(&r->err, FT_EINVAL, "invalid_value",
			 "\"events\" must list 1 to 16 event types");
		ft_err_param(&r->err, "events");
		return FT_EINVAL;
	}
	struct ft_buf arr = FT_BUF_INIT(4096);
	size_t i;
	json_t *e;
	(void)!ft_buf_addch(&arr, '{');
	json_array_foreach(ev, i, e)
	{
		const char *name = json_string_value(e);
		bool known = false;
		for (const char *const *t = event_types; name && *t; t++)
			known |= strcmp(*t, name) == 0;
		if (!known) {
			struct ft_buf names = FT_BUF_INIT(4096);
			for (const char *const *t = event_types; *t; t++)
				(void)!ft_buf_addf(&names, "%s%s", t == event_types ? "" : ", ",
						   *t);
			ft_buf_release(&arr);
			ft_failf(&r->err, FT_EINVAL, "invalid_value",
				 "\"events\" item %zu must be one of %s", i, ft_buf_str(&names));
			ft_buf_release(&names);
			ft_err_param(&r->err, "events");
			return FT_EINVAL;
		}
		(void)!ft_buf_addf(&arr, "%s%s", i ? "," : "", name);
	}
	(void)!ft_buf_addch(&arr, '}');
	char pin[320];
	struct ft_err uerr;
	ft_err_clear(&uerr);
	if (ft_webhook_check_url(url, r->ctx->webhook_allow_http, r->ctx->webhook_allow_cidrs, pin,
				 &uerr)) {
		ft_buf_release(&arr);
		ft_failf(&r->err, FT_EINVAL, "invalid_url", "%s", uerr.msg);
		ft_err_param(&r->err, "url");
		return FT_EINVAL;
	}
	char id[FT_ID_MAX], secret[64];
	ft_id_new(FT_ID_WEBHOOK, id);
	ft_webhook_secret_new(secret);
	const char *p[] = { id, r->team_id, url, ft_buf_str(&arr), secret };
	enum ft_rc rc = api_db_cmd(r,
				   "INSERT INTO webhooks (id, team_id, url, events, secret)"
				   " VALUES ($1, $2, $3, $4::text[], $5)",
				   5, p);
	ft_buf_release(&arr);
	return rc ? rc : one(r, id, secret);
}

enum ft_rc h_webhooks_list(struct api_req *r)
{
	return api_list_newest(r, FT_ID_WEBHOOK, "webhooks", "team_id", r->team_id, WH_COLS,
			       webhook_json);
}

enum ft_rc h_webhooks_get(struct api_req *r)
{
	if (own_webhook(r, r->params[0]))
		return r->err.rc;
	return one(r, r->params[0], NULL);
}

enum ft_rc h_webhooks_delete(struct api_req *r)
{
	const char *id = r->params[0];
	if (own_webhook(r, id))
		return r->err.rc;
	const char *p[] = { id };
	if (api_db_cmd(r, "DELETE FROM webhooks WHERE id = $1", 1, p))
		return r->err.rc;
	r->resp = api_own(
		r, json_pack("{s:s, s:s, s:b}", "id", id, "object", "webhook", "deleted", 1));
	r->obj_type = "webhook";
	r->obj_id = api_strdup(r->arena, id);
	return FT_OK;
}

enum ft_rc h_webhooks_rotate(struct api_req *r)
{
	const char *id = r->params[0];
	char secret[64];
	if (own_webhook(r, id))
		return r->err.rc;
	ft_webhook_secret_new(secret);
	const char *p[] = { id, secret };
	if (api_db_cmd(r,
		       "UPDATE webhooks SET previous_secret = secret, secret = $2,"
		       " previous_secret_expires_at = now() + interval '24 hours' WHERE id = $1",
		       2, p))
		return r->err.rc;
	return one(r, id, secret);
}

enum ft_rc h_webhooks_deliveries(struct api_req *r)
{
	const char *id = r->params[0];
	if (own_webhook(r, id))
		return r->err.rc;
	return api_list_newest(r, FT_ID_DELIVERY, "webhook_deliveries", "webhook_id", id, DL_COLS,
			       delivery_json);
}

enum ft_rc h_webhooks_redeliver(struct api_req *r)
{
	const char *id = r->params[0], *did = r->params[1];
	if (own_webhook(r, id))
		return r->err.rc;
	if (!ft_id_valid(FT_ID_DELIVERY, did))
		return api_not_found(r, "delivery", did);
	const char *p[] = { did, id };
	PGresult *res =
		api_db(r,
		       "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = now(),"
		       " created_at = CASE WHEN status = 'abandoned' THEN now() ELSE created_at END"
		       " WHERE id = $1 AND webhook_id = $2 RETURNING " DL_COLS,
		       2, p);
	if (!res)
		return r->err.rc;
	if (PQntuples(res) == 0)
		return api_not_found(r, "delivery", did);
	r->resp = api_own(r, delivery_json(res, 0));
	r->obj_type = "webhook_delivery";
	r->obj_id = api_strdup(r->arena, did);
	return FT_OK;
}
