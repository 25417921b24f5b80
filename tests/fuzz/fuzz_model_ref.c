/*
 * fuzz_model_ref.c - what the registry reads from its callers, on arbitrary
 * bytes: a model reference (ft/modelref.h, every route and body that names a
 * model), the name a registered model gets from a suffix, a Range header
 * (api/src/artifacts.c) against a file size taken from the input, and an
 * export's options (ft/exports.h) when the input is JSON. Nothing may crash
 * or overrun, and what comes out must keep the promises of the headers.
 */
#include "../../api/src/api_int.h"
#include "ft/exports.h"
#include "ft/modelref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';

	struct ft_model_ref r;
	bool bad;
	ft_model_ref_parse(s, &r, &bad);
	FT_ASSERT(strlen(r.name) < sizeof(r.name) && strlen(r.alias) < sizeof(r.alias));
	if (r.kind == FT_REF_VERSION)
		FT_ASSERT(r.version >= 1 && ft_registered_name_valid(r.name));
	if (r.kind == FT_REF_ALIAS)
		FT_ASSERT(ft_alias_valid(r.alias) && ft_registered_name_valid(r.name));
	if (r.kind == FT_REF_FT_MODEL || r.kind == FT_REF_CHECKPOINT)
		FT_ASSERT(ft_id_valid(FT_ID_JOB, r.job) && r.step >= 0 && !bad);

	char name[FT_NAME_MAX + 1];
	if (ft_registered_name_from(s, name))
		FT_ASSERT(ft_registered_name_valid(name));

	uint64_t file = 0, first = 0, last = 0;
	for (size_t i = 0; i < size && i < 8; i++)
		file = (file << 8) | data[i];
	file %= 1u << 30;
	enum api_range v = api_range_parse(s, file, &first, &last);
	if (v == API_RANGE_OK)
		FT_ASSERT(first <= last && last < file);

	json_t *o = json_loadb(s, size, JSON_DECODE_ANY, NULL);
	if (o) {
		struct ft_err e;
		ft_err_clear(&e);
		if (ft_export_options_check(ft_export_format_find("merged"), o, &e) == FT_OK)
			FT_ASSERT(!json_is_object(o) || json_object_size(o) <= 2);
		else
			FT_ASSERT(strncmp(e.param, "options", 7) == 0);
		json_decref(o);
	}
	free(s);
	return 0;
}
