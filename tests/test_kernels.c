/* Unit tests of core/ kernels: every fast kernel against its naive twin on odd shapes (and on
 * shapes large enough to take the OpenMP paths), accumulate-into-d* and NULL-skip semantics,
 * and the kernels without a twin against loops written here (in double where it matters).
 * The relative position index is checked against the spec's test vectors. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "kernels.h"
#include "rng.h"
#include "testing.h"




#define TOL 1e-5

/* ---- linear and strided bias ---- */

static void test_linear(size_t N, size_t C, size_t OC, int with_bias)
{
  char label[128];
  float *inp = randn(N * C, 1.0f), *w = randn(OC * C, 0.5f);
  float *b = with_bias ? randn(OC, 1.0f) : NULL;
  float *out = zeros(N * OC), *ref = zeros(N * OC);
  beit_linear_forward(out, inp, w, b, N, C, OC);
  beit_linear_forward_naive(ref, inp, w, b, N, C, OC);
  snprintf(label, sizeof label, "linear fwd N=%zu C=%zu OC=%zu bias=%d", N, C, OC, with_bias);
  check_close(label, out, ref, N * OC, TOL);

  /* backward accumulates: start both from the same non-zero gradients */
  float *dout = randn(N * OC, 1.0f);
  float *dinp = randn(N * C, 1.0f), *dw = randn(OC * C, 1.0f), *db = randn(OC, 1.0f);
  float *dinp_r = tdup(dinp, N * C), *dw_r = tdup(dw, OC * C), *db_r = tdup(db, OC);
  beit_linear_backward(dinp, dw, db, dout, inp, w, N, C, OC);
  beit_linear_backward_naive(dinp_r, dw_r, db_r, dout, inp, w, N, C, OC);
  snprintf(label, sizeof label, "linear dinp N=%zu C=%zu OC=%zu", N, C, OC);
  check_close(label, dinp, dinp_r, N * C, TOL);
  snprintf(label, sizeof label, "linear dweight N=%zu C=%zu OC=%zu", N, C, OC);
  check_close(label, dw, dw_r, OC * C, TOL);
  snprintf(label, sizeof label, "linear dbias N=%zu C=%zu OC=%zu", N, C, OC);
  check_close(label, db, db_r, OC, TOL);

  /* NULL skips: only dweight requested */
  float *dw2 = zeros(OC * C), *dw2_r = zeros(OC * C);
  beit_linear_backward(NULL, dw2, NULL, dout, inp, w, N, C, OC);
  beit_linear_backward_naive(NULL, dw2_r, NULL, dout, inp, w, N, C, OC);
  snprintf(label, sizeof label, "linear dweight only N=%zu C=%zu OC=%zu", N, C, OC);
  check_close(label, dw2, dw2_r, OC * C, TOL);
}

static void test_bias(size_t N, size_t C, size_t ld)
{
  float *out = randn(N * ld, 1.0f), *orig = tdup(out, N * ld), *bias = randn(C, 1.0f);
  beit_bias_forward(out, bias, N, C, ld);
  int ok = 1;
  for (size_t n = 0; n < N; n++)
    for (size_t c = 0; c < ld; c++) {
      float want = orig[n * ld + c] + (c < C ? bias[c] : 0.0f);
      ok &= out[n * ld + c] == want;
    }
  CHECK_MSG(ok, "bias forward N=%zu C=%zu ld=%zu", N, C, ld);
  float *db = randn(C, 1.0f), *want = zeros(C);
  for (size_t c = 0; c < C; c++) {
    double s = db[c];
    for (size_t n = 0; n < N; n++)
      s += orig[n * ld + c];
    want[c] = (float)s;
  }
  beit_bias_backward(db, orig, N, C, ld);
  check_close("bias backward", db, want, C, TOL);
}

/* ---- layernorm ---- */

/* got_h must be exactly the bf16 rounding of want (round to nearest even). */
static void check_bf16_rounding(const char *label, const uint16_t *got_h, const float *want,
                                size_t n)
{
  size_t bad = 0;
  for (size_t i = 0; i < n; i++)
    bad += got_h[i] != beit_bf16_round(want[i]);
  CHECK_MSG(bad == 0, "%s: %zu of %zu values are not the rounded float32 output", label, bad, n);
}

/* The fused residual + LayerNorm forward: bitwise beit_residual_forward then the LayerNorm
 * (float32 and bf16 outputs), with LayerScale and DropPath scales and without; and with a bf16
 * branch, bitwise beit_residual_forward_bf16 (which is beit_residual_forward on its values). */
static void test_residual_layernorm(size_t B, size_t T, size_t D)
{
  size_t n = B * T * D;
  float *x = randn(n, 1.0f), *branch = randn(n, 1.0f), *gamma = randn(D, 0.5f);
  float *s = randn(B, 1.0f), *w = randn(D, 1.0f), *b = randn(D, 1.0f);
  uint16_t *branch_h = talloc(n * sizeof *branch_h);
  beit_to_bf16(branch_h, branch, n);
  for (int variant = 0; variant < 4; variant++) {
    const float *g = variant & 1 ? gamma : NULL, *sc = variant & 1 ? s : NULL;
    const int h = variant >= 2;
    float *y = zeros(n), *ln = zeros(n), *mean = zeros(B * T), *rstd = zeros(B * T);
    float *y_r = zeros(n), *ln_r = zeros(n), *mean_r = zeros(B * T), *rstd_r = zeros(B * T);
    uint16_t *ln_h = talloc(n * sizeof *ln_h);
    if (h) {
      float *rounded = zeros(n), *y_rr = zeros(n);
      beit_from_bf16(rounded, branch_h, n);
      beit_residual_forward(y_rr, x, rounded, g, sc, B, T, D);
      beit_residual_forward_bf16(y_r, x, branch_h, g, sc, B, T, D);
      CHECK_MSG(!memcmp(y_r, y_rr, n * sizeof *y_r), "residual fwd bf16 branch differs");
    } else {
      beit_residual_forward(y_r, x, branch, g, sc, B, T, D);
    }
    beit_layernorm_forward(ln_r, mean_r, rstd_r, y_r, w, b, 1e-6f, B * T, D);
    const float *br = h ? NULL : branch;
    const uint16_t *br_h = h ? branch_h : NULL;
    beit_residual_layernorm_forward(y, ln, NULL, mean, rstd, x, br, br_h, g, sc, w, b, 1e-6f, B,
                                    T, D);
    CHECK_MSG(!memcmp(y, y_r, n * sizeof *y) && !memcmp(ln, ln_r, n * sizeof *ln) &&
                  !memcmp(mean, mean_r, B * T * sizeof *mean) &&
                  !memcmp(rstd, rstd_r, B * T * sizeof *rstd),
              "residual + layernorm fwd differs from the two kernels (B=%zu T=%zu D=%zu, %d)", B,
              T, D, variant);
    memset(y, 0, n * sizeof *y);
    beit_residual_layernorm_forward(y, NULL, ln_h, mean, rstd, x, br, br_h, g, sc, w, b, 1e-6f,
                                    B, T, D);
    CHECK(!memcmp(y, y_r, n * sizeof *y));
    check_bf16_rounding("residual + layernorm fwd bf16", ln_h, ln_r, n);
  }
}

static void test_layernorm(size_t N, size_t C)
{
  char label[128];
  float *inp = randn(N * C, 2.0f), *w = randn(C, 1.0f), *b = randn(C, 1.0f);
  for (size_t i = 0; i < N * C; i++)
    inp[i] += 3.0f; /* an offset mean exercises the two-pass variance */
  float *out = zeros(N * C), *mean = zeros(N), *rstd = zeros(N);
  float *out_r = zeros(N * C), *mean_r = zeros(N), *rstd_r = zeros(N);
  beit_layernorm_forward(out, mean, rstd, inp, w, b, 1e-6f, N, C);
  beit_layernorm_forward_naive(out_r, mean_r, rstd_r, inp, w, b, 1e-6f, N, C);
  snprintf(label, sizeof label, "layernorm fwd N=%zu C=%zu", N, C);
  check_close(label, out, out_r, N * C, TOL);
  check_close("layernorm mean", mean, mean_r, N, TOL);
  check_close("layernorm rstd", rstd, rstd_r, N, TOL);
  /* the bf16-output variant is the float32 output rounded, bit for bit */
  uint16_t *out_h = talloc(N * C * sizeof *out_h);
  float *mean_h = zeros(N), *rstd_h = zeros(N);
  beit_layernorm_forward_bf16(out_h, mean_h, rstd_h, inp, w, b, 1e-6f, N, C);
  check_bf16_rounding("layernorm fwd bf16", out_h, out, N * C);
  CHECK(!memcmp(mean_h, mean, N * sizeof *mean) && !memcmp(rstd_h, rstd, N * sizeof *rstd));

  float *dout = randn(N * C, 1.0f);
  float *dinp = randn(N * C, 1.0f), *dw = randn(C, 1.0f), *db = randn(C, 1.0f);
  float *dinp_r = tdup(dinp, N * C), *dw_r = tdup(dw, C), *db_r = tdup(db, C);
  beit_layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
  beit_layernorm_backward_naive(dinp_r, dw_r, db_r, dout, inp, w, mean_r, rstd_r, N, C);
  snprintf(label, sizeof label, "layernorm dinp N=%zu C=%zu", N, C);
  check_close(label, dinp, dinp_r, N * C, 1e-4);
  snprintf(label, sizeof label, "layernorm dweight N=%zu C=%zu", N, C);
  check_close(label, dw, dw_r, C, TOL);
  snprintf(label, sizeof label, "layernorm dbias N=%zu C=%zu", N, C);
  check_close(label, db, db_r, C, TOL);

  /* from a bf16 output gradient: the float32 kernel on its values (the same sums, vectorised
   * alike or not) */
  uint16_t *dout_h = talloc(N * C * sizeof *dout_h);
  beit_to_bf16(dout_h, dout, N * C);
  beit_from_bf16(dout, dout_h, N * C);
  float *dinp_b = tdup(dinp, N * C), *dw_b = tdup(dw, C), *db_b = tdup(db, C);
  beit_layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
  beit_layernorm_backward_bf16(dinp_b, dw_b, db_b, dout_h, inp, w, mean, rstd, N, C);
  snprintf(label, sizeof label, "layernorm bwd bf16 N=%zu C=%zu", N, C);
  check_close(label, dinp_b, dinp, N * C, 1e-5);
  check_close(label, dw_b, dw, C, 1e-6);
  check_close(label, db_b, db, C, 1e-6);

  float *dw2 = zeros(C), *dw2_r = zeros(C);
  beit_layernorm_backward(NULL, dw2, NULL, dout, inp, w, mean, rstd, N, C);
  beit_layernorm_backward_naive(NULL, dw2_r, NULL, dout, inp, w, mean_r, rstd_r, N, C);
  check_close("layernorm dweight only", dw2, dw2_r, C, TOL);
}

/* ---- gelu, softmax, argmax ---- */

static void test_gelu(size_t n)
{
  float *x = zeros(n);
  for (size_t i = 0; i < n; i++) /* a sweep over [-10, 10] plus noise */
    x[i] = -10.0f + 20.0f * (float)i / (float)(n > 1 ? n - 1 : 1) +
           0.01f * (float)beit_rng_normal(&test_rng);
  float *y = zeros(n), *y_r = zeros(n);
  beit_gelu_forward(y, x, n);
  beit_gelu_forward_naive(y_r, x, n);
  check_close("gelu fwd", y, y_r, n, 1e-6);
  int ok = 1; /* pointwise: the erf approximation error is 1.5e-7 absolute */
  for (size_t i = 0; i < n; i++)
    ok &= fabsf(y[i] - y_r[i]) <= 2e-7f * (1.0f + fabsf(x[i]));
  CHECK_MSG(ok, "gelu fwd pointwise n=%zu", n);
  uint16_t *x_h = talloc(n * sizeof *x_h), *y_h = talloc(n * sizeof *y_h);
  beit_to_bf16(x_h, x, n); /* the bf16 kernel reads bf16 (fc1's rounded result) */
  float *x_r = zeros(n);
  beit_from_bf16(x_r, x_h, n);
  beit_gelu_forward(y, x_r, n);
  beit_gelu_forward_bf16(y_h, NULL, x_h, n);
  check_bf16_rounding("gelu fwd bf16", y_h, y, n);
  float *dout = randn(n, 1.0f), *dx = randn(n, 1.0f), *dx_r = tdup(dx, n);
  beit_gelu_backward(dx, dout, x, n);
  beit_gelu_backward_naive(dx_r, dout, x, n);
  check_close("gelu bwd", dx, dx_r, n, 1e-6);
}

/* The mixed-precision GELU forward of training, on bf16 input: the same rounded outputs as
 * without the derivative, and the derivative, written over the input, within bfloat16 rounding
 * (half an ulp, 2^-8 relative) of the naive libm float32 one (the erf approximation adds 1e-6). */
static void test_gelu_derivative_bf16(size_t n)
{
  float *x = randn(n, 2.0f), *ones = zeros(n), *d = zeros(n);
  uint16_t *x_h = talloc(n * sizeof *x_h), *y_h = talloc(n * sizeof *y_h);
  uint16_t *y2_h = talloc(n * sizeof *y2_h);
  beit_to_bf16(x_h, x, n);
  beit_from_bf16(x, x_h, n);
  for (size_t i = 0; i < n; i++)
    ones[i] = 1.0f;
  beit_gelu_backward_naive(d, ones, x, n);
  beit_gelu_forward_bf16(y_h, NULL, x_h, n);
  beit_gelu_forward_bf16(y2_h, x_h, x_h, n); /* in place, as the encoder runs it */
  CHECK_MSG(!memcmp(y_h, y2_h, n * sizeof *y_h),
            "gelu fwd bf16: outputs differ with the derivative");
  size_t bad = 0;
  for (size_t i = 0; i < n; i++)
    bad += !(fabsf(beit_bf16_value(x_h[i]) - d[i]) <= 0x1p-8f * fabsf(d[i]) + 1e-6f);
  CHECK_MSG(bad == 0, "gelu derivative bf16: %zu of %zu values off (n=%zu)", bad, n, n);
}

/* Rounding with the column sums in the same pass: the rounding and beit_bias_backward's sums. */
static void test_to_bf16_colsum(size_t N, size_t C)
{
  float *x = randn(N * C, 3.0f), *acc = randn(C, 1.0f), *acc_r = tdup(acc, C);
  uint16_t *h = talloc(N * C * sizeof *h);
  beit_to_bf16_colsum(h, acc, x, N, C);
  beit_bias_backward(acc_r, x, N, C, C);
  check_bf16_rounding("to_bf16_colsum", h, x, N * C);
  CHECK_MSG(!memcmp(acc, acc_r, C * sizeof *acc), "to_bf16_colsum: sums differ (N=%zu C=%zu)", N,
            C);
}

static void test_softmax(size_t N, size_t C, float scale)
{
  char label[128];
  float *x = randn(N * C, scale);
  float *y = zeros(N * C), *y_r = zeros(N * C);
  beit_softmax_forward(y, x, N, C);
  beit_softmax_forward_naive(y_r, x, N, C);
  snprintf(label, sizeof label, "softmax fwd N=%zu C=%zu scale=%g", N, C, scale);
  check_close(label, y, y_r, N * C, 1e-5);
  int ok = 1;
  for (size_t n = 0; n < N; n++) {
    double s = 0.0;
    for (size_t c = 0; c < C; c++)
      s += y[n * C + c];
    ok &= fabs(s - 1.0) < 1e-5;
  }
  CHECK_MSG(ok, "softmax rows sum to 1 (N=%zu C=%zu)", N, C);
  float *dout = randn(N * C, 1.0f), *dx = randn(N * C, 1.0f), *dx_r = tdup(dx, N * C);
  beit_softmax_backward(dx, dout, y, N, C);
  beit_softmax_backward_naive(dx_r, dout, y_r, N, C);
  snprintf(label, sizeof label, "softmax bwd N=%zu C=%zu", N, C);
  check_close(label, dx, dx_r, N * C, 1e-5);
  /* in place */
  float *z = tdup(x, N * C);
  beit_softmax_forward(z, z, N, C);
  check_close("softmax in place", z, y, N * C, 0.0);
}

static void test_softmax_extremes(void)
{
  float x[8] = {1000.0f, 999.0f, -1000.0f, 0.0f, -87.5f, -200.0f, -200.0f, -199.0f};
  float y[8], y_r[8];
  beit_softmax_forward(y, x, 2, 4);
  beit_softmax_forward_naive(y_r, x, 2, 4);
  int finite = 1;
  for (int i = 0; i < 8; i++)
    finite &= isfinite(y[i]);
  CHECK(finite);
  check_close("softmax large logits", y, y_r, 8, 1e-6);
}

static void test_argmax(void)
{
  float x[12] = {1, 3, 3, 2, /* tie -> first */ -1, -5, -1, -2, /* tie at 0 */ 0, 0, 0, 7};
  int32_t out[3];
  beit_argmax_rows(out, x, 3, 4);
  CHECK(out[0] == 1 && out[1] == 0 && out[2] == 3);
  size_t N = 257, C = 301; /* parallel path */
  float *big = randn(N * C, 1.0f);
  int32_t *idx = talloc(N * sizeof *idx);
  beit_argmax_rows(idx, big, N, C);
  int ok = 1;
  for (size_t n = 0; n < N; n++)
    for (size_t c = 0; c < C; c++)
      ok &= big[n * C + c] <= big[n * C + (size_t)idx[n]];
  CHECK(ok);
}

/* ---- attention ---- */

static void test_attention(size_t B, size_t T, size_t D, size_t nH, int with_bias)
{
  char label[160];
  size_t n_qkv = B * T * 3 * D, n_out = B * T * D, n_p = B * nH * T * T, n_b = nH * T * T;
  float *qkv = randn(n_qkv, 1.0f), *bias = with_bias ? randn(n_b, 1.0f) : NULL;
  float *out = zeros(n_out), *probs = zeros(n_p), *out_r = zeros(n_out), *probs_r = zeros(n_p);
  beit_attention_forward(out, probs, qkv, bias, B, T, D, nH);
  beit_attention_forward_naive(out_r, probs_r, qkv, bias, B, T, D, nH);
  snprintf(label, sizeof label, "attention out B=%zu T=%zu D=%zu nH=%zu bias=%d", B, T, D, nH,
           with_bias);
  check_close(label, out, out_r, n_out, TOL);
  snprintf(label, sizeof label, "attention probs B=%zu T=%zu D=%zu nH=%zu", B, T, D, nH);
  check_close(label, probs, probs_r, n_p, TOL);

  float *dout = randn(n_out, 1.0f), *scratch = zeros(beit_attention_scratch_floats(B, T, nH));
  float *dqkv = randn(n_qkv, 1.0f), *dbias = randn(n_b, 1.0f);
  float *dqkv_r = tdup(dqkv, n_qkv), *dbias_r = tdup(dbias, n_b);
  beit_attention_backward(dqkv, dbias, scratch, dout, qkv, probs, B, T, D, nH);
  beit_attention_backward_naive(dqkv_r, dbias_r, dout, qkv, probs, B, T, D, nH);
  snprintf(label, sizeof label, "attention dqkv B=%zu T=%zu D=%zu nH=%zu", B, T, D, nH);
  check_close(label, dqkv, dqkv_r, n_qkv, 1e-4);
  snprintf(label, sizeof label, "attention dbias B=%zu T=%zu D=%zu nH=%zu", B, T, D, nH);
  check_close(label, dbias, dbias_r, n_b, 1e-4);

  /* dbias NULL, and dqkv NULL */
  float *dqkv2 = zeros(n_qkv), *dqkv2_r = zeros(n_qkv);
  beit_attention_backward(dqkv2, NULL, scratch, dout, qkv, probs, B, T, D, nH);
  beit_attention_backward_naive(dqkv2_r, NULL, dout, qkv, probs, B, T, D, nH);
  check_close("attention dqkv (dbias NULL)", dqkv2, dqkv2_r, n_qkv, 1e-4);
  float *dbias2 = zeros(n_b), *dbias2_r = zeros(n_b);
  beit_attention_backward(NULL, dbias2, scratch, dout, qkv, probs, B, T, D, nH);
  beit_attention_backward_naive(NULL, dbias2_r, dout, qkv, probs, B, T, D, nH);
  check_close("attention dbias (dqkv NULL)", dbias2, dbias2_r, n_b, 1e-4);
}

/* ---- residual, drop path, meanpool, gather, mask tokens, patchify ---- */

static void test_residual(size_t B, size_t T, size_t D, int with_gamma, int with_scale)
{
  char label[160];
  size_t n = B * T * D;
  float *x = randn(n, 1.0f), *br = randn(n, 1.0f), *gamma = with_gamma ? randn(D, 0.5f) : NULL;
  float *scale = NULL;
  if (with_scale) {
    scale = zeros(B);
    for (size_t b = 0; b < B; b++)
      scale[b] = b % 3 == 1 ? 0.0f : 1.0f / 0.9f;
  }
  float *out = zeros(n), *out_r = zeros(n);
  beit_residual_forward(out, x, br, gamma, scale, B, T, D);
  beit_residual_forward_naive(out_r, x, br, gamma, scale, B, T, D);
  snprintf(label, sizeof label, "residual fwd B=%zu T=%zu D=%zu g=%d s=%d", B, T, D, with_gamma,
           with_scale);
  check_close(label, out, out_r, n, TOL);
  float *inplace = tdup(x, n);
  beit_residual_forward(inplace, inplace, br, gamma, scale, B, T, D);
  check_close("residual fwd in place", inplace, out, n, 0.0);

  float *dout = randn(n, 1.0f);
  float *dx = randn(n, 1.0f), *dbr = randn(n, 1.0f), *dg = randn(D, 1.0f);
  float *dx_r = tdup(dx, n), *dbr_r = tdup(dbr, n), *dg_r = tdup(dg, D);
  beit_residual_backward(dx, dbr, with_gamma ? dg : NULL, dout, br, gamma, scale, B, T, D);
  beit_residual_backward_naive(dx_r, dbr_r, with_gamma ? dg_r : NULL, dout, br, gamma, scale, B,
                               T, D);
  check_close("residual dx", dx, dx_r, n, TOL);
  check_close("residual dbranch", dbr, dbr_r, n, TOL);
  snprintf(label, sizeof label, "residual dgamma B=%zu T=%zu D=%zu s=%d", B, T, D, with_scale);
  check_close(label, dg, dg_r, D, TOL);

  /* the fused bf16 branch backward (from the saved bf16 branch): residual backward on its values
   * + rounding with column sums, bit for bit */
  float *zb = zeros(n), *db = randn(D, 1.0f), *dg2 = randn(D, 1.0f);
  float *db_r = tdup(db, D), *dg2_r = tdup(dg2, D), *br_r = zeros(n);
  uint16_t *h = talloc(n * sizeof *h), *h_r = talloc(n * sizeof *h_r);
  uint16_t *br_h = talloc(n * sizeof *br_h);
  beit_to_bf16(br_h, br, n);
  beit_from_bf16(br_r, br_h, n);
  beit_residual_backward(NULL, zb, with_gamma ? dg2_r : NULL, dout, br_r, gamma, scale, B, T, D);
  beit_to_bf16_colsum(h_r, db_r, zb, B * T, D);
  beit_residual_branch_backward_bf16(h, db, with_gamma ? dg2 : NULL, dout, br_h, gamma, scale, B,
                                     T, D);
  int same = 1; /* by value: a dropped sample's 0 * -x is -0 here, +0 after adding to a zero */
  for (size_t i = 0; i < n; i++)
    same &= beit_bf16_value(h[i]) == beit_bf16_value(h_r[i]);
  CHECK_MSG(same && !memcmp(db, db_r, D * sizeof *db) && !memcmp(dg2, dg2_r, D * sizeof *dg2),
            "residual branch backward bf16 differs (B=%zu T=%zu D=%zu g=%d s=%d)", B, T, D,
            with_gamma, with_scale);
}

static void test_drop_path_scales(void)
{
  const double u[6] = {0.1, 0.2, 0.26, 0.74, 0.76, 0.999};
  float s[6];
  beit_drop_path_scales(s, u, 0.0f, 6);
  CHECK(s[0] == 1.0f && s[3] == 1.0f && s[5] == 1.0f);
  beit_drop_path_scales(s, u, 0.25f, 6); /* keep 0.75: kept iff u >= 0.25 */
  const float k = (float)(1.0 / 0.75);
  CHECK(s[0] == 0.0f && s[1] == 0.0f && s[2] == k && s[3] == k && s[4] == k && s[5] == k);
  beit_drop_path_scales(s, u, 1.0f, 6);
  CHECK(s[0] == 0.0f && s[5] == 0.0f);
}

static void test_meanpool(size_t B, size_t T, size_t D)
{
  float *x = randn(B * T * D, 1.0f), *out = zeros(B * D), *want = zeros(B * D);
  for (size_t b = 0; b < B; b++)
    for (size_t d = 0; d < D; d++) {
      double s = 0.0;
      for (size_t t = 1; t < T; t++)
        s += x[(b * T + t) * D + d];
      want[b * D + d] = (float)(s / (double)(T - 1));
    }
  beit_meanpool_forward(out, x, B, T, D);
  check_close("meanpool fwd", out, want, B * D, TOL);
  float *dout = randn(B * D, 1.0f), *dx = randn(B * T * D, 1.0f), *dx_r = tdup(dx, B * T * D);
  for (size_t b = 0; b < B; b++)
    for (size_t t = 1; t < T; t++)
      for (size_t d = 0; d < D; d++)
        dx_r[(b * T + t) * D + d] += (float)(dout[b * D + d] / (double)(T - 1));
  beit_meanpool_backward(dx, dout, B, T, D);
  check_close("meanpool bwd", dx, dx_r, B * T * D, TOL);
}

static void test_gather(size_t R, size_t M, size_t D)
{
  float *inp = randn(R * D, 1.0f), *out = zeros(M * D);
  int32_t *rows = talloc(M * sizeof *rows);
  for (size_t m = 0; m < M; m++)
    rows[m] = (int32_t)beit_rng_int(&test_rng, 0, (int64_t)R - 1);
  rows[M - 1] = rows[0]; /* at least one repeat */
  beit_gather_rows_forward(out, inp, rows, M, D);
  int ok = 1;
  for (size_t m = 0; m < M; m++)
    ok &= memcmp(out + m * D, inp + (size_t)rows[m] * D, D * sizeof *out) == 0;
  CHECK_MSG(ok, "gather fwd R=%zu M=%zu D=%zu", R, M, D);
  float *dout = randn(M * D, 1.0f), *dinp = randn(R * D, 1.0f);
  double *acc = talloc(R * D * sizeof *acc);
  for (size_t i = 0; i < R * D; i++)
    acc[i] = dinp[i];
  for (size_t m = 0; m < M; m++)
    for (size_t d = 0; d < D; d++)
      acc[(size_t)rows[m] * D + d] += dout[m * D + d];
  float *want = zeros(R * D);
  for (size_t i = 0; i < R * D; i++)
    want[i] = (float)acc[i];
  beit_gather_rows_backward(dinp, dout, rows, M, D);
  check_close("gather bwd (repeated rows)", dinp, want, R * D, TOL);
}

static void test_mask_tokens(size_t B, size_t N, size_t D)
{
  float *emb = randn(B * N * D, 1.0f), *orig = tdup(emb, B * N * D), *token = randn(D, 1.0f);
  uint8_t *mask = talloc(B * N);
  for (size_t i = 0; i < B * N; i++)
    mask[i] = beit_rng_uniform(&test_rng) < 0.4;
  mask[0] = 1;
  beit_mask_tokens_forward(emb, token, mask, B, N, D);
  int ok = 1;
  for (size_t r = 0; r < B * N; r++)
    ok &= memcmp(emb + r * D, mask[r] ? token : orig + r * D, D * sizeof *emb) == 0;
  CHECK_MSG(ok, "mask tokens fwd B=%zu N=%zu D=%zu", B, N, D);
  float *demb = randn(B * N * D, 1.0f), *demb0 = tdup(demb, B * N * D);
  float *dtok = randn(D, 1.0f), *want = zeros(D);
  for (size_t d = 0; d < D; d++) {
    double s = dtok[d];
    for (size_t r = 0; r < B * N; r++)
      if (mask[r])
        s += demb0[r * D + d];
    want[d] = (float)s;
  }
  beit_mask_tokens_backward(demb, dtok, mask, B, N, D);
  check_close("mask tokens dtoken", dtok, want, D, TOL);
  ok = 1;
  for (size_t r = 0; r < B * N; r++)
    for (size_t d = 0; d < D; d++)
      ok &= demb[r * D + d] == (mask[r] ? 0.0f : demb0[r * D + d]);
  CHECK_MSG(ok, "mask tokens demb rows zeroed B=%zu N=%zu D=%zu", B, N, D);
}

static void test_patchify(size_t B, size_t C, size_t H, size_t W, size_t P)
{
  size_t gh = H / P, gw = W / P, K = C * P * P;
  float *img = randn(B * C * H * W, 1.0f), *patches = zeros(B * gh * gw * K);
  beit_patchify(patches, img, B, C, H, W, P);
  int ok = 1;
  for (size_t b = 0; b < B; b++)
    for (size_t gy = 0; gy < gh; gy++)
      for (size_t gx = 0; gx < gw; gx++)
        for (size_t c = 0; c < C; c++)
          for (size_t ky = 0; ky < P; ky++)
            for (size_t kx = 0; kx < P; kx++) {
              float got = patches[((b * gh + gy) * gw + gx) * K + (c * P + ky) * P + kx];
              float want = img[((b * C + c) * H + gy * P + ky) * W + gx * P + kx];
              ok &= got == want;
            }
  CHECK_MSG(ok, "patchify B=%zu C=%zu H=%zu W=%zu P=%zu", B, C, H, W, P);
}

/* ---- losses ---- */

static void test_cross_entropy(size_t M, size_t V, float smoothing, float scale)
{
  char label[128];
  float *x = randn(M * V, scale), *probs = zeros(M * V);
  int32_t *t = talloc(M * sizeof *t);
  long want_correct = 0;
  for (size_t r = 0; r < M; r++) {
    t[r] = (int32_t)beit_rng_int(&test_rng, 0, (int64_t)V - 1);
    if (r % 2 == 0) /* make half the rows right */
      x[r * V + (size_t)t[r]] = 10.0f * scale + 1.0f;
  }
  double loss = 0.0;
  float *p_r = zeros(M * V);
  for (size_t r = 0; r < M; r++) {
    const float *xr = x + r * V;
    size_t best = 0;
    double mx = xr[0];
    for (size_t c = 1; c < V; c++) {
      if (xr[c] > xr[best])
        best = c;
      if (xr[c] > mx)
        mx = xr[c];
    }
    want_correct += best == (size_t)t[r];
    double s = 0.0;
    for (size_t c = 0; c < V; c++)
      s += exp(xr[c] - mx);
    double lse = mx + log(s);
    for (size_t c = 0; c < V; c++) {
      double q = (c == (size_t)t[r] ? 1.0 - smoothing : 0.0) + smoothing / (double)V;
      loss -= q * (xr[c] - lse);
      p_r[r * V + c] = (float)exp(xr[c] - lse);
    }
  }
  loss /= (double)M;
  long correct = -1;
  double got = beit_cross_entropy_forward(probs, &correct, x, t, smoothing, M, V);
  snprintf(label, sizeof label, "cross-entropy M=%zu V=%zu s=%g scale=%g", M, V, smoothing,
           scale);
  CHECK_MSG(isfinite(got) && fabs(got - loss) <= 1e-5 * fmax(1.0, fabs(loss)),
            "%s: got %.9g want %.9g", label, got, loss);
  CHECK_MSG(correct == want_correct, "%s: correct %ld want %ld", label, correct, want_correct);
  check_close("cross-entropy probs", probs, p_r, M * V, 1e-5);

  const float dloss = 0.7f;
  float *dx = randn(M * V, 1.0f), *want = tdup(dx, M * V);
  for (size_t r = 0; r < M; r++)
    for (size_t c = 0; c < V; c++) {
      double q = (c == (size_t)t[r] ? 1.0 - smoothing : 0.0) + smoothing / (double)V;
      want[r * V + c] += (float)(dloss * ((double)p_r[r * V + c] - q) / (double)M);
    }
  beit_cross_entropy_backward(dx, probs, t, smoothing, dloss, M, V);
  check_close("cross-entropy bwd", dx, want, M * V, 1e-5);
}

static void test_bce(size_t N, size_t C, float scale)
{
  float *x = randn(N * C, scale), *t = zeros(N * C);
  for (size_t i = 0; i < N * C; i++)
    t[i] = i % 5 == 0 ? 0.3f : (float)(beit_rng_uniform(&test_rng) < 0.5);
  x[0] = 100.0f;
  t[0] = 0.0f; /* loss term 100: the naive log(1 - sigmoid) would be inf */
  double loss = 0.0;
  for (size_t i = 0; i < N * C; i++) {
    double sg = 1.0 / (1.0 + exp(-(double)x[i]));
    double l = i == 0 ? 100.0 : -(t[i] * log(sg) + (1.0 - t[i]) * log1p(-sg));
    loss += l;
  }
  loss /= (double)(N * C);
  double got = beit_bce_forward(x, t, N, C);
  CHECK_MSG(isfinite(got) && fabs(got - loss) <= 1e-6 * fmax(1.0, fabs(loss)),
            "bce N=%zu C=%zu: got %.9g want %.9g", N, C, got, loss);
  float *dx = randn(N * C, 1.0f), *want = tdup(dx, N * C);
  for (size_t i = 0; i < N * C; i++)
    want[i] += (float)(1.3 * (1.0 / (1.0 + exp(-(double)x[i])) - t[i]) / (double)(N * C));
  beit_bce_backward(dx, x, t, 1.3f, N, C);
  check_close("bce bwd", dx, want, N * C, 1e-5);
}

/* ---- relative position bias ---- */

static void test_relpos_index(void)
{
  const size_t T = 197;
  int32_t *idx = talloc(T * T * sizeof *idx);
  beit_relpos_index(idx, 14, 14);
  CHECK(idx[0 * T + 0] == 731);
  CHECK(idx[0 * T + 1] == 729);
  CHECK(idx[1 * T + 0] == 730);
  CHECK(idx[1 * T + 1] == 364);
  CHECK(idx[1 * T + 2] == 363);
  CHECK(idx[2 * T + 1] == 365);
  CHECK(idx[1 * T + 15] == 337);
  CHECK(idx[15 * T + 1] == 391);
  CHECK(idx[1 * T + 196] == 0);
  CHECK(idx[196 * T + 1] == 728);
  /* patch pairs: offsets negate under transposition around the centre 364, all in [0, 729) */
  int ok = 1;
  for (size_t i = 1; i < T; i++)
    for (size_t j = 1; j < T; j++)
      ok &= idx[i * T + j] + idx[j * T + i] == 2 * 364 && idx[i * T + j] >= 0 &&
            idx[i * T + j] < 729;
  CHECK_MSG(ok, "relpos 14x14 symmetry and range");

  /* non-square 2x3 grid: T = 7, R = 3 * 5 + 3 = 18; patch p = h * 3 + w */
  int32_t small[49];
  beit_relpos_index(small, 2, 3);
  CHECK(small[0] == 17);
  CHECK(small[0 * 7 + 4] == 15 && small[5 * 7 + 0] == 16);
  CHECK(small[1 * 7 + 1] == 7);  /* (0,0)-(0,0): (0+1)*5 + (0+2) */
  CHECK(small[1 * 7 + 6] == 0);  /* (0,0)-(1,2): (0-1+1)*5 + (0-2+2) */
  CHECK(small[6 * 7 + 1] == 14); /* (1,2)-(0,0): (1+1)*5 + (2+2) */
  CHECK(small[2 * 7 + 4] == 3);  /* (0,1)-(1,0): (0-1+1)*5 + (1-0+2) */
  CHECK(small[4 * 7 + 2] == 11); /* (1,0)-(0,1): (1+1)*5 + (0-1+2) */
  CHECK(small[3 * 7 + 2] == 8);  /* (0,2)-(0,1): (0+1)*5 + (1+2) */
}

static void test_relpos(size_t Wh, size_t Ww, size_t nH)
{
  size_t T = Wh * Ww + 1, R = (2 * Wh - 1) * (2 * Ww - 1) + 3;
  int32_t *idx = talloc(T * T * sizeof *idx);
  beit_relpos_index(idx, Wh, Ww);
  float *table = randn(R * nH, 1.0f), *bias = zeros(nH * T * T);
  beit_relpos_forward(bias, table, idx, T, nH);
  int ok = 1;
  for (size_t h = 0; h < nH; h++)
    for (size_t ij = 0; ij < T * T; ij++)
      ok &= bias[h * T * T + ij] == table[(size_t)idx[ij] * nH + h];
  CHECK_MSG(ok, "relpos fwd %zux%zu nH=%zu", Wh, Ww, nH);
  float *dbias = randn(nH * T * T, 1.0f), *dtable = randn(R * nH, 1.0f);
  double *acc = talloc(R * nH * sizeof *acc);
  for (size_t i = 0; i < R * nH; i++)
    acc[i] = dtable[i];
  for (size_t h = 0; h < nH; h++)
    for (size_t ij = 0; ij < T * T; ij++)
      acc[(size_t)idx[ij] * nH + h] += dbias[h * T * T + ij];
  float *want = zeros(R * nH);
  for (size_t i = 0; i < R * nH; i++)
    want[i] = (float)acc[i];
  beit_relpos_backward(dtable, dbias, idx, T, nH);
  check_close("relpos bwd", dtable, want, R * nH, TOL);
}

/* The non-GEMM reductions use fixed partitions: results must be bitwise equal for any number
 * of threads (OpenBLAS's own GEMM partitioning is not ours to promise). */
static void test_thread_determinism(void)
{
  const size_t N = 523, C = 301, B = 3, T = 41, D = 32, nH = 2;
  float *x = randn(N * C, 1.0f), *w = randn(C, 1.0f), *dy = randn(N * C, 1.0f);
  float *mean = zeros(N), *rstd = zeros(N), *y = zeros(N * C), *probs = zeros(N * C);
  int32_t *t = talloc(N * sizeof *t), *rows = talloc(N * sizeof *rows);
  for (size_t i = 0; i < N; i++) {
    t[i] = (int32_t)beit_rng_int(&test_rng, 0, (int64_t)C - 1);
    rows[i] = (int32_t)beit_rng_int(&test_rng, 0, 9);
  }
  float *qkv = randn(B * T * 3 * D, 1.0f), *ab = randn(nH * T * T, 1.0f);
  float *ao = zeros(B * T * D), *ap = zeros(B * nH * T * T), *ado = randn(B * T * D, 1.0f);
  float *scr = zeros(beit_attention_scratch_floats(B, T, nH));
  float *res[2][6];
  double loss[2];
  int saved = omp_get_max_threads();
  for (int run = 0; run < 2; run++) {
    omp_set_num_threads(run ? 3 : 1);
    for (int k = 0; k < 6; k++)
      res[run][k] = zeros(N * C);
    beit_layernorm_forward(y, mean, rstd, x, w, w, 1e-6f, N, C);
    beit_layernorm_backward(res[run][0], res[run][1], res[run][2], dy, x, w, mean, rstd, N, C);
    loss[run] = beit_cross_entropy_forward(probs, NULL, x, t, 0.1f, N, C);
    beit_gather_rows_backward(res[run][3], dy, rows, N, C);
    beit_attention_forward(ao, ap, qkv, ab, B, T, D, nH);
    beit_attention_backward(res[run][4], res[run][5], scr, ado, qkv, ap, B, T, D, nH);
  }
  omp_set_num_threads(saved);
  int same = loss[0] == loss[1];
  for (int k = 0; k < 6; k++)
    same &= memcmp(res[0][k], res[1][k], N * C * sizeof(float)) == 0;
  CHECK_MSG(same, "1 and 3 threads give bitwise equal results");
}

int main(void)
{
  beit_rng_seed(&test_rng, 1234, 0, 0);

  test_linear(7, 13, 5, 1);
  test_linear(7, 13, 5, 0);
  test_linear(1, 1, 1, 1);
  test_linear(17, 33, 9, 1);
  test_linear(301, 67, 131, 1); /* parallel bias copy and column sums */
  test_bias(7, 5, 13);
  test_bias(211, 201, 603);

  test_gelu_derivative_bf16(37 * 131);
  test_gelu_derivative_bf16(300 * 768);
  test_to_bf16_colsum(37, 131);
  test_to_bf16_colsum(1576, 768);
  test_layernorm(7, 13);
  test_residual_layernorm(3, 11, 40);
  test_residual_layernorm(4, 197, 768);
  test_layernorm(5, 64);
  test_layernorm(3, 1);
  test_layernorm(301, 203);

  test_gelu(1001);
  test_gelu(100003);
  test_softmax(7, 13, 1.0f);
  test_softmax(11, 197, 3.0f);
  test_softmax(3, 1, 1.0f);
  test_softmax(301, 211, 10.0f);
  test_softmax_extremes();
  test_argmax();

  test_attention(2, 11, 15, 3, 1);
  test_attention(2, 11, 15, 3, 0);
  test_attention(1, 7, 8, 1, 1);
  test_attention(3, 5, 12, 4, 1);
  test_attention(2, 17, 32, 2, 1);
  test_attention(3, 37, 48, 4, 1);

  test_residual(2, 7, 13, 1, 1);
  test_residual(3, 7, 13, 1, 0);
  test_residual(3, 5, 13, 0, 1);
  test_residual(3, 5, 13, 0, 0);
  test_residual(5, 101, 131, 1, 1);
  test_residual(4, 50, 1100, 1, 1); /* more than one column chunk a thread */
  test_drop_path_scales();
  test_meanpool(3, 7, 13);
  test_meanpool(7, 101, 67);
  test_gather(9, 7, 13);
  test_gather(300, 501, 131);
  test_mask_tokens(2, 7, 13);
  test_mask_tokens(5, 101, 130);
  test_patchify(2, 3, 8, 12, 4);
  test_patchify(1, 2, 9, 7, 3); /* sizes not divisible by P: the remainder is dropped */
  test_patchify(3, 3, 64, 64, 16);

  test_cross_entropy(7, 13, 0.0f, 1.0f);
  test_cross_entropy(7, 13, 0.1f, 1.0f);
  test_cross_entropy(5, 11, 0.1f, 50.0f); /* p underflows for most classes */
  test_cross_entropy(101, 1031, 0.1f, 2.0f);
  test_bce(7, 13, 2.0f);
  test_bce(301, 401, 3.0f);

  test_relpos_index();
  test_relpos(2, 3, 3);
  test_relpos(14, 14, 4);
  test_relpos(24, 20, 2); /* 1836 table rows: the backward sums them in two chunks */
  test_thread_determinism();

  tfree_all();
  return test_summary("test_kernels");
}
