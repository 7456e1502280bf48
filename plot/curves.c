/* The curves figure: which panels, which series of each run go on them, the axes; then the
 * drawing (draw_cairo.c). The panels are a table: a name for --metrics, a title, the training
 * fields (the first a run has is its line) and the evaluation fields (its dots). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plot.h"

struct panel_def {
  const char *name, *title;
  const char *train[4], *eval[4]; /* the first 4, or up to a NULL */
  int log_if_wide;                /* log scale when the values span more than a decade */
  int undefined_below_zero;       /* -1 marks an undefined value (finetune's eval_map) */
};

static const struct panel_def panel_defs[] = {
    {"loss", "loss", {"loss"}, {"eval_loss"}, 1, 0},
    {"lr", "learning rate", {"lr"}, {NULL}, 0, 0},
    {"acc", "accuracy", {"mlm_acc", "acc"}, {"eval_mlm_acc", "eval_top1", "eval_map"}, 0, 1},
    {"mae", "reconstruction error", {"mae"}, {"eval_mae"}, 0, 0},
    {"perplexity", "codebook perplexity", {"perplexity"}, {"eval_perplexity"}, 0, 0},
    {"images_per_s", "images/s", {"images_per_s"}, {NULL}, 0, 0},
};
enum { NDEFS = sizeof panel_defs / sizeof panel_defs[0] };

int beit_plot_panel_top(size_t nruns, size_t k)
{
  int legend_rows = (int)(nruns + 1) / 2;
  return BEIT_PLOT_TITLE_H + legend_rows * BEIT_PLOT_LEGEND_ROW_H + BEIT_PLOT_PANEL_HEAD_H +
         (int)k * (BEIT_PLOT_PANEL_HEAD_H + BEIT_PLOT_PANEL_PLOT_H + BEIT_PLOT_PANEL_GAP_H);
}

int beit_plot_curves_height(size_t nruns, size_t npanels)
{
  return beit_plot_panel_top(nruns, npanels) - BEIT_PLOT_PANEL_HEAD_H - BEIT_PLOT_PANEL_GAP_H +
         BEIT_PLOT_BOTTOM_H;
}

static const struct beit_plot_series *first_field(const struct beit_plot_run *run,
                                                  const char *const *fields)
{
  for (size_t i = 0; i < 4 && fields[i]; i++) {
    const struct beit_plot_series *s = beit_plot_run_field(run, fields[i]);
    if (s)
      return s;
  }
  return NULL;
}

/* "a/b": the distinct field names of the panel's series of one kind, into buf. */
static void field_names(char *buf, size_t size, const struct beit_plot_series *const *s,
                        size_t nruns)
{
  size_t k = 0;
  buf[0] = '\0';
  for (size_t r = 0; r < nruns; r++) {
    int seen = 0; /* a whole earlier name, not a part of one ("acc" in "mlm_acc") */
    for (size_t q = 0; q < r; q++)
      seen |= s[q] && s[r] && !strcmp(s[q]->field, s[r]->field);
    if (!s[r] || seen)
      continue;
    k += (size_t)snprintf(buf + k, k < size ? size - k : 0, "%s%s", k ? "/" : "", s[r]->field);
  }
}

/* Fill panel p of name from the runs with the definition def (NULL: a field of that name, its
 * eval_<name> as dots). 1 when some run has data for it. */
static int fill_panel(struct beit_plot_panel *p, const char *name, const struct panel_def *def,
                      const struct beit_plot_figure *f)
{
  char eval_name[BEIT_PLOT_FIELD_SIZE + 8];
  struct panel_def custom = {name, name, {NULL}, {NULL}, 0, 0};
  if (!def) {
    snprintf(eval_name, sizeof eval_name, "eval_%s", name);
    if (strncmp(name, "eval_", 5))
      custom.train[0] = name;
    custom.eval[0] = strncmp(name, "eval_", 5) ? eval_name : name;
    def = &custom;
  }
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "%s", name);
  p->undefined_below_zero = def->undefined_below_zero;
  int any = 0;
  for (size_t r = 0; r < f->nruns; r++) {
    p->train[r] = def->train[0] ? first_field(&f->runs[r], def->train) : NULL;
    p->eval[r] = def->eval[0] ? first_field(&f->runs[r], def->eval) : NULL;
    any |= p->train[r] || p->eval[r];
  }
  if (!any)
    return 0;
  /* the value range over every run's series */
  double lo = INFINITY, hi = -INFINITY;
  for (size_t r = 0; r < f->nruns; r++)
    for (int e = 0; e < 2; e++) {
      const struct beit_plot_series *s = e ? p->eval[r] : p->train[r];
      for (size_t i = 0; s && i < s->n; i++) {
        if (def->undefined_below_zero && s->y[i] < 0)
          continue;
        lo = fmin(lo, s->y[i]);
        hi = fmax(hi, s->y[i]);
      }
    }
  int log = def->log_if_wide && lo > 0 && hi > 10 * lo;
  if (log) {
    beit_plot_axis_log(&p->y, lo, hi);
  } else {
    double pad = 0.05 * (hi - lo);
    beit_plot_axis_linear(&p->y, lo >= 0 && lo - pad < 0 ? 0 : lo - pad, hi + pad);
  }
  char lines[128], dots[128];
  field_names(lines, sizeof lines, p->train, f->nruns);
  field_names(dots, sizeof dots, p->eval, f->nruns);
  /* "accuracy: mlm_acc, eval_mlm_acc (dots)"; the fields left out when the title is the field */
  int same = !dots[0] && !strcmp(lines, def->title);
  snprintf(p->title, sizeof p->title, "%s%s%s%s%s%s%s", def->title, log ? " (log scale)" : "",
           same ? "" : ": ", same ? "" : lines, lines[0] && dots[0] ? ", " : "", dots,
           dots[0] ? " (dots)" : "");
  return 1;
}

/* The numeric fields of the runs, comma-separated into buf (for an error message). */
static void all_fields(char *buf, size_t size, const struct beit_plot_figure *f)
{
  size_t k = 0;
  buf[0] = '\0';
  for (size_t r = 0; r < f->nruns; r++)
    for (size_t i = 0; i < f->runs[r].nfields && k + 1 < size; i++) {
      const char *name = f->runs[r].fields[i].field;
      char quoted[BEIT_PLOT_FIELD_SIZE + 3];
      snprintf(quoted, sizeof quoted, " %s,", name);
      if (strstr(buf, quoted))
        continue;
      k += (size_t)snprintf(buf + k, size - k, "%s", quoted);
    }
  if (k > 0 && k < size)
    buf[k - 1] = '\0'; /* the last comma */
}

static enum beit_status choose_panels(struct beit_plot_figure *f,
                                      const struct beit_plot_curves_options *o,
                                      struct beit_error *err)
{
  if (!o->panels || o->npanels == 0) {
    for (size_t d = 0; d < NDEFS; d++)
      f->npanels += fill_panel(&f->panels[f->npanels], panel_defs[d].name, &panel_defs[d], f);
    if (f->npanels == 0)
      return beit_error_set(err, BEIT_STATUS_FORMAT, "%s/metrics.jsonl: none of the fields "
                            "plotted by default (loss, lr, accuracy, mae, perplexity, "
                            "images_per_s); choose some with --metrics", f->runs[0].name);
    return BEIT_STATUS_OK;
  }
  if (o->npanels > BEIT_PLOT_MAX_PANELS)
    return beit_error_set(err, BEIT_STATUS_USAGE, "%zu panels asked for; at most %d",
                          o->npanels, BEIT_PLOT_MAX_PANELS);
  for (size_t k = 0; k < o->npanels; k++) {
    const char *name = o->panels[k];
    if (!name[0] || strlen(name) >= BEIT_PLOT_FIELD_SIZE)
      return beit_error_set(err, BEIT_STATUS_USAGE, "panel '%s': not a panel or field name",
                            name);
    const struct panel_def *def = NULL;
    for (size_t d = 0; d < NDEFS; d++)
      if (!strcmp(panel_defs[d].name, name))
        def = &panel_defs[d];
    if (!fill_panel(&f->panels[f->npanels], name, def, f)) {
      char fields[600];
      all_fields(fields, sizeof fields, f);
      return beit_error_set(err, BEIT_STATUS_USAGE, "panel '%s': no run has data for it (panels: "
                            "loss, lr, acc, mae, perplexity, images_per_s; or a field of "
                            "metrics.jsonl:%s)", name, fields);
    }
    f->npanels++;
  }
  return BEIT_STATUS_OK;
}

/* The step axis from 0 to just past the last step any panel shows (ticks within); whether some
 * panel has dots. */
static void step_axis(struct beit_plot_figure *f)
{
  double last = 0;
  for (size_t k = 0; k < f->npanels; k++)
    for (size_t r = 0; r < f->nruns; r++) {
      const struct beit_plot_panel *p = &f->panels[k];
      if (p->train[r])
        last = fmax(last, p->train[r]->x[p->train[r]->n - 1]);
      if (p->eval[r]) {
        last = fmax(last, p->eval[r]->x[p->eval[r]->n - 1]);
        f->has_eval = 1;
      }
    }
  last = last > 0 ? last : 1;
  beit_plot_axis_linear(&f->x, 0, last);
  f->x.hi = last * 1.02; /* the last step's dot whole, not cut by the border */
  while (f->x.nticks > 0 && f->x.ticks[f->x.nticks - 1] > f->x.hi)
    f->x.nticks--;
}

void beit_plot_figure_free(struct beit_plot_figure *f)
{
  for (size_t r = 0; r < f->nruns; r++)
    beit_plot_run_free(&f->runs[r]);
  free(f->runs);
  memset(f, 0, sizeof *f);
}

enum beit_status beit_plot_figure_init(struct beit_plot_figure *f,
                                       const struct beit_plot_curves_options *o,
                                       struct beit_error *err)
{
  memset(f, 0, sizeof *f);
  if (o->nruns < 1 || o->nruns > BEIT_PLOT_MAX_RUNS)
    return beit_error_set(err, BEIT_STATUS_USAGE, "%zu runs: one to %d can share a figure",
                          o->nruns, BEIT_PLOT_MAX_RUNS);
  if (!(f->runs = calloc(o->nruns, sizeof *f->runs)))
    return beit_error_set(err, BEIT_STATUS_NOMEM, "curves: out of memory");
  enum beit_status st = BEIT_STATUS_OK;
  for (; f->nruns < o->nruns; f->nruns++)
    if ((st = beit_plot_read_run(&f->runs[f->nruns], o->runs[f->nruns], o->warn, err)))
      goto fail;
  if ((st = choose_panels(f, o, err)))
    goto fail;
  step_axis(f);
  if (f->nruns == 1)
    snprintf(f->title, sizeof f->title, "training curves: %s", f->runs[0].name);
  else
    snprintf(f->title, sizeof f->title, "training curves of %zu runs", f->nruns);
  return BEIT_STATUS_OK;
fail:
  beit_plot_figure_free(f);
  return st;
}

enum beit_status beit_plot_curves(const char *png, const struct beit_plot_curves_options *o,
                                  struct beit_plot_result *res, struct beit_error *err)
{
  if (!beit_plot_available()) /* before reading anything: say what is missing first */
    return beit_plot_draw_curves(png, NULL, err);
  struct beit_plot_figure *f = malloc(sizeof *f);
  if (!f)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", png);
  enum beit_status st = beit_plot_figure_init(f, o, err);
  if (st)
    goto free_figure;
  if (!(st = beit_plot_draw_curves(png, f, err)) && res) {
    memset(res, 0, sizeof *res);
    res->width = BEIT_PLOT_WIDTH;
    res->height = beit_plot_curves_height(f->nruns, f->npanels);
    res->npanels = f->npanels;
    res->nruns = f->nruns;
    size_t k = 0;
    for (size_t i = 0; i < f->npanels && k < sizeof res->panels; i++)
      k += (size_t)snprintf(res->panels + k, sizeof res->panels - k, "%s%s", i ? "," : "",
                            f->panels[i].name);
  }
  beit_plot_figure_free(f);
free_figure:
  free(f);
  return st;
}

void beit_plot_run_curves(const char *run_dir, FILE *log)
{
  if (!beit_plot_available())
    return;
  char png[4200];
  snprintf(png, sizeof png, "%s/curves.png", run_dir);
  struct beit_plot_curves_options o = {&run_dir, 1, NULL, 0, NULL};
  struct beit_error err = {0};
  if (beit_plot_curves(png, &o, NULL, &err) && log)
    fprintf(log, "warning: %s not drawn (training goes on): %s\n", png, err.message);
}
