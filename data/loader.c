/* The batch loader: worker threads decode and augment samples into a ring of preallocated
 * batches; the caller takes them in order with beit_loader_next.
 *
 * Order (docs/distributed.md; beit/data.h): step t of the run is global step k of epoch e;
 * rank r's sample i of that step is permutation position p = k*W*B + r*B + i, record
 * perm_e(p). Work is handed out one sample at a time (a unit = (t, i)) to whichever worker is
 * free, so the result is independent of thread timing: every unit writes only its own rows,
 * with randomness keyed by (seed, epoch, record). A slot may be refilled only once the caller
 * has moved past the batch it held (ring of num_buffers slots). A record that does not decode,
 * or whose image chunk fails its checksum, is replaced by the record at the next permutation
 * position that does (wrapping), logged once (key, or shard and record); any other failed shard
 * read (I/O, a shard deleted or replaced) stops the loader with an error naming the file. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "data_internal.h"
#include "tensor_table.h"

struct slot {
  struct beit_loader_batch batch;
  uint64_t t;       /* run step held */
  size_t pending;   /* samples not finished */
  size_t skipped;   /* records skipped while filling it */
  int ready;
};

struct worker {
  struct beit_loader *ld;
  pthread_t thread;
  int started;
  struct beit_data_scratch *ws;
  struct beit_data_record rec;
};

struct beit_loader {
  struct beit_dataset *ds;
  struct beit_loader_options opt;
  size_t n, B, sa, sb, C; /* records, batch, floats per view A / view B sample, classes */
  uint64_t wb, spe;       /* W*B, global steps per epoch */
  uint64_t epoch0, step0; /* start cursor as (epoch, step) */
  uint64_t end_t;         /* loop = 0: run steps in the start epoch */
  struct slot *slots;
  size_t nslots;
  struct worker *workers;
  int nworkers;
  _Atomic unsigned char *bad; /* per record: 1 = known not to decode */

  pthread_mutex_t mu;
  pthread_cond_t cv_work, cv_ready;
  uint64_t claim_t;       /* next unit to hand out: (claim_t, claim_i) */
  size_t claim_i;
  uint64_t next_t;        /* next step to give the caller */
  int holding;            /* the caller holds step next_t - 1 */
  int stop;
  enum beit_status fail;
  struct beit_error fail_err;
  size_t skipped, batches; /* in the batches returned */
  size_t corrupt;          /* records found failing their checksum */
  double wait_seconds;
};

/* ---- permutation ---- */

static uint64_t mix64(uint64_t z)
{
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t beit_data_permute(uint64_t position, uint64_t n, uint64_t seed, uint64_t epoch)
{
  if (n <= 1)
    return 0;
  int bits = 2;
  while (bits < 64 && (n - 1) >> bits)
    bits += 2;
  int half = bits / 2;
  uint64_t mask = half == 32 ? 0xFFFFFFFFull : (1ull << half) - 1;
  uint64_t key = mix64(mix64(seed + 0x9E3779B97F4A7C15ull) ^ (epoch * 0xD1B54A32D192ED03ull));
  uint64_t x = position;
  do { /* 6-round Feistel network on `bits` bits; cycle-walk back into [0, n) */
    uint64_t l = x >> half, r = x & mask;
    for (uint64_t round = 0; round < 6; round++) {
      uint64_t f = mix64(r ^ key ^ (round * 0x9E3779B97F4A7C15ull)) & mask;
      uint64_t nl = r;
      r = l ^ f;
      l = nl;
    }
    x = (l << half) | r;
  } while (x >= n);
  return x;
}

/* ---- geometry ---- */

static void step_of(const struct beit_loader *ld, uint64_t t, uint64_t *epoch, uint64_t *k)
{
  uint64_t s = ld->step0 + t;
  *epoch = ld->epoch0 + s / ld->spe;
  *k = s % ld->spe;
}

/* Samples rank r gets in global step k. */
static size_t count_of(const struct beit_loader *ld, uint64_t k)
{
  uint64_t first = k * ld->wb + (uint64_t)ld->opt.rank * ld->B;
  if (first >= ld->n)
    return 0;
  return ld->n - first < ld->B ? (size_t)(ld->n - first) : ld->B;
}

static uint64_t record_at(const struct beit_loader *ld, uint64_t p, uint64_t epoch)
{
  return ld->opt.shuffle ? beit_data_permute(p, ld->n, ld->opt.seed, epoch) : p;
}

/* ---- workers ---- */

static void fail_locked(struct beit_loader *ld, const struct beit_error *err)
{
  if (!ld->fail) {
    ld->fail = err->status ? err->status : BEIT_STATUS_IO;
    ld->fail_err = *err;
  }
  pthread_cond_broadcast(&ld->cv_ready);
}

/* Decode + transform record p of the epoch into sample i of slot; skips bad records. */
static enum beit_status fill_sample(struct worker *w, struct slot *sl, uint64_t epoch,
                                    uint64_t p, size_t i, struct beit_error *err)
{
  struct beit_loader *ld = w->ld;
  uint64_t idx0 = record_at(ld, p, epoch);
  for (uint64_t tries = 0; tries < ld->n; tries++) {
    uint64_t idx = tries ? record_at(ld, (p + tries) % ld->n, epoch) : idx0;
    if (!atomic_load_explicit(&ld->bad[idx], memory_order_relaxed)) {
      enum beit_status st = beit_data_read_record(ld->ds, idx, &w->rec, 0, err);
      if (st == BEIT_STATUS_FORMAT) { /* its chunk failed the checksum: skip it like bad bytes */
        int first = !atomic_exchange_explicit(&ld->bad[idx], 1, memory_order_relaxed);
        pthread_mutex_lock(&ld->mu);
        ld->corrupt += first; /* two workers may meet the same record */
        sl->skipped++;
        if (first && ld->opt.log)
          fprintf(ld->opt.log, "skip %s\n", err->message);
        pthread_mutex_unlock(&ld->mu);
        continue;
      }
      if (st)
        return st; /* I/O error, or the shard changed on disk: fatal */
      struct beit_data_image img;
      struct beit_error derr = {0};
      st = beit_data_decode(&img, w->rec.bytes, w->rec.size, w->rec.key, &derr);
      if (!st) {
        struct beit_rng rng; /* keyed by the position's own record, not the substitute */
        beit_rng_seed(&rng, ld->opt.seed, epoch, idx0);
        float *va = sl->batch.view_a + i * ld->sa;
        float *vb = sl->batch.view_b ? sl->batch.view_b + i * ld->sb : NULL;
        st = beit_data_transform_apply(&ld->opt.transform, &img, &rng, va, vb, w->ws, &derr);
        beit_data_image_free(&img);
      }
      if (!st) {
        sl->batch.indices[i] = (int64_t)idx;
        if (sl->batch.labels)
          sl->batch.labels[i] = w->rec.labels[0];
        if (sl->batch.targets) {
          float *row = sl->batch.targets + i * ld->C;
          memset(row, 0, ld->C * sizeof(float));
          for (size_t l = 0; l < w->rec.num_labels; l++)
            row[w->rec.labels[l]] = 1.0f;
        }
        return BEIT_STATUS_OK;
      }
      if (st == BEIT_STATUS_NOMEM)
        return beit_error_set(err, st, "%s", derr.message);
      if ((st = beit_data_check_record_file(ld->ds, idx, err)))
        return st; /* not a bad record: its shard changed on disk */
      atomic_store_explicit(&ld->bad[idx], 1, memory_order_relaxed);
      if (ld->opt.log) {
        struct beit_data_record kr = {0};
        struct beit_error kerr;
        const char *key = beit_data_read_record(ld->ds, idx, &kr, 1, &kerr) ? "?" : kr.key;
        pthread_mutex_lock(&ld->mu);
        fprintf(ld->opt.log, "skip %s: %s\n", key, derr.message);
        pthread_mutex_unlock(&ld->mu);
        beit_data_record_free(&kr);
      }
    }
    pthread_mutex_lock(&ld->mu);
    sl->skipped++; /* counted when the batch is handed out: prefetching does not show */
    pthread_mutex_unlock(&ld->mu);
  }
  return beit_error_set(err, BEIT_STATUS_FORMAT, "no record of the dataset decodes");
}

/* Prepare slot t % R for step t (called under the lock when its first unit is claimed). */
static void open_slot(struct beit_loader *ld, uint64_t t)
{
  struct slot *sl = &ld->slots[t % ld->nslots];
  uint64_t epoch, k;
  step_of(ld, t, &epoch, &k);
  sl->t = t;
  sl->ready = 0;
  sl->batch.count = count_of(ld, k);
  sl->pending = sl->batch.count;
  sl->skipped = 0;
  sl->batch.epoch = epoch;
  sl->batch.position = k * ld->wb;
}

static void *worker_main(void *arg)
{
  struct worker *w = arg;
  struct beit_loader *ld = w->ld;
  pthread_mutex_lock(&ld->mu);
  for (;;) {
    /* Next unit, once its slot is free and the run has not ended. */
    uint64_t t;
    for (;;) {
      if (ld->stop || ld->fail)
        goto out;
      t = ld->claim_t;
      uint64_t first_held = ld->holding ? ld->next_t - 1 : ld->next_t;
      if (t < first_held + ld->nslots && t < ld->end_t)
        break;
      pthread_cond_wait(&ld->cv_work, &ld->mu);
    }
    size_t i = ld->claim_i;
    struct slot *sl = &ld->slots[t % ld->nslots];
    if (i == 0)
      open_slot(ld, t);
    if (i + 1 >= sl->batch.count) {
      ld->claim_t++;
      ld->claim_i = 0;
    } else {
      ld->claim_i++;
    }
    if (sl->batch.count == 0) { /* a rank past the end of a short final step */
      sl->ready = 1;
      pthread_cond_broadcast(&ld->cv_ready);
      continue;
    }
    pthread_mutex_unlock(&ld->mu);

    uint64_t epoch, k;
    step_of(ld, t, &epoch, &k);
    uint64_t p = k * ld->wb + (uint64_t)ld->opt.rank * ld->B + i;
    struct beit_error err = {0};
    enum beit_status st = fill_sample(w, sl, epoch, p, i, &err);

    pthread_mutex_lock(&ld->mu);
    if (st) {
      fail_locked(ld, &err);
      goto out;
    }
    if (--sl->pending == 0) {
      sl->ready = 1;
      pthread_cond_broadcast(&ld->cv_ready);
    }
  }
out:
  pthread_mutex_unlock(&ld->mu);
  return NULL;
}

/* ---- public ---- */

void beit_loader_defaults(struct beit_loader_options *opt)
{
  memset(opt, 0, sizeof *opt);
  beit_data_transform_defaults(&opt->transform, BEIT_DATA_MODE_PRETRAIN);
  opt->batch_size = 32;
  opt->rank = 0;
  opt->world_size = 1;
  opt->num_workers = 2;
  opt->num_buffers = 3;
  opt->seed = 0;
  opt->shuffle = 1;
  opt->drop_last = 1;
  opt->loop = 1;
  opt->log = stderr;
}

static enum beit_status alloc_slots(struct beit_loader *ld, struct beit_error *err)
{
  int pre = ld->opt.transform.mode == BEIT_DATA_MODE_PRETRAIN && ld->opt.transform.second_size > 0;
  int ml = beit_data_task(ld->ds) == BEIT_DATA_TASK_MULTILABEL;
  for (size_t s = 0; s < ld->nslots; s++) {
    struct beit_loader_batch *b = &ld->slots[s].batch;
    b->view_a = beit_alloc_floats(ld->B * ld->sa);
    b->view_b = pre ? beit_alloc_floats(ld->B * ld->sb) : NULL;
    b->labels = ml ? NULL : calloc(ld->B, sizeof(int32_t));
    b->targets = ml ? beit_alloc_floats(ld->B * ld->C) : NULL;
    b->indices = calloc(ld->B, sizeof(int64_t));
    if (!b->view_a || (pre && !b->view_b) || (!ml && !b->labels) || (ml && !b->targets) || !b->indices)
      return beit_error_set(err, BEIT_STATUS_NOMEM, "loader: out of memory for %zu batches of %zu",
                            ld->nslots, ld->B);
  }
  return BEIT_STATUS_OK;
}

enum beit_status beit_loader_init(struct beit_loader **out, const char *dir,
                                  const struct beit_loader_options *opt,
                                  const struct beit_loader_cursor *start, struct beit_error *err)
{
  *out = NULL;
  enum beit_status st = beit_data_transform_check(&opt->transform, err);
  if (st)
    return st;
  if (opt->batch_size < 1 || opt->world_size < 1 || opt->rank < 0 || opt->rank >= opt->world_size ||
      opt->num_workers < 1 || opt->num_workers > 256 || opt->num_buffers < 2 || opt->num_buffers > 64)
    return beit_error_set(err, BEIT_STATUS_CONFIG,
                          "loader: need batch_size >= 1, 0 <= rank < world_size, 1..256 workers, 2..64 buffers");
  struct beit_loader *ld = calloc(1, sizeof *ld);
  if (!ld)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "loader: out of memory");
  ld->opt = *opt;
  pthread_mutex_init(&ld->mu, NULL);
  pthread_cond_init(&ld->cv_work, NULL);
  pthread_cond_init(&ld->cv_ready, NULL);
  if ((st = beit_data_open(&ld->ds, dir, err)))
    goto fail;
  ld->n = beit_data_count(ld->ds);
  ld->B = opt->batch_size;
  ld->wb = (uint64_t)opt->batch_size * (uint64_t)opt->world_size;
  ld->C = (size_t)beit_data_num_classes(ld->ds);
  size_t S = (size_t)opt->transform.image_size, s2 = (size_t)opt->transform.second_size;
  ld->sa = 3 * S * S;
  ld->sb = 3 * s2 * s2;
  ld->spe = opt->drop_last ? ld->n / ld->wb : (ld->n + ld->wb - 1) / ld->wb;
  if (ld->spe == 0) {
    st = beit_error_set(err, BEIT_STATUS_CONFIG,
                        "%s: %zu records are fewer than one global batch of %llu (world x batch)",
                        dir, ld->n, (unsigned long long)ld->wb);
    goto fail;
  }
  struct beit_loader_cursor c0 = {0, 0};
  if (start)
    c0 = *start;
  if (c0.position % ld->wb || c0.position / ld->wb > ld->spe) {
    st = beit_error_set(err, BEIT_STATUS_CONFIG,
                        "loader: cursor position %llu is not a step boundary of world x batch = %llu "
                        "within an epoch of %llu steps",
                        (unsigned long long)c0.position, (unsigned long long)ld->wb,
                        (unsigned long long)ld->spe);
    goto fail;
  }
  ld->epoch0 = c0.epoch;
  ld->step0 = c0.position / ld->wb;
  ld->end_t = opt->loop ? UINT64_MAX : ld->spe - ld->step0;
  ld->nslots = (size_t)opt->num_buffers;
  ld->slots = calloc(ld->nslots, sizeof *ld->slots);
  ld->bad = calloc(ld->n ? ld->n : 1, 1);
  ld->workers = calloc((size_t)opt->num_workers, sizeof *ld->workers);
  if (!ld->slots || !ld->bad || !ld->workers) {
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "loader: out of memory");
    goto fail;
  }
  if ((st = alloc_slots(ld, err)))
    goto fail;
  for (int i = 0; i < opt->num_workers; i++) {
    struct worker *w = &ld->workers[i];
    w->ld = ld;
    if (!(w->ws = beit_data_scratch_init())) {
      st = beit_error_set(err, BEIT_STATUS_NOMEM, "loader: out of memory");
      goto fail;
    }
  }
  for (int i = 0; i < opt->num_workers; i++) {
    if (pthread_create(&ld->workers[i].thread, NULL, worker_main, &ld->workers[i])) {
      st = beit_error_set(err, BEIT_STATUS_NOMEM, "loader: cannot start worker thread %d", i);
      goto fail;
    }
    ld->workers[i].started = 1;
    ld->nworkers = i + 1;
  }
  *out = ld;
  return BEIT_STATUS_OK;
fail:
  beit_loader_free(ld);
  return st;
}

void beit_loader_free(struct beit_loader *ld)
{
  if (!ld)
    return;
  pthread_mutex_lock(&ld->mu);
  ld->stop = 1;
  pthread_cond_broadcast(&ld->cv_work);
  pthread_mutex_unlock(&ld->mu);
  if (ld->workers) {
    for (int i = 0; i < ld->opt.num_workers; i++) {
      struct worker *w = &ld->workers[i];
      if (w->started)
        pthread_join(w->thread, NULL);
      beit_data_scratch_free(w->ws);
      beit_data_record_free(&w->rec);
    }
  }
  for (size_t s = 0; ld->slots && s < ld->nslots; s++) {
    struct beit_loader_batch *b = &ld->slots[s].batch;
    free(b->view_a);
    free(b->view_b);
    free(b->labels);
    free(b->targets);
    free(b->indices);
  }
  free(ld->slots);
  free(ld->workers);
  free((void *)ld->bad);
  beit_data_close(ld->ds);
  pthread_cond_destroy(&ld->cv_work);
  pthread_cond_destroy(&ld->cv_ready);
  pthread_mutex_destroy(&ld->mu);
  free(ld);
}

enum beit_status beit_loader_next(struct beit_loader *ld, const struct beit_loader_batch **batch,
                                  struct beit_error *err)
{
  *batch = NULL;
  double t0 = beit_clock_now();
  pthread_mutex_lock(&ld->mu);
  if (ld->holding) { /* release the previous batch's slot to the workers */
    ld->holding = 0;
    pthread_cond_broadcast(&ld->cv_work);
  }
  enum beit_status st = BEIT_STATUS_OK;
  uint64_t t = ld->next_t;
  if (t >= ld->end_t)
    goto unlock;
  struct slot *sl = &ld->slots[t % ld->nslots];
  while (!ld->fail && !(sl->ready && sl->t == t))
    pthread_cond_wait(&ld->cv_ready, &ld->mu);
  if (ld->fail) {
    st = ld->fail;
    if (err)
      *err = ld->fail_err;
    goto unlock;
  }
  ld->holding = 1;
  ld->next_t = t + 1;
  ld->batches++;
  ld->skipped += sl->skipped;
  *batch = &sl->batch;
unlock:
  ld->wait_seconds += beit_clock_now() - t0;
  pthread_mutex_unlock(&ld->mu);
  return st;
}

void beit_loader_cursor(const struct beit_loader *ld, struct beit_loader_cursor *cursor)
{
  uint64_t epoch, k;
  struct beit_loader *m = (struct beit_loader *)ld;
  pthread_mutex_lock(&m->mu);
  step_of(ld, ld->next_t, &epoch, &k);
  pthread_mutex_unlock(&m->mu);
  cursor->epoch = epoch;
  cursor->position = k * ld->wb;
}

void beit_loader_stats(const struct beit_loader *ld, struct beit_loader_stats *stats)
{
  struct beit_loader *m = (struct beit_loader *)ld;
  pthread_mutex_lock(&m->mu);
  stats->skipped = ld->skipped;
  stats->corrupt = ld->corrupt;
  stats->wait_seconds = ld->wait_seconds;
  stats->batches = ld->batches;
  pthread_mutex_unlock(&m->mu);
}

struct beit_dataset *beit_loader_dataset(struct beit_loader *ld) { return ld->ds; }
uint64_t beit_loader_steps_per_epoch(const struct beit_loader *ld) { return ld->spe; }
