/* The `beit` command: dispatch to subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

struct command {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
};

/* One line per subcommand. */
static const struct command commands[] = {
    {"pack", beit_cmd_pack, "build a dataset folder (HDF5 shards) from images, a manifest or Fashion-MNIST"},
    {"tokenizer", beit_cmd_tokenizer, "train a dVAE visual tokenizer; encode images to tokens; reconstruct"},
    {"pretrain", beit_cmd_pretrain, "masked image modeling pretraining (MPI data parallel)"},
    {"info", beit_cmd_info, "describe a model folder or config: parameters per group, FLOPs"},
    {"run", beit_cmd_run, "raw tensors in, logits and hidden states out (safetensors)"},
    {"finetune", beit_cmd_finetune, "fine-tune an encoder as a classifier (multi-class or multi-label)"},
    {"eval", beit_cmd_eval, "classifier metrics on a dataset: top-1/5, per-class P/R/F1, mAP"},
    {"probe", beit_cmd_probe, "linear probe on frozen, average-pooled features of a block"},
    {"export", beit_cmd_export, "encoder (or classifier) as an HF or timm folder"},
    {"predict", beit_cmd_predict, "classify images, folders, datasets or JSON lines requests (JSON lines out)"},
    {"serve", beit_cmd_serve, "HTTP endpoint: POST /score in the model card's JSON format, batched workers"},
};

static void usage(FILE *out)
{
  fprintf(out, "usage: beit <command> [options]   (beit <command> --help for details)\n\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
  if (argc < 2) {
    usage(stderr);
    return BEIT_EXIT_USAGE;
  }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    usage(stdout);
    return BEIT_EXIT_OK;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (!strcmp(argv[1], commands[i].name))
      return commands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "beit: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return BEIT_EXIT_USAGE;
}
