/* Gradient checks of the tokenizer's hand-written backward passes (STYLE.md 5): the Gumbel-
 * softmax relaxation, the KL to the uniform prior, both reconstruction terms, and the whole
 * dVAE (encoder, relaxation, decoder, loss) on a tiny odd-shaped model, each against central
 * differences with a scale-free error (max |analytic - numeric| / max |numeric|).
 *
 * The scalar of the loss kernels is accumulated in double from fp32 values; eps 1e-3 keeps the
 * fp32 rounding well under the tolerance. For the whole model (ReLUs and max-pools make it
 * piecewise smooth) a few coordinates per tensor are checked, skipping those whose one-sided
 * slopes disagree (a kink inside +-eps); most must pass. The whole model is checked with the MSE
 * term: the logit-Laplace loss is O(1) while its parameter gradients are ~1e-5, below what fp32
 * central differences resolve; its kernel is checked above and the whole model with it against
 * the fp64 PyTorch reference in test_tokenizer_golden. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "dvae.h"
#include "testing.h"

static struct beit_rng rng;

static float *randn_owned(size_t n, float scale, float offset)
{
  float *p = malloc((n ? n : 1) * sizeof *p);
  for (size_t i = 0; i < n; i++)
    p[i] = offset + scale * (float)beit_rng_normal(&rng);
  return p;
}

static float *zeros_owned(size_t n)
{
  return calloc(n ? n : 1, sizeof(float));
}

static double dot(const float *a, const float *r, size_t n)
{
  double s = 0.0;
  for (size_t i = 0; i < n; i++)
    s += (double)a[i] * r[i];
  return s;
}

/* ---- Gumbel-softmax: L = sum r * soft ---- */
static double check_gumbel_softmax(void)
{
  const size_t B = 2, V = 7, P = 5, n = B * V * P;
  const float tau = 0.6f;
  float *logits = randn_owned(n, 1.0f, 0.0f), *noise = randn_owned(n, 0.5f, 0.0f), *r = randn_owned(n, 1.0f, 0.0f);
  float *soft = zeros_owned(n), *d = zeros_owned(n), *num = zeros_owned(n), *tmp = zeros_owned(n);
  beit_dvae_gumbel_softmax_forward(soft, logits, noise, tau, B, V, P);
  beit_dvae_gumbel_softmax_backward(d, r, soft, tau, B, V, P);
  const float eps = 1e-3f;
  for (size_t i = 0; i < n; i++) {
    const float keep = logits[i];
    logits[i] = keep + eps;
    beit_dvae_gumbel_softmax_forward(tmp, logits, noise, tau, B, V, P);
    double lp = dot(tmp, r, n);
    logits[i] = keep - eps;
    beit_dvae_gumbel_softmax_forward(tmp, logits, noise, tau, B, V, P);
    double lm = dot(tmp, r, n);
    logits[i] = keep;
    num[i] = (float)((lp - lm) / (2.0 * eps));
  }
  /* softmax columns sum to 1 */
  double worst_sum = 0.0;
  for (size_t b = 0; b < B; b++)
    for (size_t p = 0; p < P; p++) {
      double s = 0.0;
      for (size_t v = 0; v < V; v++)
        s += soft[(b * V + v) * P + p];
      worst_sum = fmax(worst_sum, fabs(s - 1.0));
    }
  CHECK(worst_sum < 1e-6);
  double e = check_close("gradcheck gumbel_softmax", d, num, n, 2e-3);
  printf("%-48s rel err %.2e\n", "gradcheck gumbel_softmax", e);
  free(logits), free(noise), free(r), free(soft), free(d), free(num), free(tmp);
  return e;
}

/* ---- KL(softmax(logits) || uniform) summed over positions ---- */
static double check_kl(void)
{
  const size_t B = 2, V = 9, P = 3, n = B * V * P;
  float *logits = randn_owned(n, 1.5f, 0.0f), *d = zeros_owned(n), *num = zeros_owned(n);
  const float dscale = 0.8f;
  double kl = beit_dvae_kl_uniform(d, logits, dscale, B, V, P);
  /* against a direct double evaluation */
  double want = 0.0;
  for (size_t b = 0; b < B; b++)
    for (size_t p = 0; p < P; p++) {
      double mx = -INFINITY, s = 0.0, e = 0.0;
      for (size_t v = 0; v < V; v++)
        mx = fmax(mx, logits[(b * V + v) * P + p]);
      for (size_t v = 0; v < V; v++)
        s += exp(logits[(b * V + v) * P + p] - mx);
      for (size_t v = 0; v < V; v++) {
        double q = exp(logits[(b * V + v) * P + p] - mx) / s;
        e += q * log(q);
      }
      want += e + log((double)V);
    }
  CHECK_MSG(fabs(kl - want) < 1e-5 * fabs(want), "kl %.9f want %.9f", kl, want);
  const float eps = 1e-3f;
  for (size_t i = 0; i < n; i++) {
    const float keep = logits[i];
    logits[i] = keep + eps;
    double lp = beit_dvae_kl_uniform(NULL, logits, 0.0f, B, V, P);
    logits[i] = keep - eps;
    double lm = beit_dvae_kl_uniform(NULL, logits, 0.0f, B, V, P);
    logits[i] = keep;
    num[i] = (float)(dscale * (lp - lm) / (2.0 * eps));
  }
  double e = check_close("gradcheck kl_uniform", d, num, n, 2e-3);
  printf("%-48s rel err %.2e\n", "gradcheck kl_uniform", e);
  free(logits), free(d), free(num);
  return e;
}

/* ---- reconstruction terms (mean over pixels) ---- */
static double check_recon(enum dvae_recon kind)
{
  const size_t B = 2, C = 3, HW = 10, oc = kind == DVAE_RECON_LOGIT_LAPLACE ? 2 * C : C;
  const size_t n = B * oc * HW;
  float *out = randn_owned(n, 1.0f, 0.0f), *x = zeros_owned(B * C * HW), *d = zeros_owned(n), *num = zeros_owned(n);
  for (size_t i = 0; i < B * C * HW; i++)
    x[i] = 0.1f + 0.8f * (float)beit_rng_uniform(&rng);
  const float dscale = 1.3f;
  double mae;
  beit_dvae_recon_loss(d, &mae, out, x, kind, dscale, B, C, HW);
  CHECK(mae > 0.0 && mae < 1.0);
  const float eps = 1e-3f;
  size_t used = 0;
  float *ana = zeros_owned(n);
  for (size_t i = 0; i < n; i++) {
    const float keep = out[i];
    out[i] = keep + eps;
    double lp = beit_dvae_recon_loss(NULL, NULL, out, x, kind, 0.0f, B, C, HW);
    out[i] = keep - eps;
    double lm = beit_dvae_recon_loss(NULL, NULL, out, x, kind, 0.0f, B, C, HW);
    out[i] = keep;
    double l0 = beit_dvae_recon_loss(NULL, NULL, out, x, kind, 0.0f, B, C, HW);
    /* |logit x - mu| has a kink: skip a mu within eps of it (one-sided slopes disagree) */
    if (fabs((lp - l0) - (l0 - lm)) > 1e-2 * (fabs(lp - l0) + fabs(l0 - lm)) + 1e-12)
      continue;
    num[used] = (float)(dscale * (lp - lm) / (2.0 * eps));
    ana[used++] = d[i];
  }
  const char *label = kind == DVAE_RECON_MSE ? "gradcheck recon mse" : "gradcheck recon logit-Laplace";
  CHECK(used * 10 >= n * 9);
  double e = check_close(label, ana, num, used, 2e-3);
  printf("%-48s rel err %.2e (%zu of %zu)\n", label, e, used, n);
  free(out), free(x), free(d), free(num), free(ana);
  return e;
}

/* ---- the whole dVAE ---- */
static double model_loss(struct beit_tokenizer *tok, const float *x, const float *noise, size_t B,
                         float tau, float klw)
{
  struct beit_dvae_step_stats st;
  beit_dvae_forward_backward(tok, x, noise, B, tau, klw, &st);
  return st.loss;
}

static double check_model(const char *recon, int nthreads)
{
  omp_set_num_threads(nthreads);
  struct beit_tokenizer_config c;
  struct beit_error err = {0};
  beit_tokenizer_config_defaults(&c);
  c.input_channels = 2;
  c.n_hid = 4;
  c.group_count = 2;
  c.n_blk_per_group = 2;
  c.vocab_size = 5;
  c.downsample = 2;
  c.n_init = 3;
  c.image_size = 6;
  strcpy(c.recon_loss, recon);
  struct beit_tokenizer *tok = NULL;
  if (beit_tokenizer_create(&tok, &c, 3, 21, &err) || beit_dvae_train_init(tok, 3, &err)) {
    fprintf(stderr, "%s\n", err.message);
    CHECK(!"create");
    return 1.0;
  }
  for (size_t i = 0; i < tok->table.count; i++) /* biases too */
    if (tok->table.items[i].ndim == 1)
      for (size_t j = 0; j < tok->table.items[i].numel; j++)
        tok->params[tok->table.items[i].offset + j] = 0.1f * (float)beit_rng_normal(&rng);
  const size_t B = 3, n = B * 2 * 6 * 6;
  float *x = zeros_owned(n);
  for (size_t i = 0; i < n; i++)
    x[i] = 0.1f + 0.8f * (float)beit_rng_uniform(&rng);
  float *noise = randn_owned(B * 5 * 3 * 3, 1.0f, 0.0f);
  const float tau = 0.8f, klw = 2.0f;
  model_loss(tok, x, noise, B, tau, klw);
  float *grads = malloc(tok->table.total * sizeof *grads);
  memcpy(grads, tok->grads, tok->table.total * sizeof *grads);

  const float eps = 1e-3f;
  float *ana = zeros_owned(3 * tok->table.count), *num = zeros_owned(3 * tok->table.count);
  size_t checked = 0, skipped = 0;
  for (size_t t = 0; t < tok->table.count; t++) {
    const struct beit_tensor *ten = &tok->table.items[t];
    for (size_t s = 0; s < 3 && s < ten->numel; s++) {
      const size_t j = ten->offset + (s * 7919 + t) % ten->numel;
      const float keep = tok->params[j];
      tok->params[j] = keep + eps;
      double lp = model_loss(tok, x, noise, B, tau, klw);
      tok->params[j] = keep - eps;
      double lm = model_loss(tok, x, noise, B, tau, klw);
      tok->params[j] = keep;
      double l0 = model_loss(tok, x, noise, B, tau, klw);
      double sp = (lp - l0) / eps, sm = (l0 - lm) / eps;
      if (fabs(sp - sm) > 0.05 * (fabs(sp) + fabs(sm)) + 1e-6) {
        skipped++;
        continue;
      }
      num[checked] = (float)((lp - lm) / (2.0 * eps));
      ana[checked++] = grads[j];
    }
  }
  /* one scale for the whole model: tiny gradients (deep biases) are within fp32 noise */
  char label[160];
  snprintf(label, sizeof label, "gradcheck whole dVAE (%s, %d threads)", recon, nthreads);
  double worst = check_close(label, ana, num, checked, 1e-2);
  CHECK_MSG(skipped * 5 <= checked, "model (%s): %zu kinks skipped of %zu", recon, skipped,
            checked + skipped);
  printf("%s: %zu coordinates in %zu tensors, %zu kinks skipped, rel err %.2e\n", label,
         checked, tok->table.count, skipped, worst);
  free(ana), free(num);
  free(x), free(noise), free(grads);
  beit_tokenizer_free(tok);
  return worst;
}

int main(void)
{
  beit_rng_seed(&rng, 5, 0, 0);
  double w = 0.0;
  w = fmax(w, check_gumbel_softmax());
  w = fmax(w, check_kl());
  w = fmax(w, check_recon(DVAE_RECON_MSE));
  w = fmax(w, check_recon(DVAE_RECON_LOGIT_LAPLACE));
  w = fmax(w, check_model("mse", 2)); /* batch split over 2 threads */
  w = fmax(w, check_model("mse", 1)); /* one worker */
  printf("test_tokenizer_gradcheck: worst relative error %.3e\n", w);
  return test_summary("test_tokenizer_gradcheck");
}
