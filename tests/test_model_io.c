/* Model configs and folders: unknown keys and bad values are errors naming key and file, HF
 * bookkeeping keys are accepted with one warning line listing them (the config.json of several
 * transformers versions in tests/fixtures/hf_config load to one architecture; our own folders
 * load without a warning), a saved folder loads back bit for bit, a folder with a missing
 * or foreign tensor is refused naming it, stored relative_position_index buffers are ignored.
 * The inference-only arena gives the training arena's forward bit for bit, and is smaller.
 * Arguments: OUT FIXTURES. OUT gets OUT/c_saved (a C-initialised classifier folder) for
 * tests/test_run_e2e.py to load in the PyTorch reference; FIXTURES is tests/fixtures. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "config_table.h"
#include "encoder.h"
#include "safetensors.h"
#include "testing.h"

static char tmp[256];

static void write_text(const char *path, const char *text)
{
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
}

/* stderr (fd 2) goes to tmp/stderr.txt between capture_begin and capture_end, which returns
 * what was written (static buffer, overwritten by the next capture). */
static FILE *capture_file;
static int capture_saved_fd = -1;

static void capture_begin(void)
{
  char path[512];
  snprintf(path, sizeof path, "%s/stderr.txt", tmp);
  fflush(stderr);
  capture_file = fopen(path, "w+");
  capture_saved_fd = dup(2);
  if (capture_file && capture_saved_fd >= 0)
    dup2(fileno(capture_file), 2);
}

static const char *capture_end(void)
{
  static char text[16384];
  text[0] = '\0';
  fflush(stderr);
  if (capture_saved_fd >= 0) {
    dup2(capture_saved_fd, 2);
    close(capture_saved_fd);
    capture_saved_fd = -1;
  }
  if (capture_file) {
    test_read_log(capture_file, text, sizeof text);
    capture_file = NULL;
  }
  return text;
}

static size_t count_lines(const char *text)
{
  size_t n = 0;
  for (const char *c = text; *c; c++)
    n += *c == '\n';
  return n;
}

static const char *small_config =
    "{\"architectures\": [\"BeitForImageClassification\"], \"model_type\": \"beit\",\n"
    " \"image_size\": 12, \"patch_size\": 4, \"num_channels\": 3, \"hidden_size\": 16,\n"
    " \"num_hidden_layers\": 2, \"num_attention_heads\": 2, \"intermediate_size\": 24,\n"
    " \"layer_norm_eps\": 1e-6, \"use_relative_position_bias\": true, \"use_mean_pooling\": true,\n"
    " \"id2label\": {\"0\": \"can\", \"1\": \"carton\", \"2\": \"milk_bottle\"},\n"
    " \"label2id\": {\"can\": 0, \"carton\": 1, \"milk_bottle\": 2},\n"
    " \"transformers_version\": \"4.40.0\", \"torch_dtype\": \"float32\", \"out_indices\": [3],\n"
    " \"semantic_loss_ignore_index\": 255, \"problem_type\": null %s}\n";

/* Write TMP/config.json: small_config with `extra` spliced in; its path into path (n bytes). */
static void write_small_config(char *path, size_t n, const char *extra)
{
  char text[4096];
  snprintf(path, n, "%s/config.json", tmp);
  snprintf(text, sizeof text, small_config, extra);
  write_text(path, text);
}

/* Load a config whose text is small_config with `extra` spliced in; expect status, and when
 * failing, the message to contain needle. */
static void expect_config(const char *extra, enum beit_status want, const char *needle)
{
  char path[512];
  write_small_config(path, sizeof path, extra);
  struct beit_config cfg;
  struct beit_error err = {0};
  beit_config_defaults(&cfg);
  capture_begin();
  enum beit_status st = beit_config_load(&cfg, path, &err);
  const char *log = capture_end();
  CHECK_MSG(st == want, "config with '%s': status %s, expected %s (%s)", extra,
            beit_status_name(st), beit_status_name(want), err.message);
  if (want && needle)
    CHECK_MSG(strstr(err.message, needle) && strstr(err.message, path),
              "message '%s' should name '%s' and the file", err.message, needle);
  if (!want) /* torch_dtype, out_indices, semantic_loss_ignore_index; not transformers_version */
    CHECK_MSG(count_lines(log) == 1 && strstr(log, "torch_dtype, out_indices, "
                                              "semantic_loss_ignore_index\n") &&
              !strstr(log, "transformers_version"), "warning: '%s'", log);
  else
    CHECK_MSG(!*log, "a refused config prints only its error, not '%s'", log);
  beit_config_free(&cfg);
}

/* --set num_labels=N makes N labels (a larger N read past the old label array and freed what
 * lay beyond it; found by tests/fuzz_config.c), label2id of repeated names, and an empty
 * id2label is refused (it loaded as 0 labels, which num_labels itself refuses, so the saved
 * config did not load again). */
static void test_label_count(void)
{
  char path[512];
  write_small_config(path, sizeof path, "");
  struct beit_config cfg;
  struct beit_error err = {0};
  beit_config_defaults(&cfg);
  capture_begin();
  CHECK(beit_config_load(&cfg, path, &err) == BEIT_STATUS_OK && cfg.num_labels == 3);
  capture_end();
  CHECK(beit_config_override(&cfg, "num_labels=40", &err) == BEIT_STATUS_OK);
  CHECK(cfg.num_labels == 40 && cfg.labels && !strcmp(cfg.labels[39], "LABEL_39"));
  CHECK(beit_config_override(&cfg, "num_labels=2", &err) == BEIT_STATUS_OK &&
        cfg.num_labels == 2 && !strcmp(cfg.labels[1], "LABEL_1"));
  /* label2id keeps the first id of a repeated name (ImageNet's two "crane"s) */
  const char *names[] = {"crane", "kite", "crane", "kite", "ox"};
  CHECK(beit_config_set_labels(&cfg, 5, names, &err) == BEIT_STATUS_OK);
  cJSON *json = beit_config_json(&cfg);
  const cJSON *l2i = cJSON_GetObjectItemCaseSensitive(json, "label2id");
  CHECK(cJSON_GetArraySize(l2i) == 3 &&
        cJSON_GetObjectItemCaseSensitive(l2i, "crane")->valuedouble == 0 &&
        cJSON_GetObjectItemCaseSensitive(l2i, "kite")->valuedouble == 1 &&
        cJSON_GetObjectItemCaseSensitive(l2i, "ox")->valuedouble == 4 &&
        cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(json, "id2label")) == 5);
  cJSON_Delete(json);
  beit_config_free(&cfg);
  write_text(path, "{\"architectures\": [\"BeitForImageClassification\"], \"id2label\": {}}");
  beit_config_defaults(&cfg);
  CHECK(beit_config_load(&cfg, path, &err) == BEIT_STATUS_CONFIG &&
        strstr(err.message, "'id2label': 0 entries"));
  beit_config_free(&cfg);
}

static struct beit_model *make_model(void)
{
  char path[512];
  write_small_config(path, sizeof path, "");
  struct beit_config cfg;
  struct beit_error err = {0};
  struct beit_model *m = NULL;
  beit_config_defaults(&cfg);
  if (beit_config_load(&cfg, path, &err) || beit_model_create(&m, &cfg, 2, &err))
    CHECK_MSG(0, "%s", err.message);
  beit_config_free(&cfg);
  if (m)
    beit_model_init_weights(m, BEIT_INIT_FINETUNE, 7);
  return m;
}

static void test_round_trip(const char *out)
{
  struct beit_error err = {0};
  struct beit_model *m = make_model(), *back = NULL;
  char dir[512];
  snprintf(dir, sizeof dir, "%s/saved", tmp);
  CHECK(m && beit_model_save(m, dir, &err) == BEIT_STATUS_OK);
  capture_begin();
  CHECK_MSG(beit_model_load(&back, dir, 2, &err) == BEIT_STATUS_OK, "%s", err.message);
  const char *log = capture_end();
  CHECK_MSG(!*log, "loading our own folder prints nothing, not '%s'", log);
  if (!m || !back)
    return;
  CHECK(back->table.total == m->table.total);
  CHECK(memcmp(back->params, m->params, m->table.total * sizeof(float)) == 0);
  CHECK(back->cfg.num_labels == 3 && !strcmp(back->cfg.labels[2], "milk_bottle"));
  float pixels[2 * 3 * 12 * 12];
  for (size_t i = 0; i < sizeof pixels / sizeof *pixels; i++)
    pixels[i] = (float)((i * 37) % 19) / 9.0f - 1.0f;
  CHECK(beit_model_forward(m, pixels, NULL, NULL, 2, &err) == BEIT_STATUS_OK);
  CHECK(beit_model_forward(back, pixels, NULL, NULL, 2, &err) == BEIT_STATUS_OK);
  CHECK(memcmp(m->a.logits, back->a.logits, 2 * 3 * sizeof(float)) == 0);
  if (out) { /* for the PyTorch side of tests/test_run_e2e.py */
    snprintf(dir, sizeof dir, "%s/c_saved", out);
    CHECK_MSG(beit_model_save(m, dir, &err) == BEIT_STATUS_OK, "%s", err.message);
  }
  beit_model_free(back);
  beit_model_free(m);
}

/* Load dir/name with stderr captured: status, error message and the captured text. */
static enum beit_status load_fixture(struct beit_config *cfg, const char *dir, const char *name,
                                     char *path, size_t path_size, struct beit_error *err,
                                     const char **log)
{
  snprintf(path, path_size, "%s/hf_config/%s", dir, name);
  beit_config_defaults(cfg);
  capture_begin();
  enum beit_status st = beit_config_load(cfg, path, err);
  *log = capture_end();
  return st;
}

/* The warning a fixture must print: its top-level keys in file order, less those our writer
 * emits (mine), problem_type (a model key our writer leaves out when unset) and
 * transformers_version (silent bookkeeping). */
static void expected_warning(const char *path, const cJSON *mine, char *out, size_t size)
{
  cJSON *root = NULL;
  struct beit_error err = {0};
  int n = snprintf(out, size, "beit: warning: %s: ignored keys that do not change the encoder: ",
                   path);
  const int head = n;
  if (beit_json_read_file(&root, path, &err)) {
    CHECK_MSG(0, "%s", err.message);
    return;
  }
  for (const cJSON *e = root->child; e && (size_t)n < size; e = e->next)
    if (!cJSON_GetObjectItemCaseSensitive(mine, e->string) &&
        strcmp(e->string, "problem_type") && strcmp(e->string, "transformers_version"))
      n += snprintf(out + n, size - (size_t)n, "%s%s", n > head ? ", " : "", e->string);
  if ((size_t)n < size)
    snprintf(out + n, size - (size_t)n, "\n");
  cJSON_Delete(root);
}

/* config.json as several transformers versions write it: the same architecture as plain.json,
 * one warning line listing exactly the foreign keys; keys that could change the network are
 * refused naming the file and the key, without a warning. */
static void test_hf_versions(const char *fixtures)
{
  static const struct {
    const char *file, *must_list; /* one key the warning has to name */
  } accepted[] = {
      {"transformers_4_15.json", "max_length"},
      {"transformers_4_36.json", "stage_names"},
      {"transformers_4_49.json", "_attn_implementation_autoset"},
      {"transformers_4_57.json", "dtype"},
  };
  static const struct {
    const char *file, *key;
    enum beit_status status;
  } refused[] = {
      {"refused_typo.json", "hidden_sizee", BEIT_STATUS_CONFIG},
      {"refused_quantization.json", "quantization_config", BEIT_STATUS_CONFIG},
      {"refused_pruned_heads.json", "pruned_heads", BEIT_STATUS_UNSUPPORTED},
  };
  struct beit_config cfg;
  struct beit_error err = {0};
  char path[4096], want[4096];
  const char *log;
  if (!fixtures) {
    CHECK_MSG(0, "usage: test_model_io OUT FIXTURES (tests/fixtures)");
    return;
  }
  enum beit_status st = load_fixture(&cfg, fixtures, "plain.json", path, sizeof path, &err, &log);
  CHECK_MSG(st == BEIT_STATUS_OK, "%s", err.message);
  CHECK_MSG(!*log, "plain.json: no warning, not '%s'", log);
  cJSON *plain = st ? NULL : beit_config_json(&cfg);
  beit_config_free(&cfg);
  if (!plain)
    return;
  for (size_t i = 0; i < sizeof accepted / sizeof *accepted; i++) {
    st = load_fixture(&cfg, fixtures, accepted[i].file, path, sizeof path, &err, &log);
    CHECK_MSG(st == BEIT_STATUS_OK, "%s: %s", accepted[i].file, err.message);
    cJSON *got = st ? NULL : beit_config_json(&cfg);
    CHECK_MSG(got && cJSON_Compare(got, plain, 1), "%s: not the architecture of plain.json",
              accepted[i].file);
    expected_warning(path, plain, want, sizeof want);
    CHECK_MSG(!strcmp(log, want), "%s: warning\n  got  '%s'\n  want '%s'", accepted[i].file,
              log, want);
    char needle[128];
    snprintf(needle, sizeof needle, " %s,", accepted[i].must_list);
    CHECK_MSG(count_lines(log) == 1 && strstr(log, needle), "%s: one line naming %s: '%s'",
              accepted[i].file, accepted[i].must_list, log);
    cJSON_Delete(got);
    beit_config_free(&cfg);
  }
  for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
    st = load_fixture(&cfg, fixtures, refused[i].file, path, sizeof path, &err, &log);
    CHECK_MSG(st == refused[i].status && strstr(err.message, path) &&
              strstr(err.message, refused[i].key), "%s: status %s, message '%s'",
              refused[i].file, beit_status_name(st), err.message);
    CHECK_MSG(!*log, "%s: refused without a warning, not '%s'", refused[i].file, log);
    beit_config_free(&cfg);
  }
  /* our own writer's config loads back silently */
  snprintf(path, sizeof path, "%s/own_config.json", tmp);
  CHECK(beit_json_write_file(path, plain, &err) == BEIT_STATUS_OK);
  beit_config_defaults(&cfg);
  capture_begin();
  st = beit_config_load(&cfg, path, &err);
  log = capture_end();
  CHECK_MSG(st == BEIT_STATUS_OK && !*log, "own config: %s, '%s'", err.message, log);
  beit_config_free(&cfg);
  cJSON_Delete(plain);
}

/* beit_config_foreign_keys: file order, nested keys by their dotted name, null values counted,
 * a list that does not fit ends in ", ..." and the count stays whole; --set refuses them. */
static void test_foreign_list(void)
{
  struct row {
    long a;
  } r = {0};
  static const struct beit_config_key keys[] = {
      {"a", BEIT_KEY_INT, offsetof(struct row, a), 0, 10, NULL, "stored"},
      {"b", BEIT_KEY_FOREIGN, 0, 0, 0, NULL, NULL},
      {"c", BEIT_KEY_FOREIGN, 0, 0, 0, NULL, NULL},
      {"s", BEIT_KEY_IGNORE, 0, 0, 0, NULL, NULL},
      {"x.y", BEIT_KEY_FOREIGN, 0, 0, 0, NULL, NULL},
  };
  const size_t n = sizeof keys / sizeof *keys;
  cJSON *root = cJSON_Parse("{\"c\": null, \"a\": 1, \"s\": 2, \"x\": {\"y\": [1]}, \"b\": 3}");
  struct beit_error err = {0};
  char list[64];
  CHECK(root && beit_config_from_json(&r, keys, n, root, "t", &err) == BEIT_STATUS_OK && r.a == 1);
  CHECK(beit_config_foreign_keys(keys, n, root, list, sizeof list) == 3);
  CHECK_MSG(!strcmp(list, "c, x.y, b"), "list '%s'", list);
  CHECK(beit_config_foreign_keys(keys, n, root, list, 10) == 3);
  CHECK_MSG(!strcmp(list, "c, ..."), "truncated list '%s'", list);
  CHECK(beit_config_set(&r, keys, n, "b=1", &err) == BEIT_STATUS_CONFIG);
  cJSON *back = beit_config_to_json(&r, keys, n);
  CHECK(back && cJSON_GetArraySize(back) == 1 && cJSON_GetObjectItem(back, "a"));
  cJSON_Delete(back);
  cJSON_Delete(root);
}

/* Rewrite model.safetensors of the saved folder with one tensor renamed or dropped. */
static void test_bad_folders(void)
{
  struct beit_error err = {0};
  struct beit_model *m = make_model(), *back = NULL;
  char dir[512], path[600];
  snprintf(dir, sizeof dir, "%s/bad", tmp);
  CHECK(m && beit_model_save(m, dir, &err) == BEIT_STATUS_OK);
  if (!m)
    return;
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  struct beit_st_entry *e = calloc(m->table.count + 1, sizeof *e);
  size_t n = 0;
  const char *victim = "beit.encoder.layer.1.attention.attention.key.weight";
  for (size_t i = 0; i < m->table.count; i++) {
    const struct beit_tensor *t = &m->table.items[i];
    if (!strcmp(t->name, victim))
      continue;
    e[n++] = (struct beit_st_entry){t->name, BEIT_DTYPE_F32, t->ndim,
                                    {t->shape[0], t->shape[1], t->shape[2], t->shape[3]},
                                    m->params + t->offset};
  }
  CHECK(beit_safetensors_write(path, e, n, NULL, &err) == BEIT_STATUS_OK);
  CHECK(beit_model_load(&back, dir, 1, &err) == BEIT_STATUS_MISSING);
  CHECK_MSG(strstr(err.message, victim) && strstr(err.message, "model.safetensors"),
            "missing tensor message: %s", err.message);
  /* a stored relative_position_index (int64, as in 2021 HF files) is ignored */
  static int64_t index[10 * 10];
  e[n++] = (struct beit_st_entry){
      "beit.encoder.layer.0.attention.attention.relative_position_bias.relative_position_index",
      BEIT_DTYPE_I64, 2, {10, 10}, index};
  const struct beit_tensor *k = &m->table.items[beit_tensor_table_find(&m->table, victim)];
  e[n++] = (struct beit_st_entry){victim, BEIT_DTYPE_F32, 2, {k->shape[0], k->shape[1]},
                                  m->params + k->offset};
  CHECK(beit_safetensors_write(path, e, n, NULL, &err) == BEIT_STATUS_OK);
  CHECK_MSG(beit_model_load(&back, dir, 1, &err) == BEIT_STATUS_OK, "%s", err.message);
  beit_model_free(back);
  back = NULL;
  /* a tensor this architecture does not have is refused by name */
  e[n - 2].name = "lm_head.weight";
  CHECK(beit_safetensors_write(path, e, n, NULL, &err) == BEIT_STATUS_OK);
  CHECK(beit_model_load(&back, dir, 1, &err) == BEIT_STATUS_FORMAT);
  CHECK_MSG(strstr(err.message, "lm_head.weight"), "foreign tensor message: %s", err.message);
  free(e);
  beit_model_free(m);
}

/* beit_model_set_inference: the same logits and residual streams, an arena about L times
 * smaller in its per-block part, no gradients. */
static void test_inference_plan(void)
{
  struct beit_model *m = make_model();
  if (!m)
    return;
  struct beit_error err = {0};
  const size_t B = 2, img = 3 * 12 * 12, L = m->L, C = m->out_dim, T = m->T, D = m->D;
  float *x = talloc(B * img * sizeof *x), *logits = talloc(B * C * sizeof *logits);
  float *streams = talloc((L + 1) * B * T * D * sizeof *streams);
  for (size_t i = 0; i < B * img; i++)
    x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
  CHECK(beit_model_forward(m, x, NULL, NULL, B, &err) == BEIT_STATUS_OK);
  memcpy(logits, m->a.logits, B * C * sizeof *logits);
  for (size_t l = 0; l <= L; l++)
    memcpy(streams + l * B * T * D, m->a.stream[l], B * T * D * sizeof *streams);
  const size_t training_floats = m->arena_floats;
  CHECK(beit_model_set_inference(m, &err) == BEIT_STATUS_OK);
  CHECK(m->grads == NULL && m->arena_floats < training_floats);
  CHECK(beit_model_forward(m, x, NULL, NULL, B, &err) == BEIT_STATUS_OK);
  CHECK(!memcmp(logits, m->a.logits, B * C * sizeof *logits));
  int same = 1;
  for (size_t l = 0; l <= L; l++)
    same &= !memcmp(streams + l * B * T * D, m->a.stream[l], B * T * D * sizeof *streams);
  CHECK_MSG(same, "residual streams differ under the inference plan");
  beit_model_backward(m, 1.0f); /* a no-op, not a crash */
  beit_model_free(m);
  tfree_all();
}

int main(int argc, char **argv)
{
  snprintf(tmp, sizeof tmp, "/tmp/beit-model-io-XXXXXX");
  if (!mkdtemp(tmp))
    return 1;
  expect_config("", BEIT_STATUS_OK, NULL);
  expect_config(", \"hiden_size\": 8", BEIT_STATUS_CONFIG, "hiden_size");
  expect_config(", \"num_attention_heads\": 3", BEIT_STATUS_CONFIG, "hidden_size");
  expect_config(", \"patch_size\": 5", BEIT_STATUS_CONFIG, "image_size");
  expect_config(", \"use_mean_pooling\": 1", BEIT_STATUS_CONFIG, "use_mean_pooling");
  expect_config(", \"hidden_act\": \"relu\"", BEIT_STATUS_CONFIG, "hidden_act");
  expect_config(", \"layer_norm_eps\": -1", BEIT_STATUS_CONFIG, "layer_norm_eps");
  expect_config(", \"num_labels\": 5", BEIT_STATUS_CONFIG, "num_labels");
  expect_config(", \"hidden_dropout_prob\": 0.1", BEIT_STATUS_UNSUPPORTED, "hidden_dropout_prob");
  test_foreign_list();
  test_label_count();
  test_hf_versions(argc > 2 ? argv[2] : NULL);
  test_round_trip(argc > 1 ? argv[1] : NULL);
  test_bad_folders();
  test_inference_plan();
  return test_summary("model_io");
}
