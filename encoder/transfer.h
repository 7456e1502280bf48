/* Transfer internals of encoder/ (transfer.c, transfer_resize.c, names.c, export.c) and the
 * white-box tests: the source's tensors, the resizing of position tables, the HF <-> timm
 * names. The API other libraries and apps use is include/beit/transfer.h. */
#ifndef BEIT_ENCODER_TRANSFER_H
#define BEIT_ENCODER_TRANSFER_H

#include <stddef.h>
#include <stdio.h>

#include <string.h>

#include "beit/transfer.h"
#include "encoder.h"

/* HF names the transfer code matches on. */
#define BEIT_SHARED_RPB "beit.encoder.relative_position_bias.relative_position_bias_table"
#define BEIT_LAYER_PREFIX "beit.encoder.layer."
#define BEIT_RPB_SUFFIX "attention.attention.relative_position_bias.relative_position_bias_table"

static inline int beit_name_starts(const char *s, const char *prefix)
{
  return !strncmp(s, prefix, strlen(prefix));
}

static inline int beit_name_ends(const char *s, const char *suffix)
{
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && !strcmp(s + n - k, suffix);
}

enum beit_source_naming {
  BEIT_SOURCE_NAMING_HF,   /* beit.embeddings.cls_token, ... (prefix added when absent) */
  BEIT_SOURCE_NAMING_TIMM, /* cls_token, blocks.0.attn.qkv.weight, ... (unilm and timm) */
};

struct beit_source_tensor {
  char name[BEIT_TENSOR_NAME_MAX]; /* HF name */
  int ndim;
  size_t shape[BEIT_MAX_DIMS];
  size_t numel;
  float *data; /* owned */
  int used;    /* taken by the last transfer */
};

struct beit_source {
  char path[4096];              /* folder or .safetensors file */
  struct beit_config cfg;       /* read from config.json, or inferred from the shapes */
  int cfg_inferred;             /* 1 when no HF config.json was found */
  enum beit_source_naming naming;
  struct beit_source_tensor *tensors;
  size_t count;
};

const struct beit_source_tensor *beit_source_find(const struct beit_source *src,
                                                  const char *hf_name);

/* ---- relative position bias and position embedding resizing -------------------------------- */

/* unilm's ratio: bisection on [1.01, 1.5] until the interval is below 1e-6, for the last
 * midpoint q with sum_{k < src/2} q^k ~ dst/2 (src, dst: sides 2W-1 of the offset grid).
 * 27 -> 47 (14 -> 24 patches) gives 1.090307. */
double beit_rpb_geometric_q(size_t src_side, size_t dst_side);

/* Resize a (R_src, nH) table to (R_dst, nH), R = side^2 + 3 (square grids only): per head, the
 * side x side offset grid [axis 0 height, axis 1 width] is sampled at integer offsets -t..t
 * (t = dst_side/2) from source coordinates 0, +-d_k with d_1 = 1, d_{k+1} = d_k + q^k, by a
 * tensor-product not-a-knot cubic spline (scipy interp2d 'cubic' on a grid; outside the
 * source range the coordinate is clamped, as FITPACK does); the 3 cls rows are kept. *q_out
 * (may be NULL) gets q (0 when the sizes are equal and the table is copied). */
enum beit_status beit_rpb_resize(float *dst, size_t dst_rows, const float *src, size_t src_rows,
                                 size_t nH, double *q_out, struct beit_error *err);

/* Not-a-knot cubic spline weights: out (nt, m) with spline(x, y)(t_j) = sum_i out[j][i] y[i],
 * x strictly increasing (m >= 1; m = 2, 3 give the linear and quadratic interpolant), targets
 * clamped to [x_0, x_{m-1}]. */
enum beit_status beit_spline_weights(double *out, const double *x, size_t m, const double *t,
                                     size_t nt, struct beit_error *err);

/* Absolute position embeddings (1, 1 + gs*gs, D) -> (1, 1 + gd*gd, D): cls row copied, the patch
 * grid resized as torch F.interpolate(mode="bicubic", align_corners=False) (A = -0.75, border
 * clamped). */
void beit_pos_embed_resize(float *dst, size_t gd, const float *src, size_t gs, size_t D);

/* The timm/unilm name of an HF tensor name ("" when it has none, e.g. the key weight, which
 * timm stores inside qkv); and the HF name of a timm/unilm one (arch says where `norm` goes). */
void beit_hf_to_timm_name(const char *hf, char *out, size_t size);
int beit_timm_to_hf_name(const char *timm, enum beit_arch arch, int mean_pooling, char *out,
                         size_t size);

#endif
