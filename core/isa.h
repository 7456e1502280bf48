/* Which instruction set our own vectorised kernels run, chosen at run time.
 *
 * The default (portable) build compiles every file for baseline x86-64 (SSE2), so the binary
 * runs on any x86-64 CPU: one built on a login node does not die with SIGILL on an older compute
 * node. The hot loops (GELU, softmax, LayerNorm, residual, bias sums, bf16 rounding, the dVAE's
 * convolution glue and losses, the loader's resize and colour jitter) are marked
 * BEIT_KERNEL_CLONES: GCC compiles each such function three times, for x86-64-v4 (AVX-512),
 * x86-64-v3 (AVX2 + FMA) and the baseline, and the dynamic loader picks one per process (an
 * ifunc whose resolver reads the CPU's feature bits once). OpenBLAS and oneDNN choose their own
 * kernels at run time.
 *
 * Where to put the mark: on the function whose body holds the vector loops. GCC outlines an
 * OpenMP parallel region into a child function that inherits the clones (each child has its own
 * resolver, choosing the same ISA), so a function with `#pragma omp parallel for` around its
 * loops can carry it directly; helpers the loops call must be inlined (static inline, or
 * always_inline when large), or they run the baseline copy. tests/check_isa_clones.py checks
 * both sides on the built binary: no AVX instruction outside a clone, and the AVX-512 clones of
 * the listed kernels use zmm registers.
 *
 * Results: elementwise kernels give the same bits in every clone (no FMA contraction under
 * -std=c11; fmaf is exact in software too). Reductions vectorised by `omp simd reduction` (row
 * sums of LayerNorm and softmax, dot products) group their partial sums by the vector width, so
 * float32 last bits differ between an AVX-512, an AVX2 and a baseline machine; runs of one binary
 * on one kind of CPU stay bit-exact.
 *
 * -DBEIT_NATIVE=ON compiles everything for the build machine (-march=native) and defines no
 * clones; compilers other than GCC >= 12 on x86-64 get the baseline only. */
#ifndef BEIT_CORE_ISA_H
#define BEIT_CORE_ISA_H

#if defined(BEIT_ISA_CLONES)
#define BEIT_KERNEL_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define BEIT_KERNEL_CLONES
#endif

/* What our kernels run on this machine, e.g. "x86-64-v4 (AVX-512)": the clone the resolvers
 * pick (the same CPU feature test), "native (AVX-512)" in a -march=native build. */
const char *beit_kernels_isa(void);

#endif
