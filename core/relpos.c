/* Relative position bias (spec section 2): the (T, T) index into the (R, nH) table and the
 * gather/scatter between the table and the (nH, T, T) bias added to the attention logits.
 *
 * The backward scatter hits each table row many times: it is parallel over heads (head h
 * owns column h of the table), with (i, j) visited in order into dense rows of sums (on the stack,
 * RELPOS_CHUNK table rows at a time) that are then added to the column, so it is race-free and
 * bitwise independent of the thread count. */
#include "kernels.h"

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

/* Table rows summed at once per head, on the stack (a 14x14 grid's table has 732 rows). */
#define RELPOS_CHUNK 1024

void beit_relpos_backward(float *dtable, const float *dbias, const int32_t *index, size_t T,
                          size_t nH)
{
  if (!dtable)
    return;
  const size_t R = (size_t)index[0] + 1; /* cls -> cls is the table's last row */
#pragma omp parallel for schedule(static) if (nH * T * T > 32768)
  for (size_t h = 0; h < nH; h++) {
    const float *db = dbias + h * T * T;
    /* into dense rows of sums first: the strided read-modify-writes of the table column cost
     * 10x more than the sums */
    for (size_t r0 = 0; r0 < R; r0 += RELPOS_CHUNK) {
      size_t w = R - r0 < RELPOS_CHUNK ? R - r0 : RELPOS_CHUNK;
      float sum[RELPOS_CHUNK];
      for (size_t r = 0; r < w; r++)
        sum[r] = 0.0f;
      for (size_t ij = 0; ij < T * T; ij++) {
        size_t r = (size_t)index[ij] - r0;
        if (r < w) /* (an index below r0 wraps around to a large value) */
          sum[r] += db[ij];
      }
      for (size_t r = 0; r < w; r++)
        dtable[(r0 + r) * nH + h] += sum[r];
    }
  }
}
