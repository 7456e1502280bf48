/* The precision policy (include/beit/precision.h): names, the machine's default, and the one-line
 * description of the backends that `beit info` and every run print. */
#include <cblas.h>
#include <stdio.h>
#include <string.h>
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

#include "beit/precision.h"
#include "gemm.h"
#include "isa.h"

char *openblas_get_config(void);

enum beit_status beit_precision_parse(enum beit_precision *out, const char *text,
                                      struct beit_error *err)
{
  static const struct { const char *name; enum beit_precision p; } names[] = {
      {"auto", BEIT_PRECISION_AUTO},  {"fp32", BEIT_PRECISION_FP32},
      {"float32", BEIT_PRECISION_FP32}, {"bf16", BEIT_PRECISION_BF16},
      {"bfloat16", BEIT_PRECISION_BF16}};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (text && !strcmp(text, names[i].name)) {
      *out = names[i].p;
      return BEIT_STATUS_OK;
    }
  return beit_error_set(err, BEIT_STATUS_CONFIG, "precision '%s': expected auto, fp32 or bf16",
                        text ? text : "(null)");
}

const char *beit_precision_name(enum beit_precision p)
{
  return p == BEIT_PRECISION_FP32 ? "fp32" : p == BEIT_PRECISION_BF16 ? "bf16" : "auto";
}

int beit_precision_bf16_available(void) { return beit_dnnl_bf16_available(); }

enum beit_status beit_precision_resolve(enum beit_precision *out, enum beit_precision requested,
                                        struct beit_error *err)
{
  if (requested == BEIT_PRECISION_AUTO) {
    *out = beit_dnnl_has_amx() ? BEIT_PRECISION_BF16 : BEIT_PRECISION_FP32;
    return BEIT_STATUS_OK;
  }
  if (requested == BEIT_PRECISION_BF16 && !beit_dnnl_bf16_available())
    return beit_error_set(err, BEIT_STATUS_UNSUPPORTED,
                          "precision bf16: no bf16 matrix products on this machine (oneDNN ISA "
                          "%s); use fp32", beit_dnnl_isa());
  *out = requested;
  return BEIT_STATUS_OK;
}

const char *beit_precision_isa(void) { return beit_dnnl_isa(); }

void beit_precision_describe(char *buf, size_t size)
{
  const char *blas = openblas_get_config();
  const char *flush = beit_denormals_flushed() ? ", subnormals flushed" : "";
  if (!strcmp(beit_dnnl_version(), "none")) {
    snprintf(buf, size, "built without oneDNN (fp32 only); %s (fp32); kernels %s%s",
             blas ? blas : "OpenBLAS", beit_kernels_isa(), flush);
    return;
  }
  snprintf(buf, size, "oneDNN %s (ISA %s; default precision %s); %s (fp32); kernels %s%s",
           beit_dnnl_version(), beit_dnnl_isa(), beit_dnnl_has_amx() ? "bf16" : "fp32",
           blas ? blas : "OpenBLAS", beit_kernels_isa(), flush);
}

#if defined(__x86_64__)
enum { MXCSR_DAZ = 1 << 6, MXCSR_FTZ = 1 << 15 };
#endif

void beit_flush_denormals(void)
{
#if defined(__x86_64__)
  _mm_setcsr(_mm_getcsr() | MXCSR_DAZ | MXCSR_FTZ);
#endif
}

int beit_denormals_flushed(void)
{
#if defined(__x86_64__)
  return (_mm_getcsr() & (MXCSR_DAZ | MXCSR_FTZ)) == (MXCSR_DAZ | MXCSR_FTZ);
#else
  return 0;
#endif
}
