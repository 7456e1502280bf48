/* The instruction set of our own kernels (core/isa.h). The build chooses one of three
 * definitions: multiversioned kernels (the portable default), -march=native, or neither. */
#include "isa.h"

#if defined(BEIT_ISA_CLONES)
/* The test GCC's clone resolvers make: libgcc's feature bits for the x86-64 levels. */
const char *beit_kernels_isa(void)
{
  __builtin_cpu_init();
  if (__builtin_cpu_supports("x86-64-v4"))
    return "x86-64-v4 (AVX-512)";
  if (__builtin_cpu_supports("x86-64-v3"))
    return "x86-64-v3 (AVX2, FMA)";
  return "x86-64 (SSE2)";
}
#elif defined(BEIT_ISA_NATIVE)
/* Compiled for the build machine: what the compiler was allowed to use there. */
#if defined(__AVX512F__)
#define NATIVE_ISA "native (AVX-512)"
#elif defined(__AVX2__)
#define NATIVE_ISA "native (AVX2)"
#else
#define NATIVE_ISA "native"
#endif
const char *beit_kernels_isa(void) { return NATIVE_ISA; }
#else
const char *beit_kernels_isa(void) { return "compiler default (no run-time choice)"; }
#endif
