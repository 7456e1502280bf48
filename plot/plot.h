/* Internals of plot/, shared by its files and tests/test_plot.c: the runs as read from
 * metrics.jsonl (runs.c), axes and their ticks (axis.c), the figure the drawing reads (curves.c),
 * the table as bars (table.c) and the two drawing entry points (draw_cairo.c, or draw_stub.c
 * without cairo). Only draw_cairo.c includes cairo.h. Not a public header. */
#ifndef BEIT_PLOT_PLOT_H
#define BEIT_PLOT_PLOT_H

#include <stddef.h>
#include <stdio.h>

#include "beit/plot.h"

enum { BEIT_PLOT_MAX_TICKS = 16, BEIT_PLOT_FIELD_SIZE = 64, BEIT_PLOT_MAX_ROWS = 8,
       BEIT_PLOT_MAX_PRECISIONS = 4 };

/* ---- runs.c: metrics.jsonl as one series per numeric field ---- */

/* One numeric field of a run: points (step x, value y) in increasing step order. */
struct beit_plot_series {
  char field[BEIT_PLOT_FIELD_SIZE];
  double *x, *y; /* (n) each */
  size_t n, cap;
};

struct beit_plot_run {
  char name[160];                 /* the legend's: the folder as given, without a trailing '/' */
  struct beit_plot_series *fields; /* (nfields) */
  size_t nfields, cap;
  size_t records;                 /* usable lines */
  size_t skipped;                 /* malformed lines */
};

/* Read dir/metrics.jsonl into run (see include/beit/plot.h for what is skipped and why). warn:
 * where skipped lines are reported (NULL: silent). On failure run holds nothing to free. */
enum beit_status beit_plot_read_run(struct beit_plot_run *run, const char *dir, FILE *warn,
                                    struct beit_error *err);
void beit_plot_run_free(struct beit_plot_run *run);
/* The run's series of field with at least one point, or NULL. */
const struct beit_plot_series *beit_plot_run_field(const struct beit_plot_run *run,
                                                   const char *field);

/* ---- axis.c: ranges and tick labels ---- */

struct beit_plot_axis {
  double lo, hi; /* the range drawn */
  int log;       /* log10 scale (lo > 0) */
  size_t nticks;
  double ticks[BEIT_PLOT_MAX_TICKS];
  char labels[BEIT_PLOT_MAX_TICKS][24];
};

/* A linear axis over the data range [lo, hi] widened to round tick values (1, 2, 2.5 or 5 times
 * a power of ten, 3 to 7 ticks); a single value gets a range around it. */
void beit_plot_axis_linear(struct beit_plot_axis *a, double lo, double hi);
/* A log10 axis over [lo, hi] (0 < lo < hi), ticks at 1, 2, 5 times powers of ten (only the
 * powers past 2.5 decades, every other past 8). */
void beit_plot_axis_log(struct beit_plot_axis *a, double lo, double hi);
/* Where v falls on the axis, 0 at lo and 1 at hi; NaN for a value the axis cannot show (<= 0 on
 * a log axis, non-finite). */
double beit_plot_axis_pos(const struct beit_plot_axis *a, double v);
/* A tick label: fixed decimals enough for step, or "2e-4" style for tiny or huge values. */
void beit_plot_format_tick(char *buf, size_t size, double v, double step);

/* ---- curves.c: the figure ---- */

struct beit_plot_panel {
  char name[BEIT_PLOT_FIELD_SIZE]; /* as --metrics names it */
  char title[320];                 /* the header line: title, scale, fields (lines / dots) */
  struct beit_plot_axis y;
  int undefined_below_zero; /* a value < 0 marks "undefined" (fine-tuning's eval_map): not drawn */
  /* per run: the training series (a line) and the evaluation series (dots); NULL: none */
  const struct beit_plot_series *train[BEIT_PLOT_MAX_RUNS], *eval[BEIT_PLOT_MAX_RUNS];
};

struct beit_plot_figure {
  char title[256];
  size_t nruns, npanels;
  struct beit_plot_run *runs; /* (nruns), owned */
  struct beit_plot_panel panels[BEIT_PLOT_MAX_PANELS];
  struct beit_plot_axis x; /* steps */
  int has_eval;            /* some panel has dots: the title line explains them */
};

/* Read the runs of o and lay the figure out (panels, series, axes, title) without drawing; on
 * failure f holds nothing to free. */
enum beit_status beit_plot_figure_init(struct beit_plot_figure *f,
                                       const struct beit_plot_curves_options *o,
                                       struct beit_error *err);
void beit_plot_figure_free(struct beit_plot_figure *f);

/* ---- table.c: table.md as bars ---- */

struct beit_plot_bars {
  char title[256];
  size_t nrows, nprec;
  char row[BEIT_PLOT_MAX_ROWS][48];  /* the group label: "1% (600)" */
  char note[BEIT_PLOT_MAX_ROWS][48]; /* under it: "200 steps", or "" */
  char prec[BEIT_PLOT_MAX_PRECISIONS][24];
  /* top-1 % of [precision][row][0 pretrained, 1 random]; NaN where the table says "-" */
  double value[BEIT_PLOT_MAX_PRECISIONS][BEIT_PLOT_MAX_ROWS][2];
};

enum beit_status beit_plot_read_table(struct beit_plot_bars *b, const char *path,
                                      struct beit_error *err);

/* Bar chart geometry, px: a panel per precision (y axis labels, a group of two bars per row, a
 * pad), side by side after a pad; the figure at least BARS_MIN_W wide, panels centred. */
enum { BEIT_PLOT_BARS_H = 440, BEIT_PLOT_BARS_MIN_W = 560, BEIT_PLOT_BARS_AXIS_W = 56,
       BEIT_PLOT_BARS_GROUP_W = 104, BEIT_PLOT_BARS_PAD = 24 };

/* Size of the bar chart of b in px. */
void beit_plot_bars_size(const struct beit_plot_bars *b, int *width, int *height);

/* ---- draw_cairo.c (draw_stub.c without cairo) ---- */

enum beit_status beit_plot_draw_curves(const char *png, const struct beit_plot_figure *f,
                                       struct beit_error *err);
enum beit_status beit_plot_draw_bars(const char *png, const struct beit_plot_bars *b,
                                     struct beit_error *err);

#endif
