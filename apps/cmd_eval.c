/* beit eval: metrics of a classifier folder on a dataset folder (mim/eval.h, mim/metrics.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "beit/distributed.h"
#include "cli.h"
#include "config_table.h"
#include "encoder.h"
#include "eval.h"

static const char usage_text[] =
    "usage: beit eval --model DIR --data DIR [--json FILE] [--batch N] [--threshold P]\n"
    "                 [--resize center_crop|direct] [--crop-pct F] [--norm inception|imagenet]\n"
    "                 [--workers N] [--rows N] [--precision auto|fp32|bf16]\n"
    "\n"
    "Evaluates a BeitForImageClassification folder (beit finetune's checkpoint-<step>, an HF\n"
    "folder) on a dataset folder (beit pack) with the deterministic eval transform.\n"
    "Multi-class: top-1 / top-5 accuracy, log loss, per-class precision, recall and F1, confusion\n"
    "matrix. Multi-label: mAP and per-class AP, micro and macro F1 at the threshold, subset\n"
    "accuracy, log loss. Ties go to the lower class index; undefined ratios (a class never\n"
    "predicted, a class with no positives) print '-' and are null in JSON, and macro averages\n"
    "are over the classes where they are defined. Under mpirun every rank evaluates a slice.\n"
    "\n"
    "  --model DIR       classifier folder (config.json + model.safetensors)\n"
    "  --data DIR        dataset folder; its classes must be the model's\n"
    "  --json FILE       also write the full report (per class, confusion matrix) as JSON\n"
    "  --batch N         images per forward (default 64)\n"
    "  --threshold P     multi-label decision threshold on the probability (default 0.5)\n"
    "  --resize MODE     center_crop: shorter side to size/crop_pct, centre crop (unilm, default);\n"
    "                    direct: resize to size x size (HF microsoft/ checkpoints)\n"
    "  --crop-pct F      centre crop fraction (default 0.875)\n"
    "  --norm NAME       inception: mean = std = 0.5 (default); imagenet: ImageNet mean/std\n"
    "  --workers N       loader threads (default 2)\n"
    "  --rows N          per-class rows in the table (default 50; more classes: lowest F1)\n"
    "  --precision P     matrix products: bf16 (bfloat16 operands, float32 accumulation), fp32,\n"
    "                    or auto (the default: bf16 where the CPU has AMX, else fp32)\n";

int beit_cmd_eval(int argc, char **argv)
{
  static const struct option opts[] = {{"model", required_argument, NULL, 'm'},
                                       {"data", required_argument, NULL, 'd'},
                                       {"json", required_argument, NULL, 'j'},
                                       {"batch", required_argument, NULL, 'b'},
                                       {"threshold", required_argument, NULL, 't'},
                                       {"resize", required_argument, NULL, 'r'},
                                       {"crop-pct", required_argument, NULL, 'p'},
                                       {"norm", required_argument, NULL, 'n'},
                                       {"workers", required_argument, NULL, 'w'},
                                       {"rows", required_argument, NULL, 'R'},
                                       {"precision", required_argument, NULL, 'P'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  struct beit_eval_options o;
  const char *model_dir = NULL, *json = NULL;
  long rows = 50;
  enum beit_precision requested = BEIT_PRECISION_AUTO, precision;
  char *end;
  int c;
  beit_eval_defaults(&o);
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'm': model_dir = optarg; break;
    case 'd': o.data = optarg; break;
    case 'j': json = optarg; break;
    case 'b':
      o.batch = (size_t)strtoul(optarg, &end, 10);
      if (*end || o.batch == 0 || o.batch > 65536)
        return beit_cli_usage_error("eval", "--batch: '%s' is not in 1..65536", optarg);
      break;
    case 't':
      o.threshold = strtod(optarg, &end);
      if (*end || !(o.threshold >= 0 && o.threshold <= 1))
        return beit_cli_usage_error("eval", "--threshold: '%s' is not in [0, 1]", optarg);
      break;
    case 'r':
      if (!strcmp(optarg, "center_crop"))
        o.resize = BEIT_DATA_EVAL_CENTER_CROP;
      else if (!strcmp(optarg, "direct"))
        o.resize = BEIT_DATA_EVAL_DIRECT;
      else
        return beit_cli_usage_error("eval", "--resize: '%s' is not center_crop or direct", optarg);
      break;
    case 'p':
      o.crop_pct = strtod(optarg, &end);
      if (*end || !(o.crop_pct > 0 && o.crop_pct <= 1))
        return beit_cli_usage_error("eval", "--crop-pct: '%s' is not in (0, 1]", optarg);
      break;
    case 'n':
      if (strcmp(optarg, "inception") && strcmp(optarg, "imagenet"))
        return beit_cli_usage_error("eval", "--norm: '%s' is not inception or imagenet", optarg);
      o.imagenet_norm = !strcmp(optarg, "imagenet");
      break;
    case 'w':
      o.num_workers = (int)strtol(optarg, &end, 10);
      if (*end || o.num_workers < 1 || o.num_workers > 256)
        return beit_cli_usage_error("eval", "--workers: '%s' is not in 1..256", optarg);
      break;
    case 'R':
      rows = strtol(optarg, &end, 10);
      if (*end || rows < 0)
        return beit_cli_usage_error("eval", "--rows: '%s' is not a count", optarg);
      break;
    case 'P':
      if (beit_cli_parse_precision("eval", optarg, &requested))
        return BEIT_EXIT_USAGE;
      break;
    case 'h': fputs(usage_text, stdout); return BEIT_EXIT_OK;
    default: return beit_cli_usage_error("eval", "unknown option");
    }
  }
  if (!model_dir || !o.data || optind != argc)
    return beit_cli_usage_error("eval", "--model and --data are required");

  struct beit_error err = {0};
  struct beit_model *m = NULL;
  struct beit_metrics mt;
  struct beit_metrics_report rep;
  enum beit_status st;
  struct beit_dist *dist = beit_cli_dist_init("eval", &argc, &argv);
  if ((st = beit_cli_resolve_precision("eval", requested, beit_dist_is_root(dist) ? stderr : NULL,
                                       &precision, &err)) ||
      (st = beit_model_load(&m, model_dir, o.batch, &err)) ||
      (st = beit_model_set_inference(m, &err)) ||
      (st = beit_model_set_precision(m, precision, &err)) ||
      (st = beit_eval_run(m, dist, &o, &mt, &err)))
    goto done;
  if ((st = beit_metrics_report(&mt, &rep, &err))) {
    beit_metrics_free(&mt);
    goto done;
  }
  if (beit_dist_is_root(dist)) {
    const char *const *names = (const char *const *)m->cfg.labels;
    printf("model %s on %s: ", model_dir, o.data);
    beit_eval_print(stdout, &rep, names, (size_t)rows);
    if (json) {
      cJSON *j = beit_metrics_report_json(&rep, names);
      if (j) {
        cJSON_AddStringToObject(j, "model", model_dir);
        cJSON_AddStringToObject(j, "data", o.data);
        /* not "precision": the report's per-class metric has that name */
        cJSON_AddStringToObject(j, "compute_precision", beit_precision_name(precision));
      }
      st = j ? beit_json_write_file(json, j, &err)
             : beit_error_set(&err, BEIT_STATUS_NOMEM, "%s: out of memory", json);
      cJSON_Delete(j);
    }
  }
  beit_metrics_report_free(&rep);
  beit_metrics_free(&mt);
done:
  beit_model_free(m);
  return beit_cli_dist_end("eval", dist, st, &err);
}
