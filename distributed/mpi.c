/* OpenMPI implementation of include/beit/distributed.h: the only file of the project that
 * includes mpi.h (serial.c stands in when BEIT_USE_MPI is off).
 *
 * The job works on a duplicate of MPI_COMM_WORLD with MPI_ERRORS_RETURN, so a failed call comes
 * back as BEIT_STATUS_DISTRIBUTED with MPI_Error_string's text and the rank; the app decides
 * whether to beit_dist_abort. MPI counts are int: bcast and the f64 reductions are cut into
 * chunks, gradient buckets are at most INT_MAX floats.
 *
 * Deadlines (beit_dist_set_timeout): every blocking call goes through wait_requests, which with a
 * deadline polls non-blocking requests instead of blocking in MPI_Wait*, and past the deadline
 * finds the silent ranks with a liveness round (ask_alive): point-to-point PING/PONG messages on
 * the job's communicator, which never match the collectives' own traffic (MPI keeps the two
 * apart). Asking at the deadline rather than announcing arrival before each collective also
 * names a rank stopped inside a collective it had already joined. */
#include <limits.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dist_internal.h"

/* A guarded wait polls without sleeping this long after it starts and after each completed
 * request (a blocking MPI_Wait spins too), then sleeps between tests, from SLEEP_MIN_NS doubling
 * to SLEEP_MAX_NS: a round of a collective advances only inside an MPI call, so the cap bounds
 * the delay a sleeping rank adds per round once its peers catch up. */
#define SPIN_SECONDS 0.01
#define SLEEP_MIN_NS 20000L
#define SLEEP_MAX_NS 250000L
#define PING_CHECK_SECONDS 0.001 /* how often a waiting rank looks for liveness questions */
#define ANSWER_SECONDS 2.0       /* how long a timed-out rank waits for the answers */
#define TAG_PING 31001           /* "are you alive?": the asker's collective number */
#define TAG_PONG 31002           /* "yes": the answerer's collective number */
#define MAX_NAMED 8              /* silent ranks named in a message; then "and N more" */

struct peer {
  char host[64];
  int64_t pid;
};

struct beit_dist {
  MPI_Comm comm;     /* a duplicate of MPI_COMM_WORLD with MPI_ERRORS_RETURN */
  int rank, world;
  int local_rank, local_size;
  int owns_mpi;      /* beit_dist_init called MPI_Init_thread: finalize calls MPI_Finalize */
  size_t chunk_bytes; /* largest single message of bcast / f64 reductions */
  struct peer *peers; /* (world) host and pid of every rank, from MPI_Allgather at init */
  double timeout;     /* seconds a blocking call may wait; 0 = forever */
  unsigned long seq;  /* guarded calls begun: the same numbering on every rank */
  char context[96];   /* "of step 17": where the job is, for deadline messages */
  struct beit_error failure; /* a deadline passed: every later guarded call returns it */
  /* the liveness round: (world) each */
  MPI_Request *ping_req, *pong_req;
  unsigned long *pong_buf, *answer; /* answer: the collective number each rank answered from */
  char *alive;
  unsigned long ping_buf;
};

/* What a guarded call is, for its deadline message. */
enum op_kind { OP_BCAST, OP_SUM, OP_MAX, OP_BARRIER, OP_GRADS };
struct guard {
  enum op_kind kind;
  size_t count; /* bytes (bcast), doubles (reductions) */
  int root;     /* bcast */
  unsigned long seq;
  double start; /* MPI_Wtime when the call began */
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
  struct peer me;
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
  return rc == MPI_SUCCESS ? BEIT_STATUS_OK : mpi_fail(d->rank, err, rc, "MPI_Allgather");
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

/* ---- guarded waits (see the top of the file) ---- */

static void nap(long ns)
{
  struct timespec ts = {0, ns};
  nanosleep(&ts, NULL);
}

/* A guarded call begins: it gets the next collective number. */
static struct guard guard_begin(struct beit_dist *d, enum op_kind kind, size_t count, int root)
{
  struct guard g = {kind, count, root, ++d->seq, MPI_Wtime()};
  return g;
}

/* The job's failure (a deadline that passed) for a later call: the same message. */
static enum beit_status failed(const struct beit_dist *d, struct beit_error *err)
{
  if (err)
    *err = d->failure;
  return d->failure.status;
}

/* Answer every liveness question that has arrived with our collective number. */
static void answer_pings(struct beit_dist *d)
{
  for (;;) {
    int flag = 0, done = 0;
    MPI_Status status;
    unsigned long asked;
    if (MPI_Iprobe(MPI_ANY_SOURCE, TAG_PING, d->comm, &flag, &status) != MPI_SUCCESS || !flag)
      return;
    int src = status.MPI_SOURCE;
    if (MPI_Recv(&asked, 1, MPI_UNSIGNED_LONG, src, TAG_PING, d->comm, MPI_STATUS_IGNORE) !=
        MPI_SUCCESS)
      return;
    if (d->pong_req[src] != MPI_REQUEST_NULL &&
        (MPI_Test(&d->pong_req[src], &done, MPI_STATUS_IGNORE) != MPI_SUCCESS || !done))
      continue; /* the previous answer to src is still on its way */
    d->pong_buf[src] = d->seq;
    if (MPI_Isend(&d->pong_buf[src], 1, MPI_UNSIGNED_LONG, src, TAG_PONG, d->comm,
                  &d->pong_req[src]) != MPI_SUCCESS)
      d->pong_req[src] = MPI_REQUEST_NULL;
  }
}

/* Past the deadline: ask every other rank whether it is alive, then collect the answers for up
 * to ANSWER_SECONDS (answering other timed-out ranks meanwhile). d->alive[r] and d->answer[r]
 * (the collective number r answered from) are the result. The questions are never waited for:
 * the job ends. */
static void ask_alive(struct beit_dist *d)
{
  int missing = d->world - 1;
  d->ping_buf = d->seq;
  for (int r = 0; r < d->world; r++) {
    d->alive[r] = r == d->rank;
    d->answer[r] = d->seq;
    if (r != d->rank && MPI_Isend(&d->ping_buf, 1, MPI_UNSIGNED_LONG, r, TAG_PING, d->comm,
                                  &d->ping_req[r]) != MPI_SUCCESS)
      d->ping_req[r] = MPI_REQUEST_NULL;
  }
  double end = MPI_Wtime() + ANSWER_SECONDS;
  while (missing > 0 && MPI_Wtime() < end) {
    answer_pings(d);
    int flag = 0;
    MPI_Status status;
    while (missing > 0 &&
           MPI_Iprobe(MPI_ANY_SOURCE, TAG_PONG, d->comm, &flag, &status) == MPI_SUCCESS && flag) {
      unsigned long seq = 0;
      int src = status.MPI_SOURCE;
      if (MPI_Recv(&seq, 1, MPI_UNSIGNED_LONG, src, TAG_PONG, d->comm, MPI_STATUS_IGNORE) !=
          MPI_SUCCESS)
        break;
      missing -= !d->alive[src];
      d->alive[src] = 1;
      d->answer[src] = seq;
    }
    if (missing > 0)
      nap(1000000);
  }
}

/* printf into buf at *k, never past size. */
static void append(char *buf, size_t size, size_t *k, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append(char *buf, size_t size, size_t *k, const char *fmt, ...)
{
  if (*k >= size)
    return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + *k, size - *k, fmt, ap);
  va_end(ap);
  *k = n < 0 ? size : *k + (size_t)n;
}

/* "the gradient allreduce of step 17 (collective #52)" */
static void describe(const struct beit_dist *d, const struct guard *g, char *buf, size_t size)
{
  size_t k = 0;
  switch (g->kind) {
  case OP_BCAST:
    append(buf, size, &k, "a broadcast of %zu bytes from rank %d", g->count, g->root);
    break;
  case OP_SUM:
  case OP_MAX:
    append(buf, size, &k, "an allreduce (%s) of %zu double%s", g->kind == OP_SUM ? "sum" : "max",
           g->count, g->count == 1 ? "" : "s");
    break;
  case OP_BARRIER: append(buf, size, &k, "a barrier"); break;
  case OP_GRADS: append(buf, size, &k, "the gradient allreduce"); break;
  }
  append(buf, size, &k, "%s%s (collective #%lu)", d->context[0] ? " " : "", d->context, g->seq);
}

/* The deadline of g passed: find the silent ranks, make the job's failure and return it. */
static enum beit_status deadline_passed(struct beit_dist *d, const struct guard *g,
                                        struct beit_error *err)
{
  double waited = MPI_Wtime() - g->start;
  ask_alive(d);
  char what[256], names[1024], others[256];
  size_t kn = 0, ko = 0;
  int silent = 0, shown = 0, odd = 0;
  describe(d, g, what, sizeof what);
  names[0] = others[0] = '\0';
  for (int r = 0; r < d->world; r++)
    silent += !d->alive[r];
  int show = silent < MAX_NAMED ? silent : MAX_NAMED;
  for (int r = 0; r < d->world; r++) {
    if (d->alive[r]) {
      if (d->answer[r] != g->seq && odd++ < 3) /* answered, but from another collective */
        append(others, sizeof others, &ko, "; rank %d answered from collective #%lu", r,
               d->answer[r]);
      continue;
    }
    if (shown == show)
      continue;
    append(names, sizeof names, &kn, "%s%d (host %s, pid %lld)",
           shown == 0 ? "" : shown == silent - 1 ? " and " : ", ", r, d->peers[r].host,
           (long long)d->peers[r].pid);
    shown++;
  }
  if (show < silent)
    append(names, sizeof names, &kn, " and %d more", silent - show);
  if (silent)
    beit_error_set(&d->failure, BEIT_STATUS_DISTRIBUTED,
                   "rank %d: %s has waited %.1f s for rank%s %s, which %s not answer%s: aborting "
                   "(--dist-timeout %g)",
                   d->rank, what, waited, silent > 1 ? "s" : "", names, silent > 1 ? "do" : "does",
                   others, d->timeout);
  else
    beit_error_set(&d->failure, BEIT_STATUS_DISTRIBUTED,
                   "rank %d: %s has not completed in %.1f s although every rank answers%s: "
                   "aborting (--dist-timeout %g)",
                   d->rank, what, waited, others, d->timeout);
  return failed(d, err);
}

/* Complete req[0, n) (MPI_REQUEST_NULL entries count as complete), calling on_done(ctx, i) as
 * request i completes. Without a deadline: MPI_Waitsome. With one: MPI_Testsome in a loop that
 * spins, then sleeps (SPIN_SECONDS), answers liveness questions, and once g's deadline has passed
 * fails naming the silent ranks. *spent (may be NULL) += the seconds spent here. */
static enum beit_status wait_requests(struct beit_dist *d, const struct guard *g, int n,
                                      MPI_Request *req, int *idx,
                                      void (*on_done)(void *ctx, int i), void *ctx,
                                      double *spent, struct beit_error *err)
{
  double t0 = MPI_Wtime(), last = t0, next_ping = t0 + PING_CHECK_SECONDS;
  long sleep_ns = 0;
  enum beit_status st = BEIT_STATUS_OK;
  for (;;) {
    int done = 0, rc;
    if (d->timeout > 0)
      rc = MPI_Testsome(n, req, &done, idx, MPI_STATUSES_IGNORE);
    else
      rc = MPI_Waitsome(n, req, &done, idx, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) {
      st = mpi_fail(d->rank, err, rc, d->timeout > 0 ? "MPI_Testsome" : "MPI_Waitsome");
      break;
    }
    if (done == MPI_UNDEFINED) /* nothing left in flight */
      break;
    for (int i = 0; i < done && on_done; i++)
      on_done(ctx, idx[i]);
    double t = MPI_Wtime();
    if (done > 0) {
      last = t;
      sleep_ns = 0;
      continue;
    }
    if (t >= next_ping) {
      answer_pings(d);
      next_ping = t + PING_CHECK_SECONDS;
    }
    if (t - g->start >= d->timeout) {
      st = deadline_passed(d, g, err);
      break;
    }
    if (t - last >= SPIN_SECONDS) {
      sleep_ns = sleep_ns == 0 ? SLEEP_MIN_NS : sleep_ns * 2 > SLEEP_MAX_NS ? SLEEP_MAX_NS
                                                                            : sleep_ns * 2;
      nap(sleep_ns);
    }
  }
  if (spent)
    *spent += MPI_Wtime() - t0;
  return st;
}

static enum beit_status wait_one(struct beit_dist *d, const struct guard *g, MPI_Request *req,
                                 struct beit_error *err)
{
  int idx;
  return wait_requests(d, g, 1, req, &idx, NULL, NULL, NULL, err);
}

enum beit_status beit_dist_bcast(struct beit_dist *d, void *buf, size_t bytes, int root,
                                 struct beit_error *err)
{
  if (root < 0 || root >= d->world)
    return beit_error_set(err, BEIT_STATUS_USAGE, "rank %d: bcast: root %d outside 0..%d",
                          d->rank, root, d->world - 1);
  if (d->failure.status)
    return failed(d, err);
  struct guard g = guard_begin(d, OP_BCAST, bytes, root);
  char *p = buf;
  for (size_t off = 0; off < bytes;) {
    size_t len = bytes - off < d->chunk_bytes ? bytes - off : d->chunk_bytes;
    MPI_Request req;
    int rc = MPI_Ibcast(p + off, (int)len, MPI_BYTE, root, d->comm, &req);
    if (rc != MPI_SUCCESS)
      return mpi_fail(d->rank, err, rc, "MPI_Ibcast");
    enum beit_status st = wait_one(d, &g, &req, err);
    if (st)
      return st;
    off += len;
  }
  return BEIT_STATUS_OK;
}

static enum beit_status allreduce_f64(struct beit_dist *d, double *values, size_t n, MPI_Op op,
                                      enum op_kind kind, const char *what,
                                      struct beit_error *err)
{
  if (d->failure.status)
    return failed(d, err);
  struct guard g = guard_begin(d, kind, n, 0);
  size_t chunk = d->chunk_bytes / sizeof(double);
  if (chunk == 0)
    chunk = 1;
  for (size_t off = 0; off < n;) {
    size_t len = n - off < chunk ? n - off : chunk;
    MPI_Request req;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, values + off, (int)len, MPI_DOUBLE, op, d->comm, &req);
    if (rc != MPI_SUCCESS)
      return mpi_fail(d->rank, err, rc, what);
    enum beit_status st = wait_one(d, &g, &req, err);
    if (st)
      return st;
    off += len;
  }
  return BEIT_STATUS_OK;
}

enum beit_status beit_dist_allreduce_sum_f64(struct beit_dist *d, double *values, size_t n,
                                             struct beit_error *err)
{
  return allreduce_f64(d, values, n, MPI_SUM, OP_SUM, "MPI_Iallreduce(sum)", err);
}

enum beit_status beit_dist_allreduce_max_f64(struct beit_dist *d, double *values, size_t n,
                                             struct beit_error *err)
{
  return allreduce_f64(d, values, n, MPI_MAX, OP_MAX, "MPI_Iallreduce(max)", err);
}

enum beit_status beit_dist_barrier(struct beit_dist *d, struct beit_error *err)
{
  if (d->failure.status)
    return failed(d, err);
  struct guard g = guard_begin(d, OP_BARRIER, 0, 0);
  MPI_Request req;
  int rc = MPI_Ibarrier(d->comm, &req);
  if (rc != MPI_SUCCESS)
    return mpi_fail(d->rank, err, rc, "MPI_Ibarrier");
  return wait_one(d, &g, &req, err);
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
    return failed(d, err);
  if (started == 0 && !always)
    return BEIT_STATUS_OK;
  struct guard gd = guard_begin(d, OP_GRADS, 0, 0);
  enum beit_status st = wait_requests(d, &gd, (int)started, g->req + g->b.next, g->done,
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
