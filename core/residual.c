/* Data-movement kernels around the blocks: residual add with LayerScale and DropPath, the
 * per-sample DropPath scales, mean pooling, row gather/scatter, mask-token replacement and
 * patch extraction.
 *
 * Everything is memory-bound: OpenMP over rows. Reductions into a shared vector (dgamma,
 * scatter into repeated rows, dtoken) are parallel over column blocks, each thread walking the
 * rows in order, so they are race-free and bitwise independent of the thread count. */
#include "isa.h"
#include "kernels.h"
#include "vmath.h"

#include <math.h>
#include <string.h>

BEIT_KERNEL_CLONES
void beit_residual_forward(float *out, const float *x, const float *branch, const float *gamma,
                           const float *sample_scale, size_t B, size_t T, size_t D)
{
  const long rows = (long)(B * T);
#pragma omp parallel for schedule(static) if (B * T * D > 32768)
  for (long r = 0; r < rows; r++) {
    size_t b = (size_t)r / T, o = (size_t)r * D;
    beit_residual_row(out + o, x + o, branch + o, NULL, gamma,
                      sample_scale ? sample_scale[b] : 1.0f, D);
  }
}

BEIT_KERNEL_CLONES
void beit_residual_forward_bf16(float *out, const float *x, const uint16_t *branch_h,
                                const float *gamma, const float *sample_scale, size_t B, size_t T,
                                size_t D)
{
  const long rows = (long)(B * T);
#pragma omp parallel for schedule(static) if (B * T * D > 32768)
  for (long r = 0; r < rows; r++) {
    size_t b = (size_t)r / T, o = (size_t)r * D;
    beit_residual_row(out + o, x + o, NULL, branch_h + o, gamma,
                      sample_scale ? sample_scale[b] : 1.0f, D);
  }
}

BEIT_KERNEL_CLONES
void beit_residual_backward(float *dx, float *dbranch, float *dgamma, const float *dout,
                            const float *branch, const float *gamma, const float *sample_scale,
                            size_t B, size_t T, size_t D)
{
  const long rows = (long)(B * T);
  if (dx || dbranch) {
#pragma omp parallel for schedule(static) if (B * T * D > 32768)
    for (long r = 0; r < rows; r++) {
      size_t b = (size_t)r / T, o = (size_t)r * D;
      float s = sample_scale ? sample_scale[b] : 1.0f;
      if (dx) {
#pragma omp simd
        for (size_t d = 0; d < D; d++)
          dx[o + d] += dout[o + d];
      }
      if (dbranch) {
#pragma omp simd
        for (size_t d = 0; d < D; d++)
          dbranch[o + d] += s * (gamma ? gamma[d] : 1.0f) * dout[o + d];
      }
    }
  }
  if (dgamma && gamma) {
#pragma omp parallel if (B * T * D > 32768)
    {
      size_t s0, s1; /* column stripes, every row in order (vmath.h) */
      beit_col_stripe(D, &s0, &s1);
      for (size_t d0 = s0; d0 < s1; d0 += BEIT_COL_CHUNK) {
        size_t w = s1 - d0 < BEIT_COL_CHUNK ? s1 - d0 : BEIT_COL_CHUNK;
        float acc[BEIT_COL_CHUNK] = {0};
        for (size_t b = 0; b < B; b++) {
          float s = sample_scale ? sample_scale[b] : 1.0f, part[BEIT_COL_CHUNK] = {0};
          for (size_t t = 0; t < T; t++) {
            size_t o = (b * T + t) * D + d0;
#pragma omp simd
            for (size_t d = 0; d < w; d++)
              part[d] += branch[o + d] * dout[o + d];
          }
          for (size_t d = 0; d < w; d++)
            acc[d] += s * part[d];
        }
        for (size_t d = 0; d < w; d++)
          dgamma[d0 + d] += acc[d];
      }
    }
  }
}

BEIT_KERNEL_CLONES
void beit_residual_branch_backward_bf16(uint16_t *dbranch_h, float *dbias, float *dgamma,
                                        const float *dout, const uint16_t *branch_h,
                                        const float *gamma, const float *sample_scale, size_t B,
                                        size_t T, size_t D)
{
  /* column stripes (vmath.h), rows in order: each column's sums in beit_residual_backward's and
   * the column pass's order, for any thread count */
#pragma omp parallel if (B * T * D > 32768)
  {
    size_t s0, s1;
    beit_col_stripe(D, &s0, &s1);
    for (size_t c0 = s0; c0 < s1; c0 += BEIT_COL_CHUNK) {
      size_t w = s1 - c0 < BEIT_COL_CHUNK ? s1 - c0 : BEIT_COL_CHUNK;
      float bias_sum[BEIT_COL_CHUNK] = {0}, gamma_sum[BEIT_COL_CHUNK] = {0};
      float g[BEIT_COL_CHUNK];
      for (size_t j = 0; j < w; j++)
        g[j] = gamma ? gamma[c0 + j] : 1.0f;
      for (size_t b = 0; b < B; b++) {
        float s = sample_scale ? sample_scale[b] : 1.0f, part[BEIT_COL_CHUNK] = {0};
        for (size_t t = 0; t < T; t++) {
          size_t o = (b * T + t) * D + c0;
#pragma omp simd
          for (size_t j = 0; j < w; j++) {
            float d = s * g[j] * dout[o + j];
            part[j] += beit_bf16_value(branch_h[o + j]) * dout[o + j];
            dbranch_h[o + j] = beit_bf16_round(d);
            bias_sum[j] += d;
          }
        }
        for (size_t j = 0; j < w; j++)
          gamma_sum[j] += s * part[j];
      }
      for (size_t j = 0; j < w; j++) {
        if (dbias)
          dbias[c0 + j] += bias_sum[j];
        if (dgamma && gamma)
          dgamma[c0 + j] += gamma_sum[j];
      }
    }
  }
}

void beit_residual_forward_naive(float *out, const float *x, const float *branch,
                                 const float *gamma, const float *sample_scale, size_t B,
                                 size_t T, size_t D)
{
  for (size_t b = 0; b < B; b++)
    for (size_t t = 0; t < T; t++)
      for (size_t d = 0; d < D; d++) {
        size_t i = (b * T + t) * D + d;
        float s = sample_scale ? sample_scale[b] : 1.0f;
        out[i] = x[i] + s * ((gamma ? gamma[d] : 1.0f) * branch[i]);
      }
}

void beit_residual_backward_naive(float *dx, float *dbranch, float *dgamma, const float *dout,
                                  const float *branch, const float *gamma,
                                  const float *sample_scale, size_t B, size_t T, size_t D)
{
  for (size_t b = 0; b < B; b++)
    for (size_t t = 0; t < T; t++)
      for (size_t d = 0; d < D; d++) {
        size_t i = (b * T + t) * D + d;
        float s = sample_scale ? sample_scale[b] : 1.0f;
        if (dx)
          dx[i] += dout[i];
        if (dbranch)
          dbranch[i] += s * (gamma ? gamma[d] : 1.0f) * dout[i];
        if (dgamma && gamma)
          dgamma[d] += s * branch[i] * dout[i];
      }
}

void beit_drop_path_scales(float *scale, const double *uniform, float rate, size_t B)
{
  /* keep = 1 - rate in double, as timm/unilm compute it from a Python float; rate >= 1 drops
   * every sample (the reference would divide 0 by 0). */
  double keep = 1.0 - (double)rate;
  for (size_t b = 0; b < B; b++) {
    if (rate <= 0.0f)
      scale[b] = 1.0f;
    else if (keep <= 0.0)
      scale[b] = 0.0f;
    else
      scale[b] = (float)(floor(keep + uniform[b]) / keep);
  }
}

BEIT_KERNEL_CLONES
void beit_meanpool_forward(float *out, const float *inp, size_t B, size_t T, size_t D)
{
  const float inv = T > 1 ? 1.0f / (float)(T - 1) : 0.0f;
#pragma omp parallel for schedule(static) if (B * T * D > 32768)
  for (size_t b = 0; b < B; b++) {
    float *o = out + b * D;
    memset(o, 0, D * sizeof *o);
    for (size_t t = 1; t < T; t++) {
      const float *x = inp + (b * T + t) * D;
#pragma omp simd
      for (size_t d = 0; d < D; d++)
        o[d] += x[d];
    }
    for (size_t d = 0; d < D; d++)
      o[d] *= inv;
  }
}

BEIT_KERNEL_CLONES
void beit_meanpool_backward(float *dinp, const float *dout, size_t B, size_t T, size_t D)
{
  if (!dinp)
    return;
  const float inv = T > 1 ? 1.0f / (float)(T - 1) : 0.0f;
  const long rows = (long)(B * T);
#pragma omp parallel for schedule(static) if (B * T * D > 32768)
  for (long r = 0; r < rows; r++) {
    size_t b = (size_t)r / T, t = (size_t)r % T;
    if (t == 0) /* cls is not pooled */
      continue;
    float *dx = dinp + (size_t)r * D;
    const float *dy = dout + b * D;
#pragma omp simd
    for (size_t d = 0; d < D; d++)
      dx[d] += dy[d] * inv;
  }
}

void beit_gather_rows_forward(float *out, const float *inp, const int32_t *rows, size_t M,
                              size_t D)
{
#pragma omp parallel for schedule(static) if (M * D > 32768)
  for (size_t m = 0; m < M; m++)
    memcpy(out + m * D, inp + (size_t)rows[m] * D, D * sizeof *out);
}

BEIT_KERNEL_CLONES
void beit_gather_rows_backward(float *dinp, const float *dout, const int32_t *rows, size_t M,
                               size_t D)
{
  if (!dinp)
    return;
  /* rows may repeat: parallel over column blocks, rows in order within each block */
  size_t nblocks = (D + BEIT_COL_BLOCK - 1) / BEIT_COL_BLOCK;
#pragma omp parallel for schedule(static) if (M * D > 32768)
  for (size_t blk = 0; blk < nblocks; blk++) {
    size_t d0 = blk * BEIT_COL_BLOCK, w = D - d0 < BEIT_COL_BLOCK ? D - d0 : BEIT_COL_BLOCK;
    for (size_t m = 0; m < M; m++) {
      float *dx = dinp + (size_t)rows[m] * D + d0;
      const float *dy = dout + m * D + d0;
      for (size_t d = 0; d < w; d++)
        dx[d] += dy[d];
    }
  }
}

void beit_mask_tokens_forward(float *emb, const float *token, const uint8_t *mask, size_t B,
                              size_t N, size_t D)
{
  const long rows = (long)(B * N);
#pragma omp parallel for schedule(static) if (B * N * D > 32768)
  for (long r = 0; r < rows; r++)
    if (mask[r])
      memcpy(emb + (size_t)r * D, token, D * sizeof *emb);
}

BEIT_KERNEL_CLONES
void beit_mask_tokens_backward(float *demb, float *dtoken, const uint8_t *mask, size_t B,
                               size_t N, size_t D)
{
  const size_t rows = B * N;
  if (dtoken) {
    size_t nblocks = (D + BEIT_COL_BLOCK - 1) / BEIT_COL_BLOCK;
#pragma omp parallel for schedule(static) if (B * N * D > 32768)
    for (size_t blk = 0; blk < nblocks; blk++) {
      size_t d0 = blk * BEIT_COL_BLOCK, w = D - d0 < BEIT_COL_BLOCK ? D - d0 : BEIT_COL_BLOCK;
      float acc[BEIT_COL_BLOCK] = {0};
      for (size_t r = 0; r < rows; r++) {
        if (!mask[r])
          continue;
        const float *dy = demb + r * D + d0;
        for (size_t d = 0; d < w; d++)
          acc[d] += dy[d];
      }
      for (size_t d = 0; d < w; d++)
        dtoken[d0 + d] += acc[d];
    }
  }
#pragma omp parallel for schedule(static) if (B * N * D > 32768)
  for (size_t r = 0; r < rows; r++)
    if (mask[r])
      memset(demb + r * D, 0, D * sizeof *demb);
}

void beit_patchify(float *patches, const float *images, size_t B, size_t C, size_t H, size_t W,
                   size_t P)
{
  const size_t gh = H / P, gw = W / P, K = C * P * P;
  const long rows = (long)(B * gh);
#pragma omp parallel for schedule(static) if (B * C * H * W > 32768)
  for (long r = 0; r < rows; r++) {
    size_t b = (size_t)r / gh, gy = (size_t)r % gh;
    for (size_t gx = 0; gx < gw; gx++) {
      float *dst = patches + ((b * gh + gy) * gw + gx) * K;
      for (size_t c = 0; c < C; c++)
        for (size_t ky = 0; ky < P; ky++)
          memcpy(dst + (c * P + ky) * P,
                 images + ((b * C + c) * H + gy * P + ky) * W + gx * P, P * sizeof *dst);
    }
  }
}
