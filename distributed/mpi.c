/* OpenMPI implementation of include/beit/distributed.h: the only file of the project that
 * includes mpi.h (serial.c stands in when BEIT_USE_MPI is off).
 *
 * The job works on a duplicate of MPI_COMM_WORLD with MPI_ERRORS_RETURN, so a failed call comes
 * back as BEIT_STATUS_DISTRIBUTED with MPI_Error_string's text and the rank; the app decides
 * whether to beit_dist_abort. MPI counts are int: bcast and the f64 reductions are cut into
 * chunks, gradient buckets are at most INT_MAX floats. */
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist_internal.h"

struct beit_dist {
  MPI_Comm comm;     /* a duplicate of MPI_COMM_WORLD with MPI_ERRORS_RETURN */
  int rank, world;
  int local_rank, local_size;
  int owns_mpi;      /* beit_dist_init called MPI_Init_thread: finalize calls MPI_Finalize */
  size_t chunk_bytes; /* largest single message of bcast / f64 reductions */
};

struct beit_dist_grads {
  struct beit_dist *d;
  float *grads; /* (n) the caller's buffer */
  struct beit_dist_buckets b;
  MPI_Request *req; /* (b.count) MPI_REQUEST_NULL when not in flight */
  int *done;        /* (b.count) indices from MPI_Testsome / MPI_Waitsome */
  double mpi_seconds, exposed_seconds; /* of the step in progress */
  size_t early;                        /* buckets completed by test_started this step */
  struct beit_dist_grads_stats last;  /* of the last finished step */
};

const char *beit_dist_backend(void) { return "mpi"; }

/* "call: MPI_ERR_...: text" into buf */
static void mpi_text(char *buf, size_t size, int rc, const char *call)
{
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS)
    snprintf(text, sizeof text, "MPI error code %d", rc);
  snprintf(buf, size, "%s: %s", call, text);
}

/* "rank R: call: MPI_ERR_...: text" */
static enum beit_status mpi_fail(int rank, struct beit_error *err, int rc, const char *call)
{
  char text[MPI_MAX_ERROR_STRING + 128];
  mpi_text(text, sizeof text, rc, call);
  return beit_error_set(err, BEIT_STATUS_DISTRIBUTED, "rank %d: %s", rank, text);
}

/* A rank index from the environment, or -1 when unset or not a number. */
static int env_rank(const char *name)
{
  const char *s = getenv(name);
  if (!s || !*s)
    return -1;
  char *end = NULL;
  long v = strtol(s, &end, 10);
  if (*end != '\0' || v < 0 || v > INT_MAX)
    return -1;
  return (int)v;
}

/* Node-local rank and size: a shared-memory split of the job, with the launcher's own number
 * (OMPI_COMM_WORLD_LOCAL_RANK under mpirun, SLURM_LOCALID under srun) preferred when it is
 * consistent with the split. */
static int find_local(struct beit_dist *d, struct beit_error *err)
{
  MPI_Comm node;
  int rc = MPI_Comm_split_type(d->comm, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &node);
  if (rc != MPI_SUCCESS)
    return mpi_fail(d->rank, err, rc, "MPI_Comm_split_type");
  MPI_Comm_rank(node, &d->local_rank);
  MPI_Comm_size(node, &d->local_size);
  MPI_Comm_free(&node);
  int env = env_rank("OMPI_COMM_WORLD_LOCAL_RANK");
  if (env < 0)
    env = env_rank("SLURM_LOCALID");
  if (env >= 0 && env < d->local_size)
    d->local_rank = env;
  return BEIT_STATUS_OK;
}

enum beit_status beit_dist_init(struct beit_dist **out, int *argc, char ***argv,
                                struct beit_error *err)
{
  *out = NULL;
  int inited = 0, finalized = 0, provided = MPI_THREAD_SINGLE, rc;
  MPI_Finalized(&finalized);
  if (finalized)
    return beit_error_set(err, BEIT_STATUS_DISTRIBUTED, "MPI was already finalized");
  MPI_Initialized(&inited);
  struct beit_dist *d = calloc(1, sizeof *d);
  if (!d)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "distributed: out of memory");
  d->chunk_bytes = BEIT_DIST_CHUNK_BYTES_DEFAULT;
  d->comm = MPI_COMM_NULL;
  if (!inited) {
    /* OpenMPI's libnbc runs every in-place MPI_Iallreduce as a binomial reduce + bcast: all
     * the arithmetic on rank 0, 2-4x slower here than a reduce-scatter + allgather. Ask for
     * Rabenseifner's (algorithm 3; libnbc falls back to its ring when a bucket has fewer
     * floats than ranks): bandwidth-optimal, 2 log2(p) rounds (the ring needs 2(p-1), and a
     * round only advances inside an MPI call), and every element is summed on one rank and
     * copied to the others, so results are bit-identical on every rank. A user's own setting
     * wins; MCA parameters are read from the environment at init. */
    setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "3", 0);
    /* FUNNELED: loader and OpenMP threads exist but only the main thread calls MPI */
    rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) {
      free(d);
      return mpi_fail(-1, err, rc, "MPI_Init_thread");
    }
    d->owns_mpi = 1;
    /* errors of the dup below come back too (the dup inherits this handler) */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  } else {
    MPI_Query_thread(&provided);
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
  enum beit_status st;
  if (provided < MPI_THREAD_FUNNELED) {
    st = beit_error_set(err, BEIT_STATUS_DISTRIBUTED,
                        "rank %d: MPI provides thread level %d, MPI_THREAD_FUNNELED (%d) needed",
                        d->rank, provided, MPI_THREAD_FUNNELED);
    goto fail;
  }
  rc = MPI_Comm_dup(MPI_COMM_WORLD, &d->comm);
  if (rc != MPI_SUCCESS) {
    st = mpi_fail(d->rank, err, rc, "MPI_Comm_dup");
    goto fail;
  }
  rc = MPI_Comm_set_errhandler(d->comm, MPI_ERRORS_RETURN);
  if (rc != MPI_SUCCESS) {
    st = mpi_fail(d->rank, err, rc, "MPI_Comm_set_errhandler");
    goto fail;
  }
  MPI_Comm_rank(d->comm, &d->rank);
  MPI_Comm_size(d->comm, &d->world);
  st = find_local(d, err);
  if (st != BEIT_STATUS_OK)
    goto fail;
  *out = d;
  return BEIT_STATUS_OK;
fail:
  /* MPI stays initialised: the caller ends the job with beit_dist_abort(NULL, ...) */
  if (d->comm != MPI_COMM_NULL)
    MPI_Comm_free(&d->comm);
  free(d);
  return st;
}

void beit_dist_finalize(struct beit_dist *d)
{
  if (!d)
    return;
  MPI_Comm_free(&d->comm);
  if (d->owns_mpi)
    MPI_Finalize();
  free(d);
}

int beit_dist_rank(const struct beit_dist *d) { return d->rank; }
int beit_dist_world_size(const struct beit_dist *d) { return d->world; }
int beit_dist_local_rank(const struct beit_dist *d) { return d->local_rank; }
int beit_dist_local_size(const struct beit_dist *d) { return d->local_size; }
int beit_dist_is_root(const struct beit_dist *d) { return d->rank == 0; }

void beit_dist_set_chunk_bytes(struct beit_dist *d, size_t bytes)
{
  d->chunk_bytes = bytes ? bytes : BEIT_DIST_CHUNK_BYTES_DEFAULT;
  if (d->chunk_bytes > (size_t)INT_MAX)
    d->chunk_bytes = (size_t)INT_MAX;
}

enum beit_status beit_dist_bcast(struct beit_dist *d, void *buf, size_t bytes, int root,
                                 struct beit_error *err)
{
  if (root < 0 || root >= d->world)
    return beit_error_set(err, BEIT_STATUS_USAGE, "rank %d: bcast: root %d outside 0..%d",
                          d->rank, root, d->world - 1);
  char *p = buf;
  for (size_t off = 0; off < bytes;) {
    size_t len = bytes - off < d->chunk_bytes ? bytes - off : d->chunk_bytes;
    int rc = MPI_Bcast(p + off, (int)len, MPI_BYTE, root, d->comm);
    if (rc != MPI_SUCCESS)
      return mpi_fail(d->rank, err, rc, "MPI_Bcast");
    off += len;
  }
  return BEIT_STATUS_OK;
}

static enum beit_status allreduce_f64(struct beit_dist *d, double *values, size_t n, MPI_Op op,
                                      const char *what, struct beit_error *err)
{
  size_t chunk = d->chunk_bytes / sizeof(double);
  if (chunk == 0)
    chunk = 1;
  for (size_t off = 0; off < n;) {
    size_t len = n - off < chunk ? n - off : chunk;
    int rc = MPI_Allreduce(MPI_IN_PLACE, values + off, (int)len, MPI_DOUBLE, op, d->comm);
    if (rc != MPI_SUCCESS)
      return mpi_fail(d->rank, err, rc, what);
    off += len;
  }
  return BEIT_STATUS_OK;
}

enum beit_status beit_dist_allreduce_sum_f64(struct beit_dist *d, double *values, size_t n,
                                             struct beit_error *err)
{
  return allreduce_f64(d, values, n, MPI_SUM, "MPI_Allreduce(sum)", err);
}

enum beit_status beit_dist_allreduce_max_f64(struct beit_dist *d, double *values, size_t n,
                                             struct beit_error *err)
{
  return allreduce_f64(d, values, n, MPI_MAX, "MPI_Allreduce(max)", err);
}

enum beit_status beit_dist_barrier(struct beit_dist *d, struct beit_error *err)
{
  int rc = MPI_Barrier(d->comm);
  return rc == MPI_SUCCESS ? BEIT_STATUS_OK : mpi_fail(d->rank, err, rc, "MPI_Barrier");
}

_Noreturn void beit_dist_abort(struct beit_dist *d, int code, const char *message)
{
  int inited = 0, finalized = 0, rank = -1;
  MPI_Initialized(&inited);
  MPI_Finalized(&finalized);
  if (d)
    rank = d->rank;
  else if (inited && !finalized)
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  fprintf(stderr, "rank %d: %s\n", rank, message ? message : "aborting");
  fflush(stderr);
  if (code == 0)
    code = 1;
  if (inited && !finalized)
    MPI_Abort(MPI_COMM_WORLD, code); /* the whole job, not just d's communicator */
  _Exit(code);
}

/* Test hook (dist_internal.h): an MPI call that fails locally on every rank, to show that
 * errors come back through MPI_ERRORS_RETURN as statuses. */
enum beit_status beit_dist_test_mpi_error(struct beit_dist *d, struct beit_error *err)
{
  char byte = 0;
  int rc = MPI_Bcast(&byte, 1, MPI_BYTE, d->world + 7, d->comm); /* invalid root */
  if (rc == MPI_SUCCESS)
    return BEIT_STATUS_OK;
  return mpi_fail(d->rank, err, rc, "MPI_Bcast");
}

/* ---- gradient buckets ---- */

static double now(void) { return MPI_Wtime(); }

/* Failures inside the hook are kept for finish, which prefixes the rank. */
static void record_mpi_failure(struct beit_dist_grads *g, int rc, const char *call)
{
  char text[MPI_MAX_ERROR_STRING + 128];
  mpi_text(text, sizeof text, rc, call);
  beit_dist_buckets_fail(&g->b, BEIT_STATUS_DISTRIBUTED, "%s", text);
}

static void start_bucket(struct beit_dist_grads *g, size_t k)
{
  size_t lo = beit_dist_bucket_begin(&g->b, k), hi = beit_dist_bucket_end(&g->b, k);
  double t0 = now();
  int rc = MPI_Iallreduce(MPI_IN_PLACE, g->grads + lo, (int)(hi - lo), MPI_FLOAT, MPI_SUM,
                          g->d->comm, &g->req[k]);
  g->mpi_seconds += now() - t0;
  if (rc != MPI_SUCCESS) {
    g->req[k] = MPI_REQUEST_NULL;
    record_mpi_failure(g, rc, "MPI_Iallreduce");
  }
}

/* The sum becomes the average as soon as a bucket's reduction completes: while its floats are
 * still in cache, and inside the hook rather than in finish. The same float multiply of the same
 * sums on every rank: bit-identical results. */
static void scale_bucket(struct beit_dist_grads *g, size_t k)
{
  if (g->d->world == 1)
    return;
  const float scale = (float)(1.0 / (double)g->d->world);
  float *x = g->grads + beit_dist_bucket_begin(&g->b, k);
  size_t len = beit_dist_bucket_end(&g->b, k) - beit_dist_bucket_begin(&g->b, k);
#pragma omp parallel for simd schedule(static) if (len >= ((size_t)1 << 16))
  for (size_t i = 0; i < len; i++)
    x[i] *= scale;
}

/* Requests [next, count) are the started ones; completed ones are MPI_REQUEST_NULL. Drive them
 * (MPI_Testsome: progress like MPI_Testall, and it names what completed) and scale what
 * completed. */
static void test_started(struct beit_dist_grads *g)
{
  size_t started = g->b.count - g->b.next;
  if (started == 0)
    return;
  int done = 0;
  double t0 = now();
  int rc = MPI_Testsome((int)started, g->req + g->b.next, &done, g->done, MPI_STATUSES_IGNORE);
  g->mpi_seconds += now() - t0;
  if (rc != MPI_SUCCESS) {
    record_mpi_failure(g, rc, "MPI_Testsome");
    return;
  }
  for (int i = 0; i < done && done != MPI_UNDEFINED; i++) {
    scale_bucket(g, g->b.next + (size_t)g->done[i]);
    g->early++;
  }
}

/* Complete everything in flight, scaling each bucket as it completes when `scale`; returns the
 * seconds spent inside MPI. */
static double wait_started(struct beit_dist_grads *g, int scale)
{
  size_t started = g->b.count - g->b.next;
  double spent = 0.0;
  while (started > 0) {
    int done = 0;
    double t0 = now();
    int rc = MPI_Waitsome((int)started, g->req + g->b.next, &done, g->done, MPI_STATUSES_IGNORE);
    spent += now() - t0;
    if (rc != MPI_SUCCESS) {
      record_mpi_failure(g, rc, "MPI_Waitsome");
      for (size_t k = g->b.next; k < g->b.count; k++)
        g->req[k] = MPI_REQUEST_NULL; /* the job is broken; do not wait forever */
      break;
    }
    if (done == MPI_UNDEFINED) /* nothing left in flight */
      break;
    for (int i = 0; i < done && scale; i++)
      scale_bucket(g, g->b.next + (size_t)g->done[i]);
  }
  g->mpi_seconds += spent;
  return spent;
}

enum beit_status beit_dist_grads_init(struct beit_dist_grads **out, struct beit_dist *d,
                                      float *grads, size_t n, size_t bucket_floats,
                                      struct beit_error *err)
{
  *out = NULL;
  if (!grads && n > 0)
    return beit_error_set(err, BEIT_STATUS_USAGE, "rank %d: gradient buckets: NULL buffer",
                          d->rank);
  if (bucket_floats == 0 || bucket_floats > (size_t)INT_MAX)
    return beit_error_set(err, BEIT_STATUS_USAGE,
                          "rank %d: gradient buckets: bucket size %zu floats outside 1..%d",
                          d->rank, bucket_floats, INT_MAX);
  if (n / bucket_floats >= (size_t)INT_MAX)
    return beit_error_set(err, BEIT_STATUS_USAGE,
                          "rank %d: gradient buckets: %zu floats in buckets of %zu: too many",
                          d->rank, n, bucket_floats);
  struct beit_dist_grads *g = calloc(1, sizeof *g);
  if (!g)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "gradient buckets: out of memory");
  enum beit_status st = beit_dist_buckets_init(&g->b, n, bucket_floats, err);
  if (st != BEIT_STATUS_OK)
    goto free_g;
  g->req = malloc((g->b.count ? g->b.count : 1) * sizeof *g->req);
  g->done = malloc((g->b.count ? g->b.count : 1) * sizeof *g->done);
  if (!g->req || !g->done) {
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "gradient buckets: %zu requests", g->b.count);
    goto free_buckets;
  }
  for (size_t k = 0; k < g->b.count; k++)
    g->req[k] = MPI_REQUEST_NULL;
  g->d = d;
  g->grads = grads;
  g->last.buckets = g->b.count;
  g->last.bytes = n * sizeof(float);
  *out = g;
  return BEIT_STATUS_OK;
free_buckets:
  free(g->req);
  free(g->done);
  beit_dist_buckets_free(&g->b);
free_g:
  free(g);
  return st;
}

void beit_dist_grads_free(struct beit_dist_grads *g)
{
  if (!g)
    return;
  wait_started(g, 0); /* MPI may still write into grads */
  free(g->req);
  free(g->done);
  beit_dist_buckets_free(&g->b);
  free(g);
}

void beit_dist_grads_begin(struct beit_dist_grads *g)
{
  wait_started(g, 0); /* an unfinished step: complete its collectives, drop the result */
  beit_dist_buckets_reset(&g->b);
  g->mpi_seconds = g->exposed_seconds = 0.0;
  g->early = 0;
}

void beit_dist_grads_ready(void *ctx, size_t begin, size_t end)
{
  struct beit_dist_grads *g = ctx;
  int main_thread = 0;
  MPI_Is_thread_main(&main_thread);
  if (!main_thread) {
    beit_dist_buckets_fail(&g->b, BEIT_STATUS_USAGE,
                           "grads_ready [%zu, %zu) called from a thread other than the one "
                           "that initialised MPI (MPI_THREAD_FUNNELED)",
                           begin, end);
    return;
  }
  beit_dist_buckets_mark(&g->b, begin, end);
  size_t k;
  while (beit_dist_buckets_pop_ready(&g->b, &k))
    start_bucket(g, k);
  test_started(g);
}

void beit_dist_grads_progress(struct beit_dist_grads *g) { test_started(g); }

enum beit_status beit_dist_grads_finish(struct beit_dist_grads *g, struct beit_error *err)
{
  double t0 = now();
  double before = g->mpi_seconds;
  size_t early = g->early, k;
  while (beit_dist_buckets_pop_any(&g->b, &k))
    start_bucket(g, k);
  wait_started(g, 1);
  g->exposed_seconds = g->mpi_seconds - before;
  g->last.mpi_seconds = g->mpi_seconds;
  g->last.exposed_seconds = g->exposed_seconds;
  g->last.finish_seconds = now() - t0;
  g->last.buckets_late = g->b.late;
  g->last.buckets_early = early;
  enum beit_status st = g->b.pending.status;
  if (st != BEIT_STATUS_OK)
    beit_error_set(err, st, "rank %d: %s", g->d->rank, g->b.pending.message);
  /* ready for the next step even if the caller skips beit_dist_grads_begin */
  beit_dist_buckets_reset(&g->b);
  g->mpi_seconds = g->exposed_seconds = 0.0;
  g->early = 0;
  return st;
}

void beit_dist_grads_get_stats(const struct beit_dist_grads *g,
                               struct beit_dist_grads_stats *out)
{
  *out = g->last;
}
