/* Convolutional kernels of the dVAE tokenizer (dall_e): 2-D convolution with odd kernel,
 * stride 1 and "same" zero padding, 2x2 max-pool, 2x nearest upsampling, ReLU.
 *
 * Layout is NCHW, as DALL-E and PyTorch have it. Conventions of core/kernels.h hold (STYLE.md 3-5):
 * outputs, inputs, weights, saved statistics, sizes; backward ACCUMULATES (+=) into every d*
 * output and skips a NULL one; each fast kernel has a plain-loop *_naive twin, the test oracle.
 *
 * The fast convolution is im2col over row chunks + a matrix product through core/gemm.h (a 1x1
 * convolution is a plain GEMM without im2col). Work is split over (image, row chunk) items: with
 * at least nthreads items, each OpenMP thread runs single-threaded GEMMs on its own items
 * (OpenBLAS's OpenMP build and oneDNN run serially inside a parallel region); with fewer, the
 * items run one after another on a threaded GEMM. Scratch memory is the caller's, sized once by
 * the *_scratch_floats queries for the thread count the kernel will be called with; nothing is
 * allocated per call.
 *
 * Mixed precision (*_bf16, include/beit/precision.h): the weights are a bfloat16 copy (uint16_t,
 * core/gemm.h's beit_bf16) and im2col writes bfloat16 columns (a 1x1 convolution rounds its input
 * rows once per chunk); the products run on oneDNN with float32 accumulation and float32
 * outputs. Inputs, outputs, bias, ReLU, scale/accumulate and every gradient stay float32 (the
 * backward rounds dout for its products; dbias sums the float32 dout). The result is the float32
 * kernel's on the rounded operands (round to nearest even, as beit_bf16_round, except that
 * float32 denormals round to zero), to float32 accumulation error. Needs
 * beit_precision_bf16_available(). */
#ifndef BEIT_CORE_CONV_H
#define BEIT_CORE_CONV_H

#include <stddef.h>
#include <stdint.h>

/* Flags of the fused activations of beit_conv2d_forward/backward. */
enum beit_conv_flag {
  BEIT_CONV_RELU_INPUT = 1u << 0,  /* convolve relu(inp) instead of inp */
  BEIT_CONV_RELU_OUTPUT = 1u << 1, /* forward only: out = relu(out) as the last step */
};

/* ---- 2-D convolution, stride 1, padding p = (K - 1) / 2, K odd ----
 * y = sum_{c,ky,kx} weight (OC, C, K, K)[o,c,ky,kx] * a (B, C, H, W)[b,c,h+ky-p,w+kx-p] + bias[o],
 * with a = relu(inp) under BEIT_CONV_RELU_INPUT, else inp; out of the image reads zero. Then
 *   out (B, OC, H, W) = act(accumulate ? out + scale * y : scale * y),
 * act = relu under BEIT_CONV_RELU_OUTPUT. bias (OC) may be NULL (zero).
 * DALL-E's residual branch "id(x) + post_gain * conv_4(...)" is one call with accumulate = 1.
 * scratch: beit_conv2d_scratch_floats(C, H, W, OC, K, nthreads) floats, contents undefined after. */
void beit_conv2d_forward(float *out, float *scratch, const float *inp, const float *weight,
                         const float *bias, float scale, int accumulate, unsigned flags,
                         size_t B, size_t C, size_t H, size_t W, size_t OC, size_t K,
                         int nthreads);
/* Backward of the forward above before its output activation (callers mask dout by the saved
 * output for BEIT_CONV_RELU_OUTPUT; see beit_relu_mask), with dy = scale * dout:
 *   dinp (B, C, H, W) += [inp > 0 under RELU_INPUT] * conv_transpose(dy, weight)
 *   dweight (OC, C, K, K) += sum_b dy (x) a;   dbias (OC) += sum over b, h, w of dy.
 * scratch: beit_conv2d_backward_scratch_floats(C, H, W, OC, K, nthreads) floats. */
void beit_conv2d_backward(float *dinp, float *dweight, float *dbias, float *scratch,
                          const float *dout, const float *inp, const float *weight, float scale,
                          unsigned flags, size_t B, size_t C, size_t H, size_t W, size_t OC,
                          size_t K, int nthreads);
size_t beit_conv2d_scratch_floats(size_t C, size_t H, size_t W, size_t OC, size_t K,
                                  int nthreads);
size_t beit_conv2d_backward_scratch_floats(size_t C, size_t H, size_t W, size_t OC, size_t K,
                                           int nthreads);
/* The same two with bfloat16 operands: weight (OC, C, K, K) bf16, everything else as above.
 * scratch: beit_conv2d_bf16_scratch_floats / beit_conv2d_bf16_backward_scratch_floats floats
 * (float-sized units; bf16 blocks are carved inside). */
void beit_conv2d_forward_bf16(float *out, float *scratch, const float *inp,
                              const uint16_t *weight, const float *bias, float scale,
                              int accumulate, unsigned flags, size_t B, size_t C, size_t H,
                              size_t W, size_t OC, size_t K, int nthreads);
void beit_conv2d_backward_bf16(float *dinp, float *dweight, float *dbias, float *scratch,
                               const float *dout, const float *inp, const uint16_t *weight,
                               float scale, unsigned flags, size_t B, size_t C, size_t H,
                               size_t W, size_t OC, size_t K, int nthreads);
size_t beit_conv2d_bf16_scratch_floats(size_t C, size_t H, size_t W, size_t OC, size_t K,
                                       int nthreads);
size_t beit_conv2d_bf16_backward_scratch_floats(size_t C, size_t H, size_t W, size_t OC,
                                                size_t K, int nthreads);
void beit_conv2d_forward_naive(float *out, const float *inp, const float *weight,
                               const float *bias, float scale, int accumulate, unsigned flags,
                               size_t B, size_t C, size_t H, size_t W, size_t OC, size_t K);
void beit_conv2d_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout,
                                const float *inp, const float *weight, float scale,
                                unsigned flags, size_t B, size_t C, size_t H, size_t W,
                                size_t OC, size_t K);
/* FLOPs of one forward (2 per multiply-add), for benchmarks and `beit info`. */
double beit_conv2d_flops(size_t B, size_t C, size_t H, size_t W, size_t OC, size_t K);

/* ---- 2x2 max-pool, stride 2 (torch MaxPool2d(2)): out (N, H/2, W/2) from inp (N, H, W) ----
 * N = batch * channels; odd trailing rows/columns are dropped. Backward routes dout to the first
 * maximum of each window in row-major order (torch's CPU rule), found again from inp. */
void beit_maxpool2_forward(float *out, const float *inp, size_t N, size_t H, size_t W);
void beit_maxpool2_backward(float *dinp, const float *dout, const float *inp, size_t N, size_t H,
                            size_t W);
void beit_maxpool2_forward_naive(float *out, const float *inp, size_t N, size_t H, size_t W);
void beit_maxpool2_backward_naive(float *dinp, const float *dout, const float *inp, size_t N,
                                  size_t H, size_t W);

/* ---- 2x nearest upsampling: out (N, 2H, 2W)[n,y,x] = inp (N, H, W)[n,y/2,x/2] ----
 * backward: dinp += sum of the 2x2 block of dout. */
void beit_upsample2_forward(float *out, const float *inp, size_t N, size_t H, size_t W);
void beit_upsample2_backward(float *dinp, const float *dout, size_t N, size_t H, size_t W);
void beit_upsample2_forward_naive(float *out, const float *inp, size_t N, size_t H, size_t W);
void beit_upsample2_backward_naive(float *dinp, const float *dout, size_t N, size_t H, size_t W);

/* ---- ReLU over n values: out = max(inp, 0) (out == inp allowed) ---- */
void beit_relu_forward(float *out, const float *inp, size_t n);
/* dinp += dout * [out > 0]  (out: the saved relu output, or its input: same sign) */
void beit_relu_backward(float *dinp, const float *dout, const float *out, size_t n);
/* In place: d *= [out > 0], for a gradient buffer the caller owns (the one non-accumulating
 * helper: it turns d(relu output) into d(relu input) without a second buffer). */
void beit_relu_mask(float *d, const float *out, size_t n);
void beit_relu_forward_naive(float *out, const float *inp, size_t n);
void beit_relu_backward_naive(float *dinp, const float *dout, const float *out, size_t n);

#endif
