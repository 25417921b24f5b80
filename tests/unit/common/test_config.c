/*
 * test_config.c - defaults < file < environment, typed validation with the
 * origin of a bad value, and docs/configuration.md listing every key.
 */
#include <stdlib.h>
#include <unistd.h>

#include "ft/config.h"
#include "ftest.h"

static char *write_tmp(const char *text)
{
	char *path = ft_xstrdup("/tmp/ftcfgXXXXXX");
	int fd = mkstemp(path);
	FT_ASSERT(fd >= 0);
	FT_ASSERT(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	return path;
}

FT_TEST(config_layers_in_order)
{
	struct ft_config cfg;
	struct ft_err e;
	char *path = write_tmp("# comment\n\nlisten_port = 9001\nstore_dir = \"/srv/ft store\"\n"
			       "log_level=debug\n");
	unsetenv("FT_CONFIG");
	unsetenv("FT_STORE_DIR");
	setenv("FT_LISTEN_PORT", "9100", 1);
	ft_err_clear(&e);
	FT_CHECK(ft_config_load(&cfg, path, &e) == FT_OK);
	FT_CHECK_INT(ft_config_int(&cfg, "listen_port"), 9100); /* env beats file */
	FT_CHECK_STR(ft_config_origin(&cfg, "listen_port"), "env FT_LISTEN_PORT");
	FT_CHECK_STR(ft_config_str(&cfg, "store_dir"), "/srv/ft store"); /* quotes stripped */
	FT_CHECK_STR(ft_config_origin(&cfg, "store_dir"), "line 4");
	FT_CHECK_STR(ft_config_str(&cfg, "log_level"), "debug");
	FT_CHECK_INT(ft_config_int(&cfg, "pg_pool_size"), 8); /* default */
	FT_CHECK(ft_config_bool(&cfg, "webhook_allow_http") == false);
	FT_CHECK(ft_config_str(&cfg, "worker_id") == NULL);
	ft_config_release(&cfg);
	unsetenv("FT_LISTEN_PORT");
	unlink(path);
	free(path);
}

FT_TEST(config_errors_name_key_and_origin)
{
	struct ft_config cfg;
	struct ft_err e;
	char *path = write_tmp("listen_port = 80\nnot_a_key = 1\n");
	ft_err_clear(&e);
	FT_CHECK(ft_config_load(&cfg, path, &e) == FT_EINVAL);
	FT_CHECK_STR(e.msg, "config line 2: unknown key \"not_a_key\"");
	unlink(path);
	free(path);

	path = write_tmp("listen_port = eighty\n");
	ft_err_clear(&e);
	FT_CHECK(ft_config_load(&cfg, path, &e) == FT_EINVAL);
	FT_CHECK_STR(e.msg, "config line 1: \"listen_port\" must be an integer (got \"eighty\")");
	unlink(path);
	free(path);

	path = write_tmp("just words\n");
	ft_err_clear(&e);
	FT_CHECK(ft_config_load(&cfg, path, &e) == FT_EINVAL);
	FT_CHECK_STR(e.msg, "config line 1: expected key = value");
	unlink(path);
	free(path);

	setenv("FT_LISTEN_PORT", "70000", 1);
	ft_err_clear(&e);
	FT_CHECK(ft_config_load(&cfg, NULL, &e) == FT_EINVAL);
	FT_CHECK_STR(e.msg, "config env FT_LISTEN_PORT: \"listen_port\" must be between 1 and "
			    "65535 (got 70000)");
	unsetenv("FT_LISTEN_PORT");

	setenv("FT_WEBHOOK_ALLOW_HTTP", "maybe", 1);
	ft_err_clear(&e);
	FT_CHECK(ft_config_load(&cfg, NULL, &e) == FT_EINVAL);
	FT_CHECK(strstr(e.msg, "must be true or false") != NULL);
	unsetenv("FT_WEBHOOK_ALLOW_HTTP");

	ft_err_clear(&e);
	FT_CHECK(ft_config_load(&cfg, "/nonexistent/ft.conf", &e) == FT_EIO);
	FT_CHECK(strstr(e.msg, "/nonexistent/ft.conf") != NULL);
}

FT_TEST(config_keys_are_documented)
{
	/* Every key in the table appears in docs/configuration.md as `name`
	 * together with its FT_ variable. */
	size_t n;
	const struct ft_config_key *k = ft_config_keys(&n);
	FILE *f = fopen(FT_SOURCE_ROOT "/docs/configuration.md", "r");
	FT_CHECK(f != NULL);
	static char doc[65536];
	size_t len = fread(doc, 1, sizeof(doc) - 1, f);
	fclose(f);
	doc[len] = '\0';
	for (size_t i = 0; i < n; i++) {
		char want[160], env[96];
		snprintf(env, sizeof(env), "FT_%s", k[i].name);
		for (char *p = env; *p; p++)
			if (*p >= 'a' && *p <= 'z')
				*p = (char)(*p - 'a' + 'A');
		snprintf(want, sizeof(want), "`%s`", k[i].name);
		if (!strstr(doc, want) || !strstr(doc, env))
			fprintf(stderr, "docs/configuration.md lacks %s / %s\n", want, env);
		FT_CHECK(strstr(doc, want) && strstr(doc, env));
	}
}

FT_TEST_MAIN()
