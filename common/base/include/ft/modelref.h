/*
 * ft/modelref.h - how a model is named wherever one is named (a job's
 * "model", an export, GET /v1/models/{model}, a deployment): one
 * grammar, parsed here (modelref.c) and resolved against the database by
 * ft-api's one resolver (api/src/resolve.c).
 *
 * | form                     | names                                               |
 * |--------------------------|-----------------------------------------------------|
 * | ft:BASE:JOB              | the model job JOB made (OpenAI's fine_tuned_model)  |
 * | ft:BASE:JOB:ckpt-step-N  | the checkpoint of job JOB at step N                 |
 * | NAME@ALIAS               | the version ALIAS of registered model NAME points   |
 * |                          | at; NAME@latest is its highest version              |
 * | NAME/N                   | version N of registered model NAME                  |
 * | anything else            | a base model, by its name                           |
 *
 * NAME is a registered model's name, [A-Za-z0-9][A-Za-z0-9._-]{0,127};
 * ALIAS is [a-z][a-z0-9_-]{0,63}; JOB is an ftjob- id; BASE is the base
 * model's name (which may itself contain ':'). A base model whose name is
 * exactly the string wins over the registry forms: base names are free text
 * chosen by admins ("org/model"), and whatever named a base model before
 * still names it.
 */
#ifndef FT_MODELREF_H
#define FT_MODELREF_H

#include "ft/base.h"
#include "ft/id.h"

#define FT_NAME_MAX 128 /* a registered model's name */
#define FT_ALIAS_MAX 64

enum ft_ref_kind {
	FT_REF_BASE = 0, /* a base model's name (or nothing this grammar knows) */
	FT_REF_FT_MODEL, /* ft:BASE:JOB */
	FT_REF_CHECKPOINT, /* ft:BASE:JOB:ckpt-step-N */
	FT_REF_ALIAS, /* NAME@ALIAS */
	FT_REF_VERSION, /* NAME/N */
};

struct ft_model_ref {
	enum ft_ref_kind kind;
	char name[260]; /* NAME, or BASE of the ft: forms */
	char job[FT_ID_MAX];
	char alias[FT_ALIAS_MAX + 1];
	long version; /* FT_REF_VERSION: >= 1 */
	long step; /* FT_REF_CHECKPOINT: >= 0 */
};

/* Parse s into *out. A string that starts with "ft:" but is not one of its
 * two forms, or an @ / form with a bad alias or number, is FT_REF_BASE with
 * *malformed set (callers then say why no model matched). */
void ft_model_ref_parse(const char *s, struct ft_model_ref *out, bool *malformed);
bool ft_registered_name_valid(const char *s);
bool ft_alias_valid(const char *s);
/* The registered model a job's version goes to when the job names none:
 * its suffix, else its base model's name, made a valid NAME (characters
 * outside [A-Za-z0-9._-] become '-', leading ones that cannot start a name
 * go, at most 128 kept). False when nothing is left. */
bool ft_registered_name_from(const char *s, char out[FT_NAME_MAX + 1]);
/* "ft:BASE:JOB" (the fine-tuned model's name), and with ":ckpt-step-N". */
void ft_model_ref_ft_name(const char *base, const char *job, char *out, size_t n);
void ft_model_ref_ckpt_name(const char *base, const char *job, long step, char *out, size_t n);

#endif
