/* One optimizer step, the same for every training task (trainer.h): zero-grad, micro-batches,
 * gradient and stats allreduce, the guarded update, the cursor; and the phase clock. */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "beit/encoder_train.h"
#include "trainer.h"

/* The reduced vector: the sums, the interrupt flag, then the task's extra sums. */
enum { SUM_LOSS, SUM_CORRECT, SUM_UNITS, SUM_IMAGES, SUM_INTERRUPTED, SUM_HEAD };

void beit_trainer_mark(struct beit_trainer *tr, int phase)
{
  double t = beit_clock_now();
  if (phase >= 0 && phase < BEIT_TRAINER_MAX_PHASES)
    tr->phase[phase] += t - tr->phase_mark;
  tr->phase_mark = t;
}

/* The micro-batches of one step; the last one's backward starts the gradient allreduce. */
static enum beit_status micro_batches(struct beit_trainer *tr, const struct beit_trainer_loop *loop,
                                      struct beit_step_sums *sums, double *extra,
                                      struct beit_error *err)
{
  long accum = tr->recipe->batch.accum_steps;
  for (long a = 0; a < accum; a++) {
    const struct beit_loader_batch *b = NULL;
    enum beit_status st = beit_loader_next(loop->loader, &b, err);
    if (st)
      return st;
    beit_trainer_mark(tr, 0);
    if (!b)
      return beit_error_set(err, BEIT_STATUS_INTERNAL, "training loader ended");
    int last = a == accum - 1;
    if (loop->model) {
      beit_model_set_grads_ready(loop->model, last ? beit_dist_grads_ready : NULL,
                                 loop->reducer);
      if (last)
        beit_dist_grads_begin(loop->reducer);
    }
    if ((st = loop->micro_batch(loop->ctx, b, sums, extra, err)))
      return st;
  }
  if (loop->model)
    beit_model_set_grads_ready(loop->model, NULL, NULL);
  else
    beit_dist_grads_begin(loop->reducer);
  return BEIT_STATUS_OK;
}

enum beit_status beit_trainer_step(struct beit_trainer *tr, const struct beit_trainer_loop *loop,
                                   struct beit_step_sums *sums, double *grad_norm,
                                   struct beit_error *err)
{
  size_t n = SUM_HEAD + loop->n_extra;
  if (n > tr->step_sums_cap) {
    double *p = realloc(tr->step_sums, n * sizeof *p);
    if (!p)
      return beit_error_set(err, BEIT_STATUS_NOMEM, "step sums: out of memory");
    tr->step_sums = p;
    tr->step_sums_cap = n;
  }
  double *v = tr->step_sums;
  memset(v, 0, n * sizeof *v);
  memset(sums, 0, sizeof *sums);
  tr->phase_mark = beit_clock_now();
  if (!tr->grads_zero) /* the first step, or after a skipped update */
    memset(tr->grads, 0, tr->table->total * sizeof *tr->grads);
  tr->grads_zero = 0;
  enum beit_status st = micro_batches(tr, loop, sums, v + SUM_HEAD, err);
  if (st || (st = beit_dist_grads_finish(loop->reducer, err)))
    return st;
  beit_trainer_mark(tr, loop->nphases - 2);
  struct beit_dist_grads_stats gs;
  beit_dist_grads_get_stats(loop->reducer, &gs);
  tr->allreduce_mpi += gs.mpi_seconds;
  v[SUM_LOSS] = sums->loss, v[SUM_CORRECT] = sums->correct, v[SUM_UNITS] = sums->units;
  v[SUM_IMAGES] = sums->images, v[SUM_INTERRUPTED] = beit_trainer_interrupted();
  if ((st = beit_dist_allreduce_sum_f64(tr->dist, v, n, err)))
    return st;
  sums->loss = v[SUM_LOSS], sums->correct = v[SUM_CORRECT], sums->units = v[SUM_UNITS];
  sums->images = v[SUM_IMAGES];
  double loss = sums->units > 0 ? sums->loss / sums->units : 0.0;
  int applied;
  if ((st = beit_trainer_update(tr, loss, sums->units, grad_norm, &applied, err)))
    return st;
  if (loop->model)
    beit_model_set_weights_rounded(loop->model, applied && tr->params_h);
  beit_loader_cursor(loop->loader, &tr->cursor);
  beit_trainer_mark(tr, loop->nphases - 1);
  if (loop->after_step)
    loop->after_step(loop->ctx, sums, v + SUM_HEAD);
  return v[SUM_INTERRUPTED] > 0 ? BEIT_STATUS_INTERRUPTED : BEIT_STATUS_OK;
}
