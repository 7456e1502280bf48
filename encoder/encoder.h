/* The BEiT encoder's internals, shared by encoder/ files only (and the white-box tests): what
 * other libraries and apps need is in include/beit/model.h and include/beit/encoder_train.h.
 *
 * Parameters: one table (HF names) over one params buffer and one grads buffer; struct
 * beit_param_ids holds each tensor's index in the table (-1 when the config has no such tensor).
 * The query, key and value weights are laid out back to back, so together they are the (3D, D)
 * qkv matrix of one GEMM. Activations: one arena planned at create for max_batch images and
 * carved into struct beit_acts; nothing is allocated in forward or backward. */
#ifndef BEIT_ENCODER_ENCODER_H
#define BEIT_ENCODER_ENCODER_H

#include <stddef.h>
#include <stdint.h>

#include "beit/encoder_train.h"
#include "beit/model.h"
#include "gemm.h"
#include "tensor_table.h"

struct beit_layer_ids {
  long ln1_w, ln1_b, q_w, k_w, v_w, q_b, v_b, rel_table, proj_w, proj_b;
  long gamma1, gamma2, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b;
};

struct beit_param_ids {
  long cls, mask, pos, patch_w, patch_b, shared_rel;
  struct beit_layer_ids *layer;          /* L entries */
  long final_ln_w, final_ln_b;           /* beit.layernorm (no mean pooling) */
  long pool_ln_w, pool_ln_b;             /* beit.pooler.layernorm */
  long mim_ln_w, mim_ln_b, lm_w, lm_b;   /* layernorm, lm_head */
  long head_w, head_b;                   /* classifier */
};

/* Saved activations of one block; x is the block input (the residual stream). In bf16 the
 * operands of matrix products are bfloat16 (*_h, NULL in fp32), kept for backward; ln1, ln2 and
 * gelu are then not written (their only reader is the next product), fc1 is bfloat16 only (fc1_h,
 * the product's rounded result; a training forward's GELU replaces it by GELU's derivative there,
 * which is all its backward needs), and qkv and attn are fp32 only (qkv_h holds q, k, v split
 * into heads). */
struct beit_layer_acts {
  float *x, *ln1, *ln1_mean, *ln1_rstd, *qkv, *probs, *attn, *proj, *y;
  float *ln2, *ln2_mean, *ln2_rstd, *fc1, *gelu, *fc2;
  beit_bf16 *ln1_h, *qkv_h, *probs_h, *attn_h, *ln2_h, *fc1_h, *gelu_h;
  /* bf16: the two residual branches, the bf16 results of proj and fc2 (as autocast's linear
   * returns them; proj and fc2 are fp32 only) */
  beit_bf16 *proj_h, *fc2_h;
};

struct beit_acts {
  float *patches;              /* (B*N, C*P*P) */
  float *emb;                  /* (B*N, D) patch projections */
  float **stream;              /* L+1 pointers to (B, T, D): block inputs, then the output */
  struct beit_layer_acts *layer;
  float *rel_shared, *rel_bias; /* (nH, T, T): shared bias; the bias a block actually adds */
  float *hidden;               /* (B, T, D) last_hidden_state (stream[L] or final LN of it) */
  float *final_mean, *final_rstd;
  int32_t *rows;               /* (max M) rows of (B*T) fed to the head */
  float *head_in;              /* (max M, D) gathered rows or mean-pooled features */
  float *head_ln, *head_mean, *head_rstd; /* after the head's LayerNorm (MIM, pooler) */
  float *logits, *probs;       /* (max M, V) */
  uint8_t *mask;               /* (B, N) copy of the batch's mask */
  /* backward scratch, shared by all blocks */
  float *d_stream, *d_ln, *d_qkv, *d_attn, *d_branch, *d_fc1, *d_gelu;
  float *d_bias, *attn_scratch, *d_head_in, *d_head_ln, *d_logits, *d_hidden, *d_emb;
  /* bf16 only: twins of the patch and head inputs; backward scratch for a rounded gradient, for
   * fc2's input gradient (d_gelu_h; d_gelu is fp32 only) and for the LayerNorms' output gradient
   * (d_ln_h, the bf16 input gradient of the qkv and fc1 products; d_ln is fp32 only) */
  beit_bf16 *patches_h, *head_h, *d_h, *d_gelu_h, *d_ln_h;
  /* bf16 only: the qkv product's rounded rows (forward scratch) and its [q_b, 0, v_b] bias; the
   * rounded gradients of the projection input and of the qkv rows (d_attn, d_qkv are fp32 only),
   * and attention's head-major gradient scratch (3 * B*T*D) */
  beit_bf16 *qkv_rows_h, *d_attn_h, *d_qkv_h, *d_heads_h;
  float *qkv_bias;
};

struct beit_model {
  struct beit_config cfg;
  /* sizes */
  size_t max_batch, C, P, gh, gw, N, T, D, F, nH, L, R, out_dim;
  enum beit_arch arch;
  int multilabel;
  /* parameters */
  struct beit_tensor_table table;
  float *params, *grads;
  struct beit_param_ids ids;
  /* matrix products in FP32 or BF16 (beit_model_set_precision); in BF16 params_h is a bfloat16
   * copy of params, rounded at each training forward (inference: when the precision is set) */
  enum beit_precision precision;
  beit_bf16 *params_h;
  int32_t *rel_index; /* (T*T) */
  /* activations */
  float *arena;
  size_t arena_floats;
  struct beit_acts a;
  int inference; /* beit_model_set_inference: no grads, the arena of a forward only */
  int params_shared; /* beit_model_create_sharing: params (and params_h) are another model's */
  int weights_rounded; /* params_h already holds params rounded (the trainer's AdamW wrote it):
                          the next training forward skips its own rounding, once */
  /* MIM head on every patch instead of the masked ones (HF's (B, N, vocab) logits) */
  int head_all_tokens;
  /* state of the last forward and loss */
  size_t B, M;              /* images; rows fed to the head */
  int masked;               /* a mask was applied */
  const float *drop_scales; /* (L, 2, B) or NULL */
  const float *features;    /* (B, D) pooled features (pooler_output) */
  const int32_t *targets;   /* the last loss's targets */
  const float *multi_targets;
  float smoothing;
  /* Called during backward each time a contiguous range [begin, end) of grads (in floats) is
   * final, e.g. to start its allreduce while the rest of backward runs. May be NULL. */
  void (*grads_ready)(void *ctx, size_t begin, size_t end);
  void *grads_ready_ctx;
};

static inline float *beit_param(float *base, const struct beit_model *m, long id)
{
  return id < 0 ? NULL : base + m->table.items[id].offset;
}

/* ---- encoder/precision.c: the layer operations whose matrix products follow m->precision ---- */
/* out (N, OC) = inp (N, C) . W^T + b (tensors w, b; b may be -1). In bf16, inp is rounded into
 * inp_h (N, C), which backward then uses (inp NULL: the producer rounded it already), and when
 * out_h is not NULL the result is written there in bfloat16 instead of out (for a consumer that
 * would round it anyway). */
void beit_model_linear_forward(struct beit_model *m, float *out, beit_bf16 *out_h,
                               const float *inp, beit_bf16 *inp_h, long w, long b, size_t N,
                               size_t C, size_t OC);
/* Backward of that forward (same inp / inp_h): dinp (may be NULL) is OVERWRITTEN with
 * d(loss)/d(inp), in bf16 into dinp_h instead when that is not NULL; the grads of w and b
 * accumulate. In bf16, dout_h is dout already rounded by a fused producer, or NULL to round it
 * here. */
void beit_model_linear_backward(struct beit_model *m, float *dinp, beit_bf16 *dinp_h, long w,
                                long b, const float *dout, const beit_bf16 *dout_h,
                                const float *inp, const beit_bf16 *inp_h, size_t N, size_t C,
                                size_t OC);
/* Backward of a block's residual branch out = x + s * gamma * (inp . W^T + b) (tensors w, b and
 * gamma (may be -1); s (B) the drop-path scales or NULL; branch = the saved inp . W^T + b (B*T,
 * D)) from d(loss)/d(out) in a->d_stream, up to the layer's input: dinp (B*T, C) OVERWRITTEN (in
 * bf16 into dinp_h when that is not NULL, multiplied elementwise by dinp_mul_h before it is
 * rounded when that is not NULL: GELU's saved derivative); the grads of w, b and gamma
 * accumulate. The identity path's gradient is a->d_stream itself, left as it is. */
void beit_model_branch_backward(struct beit_model *m, float *dinp, beit_bf16 *dinp_h,
                                const beit_bf16 *dinp_mul_h, long w, long b, long gamma,
                                const float *sample_scale, const float *branch,
                                const beit_bf16 *branch_h, const float *inp,
                                const beit_bf16 *inp_h, size_t C);
/* Backward through gelu(inp . W^T + b) (tensors w, b). fp32: dout = d(loss)/d(gelu output), fc1
 * = the saved pre-activation (N, F), dfc1 (N, F) scratch. bf16: dout_h is already d(loss)/d(fc1)
 * rounded (fc2's input-gradient product multiplied by GELU's derivative, which the forward saved
 * in fc1_h, beit_model_branch_backward); dout, fc1, dfc1 are unused. dinp (N, C) OVERWRITTEN,
 * in bf16 rounded into dinp_h instead. */
void beit_model_mlp_in_backward(struct beit_model *m, float *dinp, beit_bf16 *dinp_h, long w,
                                long b, const float *dout, const beit_bf16 *dout_h,
                                const float *fc1, float *dfc1, const float *inp,
                                const beit_bf16 *inp_h, size_t N, size_t C, size_t F);
/* The attention branch of block l up to the output projection: the qkv product of ln1 (the
 * block's first LayerNorm output; NULL in bf16, where it is in la->ln1_h) and the attention core
 * (beit_attention_forward in m's precision) with the relative position bias bias. Returns the
 * projection's float32 input (la->attn), or NULL in bf16, where it is rounded into la->attn_h. */
const float *beit_model_attention_forward(struct beit_model *m, size_t l, const float *ln1,
                                         const float *bias);
/* Its backward, from d(loss)/d(projection input) (a->d_attn; in bf16 a->d_attn_h) to
 * d(loss)/d(ln1) in a->d_ln (OVERWRITTEN; in bf16 rounded into a->d_ln_h); the grads of q, v and the qkv weights accumulate, and
 * so does dbias (nH, T, T) (NULL skips). */
void beit_model_attention_backward(struct beit_model *m, size_t l, float *dbias);
/* A LayerNorm (tensors w, b) or GELU whose output only feeds a matrix product: float32 out in
 * fp32, rounded straight into out_h in bf16 (out untouched; GELU reads the bf16 pre-activation
 * inp_h there). Each returns the float32 input for beit_model_linear_forward: out, or NULL
 * (already rounded). */
const float *beit_model_layernorm_forward(struct beit_model *m, float *out, beit_bf16 *out_h,
                                         float *mean, float *rstd, const float *inp, long w,
                                         long b, size_t N, size_t C);
/* The residual add y (B*T, D) = x + s * gamma * branch (tensor gamma, -1: none; s the DropPath
 * scales or NULL; the branch float32 in fp32, bfloat16 branch_h in bf16). */
void beit_model_residual_forward(struct beit_model *m, float *y, const float *x,
                                 const float *branch, const beit_bf16 *branch_h, long gamma,
                                 const float *sample_scale);
/* The same and the LayerNorm (tensors w, b) of y in one pass (beit_residual_layernorm_forward);
 * the LayerNorm's output as beit_model_layernorm_forward writes and returns it. */
const float *beit_model_residual_layernorm_forward(struct beit_model *m, float *y, const float *x,
                                                  const float *branch, const beit_bf16 *branch_h,
                                                  long gamma, const float *sample_scale,
                                                  float *out, beit_bf16 *out_h, float *mean,
                                                  float *rstd, long w, long b);
const float *beit_model_gelu_forward(struct beit_model *m, float *out, beit_bf16 *out_h,
                                     const float *inp, beit_bf16 *inp_h, size_t n);
/* The backward of a block's LayerNorm (tensors w, b; its input inp, mean, rstd saved by the
 * forward) from d(loss)/d(its output) in a->d_ln (in bf16 a->d_ln_h, as the products rounded
 * it): dinp (B*T, D) and the grads of w and b accumulate. */
void beit_model_layernorm_backward(struct beit_model *m, float *dinp, long w, long b,
                                   const float *inp, const float *mean, const float *rstd);
/* Round params into params_h (bf16 only; no-op in fp32). */
void beit_model_round_weights(struct beit_model *m);

/* Build the parameter table and param ids for m->cfg (used by create). */
enum beit_status beit_model_build_table(struct beit_model *m, struct beit_error *err);

/* What a parameter tensor is for, from the table's ids: the transfer code decides by role what
 * may be missing from a source, what resizes and what a new classifier replaces. */
enum beit_param_role {
  BEIT_ROLE_BODY,             /* patch projection, cls token, block weights */
  BEIT_ROLE_MASK_TOKEN,
  BEIT_ROLE_POS_EMBED,        /* absolute position embeddings */
  BEIT_ROLE_REL_TABLE,        /* a block's relative position bias table */
  BEIT_ROLE_SHARED_REL_TABLE, /* the table all blocks share */
  BEIT_ROLE_FINAL_NORM,       /* beit.layernorm (cls pooling) */
  BEIT_ROLE_HEAD,             /* pooler LayerNorm, MIM LayerNorm and lm_head */
  BEIT_ROLE_CLASSIFIER,
};
enum beit_param_role beit_model_param_role(const struct beit_model *m, size_t i);
/* Plan and allocate the activation arena for m->max_batch. */
enum beit_status beit_model_plan(struct beit_model *m, struct beit_error *err);

#endif
