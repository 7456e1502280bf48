/* beit predict: batch prediction with a classifier model folder. Inputs are image files,
 * folders (searched recursively, sorted), dataset folders (index.json + shards) and JSON lines
 * files of requests in the model card's format; the output is one JSON line per image in the
 * card's response format, in input order. Images are decoded and preprocessed in parallel
 * (OpenMP), then run in batches. An input that cannot be read or decoded gets an error line in
 * its place and makes the exit status 1; the rest are still scored. */
#include <ctype.h>
#include <dirent.h>
#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "beit/data.h"
#include "beit/infer.h"
#include "cli.h"
#include "serve.h"

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

/* ---- Inputs ------------------------------------------------------------------------------- */

enum source_kind { SOURCE_FILE, SOURCE_DATASET, SOURCE_JSONL };

struct source {
  enum source_kind kind;
  char *path;
};

struct inputs {
  struct source *sources;
  size_t count, cap;
  size_t known_images; /* files + dataset records (JSON lines are counted as read) */
  int has_jsonl;
};

/* The next item handed to a batch: bytes to decode, or the fault that replaces its line. */
struct item {
  char key[BEIT_DATA_KEY_MAX + 64];
  uint8_t *bytes;
  size_t size;
  struct beit_fault fault;
  int failed;
};

/* Cursor over the sources. */
struct cursor {
  struct inputs *in;
  size_t source;
  struct beit_dataset *ds;
  size_t record, records;
  struct beit_data_record rec;
  FILE *jsonl;
  char *line;
  size_t line_cap;
  long line_no;
  struct beit_request req;
  size_t req_item;
  int req_open;
  struct beit_fetch_policy fetch;
};

static int add_source(struct inputs *in, enum source_kind kind, const char *path)
{
  if (in->count == in->cap) {
    size_t cap = in->cap ? 2 * in->cap : 64;
    struct source *p = realloc(in->sources, cap * sizeof *p);
    if (!p)
      return -1;
    in->sources = p;
    in->cap = cap;
  }
  if (!(in->sources[in->count].path = strdup(path)))
    return -1;
  in->sources[in->count++].kind = kind;
  if (kind == SOURCE_FILE)
    in->known_images++;
  if (kind == SOURCE_JSONL)
    in->has_jsonl = 1;
  return 0;
}

static int has_ext(const char *name, const char *const *exts)
{
  const char *dot = strrchr(name, '.');
  for (; dot && *exts; exts++)
    if (!strcasecmp(dot + 1, *exts))
      return 1;
  return 0;
}

static const char *const image_exts[] = {"jpg", "jpeg", "png", "bmp", "gif", "tga", "pnm",
                                         "ppm", "pgm", NULL};
static const char *const jsonl_exts[] = {"jsonl", "json", "ndjson", NULL};

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Image files under dir, recursively (symlinked folders are not followed), sorted. */
static enum beit_status walk(struct inputs *in, const char *dir, struct beit_error *err)
{
  DIR *d = opendir(dir);
  if (!d)
    return beit_error_set(err, BEIT_STATUS_IO, "%s: cannot open the folder", dir);
  char **names = NULL;
  size_t n = 0, cap = 0;
  enum beit_status st = BEIT_STATUS_OK;
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.')
      continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      char **p = realloc(names, cap * sizeof *p);
      if (!p) {
        st = beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", dir);
        goto done;
      }
      names = p;
    }
    size_t len = strlen(dir) + strlen(e->d_name) + 2;
    if (!(names[n] = malloc(len))) {
      st = beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", dir);
      goto done;
    }
    snprintf(names[n++], len, "%s/%s", dir, e->d_name);
  }
  qsort(names, n, sizeof *names, cmp_str);
  for (size_t i = 0; i < n && !st; i++) {
    struct stat sb;
    if (lstat(names[i], &sb))
      continue;
    if (S_ISDIR(sb.st_mode))
      st = walk(in, names[i], err);
    else if (has_ext(names[i], image_exts) && add_source(in, SOURCE_FILE, names[i]))
      st = beit_error_set(err, BEIT_STATUS_NOMEM, "out of memory");
  }
done:
  closedir(d);
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
  return st;
}

static enum beit_status collect(struct inputs *in, int argc, char **argv, struct beit_error *err)
{
  for (int i = 0; i < argc; i++) {
    const char *p = argv[i];
    struct stat sb;
    enum beit_status st = BEIT_STATUS_OK;
    if (!strcmp(p, "-")) {
      if (add_source(in, SOURCE_JSONL, p))
        return beit_error_set(err, BEIT_STATUS_NOMEM, "out of memory");
      continue;
    }
    if (stat(p, &sb))
      return beit_error_set(err, BEIT_STATUS_IO, "%s: no such file or folder", p);
    if (S_ISDIR(sb.st_mode)) {
      char index[4200];
      snprintf(index, sizeof index, "%s/index.json", p);
      if (access(index, F_OK) == 0) {
        struct beit_dataset *ds = NULL;
        if ((st = beit_data_open(&ds, p, err)))
          return st;
        in->known_images += beit_data_count(ds);
        beit_data_close(ds);
        if (add_source(in, SOURCE_DATASET, p))
          return beit_error_set(err, BEIT_STATUS_NOMEM, "out of memory");
      } else if ((st = walk(in, p, err))) {
        return st;
      }
    } else if (add_source(in, has_ext(p, jsonl_exts) ? SOURCE_JSONL : SOURCE_FILE, p)) {
      return beit_error_set(err, BEIT_STATUS_NOMEM, "out of memory");
    }
  }
  return BEIT_STATUS_OK;
}

static void fail_item(struct item *it, int http, long index, const char *reason,
                      const char *message)
{
  it->failed = 1;
  beit_fault_set(&it->fault, http, index, reason, "%s", message);
}

static int read_file(const char *path, uint8_t **data, size_t *size)
{
  FILE *f = fopen(path, "rb");
  if (!f)
    return -1;
  int rc = -1;
  if (fseek(f, 0, SEEK_END) == 0) {
    long n = ftell(f);
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (*data = malloc(n ? (size_t)n : 1))) {
      *size = fread(*data, 1, (size_t)n, f);
      rc = *size == (size_t)n ? 0 : -1;
      if (rc) {
        free(*data);
        *data = NULL;
      }
    }
  }
  fclose(f);
  return rc;
}

static void close_source(struct cursor *c)
{
  beit_data_close(c->ds);
  c->ds = NULL;
  if (c->jsonl && c->jsonl != stdin)
    fclose(c->jsonl);
  c->jsonl = NULL;
  if (c->req_open)
    beit_request_free(&c->req);
  c->req_open = 0;
  c->source++;
  c->record = c->records = 0;
  c->line_no = 0;
}

/* Fill *it with the next input; 0 when there is one, 1 at the end, -1 on a fatal error. */
static int next_item(struct cursor *c, struct item *it, double time_left, struct beit_error *err)
{
  memset(it, 0, sizeof *it);
  while (c->source < c->in->count) {
    const struct source *s = &c->in->sources[c->source];
    if (s->kind == SOURCE_FILE) {
      snprintf(it->key, sizeof it->key, "%s", s->path);
      if (read_file(s->path, &it->bytes, &it->size))
        fail_item(it, 400, -1, "unreadable", "cannot read the file");
      close_source(c);
      return 0;
    }
    if (s->kind == SOURCE_DATASET) {
      if (!c->ds) {
        if (beit_data_open(&c->ds, s->path, err))
          return -1;
        c->records = beit_data_count(c->ds);
      }
      if (c->record == c->records) {
        close_source(c);
        continue;
      }
      struct beit_error rerr = {0};
      enum beit_status st = beit_data_read(c->ds, c->record, &c->rec, &rerr);
      snprintf(it->key, sizeof it->key, "%s", st ? s->path : c->rec.key);
      if (st) {
        fail_item(it, 400, (long)c->record, "unreadable", rerr.message);
      } else if (!(it->bytes = malloc(c->rec.size ? c->rec.size : 1))) {
        return beit_error_set(err, BEIT_STATUS_NOMEM, "out of memory"), -1;
      } else {
        memcpy(it->bytes, c->rec.bytes, c->rec.size);
        it->size = c->rec.size;
      }
      c->record++;
      return 0;
    }
    /* JSON lines */
    if (!c->jsonl) {
      c->jsonl = strcmp(s->path, "-") ? fopen(s->path, "r") : stdin;
      if (!c->jsonl)
        return beit_error_set(err, BEIT_STATUS_IO, "%s: cannot open", s->path), -1;
    }
    if (c->req_open && c->req_item < c->req.count) {
      size_t i = c->req_item++;
      snprintf(it->key, sizeof it->key, "%s:%ld:%zu", s->path, c->line_no, i);
      if (beit_request_item_bytes(&c->req, i, &c->fetch, time_left, &it->bytes, &it->size,
                                  &it->fault))
        it->failed = 1;
      return 0;
    }
    if (c->req_open) {
      beit_request_free(&c->req);
      c->req_open = 0;
    }
    ssize_t n = getline(&c->line, &c->line_cap, c->jsonl);
    if (n < 0) {
      close_source(c);
      continue;
    }
    c->line_no++;
    size_t len = (size_t)n;
    while (len && isspace((unsigned char)c->line[len - 1]))
      len--;
    if (len == 0)
      continue;
    if (beit_request_parse(&c->req, c->line, len, (size_t)-1, &it->fault)) {
      snprintf(it->key, sizeof it->key, "%s:%ld", s->path, c->line_no);
      it->failed = 1;
      return 0;
    }
    c->req_open = 1;
    c->req_item = 0;
  }
  return 1;
}

/* ---- Output ------------------------------------------------------------------------------- */

struct progress {
  int enabled, tty;
  double start, last;
  size_t done, failed, total;
};

static void progress_show(struct progress *p, int final)
{
  if (!p->enabled)
    return;
  double now = beit_clock_now(), dt = now - p->start;
  if (!final && now - p->last < (p->tty ? 0.2 : 10.0))
    return;
  p->last = now;
  double rate = dt > 0 ? (double)p->done / dt : 0.0;
  char eta[48] = "", of[32] = "";
  if (!final && p->total && rate > 0 && p->done < p->total)
    snprintf(eta, sizeof eta, ", ETA %.0f s", (double)(p->total - p->done) / rate);
  if (final)
    snprintf(eta, sizeof eta, " in %.2f s", dt);
  if (p->total)
    snprintf(of, sizeof of, "/%zu", p->total);
  fprintf(stderr, "%spredict: %zu%s images, %zu failed, %.1f images/s%s%s", p->tty ? "\r" : "",
          p->done, of, p->failed, rate, eta, p->tty && !final ? "   " : "\n");
  fflush(stderr);
}

static void write_line(FILE *out, const struct item *it, const struct beit_infer *inf,
                       const float *probs, const struct beit_infer_select *sel, int with_input)
{
  struct beit_strbuf b = {0};
  if (it->failed)
    beit_fault_json(&b, &it->fault);
  else
    beit_strbuf_result(&b, inf, probs, sel);
  if (with_input && b.len > 1) { /* splice "input" into the object */
    b.len--;
    b.data[b.len] = '\0';
    beit_strbuf_puts(&b, ", \"input\": ");
    beit_strbuf_json_string(&b, it->key);
    beit_strbuf_puts(&b, "}");
  }
  if (b.data)
    fprintf(out, "%s\n", b.data);
  beit_strbuf_free(&b);
}

/* ---- The command ---------------------------------------------------------------------------- */

struct vis {
  struct beit_data_image *images;
  float *probs;
  char **titles;
  size_t count, max;
};

static void vis_free(struct vis *v)
{
  for (size_t i = 0; i < v->count; i++) {
    beit_data_image_free(&v->images[i]);
    free(v->titles[i]);
  }
  free(v->images);
  free(v->probs);
  free(v->titles);
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
  const char *model_dir = NULL, *output = NULL, *vis_path = NULL;
  struct beit_infer_options iopt;
  beit_infer_defaults(&iopt);
  iopt.any_format = 1; /* local files the user chose: every format (serve: JPEG and PNG) */
  struct beit_infer_select sel = {0, -1.0};
  struct beit_fetch_policy fetch = {0, 0, 16u << 20, 10.0};
  int with_input = 0, quiet = 0, threads = 0;
  long vis_max = 8;
  int c;
  char *end;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    long v = 0;
    double d = 0;
    switch (c) {
    case 'm': model_dir = optarg; break;
    case 'k':
      v = strtol(optarg, &end, 10);
      if (*end || v < 1)
        return beit_cli_usage_error("predict", "--top-k %s: expected a positive integer", optarg);
      sel.top_k = (size_t)v;
      break;
    case 't':
      d = strtod(optarg, &end);
      if (*end || !(d >= 0.0 && d <= 1.0))
        return beit_cli_usage_error("predict", "--threshold %s: expected a number in [0, 1]", optarg);
      sel.threshold = d;
      break;
    case 'b':
      v = strtol(optarg, &end, 10);
      if (*end || v < 1 || v > 4096)
        return beit_cli_usage_error("predict", "--batch %s: expected 1..4096", optarg);
      iopt.max_batch = (size_t)v;
      break;
    case 'j':
      v = strtol(optarg, &end, 10);
      if (*end || v < 1 || v > 1024)
        return beit_cli_usage_error("predict", "--threads %s: expected 1..1024", optarg);
      threads = (int)v;
      break;
    case 'o': output = optarg; break;
    case 'w': with_input = 1; break;
    case 'v': vis_path = optarg; break;
    case 'V':
      vis_max = strtol(optarg, &end, 10);
      if (*end || vis_max < 1 || vis_max > 256)
        return beit_cli_usage_error("predict", "--visualize-max %s: expected 1..256", optarg);
      break;
    case 'u': fetch.allow_urls = 1; break;
    case 'P': fetch.allow_private = 1; break;
    case 'U':
      v = strtol(optarg, &end, 10);
      if (*end || v < 1)
        return beit_cli_usage_error("predict", "--url-max-bytes %s: expected a positive integer", optarg);
      fetch.max_bytes = (size_t)v;
      break;
    case 'T':
      d = strtod(optarg, &end);
      if (*end || !(d > 0))
        return beit_cli_usage_error("predict", "--url-timeout %s: expected seconds > 0", optarg);
      fetch.timeout_s = d;
      break;
    case 'p':
      v = strtol(optarg, &end, 10);
      if (*end || v < 1)
        return beit_cli_usage_error("predict", "--max-pixels %s: expected a positive integer", optarg);
      iopt.max_pixels = (size_t)v;
      break;
    case 'q': quiet = 1; break;
    case 'F':
      if (beit_cli_parse_precision("predict", optarg, &iopt.precision))
        return BEIT_EXIT_USAGE;
      break;
    case 'h': fputs(usage_text, stdout); return BEIT_EXIT_OK;
    default: return beit_cli_usage_error("predict", "unknown option");
    }
  }
  if (!model_dir)
    return beit_cli_usage_error("predict", "--model is required");
  if (optind == argc)
    return beit_cli_usage_error("predict", "no INPUT given");
  if (threads)
    omp_set_num_threads(threads);
  iopt.threads = threads;

  struct beit_error err = {0};
  struct inputs in = {0};
  struct beit_infer *inf = NULL;
  struct cursor cur = {0};
  struct item *items = NULL;
  float *views = NULL, *probs = NULL, *good_views = NULL;
  struct beit_data_image *kept = NULL;
  struct beit_data_scratch **ws = NULL;
  struct vis vis = {0};
  FILE *out = stdout;
  int rc = BEIT_EXIT_OK, nthreads = omp_get_max_threads();
  size_t B = iopt.max_batch;

  if (beit_cli_resolve_precision("predict", iopt.precision, quiet ? NULL : stderr,
                                 &iopt.precision, &err) ||
      collect(&in, argc - optind, argv + optind, &err) ||
      beit_infer_load(&inf, model_dir, &iopt, &err))
    goto fail;
  size_t V = beit_infer_view_floats(inf), C = beit_infer_num_labels(inf);
  items = calloc(B, sizeof *items);
  views = malloc(B * V * sizeof *views);
  good_views = malloc(B * V * sizeof *good_views);
  probs = malloc(B * C * sizeof *probs);
  kept = calloc(B, sizeof *kept);
  ws = calloc((size_t)nthreads, sizeof *ws);
  if (vis_path) {
    vis.max = (size_t)vis_max;
    vis.images = calloc(vis.max, sizeof *vis.images);
    vis.probs = malloc(vis.max * C * sizeof *vis.probs);
    vis.titles = calloc(vis.max, sizeof *vis.titles);
  }
  if (!items || !views || !good_views || !probs || !kept || !ws ||
      (vis_path && (!vis.images || !vis.probs || !vis.titles))) {
    beit_error_set(&err, BEIT_STATUS_NOMEM, "out of memory for batch %zu", B);
    goto fail;
  }
  for (int t = 0; t < nthreads; t++)
    if (!(ws[t] = beit_data_scratch_init())) {
      beit_error_set(&err, BEIT_STATUS_NOMEM, "out of memory");
      goto fail;
    }
  if (output && !(out = fopen(output, "w"))) {
    beit_error_set(&err, BEIT_STATUS_IO, "%s: cannot open for writing", output);
    goto fail;
  }
  cur.in = &in;
  cur.fetch = fetch;
  double t0 = beit_clock_now();
  struct progress prog = {!quiet, isatty(2), t0, t0, 0, 0, in.has_jsonl ? 0 : in.known_images};
  for (int done = 0; !done;) {
    size_t n = 0;
    while (n < B) {
      int r = next_item(&cur, &items[n], fetch.timeout_s, &err);
      if (r < 0)
        goto fail;
      if (r > 0) {
        done = 1;
        break;
      }
      n++;
    }
    if (n == 0)
      break;
    int want_keep = vis_path && vis.count < vis.max;
#pragma omp parallel for schedule(dynamic, 1)
    for (size_t i = 0; i < n; i++) {
      struct item *it = &items[i];
      if (it->failed)
        continue;
      struct beit_error perr = {0};
      enum beit_status st = beit_infer_prepare(inf, it->bytes, it->size, it->key, views + i * V,
                                               want_keep ? &kept[i] : NULL,
                                               ws[omp_get_thread_num()], &perr);
      if (st) {
        it->failed = 1;
        beit_fault_from_status(&it->fault, st, -1, perr.message);
      }
    }
    size_t good = 0;
    for (size_t i = 0; i < n; i++)
      if (!items[i].failed)
        memcpy(good_views + good++ * V, views + i * V, V * sizeof *views);
    if (good && beit_infer_run(inf, 0, good_views, good, probs, &err))
      goto fail;
    for (size_t i = 0, g = 0; i < n; i++) {
      struct item *it = &items[i];
      const float *p = it->failed ? NULL : probs + g++ * C;
      write_line(out, it, inf, p, &sel, with_input);
      if (it->failed) {
        prog.failed++;
        if (!quiet)
          fprintf(stderr, "%spredict: %s: %s\n", prog.tty ? "\r" : "", it->key,
                  it->fault.message);
        rc = BEIT_EXIT_RUNTIME;
      } else if (kept[i].pixels && vis.count < vis.max) {
        const char *base = strrchr(it->key, '/');
        vis.images[vis.count] = kept[i];
        kept[i] = (struct beit_data_image){0};
        memcpy(vis.probs + vis.count * C, p, C * sizeof *p);
        vis.titles[vis.count++] = strdup(base ? base + 1 : it->key);
      }
      beit_data_image_free(&kept[i]);
      free(it->bytes);
      it->bytes = NULL;
    }
    fflush(out);
    prog.done += n;
    progress_show(&prog, 0);
  }
  progress_show(&prog, 1);
  if (vis_path) {
    struct beit_infer_vis_item *vi = calloc(vis.count ? vis.count : 1, sizeof *vi);
    if (!vi) {
      beit_error_set(&err, BEIT_STATUS_NOMEM, "out of memory");
      goto fail;
    }
    for (size_t i = 0; i < vis.count; i++)
      vi[i] = (struct beit_infer_vis_item){&vis.images[i], vis.titles[i], vis.probs + i * C};
    enum beit_status st = beit_infer_visualize(vis_path, inf, vi, vis.count, sel.top_k, &err);
    free(vi);
    if (st)
      goto fail;
    if (!quiet)
      fprintf(stderr, "predict: wrote %s (%zu images)\n", vis_path, vis.count);
  }
  goto done;
fail:
  rc = beit_cli_fail("predict", &err);
done:
  if (out && out != stdout && fclose(out) && rc == BEIT_EXIT_OK)
    rc = beit_cli_fail("predict", &(struct beit_error){BEIT_STATUS_IO, "cannot write the output"});
  while (cur.source < in.count)
    close_source(&cur);
  free(cur.line);
  beit_data_record_free(&cur.rec);
  for (size_t i = 0; items && i < B; i++)
    free(items[i].bytes);
  for (size_t i = 0; kept && i < B; i++)
    beit_data_image_free(&kept[i]);
  for (int t = 0; ws && t < nthreads; t++)
    beit_data_scratch_free(ws[t]);
  vis_free(&vis);
  free(ws);
  free(kept);
  free(items);
  free(views);
  free(good_views);
  free(probs);
  for (size_t i = 0; i < in.count; i++)
    free(in.sources[i].path);
  free(in.sources);
  beit_infer_free(inf);
  return rc;
}
