/* Training recipes: one JSON schema (configs/recipes/) for pretraining and fine-tuning, read
 * through one table of known keys (core/config_table.h). Unknown keys and out-of-range values
 * are errors naming the key and the file; --set a.b=value overrides a key. beit_recipe_load reads
 * the paths as written; beit_recipe_resolve makes them relative to the recipe file. */
#ifndef BEIT_MIM_RECIPE_H
#define BEIT_MIM_RECIPE_H

#include <cjson/cJSON.h>

#include "beit/data.h"
#include "beit/status.h"
#include "config_table.h"

struct beit_recipe {
  char model[BEIT_CONFIG_STR];  /* model config.json (HF schema) */
  long seed;
  char precision[BEIT_CONFIG_STR]; /* matrix products of the encoder: "auto" (bf16 on AMX CPUs,
                                      else fp32), "fp32", "bf16" (mim/precision_policy.h) */
  struct {
    char train[BEIT_CONFIG_STR], eval[BEIT_CONFIG_STR]; /* dataset folders (or --data) */
    long num_workers, num_buffers;
    char norm[BEIT_CONFIG_STR];   /* view A normalisation: "inception" (0.5/0.5), "imagenet" */
    double jitter, hflip, scale_min, scale_max, ratio_min, ratio_max;
  } data;
  struct {
    double lr, min_lr, weight_decay, weight_decay_end, beta1, beta2, eps, clip_grad;
    double layer_decay; /* fine-tuning: lr scale decay^(L+1-layer_id); 1 = off */
  } optimizer;
  struct {
    double epochs, warmup_epochs;
    long warmup_steps, max_steps; /* > 0 override the epoch-derived values */
  } schedule;
  struct {
    long size, accum_steps; /* per-rank micro-batch; micro-batches per update */
  } batch;
  struct {
    char type[BEIT_CONFIG_STR]; /* "blockwise" or "random" */
    long num_masking_patches, min_num_patches, max_num_patches;
    double min_aspect;
  } masking;
  double drop_path_rate;        /* < 0: the model config's */
  double label_smoothing;
  struct {
    long every_steps, keep_last;
  } checkpoint;
  struct {
    long every_steps;
  } log;
  struct {
    long every_steps, batches;
  } eval;
  long max_consecutive_nonfinite;
  struct {
    double timeout_s; /* every collective's deadline (mim/dist_policy.h); 0 = none */
  } distributed;
  /* fine-tuning, evaluation and linear probing (mim/finetune.c, mim/eval.c, mim/probe.c) */
  char task[BEIT_CONFIG_STR];   /* "auto" (the dataset's), "multiclass", "multilabel" */
  long image_size;              /* fine-tuning resolution; 0 = the initial checkpoint's */
  char pooling[BEIT_CONFIG_STR]; /* "mean" (mean of patch tokens + LayerNorm) or "cls" */
  double head_init_scale;       /* classifier init multiplier (timm 0.001) */
  struct {
    double mixup_alpha, cutmix_alpha, prob, switch_prob;
  } mixup;
  struct {
    double fraction;                  /* labelled fraction of data.train (class-balanced) */
    char eval_resize[BEIT_CONFIG_STR]; /* "center_crop" or "direct" */
    double crop_pct;
    char rand_augment[BEIT_CONFIG_STR]; /* timm RandAugment spec; "" = off */
    double reprob;                      /* RandomErasing probability; 0 = off */
  } finetune_data;
  double eval_threshold;        /* multi-label decision threshold on the probability */
  struct {
    long block;                 /* 1..L; 0 = every block */
    char pool[BEIT_CONFIG_STR]; /* "mean" (patch tokens) or "cls_mean" (concat) */
    double epochs, lr, weight_decay;
    long batch;
  } probe;
};

void beit_recipe_defaults(struct beit_recipe *r);
enum beit_status beit_recipe_load(struct beit_recipe *r, const char *path, struct beit_error *err);
enum beit_status beit_recipe_override(struct beit_recipe *r, const char *assignment,
                                      struct beit_error *err);
/* A training command's recipe: path loaded over r's defaults, then the --set assignments, then
 * --data and --eval-data (NULL: the recipe's). The paths the recipe itself gives (model,
 * data.train, data.eval) are relative to the recipe file, with a fallback to the current
 * directory for recipes written for the repository root (beit_config_resolve_paths: a missing one
 * is MISSING naming the recipe, the key and the paths tried); those given by --set, --data and
 * --eval-data stay relative to the current directory. USAGE when no training set results. */
enum beit_status beit_recipe_resolve(struct beit_recipe *r, const char *path,
                                     const char *const *sets, int nsets, const char *data,
                                     const char *eval_data, struct beit_error *err);
/* The resolved recipe, for trainer_state.json and logs. */
cJSON *beit_recipe_json(const struct beit_recipe *r);
/* The recipe's evaluation transform for a model of side image_size, as a model preprocessing
 * (source "recipe"): data.eval_resize (direct: image_size x image_size; center_crop: shorter
 * side to floor(image_size / data.crop_pct), centre crop image_size), bicubic, rescale 1/255,
 * data.norm (inception: mean = std = 0.5; imagenet: ImageNet mean and std). Fine-tuning
 * evaluates with it and writes it as every checkpoint's preprocessor_config.json; probing
 * evaluates with it. */
void beit_recipe_eval_preprocess(const struct beit_recipe *r, int image_size,
                                 struct beit_data_preprocess *pp);

/* What recipe r says of a training task's loader (on top of beit_dist_policy_loader's pass):
 * data.norm, data.hflip, the crop's scale and ratio, data.num_workers, data.num_buffers and
 * seed. The model's image size and the task's own transform settings are the caller's. */
void beit_recipe_loader_options(const struct beit_recipe *r, struct beit_loader_options *lo);

#endif
