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

#endif
