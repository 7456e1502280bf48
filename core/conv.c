/* 2-D convolution (stride 1, "same" padding, odd K) as im2col over row chunks + cblas_sgemm,
 * forward and backward, with plain-loop twins. Contracts in conv.h.
 *
 * Work items are (image, chunk of output rows). The chunk is sized so that its im2col block
 * (C*K*K rows by rows*W columns) stays near CONV_COL_FLOATS, about the L2 + a share of L3, so
 * the column matrix is written and packed by the GEMM while still in cache. The input gradient
 * is itself a forward convolution of dout with the flipped, channel-transposed kernel
 * (stride 1 and p = (K-1)/2 make the transpose a "same" convolution), so it reuses the forward
 * chunking and never needs a racing col2im. The weight gradient is summed per thread into a
 * private buffer and reduced at the end, in a fixed order (deterministic for a thread count). */
#include "conv.h"

#include <cblas.h>
#include <omp.h>
#include <string.h>

#define CONV_COL_FLOATS ((size_t)1 << 19) /* 2 MB of im2col per thread and chunk */
#define CONV_MIN_COLS 256                 /* below this the GEMM's packing overhead dominates */

struct conv_chunks {
  size_t rows, count;
};

/* Rows of output per work item for a convolution reading C channels with a K x K kernel. */
static struct conv_chunks conv_chunking(size_t C, size_t H, size_t W, size_t K)
{
  size_t ckk = C * K * K;
  size_t cols = CONV_COL_FLOATS / (ckk ? ckk : 1);
  if (cols < CONV_MIN_COLS)
    cols = CONV_MIN_COLS;
  size_t rows = cols / W;
  if (rows < 1)
    rows = 1;
  if (rows > H)
    rows = H;
  size_t count = (H + rows - 1) / rows;
  rows = (H + count - 1) / count; /* even out the chunks */
  count = (H + rows - 1) / rows;
  return (struct conv_chunks){rows, count};
}

static int threads_of(int nthreads)
{
  return nthreads < 1 ? 1 : nthreads;
}

/* col (C*K*K, (y1-y0)*W): rows of the (optionally relu'd) image img (C, H, W) shifted by each
 * kernel tap, zero outside the image. Plain loops, not memcpy/memset: rows are short (W = 7..112
 * floats) and a library call per row costs more than the copy. */
static void im2col_rows(float *col, const float *img, int relu, size_t C, size_t H, size_t W,
                        size_t K, size_t y0, size_t y1)
{
  const long p = (long)(K - 1) / 2;
  const size_t n = (y1 - y0) * W;
  for (size_t c = 0; c < C; c++)
    for (size_t ky = 0; ky < K; ky++) {
      /* output rows y whose source row y + ky - p lies inside the image */
      const long lo = p - (long)ky, hi = (long)H + p - (long)ky;
      const size_t ya = lo > (long)y0 ? (size_t)lo : y0;
      const size_t yb = hi < (long)y1 ? (hi > (long)ya ? (size_t)hi : ya) : y1;
      const float *src_rows = img + c * H * W + (ya + ky - (size_t)p) * W; /* row of ya */
      for (size_t kx = 0; kx < K; kx++) {
        float *dst = col + ((c * K + ky) * K + kx) * n;
        const long dx = (long)kx - p;
        const size_t xlo = dx < 0 ? (size_t)-dx : 0;
        const size_t xhi = dx > 0 ? (W > (size_t)dx ? W - (size_t)dx : 0) : W;
        for (size_t i = 0; i < (ya - y0) * W; i++)
          dst[i] = 0.0f;
        for (size_t i = (yb - y0) * W; i < n; i++)
          dst[i] = 0.0f;
        if (dx == 0) { /* the rows are one contiguous run */
          float *d = dst + (ya - y0) * W;
          const size_t m = (yb - ya) * W;
          if (relu)
            for (size_t i = 0; i < m; i++)
              d[i] = src_rows[i] > 0.0f ? src_rows[i] : 0.0f;
          else
            for (size_t i = 0; i < m; i++)
              d[i] = src_rows[i];
          continue;
        }
        const size_t m = xhi > xlo ? xhi - xlo : 0, shift = (size_t)((long)xlo + dx);
        for (size_t y = ya; y < yb; y++) {
          float *d = dst + (y - y0) * W;
          const float *s = src_rows + (y - ya) * W + shift; /* source of d[xlo] */
          for (size_t x = 0; x < xlo; x++)
            d[x] = 0.0f;
          if (relu)
            for (size_t i = 0; i < m; i++)
              d[xlo + i] = s[i] > 0.0f ? s[i] : 0.0f;
          else
            for (size_t i = 0; i < m; i++)
              d[xlo + i] = s[i];
          for (size_t x = xlo + m; x < W; x++)
            d[x] = 0.0f;
        }
      }
    }
}

/* dimg (C, H, W) += [mask > 0] * (sum over taps of dcol (C*K*K, H*W) shifted back): the adjoint
 * of im2col over a whole image. mask NULL: no mask. */
static void col2im_add(float *dimg, const float *dcol, const float *mask, size_t C, size_t H,
                       size_t W, size_t K)
{
  const long p = (long)(K - 1) / 2;
  const size_t HW = H * W;
  for (size_t c = 0; c < C; c++)
    for (size_t ky = 0; ky < K; ky++) {
      const long lo = p - (long)ky, hi = (long)H + p - (long)ky;
      const size_t ya = lo > 0 ? (size_t)lo : 0;
      const size_t yb = hi < (long)H ? (hi > (long)ya ? (size_t)hi : ya) : H;
      for (size_t kx = 0; kx < K; kx++) {
        const float *src = dcol + ((c * K + ky) * K + kx) * HW;
        const long dx = (long)kx - p;
        const size_t xlo = dx < 0 ? (size_t)-dx : 0;
        const size_t xhi = dx > 0 ? (W > (size_t)dx ? W - (size_t)dx : 0) : W;
        const size_t m = xhi > xlo ? xhi - xlo : 0, shift = (size_t)((long)xlo + dx);
        for (size_t y = ya; y < yb; y++) {
          const size_t at = c * HW + (y + ky - (size_t)p) * W + shift; /* target of s[xlo] */
          float *d = dimg + at;
          const float *s = src + y * W + xlo;
          if (mask) {
            const float *mk = mask + at;
            for (size_t i = 0; i < m; i++)
              d[i] += mk[i] > 0.0f ? s[i] : 0.0f;
          } else {
            for (size_t i = 0; i < m; i++)
              d[i] += s[i];
          }
        }
      }
    }
}

/* The GEMM's right operand for rows y0..y1 of image img: the image itself for a plain 1x1
 * convolution, else its im2col block in col. Sets *ld. */
static const float *conv_operand(float *col, size_t *ld, const float *img, int relu, size_t C,
                                 size_t H, size_t W, size_t K, size_t y0, size_t y1)
{
  if (K == 1 && !relu) {
    *ld = H * W;
    return img + y0 * W;
  }
  im2col_rows(col, img, relu, C, H, W, K, y0, y1);
  *ld = (y1 - y0) * W;
  return col;
}

/* One (image, chunk) of the forward. */
static void forward_item(float *out, float *col, const float *inp, const float *weight,
                         const float *bias, float scale, int accumulate, unsigned flags,
                         size_t C, size_t H, size_t W, size_t OC, size_t K, size_t y0, size_t y1)
{
  const size_t HW = H * W, n = (y1 - y0) * W, ckk = C * K * K;
  size_t ld;
  const float *b = conv_operand(col, &ld, inp, flags & BEIT_CONV_RELU_INPUT, C, H, W, K, y0, y1);
  float *o = out + y0 * W;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)OC, (int)n, (int)ckk, scale, weight,
              (int)ckk, b, (int)ld, accumulate ? 1.0f : 0.0f, o, (int)HW);
  const int relu = (flags & BEIT_CONV_RELU_OUTPUT) != 0;
  if (!bias && !relu)
    return;
  for (size_t oc = 0; oc < OC; oc++) {
    float *row = o + oc * HW;
    const float add = bias ? scale * bias[oc] : 0.0f;
    if (relu)
      for (size_t j = 0; j < n; j++) {
        float v = row[j] + add;
        row[j] = v > 0.0f ? v : 0.0f;
      }
    else
      for (size_t j = 0; j < n; j++)
        row[j] += add;
  }
}

static size_t col_floats(size_t C, size_t H, size_t W, size_t K, int relu)
{
  if (K == 1 && !relu)
    return 0;
  struct conv_chunks ch = conv_chunking(C, H, W, K);
  return C * K * K * ch.rows * W;
}

size_t beit_conv2d_scratch_floats(size_t C, size_t H, size_t W, size_t OC, size_t K, int nthreads)
{
  /* Sized for the relu-input variant, which needs a column block even for K = 1. */
  return (size_t)threads_of(nthreads) * col_floats(C, H, W, K, 1);
}

void beit_conv2d_forward(float *out, float *scratch, const float *inp, const float *weight,
                         const float *bias, float scale, int accumulate, unsigned flags,
                         size_t B, size_t C, size_t H, size_t W, size_t OC, size_t K,
                         int nthreads)
{
  const int nt = threads_of(nthreads);
  const struct conv_chunks ch = conv_chunking(C, H, W, K);
  const size_t slot = col_floats(C, H, W, K, 1);
  const size_t items = B * ch.count;
  if (nt > 1 && items >= (size_t)nt) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t it = 0; it < items; it++) {
      const size_t b = it / ch.count, y0 = (it % ch.count) * ch.rows;
      const size_t y1 = y0 + ch.rows < H ? y0 + ch.rows : H;
      forward_item(out + b * OC * H * W, scratch + (size_t)omp_get_thread_num() * slot,
                   inp + b * C * H * W, weight, bias, scale, accumulate, flags, C, H, W, OC, K,
                   y0, y1);
    }
  } else {
    for (size_t it = 0; it < items; it++) {
      const size_t b = it / ch.count, y0 = (it % ch.count) * ch.rows;
      const size_t y1 = y0 + ch.rows < H ? y0 + ch.rows : H;
      forward_item(out + b * OC * H * W, scratch, inp + b * C * H * W, weight, bias, scale,
                   accumulate, flags, C, H, W, OC, K, y0, y1);
    }
  }
}

/* ------------------------------------------------------------------------------- backward */

/* Per-thread slot of the backward: a column block (either direction), a (C, chunk) block of the
 * input gradient, and a private weight gradient. */
struct bwd_layout {
  struct conv_chunks fw, bw; /* chunking of the weight-gradient and input-gradient passes */
  size_t col, tmp, dw, slot, wt;
};

static struct bwd_layout bwd_layout(size_t C, size_t H, size_t W, size_t OC, size_t K)
{
  struct bwd_layout l;
  l.fw = conv_chunking(C, H, W, K);
  l.bw = conv_chunking(K == 1 ? C : OC, H, W, K);
  size_t colf = col_floats(C, H, W, K, 1);
  size_t colb = K == 1 ? 0 : OC * K * K * l.bw.rows * W;
  l.col = colf > colb ? colf : colb;
  l.tmp = C * l.bw.rows * W;
  l.dw = OC * C * K * K;
  l.slot = l.col + l.tmp + l.dw;
  l.wt = K == 1 ? 0 : OC * C * K * K;
  return l;
}

size_t beit_conv2d_backward_scratch_floats(size_t C, size_t H, size_t W, size_t OC, size_t K,
                                           int nthreads)
{
  struct bwd_layout l = bwd_layout(C, H, W, OC, K);
  return l.wt + (size_t)threads_of(nthreads) * l.slot;
}

/* dw (OC, C*K*K) += scale * dout[:, rows y0..y1] . a[:, rows]^T for one image. */
static void dweight_item(float *dw, float *col, const float *dout, const float *inp, float scale,
                         unsigned flags, size_t C, size_t H, size_t W, size_t OC, size_t K,
                         size_t y0, size_t y1)
{
  const size_t HW = H * W, n = (y1 - y0) * W, ckk = C * K * K;
  size_t ld;
  const float *a = conv_operand(col, &ld, inp, flags & BEIT_CONV_RELU_INPUT, C, H, W, K, y0, y1);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)OC, (int)ckk, (int)n, scale,
              dout + y0 * W, (int)HW, a, (int)ld, 1.0f, dw, (int)ckk);
}

/* dinp[:, rows y0..y1] += mask * scale * conv_transpose(dout) for one image. wt is the flipped,
 * transposed kernel (C, OC, K, K) when K > 1. */
static void dinp_item(float *dinp, float *col, float *tmp, const float *dout, const float *inp,
                      const float *weight, const float *wt, float scale, unsigned flags, size_t C,
                      size_t H, size_t W, size_t OC, size_t K, size_t y0, size_t y1)
{
  const size_t HW = H * W, n = (y1 - y0) * W;
  const int relu = (flags & BEIT_CONV_RELU_INPUT) != 0;
  float *dst = relu ? tmp : dinp + y0 * W;
  const int ldd = relu ? (int)n : (int)HW;
  const float beta = relu ? 0.0f : 1.0f;
  if (K == 1) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)C, (int)n, (int)OC, scale, weight,
                (int)C, dout + y0 * W, (int)HW, beta, dst, ldd);
  } else {
    im2col_rows(col, dout, 0, OC, H, W, K, y0, y1);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)C, (int)n, (int)(OC * K * K),
                scale, wt, (int)(OC * K * K), col, (int)n, beta, dst, ldd);
  }
  if (!relu)
    return;
  for (size_t c = 0; c < C; c++) {
    float *d = dinp + c * HW + y0 * W;
    const float *x = inp + c * HW + y0 * W;
    const float *t = tmp + c * n;
    for (size_t j = 0; j < n; j++)
      d[j] += x[j] > 0.0f ? t[j] : 0.0f;
  }
}

/* The input gradient either as a forward convolution of dout with the flipped kernel (expands
 * dout's OC channels K*K times) or as W^T dout followed by col2im (expands C channels): the
 * latter when C < OC and a whole image fits one column block (no chunk boundaries to race on). */
static int col2im_pays(const struct bwd_layout *l, size_t C, size_t OC, size_t K)
{
  return K > 1 && C < OC && l->fw.count == 1;
}

void beit_conv2d_backward(float *dinp, float *dweight, float *dbias, float *scratch,
                          const float *dout, const float *inp, const float *weight, float scale,
                          unsigned flags, size_t B, size_t C, size_t H, size_t W, size_t OC,
                          size_t K, int nthreads)
{
  const int nt = threads_of(nthreads);
  const size_t HW = H * W, KK = K * K;
  const struct bwd_layout l = bwd_layout(C, H, W, OC, K);
  float *wt = scratch, *slots = scratch + l.wt;

  if (dbias) {
#pragma omp parallel for num_threads(nt) schedule(static) if (OC * B * HW > 32768)
    for (size_t o = 0; o < OC; o++) {
      double s = 0.0;
      for (size_t b = 0; b < B; b++) {
        const float *d = dout + (b * OC + o) * HW;
        float part = 0.0f;
#pragma omp simd reduction(+ : part) /* lets the sum vectorise (reassociates it) */
        for (size_t j = 0; j < HW; j++)
          part += d[j];
        s += part;
      }
      dbias[o] += (float)(scale * s);
    }
  }

  if (dweight) {
    const size_t items = B * l.fw.count;
    if (nt > 1 && items >= (size_t)nt) {
#pragma omp parallel num_threads(nt)
      {
        float *slot = slots + (size_t)omp_get_thread_num() * l.slot;
        float *dw = slot + l.col + l.tmp;
        memset(dw, 0, l.dw * sizeof *dw);
#pragma omp for schedule(static)
        for (size_t it = 0; it < items; it++) {
          const size_t b = it / l.fw.count, y0 = (it % l.fw.count) * l.fw.rows;
          const size_t y1 = y0 + l.fw.rows < H ? y0 + l.fw.rows : H;
          dweight_item(dw, slot, dout + b * OC * HW, inp + b * C * HW, scale, flags, C, H, W,
                       OC, K, y0, y1);
        }
#pragma omp for schedule(static)
        for (size_t i = 0; i < l.dw; i++) {
          float s = dweight[i];
          for (int t = 0; t < nt; t++)
            s += slots[(size_t)t * l.slot + l.col + l.tmp + i];
          dweight[i] = s;
        }
      }
    } else {
      for (size_t it = 0; it < items; it++) {
        const size_t b = it / l.fw.count, y0 = (it % l.fw.count) * l.fw.rows;
        const size_t y1 = y0 + l.fw.rows < H ? y0 + l.fw.rows : H;
        dweight_item(dweight, slots, dout + b * OC * HW, inp + b * C * HW, scale, flags, C, H,
                     W, OC, K, y0, y1);
      }
    }
  }

  if (dinp && col2im_pays(&l, C, OC, K)) {
    /* per whole image: dcol = W^T dout, then scattered back (fewer channels to expand) */
    const int par = nt > 1 && B >= (size_t)nt;
#pragma omp parallel for num_threads(nt) schedule(static) if (par)
    for (size_t b = 0; b < B; b++) {
      float *dcol = slots + (size_t)(par ? omp_get_thread_num() : 0) * l.slot;
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)(C * KK), (int)HW, (int)OC,
                  scale, weight, (int)(C * KK), dout + b * OC * HW, (int)HW, 0.0f, dcol, (int)HW);
      col2im_add(dinp + b * C * HW, dcol,
                 (flags & BEIT_CONV_RELU_INPUT) ? inp + b * C * HW : NULL, C, H, W, K);
    }
  } else if (dinp) {
    if (K > 1) {
      /* wt[c][o][K-1-ky][K-1-kx] = weight[o][c][ky][kx] */
#pragma omp parallel for num_threads(nt) schedule(static) if (OC * C * KK > 65536)
      for (size_t c = 0; c < C; c++)
        for (size_t o = 0; o < OC; o++) {
          const float *src = weight + (o * C + c) * KK;
          float *dst = wt + (c * OC + o) * KK;
          for (size_t k = 0; k < KK; k++)
            dst[KK - 1 - k] = src[k];
        }
    }
    const size_t items = B * l.bw.count;
    if (nt > 1 && items >= (size_t)nt) {
#pragma omp parallel for num_threads(nt) schedule(static)
      for (size_t it = 0; it < items; it++) {
        float *slot = slots + (size_t)omp_get_thread_num() * l.slot;
        const size_t b = it / l.bw.count, y0 = (it % l.bw.count) * l.bw.rows;
        const size_t y1 = y0 + l.bw.rows < H ? y0 + l.bw.rows : H;
        dinp_item(dinp + b * C * HW, slot, slot + l.col, dout + b * OC * HW, inp + b * C * HW,
                  weight, wt, scale, flags, C, H, W, OC, K, y0, y1);
      }
    } else {
      for (size_t it = 0; it < items; it++) {
        const size_t b = it / l.bw.count, y0 = (it % l.bw.count) * l.bw.rows;
        const size_t y1 = y0 + l.bw.rows < H ? y0 + l.bw.rows : H;
        dinp_item(dinp + b * C * HW, slots, slots + l.col, dout + b * OC * HW, inp + b * C * HW,
                  weight, wt, scale, flags, C, H, W, OC, K, y0, y1);
      }
    }
  }
}

double beit_conv2d_flops(size_t B, size_t C, size_t H, size_t W, size_t OC, size_t K)
{
  return 2.0 * (double)B * (double)OC * (double)(H * W) * (double)(C * K * K);
}

/* ---------------------------------------------------------------------------- naive twins */

static float relu_if(float x, int relu)
{
  return relu && x < 0.0f ? 0.0f : x;
}

void beit_conv2d_forward_naive(float *out, const float *inp, const float *weight,
                               const float *bias, float scale, int accumulate, unsigned flags,
                               size_t B, size_t C, size_t H, size_t W, size_t OC, size_t K)
{
  const long p = (long)(K - 1) / 2;
  const int rin = (flags & BEIT_CONV_RELU_INPUT) != 0, rout = (flags & BEIT_CONV_RELU_OUTPUT) != 0;
  for (size_t b = 0; b < B; b++)
    for (size_t o = 0; o < OC; o++)
      for (size_t y = 0; y < H; y++)
        for (size_t x = 0; x < W; x++) {
          double s = bias ? bias[o] : 0.0;
          for (size_t c = 0; c < C; c++)
            for (size_t ky = 0; ky < K; ky++)
              for (size_t kx = 0; kx < K; kx++) {
                long sy = (long)y + (long)ky - p, sx = (long)x + (long)kx - p;
                if (sy < 0 || sy >= (long)H || sx < 0 || sx >= (long)W)
                  continue;
                float a = relu_if(inp[((b * C + c) * H + (size_t)sy) * W + (size_t)sx], rin);
                s += (double)weight[((o * C + c) * K + ky) * K + kx] * a;
              }
          float *dst = &out[((b * OC + o) * H + y) * W + x];
          float v = (float)((accumulate ? *dst : 0.0) + scale * s);
          *dst = relu_if(v, rout);
        }
}

void beit_conv2d_backward_naive(float *dinp, float *dweight, float *dbias, const float *dout,
                                const float *inp, const float *weight, float scale,
                                unsigned flags, size_t B, size_t C, size_t H, size_t W,
                                size_t OC, size_t K)
{
  const long p = (long)(K - 1) / 2;
  const int rin = (flags & BEIT_CONV_RELU_INPUT) != 0;
  for (size_t b = 0; b < B; b++)
    for (size_t o = 0; o < OC; o++)
      for (size_t y = 0; y < H; y++)
        for (size_t x = 0; x < W; x++) {
          const float g = scale * dout[((b * OC + o) * H + y) * W + x];
          if (dbias)
            dbias[o] += g;
          for (size_t c = 0; c < C; c++)
            for (size_t ky = 0; ky < K; ky++)
              for (size_t kx = 0; kx < K; kx++) {
                long sy = (long)y + (long)ky - p, sx = (long)x + (long)kx - p;
                if (sy < 0 || sy >= (long)H || sx < 0 || sx >= (long)W)
                  continue;
                size_t ii = ((b * C + c) * H + (size_t)sy) * W + (size_t)sx;
                size_t wi = ((o * C + c) * K + ky) * K + kx;
                if (dweight)
                  dweight[wi] += g * relu_if(inp[ii], rin);
                if (dinp && (!rin || inp[ii] > 0.0f))
                  dinp[ii] += g * weight[wi];
              }
        }
}
