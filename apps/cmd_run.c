/* beit run: the raw tensor door (beit_model_run_file, encoder/run_file.c). pixel_values
 * (B, C, H, W) [and bool_masked_pos (B, N)] in, logits and hidden states out, as safetensors;
 * tests and tools drive the model through it. */
#include <getopt.h>
#include <stdio.h>

#include "beit/model.h"
#include "cli.h"

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

int beit_cmd_run(int argc, char **argv)
{
  static const struct option opts[] = {
      BEIT_CLI_ARG("model", 'm'), BEIT_CLI_ARG("input", 'i'), BEIT_CLI_ARG("output", 'o'),
      BEIT_CLI_ARG("precision", 'p'), BEIT_CLI_END};
  const char *model_dir = NULL, *input = NULL, *output = NULL;
  enum beit_precision requested = BEIT_PRECISION_AUTO, precision;
  int c, rc = BEIT_CLI_GO_ON;
  optind = 1;
  while (beit_cli_next(&c, argc, argv, opts, "run", usage_text, &rc)) {
    switch (c) {
    case 'm': model_dir = optarg; break;
    case 'i': input = optarg; break;
    case 'o': output = optarg; break;
    case 'p':
      rc = beit_cli_parse_precision("run", optarg, &requested);
      break;
    }
  }
  if (rc != BEIT_CLI_GO_ON)
    return rc;
  if (!model_dir || !input || !output || optind != argc)
    return beit_cli_usage_error("run", "--model, --input and --output are required");
  struct beit_error err = {0};
  if (beit_cli_resolve_precision("run", requested, stderr, &precision, &err) ||
      beit_model_run_file(model_dir, input, output, precision, &err))
    return beit_cli_fail("run", &err);
  return BEIT_EXIT_OK;
}
