/* The recipe key table: every field, its JSON path, range and meaning, in one place. */
#include "recipe.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist_policy.h"

#define F(field) offsetof(struct beit_recipe, field)
#define BIG 1e12

static const char *const norms[] = {"inception", "imagenet", NULL};
static const char *const mask_types[] = {"blockwise", "random", NULL};
static const char *const tasks[] = {"auto", "multiclass", "multilabel", NULL};
static const char *const poolings[] = {"mean", "cls", NULL};
static const char *const eval_resizes[] = {"center_crop", "direct", NULL};
static const char *const probe_pools[] = {"mean", "cls_mean", NULL};
static const char *const precisions[] = {"auto", "fp32", "bf16", NULL};

static const struct beit_config_key recipe_keys[] = {
    {"model", BEIT_KEY_PATH, F(model), 0, 0, NULL, "model config.json"},
    {"seed", BEIT_KEY_INT, F(seed), 0, BIG, NULL, "seed of every random stream"},
    {"precision", BEIT_KEY_STRING, F(precision), 0, 0, precisions,
     "encoder matrix products; auto = bf16 where the CPU has AMX, else fp32", "auto"},
    {"data.train", BEIT_KEY_PATH, F(data.train), 0, 0, NULL, "training dataset folder"},
    {"data.eval", BEIT_KEY_PATH, F(data.eval), 0, 0, NULL, "held-out dataset folder"},
    {"data.num_workers", BEIT_KEY_INT, F(data.num_workers), 1, 256, NULL, "loader threads", "2"},
    {"data.num_buffers", BEIT_KEY_INT, F(data.num_buffers), 2, 64, NULL, "batches in flight", "3"},
    {"data.norm", BEIT_KEY_STRING, F(data.norm), 0, 0, norms, "view A mean/std", "inception"},
    {"data.jitter", BEIT_KEY_DOUBLE, F(data.jitter), 0, 1, NULL, "colour jitter strength", "0.4"},
    {"data.hflip", BEIT_KEY_DOUBLE, F(data.hflip), 0, 1, NULL, "flip probability", "0.5"},
    {"data.scale_min", BEIT_KEY_DOUBLE, F(data.scale_min), 1e-6, 1, NULL, "crop area min", "0.08"},
    {"data.scale_max", BEIT_KEY_DOUBLE, F(data.scale_max), 1e-6, 1, NULL, "crop area max", "1.0"},
    {"data.ratio_min", BEIT_KEY_DOUBLE, F(data.ratio_min), 1e-3, 1e3, NULL, "crop aspect min",
     "0.75"},
    {"data.ratio_max", BEIT_KEY_DOUBLE, F(data.ratio_max), 1e-3, 1e3, NULL, "crop aspect max",
     "1.3333333333333333"},
    {"optimizer.lr", BEIT_KEY_DOUBLE, F(optimizer.lr), 0, 10, NULL, "peak lr (AdamW)", "1.5e-3"},
    {"optimizer.min_lr", BEIT_KEY_DOUBLE, F(optimizer.min_lr), 0, 10, NULL, "cosine floor", "1e-5"},
    {"optimizer.weight_decay", BEIT_KEY_DOUBLE, F(optimizer.weight_decay), 0, 10, NULL, NULL,
     "0.05"},
    {"optimizer.weight_decay_end", BEIT_KEY_DOUBLE, F(optimizer.weight_decay_end), -1, 10, NULL,
     "< 0: constant weight decay", "-1"},
    {"optimizer.beta1", BEIT_KEY_DOUBLE, F(optimizer.beta1), 0, 0.999999, NULL, NULL, "0.9"},
    {"optimizer.beta2", BEIT_KEY_DOUBLE, F(optimizer.beta2), 0, 0.999999, NULL, NULL, "0.999"},
    {"optimizer.eps", BEIT_KEY_DOUBLE, F(optimizer.eps), 0, 1, NULL, NULL, "1e-8"},
    {"optimizer.clip_grad", BEIT_KEY_DOUBLE, F(optimizer.clip_grad), 0, BIG, NULL,
     "global-norm clip; 0 = off", "3.0"},
    {"optimizer.layer_decay", BEIT_KEY_DOUBLE, F(optimizer.layer_decay), 1e-6, 1, NULL,
     "layer-wise lr decay (fine-tuning)", "1.0"},
    {"schedule.epochs", BEIT_KEY_DOUBLE, F(schedule.epochs), 0, BIG, NULL, NULL, "800"},
    {"schedule.warmup_epochs", BEIT_KEY_DOUBLE, F(schedule.warmup_epochs), 0, BIG, NULL, NULL,
     "10"},
    {"schedule.warmup_steps", BEIT_KEY_INT, F(schedule.warmup_steps), 0, BIG, NULL,
     "> 0 overrides warmup_epochs"},
    {"schedule.max_steps", BEIT_KEY_INT, F(schedule.max_steps), 0, BIG, NULL,
     "> 0 overrides epochs"},
    {"batch.size", BEIT_KEY_INT, F(batch.size), 1, 1 << 20, NULL, "per-rank micro-batch", "128"},
    {"batch.accum_steps", BEIT_KEY_INT, F(batch.accum_steps), 1, 1 << 16, NULL,
     "micro-batches per update", "1"},
    {"masking.type", BEIT_KEY_STRING, F(masking.type), 0, 0, mask_types, NULL, "blockwise"},
    {"masking.num_masking_patches", BEIT_KEY_INT, F(masking.num_masking_patches), 0, 1 << 20,
     NULL, "budget per image (75 of 196)", "75"},
    {"masking.min_num_patches", BEIT_KEY_INT, F(masking.min_num_patches), 1, 1 << 20, NULL,
     NULL, "16"},
    {"masking.max_num_patches", BEIT_KEY_INT, F(masking.max_num_patches), 0, 1 << 20, NULL,
     "0 = the budget"},
    {"masking.min_aspect", BEIT_KEY_DOUBLE, F(masking.min_aspect), 1e-3, 1, NULL, NULL, "0.3"},
    {"drop_path_rate", BEIT_KEY_DOUBLE, F(drop_path_rate), -1, 1, NULL, "< 0: model's", "-1"},
    {"label_smoothing", BEIT_KEY_DOUBLE, F(label_smoothing), 0, 1, NULL, NULL},
    {"checkpoint.every_steps", BEIT_KEY_INT, F(checkpoint.every_steps), 0, BIG, NULL,
     "0 = only at the end", "1000"},
    {"checkpoint.keep_last", BEIT_KEY_INT, F(checkpoint.keep_last), 0, 1 << 20, NULL,
     "0 = keep all", "3"},
    {"log.every_steps", BEIT_KEY_INT, F(log.every_steps), 1, BIG, NULL, NULL, "10"},
    {"eval.every_steps", BEIT_KEY_INT, F(eval.every_steps), 0, BIG, NULL, "0 = at the end", "0"},
    {"eval.batches", BEIT_KEY_INT, F(eval.batches), 0, BIG, NULL, "per rank; 0 = the whole set",
     "20"},
    {"max_consecutive_nonfinite", BEIT_KEY_INT, F(max_consecutive_nonfinite), 1, 1 << 20, NULL,
     "skipped updates in a row before the run stops", "5"},
    {"distributed.timeout_s", BEIT_KEY_DOUBLE, F(distributed.timeout_s), 0,
     BEIT_DIST_TIMEOUT_MAX, NULL,
     "seconds a collective may wait for a rank before the job ends naming it; 0 = no deadline",
     "600"},
    /* fine-tuning, evaluation, linear probing */
    {"task", BEIT_KEY_STRING, F(task), 0, 0, tasks, "auto = the training dataset's task", "auto"},
    {"image_size", BEIT_KEY_INT, F(image_size), 0, 8192, NULL,
     "fine-tuning resolution; 0 = the initial checkpoint's"},
    {"pooling", BEIT_KEY_STRING, F(pooling), 0, 0, poolings, "classifier input", "mean"},
    {"head_init_scale", BEIT_KEY_DOUBLE, F(head_init_scale), 0, 10, NULL,
     "classifier init multiplier", "0.001"},
    {"mixup.mixup_alpha", BEIT_KEY_DOUBLE, F(mixup.mixup_alpha), 0, 100, NULL, "0 = off"},
    {"mixup.cutmix_alpha", BEIT_KEY_DOUBLE, F(mixup.cutmix_alpha), 0, 100, NULL, "0 = off"},
    {"mixup.prob", BEIT_KEY_DOUBLE, F(mixup.prob), 0, 1, NULL, "batches mixed", "1.0"},
    {"mixup.switch_prob", BEIT_KEY_DOUBLE, F(mixup.switch_prob), 0, 1, NULL,
     "CutMix instead of Mixup when both are on", "0.5"},
    {"data.fraction", BEIT_KEY_DOUBLE, F(finetune_data.fraction), 1e-9, 1, NULL,
     "labelled fraction of data.train: seeded, class-balanced subset", "1.0"},
    {"data.eval_resize", BEIT_KEY_STRING, F(finetune_data.eval_resize), 0, 0, eval_resizes,
     "evaluation resize", "center_crop"},
    {"data.crop_pct", BEIT_KEY_DOUBLE, F(finetune_data.crop_pct), 1e-3, 1, NULL,
     "evaluation centre crop fraction", "0.875"},
    {"data.rand_augment", BEIT_KEY_STRING, F(finetune_data.rand_augment), 0, 0, NULL,
     "fine-tuning RandAugment, timm's spec (BEiT: rand-m9-mstd0.5-inc1); \"\" = off"},
    {"data.reprob", BEIT_KEY_DOUBLE, F(finetune_data.reprob), 0, 1, NULL,
     "fine-tuning RandomErasing probability (BEiT: 0.25, mode pixel)"},
    {"eval.threshold", BEIT_KEY_DOUBLE, F(eval_threshold), 0, 1, NULL,
     "multi-label decision threshold", "0.5"},
    {"probe.block", BEIT_KEY_INT, F(probe.block), 0, 1024, NULL, "1..L; 0 = every block"},
    {"probe.pool", BEIT_KEY_STRING, F(probe.pool), 0, 0, probe_pools, "probe features", "mean"},
    {"probe.epochs", BEIT_KEY_DOUBLE, F(probe.epochs), 0, BIG, NULL, NULL, "50"},
    {"probe.lr", BEIT_KEY_DOUBLE, F(probe.lr), 0, 10, NULL, "peak lr (AdamW, cosine)", "4e-3"},
    {"probe.weight_decay", BEIT_KEY_DOUBLE, F(probe.weight_decay), 0, 10, NULL, NULL, "1e-4"},
    {"probe.batch", BEIT_KEY_INT, F(probe.batch), 1, 1 << 20, NULL, NULL, "1024"},
};
#define NKEYS (sizeof recipe_keys / sizeof recipe_keys[0])

void beit_recipe_defaults(struct beit_recipe *r)
{
  memset(r, 0, sizeof *r);
  beit_config_table_defaults(r, recipe_keys, NKEYS, "recipe");
}

enum beit_status beit_recipe_load(struct beit_recipe *r, const char *path, struct beit_error *err)
{
  return beit_config_load_file(r, recipe_keys, NKEYS, path, err);
}

enum beit_status beit_recipe_override(struct beit_recipe *r, const char *assignment,
                                      struct beit_error *err)
{
  return beit_config_set(r, recipe_keys, NKEYS, assignment, err);
}

cJSON *beit_recipe_json(const struct beit_recipe *r)
{
  return beit_config_to_json(r, recipe_keys, NKEYS);
}

enum beit_status beit_recipe_resolve(struct beit_recipe *r, const char *path,
                                     const char *const *sets, int nsets, const char *data,
                                     const char *eval_data, struct beit_error *err)
{
  enum beit_status st = beit_recipe_load(r, path, err);
  if (st)
    return st;
  const struct beit_recipe file = *r; /* what the recipe gave: its paths are relative to it */
  for (int i = 0; !st && i < nsets; i++)
    st = beit_recipe_override(r, sets[i], err);
  if (st)
    return st;
  if (data)
    snprintf(r->data.train, sizeof r->data.train, "%s", data);
  if (eval_data)
    snprintf(r->data.eval, sizeof r->data.eval, "%s", eval_data);
  if ((st = beit_config_resolve_paths(r, &file, recipe_keys, NKEYS, path, err)))
    return st;
  if (!r->data.train[0])
    return beit_error_set(err, BEIT_STATUS_USAGE,
                          "no training data: give --data or set data.train in %s", path);
  return BEIT_STATUS_OK;
}

void beit_recipe_eval_preprocess(const struct beit_recipe *r, int image_size,
                                 struct beit_data_preprocess *pp)
{
  struct beit_data_transform t;
  beit_data_transform_defaults(&t, BEIT_DATA_MODE_EVAL); /* bicubic, mean = std = 0.5 */
  if (!strcmp(r->data.norm, "imagenet"))
    beit_data_transform_imagenet_norm(&t);
  t.image_size = image_size;
  t.eval_resize = !strcmp(r->finetune_data.eval_resize, "direct") ? BEIT_DATA_EVAL_DIRECT
                                                                  : BEIT_DATA_EVAL_CENTER_CROP;
  t.crop_pct = r->finetune_data.crop_pct;
  beit_data_preprocess_from_transform(pp, &t);
}

void beit_recipe_loader_options(const struct beit_recipe *r, struct beit_loader_options *lo)
{
  if (!strcmp(r->data.norm, "imagenet"))
    beit_data_transform_imagenet_norm(&lo->transform);
  lo->transform.hflip = r->data.hflip;
  lo->transform.scale_min = r->data.scale_min;
  lo->transform.scale_max = r->data.scale_max;
  lo->transform.ratio_min = r->data.ratio_min;
  lo->transform.ratio_max = r->data.ratio_max;
  lo->num_workers = (int)r->data.num_workers;
  lo->num_buffers = (int)r->data.num_buffers;
  lo->seed = (uint64_t)r->seed;
}
