/* One dVAE training step: the training arena (planned once), forward through encoder, Gumbel-
 * softmax relaxation and decoder, the relaxed-ELB loss, backward, gradient clipping and AdamW.
 * The loop that feeds batches, anneals tau and the KL weight, logs and checkpoints lives above
 * (mim/tokenizer_train.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dvae.h"
#include "optim.h"

struct carver {
  float *base; /* NULL on the counting pass */
  size_t used;
};

static float *carve(struct carver *c, size_t n)
{
  float *p = c->base ? c->base + c->used : NULL;
  c->used += (n + 15) / 16 * 16;
  return p;
}

static void carve_stack(struct carver *c, const struct dvae_stack *st, struct dvae_block_acts *a,
                        float *h0, size_t B, int decoder)
{
  float *x = h0;
  for (size_t i = 0; i < st->nblocks; i++) {
    const struct dvae_block *b = &st->blocks[i];
    const size_t hw = b->H * b->W;
    a[i].x = x;
    a[i].r1 = carve(c, B * b->n_hid * hw);
    a[i].r2 = carve(c, B * b->n_hid * hw);
    a[i].r3 = carve(c, B * b->n_hid * hw);
    a[i].y = carve(c, B * b->n_out * hw);
    a[i].z = b->resample ? carve(c, B * b->n_out * (decoder ? 4 * hw : hw / 4)) : NULL;
    x = b->resample ? a[i].z : a[i].y;
  }
}

static void carve_all(struct beit_tokenizer *tok, struct carver *c, size_t B)
{
  struct dvae_train_acts *t = &tok->t;
  const size_t S2 = tok->S * tok->S, VP = tok->V * tok->gh * tok->gw;
  size_t max_hid, max_act = beit_dvae_max_act(tok, &max_hid);
  t->enc_h0 = carve(c, B * tok->enc.input.n_out * S2);
  carve_stack(c, &tok->enc, t->enc, t->enc_h0, B, 0);
  t->logits = carve(c, B * VP);
  t->soft = carve(c, B * VP);
  t->dec_h0 = carve(c, B * tok->dec.input.n_out * tok->gh * tok->gw);
  carve_stack(c, &tok->dec, t->dec, t->dec_h0, B, 1);
  t->out = carve(c, B * tok->out_ch * S2);
  t->d_out = carve(c, B * tok->out_ch * S2);
  t->d_a = carve(c, B * max_act);
  t->d_b = carve(c, B * max_act);
  t->d_r1 = carve(c, B * max_hid);
  t->d_r2 = carve(c, B * max_hid);
  t->d_logits = carve(c, B * VP);
  t->d_soft = carve(c, B * VP);
  t->noise = carve(c, B * VP);
  t->tokens = (int32_t *)carve(c, B * tok->gh * tok->gw);
  t->counts = (long *)carve(c, tok->V * sizeof(long) / sizeof(float));
  size_t fw = beit_dvae_conv_scratch(tok, 0), bw = beit_dvae_conv_scratch(tok, 1);
  t->conv_scratch_floats = fw > bw ? fw : bw;
  t->conv_scratch = carve(c, t->conv_scratch_floats);
}

enum beit_status beit_dvae_train_init(struct beit_tokenizer *tok, size_t max_batch,
                                      struct beit_error *err)
{
  if (!tok->dec.nblocks)
    return beit_error_set(err, BEIT_STATUS_UNSUPPORTED,
                          "tokenizer: training needs a decoder (config \"decoder\": true)");
  if (tok->grads)
    return beit_error_set(err, BEIT_STATUS_USAGE, "tokenizer: training state already planned");
  struct dvae_train_acts *t = &tok->t;
  t->enc = calloc(tok->enc.nblocks, sizeof *t->enc);
  t->dec = calloc(tok->dec.nblocks, sizeof *t->dec);
  tok->grads = beit_alloc_floats(tok->table.total);
  tok->m = beit_alloc_floats(tok->table.total);
  tok->v = beit_alloc_floats(tok->table.total);
  struct carver c = {NULL, 0};
  carve_all(tok, &c, max_batch);
  t->arena = beit_alloc_floats(c.used);
  if (!t->enc || !t->dec || !tok->grads || !tok->m || !tok->v || !t->arena)
    return beit_error_set(err, BEIT_STATUS_NOMEM,
                          "tokenizer: cannot allocate training state for batch %zu "
                          "(%.1f MB of activations)",
                          max_batch, (double)c.used * 4e-6);
  c.base = t->arena;
  c.used = 0;
  carve_all(tok, &c, max_batch);
  t->max_batch = max_batch;
  return BEIT_STATUS_OK;
}

void beit_dvae_code_stats(const int32_t *tokens, size_t n, size_t V, long *counts,
                          size_t *used, double *perplexity)
{
  memset(counts, 0, V * sizeof *counts);
  for (size_t i = 0; i < n; i++)
    counts[tokens[i]]++;
  size_t u = 0;
  double h = 0.0;
  for (size_t v = 0; v < V; v++)
    if (counts[v]) {
      u++;
      double p = (double)counts[v] / (double)n;
      h -= p * log(p);
    }
  *used = u;
  *perplexity = exp(h);
}

void beit_dvae_forward_backward(struct beit_tokenizer *tok, const float *x, const float *noise,
                                size_t B, float tau, float kl_weight,
                                struct beit_dvae_step_stats *stats)
{
  struct dvae_train_acts *t = &tok->t;
  const size_t P = tok->gh * tok->gw, S2 = tok->S * tok->S;
  const double pixels = (double)(B * tok->C * S2);
  memset(tok->grads, 0, tok->table.total * sizeof *tok->grads);

  beit_dvae_encoder_forward(tok, t->logits, x, B, t);
  beit_dvae_gumbel_softmax_forward(t->soft, t->logits, noise, tau, B, tok->V, P);
  beit_dvae_decoder_forward(tok, t->out, t->soft, B, t);

  memset(t->d_out, 0, B * tok->out_ch * S2 * sizeof *t->d_out);
  double mae = 0.0;
  const double recon = beit_dvae_recon_loss(t->d_out, &mae, t->out, x, beit_dvae_recon_kind(tok),
                                            1.0f, B, tok->C, S2);
  memset(t->d_logits, 0, B * tok->V * P * sizeof *t->d_logits);
  /* d(loss)/d(kl_sum) = kl_weight / pixels: the KL is summed over positions and divided by the
   * pixel count, as DALL-E divides the whole ELB by 256*256*3. */
  const double kl_sum =
      beit_dvae_kl_uniform(t->d_logits, t->logits, (float)(kl_weight / pixels), B, tok->V, P);

  beit_dvae_decoder_backward(tok, t->d_soft, t->d_out, B);
  beit_dvae_gumbel_softmax_backward(t->d_logits, t->d_soft, t->soft, tau, B, tok->V, P);
  beit_dvae_encoder_backward(tok, t->d_logits, x, B);

  if (stats) {
    stats->recon = recon;
    stats->kl = kl_sum / (double)(B * P);
    stats->loss = recon + kl_weight * kl_sum / pixels;
    stats->mae = mae;
    beit_dvae_argmax(t->tokens, t->logits, B, tok->V, P);
    beit_dvae_code_stats(t->tokens, B * P, tok->V, t->counts, &stats->codes_used,
                         &stats->perplexity);
  }
}

void beit_dvae_train_step(struct beit_tokenizer *tok, const float *x, size_t B,
                          const struct beit_dvae_hparams *hp, struct beit_rng *rng,
                          struct beit_dvae_step_stats *stats)
{
  struct dvae_train_acts *t = &tok->t;
  beit_dvae_gumbel_noise(t->noise, B * tok->V * tok->gh * tok->gw, rng);
  beit_dvae_forward_backward(tok, x, t->noise, B, hp->tau, hp->kl_weight, stats);
  double norm = beit_clip_grad_norm(tok->grads, tok->table.total, hp->clip);
  if (stats)
    stats->grad_norm = norm;
  struct beit_adamw_hparams ah = {hp->lr, hp->weight_decay, hp->beta1, hp->beta2, hp->eps,
                                  hp->step};
  beit_adamw_update(tok->params, tok->grads, tok->m, tok->v, &tok->table, &ah);
}
