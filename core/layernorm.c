/* LayerNorm over the last dimension (biased variance, as torch.nn.LayerNorm).
 *
 * Forward and the dinp half of backward are parallel over rows. The dweight/dbias reductions
 * run in a second pass parallel over column stripes (each thread owns its columns and walks
 * every row in order, vmath.h): race-free and bitwise independent of the thread count, at the
 * price of reading dout and inp twice. */
#include "gemm.h"
#include "isa.h"
#include "kernels.h"
#include "vmath.h"

#include <math.h>

/* Mean and 1/std of one row: two passes, the sum of squared deviations (no cancellation in
 * E[x^2] - m^2). */
static inline void row_stats(float *mean, float *rstd, const float *x, float eps, size_t C)
{
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (size_t c = 0; c < C; c++)
    sum += x[c];
  float m = sum / (float)C;
  float sq = 0.0f;
#pragma omp simd reduction(+ : sq)
  for (size_t c = 0; c < C; c++) {
    float d = x[c] - m;
    sq += d * d;
  }
  *mean = m;
  *rstd = 1.0f / sqrtf(sq / (float)C + eps);
}

/* One row: y (float32) or y_h (bfloat16, rounded once) = LayerNorm of x; its mean and 1/std. Always
 * inlined: each kernel passes NULL for one output, so the loop has no branch left. */
static inline __attribute__((always_inline)) void layernorm_row(float *y, beit_bf16 *y_h,
                                                                float *mean, float *rstd,
                                                                const float *x,
                                                                const float *weight,
                                                                const float *bias, float eps,
                                                                size_t C)
{
  float m, s;
  row_stats(&m, &s, x, eps, C);
  for (size_t c = 0; c < C; c++) {
    float v = (x[c] - m) * s * (weight ? weight[c] : 1.0f) + (bias ? bias[c] : 0.0f);
    if (y_h)
      y_h[c] = beit_bf16_round(v);
    else
      y[c] = v;
  }
  if (mean)
    *mean = m;
  if (rstd)
    *rstd = s;
}

BEIT_KERNEL_CLONES
void beit_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                            const float *weight, const float *bias, float eps, size_t N,
                            size_t C)
{
#pragma omp parallel for schedule(static) if (N * C > 16384)
  for (size_t n = 0; n < N; n++)
    layernorm_row(out + n * C, NULL, mean ? mean + n : NULL, rstd ? rstd + n : NULL, inp + n * C,
                  weight, bias, eps, C);
}

BEIT_KERNEL_CLONES
void beit_layernorm_forward_bf16(uint16_t *out_h, float *mean, float *rstd, const float *inp,
                                 const float *weight, const float *bias, float eps, size_t N,
                                 size_t C)
{
#pragma omp parallel for schedule(static) if (N * C > 16384)
  for (size_t n = 0; n < N; n++)
    layernorm_row(NULL, out_h + n * C, mean ? mean + n : NULL, rstd ? rstd + n : NULL,
                  inp + n * C, weight, bias, eps, C);
}

BEIT_KERNEL_CLONES
void beit_residual_layernorm_forward(float *out, float *ln, uint16_t *ln_h, float *mean,
                                     float *rstd, const float *x, const float *branch,
                                     const uint16_t *branch_h, const float *gamma,
                                     const float *sample_scale, const float *weight,
                                     const float *bias, float eps, size_t B, size_t T, size_t D)
{
#pragma omp parallel for schedule(static) if (B * T * D > 16384)
  for (size_t n = 0; n < B * T; n++) {
    float s = sample_scale ? sample_scale[n / T] : 1.0f;
    beit_residual_row(out + n * D, x + n * D, branch ? branch + n * D : NULL,
                      branch ? NULL : branch_h + n * D, gamma, s, D);
    if (ln_h)
      layernorm_row(NULL, ln_h + n * D, mean + n, rstd + n, out + n * D, weight, bias, eps, D);
    else
      layernorm_row(ln + n * D, NULL, mean + n, rstd + n, out + n * D, weight, bias, eps, D);
  }
}

/* The backward of LayerNorm from dout, float32, or (h) bfloat16 dout_h, in two always-inlined
 * parts that the kernels below run inside their own parallel regions (an OpenMP region written
 * in an inline function would be outlined from it at baseline ISA, not from the AVX clones):
 * one row's input gradient, dx += ..., and the calling thread's column stripe of the weight and
 * bias gradients. h is a constant in each kernel, so the loads have no branch left. */
#define DY(i) (h ? beit_bf16_value(dy_h[i]) : dy[i])

static inline __attribute__((always_inline)) void
layernorm_backward_row(float *dx, const float *dy, const beit_bf16 *dy_h, int h, const float *x,
                       const float *weight, float m, float s, size_t C)
{
  /* dnorm = weight * dy; dx = s * (dnorm - mean(dnorm) - xhat * mean(dnorm * xhat)) */
  float a = 0.0f, b = 0.0f;
#pragma omp simd reduction(+ : a, b)
  for (size_t c = 0; c < C; c++) {
    float dn = DY(c) * (weight ? weight[c] : 1.0f);
    a += dn;
    b += dn * (x[c] - m) * s;
  }
  a /= (float)C;
  b /= (float)C;
  for (size_t c = 0; c < C; c++) {
    float xhat = (x[c] - m) * s;
    float dn = DY(c) * (weight ? weight[c] : 1.0f);
    dx[c] += (dn - a - xhat * b) * s;
  }
}

static inline __attribute__((always_inline)) void
layernorm_backward_sums(float *dweight, float *dbias, const float *dout, const beit_bf16 *dout_h,
                        int h, const float *inp, const float *mean, const float *rstd, size_t N,
                        size_t C)
{
  size_t s0, s1; /* column stripes, every row in order (vmath.h) */
  beit_col_stripe(C, &s0, &s1);
  for (size_t c0 = s0; c0 < s1; c0 += BEIT_COL_CHUNK) {
    size_t w = s1 - c0 < BEIT_COL_CHUNK ? s1 - c0 : BEIT_COL_CHUNK;
    float sw[BEIT_COL_CHUNK] = {0}, sb[BEIT_COL_CHUNK] = {0};
    for (size_t n = 0; n < N; n++) {
      const float *x = inp + n * C + c0, *dy = h ? NULL : dout + n * C + c0;
      const beit_bf16 *dy_h = h ? dout_h + n * C + c0 : NULL;
      float m = mean[n], s = rstd[n];
#pragma omp simd
      for (size_t c = 0; c < w; c++) {
        sw[c] += (x[c] - m) * s * DY(c);
        sb[c] += DY(c);
      }
    }
    for (size_t c = 0; c < w; c++) {
      if (dweight)
        dweight[c0 + c] += sw[c];
      if (dbias)
        dbias[c0 + c] += sb[c];
    }
  }
}
#undef DY

BEIT_KERNEL_CLONES
void beit_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *weight, const float *mean,
                             const float *rstd, size_t N, size_t C)
{
  if (dinp) {
#pragma omp parallel for schedule(static) if (N * C > 16384)
    for (size_t n = 0; n < N; n++)
      layernorm_backward_row(dinp + n * C, dout + n * C, NULL, 0, inp + n * C, weight, mean[n],
                             rstd[n], C);
  }
  if (dweight || dbias) {
#pragma omp parallel if (N * C > 16384)
    layernorm_backward_sums(dweight, dbias, dout, NULL, 0, inp, mean, rstd, N, C);
  }
}

BEIT_KERNEL_CLONES
void beit_layernorm_backward_bf16(float *dinp, float *dweight, float *dbias,
                                  const uint16_t *dout_h, const float *inp, const float *weight,
                                  const float *mean, const float *rstd, size_t N, size_t C)
{
  if (dinp) {
#pragma omp parallel for schedule(static) if (N * C > 16384)
    for (size_t n = 0; n < N; n++)
      layernorm_backward_row(dinp + n * C, NULL, dout_h + n * C, 1, inp + n * C, weight, mean[n],
                             rstd[n], C);
  }
  if (dweight || dbias) {
#pragma omp parallel if (N * C > 16384)
    layernorm_backward_sums(dweight, dbias, NULL, dout_h, 1, inp, mean, rstd, N, C);
  }
}

void beit_layernorm_forward_naive(float *out, float *mean, float *rstd, const float *inp,
                                  const float *weight, const float *bias, float eps, size_t N,
                                  size_t C)
{
  for (size_t n = 0; n < N; n++) {
    const float *x = inp + n * C;
    float m = 0.0f;
    for (size_t c = 0; c < C; c++)
      m += x[c];
    m /= (float)C;
    float v = 0.0f;
    for (size_t c = 0; c < C; c++)
      v += (x[c] - m) * (x[c] - m);
    v /= (float)C;
    float s = 1.0f / sqrtf(v + eps);
    for (size_t c = 0; c < C; c++)
      out[n * C + c] =
          (x[c] - m) * s * (weight ? weight[c] : 1.0f) + (bias ? bias[c] : 0.0f);
    if (mean)
      mean[n] = m;
    if (rstd)
      rstd[n] = s;
  }
}

void beit_layernorm_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout,
                                   const float *inp, const float *weight, const float *mean,
                                   const float *rstd, size_t N, size_t C)
{
  for (size_t n = 0; n < N; n++) {
    const float *x = inp + n * C, *dy = dout + n * C;
    float m = mean[n], s = rstd[n];
    float a = 0.0f, b = 0.0f;
    for (size_t c = 0; c < C; c++) {
      float w = weight ? weight[c] : 1.0f;
      a += w * dy[c];
      b += w * dy[c] * (x[c] - m) * s;
    }
    a /= (float)C;
    b /= (float)C;
    for (size_t c = 0; c < C; c++) {
      float w = weight ? weight[c] : 1.0f;
      float xhat = (x[c] - m) * s;
      if (dinp)
        dinp[n * C + c] += (w * dy[c] - a - xhat * b) * s;
      if (dweight)
        dweight[c] += xhat * dy[c];
      if (dbias)
        dbias[c] += dy[c];
    }
  }
}
