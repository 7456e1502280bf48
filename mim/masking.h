/* Which patches to mask for masked image modeling (spec 8).
 *
 * Blockwise masking is unilm's MaskingGenerator, step for step: rectangular blocks of random area
 * and log-uniform aspect are placed until the budget is reached or a block adds nothing, so a
 * mask can hold fewer patches than the budget (14x14, budget 75, min 16: P(75) ~ 0.67, mean
 * ~ 74.5). Random masking is the paper's "- blockwise" ablation: exactly the budget, uniformly.
 * All randomness comes from the caller's stream (keyed by seed, epoch, sample in the loader), so a
 * mask does not depend on the number of ranks or threads. Neither function allocates. */
#ifndef BEIT_MIM_MASKING_H
#define BEIT_MIM_MASKING_H

#include <stddef.h>
#include <stdint.h>

#include "beit/status.h"
#include "rng.h"

struct beit_mask_params {
  size_t height, width;       /* patch grid, e.g. 14 x 14 */
  size_t num_masking_patches; /* budget, e.g. 75 (~40% of 196) */
  size_t min_num_patches;     /* smallest block area drawn: 16 for pretraining (class default 4) */
  size_t max_num_patches;     /* largest block area; 0 = the budget (unilm's None) */
  double min_aspect;          /* 0.3 */
  double max_aspect;          /* 0 = 1 / min_aspect (unilm's None) */
};

/* The pretraining defaults for a grid and budget: min 16, max = budget, aspect [0.3, 1/0.3]. */
void beit_mask_params_init(struct beit_mask_params *p, size_t height, size_t width,
                           size_t num_masking_patches);

/* Reject an empty grid, a budget above height*width, or an aspect range that is not
 * 0 < min_aspect <= max_aspect. The message names each offending field. */
enum beit_status beit_mask_params_check(const struct beit_mask_params *p, struct beit_error *err);

/* Blockwise mask into mask (height*width, row-major, 0/1; overwritten). Returns the number of
 * masked patches, which is <= the budget and may be smaller. p must pass beit_mask_params_check. */
size_t beit_mask_blockwise(uint8_t *mask, struct beit_rng *rng, const struct beit_mask_params *p);

/* Exactly min(budget, height*width) patches, every subset of that size equally likely. Uses
 * height, width and num_masking_patches of p only. Returns the number masked. */
size_t beit_mask_random(uint8_t *mask, struct beit_rng *rng, const struct beit_mask_params *p);

#endif
