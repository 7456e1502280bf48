/* Masked image modeling pretraining (spec 4, 6.2, 8): the BEiT recipe as one loop.
 * Per step: loader batch -> frozen tokenizer on view B -> target tokens; per-sample blockwise
 * masks and drop-path draws from the sample's own stream (seed, epoch, index); encoder with mask
 * tokens -> final LayerNorm -> MIM head on the masked patches -> cross-entropy over all masked
 * tokens of the global batch; backward (gradient buckets averaged over ranks while it runs);
 * clip; AdamW with the cosine schedule; log, evaluate, checkpoint. */
#ifndef BEIT_MIM_PRETRAIN_H
#define BEIT_MIM_PRETRAIN_H

#include "beit/mim.h"

#endif
