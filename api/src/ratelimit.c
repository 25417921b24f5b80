/*
 * ratelimit.c - ft-api's side of common/services' ft/usage.h (the one
 * implementation ft-serve shares): a key's rate limit as ft-api refuses it
 * (429, Retry-After: the seconds left in the minute), and the upload slots:
 * POST /v1/files holds a slot of its key and one of its client address from
 * the first call to the end of the request, however it ends; over
 * upload_max_per_key or upload_max_per_ip it is refused with 429 before its
 * body is read. The background thread (background.c) syncs the counts and
 * writes last_used_at.
 */
#include "api_int.h"
#include "ft/usage.h"

enum ft_rc api_rate_check(struct api_req *r, long per_min)
{
	if (ft_usage_rate(r->ctx->usage, r->key_id, per_min, &r->retry_after))
		return FT_OK;
	return ft_failf(&r->err, FT_ELIMIT, "rate_limit_exceeded",
			"rate limit of %ld requests per minute exceeded; retry in %ld s", per_min,
			r->retry_after);
}

enum ft_rc api_upload_slots_take(struct api_req *r)
{
	struct ft_usage *u = r->ctx->usage;
	char kname[80], iname[80];
	snprintf(kname, sizeof(kname), "k:%s", r->key_id);
	snprintf(iname, sizeof(iname), "ip:%s", r->addr);
	if (!ft_usage_slot_take(u, kname, r->ctx->upload_max_per_key)) {
		r->retry_after = 1;
		return ft_failf(&r->err, FT_ELIMIT, "too_many_uploads",
				"this key already has %ld uploads in progress; wait for one to "
				"finish",
				r->ctx->upload_max_per_key);
	}
	if (!ft_usage_slot_take(u, iname, r->ctx->upload_max_per_ip)) {
		ft_usage_slot_give(u, kname);
		r->retry_after = 1;
		return ft_failf(&r->err, FT_ELIMIT, "too_many_uploads",
				"this address already has %ld uploads in progress; wait for one "
				"to finish",
				r->ctx->upload_max_per_ip);
	}
	r->upload_slots = true;
	return FT_OK;
}

void api_upload_slots_give(struct api_req *r)
{
	if (!r->upload_slots)
		return;
	char name[80];
	snprintf(name, sizeof(name), "k:%s", r->key_id);
	ft_usage_slot_give(r->ctx->usage, name);
	snprintf(name, sizeof(name), "ip:%s", r->addr);
	ft_usage_slot_give(r->ctx->usage, name);
	r->upload_slots = false;
}

void api_rate_sync(struct api_ctx *ctx)
{
	ft_usage_sync(ctx->usage);
}

void api_usage_flush_last_used(struct api_ctx *ctx)
{
	ft_usage_flush_last_used(ctx->usage, ctx->pg);
}
