/* Fine-tuning pieces without a reference file: the soft-target cross-entropy (equal to the
 * label-smoothed hard-target one on smoothed one-hots, gradient by central differences), Mixup
 * and CutMix (targets, box, lam correction, pairing with the reversed batch, Beta draws), and
 * layer-wise lr decay scales (spec 5.1 values for BEiT-base). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "finetune.h"
#include "kernels.h"
#include "mixup.h"
#include "rng.h"
#include "testing.h"

static void test_soft_cross_entropy(void)
{
  enum { M = 3, V = 5 };
  const float logits[M * V] = {0.3f, -1.2f, 2.0f, 0.0f, 0.5f, 1.0f, 1.0f, 1.0f, -3.0f, 0.2f,
                               -0.7f, 0.4f, 0.1f, 2.5f, -1.0f};
  const int32_t t[M] = {2, 4, 0};
  const float s = 0.1f;
  float q[M * V], p1[M * V], p2[M * V], g1[M * V] = {0}, g2[M * V] = {0};
  for (int r = 0; r < M; r++)
    for (int c = 0; c < V; c++)
      q[r * V + c] = s / V + (c == t[r] ? 1.0f - s : 0.0f);
  long h1, h2;
  double a = beit_cross_entropy_forward(p1, &h1, logits, t, s, M, V);
  double b = beit_soft_cross_entropy_forward(p2, &h2, logits, q, M, V);
  CHECK_MSG(fabs(a - b) < 1e-6, "soft %g vs smoothed hard %g", b, a);
  CHECK(h1 == h2);
  beit_cross_entropy_backward(g1, p1, t, s, 2.0f, M, V);
  beit_soft_cross_entropy_backward(g2, p2, q, 2.0f, M, V);
  check_close("soft CE grad vs hard CE grad", g2, g1, M * V, 1e-6);
  /* a genuinely mixed target: central differences in double */
  float mix[M * V];
  for (int i = 0; i < M * V; i++)
    mix[i] = 0.6f * q[i] + 0.4f * q[(i + V) % (M * V)];
  float g[M * V] = {0}, num[M * V], x[M * V], pr[M * V];
  beit_soft_cross_entropy_forward(p2, NULL, logits, mix, M, V);
  beit_soft_cross_entropy_backward(g, p2, mix, 1.0f, M, V);
  for (int i = 0; i < M * V; i++) {
    memcpy(x, logits, sizeof x);
    const float e = 1e-2f;
    x[i] = logits[i] + e;
    double up = beit_soft_cross_entropy_forward(pr, NULL, x, mix, M, V);
    x[i] = logits[i] - e;
    double dn = beit_soft_cross_entropy_forward(pr, NULL, x, mix, M, V);
    num[i] = (float)((up - dn) / (2.0 * e));
  }
  check_close("soft CE grad vs central differences", g, num, M * V, 1e-3);
}

static void test_mixup(void)
{
  enum { B = 4, CH = 2, H = 6, W = 5, C = 3 };
  float img[B * CH * H * W], out[B * CH * H * W], tg[B * C];
  for (int i = 0; i < B * CH * H * W; i++)
    img[i] = (float)(i / (CH * H * W)) + 0.001f * (float)(i % (CH * H * W));
  const int32_t labels[B] = {0, 1, 2, 1};
  struct beit_mixup mx = {0.8, 0.0, 1.0, 0.5, 0.1};
  struct beit_mixup_draw d = {1, 0, 0.7, 0, 0, 0, 0};
  beit_mixup_apply(&mx, &d, out, img, B, CH, H, W, tg, labels, NULL, C);
  /* mixup: sample 0 with sample 3 */
  CHECK(fabsf(out[5] - (0.7f * img[5] + 0.3f * img[3 * CH * H * W + 5])) < 1e-6f);
  /* targets: 0.7 smooth(0) + 0.3 smooth(1); off = 0.1/3, on = 0.9 + off */
  double off = 0.1 / 3, on = 0.9 + off;
  CHECK(fabs(tg[0] - (0.7 * on + 0.3 * off)) < 1e-6);
  CHECK(fabs(tg[1] - (0.7 * off + 0.3 * on)) < 1e-6);
  CHECK(fabs(tg[2] - off) < 1e-6);
  for (int b = 0; b < B; b++)
    CHECK(fabs(tg[b * C] + tg[b * C + 1] + tg[b * C + 2] - 1.0) < 1e-6);

  /* cutmix: the box comes from the reversed partner, lam is the area kept */
  struct beit_mixup_draw cd = {1, 1, 1.0 - 6.0 / 30.0, 1, 4, 2, 4};
  beit_mixup_apply(&mx, &cd, out, img, B, CH, H, W, tg, labels, NULL, C);
  int inside_ok = 1, outside_ok = 1;
  for (int c = 0; c < CH; c++)
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        size_t i = (size_t)(c * H + y) * W + x;
        int in = y >= 1 && y < 4 && x >= 2 && x < 4;
        float want = in ? img[3 * CH * H * W + i] : img[i];
        if (out[i] != want && in)
          inside_ok = 0;
        if (out[i] != want && !in)
          outside_ok = 0;
      }
  CHECK(inside_ok && outside_ok);

  /* draws: with only cutmix, the box respects the corrected lam and stays inside */
  struct beit_mixup cm = {0.0, 1.0, 1.0, 0.5, 0.0};
  struct beit_rng rng;
  double lam_sum = 0;
  int n = 2000, valid = 1;
  for (int i = 0; i < n; i++) {
    beit_rng_seed(&rng, 7, 1, (uint64_t)i);
    beit_mixup_draw(&cm, &rng, 28, 28, &d);
    valid &= d.mixed && d.cutmix && d.y1 <= 28 && d.x1 <= 28 && d.y0 <= d.y1 && d.x0 <= d.x1;
    valid &= fabs(d.lam - (1.0 - (double)((d.y1 - d.y0) * (d.x1 - d.x0)) / 784.0)) < 1e-12;
    lam_sum += d.lam;
  }
  CHECK(valid);
  CHECK_MSG(lam_sum / n > 0.5 && lam_sum / n < 0.75, "mean corrected lam %g", lam_sum / n);
  /* Beta(0.8, 0.8): mean 1/2, variance ab / ((a+b)^2 (a+b+1)) = 0.64 / (2.56 * 2.6) */
  double s1 = 0, s2 = 0;
  beit_rng_seed(&rng, 3, 0, 0);
  for (int i = 0; i < 20000; i++) {
    double v = beit_rng_beta(&rng, 0.8, 0.8);
    s1 += v;
    s2 += v * v;
  }
  double mean = s1 / 20000, var = s2 / 20000 - mean * mean;
  CHECK_MSG(fabs(mean - 0.5) < 0.01, "beta mean %g", mean);
  CHECK_MSG(fabs(var - 0.64 / (2.56 * 2.6)) < 0.005, "beta variance %g", var);
  /* prob 0: never mixed */
  struct beit_mixup off_mx = {0.8, 1.0, 0.0, 0.5, 0.0};
  beit_mixup_draw(&off_mx, &rng, 28, 28, &d);
  CHECK(!d.mixed && d.lam == 1.0);
  /* multi-label rows mix without smoothing */
  const float multi[B * C] = {1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 1};
  struct beit_mixup_draw md = {1, 0, 0.25, 0, 0, 0, 0};
  beit_mixup_apply(&mx, &md, out, img, B, CH, H, W, tg, NULL, multi, C);
  CHECK(fabs(tg[0] - (0.25 + 0.75)) < 1e-6 && fabs(tg[1] - 0.75) < 1e-6);
}

static void test_layer_decay(void)
{
  /* spec 5.1: base, L = 12, decay 0.65 -> id 0: 0.003697, id 1: 0.005688, id 12: 0.65, 13: 1 */
  CHECK(fabs(beit_layer_decay_scale(0.65, 12, 0) - 0.003697) < 5e-7);
  CHECK(fabs(beit_layer_decay_scale(0.65, 12, 1) - 0.005688) < 5e-7);
  CHECK(fabs(beit_layer_decay_scale(0.65, 12, 12) - 0.65) < 1e-7);
  CHECK(beit_layer_decay_scale(0.65, 12, 13) == 1.0);
  CHECK(beit_layer_decay_scale(1.0, 12, 0) == 1.0);
}

/* Every fine-tuning recipe reads through the key table, with the paper's values (spec 6.3). */
static void test_recipes(const char *root)
{
  static const struct { const char *file; double lr, ld, dp, clip; long batch, accum; } want[] = {
      {"finetune_base_in22k.json", 3e-3, 0.65, 0.2, 3.0, 256, 1},
      {"finetune_large_in22k.json", 2e-3, 0.75, 0.2, 1.0, 64, 2},
      {"finetune_base_in1k.json", 4e-3, 0.65, 0.1, 0.0, 128, 1},
      {"finetune_fashion_mnist.json", 2e-3, 0.75, 0.1, 0.0, 64, 1},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    char path[1024];
    struct beit_recipe r;
    struct beit_error err = {0};
    snprintf(path, sizeof path, "%s/configs/recipes/%s", root, want[i].file);
    beit_finetune_recipe_defaults(&r);
    CHECK_MSG(beit_recipe_load(&r, path, &err) == BEIT_STATUS_OK, "%s", err.message);
    CHECK(r.optimizer.lr == want[i].lr && r.optimizer.layer_decay == want[i].ld &&
          r.drop_path_rate == want[i].dp && r.optimizer.clip_grad == want[i].clip &&
          r.batch.size == want[i].batch && r.batch.accum_steps == want[i].accum &&
          r.label_smoothing == 0.1);
  }
}

int main(int argc, char **argv)
{
  if (argc > 1)
    test_recipes(argv[1]);
  test_soft_cross_entropy();
  test_mixup();
  test_layer_decay();
  return test_summary("test_finetune");
}
