/*
 * embedding.c - token embedding lookup:
 *   out[n, :] = wte[ids[n], :]
 *   dwte[ids[n], :] += dout[n, :]     (rows summed in n order: deterministic)
 */
#include "cpu_int.h"

void ft_cpu_embedding_fwd(float *out, const int32_t *ids, const float *wte, int N, int C)
{
	for (int n = 0; n < N; n++)
		memcpy(out + (size_t)n * C, wte + (size_t)ids[n] * C, sizeof(float) * (size_t)C);
}

void ft_cpu_embedding_bwd(float *dwte, const float *dout, const int32_t *ids, int N, int C)
{
	for (int n = 0; n < N; n++) {
		float *d = dwte + (size_t)ids[n] * C;
		const float *g = dout + (size_t)n * C;
		for (int c = 0; c < C; c++)
			d[c] += g[c];
	}
}
