/* Prediction pictures with cairo: one row per image, the image (fit into a 224 px box, resized
 * with the PIL-exact bilinear filter) and beside it a horizontal bar chart of its top labels
 * with their probabilities, like the model card's sample visualization. Written to a temporary
 * name and renamed into place. visualize_stub.c stands in without cairo. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cairo.h>

#include "serve.h"

enum { BOX = 224, MARGIN = 16, TITLE = 28, CHART = 440, LABEL_W = 170, BAR_W = 200, BAR_H = 22,
       BAR_GAP = 8 };

/* An RGB24 cairo surface of img fit into BOX x BOX. */
static cairo_surface_t *image_surface(const struct beit_data_image *img, int *dw, int *dh,
                                      struct beit_error *err)
{
  int w = img->width, h = img->height;
  double s = (double)BOX / (w > h ? w : h);
  *dw = (int)(w * s + 0.5);
  *dh = (int)(h * s + 0.5);
  if (*dw < 1)
    *dw = 1;
  if (*dh < 1)
    *dh = 1;
  uint8_t *rgb = malloc((size_t)*dw * *dh * 3);
  struct beit_data_scratch *ws = beit_data_scratch_init();
  cairo_surface_t *surf = NULL;
  if (!rgb || !ws) {
    beit_error_set(err, BEIT_STATUS_NOMEM, "visualize: out of memory");
    goto done;
  }
  if (beit_data_resize(rgb, *dw, *dh, img->pixels, w, h, (size_t)w * 3, 0, 0, w, h,
                       BEIT_DATA_FILTER_BILINEAR, ws, err))
    goto done;
  surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, *dw, *dh);
  if (cairo_surface_status(surf) != CAIRO_STATUS_SUCCESS) {
    cairo_surface_destroy(surf);
    surf = NULL;
    beit_error_set(err, BEIT_STATUS_NOMEM, "visualize: cannot create a %dx%d surface", *dw, *dh);
    goto done;
  }
  cairo_surface_flush(surf);
  unsigned char *data = cairo_image_surface_get_data(surf);
  int stride = cairo_image_surface_get_stride(surf);
  for (int y = 0; y < *dh; y++) {
    uint32_t *row = (uint32_t *)(data + (size_t)y * stride);
    const uint8_t *src = rgb + (size_t)y * *dw * 3;
    for (int x = 0; x < *dw; x++)
      row[x] = (uint32_t)src[3 * x] << 16 | (uint32_t)src[3 * x + 1] << 8 | src[3 * x + 2];
  }
  cairo_surface_mark_dirty(surf);
done:
  free(rgb);
  beit_data_scratch_free(ws);
  return surf;
}

static void text(cairo_t *cr, double x, double y, const char *s, size_t max_chars)
{
  char buf[128];
  size_t n = strlen(s);
  if (max_chars > sizeof buf - 4)
    max_chars = sizeof buf - 4;
  if (n > max_chars) {
    memcpy(buf, s, max_chars - 3);
    memcpy(buf + max_chars - 3, "...", 4);
  } else {
    memcpy(buf, s, n + 1);
  }
  cairo_move_to(cr, x, y);
  cairo_show_text(cr, buf);
}

enum beit_status beit_infer_visualize(const char *png_path, const struct beit_infer *inf,
                                      const struct beit_infer_vis_item *items, size_t n,
                                      size_t top_k, struct beit_error *err)
{
  if (n == 0)
    return beit_error_set(err, BEIT_STATUS_USAGE, "%s: no images to draw", png_path);
  size_t C = beit_infer_num_labels(inf);
  if (top_k == 0)
    top_k = 5;
  if (top_k > C)
    top_k = C;
  int chart_h = (int)top_k * (BAR_H + BAR_GAP);
  int row_h = TITLE + (BOX > chart_h ? BOX : chart_h) + MARGIN;
  int W = MARGIN + BOX + MARGIN + CHART + MARGIN, H = MARGIN + (int)n * row_h;
  size_t *order = malloc(C * sizeof *order);
  cairo_surface_t *canvas = cairo_image_surface_create(CAIRO_FORMAT_RGB24, W, H);
  cairo_t *cr = cairo_create(canvas);
  enum beit_status st = BEIT_STATUS_OK;
  if (!order || cairo_status(cr) != CAIRO_STATUS_SUCCESS) {
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", png_path);
    goto done;
  }
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
  cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  struct beit_infer_select sel = {top_k, -1.0};
  for (size_t i = 0; i < n; i++) {
    double y0 = MARGIN + (double)i * row_h;
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    cairo_set_font_size(cr, 15);
    text(cr, MARGIN, y0 + 18, items[i].title ? items[i].title : "", 70);
    int dw, dh;
    cairo_surface_t *img = image_surface(items[i].image, &dw, &dh, err);
    if (!img) {
      st = err ? err->status : BEIT_STATUS_NOMEM;
      goto done;
    }
    double ix = MARGIN + (BOX - dw) / 2.0, iy = y0 + TITLE + (BOX - dh) / 2.0;
    cairo_set_source_surface(cr, img, ix, iy);
    cairo_paint(cr);
    cairo_surface_destroy(img);
    size_t k = beit_infer_select_labels(inf, items[i].probs, &sel, order);
    double cx = MARGIN + BOX + MARGIN;
    cairo_set_font_size(cr, 13);
    for (size_t j = 0; j < k; j++) {
      double by = y0 + TITLE + (double)j * (BAR_H + BAR_GAP);
      float p = items[i].probs[order[j]];
      double frac = p > 0 ? (p < 1 ? p : 1) : 0;
      cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
      text(cr, cx, by + BAR_H * 0.7, beit_infer_label(inf, order[j]), 24);
      cairo_set_source_rgb(cr, 0.92, 0.92, 0.92);
      cairo_rectangle(cr, cx + LABEL_W, by, BAR_W, BAR_H);
      cairo_fill(cr);
      cairo_set_source_rgb(cr, j == 0 ? 0.16 : 0.45, j == 0 ? 0.44 : 0.62, j == 0 ? 0.80 : 0.86);
      cairo_rectangle(cr, cx + LABEL_W, by, BAR_W * frac, BAR_H);
      cairo_fill(cr);
      char num[32];
      snprintf(num, sizeof num, "%.3f", (double)p);
      cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
      text(cr, cx + LABEL_W + BAR_W + 8, by + BAR_H * 0.7, num, 16);
    }
  }
  cairo_surface_flush(canvas);
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", png_path);
  if (cairo_surface_write_to_png(canvas, tmp) != CAIRO_STATUS_SUCCESS) {
    remove(tmp);
    st = beit_error_set(err, BEIT_STATUS_IO, "%s: cannot write the PNG", png_path);
  } else if (rename(tmp, png_path)) {
    remove(tmp);
    st = beit_error_set(err, BEIT_STATUS_IO, "%s: cannot rename %s into place", png_path, tmp);
  }
done:
  free(order);
  cairo_destroy(cr);
  cairo_surface_destroy(canvas);
  return st;
}
