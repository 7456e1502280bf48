/* Shared training machinery: schedule, guarded AdamW update, metrics, checkpoints, signals. */
#include "trainer.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "beit/plot.h"
#include "beit/version.h"
#include "checkpoint.h"
#include "clock.h"
#include "config_table.h"
#include "beit/encoder_train.h"
#include "optim.h"

#define STATE_FORMAT_VERSION 1

static volatile sig_atomic_t interrupted = 0;

static void on_signal(int sig)
{
  (void)sig;
  interrupted = 1;
}

void beit_trainer_catch_signals(void)
{
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}

int beit_trainer_interrupted(void) { return interrupted; }

/* A metrics.jsonl whose last line has no newline (a write cut short by a crash, SIGKILL or a
 * full disk) is cut back to its last complete line, so the next record starts a line of its
 * own; said on stderr. */
static void drop_partial_line(FILE *f, const char *path)
{
  int fd = fileno(f);
  struct stat sb;
  char buf[4096];
  if (fstat(fd, &sb) != 0 || sb.st_size == 0)
    return;
  off_t end = sb.st_size, keep = 0;
  for (off_t at = end; at > 0 && !keep;) {
    size_t n = at < (off_t)sizeof buf ? (size_t)at : sizeof buf;
    at -= (off_t)n;
    if (pread(fd, buf, n, at) != (ssize_t)n)
      return;
    if (at + (off_t)n == end && buf[n - 1] == '\n')
      return; /* complete */
    for (size_t i = n; i-- > 0;)
      if (buf[i] == '\n') {
        keep = at + (off_t)i + 1;
        break;
      }
  }
  if (ftruncate(fd, keep) == 0)
    fprintf(stderr, "warning: %s: dropped an incomplete last line (%lld bytes) left by a write "
            "that was cut short\n", path, (long long)(end - keep));
}

enum beit_status beit_trainer_init(struct beit_trainer *tr, const struct beit_recipe *recipe,
                                   struct beit_dist *dist, const struct beit_tensor_table *table,
                                   float *params, float *grads, long steps_per_epoch,
                                   const char *out_dir, struct beit_error *err)
{
  memset(tr, 0, sizeof *tr);
  tr->recipe = recipe;
  tr->dist = dist;
  tr->table = table;
  tr->params = params;
  tr->grads = grads;
  tr->precision = BEIT_PRECISION_FP32;
  tr->steps_per_epoch = steps_per_epoch > 0 ? steps_per_epoch : 1;
  tr->total_steps = recipe->schedule.max_steps > 0
                        ? recipe->schedule.max_steps
                        : (long)ceil(recipe->schedule.epochs * (double)tr->steps_per_epoch);
  tr->warmup_steps = recipe->schedule.warmup_steps > 0
                         ? recipe->schedule.warmup_steps
                         : (long)(recipe->schedule.warmup_epochs * (double)tr->steps_per_epoch);
  if (tr->total_steps < 1)
    return beit_error_set(err, BEIT_STATUS_CONFIG, "recipe: schedule gives no training steps "
                          "(epochs %g x %ld steps per epoch)", recipe->schedule.epochs,
                          tr->steps_per_epoch);
  if (tr->warmup_steps > tr->total_steps)
    tr->warmup_steps = tr->total_steps;
  snprintf(tr->out_dir, sizeof tr->out_dir, "%s", out_dir);
  tr->m = beit_alloc_floats(table->total);
  tr->v = beit_alloc_floats(table->total);
  if (!tr->m || !tr->v)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "optimizer state: cannot allocate 2 x %zu "
                          "floats", table->total);
  enum beit_status st = beit_mkdirs(out_dir, err);
  if (st)
    return st;
  if (beit_dist_is_root(dist)) {
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", out_dir);
    if (!(tr->metrics = fopen(path, "a+"))) /* read: drop_partial_line */
      return beit_error_set(err, BEIT_STATUS_IO, "%s: cannot open for appending: %s", path,
                            strerror(errno));
    drop_partial_line(tr->metrics, path);
    tr->tty = isatty(fileno(stderr));
  }
  tr->t_start = tr->t_last_log = beit_clock_now();
  return BEIT_STATUS_OK;
}

enum beit_status beit_trainer_start(struct beit_trainer *tr, const struct beit_recipe *recipe,
                                    struct beit_dist *dist, const struct beit_tensor_table *table,
                                    float *params, float *grads, long steps_per_epoch,
                                    const char *out_dir, const char *resume_dir,
                                    enum beit_precision precision, struct beit_error *err)
{
  enum beit_status st = beit_trainer_init(tr, recipe, dist, table, params, grads, steps_per_epoch,
                                          out_dir, err);
  tr->precision = precision;
  if (st || !resume_dir[0])
    return st;
  return beit_trainer_resume(tr, resume_dir, err);
}

enum beit_status beit_trainer_start_model(struct beit_trainer *tr,
                                          const struct beit_recipe *recipe,
                                          struct beit_dist *dist, struct beit_model *model,
                                          struct beit_loader *loader, const char *out_dir,
                                          const char *resume_dir, enum beit_precision precision,
                                          struct beit_error *err)
{
  long steps_per_epoch = (long)beit_loader_steps_per_epoch(loader) / recipe->batch.accum_steps;
  enum beit_status st = beit_trainer_start(tr, recipe, dist, beit_model_table(model),
                                           beit_model_params(model), beit_model_grads(model),
                                           steps_per_epoch, out_dir, resume_dir, precision, err);
  if (!st) /* AdamW refreshes the bf16 copy (NULL in fp32) */
    tr->params_h = beit_model_params_h(model);
  return st;
}

void beit_trainer_free(struct beit_trainer *tr)
{
  free(tr->m);
  free(tr->v);
  free(tr->step_sums);
  tr->step_sums = NULL;
  tr->step_sums_cap = 0;
  if (tr->metrics)
    fclose(tr->metrics);
  tr->m = tr->v = NULL;
  tr->metrics = NULL;
}

void beit_trainer_schedule(const struct beit_trainer *tr, long step, double *lr, double *wd)
{
  const struct beit_recipe *r = tr->recipe;
  *lr = beit_cosine_schedule(r->optimizer.lr, r->optimizer.min_lr, tr->warmup_steps,
                             tr->total_steps, step);
  /* weight decay: its own cosine from weight_decay to weight_decay_end, no warmup (spec 5.2) */
  double end = r->optimizer.weight_decay_end < 0 ? r->optimizer.weight_decay
                                                 : r->optimizer.weight_decay_end;
  *wd = beit_cosine_schedule(r->optimizer.weight_decay, end, 0, tr->total_steps, step);
}

enum beit_status beit_trainer_update(struct beit_trainer *tr, double loss, double total_count,
                                     double *grad_norm, int *applied, struct beit_error *err)
{
  const struct beit_recipe *r = tr->recipe;
  size_t n = tr->table->total;
  /* the summed gradients averaged over the global batch and clipped: one factor, applied as
   * AdamW reads them */
  double scale = total_count > 0 ? beit_dist_world_size(tr->dist) / total_count : 0.0;
  double norm = scale * beit_grad_norm(tr->grads, n);
  *grad_norm = norm;
  *applied = 0;
  long step = tr->step++;
  if (!isfinite(loss) || !isfinite(norm)) {
    tr->skipped_updates++;
    if (++tr->nonfinite_run >= r->max_consecutive_nonfinite)
      return beit_error_set(err, BEIT_STATUS_NUMERIC,
                            "step %ld: loss %g, gradient norm %g: %ld non-finite steps in a row "
                            "(max_consecutive_nonfinite); the last checkpoint in %s is intact",
                            step, loss, norm, tr->nonfinite_run, tr->out_dir);
    return BEIT_STATUS_OK;
  }
  tr->nonfinite_run = 0;
  struct beit_adamw_hparams hp;
  beit_trainer_schedule(tr, step, &hp.lr, &hp.weight_decay);
  hp.beta1 = r->optimizer.beta1;
  hp.beta2 = r->optimizer.beta2;
  hp.eps = r->optimizer.eps;
  hp.step = step + 1 - tr->skipped_updates;
  hp.zero_grads = 1; /* the next step's zero-grad (beit_trainer_step), in this pass */
  hp.params_h = tr->params_h; /* and the bf16 copy the next forward would round */
  float grad_scale = (float)(scale * beit_clip_coef(norm, r->optimizer.clip_grad));
  beit_adamw_update(tr->params, tr->grads, grad_scale, tr->m, tr->v, tr->table, &hp);
  tr->grads_zero = 1;
  *applied = 1;
  return BEIT_STATUS_OK;
}

static void format_duration(char *buf, size_t n, double s)
{
  if (!isfinite(s) || s < 0)
    snprintf(buf, n, "?");
  else if (s >= 3600)
    snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)(fmod(s, 3600) / 60));
  else
    snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
}

/* What computed a run: the build (version, git commit), the precision and the backends, in a
 * JSON object (trainer_state.json, metrics.jsonl). */
static void add_provenance(cJSON *obj, enum beit_precision p)
{
  char backend[512];
  beit_precision_describe(backend, sizeof backend);
  cJSON_AddStringToObject(obj, "version", beit_version_string());
  cJSON_AddStringToObject(obj, "commit", beit_version_commit());
  cJSON_AddStringToObject(obj, "precision", beit_precision_name(p));
  cJSON_AddStringToObject(obj, "backend", backend);
}

/* Append one line to metrics.jsonl with write(2), not stdio, so that a failed write leaves no
 * buffered tail behind: the file is cut back to where the line began, the record goes to stderr
 * instead and the errno is kept in tr->metrics_errno (beit_trainer_run stops the run on it).
 * Nothing is written after a failure. */
static void append_line(struct beit_trainer *tr, char *line)
{
  if (!tr->metrics)
    return;
  int fd = fileno(tr->metrics);
  size_t n = strlen(line);
  off_t start = lseek(fd, 0, SEEK_END);
  line[n] = '\n'; /* the terminator's place; the length is known */
  for (size_t done = 0; !tr->metrics_errno && done <= n;) {
    ssize_t w = write(fd, line + done, n + 1 - done);
    if (w > 0)
      done += (size_t)w;
    else if (w == 0 || errno != EINTR)
      tr->metrics_errno = w < 0 ? errno : ENOSPC;
    /* cut a partial line; should even that fail, drop_partial_line does it on --resume */
    if (tr->metrics_errno && start >= 0)
      (void)!ftruncate(fd, start);
  }
  line[n] = '\0';
  if (tr->metrics_errno)
    fprintf(stderr, "%s%s/metrics.jsonl: cannot append (%s); the record is: %s\n",
            tr->tty ? "\n" : "", tr->out_dir, strerror(tr->metrics_errno), line);
}

void beit_trainer_append(struct beit_trainer *tr, cJSON *fields)
{
  if (!fields)
    return;
  if (!tr->described) {
    add_provenance(fields, tr->precision);
    tr->described = 1;
  }
  char *line = cJSON_PrintUnformatted(fields);
  if (line)
    append_line(tr, line);
  else if (tr->metrics && !tr->metrics_errno)
    tr->metrics_errno = ENOMEM;
  free(line);
  cJSON_Delete(fields);
}

void beit_trainer_log(struct beit_trainer *tr, cJSON *fields, double images)
{
  double t = beit_clock_now();
  tr->images_since_log += images;
  if (!beit_dist_is_root(tr->dist) || !fields) {
    cJSON_Delete(fields);
    return;
  }
  double dt = t - tr->t_last_log, lr, wd;
  double rate = dt > 0 ? tr->images_since_log / dt : 0;
  long steps = tr->step - tr->step_at_last_log;
  double eta = steps > 0 ? dt / (double)steps * (double)(tr->total_steps - tr->step) : NAN;
  beit_trainer_schedule(tr, tr->step > 0 ? tr->step - 1 : 0, &lr, &wd);
  cJSON_AddNumberToObject(fields, "step", (double)tr->step);
  cJSON_AddNumberToObject(fields, "epoch", (double)tr->step / (double)tr->steps_per_epoch);
  cJSON_AddNumberToObject(fields, "lr", lr);
  cJSON_AddNumberToObject(fields, "weight_decay", wd);
  cJSON_AddNumberToObject(fields, "images_per_s", rate);
  cJSON_AddNumberToObject(fields, "elapsed_s", t - tr->t_start);
  cJSON_AddNumberToObject(fields, "eta_s", isfinite(eta) ? eta : -1);
  cJSON_AddNumberToObject(fields, "skipped_updates", (double)tr->skipped_updates);
  char eta_s[32], progress[512] = "";
  format_duration(eta_s, sizeof eta_s, eta);
  size_t k = (size_t)snprintf(progress, sizeof progress, "step %ld/%ld", tr->step,
                              tr->total_steps);
  for (const cJSON *f = fields->child; f && k < sizeof progress; f = f->next)
    if (cJSON_IsNumber(f) && (!strcmp(f->string, "loss") || !strcmp(f->string, "mlm_acc") ||
                              !strcmp(f->string, "acc") || !strcmp(f->string, "mae") ||
                              !strcmp(f->string, "grad_norm")))
      k += (size_t)snprintf(progress + k, sizeof progress - k, "  %s %.4f", f->string,
                            f->valuedouble);
  if (k < sizeof progress)
    snprintf(progress + k, sizeof progress - k, "  lr %.2e  %.1f img/s  ETA %s", lr, rate, eta_s);
  if (tr->tty)
    fprintf(stderr, "\r%s\033[K", progress);
  else
    fprintf(stderr, "%s\n", progress);
  tr->t_last_log = t;
  tr->step_at_last_log = tr->step;
  tr->images_since_log = 0;
  beit_trainer_append(tr, fields);
}

void beit_trainer_log_eval(struct beit_trainer *tr, cJSON *fields)
{
  if (!beit_dist_is_root(tr->dist) || !fields) {
    cJSON_Delete(fields);
    return;
  }
  char line[512];
  size_t k = (size_t)snprintf(line, sizeof line, "%sstep %ld:", tr->tty ? "\n" : "", tr->step);
  for (const cJSON *f = fields->child; f && k < sizeof line; f = f->next)
    if (cJSON_IsNumber(f))
      k += (size_t)snprintf(line + k, sizeof line - k, "  %s %.6g", f->string, f->valuedouble);
  fprintf(stderr, "%s\n", line);
  cJSON_AddNumberToObject(fields, "step", (double)tr->step);
  cJSON_AddNumberToObject(fields, "elapsed_s", beit_clock_now() - tr->t_start);
  beit_trainer_append(tr, fields);
}

static cJSON *state_json(const struct beit_trainer *tr)
{
  cJSON *s = cJSON_CreateObject();
  if (!s)
    return NULL;
  cJSON_AddNumberToObject(s, "format_version", STATE_FORMAT_VERSION);
  cJSON_AddNumberToObject(s, "step", (double)tr->step);
  cJSON_AddNumberToObject(s, "skipped_updates", (double)tr->skipped_updates);
  cJSON_AddNumberToObject(s, "nonfinite_run", (double)tr->nonfinite_run);
  cJSON_AddNumberToObject(s, "loader_epoch", (double)tr->cursor.epoch);
  cJSON_AddNumberToObject(s, "loader_position", (double)tr->cursor.position);
  cJSON_AddNumberToObject(s, "world_size", beit_dist_world_size(tr->dist));
  cJSON_AddNumberToObject(s, "global_batch",
                          (double)(tr->recipe->batch.size * tr->recipe->batch.accum_steps *
                                   beit_dist_world_size(tr->dist)));
  add_provenance(s, tr->precision);
  cJSON_AddItemToObject(s, "recipe", beit_recipe_json(tr->recipe));
  return s;
}

enum beit_status beit_trainer_save(struct beit_trainer *tr, const cJSON *config,
                                   const cJSON *preprocessor, struct beit_error *err)
{
  enum beit_status st = BEIT_STATUS_OK;
  if (beit_dist_is_root(tr->dist)) {
    cJSON *state = state_json(tr);
    struct beit_checkpoint_parts parts = {config, tr->table, tr->params, tr->m, tr->v, state,
                                          preprocessor};
    char saved[4200];
    st = state ? beit_checkpoint_save(tr->out_dir, tr->step, &parts,
                                      (int)tr->recipe->checkpoint.keep_last, saved, sizeof saved,
                                      err)
               : beit_error_set(err, BEIT_STATUS_NOMEM, "trainer state: out of memory");
    cJSON_Delete(state);
    if (!st) {
      if (tr->tty)
        fprintf(stderr, "\n");
      fprintf(stderr, "saved %s\n", saved);
      beit_plot_run_curves(tr->out_dir, stderr); /* out_dir/curves.png; a failure only warns */
    }
  }
  return beit_trainer_agree(tr->dist, st, "write a checkpoint", err);
}

enum beit_status beit_trainer_agree(struct beit_dist *dist, enum beit_status st, const char *what,
                                    struct beit_error *err)
{
  double failed = st != BEIT_STATUS_OK;
  enum beit_status dst = beit_dist_allreduce_max_f64(dist, &failed, 1, err);
  if (dst)
    return dst;
  if (failed && !st)
    return beit_error_set(err, BEIT_STATUS_IO, "rank 0 failed to %s", what);
  return st;
}

/* The numbers of a trainer_state.json, and the precision it was trained in. */
struct saved_state {
  double format_version, step, skipped_updates, nonfinite_run, loader_epoch, loader_position;
  double global_batch;
  char precision[16];
};

static enum beit_status read_state(const char *dir, struct saved_state *out, char *path,
                                   size_t path_size, struct beit_error *err)
{
  static const struct {
    const char *key;
    size_t offset;
  } fields[] = {
      {"format_version", offsetof(struct saved_state, format_version)},
      {"step", offsetof(struct saved_state, step)},
      {"skipped_updates", offsetof(struct saved_state, skipped_updates)},
      {"nonfinite_run", offsetof(struct saved_state, nonfinite_run)},
      {"loader_epoch", offsetof(struct saved_state, loader_epoch)},
      {"loader_position", offsetof(struct saved_state, loader_position)},
      {"global_batch", offsetof(struct saved_state, global_batch)},
  };
  cJSON *s = NULL;
  snprintf(path, path_size, "%s/trainer_state.json", dir);
  enum beit_status st = beit_json_read_file(&s, path, err);
  for (size_t i = 0; !st && i < sizeof fields / sizeof fields[0]; i++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, fields[i].key);
    if (!cJSON_IsNumber(v))
      st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: missing number '%s'", path,
                          fields[i].key);
    else
      *(double *)((char *)out + fields[i].offset) = v->valuedouble;
  }
  /* written since the bf16 path exists; every checkpoint before it was trained in fp32 */
  const cJSON *p = st ? NULL : cJSON_GetObjectItemCaseSensitive(s, "precision");
  snprintf(out->precision, sizeof out->precision, "%s",
           cJSON_IsString(p) ? p->valuestring : "fp32");
  cJSON_Delete(s);
  if (!st && out->format_version != STATE_FORMAT_VERSION)
    st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: format_version %g, expected %d", path,
                        out->format_version, STATE_FORMAT_VERSION);
  return st;
}

enum beit_status beit_trainer_resume(struct beit_trainer *tr, const char *dir,
                                     struct beit_error *err)
{
  char path[4200];
  struct saved_state s;
  enum beit_status st = read_state(dir, &s, path, sizeof path, err);
  if (st)
    return st;
  double global = (double)(tr->recipe->batch.size * tr->recipe->batch.accum_steps *
                           beit_dist_world_size(tr->dist));
  if (s.global_batch != global)
    return beit_error_set(err, BEIT_STATUS_CONFIG,
                          "%s: the checkpoint was trained with a global batch of %.0f images, "
                          "this run has %.0f (ranks x batch.size x batch.accum_steps); keep it "
                          "equal to resume", path, s.global_batch, global);
  tr->step = (long)s.step;
  tr->skipped_updates = (long)s.skipped_updates;
  tr->nonfinite_run = (long)s.nonfinite_run;
  tr->cursor.epoch = (uint64_t)s.loader_epoch;
  tr->cursor.position = (uint64_t)s.loader_position;
  tr->step_at_last_log = tr->step;
  if ((st = beit_checkpoint_load_tensors(dir, tr->table, tr->params, tr->m, tr->v, err)))
    return st;
  if (beit_dist_is_root(tr->dist)) {
    const char *now = beit_precision_name(tr->precision);
    fprintf(stderr, "resumed from %s at step %ld\n", dir, tr->step);
    if (strcmp(s.precision, now))
      fprintf(stderr, "note: %s was trained in %s and this run computes in %s: the fp32 master "
              "weights and optimizer state carry over, but the run is not bit-identical to an "
              "uninterrupted one\n", dir, s.precision, now);
  }
  return BEIT_STATUS_OK;
}

enum beit_status beit_trainer_read_cursor(const char *dir, struct beit_loader_cursor *cursor,
                                          struct beit_error *err)
{
  char path[4200];
  struct saved_state s;
  enum beit_status st = read_state(dir, &s, path, sizeof path, err);
  cursor->epoch = st ? 0 : (uint64_t)s.loader_epoch;
  cursor->position = st ? 0 : (uint64_t)s.loader_position;
  return st;
}

/* Rank 0: one log record of the window's averages, the phase times and the loop's own fields;
 * every rank resets its phase clocks. */
static void log_window(struct beit_trainer *tr, const struct beit_trainer_loop *loop,
                       const double window[4], double images, struct beit_trainer_run_summary *sum)
{
  double n = window[3];
  if (isnan(sum->first_loss))
    sum->first_loss = window[0] / n;
  sum->last_loss = window[0] / n;
  sum->last_acc = window[1] / n;
  cJSON *f = cJSON_CreateObject();
  if (f) {
    cJSON_AddNumberToObject(f, "loss", window[0] / n);
    cJSON_AddNumberToObject(f, loop->acc_name, window[1] / n);
    cJSON_AddNumberToObject(f, "grad_norm", window[2] / n);
    struct beit_loader_stats ls;
    beit_loader_stats(loop->loader, &ls);
    cJSON_AddNumberToObject(f, "data_wait_s", ls.wait_seconds);
    cJSON_AddNumberToObject(f, "skipped_records", (double)ls.skipped);
    cJSON_AddNumberToObject(f, "corrupt_records", (double)ls.corrupt);
    cJSON_AddNumberToObject(f, "allreduce_in_mpi_s", tr->allreduce_mpi / n);
    for (int ph = 0; ph < loop->nphases; ph++) /* seconds per step, averaged over the window */
      cJSON_AddNumberToObject(f, loop->phase_names[ph], tr->phase[ph] / n);
    if (loop->log_fields)
      loop->log_fields(loop->ctx, f, n);
  }
  tr->allreduce_mpi = 0.0;
  memset(tr->phase, 0, sizeof tr->phase);
  beit_trainer_log(tr, f, images);
}

static int every(long step, long period) { return period > 0 && step % period == 0; }

static enum beit_status save_model(struct beit_trainer *tr, const struct beit_trainer_loop *loop,
                                   struct beit_trainer_run_summary *sum, struct beit_error *err)
{
  enum beit_status st = beit_trainer_save(tr, loop->config, loop->preprocessor, err);
  if (!st)
    snprintf(sum->last_checkpoint, sizeof sum->last_checkpoint, "%s/checkpoint-%ld",
             tr->out_dir, tr->step);
  return st;
}

/* Add a clause to the end of err's message. */
static void error_append(struct beit_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void error_append(struct beit_error *err, const char *fmt, ...)
{
  size_t k = strlen(err->message);
  if (k + 1 >= sizeof err->message)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message + k, sizeof err->message - k, fmt, ap);
  va_end(ap);
}

/* Every rank: rank 0 could not append to metrics.jsonl (a full disk, a file size limit, EIO).
 * The run stops rather than go on without a record of itself; the model state is whole between
 * steps, so with save a final checkpoint is tried first. */
static enum beit_status check_metrics(struct beit_trainer *tr,
                                      const struct beit_trainer_loop *loop,
                                      struct beit_trainer_run_summary *sum, int save,
                                      struct beit_error *err)
{
  enum beit_status st = BEIT_STATUS_OK;
  if (tr->metrics_errno)
    st = beit_error_set(err, BEIT_STATUS_IO, "%s/metrics.jsonl: cannot append a record: %s",
                        tr->out_dir, strerror(tr->metrics_errno));
  /* DISTRIBUTED: the agreement itself failed (a rank died or missed the deadline): no final
   * checkpoint, whose own agreement would fail too; the job ends at once */
  if (!(st = beit_trainer_agree(tr->dist, st, "append to metrics.jsonl", err)) || !save ||
      st == BEIT_STATUS_DISTRIBUTED)
    return st;
  struct beit_error serr = {0};
  if (save_model(tr, loop, sum, &serr))
    error_append(err, "; a final checkpoint could not be written either (%s)", serr.message);
  return st;
}

/* Every rank, after a periodic checkpoint: a training shard deleted, replaced or resized since
 * the loader opened it stops the run. Reading could go on from the open file, but the run could
 * then be neither resumed nor repeated, and a rewritten dataset would not match the saved
 * cursor. */
static enum beit_status check_data(struct beit_trainer *tr, const struct beit_trainer_loop *loop,
                                   struct beit_error *err)
{
  enum beit_status st = BEIT_STATUS_OK;
  if (loop->loader)
    st = beit_data_check_files(beit_loader_dataset(loop->loader), err);
  double bad = st != BEIT_STATUS_OK;
  enum beit_status dst = beit_dist_allreduce_max_f64(tr->dist, &bad, 1, err);
  if (dst)
    return dst;
  if (bad && !st)
    return beit_error_set(err, BEIT_STATUS_IO, "another rank found a training shard changed on "
                          "disk");
  if (st)
    error_append(err, "; training stops so that it does not go on with data that is no longer "
                 "on disk: restore the dataset, then continue with --resume");
  return st;
}

static enum beit_status run_steps(struct beit_trainer *tr, const struct beit_trainer_loop *loop,
                                  struct beit_trainer_run_summary *sum, struct beit_error *err)
{
  const struct beit_recipe *r = tr->recipe;
  double window[4] = {0, 0, 0, 0}, images = 0; /* loss, accuracy, norm sums; steps */
  enum beit_status st = BEIT_STATUS_OK;
  while (tr->step < tr->total_steps) {
    struct beit_step_sums sums;
    double norm = 0.0;
    beit_dist_set_context(tr->dist, "of step %ld", tr->step + 1); /* for deadline messages */
    st = beit_trainer_step(tr, loop, &sums, &norm, err);
    beit_dist_set_context(tr->dist, "after step %ld", tr->step);
    if (st && st != BEIT_STATUS_INTERRUPTED)
      return st;
    window[0] += sums.units > 0 ? sums.loss / sums.units : 0.0;
    window[1] += sums.units > 0 ? sums.correct / sums.units : 0.0;
    window[2] += norm;
    window[3] += 1;
    images += sums.images;
    int stop = st == BEIT_STATUS_INTERRUPTED, last = tr->step == tr->total_steps;
    if (stop || last || every(tr->step, r->log.every_steps)) {
      log_window(tr, loop, window, images, sum);
      memset(window, 0, sizeof window);
      images = 0;
      if ((st = check_metrics(tr, loop, sum, 1, err)))
        return st;
    }
    if (stop) {
      if (beit_dist_is_root(tr->dist))
        fprintf(stderr, "\ninterrupted: writing a final checkpoint\n");
      if ((st = save_model(tr, loop, sum, err)))
        return st;
      return beit_error_set(err, BEIT_STATUS_INTERRUPTED, "interrupted at step %ld; resume with "
                            "--resume from %s/checkpoint-%ld", tr->step, tr->out_dir, tr->step);
    }
    if (!last && every(tr->step, r->checkpoint.every_steps) &&
        ((st = save_model(tr, loop, sum, err)) || (st = check_data(tr, loop, err))))
      return st;
    if (!last && loop->evaluate && every(tr->step, r->eval.every_steps) &&
        ((st = loop->evaluate(loop->ctx, 0, err)) ||
         (st = check_metrics(tr, loop, sum, 1, err))))
      return st;
  }
  if (tr->tty && beit_dist_is_root(tr->dist))
    fprintf(stderr, "\n");
  if ((st = save_model(tr, loop, sum, err)))
    return st;
  if (loop->evaluate && (st = loop->evaluate(loop->ctx, 1, err)))
    return st;
  return check_metrics(tr, loop, sum, 0, err);
}

enum beit_status beit_trainer_run(struct beit_trainer *tr, const struct beit_trainer_loop *loop,
                                  struct beit_trainer_run_summary *sum, struct beit_error *err)
{
  const long first_step = tr->step;
  sum->first_loss = sum->last_loss = sum->last_acc = NAN;
  sum->last_checkpoint[0] = '\0';
  beit_trainer_catch_signals();
  enum beit_status st = run_steps(tr, loop, sum, err);
  sum->steps_run = tr->step - first_step;
  if (!st && loop->evaluate && beit_dist_is_root(tr->dist))
    beit_plot_run_curves(tr->out_dir, stderr); /* again, with the final evaluation */
  struct beit_loader_stats ls = {0};
  if (loop->loader)
    beit_loader_stats(loop->loader, &ls);
  sum->skipped_records = ls.skipped;
  sum->corrupt_records = ls.corrupt;
  if (st && st != BEIT_STATUS_INTERRUPTED) { /* what a --resume would continue from */
    char dir[4200];
    struct beit_error e = {0};
    if (beit_checkpoint_latest(tr->out_dir, NULL, dir, sizeof dir, &e) == BEIT_STATUS_OK)
      error_append(err, "; the newest complete checkpoint is %s (--resume continues from it)",
                   dir);
    else
      error_append(err, "; %s holds no complete checkpoint yet", tr->out_dir);
  }
  return st;
}

/* What a training run writes into its output folder, by name or (checkpoint-*, .tmp-checkpoint-*,
 * train-fraction-*) prefix: what --overwrite moves aside. Inputs a user may keep there (a
 * dataset, a tokenizer given to pretraining under another name) are not on the list. */
static int run_output(const char *name)
{
  static const char *const names[] = {"metrics.jsonl", "trainer_state.json", "eval.json",
                                      "train_config.json", "recon.png", "tokenizer",
                                      "curves.png"};
  static const char *const prefixes[] = {"checkpoint-", ".tmp-checkpoint-", "train-fraction-"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (!strcmp(name, names[i]))
      return 1;
  for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
    if (!strncmp(name, prefixes[i], strlen(prefixes[i])))
      return 1;
  return 0;
}

/* What says a folder holds a previous run (an empty folder, or one with only a dataset or logs,
 * does not). */
static int run_marker(const char *name)
{
  return !strcmp(name, "metrics.jsonl") || !strcmp(name, "trainer_state.json") ||
         !strncmp(name, "checkpoint-", 11);
}

/* The entries of out_dir that pass keep(), comma-separated into found (the first few, then
 * ", ..."); their number. A folder that cannot be read holds none (creating it will say why). */
static int list_entries(const char *out_dir, int (*keep)(const char *), char *found, size_t size)
{
  int n = 0;
  size_t k = 0;
  found[0] = '\0';
  DIR *d = opendir(out_dir);
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (!keep(e->d_name))
      continue;
    if (n < 4 && k < size)
      k += (size_t)snprintf(found + k, size - k, "%s%s", n ? ", " : "", e->d_name);
    else if (n == 4 && k < size)
      k += (size_t)snprintf(found + k, size - k, ", ...");
    n++;
  }
  if (d)
    closedir(d);
  return n;
}

/* Rank 0 of an --overwrite: the previous run's files (run_output) into
 * out_dir/previous-<UTC time>[-k]/, so nothing is lost and neither metrics.jsonl nor --resume
 * mixes the old run with the new one. Nothing to move: no folder made. */
static enum beit_status move_previous_run(const char *out_dir, struct beit_error *err)
{
  char found[512], stamp[32], dest[4200], from[4400], to[4400];
  if (!list_entries(out_dir, run_output, found, sizeof found))
    return BEIT_STATUS_OK;
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
  for (int k = 1;; k++) { /* two overwrites within a second get -2, -3, ... */
    if (k == 1)
      snprintf(dest, sizeof dest, "%s/previous-%s", out_dir, stamp);
    else
      snprintf(dest, sizeof dest, "%s/previous-%s-%d", out_dir, stamp, k);
    if (mkdir(dest, 0777) == 0)
      break;
    if (errno != EEXIST || k == 100)
      return beit_error_set(err, BEIT_STATUS_IO, "%s: cannot create: %s", dest, strerror(errno));
  }
  /* rescan until nothing is left: entries renamed away during readdir may hide others */
  for (int moved = 1; moved;) {
    moved = 0;
    DIR *d = opendir(out_dir);
    if (!d)
      return beit_error_set(err, BEIT_STATUS_IO, "%s: cannot list: %s", out_dir,
                            strerror(errno));
    struct dirent *e;
    while ((e = readdir(d))) {
      if (!run_output(e->d_name))
        continue;
      snprintf(from, sizeof from, "%s/%s", out_dir, e->d_name);
      snprintf(to, sizeof to, "%s/%s", dest, e->d_name);
      if (rename(from, to) != 0) {
        int code = errno;
        closedir(d);
        return beit_error_set(err, BEIT_STATUS_IO, "--overwrite: cannot move %s to %s: %s", from,
                              to, strerror(code));
      }
      moved = 1;
    }
    closedir(d);
  }
  fprintf(stderr, "--overwrite: moved the previous run (%s) into %s\n", found, dest);
  return BEIT_STATUS_OK;
}

enum beit_status beit_trainer_prepare_out(struct beit_dist *dist, const char *out_dir,
                                          int resume, int overwrite, char *dir, size_t dir_size,
                                          struct beit_loader_cursor *cursor,
                                          struct beit_error *err)
{
  dir[0] = '\0';
  cursor->epoch = cursor->position = 0;
  if (resume && overwrite)
    return beit_error_set(err, BEIT_STATUS_USAGE, "--resume (continue the run in %s) and "
                          "--overwrite (start it again) exclude each other", out_dir);
  enum beit_status st = BEIT_STATUS_OK;
  if (overwrite) {
    if (beit_dist_is_root(dist))
      st = move_previous_run(out_dir, err);
    return beit_trainer_agree(dist, st, "move the previous run aside (--overwrite)", err);
  }
  if (!resume) {
    char found[512];
    if (list_entries(out_dir, run_marker, found, sizeof found))
      st = beit_error_set(err, BEIT_STATUS_USAGE,
                          "%s already holds a run (%s): pass --resume to continue it from its "
                          "newest checkpoint, or --overwrite to start again (the previous run's "
                          "files are moved into %s/previous-<time>/)", out_dir, found, out_dir);
    /* every rank has looked before any writes (rank 0's metrics.jsonl would refuse a late one) */
    return beit_trainer_agree(dist, st, "check the output folder", err);
  }
  st = beit_checkpoint_latest(out_dir, beit_dist_is_root(dist) ? stderr : NULL, dir, dir_size,
                              err);
  if (st == BEIT_STATUS_MISSING) { /* nothing to resume yet: start fresh */
    dir[0] = '\0';
    return BEIT_STATUS_OK;
  }
  return st ? st : beit_trainer_read_cursor(dir, cursor, err);
}

size_t beit_trainer_bucket_floats(size_t total)
{
  size_t b = total / 8, lo = (size_t)1 << 18, hi = (size_t)4 << 20;
  return b < lo ? lo : b > hi ? hi : b;
}
