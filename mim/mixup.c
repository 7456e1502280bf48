/* Mixup / CutMix (see mixup.h). */
#include "mixup.h"

#include <math.h>
#include <string.h>

#include "rng.h"

/* Gamma(a, 1), Marsaglia and Tsang (2000); a < 1 through Gamma(a + 1) U^(1/a). */
static double gamma_draw(struct beit_rng *rng, double a)
{
  if (a < 1.0) {
    double u = beit_rng_uniform(rng);
    return gamma_draw(rng, a + 1.0) * pow(u > 0 ? u : 1e-300, 1.0 / a);
  }
  double d = a - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
  for (;;) {
    double x = beit_rng_normal(rng), v = 1.0 + c * x;
    if (v <= 0)
      continue;
    v = v * v * v;
    double u = beit_rng_uniform(rng);
    if (u < 1.0 - 0.0331 * x * x * x * x || log(u > 0 ? u : 1e-300) < 0.5 * x * x + d * (1.0 - v + log(v)))
      return d * v;
  }
}

double beit_rng_beta(struct beit_rng *rng, double a, double b)
{
  double x = gamma_draw(rng, a), y = gamma_draw(rng, b);
  return x + y > 0 ? x / (x + y) : 0.5;
}

int beit_mixup_enabled(const struct beit_mixup *mx)
{
  return mx->prob > 0 && (mx->mixup_alpha > 0 || mx->cutmix_alpha > 0);
}

static size_t clip(long v, size_t hi) { return v < 0 ? 0 : (size_t)v > hi ? hi : (size_t)v; }

void beit_mixup_draw(const struct beit_mixup *mx, struct beit_rng *rng, size_t H, size_t W,
                     struct beit_mixup_draw *d)
{
  memset(d, 0, sizeof *d);
  d->lam = 1.0;
  if (!beit_mixup_enabled(mx) || beit_rng_uniform(rng) >= mx->prob)
    return;
  if (mx->mixup_alpha > 0 && mx->cutmix_alpha > 0)
    d->cutmix = beit_rng_uniform(rng) < mx->switch_prob;
  else
    d->cutmix = mx->cutmix_alpha > 0;
  double alpha = d->cutmix ? mx->cutmix_alpha : mx->mixup_alpha;
  d->lam = beit_rng_beta(rng, alpha, alpha);
  d->mixed = 1;
  if (!d->cutmix)
    return;
  /* rand_bbox: side ratio sqrt(1 - lam), centre uniform over the image, clipped */
  double r = sqrt(1.0 - d->lam);
  long cut_h = (long)((double)H * r), cut_w = (long)((double)W * r);
  long cy = (long)beit_rng_int(rng, 0, (int64_t)H - 1), cx = (long)beit_rng_int(rng, 0, (int64_t)W - 1);
  d->y0 = clip(cy - cut_h / 2, H);
  d->y1 = clip(cy + cut_h / 2, H);
  d->x0 = clip(cx - cut_w / 2, W);
  d->x1 = clip(cx + cut_w / 2, W);
  /* correct_lam: the fraction of the image that stays the sample's own */
  d->lam = 1.0 - (double)((d->y1 - d->y0) * (d->x1 - d->x0)) / (double)(H * W);
}

void beit_mixup_apply(const struct beit_mixup *mx, const struct beit_mixup_draw *d, float *out,
                      const float *images, size_t B, size_t Ch, size_t H, size_t W,
                      float *targets, const int32_t *labels, const float *multi, size_t C)
{
  size_t img = Ch * H * W;
  float lam = (float)d->lam;
  for (size_t b = 0; b < B; b++) {
    const float *x = images + b * img, *xr = images + (B - 1 - b) * img;
    float *o = out + b * img;
    if (!d->mixed) {
      memcpy(o, x, img * sizeof *o);
    } else if (!d->cutmix) {
      for (size_t i = 0; i < img; i++)
        o[i] = lam * x[i] + (1.0f - lam) * xr[i];
    } else {
      memcpy(o, x, img * sizeof *o);
      for (size_t c = 0; c < Ch; c++)
        for (size_t y = d->y0; y < d->y1; y++)
          memcpy(o + (c * H + y) * W + d->x0, xr + (c * H + y) * W + d->x0,
                 (d->x1 - d->x0) * sizeof *o);
    }
  }
  double l = d->lam;
  for (size_t b = 0; b < B; b++) {
    float *t = targets + b * C;
    size_t rb = B - 1 - b;
    if (labels) {
      double off = mx->smoothing / (double)C, on = 1.0 - mx->smoothing + off;
      for (size_t c = 0; c < C; c++)
        t[c] = (float)off;
      t[labels[b]] += (float)(l * (on - off));
      t[labels[rb]] += (float)((1.0 - l) * (on - off));
    } else {
      for (size_t c = 0; c < C; c++)
        t[c] = (float)(l * multi[b * C + c] + (1.0 - l) * multi[rb * C + c]);
    }
  }
}
