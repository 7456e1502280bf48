/* The precision policy applied to the encoder (include/beit/precision.h): which kernels the
 * matrix products of forward and backward run on, and the bfloat16 copy of the weights.
 *
 * fp32 runs the float32 kernels on the float32 buffers (OpenBLAS for the products).
 * bf16 rounds each product's operands to bfloat16 where they are produced (weights by AdamW or
 * once per training forward, activations as the layer before hands them over, or the product
 * itself where its result only feeds another product or autocast's result is bf16 too: qkv, fc1,
 * the logits, the attention's output and gradients, the projection's and fc2's results, the input
 * gradients of every block product) and keeps the rounded copy for backward, which rounds its
 * incoming gradient once for both of a layer's products. GELU's backward is fc2's input-gradient
 * product times the derivative the training forward saved. LayerNorm, softmax, GELU's
 * arithmetic, residual adds, losses, every weight gradient and the optimizer state stay float32. */
#include <stdlib.h>
#include <string.h>

#include "encoder.h"
#include "kernels.h"

#define PARAM(id) beit_param(m->params, m, (id))
#define GRAD(id) beit_param(m->grads, m, (id))

static const beit_bf16 *param_h(const struct beit_model *m, long id)
{
  return m->params_h + m->table.items[id].offset;
}

static int bf16(const struct beit_model *m) { return m->precision == BEIT_PRECISION_BF16; }

void beit_model_linear_forward(struct beit_model *m, float *out, beit_bf16 *out_h,
                               const float *inp, beit_bf16 *inp_h, long w, long b, size_t N,
                               size_t C, size_t OC)
{
  if (!bf16(m)) {
    beit_linear_forward(out, inp, PARAM(w), PARAM(b), N, C, OC);
    return;
  }
  if (inp) /* NULL: the producer rounded it already */
    beit_to_bf16(inp_h, inp, N * C);
  struct beit_result r = out_h ? (struct beit_result){out_h, BEIT_DTYPE_BF16, OC}
                               : (struct beit_result){out, BEIT_DTYPE_F32, OC};
  beit_linear_forward_bf16(r, inp_h, param_h(m, w), PARAM(b), N, C, OC);
}

void beit_model_linear_backward(struct beit_model *m, float *dinp, beit_bf16 *dinp_h, long w,
                                long b, const float *dout, const beit_bf16 *dout_h,
                                const float *inp, const beit_bf16 *inp_h, size_t N, size_t C,
                                size_t OC)
{
  if (!bf16(m)) {
    if (dinp)
      memset(dinp, 0, N * C * sizeof *dinp);
    beit_linear_backward(dinp, GRAD(w), GRAD(b), dout, inp, PARAM(w), N, C, OC);
    return;
  }
  if (!dout_h) { /* round it here, once for both products, with the bias gradient in that pass */
    beit_to_bf16_colsum(m->a.d_h, GRAD(b), dout, N, OC);
    dout_h = m->a.d_h;
  }
  struct beit_result d = dinp_h ? (struct beit_result){dinp_h, BEIT_DTYPE_BF16, C}
                                : (struct beit_result){dinp, BEIT_DTYPE_F32, C};
  beit_linear_backward_bf16(d, GRAD(w), dout_h, inp_h, param_h(m, w), N, C, OC);
}

void beit_model_branch_backward(struct beit_model *m, float *dinp, beit_bf16 *dinp_h,
                                const beit_bf16 *dinp_mul_h, long w, long b, long gamma,
                                const float *sample_scale, const float *branch,
                                const beit_bf16 *branch_h, const float *inp,
                                const beit_bf16 *inp_h, size_t C)
{
  size_t B = m->B, T = m->T, D = m->D;
  if (!bf16(m)) {
    memset(m->a.d_branch, 0, B * T * D * sizeof *m->a.d_branch);
    beit_residual_backward(NULL, m->a.d_branch, GRAD(gamma), m->a.d_stream, branch, PARAM(gamma),
                           sample_scale, B, T, D);
    beit_model_linear_backward(m, dinp, dinp_h, w, b, m->a.d_branch, NULL, inp, inp_h, B * T, C,
                               D);
    return;
  }
  /* the branch's gradient is rounded for the layer's products as it is made, with the bias and
   * LayerScale gradients summed in the same pass */
  beit_residual_branch_backward_bf16(m->a.d_h, GRAD(b), GRAD(gamma), m->a.d_stream, branch_h,
                                     PARAM(gamma), sample_scale, B, T, D);
  struct beit_result d = dinp_h ? (struct beit_result){dinp_h, BEIT_DTYPE_BF16, C, dinp_mul_h}
                                : (struct beit_result){dinp, BEIT_DTYPE_F32, C, NULL};
  beit_linear_backward_bf16(d, GRAD(w), m->a.d_h, inp_h, param_h(m, w), B * T, C, D);
}

void beit_model_mlp_in_backward(struct beit_model *m, float *dinp, beit_bf16 *dinp_h, long w,
                                long b, const float *dout, const beit_bf16 *dout_h,
                                const float *fc1, float *dfc1, const float *inp,
                                const beit_bf16 *inp_h, size_t N, size_t C, size_t F)
{
  if (!bf16(m)) {
    memset(dfc1, 0, N * F * sizeof *dfc1);
    beit_gelu_backward(dfc1, dout, fc1, N * F);
    beit_model_linear_backward(m, dinp, NULL, w, b, dfc1, NULL, inp, inp_h, N, C, F);
    return;
  }
  /* GELU's backward rode in fc2's input-gradient product (times the derivative the forward saved),
   * so dout_h is fc1's rounded output gradient already: its column sums are fc1's bias gradient */
  beit_bias_backward_bf16(GRAD(b), dout_h, N, F, F);
  beit_model_linear_backward(m, dinp, dinp_h, w, b, NULL, dout_h, inp, inp_h, N, C, F);
}

/* The [q_b, 0, v_b] bias of block l's qkv product in bf16 (no key bias, spec 1.4), or NULL. */
static const float *qkv_bias(struct beit_model *m, const struct beit_layer_ids *li)
{
  if (li->q_b < 0 && li->v_b < 0)
    return NULL;
  float *bias = m->a.qkv_bias;
  size_t D = m->D;
  memset(bias, 0, 3 * D * sizeof *bias);
  if (li->q_b >= 0)
    memcpy(bias, PARAM(li->q_b), D * sizeof *bias);
  if (li->v_b >= 0)
    memcpy(bias + 2 * D, PARAM(li->v_b), D * sizeof *bias);
  return bias;
}

const float *beit_model_attention_forward(struct beit_model *m, size_t l, const float *ln1,
                                         const float *bias)
{
  const struct beit_layer_ids *li = &m->ids.layer[l];
  struct beit_layer_acts *la = &m->a.layer[l];
  size_t B = m->B, T = m->T, D = m->D, nH = m->nH, BT = B * T;
  /* query|key|value weights are contiguous: one (3D, D) product */
  if (!bf16(m)) {
    beit_linear_forward(la->qkv, ln1, PARAM(li->q_w), NULL, BT, D, 3 * D);
    beit_bias_forward(la->qkv, PARAM(li->q_b), BT, D, 3 * D);
    beit_bias_forward(la->qkv + 2 * D, PARAM(li->v_b), BT, D, 3 * D);
    beit_attention_forward(la->attn, la->probs, la->qkv, bias, B, T, D, nH);
    return la->attn;
  }
  /* the product adds the biases and rounds its result: the attention's only input */
  struct beit_result rows = {m->a.qkv_rows_h, BEIT_DTYPE_BF16, 3 * D};
  beit_linear_forward_bf16(rows, la->ln1_h, param_h(m, li->q_w), qkv_bias(m, li), BT, D, 3 * D);
  beit_attention_forward_bf16(la->attn_h, la->probs, la->probs_h, la->qkv_h, m->a.qkv_rows_h,
                              bias, B, T, D, nH);
  return NULL;
}

void beit_model_attention_backward(struct beit_model *m, size_t l, float *dbias)
{
  const struct beit_layer_ids *li = &m->ids.layer[l];
  const struct beit_layer_acts *la = &m->a.layer[l];
  struct beit_acts *a = &m->a;
  size_t B = m->B, T = m->T, D = m->D, nH = m->nH, BT = B * T;
  if (!bf16(m)) {
    memset(a->d_qkv, 0, BT * 3 * D * sizeof *a->d_qkv);
    beit_attention_backward(a->d_qkv, dbias, a->attn_scratch, a->d_attn, la->qkv, la->probs, B,
                            T, D, nH);
    beit_bias_backward(GRAD(li->q_b), a->d_qkv, BT, D, 3 * D);
    beit_bias_backward(GRAD(li->v_b), a->d_qkv + 2 * D, BT, D, 3 * D);
    beit_model_linear_backward(m, a->d_ln, NULL, li->q_w, -1, a->d_qkv, NULL, la->ln1, NULL, BT,
                               D, 3 * D);
    return;
  }
  /* the attention's gradients arrive rounded, in the qkv rows: the products' operand as it is */
  beit_attention_backward_bf16(a->d_qkv_h, dbias, a->d_h, a->d_heads_h,
                               a->d_attn_h, la->qkv_h, la->probs, la->probs_h, B, T, D, nH);
  beit_bias_backward_bf16(GRAD(li->q_b), a->d_qkv_h, BT, D, 3 * D);
  beit_bias_backward_bf16(GRAD(li->v_b), a->d_qkv_h + 2 * D, BT, D, 3 * D);
  beit_model_linear_backward(m, NULL, a->d_ln_h, li->q_w, -1, NULL, a->d_qkv_h, NULL, la->ln1_h,
                             BT, D, 3 * D);
}

const float *beit_model_layernorm_forward(struct beit_model *m, float *out, beit_bf16 *out_h,
                                         float *mean, float *rstd, const float *inp, long w,
                                         long b, size_t N, size_t C)
{
  float eps = (float)m->cfg.layer_norm_eps;
  if (!bf16(m)) {
    beit_layernorm_forward(out, mean, rstd, inp, PARAM(w), PARAM(b), eps, N, C);
    return out;
  }
  beit_layernorm_forward_bf16(out_h, mean, rstd, inp, PARAM(w), PARAM(b), eps, N, C);
  return NULL;
}

void beit_model_residual_forward(struct beit_model *m, float *y, const float *x,
                                 const float *branch, const beit_bf16 *branch_h, long gamma,
                                 const float *sample_scale)
{
  if (!bf16(m))
    beit_residual_forward(y, x, branch, PARAM(gamma), sample_scale, m->B, m->T, m->D);
  else
    beit_residual_forward_bf16(y, x, branch_h, PARAM(gamma), sample_scale, m->B, m->T, m->D);
}

const float *beit_model_residual_layernorm_forward(struct beit_model *m, float *y, const float *x,
                                                  const float *branch, const beit_bf16 *branch_h,
                                                  long gamma, const float *sample_scale,
                                                  float *out, beit_bf16 *out_h, float *mean,
                                                  float *rstd, long w, long b)
{
  float eps = (float)m->cfg.layer_norm_eps;
  int h = bf16(m);
  beit_residual_layernorm_forward(y, h ? NULL : out, h ? out_h : NULL, mean, rstd, x,
                                  h ? NULL : branch, h ? branch_h : NULL, PARAM(gamma),
                                  sample_scale, PARAM(w), PARAM(b), eps, m->B, m->T, m->D);
  return h ? NULL : out;
}

const float *beit_model_gelu_forward(struct beit_model *m, float *out, beit_bf16 *out_h,
                                     const float *inp, beit_bf16 *inp_h, size_t n)
{
  if (!bf16(m)) {
    beit_gelu_forward(out, inp, n);
    return out;
  }
  /* training: GELU's derivative replaces its input (autocast saves the input and differentiates
   * in backward; the derivative is what backward needs, in the same bytes) */
  beit_gelu_forward_bf16(out_h, m->inference ? NULL : inp_h, inp_h, n);
  return NULL;
}

void beit_model_layernorm_backward(struct beit_model *m, float *dinp, long w, long b,
                                   const float *inp, const float *mean, const float *rstd)
{
  size_t N = m->B * m->T, C = m->D;
  if (!bf16(m))
    beit_layernorm_backward(dinp, GRAD(w), GRAD(b), m->a.d_ln, inp, PARAM(w), mean, rstd, N, C);
  else
    beit_layernorm_backward_bf16(dinp, GRAD(w), GRAD(b), m->a.d_ln_h, inp, PARAM(w), mean, rstd,
                                 N, C);
}

void beit_model_round_weights(struct beit_model *m)
{
  if (bf16(m))
    beit_to_bf16(m->params_h, m->params, m->table.total);
}

enum beit_status beit_model_set_precision(struct beit_model *m, enum beit_precision p,
                                          struct beit_error *err)
{
  enum beit_status st = beit_precision_resolve(&p, p, err);
  if (st)
    return st;
  if (p == BEIT_PRECISION_BF16 && !m->params_h) {
    m->params_h = beit_alloc_zeroed(m->table.total * sizeof *m->params_h);
    if (!m->params_h)
      return beit_error_set(err, BEIT_STATUS_NOMEM, "bf16 weights: cannot allocate %.1f MiB",
                            (double)m->table.total * 2.0 / 1048576.0);
  } else if (p == BEIT_PRECISION_FP32) {
    free(m->params_h);
    m->params_h = NULL;
  }
  int replan = m->precision != p;
  m->precision = p;
  beit_model_round_weights(m);
  return replan ? beit_model_replan(m, m->max_batch, err) : BEIT_STATUS_OK;
}

enum beit_precision beit_model_precision(const struct beit_model *m) { return m->precision; }
