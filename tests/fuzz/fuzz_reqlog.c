/*
 * fuzz_reqlog.c - the scheduler's reader of request log records
 * (ft_reqlog_decode, common/services/src/reqlog.c) on arbitrary bytes, as
 * they could arrive on the Redis stream ft:requests. Whatever it accepts
 * must (1) give the INSERT a parameter per field, text for every non-null
 * one, and (2) go through the writer and back to the same values: the
 * writer never refuses, cuts or changes a value the reader accepted.
 */
#include <stdlib.h>

#include "ft/json.h"
#include "ft/reqlog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ft_err e;
	ft_err_clear(&e);
	json_t *o = ft_json_parse((const char *)data, size, &e);
	if (!o)
		return 0;
	struct ft_reqlog r, back;
	if (ft_reqlog_decode(o, &r, &e) == FT_OK) {
		struct ft_rl_scratch sc;
		const char *p[FT_RL_COUNT];
		ft_reqlog_params(&r, &sc, p);
		for (int f = 0; f < FT_RL_COUNT; f++)
			FT_ASSERT((p[f] != NULL) == r.set[f]);
		char *s = ft_reqlog_encode(&r, &e);
		FT_ASSERT(s != NULL);
		json_t *o2 = json_loads(s, 0, NULL);
		FT_ASSERT(o2 != NULL);
		FT_ASSERT(ft_reqlog_decode(o2, &back, &e) == FT_OK);
		for (int f = 0; f < FT_RL_COUNT; f++) {
			FT_ASSERT(back.set[f] == r.set[f]);
			if (!r.set[f])
				continue;
			switch (ft_reqlog_fields[f].type) {
			case FT_RL_TEXT: FT_ASSERT(strcmp(back.v[f].s, r.v[f].s) == 0); break;
			case FT_RL_INT:
			case FT_RL_TIME: FT_ASSERT(back.v[f].i == r.v[f].i); break;
			case FT_RL_REAL: FT_ASSERT(back.v[f].r == r.v[f].r); break;
			case FT_RL_BOOL: FT_ASSERT(back.v[f].b == r.v[f].b); break;
			}
		}
		json_decref(o2);
		free(s);
	}
	json_decref(o);
	return 0;
}
