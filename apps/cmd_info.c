/* beit info: describe a model folder or a model config without running it, and this build and
 * machine (version, OpenMP runtime, matrix-product backends, precision), as aligned text or, with
 * --json, as one JSON object whose key names are part of the interface (listed in usage_text;
 * tests/test_info_e2e.py). The report is encoder/info.c's beit_model_info. */
#include <getopt.h>
#include <stdio.h>

#include "beit/model.h"
#include "cli.h"

static const struct option opts[] = {
    BEIT_CLI_ARG("batch", 'b'), BEIT_CLI_ARG("set", 's'), BEIT_CLI_FLAG("json", 'j'),
    BEIT_CLI_END};

static const char usage_text[] =
    "usage: beit info [--json] [--batch B] [--set key=value]... [MODEL_DIR|CONFIG.json]\n"
    "\n"
    "Prints the configuration, the parameter count per group, matmul FLOPs per image, the\n"
    "activation memory planned for a batch of B images (default 1) for training and for\n"
    "inference, the OpenMP threads and spin count this process runs with, the matrix-product\n"
    "backends (oneDNN ISA, OpenBLAS build), the precision --precision auto resolves to here\n"
    "and the version. Without a model: the version, runtime, backends and precision only.\n"
    "\n"
    "  --batch B         batch size of the activation plan (default 1)\n"
    "  --set KEY=VALUE   override a config.json key first, e.g. --set image_size=384\n"
    "  --json            the same facts as one JSON object on stdout; these keys are stable:\n"
    "      version, commit, build        as beit --version\n"
    "      runtime      {omp_threads, gomp_spincount, omp_wait_policy} (null: the default)\n"
    "      backend      the backend line; isa: oneDNN's ISA (\"none\" without oneDNN)\n"
    "      precision    {auto: fp32|bf16, bf16_available: bool}\n"
    "    with a model, also:\n"
    "      model        {config, architecture, multilabel, num_channels, image_size,\n"
    "                    patch_size, patches: [h, w], hidden_size, num_hidden_layers,\n"
    "                    num_attention_heads, intermediate_size, layer_scale_init_value,\n"
    "                    drop_path_rate, use_absolute_position_embeddings,\n"
    "                    use_shared_relative_position_bias, use_relative_position_bias,\n"
    "                    pooling: mean|cls, vocab_size (MIM) or num_labels (classifier)}\n"
    "      parameters   {total, embeddings, blocks, per_block, relative_position_bias,\n"
    "                    heads_norms}\n"
    "      flops_per_image {forward, training}  (FLOPs, not GFLOPs)\n"
    "      memory       {batch, fp32: {training_activation_bytes,\n"
    "                    inference_activation_bytes}, bf16: the same + weight_copy_bytes,\n"
    "                    or null where bf16 cannot run}\n";

int beit_cmd_info(int argc, char **argv)
{
  const char *sets[64];
  int nsets = 0, json = 0;
  long batch = 1;
  int c, rc = BEIT_CLI_GO_ON;
  optind = 1;
  while (beit_cli_next(&c, argc, argv, opts, "info", usage_text, &rc)) {
    switch (c) {
    case 'b':
      if (sscanf(optarg, "%ld", &batch) != 1 || batch < 1)
        return beit_cli_usage_error("info", "--batch: expected a positive integer");
      break;
    case 's':
      if (nsets == 64)
        return beit_cli_usage_error("info", "too many --set options");
      sets[nsets++] = optarg;
      break;
    case 'j':
      json = 1;
      break;
    }
  }
  if (rc != BEIT_CLI_GO_ON)
    return rc;
  if (optind < argc - 1)
    return beit_cli_usage_error("info", "expected at most one MODEL_DIR or CONFIG.json");
  if (optind == argc && nsets)
    return beit_cli_usage_error("info", "--set needs a MODEL_DIR or CONFIG.json");

  struct beit_model_info_options o = {optind == argc - 1 ? argv[optind] : NULL, sets, nsets,
                                      batch, json};
  struct beit_error err = {0};
  return beit_model_info(&o, stdout, &err) ? beit_cli_fail("info", &err) : BEIT_EXIT_OK;
}
