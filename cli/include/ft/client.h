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

#endif
