/*
 * reqlog.c - the request log's one table of fields (ft/reqlog.h) and what
 * both sides build from it: the writer's JSON, the reader's checks, the
 * scheduler's INSERT.
 */
#include "ft/reqlog.h"

#include <ctype.h>

#include "ft/id.h"
#include "ft/json.h"

#define TEXT 256 /* names */
#define MS_MAX 10000000000LL /* ~115 days: a longer latency is a broken clock */
#define TIME_MAX 253402300799999LL /* 9999-12-31T23:59:59.999Z in unix ms */
#define I32_MAX 2147483647LL

const struct ft_rl_field_def ft_reqlog_fields[FT_RL_COUNT] = {
	[FT_RL_ID] = { "id", FT_RL_TEXT, true, FT_RL_CHECK_WORD, NULL, 0, 64 },
	[FT_RL_CREATED_AT] = { "created_at", FT_RL_TIME, true, 0, NULL, 0, TIME_MAX },
	[FT_RL_KIND] = { "kind", FT_RL_TEXT, true, FT_RL_CHECK_WORD, NULL, 0, 16 },
	[FT_RL_STREAM] = { "stream", FT_RL_BOOL, true, 0, NULL, 0, 0 },
	[FT_RL_TEAM_ID] = { "team_id", FT_RL_TEXT, false, FT_RL_CHECK_ID, FT_ID_TEAM, 0,
			    FT_ID_MAX },
	[FT_RL_MODEL] = { "model", FT_RL_TEXT, false, FT_RL_CHECK_ANY, NULL, 0, TEXT },
	[FT_RL_BASE_MODEL] = { "base_model", FT_RL_TEXT, true, FT_RL_CHECK_ANY, NULL, 0, TEXT },
	[FT_RL_ADAPTER] = { "adapter", FT_RL_TEXT, false, FT_RL_CHECK_ANY, NULL, 0, TEXT },
	[FT_RL_VERSION_ID] = { "version_id", FT_RL_TEXT, false, FT_RL_CHECK_ID, FT_ID_VERSION, 0,
			       FT_ID_MAX },
	[FT_RL_DEPLOYMENT_ID] = { "deployment_id", FT_RL_TEXT, false, FT_RL_CHECK_ID,
				  FT_ID_DEPLOYMENT, 0, FT_ID_MAX },
	[FT_RL_EXPERIMENT_ARM] = { "experiment_arm", FT_RL_TEXT, false, FT_RL_CHECK_WORD, NULL, 0,
				   64 },
	[FT_RL_PROMPT_TOKENS] = { "prompt_tokens", FT_RL_INT, false, 0, NULL, 0, I32_MAX },
	[FT_RL_COMPLETION_TOKENS] = { "completion_tokens", FT_RL_INT, false, 0, NULL, 0, I32_MAX },
	[FT_RL_TTFT_MS] = { "ttft_ms", FT_RL_REAL, false, 0, NULL, 0, MS_MAX },
	[FT_RL_LATENCY_MS] = { "latency_ms", FT_RL_REAL, true, 0, NULL, 0, MS_MAX },
	[FT_RL_FINISH_REASON] = { "finish_reason", FT_RL_TEXT, false, FT_RL_CHECK_WORD, NULL, 0,
				  16 },
	[FT_RL_STATUS] = { "status", FT_RL_INT, true, 0, NULL, 100, 599 },
	[FT_RL_ERROR_CODE] = { "error_code", FT_RL_TEXT, false, FT_RL_CHECK_WORD, NULL, 0, 48 },
	[FT_RL_PROMPT] = { "prompt", FT_RL_TEXT, false, FT_RL_CHECK_ANY, NULL, 0, FT_RL_TEXT_MAX },
	[FT_RL_COMPLETION] = { "completion", FT_RL_TEXT, false, FT_RL_CHECK_ANY, NULL, 0,
			       FT_RL_TEXT_MAX },
	[FT_RL_PROMPT_BYTE_TOKENS] = { "prompt_byte_tokens", FT_RL_INT, false, 0, NULL, 0,
				       I32_MAX },
	[FT_RL_COMPLETION_BYTE_TOKENS] = { "completion_byte_tokens", FT_RL_INT, false, 0, NULL, 0,
					   I32_MAX },
	[FT_RL_EMBEDDING] = { "embedding", FT_RL_TEXT, false, FT_RL_CHECK_BASE64, NULL, 0,
			      4 * ((FT_RL_EMBEDDING_MAX * 4 + 2) / 3) },
};

void ft_reqlog_init(struct ft_reqlog *r)
{
	memset(r, 0, sizeof(*r));
}

void ft_reqlog_set_str(struct ft_reqlog *r, enum ft_rl_field f, const char *s)
{
	FT_ASSERT(ft_reqlog_fields[f].type == FT_RL_TEXT);
	r->v[f].s = s;
	r->set[f] = s != NULL;
}

void ft_reqlog_set_int(struct ft_reqlog *r, enum ft_rl_field f, int64_t v)
{
	FT_ASSERT(ft_reqlog_fields[f].type == FT_RL_INT || ft_reqlog_fields[f].type == FT_RL_TIME);
	r->v[f].i = v;
	r->set[f] = true;
}

void ft_reqlog_set_real(struct ft_reqlog *r, enum ft_rl_field f, double v)
{
	FT_ASSERT(ft_reqlog_fields[f].type == FT_RL_REAL);
	r->v[f].r = v;
	r->set[f] = true;
}

void ft_reqlog_set_bool(struct ft_reqlog *r, enum ft_rl_field f, bool v)
{
	FT_ASSERT(ft_reqlog_fields[f].type == FT_RL_BOOL);
	r->v[f].b = v;
	r->set[f] = true;
}

/* ---- checks, the same on both sides ---- */

static bool word_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("._:@/+-", c));
}

/* Does text s (n bytes, no NUL inside) pass field d's check? */
static bool text_ok(const struct ft_rl_field_def *d, const char *s, size_t n)
{
	if (n > (size_t)d->max)
		return false;
	switch (d->check) {
	case FT_RL_CHECK_ANY: return true;
	case FT_RL_CHECK_WORD:
		for (size_t i = 0; i < n; i++)
			if (!word_char((unsigned char)s[i]))
				return false;
		return n > 0;
	case FT_RL_CHECK_ID: return ft_id_valid(d->id_prefix, s);
	case FT_RL_CHECK_BASE64:
		if (n < 4 || n % 4)
			return false;
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)s[i];
			bool pad = c == '=' && i >= n - 2 && (i == n - 1 || s[n - 1] == '=');
			if (!(isalnum(c) || c == '+' || c == '/' || pad))
				return false;
		}
		return true;
	}
	return false;
}

bool ft_reqlog_text_ok(enum ft_rl_field f, const char *s)
{
	const struct ft_rl_field_def *d = &ft_reqlog_fields[f];
	return d->type == FT_RL_TEXT && s && text_ok(d, s, strlen(s));
}

static bool num_ok(const struct ft_rl_field_def *d, double x)
{
	return x >= (double)d->min && x <= (double)d->max;
}

/* ---- the writer ---- */

char *ft_reqlog_encode(const struct ft_reqlog *r, struct ft_err *err)
{
	json_t *o = json_object();
	for (int f = 0; f < FT_RL_COUNT; f++) {
		const struct ft_rl_field_def *d = &ft_reqlog_fields[f];
		json_t *v = NULL;
		if (r->set[f]) {
			switch (d->type) {
			case FT_RL_TEXT:
				if (d->check == FT_RL_CHECK_ANY)
					v = ft_json_string_clean(r->v[f].s, (size_t)d->max);
				else if (text_ok(d, r->v[f].s, strlen(r->v[f].s)))
					v = json_string(r->v[f].s);
				break;
			case FT_RL_INT:
			case FT_RL_TIME:
				if (num_ok(d, (double)r->v[f].i))
					v = json_integer((json_int_t)r->v[f].i);
				break;
			case FT_RL_REAL:
				if (num_ok(d, r->v[f].r))
					v = json_real(r->v[f].r);
				break;
			case FT_RL_BOOL: v = json_boolean(r->v[f].b); break;
			}
		}
		if (!v && d->required) {
			json_decref(o);
			ft_failf(err, FT_EINVAL, "invalid_record",
				 "request log record: \"%s\" is %s", d->name,
				 r->set[f] ? "out of its range or format" : "missing");
			return NULL;
		}
		if (v)
			json_object_set_new(o, d->name, v);
	}
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s)
		ft_failf(err, FT_ENOMEM, NULL, "out of memory");
	return s;
}

/* ---- the reader ---- */

static enum ft_rc bad(struct ft_err *err, const struct ft_rl_field_def *d, const char *why)
{
	ft_failf(err, FT_EINVAL, "invalid_record", "request log record: \"%s\" %s", d->name, why);
	ft_err_param(err, d->name);
	return FT_EINVAL;
}

enum ft_rc ft_reqlog_decode(const json_t *o, struct ft_reqlog *out, struct ft_err *err)
{
	ft_reqlog_init(out);
	if (!json_is_object(o))
		return ft_failf(err, FT_EINVAL, "invalid_record",
				"request log record: not a JSON object");
	for (int f = 0; f < FT_RL_COUNT; f++) {
		const struct ft_rl_field_def *d = &ft_reqlog_fields[f];
		json_t *v = json_object_get(o, d->name);
		if (!v || json_is_null(v)) {
			if (d->required)
				return bad(err, d, "is missing");
			continue;
		}
		switch (d->type) {
		case FT_RL_TEXT: {
			const char *s = json_string_value(v);
			if (!s)
				return bad(err, d, "must be a string");
			size_t n = json_string_length(v);
			if (strlen(s) != n || !text_ok(d, s, n))
				return bad(err, d, "is out of its format or length");
			out->v[f].s = s;
			break;
		}
		case FT_RL_INT:
		case FT_RL_TIME:
			if (!json_is_integer(v))
				return bad(err, d, "must be an integer");
			if (!num_ok(d, (double)json_integer_value(v)))
				return bad(err, d, "is out of range");
			out->v[f].i = (int64_t)json_integer_value(v);
			break;
		case FT_RL_REAL:
			if (!json_is_number(v))
				return bad(err, d, "must be a number");
			if (!num_ok(d, json_number_value(v)))
				return bad(err, d, "is out of range");
			out->v[f].r = json_number_value(v);
			break;
		case FT_RL_BOOL:
			if (!json_is_boolean(v))
				return bad(err, d, "must be true or false");
			out->v[f].b = json_is_true(v);
			break;
		}
		out->set[f] = true;
	}
	return FT_OK;
}

/* ---- the INSERT ---- */

enum ft_rc ft_reqlog_insert_sql(size_t n, struct ft_buf *sql)
{
	enum ft_rc rc = ft_buf_addstr(sql, "INSERT INTO request_log (");
	for (int f = 0; f < FT_RL_COUNT && !rc; f++)
		rc = ft_buf_addf(sql, "%s%s", f ? ", " : "", ft_reqlog_fields[f].name);
	if (!rc)
		rc = ft_buf_addstr(sql, ") VALUES ");
	for (size_t i = 0; i < n && !rc; i++) {
		rc = ft_buf_addstr(sql, i ? ", (" : "(");
		for (int f = 0; f < FT_RL_COUNT && !rc; f++) {
			size_t p = i * FT_RL_COUNT + (size_t)f + 1;
			const char *sep = f ? ", " : "";
			switch (ft_reqlog_fields[f].type) {
			case FT_RL_TEXT: rc = ft_buf_addf(sql, "%s$%zu", sep, p); break;
			case FT_RL_INT: rc = ft_buf_addf(sql, "%s$%zu::integer", sep, p); break;
			case FT_RL_REAL: rc = ft_buf_addf(sql, "%s$%zu::float8", sep, p); break;
			case FT_RL_BOOL: rc = ft_buf_addf(sql, "%s$%zu::boolean", sep, p); break;
			case FT_RL_TIME:
				rc = ft_buf_addf(sql, "%sto_timestamp($%zu::float8 / 1000)", sep,
						 p);
				break;
			}
		}
		if (!rc)
			rc = ft_buf_addstr(sql, ")");
	}
	if (!rc)
		rc = ft_buf_addstr(sql, " ON CONFLICT (id) DO NOTHING");
	return rc;
}

void ft_reqlog_params(const struct ft_reqlog *r, struct ft_rl_scratch *scratch, const char **params)
{
	for (int f = 0; f < FT_RL_COUNT; f++) {
		params[f] = NULL;
		if (!r->set[f])
			continue;
		char *num = scratch->num[f];
		switch (ft_reqlog_fields[f].type) {
		case FT_RL_TEXT: params[f] = r->v[f].s; continue;
		case FT_RL_INT:
		case FT_RL_TIME: snprintf(num, 32, "%lld", (long long)r->v[f].i); break;
		case FT_RL_REAL: snprintf(num, 32, "%.17g", r->v[f].r); break;
		case FT_RL_BOOL: snprintf(num, 32, "%s", r->v[f].b ? "true" : "false"); break;
		}
		params[f] = num;
	}
}
