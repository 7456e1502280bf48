/* Classification metrics: accumulate logits and labels, then report.
 *
 * Multi-class: top-1 / top-k accuracy, confusion matrix (rows true, columns predicted), per-class
 * precision, recall and F1, log loss (mean -log softmax of the true class). Multi-label: per-class
 * average precision and mAP, precision/recall/F1 per class and micro/macro F1 at a probability
 * threshold, subset accuracy (every label of a sample right), log loss (mean sigmoid BCE over all
 * sample x class entries).
 *
 * Conventions (where libraries differ, stated once here):
 * - ties in the logits are broken toward the lower class index (numpy argmax, a stable sort):
 *   the true class t is within top-k iff #{c: s_c > s_t} + #{c < t: s_c == s_t} < k;
 * - a label is predicted present when sigmoid(logit) >= threshold;
 * - AP is sklearn's average_precision_score: sum over distinct score thresholds, in decreasing
 *   order, of (R_k - R_{k-1}) P_k; tied scores form one threshold;
 * - a ratio with a zero denominator is undefined (NaN here, null in JSON, "-" in tables):
 *   precision of a class never predicted, recall and AP of a class with no positives; F1 is
 *   2 TP / (2 TP + FP + FN), undefined only when the class is neither present nor predicted.
 *   Macro averages and mAP are over the classes where the value is defined; the report says how
 *   many.
 * Sums are kept in double; accumulating the same rows in any order gives the same report. */
#ifndef BEIT_MIM_METRICS_H
#define BEIT_MIM_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "beit/status.h"

struct beit_metrics {
  size_t C;           /* classes */
  int multilabel;
  size_t topk;        /* k of the top-k accuracy: min(5, C) */
  double threshold;   /* multi-label decision threshold on the probability */
  double count;       /* samples accumulated */
  double loss_sum;    /* sum of per-sample losses */
  /* multi-class */
  double *tp, *support, *predicted; /* (C) each */
  double *confusion;  /* (C, C), or NULL above BEIT_METRICS_CONFUSION_MAX classes */
  double top1, topk_hits;
  /* multi-label: one row per sample slot (global sample index), so ranks can be merged */
  size_t rows;        /* slots */
  float *scores;      /* (rows, C) logits */
  uint8_t *targets;   /* (rows, C) 0/1 */
  uint8_t *filled;    /* (rows) slot holds a sample */
};

#define BEIT_METRICS_CONFUSION_MAX 1000 /* a 21841-class confusion matrix would be 3.8 GB */

/* rows: the number of sample slots for multi-label (the dataset size); unused for multi-class. */
enum beit_status beit_metrics_init(struct beit_metrics *m, size_t C, int multilabel, size_t rows,
                                   double threshold, struct beit_error *err);
void beit_metrics_free(struct beit_metrics *m);

/* B samples of logits (B, C) with class ids labels (B). */
void beit_metrics_add_multiclass(struct beit_metrics *m, const float *logits,
                                 const int32_t *labels, size_t B);
/* B samples of logits (B, C) with 0/1 targets (B, C) in slots index (B) (< rows). */
void beit_metrics_add_multilabel(struct beit_metrics *m, const float *logits,
                                 const float *targets, const int64_t *index, size_t B);

/* sklearn average_precision_score of one class: scores and 0/1 targets of n samples with the
 * given strides; NaN when no sample is positive. */
double beit_average_precision(const float *scores, const uint8_t *targets, size_t n,
                              size_t stride);

struct beit_class_metrics {
  double support;    /* samples whose true label is the class */
  double predicted;  /* samples predicted as the class */
  double tp;
  double precision, recall, f1, ap; /* NaN where undefined; ap multi-label only */
};

struct beit_metrics_report {
  int multilabel;
  size_t C, topk;
  double samples, log_loss;
  double top1, topk_acc;                   /* multi-class */
  double macro_precision, macro_recall, macro_f1;
  size_t classes_precision, classes_recall, classes_f1; /* classes in each macro average */
  double map, micro_precision, micro_recall, micro_f1, subset_accuracy, threshold; /* multi-label */
  size_t classes_ap;
  struct beit_class_metrics *cls;          /* C entries */
  const double *confusion;                 /* multi-class: the accumulator's (C, C) or NULL */
};

enum beit_status beit_metrics_report(const struct beit_metrics *m,
                                     struct beit_metrics_report *r, struct beit_error *err);
void beit_metrics_report_free(struct beit_metrics_report *r);

/* The report as JSON (undefined values as null); class names may be NULL. */
cJSON *beit_metrics_report_json(const struct beit_metrics_report *r,
                                const char *const *class_names);

#endif
