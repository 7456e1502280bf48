/* Unit tests of core/optim: AdamW against a double-precision reference over several steps on
 * a table of three tensors with different no_decay / lr_scale (padding untouched), the
 * unilm warmup + cosine schedule, and global-norm clipping. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "optim.h"
#include "rng.h"
#include "testing.h"

static struct beit_rng rng;

/* torch.optim.AdamW, one tensor, in double */
static void adamw_ref(double *p, const double *g, double *m, double *v, size_t n, double lr,
                      double wd, double b1, double b2, double eps, long step)
{
  double bc1 = 1.0 - pow(b1, (double)step), bc2 = 1.0 - pow(b2, (double)step);
  for (size_t i = 0; i < n; i++) {
    p[i] -= lr * wd * p[i];
    m[i] = b1 * m[i] + (1.0 - b1) * g[i];
    v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
    p[i] -= lr / bc1 * m[i] / (sqrt(v[i]) / sqrt(bc2) + eps);
  }
}

static void test_adamw(void)
{
  struct beit_tensor_table table;
  beit_tensor_table_init(&table);
  const size_t s0[2] = {7, 13}, s1[1] = {13}, s2[3] = {3, 5, 2};
  CHECK(beit_tensor_table_add(&table, "blocks.0.fc.weight", 2, s0) == 0);
  CHECK(beit_tensor_table_add(&table, "blocks.0.fc.bias", 1, s1) == 1);
  CHECK(beit_tensor_table_add(&table, "rel_pos_bias.table", 3, s2) == 2);
  table.items[1].no_decay = 1;
  table.items[1].lr_scale = 0.5f;
  table.items[2].lr_scale = 0.25f;
  const size_t n = table.total;

  float *p = calloc(n, sizeof *p), *g = calloc(n, sizeof *g), *m = calloc(n, sizeof *m),
        *v = calloc(n, sizeof *v), *p0 = calloc(n, sizeof *p0);
  double *pr = calloc(n, sizeof *pr), *gr = calloc(n, sizeof *gr), *mr = calloc(n, sizeof *mr),
         *vr = calloc(n, sizeof *vr);
  float *delta = calloc(n, sizeof *delta), *delta_r = calloc(n, sizeof *delta_r);
  float *mf = calloc(n, sizeof *mf), *vf = calloc(n, sizeof *vf);
  if (!p || !g || !m || !v || !p0 || !pr || !gr || !mr || !vr || !delta || !delta_r || !mf ||
      !vf) {
    CHECK(!"allocation");
    goto free_all;
  }
  for (size_t i = 0; i < n; i++) {
    p[i] = p0[i] = (float)beit_rng_normal(&rng);
    pr[i] = p[i];
  }
  /* padding sentinels: AdamW must not touch what lies between tensors */
  for (size_t i = 0; i < n; i++) {
    int inside = 0;
    for (size_t t = 0; t < table.count; t++)
      inside |= i >= table.items[t].offset && i < table.items[t].offset + table.items[t].numel;
    if (!inside)
      p[i] = p0[i] = 12345.0f;
  }

  struct beit_adamw_hparams hp = {.lr = 1e-2, .weight_decay = 0.05, .beta1 = 0.9,
                                  .beta2 = 0.999, .eps = 1e-8};
  for (long step = 1; step <= 6; step++) {
    for (size_t i = 0; i < n; i++) {
      g[i] = (float)beit_rng_normal(&rng) * (step == 3 ? 1e-3f : 1.0f);
      gr[i] = g[i];
    }
    hp.step = step;
    hp.lr = 1e-2 * (1.0 - 0.1 * (double)step); /* a changing scheduled lr */
    beit_adamw_update(p, g, 1.0f, m, v, &table, &hp);
    for (size_t t = 0; t < table.count; t++) {
      const struct beit_tensor *ti = &table.items[t];
      size_t o = ti->offset;
      adamw_ref(pr + o, gr + o, mr + o, vr + o, ti->numel, hp.lr * ti->lr_scale,
                ti->no_decay ? 0.0 : hp.weight_decay, hp.beta1, hp.beta2, hp.eps, step);
    }
  }
  for (size_t t = 0; t < table.count; t++) {
    const struct beit_tensor *ti = &table.items[t];
    for (size_t i = ti->offset; i < ti->offset + ti->numel; i++) {
      delta[i] = p[i] - p0[i];
      delta_r[i] = (float)(pr[i] - (double)p0[i]);
      mf[i] = (float)mr[i];
      vf[i] = (float)vr[i];
    }
    char label[160];
    snprintf(label, sizeof label, "adamw param change %s", ti->name);
    check_close(label, delta + ti->offset, delta_r + ti->offset, ti->numel, 1e-4);
    snprintf(label, sizeof label, "adamw m %s", ti->name);
    check_close(label, m + ti->offset, mf + ti->offset, ti->numel, 1e-5);
    snprintf(label, sizeof label, "adamw v %s", ti->name);
    check_close(label, v + ti->offset, vf + ti->offset, ti->numel, 1e-5);
  }
  int pad_ok = 1;
  for (size_t i = 0; i < n; i++)
    if (p0[i] == 12345.0f)
      pad_ok &= p[i] == 12345.0f && m[i] == 0.0f && v[i] == 0.0f;
  CHECK_MSG(pad_ok, "adamw leaves the table padding alone");

  /* zero gradient and zero moments: only decay moves a parameter, and no_decay means exact */
  memset(g, 0, n * sizeof *g);
  memset(m, 0, n * sizeof *m);
  memset(v, 0, n * sizeof *v);
  memcpy(p0, p, n * sizeof *p);
  hp.step = 1;
  hp.lr = 0.1;
  hp.weight_decay = 0.5;
  beit_adamw_update(p, g, 1.0f, m, v, &table, &hp);
  const struct beit_tensor *w = &table.items[0], *b = &table.items[1], *r = &table.items[2];
  CHECK(p[b->offset] == p0[b->offset] && p[b->offset + 12] == p0[b->offset + 12]);
  CHECK(p[w->offset + 3] == (float)(1.0 - 0.1 * 0.5) * p0[w->offset + 3]);
  CHECK(p[r->offset + 5] == (float)(1.0 - 0.1 * 0.25 * 0.5) * p0[r->offset + 5]);

  /* grad_scale: the same update, bit for bit, as on gradients scaled beforehand */
  float *p2 = malloc(n * sizeof *p2), *g2 = malloc(n * sizeof *g2), *m2 = malloc(n * sizeof *m2),
        *v2 = malloc(n * sizeof *v2);
  for (size_t i = 0; i < n; i++) {
    g[i] = (float)beit_rng_normal(&rng);
    g2[i] = 0.37f * g[i];
    p2[i] = p[i], m2[i] = m[i] = 0.1f, v2[i] = v[i] = 0.2f;
  }
  hp.step = 4;
  beit_adamw_update(p, g, 0.37f, m, v, &table, &hp);
  beit_adamw_update(p2, g2, 1.0f, m2, v2, &table, &hp);
  CHECK_MSG(!memcmp(p, p2, n * sizeof *p) && !memcmp(m, m2, n * sizeof *m) &&
                !memcmp(v, v2, n * sizeof *v),
            "adamw with grad_scale equals adamw on pre-scaled gradients");

  /* zero_grads: the same update, and every gradient 0 afterwards (the padding too is 0: the
   * table's gradients start zeroed, as a model's do) */
  for (size_t i = 0; i < n; i++)
    g[i] = g2[i] = (float)beit_rng_normal(&rng), p2[i] = p[i], m2[i] = m[i], v2[i] = v[i];
  hp.step = 5;
  beit_adamw_update(p2, g2, 0.5f, m2, v2, &table, &hp);
  hp.zero_grads = 1;
  beit_adamw_update(p, g, 0.5f, m, v, &table, &hp);
  int zeroed = 1;
  for (size_t ti = 0; ti < table.count; ti++)
    for (size_t i = 0; i < table.items[ti].numel; i++)
      zeroed &= g[table.items[ti].offset + i] == 0.0f;
  CHECK_MSG(zeroed && !memcmp(p, p2, n * sizeof *p) && !memcmp(m, m2, n * sizeof *m),
            "adamw with zero_grads: the same update, and the gradients left 0");
  hp.zero_grads = 0;

  /* params_h: the same update, and params_h equal to beit_to_bf16 of the new parameters */
  beit_bf16 *ph = calloc(n, sizeof *ph), *want = calloc(n, sizeof *want);
  for (size_t i = 0; i < n; i++)
    g[i] = g2[i] = (float)beit_rng_normal(&rng), p2[i] = p[i], m2[i] = m[i], v2[i] = v[i];
  hp.step = 6;
  beit_adamw_update(p2, g2, 1.0f, m2, v2, &table, &hp);
  hp.params_h = ph;
  beit_adamw_update(p, g, 1.0f, m, v, &table, &hp);
  hp.params_h = NULL;
  beit_to_bf16(want, p, n);
  int rounded = ph && want;
  for (size_t ti = 0; rounded && ti < table.count; ti++)
    for (size_t i = 0; i < table.items[ti].numel; i++)
      rounded &= ph[table.items[ti].offset + i] == want[table.items[ti].offset + i];
  CHECK_MSG(rounded && !memcmp(p, p2, n * sizeof *p),
            "adamw with params_h: the same update, and params_h = bf16(params)");
  free(ph), free(want);
  free(p2), free(g2), free(m2), free(v2);

free_all:
  free(p), free(g), free(m), free(v), free(p0), free(pr), free(gr), free(mr), free(vr);
  free(delta), free(delta_r), free(mf), free(vf);
  beit_tensor_table_free(&table);
}

/* unilm utils.cosine_scheduler, built as a whole array the way numpy does it */
static double schedule_ref(double base, double final, long warmup, long total, long it)
{
  if (it >= total)
    it = total - 1;
  if (it < warmup) {
    if (warmup == 1)
      return 0.0;
    double step = base / (double)(warmup - 1);
    return it == warmup - 1 ? base : (double)it * step;
  }
  long m = total - warmup;
  return final + 0.5 * (base - final) * (1.0 + cos(M_PI * (double)(it - warmup) / (double)m));
}

static void test_cosine(void)
{
  const double base = 1.5e-3, final = 1e-5;
  int ok = 1;
  for (long it = 0; it < 30; it++) {
    double got = beit_cosine_schedule(base, final, 5, 20, it);
    double want = schedule_ref(base, final, 5, 20, it);
    ok &= fabs(got - want) <= 1e-15 * base;
  }
  CHECK_MSG(ok, "cosine schedule (warmup 5, total 20)");
  /* warmup: linspace(0, base, 5) inclusive of both ends */
  CHECK(beit_cosine_schedule(base, final, 5, 20, 0) == 0.0);
  CHECK(fabs(beit_cosine_schedule(base, final, 5, 20, 2) - base / 2) < 1e-18);
  CHECK(beit_cosine_schedule(base, final, 5, 20, 4) == base);
  /* first cosine value is base again (i = 0), then decreasing towards final */
  CHECK(fabs(beit_cosine_schedule(base, final, 5, 20, 5) - base) < 1e-18);
  double last = final + 0.5 * (base - final) * (1.0 + cos(M_PI * 14.0 / 15.0));
  CHECK(fabs(beit_cosine_schedule(base, final, 5, 20, 19) - last) < 1e-18);
  CHECK(beit_cosine_schedule(base, final, 5, 20, 19) == beit_cosine_schedule(base, final, 5, 20, 500));
  /* no warmup: starts at base */
  CHECK(fabs(beit_cosine_schedule(base, final, 0, 10, 0) - base) < 1e-18);
  CHECK(fabs(beit_cosine_schedule(base, final, 0, 10, 5) - (final + base) / 2) < 1e-15);
  /* a one-value warmup is linspace(0, base, 1) = [0] */
  CHECK(beit_cosine_schedule(base, final, 1, 10, 0) == 0.0);
  /* constant schedule (weight decay with final == base) */
  CHECK(fabs(beit_cosine_schedule(0.05, 0.05, 0, 100, 37) - 0.05) < 1e-17);
}

static void test_clip(void)
{
  const size_t n = 100003; /* large enough for the parallel path */
  float *g = malloc(n * sizeof *g), *orig = malloc(n * sizeof *orig);
  if (!g || !orig) {
    CHECK(!"allocation");
    free(g), free(orig);
    return;
  }
  double sq = 0.0;
  for (size_t i = 0; i < n; i++) {
    g[i] = orig[i] = (float)beit_rng_normal(&rng) * 0.01f;
    sq += (double)g[i] * g[i];
  }
  const double norm = sqrt(sq); /* ~3.16 */
  double got = beit_clip_grad_norm(g, n, 100.0);
  CHECK_MSG(fabs(got - norm) <= 1e-12 * norm, "clip norm %.17g want %.17g", got, norm);
  CHECK(memcmp(g, orig, n * sizeof *g) == 0); /* under the max: untouched */
  got = beit_clip_grad_norm(g, n, 0.0);          /* max 0: no clipping */
  CHECK(fabs(got - norm) <= 1e-12 * norm && memcmp(g, orig, n * sizeof *g) == 0);

  got = beit_clip_grad_norm(g, n, 1.0);
  CHECK(fabs(got - norm) <= 1e-12 * norm);
  const float coef = (float)(1.0 / (norm + 1e-6));
  int ok = 1;
  double sq2 = 0.0;
  for (size_t i = 0; i < n; i++) {
    ok &= g[i] == orig[i] * coef;
    sq2 += (double)g[i] * g[i];
  }
  CHECK_MSG(ok, "clip scales by max / (norm + 1e-6)");
  CHECK_MSG(fabs(sqrt(sq2) - 1.0) < 1e-5, "clipped norm %.9g", sqrt(sq2));

  /* non-finite gradients give a non-finite norm and are left for the caller to skip */
  memcpy(g, orig, n * sizeof *g);
  g[777] = NAN;
  got = beit_clip_grad_norm(g, n, 1.0);
  CHECK(isnan(got));
  CHECK(g[0] == orig[0] && g[n - 1] == orig[n - 1]);
  g[777] = INFINITY;
  got = beit_clip_grad_norm(g, n, 1.0);
  CHECK(!isfinite(got));
  CHECK(g[0] == orig[0]);

  float tiny[3] = {3.0f, 4.0f, 0.0f};
  CHECK(beit_clip_grad_norm(tiny, 3, 0.0) == 5.0);
  CHECK(beit_clip_grad_norm(tiny, 0, 1.0) == 0.0);
  free(g);
  free(orig);
}

int main(void)
{
  beit_rng_seed(&rng, 99, 0, 0);
  test_adamw();
  test_cosine();
  test_clip();
  return test_summary("test_optim");
}
