/* Sources for `beit pack`: an ImageFolder tree, a manifest (CSV or JSON lines) and the
 * Fashion-MNIST idx files, each turned into a list of items (file or in-memory bytes, labels,
 * key) and a class list.
 *
 * ImageFolder: classes are the sorted sub-folder names (torchvision), files found recursively
 * by image extension, keys are paths relative to the root. Manifest: paths relative to the
 * manifest's folder; labels are names (sorted; numerically when all are integers). CSV rows are
 * `path,label` with several labels separated by ';' or '|' or in further columns; a first row
 * whose first field is path/image/file/filename/image_url is a header. CSV follows RFC 4180: a
 * field in double quotes may hold commas, line breaks and "" for a quote; CRLF or LF line ends;
 * a UTF-8 byte order mark at the start is skipped. JSON lines (a line starting with '{') carry
 * path|image|file|image_url and label|labels (a string or an array, Azure ML style). Blank lines
 * and lines starting with '#' are skipped. Errors name the file and line. */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <stb/stb_image_write.h>
#include <zlib.h>

#include "pack_internal.h"
#include "grow.h"

void beit_pack_list_free(struct beit_pack_list *l)
{
  for (size_t i = 0; i < l->count; i++) {
    free(l->items[i].path);
    free(l->items[i].key);
    free(l->items[i].data);
    free(l->items[i].labels);
  }
  free(l->items);
  for (int c = 0; c < l->num_classes; c++)
    free(l->class_names[c]);
  free(l->class_names);
  memset(l, 0, sizeof *l);
}

static struct beit_pack_item *push_item(struct beit_pack_list *l)
{
  struct beit_pack_item *p = beit_grow(l->items, &l->capacity, l->count, sizeof *p, 1024);
  if (!p)
    return NULL;
  l->items = p;
  struct beit_pack_item *it = &l->items[l->count++];
  memset(it, 0, sizeof *it);
  return it;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int has_image_ext(const char *name)
{
  static const char *const exts[] = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".pgm",
                                     ".pnm", ".tga", ".tif", ".tiff", ".webp", NULL};
  const char *dot = strrchr(name, '.');
  if (!dot)
    return 0;
  for (int i = 0; exts[i]; i++)
    if (!strcasecmp(dot, exts[i]))
      return 1;
  return 0;
}

/* Sorted names in dir (no dot entries); *n set. NULL with *n = 0 on an empty or bad dir. */
static char **list_dir(const char *dir, size_t *n)
{
  *n = 0;
  DIR *d = opendir(dir);
  if (!d)
    return NULL;
  char **names = NULL;
  size_t cap = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    char **p = beit_grow(names, &cap, *n, sizeof *p, 64);
    if (!p)
      break;
    names = p;
    if (!(names[*n] = strdup(e->d_name)))
      break;
    (*n)++;
  }
  closedir(d);
  if (names)
    qsort(names, *n, sizeof *names, cmp_str);
  return names;
}

static void free_names(char **names, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
}

static int is_dir(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Add every image under root/rel (recursively) with label c. */
static enum beit_status walk_class(struct beit_pack_list *l, const char *root, const char *rel,
                                   int c, int depth, struct beit_error *err)
{
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/%s", root, rel);
  size_t n;
  char **names = list_dir(dir, &n);
  enum beit_status st = BEIT_STATUS_OK;
  for (size_t i = 0; i < n && !st; i++) {
    char sub[4096], full[8192];
    snprintf(sub, sizeof sub, "%s/%s", rel, names[i]);
    snprintf(full, sizeof full, "%s/%s", root, sub);
    if (is_dir(full)) {
      if (depth < 16)
        st = walk_class(l, root, sub, c, depth + 1, err);
      continue;
    }
    if (!has_image_ext(names[i]))
      continue;
    struct beit_pack_item *it = push_item(l);
    if (!it || !(it->path = strdup(full)) || !(it->key = strdup(sub)) ||
        !(it->labels = malloc(sizeof(int32_t))))
      st = beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", full);
    else {
      it->labels[0] = c;
      it->num_labels = 1;
    }
  }
  free_names(names, n);
  return st;
}

enum beit_status beit_pack_list_folder(struct beit_pack_list *l, const char *root,
                                       struct beit_error *err)
{
  memset(l, 0, sizeof *l);
  size_t n;
  char **names = list_dir(root, &n);
  if (!names && !is_dir(root))
    return beit_error_set(err, BEIT_STATUS_IO, "%s: not a readable folder", root);
  l->class_names = calloc(n ? n : 1, sizeof(char *));
  if (!l->class_names) {
    free_names(names, n);
    return beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", root);
  }
  enum beit_status st = BEIT_STATUS_OK;
  for (size_t i = 0; i < n && !st; i++) {
    char full[8192];
    snprintf(full, sizeof full, "%s/%s", root, names[i]);
    if (!is_dir(full))
      continue;
    int c = l->num_classes;
    l->class_names[c] = names[i];
    names[i] = NULL;
    l->num_classes++;
    st = walk_class(l, root, l->class_names[c], c, 0, err);
  }
  free_names(names, n);
  if (!st && l->num_classes == 0)
    st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: no class sub-folders (ImageFolder layout: root/<class>/<image>)", root);
  else if (!st && l->count == 0)
    st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: no image files in the class folders", root);
  return st;
}

/* ---- manifests ---- */

struct label_set { /* label names seen, in first-seen order; items hold indices until sorted */
  char **names;
  int count, cap;
};

static int label_id(struct label_set *s, const char *name)
{
  for (int i = 0; i < s->count; i++) /* small label sets: linear search is fine */
    if (!strcmp(s->names[i], name))
      return i;
  if (s->count == s->cap) {
    int cap = s->cap ? 2 * s->cap : 32;
    char **p = realloc(s->names, (size_t)cap * sizeof *p);
    if (!p)
      return -1;
    s->names = p;
    s->cap = cap;
  }
  if (!(s->names[s->count] = strdup(name)))
    return -1;
  return s->count++;
}

static char *trim(char *s)
{
  while (isspace((unsigned char)*s))
    s++;
  size_t n = strlen(s);
  while (n && isspace((unsigned char)s[n - 1]))
    s[--n] = 0;
  return s;
}

static int add_label(struct beit_pack_item *it, struct label_set *ls, const char *name)
{
  if (!*name)
    return 0;
  int id = label_id(ls, name);
  int32_t *p = realloc(it->labels, (it->num_labels + 1) * sizeof(int32_t));
  if (id < 0 || !p)
    return -1;
  it->labels = p;
  for (size_t i = 0; i < it->num_labels; i++)
    if (p[i] == id)
      return 0; /* duplicate label in one row */
  p[it->num_labels++] = id;
  return 0;
}

static int is_header_field(const char *f)
{
  static const char *const names[] = {"path", "image", "file", "filename", "image_url", "image_path", NULL};
  for (int i = 0; names[i]; i++)
    if (!strcasecmp(f, names[i]))
      return 1;
  return 0;
}

static int set_item_path(struct beit_pack_item *it, const char *base, const char *rel)
{
  char full[8192];
  if (rel[0] == '/')
    snprintf(full, sizeof full, "%s", rel);
  else
    snprintf(full, sizeof full, "%s/%s", base, rel);
  it->path = strdup(full);
  it->key = strdup(rel);
  return it->path && it->key ? 0 : -1;
}

static const cJSON *first_of(const cJSON *o, const char *const *names)
{
  for (int i = 0; names[i]; i++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, names[i]);
    if (v)
      return v;
  }
  return NULL;
}

/* add_label of a JSON string, or of an integer's decimal text; nonzero for any other value too. */
static int add_json_label(struct beit_pack_item *it, struct label_set *ls, const cJSON *v)
{
  char num[32];
  const char *name = cJSON_IsString(v) ? v->valuestring : NULL;
  if (cJSON_IsNumber(v))
    snprintf(num, sizeof num, "%d", v->valueint), name = num;
  return !name || add_label(it, ls, name);
}

static enum beit_status parse_json_line(struct beit_pack_list *l, struct label_set *ls,
                                        const char *base, const char *line, const char *where,
                                        struct beit_error *err)
{
  static const char *const path_keys[] = {"path", "image_url", "image", "file", "filename", NULL};
  static const char *const label_keys[] = {"labels", "label", NULL};
  cJSON *o = cJSON_Parse(line);
  enum beit_status st = BEIT_STATUS_OK;
  const cJSON *p = o ? first_of(o, path_keys) : NULL, *lab = o ? first_of(o, label_keys) : NULL;
  if (!o || !cJSON_IsString(p) || !lab) {
    st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: needs a JSON object with path and label(s)", where);
    goto done;
  }
  struct beit_pack_item *it = push_item(l);
  if (!it || set_item_path(it, base, p->valuestring)) {
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", where);
    goto done;
  }
  if (cJSON_IsArray(lab)) {
    l->saw_multi = 1;
    const cJSON *v;
    cJSON_ArrayForEach(v, lab) {
      if (add_json_label(it, ls, v)) {
        st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: labels must be strings or integers", where);
        goto done;
      }
    }
  } else if (add_json_label(it, ls, lab)) {
    st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: label must be a string or an integer", where);
  }
done:
  cJSON_Delete(o);
  return st;
}

#define CSV_MAX_FIELDS 64

enum csv_split_result { CSV_SPLIT_OK, CSV_SPLIT_OPEN_QUOTE, CSV_SPLIT_BAD };

/* One CSV record (RFC 4180) into fields. rec: the record's physical lines as read, line ends
 * included. A field is unquoted (surrounding whitespace dropped, as manifests always had; a '"'
 * after its first character is literal) or quoted (whitespace around the quotes dropped; inside,
 * "" is a quote and commas and line breaks are part of the value). out receives the values
 * (room for strlen(rec) + 1 bytes), fields[0..*nf) point into it. CSV_SPLIT_OPEN_QUOTE: rec ends
 * inside a quoted field (the record goes on on the next line); CSV_SPLIT_BAD: why says what. */
static enum csv_split_result csv_split(const char *rec, char *out, char **fields, int *nf,
                                       char *why, size_t why_size)
{
  const char *p = rec;
  char *o = out;
  *nf = 0;
  for (;;) {
    if (*nf == CSV_MAX_FIELDS) {
      snprintf(why, why_size, "more than %d fields", CSV_MAX_FIELDS);
      return CSV_SPLIT_BAD;
    }
    while (isspace((unsigned char)*p))
      p++;
    fields[(*nf)++] = o;
    if (*p == '"') {
      for (p++;; p++) {
        if (!*p)
          return CSV_SPLIT_OPEN_QUOTE;
        if (*p == '"' && p[1] != '"')
          break;
        if (*p == '"')
          p++; /* "" inside quotes: one quote */
        *o++ = *p;
      }
      *o++ = 0;
      for (p++; isspace((unsigned char)*p);)
        p++;
      if (*p && *p != ',') {
        snprintf(why, why_size, "field %d: '%c' after its closing quote (a quote inside a quoted "
                 "field is written \"\")", *nf, *p);
        return CSV_SPLIT_BAD;
      }
    } else {
      const char *start = p;
      while (*p && *p != ',')
        p++;
      const char *stop = p;
      while (stop > start && isspace((unsigned char)stop[-1]))
        stop--;
      memcpy(o, start, (size_t)(stop - start));
      o += stop - start;
      *o++ = 0;
    }
    if (*p != ',')
      return CSV_SPLIT_OK;
    p++;
  }
}

/* A split record: path, then labels (';' or '|' separate several in one field, further columns
 * add more). */
static enum beit_status add_csv_record(struct beit_pack_list *l, struct label_set *ls,
                                       const char *base, char **fields, int nf, const char *where,
                                       struct beit_error *err)
{
  if (nf < 2 || !*fields[0])
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: expected path,label[;label...]", where);
  struct beit_pack_item *it = push_item(l);
  if (!it || set_item_path(it, base, fields[0]))
    return beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", where);
  if (nf > 2)
    l->saw_multi = 1;
  for (int f = 1; f < nf; f++) {
    if (strpbrk(fields[f], ";|"))
      l->saw_multi = 1;
    for (char *s = fields[f], *tok; (tok = strsep(&s, ";|"));)
      if (add_label(it, ls, trim(tok)))
        return beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", where);
  }
  return BEIT_STATUS_OK;
}

static int all_integers(char **names, int n)
{
  for (int i = 0; i < n; i++) {
    char *end;
    strtol(names[i], &end, 10);
    if (!*names[i] || *end)
      return 0;
  }
  return 1;
}

static char **g_sort_names;
static int g_sort_numeric;
static int cmp_label(const void *a, const void *b)
{
  const char *x = g_sort_names[*(const int *)a], *y = g_sort_names[*(const int *)b];
  if (g_sort_numeric) {
    long u = strtol(x, NULL, 10), v = strtol(y, NULL, 10);
    return (u > v) - (u < v);
  }
  return strcmp(x, y);
}

/* Renumber labels so that class ids follow the sorted class names. */
static enum beit_status sort_classes(struct beit_pack_list *l, struct label_set *ls,
                                     struct beit_error *err)
{
  int n = ls->count, *order = malloc((size_t)(n ? n : 1) * sizeof(int)),
      *rank = malloc((size_t)(n ? n : 1) * sizeof(int));
  l->class_names = calloc((size_t)(n ? n : 1), sizeof(char *));
  if (!order || !rank || !l->class_names) {
    free(order), free(rank);
    return beit_error_set(err, BEIT_STATUS_NOMEM, "out of memory sorting classes");
  }
  for (int i = 0; i < n; i++)
    order[i] = i;
  g_sort_names = ls->names; /* pack runs single-threaded here */
  g_sort_numeric = all_integers(ls->names, n);
  qsort(order, (size_t)n, sizeof(int), cmp_label);
  for (int i = 0; i < n; i++) {
    rank[order[i]] = i;
    l->class_names[i] = ls->names[order[i]];
  }
  l->num_classes = n;
  for (size_t i = 0; i < l->count; i++)
    for (size_t k = 0; k < l->items[i].num_labels; k++)
      l->items[i].labels[k] = rank[l->items[i].labels[k]];
  free(ls->names);
  ls->names = NULL;
  free(order);
  free(rank);
  return BEIT_STATUS_OK;
}

/* A CSV record being read: its lines so far (a quoted field may span lines) and the buffer
 * csv_split writes the field values into. */
struct csv_record {
  char *text, *values;
  size_t len, cap;
  long first; /* the line it starts on */
};

/* Append a line of n bytes (NUL-terminated); -1 when out of memory. */
static int record_append(struct csv_record *r, const char *s, size_t n)
{
  if (r->len + n + 1 > r->cap) {
    size_t cap = 2 * (r->len + n + 1);
    char *text = realloc(r->text, cap), *values = realloc(r->values, cap);
    if (text)
      r->text = text;
    if (values)
      r->values = values;
    if (!text || !values)
      return -1;
    r->cap = cap;
  }
  memcpy(r->text + r->len, s, n + 1);
  r->len += n;
  return 0;
}

/* After line lineno: the record is complete unless a quote is still open (then *open = 1);
 * complete, it is split and added to l (a header line excepted). */
static enum beit_status record_end(struct beit_pack_list *l, struct label_set *ls,
                                   const char *base, const char *manifest, struct csv_record *r,
                                   long lineno, int *open, struct beit_error *err)
{
  char *fields[CSV_MAX_FIELDS], why[160], where[4200];
  int nf;
  enum csv_split_result res = csv_split(r->text, r->values, fields, &nf, why, sizeof why);
  if ((*open = res == CSV_SPLIT_OPEN_QUOTE))
    return BEIT_STATUS_OK; /* a line break inside quotes: the record goes on */
  r->len = 0;
  if (r->first == lineno)
    snprintf(where, sizeof where, "%s:%ld", manifest, r->first);
  else
    snprintf(where, sizeof where, "%s:%ld (a record of lines %ld-%ld)", manifest, r->first,
             r->first, lineno);
  if (res == CSV_SPLIT_BAD)
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: %s", where, why);
  if (r->first == 1 && is_header_field(fields[0]))
    return BEIT_STATUS_OK;
  return add_csv_record(l, ls, base, fields, nf, where, err);
}

enum beit_status beit_pack_list_manifest(struct beit_pack_list *l, const char *manifest,
                                         struct beit_error *err)
{
  memset(l, 0, sizeof *l);
  FILE *f = fopen(manifest, "r");
  if (!f)
    return beit_error_set(err, BEIT_STATUS_IO, "%s: cannot open manifest", manifest);
  char base[4096], where[4200];
  snprintf(base, sizeof base, "%s", manifest);
  char *slash = strrchr(base, '/');
  if (slash)
    *slash = 0;
  else
    strcpy(base, ".");
  struct label_set ls = {0};
  struct csv_record rec = {0};
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  long lineno = 0;
  int open = 0;
  enum beit_status st = BEIT_STATUS_OK;
  while (!st && (len = getline(&line, &cap, f)) >= 0) {
    char *s = line;
    if (++lineno == 1 && len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) /* UTF-8 byte order mark */
      s += 3, len -= 3;
    if (strlen(s) != (size_t)len) {
      st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s:%ld: NUL byte (not a text file?)",
                          manifest, lineno);
      break;
    }
    if (!open) { /* a new record: blank, comment, JSON line or the start of a CSV record */
      const char *c = s;
      while (isspace((unsigned char)*c))
        c++;
      if (!*c || *c == '#')
        continue;
      if (*c == '{') {
        snprintf(where, sizeof where, "%s:%ld", manifest, lineno);
        st = parse_json_line(l, &ls, base, trim(s), where, err);
        continue;
      }
      rec.first = lineno;
    }
    if (record_append(&rec, s, (size_t)len))
      st = beit_error_set(err, BEIT_STATUS_NOMEM, "%s:%ld: out of memory", manifest, rec.first);
    else
      st = record_end(l, &ls, base, manifest, &rec, lineno, &open, err);
  }
  if (!st && open)
    st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s:%ld: unterminated quoted field: its opening "
                        "quote is not closed by the end of the file (a quote inside a quoted "
                        "field is written \"\")", manifest, rec.first);
  free(line);
  free(rec.text);
  free(rec.values);
  fclose(f);
  if (!st && l->count == 0)
    st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: no records", manifest);
  if (!st)
    st = sort_classes(l, &ls, err);
  for (int i = 0; i < ls.count && ls.names; i++)
    free(ls.names[i]);
  free(ls.names);
  for (size_t i = 0; !st && i < l->count; i++)
    if (l->items[i].num_labels != 1)
      l->saw_multi = 1;
  return st;
}

/* ---- Fashion-MNIST ---- */

static const char *const fashion_classes[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

static int read_be32(gzFile g, uint32_t *v)
{
  unsigned char b[4];
  if (gzread(g, b, 4) != 4)
    return -1;
  *v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
  return 0;
}

/* Read an idx file: magic, dims; returns malloc'd payload of *n items x item_size bytes. */
static enum beit_status read_idx(const char *path, uint32_t magic, uint32_t *n, uint32_t *rows,
                                 uint32_t *cols, unsigned char **data, struct beit_error *err)
{
  gzFile g = gzopen(path, "rb");
  if (!g)
    return beit_error_set(err, BEIT_STATUS_IO, "%s: cannot open", path);
  enum beit_status st = BEIT_STATUS_OK;
  uint32_t m = 0;
  *rows = *cols = 1;
  *data = NULL;
  if (read_be32(g, &m) || m != magic || read_be32(g, n) ||
      (magic == 0x803 && (read_be32(g, rows) || read_be32(g, cols)))) {
    st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: not an idx file with magic 0x%x", path, magic);
    goto close;
  }
  size_t bytes = (size_t)*n * *rows * *cols;
  if (*n > 10000000 || *rows > 4096 || *cols > 4096 || !(*data = malloc(bytes ? bytes : 1))) {
    st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: implausible sizes %u x %u x %u", path, *n, *rows, *cols);
    goto close;
  }
  if (gzread(g, *data, (unsigned)bytes) != (int)bytes) {
    st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: truncated (expected %zu bytes)", path, bytes);
    free(*data);
    *data = NULL;
  }
close:
  gzclose(g);
  return st;
}

struct png_buf {
  unsigned char *p;
  size_t n;
  int oom;
};

static void png_sink(void *ctx, void *data, int size)
{
  struct png_buf *b = ctx;
  unsigned char *q = realloc(b->p, b->n + (size_t)size);
  if (!q) {
    b->oom = 1;
    return;
  }
  memcpy(q + b->n, data, (size_t)size);
  b->p = q;
  b->n += (size_t)size;
}

enum beit_status beit_pack_list_fashion_mnist(struct beit_pack_list *l, const char *dir,
                                              const char *split, struct beit_error *err)
{
  memset(l, 0, sizeof *l);
  const char *stem = !strcmp(split, "train") ? "train" : !strcmp(split, "test") ? "t10k" : NULL;
  if (!stem)
    return beit_error_set(err, BEIT_STATUS_USAGE, "--split must be train or test, not '%s'", split);
  char ipath[4096], lpath[4096];
  snprintf(ipath, sizeof ipath, "%s/%s-images-idx3-ubyte.gz", dir, stem);
  snprintf(lpath, sizeof lpath, "%s/%s-labels-idx1-ubyte.gz", dir, stem);
  uint32_t n, rows, cols, nl, r1, c1;
  unsigned char *pix = NULL, *lab = NULL;
  enum beit_status st = read_idx(ipath, 0x803, &n, &rows, &cols, &pix, err);
  if (!st)
    st = read_idx(lpath, 0x801, &nl, &r1, &c1, &lab, err);
  if (!st && nl != n)
    st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: %u labels for %u images in %s", lpath, nl, n, ipath);
  if (!st) {
    l->class_names = calloc(10, sizeof(char *));
    if (!l->class_names)
      st = beit_error_set(err, BEIT_STATUS_NOMEM, "out of memory");
    for (int c = 0; !st && c < 10; c++)
      if (!(l->class_names[c] = strdup(fashion_classes[c])))
        st = beit_error_set(err, BEIT_STATUS_NOMEM, "out of memory");
      else
        l->num_classes = c + 1;
  }
  int saved_level = stbi_write_png_compression_level; /* a library global: restored below */
  stbi_write_png_compression_level = 9;
  for (uint32_t i = 0; !st && i < n; i++) {
    if (lab[i] >= 10) {
      st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: label %u of image %u out of range", lpath, lab[i], i);
      break;
    }
    struct png_buf b = {0};
    if (!stbi_write_png_to_func(png_sink, &b, (int)cols, (int)rows, 1,
                                pix + (size_t)i * rows * cols, (int)cols) || b.oom) {
      free(b.p);
      st = beit_error_set(err, BEIT_STATUS_NOMEM, "encoding image %u as PNG failed", i);
      break;
    }
    struct beit_pack_item *it = push_item(l);
    char key[64];
    snprintf(key, sizeof key, "%s/%05u", split, i);
    if (!it || !(it->key = strdup(key)) || !(it->labels = malloc(sizeof(int32_t)))) {
      free(b.p);
      st = beit_error_set(err, BEIT_STATUS_NOMEM, "out of memory");
      break;
    }
    it->data = b.p;
    it->size = b.n;
    it->labels[0] = lab[i];
    it->num_labels = 1;
  }
  stbi_write_png_compression_level = saved_level;
  free(pix);
  free(lab);
  return st;
}
