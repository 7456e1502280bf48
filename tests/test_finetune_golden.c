/* Golden test of fine-tuning against the PyTorch reference (tools/golden_finetune.py): the C
 * transfer of each source checkpoint (MIM with a shared table and absolute positions at another
 * resolution; timm names) must give the reference's tensors, the per-tensor lr scales of layer
 * decay must be the reference's, and three AdamW steps through the real trainer (loss
 * normalisation, clipping, weight-decay groups) with label smoothing, sigmoid BCE or Mixup soft
 * targets must follow the same losses, first-step gradients and final weights.
 * Usage: test_finetune_golden FIXTURE_DIR CASE... */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_table.h"
#include "encoder.h"
#include "finetune.h"
#include "mixup.h"
#include "safetensors.h"
#include "testing.h"
#include "trainer.h"
#include "transfer.h"

#define TOL_TRANSFER 1e-5 /* the spline in float64 on both sides, stored as float32 */
#define TOL 1e-4

static double worst_transfer, worst_grad, worst_loss, worst_final;

static double num(const cJSON *o, const char *key)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  CHECK_MSG(cJSON_IsNumber(v) || cJSON_IsBool(v), "train.json: no '%s'", key);
  return cJSON_IsBool(v) ? (double)cJSON_IsTrue(v) : cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void run_case(struct beit_dist *dist, const char *root, const char *name)
{
  char dir[4096], path[4200], label[300];
  struct beit_error err = {0};
  struct beit_source *src = NULL;
  struct beit_model *m = NULL;
  struct beit_safetensors *exp = NULL, *head = NULL, *in = NULL;
  struct beit_config cfg;
  struct beit_trainer tr;
  cJSON *train = NULL;
  float *pixels = NULL, *drop = NULL, *multi = NULL, *mixed = NULL, *soft = NULL;
  int32_t *labels = NULL;
  memset(&tr, 0, sizeof tr);
  beit_config_defaults(&cfg);
  snprintf(dir, sizeof dir, "%s/%s", root, name);
  if (!(train = test_read_json(dir, "train.json", NULL)))
    return;
  size_t B = 3, C = (size_t)num(train, "num_labels");
  int ml = (int)num(train, "multilabel");
  struct beit_recipe r;
  beit_finetune_recipe_defaults(&r);
  r.image_size = (long)num(train, "image_size");
  r.optimizer.lr = num(train, "lr");
  r.optimizer.min_lr = num(train, "min_lr");
  r.optimizer.weight_decay = num(train, "weight_decay");
  r.optimizer.layer_decay = num(train, "layer_decay");
  r.optimizer.clip_grad = num(train, "clip_grad");
  r.label_smoothing = num(train, "label_smoothing");
  r.schedule.max_steps = (long)num(train, "steps");
  r.schedule.warmup_steps = 0;
  r.schedule.warmup_epochs = 0;
  r.batch.size = (long)B;
  double lam = num(train, "mixup_lam");

  /* transfer */
  snprintf(path, sizeof path, "%s/src", dir);
  if (beit_source_open(&src, path, &err) ||
      beit_finetune_config(&cfg, &src->cfg, &r, (long)C, NULL, ml, &err) ||
      beit_model_create(&m, &cfg, B, &err)) {
    CHECK_MSG(0, "%s: %s", name, err.message);
    goto done;
  }
  beit_model_init_weights(m, BEIT_INIT_FINETUNE, 1);
  struct beit_transfer_options to = {1, NULL};
  struct beit_transfer_report rep;
  if (beit_transfer_load(m, src, &to, &rep, &err)) {
    CHECK_MSG(0, "%s: transfer: %s", name, err.message);
    goto done;
  }
  if (!(exp = test_open_fixture(dir, "expected.safetensors")))
    goto done;
  size_t compared = 0;
  for (size_t i = 0; i < m->table.count; i++) {
    const struct beit_tensor *t = &m->table.items[i];
    size_t n;
    snprintf(path, sizeof path, "transferred.%s", t->name);
    float *want = test_read_f32(exp, path, 0, &n);
    if (!want) {
      CHECK_MSG(!strncmp(t->name, "classifier.", 11) || !strncmp(t->name, "beit.pooler.", 12),
                "%s: no reference for %s", name, t->name);
      continue;
    }
    snprintf(label, sizeof label, "%s %s", name, path);
    CHECK(n == t->numel);
    worst_transfer = fmax(worst_transfer, check_close(label, m->params + t->offset, want,
                                                      t->numel, TOL_TRANSFER));
    compared++;
    free(want);
  }
  CHECK(compared + 2 + 2 * !src->cfg.use_mean_pooling + 2 * (beit_config_arch(&src->cfg) ==
                                                               BEIT_ARCH_MIM) == m->table.count);
  /* the new head of the reference; the pooler LayerNorm must be the identity already */
  snprintf(path, sizeof path, "%s/head.safetensors", dir);
  if (beit_safetensors_open(&head, path, &err) ||
      beit_safetensors_read_f32(head, "classifier.weight",
                                m->params + m->table.items[m->ids.head_w].offset, 2,
                                m->table.items[m->ids.head_w].shape, &err) ||
      beit_safetensors_read_f32(head, "classifier.bias",
                                m->params + m->table.items[m->ids.head_b].offset, 1,
                                m->table.items[m->ids.head_b].shape, &err)) {
    CHECK_MSG(0, "%s", err.message);
    goto done;
  }
  if (beit_config_arch(&src->cfg) == BEIT_ARCH_MIM) /* no fc_norm in the source: identity */
    for (size_t d = 0; d < m->D; d++)
      CHECK(m->params[m->table.items[m->ids.pool_ln_w].offset + d] == 1.0f &&
            m->params[m->table.items[m->ids.pool_ln_b].offset + d] == 0.0f);

  /* layer decay */
  beit_model_layer_decay(m, r.optimizer.layer_decay);
  const cJSON *scales = cJSON_GetObjectItemCaseSensitive(train, "lr_scale");
  CHECK((size_t)cJSON_GetArraySize(scales) == m->table.count);
  for (const cJSON *s = scales ? scales->child : NULL; s; s = s->next) {
    long i = beit_tensor_table_find(&m->table, s->string);
    CHECK_MSG(i >= 0 && fabs(m->table.items[i].lr_scale - s->valuedouble) < 1e-7,
              "%s: lr scale of %s", name, s->string);
  }

  /* inputs */
  if (!(in = test_open_fixture(dir, "inputs.safetensors")))
    goto done;
  pixels = test_read_f32(in, "pixel_values", 0, NULL);
  drop = test_read_f32(in, "drop_scales", 0, NULL);
  if (ml) {
    multi = test_read_f32(in, "labels", 0, NULL);
  } else {
    const struct beit_st_tensor *t = beit_safetensors_find(in, "labels");
    int64_t l64[16];
    labels = malloc(B * sizeof *labels);
    if (t && t->numel == B && !beit_safetensors_read_i64(in, "labels", l64, 1, t->shape, &err))
      for (size_t b = 0; b < B; b++)
        labels[b] = (int32_t)l64[b];
  }
  if (!pixels || !drop || (!multi && !labels)) {
    CHECK_MSG(0, "%s: inputs incomplete", name);
    goto done;
  }
  const float *x = pixels;
  if (lam > 0) { /* Mixup of the batch with itself reversed, smoothing folded in */
    size_t S = (size_t)cfg.image_size;
    struct beit_mixup mx = {0.8, 0.0, 1.0, 0.5, r.label_smoothing};
    struct beit_mixup_draw d = {1, 0, lam, 0, 0, 0, 0};
    mixed = malloc(B * 3 * S * S * sizeof *mixed);
    soft = malloc(B * C * sizeof *soft);
    beit_mixup_apply(&mx, &d, mixed, pixels, B, 3, S, S, soft, labels, NULL, C);
    x = mixed;
  }

  /* training steps through the trainer */
  snprintf(path, sizeof path, "/tmp/beit-finetune-golden-%s-%ld", name, (long)getpid());
  if (beit_trainer_init(&tr, &r, dist, &m->table, m->params, m->grads, 1, path, &err)) {
    CHECK_MSG(0, "%s", err.message);
    goto done;
  }
  float *want_loss = test_read_f32(exp, "train.loss", 0, NULL);
  for (long step = 0; step < r.schedule.max_steps; step++) {
    if (beit_model_forward(m, x, NULL, drop, B, &err)) {
      CHECK_MSG(0, "%s", err.message);
      break;
    }
    double loss = soft ? beit_model_loss(m, NULL, soft, 0.0f, NULL)
                       : beit_model_loss(m, labels, multi, (float)r.label_smoothing, NULL);
    if (want_loss) {
      double rel = fabs(loss - want_loss[step]) / fabs(want_loss[step]);
      worst_loss = fmax(worst_loss, rel);
      CHECK_MSG(rel < TOL, "%s step %ld: loss %.8f, reference %.8f", name, step, loss,
                want_loss[step]);
    }
    beit_model_zero_grad(m);
    beit_model_backward(m, (float)B); /* the sum over the batch (trainer.h) */
    if (step == 0) /* the reference's gradients are of the batch mean */
      worst_grad = fmax(worst_grad, test_check_tensors(exp, "grad.", &m->table, m->grads,
                                                       (float)B, TOL, name));
    double norm;
    int applied;
    if (beit_trainer_update(&tr, loss, (double)B, &norm, &applied, &err) || !applied) {
      CHECK_MSG(0, "%s: update: %s", name, err.message);
      break;
    }
  }
  free(want_loss);
  worst_final = fmax(worst_final, test_check_tensors(exp, "train.final.", &m->table, m->params,
                                                     1.0f, TOL, name));
  printf("%s: %zu tensors transferred (%zu layers from a shared table, %zu resized, %zu dropped)\n",
         name, compared, rep.shared_to_layers, rep.rpb_resized, rep.dropped);
done:
  beit_trainer_free(&tr);
  beit_safetensors_close(exp);
  beit_safetensors_close(head);
  beit_safetensors_close(in);
  beit_source_free(src);
  beit_model_free(m);
  beit_config_free(&cfg);
  cJSON_Delete(train);
  free(pixels);
  free(drop);
  free(multi);
  free(labels);
  free(mixed);
  free(soft);
}

int main(int argc, char **argv)
{
  struct beit_error err = {0};
  struct beit_dist *dist = NULL;
  if (test_usage(argc, argv, 2, "FIXTURE_DIR CASE..."))
    return 2;
  if (beit_dist_init(&dist, NULL, NULL, &err)) {
    fprintf(stderr, "%s\n", err.message);
    return 1;
  }
  for (int i = 2; i < argc; i++)
    run_case(dist, argv[1], argv[i]);
  printf("worst relative errors: transfer %.2e, first-step gradients %.2e, losses %.2e, "
         "weights after 3 steps %.2e\n", worst_transfer, worst_grad, worst_loss, worst_final);
  beit_dist_finalize(dist);
  return test_summary("test_finetune_golden");
}
