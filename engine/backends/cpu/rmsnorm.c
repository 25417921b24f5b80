/*
 * rmsnorm.c - RMSNorm (LlamaRMSNorm), per row of C channels:
 *   r      = 1 / sqrt(mean_i x_i^2 + eps)
 *   y_i    = w_i * x_i * r
 * Backward, with g_i = dy_i * w_i:
 *   dw_i  += dy_i * x_i * r
 *   dx_j  += r * g_j - r^3 / C * x_j * sum_i g_i x_i
 * Statistics are summed in double; rows are independent (threaded), the
 * weight gradient is summed over rows in row order (deterministic).
 */
#include "cpu_int.h"

#include <math.h>

struct rms_ctx {
	float *out, *rstd, *dinp;
	const float *inp, *w, *dout, *crstd;
	int N, C, rows_per_task;
	float eps;
};

static void rms_fwd_task(void *p, int t)
{
	const struct rms_ctx *c = p;
	int n0 = t * c->rows_per_task, n1 = FT_MIN(c->N, n0 + c->rows_per_task);
	for (int n = n0; n < n1; n++) {
		const float *x = c->inp + (size_t)n * c->C;
		float *y = c->out + (size_t)n * c->C;
		double ss = 0;
		for (int i = 0; i < c->C; i++)
			ss += (double)x[i] * x[i];
		float r = (float)(1.0 / sqrt(ss / c->C + c->eps));
		for (int i = 0; i < c->C; i++)
			y[i] = c->w[i] * (x[i] * r);
		c->rstd[n] = r;
	}
}

void ft_cpu_rmsnorm_fwd(float *out, float *rstd, const float *inp, const float *w, int N, int C,
			float eps)
{
	struct rms_ctx c = {
		.out = out, .rstd = rstd, .inp = inp, .w = w, .N = N, .C = C, .eps = eps
	};
	c.rows_per_task = 64;
	ft_pool_run(rms_fwd_task, &c, (N + c.rows_per_task - 1) / c.rows_per_task);
}

static void rms_bwd_task(void *p, int t)
{
	const struct rms_ctx *c = p;
	int n0 = t * c->rows_per_task, n1 = FT_MIN(c->N, n0 + c->rows_per_task);
	for (int n = n0; n < n1; n++) {
		const float *x = c->inp + (size_t)n * c->C;
		const float *dy = c->dout + (size_t)n * c->C;
		float *dx = c->dinp + (size_t)n * c->C;
		float r = c->crstd[n];
		double dot = 0;
		for (int i = 0; i < c->C; i++)
			dot += (double)dy[i] * c->w[i] * x[i];
		float k = (float)((double)r * r * r * dot / c->C);
		for (int i = 0; i < c->C; i++)
			dx[i] += r * dy[i] * c->w[i] - k * x[i];
	}
}

void ft_cpu_rmsnorm_bwd(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
			const float *rstd, int N, int C)
{
	struct rms_ctx c = {
		.crstd = rstd, .dinp = dinp, .inp = inp, .w = w, .dout = dout, .N = N, .C = C
	};
	c.rows_per_task = 64;
	if (dinp)
		ft_pool_run(rms_bwd_task, &c, (N + c.rows_per_task - 1) / c.rows_per_task);
	if (dw)
		for (int n = 0; n < N; n++) {
			const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
			for (int i = 0; i < C; i++)
				dw[i] += dy[i] * x[i] * rstd[n];
		}
}
