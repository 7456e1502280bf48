/* Matrix-product backend benchmark: GFLOP/s of core/gemm.h on BEiT's shapes, float32 (OpenBLAS)
 * and bfloat16 (oneDNN), for the three products of a linear layer (forward out = x W^T, backward
 * dx = dout W, dW = dout^T x) and attention's batched QK^T. The best bf16 rate is the "bf16 peak"
 * the encoder benchmark reports its fraction of.
 *   bench_gemm [--threads T]   prints the CPU, the ISA oneDNN chose, one line per product. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "beit/precision.h"
#include "bench_util.h"

void openblas_set_num_threads(int n);

static const char *cpu_model(char *buf, size_t n)
{
  FILE *f = fopen("/proc/cpuinfo", "r");
  snprintf(buf, n, "unknown CPU");
  if (!f)
    return buf;
  char line[512];
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
      snprintf(buf, n, "%s", strchr(line, ':') + 2);
      buf[strcspn(buf, "\n")] = 0;
      break;
    }
  fclose(f);
  return buf;
}

int main(int argc, char **argv)
{
  beit_flush_denormals(); /* as every beit command does */
  int threads = argc == 3 && !strcmp(argv[1], "--threads") ? atoi(argv[2]) : 0;
  if (threads > 0) {
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
  }
  char cpu[256], backend[512];
  beit_precision_describe(backend, sizeof backend);
  printf("cpu: %s\nbackend: %s\nthreads: %d\n", cpu_model(cpu, sizeof cpu), backend,
         omp_get_max_threads());
  static const struct { const char *name; size_t M, N, K; int ta, tb; } shapes[] = {
      {"base fc1 forward  x W^T  (batch 8)", 1576, 3072, 768, 0, 1},
      {"base fc1 backward dout W (batch 8)", 1576, 768, 3072, 0, 0},
      {"base fc1 backward dout^T x      ", 3072, 768, 1576, 1, 0},
      {"base qkv forward (batch 1)       ", 197, 2304, 768, 0, 1},
      {"base fc2 forward (batch 1)       ", 197, 768, 3072, 0, 1},
      {"small fc1 forward (batch 64)     ", 3200, 768, 192, 0, 1},
      {"small fc1 backward dout^T x     ", 768, 192, 3200, 1, 0},
  };
  int bf16 = beit_precision_bf16_available();
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    double f32 = bench_gemm_gflops(BEIT_DTYPE_F32, shapes[i].M, shapes[i].N, shapes[i].K, shapes[i].ta,
                      shapes[i].tb, 5);
    double h = bf16 ? bench_gemm_gflops(BEIT_DTYPE_BF16, shapes[i].M, shapes[i].N, shapes[i].K, shapes[i].ta,
                           shapes[i].tb, 5)
                    : 0.0;
    printf("%s  %zux%zux%zu  f32 %7.1f GFLOP/s  bf16 %7.1f GFLOP/s  (%.1fx)\n", shapes[i].name,
           shapes[i].M, shapes[i].N, shapes[i].K, f32, h, f32 > 0 ? h / f32 : 0.0);
  }
  return 0;
}
