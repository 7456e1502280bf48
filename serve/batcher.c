/* The batching queue: connection threads queue jobs (one request's preprocessed images); one
 * worker per inference session takes images from the queue head up to max_batch, runs one
 * forward for all of them and hands each job its rows of probabilities. Requests that arrive
 * while a forward runs are therefore batched together at the next one, with no added latency
 * when the server is idle (batch_wait_us = 0).
 *
 * Ownership under timeouts: a job is referenced by its requester and, while some of its images
 * sit in a running batch (inflight > 0), by that worker. A requester that gives up unlinks the
 * job from the queue; if no batch holds it, it frees it, else it marks it abandoned and the
 * last worker to finish with it frees it. Everything below runs under one mutex except the
 * copy of views into a worker's batch buffer and the forward itself.
 *
 * Admission: a requester reserves room for its images before it decodes them, so the memory
 * held by prepared-but-unfinished requests is bounded by max_queue_images views whatever the
 * number of connections; beyond that the server answers 503 at once. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve.h"

struct slice {
  struct beit_job *job;
  size_t first, count;
};

struct worker {
  struct beit_batcher *b;
  int session;
  pthread_t thread;
  int started;
  float *views, *probs; /* (max_batch, 3, S, S), (max_batch, C) */
  struct slice *slices;
};

struct beit_batcher {
  struct beit_infer *inf;
  pthread_mutex_t lock;
  pthread_cond_t work;
  struct beit_job *head, *tail;
  size_t queued_images, reserved_images, max_queue_images, max_batch, view_floats, labels;
  unsigned batch_wait_us;
  int stopping;
  struct worker *workers;
  int nworkers;
  struct beit_batcher_stats stats;
};

struct beit_job *beit_job_create(const struct beit_infer *inf, size_t n)
{
  struct beit_job *job = calloc(1, sizeof *job);
  if (!job)
    return NULL;
  job->n = n;
  job->views = malloc(n * beit_infer_view_floats(inf) * sizeof(float));
  job->probs = malloc(n * beit_infer_num_labels(inf) * sizeof(float));
  if (!job->views || !job->probs) {
    free(job->views);
    free(job->probs);
    free(job);
    return NULL;
  }
  beit_clock_cond_init(&job->done);
  return job;
}

void beit_job_free(struct beit_job *job)
{
  if (!job)
    return;
  pthread_cond_destroy(&job->done);
  free(job->views);
  free(job->probs);
  free(job);
}

static void unlink_job(struct beit_batcher *b, struct beit_job *job)
{
  struct beit_job **pp = &b->head, *prev = NULL;
  while (*pp && *pp != job) {
    prev = *pp;
    pp = &(*pp)->next;
  }
  if (!*pp)
    return;
  *pp = job->next;
  if (b->tail == job)
    b->tail = prev;
  job->next = NULL;
  job->queued = 0;
  b->queued_images -= job->n - job->taken;
}

/* Under the lock: take up to max_batch images from the queue head. */
static size_t gather(struct beit_batcher *b, struct slice *slices, size_t *nslices)
{
  size_t count = 0, ns = 0;
  while (b->head && count < b->max_batch) {
    struct beit_job *job = b->head;
    size_t k = job->n - job->taken;
    if (k > b->max_batch - count)
      k = b->max_batch - count;
    slices[ns++] = (struct slice){job, job->taken, k};
    job->taken += k;
    job->inflight++;
    count += k;
    b->queued_images -= k;
    if (job->taken == job->n) {
      b->head = job->next;
      if (!b->head)
        b->tail = NULL;
      job->next = NULL;
      job->queued = 0;
    }
  }
  *nslices = ns;
  return count;
}

static void *worker_main(void *arg)
{
  struct worker *w = arg;
  struct beit_batcher *b = w->b;
  size_t V = b->view_floats, C = b->labels;
  pthread_mutex_lock(&b->lock);
  for (;;) {
    while (!b->head && !b->stopping)
      pthread_cond_wait(&b->work, &b->lock);
    if (!b->head && b->stopping)
      break;
    if (b->batch_wait_us && b->queued_images < b->max_batch && !b->stopping) {
      struct timespec until = beit_clock_timespec(beit_clock_now() + 1e-6 * b->batch_wait_us);
      while (b->queued_images < b->max_batch && !b->stopping)
        if (pthread_cond_timedwait(&b->work, &b->lock, &until) == ETIMEDOUT)
          break;
      if (!b->head)
        continue;
    }
    size_t ns = 0, count = gather(b, w->slices, &ns);
    pthread_mutex_unlock(&b->lock);

    /* inflight > 0 keeps every job's views alive while we copy and run. */
    size_t row = 0;
    for (size_t s = 0; s < ns; s++) {
      memcpy(w->views + row * V, w->slices[s].job->views + w->slices[s].first * V,
             w->slices[s].count * V * sizeof(float));
      row += w->slices[s].count;
    }
    struct beit_error err = {0};
    double t0 = beit_clock_now();
    enum beit_status st = beit_infer_run(b->inf, w->session, w->views, count, w->probs, &err);
    double dt = beit_clock_now() - t0;

    pthread_mutex_lock(&b->lock);
    b->stats.forward_seconds += dt;
    b->stats.batches++;
    b->stats.images += count;
    if (count > b->stats.max_batch_seen)
      b->stats.max_batch_seen = count;
    row = 0;
    for (size_t s = 0; s < ns; s++) {
      struct beit_job *job = w->slices[s].job;
      size_t k = w->slices[s].count;
      if (st) {
        job->status = st;
        snprintf(job->message, sizeof job->message, "%s", err.message);
      } else {
        memcpy(job->probs + w->slices[s].first * C, w->probs + row * C, k * C * sizeof(float));
      }
      row += k;
      job->finished += k;
      job->inflight--;
      if (job->abandoned) {
        if (job->inflight == 0)
          beit_job_free(job);
      } else if (job->finished == job->n) {
        pthread_cond_signal(&job->done);
      }
    }
  }
  pthread_mutex_unlock(&b->lock);
  return NULL;
}

int beit_batcher_reserve(struct beit_batcher *b, size_t n)
{
  pthread_mutex_lock(&b->lock);
  int ok = !b->stopping && b->queued_images + b->reserved_images + n <= b->max_queue_images;
  if (ok)
    b->reserved_images += n;
  pthread_mutex_unlock(&b->lock);
  return ok ? 0 : -1;
}

void beit_batcher_release(struct beit_batcher *b, size_t n)
{
  pthread_mutex_lock(&b->lock);
  b->reserved_images -= n < b->reserved_images ? n : b->reserved_images;
  pthread_mutex_unlock(&b->lock);
}

int beit_batcher_submit(struct beit_batcher *b, struct beit_job *job)
{
  pthread_mutex_lock(&b->lock);
  b->reserved_images -= job->n < b->reserved_images ? job->n : b->reserved_images;
  if (b->stopping) {
    pthread_mutex_unlock(&b->lock);
    return -1;
  }
  job->next = NULL;
  job->taken = job->finished = job->inflight = 0;
  job->abandoned = job->cancelled = 0;
  job->status = BEIT_STATUS_OK;
  job->message[0] = '\0';
  job->queued = 1;
  if (b->tail)
    b->tail->next = job;
  else
    b->head = job;
  b->tail = job;
  b->queued_images += job->n;
  /* Wake one worker; wake all when this job alone is more than one batch. */
  if (job->n > b->max_batch)
    pthread_cond_broadcast(&b->work);
  else
    pthread_cond_signal(&b->work);
  pthread_mutex_unlock(&b->lock);
  return 0;
}

int beit_batcher_wait(struct beit_batcher *b, struct beit_job *job, double deadline)
{
  struct timespec until = beit_clock_timespec(deadline);
  pthread_mutex_lock(&b->lock);
  while (job->finished < job->n && !job->cancelled)
    if (pthread_cond_timedwait(&job->done, &b->lock, &until) == ETIMEDOUT &&
        job->finished < job->n)
      break;
  if (job->finished == job->n) {
    pthread_mutex_unlock(&b->lock);
    return 0;
  }
  if (job->queued)
    unlink_job(b, job);
  int free_now = job->inflight == 0;
  if (!free_now)
    job->abandoned = 1;
  pthread_mutex_unlock(&b->lock);
  int cancelled = job->cancelled;
  if (free_now)
    beit_job_free(job);
  return cancelled ? -2 : -1;
}

void beit_batcher_stats(struct beit_batcher *b, struct beit_batcher_stats *stats)
{
  pthread_mutex_lock(&b->lock);
  *stats = b->stats;
  stats->queued_images = b->queued_images;
  stats->reserved_images = b->reserved_images;
  pthread_mutex_unlock(&b->lock);
}

/* Refuse new work, with cancel also every queued job (its waiter returns -2 at once), and
 * wake the workers: one waiting for a fuller batch stops waiting. */
static void set_stopping(struct beit_batcher *b, int cancel)
{
  pthread_mutex_lock(&b->lock);
  b->stopping = 1;
  while (cancel && b->head) {
    struct beit_job *job = b->head;
    unlink_job(b, job);
    job->cancelled = 1;
    pthread_cond_signal(&job->done);
  }
  pthread_cond_broadcast(&b->work);
  pthread_mutex_unlock(&b->lock);
}

void beit_batcher_abort(struct beit_batcher *b)
{
  if (b)
    set_stopping(b, 1);
}

void beit_batcher_stop(struct beit_batcher *b)
{
  if (!b)
    return;
  set_stopping(b, 0);
  for (int i = 0; i < b->nworkers; i++) {
    if (b->workers[i].started)
      pthread_join(b->workers[i].thread, NULL);
    free(b->workers[i].views);
    free(b->workers[i].probs);
    free(b->workers[i].slices);
  }
  free(b->workers);
  pthread_cond_destroy(&b->work);
  pthread_mutex_destroy(&b->lock);
  free(b);
}

enum beit_status beit_batcher_start(struct beit_batcher **out, struct beit_infer *inf,
                                    unsigned batch_wait_us, size_t max_queue_images,
                                    struct beit_error *err)
{
  *out = NULL;
  struct beit_batcher *b = calloc(1, sizeof *b);
  if (!b)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "batcher: out of memory");
  const struct beit_infer_options *opt = beit_infer_get_options(inf);
  b->inf = inf;
  b->max_batch = opt->max_batch;
  b->view_floats = beit_infer_view_floats(inf);
  b->labels = beit_infer_num_labels(inf);
  b->batch_wait_us = batch_wait_us;
  b->max_queue_images = max_queue_images ? max_queue_images : 1;
  pthread_mutex_init(&b->lock, NULL);
  beit_clock_cond_init(&b->work);
  b->nworkers = opt->sessions;
  b->workers = calloc((size_t)b->nworkers, sizeof *b->workers);
  if (!b->workers) {
    b->nworkers = 0;
    beit_batcher_stop(b);
    return beit_error_set(err, BEIT_STATUS_NOMEM, "batcher: out of memory");
  }
  for (int i = 0; i < b->nworkers; i++) {
    struct worker *w = &b->workers[i];
    w->b = b;
    w->session = i;
    w->views = malloc(b->max_batch * b->view_floats * sizeof(float));
    w->probs = malloc(b->max_batch * b->labels * sizeof(float));
    w->slices = malloc(b->max_batch * sizeof *w->slices);
    if (!w->views || !w->probs || !w->slices) {
      beit_batcher_stop(b);
      return beit_error_set(err, BEIT_STATUS_NOMEM, "batcher: out of memory");
    }
    if (pthread_create(&w->thread, NULL, worker_main, w)) {
      beit_batcher_stop(b);
      return beit_error_set(err, BEIT_STATUS_IO, "batcher: cannot start worker %d", i);
    }
    w->started = 1;
  }
  *out = b;
  return BEIT_STATUS_OK;
}
