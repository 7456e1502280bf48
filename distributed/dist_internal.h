/* Internals of distributed/ shared by mpi.c and serial.c, and the knobs the mpi tests turn.
 * Not part of the public API (include/beit/distributed.h). */
#ifndef BEIT_DIST_INTERNAL_H
#define BEIT_DIST_INTERNAL_H

#include <stddef.h>

#include "beit/distributed.h"

/* Largest single MPI message of bcast and the f64 reductions: MPI counts are int. */
#define BEIT_DIST_CHUNK_BYTES_DEFAULT ((size_t)1 << 30)

/* Set the chunk size of bcast and allreduce_*_f64 (bytes >= 1; the f64 reductions use
 * max(1, bytes / 8) doubles); 0 restores the default. Lets tests exercise chunking on small
 * buffers. Every rank must use the same value. */
void beit_dist_set_chunk_bytes(struct beit_dist *d, size_t bytes);

/* Make an MPI call that fails on every rank (a bcast from an invalid root, bypassing our own
 * check) and return its status: BEIT_STATUS_DISTRIBUTED with "rank R: MPI_Bcast: ..." shows that
 * MPI_ERRORS_RETURN is in force. The serial stand-in has no MPI and returns BEIT_STATUS_OK. */
enum beit_status beit_dist_test_mpi_error(struct beit_dist *d, struct beit_error *err);

/* Bucket bookkeeping of struct beit_dist_grads, independent of the transport.
 * Bucket 0 is [0, first) with first = n mod size (or size when that is 0, or n when size > n);
 * bucket k >= 1 is [first + (k-1) size, first + k size). Buckets are handed out for starting in
 * the order count-1, ..., 0 only. */
struct beit_dist_buckets {
  size_t n, size, count, first;
  size_t *filled;    /* (count) floats announced so far this step */
  size_t next;       /* buckets [next, count) have been handed out */
  size_t late;       /* buckets handed out by beit_dist_buckets_pop_any this step */
  struct beit_error pending; /* first misuse of the step; status OK when none */
};

enum beit_status beit_dist_buckets_init(struct beit_dist_buckets *b, size_t n, size_t size,
                                        struct beit_error *err);
void beit_dist_buckets_free(struct beit_dist_buckets *b);
void beit_dist_buckets_reset(struct beit_dist_buckets *b);
size_t beit_dist_bucket_begin(const struct beit_dist_buckets *b, size_t k);
size_t beit_dist_bucket_end(const struct beit_dist_buckets *b, size_t k);
/* Count [begin, end) as final; a range out of bounds or overfilling a bucket is recorded in
 * b->pending (first one wins) and ignored. */
void beit_dist_buckets_mark(struct beit_dist_buckets *b, size_t begin, size_t end);
/* Record a misuse found by the caller (first one wins). */
void beit_dist_buckets_fail(struct beit_dist_buckets *b, enum beit_status status, const char *fmt,
                            ...) __attribute__((format(printf, 3, 4)));
/* grads_ready's bookkeeping: from the allowed thread (on_thread non-zero) [begin, end) is
 * marked as beit_dist_buckets_mark does and 1 is returned; from any other it is recorded as a
 * misuse naming the allowed one (`thread`, "the one that ...") and 0 is returned. */
int beit_dist_buckets_ready(struct beit_dist_buckets *b, int on_thread, const char *thread,
                            size_t begin, size_t end);
/* Next bucket to start if it is complete: 1 and *k, else 0. */
int beit_dist_buckets_pop_ready(struct beit_dist_buckets *b, size_t *k);
/* Next bucket to start, complete or not (finish; counted in late): 1 and *k, else 0 when all
 * are out. */
int beit_dist_buckets_pop_any(struct beit_dist_buckets *b, size_t *k);

#endif
