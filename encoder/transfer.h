/* Moving weights between BEiT architectures and checkpoint formats (spec 5, checkpoint loading
 * steps 1-6; spec 10.1, 10.2 names).
 *
 * A "source" is a checkpoint opened for transfer: our pretraining checkpoints and model folders,
 * HF folders (config.json + model.safetensors, with or without the `beit.` prefix), and timm /
 * unilm-named safetensors (timm hub folders: the config is inferred from the tensor shapes, the
 * fused qkv weight is split). Its tensors are held as float32 under HF names.
 *
 * beit_transfer_load fills a destination model (usually a BeitForImageClassification built from
 * the source's sizes) from a source the way unilm's run_class_finetuning does:
 *   1. a classifier whose shape differs (or any classifier when keep_head is 0) is not copied:
 *      the destination keeps its fresh initialisation (head scale 0.001);
 *   2. a shared relative position bias table is copied into every layer's table when the
 *      destination has per-layer tables and no shared one;
 *   3. stored relative_position_index buffers are ignored (the index is recomputed);
 *   4. tables of another resolution are resized with the geometric interpolation of unilm
 *      (beit_rpb_resize);
 *   5. absolute position embeddings of another grid are resized bicubically (torch
 *      F.interpolate, align_corners=False), the cls row kept;
 *   6. the rest is non-strict only where unilm is: source tensors the destination has no place
 *      for (mask token, MIM head, the MIM final LayerNorm under mean pooling) are dropped, and
 *      destination tensors the source lacks among the heads (pooler LayerNorm, classifier) keep
 *      their initialisation. A missing or mis-shaped encoder tensor is an error naming it.
 * What it is not: a general converter; .pth/.bin pickles go through tools/convert_checkpoint.py. */
#ifndef BEIT_ENCODER_TRANSFER_H
#define BEIT_ENCODER_TRANSFER_H

#include <stddef.h>
#include <stdio.h>

#include <string.h>

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

/* Open a folder (config.json + model.safetensors) or a .safetensors file. An HF config.json
 * (model_type "beit") is read as such; otherwise (timm config.json, none) the architecture is
 * inferred from the tensors. */
enum beit_status beit_source_open(struct beit_source **out, const char *path,
                                  struct beit_error *err);
void beit_source_free(struct beit_source *src);
const struct beit_source_tensor *beit_source_find(const struct beit_source *src,
                                                  const char *hf_name);

struct beit_transfer_options {
  int keep_head; /* copy a classifier of the same shape (1) or always start a new one (0) */
  FILE *log;     /* one line per copy-to-layers, resize, drop and fresh tensor; may be NULL */
};

struct beit_transfer_report {
  size_t copied;         /* tensors taken from the source (incl. resized and shared copies) */
  size_t shared_to_layers; /* layers whose table came from the shared one */
  size_t rpb_resized, pos_resized;
  size_t fresh;          /* destination tensors left at their initialisation */
  size_t dropped;        /* source tensors not used */
  double rpb_q;          /* geometric ratio of the last table resize (0 if none) */
};

/* Fill dst->params from src (steps above). dst must already hold its initialisation (tensors
 * not found in src keep it). */
enum beit_status beit_transfer_load(struct beit_model *dst, struct beit_source *src,
                                    const struct beit_transfer_options *opt,
                                    struct beit_transfer_report *rep, struct beit_error *err);

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

/* ---- export -------------------------------------------------------------------------------- */

struct beit_export_options {
  int with_head;     /* keep the classifier (the source must be a BeitForImageClassification) */
  int timm;          /* timm/unilm names + timm config.json instead of an HF folder */
  int pooling;       /* -1: the source's (mean for a MIM checkpoint); 1 mean; 0 cls */
  long image_size;   /* 0: the source's; else relative position tables are resized */
  FILE *log;
};

/* The encoder of the checkpoint at `from` (alone, as an HF BeitModel, or with its classifier,
 * as BeitForImageClassification) written to dir: config.json with id2label, model.safetensors
 * with HF names, one relative position table per layer (a shared table is copied into each),
 * no mask token or MIM head, and a pooler LayerNorm (initialised to identity when the source
 * has none). The HF folder's preprocessor_config.json is the caller's to add (beit export:
 * beit_data_preprocess_export, the source's file copied); the encoder library has no
 * preprocessing. */
enum beit_status beit_export_encoder(const char *from, const char *dir,
                                     const struct beit_export_options *opt,
                                     struct beit_error *err);

/* Write m as a timm/unilm-named folder: model.safetensors (cls_token, blocks.i.attn.qkv.weight,
 * q_bias, v_bias, gamma_1, fc_norm, head, ...) and a timm config.json (architecture,
 * num_classes, model_args, pretrained_cfg) that timm's hub loader reads. Written via a temporary
 * folder renamed into place. */
enum beit_status beit_export_timm(const struct beit_model *m, const char *dir,
                                  struct beit_error *err);

/* The timm/unilm name of an HF tensor name ("" when it has none, e.g. the key weight, which
 * timm stores inside qkv); and the HF name of a timm/unilm one (arch says where `norm` goes). */
void beit_hf_to_timm_name(const char *hf, char *out, size_t size);
int beit_timm_to_hf_name(const char *timm, enum beit_arch arch, int mean_pooling, char *out,
                         size_t size);

#endif
