/* `beit pack`: build a dataset folder (index.json + HDF5 shards) from an ImageFolder tree, a
 * manifest or the Fashion-MNIST idx files; `--check` validates an existing one. */
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "beit/data.h"
#include "cli.h"
#include "config_table.h"

/* Keys of `--config FILE` / `--set key=value` (one table: parsing, validation, unknown keys). The
 * long options override them. */
struct pack_config {
  char source[BEIT_CONFIG_STR], input[BEIT_CONFIG_STR], output[BEIT_CONFIG_STR];
  char split[BEIT_CONFIG_STR];
  long shard_mb, chunk_kb, seed;
  int shuffle, multilabel, overwrite;
};

static const char *const source_choices[] = {"folder", "manifest", "fashion-mnist", NULL};
static const char *const split_choices[] = {"train", "test", NULL};

#define K_(name, type, field, lo, hi, choices, help) \
  {name, type, offsetof(struct pack_config, field), lo, hi, choices, help}
static const struct beit_config_key pack_keys[] = {
    K_("source", BEIT_KEY_STRING, source, 0, 0, source_choices, "folder | manifest | fashion-mnist"),
    K_("input", BEIT_KEY_STRING, input, 0, 0, NULL, "folder, manifest file or idx folder"),
    K_("output", BEIT_KEY_STRING, output, 0, 0, NULL, "dataset folder to create"),
    K_("split", BEIT_KEY_STRING, split, 0, 0, split_choices, "Fashion-MNIST split"),
    K_("shard_mb", BEIT_KEY_INT, shard_mb, 1, 1 << 20, NULL, "image MB per shard"),
    K_("chunk_kb", BEIT_KEY_INT, chunk_kb, 0, 1 << 20, NULL, "HDF5 chunk KB of images (0 = auto)"),
    K_("seed", BEIT_KEY_INT, seed, 0, 9.0e15, NULL, "shuffle seed"),
    K_("shuffle", BEIT_KEY_BOOL, shuffle, 0, 1, NULL, "shuffle before sharding"),
    K_("multilabel", BEIT_KEY_BOOL, multilabel, 0, 1, NULL, "force a multilabel manifest"),
    K_("overwrite", BEIT_KEY_BOOL, overwrite, 0, 1, NULL, "replace an existing output"),
};
#undef K_
#define NKEYS (sizeof pack_keys / sizeof pack_keys[0])

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
  struct beit_dataset *ds;
  if (beit_data_open(&ds, dir, &err))
    return beit_cli_fail("pack", &err);
  size_t n = beit_data_count(ds), bad = 0, corrupt = 0;
  struct beit_data_record rec = {0};
  int rc = BEIT_EXIT_OK;
  for (size_t i = 0; i < n; i++) {
    enum beit_status st = beit_data_read(ds, i, &rec, &err);
    if (st == BEIT_STATUS_FORMAT) { /* a chunk failing its checksum: name it, go on */
      fprintf(stderr, "corrupt %s\n", err.message);
      corrupt++;
      continue;
    }
    if (st) {
      rc = beit_cli_fail("pack", &err);
      break;
    }
    struct beit_data_image img;
    if (beit_data_decode(&img, rec.bytes, rec.size, rec.key, &err)) {
      fprintf(stderr, "bad %s\n", err.message);
      bad++;
    }
    beit_data_image_free(&img);
  }
  if (rc == BEIT_EXIT_OK)
    printf("%s: %zu records, %d classes, %s, %zu do not decode, %zu fail their checksum\n", dir,
           n, beit_data_num_classes(ds),
           beit_data_task(ds) == BEIT_DATA_TASK_MULTILABEL ? "multilabel" : "multiclass", bad,
           corrupt);
  if (rc == BEIT_EXIT_OK && corrupt)
    rc = BEIT_EXIT_RUNTIME; /* a damaged shard: repack or restore it */
  beit_data_record_free(&rec);
  beit_data_close(ds);
  return rc;
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
  beit_data_pack_defaults(&opt);
  int nsources = 0, quiet = 0;
  const char *check = NULL;
  struct beit_error err = {0};
  struct pack_config cfg = {"", "", "", "train", (long)(opt.shard_bytes >> 20),
                            (long)(opt.chunk_bytes >> 10), 0, 1, 0, 0};
  /* First pass: --config then --set, so that the other options override them. */
  opterr = 0;
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1)
    if (c == O_CONFIG && beit_config_load_file(&cfg, pack_keys, NKEYS, optarg, &err))
      return beit_cli_fail("pack", &err);
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1)
    if (c == O_SET && beit_config_set(&cfg, pack_keys, NKEYS, optarg, &err))
      return beit_cli_fail("pack", &err);
  opterr = 1;
  if (cfg.source[0]) {
    opt.source = !strcmp(cfg.source, "folder")     ? BEIT_DATA_SOURCE_FOLDER
                 : !strcmp(cfg.source, "manifest") ? BEIT_DATA_SOURCE_MANIFEST
                                                   : BEIT_DATA_SOURCE_FASHION_MNIST;
    if (!cfg.input[0])
      return beit_cli_usage_error("pack", "config key 'source' needs 'input'");
    opt.input = cfg.input;
    nsources = 1;
  }
  if (cfg.output[0])
    opt.output = cfg.output;
  opt.split = cfg.split;
  opt.shard_bytes = (size_t)cfg.shard_mb << 20;
  opt.chunk_bytes = (size_t)cfg.chunk_kb << 10;
  opt.seed = (uint64_t)cfg.seed;
  opt.shuffle = cfg.shuffle;
  opt.multilabel = cfg.multilabel;
  opt.overwrite = cfg.overwrite;
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
