/* Training and evaluating a dVAE visual tokenizer on a dataset folder (the DALL-E paper's recipe):
 * the loop that joins the data loader (view B, mapped 0.8 x + 0.1) and the tokenizer's training
 * step, with the shared trainer (AdamW, cosine lr, clipping, checkpoints, resume, metrics).
 *
 * Per step: loader batch (this rank's slice) -> Gumbel noise keyed (seed, epoch, sample index)
 * -> encoder -> Gumbel-softmax relaxation at temperature tau(step) -> decoder -> reconstruction
 * term + kl_weight(step) x KL to the uniform prior -> backward -> gradients averaged over ranks
 * -> clip -> AdamW. tau anneals from relaxation.tau_start to
 * tau_end and the KL weight rises from 0 to relaxation.kl_weight, both on DALL-E's cosine
 * shape value = a end + (1 - a) start, a = 1 - cos(pi/2 min(1, step / steps)).
 *
 * Output folder: checkpoint-<step>/ (each a loadable tokenizer folder plus optimizer and
 * trainer_state.json), metrics.jsonl, train_config.json (the resolved config), and at the end
 * tokenizer/ (config.json + model.safetensors: what `beit pretrain --tokenizer` takes),
 * recon.png (held-out originals beside their reconstructions) and eval.json. */
#ifndef BEIT_MIM_TOKENIZER_TRAIN_H
#define BEIT_MIM_TOKENIZER_TRAIN_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "beit/distributed.h"
#include "beit/mim.h"
#include "beit/status.h"
#include "beit/tokenizer.h"
#include "recipe.h"

/* configs/tokenizer/NAME.json: "model" holds the tokenizer config.json keys; the rest reuses the
 * recipe schema's names (seed, precision, data.*, optimizer.*, schedule.*, batch.size,
 * checkpoint.*, log.*, eval.*) plus "relaxation" and eval.grid_images. One key table; unknown
 * keys are errors naming the key and file. precision (auto | fp32 | bf16, default auto) is that
 * of the convolutions' matrix products (beit_tokenizer_set_precision), resolved and agreed by
 * every rank at the start, printed as the run's first line and recorded in trainer_state.json
 * and metrics.jsonl. */
struct beit_tokenizer_train_config {
  struct beit_tokenizer_config model;
  struct beit_recipe recipe; /* the fields of the recipe schema that tokenizer training uses */
  struct {
    double tau_start, tau_end;
    long tau_anneal_steps;    /* 0: the whole run */
    double kl_weight;
    long kl_warmup_steps;
  } relaxation;
  long grid_images;           /* images in recon.png */
};

void beit_tokenizer_train_defaults(struct beit_tokenizer_train_config *c);
enum beit_status beit_tokenizer_train_config_load(struct beit_tokenizer_train_config *c,
                                                  const char *path, struct beit_error *err);
enum beit_status beit_tokenizer_train_config_override(struct beit_tokenizer_train_config *c,
                                                      const char *assignment,
                                                      struct beit_error *err);
cJSON *beit_tokenizer_train_config_json(const struct beit_tokenizer_train_config *c);

/* tau and the KL weight at update `step` (0-based). */
void beit_tokenizer_train_schedule(const struct beit_tokenizer_train_config *c, long step,
                                   long total_steps, double *tau, double *kl_weight);

#endif
