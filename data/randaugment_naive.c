/* The naive twins of RandAugment's vectorised kernels (randaugment.c): Pillow's affine
 * resampling (Geometry.c, BILINEAR and BICUBIC with a = -1, double arithmetic, truncation) and
 * ImageEnhance.Sharpness written pixel by pixel, channel by channel, in Pillow's own order. They
 * are the oracles of tests/test_randaugment.c: the fast versions must give the same bytes.
 * Compiled, like randaugment.c, without FMA contraction (data/CMakeLists.txt). */
#include <math.h>
#include <string.h>

#include "data_internal.h"
#include "randaugment.h"

static inline int floor_int(double v) { return v < 0.0 ? (int)floor(v) : (int)v; }
static inline int clamp_int(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Geometry.c's cubic through four samples (a = -1), in its evaluation order. */
static inline double cubic(double v1, double v2, double v3, double v4, double d)
{
  double p1 = v2, p2 = -v1 + v3, p3 = 2 * (v1 - v2) + v3 - v4, p4 = -v1 + v2 - v3 + v4;
  return p1 + d * (p2 + d * (p3 + d * p4));
}

/* src ((h, w, 3)) at input coordinates (xin, yin) into out[3]; 0 when the point lies outside
 * [0, w) x [0, h) (the caller writes the fill colour). Edges clamp. */
static int sample(uint8_t out[3], const uint8_t *src, int w, int h, double xin, double yin,
                  int bicubic)
{
  if (xin < 0.0 || xin >= w || yin < 0.0 || yin >= h)
    return 0;
  xin -= 0.5;
  yin -= 0.5;
  int x = floor_int(xin), y = floor_int(yin);
  double dx = xin - x, dy = yin - y;
  size_t stride = (size_t)w * 3;
  if (!bicubic) {
    const uint8_t *r0 = src + clamp_int(y, 0, h - 1) * stride;
    const uint8_t *r1 = src + clamp_int(y + 1, 0, h - 1) * stride;
    size_t x0 = (size_t)clamp_int(x, 0, w - 1) * 3, x1 = (size_t)clamp_int(x + 1, 0, w - 1) * 3;
    for (int c = 0; c < 3; c++) {
      double v1 = r0[x0 + c] + (r0[x1 + c] - r0[x0 + c]) * dx;
      double v2 = r1[x0 + c] + (r1[x1 + c] - r1[x0 + c]) * dx;
      out[c] = (uint8_t)(v1 + (v2 - v1) * dy);
    }
    return 1;
  }
  size_t xs[4];
  const uint8_t *rows[4];
  for (int k = 0; k < 4; k++) {
    xs[k] = (size_t)clamp_int(x - 1 + k, 0, w - 1) * 3;
    rows[k] = src + clamp_int(y - 1 + k, 0, h - 1) * stride;
  }
  for (int c = 0; c < 3; c++) {
    double v[4];
    for (int k = 0; k < 4; k++) {
      const uint8_t *r = rows[k] + c;
      v[k] = cubic(r[xs[0]], r[xs[1]], r[xs[2]], r[xs[3]], dx);
    }
    double t = cubic(v[0], v[1], v[2], v[3], dy);
    out[c] = t <= 0.0 ? 0 : t >= 255.0 ? 255 : (uint8_t)t;
  }
  return 1;
}

void beit_ra_affine_naive(uint8_t *p, int w, int h, const double a[6], const uint8_t fill[3],
                          int bicubic, uint8_t *scratch)
{
  memcpy(scratch, p, (size_t)w * h * 3);
  for (int y = 0; y < h; y++) {
    double yc = y + 0.5;
    uint8_t *d = p + (size_t)y * w * 3;
    for (int x = 0; x < w; x++, d += 3) {
      double xc = x + 0.5;
      double xin = a[0] * xc + a[1] * yc + a[2], yin = a[3] * xc + a[4] * yc + a[5];
      if (!sample(d, scratch, w, h, xin, yin, bicubic))
        memcpy(d, fill, 3);
    }
  }
}

/* The SMOOTH kernel (1 1 1 / 1 5 1 / 1 1 1) / 13 at s, accumulated in float from 0.5. */
static uint8_t smooth_at(const uint8_t *s, size_t stride)
{
  const float k_side = 1.0f / 13.0f, k_mid = 5.0f / 13.0f;
  const uint8_t *below = s + stride, *above = s - stride;
  float ss = 0.5f;
  ss += (float)below[-3] * k_side + (float)below[0] * k_side + (float)below[3] * k_side;
  ss += (float)s[-3] * k_side + (float)s[0] * k_mid + (float)s[3] * k_side;
  ss += (float)above[-3] * k_side + (float)above[0] * k_side + (float)above[3] * k_side;
  if (ss <= 0.0f)
    return 0;
  if (ss >= 255.0f)
    return 255;
  return (uint8_t)ss;
}

void beit_ra_sharpness_naive(uint8_t *p, int w, int h, float alpha, uint8_t *scratch)
{
  if (w < 3 || h < 3)
    return;
  size_t stride = (size_t)w * 3;
  memcpy(scratch, p, stride * h);
  for (int y = 1; y < h - 1; y++)
    for (size_t i = 3; i < stride - 3; i++) {
      size_t at = (size_t)y * stride + i;
      p[at] = beit_pil_blend(smooth_at(scratch + at, stride), scratch[at], alpha);
    }
}
