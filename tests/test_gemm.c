/* The matrix-product backend (core/gemm.h) against a plain double-precision product.
 *
 * float32 operands (OpenBLAS) must match the product of the same floats to fp32 accumulation
 * error; bfloat16 operands (oneDNN) must match the exact product of the bf16-ROUNDED inputs to
 * the same fp32-accumulation error: the only bf16 error allowed is the rounding of the operands,
 * so a kernel that dropped precision elsewhere (bf16 accumulation, bf16 output) fails. Every
 * transpose combination, alpha/beta, leading dimensions wider than the rows, and the batched
 * form with attention's (batch, head) strides; bfloat16 results are the float32 result rounded
 * once. Without bf16 on the machine the bf16 half says so
 * and checks that the precision policy refuses bf16 and defaults to fp32. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "beit/precision.h"
#include "gemm.h"
#include "testing.h"

#define TOL 2e-5 /* fp32 accumulation of K <= 200 products, relative to the largest output */

/* want (M, N) = alpha op(A) op(B) + beta C0 in double, from the values the kernel sees. */
static void reference(float *want, const float *a, size_t lda, int ta, const float *b, size_t ldb,
                      int tb, const float *c0, size_t ldc, size_t M, size_t N, size_t K,
                      float alpha, float beta)
{
  for (size_t i = 0; i < M; i++)
    for (size_t j = 0; j < N; j++) {
      double acc = 0;
      for (size_t k = 0; k < K; k++)
        acc += (double)(ta ? a[k * lda + i] : a[i * lda + k]) *
               (double)(tb ? b[j * ldb + k] : b[k * ldb + j]);
      want[i * N + j] = (float)(alpha * acc + (beta != 0.0f ? beta * c0[i * ldc + j] : 0.0));
    }
}

static void round_bf16(float *x, size_t n)
{
  for (size_t i = 0; i < n; i++)
    x[i] = beit_bf16_value(beit_bf16_round(x[i]));
}

static void test_product(enum beit_dtype dtype, size_t M, size_t N, size_t K, int ta, int tb,
                         float alpha, float beta)
{
  size_t pad = 3, lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
  size_t na = (ta ? K : M) * lda, nb = (tb ? N : K) * ldb;
  float *a = randn(na, 1.0f), *b = randn(nb, 1.0f), *c = randn(M * ldc, 1.0f);
  float *c0 = tdup(c, M * ldc), *want = zeros(M * N), *got = zeros(M * N);
  struct beit_operand A = beit_op_f32(a, lda, ta), B = beit_op_f32(b, ldb, tb);
  if (dtype == BEIT_DTYPE_BF16) {
    beit_bf16 *ah = talloc(na * sizeof *ah), *bh = talloc(nb * sizeof *bh);
    beit_to_bf16(ah, a, na);
    beit_to_bf16(bh, b, nb);
    round_bf16(a, na);
    round_bf16(b, nb);
    A = beit_op_bf16(ah, lda, ta);
    B = beit_op_bf16(bh, ldb, tb);
  }
  reference(want, a, lda, ta, b, ldb, tb, c0, ldc, M, N, K, alpha, beta);
  beit_gemm(c, ldc, A, B, M, N, K, alpha, beta);
  for (size_t i = 0; i < M; i++)
    memcpy(got + i * N, c + i * ldc, N * sizeof *got);
  char label[128];
  snprintf(label, sizeof label, "%s %zux%zux%zu ta=%d tb=%d alpha=%g beta=%g",
           dtype == BEIT_DTYPE_BF16 ? "bf16" : "f32", M, N, K, ta, tb, alpha, beta);
  check_close(label, got, want, M * N, TOL);
  for (size_t i = 0; i < M; i++) /* padding columns of C untouched */
    for (size_t j = N; j < ldc; j++)
      CHECK(c[i * ldc + j] == c0[i * ldc + j]);
}

/* C = A B^T + bias (the linear layer's forward), dense operands. */
static void test_bias(enum beit_dtype dtype, size_t M, size_t N, size_t K)
{
  float *a = randn(M * K, 1.0f), *b = randn(N * K, 1.0f), *bias = randn(N, 1.0f);
  float *got = randn(M * N, 1.0f), *want = zeros(M * N);
  struct beit_operand A = beit_op_f32(a, K, 0), B = beit_op_f32(b, K, 1);
  if (dtype == BEIT_DTYPE_BF16) {
    beit_bf16 *ah = talloc(M * K * sizeof *ah), *bh = talloc(N * K * sizeof *bh);
    beit_to_bf16(ah, a, M * K);
    beit_to_bf16(bh, b, N * K);
    round_bf16(a, M * K);
    round_bf16(b, N * K);
    A = beit_op_bf16(ah, K, 0);
    B = beit_op_bf16(bh, K, 1);
  }
  reference(want, a, K, 0, b, K, 1, NULL, N, M, N, K, 1.0f, 0.0f);
  for (size_t i = 0; i < M * N; i++)
    want[i] += bias[i % N];
  beit_gemm_bias(got, N, A, B, bias, M, N, K);
  char label[96];
  snprintf(label, sizeof label, "%s bias %zux%zux%zu", dtype == BEIT_DTYPE_BF16 ? "bf16" : "f32",
           M, N, K);
  check_close(label, got, want, M * N, TOL);
}

/* Attention's layout: q, k of head h of image b at qkv + b*T*3D + h*dh (+ D for k), rows 3D
 * apart; S (b, h) = q k^T into (B, nH, T, T). */
static void test_batched(enum beit_dtype dtype, size_t B, size_t nH, size_t T, size_t dh)
{
  size_t D = nH * dh, ld = 3 * D, n = B * T * ld;
  float *qkv = randn(n, 1.0f), *got = zeros(B * nH * T * T), *want = zeros(B * nH * T * T);
  struct beit_operand Q = beit_op_f32(qkv, ld, 0), Kt = beit_op_f32(qkv + D, ld, 1);
  if (dtype == BEIT_DTYPE_BF16) {
    beit_bf16 *h = talloc(n * sizeof *h);
    beit_to_bf16(h, qkv, n);
    round_bf16(qkv, n);
    Q = beit_op_bf16(h, ld, 0);
    Kt = beit_op_bf16(h + D, ld, 1);
  }
  struct beit_batch_strides bs = {B, nH, T * ld, dh, T * ld, dh, nH * T * T, T * T};
  beit_gemm_batched(got, T, Q, Kt, T, T, dh, 0.125f, 0.0f, &bs);
  for (size_t b = 0; b < B; b++)
    for (size_t h = 0; h < nH; h++) {
      const float *q = qkv + b * T * ld + h * dh;
      reference(want + (b * nH + h) * T * T, q, ld, 0, q + D, ld, 1, NULL, T, T, T, dh, 0.125f,
                0.0f);
    }
  char label[96];
  snprintf(label, sizeof label, "%s batched B=%zu nH=%zu T=%zu dh=%zu",
           dtype == BEIT_DTYPE_BF16 ? "bf16" : "f32", B, nH, T, dh);
  check_close(label, got, want, B * nH * T * T, TOL);
}

/* The bfloat16-result products equal the float32-result product rounded once: a linear layer
 * with bias into a padded C, and a P V product per (image, head) written into token-major
 * (B, T, nH*dh) rows (two batch dimensions, C strided inside its rows; correct, though oneDNN 2.6
 * runs that layout on a slow kernel, so the attention writes head-major results). */
static void check_rounded(const char *label, const beit_bf16 *got, size_t ldg, const float *f32,
                          size_t ldf, size_t rows, size_t cols)
{
  size_t bad = 0;
  for (size_t i = 0; i < rows; i++)
    for (size_t j = 0; j < cols; j++)
      bad += got[i * ldg + j] != beit_bf16_round(f32[i * ldf + j]);
  if (bad)
    printf("%s: %zu of %zu values differ from the rounded float32 product\n", label, bad,
           rows * cols);
  CHECK(bad == 0);
}

static void test_bf16_out(size_t M, size_t N, size_t K, size_t B, size_t nH, size_t T, size_t dh)
{
  float *a = randn(M * K, 1.0f), *b = randn(N * K, 1.0f), *bias = randn(N, 1.0f);
  float *f32 = zeros(M * N);
  beit_bf16 *ah = talloc(M * K * 2), *bh = talloc(N * K * 2), *got = talloc(M * (N + 3) * 2);
  beit_to_bf16(ah, a, M * K);
  beit_to_bf16(bh, b, N * K);
  struct beit_operand A = beit_op_bf16(ah, K, 0), Bt = beit_op_bf16(bh, K, 1);
  beit_gemm_bias(f32, N, A, Bt, bias, M, N, K);
  beit_gemm_bf16_out(got, N + 3, A, Bt, bias, M, N, K, 1.0f, NULL);
  check_rounded("bf16 result, bias", got, N + 3, f32, N, M, N);

  /* an elementwise factor in the store: round((A B^T) * mul), mul with the result's row stride */
  beit_bf16 *mul = talloc(M * (N + 3) * 2);
  float *f = randn(M * (N + 3), 1.0f);
  beit_to_bf16(mul, f, M * (N + 3));
  beit_gemm(f32, N, A, Bt, M, N, K, 1.0f, 0.0f);
  for (size_t i = 0; i < M; i++)
    for (size_t j = 0; j < N; j++)
      f32[i * N + j] *= beit_bf16_value(mul[i * (N + 3) + j]);
  beit_gemm_bf16_mul(got, N + 3, A, Bt, mul, M, N, K);
  check_rounded("bf16 result times a bf16 factor", got, N + 3, f32, N, M, N);

  size_t D = nH * dh, n = B * nH;
  float *p = randn(n * T * T, 1.0f), *v = randn(n * T * dh, 1.0f), *heads = zeros(n * T * dh);
  beit_bf16 *ph = talloc(n * T * T * 2), *vh = talloc(n * T * dh * 2), *tok = talloc(B * T * D * 2);
  beit_to_bf16(ph, p, n * T * T);
  beit_to_bf16(vh, v, n * T * dh);
  struct beit_batch_strides dense = {n, 1, T * T, 0, T * dh, 0, T * dh, 0};
  beit_gemm_batched(heads, dh, beit_op_bf16(ph, T, 0), beit_op_bf16(vh, dh, 0), T, dh, T, 0.5f,
                    0.0f, &dense);
  struct beit_batch_strides tokens = {B, nH, nH * T * T, T * T, nH * T * dh, T * dh, T * D, dh};
  beit_gemm_bf16_out(tok, D, beit_op_bf16(ph, T, 0), beit_op_bf16(vh, dh, 0), NULL, T, dh, T,
                     0.5f, &tokens);
  for (size_t bb = 0; bb < B; bb++)
    for (size_t h = 0; h < nH; h++)
      check_rounded("bf16 result, heads into token rows", tok + bb * T * D + h * dh, D,
                    heads + (bb * nH + h) * T * dh, dh, T, dh);
}

/* The same product twice gives the same bits (a resumed run and a rerun compute alike): a weight
 * gradient of BEiT-base's kind, long enough to take the gemm driver on AMX, accumulated twice
 * into equal starting gradients; threads > 0 runs the second product on that many OpenMP
 * threads (the first in row blocks, the second whole, or the reverse). */
static void test_repeatable(size_t M, size_t N, size_t K, int threads)
{
  float *a = randn(K * M, 1.0f), *b = randn(K * N, 1.0f), *c1 = randn(M * N, 1.0f);
  float *c2 = tdup(c1, M * N);
  beit_bf16 *ah = talloc(K * M * sizeof *ah), *bh = talloc(K * N * sizeof *bh);
  beit_to_bf16(ah, a, K * M);
  beit_to_bf16(bh, b, K * N);
  beit_gemm(c1, N, beit_op_bf16(ah, M, 1), beit_op_bf16(bh, N, 0), M, N, K, 1.0f, 1.0f);
  if (threads > 0)
    omp_set_num_threads(threads);
  beit_gemm(c2, N, beit_op_bf16(ah, M, 1), beit_op_bf16(bh, N, 0), M, N, K, 1.0f, 1.0f);
  CHECK(!memcmp(c1, c2, M * N * sizeof *c1));
}

/* Tall bf16 products run in row blocks, one per OpenMP thread (core/gemm_dnnl.c): every operand
 * offset (A plain and transposed, C float32 and bfloat16, the bias, the factor) against the
 * reference, blocks of equal and of unequal height, and the blocks' result equal, bit for bit,
 * to the whole product on one thread (oneDNN reduces each row over K the same way). */
static void test_row_blocks(void)
{
  omp_set_num_threads(2);
  CHECK(beit_dnnl_row_blocks(800, 1) == 2);
  CHECK(beit_dnnl_row_blocks(700, 1) == 1);  /* blocks under 384 rows */
  CHECK(beit_dnnl_row_blocks(800, 96) == 1); /* batches run whole */
  size_t inside = 0;
#pragma omp parallel num_threads(2)
#pragma omp single
  inside = beit_dnnl_row_blocks(800, 1);
  CHECK(inside == 1);
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++)
      test_product(BEIT_DTYPE_BF16, 800, 40, 100, ta, tb, 1.0f, (float)tb);
  test_bf16_out(800, 48, 64, 2, 2, 11, 8);
  omp_set_num_threads(3); /* blocks of 416, 416 and 368 rows; a long reduction */
  CHECK(beit_dnnl_row_blocks(1200, 1) == 3);
  test_product(BEIT_DTYPE_BF16, 1200, 24, 1100, 1, 0, 1.0f, 1.0f);
  test_bf16_out(1200, 40, 1040, 2, 2, 11, 8);
  test_repeatable(1200, 72, 1100, 1); /* three blocks, then whole on one thread */
  omp_set_num_threads(2);
}

static void run_all(enum beit_dtype dtype)
{
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      test_product(dtype, 7, 13, 5, ta, tb, 1.0f, 0.0f);
      test_product(dtype, 37, 29, 67, ta, tb, 1.0f, 1.0f);
      test_product(dtype, 50, 96, 192, ta, tb, 0.5f, 0.0f);
    }
  test_product(dtype, 1, 1, 1, 0, 0, 1.0f, 1.0f);
  test_product(dtype, 197, 64, 197, 0, 0, 1.0f, 0.0f);
  test_product(dtype, 64, 96, 200, 1, 0, 1.0f, 1.0f); /* dW += dout^T inp */
  /* long reductions into tall results: on AMX, oneDNN's gemm driver instead of brgemm */
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++)
      test_product(dtype, 520, 40, 1100, ta, tb, 1.0f, (float)ta);
  test_bias(dtype, 37, 29, 67);
  test_bias(dtype, 200, 96, 48);
  test_bias(dtype, 530, 24, 1030);
  test_batched(dtype, 3, 2, 11, 8);
  test_batched(dtype, 5, 1, 13, 16); /* one batch dimension: a 3-D problem */
  test_batched(dtype, 2, 3, 50, 64);
}

int main(void)
{
  beit_rng_seed(&test_rng, 77, 0, 0);
  /* beta != 0 on NaN-free C; beta == 0 must ignore NaN in C */
  run_all(BEIT_DTYPE_F32);
  enum beit_precision p;
  struct beit_error err = {0};
  CHECK(beit_precision_resolve(&p, BEIT_PRECISION_FP32, &err) == BEIT_STATUS_OK &&
        p == BEIT_PRECISION_FP32);
  CHECK(beit_precision_parse(&p, "bf16", &err) == BEIT_STATUS_OK && p == BEIT_PRECISION_BF16);
  CHECK(beit_precision_parse(&p, "half", &err) == BEIT_STATUS_CONFIG &&
        strstr(err.message, "'half'"));
  printf("backend: %s\n", beit_precision_isa());
  if (beit_precision_bf16_available()) {
    run_all(BEIT_DTYPE_BF16);
    run_all(BEIT_DTYPE_BF16); /* the cached primitives again */
    test_bf16_out(37, 29, 67, 3, 2, 11, 8);
    test_bf16_out(200, 96, 48, 2, 12, 197, 64);
    test_bf16_out(600, 48, 1040, 2, 2, 11, 8);
    test_repeatable(768, 256, 1576, 0);
    test_row_blocks();
  } else {
    CHECK(beit_precision_resolve(&p, BEIT_PRECISION_BF16, &err) == BEIT_STATUS_UNSUPPORTED);
    CHECK(beit_precision_resolve(&p, BEIT_PRECISION_AUTO, &err) == BEIT_STATUS_OK &&
          p == BEIT_PRECISION_FP32);
    printf("bf16 unavailable here: checked that bf16 is refused and auto means fp32\n");
  }
  tfree_all();
  return test_summary("test_gemm");
}
