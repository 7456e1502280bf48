/* The raw tensor door behind `beit run`: pixel_values (B, C, H, W) [and bool_masked_pos (B, N)]
 * from a safetensors file through one forward of a model folder, and the outputs as HF names
 * them back into a safetensors file: last_hidden_state (B, T, D), logits -- MIM (B, N, vocab)
 * for every patch, classifier (B, labels) -- and pooler_output (B, D) for pooled
 * architectures. Tests and tools drive the model through it. */
#include <stdlib.h>

#include "encoder.h"
#include "safetensors.h"

/* pixel_values and the optional mask from an opened input file. */
static enum beit_status read_inputs(const struct beit_safetensors *in, const struct beit_model *m,
                                    float **pixels, uint8_t **mask, size_t *batch,
                                    struct beit_error *err)
{
  const struct beit_st_tensor *pv = beit_safetensors_find(in, "pixel_values");
  if (!pv)
    return beit_error_set(err, BEIT_STATUS_MISSING, "%s: no tensor 'pixel_values'",
                          beit_safetensors_path(in));
  size_t B = pv->ndim == 4 ? pv->shape[0] : 0, H = (size_t)m->cfg.image_size;
  size_t shape[4] = {B, m->C, H, H};
  if (B == 0)
    return beit_error_set(err, BEIT_STATUS_SHAPE, "%s: 'pixel_values' must be (B, %zu, %zu, %zu)",
                          beit_safetensors_path(in), m->C, H, H);
  *batch = B;
  if (!(*pixels = malloc(B * m->C * H * H * sizeof(float))))
    return beit_error_set(err, BEIT_STATUS_NOMEM, "pixel_values: out of memory");
  enum beit_status st = beit_safetensors_read_f32(in, "pixel_values", *pixels, 4, shape, err);
  if (st || !beit_safetensors_find(in, "bool_masked_pos"))
    return st;
  size_t mshape[2] = {B, m->N};
  int64_t *raw = malloc(B * m->N * sizeof *raw);
  *mask = malloc(B * m->N);
  if (!raw || !*mask) {
    free(raw);
    return beit_error_set(err, BEIT_STATUS_NOMEM, "bool_masked_pos: out of memory");
  }
  if (!(st = beit_safetensors_read_i64(in, "bool_masked_pos", raw, 2, mshape, err)))
    for (size_t i = 0; i < B * m->N; i++)
      (*mask)[i] = raw[i] != 0;
  free(raw);
  return st;
}

static enum beit_status write_outputs(const char *path, const struct beit_model *m,
                                      struct beit_error *err)
{
  struct beit_st_entry out[3];
  size_t n = 0, B = m->B;
  out[n] = (struct beit_st_entry){"last_hidden_state", BEIT_DTYPE_F32, 3, {B, m->T, m->D},
                                  m->a.hidden};
  n++;
  if (m->arch == BEIT_ARCH_MIM)
    out[n++] = (struct beit_st_entry){"logits", BEIT_DTYPE_F32, 3, {B, m->N, m->out_dim},
                                      m->a.logits};
  else if (m->arch == BEIT_ARCH_CLASSIFIER)
    out[n++] = (struct beit_st_entry){"logits", BEIT_DTYPE_F32, 2, {B, m->out_dim},
                                      m->a.logits};
  if (m->features)
    out[n++] = (struct beit_st_entry){"pooler_output", BEIT_DTYPE_F32, 2, {B, m->D},
                                      m->features};
  return beit_safetensors_write(path, out, n, NULL, err);
}

enum beit_status beit_model_run_file(const char *model_dir, const char *input, const char *output,
                                     enum beit_precision precision, struct beit_error *err)
{
  struct beit_safetensors *in = NULL;
  struct beit_model *m = NULL;
  float *pixels = NULL;
  uint8_t *mask = NULL;
  size_t B = 0;
  enum beit_status st;
  /* The batch size comes from the input: re-plan the activations once it is known. */
  if (!(st = beit_safetensors_open(&in, input, err)) &&
      !(st = beit_model_load(&m, model_dir, 1, err)) &&
      !(st = read_inputs(in, m, &pixels, &mask, &B, err)) &&
      !(st = beit_model_set_inference(m, err)) && !(st = beit_model_replan(m, B, err)) &&
      !(st = beit_model_set_precision(m, precision, err))) {
    m->head_all_tokens = 1;
    if (!(st = beit_model_forward(m, pixels, mask, NULL, B, err)))
      st = write_outputs(output, m, err);
  }
  beit_safetensors_close(in);
  beit_model_free(m);
  free(pixels);
  free(mask);
  return st;
}
