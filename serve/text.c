/* JSON text out: the response object of one image, the error object.
 * Written by hand rather than through a cJSON tree: a response is a few flat arrays and this is
 * on every request's path. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

/* ---- Results ------------------------------------------------------------------------------ */

struct ranked {
  float p;
  size_t i;
};

/* Decreasing probability, ties (and NaN) in label order: a stable, total order. */
static int by_prob_desc(const void *pa, const void *pb)
{
  const struct ranked *a = pa, *b = pb;
  int an = isnan(a->p), bn = isnan(b->p);
  if (an != bn)
    return an - bn;
  if (!an && a->p != b->p)
    return a->p > b->p ? -1 : 1;
  return a->i < b->i ? -1 : a->i > b->i;
}

size_t beit_infer_select_labels(const struct beit_infer *inf, const float *probs,
                                const struct beit_infer_select *sel, size_t *order)
{
  size_t C = beit_infer_num_labels(inf);
  int sorted = sel && (sel->top_k > 0 || sel->threshold >= 0);
  if (!sorted) {
    for (size_t i = 0; i < C; i++)
      order[i] = i;
    return C;
  }
  struct ranked stack[64], *r = C <= 64 ? stack : malloc(C * sizeof *r);
  size_t k = 0;
  if (!r) { /* out of memory: fall back to label order, still honouring the filters */
    for (size_t i = 0; i < C && (!sel->top_k || k < sel->top_k); i++)
      if (sel->threshold < 0 || probs[i] >= sel->threshold)
        order[k++] = i;
    return k;
  }
  for (size_t i = 0; i < C; i++)
    r[i] = (struct ranked){probs[i], i};
  qsort(r, C, sizeof *r, by_prob_desc);
  for (size_t i = 0; i < C && (!sel->top_k || k < sel->top_k); i++)
    if (sel->threshold < 0 || r[i].p >= sel->threshold)
      order[k++] = r[i].i;
  if (r != stack)
    free(r);
  return k;
}

void beit_strbuf_result(struct beit_strbuf *b, const struct beit_infer *inf, const float *probs,
                        const struct beit_infer_select *sel)
{
  size_t C = beit_infer_num_labels(inf);
  size_t stack[64], *order = C <= 64 ? stack : malloc(C * sizeof *order);
  if (!order) {
    b->oom = 1;
    return;
  }
  size_t k = beit_infer_select_labels(inf, probs, sel, order);
  beit_strbuf_puts(b, "{\"probs\": [");
  for (size_t j = 0; j < k; j++) {
    float p = probs[order[j]];
    if (isfinite(p))
      beit_strbuf_printf(b, j ? ", %.6g" : "%.6g", (double)p);
    else
      beit_strbuf_puts(b, j ? ", null" : "null");
  }
  beit_strbuf_puts(b, "], \"labels\": [");
  for (size_t j = 0; j < k; j++) {
    if (j)
      beit_strbuf_puts(b, ", ");
    beit_strbuf_json_string(b, beit_infer_label(inf, order[j]));
  }
  beit_strbuf_puts(b, "]}");
  if (order != stack)
    free(order);
}

char *beit_infer_result_json(const struct beit_infer *inf, const float *probs,
                             const struct beit_infer_select *sel)
{
  struct beit_strbuf b = {0};
  beit_strbuf_result(&b, inf, probs, sel);
  if (b.oom) {
    beit_strbuf_free(&b);
    return NULL;
  }
  return b.data;
}

/* ---- Faults --------------------------------------------------------------------------------- */

void beit_fault_set(struct beit_fault *f, int http_status, long index, const char *reason,
                    const char *fmt, ...)
{
  if (!f)
    return;
  f->http_status = http_status;
  f->index = index;
  f->reason = reason;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(f->message, sizeof f->message, fmt, ap);
  va_end(ap);
}

void beit_fault_from_status(struct beit_fault *f, enum beit_status st, long index,
                            const char *message)
{
  switch (st) {
  case BEIT_STATUS_USAGE: beit_fault_set(f, 413, index, "image_too_large", "%s", message); break;
  case BEIT_STATUS_UNSUPPORTED:
    beit_fault_set(f, 415, index, "unsupported_media_type", "%s", message);
    break;
  case BEIT_STATUS_FORMAT:
  case BEIT_STATUS_SHAPE:
    beit_fault_set(f, 422, index, "undecodable_image", "%s", message);
    break;
  case BEIT_STATUS_NOMEM: beit_fault_set(f, 503, index, "internal", "%s", message); break;
  default: beit_fault_set(f, 500, index, "internal", "%s", message);
  }
}

void beit_fault_json(struct beit_strbuf *b, const struct beit_fault *f)
{
  beit_strbuf_printf(b, "{\"error\": {\"status\": %d, \"index\": ", f->http_status);
  if (f->index >= 0)
    beit_strbuf_printf(b, "%ld", f->index);
  else
    beit_strbuf_puts(b, "null");
  beit_strbuf_puts(b, ", \"reason\": ");
  beit_strbuf_json_string(b, f->reason ? f->reason : "error");
  beit_strbuf_puts(b, ", \"message\": ");
  beit_strbuf_json_string(b, f->message);
  beit_strbuf_puts(b, "}}");
}
