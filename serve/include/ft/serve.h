/*
 * ft/serve.h - the core of ft-serve: one base model, LoRA adapters over it,
 * and a loop thread that runs every active sequence together (continuous
 * batching) through the engine's cached step (ft/model.h ft_model_step:
 * the training forward's own layer code).
 *
 * The loop, once per step:
 *   1. admit queued requests into free sequence slots (a slot is a row of
 *      the KV cache: max_len positions);
 *   2. rows of the step: one for every sequence that is generating (its
 *      last token), then prompt tokens of sequences being prefilled, at
 *      most prefill_chunk of them per step, so a long prompt is read over
 *      several steps and never stalls the streams that are generating;
 *      each row carries its sequence's adapter slot;
 *   3. ft_model_step, then each sequence whose prompt is done samples its
 *      next token (ft/sample.h), hands it to its request's callback, and
 *      ends on an end-of-sequence token, max_tokens, the callback's say-so
 *      (a stop string, a client that went away) or a cancel.
 * Whatever other sequences share a step, a sequence's logits are those it
 * gets alone with the same prefill chunks (the engine computes every row
 * independently of the others: test_step.c, test_serve.c).
 *
 * The prefix cache (opts.prefix_cache): a slot keeps what its finished
 * sequence left (the keys and values of its prompt and of the tokens it fed
 * back, with those tokens). Admission gives a request the free slot holding
 * the longest start of its prompt run with its adapter, cuts the slot back
 * to that start (at most the prompt less its last token) and prefills the
 * rest: a first chunk that starts there. Else the least recently used slot
 * (an empty one first). The done record's cached_tokens says how many
 * prompt tokens were reused.
 *
 * Adapters: loaded by name from a PEFT folder into a model slot, at most
 * max_adapters resident; loading another unloads the least recently used
 * one that no running sequence uses (else FT_EBUSY).
 *
 * Threads: ft_srv_submit / _cancel / _adapter_* / _stats may be called from
 * any thread; the callbacks run on the loop thread and must not block.
 * Ownership: the request's prompt and adapter name are copied on submit.
 */
#ifndef FT_SERVE_H
#define FT_SERVE_H

#include "ft/base.h"
#include "ft/chat.h"
#include "ft/err.h"
#include "ft/model.h"
#include "ft/sample.h"
#include "ft/tokenizer.h"

struct ft_srv_opts {
	const char *model_dir; /* a Hugging Face folder */
	const char *device; /* "cpu" (NULL) or "cuda" */
	int max_seqs; /* sequences generating at once (KV cache slots) */
	int max_len; /* positions per sequence (prompt + completion) */
	int prefill_chunk; /* prompt tokens per step, over all sequences */
	int max_queue; /* requests waiting for a slot; more is FT_ELIMIT (429) */
	int max_adapters; /* resident adapters */
	const char *weights; /* "f32" (NULL) or "q8_0": the base as packed (ft_model_pack) */
	bool prefix_cache; /* reuse what a finished sequence left in its KV slot */
};
void ft_srv_opts_default(struct ft_srv_opts *o);

enum ft_srv_finish { FT_FINISH_STOP = 0, FT_FINISH_LENGTH, FT_FINISH_CANCELLED, FT_FINISH_ERROR };
const char *ft_srv_finish_name(enum ft_srv_finish f); /* "stop", "length", ... */

struct ft_srv_done {
	enum ft_srv_finish finish;
	int prompt_tokens, completion_tokens;
	int cached_tokens; /* of the prompt's, found in the prefix cache */
	/* of those, byte pieces (ft_tokenizer_byte_pieces) */
	int prompt_byte_tokens, completion_byte_tokens;
	/* req.embed: the prompt's mean final hidden state ([embedding_dim]
	 * floats, valid during on_done), NULL when not asked or not reached */
	const float *embedding;
	int embedding_dim;
	double queue_ms, ttft_ms, total_ms; /* from submit */
	char error[256]; /* FT_FINISH_ERROR */
};

struct ft_srv_req {
	const char *adapter; /* adapter name, or NULL for the base */
	const int32_t *prompt;
	size_t n_prompt;
	int max_tokens;
	bool ignore_eos; /* generate past end-of-sequence tokens (benchmarks; vLLM's) */
	bool embed; /* average the final hidden states of the prompt's tokens (drift) */
	struct ft_sampling sampling;
	uint64_t seed;
	/* a token was generated: false ends the sequence (finish "stop") */
	bool (*on_token)(void *ctx, const struct ft_sample_out *tok);
	/* the sequence ended (always called once, also when cancelled) */
	void (*on_done)(void *ctx, const struct ft_srv_done *d);
	void *ctx;
};

struct ft_srv_stats {
	int queued, running, max_seqs;
	long kv_positions_used, kv_positions; /* over all slots */
	uint64_t tokens_generated, prompt_tokens, requests, steps;
	uint64_t prompt_tokens_cached, prefix_hits; /* the prefix cache's */
	double busy_seconds; /* time the loop spent in steps */
};

struct ft_srv;

enum ft_rc ft_srv_new(const struct ft_srv_opts *o, struct ft_srv **out, struct ft_err *err);
void ft_srv_free(struct ft_srv *s); /* stops the loop; pending requests end cancelled */
const struct ft_model_config *ft_srv_config(const struct ft_srv *s);
const struct ft_tokenizer *ft_srv_tokenizer(const struct ft_srv *s);
/* The model's chat template (NULL when its tokenizer has none we render). */
const struct ft_chat_template *ft_srv_template(const struct ft_srv *s);
int ft_srv_max_len(const struct ft_srv *s);

/* Checks (prompt length, max_tokens, adapter known, sampling) happen here:
 * FT_EINVAL naming the field, FT_ELIMIT when the queue is full. *id names
 * the request for ft_srv_cancel. */
enum ft_rc ft_srv_submit(struct ft_srv *s, const struct ft_srv_req *r, uint64_t *id,
			 struct ft_err *err);
void ft_srv_cancel(struct ft_srv *s, uint64_t id);

enum ft_rc ft_srv_adapter_load(struct ft_srv *s, const char *name, const char *dir,
			       struct ft_err *err);
enum ft_rc ft_srv_adapter_unload(struct ft_srv *s, const char *name, struct ft_err *err);
/* Names of the resident adapters, up to max; returns how many there are. */
int ft_srv_adapters(struct ft_srv *s, char (*names)[128], int max);
bool ft_srv_has_adapter(struct ft_srv *s, const char *name);

void ft_srv_stats(struct ft_srv *s, struct ft_srv_stats *out);

#endif
