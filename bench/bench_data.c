/* Benchmark: decode + BEiT pretraining augmentation (jitter, flip, RandomResizedCrop -> 224
 * bicubic + 112 lanczos views, normalisation) of ImageNet-sized JPEGs, one core, next to
 * torchvision + PIL doing the same transform in the same run (bench/bench_data_tv.py); then
 * the loader feeding a simulated BEiT-base training step (real sgemm work of the step's FLOPs)
 * and the fraction of step time spent waiting for batches. With --finetune: the fine-tuning
 * transform instead (RandomResizedCrop 224 bicubic, flip, RandAugment rand-m9-mstd0.5-inc1,
 * normalisation, RandomErasing 0.25) against torchvision + PIL + timm's RandAugment policy
 * written out with the same PIL calls, and no loader part.
 *
 * The machine may be shared: C and Python alternate for --rounds rounds and the best round of each
 * is compared.
 *
 * usage: bench_data [--count N] [--seconds S] [--rounds R] [--batch B] [--steps K] [--workers W]
 *                   [--python PATH] [--script bench_data_tv.py] [--skip-loader] [--finetune] */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "beit/data.h"
#include "clock.h"
#include "rng.h"
#include "tensor_table.h"

static double cpu_now(void) /* this thread's CPU time: robust when the machine is shared */
{
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static unsigned char *slurp(const char *path, size_t *n)
{
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  *n = (size_t)ftell(f);
  rewind(f);
  unsigned char *p = malloc(*n);
  *n = fread(p, 1, *n, f);
  fclose(f);
  return p;
}

/* sgemm rate on BEiT-base shapes, GFLOP/s (to size the simulated step). */
static double gemm_rate(float *a, float *b, float *c, int m, int n, int k)
{
  double t0 = beit_clock_now();
  int reps = 0;
  while (beit_clock_now() - t0 < 1.0 || reps < 2) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
    reps++;
  }
  return 2.0 * m * n * k * reps / (beit_clock_now() - t0) / 1e9;
}

int main(int argc, char **argv)
{
  int count = 48, batch = 8, steps = 4, workers = 1, skip_loader = 0, rounds = 3, finetune = 0;
  double seconds = 5.0;
  const char *python = "/usr/bin/python3", *script = BEIT_BENCH_DATA_TV;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--count") && i + 1 < argc) count = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
    else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--workers") && i + 1 < argc) workers = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--python") && i + 1 < argc) python = argv[++i];
    else if (!strcmp(argv[i], "--script") && i + 1 < argc) script = argv[++i];
    else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--skip-loader")) skip_loader = 1;
    else if (!strcmp(argv[i], "--finetune")) finetune = skip_loader = 1;
    else {
      fprintf(stderr, "usage: bench_data [--count N] [--seconds S] [--rounds R] [--batch B] "
                      "[--steps K] [--workers W] [--python PATH] [--script FILE] [--skip-loader] "
                      "[--finetune]\n");
      return 2;
    }
  }
  char dir[] = "/tmp/bench_data_XXXXXX";
  if (!mkdtemp(dir))
    return 1;
  char cmd[8192], imgdir[256];
  snprintf(imgdir, sizeof imgdir, "%s/img", dir);
  snprintf(cmd, sizeof cmd, "%s %s --make %s --count %d", python, script, imgdir, count);
  if (system(cmd) != 0) {
    fprintf(stderr, "bench_data: generating JPEGs failed: %s\n", cmd);
    return 1;
  }
  unsigned char **blobs = calloc((size_t)count, sizeof *blobs);
  size_t *sizes = calloc((size_t)count, sizeof *sizes);
  for (int i = 0; i < count; i++) {
    char p[512];
    snprintf(p, sizeof p, "%s/img%04d.jpg", imgdir, i);
    blobs[i] = slurp(p, &sizes[i]);
    if (!blobs[i])
      return 1;
  }

  /* ---- C and torchvision + PIL, one thread each, alternating rounds; best round of each ---- */
  struct beit_error err = {0};
  struct beit_data_transform t;
  beit_data_transform_defaults(&t, finetune ? BEIT_DATA_MODE_FINETUNE : BEIT_DATA_MODE_PRETRAIN);
  if (finetune) {
    if (beit_randaugment_parse(&t.rand_augment, "rand-m9-mstd0.5-inc1", &err)) {
      fprintf(stderr, "%s\n", err.message);
      return 1;
    }
    t.erase_prob = 0.25;
  }
  struct beit_data_scratch *ws = beit_data_scratch_init();
  float *va = beit_alloc_floats(3 * 224 * 224), *vb = beit_alloc_floats(3 * 112 * 112);
  double c_rate = 0, tv_rate = 0, kb = 0, best_dec = 0, best_aug = 0, c_cpu = 0, tv_cpu = 0;
  long n = 0;
  for (int round = 0; round < rounds; round++) {
    double t_dec = 0, t_aug = 0;
    long done = 0;
    double t0 = beit_clock_now(), c0 = cpu_now();
    while (beit_clock_now() - t0 < seconds) {
      int i = (int)(n % count);
      struct beit_data_image img;
      double a = beit_clock_now();
      if (beit_data_decode(&img, blobs[i], sizes[i], "bench", &err)) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
      }
      double b = beit_clock_now();
      struct beit_rng rng;
      beit_rng_seed(&rng, 0, 0, (uint64_t)n);
      if (beit_data_transform_apply(&t, &img, &rng, va, vb, ws, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
      }
      t_aug += beit_clock_now() - b;
      t_dec += b - a;
      beit_data_image_free(&img);
      n++;
      done++;
    }
    double rate = done / (beit_clock_now() - t0), cpu_rate = done / (cpu_now() - c0);
    if (rate > c_rate)
      c_rate = rate, best_dec = 1e3 * t_dec / done, best_aug = 1e3 * t_aug / done;
    if (cpu_rate > c_cpu)
      c_cpu = cpu_rate;
    snprintf(cmd, sizeof cmd, "%s %s --time %s --seconds %g%s", python, script, imgdir, seconds,
             finetune ? " --finetune" : "");
    FILE *p = popen(cmd, "r");
    char line[1024];
    while (p && fgets(line, sizeof line, p)) {
      char *q = strstr(line, "\"images_per_s\":");
      if (q && atof(q + 15) > tv_rate)
        tv_rate = atof(q + 15);
      if ((q = strstr(line, "\"images_per_cpu_s\":")) && atof(q + 19) > tv_cpu)
        tv_cpu = atof(q + 19);
      if ((q = strstr(line, "\"mean_file_kb\":")))
        kb = atof(q + 15);
    }
    if (p)
      pclose(p);
    printf("round %d: C %.1f images/s (%.1f per CPU-s); torchvision best so far %.1f (%.1f per CPU-s)\n",
           round + 1, rate, cpu_rate, tv_rate, tv_cpu);
  }
  printf("C decode + %s augmentation, 1 thread: %.1f images/s wall, %.1f per CPU-second "
         "(decode %.2f ms, augment %.2f ms per image)\n", finetune ? "fine-tuning" : "pretrain",
         c_rate, c_cpu, best_dec, best_aug);
  printf("torchvision + PIL, 1 thread:                  %.1f images/s wall, %.1f per CPU-second "
         "(mean JPEG %.0f KB)\n", tv_rate, tv_cpu, kb);
  if (tv_rate > 0 && tv_cpu > 0)
    printf("ratio C / torchvision per core: %.2fx per CPU-second, %.2fx wall (target >= 1.5x; best "
           "of %d alternating rounds each)\n", c_cpu / tv_cpu, c_rate / tv_rate, rounds);

  if (!skip_loader) {
    /* ---- loader against a simulated BEiT-base step ---- */
    char ds[256];
    snprintf(ds, sizeof ds, "%s/ds", dir);
    struct beit_data_pack_options po;
    beit_data_pack_defaults(&po);
    po.input = imgdir;
    po.output = ds;
    po.log = NULL;
    po.source = BEIT_DATA_SOURCE_MANIFEST;
    char man[256];
    snprintf(man, sizeof man, "%s/list.csv", dir);
    FILE *m = fopen(man, "w");
    for (int i = 0; i < count; i++)
      fprintf(m, "img/img%04d.jpg,c%d\n", i, i % 10);
    fclose(m);
    po.input = man;
    struct beit_data_pack_report rep;
    if (beit_data_pack(&po, &rep, &err)) {
      fprintf(stderr, "%s\n", err.message);
      return 1;
    }
    /* BEiT-base: 12 blocks, 197 tokens, 768 wide: ~17.6 GFLOP forward per image; training step
     * ~3x (forward + backward) + the dVAE tokenizer forward on the 112 view (~2 GFLOP). */
    const int T = 197, C = 768;
    float *A = beit_alloc_floats((size_t)T * batch * C), *Bm = beit_alloc_floats((size_t)C * 4 * C),
          *Cm = beit_alloc_floats((size_t)T * batch * 4 * C);
    double gflops = gemm_rate(A, Bm, Cm, T * batch, 4 * C, C);
    double step_flop = (3.0 * 17.6 + 2.0) * 1e9 * batch, step_s = step_flop / (gflops * 1e9);
    printf("simulated BEiT-base step: batch %d, %.0f GFLOP at %.1f GFLOP/s sgemm = %.2f s\n", batch,
           step_flop / 1e9, gflops, step_s);
    struct beit_loader_options lo;
    beit_loader_defaults(&lo);
    lo.batch_size = (size_t)batch;
    lo.num_workers = workers;
    lo.log = NULL;
    struct beit_loader *ld;
    if (beit_loader_init(&ld, ds, &lo, NULL, &err)) {
      fprintf(stderr, "%s\n", err.message);
      return 1;
    }
    const struct beit_loader_batch *bt;
    beit_loader_next(ld, &bt, &err); /* the first batch: start-up, reported apart */
    struct beit_loader_stats s0, s1;
    beit_loader_stats(ld, &s0);
    double l0 = beit_clock_now();
    for (int k = 0; k < steps; k++) {
      double s = beit_clock_now();
      while (beit_clock_now() - s < step_s)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T * batch, 4 * C, C, 1.0f, A, C, Bm,
                    4 * C, 0.0f, Cm, 4 * C);
      if (beit_loader_next(ld, &bt, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
      }
    }
    double total = beit_clock_now() - l0;
    beit_loader_stats(ld, &s1);
    double wait = s1.wait_seconds - s0.wait_seconds;
    printf("loader (%d worker%s, batch %d): first batch %.3f s; then %d steps: waited %.4f s of %.2f s = %.3f%% (target < 2%%)\n",
           workers, workers > 1 ? "s" : "", batch, s0.wait_seconds, steps, wait, total,
           100.0 * wait / total);
    beit_loader_free(ld);
    free(A), free(Bm), free(Cm);
  }
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  (void)!system(cmd);
  for (int i = 0; i < count; i++)
    free(blobs[i]);
  free(blobs), free(sizes), free(va), free(vb);
  beit_data_scratch_free(ws);
  return 0;
}
