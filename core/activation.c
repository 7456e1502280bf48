/* Elementwise and row activations: exact-form GELU, row softmax, row argmax.
 *
 * The fast kernels use branch-free exp and erf approximations that gcc vectorises under
 * `omp simd` (libm's expf/erff do not vectorise without -ffast-math, and erff costs ~15 ns):
 *   exp: Cephes-style range reduction + degree-6 polynomial, <= 2 ulp on [-87, 88];
 *   erf: Abramowitz-Stegun 7.1.26, |error| <= 1.5e-7, the same formula PyTorch's vectorised
 *        CPU GELU uses; GELU stays the erf form 0.5 x (1 + erf(x / sqrt 2)), not the tanh form.
 * The naive twins call libm expf/erff and are the accuracy oracle. */
#include "gemm.h"
#include "isa.h"
#include "kernels.h"
#include "vmath.h"

#include <math.h>
#include <string.h>

#define INV_SQRT2 0.70710678118654752f
#define INV_SQRT_2PI 0.39894228040143268f

/* gelu(x) = x Phi(x), and d gelu / dx = Phi(x) + x phi(x) into *grad, with erf by
 * Abramowitz-Stegun 7.1.26: its exp(-(x/sqrt2)^2) is phi's exp(-x^2/2), computed once for both.
 * The one GELU formula of every kernel here (a caller that drops *grad pays nothing for it). */
static inline float gelu_and_grad(float x, float *grad)
{
  float ax = fabsf(x * INV_SQRT2);
  float e = beit_vexpf(-ax * ax);
  float t = 1.0f / fmaf(0.3275911f, ax, 1.0f);
  float r = fmaf(1.061405429f, t, -1.453152027f);
  r = fmaf(r, t, 1.421413741f);
  r = fmaf(r, t, -0.284496736f);
  r = fmaf(r, t, 0.254829592f);
  float cdf = 0.5f * (1.0f + copysignf(1.0f - r * t * e, x));
  *grad = cdf + x * INV_SQRT_2PI * e;
  return x * cdf;
}

static inline float gelu(float x)
{
  float unused;
  return gelu_and_grad(x, &unused);
}

static inline float gelu_grad(float x)
{
  float grad;
  gelu_and_grad(x, &grad);
  return grad;
}

BEIT_KERNEL_CLONES
void beit_gelu_forward(float *out, const float *inp, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++)
    out[i] = gelu(inp[i]);
}

#define CHUNK 512 /* values per block: computed in float32, then rounded (each loop vectorises) */

BEIT_KERNEL_CLONES
void beit_gelu_forward_bf16(uint16_t *out_h, uint16_t *grad_h, const uint16_t *inp_h, size_t n)
{
  const size_t blocks = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t blk = 0; blk < blocks; blk++) {
    size_t i0 = blk * CHUNK, len = n - i0 < CHUNK ? n - i0 : CHUNK;
    float y[CHUNK], g[CHUNK];
    if (grad_h) {
#pragma omp simd
      for (size_t j = 0; j < len; j++)
        y[j] = gelu_and_grad(beit_bf16_value(inp_h[i0 + j]), &g[j]);
#pragma omp simd
      for (size_t j = 0; j < len; j++) /* after the block is read: grad_h may be inp_h */
        grad_h[i0 + j] = beit_bf16_round(g[j]);
    } else {
#pragma omp simd
      for (size_t j = 0; j < len; j++)
        y[j] = gelu(beit_bf16_value(inp_h[i0 + j]));
    }
#pragma omp simd
    for (size_t j = 0; j < len; j++)
      out_h[i0 + j] = beit_bf16_round(y[j]);
  }
}

BEIT_KERNEL_CLONES
void beit_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++)
    dinp[i] += dout[i] * gelu_grad(inp[i]);
}

void beit_gelu_forward_naive(float *out, const float *inp, size_t n)
{
  for (size_t i = 0; i < n; i++)
    out[i] = 0.5f * inp[i] * (1.0f + erff(inp[i] * INV_SQRT2));
}

void beit_gelu_backward_naive(float *dinp, const float *dout, const float *inp, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    float x = inp[i];
    float d = 0.5f * (1.0f + erff(x * INV_SQRT2)) + x * INV_SQRT_2PI * expf(-0.5f * x * x);
    dinp[i] += dout[i] * d;
  }
}

BEIT_KERNEL_CLONES
void beit_softmax_forward(float *out, const float *inp, size_t N, size_t C)
{
#pragma omp parallel for schedule(static) if (N * C > 16384)
  for (size_t n = 0; n < N; n++)
    beit_softmax_row(out + n * C, inp + n * C, NULL, C);
}

BEIT_KERNEL_CLONES
void beit_softmax_backward(float *dinp, const float *dout, const float *out, size_t N, size_t C)
{
#pragma omp parallel for schedule(static) if (N * C > 16384)
  for (size_t n = 0; n < N; n++) {
    const float *y = out + n * C, *dy = dout + n * C;
    float *dx = dinp + n * C;
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (size_t c = 0; c < C; c++)
      dot += dy[c] * y[c];
#pragma omp simd
    for (size_t c = 0; c < C; c++)
      dx[c] += y[c] * (dy[c] - dot);
  }
}

void beit_softmax_forward_naive(float *out, const float *inp, size_t N, size_t C)
{
  for (size_t n = 0; n < N; n++) {
    const float *x = inp + n * C;
    float mx = -INFINITY;
    for (size_t c = 0; c < C; c++)
      if (x[c] > mx)
        mx = x[c];
    float sum = 0.0f;
    for (size_t c = 0; c < C; c++) {
      out[n * C + c] = expf(x[c] - mx);
      sum += out[n * C + c];
    }
    for (size_t c = 0; c < C; c++)
      out[n * C + c] /= sum;
  }
}

void beit_softmax_backward_naive(float *dinp, const float *dout, const float *out, size_t N,
                                 size_t C)
{
  for (size_t n = 0; n < N; n++) {
    float dot = 0.0f;
    for (size_t c = 0; c < C; c++)
      dot += dout[n * C + c] * out[n * C + c];
    for (size_t c = 0; c < C; c++)
      dinp[n * C + c] += out[n * C + c] * (dout[n * C + c] - dot);
  }
}

void beit_argmax_rows(int32_t *out, const float *inp, size_t N, size_t C)
{
#pragma omp parallel for schedule(static) if (N * C > 65536)
  for (size_t n = 0; n < N; n++) {
    const float *x = inp + n * C;
    size_t best = 0;
    for (size_t c = 1; c < C; c++)
      if (x[c] > x[best]) /* strict: the first index wins ties */
        best = c;
    out[n] = (int32_t)best;
  }
}
