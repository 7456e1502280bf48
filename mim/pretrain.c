/* The pretraining loop (see pretrain.h). */
#include "pretrain.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "beit/data.h"
#include "beit/tokenizer.h"
#include "checkpoint.h"
#include "drop_path.h"
#include "beit/encoder_train.h"
#include "kernels.h"
#include "dist_policy.h"
#include "masking.h"
#include "precision_policy.h"
#include "recipe.h"
#include "rng.h"
#include "trainer.h"

/* Stream salts: the loader draws augmentation from (seed, epoch, index); masks and drop path
 * draw from their own streams keyed the same way. */
#define MASK_STREAM 0x6d61736bull /* "mask" */

/* Seconds spent per phase since the last log line (the step-time breakdown in metrics.jsonl). */
enum phase { PHASE_DATA, PHASE_TOKENIZER, PHASE_MASK, PHASE_FORWARD, PHASE_LOSS, PHASE_BACKWARD,
             PHASE_ALLREDUCE, PHASE_UPDATE, PHASE_COUNT };
static const char *const phase_names[PHASE_COUNT] = {
    "time_data_wait", "time_tokenizer", "time_masking", "time_forward", "time_loss",
    "time_backward",
    "time_allreduce_exposed", "time_update"};

struct pretrain {
  struct beit_recipe recipe;
  struct beit_pretrain_summary *sum;
  struct beit_dist *dist;
  struct beit_model *model;
  enum beit_precision precision; /* of the encoder's and the tokenizer's matrix products */
  struct beit_tokenizer *tok;
  struct beit_loader *loader;
  struct beit_dist_grads *reducer;
  struct beit_mask_params mask_params;
  struct beit_trainer trainer;
  cJSON *config;             /* the model's config.json, written into every checkpoint */
  size_t B;
  int32_t *tokens, *targets; /* (B, N), (B * N) */
  uint8_t *mask;             /* (B, N) */
  struct beit_drop_path drop_path;
};

static void mark(struct pretrain *p, enum phase ph) { beit_trainer_mark(&p->trainer, ph); }

/* The mask of every sample of the batch, from its own stream. */
static void draw_masks(struct pretrain *p, const struct beit_loader_batch *b)
{
  struct beit_model_dims dims;
  beit_model_dims(p->model, &dims);
  size_t N = dims.N;
  int blockwise = !strcmp(p->recipe.masking.type, "blockwise");
  for (size_t s = 0; s < b->count; s++) {
    struct beit_rng rng;
    beit_rng_seed(&rng, (uint64_t)p->recipe.seed ^ MASK_STREAM, b->epoch, (uint64_t)b->indices[s]);
    if (blockwise)
      beit_mask_blockwise(p->mask + s * N, &rng, &p->mask_params);
    else
      beit_mask_random(p->mask + s * N, &rng, &p->mask_params);
  }
}

/* Forward + loss of one micro-batch; fills targets from the tokenizer. Returns the number of
 * masked tokens; *loss_sum and *correct accumulate. */
static enum beit_status micro_step(struct pretrain *p, const struct beit_loader_batch *b,
                                   int train, double *loss_sum, double *correct, double *count,
                                   long *histogram, struct beit_error *err)
{
  struct beit_model *m = p->model;
  struct beit_model_dims dims;
  beit_model_dims(m, &dims);
  size_t N = dims.N, B = b->count, M = 0;
  enum beit_status st = beit_tokenizer_encode(p->tok, p->tokens, NULL, b->view_b, B, err);
  if (st)
    return st;
  mark(p, PHASE_TOKENIZER);
  draw_masks(p, b);
  const float *drop = train ? beit_drop_path_draw(&p->drop_path, (uint64_t)p->recipe.seed, b)
                            : NULL;
  for (size_t i = 0; i < B * N; i++)
    if (p->mask[i])
      p->targets[M++] = p->tokens[i];
  mark(p, PHASE_MASK);
  if ((st = beit_model_forward(m, b->view_a, p->mask, drop, B, err)))
    return st;
  mark(p, PHASE_FORWARD);
  long hits = 0;
  double loss = beit_model_loss(m, p->targets, NULL, 0.0f, &hits);
  mark(p, PHASE_LOSS);
  *loss_sum += loss * (double)M;
  *correct += (double)hits;
  *count += (double)M;
  if (histogram)
    for (size_t i = 0; i < M; i++)
      histogram[p->targets[i]]++;
  return BEIT_STATUS_OK;
}

/* Loader options of the pretraining transform for this model and tokenizer. */
static void loader_options(const struct pretrain *p, struct beit_loader_options *lo, int train)
{
  const struct beit_tokenizer_config *tc = beit_tokenizer_get_config(p->tok);
  beit_dist_policy_loader(lo, BEIT_DATA_MODE_PRETRAIN, p->dist, p->B, train, stderr);
  beit_recipe_loader_options(&p->recipe, lo);
  lo->transform.image_size = (int)beit_model_config(p->model)->image_size;
  lo->transform.second_size = (int)tc->image_size;
  lo->transform.second_norm = !strcmp(tc->input_map, "dalle") ? BEIT_DATA_SECOND_DALLE
                                                                : BEIT_DATA_SECOND_MEANSTD;
  lo->transform.jitter = p->recipe.data.jitter;
}

/* Held-out pass over eval.batches batches (all when 0): masked-token loss and accuracy over all
 * ranks, and the accuracy of always predicting the most frequent target token. */
static enum beit_status evaluate(struct pretrain *p, const char *dir,
                                 struct beit_pretrain_summary *sum, struct beit_error *err)
{
  struct beit_loader_options lo;
  struct beit_loader *ld = NULL;
  size_t V = (size_t)beit_model_config(p->model)->vocab_size;
  long *histogram = calloc(V, sizeof *histogram);
  double acc[4] = {0, 0, 0, 0}; /* loss sum, hits, tokens, majority hits */
  if (!histogram)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "evaluation: out of memory");
  loader_options(p, &lo, 0);
  enum beit_status st = beit_loader_init(&ld, dir, &lo, NULL, err);
  for (long n = 0; !st && (p->recipe.eval.batches == 0 || n < p->recipe.eval.batches); n++) {
    const struct beit_loader_batch *b = NULL;
    if ((st = beit_loader_next(ld, &b, err)) || !b)
      break;
    st = micro_step(p, b, 0, &acc[0], &acc[1], &acc[2], histogram, err);
  }
  beit_loader_free(ld);
  if (!st) {
    long best = 0;
    /* the majority token of the whole held-out set, counted over all ranks */
    double *h = malloc(V * sizeof *h);
    if (!h) {
      free(histogram);
      return beit_error_set(err, BEIT_STATUS_NOMEM, "evaluation: out of memory");
    }
    for (size_t v = 0; v < V; v++)
      h[v] = (double)histogram[v];
    st = beit_dist_allreduce_sum_f64(p->dist, h, V, err);
    for (size_t v = 1; v < V; v++)
      if (h[v] > h[best])
        best = (long)v;
    acc[3] = h[best];
    free(h);
    if (!st)
      st = beit_dist_allreduce_sum_f64(p->dist, acc, 3, err);
    if (!st && acc[2] > 0) {
      sum->eval_loss = acc[0] / acc[2];
      sum->eval_mlm_acc = acc[1] / acc[2];
      sum->eval_majority_acc = acc[3] / acc[2];
      sum->eval_tokens = (long)acc[2];
    }
  }
  free(histogram);
  return st;
}

/* beit_trainer_loop: one training micro-batch; back-propagates the sum over its masked tokens
 * (trainer.h). */
static enum beit_status train_micro_batch(void *ctx, const struct beit_loader_batch *b,
                                          struct beit_step_sums *sums, double *extra,
                                          struct beit_error *err)
{
  struct pretrain *p = ctx;
  (void)extra;
  double tokens = 0.0;
  enum beit_status st = micro_step(p, b, 1, &sums->loss, &sums->correct, &tokens, NULL, err);
  if (st)
    return st;
  sums->units += tokens;
  sums->images += (double)b->count;
  beit_model_backward(p->model, (float)tokens);
  mark(p, PHASE_BACKWARD);
  return BEIT_STATUS_OK;
}

static enum beit_status setup(struct pretrain *p, const struct beit_pretrain_options *opt,
                              struct beit_error *err)
{
  struct beit_recipe *r = &p->recipe;
  struct beit_config cfg;
  enum beit_status st;
  beit_recipe_defaults(r);
  if ((st = beit_recipe_resolve(r, opt->args.config, opt->args.sets, opt->args.nsets,
                                opt->args.data, opt->args.eval_data, err)) ||
      (st = beit_precision_policy_start(&p->precision, r->precision, p->dist, stderr,
                                        "encoder and dVAE tokenizer", err))) /* first line */
    return st;
  beit_dist_policy_start(p->dist, r->distributed.timeout_s, stderr);
  beit_config_defaults(&cfg);
  if ((st = beit_config_load(&cfg, r->model, err)))
    goto free_cfg;
  /* pretraining is BeitForMaskedImageModeling whatever the config's head */
  snprintf(cfg.architecture, sizeof cfg.architecture, "BeitForMaskedImageModeling");
  cfg.use_mask_token = 1;
  if (r->drop_path_rate >= 0)
    cfg.drop_path_rate = r->drop_path_rate;
  p->B = (size_t)r->batch.size;
  if ((st = beit_model_create(&p->model, &cfg, p->B, err)))
    goto free_cfg;
  struct beit_model *m = p->model;
  struct beit_model_dims dims;
  beit_model_dims(m, &dims);
  beit_model_init_weights(m, BEIT_INIT_PRETRAIN, (uint64_t)r->seed);
  /* rank 0's weights are everyone's (they are equal anyway: same seed, same code) */
  if ((st = beit_dist_bcast(p->dist, beit_model_params(m),
                              beit_model_table(m)->total * sizeof(float), 0, err)) ||
      (st = beit_model_set_precision(m, p->precision, err)))
    goto free_cfg;
  /* the targets come from the tokenizer in the run's precision too: unilm computes them in
   * float32 outside autocast; in bf16 a token can differ where two logits are within bf16's
   * error of each other (tests/test_tokenizer_bf16.c), for half of a step's products at 112 */
  if ((st = beit_tokenizer_load(&p->tok, opt->tokenizer, p->B, err)) ||
      (st = beit_tokenizer_set_precision(p->tok, p->precision, err)) ||
      (st = beit_tokenizer_check_targets(p->tok, dims.gh, dims.gw, (size_t)cfg.vocab_size, err)))
    goto free_cfg;
  beit_mask_params_init(&p->mask_params, dims.gh, dims.gw,
                        (size_t)r->masking.num_masking_patches);
  p->mask_params.min_num_patches = (size_t)r->masking.min_num_patches;
  p->mask_params.max_num_patches = (size_t)r->masking.max_num_patches;
  p->mask_params.min_aspect = r->masking.min_aspect;
  if ((st = beit_mask_params_check(&p->mask_params, err))) {
    beit_error_prefix(err, "%s: masking: ", opt->args.config);
    goto free_cfg;
  }
  size_t N = dims.N, L = dims.L, B = p->B;
  p->tokens = malloc(B * N * sizeof *p->tokens);
  p->targets = malloc(B * N * sizeof *p->targets);
  p->mask = malloc(B * N);
  if ((st = beit_drop_path_init(&p->drop_path, L, B, cfg.drop_path_rate, err)))
    goto free_cfg;
  if (!p->tokens || !p->targets || !p->mask) {
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "pretraining buffers: out of memory");
    goto free_cfg;
  }
  const size_t total = beit_model_table(m)->total;
  st = beit_dist_grads_init(&p->reducer, p->dist, beit_model_grads(m), total,
                            beit_trainer_bucket_floats(total), err);
free_cfg:
  beit_config_free(&cfg);
  return st;
}

static void teardown(struct pretrain *p)
{
  cJSON_Delete(p->config);
  beit_trainer_free(&p->trainer);
  beit_loader_free(p->loader);
  beit_dist_grads_free(p->reducer);
  beit_tokenizer_free(p->tok);
  beit_model_free(p->model);
  free(p->tokens);
  free(p->targets);
  free(p->mask);
  beit_drop_path_free(&p->drop_path);
}

/* beit_trainer_loop callbacks */
static enum beit_status loop_evaluate(void *ctx, int final, struct beit_error *err)
{
  struct pretrain *p = ctx;
  struct beit_pretrain_summary *sum = p->sum;
  enum beit_status st = evaluate(p, p->recipe.data.eval, sum, err);
  if (!st && beit_dist_is_root(p->dist) && sum->eval_tokens > 0) { /* its own metrics line */
    cJSON *f = cJSON_CreateObject();
    cJSON_AddNumberToObject(f, "eval_loss", sum->eval_loss);
    cJSON_AddNumberToObject(f, "eval_mlm_acc", sum->eval_mlm_acc);
    cJSON_AddNumberToObject(f, "eval_majority_acc", sum->eval_majority_acc);
    cJSON_AddNumberToObject(f, "eval_tokens", (double)sum->eval_tokens);
    cJSON_AddNumberToObject(f, "step", (double)p->trainer.step);
    beit_trainer_append(&p->trainer, f);
  }
  if (!st && !final && beit_dist_is_root(p->dist))
    fprintf(stderr, "%seval step %ld: masked-token loss %.4f, accuracy %.4f (majority token "
            "%.4f)\n", p->trainer.tty ? "\n" : "", p->trainer.step, sum->eval_loss,
            sum->eval_mlm_acc, sum->eval_majority_acc);
  return st;
}

enum beit_status beit_pretrain_run(const struct beit_pretrain_options *opt, struct beit_dist *dist,
                                   struct beit_pretrain_summary *sum, struct beit_error *err)
{
  struct pretrain p;
  memset(&p, 0, sizeof p);
  memset(sum, 0, sizeof *sum);
  p.dist = dist;
  p.sum = sum;
  struct beit_loader_cursor start = {0, 0};
  char resume_dir[4200] = "";
  struct beit_loader_options lo;
  enum beit_status st = setup(&p, opt, err);
  if (st)
    goto done;
  if ((st = beit_trainer_prepare_out(dist, opt->args.out, opt->args.resume, opt->args.overwrite,
                                     resume_dir, sizeof resume_dir, &start, err)))
    goto done;
  loader_options(&p, &lo, 1);
  if ((st = beit_loader_init(&p.loader, p.recipe.data.train, &lo, &start, err)))
    goto done;
  if ((st = beit_trainer_start_model(&p.trainer, &p.recipe, dist, p.model, p.loader,
                                     opt->args.out, resume_dir, p.precision, err)))
    goto done;
  if (!(p.config = beit_config_json(beit_model_config(p.model)))) {
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "checkpoint config: out of memory");
    goto done;
  }
  struct beit_trainer_loop loop = {
      .ctx = &p, .acc_name = "mlm_acc", .config = p.config, .loader = p.loader,
      .reducer = p.reducer, .model = p.model, .micro_batch = train_micro_batch,
      .phase_names = phase_names, .nphases = PHASE_COUNT,
      .evaluate = p.recipe.data.eval[0] ? loop_evaluate : NULL};
  struct beit_trainer_run_summary run;
  st = beit_trainer_run(&p.trainer, &loop, &run, err);
  snprintf(sum->last_checkpoint, sizeof sum->last_checkpoint, "%s", run.last_checkpoint);
  sum->first_loss = run.first_loss;
  sum->last_loss = run.last_loss;
  sum->last_mlm_acc = run.last_acc;
  sum->skipped_records = run.skipped_records;
  sum->corrupt_records = run.corrupt_records;
  sum->steps = p.trainer.step;
  sum->steps_run = run.steps_run;
  sum->seconds = p.trainer.t_last_log - p.trainer.t_start;
done:
  teardown(&p);
  return st;
}
