/* The parts every training loop shares (pretraining, fine-tuning, tokenizer training):
 * AdamW state, the per-iteration lr/wd schedule, one update with non-finite protection,
 * rotating checkpoints with trainer_state.json and resume, metrics.jsonl and the progress line,
 * and SIGINT/SIGTERM handling, and one optimizer step (beit_trainer_step: zero-grad,
 * micro-batches, the gradient allreduce, the stats allreduce, the guarded update, the loader
 * cursor). A task supplies a beit_trainer_loop: its micro-batch's forward, loss and backward,
 * its evaluation, its own log fields; beit_trainer_run does the rest.
 *
 * Loss normalisation across micro-batches and ranks: a loop back-propagates the SUM of its
 * per-token (or per-sample) losses (backward with dloss = count), gradients are averaged over
 * ranks by distributed/, and beit_trainer_update rescales by world / total_count, where
 * total_count is the number of tokens (samples) in the whole global batch. The update is then
 * the gradient of the global mean, whatever the split into ranks and micro-batches. */
#ifndef BEIT_MIM_TRAINER_H
#define BEIT_MIM_TRAINER_H

#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "beit/data.h"
#include "beit/distributed.h"
#include "beit/model.h"
#include "gemm.h"
#include "recipe.h"
#include "tensor_table.h"

#define BEIT_TRAINER_MAX_PHASES 12

struct beit_trainer {
  const struct beit_recipe *recipe;
  struct beit_dist *dist;
  const struct beit_tensor_table *table;
  float *params, *grads, *m, *v;   /* m, v owned */
  long step;                        /* updates done */
  long total_steps, warmup_steps, steps_per_epoch;
  long nonfinite_run, skipped_updates;
  struct beit_loader_cursor cursor; /* where the next step's data starts */
  char out_dir[4096];
  FILE *metrics;                    /* rank 0: out_dir/metrics.jsonl */
  int tty;                          /* progress as a rewritten line */
  double t_start, t_last_log;
  long step_at_last_log;
  double images_since_log;
  /* the precision the model trains in (FP32 or BF16): trainer_state.json records it, and the
   * first metrics.jsonl record of each process with the backend description */
  enum beit_precision precision;
  int described;
  int metrics_errno;                /* rank 0: why metrics.jsonl could not be appended to; 0 */
  /* seconds per phase and inside MPI for gradients (hidden or not) since the last log line */
  double phase[BEIT_TRAINER_MAX_PHASES], phase_mark, allreduce_mpi;
  double *step_sums;                /* the step's sums, reduced over ranks (see trainer_step.c) */
  int grads_zero;                   /* the gradients are all 0 (AdamW zeroed them as it read) */
  beit_bf16 *params_h;              /* a model's bf16 weight copy for AdamW to refresh, or NULL */
  size_t step_sums_cap;
};

/* Set up for a model whose parameters are described by table (params/grads owned by the
 * model). steps_per_epoch comes from the loader; the schedule from the recipe. */
enum beit_status beit_trainer_init(struct beit_trainer *tr, const struct beit_recipe *recipe,
                                   struct beit_dist *dist, const struct beit_tensor_table *table,
                                   float *params, float *grads, long steps_per_epoch,
                                   const char *out_dir, struct beit_error *err);
/* beit_trainer_init, then beit_trainer_resume from resume_dir unless it is empty (what
 * beit_trainer_prepare_out found). precision: what the model trains in (resolved, FP32 or
 * BF16), recorded in checkpoints and metrics. */
enum beit_status beit_trainer_start(struct beit_trainer *tr, const struct beit_recipe *recipe,
                                    struct beit_dist *dist, const struct beit_tensor_table *table,
                                    float *params, float *grads, long steps_per_epoch,
                                    const char *out_dir, const char *resume_dir,
                                    enum beit_precision precision, struct beit_error *err);
/* beit_trainer_start for an encoder model trained from loader's batches: the model's table,
 * parameters and gradients, an epoch of loader steps / batch.accum_steps updates, and the model's
 * bf16 weight copy (NULL in fp32) for AdamW to refresh. */
enum beit_status beit_trainer_start_model(struct beit_trainer *tr,
                                          const struct beit_recipe *recipe,
                                          struct beit_dist *dist, struct beit_model *model,
                                          struct beit_loader *loader, const char *out_dir,
                                          const char *resume_dir, enum beit_precision precision,
                                          struct beit_error *err);
void beit_trainer_free(struct beit_trainer *tr);

/* lr and weight decay of update number `step` (0-based). */
void beit_trainer_schedule(const struct beit_trainer *tr, long step, double *lr, double *wd);

/* Finish an accumulated step: rescale grads by world / total_count, clip, and apply AdamW
 * unless the loss or gradient norm is non-finite (then the update is skipped and counted;
 * more than max_consecutive_nonfinite in a row is BEIT_STATUS_NUMERIC). *grad_norm gets the
 * pre-clip norm, *applied whether the update happened. */
enum beit_status beit_trainer_update(struct beit_trainer *tr, double loss, double total_count,
                                     double *grad_norm, int *applied, struct beit_error *err);

/* Rank 0: append a metrics.jsonl line (fields of `fields`, plus step, epoch, lr, time, images/s,
 * ETA; the first line of a process also "precision" and "backend") and print the progress line.
 * Takes ownership of fields. images: of all ranks, since the last call. */
void beit_trainer_log(struct beit_trainer *tr, cJSON *fields, double images);
/* Rank 0: append fields as one metrics.jsonl line (the first line of a process also gets the
 * provenance fields). Takes ownership. A failed write leaves no partial line; it is remembered
 * and beit_trainer_run stops the run at its next check. */
void beit_trainer_append(struct beit_trainer *tr, cJSON *fields);
/* Rank 0: an evaluation's record (fields plus step and elapsed_s) in metrics.jsonl and a stderr
 * line of its numbers; the training windows' images/s and ETA are left alone. Takes ownership. */
void beit_trainer_log_eval(struct beit_trainer *tr, cJSON *fields);

/* Rank 0: write out_dir/checkpoint-<step> with config, params, m, v, trainer_state.json
 * (step, cursor, counters, precision, backend, recipe) and, when not NULL, preprocessor
 * (preprocessor_config.json) through core/checkpoint.h, then draw
 * out_dir/curves.png (include/beit/plot.h; a failure to draw only warns); all ranks then
 * synchronise. beit_trainer_run draws it once more after the final evaluation. */
enum beit_status beit_trainer_save(struct beit_trainer *tr, const cJSON *config,
                                   const cJSON *preprocessor, struct beit_error *err);

/* Load params, m, v, step and cursor from a checkpoint folder (every rank reads the same one;
 * a different world size is fine as long as world * batch is unchanged). Rank 0 says where it
 * resumed, and notes when the checkpoint was trained in another precision than tr->precision:
 * allowed (master weights and optimizer state are fp32), but the run is then not bit-identical
 * to an uninterrupted one. A checkpoint without "precision" was trained in fp32. */
enum beit_status beit_trainer_resume(struct beit_trainer *tr, const char *dir,
                                     struct beit_error *err);

/* What one optimizer step adds up, per rank and then over ranks (micro-batches and ranks summed).
 * The loss is averaged over `units` (masked tokens, samples, or 1 per rank for a task whose
 * backward is of its batch mean already), and so is the accuracy. */
struct beit_step_sums {
  double loss;    /* sum of the units' losses */
  double correct; /* the accuracy's (or error's) sum over the same units */
  double units;
  double images;
};

/* What a training task supplies to beit_trainer_step and beit_trainer_run. */
struct beit_trainer_loop {
  void *ctx;
  const char *acc_name;                /* the accuracy's name in logs: "mlm_acc", "acc", "mae" */
  const cJSON *config;                 /* config.json of every checkpoint */
  struct beit_loader *loader;          /* of the training batches; its wait time and skipped
                                          records are logged */
  struct beit_dist_grads *reducer;     /* gradient averaging over ranks */
  /* The model whose backward announces finished gradient ranges: during the last micro-batch
   * its hook starts the allreduce bucket by bucket. NULL: the allreduce starts after it. */
  struct beit_model *model;
  /* Forward, loss and backward of one micro-batch, back-propagating the sum of its units'
   * losses (the top of this file); adds to sums and to the task's own sums, extra[n_extra]. */
  enum beit_status (*micro_batch)(void *ctx, const struct beit_loader_batch *b,
                                  struct beit_step_sums *sums, double *extra,
                                  struct beit_error *err);
  size_t n_extra;                      /* the task's own per-step sums, reduced with the rest */
  /* After an update: the step's sums over ranks. May be NULL. */
  void (*after_step)(void *ctx, const struct beit_step_sums *sums, const double *extra);
  /* Phases timed per step and logged as seconds per step under these names. The trainer charges
   * the first (waiting for data) and the last two (the exposed gradient allreduce, the update);
   * the task marks its own in between with beit_trainer_mark. */
  const char *const *phase_names;
  int nphases;
  /* Add the loop's own fields averaged over `steps` steps; may be NULL. */
  void (*log_fields)(void *ctx, cJSON *fields, double steps);
  /* Held-out evaluation, or NULL; final is 1 after the last step. */
  enum beit_status (*evaluate)(void *ctx, int final, struct beit_error *err);
  /* preprocessor_config.json of every checkpoint (a classifier's eval transform), or NULL */
  const cJSON *preprocessor;
};

/* Charge the time since the previous mark to phase `phase` of the loop's phase_names. */
void beit_trainer_mark(struct beit_trainer *tr, int phase);

/* One optimizer step: zero-grad, recipe batch.accum_steps micro-batches from the loader, the
 * gradient allreduce (overlapped with the last backward through the model's hook), one
 * allreduce of the sums, the extra sums and the ranks' interrupt flags, the guarded update
 * (beit_trainer_update with total_count = sums->units), the loader cursor, then after_step.
 * sums and *grad_norm: the step's, over all ranks. BEIT_STATUS_INTERRUPTED after a completed
 * step when any rank was signalled. */
enum beit_status beit_trainer_step(struct beit_trainer *tr, const struct beit_trainer_loop *loop,
                                   struct beit_step_sums *sums, double *grad_norm,
                                   struct beit_error *err);

/* Loss and accuracy of the first and last logged windows; the loader's skipped records (decode
 * failures and shard checksum failures) and, of those, the ones that failed their checksum. */
struct beit_trainer_run_summary {
  long steps_run; /* steps this call ran */
  double first_loss, last_loss, last_acc; /* NaN when no step ran */
  size_t skipped_records, corrupt_records;
  char last_checkpoint[4200];
};

/* The loop every trainer runs: steps until the schedule ends, a log line every log.every_steps,
 * a checkpoint every checkpoint.every_steps, an evaluation every eval.every_steps; on a signal a
 * final checkpoint and BEIT_STATUS_INTERRUPTED (err says where to resume); at the end a
 * checkpoint and the final evaluation. Faults stop the run with an error, never silently:
 * a checkpoint that cannot be written (named; nothing half-written is left), a metrics.jsonl
 * line that cannot be appended (a final checkpoint is tried first), a training shard deleted,
 * replaced or resized since it was opened (checked after each periodic checkpoint), a shard
 * read error other than a checksum failure. Every such error ends with the newest complete
 * checkpoint, the one --resume continues from. */
enum beit_status beit_trainer_run(struct beit_trainer *tr, const struct beit_trainer_loop *loop,
                                  struct beit_trainer_run_summary *sum, struct beit_error *err);

/* Before anything is written under out_dir; call on every rank. A folder that already holds a
 * run (metrics.jsonl, trainer_state.json or a checkpoint-* folder; an empty or missing folder is
 * fine) is refused (BEIT_STATUS_USAGE, naming the folder, --resume and --overwrite) unless:
 * resume: the newest complete checkpoint under out_dir into dir and its loader cursor (dir empty
 *   and cursor 0 when there is none yet: a fresh start);
 * overwrite: rank 0 moves the previous run's files (metrics.jsonl, trainer_state.json,
 *   checkpoint-*, eval.json, train_config.json, recon.png, curves.png, tokenizer/,
 *   train-fraction-*) into
 *   out_dir/previous-<UTC yyyymmdd-hhmmss>/ and says so on stderr; dir empty, a run from step 0.
 * Both set is BEIT_STATUS_USAGE. */
enum beit_status beit_trainer_prepare_out(struct beit_dist *dist, const char *out_dir,
                                          int resume, int overwrite, char *dir, size_t dir_size,
                                          struct beit_loader_cursor *cursor,
                                          struct beit_error *err);

/* Gradient bucket size for distributed averaging: about 8 buckets per model, so the allreduce of
 * the last blocks overlaps the backward of the first, within 256K..4M floats. */
size_t beit_trainer_bucket_floats(size_t total);

/* The loader cursor stored in a checkpoint's trainer_state.json (to start the loader there
 * before the trainer exists). */
enum beit_status beit_trainer_read_cursor(const char *dir, struct beit_loader_cursor *cursor,
                                          struct beit_error *err);

/* After rank 0 alone did something that can fail (a write): every rank returns rank 0's
 * outcome, st on rank 0 and BEIT_STATUS_IO "rank 0 failed to <what>" on the others, so none runs
 * ahead of a failed one. Call on every rank. */
enum beit_status beit_trainer_agree(struct beit_dist *dist, enum beit_status st, const char *what,
                                    struct beit_error *err);

/* SIGINT/SIGTERM set a flag instead of killing the process: the loop checks it, writes a final
 * checkpoint and stops. */
void beit_trainer_catch_signals(void);
int beit_trainer_interrupted(void);

#endif
