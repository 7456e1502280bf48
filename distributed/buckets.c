/* Bucket bookkeeping for gradient averaging: which floats of a step have been announced final,
 * and which bucket may start next. Shared by mpi.c and serial.c so that the serial stand-in
 * reports the same misuse (overlapping or out-of-range announcements) as a real job.
 *
 * Buckets are handed out strictly from the last to the first, so every rank starts the same
 * collectives in the same order whatever order its ranges are announced in. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist_internal.h"

enum beit_status beit_dist_buckets_init(struct beit_dist_buckets *b, size_t n, size_t size,
                                        struct beit_error *err)
{
  memset(b, 0, sizeof *b);
  if (size == 0)
    return beit_error_set(err, BEIT_STATUS_USAGE, "gradient buckets: bucket size is 0 floats");
  b->n = n;
  b->size = size;
  if (n == 0) {
    b->count = 0;
    b->first = 0;
  } else if (size >= n) {
    b->count = 1;
    b->first = n;
  } else if (n % size == 0) {
    b->count = n / size;
    b->first = size;
  } else {
    b->count = 1 + n / size;
    b->first = n % size;
  }
  b->filled = calloc(b->count ? b->count : 1, sizeof *b->filled);
  if (!b->filled)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "gradient buckets: %zu counters", b->count);
  beit_dist_buckets_reset(b);
  return BEIT_STATUS_OK;
}

void beit_dist_buckets_free(struct beit_dist_buckets *b)
{
  free(b->filled);
  b->filled = NULL;
}

void beit_dist_buckets_reset(struct beit_dist_buckets *b)
{
  memset(b->filled, 0, (b->count ? b->count : 1) * sizeof *b->filled);
  b->next = b->count;
  b->late = 0;
  beit_error_clear(&b->pending);
}

size_t beit_dist_bucket_begin(const struct beit_dist_buckets *b, size_t k)
{
  return k == 0 ? 0 : b->first + (k - 1) * b->size;
}

size_t beit_dist_bucket_end(const struct beit_dist_buckets *b, size_t k)
{
  return b->first + k * b->size;
}

static size_t bucket_of(const struct beit_dist_buckets *b, size_t p)
{
  return p < b->first ? 0 : 1 + (p - b->first) / b->size;
}

void beit_dist_buckets_fail(struct beit_dist_buckets *b, enum beit_status status, const char *fmt,
                            ...)
{
  if (b->pending.status != BEIT_STATUS_OK)
    return;
  va_list ap;
  va_start(ap, fmt);
  b->pending.status = status;
  vsnprintf(b->pending.message, sizeof b->pending.message, fmt, ap);
  va_end(ap);
}

int beit_dist_buckets_ready(struct beit_dist_buckets *b, int on_thread, const char *thread,
                            size_t begin, size_t end)
{
  if (!on_thread) {
    beit_dist_buckets_fail(b, BEIT_STATUS_USAGE,
                           "grads_ready [%zu, %zu) called from a thread other than %s", begin,
                           end, thread);
    return 0;
  }
  beit_dist_buckets_mark(b, begin, end);
  return 1;
}

void beit_dist_buckets_mark(struct beit_dist_buckets *b, size_t begin, size_t end)
{
  if (begin > end || end > b->n) {
    beit_dist_buckets_fail(b, BEIT_STATUS_USAGE,
                           "grads_ready: range [%zu, %zu) outside the gradient buffer [0, %zu)",
                           begin, end, b->n);
    return;
  }
  if (begin == end)
    return;
  size_t k0 = bucket_of(b, begin), k1 = bucket_of(b, end - 1);
  /* validate the whole range before counting any of it */
  for (size_t k = k0; k <= k1; k++) {
    size_t lo = beit_dist_bucket_begin(b, k), hi = beit_dist_bucket_end(b, k);
    size_t part = (end < hi ? end : hi) - (begin > lo ? begin : lo);
    if (k >= b->next) {
      beit_dist_buckets_fail(b, BEIT_STATUS_USAGE,
                             "grads_ready: range [%zu, %zu) reaches bucket %zu [%zu, %zu), already "
                             "being reduced (announced twice?)",
                             begin, end, k, lo, hi);
      return;
    }
    if (b->filled[k] + part > hi - lo) {
      beit_dist_buckets_fail(b, BEIT_STATUS_USAGE,
                             "grads_ready: range [%zu, %zu) overfills bucket %zu [%zu, %zu): "
                             "ranges announced twice in one step?",
                             begin, end, k, lo, hi);
      return;
    }
  }
  for (size_t k = k0; k <= k1; k++) {
    size_t lo = beit_dist_bucket_begin(b, k), hi = beit_dist_bucket_end(b, k);
    b->filled[k] += (end < hi ? end : hi) - (begin > lo ? begin : lo);
  }
}

int beit_dist_buckets_pop_ready(struct beit_dist_buckets *b, size_t *k)
{
  if (b->next == 0)
    return 0;
  size_t c = b->next - 1;
  if (b->filled[c] != beit_dist_bucket_end(b, c) - beit_dist_bucket_begin(b, c))
    return 0;
  b->next = c;
  *k = c;
  return 1;
}

int beit_dist_buckets_pop_any(struct beit_dist_buckets *b, size_t *k)
{
  if (b->next == 0)
    return 0;
  *k = --b->next;
  b->late++;
  return 1;
}
