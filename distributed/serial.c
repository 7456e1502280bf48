/* Serial stand-in for include/beit/distributed.h (BEIT_USE_MPI=OFF): a job of one rank.
 *
 * Every collective is the identity: bcast and the reductions leave buffers as they are, and
 * gradient averaging over one rank leaves grads as they are. The bucket bookkeeping still runs,
 * so misuse of grads_ready (overlapping or out-of-range ranges, another thread) is reported here
 * exactly as in a real job. Launching this build under mpirun is refused at init: every process
 * would think it is rank 0 and write the same checkpoints. */
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dist_internal.h"

struct beit_dist {
  pthread_t main_thread; /* the thread of beit_dist_init: the only one allowed to call us */
  size_t chunk_bytes;    /* kept for parity with mpi.c; nothing is sent */
  double timeout;        /* kept for parity: one rank never waits for another */
  char context[96];
  char host[64];
  long pid;
};

struct beit_dist_grads {
  struct beit_dist *d;
  struct beit_dist_buckets b;
  struct beit_dist_grads_stats last;
};

const char *beit_dist_backend(void) { return "serial"; }

/* The size a launcher gave this process, or 0 when not launched as part of a job. */
static long launched_size(const char **var)
{
  static const char *const names[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    const char *s = getenv(names[i]);
    if (s && *s) {
      *var = names[i];
      return strtol(s, NULL, 10);
    }
  }
  return 0;
}

enum beit_status beit_dist_init(struct beit_dist **out, int *argc, char ***argv,
                                struct beit_error *err)
{
  *out = NULL;
  const char *var = NULL;
  long size = launched_size(&var);
  if (size > 1)
    return beit_error_set(err, BEIT_STATUS_UNSUPPORTED,
                          "launched as one of %ld ranks (%s) but built without MPI: rebuild with "
                          "-DBEIT_USE_MPI=ON",
                          size, var);
  struct beit_dist *d = calloc(1, sizeof *d);
  if (!d)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "distributed: out of memory");
  d->main_thread = pthread_self();
  d->chunk_bytes = BEIT_DIST_CHUNK_BYTES_DEFAULT;
  if (gethostname(d->host, sizeof d->host - 1) != 0)
    snprintf(d->host, sizeof d->host, "?");
  d->pid = (long)getpid();
  *out = d;
  return BEIT_STATUS_OK;
}

void beit_dist_finalize(struct beit_dist *d) { free(d); }

int beit_dist_rank(const struct beit_dist *d) { return 0; }
int beit_dist_world_size(const struct beit_dist *d) { return 1; }
int beit_dist_local_rank(const struct beit_dist *d) { return 0; }
int beit_dist_local_size(const struct beit_dist *d) { return 1; }
int beit_dist_is_root(const struct beit_dist *d) { return 1; }

void beit_dist_set_chunk_bytes(struct beit_dist *d, size_t bytes)
{
  d->chunk_bytes = bytes ? bytes : BEIT_DIST_CHUNK_BYTES_DEFAULT;
}

void beit_dist_set_timeout(struct beit_dist *d, double seconds)
{
  d->timeout = seconds > 0 ? seconds : 0.0;
}

double beit_dist_timeout(const struct beit_dist *d) { return d->timeout; }

void beit_dist_set_context(struct beit_dist *d, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(d->context, sizeof d->context, fmt, ap);
  va_end(ap);
}

const char *beit_dist_host(const struct beit_dist *d, int r) { return r == 0 ? d->host : ""; }
long beit_dist_pid(const struct beit_dist *d, int r) { return r == 0 ? d->pid : 0; }

enum beit_status beit_dist_test_mpi_error(struct beit_dist *d, struct beit_error *err)
{
  return BEIT_STATUS_OK;
}

enum beit_status beit_dist_bcast(struct beit_dist *d, void *buf, size_t bytes, int root,
                                 struct beit_error *err)
{
  if (root != 0)
    return beit_error_set(err, BEIT_STATUS_USAGE, "rank 0: bcast: root %d outside 0..0", root);
  return BEIT_STATUS_OK;
}

enum beit_status beit_dist_allreduce_sum_f64(struct beit_dist *d, double *values, size_t n,
                                             struct beit_error *err)
{
  return BEIT_STATUS_OK;
}

enum beit_status beit_dist_allreduce_max_f64(struct beit_dist *d, double *values, size_t n,
                                             struct beit_error *err)
{
  return BEIT_STATUS_OK;
}

enum beit_status beit_dist_barrier(struct beit_dist *d, struct beit_error *err)
{
  return BEIT_STATUS_OK;
}

_Noreturn void beit_dist_abort(struct beit_dist *d, int code, const char *message)
{
  fprintf(stderr, "rank 0: %s\n", message ? message : "aborting");
  fflush(stderr);
  _Exit(code == 0 ? 1 : code);
}

enum beit_status beit_dist_grads_init(struct beit_dist_grads **out, struct beit_dist *d,
                                      float *grads, size_t n, size_t bucket_floats,
                                      struct beit_error *err)
{
  *out = NULL;
  if (!grads && n > 0)
    return beit_error_set(err, BEIT_STATUS_USAGE, "rank 0: gradient buckets: NULL buffer");
  if (bucket_floats == 0 || bucket_floats > (size_t)INT_MAX)
    return beit_error_set(err, BEIT_STATUS_USAGE,
                          "rank 0: gradient buckets: bucket size %zu floats outside 1..%d",
                          bucket_floats, INT_MAX);
  struct beit_dist_grads *g = calloc(1, sizeof *g);
  if (!g)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "gradient buckets: out of memory");
  enum beit_status st = beit_dist_buckets_init(&g->b, n, bucket_floats, err);
  if (st != BEIT_STATUS_OK) {
    free(g);
    return st;
  }
  g->d = d;
  g->last.buckets = g->b.count;
  g->last.bytes = n * sizeof(float);
  *out = g;
  return BEIT_STATUS_OK;
}

void beit_dist_grads_free(struct beit_dist_grads *g)
{
  if (!g)
    return;
  beit_dist_buckets_free(&g->b);
  free(g);
}

void beit_dist_grads_begin(struct beit_dist_grads *g) { beit_dist_buckets_reset(&g->b); }

void beit_dist_grads_ready(void *ctx, size_t begin, size_t end)
{
  struct beit_dist_grads *g = ctx;
  size_t k;
  if (beit_dist_buckets_ready(&g->b, pthread_equal(pthread_self(), g->d->main_thread),
                              "the one that called beit_dist_init", begin, end))
    while (beit_dist_buckets_pop_ready(&g->b, &k))
      ;
}

void beit_dist_grads_progress(struct beit_dist_grads *g) {}

enum beit_status beit_dist_grads_finish(struct beit_dist_grads *g, struct beit_error *err)
{
  size_t k;
  while (beit_dist_buckets_pop_any(&g->b, &k))
    ;
  g->last.mpi_seconds = g->last.exposed_seconds = g->last.finish_seconds = 0.0;
  g->last.buckets_late = g->b.late;
  g->last.buckets_early = 0;
  enum beit_status st = g->b.pending.status;
  if (st != BEIT_STATUS_OK)
    beit_error_set(err, st, "rank 0: %s", g->b.pending.message);
  beit_dist_buckets_reset(&g->b);
  return st;
}

void beit_dist_grads_get_stats(const struct beit_dist_grads *g,
                               struct beit_dist_grads_stats *out)
{
  *out = g->last;
}
