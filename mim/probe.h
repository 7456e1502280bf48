/* Linear probing (spec 6.4): how linearly separable the frozen encoder's features are, block by
 * block, as the BEiT paper evaluates representations.
 *
 * The encoder (any checkpoint beit_source_open reads) runs once over the training and held-out
 * sets with the deterministic eval transform; the features of block k are the raw block output
 * (no final norm) averaged over the patch tokens (paper), or concat(cls token, that average)
 * (unilm run_linear_eval). Each dimension is standardised with the training set's mean and std
 * (a frozen BatchNorm without affine, as MAE's probe). One linear classifier per probed block
 * (weights N(0, 0.01), bias 0) is trained on the cached features with softmax cross-entropy and
 * AdamW (cosine lr to 0, weight decay on the weights), mini-batches in a seeded order. Without
 * augmentation the features are computed once, which makes many epochs cheap; the paper's probe
 * augments with RandomResizedCrop + flip instead. Multi-class datasets only.
 * Under MPI every rank extracts its slice; the features are merged and every rank trains the same
 * probes. */
#ifndef BEIT_MIM_PROBE_H
#define BEIT_MIM_PROBE_H

#include <stddef.h>
#include <stdio.h>

#include "beit/distributed.h"
#include "beit/mim.h"
#include "beit/status.h"
#include "recipe.h"

#endif
