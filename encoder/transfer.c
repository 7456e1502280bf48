/* Checkpoint sources (HF or timm/unilm names) and the unilm fine-tuning load (steps 1-6 of spec
 * 5). See transfer.h; the name maps are in names.c, the exports in export.c. */
#include "transfer.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "config_table.h"
#include "safetensors.h"

/* ---- sources ------------------------------------------------------------------------------- */

void beit_source_free(struct beit_source *src)
{
  if (!src)
    return;
  for (size_t i = 0; i < src->count; i++)
    free(src->tensors[i].data);
  free(src->tensors);
  beit_config_free(&src->cfg);
  free(src);
}

const struct beit_source_tensor *beit_source_find(const struct beit_source *src,
                                                  const char *hf_name)
{
  for (size_t i = 0; i < src->count; i++)
    if (!strcmp(src->tensors[i].name, hf_name))
      return &src->tensors[i];
  return NULL;
}

static struct beit_source_tensor *find_mut(struct beit_source *src, const char *name)
{
  return (struct beit_source_tensor *)beit_source_find(src, name);
}

/* Append a tensor (data copied from f32 values). */
static enum beit_status add_tensor(struct beit_source *src, const char *name, int ndim,
                                   const size_t *shape, const float *values,
                                   struct beit_error *err)
{
  struct beit_source_tensor *grown =
      realloc(src->tensors, (src->count + 1) * sizeof *src->tensors);
  if (!grown)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", src->path);
  src->tensors = grown;
  struct beit_source_tensor *t = &src->tensors[src->count];
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "%s", name);
  t->ndim = ndim;
  t->numel = 1;
  for (int d = 0; d < ndim; d++) {
    t->shape[d] = shape[d];
    t->numel *= shape[d];
  }
  t->data = malloc((t->numel ? t->numel : 1) * sizeof *t->data);
  if (!t->data)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory for '%s'", src->path, name);
  memcpy(t->data, values, t->numel * sizeof *t->data);
  src->count++;
  return BEIT_STATUS_OK;
}

static int is_dir(const char *path)
{
  struct stat s;
  return stat(path, &s) == 0 && S_ISDIR(s.st_mode);
}

static int file_exists(const char *path)
{
  struct stat s;
  return stat(path, &s) == 0 && S_ISREG(s.st_mode);
}

/* Read every tensor of the file into src under HF names. */
static enum beit_status read_tensors(struct beit_source *src, const struct beit_safetensors *st,
                                     struct beit_error *err)
{
  int timm = 0, prefixed = 0;
  for (size_t i = 0; i < beit_safetensors_count(st); i++) {
    const char *n = beit_safetensors_at(st, i)->name;
    timm |= !strcmp(n, "cls_token") || beit_name_starts(n, "blocks.");
    prefixed |= beit_name_starts(n, "beit.");
  }
  src->naming = timm && !prefixed ? BEIT_SOURCE_NAMING_TIMM : BEIT_SOURCE_NAMING_HF;
  int mim = beit_safetensors_find(st, "lm_head.weight") != NULL;
  int fc_norm = beit_safetensors_find(st, "fc_norm.weight") != NULL;
  float *buf = NULL;
  size_t cap = 0;
  enum beit_status s = BEIT_STATUS_OK;
  for (size_t i = 0; i < beit_safetensors_count(st) && !s; i++) {
    const struct beit_st_tensor *t = beit_safetensors_at(st, i);
    const char *name = t->name;
    char hf[BEIT_TENSOR_NAME_MAX];
    if (beit_name_ends(name, "relative_position_index") || beit_name_ends(name, "attn.k_bias"))
      continue; /* recomputed buffer; softmax-invariant key bias (spec 1.4) */
    if (t->ndim > BEIT_MAX_DIMS)
      return beit_error_set(err, BEIT_STATUS_SHAPE, "%s: tensor '%s' has %d dimensions",
                            beit_safetensors_path(st), name, t->ndim);
    if (t->numel > cap) {
      float *grown = realloc(buf, t->numel * sizeof *buf);
      if (!grown) {
        free(buf);
        return beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", src->path);
      }
      buf = grown;
      cap = t->numel;
    }
    if ((s = beit_safetensors_read_f32(st, name, buf, t->ndim, t->shape, err)))
      break;
    if (src->naming == BEIT_SOURCE_NAMING_HF) {
      /* HF BeitModel.save_pretrained writes embeddings.*, encoder.*, pooler.* and its final
       * layernorm.* without the prefix (a MIM file's layernorm.* is its head's) */
      if (!prefixed && (beit_name_starts(name, "embeddings.") || beit_name_starts(name, "encoder.") ||
                        beit_name_starts(name, "pooler.") || (beit_name_starts(name, "layernorm.") && !mim))) {
        snprintf(hf, sizeof hf, "beit.%s", name);
      } else {
        snprintf(hf, sizeof hf, "%s", name);
      }
      s = add_tensor(src, hf, t->ndim, t->shape, buf, err);
      continue;
    }
    long layer;
    int used = 0;
    if (sscanf(name, "blocks.%ld.%n", &layer, &used) == 1 && used > 0 &&
        !strcmp(name + used, "attn.qkv.weight")) {
      size_t D = t->shape[0] / 3, shape[2] = {D, t->shape[1]};
      static const char *const part[3] = {"query", "key", "value"};
      for (int k = 0; k < 3 && !s; k++) {
        snprintf(hf, sizeof hf, BEIT_LAYER_PREFIX "%ld.attention.attention.%s.weight", layer, part[k]);
        s = add_tensor(src, hf, 2, shape, buf + (size_t)k * D * t->shape[1], err);
      }
      continue;
    }
    if (!beit_timm_to_hf_name(name, mim ? BEIT_ARCH_MIM : BEIT_ARCH_CLASSIFIER, fc_norm || mim,
                              hf, sizeof hf)) {
      s = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: tensor '%s' is not a BEiT (timm/unilm) "
                         "name", beit_safetensors_path(st), name);
      break;
    }
    s = add_tensor(src, hf, t->ndim, t->shape, buf, err);
  }
  free(buf);
  return s;
}

/* Architecture from the tensors (tools/convert_checkpoint.py infer_config). image_size is the
 * timm config's input size or 0. */
static enum beit_status infer_config(struct beit_source *src, long image_size,
                                     struct beit_error *err)
{
  struct beit_config *c = &src->cfg;
  const struct beit_source_tensor *cls = beit_source_find(src, "beit.embeddings.cls_token");
  const struct beit_source_tensor *proj =
      beit_source_find(src, "beit.embeddings.patch_embeddings.projection.weight");
  const struct beit_source_tensor *fc1 =
      beit_source_find(src, BEIT_LAYER_PREFIX "0.intermediate.dense.weight");
  if (!cls || !proj || !fc1 || proj->ndim != 4)
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: no cls token, patch embedding or block "
                          "0: not a BEiT checkpoint", src->path);
  long layers = 0;
  for (size_t i = 0; i < src->count; i++) {
    long l;
    if (sscanf(src->tensors[i].name, BEIT_LAYER_PREFIX "%ld.", &l) == 1 && l + 1 > layers)
      layers = l + 1;
  }
  beit_config_defaults(c);
  c->layer_norm_eps = 1e-6; /* unilm and timm LayerNorm */
  c->hidden_size = (long)cls->shape[cls->ndim - 1];
  c->num_channels = (long)proj->shape[1];
  c->patch_size = (long)proj->shape[2];
  c->num_hidden_layers = layers;
  c->intermediate_size = (long)fc1->shape[0];
  char key[BEIT_TENSOR_NAME_MAX];
  snprintf(key, sizeof key, BEIT_LAYER_PREFIX "0.%s", BEIT_RPB_SUFFIX);
  const struct beit_source_tensor *shared = beit_source_find(src, BEIT_SHARED_RPB);
  const struct beit_source_tensor *layer = beit_source_find(src, key);
  const struct beit_source_tensor *table = layer ? layer : shared;
  const struct beit_source_tensor *pos =
      beit_source_find(src, "beit.embeddings.position_embeddings");
  c->num_attention_heads = table ? (long)table->shape[1] : c->hidden_size / 64;
  if (!table && c->hidden_size % 64)
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: cannot infer the head count of hidden "
                          "size %ld without a relative position bias table", src->path,
                          c->hidden_size);
  long grid = 0;
  if (pos) {
    long n = (long)pos->shape[1] - 1;
    grid = lround(sqrt((double)n));
  } else if (table) {
    grid = (lround(sqrt((double)table->shape[0] - 3)) + 1) / 2;
  } else {
    grid = (image_size > 0 ? image_size : 224) / c->patch_size;
  }
  c->image_size = grid * c->patch_size;
  snprintf(key, sizeof key, BEIT_LAYER_PREFIX "0.lambda_1");
  c->layer_scale_init_value = beit_source_find(src, key) ? 0.1 : 0.0;
  c->use_mask_token = beit_source_find(src, "beit.embeddings.mask_token") != NULL;
  c->use_absolute_position_embeddings = pos != NULL;
  c->use_relative_position_bias = layer != NULL;
  c->use_shared_relative_position_bias = shared != NULL;
  const struct beit_source_tensor *lm = beit_source_find(src, "lm_head.weight");
  const struct beit_source_tensor *head = beit_source_find(src, "classifier.weight");
  c->use_mean_pooling = !beit_source_find(src, "beit.layernorm.weight");
  long labels = 2;
  if (lm) {
    snprintf(c->architecture, sizeof c->architecture, "BeitForMaskedImageModeling");
    c->vocab_size = (long)lm->shape[0];
  } else if (head) {
    snprintf(c->architecture, sizeof c->architecture, "BeitForImageClassification");
    labels = (long)head->shape[0];
  } else {
    snprintf(c->architecture, sizeof c->architecture, "BeitModel");
  }
  enum beit_status s = beit_config_set_labels(c, labels, NULL, err);
  if (!s)
    s = beit_config_validate(c, src->path, err);
  return s;
}

/* Input size from a timm config.json (pretrained_cfg.input_size [C, H, W]), else 0. */
static long timm_image_size(const cJSON *root)
{
  const cJSON *pc = cJSON_GetObjectItemCaseSensitive(root, "pretrained_cfg");
  const cJSON *in = cJSON_GetObjectItemCaseSensitive(pc, "input_size");
  const cJSON *h = cJSON_GetArrayItem(in, 1);
  return cJSON_IsNumber(h) ? (long)h->valuedouble : 0;
}

enum beit_status beit_source_open(struct beit_source **out, const char *path,
                                  struct beit_error *err)
{
  char cfg_path[4200], st_path[4200];
  struct beit_safetensors *st = NULL;
  cJSON *root = NULL;
  *out = NULL;
  struct beit_source *src = calloc(1, sizeof *src);
  if (!src)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", path);
  snprintf(src->path, sizeof src->path, "%s", path);
  if (is_dir(path)) {
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", path);
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", path);
  } else {
    cfg_path[0] = '\0';
    snprintf(st_path, sizeof st_path, "%s", path);
  }
  enum beit_status s;
  if (!file_exists(st_path)) {
    s = beit_error_set(err, BEIT_STATUS_MISSING, "%s: no model.safetensors (a .pth/.bin "
                       "checkpoint converts with tools/convert_checkpoint.py)", path);
    goto fail;
  }
  if ((s = beit_safetensors_open(&st, st_path, err)) || (s = read_tensors(src, st, err)))
    goto fail;
  int hf_config = 0;
  long image_size = 0;
  if (cfg_path[0] && file_exists(cfg_path)) {
    if ((s = beit_json_read_file(&root, cfg_path, err)))
      goto fail;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    hf_config = cJSON_IsString(mt) && !strcmp(mt->valuestring, "beit");
    image_size = timm_image_size(root);
  }
  if (hf_config) {
    beit_config_defaults(&src->cfg);
    if ((s = beit_config_load(&src->cfg, cfg_path, err)))
      goto fail;
  } else {
    src->cfg_inferred = 1;
    if ((s = infer_config(src, image_size, err)))
      goto fail;
  }
  cJSON_Delete(root);
  beit_safetensors_close(st);
  *out = src;
  return BEIT_STATUS_OK;
fail:
  cJSON_Delete(root);
  beit_safetensors_close(st);
  beit_source_free(src);
  return s;
}

/* ---- the fine-tuning load ------------------------------------------------------------------ */

static void note(const struct beit_transfer_options *opt, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void note(const struct beit_transfer_options *opt, const char *fmt, ...)
{
  if (!opt || !opt->log)
    return;
  va_list ap;
  va_start(ap, fmt);
  vfprintf(opt->log, fmt, ap);
  va_end(ap);
}

static int same_shape(const struct beit_source_tensor *s, const struct beit_tensor *t)
{
  if (s->ndim != t->ndim)
    return 0;
  for (int d = 0; d < t->ndim; d++)
    if (s->shape[d] != t->shape[d])
      return 0;
  return 1;
}

/* The source tensor that feeds destination tensor i, or NULL. */
static struct beit_source_tensor *source_for(struct beit_source *src, const struct beit_model *dst,
                                             size_t i)
{
  const char *name = dst->table.items[i].name;
  struct beit_source_tensor *s = find_mut(src, name);
  if (s)
    return s;
  enum beit_param_role role = beit_model_param_role(dst, i);
  if (role == BEIT_ROLE_REL_TABLE && dst->ids.shared_rel < 0)
    return find_mut(src, BEIT_SHARED_RPB); /* step 2: shared table into every layer */
  if (role == BEIT_ROLE_FINAL_NORM) /* cls pooling: the MIM's final LayerNorm, "layernorm.*" */
    return find_mut(src, name + strlen("beit."));
  return NULL;
}

enum beit_status beit_transfer_load(struct beit_model *dst, struct beit_source *src,
                                    const struct beit_transfer_options *opt,
                                    struct beit_transfer_report *rep, struct beit_error *err)
{
  struct beit_transfer_report local;
  if (!rep)
    rep = &local;
  memset(rep, 0, sizeof *rep);
  for (size_t i = 0; i < src->count; i++)
    src->tensors[i].used = 0;
  size_t nH = dst->nH, D = dst->D;
  for (size_t i = 0; i < dst->table.count; i++) {
    const struct beit_tensor *t = &dst->table.items[i];
    float *p = dst->params + t->offset;
    struct beit_source_tensor *s = source_for(src, dst, i);
    enum beit_param_role role = beit_model_param_role(dst, i);
    int rel_table = role == BEIT_ROLE_REL_TABLE || role == BEIT_ROLE_SHARED_REL_TABLE;
    if (s && role == BEIT_ROLE_CLASSIFIER && (!opt || !opt->keep_head)) {
      note(opt, "transfer: %s: new classifier\n", t->name);
      rep->fresh++;
      continue;
    }
    if (!s) {
      if (role == BEIT_ROLE_BODY) /* everything else a fresh model may initialise */
        return beit_error_set(err, BEIT_STATUS_MISSING, "%s: no tensor '%s' for the "
                              "destination model", src->path, t->name);
      note(opt, "transfer: %s: not in the source, initialised\n", t->name);
      rep->fresh++;
      continue;
    }
    if (same_shape(s, t)) {
      memcpy(p, s->data, t->numel * sizeof *p);
      if (strcmp(s->name, t->name) && role == BEIT_ROLE_REL_TABLE) {
        rep->shared_to_layers++;
        note(opt, "transfer: %s <- %s (shared table copied)\n", t->name, s->name);
      }
    } else if (rel_table && s->ndim == 2 && s->shape[1] == nH) {
      double q = 0.0;
      enum beit_status st = beit_rpb_resize(p, t->shape[0], s->data, s->shape[0], nH, &q, err);
      if (st) {
        beit_error_prefix(err, "%s: '%s': ", src->path, s->name);
        return st;
      }
      if (strcmp(s->name, t->name))
        rep->shared_to_layers++;
      rep->rpb_resized++;
      rep->rpb_q = q;
      note(opt, "transfer: %s <- %s resized %zu -> %zu rows (q %.6f)\n", t->name,
                s->name, s->shape[0], t->shape[0], q);
    } else if (role == BEIT_ROLE_POS_EMBED && s->ndim == 3 && s->shape[2] == D) {
      size_t gs = (size_t)lround(sqrt((double)s->shape[1] - 1));
      size_t gd = (size_t)lround(sqrt((double)t->shape[1] - 1));
      if (gs * gs + 1 != s->shape[1] || gd * gd + 1 != t->shape[1] || gd > 1024)
        return beit_error_set(err, BEIT_STATUS_UNSUPPORTED, "%s: '%s': only square position "
                              "grids resize", src->path, s->name);
      beit_pos_embed_resize(p, gd, s->data, gs, D);
      rep->pos_resized++;
      note(opt, "transfer: %s resized %zux%zu -> %zux%zu (bicubic)\n", t->name, gs,
                gs, gd, gd);
    } else if (role == BEIT_ROLE_CLASSIFIER) {
      note(opt, "transfer: %s: %s has another shape, new classifier\n", t->name, s->name);
      rep->fresh++;
      continue;
    } else {
      char a[64], b[64];
      struct beit_tensor tmp = {0};
      tmp.ndim = s->ndim;
      memcpy(tmp.shape, s->shape, sizeof tmp.shape);
      return beit_error_set(err, BEIT_STATUS_SHAPE, "%s: tensor '%s' is %s, the destination "
                            "needs %s", src->path, s->name, beit_tensor_shape_str(&tmp, a, sizeof a),
                            beit_tensor_shape_str(t, b, sizeof b));
    }
    s->used = 1;
    rep->copied++;
  }
  for (size_t i = 0; i < src->count; i++)
    if (!src->tensors[i].used) {
      rep->dropped++;
      note(opt, "transfer: %s: dropped (no place in the destination)\n", src->tensors[i].name);
    }
  return BEIT_STATUS_OK;
}
