/* The dVAE tokenizer's training loop and held-out evaluation (contracts in tokenizer_train.h).
 * The model, loss and one forward/backward live in tokenizer/; the shared trainer owns AdamW,
 * the lr schedule, clipping, checkpoints and metrics; the data loader gives view B. */
#include "tokenizer_train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "beit/data.h"
#include "checkpoint.h"
#include "clock.h"
#include "config_table.h"
#include "beit/tokenizer_train.h"
#include "dist_policy.h"
#include "precision_policy.h"
#include "safetensors.h"
#include "trainer.h"

/* ------------------------------------------------------------------------ the key table */

#define F(field) offsetof(struct beit_tokenizer_train_config, field)
#define BIG 1e12

static const char *const precisions[] = {"auto", "fp32", "bf16", NULL};

static const struct beit_config_key train_keys[] = {
    {"seed", BEIT_KEY_INT, F(recipe.seed), 0, BIG, NULL, "seed of every random stream", "0"},
    {"precision", BEIT_KEY_STRING, F(recipe.precision), 0, 0, precisions,
     "convolutions' matrix products; auto = bf16 where the CPU has AMX, else fp32"},
    {"data.train", BEIT_KEY_PATH, F(recipe.data.train), 0, 0, NULL, "training dataset folder"},
    {"data.eval", BEIT_KEY_PATH, F(recipe.data.eval), 0, 0, NULL, "held-out dataset folder"},
    {"data.num_workers", BEIT_KEY_INT, F(recipe.data.num_workers), 1, 256, NULL,
     "loader threads", "2"},
    {"data.num_buffers", BEIT_KEY_INT, F(recipe.data.num_buffers), 2, 64, NULL,
     "batches in flight"},
    {"data.hflip", BEIT_KEY_DOUBLE, F(recipe.data.hflip), 0, 1, NULL, "flip probability", "0.5"},
    {"data.scale_min", BEIT_KEY_DOUBLE, F(recipe.data.scale_min), 1e-6, 1, NULL,
     "crop area min", "1.0"},
    {"data.scale_max", BEIT_KEY_DOUBLE, F(recipe.data.scale_max), 1e-6, 1, NULL,
     "crop area max", "1.0"},
    {"data.ratio_min", BEIT_KEY_DOUBLE, F(recipe.data.ratio_min), 1e-3, 1e3, NULL,
     "crop aspect min", "1.0"},
    {"data.ratio_max", BEIT_KEY_DOUBLE, F(recipe.data.ratio_max), 1e-3, 1e3, NULL,
     "crop aspect max", "1.0"},
    {"optimizer.lr", BEIT_KEY_DOUBLE, F(recipe.optimizer.lr), 0, 10, NULL, "peak lr (AdamW)",
     "1e-3"},
    {"optimizer.min_lr", BEIT_KEY_DOUBLE, F(recipe.optimizer.min_lr), 0, 10, NULL,
     "cosine floor", "1e-5"},
    {"optimizer.weight_decay", BEIT_KEY_DOUBLE, F(recipe.optimizer.weight_decay), 0, 10, NULL,
     NULL, "1e-4"},
    {"optimizer.beta1", BEIT_KEY_DOUBLE, F(recipe.optimizer.beta1), 0, 0.999999, NULL, NULL, "0.9"},
    {"optimizer.beta2", BEIT_KEY_DOUBLE, F(recipe.optimizer.beta2), 0, 0.999999, NULL, NULL,
     "0.999"},
    {"optimizer.eps", BEIT_KEY_DOUBLE, F(recipe.optimizer.eps), 0, 1, NULL, NULL, "1e-8"},
    {"optimizer.clip_grad", BEIT_KEY_DOUBLE, F(recipe.optimizer.clip_grad), 0, BIG, NULL,
     "global-norm clip; 0 = off", "1.0"},
    {"schedule.epochs", BEIT_KEY_DOUBLE, F(recipe.schedule.epochs), 0, BIG, NULL, NULL, "1"},
    {"schedule.warmup_epochs", BEIT_KEY_DOUBLE, F(recipe.schedule.warmup_epochs), 0, BIG, NULL,
     NULL, "0"},
    {"schedule.warmup_steps", BEIT_KEY_INT, F(recipe.schedule.warmup_steps), 0, BIG, NULL,
     "> 0 overrides warmup_epochs", "100"},
    {"schedule.max_steps", BEIT_KEY_INT, F(recipe.schedule.max_steps), 0, BIG, NULL,
     "> 0 overrides epochs"},
    {"batch.size", BEIT_KEY_INT, F(recipe.batch.size), 1, 1 << 20, NULL, "images per step", "64"},
    {"relaxation.tau_start", BEIT_KEY_DOUBLE, F(relaxation.tau_start), 1e-3, 100, NULL,
     "Gumbel-softmax temperature at step 0", "1.0"},
    {"relaxation.tau_end", BEIT_KEY_DOUBLE, F(relaxation.tau_end), 1e-3, 100, NULL,
     "temperature after the anneal", "0.0625"},
    {"relaxation.tau_anneal_steps", BEIT_KEY_INT, F(relaxation.tau_anneal_steps), 0, BIG, NULL,
     "steps of the cosine anneal; 0 = the whole run"},
    {"relaxation.kl_weight", BEIT_KEY_DOUBLE, F(relaxation.kl_weight), 0, 1e6, NULL,
     "beta of the KL to the uniform prior (DALL-E 6.6)", "1.0"},
    {"relaxation.kl_warmup_steps", BEIT_KEY_INT, F(relaxation.kl_warmup_steps), 0, BIG, NULL,
     "steps of the cosine ramp of beta from 0", "500"},
    {"checkpoint.every_steps", BEIT_KEY_INT, F(recipe.checkpoint.every_steps), 0, BIG, NULL,
     "0 = only at the end", "500"},
    {"checkpoint.keep_last", BEIT_KEY_INT, F(recipe.checkpoint.keep_last), 0, 1 << 20, NULL,
     "0 = keep all", "2"},
    {"log.every_steps", BEIT_KEY_INT, F(recipe.log.every_steps), 1, BIG, NULL, NULL, "50"},
    {"eval.every_steps", BEIT_KEY_INT, F(recipe.eval.every_steps), 0, BIG, NULL,
     "0 = only at the end", "0"},
    {"eval.batches", BEIT_KEY_INT, F(recipe.eval.batches), 0, BIG, NULL,
     "held-out batches per rank of a periodic evaluation; the final one reads the whole set", "10"},
    {"eval.grid_images", BEIT_KEY_INT, F(grid_images), 0, 4096, NULL, "images in recon.png", "32"},
    {"max_consecutive_nonfinite", BEIT_KEY_INT, F(recipe.max_consecutive_nonfinite), 1, 1 << 20,
     NULL, "skipped updates in a row before the run stops"},
    {"distributed.timeout_s", BEIT_KEY_DOUBLE, F(recipe.distributed.timeout_s), 0,
     BEIT_DIST_TIMEOUT_MAX, NULL,
     "seconds a collective may wait for a rank before the job ends naming it; 0 = no deadline"},
};
#define NTRAIN (sizeof train_keys / sizeof train_keys[0])
#define MAX_KEYS 96

/* The full table: "model." + each tokenizer config key, then the training keys. */
static const struct beit_config_key *all_keys(size_t *count)
{
  static struct beit_config_key keys[MAX_KEYS];
  static char names[MAX_KEYS][96];
  static size_t n;
  if (!n) {
    size_t nm;
    const struct beit_config_key *mk = beit_dvae_config_keys(&nm);
    for (size_t i = 0; i < nm && n < MAX_KEYS; i++, n++) {
      keys[n] = mk[i];
      snprintf(names[n], sizeof names[n], "model.%s", mk[i].name);
      keys[n].name = names[n];
      keys[n].offset += F(model);
    }
    for (size_t i = 0; i < NTRAIN && n < MAX_KEYS; i++)
      keys[n++] = train_keys[i];
  }
  *count = n;
  return keys;
}

void beit_tokenizer_train_defaults(struct beit_tokenizer_train_config *c)
{
  memset(c, 0, sizeof *c);
  beit_tokenizer_config_defaults(&c->model);
  beit_recipe_defaults(&c->recipe); /* what the table below leaves alone */
  c->recipe.data.jitter = 0.0;      /* no key: the tokenizer's view is never colour-jittered */
  beit_config_table_defaults(c, train_keys, NTRAIN, "tokenizer training");
}

enum beit_status beit_tokenizer_train_config_load(struct beit_tokenizer_train_config *c,
                                                  const char *path, struct beit_error *err)
{
  size_t n;
  const struct beit_config_key *keys = all_keys(&n);
  return beit_config_load_file(c, keys, n, path, err);
}

enum beit_status beit_tokenizer_train_config_override(struct beit_tokenizer_train_config *c,
                                                      const char *assignment,
                                                      struct beit_error *err)
{
  size_t n;
  const struct beit_config_key *keys = all_keys(&n);
  return beit_config_set(c, keys, n, assignment, err);
}

cJSON *beit_tokenizer_train_config_json(const struct beit_tokenizer_train_config *c)
{
  size_t n;
  const struct beit_config_key *keys = all_keys(&n);
  return beit_config_to_json(c, keys, n);
}

/* DALL-E's cosine shape (spec 9.4; the paper gives no formula, this is the community one). */
static double cosine_ramp(double start, double end, long step, long steps)
{
  double frac = steps > 0 ? (double)step / (double)steps : 1.0;
  frac = frac > 1.0 ? 1.0 : frac;
  double a = 1.0 - cos(frac * M_PI / 2.0);
  return a * end + (1.0 - a) * start;
}

void beit_tokenizer_train_schedule(const struct beit_tokenizer_train_config *c, long step,
                                   long total_steps, double *tau, double *kl_weight)
{
  long anneal = c->relaxation.tau_anneal_steps > 0 ? c->relaxation.tau_anneal_steps : total_steps;
  *tau = cosine_ramp(c->relaxation.tau_start, c->relaxation.tau_end, step, anneal);
  *kl_weight = cosine_ramp(0.0, c->relaxation.kl_weight, step, c->relaxation.kl_warmup_steps);
}

/* ----------------------------------------------------------------------------- data */

/* View B at the tokenizer's size, DALL-E-mapped. View A is not used: it is made at the same
 * small size to cost little. Evaluation: the whole image, no flip, in dataset order. */
static void view_b_loader(struct beit_loader_options *lo, const struct beit_recipe *r, size_t S,
                          size_t batch, int workers, int train)
{
  beit_loader_defaults(lo);
  beit_data_transform_defaults(&lo->transform, BEIT_DATA_MODE_PRETRAIN);
  lo->transform.image_size = (int)S;
  lo->transform.second_size = (int)S;
  lo->transform.second_norm = BEIT_DATA_SECOND_DALLE;
  lo->transform.jitter = 0.0;
  lo->transform.hflip = train ? r->data.hflip : 0.0;
  lo->transform.scale_min = train ? r->data.scale_min : 1.0;
  lo->transform.scale_max = train ? r->data.scale_max : 1.0;
  lo->transform.ratio_min = train ? r->data.ratio_min : 1.0;
  lo->transform.ratio_max = train ? r->data.ratio_max : 1.0;
  lo->batch_size = batch;
  lo->num_workers = workers;
  lo->num_buffers = (int)(r->data.num_buffers >= 2 ? r->data.num_buffers : 3);
  lo->seed = (uint64_t)r->seed;
  lo->shuffle = train;
  lo->drop_last = train;
  lo->loop = train;
  lo->log = stderr;
}

/* The loader's view B is RGB (grey replicated); a C-channel tokenizer takes its first C. */
static const float *tokenizer_input(float *buf, const float *view_b, size_t B, size_t C, size_t S)
{
  if (C == 3)
    return view_b;
  for (size_t b = 0; b < B; b++)
    memcpy(buf + b * C * S * S, view_b + b * 3 * S * S, C * S * S * sizeof *buf);
  return buf;
}

/* ------------------------------------------------------------------------ evaluation */

/* One evaluation pass's buffers and sums. */
struct eval_pass {
  size_t img, P, V, grid_images, n; /* floats per image, tokens per image, codes; images seen */
  float *x, *rec, *grid_orig, *grid_rec;
  int32_t *tokens;
  long *counts;                     /* V: how often each code was chosen */
  double abs_sum, sq_sum;
};

/* k images of the batch (in: the tokenizer's input, rec: their reconstructions, tokens): their
 * codes, their errors in pixel space and, while the grid has room, their pictures. */
static void add_batch(struct eval_pass *e, const float *in, size_t k, int32_t *tokens_out)
{
  const size_t img = e->img, n = e->n;
  for (size_t i = 0; i < k * e->P; i++)
    e->counts[e->tokens[i]]++;
  if (tokens_out)
    memcpy(tokens_out + n * e->P, e->tokens, k * e->P * sizeof *e->tokens);
  for (size_t i = 0; i < k * img; i++) {
    /* the loader's view B is 0.8 p + 0.1 with p = u8 / 255: undo the map exactly */
    const double p = ((double)in[i] - 0.1) / 0.8, d = (double)e->rec[i] - p;
    e->abs_sum += fabs(d);
    e->sq_sum += d * d;
  }
  for (size_t i = 0; i < k && n + i < e->grid_images; i++)
    for (size_t j = 0; j < img; j++) {
      e->grid_orig[(n + i) * img + j] = (in[i * img + j] - 0.1f) / 0.8f;
      e->grid_rec[(n + i) * img + j] = e->rec[i * img + j];
    }
  e->n += k;
}

/* The pass's sums over ranks into ev. */
static enum beit_status reduce_pass(struct eval_pass *e, struct beit_dist *dist, const char *dir,
                                    struct beit_tokenizer_eval *ev, struct beit_error *err)
{
  const size_t V = e->V;
  double *sums = malloc((3 + V) * sizeof *sums); /* n, |d|, d^2, then the histogram */
  if (!sums)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "tokenizer evaluation: out of memory");
  sums[0] = (double)e->n, sums[1] = e->abs_sum, sums[2] = e->sq_sum;
  for (size_t v = 0; v < V; v++)
    sums[3 + v] = (double)e->counts[v];
  enum beit_status st = dist ? beit_dist_allreduce_sum_f64(dist, sums, 3 + V, err)
                             : BEIT_STATUS_OK;
  for (size_t v = 0; !st && v < V; v++)
    e->counts[v] = (long)sums[3 + v];
  if (!st && sums[0] == 0)
    st = beit_error_set(err, BEIT_STATUS_MISSING, "%s: no images to evaluate", dir);
  if (!st) {
    ev->images = (size_t)sums[0];
    ev->mae = sums[1] / (sums[0] * (double)e->img);
    ev->mse = sums[2] / (sums[0] * (double)e->img);
    beit_dvae_code_stats_counts(e->counts, V, &ev->codes_used, &ev->perplexity);
    ev->codes_frac = (double)ev->codes_used / (double)V;
  }
  free(sums);
  return st;
}

enum beit_status beit_tokenizer_evaluate(struct beit_tokenizer *tok, struct beit_dist *dist,
                                         const char *dir, size_t max_images, int num_workers,
                                         const char *png, size_t grid_images, int32_t *tokens_out,
                                         struct beit_tokenizer_eval *ev, struct beit_error *err)
{
  const struct beit_tokenizer_config *cfg = beit_tokenizer_get_config(tok);
  const size_t S = (size_t)cfg->image_size, C = (size_t)cfg->input_channels;
  const size_t B = beit_tokenizer_max_batch(tok);
  size_t gh, gw;
  beit_tokenizer_grid(tok, &gh, &gw);
  if (C != 1 && C != 3)
    return beit_error_set(err, BEIT_STATUS_UNSUPPORTED,
                          "tokenizer evaluation reads RGB datasets: input_channels must be 1 or 3");
  if (!beit_tokenizer_has_decoder(tok))
    return beit_error_set(err, BEIT_STATUS_UNSUPPORTED,
                          "tokenizer evaluation reconstructs images: the tokenizer has no decoder");
  memset(ev, 0, sizeof *ev);
  const double t0 = beit_clock_now();
  struct beit_recipe r;
  beit_recipe_defaults(&r);
  struct beit_loader_options lo;
  view_b_loader(&lo, &r, S, B, num_workers, 0);
  if (dist) {
    lo.rank = beit_dist_rank(dist);
    lo.world_size = beit_dist_world_size(dist);
    lo.log = beit_dist_is_root(dist) ? stderr : NULL;
  }
  struct beit_loader *ld = NULL;
  struct eval_pass e = {.img = C * S * S, .P = gh * gw, .V = beit_tokenizer_vocab_size(tok),
                        .grid_images = grid_images};
  e.x = malloc(B * e.img * sizeof *e.x), e.rec = malloc(B * e.img * sizeof *e.rec);
  e.tokens = malloc(B * e.P * sizeof *e.tokens);
  e.counts = calloc(e.V, sizeof *e.counts);
  e.grid_orig = grid_images ? malloc(grid_images * e.img * sizeof *e.grid_orig) : NULL;
  e.grid_rec = grid_images ? malloc(grid_images * e.img * sizeof *e.grid_rec) : NULL;
  enum beit_status st = BEIT_STATUS_OK;
  if (!e.x || !e.rec || !e.tokens || !e.counts || (grid_images && (!e.grid_orig || !e.grid_rec)))
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "tokenizer evaluation: out of memory");
  else
    st = beit_loader_init(&ld, dir, &lo, NULL, err);
  while (!st && (max_images == 0 || e.n < max_images)) {
    const struct beit_loader_batch *b = NULL;
    if ((st = beit_loader_next(ld, &b, err)) || !b)
      break;
    size_t k = max_images && e.n + b->count > max_images ? max_images - e.n : b->count;
    const float *in = tokenizer_input(e.x, b->view_b, k, C, S);
    if (!(st = beit_tokenizer_encode(tok, e.tokens, NULL, in, k, err)) &&
        !(st = beit_tokenizer_decode(tok, e.rec, e.tokens, k, err)))
      add_batch(&e, in, k, tokens_out);
  }
  if (!st)
    st = reduce_pass(&e, dist, dir, ev, err);
  if (!st && png && grid_images)
    st = beit_dvae_write_grid_png(png, e.grid_orig, e.grid_rec,
                                  e.n < grid_images ? e.n : grid_images, C, S, 8, err);
  ev->seconds = beit_clock_now() - t0;
  beit_loader_free(ld);
  free(e.x), free(e.rec), free(e.tokens), free(e.counts), free(e.grid_orig), free(e.grid_rec);
  return st;
}

enum beit_status beit_tokenizer_encode_dataset(struct beit_tokenizer *tok, const char *dir,
                                               size_t max_images, const char *output,
                                               struct beit_error *err)
{
  size_t gh, gw, n = max_images;
  beit_tokenizer_grid(tok, &gh, &gw);
  enum beit_status st = BEIT_STATUS_OK;
  if (n == 0) { /* the whole dataset: ask it for its size */
    struct beit_dataset *ds = NULL;
    if (!(st = beit_data_open(&ds, dir, err)))
      n = beit_data_count(ds);
    beit_data_close(ds);
    if (st)
      return st;
  }
  int32_t *tokens = malloc(n * gh * gw * sizeof *tokens);
  if (!tokens)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "tokens: out of memory");
  struct beit_tokenizer_eval ev;
  if (!(st = beit_tokenizer_evaluate(tok, NULL, dir, n, 2, NULL, 0, tokens, &ev, err))) {
    struct beit_st_entry e = {"tokens", BEIT_DTYPE_I32, 3, {ev.images, gh, gw}, tokens};
    st = beit_safetensors_write(output, &e, 1, NULL, err);
  }
  free(tokens);
  return st;
}

/* -------------------------------------------------------------------------- training */

/* The task's own per-step sums over ranks (beit_trainer_loop.n_extra): reconstruction and KL
 * terms, then the token histogram. */
enum { EXTRA_RECON, EXTRA_KL, EXTRA_HEAD };

enum phase { PHASE_DATA, PHASE_FORWARD_BACKWARD, PHASE_ALLREDUCE, PHASE_UPDATE, PHASE_COUNT };
static const char *const phase_names[PHASE_COUNT] = {
    "time_data_wait", "time_forward_backward", "time_allreduce_exposed", "time_update"};

struct tokenizer_training {
  struct beit_tokenizer_train_config cfg;
  const struct beit_tokenizer_train_options *opt;
  struct beit_tokenizer_train_summary *sum;
  struct beit_dist *dist;
  struct beit_tokenizer *tok;
  struct beit_loader *loader;
  struct beit_dist_grads *reducer;
  struct beit_trainer trainer;
  enum beit_precision precision; /* resolved: of the convolutions' matrix products */
  cJSON *config;       /* the tokenizer's config.json, written into every checkpoint */
  float *xbuf;         /* the C-channel input of a 1-channel tokenizer */
  double *histogram;   /* V: argmax tokens of the log window, all ranks */
  double recon, kl, tau, kl_weight; /* window sums; the last step's schedule */
};

/* beit_trainer_loop: the batch's Gumbel noise, forward and backward of the batch mean. Every rank
 * has batch.size images, so the average of the rank means is the mean of the global batch: the
 * loss counts as one unit per rank. */
static enum beit_status train_micro_batch(void *ctx, const struct beit_loader_batch *b,
                                          struct beit_step_sums *sums, double *extra,
                                          struct beit_error *err)
{
  struct tokenizer_training *t = ctx;
  struct beit_tokenizer *tok = t->tok;
  const size_t C = (size_t)t->cfg.model.input_channels, S = (size_t)t->cfg.model.image_size;
  size_t gh, gw;
  beit_tokenizer_grid(tok, &gh, &gw);
  const size_t P = gh * gw;
  (void)err;
  beit_tokenizer_train_schedule(&t->cfg, t->trainer.step, t->trainer.total_steps, &t->tau,
                                &t->kl_weight);
  const float *x = tokenizer_input(t->xbuf, b->view_b, b->count, C, S);
  const float *noise = beit_dvae_step_noise(tok, b->count, (uint64_t)t->cfg.recipe.seed, b->epoch,
                                            b->indices);
  struct beit_dvae_step_stats ss;
  beit_dvae_forward_backward(tok, x, noise, b->count, (float)t->tau, (float)t->kl_weight, &ss);
  beit_trainer_mark(&t->trainer, PHASE_FORWARD_BACKWARD);
  sums->loss += ss.loss;
  sums->correct += ss.mae;
  sums->units += 1.0;
  sums->images += (double)b->count;
  extra[EXTRA_RECON] += ss.recon;
  extra[EXTRA_KL] += ss.kl;
  const int32_t *tokens = beit_tokenizer_step_tokens(tok);
  for (size_t i = 0; i < b->count * P; i++)
    extra[EXTRA_HEAD + tokens[i]] += 1.0;
  return BEIT_STATUS_OK;
}

/* beit_trainer_loop: the window's sums and the summary, from the step's sums over ranks. */
static void after_step(void *ctx, const struct beit_step_sums *sums, const double *extra)
{
  struct tokenizer_training *t = ctx;
  t->recon += extra[EXTRA_RECON] / sums->units;
  t->kl += extra[EXTRA_KL] / sums->units;
  for (size_t i = 0; i < beit_tokenizer_vocab_size(t->tok); i++)
    t->histogram[i] += extra[EXTRA_HEAD + i];
  t->sum->last_loss = sums->loss / sums->units;
  t->sum->last_mae = sums->correct / sums->units;
}

static void log_fields(void *ctx, cJSON *f, double steps)
{
  struct tokenizer_training *t = ctx;
  const size_t V = beit_tokenizer_vocab_size(t->tok);
  size_t used = 0;
  double total = 0.0, entropy = 0.0;
  for (size_t i = 0; i < V; i++)
    total += t->histogram[i];
  for (size_t i = 0; i < V; i++)
    if (t->histogram[i] > 0) {
      const double q = t->histogram[i] / total;
      used++;
      entropy -= q * log(q);
    }
  cJSON_AddNumberToObject(f, "recon", t->recon / steps);
  cJSON_AddNumberToObject(f, "kl", t->kl / steps);
  cJSON_AddNumberToObject(f, "tau", t->tau);
  cJSON_AddNumberToObject(f, "kl_weight", t->kl_weight);
  cJSON_AddNumberToObject(f, "codes_used", (double)used);
  cJSON_AddNumberToObject(f, "codes_frac", (double)used / (double)V);
  cJSON_AddNumberToObject(f, "perplexity", exp(entropy));
  t->recon = t->kl = 0.0;
  memset(t->histogram, 0, V * sizeof *t->histogram);
}

static cJSON *eval_json(const struct beit_tokenizer_eval *ev)
{
  cJSON *j = cJSON_CreateObject();
  if (!j)
    return NULL;
  cJSON_AddNumberToObject(j, "eval_images", (double)ev->images);
  cJSON_AddNumberToObject(j, "eval_mae", ev->mae);
  cJSON_AddNumberToObject(j, "eval_mse", ev->mse);
  cJSON_AddNumberToObject(j, "eval_codes_used", (double)ev->codes_used);
  cJSON_AddNumberToObject(j, "eval_codes_frac", ev->codes_frac);
  cJSON_AddNumberToObject(j, "eval_perplexity", ev->perplexity);
  return j;
}

/* Periodic: eval.batches batches per rank, logged. Final: the tokenizer/ folder, then the whole
 * held-out set with recon.png and eval.json. Rank 0 writes; every rank evaluates its slice. */
static enum beit_status evaluate(void *ctx, int final, struct beit_error *err)
{
  struct tokenizer_training *t = ctx;
  const struct beit_recipe *r = &t->cfg.recipe;
  struct beit_tokenizer_train_summary *sum = t->sum;
  const int root = beit_dist_is_root(t->dist);
  enum beit_status st = BEIT_STATUS_OK;
  if (!final && !r->data.eval[0])
    return st;
  if (!final) {
    struct beit_tokenizer_eval ev;
    if (!(st = beit_tokenizer_evaluate(t->tok, t->dist, r->data.eval,
                                       (size_t)(r->eval.batches * r->batch.size),
                                       (int)r->data.num_workers, NULL, 0, NULL, &ev, err)))
      beit_trainer_log_eval(&t->trainer, eval_json(&ev));
    return st;
  }
  sum->seconds = beit_clock_now() - t->trainer.t_start;
  snprintf(sum->tokenizer_dir, sizeof sum->tokenizer_dir, "%s/tokenizer", t->opt->args.out);
  if (root)
    st = beit_tokenizer_save(t->tok, sum->tokenizer_dir, err);
  if ((st = beit_trainer_agree(t->dist, st, "write the tokenizer folder", err)) ||
      !r->data.eval[0])
    return st;
  beit_loader_free(t->loader); /* the training loader's workers would compete with the eval */
  t->loader = NULL;
  snprintf(sum->grid_png, sizeof sum->grid_png, "%s/recon.png", t->opt->args.out);
  if ((st = beit_tokenizer_evaluate(t->tok, t->dist, r->data.eval, 0, (int)r->data.num_workers,
                                    root ? sum->grid_png : NULL, (size_t)t->cfg.grid_images, NULL,
                                    &sum->eval, err)))
    return st;
  cJSON *j = eval_json(&sum->eval);
  if (root && !j)
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "eval.json: out of memory");
  if (root && j) {
    char path[4200];
    snprintf(path, sizeof path, "%s/eval.json", t->opt->args.out);
    cJSON_AddNumberToObject(j, "train_steps", (double)t->trainer.step);
    cJSON_AddNumberToObject(j, "train_seconds", sum->seconds);
    st = beit_json_write_file(path, j, err);
  }
  beit_trainer_log_eval(&t->trainer, j);
  return beit_trainer_agree(t->dist, st, "write eval.json", err);
}

/* The resolved config and the tokenizer, its buffers and the gradient reducer. */
static enum beit_status setup(struct tokenizer_training *t, struct beit_error *err)
{
  const struct beit_tokenizer_train_options *opt = t->opt;
  struct beit_tokenizer_train_config *cfg = &t->cfg;
  struct beit_recipe *r = &cfg->recipe;
  enum beit_status st;
  beit_tokenizer_train_defaults(cfg);
  if ((st = beit_tokenizer_train_config_load(cfg, opt->args.config, err)))
    return st;
  struct beit_tokenizer_train_config *file = malloc(sizeof *file); /* what the config file gave */
  if (!file)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "tokenizer training: out of memory");
  *file = *cfg;
  for (int i = 0; !st && i < opt->args.nsets; i++)
    st = beit_tokenizer_train_config_override(cfg, opt->args.sets[i], err);
  if (!st && opt->args.data)
    snprintf(r->data.train, sizeof r->data.train, "%s", opt->args.data);
  if (!st && opt->args.eval_data)
    snprintf(r->data.eval, sizeof r->data.eval, "%s", opt->args.eval_data);
  /* the file's paths are relative to it; --set, --data and --eval-data to the current folder */
  size_t nall;
  const struct beit_config_key *all = all_keys(&nall);
  if (!st)
    st = beit_config_resolve_paths(cfg, file, all, nall, opt->args.config, err);
  free(file);
  if (st)
    return st;
  if ((st = beit_tokenizer_config_validate(&cfg->model, opt->args.config, err)) ||
      (st = beit_precision_policy_start(&t->precision, r->precision, t->dist, stderr, NULL,
                                        err))) /* the run's first line */
    return st;
  beit_dist_policy_start(t->dist, r->distributed.timeout_s, stderr);
  if (!r->data.train[0])
    return beit_error_set(err, BEIT_STATUS_USAGE,
                          "no training data: give --data or set data.train in %s",
                          opt->args.config);
  const size_t C = (size_t)cfg->model.input_channels, S = (size_t)cfg->model.image_size;
  if (C != 1 && C != 3)
    return beit_error_set(err, BEIT_STATUS_CONFIG,
                          "%s: key 'model.input_channels': the data loader gives RGB images, use "
                          "1 (first channel) or 3",
                          opt->args.config);
  if (!cfg->model.decoder)
    return beit_error_set(err, BEIT_STATUS_CONFIG,
                          "%s: key 'model.decoder': training needs the decoder", opt->args.config);
  const size_t B = (size_t)r->batch.size;
  if ((st = beit_tokenizer_create(&t->tok, &cfg->model, B, (uint64_t)r->seed, err)) ||
      (st = beit_dvae_train_init(t->tok, B, err)))
    return st;
  struct beit_tokenizer *tok = t->tok;
  /* rank 0's weights are everyone's (they are equal anyway: same seed, same code) */
  if ((st = beit_dist_bcast(t->dist, beit_tokenizer_params(tok),
                              beit_tokenizer_table(tok)->total * sizeof(float), 0, err)))
    return st;
  size_t nkeys;
  const struct beit_config_key *keys = beit_dvae_config_keys(&nkeys);
  t->config = beit_config_to_json(beit_tokenizer_get_config(tok), keys, nkeys);
  t->xbuf = malloc(B * C * S * S * sizeof *t->xbuf);
  t->histogram = calloc(beit_tokenizer_vocab_size(tok), sizeof *t->histogram);
  if (!t->config || !t->xbuf || !t->histogram)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "tokenizer training: out of memory");
  const size_t total = beit_tokenizer_table(tok)->total;
  return beit_dist_grads_init(&t->reducer, t->dist, beit_tokenizer_grads(tok), total,
                              beit_trainer_bucket_floats(total), err);
}

enum beit_status beit_tokenizer_train_run(const struct beit_tokenizer_train_options *opt,
                                          struct beit_dist *dist,
                                          struct beit_tokenizer_train_summary *sum,
                                          struct beit_error *err)
{
  struct tokenizer_training t;
  memset(&t, 0, sizeof t);
  memset(sum, 0, sizeof *sum);
  t.opt = opt, t.sum = sum, t.dist = dist;
  struct beit_recipe *r = &t.cfg.recipe;
  struct beit_loader_cursor start = {0, 0};
  char resume_dir[4200] = "", path[4200];
  struct beit_loader_options lo;
  const int root = beit_dist_is_root(dist);
  enum beit_status st = setup(&t, err);
  if (st)
    goto done;
  if ((st = beit_trainer_prepare_out(dist, opt->args.out, opt->args.resume, opt->args.overwrite,
                                     resume_dir, sizeof resume_dir, &start, err)))
    goto done;
  view_b_loader(&lo, r, (size_t)t.cfg.model.image_size, (size_t)r->batch.size,
                (int)r->data.num_workers, 1);
  lo.rank = beit_dist_rank(dist);
  lo.world_size = beit_dist_world_size(dist);
  lo.log = root ? stderr : NULL;
  if ((st = beit_loader_init(&t.loader, r->data.train, &lo, &start, err)))
    goto done;
  /* the precision is set once the weights are final (a resumed checkpoint's): its bf16 copy is
   * rounded from them, then refreshed by every training step */
  if ((st = beit_trainer_start(&t.trainer, r, dist, beit_tokenizer_table(t.tok),
                               beit_tokenizer_params(t.tok), beit_tokenizer_grads(t.tok),
                               (long)beit_loader_steps_per_epoch(t.loader), opt->args.out,
                               resume_dir, t.precision, err)) ||
      (st = beit_tokenizer_set_precision(t.tok, t.precision, err)))
    goto done;
  if (root) {
    cJSON *resolved = beit_tokenizer_train_config_json(&t.cfg);
    snprintf(path, sizeof path, "%s/train_config.json", opt->args.out);
    st = resolved ? beit_json_write_file(path, resolved, err)
                  : beit_error_set(err, BEIT_STATUS_NOMEM, "config JSON: out of memory");
    cJSON_Delete(resolved);
    size_t gh, gw;
    beit_tokenizer_grid(t.tok, &gh, &gw);
    fprintf(stderr,
            "tokenizer training: %zu parameters, token grid %zux%zu of %zu codes, %ld steps of "
            "%ld images (%d rank(s) x %ld; %ld steps per epoch)\n",
            beit_tokenizer_num_params(t.tok), gh, gw, beit_tokenizer_vocab_size(t.tok),
            t.trainer.total_steps, beit_dist_world_size(dist) * r->batch.size,
            beit_dist_world_size(dist), r->batch.size, t.trainer.steps_per_epoch);
  }
  if ((st = beit_trainer_agree(dist, st, "write train_config.json", err)))
    goto done;
  const long first_step = t.trainer.step;
  struct beit_trainer_loop loop = {
      .ctx = &t, .acc_name = "mae", .config = t.config, .loader = t.loader, .reducer = t.reducer,
      .micro_batch = train_micro_batch,
      .n_extra = EXTRA_HEAD + beit_tokenizer_vocab_size(t.tok),
      .after_step = after_step, .phase_names = phase_names, .nphases = PHASE_COUNT,
      .log_fields = log_fields, .evaluate = evaluate};
  struct beit_trainer_run_summary run;
  st = beit_trainer_run(&t.trainer, &loop, &run, err);
  sum->steps = t.trainer.step - first_step;
done:
  cJSON_Delete(t.config);
  beit_trainer_free(&t.trainer);
  beit_loader_free(t.loader);
  beit_dist_grads_free(t.reducer);
  beit_tokenizer_free(t.tok);
  free(t.xbuf), free(t.histogram);
  return st;
}
