/* Model configs and folders: unknown keys and bad values are errors naming key and file, HF
 * bookkeeping keys are accepted, a saved folder loads back bit for bit, a folder with a missing
 * or foreign tensor is refused naming it, stored relative_position_index buffers are ignored.
 * The inference-only arena gives the training arena's forward bit for bit, and is smaller.
 * With an argument OUT, also writes OUT/c_saved (a C-initialised classifier folder) for
 * tests/test_run_e2e.py to load in the PyTorch reference. */
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

static const char *small_config =
    "{\"architectures\": [\"BeitForImageClassification\"], \"model_type\": \"beit\",\n"
    " \"image_size\": 12, \"patch_size\": 4, \"num_channels\": 3, \"hidden_size\": 16,\n"
    " \"num_hidden_layers\": 2, \"num_attention_heads\": 2, \"intermediate_size\": 24,\n"
    " \"layer_norm_eps\": 1e-6, \"use_relative_position_bias\": true, \"use_mean_pooling\": true,\n"
    " \"id2label\": {\"0\": \"can\", \"1\": \"carton\", \"2\": \"milk_bottle\"},\n"
    " \"label2id\": {\"can\": 0, \"carton\": 1, \"milk_bottle\": 2},\n"
    " \"transformers_version\": \"4.40.0\", \"torch_dtype\": \"float32\", \"out_indices\": [3],\n"
    " \"semantic_loss_ignore_index\": 255, \"problem_type\": null %s}\n";

/* Load a config whose text is small_config with `extra` spliced in; expect status, and when
 * failing, the message to contain needle. */
static void expect_config(const char *extra, enum beit_status want, const char *needle)
{
  char path[512], text[4096];
  snprintf(path, sizeof path, "%s/config.json", tmp);
  snprintf(text, sizeof text, small_config, extra);
  write_text(path, text);
  struct beit_config cfg;
  struct beit_error err = {0};
  beit_config_defaults(&cfg);
  enum beit_status st = beit_config_load(&cfg, path, &err);
  CHECK_MSG(st == want, "config with '%s': status %s, expected %s (%s)", extra,
            beit_status_name(st), beit_status_name(want), err.message);
  if (want && needle)
    CHECK_MSG(strstr(err.message, needle) && strstr(err.message, path),
              "message '%s' should name '%s' and the file", err.message, needle);
  beit_config_free(&cfg);
}

static struct beit_model *make_model(void)
{
  char path[512], text[4096];
  snprintf(path, sizeof path, "%s/config.json", tmp);
  snprintf(text, sizeof text, small_config, "");
  write_text(path, text);
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
  CHECK_MSG(beit_model_load(&back, dir, 2, &err) == BEIT_STATUS_OK, "%s", err.message);
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
  test_round_trip(argc > 1 ? argv[1] : NULL);
  test_bad_folders();
  test_inference_plan();
  return test_summary("model_io");
}
