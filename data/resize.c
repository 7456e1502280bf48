/* PIL-compatible separable resampling of 8-bit RGB images (Pillow libImaging/Resample.c).
 *
 * Same arithmetic as Pillow so that results match Image.resize bit for bit in the common case:
 * coefficients in double from the filter centred at (x + 0.5) * scale, support widened by the
 * shrink factor (antialiasing), normalised per output pixel, then rounded to 22-bit fixed point;
 * horizontal pass first over only the rows the vertical pass needs, rounding and clipping to
 * uint8 in between. beit_data_resize_naive is the double-precision 2-D twin used by the tests. */
#include <math.h>
#include <string.h>

#include "data_internal.h"
#include "isa.h"

#define PRECISION_BITS (32 - 8 - 2)

struct filter {
  double (*fn)(double x);
  double support;
};

static double bilinear_filter(double x)
{
  if (x < 0.0)
    x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

static double bicubic_filter(double x)
{
  const double a = -0.5;
  if (x < 0.0)
    x = -x;
  if (x < 1.0)
    return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0)
    return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

static double sinc_filter(double x)
{
  if (x == 0.0)
    return 1.0;
  x = x * M_PI;
  return sin(x) / x;
}

static double lanczos_filter(double x)
{
  if (-3.0 <= x && x < 3.0)
    return sinc_filter(x) * sinc_filter(x / 3);
  return 0.0;
}

static const struct filter filters[] = {
    [BEIT_DATA_FILTER_BILINEAR] = {bilinear_filter, 1.0},
    [BEIT_DATA_FILTER_BICUBIC] = {bicubic_filter, 2.0},
    [BEIT_DATA_FILTER_LANCZOS] = {lanczos_filter, 3.0},
};

static int kernel_size(int in_size, int out_size, const struct filter *f)
{
  double scale = (double)in_size / out_size;
  if (scale < 1.0)
    scale = 1.0;
  return (int)ceil(f->support * scale) * 2 + 1;
}

/* Pillow precompute_coeffs for box [0, in_size): bounds[2*i] = first input, bounds[2*i+1] =
 * count; coefficients in double (kk, out_size x ksize), returned un-normalised to fixed point. */
static void precompute_coeffs(double *kk, int *bounds, int in_size, int out_size, int ksize,
                              const struct filter *f)
{
  double scale = (double)in_size / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
  double support = f->support * filterscale, ss = 1.0 / filterscale;
  for (int xx = 0; xx < out_size; xx++) {
    double center = (xx + 0.5) * scale, ww = 0.0;
    int xmin = (int)(center - support + 0.5); /* Pillow rounds by truncation after +0.5 */
    if (xmin < 0)
      xmin = 0;
    int xmax = (int)(center + support + 0.5);
    if (xmax > in_size)
      xmax = in_size;
    xmax -= xmin;
    double *k = kk + (size_t)xx * ksize;
    int x;
    for (x = 0; x < xmax; x++) {
      double w = f->fn((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (x = 0; x < xmax; x++)
      if (ww != 0.0)
        k[x] /= ww;
    for (; x < ksize; x++)
      k[x] = 0;
    bounds[2 * xx] = xmin;
    bounds[2 * xx + 1] = xmax;
  }
}

/* Pillow normalize_coeffs_8bpc: round half away from zero into 22-bit fixed point. Done in
 * place from the front: an int32 never overtakes the double it replaces. */
static void fixed_point(int32_t *out, const double *kk, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    double v = kk[i];
    out[i] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS))
                   : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
  }
}

static inline uint8_t clip8(int32_t ss)
{
  ss >>= PRECISION_BITS;
  return ss < 0 ? 0 : ss > 255 ? 255 : (uint8_t)ss;
}

/* dst (width rows of height*3 bytes) = src (height rows of width RGB pixels) transposed. Tiled
 * so both sides stay in cache. */
BEIT_KERNEL_CLONES
static void transpose_rgb(uint8_t *restrict dst, const uint8_t *restrict src, size_t sstride,
                          int width, int height)
{
  enum { TILE = 32 };
  size_t dstride = (size_t)height * 3;
  for (int y0 = 0; y0 < height; y0 += TILE)
    for (int x0 = 0; x0 < width; x0 += TILE) {
      int y1 = y0 + TILE < height ? y0 + TILE : height, x1 = x0 + TILE < width ? x0 + TILE : width;
      for (int y = y0; y < y1; y++) {
        const uint8_t *s = src + (size_t)y * sstride;
        for (int x = x0; x < x1; x++) {
          uint8_t *d = dst + (size_t)x * dstride + (size_t)y * 3;
          d[0] = s[3 * x], d[1] = s[3 * x + 1], d[2] = s[3 * x + 2];
        }
      }
    }
}

/* out_h rows from the rows of src (stride sstride), each row n = width*3 bytes. acc: n int32. */
BEIT_KERNEL_CLONES
static void resample_vertical(uint8_t *restrict dst, const uint8_t *restrict src, size_t sstride,
                              size_t n, int out_h, int ksize, const int *bounds,
                              const int32_t *kk, int32_t *restrict acc)
{
  for (int y = 0; y < out_h; y++) {
    int ymin = bounds[2 * y], ycount = bounds[2 * y + 1];
    const int32_t *k = kk + (size_t)y * ksize;
    for (size_t i = 0; i < n; i++)
      acc[i] = 1 << (PRECISION_BITS - 1);
    for (int j = 0; j < ycount; j++) {
      const uint8_t *restrict row = src + (size_t)(ymin + j) * sstride;
      int32_t c = k[j];
      for (size_t i = 0; i < n; i++)
        acc[i] += row[i] * c;
    }
    uint8_t *o = dst + (size_t)y * n;
    for (size_t i = 0; i < n; i++)
      o[i] = clip8(acc[i]);
  }
}

enum beit_status beit_data_resize(uint8_t *dst, int dw, int dh, const uint8_t *src, int sw,
                                  int sh, size_t sstride, int x0, int y0, int w, int h,
                                  enum beit_data_filter filter, struct beit_data_scratch *ws,
                                  struct beit_error *err)
{
  if (dw <= 0 || dh <= 0 || w <= 0 || h <= 0 || x0 < 0 || y0 < 0 || x0 + w > sw || y0 + h > sh)
    return beit_error_set(err, BEIT_STATUS_USAGE,
                          "resize: box (%d, %d, %d, %d) of a %dx%d image to %dx%d is invalid",
                          x0, y0, w, h, sw, sh, dw, dh);
  if ((unsigned)filter > BEIT_DATA_FILTER_LANCZOS)
    return beit_error_set(err, BEIT_STATUS_USAGE, "resize: unknown filter %d", (int)filter);
  const struct filter *f = &filters[filter];
  const uint8_t *box = src + (size_t)y0 * sstride + (size_t)x0 * 3;
  int need_h = dw != w, need_v = dh != h;
  if (!need_h && !need_v) {
    for (int y = 0; y < h; y++)
      memcpy(dst + (size_t)y * dw * 3, box + (size_t)y * sstride, (size_t)w * 3);
    return BEIT_STATUS_OK;
  }
  int kh = kernel_size(w, dw, f), kv = kernel_size(h, dh, f);
  size_t nh = (size_t)dw * kh, nv = (size_t)dh * kv;
  /* Doubles are computed into the coef buffer, then compacted to int32 in place. */
  if (beit_data_grow((void **)&ws->coef, &ws->coef_cap, (nh + nv) * sizeof(double)) ||
      beit_data_grow((void **)&ws->bounds, &ws->bounds_cap, 2 * ((size_t)dw + dh) * sizeof(int)))
    return beit_error_set(err, BEIT_STATUS_NOMEM, "resize: out of memory");
  int *bh = ws->bounds, *bv = ws->bounds + 2 * (size_t)dw;
  double *kd = (double *)ws->coef;
  precompute_coeffs(kd, bh, w, dw, kh, f);
  precompute_coeffs(kd + nh, bv, h, dh, kv, f);
  int32_t *kkh = ws->coef, *kkv = ws->coef + nh;
  fixed_point(kkh, kd, nh);
  fixed_point(kkv, kd + nh, nv);

  const uint8_t *vsrc = box;
  size_t vstride = sstride;
  if (need_h) {
    int first = bv[0], last = bv[2 * (dh - 1)] + bv[2 * (dh - 1) + 1];
    if (!need_v) {
      first = 0;
      last = h;
    }
    int rows = last - first;
    /* The horizontal pass runs as a vertical one on the transposed rows, so that its inner loop
     * is the vectorised row update of resample_vertical; integer sums make it bit-identical to
     * Pillow's per-pixel loop. */
    size_t rn = (size_t)rows * 3, big = (size_t)(w > dw ? w : dw) * rn;
    if (beit_data_grow((void **)&ws->tmp, &ws->tmp_cap, big) ||
        beit_data_grow((void **)&ws->crop_t, &ws->crop_t_cap, big) ||
        beit_data_grow((void **)&ws->acc, &ws->acc_cap, (rn > (size_t)dw * 3 ? rn : (size_t)dw * 3) * sizeof(int32_t)))
      return beit_error_set(err, BEIT_STATUS_NOMEM, "resize: out of memory");
    transpose_rgb(ws->crop_t, box + (size_t)first * sstride, sstride, w, rows); /* (w, rows, 3) */
    resample_vertical(ws->tmp, ws->crop_t, rn, rn, dw, kh, bh, kkh, ws->acc);  /* (dw, rows, 3) */
    uint8_t *out = need_v ? ws->crop_t : dst;
    transpose_rgb(out, ws->tmp, rn, rows, dw);                                 /* (rows, dw, 3) */
    if (!need_v)
      return BEIT_STATUS_OK;
    for (int y = 0; y < dh; y++)
      bv[2 * y] -= first;
    vsrc = ws->crop_t;
    vstride = (size_t)dw * 3;
  }
  size_t n = (size_t)dw * 3;
  if (beit_data_grow((void **)&ws->acc, &ws->acc_cap, n * sizeof(int32_t)))
    return beit_error_set(err, BEIT_STATUS_NOMEM, "resize: out of memory");
  resample_vertical(dst, vsrc, vstride, n, dh, kv, bv, kkv, ws->acc);
  return BEIT_STATUS_OK;
}

void beit_data_resize_naive(float *dst, int dw, int dh, const uint8_t *src, int sw, int sh,
                            size_t sstride, int x0, int y0, int w, int h,
                            enum beit_data_filter filter)
{
  (void)sw;
  (void)sh;
  const struct filter *f = &filters[filter];
  double sx = (double)w / dw, sy = (double)h / dh;
  double fx = sx < 1 ? 1 : sx, fy = sy < 1 ? 1 : sy;
  for (int y = 0; y < dh; y++)
    for (int x = 0; x < dw; x++) {
      double cx = (x + 0.5) * sx, cy = (y + 0.5) * sy, acc[3] = {0, 0, 0}, wsum = 0;
      for (int j = 0; j < h; j++) {
        double wy = f->fn((j + 0.5 - cy) / fy);
        if (wy == 0)
          continue;
        for (int i = 0; i < w; i++) {
          double wgt = wy * f->fn((i + 0.5 - cx) / fx);
          const uint8_t *p = src + (size_t)(y0 + j) * sstride + (size_t)(x0 + i) * 3;
          for (int c = 0; c < 3; c++)
            acc[c] += wgt * p[c];
          wsum += wgt;
        }
      }
      for (int c = 0; c < 3; c++)
        dst[((size_t)y * dw + x) * 3 + c] = (float)(acc[c] / wsum);
    }
}
