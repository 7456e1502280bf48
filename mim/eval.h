/* Evaluation of a classifier on a dataset folder: one pass with the deterministic eval transform,
 * every rank on its slice (MPI), metrics merged over ranks, then a human-readable table or a JSON
 * report (mim/metrics.h). Used by `beit eval` and by the fine-tuning loop. */
#ifndef BEIT_MIM_EVAL_H
#define BEIT_MIM_EVAL_H

#include <stdio.h>

#include "beit/data.h"
#include "beit/distributed.h"
#include "encoder.h"
#include "metrics.h"

struct beit_eval_options {
  const char *data;        /* dataset folder */
  size_t batch;            /* <= the model's max_batch */
  /* the images' preprocessing, for the model's image size: the model folder's
   * (beit_data_preprocess_model) or a recipe's (beit_recipe_eval_preprocess) */
  struct beit_data_preprocess preprocess;
  double threshold;        /* multi-label */
  int num_workers;
  long max_batches;        /* 0 = the whole set */
  uint64_t seed;
  /* when not NULL: one JSON line per record in dataset order, {"index": i, "probs": [...],
   * "labels": [...]} with every label in the model's order (softmax, or sigmoids for a
   * multi-label model); one rank only (USAGE under MPI) */
  FILE *predictions;
};
/* Batch 64, threshold 0.5, 2 workers, the whole set; preprocess must still be set. */
void beit_eval_defaults(struct beit_eval_options *o);

/* Run the model over the dataset and fill metrics (initialised here; free with
 * beit_metrics_free). The model must be a BeitForImageClassification whose num_labels equals the
 * dataset's classes; the task comes from the model (problem_type). Every rank returns the same
 * merged metrics. */
enum beit_status beit_eval_run(struct beit_model *m, struct beit_dist *dist,
                               const struct beit_eval_options *o, struct beit_metrics *metrics,
                               struct beit_error *err);

/* The report as a table: summary lines, per-class rows (all of them up to max_rows classes,
 * else the worst by F1), and the confusion matrix up to 20 classes. */
void beit_eval_print(FILE *out, const struct beit_metrics_report *r,
                     const char *const *class_names, size_t max_rows);

#endif
