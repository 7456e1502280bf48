/* beit eval: metrics of a classifier folder on a dataset folder (mim/eval.h, mim/metrics.h), its
 * images preprocessed as the folder says (beit_data_preprocess_model), like predict and serve. */
#include <errno.h>
#include <float.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "beit/distributed.h"
#include "beit/mim.h"
#include "cli.h"
#include "config_table.h"
#include "beit/model.h"

static const char usage_text[] =
    "usage: beit eval --model DIR --data DIR [--json FILE] [--predictions FILE] [--batch N]\n"
    "                 [--threshold P] [--resize center_crop|direct] [--crop-pct F]\n"
    "                 [--norm inception|imagenet] [--workers N] [--rows N]\n"
    "                 [--precision auto|fp32|bf16]\n"
    "\n"
    "Evaluates a BeitForImageClassification folder (beit finetune's checkpoint-<step>, an HF\n"
    "folder) on a dataset folder (beit pack), each image preprocessed as the model folder's\n"
    "preprocessor_config.json says (fine-tuning writes its recipe's eval transform there) -- the\n"
    "pixels beit predict and beit serve compute -- or, without that file, as they do: direct\n"
    "resize to the model's size, bicubic, mean = std = 0.5. --resize, --crop-pct and --norm\n"
    "override the file. The preprocessing used is printed first.\n"
    "Multi-class: top-1 / top-5 accuracy, log loss, per-class precision, recall and F1, confusion\n"
    "matrix. Multi-label: mAP and per-class AP, micro and macro F1 at the threshold, subset\n"
    "accuracy, log loss. Ties go to the lower class index; undefined ratios (a class never\n"
    "predicted, a class with no positives) print '-' and are null in JSON, and macro averages\n"
    "are over the classes where they are defined. Under mpirun every rank evaluates a slice.\n"
    "\n"
    "  --model DIR       classifier folder (config.json + model.safetensors\n"
    "                    [+ preprocessor_config.json])\n"
    "  --data DIR        dataset folder; its classes must be the model's\n"
    "  --json FILE       also write the full report (per class, confusion matrix) as JSON\n"
    "  --predictions FILE  one JSON line per image in dataset order: {\"index\": i, \"probs\":\n"
    "                    [...], \"labels\": [...]}, every label in the model's order (as beit\n"
    "                    predict); one rank only\n"
    "  --batch N         images per forward (default 64)\n"
    "  --threshold P     multi-label decision threshold on the probability (default 0.5)\n"
    "  --resize MODE     overrides the model's resize and crop: center_crop: shorter side to\n"
    "                    size/crop_pct, centre crop (unilm); direct: resize to size x size\n"
    "  --crop-pct F      centre crop fraction (default 0.875; implies center_crop unless\n"
    "                    --resize direct)\n"
    "  --norm NAME       overrides the model's mean/std: inception: mean = std = 0.5;\n"
    "                    imagenet: ImageNet mean/std\n"
    "  --workers N       loader threads (default 2)\n"
    "  --rows N          per-class rows in the table (default 50; more classes: lowest F1)\n"
    "  --precision P     matrix products: bf16 (bfloat16 operands, float32 accumulation), fp32,\n"
    "                    or auto (the default: bf16 where the CPU has AMX, else fp32)\n";

/* Command-line overrides of the model's preprocessing (-1 / 0: not given). */
struct overrides {
  int resize;       /* enum beit_data_eval_resize */
  double crop_pct;
  int imagenet;     /* --norm */
};

/* The model folder's preprocessing with the command line's overrides on top. */
static enum beit_status preprocessing(struct beit_data_preprocess *pp, const char *dir, int S,
                                      const struct overrides *ov, struct beit_error *err)
{
  enum beit_status st = beit_data_preprocess_model(pp, dir, S, err);
  if (st)
    return st;
  if (ov->resize >= 0 || ov->crop_pct > 0) {
    enum beit_data_eval_resize r = ov->resize >= 0 ? (enum beit_data_eval_resize)ov->resize
                                                   : BEIT_DATA_EVAL_CENTER_CROP;
    beit_data_preprocess_set_eval_resize(pp, S, r, ov->crop_pct > 0 ? ov->crop_pct : 0.875);
    strncat(pp->source, ov->resize >= 0 ? " + --resize" : " + --crop-pct",
            sizeof pp->source - strlen(pp->source) - 1);
  }
  if (ov->imagenet >= 0) {
    struct beit_data_transform t;
    beit_data_transform_defaults(&t, BEIT_DATA_MODE_EVAL);
    if (ov->imagenet)
      beit_data_transform_imagenet_norm(&t);
    memcpy(pp->mean, t.mean, sizeof pp->mean);
    memcpy(pp->std, t.std, sizeof pp->std);
    pp->rescale_factor = 1.0 / 255.0;
    strncat(pp->source, " + --norm", sizeof pp->source - strlen(pp->source) - 1);
  }
  return BEIT_STATUS_OK;
}

int beit_cmd_eval(int argc, char **argv)
{
  static const struct option opts[] = {
      BEIT_CLI_ARG("model", 'm'), BEIT_CLI_ARG("data", 'd'), BEIT_CLI_ARG("json", 'j'),
      BEIT_CLI_ARG("predictions", 'O'), BEIT_CLI_ARG("batch", 'b'), BEIT_CLI_ARG("threshold", 't'),
      BEIT_CLI_ARG("resize", 'r'), BEIT_CLI_ARG("crop-pct", 'p'), BEIT_CLI_ARG("norm", 'n'),
      BEIT_CLI_ARG("workers", 'w'), BEIT_CLI_ARG("rows", 'R'), BEIT_CLI_ARG("precision", 'P'),
      BEIT_CLI_END};
  struct beit_eval_options o;
  const char *model_dir = NULL, *json = NULL, *predictions = NULL;
  struct overrides ov = {-1, 0.0, -1};
  enum beit_precision requested = BEIT_PRECISION_AUTO, precision;
  int c, rc = BEIT_CLI_GO_ON, direct = 0;
  beit_eval_defaults(&o);
  double batch = (double)o.batch, workers = o.num_workers, rows = 50;
  optind = 1;
  while (beit_cli_next(&c, argc, argv, opts, "eval", usage_text, &rc)) {
    switch (c) {
    case 'm': model_dir = optarg; break;
    case 'd': o.data = optarg; break;
    case 'j': json = optarg; break;
    case 'O': predictions = optarg; break;
    case 'b':
      rc = beit_cli_number("eval", optarg, 1, 1, 65536, &batch, "--batch: '%s' is not in "
                           "1..65536", optarg);
      break;
    case 't':
      rc = beit_cli_number("eval", optarg, 0, 0, 1, &o.threshold, "--threshold: '%s' is not in "
                           "[0, 1]", optarg);
      break;
    case 'r':
      rc = beit_cli_choice("eval", "resize", optarg, "center_crop", "direct", &direct);
      ov.resize = direct ? BEIT_DATA_EVAL_DIRECT : BEIT_DATA_EVAL_CENTER_CROP;
      break;
    case 'p':
      rc = beit_cli_number("eval", optarg, 0, DBL_TRUE_MIN, 1, &ov.crop_pct, "--crop-pct: '%s' "
                           "is not in (0, 1]", optarg);
      break;
    case 'n':
      rc = beit_cli_choice("eval", "norm", optarg, "inception", "imagenet", &ov.imagenet);
      break;
    case 'w':
      rc = beit_cli_number("eval", optarg, 1, 1, 256, &workers, "--workers: '%s' is not in "
                           "1..256", optarg);
      break;
    case 'R':
      rc = beit_cli_number("eval", optarg, 1, 0, BEIT_CLI_INT_MAX, &rows, "--rows: '%s' is not a "
                           "count", optarg);
      break;
    case 'P':
      rc = beit_cli_parse_precision("eval", optarg, &requested);
      break;
    }
  }
  if (rc != BEIT_CLI_GO_ON)
    return rc;
  o.batch = (size_t)batch;
  o.num_workers = (int)workers;
  if (!model_dir || !o.data || optind != argc)
    return beit_cli_usage_error("eval", "--model and --data are required");

  struct beit_error err = {0};
  struct beit_model *m = NULL;
  struct beit_metrics mt;
  struct beit_metrics_report rep;
  char desc[256];
  enum beit_status st;
  struct beit_dist *dist = beit_cli_dist_init("eval", &argc, &argv);
  if ((st = beit_cli_resolve_precision("eval", requested, beit_dist_is_root(dist) ? stderr : NULL,
                                       &precision, &err)) ||
      (st = beit_model_load(&m, model_dir, o.batch, &err)) ||
      (st = beit_model_set_inference(m, &err)) ||
      (st = beit_model_set_precision(m, precision, &err)) ||
      (st = preprocessing(&o.preprocess, model_dir, (int)beit_model_config(m)->image_size, &ov,
                          &err)))
    goto done;
  beit_data_preprocess_describe(&o.preprocess, desc, sizeof desc);
  if (beit_dist_is_root(dist))
    fprintf(stderr, "preprocessing: %s\n", desc);
  if (predictions && !(o.predictions = fopen(predictions, "w"))) {
    st = beit_error_set(&err, BEIT_STATUS_IO, "%s: cannot create: %s", predictions,
                        strerror(errno));
    goto done;
  }
  if ((st = beit_eval_run(m, dist, &o, &mt, &err)))
    goto done;
  if ((st = beit_metrics_report(&mt, &rep, &err))) {
    beit_metrics_free(&mt);
    goto done;
  }
  if (beit_dist_is_root(dist)) {
    const char *const *names = (const char *const *)beit_model_config(m)->labels;
    printf("model %s on %s: ", model_dir, o.data);
    beit_eval_print(stdout, &rep, names, (size_t)rows);
    if (json) {
      cJSON *j = beit_metrics_report_json(&rep, names);
      if (j) {
        cJSON_AddStringToObject(j, "model", model_dir);
        cJSON_AddStringToObject(j, "data", o.data);
        cJSON_AddStringToObject(j, "preprocessing", desc);
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
  if (o.predictions && fclose(o.predictions) != 0 && !st)
    st = beit_error_set(&err, BEIT_STATUS_IO, "%s: write error", predictions);
  beit_model_free(m);
  return beit_cli_dist_end("eval", dist, st, &err);
}
