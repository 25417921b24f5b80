/*
 * ftest.h - the unit-test harness. A test file defines cases with
 *
 *     FT_TEST(buf_grows_past_cap) { ... FT_CHECK(x == 3); ... }
 *
 * and ends with FT_TEST_MAIN(). CMake scans the file for FT_TEST(name) and
 * registers one CTest test per case, running `<exe> <name>`; running the
 * executable with no argument runs every case. A failed check prints file,
 * line and the expression and fails the case (the rest of the case is
 * skipped via return).
 */
#ifndef FTEST_H
#define FTEST_H

#include "ft/base.h"

typedef void (*ftest_fn)(int *failed);
struct ftest_case {
	const char *name;
	ftest_fn fn;
};

#define FTEST_MAX 256
extern struct ftest_case ftest_cases[FTEST_MAX];
extern int ftest_count;

#define FT_TEST(id)                                                   \
	static void ftest_##id(int *ftest_failed);                    \
	__attribute__((constructor)) static void ftest_reg_##id(void) \
	{                                                             \
		FT_ASSERT(ftest_count < FTEST_MAX);                   \
		ftest_cases[ftest_count].name = #id;                  \
		ftest_cases[ftest_count++].fn = ftest_##id;           \
	}                                                             \
	static void ftest_##id(int *ftest_failed)

#define FT_CHECK(cond)                                                                           \
	do {                                                                                     \
		if (!(cond)) {                                                                   \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			*ftest_failed = 1;                                                       \
			return;                                                                  \
		}                                                                                \
	} while (0)

#define FT_CHECK_STR(a, b)                                                                         \
	do {                                                                                       \
		const char *ftest_a = (a), *ftest_b = (b);                                         \
		if (!ftest_a || !ftest_b || strcmp(ftest_a, ftest_b) != 0) {                       \
			fprintf(stderr,                                                            \
				"%s:%d: check failed: %s == %s\n  got:  \"%s\"\n  want: \"%s\"\n", \
				__FILE__, __LINE__, #a, #b, ftest_a ? ftest_a : "(null)",          \
				ftest_b ? ftest_b : "(null)");                                     \
			*ftest_failed = 1;                                                         \
			return;                                                                    \
		}                                                                                  \
	} while (0)

#define FT_CHECK_INT(a, b)                                                                       \
	do {                                                                                     \
		long long ftest_a = (long long)(a), ftest_b = (long long)(b);                    \
		if (ftest_a != ftest_b) {                                                        \
			fprintf(stderr, "%s:%d: check failed: %s == %s (got %lld, want %lld)\n", \
				__FILE__, __LINE__, #a, #b, ftest_a, ftest_b);                   \
			*ftest_failed = 1;                                                       \
			return;                                                                  \
		}                                                                                \
	} while (0)

#define FT_SKIP(why)                       \
	do {                               \
		printf("SKIP: %s\n", why); \
		*ftest_failed = 77;        \
		return;                    \
	} while (0)

int ftest_main(int argc, char **argv);
#define FT_TEST_MAIN()                            \
	struct ftest_case ftest_cases[FTEST_MAX]; \
	int ftest_count;                          \
	int main(int argc, char **argv)           \
	{                                         \
		return ftest_main(argc, argv);    \
	}

#endif
