/* Per-sample stochastic depth (DropPath) of the training loops. Block l drops its residual
 * branches with rate linspace(0, drop_path_rate, L)[l] (both ends included, as timm and the BEiT
 * code); every sample draws its 2 L uniforms (attention and MLP branch of each block) from its
 * own stream (seed ^ DROP_STREAM, epoch, global sample index), so the draw does not depend on
 * the batch, micro-batch or rank the sample lands in. */
#ifndef BEIT_MIM_DROP_PATH_H
#define BEIT_MIM_DROP_PATH_H

#include <stddef.h>
#include <stdint.h>

#include "beit/data.h"
#include "beit/status.h"

struct beit_drop_path {
  size_t L, max_batch;
  float *rates;     /* (L) */
  double *uniform;  /* (2 L, B) */
  float *scales;    /* (2 L, B): what beit_model_forward takes as `drop` */
};

enum beit_status beit_drop_path_init(struct beit_drop_path *d, size_t L, size_t max_batch,
                                     double drop_path_rate, struct beit_error *err);
void beit_drop_path_free(struct beit_drop_path *d);

/* The (2 L, b->count) scales of batch b: 0 or 1 / keep per sample and branch. */
const float *beit_drop_path_draw(struct beit_drop_path *d, uint64_t seed,
                                 const struct beit_loader_batch *b);

#endif
