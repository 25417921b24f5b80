/*
 * test_log.c - each record is one parseable JSON line with the fields
 * documented in ft/log.h; levels below the minimum are dropped.
 */
#include <unistd.h>

#include "ft/json.h"
#include "ft/log.h"
#include "ftest.h"

FT_TEST(log_writes_json_lines)
{
	char path[] = "/tmp/ftlogXXXXXX";
	int fd = mkstemp(path);
	FT_CHECK(fd >= 0);
	ft_log_set_fd(fd);
	ft_log_init("worker", FT_LOG_INFO);
	ft_debug("dropped");
	ft_logf(FT_LOG_WARN, NULL, "ftjob-abc", "lease lost for \"%s\"\n(tab\there)", "x");
	ft_logf(FT_LOG_ERROR, "api", NULL, "bytes \xff ok");
	ft_log_set_fd(-1);

	char text[4096];
	ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
	close(fd);
	unlink(path);
	FT_CHECK(n > 0);
	text[n] = '\0';

	char *nl = strchr(text, '\n');
	FT_CHECK(nl != NULL);
	json_t *a = ft_json_parse(text, (size_t)(nl - text), NULL);
	FT_CHECK(a != NULL);
	FT_CHECK_STR(json_string_value(json_object_get(a, "level")), "warn");
	FT_CHECK_STR(json_string_value(json_object_get(a, "component")), "worker");
	FT_CHECK_STR(json_string_value(json_object_get(a, "job")), "ftjob-abc");
	FT_CHECK_STR(json_string_value(json_object_get(a, "msg")),
		     "lease lost for \"x\"\n(tab\there)");
	FT_CHECK_INT(strlen(json_string_value(json_object_get(a, "ts"))), 24);
	json_decref(a);

	char *nl2 = strchr(nl + 1, '\n');
	FT_CHECK(nl2 != NULL && nl2[1] == '\0'); /* exactly two lines: debug dropped */
	json_t *b = ft_json_parse(nl + 1, (size_t)(nl2 - nl - 1), NULL);
	FT_CHECK(b != NULL);
	FT_CHECK_STR(json_string_value(json_object_get(b, "component")), "api");
	FT_CHECK(json_object_get(b, "job") == NULL);
	json_decref(b);

	enum ft_log_level lv;
	FT_CHECK(ft_log_level_parse("error", &lv) && lv == FT_LOG_ERROR);
	FT_CHECK(!ft_log_level_parse("loud", &lv));
}

FT_TEST_MAIN()
