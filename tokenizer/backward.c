/* Encoder and decoder backward passes over the activations the training forward saved.
 * Gradients of the residual stream ping-pong between the two large backward buffers; the
 * blocks' hidden gradients between the two small ones. Parameter gradients accumulate into
 * tok->grads (zeroed by the step). */
#include <string.h>

#include "conv.h"
#include "dvae.h"

static void conv_bwd(struct beit_tokenizer *tok, const struct dvae_ctx *ctx,
                     const struct dvae_conv *cv, float *dinp, const float *dout, const float *inp,
                     float scale, unsigned flags, size_t B, size_t H)
{
  beit_dvae_conv_backward(tok, ctx, cv, dinp, dout, inp, scale, flags, B, H);
}

static void zero(float *p, size_t n)
{
  memset(p, 0, n * sizeof *p);
}

/* dx += d(block)/dx . dy, and the block's parameter gradients. */
static void block_backward(struct beit_tokenizer *tok, const struct dvae_ctx *ctx,
                           const struct dvae_block *b, float *dx, const float *dy,
                           const struct dvae_block_acts *a, size_t B)
{
  const size_t H = b->H, nh = B * b->n_hid * H * b->W;
  float *d1 = ctx->acts->d_r1, *d2 = ctx->acts->d_r2;
  zero(d1, nh);
  conv_bwd(tok, ctx, &b->conv[3], d1, dy, a->r3, tok->post_gain, 0, B, H);
  beit_relu_mask(d1, a->r3, nh);
  zero(d2, nh);
  conv_bwd(tok, ctx, &b->conv[2], d2, d1, a->r2, 1.0f, 0, B, H);
  beit_relu_mask(d2, a->r2, nh);
  zero(d1, nh);
  conv_bwd(tok, ctx, &b->conv[1], d1, d2, a->r1, 1.0f, 0, B, H);
  beit_relu_mask(d1, a->r1, nh);
  conv_bwd(tok, ctx, &b->conv[0], dx, d1, a->x, 1.0f, BEIT_CONV_RELU_INPUT, B, H);
  if (b->id.w >= 0) {
    conv_bwd(tok, ctx, &b->id, dx, dy, a->x, 1.0f, 0, B, H);
  } else {
    const size_t n = B * b->n_out * H * b->W;
#pragma omp parallel for schedule(static) if (n > 131072)
    for (size_t i = 0; i < n; i++)
      dx[i] += dy[i];
  }
}

/* From the gradient of the stack's last activation back to the gradient of its input-conv
 * output; returns the buffer that holds it. */
static float *blocks_backward(struct beit_tokenizer *tok, const struct dvae_ctx *ctx,
                              const struct dvae_stack *st, const struct dvae_block_acts *acts,
                              float *dcur, size_t B, int decoder)
{
  float *da = ctx->acts->d_a, *db = ctx->acts->d_b;
  for (size_t i = st->nblocks; i-- > 0;) {
    const struct dvae_block *b = &st->blocks[i];
    const struct dvae_block_acts *a = &acts[i];
    const size_t ny = B * b->n_out * b->H * b->W;
    if (b->resample) {
      float *dy = dcur == da ? db : da;
      zero(dy, ny);
      if (decoder)
        beit_upsample2_backward(dy, dcur, B * b->n_out, b->H, b->W);
      else
        beit_maxpool2_backward(dy, dcur, a->y, B * b->n_out, b->H, b->W);
      dcur = dy;
    }
    float *dx = dcur == da ? db : da;
    zero(dx, B * b->n_in * b->H * b->W);
    block_backward(tok, ctx, b, dx, dcur, a, B);
    dcur = dx;
  }
  return dcur;
}

static const float *stack_last(const struct dvae_stack *st, const struct dvae_block_acts *acts)
{
  const struct dvae_block_acts *a = &acts[st->nblocks - 1];
  return st->blocks[st->nblocks - 1].resample ? a->z : a->y;
}

/* Back through the decoder's stack with `decoder`, else the encoder's, from d_out (its output's
 * gradient) to its input in (d_in += the input's gradient; NULL: only weight gradients). */
static void stack_backward(struct beit_tokenizer *tok, const struct dvae_ctx *ctx, int decoder,
                           float *d_in, const float *d_out, const float *in, size_t B)
{
  const struct dvae_stack *st = decoder ? &tok->dec : &tok->enc;
  const struct dvae_block_acts *acts = decoder ? ctx->acts->dec : ctx->acts->enc;
  float *dcur = ctx->acts->d_a;
  zero(dcur, B * st->output.n_in * st->out_H * st->out_H);
  conv_bwd(tok, ctx, &st->output, dcur, d_out, stack_last(st, acts), 1.0f,
           BEIT_CONV_RELU_INPUT, B, st->out_H);
  dcur = blocks_backward(tok, ctx, st, acts, dcur, B, decoder);
  conv_bwd(tok, ctx, &st->input, d_in, dcur, in, 1.0f, 0, B, st->in_H);
}

void beit_dvae_decoder_backward(struct beit_tokenizer *tok, const struct dvae_ctx *ctx,
                                float *d_soft, const float *d_out, size_t B)
{
  zero(d_soft, B * tok->V * tok->gh * tok->gw);
  stack_backward(tok, ctx, 1, d_soft, d_out, ctx->acts->soft, B);
}

void beit_dvae_encoder_backward(struct beit_tokenizer *tok, const struct dvae_ctx *ctx,
                                const float *d_logits, const float *images, size_t B)
{
  stack_backward(tok, ctx, 0, NULL, d_logits, images, B);
}
