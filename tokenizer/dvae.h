/* Internals of the dVAE tokenizer, shared by tokenizer/ files only (and the white-box tests and
 * benchmarks); the training loop in mim/ goes through include/beit/tokenizer_train.h.
 *
 * Architecture (dall_e), generalised by struct beit_tokenizer_config:
 *   encoder: input conv 7x7 C -> n_hid; group g = 1..G of n_blk blocks at width n_hid * 2^(g-1),
 *            the first log2(downsample) groups ending in a 2x2 max-pool; relu + conv 1x1 -> vocab.
 *   decoder: input conv 1x1 vocab -> n_init; group g of n_blk blocks at width n_hid * 2^(G-g),
 *            the first log2(downsample) groups ending in a 2x nearest upsample; relu + conv 1x1
 *            -> 2C (logit-Laplace: mu, ln b) or C (MSE: mu).
 *   block:   out = id(x) + post_gain * conv_4(relu(conv_3(relu(conv_2(relu(conv_1(relu(x))))))))
 *            with post_gain = 1 / (G * n_blk)^2, hidden width n_out / 4, id a 1x1 conv when the
 *            width changes; kernels (3, 3, 3, 1) in the encoder, (1, 3, 3, 3) in the decoder.
 *
 * Memory: parameters in one table/buffer (encoder tensors first, then "decoder." ones); the
 * inference arena (encode/decode for max_batch images, ping-pong buffers) is planned at create;
 * training state (grads, AdamW moments, every saved activation, backward buffers) is planned by
 * beit_dvae_train_init for a maximum training batch. Neither allocates afterwards.
 *
 * Precision (precision.c, include/beit/precision.h): FP32 runs every convolution's product in
 * float32; BF16 runs them on a bfloat16 copy of the weights (params_h) and bfloat16 columns, with
 * float32 accumulation and outputs. The copy is made when the precision is set, refreshed at the
 * start of every training forward, and by encode/decode when a training step ran since (the
 * optimizer moved the weights). Conv scratch is planned for both precisions. */
#ifndef BEIT_TOKENIZER_DVAE_H
#define BEIT_TOKENIZER_DVAE_H

#include <stddef.h>
#include <stdint.h>

#include "beit/precision.h"
#include "beit/tokenizer.h"
#include "beit/tokenizer_train.h"
#include "config_table.h"
#include "rng.h"
#include "tensor_table.h"

/* A convolution's tensors (indices into the table) and shape. */
struct dvae_conv {
  long w, b;
  size_t n_in, n_out, k;
};

struct dvae_block {
  struct dvae_conv id; /* id.w < 0: identity */
  struct dvae_conv conv[4];
  size_t n_in, n_out, n_hid;
  size_t H, W;      /* spatial size inside the block */
  int resample;     /* followed by the group's pool (encoder) or upsample (decoder) */
};

struct dvae_stack {
  struct dvae_conv input, output;
  struct dvae_block *blocks;
  size_t nblocks;
  size_t in_H, out_H; /* spatial size at the input and output convs */
};

/* Saved activations of one block during training; x is the block input. */
struct dvae_block_acts {
  float *x, *r1, *r2, *r3, *y, *z; /* z: after the pool/upsample, NULL when none */
};

/* One worker's view of the training arena: every pointer is the worker's first image in a
 * batch-major buffer, so a worker owns a contiguous slice of images in each. */
struct dvae_train_acts {
  float *enc_h0;                    /* (B, n_hid, s, s) input conv output */
  struct dvae_block_acts *enc, *dec;
  float *logits, *soft;             /* (B, V, gh, gw) */
  float *dec_h0;                    /* (B, n_init, gh, gw) */
  float *out, *d_out;               /* (B, out_ch, s, s) decoder output and its gradient */
  float *d_a, *d_b, *d_r1, *d_r2;   /* backward buffers: two of the largest activation, two of
                                       the largest block hidden activation */
  float *d_logits, *d_soft;         /* (B, V, gh, gw) */
  float *noise;                     /* (B, V, gh, gw) Gumbel noise of the step */
  int32_t *tokens;                  /* (B, gh*gw) argmax of the step's logits */
};

/* What one worker's kernels run with. A batch of at least tok->nthreads images is split into
 * contiguous slices of images, taken by the OpenMP threads, each slice running the whole network
 * with single-threaded kernels and no barrier between layers (small convolutions are dominated
 * by per-call and synchronisation costs otherwise); a smaller batch runs as one worker whose
 * kernels use all threads. */
struct dvae_ctx {
  int nthreads;                          /* threads each kernel may use */
  float *scratch;                        /* conv scratch for nthreads */
  float *grads;                          /* where this worker's parameter gradients accumulate */
  float *buf_x, *buf_y, *buf_r1, *buf_r2; /* inference: ping-pong stream and hidden buffers */
  struct dvae_train_acts *acts;          /* training view, NULL in inference */
};

/* Split of a batch over workers. */
static inline int dvae_workers(int nthreads, size_t B)
{
  return nthreads > 1 && B >= (size_t)nthreads ? nthreads : 1;
}

#define DVAE_MAX_THREADS 256
#define DVAE_MAX_SLICES 1024

struct dvae_train_state {
  size_t max_batch;
  float *arena;                     /* every batch-major training buffer */
  struct dvae_train_acts *views;    /* one per thread (re-pointed each step) */
  struct dvae_block_acts *blocks;   /* storage of the views' enc/dec arrays */
  float *scratch;                   /* conv scratch: per-thread slots, or all for one worker */
  size_t scratch_slot;              /* floats of one single-threaded slot */
  size_t grad_slots;                /* slices a batch is cut into (4 per thread, fewer for a
                                       large model); slot 0 is tok->grads */
  float *grads_extra;               /* (grad_slots - 1) per-slice gradient buffers */
  float *noise;                     /* (max_batch, V, gh, gw): the views' noise, whole batch */
  float *logits;                    /* (max_batch, V, gh, gw): the last step's encoder logits */
  int32_t *tokens;                  /* (max_batch, gh*gw): the views' tokens, whole batch */
  long *counts;                     /* (V) token histogram scratch */
};

struct beit_tokenizer {
  struct beit_tokenizer_config cfg;
  size_t C, S, gh, gw, V, G, nb, npool, out_ch;
  size_t max_act, max_hid; /* per image, floats */
  float post_gain;
  int nthreads; /* OpenMP threads at create: workers and scratch are planned for it */
  struct beit_tensor_table table;
  float *params;
  enum beit_precision precision; /* FP32 (a new tokenizer's) or BF16 */
  uint16_t *params_h;            /* BF16: bfloat16 copy of params */
  int params_h_stale;            /* a training step ran since params_h was rounded */
  struct dvae_stack enc, dec; /* dec.nblocks == 0 without a decoder */
  /* inference arena (batch-major buffers, sliced per worker) */
  size_t max_batch;
  float *arena, *buf_x, *buf_y, *buf_r1, *buf_r2, *buf_logits, *scratch;
  size_t scratch_slot;
  /* training state (beit_dvae_train_init); AdamW moments live with the caller */
  float *grads;
  struct dvae_train_state t;
};

static inline float *dvae_param(float *base, const struct beit_tokenizer *tok, long id)
{
  return id < 0 ? NULL : base + tok->table.items[id].offset;
}

/* ---- config.c ---- */

/* ---- params.c ---- */
/* Table and stacks for tok->cfg (validated); params allocated, zero. */
enum beit_status beit_dvae_build(struct beit_tokenizer *tok, struct beit_error *err);
void beit_dvae_init_weights(struct beit_tokenizer *tok, uint64_t seed);
void beit_dvae_free_stacks(struct beit_tokenizer *tok);
/* Largest activation and block-hidden activation of one image (floats), over both stacks. */
size_t beit_dvae_max_act(const struct beit_tokenizer *tok, size_t *max_hidden);
/* Largest conv scratch (forward, or backward when backward != 0) over both stacks for kernels
 * run with nthreads threads (floats; independent of the batch). */
size_t beit_dvae_conv_scratch(const struct beit_tokenizer *tok, int backward, int nthreads);

/* ---- precision.c: the convolutions in the tokenizer's precision ---- */
/* beit_conv2d_forward(_bf16) of conv cv on B images of side H, with ctx's scratch and threads. */
void beit_dvae_conv_forward(const struct beit_tokenizer *tok, const struct dvae_ctx *ctx,
                            const struct dvae_conv *cv, float *out, const float *inp, float scale,
                            int accumulate, unsigned flags, size_t B, size_t H);
/* beit_conv2d_backward(_bf16) of conv cv; parameter gradients into ctx->grads. */
void beit_dvae_conv_backward(const struct beit_tokenizer *tok, const struct dvae_ctx *ctx,
                             const struct dvae_conv *cv, float *dinp, const float *dout,
                             const float *inp, float scale, unsigned flags, size_t B, size_t H);
/* BF16: params_h = params rounded (no-op in FP32); clears params_h_stale. Call outside parallel
 * regions. */
void beit_dvae_round_weights(struct beit_tokenizer *tok);

/* ---- forward.c ---- (B images of one worker; ctx->acts NULL: inference buffers) */
/* Encoder on images (B, C, s, s) -> logits (B, V, gh, gw). */
void beit_dvae_encoder_forward(struct beit_tokenizer *tok, const struct dvae_ctx *ctx,
                               float *logits, const float *images, size_t B);
/* Decoder on a soft one-hot (B, V, gh, gw) -> out (B, out_ch, s, s). */
void beit_dvae_decoder_forward(struct beit_tokenizer *tok, const struct dvae_ctx *ctx,
                               float *out, const float *soft, size_t B);
/* Decoder on hard tokens (B, gh*gw) (the one-hot input conv is a column gather), inference
 * mode; returns the output (B, out_ch, s, s) in one of ctx's buffers. */
const float *beit_dvae_decoder_forward_tokens(struct beit_tokenizer *tok,
                                              const struct dvae_ctx *ctx, const int32_t *tokens,
                                              size_t B);
/* tokens (B, P) = argmax over V of logits (B, V, P), first index on ties. */
void beit_dvae_argmax(int32_t *tokens, const float *logits, size_t B, size_t V, size_t P);
/* ctx of worker w of `workers` over the inference arena, for images starting at b0. */
void beit_dvae_inference_ctx(struct beit_tokenizer *tok, struct dvae_ctx *ctx, int w,
                             int workers, size_t b0);
/* Images per slice when n images are cut for `workers` threads (4 slices per thread). */
static inline size_t dvae_slice_images(size_t n, int workers)
{
  if (workers < 2)
    return n;
  size_t slices = 4 * (size_t)workers < n ? 4 * (size_t)workers : n;
  return (n + slices - 1) / slices;
}

/* ---- backward.c ---- (ctx->acts: the worker's view of the last training forward) */
/* ctx->grads += d/dparams given d_out (B, out_ch, s, s); writes d_soft (B, V, gh, gw)
 * (overwritten, not accumulated). */
void beit_dvae_decoder_backward(struct beit_tokenizer *tok, const struct dvae_ctx *ctx,
                                float *d_soft, const float *d_out, size_t B);
/* ctx->grads += d/dparams given d_logits (B, V, gh, gw). */
void beit_dvae_encoder_backward(struct beit_tokenizer *tok, const struct dvae_ctx *ctx,
                                const float *d_logits, const float *images, size_t B);

/* ---- loss.c: the relaxed ELB of spec 9.4, divided by the pixel count ----
 * loss = recon + kl_weight * kl_sum / (B * C * s * s), recon = mean over B*C*s*s pixels of the
 * reconstruction term, kl_sum = sum over the B*gh*gw positions of KL(softmax(logits) || U(V)). */
enum dvae_recon { DVAE_RECON_LOGIT_LAPLACE, DVAE_RECON_MSE };

/* soft (B, V, P) = softmax over V of (logits + noise) / tau; noise NULL = none. */
void beit_dvae_gumbel_softmax_forward(float *soft, const float *logits, const float *noise,
                                      float tau, size_t B, size_t V, size_t P);
/* dlogits (B, V, P) += softmax backward of soft given dsoft, times 1/tau. */
void beit_dvae_gumbel_softmax_backward(float *dlogits, const float *dsoft, const float *soft,
                                       float tau, size_t B, size_t V, size_t P);
/* Sum over the B*P positions of KL(softmax(logits) || uniform(V)); with dlogits non-NULL also
 * dlogits += dscale * d(sum)/d(logits). */
double beit_dvae_kl_uniform(float *dlogits, const float *logits, float dscale, size_t B,
                            size_t V, size_t P);
/* Reconstruction term averaged over the n = B*C*HW pixels of x (B, C, HW) in (0, 1); out is
 * (B, out_ch, HW) with mu in channels 0..C-1 (and ln b in C..2C-1 for logit-Laplace).
 * dout (B, out_ch, HW) += dscale * d(mean)/d(out) when non-NULL. *abs_err (may be NULL) gets
 * the mean |unmap(sigmoid(mu)) - unmap(x)| in pixel units. */
double beit_dvae_recon_loss(float *dout, double *abs_err, const float *out, const float *x,
                            enum dvae_recon kind, float dscale, size_t B, size_t C, size_t HW);
/* Gumbel(0, 1) noise -log(-log(u)) of one image, per_image values into g, u uniform in (0, 1)
 * from the stream keyed (seed, epoch, index): the same whatever the batch or rank it lands in. */
void beit_dvae_gumbel_noise(float *g, size_t per_image, uint64_t seed, uint64_t epoch,
                            uint64_t index);
/* x_hat (B, C, HW) in [0, 1] = clamp((sigmoid(mu) - 0.1) / 0.8, 0, 1) from out (B, out_ch, HW). */
void beit_dvae_unmap_output(float *images, const float *out, size_t B, size_t C, size_t out_ch,
                            size_t HW);
enum dvae_recon beit_dvae_recon_kind(const struct beit_tokenizer *tok);

/* ---- step.c: one training step ---- */

struct beit_dvae_hparams {
  double lr, weight_decay, beta1, beta2, eps, clip;
  float tau, kl_weight;
  long step; /* 1-based update count (AdamW bias correction) */
};
#define GUMBEL_STREAM 0x67756d62656cull /* "gumbel" (beit_dvae_step_noise) */
/* A whole update on its own (tests, benchmarks): step noise keyed (seed, hp->step, b),
 * forward_backward, clip, AdamW with moments m, v (table.total floats each, the caller's). */
void beit_dvae_train_step(struct beit_tokenizer *tok, const float *x, size_t B,
                          const struct beit_dvae_hparams *hp, uint64_t seed, float *m, float *v,
                          struct beit_dvae_step_stats *stats);
/* Token histogram statistics of n tokens over V codes: distinct codes and exp(entropy).
 * counts (V) is scratch. */
void beit_dvae_code_stats(const int32_t *tokens, size_t n, size_t V, long *counts,
                          size_t *used, double *perplexity);

/* ---- png.c ---- */

#endif
