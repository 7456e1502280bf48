/* beit export: the encoder of a checkpoint (alone or with its classifier) as an HF or timm
 * folder, an HF folder with the source's preprocessing: mim/export_model.c's beit_export_model
 * (over include/beit/transfer.h beit_export_encoder and beit_data_preprocess_export). */
#include <getopt.h>
#include <stdio.h>

#include "beit/mim.h"
#include "beit/transfer.h"
#include "cli.h"

static const struct option opts[] = {
    BEIT_CLI_ARG("from", 'f'), BEIT_CLI_ARG("out", 'o'), BEIT_CLI_FLAG("with-head", 'w'),
    BEIT_CLI_ARG("format", 'F'), BEIT_CLI_ARG("pooling", 'p'), BEIT_CLI_ARG("image-size", 'i'),
    BEIT_CLI_FLAG("quiet", 'q'), BEIT_CLI_END};

static const char usage_text[] =
    "usage: beit export --from CHECKPOINT --out DIR [--with-head] [--format hf|timm]\n"
    "                   [--pooling mean|cls] [--image-size N] [--quiet]\n"
    "\n"
    "Writes the encoder of CHECKPOINT (beit pretrain's or beit finetune's checkpoint-<step>, an\n"
    "HF folder, a timm folder or .safetensors) as a folder that HF transformers, timm, beit\n"
    "finetune --init and beit run / predict load:\n"
    "  hf (default): config.json (BeitModel, or BeitForImageClassification with --with-head, with\n"
    "    id2label), model.safetensors with HF names, and the source's preprocessor_config.json\n"
    "    (beit finetune's checkpoints hold their recipe's eval transform there), copied as is, or\n"
    "    with its sizes scaled under --image-size; a source without one gets the preprocessing\n"
    "    predict, serve and eval use for it: direct resize to image_size, bicubic, mean = std =\n"
    "    0.5;\n"
    "  timm: model.safetensors with timm names (qkv, q_bias, gamma_1, fc_norm, head) and a timm\n"
    "    config.json (architecture, model_args, pretrained_cfg) for timm's hub loader.\n"
    "The mask token and MIM head are dropped; a shared relative position bias is copied into\n"
    "every layer (the layout of fine-tuning and of the released HF/timm classifiers).\n"
    "\n"
    "  --from DIR        checkpoint or model folder (or a .safetensors file)\n"
    "  --out DIR         output folder (replaced atomically)\n"
    "  --with-head       keep the classifier (the source must be a classifier)\n"
    "  --format F        hf (default) or timm\n"
    "  --pooling P       mean (mean of patch tokens + pooler LayerNorm) or cls; default: the\n"
    "                    source's, mean for a pretraining checkpoint\n"
    "  --image-size N    export for another resolution (relative position tables resized)\n"
    "  --quiet           no per-tensor notes\n";

int beit_cmd_export(int argc, char **argv)
{
  struct beit_export_options o = {0, 0, -1, 0, stderr};
  const char *from = NULL, *out = NULL;
  int c, rc = BEIT_CLI_GO_ON, cls = 0;
  double image_size = 0;
  optind = 1;
  while (beit_cli_next(&c, argc, argv, opts, "export", usage_text, &rc)) {
    switch (c) {
    case 'f': from = optarg; break;
    case 'o': out = optarg; break;
    case 'w': o.with_head = 1; break;
    case 'F': rc = beit_cli_choice("export", "format", optarg, "hf", "timm", &o.timm); break;
    case 'p':
      rc = beit_cli_choice("export", "pooling", optarg, "mean", "cls", &cls);
      o.pooling = !cls;
      break;
    case 'i':
      rc = beit_cli_number("export", optarg, 1, 1, 8192, &image_size, "--image-size: '%s' is not "
                           "in 1..8192", optarg);
      break;
    case 'q': o.log = NULL; break;
    }
  }
  if (rc != BEIT_CLI_GO_ON)
    return rc;
  o.image_size = (long)image_size;
  if (!from || !out || optind != argc)
    return beit_cli_usage_error("export", "--from and --out are required");
  struct beit_error err = {0};
  if (beit_export_model(from, out, &o, &err))
    return beit_cli_fail("export", &err);
  printf("exported %s -> %s (%s%s)\n", from, out, o.timm ? "timm" : "HF",
         o.with_head ? ", with classifier" : ", encoder");
  return BEIT_EXIT_OK;
}
