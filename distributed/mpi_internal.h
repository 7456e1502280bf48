/* Internals of the OpenMPI backend shared by distributed/mpi.c (the API) and
 * distributed/mpi_wait.c (guarded waits: polling under the job's deadline, the liveness round that
 * names silent ranks). Included only by those two files: the only ones that include mpi.h. */
#ifndef BEIT_DIST_MPI_INTERNAL_H
#define BEIT_DIST_MPI_INTERNAL_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "dist_internal.h"

struct beit_dist_peer {
  char host[64];
  int64_t pid;
};

struct beit_dist {
  MPI_Comm comm;     /* a duplicate of MPI_COMM_WORLD with MPI_ERRORS_RETURN */
  int rank, world;
  int local_rank, local_size;
  int owns_mpi;      /* beit_dist_init called MPI_Init_thread: finalize calls MPI_Finalize */
  size_t chunk_bytes; /* largest single message of bcast / f64 reductions */
  struct beit_dist_peer *peers; /* (world) host and pid of every rank (MPI_Allgather at init) */
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
enum beit_dist_op {
  BEIT_DIST_OP_BCAST,
  BEIT_DIST_OP_SUM,
  BEIT_DIST_OP_MAX,
  BEIT_DIST_OP_BARRIER,
  BEIT_DIST_OP_GRADS,
};
struct beit_dist_guard {
  enum beit_dist_op kind;
  size_t count; /* bytes (bcast), doubles (reductions) */
  int root;     /* bcast */
  unsigned long seq;
  double start; /* MPI_Wtime when the call began */
};

/* "call: MPI_ERR_...: text" into buf */
void beit_dist_mpi_text(char *buf, size_t size, int rc, const char *call);
/* "rank R: call: MPI_ERR_...: text" as BEIT_STATUS_DISTRIBUTED */
enum beit_status beit_dist_mpi_fail(int rank, struct beit_error *err, int rc, const char *call);

/* A guarded call begins: the next collective number, the clock of its deadline. */
struct beit_dist_guard beit_dist_guard_begin(struct beit_dist *d, enum beit_dist_op kind,
                                             size_t count, int root);
/* The job's failure (a deadline that passed) again, for a later call: copied into err. */
enum beit_status beit_dist_failed(const struct beit_dist *d, struct beit_error *err);
/* Complete req[0, n) (MPI_REQUEST_NULL entries count as complete), calling on_done(ctx, i) as
 * request i completes. Without a deadline: MPI_Waitsome. With one: polled, and once g's deadline
 * has passed the job's failure, naming the ranks that do not answer (d->failure). *spent (may be
 * NULL) += the seconds spent here. */
enum beit_status beit_dist_wait(struct beit_dist *d, const struct beit_dist_guard *g, int n,
                                MPI_Request *req, int *idx, void (*on_done)(void *ctx, int i),
                                void *ctx, double *spent, struct beit_error *err);
enum beit_status beit_dist_wait_one(struct beit_dist *d, const struct beit_dist_guard *g,
                                    MPI_Request *req, struct beit_error *err);

#endif
