/* beit run: the raw tensor door. pixel_values (B, C, H, W) [and bool_masked_pos (B, N)] in,
 * logits and hidden states out, as safetensors; tests and tools drive the model through it.
 * Outputs follow HF: MIM logits (B, N, vocab) for every patch, classifier logits (B, labels),
 * last_hidden_state (B, T, D), and pooler_output (B, D) for pooled architectures. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "encoder.h"
#include "safetensors.h"

static const char usage_text[] =
    "usage: beit run --model DIR --input X.safetensors --output Y.safetensors\n"
    "                [--precision auto|fp32|bf16]\n"
    "\n"
    "Input tensors: pixel_values (B, C, H, W) F32/F16/BF16, optional bool_masked_pos (B, N)\n"
    "(MIM models). Output tensors: logits, last_hidden_state, pooler_output (when pooled).\n"
    "pixel_values are taken as they are: prepare them as the model folder's\n"
    "preprocessor_config.json says (HF BeitImageProcessor semantics; without the file: direct\n"
    "resize, bicubic, mean = std = 0.5) to get what beit eval, predict and serve compute.\n"
    "\n"
    "  --precision P     matrix products: bf16 (bfloat16 operands, float32 accumulation), fp32\n"
    "                    (for comparisons with a float32 reference), or auto (the default: bf16\n"
    "                    where the CPU has AMX, else fp32)\n";

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

int beit_cmd_run(int argc, char **argv)
{
  static const struct option opts[] = {{"model", required_argument, NULL, 'm'},
                                       {"input", required_argument, NULL, 'i'},
                                       {"output", required_argument, NULL, 'o'},
                                       {"precision", required_argument, NULL, 'p'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const char *model_dir = NULL, *input = NULL, *output = NULL;
  enum beit_precision requested = BEIT_PRECISION_AUTO, precision;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'm': model_dir = optarg; break;
    case 'i': input = optarg; break;
    case 'o': output = optarg; break;
    case 'p':
      if (beit_cli_parse_precision("run", optarg, &requested))
        return BEIT_EXIT_USAGE;
      break;
    case 'h': fputs(usage_text, stdout); return BEIT_EXIT_OK;
    default: return beit_cli_usage_error("run", "unknown option");
    }
  }
  if (!model_dir || !input || !output || optind != argc)
    return beit_cli_usage_error("run", "--model, --input and --output are required");

  struct beit_error err = {0};
  struct beit_safetensors *in = NULL;
  struct beit_model *m = NULL;
  float *pixels = NULL;
  uint8_t *mask = NULL;
  size_t B = 0;
  int rc = BEIT_EXIT_OK;
  /* The batch size comes from the input: re-plan the activations once it is known. */
  if (beit_cli_resolve_precision("run", requested, stderr, &precision, &err) ||
      beit_safetensors_open(&in, input, &err) || beit_model_load(&m, model_dir, 1, &err) ||
      read_inputs(in, m, &pixels, &mask, &B, &err) || beit_model_set_inference(m, &err) ||
      beit_model_replan(m, B, &err) || beit_model_set_precision(m, precision, &err))
    goto fail;
  m->head_all_tokens = 1;
  if (beit_model_forward(m, pixels, mask, NULL, B, &err) || write_outputs(output, m, &err))
    goto fail;
  goto done;
fail:
  rc = beit_cli_fail("run", &err);
done:
  beit_safetensors_close(in);
  beit_model_free(m);
  free(pixels);
  free(mask);
  return rc;
}
