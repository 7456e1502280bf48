/* The tokenizer's config.json: one table of known keys (STYLE.md 11) drives reading, --set,
 * validation messages and saving. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "config_table.h"
#include "dvae.h"

_Static_assert(BEIT_TOKENIZER_NAME_MAX >= BEIT_CONFIG_STR, "string keys are BEIT_CONFIG_STR");

#define KEY(name, type, field, lo, hi, choices, help, def) \
  {name, type, offsetof(struct beit_tokenizer_config, field), lo, hi, choices, help, def}

static const char *const recon_choices[] = {"logit_laplace", "mse", NULL};
static const char *const type_choices[] = {"dall-e", NULL};
static const char *const map_choices[] = {"dalle", NULL};

static const struct beit_config_key dvae_keys[] = {
    /* format_version: the one this code writes, set by beit_tokenizer_config_defaults */
    KEY("format_version", BEIT_KEY_INT, format_version, 1, BEIT_TOKENIZER_FORMAT_VERSION, NULL,
        "version of this config format", NULL),
    KEY("model_type", BEIT_KEY_STRING, model_type, 0, 0, type_choices, "tokenizer family",
        "dall-e"),
    KEY("input_channels", BEIT_KEY_INT, input_channels, 1, 64, NULL, "image channels C", "3"),
    KEY("n_hid", BEIT_KEY_INT, n_hid, 4, 65536, NULL, "width of the first encoder group", "256"),
    KEY("group_count", BEIT_KEY_INT, group_count, 1, 8, NULL, "groups of blocks", "4"),
    KEY("n_blk_per_group", BEIT_KEY_INT, n_blk_per_group, 1, 64, NULL, "blocks per group", "2"),
    KEY("vocab_size", BEIT_KEY_INT, vocab_size, 2, 1 << 20, NULL, "number of visual tokens",
        "8192"),
    KEY("downsample", BEIT_KEY_INT, downsample, 1, 256, NULL,
        "image side / token grid side, a power of 2", "8"),
    KEY("n_init", BEIT_KEY_INT, n_init, 1, 65536, NULL, "decoder input width", "128"),
    KEY("image_size", BEIT_KEY_INT, image_size, 1, 4096, NULL, "view B side", "112"),
    KEY("decoder", BEIT_KEY_BOOL, decoder, 0, 1, NULL, "has a decoder", "true"),
    KEY("recon_loss", BEIT_KEY_STRING, recon_loss, 0, 0, recon_choices,
        "reconstruction likelihood", "logit_laplace"),
    KEY("input_map", BEIT_KEY_STRING, input_map, 0, 0, map_choices,
        "pixel map applied by the loader", "dalle"),
};

const struct beit_config_key *beit_dvae_config_keys(size_t *count)
{
  *count = sizeof dvae_keys / sizeof dvae_keys[0];
  return dvae_keys;
}

void beit_tokenizer_config_defaults(struct beit_tokenizer_config *cfg)
{
  memset(cfg, 0, sizeof *cfg);
  beit_config_table_defaults(cfg, dvae_keys, sizeof dvae_keys / sizeof dvae_keys[0],
                             "tokenizer config");
  cfg->format_version = BEIT_TOKENIZER_FORMAT_VERSION;
}

enum beit_status beit_tokenizer_config_validate(const struct beit_tokenizer_config *cfg,
                                                const char *source, struct beit_error *err)
{
  long ds = cfg->downsample, pools = 0;
  while (ds > 1 && ds % 2 == 0) {
    ds /= 2;
    pools++;
  }
  if (ds != 1)
    return beit_error_set(err, BEIT_STATUS_CONFIG,
                          "%s: key 'downsample': %ld is not a power of 2", source,
                          cfg->downsample);
  if (pools > cfg->group_count)
    return beit_error_set(err, BEIT_STATUS_CONFIG,
                          "%s: key 'downsample': %ld needs %ld pooling groups but group_count is "
                          "%ld",
                          source, cfg->downsample, pools, cfg->group_count);
  if (cfg->image_size % cfg->downsample != 0)
    return beit_error_set(err, BEIT_STATUS_CONFIG,
                          "%s: key 'image_size': %ld is not divisible by downsample %ld", source,
                          cfg->image_size, cfg->downsample);
  if (cfg->n_hid % 4 != 0)
    return beit_error_set(err, BEIT_STATUS_CONFIG,
                          "%s: key 'n_hid': %ld is not divisible by 4 (block hidden width is "
                          "n_out / 4)",
                          source, cfg->n_hid);
  if ((double)cfg->n_hid * (double)(1L << (cfg->group_count - 1)) > 65536.0)
    return beit_error_set(err, BEIT_STATUS_CONFIG,
                          "%s: keys 'n_hid' and 'group_count': the last group would be wider "
                          "than 65536",
                          source);
  return BEIT_STATUS_OK;
}

enum beit_status beit_tokenizer_config_load(struct beit_tokenizer_config *cfg, const char *path,
                                            struct beit_error *err)
{
  size_t n;
  const struct beit_config_key *keys = beit_dvae_config_keys(&n);
  enum beit_status st = beit_config_load_file(cfg, keys, n, path, err);
  if (st)
    return st;
  return beit_tokenizer_config_validate(cfg, path, err);
}

enum beit_status beit_tokenizer_config_override(struct beit_tokenizer_config *cfg,
                                                const char *assignment, struct beit_error *err)
{
  size_t n;
  const struct beit_config_key *keys = beit_dvae_config_keys(&n);
  return beit_config_set(cfg, keys, n, assignment, err);
}

enum beit_status beit_tokenizer_config_save(const struct beit_tokenizer_config *cfg,
                                            const char *path, struct beit_error *err)
{
  size_t n;
  const struct beit_config_key *keys = beit_dvae_config_keys(&n);
  cJSON *json = beit_config_to_json(cfg, keys, n);
  if (!json)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "%s: cannot build config JSON", path);
  enum beit_status st = beit_json_write_file(path, json, err);
  cJSON_Delete(json);
  return st;
}
