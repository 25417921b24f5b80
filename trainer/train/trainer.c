/*
 * trainer.c - library-wide odds and ends (version).
 */
#include "ft/trainer.h"

const char *ft_trainer_version(void)
{
	return "ftplat-trainer 0.1.0";
}
