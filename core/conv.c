/* 2-D convolution (stride 1, "same" padding, odd K) as im2col over row chunks + one matrix
 * product per chunk (core/gemm.h), forward and backward, in float32 or with bfloat16 operands,
 * with plain-loop twins. Contracts in conv.h.
 *
 * Work items are (image, chunk of output rows). The chunk is sized so that its im2col block
 * (C*K*K rows by rows*W columns) stays near CONV_COL_FLOATS, about the L2 + a share of L3, so
 * the column matrix is written and packed by the GEMM while still in cache. The input gradient
 * is itself a forward convolution of dout with the flipped, channel-transposed kernel
 * (stride 1 and p = (K-1)/2 make the transpose a "same" convolution), so it reuses the forward
 * chunking and never needs a racing col2im. The weight gradient is summed per thread into a
 * private buffer and reduced at the end, in a fixed order (deterministic for a thread count).
 *
 * bf16: the same items, with im2col writing bfloat16 columns and the products on oneDNN
 * (float32 accumulation). A chunk's band of input rows (its rows and the kernel's halo) is rounded
 * once, with AVX512-BF16's conversion, into a staging block, and the K*K shifted copies are bf16
 * copies of it; a 1x1 convolution's "columns" are its input rows, rounded once per chunk. What
 * oneDNN 2.6 does with our layouts, measured (ONEDNN_VERBOSE): a dense product runs AMX
 * (brg:avx512_core_amx_bf16); an output with row stride wider than the chunk, a transposed
 * left operand, or a left operand with a leading dimension wider than K fall to gemm:jit; a
 * zero batch stride (a weight shared by several images) to ref:any. So a chunk that is not a
 * whole image computes into a dense float32 block of the thread's scratch, and the epilogue
 * (scale, bias, accumulate, ReLU, the input gradient's ReLU mask) moves it into place; the
 * input gradient's W^T and flipped kernel are dense transposed copies made once per call; the
 * weight gradient takes the columns transposed as its right operand, which AMX accepts. Chunks
 * are sized by bytes (CONV_BF16_BYTES) over everything a chunk touches; 1 and 2 MB measured the
 * same. */
#include "conv.h"

#include <omp.h>
#include <string.h>

#include "gemm.h"
#include "isa.h"

#define CONV_COL_FLOATS ((size_t)1 << 19) /* 2 MB of im2col per thread and chunk */
#define CONV_MIN_COLS 256                 /* below this the GEMM's packing overhead dominates */
#define CONV_BF16_BYTES ((size_t)1 << 20) /* bf16: everything one chunk touches (1-2 MB: same) */
#define ALWAYS_INLINE static inline __attribute__((always_inline))

struct conv_chunks {
  size_t rows, count;
};

/* Rows of output per work item when a chunk may hold cols output pixels. */
static struct conv_chunks chunk_rows(size_t cols, size_t H, size_t W)
{
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

/* float32: rows per work item for a convolution reading C channels with a K x K kernel. */
static struct conv_chunks conv_chunking(size_t C, size_t H, size_t W, size_t K)
{
  size_t ckk = C * K * K;
  return chunk_rows(CONV_COL_FLOATS / (ckk ? ckk : 1), H, W);
}

/* bf16: rows per work item when a chunk touches bytes_per_col bytes of scratch per pixel. */
static struct conv_chunks bf16_chunking(size_t bytes_per_col, size_t H, size_t W)
{
  return chunk_rows(CONV_BF16_BYTES / (bytes_per_col ? bytes_per_col : 1), H, W);
}

static int threads_of(int nthreads)
{
  return nthreads < 1 ? 1 : nthreads;
}

/* Floats that hold n bfloat16 values, rounded up to a 64-byte multiple. */
static size_t bf16_floats(size_t n)
{
  return (n + 31) / 32 * 16;
}

/* d (m) = bfloat16 of (relu ? max(s, 0) : s), round to nearest even. x86-64 CPUs with
 * AVX512-BF16 (every CPU the bf16 path runs on: oneDNN's bf16 matmul needs it or AMX) convert 16
 * values per instruction, several times faster than beit_bf16_round's integer emulation; it
 * flushes float32 denormals (|x| < 2^-126) to zero where beit_bf16_round keeps them, far below
 * the resolution of any value a convolution meets. Other CPUs take beit_bf16_round. */
BEIT_KERNEL_CLONES
static void round_run_soft(beit_bf16 *d, const float *s, size_t m, int relu)
{
  if (relu)
    for (size_t i = 0; i < m; i++)
      d[i] = beit_bf16_round(s[i] > 0.0f ? s[i] : 0.0f);
  else
    for (size_t i = 0; i < m; i++)
      d[i] = beit_bf16_round(s[i]);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) static void
round_run_avx512(beit_bf16 *d, const float *s, size_t m, int relu)
{
  const __m512 zero = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= m; i += 16) {
    __m512 v = _mm512_loadu_ps(s + i);
    if (relu)
      v = _mm512_max_ps(v, zero); /* NaN -> 0, as the float32 kernels' s > 0 ? s : 0 */
    _mm256_storeu_si256((__m256i *)(d + i), (__m256i)_mm512_cvtneps_pbh(v));
  }
  if (i < m) {
    const __mmask16 k = (__mmask16)((1u << (m - i)) - 1);
    __m512 v = _mm512_maskz_loadu_ps(k, s + i);
    if (relu)
      v = _mm512_max_ps(v, zero);
    _mm256_mask_storeu_epi16(d + i, k, (__m256i)_mm512_cvtneps_pbh(v));
  }
}

static void round_run(beit_bf16 *d, const float *s, size_t m, int relu)
{
  if (__builtin_cpu_supports("avx512bf16"))
    round_run_avx512(d, s, m, relu);
  else
    round_run_soft(d, s, m, relu);
}
#else
static void round_run(beit_bf16 *d, const float *s, size_t m, int relu)
{
  round_run_soft(d, s, m, relu);
}
#endif

/* What im2col writes from what: float32 from float32, bfloat16 rounded from float32, bfloat16
 * copied from bfloat16 (a staged copy of the rows, see im2col_rows_bf16). */
enum im2col_mode { IM2COL_F32, IM2COL_ROUND, IM2COL_COPY16 };

/* col[off .. off+m) = (relu ? max(s, 0) : s)[0 .. m), s = src + soff, in the mode's types. */
ALWAYS_INLINE void put_run(void *col, enum im2col_mode mode, size_t off, const void *src,
                           size_t soff, size_t m, int relu)
{
  if (mode == IM2COL_COPY16) { /* relu was applied when the rows were staged */
    beit_bf16 *d = (beit_bf16 *)col + off;
    const beit_bf16 *s = (const beit_bf16 *)src + soff;
    for (size_t i = 0; i < m; i++)
      d[i] = s[i];
  } else if (mode == IM2COL_ROUND) {
    round_run((beit_bf16 *)col + off, (const float *)src + soff, m, relu);
  } else {
    float *d = (float *)col + off;
    const float *s = (const float *)src + soff;
    if (relu)
      for (size_t i = 0; i < m; i++)
        d[i] = s[i] > 0.0f ? s[i] : 0.0f;
    else
      for (size_t i = 0; i < m; i++)
        d[i] = s[i];
  }
}

ALWAYS_INLINE void zero_run(void *col, enum im2col_mode mode, size_t off, size_t m)
{
  if (mode != IM2COL_F32) {
    beit_bf16 *d = (beit_bf16 *)col + off;
    for (size_t i = 0; i < m; i++)
      d[i] = 0;
  } else {
    float *d = (float *)col + off;
    for (size_t i = 0; i < m; i++)
      d[i] = 0.0f;
  }
}

/* col (C*K*K, (y1-y0)*W): rows of the (optionally relu'd) image (C, H, W) shifted by each kernel
 * tap, zero outside the image, in the mode's types (a constant of each caller, so each gets its
 * own loops). The source holds rows row0.. of each channel, ch_stride elements apart: the whole
 * image (row0 0, ch_stride H*W) or a staged band. Plain loops, not memcpy/memset: rows are short
 * (W = 7..112 values) and a library call per row costs more than the copy. A shifted tap copies
 * all its rows as one run (under one vector, a row's run stayed scalar); GCC still turns the
 * zeroing of whole rows into memset calls. */
ALWAYS_INLINE void im2col_any(void *col, enum im2col_mode mode, const void *src, size_t ch_stride,
                              size_t row0, int relu, size_t C, size_t H, size_t W, size_t K,
                              size_t y0, size_t y1)
{
  const long p = (long)(K - 1) / 2;
  const size_t n = (y1 - y0) * W;
  for (size_t c = 0; c < C; c++)
    for (size_t ky = 0; ky < K; ky++) {
      /* output rows y whose source row y + ky - p lies inside the image */
      const long lo = p - (long)ky, hi = (long)H + p - (long)ky;
      const size_t ya = lo > (long)y0 ? (size_t)lo : y0;
      const size_t yb = hi < (long)y1 ? (hi > (long)ya ? (size_t)hi : ya) : y1;
      /* the source row of output row ya (unused when ya == yb) */
      const size_t src_rows = ya < yb ? c * ch_stride + (ya + ky - (size_t)p - row0) * W : 0;
      for (size_t kx = 0; kx < K; kx++) {
        const size_t dst = ((c * K + ky) * K + kx) * n;
        const long dx = (long)kx - p;
        const size_t xlo = dx < 0 ? (size_t)-dx : 0;
        const size_t xhi = dx > 0 ? (W > (size_t)dx ? W - (size_t)dx : 0) : W;
        zero_run(col, mode, dst, (ya - y0) * W);
        zero_run(col, mode, dst + (yb - y0) * W, n - (yb - y0) * W);
        if (dx == 0) { /* the rows are one contiguous run */
          put_run(col, mode, dst + (ya - y0) * W, src, src_rows, (yb - ya) * W, relu);
          continue;
        }
        const size_t m = xhi > xlo ? xhi - xlo : 0, shift = (size_t)((long)xlo + dx);
        const size_t rows = yb - ya, d0 = dst + (ya - y0) * W;
        if (m == 0) {
          zero_run(col, mode, d0, rows * W);
          continue;
        }
        /* the rows as one run shifted by dx (a long run vectorises; W is often under one
         * vector), then the |dx| columns of each row that came from a neighbouring row, or
         * that the run did not reach, set to zero, a column at a time */
        if (rows)
          put_run(col, mode, d0 + xlo, src, src_rows + shift, rows * W - (W - m), relu);
        for (size_t x = 0; x < W; x++)
          if (x < xlo || x >= xlo + m)
            for (size_t y = 0; y < rows; y++)
              zero_run(col, mode, d0 + y * W + x, 1);
      }
    }
}

BEIT_KERNEL_CLONES
static void im2col_rows(float *col, const float *img, int relu, size_t C, size_t H, size_t W,
                        size_t K, size_t y0, size_t y1)
{
  im2col_any(col, IM2COL_F32, img, H * W, 0, relu, C, H, W, K, y0, y1);
}

/* Rows of a bf16 chunk's band (rows y0..y1 and the kernel's halo) inside the image. */
static size_t band_first(size_t K, size_t y0)
{
  const size_t p = (K - 1) / 2;
  return y0 > p ? y0 - p : 0;
}

static size_t band_end(size_t H, size_t K, size_t y1)
{
  const size_t e = y1 + (K - 1) / 2;
  return e < H ? e : H;
}

/* Values of the staged band of C channels, rows rows per chunk: 0 for K = 1 (no band). */
static size_t stage_values(size_t C, size_t H, size_t W, size_t K, size_t rows)
{
  const size_t r = rows + K - 1;
  return K == 1 ? 0 : C * (r < H ? r : H) * W;
}

/* The same into bfloat16. K = 1: the rounded (relu'd) rows y0..y1 of each channel. K > 1: the
 * band of rows the chunk reads is rounded once into stage (stage_values), then the K*K shifted
 * copies are bf16 copies of it (one conversion per input value instead of K*K). */
BEIT_KERNEL_CLONES
static void im2col_rows_bf16(beit_bf16 *col, beit_bf16 *stage, const float *img, int relu,
                             size_t C, size_t H, size_t W, size_t K, size_t y0, size_t y1)
{
  if (K == 1) {
    im2col_any(col, IM2COL_ROUND, img, H * W, 0, relu, C, H, W, K, y0, y1);
    return;
  }
  const size_t r0 = band_first(K, y0), nr = band_end(H, K, y1) - r0;
  for (size_t c = 0; c < C; c++) /* each channel's band is one contiguous run */
    round_run(stage + c * nr * W, img + (c * H + r0) * W, nr * W, relu);
  im2col_any(col, IM2COL_COPY16, stage, nr * W, r0, 0, C, H, W, K, y0, y1);
}

/* dimg (C, H, W) += [mask > 0] * (sum over taps of dcol (C*K*K, H*W) shifted back): the adjoint
 * of im2col over a whole image. mask NULL: no mask. */
BEIT_KERNEL_CLONES
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

/* out (OC, n) rows ld apart = act(out + scale * bias): the float32 forward's epilogue (the
 * product already wrote scale * y, or added it). */
BEIT_KERNEL_CLONES
static void bias_act(float *out, size_t ld, const float *bias, float scale, int relu, size_t OC,
                     size_t n)
{
  if (!bias && !relu)
    return;
  for (size_t oc = 0; oc < OC; oc++) {
    float *row = out + oc * ld;
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

/* out (OC, n) rows ld apart = act((accumulate ? out : 0) + scale * y + scale * bias), y (OC, n)
 * dense in acc: the bf16 forward's epilogue of a chunk. */
BEIT_KERNEL_CLONES
static void move_act(float *out, size_t ld, const float *acc, const float *bias, float scale,
                     int accumulate, int relu, size_t OC, size_t n)
{
  for (size_t oc = 0; oc < OC; oc++) {
    float *row = out + oc * ld;
    const float *y = acc + oc * n;
    const float add = bias ? scale * bias[oc] : 0.0f;
    for (size_t j = 0; j < n; j++) {
      float v = (accumulate ? row[j] + scale * y[j] : scale * y[j]) + add;
      row[j] = relu && v < 0.0f ? 0.0f : v;
    }
  }
}

/* ----------------------------------------------------------------------------- forward */

/* One call's arguments, shared by both precisions' work items. */
struct conv_args {
  float *out, *dinp, *dweight, *dbias;
  const float *inp, *dout, *bias;
  const float *weight;      /* float32 */
  const beit_bf16 *weight_h; /* bf16 (weight NULL) */
  float *scratch;
  float scale;
  int accumulate;
  int bf16; /* operands in bfloat16: weight_h, columns rounded */
  unsigned flags;
  size_t B, C, H, W, OC, K;
  int nt;
};

/* One (image, chunk) of the float32 forward. */
static void forward_item(const struct conv_args *a, float *col, size_t b, size_t y0, size_t y1)
{
  const size_t C = a->C, H = a->H, W = a->W, OC = a->OC, K = a->K;
  const size_t HW = H * W, n = (y1 - y0) * W, ckk = C * K * K;
  size_t ld;
  const float *bop = conv_operand(col, &ld, a->inp + b * C * HW, a->flags & BEIT_CONV_RELU_INPUT,
                                  C, H, W, K, y0, y1);
  float *o = a->out + b * OC * HW + y0 * W;
  beit_gemm(o, HW, beit_op_f32(a->weight, ckk, 0), beit_op_f32(bop, ld, 0), OC, n, ckk,
            a->scale, a->accumulate ? 1.0f : 0.0f);
  bias_act(o, HW, a->bias, a->scale, (a->flags & BEIT_CONV_RELU_OUTPUT) != 0, OC, n);
}

/* bf16 forward: per-thread slot = columns (C*K*K, n) bf16, the staged input band bf16, and the
 * product block (OC, n) float32. */
struct bf16_fwd_layout {
  struct conv_chunks ch;
  size_t col, stage, acc, slot; /* floats */
};

static struct bf16_fwd_layout bf16_fwd_layout(size_t C, size_t H, size_t W, size_t OC, size_t K)
{
  struct bf16_fwd_layout l;
  const size_t ckk = C * K * K;
  l.ch = bf16_chunking(2 * ckk + 4 * OC + (K > 1 ? 2 * C : 0), H, W);
  const size_t n = l.ch.rows * W;
  l.col = bf16_floats(ckk * n);
  l.stage = bf16_floats(stage_values(C, H, W, K, l.ch.rows));
  l.acc = l.ch.count > 1 ? (OC * n + 15) / 16 * 16 : 0; /* a whole image is written in place */
  l.slot = l.col + l.stage + l.acc;
  return l;
}

/* One (image, chunk) of the bf16 forward. */
static void forward_item_bf16(const struct conv_args *a, float *slot, size_t b, size_t y0,
                              size_t y1)
{
  const size_t C = a->C, H = a->H, W = a->W, OC = a->OC, K = a->K;
  const size_t HW = H * W, n = (y1 - y0) * W, ckk = C * K * K;
  const struct bf16_fwd_layout l = bf16_fwd_layout(C, H, W, OC, K);
  beit_bf16 *col = (beit_bf16 *)slot;
  im2col_rows_bf16(col, (beit_bf16 *)(slot + l.col), a->inp + b * C * HW,
                   (a->flags & BEIT_CONV_RELU_INPUT) != 0, C, H, W, K, y0, y1);
  float *o = a->out + b * OC * HW + y0 * W;
  const int relu = (a->flags & BEIT_CONV_RELU_OUTPUT) != 0;
  if (n == HW) { /* the whole image: dense in place, as float32 does */
    beit_gemm(o, HW, beit_op_bf16(a->weight_h, ckk, 0), beit_op_bf16(col, n, 0), OC, n, ckk,
              a->scale, a->accumulate ? 1.0f : 0.0f);
    bias_act(o, HW, a->bias, a->scale, relu, OC, n);
    return;
  }
  float *acc = slot + l.col + l.stage;
  beit_gemm(acc, n, beit_op_bf16(a->weight_h, ckk, 0), beit_op_bf16(col, n, 0), OC, n, ckk, 1.0f,
            0.0f);
  move_act(o, HW, acc, a->bias, a->scale, a->accumulate, relu, OC, n);
}

/* Items (image, chunk of ch.rows rows) of a call: with at least nt of them, in parallel, each
 * thread on its own scratch slot with single-threaded products (OpenBLAS's OpenMP build and
 * oneDNN run serially inside a parallel region); with fewer, one after another on slot 0 with
 * threaded products. */
typedef void (*conv_item_fn)(const struct conv_args *a, float *slot, size_t b, size_t y0,
                             size_t y1);

static void for_items(conv_item_fn fn, const struct conv_args *a, float *slots, size_t slot,
                      struct conv_chunks ch)
{
  const size_t items = a->B * ch.count;
  if (a->nt > 1 && items >= (size_t)a->nt) {
#pragma omp parallel for num_threads(a->nt) schedule(static)
    for (size_t it = 0; it < items; it++) {
      const size_t b = it / ch.count, y0 = (it % ch.count) * ch.rows;
      const size_t y1 = y0 + ch.rows < a->H ? y0 + ch.rows : a->H;
      fn(a, slots + (size_t)omp_get_thread_num() * slot, b, y0, y1);
    }
  } else {
    for (size_t it = 0; it < items; it++) {
      const size_t b = it / ch.count, y0 = (it % ch.count) * ch.rows;
      const size_t y1 = y0 + ch.rows < a->H ? y0 + ch.rows : a->H;
      fn(a, slots, b, y0, y1);
    }
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
  (void)OC;
  /* Sized for the relu-input variant, which needs a column block even for K = 1. */
  return (size_t)threads_of(nthreads) * col_floats(C, H, W, K, 1);
}

size_t beit_conv2d_bf16_scratch_floats(size_t C, size_t H, size_t W, size_t OC, size_t K,
                                       int nthreads)
{
  return (size_t)threads_of(nthreads) * bf16_fwd_layout(C, H, W, OC, K).slot;
}

void beit_conv2d_forward(float *out, float *scratch, const float *inp, const float *weight,
                         const float *bias, float scale, int accumulate, unsigned flags,
                         size_t B, size_t C, size_t H, size_t W, size_t OC, size_t K,
                         int nthreads)
{
  const struct conv_args a = {.out = out, .inp = inp, .bias = bias, .weight = weight,
                              .scratch = scratch, .scale = scale, .accumulate = accumulate,
                              .flags = flags, .B = B, .C = C, .H = H, .W = W, .OC = OC, .K = K,
                              .nt = threads_of(nthreads)};
  for_items(forward_item, &a, scratch, col_floats(C, H, W, K, 1), conv_chunking(C, H, W, K));
}

void beit_conv2d_forward_bf16(float *out, float *scratch, const float *inp,
                              const uint16_t *weight, const float *bias, float scale,
                              int accumulate, unsigned flags, size_t B, size_t C, size_t H,
                              size_t W, size_t OC, size_t K, int nthreads)
{
  const struct conv_args a = {.out = out, .inp = inp, .bias = bias, .weight_h = weight,
                              .scratch = scratch, .scale = scale, .accumulate = accumulate,
                              .bf16 = 1,
                              .flags = flags, .B = B, .C = C, .H = H, .W = W, .OC = OC, .K = K,
                              .nt = threads_of(nthreads)};
  const struct bf16_fwd_layout l = bf16_fwd_layout(C, H, W, OC, K);
  for_items(forward_item_bf16, &a, scratch, l.slot, l.ch);
}

/* ------------------------------------------------------------------------------- backward */

/* Scratch of the backward: a shared weight copy wt (the flipped kernel, or W^T), then one slot
 * per thread: a column block (either direction), bf16 only a block of dout rounded, a float32
 * block (the input gradient of a chunk, or a whole image's dcol), and a private weight
 * gradient. Offsets in floats. */
struct bwd_layout {
  struct conv_chunks fw, bw; /* chunking of the weight-gradient and input-gradient passes */
  int col2im;                /* input gradient by W^T dout + col2im, per whole image */
  size_t wt, col, stage, dh, tmp, dw, slot;
};

/* The input gradient either as a forward convolution of dout with the flipped kernel (expands
 * dout's OC channels K*K times) or as W^T dout followed by col2im (expands C channels): the
 * latter when C < OC and a whole image fits one column block (no chunk boundaries to race on). */
static struct bwd_layout bwd_layout(size_t C, size_t H, size_t W, size_t OC, size_t K)
{
  struct bwd_layout l;
  l.fw = conv_chunking(C, H, W, K);
  l.bw = conv_chunking(K == 1 ? C : OC, H, W, K);
  l.col2im = K > 1 && C < OC && l.fw.count == 1;
  size_t colf = col_floats(C, H, W, K, 1);
  size_t colb = K == 1 ? 0 : OC * K * K * l.bw.rows * W;
  l.col = colf > colb ? colf : colb;
  l.stage = l.dh = 0;
  l.tmp = C * l.bw.rows * W;
  l.dw = OC * C * K * K;
  l.slot = l.col + l.tmp + l.dw;
  l.wt = K == 1 ? 0 : OC * C * K * K;
  return l;
}

/* bf16: the weight-gradient pass holds columns (C*K*K, n), the staged input band and dout
 * (OC, n), all bf16; the input-gradient pass columns of dout (OC*K*K, n) (K = 1: dout (OC, n))
 * and its staged band, and a float32 (C, n) block; col2im a whole image's dout (OC, H*W) and dcol
 * (C*K*K, H*W) float32, when that fits twice the chunk budget. */
static struct bwd_layout bf16_bwd_layout(size_t C, size_t H, size_t W, size_t OC, size_t K)
{
  struct bwd_layout l;
  const size_t KK = K * K, HW = H * W;
  l.fw = bf16_chunking(2 * C * KK + 2 * OC + (K > 1 ? 2 * C : 0), H, W);
  l.bw = bf16_chunking(2 * OC * KK + 4 * C + (K > 1 ? 2 * OC : 0), H, W);
  l.col2im = K > 1 && C < OC && (4 * C * KK + 2 * OC) * HW <= 2 * CONV_BF16_BYTES;
  const size_t nf = l.fw.rows * W, nb = l.bw.rows * W;
  const size_t colf = C * KK * nf, colb = K == 1 ? 0 : OC * KK * nb;
  l.col = bf16_floats(colf > colb ? colf : colb);
  const size_t sf = stage_values(C, H, W, K, l.fw.rows), sb = stage_values(OC, H, W, K, l.bw.rows);
  l.stage = bf16_floats(sf > sb ? sf : sb);
  size_t dh = OC * (nf > nb ? nf : nb), tmp = C * nb;
  if (l.col2im) {
    dh = dh > OC * HW ? dh : OC * HW;
    tmp = tmp > C * KK * HW ? tmp : C * KK * HW;
  }
  l.dh = bf16_floats(dh);
  l.tmp = (tmp + 15) / 16 * 16;
  l.dw = OC * C * KK;
  l.slot = l.col + l.stage + l.dh + l.tmp + l.dw;
  l.wt = bf16_floats(OC * C * KK);
  return l;
}

size_t beit_conv2d_backward_scratch_floats(size_t C, size_t H, size_t W, size_t OC, size_t K,
                                           int nthreads)
{
  struct bwd_layout l = bwd_layout(C, H, W, OC, K);
  return l.wt + (size_t)threads_of(nthreads) * l.slot;
}

size_t beit_conv2d_bf16_backward_scratch_floats(size_t C, size_t H, size_t W, size_t OC,
                                                size_t K, int nthreads)
{
  struct bwd_layout l = bf16_bwd_layout(C, H, W, OC, K);
  return l.wt + (size_t)threads_of(nthreads) * l.slot;
}

/* dw (OC, C*K*K) += scale * dout[:, rows y0..y1] . a[:, rows]^T for one image. */
static void dweight_item(const struct conv_args *a, const struct bwd_layout *l, float *slot,
                         float *dw, size_t b, size_t y0, size_t y1)
{
  (void)l;
  const size_t C = a->C, H = a->H, W = a->W, OC = a->OC, K = a->K;
  const size_t HW = H * W, n = (y1 - y0) * W, ckk = C * K * K;
  size_t ld;
  const float *x = conv_operand(slot, &ld, a->inp + b * C * HW, a->flags & BEIT_CONV_RELU_INPUT,
                                C, H, W, K, y0, y1);
  beit_gemm(dw, ckk, beit_op_f32(a->dout + b * OC * HW + y0 * W, HW, 0), beit_op_f32(x, ld, 1),
            OC, ckk, n, a->scale, 1.0f);
}

static void dweight_item_bf16(const struct conv_args *a, const struct bwd_layout *l, float *slot,
                              float *dw, size_t b, size_t y0, size_t y1)
{
  const size_t C = a->C, H = a->H, W = a->W, OC = a->OC, K = a->K;
  const size_t HW = H * W, n = (y1 - y0) * W, ckk = C * K * K;
  beit_bf16 *col = (beit_bf16 *)slot, *stage = (beit_bf16 *)(slot + l->col);
  beit_bf16 *dh = (beit_bf16 *)(slot + l->col + l->stage);
  im2col_rows_bf16(dh, NULL, a->dout + b * OC * HW, 0, OC, H, W, 1, y0, y1);
  im2col_rows_bf16(col, stage, a->inp + b * C * HW, (a->flags & BEIT_CONV_RELU_INPUT) != 0, C, H,
                   W, K, y0, y1);
  beit_gemm(dw, ckk, beit_op_bf16(dh, n, 0), beit_op_bf16(col, n, 1), OC, ckk, n, a->scale, 1.0f);
}

/* dinp (C, rows y0..y1) += [inp > 0 under RELU_INPUT] * t, t (C, n) dense. */
BEIT_KERNEL_CLONES
static void add_masked(float *dinp, const float *t, const float *inp, int relu, size_t C,
                       size_t HW, size_t n)
{
  for (size_t c = 0; c < C; c++) {
    float *d = dinp + c * HW;
    const float *x = inp + c * HW, *tc = t + c * n;
    if (relu)
      for (size_t j = 0; j < n; j++)
        d[j] += x[j] > 0.0f ? tc[j] : 0.0f;
    else
      for (size_t j = 0; j < n; j++)
        d[j] += tc[j];
  }
}

/* dinp[:, rows y0..y1] += mask * scale * conv_transpose(dout) for one image. wt is the flipped,
 * transposed kernel (C, OC, K, K) when K > 1. */
static void dinp_item(const struct conv_args *a, const struct bwd_layout *l, float *slot,
                      size_t b, size_t y0, size_t y1)
{
  const size_t C = a->C, H = a->H, W = a->W, OC = a->OC, K = a->K;
  const size_t HW = H * W, n = (y1 - y0) * W;
  const int relu = (a->flags & BEIT_CONV_RELU_INPUT) != 0;
  const float *dout = a->dout + b * OC * HW;
  float *col = slot, *tmp = slot + l->col;
  float *dinp = a->dinp + b * C * HW + y0 * W;
  float *dst = relu ? tmp : dinp;
  const size_t ldd = relu ? n : HW;
  const float beta = relu ? 0.0f : 1.0f;
  if (K == 1) {
    beit_gemm(dst, ldd, beit_op_f32(a->weight, C, 1), beit_op_f32(dout + y0 * W, HW, 0), C, n,
              OC, a->scale, beta);
  } else {
    im2col_rows(col, dout, 0, OC, H, W, K, y0, y1);
    beit_gemm(dst, ldd, beit_op_f32(a->scratch, OC * K * K, 0), beit_op_f32(col, n, 0), C, n,
              OC * K * K, a->scale, beta);
  }
  if (relu)
    add_masked(dinp, tmp, a->inp + b * C * HW + y0 * W, 1, C, HW, n);
}

/* bf16: wt in the scratch is the flipped, transposed kernel (C, OC*K*K) (K = 1: W^T (C, OC)). */
static void dinp_item_bf16(const struct conv_args *a, const struct bwd_layout *l, float *slot,
                           size_t b, size_t y0, size_t y1)
{
  const size_t C = a->C, H = a->H, W = a->W, OC = a->OC, K = a->K;
  const size_t HW = H * W, n = (y1 - y0) * W, okk = OC * K * K;
  beit_bf16 *col = (beit_bf16 *)slot;
  float *tmp = slot + l->col + l->stage + l->dh;
  /* K = 1: the "columns" are dout's rows, rounded */
  im2col_rows_bf16(col, (beit_bf16 *)(slot + l->col), a->dout + b * OC * HW, 0, OC, H, W, K, y0,
                   y1);
  beit_gemm(tmp, n, beit_op_bf16((const beit_bf16 *)a->scratch, okk, 0), beit_op_bf16(col, n, 0),
            C, n, okk, a->scale, 0.0f);
  add_masked(a->dinp + b * C * HW + y0 * W, tmp, a->inp + b * C * HW + y0 * W,
             (a->flags & BEIT_CONV_RELU_INPUT) != 0, C, HW, n);
}

/* dinp (C, H, W) of image b += mask * col2im(scale * W^T dout): the whole image at once. */
static void dinp_col2im(const struct conv_args *a, const struct bwd_layout *l, float *slot,
                        size_t b, int bf16)
{
  const size_t C = a->C, H = a->H, W = a->W, OC = a->OC, K = a->K, HW = H * W;
  const size_t ckk = C * K * K;
  const float *dout = a->dout + b * OC * HW;
  float *dcol = slot;
  if (bf16) { /* the scratch's wt is W^T (C*K*K, OC) */
    beit_bf16 *dh = (beit_bf16 *)(slot + l->col + l->stage);
    dcol = slot + l->col + l->stage + l->dh;
    im2col_rows_bf16(dh, NULL, dout, 0, OC, H, W, 1, 0, H);
    beit_gemm(dcol, HW, beit_op_bf16((const beit_bf16 *)a->scratch, OC, 0),
              beit_op_bf16(dh, HW, 0), ckk, HW, OC, a->scale, 0.0f);
  } else {
    beit_gemm(dcol, HW, beit_op_f32(a->weight, ckk, 1), beit_op_f32(dout, HW, 0), ckk, HW, OC,
              a->scale, 0.0f);
  }
  col2im_add(a->dinp + b * C * HW, dcol,
             (a->flags & BEIT_CONV_RELU_INPUT) ? a->inp + b * C * HW : NULL, C, H, W, K);
}

/* dbias (OC) += scale * sum over b, h, w of dout (float32 in both precisions). */
BEIT_KERNEL_CLONES
static void dbias_sum(float *dbias, const float *dout, float scale, size_t B, size_t OC,
                      size_t HW, int nt)
{
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

/* The weight copy the input gradient reads, into wt: float32 K > 1: the flipped, transposed
 * kernel (C, OC, K, K); bf16: the same (K = 1: W^T (C, OC)), or W^T (C*K*K, OC) for col2im. */
static void prepare_wt(const struct conv_args *a, const struct bwd_layout *l, float *wt)
{
  const size_t C = a->C, OC = a->OC, KK = a->K * a->K;
  const int nt = a->nt;
  if (!a->bf16) {
    if (a->K == 1 || l->col2im)
      return;
    /* wt[c][o][K-1-ky][K-1-kx] = weight[o][c][ky][kx] */
#pragma omp parallel for num_threads(nt) schedule(static) if (OC * C * KK > 65536)
    for (size_t c = 0; c < C; c++)
      for (size_t o = 0; o < OC; o++) {
        const float *src = a->weight + (o * C + c) * KK;
        float *dst = wt + (c * OC + o) * KK;
        for (size_t k = 0; k < KK; k++)
          dst[KK - 1 - k] = src[k];
      }
    return;
  }
  beit_bf16 *h = (beit_bf16 *)wt;
  const int col2im = l->col2im;
#pragma omp parallel for num_threads(nt) schedule(static) if (OC * C * KK > 65536)
  for (size_t c = 0; c < C; c++)
    for (size_t o = 0; o < OC; o++) {
      const beit_bf16 *src = a->weight_h + (o * C + c) * KK;
      if (col2im)
        for (size_t k = 0; k < KK; k++)
          h[(c * KK + k) * OC + o] = src[k];
      else
        for (size_t k = 0; k < KK; k++)
          h[(c * OC + o) * KK + KK - 1 - k] = src[k];
    }
}

/* dweight (n) += the nt threads' private sums (slot floats apart), thread 0 first. Called inside
 * the parallel region: an orphaned worksharing loop. */
BEIT_KERNEL_CLONES
static void reduce_dweight(float *dweight, const float *sums, size_t slot, size_t n, int nt)
{
#pragma omp for schedule(static)
  for (size_t i = 0; i < n; i++) {
    float s = dweight[i];
    for (int t = 0; t < nt; t++)
      s += sums[(size_t)t * slot + i];
    dweight[i] = s;
  }
}

/* The backward of either precision. */
static void conv_backward(const struct conv_args *a, const struct bwd_layout *l)
{
  const int nt = a->nt, bf16 = a->bf16;
  const size_t B = a->B, H = a->H, HW = a->H * a->W;
  float *wt = a->scratch, *slots = a->scratch + l->wt;
  void (*dweight_fn)(const struct conv_args *, const struct bwd_layout *, float *, float *,
                     size_t, size_t, size_t) = bf16 ? dweight_item_bf16 : dweight_item;
  void (*dinp_fn)(const struct conv_args *, const struct bwd_layout *, float *, size_t, size_t,
                  size_t) = bf16 ? dinp_item_bf16 : dinp_item;

  if (a->dbias)
    dbias_sum(a->dbias, a->dout, a->scale, B, a->OC, HW, nt);

  if (a->dweight) {
    const size_t items = B * l->fw.count, off = l->col + l->stage + l->dh + l->tmp;
    if (nt > 1 && items >= (size_t)nt) {
#pragma omp parallel num_threads(nt)
      {
        float *slot = slots + (size_t)omp_get_thread_num() * l->slot;
        float *dw = slot + off;
        memset(dw, 0, l->dw * sizeof *dw);
#pragma omp for schedule(static)
        for (size_t it = 0; it < items; it++) {
          const size_t b = it / l->fw.count, y0 = (it % l->fw.count) * l->fw.rows;
          const size_t y1 = y0 + l->fw.rows < H ? y0 + l->fw.rows : H;
          dweight_fn(a, l, slot, dw, b, y0, y1);
        }
        reduce_dweight(a->dweight, slots + off, l->slot, l->dw, nt);
      }
    } else {
      for (size_t it = 0; it < items; it++) {
        const size_t b = it / l->fw.count, y0 = (it % l->fw.count) * l->fw.rows;
        const size_t y1 = y0 + l->fw.rows < H ? y0 + l->fw.rows : H;
        dweight_fn(a, l, slots, a->dweight, b, y0, y1);
      }
    }
  }

  if (!a->dinp)
    return;
  prepare_wt(a, l, wt);
  if (l->col2im) { /* per whole image: dcol = W^T dout, then scattered back */
    const int par = nt > 1 && B >= (size_t)nt;
#pragma omp parallel for num_threads(nt) schedule(static) if (par)
    for (size_t b = 0; b < B; b++)
      dinp_col2im(a, l, slots + (size_t)(par ? omp_get_thread_num() : 0) * l->slot, b, bf16);
    return;
  }
  const size_t items = B * l->bw.count;
  if (nt > 1 && items >= (size_t)nt) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t it = 0; it < items; it++) {
      const size_t b = it / l->bw.count, y0 = (it % l->bw.count) * l->bw.rows;
      const size_t y1 = y0 + l->bw.rows < H ? y0 + l->bw.rows : H;
      dinp_fn(a, l, slots + (size_t)omp_get_thread_num() * l->slot, b, y0, y1);
    }
  } else {
    for (size_t it = 0; it < items; it++) {
      const size_t b = it / l->bw.count, y0 = (it % l->bw.count) * l->bw.rows;
      const size_t y1 = y0 + l->bw.rows < H ? y0 + l->bw.rows : H;
      dinp_fn(a, l, slots, b, y0, y1);
    }
  }
}

void beit_conv2d_backward(float *dinp, float *dweight, float *dbias, float *scratch,
                          const float *dout, const float *inp, const float *weight, float scale,
                          unsigned flags, size_t B, size_t C, size_t H, size_t W, size_t OC,
                          size_t K, int nthreads)
{
  const struct conv_args a = {.dinp = dinp, .dweight = dweight, .dbias = dbias, .inp = inp,
                              .dout = dout, .weight = weight, .scratch = scratch, .scale = scale,
                              .flags = flags, .B = B, .C = C, .H = H, .W = W, .OC = OC, .K = K,
                              .nt = threads_of(nthreads)};
  const struct bwd_layout l = bwd_layout(C, H, W, OC, K);
  conv_backward(&a, &l);
}

void beit_conv2d_backward_bf16(float *dinp, float *dweight, float *dbias, float *scratch,
                               const float *dout, const float *inp, const uint16_t *weight,
                               float scale, unsigned flags, size_t B, size_t C, size_t H,
                               size_t W, size_t OC, size_t K, int nthreads)
{
  const struct conv_args a = {.dinp = dinp, .dweight = dweight, .dbias = dbias, .inp = inp,
                              .dout = dout, .weight_h = weight, .scratch = scratch,
                              .scale = scale, .bf16 = 1, .flags = flags, .B = B, .C = C, .H = H, .W = W,
                              .OC = OC, .K = K, .nt = threads_of(nthreads)};
  const struct bwd_layout l = bf16_bwd_layout(C, H, W, OC, K);
  conv_backward(&a, &l);
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
