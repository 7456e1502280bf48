/* Shared helpers of the `beit` subcommands: option parsing conventions and error reporting.
 * Exit codes (docs/commands/README.md): 0 success, 1 runtime error, 2 usage error. */
#ifndef BEIT_APPS_CLI_H
#define BEIT_APPS_CLI_H

#include <stdio.h>

#include "beit/precision.h"
#include "beit/status.h"

enum { BEIT_EXIT_OK = 0, BEIT_EXIT_RUNTIME = 1, BEIT_EXIT_USAGE = 2 };

/* Print "beit <cmd>: <message>" to stderr and return the exit code for err's status. */
int beit_cli_fail(const char *cmd, const struct beit_error *err);
/* Print a usage error and return BEIT_EXIT_USAGE. */
int beit_cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* An option's value as a number: text, whole, as a base-10 integer (beit_cli_long) or a
 * floating-point number (beit_cli_double) in [lo, hi] into *out, and 0; else *out untouched, a
 * usage error printed from fmt (printf; it names the option and the value) and BEIT_EXIT_USAGE. */
int beit_cli_long(const char *cmd, const char *text, long lo, long hi, long *out,
                  const char *fmt, ...) __attribute__((format(printf, 6, 7)));
int beit_cli_double(const char *cmd, const char *text, double lo, double hi, double *out,
                    const char *fmt, ...) __attribute__((format(printf, 6, 7)));

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
 *     while (rc == BEIT_CLI_GO_ON && (c = getopt_long(...)) != -1)
 *       if (!beit_cli_training_option(&t, c, optarg, &rc))
 *         switch (c) { its own options; default: rc = beit_cli_usage_error(...); }
 *     if (rc == BEIT_CLI_GO_ON)
 *       rc = beit_cli_training_finish(&t, argc, "recipes");
 *     if (rc != BEIT_CLI_GO_ON)
 *       return rc; */
#define BEIT_CLI_TRAINING_OPTIONS                                                              \
  {"config", required_argument, NULL, 'c'}, {"data", required_argument, NULL, 'd'},            \
      {"eval-data", required_argument, NULL, 'e'}, {"out", required_argument, NULL, 'o'},      \
      {"resume", no_argument, NULL, 'r'}, {"overwrite", no_argument, NULL, 'w'},               \
      {"set", required_argument, NULL, 's'}, {"precision", required_argument, NULL, 'P'},      \
      {"dist-timeout", required_argument, NULL, 'T'}, {"help", no_argument, NULL, 'h'}
#define BEIT_CLI_GO_ON (-1)
struct beit_cli_training {
  const char *cmd, *usage;              /* set by the command: its name and --help text */
  const char *config, *data, *eval_data, *out;
  int resume, overwrite;
  struct beit_cli_sets sets;            /* --set, --precision, --dist-timeout, the command's
                                           own shortcuts (beit_cli_set_key), in order */
  char config_path[4200];
};
/* One option of the loop: 1 when c is a shared option (handled; *rc becomes an exit code when
 * the command is to return now: 0 after --help, BEIT_EXIT_USAGE after a printed usage error),
 * 0 when it is the command's own. */
int beit_cli_training_option(struct beit_cli_training *t, int c, const char *arg, int *rc);
/* After the loop: --config and --out given, no stray arguments, not both --resume and
 * --overwrite, and config resolved as beit_cli_config_path(kind) into config_path. BEIT_CLI_GO_ON,
 * or BEIT_EXIT_USAGE after printing the usage error. Reads optind. */
int beit_cli_training_finish(struct beit_cli_training *t, int argc, const char *kind);

/* --precision TEXT: auto|fp32|bf16 (also float32, bfloat16) into *out; otherwise print a usage
 * error and return BEIT_EXIT_USAGE. 0 on success. */
int beit_cli_parse_precision(const char *cmd, const char *text, enum beit_precision *out);
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

/* Subcommands: each takes argv with argv[0] = subcommand name. */
int beit_cmd_info(int argc, char **argv);
int beit_cmd_run(int argc, char **argv);
int beit_cmd_pack(int argc, char **argv);
int beit_cmd_predict(int argc, char **argv);
int beit_cmd_serve(int argc, char **argv);
int beit_cmd_pretrain(int argc, char **argv);
int beit_cmd_finetune(int argc, char **argv);
int beit_cmd_eval(int argc, char **argv);
int beit_cmd_probe(int argc, char **argv);
int beit_cmd_export(int argc, char **argv);
int beit_cmd_tokenizer(int argc, char **argv);
int beit_cmd_plot(int argc, char **argv);

#endif
