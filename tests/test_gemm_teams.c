/* Products when OpenMP gives smaller teams than asked for. oneDNN 2.6 (bf16) and OpenBLAS (fp32)
 * divide a product among the threads they ask for: oneDNN left part of the result unwritten and
 * OpenBLAS hung when fewer came. Every product first asks for fixed teams within the thread
 * limit (beit_gemm_full_teams, core/gemm.c). ctest runs this with OMP_NUM_THREADS=2 and
 * OMP_THREAD_LIMIT=1: every team gets one thread (a hang fails by ctest's timeout). */
#include <omp.h>
#include <stdio.h>

#include "beit/precision.h"
#include "gemm.h"
#include "testing.h"

/* A tall product of ones in dtype (one that runs in row blocks when 2 threads may run): every
 * value must be K. */
static void check_ones(const char *label, enum beit_dtype dtype)
{
  size_t M = 800, N = 64, K = 96;
  float *a = zeros(M * K), *b = zeros(N * K), *c = zeros(M * N);
  for (size_t i = 0; i < M * K; i++)
    a[i] = 1.0f;
  for (size_t i = 0; i < N * K; i++)
    b[i] = 1.0f;
  for (size_t i = 0; i < M * N; i++)
    c[i] = -1.0f;
  struct beit_operand A = beit_op_f32(a, K, 0), B = beit_op_f32(b, K, 1);
  if (dtype == BEIT_DTYPE_BF16) {
    beit_bf16 *ah = talloc(M * K * sizeof *ah), *bh = talloc(N * K * sizeof *bh);
    beit_to_bf16(ah, a, M * K);
    beit_to_bf16(bh, b, N * K);
    A = beit_op_bf16(ah, K, 0);
    B = beit_op_bf16(bh, K, 1);
  }
  beit_gemm(c, N, A, B, M, N, K, 1.0f, 0.0f);
  size_t wrong = 0;
  for (size_t i = 0; i < M * N; i++)
    wrong += c[i] != (float)K;
  if (wrong)
    printf("%s: %zu of %zu values wrong\n", label, wrong, M * N);
  CHECK(wrong == 0);
}

int main(void)
{
  printf("threads %d, thread limit %d\n", omp_get_max_threads(), omp_get_thread_limit());
  omp_set_num_threads(2);
  check_ones("fp32, 2 threads asked for, thread limit 1", BEIT_DTYPE_F32);
  CHECK(omp_get_max_threads() <= omp_get_thread_limit());
  if (!beit_precision_bf16_available()) {
    printf("bf16 unavailable here: fp32 only\n");
    tfree_all();
    return test_summary("test_gemm_teams");
  }
  omp_set_num_threads(2);
  check_ones("bf16, 2 threads asked for, thread limit 1", BEIT_DTYPE_BF16);
  CHECK(omp_get_max_threads() <= omp_get_thread_limit());
  omp_set_dynamic(1); /* teams that shrink with the machine's load */
  check_ones("bf16, dynamic teams", BEIT_DTYPE_BF16);
  CHECK(!omp_get_dynamic());
  tfree_all();
  return test_summary("test_gemm_teams");
}
