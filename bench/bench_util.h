/* What the C benchmarks share: the median of repeated timings (machines are shared and noisy;
 * every benchmark reports medians). */
#ifndef BEIT_BENCH_UTIL_H
#define BEIT_BENCH_UTIL_H

#include <stdlib.h>

static inline int bench_cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Sorts v[0, n) in place and returns its median (n >= 1). */
static inline double bench_median(double *v, int n)
{
  qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#endif
