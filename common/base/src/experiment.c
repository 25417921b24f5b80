/*
 * experiment.c - ft/experiment.h: the assignment hash, the weights' rule
 * and the request log's arm label.
 */
#include "ft/experiment.h"
#include "ft/crypto.h"
#include "ft/id.h"

#include <ctype.h>
#include <math.h>

double ft_experiment_hash(const char *experiment_id, const char *salt, const char *key)
{
	struct ft_sha256 h;
	unsigned char d[FT_SHA256_LEN];
	FT_ASSERT(ft_sha256_init(&h) == FT_OK);
	ft_sha256_update(&h, experiment_id, strlen(experiment_id));
	ft_sha256_update(&h, "", 1);
	ft_sha256_update(&h, salt, strlen(salt));
	ft_sha256_update(&h, key, strlen(key));
	ft_sha256_final(&h, d);
	uint64_t x = 0;
	for (int i = 0; i < 8; i++)
		x = x << 8 | d[i];
	return (double)(x >> 11) * 0x1.0p-53;
}

/* The first arm whose cumulative weight passes u among those taken. */
static int pick(double u, const double *w, const bool *take, int n)
{
	double total = 0, c = 0;
	int last = -1;
	for (int i = 0; i < n; i++)
		if (take[i] && w[i] > 0)
			total += w[i], last = i;
	if (last < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		if (!take[i] || w[i] <= 0)
			continue;
		c += w[i];
		if (u * total < c)
			return i;
	}
	return last; /* rounding: u * total just below total */
}

int ft_experiment_assign(const char *experiment_id, const char *key, const double *weights,
			 const bool *active, int n)
{
	bool all[FT_EXP_MAX_ARMS];
	if (n < 1 || n > FT_EXP_MAX_ARMS)
		return -1;
	for (int i = 0; i < n; i++)
		all[i] = true;
	int arm = pick(ft_experiment_hash(experiment_id, "", key), weights, all, n);
	if (arm >= 0 && active[arm])
		return arm;
	return pick(ft_experiment_hash(experiment_id, "1", key), weights, active, n);
}

enum ft_rc ft_experiment_weights_check(const double *w, int n, struct ft_err *err)
{
	if (n < 2 || n > FT_EXP_MAX_ARMS) {
		ft_failf(err, FT_EINVAL, "invalid_value",
			 "\"arms\" must list 2 to %d arms (got %d)", FT_EXP_MAX_ARMS, n);
		ft_err_param(err, "arms");
		return FT_EINVAL;
	}
	double sum = 0;
	for (int i = 0; i < n; i++) {
		if (!isfinite(w[i]) || w[i] < 0 || w[i] > 1) {
			char p[32];
			snprintf(p, sizeof(p), "arms[%d].weight", i);
			ft_failf(err, FT_EINVAL, "invalid_value",
				 "\"%s\" must be a number from 0 to 1", p);
			ft_err_param(err, p);
			return FT_EINVAL;
		}
		sum += w[i];
	}
	if (fabs(sum - 1.0) > FT_EXP_WEIGHT_TOLERANCE) {
		ft_failf(err, FT_EINVAL, "invalid_weights",
			 "the arms' weights must sum to 1 (they sum to %.17g)", sum);
		ft_err_param(err, "arms");
		return FT_EINVAL;
	}
	return FT_OK;
}

bool ft_experiment_arm_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > FT_EXP_ARM_NAME_MAX || !isalnum((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
			return false;
	return true;
}

bool ft_experiment_arm_label(const char *experiment_id, const char *arm, char *out, size_t n)
{
	int w = snprintf(out, n, "%s:%s", experiment_id, arm);
	if (w > 0 && (size_t)w < n)
		return true;
	if (n)
		out[0] = '\0'; /* never a label cut short */
	return false;
}

bool ft_experiment_arm_label_parse(const char *label, char *experiment_id, size_t n_id, char *arm,
				   size_t n_arm)
{
	const char *c = strchr(label, ':');
	if (!c || (size_t)(c - label) >= n_id || strlen(c + 1) >= n_arm)
		return false;
	memcpy(experiment_id, label, (size_t)(c - label));
	experiment_id[c - label] = '\0';
	snprintf(arm, n_arm, "%s", c + 1);
	return ft_id_valid(FT_ID_EXPERIMENT, experiment_id) && ft_experiment_arm_name_ok(arm);
}
