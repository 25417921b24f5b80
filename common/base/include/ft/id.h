/*
 * ft/id.h - prefixed random ids, as OpenAI spells them: "ftjob-" + 24
 * base62 characters (about 143 bits). The prefix says what the id names.
 */
#ifndef FT_ID_H
#define FT_ID_H

#include "ft/base.h"

#define FT_ID_RAND_LEN 24
#define FT_ID_MAX 64 /* prefix + '-' + random + NUL always fits */

/* Prefixes in use; one table so that the API can say what an id should be. */
#define FT_ID_JOB "ftjob"
#define FT_ID_FILE "file"
#define FT_ID_EVENT "ftevent"
#define FT_ID_CHECKPOINT "ftckpt"
#define FT_ID_TEAM "team"
#define FT_ID_KEY "key"
#define FT_ID_DATASET "ds"
#define FT_ID_MODEL "model"
#define FT_ID_VERSION "mv"
#define FT_ID_ENDPOINT "ep"
#define FT_ID_DEPLOYMENT "dep"
#define FT_ID_EXPERIMENT "exp"
#define FT_ID_JUDGMENT "jdg"
#define FT_ID_WEBHOOK "wh"
#define FT_ID_DELIVERY "whd"
#define FT_ID_WORKER "wrk"
#define FT_ID_ARTIFACT "art"
#define FT_ID_REGMODEL "rm"
#define FT_ID_EXPORT "ftexp"
#define FT_ID_EVAL "fteval"
#define FT_ID_REPLAY "rpl"

/* Write "<prefix>-<24 base62>" into out (FT_ID_MAX bytes). prefix must be
 * 1..32 lower-case letters. */
void ft_id_new(const char *prefix, char out[FT_ID_MAX]);

/* True when s is "<prefix>-" followed by exactly 24 base62 characters. */
bool ft_id_valid(const char *prefix, const char *s);

#endif
