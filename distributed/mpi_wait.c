/* Guarded waits of the OpenMPI backend: every blocking call of distributed/mpi.c completes its
 * requests here. Without a deadline that is MPI_Waitsome. With one (beit_dist_set_timeout) the
 * requests are polled with MPI_Testsome, questions of other timed-out ranks are answered, and a
 * call still incomplete at its deadline asks every other rank whether it is alive (a PING with
 * MPI_Isend; a rank waiting in any guarded call answers with a PONG within milliseconds, one that
 * is stopped or stuck outside MPI cannot) and fails naming the ranks that did not answer, with
 * their host and pid. The PING/PONG messages are point-to-point on the job's communicator and
 * never match the collectives' own traffic (MPI keeps the two apart). Asking at the deadline,
 * rather than announcing arrival before each collective, also names a rank stopped inside a
 * collective it had already joined. The failure is kept in d->failure: every later call of the
 * job returns it at once (mpi.c), so no cleanup path waits for the silent rank. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mpi_internal.h"

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

/* "call: MPI_ERR_...: text" into buf */
void beit_dist_mpi_text(char *buf, size_t size, int rc, const char *call)
{
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS)
    snprintf(text, sizeof text, "MPI error code %d", rc);
  snprintf(buf, size, "%s: %s", call, text);
}

/* "rank R: call: MPI_ERR_...: text" */
enum beit_status beit_dist_mpi_fail(int rank, struct beit_error *err, int rc, const char *call)
{
  char text[MPI_MAX_ERROR_STRING + 128];
  beit_dist_mpi_text(text, sizeof text, rc, call);
  return beit_error_set(err, BEIT_STATUS_DISTRIBUTED, "rank %d: %s", rank, text);
}

static void nap(long ns)
{
  struct timespec ts = {0, ns};
  nanosleep(&ts, NULL);
}

/* A guarded call begins: it gets the next collective number. */
struct beit_dist_guard beit_dist_guard_begin(struct beit_dist *d, enum beit_dist_op kind,
                                             size_t count, int root)
{
  struct beit_dist_guard g = {kind, count, root, ++d->seq, MPI_Wtime()};
  return g;
}

/* The job's failure (a deadline that passed) for a later call: the same message. */
enum beit_status beit_dist_failed(const struct beit_dist *d, struct beit_error *err)
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
static void describe(const struct beit_dist *d, const struct beit_dist_guard *g, char *buf,
                     size_t size)
{
  size_t k = 0;
  switch (g->kind) {
  case BEIT_DIST_OP_BCAST:
    append(buf, size, &k, "a broadcast of %zu bytes from rank %d", g->count, g->root);
    break;
  case BEIT_DIST_OP_SUM:
  case BEIT_DIST_OP_MAX:
    append(buf, size, &k, "an allreduce (%s) of %zu double%s",
           g->kind == BEIT_DIST_OP_SUM ? "sum" : "max", g->count, g->count == 1 ? "" : "s");
    break;
  case BEIT_DIST_OP_BARRIER: append(buf, size, &k, "a barrier"); break;
  case BEIT_DIST_OP_GRADS: append(buf, size, &k, "the gradient allreduce"); break;
  }
  append(buf, size, &k, "%s%s (collective #%lu)", d->context[0] ? " " : "", d->context, g->seq);
}

/* The deadline of g passed: find the silent ranks, make the job's failure and return it. */
static enum beit_status deadline_passed(struct beit_dist *d, const struct beit_dist_guard *g,
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
  return beit_dist_failed(d, err);
}

/* Complete req[0, n) (MPI_REQUEST_NULL entries count as complete), calling on_done(ctx, i) as
 * request i completes. Without a deadline: MPI_Waitsome. With one: MPI_Testsome in a loop that
 * spins, then sleeps (SPIN_SECONDS), answers liveness questions, and once g's deadline has passed
 * fails naming the silent ranks. *spent (may be NULL) += the seconds spent here. */
enum beit_status beit_dist_wait(struct beit_dist *d, const struct beit_dist_guard *g, int n,
                                MPI_Request *req, int *idx, void (*on_done)(void *ctx, int i),
                                void *ctx, double *spent, struct beit_error *err)
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
      st = beit_dist_mpi_fail(d->rank, err, rc, d->timeout > 0 ? "MPI_Testsome" : "MPI_Waitsome");
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

enum beit_status beit_dist_wait_one(struct beit_dist *d, const struct beit_dist_guard *g,
                                    MPI_Request *req, struct beit_error *err)
{
  int idx;
  return beit_dist_wait(d, g, 1, req, &idx, NULL, NULL, NULL, err);
}
