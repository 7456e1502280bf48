/* OpenMPI implementation of include/beit/distributed.h: with mpi_wait.c (through
 * mpi_internal.h) the only files of the project that include mpi.h (serial.c stands in when
 * BEIT_USE_MPI is off).
 *
 * The job works on a duplicate of MPI_COMM_WORLD with MPI_ERRORS_RETURN, so a failed call comes
 * back as BEIT_STATUS_DISTRIBUTED with MPI_Error_string's text and the rank; the app decides
 * whether to beit_dist_abort. MPI counts are int: bcast and the f64 reductions are cut into
 * chunks, gradient buckets are at most INT_MAX floats.
 *
 * Deadlines (beit_dist_set_timeout): every blocking call starts non-blocking requests and completes
 * them through beit_dist_wait (distributed/mpi_wait.c), which polls them under the deadline and
 * names the silent ranks when it passes; after that every call returns the job's failure at
 * once. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpi_internal.h"

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
    return beit_dist_mpi_fail(d->rank, err, rc, "MPI_Comm_split_type");
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

static void free_dist(struct beit_dist *d)
{
  free(d->peers);
  free(d->ping_req);
  free(d->pong_req);
  free(d->pong_buf);
  free(d->answer);
  free(d->alive);
  free(d);
}

/* Every rank's host name and pid (for logs and deadline messages), and the liveness round's
 * buffers. */
static enum beit_status gather_peers(struct beit_dist *d, struct beit_error *err)
{
  struct beit_dist_peer me;
  size_t w = (size_t)d->world;
  memset(&me, 0, sizeof me);
  if (gethostname(me.host, sizeof me.host - 1) != 0)
    snprintf(me.host, sizeof me.host, "?");
  me.pid = (int64_t)getpid();
  d->peers = calloc(w, sizeof *d->peers);
  d->ping_req = malloc(w * sizeof *d->ping_req);
  d->pong_req = malloc(w * sizeof *d->pong_req);
  d->pong_buf = calloc(w, sizeof *d->pong_buf);
  d->answer = calloc(w, sizeof *d->answer);
  d->alive = calloc(w, 1);
  if (!d->peers || !d->ping_req || !d->pong_req || !d->pong_buf || !d->answer || !d->alive)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "rank %d: distributed: %zu ranks: out of memory",
                          d->rank, w);
  for (size_t r = 0; r < w; r++)
    d->ping_req[r] = d->pong_req[r] = MPI_REQUEST_NULL;
  int rc = MPI_Allgather(&me, (int)sizeof me, MPI_BYTE, d->peers, (int)sizeof me, MPI_BYTE,
                         d->comm);
  return rc == MPI_SUCCESS ? BEIT_STATUS_OK : beit_dist_mpi_fail(d->rank, err, rc, "MPI_Allgather");
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
      return beit_dist_mpi_fail(-1, err, rc, "MPI_Init_thread");
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
    st = beit_dist_mpi_fail(d->rank, err, rc, "MPI_Comm_dup");
    goto fail;
  }
  rc = MPI_Comm_set_errhandler(d->comm, MPI_ERRORS_RETURN);
  if (rc != MPI_SUCCESS) {
    st = beit_dist_mpi_fail(d->rank, err, rc, "MPI_Comm_set_errhandler");
    goto fail;
  }
  MPI_Comm_rank(d->comm, &d->rank);
  MPI_Comm_size(d->comm, &d->world);
  st = find_local(d, err);
  if (st == BEIT_STATUS_OK)
    st = gather_peers(d, err);
  if (st != BEIT_STATUS_OK)
    goto fail;
  *out = d;
  return BEIT_STATUS_OK;
fail:
  /* MPI stays initialised: the caller ends the job with beit_dist_abort(NULL, ...) */
  if (d->comm != MPI_COMM_NULL)
    MPI_Comm_free(&d->comm);
  free_dist(d);
  return st;
}

void beit_dist_finalize(struct beit_dist *d)
{
  if (!d)
    return;
  /* after a deadline passed, requests are abandoned in flight and MPI_Finalize could wait for the
   * silent rank: leave MPI as it is (the app ends a failed job with beit_dist_abort anyway) */
  if (d->failure.status == BEIT_STATUS_OK) {
    MPI_Comm_free(&d->comm);
    if (d->owns_mpi)
      MPI_Finalize();
  }
  free_dist(d);
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

const char *beit_dist_host(const struct beit_dist *d, int r)
{
  return r >= 0 && r < d->world ? d->peers[r].host : "";
}

long beit_dist_pid(const struct beit_dist *d, int r)
{
  return r >= 0 && r < d->world ? (long)d->peers[r].pid : 0;
}

enum beit_status beit_dist_bcast(struct beit_dist *d, void *buf, size_t bytes, int root,
                                 struct beit_error *err)
{
  if (root < 0 || root >= d->world)
    return beit_error_set(err, BEIT_STATUS_USAGE, "rank %d: bcast: root %d outside 0..%d",
                          d->rank, root, d->world - 1);
  if (d->failure.status)
    return beit_dist_failed(d, err);
  struct beit_dist_guard g = beit_dist_guard_begin(d, BEIT_DIST_OP_BCAST, bytes, root);
  char *p = buf;
  for (size_t off = 0; off < bytes;) {
    size_t len = bytes - off < d->chunk_bytes ? bytes - off : d->chunk_bytes;
    MPI_Request req;
    int rc = MPI_Ibcast(p + off, (int)len, MPI_BYTE, root, d->comm, &req);
    if (rc != MPI_SUCCESS)
      return beit_dist_mpi_fail(d->rank, err, rc, "MPI_Ibcast");
    enum beit_status st = beit_dist_wait_one(d, &g, &req, err);
    if (st)
      return st;
    off += len;
  }
  return BEIT_STATUS_OK;
}

static enum beit_status allreduce_f64(struct beit_dist *d, double *values, size_t n, MPI_Op op,
                                      enum beit_dist_op kind, const char *what,
                                      struct beit_error *err)
{
  if (d->failure.status)
    return beit_dist_failed(d, err);
  struct beit_dist_guard g = beit_dist_guard_begin(d, kind, n, 0);
  size_t chunk = d->chunk_bytes / sizeof(double);
  if (chunk == 0)
    chunk = 1;
  for (size_t off = 0; off < n;) {
    size_t len = n - off < chunk ? n - off : chunk;
    MPI_Request req;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, values + off, (int)len, MPI_DOUBLE, op, d->comm, &req);
    if (rc != MPI_SUCCESS)
      return beit_dist_mpi_fail(d->rank, err, rc, what);
    enum beit_status st = beit_dist_wait_one(d, &g, &req, err);
    if (st)
      return st;
    off += len;
  }
  return BEIT_STATUS_OK;
}

enum beit_status beit_dist_allreduce_sum_f64(struct beit_dist *d, double *values, size_t n,
                                             struct beit_error *err)
{
  return allreduce_f64(d, values, n, MPI_SUM, BEIT_DIST_OP_SUM, "MPI_Iallreduce(sum)", err);
}

enum beit_status beit_dist_allreduce_max_f64(struct beit_dist *d, double *values, size_t n,
                                             struct beit_error *err)
{
  return allreduce_f64(d, values, n, MPI_MAX, BEIT_DIST_OP_MAX, "MPI_Iallreduce(max)", err);
}

enum beit_status beit_dist_barrier(struct beit_dist *d, struct beit_error *err)
{
  if (d->failure.status)
    return beit_dist_failed(d, err);
  struct beit_dist_guard g = beit_dist_guard_begin(d, BEIT_DIST_OP_BARRIER, 0, 0);
  MPI_Request req;
  int rc = MPI_Ibarrier(d->comm, &req);
  if (rc != MPI_SUCCESS)
    return beit_dist_mpi_fail(d->rank, err, rc, "MPI_Ibarrier");
  return beit_dist_wait_one(d, &g, &req, err);
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
  return beit_dist_mpi_fail(d->rank, err, rc, "MPI_Bcast");
}

/* ---- gradient buckets ---- */

static double now(void) { return MPI_Wtime(); }

/* Failures inside the hook are kept for finish, which prefixes the rank. */
static void record_mpi_failure(struct beit_dist_grads *g, int rc, const char *call)
{
  char text[MPI_MAX_ERROR_STRING + 128];
  beit_dist_mpi_text(text, sizeof text, rc, call);
  beit_dist_buckets_fail(&g->b, BEIT_STATUS_DISTRIBUTED, "%s", text);
}

static void start_bucket(struct beit_dist_grads *g, size_t k)
{
  if (g->d->failure.status) /* the job is broken: finish returns why */
    return;
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
  if (started == 0 || g->d->failure.status)
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

static void scale_done(void *ctx, int i)
{
  struct beit_dist_grads *g = ctx;
  scale_bucket(g, g->b.next + (size_t)i);
}

/* Complete everything in flight (a guarded wait: the job's deadline applies), scaling each bucket
 * as it completes when `scale`. `always`: count it as a collective of its own even when nothing
 * is in flight (finish, which every rank calls at the same point). Adds the seconds spent to
 * g->mpi_seconds and returns them in *spent. On a failure (MPI's, or a deadline that passed) the
 * requests are abandoned: the job is broken and must not wait forever. */
static enum beit_status wait_started(struct beit_dist_grads *g, int scale, int always,
                                     double *spent, struct beit_error *err)
{
  struct beit_dist *d = g->d;
  size_t started = g->b.count - g->b.next;
  *spent = 0.0;
  if (d->failure.status)
    return beit_dist_failed(d, err);
  if (started == 0 && !always)
    return BEIT_STATUS_OK;
  struct beit_dist_guard gd = beit_dist_guard_begin(d, BEIT_DIST_OP_GRADS, 0, 0);
  enum beit_status st = beit_dist_wait(d, &gd, (int)started, g->req + g->b.next, g->done,
                                      scale ? scale_done : NULL, g, spent, err);
  if (st)
    for (size_t k = g->b.next; k < g->b.count; k++)
      g->req[k] = MPI_REQUEST_NULL;
  g->mpi_seconds += *spent;
  return st;
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
  double spent;
  wait_started(g, 0, 0, &spent, NULL); /* MPI may still write into grads */
  free(g->req);
  free(g->done);
  beit_dist_buckets_free(&g->b);
  free(g);
}

void beit_dist_grads_begin(struct beit_dist_grads *g)
{
  double spent; /* a failure stays in the job's state: finish returns it */
  wait_started(g, 0, 0, &spent, NULL); /* an unfinished step: complete it, drop the result */
  beit_dist_buckets_reset(&g->b);
  g->mpi_seconds = g->exposed_seconds = 0.0;
  g->early = 0;
}

void beit_dist_grads_ready(void *ctx, size_t begin, size_t end)
{
  struct beit_dist_grads *g = ctx;
  int main_thread = 0;
  MPI_Is_thread_main(&main_thread);
  if (!beit_dist_buckets_ready(&g->b, main_thread,
                               "the one that initialised MPI (MPI_THREAD_FUNNELED)", begin, end))
    return;
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
  double spent;
  struct beit_error werr = {0};
  enum beit_status wst = wait_started(g, 1, 1, &spent, &werr);
  g->exposed_seconds = g->mpi_seconds - before;
  g->last.mpi_seconds = g->mpi_seconds;
  g->last.exposed_seconds = g->exposed_seconds;
  g->last.finish_seconds = now() - t0;
  g->last.buckets_late = g->b.late;
  g->last.buckets_early = early;
  enum beit_status st = g->b.pending.status;
  if (st != BEIT_STATUS_OK)
    beit_error_set(err, st, "rank %d: %s", g->d->rank, g->b.pending.message);
  else if ((st = wst) != BEIT_STATUS_OK && err)
    *err = werr; /* already "rank R: ..." */
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
