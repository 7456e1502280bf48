/* Numeric precision of matrix products, like PyTorch's CPU autocast, and the backend that runs them.
 *
 * fp32: every product in float32 through OpenBLAS (the reference, always built).
 * bf16: matrix-product operands in bfloat16, accumulation and outputs in float32, through oneDNN
 *       (AMX or AVX512-BF16 kernels); master weights, gradients, optimizer state, LayerNorm,
 *       softmax, GELU, losses and reductions stay float32. No loss scaling is needed (bf16 has
 *       float32's exponent range).
 * The default follows what is faster on the machine, asked of oneDNN at run time: bf16 where the
 * CPU has AMX, fp32 elsewhere (measured: without AMX oneDNN's bf16 kernels ran slower than
 * float32 on our machines). Nothing is chosen at compile time. */
#ifndef BEIT_PRECISION_H
#define BEIT_PRECISION_H

#include <stddef.h>

#include "beit/status.h"

enum beit_precision {
  BEIT_PRECISION_AUTO, /* the machine's default (beit_precision_resolve) */
  BEIT_PRECISION_FP32,
  BEIT_PRECISION_BF16,
};

/* "auto" | "fp32" | "bf16" (also "float32", "bfloat16"); an error names the bad value. */
enum beit_status beit_precision_parse(enum beit_precision *out, const char *text,
                                      struct beit_error *err);
const char *beit_precision_name(enum beit_precision p); /* "fp32", "bf16", "auto" */

/* AUTO -> the machine's default; BF16 on a machine without bf16 matrix products is an error
 * naming the CPU's ISA; FP32 is always possible. */
enum beit_status beit_precision_resolve(enum beit_precision *out, enum beit_precision requested,
                                        struct beit_error *err);
/* 1 when bf16 matrix products can run here (oneDNN built in and the CPU has AVX512-BF16 or AMX). */
int beit_precision_bf16_available(void);

/* One line naming the backends and the ISAs chosen at run time, e.g. "oneDNN 2.6.3 (ISA
 * avx512_core_amx; default precision bf16); OpenBLAS 0.3.21 ... (fp32); kernels x86-64-v4
 * (AVX-512)", the last being the clone our own kernels run (core/isa.h), then ", subnormals
 * flushed" where the calling thread flushes them (beit_flush_denormals). */
void beit_precision_describe(char *buf, size_t size);
/* The ISA oneDNN chose, e.g. "avx512_core_amx", or "none" without oneDNN. */
const char *beit_precision_isa(void);

/* Treats float32 subnormals (|x| < 1.2e-38) as zero, on input and output (x86 MXCSR's DAZ and
 * FTZ), on the calling thread and on every thread it creates afterwards (a thread starts with its
 * creator's MXCSR): call it before any thread starts, the OpenMP pool included. It starts none
 * itself, so that `beit serve` can still block its signals before its threads exist. Every `beit`
 * command calls it first, as TensorFlow does by default (PyTorch: torch.set_flush_denormal(True)):
 * float32 products with subnormal operands run tens of times slower (each takes a microcode
 * assist), and training makes such values (measured: a random-init fp32 fine-tuning fell from
 * 217-233 to 88-150 images/s at step 150, when they appeared). No value above 1.2e-38 changes.
 * A no-op off x86. */
void beit_flush_denormals(void);
/* 1 when the calling thread treats subnormals as zero (beit_flush_denormals ran). */
int beit_denormals_flushed(void);

#endif
