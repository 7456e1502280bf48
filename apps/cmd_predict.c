/* beit predict: batch prediction with a classifier model folder (beit/predict.h, serve/predict.c):
 * parses the options, resolves the precision, runs, and turns the outcome into an exit code (1
 * when any input failed: its error line stands in the output). */
#include <getopt.h>
#include <float.h>
#include <limits.h>
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

/* One option of predict's loop into *o (c: its code); 0, or an exit code to return now. */
static int option(int c, const char *arg, struct beit_predict_options *o, const char **model_dir,
                  int *threads)
{
  long v = 0;
  int rc = 0;
  switch (c) {
  case 'm': *model_dir = arg; break;
  case 'k':
    rc = beit_cli_long("predict", arg, 1, LONG_MAX, &v, "--top-k %s: expected a positive "
                       "integer", arg);
    o->select.top_k = (size_t)v;
    break;
  case 't':
    rc = beit_cli_double("predict", arg, 0.0, 1.0, &o->select.threshold,
                         "--threshold %s: expected a number in [0, 1]", arg);
    break;
  case 'b':
    rc = beit_cli_long("predict", arg, 1, 4096, &v, "--batch %s: expected 1..4096", arg);
    o->infer.max_batch = (size_t)v;
    break;
  case 'j':
    rc = beit_cli_long("predict", arg, 1, 1024, &v, "--threads %s: expected 1..1024", arg);
    *threads = (int)v;
    break;
  case 'o': o->output = arg; break;
  case 'w': o->with_input = 1; break;
  case 'v': o->visualize = arg; break;
  case 'V':
    rc = beit_cli_long("predict", arg, 1, 256, &v, "--visualize-max %s: expected 1..256", arg);
    o->visualize_max = (size_t)v;
    break;
  case 'u': o->allow_urls = 1; break;
  case 'P': o->allow_private_urls = 1; break;
  case 'U':
    rc = beit_cli_long("predict", arg, 1, LONG_MAX, &v, "--url-max-bytes %s: expected a "
                       "positive integer", arg);
    o->url_max_bytes = (size_t)v;
    break;
  case 'T':
    rc = beit_cli_double("predict", arg, DBL_TRUE_MIN, HUGE_VAL, &o->url_timeout_s,
                         "--url-timeout %s: expected seconds > 0", arg);
    break;
  case 'p':
    rc = beit_cli_long("predict", arg, 1, LONG_MAX, &v, "--max-pixels %s: expected a positive "
                       "integer", arg);
    o->infer.max_pixels = (size_t)v;
    break;
  case 'q': o->log = NULL; break;
  case 'F': rc = beit_cli_parse_precision("predict", arg, &o->infer.precision); break;
  default: rc = beit_cli_usage_error("predict", "unknown option");
  }
  return rc;
}

int beit_cmd_predict(int argc, char **argv)
{
  static const struct option opts[] = {
      {"model", required_argument, NULL, 'm'},     {"top-k", required_argument, NULL, 'k'},
      {"threshold", required_argument, NULL, 't'}, {"batch", required_argument, NULL, 'b'},
      {"threads", required_argument, NULL, 'j'},   {"output", required_argument, NULL, 'o'},
      {"with-input", no_argument, NULL, 'w'},      {"visualize", required_argument, NULL, 'v'},
      {"visualize-max", required_argument, NULL, 'V'},
      {"allow-urls", no_argument, NULL, 'u'},      {"url-max-bytes", required_argument, NULL, 'U'},
      {"url-timeout", required_argument, NULL, 'T'},
      {"allow-private-urls", no_argument, NULL, 'P'},
      {"max-pixels", required_argument, NULL, 'p'}, {"quiet", no_argument, NULL, 'q'},
      {"precision", required_argument, NULL, 'F'},
      {"help", no_argument, NULL, 'h'},            {NULL, 0, NULL, 0}};
  const char *model_dir = NULL;
  struct beit_predict_options o;
  beit_predict_defaults(&o);
  int c, rc = 0, threads = 0;
  optind = 1;
  while (!rc && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    if (c == 'h') {
      fputs(usage_text, stdout);
      return BEIT_EXIT_OK;
    }
    rc = option(c, optarg, &o, &model_dir, &threads);
  }
  if (rc)
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
