/* Benchmark of the dVAE tokenizer against PyTorch (tools/dvae_ref.py) in the same run, with the
 * same thread count and precision (--precision bf16: the C tokenizer's bf16 convolutions against
 * PyTorch under torch.autocast("cpu", dtype=torch.bfloat16); fp32: both in float32):
 *   1. the matrix-product peak of this machine in that precision (2048^3 through core/gemm.h:
 *      cblas_sgemm, or oneDNN's bf16 matmul; best of >= 1 s), the yardstick;
 *   2. forward of the full DALL-E encoder (batch 8, 112x112, ~52 GFLOP per image), C and PyTorch
 *      alternating for --rounds rounds (target: 1.0x in fp32, 1.5x in bf16): images/s, CPU
 *      seconds per batch (steadier on a shared machine), GFLOP/s, fraction of the peak, the
 *      rounds' ratio range; then each distinct conv layer alone (GFLOP/s and fraction of peak,
 *      time-weighted total over the encoder's layers);
 *   3. one training step of a tokenizer config (default configs/tokenizer/fashion_mnist.json):
 *      Gumbel noise, encoder, relaxation, decoder, loss, backward, clip, AdamW: images/s, C and
 *      PyTorch alternating for several rounds, best step of each side (bf16: PyTorch's forward
 *      and loss under autocast).
 * Each C figure is followed by PyTorch's and the ratio (C / PyTorch, higher is better). The first
 * line names the CPU, the precision and the ISA oneDNN found.
 *
 * usage: bench_tokenizer [--precision fp32|bf16|auto] [--threads T] [--batch 8] [--size 112]
 *                        [--iters 3]
 *                        [--train-config FILE] [--train-batch 64] [--train-iters 20] [--rounds 3]
 *                        [--python PATH] [--script tools/dvae_ref.py]
 *                        [--skip-encoder] [--skip-layers] [--skip-train] [--skip-torch]
 *                        [--skip-peak] */
#include <math.h>
#include <stdarg.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "beit/precision.h"
#include "clock.h"
#include "config_table.h"
#include "conv.h"
#include "dvae.h"
#include "gemm.h"

static void die(const char *what, const struct beit_error *err)
{
  fprintf(stderr, "bench_tokenizer: %s: %s\n", what, err ? err->message : "");
  exit(1);
}

static float *randu(size_t n, float lo, float hi, unsigned seed)
{
  float *p = beit_alloc_floats(n);
  if (!p)
    die("out of memory", NULL);
  struct beit_rng rng;
  beit_rng_seed(&rng, seed, 1, 2);
  for (size_t i = 0; i < n; i++)
    p[i] = lo + (hi - lo) * (float)beit_rng_uniform(&rng);
  return p;
}

static int use_bf16; /* --precision resolved to bf16: products, peaks and layers in bf16 */

/* Best rate of a square n^3 product through core/gemm.h in the benchmark's precision over
 * >= min_s seconds (and >= 3 runs; oneDNN creates its primitive in a first, untimed run),
 * GFLOP/s. */
static double gemm_rate(int n, double min_s)
{
  const size_t nn = (size_t)n * n;
  float *a = randu(nn, -1, 1, 1), *b = randu(nn, -1, 1, 2);
  float *c = beit_alloc_floats(nn);
  beit_bf16 *ah = malloc(nn * sizeof *ah), *bh = malloc(nn * sizeof *bh);
  if (!ah || !bh)
    die("out of memory", NULL);
  beit_to_bf16(ah, a, nn);
  beit_to_bf16(bh, b, nn);
  struct beit_operand A = use_bf16 ? beit_op_bf16(ah, n, 0) : beit_op_f32(a, n, 0);
  struct beit_operand B = use_bf16 ? beit_op_bf16(bh, n, 0) : beit_op_f32(b, n, 0);
  beit_gemm(c, n, A, B, n, n, n, 1.0f, 0.0f);
  double best = 1e30, t_all = beit_clock_now();
  int reps = 0;
  while (reps < 3 || beit_clock_now() - t_all < min_s) {
    double t0 = beit_clock_now();
    beit_gemm(c, n, A, B, n, n, n, 1.0f, 0.0f);
    double t = beit_clock_now() - t0;
    best = t < best ? t : best;
    reps++;
  }
  free(a), free(b), free(c), free(ah), free(bh);
  return 2.0 * n * n * (double)n / best / 1e9;
}

static double gemm_peak(void)
{
  return gemm_rate(2048, 1.0);
}

/* The CPU's model name (/proc/cpuinfo), or "unknown". */
static void cpu_model(char *buf, size_t n)
{
  snprintf(buf, n, "unknown");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f)
    return;
  char line[512];
  while (fgets(line, sizeof line, f)) {
    const char *colon = strchr(line, ':');
    if (!strncmp(line, "model name", 10) && colon) {
      snprintf(buf, n, "%s", colon + 2);
      buf[strcspn(buf, "\n")] = 0;
      break;
    }
  }
  fclose(f);
}

/* Process CPU seconds (all threads) so far. */
static double cpu_now(void)
{
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
         (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

/* images/s of the PyTorch side (best step), or NAN; *cpu_s (may be NULL) its CPU s per step. */
static double torch_rate(const char *python, const char *script, const char *args, double *cpu_s)
{
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "%s %s %s", python, script, args);
  FILE *p = popen(cmd, "r");
  if (!p)
    return NAN;
  char line[4096];
  double rate = NAN;
  while (fgets(line, sizeof line, p)) {
    const char *k = strstr(line, "\"images_per_s\":");
    if (k)
      rate = atof(k + strlen("\"images_per_s\":"));
    const char *c = strstr(line, "\"cpu_s\":");
    if (c && cpu_s)
      *cpu_s = atof(c + strlen("\"cpu_s\":"));
  }
  if (pclose(p) != 0)
    return NAN;
  return rate;
}

/* One PyTorch round, the script's arguments from fmt: its images/s (NAN when it failed, or not
 * run: python NULL) and CPU s per step in *cpu_s (NAN likewise); the best rate and the least CPU
 * time of the rounds so far in *best_rate and *least_cpu. */
static double torch_round(const char *python, const char *script, double *cpu_s,
                          double *best_rate, double *least_cpu, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static double torch_round(const char *python, const char *script, double *cpu_s,
                          double *best_rate, double *least_cpu, const char *fmt, ...)
{
  char args[1024];
  va_list ap;
  *cpu_s = NAN;
  if (!python)
    return NAN;
  va_start(ap, fmt);
  vsnprintf(args, sizeof args, fmt, ap);
  va_end(ap);
  double tr = torch_rate(python, script, args, cpu_s);
  if (!isnan(tr))
    *best_rate = isnan(*best_rate) || tr > *best_rate ? tr : *best_rate;
  if (!isnan(*cpu_s))
    *least_cpu = fmin(*least_cpu, *cpu_s);
  return tr;
}

static void print_ratio(const char *what, double c_rate, double t_rate, double target)
{
  if (isnan(t_rate)) {
    printf("%-34s C %8.2f images/s   PyTorch: not run or failed\n", what, c_rate);
    return;
  }
  printf("%-34s C %8.2f images/s   PyTorch %8.2f images/s   ratio %.2fx (target %.1fx) %s\n",
         what, c_rate, t_rate, c_rate / t_rate, target,
         c_rate / t_rate >= target ? "MET" : "NOT MET");
}

struct layer {
  size_t n_in, n_out, k, H;
  unsigned flags;
  int count;
};

static void add_layer(struct layer *ls, int *n, const struct dvae_conv *cv, size_t H,
                      unsigned flags)
{
  for (int i = 0; i < *n; i++)
    if (ls[i].n_in == cv->n_in && ls[i].n_out == cv->n_out && ls[i].k == cv->k && ls[i].H == H &&
        ls[i].flags == flags) {
      ls[i].count++;
      return;
    }
  ls[*n] = (struct layer){cv->n_in, cv->n_out, cv->k, H, flags, 1};
  (*n)++;
}

/* Each distinct conv of the encoder alone, in the benchmark's precision; returns the conv layers'
 * aggregate fraction of the product peak. The machine may be shared: each layer is compared with
 * a product (1024^3) timed right after it, so both see the same load. */
static double bench_layers(const struct beit_tokenizer *tok, size_t B, int nt)
{
  struct layer ls[64];
  int n = 0;
  const struct dvae_stack *st = &tok->enc;
  add_layer(ls, &n, &st->input, st->in_H, 0);
  for (size_t i = 0; i < st->nblocks; i++) {
    const struct dvae_block *b = &st->blocks[i];
    if (b->id.w >= 0)
      add_layer(ls, &n, &b->id, b->H, 0);
    add_layer(ls, &n, &b->conv[0], b->H, BEIT_CONV_RELU_INPUT | BEIT_CONV_RELU_OUTPUT);
    add_layer(ls, &n, &b->conv[1], b->H, BEIT_CONV_RELU_OUTPUT);
    add_layer(ls, &n, &b->conv[2], b->H, BEIT_CONV_RELU_OUTPUT);
    add_layer(ls, &n, &b->conv[3], b->H, 0);
  }
  add_layer(ls, &n, &st->output, st->out_H, BEIT_CONV_RELU_INPUT);
  double total_flops = 0.0, total_time = 0.0, peak_time = 0.0;
  const char *peak_name = use_bf16 ? "bf16 mm" : "sgemm";
  printf("\nconv layers of the encoder (batch %zu, %s), each alone, against a %s timed next to "
         "it:\n", B, use_bf16 ? "bf16" : "fp32", peak_name);
  printf("  %5s %5s %2s %4s %3s %9s %9s %9s %7s\n", "C", "OC", "K", "HxW", "n", "GFLOP", "GFLOP/s",
         peak_name, "of peak");
  for (int i = 0; i < n; i++) {
    const struct layer *l = &ls[i];
    float *inp = randu(B * l->n_in * l->H * l->H, -1, 1, 3);
    const size_t nw = l->n_out * l->n_in * l->k * l->k;
    float *w = randu(nw, -0.05f, 0.05f, 4);
    beit_bf16 *wh = malloc(nw * sizeof *wh);
    if (!wh)
      die("out of memory", NULL);
    beit_to_bf16(wh, w, nw);
    float *bias = randu(l->n_out, -0.1f, 0.1f, 5);
    float *out = beit_alloc_floats(B * l->n_out * l->H * l->H);
    size_t nscr = use_bf16
                      ? beit_conv2d_bf16_scratch_floats(l->n_in, l->H, l->H, l->n_out, l->k, nt)
                      : beit_conv2d_scratch_floats(l->n_in, l->H, l->H, l->n_out, l->k, nt);
    float *scr = beit_alloc_floats(nscr ? nscr : 1);
    double fl = beit_conv2d_flops(B, l->n_in, l->H, l->H, l->n_out, l->k), best = 1e30;
    for (int r = 0; r < 4; r++) { /* the first run creates bf16 primitives: not counted */
      double t0 = beit_clock_now();
      if (use_bf16)
        beit_conv2d_forward_bf16(out, scr, inp, wh, bias, 1.0f, 0, l->flags, B, l->n_in, l->H,
                                 l->H, l->n_out, l->k, nt);
      else
        beit_conv2d_forward(out, scr, inp, w, bias, 1.0f, 0, l->flags, B, l->n_in, l->H, l->H,
                            l->n_out, l->k, nt);
      double t = beit_clock_now() - t0;
      best = t < best || r == 1 ? t : best;
    }
    const double local = gemm_rate(1024, 0.0);
    printf("  %5zu %5zu %2zu %4zu %3d %9.2f %9.1f %9.1f %6.0f%%\n", l->n_in, l->n_out, l->k,
           l->H, l->count, fl / 1e9, fl / best / 1e9, local, 100.0 * fl / best / 1e9 / local);
    total_flops += fl * l->count;
    total_time += best * l->count;
    peak_time += fl * l->count / (local * 1e9); /* time at the local peak */
    free(inp), free(w), free(wh), free(bias), free(out), free(scr);
  }
  double rate = total_flops / total_time / 1e9, frac = peak_time / total_time;
  printf("  all conv layers: %.1f GFLOP in %.3f s = %.1f GFLOP/s = %.0f%% of the %s peak "
         "(each layer against its neighbouring product, time-weighted)\n",
         total_flops / 1e9, total_time, rate, 100.0 * frac, peak_name);
  return frac;
}

int main(int argc, char **argv)
{
  beit_flush_denormals(); /* as every beit command does */
  int threads = 0, iters = 3, train_iters = 20, rounds = 3;
  int skip_encoder = 0, skip_layers = 0, skip_train = 0, skip_torch = 0, skip_peak = 0;
  size_t batch = 8, size = 112, train_batch = 64;
  const char *python = "/usr/bin/python3", *script = BEIT_BENCH_DVAE_REF;
  const char *train_config = BEIT_BENCH_TRAIN_CONFIG, *precision = "fp32";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--precision") && i + 1 < argc) precision = argv[++i];
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = (size_t)atol(argv[++i]);
    else if (!strcmp(argv[i], "--size") && i + 1 < argc) size = (size_t)atol(argv[++i]);
    else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--train-config") && i + 1 < argc) train_config = argv[++i];
    else if (!strcmp(argv[i], "--train-batch") && i + 1 < argc) train_batch = (size_t)atol(argv[++i]);
    else if (!strcmp(argv[i], "--train-iters") && i + 1 < argc) train_iters = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--python") && i + 1 < argc) python = argv[++i];
    else if (!strcmp(argv[i], "--script") && i + 1 < argc) script = argv[++i];
    else if (!strcmp(argv[i], "--skip-encoder")) skip_encoder = 1;
    else if (!strcmp(argv[i], "--skip-layers")) skip_layers = 1;
    else if (!strcmp(argv[i], "--skip-train")) skip_train = 1;
    else if (!strcmp(argv[i], "--skip-torch")) skip_torch = 1;
    else if (!strcmp(argv[i], "--skip-peak")) skip_peak = 1;
    else {
      fprintf(stderr, "usage: bench_tokenizer [--precision fp32|bf16|auto] [--threads T] "
                      "[--batch B] [--size S] [--iters N] [--rounds N] [--train-config FILE] "
                      "[--train-batch B] [--train-iters N] [--python P] [--script F] "
                      "[--skip-encoder] [--skip-layers] [--skip-train] [--skip-torch] "
                      "[--skip-peak]\n");
      return 2;
    }
  }
  if (threads > 0)
    omp_set_num_threads(threads);
  const int nt = omp_get_max_threads();
  struct beit_error err = {0};
  char cpu[256];
  const char *torch_python = skip_torch ? NULL : python; /* NULL: no PyTorch rounds */
  enum beit_precision prec;
  if (beit_precision_parse(&prec, precision, &err) || beit_precision_resolve(&prec, prec, &err))
    die("--precision", &err);
  use_bf16 = prec == BEIT_PRECISION_BF16;
  const char *pname = beit_precision_name(prec);
  const char *peak_name = use_bf16 ? "oneDNN bf16 matmul" : "cblas_sgemm";
  cpu_model(cpu, sizeof cpu);

  /* On a shared machine the peak is measured again around the encoder runs; the largest is used. */
  double peak = skip_peak ? NAN : gemm_peak();
  printf("bench_tokenizer: %s; %d threads; precision %s (PyTorch side: %s); ISA %s\n", cpu, nt,
         pname, use_bf16 ? "torch.autocast cpu bfloat16" : "float32", beit_precision_isa());
  printf("%s peak (2048^3) %.1f GFLOP/s\n", peak_name, peak);

  if (!skip_encoder) {
    struct beit_tokenizer_config cfg;
    beit_tokenizer_config_defaults(&cfg);
    cfg.image_size = (long)size;
    cfg.decoder = 0;
    struct beit_tokenizer *tok;
    if (beit_tokenizer_create(&tok, &cfg, batch, 1, &err) ||
        beit_tokenizer_set_precision(tok, prec, &err))
      die("DALL-E encoder", &err);
    float *x = randu(batch * 3 * size * size, 0.1f, 0.9f, 7);
    int32_t *tokens = malloc(batch * tok->gh * tok->gw * sizeof *tokens);
    beit_tokenizer_encode(tok, tokens, NULL, x, batch, &err); /* warm-up */
    const double gf = beit_tokenizer_encoder_flops(tok) / 1e9;
    printf("\nDALL-E encoder forward, batch %zu, %zux%zu, %.1f GFLOP/image, %s: C and PyTorch "
           "alternate for %d rounds (best of %d batches each)\n", batch, size, size, gf, pname,
           rounds, iters);
    /* C and PyTorch alternate, each keeping its best, so that a busy moment on a shared
     * machine does not land on one side only; the rounds' ratios give the spread. */
    double best = 1e30, t_rate = NAN, ratio_lo = INFINITY, ratio_hi = 0.0;
    double c_cpu = INFINITY, t_cpu = INFINITY;
    for (int round = 0; round < rounds; round++) {
      double before = skip_peak ? NAN : gemm_rate(1024, 0.3), round_best = 1e30;
      const double cpu0 = cpu_now();
      for (int r = 0; r < iters; r++) {
        double t0 = beit_clock_now();
        beit_tokenizer_encode(tok, tokens, NULL, x, batch, &err);
        double t = beit_clock_now() - t0;
        round_best = t < round_best ? t : round_best;
      }
      const double round_cpu = (cpu_now() - cpu0) / iters;
      c_cpu = fmin(c_cpu, round_cpu);
      best = round_best < best ? round_best : best;
      if (!skip_peak) { /* the larger of the peaks around the runs: a busy moment lowers both */
        double after = gemm_rate(1024, 0.3);
        peak = fmax(peak, fmax(before, after));
      }
      double tcpu;
      double tr = torch_round(torch_python, script, &tcpu, &t_rate, &t_cpu,
                              "bench-encoder --batch %zu --size %zu --threads %d --iters %d "
                              "--precision %s", batch, size, nt, iters, pname);
      if (!isnan(tr)) {
        ratio_lo = fmin(ratio_lo, (double)batch / round_best / tr);
        ratio_hi = fmax(ratio_hi, (double)batch / round_best / tr);
      }
      printf("  round %d: C %.2f images/s (%.3f s/batch, %.3f CPU s/batch), PyTorch %.2f "
             "images/s (%.3f CPU s/batch), ratio %.2fx\n",
             round + 1, (double)batch / round_best, round_best, round_cpu, tr, tcpu,
             (double)batch / round_best / tr);
    }
    const double rate = (double)batch / best;
    printf("C: %.3f s/batch, %.1f GFLOP/s = %.0f%% of the %s peak\n", best, gf * rate,
           100.0 * gf * rate / peak, peak_name);
    if (!isnan(t_rate))
      printf("PyTorch: %.3f s/batch, %.1f GFLOP/s = %.0f%% of the %s peak; ratio per round "
             "%.2fx .. %.2fx\n", (double)batch / t_rate, gf * t_rate,
             100.0 * gf * t_rate / peak, peak_name, ratio_lo, ratio_hi);
    if (!skip_torch && t_cpu < INFINITY)
      printf("CPU time per batch (all threads; steadier than wall time on a shared machine): C "
             "%.3f s, PyTorch %.3f s: PyTorch costs %.2fx\n", c_cpu, t_cpu, t_cpu / c_cpu);
    char what[64];
    snprintf(what, sizeof what, "DALL-E encoder forward (%s)", pname);
    print_ratio(what, rate, t_rate, use_bf16 ? 1.5 : 1.0);
    if (!skip_layers)
      bench_layers(tok, batch, nt);
    free(x), free(tokens);
    beit_tokenizer_free(tok);
  }

  if (!skip_train) {
    struct beit_tokenizer_config cfg;
    beit_tokenizer_config_defaults(&cfg);
    cJSON *root = NULL;
    if (beit_json_read_file(&root, train_config, &err))
      die("train config", &err);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    size_t nk;
    const struct beit_config_key *keys = beit_dvae_config_keys(&nk);
    if (beit_config_from_json(&cfg, keys, nk, model ? model : root, train_config, &err))
      die("train config", &err);
    cJSON_Delete(root);
    struct beit_tokenizer *tok;
    if (beit_tokenizer_create(&tok, &cfg, train_batch, 1, &err) ||
        beit_dvae_train_init(tok, train_batch, &err) ||
        beit_tokenizer_set_precision(tok, prec, &err))
      die("training tokenizer", &err);
    float *x = randu(train_batch * tok->C * tok->S * tok->S, 0.1f, 0.9f, 9);
    float *m = beit_alloc_floats(tok->table.total), *v = beit_alloc_floats(tok->table.total);
    struct beit_dvae_hparams hp = {1e-3, 1e-4, 0.9, 0.999, 1e-8, 1.0, 0.9f, 1.0f, 0};
    struct beit_dvae_step_stats stats;
    for (int r = 0; r < 2; r++) { /* warm-up */
      hp.step++;
      beit_dvae_train_step(tok, x, train_batch, &hp, 1, m, v, &stats);
    }
    /* C and PyTorch alternate for `rounds` rounds; each side keeps its best step, so a busy
     * moment on a shared machine does not land on one side only. */
    double best = 1e30, t_rate = NAN, c_cpu = 1e30, t_cpu = 1e30;
    const double fl = 3.0 * (beit_tokenizer_encoder_flops(tok) + beit_tokenizer_decoder_flops(tok));
    for (int round = 0; round < rounds; round++) {
      double round_best = 1e30, cpu0 = cpu_now();
      for (int r = 0; r < train_iters; r++) {
        hp.step++;
        double t0 = beit_clock_now();
        beit_dvae_train_step(tok, x, train_batch, &hp, 1, m, v, &stats);
        double t = beit_clock_now() - t0;
        round_best = t < round_best ? t : round_best;
      }
      const double round_cpu = (cpu_now() - cpu0) / train_iters;
      c_cpu = round_cpu < c_cpu ? round_cpu : c_cpu;
      best = round_best < best ? round_best : best;
      double tcpu;
      double tr = torch_round(torch_python, script, &tcpu, &t_rate, &t_cpu,
                              "bench-train %s --batch %zu --threads %d --iters %d --precision %s",
                              train_config, train_batch, nt, train_iters, pname);
      printf("  round %d: C %.1f images/s (%.3f CPU s/step), PyTorch %.1f images/s (%.3f CPU "
             "s/step)\n",
             round + 1, (double)train_batch / round_best, round_cpu, tr, tcpu);
    }
    const double rate = (double)train_batch / best;
    printf("\ntraining step of %s (batch %zu, %zux%zu, vocab %zu, %zu params, %s): %.4f s/step, "
           "~%.1f GFLOP/s (3x forward FLOPs)\n",
           train_config, train_batch, tok->S, tok->S, tok->V, beit_tokenizer_num_params(tok),
           pname, best, fl * rate / 1e9);
    if (!skip_torch && t_cpu < 1e30)
      printf("CPU time per step (all threads; steadier than wall time on a shared machine): C "
             "%.3f s, PyTorch %.3f s: PyTorch costs %.2fx\n",
             c_cpu, t_cpu, t_cpu / c_cpu);
    print_ratio("tokenizer training step", rate, t_rate, 2.0);
    free(x), free(m), free(v);
    beit_tokenizer_free(tok);
  }
  return 0;
}
