/* Mixup and CutMix for fine-tuning (timm Mixup, mode "batch", as unilm's run_class_finetuning
 * uses it; spec 6.3).
 *
 * Per micro-batch: with probability `prob` the batch is mixed with itself reversed (sample b
 * with sample B-1-b); when both alphas are > 0, CutMix is chosen with probability switch_prob,
 * else Mixup. Mixup: x = lam x + (1 - lam) x_rev, lam ~ Beta(mixup_alpha, mixup_alpha). CutMix:
 * lam ~ Beta(cutmix_alpha, cutmix_alpha), a box of side sqrt(1 - lam) x image side centred at a
 * uniform pixel (clipped at the border) is pasted from x_rev, and lam is corrected to the area
 * kept. Targets: lam y + (1 - lam) y_rev with y the label-smoothed one-hot (off = s / C,
 * on = 1 - s + off) for multi-class; the multi-hot rows for multi-label (no smoothing).
 *
 * The draw comes from the caller's rng (the fine-tuning loop keys it by seed, epoch and the
 * micro-batch's first sample), so a resumed run mixes the same way. Pairs are within a rank's
 * micro-batch, as timm under DDP: the mix depends on the split of the global batch. */
#ifndef BEIT_MIM_MIXUP_H
#define BEIT_MIM_MIXUP_H

#include <stddef.h>
#include <stdint.h>

struct beit_rng;

struct beit_mixup {
  double mixup_alpha, cutmix_alpha; /* 0 disables each */
  double prob, switch_prob;
  double smoothing;                 /* multi-class label smoothing folded into the targets */
};

struct beit_mixup_draw {
  int mixed, cutmix;
  double lam;          /* weight of the batch's own images/targets after correction */
  size_t y0, y1, x0, x1; /* CutMix box rows [y0, y1), columns [x0, x1) */
};

int beit_mixup_enabled(const struct beit_mixup *mx);

/* Draw this batch's parameters for H x W images (timm _params_per_batch + rand_bbox). */
void beit_mixup_draw(const struct beit_mixup *mx, struct beit_rng *rng, size_t H, size_t W,
                     struct beit_mixup_draw *d);

/* out (B, Ch, H, W) = the mixed batch of images (B, Ch, H, W) under draw d (a copy when not
 * mixed); targets (B, C) = the mixed target rows from labels (B) (multi-class) or multi (B, C)
 * (multi-label; labels NULL). */
void beit_mixup_apply(const struct beit_mixup *mx, const struct beit_mixup_draw *d, float *out,
                      const float *images, size_t B, size_t Ch, size_t H, size_t W,
                      float *targets, const int32_t *labels, const float *multi, size_t C);

/* Beta(a, b) from two Gamma draws (Marsaglia-Tsang). */
double beit_rng_beta(struct beit_rng *rng, double a, double b);

#endif
