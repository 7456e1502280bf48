/* beit tokenizer train | encode | recon: train a dVAE visual tokenizer on a dataset folder, turn
 * images into token grids, and token grids back into images (with the reconstruction error and
 * a PNG grid a person can look at). A DALL-E tokenizer folder comes from tools/convert_dalle.py.
 * The runs are mim/'s beit_tokenizer_train_run and beit_tokenizer_io_run (tokenizer_io.c). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "beit/mim.h"
#include "cli.h"

static const char usage_text[] =
    "usage: beit tokenizer train --config FILE --data DIR --out DIR [options]\n"
    "       beit tokenizer encode --tokenizer DIR (--data DIR [--limit N] | --input X.safetensors)\n"
    "                             --output TOKENS.safetensors [--precision auto|fp32|bf16]\n"
    "       beit tokenizer recon --tokenizer DIR (--data DIR [--limit N] [--grid PNG] |\n"
    "                            --input TOKENS.safetensors --output Y.safetensors)\n"
    "                            [--precision auto|fp32|bf16]\n"
    "\n"
    "train: a DALL-E-family dVAE (Gumbel-softmax relaxation, KL to the uniform prior, logit-Laplace\n"
    "  or MSE reconstruction) on view B of a dataset folder (beit pack). Writes checkpoints,\n"
    "  metrics.jsonl, OUT/tokenizer/ (the folder `beit pretrain --tokenizer` takes), and with\n"
    "  held-out data OUT/recon.png and OUT/eval.json. An OUT that already holds a run is refused\n"
    "  unless --resume or --overwrite is given.\n"
    "  --config FILE      configs/tokenizer/*.json (\"model\" shape + training keys), or the\n"
    "                     NAME of a shipped one (fashion_mnist: share/beit/configs/tokenizer/\n"
    "                     beside an installed beit, else of the source tree); its data.* paths\n"
    "                     are relative to it (then to the current folder)\n"
    "  --data DIR         training dataset (overrides data.train)\n"
    "  --eval-data DIR    held-out dataset (overrides data.eval)\n"
    "  --out DIR          output folder\n"
    "  --resume           continue from the newest checkpoint in --out\n"
    "  --overwrite        start again at step 0 in an --out that holds a previous run: its files\n"
    "                     (metrics.jsonl, checkpoint-*, tokenizer/, recon.png, eval.json, ...)\n"
    "                     are moved into OUT/previous-<UTC time>/, so the new metrics.jsonl\n"
    "                     holds only this run\n"
    "  --set KEY=VALUE    override a config key, e.g. --set model.vocab_size=1024\n"
    "  --dist-timeout S   seconds a collective (gradient allreduce, metrics, barrier, broadcast)\n"
    "                     may wait for another rank: past it the waiting ranks end the job (exit\n"
    "                     1, MPI_Abort) naming the ranks that do not answer, with host and pid;\n"
    "                     the last checkpoint is whole and --resume continues. Default 600, 0 =\n"
    "                     no deadline; = --set distributed.timeout_s=S\n"
    "  --precision P      the convolutions' matrix products: bf16 (bfloat16 operands, float32\n"
    "                     accumulation, weights, gradients and optimizer state), fp32, or auto\n"
    "                     (the default: bf16 where the CPU has AMX, else fp32); = --set\n"
    "                     precision=P. The first line of the run names the precision.\n"
    "encode: token ids (argmax of the encoder's logits), row-major grids.\n"
    "  --data DIR         images of a dataset folder, whole image resized to the tokenizer's\n"
    "                     size; output 'tokens' I32 (N, gh, gw)\n"
    "  --input FILE       'pixel_values' F32 (B, C, s, s) with pixels in [0, 1] (mapped to\n"
    "                     0.8 x + 0.1 here, as DALL-E's map_pixels); output 'tokens'\n"
    "recon: reconstructions of hard tokens.\n"
    "  --data DIR         encode + decode the images, print the mean absolute error (pixels in\n"
    "                     [0, 1]), codes in use and perplexity as JSON; --grid PNG writes\n"
    "                     originals beside reconstructions\n"
    "  --input FILE       'tokens' (B, gh, gw) or (B, gh*gw); output 'pixel_values' F32 in [0, 1]\n"
    "  --limit N          at most N images of --data (default: all)\n"
    "  --grid-images N    images in the grid (default 32)\n"
    "encode and recon:\n"
    "  --precision P      the convolutions' matrix products, as for train (default auto); the\n"
    "                     first line on stderr names it. Tokens are argmaxes: bf16 changes a\n"
    "                     token only where two codes' logits are nearly tied.\n";

static int cmd_train(int argc, char **argv)
{
  static const struct option opts[] = {
      BEIT_CLI_TRAINING_OPTIONS, {NULL, 0, NULL, 0}};
  struct beit_cli_training t = {.cmd = "tokenizer train", .usage = usage_text};
  struct beit_tokenizer_train_options o = {0};
  int c, rc = BEIT_CLI_GO_ON;
  optind = 1;
  while (beit_cli_next(&c, argc, argv, opts, t.cmd, t.usage, &rc))
    beit_cli_training_option(&t, c, optarg, &rc);
  struct beit_dist *dist = beit_cli_training_start(&t, &rc, &argc, &argv, "tokenizer");
  if (!dist)
    return rc;
  o.args = t.args;
  struct beit_tokenizer_train_summary sum;
  struct beit_error err = {0};
  enum beit_status st = beit_tokenizer_train_run(&o, dist, &sum, &err);
  if (st || !beit_dist_is_root(dist))
    return beit_cli_dist_end("tokenizer train", dist, st, &err);
  printf("{\"steps\": %ld, \"train_seconds\": %.1f, \"last_loss\": %.6f, \"tokenizer\": \"%s\"",
         sum.steps, sum.seconds, sum.last_loss, sum.tokenizer_dir);
  if (sum.eval.images)
    printf(", \"eval_images\": %zu, \"eval_mae\": %.5f, \"eval_codes_used\": %zu, "
           "\"eval_codes_frac\": %.4f, \"eval_perplexity\": %.1f, \"grid\": \"%s\"",
           sum.eval.images, sum.eval.mae, sum.eval.codes_used, sum.eval.codes_frac,
           sum.eval.perplexity, sum.grid_png);
  printf("}\n");
  return beit_cli_dist_end("tokenizer train", dist, st, &err);
}

static int parse_io(const char *cmd, int argc, char **argv, struct beit_tokenizer_io_options *o)
{
  static const struct option opts[] = {
      BEIT_CLI_ARG("tokenizer", 't'), BEIT_CLI_ARG("data", 'd'), BEIT_CLI_ARG("input", 'i'),
      BEIT_CLI_ARG("output", 'o'), BEIT_CLI_ARG("grid", 'g'), BEIT_CLI_ARG("limit", 'l'),
      BEIT_CLI_ARG("grid-images", 'n'), BEIT_CLI_ARG("precision", 'p'), BEIT_CLI_END};
  memset(o, 0, sizeof *o);
  o->grid_images = 32;
  o->precision = BEIT_PRECISION_AUTO;
  int c, rc = BEIT_CLI_GO_ON;
  optind = 1;
  while (beit_cli_next(&c, argc, argv, opts, cmd, usage_text, &rc)) {
    switch (c) {
    case 't': o->tokenizer = optarg; break;
    case 'd': o->data = optarg; break;
    case 'i': o->input = optarg; break;
    case 'o': o->output = optarg; break;
    case 'g': o->grid = optarg; break;
    case 'l':
    case 'n': {
      double v = 0;
      rc = beit_cli_number(cmd, optarg, 1, 0, BEIT_CLI_INT_MAX, &v, "--%s takes a non-negative "
                           "integer", c == 'l' ? "limit" : "grid-images");
      *(c == 'l' ? &o->limit : &o->grid_images) = (size_t)v;
      break;
    }
    case 'p':
      rc = beit_cli_parse_precision(cmd, optarg, &o->precision);
      break;
    }
  }
  if (rc != BEIT_CLI_GO_ON)
    return rc;
  if (optind != argc)
    return beit_cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
  if (!o->tokenizer)
    return beit_cli_usage_error(cmd, "--tokenizer is required");
  if (!o->data == !o->input)
    return beit_cli_usage_error(cmd, "give one of --data and --input");
  return BEIT_CLI_GO_ON;
}

/* beit tokenizer encode | recon. */
static int cmd_io(int argc, char **argv, int is_recon)
{
  const char *cmd = is_recon ? "tokenizer recon" : "tokenizer encode";
  struct beit_tokenizer_io_options o;
  int rc = parse_io(cmd, argc, argv, &o);
  if (rc != BEIT_CLI_GO_ON)
    return rc;
  if (!is_recon && !o.output)
    return beit_cli_usage_error(cmd, "--output is required");
  if (is_recon && o.input && !o.output)
    return beit_cli_usage_error(cmd, "--input needs --output");
  o.recon = is_recon;
  o.out = stdout;
  o.log = stderr;
  struct beit_error err = {0};
  return beit_tokenizer_io_run(&o, &err) ? beit_cli_fail(cmd, &err) : BEIT_EXIT_OK;
}

int beit_cmd_tokenizer(int argc, char **argv)
{
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    fputs(usage_text, argc < 2 ? stderr : stdout);
    return argc < 2 ? BEIT_EXIT_USAGE : BEIT_EXIT_OK;
  }
  if (!strcmp(argv[1], "train"))
    return cmd_train(argc - 1, argv + 1);
  if (!strcmp(argv[1], "encode"))
    return cmd_io(argc - 1, argv + 1, 0);
  if (!strcmp(argv[1], "recon"))
    return cmd_io(argc - 1, argv + 1, 1);
  return beit_cli_usage_error("tokenizer", "unknown subcommand '%s' (train, encode, recon)",
                              argv[1]);
}
