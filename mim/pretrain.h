/* Masked image modeling pretraining (spec 4, 6.2, 8): the BEiT recipe as one loop.
 * Per step: loader batch -> frozen tokenizer on view B -> target tokens; per-sample blockwise
 * masks and drop-path draws from the sample's own stream (seed, epoch, index); encoder with mask
 * tokens -> final LayerNorm -> MIM head on the masked patches -> cross-entropy over all masked
 * tokens of the global batch; backward (gradient buckets averaged over ranks while it runs);
 * clip; AdamW with the cosine schedule; log, evaluate, checkpoint. */
#ifndef BEIT_MIM_PRETRAIN_H
#define BEIT_MIM_PRETRAIN_H

#include <stdio.h>

#include "beit/distributed.h"
#include "beit/status.h"

struct beit_pretrain_options {
  const char *recipe;    /* configs/recipes/ (a JSON recipe) */
  const char *data;      /* overrides recipe data.train when non-NULL */
  const char *eval_data; /* overrides recipe data.eval */
  const char *tokenizer; /* tokenizer folder (required) */
  const char *out;       /* output folder: checkpoints, metrics.jsonl */
  int resume;            /* continue from the newest complete checkpoint in out */
  int overwrite;         /* move a previous run in out aside and start again (trainer.h) */
  const char *const *sets; /* --set key=value overrides of the recipe */
  int nsets;
};

struct beit_pretrain_summary {
  long steps;
  double seconds;
  double first_loss, last_loss, last_mlm_acc;   /* training: first and last logged window */
  double eval_loss, eval_mlm_acc, eval_majority_acc; /* held-out; majority = always the most
                                                        frequent target token */
  long eval_tokens;
  size_t skipped_records, corrupt_records; /* rank 0's loader: records skipped, and of those
                                             the ones failing their shard checksum */
  char last_checkpoint[4200];
};

enum beit_status beit_pretrain_run(const struct beit_pretrain_options *opt, struct beit_dist *dist,
                                   struct beit_pretrain_summary *summary, struct beit_error *err);

#endif
