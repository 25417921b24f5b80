/*
 * adamw.c - torch.optim.AdamW (decoupled weight decay), step t >= 1:
 *   p  = p * (1 - lr * wd)
 *   m  = m + (g - m) * (1 - beta1)             (torch's lerp)
 *   v  = v * beta2 + (1 - beta2) * g * g
 *   p  = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * The scalars are computed in double as Python does; the update in fp32 as
 * torch does for fp32 parameters.
 *
 * Also the helpers of torch.nn.utils.clip_grad_norm_: the sum of squares
 * (the norm is sqrt of the total over all trainable tensors, in fixed
 * chunk order) and an in-place scale.
 */
#include "cpu_int.h"

#include <math.h>

#define CHUNK 16384

struct adamw_ctx {
	float *p, *m, *v;
	const float *g;
	size_t n;
	float decay, b1, b2, step_size, bc2_sqrt, eps;
	double *part;
	const float *x;
	float s;
};

static void adamw_task(void *p, int t)
{
	const struct adamw_ctx *c = p;
	size_t i0 = (size_t)t * CHUNK, i1 = FT_MIN(c->n, i0 + CHUNK);
	for (size_t i = i0; i < i1; i++) {
		float g = c->g[i];
		float pi = c->p[i] * c->decay;
		float m = c->m[i] + (g - c->m[i]) * (1.0f - c->b1);
		float v = c->v[i] * c->b2 + (1.0f - c->b2) * g * g;
		float denom = sqrtf(v) / c->bc2_sqrt + c->eps;
		c->p[i] = pi - c->step_size * (m / denom);
		c->m[i] = m;
		c->v[i] = v;
	}
}

void ft_cpu_adamw(float *param, const float *grad, float *m, float *v, size_t n,
		  const struct ft_adamw_args *a)
{
	double bc1 = 1.0 - pow(a->beta1, (double)a->step);
	double bc2 = 1.0 - pow(a->beta2, (double)a->step);
	struct adamw_ctx c = {
		.p = param,
		.m = m,
		.v = v,
		.g = grad,
		.n = n,
		.decay = (float)(1.0 - a->lr * a->weight_decay),
		.b1 = (float)a->beta1,
		.b2 = (float)a->beta2,
		.step_size = (float)(a->lr / bc1),
		.bc2_sqrt = (float)sqrt(bc2),
		.eps = (float)a->eps,
	};
	ft_pool_run(adamw_task, &c, (int)((n + CHUNK - 1) / CHUNK));
}

static void sumsq_task(void *p, int t)
{
	const struct adamw_ctx *c = p;
	size_t i0 = (size_t)t * CHUNK, i1 = FT_MIN(c->n, i0 + CHUNK);
	double s = 0;
	for (size_t i = i0; i < i1; i++)
		s += (double)c->x[i] * c->x[i];
	c->part[t] = s;
}

double ft_cpu_sumsq(const float *x, size_t n)
{
	int ntask = (int)((n + CHUNK - 1) / CHUNK);
	if (ntask == 0)
		return 0;
	double *part = ft_xcalloc((size_t)ntask, sizeof(double));
	struct adamw_ctx c = { .x = x, .n = n, .part = part };
	ft_pool_run(sumsq_task, &c, ntask);
	double s = 0;
	for (int t = 0; t < ntask; t++)
		s += part[t];
	free(part);
	return s;
}

void ft_cpu_scale(float *x, size_t n, float s)
{
	for (size_t i = 0; i < n; i++)
		x[i] *= s;
}
