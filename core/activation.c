/* Elementwise and row activations: exact-form GELU, row softmax, row argmax.
 *
 * The fast kernels use branch-free exp and erf approximations that gcc vectorises under
 * `omp simd` (libm's expf/erff do not vectorise without -ffast-math, and erff costs ~15 ns):
 *   exp: Cephes-style range reduction + degree-6 polynomial, <= 2 ulp on [-87, 88];
 *   erf: Abramowitz-Stegun 7.1.26, |error| <= 1.5e-7, the same formula PyTorch's vectorised
 *        CPU GELU uses; GELU stays the erf form 0.5 x (1 + erf(x / sqrt 2)), not the tanh form.
 * The naive twins call libm expf/erff and are the accuracy oracle. */
#include "kernels.h"

#include <math.h>
#include <string.h>

#define INV_SQRT2 0.70710678118654752f
#define INV_SQRT_2PI 0.39894228040143268f

/* exp(x) for x in [-87, 88] (clamped outside; NaN propagates). exp(0) == 1 exactly. */
static inline float vexpf(float x)
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

/* erf(x), Abramowitz-Stegun 7.1.26. */
static inline float verff(float x)
{
  float ax = fabsf(x);
  float t = 1.0f / fmaf(0.3275911f, ax, 1.0f);
  float r = fmaf(1.061405429f, t, -1.453152027f);
  r = fmaf(r, t, 1.421413741f);
  r = fmaf(r, t, -0.284496736f);
  r = fmaf(r, t, 0.254829592f);
  float y = 1.0f - r * t * vexpf(-ax * ax);
  return copysignf(y, x);
}

void beit_gelu_forward(float *out, const float *inp, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) {
    float x = inp[i];
    out[i] = 0.5f * x * (1.0f + verff(x * INV_SQRT2));
  }
}

void beit_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) {
    float x = inp[i];
    float cdf = 0.5f * (1.0f + verff(x * INV_SQRT2));
    float pdf = INV_SQRT_2PI * vexpf(-0.5f * x * x);
    dinp[i] += dout[i] * (cdf + x * pdf);
  }
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

/* One row: y = softmax(x); y may alias x. Subtracting the max keeps exp <= 1. */
static inline void softmax_row(float *y, const float *x, size_t C)
{
  float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
  for (size_t c = 0; c < C; c++)
    mx = x[c] > mx ? x[c] : mx;
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (size_t c = 0; c < C; c++) {
    float e = vexpf(x[c] - mx);
    y[c] = e;
    sum += e;
  }
  float inv = 1.0f / sum;
#pragma omp simd
  for (size_t c = 0; c < C; c++)
    y[c] *= inv;
}

void beit_softmax_forward(float *out, const float *inp, size_t N, size_t C)
{
#pragma omp parallel for schedule(static) if (N * C > 16384)
  for (size_t n = 0; n < N; n++)
    softmax_row(out + n * C, inp + n * C, C);
}

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
