/*
 * test_model_config.c - config.json parsing for Llama, Mistral and Qwen2:
 * fields and transformers' defaults, every validation error (message
 * asserted), parameter counts computed by hand (the Llama one is also what
 * transformers printed for the same config: 78144), and to_json round trips.
 */
#include <sys/stat.h>
#include <unistd.h>

#include "ftest.h"
#include "ft/model_config.h"

static enum ft_rc parse(const char *text, struct ft_model_config *c, struct ft_err *err)
{
	ft_err_clear(err);
	memset(c, 0x5a, sizeof(*c));
	return ft_model_config_parse(text, strlen(text), c, err);
}

static const char *msg_of(const char *text)
{
	static struct ft_err err;
	struct ft_model_config c;
	if (parse(text, &c, &err) == FT_OK)
		return "";
	return err.msg;
}

/* A tiny Llama as transformers 5 writes it (rope_parameters). */
static const char llama_v5[] =
	"{\"architectures\":[\"LlamaForCausalLM\"],\"attention_bias\":false,\"bos_token_id\":1,"
	"\"eos_token_id\":[1,2],\"head_dim\":16,\"hidden_act\":\"silu\",\"hidden_size\":64,"
	"\"intermediate_size\":96,\"max_position_embeddings\":2048,\"mlp_bias\":false,"
	"\"model_type\":\"llama\",\"num_attention_heads\":4,\"num_hidden_layers\":2,"
	"\"num_key_value_heads\":2,\"pad_token_id\":null,\"rms_norm_eps\":1e-05,"
	"\"rope_parameters\":{\"factor\":8.0,\"high_freq_factor\":4.0,\"low_freq_factor\":1.0,"
	"\"original_max_position_embeddings\":1024,\"rope_theta\":500000.0,\"rope_type\":"
	"\"llama3\"},"
	"\"tie_word_embeddings\":false,\"dtype\":\"bfloat16\",\"vocab_size\":128}";

FT_TEST(llama_v5_fields)
{
	struct ft_model_config c;
	struct ft_err err;
	FT_CHECK_INT(parse(llama_v5, &c, &err), FT_OK);
	FT_CHECK_INT(c.arch, FT_ARCH_LLAMA);
	FT_CHECK_STR(c.architecture, "LlamaForCausalLM");
	FT_CHECK_INT(c.vocab_size, 128);
	FT_CHECK_INT(c.hidden_size, 64);
	FT_CHECK_INT(c.intermediate_size, 96);
	FT_CHECK_INT(c.num_layers, 2);
	FT_CHECK_INT(c.num_heads, 4);
	FT_CHECK_INT(c.num_kv_heads, 2);
	FT_CHECK_INT(c.head_dim, 16);
	FT_CHECK_INT(c.max_position_embeddings, 2048);
	FT_CHECK(c.rms_norm_eps == 1e-5);
	FT_CHECK(c.rope_theta == 500000.0);
	FT_CHECK_INT(c.rope_type, FT_ROPE_LLAMA3);
	FT_CHECK(c.rope_factor == 8.0);
	FT_CHECK(c.rope_low_freq_factor == 1.0);
	FT_CHECK(c.rope_high_freq_factor == 4.0);
	FT_CHECK_INT(c.rope_original_max_pos, 1024);
	FT_CHECK(!c.tie_word_embeddings && !c.qkv_bias && !c.o_bias && !c.mlp_bias);
	FT_CHECK_INT(c.bos_token_id, 1);
	FT_CHECK_INT(c.n_eos, 2);
	FT_CHECK_INT(c.eos_token_ids[0], 1);
	FT_CHECK_INT(c.eos_token_ids[1], 2);
	FT_CHECK_INT(c.pad_token_id, -1);
	FT_CHECK_STR(c.torch_dtype, "bfloat16");
	FT_CHECK_INT(c.sliding_window, 0);
	/* embed 8192 + 2 * (q 4096 + k,v 4096 + o 4096 + mlp 18432 + norms 128)
	 * + final norm 64 + lm_head 8192; transformers: 78144. */
	FT_CHECK_INT(ft_model_config_param_count(&c), 78144);
}

FT_TEST(llama_v4_rope_scaling_and_defaults)
{
	struct ft_model_config c;
	struct ft_err err;
	/* transformers 4 shape: rope_theta + rope_scaling with the legacy
	 * "type"; absent keys take LlamaConfig's defaults. */
	FT_CHECK_INT(
		parse("{\"model_type\":\"llama\",\"vocab_size\":100,\"hidden_size\":32,"
		      "\"intermediate_size\":48,\"num_hidden_layers\":1,\"num_attention_heads\":2,"
		      "\"rope_theta\":1000000,\"rope_scaling\":{\"type\":\"linear\",\"factor\":2},"
		      "\"attention_bias\":true,\"mlp_bias\":true,\"tie_word_embeddings\":true,"
		      "\"torch_dtype\":\"float16\",\"eos_token_id\":7}",
		      &c, &err),
		FT_OK);
	FT_CHECK_STR(c.architecture, "LlamaForCausalLM");
	FT_CHECK_INT(c.num_kv_heads, 2);
	FT_CHECK_INT(c.head_dim, 16);
	FT_CHECK_INT(c.max_position_embeddings, 2048);
	FT_CHECK(c.rms_norm_eps == 1e-6);
	FT_CHECK(c.rope_theta == 1e6);
	FT_CHECK_INT(c.rope_type, FT_ROPE_LINEAR);
	FT_CHECK(c.rope_factor == 2.0);
	FT_CHECK(c.qkv_bias && c.o_bias && c.mlp_bias && c.tie_word_embeddings);
	FT_CHECK_INT(c.bos_token_id, 1);
	FT_CHECK_INT(c.n_eos, 1);
	FT_CHECK_INT(c.eos_token_ids[0], 7);
	FT_CHECK_STR(c.torch_dtype, "float16");
	/* embed 3200; layer: q 1024+32, k,v 2*(1024+32), o 1024+32,
	 * mlp 3*1536 + 2*48+32, norms 64 = 9024; final 32; tied. */
	FT_CHECK_INT(ft_model_config_param_count(&c), 3200 + 9024 + 32);
}

FT_TEST(rope_default_spellings)
{
	struct ft_model_config c;
	struct ft_err err;
	const char *base =
		"{\"model_type\":\"llama\",\"vocab_size\":8,\"hidden_size\":8,"
		"\"intermediate_size\":8,\"num_hidden_layers\":1,\"num_attention_heads\":2,";
	const char *tails[] = {
		"\"rope_scaling\":null}", "\"rope_scaling\":{\"rope_type\":\"default\"}}",
		"\"rope_parameters\":{\"rope_type\":\"default\",\"rope_theta\":5.0}}"
	};
	char text[512];
	for (size_t i = 0; i < FT_ARRAY_LEN(tails); i++) {
		snprintf(text, sizeof(text), "%s%s", base, tails[i]);
		FT_CHECK_INT(parse(text, &c, &err), FT_OK);
		FT_CHECK_INT(c.rope_type, FT_ROPE_DEFAULT);
		FT_CHECK(c.rope_theta == (i == 2 ? 5.0 : 10000.0));
	}
}

FT_TEST(mistral_defaults)
{
	struct ft_model_config c;
	struct ft_err err;
	const char *m = "{\"architectures\":[\"MistralForCausalLM\"],\"vocab_size\":128,"
			"\"hidden_size\":64,\"intermediate_size\":96,\"num_hidden_layers\":2,"
			"\"num_attention_heads\":16}";
	FT_CHECK_INT(parse(m, &c, &err), FT_OK);
	FT_CHECK_INT(c.arch, FT_ARCH_MISTRAL);
	FT_CHECK_INT(c.num_kv_heads, 8); /* MistralConfig's default, not = heads */
	FT_CHECK_INT(c.head_dim, 4);
	FT_CHECK_INT(c.max_position_embeddings, 131072);
	FT_CHECK_INT(c.sliding_window, 4096);
	FT_CHECK_INT(c.bos_token_id, 1);
	FT_CHECK_INT(c.n_eos, 1);
	FT_CHECK_INT(c.eos_token_ids[0], 2);
	FT_CHECK(!c.qkv_bias && !c.o_bias);
	FT_CHECK_INT(
		parse("{\"model_type\":\"mistral\",\"vocab_size\":128,\"hidden_size\":64,"
		      "\"intermediate_size\":96,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
		      "\"num_key_value_heads\":null,\"sliding_window\":null,\"head_dim\":null,"
		      "\"eos_token_id\":null,\"bos_token_id\":null}",
		      &c, &err),
		FT_OK);
	FT_CHECK_INT(c.num_kv_heads, 4);
	FT_CHECK_INT(c.head_dim, 16);
	FT_CHECK_INT(c.sliding_window, 0);
	FT_CHECK_INT(c.bos_token_id, -1);
	FT_CHECK_INT(c.n_eos, 0);
}

FT_TEST(qwen2_bias_tied)
{
	struct ft_model_config c;
	struct ft_err err;
	FT_CHECK_INT(
		parse("{\"architectures\":[\"Qwen2ForCausalLM\"],\"model_type\":\"qwen2\","
		      "\"vocab_size\":128,\"hidden_size\":64,\"intermediate_size\":96,"
		      "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
		      "\"tie_word_embeddings\":true,\"use_sliding_window\":false,"
		      "\"sliding_window\":4096,\"rope_theta\":1000000.0}",
		      &c, &err),
		FT_OK);
	FT_CHECK_INT(c.arch, FT_ARCH_QWEN2);
	FT_CHECK(c.qkv_bias && !c.o_bias && !c.mlp_bias && c.tie_word_embeddings);
	FT_CHECK_INT(c.max_position_embeddings, 32768);
	FT_CHECK_INT(c.bos_token_id, -1);
	FT_CHECK_INT(c.n_eos, 0);
	FT_CHECK_INT(c.sliding_window, 0);
	/* 78144 - lm_head 8192 + 2 layers * (q bias 64 + k,v bias 64). */
	FT_CHECK_INT(ft_model_config_param_count(&c), 78144 - 8192 + 2 * 128);
	/* Qwen2Config's default of 32 kv heads does not divide 4 heads. */
	FT_CHECK_STR(msg_of("{\"model_type\":\"qwen2\",\"vocab_size\":128,\"hidden_size\":64,"
			    "\"intermediate_size\":96,\"num_hidden_layers\":2,\"num_attention_"
			    "heads\":4}"),
		     "config.json: \"num_attention_heads\" (4) is not a multiple of "
		     "\"num_key_value_heads\" (32)");
}

#define OK_PREFIX \
	"\"vocab_size\":8,\"hidden_size\":8,\"intermediate_size\":8,\"num_hidden_layers\":1,"

FT_TEST(errors)
{
	FT_CHECK_STR(msg_of("{\"architectures\":[\"GPT2LMHeadModel\"]}"),
		     "config.json: unsupported architecture \"GPT2LMHeadModel\" (supported: "
		     "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)");
	FT_CHECK_STR(
		msg_of("{\"model_type\":\"gpt2\"}"),
		"config.json: unsupported model_type \"gpt2\" (supported: llama, mistral, qwen2)");
	FT_CHECK_STR(
		msg_of("{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"mistral\"}"),
		"config.json: \"model_type\" is \"mistral\" but architecture \"LlamaForCausalLM\" "
		"needs \"llama\"");
	FT_CHECK_STR(msg_of("{}"), "config.json: \"architectures\" or \"model_type\" is required");
	FT_CHECK_STR(msg_of("[]"), "config.json: must be a JSON object (got list)");
	FT_CHECK_STR(msg_of("{\"architectures\":[7]}"),
		     "config.json: \"architectures\"[0] must be a string (got integer)");
	FT_CHECK_STR(msg_of("{\"model_type\":\"llama\",\"vocab_size\":8}"),
		     "config.json: \"hidden_size\" is required");
	FT_CHECK_STR(msg_of("{\"model_type\":\"llama\",\"vocab_size\":\"8\"}"),
		     "config.json: \"vocab_size\" must be an integer (got string)");
	FT_CHECK_STR(msg_of("{\"model_type\":\"llama\",\"vocab_size\":0}"),
		     "config.json: \"vocab_size\" must be between 1 and 16777216 (got 0)");
	FT_CHECK_STR(
		msg_of("{\"model_type\":\"llama\"," OK_PREFIX "\"num_attention_heads\":3}"),
		"config.json: \"hidden_size\" (8) is not divisible by \"num_attention_heads\" (3)");
	FT_CHECK_STR(msg_of("{\"model_type\":\"llama\"," OK_PREFIX "\"num_attention_heads\":4,"
			    "\"num_key_value_heads\":3}"),
		     "config.json: \"num_attention_heads\" (4) is not a multiple of "
		     "\"num_key_value_heads\" (3)");
	FT_CHECK_STR(msg_of("{\"model_type\":\"llama\"," OK_PREFIX "\"num_attention_heads\":2,"
			    "\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4}}"),
		     "config.json: unsupported rope_scaling type \"yarn\" (supported: default, "
		     "linear, llama3)");
	FT_CHECK_STR(msg_of("{\"model_type\":\"llama\"," OK_PREFIX "\"num_attention_heads\":2,"
			    "\"rope_parameters\":{\"rope_type\":\"dynamic\",\"factor\":4}}"),
		     "config.json: unsupported rope_parameters type \"dynamic\" (supported: "
		     "default, linear, llama3)");
	FT_CHECK_STR(msg_of("{\"model_type\":\"llama\"," OK_PREFIX "\"num_attention_heads\":2,"
			    "\"rope_scaling\":{\"type\":\"llama3\",\"factor\":8,\"low_freq_"
			    "factor\":1}}"),
		     "config.json: \"rope_scaling\": \"high_freq_factor\" is required");
	FT_CHECK_STR(
		msg_of("{\"model_type\":\"llama\"," OK_PREFIX "\"num_attention_heads\":2,"
		       "\"rope_scaling\":{\"type\":\"llama3\",\"factor\":8,\"low_freq_factor\":4,"
		       "\"high_freq_factor\":1,\"original_max_position_embeddings\":8192}}"),
		"config.json: \"rope_scaling\": high_freq_factor (1) must be greater than "
		"low_freq_factor (4)");
	FT_CHECK_STR(msg_of("{\"model_type\":\"llama\"," OK_PREFIX "\"num_attention_heads\":2,"
			    "\"rope_scaling\":{\"type\":\"linear\"}}"),
		     "config.json: \"rope_scaling\": \"factor\" is required");
	FT_CHECK_STR(msg_of("{\"model_type\":\"llama\"," OK_PREFIX "\"num_attention_heads\":2,"
			    "\"rope_scaling\":\"linear\"}"),
		     "config.json: \"rope_scaling\" must be an object (got string)");
	FT_CHECK_STR(msg_of("{\"model_type\":\"llama\"," OK_PREFIX "\"num_attention_heads\":2,"
			    "\"hidden_act\":\"gelu\"}"),
		     "config.json: unsupported \"hidden_act\" \"gelu\" (supported: silu)");
	FT_CHECK_STR(msg_of("{\"model_type\":\"llama\"," OK_PREFIX "\"num_attention_heads\":2,"
			    "\"eos_token_id\":[1,2,3,4,5,6,7,8,9]}"),
		     "config.json: \"eos_token_id\" lists 9 ids (at most 8 are supported)");
	FT_CHECK_STR(msg_of("{\"model_type\":\"llama\"," OK_PREFIX "\"num_attention_heads\":2,"
			    "\"eos_token_id\":[1,\"2\"]}"),
		     "config.json: \"eos_token_id\"[1] must be a non-negative integer");
	FT_CHECK_STR(msg_of("{\"model_type\":\"llama\"," OK_PREFIX "\"num_attention_heads\":2,"
			    "\"eos_token_id\":\"2\"}"),
		     "config.json: \"eos_token_id\" must be an integer or a list of integers (got "
		     "string)");
	FT_CHECK_STR(
		msg_of("{\"model_type\":\"qwen2\"," OK_PREFIX "\"num_attention_heads\":2,"
		       "\"num_key_value_heads\":2,\"use_sliding_window\":true}"),
		"config.json: \"use_sliding_window\": true is not supported (set it to false)");
	FT_CHECK_STR(msg_of("{\"model_type\":\"llama\"," OK_PREFIX "\"num_attention_heads\":2,"
			    "\"torch_dtype\":\"Float 32\"}"),
		     "config.json: \"torch_dtype\" \"Float 32\" is not a dtype name");
	FT_CHECK_STR(
		msg_of("{\"model_type\":\"llama\",}"),
		"config.json: invalid JSON at line 1, column 23: string or '}' expected near '}'");
}

static void check_same(int *ftest_failed, const struct ft_model_config *a,
		       const struct ft_model_config *b)
{
	FT_CHECK_INT(a->arch, b->arch);
	FT_CHECK_STR(a->architecture, b->architecture);
	FT_CHECK_INT(a->vocab_size, b->vocab_size);
	FT_CHECK_INT(a->hidden_size, b->hidden_size);
	FT_CHECK_INT(a->intermediate_size, b->intermediate_size);
	FT_CHECK_INT(a->num_layers, b->num_layers);
	FT_CHECK_INT(a->num_heads, b->num_heads);
	FT_CHECK_INT(a->num_kv_heads, b->num_kv_heads);
	FT_CHECK_INT(a->head_dim, b->head_dim);
	FT_CHECK_INT(a->max_position_embeddings, b->max_position_embeddings);
	FT_CHECK(a->rms_norm_eps == b->rms_norm_eps);
	FT_CHECK(a->rope_theta == b->rope_theta);
	FT_CHECK_INT(a->rope_type, b->rope_type);
	if (a->rope_type != FT_ROPE_DEFAULT)
		FT_CHECK(a->rope_factor == b->rope_factor);
	if (a->rope_type == FT_ROPE_LLAMA3) {
		FT_CHECK(a->rope_low_freq_factor == b->rope_low_freq_factor);
		FT_CHECK(a->rope_high_freq_factor == b->rope_high_freq_factor);
		FT_CHECK_INT(a->rope_original_max_pos, b->rope_original_max_pos);
	}
	FT_CHECK_INT(a->tie_word_embeddings, b->tie_word_embeddings);
	FT_CHECK_INT(a->qkv_bias, b->qkv_bias);
	FT_CHECK_INT(a->o_bias, b->o_bias);
	FT_CHECK_INT(a->mlp_bias, b->mlp_bias);
	FT_CHECK_INT(a->bos_token_id, b->bos_token_id);
	FT_CHECK_INT(a->n_eos, b->n_eos);
	for (int i = 0; i < a->n_eos; i++)
		FT_CHECK_INT(a->eos_token_ids[i], b->eos_token_ids[i]);
	FT_CHECK_INT(a->pad_token_id, b->pad_token_id);
	FT_CHECK_STR(a->torch_dtype, b->torch_dtype);
	FT_CHECK_INT(a->sliding_window, b->sliding_window);
}

FT_TEST(to_json_round_trip)
{
	const char *texts[] = {
		llama_v5,
		"{\"model_type\":\"mistral\",\"vocab_size\":128,\"hidden_size\":64,"
		"\"intermediate_size\":96,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
		"\"num_key_value_heads\":1,\"pad_token_id\":0,\"rms_norm_eps\":0.1}",
		"{\"model_type\":\"qwen2\",\"vocab_size\":128,\"hidden_size\":64,\"head_dim\":32,"
		"\"intermediate_size\":96,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
		"\"num_key_value_heads\":4,\"tie_word_embeddings\":true,\"eos_token_id\":[3,4,5],"
		"\"rope_scaling\":{\"type\":\"linear\",\"factor\":1.5}}",
	};
	for (size_t i = 0; i < FT_ARRAY_LEN(texts); i++) {
		struct ft_model_config a, b;
		struct ft_buf out = FT_BUF_INIT(1 << 16);
		struct ft_err err;
		FT_CHECK_INT(parse(texts[i], &a, &err), FT_OK);
		FT_CHECK_INT(ft_model_config_to_json(&a, &out), FT_OK);
		FT_CHECK_INT(parse(ft_buf_str(&out), &b, &err), FT_OK);
		check_same(ftest_failed, &a, &b);
		if (*ftest_failed)
			return;
		ft_buf_release(&out);
	}
}

FT_TEST(to_json_text)
{
	struct ft_model_config c;
	struct ft_buf out = FT_BUF_INIT(1 << 16);
	struct ft_err err;
	FT_CHECK_INT(parse(llama_v5, &c, &err), FT_OK);
	FT_CHECK_INT(ft_model_config_to_json(&c, &out), FT_OK);
	FT_CHECK_STR(
		ft_buf_str(&out),
		"{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"model_type\": \"llama\",\n"
		"  \"vocab_size\": 128,\n  \"hidden_size\": 64,\n  \"intermediate_size\": 96,\n"
		"  \"num_hidden_layers\": 2,\n  \"num_attention_heads\": 4,\n"
		"  \"num_key_value_heads\": 2,\n  \"head_dim\": 16,\n"
		"  \"max_position_embeddings\": 2048,\n  \"hidden_act\": \"silu\",\n"
		"  \"rms_norm_eps\": 1e-05,\n  \"rope_theta\": 500000.0,\n"
		"  \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0, "
		"\"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
		"\"original_max_position_embeddings\": 1024},\n"
		"  \"tie_word_embeddings\": false,\n  \"attention_bias\": false,\n"
		"  \"mlp_bias\": false,\n  \"bos_token_id\": 1,\n  \"eos_token_id\": [1, 2],\n"
		"  \"pad_token_id\": null,\n  \"torch_dtype\": \"bfloat16\"\n}\n");
	ft_buf_release(&out);
	/* A Mistral cannot carry biases. */
	c.arch = FT_ARCH_MISTRAL;
	c.qkv_bias = c.o_bias = true;
	FT_CHECK_INT(ft_model_config_to_json(&c, &out), FT_EINVAL);
	ft_buf_release(&out);
}

FT_TEST(load_from_folder)
{
	char dir[256], path[512];
	struct ft_model_config c;
	struct ft_err err;
	const char *base = getenv("TMPDIR");
	snprintf(dir, sizeof(dir), "%s/ftcfg-XXXXXX", base && base[0] ? base : "/tmp");
	FT_ASSERT(mkdtemp(dir));
	ft_err_clear(&err);
	FT_CHECK_INT(ft_model_config_load(dir, &c, &err), FT_ENOTFOUND);
	snprintf(path, sizeof(path), "%s/config.json", dir);
	FILE *f = fopen(path, "w");
	FT_ASSERT(f);
	fputs("{\"architectures\":[\"GPT2LMHeadModel\"]}", f);
	fclose(f);
	ft_err_clear(&err);
	FT_CHECK_INT(ft_model_config_load(dir, &c, &err), FT_EINVAL);
	FT_CHECK_STR(err.msg,
		     "config.json: unsupported architecture \"GPT2LMHeadModel\" (supported: "
		     "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)");
	f = fopen(path, "w");
	FT_ASSERT(f);
	fputs(llama_v5, f);
	fclose(f);
	ft_err_clear(&err);
	FT_CHECK_INT(ft_model_config_load(dir, &c, &err), FT_OK);
	FT_CHECK_INT(c.vocab_size, 128);
	unlink(path);
	rmdir(dir);
}

FT_TEST_MAIN()
