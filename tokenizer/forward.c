/* Encoder and decoder forward passes. In training mode every activation goes to its own slot of
 * the training arena (planned in step.c); in inference mode two ping-pong buffers carry the
 * residual stream and two more the blocks' hidden activations, and an identity block adds its
 * residual branch in place. ReLUs are fused into the convolutions (conv.h flags), so relu(x)
 * before conv_1 and before the output conv is never stored. */
#include <string.h>

#include "conv.h"
#include "dvae.h"

static void conv_fwd(struct beit_tokenizer *tok, const struct dvae_conv *cv, float *out,
                     const float *inp, float scale, int accumulate, unsigned flags, size_t B,
                     size_t H, float *scratch)
{
  beit_conv2d_forward(out, scratch, inp, dvae_param(tok->params, tok, cv->w),
                      dvae_param(tok->params, tok, cv->b), scale, accumulate, flags, B, cv->n_in,
                      H, H, cv->n_out, cv->k, tok->nthreads);
}

/* y = id(x) + post_gain * res(x); y == x allowed for an identity block (x is then consumed). */
static void block_forward(struct beit_tokenizer *tok, const struct dvae_block *b, float *y,
                          float *r1, float *r2, float *r3, const float *x, size_t B,
                          float *scratch)
{
  const size_t H = b->H;
  if (b->id.w >= 0)
    conv_fwd(tok, &b->id, y, x, 1.0f, 0, 0, B, H, scratch);
  else if (y != x)
    memcpy(y, x, B * b->n_out * H * b->W * sizeof *y);
  conv_fwd(tok, &b->conv[0], r1, x, 1.0f, 0, BEIT_CONV_RELU_INPUT | BEIT_CONV_RELU_OUTPUT, B, H,
           scratch);
  conv_fwd(tok, &b->conv[1], r2, r1, 1.0f, 0, BEIT_CONV_RELU_OUTPUT, B, H, scratch);
  conv_fwd(tok, &b->conv[2], r3, r2, 1.0f, 0, BEIT_CONV_RELU_OUTPUT, B, H, scratch);
  conv_fwd(tok, &b->conv[3], y, r3, tok->post_gain, 1, 0, B, H, scratch);
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
static const float *blocks_forward(struct beit_tokenizer *tok, const struct dvae_stack *st,
                                   float *h, size_t B, struct dvae_block_acts *acts,
                                   float *scratch, int decoder)
{
  float *x = h;
  for (size_t i = 0; i < st->nblocks; i++) {
    const struct dvae_block *b = &st->blocks[i];
    if (acts) {
      struct dvae_block_acts *a = &acts[i];
      block_forward(tok, b, a->y, a->r1, a->r2, a->r3, a->x, B, scratch);
      if (b->resample)
        resample_forward(a->z, a->y, b, B, decoder);
      x = b->resample ? a->z : a->y;
    } else {
      float *other = x == tok->buf_x ? tok->buf_y : tok->buf_x;
      float *y = b->id.w < 0 ? x : other;
      block_forward(tok, b, y, tok->buf_r1, tok->buf_r2, tok->buf_r1, x, B, scratch);
      if (b->resample) {
        float *z = y == tok->buf_x ? tok->buf_y : tok->buf_x;
        resample_forward(z, y, b, B, decoder);
        y = z;
      }
      x = y;
    }
  }
  return x;
}

void beit_dvae_encoder_forward(struct beit_tokenizer *tok, float *logits, const float *images,
                               size_t B, struct dvae_train_acts *acts)
{
  const struct dvae_stack *st = &tok->enc;
  float *scratch = acts ? acts->conv_scratch : tok->conv_scratch;
  float *h = acts ? acts->enc_h0 : tok->buf_x;
  conv_fwd(tok, &st->input, h, images, 1.0f, 0, 0, B, st->in_H, scratch);
  const float *x = blocks_forward(tok, st, h, B, acts ? acts->enc : NULL, scratch, 0);
  conv_fwd(tok, &st->output, logits, x, 1.0f, 0, BEIT_CONV_RELU_INPUT, B, st->out_H, scratch);
}

void beit_dvae_decoder_forward(struct beit_tokenizer *tok, float *out, const float *soft,
                               size_t B, struct dvae_train_acts *acts)
{
  const struct dvae_stack *st = &tok->dec;
  float *scratch = acts ? acts->conv_scratch : tok->conv_scratch;
  float *h = acts ? acts->dec_h0 : tok->buf_x;
  conv_fwd(tok, &st->input, h, soft, 1.0f, 0, 0, B, st->in_H, scratch);
  const float *x = blocks_forward(tok, st, h, B, acts ? acts->dec : NULL, scratch, 1);
  conv_fwd(tok, &st->output, out, x, 1.0f, 0, BEIT_CONV_RELU_INPUT, B, st->out_H, scratch);
}

const float *beit_dvae_decoder_forward_tokens(struct beit_tokenizer *tok, const int32_t *tokens,
                                              size_t B)
{
  const struct dvae_stack *st = &tok->dec;
  const size_t P = tok->gh * tok->gw, V = tok->V, n0 = st->input.n_out;
  const float *w = dvae_param(tok->params, tok, st->input.w); /* (n0, V, 1, 1) */
  const float *bias = dvae_param(tok->params, tok, st->input.b);
  float *h = tok->buf_x;
  /* The input conv of a one-hot grid picks one weight column per position. */
#pragma omp parallel for schedule(static) if (B * n0 * P > 65536)
  for (size_t b = 0; b < B; b++)
    for (size_t o = 0; o < n0; o++)
      for (size_t p = 0; p < P; p++)
        h[(b * n0 + o) * P + p] = w[o * V + (size_t)tokens[b * P + p]] + bias[o];
  const float *x = blocks_forward(tok, st, h, B, NULL, tok->conv_scratch, 1);
  float *out = x == tok->buf_x ? tok->buf_y : tok->buf_x;
  conv_fwd(tok, &st->output, out, x, 1.0f, 0, BEIT_CONV_RELU_INPUT, B, st->out_H,
           tok->conv_scratch);
  return out;
}

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
