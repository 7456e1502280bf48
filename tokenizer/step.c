/* One dVAE training step: the training arena (planned once), forward through encoder, Gumbel-
 * softmax relaxation and decoder, the relaxed-ELB loss, backward, gradient clipping and AdamW.
 * The loop that feeds batches, anneals tau and the KL weight, logs and checkpoints lives above
 * (mim/tokenizer_train.c).
 *
 * A batch of at least nthreads images is split into one contiguous slice per thread; each runs
 * forward and backward of its slice with single-threaded kernels into a private gradient
 * buffer, and the buffers are summed once at the end (dvae.h, struct dvae_ctx). Losses are
 * normalised by the whole batch, so the result does not depend on the split beyond float
 * summation order. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "dvae.h"
#include "optim.h"

#define GRAD_SLOT_FLOATS ((size_t)64 << 20) /* 256 MB of per-slice gradients at most */

/* A batch-major buffer of per_image floats per image; the pointer is image b0's. */
static float *carve_b(struct beit_arena *c, size_t per_image, size_t max_batch, size_t b0)
{
  float *p = beit_arena_carve(c, max_batch * per_image);
  return p ? p + b0 * per_image : NULL;
}

static void carve_stack(struct beit_arena *c, const struct dvae_stack *st, struct dvae_block_acts *a,
                        float *h0, size_t B, size_t b0, int decoder)
{
  float *x = h0;
  for (size_t i = 0; i < st->nblocks; i++) {
    const struct dvae_block *b = &st->blocks[i];
    const size_t hw = b->H * b->W;
    a[i].x = x;
    a[i].r1 = carve_b(c, b->n_hid * hw, B, b0);
    a[i].r2 = carve_b(c, b->n_hid * hw, B, b0);
    a[i].r3 = carve_b(c, b->n_hid * hw, B, b0);
    a[i].y = carve_b(c, b->n_out * hw, B, b0);
    a[i].z = b->resample ? carve_b(c, b->n_out * (decoder ? 4 * hw : hw / 4), B, b0) : NULL;
    x = b->resample ? a[i].z : a[i].y;
  }
}

/* The view of worker slice starting at image b0 (every training buffer is batch-major). */
static void carve_view(struct beit_tokenizer *tok, struct beit_arena *c, size_t B, size_t b0,
                       struct dvae_train_acts *t)
{
  const size_t S2 = tok->S * tok->S, P = tok->gh * tok->gw, VP = tok->V * P;
  t->enc_h0 = carve_b(c, tok->enc.input.n_out * S2, B, b0);
  carve_stack(c, &tok->enc, t->enc, t->enc_h0, B, b0, 0);
  t->logits = carve_b(c, VP, B, b0);
  t->soft = carve_b(c, VP, B, b0);
  t->dec_h0 = carve_b(c, tok->dec.input.n_out * P, B, b0);
  carve_stack(c, &tok->dec, t->dec, t->dec_h0, B, b0, 1);
  t->out = carve_b(c, tok->out_ch * S2, B, b0);
  t->d_out = carve_b(c, tok->out_ch * S2, B, b0);
  t->d_a = carve_b(c, tok->max_act, B, b0);
  t->d_b = carve_b(c, tok->max_act, B, b0);
  t->d_r1 = carve_b(c, tok->max_hid, B, b0);
  t->d_r2 = carve_b(c, tok->max_hid, B, b0);
  t->d_logits = carve_b(c, VP, B, b0);
  t->d_soft = carve_b(c, VP, B, b0);
  t->noise = carve_b(c, VP, B, b0);
  t->tokens = (int32_t *)carve_b(c, P, B, b0);
}

/* Point worker w's view at the images starting at b0. */
static void point_view(struct beit_tokenizer *tok, int w, size_t b0)
{
  struct beit_arena c = {tok->t.arena, 0};
  carve_view(tok, &c, tok->t.max_batch, b0, &tok->t.views[w]);
}

/* Slices of a batch of B images: one per gradient slot, at most B; workers take them in any
 * order (dynamic schedule, so a thread the OS preempts holds up one slice, not half the batch)
 * and each slice's gradients land in its own slot, summed in slot order: the result does not
 * depend on which thread ran which slice. */
static size_t slice_count(const struct beit_tokenizer *tok, size_t B, int workers)
{
  if (workers < 2)
    return 1;
  size_t n = tok->t.grad_slots < B ? tok->t.grad_slots : B;
  size_t per = (B + n - 1) / n;
  return (B + per - 1) / per;
}

enum beit_status beit_dvae_train_init(struct beit_tokenizer *tok, size_t max_batch,
                                      struct beit_error *err)
{
  if (!tok->dec.nblocks)
    return beit_error_set(err, BEIT_STATUS_UNSUPPORTED,
                          "tokenizer: training needs a decoder (config \"decoder\": true)");
  if (tok->grads)
    return beit_error_set(err, BEIT_STATUS_USAGE, "tokenizer: training state already planned");
  if (tok->nthreads > DVAE_MAX_THREADS)
    return beit_error_set(err, BEIT_STATUS_UNSUPPORTED, "tokenizer: more than %d threads",
                          DVAE_MAX_THREADS);
  struct dvae_train_state *t = &tok->t;
  const int nt = tok->nthreads;
  const size_t nblk = tok->enc.nblocks + tok->dec.nblocks;
  t->views = calloc((size_t)nt, sizeof *t->views);
  t->blocks = calloc((size_t)nt * nblk, sizeof *t->blocks);
  /* conv scratch: nt single-threaded slots, or one all-thread set for a small batch */
  size_t f1 = beit_dvae_conv_scratch(tok, 0, 1), b1 = beit_dvae_conv_scratch(tok, 1, 1);
  size_t fn = beit_dvae_conv_scratch(tok, 0, nt), bn = beit_dvae_conv_scratch(tok, 1, nt);
  t->scratch_slot = f1 > b1 ? f1 : b1;
  size_t all = fn > bn ? fn : bn, sc = (size_t)nt * t->scratch_slot;
  t->scratch = beit_alloc_floats(sc > all ? sc : all);
  /* gradient slots: 4 slices per thread for load balance, fewer for a large model */
  size_t slots = nt > 1 ? 4 * (size_t)nt : 1;
  const size_t cap = GRAD_SLOT_FLOATS / (tok->table.total ? tok->table.total : 1);
  if (slots > cap)
    slots = cap > (size_t)nt ? cap : (size_t)nt;
  if (slots > DVAE_MAX_SLICES)
    slots = DVAE_MAX_SLICES;
  t->grad_slots = slots;
  t->grads_extra = slots > 1 ? beit_alloc_floats((slots - 1) * tok->table.total) : NULL;
  t->counts = calloc(tok->V, sizeof *t->counts);
  tok->grads = beit_alloc_floats(tok->table.total);
  struct dvae_train_acts probe = {0};
  probe.enc = t->blocks;
  probe.dec = t->blocks + tok->enc.nblocks;
  struct beit_arena c = {NULL, 0};
  carve_view(tok, &c, max_batch, 0, &probe);
  t->arena = beit_alloc_floats(c.used);
  if (!t->views || !t->blocks || !t->scratch || (t->grad_slots > 1 && !t->grads_extra) ||
      !t->counts ||
      !tok->grads || !t->arena)
    return beit_error_set(err, BEIT_STATUS_NOMEM,
                          "tokenizer: cannot allocate training state for batch %zu "
                          "(%.1f MB of activations)",
                          max_batch, (double)c.used * 4e-6);
  t->max_batch = max_batch;
  for (int w = 0; w < nt; w++) {
    t->views[w].enc = t->blocks + (size_t)w * nblk;
    t->views[w].dec = t->views[w].enc + tok->enc.nblocks;
  }
  point_view(tok, 0, 0);
  t->noise = t->views[0].noise;
  t->logits = t->views[0].logits;
  t->tokens = t->views[0].tokens;
  return BEIT_STATUS_OK;
}

void beit_dvae_code_stats_counts(const long *counts, size_t V, size_t *used, double *perplexity)
{
  double n = 0.0, h = 0.0;
  size_t u = 0;
  for (size_t v = 0; v < V; v++)
    n += (double)counts[v];
  for (size_t v = 0; v < V; v++)
    if (counts[v]) {
      u++;
      double p = (double)counts[v] / n;
      h -= p * log(p);
    }
  *used = u;
  *perplexity = exp(h);
}

void beit_dvae_code_stats(const int32_t *tokens, size_t n, size_t V, long *counts,
                          size_t *used, double *perplexity)
{
  memset(counts, 0, V * sizeof *counts);
  for (size_t i = 0; i < n; i++)
    counts[tokens[i]]++;
  beit_dvae_code_stats_counts(counts, V, used, perplexity);
}

/* Forward, loss and backward of images b0..b0+nb-1 (the view v) into grads; returns the
 * slice's share of the batch's recon term, and its mae share and KL sum through the pointers. */
static double slice_forward_backward(struct beit_tokenizer *tok, const struct dvae_ctx *ctx,
                                     const float *x, const float *noise, size_t B, size_t b0,
                                     size_t nb, float tau, float kl_weight, int want_tokens,
                                     double *mae, double *kl)
{
  const size_t P = tok->gh * tok->gw, S2 = tok->S * tok->S, VP = tok->V * P;
  const size_t img = tok->C * S2;
  const double pixels = (double)(B * img);
  struct dvae_train_acts *v = ctx->acts;
  const float *xs = x + b0 * img;

  beit_dvae_encoder_forward(tok, ctx, v->logits, xs, nb);
  beit_dvae_gumbel_softmax_forward(v->soft, v->logits, noise ? noise + b0 * VP : NULL, tau, nb,
                                   tok->V, P);
  beit_dvae_decoder_forward(tok, ctx, v->out, v->soft, nb);

  /* Both terms are normalised by the whole batch: dscale nb / B turns the slice mean into its
   * share of the batch mean. */
  memset(v->d_out, 0, nb * tok->out_ch * S2 * sizeof *v->d_out);
  const double share = (double)nb / (double)B;
  const double recon = share * beit_dvae_recon_loss(v->d_out, mae, v->out, xs,
                                                    beit_dvae_recon_kind(tok), (float)share, nb,
                                                    tok->C, S2);
  *mae *= share;
  memset(v->d_logits, 0, nb * VP * sizeof *v->d_logits);
  *kl = beit_dvae_kl_uniform(v->d_logits, v->logits, (float)(kl_weight / pixels), nb, tok->V, P);

  beit_dvae_decoder_backward(tok, ctx, v->d_soft, v->d_out, nb);
  beit_dvae_gumbel_softmax_backward(v->d_logits, v->d_soft, v->soft, tau, nb, tok->V, P);
  beit_dvae_encoder_backward(tok, ctx, v->d_logits, xs, nb);
  if (want_tokens)
    beit_dvae_argmax(v->tokens, v->logits, nb, tok->V, P);
  return recon;
}

void beit_dvae_forward_backward(struct beit_tokenizer *tok, const float *x, const float *noise,
                                size_t B, float tau, float kl_weight,
                                struct beit_dvae_step_stats *stats)
{
  const size_t P = tok->gh * tok->gw, total = tok->table.total;
  const double pixels = (double)(B * tok->C * tok->S * tok->S);
  const int workers = dvae_workers(tok->nthreads, B);
  const size_t nslices = slice_count(tok, B, workers), per = (B + nslices - 1) / nslices;
  double recon[DVAE_MAX_SLICES], mae[DVAE_MAX_SLICES], kl[DVAE_MAX_SLICES];
  beit_dvae_round_weights(tok); /* bf16: the weights the optimizer left (no-op in fp32) */

#pragma omp parallel num_threads(workers)
  {
    const int w = omp_get_thread_num();
    struct dvae_ctx ctx = {0};
    ctx.nthreads = workers > 1 ? 1 : tok->nthreads;
    ctx.scratch = tok->t.scratch + (workers > 1 ? (size_t)w * tok->t.scratch_slot : 0);
    ctx.acts = &tok->t.views[w];
#pragma omp for schedule(dynamic, 1)
    for (size_t s = 0; s < nslices; s++) {
      const size_t b0 = s * per, nb = B - b0 < per ? B - b0 : per;
      ctx.grads = s == 0 ? tok->grads : tok->t.grads_extra + (s - 1) * total;
      memset(ctx.grads, 0, total * sizeof *ctx.grads);
      point_view(tok, w, b0);
      recon[s] = slice_forward_backward(tok, &ctx, x, noise, B, b0, nb, tau, kl_weight,
                                        stats != NULL, &mae[s], &kl[s]);
    }
    if (nslices > 1) { /* slot sums in slot order */
      const float *extra = tok->t.grads_extra;
      float *g = tok->grads;
#pragma omp for schedule(static)
      for (size_t i = 0; i < total; i++) {
        float sum = g[i];
        for (size_t s = 1; s < nslices; s++)
          sum += extra[(s - 1) * total + i];
        g[i] = sum;
      }
    }
  }
  if (stats) {
    double r = 0.0, a = 0.0, k = 0.0;
    for (size_t s = 0; s < nslices; s++)
      r += recon[s], a += mae[s], k += kl[s];
    stats->recon = r;
    stats->mae = a;
    stats->kl = k / (double)(B * P);
    stats->loss = r + kl_weight * k / pixels;
    beit_dvae_code_stats(tok->t.tokens, B * P, tok->V, tok->t.counts, &stats->codes_used,
                         &stats->perplexity);
  }
  tok->params_h_stale = 1; /* the update that follows moves the weights */
}

const float *beit_dvae_step_noise(struct beit_tokenizer *tok, size_t B, uint64_t seed,
                                  uint64_t epoch, const int64_t *index)
{
  const size_t VP = tok->V * tok->gh * tok->gw;
  const int workers = dvae_workers(tok->nthreads, B);
#pragma omp parallel for schedule(static) num_threads(workers)
  for (size_t b = 0; b < B; b++)
    beit_dvae_gumbel_noise(tok->t.noise + b * VP, VP, seed ^ GUMBEL_STREAM, epoch,
                           index ? (uint64_t)index[b] : (uint64_t)b);
  return tok->t.noise;
}

void beit_dvae_train_step(struct beit_tokenizer *tok, const float *x, size_t B,
                          const struct beit_dvae_hparams *hp, uint64_t seed, float *m, float *v,
                          struct beit_dvae_step_stats *stats)
{
  const float *noise = beit_dvae_step_noise(tok, B, seed, (uint64_t)hp->step, NULL);
  beit_dvae_forward_backward(tok, x, noise, B, hp->tau, hp->kl_weight, stats);
  double norm = beit_clip_grad_norm(tok->grads, tok->table.total, hp->clip);
  if (stats)
    stats->grad_norm = norm;
  struct beit_adamw_hparams ah = {hp->lr, hp->weight_decay, hp->beta1, hp->beta2, hp->eps,
                                  hp->step};
  beit_adamw_update(tok->params, tok->grads, 1.0f, m, v, &tok->table, &ah);
}
