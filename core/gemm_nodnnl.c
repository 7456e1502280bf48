/* Stand-in for gemm_dnnl.c when the build has no oneDNN: no bfloat16 products, fp32 only
 * (CMake says so at configure time). */
#include "beit/status.h"
#include "gemm.h"

int beit_dnnl_bf16_available(void) { return 0; }
int beit_dnnl_has_amx(void) { return 0; }
const char *beit_dnnl_isa(void) { return "none"; }
const char *beit_dnnl_version(void) { return "none"; }

void beit_dnnl_matmul(struct beit_result C, struct beit_operand A, struct beit_operand B,
                      const float *bias, size_t M, size_t N, size_t K, float alpha, float beta,
                      const struct beit_batch_strides *bs)
{
  BEIT_ASSERT(!"bf16 matrix product without oneDNN");
}

void beit_dnnl_profile_reset(void) {}

size_t beit_dnnl_row_blocks(size_t M, size_t count) { return 1; }
