/* The collectives' deadline as the training commands take it (mim/dist_policy.h): --dist-timeout
 * parsing, the recipe key distributed.timeout_s (default 600, 0 = none, range, in the recipe and
 * in the tokenizer training config), the command line overriding the recipe file, and the start
 * of a run setting the job's deadline. The deadline itself (a stopped rank named, the job ended)
 * is tests/mpi_fault.sh stop and tests/test_mpi_timeout_e2e.py.
 *
 * usage: test_dist_policy   (run in a scratch folder: it writes dist_policy_recipe.json there) */
#include <stdio.h>
#include <string.h>

#include "beit/distributed.h"
#include "dist_policy.h"
#include "recipe.h"
#include "testing.h"
#include "tokenizer_train.h"

static void test_parse(void)
{
  static const struct {
    const char *text;
    double want;
  } good[] = {{"30", 30}, {"2.5", 2.5}, {"0", 0}, {"1e9", 1e9}, {"600", 600}, {"0.001", 0.001}};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    double v = -1;
    struct beit_error err = {0};
    CHECK_MSG(beit_dist_policy_parse_timeout(good[i].text, &v, &err) == BEIT_STATUS_OK &&
                  v == good[i].want,
              "'%s' -> %g (%s)", good[i].text, v, err.message);
  }
  static const char *const bad[] = {"-1", "abc", "", "30s", " 30x", "inf", "nan", "1e10", "-0.5"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    double v = 7;
    struct beit_error err = {0};
    CHECK_MSG(beit_dist_policy_parse_timeout(bad[i], &v, &err) == BEIT_STATUS_USAGE && v == 7,
              "'%s' accepted as %g", bad[i], v);
    char quoted[64];
    snprintf(quoted, sizeof quoted, "'%s'", bad[i]);
    CHECK_MSG(strstr(err.message, "--dist-timeout") && strstr(err.message, quoted),
              "the message names the option and the text: %s", err.message);
  }
  double v = 7;
  CHECK(beit_dist_policy_parse_timeout(NULL, &v, NULL) == BEIT_STATUS_USAGE && v == 7);
}

/* --dist-timeout becomes a --set assignment the recipe reads back exactly. */
static void test_timeout_set(void)
{
  char buf[64];
  struct beit_error err = {0};
  CHECK(beit_dist_policy_timeout_set("5", buf, sizeof buf, &err) == BEIT_STATUS_OK);
  CHECK_MSG(strcmp(buf, "distributed.timeout_s=5") == 0, "%s", buf);
  CHECK(beit_dist_policy_timeout_set("0.1", buf, sizeof buf, &err) == BEIT_STATUS_OK);
  struct beit_recipe r;
  beit_recipe_defaults(&r);
  CHECK_MSG(beit_recipe_override(&r, buf, &err) == BEIT_STATUS_OK, "%s", err.message);
  CHECK(r.distributed.timeout_s == 0.1);
  CHECK(beit_dist_policy_timeout_set("-3", buf, sizeof buf, &err) == BEIT_STATUS_USAGE);
  char tiny[8];
  CHECK(beit_dist_policy_timeout_set("5", tiny, sizeof tiny, &err) == BEIT_STATUS_USAGE);
}

static void test_recipe_key(void)
{
  struct beit_recipe r;
  struct beit_error err = {0};
  beit_recipe_defaults(&r);
  CHECK(r.distributed.timeout_s == 600);
  CHECK(beit_recipe_override(&r, "distributed.timeout_s=30", &err) == BEIT_STATUS_OK &&
        r.distributed.timeout_s == 30);
  CHECK(beit_recipe_override(&r, "distributed.timeout_s=0", &err) == BEIT_STATUS_OK &&
        r.distributed.timeout_s == 0);
  CHECK(beit_recipe_override(&r, "distributed.timeout_s=-1", &err) != BEIT_STATUS_OK);
  CHECK_MSG(strstr(err.message, "distributed.timeout_s") != NULL, "names the key: %s",
            err.message);
  CHECK(beit_recipe_override(&r, "distributed.timeout_s=2e9", &err) != BEIT_STATUS_OK);
  CHECK(beit_recipe_override(&r, "distributed.timeout_s=soon", &err) != BEIT_STATUS_OK);
  CHECK(beit_recipe_override(&r, "distributed.timeout_s=30s", &err) != BEIT_STATUS_OK);
  CHECK(beit_recipe_override(&r, "distributed.timeout_s= 30 ", &err) == BEIT_STATUS_OK &&
        r.distributed.timeout_s == 30);
  CHECK(beit_recipe_override(&r, "distributed.timeout_s=0", &err) == BEIT_STATUS_OK);
  CHECK(beit_recipe_override(&r, "distributed.timeout=5", &err) != BEIT_STATUS_OK); /* unknown */
  CHECK(r.distributed.timeout_s == 0); /* failed overrides change nothing */

  /* saved with the recipe (trainer_state.json) */
  cJSON *j = beit_recipe_json(&r);
  const cJSON *dist = cJSON_GetObjectItemCaseSensitive(j, "distributed");
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(dist, "timeout_s");
  CHECK(cJSON_IsNumber(t) && t->valuedouble == 0);
  cJSON_Delete(j);

  /* from a recipe file, and the command line (--dist-timeout, a --set) over it, last one wins */
  const char *path = "dist_policy_recipe.json";
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (!f)
    return;
  fputs("{\"distributed\": {\"timeout_s\": 42}}\n", f);
  fclose(f);
  beit_recipe_defaults(&r);
  CHECK_MSG(beit_recipe_resolve(&r, path, NULL, 0, "data", NULL, &err) == BEIT_STATUS_OK, "%s",
            err.message);
  CHECK(r.distributed.timeout_s == 42);
  char set[64], set2[64];
  CHECK(beit_dist_policy_timeout_set("5", set, sizeof set, &err) == BEIT_STATUS_OK);
  const char *sets[] = {"distributed.timeout_s=9", set};
  beit_recipe_defaults(&r);
  CHECK(beit_recipe_resolve(&r, path, sets, 2, "data", NULL, &err) == BEIT_STATUS_OK);
  CHECK_MSG(r.distributed.timeout_s == 5, "--dist-timeout 5 after --set ...=9 gives %g",
            r.distributed.timeout_s);
  CHECK(beit_dist_policy_timeout_set("0", set2, sizeof set2, &err) == BEIT_STATUS_OK);
  const char *sets2[] = {set2, "distributed.timeout_s=9"};
  beit_recipe_defaults(&r);
  CHECK(beit_recipe_resolve(&r, path, sets2, 2, "data", NULL, &err) == BEIT_STATUS_OK);
  CHECK(r.distributed.timeout_s == 9);
  f = fopen(path, "w");
  if (f) {
    fputs("{\"distributed\": {\"timeout_s\": -5}}\n", f);
    fclose(f);
  }
  beit_recipe_defaults(&r);
  CHECK(beit_recipe_resolve(&r, path, NULL, 0, "data", NULL, &err) != BEIT_STATUS_OK);
  CHECK_MSG(strstr(err.message, path) && strstr(err.message, "distributed.timeout_s"),
            "names the file and the key: %s", err.message);
  remove(path);
}

/* The tokenizer training config reads the same key (its own table). */
static void test_tokenizer_key(void)
{
  struct beit_tokenizer_train_config c;
  struct beit_error err = {0};
  beit_tokenizer_train_defaults(&c);
  CHECK(c.recipe.distributed.timeout_s == 600);
  CHECK_MSG(beit_tokenizer_train_config_override(&c, "distributed.timeout_s=7", &err) ==
                    BEIT_STATUS_OK &&
                c.recipe.distributed.timeout_s == 7,
            "%s", err.message);
  CHECK(beit_tokenizer_train_config_override(&c, "distributed.timeout_s=-7", &err) !=
        BEIT_STATUS_OK);
}

/* A run's start sets the job's deadline; one rank prints no rank list. */
static void test_start(void)
{
  struct beit_dist *d = NULL;
  struct beit_error err = {0};
  CHECK(beit_dist_init(&d, NULL, NULL, &err) == BEIT_STATUS_OK);
  if (!d)
    return;
  FILE *log = tmpfile();
  beit_dist_policy_start(d, 5, log);
  CHECK(beit_dist_timeout(d) == 5);
  CHECK(log && ftell(log) == 0);
  beit_dist_policy_start(d, 0, log);
  CHECK(beit_dist_timeout(d) == 0);
  if (log)
    fclose(log);
  CHECK(beit_dist_pid(d, 0) > 0 && beit_dist_host(d, 0)[0]);
  beit_dist_finalize(d);
}

int main(void)
{
  test_parse();
  test_timeout_set();
  test_recipe_key();
  test_tokenizer_key();
  test_start();
  return test_summary("test_dist_policy");
}
