/*
 * fuzz_experiment_spec.c - what ft-serve reads from POST /v1/load_experiment
 * (ft/experiment.h's routing object) on arbitrary bytes: parsed, and when
 * accepted, written back and parsed again to the same object, and routed
 * for a user and a request id (an arm in range, or -1). Nothing may crash,
 * read out of bounds or leak.
 */
#include <stdlib.h>
#include <string.h>

#include "ft/experiment.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *o = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (!o)
		return 0;
	struct ft_exp_spec s, t;
	struct ft_err err;
	ft_err_clear(&err);
	if (ft_experiment_spec_parse(o, &s, &err) == FT_OK) {
		json_t *back = ft_experiment_spec_json(&s);
		ft_err_clear(&err);
		FT_ASSERT(ft_experiment_spec_parse(back, &t, &err) == FT_OK);
		json_t *again = ft_experiment_spec_json(&t);
		FT_ASSERT(json_equal(back, again));
		json_decref(again);
		json_decref(back);
		bool counted;
		int arm = ft_experiment_spec_route(&s, "user", "chatcmpl-x", &counted);
		FT_ASSERT(arm >= -1 && arm < s.n);
		FT_ASSERT(!counted || s.status == FT_EXP_RUNNING);
	} else {
		FT_ASSERT(err.code[0]);
	}
	json_decref(o);
	return 0;
}
