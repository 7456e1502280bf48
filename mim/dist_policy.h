/* The distributed policy of the training commands (pretrain, finetune, tokenizer train): the
 * deadline of every collective, from the recipe key distributed.timeout_s (default 600 s; 0 = no
 * deadline) or --dist-timeout SECONDS (a shortcut for --set distributed.timeout_s=SECONDS, so the
 * command line overrides the recipe), and the line that names every rank's host and pid. The
 * mechanism (polled non-blocking collectives, the liveness round that names silent ranks) is
 * include/beit/distributed.h, beit_dist_set_timeout. */
#ifndef BEIT_MIM_DIST_POLICY_H
#define BEIT_MIM_DIST_POLICY_H

#include <stddef.h>
#include <stdio.h>

#include "beit/data.h"
#include "beit/distributed.h"
#include "beit/mim.h"
#include "beit/status.h"

/* The recipe key's range: 0 (no deadline) .. this many seconds. */
#define BEIT_DIST_TIMEOUT_MAX 1e9

/* --dist-timeout TEXT: a number of seconds in 0..BEIT_DIST_TIMEOUT_MAX ("30", "2.5", "0") into
 * *seconds; anything else (empty, trailing text, negative, not finite, too large) is USAGE naming
 * the option and the text. */
enum beit_status beit_dist_policy_parse_timeout(const char *text, double *seconds,
                                                struct beit_error *err);

/* A training run's start, on every rank, once the recipe is resolved: the deadline of every later
 * collective of dist (beit_dist_set_timeout), and with several ranks, on log (rank 0; NULL: none),
 * a line "distributed: N ranks; ...deadline...; rank 0 host H pid P, rank 1 ..." (the first 16
 * ranks): who to look for when a deadline names a rank. */
void beit_dist_policy_start(struct beit_dist *dist, double timeout_s, FILE *log);

/* Loader options for this rank's share of one pass over a dataset, transform mode `mode` at its
 * defaults, batch images a batch: a training pass (train 1) shuffles, drops the last partial
 * batch and loops; an evaluation pass (train 0) reads every record once, in order. Progress goes
 * to log on rank 0 only. The rest (workers, seed, the transform's settings) is the caller's. */
void beit_dist_policy_loader(struct beit_loader_options *lo, enum beit_data_mode mode,
                             struct beit_dist *dist, size_t batch, int train, FILE *log);

#endif
