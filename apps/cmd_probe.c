/* beit probe: linear probing of frozen features (mim/probe.h): beit_probe_run, then on rank 0
 * beit_probe_report (mim/probe_report.c). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "beit/distributed.h"
#include "beit/mim.h"
#include "cli.h"

#define MAX_BLOCKS 256

static const char usage_text[] =
    "usage: beit probe --model DIR --data DIR --eval-data DIR [--block K] [--config RECIPE]\n"
    "                  [--batch N] [--json FILE] [--precision auto|fp32|bf16]\n"
    "                  [--set key=value]...\n"
    "\n"
    "Linear probing (BEiT paper, section 3.3 / table 9): the encoder of DIR is frozen; the output\n"
    "of block K (1..L; every block with --block 0), averaged over the patch tokens, is\n"
    "standardised and fed to a linear classifier trained with AdamW (cosine lr to 0). Features\n"
    "are computed once with the eval transform. Prints train and held-out top-1 per block.\n"
    "\n"
    "  --model DIR       checkpoint or model folder (pretraining, export, HF, timm)\n"
    "  --data DIR        training dataset (multi-class)\n"
    "  --eval-data DIR   held-out dataset\n"
    "  --block K         block to probe (default: every block; the paper's best are 9 of 12 for\n"
    "                    base and 14 of 24 for large)\n"
    "  --config FILE     recipe whose probe.* and data.* keys apply (optional); a path or the\n"
    "                    NAME of a shipped one, as for beit finetune\n"
    "  --batch N         images per forward (default 64)\n"
    "  --json FILE       write the results as JSON\n"
    "  --precision P     matrix products of the frozen encoder: bf16, fp32, or auto (the\n"
    "                    default: bf16 where the CPU has AMX, else fp32); = --set precision=P.\n"
    "                    The linear classifiers train in fp32.\n"
    "  --set KEY=VALUE   e.g. --set probe.epochs=100 --set probe.lr=4e-3 --set probe.pool=cls_mean\n";

int beit_cmd_probe(int argc, char **argv)
{
  static const struct option opts[] = {
      BEIT_CLI_ARG("model", 'm'), BEIT_CLI_ARG("data", 'd'), BEIT_CLI_ARG("eval-data", 'e'),
      BEIT_CLI_ARG("block", 'k'), BEIT_CLI_ARG("config", 'c'), BEIT_CLI_ARG("batch", 'b'),
      BEIT_CLI_ARG("json", 'j'), BEIT_CLI_ARG("set", 's'), BEIT_CLI_ARG("precision", 'p'),
      BEIT_CLI_END};
  struct beit_probe_options o = {0};
  const char *recipe_path = NULL, *json = NULL;
  struct beit_cli_sets sets = {0};
  int c, rc = BEIT_CLI_GO_ON;
  double v = 64;
  optind = 1;
  while (beit_cli_next(&c, argc, argv, opts, "probe", usage_text, &rc)) {
    switch (c) {
    case 'm': o.model = optarg; break;
    case 'd': o.train = optarg; break;
    case 'e': o.eval = optarg; break;
    case 'k':
      rc = beit_cli_set_key(&sets, "probe", "probe.block", optarg) ? BEIT_EXIT_USAGE : rc;
      break;
    case 'c': recipe_path = optarg; break;
    case 'b':
      rc = beit_cli_number("probe", optarg, 1, 1, 65536, &v, "--batch: '%s' is not in 1..65536",
                           optarg);
      break;
    case 'j': json = optarg; break;
    case 's': rc = beit_cli_set(&sets, "probe", optarg) ? BEIT_EXIT_USAGE : rc; break;
    case 'p': rc = beit_cli_set_precision(&sets, "probe", optarg) ? BEIT_EXIT_USAGE : rc; break;
    }
  }
  if (rc != BEIT_CLI_GO_ON)
    return rc;
  o.batch = (size_t)v;
  if (!o.model || !o.train || !o.eval || optind != argc)
    return beit_cli_usage_error("probe", "--model, --data and --eval-data are required");
  struct beit_error err = {0};
  char recipe[4200];
  if (recipe_path)
    o.recipe = beit_cli_config_path(recipe_path, "recipes", recipe, sizeof recipe);
  o.sets = sets.items, o.nsets = sets.count;

  struct beit_probe_result res[MAX_BLOCKS];
  struct beit_probe_setup setup;
  size_t n = 0;
  struct beit_dist *dist = beit_cli_dist_init("probe", &argc, &argv);
  o.log = beit_dist_is_root(dist) ? stderr : NULL;
  enum beit_status st = beit_probe_run(&o, dist, res, MAX_BLOCKS, &n, &setup, &err);
  if (!st && beit_dist_is_root(dist))
    st = beit_probe_report(o.model, &setup, res, n, stdout, json, &err);
  return beit_cli_dist_end("probe", dist, st, &err);
}
