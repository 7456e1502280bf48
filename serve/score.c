/* The scorer: one request body in, one response (or one fault) out. Runs on the requester's
 * thread: parse, get each input's bytes (base64 or URL), probe/decode/preprocess it, queue the
 * job for the batching workers, wait, format. Also the /metadata document. */
#include <stdlib.h>
#include <string.h>

#include "serve.h"

void beit_serve_defaults(struct beit_serve_options *opt)
{
  memset(opt, 0, sizeof *opt);
  opt->host = "127.0.0.1";
  opt->port = 8080;
  opt->max_connections = 256;
  opt->max_body_bytes = 32u << 20;
  opt->max_images = 64;
  opt->max_queue_images = 256;
  opt->request_timeout_s = 30.0;
  opt->idle_timeout_s = 60.0;
  opt->read_timeout_s = 30.0;
  opt->batch_wait_us = 0;
  opt->allow_urls = 0;
  opt->url_max_bytes = 16u << 20;
  opt->url_timeout_s = 10.0;
  opt->select.top_k = 0;
  opt->select.threshold = -1.0;
}

/* Bytes -> view i of job; on failure the fault names input i. */
static int prepare_input(const struct beit_scorer *sc, const struct beit_request *req, size_t i,
                         double deadline, struct beit_job *job, struct beit_data_scratch *ws,
                         struct beit_fault *f)
{
  uint8_t *bytes = NULL;
  size_t size = 0;
  double left = deadline - beit_clock_now();
  if (beit_request_item_bytes(req, i, &sc->fetch, left, &bytes, &size, f))
    return -1;
  char key[32];
  snprintf(key, sizeof key, "input %zu", i);
  struct beit_error err = {0};
  enum beit_status st = beit_infer_prepare(sc->inf, bytes, size, key,
                                           job->views + i * beit_infer_view_floats(sc->inf), NULL,
                                           ws, &err);
  free(bytes);
  if (st) {
    beit_fault_from_status(f, st, (long)i, err.message);
    return -1;
  }
  return 0;
}

static void reply_fault(struct beit_strbuf *out, int *http_status, const struct beit_fault *f,
                        struct beit_fault *copy)
{
  *http_status = f->http_status;
  beit_fault_json(out, f);
  if (copy)
    *copy = *f;
}

void beit_scorer_score(const struct beit_scorer *sc, const char *body, size_t len,
                       double deadline, int *http_status, struct beit_strbuf *out,
                       struct beit_fault *fault)
{
  struct beit_fault f = {0};
  struct beit_request req;
  struct beit_job *job = NULL;
  struct beit_data_scratch *ws = NULL;
  int reserved = 0;
  if (beit_request_parse(&req, body, len, sc->max_images, &f)) {
    reply_fault(out, http_status, &f, fault);
    return;
  }
  if (beit_batcher_reserve(sc->batcher, req.count)) {
    beit_fault_set(&f, 503, -1, "busy", "server busy: %zu images are already waiting; retry later",
                   sc->max_queue_images);
    goto fail;
  }
  reserved = 1;
  if (!(job = beit_job_create(sc->inf, req.count)) || !(ws = beit_data_scratch_init())) {
    beit_fault_set(&f, 503, -1, "out_of_memory", "out of memory for %zu images", req.count);
    goto fail;
  }
  for (size_t i = 0; i < req.count; i++) {
    if (beit_clock_now() > deadline) {
      beit_fault_set(&f, 504, (long)i, "timeout", "request timed out while preparing input %zu", i);
      goto fail;
    }
    if (prepare_input(sc, &req, i, deadline, job, ws, &f))
      goto fail;
  }
  beit_data_scratch_free(ws);
  ws = NULL;
  reserved = 0; /* submit takes the reservation over, also when it fails */
  if (beit_batcher_submit(sc->batcher, job)) {
    beit_fault_set(&f, 503, -1, "stopping", "the server is shutting down");
    goto fail;
  }
  int waited = beit_batcher_wait(sc->batcher, job, deadline);
  if (waited) {
    job = NULL; /* withdrawn; the batcher frees it */
    if (waited == -2)
      beit_fault_set(&f, 503, -1, "stopping", "the server is shutting down");
    else
      beit_fault_set(&f, 504, -1, "timeout", "request timed out waiting for inference");
    goto fail;
  }
  if (job->status) {
    beit_fault_set(&f, 500, -1, "internal", "inference failed: %s", job->message);
    goto fail;
  }
  size_t C = beit_infer_num_labels(sc->inf);
  beit_strbuf_puts(out, "[");
  for (size_t i = 0; i < req.count; i++) {
    if (i)
      beit_strbuf_puts(out, ", ");
    beit_strbuf_result(out, sc->inf, job->probs + i * C, &sc->select);
  }
  beit_strbuf_puts(out, "]");
  *http_status = 200;
  beit_job_free(job);
  beit_request_free(&req);
  if (out->oom) {
    beit_strbuf_free(out);
    beit_fault_set(&f, 503, -1, "out_of_memory", "out of memory writing the response");
    reply_fault(out, http_status, &f, fault);
  }
  return;
fail:
  if (reserved)
    beit_batcher_release(sc->batcher, req.count);
  beit_data_scratch_free(ws);
  beit_job_free(job);
  beit_request_free(&req);
  reply_fault(out, http_status, &f, fault);
}

void beit_serve_metadata_json(struct beit_strbuf *b, const struct beit_infer *inf)
{
  const struct beit_data_preprocess *pp = beit_infer_preprocessing(inf);
  const struct beit_infer_options *opt = beit_infer_get_options(inf);
  char desc[256];
  beit_data_preprocess_describe(pp, desc, sizeof desc);
  int S = beit_infer_image_size(inf);
  beit_strbuf_printf(b, "{\"model_type\": \"beit\", \"architecture\": "
                        "\"BeitForImageClassification\", \"task\": \"%s\", ",
                     beit_infer_task(inf) == BEIT_INFER_TASK_MULTILABEL ? "multilabel"
                                                                        : "multiclass");
  beit_strbuf_printf(b, "\"outputs\": \"%s\", ",
                     beit_infer_task(inf) == BEIT_INFER_TASK_MULTILABEL ? "sigmoid" : "softmax");
  beit_strbuf_printf(b, "\"input\": {\"columns\": [\"image\"], \"image_size\": [%d, %d], "
                        "\"channels\": 3, \"preprocessing\": ", S, S);
  beit_strbuf_json_string(b, desc);
  beit_strbuf_printf(b, ", \"mean\": [%g, %g, %g], \"std\": [%g, %g, %g]}, ", pp->mean[0],
                     pp->mean[1], pp->mean[2], pp->std[0], pp->std[1], pp->std[2]);
  beit_strbuf_printf(b, "\"max_batch\": %zu, \"workers\": %d, \"precision\": \"%s\", "
                        "\"num_labels\": %zu, \"labels\": [",
                     opt->max_batch, opt->sessions, beit_precision_name(opt->precision),
                     beit_infer_num_labels(inf));
  for (size_t i = 0; i < beit_infer_num_labels(inf); i++) {
    if (i)
      beit_strbuf_puts(b, ", ");
    beit_strbuf_json_string(b, beit_infer_label(inf, i));
  }
  beit_strbuf_puts(b, "]}");
}
