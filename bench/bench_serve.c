/* C side of the serving benchmark: the offline forward of a classifier folder through the
 * inference library (beit_infer), on the same images as the server and PyTorch sides.
 *
 *   bench_serve --model DIR [--batch B] [--iters N] [--batch-iters M] IMAGE...
 *
 * Timed: decode + preprocess per image; the batch-1 forward (median of N after a warm-up); the
 * batch-B forward (median of M). OpenMP threads as the environment says (OMP_NUM_THREADS).
 * Prints one JSON line. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "beit/infer.h"
#include "bench_util.h"
#include "clock.h"

static unsigned char *read_all(const char *path, size_t *n)
{
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *p = len > 0 ? malloc((size_t)len) : NULL;
  if (p && fread(p, 1, (size_t)len, f) != (size_t)len) {
    free(p);
    p = NULL;
  }
  fclose(f);
  *n = (size_t)len;
  return p;
}

int main(int argc, char **argv)
{
  beit_flush_denormals(); /* as every beit command does */
  const char *model = NULL;
  const char *precision = "auto";
  int batch = 8, iters = 10, batch_iters = 3, first = argc;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--model") && i + 1 < argc)
      model = argv[++i];
    else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
      batch = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--iters") && i + 1 < argc)
      iters = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--batch-iters") && i + 1 < argc)
      batch_iters = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--precision") && i + 1 < argc)
      precision = argv[++i];
    else {
      first = i;
      break;
    }
  }
  int n = argc - first;
  if (!model || n < 1 || batch < 1 || iters < 1 || batch_iters < 1) {
    fprintf(stderr, "usage: bench_serve --model DIR [--batch B] [--iters N] [--batch-iters M] "
                    "[--precision auto|fp32|bf16] IMAGE...\n");
    return 2;
  }
  if (batch > n)
    batch = n;
  struct beit_infer_options opt;
  beit_infer_defaults(&opt);
  opt.max_batch = (size_t)batch;
  struct beit_infer *inf = NULL;
  struct beit_error err = {0};
  if (beit_precision_parse(&opt.precision, precision, &err) ||
      beit_infer_load(&inf, model, &opt, &err)) {
    fprintf(stderr, "bench_serve: %s\n", err.message);
    return 1;
  }
  size_t V = beit_infer_view_floats(inf), C = beit_infer_num_labels(inf);
  float *views = malloc((size_t)n * V * sizeof *views), *probs = malloc((size_t)n * C * sizeof *probs);
  struct beit_data_scratch *ws = beit_data_scratch_init();
  double prep = 0;
  for (int i = 0; i < n; i++) {
    size_t size = 0;
    unsigned char *bytes = read_all(argv[first + i], &size);
    double t = beit_clock_now();
    if (!bytes || beit_infer_prepare(inf, bytes, size, argv[first + i], views + (size_t)i * V,
                                     NULL, ws, &err)) {
      fprintf(stderr, "bench_serve: %s: %s\n", argv[first + i], bytes ? err.message : "unreadable");
      return 1;
    }
    prep += beit_clock_now() - t;
    free(bytes);
  }
  double *lat = malloc(sizeof(double) * (size_t)(iters > batch_iters ? iters : batch_iters));
  beit_infer_run(inf, 0, views, 1, probs, &err); /* warm-up */
  for (int i = 0; i < iters; i++) {
    double t = beit_clock_now();
    if (beit_infer_run(inf, 0, views + (size_t)(i % n) * V, 1, probs, &err)) {
      fprintf(stderr, "bench_serve: %s\n", err.message);
      return 1;
    }
    lat[i] = beit_clock_now() - t;
  }
  double b1 = bench_median(lat, iters), b1_min = lat[0];
  beit_infer_run(inf, 0, views, (size_t)batch, probs, &err);
  for (int i = 0; i < batch_iters; i++) {
    double t = beit_clock_now();
    beit_infer_run(inf, 0, views, (size_t)batch, probs, &err);
    lat[i] = beit_clock_now() - t;
  }
  double bb = bench_median(lat, batch_iters);
  printf("{\"side\": \"c\", \"precision\": \"%s\", \"threads\": %d, \"batch1_latency_ms\": %.2f, "
         "\"batch1_min_ms\": %.2f, \"batch\": %d, \"batch_images_per_s\": %.3f, "
         "\"preprocess_ms_per_image\": %.3f}\n",
         beit_precision_name(beit_infer_get_options(inf)->precision), omp_get_max_threads(),
         1e3 * b1, 1e3 * b1_min, batch, batch / bb, 1e3 * prep / n);
  free(lat);
  free(views);
  free(probs);
  beit_data_scratch_free(ws);
  beit_infer_free(inf);
  return 0;
}
