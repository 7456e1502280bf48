/* The layer kernels of the encoder: forward/backward pairs over raw float buffers.
 *
 * Conventions (STYLE.md 3-5): arguments are outputs, inputs, weights, saved statistics, sizes;
 * shapes are row-major and given in the comment of each function; backward ACCUMULATES (+=)
 * into every d* output, so callers zero gradients once per step; a NULL d* output is skipped.
 * One exception, the mixed-precision (_bf16) backward kernels: the gradient they pass on to the
 * layer below (dinp, dqkv_h, dbranch_h, ...) is OVERWRITTEN, because it is always a fresh
 * per-block scratch and zeroing and re-reading it cost passes over memory that bf16 steps cannot
 * afford; their parameter gradients accumulate as everywhere.
 * Every fast kernel has a plain-loop twin named *_naive, always compiled, used as the test
 * oracle. Numerics are fp32; losses and norms are accumulated in double. */
#ifndef BEIT_CORE_KERNELS_H
#define BEIT_CORE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "gemm.h" /* struct beit_result */

/* ---- linear: out (N, OC) = inp (N, C) . weight (OC, C)^T + bias (OC); bias may be NULL ---- */
void beit_linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                         size_t N, size_t C, size_t OC);
/* dinp (N, C) += dout . weight; dweight (OC, C) += dout^T . inp; dbias (OC) += column sums. */
void beit_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight, size_t N, size_t C, size_t OC);
/* The same in mixed precision: bfloat16 inputs and weights (beit_bf16, core/gemm.h), float32
 * accumulation and bias; out is float32 or, for a consumer that rounds it anyway, bfloat16
 * (struct beit_result). Backward takes dout (N, OC) rounded to bf16 (dout_h, for both products):
 * whoever rounds it also adds its column sums to the bias gradient, in the same pass
 * (beit_to_bf16_colsum, or a fused producer such as beit_residual_branch_backward_bf16). dinp
 * (data NULL: none) is OVERWRITTEN (see the top), float32 or bfloat16 (times dinp.mul where given);
 * dweight accumulates. The naive twin is
 * the float32 kernel on the bf16-rounded values (tests/test_gemm.c checks the products that way). */
void beit_linear_forward_bf16(struct beit_result out, const uint16_t *inp, const uint16_t *weight,
                              const float *bias, size_t N, size_t C, size_t OC);
void beit_linear_backward_bf16(struct beit_result dinp, float *dweight, const uint16_t *dout_h,
                               const uint16_t *inp, const uint16_t *weight, size_t N, size_t C,
                               size_t OC);
/* out_h (N, C) = x rounded to bfloat16 and, when acc is not NULL, acc (C) += the column sums of x
 * (bitwise those of beit_bias_backward), in one pass over x. */
void beit_to_bf16_colsum(uint16_t *out_h, float *acc, const float *x, size_t N, size_t C);
void beit_linear_forward_naive(float *out, const float *inp, const float *weight,
                               const float *bias, size_t N, size_t C, size_t OC);
void beit_linear_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout,
                                const float *inp, const float *weight, size_t N, size_t C,
                                size_t OC);

/* ---- strided bias: out[n*ld + c] += bias[c] for n < N, c < C (the q and v biases of qkv) ---- */
void beit_bias_forward(float *out, const float *bias, size_t N, size_t C, size_t ld);
/* dbias (C) += sum over n of dout[n*ld + c] */
void beit_bias_backward(float *dbias, const float *dout, size_t N, size_t C, size_t ld);
/* The same over a bfloat16 gradient (float32 sums of its values). */
void beit_bias_backward_bf16(float *dbias, const uint16_t *dout_h, size_t N, size_t C, size_t ld);

/* ---- LayerNorm over the last dim, biased variance: out (N, C), mean/rstd (N) saved ---- */
void beit_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                            const float *weight, const float *bias, float eps, size_t N,
                            size_t C);
/* The same, the output rounded straight to bfloat16 (out_h, bf16 precision: the float32 output
 * would only be rounded for the next matrix product). Equal to rounding beit_layernorm_forward's. */
void beit_layernorm_forward_bf16(uint16_t *out_h, float *mean, float *rstd, const float *inp,
                                 const float *weight, const float *bias, float eps, size_t N,
                                 size_t C);
/* beit_residual_forward (out (B*T, D) = x + s * gamma * branch; branch NULL: the bfloat16
 * branch_h, as beit_residual_forward_bf16) and then the LayerNorm of out into ln (float32) or,
 * when ln_h is not NULL, ln_h (bfloat16), with mean and rstd (B*T): one pass over the rows, each
 * normalised while it is in cache. Bitwise the two kernels one after the other. */
void beit_residual_layernorm_forward(float *out, float *ln, uint16_t *ln_h, float *mean,
                                     float *rstd, const float *x, const float *branch,
                                     const uint16_t *branch_h, const float *gamma,
                                     const float *sample_scale, const float *weight,
                                     const float *bias, float eps, size_t B, size_t T, size_t D);
void beit_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *weight, const float *mean,
                             const float *rstd, size_t N, size_t C);
/* The same from a bfloat16 output gradient (the bf16 input gradient of the product the
 * LayerNorm feeds, as autocast hands it back), computing in float32: bitwise the float32 kernel
 * on dout_h's values. */
void beit_layernorm_backward_bf16(float *dinp, float *dweight, float *dbias,
                                  const uint16_t *dout_h, const float *inp, const float *weight,
                                  const float *mean, const float *rstd, size_t N, size_t C);
void beit_layernorm_forward_naive(float *out, float *mean, float *rstd, const float *inp,
                                  const float *weight, const float *bias, float eps, size_t N,
                                  size_t C);
void beit_layernorm_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout,
                                   const float *inp, const float *weight, const float *mean,
                                   const float *rstd, size_t N, size_t C);

/* ---- exact GELU 0.5 x (1 + erf(x / sqrt 2)), elementwise over n values ---- */
void beit_gelu_forward(float *out, const float *inp, size_t n);
void beit_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n);
/* Mixed precision, bfloat16 in and out (autocast's GELU: its input is the bf16 result of fc1):
 * out_h = beit_gelu_forward of the bf16 values, rounded; and, when grad_h is not NULL, GELU's
 * derivative at them, rounded, into grad_h (which may be inp_h: each block is read before it is
 * written). The backward is then one elementwise product, which rides in the store of fc2's
 * input-gradient product (beit_gemm_bf16_mul). */
void beit_gelu_forward_bf16(uint16_t *out_h, uint16_t *grad_h, const uint16_t *inp_h, size_t n);
void beit_gelu_forward_naive(float *out, const float *inp, size_t n);
void beit_gelu_backward_naive(float *dinp, const float *dout, const float *inp, size_t n);

/* ---- row softmax: out (N, C) = softmax(inp) along C ---- */
void beit_softmax_forward(float *out, const float *inp, size_t N, size_t C);
/* dinp (N, C) += out * (dout - sum_c(dout * out)) */
void beit_softmax_backward(float *dinp, const float *dout, const float *out, size_t N, size_t C);
void beit_softmax_forward_naive(float *out, const float *inp, size_t N, size_t C);
void beit_softmax_backward_naive(float *dinp, const float *dout, const float *out, size_t N,
                                 size_t C);

/* ---- multi-head self-attention core with relative position bias ----
 * qkv (B, T, 3D): each row is [q | k | v], head h at columns h*dh .. h*dh+dh-1, dh = D / nH.
 * logits[b,h,i,j] = dh^-0.5 * q_i . k_j + bias[h,i,j]   (bias (nH, T, T), NULL = none)
 * probs (B, nH, T, T) = softmax over j (saved for backward); out (B, T, D) = concat_h(P_h V_h). */
void beit_attention_forward(float *out, float *probs, const float *qkv, const float *bias,
                            size_t B, size_t T, size_t D, size_t nH);
/* dqkv (B, T, 3D) +=; dbias (nH, T, T) += sum over b of dlogits (NULL skips);
 * scratch: beit_attention_scratch_floats(B, T, nH) floats, contents undefined afterwards. */
void beit_attention_backward(float *dqkv, float *dbias, float *scratch, const float *dout,
                             const float *qkv, const float *probs, size_t B, size_t T, size_t D,
                             size_t nH);
size_t beit_attention_scratch_floats(size_t B, size_t T, size_t nH);
/* Mixed precision: the four products in bf16 (float32 accumulation) on head-major copies, their
 * results rounded to bf16 as autocast's are (the logits and dP included), the softmax and its
 * backward in float32. Forward reads the bf16 qkv rows qkv_rows_h (B, T, 3D), then uses them as
 * scratch, and writes qkv_h (3, B, nH, T, dh): q, k, v split into heads (saved for backward);
 * probs (B, nH, T, T) and its rounding probs_h; out_h (B, T, D) the heads' outputs, rounded (the
 * projection's input). Backward reads dout_h (B, T, D) in bf16; dqkv_h (B, T, 3D) is OVERWRITTEN
 * (all three blocks, rounded: the qkv products' operand), dbias +=; scratch_h: B*nH*T*T and
 * heads_h: 3*B*T*D bf16 values. */
void beit_attention_forward_bf16(uint16_t *out_h, float *probs, uint16_t *probs_h,
                                 uint16_t *qkv_h, uint16_t *qkv_rows_h, const float *bias,
                                 size_t B, size_t T, size_t D, size_t nH);
void beit_attention_backward_bf16(uint16_t *dqkv_h, float *dbias, uint16_t *scratch_h,
                                  uint16_t *heads_h, uint16_t *dout_h, const uint16_t *qkv_h,
                                  const float *probs, const uint16_t *probs_h, size_t B,
                                  size_t T, size_t D, size_t nH);
void beit_attention_forward_naive(float *out, float *probs, const float *qkv, const float *bias,
                                  size_t B, size_t T, size_t D, size_t nH);
void beit_attention_backward_naive(float *dqkv, float *dbias, const float *dout,
                                   const float *qkv, const float *probs, size_t B, size_t T,
                                   size_t D, size_t nH);

/* ---- residual + LayerScale + DropPath ----
 * out (B, T, D) = x + sample_scale[b] * gamma[d] * branch; gamma (D) NULL = 1 (no LayerScale),
 * sample_scale (B) NULL = 1 (no drop path; else 0 or 1/keep per sample, see below). */
void beit_residual_forward(float *out, const float *x, const float *branch, const float *gamma,
                           const float *sample_scale, size_t B, size_t T, size_t D);
/* The same with a bfloat16 branch (in bf16 precision the branch is the bf16 result of the
 * block's output product, as under autocast); float32 arithmetic, out float32. */
void beit_residual_forward_bf16(float *out, const float *x, const uint16_t *branch_h,
                                const float *gamma, const float *sample_scale, size_t B, size_t T,
                                size_t D);
/* dx += dout; dbranch += s*gamma*dout; dgamma += sum over (b,t) of s*branch*dout. */
void beit_residual_backward(float *dx, float *dbranch, float *dgamma, const float *dout,
                            const float *branch, const float *gamma, const float *sample_scale,
                            size_t B, size_t T, size_t D);
/* Mixed precision, the branch side of that backward fused with what the branch's output layer
 * does first: dbranch = s*gamma*dout rounded to bfloat16 into dbranch_h (OVERWRITTEN, see the
 * top: the layer's products' operand), its float32 column sums added to dbias (the layer's bias
 * gradient; NULL skips) and dgamma as above from the saved bfloat16 branch_h, in one pass;
 * bitwise beit_residual_backward (on branch_h's values) followed by beit_to_bf16_colsum. (dx +=
 * dout is left to the caller: the stream gradient itself.) */
void beit_residual_branch_backward_bf16(uint16_t *dbranch_h, float *dbias, float *dgamma,
                                        const float *dout, const uint16_t *branch_h,
                                        const float *gamma, const float *sample_scale, size_t B,
                                        size_t T, size_t D);
void beit_residual_forward_naive(float *out, const float *x, const float *branch,
                                 const float *gamma, const float *sample_scale, size_t B,
                                 size_t T, size_t D);
void beit_residual_backward_naive(float *dx, float *dbranch, float *dgamma, const float *dout,
                                  const float *branch, const float *gamma,
                                  const float *sample_scale, size_t B, size_t T, size_t D);
/* DropPath per sample (spec 1.3): scale[b] = floor(keep + u_b) / keep with keep = 1 - rate and
 * u_b = uniform[b] in [0, 1) drawn by the caller from the sample's own stream. rate 0 -> all 1. */
void beit_drop_path_scales(float *scale, const double *uniform, float rate, size_t B);

/* ---- mean pooling over patch tokens (t = 1 .. T-1; cls at t = 0 excluded) ----
 * out (B, D) = mean_t inp (B, T, D) */
void beit_meanpool_forward(float *out, const float *inp, size_t B, size_t T, size_t D);
void beit_meanpool_backward(float *dinp, const float *dout, size_t B, size_t T, size_t D);

/* ---- row gather / scatter: out (M, D) = inp[rows[m]]; backward dinp[rows[m]] += dout[m] ---- */
void beit_gather_rows_forward(float *out, const float *inp, const int32_t *rows, size_t M,
                              size_t D);
void beit_gather_rows_backward(float *dinp, const float *dout, const int32_t *rows, size_t M,
                               size_t D);

/* ---- mask-token replacement (spec 1.2): emb (B, N, D) rows with mask[b*N+i] != 0 are
 * overwritten by token (D). Backward: dtoken += masked rows of demb, then those rows of demb
 * are zeroed (the patch projection does not reach masked positions). ---- */
void beit_mask_tokens_forward(float *emb, const float *token, const uint8_t *mask, size_t B,
                              size_t N, size_t D);
void beit_mask_tokens_backward(float *demb, float *dtoken, const uint8_t *mask, size_t B,
                               size_t N, size_t D);

/* ---- cross-entropy with label smoothing over M rows of V classes ----
 * target distribution q = (1 - s) onehot(t) + s / V; loss = mean over rows of -sum q log p.
 * probs (M, V) saved softmax. Returns the loss; *correct (may be NULL) gets the number of rows
 * whose argmax equals the target. */
double beit_cross_entropy_forward(float *probs, long *correct, const float *logits,
                                  const int32_t *targets, float smoothing, size_t M, size_t V);
/* dlogits (M, V) += dloss * (p - q) / M */
void beit_cross_entropy_backward(float *dlogits, const float *probs, const int32_t *targets,
                                 float smoothing, float dloss, size_t M, size_t V);

/* ---- cross-entropy against soft targets (mixup/cutmix), mean over M rows ----
 * targets (M, V) rows of a distribution (timm SoftTargetCrossEntropy: loss = mean over rows of
 * -sum_c q_c log p_c). probs (M, V) saved softmax; *correct (may be NULL) gets the rows whose
 * argmax equals the argmax of the target row. */
double beit_soft_cross_entropy_forward(float *probs, long *correct, const float *logits,
                                       const float *targets, size_t M, size_t V);
/* dlogits (M, V) += dloss * (p - q * sum_c q_c) / M (= dloss (p - q) / M for a distribution) */
void beit_soft_cross_entropy_backward(float *dlogits, const float *probs, const float *targets,
                                      float dloss, size_t M, size_t V);

/* ---- sigmoid binary cross-entropy (multi-label), mean over all N*C elements ----
 * logits, targets (N, C), targets in [0, 1]; numerically stable form. */
double beit_bce_forward(const float *logits, const float *targets, size_t N, size_t C);
/* dlogits (N, C) += dloss * (sigmoid(logit) - target) / (N*C) */
void beit_bce_backward(float *dlogits, const float *logits, const float *targets, float dloss,
                       size_t N, size_t C);

/* ---- patch extraction (the patch-embedding conv as a linear map, spec 1.1) ----
 * patches (B * gh * gw, C*P*P) from images (B, C, H, W); patch index = gy*gw + gx, columns in
 * (c, ky, kx) order, gh = H/P, gw = W/P. */
void beit_patchify(float *patches, const float *images, size_t B, size_t C, size_t H, size_t W,
                   size_t P);

/* ---- relative position bias (spec 2) ----
 * index (T*T), T = Wh*Ww + 1; table has R = (2Wh-1)(2Ww-1) + 3 rows. */
void beit_relpos_index(int32_t *index, size_t Wh, size_t Ww);
/* bias (nH, T, T)[h,i,j] = table (R, nH)[index[i*T+j], h] */
void beit_relpos_forward(float *bias, const float *table, const int32_t *index, size_t T,
                         size_t nH);
/* dtable (R, nH) += scatter of dbias (nH, T, T) */
void beit_relpos_backward(float *dtable, const float *dbias, const int32_t *index, size_t T,
                          size_t nH);

/* ---- row argmax: out (N) = argmax along C of inp (N, C), first index on ties ---- */
void beit_argmax_rows(int32_t *out, const float *inp, size_t N, size_t C);

#endif
