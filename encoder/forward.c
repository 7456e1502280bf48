/* Forward pass of the encoder and its heads, and the losses (spec 1, 4, 5). */
#include <math.h>
#include <string.h>

#include "encoder.h"
#include "kernels.h"

#define PARAM(id) beit_param(m->params, m, (id))

/* The relative position bias block l adds (nH, T, T), or NULL: the per-layer table's bias, plus
 * the shared one when both exist. */
static const float *block_bias(struct beit_model *m, size_t l)
{
  struct beit_acts *a = &m->a;
  long table = m->ids.layer[l].rel_table;
  size_t n = m->nH * m->T * m->T;
  if (table < 0)
    return m->ids.shared_rel >= 0 ? a->rel_shared : NULL;
  beit_relpos_forward(a->rel_bias, PARAM(table), m->rel_index, m->T, m->nH);
  if (m->ids.shared_rel >= 0)
    for (size_t i = 0; i < n; i++)
      a->rel_bias[i] += a->rel_shared[i];
  return a->rel_bias;
}

static void block_forward(struct beit_model *m, size_t l, float *out)
{
  const struct beit_layer_ids *li = &m->ids.layer[l];
  struct beit_layer_acts *la = &m->a.layer[l];
  size_t B = m->B, T = m->T, D = m->D, F = m->F, BT = B * T;
  const float *s1 = m->drop_scales ? m->drop_scales + (2 * l + 0) * B : NULL;
  const float *s2 = m->drop_scales ? m->drop_scales + (2 * l + 1) * B : NULL;

  const float *ln1 = beit_model_layernorm_forward(m, la->ln1, la->ln1_h, la->ln1_mean,
                                                  la->ln1_rstd, la->x, li->ln1_w, li->ln1_b, BT, D);
  const float *attn = beit_model_attention_forward(m, l, ln1, block_bias(m, l));
  beit_model_linear_forward(m, la->proj, la->proj_h, attn, la->attn_h, li->proj_w, li->proj_b, BT,
                            D, D);
  /* y = x + s1 * gamma1 * proj, normalised while in cache */
  const float *ln2 = beit_model_residual_layernorm_forward(
      m, la->y, la->x, la->proj, la->proj_h, li->gamma1, s1, la->ln2, la->ln2_h, la->ln2_mean,
      la->ln2_rstd, li->ln2_w, li->ln2_b);
  /* bf16: fc1's result is rounded as it is stored (GELU's input, saved for its backward) */
  beit_model_linear_forward(m, la->fc1, la->fc1_h, ln2, la->ln2_h, li->fc1_w, li->fc1_b, BT, D,
                            F);
  const float *gelu = beit_model_gelu_forward(m, la->gelu, la->gelu_h, la->fc1, la->fc1_h, BT * F);
  beit_model_linear_forward(m, la->fc2, la->fc2_h, gelu, la->gelu_h, li->fc2_w, li->fc2_b, BT, F,
                            D);
  beit_model_residual_forward(m, out, la->y, la->fc2, la->fc2_h, li->gamma2, s2);
}

/* Patch embedding, mask tokens, cls token and absolute positions into stream[0]. */
static void embed_forward(struct beit_model *m, const float *pixels)
{
  struct beit_acts *a = &m->a;
  size_t B = m->B, N = m->N, T = m->T, D = m->D, H = (size_t)m->cfg.image_size;
  size_t cpp = m->C * m->P * m->P;
  beit_patchify(a->patches, pixels, B, m->C, H, H, m->P);
  beit_model_linear_forward(m, a->emb, NULL, a->patches, a->patches_h, m->ids.patch_w,
                            m->ids.patch_b, B * N, cpp, D);
  if (m->masked) /* hard replacement before cls concat and positions (spec 1.2) */
    beit_mask_tokens_forward(a->emb, PARAM(m->ids.mask), a->mask, B, N, D);
  const float *cls = PARAM(m->ids.cls), *pos = PARAM(m->ids.pos);
  float *x = a->stream[0];
  for (size_t b = 0; b < B; b++) {
    memcpy(x + b * T * D, cls, D * sizeof(float));
    memcpy(x + (b * T + 1) * D, a->emb + b * N * D, N * D * sizeof(float));
    if (pos)
      for (size_t i = 0; i < T * D; i++)
        x[b * T * D + i] += pos[i];
  }
}

static void head_forward(struct beit_model *m)
{
  struct beit_acts *a = &m->a;
  const struct beit_param_ids *ids = &m->ids;
  size_t B = m->B, N = m->N, T = m->T, D = m->D;
  float eps = (float)m->cfg.layer_norm_eps;
  if (ids->final_ln_w >= 0)
    beit_layernorm_forward(a->hidden, a->final_mean, a->final_rstd, a->stream[m->L],
                           PARAM(ids->final_ln_w), PARAM(ids->final_ln_b), eps, B * T, D);
  if (m->arch == BEIT_ARCH_MIM) {
    /* masked patches in batch-major, row-major order; LayerNorm is per row, so gathering
     * before the final LayerNorm gives the same rows as normalising all tokens */
    size_t M = 0;
    for (size_t b = 0; b < B; b++)
      for (size_t i = 0; i < N; i++)
        if (m->head_all_tokens || (m->masked && a->mask[b * N + i]))
          a->rows[M++] = (int32_t)(b * T + 1 + i);
    m->M = M;
    m->features = NULL;
    if (!M)
      return;
    beit_gather_rows_forward(a->head_in, a->hidden, a->rows, M, D);
    beit_layernorm_forward(a->head_ln, a->head_mean, a->head_rstd, a->head_in,
                           PARAM(ids->mim_ln_w), PARAM(ids->mim_ln_b), eps, M, D);
    beit_model_linear_forward(m, a->logits, NULL, a->head_ln, a->head_h, ids->lm_w, ids->lm_b, M,
                              D, m->out_dim);
    return;
  }
  m->M = B;
  if (m->cfg.use_mean_pooling) {
    beit_meanpool_forward(a->head_in, a->hidden, B, T, D);
    beit_layernorm_forward(a->head_ln, a->head_mean, a->head_rstd, a->head_in,
                           PARAM(ids->pool_ln_w), PARAM(ids->pool_ln_b), eps, B, D);
    m->features = a->head_ln;
  } else {
    for (size_t b = 0; b < B; b++)
      a->rows[b] = (int32_t)(b * T);
    beit_gather_rows_forward(a->head_in, a->hidden, a->rows, B, D);
    m->features = a->head_in;
  }
  if (m->arch == BEIT_ARCH_CLASSIFIER)
    beit_model_linear_forward(m, a->logits, NULL, m->features, a->head_h, ids->head_w,
                              ids->head_b, B, D, m->out_dim);
}

enum beit_status beit_model_forward(struct beit_model *m, const float *pixels,
                                    const uint8_t *mask, const float *drop_scales, size_t B,
                                    struct beit_error *err)
{
  if (B == 0 || B > m->max_batch)
    return beit_error_set(err, BEIT_STATUS_USAGE, "forward: batch %zu outside 1..%zu planned",
                          B, m->max_batch);
  if (mask && m->ids.mask < 0)
    return beit_error_set(err, BEIT_STATUS_USAGE, "forward: a mask was given but the model has "
                          "no mask token (config 'use_mask_token' is false)");
  m->B = B;
  m->masked = mask != NULL;
  m->drop_scales = drop_scales;
  if (mask)
    for (size_t i = 0; i < B * m->N; i++)
      m->a.mask[i] = mask[i] != 0;
  if (!m->inference && !m->weights_rounded) /* training: the weights changed since last time */
    beit_model_round_weights(m);
  m->weights_rounded = 0;
  embed_forward(m, pixels);
  if (m->ids.shared_rel >= 0)
    beit_relpos_forward(m->a.rel_shared, PARAM(m->ids.shared_rel), m->rel_index, m->T, m->nH);
  for (size_t l = 0; l < m->L; l++)
    block_forward(m, l, m->a.stream[l + 1]);
  head_forward(m);
  return BEIT_STATUS_OK;
}

static int sigmoid_hit(float logit, float target) { return (logit > 0.0f) == (target > 0.5f); }

double beit_model_loss(struct beit_model *m, const int32_t *targets, const float *multi_targets,
                       float smoothing, long *correct)
{
  m->targets = targets;
  m->multi_targets = multi_targets;
  m->smoothing = smoothing;
  if (correct)
    *correct = 0;
  if (m->M == 0 || m->arch == BEIT_ARCH_MODEL) /* BeitModel has no loss */
    return 0.0;
  if (m->multilabel) {
    size_t C = m->out_dim;
    if (correct)
      for (size_t b = 0; b < m->M; b++) {
        int all = 1;
        for (size_t c = 0; c < C; c++)
          all &= sigmoid_hit(m->a.logits[b * C + c], multi_targets[b * C + c]);
        *correct += all;
      }
    return beit_bce_forward(m->a.logits, multi_targets, m->M, C);
  }
  if (!targets && multi_targets && m->arch == BEIT_ARCH_CLASSIFIER) /* mixed (soft) targets */
    return beit_soft_cross_entropy_forward(m->a.probs, correct, m->a.logits, multi_targets, m->M,
                                           m->out_dim);
  return beit_cross_entropy_forward(m->a.probs, correct, m->a.logits, targets, smoothing, m->M,
                                    m->out_dim);
}
