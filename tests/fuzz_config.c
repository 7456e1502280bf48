/* Fuzz target of the table-driven configuration reader (core/config_table.c) through the
 * project's real key tables and the loaders the commands call:
 *   0 a recipe: beit_recipe_resolve (load, --set overrides, paths relative to the file), and
 *     beit_recipe_load + beit_recipe_override
 *   1 a model config.json: beit_config_load (HF keys, id2label, architectures, pruned_heads,
 *     foreign keys), beit_config_override, beit_config_validate
 *   2 a tokenizer config.json: beit_tokenizer_config_load / _override / _validate
 * (The tokenizer training table, mim/tokenizer_train.c, lives in the file of the training loop,
 * which would bring every library into this binary; its rows reuse the recipe's and the
 * tokenizer's names.)
 * Input: one byte choosing the table (modulo 3), the JSON file, then NUL-separated --set
 * assignments. The file is handed over by path (a memfd, /proc/self/fd/N), as the commands read
 * it. A config that loads must also survive what saving does (abort() otherwise): its JSON,
 * written and loaded again into fresh defaults, loads and gives the same JSON.
 * Seeds: tests/fuzz_config_seeds.c. */
#define _GNU_SOURCE /* memfd_create */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "beit/model.h"
#include "beit/tokenizer.h"
#include "dvae.h"
#include "encoder.h"
#include "fuzz_driver.h"
#include "recipe.h"

#define MAX_SETS 8
/* Inputs asking for more labels are skipped (too_many_labels): up to 2^20 are legal and every
 * step is linear (the save was quadratic, found here), but such an input costs a second under
 * the sanitizers, and once the fuzzer has found them it spends its time there. */
#define MAX_LABELS_FUZZED 4096

enum table { TABLE_RECIPE, TABLE_MODEL, TABLE_TOKENIZER, TABLE_COUNT };

struct memfile {
  int fd;
  char path[64];
};

/* n bytes as a file that has a path; -1 when the kernel refuses (then the input is skipped). */
static int memfile_open(struct memfile *m, const void *bytes, size_t n)
{
  m->fd = memfd_create("fuzz-config", MFD_CLOEXEC);
  if (m->fd < 0 || write(m->fd, bytes, n) != (ssize_t)n) {
    if (m->fd >= 0)
      close(m->fd);
    return -1;
  }
  snprintf(m->path, sizeof m->path, "/proc/self/fd/%d", m->fd);
  return 0;
}

/* beit_config_load warns on stderr about the foreign keys of every such input: the stdio
 * stream goes to /dev/null, this file's reports to a copy of descriptor 2 (sanitizer reports
 * write to descriptor 2 itself and stay visible). */
static FILE *report;

static void quiet_stderr(void)
{
  if (report)
    return;
  int fd = dup(2);
  FILE *null = fopen("/dev/null", "w");
  if (fd < 0 || !(report = fdopen(fd, "w")) || !null)
    abort();
  stderr = null;
}

static void check(int ok, const char *what, const char *detail)
{
  if (!ok) {
    fprintf(report, "fuzz_config: broken promise: %s: %s\n", what, detail);
    fflush(report);
    abort();
  }
}

static char *print(const cJSON *json)
{
  char *s = json ? cJSON_PrintUnformatted(json) : NULL;
  check(s != NULL, "the config prints as JSON", "");
  return s;
}

/* Load the printed form of a config into fresh defaults and print that again. */
typedef char *(*reload_fn)(const char *path, struct beit_error *err);

static char *reload_recipe(const char *path, struct beit_error *err)
{
  struct beit_recipe r;
  beit_recipe_defaults(&r);
  if (beit_recipe_load(&r, path, err))
    return NULL;
  cJSON *j = beit_recipe_json(&r);
  char *s = print(j);
  cJSON_Delete(j);
  return s;
}

static char *reload_model(const char *path, struct beit_error *err)
{
  struct beit_config c;
  beit_config_defaults(&c);
  char *s = NULL;
  if (beit_config_load(&c, path, err) == BEIT_STATUS_OK) {
    cJSON *j = beit_config_json(&c);
    s = print(j);
    cJSON_Delete(j);
  }
  beit_config_free(&c);
  return s;
}

static cJSON *tokenizer_json(const struct beit_tokenizer_config *c)
{
  size_t n;
  const struct beit_config_key *keys = beit_dvae_config_keys(&n);
  return beit_config_to_json(c, keys, n);
}

static char *reload_tokenizer(const char *path, struct beit_error *err)
{
  struct beit_tokenizer_config c;
  beit_tokenizer_config_defaults(&c);
  if (beit_tokenizer_config_load(&c, path, err))
    return NULL;
  cJSON *j = tokenizer_json(&c);
  char *s = print(j);
  cJSON_Delete(j);
  return s;
}

/* What a save writes must load back to the same config. */
static void round_trip(cJSON *json, reload_fn reload)
{
  char *saved = print(json);
  cJSON_Delete(json);
  struct memfile m;
  if (memfile_open(&m, saved, strlen(saved)) == 0) {
    struct beit_error err = {0};
    char *again = reload(m.path, &err);
    check(again != NULL, "a saved config loads again", err.message);
    check(strcmp(saved, again) == 0, "a saved config loads to the same config", again);
    free(again);
    close(m.fd);
  }
  free(saved);
}

static void fuzz_recipe(const char *path, const char *const *sets, int nsets)
{
  struct beit_recipe r;
  struct beit_error err = {0};
  /* as the commands do, with --data given: paths are looked up next to the file (a memfd's
   * folder, /proc/self/fd, so a recipe's model file is mostly not found) */
  beit_recipe_defaults(&r);
  enum beit_status st = beit_recipe_resolve(&r, path, sets, nsets, "fuzz-data", NULL, &err);
  check(st == BEIT_STATUS_OK || err.message[0], "a refusal says why", "");
  /* the same without the look-up, so that the saved form is tried for every recipe that loads */
  beit_recipe_defaults(&r);
  st = beit_recipe_load(&r, path, &err);
  for (int i = 0; st == BEIT_STATUS_OK && i < nsets; i++)
    st = beit_recipe_override(&r, sets[i], &err);
  check(st == BEIT_STATUS_OK || err.message[0], "a refusal says why", "");
  if (st == BEIT_STATUS_OK)
    round_trip(beit_recipe_json(&r), reload_recipe);
}

static void fuzz_model(const char *path, const char *const *sets, int nsets)
{
  struct beit_config c;
  struct beit_error err = {0};
  beit_config_defaults(&c);
  enum beit_status st = beit_config_load(&c, path, &err);
  for (int i = 0; st == BEIT_STATUS_OK && i < nsets; i++)
    st = beit_config_override(&c, sets[i], &err);
  if (st == BEIT_STATUS_OK)
    st = beit_config_validate(&c, path, &err);
  check(st == BEIT_STATUS_OK || err.message[0], "a refusal says why", "");
  if (st == BEIT_STATUS_OK) {
    check(c.num_labels >= 1 && c.labels != NULL, "a loaded model has labels", path);
    for (long i = 0; i < c.num_labels; i++)
      check(c.labels[i] != NULL, "every label has a name", path);
    if (c.num_labels <= MAX_LABELS_FUZZED) /* "6e5" gets past too_many_labels */
      round_trip(beit_config_json(&c), reload_model);
  }
  beit_config_free(&c);
}

static void fuzz_tokenizer(const char *path, const char *const *sets, int nsets)
{
  struct beit_tokenizer_config c;
  struct beit_error err = {0};
  beit_tokenizer_config_defaults(&c);
  enum beit_status st = beit_tokenizer_config_load(&c, path, &err);
  for (int i = 0; st == BEIT_STATUS_OK && i < nsets; i++)
    st = beit_tokenizer_config_override(&c, sets[i], &err);
  if (st == BEIT_STATUS_OK)
    st = beit_tokenizer_config_validate(&c, path, &err);
  check(st == BEIT_STATUS_OK || err.message[0], "a refusal says why", "");
  if (st == BEIT_STATUS_OK)
    round_trip(tokenizer_json(&c), reload_tokenizer);
}

/* A num_labels (key or --set) above MAX_LABELS_FUZZED, written as digits. */
static int too_many_labels(const uint8_t *data, size_t size)
{
  static const char key[] = "num_labels";
  const uint8_t *p = data, *end = data + size;
  while ((p = memmem(p, (size_t)(end - p), key, sizeof key - 1))) {
    p += sizeof key - 1;
    for (int skip = 0; p < end && skip < 4 && !isdigit(*p); skip++) /* '": ' or '=' */
      p++;
    unsigned long v = 0;
    while (p < end && isdigit(*p) && v <= MAX_LABELS_FUZZED)
      v = 10 * v + (unsigned long)(*p++ - '0');
    if (v > MAX_LABELS_FUZZED)
      return 1;
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  quiet_stderr();
  if (size < 1 || too_many_labels(data, size))
    return 0;
  enum table table = (enum table)(data[0] % TABLE_COUNT);
  const char *text = (const char *)data + 1, *end = (const char *)data + size;
  size_t json_len = strnlen(text, (size_t)(end - text));
  /* the --set assignments: NUL-terminated copies of what follows the file */
  char *rest = malloc((size_t)(end - text) + 1);
  if (!rest)
    abort();
  memcpy(rest, text, (size_t)(end - text));
  rest[end - text] = '\0';
  const char *sets[MAX_SETS];
  int nsets = 0;
  for (char *p = rest + json_len; p < rest + (end - text) && nsets < MAX_SETS;) {
    p++; /* the NUL before it */
    sets[nsets++] = p;
    p += strlen(p);
  }
  struct memfile m;
  if (memfile_open(&m, text, json_len) == 0) {
    switch (table) {
    case TABLE_RECIPE: fuzz_recipe(m.path, sets, nsets); break;
    case TABLE_MODEL: fuzz_model(m.path, sets, nsets); break;
    default: fuzz_tokenizer(m.path, sets, nsets); break;
    }
    close(m.fd);
  }
  free(rest);
  return 0;
}
