/* The tokenizer in bf16 (beit_tokenizer_set_precision) against itself in fp32 on the same weights.
 *
 * 1. Precision switching: a tokenizer starts in fp32; auto resolves as beit_precision_resolve
 *    says; bf16 logits and reconstructions (decode) are close to fp32's; going back to fp32
 *    gives the float32 logits bit for bit; after a training step the
 *    bf16 weight copy follows the new weights (encode equals a freshly rounded copy's encode).
 * 2. Encoder forward of a DALL-E-shaped tokenizer (4 groups x 2 blocks, 3 pools, 112x112,
 *    vocabulary 8192; widths 64..512 instead of 256..2048 to stay fast), random DALL-E init and
 *    random images. Bounds, and why:
 *    - logits: max |bf16 - fp32| / max |fp32| <= 2e-2 and RMS(bf16 - fp32) / RMS(fp32) <= 1e-2.
 *      Each of the ~20 products on the path rounds both operands to 8 significant bits
 *      (relative error <= 2^-9 each); the errors are independent, so the logits' relative error
 *      grows like sqrt(2 x 20) x 2^-9 ~ 1.2e-2 at worst, a few 1e-3 typically (printed).
 *      bf16 accumulation or bf16 outputs anywhere would exceed it; a wrong chunk or transpose
 *      would give O(1).
 *    - tokens: with V = 8192 random logits per position, the top-2 gap is often below the bf16
 *      error (a near-tie): an agreement rate alone ("95% equal") says little. So every position
 *      whose fp32 top-2 gap exceeds twice the logit error budget (2 x 2e-2 x max |logit|) must
 *      keep its token exactly (a flip there means a real error), and those positions must be the
 *      majority (else the check is vacuous); the overall agreement rate is reported.
 * 3. Training: 30 steps on one batch (flat grey levels, which a tokenizer learns to tell apart
 *    and reconstruct) from the same initial weights and Gumbel noise in fp32 and bf16: the mean
 *    loss of the last 10 steps is within 3% of fp32's (the per-step loss jumps with each step's
 *    noise: every step within 10%), and it learns (-20%); the first step's gradients agree
 *    within 5e-2 (norm-wise: a few bf16 roundings on each path).
 * Exit 77 (skipped) where the CPU has no bf16 matrix products. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dvae.h"
#include "testing.h"
#include "testing_tokenizer.h"

static void test_switching(void)
{
  struct beit_tokenizer_config c;
  struct beit_error err = {0};
  test_tokenizer_small_config(&c, "mse");
  const size_t B = 3, img = 3 * 12 * 12, VP = 16 * 9;
  struct beit_tokenizer *tok = NULL;
  CHECK(beit_tokenizer_create(&tok, &c, B, 4, &err) == BEIT_STATUS_OK);
  CHECK(beit_tokenizer_precision(tok) == BEIT_PRECISION_FP32);
  float *x = test_tokenizer_images(B * img, 5);
  int32_t *t = talloc(B * 9 * sizeof *t);
  float *l32 = talloc(B * VP * sizeof(float)), *l16 = talloc(B * VP * sizeof(float));
  float *again = talloc(B * VP * sizeof(float));
  CHECK(beit_tokenizer_encode(tok, t, l32, x, B, &err) == BEIT_STATUS_OK);

  enum beit_precision want;
  CHECK(beit_precision_resolve(&want, BEIT_PRECISION_AUTO, &err) == BEIT_STATUS_OK);
  CHECK(beit_tokenizer_set_precision(tok, BEIT_PRECISION_AUTO, &err) == BEIT_STATUS_OK);
  CHECK(beit_tokenizer_precision(tok) == want);
  CHECK(beit_tokenizer_set_precision(tok, BEIT_PRECISION_BF16, &err) == BEIT_STATUS_OK);
  CHECK(beit_tokenizer_precision(tok) == BEIT_PRECISION_BF16 && tok->params_h);
  CHECK(beit_tokenizer_encode(tok, t, l16, x, B, &err) == BEIT_STATUS_OK);
  CHECK(memcmp(l16, l32, B * VP * sizeof(float)) != 0); /* bf16 did run */
  check_close("small tokenizer logits bf16 vs fp32", l16, l32, B * VP, 2e-2);
  /* decode of the same tokens: the decoder's convolutions in bf16 */
  float *r16 = talloc(B * img * sizeof(float)), *r32 = talloc(B * img * sizeof(float));
  CHECK(beit_tokenizer_decode(tok, r16, t, B, &err) == BEIT_STATUS_OK);
  CHECK(beit_tokenizer_set_precision(tok, BEIT_PRECISION_FP32, &err) == BEIT_STATUS_OK);
  CHECK(beit_tokenizer_decode(tok, r32, t, B, &err) == BEIT_STATUS_OK);
  CHECK(memcmp(r16, r32, B * img * sizeof(float)) != 0);
  check_close("small tokenizer reconstructions bf16 vs fp32", r16, r32, B * img, 2e-2);
  CHECK(beit_tokenizer_set_precision(tok, BEIT_PRECISION_FP32, &err) == BEIT_STATUS_OK);
  CHECK(beit_tokenizer_precision(tok) == BEIT_PRECISION_FP32 && !tok->params_h);
  CHECK(beit_tokenizer_encode(tok, t, again, x, B, &err) == BEIT_STATUS_OK);
  CHECK(!memcmp(again, l32, B * VP * sizeof(float))); /* fp32 is fp32 again, bit for bit */

  /* a training step moves the weights: encode then uses a copy rounded from the new ones */
  CHECK(beit_dvae_train_init(tok, B, &err) == BEIT_STATUS_OK);
  CHECK(beit_tokenizer_set_precision(tok, BEIT_PRECISION_BF16, &err) == BEIT_STATUS_OK);
  float *m = beit_alloc_floats(tok->table.total), *v = beit_alloc_floats(tok->table.total);
  struct beit_dvae_hparams hp = {1e-2, 0.0, 0.9, 0.999, 1e-8, 1.0, 1.0f, 1.0f, 1};
  struct beit_dvae_step_stats st;
  beit_dvae_train_step(tok, x, B, &hp, 3, m, v, &st);
  CHECK(beit_tokenizer_encode(tok, t, l16, x, B, &err) == BEIT_STATUS_OK);
  CHECK(beit_tokenizer_set_precision(tok, BEIT_PRECISION_BF16, &err) == BEIT_STATUS_OK);
  CHECK(beit_tokenizer_encode(tok, t, again, x, B, &err) == BEIT_STATUS_OK);
  CHECK_MSG(!memcmp(again, l16, B * VP * sizeof(float)),
            "encode after a training step used stale bf16 weights");
  free(m), free(v);
  beit_tokenizer_free(tok);
  tfree_all();
}

static void test_dalle_forward(void)
{
  struct beit_tokenizer_config c;
  struct beit_error err = {0};
  beit_tokenizer_config_defaults(&c); /* DALL-E: 4 groups x 2 blocks, downsample 8, V 8192 */
  c.n_hid = 64;
  c.decoder = 0;
  const size_t B = 4, S = 112, img = 3 * S * S;
  struct beit_tokenizer *tok = NULL;
  CHECK(beit_tokenizer_create(&tok, &c, B, 11, &err) == BEIT_STATUS_OK);
  if (!tok)
    return;
  const size_t V = tok->V, P = tok->gh * tok->gw, n = B * V * P;
  float *x = test_tokenizer_images(B * img, 7);
  int32_t *t32 = talloc(B * P * sizeof *t32), *t16 = talloc(B * P * sizeof *t16);
  float *l32 = talloc(n * sizeof *l32), *l16 = talloc(n * sizeof *l16);
  CHECK(beit_tokenizer_encode(tok, t32, l32, x, B, &err) == BEIT_STATUS_OK);
  CHECK(beit_tokenizer_set_precision(tok, BEIT_PRECISION_BF16, &err) == BEIT_STATUS_OK);
  CHECK(beit_tokenizer_encode(tok, t16, l16, x, B, &err) == BEIT_STATUS_OK);

  double maxref = 0, maxdiff = 0, ss_ref = 0, ss_diff = 0;
  for (size_t i = 0; i < n; i++) {
    const double d = fabs((double)l16[i] - l32[i]);
    maxref = fmax(maxref, fabs(l32[i]));
    maxdiff = fmax(maxdiff, d);
    ss_ref += (double)l32[i] * l32[i];
    ss_diff += d * d;
  }
  const double rel_max = maxdiff / maxref, rel_rms = sqrt(ss_diff / ss_ref);
  CHECK_MSG(rel_max <= 2e-2, "logits: max |bf16 - fp32| / max |fp32| = %.3e", rel_max);
  CHECK_MSG(rel_rms <= 1e-2, "logits: RMS relative error %.3e", rel_rms);

  /* tokens: flips allowed only at positions whose fp32 top-2 gap lies inside the error budget */
  const double budget = 2.0 * 2e-2 * maxref;
  size_t agree = 0, clear = 0, clear_diff = 0;
  for (size_t b = 0; b < B; b++)
    for (size_t p = 0; p < P; p++) {
      const float *l = l32 + b * V * P + p;
      float top1 = -INFINITY, top2 = -INFINITY;
      for (size_t v = 0; v < V; v++) {
        const float z = l[v * P];
        if (z > top1)
          top2 = top1, top1 = z;
        else if (z > top2)
          top2 = z;
      }
      const int same = t16[b * P + p] == t32[b * P + p];
      agree += same;
      if (top1 - top2 > budget) {
        clear++;
        clear_diff += !same;
      }
    }
  CHECK_MSG(clear_diff == 0, "%zu of %zu tokens with a top-2 gap above %.3g changed", clear_diff,
            clear, budget);
  CHECK_MSG(clear * 2 > B * P, "only %zu of %zu positions have a gap above %.3g: vacuous", clear,
            B * P, budget);
  printf("DALL-E-shaped encoder (n_hid %ld, %zux%zu, V %zu), bf16 vs fp32: logits max rel error "
         "%.2e, RMS rel error %.2e; tokens %zu/%zu equal (%.1f%%); %zu positions with a top-2 gap "
         "above the budget %.3g, all equal\n",
         c.n_hid, S, S, V, rel_max, rel_rms, agree, B * P, 100.0 * agree / (double)(B * P), clear,
         budget);
  beit_tokenizer_free(tok);
  tfree_all();
}

static void test_training(void)
{
  struct beit_tokenizer_config c;
  struct beit_error err = {0};
  test_tokenizer_small_config(&c, "mse");
  c.vocab_size = 32;
  c.n_hid = 16;
  const size_t B = 8, img = 3 * 12 * 12, steps = 30;
  float *x = talloc(B * img * sizeof *x); /* flat grey levels: learnable in a few steps */
  for (size_t i = 0; i < B * img; i++)
    x[i] = 0.1f + 0.8f * (0.05f + 0.11f * (float)(i / img));
  double loss[2][30];
  float *g[2];
  for (int run = 0; run < 2; run++) {
    struct beit_tokenizer *tok = NULL;
    CHECK(beit_tokenizer_create(&tok, &c, B, 2, &err) == BEIT_STATUS_OK);
    CHECK(beit_dvae_train_init(tok, B, &err) == BEIT_STATUS_OK);
    CHECK(beit_tokenizer_set_precision(tok, run ? BEIT_PRECISION_BF16 : BEIT_PRECISION_FP32,
                                       &err) == BEIT_STATUS_OK);
    float *m = beit_alloc_floats(tok->table.total), *v = beit_alloc_floats(tok->table.total);
    g[run] = talloc(tok->table.total * sizeof(float));
    struct beit_dvae_hparams hp = {3e-3, 1e-4, 0.9, 0.999, 1e-8, 1.0, 1.0f, 0.5f, 0};
    for (size_t s = 0; s < steps; s++) {
      struct beit_dvae_step_stats st;
      hp.step = (long)s + 1;
      beit_dvae_train_step(tok, x, B, &hp, 1, m, v, &st);
      loss[run][s] = st.loss;
      if (s == 0) /* the gradients of the first step: same weights on both runs */
        memcpy(g[run], tok->grads, tok->table.total * sizeof(float));
    }
    if (run == 1) {
      double num = 0, den = 0;
      for (size_t i = 0; i < tok->table.total; i++) {
        num += ((double)g[1][i] - g[0][i]) * ((double)g[1][i] - g[0][i]);
        den += (double)g[0][i] * g[0][i];
      }
      CHECK_MSG(sqrt(num / den) <= 5e-2, "first-step gradients: relative error %.3e",
                sqrt(num / den));
      printf("training, bf16 vs fp32: first-step gradient relative error %.2e\n",
             sqrt(num / den));
    }
    free(m), free(v);
    beit_tokenizer_free(tok);
  }
  double worst = 0, tail[2] = {0, 0};
  for (size_t s = 0; s < steps; s++) {
    worst = fmax(worst, fabs(loss[1][s] - loss[0][s]) / fabs(loss[0][s]));
    for (int r = 0; r < 2 && s >= steps - 10; r++)
      tail[r] += loss[r][s] / 10.0;
  }
  const double tail_rel = fabs(tail[1] - tail[0]) / tail[0];
  CHECK_MSG(tail_rel <= 0.03, "bf16 mean loss of the last 10 steps %.5f, fp32 %.5f (%.2f%%)",
            tail[1], tail[0], 100 * tail_rel);
  CHECK_MSG(worst <= 0.10, "bf16 loss curve left the fp32 one by %.2f%%", 100 * worst);
  CHECK_MSG(tail[1] < 0.8 * loss[1][0], "bf16 did not learn: %.5f -> %.5f", loss[1][0], tail[1]);
  printf("training, %zu steps: loss fp32 %.5f -> %.5f, bf16 %.5f -> %.5f (means of the last 10 "
         "steps, %.2f%% apart); largest step-wise relative difference %.2f%%\n",
         steps, loss[0][0], tail[0], loss[1][0], tail[1], 100 * tail_rel, 100 * worst);
  tfree_all();
}

int main(void)
{
  if (test_bf16_missing("test_tokenizer_bf16"))
    return TEST_SKIP;
  test_switching();
  test_dalle_forward();
  test_training();
  return test_summary("test_tokenizer_bf16");
}
