/* encoder/params.c's initialisation (spec 3): what every kind of tensor gets under the pretraining
 * and the fine-tuning scheme, the bounds and standard deviations of the truncated normals (with
 * fix_init_weight's 1/sqrt(2 l) and the head's 0.001), and the same values on 1 and 2 threads.
 * Usage: test_init */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encoder.h"
#include "strbuf.h"
#include "testing.h"

static struct beit_model *make(int pretrain)
{
  struct beit_config c;
  beit_config_defaults(&c);
  c.image_size = 32;
  c.patch_size = 4;
  c.hidden_size = 64;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 4;
  c.intermediate_size = 256;
  c.vocab_size = 512;
  c.layer_scale_init_value = 0.1;
  if (pretrain) {
    snprintf(c.architecture, sizeof c.architecture, "BeitForMaskedImageModeling");
    c.use_mask_token = 1;
    c.use_shared_relative_position_bias = 1;
  } else {
    snprintf(c.architecture, sizeof c.architecture, "BeitForImageClassification");
    c.use_relative_position_bias = 1;
    beit_config_set_labels(&c, 10, NULL, NULL);
  }
  struct beit_model *m = NULL;
  struct beit_error err = {0};
  if (beit_model_create(&m, &c, 1, &err))
    CHECK_MSG(0, "create: %s", err.message);
  return m;
}

/* The standard deviation of N(0, 1) truncated to [-a, a]. */
static double truncated_std(double a)
{
  double phi = exp(-0.5 * a * a) / sqrt(2.0 * M_PI), mass = erf(a / M_SQRT2);
  return sqrt(1.0 - 2.0 * a * phi / mass);
}

/* Every value of x is within [-bound, bound]; for n >= 4096, the sample mean is within 5 standard
 * errors of 0 and the sample standard deviation within 5% of sd. */
static void check_spread(const char *name, const float *x, size_t n, double bound, double sd)
{
  double sum = 0, sq = 0, worst = 0;
  for (size_t i = 0; i < n; i++) {
    sum += x[i];
    sq += (double)x[i] * x[i];
    worst = fmax(worst, fabs(x[i]));
  }
  CHECK_MSG(worst <= bound * (1 + 1e-6), "%s: |value| %.6g beyond the bound %.6g", name, worst,
            bound);
  if (n < 4096)
    return;
  double mean = sum / (double)n, got = sqrt(sq / (double)n - mean * mean);
  CHECK_MSG(fabs(mean) <= 5 * sd / sqrt((double)n), "%s: mean %.3g", name, mean);
  CHECK_MSG(fabs(got / sd - 1) <= 0.05, "%s: std %.6g, expected %.6g", name, got, sd);
}

static void check_all(const float *x, size_t n, float value, const char *name)
{
  size_t bad = 0;
  for (size_t i = 0; i < n; i++)
    bad += x[i] != value;
  CHECK_MSG(bad == 0, "%s: %zu of %zu values are not %g", name, bad, n, value);
}

/* The factor fix_init_weight (and the fine-tuning head's 0.001) puts on tensor i. */
static double scale_of(const struct beit_model *m, long i, int pretrain)
{
  for (size_t l = 0; l < m->L; l++)
    if (i == m->ids.layer[l].proj_w || i == m->ids.layer[l].fc2_w)
      return 1.0 / sqrt(2.0 * (double)(l + 1));
  return !pretrain && i == m->ids.head_w ? 0.001 : 1.0;
}

static void test_values(int pretrain)
{
  struct beit_model *m = make(pretrain);
  if (!m)
    return;
  beit_model_init_weights(m, pretrain ? BEIT_INIT_PRETRAIN : BEIT_INIT_FINETUNE, 3);
  double std = m->cfg.initializer_range;
  double patch_bound = 1.0 / sqrt((double)(m->C * m->P * m->P));
  size_t spread = 0;
  for (size_t i = 0; i < m->table.count; i++) {
    const struct beit_tensor *t = &m->table.items[i];
    const float *x = m->params + t->offset;
    if (strstr(t->name, "relative_position_bias_table"))
      check_all(x, t->numel, 0.0f, t->name);
    else if (beit_str_ends_with(t->name, "lambda_1") || beit_str_ends_with(t->name, "lambda_2"))
      check_all(x, t->numel, (float)m->cfg.layer_scale_init_value, t->name);
    else if (strstr(t->name, "layernorm") && beit_str_ends_with(t->name, ".weight"))
      check_all(x, t->numel, 1.0f, t->name);
    else if (!pretrain && ((long)i == m->ids.patch_w || (long)i == m->ids.patch_b))
      check_spread(t->name, x, t->numel, patch_bound, patch_bound / sqrt(3.0)); /* U(+-bound) */
    else if (t->ndim >= 2) {
      double s = scale_of(m, (long)i, pretrain);
      /* pretraining: N(0, std) cut at +-std; fine-tuning: cut at +-2, i.e. not at all */
      if (pretrain)
        check_spread(t->name, x, t->numel, std * s, std * s * truncated_std(1.0));
      else
        check_spread(t->name, x, t->numel, 2.0 * s, std * s);
      spread += t->numel >= 4096;
    } else
      check_all(x, t->numel, 0.0f, t->name); /* biases */
  }
  CHECK_MSG(spread >= 3 * m->L, "only %zu tensors large enough for their statistics", spread);
  beit_model_free(m);
}

/* One random stream per tensor: the values do not depend on the number of threads. */
static void test_threads(void)
{
  struct beit_model *m = make(1);
  if (!m)
    return;
  size_t bytes = m->table.total * sizeof(float);
  float *one = malloc(bytes);
  omp_set_num_threads(1);
  beit_model_init_weights(m, BEIT_INIT_PRETRAIN, 5);
  memcpy(one, m->params, bytes);
  omp_set_num_threads(2);
  beit_model_init_weights(m, BEIT_INIT_PRETRAIN, 5);
  CHECK_MSG(!memcmp(one, m->params, bytes), "1 and 2 threads initialise differently");
  beit_model_init_weights(m, BEIT_INIT_PRETRAIN, 6);
  CHECK_MSG(memcmp(one, m->params, bytes), "seeds 5 and 6 initialise alike");
  free(one);
  beit_model_free(m);
}

int main(void)
{
  test_values(1);
  test_values(0);
  test_threads();
  return test_summary("test_init");
}
