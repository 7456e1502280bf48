/* Inference: classifier model folders in, probabilities out, as the `beit predict` batch command
 * and the `beit serve` real-time HTTP endpoint (docs/commands/serve.md) speak them.
 *
 * Wire format (the Azure ML model card of BEiT):
 *   request  {"input_data": {"columns": ["image"], "index": [0, 1], "data": ["<img1>", "<img2>"]}}
 *            each image is base64 of the file bytes (a "data:...;base64," prefix is accepted) or
 *            an http(s) URL (fetched only when URLs are allowed);
 *   response [{"probs": [0.91, 0.09], "labels": ["can", "carton"]}, ...], one object per input
 *            in request order. By default every label, in the model's label order; with top_k
 *            or a threshold the kept labels sorted by decreasing probability.
 *   error    {"error": {"status": 400, "index": 1, "reason": "bad_base64", "message": "..."}}
 *            (index null when the fault is not one input's).
 *
 * Preprocessing (HF BeitImageProcessor) is the model's own, the same for every command
 * (struct beit_data_preprocess, data/preprocess.c): preprocessor_config.json next to config.json
 * (HF image-processor keys and HF BeitImageProcessor defaults for absent keys: resize to 256x256
 * bicubic, centre crop 224, rescale 1/255, mean = std = 0.5); beit finetune writes one into
 * every checkpoint describing its recipe's eval transform, and beit export copies it. Without
 * that file: direct resize to image_size x image_size, bicubic, mean = std = 0.5 -- the BEiT
 * normalisation of every released checkpoint, and no crop so that the whole image is seen.
 * Resizing is PIL-exact (beit_data_resize).
 *
 * Threads: one struct beit_infer holds one copy of the weights and `sessions` forward contexts
 * (activation arenas) whose parameters alias those weights, so `sessions` threads may run
 * beit_infer_run at once, each on its own session index. The server keeps one session per
 * batching worker; requests that are queued together are batched together. In bf16 the sessions
 * also share one bfloat16 copy of the weights, rounded once at load.
 *
 * URL inputs and the HTTP server: beit/serve.h. */
#ifndef BEIT_INFER_H
#define BEIT_INFER_H

#include <stddef.h>
#include <stdint.h>

#include "beit/data.h"
#include "beit/precision.h"
#include "beit/status.h"

enum beit_infer_task {
  BEIT_INFER_TASK_MULTICLASS, /* softmax over the labels */
  BEIT_INFER_TASK_MULTILABEL, /* problem_type multi_label_classification: independent sigmoids */
};

/* ---- Model ----------------------------------------------------------------------------------- */

struct beit_infer_options {
  size_t max_batch;  /* images per forward and session (default 8) */
  int sessions;      /* forward contexts sharing the weights (default 1); 0 = automatic: one
                        single-threaded session per core for models under 2 GFLOPs per image,
                        else one session over all cores */
  int threads;       /* OpenMP threads of each forward; 0 = omp_get_max_threads() / sessions */
  size_t max_pixels; /* decoded-pixel cap, checked from the header before decoding (40 M) */
  int any_format;    /* 0 (default): JPEG and PNG only, the formats with hardened decoders;
                        others are UNSUPPORTED (HTTP 415). 1: every format beit_data_decode
                        reads, for local files the user chose (beit predict) */
  enum beit_precision precision; /* matrix products (default AUTO: bf16 where the CPU has AMX,
                                    else fp32); beit_infer_get_options gives the resolved one */
};
void beit_infer_defaults(struct beit_infer_options *opt);

struct beit_infer;

/* Load a BeitForImageClassification folder (config.json + model.safetensors [+
 * preprocessor_config.json]). Other architectures are CONFIG errors. */
enum beit_status beit_infer_load(struct beit_infer **out, const char *dir,
                                 const struct beit_infer_options *opt, struct beit_error *err);
void beit_infer_free(struct beit_infer *inf);
/* In bf16, run one forward of every batch size 1..max_batch so that oneDNN's primitives exist
 * before the first request (each new batch size would otherwise cost its first request about
 * 1.5 s for BEiT-base); nothing to do in fp32. Not concurrently with beit_infer_run. */
enum beit_status beit_infer_warmup(struct beit_infer *inf, struct beit_error *err);

enum beit_infer_task beit_infer_task(const struct beit_infer *inf);
size_t beit_infer_num_labels(const struct beit_infer *inf);
const char *beit_infer_label(const struct beit_infer *inf, size_t i);
int beit_infer_image_size(const struct beit_infer *inf);
size_t beit_infer_view_floats(const struct beit_infer *inf); /* 3 * S * S */
/* The model's preprocessing (beit_data_preprocess_model: its preprocessor_config.json or the
 * no-file default), applied by beit_infer_prepare. */
const struct beit_data_preprocess *beit_infer_preprocessing(const struct beit_infer *inf);
const struct beit_infer_options *beit_infer_get_options(const struct beit_infer *inf);
const char *beit_infer_model_dir(const struct beit_infer *inf);

/* Width and height from the file header without decoding pixels, under opt's limits.
 * UNSUPPORTED (HTTP 415) for a format other than JPEG or PNG unless opt->any_format; FORMAT when
 * the header is not readable; USAGE (an input too large: HTTP 413) when width * height exceeds
 * opt->max_pixels (0 = no cap) or the decoder's limits -- a decompression bomb is refused here,
 * before any allocation. */
enum beit_status beit_infer_probe(const void *data, size_t size,
                                  const struct beit_infer_options *opt, int *width, int *height,
                                  const char *key, struct beit_error *err);

/* Probe (with the model's options: pixel cap, formats), decode and preprocess one encoded image into view
 * (3, S, S). When keep is not NULL the decoded RGB image is handed over to the caller (free
 * with beit_data_image_free), else freed. ws: the calling thread's scratch. Errors name key. */
enum beit_status beit_infer_prepare(const struct beit_infer *inf, const void *data, size_t size,
                                    const char *key, float *view, struct beit_data_image *keep,
                                    struct beit_data_scratch *ws, struct beit_error *err);
/* The same from decoded RGB pixels (the pixel cap is not applied). */
enum beit_status beit_infer_prepare_image(const struct beit_infer *inf,
                                          const struct beit_data_image *img, float *view,
                                          struct beit_data_scratch *ws, struct beit_error *err);

/* Forward n <= max_batch views (n, 3, S, S) on session (0 .. sessions-1) and write probs
 * (n, num_labels): softmax, or sigmoids for multi-label models. A session must not be used by
 * two threads at once; different sessions may run concurrently. Sets the calling thread's
 * OpenMP thread count to the options' threads. */
enum beit_status beit_infer_run(struct beit_infer *inf, int session, const float *views,
                                size_t n, float *probs, struct beit_error *err);

/* ---- Results ------------------------------------------------------------------------------- */

struct beit_infer_select {
  size_t top_k;     /* keep the best K (0 = every label) */
  double threshold; /* keep labels with prob >= threshold (< 0 = no threshold) */
};

/* Indices of the labels kept by sel, in output order; returns their count (<= num_labels). */
size_t beit_infer_select_labels(const struct beit_infer *inf, const float *probs,
                                const struct beit_infer_select *sel, size_t *order);

/* One response object {"probs": [...], "labels": [...]} as a NUL-terminated malloc'd string
 * (free with free()); NULL when out of memory. Probabilities print with 6 significant digits;
 * a non-finite value prints as null. */
char *beit_infer_result_json(const struct beit_infer *inf, const float *probs,
                             const struct beit_infer_select *sel);

/* ---- Visualization (cairo) ---------------------------------------------------------------- */

struct beit_infer_vis_item {
  const struct beit_data_image *image; /* decoded RGB */
  const char *title;                   /* file name or input index */
  const float *probs;                  /* (num_labels) */
};

/* Draw one row per item: the image and a bar chart of its top_k labels (default 5) with their
 * probabilities beside it, like the model card's sample; write a PNG atomically.
 * UNSUPPORTED when built without cairo. */
enum beit_status beit_infer_visualize(const char *png_path, const struct beit_infer *inf,
                                      const struct beit_infer_vis_item *items, size_t n,
                                      size_t top_k, struct beit_error *err);

#endif
