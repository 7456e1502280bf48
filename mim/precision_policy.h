/* The precision policy as the commands apply it, like PyTorch's autocast: a requested precision
 * (the recipe key `precision`, or --precision of the inference commands) resolved for this
 * machine, agreed by every rank, and the line every run prints first naming the precision and
 * the backends. The mechanism (kernels, bf16 weight copy) is include/beit/precision.h and
 * beit_model_set_precision. */
#ifndef BEIT_MIM_PRECISION_POLICY_H
#define BEIT_MIM_PRECISION_POLICY_H

#include <stdio.h>

#include "beit/distributed.h"
#include "beit/mim.h"
#include "beit/precision.h"
#include "beit/status.h"

/* A training run's start, on every rank: text ("auto", "fp32", "bf16") resolved for this machine
 * into *out (FP32 or BF16), then agreed: when any rank resolved FP32 (auto on a node without
 * AMX), all take FP32, so a mixed cluster trains one way. Rank 0 then prints the run's first line
 * on log (NULL: none) with the note "requested <text>[; fp32 on every rank: ...][; <extra>]"
 * (extra may be NULL). A name that is not a precision is CONFIG; bf16 where the CPU has no bf16
 * matrix products is UNSUPPORTED, the message naming bf16 and the ISA oneDNN found (that rank
 * fails; the app layer ends the job). */
enum beit_status beit_precision_policy_start(enum beit_precision *out, const char *text,
                                             struct beit_dist *dist, FILE *log, const char *extra,
                                             struct beit_error *err);

#endif
