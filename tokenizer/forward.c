/* Encoder and decoder forward passes. In training mode every activation goes to its own slot of
 * the training arena (planned in step.c); in inference mode two ping-pong buffers carry the
 * residual stream and two more the blocks' hidden activations, and an identity block adds its
 * residual branch in place. ReLUs are fused into the convolutions (conv.h flags), so relu(x)
 * before conv_1 and before the output conv is never stored. */
#include <string.h>

#include "conv.h"
#include "dvae.h"
#include "isa.h"

static void conv_fwd(struct beit_tokenizer *tok, const struct dvae_ctx *ctx,
                     const struct dvae_conv *cv, float *out, const float *inp, float scale,
                     int accumulate, unsigned flags, size_t B, size_t H)
{
  beit_dvae_conv_forward(tok, ctx, cv, out, inp, scale, accumulate, flags, B, H);
}

/* y = id(x) + post_gain * res(x); y == x allowed for an identity block (x is then consumed). */
static void block_forward(struct beit_tokenizer *tok, const struct dvae_ctx *ctx,
                          const struct dvae_block *b, float *y, float *r1, float *r2, float *r3,
                          const float *x, size_t B)
{
  const size_t H = b->H;
  if (b->id.w >= 0)
    conv_fwd(tok, ctx, &b->id, y, x, 1.0f, 0, 0, B, H);
  else if (y != x)
    memcpy(y, x, B * b->n_out * H * b->W * sizeof *y);
  conv_fwd(tok, ctx, &b->conv[0], r1, x, 1.0f, 0, BEIT_CONV_RELU_INPUT | BEIT_CONV_RELU_OUTPUT,
           B, H);
  conv_fwd(tok, ctx, &b->conv[1], r2, r1, 1.0f, 0, BEIT_CONV_RELU_OUTPUT, B, H);
  conv_fwd(tok, ctx, &b->conv[2], r3, r2, 1.0f, 0, BEIT_CONV_RELU_OUTPUT, B, H);
  conv_fwd(tok, ctx, &b->conv[3], y, r3, tok->post_gain, 1, 0, B, H);
}

static void resample_forward(float *out, const float *inp, const struct dvae_block *b, size_t B,
                             int decoder)
{
  if (decoder)
    beit_upsample2_forward(out, inp, B * b->n_out, b->H, b->W);
  else
    beit_maxpool2_forward(out, inp, B * b->n_out, b->H, b->W);
}

/* The blocks of a stack from its input-conv output h; returns the stack's last activation. */
static const float *blocks_forward(struct beit_tokenizer *tok, const struct dvae_ctx *ctx,
                                   const struct dvae_stack *st, float *h, size_t B,
                                   struct dvae_block_acts *acts, int decoder)
{
  float *x = h;
  for (size_t i = 0; i < st->nblocks; i++) {
    const struct dvae_block *b = &st->blocks[i];
    if (acts) {
      struct dvae_block_acts *a = &acts[i];
      block_forward(tok, ctx, b, a->y, a->r1, a->r2, a->r3, a->x, B);
      if (b->resample)
        resample_forward(a->z, a->y, b, B, decoder);
      x = b->resample ? a->z : a->y;
    } else {
      float *other = x == ctx->buf_x ? ctx->buf_y : ctx->buf_x;
      float *y = b->id.w < 0 ? x : other;
      block_forward(tok, ctx, b, y, ctx->buf_r1, ctx->buf_r2, ctx->buf_r1, x, B);
      if (b->resample) {
        float *z = y == ctx->buf_x ? ctx->buf_y : ctx->buf_x;
        resample_forward(z, y, b, B, decoder);
        y = z;
      }
      x = y;
    }
  }
  return x;
}

/* The decoder's stack with `decoder`, else the encoder's: input conv, blocks, output conv (of
 * the ReLU'd last activation) into out; the activations are kept when ctx->acts (training). */
static void stack_forward(struct beit_tokenizer *tok, const struct dvae_ctx *ctx, int decoder,
                          float *out, const float *in, size_t B)
{
  const struct dvae_stack *st = decoder ? &tok->dec : &tok->enc;
  struct dvae_train_acts *a = ctx->acts;
  float *h = a ? (decoder ? a->dec_h0 : a->enc_h0) : ctx->buf_x;
  conv_fwd(tok, ctx, &st->input, h, in, 1.0f, 0, 0, B, st->in_H);
  const float *x = blocks_forward(tok, ctx, st, h, B, a ? (decoder ? a->dec : a->enc) : NULL,
                                  decoder);
  conv_fwd(tok, ctx, &st->output, out, x, 1.0f, 0, BEIT_CONV_RELU_INPUT, B, st->out_H);
}

void beit_dvae_encoder_forward(struct beit_tokenizer *tok, const struct dvae_ctx *ctx,
                               float *logits, const float *images, size_t B)
{
  stack_forward(tok, ctx, 0, logits, images, B);
}

void beit_dvae_decoder_forward(struct beit_tokenizer *tok, const struct dvae_ctx *ctx,
                               float *out, const float *soft, size_t B)
{
  stack_forward(tok, ctx, 1, out, soft, B);
}

const float *beit_dvae_decoder_forward_tokens(struct beit_tokenizer *tok,
                                              const struct dvae_ctx *ctx, const int32_t *tokens,
                                              size_t B)
{
  const struct dvae_stack *st = &tok->dec;
  const size_t P = tok->gh * tok->gw, V = tok->V, n0 = st->input.n_out;
  const float *w = dvae_param(tok->params, tok, st->input.w); /* (n0, V, 1, 1) */
  const float *bias = dvae_param(tok->params, tok, st->input.b);
  float *h = ctx->buf_x;
  /* The input conv of a one-hot grid picks one weight column per position. */
  for (size_t b = 0; b < B; b++)
    for (size_t o = 0; o < n0; o++)
      for (size_t p = 0; p < P; p++)
        h[(b * n0 + o) * P + p] = w[o * V + (size_t)tokens[b * P + p]] + bias[o];
  const float *x = blocks_forward(tok, ctx, st, h, B, NULL, 1);
  float *out = x == ctx->buf_x ? ctx->buf_y : ctx->buf_x;
  conv_fwd(tok, ctx, &st->output, out, x, 1.0f, 0, BEIT_CONV_RELU_INPUT, B, st->out_H);
  return out;
}

void beit_dvae_inference_ctx(struct beit_tokenizer *tok, struct dvae_ctx *ctx, int w,
                             int workers, size_t b0)
{
  ctx->nthreads = workers > 1 ? 1 : tok->nthreads;
  ctx->scratch = tok->scratch + (workers > 1 ? (size_t)w * tok->scratch_slot : 0);
  ctx->grads = NULL;
  ctx->buf_x = tok->buf_x + b0 * tok->max_act;
  ctx->buf_y = tok->buf_y + b0 * tok->max_act;
  ctx->buf_r1 = tok->buf_r1 + b0 * tok->max_hid;
  ctx->buf_r2 = tok->buf_r2 + b0 * tok->max_hid;
  ctx->acts = NULL;
}

BEIT_KERNEL_CLONES
void beit_dvae_argmax(int32_t *tokens, const float *logits, size_t B, size_t V, size_t P)
{
  /* Channel-strided: sweep v outermost so each pass reads a contiguous row of P positions. */
#pragma omp parallel for schedule(static) if (B * V * P > 65536)
  for (size_t b = 0; b < B; b++) {
    const float *l = logits + b * V * P;
    int32_t *t = tokens + b * P;
    for (size_t p = 0; p < P; p++)
      t[p] = 0;
    for (size_t v = 1; v < V; v++) {
      const float *row = l + v * P;
      for (size_t p = 0; p < P; p++)
        if (row[p] > l[(size_t)t[p] * P + p])
          t[p] = (int32_t)v;
    }
  }
}
