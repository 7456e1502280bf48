/* `beit pack --config FILE` and `--set KEY=VALUE` (include/beit/data.h struct
 * beit_data_pack_config): one key table for parsing, validation and unknown keys, and the
 * values as pack options. What it is not: the command line's own options, which override these
 * (apps/cmd_pack.c), or the packing itself (pack.c). */
#include <stddef.h>
#include <string.h>

#include "beit/data.h"
#include "config_table.h"

_Static_assert(sizeof ((struct beit_data_pack_config *)0)->source == BEIT_CONFIG_STR,
               "a string key is char[BEIT_CONFIG_STR]");

static const char *const source_choices[] = {"folder", "manifest", "fashion-mnist", NULL};
static const char *const split_choices[] = {"train", "test", NULL};

#define K_(name, type, field, lo, hi, choices, help) \
  {name, type, offsetof(struct beit_data_pack_config, field), lo, hi, choices, help}
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

void beit_data_pack_config_init(struct beit_data_pack_config *c,
                                struct beit_data_pack_options *opt)
{
  beit_data_pack_defaults(opt);
  *c = (struct beit_data_pack_config){"", "", "", "train", (long)(opt->shard_bytes >> 20),
                                      (long)(opt->chunk_bytes >> 10), 0, 1, 0, 0};
}

enum beit_status beit_data_pack_config_load(struct beit_data_pack_config *c, const char *path,
                                            struct beit_error *err)
{
  return beit_config_load_file(c, pack_keys, NKEYS, path, err);
}

enum beit_status beit_data_pack_config_set(struct beit_data_pack_config *c,
                                           const char *key_value, struct beit_error *err)
{
  return beit_config_set(c, pack_keys, NKEYS, key_value, err);
}

int beit_data_pack_config_apply(const struct beit_data_pack_config *c,
                                struct beit_data_pack_options *opt)
{
  if (c->source[0]) {
    opt->source = !strcmp(c->source, "folder")     ? BEIT_DATA_SOURCE_FOLDER
                  : !strcmp(c->source, "manifest") ? BEIT_DATA_SOURCE_MANIFEST
                                                   : BEIT_DATA_SOURCE_FASHION_MNIST;
    opt->input = c->input[0] ? c->input : NULL;
  }
  if (c->output[0])
    opt->output = c->output;
  opt->split = c->split;
  opt->shard_bytes = (size_t)c->shard_mb << 20;
  opt->chunk_bytes = (size_t)c->chunk_kb << 10;
  opt->seed = (uint64_t)c->seed;
  opt->shuffle = c->shuffle;
  opt->multilabel = c->multilabel;
  opt->overwrite = c->overwrite;
  return c->source[0] != '\0';
}
