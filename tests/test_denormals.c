/* beit_flush_denormals (include/beit/precision.h): float32 subnormals count as zero on the
 * calling thread and on the threads started after it, the OpenMP pool's and a pthread; OpenBLAS's
 * sgemm, which runs on the pool, then reads subnormal operands as zero. Before the call a fresh
 * process keeps subnormals (x86's default), so the checks cannot pass without it. Off x86 the
 * call is a no-op and the test says so. */
#include <cblas.h>
#include <omp.h>
#include <pthread.h>
#include <string.h>

#include "beit/precision.h"
#include "testing.h"

static float subnormal(void)
{
  uint32_t bits = 0x00400000; /* 2^-127: half the smallest normal float */
  float x;
  memcpy(&x, &bits, sizeof x);
  return x;
}

/* 1 when this thread reads a subnormal as zero (DAZ) and writes a subnormal result as 0 (FTZ). */
static int flushes_here(void)
{
  volatile float s = subnormal(), tiny = 1e-30f, scale = 1e-10f, one = 1.0f;
  return s * one == 0.0f && tiny * scale == 0.0f && beit_denormals_flushed();
}

static void *thread_flushes(void *out)
{
  *(int *)out = flushes_here();
  return NULL;
}

int main(void)
{
#if defined(__x86_64__)
  CHECK_MSG(!flushes_here(), "a fresh process should keep subnormals (MXCSR's default)");
  beit_flush_denormals(); /* as beit's main does: before any thread starts */
  CHECK(flushes_here());
  omp_set_num_threads(4); /* the OpenMP pool starts here, after the flush */
  int flushed[4] = {0}, team = 0;
#pragma omp parallel
  {
    flushed[omp_get_thread_num()] = flushes_here();
#pragma omp single
    team = omp_get_num_threads();
  }
  for (int t = 0; t < team; t++)
    CHECK_MSG(flushed[t], "OpenMP thread %d of %d keeps subnormals", t, team);
  int later = 0;
  pthread_t th;
  CHECK(pthread_create(&th, NULL, thread_flushes, &later) == 0 && pthread_join(th, NULL) == 0);
  CHECK_MSG(later, "a thread created after the flush keeps subnormals");

  /* A product large enough for OpenBLAS to split across its threads: subnormal A times B reads
   * as 0 (without the flush every entry would be 384 x 2^-127, about 2^-118.4, a normal float). */
  enum { N = 384 };
  float *a = zeros(N * N), *b = zeros(N * N), *c = zeros(N * N);
  for (size_t i = 0; i < (size_t)N * N; i++)
    a[i] = subnormal(), b[i] = 1.0f;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0f, a, N, b, N, 0.0f, c, N);
  size_t nonzero = 0;
  for (size_t i = 0; i < (size_t)N * N; i++)
    nonzero += c[i] != 0.0f;
  CHECK_MSG(nonzero == 0, "sgemm: %zu of %d outputs read the subnormal operands", nonzero, N * N);
  char backend[512];
  beit_precision_describe(backend, sizeof backend);
  CHECK_MSG(strstr(backend, ", subnormals flushed"), "backend line: %s", backend);
#else
  beit_flush_denormals();
  printf("not x86-64: beit_flush_denormals is a no-op here\n");
#endif
  tfree_all();
  return test_summary("test_denormals");
}
