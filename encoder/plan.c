/* The activation arena: every buffer forward and backward touch, carved out of one allocation
 * sized for max_batch images (STYLE.md 2). Planning runs the same carving twice: once to count
 * floats, once to hand out pointers. An inference-only model keeps no block's activations for a
 * backward: every block works in the same buffers (only the residual stream of each block stays,
 * for features of intermediate blocks), and there is no backward scratch. */
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "encoder.h"
#include "kernels.h"

static float *carve(struct beit_arena *c, size_t n) { return beit_arena_carve(c, n); }

/* n bfloat16 values in bf16 precision, NULL in fp32. */
static beit_bf16 *carve_h(const struct beit_model *m, struct beit_arena *c, size_t n)
{
  if (m->precision != BEIT_PRECISION_BF16)
    return NULL;
  return (beit_bf16 *)carve(c, (n + 1) / 2);
}

/* Every activation buffer, in one place so that the counting pass and the carving pass cannot
 * disagree: a list, one line a buffer, and long for that reason (over 80 lines by design). */
static void carve_all(struct beit_model *m, struct beit_arena *c)
{
  struct beit_acts *a = &m->a;
  size_t B = m->max_batch, N = m->N, T = m->T, D = m->D, F = m->F, nH = m->nH;
  size_t BT = B * T, tt = nH * T * T;
  size_t rows = m->arch == BEIT_ARCH_MIM ? B * N : B; /* head rows at most */
  size_t logit_cols = m->out_dim;

  a->patches = carve(c, B * N * m->C * m->P * m->P);
  a->patches_h = carve_h(m, c, B * N * m->C * m->P * m->P);
  a->emb = carve(c, B * N * D);
  for (size_t l = 0; l <= m->L; l++)
    a->stream[l] = carve(c, BT * D);
  for (size_t l = 0; l < m->L; l++) {
    struct beit_layer_acts *la = &a->layer[l];
    if (m->inference && l > 0) { /* block l reuses block 0's buffers */
      *la = a->layer[0];
      la->x = a->stream[l];
      continue;
    }
    la->x = a->stream[l];
    /* bf16: what only feeds a matrix product has no float32 copy (its bf16 twin is saved) */
    const int h = m->precision == BEIT_PRECISION_BF16;
    la->ln1 = h ? NULL : carve(c, BT * D);
    la->ln1_mean = carve(c, BT);
    la->ln1_rstd = carve(c, BT);
    la->qkv = h ? NULL : carve(c, BT * 3 * D);
    la->probs = carve(c, B * tt);
    la->attn = h ? NULL : carve(c, BT * D);
    la->proj = h ? NULL : carve(c, BT * D);
    la->y = carve(c, BT * D);
    la->ln2 = h ? NULL : carve(c, BT * D);
    la->ln2_mean = carve(c, BT);
    la->ln2_rstd = carve(c, BT);
    la->fc1 = h ? NULL : carve(c, BT * F);
    la->gelu = h ? NULL : carve(c, BT * F);
    la->fc2 = h ? NULL : carve(c, BT * D);
    la->ln1_h = carve_h(m, c, BT * D);
    la->qkv_h = carve_h(m, c, BT * 3 * D);
    la->probs_h = carve_h(m, c, B * tt);
    la->attn_h = carve_h(m, c, BT * D);
    la->ln2_h = carve_h(m, c, BT * D);
    la->fc1_h = carve_h(m, c, BT * F);
    la->gelu_h = carve_h(m, c, BT * F);
    la->proj_h = carve_h(m, c, BT * D);
    la->fc2_h = carve_h(m, c, BT * D);
  }
  a->qkv_rows_h = carve_h(m, c, BT * 3 * D); /* forward scratch, shared by every block */
  a->qkv_bias = m->precision == BEIT_PRECISION_BF16 ? carve(c, 3 * D) : NULL;
  a->rel_shared = carve(c, tt);
  a->rel_bias = carve(c, tt);
  a->hidden = m->ids.final_ln_w >= 0 ? carve(c, BT * D) : a->stream[m->L];
  a->final_mean = carve(c, BT);
  a->final_rstd = carve(c, BT);
  a->rows = (int32_t *)carve(c, rows);
  a->head_in = carve(c, rows * D);
  a->head_ln = carve(c, rows * D);
  a->head_mean = carve(c, rows);
  a->head_rstd = carve(c, rows);
  a->logits = carve(c, rows * logit_cols);
  a->probs = carve(c, rows * logit_cols);
  a->head_h = carve_h(m, c, rows * D);
  a->mask = (uint8_t *)carve(c, (B * N + 3) / 4);
  if (m->inference) { /* no backward */
    a->d_stream = a->d_ln = a->d_qkv = a->d_attn = a->d_branch = NULL;
    a->d_fc1 = a->d_gelu = a->d_bias = a->attn_scratch = NULL;
    a->d_head_in = a->d_head_ln = a->d_logits = a->d_hidden = a->d_emb = NULL;
    a->d_h = a->d_gelu_h = a->d_ln_h = a->d_attn_h = a->d_qkv_h = a->d_heads_h = NULL;
    return;
  }
  /* backward scratch */
  a->d_stream = carve(c, BT * D);
  a->d_ln = m->precision == BEIT_PRECISION_BF16 ? NULL : carve(c, BT * D);
  a->d_ln_h = carve_h(m, c, BT * D);
  a->d_qkv = m->precision == BEIT_PRECISION_BF16 ? NULL : carve(c, BT * 3 * D);
  a->d_attn = m->precision == BEIT_PRECISION_BF16 ? NULL : carve(c, BT * D);
  a->d_qkv_h = carve_h(m, c, BT * 3 * D);
  a->d_attn_h = carve_h(m, c, BT * D);
  a->d_heads_h = carve_h(m, c, 3 * BT * D);
  a->d_branch = m->precision == BEIT_PRECISION_BF16 ? NULL : carve(c, BT * D); /* bf16: d_h */
  a->d_fc1 = m->precision == BEIT_PRECISION_BF16 ? NULL : carve(c, BT * F); /* bf16: d_gelu_h */
  a->d_gelu = m->precision == BEIT_PRECISION_BF16 ? NULL : carve(c, BT * F);
  a->d_gelu_h = carve_h(m, c, BT * F);
  a->d_bias = carve(c, tt);
  a->attn_scratch = m->precision == BEIT_PRECISION_BF16
                        ? NULL /* bf16: d_h */
                        : carve(c, beit_attention_scratch_floats(B, T, nH));
  a->d_head_in = carve(c, rows * D);
  a->d_head_ln = carve(c, rows * D);
  a->d_logits = carve(c, rows * logit_cols);
  a->d_hidden = m->ids.final_ln_w >= 0 ? carve(c, BT * D) : NULL;
  a->d_emb = carve(c, B * N * D);
  /* the largest gradient rounded to bf16 at once: a linear layer's dout or attention's dS */
  size_t d_h = BT * F > BT * 3 * D ? BT * F : BT * 3 * D;
  d_h = d_h > rows * logit_cols ? d_h : rows * logit_cols;
  d_h = d_h > B * tt ? d_h : B * tt;
  a->d_h = carve_h(m, c, d_h);
}

enum beit_status beit_model_plan(struct beit_model *m, struct beit_error *err)
{
  if (!m->a.stream)
    m->a.stream = calloc(m->L + 1, sizeof *m->a.stream);
  if (!m->a.layer)
    m->a.layer = calloc(m->L, sizeof *m->a.layer);
  if (!m->a.stream || !m->a.layer)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "activation plan: out of memory");
  struct beit_arena c = {NULL, 0};
  carve_all(m, &c);
  m->arena_floats = c.used;
  m->arena = beit_alloc_floats(c.used);
  if (!m->arena)
    return beit_error_set(err, BEIT_STATUS_NOMEM,
                          "activations for batch %zu: cannot allocate %.1f MiB", m->max_batch,
                          (double)c.used * 4.0 / 1048576.0);
  c.base = m->arena;
  c.used = 0;
  carve_all(m, &c);
  return BEIT_STATUS_OK;
}

enum beit_status beit_model_set_inference(struct beit_model *m, struct beit_error *err)
{
  free(m->grads);
  m->grads = NULL;
  m->inference = 1;
  return beit_model_replan(m, m->max_batch, err);
}

enum beit_status beit_model_replan(struct beit_model *m, size_t max_batch, struct beit_error *err)
{
  free(m->arena);
  m->arena = NULL;
  m->max_batch = max_batch ? max_batch : 1;
  m->B = m->M = 0;
  return beit_model_plan(m, err);
}
