/* Linear probing (see probe.h). */
#include "probe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "beit/data.h"
#include "beit/model.h"
#include "beit/transfer.h"
#include "dist_policy.h"
#include "eval.h"
#include "finetune.h"
#include "kernels.h"
#include "optim.h"
#include "precision_policy.h"
#include "rng.h"

#define PROBE_STREAM 0x70726f62ull /* "prob" */
#define MERGE_CHUNK (1u << 20)

struct features {
  size_t n, dim, nblocks; /* per block: (n, dim) */
  float *x;               /* (nblocks, n, dim) */
  int32_t *labels;        /* (n) */
};

static void features_free(struct features *f)
{
  free(f->x);
  free(f->labels);
  memset(f, 0, sizeof *f);
}

/* The encoder as a BeitModel (no heads), weights from the source, products in precision p. */
static enum beit_status load_encoder(struct beit_model **out, const char *path, size_t batch,
                                     enum beit_precision p, struct beit_error *err)
{
  struct beit_source *src = NULL;
  struct beit_config cfg;
  beit_config_defaults(&cfg);
  enum beit_status st = beit_source_open(&src, path, err);
  if (st)
    return st;
  cfg = *beit_source_config(src);
  cfg.labels = NULL;
  snprintf(cfg.architecture, sizeof cfg.architecture, "BeitModel");
  cfg.use_mask_token = 0;
  if (!(st = beit_config_set_labels(&cfg, beit_source_config(src)->num_labels, NULL, err)) &&
      !(st = beit_model_create(out, &cfg, batch, err))) {
    beit_model_init_weights(*out, BEIT_INIT_FINETUNE, 0);
    struct beit_transfer_options to = {0, NULL};
    if (!(st = beit_transfer_load(*out, src, &to, NULL, err)) &&
        !(st = beit_model_set_inference(*out, err))) /* features only: the forward's arena */
      st = beit_model_set_precision(*out, p, err);  /* after the weights are final */
  }
  beit_config_free(&cfg);
  beit_source_free(src);
  return st;
}

/* Sum a float buffer over ranks (each element written by one rank, zero elsewhere). */
static enum beit_status merge_floats(struct beit_dist *d, float *x, size_t n,
                                     struct beit_error *err)
{
  if (beit_dist_world_size(d) == 1)
    return BEIT_STATUS_OK;
  double *stage = malloc(MERGE_CHUNK * sizeof *stage);
  if (!stage)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "probe: out of memory");
  enum beit_status st = BEIT_STATUS_OK;
  for (size_t at = 0; at < n && !st; at += MERGE_CHUNK) {
    size_t k = n - at < MERGE_CHUNK ? n - at : MERGE_CHUNK;
    for (size_t i = 0; i < k; i++)
      stage[i] = x[at + i];
    if (!(st = beit_dist_allreduce_sum_f64(d, stage, k, err)))
      for (size_t i = 0; i < k; i++)
        x[at + i] = (float)stage[i];
  }
  free(stage);
  return st;
}

/* Features of blocks [first, first + nblocks) for every record of dir. */
/* The features of batch b after the forward: per probed block (first + k, 1-based), the mean of
 * the patch tokens, after the CLS token when cls_mean; rows by global sample index. */
static void add_features(const struct beit_model *m, struct features *f,
                         const struct beit_loader_batch *b, long first, int cls_mean)
{
  struct beit_model_dims dims;
  beit_model_dims(m, &dims);
  const size_t D = dims.D, T = dims.T, N = dims.N;
  for (size_t k = 0; k < f->nblocks; k++) {
    const float *h = beit_model_block_output(m, (size_t)(first + (long)k));
    for (size_t s = 0; s < b->count; s++) {
      float *out = f->x + (k * f->n + (size_t)b->indices[s]) * f->dim;
      const float *tok = h + s * T * D;
      float *mean = cls_mean ? out + D : out;
      for (size_t i = 1; i <= N; i++)
        for (size_t d = 0; d < D; d++)
          mean[d] += tok[i * D + d];
      for (size_t d = 0; d < D; d++)
        mean[d] /= (float)N;
      if (cls_mean)
        memcpy(out, tok, D * sizeof *out);
    }
  }
}

static enum beit_status extract(struct beit_model *m, struct beit_dist *dist,
                                const struct beit_probe_options *o, const struct beit_recipe *r,
                                const char *dir, long first, size_t nblocks, int cls_mean,
                                struct features *f, struct beit_error *err)
{
  struct beit_loader_options lo;
  struct beit_loader *ld = NULL;
  memset(f, 0, sizeof *f);
  beit_dist_policy_loader(&lo, BEIT_DATA_MODE_EVAL, dist, o->batch, 0, o->log);
  lo.transform.image_size = (int)beit_model_config(m)->image_size;
  beit_recipe_eval_preprocess(r, lo.transform.image_size, &lo.transform.eval_preprocess);
  lo.transform.eval_preprocess_set = 1;
  lo.num_workers = (int)r->data.num_workers;
  enum beit_status st = beit_loader_init(&ld, dir, &lo, NULL, err);
  if (st)
    return st;
  struct beit_dataset *ds = beit_loader_dataset(ld);
  if (beit_data_task(ds) != BEIT_DATA_TASK_MULTICLASS) {
    st = beit_error_set(err, BEIT_STATUS_UNSUPPORTED, "%s: linear probing takes multi-class "
                        "datasets", dir);
    goto done;
  }
  f->n = beit_data_count(ds);
  struct beit_model_dims dims;
  beit_model_dims(m, &dims);
  f->dim = cls_mean ? 2 * dims.D : dims.D;
  f->nblocks = nblocks;
  f->x = calloc(nblocks * f->n * f->dim + 1, sizeof *f->x);
  f->labels = calloc(f->n + 1, sizeof *f->labels);
  float *lab = calloc(f->n + 1, sizeof *lab);
  if (!f->x || !f->labels || !lab) {
    free(lab);
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "probe: features of %zu images: out of memory",
                        f->n);
    goto done;
  }
  size_t seen = 0;
  for (;;) {
    const struct beit_loader_batch *b = NULL;
    if ((st = beit_eval_next(ld, m, &b, err)) || !b)
      break;
    if (!b->count)
      continue;
    add_features(m, f, b, first, cls_mean);
    for (size_t s = 0; s < b->count; s++)
      lab[b->indices[s]] = (float)b->labels[s] + 1.0f; /* 0 = not on this rank */
    seen += b->count;
    if (o->log && beit_dist_is_root(dist) && (seen / b->count) % 50 == 0)
      fprintf(o->log, "probe: features of %s: %zu/%zu\n", dir, seen * lo.world_size, f->n);
  }
  if (!st)
    st = merge_floats(dist, f->x, nblocks * f->n * f->dim, err);
  if (!st)
    st = merge_floats(dist, lab, f->n, err);
  for (size_t i = 0; i < f->n; i++)
    f->labels[i] = (int32_t)lab[i] - 1;
  free(lab);
done:
  beit_loader_free(ld);
  if (st)
    features_free(f);
  return st;
}

/* Standardise each dimension of block k of tr (and ev) with tr's statistics. */
static void standardise(struct features *tr, struct features *ev, size_t k)
{
  size_t F = tr->dim;
  for (size_t d = 0; d < F; d++) {
    double s = 0, s2 = 0;
    for (size_t i = 0; i < tr->n; i++) {
      double v = tr->x[(k * tr->n + i) * F + d];
      s += v;
      s2 += v * v;
    }
    double mean = s / (double)tr->n, var = s2 / (double)tr->n - mean * mean;
    float inv = (float)(1.0 / sqrt(var > 0 ? var + 1e-6 : 1e-6)), mu = (float)mean;
    for (size_t i = 0; i < tr->n; i++)
      tr->x[(k * tr->n + i) * F + d] = (tr->x[(k * tr->n + i) * F + d] - mu) * inv;
    for (size_t i = 0; i < ev->n; i++)
      ev->x[(k * ev->n + i) * F + d] = (ev->x[(k * ev->n + i) * F + d] - mu) * inv;
  }
}

/* Accuracy and mean loss of the linear map (W, b) on n rows of x. */
static void score(const float *W, const float *bias, const float *x, const int32_t *labels,
                  size_t n, size_t F, size_t C, float *logits, float *probs, size_t chunk,
                  double *acc, double *loss)
{
  double hits = 0, lsum = 0;
  for (size_t at = 0; at < n; at += chunk) {
    size_t k = n - at < chunk ? n - at : chunk;
    long h = 0;
    beit_linear_forward(logits, x + at * F, W, bias, k, F, C);
    lsum += beit_cross_entropy_forward(probs, &h, logits, labels + at, 0.0f, k, C) * (double)k;
    hits += (double)h;
  }
  *acc = n ? hits / (double)n : NAN;
  *loss = n ? lsum / (double)n : NAN;
}

/* Train one probe on block k; fills res. */
static enum beit_status train_probe(const struct beit_recipe *r, const struct features *tr,
                                    const struct features *ev, size_t k, size_t C,
                                    struct beit_probe_result *res, struct beit_error *err)
{
  size_t F = tr->dim, n = tr->n, B = (size_t)r->probe.batch;
  if (B > n)
    B = n;
  struct beit_tensor_table table;
  beit_tensor_table_init(&table);
  size_t wshape[2] = {C, F}, bshape[1] = {C};
  long wi = beit_tensor_table_add(&table, "probe.weight", 2, wshape);
  long bi = beit_tensor_table_add(&table, "probe.bias", 1, bshape);
  float *params = NULL, *grads = NULL, *m = NULL, *v = NULL, *logits = NULL, *probs = NULL,
        *xb = NULL;
  size_t *order = NULL;
  int32_t *yb = NULL;
  enum beit_status st = BEIT_STATUS_OK;
  if (wi < 0 || bi < 0 || !(params = beit_alloc_floats(table.total)) ||
      !(grads = beit_alloc_floats(table.total)) || !(m = beit_alloc_floats(table.total)) ||
      !(v = beit_alloc_floats(table.total)) || !(logits = malloc(B * C * sizeof *logits)) ||
      !(probs = malloc(B * C * sizeof *probs)) || !(xb = malloc(B * F * sizeof *xb)) ||
      !(order = malloc(n * sizeof *order)) || !(yb = malloc(B * sizeof *yb))) {
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "probe: out of memory");
    goto done;
  }
  table.items[bi].no_decay = 1;
  float *W = params + table.items[wi].offset, *bias = params + table.items[bi].offset;
  float *dW = grads + table.items[wi].offset, *db = grads + table.items[bi].offset;
  struct beit_rng rng;
  beit_rng_seed(&rng, (uint64_t)r->seed ^ PROBE_STREAM, (uint64_t)k, 0);
  for (size_t i = 0; i < C * F; i++)
    W[i] = (float)(0.01 * beit_rng_normal(&rng));
  const float *X = tr->x + k * n * F;
  long steps_per_epoch = (long)(n / B), total = (long)ceil(r->probe.epochs * (double)steps_per_epoch);
  if (total < 1)
    total = 1;
  long step = 0;
  for (long epoch = 0; step < total; epoch++) {
    for (size_t i = 0; i < n; i++)
      order[i] = i;
    beit_rng_seed(&rng, (uint64_t)r->seed ^ PROBE_STREAM, (uint64_t)k, (uint64_t)epoch + 1);
    for (size_t i = n; i > 1; i--) {
      size_t j = (size_t)beit_rng_int(&rng, 0, (int64_t)i - 1), t = order[i - 1];
      order[i - 1] = order[j];
      order[j] = t;
    }
    for (size_t at = 0; at + B <= n && step < total; at += B, step++) {
      for (size_t s = 0; s < B; s++) {
        memcpy(xb + s * F, X + order[at + s] * F, F * sizeof *xb);
        yb[s] = tr->labels[order[at + s]];
      }
      memset(grads, 0, table.total * sizeof *grads);
      memset(logits, 0, B * C * sizeof *logits);
      beit_linear_forward(logits, xb, W, bias, B, F, C);
      beit_cross_entropy_forward(probs, NULL, logits, yb, 0.0f, B, C);
      memset(logits, 0, B * C * sizeof *logits); /* reused as dlogits */
      beit_cross_entropy_backward(logits, probs, yb, 0.0f, 1.0f, B, C);
      beit_linear_backward(NULL, dW, db, logits, xb, W, B, F, C);
      struct beit_adamw_hparams hp = {beit_cosine_schedule(r->probe.lr, 0.0, 0, total, step),
                                      r->probe.weight_decay, 0.9, 0.999, 1e-8, step + 1};
      beit_adamw_update(params, grads, 1.0f, m, v, &table, &hp);
    }
  }
  res->block = 0;
  double tl;
  score(W, bias, X, tr->labels, n, F, C, logits, probs, B, &res->train_acc, &tl);
  score(W, bias, ev->x + k * ev->n * F, ev->labels, ev->n, F, C, logits, probs, B, &res->eval_acc,
        &res->eval_loss);
done:
  beit_tensor_table_free(&table);
  free(params);
  free(grads);
  free(m);
  free(v);
  free(logits);
  free(probs);
  free(xb);
  free(order);
  free(yb);
  return st;
}

/* The held-out dataset must have the training set's number of classes: the classifier is sized
 * by the training set, and a held-out label past it was scored as nan. Names are not compared:
 * a data.fraction subset (finetune_subset.c) names its classes 0..C-1. */
static enum beit_status same_classes(const struct beit_dataset *tr, const char *train_dir,
                                     const char *eval_dir, struct beit_error *err)
{
  struct beit_dataset *ev = NULL;
  enum beit_status st = beit_data_open(&ev, eval_dir, err);
  if (st)
    return st;
  int n = beit_data_num_classes(tr), m = beit_data_num_classes(ev);
  if (n != m)
    st = beit_error_set(err, BEIT_STATUS_CONFIG, "%s: %d classes, but the training set %s has "
                        "%d: the held-out dataset must have the training set's classes",
                        eval_dir, m, train_dir, n);
  beit_data_close(ev);
  return st;
}

/* The probes of o with recipe r. */
static enum beit_status probe_blocks(const struct beit_probe_options *o,
                                     const struct beit_recipe *r, struct beit_dist *dist,
                                     struct beit_probe_result *results, size_t max_results,
                                     size_t *count, struct beit_error *err)
{
  struct beit_model *m = NULL;
  struct features tr = {0}, ev = {0};
  struct beit_dataset *ds = NULL;
  enum beit_precision precision;
  *count = 0;
  enum beit_status st = beit_precision_policy_start(&precision, r->precision, dist, o->log,
                                                    "the linear classifiers train in fp32", err);
  if (st || (st = load_encoder(&m, o->model, o->batch, precision, err)))
    return st;
  struct beit_model_dims dims;
  beit_model_dims(m, &dims);
  long L = (long)dims.L, first = r->probe.block > 0 ? r->probe.block : 1;
  size_t nblocks = r->probe.block > 0 ? 1 : (size_t)L;
  int cls_mean = !strcmp(r->probe.pool, "cls_mean");
  if (r->probe.block > L) {
    st = beit_error_set(err, BEIT_STATUS_CONFIG, "probe.block %ld: the encoder has %ld blocks",
                        r->probe.block, L);
    goto done;
  }
  if (nblocks > max_results) {
    st = beit_error_set(err, BEIT_STATUS_USAGE, "probe: room for %zu results, %zu blocks",
                        max_results, nblocks);
    goto done;
  }
  if ((st = beit_data_open(&ds, o->train, err)))
    goto done;
  size_t C = (size_t)beit_data_num_classes(ds);
  st = same_classes(ds, o->train, o->eval, err);
  beit_data_close(ds);
  if (st)
    goto done;
  if ((st = extract(m, dist, o, r, o->train, first, nblocks, cls_mean, &tr, err)) ||
      (st = extract(m, dist, o, r, o->eval, first, nblocks, cls_mean, &ev, err)))
    goto done;
  for (size_t k = 0; k < nblocks; k++) {
    standardise(&tr, &ev, k);
    if ((st = train_probe(r, &tr, &ev, k, C, &results[k], err)))
      goto done;
    results[k].block = first + (long)k;
    if (o->log && beit_dist_is_root(dist))
      fprintf(o->log, "probe: block %ld: train accuracy %.4f, held-out %.4f\n", results[k].block,
              results[k].train_acc, results[k].eval_acc);
    *count = k + 1;
  }
done:
  features_free(&tr);
  features_free(&ev);
  beit_model_free(m);
  return st;
}

enum beit_status beit_probe_run(const struct beit_probe_options *o, struct beit_dist *dist,
                                struct beit_probe_result *results, size_t max_results,
                                size_t *count, struct beit_probe_setup *setup,
                                struct beit_error *err)
{
  struct beit_recipe r;
  beit_finetune_recipe_defaults(&r);
  enum beit_status st = BEIT_STATUS_OK;
  *count = 0;
  if (o->recipe && (st = beit_recipe_load(&r, o->recipe, err)))
    return st;
  for (int i = 0; i < o->nsets; i++)
    if ((st = beit_recipe_override(&r, o->sets[i], err)))
      return st;
  snprintf(setup->pool, sizeof setup->pool, "%s", r.probe.pool);
  setup->epochs = r.probe.epochs;
  setup->lr = r.probe.lr;
  setup->weight_decay = r.probe.weight_decay;
  return probe_blocks(o, &r, dist, results, max_results, count, err);
}
