/* The visual tokenizer: a DALL-E-family discrete VAE (dall_e) that turns view B images
 * into a grid of token ids, BEiT's pretraining targets; its decoder turns tokens back into images.
 *
 * One struct beit_tokenizer holds the configuration, the parameters (one buffer carved into
 * DALL-E's named tensors) and the activation memory of encode/decode, planned once for a maximum
 * batch: encode and decode allocate nothing. Larger inputs are processed max_batch at a time (a
 * large tokenizer plans fewer images per pass so that this memory stays under 1 GiB).
 *
 * Tokenizer folder: config.json (the keys of struct beit_tokenizer_config) and
 * model.safetensors. Encoder tensors carry DALL-E's encoder.pkl names exactly
 * ("blocks.input.w", "blocks.group_1.block_1.res_path.conv_1.w", ..., "blocks.output.conv.b");
 * decoder tensors carry DALL-E's decoder.pkl names behind the prefix "decoder."
 * ("decoder.blocks.input.w", ...), since both files use the same names. A folder without a
 * decoder ("decoder": false) can encode but not reconstruct.
 *
 * Input convention: images (B, C, s, s) with s = image_size, already mapped to (0.1, 0.9) by
 * DALL-E's map_pixels x' = 0.8 x + 0.1 (x in [0, 1]); the data loader does that mapping (its
 * view B, BEIT_DATA_SECOND_DALLE). Token grids are (B, gh * gw) row-major, gh = gw = s/downsample,
 * the same order as the encoder's patches. Reconstructions are pixels in [0, 1]. */
#ifndef BEIT_TOKENIZER_H
#define BEIT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "beit/precision.h"
#include "beit/status.h"

#define BEIT_TOKENIZER_FORMAT_VERSION 1
#define BEIT_TOKENIZER_NAME_MAX 256

/* The dVAE shape (config.json). Defaults are DALL-E's encoder + decoder at 112x112. */
struct beit_tokenizer_config {
  long format_version;  /* BEIT_TOKENIZER_FORMAT_VERSION */
  long input_channels;  /* C: 3 */
  long n_hid;           /* width of the first encoder group, doubled per group: 256 */
  long group_count;     /* 4 */
  long n_blk_per_group; /* 2; post_gain = 1 / (group_count * n_blk_per_group)^2 */
  long vocab_size;      /* 8192 */
  long downsample;      /* 8 = 2^pools: the first log2(downsample) groups end with a 2x2 max-pool
                           (decoder: with a 2x nearest upsample) */
  long n_init;          /* decoder input width: 128 */
  long image_size;      /* view B side s: 112 */
  int decoder;          /* the folder has a decoder */
  char recon_loss[BEIT_TOKENIZER_NAME_MAX]; /* "logit_laplace" (decoder outputs mu, ln b: 2C
                                               maps) or "mse" (C maps); x_hat = sigmoid(mu) */
  char model_type[BEIT_TOKENIZER_NAME_MAX]; /* "dall-e" */
  char input_map[BEIT_TOKENIZER_NAME_MAX];  /* "dalle": 0.8 x + 0.1, done by the loader */
};

/* DALL-E's shape (spec 9.2, 9.3). */
void beit_tokenizer_config_defaults(struct beit_tokenizer_config *cfg);
/* Read a config.json; unknown keys and values out of range are errors naming key and file;
 * keys absent keep their defaults. Validates. */
enum beit_status beit_tokenizer_config_load(struct beit_tokenizer_config *cfg, const char *path,
                                            struct beit_error *err);
/* Apply a "key=value" override (--set); call validate afterwards. */
enum beit_status beit_tokenizer_config_override(struct beit_tokenizer_config *cfg,
                                                const char *assignment, struct beit_error *err);
/* Divisibility and range checks; source names the file or option in messages. */
enum beit_status beit_tokenizer_config_validate(const struct beit_tokenizer_config *cfg,
                                                const char *source, struct beit_error *err);
enum beit_status beit_tokenizer_config_save(const struct beit_tokenizer_config *cfg,
                                            const char *path, struct beit_error *err);

struct beit_tokenizer; /* opaque; the training code uses tokenizer/dvae.h */

/* Build the parameter table for cfg (validated here) and plan encode/decode memory for up to
 * max_batch images; weights start as DALL-E's init (normal, std 1/sqrt(fan_in), zero biases)
 * drawn from seed. */
enum beit_status beit_tokenizer_create(struct beit_tokenizer **out,
                                       const struct beit_tokenizer_config *cfg, size_t max_batch,
                                       uint64_t seed, struct beit_error *err);
/* Load a tokenizer folder; every tensor must be present with its shape (errors name the file
 * and tensor). */
enum beit_status beit_tokenizer_load(struct beit_tokenizer **out, const char *dir,
                                     size_t max_batch, struct beit_error *err);
/* Write config.json + model.safetensors into dir atomically (a temporary folder renamed). */
enum beit_status beit_tokenizer_save(const struct beit_tokenizer *tok, const char *dir,
                                     struct beit_error *err);
void beit_tokenizer_free(struct beit_tokenizer *tok);

const struct beit_tokenizer_config *beit_tokenizer_get_config(const struct beit_tokenizer *tok);
/* Token grid gh x gw of one image and the vocabulary size. */
void beit_tokenizer_grid(const struct beit_tokenizer *tok, size_t *gh, size_t *gw);
size_t beit_tokenizer_vocab_size(const struct beit_tokenizer *tok);
size_t beit_tokenizer_num_params(const struct beit_tokenizer *tok);

/* Pretraining's consistency check: the token grid must equal the encoder's patch grid
 * (gh, gw) and the tokens must fit its vocabulary (vocab). CONFIG with a message that gives both
 * grids and the sizes they come from. */
enum beit_status beit_tokenizer_check_targets(const struct beit_tokenizer *tok, size_t gh,
                                              size_t gw, size_t vocab, struct beit_error *err);

/* The numeric precision of encode, decode and training (include/beit/precision.h). A new or
 * loaded tokenizer computes in FP32 (every convolution's product in float32 through OpenBLAS,
 * bitwise what it always computed). BF16 runs the convolutions' products with bfloat16 operands
 * through oneDNN, float32 accumulation and outputs: a bfloat16 copy of the weights, made here
 * and refreshed at each training step, and im2col columns rounded as they are written; ReLU,
 * pooling, upsampling, the relaxation, losses, gradients and the optimizer stay float32. AUTO
 * resolves through beit_precision_resolve (bf16 on CPUs with AMX, else fp32); BF16 where the CPU
 * has no bf16 matrix products is UNSUPPORTED, the message naming the ISA. Call after the weights
 * are final (load, import), and again after changing them outside the training step. */
enum beit_status beit_tokenizer_set_precision(struct beit_tokenizer *tok, enum beit_precision p,
                                              struct beit_error *err);
/* The resolved precision: FP32 or BF16. */
enum beit_precision beit_tokenizer_precision(const struct beit_tokenizer *tok);

/* Token ids of B images (B, C, s, s), mapped as above: tokens (B, gh*gw) = argmax over the
 * vocabulary of the encoder's logits (first index on ties). logits (B, vocab, gh, gw) receives
 * the logits when non-NULL. Runs max_batch images at a time. */
enum beit_status beit_tokenizer_encode(struct beit_tokenizer *tok, int32_t *tokens,
                                       float *logits, const float *images, size_t B,
                                       struct beit_error *err);
/* Reconstruction of token grids: images (B, C, s, s) in [0, 1] = unmap(sigmoid(mu)) of the
 * decoder fed the one-hot tokens (B, gh*gw). UNSUPPORTED without a decoder. */
enum beit_status beit_tokenizer_decode(struct beit_tokenizer *tok, float *images,
                                       const int32_t *tokens, size_t B, struct beit_error *err);

/* The same through safetensors files (tokenizer/tensor_io.c), as `beit tokenizer encode
 * --input` and `recon --input` do. Encode: input's 'pixel_values' (B, C, s, s; F32, F16, BF16
 * or F64) with pixels in [0, 1] (mapped to 0.8 x + 0.1 here, DALL-E's map_pixels) -> output's
 * 'tokens' I32 (B, gh, gw). Decode: input's 'tokens' (B, gh, gw) or (B, gh*gw), any integer or
 * BOOL dtype (ids outside 0..INT32_MAX become -1, refused by beit_tokenizer_decode) -> output's
 * 'pixel_values' F32 (B, C, s, s) in [0, 1]. The output is written atomically; errors name the
 * input file. */
enum beit_status beit_tokenizer_encode_file(struct beit_tokenizer *tok, const char *input,
                                            const char *output, struct beit_error *err);
enum beit_status beit_tokenizer_decode_file(struct beit_tokenizer *tok, const char *input,
                                            const char *output, struct beit_error *err);

/* Matmul FLOPs (2 per multiply-add) of one image through the encoder / decoder. */
double beit_tokenizer_encoder_flops(const struct beit_tokenizer *tok);
double beit_tokenizer_decoder_flops(const struct beit_tokenizer *tok);

#endif
