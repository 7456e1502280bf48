/* beit pretrain: masked image modeling pretraining (mim/pretrain.h), one rank or many. */
#include <getopt.h>
#include <stdio.h>

#include "beit/distributed.h"
#include "cli.h"

static const char usage_text[] =
    "usage: beit pretrain --config RECIPE.json --tokenizer DIR --out DIR [--data DIR]\n"
    "                     [--eval-data DIR] [--precision auto|fp32|bf16]\n"
    "                     [--resume | --overwrite] [--dist-timeout S] [--set key=value]...\n"
    "\n"
    "Trains a BEiT encoder by masked image modeling on a dataset folder (beit pack), with\n"
    "targets from a tokenizer folder (beit tokenizer train, or tools/convert_dalle.py).\n"
    "Writes OUT/checkpoint-<step>/ (config.json, model.safetensors, optimizer.safetensors,\n"
    "trainer_state.json) and OUT/metrics.jsonl. An OUT that already holds a run is refused unless\n"
    "--resume (continue from its newest complete checkpoint) or --overwrite (start again) is\n"
    "given. SIGINT/SIGTERM write a final checkpoint before exiting.\n"
    "Under mpirun/srun every rank trains on its slice of each global batch.\n"
    "\n"
    "  --config FILE     recipe (configs/recipes/pretrain_*.json), or the NAME of a shipped\n"
    "                    one (pretrain_fashion_mnist: share/beit/configs/recipes/NAME.json beside\n"
    "                    an installed beit, else configs/recipes/ of the source tree). Paths in\n"
    "                    a recipe are relative to it (then to the current folder, for recipes\n"
    "                    written for the repository root); those of options to the current folder\n"
    "  --data DIR        training dataset (else the recipe's data.train)\n"
    "  --eval-data DIR   held-out dataset for masked-token accuracy (else data.eval)\n"
    "  --tokenizer DIR   visual tokenizer folder\n"
    "  --out DIR         output folder\n"
    "  --precision P     matrix products of the encoder and of the frozen dVAE tokenizer: bf16\n"
    "                    (bfloat16 operands, float32 accumulation, weights, gradients and\n"
    "                    optimizer state), fp32, or auto (the default: bf16 where the CPU has\n"
    "                    AMX, else fp32); = --set precision=P. Resuming under another precision\n"
    "                    works (the master weights are fp32) but is not bit-identical to an\n"
    "                    uninterrupted run.\n"
    "  --resume          continue from the newest checkpoint in --out\n"
    "  --overwrite       start again at step 0 in an --out that holds a previous run: its files\n"
    "                    (metrics.jsonl, checkpoint-*, eval.json, ...) are moved into\n"
    "                    OUT/previous-<UTC time>/, so the new metrics.jsonl holds only this run\n"
    "  --dist-timeout S  seconds a collective (gradient allreduce, metrics, barrier, broadcast)\n"
    "                    may wait for another rank: past it the waiting ranks end the job (exit\n"
    "                    1, MPI_Abort) naming the ranks that do not answer, with host and pid;\n"
    "                    the last checkpoint is whole and --resume continues. Default 600, 0 =\n"
    "                    no deadline; = --set distributed.timeout_s=S\n"
    "  --set KEY=VALUE   override a recipe key, e.g. --set optimizer.lr=5e-4\n";

int beit_cmd_pretrain(int argc, char **argv)
{
  static const struct option opts[] = {
      BEIT_CLI_TRAINING_OPTIONS, BEIT_CLI_ARG("tokenizer", 't'), {NULL, 0, NULL, 0}};
  struct beit_cli_training t = {.cmd = "pretrain", .usage = usage_text};
  struct beit_pretrain_options o = {0};
  int c, rc = BEIT_CLI_GO_ON;
  optind = 1;
  while (beit_cli_next(&c, argc, argv, opts, t.cmd, t.usage, &rc))
    if (!beit_cli_training_option(&t, c, optarg, &rc) && c == 't')
      o.tokenizer = optarg;
  if (rc == BEIT_CLI_GO_ON && !o.tokenizer)
    rc = beit_cli_usage_error("pretrain", "--tokenizer is required");
  struct beit_dist *dist = beit_cli_training_start(&t, &rc, &argc, &argv, "recipes");
  if (!dist)
    return rc;
  o.args = t.args;
  struct beit_error err = {0};
  struct beit_pretrain_summary sum;
  enum beit_status st = beit_pretrain_run(&o, dist, &sum, &err);
  if (!st && beit_dist_is_root(dist)) {
    if (beit_cli_training_print_done("pretraining", sum.steps, sum.steps_run, sum.seconds, ""))
      printf("  training loss      %.4f -> %.4f (masked-token accuracy %.4f)\n", sum.first_loss,
             sum.last_loss, sum.last_mlm_acc);
    if (sum.eval_tokens > 0)
      printf("  held-out           loss %.4f, masked-token accuracy %.4f over %ld tokens "
             "(always the most frequent token: %.4f)\n", sum.eval_loss, sum.eval_mlm_acc,
             sum.eval_tokens, sum.eval_majority_acc);
    beit_cli_training_print_end(sum.skipped_records, sum.corrupt_records, sum.last_checkpoint);
  }
  return beit_cli_dist_end("pretrain", dist, st, &err);
}
