/* Multi-head self-attention core (after the qkv projection, before the output projection),
 * with an optional relative position bias shared over the batch.
 *
 * Fast path: OpenMP over the B*nH (batch, head) pairs, each pair running its own cblas_sgemm
 * calls on strided views of the qkv rows (OpenBLAS's OpenMP build runs single-threaded inside
 * a parallel region, so the two levels do not oversubscribe). q, k, v of head h are the column
 * blocks h*dh, D + h*dh, 2D + h*dh of each (3D)-wide row. The row softmax is fused per pair so
 * the (T, T) probabilities stay in cache for the P.V product. */
#include "gemm.h"
#include "isa.h"
#include "kernels.h"
#include "vmath.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* In-place row softmax of a (T, T) block of logits, adding bias (T, T) first when given. */
BEIT_KERNEL_CLONES
static void softmax_rows_inplace(float *P, const float *bias, size_t T)
{
  for (size_t i = 0; i < T; i++)
    beit_softmax_row(P + i * T, P + i * T, bias ? bias + i * T : NULL, T);
}

/* dh^-0.5 rounded once to float, as torch's q * scale with a Python float */
static float attention_scale(size_t dh) { return (float)(1.0 / sqrt((double)dh)); }

size_t beit_attention_scratch_floats(size_t B, size_t T, size_t nH) { return B * nH * T * T; }

/* Softmax backward of one row, in place: ds = p * (ds - sum_j ds_j p_j). */
static inline __attribute__((always_inline)) void softmax_row_backward(float *ds, const float *p,
                                                                      size_t T)
{
  float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
  for (size_t j = 0; j < T; j++)
    dot += ds[j] * p[j];
#pragma omp simd
  for (size_t j = 0; j < T; j++)
    ds[j] = p[j] * (ds[j] - dot);
}

/* The same for rows rows of T values, one after another (one pair's block, inside a parallel
 * loop). */
BEIT_KERNEL_CLONES
static void softmax_block_backward(float *ds, const float *p, size_t rows, size_t T)
{
  for (size_t i = 0; i < rows; i++)
    softmax_row_backward(ds + i * T, p + i * T, T);
}

/* dbias (nH, T, T) += sum over b of dS (B, nH, T, T): one (h, i) row per iteration, b summed in
 * order (bitwise independent of the thread count). */
BEIT_KERNEL_CLONES
static void bias_grad(float *dbias, const float *dS, size_t B, size_t T, size_t nH)
{
  const size_t TT = T * T;
  const long rows = (long)(nH * T);
#pragma omp parallel for schedule(static)
  for (long hi = 0; hi < rows; hi++) {
    size_t h = (size_t)hi / T, i = (size_t)hi % T;
    float *db = dbias + h * TT + i * T;
    for (size_t b = 0; b < B; b++) {
      const float *ds = dS + (b * nH + h) * TT + i * T;
#pragma omp simd
      for (size_t j = 0; j < T; j++)
        db[j] += ds[j];
    }
  }
}

void beit_attention_forward(float *out, float *probs, const float *qkv, const float *bias,
                            size_t B, size_t T, size_t D, size_t nH)
{
  const size_t dh = D / nH, ld = 3 * D, TT = T * T;
  const float scale = attention_scale(dh);
  const long pairs = (long)(B * nH);
#pragma omp parallel for schedule(static)
  for (long bh = 0; bh < pairs; bh++) {
    size_t b = (size_t)bh / nH, h = (size_t)bh % nH;
    const float *q = qkv + b * T * ld + h * dh, *k = q + D, *v = q + 2 * D;
    float *P = probs + (size_t)bh * TT;
    /* S (T, T) = scale * Q K^T; the bias is added in the softmax pass */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)T, (int)dh, scale, q,
                (int)ld, k, (int)ld, 0.0f, P, (int)T);
    softmax_rows_inplace(P, bias ? bias + h * TT : NULL, T);
    /* out_h (T, dh), row stride D = P V */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)dh, (int)T, 1.0f, P,
                (int)T, v, (int)ld, 0.0f, out + b * T * D + h * dh, (int)D);
  }
}

void beit_attention_backward(float *dqkv, float *dbias, float *scratch, const float *dout,
                             const float *qkv, const float *probs, size_t B, size_t T, size_t D,
                             size_t nH)
{
  const size_t dh = D / nH, ld = 3 * D, TT = T * T;
  const float scale = attention_scale(dh);
  const long pairs = (long)(B * nH);
  if (!dqkv && !dbias)
    return;
#pragma omp parallel for schedule(static)
  for (long bh = 0; bh < pairs; bh++) {
    size_t b = (size_t)bh / nH, h = (size_t)bh % nH;
    size_t base = b * T * ld + h * dh;
    const float *q = qkv + base, *k = q + D, *v = q + 2 * D;
    const float *P = probs + (size_t)bh * TT;
    const float *dO = dout + b * T * D + h * dh;
    float *dS = scratch + (size_t)bh * TT;
    /* dV (T, dh) += P^T dO */
    if (dqkv)
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)T, (int)dh, (int)T, 1.0f, P,
                  (int)T, dO, (int)D, 1.0f, dqkv + base + 2 * D, (int)ld);
    /* dP (T, T) = dO V^T */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)T, (int)dh, 1.0f, dO,
                (int)D, v, (int)ld, 0.0f, dS, (int)T);
    softmax_block_backward(dS, P, T, T);
    if (!dqkv)
      continue;
    /* dQ += scale dS K; dK += scale dS^T Q */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)dh, (int)T, scale, dS,
                (int)T, k, (int)ld, 1.0f, dqkv + base, (int)ld);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)T, (int)dh, (int)T, scale, dS,
                (int)T, q, (int)ld, 1.0f, dqkv + base + D, (int)ld);
  }
  if (dbias)
    bias_grad(dbias, scratch, B, T, nH);
}

/* ---- mixed precision: bf16 operands in head-major layout (B, nH, T, dh), where every (image,
 * head) problem is one dense matrix, so each of the four products is one batched AMX call
 * (oneDNN has no fast kernel for heads strided inside the qkv rows). As under autocast, the
 * products' results are bfloat16 (the logits Q K^T and dP = dO V^T included) and the softmax
 * and its backward compute in float32. */

/* Between token rows (B, T, nb*D), nb blocks of D columns, and heads (nb, B, nH, T, dh): a copy
 * of dh-value runs, to heads (split = 1) or back (split = 0). (A loop, not memcpy: a call per
 * 128-byte run cost more than the copy.) */
BEIT_KERNEL_CLONES
static void heads_copy(beit_bf16 *heads, beit_bf16 *rows, int split, size_t nb, size_t B, size_t T,
                       size_t D, size_t nH)
{
  const size_t dh = D / nH, ld = nb * D;
#pragma omp parallel for schedule(static)
  for (size_t bt = 0; bt < B * T; bt++) {
    size_t b = bt / T, t = bt % T;
    for (size_t s = 0; s < nb; s++)
      for (size_t h = 0; h < nH; h++) {
        beit_bf16 *x = heads + (((s * B + b) * nH + h) * T + t) * dh;
        beit_bf16 *y = rows + bt * ld + s * D + h * dh;
        beit_bf16 *to = split ? x : y;
        const beit_bf16 *from = split ? y : x;
#pragma omp simd
        for (size_t c = 0; c < dh; c++)
          to[c] = from[c];
      }
  }
}

/* probs (B, nH, T, T) = softmax over each row of (logits_h + bias (nH, T, T)), and its rounding
 * back into probs_h, which holds the rounded logits on entry: one pass per row (the row is read
 * before it is written); rows = B*nH*T, in parallel. */
BEIT_KERNEL_CLONES
static void softmax_heads(float *probs, beit_bf16 *probs_h, const float *bias, size_t rows,
                          size_t T, size_t nH)
{
  const size_t TT = T * T;
#pragma omp parallel for schedule(static)
  for (size_t r = 0; r < rows; r++) {
    size_t h = (r / T) % nH, i = r % T;
    float *p = probs + r * T;
    beit_bf16 *p_h = probs_h + r * T;
#pragma omp simd
    for (size_t j = 0; j < T; j++)
      p[j] = beit_bf16_value(p_h[j]);
    beit_softmax_row(p, p, bias ? bias + h * TT + i * T : NULL, T);
#pragma omp simd
    for (size_t j = 0; j < T; j++)
      p_h[j] = beit_bf16_round(p[j]);
  }
}

/* The softmax backward of each row of dS_h (B, nH, T, T), which holds the rounded dP = dO V^T on
 * entry, against probs: dS = P (dP - sum_j dP_j P_j) in float32, stored as scale * dS rounded
 * over dP (the dQ and dK products' operand, their scale folded in: a product with an output scale
 * and a strided bf16 result ran 7x slower), and dbias (nH, T, T) += the sum over images of dS
 * (NULL skips), all in one pass: one (head, row) in parallel, the images in order (bitwise
 * bias_grad's sums). */
BEIT_KERNEL_CLONES
static void softmax_heads_backward(beit_bf16 *dS_h, float *dbias, const float *probs, size_t B,
                                   size_t nH, size_t T, float scale)
{
  const long hrows = (long)(nH * T);
#pragma omp parallel for schedule(static)
  for (long hi = 0; hi < hrows; hi++) {
    size_t h = (size_t)hi / T, i = (size_t)hi % T;
    float *db = dbias ? dbias + (size_t)hi * T : NULL;
    for (size_t b = 0; b < B; b++) {
      size_t o = ((b * nH + h) * T + i) * T;
      const float *p = probs + o;
      beit_bf16 *ds = dS_h + o;
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (size_t j = 0; j < T; j++)
        dot += beit_bf16_value(ds[j]) * p[j];
      if (db) {
#pragma omp simd
        for (size_t j = 0; j < T; j++) {
          float d = p[j] * (beit_bf16_value(ds[j]) - dot);
          db[j] += d;
          ds[j] = beit_bf16_round(scale * d);
        }
      } else {
#pragma omp simd
        for (size_t j = 0; j < T; j++)
          ds[j] = beit_bf16_round(scale * (p[j] * (beit_bf16_value(ds[j]) - dot)));
      }
    }
  }
}

/* count dense (rows, cols) problems back to back in one batched product. */
static struct beit_batch_strides dense_batch(size_t count, size_t a, size_t b, size_t c)
{
  return (struct beit_batch_strides){count, 1, a, 0, b, 0, c, 0};
}

/* oneDNN 2.6 runs a batched product whose bfloat16 result is strided inside token rows on its
 * slow gemm:jit kernel (10x), so results are written head-major and copied into rows. */
void beit_attention_forward_bf16(uint16_t *out_h, float *probs, uint16_t *probs_h,
                                 uint16_t *qkv_h, uint16_t *qkv_rows_h, const float *bias,
                                 size_t B, size_t T, size_t D, size_t nH)
{
  const size_t dh = D / nH, TT = T * T, n = B * nH, rows = n * T, hs = n * T * dh;
  heads_copy(qkv_h, qkv_rows_h, 1, 3, B, T, D, nH);
  const beit_bf16 *q = qkv_h, *k = qkv_h + hs, *v = qkv_h + 2 * hs;
  /* S = scale Q K^T, rounded, into probs_h, then the softmax (+ bias) into probs and probs_h */
  struct beit_batch_strides qk = dense_batch(n, T * dh, T * dh, TT);
  beit_gemm_bf16_out(probs_h, T, beit_op_bf16(q, dh, 0), beit_op_bf16(k, dh, 1), NULL, T, T, dh,
                     attention_scale(dh), &qk);
  softmax_heads(probs, probs_h, bias, rows, T, nH);
  /* O = P V per head, rounded, into qkv_rows_h (free again), then into token rows */
  struct beit_batch_strides pv = dense_batch(n, TT, T * dh, T * dh);
  beit_gemm_bf16_out(qkv_rows_h, dh, beit_op_bf16(probs_h, T, 0), beit_op_bf16(v, dh, 0), NULL, T,
                     dh, T, 1.0f, &pv);
  heads_copy(qkv_rows_h, out_h, 0, 1, B, T, D, nH);
}

void beit_attention_backward_bf16(uint16_t *dqkv_h, float *dbias, uint16_t *scratch_h,
                                  uint16_t *heads_h, uint16_t *dout_h, const uint16_t *qkv_h,
                                  const float *probs, const uint16_t *probs_h, size_t B,
                                  size_t T, size_t D, size_t nH)
{
  const size_t dh = D / nH, TT = T * T, n = B * nH, hs = n * T * dh;
  const float scale = attention_scale(dh);
  if (!dqkv_h && !dbias)
    return;
  const beit_bf16 *q = qkv_h, *k = qkv_h + hs, *v = qkv_h + 2 * hs;
  heads_copy(heads_h, dout_h, 1, 1, B, T, D, nH); /* dO, in the first block until dQ is made */
  struct beit_operand dO = beit_op_bf16(heads_h, dh, 0);
  struct beit_batch_strides s_tt = dense_batch(n, T * dh, T * dh, TT);
  struct beit_batch_strides s_td = dense_batch(n, TT, T * dh, T * dh);
  if (dqkv_h) /* dV = P^T dO, rounded, into the third block of heads */
    beit_gemm_bf16_out(heads_h + 2 * hs, dh, beit_op_bf16(probs_h, T, 1), dO, NULL, T, dh, T,
                       1.0f, &s_td);
  /* dP = dO V^T, rounded, into scratch_h; then the softmax backward over it */
  beit_gemm_bf16_out(scratch_h, T, dO, beit_op_bf16(v, dh, 1), NULL, T, T, dh, 1.0f, &s_tt);
  softmax_heads_backward(scratch_h, dbias, probs, B, nH, T, scale);
  if (!dqkv_h)
    return;
  /* dQ = (scale dS) K; dK = (scale dS)^T Q; then all three into the qkv rows */
  beit_gemm_bf16_out(heads_h, dh, beit_op_bf16(scratch_h, T, 0), beit_op_bf16(k, dh, 0), NULL, T,
                     dh, T, 1.0f, &s_td);
  beit_gemm_bf16_out(heads_h + hs, dh, beit_op_bf16(scratch_h, T, 1), beit_op_bf16(q, dh, 0), NULL,
                     T, dh, T, 1.0f, &s_td);
  heads_copy(heads_h, dqkv_h, 0, 3, B, T, D, nH);
}

void beit_attention_forward_naive(float *out, float *probs, const float *qkv, const float *bias,
                                  size_t B, size_t T, size_t D, size_t nH)
{
  const size_t dh = D / nH, ld = 3 * D;
  const float scale = attention_scale(dh);
  for (size_t b = 0; b < B; b++)
    for (size_t h = 0; h < nH; h++) {
      float *P = probs + (b * nH + h) * T * T;
      for (size_t i = 0; i < T; i++) {
        const float *q = qkv + (b * T + i) * ld + h * dh;
        float *row = P + i * T;
        float mx = -INFINITY;
        for (size_t j = 0; j < T; j++) {
          const float *k = qkv + (b * T + j) * ld + D + h * dh;
          float s = 0.0f;
          for (size_t c = 0; c < dh; c++)
            s += q[c] * k[c];
          row[j] = scale * s + (bias ? bias[(h * T + i) * T + j] : 0.0f);
          if (row[j] > mx)
            mx = row[j];
        }
        float sum = 0.0f;
        for (size_t j = 0; j < T; j++) {
          row[j] = expf(row[j] - mx);
          sum += row[j];
        }
        for (size_t j = 0; j < T; j++)
          row[j] /= sum;
        float *o = out + (b * T + i) * D + h * dh;
        for (size_t c = 0; c < dh; c++) {
          float acc = 0.0f;
          for (size_t j = 0; j < T; j++)
            acc += row[j] * qkv[(b * T + j) * ld + 2 * D + h * dh + c];
          o[c] = acc;
        }
      }
    }
}

void beit_attention_backward_naive(float *dqkv, float *dbias, const float *dout,
                                   const float *qkv, const float *probs, size_t B, size_t T,
                                   size_t D, size_t nH)
{
  const size_t dh = D / nH, ld = 3 * D;
  const float scale = attention_scale(dh);
  for (size_t b = 0; b < B; b++)
    for (size_t h = 0; h < nH; h++) {
      const float *P = probs + (b * nH + h) * T * T;
      for (size_t i = 0; i < T; i++) {
        const float *dO = dout + (b * T + i) * D + h * dh;
        const float *q = qkv + (b * T + i) * ld + h * dh;
        size_t qi = (b * T + i) * ld + h * dh; /* offset of q_i (and dq_i) */
        /* dP_ij = dO_i . V_j; dot = sum_j P_ij dP_ij (dP recomputed: no scratch here) */
        float dot = 0.0f;
        for (size_t j = 0; j < T; j++) {
          const float *v = qkv + (b * T + j) * ld + 2 * D + h * dh;
          float dp = 0.0f;
          for (size_t c = 0; c < dh; c++)
            dp += dO[c] * v[c];
          dot += P[i * T + j] * dp;
        }
        for (size_t j = 0; j < T; j++) {
          size_t kj = (b * T + j) * ld + D + h * dh, vj = kj + D;
          const float *k = qkv + kj, *v = qkv + vj;
          float pij = P[i * T + j];
          float dp = 0.0f;
          for (size_t c = 0; c < dh; c++)
            dp += dO[c] * v[c];
          float ds = pij * (dp - dot);
          for (size_t c = 0; c < dh && dqkv; c++) {
            dqkv[vj + c] += pij * dO[c];
            dqkv[qi + c] += scale * ds * k[c];
            dqkv[kj + c] += scale * ds * q[c];
          }
          if (dbias)
            dbias[(h * T + i) * T + j] += ds;
        }
      }
    }
}
