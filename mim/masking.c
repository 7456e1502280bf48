/* Blockwise and uniform-random patch masking (spec 8).
 *
 * beit_mask_blockwise follows unilm's MaskingGenerator draw for draw (area, aspect, then top and
 * left only when the block fits), so its distribution equals the reference one; the stream is
 * xoshiro rather than Mersenne Twister, so individual masks differ. tools/masking_ref.py is the
 * Python twin that tests/test_masking.c compares distributions against. */
#include "masking.h"

#include <math.h>
#include <string.h>

#define MASK_ATTEMPTS 10 /* tries per block before the outer loop gives up */

void beit_mask_params_init(struct beit_mask_params *p, size_t height, size_t width,
                           size_t num_masking_patches)
{
  p->height = height;
  p->width = width;
  p->num_masking_patches = num_masking_patches;
  p->min_num_patches = 16;
  p->max_num_patches = 0;
  p->min_aspect = 0.3;
  p->max_aspect = 0.0;
}

enum beit_status beit_mask_params_check(const struct beit_mask_params *p, struct beit_error *err)
{
  if (p->height == 0 || p->width == 0)
    return beit_error_set(err, BEIT_STATUS_CONFIG, "masking: grid %zu x %zu is empty", p->height,
                          p->width);
  if (p->height > (size_t)1 << 20 || p->width > (size_t)1 << 20)
    return beit_error_set(err, BEIT_STATUS_CONFIG, "masking: grid %zu x %zu is too large",
                          p->height, p->width);
  size_t n = p->height * p->width;
  if (p->num_masking_patches > n)
    return beit_error_set(err, BEIT_STATUS_CONFIG,
                          "masking: num_masking_patches %zu exceeds the %zu x %zu = %zu patches",
                          p->num_masking_patches, p->height, p->width, n);
  double hi = p->max_aspect > 0.0 ? p->max_aspect : 1.0 / p->min_aspect;
  if (!(p->min_aspect > 0.0) || !isfinite(p->min_aspect) || !(hi >= p->min_aspect) ||
      !isfinite(hi))
    return beit_error_set(err, BEIT_STATUS_CONFIG,
                          "masking: min_aspect %g / max_aspect %g: need 0 < min <= max",
                          p->min_aspect, p->max_aspect);
  return BEIT_STATUS_OK;
}

/* Python's random.uniform: a + (b - a) * U, also when b < a (budget below min_num_patches). */
static double uniform(struct beit_rng *rng, double a, double b)
{
  return a + (b - a) * beit_rng_uniform(rng);
}

/* One block of at most budget new patches (unilm _mask). Returns how many it added, 0 when all
 * attempts failed: a block that does not fit, adds nothing, or would overshoot the budget. */
static size_t place_block(uint8_t *mask, struct beit_rng *rng, const struct beit_mask_params *p,
                          size_t budget, double log_lo, double log_hi)
{
  const long H = (long)p->height, W = (long)p->width;
  for (int attempt = 0; attempt < MASK_ATTEMPTS; attempt++) {
    double area = uniform(rng, (double)p->min_num_patches, (double)budget);
    double ratio = exp(uniform(rng, log_lo, log_hi));
    /* Python round() is half-to-even; so is nearbyint in the default rounding mode. */
    long h = (long)nearbyint(sqrt(area * ratio));
    long w = (long)nearbyint(sqrt(area / ratio));
    if (!(w < W && h < H)) /* strict: a block never spans the whole grid */
      continue;
    long top = (long)beit_rng_int(rng, 0, H - h);
    long left = (long)beit_rng_int(rng, 0, W - w);
    size_t already = 0;
    for (long i = top; i < top + h; i++)
      for (long j = left; j < left + w; j++)
        already += mask[i * W + j];
    size_t fresh = (size_t)(h * w) - already;
    if (fresh == 0 || fresh > budget)
      continue;
    for (long i = top; i < top + h; i++)
      memset(mask + i * W + left, 1, (size_t)w);
    return fresh;
  }
  return 0;
}

size_t beit_mask_blockwise(uint8_t *mask, struct beit_rng *rng, const struct beit_mask_params *p)
{
  memset(mask, 0, p->height * p->width);
  double max_aspect = p->max_aspect > 0.0 ? p->max_aspect : 1.0 / p->min_aspect;
  double log_lo = log(p->min_aspect), log_hi = log(max_aspect);
  size_t count = 0;
  while (count < p->num_masking_patches) {
    size_t budget = p->num_masking_patches - count;
    if (p->max_num_patches > 0 && budget > p->max_num_patches)
      budget = p->max_num_patches;
    size_t delta = place_block(mask, rng, p, budget, log_lo, log_hi);
    if (delta == 0) /* ten failed tries: stop short of the budget, as the reference does */
      break;
    count += delta;
  }
  return count;
}

size_t beit_mask_random(uint8_t *mask, struct beit_rng *rng, const struct beit_mask_params *p)
{
  size_t n = p->height * p->width;
  size_t k = p->num_masking_patches < n ? p->num_masking_patches : n;
  memset(mask, 0, n);
  /* Floyd's sampling: the same uniform k-subset as a partial Fisher-Yates shuffle, with the mask
   * itself as the set, so no index array is needed. */
  for (size_t j = n - k; j < n; j++) {
    size_t t = (size_t)beit_rng_int(rng, 0, (int64_t)j);
    mask[mask[t] ? j : t] = 1;
  }
  return k;
}
