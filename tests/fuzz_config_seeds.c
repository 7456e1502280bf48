/* Seeds and dictionary of tests/fuzz_config.c for the driver build (fuzz_driver.h): every JSON
 * file under configs/recipes, configs/models and tests/fixtures/hf_config/ (HF config.json of
 * several transformers versions, and refused ones), the tokenizer configs inside
 * configs/tokenizer (their "model" member), each with the table byte of its loader, plain and
 * with a few --set assignments; then near misses. BEIT_FUZZ_SOURCE_DIR is the repository. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fuzz_driver.h"

enum { RECIPE, MODEL, TOKENIZER };

/* table byte, file text, NUL-separated assignments ("a=1\0b=2") */
static void add(int table, const char *json, size_t json_len, const char *sets, size_t sets_len)
{
  size_t n = 1 + json_len + (sets_len ? 1 + sets_len : 0);
  char *buf = malloc(n);
  if (!buf)
    abort();
  buf[0] = (char)table;
  memcpy(buf + 1, json, json_len);
  if (sets_len) {
    buf[1 + json_len] = '\0';
    memcpy(buf + 2 + json_len, sets, sets_len);
  }
  fuzz_add_seed(buf, n);
  free(buf);
}

#define ADD(table, json, sets) add(table, json, strlen(json), sets, sizeof sets - 1)

static const char recipe_sets[] = "optimizer.lr=0.5\0data.norm=imagenet\0model=\"x.json\"\0"
                                  "masking.type=random\0batch.size=1e3";
static const char model_sets[] = "num_labels=3\0hidden_act=gelu\0image_size=2.5";
static const char tokenizer_sets[] = "n_hid=64\0decoder=false\0input_map=dalle";

/* Every .json file of folder as a seed for table, once plain and once with sets; with member
 * non-NULL, that member of each file instead of the whole. */
static int add_folder(const char *folder, const char *member, int table, const char *sets,
                      size_t sets_len)
{
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/%s", BEIT_FUZZ_SOURCE_DIR, folder);
  DIR *d = opendir(dir);
  if (!d) {
    perror(dir);
    return -1;
  }
  int count = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t len = strlen(e->d_name);
    if (len < 6 || strcmp(e->d_name + len - 5, ".json"))
      continue;
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    FILE *f = fopen(path, "rb");
    char text[16384];
    size_t n = f ? fread(text, 1, sizeof text, f) : 0;
    if (f)
      fclose(f);
    if (n == 0 || n == sizeof text)
      continue;
    if (member) {
      cJSON *root = cJSON_ParseWithLength(text, n);
      char *sub = cJSON_Print(cJSON_GetObjectItemCaseSensitive(root, member));
      cJSON_Delete(root);
      if (!sub)
        continue;
      n = (size_t)snprintf(text, sizeof text, "%s", sub);
      free(sub);
    }
    add(table, text, n, NULL, 0);
    add(table, text, n, sets, sets_len);
    count++;
  }
  closedir(d);
  return count > 0 ? 0 : -1;
}

static int make_seeds(void)
{
  if (add_folder("configs/recipes", NULL, RECIPE, recipe_sets, sizeof recipe_sets - 1) ||
      add_folder("configs/models", NULL, MODEL, model_sets, sizeof model_sets - 1) ||
      add_folder("tests/fixtures/hf_config", NULL, MODEL, model_sets, sizeof model_sets - 1) ||
      add_folder("configs/tokenizer", "model", TOKENIZER, tokenizer_sets,
                 sizeof tokenizer_sets - 1))
    return -1;
  ADD(TOKENIZER, "{\"format_version\": 1, \"model_type\": \"dall-e\", \"input_channels\": 3, "
                 "\"n_hid\": 32, \"group_count\": 3, \"n_blk_per_group\": 1, \"vocab_size\": 512, "
                 "\"downsample\": 4, \"n_init\": 64, \"image_size\": 28, \"decoder\": true, "
                 "\"recon_loss\": \"mse\", \"input_map\": \"dalle\"}",
      "downsample=8\0group_count=2\0recon_loss=logit_laplace");
  /* near misses */
  ADD(MODEL, "{\"architectures\": [\"BeitForImageClassification\"], \"id2label\": {}}", "");
  ADD(MODEL, "{\"id2label\": {\"0\": \"a\", \"0\": \"b\"}, \"num_labels\": 2}", "");
  ADD(MODEL, "{\"id2label\": {\"1\": \"a\", \"\": \"b\"}, \"label2id\": {\"a\": 1}}", "");
  ADD(MODEL, "{\"architectures\": [], \"pruned_heads\": {\"1\": [0]}}", "");
  ADD(MODEL, "{\"image_size\": 224, \"patch_size\": 15, \"hidden_size\": 768, "
             "\"num_attention_heads\": 5, \"torch_dtype\": null, \"problem_type\": null}", "");
  ADD(MODEL, "{\"hidden_dropout_prob\": 0.1, \"layer_norm_eps\": 0}", "num_labels=0");
  ADD(RECIPE, "{\"optimizer\": {\"lr\": 1e999}, \"data\": {\"norm\": \"nope\"}}", "");
  ADD(RECIPE, "{\"optimizer\": 1, \"schedule\": {\"epochs\": -1}, \"optimizer.lr\": 1}", "");
  ADD(RECIPE, "{\"model\": \"\", \"data\": {\"train\": \"/\", \"eval\": \".\"}}",
      "data.train=\0=1\0seed\0seed=1=2\0precision=bf16");
  ADD(TOKENIZER, "{\"downsample\": 3, \"group_count\": 1}", "model_type=\"dall-e\"");
  return 0;
}

static const char *const tokens[] = {
    "\"", "{", "}", "[", "]", ",", ":", "\\", "\\u0000", "null", "true", "false", "-", "0",
    "-0", "1e999", "1e-400", "0.5", "9007199254740993", "2147483648", "1e12", "1e308", "=",
    ".", "\"model\"", "\"data\"", "\"optimizer\"", "\"schedule\"", "\"masking\"", "\"id2label\"",
    "\"label2id\"", "\"architectures\"", "\"pruned_heads\"", "\"num_labels\"", "\"relaxation\"",
    "\"BeitForImageClassification\"", "\"BeitForMaskedImageModeling\"", "\"image_size\"",
    "\"patch_size\"", "\"hidden_size\"", "\"num_attention_heads\"", "\"downsample\"",
    "\"group_count\"", "\"n_hid\"", "\"precision\"", "\"train\"", "\"eval\"", NULL};

const struct fuzz_target fuzz_target = {"config", ".bin", 8192, tokens, make_seeds};
