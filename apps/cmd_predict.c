/* beit predict: batch prediction with a classifier model folder (beit/predict.h, serve/predict.c):
 * parses the options, resolves the precision, runs, and turns the outcome into an exit code (1
 * when any input failed: its error line stands in the output). */
#include <getopt.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>

#include "beit/predict.h"
#include "cli.h"

static const char usage_text[] =
    "usage: beit predict --model DIR [options] INPUT...\n"
    "\n"
    "INPUT: an image file (JPEG, PNG with PIL's decoders; BMP, GIF, TGA, PSD, PNM with stb_image,\n"
    "fine for local files: beit serve takes JPEG and PNG only), a folder (images found recursively,\n"
    "in sorted order), a dataset folder (index.json + shards), or a JSON lines file (.jsonl, .json,\n"
    "or - for stdin) with one request per line: {\"input_data\": {\"columns\": [\"image\"],\n"
    "\"index\": [...], \"data\": [\"<base64 or URL>\", ...]}}.\n"
    "Output: one JSON line per image, {\"probs\": [...], \"labels\": [...]}, in input order;\n"
    "every label in the model's order unless --top-k or --threshold select (then sorted by\n"
    "probability). Multi-label models give independent sigmoid probabilities.\n"
    "\n"
    "  --model DIR         BeitForImageClassification folder (config.json, model.safetensors,\n"
    "                      optional preprocessor_config.json: resize, crop, mean/std, as beit\n"
    "                      finetune writes from its recipe's eval transform and beit export\n"
    "                      copies; without it direct resize, bicubic, mean = std = 0.5). The\n"
    "                      same preprocessing as beit eval and beit serve\n"
    "  --top-k K           keep the K most probable labels\n"
    "  --threshold T       keep labels with probability >= T\n"
    "  --batch B           images per forward (default 8)\n"
    "  --threads N         OpenMP threads (default: all cores)\n"
    "  --precision P       matrix products: bf16 (bfloat16 operands, float32 accumulation),\n"
    "                      fp32, or auto (the default: bf16 where the CPU has AMX, else fp32)\n"
    "  --output FILE       write the JSON lines to FILE (default: stdout)\n"
    "  --with-input        add \"input\": <path, dataset key or file:line:index> to each line\n"
    "  --visualize OUT.png draw the first images with their top labels as bar charts\n"
    "  --visualize-max N   images in the picture (default 8)\n"
    "  --allow-urls        fetch http(s) URLs found in JSON lines requests (public addresses)\n"
    "  --allow-private-urls  URLs may also reach loopback and private networks\n"
    "  --url-max-bytes N   size cap of a fetched image (default 16777216)\n"
    "  --url-timeout S     timeout of one fetch in seconds (default 10)\n"
    "  --max-pixels N      decoded-pixel cap, checked from the header (default 40000000)\n"
    "  --quiet             no progress line (nor the first line naming the precision)\n";

/* One option of predict's loop into *o (c: its code): BEIT_CLI_GO_ON, or the exit code of a
 * printed usage error. */
static int option(int c, const char *arg, struct beit_predict_options *o, const char **model_dir,
                  int *threads)
{
  const char *cmd = "predict";
  double v = 0;
  int rc = BEIT_CLI_GO_ON;
  switch (c) {
  case 'm': *model_dir = arg; break;
  case 'k':
    rc = beit_cli_number(cmd, arg, 1, 1, BEIT_CLI_INT_MAX, &v, "--top-k %s: expected a positive "
                         "integer", arg);
    o->select.top_k = (size_t)v;
    break;
  case 't':
    rc = beit_cli_number(cmd, arg, 0, 0.0, 1.0, &o->select.threshold,
                         "--threshold %s: expected a number in [0, 1]", arg);
    break;
  case 'b':
    rc = beit_cli_number(cmd, arg, 1, 1, 4096, &v, "--batch %s: expected 1..4096", arg);
    o->infer.max_batch = (size_t)v;
    break;
  case 'j':
    rc = beit_cli_number(cmd, arg, 1, 1, 1024, &v, "--threads %s: expected 1..1024", arg);
    *threads = (int)v;
    break;
  case 'o': o->output = arg; break;
  case 'w': o->with_input = 1; break;
  case 'v': o->visualize = arg; break;
  case 'V':
    rc = beit_cli_number(cmd, arg, 1, 1, 256, &v, "--visualize-max %s: expected 1..256", arg);
    o->visualize_max = (size_t)v;
    break;
  case 'u': o->allow_urls = 1; break;
  case 'P': o->allow_private_urls = 1; break;
  case 'U':
    rc = beit_cli_number(cmd, arg, 1, 1, BEIT_CLI_INT_MAX, &v, "--url-max-bytes %s: expected a "
                         "positive integer", arg);
    o->url_max_bytes = (size_t)v;
    break;
  case 'T':
    rc = beit_cli_number(cmd, arg, 0, DBL_TRUE_MIN, HUGE_VAL, &o->url_timeout_s,
                         "--url-timeout %s: expected seconds > 0", arg);
    break;
  case 'p':
    rc = beit_cli_number(cmd, arg, 1, 1, BEIT_CLI_INT_MAX, &v, "--max-pixels %s: expected a "
                         "positive integer", arg);
    o->infer.max_pixels = (size_t)v;
    break;
  case 'q': o->log = NULL; break;
  case 'F':
    rc = beit_cli_parse_precision(cmd, arg, &o->infer.precision);
    break;
  }
  return rc;
}

int beit_cmd_predict(int argc, char **argv)
{
  static const struct option opts[] = {
      BEIT_CLI_ARG("model", 'm'), BEIT_CLI_ARG("top-k", 'k'), BEIT_CLI_ARG("threshold", 't'),
      BEIT_CLI_ARG("batch", 'b'), BEIT_CLI_ARG("threads", 'j'), BEIT_CLI_ARG("output", 'o'),
      BEIT_CLI_FLAG("with-input", 'w'), BEIT_CLI_ARG("visualize", 'v'),
      BEIT_CLI_ARG("visualize-max", 'V'), BEIT_CLI_FLAG("allow-urls", 'u'),
      BEIT_CLI_ARG("url-max-bytes", 'U'), BEIT_CLI_ARG("url-timeout", 'T'),
      BEIT_CLI_FLAG("allow-private-urls", 'P'), BEIT_CLI_ARG("max-pixels", 'p'),
      BEIT_CLI_FLAG("quiet", 'q'), BEIT_CLI_ARG("precision", 'F'), BEIT_CLI_END};
  const char *model_dir = NULL;
  struct beit_predict_options o;
  beit_predict_defaults(&o);
  int c, rc = BEIT_CLI_GO_ON, threads = 0;
  optind = 1;
  while (beit_cli_next(&c, argc, argv, opts, "predict", usage_text, &rc))
    rc = option(c, optarg, &o, &model_dir, &threads);
  if (rc != BEIT_CLI_GO_ON)
    return rc;
  if (!model_dir)
    return beit_cli_usage_error("predict", "--model is required");
  if (optind == argc)
    return beit_cli_usage_error("predict", "no INPUT given");
  if (threads)
    omp_set_num_threads(threads);
  o.infer.threads = threads;

  struct beit_error err = {0};
  struct beit_predict_summary sum;
  if (beit_cli_resolve_precision("predict", o.infer.precision, o.log, &o.infer.precision, &err) ||
      beit_predict_run(model_dir, (const char *const *)argv + optind, (size_t)(argc - optind), &o,
                       &sum, &err))
    return beit_cli_fail("predict", &err);
  return sum.failed ? BEIT_EXIT_RUNTIME : BEIT_EXIT_OK;
}
