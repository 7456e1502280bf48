/* The bfloat16 convolutions of core/conv.h (beit_conv2d_forward_bf16 / backward_bf16) against the
 * float32 naive twins run on the bf16-ROUNDED operands: inputs, weights and (backward) dout are
 * rounded to bfloat16 first, so the only bf16 error the kernels may have is the rounding of their
 * product operands. What remains is float32 accumulation error (tolerance as in test_conv.c); a
 * kernel that rounded anything else (bf16 accumulation, outputs, bias, the ReLU mask, dbias) or
 * mixed up a chunk would fail. Odd shapes, K = 1, 3, 5, 7, every flag combination, scale and
 * accumulate, one and two threads, serial and parallel items, row chunks, both input-gradient
 * strategies (flipped-kernel convolution, col2im). Exit 77 (skipped) where the CPU has no bf16
 * matrix products. */
#include <stdlib.h>
#include <string.h>

#include "beit/precision.h"
#include "conv.h"
#include "gemm.h"
#include "testing.h"
#include "testing_conv.h"

#define TOL 2e-5

/* x rounded to bf16 values, as floats (a copy), and as bf16 (h, may be NULL). */
static float *rounded(const float *x, size_t n, beit_bf16 *h)
{
  float *r = talloc(n * sizeof *r);
  for (size_t i = 0; i < n; i++) {
    beit_bf16 v = beit_bf16_round(x[i]);
    r[i] = beit_bf16_value(v);
    if (h)
      h[i] = v;
  }
  return r;
}

static void test_conv(size_t B, size_t C, size_t H, size_t W, size_t OC, size_t K,
                      unsigned flags, float scale, int accumulate, int nthreads)
{
  char label[160];
  snprintf(label, sizeof label, "bf16 conv B%zu C%zu %zux%zu OC%zu K%zu flags%u acc%d t%d", B, C,
           H, W, OC, K, flags, accumulate, nthreads);
  const size_t ni = B * C * H * W, no = B * OC * H * W, nw = OC * C * K * K;
  float *inp = randn(ni, 1.0f), *w = randn(nw, 0.3f), *bias = randn(OC, 0.5f);
  beit_bf16 *wh = talloc(nw * sizeof *wh);
  float *inp_r = rounded(inp, ni, NULL), *w_r = rounded(w, nw, wh);
  float *out0 = randn(no, 1.0f);
  float *out = tdup(out0, no), *ref = tdup(out0, no);
  float *scratch =
      tgarbage(beit_conv2d_bf16_scratch_floats(C, H, W, OC, K, nthreads) * sizeof(float));
  beit_conv2d_forward_bf16(out, scratch, inp, wh, bias, scale, accumulate, flags, B, C, H, W, OC,
                           K, nthreads);
  beit_conv2d_forward_naive(ref, inp_r, w_r, bias, scale, accumulate, flags, B, C, H, W, OC, K);
  check_closef(out, ref, no, TOL, "%s fwd", label);

  /* backward accumulates onto existing gradients; dbias from the float32 dout */
  float *dout = randn(no, 1.0f), *dout_r = rounded(dout, no, NULL);
  float *dinp0 = randn(ni, 1.0f), *dw0 = randn(nw, 1.0f), *db0 = randn(OC, 1.0f);
  float *dinp = tdup(dinp0, ni), *dw = tdup(dw0, nw), *db = tdup(db0, OC);
  float *rdinp = tdup(dinp0, ni), *rdw = tdup(dw0, nw), *rdb = tdup(db0, OC);
  const unsigned bflags = flags & BEIT_CONV_RELU_INPUT;
  float *bscratch =
      tgarbage(beit_conv2d_bf16_backward_scratch_floats(C, H, W, OC, K, nthreads) * sizeof(float));
  beit_conv2d_backward_bf16(dinp, dw, db, bscratch, dout, inp, wh, scale, bflags, B, C, H, W, OC,
                            K, nthreads);
  beit_conv2d_backward_naive(rdinp, rdw, NULL, dout_r, inp_r, w_r, scale, bflags, B, C, H, W, OC,
                             K);
  beit_conv2d_backward_naive(NULL, NULL, rdb, dout, inp_r, w_r, scale, bflags, B, C, H, W, OC, K);
  check_closef(dinp, rdinp, ni, TOL, "%s dinp", label);
  check_closef(dw, rdw, nw, TOL, "%s dweight", label);
  check_closef(db, rdb, OC, TOL, "%s dbias", label);

  /* NULL outputs are skipped and leave the others unchanged */
  float *dw2 = tdup(dw0, nw), *di2 = tdup(dinp0, ni);
  beit_conv2d_backward_bf16(NULL, dw2, NULL, bscratch, dout, inp, wh, scale, bflags, B, C, H, W,
                            OC, K, nthreads);
  check_closef(dw2, rdw, nw, TOL, "%s dweight alone", label);
  beit_conv2d_backward_bf16(di2, NULL, NULL, bscratch, dout, inp, wh, scale, bflags, B, C, H, W,
                            OC, K, nthreads);
  check_closef(di2, rdinp, ni, TOL, "%s dinp alone", label);
  tfree_all();
}

int main(void)
{
  if (test_bf16_missing("test_conv_bf16"))
    return TEST_SKIP;
  beit_rng_seed(&test_rng, 43, 0, 0);
  test_conv_sweep(test_conv, 1);
  /* row chunks (bf16 chunks are sized by bytes), serial and parallel items */
  test_conv(1, 64, 70, 30, 8, 3, BEIT_CONV_RELU_INPUT, 1.0f, 0, 1);
  test_conv(1, 64, 70, 30, 8, 3, BEIT_CONV_RELU_INPUT | BEIT_CONV_RELU_OUTPUT, 0.5f, 1, 2);
  test_conv(3, 64, 33, 31, 40, 3, BEIT_CONV_RELU_OUTPUT, 1.0f, 1, 2);
  test_conv(2, 300, 24, 23, 5, 1, BEIT_CONV_RELU_INPUT, 1.0f, 0, 2);
  test_conv(2, 96, 45, 47, 200, 1, 0, 0.3f, 1, 2); /* 1x1, chunked, accumulate */
  test_conv(3, 2, 40, 33, 9, 7, 0, 1.0f, 0, 2);
  /* fewer input than output channels: col2im for a whole image; the flipped-kernel convolution
   * when the image does not fit */
  test_conv(2, 16, 20, 21, 32, 3, BEIT_CONV_RELU_INPUT, 1.0f, 0, 2);
  test_conv(2, 16, 60, 70, 32, 3, BEIT_CONV_RELU_INPUT, 1.0f, 0, 2);
  return test_summary("test_conv_bf16");
}
