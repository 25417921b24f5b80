/*
 * fuzz_peft_config.c - a PEFT adapter_config.json on arbitrary text (what
 * ft-serve, init_adapter and ft-train read from a folder given to them): it
 * must never crash, a refusal always says why, and an accepted config is
 * one an adapter can be built from.
 */
#include "ft/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ft_lora_config lc;
	struct ft_err err;
	ft_err_clear(&err);
	if (ft_peft_config_parse((const char *)data, size, &lc, &err) != FT_OK) {
		FT_ASSERT(err.msg[0]);
		return 0;
	}
	FT_ASSERT(lc.r >= 1 && lc.r <= 4096 && lc.dropout >= 0 && lc.dropout < 1);
	FT_ASSERT(!lc.some_layers || ft_lora_layer_count(&lc, FT_MAX_LAYERS) >= 1);
	json_t *layers = ft_lora_layers_json(&lc);
	FT_ASSERT(layers && (lc.some_layers ? json_is_array(layers) : json_is_null(layers)));
	json_decref(layers);
	return 0;
}
