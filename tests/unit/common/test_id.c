/*
 * test_id.c - prefixed base62 ids.
 */
#include "ft/id.h"
#include "ftest.h"

FT_TEST(id_shape_and_validation)
{
	char id[FT_ID_MAX];
	ft_id_new(FT_ID_JOB, id);
	FT_CHECK_INT(strlen(id), strlen("ftjob-") + FT_ID_RAND_LEN);
	FT_CHECK(strncmp(id, "ftjob-", 6) == 0);
	FT_CHECK(ft_id_valid(FT_ID_JOB, id));
	FT_CHECK(!ft_id_valid(FT_ID_FILE, id));
	FT_CHECK(!ft_id_valid("ftjob", "ftjob-short"));
	FT_CHECK(!ft_id_valid("ftjob", "ftjob-abcdefghijklmnopqrstuvw!"));
	FT_CHECK(!ft_id_valid("ftjob", "ftjob-abcdefghijklmnopqrstuvwxy")); /* 25 chars */
	FT_CHECK(ft_id_valid("ftjob", "ftjob-abcdefghijklmnopqrstuvwx"));
	FT_CHECK(!ft_id_valid("ftjob", NULL));
}

FT_TEST(id_unique_and_uniform_alphabet)
{
	/* 2000 ids: no duplicates, and every one of the 62 digits shows up
	 * (48000 draws; the chance a digit never appears is ~e^-774). */
	enum { N = 2000 };
	static char ids[N][FT_ID_MAX];
	int seen[128] = { 0 };
	for (int i = 0; i < N; i++) {
		ft_id_new("file", ids[i]);
		for (const char *p = ids[i] + 5; *p; p++)
			seen[(int)*p]++;
	}
	for (int i = 0; i < N; i++)
		for (int j = i + 1; j < N; j++)
			FT_CHECK(strcmp(ids[i], ids[j]) != 0);
	int distinct = 0;
	for (int c = 0; c < 128; c++)
		distinct += seen[c] > 0;
	FT_CHECK_INT(distinct, 62);
}

FT_TEST_MAIN()
