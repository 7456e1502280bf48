/* AdamW with per-tensor decay mask and lr scale, the warmup+cosine schedule, and global-norm
 * gradient clipping: the update half of every training loop. */
#ifndef BEIT_CORE_OPTIM_H
#define BEIT_CORE_OPTIM_H

#include <stddef.h>

#include "gemm.h"
#include "tensor_table.h"

struct beit_adamw_hparams {
  double lr;           /* scheduled lr of this step, before each tensor's lr_scale */
  double weight_decay; /* scheduled wd; tensors with no_decay get 0 */
  double beta1, beta2, eps;
  long step;           /* 1-based count of updates including this one (bias correction) */
  int zero_grads;      /* 1: each gradient is set to 0 once read, the next step's zero-grad
                          done in the same pass */
  beit_bf16 *params_h; /* not NULL: each updated parameter also rounded into it (a model's
                          bfloat16 weight copy, refreshed in the same pass) */
};

/* torch.optim.AdamW semantics, per tensor t of the table with lr_t = lr * t->lr_scale and
 * g = grad_scale * grads (the gradient's averaging and clipping factors, applied as it is read
 * instead of in passes of their own; 1 for none):
 *   p -= lr_t * wd_t * p;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *   p -= lr_t / (1 - b1^step) * m / (sqrt(v) / sqrt(1 - b2^step) + eps)
 * params, grads, m, v: table->total floats each; grads are only read, or with hp->zero_grads
 * left all 0. */
void beit_adamw_update(float *params, float *grads, float grad_scale, float *m, float *v,
                       const struct beit_tensor_table *table,
                       const struct beit_adamw_hparams *hp);

/* unilm utils.cosine_scheduler at iteration it: linear warmup from 0 over warmup_iters values
 * (both ends inclusive), then final + (base-final)(1 + cos(pi i / (total - warmup))) / 2.
 * Iterations at or past total give the last value of the schedule. */
double beit_cosine_schedule(double base, double final, long warmup_iters, long total_iters,
                            long it);

/* Global L2 norm of grads (n floats), computed in double (non-finite if any gradient is). */
double beit_grad_norm(const float *grads, size_t n);
/* The factor torch clip_grad_norm_ scales gradients of global norm `norm` by:
 * max_norm / (norm + 1e-6) when max_norm > 0 and norm exceeds it, else 1 (a non-finite norm is
 * left to the caller, who skips the step: torch would scale by NaN or 0 and poison or wipe the
 * gradients). */
double beit_clip_coef(double norm, double max_norm);
/* Both, and the scaling applied to grads: returns the norm before clipping. */
double beit_clip_grad_norm(float *grads, size_t n, double max_norm);

#endif
