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
 * What it is not: a general converter; .pth/.bin pickles go through tools/convert_checkpoint.py.
 * Implemented in encoder/ (transfer.c, transfer_resize.c, export.c). */
#ifndef BEIT_TRANSFER_H
#define BEIT_TRANSFER_H

#include <stdio.h>

#include "beit/model.h"

struct beit_source; /* opaque: encoder/transfer.h */

/* Open a folder (config.json + model.safetensors) or a .safetensors file. An HF config.json
 * (model_type "beit") is read as such; otherwise (timm config.json, none) the architecture is
 * inferred from the tensors. */
enum beit_status beit_source_open(struct beit_source **out, const char *path,
                                  struct beit_error *err);
void beit_source_free(struct beit_source *src);
/* The source's config: read from config.json, or inferred from the tensor shapes. */
const struct beit_config *beit_source_config(const struct beit_source *src);

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

#endif
