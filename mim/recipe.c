/* The recipe key table: every field, its JSON path, range and meaning, in one place. */
#include "recipe.h"

#include <stddef.h>
#include <stdio.h>
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
     "encoder matrix products; auto = bf16 where the CPU has AMX, else fp32"},
    {"data.train", BEIT_KEY_PATH, F(data.train), 0, 0, NULL, "training dataset folder"},
    {"data.eval", BEIT_KEY_PATH, F(data.eval), 0, 0, NULL, "held-out dataset folder"},
    {"data.num_workers", BEIT_KEY_INT, F(data.num_workers), 1, 256, NULL, "loader threads"},
    {"data.num_buffers", BEIT_KEY_INT, F(data.num_buffers), 2, 64, NULL, "batches in flight"},
    {"data.norm", BEIT_KEY_STRING, F(data.norm), 0, 0, norms, "view A mean/std"},
    {"data.jitter", BEIT_KEY_DOUBLE, F(data.jitter), 0, 1, NULL, "colour jitter strength"},
    {"data.hflip", BEIT_KEY_DOUBLE, F(data.hflip), 0, 1, NULL, "flip probability"},
    {"data.scale_min", BEIT_KEY_DOUBLE, F(data.scale_min), 1e-6, 1, NULL, "crop area min"},
    {"data.scale_max", BEIT_KEY_DOUBLE, F(data.scale_max), 1e-6, 1, NULL, "crop area max"},
    {"data.ratio_min", BEIT_KEY_DOUBLE, F(data.ratio_min), 1e-3, 1e3, NULL, "crop aspect min"},
    {"data.ratio_max", BEIT_KEY_DOUBLE, F(data.ratio_max), 1e-3, 1e3, NULL, "crop aspect max"},
    {"optimizer.lr", BEIT_KEY_DOUBLE, F(optimizer.lr), 0, 10, NULL, "peak lr (AdamW)"},
    {"optimizer.min_lr", BEIT_KEY_DOUBLE, F(optimizer.min_lr), 0, 10, NULL, "cosine floor"},
    {"optimizer.weight_decay", BEIT_KEY_DOUBLE, F(optimizer.weight_decay), 0, 10, NULL, NULL},
    {"optimizer.weight_decay_end", BEIT_KEY_DOUBLE, F(optimizer.weight_decay_end), -1, 10, NULL,
     "< 0: constant weight decay"},
    {"optimizer.beta1", BEIT_KEY_DOUBLE, F(optimizer.beta1), 0, 0.999999, NULL, NULL},
    {"optimizer.beta2", BEIT_KEY_DOUBLE, F(optimizer.beta2), 0, 0.999999, NULL, NULL},
    {"optimizer.eps", BEIT_KEY_DOUBLE, F(optimizer.eps), 0, 1, NULL, NULL},
    {"optimizer.clip_grad", BEIT_KEY_DOUBLE, F(optimizer.clip_grad), 0, BIG, NULL,
     "global-norm clip; 0 = off"},
    {"optimizer.layer_decay", BEIT_KEY_DOUBLE, F(optimizer.layer_decay), 1e-6, 1, NULL,
     "layer-wise lr decay (fine-tuning)"},
    {"schedule.epochs", BEIT_KEY_DOUBLE, F(schedule.epochs), 0, BIG, NULL, NULL},
    {"schedule.warmup_epochs", BEIT_KEY_DOUBLE, F(schedule.warmup_epochs), 0, BIG, NULL, NULL},
    {"schedule.warmup_steps", BEIT_KEY_INT, F(schedule.warmup_steps), 0, BIG, NULL,
     "> 0 overrides warmup_epochs"},
    {"schedule.max_steps", BEIT_KEY_INT, F(schedule.max_steps), 0, BIG, NULL,
     "> 0 overrides epochs"},
    {"batch.size", BEIT_KEY_INT, F(batch.size), 1, 1 << 20, NULL, "per-rank micro-batch"},
    {"batch.accum_steps", BEIT_KEY_INT, F(batch.accum_steps), 1, 1 << 16, NULL,
     "micro-batches per update"},
    {"masking.type", BEIT_KEY_STRING, F(masking.type), 0, 0, mask_types, NULL},
    {"masking.num_masking_patches", BEIT_KEY_INT, F(masking.num_masking_patches), 0, 1 << 20,
     NULL, "budget per image (75 of 196)"},
    {"masking.min_num_patches", BEIT_KEY_INT, F(masking.min_num_patches), 1, 1 << 20, NULL,
     NULL},
    {"masking.max_num_patches", BEIT_KEY_INT, F(masking.max_num_patches), 0, 1 << 20, NULL,
     "0 = the budget"},
    {"masking.min_aspect", BEIT_KEY_DOUBLE, F(masking.min_aspect), 1e-3, 1, NULL, NULL},
    {"drop_path_rate", BEIT_KEY_DOUBLE, F(drop_path_rate), -1, 1, NULL, "< 0: model's"},
    {"label_smoothing", BEIT_KEY_DOUBLE, F(label_smoothing), 0, 1, NULL, NULL},
    {"checkpoint.every_steps", BEIT_KEY_INT, F(checkpoint.every_steps), 0, BIG, NULL,
     "0 = only at the end"},
    {"checkpoint.keep_last", BEIT_KEY_INT, F(checkpoint.keep_last), 0, 1 << 20, NULL,
     "0 = keep all"},
    {"log.every_steps", BEIT_KEY_INT, F(log.every_steps), 1, BIG, NULL, NULL},
    {"eval.every_steps", BEIT_KEY_INT, F(eval.every_steps), 0, BIG, NULL, "0 = at the end"},
    {"eval.batches", BEIT_KEY_INT, F(eval.batches), 0, BIG, NULL, "per rank; 0 = the whole set"},
    {"max_consecutive_nonfinite", BEIT_KEY_INT, F(max_consecutive_nonfinite), 1, 1 << 20, NULL,
     "skipped updates in a row before the run stops"},
    {"distributed.timeout_s", BEIT_KEY_DOUBLE, F(distributed.timeout_s), 0,
     BEIT_DIST_TIMEOUT_MAX, NULL,
     "seconds a collective may wait for a rank before the job ends naming it; 0 = no deadline"},
    /* fine-tuning, evaluation, linear probing */
    {"task", BEIT_KEY_STRING, F(task), 0, 0, tasks, "auto = the training dataset's task"},
    {"image_size", BEIT_KEY_INT, F(image_size), 0, 8192, NULL,
     "fine-tuning resolution; 0 = the initial checkpoint's"},
    {"pooling", BEIT_KEY_STRING, F(pooling), 0, 0, poolings, "classifier input"},
    {"head_init_scale", BEIT_KEY_DOUBLE, F(head_init_scale), 0, 10, NULL,
     "classifier init multiplier"},
    {"mixup.mixup_alpha", BEIT_KEY_DOUBLE, F(mixup.mixup_alpha), 0, 100, NULL, "0 = off"},
    {"mixup.cutmix_alpha", BEIT_KEY_DOUBLE, F(mixup.cutmix_alpha), 0, 100, NULL, "0 = off"},
    {"mixup.prob", BEIT_KEY_DOUBLE, F(mixup.prob), 0, 1, NULL, "batches mixed"},
    {"mixup.switch_prob", BEIT_KEY_DOUBLE, F(mixup.switch_prob), 0, 1, NULL,
     "CutMix instead of Mixup when both are on"},
    {"data.fraction", BEIT_KEY_DOUBLE, F(finetune_data.fraction), 1e-9, 1, NULL,
     "labelled fraction of data.train: seeded, class-balanced subset"},
    {"data.eval_resize", BEIT_KEY_STRING, F(finetune_data.eval_resize), 0, 0, eval_resizes,
     "evaluation resize"},
    {"data.crop_pct", BEIT_KEY_DOUBLE, F(finetune_data.crop_pct), 1e-3, 1, NULL,
     "evaluation centre crop fraction"},
    {"data.rand_augment", BEIT_KEY_STRING, F(finetune_data.rand_augment), 0, 0, NULL,
     "fine-tuning RandAugment, timm's spec (BEiT: rand-m9-mstd0.5-inc1); \"\" = off"},
    {"data.reprob", BEIT_KEY_DOUBLE, F(finetune_data.reprob), 0, 1, NULL,
     "fine-tuning RandomErasing probability (BEiT: 0.25, mode pixel)"},
    {"eval.threshold", BEIT_KEY_DOUBLE, F(eval_threshold), 0, 1, NULL,
     "multi-label decision threshold"},
    {"probe.block", BEIT_KEY_INT, F(probe.block), 0, 1024, NULL, "1..L; 0 = every block"},
    {"probe.pool", BEIT_KEY_STRING, F(probe.pool), 0, 0, probe_pools, "probe features"},
    {"probe.epochs", BEIT_KEY_DOUBLE, F(probe.epochs), 0, BIG, NULL, NULL},
    {"probe.lr", BEIT_KEY_DOUBLE, F(probe.lr), 0, 10, NULL, "peak lr (AdamW, cosine)"},
    {"probe.weight_decay", BEIT_KEY_DOUBLE, F(probe.weight_decay), 0, 10, NULL, NULL},
    {"probe.batch", BEIT_KEY_INT, F(probe.batch), 1, 1 << 20, NULL, NULL},
};
#define NKEYS (sizeof recipe_keys / sizeof recipe_keys[0])

void beit_recipe_defaults(struct beit_recipe *r)
{
  memset(r, 0, sizeof *r);
  strcpy(r->precision, "auto");
  r->data.num_workers = 2;
  r->data.num_buffers = 3;
  strcpy(r->data.norm, "inception");
  r->data.jitter = 0.4;
  r->data.hflip = 0.5;
  r->data.scale_min = 0.08;
  r->data.scale_max = 1.0;
  r->data.ratio_min = 3.0 / 4.0;
  r->data.ratio_max = 4.0 / 3.0;
  r->optimizer.lr = 1.5e-3;
  r->optimizer.min_lr = 1e-5;
  r->optimizer.weight_decay = 0.05;
  r->optimizer.weight_decay_end = -1;
  r->optimizer.beta1 = 0.9;
  r->optimizer.beta2 = 0.999;
  r->optimizer.eps = 1e-8;
  r->optimizer.clip_grad = 3.0;
  r->optimizer.layer_decay = 1.0;
  r->schedule.epochs = 800;
  r->schedule.warmup_epochs = 10;
  r->batch.size = 128;
  r->batch.accum_steps = 1;
  strcpy(r->masking.type, "blockwise");
  r->masking.num_masking_patches = 75;
  r->masking.min_num_patches = 16;
  r->masking.min_aspect = 0.3;
  r->drop_path_rate = -1;
  r->checkpoint.every_steps = 1000;
  r->checkpoint.keep_last = 3;
  r->log.every_steps = 10;
  r->eval.every_steps = 0;
  r->eval.batches = 20;
  r->max_consecutive_nonfinite = 5;
  r->distributed.timeout_s = 600;
  strcpy(r->task, "auto");
  strcpy(r->pooling, "mean");
  r->head_init_scale = 0.001;
  r->mixup.prob = 1.0;
  r->mixup.switch_prob = 0.5;
  r->finetune_data.fraction = 1.0;
  strcpy(r->finetune_data.eval_resize, "center_crop");
  r->finetune_data.crop_pct = 224.0 / 256.0;
  r->eval_threshold = 0.5;
  strcpy(r->probe.pool, "mean");
  r->probe.epochs = 50;
  r->probe.lr = 4e-3;
  r->probe.weight_decay = 1e-4;
  r->probe.batch = 1024;
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
