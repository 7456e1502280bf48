/* Training a dVAE tokenizer (include/beit/tokenizer.h): what the training loop in mim/
 * (tokenizer_train.c) needs of the tokenizer library -- the training state, one batch's loss and
 * gradients, its Gumbel noise, the parameter and gradient buffers the trainer, AdamW and the
 * gradient allreduce work on, the model keys of a training config, and the evaluation's token
 * statistics and PNG grid. Implemented in tokenizer/ (step.c, loss.c, config.c, png.c,
 * tokenizer.c). */
#ifndef BEIT_TOKENIZER_TRAIN_H
#define BEIT_TOKENIZER_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "beit/status.h"
#include "beit/tokenizer.h"

struct beit_config_key;   /* core/config_table.h */
struct beit_tensor_table; /* core/tensor_table.h */

/* The key table of config.json (also embedded under "model." by the training recipe). */
const struct beit_config_key *beit_dvae_config_keys(size_t *count);

struct beit_dvae_step_stats {
  double loss, recon, kl;  /* kl: mean per position */
  double mae;              /* mean |x_hat - x| of the relaxed reconstruction, pixel units */
  double grad_norm;
  size_t codes_used;       /* distinct argmax tokens in the batch */
  double perplexity;       /* exp(entropy) of the batch's argmax token histogram */
};

/* Allocate grads and the training arena for up to max_batch images. */
enum beit_status beit_dvae_train_init(struct beit_tokenizer *tok, size_t max_batch,
                                      struct beit_error *err);
/* Loss, every gradient (grads overwritten) and stats of one batch x (B, C, s, s), mapped.
 * noise (B, V, gh, gw): the Gumbel noise (NULL: no noise, the plain softmax relaxation). */
void beit_dvae_forward_backward(struct beit_tokenizer *tok, const float *x, const float *noise,
                                size_t B, float tau, float kl_weight,
                                struct beit_dvae_step_stats *stats);

/* The Gumbel noise of a batch of B images, in the training arena: image b's values come from
 * the stream (seed ^ a salt of its own, epoch, index[b]), index[b] its global sample index (index
 * NULL: b), so a sample draws the same noise on any rank and in any batch. Returns the
 * (B, V, gh, gw) buffer. */
const float *beit_dvae_step_noise(struct beit_tokenizer *tok, size_t B, uint64_t seed,
                                  uint64_t epoch, const int64_t *index);

/* The parameter table and its buffers (table->total floats each; grads after
 * beit_dvae_train_init, else NULL); the images encode and decode run at once (the max_batch of
 * create or load); whether the folder has a decoder; the argmax tokens (B, gh*gw) of the last
 * beit_dvae_forward_backward. */
struct beit_tensor_table *beit_tokenizer_table(struct beit_tokenizer *tok);
float *beit_tokenizer_params(struct beit_tokenizer *tok);
float *beit_tokenizer_grads(struct beit_tokenizer *tok);
size_t beit_tokenizer_max_batch(const struct beit_tokenizer *tok);
int beit_tokenizer_has_decoder(const struct beit_tokenizer *tok);
const int32_t *beit_tokenizer_step_tokens(const struct beit_tokenizer *tok);

/* Token histogram statistics from counts (V): distinct codes and exp(entropy). */
void beit_dvae_code_stats_counts(const long *counts, size_t V, size_t *used, double *perplexity);

/* Write a PNG grid: `rows` rows of `cols` image pairs (original | reconstruction), each image
 * (C, s, s) in [0, 1] (C = 1 or 3; other C use channel 0), 2-pixel gaps. */
enum beit_status beit_dvae_write_grid_png(const char *path, const float *originals,
                                          const float *recons, size_t n, size_t C, size_t s,
                                          size_t cols, struct beit_error *err);

#endif
