/*
 * ft/reqlog.h - the request log: one record per request ft-serve answers,
 * written down once for the writer (ft-serve, serve/src/reqlog.c) and the
 * reader (ft-scheduler, scheduler/src/reqlog.c). The table in reqlog.c is
 * the only list of fields: the JSON key a record carries on the stream,
 * the request_log column it fills (same name), its type, whether it may be
 * null, and the check both sides apply. Migration 0006 creates the columns;
 * the scheduler's INSERT is built from the table.
 *
 * | field             | type    | null | what                                              |
 * |-------------------|---------|------|---------------------------------------------------|
 * | id                | text    | no   | the request's id, the response's "id" and its     |
 * |                   |         |      | x-request-id header ("chatcmpl-…", "cmpl-…")      |
 * | created_at        | time    | no   | when the request arrived (unix ms on the stream)  |
 * | kind              | text    | no   | "chat" or "completion"                            |
 * | stream            | bool    | no   | the answer was streamed (SSE)                     |
 * | team_id           | text    | yes  | the team of the API key, when one was used        |
 * | model             | text    | yes  | "model" as the request named it                   |
 * | base_model        | text    | no   | the base model the server holds                   |
 * | adapter           | text    | yes  | the adapter it resolved to (null: the base)       |
 * | version_id        | text    | yes  | registry version ("mv-…") the server was told     |
 * | deployment_id     | text    | yes  | deployment ("dep-…") the server was told          |
 * | experiment_arm    | text    | yes  | the request's A/B arm (header X-Experiment-Arm)   |
 * | prompt_tokens     | integer | yes  | usage.prompt_tokens (null: never admitted)        |
 * | completion_tokens | integer | yes  | usage.completion_tokens (null: never admitted)    |
 * | ttft_ms           | real    | yes  | arrival to first token (null: no token)           |
 * | latency_ms        | real    | no   | arrival to the end of the answer                  |
 * | finish_reason     | text    | yes  | stop, length, cancelled (client gone), error;     |
 * |                   |         |      | null when refused before generating               |
 * | status            | integer | no   | the HTTP status sent; 499 when the client went    |
 * |                   |         |      | away before any status was sent                   |
 * | error_code        | text    | yes  | the error's code when the answer was an error     |
 * | prompt            | text    | yes  | the prompt text (chat: rendered), only when       |
 * |                   |         |      | logging texts is on for the model                 |
 * | completion        | text    | yes  | the completion text, likewise                     |
 * | prompt_byte_tokens     | integer | yes | prompt tokens that are byte pieces (ft/       |
 * |                   |         |      | tokenizer.h ft_tokenizer_byte_pieces): part of a  |
 * |                   |         |      | character, as text the vocabulary does not cover  |
 * | completion_byte_tokens | integer | yes | the same in the completion                    |
 * | embedding         | text    | yes  | a sampled request's prompt embedding: the mean of |
 * |                   |         |      | the final (normed) hidden states over its prompt  |
 * |                   |         |      | tokens, float32 little-endian, base64; the drift  |
 * |                   |         |      | monitor's embedding statistics read it            |
 *
 * On the stream (ft/wire.h FT_WIRE_REQUESTS) a record is one field "r"
 * holding a JSON object with these keys; null fields are left out; keys
 * the reader does not know are ignored (a newer writer may add some).
 * Texts longer than their field's cap are cut at a character boundary by
 * the writer, which also makes them valid UTF-8 without NUL, so the reader
 * never refuses what the writer sends. The reader refuses (and the
 * scheduler drops, counting it) a record that breaks a check.
 *
 * Ownership: a struct ft_reqlog only points at strings (the writer's, or
 * the decoded JSON's); it owns nothing.
 */
#ifndef FT_REQLOG_H
#define FT_REQLOG_H

#include <jansson.h>

#include "ft/buf.h"
#include "ft/err.h"

enum ft_rl_field {
	FT_RL_ID = 0,
	FT_RL_CREATED_AT,
	FT_RL_KIND,
	FT_RL_STREAM,
	FT_RL_TEAM_ID,
	FT_RL_MODEL,
	FT_RL_BASE_MODEL,
	FT_RL_ADAPTER,
	FT_RL_VERSION_ID,
	FT_RL_DEPLOYMENT_ID,
	FT_RL_EXPERIMENT_ARM,
	FT_RL_PROMPT_TOKENS,
	FT_RL_COMPLETION_TOKENS,
	FT_RL_TTFT_MS,
	FT_RL_LATENCY_MS,
	FT_RL_FINISH_REASON,
	FT_RL_STATUS,
	FT_RL_ERROR_CODE,
	FT_RL_PROMPT,
	FT_RL_COMPLETION,
	FT_RL_PROMPT_BYTE_TOKENS,
	FT_RL_COMPLETION_BYTE_TOKENS,
	FT_RL_EMBEDDING,
	FT_RL_COUNT
};

enum ft_rl_type { FT_RL_TEXT, FT_RL_INT, FT_RL_REAL, FT_RL_BOOL, FT_RL_TIME };

/* What a text field may hold. */
enum ft_rl_check {
	FT_RL_CHECK_ANY = 0, /* any text up to max bytes (cut by the writer) */
	FT_RL_CHECK_WORD, /* 1..max of [A-Za-z0-9._:@/+-] */
	FT_RL_CHECK_ID, /* an ftplat id with the field's prefix (ft/id.h) */
	FT_RL_CHECK_BASE64, /* standard base64 with padding, 4..max bytes */
};

struct ft_rl_field_def {
	const char *name; /* JSON key and request_log column */
	enum ft_rl_type type;
	bool required;
	enum ft_rl_check check; /* text */
	const char *id_prefix; /* FT_RL_CHECK_ID */
	long long min, max; /* int, real: range; text: max bytes */
};

extern const struct ft_rl_field_def ft_reqlog_fields[FT_RL_COUNT];

/* Longest prompt or completion text kept (bytes). */
#define FT_RL_TEXT_MAX (256u << 10)
/* Widest embedding logged (floats; base64 of 4 bytes each). */
#define FT_RL_EMBEDDING_MAX 16384

union ft_rl_value {
	const char *s;
	int64_t i; /* int; time: unix ms */
	double r;
	bool b;
};

struct ft_reqlog {
	union ft_rl_value v[FT_RL_COUNT];
	bool set[FT_RL_COUNT]; /* false: null */
};

void ft_reqlog_init(struct ft_reqlog *r);
/* Set a field (the type must be the field's: an assertion). A NULL string
 * leaves the field null. */
void ft_reqlog_set_str(struct ft_reqlog *r, enum ft_rl_field f, const char *s);
void ft_reqlog_set_int(struct ft_reqlog *r, enum ft_rl_field f, int64_t v);
void ft_reqlog_set_real(struct ft_reqlog *r, enum ft_rl_field f, double v);
void ft_reqlog_set_bool(struct ft_reqlog *r, enum ft_rl_field f, bool v);

/* Does text s pass field f's check (format and length)? For a writer that
 * takes a value from outside (a header) and wants to refuse it early. */
bool ft_reqlog_text_ok(enum ft_rl_field f, const char *s);

/* The writer: the record as compact JSON (malloc'd; the caller frees), or
 * NULL with err naming the field when a required field is missing or fails
 * its check. An optional field that fails its check is left out. */
char *ft_reqlog_encode(const struct ft_reqlog *r, struct ft_err *err);

/* The reader: a decoded record (strings point into o), or FT_EINVAL naming
 * the first field that breaks the table. */
enum ft_rc ft_reqlog_decode(const json_t *o, struct ft_reqlog *out, struct ft_err *err);

/* The INSERT of n records (n >= 1) into request_log, idempotent by id:
 * "INSERT … VALUES (…), … ON CONFLICT (id) DO NOTHING", FT_RL_COUNT
 * parameters per record. */
enum ft_rc ft_reqlog_insert_sql(size_t n, struct ft_buf *sql) FT_WARN_UNUSED;
/* A record's FT_RL_COUNT parameters in text form (NULL for null), in the
 * table's order; numbers are printed into scratch. */
struct ft_rl_scratch {
	char num[FT_RL_COUNT][32];
};
void ft_reqlog_params(const struct ft_reqlog *r, struct ft_rl_scratch *scratch,
		      const char **params);

#endif
