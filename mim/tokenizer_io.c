/* beit tokenizer encode | recon (include/beit/mim.h beit_tokenizer_io_run): a tokenizer folder
 * loaded in the requested precision, then token grids out of pixel_values or a dataset's
 * images, or images out of token grids, or a dataset's reconstruction error as one JSON line
 * (and a PNG grid). What it is not: the dVAE's safetensors I/O (tokenizer/tensor_io.c) or the
 * evaluation itself (tokenizer_train.c beit_tokenizer_evaluate). */
#include <stdio.h>

#include "beit/mim.h"

/* The tokenizer folder, computing in the requested precision (resolved and announced on log
 * first: the run's first line). */
static enum beit_status load(struct beit_tokenizer **tok,
                             const struct beit_tokenizer_io_options *o, struct beit_error *err)
{
  enum beit_precision p;
  enum beit_status st = beit_precision_policy_resolve(
      &p, o->precision, o->log, o->recon ? "beit tokenizer recon: " : "beit tokenizer encode: ",
      err);
  if (!st && !(st = beit_tokenizer_load(tok, o->tokenizer, 64, err)))
    st = beit_tokenizer_set_precision(*tok, p, err);
  return st;
}

/* encode: the token grids of input's pixel_values or of data's images into output. */
static enum beit_status encode(struct beit_tokenizer *tok,
                               const struct beit_tokenizer_io_options *o, struct beit_error *err)
{
  if (o->input)
    return beit_tokenizer_encode_file(tok, o->input, o->output, err);
  return beit_tokenizer_encode_dataset(tok, o->data, o->limit, o->output, err);
}

/* recon: input's token grids decoded into output, or data's images encoded and decoded with
 * the reconstruction error printed as JSON (and the grid drawn). */
static enum beit_status recon(struct beit_tokenizer *tok,
                              const struct beit_tokenizer_io_options *o, struct beit_error *err)
{
  if (o->input)
    return beit_tokenizer_decode_file(tok, o->input, o->output, err);
  struct beit_tokenizer_eval ev;
  enum beit_status st = beit_tokenizer_evaluate(tok, NULL, o->data, o->limit, 2, o->grid,
                                                o->grid_images, NULL, &ev, err);
  if (!st)
    fprintf(o->out, "{\"images\": %zu, \"mae\": %.5f, \"mse\": %.6f, \"codes_used\": %zu, "
            "\"codes_frac\": %.4f, \"perplexity\": %.1f, \"seconds\": %.2f%s%s%s}\n",
            ev.images, ev.mae, ev.mse, ev.codes_used, ev.codes_frac, ev.perplexity, ev.seconds,
            o->grid ? ", \"grid\": \"" : "", o->grid ? o->grid : "", o->grid ? "\"" : "");
  return st;
}

enum beit_status beit_tokenizer_io_run(const struct beit_tokenizer_io_options *o,
                                       struct beit_error *err)
{
  struct beit_tokenizer *tok = NULL;
  enum beit_status st = load(&tok, o, err);
  if (!st)
    st = o->recon ? recon(tok, o, err) : encode(tok, o, err);
  beit_tokenizer_free(tok);
  return st;
}
