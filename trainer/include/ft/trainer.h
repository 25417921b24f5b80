/*
 * ft/trainer.h - the public face of trainer/: what the worker, ft-serve and
 * the ft-train program use. The trainer is large, so its public API is split
 * into the headers below (one per input format or stage); this header
 * includes them all. Private declarations live beside the code
 * (trainer/data/rows_int.h, trainer/train/dpo_int.h, ...).
 */
#ifndef FT_TRAINER_H
#define FT_TRAINER_H

#include "ft/base.h"
#include "ft/buf.h"
#include "ft/err.h"
#include "ft/json.h"

/* Version of the trainer's on-disk formats (checkpoints, manifests). */
#define FT_TRAINER_FORMAT_VERSION 1

const char *ft_trainer_version(void);

#include "ft/backend.h" /* compute ops; the CPU reference backend */
#include "ft/model.h" /* the Llama-family model, LoRA, PEFT / HF outputs */
#include "ft/train.h" /* job files and the training loop */

#endif
