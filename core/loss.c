/* Training losses: softmax cross-entropy with label smoothing (MIM head, classifier) and
 * sigmoid binary cross-entropy (multi-label fine-tuning).
 *
 * Losses are accumulated in double over a fixed partition of the rows (LOSS_BLOCKS blocks,
 * summed in order), so the value does not depend on the number of OpenMP threads. */
#include "isa.h"
#include "kernels.h"

#include <math.h>

#define LOSS_BLOCKS 64

/* Row r of block blk of a fixed partition of n rows into LOSS_BLOCKS blocks. */
static size_t block_start(size_t blk, size_t n) { return blk * n / LOSS_BLOCKS; }

/* The blocks' loss sums and hits, added in block order (the same on any thread count): the
 * mean loss over M rows, and the hits into *correct (may be NULL). */
static double blocks_mean(const double part[LOSS_BLOCKS], const long hits[LOSS_BLOCKS], size_t M,
                          long *correct)
{
  double total = 0.0;
  long n_correct = 0;
  for (size_t blk = 0; blk < LOSS_BLOCKS; blk++) {
    total += part[blk];
    n_correct += hits[blk];
  }
  if (correct)
    *correct = n_correct;
  return total / (double)M;
}

double beit_cross_entropy_forward(float *probs, long *correct, const float *logits,
                                  const int32_t *targets, float smoothing, size_t M, size_t V)
{
  if (M == 0 || V == 0) {
    if (correct)
      *correct = 0;
    return 0.0;
  }
  beit_softmax_forward(probs, logits, M, V);
  const double s = smoothing;
  double part[LOSS_BLOCKS] = {0};
  long hits[LOSS_BLOCKS] = {0};
#pragma omp parallel for schedule(static) if (M * V > 65536)
  for (size_t blk = 0; blk < LOSS_BLOCKS; blk++) {
    for (size_t r = block_start(blk, M); r < block_start(blk + 1, M); r++) {
      const float *x = logits + r * V;
      size_t best = 0;
      double sumx = 0.0;
      for (size_t c = 0; c < V; c++) {
        if (x[c] > x[best])
          best = c;
        sumx += x[c];
      }
      /* log-sum-exp from the saved softmax: p[argmax] = exp(0) / sum exactly up to rounding,
       * so lse = max - log p[argmax] without a second pass of exp (and no log of an
       * underflowed p at any other class). */
      double lse = (double)x[best] - log((double)probs[r * V + best]);
      int32_t t = targets[r];
      if (t < 0 || (size_t)t >= V) { /* precondition broken: poison the loss, read nothing */
        part[blk] += NAN;
        continue;
      }
      /* -sum_c q_c (x_c - lse) with q = (1 - s) onehot(t) + s / V */
      part[blk] += lse - (1.0 - s) * (double)x[t] - s / (double)V * sumx;
      hits[blk] += best == (size_t)t;
    }
  }
  return blocks_mean(part, hits, M, correct);
}

BEIT_KERNEL_CLONES
void beit_cross_entropy_backward(float *dlogits, const float *probs, const int32_t *targets,
                                 float smoothing, float dloss, size_t M, size_t V)
{
  if (!dlogits || M == 0)
    return;
  const float k = dloss / (float)M;
  const float off = smoothing / (float)V, on = 1.0f - smoothing;
#pragma omp parallel for schedule(static) if (M * V > 65536)
  for (size_t r = 0; r < M; r++) {
    const float *p = probs + r * V;
    float *dx = dlogits + r * V;
#pragma omp simd
    for (size_t c = 0; c < V; c++)
      dx[c] += k * (p[c] - off);
    int32_t t = targets[r];
    if (t >= 0 && (size_t)t < V)
      dx[t] -= k * on;
  }
}

double beit_soft_cross_entropy_forward(float *probs, long *correct, const float *logits,
                                       const float *targets, size_t M, size_t V)
{
  if (correct)
    *correct = 0;
  if (M == 0 || V == 0)
    return 0.0;
  beit_softmax_forward(probs, logits, M, V);
  double part[LOSS_BLOCKS] = {0};
  long hits[LOSS_BLOCKS] = {0};
#pragma omp parallel for schedule(static) if (M * V > 65536)
  for (size_t blk = 0; blk < LOSS_BLOCKS; blk++) {
    for (size_t r = block_start(blk, M); r < block_start(blk + 1, M); r++) {
      const float *x = logits + r * V, *q = targets + r * V;
      size_t best = 0, want = 0;
      double qsum = 0.0, qx = 0.0;
      for (size_t c = 0; c < V; c++) {
        if (x[c] > x[best])
          best = c;
        if (q[c] > q[want])
          want = c;
        qsum += q[c];
        qx += (double)q[c] * (double)x[c];
      }
      /* -sum_c q_c (x_c - lse), lse from the saved softmax as in the hard-target form */
      double lse = (double)x[best] - log((double)probs[r * V + best]);
      part[blk] += qsum * lse - qx;
      hits[blk] += best == want;
    }
  }
  return blocks_mean(part, hits, M, correct);
}

BEIT_KERNEL_CLONES
void beit_soft_cross_entropy_backward(float *dlogits, const float *probs, const float *targets,
                                      float dloss, size_t M, size_t V)
{
  if (!dlogits || M == 0)
    return;
  const float k = dloss / (float)M;
#pragma omp parallel for schedule(static) if (M * V > 65536)
  for (size_t r = 0; r < M; r++) {
    const float *p = probs + r * V, *q = targets + r * V;
    float *dx = dlogits + r * V;
    float qsum = 0.0f;
    for (size_t c = 0; c < V; c++)
      qsum += q[c];
    for (size_t c = 0; c < V; c++)
      dx[c] += k * (qsum * p[c] - q[c]);
  }
}

/* max(x, 0) - x t + log(1 + exp(-|x|)): finite for any finite logit */
static double bce_term(float x, float t)
{
  double xd = x;
  return (xd > 0.0 ? xd : 0.0) - xd * (double)t + log1p(exp(-fabs(xd)));
}

double beit_bce_forward(const float *logits, const float *targets, size_t N, size_t C)
{
  const size_t n = N * C;
  if (n == 0)
    return 0.0;
  double part[LOSS_BLOCKS] = {0};
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t blk = 0; blk < LOSS_BLOCKS; blk++)
    for (size_t i = block_start(blk, n); i < block_start(blk + 1, n); i++)
      part[blk] += bce_term(logits[i], targets[i]);
  double total = 0.0;
  for (size_t blk = 0; blk < LOSS_BLOCKS; blk++)
    total += part[blk];
  return total / (double)n;
}

void beit_bce_backward(float *dlogits, const float *logits, const float *targets, float dloss,
                       size_t N, size_t C)
{
  const size_t n = N * C;
  if (!dlogits || n == 0)
    return;
  const float k = (float)((double)dloss / (double)n);
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) {
    float x = logits[i];
    /* sigmoid without overflow: exp of a non-positive argument only */
    float e = expf(-fabsf(x));
    float sig = x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
    dlogits[i] += k * (sig - targets[i]);
  }
}
