/* timm's RandAugment on 8-bit RGB images, each op computed as Pillow 9.4 does it (see
 * randaugment.h for the contract and tests/test_randaugment.c for the check against PIL).
 *
 * Numerical traps, all reproduced on purpose: Image.blend works in float with a float alpha and
 * truncates; the SMOOTH filter of Sharpness accumulates in float from a rounding offset of 0.5
 * and keeps the 1-pixel border; Image.rotate rounds its matrix to 15 decimals; the affine
 * resamplers (Geometry.c, not Resample.c) use a bicubic with a = -1 (not -0.5) in double and
 * truncate. Bit-exactness needs IEEE evaluation without FMA contraction: data/CMakeLists.txt
 * compiles this file with -ffp-contract=off. Sharpness and the affine resamplers are written to
 * vectorise across bytes or pixels; each one's arithmetic stays Pillow's, in Pillow's order. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data_internal.h"
#include "isa.h"
#include "randaugment.h"

/* ---- point operations: one 256-entry table per channel ---- */

static void apply_lut(uint8_t *p, size_t n, const uint8_t lut[3][256])
{
  for (size_t i = 0; i < n; i++, p += 3) {
    p[0] = lut[0][p[0]];
    p[1] = lut[1][p[1]];
    p[2] = lut[2][p[2]];
  }
}

static void apply_lut1(uint8_t *p, size_t n, const uint8_t lut[256])
{
  for (size_t i = 0; i < 3 * n; i++)
    p[i] = lut[p[i]];
}

static void histogram(const uint8_t *p, size_t n, size_t hist[3][256])
{
  memset(hist, 0, sizeof(size_t) * 3 * 256);
  for (size_t i = 0; i < n; i++, p += 3) {
    hist[0][p[0]]++;
    hist[1][p[1]]++;
    hist[2][p[2]]++;
  }
}

static void identity_lut(uint8_t lut[256])
{
  for (int v = 0; v < 256; v++)
    lut[v] = (uint8_t)v;
}

/* ImageOps.autocontrast(cutoff=0): stretch [lo, hi] of each channel to [0, 255] with Python's
 * double scale/offset and int() truncation; a channel with one value stays as it is. */
static void autocontrast(uint8_t *p, size_t n)
{
  size_t hist[3][256];
  uint8_t lut[3][256];
  histogram(p, n, hist);
  for (int c = 0; c < 3; c++) {
    int lo = 0, hi = 255;
    while (lo < 256 && !hist[c][lo])
      lo++;
    while (hi >= 0 && !hist[c][hi])
      hi--;
    identity_lut(lut[c]);
    if (hi <= lo)
      continue;
    double scale = 255.0 / (hi - lo), offset = -lo * scale;
    for (int v = 0; v < 256; v++) {
      double t = v * scale + offset;
      int ix = (int)t; /* int() truncates towards zero */
      lut[c][v] = (uint8_t)(ix < 0 ? 0 : ix > 255 ? 255 : ix);
    }
  }
  apply_lut(p, n, lut);
}

/* ImageOps.equalize: step = (count - count of the last used value) // 255, lut[v] = (step // 2 +
 * pixels below v) // step, clipped to 255 by Image.point. */
static void equalize(uint8_t *p, size_t n)
{
  size_t hist[3][256];
  uint8_t lut[3][256];
  histogram(p, n, hist);
  for (int c = 0; c < 3; c++) {
    identity_lut(lut[c]);
    int last = 255, used = 0;
    while (!hist[c][last])
      last--;
    for (int v = 0; v < 256; v++)
      used += hist[c][v] != 0;
    size_t step = (n - hist[c][last]) / 255;
    if (used <= 1 || step == 0)
      continue;
    size_t acc = step / 2;
    for (int v = 0; v < 256; v++) {
      size_t q = acc / step;
      lut[c][v] = (uint8_t)(q > 255 ? 255 : q);
      acc += hist[c][v];
    }
  }
  apply_lut(p, n, lut);
}

/* Invert, posterize, solarize and timm's solarize_add as one table for all channels. */
static void point_op(enum beit_ra_op op, double arg, uint8_t *p, size_t n)
{
  uint8_t lut[256];
  /* arguments are integers in PIL/timm; clamp before the conversion so it is defined */
  int a = (int)(arg < -1024 ? -1024 : arg > 1024 ? 1024 : arg);
  if (op == BEIT_RA_POSTERIZE && a >= 8) /* timm returns the image unchanged */
    return;
  for (int v = 0; v < 256; v++) {
    int out = v;
    if (op == BEIT_RA_INVERT)
      out = 255 - v;
    else if (op == BEIT_RA_POSTERIZE)
      out = a <= 0 ? 0 : v & ~((1 << (8 - a)) - 1);
    else if (op == BEIT_RA_SOLARIZE)
      out = v < a ? v : 255 - v;
    else if (op == BEIT_RA_SOLARIZE_ADD && v < 128)
      out = v + a;
    lut[v] = (uint8_t)(out < 0 ? 0 : out > 255 ? 255 : out);
  }
  apply_lut1(p, n, lut);
}

/* ---- ImageEnhance: Image.blend(degenerate, image, factor), beit_pil_blend per byte ---- */

/* Blend every channel with one constant degenerate value (Contrast, Brightness). */
static void blend_constant(uint8_t *p, size_t n, int degenerate, float alpha)
{
  uint8_t lut[256];
  for (int v = 0; v < 256; v++)
    lut[v] = beit_pil_blend(degenerate, v, alpha);
  apply_lut1(p, n, lut);
}

static void color(uint8_t *p, size_t n, float alpha)
{
  for (size_t i = 0; i < n; i++, p += 3) {
    int y = beit_pil_luma(p[0], p[1], p[2]);
    p[0] = beit_pil_blend(y, p[0], alpha);
    p[1] = beit_pil_blend(y, p[1], alpha);
    p[2] = beit_pil_blend(y, p[2], alpha);
  }
}

/* ImageEnhance.Contrast's grey level: int(mean of the L image + 0.5). */
static int grey_mean(const uint8_t *p, size_t n)
{
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++, p += 3)
    sum += (uint64_t)beit_pil_luma(p[0], p[1], p[2]);
  return (int)((double)sum / (double)n + 0.5);
}

/* Float to byte as ImagingBlend clips: <= 0 -> 0, >= 255 -> 255, else truncated; selects
 * rather than early returns so that the loop below vectorises. */
static inline uint8_t clip_float(float v)
{
  v = v <= 0.0f ? 0.0f : v;
  v = v >= 255.0f ? 255.0f : v;
  return (uint8_t)(int)v;
}

/* One row of ImageEnhance.Sharpness: ImageFilter.SMOOTH ((1 1 1; 1 5 1; 1 1 1) / 13) of src
 * (rows src - stride, src, src + stride) blended as beit_pil_blend does into dst, bytes 3 to
 * stride - 3. Filter.c divides the kernel in float, starts the sum at 0.5 (its rounding) and
 * adds the rows below, centre, above, each summed left to right; that order is kept per byte. */
BEIT_KERNEL_CLONES
static void sharpen_row(uint8_t *restrict dst, const uint8_t *restrict src, size_t stride,
                        float alpha)
{
  const float k_side = 1.0f / 13.0f, k_mid = 5.0f / 13.0f;
  const uint8_t *below = src + stride, *above = src - stride;
  for (size_t i = 3; i < stride - 3; i++) {
    float ss = 0.5f;
    ss += (float)below[i - 3] * k_side + (float)below[i] * k_side + (float)below[i + 3] * k_side;
    ss += (float)src[i - 3] * k_side + (float)src[i] * k_mid + (float)src[i + 3] * k_side;
    ss += (float)above[i - 3] * k_side + (float)above[i] * k_side + (float)above[i + 3] * k_side;
    /* Filter.c's clip of ss to [0, 255] done on the int: ss lies in [0.5, 256) */
    int degenerate = (int)ss;
    degenerate = degenerate > 255 ? 255 : degenerate;
    dst[i] = clip_float((float)degenerate + alpha * (float)(src[i] - degenerate));
  }
}

/* ImageEnhance.Sharpness: blend with the SMOOTH-filtered image, whose 1-pixel border is the
 * original (so border pixels stay as they are); images under 3x3 are not filtered at all. */
void beit_ra_sharpness(uint8_t *p, int w, int h, float alpha, uint8_t *src)
{
  if (w < 3 || h < 3)
    return;
  size_t stride = (size_t)w * 3;
  memcpy(src, p, stride * h);
  for (int y = 1; y < h - 1; y++)
    sharpen_row(p + y * stride, src + y * stride, stride, alpha);
}

/* ---- Image.transform(AFFINE) with BILINEAR / BICUBIC (Geometry.c) ---- */

/* Geometry.c's cubic through four samples (a = -1), in its evaluation order. */
static inline double cubic(double v1, double v2, double v3, double v4, double d)
{
  double p1 = v2, p2 = -v1 + v3, p3 = 2 * (v1 - v2) + v3 - v4, p4 = -v1 + v2 - v3 + v4;
  return p1 + d * (p2 + d * (p3 + d * p4));
}

/* cubic() of the four bytes packed in word (first in the low byte). Its p2, p3, p4 are sums of
 * bytes, exact in int as in double, so only the Horner steps are done in double. */
static inline double cubic_packed(uint32_t word, double d)
{
  int v1 = word & 255, v2 = word >> 8 & 255, v3 = word >> 16 & 255, v4 = (int)(word >> 24);
  int p2 = -v1 + v3, p3 = 2 * (v1 - v2) + v3 - v4, p4 = -v1 + v2 - v3 + v4;
  return v2 + d * (p2 + d * (p3 + d * p4));
}

/* Geometry.c's linear interpolation between the two bytes packed in word. */
static inline double linear_packed(uint32_t word, double d)
{
  int v1 = word & 255, v2 = word >> 8 & 255;
  return v1 + (v2 - v1) * d;
}

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

enum { AFFINE_CHUNK = 128 }; /* output pixels per pass */

enum affine_pixel { AFFINE_FILL, AFFINE_EDGE, AFFINE_INNER };

/* v, or +0.0 when keep is 0: by its bits, because GCC turns a select between doubles into
 * branches (under its default -ftrapping-math) and then leaves the loop scalar. */
static inline double zero_unless(double v, int keep)
{
  uint64_t bits;
  memcpy(&bits, &v, sizeof bits);
  bits &= -(uint64_t)(keep != 0);
  memcpy(&v, &bits, sizeof v);
  return v;
}

/* Where output pixels (x0 .. x0 + m - 1, y) sample, for affine(): the interpolation cell's
 * corner (ix, iy) and fractions (dx, dy), and whether the point lies outside [0, w) x [0, h)
 * (fill), its taps x taps neighbourhood inside the image (inner) or over an edge (edge). The
 * coordinates are Geometry.c's formulas evaluated per pixel, not stepped (stepping rounds). */
BEIT_KERNEL_CLONES
static void affine_coords(const double a[6], int w, int h, int taps, int x0, int m, double yc,
                          double *restrict dx, double *restrict dy, int *restrict ix,
                          int *restrict iy, uint8_t *restrict kind)
{
  double a1y = a[1] * yc, a4y = a[4] * yc; /* the same products as in the full formula */
  int lo = taps / 2 - 1, hi_x = w - taps / 2 - 1, hi_y = h - taps / 2 - 1;
  for (int i = 0; i < m; i++) {
    double xc = (x0 + i) + 0.5;
    double xin = a[0] * xc + a1y + a[2], yin = a[3] * xc + a4y + a[5];
    /* | rather than ||, and no arithmetic under a condition: both block vectorisation */
    int inside = !((xin < 0.0) | (xin >= w) | (yin < 0.0) | (yin >= h));
    /* Geometry.c: xin - 0.5, floored (trunc for >= 0), and the fraction from the int corner;
     * points outside become 0, keeping their conversion to int defined */
    double xs = zero_unless(xin - 0.5, inside), ys = zero_unless(yin - 0.5, inside);
    int cx = (int)xs, cy = (int)ys;
    cx -= xs < cx; /* floor, without the library call */
    cy -= ys < cy;
    dx[i] = xs - cx;
    dy[i] = ys - cy;
    ix[i] = cx;
    iy[i] = cy;
    int inner = (cx >= lo) & (cx <= hi_x) & (cy >= lo) & (cy <= hi_y);
    kind[i] = (uint8_t)(inside * (AFFINE_EDGE + inner)); /* FILL, EDGE or INNER */
  }
}

/* Gather, for each channel c and neighbourhood row k, the taps bytes of the neighbourhood of
 * pixel i into words[c][k][i] (packed as cubic_packed reads them), from planes ((3, h, w));
 * edge pixels clamp to the image as Geometry.c does; fill pixels get zeros. */
BEIT_KERNEL_CLONES
static void affine_gather(const uint8_t *planes, int w, int h, int taps, int m,
                          const int *ix, const int *iy, const uint8_t *kind,
                          uint32_t words[3][4][AFFINE_CHUNK])
{
  size_t n = (size_t)w * h;
  int lo = taps / 2 - 1;
  for (int i = 0; i < m; i++) {
    if (kind[i] == AFFINE_INNER) {
      const uint8_t *s = planes + (size_t)(iy[i] - lo) * w + (ix[i] - lo);
      for (int c = 0; c < 3; c++, s += n)
        for (int k = 0; k < taps; k++) {
          const uint8_t *r = s + (size_t)k * w;
          words[c][k][i] = taps == 4 ? (uint32_t)r[0] | (uint32_t)r[1] << 8 |
                                           (uint32_t)r[2] << 16 | (uint32_t)r[3] << 24
                                     : (uint32_t)r[0] | (uint32_t)r[1] << 8;
        }
    } else if (kind[i] == AFFINE_EDGE) {
      int xs[4];
      for (int j = 0; j < taps; j++)
        xs[j] = clampi(ix[i] - lo + j, 0, w - 1);
      for (int c = 0; c < 3; c++)
        for (int k = 0; k < taps; k++) {
          const uint8_t *r = planes + c * n + (size_t)clampi(iy[i] - lo + k, 0, h - 1) * w;
          uint32_t word = 0;
          for (int j = 0; j < taps; j++)
            word |= (uint32_t)r[xs[j]] << 8 * j;
          words[c][k][i] = word;
        }
    } else {
      for (int c = 0; c < 3; c++)
        for (int k = 0; k < taps; k++)
          words[c][k][i] = 0;
    }
  }
}

/* Output pixel (x, y) takes the input at a * (x + 0.5, y + 0.5, 1); a is PIL's 6-coefficient
 * inverse matrix. Per output row, in chunks: coordinates, then the neighbourhoods gathered from
 * a planar copy of the image in src, then the interpolation, each channel in Geometry.c's own
 * double arithmetic and order but vectorisable across pixels, then interleaving with the fill. */
BEIT_KERNEL_CLONES
void beit_ra_affine(uint8_t *p, int w, int h, const double a[6], const uint8_t fill[3], int bicubic,
                    uint8_t *src)
{
  size_t n = (size_t)w * h;
  for (size_t i = 0; i < n; i++) {
    src[i] = p[3 * i];
    src[n + i] = p[3 * i + 1];
    src[2 * n + i] = p[3 * i + 2];
  }
  int taps = bicubic ? 4 : 2;
  double dx[AFFINE_CHUNK], dy[AFFINE_CHUNK];
  int ix[AFFINE_CHUNK], iy[AFFINE_CHUNK];
  uint8_t kind[AFFINE_CHUNK], out[3][AFFINE_CHUNK];
  uint32_t words[3][4][AFFINE_CHUNK];
  for (int y = 0; y < h; y++)
    for (int x0 = 0; x0 < w; x0 += AFFINE_CHUNK) {
      int m = w - x0 < AFFINE_CHUNK ? w - x0 : AFFINE_CHUNK;
      affine_coords(a, w, h, taps, x0, m, y + 0.5, dx, dy, ix, iy, kind);
      affine_gather(src, w, h, taps, m, ix, iy, kind, words);
      for (int c = 0; c < 3; c++) {
        const uint32_t *r0 = words[c][0], *r1 = words[c][1], *r2 = words[c][2],
                       *r3 = words[c][3];
        uint8_t *o = out[c];
        if (bicubic) {
          for (int i = 0; i < m; i++) {
            double d = dx[i];
            double t = cubic(cubic_packed(r0[i], d), cubic_packed(r1[i], d),
                             cubic_packed(r2[i], d), cubic_packed(r3[i], d), dy[i]);
            t = t <= 0.0 ? 0.0 : t;
            t = t >= 255.0 ? 255.0 : t;
            o[i] = (uint8_t)(int)t;
          }
        } else {
          for (int i = 0; i < m; i++) {
            double v1 = linear_packed(r0[i], dx[i]), v2 = linear_packed(r1[i], dx[i]);
            o[i] = (uint8_t)(int)(v1 + (v2 - v1) * dy[i]);
          }
        }
      }
      uint8_t *d = p + ((size_t)y * w + x0) * 3, f0 = fill[0], f1 = fill[1], f2 = fill[2];
      for (int i = 0; i < m; i++, d += 3) {
        int keep = kind[i] != AFFINE_FILL;
        d[0] = keep ? out[0][i] : f0;
        d[1] = keep ? out[1][i] : f1;
        d[2] = keep ? out[2][i] : f2;
      }
    }
}

/* Python's round(v, 15): correctly rounded to 15 decimals, as glibc's printf rounds. */
static double round15(double v)
{
  char buf[64];
  snprintf(buf, sizeof buf, "%.15f", v);
  return strtod(buf, NULL);
}

/* Rotate in place by quarter turns: 180 for any image, 90/270 (counter-clockwise) when square. */
static void rotate_quarter(uint8_t *p, int w, int h, int quarters)
{
  if (quarters == 2) {
    size_t n = (size_t)w * h;
    for (size_t i = 0, j = n - 1; i < j; i++, j--)
      for (int c = 0; c < 3; c++) {
        uint8_t t = p[3 * i + c];
        p[3 * i + c] = p[3 * j + c];
        p[3 * j + c] = t;
      }
    return;
  }
  int s = w; /* square: cycle the four pixels of each orbit */
  for (int y = 0; y < s / 2; y++)
    for (int x = y; x < s - 1 - y; x++) {
      uint8_t *q[4] = {p + ((size_t)y * s + x) * 3, p + ((size_t)(s - 1 - x) * s + y) * 3,
                       p + ((size_t)(s - 1 - y) * s + (s - 1 - x)) * 3,
                       p + ((size_t)x * s + (s - 1 - y)) * 3};
      /* quarter 1 (CCW): out(q0) = in(q3), out(q3) = in(q2), ...; quarter 3 the other way */
      for (int c = 0; c < 3; c++) {
        uint8_t t = q[0][c];
        if (quarters == 1) {
          q[0][c] = q[3][c], q[3][c] = q[2][c], q[2][c] = q[1][c], q[1][c] = t;
        } else {
          q[0][c] = q[1][c], q[1][c] = q[2][c], q[2][c] = q[3][c], q[3][c] = t;
        }
      }
    }
}

/* Image.rotate(degrees, resample, fillcolor) without expand: exact quarter turns by transpose,
 * else the affine inverse about the centre (w / 2, h / 2) with the matrix rounded to 15
 * decimals. */
static void rotate(uint8_t *p, int w, int h, double degrees, const uint8_t fill[3], int bicubic,
                   uint8_t *scratch)
{
  double angle = fmod(degrees, 360.0); /* Python's float %: the sign of the divisor */
  if (angle != 0.0 && angle < 0.0)
    angle += 360.0;
  if (angle == 0.0)
    return;
  if (angle == 180.0 || ((angle == 90.0 || angle == 270.0) && w == h)) {
    rotate_quarter(p, w, h, (int)(angle / 90.0));
    return;
  }
  double rad = -(angle * (M_PI / 180.0)); /* -math.radians(angle) */
  double a[6] = {round15(cos(rad)), round15(sin(rad)), 0.0, round15(-sin(rad)), round15(cos(rad)),
                 0.0};
  double cx = w / 2.0, cy = h / 2.0;
  a[2] = a[0] * -cx + a[1] * -cy + 0.0 + cx;
  a[5] = a[3] * -cx + a[4] * -cy + 0.0 + cy;
  beit_ra_affine(p, w, h, a, fill, bicubic, scratch);
}

static void geometric(enum beit_ra_op op, double arg, uint8_t *p, int w, int h,
                      const uint8_t fill[3], int bicubic, uint8_t *scratch)
{
  double a[6] = {1, 0, 0, 0, 1, 0};
  switch (op) {
  case BEIT_RA_ROTATE:
    rotate(p, w, h, arg, fill, bicubic, scratch);
    return;
  case BEIT_RA_SHEAR_X:
    a[1] = arg;
    break;
  case BEIT_RA_SHEAR_Y:
    a[3] = arg;
    break;
  case BEIT_RA_TRANSLATE_X:
    a[2] = arg;
    break;
  default: /* BEIT_RA_TRANSLATE_Y */
    a[5] = arg;
    break;
  }
  beit_ra_affine(p, w, h, a, fill, bicubic, scratch);
}

enum beit_status beit_randaugment_op(enum beit_ra_op op, double arg, uint8_t *pixels, int w,
                                     int h, const uint8_t fill[3], int bicubic, uint8_t *scratch,
                                     struct beit_error *err)
{
  if ((unsigned)op >= BEIT_RA_COUNT)
    return beit_error_set(err, BEIT_STATUS_USAGE, "randaugment: unknown op %d", (int)op);
  if (w < 1 || h < 1)
    return beit_error_set(err, BEIT_STATUS_USAGE, "randaugment: image %dx%d", w, h);
  if (!isfinite(arg))
    return beit_error_set(err, BEIT_STATUS_USAGE, "randaugment: op %d argument %g", (int)op, arg);
  size_t n = (size_t)w * h;
  float alpha = (float)arg; /* Image.blend takes a C float */
  switch (op) {
  case BEIT_RA_AUTOCONTRAST:
    autocontrast(pixels, n);
    break;
  case BEIT_RA_EQUALIZE:
    equalize(pixels, n);
    break;
  case BEIT_RA_INVERT:
  case BEIT_RA_POSTERIZE:
  case BEIT_RA_SOLARIZE:
  case BEIT_RA_SOLARIZE_ADD:
    point_op(op, arg, pixels, n);
    break;
  case BEIT_RA_COLOR:
    color(pixels, n, alpha);
    break;
  case BEIT_RA_CONTRAST:
    blend_constant(pixels, n, grey_mean(pixels, n), alpha);
    break;
  case BEIT_RA_BRIGHTNESS:
    blend_constant(pixels, n, 0, alpha);
    break;
  case BEIT_RA_SHARPNESS:
    beit_ra_sharpness(pixels, w, h, alpha, scratch);
    break;
  default:
    geometric(op, arg, pixels, w, h, fill, bicubic, scratch);
    break;
  }
  return BEIT_STATUS_OK;
}

/* ---- the policy ---- */

static void defaults(struct beit_randaugment *ra)
{
  memset(ra, 0, sizeof *ra);
  ra->num_layers = 2;
  ra->magnitude = 10.0;
  ra->magnitude_std = 0.0;
  ra->prob = 0.5;
  ra->increasing = 0;
  ra->translate_pct = 0.45;
  ra->fill[0] = ra->fill[1] = ra->fill[2] = 128;
  ra->bicubic = 1;
}

/* One "key<number>" section into ra; 0 on success. */
static int parse_section(struct beit_randaugment *ra, const char *sec, size_t len)
{
  char buf[64];
  if (len == 0 || len >= sizeof buf)
    return -1;
  memcpy(buf, sec, len);
  buf[len] = '\0';
  size_t k = strcspn(buf, "0123456789"); /* timm splits at the first digit */
  if (k == len)
    return -1;
  const char *val = buf + k;
  char *end;
  double v = strtod(val, &end);
  if (*end || !isfinite(v))
    return -1;
  int is_int = strspn(val, "0123456789") == strlen(val);
  if (k == 1 && buf[0] == 'm' && v >= 0)
    ra->magnitude = v;
  else if (k == 1 && buf[0] == 'n' && is_int && v <= BEIT_RA_MAX_LAYERS)
    ra->num_layers = (int)v;
  else if (k == 4 && !memcmp(buf, "mstd", 4) && v >= 0)
    ra->magnitude_std = v > 100 ? INFINITY : v; /* timm: > 100 means uniform(0, m) */
  else if (k == 3 && !memcmp(buf, "inc", 3) && is_int && v <= 1)
    ra->increasing = (int)v;
  else if (k == 1 && buf[0] == 'p' && v <= 1)
    ra->prob = v;
  else
    return -1;
  return 0;
}

enum beit_status beit_randaugment_parse(struct beit_randaugment *ra, const char *spec,
                                        struct beit_error *err)
{
  defaults(ra);
  if (!spec || !*spec) {
    ra->num_layers = 0;
    return BEIT_STATUS_OK;
  }
  size_t first = strcspn(spec, "-");
  if (first != 4 || strncmp(spec, "rand", 4)) {
    ra->num_layers = 0;
    return beit_error_set(err, BEIT_STATUS_CONFIG,
                          "randaugment '%s': first section must be 'rand'", spec);
  }
  for (const char *s = spec + first; *s == '-';) {
    s++;
    size_t len = strcspn(s, "-");
    if (parse_section(ra, s, len)) {
      defaults(ra);
      ra->num_layers = 0;
      return beit_error_set(err, BEIT_STATUS_CONFIG,
                            "randaugment '%s': unknown or invalid section '%.*s' (want m<float>, "
                            "n<int>, mstd<float>, inc<0|1>, p<float in [0,1]>)",
                            spec, (int)len, s);
    }
    s += len;
  }
  return BEIT_STATUS_OK;
}

/* timm's _randomly_negate: -v when a uniform draw exceeds 0.5. */
static double maybe_negate(double v, struct beit_rng *rng)
{
  return beit_rng_uniform(rng) > 0.5 ? -v : v;
}

/* timm's *_level_to_arg for op at level (in [0, 10]); draws the sign where timm does. */
static double level_to_arg(const struct beit_randaugment *ra, enum beit_ra_op op, double level,
                           int w, int h, struct beit_rng *rng)
{
  double l = level / 10.0;
  switch (op) {
  case BEIT_RA_ROTATE:
    return maybe_negate(l * 30.0, rng);
  case BEIT_RA_POSTERIZE:
    return ra->increasing ? 4 - (int)(l * 4) : (int)(l * 4);
  case BEIT_RA_SOLARIZE:
    return ra->increasing ? 256 - (int)(l * 256) : (int)(l * 256);
  case BEIT_RA_SOLARIZE_ADD:
    return (int)(l * 110);
  case BEIT_RA_COLOR:
  case BEIT_RA_CONTRAST:
  case BEIT_RA_BRIGHTNESS:
  case BEIT_RA_SHARPNESS:
    if (!ra->increasing)
      return l * 1.8 + 0.1;
    return fmax(0.1, 1.0 + maybe_negate(l * 0.9, rng));
  case BEIT_RA_SHEAR_X:
  case BEIT_RA_SHEAR_Y:
    return maybe_negate(l * 0.3, rng);
  case BEIT_RA_TRANSLATE_X:
    return maybe_negate(l * ra->translate_pct, rng) * w;
  case BEIT_RA_TRANSLATE_Y:
    return maybe_negate(l * ra->translate_pct, rng) * h;
  default: /* AutoContrast, Equalize, Invert: no argument */
    return 0.0;
  }
}

enum beit_status beit_randaugment_apply(const struct beit_randaugment *ra, uint8_t *pixels, int w,
                                        int h, struct beit_rng *rng, uint8_t *scratch,
                                        struct beit_error *err)
{
  if (ra->num_layers < 0 || ra->num_layers > BEIT_RA_MAX_LAYERS)
    return beit_error_set(err, BEIT_STATUS_USAGE, "randaugment: num_layers %d out of [0, %d]",
                          ra->num_layers, BEIT_RA_MAX_LAYERS);
  enum beit_ra_op ops[BEIT_RA_MAX_LAYERS];
  int n = ra->num_layers;
  for (int i = 0; i < n; i++)
    ops[i] = (enum beit_ra_op)beit_rng_int(rng, 0, BEIT_RA_COUNT - 1);
  for (int i = 0; i < n; i++) {
    if (ra->prob < 1.0 && beit_rng_uniform(rng) > ra->prob)
      continue;
    double level = ra->magnitude;
    if (isinf(ra->magnitude_std))
      level = ra->magnitude * beit_rng_uniform(rng);
    else if (ra->magnitude_std > 0)
      level = ra->magnitude + ra->magnitude_std * beit_rng_normal(rng);
    level = fmin(10.0, fmax(0.0, level));
    double arg = level_to_arg(ra, ops[i], level, w, h, rng);
    enum beit_status st =
        beit_randaugment_op(ops[i], arg, pixels, w, h, ra->fill, ra->bicubic, scratch, err);
    if (st)
      return st;
  }
  return BEIT_STATUS_OK;
}
