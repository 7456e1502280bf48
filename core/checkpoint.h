/* Model and training-checkpoint folders (docs/architecture.md), one mechanism for every trainer.
 *
 * A folder holds config.json and model.safetensors (and a classifier's
 * preprocessor_config.json); a training checkpoint adds
 * optimizer.safetensors ("m.<name>" and "v.<name>" per parameter) and trainer_state.json.
 * Saving writes everything into "<out>/.tmp-checkpoint-<step>", fsyncs, and renames the folder to
 * "<out>/checkpoint-<step>" in one step, so a reader (or --resume after a crash or SIGKILL) never
 * sees a half-written checkpoint; only the newest keep_last checkpoints are kept. */
#ifndef BEIT_CORE_CHECKPOINT_H
#define BEIT_CORE_CHECKPOINT_H

#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "beit/status.h"
#include "tensor_table.h"

struct beit_checkpoint_parts {
  const cJSON *config;                   /* config.json (required) */
  const struct beit_tensor_table *table; /* parameter names and shapes */
  const float *params;                   /* model.safetensors */
  const float *m, *v;                    /* optimizer.safetensors; both NULL for a plain model */
  const cJSON *trainer_state;            /* trainer_state.json; NULL for a plain model */
  const cJSON *preprocessor;             /* preprocessor_config.json (a classifier's inference
                                            preprocessing); NULL: none */
};

/* Write a model folder (config.json + model.safetensors [+ optimizer + state]) at dir via a
 * temporary sibling folder renamed into place; an existing dir is replaced only after the new
 * one is complete. */
enum beit_status beit_model_folder_save(const char *dir, const struct beit_checkpoint_parts *p,
                                        struct beit_error *err);

/* Save "<out_dir>/checkpoint-<step>" (out_dir is created if needed) and delete all but the newest
 * keep_last complete ones (keep_last <= 0 keeps all). saved (may be NULL) receives the final path.
 * Each file is fsynced before the folder is, the folder before its rename into place, out_dir
 * after. A failed write (full disk, EFBIG, EIO) is an error "cannot write <final>: <file>: ..."
 * and leaves nothing behind: no checkpoint-<step>, no temporary folder, older checkpoints as they
 * were. */
enum beit_status beit_checkpoint_save(const char *out_dir, long step,
                                      const struct beit_checkpoint_parts *p, int keep_last,
                                      char *saved, size_t saved_size, struct beit_error *err);

/* Path of the newest complete checkpoint-<step> under out_dir: trainer_state.json (written last,
 * the completion marker) and config.json parse, model.safetensors and optimizer.safetensors are
 * whole. A newer folder that fails this (damaged or cut short outside our atomic save) is skipped
 * with a warning line naming it on log (may be NULL); .tmp-checkpoint-* folders are never
 * considered. BEIT_STATUS_MISSING when there is none. */
enum beit_status beit_checkpoint_latest(const char *out_dir, FILE *log, char *path,
                                        size_t path_size, struct beit_error *err);

/* Read every tensor of table from "<dir>/model.safetensors" into params (shapes must match;
 * a missing or mis-shaped tensor is an error naming it), and when m and v are non-NULL, the
 * optimizer moments from "<dir>/optimizer.safetensors". */
enum beit_status beit_checkpoint_load_tensors(const char *dir,
                                              const struct beit_tensor_table *table,
                                              float *params, float *m, float *v,
                                              struct beit_error *err);

/* mkdir -p. */
enum beit_status beit_mkdirs(const char *path, struct beit_error *err);

#endif
