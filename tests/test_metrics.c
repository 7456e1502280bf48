/* mim/metrics: every number against values computed by hand (in the comments), including tied
 * logits, classes never predicted, classes with no positives, and tied scores in AP. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "metrics.h"
#include "testing.h"

#define EXACT(got, want) CHECK_MSG(fabs((got) - (want)) < 1e-12, "%s = %.15g, want %.15g", #got, \
                                   (double)(got), (double)(want))
#define UNDEF(got) CHECK_MSG(isnan(got), "%s = %g, want undefined", #got, (double)(got))

static double lse(const float *x, int n)
{
  double s = 0;
  for (int i = 0; i < n; i++)
    s += exp((double)x[i]);
  return log(s);
}

static void test_multiclass(void)
{
  /* 6 classes (top-k = 5), 5 samples; ties go to the lower class index.
   * s0 [2 2 1 0 0 0] label 1: argmax 0 (tie with 1); rank of 1 = 1 -> top-5 hit
   * s1 [0 0 0 0 0 0] label 5: argmax 0; rank of 5 = 5 (five equal, lower index) -> top-5 miss
   * s2 [0 1 2 3 4 5] label 5: right
   * s3 [5 4 3 2 1 0] label 4: argmax 0; rank 4 -> top-5 hit
   * s4 [0 0 3 0 0 0] label 2: right
   * top-1 2/5, top-5 4/5. Confusion (true, pred): (1,0) (5,0) (5,5) (4,0) (2,2).
   * class 0: support 0, predicted 3 -> P 0, R undefined, F1 0/(0+3+0) = 0
   * class 1: support 1, predicted 0 -> P undefined, R 0, F1 0
   * class 2: support 1, predicted 1, tp 1 -> 1, 1, 1
   * class 3: neither -> all undefined
   * class 4: support 1, predicted 0 -> P undefined, R 0, F1 0
   * class 5: support 2, predicted 1, tp 1 -> P 1, R 1/2, F1 2/3
   * macro P over {0,2,5} = 2/3; macro R over {1,2,4,5} = 3/8; macro F1 over {0,1,2,4,5} = 1/3 */
  const float logits[5][6] = {{2, 2, 1, 0, 0, 0}, {0, 0, 0, 0, 0, 0}, {0, 1, 2, 3, 4, 5},
                              {5, 4, 3, 2, 1, 0}, {0, 0, 3, 0, 0, 0}};
  const int32_t labels[5] = {1, 5, 5, 4, 2};
  struct beit_metrics m;
  struct beit_metrics_report r;
  CHECK(beit_metrics_init(&m, 6, 0, 0, 0.5, NULL) == BEIT_STATUS_OK);
  beit_metrics_add_multiclass(&m, &logits[0][0], labels, 2); /* in two parts: order-free */
  beit_metrics_add_multiclass(&m, &logits[2][0], labels + 2, 3);
  CHECK(beit_metrics_report(&m, &r, NULL) == BEIT_STATUS_OK);
  EXACT(r.samples, 5);
  CHECK(r.topk == 5);
  EXACT(r.top1, 0.4);
  EXACT(r.topk_acc, 0.8);
  double want_loss = 0;
  for (int i = 0; i < 5; i++)
    want_loss += lse(logits[i], 6) - logits[i][labels[i]];
  CHECK(fabs(r.log_loss - want_loss / 5) < 1e-12);
  EXACT(r.confusion[1 * 6 + 0], 1);
  EXACT(r.confusion[5 * 6 + 0], 1);
  EXACT(r.confusion[5 * 6 + 5], 1);
  EXACT(r.confusion[4 * 6 + 0], 1);
  EXACT(r.confusion[2 * 6 + 2], 1);
  double total = 0;
  for (int i = 0; i < 36; i++)
    total += r.confusion[i];
  EXACT(total, 5);
  EXACT(r.cls[0].precision, 0);
  UNDEF(r.cls[0].recall);
  EXACT(r.cls[0].f1, 0);
  UNDEF(r.cls[1].precision);
  EXACT(r.cls[1].recall, 0);
  EXACT(r.cls[1].f1, 0);
  EXACT(r.cls[2].precision, 1);
  EXACT(r.cls[2].recall, 1);
  EXACT(r.cls[2].f1, 1);
  UNDEF(r.cls[3].precision);
  UNDEF(r.cls[3].recall);
  UNDEF(r.cls[3].f1);
  EXACT(r.cls[5].precision, 1);
  EXACT(r.cls[5].recall, 0.5);
  EXACT(r.cls[5].f1, 2.0 / 3.0);
  EXACT(r.macro_precision, 2.0 / 3.0);
  CHECK(r.classes_precision == 3);
  EXACT(r.macro_recall, 3.0 / 8.0);
  CHECK(r.classes_recall == 4);
  EXACT(r.macro_f1, 1.0 / 3.0);
  CHECK(r.classes_f1 == 5);
  cJSON *j = beit_metrics_report_json(&r, NULL);
  char *text = cJSON_PrintUnformatted(j);
  CHECK(strstr(text, "\"recall\":null") != NULL); /* undefined is null, not 0 */
  CHECK(strstr(text, "\"confusion_matrix\":[[0,0,0,0,0,0],[1,0,0,0,0,0]") != NULL);
  cJSON_free(text);
  cJSON_Delete(j);
  beit_metrics_report_free(&r);
  beit_metrics_free(&m);

  /* fewer than 5 classes: top-k is top-C, always 1 */
  const float two[2][2] = {{0, 1}, {1, 1}};
  const int32_t l2[2] = {0, 1};
  CHECK(beit_metrics_init(&m, 2, 0, 0, 0.5, NULL) == BEIT_STATUS_OK);
  beit_metrics_add_multiclass(&m, &two[0][0], l2, 2);
  CHECK(beit_metrics_report(&m, &r, NULL) == BEIT_STATUS_OK);
  CHECK(r.topk == 2);
  EXACT(r.top1, 0.0); /* s1 ties 1 == 1: argmax is class 0 */
  EXACT(r.topk_acc, 1.0);
  beit_metrics_report_free(&r);
  beit_metrics_free(&m);
}

static void test_average_precision(void)
{
  /* scores 0.9 0.5 0.5 0.1, targets 1 0 1 0: thresholds 0.9 (P 1, R 1/2), 0.5 (tied: P 2/3,
   * R 1), 0.1 (P 1/2, R 1): AP = 1/2 * 1 + 1/2 * 2/3 = 5/6 */
  const float s[4] = {0.9f, 0.5f, 0.5f, 0.1f};
  const uint8_t t[4] = {1, 0, 1, 0}, none[4] = {0, 0, 0, 0}, all[4] = {1, 1, 1, 1};
  EXACT(beit_average_precision(s, t, 4, 1), 5.0 / 6.0);
  UNDEF(beit_average_precision(s, none, 4, 1));
  EXACT(beit_average_precision(s, all, 4, 1), 1.0);
  /* positives ranked last: 0.1 only -> P 1/4 at R 1 */
  const uint8_t last[4] = {0, 0, 0, 1};
  EXACT(beit_average_precision(s, last, 4, 1), 0.25);
  /* all scores tied: one threshold, AP = positive rate */
  const float flat[4] = {0, 0, 0, 0};
  EXACT(beit_average_precision(flat, t, 4, 1), 0.5);
}

static void test_multilabel(void)
{
  /* 3 classes, 5 samples, threshold 0.5 (logit >= 0 is present; sigmoid(0) = 0.5 counts):
   *      logits          targets   predicted
   * s0   2  -1   0       1 0 0     1 0 1
   * s1   0   1  -3       0 1 0     1 1 0
   * s2   0  -2   1       1 0 0     1 0 1
   * s3  -1   1   2       0 1 0     0 1 1
   * s4  -3  -3  -3       0 0 0     0 0 0   (the only exact row: subset accuracy 1/5)
   * class 0: scores 2 0 0 -1 -3, targets 1 0 1 0 0 -> AP 5/6 (tie at 0); support 2,
   *          predicted 3, tp 2 -> P 2/3, R 1, F1 4/5
   * class 1: scores -1 1 -2 1 -3, targets 0 1 0 1 0 -> AP 1 (tied positives first); P R F1 1
   * class 2: no positives -> AP and recall undefined, predicted 3 -> P 0, F1 0
   * mAP over {0, 1} = 11/12; micro tp 4 fp 4 fn 0 -> P 1/2, R 1, F1 2/3;
   * macro F1 (4/5 + 1 + 0)/3 = 3/5, macro P (2/3 + 1 + 0)/3 = 5/9, macro R over {0,1} = 1 */
  const float logits[5][3] = {{2, -1, 0}, {0, 1, -3}, {0, -2, 1}, {-1, 1, 2}, {-3, -3, -3}};
  const float targets[5][3] = {{1, 0, 0}, {0, 1, 0}, {1, 0, 0}, {0, 1, 0}, {0, 0, 0}};
  const int64_t idx_a[2] = {3, 0}, idx_b[3] = {4, 1, 2};
  const float la[2][3] = {{-1, 1, 2}, {2, -1, 0}}, ta[2][3] = {{0, 1, 0}, {1, 0, 0}};
  const float lb[3][3] = {{-3, -3, -3}, {0, 1, -3}, {0, -2, 1}};
  const float tb[3][3] = {{0, 0, 0}, {0, 1, 0}, {1, 0, 0}};
  struct beit_metrics m;
  struct beit_metrics_report r;
  CHECK(beit_metrics_init(&m, 3, 1, 8, 0.5, NULL) == BEIT_STATUS_OK);
  beit_metrics_add_multilabel(&m, &la[0][0], &ta[0][0], idx_a, 2); /* slots out of order */
  beit_metrics_add_multilabel(&m, &lb[0][0], &tb[0][0], idx_b, 3);
  CHECK(beit_metrics_report(&m, &r, NULL) == BEIT_STATUS_OK);
  EXACT(r.samples, 5);
  EXACT(r.cls[0].ap, 5.0 / 6.0);
  EXACT(r.cls[1].ap, 1.0);
  UNDEF(r.cls[2].ap);
  EXACT(r.map, 11.0 / 12.0);
  CHECK(r.classes_ap == 2);
  EXACT(r.cls[0].precision, 2.0 / 3.0);
  EXACT(r.cls[0].recall, 1.0);
  EXACT(r.cls[0].f1, 0.8);
  EXACT(r.cls[2].precision, 0.0);
  UNDEF(r.cls[2].recall);
  EXACT(r.cls[2].f1, 0.0);
  EXACT(r.micro_precision, 0.5);
  EXACT(r.micro_recall, 1.0);
  EXACT(r.micro_f1, 2.0 / 3.0);
  EXACT(r.macro_f1, 0.6);
  EXACT(r.macro_precision, 5.0 / 9.0);
  EXACT(r.macro_recall, 1.0);
  EXACT(r.subset_accuracy, 0.2);
  double want = 0;
  for (int i = 0; i < 5; i++)
    for (int c = 0; c < 3; c++) {
      double x = logits[i][c], y = targets[i][c];
      want += -(y * log(1 / (1 + exp(-x))) + (1 - y) * log(1 - 1 / (1 + exp(-x))));
    }
  CHECK(fabs(r.log_loss - want / 15) < 1e-12);
  beit_metrics_report_free(&r);

  /* a stricter threshold: 0.6 (logit >= 0.405): s0 c2, s1 c0, s2 c0 drop out */
  m.threshold = 0.6;
  CHECK(beit_metrics_report(&m, &r, NULL) == BEIT_STATUS_OK);
  EXACT(r.cls[0].predicted, 1);  /* s0 only */
  EXACT(r.cls[2].predicted, 2);  /* s2, s3 */
  EXACT(r.subset_accuracy, 3.0 / 5.0); /* s0, s1 and s4 */
  EXACT(r.map, 11.0 / 12.0);     /* AP does not depend on the threshold */
  beit_metrics_report_free(&r);
  beit_metrics_free(&m);
}

int main(void)
{
  test_multiclass();
  test_average_precision();
  test_multilabel();
  return test_summary("test_metrics");
}
