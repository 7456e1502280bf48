/* Relative position bias (spec section 2): the (T, T) index into the (R, nH) table and the
 * gather/scatter between the table and the (nH, T, T) bias added to the attention logits.
 *
 * The backward scatter hits each table row many times: it is parallel over heads (head h
 * owns column h of the table), with (i, j) visited in order into a dense row of sums that is then
 * added to the column, so it is race-free and bitwise independent of the thread count. */
#include "kernels.h"

#include <stdlib.h>

void beit_relpos_index(int32_t *index, size_t Wh, size_t Ww)
{
  const size_t T = Wh * Ww + 1;
  const int32_t R = (int32_t)((2 * Wh - 1) * (2 * Ww - 1) + 3);
  for (size_t i = 1; i < T; i++) {
    long hi = (long)((i - 1) / Ww), wi = (long)((i - 1) % Ww);
    for (size_t j = 1; j < T; j++) {
      long hj = (long)((j - 1) / Ww), wj = (long)((j - 1) % Ww);
      /* query minus key; the height offset is the major digit */
      index[i * T + j] =
          (int32_t)((hi - hj + (long)Wh - 1) * (2 * (long)Ww - 1) + (wi - wj + (long)Ww - 1));
    }
  }
  for (size_t j = 0; j < T; j++)
    index[j] = R - 3; /* cls -> token */
  for (size_t i = 0; i < T; i++)
    index[i * T] = R - 2; /* token -> cls */
  index[0] = R - 1;       /* cls -> cls */
}

void beit_relpos_forward(float *bias, const float *table, const int32_t *index, size_t T,
                         size_t nH)
{
  const long rows = (long)(nH * T);
#pragma omp parallel for schedule(static) if (nH * T * T > 32768)
  for (long r = 0; r < rows; r++) {
    size_t h = (size_t)r / T, i = (size_t)r % T;
    const int32_t *idx = index + i * T;
    float *out = bias + (size_t)r * T;
    for (size_t j = 0; j < T; j++)
      out[j] = table[(size_t)idx[j] * nH + h];
  }
}

void beit_relpos_backward(float *dtable, const float *dbias, const int32_t *index, size_t T,
                          size_t nH)
{
  if (!dtable)
    return;
  const size_t R = (size_t)index[0] + 1; /* cls -> cls is the table's last row */
  float *sums = malloc(nH * R * sizeof *sums);
#pragma omp parallel for schedule(static) if (nH * T * T > 32768)
  for (size_t h = 0; h < nH; h++) {
    const float *db = dbias + h * T * T;
    if (!sums) { /* out of memory: straight into the strided table column */
      for (size_t ij = 0; ij < T * T; ij++)
        dtable[(size_t)index[ij] * nH + h] += db[ij];
      continue;
    }
    /* into a dense per-head row first: the strided read-modify-writes of the table column cost
     * 4x more than the sums */
    float *sum = sums + h * R;
    for (size_t r = 0; r < R; r++)
      sum[r] = 0.0f;
    for (size_t ij = 0; ij < T * T; ij++)
      sum[index[ij]] += db[ij];
    for (size_t r = 0; r < R; r++)
      dtable[r * nH + h] += sum[r];
  }
  free(sums);
}
