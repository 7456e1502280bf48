/* Cross-file internals of data/: scratch buffers, the shard schema names, the shard writer and
 * the jitter/crop helpers that transform.c and the tests share. Not a public header. */
#ifndef BEIT_DATA_INTERNAL_H
#define BEIT_DATA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "beit/data.h"
#include "rng.h"

/* Grown-not-shrunk buffers of one worker (STYLE.md 2: no allocation once warm). */
struct beit_data_scratch {
  uint8_t *crop;   /* jittered crop box (h, w, 3) */
  size_t crop_cap;
  uint8_t *tmp;    /* resize: horizontal pass output */
  size_t tmp_cap;
  uint8_t *out;    /* resize: final uint8 view */
  size_t out_cap;
  uint8_t *out2;   /* second view / eval resize */
  size_t out2_cap;
  uint8_t *crop_t; /* resize: transposed rows for the horizontal pass */
  size_t crop_t_cap;
  int32_t *acc;    /* resize: one row of vertical-pass accumulators */
  size_t acc_cap;
  int32_t *coef;   /* resize coefficients, horizontal then vertical */
  size_t coef_cap;
  int *bounds;     /* (xmin, count) pairs, horizontal then vertical */
  size_t bounds_cap;
  uint8_t *ra;     /* RandAugment's copy of the view (S, S, 3) */
  size_t ra_cap;
};

/* PIL's convert("L") of one RGB pixel: ITU-R 601-2 luma in 16-bit fixed point (Convert.c). */
static inline int beit_pil_luma(int r, int g, int b)
{
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
}

/* PIL's ImagingBlend on one byte (ImageEnhance's degenerate -> image at factor alpha): float
 * arithmetic with a float alpha, truncated; clipped only when extrapolating. */
static inline uint8_t beit_pil_blend(int degenerate, int v, float alpha)
{
  float t = (float)degenerate + alpha * (float)(v - degenerate);
  if (t <= 0.0f)
    return 0;
  if (t >= 255.0f)
    return 255;
  return (uint8_t)t;
}

/* Within BEIT_IMAGE_MAX_SIDE and BEIT_IMAGE_MAX_PIXELS (beit/data.h). */
int beit_image_size_ok(size_t width, size_t height);

/* The JPEG (image_jpeg.c) and PNG (image_png.c) decoders behind beit_data_decode, and the
 * JPEG header reader behind beit_data_image_size. */
enum beit_status beit_jpeg_size(const uint8_t *p, size_t n, int *width, int *height,
                                const char *key, struct beit_error *err);
enum beit_status beit_jpeg_decode(struct beit_data_image *img, const uint8_t *p, size_t n,
                                  const char *key, struct beit_error *err);
enum beit_status beit_png_decode(struct beit_data_image *img, const uint8_t *p, size_t n,
                                 const char *key, struct beit_error *err);

/* Ensure *buf holds at least need bytes; 0 on success, -1 when out of memory. */
int beit_data_grow(void **buf, size_t *cap, size_t need);

/* Shard schema: dataset and attribute names (docs/architecture.md). */
#define BEIT_SHARD_IMAGES "images"
#define BEIT_SHARD_OFFSETS "offsets"
#define BEIT_SHARD_LABELS "labels"
#define BEIT_SHARD_LABEL_OFFSETS "label_offsets"
#define BEIT_SHARD_LABEL_VALUES "label_values"
#define BEIT_SHARD_KEYS "keys"
#define BEIT_SHARD_SCHEMA_ATTR "schema_version"
#define BEIT_SHARD_TASK_ATTR "task"

/* Append-only shard writer: records are buffered in memory and the shard is written in one go
 * by close (to path.tmp, then renamed). */
struct beit_shard_writer {
  char path[4096];
  enum beit_data_task task;
  uint8_t *bytes;
  size_t nbytes, bytes_cap;
  int64_t *offsets; /* count + 1 */
  size_t count, offsets_cap;
  int32_t *labels;  /* multiclass: count; multilabel: label_values */
  size_t nlabels, labels_cap;
  int64_t *label_offsets; /* multilabel: count + 1 */
  size_t label_offsets_cap;
  char *keys;       /* NUL-separated */
  size_t keys_len, keys_cap, key_max;
  size_t chunk_bytes;
};
enum beit_status beit_shard_writer_init(struct beit_shard_writer *w, const char *path,
                                        enum beit_data_task task, size_t chunk_bytes,
                                        struct beit_error *err);
enum beit_status beit_shard_writer_add(struct beit_shard_writer *w, const void *bytes,
                                       size_t size, const int32_t *labels, size_t nlabels,
                                       const char *key, struct beit_error *err);
/* Write and rename into place; frees the writer in every case. */
enum beit_status beit_shard_writer_close(struct beit_shard_writer *w, struct beit_error *err);
void beit_shard_writer_free(struct beit_shard_writer *w);

/* index.json */
enum beit_status beit_data_index_write(const char *dir, enum beit_data_task task,
                                       char *const *class_names, int num_classes,
                                       const size_t *shard_counts, size_t num_shards,
                                       struct beit_error *err);

/* beit_data_read, with the key read only when with_key (else "#index"): the loader reads keys
 * only for the records it reports. */
enum beit_status beit_data_read_record(struct beit_dataset *ds, size_t index,
                                       struct beit_data_record *rec, int with_key,
                                       struct beit_error *err);

/* IO naming record index's shard when its file was deleted, replaced or resized since it was
 * opened (beit_data_check_files for one shard); OK otherwise. The loader asks when a record does
 * not decode: a shard cut short mid-run reads as zeros whose checksum holds. */
enum beit_status beit_data_check_record_file(const struct beit_dataset *ds, size_t index,
                                             struct beit_error *err);

/* Colour jitter of torchvision ColorJitter(b, c, s, 0) on PIL images (ImageEnhance): three
 * factors and the order in which they apply. */
struct beit_data_jitter {
  int enabled;
  int order[3];    /* 0 brightness, 1 contrast, 2 saturation */
  float factor[3]; /* by operation */
};
/* Draw the jitter exactly as torchvision get_params: randperm(4) then b, c, s uniforms. */
void beit_data_jitter_draw(struct beit_data_jitter *j, double strength, struct beit_rng *rng);
/* Mean of the greyscale image (rounded as ImageEnhance.Contrast does) after the operations
 * that precede contrast in j's order; needed because contrast blends with the full image's mean
 * even though only the crop box is transformed. */
int beit_data_jitter_contrast_mean(const struct beit_data_jitter *j,
                                   const struct beit_data_image *img);
/* Apply j to the box (x0, y0, w, h) of img, writing a packed (h, w, 3) crop. */
void beit_data_jitter_apply_box(uint8_t *dst, const struct beit_data_image *img, int x0, int y0,
                                int w, int h, const struct beit_data_jitter *j, int contrast_mean);

/* RandomResizedCrop.get_params (spec 7.1): box (x0, y0, w, h) in an image of width x height. */
void beit_data_rrc_box(int box[4], int width, int height, double scale_min, double scale_max,
                       double ratio_min, double ratio_max, struct beit_rng *rng);

/* timm RandomErasing (mode 'pixel', one box) with probability p on a normalised (3, S, S) view. */
void beit_data_random_erase(float *view, int S, double p, struct beit_rng *rng);

/* The naive twin of beit_data_resize: double arithmetic, direct 2-D weights, no passes. */
void beit_data_resize_naive(float *dst, int dw, int dh, const uint8_t *src, int sw, int sh,
                            size_t sstride, int x0, int y0, int w, int h,
                            enum beit_data_filter filter);

#endif
