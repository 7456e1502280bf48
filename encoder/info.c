/* `beit info`'s report (include/beit/model.h beit_model_info): a model folder or config
 * described without running it (beit_model_summarize), and this build and machine (version,
 * OpenMP runtime, matrix-product backends, precision). The facts are gathered once into struct
 * info and printed either as aligned text or as one JSON object whose key names are part of the
 * interface (docs/commands/info.md; tests/test_info_e2e.py). What it is not: option parsing
 * (apps/cmd_info.c). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "beit/model.h"
#include "beit/version.h"

/* Everything info reports; the model part only when a model was given (cfg not NULL). */
struct info {
  char backend[512];
  enum beit_precision auto_precision;
  int bf16; /* bf16 matrix products available here */
  int threads;
  const char *spin, *policy; /* NULL: libgomp's default */
  /* model */
  const char *path;
  const struct beit_config *cfg;
  long batch;
  struct beit_model_summary sum; /* beit_model_summarize */
};

static double mib(size_t bytes) { return (double)bytes / 1048576.0; }

static void print_model_text(FILE *out, const struct info *in)
{
  const struct beit_config *cfg = in->cfg;
  fprintf(out, "config           %s\n", in->path);
  fprintf(out, "architecture     %s%s\n", cfg->architecture,
         beit_config_is_multilabel(cfg) ? " (multi-label)" : "");
  fprintf(out, "input            %ld x %ld x %ld, patch %ld -> %zu x %zu patches\n", cfg->num_channels,
         cfg->image_size, cfg->image_size, cfg->patch_size, in->sum.gh, in->sum.gw);
  fprintf(out, "encoder          D %ld, depth %ld, heads %ld, MLP %ld, LayerScale %g, drop path %g\n",
         cfg->hidden_size, cfg->num_hidden_layers, cfg->num_attention_heads,
         cfg->intermediate_size, cfg->layer_scale_init_value, cfg->drop_path_rate);
  fprintf(out, "positions        %s%s%s\n", cfg->use_absolute_position_embeddings ? "absolute " : "",
         cfg->use_shared_relative_position_bias ? "shared-relative " : "",
         cfg->use_relative_position_bias ? "per-layer-relative" : "");
  fprintf(out, "pooling          %s\n", cfg->use_mean_pooling ? "mean of patch tokens + LayerNorm"
                                                        : "cls token after final LayerNorm");
  if (beit_config_arch(cfg) == BEIT_ARCH_MIM)
    fprintf(out, "head             visual vocabulary %ld\n", cfg->vocab_size);
  else if (beit_config_arch(cfg) == BEIT_ARCH_CLASSIFIER)
    fprintf(out, "head             %ld classes\n", cfg->num_labels);
  fprintf(out, "parameters       %zu\n", in->sum.params);
  fprintf(out, "  embeddings     %zu\n", in->sum.embeddings);
  fprintf(out, "  blocks         %zu (%zu x %zu)\n", in->sum.blocks, in->sum.layers,
         in->sum.blocks / in->sum.layers);
  fprintf(out, "  rel. pos. bias %zu\n", in->sum.relative_position_bias);
  fprintf(out, "  heads/norms    %zu\n", in->sum.heads);
  fprintf(out, "forward FLOPs    %.3f GFLOP per image (matmuls, 2 per multiply-add)\n",
         in->sum.flops / 1e9);
  fprintf(out, "training FLOPs   %.3f GFLOP per image (forward + backward, ~3x)\n",
         3.0 * in->sum.flops / 1e9);
  fprintf(out, "activations      %.1f MiB planned for batch %ld (training), %.1f MiB (inference)\n",
         mib(in->sum.arena_bytes[0][0]), in->batch, mib(in->sum.arena_bytes[1][0]));
}

static void print_text(FILE *out, const struct info *in)
{
  if (in->cfg)
    print_model_text(out, in);
  fprintf(out, "runtime          %d OpenMP threads, GOMP_SPINCOUNT %s, OMP_WAIT_POLICY %s\n",
         in->threads, in->spin ? in->spin : "(default)", in->policy ? in->policy : "(default)");
  fprintf(out, "backend          %s\n", in->backend);
  fprintf(out, "precision        %s (auto on this machine); bf16 %s\n",
         beit_precision_name(in->auto_precision),
         in->bf16 ? "available" : "unavailable (fp32 only)");
  if (in->cfg && in->bf16)
    fprintf(out, "bf16 memory      activations %.1f MiB (training), %.1f MiB (inference); "
           "+%.1f MiB bf16 weight copy\n",
           mib(in->sum.arena_bytes[0][1]), mib(in->sum.arena_bytes[1][1]),
           mib(in->sum.params * 2));
  fprintf(out, "version          beit %s, commit %s\n", beit_version_string(), beit_version_commit());
  fprintf(out, "build            %s\n", beit_version_build());
}

static void add_string_or_null(cJSON *obj, const char *key, const char *value)
{
  if (value)
    cJSON_AddStringToObject(obj, key, value);
  else
    cJSON_AddNullToObject(obj, key);
}

static void add_model_json(cJSON *root, const struct info *in)
{
  const struct beit_config *cfg = in->cfg;
  cJSON *model = cJSON_AddObjectToObject(root, "model");
  cJSON_AddStringToObject(model, "config", in->path);
  cJSON_AddStringToObject(model, "architecture", cfg->architecture);
  cJSON_AddBoolToObject(model, "multilabel", beit_config_is_multilabel(cfg));
  cJSON_AddNumberToObject(model, "num_channels", (double)cfg->num_channels);
  cJSON_AddNumberToObject(model, "image_size", (double)cfg->image_size);
  cJSON_AddNumberToObject(model, "patch_size", (double)cfg->patch_size);
  const int patches[2] = {(int)in->sum.gh, (int)in->sum.gw};
  cJSON_AddItemToObject(model, "patches", cJSON_CreateIntArray(patches, 2));
  cJSON_AddNumberToObject(model, "hidden_size", (double)cfg->hidden_size);
  cJSON_AddNumberToObject(model, "num_hidden_layers", (double)cfg->num_hidden_layers);
  cJSON_AddNumberToObject(model, "num_attention_heads", (double)cfg->num_attention_heads);
  cJSON_AddNumberToObject(model, "intermediate_size", (double)cfg->intermediate_size);
  cJSON_AddNumberToObject(model, "layer_scale_init_value", cfg->layer_scale_init_value);
  cJSON_AddNumberToObject(model, "drop_path_rate", cfg->drop_path_rate);
  cJSON_AddBoolToObject(model, "use_absolute_position_embeddings",
                        cfg->use_absolute_position_embeddings);
  cJSON_AddBoolToObject(model, "use_shared_relative_position_bias",
                        cfg->use_shared_relative_position_bias);
  cJSON_AddBoolToObject(model, "use_relative_position_bias", cfg->use_relative_position_bias);
  cJSON_AddStringToObject(model, "pooling", cfg->use_mean_pooling ? "mean" : "cls");
  if (beit_config_arch(cfg) == BEIT_ARCH_MIM)
    cJSON_AddNumberToObject(model, "vocab_size", (double)cfg->vocab_size);
  else if (beit_config_arch(cfg) == BEIT_ARCH_CLASSIFIER)
    cJSON_AddNumberToObject(model, "num_labels", (double)cfg->num_labels);

  cJSON *params = cJSON_AddObjectToObject(root, "parameters");
  cJSON_AddNumberToObject(params, "total", (double)in->sum.params);
  cJSON_AddNumberToObject(params, "embeddings", (double)in->sum.embeddings);
  cJSON_AddNumberToObject(params, "blocks", (double)in->sum.blocks);
  cJSON_AddNumberToObject(params, "per_block", (double)(in->sum.blocks / in->sum.layers));
  cJSON_AddNumberToObject(params, "relative_position_bias", (double)in->sum.relative_position_bias);
  cJSON_AddNumberToObject(params, "heads_norms", (double)in->sum.heads);

  cJSON *flops = cJSON_AddObjectToObject(root, "flops_per_image");
  cJSON_AddNumberToObject(flops, "forward", in->sum.flops);
  cJSON_AddNumberToObject(flops, "training", 3.0 * in->sum.flops);

  cJSON *mem = cJSON_AddObjectToObject(root, "memory");
  cJSON_AddNumberToObject(mem, "batch", (double)in->batch);
  for (int h = 0; h < 2; h++) {
    const char *name = h ? "bf16" : "fp32";
    if (h && !in->bf16) {
      cJSON_AddNullToObject(mem, name);
      continue;
    }
    cJSON *p = cJSON_AddObjectToObject(mem, name);
    cJSON_AddNumberToObject(p, "training_activation_bytes", (double)in->sum.arena_bytes[0][h]);
    cJSON_AddNumberToObject(p, "inference_activation_bytes", (double)in->sum.arena_bytes[1][h]);
    if (h)
      cJSON_AddNumberToObject(p, "weight_copy_bytes", (double)in->sum.params * 2.0);
  }
}

static enum beit_status print_json(FILE *out, const struct info *in, struct beit_error *err)
{
  cJSON *root = cJSON_CreateObject();
  if (!root)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "info: out of memory");
  cJSON_AddStringToObject(root, "version", beit_version_string());
  cJSON_AddStringToObject(root, "commit", beit_version_commit());
  cJSON_AddStringToObject(root, "build", beit_version_build());
  cJSON *runtime = cJSON_AddObjectToObject(root, "runtime");
  cJSON_AddNumberToObject(runtime, "omp_threads", in->threads);
  add_string_or_null(runtime, "gomp_spincount", in->spin);
  add_string_or_null(runtime, "omp_wait_policy", in->policy);
  cJSON_AddStringToObject(root, "backend", in->backend);
  cJSON_AddStringToObject(root, "isa", beit_precision_isa());
  cJSON *precision = cJSON_AddObjectToObject(root, "precision");
  cJSON_AddStringToObject(precision, "auto", beit_precision_name(in->auto_precision));
  cJSON_AddBoolToObject(precision, "bf16_available", in->bf16);
  if (in->cfg)
    add_model_json(root, in);
  char *text = cJSON_Print(root);
  cJSON_Delete(root);
  if (!text)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "info: out of memory");
  fprintf(out, "%s\n", text);
  cJSON_free(text);
  return BEIT_STATUS_OK;
}

/* The model's part of *in: config path (a folder's config.json, or the file) with the
 * overrides, summarized; cfg must be freed by the caller either way. */
static enum beit_status load_model(struct info *in, struct beit_config *cfg, char *path,
                                   size_t size, const struct beit_model_info_options *o,
                                   struct beit_error *err)
{
  struct stat sb;
  enum beit_status st;
  if (stat(o->model, &sb) == 0 && S_ISDIR(sb.st_mode))
    snprintf(path, size, "%s/config.json", o->model);
  else
    snprintf(path, size, "%s", o->model);
  if ((st = beit_config_load(cfg, path, err)))
    return st;
  for (int i = 0; i < o->nsets; i++)
    if ((st = beit_config_override(cfg, o->sets[i], err)))
      return st;
  if ((st = beit_model_summarize(cfg, (size_t)o->batch, in->bf16, &in->sum, err)))
    return st;
  in->path = path;
  in->cfg = cfg;
  return BEIT_STATUS_OK;
}

enum beit_status beit_model_info(const struct beit_model_info_options *o, FILE *out,
                                 struct beit_error *err)
{
  struct info in = {.batch = o->batch, .threads = omp_get_max_threads()};
  struct beit_config cfg;
  char path[4096];
  beit_config_defaults(&cfg);
  in.spin = getenv("GOMP_SPINCOUNT");
  in.policy = getenv("OMP_WAIT_POLICY");
  in.bf16 = beit_precision_bf16_available();
  beit_precision_describe(in.backend, sizeof in.backend);
  enum beit_status st = beit_precision_resolve(&in.auto_precision, BEIT_PRECISION_AUTO, err);
  if (!st && o->model)
    st = load_model(&in, &cfg, path, sizeof path, o, err);
  if (!st && o->json)
    st = print_json(out, &in, err);
  else if (!st)
    print_text(out, &in);
  beit_config_free(&cfg);
  return st;
}
