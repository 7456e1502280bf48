/* Inference model: one copy of a classifier's weights, several forward contexts over it, and
 * the softmax/sigmoid that turns logits into the probabilities of the response.
 *
 * Sharing the weights: session 0 is the model as loaded (it owns params); sessions 1.. are
 * beit_model_create_sharing models over session 0's weights (in bf16 its bfloat16 copy too,
 * rounded once, when session 0's precision is set). Forward only reads the weights, and
 * everything it writes lives in the session's own activation arena, so sessions may run
 * concurrently. No session keeps a gradient buffer. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "beit/model.h"
#include "serve.h"

struct beit_infer {
  char dir[4096];
  struct beit_infer_options opt;
  struct beit_data_preprocess pp;
  struct beit_model **sessions; /* [0] owns the weights */
  int nsessions;
  enum beit_infer_task task;
};

void beit_infer_defaults(struct beit_infer_options *opt)
{
  opt->max_batch = 8;
  opt->sessions = 1;
  opt->threads = 0;
  opt->max_pixels = 40u * 1000u * 1000u;
  opt->any_format = 0;
  opt->precision = BEIT_PRECISION_AUTO;
}

void beit_infer_free(struct beit_infer *inf)
{
  if (!inf)
    return;
  for (int s = inf->nsessions - 1; s >= 0; s--) /* session 0, the owner, last */
    beit_model_free(inf->sessions[s]);
  free(inf->sessions);
  free(inf);
}

/* sessions 0 = automatic: a model too small to keep several cores busy in one forward (under
 * BEIT_INFER_SMALL_FLOPS per image) gets one single-threaded session per core -- no OpenMP
 * barriers, which stall badly when connection threads share the cores -- and a larger one a
 * single session over all cores (lowest latency). threads 0 = cores / sessions. */
#define BEIT_INFER_SMALL_FLOPS 2e9

static void choose_sessions(struct beit_infer_options *opt, double flops_per_image)
{
  int cores = omp_get_max_threads();
  if (opt->sessions <= 0) {
    int small = flops_per_image < BEIT_INFER_SMALL_FLOPS;
    opt->sessions = small ? cores : 1;
    if (small && opt->threads <= 0)
      opt->threads = 1;
  }
  if (opt->threads <= 0) {
    int t = cores / opt->sessions;
    opt->threads = t > 0 ? t : 1;
  }
}

enum beit_status beit_infer_load(struct beit_infer **out, const char *dir,
                                 const struct beit_infer_options *opt, struct beit_error *err)
{
  *out = NULL;
  struct beit_infer *inf = calloc(1, sizeof *inf);
  if (!inf)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", dir);
  if (opt)
    inf->opt = *opt;
  else
    beit_infer_defaults(&inf->opt);
  if (inf->opt.max_batch == 0)
    inf->opt.max_batch = 1;
  snprintf(inf->dir, sizeof inf->dir, "%s", dir);
  enum beit_status st = BEIT_STATUS_OK;
  struct beit_model *m = NULL;
  if ((st = beit_model_load(&m, dir, inf->opt.max_batch, err))) {
    beit_infer_free(inf);
    return st;
  }
  choose_sessions(&inf->opt, beit_model_flops_per_image(m));
  inf->sessions = calloc((size_t)inf->opt.sessions, sizeof *inf->sessions);
  if (!inf->sessions) {
    beit_model_free(m);
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", dir);
    goto fail;
  }
  inf->nsessions = inf->opt.sessions;
  inf->sessions[0] = m;
  /* the precision after the weights are final and the inference plan is made: in bf16 this
   * rounds the weights once, for every session */
  if ((st = beit_model_set_inference(m, err)) ||
      (st = beit_model_set_precision(m, inf->opt.precision, err)))
    goto fail;
  inf->opt.precision = beit_model_precision(m); /* resolved */
  const struct beit_config *cfg = beit_model_config(m);
  if (beit_model_arch(m) != BEIT_ARCH_CLASSIFIER) {
    st = beit_error_set(err, BEIT_STATUS_CONFIG,
                        "%s/config.json: architectures[0] is '%s'; predict and serve need a "
                        "BeitForImageClassification model", dir, cfg->architecture);
    goto fail;
  }
  if (cfg->num_channels != 3) {
    st = beit_error_set(err, BEIT_STATUS_CONFIG, "%s/config.json: num_channels %ld; images are RGB",
                        dir, cfg->num_channels);
    goto fail;
  }
  inf->task = beit_config_is_multilabel(cfg) ? BEIT_INFER_TASK_MULTILABEL : BEIT_INFER_TASK_MULTICLASS;
  if ((st = beit_data_preprocess_model(&inf->pp, dir, (int)cfg->image_size, err)))
    goto fail;
  for (int s = 1; s < inf->nsessions; s++)
    if ((st = beit_model_create_sharing(&inf->sessions[s], m, inf->opt.max_batch, err)))
      goto fail;
  *out = inf;
  return BEIT_STATUS_OK;
fail:
  beit_infer_free(inf);
  return st;
}

enum beit_infer_task beit_infer_task(const struct beit_infer *inf) { return inf->task; }
size_t beit_infer_num_labels(const struct beit_infer *inf)
{
  return (size_t)beit_model_config(inf->sessions[0])->num_labels;
}
const char *beit_infer_label(const struct beit_infer *inf, size_t i)
{
  return beit_model_config(inf->sessions[0])->labels[i];
}
int beit_infer_image_size(const struct beit_infer *inf)
{
  return (int)beit_model_config(inf->sessions[0])->image_size;
}
size_t beit_infer_view_floats(const struct beit_infer *inf)
{
  size_t S = (size_t)beit_model_config(inf->sessions[0])->image_size;
  return 3 * S * S;
}
const struct beit_data_preprocess *beit_infer_preprocessing(const struct beit_infer *inf)
{
  return &inf->pp;
}
const struct beit_infer_options *beit_infer_get_options(const struct beit_infer *inf)
{
  return &inf->opt;
}
const char *beit_infer_model_dir(const struct beit_infer *inf) { return inf->dir; }
struct beit_model *beit_infer_session_model(const struct beit_infer *inf, int session)
{
  return session >= 0 && session < inf->nsessions ? inf->sessions[session] : NULL;
}

/* Softmax in double (a wide logit range must not overflow), or independent sigmoids. */
static void probabilities(float *probs, const float *logits, size_t n, size_t C, int multilabel)
{
  for (size_t b = 0; b < n; b++) {
    const float *z = logits + b * C;
    float *p = probs + b * C;
    if (multilabel) {
      for (size_t i = 0; i < C; i++)
        p[i] = (float)(1.0 / (1.0 + exp(-(double)z[i])));
      continue;
    }
    double mx = -INFINITY, sum = 0.0;
    for (size_t i = 0; i < C; i++)
      if (z[i] > mx)
        mx = z[i];
    for (size_t i = 0; i < C; i++)
      sum += exp((double)z[i] - mx);
    for (size_t i = 0; i < C; i++)
      p[i] = (float)(exp((double)z[i] - mx) / sum);
  }
}

enum beit_status beit_infer_warmup(struct beit_infer *inf, struct beit_error *err)
{
  if (inf->opt.precision != BEIT_PRECISION_BF16)
    return BEIT_STATUS_OK; /* OpenBLAS has nothing to prepare */
  size_t B = inf->opt.max_batch, V = beit_infer_view_floats(inf);
  float *views = calloc(B * V, sizeof *views);
  float *probs = malloc(B * beit_infer_num_labels(inf) * sizeof *probs);
  enum beit_status st = BEIT_STATUS_OK;
  if (!views || !probs)
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "warm-up: out of memory");
  /* the primitive cache is process-wide: one session creates them for all */
  for (size_t n = 1; !st && n <= B; n++)
    st = beit_infer_run(inf, 0, views, n, probs, err);
  free(views);
  free(probs);
  return st;
}

enum beit_status beit_infer_run(struct beit_infer *inf, int session, const float *views,
                                size_t n, float *probs, struct beit_error *err)
{
  if (session < 0 || session >= inf->nsessions)
    return beit_error_set(err, BEIT_STATUS_USAGE, "inference session %d of %d", session,
                          inf->nsessions);
  if (n == 0)
    return BEIT_STATUS_OK;
  if (n > inf->opt.max_batch)
    return beit_error_set(err, BEIT_STATUS_USAGE, "batch of %zu images; the maximum is %zu", n,
                          inf->opt.max_batch);
  struct beit_model *m = inf->sessions[session];
  omp_set_num_threads(inf->opt.threads);
  enum beit_status st = beit_model_forward(m, views, NULL, NULL, n, err);
  if (st)
    return st;
  probabilities(probs, beit_model_logits(m), n, beit_infer_num_labels(inf),
                inf->task == BEIT_INFER_TASK_MULTILABEL);
  return BEIT_STATUS_OK;
}
