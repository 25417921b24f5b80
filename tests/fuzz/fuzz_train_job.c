/*
 * fuzz_train_job.c - the training job file parser on arbitrary text: it
 * must never crash, and a rejected job always says why.
 */
#include "ft/train.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ft_train_job *j = ft_xcalloc(1, sizeof(*j));
	struct ft_err err;
	ft_err_clear(&err);
	if (ft_train_job_parse((const char *)data, size, j, &err) != FT_OK)
		FT_ASSERT(err.msg[0]);
	else
		FT_ASSERT(j->model[0] && j->train_file[0] && j->output_dir[0] &&
			  j->batch_size >= 1);
	free(j);
	return 0;
}
