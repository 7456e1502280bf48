/* The BEiT image transforms (unilm, timm): pretraining (colour jitter, flip, one
 * RandomResizedCrop box -> view A bicubic + view B lanczos), fine-tuning train (RRC + flip) and
 * evaluation (a model preprocessing, data/preprocess.c: shorter side + centre crop, or direct
 * resize as HF does), each ending in the float normalisation of ToTensor + Normalize.
 *
 * Equivalences used for speed, exact up to the resampler's mirror rounding: colour jitter is
 * per pixel except contrast's image mean, so it is applied to the crop box only, with the mean
 * taken over the whole (jittered-so-far) image; a flip before the crop equals cropping the
 * mirrored box and mirroring the resized output. The fine-tuning transform adds timm's
 * RandAugment (randaugment.c) on the resized 8-bit crop and RandomErasing on the normalised
 * view, as timm's create_transform orders them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data_internal.h"
#include "isa.h"
#include "randaugment.h"

struct beit_data_scratch *beit_data_scratch_init(void)
{
  return calloc(1, sizeof(struct beit_data_scratch));
}

void beit_data_scratch_free(struct beit_data_scratch *ws)
{
  if (!ws)
    return;
  free(ws->crop);
  free(ws->tmp);
  free(ws->out);
  free(ws->out2);
  free(ws->acc);
  free(ws->crop_t);
  free(ws->coef);
  free(ws->bounds);
  free(ws->ra);
  free(ws);
}

void beit_data_transform_defaults(struct beit_data_transform *t, enum beit_data_mode mode)
{
  memset(t, 0, sizeof *t);
  t->mode = mode;
  t->image_size = 224;
  t->second_size = mode == BEIT_DATA_MODE_PRETRAIN ? 112 : 0;
  for (int c = 0; c < 3; c++) {
    t->mean[c] = 0.5f;
    t->std[c] = 0.5f;
  }
  t->second_norm = BEIT_DATA_SECOND_DALLE;
  t->filter = BEIT_DATA_FILTER_BICUBIC;
  t->second_filter = BEIT_DATA_FILTER_LANCZOS;
  t->scale_min = 0.08;
  t->scale_max = 1.0;
  t->ratio_min = 3.0 / 4.0;
  t->ratio_max = 4.0 / 3.0;
  t->jitter = mode == BEIT_DATA_MODE_PRETRAIN ? 0.4 : 0.0;
  t->hflip = mode == BEIT_DATA_MODE_EVAL ? 0.0 : 0.5;
  t->crop_pct = 224.0 / 256.0;
  t->eval_resize = BEIT_DATA_EVAL_CENTER_CROP;
}

void beit_data_transform_imagenet_norm(struct beit_data_transform *t)
{
  static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
  memcpy(t->mean, mean, sizeof mean);
  memcpy(t->std, std, sizeof std);
}

enum beit_status beit_data_transform_check(const struct beit_data_transform *t,
                                           struct beit_error *err)
{
#define BAD(...) return beit_error_set(err, BEIT_STATUS_CONFIG, "data transform: " __VA_ARGS__)
  if ((unsigned)t->mode > BEIT_DATA_MODE_EVAL)
    BAD("mode %d unknown", (int)t->mode);
  if (t->image_size < 1 || t->image_size > 4096)
    BAD("image_size %d out of [1, 4096]", t->image_size);
  if (t->second_size < 0 || t->second_size > 4096)
    BAD("second_size %d out of [0, 4096]", t->second_size);
  for (int c = 0; c < 3; c++)
    if (!(t->std[c] > 0))
      BAD("std[%d] must be > 0", c);
  if ((unsigned)t->filter > BEIT_DATA_FILTER_LANCZOS || (unsigned)t->second_filter > BEIT_DATA_FILTER_LANCZOS)
    BAD("unknown filter");
  if (!(t->scale_min > 0 && t->scale_min <= t->scale_max && t->scale_max <= 1.0))
    BAD("scale (%g, %g) must satisfy 0 < min <= max <= 1", t->scale_min, t->scale_max);
  if (!(t->ratio_min > 0 && t->ratio_min <= t->ratio_max))
    BAD("ratio (%g, %g) must satisfy 0 < min <= max", t->ratio_min, t->ratio_max);
  if (!(t->jitter >= 0 && t->jitter < 1))
    BAD("jitter %g out of [0, 1)", t->jitter);
  if (!(t->hflip >= 0 && t->hflip <= 1))
    BAD("hflip %g out of [0, 1]", t->hflip);
  if (!(t->crop_pct > 0 && t->crop_pct <= 1))
    BAD("crop_pct %g out of (0, 1]", t->crop_pct);
  enum beit_status st;
  if (t->mode == BEIT_DATA_MODE_EVAL && t->eval_preprocess_set &&
      (st = beit_data_preprocess_check(&t->eval_preprocess, t->image_size,
                                       "data transform: eval preprocessing", err)))
    return st;
  if (!(t->erase_prob >= 0 && t->erase_prob <= 1))
    BAD("erase_prob %g out of [0, 1]", t->erase_prob);
  const struct beit_randaugment *ra = &t->rand_augment;
  if (ra->num_layers < 0 || ra->num_layers > BEIT_RA_MAX_LAYERS || !(ra->magnitude >= 0) ||
      !(ra->magnitude_std >= 0) || !(ra->prob >= 0 && ra->prob <= 1))
    BAD("RandAugment n %d, m %g, mstd %g, p %g out of range (beit_randaugment_parse)",
        ra->num_layers, ra->magnitude, ra->magnitude_std, ra->prob);
#undef BAD
  return BEIT_STATUS_OK;
}

/* ---- colour jitter ---- */

void beit_data_jitter_draw(struct beit_data_jitter *j, double strength, struct beit_rng *rng)
{
  int perm[4] = {0, 1, 2, 3};
  for (int i = 3; i > 0; i--) { /* torch.randperm(4) */
    int k = (int)beit_rng_int(rng, 0, i), t = perm[i];
    perm[i] = perm[k];
    perm[k] = t;
  }
  int n = 0;
  for (int i = 0; i < 4; i++)
    if (perm[i] < 3) /* hue (3) is off */
      j->order[n++] = perm[i];
  for (int op = 0; op < 3; op++)
    j->factor[op] = (float)(1.0 - strength + 2.0 * strength * beit_rng_uniform(rng));
  j->enabled = strength > 0;
}


struct jitter_luts {
  uint8_t bright[256], contrast[256];
};

static void build_luts(struct jitter_luts *l, const struct beit_data_jitter *j, int mean)
{
  for (int v = 0; v < 256; v++) {
    l->bright[v] = beit_pil_blend(0, v, j->factor[0]);
    l->contrast[v] = beit_pil_blend(mean, v, j->factor[1]);
  }
}

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* One jitter operation on one pixel; op is a compile-time constant at every call site, so the
 * loops below are specialised per order with no per-pixel branching. */
static ALWAYS_INLINE void jitter_op(int op, int *r, int *g, int *b, const struct jitter_luts *l,
                                    float fs)
{
  if (op == 0) {
    *r = l->bright[*r], *g = l->bright[*g], *b = l->bright[*b];
  } else if (op == 1) {
    *r = l->contrast[*r], *g = l->contrast[*g], *b = l->contrast[*b];
  } else if (op == 2) {
    int y = beit_pil_luma(*r, *g, *b);
    *r = beit_pil_blend(y, *r, fs);
    *g = beit_pil_blend(y, *g, fs);
    *b = beit_pil_blend(y, *b, fs);
  } /* op < 0: nothing */
}

static ALWAYS_INLINE uint64_t luma_sum(const uint8_t *p, size_t n, int op0, int op1,
                                       const struct jitter_luts *l, float fs)
{
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++, p += 3) {
    int r = p[0], g = p[1], b = p[2];
    jitter_op(op0, &r, &g, &b, l, fs);
    jitter_op(op1, &r, &g, &b, l, fs);
    sum += (uint64_t)beit_pil_luma(r, g, b);
  }
  return sum;
}

BEIT_KERNEL_CLONES
int beit_data_jitter_contrast_mean(const struct beit_data_jitter *j,
                                   const struct beit_data_image *img)
{
  int before[2] = {-1, -1}, nb = 0;
  for (int k = 0; k < 3 && j->order[k] != 1; k++)
    before[nb++] = j->order[k];
  struct jitter_luts l;
  build_luts(&l, j, 0);
  size_t n = (size_t)img->width * img->height;
  const uint8_t *p = img->pixels;
  float fs = j->factor[2];
  uint64_t sum;
  if (nb == 0)
    sum = luma_sum(p, n, -1, -1, &l, fs);
  else if (nb == 1)
    sum = before[0] == 0 ? luma_sum(p, n, 0, -1, &l, fs) : luma_sum(p, n, 2, -1, &l, fs);
  else
    sum = before[0] == 0 ? luma_sum(p, n, 0, 2, &l, fs) : luma_sum(p, n, 2, 0, &l, fs);
  return (int)((double)sum / (double)n + 0.5); /* int(ImageStat mean + 0.5) */
}

static ALWAYS_INLINE void jitter_rows(uint8_t *dst, const struct beit_data_image *img, int x0,
                                      int y0, int w, int h, int o0, int o1, int o2,
                                      const struct jitter_luts *l, float fs)
{
  for (int y = 0; y < h; y++) {
    const uint8_t *s = img->pixels + ((size_t)(y0 + y) * img->width + x0) * 3;
    uint8_t *d = dst + (size_t)y * w * 3;
    for (int x = 0; x < w; x++, s += 3, d += 3) {
      int r = s[0], g = s[1], b = s[2];
      jitter_op(o0, &r, &g, &b, l, fs);
      jitter_op(o1, &r, &g, &b, l, fs);
      jitter_op(o2, &r, &g, &b, l, fs);
      d[0] = (uint8_t)r, d[1] = (uint8_t)g, d[2] = (uint8_t)b;
    }
  }
}

BEIT_KERNEL_CLONES
void beit_data_jitter_apply_box(uint8_t *dst, const struct beit_data_image *img, int x0, int y0,
                                int w, int h, const struct beit_data_jitter *j, int contrast_mean)
{
  struct jitter_luts l;
  build_luts(&l, j, contrast_mean);
  float fs = j->factor[2];
  switch (j->order[0] * 9 + j->order[1] * 3 + j->order[2]) {
#define ORDER_(a, b, c)                                                                  \
  case a * 9 + b * 3 + c:                                                                \
    jitter_rows(dst, img, x0, y0, w, h, a, b, c, &l, fs);                                \
    break;
    ORDER_(0, 1, 2) ORDER_(0, 2, 1) ORDER_(1, 0, 2) ORDER_(1, 2, 0) ORDER_(2, 0, 1) ORDER_(2, 1, 0)
#undef ORDER_
  default: /* not a permutation of (0, 1, 2): cannot come from beit_data_jitter_draw */
    jitter_rows(dst, img, x0, y0, w, h, -1, -1, -1, &l, fs);
  }
}

/* ---- RandomResizedCrop ---- */

void beit_data_rrc_box(int box[4], int width, int height, double scale_min, double scale_max,
                       double ratio_min, double ratio_max, struct beit_rng *rng)
{
  double area = (double)width * height, lr0 = log(ratio_min), lr1 = log(ratio_max);
  for (int attempt = 0; attempt < 10; attempt++) {
    double target = (scale_min + (scale_max - scale_min) * beit_rng_uniform(rng)) * area;
    double ar = exp(lr0 + (lr1 - lr0) * beit_rng_uniform(rng));
    int w = (int)nearbyint(sqrt(target * ar)); /* Python round(): half to even */
    int h = (int)nearbyint(sqrt(target / ar));
    if (w >= 1 && h >= 1 && w <= width && h <= height) {
      box[1] = (int)beit_rng_int(rng, 0, height - h);
      box[0] = (int)beit_rng_int(rng, 0, width - w);
      box[2] = w;
      box[3] = h;
      return;
    }
  }
  double in_ratio = (double)width / height;
  int w = width, h = height;
  if (in_ratio < ratio_min)
    h = (int)nearbyint(w / ratio_min);
  else if (in_ratio > ratio_max)
    w = (int)nearbyint(h * ratio_max);
  if (h < 1)
    h = 1;
  if (w < 1)
    w = 1;
  box[0] = (width - w) / 2;
  box[1] = (height - h) / 2;
  box[2] = w;
  box[3] = h;
}

/* ---- ToTensor + Normalize ---- */

/* (side, side, 3) uint8 -> (3, side, side) float through per-channel tables; mirrored on flip. */
BEIT_KERNEL_CLONES
static void to_planes(float *dst, const uint8_t *src, int width, int height, int x_off, int y_off,
                      size_t sstride, int side, const float lut[3][256], int flip)
{
  size_t plane = (size_t)side * side;
  for (int y = 0; y < side; y++) {
    const uint8_t *row = src + (size_t)(y + y_off) * sstride + (size_t)x_off * 3;
    float *d0 = dst + (size_t)y * side, *d1 = d0 + plane, *d2 = d1 + plane;
    if (flip) {
      for (int x = 0; x < side; x++) {
        const uint8_t *p = row + (size_t)(side - 1 - x) * 3;
        d0[x] = lut[0][p[0]], d1[x] = lut[1][p[1]], d2[x] = lut[2][p[2]];
      }
    } else {
      for (int x = 0; x < side; x++) {
        const uint8_t *p = row + (size_t)x * 3;
        d0[x] = lut[0][p[0]], d1[x] = lut[1][p[1]], d2[x] = lut[2][p[2]];
      }
    }
  }
  (void)width;
  (void)height;
}

static void norm_lut(float lut[3][256], const float mean[3], const float std[3])
{
  for (int c = 0; c < 3; c++)
    for (int v = 0; v < 256; v++)
      lut[c][v] = ((float)v / 255.0f - mean[c]) / std[c];
}

static void second_lut(float lut[3][256], enum beit_data_second_norm norm)
{
  for (int c = 0; c < 3; c++)
    for (int v = 0; v < 256; v++)
      lut[c][v] = norm == BEIT_DATA_SECOND_DALLE ? 0.8f * ((float)v / 255.0f) + 0.1f
                                                 : ((float)v / 255.0f - 0.5f) / 0.5f;
}

/* The deterministic eval transform is a model preprocessing (data/preprocess.c): the same
 * pixels beit predict and beit serve compute from that description. */
static enum beit_status eval_apply(const struct beit_data_transform *t,
                                   const struct beit_data_image *img, float *view_a,
                                   struct beit_data_scratch *ws, struct beit_error *err)
{
  struct beit_data_preprocess pp;
  if (t->eval_preprocess_set)
    pp = t->eval_preprocess;
  else
    beit_data_preprocess_from_transform(&pp, t);
  return beit_data_preprocess_apply(&pp, t->image_size, img, view_a, ws, err);
}

/* Mirror an (h, w, 3) image left-right in place. */
static void mirror_rows(uint8_t *p, int w, int h)
{
  for (int y = 0; y < h; y++) {
    uint8_t *row = p + (size_t)y * w * 3;
    for (int l = 0, r = w - 1; l < r; l++, r--)
      for (int c = 0; c < 3; c++) {
        uint8_t v = row[l * 3 + c];
        row[l * 3 + c] = row[r * 3 + c];
        row[r * 3 + c] = v;
      }
  }
}

/* timm's RandAugment on the resized (S, S, 3) crop with its create_transform hparams: fill =
 * round(255 * mean) per channel (Python's round: half to even), the geometric ops resampled with
 * the transform's filter (bicubic unless bilinear), translate 0.45 of the side. */
static enum beit_status rand_augment(const struct beit_data_transform *t, uint8_t *pixels, int S,
                                     struct beit_rng *rng, struct beit_data_scratch *ws,
                                     struct beit_error *err)
{
  struct beit_randaugment ra = t->rand_augment;
  for (int c = 0; c < 3; c++) {
    double v = nearbyint(255.0 * t->mean[c]);
    ra.fill[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
  }
  ra.bicubic = t->filter != BEIT_DATA_FILTER_BILINEAR;
  if (beit_data_grow((void **)&ws->ra, &ws->ra_cap, (size_t)S * S * 3))
    return beit_error_set(err, BEIT_STATUS_NOMEM, "RandAugment: out of memory");
  return beit_randaugment_apply(&ra, pixels, S, S, rng, ws->ra, err);
}

/* timm RandomErasing(probability, mode 'pixel', count 1) on a normalised (3, S, S) view: with
 * probability p, up to 10 tries for a box of area U(0.02, 1/3) * S^2 and aspect exp(U(log 0.3,
 * log 1/0.3)), sides rounded half to even as Python's round, that fits strictly inside; its
 * pixels become independent N(0, 1) values (per channel). */
void beit_data_random_erase(float *view, int S, double p, struct beit_rng *rng)
{
  if (p <= 0 || beit_rng_uniform(rng) > p)
    return;
  const double area = (double)S * S, log_lo = log(0.3), log_hi = log(1.0 / 0.3);
  for (int attempt = 0; attempt < 10; attempt++) {
    double target = (0.02 + (1.0 / 3.0 - 0.02) * beit_rng_uniform(rng)) * area;
    double aspect = exp(log_lo + (log_hi - log_lo) * beit_rng_uniform(rng));
    int h = (int)nearbyint(sqrt(target * aspect)), w = (int)nearbyint(sqrt(target / aspect));
    if (w >= S || h >= S)
      continue;
    int top = (int)beit_rng_int(rng, 0, S - h), left = (int)beit_rng_int(rng, 0, S - w);
    for (int c = 0; c < 3; c++)
      for (int y = top; y < top + h; y++)
        for (int x = left; x < left + w; x++)
          view[((size_t)c * S + y) * S + x] = (float)beit_rng_normal(rng);
    return;
  }
}

enum beit_status beit_data_transform_apply(const struct beit_data_transform *t,
                                           const struct beit_data_image *img,
                                           struct beit_rng *rng, float *view_a, float *view_b,
                                           struct beit_data_scratch *ws, struct beit_error *err)
{
  if (t->mode == BEIT_DATA_MODE_EVAL)
    return eval_apply(t, img, view_a, ws, err);
  float lut_a[3][256];
  norm_lut(lut_a, t->mean, t->std);

  int W = img->width, H = img->height, S = t->image_size;
  struct beit_data_jitter j = {0};
  if (t->mode == BEIT_DATA_MODE_PRETRAIN && t->jitter > 0)
    beit_data_jitter_draw(&j, t->jitter, rng);
  int flip = beit_rng_uniform(rng) < t->hflip;
  int box[4];
  beit_data_rrc_box(box, W, H, t->scale_min, t->scale_max, t->ratio_min, t->ratio_max, rng);
  if (flip) /* the box was drawn on the flipped image */
    box[0] = W - box[0] - box[2];

  const uint8_t *src = img->pixels;
  int sw = W, sh = H, x0 = box[0], y0 = box[1], bw = box[2], bh = box[3];
  size_t sstride = (size_t)W * 3;
  if (j.enabled) {
    int mean = beit_data_jitter_contrast_mean(&j, img);
    if (beit_data_grow((void **)&ws->crop, &ws->crop_cap, (size_t)bw * bh * 3))
      return beit_error_set(err, BEIT_STATUS_NOMEM, "transform: out of memory");
    beit_data_jitter_apply_box(ws->crop, img, x0, y0, bw, bh, &j, mean);
    src = ws->crop, sw = bw, sh = bh, x0 = 0, y0 = 0, sstride = (size_t)bw * 3;
  }
  if (beit_data_grow((void **)&ws->out, &ws->out_cap, (size_t)S * S * 3))
    return beit_error_set(err, BEIT_STATUS_NOMEM, "transform: out of memory");
  enum beit_status st =
      beit_data_resize(ws->out, S, S, src, sw, sh, sstride, x0, y0, bw, bh, t->filter, ws, err);
  if (st)
    return st;
  if (t->mode == BEIT_DATA_MODE_FINETUNE && t->rand_augment.num_layers > 0) {
    if (flip) { /* RandAugment sees the flipped crop, as in timm's order */
      mirror_rows(ws->out, S, S);
      flip = 0;
    }
    if ((st = rand_augment(t, ws->out, S, rng, ws, err)))
      return st;
  }
  to_planes(view_a, ws->out, S, S, 0, 0, (size_t)S * 3, S, lut_a, flip);
  if (t->mode == BEIT_DATA_MODE_FINETUNE)
    beit_data_random_erase(view_a, S, t->erase_prob, rng);
  if (t->mode == BEIT_DATA_MODE_PRETRAIN && view_b && t->second_size > 0) {
    int s = t->second_size;
    float lut_b[3][256];
    second_lut(lut_b, t->second_norm);
    st = beit_data_resize(ws->out, s, s, src, sw, sh, sstride, x0, y0, bw, bh, t->second_filter,
                          ws, err);
    if (st)
      return st;
    to_planes(view_b, ws->out, s, s, 0, 0, (size_t)s * 3, s, lut_b, flip);
  }
  return BEIT_STATUS_OK;
}
