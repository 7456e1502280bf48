/* Matrix-product dispatch: float32 operands to OpenBLAS, bfloat16 operands to oneDNN
 * (gemm_dnnl.c); and the float32 <-> bfloat16 conversions the bf16 path needs. */
#include "gemm.h"

#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "beit/status.h"
#include "isa.h"
#include "tensor_table.h"

#define CONVERT_PARALLEL_MIN 65536 /* below this a conversion runs on one thread */

void beit_gemm_full_teams(void)
{
  if (omp_get_dynamic())
    omp_set_dynamic(0);
  if (omp_get_max_threads() > omp_get_thread_limit())
    omp_set_num_threads(omp_get_thread_limit());
}

static void sgemm(float *C, size_t ldc, struct beit_operand A, struct beit_operand B, size_t M,
                  size_t N, size_t K, float alpha, float beta)
{
  beit_gemm_full_teams();
  cblas_sgemm(CblasRowMajor, A.trans ? CblasTrans : CblasNoTrans,
              B.trans ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, alpha,
              (const float *)A.data, (int)A.ld, (const float *)B.data, (int)B.ld, beta, C,
              (int)ldc);
}

static const struct beit_batch_strides one_product = {1, 1, 0, 0, 0, 0, 0, 0};

static struct beit_result f32_result(float *C, size_t ldc)
{
  return (struct beit_result){C, BEIT_DTYPE_F32, ldc};
}

/* A zero batch stride (a broadcast operand) ran on oneDNN's reference kernel with wrong results. */
static void check_strides(const struct beit_batch_strides *bs)
{
  BEIT_ASSERT(bs->count1 == 1 || (bs->sa1 && bs->sb1 && bs->sc1));
  BEIT_ASSERT(bs->count2 == 1 || (bs->sa2 && bs->sb2 && bs->sc2));
}

void beit_gemm(float *C, size_t ldc, struct beit_operand A, struct beit_operand B, size_t M,
               size_t N, size_t K, float alpha, float beta)
{
  if (M == 0 || N == 0)
    return;
  BEIT_ASSERT(A.dtype == B.dtype);
  if (A.dtype == BEIT_DTYPE_F32) {
    sgemm(C, ldc, A, B, M, N, K, alpha, beta);
    return;
  }
  beit_dnnl_matmul(f32_result(C, ldc), A, B, NULL, M, N, K, alpha, beta, &one_product);
}

void beit_gemm_bias(float *C, size_t ldc, struct beit_operand A, struct beit_operand B,
                    const float *bias, size_t M, size_t N, size_t K)
{
  if (M == 0 || N == 0)
    return;
  BEIT_ASSERT(A.dtype == B.dtype);
  if (A.dtype == BEIT_DTYPE_BF16) {
    beit_dnnl_matmul(f32_result(C, ldc), A, B, bias, M, N, K, 1.0f, 0.0f, &one_product);
    return;
  }
  if (bias) {
#pragma omp parallel for schedule(static) if (M * N > 32768)
    for (size_t m = 0; m < M; m++)
      memcpy(C + m * ldc, bias, N * sizeof *C);
  }
  sgemm(C, ldc, A, B, M, N, K, 1.0f, bias ? 1.0f : 0.0f);
}

void beit_gemm_batched(float *C, size_t ldc, struct beit_operand A, struct beit_operand B,
                       size_t M, size_t N, size_t K, float alpha, float beta,
                       const struct beit_batch_strides *bs)
{
  if (M == 0 || N == 0 || bs->count1 == 0 || bs->count2 == 0)
    return;
  BEIT_ASSERT(A.dtype == B.dtype);
  check_strides(bs);
  if (A.dtype == BEIT_DTYPE_BF16) {
    beit_dnnl_matmul(f32_result(C, ldc), A, B, NULL, M, N, K, alpha, beta, bs);
    return;
  }
  /* OpenBLAS's OpenMP build runs single-threaded inside a parallel region: one problem each */
  const long count = (long)(bs->count1 * bs->count2);
#pragma omp parallel for schedule(static)
  for (long p = 0; p < count; p++) {
    size_t i = (size_t)p / bs->count2, j = (size_t)p % bs->count2;
    struct beit_operand a = A, b = B;
    a.data = (const float *)A.data + i * bs->sa1 + j * bs->sa2;
    b.data = (const float *)B.data + i * bs->sb1 + j * bs->sb2;
    sgemm(C + i * bs->sc1 + j * bs->sc2, ldc, a, b, M, N, K, alpha, beta);
  }
}

void beit_gemm_bf16_out(beit_bf16 *C, size_t ldc, struct beit_operand A, struct beit_operand B,
                        const float *bias, size_t M, size_t N, size_t K, float alpha,
                        const struct beit_batch_strides *bs)
{
  bs = bs ? bs : &one_product;
  if (M == 0 || N == 0 || bs->count1 == 0 || bs->count2 == 0)
    return;
  BEIT_ASSERT(A.dtype == BEIT_DTYPE_BF16 && B.dtype == BEIT_DTYPE_BF16);
  check_strides(bs);
  struct beit_result out = {C, BEIT_DTYPE_BF16, ldc};
  beit_dnnl_matmul(out, A, B, bias, M, N, K, alpha, 0.0f, bs);
}

void beit_gemm_bf16_mul(beit_bf16 *C, size_t ldc, struct beit_operand A, struct beit_operand B,
                        const beit_bf16 *mul, size_t M, size_t N, size_t K)
{
  if (M == 0 || N == 0)
    return;
  BEIT_ASSERT(A.dtype == BEIT_DTYPE_BF16 && B.dtype == BEIT_DTYPE_BF16 && mul);
  struct beit_result out = {C, BEIT_DTYPE_BF16, ldc, mul};
  beit_dnnl_matmul(out, A, B, NULL, M, N, K, 1.0f, 0.0f, &one_product);
}

BEIT_KERNEL_CLONES
void beit_to_bf16(beit_bf16 *out, const float *in, size_t n)
{
#pragma omp parallel for schedule(static) if (n > CONVERT_PARALLEL_MIN)
  for (size_t i = 0; i < n; i++)
    out[i] = beit_bf16_round(in[i]);
}

BEIT_KERNEL_CLONES
void beit_to_bf16_rows(beit_bf16 *out, size_t ld_out, const float *in, size_t ld_in, size_t rows,
                       size_t cols)
{
#pragma omp parallel for schedule(static) if (rows * cols > CONVERT_PARALLEL_MIN)
  for (size_t r = 0; r < rows; r++)
    for (size_t c = 0; c < cols; c++)
      out[r * ld_out + c] = beit_bf16_round(in[r * ld_in + c]);
}

BEIT_KERNEL_CLONES
void beit_from_bf16(float *out, const beit_bf16 *in, size_t n)
{
#pragma omp parallel for schedule(static) if (n > CONVERT_PARALLEL_MIN)
  for (size_t i = 0; i < n; i++)
    out[i] = beit_bf16_value(in[i]);
}
