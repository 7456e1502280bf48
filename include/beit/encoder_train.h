/* Training a BEiT encoder (include/beit/model.h's struct beit_model): the loss and backward of
 * the last forward, the parameter and gradient buffers the trainer, the optimizer and the
 * gradient allreduce work on, and the hooks between them. For mim/ (pretraining, fine-tuning,
 * the linear probe); inference needs only beit/model.h. Implemented in encoder/. */
#ifndef BEIT_ENCODER_TRAIN_H
#define BEIT_ENCODER_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "beit/model.h"

struct beit_tensor_table; /* core/tensor_table.h */
struct cJSON;

/* Loss of the last forward: MIM and single-label use targets (M or B class ids, label
 * smoothing `smoothing`); multi-label uses multi_targets (B, num_labels). A single-label
 * classifier given targets NULL and multi_targets (B, num_labels) rows of a distribution (mixup,
 * cutmix, smoothing already applied) uses the soft-target cross-entropy. *correct (may be NULL)
 * gets the number of argmax hits (MIM, single-label) or exactly matched rows at 0.5. */
double beit_model_loss(struct beit_model *model, const int32_t *targets,
                       const float *multi_targets, float smoothing, long *correct);
/* grads += dloss * d(loss)/d(params) for the last forward + loss (dloss < 1 for gradient
 * accumulation over micro-batches). */
void beit_model_backward(struct beit_model *model, float dloss);
void beit_model_zero_grad(struct beit_model *model);

/* The parameter table (HF name, shape, offset, no-decay flag, layer id, lr scale) and the
 * buffers it describes, table->total floats each; params_h is the bfloat16 copy (uint16_t bits,
 * core/gemm.h beit_bf16) in bf16, NULL in fp32; grads NULL for an inference model. The table's
 * lr scales are the caller's to set (layer decay); the rest is the model's. */
struct beit_tensor_table *beit_model_table(struct beit_model *model);
float *beit_model_params(struct beit_model *model);
float *beit_model_grads(struct beit_model *model);
uint16_t *beit_model_params_h(struct beit_model *model);

/* Called during backward each time a contiguous range [begin, end) of grads (in floats) is
 * final, e.g. to start its allreduce while the rest of backward runs; fn NULL: none. */
void beit_model_set_grads_ready(struct beit_model *model,
                                void (*fn)(void *ctx, size_t begin, size_t end), void *ctx);
/* The trainer's AdamW has just written params rounded into params_h: the next training
 * forward skips its own rounding, once (0 clears it). */
void beit_model_set_weights_rounded(struct beit_model *model, int rounded);
/* Multiply the classifier's weight and bias by k (timm's head_init_scale). */
void beit_model_scale_classifier(struct beit_model *model, float k);

/* The config as HF's config.json object (architectures, id2label, label2id, model_type). */
struct cJSON *beit_config_json(const struct beit_config *cfg);

#endif
