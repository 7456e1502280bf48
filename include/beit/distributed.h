/* Data-parallel runtime: rank information, broadcast, metric reductions, and bucketed gradient
 * averaging that overlaps with backward.
 *
 * distributed/ is the only code that includes mpi.h. Two implementations stand
 * behind this one header, chosen by the CMake option BEIT_USE_MPI: distributed/mpi.c (OpenMPI)
 * and distributed/serial.c (one rank; every collective is the identity). Callers never test
 * which one is linked; beit_dist_backend() names it for logs.
 *
 * Threads: beit_dist_init asks for MPI_THREAD_FUNNELED. Call it first in main, before any thread
 * starts (it may set an environment variable for OpenMPI). Every function here must be called
 * from the thread that called beit_dist_init, outside OpenMP parallel regions; the data loader's
 * worker threads and OpenMP/BLAS threads never call it.
 *
 * Errors: functions return an enum beit_status and fill a struct beit_error naming the rank and
 * the MPI call ("rank 1: MPI_Iallreduce: MPI_ERR_TRUNCATE: message truncated"). Nothing here
 * exits the process except beit_dist_abort, which the app layer calls on purpose. */
#ifndef BEIT_DISTRIBUTED_H
#define BEIT_DISTRIBUTED_H

#include <stddef.h>

#include "beit/status.h"

struct beit_dist; /* the job: communicator, rank, sizes */

/* Join the job. Under mpirun (or Slurm srun --mpi=pmix) every rank calls this with main's argc
 * and argv; without a launcher the process is a job of one rank. If MPI is already initialised
 * by someone else it is used as it is and left initialised by beit_dist_finalize. Errors on the
 * job's communicator come back as statuses (MPI_ERRORS_RETURN), never as a silent abort. On
 * failure MPI may be left initialised: end the process with beit_dist_abort(NULL, ...) so a
 * launcher does not wait for this rank. Under OpenMPI it also selects the reduce-scatter +
 * allgather in-place MPI_Iallreduce (OMPI_MCA_coll_libnbc_iallreduce_algorithm=3 unless set). */
enum beit_status beit_dist_init(struct beit_dist **out, int *argc, char ***argv,
                                struct beit_error *err);
/* Leave the job (MPI_Finalize when beit_dist_init initialised MPI) and free d. NULL is a no-op.
 * Every rank must call it; a rank that wants the job to end on an error calls beit_dist_abort. */
void beit_dist_finalize(struct beit_dist *d);

int beit_dist_rank(const struct beit_dist *d);       /* 0 .. world_size-1 */
int beit_dist_world_size(const struct beit_dist *d); /* >= 1 */
/* Rank among the ranks on this node (OMPI_COMM_WORLD_LOCAL_RANK, else SLURM_LOCALID, else
 * computed from a shared-memory split) and how many ranks share the node: use them to advise
 * thread counts and pinning (cores per node / local_size threads per rank). */
int beit_dist_local_rank(const struct beit_dist *d);
int beit_dist_local_size(const struct beit_dist *d);
int beit_dist_is_root(const struct beit_dist *d); /* rank == 0: logs, metrics, checkpoints */
const char *beit_dist_backend(void);              /* "mpi" or "serial" */

/* Copy `bytes` bytes of buf on rank `root` into buf on every rank. Sizes of any length: the
 * transfer is cut into chunks whose MPI counts fit in an int. Every rank passes the same bytes
 * and root. */
enum beit_status beit_dist_bcast(struct beit_dist *d, void *buf, size_t bytes, int root,
                                 struct beit_error *err);
/* values[i] = sum (or max) over ranks of values[i], identical on every rank. For metrics (loss
 * sums, counts), not for gradients. */
enum beit_status beit_dist_allreduce_sum_f64(struct beit_dist *d, double *values, size_t n,
                                             struct beit_error *err);
enum beit_status beit_dist_allreduce_max_f64(struct beit_dist *d, double *values, size_t n,
                                             struct beit_error *err);
enum beit_status beit_dist_barrier(struct beit_dist *d, struct beit_error *err);

/* ---- Deadlines: a stuck rank ends the job instead of hanging it ----
 *
 * With a deadline of s seconds (0, the default, waits forever), every blocking call above and
 * below (bcast, the f64 reductions, barrier, and the waits of gradient averaging: finish, begin,
 * free) polls its non-blocking MPI request (MPI_Ibcast, MPI_Iallreduce, MPI_Ibarrier) instead of
 * blocking: it spins for a few milliseconds, then sleeps between tests with a short backoff. A
 * call still incomplete s seconds after it began asks every other rank whether it is alive (a
 * rank waiting in any guarded call answers within milliseconds; one that is stopped, or stuck
 * outside MPI, cannot) and after at most 2 s more returns BEIT_STATUS_DISTRIBUTED naming the
 * ranks that did not answer, with their host and pid:
 *   rank 0: the gradient allreduce of step 17 (collective #52) has waited 30.0 s for rank 2
 *   (host node07, pid 4121), which does not answer: aborting (--dist-timeout 30)
 * From then on every guarded call of d returns the same error at once, without waiting (the job
 * is broken: in-flight requests are abandoned, not completed), so cleanup cannot hang; the app
 * layer then ends the job with beit_dist_abort, whose MPI_Abort also takes the stopped rank down.
 * Every rank must use the same deadline. The waiting ranks all time out, each naming the silent
 * ranks. */
void beit_dist_set_timeout(struct beit_dist *d, double seconds);
double beit_dist_timeout(const struct beit_dist *d);
/* Where the job is, for deadline messages: printf-style text placed after the collective's name,
 * e.g. "of step %ld" or "after step %ld" (an empty format clears it). Cheap: call it per step. */
void beit_dist_set_context(struct beit_dist *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The host name and process id of rank r (0 <= r < world), gathered by beit_dist_init: for logs
 * and deadline messages ("" and 0 for a rank out of range). */
const char *beit_dist_host(const struct beit_dist *d, int r);
long beit_dist_pid(const struct beit_dist *d, int r);

/* End the whole job now: print "rank R: message" on stderr and MPI_Abort(code) so every rank
 * terminates promptly (the serial stand-in exits the process). code 0 is turned into 1. For the
 * app layer when a rank hits an error the others cannot know about; d may be NULL (before or
 * after a failed beit_dist_init). Does not return. */
_Noreturn void beit_dist_abort(struct beit_dist *d, int code, const char *message);

/* ---- Bucketed gradient averaging, overlapped with backward ----
 *
 * The flat grads buffer [0, n) is cut into buckets of bucket_floats floats. The remainder bucket
 * (n mod bucket_floats floats) is the FIRST one, [0, r): backward finishes the buffer from the
 * end (heads, block L-1, ..., block 0, embeddings), so the bucket whose reduction cannot hide
 * behind any compute is the small one.
 *
 * One step:
 *     beit_dist_grads_begin(g);                       before backward
 *     model->grads_ready = beit_dist_grads_ready;     (ctx = g) only on the last micro-step
 *     backward ...                                    announces final ranges; buckets start
 *     beit_dist_grads_finish(g, err);                 grads = average over ranks
 *
 * Buckets are started with MPI_Iallreduce(MPI_IN_PLACE, MPI_SUM) strictly from the last bucket
 * down to the first: a bucket whose ranges are all announced waits until every bucket after it
 * has started. Every rank therefore issues the same collectives in the same order whatever order
 * its ranges arrive in (MPI requires it), and in the encoder's decreasing order nothing waits.
 * The result is bit-identical on every rank: the collective (reduce-scatter + allgather, see
 * distributed/mpi.c) computes each element's sum once, and every rank multiplies it by
 * (float)(1.0 / world), bucket by bucket as each reduction completes.
 *
 * Progress: OpenMPI has no progress thread; a started bucket only advances inside MPI calls.
 * Each beit_dist_grads_ready call tests the buckets in flight (MPI_Testsome: the progress of
 * MPI_Testall, and it names the completed buckets, which are scaled there and then). Long
 * stretches of compute between announcements can call beit_dist_grads_progress, or the hook
 * with an empty range, to do the same.
 *
 * Until beit_dist_grads_finish returns, the grads buffer belongs to the collective: do not read
 * or write announced ranges. */
struct beit_dist_grads;

struct beit_dist_grads_stats {
  double mpi_seconds;     /* this step: wall time inside MPI calls (start, test, wait) */
  double exposed_seconds; /* this step: wall time inside MPI calls made by finish (not hidden) */
  double finish_seconds;  /* this step: wall time of finish (exposed + the 1/world scaling) */
  size_t buckets;         /* number of buckets */
  size_t buckets_late;    /* this step: buckets that finish had to start (not overlapped) */
  size_t buckets_early;   /* this step: buckets reduced and averaged before finish was called */
  size_t bytes;           /* n * sizeof(float) */
};

/* Partition grads[0, n) into buckets of bucket_floats (1 .. INT_MAX; larger than n gives one
 * bucket). grads must stay valid until beit_dist_grads_free. */
enum beit_status beit_dist_grads_init(struct beit_dist_grads **out, struct beit_dist *d,
                                      float *grads, size_t n, size_t bucket_floats,
                                      struct beit_error *err);
/* Waits for any reduction still in flight, then frees. NULL is a no-op. */
void beit_dist_grads_free(struct beit_dist_grads *g);

/* Start a step: forget announced ranges, statistics and any recorded misuse. Call before the
 * backward whose ranges will be announced. If the previous step was never finished, its
 * reductions are completed first (their result is discarded along with the step). */
void beit_dist_grads_begin(struct beit_dist_grads *g);

/* The encoder's hook (struct beit_model.grads_ready, ctx = the struct beit_dist_grads): floats
 * [begin, end) of grads are final for this step. Ranges must be disjoint within a step; a range
 * outside [0, n), one that overfills a bucket, or a call from another thread is recorded and
 * reported by beit_dist_grads_finish (a hook cannot return an error). An empty range only drives
 * progress. */
void beit_dist_grads_ready(void *ctx, size_t begin, size_t end);

/* Drive outstanding reductions and average those that completed; never blocks. */
void beit_dist_grads_progress(struct beit_dist_grads *g);

/* Start every bucket not yet started (ranges never announced are reduced as they are), wait for
 * all and scale the rest by 1/world: grads becomes the average over ranks. Returns the first
 * misuse or MPI failure of the step. Statistics of the step are then available. */
enum beit_status beit_dist_grads_finish(struct beit_dist_grads *g, struct beit_error *err);

void beit_dist_grads_get_stats(const struct beit_dist_grads *g,
                               struct beit_dist_grads_stats *out);

#endif
