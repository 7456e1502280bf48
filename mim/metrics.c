/* Classification metrics (see metrics.h). */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum beit_status beit_metrics_init(struct beit_metrics *m, size_t C, int multilabel, size_t rows,
                                   double threshold, struct beit_error *err)
{
  memset(m, 0, sizeof *m);
  m->C = C;
  m->multilabel = multilabel;
  m->topk = C < 5 ? C : 5;
  m->threshold = threshold;
  if (C == 0)
    return beit_error_set(err, BEIT_STATUS_USAGE, "metrics: no classes");
  if (multilabel) {
    m->rows = rows;
    size_t cells = rows * C > 0 ? rows * C : 1;
    m->scores = calloc(cells, sizeof *m->scores);
    m->targets = calloc(cells, 1);
    m->filled = calloc(rows ? rows : 1, 1);
    if (!m->scores || !m->targets || !m->filled)
      goto nomem;
  } else {
    m->tp = calloc(C, sizeof *m->tp);
    m->support = calloc(C, sizeof *m->support);
    m->predicted = calloc(C, sizeof *m->predicted);
    if (!m->tp || !m->support || !m->predicted)
      goto nomem;
    if (C <= BEIT_METRICS_CONFUSION_MAX && !(m->confusion = calloc(C * C, sizeof *m->confusion)))
      goto nomem;
  }
  return BEIT_STATUS_OK;
nomem:
  beit_metrics_free(m);
  return beit_error_set(err, BEIT_STATUS_NOMEM, "metrics: out of memory (%zu classes, %zu rows)",
                        C, rows);
}

void beit_metrics_free(struct beit_metrics *m)
{
  free(m->confusion);
  free(m->tp);
  free(m->support);
  free(m->predicted);
  m->tp = m->support = m->predicted = NULL;
  free(m->scores);
  free(m->targets);
  free(m->filled);
  m->confusion = NULL;
  m->scores = NULL;
  m->targets = m->filled = NULL;
}

void beit_metrics_add_multiclass(struct beit_metrics *m, const float *logits,
                                 const int32_t *labels, size_t B)
{
  size_t C = m->C;
  for (size_t b = 0; b < B; b++) {
    const float *x = logits + b * C;
    int32_t t = labels[b];
    if (t < 0 || (size_t)t >= C)
      continue; /* the loader validates labels; nothing to count */
    size_t best = 0, rank = 0;
    double mx = x[0];
    for (size_t c = 0; c < C; c++) {
      if (x[c] > x[best])
        best = c;
      if (x[c] > mx)
        mx = x[c];
      rank += x[c] > x[t] || (x[c] == x[t] && c < (size_t)t);
    }
    double se = 0.0;
    for (size_t c = 0; c < C; c++)
      se += exp((double)x[c] - mx);
    m->loss_sum += mx + log(se) - (double)x[t];
    if (m->confusion)
      m->confusion[(size_t)t * C + best] += 1.0;
    m->support[t] += 1.0;
    m->predicted[best] += 1.0;
    m->tp[t] += best == (size_t)t;
    m->top1 += best == (size_t)t;
    m->topk_hits += rank < m->topk;
    m->count += 1.0;
  }
}

void beit_metrics_add_multilabel(struct beit_metrics *m, const float *logits,
                                 const float *targets, const int64_t *index, size_t B)
{
  size_t C = m->C;
  for (size_t b = 0; b < B; b++) {
    if (index[b] < 0 || (size_t)index[b] >= m->rows)
      continue;
    size_t r = (size_t)index[b];
    memcpy(m->scores + r * C, logits + b * C, C * sizeof *m->scores);
    for (size_t c = 0; c < C; c++)
      m->targets[r * C + c] = targets[b * C + c] > 0.5f;
    if (!m->filled[r])
      m->count += 1.0;
    m->filled[r] = 1;
  }
}

struct scored {
  float s;
  uint8_t t;
};

static int by_score_desc(const void *a, const void *b)
{
  float x = ((const struct scored *)a)->s, y = ((const struct scored *)b)->s;
  return (x < y) - (x > y);
}

double beit_average_precision(const float *scores, const uint8_t *targets, size_t n,
                              size_t stride)
{
  size_t positives = 0;
  for (size_t i = 0; i < n; i++)
    positives += targets[i * stride] != 0;
  if (!positives)
    return NAN;
  struct scored *v = malloc(n * sizeof *v);
  if (!v)
    return NAN;
  for (size_t i = 0; i < n; i++) {
    v[i].s = scores[i * stride];
    v[i].t = targets[i * stride] != 0;
  }
  qsort(v, n, sizeof *v, by_score_desc);
  double ap = 0.0, tp = 0.0, fp = 0.0, prev_recall = 0.0;
  for (size_t i = 0; i < n;) {
    size_t j = i; /* one threshold per distinct score */
    while (j < n && v[j].s == v[i].s) {
      tp += v[j].t;
      fp += !v[j].t;
      j++;
    }
    double recall = tp / (double)positives, precision = tp / (tp + fp);
    ap += (recall - prev_recall) * precision;
    prev_recall = recall;
    i = j;
  }
  free(v);
  return ap;
}

static double ratio(double a, double b) { return b > 0 ? a / b : NAN; }

/* Mean of the defined (non-NaN) values; *count gets how many. */
static double mean_defined(const struct beit_class_metrics *cls, size_t C, size_t offset,
                           size_t *count)
{
  double s = 0;
  size_t n = 0;
  for (size_t c = 0; c < C; c++) {
    double v = *(const double *)((const char *)&cls[c] + offset);
    if (!isnan(v)) {
      s += v;
      n++;
    }
  }
  *count = n;
  return n ? s / (double)n : NAN;
}

static void finish_classes(struct beit_metrics_report *r)
{
  for (size_t c = 0; c < r->C; c++) {
    struct beit_class_metrics *k = &r->cls[c];
    double fp = k->predicted - k->tp, fn = k->support - k->tp;
    k->precision = ratio(k->tp, k->predicted);
    k->recall = ratio(k->tp, k->support);
    k->f1 = ratio(2.0 * k->tp, 2.0 * k->tp + fp + fn);
  }
  r->macro_precision = mean_defined(r->cls, r->C, offsetof(struct beit_class_metrics, precision),
                                    &r->classes_precision);
  r->macro_recall = mean_defined(r->cls, r->C, offsetof(struct beit_class_metrics, recall),
                                 &r->classes_recall);
  r->macro_f1 = mean_defined(r->cls, r->C, offsetof(struct beit_class_metrics, f1),
                             &r->classes_f1);
}

static float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

enum beit_status beit_metrics_report(const struct beit_metrics *m,
                                     struct beit_metrics_report *r, struct beit_error *err)
{
  size_t C = m->C;
  memset(r, 0, sizeof *r);
  r->multilabel = m->multilabel;
  r->C = C;
  r->topk = m->topk;
  r->threshold = m->threshold;
  r->samples = m->count;
  r->map = r->micro_f1 = r->subset_accuracy = NAN;
  r->cls = calloc(C, sizeof *r->cls);
  if (!r->cls)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "metrics report: out of memory");
  if (!m->multilabel) {
    r->confusion = m->confusion;
    r->top1 = ratio(m->top1, m->count);
    r->topk_acc = ratio(m->topk_hits, m->count);
    r->log_loss = ratio(m->loss_sum, m->count);
    for (size_t c = 0; c < C; c++) {
      r->cls[c].support = m->support[c];
      r->cls[c].predicted = m->predicted[c];
      r->cls[c].tp = m->tp[c];
      r->cls[c].ap = NAN;
    }
    finish_classes(r);
    return BEIT_STATUS_OK;
  }
  /* multi-label: compact the filled slots, then per class counts at the threshold and AP */
  size_t n = 0;
  double loss = 0.0, exact = 0.0, tp = 0.0, fp = 0.0, fn = 0.0;
  float *s = malloc((m->count > 0 ? (size_t)m->count : 1) * C * sizeof *s);
  uint8_t *t = malloc((m->count > 0 ? (size_t)m->count : 1) * C);
  if (!s || !t) {
    free(s);
    free(t);
    beit_metrics_report_free(r);
    return beit_error_set(err, BEIT_STATUS_NOMEM, "metrics report: out of memory");
  }
  for (size_t i = 0; i < m->rows; i++) {
    if (!m->filled[i])
      continue;
    memcpy(s + n * C, m->scores + i * C, C * sizeof *s);
    memcpy(t + n * C, m->targets + i * C, C);
    int all = 1;
    for (size_t c = 0; c < C; c++) {
      double x = s[n * C + c];
      int y = t[n * C + c], pred = sigmoidf_((float)x) >= (float)m->threshold;
      loss += (x > 0 ? x : 0) - x * y + log1p(exp(-fabs(x)));
      all &= pred == y;
      r->cls[c].support += y;
      r->cls[c].predicted += pred;
      r->cls[c].tp += pred && y;
      tp += pred && y;
      fp += pred && !y;
      fn += !pred && y;
    }
    exact += all;
    n++;
  }
  for (size_t c = 0; c < C; c++)
    r->cls[c].ap = beit_average_precision(s + c, t + c, n, C);
  free(s);
  free(t);
  finish_classes(r);
  r->log_loss = ratio(loss, (double)n * (double)C);
  r->subset_accuracy = ratio(exact, (double)n);
  r->micro_precision = ratio(tp, tp + fp);
  r->micro_recall = ratio(tp, tp + fn);
  r->micro_f1 = ratio(2.0 * tp, 2.0 * tp + fp + fn);
  r->map = mean_defined(r->cls, C, offsetof(struct beit_class_metrics, ap), &r->classes_ap);
  return BEIT_STATUS_OK;
}

void beit_metrics_report_free(struct beit_metrics_report *r)
{
  free(r->cls);
  r->cls = NULL;
}

static void add_num(cJSON *o, const char *key, double v)
{
  if (isnan(v))
    cJSON_AddNullToObject(o, key);
  else
    cJSON_AddNumberToObject(o, key, v);
}

cJSON *beit_metrics_report_json(const struct beit_metrics_report *r,
                                const char *const *class_names)
{
  cJSON *o = cJSON_CreateObject();
  if (!o)
    return NULL;
  cJSON_AddStringToObject(o, "task", r->multilabel ? "multilabel" : "multiclass");
  cJSON_AddNumberToObject(o, "samples", r->samples);
  cJSON_AddNumberToObject(o, "num_classes", (double)r->C);
  add_num(o, "log_loss", r->log_loss);
  if (!r->multilabel) {
    add_num(o, "top1", r->top1);
    cJSON_AddNumberToObject(o, "topk", (double)r->topk);
    add_num(o, "topk_accuracy", r->topk_acc);
  } else {
    add_num(o, "mAP", r->map);
    cJSON_AddNumberToObject(o, "classes_in_mAP", (double)r->classes_ap);
    cJSON_AddNumberToObject(o, "threshold", r->threshold);
    add_num(o, "micro_precision", r->micro_precision);
    add_num(o, "micro_recall", r->micro_recall);
    add_num(o, "micro_f1", r->micro_f1);
    add_num(o, "subset_accuracy", r->subset_accuracy);
  }
  add_num(o, "macro_precision", r->macro_precision);
  add_num(o, "macro_recall", r->macro_recall);
  add_num(o, "macro_f1", r->macro_f1);
  cJSON_AddNumberToObject(o, "classes_in_macro_f1", (double)r->classes_f1);
  cJSON *per = cJSON_AddArrayToObject(o, "per_class");
  for (size_t c = 0; per && c < r->C; c++) {
    cJSON *k = cJSON_CreateObject();
    if (!k)
      break;
    cJSON_AddNumberToObject(k, "id", (double)c);
    if (class_names && class_names[c])
      cJSON_AddStringToObject(k, "name", class_names[c]);
    cJSON_AddNumberToObject(k, "support", r->cls[c].support);
    cJSON_AddNumberToObject(k, "predicted", r->cls[c].predicted);
    add_num(k, "precision", r->cls[c].precision);
    add_num(k, "recall", r->cls[c].recall);
    add_num(k, "f1", r->cls[c].f1);
    if (r->multilabel)
      add_num(k, "ap", r->cls[c].ap);
    cJSON_AddItemToArray(per, k);
  }
  if (!r->multilabel && r->confusion) {
    cJSON *cm = cJSON_AddArrayToObject(o, "confusion_matrix");
    for (size_t t = 0; cm && t < r->C; t++)
      cJSON_AddItemToArray(cm, cJSON_CreateDoubleArray(r->confusion + t * r->C, (int)r->C));
  }
  return o;
}
