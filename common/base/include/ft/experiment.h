/*
 * ft/experiment.h - A/B experiments' routing rule, written once for every
 * process that routes or explains a request: ft-api (GET
 * /v1/experiments/{id}/assignment), and ft-serve when it routes by
 * experiment (the deployments work; it calls ft_experiment_assign).
 *
 * Assignment. An experiment has arms 0..n-1 (0 the control) with weights
 * summing to 1; an arm stopped by a guardrail or by hand takes no traffic.
 * The key is the request's "user" when the experiment is sticky
 * (assignment "user"; a request without a user falls back to its own id),
 * else the request's id (assignment "request"). Then
 *
 *   u(key, salt) = (first 8 bytes of SHA-256(experiment id, 0x00, salt, key)
 *                   read big-endian >> 11) * 2^-53            in [0, 1)
 *   arm          = the first i with u(key, "") < w_0 + ... + w_i
 *
 * with the weights as given (stopped arms included), so a user keeps the
 * arm for the experiment's life. When that arm is stopped, the user is
 * moved among the active arms, by their weights renormalised, with
 * u(key, "1"): users of the arms still running never move. No active arm
 * with weight: -1.
 *
 * The request log (ft/reqlog.h's experiment_arm) records the arm as
 * "<experiment id>:<arm name>", so one column names both.
 */
#ifndef FT_EXPERIMENT_H
#define FT_EXPERIMENT_H

#include "ft/err.h"
#include "ft/id.h"

#define FT_EXP_MAX_ARMS 16
/* An arm's name is short enough that its label (below) fits the request
 * log's experiment_arm field (64 bytes, ft/reqlog.h): 28 + 1 + 32. */
#define FT_EXP_ARM_NAME_MAX 32
#define FT_EXP_LABEL_MAX (FT_ID_MAX + FT_EXP_ARM_NAME_MAX + 2) /* buffer size */
/* |sum of weights - 1| allowed */
#define FT_EXP_WEIGHT_TOLERANCE 1e-9

/* u(key, salt) above; salt may be "" (never NULL). */
double ft_experiment_hash(const char *experiment_id, const char *salt, const char *key);

/* The arm of key (see above); active[i] false for a stopped arm. */
int ft_experiment_assign(const char *experiment_id, const char *key, const double *weights,
			 const bool *active, int n);

/* Weights of n arms: 2 <= n <= FT_EXP_MAX_ARMS, each finite in [0, 1],
 * summing to 1 within FT_EXP_WEIGHT_TOLERANCE. Errors name the field:
 * "arms" (how many, or the sum) or "arms[i].weight". */
enum ft_rc ft_experiment_weights_check(const double *weights, int n, struct ft_err *err);

/* An arm's name: 1..32 of [A-Za-z0-9._-], not starting with [._-]. */
bool ft_experiment_arm_name_ok(const char *name);

/* "<experiment id>:<arm name>" into out (false when it does not fit). */
bool ft_experiment_arm_label(const char *experiment_id, const char *arm, char *out, size_t n);
/* The reverse; false unless label is an experiment id, ':' and an arm name. */
bool ft_experiment_arm_label_parse(const char *label, char *experiment_id, size_t n_id, char *arm,
				   size_t n_arm);

#endif
