/*
 * stats_int.h - helpers shared inside fteval, not part of its API.
 */
#ifndef FT_STATS_INT_H
#define FT_STATS_INT_H

#include "ft/stats.h"

#include <math.h>

/* log Gamma without the global signgam (lgamma is not thread-safe). */
static inline double ft_lgam(double x)
{
	int sign;
	return lgamma_r(x, &sign);
}

/* log B(a, b) */
static inline double ft_lbeta(double a, double b)
{
	return ft_lgam(a) + ft_lgam(b) - ft_lgam(a + b);
}

/* Check a sample: 1..FT_DRIFT_MAX_N finite values. `what` names it. */
enum ft_rc ft_stats_check_sample(const double *x, size_t n, const char *what, struct ft_err *err);
/* Check a count vector: k in 1..kmax finite values >= 0. */
enum ft_rc ft_stats_check_counts(const double *c, int k, int kmax, const char *what,
				 struct ft_err *err);

/* A sorted copy of x (malloc'd; NULL when out of memory). */
double *ft_stats_sorted_copy(const double *x, size_t n);

/* Midranks (1-based, ties averaged) of v[0..n-1] into rank[], and
 * sum over tie groups of (t^3 - t) into *tie_term when not NULL. */
enum ft_rc ft_stats_midranks(const double *v, size_t n, double *rank, double *tie_term,
			     struct ft_err *err);

/* Solve A x = b in place (b becomes x) for symmetric positive definite A
 * (n x n, row-major, overwritten by its Cholesky factor). false when A is
 * not positive definite. */
bool ft_stats_cholesky_solve(double *a, double *b, int n);

/* Add one judgment already checked by ft_ab_table_build. */
void ft_ab_table_add(struct ft_ab_table *t, const struct ft_ab_judgment *x);

/* The arms' "scored against" reachability: true when the Bradley-Terry MLE
 * exists for the table; otherwise `msg` says which arms never won or tied
 * against the others. */
bool ft_ab_bt_exists(const struct ft_ab_table *t, char *msg, size_t msgsz);

#endif
