/* safetensors reader and writer (spec 10.3).
 *
 * Reading maps the file read-only and validates the whole header at open, so that every tensor
 * handed out afterwards is known to lie inside the file with a size matching its dtype and shape.
 * Header entries keep their file order for beit_safetensors_at(); lookups by name go through an
 * index sorted by name, which is also how duplicate names are found (cJSON keeps duplicates).
 * Holes between tensors are tolerated (HF's reader rejects them); overlaps are not.
 *
 * Writing lays tensors out contiguously in the given order after a space-padded header whose
 * length is a multiple of 8, and streams header and tensor bytes through
 * beit_write_file_atomic_parts (path.tmp + fsync + rename), so a model is never copied.
 * Data is raw little-endian: this file assumes a little-endian host. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "config_table.h"
#include "strbuf.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors io assumes little endian");

#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000) /* the reference implementation's cap */
#define ST_MAX_EXACT 9007199254740992.0             /* 2^53: larger JSON numbers are inexact */

struct beit_safetensors {
  char *path;
  void *map;
  size_t map_size;
  const unsigned char *data; /* first byte after the header */
  size_t data_size;
  cJSON *header; /* owns the tensor names and metadata strings */
  const cJSON *metadata;
  struct beit_st_tensor *tensors; /* header order */
  size_t count;
  const struct beit_st_tensor **by_name; /* into tensors, sorted by name */
};

static const struct {
  const char *name;
  size_t size;
} dtype_info[] = {
    [BEIT_DTYPE_F32] = {"F32", 4}, [BEIT_DTYPE_F16] = {"F16", 2}, [BEIT_DTYPE_BF16] = {"BF16", 2},
    [BEIT_DTYPE_F64] = {"F64", 8}, [BEIT_DTYPE_I64] = {"I64", 8}, [BEIT_DTYPE_I32] = {"I32", 4},
    [BEIT_DTYPE_I16] = {"I16", 2}, [BEIT_DTYPE_I8] = {"I8", 1},   [BEIT_DTYPE_U8] = {"U8", 1},
    [BEIT_DTYPE_BOOL] = {"BOOL", 1},
};
#define DTYPE_COUNT (sizeof dtype_info / sizeof dtype_info[0])

static int dtype_valid(enum beit_dtype d) { return (unsigned)d < DTYPE_COUNT; }

static int dtype_from_name(const char *s, enum beit_dtype *out)
{
  for (size_t i = 0; i < DTYPE_COUNT; i++)
    if (strcmp(dtype_info[i].name, s) == 0) {
      *out = (enum beit_dtype)i;
      return 1;
    }
  return 0;
}

/* "(768, 768)"; "()" for a scalar. */
static const char *shape_str(int ndim, const size_t *shape, char *buf, size_t size)
{
  size_t n = (size_t)snprintf(buf, size, "(");
  for (int d = 0; d < ndim && n < size; d++)
    n += (size_t)snprintf(buf + n, size - n, d ? ", %zu" : "%zu", shape[d]);
  if (n < size)
    snprintf(buf + n, size - n, ")");
  return buf;
}

/* numel of a shape; 0 on size_t overflow with *overflow set. */
static size_t shape_numel(int ndim, const size_t *shape, int *overflow)
{
  size_t numel = 1;
  *overflow = 0;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] != 0 && numel > SIZE_MAX / shape[d]) {
      *overflow = 1;
      return 0;
    }
    numel *= shape[d];
  }
  return numel;
}

/* ---------------------------------------------------------------------------------------------
 * Reading */

static int by_name_cmp(const void *a, const void *b)
{
  const struct beit_st_tensor *x = *(const struct beit_st_tensor *const *)a;
  const struct beit_st_tensor *y = *(const struct beit_st_tensor *const *)b;
  return strcmp(x->name, y->name);
}

static int by_begin_cmp(const void *a, const void *b)
{
  const struct beit_st_tensor *x = *(const struct beit_st_tensor *const *)a;
  const struct beit_st_tensor *y = *(const struct beit_st_tensor *const *)b;
  if (x->data != y->data)
    return (const unsigned char *)x->data < (const unsigned char *)y->data ? -1 : 1;
  return x->nbytes < y->nbytes ? -1 : (x->nbytes > y->nbytes);
}

/* A JSON number that is a non-negative integer exactly representable in a double. */
static int json_size(const cJSON *item, size_t *out)
{
  if (!cJSON_IsNumber(item))
    return 0;
  double v = item->valuedouble;
  if (!(v >= 0.0) || v >= ST_MAX_EXACT || v != floor(v) || v > (double)SIZE_MAX)
    return 0;
  *out = (size_t)v;
  return 1;
}

static enum beit_status parse_metadata(struct beit_safetensors *st, const cJSON *item,
                                       struct beit_error *err)
{
  if (!cJSON_IsObject(item))
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: '__metadata__' is not a JSON object",
                          st->path);
  const cJSON *kv;
  cJSON_ArrayForEach(kv, item)
  {
    if (!cJSON_IsString(kv))
      return beit_error_set(err, BEIT_STATUS_FORMAT,
                            "%s: '__metadata__' entry '%s' is not a string", st->path, kv->string);
  }
  st->metadata = item;
  return BEIT_STATUS_OK;
}

/* Validate one header entry and fill t (everything except what needs the other entries). */
static enum beit_status parse_entry(struct beit_safetensors *st, const cJSON *item,
                                    struct beit_st_tensor *t, struct beit_error *err)
{
  const char *path = st->path, *name = item->string;
  char sbuf[160];
  t->name = name;
  if (!cJSON_IsObject(item))
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: tensor '%s': entry is not a JSON object",
                          path, name);

  const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
  if (!cJSON_IsString(dtype))
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: tensor '%s': missing string 'dtype'",
                          path, name);
  if (!dtype_from_name(dtype->valuestring, &t->dtype))
    return beit_error_set(err, BEIT_STATUS_UNSUPPORTED,
                          "%s: tensor '%s': unsupported dtype '%s' (known: F32 F16 BF16 F64 I64 "
                          "I32 I16 I8 U8 BOOL)",
                          path, name, dtype->valuestring);

  const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
  if (!cJSON_IsArray(shape))
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: tensor '%s': missing array 'shape'", path,
                          name);
  int ndim = cJSON_GetArraySize(shape);
  if (ndim > BEIT_ST_MAX_DIMS)
    return beit_error_set(err, BEIT_STATUS_UNSUPPORTED,
                          "%s: tensor '%s': %d dimensions, at most %d supported", path, name, ndim,
                          BEIT_ST_MAX_DIMS);
  t->ndim = ndim;
  const cJSON *dim;
  int d = 0;
  cJSON_ArrayForEach(dim, shape)
  {
    if (!json_size(dim, &t->shape[d]))
      return beit_error_set(err, BEIT_STATUS_FORMAT,
                            "%s: tensor '%s': shape entry %d is not a non-negative integer", path,
                            name, d);
    d++;
  }
  int overflow;
  t->numel = shape_numel(ndim, t->shape, &overflow);
  size_t esize = dtype_info[t->dtype].size;
  if (overflow || t->numel > SIZE_MAX / esize)
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: tensor '%s': shape %s %s overflows",
                          path, name, shape_str(ndim, t->shape, sbuf, sizeof sbuf),
                          dtype_info[t->dtype].name);
  t->nbytes = t->numel * esize;

  const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
  size_t begin, end;
  if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
      !json_size(cJSON_GetArrayItem(offs, 0), &begin) ||
      !json_size(cJSON_GetArrayItem(offs, 1), &end))
    return beit_error_set(err, BEIT_STATUS_FORMAT,
                          "%s: tensor '%s': 'data_offsets' is not a pair of non-negative integers",
                          path, name);
  if (begin > end)
    return beit_error_set(err, BEIT_STATUS_FORMAT,
                          "%s: tensor '%s': data_offsets [%zu, %zu] have begin after end", path,
                          name, begin, end);
  if (end - begin != t->nbytes)
    return beit_error_set(err, BEIT_STATUS_FORMAT,
                          "%s: tensor '%s': data_offsets [%zu, %zu] hold %zu bytes but shape %s "
                          "%s needs %zu",
                          path, name, begin, end, end - begin,
                          shape_str(ndim, t->shape, sbuf, sizeof sbuf), dtype_info[t->dtype].name,
                          t->nbytes);
  if (end > st->data_size)
    return beit_error_set(err, BEIT_STATUS_FORMAT,
                          "%s: tensor '%s': data_offsets [%zu, %zu] run past the end of the "
                          "%zu-byte data buffer",
                          path, name, begin, end, st->data_size);
  t->data = st->data + begin;
  return BEIT_STATUS_OK;
}

/* Duplicate names (via the sorted index) and overlapping byte ranges. */
static enum beit_status check_layout(struct beit_safetensors *st, struct beit_error *err)
{
  size_t n = st->count;
  if (n == 0)
    return BEIT_STATUS_OK;
  for (size_t i = 0; i < n; i++)
    st->by_name[i] = &st->tensors[i];
  qsort(st->by_name, n, sizeof *st->by_name, by_name_cmp);
  for (size_t i = 1; i < n; i++)
    if (strcmp(st->by_name[i - 1]->name, st->by_name[i]->name) == 0)
      return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: tensor '%s' appears twice in the header",
                            st->path, st->by_name[i]->name);

  const struct beit_st_tensor **order = malloc(n * sizeof *order);
  if (!order)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "%s: no memory for %zu tensors", st->path, n);
  for (size_t i = 0; i < n; i++)
    order[i] = &st->tensors[i];
  qsort(order, n, sizeof *order, by_begin_cmp);
  enum beit_status status = BEIT_STATUS_OK;
  const struct beit_st_tensor *reach = order[0]; /* the range ending furthest so far */
  for (size_t i = 1; i < n; i++) {
    const struct beit_st_tensor *t = order[i];
    const unsigned char *rb = reach->data, *tb = t->data;
    if (tb < rb + reach->nbytes) {
      size_t b0 = (size_t)(rb - st->data), b1 = (size_t)(tb - st->data);
      status = beit_error_set(err, BEIT_STATUS_FORMAT,
                              "%s: tensors '%s' [%zu, %zu] and '%s' [%zu, %zu] overlap", st->path,
                              reach->name, b0, b0 + reach->nbytes, t->name, b1, b1 + t->nbytes);
      break;
    }
    if (tb + t->nbytes > rb + reach->nbytes)
      reach = t;
  }
  free(order);
  return status;
}

static enum beit_status parse_header(struct beit_safetensors *st, const char *text, size_t n,
                                     struct beit_error *err)
{
  const char *end = NULL;
  st->header = cJSON_ParseWithLengthOpts(text, n, &end, 0);
  if (!st->header) {
    const char *at = cJSON_GetErrorPtr();
    size_t off = (at && at >= text && at <= text + n) ? (size_t)(at - text) : 0;
    return beit_error_set(err, BEIT_STATUS_FORMAT,
                          "%s: header (%zu bytes) is not valid JSON (near byte %zu)", st->path, n,
                          off);
  }
  for (const char *p = end; p && p < text + n; p++)
    if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
      return beit_error_set(err, BEIT_STATUS_FORMAT,
                            "%s: header has trailing bytes after the JSON object (at byte %zu)",
                            st->path, (size_t)(p - text));
  if (!cJSON_IsObject(st->header))
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: header is not a JSON object", st->path);

  size_t n_items = 0;
  const cJSON *item;
  cJSON_ArrayForEach(item, st->header) n_items++;
  st->tensors = calloc(n_items ? n_items : 1, sizeof *st->tensors);
  st->by_name = calloc(n_items ? n_items : 1, sizeof *st->by_name);
  if (!st->tensors || !st->by_name)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "%s: no memory for %zu header entries",
                          st->path, n_items);

  int seen_metadata = 0;
  cJSON_ArrayForEach(item, st->header)
  {
    enum beit_status status;
    if (strcmp(item->string, "__metadata__") == 0) {
      if (seen_metadata++)
        return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: '__metadata__' appears twice",
                              st->path);
      status = parse_metadata(st, item, err);
    } else {
      status = parse_entry(st, item, &st->tensors[st->count], err);
      st->count += status == BEIT_STATUS_OK;
    }
    if (status != BEIT_STATUS_OK)
      return status;
  }
  return check_layout(st, err);
}

/* The file's bytes (size of them at base, which st does not own) -> st: header length, header,
 * tensors. */
static enum beit_status parse_bytes(struct beit_safetensors *st, const unsigned char *base,
                                    size_t size, struct beit_error *err)
{
  const char *path = st->path;
  if (size < 8)
    return beit_error_set(err, BEIT_STATUS_FORMAT,
                          "%s: %zu bytes, too short for the 8-byte header length", path, size);
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--)
    n = n << 8 | base[i];
  if (n > ST_MAX_HEADER)
    return beit_error_set(err, BEIT_STATUS_FORMAT,
                          "%s: header length %llu exceeds the 100 MB limit", path,
                          (unsigned long long)n);
  if (n > size - 8)
    return beit_error_set(err, BEIT_STATUS_FORMAT,
                          "%s: header length %llu runs past the end of the %zu-byte file", path,
                          (unsigned long long)n, size);
  st->data = base + 8 + n;
  st->data_size = size - 8 - (size_t)n;
  return parse_header(st, (const char *)base + 8, (size_t)n, err);
}

static struct beit_safetensors *alloc_handle(const char *path, struct beit_error *err)
{
  struct beit_safetensors *st = calloc(1, sizeof *st);
  if (st && (st->path = strdup(path)))
    return st;
  free(st);
  beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", path);
  return NULL;
}

enum beit_status beit_safetensors_open(struct beit_safetensors **out, const char *path,
                                       struct beit_error *err)
{
  *out = NULL;
  struct beit_safetensors *st = alloc_handle(path, err);
  if (!st)
    return BEIT_STATUS_NOMEM;
  enum beit_status status;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    status = beit_error_set(err, errno == ENOENT ? BEIT_STATUS_MISSING : BEIT_STATUS_IO,
                            "%s: cannot open: %s", path, strerror(errno));
    goto free_st;
  }
  struct stat sb;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    status = beit_error_set(err, BEIT_STATUS_IO, "%s: not a regular file", path);
    goto close_fd;
  }
  size_t size = (size_t)sb.st_size;
  if (size >= 8) { /* a shorter file is named by parse_bytes */
    st->map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (st->map == MAP_FAILED) {
      st->map = NULL;
      status = beit_error_set(err, BEIT_STATUS_IO, "%s: cannot map: %s", path, strerror(errno));
      goto close_fd;
    }
    st->map_size = size;
  }
  close(fd);
  fd = -1;
  status = parse_bytes(st, st->map, size, err);
  if (status != BEIT_STATUS_OK)
    goto free_st;
  *out = st;
  return BEIT_STATUS_OK;

close_fd:
  close(fd);
free_st:
  beit_safetensors_close(st);
  return status;
}

enum beit_status beit_safetensors_open_memory(struct beit_safetensors **out, const char *name,
                                              const void *bytes, size_t size,
                                              struct beit_error *err)
{
  *out = NULL;
  struct beit_safetensors *st = alloc_handle(name, err);
  if (!st)
    return BEIT_STATUS_NOMEM;
  enum beit_status status = parse_bytes(st, bytes, size, err);
  if (status != BEIT_STATUS_OK) {
    beit_safetensors_close(st);
    return status;
  }
  *out = st;
  return BEIT_STATUS_OK;
}

void beit_safetensors_close(struct beit_safetensors *st)
{
  if (!st)
    return;
  if (st->map)
    munmap(st->map, st->map_size);
  cJSON_Delete(st->header);
  free(st->tensors);
  free(st->by_name);
  free(st->path);
  free(st);
}

const char *beit_safetensors_path(const struct beit_safetensors *st) { return st->path; }

size_t beit_safetensors_count(const struct beit_safetensors *st) { return st->count; }

const struct beit_st_tensor *beit_safetensors_at(const struct beit_safetensors *st, size_t i)
{
  return i < st->count ? &st->tensors[i] : NULL;
}

const struct beit_st_tensor *beit_safetensors_find(const struct beit_safetensors *st,
                                                   const char *name)
{
  size_t lo = 0, hi = st->count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const struct beit_st_tensor *t = st->by_name[mid];
    int c = strcmp(t->name, name);
    if (c == 0)
      return t;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

const char *beit_safetensors_metadata(const struct beit_safetensors *st, const char *key)
{
  if (!st->metadata)
    return NULL;
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(st->metadata, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Find name and check its shape against (ndim, shape). */
static enum beit_status lookup(const struct beit_safetensors *st, const char *name, int ndim,
                               const size_t *shape, const struct beit_st_tensor **out,
                               struct beit_error *err)
{
  const struct beit_st_tensor *t = beit_safetensors_find(st, name);
  *out = t;
  if (!t)
    return beit_error_set(err, BEIT_STATUS_MISSING, "%s: tensor '%s' not found (%zu tensors)",
                          st->path, name, st->count);
  int same = ndim == t->ndim;
  for (int d = 0; same && d < ndim; d++)
    same = shape[d] == t->shape[d];
  if (!same) {
    char want[160], have[160];
    return beit_error_set(err, BEIT_STATUS_SHAPE, "%s: tensor '%s': file has shape %s, expected %s",
                          st->path, name, shape_str(t->ndim, t->shape, have, sizeof have),
                          shape_str(ndim < 0 ? 0 : ndim, shape, want, sizeof want));
  }
  return BEIT_STATUS_OK;
}

/* IEEE binary16 to binary32, exact for every input (subnormals, infinities, NaN payloads). */
static float half_to_float(uint16_t h)
{
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    float f = (float)mant * 0x1p-24f; /* zero or subnormal: mant * 2^-24 */
    return sign ? -f : f;
  }
  if (exp == 31)
    bits = sign | 0x7f800000u | (mant << 13);
  else
    bits = sign | ((exp + 112u) << 23) | (mant << 13); /* rebias 15 -> 127 */
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

enum beit_status beit_safetensors_read_f32(const struct beit_safetensors *st, const char *name,
                                           float *dst, int ndim, const size_t *shape,
                                           struct beit_error *err)
{
  const struct beit_st_tensor *t;
  enum beit_status status = lookup(st, name, ndim, shape, &t, err);
  if (status != BEIT_STATUS_OK)
    return status;
  const unsigned char *src = t->data; /* not necessarily aligned: element loads via memcpy */
  switch (t->dtype) {
  case BEIT_DTYPE_F32:
    memcpy(dst, src, t->nbytes);
    break;
  case BEIT_DTYPE_F16:
    for (size_t i = 0; i < t->numel; i++) {
      uint16_t h;
      memcpy(&h, src + 2 * i, 2);
      dst[i] = half_to_float(h);
    }
    break;
  case BEIT_DTYPE_BF16:
    for (size_t i = 0; i < t->numel; i++) {
      uint16_t h;
      memcpy(&h, src + 2 * i, 2);
      uint32_t bits = (uint32_t)h << 16;
      memcpy(&dst[i], &bits, 4);
    }
    break;
  case BEIT_DTYPE_F64:
    for (size_t i = 0; i < t->numel; i++) {
      double v;
      memcpy(&v, src + 8 * i, 8);
      dst[i] = (float)v;
    }
    break;
  default:
    return beit_error_set(err, BEIT_STATUS_UNSUPPORTED,
                          "%s: tensor '%s': dtype %s cannot be read as floats", st->path, name,
                          dtype_info[t->dtype].name);
  }
  return BEIT_STATUS_OK;
}

enum beit_status beit_safetensors_read_i64(const struct beit_safetensors *st, const char *name,
                                           int64_t *dst, int ndim, const size_t *shape,
                                           struct beit_error *err)
{
  const struct beit_st_tensor *t;
  enum beit_status status = lookup(st, name, ndim, shape, &t, err);
  if (status != BEIT_STATUS_OK)
    return status;
  const unsigned char *src = t->data;
  if (t->dtype != BEIT_DTYPE_I64 && t->dtype != BEIT_DTYPE_I32 && t->dtype != BEIT_DTYPE_I16 &&
      t->dtype != BEIT_DTYPE_I8 && t->dtype != BEIT_DTYPE_U8 && t->dtype != BEIT_DTYPE_BOOL)
    return beit_error_set(err, BEIT_STATUS_UNSUPPORTED, /* also when numel is 0 */
                          "%s: tensor '%s': dtype %s cannot be read as integers", st->path, name,
                          dtype_info[t->dtype].name);
  for (size_t i = 0; i < t->numel; i++) {
    switch (t->dtype) {
    case BEIT_DTYPE_I64:
      memcpy(&dst[i], src + 8 * i, 8);
      break;
    case BEIT_DTYPE_I32: {
      int32_t v;
      memcpy(&v, src + 4 * i, 4);
      dst[i] = v;
      break;
    }
    case BEIT_DTYPE_I16: {
      int16_t v;
      memcpy(&v, src + 2 * i, 2);
      dst[i] = v;
      break;
    }
    case BEIT_DTYPE_I8:
      dst[i] = (int8_t)src[i];
      break;
    case BEIT_DTYPE_U8:
      dst[i] = src[i];
      break;
    case BEIT_DTYPE_BOOL:
      dst[i] = src[i] != 0;
      break;
    default: /* refused above */
      break;
    }
  }
  return BEIT_STATUS_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Writing */

static int cstr_cmp(const void *a, const void *b)
{
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Check names (non-empty, not reserved, unique), dtypes, ranks and data pointers. */
static enum beit_status check_entries(const char *path, const struct beit_st_entry *entries,
                                      size_t count, size_t *nbytes, struct beit_error *err)
{
  for (size_t i = 0; i < count; i++) {
    const struct beit_st_entry *e = &entries[i];
    if (!e->name || !e->name[0] || strcmp(e->name, "__metadata__") == 0)
      return beit_error_set(err, BEIT_STATUS_USAGE, "%s: entry %zu: invalid tensor name '%s'",
                            path, i, e->name ? e->name : "(null)");
    if (!dtype_valid(e->dtype) || e->ndim < 0 || e->ndim > BEIT_ST_MAX_DIMS)
      return beit_error_set(err, BEIT_STATUS_USAGE,
                            "%s: tensor '%s': invalid dtype %d or rank %d", path, e->name,
                            (int)e->dtype, e->ndim);
    int overflow;
    size_t numel = shape_numel(e->ndim, e->shape, &overflow);
    size_t esize = dtype_info[e->dtype].size;
    if (overflow || numel > SIZE_MAX / esize)
      return beit_error_set(err, BEIT_STATUS_USAGE, "%s: tensor '%s': shape overflows", path,
                            e->name);
    nbytes[i] = numel * esize;
    if (nbytes[i] && !e->data)
      return beit_error_set(err, BEIT_STATUS_USAGE, "%s: tensor '%s': no data", path, e->name);
  }
  const char **names = malloc((count ? count : 1) * sizeof *names);
  if (!names)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", path);
  for (size_t i = 0; i < count; i++)
    names[i] = entries[i].name;
  qsort(names, count, sizeof *names, cstr_cmp);
  enum beit_status status = BEIT_STATUS_OK;
  for (size_t i = 1; i < count; i++)
    if (strcmp(names[i - 1], names[i]) == 0) {
      status = beit_error_set(err, BEIT_STATUS_USAGE, "%s: tensor '%s' given twice", path,
                              names[i]);
      break;
    }
  free(names);
  return status;
}

/* The header JSON, space-padded to a multiple of 8 bytes. */
static enum beit_status build_header(struct beit_strbuf *h, const char *path,
                                     const struct beit_st_entry *entries, size_t count,
                                     const size_t *nbytes, const char *const *metadata,
                                     struct beit_error *err)
{
  size_t nmeta = 0;
  while (metadata && metadata[2 * nmeta])
    nmeta++;
  for (size_t i = 0; i < nmeta; i++) {
    if (!metadata[2 * i + 1])
      return beit_error_set(err, BEIT_STATUS_USAGE, "%s: metadata key '%s' has no value", path,
                            metadata[2 * i]);
    for (size_t j = 0; j < i; j++)
      if (strcmp(metadata[2 * i], metadata[2 * j]) == 0)
        return beit_error_set(err, BEIT_STATUS_USAGE, "%s: metadata key '%s' given twice", path,
                              metadata[2 * i]);
  }

  beit_strbuf_append(h, "{\"__metadata__\":{", 17);
  int format_given = 0;
  for (size_t i = 0; i < nmeta; i++)
    format_given |= strcmp(metadata[2 * i], "format") == 0;
  if (!format_given)
    beit_strbuf_append(h, "\"format\":\"pt\"", 13);
  for (size_t i = 0; i < nmeta; i++) {
    if (i || !format_given)
      beit_strbuf_append(h, ",", 1);
    beit_strbuf_json_string(h, metadata[2 * i]);
    beit_strbuf_append(h, ":", 1);
    beit_strbuf_json_string(h, metadata[2 * i + 1]);
  }
  beit_strbuf_append(h, "}", 1);

  size_t offset = 0;
  for (size_t i = 0; i < count; i++) {
    const struct beit_st_entry *e = &entries[i];
    beit_strbuf_append(h, ",", 1);
    beit_strbuf_json_string(h, e->name);
    beit_strbuf_printf(h, ":{\"dtype\":\"%s\",\"shape\":[", dtype_info[e->dtype].name);
    for (int d = 0; d < e->ndim; d++)
      beit_strbuf_printf(h, d ? ",%zu" : "%zu", e->shape[d]);
    beit_strbuf_printf(h, "],\"data_offsets\":[%zu,%zu]}", offset, offset + nbytes[i]);
    offset += nbytes[i];
  }
  beit_strbuf_append(h, "}", 1);
  while (!h->oom && h->len % 8)
    beit_strbuf_append(h, " ", 1);
  if (h->oom)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory for the header", path);
  return BEIT_STATUS_OK;
}

enum beit_status beit_safetensors_write(const char *path, const struct beit_st_entry *entries,
                                        size_t count, const char *const *metadata,
                                        struct beit_error *err)
{
  enum beit_status status = BEIT_STATUS_NOMEM;
  struct beit_strbuf header = {0};
  size_t *nbytes = malloc((count ? count : 1) * sizeof *nbytes);
  struct beit_file_part *parts = malloc((count + 2) * sizeof *parts);
  if (!nbytes || !parts) {
    beit_error_set(err, status, "%s: out of memory for %zu tensors", path, count);
    goto free_all;
  }
  status = check_entries(path, entries, count, nbytes, err);
  if (status != BEIT_STATUS_OK)
    goto free_all;
  status = build_header(&header, path, entries, count, nbytes, metadata, err);
  if (status != BEIT_STATUS_OK)
    goto free_all;

  unsigned char len_bytes[8];
  for (int i = 0; i < 8; i++)
    len_bytes[i] = (unsigned char)((uint64_t)header.len >> (8 * i));
  size_t nparts = 0;
  parts[nparts++] = (struct beit_file_part){len_bytes, 8};
  parts[nparts++] = (struct beit_file_part){header.data, header.len};
  for (size_t i = 0; i < count; i++)
    if (nbytes[i])
      parts[nparts++] = (struct beit_file_part){entries[i].data, nbytes[i]};
  status = beit_write_file_atomic_parts(path, parts, nparts, err);

free_all:
  beit_strbuf_free(&header);
  free(parts);
  free(nbytes);
  return status;
}

enum beit_status beit_safetensors_write_table(const char *path,
                                              const struct beit_tensor_table *table,
                                              const float *buffer, const char *const *metadata,
                                              struct beit_error *err)
{
  size_t n = table->count;
  struct beit_st_entry *entries = calloc(n ? n : 1, sizeof *entries);
  if (!entries)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory for %zu tensors", path, n);
  for (size_t i = 0; i < n; i++) {
    const struct beit_tensor *t = &table->items[i];
    entries[i].name = t->name;
    entries[i].dtype = BEIT_DTYPE_F32;
    entries[i].ndim = t->ndim;
    for (int d = 0; d < t->ndim; d++)
      entries[i].shape[d] = t->shape[d];
    entries[i].data = buffer + t->offset;
  }
  enum beit_status status = beit_safetensors_write(path, entries, n, metadata, err);
  free(entries);
  return status;
}
