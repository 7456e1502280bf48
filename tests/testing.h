/* A tiny test harness: checks that count failures, and a non-zero exit on any failure.
 * A test that prints a failure and exits 0 is a defect (STYLE.md anti-patterns). */
#ifndef BEIT_TESTS_TESTING_H
#define BEIT_TESTS_TESTING_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rng.h"

extern int beit_test_failures;
extern int beit_test_checks;

#define CHECK(cond)                                                                 \
  do {                                                                              \
    beit_test_checks++;                                                             \
    if (!(cond)) {                                                                  \
      beit_test_failures++;                                                         \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);      \
    }                                                                               \
  } while (0)

#define CHECK_MSG(cond, ...)                                                        \
  do {                                                                              \
    beit_test_checks++;                                                             \
    if (!(cond)) {                                                                  \
      beit_test_failures++;                                                         \
      fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);      \
      fprintf(stderr, __VA_ARGS__);                                                 \
      fprintf(stderr, "\n");                                                        \
    }                                                                               \
  } while (0)

/* Max relative error |a-b| / max(|b|_inf, floor) over n values; prints label and worst index
 * and counts a failure above tol. Returns the error. */
double check_close(const char *label, const float *got, const float *want, size_t n, double tol);
/* check_close with the label formatted from fmt, ... */
double check_closef(const float *got, const float *want, size_t n, double tol, const char *fmt,
                    ...) __attribute__((format(printf, 5, 6)));

/* Test allocations, all freed by tfree_all (clean under LeakSanitizer); running out of memory
 * ends the test with exit status 2. */
void *talloc(size_t bytes);
void tfree_all(void);
/* The tests' random stream: seed it in main with beit_rng_seed(&test_rng, ...). */
extern struct beit_rng test_rng;
float *randn(size_t n, float scale); /* scale * N(0, 1) from test_rng */
float *tdup(const float *x, size_t n);
float *zeros(size_t n);
/* Scratch full of NaN bytes (0xff), so that a kernel that reads a scratch value it did not
 * write first gets NaN into its results. */
void *tgarbage(size_t bytes);

/* The JSON file dir/name, or NULL after a failure naming it (and `made_by`, the fixture's
 * writer, when not NULL). Free with cJSON_Delete. */
struct cJSON;
struct cJSON *test_read_json(const char *dir, const char *name, const char *made_by);

/* Bytes collected by test_mem_append, a sink for stbi_write_*_to_func (malloc'd: free p). */
struct test_mem {
  unsigned char *p;
  size_t n;
};
void test_mem_append(void *ctx, void *data, int size);

/* The whole file dir/name (malloc'd, one spare byte), its size in *n; NULL when unreadable. */
unsigned char *test_read_file(const char *dir, const char *name, size_t *n);

/* The safetensors file dir/name, or NULL after a failure naming it. */
struct beit_safetensors *test_open_fixture(const char *dir, const char *name);

/* Tensor `name` of a safetensors file as floats or int64 (malloc'd), its element count in
 * *numel (may be NULL). NULL when it is absent (a failure when required) or cannot be read as
 * that type (a failure). */
struct beit_safetensors;
float *test_read_f32(const struct beit_safetensors *st, const char *name, int required,
                     size_t *numel);
int64_t *test_read_i64(const struct beit_safetensors *st, const char *name, int required,
                       size_t *numel);

/* Each tensor t of table, its values at base + t->offset divided by div, against the fixture's
 * tensor prefix + t->name within tol (check_close labelled "name prefix<tensor>"); a missing or
 * differently sized reference is a failure. Returns the largest relative error. */
struct beit_tensor_table;
double test_check_tensors(const struct beit_safetensors *exp, const char *prefix,
                          const struct beit_tensor_table *table, const float *base, float div,
                          double tol, const char *name);

/* The inputs of a golden encoder fixture (tools/golden_encoder.py, DIR/inputs.safetensors):
 * pixels (B, C, H, W); drop (L, 2, B) DropPath scales; labels (M or B) class ids, or multi
 * (B, classes) for a multi-label model; mask (B, N) 0/1 when the fixture has bool_masked_pos. */
struct test_golden_inputs {
  float *pixels, *drop, *multi;
  uint8_t *mask;
  int32_t *labels;
};
/* Read DIR/inputs.safetensors for a model of `layers` blocks and `batch` images. Returns 1 when
 * complete; otherwise counts a failure and leaves nothing allocated. */
int test_golden_inputs_load(struct test_golden_inputs *in, const char *dir, size_t layers,
                            size_t batch, int multilabel);
void test_golden_inputs_free(struct test_golden_inputs *in);

/* Read what was written to the temporary file f from its start into text (NUL-terminated, at
 * most n - 1 bytes) and close f: a captured log or warning stream. Returns text. */
char *test_read_log(FILE *f, char *text, size_t n);

/* Returns 1 after printing `usage: PROG args` where argv has fewer than `least` arguments after
 * the program (main then returns 2); 0 otherwise. */
int test_usage(int argc, char **argv, int least, const char *args);

/* Returns 1 after printing `name: skipped: ...` where the CPU has no bf16 matrix products (main
 * then returns TEST_SKIP, ctest's SKIP_RETURN_CODE); 0 where it has them. */
#define TEST_SKIP 77
int test_bf16_missing(const char *name);

/* Make a scratch folder from `pattern` (ending in XXXXXX) into dir (n bytes). Returns 0, or
 * prints why and returns 1, the test's exit status. */
int test_mkdtemp(char *dir, size_t n, const char *pattern);
/* Remove dir and all in it when no check failed; after a failure it stays, to look at. */
void test_rmtree_if_passed(const char *dir);

/* Print the summary line and return the process exit code (0 only if nothing failed). */
int test_summary(const char *name);

#endif
