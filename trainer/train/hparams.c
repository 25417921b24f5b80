/*
 * hparams.c - the hyperparameters of a training job: ONE table, read by the
 * trainer's job parser (train_job.c), by ft-api when a job is created (so a
 * job the API accepts never fails in the trainer on one of them), and shown
 * to users (GET /v1/fine_tuning/hyperparameters: the console's form, ftctl).
 *
 * The table itself is hparams.def (one row per hyperparameter: name, type,
 * range, the objective it goes with, "auto", default, a one-line help).
 *
 * Errors name the field in err->param (prefix.name) and the key in the
 * message: "beta" must be between 1e-06 and 2 (got 5); codes invalid_type,
 * invalid_value, out_of_range, unknown_field.
 */
#include "ft/train.h"

static const char *const schedulers[] = { "linear", "cosine", "constant", "constant_with_warmup",
					  NULL };
static const char *const base_dtypes[] = { "fp32", "bf16", NULL };

const struct ft_hparam ft_hparams[] = {
#define FT_HP(name, kind, min, max, flags, choices, def, help) \
	{ name, FT_HP_##kind, min, max, flags, choices, def, help },
#include "hparams.def"
#undef FT_HP
};
const size_t ft_n_hparams = FT_ARRAY_LEN(ft_hparams);

const struct ft_hparam *ft_hparam_find(const char *name)
{
	for (size_t i = 0; name && i < ft_n_hparams; i++)
		if (strcmp(ft_hparams[i].name, name) == 0)
			return &ft_hparams[i];
	return NULL;
}

static const char *const kind_names[] = {
	[FT_HP_INT] = "an integer",	[FT_HP_NUM] = "a number",
	[FT_HP_BOOL] = "true or false", [FT_HP_BOOL_OR_INT] = "true, false or a layer interval",
	[FT_HP_CHOICE] = "a string",
};

static bool type_ok(const struct ft_hparam *h, const json_t *v)
{
	switch (h->kind) {
	case FT_HP_INT: return json_is_integer(v);
	case FT_HP_NUM: return json_is_number(v);
	case FT_HP_BOOL: return json_is_boolean(v);
	case FT_HP_BOOL_OR_INT: return json_is_boolean(v) || json_is_integer(v);
	default: return json_is_string(v);
	}
}

/* err->param = prefix.name */
static enum ft_rc fail_param(struct ft_err *err, const char *prefix, const char *name)
{
	char p[160];
	snprintf(p, sizeof p, "%s%s%s", prefix ? prefix : "", prefix && *prefix ? "." : "", name);
	ft_err_param(err, p);
	return FT_EINVAL;
}

enum ft_rc ft_hparam_check(const char *name, const json_t *v, bool dpo, const char *prefix,
			   struct ft_err *err)
{
	const struct ft_hparam *h = ft_hparam_find(name);
	if (!h) {
		ft_failf(err, FT_EINVAL, "unknown_field", "unknown field \"%s\"", name);
		return fail_param(err, prefix, name);
	}
	if (!v || json_is_null(v))
		return FT_OK;
	if ((h->flags & FT_HP_DPO) && !dpo) {
		ft_failf(err, FT_EINVAL, "unknown_field",
			 "\"%s\" is a DPO hyperparameter (method \"dpo\"): remove it", name);
		return fail_param(err, prefix, name);
	}
	if ((h->flags & FT_HP_SFT) && dpo) {
		ft_failf(err, FT_EINVAL, "unknown_field",
			 "\"%s\" does not go with DPO (each pair is scored as two whole "
			 "sequences): remove it",
			 name);
		return fail_param(err, prefix, name);
	}
	if ((h->flags & FT_HP_AUTO) && json_is_string(v) &&
	    strcmp(json_string_value(v), "auto") == 0)
		return FT_OK;
	if (!type_ok(h, v)) {
		ft_failf(err, FT_EINVAL, "invalid_type", "\"%s\" must be %s%s (got %s)", name,
			 h->flags & FT_HP_AUTO ? "\"auto\" or " : "", kind_names[h->kind],
			 ft_json_type_name(v));
		return fail_param(err, prefix, name);
	}
	if (h->kind == FT_HP_CHOICE) {
		for (const char *const *c = h->choices; *c; c++)
			if (strcmp(*c, json_string_value(v)) == 0)
				return FT_OK;
		char all[256];
		size_t n = 0;
		for (const char *const *c = h->choices; *c && n < sizeof all; c++)
			n += (size_t)snprintf(all + n, sizeof all - n, "%s%s",
					      c == h->choices ? "" : ", ", *c);
		ft_failf(err, FT_EINVAL, "invalid_value",
			 "\"%s\" must be one of %s (got \"%.64s\")", name, all,
			 json_string_value(v));
		return fail_param(err, prefix, name);
	}
	if (json_is_boolean(v))
		return FT_OK;
	double x = json_number_value(v);
	if (!(x >= h->min && x <= h->max)) {
		ft_failf(err, FT_EINVAL, "out_of_range",
			 "\"%s\" must be between %g and %g (got %g)", name, h->min, h->max, x);
		return fail_param(err, prefix, name);
	}
	return FT_OK;
}

enum ft_rc ft_hparams_check(json_t *hp, bool dpo, const char *prefix, struct ft_err *err)
{
	if (!json_is_object(hp)) {
		ft_failf(err, FT_EINVAL, "invalid_type", "\"%s\" must be an object (got %s)",
			 prefix ? prefix : "hyperparameters", ft_json_type_name(hp));
		ft_err_param(err, prefix ? prefix : "hyperparameters");
		return FT_EINVAL;
	}
	const char *k;
	json_t *v;
	json_object_foreach(hp, k, v)
	{
		enum ft_rc rc = ft_hparam_check(k, v, dpo, prefix, err);
		if (rc)
			return rc;
	}
	return FT_OK;
}

json_t *ft_hparams_json(void)
{
	static const char *const kinds[] = {
		[FT_HP_INT] = "integer",   [FT_HP_NUM] = "number",
		[FT_HP_BOOL] = "boolean",  [FT_HP_BOOL_OR_INT] = "boolean_or_integer",
		[FT_HP_CHOICE] = "choice",
	};
	json_t *a = json_array();
	for (size_t i = 0; i < ft_n_hparams; i++) {
		const struct ft_hparam *h = &ft_hparams[i];
		if (h->flags & FT_HP_ALIAS)
			continue;
		json_t *o = json_pack("{s:s, s:s, s:b, s:s, s:s}", "name", h->name, "type",
				      kinds[h->kind], "auto", (h->flags & FT_HP_AUTO) != 0,
				      "default", h->default_text, "description", h->help);
		if (h->flags & (FT_HP_DPO | FT_HP_SFT)) /* only for one method */
			json_object_set_new(
				o, "method",
				json_string(h->flags & FT_HP_DPO ? "dpo" : "supervised"));
		if (h->kind == FT_HP_INT || h->kind == FT_HP_NUM || h->kind == FT_HP_BOOL_OR_INT) {
			json_object_set_new(o, "minimum", json_real(h->min));
			json_object_set_new(o, "maximum", json_real(h->max));
		}
		if (h->kind == FT_HP_CHOICE) {
			json_t *c = json_array();
			for (const char *const *s = h->choices; *s; s++)
				json_array_append_new(c, json_string(*s));
			json_object_set_new(o, "choices", c);
		}
		json_array_append_new(a, o);
	}
	return a;
}
