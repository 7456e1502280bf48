/* AdamW over a tensor table, the unilm warmup + cosine schedule and global-norm clipping.
 *
 * AdamW follows torch.optim.AdamW (single-tensor path) operation by operation: the scalar
 * factors are formed in double, as Python does, and applied in fp32. The table's alignment
 * padding is never touched. The gradient norm is summed in double over a fixed partition
 * (NORM_BLOCKS blocks, added in order) so it does not depend on the thread count, and within a
 * block in NORM_LANES running sums, so it does not depend on the vector width either: every
 * clone (core/isa.h) gives the same bits, so MPI ranks on different CPUs clip alike. */
#include "isa.h"
#include "optim.h"

#include <math.h>

#define NORM_BLOCKS 256
#define NORM_LANES 16 /* running sums per block, element i in sum i % 16: 2 zmm, 4 ymm, 8 xmm */

BEIT_KERNEL_CLONES
void beit_adamw_update(float *params, float *grads, float grad_scale, float *m, float *v,
                       const struct beit_tensor_table *table,
                       const struct beit_adamw_hparams *hp)
{
  const double bc1 = 1.0 - pow(hp->beta1, (double)hp->step);
  const double bc2 = 1.0 - pow(hp->beta2, (double)hp->step);
  const float b1 = (float)hp->beta1, b2 = (float)hp->beta2;
  const float omb1 = (float)(1.0 - hp->beta1), omb2 = (float)(1.0 - hp->beta2);
  const float bc2_sqrt = (float)sqrt(bc2), eps = (float)hp->eps;
#pragma omp parallel
  for (size_t ti = 0; ti < table->count; ti++) {
    const struct beit_tensor *t = &table->items[ti];
    const double lr = hp->lr * (double)t->lr_scale;
    const double wd = t->no_decay ? 0.0 : hp->weight_decay;
    const float decay = (float)(1.0 - lr * wd);
    const float step_size = (float)(lr / bc1);
    float *p = params + t->offset, *mt = m + t->offset, *vt = v + t->offset;
    float *g = grads + t->offset;
    const int zero = hp->zero_grads;
    beit_bf16 *ph = hp->params_h ? hp->params_h + t->offset : NULL;
    /* elements are independent: no barrier between tensors */
#pragma omp for simd schedule(static) nowait
    for (size_t i = 0; i < t->numel; i++) {
      float gi = grad_scale * g[i];
      float pi = p[i] * decay;
      float mi = mt[i] * b1 + omb1 * gi;
      float vi = vt[i] * b2 + omb2 * gi * gi;
      mt[i] = mi;
      vt[i] = vi;
      pi -= step_size * (mi / (sqrtf(vi) / bc2_sqrt + eps));
      p[i] = pi;
      if (ph)
        ph[i] = beit_bf16_round(pi);
      if (zero)
        g[i] = 0.0f;
    }
  }
}

double beit_cosine_schedule(double base, double final, long warmup_iters, long total_iters,
                            long it)
{
  if (total_iters <= 0)
    return base;
  if (it >= total_iters)
    it = total_iters - 1;
  if (it < 0)
    it = 0;
  if (it < warmup_iters) {
    /* np.linspace(0, base, warmup_iters): i * step, last value exactly base */
    if (warmup_iters == 1)
      return 0.0;
    if (it == warmup_iters - 1)
      return base;
    return (double)it * (base / (double)(warmup_iters - 1));
  }
  const long n = total_iters - (warmup_iters > 0 ? warmup_iters : 0);
  const double i = (double)(it - (warmup_iters > 0 ? warmup_iters : 0));
  return final + 0.5 * (base - final) * (1.0 + cos(M_PI * i / (double)n));
}

BEIT_KERNEL_CLONES
double beit_grad_norm(const float *grads, size_t n)
{
  double part[NORM_BLOCKS] = {0};
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t blk = 0; blk < NORM_BLOCKS; blk++) {
    size_t i0 = blk * n / NORM_BLOCKS, i1 = (blk + 1) * n / NORM_BLOCKS, i = i0;
    double lane[NORM_LANES] = {0};
    for (; i + NORM_LANES <= i1; i += NORM_LANES)
      for (size_t k = 0; k < NORM_LANES; k++)
        lane[k] += (double)grads[i + k] * (double)grads[i + k];
    double acc = 0.0;
    for (size_t k = 0; k < NORM_LANES; k++)
      acc += lane[k];
    for (; i < i1; i++)
      acc += (double)grads[i] * (double)grads[i];
    part[blk] = acc;
  }
  double sq = 0.0;
  for (size_t blk = 0; blk < NORM_BLOCKS; blk++)
    sq += part[blk];
  return sqrt(sq);
}

double beit_clip_coef(double norm, double max_norm)
{
  return max_norm > 0.0 && isfinite(norm) && norm > max_norm ? max_norm / (norm + 1e-6) : 1.0;
}

BEIT_KERNEL_CLONES
double beit_clip_grad_norm(float *grads, size_t n, double max_norm)
{
  double norm = beit_grad_norm(grads, n), coef = beit_clip_coef(norm, max_norm);
  if (coef != 1.0) {
    const float c = (float)coef;
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++)
      grads[i] *= c;
  }
  return norm;
}
