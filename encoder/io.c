/* Model folders: config.json + model.safetensors with HF key names, ours or HF save_pretrained's.
 * Stored relative_position_index buffers are ignored (the index is always recomputed, spec 2);
 * any other tensor the architecture does not have is an error naming it. */
#include <stdio.h>
#include <string.h>

#include "checkpoint.h"
#include "encoder.h"
#include "safetensors.h"
#include "strbuf.h"

/* Every table tensor from st; unknown tensors are errors. */
static enum beit_status load_tensors(struct beit_model *m, const struct beit_safetensors *st,
                                     struct beit_error *err)
{
  for (size_t i = 0; i < m->table.count; i++) {
    const struct beit_tensor *t = &m->table.items[i];
    enum beit_status s = beit_safetensors_read_f32(st, t->name, m->params + t->offset, t->ndim,
                                                   t->shape, err);
    if (s)
      return s;
  }
  for (size_t i = 0; i < beit_safetensors_count(st); i++) {
    const struct beit_st_tensor *t = beit_safetensors_at(st, i);
    if (!beit_str_ends_with(t->name, "relative_position_index") &&
        beit_tensor_table_find(&m->table, t->name) < 0)
      return beit_error_set(err, BEIT_STATUS_FORMAT,
                            "%s: tensor '%s' is not part of a %s with this config",
                            beit_safetensors_path(st), t->name, m->cfg.architecture);
  }
  return BEIT_STATUS_OK;
}

enum beit_status beit_model_load(struct beit_model **out, const char *dir, size_t max_batch,
                                 struct beit_error *err)
{
  char path[4096];
  struct beit_config cfg;
  struct beit_safetensors *st = NULL;
  *out = NULL;
  beit_config_defaults(&cfg);
  snprintf(path, sizeof path, "%s/config.json", dir);
  enum beit_status s = beit_config_load(&cfg, path, err);
  if (s)
    goto free_cfg;
  if ((s = beit_model_create(out, &cfg, max_batch, err)))
    goto free_cfg;
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  if ((s = beit_safetensors_open(&st, path, err)))
    goto fail;
  s = load_tensors(*out, st, err);
  beit_safetensors_close(st);
  if (!s)
    goto free_cfg;
fail:
  beit_model_free(*out);
  *out = NULL;
free_cfg:
  beit_config_free(&cfg);
  return s;
}

enum beit_status beit_model_save(const struct beit_model *m, const char *dir,
                                 struct beit_error *err)
{
  cJSON *config = beit_config_json(&m->cfg);
  if (!config)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", dir);
  struct beit_checkpoint_parts parts = {config, &m->table, m->params, NULL, NULL, NULL, NULL};
  enum beit_status s = beit_model_folder_save(dir, &parts, err);
  cJSON_Delete(config);
  return s;
}
