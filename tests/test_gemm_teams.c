/* bf16 products when OpenMP gives smaller teams than asked for. oneDNN 2.6 divides a product
 * among the threads it asks for and leaves part of the result unwritten when fewer come; the
 * backend (core/gemm_dnnl.c, full_teams) asks for fixed teams within the thread limit.
 * ctest runs this with OMP_NUM_THREADS=2 and OMP_THREAD_LIMIT=1: every team gets one thread. */
#include <omp.h>
#include <stdio.h>

#include "beit/precision.h"
#include "gemm.h"
#include "testing.h"

/* A tall product of ones (row blocks on 2 threads): every value must be K. */
static void check_ones(const char *label)
{
  size_t M = 800, N = 64, K = 96;
  beit_bf16 *a = talloc(M * K * sizeof *a), *b = talloc(N * K * sizeof *b);
  float *c = zeros(M * N);
  for (size_t i = 0; i < M * K; i++)
    a[i] = beit_bf16_round(1.0f);
  for (size_t i = 0; i < N * K; i++)
    b[i] = beit_bf16_round(1.0f);
  for (size_t i = 0; i < M * N; i++)
    c[i] = -1.0f;
  beit_gemm(c, N, beit_op_bf16(a, K, 0), beit_op_bf16(b, K, 1), M, N, K, 1.0f, 0.0f);
  size_t wrong = 0;
  for (size_t i = 0; i < M * N; i++)
    wrong += c[i] != (float)K;
  if (wrong)
    printf("%s: %zu of %zu values wrong\n", label, wrong, M * N);
  CHECK(wrong == 0);
}

int main(void)
{
  if (!beit_precision_bf16_available()) {
    printf("bf16 unavailable here: nothing to check\n");
    return test_summary("test_gemm_teams");
  }
  printf("threads %d, thread limit %d\n", omp_get_max_threads(), omp_get_thread_limit());
  omp_set_num_threads(2);
  check_ones("2 threads asked for, thread limit 1");
  CHECK(omp_get_max_threads() <= omp_get_thread_limit());
  omp_set_dynamic(1); /* teams that shrink with the machine's load */
  check_ones("dynamic teams");
  CHECK(!omp_get_dynamic());
  tfree_all();
  return test_summary("test_gemm_teams");
}
