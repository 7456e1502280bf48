/* The drawing of plot/ with cairo (its toy text API): the curves figure (curves.c says what is
 * on it) and the bar chart of table.md (table.c). The PNG is encoded in memory and written with
 * beit_write_file_atomic (temporary name, fsync, rename), so a reader never sees half a file.
 * draw_stub.c stands in when the build has no cairo. Geometry: include/beit/plot.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cairo.h>

#include "config_table.h"
#include "plot.h"

/* matplotlib's tab10: distinct on white, in the order runs get them */
static const double palette[BEIT_PLOT_MAX_RUNS][3] = {
    {0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173}, {0.839, 0.153, 0.157},
    {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294}, {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498},
    {0.737, 0.741, 0.133}, {0.090, 0.745, 0.812}};

enum { ALIGN_LEFT, ALIGN_CENTER, ALIGN_RIGHT };

int beit_plot_available(void) { return 1; }

/* s at baseline y, its left edge, centre or right edge at x. */
static void text(cairo_t *cr, double x, double y, int align, const char *s)
{
  cairo_text_extents_t e;
  cairo_text_extents(cr, s, &e);
  double dx = align == ALIGN_LEFT ? 0 : align == ALIGN_CENTER ? e.x_advance / 2 : e.x_advance;
  cairo_move_to(cr, x - dx, y);
  cairo_show_text(cr, s);
}

/* s shortened from the left ("...tail") until it fits in width px. */
static void elide_left(cairo_t *cr, const char *s, double width, char *buf, size_t size)
{
  snprintf(buf, size, "%s", s);
  cairo_text_extents_t e;
  for (const char *tail = s; *tail; tail++) {
    if (tail != s)
      snprintf(buf, size, "...%s", tail);
    cairo_text_extents(cr, buf, &e);
    if (e.x_advance <= width)
      return;
  }
}

static void font(cairo_t *cr, double size, int bold)
{
  cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
                         bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, size);
}

static void grey(cairo_t *cr, double level) { cairo_set_source_rgb(cr, level, level, level); }

struct png_buffer {
  unsigned char *data;
  size_t n, cap;
};

static cairo_status_t png_append(void *closure, const unsigned char *data, unsigned int len)
{
  struct png_buffer *b = closure;
  if (b->n + len > b->cap) {
    size_t cap = b->cap ? b->cap : 65536;
    while (cap < b->n + len)
      cap *= 2;
    unsigned char *d = realloc(b->data, cap);
    if (!d)
      return CAIRO_STATUS_NO_MEMORY;
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->n, data, len);
  b->n += len;
  return CAIRO_STATUS_SUCCESS;
}

/* Encode surface as PNG and write it to path atomically. */
static enum beit_status write_png(cairo_surface_t *surface, const char *path,
                                  struct beit_error *err)
{
  struct png_buffer b = {NULL, 0, 0};
  cairo_surface_flush(surface);
  cairo_status_t cs = cairo_surface_write_to_png_stream(surface, png_append, &b);
  enum beit_status st = cs == CAIRO_STATUS_SUCCESS
                            ? beit_write_file_atomic(path, b.data, b.n, err)
                            : beit_error_set(err, BEIT_STATUS_NOMEM, "%s: cannot encode: %s",
                                             path, cairo_status_to_string(cs));
  free(b.data);
  return st;
}

/* A white canvas of w x h with its drawing context; NULL (err set) on failure. */
static cairo_t *canvas(int w, int h, const char *path, struct beit_error *err)
{
  cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
  cairo_t *cr = cairo_create(s);
  cairo_surface_destroy(s); /* cr holds a reference */
  if (cairo_status(cr) != CAIRO_STATUS_SUCCESS) {
    beit_error_set(err, BEIT_STATUS_NOMEM, "%s: cannot create a %dx%d picture: %s", path, w, h,
                   cairo_status_to_string(cairo_status(cr)));
    cairo_destroy(cr);
    return NULL;
  }
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
  return cr;
}

static enum beit_status finish(cairo_t *cr, const char *path, struct beit_error *err)
{
  enum beit_status st = cairo_status(cr) == CAIRO_STATUS_SUCCESS
                            ? write_png(cairo_get_target(cr), path, err)
                            : beit_error_set(err, BEIT_STATUS_NOMEM, "%s: drawing failed: %s",
                                             path, cairo_status_to_string(cairo_status(cr)));
  cairo_destroy(cr);
  return st;
}

/* ---- curves ---- */

struct frame {
  double x0, y0, w, h; /* the plot area */
};

static double px(const struct frame *fr, const struct beit_plot_axis *a, double v)
{
  return fr->x0 + beit_plot_axis_pos(a, v) * fr->w;
}

static double py(const struct frame *fr, const struct beit_plot_axis *a, double v)
{
  return fr->y0 + (1 - beit_plot_axis_pos(a, v)) * fr->h;
}

/* Grid lines at both axes' ticks, the y tick labels and the border. */
static void panel_frame(cairo_t *cr, const struct frame *fr, const struct beit_plot_axis *x,
                        const struct beit_plot_axis *y)
{
  cairo_set_line_width(cr, 1);
  grey(cr, 0.91);
  for (size_t i = 0; i < x->nticks; i++) {
    double v = floor(px(fr, x, x->ticks[i])) + 0.5;
    cairo_move_to(cr, v, fr->y0);
    cairo_line_to(cr, v, fr->y0 + fr->h);
  }
  for (size_t i = 0; i < y->nticks; i++) {
    double v = floor(py(fr, y, y->ticks[i])) + 0.5;
    cairo_move_to(cr, fr->x0, v);
    cairo_line_to(cr, fr->x0 + fr->w, v);
  }
  cairo_stroke(cr);
  grey(cr, 0.2);
  font(cr, 11, 0);
  for (size_t i = 0; i < y->nticks; i++)
    text(cr, fr->x0 - 6, py(fr, y, y->ticks[i]) + 4, ALIGN_RIGHT, y->labels[i]);
  grey(cr, 0.55);
  cairo_rectangle(cr, fr->x0 + 0.5, fr->y0 + 0.5, fr->w - 1, fr->h - 1);
  cairo_stroke(cr);
}

/* A series as a line (train) or as dots joined by a dashed line (eval); points the axis cannot
 * show (undefined, <= 0 on a log axis) are left out. */
static void series(cairo_t *cr, const struct frame *fr, const struct beit_plot_axis *x,
                   const struct beit_plot_axis *y, const struct beit_plot_series *s, int dots,
                   int undefined_below_zero, const double rgb[3])
{
  cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
  cairo_set_line_width(cr, dots ? 1.2 : 1.8);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
  static const double dash[] = {4, 3};
  cairo_set_dash(cr, dash, dots ? 2 : 0, 0);
  size_t shown = 0;
  for (size_t i = 0; i < s->n; i++) {
    double X = px(fr, x, s->x[i]), Y = py(fr, y, s->y[i]);
    if (isnan(X) || isnan(Y) || (undefined_below_zero && s->y[i] < 0))
      continue;
    if (shown++)
      cairo_line_to(cr, X, Y);
    else
      cairo_move_to(cr, X, Y);
  }
  cairo_stroke(cr);
  cairo_set_dash(cr, NULL, 0, 0);
  if (!dots && shown != 1)
    return;
  for (size_t i = 0; i < s->n; i++) { /* dots, and a lone training point */
    double X = px(fr, x, s->x[i]), Y = py(fr, y, s->y[i]);
    if (isnan(X) || isnan(Y) || (undefined_below_zero && s->y[i] < 0))
      continue;
    cairo_new_sub_path(cr);
    cairo_arc(cr, X, Y, 3.6, 0, 2 * M_PI);
  }
  cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
  cairo_fill_preserve(cr);
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_set_line_width(cr, 0.8);
  cairo_stroke(cr);
}

static void legend(cairo_t *cr, const struct beit_plot_figure *f)
{
  double colw = (BEIT_PLOT_WIDTH - BEIT_PLOT_LEFT_W - BEIT_PLOT_RIGHT_W) / 2.0;
  font(cr, 12, 0);
  for (size_t r = 0; r < f->nruns; r++) {
    double x = BEIT_PLOT_LEFT_W + (double)(r % 2) * colw;
    double y = BEIT_PLOT_TITLE_H + (double)(r / 2) * BEIT_PLOT_LEGEND_ROW_H + 12;
    cairo_set_source_rgb(cr, palette[r][0], palette[r][1], palette[r][2]);
    cairo_set_line_width(cr, 3);
    cairo_move_to(cr, x, y - 4);
    cairo_line_to(cr, x + 22, y - 4);
    cairo_stroke(cr);
    char name[200];
    elide_left(cr, f->runs[r].name, colw - 40, name, sizeof name);
    grey(cr, 0.1);
    text(cr, x + 30, y, ALIGN_LEFT, name);
  }
}

enum beit_status beit_plot_draw_curves(const char *png, const struct beit_plot_figure *f,
                                       struct beit_error *err)
{
  int W = BEIT_PLOT_WIDTH, H = beit_plot_curves_height(f->nruns, f->npanels);
  cairo_t *cr = canvas(W, H, png, err);
  if (!cr)
    return err ? err->status : BEIT_STATUS_NOMEM;
  char buf[300];
  font(cr, 16, 1);
  grey(cr, 0.1);
  elide_left(cr, f->title, W - BEIT_PLOT_LEFT_W - 300, buf, sizeof buf);
  text(cr, BEIT_PLOT_LEFT_W, 26, ALIGN_LEFT, buf);
  if (f->has_eval) {
    font(cr, 11, 0);
    grey(cr, 0.35);
    text(cr, W - BEIT_PLOT_RIGHT_W, 26, ALIGN_RIGHT,
         "lines: training windows   dots: held-out evaluations");
  }
  legend(cr, f);
  struct frame fr = {BEIT_PLOT_LEFT_W, 0, W - BEIT_PLOT_LEFT_W - BEIT_PLOT_RIGHT_W,
                     BEIT_PLOT_PANEL_PLOT_H};
  for (size_t k = 0; k < f->npanels; k++) {
    const struct beit_plot_panel *p = &f->panels[k];
    fr.y0 = beit_plot_panel_top(f->nruns, k);
    font(cr, 13, 0);
    grey(cr, 0.1);
    elide_left(cr, p->title, fr.w, buf, sizeof buf);
    text(cr, fr.x0, fr.y0 - 7, ALIGN_LEFT, buf);
    panel_frame(cr, &fr, &f->x, &p->y);
    cairo_save(cr);
    cairo_rectangle(cr, fr.x0, fr.y0, fr.w, fr.h);
    cairo_clip(cr);
    for (size_t r = 0; r < f->nruns; r++) {
      if (p->train[r])
        series(cr, &fr, &f->x, &p->y, p->train[r], 0, p->undefined_below_zero,
               palette[r]);
      if (p->eval[r])
        series(cr, &fr, &f->x, &p->y, p->eval[r], 1, p->undefined_below_zero,
               palette[r]);
    }
    cairo_restore(cr);
  }
  /* the shared step axis under the last panel */
  double bottom = fr.y0 + fr.h;
  font(cr, 11, 0);
  grey(cr, 0.2);
  for (size_t i = 0; i < f->x.nticks; i++)
    text(cr, px(&fr, &f->x, f->x.ticks[i]), bottom + 16, ALIGN_CENTER, f->x.labels[i]);
  font(cr, 12, 0);
  grey(cr, 0.1);
  text(cr, fr.x0 + fr.w / 2, bottom + 36, ALIGN_CENTER, "optimizer step");
  return finish(cr, png, err);
}

/* ---- bars ---- */

enum { BAR_W = 36, BAR_GAP = 4, BARS_AXIS_W = BEIT_PLOT_BARS_AXIS_W,
       BARS_GROUP_W = BEIT_PLOT_BARS_GROUP_W, BARS_PAD = BEIT_PLOT_BARS_PAD, BARS_PLOT_TOP = 96,
       BARS_PLOT_H = 260 };

static const double arm_rgb[2][3] = {{0.122, 0.467, 0.706}, {0.85, 0.55, 0.25}};
static const char *const arm_name[2] = {"pretrained (masked image modeling)", "random init"};

enum beit_status beit_plot_draw_bars(const char *png, const struct beit_plot_bars *b,
                                     struct beit_error *err)
{
  int W, H;
  beit_plot_bars_size(b, &W, &H);
  cairo_t *cr = canvas(W, H, png, err);
  if (!cr)
    return err ? err->status : BEIT_STATUS_NOMEM;
  font(cr, 16, 1);
  grey(cr, 0.1);
  text(cr, BARS_PAD, 28, ALIGN_LEFT, b->title);
  font(cr, 12, 0); /* the legend */
  for (int a = 0, x = BARS_PAD; a < 2; a++) {
    cairo_set_source_rgb(cr, arm_rgb[a][0], arm_rgb[a][1], arm_rgb[a][2]);
    cairo_rectangle(cr, x, 42, 14, 12);
    cairo_fill(cr);
    grey(cr, 0.1);
    text(cr, x + 20, 53, ALIGN_LEFT, arm_name[a]);
    cairo_text_extents_t e;
    cairo_text_extents(cr, arm_name[a], &e);
    x += 20 + (int)e.x_advance + 24;
  }
  int panel_w = BARS_AXIS_W + (int)b->nrows * BARS_GROUP_W + BARS_PAD;
  double x_start = (W - (double)b->nprec * panel_w - BARS_PAD) / 2 + BARS_PAD;
  struct beit_plot_axis y;
  beit_plot_axis_linear(&y, 0, 100);
  for (size_t p = 0; p < b->nprec; p++) {
    struct frame fr = {x_start + (double)p * panel_w + BARS_AXIS_W, BARS_PLOT_TOP,
                       (double)b->nrows * BARS_GROUP_W, BARS_PLOT_H};
    struct beit_plot_axis none = {0};
    none.lo = 0, none.hi = 1;
    char head[64];
    snprintf(head, sizeof head, "%s", b->prec[p][0] ? b->prec[p] : "top-1 %");
    font(cr, 13, 1);
    grey(cr, 0.1);
    text(cr, fr.x0 + fr.w / 2, fr.y0 - 12, ALIGN_CENTER, head);
    panel_frame(cr, &fr, &none, &y);
    for (size_t g = 0; g < b->nrows; g++) {
      double gx = fr.x0 + (double)g * BARS_GROUP_W + (BARS_GROUP_W - 2 * BAR_W - BAR_GAP) / 2.0;
      for (int a = 0; a < 2; a++) {
        double v = b->value[p][g][a], x = gx + a * (BAR_W + BAR_GAP);
        char label[32];
        font(cr, 11, 0);
        if (isnan(v)) {
          grey(cr, 0.5);
          text(cr, x + BAR_W / 2.0, fr.y0 + fr.h - 6, ALIGN_CENTER, "-");
          continue;
        }
        double top = py(&fr, &y, fmin(fmax(v, 0), 100));
        cairo_set_source_rgb(cr, arm_rgb[a][0], arm_rgb[a][1], arm_rgb[a][2]);
        cairo_rectangle(cr, x, top, BAR_W, fr.y0 + fr.h - top);
        cairo_fill(cr);
        grey(cr, 0.1);
        snprintf(label, sizeof label, "%.1f", v);
        text(cr, x + BAR_W / 2.0, top - 4, ALIGN_CENTER, label);
      }
      double cx = fr.x0 + (g + 0.5) * BARS_GROUP_W;
      font(cr, 12, 0);
      grey(cr, 0.1);
      text(cr, cx, fr.y0 + fr.h + 18, ALIGN_CENTER, b->row[g]);
      font(cr, 11, 0);
      grey(cr, 0.4);
      text(cr, cx, fr.y0 + fr.h + 34, ALIGN_CENTER, b->note[g]);
    }
  }
  font(cr, 12, 0);
  grey(cr, 0.1);
  text(cr, x_start + BARS_AXIS_W + ((double)b->nprec * panel_w - BARS_AXIS_W - BARS_PAD) / 2,
       H - 16, ALIGN_CENTER, "labels used (fine-tuning steps)");
  return finish(cr, png, err);
}
