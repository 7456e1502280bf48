/* beit info: describe a model folder or a model config without running it. */
#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "encoder.h"

static const char usage_text[] =
    "usage: beit info [--batch B] [--set key=value]... MODEL_DIR|CONFIG.json\n"
    "\n"
    "Prints the configuration, the parameter count per group, matmul FLOPs per image, the\n"
    "activation memory planned for a batch of B images (default 1) for training and for\n"
    "inference, the OpenMP threads and spin count this process runs with, the matrix-product\n"
    "backends (oneDNN ISA, OpenBLAS build) and the precision --precision auto resolves to here.\n";

/* Parameters per group: embeddings, each block, relative position bias, heads. */
static void print_groups(const struct beit_model *m)
{
  size_t emb = 0, blocks = 0, rel = 0, heads = 0;
  for (size_t i = 0; i < m->table.count; i++) {
    const struct beit_tensor *t = &m->table.items[i];
    if (strstr(t->name, "relative_position_bias_table"))
      rel += t->numel;
    else if (!strncmp(t->name, "beit.embeddings.", 16))
      emb += t->numel;
    else if (!strncmp(t->name, "beit.encoder.layer.", 19))
      blocks += t->numel;
    else
      heads += t->numel;
  }
  printf("parameters       %zu\n", beit_model_num_params(m));
  printf("  embeddings     %zu\n", emb);
  printf("  blocks         %zu (%zu x %zu)\n", blocks, m->L, blocks / m->L);
  printf("  rel. pos. bias %zu\n", rel);
  printf("  heads/norms    %zu\n", heads);
}

int beit_cmd_info(int argc, char **argv)
{
  static const struct option opts[] = {{"batch", required_argument, NULL, 'b'},
                                       {"set", required_argument, NULL, 's'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const char *sets[64];
  int nsets = 0;
  long batch = 1;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
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
    case 'h':
      fputs(usage_text, stdout);
      return BEIT_EXIT_OK;
    default:
      return beit_cli_usage_error("info", "unknown option");
    }
  }
  if (optind != argc - 1)
    return beit_cli_usage_error("info", "expected one MODEL_DIR or CONFIG.json");
  char path[4096];
  struct stat sb;
  const char *arg = argv[optind];
  if (stat(arg, &sb) == 0 && S_ISDIR(sb.st_mode))
    snprintf(path, sizeof path, "%s/config.json", arg);
  else
    snprintf(path, sizeof path, "%s", arg);

  struct beit_error err = {0};
  struct beit_config cfg;
  struct beit_model *m = NULL;
  beit_config_defaults(&cfg);
  int rc = BEIT_EXIT_OK;
  if (beit_config_load(&cfg, path, &err))
    goto fail;
  for (int i = 0; i < nsets; i++)
    if (beit_config_override(&cfg, sets[i], &err))
      goto fail;
  if (beit_model_create(&m, &cfg, (size_t)batch, &err))
    goto fail;
  printf("config           %s\n", path);
  printf("architecture     %s%s\n", cfg.architecture,
         beit_config_is_multilabel(&cfg) ? " (multi-label)" : "");
  printf("input            %ld x %ld x %ld, patch %ld -> %zu x %zu patches\n", cfg.num_channels,
         cfg.image_size, cfg.image_size, cfg.patch_size, m->gh, m->gw);
  printf("encoder          D %ld, depth %ld, heads %ld, MLP %ld, LayerScale %g, drop path %g\n",
         cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size,
         cfg.layer_scale_init_value, cfg.drop_path_rate);
  printf("positions        %s%s%s\n", cfg.use_absolute_position_embeddings ? "absolute " : "",
         cfg.use_shared_relative_position_bias ? "shared-relative " : "",
         cfg.use_relative_position_bias ? "per-layer-relative" : "");
  printf("pooling          %s\n", cfg.use_mean_pooling ? "mean of patch tokens + LayerNorm"
                                                       : "cls token after final LayerNorm");
  if (m->arch == BEIT_ARCH_MIM)
    printf("head             visual vocabulary %ld\n", cfg.vocab_size);
  else if (m->arch == BEIT_ARCH_CLASSIFIER)
    printf("head             %ld classes\n", cfg.num_labels);
  print_groups(m);
  printf("forward FLOPs    %.3f GFLOP per image (matmuls, 2 per multiply-add)\n",
         beit_model_flops_per_image(m) / 1e9);
  printf("training FLOPs   %.3f GFLOP per image (forward + backward, ~3x)\n",
         3.0 * beit_model_flops_per_image(m) / 1e9);
  /* the arena in fp32 and, where it can run, in bf16 (no float32 copies of product operands) */
  const int bf16 = beit_precision_bf16_available();
  double mib[2][2] = {{0}}; /* [training, inference][fp32, bf16] */
  for (int inference = 0; inference < 2; inference++) {
    if (inference && beit_model_set_inference(m, &err))
      goto fail;
    for (int h = 0; h <= bf16; h++) {
      if (beit_model_set_precision(m, h ? BEIT_PRECISION_BF16 : BEIT_PRECISION_FP32, &err))
        goto fail;
      mib[inference][h] = (double)m->arena_floats * 4.0 / 1048576.0;
    }
  }
  printf("activations      %.1f MiB planned for batch %ld (training), %.1f MiB (inference)\n",
         mib[0][0], batch, mib[1][0]);
  const char *spin = getenv("GOMP_SPINCOUNT"), *policy = getenv("OMP_WAIT_POLICY");
  printf("runtime          %d OpenMP threads, GOMP_SPINCOUNT %s, OMP_WAIT_POLICY %s\n",
         omp_get_max_threads(), spin ? spin : "(default)", policy ? policy : "(default)");
  char backend[512];
  enum beit_precision precision;
  beit_precision_describe(backend, sizeof backend);
  if (beit_precision_resolve(&precision, BEIT_PRECISION_AUTO, &err))
    goto fail;
  printf("backend          %s\n", backend);
  printf("precision        %s (auto on this machine); bf16 %s\n", beit_precision_name(precision),
         bf16 ? "available" : "unavailable (fp32 only)");
  if (bf16)
    printf("bf16 memory      activations %.1f MiB (training), %.1f MiB (inference); "
           "+%.1f MiB bf16 weight copy\n",
           mib[0][1], mib[1][1], (double)beit_model_num_params(m) * 2.0 / 1048576.0);
  goto done;
fail:
  rc = beit_cli_fail("info", &err);
done:
  beit_model_free(m);
  beit_config_free(&cfg);
  return rc;
}
