/*
 * fuzz_model_config.c - config.json parsing on arbitrary text. A config that
 * parses must also survive ft_model_config_to_json and parse back to the
 * same sizes.
 */
#include "ft/model_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ft_model_config c, back;
	struct ft_buf out = FT_BUF_INIT(1 << 20);
	struct ft_err err;
	ft_err_clear(&err);
	if (ft_model_config_parse((const char *)data, size, &c, &err) != FT_OK) {
		FT_ASSERT(err.msg[0]);
		return 0;
	}
	(void)ft_model_config_param_count(&c);
	FT_ASSERT(ft_model_config_to_json(&c, &out) == FT_OK);
	{
		FT_ASSERT(ft_model_config_parse(out.ptr, out.len, &back, &err) == FT_OK);
		FT_ASSERT(back.arch == c.arch && back.hidden_size == c.hidden_size &&
			  back.num_kv_heads == c.num_kv_heads && back.head_dim == c.head_dim &&
			  back.rope_type == c.rope_type && back.n_eos == c.n_eos);
		FT_ASSERT(ft_model_config_param_count(&back) == ft_model_config_param_count(&c));
	}
	ft_buf_release(&out);
	return 0;
}
