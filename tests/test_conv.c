/* Unit tests of core/conv.h: every fast kernel against its naive twin on odd shapes, with every
 * flag combination, scale and accumulate, and with batch/thread counts that take both the
 * parallel-over-items and the serial (threaded GEMM) paths, plus the row-chunked path of large
 * images; accumulate-into-d* and NULL-skip semantics of the backward. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "conv.h"
#include "rng.h"
#include "testing.h"
#include "testing_conv.h"



#define TOL 2e-5

static void test_conv(size_t B, size_t C, size_t H, size_t W, size_t OC, size_t K,
                      unsigned flags, float scale, int accumulate, int nthreads)
{
  char label[160];
  snprintf(label, sizeof label, "conv B%zu C%zu %zux%zu OC%zu K%zu flags%u acc%d t%d", B, C, H,
           W, OC, K, flags, accumulate, nthreads);
  const size_t ni = B * C * H * W, no = B * OC * H * W, nw = OC * C * K * K;
  float *inp = randn(ni, 1.0f), *w = randn(nw, 0.3f), *bias = randn(OC, 0.5f);
  float *out0 = randn(no, 1.0f);
  float *out = tdup(out0, no), *ref = tdup(out0, no);
  float *scratch = tgarbage(beit_conv2d_scratch_floats(C, H, W, OC, K, nthreads) * sizeof(float));
  beit_conv2d_forward(out, scratch, inp, w, bias, scale, accumulate, flags, B, C, H, W, OC, K,
                      nthreads);
  beit_conv2d_forward_naive(ref, inp, w, bias, scale, accumulate, flags, B, C, H, W, OC, K);
  check_closef(out, ref, no, TOL, "%s fwd", label);

  /* backward accumulates onto existing gradients */
  float *dout = randn(no, 1.0f);
  float *dinp0 = randn(ni, 1.0f), *dw0 = randn(nw, 1.0f), *db0 = randn(OC, 1.0f);
  float *dinp = tdup(dinp0, ni), *dw = tdup(dw0, nw), *db = tdup(db0, OC);
  float *rdinp = tdup(dinp0, ni), *rdw = tdup(dw0, nw), *rdb = tdup(db0, OC);
  unsigned bflags = flags & BEIT_CONV_RELU_INPUT;
  float *bscratch =
      tgarbage(beit_conv2d_backward_scratch_floats(C, H, W, OC, K, nthreads) * sizeof(float));
  beit_conv2d_backward(dinp, dw, db, bscratch, dout, inp, w, scale, bflags, B, C, H, W, OC, K,
                       nthreads);
  beit_conv2d_backward_naive(rdinp, rdw, rdb, dout, inp, w, scale, bflags, B, C, H, W, OC, K);
  check_closef(dinp, rdinp, ni, TOL, "%s dinp", label);
  check_closef(dw, rdw, nw, TOL, "%s dweight", label);
  check_closef(db, rdb, OC, TOL, "%s dbias", label);

  /* NULL outputs are skipped and leave the others unchanged */
  float *dw2 = tdup(dw0, nw);
  beit_conv2d_backward(NULL, dw2, NULL, bscratch, dout, inp, w, scale, bflags, B, C, H, W, OC, K,
                       nthreads);
  check_closef(dw2, rdw, nw, TOL, "%s dweight alone", label);
  float *di2 = tdup(dinp0, ni);
  beit_conv2d_backward(di2, NULL, NULL, bscratch, dout, inp, w, scale, bflags, B, C, H, W, OC, K,
                       nthreads);
  check_closef(di2, rdinp, ni, TOL, "%s dinp alone", label);
  tfree_all();
}

static void test_pool_upsample(size_t N, size_t H, size_t W)
{
  const size_t n = N * H * W, no = N * (H / 2) * (W / 2);
  float *inp = randn(n, 1.0f);
  /* ties inside windows: the gradient must go to the first maximum */
  for (size_t i = 0; i + 1 < n; i += 7)
    inp[i + 1] = inp[i];
  float *out = talloc(no * sizeof(float)), *ref = talloc(no * sizeof(float));
  beit_maxpool2_forward(out, inp, N, H, W);
  beit_maxpool2_forward_naive(ref, inp, N, H, W);
  check_close("maxpool2 fwd", out, ref, no, 0.0);
  float *dout = randn(no, 1.0f), *d0 = randn(n, 1.0f);
  float *d = tdup(d0, n), *rd = tdup(d0, n);
  beit_maxpool2_backward(d, dout, inp, N, H, W);
  beit_maxpool2_backward_naive(rd, dout, inp, N, H, W);
  check_close("maxpool2 bwd", d, rd, n, 0.0);

  const size_t nu = N * 4 * H * W;
  float *up = talloc(nu * sizeof(float)), *rup = talloc(nu * sizeof(float));
  beit_upsample2_forward(up, inp, N, H, W);
  beit_upsample2_forward_naive(rup, inp, N, H, W);
  check_close("upsample2 fwd", up, rup, nu, 0.0);
  float *gu = randn(nu, 1.0f);
  float *du = tdup(d0, n), *rdu = tdup(d0, n);
  beit_upsample2_backward(du, gu, N, H, W);
  beit_upsample2_backward_naive(rdu, gu, N, H, W);
  check_close("upsample2 bwd", du, rdu, n, 1e-6);

  float *r = talloc(n * sizeof(float)), *rr = talloc(n * sizeof(float));
  beit_relu_forward(r, inp, n);
  beit_relu_forward_naive(rr, inp, n);
  check_close("relu fwd", r, rr, n, 0.0);
  float *g = randn(n, 1.0f), *dr = tdup(d0, n), *rdr = tdup(d0, n);
  beit_relu_backward(dr, g, r, n);
  beit_relu_backward_naive(rdr, g, r, n);
  check_close("relu bwd", dr, rdr, n, 0.0);
  /* mask == backward into zeros */
  float *m = tdup(g, n), *z = talloc(n * sizeof(float));
  beit_relu_mask(m, r, n);
  beit_relu_backward_naive(z, g, r, n);
  check_close("relu mask", m, z, n, 0.0);
  /* in-place forward */
  float *ip = tdup(inp, n);
  beit_relu_forward(ip, ip, n);
  check_close("relu in place", ip, rr, n, 0.0);
  tfree_all();
}

int main(void)
{
  beit_rng_seed(&test_rng, 42, 0, 0);
  test_conv_sweep(test_conv, 0); /* odd shapes, all kernel sizes DALL-E uses */
  /* images large enough to be cut into several row chunks (im2col budget), serial and parallel */
  test_conv(1, 64, 70, 30, 8, 3, BEIT_CONV_RELU_INPUT, 1.0f, 0, 1);
  test_conv(1, 64, 70, 30, 8, 3, BEIT_CONV_RELU_INPUT | BEIT_CONV_RELU_OUTPUT, 0.5f, 1, 2);
  test_conv(2, 300, 24, 23, 5, 1, BEIT_CONV_RELU_INPUT, 1.0f, 0, 2);
  test_conv(3, 2, 40, 33, 9, 7, 0, 1.0f, 0, 2);
  /* fewer input than output channels: the input gradient by col2im for a whole image, by the
   * flipped-kernel convolution when the image is cut into row chunks */
  test_conv(2, 16, 60, 70, 32, 3, BEIT_CONV_RELU_INPUT, 1.0f, 0, 2);
  test_conv(3, 4, 10, 11, 12, 3, BEIT_CONV_RELU_INPUT, 0.5f, 1, 1);

  test_pool_upsample(5, 6, 8);
  test_pool_upsample(3, 7, 5); /* odd sizes: the trailing row/column is dropped by the pool */
  test_pool_upsample(64, 32, 32); /* takes the OpenMP paths */

  /* FLOP count: 2 * B * OC * H * W * C * K * K */
  CHECK(beit_conv2d_flops(8, 256, 112, 112, 64, 3) == 2.0 * 8 * 64 * 112 * 112 * 256 * 9);
  return test_summary("test_conv");
}
