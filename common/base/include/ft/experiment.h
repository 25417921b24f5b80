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
 *
 * Routing. The deployment controller (scheduler/src/deploy.c) pushes each
 * experiment of an ftserve endpoint to it (POST /v1/load_experiment; GET
 * /v1/experiments lists them back; POST /v1/unload_experiment {"id"}) as
 * one JSON object, written and read only by the functions below:
 *
 * | key          | type         | what                                          |
 * |--------------|--------------|-----------------------------------------------|
 * | id           | string       | "exp-…"                                       |
 * | team_id      | string       | "team-…": only its keys (and the endpoint's   |
 * |              |              | token) may route by it                        |
 * | name         | string       | 1..256 printable bytes (not unique)           |
 * | assignment   | string       | "user" (sticky) or "request"                  |
 * | status       | string       | draft, running, paused, stopped               |
 * | arms         | list         | 2..16 arms in position order (0 the control)  |
 * | arms[].name  | string       | ft_experiment_arm_name_ok                     |
 * | arms[].model | string, null | the name the endpoint serves the arm's        |
 * |              |              | version under (null: the version is gone)     |
 * | arms[].weight| number       | ft_experiment_weights_check over all arms     |
 * | arms[].status| string       | "active" or "stopped" (by hand or guardrail)  |
 *
 * A request names an experiment as model "experiment:<id or name>"
 * (FT_EXP_MODEL_PREFIX). Running: the arm of ft_experiment_assign, keyed
 * as above. Paused: the first active arm (the control unless a guardrail
 * stopped it), not counted as the experiment's traffic. Draft and stopped:
 * refused (409), naming the experiment.
 */
#ifndef FT_EXPERIMENT_H
#define FT_EXPERIMENT_H

#include <jansson.h>

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

/* ---- the experiment as an endpoint routes by it ---- */

#define FT_EXP_MODEL_PREFIX "experiment:"
#define FT_EXP_NAME_MAX 256
#define FT_EXP_MODEL_MAX 128 /* an arm's served name (ft-serve's model names) */

enum ft_exp_status { FT_EXP_DRAFT = 0, FT_EXP_RUNNING, FT_EXP_PAUSED, FT_EXP_STOPPED };
extern const char *const ft_exp_status_names[]; /* by enum ft_exp_status */

struct ft_exp_arm {
	char name[FT_EXP_ARM_NAME_MAX + 1];
	char model[FT_EXP_MODEL_MAX]; /* "": none */
	double weight;
	bool active;
};

struct ft_exp_spec {
	char id[FT_ID_MAX], team[FT_ID_MAX];
	char name[FT_EXP_NAME_MAX + 1];
	bool sticky; /* assignment "user" */
	enum ft_exp_status status;
	int n;
	struct ft_exp_arm arms[FT_EXP_MAX_ARMS];
};

/* The table above from o; FT_EINVAL naming the key ("arms[1].weight"). */
enum ft_rc ft_experiment_spec_parse(const json_t *o, struct ft_exp_spec *out, struct ft_err *err);
/* The same object back (new reference): parse(json(s)) == s. */
json_t *ft_experiment_spec_json(const struct ft_exp_spec *s);

/* The arm a request is served by: running, ft_experiment_assign on key
 * (the request's user when sticky and given, else its id); paused, the
 * first active arm. -1 when none (or draft, stopped). *counted: the
 * request is the experiment's traffic (running). */
int ft_experiment_spec_route(const struct ft_exp_spec *s, const char *user, const char *request_id,
			     bool *counted);

#endif
