/* Evaluation of a classifier on a dataset folder: one pass with the deterministic eval transform,
 * every rank on its slice (MPI), metrics merged over ranks, then a human-readable table or a JSON
 * report (mim/metrics.h). Used by `beit eval` and by the fine-tuning loop. */
#ifndef BEIT_MIM_EVAL_H
#define BEIT_MIM_EVAL_H

#include <stdio.h>

#include "beit/data.h"
#include "beit/distributed.h"
#include "beit/mim.h"
#include "beit/model.h"
#include "metrics.h"

/* One step of an inference pass (beit eval, beit probe's features): the loader's next batch into
 * *b (NULL at the end of the pass) and, when it holds images, m's forward on it (no mask, no
 * drop path): the logits or hidden states of its b->count images are then in m. */
enum beit_status beit_eval_next(struct beit_loader *ld, struct beit_model *m,
                                const struct beit_loader_batch **b, struct beit_error *err);

#endif
