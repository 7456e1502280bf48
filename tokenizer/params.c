/* The dVAE's parameter table (DALL-E names) and block structure, built from the config, and
 * DALL-E's initialisation. Encoder tensors come first, in DALL-E's state_dict order, then the
 * decoder's under "decoder.". */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv.h"
#include "dvae.h"

static enum beit_status add_conv(struct beit_tokenizer *tok, struct dvae_conv *cv,
                                 const char *prefix, size_t n_in, size_t n_out, size_t k,
                                 struct beit_error *err)
{
  char name[BEIT_TENSOR_NAME_MAX];
  size_t wshape[4] = {n_out, n_in, k, k}, bshape[1] = {n_out};
  cv->n_in = n_in;
  cv->n_out = n_out;
  cv->k = k;
  snprintf(name, sizeof name, "%s.w", prefix);
  cv->w = beit_tensor_table_add(&tok->table, name, 4, wshape);
  snprintf(name, sizeof name, "%s.b", prefix);
  cv->b = beit_tensor_table_add(&tok->table, name, 1, bshape);
  if (cv->w < 0 || cv->b < 0)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "tokenizer: cannot add tensor %s", name);
  tok->table.items[cv->b].no_decay = 1;
  return BEIT_STATUS_OK;
}

/* One stack: encoder (decoder = 0) or decoder. */
static enum beit_status build_stack(struct beit_tokenizer *tok, struct dvae_stack *st,
                                    int decoder, struct beit_error *err)
{
  const struct beit_tokenizer_config *c = &tok->cfg;
  const char *pre = decoder ? "decoder." : "";
  const size_t G = tok->G, nb = tok->nb, nh = (size_t)c->n_hid;
  static const size_t enc_k[4] = {3, 3, 3, 1}, dec_k[4] = {1, 3, 3, 3};
  const size_t *ks = decoder ? dec_k : enc_k;
  char name[BEIT_TENSOR_NAME_MAX];
  enum beit_status s;

  st->nblocks = G * nb;
  st->blocks = calloc(st->nblocks, sizeof *st->blocks);
  if (!st->blocks)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "tokenizer: out of memory");
  size_t width;
  snprintf(name, sizeof name, "%sblocks.input", pre);
  if (decoder) {
    width = (size_t)c->n_init;
    st->in_H = tok->gh;
    s = add_conv(tok, &st->input, name, tok->V, width, 1, err);
  } else {
    width = nh;
    st->in_H = tok->S;
    s = add_conv(tok, &st->input, name, tok->C, width, 7, err);
  }
  if (s)
    return s;
  for (size_t g = 1; g <= G; g++) {
    const size_t out = decoder ? nh << (G - g) : nh << (g - 1);
    const size_t shift = g - 1 < tok->npool ? g - 1 : tok->npool;
    const size_t H = decoder ? tok->gh << shift : tok->S >> shift;
    for (size_t i = 1; i <= nb; i++) {
      struct dvae_block *b = &st->blocks[(g - 1) * nb + (i - 1)];
      b->n_in = i == 1 ? width : out;
      b->n_out = out;
      b->n_hid = out / 4;
      b->H = b->W = H;
      b->resample = i == nb && g <= tok->npool;
      char bp[160];
      snprintf(bp, sizeof bp, "%sblocks.group_%zu.block_%zu", pre, g, i);
      b->id.w = b->id.b = -1;
      if (b->n_in != b->n_out) {
        snprintf(name, sizeof name, "%s.id_path", bp);
        if ((s = add_conv(tok, &b->id, name, b->n_in, b->n_out, 1, err)))
          return s;
      }
      const size_t ins[4] = {b->n_in, b->n_hid, b->n_hid, b->n_hid};
      const size_t outs[4] = {b->n_hid, b->n_hid, b->n_hid, b->n_out};
      for (int k = 0; k < 4; k++) {
        snprintf(name, sizeof name, "%s.res_path.conv_%d", bp, k + 1);
        if ((s = add_conv(tok, &b->conv[k], name, ins[k], outs[k], ks[k], err)))
          return s;
      }
    }
    width = out;
  }
  st->out_H = decoder ? tok->S : tok->gh;
  snprintf(name, sizeof name, "%sblocks.output.conv", pre);
  return add_conv(tok, &st->output, name, width, decoder ? tok->out_ch : tok->V, 1, err);
}

enum beit_status beit_dvae_build(struct beit_tokenizer *tok, struct beit_error *err)
{
  const struct beit_tokenizer_config *c = &tok->cfg;
  enum beit_status s = beit_tokenizer_config_validate(c, "tokenizer config", err);
  if (s)
    return s;
  tok->C = (size_t)c->input_channels;
  tok->S = (size_t)c->image_size;
  tok->V = (size_t)c->vocab_size;
  tok->G = (size_t)c->group_count;
  tok->nb = (size_t)c->n_blk_per_group;
  tok->npool = 0;
  for (long d = c->downsample; d > 1; d /= 2)
    tok->npool++;
  tok->gh = tok->gw = tok->S / (size_t)c->downsample;
  tok->out_ch = strcmp(c->recon_loss, "mse") == 0 ? tok->C : 2 * tok->C;
  const double nl = (double)(tok->G * tok->nb);
  tok->post_gain = (float)(1.0 / (nl * nl));
  beit_tensor_table_init(&tok->table);
  if ((s = build_stack(tok, &tok->enc, 0, err)))
    return s;
  if (c->decoder && (s = build_stack(tok, &tok->dec, 1, err)))
    return s;
  tok->max_act = beit_dvae_max_act(tok, &tok->max_hid);
  tok->params = beit_alloc_floats(tok->table.total);
  if (!tok->params)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "tokenizer: cannot allocate %zu parameters",
                          tok->table.total);
  return BEIT_STATUS_OK;
}

void beit_dvae_free_stacks(struct beit_tokenizer *tok)
{
  free(tok->enc.blocks);
  free(tok->dec.blocks);
  tok->enc.blocks = tok->dec.blocks = NULL;
  tok->enc.nblocks = tok->dec.nblocks = 0;
}

void beit_dvae_init_weights(struct beit_tokenizer *tok, uint64_t seed)
{
  for (size_t i = 0; i < tok->table.count; i++) {
    const struct beit_tensor *t = &tok->table.items[i];
    float *p = tok->params + t->offset;
    if (t->ndim == 1) {
      memset(p, 0, t->numel * sizeof *p);
      continue;
    }
    /* DALL-E's Conv2d: normal with std 1 / sqrt(n_in * k^2); one stream per tensor, so adding a
     * decoder does not change the encoder's draw. */
    struct beit_rng rng;
    beit_rng_seed(&rng, seed, 0x64766165 /* "dvae" */, i);
    const double std = 1.0 / sqrt((double)(t->shape[1] * t->shape[2] * t->shape[3]));
    for (size_t j = 0; j < t->numel; j++)
      p[j] = (float)(std * beit_rng_normal(&rng));
  }
}

static void stack_max(const struct dvae_stack *st, size_t in_ch, size_t *act, size_t *hid)
{
  size_t a = in_ch * st->in_H * st->in_H;
  a = a > st->input.n_out * st->in_H * st->in_H ? a : st->input.n_out * st->in_H * st->in_H;
  for (size_t i = 0; i < st->nblocks; i++) {
    const struct dvae_block *b = &st->blocks[i];
    size_t hw = b->H * b->W, y = b->n_out * hw, h = b->n_hid * hw;
    if (b->resample) /* upsampled output is 4x the block output */
      y = y > b->n_out * 4 * hw ? y : b->n_out * 4 * hw;
    a = a > y ? a : y;
    *hid = *hid > h ? *hid : h;
  }
  size_t o = st->output.n_out * st->out_H * st->out_H;
  a = a > o ? a : o;
  *act = *act > a ? *act : a;
}

size_t beit_dvae_max_act(const struct beit_tokenizer *tok, size_t *max_hidden)
{
  size_t act = 0, hid = 0;
  stack_max(&tok->enc, tok->C, &act, &hid);
  if (tok->dec.nblocks)
    stack_max(&tok->dec, tok->V, &act, &hid);
  *max_hidden = hid;
  return act;
}

/* Scratch of one convolution, enough for either precision (set at any time after planning). */
static size_t conv_need(const struct dvae_conv *cv, size_t H, int backward, int nt)
{
  const size_t C = cv->n_in, OC = cv->n_out, K = cv->k;
  size_t f = backward ? beit_conv2d_backward_scratch_floats(C, H, H, OC, K, nt)
                      : beit_conv2d_scratch_floats(C, H, H, OC, K, nt);
  size_t h = backward ? beit_conv2d_bf16_backward_scratch_floats(C, H, H, OC, K, nt)
                      : beit_conv2d_bf16_scratch_floats(C, H, H, OC, K, nt);
  return f > h ? f : h;
}

static size_t stack_scratch(const struct dvae_stack *st, int backward, int nt)
{
  size_t m = conv_need(&st->input, st->in_H, backward, nt);
  for (size_t i = 0; i < st->nblocks; i++) {
    const struct dvae_block *b = &st->blocks[i];
    for (int k = 0; k < 4; k++) {
      size_t n = conv_need(&b->conv[k], b->H, backward, nt);
      m = m > n ? m : n;
    }
    if (b->id.w >= 0) {
      size_t n = conv_need(&b->id, b->H, backward, nt);
      m = m > n ? m : n;
    }
  }
  size_t n = conv_need(&st->output, st->out_H, backward, nt);
  return m > n ? m : n;
}

size_t beit_dvae_conv_scratch(const struct beit_tokenizer *tok, int backward, int nthreads)
{
  size_t m = stack_scratch(&tok->enc, backward, nthreads);
  if (tok->dec.nblocks) {
    size_t n = stack_scratch(&tok->dec, backward, nthreads);
    m = m > n ? m : n;
  }
  return m;
}
