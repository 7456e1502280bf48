/* Fine-tuning a BEiT encoder as an image classifier (spec 5, 6.3): the pretraining loop's
 * structure (mim/pretrain.c) with labels instead of visual tokens.
 *
 * Setup: the recipe (configs/recipes/finetune_*.json, fine-tuning defaults of unilm's
 * run_class_finetuning underneath); the training set, or a seeded class-balanced fraction of it
 * (data.fraction, materialised once as a dataset folder under OUT); a classifier built from the
 * initial checkpoint's architecture (--init: our pretraining checkpoint, an exported encoder, an
 * HF or timm folder) or from the recipe's model config (random init), with per-layer relative
 * position bias, no mask token, mean pooling + LayerNorm (or cls pooling), a new head scaled by
 * head_init_scale, and the weights carried over by include/beit/transfer.h (shared bias copied into
 * every layer, tables resized when image_size changes); layer-wise lr decay (spec 5.1).
 * Per step: accum_steps micro-batches of RandomResizedCrop + flip images; optional Mixup/CutMix
 * (mim/mixup.h); per-sample drop path; softmax cross-entropy with label smoothing (multiclass) or
 * sigmoid BCE (multilabel); backward with gradient buckets averaged over ranks while it runs;
 * the trainer's clipped, guarded AdamW step with per-tensor lr scales; logs, held-out evaluation
 * (mim/eval.h), checkpoints, resume and SIGTERM exactly as pretraining. */
#ifndef BEIT_MIM_FINETUNE_H
#define BEIT_MIM_FINETUNE_H

#include <stddef.h>

#include "beit/distributed.h"
#include "beit/model.h"
#include "beit/mim.h"
#include "beit/status.h"
#include "recipe.h"

struct beit_model;

/* unilm run_class_finetuning defaults (spec 6.3), on top of beit_recipe_defaults. */
void beit_finetune_recipe_defaults(struct beit_recipe *r);

/* The classifier config for fine-tuning from base (the initial checkpoint's or the recipe's
 * model config): architecture, labels, problem type, per-layer relative position bias, no mask
 * token, pooling, image size and drop path from the recipe. */
enum beit_status beit_finetune_config(struct beit_config *out, const struct beit_config *base,
                                      const struct beit_recipe *r, long num_labels,
                                      const char *const *names, int multilabel,
                                      struct beit_error *err);

/* decay^(L + 1 - layer_id) (spec 5.1). */
double beit_layer_decay_scale(double decay, size_t L, int layer_id);
/* lr_scale of every tensor of m's table from its layer id. */
void beit_model_layer_decay(struct beit_model *m, double decay);

/* Build (or reuse) a seeded, class-balanced subset of `fraction` of the dataset at src into
 * out_dir (a dataset folder; class ids and names kept; at least one sample per class). Writes
 * out_dir.json describing the selection. Rank 0 only; others wait at a barrier. */
enum beit_status beit_finetune_subset(const char *src, double fraction, uint64_t seed,
                                      const char *out_dir, struct beit_error *err);

#endif
