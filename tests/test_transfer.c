/* encoder/transfer: the geometric relative-position-bias resize (q values of the spec, values of
 * unilm's scipy interp2d path, the not-a-knot property), the shared-to-per-layer copy, heads
 * dropped and kept, position-embedding resizing, and the timm-named export read back.
 * Usage: test_transfer WORK_DIR */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encoder.h"
#include "safetensors.h"
#include "testing.h"
#include "transfer.h"

static const char *work = ".";

static void small_config(struct beit_config *c, const char *arch, long image_size)
{
  beit_config_defaults(c);
  c->image_size = image_size;
  c->patch_size = 4;
  c->hidden_size = 16;
  c->num_hidden_layers = 3;
  c->num_attention_heads = 2;
  c->intermediate_size = 24;
  c->layer_norm_eps = 1e-6;
  c->vocab_size = 11;
  snprintf(c->architecture, sizeof c->architecture, "%s", arch);
  if (!strcmp(arch, "BeitForMaskedImageModeling")) {
    c->use_mask_token = 1;
    c->use_shared_relative_position_bias = 1;
  } else {
    c->use_relative_position_bias = 1;
  }
  beit_config_set_labels(c, 5, NULL, NULL);
}

static struct beit_model *make(const struct beit_config *c, uint64_t seed)
{
  struct beit_model *m = NULL;
  struct beit_error err = {0};
  if (beit_model_create(&m, c, 2, &err)) {
    CHECK_MSG(0, "create: %s", err.message);
    return NULL;
  }
  beit_model_init_weights(m, BEIT_INIT_FINETUNE, seed);
  /* every tensor non-trivial, so a wrong copy shows */
  for (size_t i = 0; i < m->table.count; i++) {
    const struct beit_tensor *t = &m->table.items[i];
    for (size_t k = 0; k < t->numel; k++)
      m->params[t->offset + k] += (float)(0.01 * sin(0.7 * (double)(k + 13 * i)));
  }
  return m;
}

static const float *param(const struct beit_model *m, const char *name)
{
  long i = beit_tensor_table_find(&m->table, name);
  CHECK_MSG(i >= 0, "no tensor %s", name);
  return i >= 0 ? m->params + m->table.items[i].offset : NULL;
}

static void test_q_values(void)
{
  /* spec 5: 14 -> 24, 32, 40 patches per side: offset grids 27 -> 47, 63, 79 */
  CHECK(fabs(beit_rpb_geometric_q(27, 47) - 1.090307) < 1e-6);
  CHECK(fabs(beit_rpb_geometric_q(27, 63) - 1.134918) < 1e-6);
  CHECK(fabs(beit_rpb_geometric_q(27, 79) - 1.168504) < 1e-6);
  printf("q(14->24) = %.7f\n", beit_rpb_geometric_q(27, 47));
}

/* Not-a-knot splines reproduce cubics exactly (a natural spline would not), and interpolate. */
static void test_spline(void)
{
  const double x[7] = {-3.7, -2.0, -0.9, 0.0, 1.1, 2.5, 4.0};
  double t[9], w[9 * 7], y[7];
  for (int j = 0; j < 9; j++)
    t[j] = -3.7 + 7.7 * j / 8.0;
  struct beit_error err = {0};
  CHECK(beit_spline_weights(w, x, 7, t, 9, &err) == BEIT_STATUS_OK);
  double worst = 0;
  for (int i = 0; i < 7; i++)
    y[i] = 0.3 * x[i] * x[i] * x[i] - x[i] * x[i] + 2.0 * x[i] - 0.5;
  for (int j = 0; j < 9; j++) {
    double s = 0, want = 0.3 * t[j] * t[j] * t[j] - t[j] * t[j] + 2.0 * t[j] - 0.5;
    for (int i = 0; i < 7; i++)
      s += w[j * 7 + i] * y[i];
    worst = fmax(worst, fabs(s - want));
  }
  CHECK_MSG(worst < 1e-9, "cubic not reproduced: %g", worst);
  CHECK(beit_spline_weights(w, x, 7, x, 7, &err) == BEIT_STATUS_OK);
  for (int j = 0; j < 7; j++)
    for (int i = 0; i < 7; i++)
      CHECK(fabs(w[j * 7 + i] - (i == j)) < 1e-12);
  /* outside the knots the coordinate is clamped (FITPACK) */
  double out_t[2] = {-10.0, 10.0}, wo[2 * 7];
  CHECK(beit_spline_weights(wo, x, 7, out_t, 2, &err) == BEIT_STATUS_OK);
  CHECK(fabs(wo[0] - 1.0) < 1e-12 && fabs(wo[7 + 6] - 1.0) < 1e-12);
  const double bad[3] = {0.0, 1.0, 1.0};
  CHECK(beit_spline_weights(wo, bad, 3, out_t, 1, &err) == BEIT_STATUS_USAGE);
}

/* 14x14 -> 24x24 against unilm's own path (scipy 1.10 interp2d 'cubic', float32 table), values
 * computed once with the code of run_class_finetuning on the same table. */
static void test_rpb_resize_vs_unilm(void)
{
  const size_t src = 27, dst = 47, nH = 2, R = src * src + 3, Rd = dst * dst + 3;
  float *a = malloc(R * nH * sizeof *a), *b = malloc(Rd * nH * sizeof *b);
  for (size_t i = 0; i < R; i++) {
    a[i * nH + 0] = (float)(sin(0.37 * (double)i) + 0.01 * (double)i);
    a[i * nH + 1] = (float)(cos(0.21 * (double)i) * (1.0 + 0.002 * (double)i));
  }
  struct beit_error err = {0};
  double q = 0;
  CHECK(beit_rpb_resize(b, Rd, a, R, nH, &q, &err) == BEIT_STATUS_OK);
  CHECK(fabs(q - 1.0903074455261228) < 1e-12);
  static const struct { size_t row; float v[2]; } want[] = {
      {0, {3.448836588938998e-17f, 1.0f}},
      {1, {0.12994568049907684f, 0.9980432987213135f}},
      {23, {-0.8652397990226746f, -0.9403133988380432f}},
      {46, {0.06601563841104507f, 0.7152430415153503f}},
      {47, {-1.1421856880187988f, 1.001118540763855f}},
      {500, {1.5489187240600586f, 0.1436467319726944f}},
      {1104, {4.0372185707092285f, 0.8721001148223877f}},
      {1105, {3.688474655151367f, 0.5425905585289001f}},
      {2208, {6.5509257316589355f, -1.2048667669296265f}},
  };
  double worst = 0;
  for (size_t k = 0; k < sizeof want / sizeof want[0]; k++)
    for (size_t h = 0; h < nH; h++)
      worst = fmax(worst, fabs((double)b[want[k].row * nH + h] - (double)want[k].v[h]));
  CHECK_MSG(worst < 2e-5, "resize differs from unilm/scipy by %g", worst);
  printf("rpb resize 27->47 vs unilm interp2d: worst abs error %.2e\n", worst);
  /* the three cls rows are carried over */
  for (size_t e = 0; e < 3; e++)
    for (size_t h = 0; h < nH; h++)
      CHECK(b[(dst * dst + e) * nH + h] == a[(src * src + e) * nH + h]);
  /* equal sizes: a copy */
  CHECK(beit_rpb_resize(b, R, a, R, nH, &q, &err) == BEIT_STATUS_OK && q == 0.0);
  CHECK(!memcmp(a, b, R * nH * sizeof *a));
  CHECK(beit_rpb_resize(b, Rd, a, R - 1, nH, &q, &err) == BEIT_STATUS_UNSUPPORTED);
  free(a);
  free(b);
}

static void test_pos_embed_resize(void)
{
  enum { D = 3, GS = 8, GD = 13 };
  static float src[(1 + GS * GS) * D], dst[(1 + GD * GD) * D], same[(1 + GS * GS) * D];
  for (size_t i = 0; i < (1 + GS * GS) * D; i++)
    src[i] = (float)(0.1 * (double)i - 0.02 * (double)(i % 5));
  beit_pos_embed_resize(same, GS, src, GS, D);
  CHECK(!memcmp(same, src, sizeof src)); /* equal grids: taps (0, 1, 0, 0) */
  /* against torch F.interpolate(bicubic, align_corners=False) on a float32 quadratic grid */
  for (size_t r = 0; r < GS; r++)
    for (size_t c = 0; c < GS; c++)
      for (size_t k = 0; k < D; k++)
        src[(1 + r * GS + c) * D + k] =
            (float)(0.3 * (double)(r * r) - 0.7 * (double)c + 0.05 * (double)(r * c) + (double)k);
  beit_pos_embed_resize(dst, GD, src, GS, D);
  CHECK(!memcmp(dst, src, D * sizeof *dst));
  static const struct { size_t cell; double v0; } want[] = {
      {0, 0.038079206777793556}, {1, -0.26517710311641474}, {12, -5.027466148000109},
      {13, 0.11868441074028191}, {50, -3.3699179177795484}, {84, 1.799999962462607},
      {168, 12.617398977638002}};
  double worst = 0;
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    for (size_t k = 0; k < D; k++)
      worst = fmax(worst, fabs((double)dst[(1 + want[i].cell) * D + k] - (want[i].v0 + (double)k)));
  CHECK_MSG(worst < 1e-5, "bicubic differs from torch by %g", worst);
}

/* MIM checkpoint (shared table, mask token, lm_head) -> classifier with per-layer tables. */
static void test_mim_to_classifier(long dst_image)
{
  struct beit_config cs, cd;
  struct beit_error err = {0};
  char dir[512];
  small_config(&cs, "BeitForMaskedImageModeling", 16);
  small_config(&cd, "BeitForImageClassification", dst_image);
  struct beit_model *src = make(&cs, 1), *dst = make(&cd, 2), *fresh = make(&cd, 2);
  snprintf(dir, sizeof dir, "%s/mim_src", work);
  CHECK(beit_model_save(src, dir, &err) == BEIT_STATUS_OK);
  struct beit_source *s = NULL;
  CHECK_MSG(beit_source_open(&s, dir, &err) == BEIT_STATUS_OK, "%s", err.message);
  if (!s)
    return;
  CHECK(!s->cfg_inferred && s->naming == BEIT_SOURCE_NAMING_HF);
  struct beit_transfer_options opt = {0, NULL};
  struct beit_transfer_report rep;
  CHECK_MSG(beit_transfer_load(dst, s, &opt, &rep, &err) == BEIT_STATUS_OK, "%s", err.message);
  CHECK(rep.shared_to_layers == 3);
  CHECK(rep.dropped == 5); /* mask_token, layernorm.{weight,bias}, lm_head.{weight,bias} */
  CHECK(rep.fresh == 4);   /* pooler LayerNorm and classifier */
  const float *shared = param(src, "beit.encoder.relative_position_bias.relative_position_bias_table");
  size_t Rs = src->R, Rd = dst->R, nH = dst->nH;
  float *want = malloc(Rd * nH * sizeof *want);
  double q = 0;
  CHECK(beit_rpb_resize(want, Rd, shared, Rs, nH, &q, &err) == BEIT_STATUS_OK);
  CHECK((dst_image == 16) == (rep.rpb_resized == 0));
  for (int l = 0; l < 3; l++) {
    char name[128];
    snprintf(name, sizeof name, "beit.encoder.layer.%d.attention.attention.relative_position_bias."
             "relative_position_bias_table", l);
    CHECK_MSG(!memcmp(param(dst, name), want, Rd * nH * sizeof *want), "layer %d table", l);
  }
  /* encoder tensors copied bit for bit, heads left as initialised */
  for (size_t i = 0; i < dst->table.count; i++) {
    const struct beit_tensor *t = &dst->table.items[i];
    long j = beit_tensor_table_find(&src->table, t->name);
    const float *got = dst->params + t->offset;
    if (strstr(t->name, "relative_position_bias_table"))
      continue;
    if (j >= 0)
      CHECK_MSG(!memcmp(got, src->params + src->table.items[j].offset, t->numel * sizeof *got),
                "%s not copied", t->name);
    else
      CHECK_MSG(!memcmp(got, fresh->params + t->offset, t->numel * sizeof *got),
                "%s not left at its initialisation", t->name);
  }
  free(want);
  beit_source_free(s);
  beit_model_free(src);
  beit_model_free(dst);
  beit_model_free(fresh);
  beit_config_free(&cs);
  beit_config_free(&cd);
}

/* A classifier exported with timm names reads back (config inferred, qkv split, norm placed) and
 * transfers bit for bit with keep_head; a 3-class head into a 5-class model is re-initialised. */
static void test_timm_roundtrip(void)
{
  struct beit_config c;
  struct beit_error err = {0};
  char dir[512];
  small_config(&c, "BeitForImageClassification", 16);
  c.use_absolute_position_embeddings = 1;
  struct beit_model *a = make(&c, 3), *b = make(&c, 4);
  snprintf(dir, sizeof dir, "%s/timm_export", work);
  CHECK_MSG(beit_export_timm(a, dir, &err) == BEIT_STATUS_OK, "%s", err.message);
  struct beit_source *s = NULL;
  CHECK_MSG(beit_source_open(&s, dir, &err) == BEIT_STATUS_OK, "%s", err.message);
  if (!s)
    return;
  CHECK(s->cfg_inferred && s->naming == BEIT_SOURCE_NAMING_TIMM);
  CHECK(s->cfg.hidden_size == 16 && s->cfg.num_hidden_layers == 3 &&
        s->cfg.num_attention_heads == 2 && s->cfg.image_size == 16 && s->cfg.patch_size == 4 &&
        s->cfg.intermediate_size == 24 && s->cfg.num_labels == 5 && s->cfg.use_mean_pooling &&
        s->cfg.use_relative_position_bias && !s->cfg.use_shared_relative_position_bias &&
        s->cfg.use_absolute_position_embeddings);
  struct beit_transfer_options keep = {1, NULL};
  struct beit_transfer_report rep;
  CHECK_MSG(beit_transfer_load(b, s, &keep, &rep, &err) == BEIT_STATUS_OK, "%s", err.message);
  CHECK(rep.dropped == 0 && rep.fresh == 0);
  CHECK(!memcmp(a->params, b->params, a->table.total * sizeof(float)));
  beit_source_free(s);

  /* the same export, HF names without the beit. prefix (HF BeitModel.save_pretrained) */
  struct beit_config cm;
  small_config(&cm, "BeitModel", 16);
  struct beit_model *enc = make(&cm, 5), *enc2 = make(&cm, 6);
  struct beit_st_entry *e = calloc(enc->table.count, sizeof *e);
  char (*names)[BEIT_TENSOR_NAME_MAX] = calloc(enc->table.count, sizeof *names);
  for (size_t i = 0; i < enc->table.count; i++) {
    const struct beit_tensor *t = &enc->table.items[i];
    snprintf(names[i], sizeof names[i], "%s", t->name + 5); /* drop "beit." */
    e[i].name = names[i];
    e[i].dtype = BEIT_DTYPE_F32;
    e[i].ndim = t->ndim;
    for (int d = 0; d < t->ndim; d++)
      e[i].shape[d] = t->shape[d];
    e[i].data = enc->params + t->offset;
  }
  snprintf(dir, sizeof dir, "%s/unprefixed.safetensors", work);
  CHECK(beit_safetensors_write(dir, e, enc->table.count, NULL, &err) == BEIT_STATUS_OK);
  CHECK_MSG(beit_source_open(&s, dir, &err) == BEIT_STATUS_OK, "%s", err.message);
  if (s) {
    CHECK(beit_source_find(s, "beit.pooler.layernorm.weight") != NULL);
    CHECK(beit_transfer_load(enc2, s, &keep, &rep, &err) == BEIT_STATUS_OK);
    CHECK(!memcmp(enc->params, enc2->params, enc->table.total * sizeof(float)));
    beit_source_free(s);
  }
  /* a missing encoder tensor is an error naming it */
  e[3].name = "encoder.layer.0.bogus";
  CHECK(beit_safetensors_write(dir, e, enc->table.count, NULL, &err) == BEIT_STATUS_OK);
  if (beit_source_open(&s, dir, &err) == BEIT_STATUS_OK) {
    CHECK(beit_transfer_load(enc2, s, &keep, &rep, &err) == BEIT_STATUS_MISSING);
    CHECK(strstr(err.message, "beit.encoder.layer.0") != NULL);
    beit_source_free(s);
  }
  free(e);
  free(names);
  beit_model_free(enc);
  beit_model_free(enc2);
  beit_config_free(&cm);
  beit_model_free(a);
  beit_model_free(b);
  beit_config_free(&c);
}

int main(int argc, char **argv)
{
  if (argc > 1)
    work = argv[1];
  char cmd[600];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s'", work);
  if (system(cmd) != 0)
    return 1;
  test_q_values();
  test_spline();
  test_rpb_resize_vs_unilm();
  test_pos_embed_resize();
  test_mim_to_classifier(16); /* same grid: shared table copied into each layer */
  test_mim_to_classifier(24); /* 4x4 -> 6x6 patches: copied and resized */
  test_timm_roundtrip();
  return test_summary("test_transfer");
}
