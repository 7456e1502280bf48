/* C side of the encoder benchmark: times full training steps (forward, MIM loss, backward,
 * clip, AdamW, zero-grad) or inference forwards, mirroring bench/bench_encoder_torch.py, and
 * measures the matrix-product peak of the precision in use (sgemm, or oneDNN's bf16 matmul) in
 * the same process so achieved GFLOP/s can be read as a fraction.
 *
 *   bench_encoder --config X.json --batch B --threads T --mode train|infer --iters N --warmup W
 *                 [--vocab V] [--mask-ratio 0.4] [--clip-grad 0] [--precision fp32|bf16|auto]
 * Prints one JSON line. bench/run_encoder.sh runs both sides and prints the ratios. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_util.h"
#include "clock.h"
#include "beit/precision.h"
#include "encoder.h"
#include "gemm.h"
#include "kernels.h"
#include "optim.h"
#include "rng.h"

void openblas_set_num_threads(int n);

/* The backend's best rate in precision p on BEiT-base's fc1 at batch 8, the peak the encoder's
 * achieved GFLOP/s is a fraction of. */
static double gemm_peak(enum beit_precision p)
{
  enum beit_dtype dtype = p == BEIT_PRECISION_BF16 ? BEIT_DTYPE_BF16 : BEIT_DTYPE_F32;
  return bench_gemm_gflops(dtype, 1576, 3072, 768, 0, 1, 8);
}

struct options {
  const char *config, *mode, *precision;
  long batch, threads, iters, warmup, vocab;
  double mask_ratio, clip_grad;
};

static int parse(int argc, char **argv, struct options *o)
{
  *o = (struct options){NULL, "train", "fp32", 8, 1, 10, 2, 0, 0.4, 0.0};
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (!strcmp(k, "--config")) o->config = v;
    else if (!strcmp(k, "--mode")) o->mode = v;
    else if (!strcmp(k, "--batch")) o->batch = atol(v);
    else if (!strcmp(k, "--threads")) o->threads = atol(v);
    else if (!strcmp(k, "--iters")) o->iters = atol(v);
    else if (!strcmp(k, "--warmup")) o->warmup = atol(v);
    else if (!strcmp(k, "--vocab")) o->vocab = atol(v);
    else if (!strcmp(k, "--mask-ratio")) o->mask_ratio = atof(v);
    else if (!strcmp(k, "--clip-grad")) o->clip_grad = atof(v);
    else if (!strcmp(k, "--precision")) o->precision = v;
    else return 0;
  }
  return o->config && o->batch > 0 && o->iters > 0 && (argc % 2) == 1;
}

int main(int argc, char **argv)
{
  beit_flush_denormals(); /* as every beit command does */
  struct options o;
  if (!parse(argc, argv, &o)) {
    fprintf(stderr, "usage: bench_encoder --config X.json [--batch B] [--threads T] "
                    "[--mode train|infer] [--iters N] [--warmup W] [--vocab V] "
                    "[--mask-ratio R] [--clip-grad C] [--precision fp32|bf16|auto]\n");
    return 2;
  }
  int train = !strcmp(o.mode, "train");
  omp_set_num_threads((int)o.threads);
  openblas_set_num_threads((int)o.threads);
  struct beit_error err = {0};
  enum beit_precision prec;
  if (beit_precision_parse(&prec, o.precision, &err) ||
      beit_precision_resolve(&prec, prec, &err)) {
    fprintf(stderr, "bench_encoder: %s\n", err.message);
    return 2;
  }
  double peak = gemm_peak(prec);

  struct beit_config cfg;
  struct beit_model *m = NULL;
  beit_config_defaults(&cfg);
  if (beit_config_load(&cfg, o.config, &err))
    goto fail;
  if (o.vocab)
    cfg.vocab_size = o.vocab;
  if (train) { /* same forcing as the PyTorch side */
    strcpy(cfg.architecture, "BeitForMaskedImageModeling");
    cfg.use_mask_token = 1;
    cfg.use_shared_relative_position_bias = 1;
  } else if (beit_config_arch(&cfg) == BEIT_ARCH_MIM) {
    strcpy(cfg.architecture, "BeitModel");
  }
  size_t B = (size_t)o.batch;
  if (beit_model_create(&m, &cfg, B, &err))
    goto fail;
  beit_model_init_weights(m, BEIT_INIT_PRETRAIN, 0);

  size_t N = m->N, H = (size_t)cfg.image_size, L = m->L;
  size_t n_mask = (size_t)fmax(1.0, round(o.mask_ratio * (double)N));
  float *pixels = malloc(B * m->C * H * H * sizeof(float));
  float *drop = malloc(L * 2 * B * sizeof(float));
  double *uniform = malloc(B * sizeof(double));
  uint8_t *mask = malloc(B * N);
  int32_t *targets = malloc(B * N * sizeof(int32_t));
  size_t *perm = malloc(N * sizeof(size_t));
  /* inference holds no gradients or optimizer state, like PyTorch under no_grad */
  float *mom = train ? beit_alloc_floats(m->table.total) : NULL;
  float *var = train ? beit_alloc_floats(m->table.total) : NULL;
  if ((!train && beit_model_set_inference(m, &err)) || beit_model_set_precision(m, prec, &err)) {
    fprintf(stderr, "bench_encoder: %s\n", err.message);
    return 1;
  }
  struct beit_rng rng;
  beit_rng_seed(&rng, 1, 2, 3);
  for (size_t i = 0; i < B * m->C * H * H; i++)
    pixels[i] = (float)(2.0 * beit_rng_uniform(&rng) - 1.0);

  long total = o.warmup + o.iters;
  double *times = malloc((size_t)total * sizeof(double));
  /* training: forward + loss, backward, clip + AdamW + zero-grad; medians reported apart */
  enum { PHASE_FORWARD, PHASE_BACKWARD, PHASE_UPDATE, PHASES };
  double *phase[PHASES];
  for (int p = 0; p < PHASES; p++)
    phase[p] = calloc((size_t)total, sizeof(double));
  for (long it = 0; it < total; it++) {
    if (it == o.warmup)
      beit_dnnl_profile_reset(); /* BEIT_GEMM_PROFILE times the measured steps only */
    double t0 = beit_clock_now();
    if (train) {
      /* fresh random mask of n_mask patches per image, drop-path scales, token labels */
      for (size_t b = 0; b < B; b++) {
        for (size_t i = 0; i < N; i++)
          perm[i] = i;
        memset(mask + b * N, 0, N);
        for (size_t i = 0; i < n_mask; i++) {
          size_t j = i + (size_t)beit_rng_int(&rng, 0, (int64_t)(N - i - 1));
          size_t t = perm[i];
          perm[i] = perm[j];
          perm[j] = t;
          mask[b * N + perm[i]] = 1;
        }
      }
      for (size_t l = 0; l < L; l++) {
        float rate = L > 1 ? (float)(cfg.drop_path_rate * (double)l / (double)(L - 1)) : 0.0f;
        for (size_t br = 0; br < 2; br++) {
          for (size_t b = 0; b < B; b++)
            uniform[b] = beit_rng_uniform(&rng);
          beit_drop_path_scales(drop + (2 * l + br) * B, uniform, rate, B);
        }
      }
      for (size_t i = 0; i < B * n_mask; i++)
        targets[i] = (int32_t)beit_rng_int(&rng, 0, cfg.vocab_size - 1);
      double tp = beit_clock_now();
      if (beit_model_forward(m, pixels, mask, drop, B, &err))
        goto fail;
      beit_model_loss(m, targets, NULL, 0.0f, NULL);
      phase[PHASE_FORWARD][it] = beit_clock_now() - tp;
      tp = beit_clock_now();
      beit_model_backward(m, 1.0f);
      phase[PHASE_BACKWARD][it] = beit_clock_now() - tp;
      tp = beit_clock_now();
      /* as the trainer does: the clipping factor applied as AdamW reads the gradients; the
       * gradient norm only where the PyTorch side clips too (--clip-grad), so both do the same
       * work */
      double coef = 1.0;
      if (o.clip_grad > 0.0)
        coef = beit_clip_coef(beit_grad_norm(m->grads, m->table.total), o.clip_grad);
      /* as the trainer does: zero-grad and the bf16 weight copy in the same pass */
      struct beit_adamw_hparams hp = {1.5e-3, 0.05, 0.9, 0.999, 1e-8, it + 1, 1, m->params_h};
      beit_adamw_update(m->params, m->grads, (float)coef, mom, var, &m->table, &hp);
      m->weights_rounded = m->params_h != NULL;
      phase[PHASE_UPDATE][it] = beit_clock_now() - tp;
    } else if (beit_model_forward(m, pixels, NULL, NULL, B, &err)) {
      goto fail;
    }
    times[it] = beit_clock_now() - t0;
  }
  double median = bench_median(times + o.warmup, o.iters);
  double forward_s = bench_median(phase[PHASE_FORWARD] + o.warmup, o.iters);
  double backward_s = bench_median(phase[PHASE_BACKWARD] + o.warmup, o.iters);
  double update_s = bench_median(phase[PHASE_UPDATE] + o.warmup, o.iters);
  /* matmul FLOPs of the work done: forward (MIM head on masked rows only), backward ~2x */
  double flops = beit_model_flops_per_image(m);
  if (train)
    flops = 3.0 * (flops - 2.0 * (double)m->D * (double)cfg.vocab_size * (double)(N - n_mask));
  double gflops = flops * (double)B / median / 1e9;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("{\"side\": \"c\", \"mode\": \"%s\", \"precision\": \"%s\", \"isa\": \"%s\", "
         "\"batch\": %zu, \"threads\": %ld, \"images_per_s\": %.3f, \"median_step_s\": %.6f, "
         "\"gflops\": %.2f, \"gemm_peak_gflops\": %.2f, \"fraction_of_peak\": %.3f, "
         "\"forward_s\": %.4f, \"backward_s\": %.4f, \"update_s\": %.4f, "
         "\"peak_rss_mb\": %.1f}\n",
         o.mode, beit_precision_name(prec), beit_precision_isa(), B, o.threads,
         (double)B / median, median, gflops, peak, gflops / peak, forward_s, backward_s, update_s,
         (double)ru.ru_maxrss / 1024.0);
  beit_model_free(m);
  beit_config_free(&cfg);
  return 0;
fail:
  fprintf(stderr, "bench_encoder: %s\n", err.message);
  return 1;
}
