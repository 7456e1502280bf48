/* beit eval: metrics of a classifier folder on a dataset folder (include/beit/mim.h
 * beit_eval_model, mim/eval_model.c), its images preprocessed as the folder says
 * (beit_data_preprocess_model), like predict and serve. */
#include <float.h>
#include <getopt.h>
#include <stdio.h>

#include "beit/distributed.h"
#include "beit/mim.h"
#include "cli.h"

static const char usage_text[] =
    "usage: beit eval --model DIR --data DIR [--json FILE] [--predictions FILE] [--batch N]\n"
    "                 [--threshold P] [--resize center_crop|direct] [--crop-pct F]\n"
    "                 [--norm inception|imagenet] [--workers N] [--rows N]\n"
    "                 [--precision auto|fp32|bf16]\n"
    "\n"
    "Evaluates a BeitForImageClassification folder (beit finetune's checkpoint-<step>, an HF\n"
    "folder) on a dataset folder (beit pack), each image preprocessed as the model folder's\n"
    "preprocessor_config.json says (fine-tuning writes its recipe's eval transform there) -- the\n"
    "pixels beit predict and beit serve compute -- or, without that file, as they do: direct\n"
    "resize to the model's size, bicubic, mean = std = 0.5. --resize, --crop-pct and --norm\n"
    "override the file. The preprocessing used is printed first.\n"
    "Multi-class: top-1 / top-5 accuracy, log loss, per-class precision, recall and F1, confusion\n"
    "matrix. Multi-label: mAP and per-class AP, micro and macro F1 at the threshold, subset\n"
    "accuracy, log loss. Ties go to the lower class index; undefined ratios (a class never\n"
    "predicted, a class with no positives) print '-' and are null in JSON, and macro averages\n"
    "are over the classes where they are defined. Under mpirun every rank evaluates a slice.\n"
    "\n"
    "  --model DIR       classifier folder (config.json + model.safetensors\n"
    "                    [+ preprocessor_config.json])\n"
    "  --data DIR        dataset folder; its classes must be the model's\n"
    "  --json FILE       also write the full report (per class, confusion matrix) as JSON\n"
    "  --predictions FILE  one JSON line per image in dataset order: {\"index\": i, \"probs\":\n"
    "                    [...], \"labels\": [...]}, every label in the model's order (as beit\n"
    "                    predict); one rank only\n"
    "  --batch N         images per forward (default 64)\n"
    "  --threshold P     multi-label decision threshold on the probability (default 0.5)\n"
    "  --resize MODE     overrides the model's resize and crop: center_crop: shorter side to\n"
    "                    size/crop_pct, centre crop (unilm); direct: resize to size x size\n"
    "  --crop-pct F      centre crop fraction (default 0.875; implies center_crop unless\n"
    "                    --resize direct)\n"
    "  --norm NAME       overrides the model's mean/std: inception: mean = std = 0.5;\n"
    "                    imagenet: ImageNet mean/std\n"
    "  --workers N       loader threads (default 2)\n"
    "  --rows N          per-class rows in the table (default 50; more classes: lowest F1)\n"
    "  --precision P     matrix products: bf16 (bfloat16 operands, float32 accumulation), fp32,\n"
    "                    or auto (the default: bf16 where the CPU has AMX, else fp32)\n";

int beit_cmd_eval(int argc, char **argv)
{
  static const struct option opts[] = {
      BEIT_CLI_ARG("model", 'm'), BEIT_CLI_ARG("data", 'd'), BEIT_CLI_ARG("json", 'j'),
      BEIT_CLI_ARG("predictions", 'O'), BEIT_CLI_ARG("batch", 'b'), BEIT_CLI_ARG("threshold", 't'),
      BEIT_CLI_ARG("resize", 'r'), BEIT_CLI_ARG("crop-pct", 'p'), BEIT_CLI_ARG("norm", 'n'),
      BEIT_CLI_ARG("workers", 'w'), BEIT_CLI_ARG("rows", 'R'), BEIT_CLI_ARG("precision", 'P'),
      BEIT_CLI_END};
  struct beit_eval_model_options o = {.resize = -1, .imagenet = -1, .out = stdout};
  enum beit_precision requested = BEIT_PRECISION_AUTO;
  int c, rc = BEIT_CLI_GO_ON, direct = 0;
  beit_eval_defaults(&o.eval);
  double batch = (double)o.eval.batch, workers = o.eval.num_workers, rows = 50;
  optind = 1;
  while (beit_cli_next(&c, argc, argv, opts, "eval", usage_text, &rc)) {
    switch (c) {
    case 'm': o.model_dir = optarg; break;
    case 'd': o.eval.data = optarg; break;
    case 'j': o.json = optarg; break;
    case 'O': o.predictions = optarg; break;
    case 'b':
      rc = beit_cli_number("eval", optarg, 1, 1, 65536, &batch, "--batch: '%s' is not in "
                           "1..65536", optarg);
      break;
    case 't':
      rc = beit_cli_number("eval", optarg, 0, 0, 1, &o.eval.threshold, "--threshold: '%s' is "
                           "not in [0, 1]", optarg);
      break;
    case 'r':
      rc = beit_cli_choice("eval", "resize", optarg, "center_crop", "direct", &direct);
      o.resize = direct ? BEIT_DATA_EVAL_DIRECT : BEIT_DATA_EVAL_CENTER_CROP;
      break;
    case 'p':
      rc = beit_cli_number("eval", optarg, 0, DBL_TRUE_MIN, 1, &o.crop_pct, "--crop-pct: '%s' "
                           "is not in (0, 1]", optarg);
      break;
    case 'n':
      rc = beit_cli_choice("eval", "norm", optarg, "inception", "imagenet", &o.imagenet);
      break;
    case 'w':
      rc = beit_cli_number("eval", optarg, 1, 1, 256, &workers, "--workers: '%s' is not in "
                           "1..256", optarg);
      break;
    case 'R':
      rc = beit_cli_number("eval", optarg, 1, 0, BEIT_CLI_INT_MAX, &rows, "--rows: '%s' is not a "
                           "count", optarg);
      break;
    case 'P': rc = beit_cli_parse_precision("eval", optarg, &requested); break;
    }
  }
  if (rc != BEIT_CLI_GO_ON)
    return rc;
  o.eval.batch = (size_t)batch;
  o.eval.num_workers = (int)workers;
  o.rows = (size_t)rows;
  if (!o.model_dir || !o.eval.data || optind != argc)
    return beit_cli_usage_error("eval", "--model and --data are required");

  struct beit_error err = {0};
  struct beit_dist *dist = beit_cli_dist_init("eval", &argc, &argv);
  o.log = beit_dist_is_root(dist) ? stderr : NULL;
  enum beit_status st = beit_cli_resolve_precision("eval", requested, o.log, &o.precision, &err);
  if (!st)
    st = beit_eval_model(&o, dist, &err);
  return beit_cli_dist_end("eval", dist, st, &err);
}
