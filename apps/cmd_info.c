/* beit info: describe a model folder or a model config without running it, and this build and
 * machine (version, OpenMP runtime, matrix-product backends, precision). The facts are gathered
 * once into struct info and printed either as aligned text or, with --json, as one JSON object
 * whose key names are part of the interface (listed in usage_text; tests/test_info_e2e.py). */
#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "beit/model.h"
#include "beit/version.h"
#include "cli.h"

static const char usage_text[] =
    "usage: beit info [--json] [--batch B] [--set key=value]... [MODEL_DIR|CONFIG.json]\n"
    "\n"
    "Prints the configuration, the parameter count per group, matmul FLOPs per image, the\n"
    "activation memory planned for a batch of B images (default 1) for training and for\n"
    "inference, the OpenMP threads and spin count this process runs with, the matrix-product\n"
    "backends (oneDNN ISA, OpenBLAS build), the precision --precision auto resolves to here\n"
    "and the version. Without a model: the version, runtime, backends and precision only.\n"
    "\n"
    "  --batch B         batch size of the activation plan (default 1)\n"
    "  --set KEY=VALUE   override a config.json key first, e.g. --set image_size=384\n"
    "  --json            the same facts as one JSON object on stdout; these keys are stable:\n"
    "      version, commit, build        as beit --version\n"
    "      runtime      {omp_threads, gomp_spincount, omp_wait_policy} (null: the default)\n"
    "      backend      the backend line; isa: oneDNN's ISA (\"none\" without oneDNN)\n"
    "      precision    {auto: fp32|bf16, bf16_available: bool}\n"
    "    with a model, also:\n"
    "      model        {config, architecture, multilabel, num_channels, image_size,\n"
    "                    patch_size, patches: [h, w], hidden_size, num_hidden_layers,\n"
    "                    num_attention_heads, intermediate_size, layer_scale_init_value,\n"
    "                    drop_path_rate, use_absolute_position_embeddings,\n"
    "                    use_shared_relative_position_bias, use_relative_position_bias,\n"
    "                    pooling: mean|cls, vocab_size (MIM) or num_labels (classifier)}\n"
    "      parameters   {total, embeddings, blocks, per_block, relative_position_bias,\n"
    "                    heads_norms}\n"
    "      flops_per_image {forward, training}  (FLOPs, not GFLOPs)\n"
    "      memory       {batch, fp32: {training_activation_bytes,\n"
    "                    inference_activation_bytes}, bf16: the same + weight_copy_bytes,\n"
    "                    or null where bf16 cannot run}\n";

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

static void print_model_text(const struct info *in)
{
  const struct beit_config *cfg = in->cfg;
  printf("config           %s\n", in->path);
  printf("architecture     %s%s\n", cfg->architecture,
         beit_config_is_multilabel(cfg) ? " (multi-label)" : "");
  printf("input            %ld x %ld x %ld, patch %ld -> %zu x %zu patches\n", cfg->num_channels,
         cfg->image_size, cfg->image_size, cfg->patch_size, in->sum.gh, in->sum.gw);
  printf("encoder          D %ld, depth %ld, heads %ld, MLP %ld, LayerScale %g, drop path %g\n",
         cfg->hidden_size, cfg->num_hidden_layers, cfg->num_attention_heads,
         cfg->intermediate_size, cfg->layer_scale_init_value, cfg->drop_path_rate);
  printf("positions        %s%s%s\n", cfg->use_absolute_position_embeddings ? "absolute " : "",
         cfg->use_shared_relative_position_bias ? "shared-relative " : "",
         cfg->use_relative_position_bias ? "per-layer-relative" : "");
  printf("pooling          %s\n", cfg->use_mean_pooling ? "mean of patch tokens + LayerNorm"
                                                        : "cls token after final LayerNorm");
  if (beit_config_arch(cfg) == BEIT_ARCH_MIM)
    printf("head             visual vocabulary %ld\n", cfg->vocab_size);
  else if (beit_config_arch(cfg) == BEIT_ARCH_CLASSIFIER)
    printf("head             %ld classes\n", cfg->num_labels);
  printf("parameters       %zu\n", in->sum.params);
  printf("  embeddings     %zu\n", in->sum.embeddings);
  printf("  blocks         %zu (%zu x %zu)\n", in->sum.blocks, in->sum.layers,
         in->sum.blocks / in->sum.layers);
  printf("  rel. pos. bias %zu\n", in->sum.relative_position_bias);
  printf("  heads/norms    %zu\n", in->sum.heads);
  printf("forward FLOPs    %.3f GFLOP per image (matmuls, 2 per multiply-add)\n",
         in->sum.flops / 1e9);
  printf("training FLOPs   %.3f GFLOP per image (forward + backward, ~3x)\n",
         3.0 * in->sum.flops / 1e9);
  printf("activations      %.1f MiB planned for batch %ld (training), %.1f MiB (inference)\n",
         mib(in->sum.arena_bytes[0][0]), in->batch, mib(in->sum.arena_bytes[1][0]));
}

static void print_text(const struct info *in)
{
  if (in->cfg)
    print_model_text(in);
  printf("runtime          %d OpenMP threads, GOMP_SPINCOUNT %s, OMP_WAIT_POLICY %s\n",
         in->threads, in->spin ? in->spin : "(default)", in->policy ? in->policy : "(default)");
  printf("backend          %s\n", in->backend);
  printf("precision        %s (auto on this machine); bf16 %s\n",
         beit_precision_name(in->auto_precision),
         in->bf16 ? "available" : "unavailable (fp32 only)");
  if (in->cfg && in->bf16)
    printf("bf16 memory      activations %.1f MiB (training), %.1f MiB (inference); "
           "+%.1f MiB bf16 weight copy\n",
           mib(in->sum.arena_bytes[0][1]), mib(in->sum.arena_bytes[1][1]),
           mib(in->sum.params * 2));
  printf("version          beit %s, commit %s\n", beit_version_string(), beit_version_commit());
  printf("build            %s\n", beit_version_build());
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

static enum beit_status print_json(const struct info *in, struct beit_error *err)
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
  puts(text);
  cJSON_free(text);
  return BEIT_STATUS_OK;
}

int beit_cmd_info(int argc, char **argv)
{
  static const struct option opts[] = {
      BEIT_CLI_ARG("batch", 'b'), BEIT_CLI_ARG("set", 's'), BEIT_CLI_FLAG("json", 'j'),
      BEIT_CLI_END};
  const char *sets[64];
  int nsets = 0, json = 0;
  long batch = 1;
  int c, rc = BEIT_CLI_GO_ON;
  optind = 1;
  while (beit_cli_next(&c, argc, argv, opts, "info", usage_text, &rc)) {
    switch (c) {
    case 'b':
      if (sscanf(optarg, "%ld", &batch) != 1 || batch < 1)
        return beit_cli_usage_error("info", "--batch: expected a positive integer");
      break;
    case 's':
      if (nsets == 64)
        return beit_cli_usage_error("info", "too many --set options");
      sets[nsets++] = optarg;
      break;
    case 'j':
      json = 1;
      break;
    }
  }
  if (rc != BEIT_CLI_GO_ON)
    return rc;
  if (optind < argc - 1)
    return beit_cli_usage_error("info", "expected at most one MODEL_DIR or CONFIG.json");
  if (optind == argc && nsets)
    return beit_cli_usage_error("info", "--set needs a MODEL_DIR or CONFIG.json");

  struct info in = {.batch = batch, .threads = omp_get_max_threads()};
  struct beit_error err = {0};
  struct beit_config cfg;
  char path[4096];
  beit_config_defaults(&cfg);
  rc = BEIT_EXIT_OK;
  in.spin = getenv("GOMP_SPINCOUNT");
  in.policy = getenv("OMP_WAIT_POLICY");
  in.bf16 = beit_precision_bf16_available();
  beit_precision_describe(in.backend, sizeof in.backend);
  if (beit_precision_resolve(&in.auto_precision, BEIT_PRECISION_AUTO, &err))
    goto fail;
  if (optind == argc - 1) {
    struct stat sb;
    const char *arg = argv[optind];
    if (stat(arg, &sb) == 0 && S_ISDIR(sb.st_mode))
      snprintf(path, sizeof path, "%s/config.json", arg);
    else
      snprintf(path, sizeof path, "%s", arg);
    if (beit_config_load(&cfg, path, &err))
      goto fail;
    for (int i = 0; i < nsets; i++)
      if (beit_config_override(&cfg, sets[i], &err))
        goto fail;
    if (beit_model_summarize(&cfg, (size_t)batch, in.bf16, &in.sum, &err))
      goto fail;
    in.path = path;
    in.cfg = &cfg;
  }
  if (json) {
    if (print_json(&in, &err))
      goto fail;
  } else {
    print_text(&in);
  }
  goto done;
fail:
  rc = beit_cli_fail("info", &err);
done:
  beit_config_free(&cfg);
  return rc;
}
