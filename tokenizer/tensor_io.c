/* Token grids in and out of safetensors files, for `beit tokenizer encode --input` and `beit
 * tokenizer recon --input` (include/beit/tokenizer.h beit_tokenizer_encode_file,
 * beit_tokenizer_decode_file). */
#include <stdint.h>
#include <stdlib.h>

#include "beit/tokenizer.h"
#include "safetensors.h"

/* The tokenizer's sizes, and input opened with tensor `name` looked up (*t NULL when absent). */
struct dims {
  size_t gh, gw, s, C;
};
static enum beit_status open_input(struct beit_tokenizer *tok, const char *input,
                                   const char *name, struct dims *d,
                                   struct beit_safetensors **in, const struct beit_st_tensor **t,
                                   struct beit_error *err)
{
  const struct beit_tokenizer_config *cfg = beit_tokenizer_get_config(tok);
  d->s = (size_t)cfg->image_size;
  d->C = (size_t)cfg->input_channels;
  beit_tokenizer_grid(tok, &d->gh, &d->gw);
  enum beit_status st = beit_safetensors_open(in, input, err);
  *t = st ? NULL : beit_safetensors_find(*in, name);
  return st;
}

/* 'pixel_values' (B, C, s, s) in [0, 1] -> tokens. */
enum beit_status beit_tokenizer_encode_file(struct beit_tokenizer *tok, const char *input,
                                            const char *output, struct beit_error *err)
{
  struct dims d;
  struct beit_safetensors *in = NULL;
  const struct beit_st_tensor *pv;
  enum beit_status st = open_input(tok, input, "pixel_values", &d, &in, &pv, err);
  if (st)
    return st;
  const size_t gh = d.gh, gw = d.gw, s = d.s, C = d.C;
  float *x = NULL;
  int32_t *tokens = NULL;
  if (!pv || pv->ndim != 4 || pv->shape[1] != C || pv->shape[2] != s || pv->shape[3] != s) {
    st = beit_error_set(err, pv ? BEIT_STATUS_SHAPE : BEIT_STATUS_MISSING,
                        "%s: expected 'pixel_values' of shape (B, %zu, %zu, %zu)", input, C, s,
                        s);
    goto done;
  }
  const size_t B = pv->shape[0];
  x = malloc(B * C * s * s * sizeof *x);
  tokens = malloc(B * gh * gw * sizeof *tokens);
  if (!x || !tokens) {
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", input);
    goto done;
  }
  if ((st = beit_safetensors_read_f32(in, "pixel_values", x, 4, pv->shape, err)))
    goto done;
  for (size_t i = 0; i < B * C * s * s; i++)
    x[i] = 0.8f * x[i] + 0.1f; /* DALL-E map_pixels */
  if ((st = beit_tokenizer_encode(tok, tokens, NULL, x, B, err)))
    goto done;
  struct beit_st_entry e = {"tokens", BEIT_DTYPE_I32, 3, {B, gh, gw}, tokens};
  st = beit_safetensors_write(output, &e, 1, NULL, err);
done:
  free(x);
  free(tokens);
  beit_safetensors_close(in);
  return st;
}

/* 'tokens' -> 'pixel_values' in [0, 1]. */
enum beit_status beit_tokenizer_decode_file(struct beit_tokenizer *tok, const char *input,
                                            const char *output, struct beit_error *err)
{
  struct dims d;
  struct beit_safetensors *in = NULL;
  const struct beit_st_tensor *t;
  enum beit_status st = open_input(tok, input, "tokens", &d, &in, &t, err);
  if (st)
    return st;
  const size_t gh = d.gh, gw = d.gw, s = d.s, C = d.C;
  int64_t *raw = NULL;
  int32_t *tokens = NULL;
  float *y = NULL;
  const size_t P = gh * gw;
  if (!t || t->ndim < 2 || t->numel % P || t->numel / t->shape[0] != P) {
    st = beit_error_set(err, t ? BEIT_STATUS_SHAPE : BEIT_STATUS_MISSING,
                        "%s: expected 'tokens' of shape (B, %zu, %zu) or (B, %zu)", input, gh,
                        gw, P);
    goto done;
  }
  const size_t B = t->shape[0];
  raw = malloc(B * P * sizeof *raw);
  tokens = malloc(B * P * sizeof *tokens);
  y = malloc(B * C * s * s * sizeof *y);
  if (!raw || !tokens || !y) {
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", input);
    goto done;
  }
  if ((st = beit_safetensors_read_i64(in, "tokens", raw, t->ndim, t->shape, err)))
    goto done;
  for (size_t i = 0; i < B * P; i++)
    tokens[i] = raw[i] < 0 || raw[i] > INT32_MAX ? -1 : (int32_t)raw[i];
  if ((st = beit_tokenizer_decode(tok, y, tokens, B, err)))
    goto done;
  struct beit_st_entry e = {"pixel_values", BEIT_DTYPE_F32, 4, {B, C, s, s}, y};
  st = beit_safetensors_write(output, &e, 1, NULL, err);
done:
  free(raw);
  free(tokens);
  free(y);
  beit_safetensors_close(in);
  return st;
}
