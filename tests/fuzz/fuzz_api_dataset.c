/*
 * fuzz_api_dataset.c - ft-api's JSONL dataset validator on arbitrary bytes,
 * with each method. It must never crash, read out of bounds or leak, and
 * must always produce a report whose error count matches its list.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "ft/api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const methods[] = { NULL, "supervised", "dpo" };
	for (size_t m = 0; m < FT_ARRAY_LEN(methods); m++) {
		int fd = memfd_create("fuzz", 0);
		FT_ASSERT(fd >= 0);
		FT_ASSERT(write(fd, data, size) == (ssize_t)size);
		FT_ASSERT(lseek(fd, 0, SEEK_SET) == 0);
		json_t *report = NULL;
		struct ft_err e;
		ft_err_clear(&e);
		FT_ASSERT(ft_api_validate_fd(fd, methods[m], &report, &e) == FT_OK);
		json_t *errors = json_object_get(report, "errors");
		long long n = json_integer_value(json_object_get(report, "n_errors"));
		FT_ASSERT(json_is_array(errors));
		FT_ASSERT((long long)json_array_size(errors) == (n < 100 ? n : 100));
		FT_ASSERT(json_is_true(json_object_get(report, "valid")) == (n == 0));
		json_decref(report);
		close(fd);
	}
	return 0;
}
