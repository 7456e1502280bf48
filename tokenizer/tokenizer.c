/* The public tokenizer API (include/beit/tokenizer.h): create/load/save a tokenizer folder, plan
 * the inference arena, encode images to token grids and decode token grids to images. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "checkpoint.h"
#include "conv.h"
#include "dvae.h"

#define ARENA_CAP_FLOATS ((size_t)256 << 20) /* 1 GiB */

static float *carve(struct beit_arena *c, size_t n) { return beit_arena_carve(c, n); }

/* Batch-major buffers, sliced per worker by beit_dvae_inference_ctx; conv scratch for either
 * nthreads single-threaded workers or one worker with threaded kernels. */
static void carve_inference(struct beit_tokenizer *tok, struct beit_arena *c)
{
  const size_t B = tok->max_batch;
  tok->buf_x = carve(c, B * tok->max_act);
  tok->buf_y = carve(c, B * tok->max_act);
  tok->buf_r1 = carve(c, B * tok->max_hid);
  tok->buf_r2 = carve(c, B * tok->max_hid);
  tok->buf_logits = carve(c, B * tok->V * tok->gh * tok->gw);
  tok->scratch_slot = beit_dvae_conv_scratch(tok, 0, 1);
  size_t all = beit_dvae_conv_scratch(tok, 0, tok->nthreads);
  size_t slots = (size_t)tok->nthreads * tok->scratch_slot;
  tok->scratch = carve(c, slots > all ? slots : all);
}

/* Table, stacks and inference arena; weights zero. */
static enum beit_status tokenizer_new(struct beit_tokenizer **out,
                                      const struct beit_tokenizer_config *cfg, size_t max_batch,
                                      struct beit_error *err)
{
  *out = NULL;
  if (max_batch < 1)
    return beit_error_set(err, BEIT_STATUS_USAGE, "tokenizer: max_batch must be at least 1");
  struct beit_tokenizer *tok = calloc(1, sizeof *tok);
  if (!tok)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "tokenizer: out of memory");
  tok->cfg = *cfg;
  tok->precision = BEIT_PRECISION_FP32;
  tok->nthreads = omp_get_max_threads();
  enum beit_status st = beit_dvae_build(tok, err);
  if (st)
    goto fail;
  /* Encode/decode run max_batch images at a time; a large tokenizer plans fewer (at least one
   * per thread) so that the arena stays under ARENA_CAP_FLOATS: DALL-E at 112x112 needs ~38 MB
   * per image, and a pretraining batch of 256 must not ask for 10 GB. */
  const size_t per_image = 2 * tok->max_act + 2 * tok->max_hid + tok->V * tok->gh * tok->gw;
  size_t cap = ARENA_CAP_FLOATS / per_image;
  cap = cap > (size_t)tok->nthreads ? cap : (size_t)tok->nthreads;
  tok->max_batch = max_batch < cap ? max_batch : cap;
  struct beit_arena c = {NULL, 0};
  carve_inference(tok, &c);
  if (!(tok->arena = beit_alloc_floats(c.used))) {
    st = beit_error_set(err, BEIT_STATUS_NOMEM,
                        "tokenizer: cannot allocate %.1f MB of activations for batch %zu",
                        (double)c.used * 4e-6, max_batch);
    goto fail;
  }
  c.base = tok->arena;
  c.used = 0;
  carve_inference(tok, &c);
  *out = tok;
  return BEIT_STATUS_OK;
fail:
  beit_tokenizer_free(tok);
  return st;
}

enum beit_status beit_tokenizer_create(struct beit_tokenizer **out,
                                       const struct beit_tokenizer_config *cfg, size_t max_batch,
                                       uint64_t seed, struct beit_error *err)
{
  enum beit_status st = tokenizer_new(out, cfg, max_batch, err);
  if (!st)
    beit_dvae_init_weights(*out, seed);
  return st;
}

enum beit_status beit_tokenizer_load(struct beit_tokenizer **out, const char *dir,
                                     size_t max_batch, struct beit_error *err)
{
  *out = NULL;
  char path[4096];
  if ((size_t)snprintf(path, sizeof path, "%s/config.json", dir) >= sizeof path)
    return beit_error_set(err, BEIT_STATUS_USAGE, "%s: path too long", dir);
  struct beit_tokenizer_config cfg;
  beit_tokenizer_config_defaults(&cfg);
  enum beit_status st = beit_tokenizer_config_load(&cfg, path, err);
  if (st)
    return st;
  struct beit_tokenizer *tok;
  if ((st = tokenizer_new(&tok, &cfg, max_batch, err)))
    return st;
  if ((st = beit_checkpoint_load_tensors(dir, &tok->table, tok->params, NULL, NULL, err))) {
    beit_error_prefix(err, "tokenizer %s: ", dir);
    beit_tokenizer_free(tok);
    return st;
  }
  *out = tok;
  return BEIT_STATUS_OK;
}

enum beit_status beit_tokenizer_save(const struct beit_tokenizer *tok, const char *dir,
                                     struct beit_error *err)
{
  size_t n;
  const struct beit_config_key *keys = beit_dvae_config_keys(&n);
  cJSON *config = beit_config_to_json(&tok->cfg, keys, n);
  if (!config)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "%s: cannot build config JSON", dir);
  struct beit_checkpoint_parts parts = {config, &tok->table, tok->params, NULL, NULL, NULL,
                                        NULL};
  enum beit_status st = beit_model_folder_save(dir, &parts, err);
  cJSON_Delete(config);
  return st;
}

void beit_tokenizer_free(struct beit_tokenizer *tok)
{
  if (!tok)
    return;
  free(tok->t.arena);
  free(tok->t.views);
  free(tok->t.blocks);
  free(tok->t.scratch);
  free(tok->t.grads_extra);
  free(tok->t.counts);
  free(tok->grads);
  free(tok->arena);
  free(tok->params_h);
  free(tok->params);
  beit_dvae_free_stacks(tok);
  beit_tensor_table_free(&tok->table);
  free(tok);
}

const struct beit_tokenizer_config *beit_tokenizer_get_config(const struct beit_tokenizer *tok)
{
  return &tok->cfg;
}

void beit_tokenizer_grid(const struct beit_tokenizer *tok, size_t *gh, size_t *gw)
{
  *gh = tok->gh;
  *gw = tok->gw;
}

size_t beit_tokenizer_vocab_size(const struct beit_tokenizer *tok)
{
  return tok->V;
}

size_t beit_tokenizer_num_params(const struct beit_tokenizer *tok)
{
  size_t n = 0;
  for (size_t i = 0; i < tok->table.count; i++)
    n += tok->table.items[i].numel;
  return n;
}

enum beit_status beit_tokenizer_check_targets(const struct beit_tokenizer *tok, size_t gh,
                                              size_t gw, size_t vocab, struct beit_error *err)
{
  if (tok->gh != gh || tok->gw != gw)
    return beit_error_set(err, BEIT_STATUS_CONFIG,
                          "tokenizer token grid %zux%zu (image_size %ld / downsample %ld) does "
                          "not match the encoder's patch grid %zux%zu: change the tokenizer's "
                          "image_size or downsample, or the encoder's image_size or patch_size",
                          tok->gh, tok->gw, tok->cfg.image_size, tok->cfg.downsample, gh, gw);
  if (tok->V > vocab)
    return beit_error_set(err, BEIT_STATUS_CONFIG,
                          "tokenizer vocabulary %zu does not fit the encoder's vocab_size %zu",
                          tok->V, vocab);
  return BEIT_STATUS_OK;
}

/* One slice of an inference call: nb images from image `first` of the call, run on ctx; `slot`
 * is the slice's first image within its chunk (where its part of tok's buffers starts). */
typedef void dvae_slice_fn(struct beit_tokenizer *tok, const struct dvae_ctx *ctx, void *arg,
                           size_t first, size_t slot, size_t nb);

/* Inference over B images: chunks of tok->max_batch images, each split into slices that the
 * workers run in parallel; the bf16 weight copy is refreshed first if training moved the
 * weights. */
static void for_each_slice(struct beit_tokenizer *tok, size_t B, dvae_slice_fn *fn, void *arg)
{
  if (tok->params_h_stale) /* a training step moved the weights since they were rounded */
    beit_dvae_round_weights(tok);
  for (size_t c0 = 0; c0 < B; c0 += tok->max_batch) {
    const size_t n = B - c0 < tok->max_batch ? B - c0 : tok->max_batch;
    const int workers = dvae_workers(tok->nthreads, n);
    const size_t per = dvae_slice_images(n, workers);
#pragma omp parallel for num_threads(workers) schedule(dynamic, 1)
    for (size_t b0 = 0; b0 < n; b0 += per) {
      const size_t nb = n - b0 < per ? n - b0 : per;
      struct dvae_ctx ctx;
      beit_dvae_inference_ctx(tok, &ctx, omp_get_thread_num(), workers, b0);
      fn(tok, &ctx, arg, c0 + b0, b0, nb);
    }
  }
}

struct encode_args {
  int32_t *tokens; /* (B, P) */
  float *logits;   /* (B, V, P) or NULL: tok's buffer */
  const float *images;
};

static void encode_slice(struct beit_tokenizer *tok, const struct dvae_ctx *ctx, void *arg,
                         size_t first, size_t slot, size_t nb)
{
  const struct encode_args *a = arg;
  const size_t P = tok->gh * tok->gw, VP = tok->V * P, img = tok->C * tok->S * tok->S;
  float *l = a->logits ? a->logits + first * VP : tok->buf_logits + slot * VP;
  beit_dvae_encoder_forward(tok, ctx, l, a->images + first * img, nb);
  beit_dvae_argmax(a->tokens + first * P, l, nb, tok->V, P);
}

enum beit_status beit_tokenizer_encode(struct beit_tokenizer *tok, int32_t *tokens,
                                       float *logits, const float *images, size_t B,
                                       struct beit_error *err)
{
  (void)err;
  struct encode_args a = {tokens, logits, images};
  for_each_slice(tok, B, encode_slice, &a);
  return BEIT_STATUS_OK;
}

struct decode_args {
  float *images;         /* (B, C, S, S) */
  const int32_t *tokens; /* (B, P) */
};

static void decode_slice(struct beit_tokenizer *tok, const struct dvae_ctx *ctx, void *arg,
                         size_t first, size_t slot, size_t nb)
{
  const struct decode_args *a = arg;
  const size_t P = tok->gh * tok->gw, S2 = tok->S * tok->S;
  (void)slot;
  const float *out = beit_dvae_decoder_forward_tokens(tok, ctx, a->tokens + first * P, nb);
  beit_dvae_unmap_output(a->images + first * tok->C * S2, out, nb, tok->C, tok->out_ch, S2);
}

enum beit_status beit_tokenizer_decode(struct beit_tokenizer *tok, float *images,
                                       const int32_t *tokens, size_t B, struct beit_error *err)
{
  if (!tok->dec.nblocks)
    return beit_error_set(err, BEIT_STATUS_UNSUPPORTED,
                          "tokenizer: this tokenizer has no decoder (\"decoder\": false), it can "
                          "encode but not reconstruct");
  const size_t P = tok->gh * tok->gw;
  for (size_t i = 0; i < B * P; i++)
    if (tokens[i] < 0 || (size_t)tokens[i] >= tok->V)
      return beit_error_set(err, BEIT_STATUS_USAGE,
                            "tokenizer decode: token %ld of image %zu at position %zu is outside "
                            "the vocabulary [0, %zu)",
                            (long)tokens[i], i / P, i % P, tok->V);
  struct decode_args a = {images, tokens};
  for_each_slice(tok, B, decode_slice, &a);
  return BEIT_STATUS_OK;
}

static double conv_flops(const struct dvae_conv *cv, size_t H)
{
  return beit_conv2d_flops(1, cv->n_in, H, H, cv->n_out, cv->k);
}

static double stack_flops(const struct dvae_stack *st)
{
  double f = conv_flops(&st->input, st->in_H) + conv_flops(&st->output, st->out_H);
  for (size_t i = 0; i < st->nblocks; i++) {
    const struct dvae_block *b = &st->blocks[i];
    for (int k = 0; k < 4; k++)
      f += conv_flops(&b->conv[k], b->H);
    if (b->id.w >= 0)
      f += conv_flops(&b->id, b->H);
  }
  return f;
}

double beit_tokenizer_encoder_flops(const struct beit_tokenizer *tok)
{
  return stack_flops(&tok->enc);
}

double beit_tokenizer_decoder_flops(const struct beit_tokenizer *tok)
{
  return tok->dec.nblocks ? stack_flops(&tok->dec) : 0.0;
}
