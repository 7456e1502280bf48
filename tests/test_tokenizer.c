/* Unit tests of the tokenizer: config table (unknown keys, validation messages), DALL-E's
 * parameter names, shapes and counts (spec 9.2/9.3), the grid check pretraining relies on,
 * folder save/load, encode/decode in chunks and across thread splits, and the training step's
 * independence of how a batch is split over threads. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dvae.h"
#include "testing.h"
#include "testing_tokenizer.h"

static void write_text(const char *path, const char *text)
{
  FILE *f = fopen(path, "w");
  if (!f)
    exit(2);
  fputs(text, f);
  fclose(f);
}

static void test_config(const char *tmp)
{
  struct beit_tokenizer_config c;
  struct beit_error err = {0};
  char path[512];
  beit_tokenizer_config_defaults(&c);
  CHECK(beit_tokenizer_config_validate(&c, "defaults", &err) == BEIT_STATUS_OK);

  /* refused files: the text, and what the message must say (NULL: anything) */
  static const struct {
    const char *file, *json, *frag1, *frag2;
  } refused[] = {
      {"unknown.json", "{\"n_hid\": 64, \"n_hidden\": 3}", "n_hidden", "unknown.json"},
      {"ds.json", "{\"downsample\": 6}", "'downsample'", "power of 2"},
      {"ds.json", "{\"image_size\": 100}", "'image_size'", "100"},
      {"ds.json", "{\"downsample\": 32}", NULL, NULL}, /* 5 pools > 4 groups */
      {"ds.json", "{\"recon_loss\": \"l1\"}", "recon_loss", NULL},
  };
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    beit_tokenizer_config_defaults(&c);
    snprintf(path, sizeof path, "%s/%s", tmp, refused[i].file);
    write_text(path, refused[i].json);
    CHECK_MSG(beit_tokenizer_config_load(&c, path, &err) == BEIT_STATUS_CONFIG, "%s: %s",
              refused[i].file, refused[i].json);
    CHECK_MSG((!refused[i].frag1 || strstr(err.message, refused[i].frag1)) &&
                  (!refused[i].frag2 || strstr(err.message, refused[i].frag2)),
              "%s", err.message);
  }

  beit_tokenizer_config_defaults(&c);
  CHECK(beit_tokenizer_config_override(&c, "vocab_size=512", &err) == BEIT_STATUS_OK);
  CHECK(c.vocab_size == 512);
  CHECK(beit_tokenizer_config_override(&c, "vocab=512", &err) == BEIT_STATUS_CONFIG);

  /* save -> load round trip */
  test_tokenizer_small_config(&c, "mse");
  snprintf(path, sizeof path, "%s/saved.json", tmp);
  CHECK(beit_tokenizer_config_save(&c, path, &err) == BEIT_STATUS_OK);
  struct beit_tokenizer_config d;
  beit_tokenizer_config_defaults(&d);
  CHECK(beit_tokenizer_config_load(&d, path, &err) == BEIT_STATUS_OK);
  CHECK(memcmp(&c, &d, sizeof c) == 0);
}

/* DALL-E's names, shapes and parameter counts (spec 9.2: 53,786,240; 9.3: 43,829,766). */
static void test_dalle_table(void)
{
  struct beit_tokenizer_config c;
  struct beit_error err = {0};
  beit_tokenizer_config_defaults(&c);
  struct beit_tokenizer *tok = NULL;
  if (beit_tokenizer_create(&tok, &c, 1, 0, &err)) {
    fprintf(stderr, "%s\n", err.message);
    CHECK(!"create DALL-E");
    return;
  }
  size_t enc = 0, dec = 0;
  for (size_t i = 0; i < tok->table.count; i++) {
    const struct beit_tensor *t = &tok->table.items[i];
    if (!strncmp(t->name, "decoder.", 8))
      dec += t->numel;
    else
      enc += t->numel;
  }
  CHECK_MSG(enc == 53786240, "encoder parameters %zu", enc);
  CHECK_MSG(dec == 43829766, "decoder parameters %zu", dec);
  struct {
    const char *name;
    int ndim;
    size_t shape[4];
  } want[] = {
      {"blocks.input.w", 4, {256, 3, 7, 7}},
      {"blocks.input.b", 1, {256}},
      {"blocks.group_1.block_1.res_path.conv_1.w", 4, {64, 256, 3, 3}},
      {"blocks.group_1.block_2.res_path.conv_4.w", 4, {256, 64, 1, 1}},
      {"blocks.group_2.block_1.id_path.w", 4, {512, 256, 1, 1}},
      {"blocks.group_4.block_2.res_path.conv_3.b", 1, {512}},
      {"blocks.output.conv.w", 4, {8192, 2048, 1, 1}},
      {"decoder.blocks.input.w", 4, {128, 8192, 1, 1}},
      {"decoder.blocks.group_1.block_1.id_path.w", 4, {2048, 128, 1, 1}},
      {"decoder.blocks.group_1.block_1.res_path.conv_1.w", 4, {512, 128, 1, 1}},
      {"decoder.blocks.group_4.block_2.res_path.conv_4.w", 4, {256, 64, 3, 3}},
      {"decoder.blocks.output.conv.w", 4, {6, 256, 1, 1}},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    long id = beit_tensor_table_find(&tok->table, want[i].name);
    CHECK_MSG(id >= 0, "missing tensor %s", want[i].name);
    if (id < 0)
      continue;
    const struct beit_tensor *t = &tok->table.items[id];
    CHECK_MSG(t->ndim == want[i].ndim &&
                  !memcmp(t->shape, want[i].shape, (size_t)t->ndim * sizeof(size_t)),
              "%s has the wrong shape", want[i].name);
    CHECK(t->no_decay == (t->ndim == 1));
  }
  CHECK(beit_tensor_table_find(&tok->table, "blocks.group_1.block_1.id_path.w") < 0);
  size_t gh, gw;
  beit_tokenizer_grid(tok, &gh, &gw);
  CHECK(gh == 14 && gw == 14 && beit_tokenizer_vocab_size(tok) == 8192);
  /* 52 GFLOP per 112x112 image (the benchmark's figure) */
  CHECK(fabs(beit_tokenizer_encoder_flops(tok) / 1e9 - 52.1) < 0.1);
  CHECK(tok->post_gain == 1.0f / 64.0f);
  beit_tokenizer_free(tok);
}

static void test_check_targets(void)
{
  struct beit_tokenizer_config c;
  struct beit_error err = {0};
  test_tokenizer_small_config(&c, NULL);
  c.image_size = 28;
  c.vocab_size = 512;
  struct beit_tokenizer *tok = NULL;
  CHECK(beit_tokenizer_create(&tok, &c, 1, 0, &err) == BEIT_STATUS_OK);
  CHECK(beit_tokenizer_check_targets(tok, 7, 7, 512, &err) == BEIT_STATUS_OK);
  CHECK(beit_tokenizer_check_targets(tok, 14, 14, 512, &err) == BEIT_STATUS_CONFIG);
  CHECK_MSG(strstr(err.message, "7x7") && strstr(err.message, "14x14") &&
                strstr(err.message, "patch grid"),
            "%s", err.message);
  CHECK(beit_tokenizer_check_targets(tok, 7, 7, 256, &err) == BEIT_STATUS_CONFIG);
  CHECK_MSG(strstr(err.message, "512") && strstr(err.message, "256"), "%s", err.message);
  beit_tokenizer_free(tok);
}

static void test_save_load_encode(const char *tmp)
{
  struct beit_tokenizer_config c;
  struct beit_error err = {0};
  test_tokenizer_small_config(&c, NULL);
  struct beit_tokenizer *a = NULL, *b = NULL, *enc_only = NULL;
  CHECK(beit_tokenizer_create(&a, &c, 5, 7, &err) == BEIT_STATUS_OK);
  /* non-zero biases so a load that drops them shows */
  for (size_t i = 0; i < a->table.count; i++)
    if (a->table.items[i].ndim == 1)
      for (size_t j = 0; j < a->table.items[i].numel; j++)
        a->params[a->table.items[i].offset + j] = 0.01f * (float)((i + j) % 7);
  char dir[512];
  snprintf(dir, sizeof dir, "%s/tok", tmp);
  CHECK(beit_tokenizer_save(a, dir, &err) == BEIT_STATUS_OK);
  CHECK(beit_tokenizer_load(&b, dir, 2, &err) == BEIT_STATUS_OK);
  if (!b) {
    fprintf(stderr, "%s\n", err.message);
    beit_tokenizer_free(a);
    return;
  }
  CHECK(b->table.total == a->table.total &&
        !memcmp(a->params, b->params, a->table.total * sizeof(float)));
  CHECK(!memcmp(&a->cfg, &b->cfg, sizeof a->cfg));

  const size_t B = 5, P = a->gh * a->gw, img = 3 * 12 * 12;
  float *x = test_tokenizer_images(B * img, 3);
  int32_t ta[5 * 9], tb[5 * 9], t1[9];
  float *la = malloc(B * a->V * P * sizeof(float)), *lb = malloc(B * a->V * P * sizeof(float));
  float *l1 = malloc(a->V * P * sizeof(float));
  CHECK(beit_tokenizer_encode(a, ta, la, x, B, &err) == BEIT_STATUS_OK); /* one chunk */
  CHECK(beit_tokenizer_encode(b, tb, lb, x, B, &err) == BEIT_STATUS_OK); /* chunks of 2 */
  check_close("encode logits: chunks of 2 vs one batch", lb, la, B * a->V * P, 1e-5);
  CHECK(!memcmp(ta, tb, sizeof ta));
  for (size_t i = 0; i < B; i++) { /* one image at a time: kernels on all threads */
    CHECK(beit_tokenizer_encode(a, t1, l1, x + i * img, 1, &err) == BEIT_STATUS_OK);
    check_close("encode logits: one image vs batch", l1, la + i * a->V * P, a->V * P, 1e-5);
    CHECK(!memcmp(t1, ta + i * P, sizeof t1));
  }
  float *ra = malloc(B * img * sizeof(float)), *rb = malloc(B * img * sizeof(float));
  CHECK(beit_tokenizer_decode(a, ra, ta, B, &err) == BEIT_STATUS_OK);
  CHECK(beit_tokenizer_decode(b, rb, ta, B, &err) == BEIT_STATUS_OK);
  check_close("decode: chunks of 2 vs one batch", rb, ra, B * img, 1e-5);

  /* an encoder-only folder encodes the same and refuses to decode */
  struct beit_tokenizer_config ce = c;
  ce.decoder = 0;
  CHECK(beit_tokenizer_create(&enc_only, &ce, 5, 7, &err) == BEIT_STATUS_OK);
  CHECK(enc_only->table.total <= a->table.total);
  memcpy(enc_only->params, a->params, enc_only->table.total * sizeof(float));
  CHECK(beit_tokenizer_encode(enc_only, tb, NULL, x, B, &err) == BEIT_STATUS_OK);
  CHECK(!memcmp(ta, tb, sizeof ta));
  CHECK(beit_tokenizer_decode(enc_only, rb, ta, B, &err) == BEIT_STATUS_UNSUPPORTED);
  CHECK(strstr(err.message, "no decoder") != NULL);
  struct beit_tokenizer *missing = NULL;
  snprintf(dir, sizeof dir, "%s/nowhere", tmp);
  CHECK(beit_tokenizer_load(&missing, dir, 1, &err) != BEIT_STATUS_OK && !missing);
  CHECK(strstr(err.message, "nowhere") != NULL);
  free(la), free(lb), free(l1), free(ra), free(rb);
  beit_tokenizer_free(a);
  beit_tokenizer_free(b);
  beit_tokenizer_free(enc_only);
}

/* The same batch split over 2 threads or run whole on 1 gives the same loss and gradients. */
static void test_step_split(void)
{
  struct beit_tokenizer_config c;
  struct beit_error err = {0};
  test_tokenizer_small_config(&c, NULL);
  const size_t B = 5, img = 3 * 12 * 12;
  float *x = test_tokenizer_images(B * img, 11);
  float *g[2];
  double loss[2];
  size_t used[2];
  for (int run = 0; run < 2; run++) {
    omp_set_num_threads(run == 0 ? 1 : 2);
    struct beit_tokenizer *tok = NULL;
    CHECK(beit_tokenizer_create(&tok, &c, B, 5, &err) == BEIT_STATUS_OK);
    CHECK(beit_dvae_train_init(tok, B, &err) == BEIT_STATUS_OK);
    CHECK(tok->nthreads == (run == 0 ? 1 : 2));
    const float *noise = beit_dvae_step_noise(tok, B, 3, 9, NULL);
    struct beit_dvae_step_stats st;
    beit_dvae_forward_backward(tok, x, noise, B, 0.7f, 2.0f, &st);
    loss[run] = st.loss;
    used[run] = st.codes_used;
    g[run] = malloc(tok->table.total * sizeof(float));
    memcpy(g[run], tok->grads, tok->table.total * sizeof(float));
    CHECK(isfinite(st.loss) && st.codes_used >= 1 && st.perplexity >= 1.0);
    /* again: bit-identical, whichever thread takes which slice */
    for (int again = 0; again < 3; again++) {
      struct beit_dvae_step_stats st2;
      beit_dvae_forward_backward(tok, x, noise, B, 0.7f, 2.0f, &st2);
      CHECK(st2.loss == st.loss);
      CHECK(!memcmp(g[run], tok->grads, tok->table.total * sizeof(float)));
    }
    if (run == 1)
      check_close("gradients: 2-thread split vs 1 thread", g[1], g[0], tok->table.total, 1e-4);
    beit_tokenizer_free(tok);
  }
  CHECK_MSG(fabs(loss[0] - loss[1]) <= 1e-6 * fabs(loss[0]), "loss %.9g vs %.9g", loss[0],
            loss[1]);
  CHECK(used[0] == used[1]);
  omp_set_num_threads(2);
  free(g[0]), free(g[1]);
}

/* A few steps on one repeated batch lower the loss (the whole update path moves weights). The
 * images are flat grey levels, which a tokenizer can tell apart and reconstruct. */
static void test_steps_learn(void)
{
  struct beit_tokenizer_config c;
  struct beit_error err = {0};
  test_tokenizer_small_config(&c, "mse");
  const size_t B = 4, img = 3 * 12 * 12;
  float *x = malloc(B * img * sizeof *x);
  for (size_t i = 0; i < B * img; i++)
    x[i] = 0.1f + 0.8f * (0.1f + 0.25f * (float)(i / img));
  struct beit_tokenizer *tok = NULL;
  CHECK(beit_tokenizer_create(&tok, &c, B, 1, &err) == BEIT_STATUS_OK);
  CHECK(beit_dvae_train_init(tok, B, &err) == BEIT_STATUS_OK);
  float *m = beit_alloc_floats(tok->table.total), *v = beit_alloc_floats(tok->table.total);
  struct beit_dvae_hparams hp = {3e-3, 0.0, 0.9, 0.999, 1e-8, 1.0, 1.0f, 0.0f, 0};
  struct beit_dvae_step_stats st;
  double first = 0.0;
  for (int i = 0; i < 30; i++) {
    hp.step = i + 1;
    beit_dvae_train_step(tok, x, B, &hp, 1, m, v, &st);
    if (i == 0)
      first = st.loss;
  }
  CHECK_MSG(st.loss < 0.8 * first, "loss %.5f after 30 steps, %.5f at the first", st.loss, first);
  free(x), free(m), free(v);
  beit_tokenizer_free(tok);
}

int main(void)
{
  char tmp[] = "/tmp/test_tokenizer_XXXXXX";
  if (!mkdtemp(tmp))
    return 2;
  test_config(tmp);
  test_dalle_table();
  test_check_targets();
  test_save_load_encode(tmp);
  test_step_split();
  test_steps_learn();
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", tmp);
  tfree_all();
  return test_summary("test_tokenizer");
}
