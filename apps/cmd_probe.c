/* beit probe: linear probing of frozen features (mim/probe.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "beit/distributed.h"
#include "cli.h"
#include "config_table.h"
#include "finetune.h"
#include "probe.h"

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
  static const struct option opts[] = {{"model", required_argument, NULL, 'm'},
                                       {"data", required_argument, NULL, 'd'},
                                       {"eval-data", required_argument, NULL, 'e'},
                                       {"block", required_argument, NULL, 'k'},
                                       {"config", required_argument, NULL, 'c'},
                                       {"batch", required_argument, NULL, 'b'},
                                       {"json", required_argument, NULL, 'j'},
                                       {"set", required_argument, NULL, 's'},
                                       {"precision", required_argument, NULL, 'p'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  struct beit_probe_options o = {0};
  const char *recipe_path = NULL, *json = NULL;
  struct beit_cli_sets sets = {0};
  int c, rc = 0;
  char *end;
  o.batch = 64;
  optind = 1;
  while (!rc && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'm': o.model = optarg; break;
    case 'd': o.train = optarg; break;
    case 'e': o.eval = optarg; break;
    case 'k': rc = beit_cli_set_key(&sets, "probe", "probe.block", optarg); break;
    case 'c': recipe_path = optarg; break;
    case 'b':
      o.batch = (size_t)strtoul(optarg, &end, 10);
      if (*end || o.batch == 0 || o.batch > 65536)
        return beit_cli_usage_error("probe", "--batch: '%s' is not in 1..65536", optarg);
      break;
    case 'j': json = optarg; break;
    case 's': rc = beit_cli_set(&sets, "probe", optarg); break;
    case 'p': rc = beit_cli_set_precision(&sets, "probe", optarg); break;
    case 'h': fputs(usage_text, stdout); return BEIT_EXIT_OK;
    default: return beit_cli_usage_error("probe", "unknown option");
    }
  }
  if (rc)
    return rc;
  if (!o.model || !o.train || !o.eval || optind != argc)
    return beit_cli_usage_error("probe", "--model, --data and --eval-data are required");
  struct beit_error err = {0};
  struct beit_recipe r;
  beit_finetune_recipe_defaults(&r);
  char recipe[4200];
  if (recipe_path)
    recipe_path = beit_cli_config_path(recipe_path, "recipes", recipe, sizeof recipe);
  if (recipe_path && beit_recipe_load(&r, recipe_path, &err))
    return beit_cli_fail("probe", &err);
  for (int i = 0; i < sets.count; i++)
    if (beit_recipe_override(&r, sets.items[i], &err))
      return beit_cli_fail("probe", &err);
  o.recipe = &r;

  struct beit_probe_result res[MAX_BLOCKS];
  size_t n = 0;
  struct beit_dist *dist = beit_cli_dist_init("probe", &argc, &argv);
  o.log = beit_dist_is_root(dist) ? stderr : NULL;
  enum beit_status st = beit_probe_run(&o, dist, res, MAX_BLOCKS, &n, &err);
  if (!st && beit_dist_is_root(dist)) {
    printf("linear probe of %s (%s features, %g epochs, lr %g, wd %g)\n", o.model, r.probe.pool,
           r.probe.epochs, r.probe.lr, r.probe.weight_decay);
    printf("  %5s %10s %10s %10s\n", "block", "train", "held-out", "loss");
    for (size_t i = 0; i < n; i++)
      printf("  %5ld %10.4f %10.4f %10.4f\n", res[i].block, res[i].train_acc, res[i].eval_acc,
             res[i].eval_loss);
    if (json) {
      cJSON *j = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(j, "blocks");
      cJSON_AddStringToObject(j, "model", o.model);
      cJSON_AddStringToObject(j, "pool", r.probe.pool);
      for (size_t i = 0; i < n && arr; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "block", (double)res[i].block);
        cJSON_AddNumberToObject(e, "train_top1", res[i].train_acc);
        cJSON_AddNumberToObject(e, "eval_top1", res[i].eval_acc);
        cJSON_AddNumberToObject(e, "eval_loss", res[i].eval_loss);
        cJSON_AddItemToArray(arr, e);
      }
      st = beit_json_write_file(json, j, &err);
      cJSON_Delete(j);
    }
  }
  return beit_cli_dist_end("probe", dist, st, &err);
}
