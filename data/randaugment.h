/* timm's RandAugment (`rand-m9-mstd0.5-inc1`, BEiT fine-tuning) on 8-bit RGB images, each
 * operation computed as Pillow 9.4 computes it (ImageOps, ImageEnhance, Image.rotate and
 * Image.transform AFFINE with BILINEAR/BICUBIC and a fill colour). Internal to data/; the
 * policy's parameters and parser are public (include/beit/data.h).
 *
 * What it is not: a reproduction of timm's Python random stream (draws come from core/rng.h,
 * in the order documented at beit_randaugment_apply), nor timm's weighted op choice ('w'),
 * custom op lists ('t') or magnitude_max ('mmax'). */
#ifndef BEIT_DATA_RANDAUGMENT_H
#define BEIT_DATA_RANDAUGMENT_H

#include <stdint.h>

#include "beit/data.h" /* struct beit_randaugment, its parser */
#include "beit/status.h"
#include "rng.h"

/* The 15 operations, in the order of timm's _RAND_INCREASING_TRANSFORMS (and _RAND_TRANSFORMS):
 * an op index drawn uniformly in [0, BEIT_RA_COUNT) picks one. */
enum beit_ra_op {
  BEIT_RA_AUTOCONTRAST,
  BEIT_RA_EQUALIZE,
  BEIT_RA_INVERT,
  BEIT_RA_ROTATE,
  BEIT_RA_POSTERIZE,
  BEIT_RA_SOLARIZE,
  BEIT_RA_SOLARIZE_ADD,
  BEIT_RA_COLOR,
  BEIT_RA_CONTRAST,
  BEIT_RA_BRIGHTNESS,
  BEIT_RA_SHARPNESS,
  BEIT_RA_SHEAR_X,
  BEIT_RA_SHEAR_Y,
  BEIT_RA_TRANSLATE_X,
  BEIT_RA_TRANSLATE_Y,
  BEIT_RA_COUNT
};

/* Apply one op with its PIL argument already computed, in place on pixels ((h, w, 3), row
 * stride 3 * w); scratch is w * h * 3 bytes of the caller's that the op may overwrite
 * (sharpness and the geometric ops read from a copy there):
 *   AUTOCONTRAST, EQUALIZE, INVERT       arg unused
 *   ROTATE                               degrees, counter-clockwise (Image.rotate)
 *   POSTERIZE                            bits kept (int; >= 8: unchanged, <= 0: black)
 *   SOLARIZE                             threshold (int): v >= threshold -> 255 - v
 *   SOLARIZE_ADD                         add (int): v < 128 -> min(255, v + add)
 *   COLOR, CONTRAST, BRIGHTNESS, SHARPNESS  enhance factor (rounded to float, as Image.blend)
 *   SHEAR_X, SHEAR_Y                     shear factor
 *   TRANSLATE_X, TRANSLATE_Y             pixels (may be fractional)
 * fill and bicubic are used by the geometric ops only. BEIT_STATUS_USAGE for an unknown op,
 * w or h < 1, or a non-finite arg. */
enum beit_status beit_randaugment_op(enum beit_ra_op op, double arg, uint8_t *pixels, int w,
                                     int h, const uint8_t fill[3], int bicubic, uint8_t *scratch,
                                     struct beit_error *err);

/* The kernels behind rotate/shear/translate and Sharpness, in place on pixels ((h, w, 3)) with
 * scratch (w * h * 3 bytes): Pillow's affine transform (output pixel (x, y) samples the input at
 * a * (x + 0.5, y + 0.5, 1), a = the 6 inverse-matrix coefficients; outside points get fill)
 * and ImageEnhance.Sharpness at factor alpha. The fast ones (randaugment.c, vectorised across
 * pixels) and their naive twins (randaugment_naive.c, pixel by pixel) give the same bytes. */
void beit_ra_affine(uint8_t *pixels, int w, int h, const double a[6], const uint8_t fill[3],
                    int bicubic, uint8_t *scratch);
void beit_ra_affine_naive(uint8_t *pixels, int w, int h, const double a[6], const uint8_t fill[3],
                          int bicubic, uint8_t *scratch);
void beit_ra_sharpness(uint8_t *pixels, int w, int h, float alpha, uint8_t *scratch);
void beit_ra_sharpness_naive(uint8_t *pixels, int w, int h, float alpha, uint8_t *scratch);

/* The whole RandAugment on pixels ((h, w, 3)), in place, scratch as for beit_randaugment_op.
 * Draws from rng, in this order:
 *   1. num_layers op indices, each beit_rng_int(0, 14) (chosen with replacement, all first,
 *      as np.random.choice);
 *   2. for each chosen op in turn:
 *      a. if prob < 1: u = beit_rng_uniform; the op is skipped (no further draws) when u > prob;
 *      b. if magnitude_std > 0: INFINITY -> magnitude * beit_rng_uniform, else
 *         magnitude + magnitude_std * beit_rng_normal; the level is then clipped to [0, 10];
 *      c. ops with a signed argument (rotate, shear, translate, and the enhance ops when
 *         increasing) draw u = beit_rng_uniform and negate when u > 0.5.
 * Level -> argument as timm's *_level_to_arg (L = level / 10):
 *   Rotate 30 L degrees, ShearX/Y 0.3 L, TranslateX/YRel translate_pct L * w (resp. h) pixels,
 *   SolarizeAdd int(110 L); increasing: Posterize 4 - int(4 L), Solarize 256 - int(256 L),
 *   Color/Contrast/Brightness/Sharpness max(0.1, 1 +- 0.9 L); otherwise Posterize int(4 L),
 *   Solarize int(256 L), enhance 1.8 L + 0.1.
 * Errors as beit_randaugment_op (the image may then be partly augmented), and
 * BEIT_STATUS_USAGE for num_layers outside [0, BEIT_RA_MAX_LAYERS]. */
enum beit_status beit_randaugment_apply(const struct beit_randaugment *ra, uint8_t *pixels, int w,
                                        int h, struct beit_rng *rng, uint8_t *scratch,
                                        struct beit_error *err);

#endif
