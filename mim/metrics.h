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

#include "beit/mim.h"
#include "beit/status.h"

#define BEIT_METRICS_CONFUSION_MAX 1000 /* a 21841-class confusion matrix would be 3.8 GB */

/* rows: the number of sample slots for multi-label (the dataset size); unused for multi-class. */
enum beit_status beit_metrics_init(struct beit_metrics *m, size_t C, int multilabel, size_t rows,
                                   double threshold, struct beit_error *err);

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

#endif
