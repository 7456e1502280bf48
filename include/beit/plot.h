/* Pictures for a person to look at rather than read: the training curves of one or more runs
 * (from each run folder's metrics.jsonl) and the Fashion-MNIST table (scripts/
 * fashion_mnist_table.sh's table.md) as a bar chart. PNG files, drawn with cairo; a build
 * without cairo reports BEIT_STATUS_UNSUPPORTED from every drawing call (beit_plot_available
 * says so beforehand). Files are written to a temporary name and renamed into place.
 *
 * Curves: one column of panels sharing the step axis, in this order when present: loss (log
 * scale, said on the panel, when its values span more than a decade), learning rate, accuracy
 * (pretraining's mlm_acc, fine-tuning's acc; held-out eval_mlm_acc / eval_top1 / eval_map as
 * dots), the tokenizer's reconstruction error (mae, eval_mae) and codebook perplexity, images/s.
 * Training records are lines, evaluation records dots joined by a dashed line; each run has a
 * colour and a legend entry naming its folder. The figure is BEIT_PLOT_WIDTH px wide and
 * beit_plot_curves_height() tall.
 *
 * metrics.jsonl is read leniently: a line that is not a JSON object with a numeric "step" (a
 * line cut short by a crash, a hand edit) is skipped with a warning naming file and line; an
 * empty line is ignored. A record whose step is not after the previous one of the same field
 * (a run resumed from an earlier checkpoint re-logs those steps) replaces the earlier points from
 * that step on. A missing file, or a run with no usable record, is an error. */
#ifndef BEIT_PLOT_H
#define BEIT_PLOT_H

#include <stddef.h>
#include <stdio.h>

#include "beit/status.h"

enum {
  BEIT_PLOT_MAX_RUNS = 10,  /* runs on one figure (distinct colours) */
  BEIT_PLOT_MAX_PANELS = 8, /* panels of one figure */
  BEIT_PLOT_WIDTH = 960,    /* px, curves figure */
  /* curves figure geometry, px: a title band, one legend row per two runs, then per panel a
   * header line, the plot area and a gap; the step axis labels at the bottom */
  BEIT_PLOT_TITLE_H = 40,
  BEIT_PLOT_LEGEND_ROW_H = 20,
  BEIT_PLOT_PANEL_HEAD_H = 24,
  BEIT_PLOT_PANEL_PLOT_H = 150,
  BEIT_PLOT_PANEL_GAP_H = 14,
  BEIT_PLOT_BOTTOM_H = 50,
  BEIT_PLOT_LEFT_W = 76,    /* y tick labels */
  BEIT_PLOT_RIGHT_W = 24,
};

/* 1 when this build can draw (it has cairo), else 0. */
int beit_plot_available(void);

/* Height in px of a curves figure of nruns runs and npanels panels. Panel k's plot area spans
 * x BEIT_PLOT_LEFT_W .. BEIT_PLOT_WIDTH - BEIT_PLOT_RIGHT_W and y from
 * beit_plot_panel_top(nruns, k) for BEIT_PLOT_PANEL_PLOT_H px. */
int beit_plot_curves_height(size_t nruns, size_t npanels);
int beit_plot_panel_top(size_t nruns, size_t k);

struct beit_plot_curves_options {
  const char *const *runs; /* run folders, each holding metrics.jsonl (1..BEIT_PLOT_MAX_RUNS) */
  size_t nruns;
  /* panels in order: a panel name (loss, lr, acc, mae, perplexity, images_per_s) or any numeric
   * field of metrics.jsonl (grad_norm, data_wait_s, ...: its eval_<field> as dots when logged);
   * NULL / 0: every named panel that some run has data for */
  const char *const *panels;
  size_t npanels;
  FILE *warn; /* skipped lines, one warning each (at most 5 a file); NULL: silent */
};

/* What a curves figure holds, for the caller's message. */
struct beit_plot_result {
  int width, height;
  size_t npanels, nruns;
  char panels[256]; /* the panel names, comma-separated */
};

/* Draw the curves of o->runs into png. A panel asked for that no run has data for is a
 * BEIT_STATUS_USAGE error naming the fields the runs have. res may be NULL. */
enum beit_status beit_plot_curves(const char *png, const struct beit_plot_curves_options *o,
                                  struct beit_plot_result *res, struct beit_error *err);

/* After a checkpoint of a training run: draw run_dir/curves.png from run_dir/metrics.jsonl.
 * Never fails the caller: a problem is one "warning:" line on log (none when this build has no
 * cairo, which would otherwise say so at every checkpoint); skipped lines are not reported. */
void beit_plot_run_curves(const char *run_dir, FILE *log);

/* The pretrained-vs-random table as grouped bars into png: one panel per precision present
 * (columns "pretrained <precision> ..." and "random init <precision> ..."), a group per row
 * (label fraction, its "steps" column under the label), bars pretrained and random with their
 * values; a "-" cell draws no bar. table_md: the first markdown table of the file with such
 * columns is read; none, or a cell that is neither a number nor "-", is a BEIT_STATUS_FORMAT
 * error naming file (and line). res may be NULL (npanels counts precisions, nruns rows). */
enum beit_status beit_plot_table(const char *png, const char *table_md,
                                 struct beit_plot_result *res, struct beit_error *err);

#endif
