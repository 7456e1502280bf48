/* The `beit` command: dispatch to subcommands. */
#define _GNU_SOURCE /* setenv, readlink */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "beit/precision.h"
#include "beit/version.h"
#include "cli.h"

struct command {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
};

/* One line per subcommand (cli.h BEIT_CLI_COMMANDS). */
#define BEIT_CLI_ROW(name, summary) {#name, beit_cmd_##name, summary},
static const struct command commands[] = {BEIT_CLI_COMMANDS(BEIT_CLI_ROW)};
#undef BEIT_CLI_ROW

static void usage(FILE *out)
{
  fprintf(out, "usage: beit <command> [options]   (beit <command> --help for details)\n"
               "       beit help <command>           (the same)\n"
               "       beit --version\n\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf(out,
          "\n"
          "  --version  version, git commit and build options (as of configure time), and the\n"
          "             matrix-product backends found at run time (oneDNN and its ISA, OpenBLAS)\n"
          "\n"
          "Install: cmake --install build --prefix P puts beit in P/bin, the shipped configs\n"
          "and the Python tools in P/share/beit/{configs,tools}. An installed beit takes a\n"
          "shipped recipe by name (beit pretrain --config pretrain_fashion_mnist ...) or by\n"
          "its path; paths inside a recipe are relative to the recipe file (then to the\n"
          "current folder).\n");
}

/* "pack, tokenizer, ..., plot" */
static void list_commands(FILE *out)
{
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(out, "%s%s", i ? ", " : "", commands[i].name);
}

/* beit help CMD: exactly what `beit CMD --help` prints (the command's own text). */
static int help(int argc, char **argv)
{
  if (argc == 1)
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
      if (!strcmp(argv[0], commands[i].name)) {
        char help_opt[] = "--help";
        char *args[] = {argv[0], help_opt, NULL};
        return commands[i].run(2, args);
      }
  if (argc == 1)
    fprintf(stderr, "beit help: unknown command '%s'", argv[0]);
  else
    fprintf(stderr, "beit help: expected one command, got %d arguments", argc);
  fprintf(stderr, "\ncommands: ");
  list_commands(stderr);
  fprintf(stderr, "\n(see 'beit --help')\n");
  return BEIT_EXIT_USAGE;
}

/* beit --version: what trainer_state.json and metrics.jsonl record, and the backends. */
static void version(void)
{
  char backend[512];
  beit_precision_describe(backend, sizeof backend);
  printf("beit %s\n", beit_version_string());
  printf("commit   %s\n", beit_version_commit());
  printf("build    %s\n", beit_version_build());
  printf("backend  %s\n", backend);
}

/* libgomp reads GOMP_SPINCOUNT once, as it is loaded, before main. Its default makes a thread
 * that waits at a barrier spin 300000 times before it sleeps, burning the core a preempted peer
 * needs; when other threads share the cores (data loader workers, HTTP connections, another
 * job) that costs a lot: with one busy process beside it, BEiT-base batch-1 inference on 2
 * cores took 709-825 ms with the default, 550-577 ms with 10000 spins, and was no slower with
 * nothing beside it. Unless the user chose (GOMP_SPINCOUNT or OMP_WAIT_POLICY set), run this
 * program again with GOMP_SPINCOUNT=10000: same pid, same arguments, before any thread or MPI
 * starts. */
static void prefer_short_spin(char **argv)
{
  if (getenv("GOMP_SPINCOUNT") || getenv("OMP_WAIT_POLICY"))
    return;
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0)
    return;
  self[n] = '\0';
  if (setenv("GOMP_SPINCOUNT", "10000", 1))
    return;
  execv(self, argv); /* returns only on failure: go on with libgomp's default */
}

int main(int argc, char **argv)
{
  /* A write past the file size limit (ulimit -f) fails with EFBIG, which the writer reports
   * naming the file, instead of killing the process with SIGXFSZ mid-checkpoint. */
  signal(SIGXFSZ, SIG_IGN);
  prefer_short_spin(argv);
  beit_flush_denormals(); /* before any thread starts, so that every thread inherits it */
  if (argc < 2) {
    usage(stderr);
    return BEIT_EXIT_USAGE;
  }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
      (!strcmp(argv[1], "help") && argc == 2)) {
    usage(stdout);
    return BEIT_EXIT_OK;
  }
  if (!strcmp(argv[1], "help"))
    return help(argc - 2, argv + 2);
  if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
    version();
    return BEIT_EXIT_OK;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (!strcmp(argv[1], commands[i].name))
      return commands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "beit: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return BEIT_EXIT_USAGE;
}
