/* Batch prediction (`beit predict`, docs/commands/predict.md): a classifier model folder over
 * image files, folders (searched recursively, sorted), dataset folders (index.json + shards)
 * and JSON lines files of requests in the model card's format (beit/infer.h), with one JSON
 * line per image out, in input order, in the card's response format. Images are decoded and
 * preprocessed in parallel (OpenMP), then run in batches. An input that cannot be read,
 * fetched or decoded gets an error line in its place ({"error": {...}}, the same faults as
 * beit serve answers) and is counted as failed; the rest are still scored. Implemented in
 * serve/ (predict.c, predict_inputs.c). */
#ifndef BEIT_PREDICT_H
#define BEIT_PREDICT_H

#include <stddef.h>
#include <stdio.h>

#include "beit/infer.h"
#include "beit/status.h"

struct beit_predict_options {
  struct beit_infer_options infer; /* precision already resolved (beit_precision_resolve) */
  struct beit_infer_select select;
  int allow_urls;                  /* fetch http(s) URLs found in JSON lines requests */
  int allow_private_urls;          /* ... also on loopback and private networks */
  size_t url_max_bytes;            /* default 16 MiB */
  double url_timeout_s;            /* default 10 */
  const char *output;              /* JSON lines file (NULL: stdout) */
  int with_input;                  /* add "input": <path, dataset key or file:line:index> */
  const char *visualize;           /* PNG of the first images with their top labels, or NULL */
  size_t visualize_max;            /* images in it (default 8) */
  FILE *log;                       /* progress line, failed inputs, the picture's name; NULL:
                                      quiet */
};
/* beit_infer_defaults with every image format allowed (local files the user chose), every
 * label, no URLs, stdout, no picture, log stderr. */
void beit_predict_defaults(struct beit_predict_options *opt);

struct beit_predict_summary {
  size_t images; /* lines written */
  size_t failed; /* of them error lines */
};

/* Predict inputs[0..n) with the model folder model_dir. A failed input is not an error (see
 * sum->failed); errors are what stops the run: an input path that does not exist, a model that
 * does not load, an output that cannot be written, out of memory. */
enum beit_status beit_predict_run(const char *model_dir, const char *const *inputs, size_t n,
                                  const struct beit_predict_options *opt,
                                  struct beit_predict_summary *sum, struct beit_error *err);

#endif
