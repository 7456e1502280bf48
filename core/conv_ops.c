/* The element-wise and pooling kernels around the convolutions: 2x2 max-pool, 2x nearest
 * upsampling, ReLU; each with backward and a plain-loop twin. Contracts in conv.h. */
#include "conv.h"
#include "isa.h"

#include <omp.h>

/* Parallelise only where the loop is big enough to pay for waking the team. */
#define OPS_PAR_MIN 32768

BEIT_KERNEL_CLONES
void beit_maxpool2_forward(float *out, const float *inp, size_t N, size_t H, size_t W)
{
  const size_t Ho = H / 2, Wo = W / 2;
#pragma omp parallel for schedule(static) if (N * H * W > OPS_PAR_MIN)
  for (size_t n = 0; n < N; n++)
    for (size_t y = 0; y < Ho; y++) {
      const float *r0 = inp + (n * H + 2 * y) * W, *r1 = r0 + W;
      float *o = out + (n * Ho + y) * Wo;
      for (size_t x = 0; x < Wo; x++) {
        float a = r0[2 * x] > r0[2 * x + 1] ? r0[2 * x] : r0[2 * x + 1];
        float b = r1[2 * x] > r1[2 * x + 1] ? r1[2 * x] : r1[2 * x + 1];
        o[x] = a > b ? a : b;
      }
    }
}

/* Index within the 2x2 window (0..3, row-major) of its first maximum. */
static int first_max(const float *r0, const float *r1)
{
  float v[4] = {r0[0], r0[1], r1[0], r1[1]};
  int k = 0;
  for (int i = 1; i < 4; i++)
    if (v[i] > v[k])
      k = i;
  return k;
}

void beit_maxpool2_backward(float *dinp, const float *dout, const float *inp, size_t N, size_t H,
                            size_t W)
{
  const size_t Ho = H / 2, Wo = W / 2;
#pragma omp parallel for schedule(static) if (N * H * W > OPS_PAR_MIN)
  for (size_t n = 0; n < N; n++)
    for (size_t y = 0; y < Ho; y++) {
      const float *r0 = inp + (n * H + 2 * y) * W, *r1 = r0 + W;
      float *d0 = dinp + (n * H + 2 * y) * W;
      const float *g = dout + (n * Ho + y) * Wo;
      for (size_t x = 0; x < Wo; x++) {
        int k = first_max(r0 + 2 * x, r1 + 2 * x);
        d0[(size_t)(k >> 1) * W + 2 * x + (size_t)(k & 1)] += g[x];
      }
    }
}

void beit_maxpool2_forward_naive(float *out, const float *inp, size_t N, size_t H, size_t W)
{
  const size_t Ho = H / 2, Wo = W / 2;
  for (size_t n = 0; n < N; n++)
    for (size_t y = 0; y < Ho; y++)
      for (size_t x = 0; x < Wo; x++) {
        float m = inp[(n * H + 2 * y) * W + 2 * x];
        for (size_t dy = 0; dy < 2; dy++)
          for (size_t dx = 0; dx < 2; dx++) {
            float v = inp[(n * H + 2 * y + dy) * W + 2 * x + dx];
            if (v > m)
              m = v;
          }
        out[(n * Ho + y) * Wo + x] = m;
      }
}

void beit_maxpool2_backward_naive(float *dinp, const float *dout, const float *inp, size_t N,
                                  size_t H, size_t W)
{
  const size_t Ho = H / 2, Wo = W / 2;
  for (size_t n = 0; n < N; n++)
    for (size_t y = 0; y < Ho; y++)
      for (size_t x = 0; x < Wo; x++) {
        size_t best = (n * H + 2 * y) * W + 2 * x;
        for (size_t dy = 0; dy < 2; dy++)
          for (size_t dx = 0; dx < 2; dx++) {
            size_t i = (n * H + 2 * y + dy) * W + 2 * x + dx;
            if (inp[i] > inp[best])
              best = i;
          }
        dinp[best] += dout[(n * Ho + y) * Wo + x];
      }
}

BEIT_KERNEL_CLONES
void beit_upsample2_forward(float *out, const float *inp, size_t N, size_t H, size_t W)
{
  const size_t W2 = 2 * W;
#pragma omp parallel for schedule(static) if (N * H * W > OPS_PAR_MIN / 4)
  for (size_t n = 0; n < N; n++)
    for (size_t y = 0; y < H; y++) {
      const float *s = inp + (n * H + y) * W;
      float *o0 = out + (n * 2 * H + 2 * y) * W2, *o1 = o0 + W2;
      for (size_t x = 0; x < W; x++) {
        o0[2 * x] = o0[2 * x + 1] = s[x];
        o1[2 * x] = o1[2 * x + 1] = s[x];
      }
    }
}

BEIT_KERNEL_CLONES
void beit_upsample2_backward(float *dinp, const float *dout, size_t N, size_t H, size_t W)
{
  const size_t W2 = 2 * W;
#pragma omp parallel for schedule(static) if (N * H * W > OPS_PAR_MIN / 4)
  for (size_t n = 0; n < N; n++)
    for (size_t y = 0; y < H; y++) {
      float *d = dinp + (n * H + y) * W;
      const float *g0 = dout + (n * 2 * H + 2 * y) * W2, *g1 = g0 + W2;
      for (size_t x = 0; x < W; x++)
        d[x] += (g0[2 * x] + g0[2 * x + 1]) + (g1[2 * x] + g1[2 * x + 1]);
    }
}

void beit_upsample2_forward_naive(float *out, const float *inp, size_t N, size_t H, size_t W)
{
  for (size_t n = 0; n < N; n++)
    for (size_t y = 0; y < 2 * H; y++)
      for (size_t x = 0; x < 2 * W; x++)
        out[(n * 2 * H + y) * 2 * W + x] = inp[(n * H + y / 2) * W + x / 2];
}

void beit_upsample2_backward_naive(float *dinp, const float *dout, size_t N, size_t H, size_t W)
{
  for (size_t n = 0; n < N; n++)
    for (size_t y = 0; y < 2 * H; y++)
      for (size_t x = 0; x < 2 * W; x++)
        dinp[(n * H + y / 2) * W + x / 2] += dout[(n * 2 * H + y) * 2 * W + x];
}

BEIT_KERNEL_CLONES
void beit_relu_forward(float *out, const float *inp, size_t n)
{
#pragma omp parallel for schedule(static) if (n > OPS_PAR_MIN * 4)
  for (size_t i = 0; i < n; i++)
    out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

BEIT_KERNEL_CLONES
void beit_relu_backward(float *dinp, const float *dout, const float *out, size_t n)
{
#pragma omp parallel for schedule(static) if (n > OPS_PAR_MIN * 4)
  for (size_t i = 0; i < n; i++)
    dinp[i] += out[i] > 0.0f ? dout[i] : 0.0f;
}

BEIT_KERNEL_CLONES
void beit_relu_mask(float *d, const float *out, size_t n)
{
#pragma omp parallel for schedule(static) if (n > OPS_PAR_MIN * 4)
  for (size_t i = 0; i < n; i++)
    d[i] = out[i] > 0.0f ? d[i] : 0.0f;
}

void beit_relu_forward_naive(float *out, const float *inp, size_t n)
{
  for (size_t i = 0; i < n; i++)
    out[i] = inp[i] < 0.0f ? 0.0f : inp[i];
}

void beit_relu_backward_naive(float *dinp, const float *dout, const float *out, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (out[i] > 0.0f)
      dinp[i] += dout[i];
}
