/* `beit pack`: build a dataset folder (index.json + HDF5 shards) from an ImageFolder tree, a
 * manifest or the Fashion-MNIST idx files; `--check` validates an existing one. The options over
 * --config/--set (data/pack_config.c), then beit_data_pack or beit_data_check. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "beit/data.h"
#include "cli.h"

static void usage(FILE *out)
{
  fprintf(out,
          "usage: beit pack (--folder DIR | --manifest FILE | --fashion-mnist DIR) --out DIR [options]\n"
          "       beit pack --check DIR\n\n"
          "Sources:\n"
          "  --folder DIR          ImageFolder tree: DIR/<class>/<image> (ImageNet layout)\n"
          "  --manifest FILE       CSV (path,label[;label...]) or JSON lines ({\"path\"|\"image_url\", \"label\"|\"labels\"})\n"
          "                        (CSV as RFC 4180: \"a, b.jpg\" quoted, \"\" for a quote; data/README.md)\n"
          "  --fashion-mnist DIR   idx .gz files (Debian dataset-fashion-mnist: /usr/share/datasets/fashion-mnist)\n"
          "  --split train|test    Fashion-MNIST split (default train)\n"
          "Options:\n"
          "  --out DIR             dataset folder to create\n"
          "  --shard-mb N          image bytes per shard (default 512)\n"
          "  --chunk-kb N          HDF5 chunk size of the images dataset (default: ~2 mean images)\n"
          "  --seed N              shuffle seed (default 0)\n"
          "  --no-shuffle          keep the source order\n"
          "  --multilabel          store a manifest as multilabel even if each row has one label\n"
          "  --overwrite           replace an existing dataset folder\n"
          "  --quiet               no progress or skip lines\n"
          "  --check DIR           open DIR, validate every shard, decode every record, report\n"
          "                        each that does not decode or fails its checksum (exit 1 when\n"
          "                        any fails its checksum)\n"
          "  --config FILE         JSON with keys source, input, output, split, shard_mb, chunk_kb,\n"
          "                        seed, shuffle, multilabel, overwrite (options override it)\n"
          "  --set KEY=VALUE       override one of those keys\n");
}

static int parse_size(const char *cmd, const char *opt, const char *s, size_t *out, size_t unit)
{
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (!*s || *end || v == 0 || v > (1ull << 40) / unit)
    return beit_cli_usage_error(cmd, "%s needs a positive integer, not '%s'", opt, s);
  *out = (size_t)v * unit;
  return 0;
}

static int check_dataset(const char *dir)
{
  struct beit_error err = {0};
  struct beit_data_check_report r;
  if (beit_data_check(dir, stderr, &r, &err))
    return beit_cli_fail("pack", &err);
  printf("%s: %zu records, %d classes, %s, %zu do not decode, %zu fail their checksum\n", dir,
         r.records, r.num_classes,
         r.task == BEIT_DATA_TASK_MULTILABEL ? "multilabel" : "multiclass", r.bad, r.corrupt);
  return r.corrupt ? BEIT_EXIT_RUNTIME : BEIT_EXIT_OK; /* a damaged shard: repack or restore */
}

int beit_cmd_pack(int argc, char **argv)
{
  enum { O_FOLDER = 256, O_MANIFEST, O_FASHION, O_SPLIT, O_OUT, O_SHARD, O_CHUNK, O_SEED,
         O_NOSHUF, O_MULTI, O_OVER, O_QUIET, O_CHECK, O_HELP, O_CONFIG, O_SET };
  static const struct option opts[] = {
      {"folder", required_argument, 0, O_FOLDER}, {"manifest", required_argument, 0, O_MANIFEST},
      {"fashion-mnist", required_argument, 0, O_FASHION}, {"split", required_argument, 0, O_SPLIT},
      {"out", required_argument, 0, O_OUT}, {"shard-mb", required_argument, 0, O_SHARD},
      {"chunk-kb", required_argument, 0, O_CHUNK}, {"seed", required_argument, 0, O_SEED},
      {"no-shuffle", no_argument, 0, O_NOSHUF}, {"multilabel", no_argument, 0, O_MULTI},
      {"overwrite", no_argument, 0, O_OVER}, {"quiet", no_argument, 0, O_QUIET}, {"check",
      required_argument, 0, O_CHECK}, {"help", no_argument, 0, O_HELP}, {"config",
      required_argument, 0, O_CONFIG}, {"set", required_argument, 0, O_SET}, {0, 0, 0, 0}};
  struct beit_data_pack_options opt;
  struct beit_data_pack_config cfg;
  beit_data_pack_config_init(&cfg, &opt);
  int quiet = 0;
  const char *check = NULL;
  struct beit_error err = {0};
  /* First --config then --set, so that the other options override them. */
  opterr = 0;
  int c;
  for (int pass = 0; pass < 2; pass++) {
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1)
      if ((!pass && c == O_CONFIG && beit_data_pack_config_load(&cfg, optarg, &err)) ||
          (pass && c == O_SET && beit_data_pack_config_set(&cfg, optarg, &err)))
        return beit_cli_fail("pack", &err);
  }
  opterr = 1;
  int nsources = beit_data_pack_config_apply(&cfg, &opt);
  if (nsources && !opt.input)
    return beit_cli_usage_error("pack", "config key 'source' needs 'input'");
  int cli_sources = 0;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case O_FOLDER:
    case O_MANIFEST:
    case O_FASHION:
      opt.source = c == O_FOLDER ? BEIT_DATA_SOURCE_FOLDER
                   : c == O_MANIFEST ? BEIT_DATA_SOURCE_MANIFEST
                                     : BEIT_DATA_SOURCE_FASHION_MNIST;
      opt.input = optarg;
      nsources = ++cli_sources;
      break;
    case O_SPLIT:
      if (strcmp(optarg, "train") && strcmp(optarg, "test"))
        return beit_cli_usage_error("pack", "--split must be train or test, not '%s'", optarg);
      opt.split = optarg;
      break;
    case O_OUT: opt.output = optarg; break;
    case O_SHARD:
      if (parse_size("pack", "--shard-mb", optarg, &opt.shard_bytes, (size_t)1 << 20))
        return BEIT_EXIT_USAGE;
      break;
    case O_CHUNK:
      if (parse_size("pack", "--chunk-kb", optarg, &opt.chunk_bytes, 1024))
        return BEIT_EXIT_USAGE;
      break;
    case O_SEED: {
      char *end;
      opt.seed = strtoull(optarg, &end, 10);
      if (!*optarg || *end)
        return beit_cli_usage_error("pack", "--seed needs an integer, not '%s'", optarg);
      break;
    }
    case O_NOSHUF: opt.shuffle = 0; break;
    case O_MULTI: opt.multilabel = 1; break;
    case O_OVER: opt.overwrite = 1; break;
    case O_QUIET: quiet = 1; break;
    case O_CHECK: check = optarg; break;
    case O_CONFIG:
    case O_SET: break; /* applied above */
    case 'h':
    case O_HELP: usage(stdout); return BEIT_EXIT_OK;
    default: return beit_cli_usage_error("pack", "unknown option");
    }
  }
  if (optind < argc)
    return beit_cli_usage_error("pack", "unexpected argument '%s'", argv[optind]);
  if (check) {
    if (cli_sources)
      return beit_cli_usage_error("pack", "--check takes no source");
    return check_dataset(check);
  }
  if (nsources != 1)
    return beit_cli_usage_error("pack", "give exactly one of --folder, --manifest, --fashion-mnist"
                                        " (or config keys source + input)");
  if (!opt.output)
    return beit_cli_usage_error("pack", "--out DIR is required");
  opt.log = quiet ? NULL : stderr;
  opt.progress_tty = isatty(fileno(stderr));
  struct beit_data_pack_report rep;
  if (beit_data_pack(&opt, &rep, &err))
    return beit_cli_fail("pack", &err);
  printf("%s: %zu images in %zu shards (%.1f MB), %d classes, %zu skipped\n", opt.output,
         rep.written, rep.shards, (double)rep.bytes / 1e6, rep.num_classes, rep.skipped);
  return BEIT_EXIT_OK;
}
