/* Exports: a classifier or MIM model under timm's names (beit_export_timm) and the encoder of a
 * checkpoint as an HF folder for classifier heads (beit_export_encoder). See transfer.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "config_table.h"
#include "safetensors.h"
#include "transfer.h"

/* ---- timm export --------------------------------------------------------------------------- */

static cJSON *timm_config(const struct beit_model *m)
{
  const struct beit_config *c = &m->cfg;
  int classifier = m->arch == BEIT_ARCH_CLASSIFIER;
  cJSON *root = cJSON_CreateObject(), *args = NULL, *pc = NULL, *arr = NULL;
  if (!root)
    return NULL;
  cJSON_AddStringToObject(root, "architecture", c->patch_size == 16 && c->hidden_size == 1024
                                                    ? "beit_large_patch16_224"
                                                    : "beit_base_patch16_224");
  cJSON_AddNumberToObject(root, "num_classes", classifier ? (double)c->num_labels : 0.0);
  cJSON_AddNumberToObject(root, "num_features", (double)c->hidden_size);
  if ((args = cJSON_AddObjectToObject(root, "model_args"))) {
    cJSON_AddNumberToObject(args, "img_size", (double)c->image_size);
    cJSON_AddStringToObject(args, "global_pool", c->use_mean_pooling ? "avg" : "token");
    cJSON_AddNumberToObject(args, "patch_size", (double)c->patch_size);
    cJSON_AddNumberToObject(args, "in_chans", (double)c->num_channels);
    cJSON_AddNumberToObject(args, "embed_dim", (double)c->hidden_size);
    cJSON_AddNumberToObject(args, "depth", (double)c->num_hidden_layers);
    cJSON_AddNumberToObject(args, "num_heads", (double)c->num_attention_heads);
    cJSON_AddNumberToObject(args, "mlp_ratio",
                            (double)c->intermediate_size / (double)c->hidden_size);
    cJSON_AddBoolToObject(args, "use_abs_pos_emb", c->use_absolute_position_embeddings);
    cJSON_AddBoolToObject(args, "use_rel_pos_bias", c->use_relative_position_bias);
    cJSON_AddBoolToObject(args, "use_shared_rel_pos_bias", c->use_shared_relative_position_bias);
    if (c->layer_scale_init_value > 0)
      cJSON_AddNumberToObject(args, "init_values", c->layer_scale_init_value);
    else
      cJSON_AddNullToObject(args, "init_values");
  }
  if ((pc = cJSON_AddObjectToObject(root, "pretrained_cfg"))) {
    cJSON_AddStringToObject(pc, "tag", "beit-c");
    if ((arr = cJSON_AddArrayToObject(pc, "input_size"))) {
      cJSON_AddItemToArray(arr, cJSON_CreateNumber((double)c->num_channels));
      cJSON_AddItemToArray(arr, cJSON_CreateNumber((double)c->image_size));
      cJSON_AddItemToArray(arr, cJSON_CreateNumber((double)c->image_size));
    }
    cJSON_AddBoolToObject(pc, "fixed_input_size", 1);
    cJSON_AddStringToObject(pc, "interpolation", "bicubic");
    cJSON_AddNumberToObject(pc, "crop_pct", 0.9);
    const double half[3] = {0.5, 0.5, 0.5};
    cJSON_AddItemToObject(pc, "mean", cJSON_CreateDoubleArray(half, 3));
    cJSON_AddItemToObject(pc, "std", cJSON_CreateDoubleArray(half, 3));
    cJSON_AddNumberToObject(pc, "num_classes", classifier ? (double)c->num_labels : 0.0);
    cJSON_AddStringToObject(pc, "first_conv", "patch_embed.proj");
    cJSON_AddStringToObject(pc, "classifier", "head");
    if (classifier && c->labels) {
      cJSON *names = cJSON_AddArrayToObject(pc, "label_names");
      for (long i = 0; names && i < c->num_labels; i++)
        cJSON_AddItemToArray(names, cJSON_CreateString(c->labels[i]));
    }
  }
  return root;
}

enum beit_status beit_export_timm(const struct beit_model *m, const char *dir,
                                  struct beit_error *err)
{
  struct beit_tensor_table table;
  float *buf = NULL;
  cJSON *config = NULL;
  enum beit_status s = BEIT_STATUS_OK;
  beit_tensor_table_init(&table);
  if (m->arch == BEIT_ARCH_MIM)
    return beit_error_set(err, BEIT_STATUS_UNSUPPORTED, "timm export: the MIM head has no timm "
                          "classifier form; export the encoder (BeitModel) instead");
  /* one pass to build the table (key and value weights ride inside qkv) */
  for (size_t i = 0; i < m->table.count; i++) {
    const struct beit_tensor *t = &m->table.items[i];
    char name[BEIT_TENSOR_NAME_MAX];
    beit_hf_to_timm_name(t->name, name, sizeof name);
    if (!name[0])
      continue; /* key/value weights */
    size_t shape[BEIT_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    if (beit_name_ends(name, "attn.qkv.weight"))
      shape[0] *= 3;
    if (beit_tensor_table_add(&table, name, t->ndim, shape) < 0) {
      s = beit_error_set(err, BEIT_STATUS_NOMEM, "timm export: out of memory");
      goto done;
    }
  }
  if (!(buf = beit_alloc_floats(table.total)) || !(config = timm_config(m))) {
    s = beit_error_set(err, BEIT_STATUS_NOMEM, "timm export: out of memory");
    goto done;
  }
  for (size_t i = 0; i < m->table.count; i++) {
    const struct beit_tensor *t = &m->table.items[i];
    char name[BEIT_TENSOR_NAME_MAX];
    beit_hf_to_timm_name(t->name, name, sizeof name);
    if (!name[0])
      continue;
    long j = beit_tensor_table_find(&table, name);
    size_t n = beit_name_ends(name, "attn.qkv.weight") ? 3 * t->numel : t->numel;
    /* query, key and value weights are packed back to back in params (encoder.h) */
    memcpy(buf + table.items[j].offset, m->params + t->offset, n * sizeof *buf);
  }
  struct beit_checkpoint_parts parts = {config, &table, buf, NULL, NULL, NULL, NULL};
  s = beit_model_folder_save(dir, &parts, err);
done:
  cJSON_Delete(config);
  free(buf);
  beit_tensor_table_free(&table);
  return s;
}

/* ---- encoder export ------------------------------------------------------------------------ */

enum beit_status beit_export_encoder(const char *from, const char *dir,
                                     const struct beit_export_options *opt,
                                     struct beit_error *err)
{
  struct beit_source *src = NULL;
  struct beit_model *m = NULL;
  struct beit_config cfg;
  beit_config_defaults(&cfg);
  enum beit_status st = beit_source_open(&src, from, err);
  if (st)
    return st;
  const struct beit_config *sc = &src->cfg;
  if (opt->with_head && beit_config_arch(sc) != BEIT_ARCH_CLASSIFIER) {
    st = beit_error_set(err, BEIT_STATUS_USAGE, "%s is a %s: there is no classifier to export "
                        "(leave out --with-head to export the encoder)", from, sc->architecture);
    goto done;
  }
  cfg = *sc;
  cfg.labels = NULL;
  if ((st = beit_config_set_labels(&cfg, sc->num_labels, (const char *const *)sc->labels, err)))
    goto done;
  snprintf(cfg.architecture, sizeof cfg.architecture, "%s",
           opt->with_head ? "BeitForImageClassification" : "BeitModel");
  if (!opt->with_head)
    cfg.problem_type[0] = '\0';
  cfg.use_mask_token = 0;
  if (sc->use_relative_position_bias || sc->use_shared_relative_position_bias) {
    cfg.use_relative_position_bias = 1;
    cfg.use_shared_relative_position_bias = 0;
  }
  if (opt->pooling >= 0)
    cfg.use_mean_pooling = opt->pooling;
  else if (beit_config_arch(sc) == BEIT_ARCH_MIM)
    cfg.use_mean_pooling = 1;
  if (opt->image_size > 0)
    cfg.image_size = opt->image_size;
  if ((st = beit_config_validate(&cfg, "export config", err)) ||
      (st = beit_model_create(&m, &cfg, 1, err)))
    goto done;
  beit_model_init_weights(m, BEIT_INIT_FINETUNE, 0);
  struct beit_transfer_options to = {1, opt->log};
  struct beit_transfer_report rep;
  if ((st = beit_transfer_load(m, src, &to, &rep, err)))
    goto done;
  if (opt->with_head && rep.fresh) {
    st = beit_error_set(err, BEIT_STATUS_INTERNAL, "%s: %zu tensors of the classifier were not "
                        "found", from, rep.fresh);
    goto done;
  }
  st = opt->timm ? beit_export_timm(m, dir, err) : beit_model_save(m, dir, err);
done:
  beit_model_free(m);
  beit_config_free(&cfg);
  beit_source_free(src);
  return st;
}
