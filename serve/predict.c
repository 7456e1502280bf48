/* Batch prediction (beit/predict.h): inputs from predict_inputs.c, B at a time; each batch is
 * decoded and preprocessed in parallel (one data scratch per OpenMP thread), its good views run
 * in one forward, and one JSON line per input written in input order (the result, or the fault
 * of an input that failed, with "input" spliced in on request). The first images can be kept
 * for a picture of their top labels. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "beit/predict.h"
#include "predict_inputs.h"

void beit_predict_defaults(struct beit_predict_options *opt)
{
  memset(opt, 0, sizeof *opt);
  beit_infer_defaults(&opt->infer);
  opt->infer.any_format = 1; /* local files the user chose: every format (serve: JPEG and PNG) */
  opt->select = (struct beit_infer_select){0, -1.0};
  opt->url_max_bytes = 16u << 20;
  opt->url_timeout_s = 10.0;
  opt->visualize_max = 8;
  opt->log = stderr;
}

/* ---- Progress ------------------------------------------------------------------------------ */

struct progress {
  FILE *log;
  int tty;
  double start, last;
  size_t done, failed, total;
};

static void progress_show(struct progress *p, int final)
{
  if (!p->log)
    return;
  double now = beit_clock_now(), dt = now - p->start;
  if (!final && now - p->last < (p->tty ? 0.2 : 10.0))
    return;
  p->last = now;
  double rate = dt > 0 ? (double)p->done / dt : 0.0;
  char eta[48] = "", of[32] = "";
  if (!final && p->total && rate > 0 && p->done < p->total)
    snprintf(eta, sizeof eta, ", ETA %.0f s", (double)(p->total - p->done) / rate);
  if (final)
    snprintf(eta, sizeof eta, " in %.2f s", dt);
  if (p->total)
    snprintf(of, sizeof of, "/%zu", p->total);
  fprintf(p->log, "%spredict: %zu%s images, %zu failed, %.1f images/s%s%s", p->tty ? "\r" : "",
          p->done, of, p->failed, rate, eta, p->tty && !final ? "   " : "\n");
  fflush(p->log);
}

/* ---- Output -------------------------------------------------------------------------------- */

static void write_line(FILE *out, const struct beit_predict_item *it,
                       const struct beit_infer *inf, const float *probs,
                       const struct beit_infer_select *sel, int with_input)
{
  struct beit_strbuf b = {0};
  if (it->failed)
    beit_fault_json(&b, &it->fault);
  else
    beit_strbuf_result(&b, inf, probs, sel);
  if (with_input && b.len > 1) { /* splice "input" into the object */
    b.len--;
    b.data[b.len] = '\0';
    beit_strbuf_puts(&b, ", \"input\": ");
    beit_strbuf_json_string(&b, it->key);
    beit_strbuf_puts(&b, "}");
  }
  if (b.data)
    fprintf(out, "%s\n", b.data);
  beit_strbuf_free(&b);
}

/* The images kept for --visualize, with their probabilities and titles. */
struct vis {
  struct beit_data_image *images;
  float *probs;
  char **titles;
  size_t count, max;
};

static void vis_free(struct vis *v)
{
  for (size_t i = 0; i < v->count; i++) {
    beit_data_image_free(&v->images[i]);
    free(v->titles[i]);
  }
  free(v->images);
  free(v->probs);
  free(v->titles);
}

/* Keep image *img (taken over) of input key with its probabilities p (C). */
static void vis_keep(struct vis *v, struct beit_data_image *img, const char *key, const float *p,
                     size_t C)
{
  const char *base = strrchr(key, '/');
  v->images[v->count] = *img;
  *img = (struct beit_data_image){0};
  memcpy(v->probs + v->count * C, p, C * sizeof *p);
  v->titles[v->count++] = strdup(base ? base + 1 : key);
}

static enum beit_status vis_write(const struct vis *v, const char *path,
                                  const struct beit_infer *inf, size_t top_k, FILE *log,
                                  struct beit_error *err)
{
  size_t C = beit_infer_num_labels(inf);
  struct beit_infer_vis_item *vi = calloc(v->count ? v->count : 1, sizeof *vi);
  if (!vi)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "out of memory");
  for (size_t i = 0; i < v->count; i++)
    vi[i] = (struct beit_infer_vis_item){&v->images[i], v->titles[i], v->probs + i * C};
  enum beit_status st = beit_infer_visualize(path, inf, vi, v->count, top_k, err);
  free(vi);
  if (!st && log)
    fprintf(log, "predict: wrote %s (%zu images)\n", path, v->count);
  return st;
}

/* ---- One run ------------------------------------------------------------------------------- */

struct run {
  const struct beit_predict_options *opt;
  struct beit_infer *inf;
  struct beit_predict_inputs *in;
  FILE *out;
  size_t B, V, C;
  int nthreads;
  struct beit_predict_item *items;
  float *views, *good_views, *probs;   /* (B, V), (B, V), (B, C) */
  struct beit_data_image *kept;         /* (B): decoded images wanted for the picture */
  struct beit_data_scratch **ws;        /* one per OpenMP thread */
  struct vis vis;
  struct progress prog;
};

static enum beit_status run_alloc(struct run *r, struct beit_error *err)
{
  size_t B = r->B, V = r->V, C = r->C;
  r->items = calloc(B, sizeof *r->items);
  r->views = malloc(B * V * sizeof *r->views);
  r->good_views = malloc(B * V * sizeof *r->good_views);
  r->probs = malloc(B * C * sizeof *r->probs);
  r->kept = calloc(B, sizeof *r->kept);
  r->ws = calloc((size_t)r->nthreads, sizeof *r->ws);
  struct vis *v = &r->vis;
  if (r->opt->visualize) {
    v->max = r->opt->visualize_max;
    v->images = calloc(v->max, sizeof *v->images);
    v->probs = malloc(v->max * C * sizeof *v->probs);
    v->titles = calloc(v->max, sizeof *v->titles);
  }
  if (!r->items || !r->views || !r->good_views || !r->probs || !r->kept || !r->ws ||
      (r->opt->visualize && (!v->images || !v->probs || !v->titles)))
    return beit_error_set(err, BEIT_STATUS_NOMEM, "out of memory for batch %zu", B);
  for (int t = 0; t < r->nthreads; t++)
    if (!(r->ws[t] = beit_data_scratch_init()))
      return beit_error_set(err, BEIT_STATUS_NOMEM, "out of memory");
  return BEIT_STATUS_OK;
}

static void run_free(struct run *r)
{
  for (size_t i = 0; r->items && i < r->B; i++)
    free(r->items[i].bytes);
  for (size_t i = 0; r->kept && i < r->B; i++)
    beit_data_image_free(&r->kept[i]);
  for (int t = 0; r->ws && t < r->nthreads; t++)
    beit_data_scratch_free(r->ws[t]);
  vis_free(&r->vis);
  free(r->ws);
  free(r->kept);
  free(r->items);
  free(r->views);
  free(r->good_views);
  free(r->probs);
  beit_predict_inputs_free(r->in);
  beit_infer_free(r->inf);
}

/* Up to B next inputs into items: their count, or -1 on a fatal error; *end at the end. */
static long fill_batch(struct run *r, int *end, struct beit_error *err)
{
  size_t n = 0;
  while (n < r->B) {
    int k = beit_predict_inputs_next(r->in, &r->items[n], r->opt->url_timeout_s, err);
    if (k < 0)
      return -1;
    if (k > 0) {
      *end = 1;
      break;
    }
    n++;
  }
  return (long)n;
}

/* Decode and preprocess the n items in parallel; an input that fails is marked with its
 * fault. */
static void prepare_batch(struct run *r, size_t n)
{
  int want_keep = r->opt->visualize && r->vis.count < r->vis.max;
#pragma omp parallel for schedule(dynamic, 1)
  for (size_t i = 0; i < n; i++) {
    struct beit_predict_item *it = &r->items[i];
    if (it->failed)
      continue;
    struct beit_error perr = {0};
    enum beit_status st = beit_infer_prepare(r->inf, it->bytes, it->size, it->key,
                                             r->views + i * r->V, want_keep ? &r->kept[i] : NULL,
                                             r->ws[omp_get_thread_num()], &perr);
    if (st) {
      it->failed = 1;
      beit_fault_from_status(&it->fault, st, -1, perr.message);
    }
  }
}

/* One line per item in input order; failed inputs counted and named on the log. */
static void emit_batch(struct run *r, size_t n)
{
  const struct beit_predict_options *o = r->opt;
  for (size_t i = 0, g = 0; i < n; i++) {
    struct beit_predict_item *it = &r->items[i];
    const float *p = it->failed ? NULL : r->probs + g++ * r->C;
    write_line(r->out, it, r->inf, p, &o->select, o->with_input);
    if (it->failed) {
      r->prog.failed++;
      if (o->log)
        fprintf(o->log, "%spredict: %s: %s\n", r->prog.tty ? "\r" : "", it->key,
                it->fault.message);
    } else if (r->kept[i].pixels && r->vis.count < r->vis.max) {
      vis_keep(&r->vis, &r->kept[i], it->key, p, r->C);
    }
    beit_data_image_free(&r->kept[i]);
    free(it->bytes);
    it->bytes = NULL;
  }
  fflush(r->out);
  r->prog.done += n;
  progress_show(&r->prog, 0);
}

/* Every batch until the inputs end. */
static enum beit_status run_batches(struct run *r, struct beit_error *err)
{
  for (int end = 0; !end;) {
    long n = fill_batch(r, &end, err);
    if (n < 0)
      return err->status;
    if (n == 0)
      break;
    prepare_batch(r, (size_t)n);
    size_t good = 0;
    for (size_t i = 0; i < (size_t)n; i++)
      if (!r->items[i].failed)
        memcpy(r->good_views + good++ * r->V, r->views + i * r->V, r->V * sizeof *r->views);
    enum beit_status st;
    if (good && (st = beit_infer_run(r->inf, 0, r->good_views, good, r->probs, err)))
      return st;
    emit_batch(r, (size_t)n);
  }
  progress_show(&r->prog, 1);
  return BEIT_STATUS_OK;
}

enum beit_status beit_predict_run(const char *model_dir, const char *const *inputs, size_t n,
                                  const struct beit_predict_options *opt,
                                  struct beit_predict_summary *sum, struct beit_error *err)
{
  struct run r = {.opt = opt, .out = stdout, .B = opt->infer.max_batch,
                  .nthreads = omp_get_max_threads()};
  struct beit_fetch_policy fetch = {opt->allow_urls, opt->allow_private_urls,
                                    opt->url_max_bytes, opt->url_timeout_s};
  memset(sum, 0, sizeof *sum);
  enum beit_status st;
  if ((st = beit_predict_inputs_open(&r.in, inputs, n, &fetch, err)) ||
      (st = beit_infer_load(&r.inf, model_dir, &opt->infer, err)))
    goto done;
  r.V = beit_infer_view_floats(r.inf);
  r.C = beit_infer_num_labels(r.inf);
  if ((st = run_alloc(&r, err)))
    goto done;
  if (opt->output && !(r.out = fopen(opt->output, "w"))) {
    st = beit_error_set(err, BEIT_STATUS_IO, "%s: cannot open for writing", opt->output);
    goto done;
  }
  double t0 = beit_clock_now();
  r.prog = (struct progress){opt->log, opt->log && isatty(fileno(opt->log)), t0, t0, 0, 0,
                             beit_predict_inputs_total(r.in)};
  if (!(st = run_batches(&r, err)) && opt->visualize)
    st = vis_write(&r.vis, opt->visualize, r.inf, opt->select.top_k, opt->log, err);
  sum->images = r.prog.done;
  sum->failed = r.prog.failed;
done:
  if (r.out && r.out != stdout && fclose(r.out) && !st && !sum->failed)
    st = beit_error_set(err, BEIT_STATUS_IO, "cannot write the output");
  run_free(&r);
  return st;
}
