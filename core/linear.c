/* Linear layers and strided bias adds: the GEMM half of the encoder.
 *
 * Fast path: one beit_gemm per product (float32: OpenBLAS's sgemm; bfloat16 operands: oneDNN,
 * float32 accumulation and outputs) plus OpenMP loops for the bias broadcast and the bias column
 * sums. Column sums are parallelised over column stripes (vmath.h), each thread walking all rows
 * of its stripe in order, so they are race-free and bitwise independent of the thread count.
 * Naive twins are plain loops, the test oracle. */
#include "gemm.h"
#include "isa.h"
#include "kernels.h"
#include "vmath.h"

#include <string.h>

/* acc (C) += sum over n < N of x[n*ld + c] (x float32, or bfloat16 x_h when x is NULL), and
 * out_h (N, C), when not NULL, = x rounded to bfloat16: one pass in column stripes (vmath.h). */
BEIT_KERNEL_CLONES
static void column_pass(beit_bf16 *out_h, float *acc, const float *x, const beit_bf16 *x_h,
                        size_t N, size_t C, size_t ld)
{
#pragma omp parallel if (N * C > 32768)
  {
    size_t s0, s1;
    beit_col_stripe(C, &s0, &s1);
    for (size_t c0 = s0; c0 < s1; c0 += BEIT_COL_CHUNK) {
      size_t w = s1 - c0 < BEIT_COL_CHUNK ? s1 - c0 : BEIT_COL_CHUNK;
      float sum[BEIT_COL_CHUNK] = {0};
      for (size_t n = 0; n < N; n++) {
        if (!x) {
          const beit_bf16 *row = x_h + n * ld + c0;
#pragma omp simd
          for (size_t j = 0; j < w; j++)
            sum[j] += beit_bf16_value(row[j]);
          continue;
        }
        const float *row = x + n * ld + c0;
        if (out_h) {
          beit_bf16 *out = out_h + n * C + c0;
#pragma omp simd
          for (size_t j = 0; j < w; j++) {
            out[j] = beit_bf16_round(row[j]);
            sum[j] += row[j];
          }
        } else {
#pragma omp simd
          for (size_t j = 0; j < w; j++)
            sum[j] += row[j];
        }
      }
      if (acc)
        for (size_t j = 0; j < w; j++)
          acc[c0 + j] += sum[j];
    }
  }
}

static void column_sums(float *acc, const float *x, size_t N, size_t C, size_t ld)
{
  column_pass(NULL, acc, x, NULL, N, C, ld);
}

/* dinp (N, C) = dinp_beta * dinp + dout (N, OC) . weight (OC, C), into a float32 or bfloat16
 * result (bfloat16: beta 0, times dinp.mul when given). */
static void input_gradient(struct beit_result dinp, float dinp_beta, struct beit_operand dout,
                           struct beit_operand weight, size_t N, size_t C, size_t OC)
{
  if (dinp.mul)
    beit_gemm_bf16_mul(dinp.data, dinp.ld, dout, weight, dinp.mul, N, C, OC);
  else if (dinp.dtype == BEIT_DTYPE_BF16)
    beit_gemm_bf16_out(dinp.data, dinp.ld, dout, weight, NULL, N, C, OC, 1.0f, NULL);
  else
    beit_gemm(dinp.data, dinp.ld, dout, weight, N, C, OC, 1.0f, dinp_beta);
}

/* dinp = dinp_beta * dinp + dout . weight (dinp.data NULL: skipped); dweight += dout^T . inp
 * (dout, inp, weight of one dtype); dbias += column sums of the float32 dout_f32. */
static void linear_backward(struct beit_result dinp, float dinp_beta, float *dweight,
                            float *dbias, const float *dout_f32, struct beit_operand dout,
                            struct beit_operand inp, struct beit_operand weight, size_t N,
                            size_t C, size_t OC)
{
  if (N == 0 || OC == 0 || C == 0)
    return;
  /* the weight gradient first, while dout is still warm from its producer (1% of a small-config
   * bf16 backward; neutral on BEiT-base) */
  if (dweight) { /* dweight (OC, C) += dout^T (OC, N) . inp (N, C) */
    struct beit_operand dout_t = dout;
    dout_t.trans = 1;
    beit_gemm(dweight, C, dout_t, inp, OC, C, N, 1.0f, 1.0f);
  }
  if (dinp.data)
    input_gradient(dinp, dinp_beta, dout, weight, N, C, OC);
  if (dbias)
    column_sums(dbias, dout_f32, N, OC, OC);
}

void beit_linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                         size_t N, size_t C, size_t OC)
{
  beit_gemm_bias(out, OC, beit_op_f32(inp, C, 0), beit_op_f32(weight, C, 1), bias, N, OC, C);
}

void beit_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight, size_t N, size_t C, size_t OC)
{
  struct beit_result d = {dinp, BEIT_DTYPE_F32, C};
  linear_backward(d, 1.0f, dweight, dbias, dout, beit_op_f32(dout, OC, 0),
                  beit_op_f32(inp, C, 0), beit_op_f32(weight, C, 0), N, C, OC);
}

void beit_linear_forward_bf16(struct beit_result out, const beit_bf16 *inp,
                              const beit_bf16 *weight, const float *bias, size_t N, size_t C,
                              size_t OC)
{
  struct beit_operand a = beit_op_bf16(inp, C, 0), w = beit_op_bf16(weight, C, 1);
  if (out.dtype == BEIT_DTYPE_BF16)
    beit_gemm_bf16_out(out.data, out.ld, a, w, bias, N, OC, C, 1.0f, NULL);
  else
    beit_gemm_bias(out.data, out.ld, a, w, bias, N, OC, C);
}

void beit_linear_backward_bf16(struct beit_result dinp, float *dweight, const beit_bf16 *dout_h,
                               const beit_bf16 *inp, const beit_bf16 *weight, size_t N, size_t C,
                               size_t OC)
{
  linear_backward(dinp, 0.0f, dweight, NULL, NULL, beit_op_bf16(dout_h, OC, 0),
                  beit_op_bf16(inp, C, 0), beit_op_bf16(weight, C, 0), N, C, OC);
}

void beit_to_bf16_colsum(beit_bf16 *out_h, float *acc, const float *x, size_t N, size_t C)
{
  column_pass(out_h, acc, x, NULL, N, C, C);
}

void beit_linear_forward_naive(float *out, const float *inp, const float *weight,
                               const float *bias, size_t N, size_t C, size_t OC)
{
  for (size_t n = 0; n < N; n++)
    for (size_t o = 0; o < OC; o++) {
      float acc = bias ? bias[o] : 0.0f;
      for (size_t c = 0; c < C; c++)
        acc += inp[n * C + c] * weight[o * C + c];
      out[n * OC + o] = acc;
    }
}

void beit_linear_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout,
                                const float *inp, const float *weight, size_t N, size_t C,
                                size_t OC)
{
  for (size_t n = 0; n < N; n++)
    for (size_t o = 0; o < OC; o++) {
      float d = dout[n * OC + o];
      for (size_t c = 0; c < C; c++) {
        if (dinp)
          dinp[n * C + c] += d * weight[o * C + c];
        if (dweight)
          dweight[o * C + c] += d * inp[n * C + c];
      }
      if (dbias)
        dbias[o] += d;
    }
}

BEIT_KERNEL_CLONES
void beit_bias_forward(float *out, const float *bias, size_t N, size_t C, size_t ld)
{
#pragma omp parallel for schedule(static) if (N * C > 32768)
  for (size_t n = 0; n < N; n++) {
    float *row = out + n * ld;
    for (size_t c = 0; c < C; c++)
      row[c] += bias[c];
  }
}

void beit_bias_backward(float *dbias, const float *dout, size_t N, size_t C, size_t ld)
{
  if (dbias)
    column_sums(dbias, dout, N, C, ld);
}

void beit_bias_backward_bf16(float *dbias, const uint16_t *dout_h, size_t N, size_t C, size_t ld)
{
  if (dbias)
    column_pass(NULL, dbias, NULL, dout_h, N, C, ld);
}
