/* Gradient allreduce benchmark: beit_dist_grads (bucketed MPI_Iallreduce + 1/world scaling) on
 * the gradient sizes of the small Fashion-MNIST model and BEiT-base, for several bucket sizes.
 *
 *   mpirun -np 2 bench_allreduce [--floats N]... [--bucket B]... [--reps R] [--stages S]
 *                                [--no-overlap] [--timeout SECONDS]
 *   defaults: --floats 2779844 --floats 91965776 --bucket 1048576 --bucket 4194304
 *             --bucket 16777216 --reps 5 --stages 14 --timeout 600
 *   --timeout: the collectives' deadline (beit_dist_set_timeout), 600 s as in training: waits
 *   poll non-blocking requests; 0 = blocking MPI_Waitsome, as before deadlines existed.
 *
 * Per (size, bucket) it prints one JSON line per mode:
 *   all_at_once       every range announced at once, then finish: the time of one gradient
 *                     averaging (max over ranks, median over reps) and the bandwidth achieved:
 *                     algbw = bytes / time, busbw = algbw * 2(p-1)/p (what a ring moves per rank).
 *   overlap           a simulated backward: compute (a spin as long as all_at_once took, so that
 *                     perfect overlap could hide everything but the last bucket) cut into S
 *                     equal stages in the encoder's order (last floats first), each stage's
 *                     range announced when it ends (14: heads, 12 blocks, embeddings).
 *                     mpi_seconds = all MPI time of the step: on one node the reduction is
 *                     copies and adds done by the CPU inside those calls, so hiding it moves
 *                     it into the hooks rather than making it free. exposed_seconds = MPI time left in finish;
 *                     hidden_fraction = 1 - exposed / (MPI seconds of all_at_once).
 *   overlap_progress  the same with beit_dist_grads_progress every 1 ms of compute (OpenMPI has
 *                     no progress thread: a started collective only advances inside MPI calls).
 * memcpy_GBps is one rank's memcpy of the same buffer in the same run, for scale: on one node the
 * reduction is memory-bound, across nodes it is link-bound (docs/distributed.md).
 *
 * There is no PyTorch side: torch.distributed (gloo) would run the same MPI-free ring on the same
 * shared memory; the memcpy line is the reference here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "beit/distributed.h"
#include "bench_util.h"
#include "clock.h"

#define MAX_LIST 16

static void check(enum beit_status st, struct beit_dist *d, const struct beit_error *err)
{
  if (st != BEIT_STATUS_OK)
    beit_dist_abort(d, 1, err->message);
}

/* Largest value over ranks. */
static double max_over_ranks(struct beit_dist *d, double v)
{
  struct beit_error err = {0};
  check(beit_dist_allreduce_max_f64(d, &v, 1, &err), d, &err);
  return v;
}

/* Spin for `seconds`, calling progress every `every` seconds when every > 0. */
static void compute(struct beit_dist_grads *g, double seconds, double every)
{
  double t = beit_clock_now(), end = t + seconds, next = t + every;
  while ((t = beit_clock_now()) < end) {
    if (every > 0 && t >= next) {
      beit_dist_grads_progress(g);
      next = t + every;
    }
  }
}

enum mode { MODE_ALL, MODE_OVERLAP, MODE_OVERLAP_PROGRESS };
static const char *const mode_names[] = {"all_at_once", "overlap", "overlap_progress"};

/* One step; returns its wall time on this rank and fills the step's statistics. */
static double step(struct beit_dist *d, struct beit_dist_grads *g, size_t n, enum mode mode,
                   double compute_s, size_t stages, struct beit_dist_grads_stats *s)
{
  struct beit_error err = {0};
  check(beit_dist_barrier(d, &err), d, &err);
  double t0 = beit_clock_now();
  beit_dist_grads_begin(g);
  if (mode == MODE_ALL) {
    beit_dist_grads_ready(g, 0, n);
  } else {
    double every = mode == MODE_OVERLAP_PROGRESS ? 1e-3 : 0.0;
    for (size_t st = stages; st-- > 0;) {
      size_t lo = n * st / stages, hi = n * (st + 1) / stages;
      compute(g, compute_s * (double)(hi - lo) / (double)n, every);
      beit_dist_grads_ready(g, lo, hi);
    }
  }
  check(beit_dist_grads_finish(g, &err), d, &err);
  double dt = beit_clock_now() - t0;
  beit_dist_grads_get_stats(g, s);
  return dt;
}

static double memcpy_gbps(float *src, size_t n)
{
  float *dst = malloc(n * sizeof *dst);
  if (!dst)
    return 0.0;
  memcpy(dst, src, n * sizeof *dst); /* fault the pages in */
  double best = 1e30;
  for (int r = 0; r < 3; r++) {
    double t0 = beit_clock_now();
    memcpy(dst, src, n * sizeof *dst);
    double dt = beit_clock_now() - t0;
    best = dt < best ? dt : best;
  }
  volatile float sink = dst[n / 2];
  (void)sink;
  free(dst);
  return (double)(n * sizeof(float)) / best / 1e9;
}

int main(int argc, char **argv)
{
  struct beit_error err = {0};
  struct beit_dist *d = NULL;
  if (beit_dist_init(&d, &argc, &argv, &err) != BEIT_STATUS_OK)
    beit_dist_abort(NULL, 1, err.message);
  size_t floats[MAX_LIST], buckets[MAX_LIST];
  int nf = 0, nb = 0, reps = 5, overlap = 1;
  double timeout = 600.0; /* the training default (recipe key distributed.timeout_s) */
  size_t stages = 14; /* heads, 12 blocks, embeddings: BEiT-base's announcements */
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--floats") == 0 && i + 1 < argc && nf < MAX_LIST)
      floats[nf++] = strtoull(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--bucket") == 0 && i + 1 < argc && nb < MAX_LIST)
      buckets[nb++] = strtoull(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
      reps = atoi(argv[++i]);
    else if (strcmp(argv[i], "--stages") == 0 && i + 1 < argc)
      stages = strtoull(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--no-overlap") == 0)
      overlap = 0;
    else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
      timeout = atof(argv[++i]);
    else {
      if (beit_dist_is_root(d))
        fprintf(stderr, "usage: bench_allreduce [--floats N]... [--bucket B]... [--reps R] "
                        "[--stages S] [--no-overlap] [--timeout SECONDS]\n");
      beit_dist_finalize(d);
      return 2;
    }
  }
  if (nf == 0) {
    floats[nf++] = 2779844;  /* configs/models/beit_small_fashion_mnist.json */
    floats[nf++] = 91965776; /* BEiT-base MIM */
  }
  if (nb == 0) {
    buckets[nb++] = (size_t)1 << 20;
    buckets[nb++] = (size_t)1 << 22;
    buckets[nb++] = (size_t)1 << 24;
  }
  if (reps < 1)
    reps = 1;
  beit_dist_set_timeout(d, timeout);
  if (stages < 1)
    stages = 1;
  int world = beit_dist_world_size(d), rank = beit_dist_rank(d);
  double *times = malloc((size_t)reps * sizeof *times);
  double *exposed = malloc((size_t)reps * sizeof *exposed);
  double *in_mpi = malloc((size_t)reps * sizeof *in_mpi);

  for (int f = 0; f < nf; f++) {
    size_t n = floats[f];
    float *x = malloc(n * sizeof *x);
    if (!x)
      beit_dist_abort(d, 1, "bench_allreduce: out of memory");
    for (size_t i = 0; i < n; i++)
      x[i] = (float)((i * 2654435761u + (size_t)rank) % 1000) * 1e-3f;
    double mcpy = memcpy_gbps(x, n);
    for (int b = 0; b < nb; b++) {
      struct beit_dist_grads *g = NULL;
      check(beit_dist_grads_init(&g, d, x, n, buckets[b], &err), d, &err);
      double all_at_once = 0.0, comm = 0.0; /* wall and MPI seconds of all_at_once */
      for (int m = MODE_ALL; m <= (overlap ? MODE_OVERLAP_PROGRESS : MODE_ALL); m++) {
        struct beit_dist_grads_stats s;
        double compute_s = m == MODE_ALL ? 0.0 : all_at_once;
        step(d, g, n, (enum mode)m, compute_s, stages, &s); /* warm-up */
        for (int r = 0; r < reps; r++) {
          times[r] = max_over_ranks(d, step(d, g, n, (enum mode)m, compute_s, stages, &s));
          exposed[r] = max_over_ranks(d, m == MODE_ALL ? s.mpi_seconds : s.exposed_seconds);
          in_mpi[r] = max_over_ranks(d, s.mpi_seconds);
        }
        double t = bench_median(times, reps), e = bench_median(exposed, reps), mpi_s = bench_median(in_mpi, reps);
        double t_min = times[0];
        for (int r = 1; r < reps; r++)
          t_min = times[r] < t_min ? times[r] : t_min;
        if (m == MODE_ALL) {
          all_at_once = t;
          comm = e;
        }
        if (!beit_dist_is_root(d))
          continue;
        double bytes = (double)n * sizeof(float);
        printf("{\"bench\":\"allreduce\",\"backend\":\"%s\",\"ranks\":%d,\"mode\":\"%s\","
               "\"floats\":%zu,\"bytes\":%.0f,\"bucket_floats\":%zu,\"buckets\":%zu,"
               "\"reps\":%d,\"timeout_s\":%g,",
               beit_dist_backend(), world, mode_names[m], n, bytes, buckets[b], s.buckets, reps,
               timeout);
        if (m == MODE_ALL)
          printf("\"seconds\":%.6f,\"seconds_min\":%.6f,\"mpi_seconds\":%.6f,"
                 "\"algbw_GBps\":%.3f,\"busbw_GBps\":%.3f,",
                 t, t_min, e, t > 0 ? bytes / t / 1e9 : 0.0,
                 t > 0 ? bytes / t / 1e9 * 2.0 * (world - 1) / world : 0.0);
        else
          printf("\"stages\":%zu,\"step_seconds\":%.6f,\"compute_seconds\":%.6f,"
                 "\"mpi_seconds\":%.6f,\"exposed_seconds\":%.6f,\"hidden_fraction\":%.3f,",
                 stages, t, compute_s, mpi_s, e, comm > 0 ? 1.0 - e / comm : 0.0);
        printf("\"memcpy_GBps\":%.3f}\n", mcpy);
        fflush(stdout);
      }
      beit_dist_grads_free(g);
    }
    free(x);
  }
  free(times);
  free(exposed);
  free(in_mpi);
  beit_dist_finalize(d);
  return 0;
}
