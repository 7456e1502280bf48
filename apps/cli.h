/* Shared helpers of the `beit` subcommands: option parsing conventions and error reporting.
 * Exit codes (docs/commands/README.md): 0 success, 1 runtime error, 2 usage error. */
#ifndef BEIT_APPS_CLI_H
#define BEIT_APPS_CLI_H

#include <stdio.h>

#include "beit/mim.h"
#include "beit/precision.h"
#include "beit/status.h"

enum { BEIT_EXIT_OK = 0, BEIT_EXIT_RUNTIME = 1, BEIT_EXIT_USAGE = 2 };

/* Print "beit <cmd>: <message>" to stderr and return the exit code for err's status. */
int beit_cli_fail(const char *cmd, const struct beit_error *err);
/* Print a usage error and return BEIT_EXIT_USAGE. */
int beit_cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Rows of a getopt_long table: an option with a value, a flag, and the end (--help, then the
 * terminator). Codes 'h' and '?' are beit_cli_next's. */
#define BEIT_CLI_ARG(name, code) {name, required_argument, NULL, code}
#define BEIT_CLI_FLAG(name, code) {name, no_argument, NULL, code}
#define BEIT_CLI_END BEIT_CLI_FLAG("help", 'h'), {NULL, 0, NULL, 0}

/* The options loop of a command (set optind = 1 first):
 *     while (beit_cli_next(&c, argc, argv, opts, cmd, usage, &rc))
 *       switch (c) { its options; a bad value sets rc (beit_cli_number, ...) }
 *     if (rc != BEIT_CLI_GO_ON)
 *       return rc;
 * 1 with *c the next option (optarg its value) while *rc is BEIT_CLI_GO_ON; 0 at the end, and
 * when *rc is set: BEIT_EXIT_OK after --help (usage printed to stdout), BEIT_EXIT_USAGE after an
 * unknown option (reported), or what the command set. */
struct option;
int beit_cli_next(int *c, int argc, char **argv, const struct option *opts, const char *cmd,
                  const char *usage, int *rc);

/* An option's value as a number: text, whole, as a number in [lo, hi] (a base-10 integer when
 * integer) into *out, and BEIT_CLI_GO_ON; else *out untouched, a usage error printed from fmt
 * (printf; it names the option and the value) and BEIT_EXIT_USAGE. Integers up to 2^53 (exact in
 * a double): BEIT_CLI_INT_MAX. */
#define BEIT_CLI_INT_MAX 9007199254740992.0
int beit_cli_number(const char *cmd, const char *text, int integer, double lo, double hi,
                    double *out, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

/* The training commands' --out folder: --resume and --overwrite together print a usage error and
 * return BEIT_EXIT_USAGE; else 0. (A folder holding a previous run without either is refused by
 * the trainer, mim/trainer.h beit_trainer_prepare_out, before anything is written.) */
int beit_cli_check_out_mode(const char *cmd, int resume, int overwrite);

/* The KEY=VALUE overrides of a recipe, in command-line order so that the last one wins (over
 * the recipe too): --set KEY=VALUE as given, and the shortcut options (--precision P,
 * --dist-timeout S, fine-tuning's --task, --mixup, ...) as the KEY=VALUE they stand for. Each
 * adder checks its value; on a bad one or a full list it prints a usage error naming the option
 * and returns BEIT_EXIT_USAGE, else 0. */
#define BEIT_CLI_MAX_SETS 128
struct beit_cli_sets {
  const char *items[BEIT_CLI_MAX_SETS];
  int count;
  char shortcut[16][300];
  int nshort;
};
int beit_cli_set(struct beit_cli_sets *s, const char *cmd, const char *key_value);
/* KEY=VALUE from option --option's value */
int beit_cli_set_key(struct beit_cli_sets *s, const char *cmd, const char *key, const char *value);
/* --precision: auto|fp32|bf16 (also float32, bfloat16) -> precision=NAME */
int beit_cli_set_precision(struct beit_cli_sets *s, const char *cmd, const char *text);
/* --dist-timeout: seconds -> distributed.timeout_s=S */
int beit_cli_set_dist_timeout(struct beit_cli_sets *s, const char *cmd, const char *text);

/* The options every training command takes (pretrain, finetune, tokenizer train): --config,
 * --data, --eval-data, --out, --resume, --overwrite, --set, --precision, --dist-timeout, --help.
 * A command's option table starts with BEIT_CLI_TRAINING_OPTIONS, then its own options, with
 * codes other than c d e o r w s P T h. Its getopt loop reads:
 *     while (beit_cli_next(&c, argc, argv, opts, t.cmd, t.usage, &rc))
 *       if (!beit_cli_training_option(&t, c, optarg, &rc))
 *         switch (c) { its own options }
 *     struct beit_dist *dist = beit_cli_training_start(&t, &rc, &argc, &argv, "recipes");
 *     if (!dist)
 *       return rc;
 * and t.args is then the run's struct beit_train_args (include/beit/mim.h). */
#define BEIT_CLI_TRAINING_OPTIONS                                                              \
  BEIT_CLI_ARG("config", 'c'), BEIT_CLI_ARG("data", 'd'), BEIT_CLI_ARG("eval-data", 'e'),      \
      BEIT_CLI_ARG("out", 'o'), BEIT_CLI_FLAG("resume", 'r'), BEIT_CLI_FLAG("overwrite", 'w'), \
      BEIT_CLI_ARG("set", 's'), BEIT_CLI_ARG("precision", 'P'),                                \
      BEIT_CLI_ARG("dist-timeout", 'T'), BEIT_CLI_FLAG("help", 'h')
#define BEIT_CLI_GO_ON (-1)
struct beit_dist;
struct beit_cli_training {
  const char *cmd, *usage;              /* set by the command: its name and --help text */
  struct beit_train_args args;          /* filled from the options; sets by the finish */
  struct beit_cli_sets sets;            /* --set, --precision, --dist-timeout, the command's
                                           own shortcuts (beit_cli_set_key), in order */
  char config_path[4200];
};
/* One option of the loop: 1 when c is a shared option (handled; *rc becomes BEIT_EXIT_USAGE
 * after a printed usage error), 0 when it is the command's own. */
int beit_cli_training_option(struct beit_cli_training *t, int c, const char *arg, int *rc);
/* After the loop, with its rc: --config and --out given, no stray arguments, not both --resume
 * and --overwrite, config resolved as beit_cli_config_path(kind) into config_path, the sets in
 * args, and the job joined (beit_cli_dist_init). The job, or NULL with *rc the exit code to
 * return now (rc itself when it was not BEIT_CLI_GO_ON; BEIT_EXIT_USAGE after printing the
 * usage error). Reads optind. */
struct beit_dist *beit_cli_training_start(struct beit_cli_training *t, int *rc, int *argc,
                                          char ***argv, const char *kind);
/* The first line of a training run's summary (rank 0): "<what> done: N steps in S s<detail>",
 * with the step reached when the run was resumed, or that nothing was left to run. 1 when steps
 * ran (their training loss is worth printing), 0 otherwise. */
int beit_cli_training_print_done(const char *what, long steps, long steps_run, double seconds,
                                 const char *detail);
/* The last lines of a training run's summary (rank 0): the records the loader skipped, when
 * any, and the last checkpoint. */
void beit_cli_training_print_end(size_t skipped_records, size_t corrupt_records,
                                 const char *last_checkpoint);

/* --precision TEXT: auto|fp32|bf16 (also float32, bfloat16) into *out and BEIT_CLI_GO_ON;
 * otherwise a usage error printed and BEIT_EXIT_USAGE. */
int beit_cli_parse_precision(const char *cmd, const char *text, enum beit_precision *out);
/* --OPTION TEXT, one of two words: *out = 0 for first, 1 for second, and BEIT_CLI_GO_ON;
 * otherwise the usage error "--OPTION: 'TEXT' is not FIRST or SECOND" and BEIT_EXIT_USAGE. */
int beit_cli_choice(const char *cmd, const char *option, const char *text, const char *first,
                    const char *second, int *out);
/* An inference command's precision: requested resolved for this machine (bf16 where the CPU has
 * none is an error naming the ISA), then the run's first line "beit CMD: precision ... (requested
 * R); <backends>" on log (NULL: silent). */
enum beit_status beit_cli_resolve_precision(const char *cmd, enum beit_precision requested,
                                            FILE *log, enum beit_precision *out,
                                            struct beit_error *err);

/* A --config argument as a path: arg itself when it names a file or holds a '/'; else a shipped
 * config NAME (with or without .json) in configs/<kind>/ (kind "recipes" or "tokenizer") of the
 * installed share/beit beside this program (<bindir>/../share/beit), then of the source tree it
 * was built from. The result is arg or buf (size bytes); arg when nothing is found, so that the
 * error names what was given. */
const char *beit_cli_config_path(const char *arg, const char *kind, char *buf, size_t size);

struct beit_dist;
/* Join the job (an MPI job under mpirun/srun, else one rank). A failure ends every rank: MPI may
 * be half up. Call before any thread starts. */
struct beit_dist *beit_cli_dist_init(const char *cmd, int *argc, char ***argv);
/* Leave the job with the command's outcome st and return the exit code. A failure is reported,
 * and with several ranks it ends every rank now (MPI_Abort): the others would wait in their next
 * collective. Otherwise the ranks meet in a barrier first, under the job's deadline, so that a
 * rank stopped at the very end ends the job rather than hanging the others in MPI_Finalize. An
 * interrupt (SIGINT/SIGTERM, seen by every rank, final checkpoint written) is reported once, by
 * rank 0, and the job ends normally with exit code 1. */
int beit_cli_dist_end(const char *cmd, struct beit_dist *dist, enum beit_status st,
                      const struct beit_error *err);

/* The subcommands, in `beit --help` order, with their one-line summaries: X(name, summary) for
 * each; beit_cmd_<name>(argc, argv) runs one, argv[0] being the subcommand's name. */
#define BEIT_CLI_COMMANDS(X)                                                                    \
  X(pack, "build a dataset folder (HDF5 shards) from images, a manifest or Fashion-MNIST")       \
  X(tokenizer, "train a dVAE visual tokenizer; encode images to tokens; reconstruct")           \
  X(pretrain, "masked image modeling pretraining (MPI data parallel)")                          \
  X(info, "describe a model folder or config: parameters per group, FLOPs")                    \
  X(run, "raw tensors in, logits and hidden states out (safetensors)")                         \
  X(finetune, "fine-tune an encoder as a classifier (multi-class or multi-label)")              \
  X(eval, "classifier metrics on a dataset: top-1/5, per-class P/R/F1, mAP")                    \
  X(probe, "linear probe on frozen, average-pooled features of a block")                        \
  X(export, "encoder (or classifier) as an HF or timm folder")                                  \
  X(predict, "classify images, folders, datasets or JSON lines requests (JSON lines out)")      \
  X(serve, "HTTP endpoint: POST /score in the model card's JSON format, batched workers")       \
  X(plot, "PNG pictures: training curves of runs, the pretrained-vs-random table")
#define BEIT_CLI_DECLARE(name, summary) int beit_cmd_##name(int argc, char **argv);
BEIT_CLI_COMMANDS(BEIT_CLI_DECLARE)
#undef BEIT_CLI_DECLARE

#endif
