/* Data: HDF5 image shards, decoding, PIL-compatible resizing, the BEiT augmentations and a
 * threaded, rank-aware batch loader (docs/architecture.md).
 *
 * A dataset is a folder: index.json + shard-NNNNN.h5. Each shard holds the encoded image files
 * as found (`images` uint8 1-D, `offsets` int64 N+1), labels (`labels` int32 N, or for
 * multi-label `label_offsets` int64 N+1 + `label_values` int32) and `keys` (source path or id),
 * chunked with Fletcher32 checksums and a `schema_version` attribute. Records are numbered
 * globally 0..N-1 in shard order: that number is the "global sample index".
 *
 * Rank equivalence: an epoch's order is one global permutation of 0..N-1 keyed by
 * (seed, epoch), whatever the number of ranks W. Global step k covers permutation positions
 * [k*W*B, (k+1)*W*B); rank r takes the B positions starting at k*W*B + r*B (training drops the
 * final partial global batch). "Assigning shards to ranks" is realised this way: every rank
 * opens and validates all shards (metadata only) and then reads just the records its positions
 * name, so 1 rank x batch 2B and 2 ranks x batch B train on the same samples, and a cursor
 * (epoch, global position) resumes under any W with the same W*B.
 * Per-sample randomness (crop, flip, jitter) comes from beit_rng_seed(seed, epoch, index) with
 * index the record assigned to the position, so results do not depend on W or thread count.
 *
 * Bad data never stops a run: a record whose bytes do not decode (truncated, corrupt), or whose
 * image chunk fails its Fletcher32 checksum when read, is skipped, counted and logged (key, or
 * shard file and record), and its slot is filled by the next valid record of the permutation,
 * so batches keep their size and order stays reproducible. A shard that fails its schema or
 * metadata checksum at open, disagrees with index.json, cannot be read (I/O error) or was
 * deleted, replaced or resized since it was opened is an error naming the file. */
#ifndef BEIT_DATA_H
#define BEIT_DATA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "beit/status.h"

struct beit_rng;           /* core/rng.h */
struct beit_data_transform; /* below */
struct cJSON;               /* <cjson/cJSON.h> */

#define BEIT_DATA_FORMAT_VERSION 1 /* index.json "format_version" */
#define BEIT_DATA_SCHEMA_VERSION 1 /* shard attribute "schema_version" */
#define BEIT_DATA_KEY_MAX 1024     /* longest key, including the terminator */

enum beit_data_task { BEIT_DATA_TASK_MULTICLASS, BEIT_DATA_TASK_MULTILABEL };

/* ---- Images ------------------------------------------------------------------------------ */

/* An 8-bit RGB image, (height, width, 3) interleaved, rows packed. */
struct beit_data_image {
  uint8_t *pixels;
  int width, height;
};

/* Decode an encoded file to RGB: grey is replicated, alpha dropped (PIL's convert("RGB")).
 * JPEG goes through libjpeg-turbo and PNG through libpng, the decoders PIL uses (the pixels are
 * PIL's); the formats stb_image reads (GIF first frame, BMP, TGA, PSD, HDR, PNM, PIC) through
 * stb_image, meant for local files: `beit serve` accepts JPEG and PNG only. A JPEG whose
 * segments do not reach the end-of-image marker, a PNG whose chunks do not reach IEND, a GIF
 * whose first image is cut and an uncompressed BMP whose pixel array is cut count as truncated.
 * FORMAT on failure, the message names key. img must be freed with beit_data_image_free (also
 * after a failure: it is then empty). */
enum beit_status beit_data_decode(struct beit_data_image *img, const void *data, size_t size,
                                  const char *key, struct beit_error *err);
void beit_data_image_free(struct beit_data_image *img);

/* The decoders' limits: a longer side or more pixels is refused from the header. */
#define BEIT_IMAGE_MAX_SIDE (1 << 15)
#define BEIT_IMAGE_MAX_PIXELS ((size_t)1 << 28)

/* Which decoder beit_data_decode uses, from the file's signature. */
enum beit_image_format { BEIT_IMAGE_JPEG, BEIT_IMAGE_PNG, BEIT_IMAGE_OTHER };
enum beit_image_format beit_data_image_format(const void *data, size_t size);
/* The format's name for messages: "JPEG", "PNG", "GIF", "BMP", ..., or "unrecognised". */
const char *beit_data_image_format_name(const void *data, size_t size);

/* Width and height from the file's header alone (no pixel data is decoded or allocated), so a
 * decompression bomb can be refused first. FORMAT when the header is not readable. */
enum beit_status beit_data_image_size(const void *data, size_t size, int *width, int *height,
                                      const char *key, struct beit_error *err);

/* PIL resampling filters (Image.BILINEAR, BICUBIC a=-0.5, LANCZOS a=3). */
enum beit_data_filter {
  BEIT_DATA_FILTER_BILINEAR,
  BEIT_DATA_FILTER_BICUBIC,
  BEIT_DATA_FILTER_LANCZOS,
};

/* Worker scratch space for resizing and transforms: grows to the largest image seen, then
 * stays (no allocation in steady state). One per thread. */
struct beit_data_scratch;
struct beit_data_scratch *beit_data_scratch_init(void); /* NULL when out of memory */
void beit_data_scratch_free(struct beit_data_scratch *ws);

/* Resize the box (x0, y0, w, h) of src (sw x sh RGB, row stride sstride bytes) to dst (dw x dh
 * RGB, packed) exactly as PIL's Image.crop(box).resize((dw, dh), filter) for 8-bit images:
 * separable, horizontal pass first, support scaled by the shrink factor (antialiasing),
 * per-pixel normalised fixed-point coefficients, round and clip to uint8 between passes. */
enum beit_status beit_data_resize(uint8_t *dst, int dw, int dh, const uint8_t *src, int sw,
                                  int sh, size_t sstride, int x0, int y0, int w, int h,
                                  enum beit_data_filter filter, struct beit_data_scratch *ws,
                                  struct beit_error *err);

/* ---- Transforms -------------------------------------------------------------------------- */

/* timm's RandAugment policy (data/randaugment.c), e.g. BEiT's fine-tuning "rand-m9-mstd0.5-inc1". */
#define BEIT_RA_MAX_LAYERS 64 /* num_layers limit */

struct beit_randaugment {
  int num_layers;        /* n: ops per image, default 2; 0 = disabled */
  double magnitude;      /* m: level in [0, 10] (timm _LEVEL_DENOM; more is clipped), default 10 */
  double magnitude_std;  /* mstd: 0 = fixed m, > 0 = N(m, mstd), INFINITY = uniform(0, m) */
  double prob;           /* p: each chosen op applies with this probability, default 0.5 */
  int increasing;        /* inc1: _RAND_INCREASING_TRANSFORMS level mappings, default 0 */
  double translate_pct;  /* TranslateX/YRel at level 10, fraction of the side; default 0.45 */
  uint8_t fill[3];       /* fill of the geometric ops (timm img_mean), default (128, 128, 128) */
  int bicubic;           /* resample of rotate/shear/translate: 1 BICUBIC (default), 0 BILINEAR */
};

/* Parse a timm RandAugment string, e.g. "rand-m9-mstd0.5-inc1": sections separated by '-',
 * the first "rand", then any of m<float> n<int> mstd<float> (> 100 means uniform, as timm)
 * inc<0|1> p<float>. NULL or "" gives num_layers 0 (disabled). Every field not in the string
 * takes its default (see the struct), including fill, translate_pct and bicubic, which the caller
 * sets afterwards. Unknown or malformed sections, or values out of range (m < 0, n outside
 * [0, BEIT_RA_MAX_LAYERS], mstd < 0, p outside [0, 1]) are BEIT_STATUS_CONFIG naming the
 * section and the string; ra is then left with defaults and num_layers 0.
 * Unlike timm, "inc0" means off (timm's bool("0") turns it on) and m may be fractional. */
enum beit_status beit_randaugment_parse(struct beit_randaugment *ra, const char *spec,
                                        struct beit_error *err);


enum beit_data_mode {
  BEIT_DATA_MODE_PRETRAIN, /* jitter, flip, one crop box -> view A (+ view B) */
  BEIT_DATA_MODE_FINETUNE, /* RandomResizedCrop + flip [+ RandAugment] + normalise
                              [+ RandomErasing] */
  BEIT_DATA_MODE_EVAL,     /* deterministic: shorter side + centre crop, or direct resize */
};

enum beit_data_eval_resize {
  BEIT_DATA_EVAL_CENTER_CROP, /* resize shorter side to floor(S / crop_pct), centre crop S */
  BEIT_DATA_EVAL_DIRECT,      /* resize to S x S ignoring aspect (HF microsoft/ checkpoints) */
};

/* ---- Model preprocessing ----------------------------------------------------------------- */

/* A model's inference preprocessing, one definition for every command (data/preprocess.c):
 * what a model folder's preprocessor_config.json says in HF BeitImageProcessor terms, applied
 * with its semantics. Resize (exact height x width, or shorter side to s with the longer
 * int(s * long / short)) of the 8-bit image with a PIL filter, centre crop with offsets
 * (size - crop) // 2 and zero padding where the image is smaller, then (x * rescale - mean) / std
 * per channel (computed in double, stored float32). */
enum beit_data_resize {
  BEIT_DATA_RESIZE_NONE,     /* do_resize false: the image must already be the right size */
  BEIT_DATA_RESIZE_EXACT,    /* size {"height", "width"} (or an int): ignore the aspect ratio */
  BEIT_DATA_RESIZE_SHORTEST, /* size {"shortest_edge": s}: shorter side to s, aspect kept */
};

struct beit_data_preprocess {
  enum beit_data_resize resize;
  int resize_height, resize_width; /* EXACT */
  int shortest_edge;               /* SHORTEST */
  enum beit_data_filter filter;    /* HF resample 2 bilinear, 3 bicubic, 1 lanczos */
  int center_crop;                 /* HF centre crop: offsets (size - crop) // 2, zero padding */
  int crop_height, crop_width;
  double rescale_factor;           /* 1/255; 1.0 when do_rescale is false */
  float mean[3], std[3];           /* (x * rescale - mean) / std; 0 and 1 when not normalising */
  char source[64];                 /* where it came from: "preprocessor_config.json",
                                      "default", "recipe", plus command-line overrides */
};

/* The preprocessing of a model folder without preprocessor_config.json, for a model of side
 * image_size: direct resize to image_size x image_size, bicubic, no crop, mean = std = 0.5 (the
 * BEiT normalisation of every released checkpoint; no crop, so the whole image is seen). */
void beit_data_preprocess_default(struct beit_data_preprocess *pp, int image_size);
/* Replace the geometry of pp by an evaluation resize for a model of side image_size: direct
 * (image_size x image_size) or centre crop (shorter side to floor(image_size / crop_pct),
 * centre crop image_size). Filter, rescale and normalisation are kept. */
void beit_data_preprocess_set_eval_resize(struct beit_data_preprocess *pp, int image_size,
                                          enum beit_data_eval_resize resize, double crop_pct);
/* The eval transform t (eval_resize, crop_pct, filter, mean, std at t->image_size) as a
 * preprocessing, source "recipe": what fine-tuning evaluates with and writes into its
 * checkpoints' preprocessor_config.json. */
void beit_data_preprocess_from_transform(struct beit_data_preprocess *pp,
                                         const struct beit_data_transform *t);
/* CONFIG, naming `what`, unless pp turns images into image_size x image_size views with a
 * non-zero std. */
enum beit_status beit_data_preprocess_check(const struct beit_data_preprocess *pp,
                                            int image_size, const char *what,
                                            struct beit_error *err);
/* Read an HF preprocessor_config.json (BeitImageProcessor or BeitFeatureExtractor keys; HF
 * BeitImageProcessor's defaults for absent keys: resize 256x256 bicubic, centre crop 224,
 * rescale 1/255, mean = std = 0.5). Unknown keys, unsupported resample filters and results that
 * are not image_size x image_size are CONFIG errors naming the key and the file. */
enum beit_status beit_data_preprocess_load(struct beit_data_preprocess *pp, const char *path,
                                           int image_size, struct beit_error *err);
/* The model folder dir's preprocessing: dir/preprocessor_config.json when it exists (read as
 * above), else beit_data_preprocess_default. The one rule of eval, predict and serve. */
enum beit_status beit_data_preprocess_model(struct beit_data_preprocess *pp, const char *dir,
                                            int image_size, struct beit_error *err);
/* pp as an HF preprocessor_config.json object (image_processor_type BeitImageProcessor); NULL
 * when out of memory. */
struct cJSON *beit_data_preprocess_json(const struct beit_data_preprocess *pp);
/* Write it to path (atomically). */
enum beit_status beit_data_preprocess_save(const struct beit_data_preprocess *pp,
                                           const char *path, struct beit_error *err);
/* The preprocessor_config.json of a model folder exported from src (a folder, or NULL for a
 * file source) at src_size to dst_dir at dst_size: src's file copied byte for byte when the
 * size is unchanged, its sizes scaled by dst_size / src_size (floor, as timm's scale_size)
 * when not, the default of dst_size when src has none. src's file is validated first. */
enum beit_status beit_data_preprocess_export(const char *src, int src_size, const char *dst_dir,
                                             int dst_size, struct beit_error *err);
/* One line: "resize 224x224 bicubic, no crop, rescale 0.00392157, mean 0.5/0.5/0.5 std
 * 0.5/0.5/0.5 (default)". */
void beit_data_preprocess_describe(const struct beit_data_preprocess *pp, char *buf, size_t n);
/* Preprocess a decoded RGB image into view (3, S, S), S = image_size. FORMAT when pp does not
 * resize or crop and the image is not S x S. ws: the calling thread's scratch. */
enum beit_status beit_data_preprocess_apply(const struct beit_data_preprocess *pp, int image_size,
                                            const struct beit_data_image *img, float *view,
                                            struct beit_data_scratch *ws, struct beit_error *err);

enum beit_data_second_norm {
  BEIT_DATA_SECOND_DALLE,   /* x/255 * 0.8 + 0.1 (DALL-E map_pixels) */
  BEIT_DATA_SECOND_MEANSTD, /* (x/255 - 0.5) / 0.5 (customised dVAE) */
};

struct beit_data_transform {
  enum beit_data_mode mode;
  int image_size;          /* view A side S */
  int second_size;         /* view B side s; 0 = no view B (only used in pretrain mode) */
  float mean[3], std[3];   /* view A: (x/255 - mean) / std */
  enum beit_data_second_norm second_norm;
  enum beit_data_filter filter;        /* view A (bicubic; eval default bicubic) */
  enum beit_data_filter second_filter; /* view B (lanczos) */
  double scale_min, scale_max;         /* RandomResizedCrop area fraction */
  double ratio_min, ratio_max;         /* RandomResizedCrop aspect w/h, sampled log-uniform */
  double jitter;                       /* brightness = contrast = saturation strength; 0 = off */
  double hflip;                        /* probability of a horizontal flip */
  double crop_pct;                     /* eval centre crop */
  enum beit_data_eval_resize eval_resize;
  /* eval mode: a model's preprocessing (beit_data_preprocess_apply) when eval_preprocess_set,
   * else the one beit_data_preprocess_from_transform derives from image_size, eval_resize,
   * crop_pct, filter, mean and std; either way the pixels predict and serve compute */
  int eval_preprocess_set;
  struct beit_data_preprocess eval_preprocess;
  /* fine-tuning train mode only (timm create_transform): */
  struct beit_randaugment rand_augment; /* num_layers 0 = off; fill and bicubic are taken from
                                           mean and filter, as timm's hparams */
  double erase_prob;      /* RandomErasing (mode pixel, one box) probability; 0 = off */
};

/* Defaults of the BEiT recipes: pretrain 224/112, mean=std=0.5, view B DALL-E map, bicubic +
 * lanczos, scale (0.08, 1), ratio (3/4, 4/3), jitter 0.4 (pretrain only), flip 0.5 (train
 * modes), eval crop_pct 224/256 with centre crop. */
void beit_data_transform_defaults(struct beit_data_transform *t, enum beit_data_mode mode);
/* ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225) for view A. */
void beit_data_transform_imagenet_norm(struct beit_data_transform *t);
/* CONFIG with a message naming the field when a value is out of range. */
enum beit_status beit_data_transform_check(const struct beit_data_transform *t,
                                           struct beit_error *err);

/* Apply t to one decoded image. rng (seeded by the caller, e.g. (seed, epoch, index)) gives all
 * random choices, in torchvision's order. view_a: (3, S, S); view_b: (3, s, s) or NULL. */
enum beit_status beit_data_transform_apply(const struct beit_data_transform *t,
                                           const struct beit_data_image *img,
                                           struct beit_rng *rng, float *view_a, float *view_b,
                                           struct beit_data_scratch *ws, struct beit_error *err);

/* ---- Datasets (reading) ------------------------------------------------------------------ */

struct beit_dataset; /* an opened dataset folder: index + every shard validated */

/* Open dir/index.json and validate every shard: schema version, datasets and their types,
 * offsets monotone and matching the image bytes, labels in range, checksums of the metadata
 * chunks; and index.json against the shards: each listed file present, its record count and
 * task as listed, num_records the sum of the counts, num_classes the number of class_names.
 * Errors name the file and what disagrees. */
enum beit_status beit_data_open(struct beit_dataset **out, const char *dir,
                                struct beit_error *err);
/* IO naming the first shard whose path no longer holds the file opened (deleted, replaced by
 * another file, or resized); OK when none. A stat per shard. */
enum beit_status beit_data_check_files(const struct beit_dataset *ds, struct beit_error *err);
void beit_data_close(struct beit_dataset *ds);

size_t beit_data_count(const struct beit_dataset *ds);
enum beit_data_task beit_data_task(const struct beit_dataset *ds);
int beit_data_num_classes(const struct beit_dataset *ds);
const char *beit_data_class_name(const struct beit_dataset *ds, int c);

/* One record's encoded bytes, labels and key; buffers grow as needed and are reused. */
struct beit_data_record {
  uint8_t *bytes;
  size_t size, bytes_capacity;
  int32_t *labels; /* one label (multiclass) or the record's label set (multilabel) */
  size_t num_labels, labels_capacity;
  char key[BEIT_DATA_KEY_MAX];
};
void beit_data_record_free(struct beit_data_record *rec);

/* Read record index (0..N-1). Thread-safe. FORMAT: the record's image chunk failed its
 * Fletcher32 checksum (damaged on disk; other records may read fine); IO: the shard cannot be
 * read, or was deleted, replaced or resized since it was opened. Both name the shard file, the
 * record within it and the key. */
enum beit_status beit_data_read(struct beit_dataset *ds, size_t index,
                                struct beit_data_record *rec, struct beit_error *err);

/* ---- Packing ------------------------------------------------------------------------------ */

enum beit_data_source {
  BEIT_DATA_SOURCE_FOLDER,        /* input/<class>/<image>: ImageFolder, classes sorted */
  BEIT_DATA_SOURCE_MANIFEST,      /* CSV (path,label[;label...]) or JSON lines */
  BEIT_DATA_SOURCE_FASHION_MNIST, /* input/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz */
};

struct beit_data_pack_options {
  enum beit_data_source source;
  const char *input;  /* folder, manifest file or Fashion-MNIST folder */
  const char *output; /* dataset folder to create (written as output.partial, then renamed) */
  const char *split;  /* Fashion-MNIST: "train" or "test" */
  int multilabel;     /* manifest: force task multilabel even if every row has one label */
  size_t shard_bytes; /* start a new shard once this many image bytes are in the current one */
  size_t chunk_bytes; /* HDF5 chunk size of `images`; 0 = about two mean records, 16 KiB-1 MiB */
  uint64_t seed;      /* shuffle before sharding */
  int shuffle;        /* 0 keeps source order (sorted paths) */
  int overwrite;      /* replace an existing output folder */
  FILE *log;          /* progress and skipped records (NULL: silent) */
  int progress_tty;   /* progress as a rewritten line (TTY) rather than log lines */
};
void beit_data_pack_defaults(struct beit_data_pack_options *opt);

struct beit_data_pack_report {
  size_t written, skipped, shards;
  size_t bytes;    /* encoded image bytes written */
  int num_classes;
};

/* Build a dataset folder. Every image is decoded once to check it; ones that fail are skipped
 * and reported (log lines "skip KEY: reason"), never fatal. */
enum beit_status beit_data_pack(const struct beit_data_pack_options *opt,
                                struct beit_data_pack_report *report, struct beit_error *err);

/* `beit pack --config FILE` / `--set KEY=VALUE` (data/pack_config.c): keys source (folder |
 * manifest | fashion-mnist), input, output, split, shard_mb, chunk_kb, seed, shuffle,
 * multilabel, overwrite; an unknown key or a bad value is an error naming it. */
struct beit_data_pack_config {
  char source[256], input[256], output[256], split[256]; /* BEIT_CONFIG_STR each */
  long shard_mb, chunk_kb, seed;
  int shuffle, multilabel, overwrite;
};
/* *opt = beit_data_pack_defaults and *c the same values as keys. */
void beit_data_pack_config_init(struct beit_data_pack_config *c,
                                struct beit_data_pack_options *opt);
enum beit_status beit_data_pack_config_load(struct beit_data_pack_config *c, const char *path,
                                            struct beit_error *err);
enum beit_status beit_data_pack_config_set(struct beit_data_pack_config *c,
                                           const char *key_value, struct beit_error *err);
/* c's keys into opt (its strings point into c): 1 when c names a source (then opt->input is
 * its input, NULL when c has none), else 0. */
int beit_data_pack_config_apply(const struct beit_data_pack_config *c,
                                struct beit_data_pack_options *opt);

/* `beit pack --check DIR` (data/pack_check.c): every record of dataset dir read and decoded; a
 * record failing its checksum ("corrupt MESSAGE") or not decoding ("bad MESSAGE") is a line on
 * log and counted, and the check goes on. An error opening dir or reading otherwise ends it. */
struct beit_data_check_report {
  size_t records, bad, corrupt;
  int num_classes;
  enum beit_data_task task;
};
enum beit_status beit_data_check(const char *dir, FILE *log, struct beit_data_check_report *rep,
                                 struct beit_error *err);

/* ---- Loader ------------------------------------------------------------------------------- */

struct beit_loader_options {
  struct beit_data_transform transform;
  size_t batch_size; /* per rank: B */
  int rank, world_size;
  int num_workers;   /* decode/augment threads */
  int num_buffers;   /* batches in the ring (>= 2) */
  uint64_t seed;
  int shuffle;       /* 0: identity order (evaluation) */
  int drop_last;     /* 1: drop the final partial global batch (training); 0: short batches */
  int loop;          /* 1: run over epochs forever; 0: stop after the cursor's epoch */
  FILE *log;         /* skipped-record lines (NULL: silent) */
};
void beit_loader_defaults(struct beit_loader_options *opt);

/* Where training stands: the epoch and the global position of the next step's first sample
 * (a multiple of W*B). Stored in trainer_state.json. */
struct beit_loader_cursor {
  uint64_t epoch;
  uint64_t position;
};

/* One batch; valid until the next beit_loader_next call. */
struct beit_loader_batch {
  size_t count;        /* samples: B, except in the final step of a drop_last = 0 pass, where
                          it may be smaller, or 0 for a rank past the end */
  float *view_a;       /* (B, 3, S, S) */
  float *view_b;       /* (B, 3, s, s) or NULL */
  int32_t *labels;     /* (B) multiclass, else NULL */
  float *targets;      /* (B, C) multi-hot for multilabel, else NULL */
  int64_t *indices;    /* (B) global sample index of each sample */
  uint64_t epoch;      /* epoch and global position of this step's first sample */
  uint64_t position;
};

struct beit_loader_stats {
  size_t skipped;      /* records skipped (replaced) in the batches returned so far */
  size_t corrupt;      /* distinct records found failing their shard checksum (also those of
                          batches prefetched but not yet returned) */
  double wait_seconds; /* time the caller spent blocked in beit_loader_next */
  size_t batches;      /* batches returned */
};

struct beit_loader;

/* Open dir and start the workers at cursor start (NULL = epoch 0, position 0). The position
 * must be a multiple of world_size * batch_size. */
enum beit_status beit_loader_init(struct beit_loader **out, const char *dir,
                                  const struct beit_loader_options *opt,
                                  const struct beit_loader_cursor *start, struct beit_error *err);
/* Stop the workers and free every buffer. */
void beit_loader_free(struct beit_loader *ld);

/* Block until the next batch in order is ready. *batch = NULL at the end (loop = 0). A shard
 * read failure other than a checksum (IO, naming the file and record) is returned here; records
 * that fail their checksum are skipped like undecodable ones. */
enum beit_status beit_loader_next(struct beit_loader *ld, const struct beit_loader_batch **batch,
                                  struct beit_error *err);

/* Cursor after the last batch returned: resuming from it continues exactly. */
void beit_loader_cursor(const struct beit_loader *ld, struct beit_loader_cursor *cursor);
void beit_loader_stats(const struct beit_loader *ld, struct beit_loader_stats *stats);
struct beit_dataset *beit_loader_dataset(struct beit_loader *ld);
/* Global steps per epoch: floor (drop_last) or ceil of N / (W*B). */
uint64_t beit_loader_steps_per_epoch(const struct beit_loader *ld);

/* The epoch permutation: position -> global sample index, a bijection of 0..n-1 keyed by
 * (seed, epoch) (a Feistel network with cycle walking: O(1) memory, random access). */
uint64_t beit_data_permute(uint64_t position, uint64_t n, uint64_t seed, uint64_t epoch);

#endif
