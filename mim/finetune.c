/* The fine-tuning loop (see finetune.h). */
#include "finetune.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "beit/data.h"
#include "checkpoint.h"
#include "clock.h"
#include "config_table.h"
#include "drop_path.h"
#include "beit/encoder_train.h"
#include "eval.h"
#include "kernels.h"
#include "metrics.h"
#include "dist_policy.h"
#include "mixup.h"
#include "precision_policy.h"
#include "rng.h"
#include "trainer.h"
#include "beit/transfer.h"

/* Stream salts: augmentation draws from the loader's (seed, epoch, index); drop path
 * (drop_path.c), mixup and the label subset (finetune_subset.c) from their own streams. */
#define MIXUP_STREAM 0x6d697875ull  /* "mixu" */

enum phase { PHASE_DATA, PHASE_FORWARD, PHASE_BACKWARD, PHASE_ALLREDUCE, PHASE_UPDATE,
             PHASE_COUNT };
static const char *const phase_names[PHASE_COUNT] = {
    "time_data_wait", "time_forward", "time_backward", "time_allreduce_exposed", "time_update"};

struct finetune {
  struct beit_recipe recipe;
  struct beit_dist *dist;
  struct beit_model *model;
  enum beit_precision precision; /* of the encoder's matrix products */
  struct beit_loader *loader;
  struct beit_dist_grads *reducer;
  struct beit_trainer trainer;
  cJSON *config;             /* the model's config.json, written into every checkpoint */
  cJSON *preprocessor;       /* its preprocessor_config.json: the recipe's eval transform */
  struct beit_mixup mixup;
  size_t B, C;
  int multilabel;      /* sigmoid BCE */
  int onehot;          /* BCE on a multi-class dataset: one-hot targets */
  char train_dir[4200];
  struct beit_drop_path drop_path;
  struct beit_randaugment rand_augment; /* recipe data.rand_augment, parsed */
  float *mixed, *soft; /* (B, 3, S, S), (B, C) mixed images and targets */
  float *hot;          /* (B, C) one-hot targets of a multi-class dataset under BCE */
  struct beit_finetune_summary *sum;
};

static void mark(struct finetune *p, enum phase ph) { beit_trainer_mark(&p->trainer, ph); }

/* Where fine-tuning's defaults differ from the recipe table's (run_class_finetuning.py, spec
 * 6.3; colour jitter is a pretraining augmentation here), as --set would give them. */
static const char *const finetune_defaults[] = {
    "optimizer.lr=5e-4",      "optimizer.min_lr=1e-6", "optimizer.weight_decay=0.05",
    "optimizer.layer_decay=0.9", "optimizer.clip_grad=0", "schedule.epochs=30",
    "schedule.warmup_epochs=5", "drop_path_rate=0.1",  "label_smoothing=0.1",
    "data.jitter=0",          "data.rand_augment=rand-m9-mstd0.5-inc1", "data.reprob=0.25",
    "checkpoint.every_steps=0", "eval.batches=0"};

void beit_finetune_recipe_defaults(struct beit_recipe *r)
{
  beit_recipe_defaults(r);
  struct beit_error err = {0};
  for (size_t i = 0; i < sizeof finetune_defaults / sizeof *finetune_defaults; i++)
    if (beit_recipe_override(r, finetune_defaults[i], &err)) { /* a bug of the table above */
      fprintf(stderr, "beit: fine-tuning defaults: %s\n", err.message);
      abort();
    }
}

double beit_layer_decay_scale(double decay, size_t L, int layer_id)
{
  return pow(decay, (double)((long)L + 1 - layer_id));
}

void beit_model_layer_decay(struct beit_model *m, double decay)
{
  struct beit_tensor_table *t = beit_model_table(m);
  struct beit_model_dims dims;
  beit_model_dims(m, &dims);
  for (size_t i = 0; i < t->count; i++)
    t->items[i].lr_scale = (float)beit_layer_decay_scale(decay, dims.L, t->items[i].layer_id);
}

enum beit_status beit_finetune_config(struct beit_config *out, const struct beit_config *base,
                                      const struct beit_recipe *r, long num_labels,
                                      const char *const *names, int multilabel,
                                      struct beit_error *err)
{
  *out = *base;
  out->labels = NULL;
  snprintf(out->architecture, sizeof out->architecture, "BeitForImageClassification");
  snprintf(out->problem_type, sizeof out->problem_type, "%s",
           multilabel ? "multi_label_classification" : "single_label_classification");
  out->use_mask_token = 0;
  if (base->use_relative_position_bias || base->use_shared_relative_position_bias) {
    out->use_relative_position_bias = 1; /* fine-tuning default: one table per layer */
    out->use_shared_relative_position_bias = 0;
  }
  out->use_mean_pooling = strcmp(r->pooling, "cls") != 0;
  if (r->image_size > 0)
    out->image_size = r->image_size;
  if (r->drop_path_rate >= 0)
    out->drop_path_rate = r->drop_path_rate;
  enum beit_status st = beit_config_set_labels(out, num_labels, names, err);
  if (!st)
    st = beit_config_validate(out, "fine-tuning config", err);
  return st;
}

/* ---- the loop ------------------------------------------------------------------------------ */

/* beit_trainer_loop: forward + loss of one training micro-batch; back-propagates the sum of its
 * per-sample losses (trainer.h). */
static enum beit_status train_micro_batch(void *ctx, const struct beit_loader_batch *b,
                                          struct beit_step_sums *sums, double *extra,
                                          struct beit_error *err)
{
  struct finetune *p = ctx;
  struct beit_model *m = p->model;
  (void)extra;
  size_t B = b->count, C = p->C, S = (size_t)beit_model_config(m)->image_size;
  const float *pixels = b->view_a;
  const int32_t *labels = p->multilabel ? NULL : b->labels;
  const float *targets = p->multilabel ? b->targets : NULL;
  float smoothing = (float)p->recipe.label_smoothing;
  if (p->onehot) { /* BCE on a multi-class dataset */
    memset(p->hot, 0, B * C * sizeof *p->hot);
    for (size_t s = 0; s < B; s++)
      p->hot[s * C + (size_t)b->labels[s]] = 1.0f;
    targets = p->hot;
  }
  const float *drop = beit_drop_path_draw(&p->drop_path, (uint64_t)p->recipe.seed, b);
  if (beit_mixup_enabled(&p->mixup)) {
    struct beit_rng rng;
    struct beit_mixup_draw d;
    beit_rng_seed(&rng, (uint64_t)p->recipe.seed ^ MIXUP_STREAM, b->epoch,
                  (uint64_t)b->indices[0]);
    beit_mixup_draw(&p->mixup, &rng, S, S, &d);
    /* the targets (labels, or multi-hot rows) mix into p->soft */
    beit_mixup_apply(&p->mixup, &d, p->mixed, b->view_a, B, 3, S, S, p->soft, labels,
                     targets, C);
    pixels = p->mixed;
    labels = NULL;
    targets = p->soft;
  }
  enum beit_status st = beit_model_forward(m, pixels, NULL, drop, B, err);
  if (st)
    return st;
  long hits = 0;
  double loss = beit_model_loss(m, labels, targets, labels ? smoothing : 0.0f, &hits);
  mark(p, PHASE_FORWARD);
  sums->loss += loss * (double)B;
  sums->correct += (double)hits;
  sums->units += (double)B;
  sums->images += (double)B;
  beit_model_backward(m, (float)B); /* the sum over the micro-batch's samples (trainer.h) */
  mark(p, PHASE_BACKWARD);
  return BEIT_STATUS_OK;
}

static void eval_options(const struct finetune *p, struct beit_eval_options *o)
{
  const struct beit_recipe *r = &p->recipe;
  beit_eval_defaults(o);
  o->data = r->data.eval;
  o->batch = p->B;
  beit_recipe_eval_preprocess(r, (int)beit_model_config(p->model)->image_size, &o->preprocess);
  o->threshold = r->eval_threshold;
  o->num_workers = (int)r->data.num_workers;
  o->max_batches = r->eval.batches;
  o->seed = (uint64_t)r->seed;
}

/* Held-out evaluation; fills the summary, logs a metrics.jsonl line, and on the final pass
 * writes OUT/eval.json (rank 0). */
static enum beit_status evaluate(struct finetune *p, struct beit_finetune_summary *sum, int final,
                                 struct beit_error *err)
{
  struct beit_eval_options o;
  struct beit_metrics mt;
  struct beit_metrics_report rep;
  eval_options(p, &o);
  enum beit_status st = beit_eval_run(p->model, p->dist, &o, &mt, err);
  if (st)
    return st;
  if ((st = beit_metrics_report(&mt, &rep, err))) {
    beit_metrics_free(&mt);
    return st;
  }
  sum->evaluated = 1;
  sum->multilabel = rep.multilabel;
  sum->eval_samples = rep.samples;
  sum->eval_loss = rep.log_loss;
  sum->eval_top1 = rep.top1;
  sum->eval_topk = rep.topk_acc;
  sum->eval_map = rep.map;
  sum->eval_micro_f1 = rep.micro_f1;
  if (beit_dist_is_root(p->dist)) {
    cJSON *f = cJSON_CreateObject();
    cJSON_AddNumberToObject(f, "eval_samples", rep.samples);
    cJSON_AddNumberToObject(f, "eval_loss", rep.log_loss);
    if (rep.multilabel) {
      cJSON_AddNumberToObject(f, "eval_map", isnan(rep.map) ? -1 : rep.map);
      cJSON_AddNumberToObject(f, "eval_micro_f1", isnan(rep.micro_f1) ? -1 : rep.micro_f1);
    } else {
      cJSON_AddNumberToObject(f, "eval_top1", rep.top1);
      cJSON_AddNumberToObject(f, "eval_topk", rep.topk_acc);
    }
    /* a line of its own in metrics.jsonl (the trainer's log line is for training windows) */
    cJSON_AddNumberToObject(f, "step", (double)p->trainer.step);
    cJSON_AddNumberToObject(f, "epoch",
                            (double)p->trainer.step / (double)p->trainer.steps_per_epoch);
    beit_trainer_append(&p->trainer, f);
    if (rep.multilabel)
      fprintf(stderr, "%seval step %ld: mAP %.4f, micro F1 %.4f, log loss %.4f (%.0f images)\n",
              p->trainer.tty ? "\n" : "", p->trainer.step, rep.map, rep.micro_f1, rep.log_loss,
              rep.samples);
    else
      fprintf(stderr, "%seval step %ld: top-1 %.4f, top-%zu %.4f, log loss %.4f (%.0f images)\n",
              p->trainer.tty ? "\n" : "", p->trainer.step, rep.top1, rep.topk, rep.topk_acc,
              rep.log_loss, rep.samples);
    if (final) {
      char path[4300];
      cJSON *j = beit_metrics_report_json(
          &rep, (const char *const *)beit_model_config(p->model)->labels);
      snprintf(path, sizeof path, "%s/eval.json", p->trainer.out_dir);
      if (j)
        cJSON_AddNumberToObject(j, "step", (double)p->trainer.step);
      st = j ? beit_json_write_file(path, j, err)
             : beit_error_set(err, BEIT_STATUS_NOMEM, "eval report: out of memory");
      cJSON_Delete(j);
    }
  }
  beit_metrics_report_free(&rep);
  beit_metrics_free(&mt);
  return st;
}

static void loader_options(const struct finetune *p, struct beit_loader_options *lo)
{
  beit_dist_policy_loader(lo, BEIT_DATA_MODE_FINETUNE, p->dist, p->B, 1, stderr);
  beit_recipe_loader_options(&p->recipe, lo);
  lo->transform.image_size = (int)beit_model_config(p->model)->image_size;
  lo->transform.rand_augment = p->rand_augment;
  lo->transform.erase_prob = p->recipe.finetune_data.reprob;
}

/* The training set: data.train, or its labelled fraction built under OUT by rank 0. */
static enum beit_status prepare_train_data(struct finetune *p, const char *out,
                                           struct beit_error *err)
{
  const struct beit_recipe *r = &p->recipe;
  if (r->finetune_data.fraction >= 1.0) {
    snprintf(p->train_dir, sizeof p->train_dir, "%s", r->data.train);
    return BEIT_STATUS_OK;
  }
  snprintf(p->train_dir, sizeof p->train_dir, "%s/train-fraction-%g", out,
           r->finetune_data.fraction);
  enum beit_status st = BEIT_STATUS_OK;
  if (beit_dist_is_root(p->dist)) {
    if (!(st = beit_mkdirs(out, err)))
      st = beit_finetune_subset(r->data.train, r->finetune_data.fraction, (uint64_t)r->seed,
                                p->train_dir, err);
  }
  return beit_trainer_agree(p->dist, st, "build the labelled subset", err);
}

/* The classifier config: from the resumed checkpoint, else the initial weights' architecture
 * (or the recipe's model config) made a classifier for the training set. */
static enum beit_status model_config(struct finetune *p, const struct beit_finetune_options *opt,
                                     const char *resume_dir, struct beit_source **src,
                                     struct beit_config *cfg, struct beit_error *err)
{
  const struct beit_recipe *r = &p->recipe;
  char path[4300];
  struct beit_config base;
  struct beit_dataset *ds = NULL;
  enum beit_status st;
  beit_config_defaults(cfg);
  if (resume_dir[0]) {
    snprintf(path, sizeof path, "%s/config.json", resume_dir);
    return beit_config_load(cfg, path, err);
  }
  if ((st = beit_data_open(&ds, r->data.train, err)))
    return st;
  long C = beit_data_num_classes(ds);
  int ml_data = beit_data_task(ds) == BEIT_DATA_TASK_MULTILABEL;
  int ml = !strcmp(r->task, "auto") ? ml_data : !strcmp(r->task, "multilabel");
  const char **names = calloc((size_t)C, sizeof *names);
  beit_config_defaults(&base);
  if (!names) {
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "out of memory");
    goto done;
  }
  for (long c = 0; c < C; c++)
    names[c] = beit_data_class_name(ds, (int)c);
  if (ml_data && !ml) {
    st = beit_error_set(err, BEIT_STATUS_CONFIG, "%s is a multi-label dataset: task "
                        "'multiclass' cannot train on it (use 'multilabel' or 'auto')",
                        r->data.train);
    goto done;
  }
  if (opt->init) {
    if ((st = beit_source_open(src, opt->init, err)))
      goto done;
    st = beit_finetune_config(cfg, beit_source_config(*src), r, C, names, ml, err);
  } else {
    if ((st = beit_config_load(&base, r->model, err)))
      goto done;
    st = beit_finetune_config(cfg, &base, r, C, names, ml, err);
  }
done:
  beit_config_free(&base);
  free(names);
  beit_data_close(ds);
  return st;
}

static enum beit_status setup(struct finetune *p, const struct beit_finetune_options *opt,
                              const char *resume_dir, struct beit_error *err)
{
  struct beit_recipe *r = &p->recipe;
  struct beit_config cfg;
  struct beit_source *src = NULL;
  enum beit_status st;
  beit_config_defaults(&cfg);
  p->B = (size_t)r->batch.size;
  if ((st = prepare_train_data(p, opt->args.out, err)) ||
      (st = model_config(p, opt, resume_dir, &src, &cfg, err)))
    goto done;
  if ((st = beit_model_create(&p->model, &cfg, p->B, err)))
    goto done;
  struct beit_model *m = p->model;
  p->C = (size_t)cfg.num_labels;
  p->multilabel = beit_config_is_multilabel(beit_model_config(m));
  beit_model_init_weights(m, BEIT_INIT_FINETUNE, (uint64_t)r->seed);
  if (r->head_init_scale != 0.001) /* init_weights applies timm's 0.001 */
    beit_model_scale_classifier(m, (float)(r->head_init_scale / 0.001));
  if (src) {
    struct beit_transfer_options to = {1, beit_dist_is_root(p->dist) ? stderr : NULL};
    struct beit_transfer_report rep;
    if ((st = beit_transfer_load(m, src, &to, &rep, err)))
      goto done;
    if (beit_dist_is_root(p->dist))
      fprintf(stderr, "init %s: %zu tensors loaded (%zu layers from the shared relative position "
              "bias, %zu tables resized), %zu new, %zu dropped\n", opt->init, rep.copied,
              rep.shared_to_layers, rep.rpb_resized, rep.fresh, rep.dropped);
  }
  if ((st = beit_dist_bcast(p->dist, beit_model_params(m),
                              beit_model_table(m)->total * sizeof(float), 0, err)) ||
      (st = beit_model_set_precision(m, p->precision, err)))
    goto done;
  beit_model_layer_decay(m, r->optimizer.layer_decay);
  struct beit_model_dims dims;
  beit_model_dims(m, &dims);
  size_t L = dims.L, B = p->B, S = (size_t)cfg.image_size;
  if ((st = beit_drop_path_init(&p->drop_path, L, B, cfg.drop_path_rate, err)))
    goto done;
  p->soft = malloc(B * p->C * sizeof *p->soft);
  p->hot = malloc(B * p->C * sizeof *p->hot);
  p->mixup.mixup_alpha = r->mixup.mixup_alpha;
  p->mixup.cutmix_alpha = r->mixup.cutmix_alpha;
  p->mixup.prob = r->mixup.prob;
  p->mixup.switch_prob = r->mixup.switch_prob;
  p->mixup.smoothing = r->label_smoothing;
  if (beit_mixup_enabled(&p->mixup))
    p->mixed = malloc(B * 3 * S * S * sizeof *p->mixed);
  if (!p->soft || !p->hot ||
      (beit_mixup_enabled(&p->mixup) && !p->mixed)) {
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "fine-tuning buffers: out of memory");
    goto done;
  }
  const size_t total = beit_model_table(m)->total;
  st = beit_dist_grads_init(&p->reducer, p->dist, beit_model_grads(m), total,
                            beit_trainer_bucket_floats(total),
                            err);
done:
  beit_source_free(src);
  beit_config_free(&cfg);
  return st;
}

static void teardown(struct finetune *p)
{
  cJSON_Delete(p->config);
  cJSON_Delete(p->preprocessor);
  beit_trainer_free(&p->trainer);
  beit_loader_free(p->loader);
  beit_dist_grads_free(p->reducer);
  beit_model_free(p->model);
  beit_drop_path_free(&p->drop_path);
  free(p->mixed);
  free(p->soft);
  free(p->hot);
}

/* beit_trainer_loop callbacks */
static enum beit_status loop_evaluate(void *ctx, int final, struct beit_error *err)
{
  struct finetune *p = ctx;
  return evaluate(p, p->sum, final, err);
}

static enum beit_status load_recipe(struct finetune *p, const struct beit_finetune_options *opt,
                                    struct beit_error *err)
{
  struct beit_recipe *r = &p->recipe;
  enum beit_status st;
  beit_finetune_recipe_defaults(r);
  /* with --init the recipe's model config is unused: "model=" after the --set options, so it is
   * neither resolved nor required to exist, nor named in trainer_state.json */
  int nsets = opt->args.nsets;
  const char **sets = malloc(((size_t)nsets + 1) * sizeof *sets);
  if (!sets)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "recipe: out of memory");
  for (int i = 0; i < nsets; i++)
    sets[i] = opt->args.sets[i];
  if (opt->init)
    sets[nsets++] = "model=";
  st = beit_recipe_resolve(r, opt->args.config, sets, nsets, opt->args.data, opt->args.eval_data,
                           err);
  free(sets);
  if (st ||
      (st = beit_precision_policy_start(&p->precision, r->precision, p->dist, stderr, NULL,
                                        err))) /* the run's first line */
    return st;
  beit_dist_policy_start(p->dist, r->distributed.timeout_s, stderr);
  if (!opt->init && !r->model[0])
    return beit_error_set(err, BEIT_STATUS_USAGE, "no initial weights: give --init or set "
                          "'model' (a model config for random init) in %s", opt->args.config);
  /* the RandAugment spec is parsed once, here, so a bad one names the key and the recipe */
  if ((st = beit_randaugment_parse(&p->rand_augment, r->finetune_data.rand_augment, err)))
    beit_error_prefix(err, "%s: key 'data.rand_augment': ", opt->args.config);
  return st;
}

/* --overwrite moves the previous run aside before --init is read: refuse an --init inside
 * --out's folder rather than lose track of it (both must exist to compare). */
static enum beit_status check_init_outside_out(const struct beit_finetune_options *opt,
                                               struct beit_error *err)
{
  char init[4096], out[4096];
  if (!opt->args.overwrite || !opt->init || !realpath(opt->init, init) ||
      !realpath(opt->args.out, out))
    return BEIT_STATUS_OK;
  size_t n = strlen(out);
  if (strncmp(init, out, n) || (init[n] != '/' && init[n] != '\0'))
    return BEIT_STATUS_OK;
  return beit_error_set(err, BEIT_STATUS_USAGE, "--init %s is inside --out %s, whose previous run "
                        "--overwrite would move aside before it is read: copy it elsewhere, or "
                        "use another --out", opt->init, opt->args.out);
}

enum beit_status beit_finetune_run(const struct beit_finetune_options *opt,
                                   struct beit_dist *dist, struct beit_finetune_summary *sum,
                                   struct beit_error *err)
{
  struct finetune p;
  memset(&p, 0, sizeof p);
  memset(sum, 0, sizeof *sum);
  p.dist = dist;
  p.sum = sum;
  struct beit_loader_cursor start = {0, 0};
  char resume_dir[4200] = "";
  struct beit_loader_options lo;
  enum beit_status st = load_recipe(&p, opt, err);
  if (!st)
    st = check_init_outside_out(opt, err);
  if (st)
    goto done;
  if ((st = beit_trainer_prepare_out(dist, opt->args.out, opt->args.resume, opt->args.overwrite,
                                     resume_dir, sizeof resume_dir, &start, err)))
    goto done;
  if ((st = setup(&p, opt, resume_dir, err)))
    goto done;
  loader_options(&p, &lo);
  if ((st = beit_loader_init(&p.loader, p.train_dir, &lo, &start, err)))
    goto done;
  struct beit_dataset *ds = beit_loader_dataset(p.loader);
  sum->train_samples = beit_data_count(ds);
  if ((size_t)beit_data_num_classes(ds) != p.C) {
    st = beit_error_set(err, BEIT_STATUS_CONFIG, "%s: %d classes, the model has %zu", p.train_dir,
                        beit_data_num_classes(ds), p.C);
    goto done;
  }
  p.onehot = p.multilabel && beit_data_task(ds) == BEIT_DATA_TASK_MULTICLASS;
  if ((st = beit_trainer_start_model(&p.trainer, &p.recipe, dist, p.model, p.loader,
                                     opt->args.out, resume_dir, p.precision, err)))
    goto done;
  /* every checkpoint says how to preprocess for it: the transform its evaluations use */
  struct beit_data_preprocess pp;
  beit_recipe_eval_preprocess(&p.recipe, (int)beit_model_config(p.model)->image_size, &pp);
  if (!(p.config = beit_config_json(beit_model_config(p.model))) ||
      !(p.preprocessor = beit_data_preprocess_json(&pp))) {
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "checkpoint config: out of memory");
    goto done;
  }
  struct beit_trainer_loop loop = {
      .ctx = &p, .acc_name = "acc", .config = p.config, .loader = p.loader,
      .reducer = p.reducer, .model = p.model, .micro_batch = train_micro_batch,
      .phase_names = phase_names, .nphases = PHASE_COUNT,
      .evaluate = p.recipe.data.eval[0] ? loop_evaluate : NULL, .preprocessor = p.preprocessor};
  struct beit_trainer_run_summary run;
  st = beit_trainer_run(&p.trainer, &loop, &run, err);
  snprintf(sum->last_checkpoint, sizeof sum->last_checkpoint, "%s", run.last_checkpoint);
  sum->first_loss = run.first_loss;
  sum->last_loss = run.last_loss;
  sum->last_acc = run.last_acc;
  sum->skipped_records = run.skipped_records;
  sum->corrupt_records = run.corrupt_records;
  sum->steps = p.trainer.step;
  sum->steps_run = run.steps_run;
  sum->seconds = beit_clock_now() - p.trainer.t_start;
done:
  teardown(&p);
  return st;
}
