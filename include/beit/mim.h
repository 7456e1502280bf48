/* The entry points of mim/, the training and evaluation commands (apps/cmd_pretrain.c,
 * cmd_finetune.c, cmd_eval.c, cmd_probe.c, cmd_tokenizer.c, cmd_export.c): pretraining,
 * fine-tuning, a classifier's evaluation and its metrics, linear probing, tokenizer training,
 * beit export's run, and the run policies the command line sets (the precision line,
 * --dist-timeout). What each does in detail: the comments of mim/pretrain.h, finetune.h, eval.h,
 * metrics.h, probe.h and tokenizer_train.h. Every function that takes the job
 * (include/beit/distributed.h) is called on every rank. */
#ifndef BEIT_MIM_H
#define BEIT_MIM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "beit/data.h"
#include "beit/distributed.h"
#include "beit/model.h"
#include "beit/precision.h"
#include "beit/status.h"
#include "beit/tokenizer.h"

struct cJSON;

/* What every training run takes from its command line (pretrain, finetune, tokenizer train). */
struct beit_train_args {
  const char *config;      /* the recipe (configs/recipes/) or tokenizer config
                              (configs/tokenizer/NAME.json) */
  const char *data;        /* overrides its data.train when non-NULL */
  const char *eval_data;   /* overrides its data.eval */
  const char *out;         /* output folder: checkpoints, metrics.jsonl */
  int resume;              /* continue from the newest complete checkpoint in out */
  int overwrite;           /* move a previous run in out aside and start again (trainer.h) */
  const char *const *sets; /* --set key=value overrides of the config, in order */
  int nsets;
};

/* ---- Pretraining (mim/pretrain.c) ------------------------------------------------------------ */

struct beit_pretrain_options {
  struct beit_train_args args;
  const char *tokenizer; /* tokenizer folder (required) */
};

struct beit_pretrain_summary {
  long steps;     /* the step the run reached */
  long steps_run; /* of those, the steps this call ran (0: the run was already complete) */
  double seconds;
  double first_loss, last_loss, last_mlm_acc;   /* training: first and last logged window */
  double eval_loss, eval_mlm_acc, eval_majority_acc; /* held-out; majority = always the most
                                                        frequent target token */
  long eval_tokens;
  size_t skipped_records, corrupt_records; /* rank 0's loader: records skipped, and of those
                                             the ones failing their shard checksum */
  char last_checkpoint[4200];
};

enum beit_status beit_pretrain_run(const struct beit_pretrain_options *opt, struct beit_dist *dist,
                                   struct beit_pretrain_summary *summary, struct beit_error *err);

/* ---- Fine-tuning (mim/finetune.c) ------------------------------------------------------------ */

struct beit_finetune_options {
  struct beit_train_args args;
  const char *init;        /* initial weights (folder or .safetensors); NULL: random init */
};

struct beit_finetune_summary {
  long steps;     /* the step the run reached */
  long steps_run; /* of those, the steps this call ran (0: the run was already complete) */
  double seconds;
  size_t train_samples;
  double first_loss, last_loss, last_acc;
  int evaluated;
  int multilabel;
  double eval_top1, eval_topk, eval_loss, eval_map, eval_micro_f1, eval_samples;
  size_t skipped_records, corrupt_records; /* rank 0's loader: records skipped, and of those
                                             the ones failing their shard checksum */
  char last_checkpoint[4200];
};

enum beit_status beit_finetune_run(const struct beit_finetune_options *opt,
                                   struct beit_dist *dist, struct beit_finetune_summary *summary,
                                   struct beit_error *err);

/* ---- Metrics of a classifier (mim/metrics.c) ------------------------------------------------- */

struct beit_metrics {
  size_t C;           /* classes */
  int multilabel;
  size_t topk;        /* k of the top-k accuracy: min(5, C) */
  double threshold;   /* multi-label decision threshold on the probability */
  double count;       /* samples accumulated */
  double loss_sum;    /* sum of per-sample losses */
  /* multi-class */
  double *tp, *support, *predicted; /* (C) each */
  double *confusion;  /* (C, C), or NULL above 1000 classes (BEIT_METRICS_CONFUSION_MAX) */
  double top1, topk_hits;
  /* multi-label: one row per sample slot (global sample index), so ranks can be merged */
  size_t rows;        /* slots */
  float *scores;      /* (rows, C) logits */
  uint8_t *targets;   /* (rows, C) 0/1 */
  uint8_t *filled;    /* (rows) slot holds a sample */
};

void beit_metrics_free(struct beit_metrics *m);

struct beit_class_metrics {
  double support;    /* samples whose true label is the class */
  double predicted;  /* samples predicted as the class */
  double tp;
  double precision, recall, f1, ap; /* NaN where undefined; ap multi-label only */
};

struct beit_metrics_report {
  int multilabel;
  size_t C, topk;
  double samples, log_loss;
  double top1, topk_acc;                   /* multi-class */
  double macro_precision, macro_recall, macro_f1;
  size_t classes_precision, classes_recall, classes_f1; /* classes in each macro average */
  double map, micro_precision, micro_recall, micro_f1, subset_accuracy, threshold; /* multi-label */
  size_t classes_ap;
  struct beit_class_metrics *cls;          /* C entries */
  const double *confusion;                 /* multi-class: the accumulator's (C, C) or NULL */
};

enum beit_status beit_metrics_report(const struct beit_metrics *m,
                                     struct beit_metrics_report *r, struct beit_error *err);
void beit_metrics_report_free(struct beit_metrics_report *r);

/* The report as JSON (undefined values as null); class names may be NULL. */
struct cJSON *beit_metrics_report_json(const struct beit_metrics_report *r,
                                const char *const *class_names);

/* ---- Evaluation (mim/eval.c) ----------------------------------------------------------------- */

struct beit_eval_options {
  const char *data;        /* dataset folder */
  size_t batch;            /* <= the model's max_batch */
  /* the images' preprocessing, for the model's image size: the model folder's
   * (beit_data_preprocess_model) or a recipe's (beit_recipe_eval_preprocess) */
  struct beit_data_preprocess preprocess;
  double threshold;        /* multi-label */
  int num_workers;
  long max_batches;        /* 0 = the whole set */
  uint64_t seed;
  /* when not NULL: one JSON line per record in dataset order, {"index": i, "probs": [...],
   * "labels": [...]} with every label in the model's order (softmax, or sigmoids for a
   * multi-label model); one rank only (USAGE under MPI) */
  FILE *predictions;
};
/* Batch 64, threshold 0.5, 2 workers, the whole set; preprocess must still be set. */
void beit_eval_defaults(struct beit_eval_options *o);

/* Run the model over the dataset and fill metrics (initialised here; free with
 * beit_metrics_free). The model must be a BeitForImageClassification whose num_labels equals the
 * dataset's classes; the task comes from the model (problem_type). Every rank returns the same
 * merged metrics. */
enum beit_status beit_eval_run(struct beit_model *m, struct beit_dist *dist,
                               const struct beit_eval_options *o, struct beit_metrics *metrics,
                               struct beit_error *err);

/* The report as a table: summary lines, per-class rows (all of them up to max_rows classes,
 * else the worst by F1), and the confusion matrix up to 20 classes. */
void beit_eval_print(FILE *out, const struct beit_metrics_report *r,
                     const char *const *class_names, size_t max_rows);

/* beit eval's run (mim/eval_model.c), on every rank: the classifier folder model_dir loaded for
 * eval.batch images, for inference in precision (resolved), its images preprocessed as the folder
 * says (beit_data_preprocess_model) with the overrides on top, beit_eval_run over eval.data, and
 * on rank 0 the line "preprocessing: ..." on log (NULL: none), "model DIR on DATA: " and the
 * table (beit_eval_print, rows per-class rows) on out, the full report as JSON in json (with
 * model, data, preprocessing and compute_precision), per-image lines in predictions. */
struct beit_eval_model_options {
  const char *model_dir;
  struct beit_eval_options eval; /* data, batch, threshold, num_workers (preprocess: set here) */
  enum beit_precision precision;
  int resize;                    /* enum beit_data_eval_resize, or -1: the folder's */
  double crop_pct;               /* > 0: centre crop fraction (center_crop unless resize says) */
  int imagenet;                  /* 1 ImageNet mean/std, 0 mean = std = 0.5, -1: the folder's */
  const char *json;              /* or NULL */
  const char *predictions;       /* or NULL; one rank only */
  size_t rows;
  FILE *out, *log;
};
enum beit_status beit_eval_model(const struct beit_eval_model_options *opt,
                                 struct beit_dist *dist, struct beit_error *err);

/* beit export's run (mim/export_model.c): beit_export_encoder (include/beit/transfer.h) from
 * from into out and, unless opt->timm, out/preprocessor_config.json: the source folder's own
 * (its sizes scaled when the image size changes; beit_data_preprocess_export), else the no-file
 * default for the exported image size. */
struct beit_export_options;
enum beit_status beit_export_model(const char *from, const char *out,
                                   const struct beit_export_options *opt, struct beit_error *err);

/* ---- Linear probing (mim/probe.c) ------------------------------------------------------------ */

struct beit_probe_options {
  const char *model;       /* checkpoint / model folder */
  const char *train, *eval; /* dataset folders */
  const char *recipe;      /* a recipe whose probe.*, seed, precision and data.* keys apply;
                              NULL: the fine-tuning defaults */
  const char *const *sets; /* --set key=value overrides of it */
  int nsets;
  size_t batch;            /* images per forward */
  FILE *log;               /* progress lines (rank 0), may be NULL */
};

struct beit_probe_result {
  long block;              /* 1..L */
  double train_acc, eval_acc, eval_loss;
};

/* What the recipe made of the probes, for the report. */
struct beit_probe_setup {
  char pool[256];          /* probe.pool: "mean" or "cls_mean" */
  double epochs, lr, weight_decay;
};

/* results: L entries (only the probed blocks filled; *count gets how many). */
enum beit_status beit_probe_run(const struct beit_probe_options *o, struct beit_dist *dist,
                                struct beit_probe_result *results, size_t max_results,
                                size_t *count, struct beit_probe_setup *setup,
                                struct beit_error *err);

/* beit probe's report (mim/probe_report.c), rank 0: "linear probe of MODEL (...)" and one row
 * per probed block on out; with json (NULL: none) the same as {"model", "pool", "blocks":
 * [{block, train_top1, eval_top1, eval_loss}, ...]} written to that file. */
enum beit_status beit_probe_report(const char *model, const struct beit_probe_setup *setup,
                                   const struct beit_probe_result *res, size_t n, FILE *out,
                                   const char *json, struct beit_error *err);

/* ---- Tokenizer training (mim/tokenizer_train.c) ---------------------------------------------- */

struct beit_tokenizer_train_options {
  struct beit_train_args args; /* config: configs/tokenizer/NAME.json */
};

/* Held-out quality: reconstructions of the hard (argmax) tokens, as BEiT uses them. */
struct beit_tokenizer_eval {
  size_t images;
  double mae;           /* mean |x_hat - x| over pixels in [0, 1] */
  double mse;
  size_t codes_used;    /* distinct tokens over the set */
  double codes_frac;    /* codes_used / vocabulary */
  double perplexity;    /* exp(entropy) of the token histogram */
  double seconds;
};

struct beit_tokenizer_train_summary {
  long steps;
  double seconds;       /* wall time of this run's training loop (without the final eval) */
  double last_loss, last_mae;
  struct beit_tokenizer_eval eval;
  char tokenizer_dir[4200], grid_png[4200];
};

enum beit_status beit_tokenizer_train_run(const struct beit_tokenizer_train_options *opt,
                                          struct beit_dist *dist,
                                          struct beit_tokenizer_train_summary *summary,
                                          struct beit_error *err);

/* Encode and reconstruct the images of dataset dir (the first max_images, all when 0) through
 * the deterministic view B (whole image at the tokenizer's size, no flip); with png non-NULL,
 * write a grid of the first grid_images originals beside their reconstructions. tokens_out
 * (may be NULL) receives the token grids (max_images x gh*gw; needs max_images > 0).
 * dist NULL: this process reads the set alone. Otherwise every rank of dist calls it and reads
 * its slice (max_images, tokens_out and the grid are per rank) and ev covers all ranks. */
enum beit_status beit_tokenizer_evaluate(struct beit_tokenizer *tok, struct beit_dist *dist,
                                         const char *dir, size_t max_images, int num_workers,
                                         const char *png,
                                         size_t grid_images, int32_t *tokens_out,
                                         struct beit_tokenizer_eval *ev, struct beit_error *err);

/* `beit tokenizer encode --data`: the token grids of dataset dir's first max_images images (all
 * when 0) through the same view B, written to output as 'tokens' I32 (N, gh, gw). */
enum beit_status beit_tokenizer_encode_dataset(struct beit_tokenizer *tok, const char *dir,
                                               size_t max_images, const char *output,
                                               struct beit_error *err);

/* beit tokenizer encode | recon (mim/tokenizer_io.c): the tokenizer folder loaded in precision
 * (resolved; the line "beit tokenizer CMD: precision ..." on log first, NULL: silent), then
 * encode: input's 'pixel_values' (beit_tokenizer_encode_file) or data's images
 * (beit_tokenizer_encode_dataset) as token grids into output; recon: input's 'tokens' decoded
 * into output (beit_tokenizer_decode_file), or data's images encoded and decoded
 * (beit_tokenizer_evaluate, grid drawn when set) with the result as one JSON line on out. One of
 * data and input. */
struct beit_tokenizer_io_options {
  int recon;                     /* 0 encode, 1 recon */
  const char *tokenizer, *data, *input, *output, *grid;
  size_t limit, grid_images;     /* images of data (0: all), images in the grid */
  enum beit_precision precision; /* requested */
  FILE *out, *log;
};
enum beit_status beit_tokenizer_io_run(const struct beit_tokenizer_io_options *opt,
                                       struct beit_error *err);

/* ---- Run policies (mim/precision_policy.c, mim/dist_policy.c) -------------------------------- */

/* Print "<prefix>precision bf16 (<note>); oneDNN 2.6.3 (ISA ...); OpenBLAS ... (fp32)" and a
 * newline: the resolved precision, a note (what was asked for) and beit_precision_describe.
 * out NULL prints nothing. */
void beit_precision_policy_print(FILE *out, const char *prefix, enum beit_precision resolved,
                                 const char *note);
/* An inference run's precision: requested resolved for this machine into *out (bf16 where the
 * CPU has none is an error naming the ISA), then "<prefix>precision R (requested Q); <backends>"
 * on log (beit_precision_policy_print; NULL: silent). */
enum beit_status beit_precision_policy_resolve(enum beit_precision *out,
                                               enum beit_precision requested, FILE *log,
                                               const char *prefix, struct beit_error *err);
/* "distributed.timeout_s=<seconds>" into buf (size bytes) for the --set list: --dist-timeout in
 * command-line order with the --set options, so the last one wins. USAGE as the parser. */
enum beit_status beit_dist_policy_timeout_set(const char *text, char *buf, size_t size,
                                              struct beit_error *err);

#endif
