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
#include "clock.h"
#include "gemm.h"
#include "tensor_table.h"

void openblas_set_num_threads(int n);

/* Best GFLOP/s of reps runs of C (M, N) = op(A) op(B) in dtype. */
static double rate(enum beit_dtype dtype, size_t M, size_t N, size_t K, int ta, int tb, int reps)
{
  size_t na = M * K, nb = K * N;
  float *a = beit_alloc_floats(na), *b = beit_alloc_floats(nb), *c = beit_alloc_floats(M * N);
  beit_bf16 *ah = malloc(na * 2), *bh = malloc(nb * 2);
  for (size_t i = 0; i < na; i++)
    a[i] = (float)(i % 13) * 0.01f;
  for (size_t i = 0; i < nb; i++)
    b[i] = (float)(i % 7) * 0.01f;
  beit_to_bf16(ah, a, na);
  beit_to_bf16(bh, b, nb);
  struct beit_operand A = dtype == BEIT_DTYPE_F32 ? beit_op_f32(a, ta ? M : K, ta)
                                                  : beit_op_bf16(ah, ta ? M : K, ta);
  struct beit_operand B = dtype == BEIT_DTYPE_F32 ? beit_op_f32(b, tb ? K : N, tb)
                                                  : beit_op_bf16(bh, tb ? K : N, tb);
  double best = 0;
  for (int r = 0; r < reps + 1; r++) { /* the first run creates the primitive */
    double t0 = beit_clock_now();
    beit_gemm(c, N, A, B, M, N, K, 1.0f, 0.0f);
    double gf = 2.0 * (double)M * (double)N * (double)K / (beit_clock_now() - t0) / 1e9;
    if (r > 0 && gf > best)
      best = gf;
  }
  free(a), free(b), free(c), free(ah), free(bh);
  return best;
}


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
    double f32 = rate(BEIT_DTYPE_F32, shapes[i].M, shapes[i].N, shapes[i].K, shapes[i].ta,
                      shapes[i].tb, 5);
    double h = bf16 ? rate(BEIT_DTYPE_BF16, shapes[i].M, shapes[i].N, shapes[i].K, shapes[i].ta,
                           shapes[i].tb, 5)
                    : 0.0;
    printf("%s  %zux%zux%zu  f32 %7.1f GFLOP/s  bf16 %7.1f GFLOP/s  (%.1fx)\n", shapes[i].name,
           shapes[i].M, shapes[i].N, shapes[i].K, f32, h, f32 > 0 ? h / f32 : 0.0);
  }
  return 0;
}
