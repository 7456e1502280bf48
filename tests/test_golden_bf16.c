/* Golden test of the bf16 matrix-product path (beit_model_set_precision BF16): the fixtures of
 * tools/golden_encoder.py, first step only (forward, loss, backward), against two references:
 *   - the float64 reference (expected.safetensors): logits and hidden states within 3e-2 of
 *     max |ref| and cosine >= 0.999, loss within 1e-2 relative, every parameter gradient with a
 *     non-zero reference at cosine >= 0.99;
 *   - PyTorch's own mixed precision (autocast.safetensors: the float32 model under
 *     torch.autocast("cpu", bfloat16)): our error against float64 on logits and hidden states may
 *     be at most 2x autocast's error against float64, plus 1e-3.
 * Prints every error and the worst ones. Not a test of the fp32 path (test_golden_encoder).
 * Usage: test_golden_bf16 FIXTURE_DIR CASE... ; exits 77 (skipped) on a machine without bf16
 * matrix products, non-zero on any miss. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "beit/precision.h"
#include "config_table.h"
#include "encoder.h"
#include "safetensors.h"
#include "testing.h"

#define FIXTURE_BATCH 3   /* tools/golden_encoder.py BATCH */
#define TOL_OUT_REL 3e-2  /* logits, hidden: max |err| / max |ref| against float64 */
#define TOL_OUT_COS 0.999 /* logits, hidden: cosine against float64 */
#define TOL_LOSS 1e-2     /* loss: relative error against float64 */
#define TOL_GRAD_COS 0.99 /* each gradient: cosine against float64 */
#define AUTOCAST_FACTOR 2.0 /* logits, hidden: our error <= factor x autocast's error + slack */
#define AUTOCAST_SLACK 1e-3

/* The worst values over all cases, printed at the end so that they can be quoted. */
static struct {
  double out_rel, out_cos, loss_rel, grad_cos, ratio;
  char out_rel_at[128], out_cos_at[128], loss_at[128], grad_at[256], ratio_at[128];
  size_t grads_compared, grads_skipped;
} worst = {0.0, 1.0, 0.0, 1.0, 0.0, "", "", "", "", "", 0, 0};

/* max |a - ref| / max |ref| (ref all zero: the max |a - ref| itself) */
static double max_rel(const float *a, const float *ref, size_t n)
{
  double maxref = 0.0, maxdiff = 0.0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - (double)ref[i]);
    maxdiff = d > maxdiff || isnan(d) ? d : maxdiff;
    maxref = fmax(maxref, fabs((double)ref[i]));
  }
  return maxref > 0.0 ? maxdiff / maxref : maxdiff;
}

/* cosine of the angle between a and b in double; 0 when either is all zero, NaN if non-finite */
static double cosine(const float *a, const float *b, size_t n)
{
  double ab = 0.0, aa = 0.0, bb = 0.0;
  for (size_t i = 0; i < n; i++) {
    ab += (double)a[i] * b[i];
    aa += (double)a[i] * a[i];
    bb += (double)b[i] * b[i];
  }
  return aa > 0.0 && bb > 0.0 ? ab / sqrt(aa * bb) : (isfinite(aa) ? 0.0 : NAN);
}

static void note_max(double v, double *at, char *label, size_t size, const char *what)
{
  if (v > *at || isnan(v)) {
    *at = v;
    snprintf(label, size, "%s", what);
  }
}

static void note_min(double v, double *at, char *label, size_t size, const char *what)
{
  if (v < *at || isnan(v)) {
    *at = v;
    snprintf(label, size, "%s", what);
  }
}

/* One output (logits or hidden) of n values: C bf16 (got), float64 (want), autocast (ac). */
static void check_output(const char *label, const float *got, const float *want, const float *ac,
                         size_t n)
{
  double rel = max_rel(got, want, n), cos = cosine(got, want, n);
  double ac_rel = max_rel(ac, want, n), ac_cos = cosine(ac, want, n);
  printf("  %-28s C/fp64 rel %.3e cos %.7f | C/autocast rel %.3e cos %.7f | "
         "autocast/fp64 rel %.3e cos %.7f\n", label, rel, cos, max_rel(got, ac, n),
         cosine(got, ac, n), ac_rel, ac_cos);
  CHECK_MSG(rel <= TOL_OUT_REL, "%s: max rel err %.3e against float64 (tol %.1e)", label, rel,
            TOL_OUT_REL);
  CHECK_MSG(cos >= TOL_OUT_COS, "%s: cosine %.7f against float64 (min %.3f)", label, cos,
            TOL_OUT_COS);
  double bound = AUTOCAST_FACTOR * ac_rel + AUTOCAST_SLACK;
  CHECK_MSG(rel <= bound, "%s: error %.3e against float64 exceeds %.0fx autocast's %.3e + %.0e",
            label, rel, AUTOCAST_FACTOR, ac_rel, AUTOCAST_SLACK);
  note_max(rel, &worst.out_rel, worst.out_rel_at, sizeof worst.out_rel_at, label);
  note_min(cos, &worst.out_cos, worst.out_cos_at, sizeof worst.out_cos_at, label);
  note_max(ac_rel > 0.0 ? rel / ac_rel : INFINITY, &worst.ratio, worst.ratio_at,
           sizeof worst.ratio_at, label);
}

/* logits and hidden of the last forward against expected.safetensors and autocast.safetensors */
static void check_outputs(const char *name, const struct beit_model *m,
                          const struct beit_safetensors *exp,
                          const struct beit_safetensors *ac)
{
  static const char *const names[] = {"logits", "hidden"};
  const float *got[] = {m->a.logits, m->a.hidden};
  const size_t numel[] = {m->M * m->out_dim, m->B * m->T * m->D};
  char label[128];
  for (size_t k = 0; k < 2; k++) {
    size_t n = 0, n_ac = 0;
    float *want = test_read_f32(exp, names[k], 1, &n);
    float *want_ac = test_read_f32(ac, names[k], 1, &n_ac);
    snprintf(label, sizeof label, "%s %s", name, names[k]);
    CHECK_MSG(!want || !want_ac || (n == numel[k] && n_ac == numel[k]),
              "%s: %zu values, reference %zu, autocast %zu", label, numel[k], n, n_ac);
    if (want && want_ac && n == numel[k] && n_ac == numel[k])
      check_output(label, got[k], want, want_ac, n);
    free(want);
    free(want_ac);
  }
}

static double scalar_rel(double a, double ref) { return fabs(a - ref) / fmax(fabs(ref), 1e-12); }

static void check_loss(const char *name, double loss, const struct beit_safetensors *exp,
                       const struct beit_safetensors *ac)
{
  char label[128];
  float *want = test_read_f32(exp, "loss", 1, NULL), *want_ac = test_read_f32(ac, "loss", 1, NULL);
  if (want && want_ac) {
    double rel = scalar_rel(loss, want[0]), ac_rel = scalar_rel(want_ac[0], want[0]);
    snprintf(label, sizeof label, "%s loss", name);
    printf("  %-28s C %.7f fp64 %.7f autocast %.7f | C/fp64 rel %.3e | C/autocast rel %.3e | "
           "autocast/fp64 rel %.3e\n", label, loss, want[0], want_ac[0], rel,
           scalar_rel(loss, want_ac[0]), ac_rel);
    CHECK_MSG(rel <= TOL_LOSS, "%s: got %.7f want %.7f (rel %.3e, tol %.1e)", label, loss,
              want[0], rel, TOL_LOSS);
    note_max(rel, &worst.loss_rel, worst.loss_at, sizeof worst.loss_at, label);
  }
  free(want);
  free(want_ac);
}

/* Every parameter gradient: cosine against float64 (tensors whose reference is exactly zero are
 * skipped: no direction to compare); per case one summary line of the three comparisons. */
static void check_grads(const char *name, const struct beit_model *m,
                        const struct beit_safetensors *exp, const struct beit_safetensors *ac)
{
  char key[256], label[320];
  size_t compared = 0, skipped = 0;
  double min_cos = 1.0, min_cos_ac = 1.0, min_cos_c_ac = 1.0, max_rel_c = 0.0, max_rel_ac = 0.0;
  char min_at[256] = "", min_ac_at[256] = "";
  for (size_t i = 0; i < m->table.count; i++) {
    const struct beit_tensor *t = &m->table.items[i];
    const float *got = m->grads + t->offset;
    size_t n = 0, n_ac = 0;
    snprintf(key, sizeof key, "grad.%s", t->name);
    float *want = test_read_f32(exp, key, 1, &n), *want_ac = test_read_f32(ac, key, 1, &n_ac);
    CHECK_MSG(!want || !want_ac || (n == t->numel && n_ac == t->numel),
              "%s %s: %zu values, reference %zu, autocast %zu", name, key, t->numel, n, n_ac);
    if (want && want_ac && n == t->numel && n_ac == t->numel) {
      double norm = 0.0;
      for (size_t j = 0; j < n; j++)
        norm += (double)want[j] * want[j];
      if (norm == 0.0) {
        skipped++;
      } else {
        double cos = cosine(got, want, n), cos_ac = cosine(want_ac, want, n);
        snprintf(label, sizeof label, "%s %s", name, key);
        CHECK_MSG(cos >= TOL_GRAD_COS, "%s: cosine %.6f against float64 (min %.2f; autocast %.6f)",
                  label, cos, TOL_GRAD_COS, cos_ac);
        note_min(cos, &min_cos, min_at, sizeof min_at, t->name);
        note_min(cos_ac, &min_cos_ac, min_ac_at, sizeof min_ac_at, t->name);
        min_cos_c_ac = fmin(min_cos_c_ac, cosine(got, want_ac, n));
        max_rel_c = fmax(max_rel_c, max_rel(got, want, n));
        max_rel_ac = fmax(max_rel_ac, max_rel(want_ac, want, n));
        note_min(cos, &worst.grad_cos, worst.grad_at, sizeof worst.grad_at, label);
        compared++;
      }
    }
    free(want);
    free(want_ac);
  }
  CHECK_MSG(compared > 0, "%s: no gradient compared", name);
  printf("  %-28s %zu compared, %zu skipped (zero reference)\n", "gradients", compared, skipped);
  printf("  %-28s C/fp64 min cos %.7f (%s), max rel %.3e | C/autocast min cos %.7f | "
         "autocast/fp64 min cos %.7f (%s), max rel %.3e\n", "", min_cos, min_at, max_rel_c,
         min_cos_c_ac, min_cos_ac, min_ac_at, max_rel_ac);
  worst.grads_compared += compared;
  worst.grads_skipped += skipped;
}

static float label_smoothing(const char *dir)
{
  cJSON *train = test_read_json(dir, "train.json", NULL);
  if (!train)
    return NAN;
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(train, "label_smoothing");
  CHECK_MSG(cJSON_IsNumber(v), "%s/train.json: missing number 'label_smoothing'", dir);
  float s = cJSON_IsNumber(v) ? (float)v->valuedouble : NAN;
  cJSON_Delete(train);
  return s;
}

static void run_case(const char *root, const char *name)
{
  char dir[4096];
  struct beit_error err = {0};
  struct beit_model *m = NULL;
  struct beit_safetensors *exp = NULL, *ac = NULL;
  struct test_golden_inputs in;
  int failures_before = beit_test_failures;
  snprintf(dir, sizeof dir, "%s/%s", root, name);
  printf("%s\n", name);

  float smoothing = label_smoothing(dir);
  if (isnan(smoothing))
    goto done;
  if (beit_model_load(&m, dir, FIXTURE_BATCH, &err) ||
      beit_model_set_precision(m, BEIT_PRECISION_BF16, &err)) {
    CHECK_MSG(0, "%s: %s", name, err.message);
    goto done;
  }
  CHECK_MSG(beit_model_precision(m) == BEIT_PRECISION_BF16, "%s: precision %s after set", name,
            beit_precision_name(beit_model_precision(m)));
  if (!(exp = test_open_fixture(dir, "expected.safetensors")) ||
      !(ac = test_open_fixture(dir, "autocast.safetensors")))
    goto done;
  if (!test_golden_inputs_load(&in, dir, m->L, m->max_batch, m->multilabel))
    goto done;

  /* the first step of test_golden_encoder: forward, loss, backward */
  if (beit_model_forward(m, in.pixels, in.mask, in.drop, m->max_batch, &err)) {
    CHECK_MSG(0, "%s: forward: %s", name, err.message);
    goto free_inputs;
  }
  double loss = beit_model_loss(m, in.labels, in.multi, smoothing, NULL);
  check_outputs(name, m, exp, ac);
  check_loss(name, loss, exp, ac);
  beit_model_zero_grad(m);
  beit_model_backward(m, 1.0f);
  check_grads(name, m, exp, ac);
  printf("  %s\n", beit_test_failures == failures_before ? "ok" : "MISMATCH");

free_inputs:
  test_golden_inputs_free(&in);
done:
  beit_safetensors_close(ac);
  beit_safetensors_close(exp);
  beit_model_free(m);
}

int main(int argc, char **argv)
{
  if (test_usage(argc, argv, 2, "FIXTURE_DIR CASE..."))
    return 2;
  if (test_bf16_missing("test_golden_bf16"))
    return TEST_SKIP; /* ctest SKIP_RETURN_CODE (tests/encoder.cmake) */
  char backend[256];
  beit_precision_describe(backend, sizeof backend);
  printf("bf16 backend: %s\n", backend);
  for (int i = 2; i < argc; i++)
    run_case(argv[1], argv[i]);
  printf("worst over %d cases: logits/hidden max rel err %.3e (%s), min cosine %.7f (%s); "
         "loss max rel err %.3e (%s); gradients min cosine %.7f (%s) over %zu compared, "
         "%zu skipped; C/fp64 error over autocast/fp64 error at most %.2f (%s)\n",
         argc - 2, worst.out_rel, worst.out_rel_at, worst.out_cos, worst.out_cos_at,
         worst.loss_rel, worst.loss_at, worst.grad_cos, worst.grad_at, worst.grads_compared,
         worst.grads_skipped, worst.ratio, worst.ratio_at);
  return test_summary("golden_bf16");
}
