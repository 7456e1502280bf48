/* The model configuration in HF BeitConfig field names: one key table drives the defaults,
 * reading, validation, --set overrides and saving. HF bookkeeping, generation and
 * segmentation-only fields are accepted so a folder written by HF save_pretrained (any
 * transformers version) loads as it is; those are listed in one warning line per file. Unknown
 * keys are errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "beit/model.h"
#include "config_table.h"
#include "encoder.h"

#define F(field) offsetof(struct beit_config, field)
#define BIG 1e9
#define MAX_LABELS (1 << 20)
#define SILENT(name) {name, BEIT_KEY_IGNORE, 0, 0, 0, NULL, NULL}
#define FOREIGN(name) {name, BEIT_KEY_FOREIGN, 0, 0, 0, NULL, NULL}

static const char *const acts[] = {"gelu", NULL};
static const char *const archs[] = {"BeitModel", "BeitForMaskedImageModeling",
                                    "BeitForImageClassification", NULL};
static const char *const problems[] = {"", "single_label_classification",
                                       "multi_label_classification", NULL};

static const struct beit_config_key config_keys[] = {
    {"image_size", BEIT_KEY_INT, F(image_size), 1, 8192, NULL, "input height and width", "224"},
    {"patch_size", BEIT_KEY_INT, F(patch_size), 1, 1024, NULL, "patch side", "16"},
    {"num_channels", BEIT_KEY_INT, F(num_channels), 1, 16, NULL, "input channels", "3"},
    {"hidden_size", BEIT_KEY_INT, F(hidden_size), 1, 16384, NULL, "width D", "768"},
    {"num_hidden_layers", BEIT_KEY_INT, F(num_hidden_layers), 1, 256, NULL, "depth L", "12"},
    {"num_attention_heads", BEIT_KEY_INT, F(num_attention_heads), 1, 256, NULL, "heads", "12"},
    {"intermediate_size", BEIT_KEY_INT, F(intermediate_size), 1, 65536, NULL, "MLP width",
     "3072"},
    {"hidden_act", BEIT_KEY_STRING, F(hidden_act), 0, 0, acts, "exact-erf GELU", "gelu"},
    {"hidden_dropout_prob", BEIT_KEY_DOUBLE, F(hidden_dropout_prob), 0, 1, NULL, "must be 0"},
    {"attention_probs_dropout_prob", BEIT_KEY_DOUBLE, F(attention_probs_dropout_prob), 0, 1,
     NULL, "must be 0"},
    {"initializer_range", BEIT_KEY_DOUBLE, F(initializer_range), 0, 10, NULL, "init std",
     "0.02"},
    {"layer_norm_eps", BEIT_KEY_DOUBLE, F(layer_norm_eps), 0, 1, NULL, "LayerNorm epsilon",
     "1e-12"},
    {"layer_scale_init_value", BEIT_KEY_DOUBLE, F(layer_scale_init_value), 0, BIG, NULL,
     "LayerScale init; 0 disables LayerScale", "0.1"},
    {"drop_path_rate", BEIT_KEY_DOUBLE, F(drop_path_rate), 0, 1, NULL, "stochastic depth",
     "0.1"},
    {"use_mask_token", BEIT_KEY_BOOL, F(use_mask_token), 0, 1, NULL, "learned mask token"},
    {"use_absolute_position_embeddings", BEIT_KEY_BOOL, F(use_absolute_position_embeddings), 0,
     1, NULL, "absolute position embedding"},
    {"use_relative_position_bias", BEIT_KEY_BOOL, F(use_relative_position_bias), 0, 1, NULL,
     "relative position bias table per layer"},
    {"use_shared_relative_position_bias", BEIT_KEY_BOOL, F(use_shared_relative_position_bias), 0,
     1, NULL, "one relative position bias table for all layers"},
    {"use_mean_pooling", BEIT_KEY_BOOL, F(use_mean_pooling), 0, 1, NULL,
     "mean of patch tokens + pooler LayerNorm (else cls token after final LayerNorm)", "true"},
    {"vocab_size", BEIT_KEY_INT, F(vocab_size), 1, 1 << 20, NULL, "visual vocabulary",
     "8192"},
    {"num_labels", BEIT_KEY_INT, F(num_labels), 1, MAX_LABELS, NULL, "classes", "2"},
    {"problem_type", BEIT_KEY_STRING, F(problem_type), 0, 0, problems, "classification loss"},
    /* Silent: handled by beit_config_load (architectures, id2label; label2id is its inverse),
     * written by beit_config_json (these four and model_type), or naming the writer in every HF
     * file (transformers_version). Loading a folder we wrote must print nothing. */
    SILENT("architectures"),
    SILENT("id2label"),
    SILENT("label2id"),
    SILENT("model_type"),
    SILENT("transformers_version"),
    /* Foreign: fields of HF's generic PretrainedConfig (transformers 4.10, the first with BEiT,
     * to 5.x) and BeitConfig's segmentation/backbone heads. None changes the encoder, its
     * weights or its numbers; beit_config_load lists those present in one warning line. A key
     * that is in neither list is an error: it may change the network (a typo, a newer
     * architectural field, quantization_config, auto_map, per_layer_config). */
    /* storage dtype (safetensors has its own), attention backend, hub bookkeeping */
    FOREIGN("torch_dtype"),
    FOREIGN("dtype"),
    FOREIGN("_name_or_path"),
    FOREIGN("_commit_hash"),
    FOREIGN("attn_implementation"),
    FOREIGN("_attn_implementation"),
    FOREIGN("_attn_implementation_internal"),
    FOREIGN("_attn_implementation_autoset"),
    /* what the PyTorch/TF forward returns, tracing, memory, devices */
    FOREIGN("return_dict"),
    FOREIGN("use_return_dict"),
    FOREIGN("output_hidden_states"),
    FOREIGN("output_attentions"),
    FOREIGN("torchscript"),
    FOREIGN("use_bfloat16"),
    FOREIGN("tf_legacy_loss"),
    FOREIGN("chunk_size_feed_forward"),
    FOREIGN("gradient_checkpointing"),
    FOREIGN("xla_device"),
    /* checked by beit_config_load: accepted only when no head is pruned */
    FOREIGN("pruned_heads"),
    /* text and encoder-decoder models: BEiT reads none of these */
    FOREIGN("is_encoder_decoder"),
    FOREIGN("is_decoder"),
    FOREIGN("add_cross_attention"),
    FOREIGN("cross_attention_hidden_size"),
    FOREIGN("tie_encoder_decoder"),
    FOREIGN("tie_word_embeddings"),
    FOREIGN("finetuning_task"),
    FOREIGN("tokenizer_class"),
    FOREIGN("prefix"),
    FOREIGN("bos_token_id"),
    FOREIGN("pad_token_id"),
    FOREIGN("eos_token_id"),
    FOREIGN("sep_token_id"),
    FOREIGN("decoder_start_token_id"),
    FOREIGN("task_specific_params"),
    /* generation defaults, kept in the model config until transformers 4.4x */
    FOREIGN("max_length"),
    FOREIGN("min_length"),
    FOREIGN("do_sample"),
    FOREIGN("early_stopping"),
    FOREIGN("num_beams"),
    FOREIGN("num_beam_groups"),
    FOREIGN("diversity_penalty"),
    FOREIGN("temperature"),
    FOREIGN("top_k"),
    FOREIGN("top_p"),
    FOREIGN("typical_p"),
    FOREIGN("repetition_penalty"),
    FOREIGN("length_penalty"),
    FOREIGN("no_repeat_ngram_size"),
    FOREIGN("encoder_no_repeat_ngram_size"),
    FOREIGN("bad_words_ids"),
    FOREIGN("num_return_sequences"),
    FOREIGN("output_scores"),
    FOREIGN("return_dict_in_generate"),
    FOREIGN("forced_bos_token_id"),
    FOREIGN("forced_eos_token_id"),
    FOREIGN("remove_invalid_values"),
    FOREIGN("exponential_decay_length_penalty"),
    FOREIGN("suppress_tokens"),
    FOREIGN("begin_suppress_tokens"),
    /* BeitConfig: semantic segmentation heads (UPerNet, auxiliary FCN) and BeitBackbone */
    FOREIGN("semantic_loss_ignore_index"),
    FOREIGN("pool_scales"),
    FOREIGN("use_auxiliary_head"),
    FOREIGN("auxiliary_loss_weight"),
    FOREIGN("auxiliary_channels"),
    FOREIGN("auxiliary_num_convs"),
    FOREIGN("auxiliary_concat_input"),
    FOREIGN("out_indices"),
    FOREIGN("out_features"),
    FOREIGN("segmentation_indices"),
    FOREIGN("stage_names"),
    FOREIGN("add_fpn"),
    FOREIGN("reshape_hidden_states"),
};
#define NKEYS (sizeof config_keys / sizeof config_keys[0])

void beit_config_defaults(struct beit_config *cfg)
{
  memset(cfg, 0, sizeof *cfg);
  beit_config_table_defaults(cfg, config_keys, NKEYS, "model config");
  strcpy(cfg->architecture, "BeitModel");
}

void beit_config_free(struct beit_config *cfg)
{
  if (cfg->labels) {
    for (long i = 0; i < cfg->num_labels; i++)
      free(cfg->labels[i]);
    free(cfg->labels);
  }
  cfg->labels = NULL;
}

enum beit_status beit_config_set_labels(struct beit_config *cfg, long num_labels,
                                        const char *const *names, struct beit_error *err)
{
  beit_config_free(cfg);
  cfg->num_labels = num_labels;
  cfg->labels = calloc((size_t)num_labels, sizeof *cfg->labels);
  if (!cfg->labels)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "labels: out of memory");
  for (long i = 0; i < num_labels; i++) {
    char fallback[32];
    snprintf(fallback, sizeof fallback, "LABEL_%ld", i);
    cfg->labels[i] = strdup(names && names[i] ? names[i] : fallback);
    if (!cfg->labels[i])
      return beit_error_set(err, BEIT_STATUS_NOMEM, "labels: out of memory");
  }
  return BEIT_STATUS_OK;
}

/* id2label {"0": "tench", ...}: every id in [0, n) exactly once. */
static enum beit_status read_id2label(struct beit_config *cfg, const cJSON *map, const char *path,
                                      struct beit_error *err)
{
  long n = cJSON_GetArraySize(map);
  if (n < 1 || n > MAX_LABELS) /* what num_labels accepts: a saved config must load again */
    return beit_error_set(err, BEIT_STATUS_CONFIG, "%s: key 'id2label': %ld entries, expected 1 "
                          "to %d", path, n, MAX_LABELS);
  const char **names = calloc((size_t)(n > 0 ? n : 1), sizeof *names);
  if (!names)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "%s: id2label: out of memory", path);
  enum beit_status st = BEIT_STATUS_OK;
  for (const cJSON *e = map->child; e; e = e->next) {
    char *end;
    long id = strtol(e->string, &end, 10);
    if (*end || id < 0 || id >= n || names[id] || !cJSON_IsString(e)) {
      st = beit_error_set(err, BEIT_STATUS_CONFIG,
                          "%s: key 'id2label': entry '%s' is not a unique id in [0, %ld) "
                          "mapped to a string", path, e->string, n);
      goto done;
    }
    names[id] = e->valuestring;
  }
  st = beit_config_set_labels(cfg, n, names, err);
done:
  free(names);
  return st;
}

/* pruned_heads {"layer": [head, ...]}: HF drops those heads' rows from q, k, v and the
 * output projection, a network this encoder does not build. Only "nothing pruned" loads. */
static enum beit_status check_pruned_heads(const cJSON *root, const char *path,
                                           struct beit_error *err)
{
  const cJSON *ph = cJSON_GetObjectItemCaseSensitive(root, "pruned_heads");
  if (!ph || cJSON_IsNull(ph))
    return BEIT_STATUS_OK;
  if (!cJSON_IsObject(ph))
    return beit_error_set(err, BEIT_STATUS_CONFIG, "%s: key 'pruned_heads': expected an object",
                          path);
  for (const cJSON *e = ph->child; e; e = e->next)
    if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) > 0)
      return beit_error_set(err, BEIT_STATUS_UNSUPPORTED, "%s: key 'pruned_heads': layer '%s' "
                            "has pruned attention heads; pruned models are not supported",
                            path, e->string);
  return BEIT_STATUS_OK;
}

/* One line on stderr naming the FOREIGN keys of the file, if any (nothing for our own files). */
static void warn_foreign_keys(const cJSON *root, const char *path)
{
  char list[2048];
  if (beit_config_foreign_keys(config_keys, NKEYS, root, list, sizeof list))
    fprintf(stderr, "beit: warning: %s: ignored keys that do not change the encoder: %s\n", path,
            list);
}

enum beit_status beit_config_load(struct beit_config *cfg, const char *path,
                                  struct beit_error *err)
{
  cJSON *root = NULL;
  enum beit_status st = beit_json_read_file(&root, path, err);
  if (st)
    return st;
  beit_config_free(cfg); /* while num_labels is still the length of its labels: the file's
                            num_labels replaces it, and the labels are made again below */
  long explicit_labels = -1;
  if ((st = beit_config_from_json(cfg, config_keys, NKEYS, root, path, err)) ||
      (st = check_pruned_heads(root, path, err)))
    goto done;
  if (cJSON_GetObjectItemCaseSensitive(root, "num_labels"))
    explicit_labels = cfg->num_labels;
  const cJSON *arch = cJSON_GetObjectItemCaseSensitive(root, "architectures");
  if (arch) {
    const cJSON *first = cJSON_GetArrayItem(arch, 0);
    if (!cJSON_IsArray(arch) || !cJSON_IsString(first)) {
      st = beit_error_set(err, BEIT_STATUS_CONFIG, "%s: key 'architectures': expected a list "
                          "of names", path);
      goto done;
    }
    int known = 0;
    for (const char *const *a = archs; *a; a++)
      known |= !strcmp(*a, first->valuestring);
    if (!known) {
      st = beit_error_set(err, BEIT_STATUS_CONFIG, "%s: key 'architectures': '%s' is not one of "
                          "BeitModel, BeitForMaskedImageModeling, BeitForImageClassification",
                          path, first->valuestring);
      goto done;
    }
    snprintf(cfg->architecture, sizeof cfg->architecture, "%s", first->valuestring);
  }
  const cJSON *id2label = cJSON_GetObjectItemCaseSensitive(root, "id2label");
  if (id2label) {
    if (!cJSON_IsObject(id2label)) {
      st = beit_error_set(err, BEIT_STATUS_CONFIG, "%s: key 'id2label': expected an object",
                          path);
      goto done;
    }
    if ((st = read_id2label(cfg, id2label, path, err)))
      goto done;
    if (explicit_labels >= 0 && explicit_labels != cfg->num_labels) {
      st = beit_error_set(err, BEIT_STATUS_CONFIG, "%s: key 'num_labels' is %ld but 'id2label' "
                          "has %ld entries", path, explicit_labels, cfg->num_labels);
      goto done;
    }
  } else {
    st = beit_config_set_labels(cfg, cfg->num_labels, NULL, err);
    if (st)
      goto done;
  }
  if (!(st = beit_config_validate(cfg, path, err)))
    warn_foreign_keys(root, path);
done:
  cJSON_Delete(root);
  return st;
}

enum beit_status beit_config_override(struct beit_config *cfg, const char *assignment,
                                      struct beit_error *err)
{
  long labels_before = cfg->num_labels;
  enum beit_status st = beit_config_set(cfg, config_keys, NKEYS, assignment, err);
  if (!st && cfg->num_labels != labels_before) {
    long n = cfg->num_labels;
    cfg->num_labels = labels_before; /* the length of the labels array set_labels frees */
    st = beit_config_set_labels(cfg, n, NULL, err);
  }
  return st;
}

enum beit_status beit_config_validate(const struct beit_config *c, const char *src,
                                      struct beit_error *err)
{
  if (c->image_size % c->patch_size)
    return beit_error_set(err, BEIT_STATUS_CONFIG, "%s: key 'image_size': %ld is not a multiple "
                          "of patch_size %ld", src, c->image_size, c->patch_size);
  if (c->hidden_size % c->num_attention_heads)
    return beit_error_set(err, BEIT_STATUS_CONFIG, "%s: key 'hidden_size': %ld is not a "
                          "multiple of num_attention_heads %ld", src, c->hidden_size,
                          c->num_attention_heads);
  if (c->hidden_dropout_prob != 0 || c->attention_probs_dropout_prob != 0)
    return beit_error_set(err, BEIT_STATUS_UNSUPPORTED, "%s: keys 'hidden_dropout_prob' and "
                          "'attention_probs_dropout_prob' must be 0 (BEiT recipes use drop "
                          "path, not dropout)", src);
  if (c->layer_norm_eps <= 0)
    return beit_error_set(err, BEIT_STATUS_CONFIG, "%s: key 'layer_norm_eps' must be > 0", src);
  enum beit_arch arch = beit_config_arch(c);
  if (arch == BEIT_ARCH_MIM && !c->use_mask_token)
    return beit_error_set(err, BEIT_STATUS_CONFIG, "%s: BeitForMaskedImageModeling needs "
                          "'use_mask_token': true", src);
  if (arch == BEIT_ARCH_CLASSIFIER && !c->labels)
    return beit_error_set(err, BEIT_STATUS_CONFIG, "%s: classifier without labels", src);
  return BEIT_STATUS_OK;
}

enum beit_arch beit_config_arch(const struct beit_config *cfg)
{
  if (!strcmp(cfg->architecture, "BeitForMaskedImageModeling"))
    return BEIT_ARCH_MIM;
  if (!strcmp(cfg->architecture, "BeitForImageClassification"))
    return BEIT_ARCH_CLASSIFIER;
  return BEIT_ARCH_MODEL;
}

int beit_config_is_multilabel(const struct beit_config *cfg)
{
  return !strcmp(cfg->problem_type, "multi_label_classification");
}

struct named_label {
  const char *name;
  long id;
};

static int by_name_then_id(const void *a, const void *b)
{
  const struct named_label *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  return c ? c : (x->id > y->id) - (x->id < y->id);
}

/* first[i]: label i is the first of its name (label2id keeps the first id of a repeated name,
 * as HF does: ImageNet has two "crane"s). Sorted once: a lookup in label2id per label was
 * quadratic, minutes for the 2^20 labels a config may have. NULL when out of memory. */
static char *first_of_name(const struct beit_config *cfg)
{
  size_t n = (size_t)cfg->num_labels;
  struct named_label *sorted = malloc((n ? n : 1) * sizeof *sorted);
  char *first = calloc(n ? n : 1, 1);
  if (!sorted || !first) {
    free(sorted);
    free(first);
    return NULL;
  }
  for (size_t i = 0; i < n; i++)
    sorted[i] = (struct named_label){cfg->labels[i], (long)i};
  qsort(sorted, n, sizeof *sorted, by_name_then_id);
  for (size_t i = 0; i < n; i++)
    first[sorted[i].id] = i == 0 || strcmp(sorted[i - 1].name, sorted[i].name) != 0;
  free(sorted);
  return first;
}

cJSON *beit_config_json(const struct beit_config *cfg)
{
  cJSON *root = beit_config_to_json(cfg, config_keys, NKEYS);
  char *first = cfg->labels ? first_of_name(cfg) : NULL;
  if (!root || (cfg->labels && !first))
    goto fail;
  cJSON *arch = cJSON_AddArrayToObject(root, "architectures");
  cJSON *id2label = cJSON_AddObjectToObject(root, "id2label");
  cJSON *label2id = cJSON_AddObjectToObject(root, "label2id");
  if (!arch || !id2label || !label2id || !cJSON_AddStringToObject(root, "model_type", "beit"))
    goto fail;
  cJSON_AddItemToArray(arch, cJSON_CreateString(cfg->architecture));
  if (!cfg->problem_type[0])
    cJSON_DeleteItemFromObject(root, "problem_type"); /* HF leaves it unset */
  for (long i = 0; cfg->labels && i < cfg->num_labels; i++) {
    char id[32];
    snprintf(id, sizeof id, "%ld", i);
    if (!cJSON_AddStringToObject(id2label, id, cfg->labels[i]) ||
        (first[i] && !cJSON_AddNumberToObject(label2id, cfg->labels[i], (double)i)))
      goto fail;
  }
  free(first);
  return root;
fail:
  free(first);
  cJSON_Delete(root);
  return NULL;
}

enum beit_status beit_config_save(const struct beit_config *cfg, const char *path,
                                  struct beit_error *err)
{
  cJSON *root = beit_config_json(cfg);
  if (!root)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", path);
  enum beit_status st = beit_json_write_file(path, root, err);
  cJSON_Delete(root);
  return st;
}
