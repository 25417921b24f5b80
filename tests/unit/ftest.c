/*
 * ftest.c - runs the cases registered by FT_TEST. Exit 0 pass, 1 fail,
 * 77 skip (CTest's SKIP_RETURN_CODE).
 */
#include "ftest.h"

int ftest_main(int argc, char **argv)
{
	int failed = 0, ran = 0, skipped = 0;
	for (int i = 0; i < ftest_count; i++) {
		if (argc > 1 && strcmp(argv[1], ftest_cases[i].name) != 0)
			continue;
		int f = 0;
		ftest_cases[i].fn(&f);
		ran++;
		if (f == 77) {
			skipped++;
			printf("skip %s\n", ftest_cases[i].name);
		} else if (f) {
			failed++;
			printf("FAIL %s\n", ftest_cases[i].name);
		} else {
			printf("ok   %s\n", ftest_cases[i].name);
		}
	}
	if (argc > 1 && ran == 0) {
		fprintf(stderr, "no test named \"%s\"\n", argv[1]);
		return 1;
	}
	if (failed)
		return 1;
	if (argc > 1 && skipped)
		return 77;
	return 0;
}
