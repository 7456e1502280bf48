/* Backward pass: grads += dloss * d(loss)/d(params) for the last forward and loss.
 *
 * Order: heads, blocks L-1 .. 0, embeddings. The parameter table is laid out embeddings (and
 * the shared relative position bias) first, then block 0 .. L-1, then the heads, so each stage
 * finishes one contiguous range of grads and announces it through m->grads_ready (where the
 * distributed trainer starts that bucket's allreduce while backward continues). */
#include <stdlib.h>
#include <string.h>

#include "encoder.h"
#include "kernels.h"

#define PARAM(id) beit_param(m->params, m, (id))
#define GRAD(id) beit_param(m->grads, m, (id))

static void zero(float *p, size_t n) { memset(p, 0, n * sizeof(float)); }

/* Offsets of the first tensor of block l (l == L: the heads) in floats. */
static size_t block_begin(const struct beit_model *m, size_t l)
{
  if (l < m->L)
    return m->table.items[m->ids.layer[l].ln1_w].offset;
  size_t last = m->table.items[m->ids.layer[m->L - 1].fc2_b].offset;
  return last + m->table.items[m->ids.layer[m->L - 1].fc2_b].numel;
}

static void announce(struct beit_model *m, size_t begin, size_t end)
{
  if (m->grads_ready && end > begin)
    m->grads_ready(m->grads_ready_ctx, begin, end);
}

/* d(loss)/d(stream[L]) into a->d_stream. */
static void head_backward(struct beit_model *m, float dloss)
{
  struct beit_acts *a = &m->a;
  const struct beit_param_ids *ids = &m->ids;
  size_t B = m->B, T = m->T, D = m->D, M = m->M, V = m->out_dim;
  /* the gradient w.r.t. the (possibly LayerNorm'd) hidden states lands here */
  float *d_hidden = ids->final_ln_w >= 0 ? a->d_hidden : a->d_stream;
  zero(d_hidden, B * T * D);
  if (M > 0) {
    zero(a->d_logits, M * V);
    if (m->multilabel)
      beit_bce_backward(a->d_logits, a->logits, m->multi_targets, dloss, M, V);
    else if (!m->targets && m->multi_targets) /* soft targets (mixup/cutmix) */
      beit_soft_cross_entropy_backward(a->d_logits, a->probs, m->multi_targets, dloss, M, V);
    else
      beit_cross_entropy_backward(a->d_logits, a->probs, m->targets, m->smoothing, dloss, M, V);
    zero(a->d_head_in, M * D);
    if (m->arch == BEIT_ARCH_MIM) {
      beit_model_linear_backward(m, a->d_head_ln, NULL, ids->lm_w, ids->lm_b, a->d_logits, NULL,
                                 a->head_ln, a->head_h, M, D, V);
      beit_layernorm_backward(a->d_head_in, GRAD(ids->mim_ln_w), GRAD(ids->mim_ln_b),
                              a->d_head_ln, a->head_in, PARAM(ids->mim_ln_w), a->head_mean,
                              a->head_rstd, M, D);
      beit_gather_rows_backward(d_hidden, a->d_head_in, a->rows, M, D);
    } else if (m->cfg.use_mean_pooling) {
      beit_model_linear_backward(m, a->d_head_ln, NULL, ids->head_w, ids->head_b, a->d_logits, NULL,
                                 a->head_ln, a->head_h, B, D, V);
      beit_layernorm_backward(a->d_head_in, GRAD(ids->pool_ln_w), GRAD(ids->pool_ln_b),
                              a->d_head_ln, a->head_in, PARAM(ids->pool_ln_w), a->head_mean,
                              a->head_rstd, B, D);
      beit_meanpool_backward(d_hidden, a->d_head_in, B, T, D);
    } else {
      beit_model_linear_backward(m, a->d_head_in, NULL, ids->head_w, ids->head_b, a->d_logits, NULL,
                                 a->head_in, a->head_h, B, D, V);
      beit_gather_rows_backward(d_hidden, a->d_head_in, a->rows, B, D);
    }
  }
  if (ids->final_ln_w >= 0) {
    zero(a->d_stream, B * T * D);
    beit_layernorm_backward(a->d_stream, GRAD(ids->final_ln_w), GRAD(ids->final_ln_b), d_hidden,
                            a->stream[m->L], PARAM(ids->final_ln_w), a->final_mean,
                            a->final_rstd, B * T, D);
  }
}

/* a->d_stream holds d(loss)/d(block output); on return, d(loss)/d(block input). */
static void block_backward(struct beit_model *m, size_t l)
{
  const struct beit_layer_ids *li = &m->ids.layer[l];
  struct beit_layer_acts *la = &m->a.layer[l];
  struct beit_acts *a = &m->a;
  size_t B = m->B, T = m->T, D = m->D, F = m->F, BT = B * T, nH = m->nH;
  const float *s1 = m->drop_scales ? m->drop_scales + (2 * l + 0) * B : NULL;
  const float *s2 = m->drop_scales ? m->drop_scales + (2 * l + 1) * B : NULL;
  int has_bias = li->rel_table >= 0 || m->ids.shared_rel >= 0;

  /* MLP branch: out = y + s2 * gamma2 * fc2(gelu(fc1(ln2(y)))). d(loss)/d(y) is d_stream (the
   * identity path) plus LN2's backward, which adds into it. bf16: fc2's input-gradient product
   * multiplies by GELU's saved derivative and rounds as it stores: fc1's output gradient. */
  beit_model_branch_backward(m, a->d_gelu, a->d_gelu_h, la->fc1_h, li->fc2_w, li->fc2_b,
                             li->gamma2, s2, la->fc2, la->fc2_h, la->gelu, la->gelu_h, F);
  beit_model_mlp_in_backward(m, a->d_ln, a->d_ln_h, li->fc1_w, li->fc1_b, a->d_gelu, a->d_gelu_h,
                             la->fc1, a->d_fc1, la->ln2, la->ln2_h, BT, D, F);
  beit_model_layernorm_backward(m, a->d_stream, li->ln2_w, li->ln2_b, la->y, la->ln2_mean,
                                la->ln2_rstd);

  /* attention branch: y = x + s1 * gamma1 * proj(attn(ln1(x))), the same way. bf16: the
   * projection's input gradient is rounded as it is stored (the attention's operand). */
  beit_model_branch_backward(m, a->d_attn, a->d_attn_h, NULL, li->proj_w, li->proj_b,
                             li->gamma1, s1, la->proj, la->proj_h, la->attn, la->attn_h, D);
  if (has_bias)
    zero(a->d_bias, nH * T * T);
  beit_model_attention_backward(m, l, has_bias ? a->d_bias : NULL);
  beit_model_layernorm_backward(m, a->d_stream, li->ln1_w, li->ln1_b, la->x, la->ln1_mean,
                                la->ln1_rstd);
  if (li->rel_table >= 0)
    beit_relpos_backward(GRAD(li->rel_table), a->d_bias, m->rel_index, T, nH);
  if (m->ids.shared_rel >= 0)
    beit_relpos_backward(GRAD(m->ids.shared_rel), a->d_bias, m->rel_index, T, nH);
}

static void embed_backward(struct beit_model *m)
{
  struct beit_acts *a = &m->a;
  const struct beit_param_ids *ids = &m->ids;
  size_t B = m->B, N = m->N, T = m->T, D = m->D;
  const float *dx = a->d_stream;
  float *dcls = GRAD(ids->cls), *dpos = GRAD(ids->pos);
  for (size_t b = 0; b < B; b++) {
    for (size_t d = 0; d < D; d++)
      dcls[d] += dx[b * T * D + d];
    if (dpos)
      for (size_t i = 0; i < T * D; i++)
        dpos[i] += dx[b * T * D + i];
    memcpy(a->d_emb + b * N * D, dx + (b * T + 1) * D, N * D * sizeof(float));
  }
  if (m->masked)
    beit_mask_tokens_backward(a->d_emb, GRAD(ids->mask), a->mask, B, N, D);
  beit_model_linear_backward(m, NULL, NULL, ids->patch_w, ids->patch_b, a->d_emb, NULL,
                             a->patches, a->patches_h, B * N, m->C * m->P * m->P, D);
}

void beit_model_backward(struct beit_model *m, float dloss)
{
  if (m->arch == BEIT_ARCH_MODEL || !m->grads)
    return; /* no head and loss, or an inference-only model: nothing to differentiate */
  head_backward(m, dloss);
  announce(m, block_begin(m, m->L), m->table.total);
  for (size_t l = m->L; l-- > 0;) {
    block_backward(m, l);
    announce(m, block_begin(m, l), block_begin(m, l + 1));
  }
  embed_backward(m);
  announce(m, 0, block_begin(m, 0));
}

void beit_model_zero_grad(struct beit_model *m)
{
  if (m->grads)
    zero(m->grads, m->table.total);
}
