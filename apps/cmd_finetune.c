/* beit finetune: fine-tune a BEiT encoder as a classifier (mim/finetune.h), one rank or many. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "beit/distributed.h"
#include "cli.h"


static const char usage_text[] =
    "usage: beit finetune --config RECIPE.json --out DIR [--init DIR] [--data DIR]\n"
    "                     [--eval-data DIR] [--task multiclass|multilabel]\n"
    "                     [--mixup ALPHA] [--cutmix ALPHA] [--aa SPEC] [--reprob P]\n"
    "                     [--precision auto|fp32|bf16] [--resume | --overwrite]\n"
    "                     [--dist-timeout S] [--set key=value]...\n"
    "\n"
    "Fine-tunes a BEiT encoder as an image classifier on a dataset folder (beit pack).\n"
    "--init takes our pretraining checkpoint (OUT/checkpoint-<step>), an exported encoder\n"
    "(beit export), an HF folder (config.json + model.safetensors) or a timm folder / .safetensors\n"
    "file with timm names. The MIM head is dropped, a shared relative position bias is copied into\n"
    "every layer and resized when image_size changes (unilm's geometric interpolation), and a new\n"
    "head (mean pooling + LayerNorm, init scale 0.001) is trained with layer-wise lr decay, drop\n"
    "path and label smoothing, on RandomResizedCrop + flip + RandAugment + RandomErasing views\n"
    "(BEiT's defaults). Without --init the recipe's model config starts from random init.\n"
    "Writes OUT/checkpoint-<step>/ (a BeitForImageClassification folder: beit eval, beit export\n"
    "and HF load it; its preprocessor_config.json says the recipe's eval transform --\n"
    "data.eval_resize, data.crop_pct, bicubic, data.norm -- which beit eval, predict and serve\n"
    "then use), OUT/metrics.jsonl and OUT/eval.json. An OUT that already holds a run is\n"
    "refused unless --resume (continue from its newest checkpoint) or --overwrite (start again)\n"
    "is given; SIGINT/SIGTERM write a final checkpoint. Under mpirun/srun every rank trains on\n"
    "its slice of each global batch.\n"
    "\n"
    "  --config FILE     recipe (configs/recipes/finetune_*.json), or the NAME of a shipped\n"
    "                    one (finetune_fashion_mnist: share/beit/configs/recipes/NAME.json beside\n"
    "                    an installed beit, else configs/recipes/ of the source tree). Paths in\n"
    "                    a recipe are relative to it (then to the current folder, for recipes\n"
    "                    written for the repository root); those of options to the current folder\n"
    "  --init DIR        initial weights (else random init from the recipe's 'model')\n"
    "  --data DIR        training dataset (else data.train)\n"
    "  --eval-data DIR   held-out dataset (else data.eval)\n"
    "  --out DIR         output folder\n"
    "  --task T          multiclass (softmax cross-entropy) or multilabel (sigmoid BCE);\n"
    "                    default: the dataset's\n"
    "  --mixup ALPHA     Mixup Beta(alpha, alpha) (= --set mixup.mixup_alpha=ALPHA)\n"
    "  --cutmix ALPHA    CutMix (= --set mixup.cutmix_alpha=ALPHA)\n"
    "  --aa SPEC         timm RandAugment, e.g. rand-m9-mstd0.5-inc1 (the default); \"\" = off\n"
    "                    (= --set data.rand_augment=SPEC)\n"
    "  --reprob P        RandomErasing probability, 0.25 by default (= --set data.reprob=P)\n"
    "  --precision P     matrix products of the encoder: bf16 (bfloat16 operands, float32\n"
    "                    accumulation, weights, gradients and optimizer state), fp32, or auto\n"
    "                    (the default: bf16 where the CPU has AMX, else fp32); = --set\n"
    "                    precision=P\n"
    "  --resume          continue from the newest checkpoint in --out\n"
    "  --overwrite       start again at step 0 in an --out that holds a previous run: its files\n"
    "                    (metrics.jsonl, checkpoint-*, eval.json, train-fraction-*, ...) are\n"
    "                    moved into OUT/previous-<UTC time>/, so the new metrics.jsonl holds\n"
    "                    only this run\n"
    "  --dist-timeout S  seconds a collective (gradient allreduce, metrics, barrier, broadcast)\n"
    "                    may wait for another rank: past it the waiting ranks end the job (exit\n"
    "                    1, MPI_Abort) naming the ranks that do not answer, with host and pid;\n"
    "                    the last checkpoint is whole and --resume continues. Default 600, 0 =\n"
    "                    no deadline; = --set distributed.timeout_s=S\n"
    "  --set KEY=VALUE   override a recipe key, e.g. --set data.fraction=0.01\n";

int beit_cmd_finetune(int argc, char **argv)
{
  static const struct option opts[] = {
      BEIT_CLI_TRAINING_OPTIONS, BEIT_CLI_ARG("init", 'i'), BEIT_CLI_ARG("task", 't'),
      BEIT_CLI_ARG("mixup", 'm'), BEIT_CLI_ARG("cutmix", 'x'), BEIT_CLI_ARG("aa", 'a'),
      BEIT_CLI_ARG("reprob", 'p'), {NULL, 0, NULL, 0}};
  struct beit_cli_training t = {.cmd = "finetune", .usage = usage_text};
  struct beit_finetune_options o = {0};
  int c, rc = BEIT_CLI_GO_ON;
  optind = 1;
  while (beit_cli_next(&c, argc, argv, opts, t.cmd, t.usage, &rc)) {
    if (beit_cli_training_option(&t, c, optarg, &rc))
      continue;
    const char *key = NULL; /* a shortcut for --set key=value */
    switch (c) {
    case 'i': o.init = optarg; break;
    case 't':
      rc = beit_cli_choice("finetune", "task", optarg, "multiclass", "multilabel", &(int){0});
      key = rc == BEIT_CLI_GO_ON ? "task" : NULL;
      break;
    case 'm': key = "mixup.mixup_alpha"; break;
    case 'x': key = "mixup.cutmix_alpha"; break;
    case 'a': key = "data.rand_augment"; break;
    case 'p': key = "data.reprob"; break;
    }
    if (key && beit_cli_set_key(&t.sets, "finetune", key, optarg))
      rc = BEIT_EXIT_USAGE;
  }
  struct beit_dist *dist = beit_cli_training_start(&t, &rc, &argc, &argv, "recipes");
  if (!dist)
    return rc;
  struct beit_error err = {0};
  struct beit_finetune_summary sum;
  o.args = t.args;
  enum beit_status st = beit_finetune_run(&o, dist, &sum, &err);
  if (!st && beit_dist_is_root(dist)) {
    char detail[64];
    snprintf(detail, sizeof detail, " on %zu training images", sum.train_samples);
    if (beit_cli_training_print_done("fine-tuning", sum.steps, sum.steps_run, sum.seconds, detail))
      printf("  training loss      %.4f -> %.4f (accuracy %.4f)\n", sum.first_loss, sum.last_loss,
             sum.last_acc);
    if (sum.evaluated && !sum.multilabel)
      printf("  held-out           top-1 %.4f, top-5 %.4f, log loss %.4f over %.0f images\n",
             sum.eval_top1, sum.eval_topk, sum.eval_loss, sum.eval_samples);
    else if (sum.evaluated)
      printf("  held-out           mAP %.4f, micro F1 %.4f, log loss %.4f over %.0f images\n",
             sum.eval_map, sum.eval_micro_f1, sum.eval_loss, sum.eval_samples);
    beit_cli_training_print_end(sum.skipped_records, sum.corrupt_records, sum.last_checkpoint);
  }
  return beit_cli_dist_end("finetune", dist, st, &err);
}
