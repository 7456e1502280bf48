/* The BEiT encoder: configuration (HF BeitConfig field names), parameters, forward/backward.
 *
 * One struct beit_model holds the configuration, the parameter table with its params/grads
 * buffers (AdamW moments live with the trainer), and the activation arena planned for a maximum
 * batch. Architectures follow HF: BeitModel (hidden states + pooler), BeitForMaskedImageModeling
 * (final LayerNorm + lm_head on masked patches), BeitForImageClassification (mean pooling +
 * pooler LayerNorm, or cls token after the final LayerNorm, then the classifier). */
#ifndef BEIT_MODEL_H
#define BEIT_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "beit/precision.h"
#include "beit/status.h"

#define BEIT_NAME_MAX 64

enum beit_arch {
  BEIT_ARCH_MODEL,      /* "BeitModel" */
  BEIT_ARCH_MIM,        /* "BeitForMaskedImageModeling" */
  BEIT_ARCH_CLASSIFIER, /* "BeitForImageClassification" */
};

/* Field names and meanings as HF BeitConfig; `architecture` is architectures[0] of config.json,
 * `labels` its id2label in id order (NULL entries named "LABEL_i"). */
struct beit_config {
  long image_size, patch_size, num_channels;
  long hidden_size, num_hidden_layers, num_attention_heads, intermediate_size;
  char hidden_act[BEIT_NAME_MAX];
  double hidden_dropout_prob, attention_probs_dropout_prob;
  double initializer_range, layer_norm_eps, layer_scale_init_value, drop_path_rate;
  int use_mask_token, use_absolute_position_embeddings;
  int use_relative_position_bias, use_shared_relative_position_bias, use_mean_pooling;
  long vocab_size, num_labels;
  char architecture[BEIT_NAME_MAX];
  char problem_type[BEIT_NAME_MAX]; /* "", "single_label_classification", "multi_label_classification" */
  char **labels;                    /* num_labels names, owned */
};

/* Defaults of HF BeitConfig (BEiT-base/16 at 224, MIM vocabulary 8192). */
void beit_config_defaults(struct beit_config *cfg);
/* Read a config.json (HF schema, or one of configs/models/). Unknown keys and invalid values are
 * errors naming the key and file; HF bookkeeping keys (transformers_version, ...) are accepted. */
enum beit_status beit_config_load(struct beit_config *cfg, const char *path,
                                  struct beit_error *err);
/* Apply a "key=value" override (--set). */
enum beit_status beit_config_override(struct beit_config *cfg, const char *assignment,
                                      struct beit_error *err);
/* Check consistency (divisibility, ranges, supported features). */
enum beit_status beit_config_validate(const struct beit_config *cfg, const char *source,
                                      struct beit_error *err);
enum beit_status beit_config_save(const struct beit_config *cfg, const char *path,
                                  struct beit_error *err);
enum beit_status beit_config_set_labels(struct beit_config *cfg, long num_labels,
                                        const char *const *names, struct beit_error *err);
enum beit_arch beit_config_arch(const struct beit_config *cfg);
int beit_config_is_multilabel(const struct beit_config *cfg);
void beit_config_free(struct beit_config *cfg);

struct beit_model; /* opaque outside encoder/: the accessors below and beit/encoder_train.h */

/* Build the parameter table for cfg and plan activations for up to max_batch images. Weights are
 * zero until beit_model_init_weights or beit_model_load_weights. cfg is copied. */
enum beit_status beit_model_create(struct beit_model **out, const struct beit_config *cfg,
                                   size_t max_batch, struct beit_error *err);
void beit_model_free(struct beit_model *model);

enum beit_init_scheme {
  BEIT_INIT_PRETRAIN, /* spec 3: trunc normal +-1 sigma, 1/sqrt(2l) rescale */
  BEIT_INIT_FINETUNE, /* spec 3: trunc normal +-2, head scaled by 0.001 */
};
void beit_model_init_weights(struct beit_model *model, enum beit_init_scheme scheme,
                             uint64_t seed);

/* Load a model folder (config.json + model.safetensors, ours or HF save_pretrained). */
enum beit_status beit_model_load(struct beit_model **out, const char *dir, size_t max_batch,
                                 struct beit_error *err);
/* Save config.json + model.safetensors atomically. */
enum beit_status beit_model_save(const struct beit_model *model, const char *dir,
                                 struct beit_error *err);

/* Run the matrix products of forward and backward in precision p (AUTO resolves to the machine's
 * default; BF16 without bf16 support is an error). Re-plans the activation arena (activations of
 * the last forward are lost; weights are kept). A new model starts in FP32. In BF16 the model
 * keeps a bf16 copy of its weights, refreshed at each forward from the float32 master weights. */
enum beit_status beit_model_set_precision(struct beit_model *model, enum beit_precision p,
                                          struct beit_error *err);
enum beit_precision beit_model_precision(const struct beit_model *model);

const struct beit_config *beit_model_config(const struct beit_model *model);

/* A model's sizes (encoder/access.c). */
struct beit_model_dims {
  size_t max_batch;          /* images a forward may take (beit_model_replan changes it) */
  size_t C, P, gh, gw;       /* channels, patch side, patch grid */
  size_t N, T, D, L;         /* patches, tokens (N + 1), width, blocks */
  size_t out_dim;            /* head outputs: vocabulary (MIM), labels (classifier), D */
};
void beit_model_dims(const struct beit_model *model, struct beit_model_dims *dims);
enum beit_arch beit_model_arch(const struct beit_model *model);

/* Inference only, for good: release the gradient buffer (as large as the weights) and re-plan
 * the arena without what backward needs (every block shares one set of activation buffers: the
 * arena shrinks about L-fold; the residual stream after each block is still kept). Backward and
 * zero_grad are then no-ops. */
enum beit_status beit_model_set_inference(struct beit_model *model, struct beit_error *err);
/* Explicit re-plan for another maximum batch (activations are lost; weights are kept). */
enum beit_status beit_model_replan(struct beit_model *model, size_t max_batch,
                                   struct beit_error *err);

/* Another inference model over owner's weights (serve's sessions, encoder/access.c): the same
 * config and precision, params (and in bf16 the bfloat16 copy) shared with owner, not copied;
 * its own activation arena for max_batch images, no gradients. owner must be planned for
 * inference already, its precision set, and outlive the model; neither's precision may change
 * afterwards. Forwards of owner and of its sharers may run concurrently: forward only reads the
 * weights. Free it with beit_model_free (the shared weights stay owner's). */
enum beit_status beit_model_create_sharing(struct beit_model **out,
                                           const struct beit_model *owner, size_t max_batch,
                                           struct beit_error *err);

/* Forward of B <= max_batch images (B, C, H, W). mask (B, N) of 0/1 or NULL (needs a mask token
 * when given); drop_scales (L, 2, B): per-sample multipliers of the attention and MLP branches of
 * each block (beit_drop_path_scales), NULL at evaluation. Fills hidden and the head's logits:
 * MIM (M, vocab) for the M masked patches in batch-major, row-major order (every patch after
 * beit_model_set_head_all_tokens); classifier (B, num_labels); BeitModel (B, D) pooled
 * features. */
enum beit_status beit_model_forward(struct beit_model *model, const float *pixels,
                                    const uint8_t *mask, const float *drop_scales, size_t B,
                                    struct beit_error *err);
/* What the last forward left (valid until the next forward or re-plan): the head's logits
 * (rows x out_dim: see beit_model_forward); last_hidden_state (B, T, D); the residual stream
 * after block k (B, T, D), k = 1..L, k = 0 the embeddings. */
const float *beit_model_logits(const struct beit_model *model);
const float *beit_model_hidden(const struct beit_model *model);
const float *beit_model_block_output(const struct beit_model *model, size_t k);
/* 1: a MIM head runs on every patch, as HF's (B, N, vocab) logits (beit run); 0 (default): on
 * the masked ones. */
void beit_model_set_head_all_tokens(struct beit_model *model, int on);
size_t beit_model_num_params(const struct beit_model *model);
/* Matmul FLOPs (2 per multiply-add) of one image's forward. */
double beit_model_flops_per_image(const struct beit_model *model);

/* A config described without running it (beit info; encoder/summary.c). */
struct beit_model_summary {
  size_t gh, gw, layers;       /* patch grid, blocks */
  size_t params;               /* beit_model_num_params */
  size_t embeddings, blocks, relative_position_bias, heads; /* parameters per group; heads
                                                               includes the final norms */
  double flops;                /* beit_model_flops_per_image */
  size_t arena_bytes[2][2];    /* activations planned for the batch, [training, inference]
                                  x [fp32, bf16]; bf16 0 unless asked for */
};
/* Build cfg's model for batch images, count and plan (in bf16 too when bf16 is set: it must be
 * available, beit_precision_bf16_available), and free it. */
enum beit_status beit_model_summarize(const struct beit_config *cfg, size_t batch, int bf16,
                                      struct beit_model_summary *s, struct beit_error *err);

/* beit info's report (encoder/info.c). model: a model folder (its config.json) or a config
 * file, with the "key=value" overrides sets[0..nsets) applied in order; NULL for the build and
 * machine only. */
struct beit_model_info_options {
  const char *model;
  const char *const *sets;
  int nsets;
  long batch; /* images of the activation plan (>= 1) */
  int json;   /* one JSON object (keys listed in docs/commands/info.md) instead of text */
};
/* Write the report on out: the model's configuration, parameters per group, FLOPs and planned
 * activation memory (beit_model_summarize), then the OpenMP runtime, backends, precision and
 * version. Nothing is written when the config fails to load or a key to apply. */
enum beit_status beit_model_info(const struct beit_model_info_options *opt, FILE *out,
                                 struct beit_error *err);

/* beit run's side door (encoder/run_file.c): load the model folder model_dir, read
 * pixel_values (B, C, H, W; F32, F16 or BF16) and the optional bool_masked_pos (B, N) from the
 * safetensors file input, run one inference forward of the B images in precision p (resolved:
 * not AUTO) -- a MIM model's head on every patch, as HF -- and write last_hidden_state (B, T, D),
 * logits (MIM (B, N, vocab); classifier (B, num_labels)) and, for pooled architectures,
 * pooler_output (B, D) to the safetensors file output. Errors name the file and tensor. */
enum beit_status beit_model_run_file(const char *model_dir, const char *input, const char *output,
                                     enum beit_precision p, struct beit_error *err);

#endif
