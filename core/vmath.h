/* Vectorisable float math shared by the row kernels: libm's expf does not vectorise without
 * -ffast-math, so softmax-like loops use this exp (<= 2 ulp on [-87, 88], exp(0) == 1 exactly)
 * and one row-softmax routine. Internal to core/. */
#ifndef BEIT_CORE_VMATH_H
#define BEIT_CORE_VMATH_H

#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gemm.h" /* beit_bf16_value */

/* Columns per work item of the column reductions (bias and LayerNorm/LayerScale parameter
 * gradients): each thread walks every row of its block in order, so sums are race-free and
 * bitwise independent of the thread count and of this width. 16 floats = one cache line and one
 * 512-bit vector; wider blocks left threads idle at D = 192 (3 blocks on 2 threads). */
#define BEIT_COL_BLOCK 16

/* The other traversal of column reductions, for wide matrices (a 16-column block of a 3072-wide
 * one touches a new page at every row: a TLB miss per 64 bytes). Inside an OpenMP parallel
 * region, the calling thread's share of C columns: [*c0, *c1), whole BEIT_COL_BLOCKs, walked
 * BEIT_COL_CHUNK columns at a time over every row in order, so sums stay bitwise those of the
 * column blocks, for any thread count. */
#define BEIT_COL_CHUNK 512
static inline void beit_col_stripe(size_t C, size_t *c0, size_t *c1)
{
  size_t nt = (size_t)omp_get_num_threads(), t = (size_t)omp_get_thread_num();
  size_t blocks = (C + BEIT_COL_BLOCK - 1) / BEIT_COL_BLOCK, per = (blocks + nt - 1) / nt;
  *c0 = t * per * BEIT_COL_BLOCK < C ? t * per * BEIT_COL_BLOCK : C;
  *c1 = (t + 1) * per * BEIT_COL_BLOCK < C ? (t + 1) * per * BEIT_COL_BLOCK : C;
}

/* exp(x) for x in [-87, 88] (clamped outside; NaN propagates). exp(0) == 1 exactly. */
static inline float beit_vexpf(float x)
{
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  /* n = round(x / ln2) by the 1.5 * 2^23 trick: floorf does not vectorise under -std=c11 */
  float t = fmaf(x, 1.44269504088896341f, 12582912.0f);
  float n = t - 12582912.0f;
  float r = fmaf(n, -0.693359375f, x); /* ln2 split in two for an exact r */
  r = fmaf(n, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = fmaf(p, r, 1.3981999507e-3f);
  p = fmaf(p, r, 8.3334519073e-3f);
  p = fmaf(p, r, 4.1665795894e-2f);
  p = fmaf(p, r, 1.6666665459e-1f);
  p = fmaf(p, r, 5.0000001201e-1f);
  float y = fmaf(p, r * r, r) + 1.0f;
  int32_t bits = ((int32_t)n + 127) * 8388608; /* 2^n as float bits */
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return y * scale;
}

/* One row of the residual add with LayerScale and DropPath: out = x + s * (gamma * branch)
 * (gamma NULL: 1), the branch float32, or bfloat16 branch_h when branch is NULL. Always inlined,
 * as below. */
static inline __attribute__((always_inline)) void
beit_residual_row(float *out, const float *x, const float *branch, const uint16_t *branch_h,
                  const float *gamma, float s, size_t D)
{
  if (branch && gamma) {
#pragma omp simd
    for (size_t d = 0; d < D; d++)
      out[d] = x[d] + s * (gamma[d] * branch[d]);
  } else if (branch) {
#pragma omp simd
    for (size_t d = 0; d < D; d++)
      out[d] = x[d] + s * branch[d];
  } else if (gamma) {
#pragma omp simd
    for (size_t d = 0; d < D; d++)
      out[d] = x[d] + s * (gamma[d] * beit_bf16_value(branch_h[d]));
  } else {
#pragma omp simd
    for (size_t d = 0; d < D; d++)
      out[d] = x[d] + s * beit_bf16_value(branch_h[d]);
  }
}

/* One row: y = softmax(x + bias) (bias may be NULL); y may alias x. Subtracting the max keeps
 * exp <= 1. Always inlined: a kernel's AVX clones (core/isa.h) would otherwise call one baseline
 * copy of it. */
static inline __attribute__((always_inline)) void beit_softmax_row(float *y, const float *x, const float *bias, size_t C)
{
  float mx = -INFINITY;
  if (bias) {
#pragma omp simd reduction(max : mx)
    for (size_t c = 0; c < C; c++) {
      float v = x[c] + bias[c];
      y[c] = v;
      mx = v > mx ? v : mx;
    }
    x = y;
  } else {
#pragma omp simd reduction(max : mx)
    for (size_t c = 0; c < C; c++)
      mx = x[c] > mx ? x[c] : mx;
  }
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (size_t c = 0; c < C; c++) {
    float e = beit_vexpf(x[c] - mx);
    y[c] = e;
    sum += e;
  }
  float inv = 1.0f / sum;
#pragma omp simd
  for (size_t c = 0; c < C; c++)
    y[c] *= inv;
}

#endif
