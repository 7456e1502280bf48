/* The one place every matrix product of the project goes through (linear layers, attention,
 * heads, the dVAE's convolutions as im2col products).
 *
 * Operands are typed views: float32 operands run on OpenBLAS's cblas_sgemm (the reference, always
 * built, bitwise what the fp32 code always computed); bfloat16 operands run on oneDNN's matmul
 * (AMX / AVX512-BF16 kernels, float32 accumulation). A oneDNN primitive is created the first time
 * a shape is seen and kept in a process-wide cache, so a model's steady state creates nothing.
 * Mixed float32 x bfloat16 operands are a programming error: the caller converts (beit_to_bf16),
 * ideally where the operand is produced. Internal to core/ and the libraries that plan models. */
#ifndef BEIT_CORE_GEMM_H
#define BEIT_CORE_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "tensor_table.h" /* enum beit_dtype */

/* A bfloat16 value: the upper 16 bits of a float32. */
typedef uint16_t beit_bf16;


/* A row-major matrix in memory: element (r, c) at data[r * ld + c]; trans = 1 uses it
 * transposed. The logical shape is given by the product that takes it. */
struct beit_operand {
  const void *data;
  enum beit_dtype dtype; /* BEIT_DTYPE_F32 or BEIT_DTYPE_BF16 */
  size_t ld;
  int trans;
};

static inline struct beit_operand beit_op_f32(const float *p, size_t ld, int trans)
{
  return (struct beit_operand){p, BEIT_DTYPE_F32, ld, trans};
}
static inline struct beit_operand beit_op_bf16(const beit_bf16 *p, size_t ld, int trans)
{
  return (struct beit_operand){p, BEIT_DTYPE_BF16, ld, trans};
}

/* Where a product writes: float32, or bfloat16 (bfloat16 operands only) for a consumer that would
 * round the float32 result anyway: the float32 accumulator (+ bias, times alpha) is rounded once,
 * to nearest even, as it is stored, so the values equal beit_to_bf16 of the float32 result and
 * half the bytes are written and read back. */
struct beit_result {
  void *data;
  enum beit_dtype dtype;
  size_t ld;
  /* NULL, or (bfloat16 results only) a bfloat16 matrix of the result's shape and row stride that
   * the float32 product is multiplied by, elementwise, before it is rounded */
  const beit_bf16 *mul;
};

/* C (M, N), float32 with row stride ldc, = alpha * op(A) (M, K) . op(B) (K, N) + beta * C.
 * A and B have the same dtype. beta 0 ignores C's old contents (NaN included). */
void beit_gemm(float *C, size_t ldc, struct beit_operand A, struct beit_operand B, size_t M,
               size_t N, size_t K, float alpha, float beta);

/* C (M, N) = op(A) op(B) + bias (N), the bias broadcast over rows (NULL: none). One pass: for
 * bfloat16 the bias rides inside oneDNN's product; for float32 the bias rows are laid down first
 * and sgemm adds onto them (what the fp32 linear layer always did). */
void beit_gemm_bias(float *C, size_t ldc, struct beit_operand A, struct beit_operand B,
                    const float *bias, size_t M, size_t N, size_t K);

/* The same product for count independent (M, N, K) problems whose operands and results lie at
 * fixed element strides: problem (i, j), i < count1, j < count2, uses A + i*sa1 + j*sa2, B + i*sb1
 * + j*sb2, C + i*sc1 + j*sc2 (e.g. attention's (batch, head) pairs inside the qkv rows). One
 * oneDNN call for bf16; for float32, sgemm per problem over OpenMP threads. */
struct beit_batch_strides {
  size_t count1, count2;
  size_t sa1, sa2, sb1, sb2, sc1, sc2;
};
void beit_gemm_batched(float *C, size_t ldc, struct beit_operand A, struct beit_operand B,
                       size_t M, size_t N, size_t K, float alpha, float beta,
                       const struct beit_batch_strides *bs);

/* The bfloat16-result form of beit_gemm_bias (bs NULL) and beit_gemm_batched (bias NULL, alpha
 * free, beta 0): C (M, N) with row stride ldc = round(alpha * op(A) op(B) + bias). */
void beit_gemm_bf16_out(beit_bf16 *C, size_t ldc, struct beit_operand A, struct beit_operand B,
                        const float *bias, size_t M, size_t N, size_t K, float alpha,
                        const struct beit_batch_strides *bs);

/* C (M, N) = round(op(A) op(B) * mul), mul a bfloat16 (M, N) matrix with C's row stride ldc: one
 * product with an elementwise factor applied in oneDNN's store (GELU's derivative in fc2's
 * input-gradient product), bfloat16 operands. */
void beit_gemm_bf16_mul(beit_bf16 *C, size_t ldc, struct beit_operand A, struct beit_operand B,
                        const beit_bf16 *mul, size_t M, size_t N, size_t K);

/* Makes the calling thread ask OpenMP for fixed teams no larger than OMP_THREAD_LIMIT (each
 * thread has its own settings), before every product of either backend. Both libraries divide a
 * product among the threads they ask for and assume they all come: with OMP_DYNAMIC=true on a
 * loaded machine or OMP_THREAD_LIMIT below the thread count, oneDNN 2.6 left part of its result
 * unwritten, without an error (37888 of 51200 values of an 800-row product), and OpenBLAS hung. */
void beit_gemm_full_teams(void);

/* out (n) = round-to-nearest-even bfloat16 of in (n); NaN stays NaN. OpenMP over large n. */
void beit_to_bf16(beit_bf16 *out, const float *in, size_t n);
/* The same on a (rows, cols) block with row strides (in ld_in floats, out ld_out values). */
void beit_to_bf16_rows(beit_bf16 *out, size_t ld_out, const float *in, size_t ld_in, size_t rows,
                       size_t cols);
void beit_from_bf16(float *out, const beit_bf16 *in, size_t n);

static inline beit_bf16 beit_bf16_round(float f)
{
  union { float f; uint32_t u; } v = {f};
  uint32_t rounded = (v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16;
  uint32_t quiet_nan = (v.u >> 16) | 0x40u; /* NaN stays a (quiet) NaN */
  /* a select, not a branch, so that loops over it vectorise */
  return (beit_bf16)((v.u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
}
static inline float beit_bf16_value(beit_bf16 h)
{
  union { uint32_t u; float f; } v = {(uint32_t)h << 16};
  return v.f;
}

/* ---- the oneDNN side (gemm_dnnl.c, or gemm_nodnnl.c when the build has no oneDNN) ---- */
/* 1 when bfloat16 products can run here; the ISA name oneDNN chose ("none" without oneDNN). */
int beit_dnnl_bf16_available(void);
int beit_dnnl_has_amx(void);
const char *beit_dnnl_isa(void);
const char *beit_dnnl_version(void);
/* bfloat16 product(s) as described above (beit_gemm_batched's strides, count 1 x 1 for one;
 * bias only for one product with alpha 1, beta 0). */
void beit_dnnl_matmul(struct beit_result C, struct beit_operand A, struct beit_operand B,
                      const float *bias, size_t M, size_t N, size_t K, float alpha, float beta,
                      const struct beit_batch_strides *bs);
/* How many row blocks, one per OpenMP thread, beit_dnnl_matmul splits a product of M rows
 * (count problems) into when called here: 1 for batches, inside parallel regions, on one thread
 * and for blocks under 384 rows (1 without oneDNN). */
size_t beit_dnnl_row_blocks(size_t M, size_t count);
/* BEIT_GEMM_PROFILE=1: forget the timings so far (a benchmark calls it after its warm-up). */
void beit_dnnl_profile_reset(void);

#endif
