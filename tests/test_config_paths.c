/* Paths inside config files (core/config_table.h beit_config_resolve_paths, mim/recipe.h
 * beit_recipe_resolve): relative to the file that names them, then to the current directory;
 * absolute and empty values kept; values replaced on the command line left alone; a missing path
 * names the file, the key and the paths tried. And every shipped recipe resolves from a folder
 * other than the repository root (ctest runs this in build/tests).
 *
 * usage: test_config_paths SOURCE_DIR   (run in a scratch folder: it writes cfgpaths/ there) */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_table.h"
#include "recipe.h"
#include "testing.h"

struct paths {
  char a[BEIT_CONFIG_STR], b[BEIT_CONFIG_STR];
};

static const struct beit_config_key keys[] = {
    {"a", BEIT_KEY_PATH, offsetof(struct paths, a), 0, 0, NULL, NULL},
    {"inner.b", BEIT_KEY_PATH, offsetof(struct paths, b), 0, 0, NULL, NULL},
};
#define NKEYS (sizeof keys / sizeof keys[0])

static void write_text(const char *path, const char *text)
{
  FILE *f = fopen(path, "w");
  CHECK_MSG(f != NULL, "cannot write %s", path);
  if (f) {
    fputs(text, f);
    fclose(f);
  }
}

/* Load path into p (over empty values), apply the set assignments, resolve; the status. */
static enum beit_status load(struct paths *p, const char *path, const char *set,
                             struct beit_error *err)
{
  memset(p, 0, sizeof *p);
  enum beit_status st = beit_config_load_file(p, keys, NKEYS, path, err);
  if (st)
    return st;
  struct paths file = *p;
  if (set && (st = beit_config_set(p, keys, NKEYS, set, err)))
    return st;
  return beit_config_resolve_paths(p, &file, keys, NKEYS, path, err);
}

static void test_rule(void)
{
  struct paths p;
  struct beit_error err = {0};
  mkdir("cfgpaths", 0755);
  mkdir("cfgpaths/dir", 0755);
  mkdir("cfgpaths/dir/models", 0755);
  write_text("cfgpaths/dir/models/m.json", "{}\n");
  write_text("cfgpaths/only_cwd.json", "{}\n");
  write_text("cfgpaths/both.json", "{}\n");

  /* next to the file: joined with the file's folder */
  write_text("cfgpaths/dir/r1.json", "{\"a\": \"models/m.json\", \"inner\": {\"b\": \"models\"}}");
  CHECK_MSG(load(&p, "cfgpaths/dir/r1.json", NULL, &err) == BEIT_STATUS_OK, "%s", err.message);
  CHECK_MSG(!strcmp(p.a, "cfgpaths/dir/models/m.json"), "%s", p.a);
  CHECK_MSG(!strcmp(p.b, "cfgpaths/dir/models"), "%s", p.b);
  /* the file's folder wins over the current directory */
  write_text("cfgpaths/dir/r2.json", "{\"a\": \"cfgpaths/both.json\"}");
  mkdir("cfgpaths/dir/cfgpaths", 0755);
  write_text("cfgpaths/dir/cfgpaths/both.json", "{}\n");
  CHECK_MSG(load(&p, "cfgpaths/dir/r2.json", NULL, &err) == BEIT_STATUS_OK, "%s", err.message);
  CHECK_MSG(!strcmp(p.a, "cfgpaths/dir/cfgpaths/both.json"), "%s", p.a);
  /* the fallback: relative to the current directory, kept as written */
  write_text("cfgpaths/dir/r3.json", "{\"a\": \"cfgpaths/only_cwd.json\"}");
  CHECK_MSG(load(&p, "cfgpaths/dir/r3.json", NULL, &err) == BEIT_STATUS_OK, "%s", err.message);
  CHECK_MSG(!strcmp(p.a, "cfgpaths/only_cwd.json"), "%s", p.a);
  /* absolute and empty values are kept, absolute ones even when missing (the reader reports) */
  write_text("cfgpaths/dir/r4.json", "{\"a\": \"/nonexistent/x.json\", \"inner\": {\"b\": \"\"}}");
  CHECK_MSG(load(&p, "cfgpaths/dir/r4.json", NULL, &err) == BEIT_STATUS_OK, "%s", err.message);
  CHECK(!strcmp(p.a, "/nonexistent/x.json") && p.b[0] == '\0');
  /* missing: the file, the key and both paths tried */
  write_text("cfgpaths/dir/r5.json", "{\"inner\": {\"b\": \"nope/missing.json\"}}");
  beit_error_clear(&err);
  CHECK(load(&p, "cfgpaths/dir/r5.json", NULL, &err) == BEIT_STATUS_MISSING);
  CHECK_MSG(strstr(err.message, "cfgpaths/dir/r5.json") && strstr(err.message, "'inner.b'") &&
                strstr(err.message, "cfgpaths/dir/nope/missing.json") &&
                strstr(err.message, "and nope/missing.json"),
            "%s", err.message);
  /* a key replaced after loading (--set) is the caller's: relative to the current directory,
   * not resolved and not checked, even when the file's value was missing */
  CHECK_MSG(load(&p, "cfgpaths/dir/r5.json", "inner.b=cfgpaths/only_cwd.json", &err) ==
                BEIT_STATUS_OK, "%s", err.message);
  CHECK_MSG(!strcmp(p.b, "cfgpaths/only_cwd.json"), "%s", p.b);
  CHECK_MSG(load(&p, "cfgpaths/dir/r5.json", "inner.b=not/there", &err) == BEIT_STATUS_OK, "%s",
            err.message);
  CHECK(!strcmp(p.b, "not/there"));
  /* a file in the current directory: its folder is the current directory */
  write_text("r6.json", "{\"a\": \"cfgpaths/missing.json\"}");
  beit_error_clear(&err);
  CHECK(load(&p, "r6.json", NULL, &err) == BEIT_STATUS_MISSING);
  CHECK_MSG(strstr(err.message, "r6.json: key 'a': 'cfgpaths/missing.json' not found"), "%s",
            err.message);
  unlink("r6.json");
  /* a PATH key saves as the string it holds */
  strcpy(p.a, "x/y.json");
  cJSON *j = beit_config_to_json(&p, keys, NKEYS);
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "a");
  CHECK(cJSON_IsString(a) && !strcmp(a->valuestring, "x/y.json"));
  cJSON_Delete(j);
}

/* Every shipped recipe, named by an absolute path from this folder (not the repository root):
 * its model config resolves to a file that exists; --data stays as given. */
static void test_shipped_recipes(const char *root)
{
  static const char *const names[] = {
      "pretrain_fashion_mnist.json", "pretrain_fashion_mnist_long.json",
      "pretrain_base_in22k.json",    "pretrain_base_in1k.json",
      "pretrain_large_in22k.json",   "pretrain_large_in1k.json",
      "finetune_fashion_mnist.json", "finetune_fashion_mnist_long.json",
      "finetune_base_in22k.json",    "finetune_base_in1k.json",
      "finetune_large_in22k.json",
  };
  char cwd[4096];
  CHECK(getcwd(cwd, sizeof cwd) != NULL);
  CHECK_MSG(strcmp(cwd, root) != 0, "run from a folder other than the repository root");
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    char path[4200];
    struct beit_recipe r;
    struct beit_error err = {0};
    snprintf(path, sizeof path, "%s/configs/recipes/%s", root, names[i]);
    beit_recipe_defaults(&r);
    CHECK_MSG(beit_recipe_resolve(&r, path, NULL, 0, "some/data", NULL, &err) == BEIT_STATUS_OK,
              "%s", err.message);
    CHECK_MSG(r.model[0] == '/' && access(r.model, R_OK) == 0, "%s: model %s", names[i],
              r.model);
    CHECK(!strcmp(r.data.train, "some/data"));
  }
}

int main(int argc, char **argv)
{
  test_rule();
  if (argc > 1)
    test_shipped_recipes(argv[1]);
  return test_summary("test_config_paths");
}
