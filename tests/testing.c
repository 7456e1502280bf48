/* The tiny test harness. */
#include "testing.h"

#include "beit/precision.h"
#include "config_table.h"
#include "safetensors.h"
#include "tensor_table.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int beit_test_failures = 0;
int beit_test_checks = 0;

double check_close(const char *label, const float *got, const float *want, size_t n, double tol)
{
  double maxref = 0.0, maxdiff = 0.0;
  size_t worst = 0;
  int nonfinite = 0;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(got[i]))
      nonfinite = 1;
    double d = fabs((double)got[i] - (double)want[i]);
    if (fabs(want[i]) > maxref)
      maxref = fabs(want[i]);
    if (d > maxdiff) {
      maxdiff = d;
      worst = i;
    }
  }
  double rel = maxdiff / (maxref > 1e-6 ? maxref : 1e-6);
  beit_test_checks++;
  if (nonfinite || rel > tol || n == 0) {
    beit_test_failures++;
    fprintf(stderr, "FAIL %-60s rel %.3e (tol %.1e) at [%zu]: got %.8g want %.8g%s\n", label, rel,
            tol, worst, n ? got[worst] : 0.0, n ? want[worst] : 0.0,
            nonfinite ? " (non-finite)" : "");
  }
  return rel;
}

char *test_read_log(FILE *f, char *text, size_t n)
{
  rewind(f);
  text[fread(text, 1, n - 1, f)] = '\0';
  fclose(f);
  return text;
}

int test_usage(int argc, char **argv, int least, const char *args)
{
  if (argc - 1 >= least)
    return 0;
  fprintf(stderr, "usage: %s %s\n", argv[0], args);
  return 1;
}

int test_bf16_missing(const char *name)
{
  if (beit_precision_bf16_available())
    return 0;
  printf("%s: skipped: no bf16 matrix products on this CPU (oneDNN ISA %s)\n", name,
         beit_precision_isa());
  return 1;
}

int test_mkdtemp(char *dir, size_t n, const char *pattern)
{
  snprintf(dir, n, "%s", pattern);
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  return 0;
}

void test_rmtree_if_passed(const char *dir)
{
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (!beit_test_failures)
    (void)!system(cmd);
}

double check_closef(const float *got, const float *want, size_t n, double tol, const char *fmt,
                    ...)
{
  char label[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(label, sizeof label, fmt, ap);
  va_end(ap);
  return check_close(label, got, want, n, tol);
}

int test_summary(const char *name)
{
  printf("%s: %d checks, %d failed\n", name, beit_test_checks, beit_test_failures);
  return beit_test_failures ? 1 : 0;
}

struct beit_rng test_rng;
static void **allocs;
static size_t n_allocs, cap_allocs;

void *talloc(size_t bytes)
{
  void *p = calloc(bytes ? bytes : 1, 1);
  if (p && n_allocs == cap_allocs) {
    size_t cap = cap_allocs ? 2 * cap_allocs : 256;
    void **grown = realloc(allocs, cap * sizeof *grown);
    if (!grown) {
      free(p);
      p = NULL;
    } else {
      allocs = grown;
      cap_allocs = cap;
    }
  }
  if (!p) {
    fprintf(stderr, "test: out of memory\n");
    exit(2);
  }
  allocs[n_allocs++] = p;
  return p;
}

void tfree_all(void)
{
  for (size_t i = 0; i < n_allocs; i++)
    free(allocs[i]);
  free(allocs);
  allocs = NULL;
  n_allocs = cap_allocs = 0;
}

float *randn(size_t n, float scale)
{
  float *p = talloc(n * sizeof *p);
  for (size_t i = 0; i < n; i++)
    p[i] = scale * (float)beit_rng_normal(&test_rng);
  return p;
}

float *tdup(const float *x, size_t n)
{
  float *p = talloc(n * sizeof *p);
  memcpy(p, x, n * sizeof *p);
  return p;
}

float *zeros(size_t n) { return talloc(n * sizeof(float)); }

void *tgarbage(size_t bytes)
{
  void *p = talloc(bytes);
  memset(p, 0xff, bytes);
  return p;
}

struct cJSON *test_read_json(const char *dir, const char *name, const char *made_by)
{
  char path[4096];
  cJSON *json = NULL;
  struct beit_error err = {0};
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if (beit_json_read_file(&json, path, &err)) {
    CHECK_MSG(0, "%s%s%s%s", err.message, made_by ? " (run " : "", made_by ? made_by : "",
              made_by ? " first)" : "");
    return NULL;
  }
  return json;
}

void test_mem_append(void *ctx, void *data, int size)
{
  struct test_mem *m = ctx;
  unsigned char *p = realloc(m->p, m->n + (size_t)size);
  if (!p) {
    fprintf(stderr, "test: out of memory\n");
    exit(2);
  }
  m->p = p;
  memcpy(m->p + m->n, data, (size_t)size);
  m->n += (size_t)size;
}

unsigned char *test_read_file(const char *dir, const char *name, size_t *n)
{
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  rewind(f);
  unsigned char *p = len >= 0 ? malloc((size_t)len + 1) : NULL;
  *n = p ? fread(p, 1, (size_t)len, f) : 0;
  fclose(f);
  return p;
}

struct beit_safetensors *test_open_fixture(const char *dir, const char *name)
{
  char path[4096];
  struct beit_safetensors *st = NULL;
  struct beit_error err = {0};
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if (beit_safetensors_open(&st, path, &err))
    CHECK_MSG(0, "%s", err.message);
  return st;
}

/* The tensor's entry, or NULL (a failure when required). */
static const struct beit_st_tensor *find_tensor(const struct beit_safetensors *st,
                                                const char *name, int required)
{
  const struct beit_st_tensor *t = beit_safetensors_find(st, name);
  if (!t && required)
    CHECK_MSG(0, "%s: missing tensor %s", beit_safetensors_path(st), name);
  return t;
}

/* Tensor `name` read by `as_f32` (floats) or else as int64 into one malloc'd buffer of
 * numel * elem bytes; NULL when absent (a failure when required) or unreadable (a failure). */
static void *read_tensor(const struct beit_safetensors *st, const char *name, int required,
                         size_t *numel, int as_f32)
{
  const struct beit_st_tensor *t = find_tensor(st, name, required);
  if (!t)
    return NULL;
  struct beit_error err = {0};
  const size_t elem = as_f32 ? sizeof(float) : sizeof(int64_t);
  void *p = malloc((t->numel ? t->numel : 1) * elem);
  enum beit_status rc = BEIT_STATUS_NOMEM;
  if (p)
    rc = as_f32 ? beit_safetensors_read_f32(st, name, p, t->ndim, t->shape, &err)
                : beit_safetensors_read_i64(st, name, p, t->ndim, t->shape, &err);
  if (rc) {
    CHECK_MSG(0, "%s: %s", name, p ? err.message : "out of memory");
    free(p);
    return NULL;
  }
  if (numel)
    *numel = t->numel;
  return p;
}

float *test_read_f32(const struct beit_safetensors *st, const char *name, int required,
                     size_t *numel)
{
  return read_tensor(st, name, required, numel, 1);
}

int64_t *test_read_i64(const struct beit_safetensors *st, const char *name, int required,
                       size_t *numel)
{
  return read_tensor(st, name, required, numel, 0);
}

double test_check_tensors(const struct beit_safetensors *exp, const char *prefix,
                          const struct beit_tensor_table *table, const float *base, float div,
                          double tol, const char *name)
{
  double worst = 0.0;
  for (size_t i = 0; i < table->count; i++) {
    const struct beit_tensor *t = &table->items[i];
    char key[512];
    size_t n = 0;
    snprintf(key, sizeof key, "%s%s", prefix, t->name);
    float *want = test_read_f32(exp, key, 1, &n);
    CHECK_MSG(!want || n == t->numel, "%s: %s has %zu values, the model's %zu", name, key, n,
              t->numel);
    if (want && n == t->numel) {
      float *got = malloc((n ? n : 1) * sizeof *got);
      if (!got) {
        fprintf(stderr, "test: out of memory\n");
        exit(2);
      }
      for (size_t k = 0; k < n; k++)
        got[k] = base[t->offset + k] / div;
      worst = fmax(worst, check_closef(got, want, n, tol, "%s %s", name, key));
      free(got);
    }
    free(want);
  }
  return worst;
}

int test_golden_inputs_load(struct test_golden_inputs *in, const char *dir, size_t layers,
                            size_t batch, int multilabel)
{
  char path[4096];
  struct beit_safetensors *st = NULL;
  size_t n = 0;
  memset(in, 0, sizeof *in);
  snprintf(path, sizeof path, "%s/inputs.safetensors", dir);
  if (!(st = test_open_fixture(dir, "inputs.safetensors")))
    return 0;
  in->pixels = test_read_f32(st, "pixel_values", 1, NULL);
  in->drop = test_read_f32(st, "drop_scales", 1, &n);
  CHECK_MSG(!in->drop || n == layers * 2 * batch, "%s: drop_scales has %zu values, want %zu", path,
            n, layers * 2 * batch);
  int ok = in->pixels && in->drop && n == layers * 2 * batch;
  int64_t *mask = test_read_i64(st, "bool_masked_pos", 0, &n);
  if (mask) {
    in->mask = malloc(n);
    for (size_t i = 0; in->mask && i < n; i++)
      in->mask[i] = (uint8_t)mask[i];
    ok = ok && in->mask;
    free(mask);
  }
  if (multilabel) {
    in->multi = test_read_f32(st, "labels", 1, NULL);
    ok = ok && in->multi;
  } else {
    int64_t *labels = test_read_i64(st, "labels", 1, &n);
    in->labels = labels ? malloc((n ? n : 1) * sizeof *in->labels) : NULL;
    for (size_t i = 0; in->labels && i < n; i++)
      in->labels[i] = (int32_t)labels[i];
    ok = ok && in->labels;
    free(labels);
  }
  beit_safetensors_close(st);
  if (!ok) {
    CHECK_MSG(0, "%s: inputs incomplete", path);
    test_golden_inputs_free(in);
  }
  return ok;
}

void test_golden_inputs_free(struct test_golden_inputs *in)
{
  free(in->pixels);
  free(in->drop);
  free(in->multi);
  free(in->mask);
  free(in->labels);
  memset(in, 0, sizeof *in);
}
