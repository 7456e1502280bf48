/* The inputs of `beit predict` and the cursor over them (predict_inputs.h). Folders are walked
 * recursively (symlinked folders are not followed) in sorted order; a dataset's records and a
 * JSON lines file's requests are read one at a time, so memory does not grow with the input. */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "predict_inputs.h"
#include "grow.h"

enum source_kind { SOURCE_FILE, SOURCE_DATASET, SOURCE_JSONL };

struct source {
  enum source_kind kind;
  char *path;
};

struct beit_predict_inputs {
  struct source *sources;
  size_t count, cap;
  size_t known_images; /* files + dataset records (JSON lines are counted as read) */
  int has_jsonl;
  /* the cursor */
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

static int add_source(struct beit_predict_inputs *in, enum source_kind kind, const char *path)
{
  struct source *p = beit_grow(in->sources, &in->cap, in->count, sizeof *p, 64);
  if (!p)
    return -1;
  in->sources = p;
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

/* The entries of dir (no dot files) as "dir/name", sorted; *names and each entry malloc'd. */
static enum beit_status list_dir(const char *dir, char ***names, size_t *count,
                                 struct beit_error *err)
{
  DIR *d = opendir(dir);
  if (!d)
    return beit_error_set(err, BEIT_STATUS_IO, "%s: cannot open the folder", dir);
  size_t n = 0, cap = 0;
  enum beit_status st = BEIT_STATUS_OK;
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.')
      continue;
    char **p = beit_grow(*names, &cap, n, sizeof *p, 64);
    if (!p) {
      st = beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", dir);
      break;
    }
    *names = p;
    size_t len = strlen(dir) + strlen(e->d_name) + 2;
    if (!((*names)[n] = malloc(len))) {
      st = beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", dir);
      break;
    }
    snprintf((*names)[n++], len, "%s/%s", dir, e->d_name);
  }
  closedir(d);
  *count = n;
  if (!st)
    qsort(*names, n, sizeof **names, cmp_str);
  return st;
}

/* Image files under dir, recursively, sorted. */
static enum beit_status walk(struct beit_predict_inputs *in, const char *dir,
                             struct beit_error *err)
{
  char **names = NULL;
  size_t n = 0;
  enum beit_status st = list_dir(dir, &names, &n, err);
  for (size_t i = 0; i < n && !st; i++) {
    struct stat sb;
    if (lstat(names[i], &sb))
      continue;
    if (S_ISDIR(sb.st_mode))
      st = walk(in, names[i], err);
    else if (has_ext(names[i], image_exts) && add_source(in, SOURCE_FILE, names[i]))
      st = beit_error_set(err, BEIT_STATUS_NOMEM, "out of memory");
  }
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
  return st;
}

/* A folder: a dataset when it holds index.json (its records counted), else walked. */
static enum beit_status add_folder(struct beit_predict_inputs *in, const char *p,
                                   struct beit_error *err)
{
  char index[4200];
  snprintf(index, sizeof index, "%s/index.json", p);
  if (access(index, F_OK) != 0)
    return walk(in, p, err);
  struct beit_dataset *ds = NULL;
  enum beit_status st = beit_data_open(&ds, p, err);
  if (st)
    return st;
  in->known_images += beit_data_count(ds);
  beit_data_close(ds);
  if (add_source(in, SOURCE_DATASET, p))
    return beit_error_set(err, BEIT_STATUS_NOMEM, "out of memory");
  return BEIT_STATUS_OK;
}

static enum beit_status collect(struct beit_predict_inputs *in, const char *const *paths,
                                size_t count, struct beit_error *err)
{
  for (size_t i = 0; i < count; i++) {
    const char *p = paths[i];
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
      if ((st = add_folder(in, p, err)))
        return st;
    } else if (add_source(in, has_ext(p, jsonl_exts) ? SOURCE_JSONL : SOURCE_FILE, p)) {
      return beit_error_set(err, BEIT_STATUS_NOMEM, "out of memory");
    }
  }
  return BEIT_STATUS_OK;
}

enum beit_status beit_predict_inputs_open(struct beit_predict_inputs **out,
                                          const char *const *paths, size_t n,
                                          const struct beit_fetch_policy *fetch,
                                          struct beit_error *err)
{
  struct beit_predict_inputs *in = calloc(1, sizeof *in);
  *out = NULL;
  if (!in)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "out of memory");
  in->fetch = *fetch;
  enum beit_status st = collect(in, paths, n, err);
  if (st) {
    beit_predict_inputs_free(in);
    return st;
  }
  *out = in;
  return BEIT_STATUS_OK;
}

size_t beit_predict_inputs_total(const struct beit_predict_inputs *in)
{
  return in->has_jsonl ? 0 : in->known_images;
}

static void fail_item(struct beit_predict_item *it, int http, long index, const char *reason,
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

static void close_source(struct beit_predict_inputs *c)
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

/* The next record of the current dataset: 0 with *it filled, 1 when the dataset is done
 * (closed), -1 on a fatal error. */
static int next_record(struct beit_predict_inputs *c, const struct source *s,
                       struct beit_predict_item *it, struct beit_error *err)
{
  if (!c->ds) {
    if (beit_data_open(&c->ds, s->path, err))
      return -1;
    c->records = beit_data_count(c->ds);
  }
  if (c->record == c->records) {
    close_source(c);
    return 1;
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

/* The next input of the current JSON lines file: the next image of the open request, else the
 * next non-blank line parsed (a line that does not parse is one failed item). 0 with *it
 * filled, 1 when the file is done (closed), -1 on a fatal error. */
static int next_request_item(struct beit_predict_inputs *c, const struct source *s,
                             struct beit_predict_item *it, double time_left,
                             struct beit_error *err)
{
  if (!c->jsonl) {
    c->jsonl = strcmp(s->path, "-") ? fopen(s->path, "r") : stdin;
    if (!c->jsonl)
      return beit_error_set(err, BEIT_STATUS_IO, "%s: cannot open", s->path), -1;
  }
  for (;;) {
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
      return 1;
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
}

int beit_predict_inputs_next(struct beit_predict_inputs *c, struct beit_predict_item *it,
                             double time_left, struct beit_error *err)
{
  memset(it, 0, sizeof *it);
  while (c->source < c->count) {
    const struct source *s = &c->sources[c->source];
    int r;
    if (s->kind == SOURCE_FILE) {
      snprintf(it->key, sizeof it->key, "%s", s->path);
      if (read_file(s->path, &it->bytes, &it->size))
        fail_item(it, 400, -1, "unreadable", "cannot read the file");
      close_source(c);
      return 0;
    }
    r = s->kind == SOURCE_DATASET ? next_record(c, s, it, err)
                                  : next_request_item(c, s, it, time_left, err);
    if (r != 1)
      return r;
  }
  return 1;
}

void beit_predict_inputs_free(struct beit_predict_inputs *in)
{
  if (!in)
    return;
  while (in->source < in->count)
    close_source(in);
  free(in->line);
  beit_data_record_free(&in->rec);
  for (size_t i = 0; i < in->count; i++)
    free(in->sources[i].path);
  free(in->sources);
  free(in);
}
