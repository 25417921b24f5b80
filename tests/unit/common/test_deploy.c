/*
 * test_deploy.c - ft/deploy.h: the kinds and states tables, lora_path's
 * store references, and the readers of what endpoints answer, on answers
 * as ft-serve, vLLM (its OpenAI server's models list and error body, from
 * vLLM's protocol) and FastAPI write them.
 */
#include "ft/deploy.h"
#include "ftest.h"

FT_TEST(kinds_and_states)
{
	FT_CHECK(ft_n_endpoint_kinds == 3);
	FT_CHECK(ft_endpoint_kind_find("ftserve")->store_refs);
	FT_CHECK(!ft_endpoint_kind_find("vllm")->store_refs);
	FT_CHECK(ft_endpoint_kind_find("vllm")->drive == FT_DRIVE_LORA_ROUTES);
	FT_CHECK(ft_endpoint_kind_find("llamacpp")->drive == FT_DRIVE_GGUF_EXPORTS);
	FT_CHECK_STR(ft_endpoint_kind_find("llamacpp")->probe, "/health");
	FT_CHECK(ft_endpoint_kind_find("ft-serve") == NULL && ft_endpoint_kind_find(NULL) == NULL);
	FT_CHECK(ft_deployment_state_valid("ready") && !ft_deployment_state_valid("active"));
}

FT_TEST(store_refs)
{
	char hex[65];
	const char *h = "46f62f2be1d8cb06b0ba9f21e9268af79fbd2ad9bdd1df549c46745dd4b60b00";
	char ok[128];
	snprintf(ok, sizeof ok, "store:sha256:%s", h);
	FT_CHECK(ft_store_ref_parse(ok, hex));
	FT_CHECK_STR(hex, h);
	FT_CHECK(!ft_store_ref_parse("/srv/adapters/a1", hex));
	FT_CHECK(!ft_store_ref_parse(
		"store:sha256:46F62f2be1d8cb06b0ba9f21e9268af79fbd2ad9bdd1df549c"
		"46745dd4b60b00",
		hex));
	FT_CHECK(!ft_store_ref_parse("store:sha256:46f6", hex));
	char longer[130];
	snprintf(longer, sizeof longer, "%s0", ok);
	FT_CHECK(!ft_store_ref_parse(longer, hex));
}

FT_TEST(models_lists)
{
	/* vLLM's /v1/models with a LoRA (its ModelCard: root, parent, permission) */
	const char *vllm =
		"{\"object\":\"list\",\"data\":[{\"id\":\"meta-llama/Llama-3.1-8B\","
		"\"object\":\"model\",\"created\":1,\"owned_by\":\"vllm\",\"root\":\"x\","
		"\"parent\":null,\"max_model_len\":8192,\"permission\":[]},{\"id\":\"sql\","
		"\"object\":\"model\",\"root\":\"/a/sql\",\"parent\":\"meta-llama/"
		"Llama-3.1-8B\"}]}";
	char **names;
	size_t n;
	struct ft_err e;
	ft_err_clear(&e);
	FT_CHECK(ft_endpoint_models_parse(vllm, strlen(vllm), &names, &n, &e) == FT_OK);
	FT_CHECK(n == 2);
	FT_CHECK_STR(names[0], "meta-llama/Llama-3.1-8B");
	FT_CHECK_STR(names[1], "sql");
	ft_endpoint_models_free(names, n);
	const char *bad[] = { "",
			      "{}",
			      "{\"data\":{}}",
			      "{\"data\":[{\"id\":5}]}",
			      "{\"data\":[{\"id\":\"\"}]}",
			      "<html>502</html>" };
	for (size_t i = 0; i < FT_ARRAY_LEN(bad); i++) {
		ft_err_clear(&e);
		FT_CHECK(ft_endpoint_models_parse(bad[i], strlen(bad[i]), &names, &n, &e) ==
			 FT_EFORMAT);
		FT_CHECK(names == NULL && n == 0);
	}
}

FT_TEST(error_texts)
{
	char out[64];
	const char *openai = "{\"error\":{\"message\":\"no adapter \\\"x\\\" is loaded\","
			     "\"type\":\"not_found_error\",\"code\":\"model_not_found\"}}";
	ft_endpoint_error_text(openai, strlen(openai), out, sizeof out);
	FT_CHECK_STR(out, "no adapter \"x\" is loaded");
	const char *vllm =
		"{\"object\":\"error\",\"message\":\"The lora adapter 'sql' has already "
		"been loaded.\",\"type\":\"InvalidUserInput\",\"param\":null,\"code\":400}";
	ft_endpoint_error_text(vllm, strlen(vllm), out, sizeof out);
	FT_CHECK_STR(out, "The lora adapter 'sql' has already been loaded.");
	ft_endpoint_error_text("{\"detail\":\"Not Found\"}", 22, out, sizeof out);
	FT_CHECK_STR(out, "Not Found");
	/* not JSON: the start of the body, control bytes and broken UTF-8 as '?' */
	const char *html = "<h1>502\n\xff\xc3</h1>";
	ft_endpoint_error_text(html, strlen(html), out, sizeof out);
	FT_CHECK_STR(out, "<h1>502?"
			  "?"
			  "?</h1>"); /* (not a trigraph) */
	/* cut at a character: "é" is two bytes and does not fit in the last one */
	char small[4];
	ft_endpoint_error_text("{\"message\":\"ab\\u00e9\"}", 22, small, sizeof small);
	FT_CHECK_STR(small, "ab");
	ft_endpoint_error_text("", 0, out, sizeof out);
	FT_CHECK_STR(out, "");
}

FT_TEST_MAIN()
