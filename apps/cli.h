/* Shared helpers of the `beit` subcommands: option parsing conventions and error reporting.
 * Exit codes (DESIGN.md 6): 0 success, 1 runtime error, 2 usage error. */
#ifndef BEIT_APPS_CLI_H
#define BEIT_APPS_CLI_H

#include "beit/status.h"

enum { BEIT_EXIT_OK = 0, BEIT_EXIT_RUNTIME = 1, BEIT_EXIT_USAGE = 2 };

/* Print "beit <cmd>: <message>" to stderr and return the exit code for err's status. */
int beit_cli_fail(const char *cmd, const struct beit_error *err);
/* Print a usage error and return BEIT_EXIT_USAGE. */
int beit_cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

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

#endif
