/*
 * ft/client.h - the public client of the ftplat REST API (libcurl + Jansson).
 * ftctl is built only on this header, as curl's tool is built only on libcurl.
 *
 * Every call returns FT_OK for a 2xx answer (its JSON in *out, owned by the
 * caller) and otherwise fills err from the API's error object
 * {"error": {"type", "code", "message", "param", "line"}}: err->msg is the
 * API's message, err->code its code, err->param and err->line as given.
 * A transport failure or a 5xx is FT_EUNAVAIL.
 */
#ifndef FT_CLIENT_H
#define FT_CLIENT_H

#include <jansson.h>

#include "ft/common.h"

struct ft_client;

struct ft_client *ft_client_new(const char *base_url, const char *api_key, struct ft_err *err);
void ft_client_free(struct ft_client *c);

/* method: GET, POST, DELETE. body may be NULL. *status gets the HTTP status. */
enum ft_rc ft_client_call(struct ft_client *c, const char *method, const char *path, json_t *body,
			  json_t **out, long *status, struct ft_err *err);
/* POST /v1/files as multipart (file + purpose), streamed from disk. */
enum ft_rc ft_client_upload(struct ft_client *c, const char *file, const char *purpose,
			    json_t **out, struct ft_err *err);
/* GET path, writing the raw body to f. */
enum ft_rc ft_client_download(struct ft_client *c, const char *path, FILE *f, struct ft_err *err);
/* GET path into the file `dest` of expected size bytes and SHA-256 (hex):
 * a shorter file already there is resumed with a Range request (and
 * If-Range: its ETag, the SHA-256), a complete one is kept; the result is
 * checked against sha256 and removed when it does not match. *fetched gets
 * the bytes transferred now. */
enum ft_rc ft_client_download_file(struct ft_client *c, const char *path, const char *dest,
				   uint64_t size, const char *sha256, uint64_t *fetched,
				   struct ft_err *err);

/* ---- server-sent events (text/event-stream) ---------------------------
 * The parser follows the WHATWG format: lines end with CRLF, LF or CR (also
 * split across feeds); "field: value"; a blank line dispatches the event;
 * ":" starts a comment (heartbeats). data lines are joined with "\n"; the
 * event name defaults to "message"; the id is kept across events (as the
 * spec says) unless a value holds NUL. A line longer than
 * FT_SSE_LINE_MAX or an event's data over FT_SSE_DATA_MAX is FT_ELIMIT.
 * The strings of an event are the parser's, valid during the callback. */
#define FT_SSE_LINE_MAX (1u << 20)
#define FT_SSE_DATA_MAX (16u << 20)

struct ft_sse_event {
	const char *event; /* "message" unless named */
	const char *id; /* the last id seen, "" when none */
	const char *data;
	size_t data_len;
};

/* Return true to stop (the rest of what was fed is not parsed). */
typedef bool (*ft_sse_fn)(const struct ft_sse_event *ev, void *ud);

struct ft_sse_parser {
	struct ft_buf line, data;
	char event[64], id[256];
	bool has_data, after_cr, stopped;
	long retry_ms; /* the last "retry:" value, -1 when none */
};

void ft_sse_init(struct ft_sse_parser *p);
void ft_sse_release(struct ft_sse_parser *p);
/* FT_OK (p->stopped tells whether fn stopped it) or FT_ELIMIT. */
enum ft_rc ft_sse_feed(struct ft_sse_parser *p, const char *buf, size_t n, ft_sse_fn fn, void *ud);

/* GET path with Accept: text/event-stream (and Last-Event-ID when given),
 * each event to fn until the server ends the response or fn stops it.
 * FT_OK then; an HTTP error is the API's error as for ft_client_call. */
enum ft_rc ft_client_stream(struct ft_client *c, const char *path, const char *last_event_id,
			    ft_sse_fn fn, void *ud, struct ft_err *err);
/* POST path with a JSON body, the answer read as an event stream (an
 * OpenAI-compatible server's "stream": true), each event to fn. */
enum ft_rc ft_client_stream_post(struct ft_client *c, const char *path, json_t *body, ft_sse_fn fn,
				 void *ud, struct ft_err *err);

/* ---- OpenAI's chat stream ----------------------------------------------
 * One event's data of POST /v1/chat/completions with "stream": true: a
 * chat.completion.chunk whose choices[0].delta.content (if any) is
 * appended to text, or "[DONE]" (*done set). An {"error": {...}} event is
 * FT_EUNAVAIL with its message; anything else that is not a chunk is
 * FT_EFORMAT. The text appended is what the server sent, UTF-8 checked by
 * Jansson. */
enum ft_rc ft_chat_chunk_parse(const char *data, size_t n, struct ft_buf *text, bool *done,
			       struct ft_err *err);

#endif
