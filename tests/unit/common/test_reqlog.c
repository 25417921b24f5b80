/*
 * test_reqlog.c - the request log's table (common/services/src/reqlog.c):
 * what the writer encodes the reader decodes to the same values; texts are
 * cut at a character boundary and made valid UTF-8 by the writer (so the
 * reader never refuses them); the reader refuses what breaks the table and
 * says which field; the scheduler's INSERT names every field once, in the
 * table's order, with one parameter each. Migration 0006's columns against
 * the table: tests/system/test_serve_reqlog.py (real rows).
 */
#include "ft/id.h"
#include "ft/reqlog.h"
#include "ftest.h"

static void full_record(struct ft_reqlog *r, char *team)
{
	ft_id_new(FT_ID_TEAM, team);
	ft_reqlog_init(r);
	ft_reqlog_set_str(r, FT_RL_ID, "chatcmpl-abcDEF123");
	ft_reqlog_set_int(r, FT_RL_CREATED_AT, 1767225600123LL);
	ft_reqlog_set_str(r, FT_RL_KIND, "chat");
	ft_reqlog_set_bool(r, FT_RL_STREAM, true);
	ft_reqlog_set_str(r, FT_RL_TEAM_ID, team);
	ft_reqlog_set_str(r, FT_RL_MODEL, "support@production");
	ft_reqlog_set_str(r, FT_RL_BASE_MODEL, "ftplat-tiny-cs");
	ft_reqlog_set_str(r, FT_RL_ADAPTER, "support");
	ft_reqlog_set_str(r, FT_RL_VERSION_ID, "mv-AAAAAAAAAAAAAAAAAAAAAAAA");
	ft_reqlog_set_str(r, FT_RL_DEPLOYMENT_ID, "dep-BBBBBBBBBBBBBBBBBBBBBBBB");
	ft_reqlog_set_str(r, FT_RL_EXPERIMENT_ARM, "b");
	ft_reqlog_set_int(r, FT_RL_PROMPT_TOKENS, 17);
	ft_reqlog_set_int(r, FT_RL_COMPLETION_TOKENS, 9);
	ft_reqlog_set_real(r, FT_RL_TTFT_MS, 12.5);
	ft_reqlog_set_real(r, FT_RL_LATENCY_MS, 80.25);
	ft_reqlog_set_str(r, FT_RL_FINISH_REASON, "stop");
	ft_reqlog_set_int(r, FT_RL_STATUS, 200);
	ft_reqlog_set_str(r, FT_RL_PROMPT, "你好，退货要多久？");
	ft_reqlog_set_str(r, FT_RL_COMPLETION, "Seven days.");
	ft_reqlog_set_int(r, FT_RL_PROMPT_BYTE_TOKENS, 6);
	ft_reqlog_set_int(r, FT_RL_COMPLETION_BYTE_TOKENS, 0);
	ft_reqlog_set_str(r, FT_RL_EMBEDDING, "AACAPwAAAEA="); /* 1.0f, 2.0f */
}

FT_TEST(round_trip_keeps_every_value)
{
	struct ft_reqlog r, back;
	struct ft_err e;
	char team[FT_ID_MAX];
	full_record(&r, team);
	ft_err_clear(&e);
	char *s = ft_reqlog_encode(&r, &e);
	FT_CHECK(s != NULL);
	json_t *o = json_loads(s, 0, NULL);
	FT_CHECK(o != NULL);
	FT_CHECK(ft_reqlog_decode(o, &back, &e) == FT_OK);
	for (int f = 0; f < FT_RL_COUNT; f++) {
		FT_CHECK(back.set[f] == r.set[f]);
		if (f == FT_RL_ERROR_CODE) {
			FT_CHECK(!back.set[f]); /* null: left out of the JSON */
			FT_CHECK(json_object_get(o, "error_code") == NULL);
			continue;
		}
		switch (ft_reqlog_fields[f].type) {
		case FT_RL_TEXT: FT_CHECK_STR(back.v[f].s, r.v[f].s); break;
		case FT_RL_INT:
		case FT_RL_TIME: FT_CHECK(back.v[f].i == r.v[f].i); break;
		case FT_RL_REAL: FT_CHECK(back.v[f].r == r.v[f].r); break;
		case FT_RL_BOOL: FT_CHECK(back.v[f].b == r.v[f].b); break;
		}
	}
	/* the parameters of the INSERT, as PostgreSQL reads them */
	struct ft_rl_scratch sc;
	const char *p[FT_RL_COUNT];
	ft_reqlog_params(&back, &sc, p);
	FT_CHECK_STR(p[FT_RL_CREATED_AT], "1767225600123");
	FT_CHECK_STR(p[FT_RL_STREAM], "true");
	FT_CHECK_STR(p[FT_RL_TTFT_MS], "12.5");
	FT_CHECK_STR(p[FT_RL_STATUS], "200");
	FT_CHECK_STR(p[FT_RL_TEAM_ID], team);
	FT_CHECK(p[FT_RL_ERROR_CODE] == NULL);
	json_decref(o);
	free(s);
}

FT_TEST(writer_cuts_and_cleans_texts)
{
	struct ft_reqlog r;
	struct ft_err e;
	char team[FT_ID_MAX];
	full_record(&r, team);
	/* invalid UTF-8 (a lone continuation byte, a truncated 3-byte
	 * character, an overlong '/') becomes U+FFFD per bad byte */
	ft_reqlog_set_str(&r, FT_RL_COMPLETION,
			  "a\x80"
			  "b\xe4\xbd"
			  "c\xc0\xaf");
	/* a model name of 300 x "é" (600 bytes) is cut to the 256-byte cap at a
	 * character boundary: 128 characters */
	char name[601];
	for (int i = 0; i < 300; i++)
		memcpy(name + 2 * i, "\xc3\xa9", 2);
	name[600] = 0;
	ft_reqlog_set_str(&r, FT_RL_MODEL, name);
	ft_err_clear(&e);
	char *s = ft_reqlog_encode(&r, &e);
	FT_CHECK(s != NULL);
	json_t *o = json_loads(s, 0, NULL);
	FT_CHECK_STR(json_string_value(json_object_get(o, "completion")),
		     "a\xef\xbf\xbd"
		     "b\xef\xbf\xbd\xef\xbf\xbd"
		     "c\xef\xbf\xbd\xef\xbf\xbd");
	FT_CHECK_INT(json_string_length(json_object_get(o, "model")), 256);
	struct ft_reqlog back;
	FT_CHECK(ft_reqlog_decode(o, &back, &e) == FT_OK);
	json_decref(o);
	free(s);
	/* an optional field out of format is left out; a required one fails */
	ft_reqlog_set_str(&r, FT_RL_VERSION_ID, "v1");
	ft_reqlog_set_str(&r, FT_RL_EXPERIMENT_ARM, "arm b");
	s = ft_reqlog_encode(&r, &e);
	o = json_loads(s, 0, NULL);
	FT_CHECK(json_object_get(o, "version_id") == NULL);
	FT_CHECK(json_object_get(o, "experiment_arm") == NULL);
	json_decref(o);
	free(s);
	ft_reqlog_set_int(&r, FT_RL_STATUS, 99);
	FT_CHECK(ft_reqlog_encode(&r, &e) == NULL);
	FT_CHECK(strstr(e.msg, "\"status\"") != NULL);
	/* an embedding is base64 with its padding, nothing else */
	FT_CHECK(ft_reqlog_text_ok(FT_RL_EMBEDDING, "AACAPwAAAEA="));
	FT_CHECK(ft_reqlog_text_ok(FT_RL_EMBEDDING, "AACAPw=="));
	FT_CHECK(!ft_reqlog_text_ok(FT_RL_EMBEDDING, "AACAPw="));
	FT_CHECK(!ft_reqlog_text_ok(FT_RL_EMBEDDING, "AA=APw=="));
	FT_CHECK(!ft_reqlog_text_ok(FT_RL_EMBEDDING, "AACA Pw="));
	FT_CHECK(!ft_reqlog_text_ok(FT_RL_EMBEDDING, ""));
	FT_CHECK(ft_reqlog_text_ok(FT_RL_EXPERIMENT_ARM, "treatment-2"));
	FT_CHECK(!ft_reqlog_text_ok(FT_RL_EXPERIMENT_ARM, ""));
	FT_CHECK(!ft_reqlog_text_ok(FT_RL_STATUS, "200"));
}

FT_TEST(reader_names_the_field_it_refuses)
{
	static const struct {
		const char *json, *param;
	} cases[] = {
		{ "{\"created_at\":1,\"kind\":\"chat\",\"stream\":false,\"base_model\":\"m\","
		  "\"latency_ms\":1,\"status\":200}",
		  "id" },
		{ "{\"id\":\"x y\",\"created_at\":1,\"kind\":\"chat\",\"stream\":false,"
		  "\"base_model\":\"m\",\"latency_ms\":1,\"status\":200}",
		  "id" },
		{ "{\"id\":\"x\",\"created_at\":1.5,\"kind\":\"chat\",\"stream\":false,"
		  "\"base_model\":\"m\",\"latency_ms\":1,\"status\":200}",
		  "created_at" },
		{ "{\"id\":\"x\",\"created_at\":1,\"kind\":\"chat\",\"stream\":\"no\","
		  "\"base_model\":\"m\",\"latency_ms\":1,\"status\":200}",
		  "stream" },
		{ "{\"id\":\"x\",\"created_at\":1,\"kind\":\"chat\",\"stream\":false,"
		  "\"team_id\":\"team-1\",\"base_model\":\"m\",\"latency_ms\":1,\"status\":200}",
		  "team_id" },
		{ "{\"id\":\"x\",\"created_at\":1,\"kind\":\"chat\",\"stream\":false,"
		  "\"base_model\":\"m\",\"prompt_tokens\":-1,\"latency_ms\":1,\"status\":200}",
		  "prompt_tokens" },
		{ "{\"id\":\"x\",\"created_at\":1,\"kind\":\"chat\",\"stream\":false,"
		  "\"base_model\":\"m\",\"latency_ms\":-0.5,\"status\":200}",
		  "latency_ms" },
		{ "{\"id\":\"x\",\"created_at\":1,\"kind\":\"chat\",\"stream\":false,"
		  "\"base_model\":\"m\",\"latency_ms\":1,\"status\":600}",
		  "status" },
		{ "{\"id\":\"x\",\"created_at\":1,\"kind\":\"chat\",\"stream\":false,"
		  "\"base_model\":\"m\\u0000n\",\"latency_ms\":1,\"status\":200}",
		  "base_model" },
	};
	for (size_t i = 0; i < FT_ARRAY_LEN(cases); i++) {
		struct ft_err e;
		struct ft_reqlog r;
		ft_err_clear(&e);
		json_t *o = json_loads(cases[i].json, JSON_ALLOW_NUL, NULL);
		FT_CHECK(o != NULL);
		FT_CHECK(ft_reqlog_decode(o, &r, &e) == FT_EINVAL);
		FT_CHECK_STR(e.param, cases[i].param);
		json_decref(o);
	}
	/* the smallest valid record; unknown keys are ignored */
	struct ft_err e;
	struct ft_reqlog r;
	ft_err_clear(&e);
	json_t *o = json_loads("{\"id\":\"x\",\"created_at\":1,\"kind\":\"chat\",\"stream\":false,"
			       "\"base_model\":\"m\",\"latency_ms\":1,\"status\":200,\"new\":1}",
			       0, NULL);
	FT_CHECK(ft_reqlog_decode(o, &r, &e) == FT_OK);
	FT_CHECK(!r.set[FT_RL_PROMPT_TOKENS] && r.v[FT_RL_STATUS].i == 200);
	json_decref(o);
}

FT_TEST(insert_names_every_field_once)
{
	struct ft_buf sql;
	ft_buf_init(&sql, 1 << 20);
	FT_CHECK(ft_reqlog_insert_sql(2, &sql) == FT_OK);
	const char *s = ft_buf_str(&sql);
	static const char head[] =
		"INSERT INTO request_log (id, created_at, kind, stream, team_id,";
	FT_CHECK(strncmp(s, head, strlen(head)) == 0);
	FT_CHECK(strstr(s, ") VALUES ($1, to_timestamp($2::float8 / 1000), $3, $4::boolean,") !=
		 NULL);
	/* the second row starts at parameter FT_RL_COUNT + 1 and ends at 2 x */
	char want[64];
	snprintf(want, sizeof want, "), ($%d, to_timestamp($%d::float8", FT_RL_COUNT + 1,
		 FT_RL_COUNT + 2);
	FT_CHECK(strstr(s, want) != NULL);
	snprintf(want, sizeof want, "$%d)", 2 * FT_RL_COUNT);
	FT_CHECK(strstr(s, want) != NULL);
	snprintf(want, sizeof want, "$%d", 2 * FT_RL_COUNT + 1);
	FT_CHECK(strstr(s, want) == NULL);
	FT_CHECK(strstr(s, " ON CONFLICT (id) DO NOTHING") != NULL);
	for (int f = 0; f < FT_RL_COUNT; f++) {
		char col[64];
		snprintf(col, sizeof col, "%s%s%s", f ? " " : "(", ft_reqlog_fields[f].name,
			 f + 1 < FT_RL_COUNT ? "," : ")");
		FT_CHECK(strstr(s, col) != NULL);
	}
	ft_buf_release(&sql);
}

FT_TEST_MAIN()
