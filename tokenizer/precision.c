/* The precision policy applied to the dVAE tokenizer (include/beit/precision.h): which kernels
 * its convolutions run on, and the bfloat16 copy of the weights.
 *
 * fp32 runs the float32 convolutions on the float32 weights, bitwise what the tokenizer always
 * computed. bf16 runs every convolution's product with bfloat16 operands (core/conv.h *_bf16:
 * the weights from params_h, the columns rounded as im2col writes them) and float32
 * accumulation; ReLU, pooling, upsampling, the Gumbel-softmax relaxation, the losses, every
 * gradient and the optimizer stay float32, and so does the decoder's one-hot input gather
 * (decode), which is a lookup, not a product. */
#include <stdlib.h>

#include "conv.h"
#include "dvae.h"
#include "gemm.h"

static int bf16(const struct beit_tokenizer *tok)
{
  return tok->precision == BEIT_PRECISION_BF16;
}

void beit_dvae_conv_forward(const struct beit_tokenizer *tok, const struct dvae_ctx *ctx,
                            const struct dvae_conv *cv, float *out, const float *inp, float scale,
                            int accumulate, unsigned flags, size_t B, size_t H)
{
  const float *bias = dvae_param(tok->params, tok, cv->b);
  if (bf16(tok))
    beit_conv2d_forward_bf16(out, ctx->scratch, inp, tok->params_h + tok->table.items[cv->w].offset,
                             bias, scale, accumulate, flags, B, cv->n_in, H, H, cv->n_out, cv->k,
                             ctx->nthreads);
  else
    beit_conv2d_forward(out, ctx->scratch, inp, dvae_param(tok->params, tok, cv->w), bias, scale,
                        accumulate, flags, B, cv->n_in, H, H, cv->n_out, cv->k, ctx->nthreads);
}

void beit_dvae_conv_backward(const struct beit_tokenizer *tok, const struct dvae_ctx *ctx,
                             const struct dvae_conv *cv, float *dinp, const float *dout,
                             const float *inp, float scale, unsigned flags, size_t B, size_t H)
{
  float *dw = dvae_param(ctx->grads, tok, cv->w), *db = dvae_param(ctx->grads, tok, cv->b);
  if (bf16(tok))
    beit_conv2d_backward_bf16(dinp, dw, db, ctx->scratch, dout, inp,
                              tok->params_h + tok->table.items[cv->w].offset, scale, flags, B,
                              cv->n_in, H, H, cv->n_out, cv->k, ctx->nthreads);
  else
    beit_conv2d_backward(dinp, dw, db, ctx->scratch, dout, inp,
                         dvae_param(tok->params, tok, cv->w), scale, flags, B, cv->n_in, H, H,
                         cv->n_out, cv->k, ctx->nthreads);
}

void beit_dvae_round_weights(struct beit_tokenizer *tok)
{
  if (bf16(tok))
    beit_to_bf16(tok->params_h, tok->params, tok->table.total);
  tok->params_h_stale = 0;
}

enum beit_status beit_tokenizer_set_precision(struct beit_tokenizer *tok, enum beit_precision p,
                                              struct beit_error *err)
{
  enum beit_status st = beit_precision_resolve(&p, p, err);
  if (st)
    return st;
  if (p == BEIT_PRECISION_BF16 && !tok->params_h) {
    tok->params_h = malloc(tok->table.total * sizeof *tok->params_h);
    if (!tok->params_h)
      return beit_error_set(err, BEIT_STATUS_NOMEM,
                            "tokenizer: bf16 weights: cannot allocate %.1f MiB",
                            (double)tok->table.total * 2.0 / 1048576.0);
  } else if (p == BEIT_PRECISION_FP32) {
    free(tok->params_h);
    tok->params_h = NULL;
  }
  tok->precision = p;
  beit_dvae_round_weights(tok);
  return BEIT_STATUS_OK;
}

enum beit_precision beit_tokenizer_precision(const struct beit_tokenizer *tok)
{
  return tok->precision;
}
