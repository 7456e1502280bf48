/* What the C benchmarks share: the median of repeated timings (machines are shared and noisy;
 * every benchmark reports medians) and the matrix-product rate of the backend. */
#ifndef BEIT_BENCH_UTIL_H
#define BEIT_BENCH_UTIL_H

#include <stdlib.h>

#include "clock.h"
#include "gemm.h"
#include "tensor_table.h" /* beit_alloc_floats */

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

/* Best GFLOP/s over reps runs of C (M, N) = op(A) op(B) through core/gemm.h in dtype (F32:
 * OpenBLAS, BF16: oneDNN), on dense operands; the untimed first run creates oneDNN's primitive. */
static inline double bench_gemm_gflops(enum beit_dtype dtype, size_t M, size_t N, size_t K,
                                       int ta, int tb, int reps)
{
  size_t na = M * K, nb = K * N;
  float *a = beit_alloc_floats(na), *b = beit_alloc_floats(nb), *c = beit_alloc_floats(M * N);
  beit_bf16 *ah = malloc(na * sizeof *ah), *bh = malloc(nb * sizeof *bh);
  for (size_t i = 0; i < na; i++)
    a[i] = (float)(i % 13) * 0.01f;
  for (size_t i = 0; i < nb; i++)
    b[i] = (float)(i % 7) * 0.01f;
  beit_to_bf16(ah, a, na);
  beit_to_bf16(bh, b, nb);
  int h = dtype == BEIT_DTYPE_BF16;
  struct beit_operand A = h ? beit_op_bf16(ah, ta ? M : K, ta) : beit_op_f32(a, ta ? M : K, ta);
  struct beit_operand B = h ? beit_op_bf16(bh, tb ? K : N, tb) : beit_op_f32(b, tb ? K : N, tb);
  double best = 0;
  for (int r = 0; r <= reps; r++) {
    double t0 = beit_clock_now();
    beit_gemm(c, N, A, B, M, N, K, 1.0f, 0.0f);
    double gf = 2.0 * (double)M * (double)N * (double)K / (beit_clock_now() - t0) / 1e9;
    if (r > 0 && gf > best)
      best = gf;
  }
  free(a), free(b), free(c), free(ah), free(bh);
  return best;
}

#endif
