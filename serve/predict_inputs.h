/* Internals of `beit predict` (serve/predict.c, predict_inputs.c): the inputs given on the
 * command line -- image files, folders walked recursively in sorted order, dataset folders
 * (index.json + shards) and JSON lines files of requests (or - for stdin) -- and a cursor that
 * hands them out one encoded image at a time. Not a public header. */
#ifndef BEIT_SERVE_PREDICT_INPUTS_H
#define BEIT_SERVE_PREDICT_INPUTS_H

#include <stddef.h>
#include <stdint.h>

#include "serve.h"

/* One input on its way to a batch: bytes to decode, or the fault that replaces its line. */
struct beit_predict_item {
  char key[BEIT_DATA_KEY_MAX + 64]; /* path, dataset key, or file:line[:index] */
  uint8_t *bytes;                   /* malloc'd; NULL when failed */
  size_t size;
  struct beit_fault fault;
  int failed;
};

struct beit_predict_inputs;

/* Resolve paths[0..n) into sources (a folder with index.json is a dataset, another folder is
 * walked; .jsonl/.json/.ndjson and "-" are JSON lines; anything else is an image file) and
 * open a cursor at the first. URLs in JSON lines follow fetch. IO for a path that does not
 * exist or a folder that cannot be read. */
enum beit_status beit_predict_inputs_open(struct beit_predict_inputs **out,
                                          const char *const *paths, size_t n,
                                          const struct beit_fetch_policy *fetch,
                                          struct beit_error *err);
/* Images known before reading: files + dataset records; 0 when JSON lines make it unknown. */
size_t beit_predict_inputs_total(const struct beit_predict_inputs *in);
/* Fill *it with the next input (a per-input failure is it->failed, not an error): 0 when there
 * is one, 1 at the end, -1 on a fatal error (a dataset or JSON lines file that cannot be
 * opened, out of memory) with err set. time_left bounds a URL fetch. */
int beit_predict_inputs_next(struct beit_predict_inputs *in, struct beit_predict_item *it,
                             double time_left, struct beit_error *err);
void beit_predict_inputs_free(struct beit_predict_inputs *in);

#endif
