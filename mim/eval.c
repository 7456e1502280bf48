/* The evaluation pass and its table (see eval.h). */
#include "eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "dist_policy.h"

#define REDUCE_CHUNK (1u << 20) /* doubles per allreduce when merging multi-label rows */

void beit_eval_defaults(struct beit_eval_options *o)
{
  memset(o, 0, sizeof *o);
  o->batch = 64;
  o->threshold = 0.5;
  o->num_workers = 2;
}

/* Sum n values of any element type over ranks through a double staging buffer. */
static enum beit_status reduce_floats(struct beit_dist *d, float *f, uint8_t *u, size_t n,
                                      double *stage, struct beit_error *err)
{
  for (size_t at = 0; at < n; at += REDUCE_CHUNK) {
    size_t k = n - at < REDUCE_CHUNK ? n - at : REDUCE_CHUNK;
    for (size_t i = 0; i < k; i++)
      stage[i] = f ? (double)f[at + i] : (double)u[at + i];
    enum beit_status st = beit_dist_allreduce_sum_f64(d, stage, k, err);
    if (st)
      return st;
    for (size_t i = 0; i < k; i++) {
      if (f)
        f[at + i] = (float)stage[i];
      else
        u[at + i] = (uint8_t)(stage[i] > 0.5);
    }
  }
  return BEIT_STATUS_OK;
}

/* Merge every rank's accumulators; each rank then holds the totals. */
static enum beit_status merge(struct beit_dist *d, struct beit_metrics *mt, struct beit_error *err)
{
  if (beit_dist_world_size(d) == 1)
    return BEIT_STATUS_OK;
  size_t C = mt->C;
  enum beit_status st;
  if (!mt->multilabel) {
    double head[4] = {mt->count, mt->loss_sum, mt->top1, mt->topk_hits};
    if ((st = beit_dist_allreduce_sum_f64(d, head, 4, err)) ||
        (st = beit_dist_allreduce_sum_f64(d, mt->tp, C, err)) ||
        (st = beit_dist_allreduce_sum_f64(d, mt->support, C, err)) ||
        (st = beit_dist_allreduce_sum_f64(d, mt->predicted, C, err)) ||
        (mt->confusion && (st = beit_dist_allreduce_sum_f64(d, mt->confusion, C * C, err))))
      return st;
    mt->count = head[0];
    mt->loss_sum = head[1];
    mt->top1 = head[2];
    mt->topk_hits = head[3];
    return BEIT_STATUS_OK;
  }
  /* multi-label: each slot is filled on exactly one rank, zeros elsewhere, so sums merge */
  double *stage = malloc(REDUCE_CHUNK * sizeof *stage);
  if (!stage)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "evaluation: out of memory");
  st = reduce_floats(d, mt->scores, NULL, mt->rows * C, stage, err);
  if (!st)
    st = reduce_floats(d, NULL, mt->targets, mt->rows * C, stage, err);
  if (!st)
    st = reduce_floats(d, NULL, mt->filled, mt->rows, stage, err);
  free(stage);
  mt->count = 0;
  for (size_t i = 0; i < mt->rows; i++)
    mt->count += mt->filled[i];
  return st;
}

/* One JSON line per sample of b: the probabilities as beit predict computes them (softmax in
 * double, or independent sigmoids), every label in the model's order. */
static enum beit_status write_predictions(FILE *out, const struct beit_model *m,
                                          const struct beit_loader_batch *b,
                                          struct beit_error *err)
{
  const struct beit_config *cfg = beit_model_config(m);
  size_t C = (size_t)cfg->num_labels;
  int multilabel = beit_config_is_multilabel(cfg);
  for (size_t i = 0; i < b->count; i++) {
    const float *z = beit_model_logits(m) + i * C;
    double mx = z[0], sum = 0.0;
    for (size_t c = 1; c < C; c++)
      mx = z[c] > mx ? z[c] : mx;
    for (size_t c = 0; c < C; c++)
      sum += exp((double)z[c] - mx);
    cJSON *line = cJSON_CreateObject(), *probs = NULL, *labels = NULL;
    if (line) {
      cJSON_AddNumberToObject(line, "index", (double)b->indices[i]);
      probs = cJSON_AddArrayToObject(line, "probs");
      labels = cJSON_AddArrayToObject(line, "labels");
    }
    for (size_t c = 0; probs && labels && c < C; c++) {
      float p = multilabel ? (float)(1.0 / (1.0 + exp(-(double)z[c])))
                          : (float)(exp((double)z[c] - mx) / sum);
      cJSON_AddItemToArray(probs, isfinite(p) ? cJSON_CreateNumber(p) : cJSON_CreateNull());
      cJSON_AddItemToArray(labels, cJSON_CreateString(cfg->labels && cfg->labels[c]
                                                          ? cfg->labels[c] : ""));
    }
    char *text = probs && labels ? cJSON_PrintUnformatted(line) : NULL;
    cJSON_Delete(line);
    if (!text)
      return beit_error_set(err, BEIT_STATUS_NOMEM, "predictions: out of memory");
    int bad = fprintf(out, "%s\n", text) < 0;
    free(text);
    if (bad)
      return beit_error_set(err, BEIT_STATUS_IO, "predictions: write error");
  }
  return BEIT_STATUS_OK;
}

/* What beit_eval_run refuses before reading anything: another architecture, a batch the model
 * was not planned for, per-image predictions from several ranks. */
static enum beit_status check_run(const struct beit_model *m, struct beit_dist *dist,
                                  const struct beit_eval_options *o, struct beit_error *err)
{
  struct beit_model_dims dims;
  beit_model_dims(m, &dims);
  if (beit_model_arch(m) != BEIT_ARCH_CLASSIFIER)
    return beit_error_set(err, BEIT_STATUS_USAGE, "evaluation needs a "
                          "BeitForImageClassification model (this one is %s)",
                          beit_model_config(m)->architecture);
  if (o->batch == 0 || o->batch > dims.max_batch)
    return beit_error_set(err, BEIT_STATUS_USAGE, "evaluation batch %zu outside 1..%zu", o->batch,
                          dims.max_batch);
  if (o->predictions && beit_dist_world_size(dist) > 1)
    return beit_error_set(err, BEIT_STATUS_USAGE, "per-image predictions are written by one "
                          "rank only (run without mpirun)");
  return BEIT_STATUS_OK;
}

enum beit_status beit_eval_next(struct beit_loader *ld, struct beit_model *m,
                                const struct beit_loader_batch **b, struct beit_error *err)
{
  enum beit_status st = beit_loader_next(ld, b, err);
  if (st || !*b || !(*b)->count)
    return st;
  return beit_model_forward(m, (*b)->view_a, NULL, NULL, (*b)->count, err);
}

enum beit_status beit_eval_run(struct beit_model *m, struct beit_dist *dist,
                               const struct beit_eval_options *o, struct beit_metrics *mt,
                               struct beit_error *err)
{
  struct beit_loader_options lo;
  struct beit_loader *ld = NULL;
  const struct beit_config *cfg = beit_model_config(m);
  const int multilabel = beit_config_is_multilabel(cfg);
  memset(mt, 0, sizeof *mt);
  enum beit_status st = check_run(m, dist, o, err);
  if (st)
    return st;
  beit_dist_policy_loader(&lo, BEIT_DATA_MODE_EVAL, dist, o->batch, 0, stderr);
  lo.transform.image_size = (int)cfg->image_size;
  lo.transform.eval_preprocess = o->preprocess;
  lo.transform.eval_preprocess_set = 1;
  lo.num_workers = o->num_workers > 0 ? o->num_workers : 1;
  lo.seed = o->seed;
  if ((st = beit_loader_init(&ld, o->data, &lo, NULL, err)))
    return st;
  struct beit_dataset *ds = beit_loader_dataset(ld);
  size_t C = (size_t)cfg->num_labels, rows = beit_data_count(ds);
  int ml = beit_data_task(ds) == BEIT_DATA_TASK_MULTILABEL;
  float *hot = NULL; /* a sigmoid model on a multi-class dataset: labels as one-hot rows */
  if ((size_t)beit_data_num_classes(ds) != C || (ml && !multilabel)) {
    st = beit_error_set(err, BEIT_STATUS_CONFIG, "%s: %d classes (%s) but the model predicts "
                        "%zu (%s)", o->data, beit_data_num_classes(ds),
                        ml ? "multilabel" : "multiclass", C,
                        multilabel ? "multilabel" : "multiclass");
    goto done;
  }
  if (multilabel && !ml && !(hot = calloc(o->batch * C, sizeof *hot))) {
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "evaluation: out of memory");
    goto done;
  }
  if ((st = beit_metrics_init(mt, C, multilabel, rows, o->threshold, err)))
    goto done;
  for (long n = 0; o->max_batches == 0 || n < o->max_batches; n++) {
    const struct beit_loader_batch *b = NULL;
    if ((st = beit_eval_next(ld, m, &b, err)) || !b)
      break;
    if (!b->count)
      continue;
    if (hot) {
      memset(hot, 0, b->count * C * sizeof *hot);
      for (size_t i = 0; i < b->count; i++)
        hot[i * C + (size_t)b->labels[i]] = 1.0f;
    }
    if (multilabel)
      beit_metrics_add_multilabel(mt, beit_model_logits(m), hot ? hot : b->targets, b->indices,
                                  b->count);
    else
      beit_metrics_add_multiclass(mt, beit_model_logits(m), b->labels, b->count);
    if (o->predictions && (st = write_predictions(o->predictions, m, b, err)))
      break;
  }
  if (!st)
    st = merge(dist, mt, err);
done:
  free(hot);
  beit_loader_free(ld);
  if (st)
    beit_metrics_free(mt);
  return st;
}

static void num(FILE *out, double v)
{
  if (isnan(v))
    fprintf(out, "  %8s", "-");
  else
    fprintf(out, "  %8.4f", v);
}

static const struct beit_metrics_report *sort_report; /* qsort has no context in C11 */

static int cmp_f1(const void *a, const void *b)
{
  double x = sort_report->cls[*(const size_t *)a].f1, y = sort_report->cls[*(const size_t *)b].f1;
  if (isnan(x))
    x = 2.0; /* undefined last */
  if (isnan(y))
    y = 2.0;
  return (x > y) - (x < y);
}

void beit_eval_print(FILE *out, const struct beit_metrics_report *r,
                     const char *const *names, size_t max_rows)
{
  fprintf(out, "%.0f images, %zu classes (%s)\n", r->samples, r->C,
          r->multilabel ? "multi-label" : "multi-class");
  if (!r->multilabel) {
    fprintf(out, "  top-1 accuracy     %.4f\n", r->top1);
    fprintf(out, "  top-%zu accuracy     %.4f\n", r->topk, r->topk_acc);
    fprintf(out, "  log loss           %.4f\n", r->log_loss);
  } else {
    fprintf(out, "  mAP                %.4f   (%zu classes with positives)\n", r->map,
            r->classes_ap);
    fprintf(out, "  micro F1 @ %.2f     %.4f   (precision %.4f, recall %.4f)\n", r->threshold,
            r->micro_f1, r->micro_precision, r->micro_recall);
    fprintf(out, "  subset accuracy    %.4f\n", r->subset_accuracy);
    fprintf(out, "  log loss (BCE)     %.4f\n", r->log_loss);
  }
  fprintf(out, "  macro precision    %.4f   (%zu classes)\n", r->macro_precision,
          r->classes_precision);
  fprintf(out, "  macro recall       %.4f   (%zu classes)\n", r->macro_recall, r->classes_recall);
  fprintf(out, "  macro F1           %.4f   (%zu classes)\n", r->macro_f1, r->classes_f1);
  size_t *order = malloc(r->C * sizeof *order);
  if (!order)
    return;
  for (size_t c = 0; c < r->C; c++)
    order[c] = c;
  size_t shown = r->C;
  if (r->C > max_rows) { /* the classes that need attention: lowest F1 first */
    sort_report = r;
    qsort(order, r->C, sizeof *order, cmp_f1);
    shown = max_rows;
    fprintf(out, "\nthe %zu classes with the lowest F1 of %zu:\n", shown, r->C);
  }
  fprintf(out, "\n  %-24s %8s %9s %9s %9s%s\n", "class", "support", "precision", "recall", "f1",
          r->multilabel ? "        AP" : "");
  for (size_t k = 0; k < shown; k++) {
    size_t c = order[k];
    char label[32];
    snprintf(label, sizeof label, "%s", names && names[c] ? names[c] : "?");
    fprintf(out, "  %-24s %8.0f", label, r->cls[c].support);
    num(out, r->cls[c].precision);
    fprintf(out, " ");
    num(out, r->cls[c].recall);
    fprintf(out, " ");
    num(out, r->cls[c].f1);
    if (r->multilabel) {
      fprintf(out, " ");
      num(out, r->cls[c].ap);
    }
    fprintf(out, "\n");
  }
  free(order);
  if (!r->multilabel && r->confusion && r->C <= 20) {
    fprintf(out, "\nconfusion matrix (rows: true class, columns: predicted)\n      ");
    for (size_t p = 0; p < r->C; p++)
      fprintf(out, " %6zu", p);
    fprintf(out, "\n");
    for (size_t t = 0; t < r->C; t++) {
      fprintf(out, "  %3zu ", t);
      for (size_t p = 0; p < r->C; p++)
        fprintf(out, " %6.0f", r->confusion[t * r->C + p]);
      fprintf(out, "\n");
    }
  }
}
