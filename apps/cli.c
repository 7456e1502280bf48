/* Error reporting shared by the subcommands. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "beit/distributed.h"

int beit_cli_fail(const char *cmd, const struct beit_error *err)
{
  fprintf(stderr, "beit %s: error: %s\n", cmd,
          err->message[0] ? err->message : beit_status_message(err->status));
  return err->status == BEIT_STATUS_USAGE ? BEIT_EXIT_USAGE : BEIT_EXIT_RUNTIME;
}

static int usage_error_v(const char *cmd, const char *fmt, va_list ap);

int beit_cli_usage_error(const char *cmd, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  usage_error_v(cmd, fmt, ap);
  va_end(ap);
  return BEIT_EXIT_USAGE;
}

/* Print "beit <cmd>: <fmt...>" and the --help hint. */
static int usage_error_v(const char *cmd, const char *fmt, va_list ap)
{
  fprintf(stderr, "beit %s: ", cmd);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n(see 'beit %s --help')\n", cmd);
  return BEIT_EXIT_USAGE;
}

int beit_cli_number(const char *cmd, const char *text, int integer, double lo, double hi,
                    double *out, const char *fmt, ...)
{
  char *end;
  double v;
  errno = 0;
  if (integer)
    v = (double)strtoll(text, &end, 10);
  else
    v = strtod(text, &end);
  if (!*end && end != text && !(integer && errno) && v >= lo && v <= hi) {
    *out = v;
    return BEIT_CLI_GO_ON;
  }
  va_list ap;
  va_start(ap, fmt);
  usage_error_v(cmd, fmt, ap);
  va_end(ap);
  return BEIT_EXIT_USAGE;
}

int beit_cli_next(int *c, int argc, char **argv, const struct option *opts, const char *cmd,
                  const char *usage, int *rc)
{
  if (*rc != BEIT_CLI_GO_ON || (*c = getopt_long(argc, argv, "h", opts, NULL)) == -1)
    return 0;
  if (*c == 'h') {
    fputs(usage, stdout);
    *rc = BEIT_EXIT_OK;
  } else if (*c == '?' || *c == ':') {
    *rc = beit_cli_usage_error(cmd, "unknown option");
  }
  return *rc == BEIT_CLI_GO_ON;
}

struct beit_dist *beit_cli_dist_init(const char *cmd, int *argc, char ***argv)
{
  struct beit_error err = {0};
  struct beit_dist *dist = NULL;
  if (beit_dist_init(&dist, argc, argv, &err)) {
    char message[sizeof err.message + 64];
    snprintf(message, sizeof message, "beit %s: %s", cmd, err.message);
    beit_dist_abort(NULL, BEIT_EXIT_RUNTIME, message);
  }
  return dist;
}

int beit_cli_dist_end(const char *cmd, struct beit_dist *dist, enum beit_status st,
                      const struct beit_error *err)
{
  int code = BEIT_EXIT_OK;
  struct beit_error berr = {0};
  if ((!st || st == BEIT_STATUS_INTERRUPTED) && beit_dist_world_size(dist) > 1) {
    beit_dist_set_context(dist, "at the end of the job");
    if (beit_dist_barrier(dist, &berr)) { /* a deadline passed: a rank is stopped or stuck */
      st = berr.status;
      err = &berr;
    }
  }
  if (st == BEIT_STATUS_INTERRUPTED) {
    if (beit_dist_is_root(dist))
      fprintf(stderr, "beit %s: %s\n", cmd, err->message);
    code = BEIT_EXIT_RUNTIME;
  } else if (st) {
    if (beit_dist_world_size(dist) > 1) {
      char message[sizeof err->message + 64];
      snprintf(message, sizeof message, "beit %s: error: %s", cmd, err->message);
      beit_dist_abort(dist, st == BEIT_STATUS_USAGE ? BEIT_EXIT_USAGE : BEIT_EXIT_RUNTIME,
                      message);
    }
    code = beit_cli_fail(cmd, err);
  }
  beit_dist_finalize(dist);
  return code;
}

int beit_cli_set(struct beit_cli_sets *s, const char *cmd, const char *key_value)
{
  if (s->count == BEIT_CLI_MAX_SETS)
    return beit_cli_usage_error(cmd, "more than %d --set and shortcut options",
                                BEIT_CLI_MAX_SETS);
  s->items[s->count++] = key_value;
  return 0;
}

/* The next shortcut's buffer, or NULL (a usage error printed) when all are taken. */
static char *next_shortcut(struct beit_cli_sets *s, const char *cmd)
{
  int n = (int)(sizeof s->shortcut / sizeof s->shortcut[0]);
  if (s->nshort == n) {
    beit_cli_usage_error(cmd, "more than %d shortcut options (--precision, --dist-timeout, ...)",
                         n);
    return NULL;
  }
  return s->shortcut[s->nshort++];
}

int beit_cli_set_key(struct beit_cli_sets *s, const char *cmd, const char *key, const char *value)
{
  char *buf = next_shortcut(s, cmd);
  if (!buf)
    return BEIT_EXIT_USAGE;
  snprintf(buf, sizeof s->shortcut[0], "%s=%s", key, value);
  return beit_cli_set(s, cmd, buf);
}

int beit_cli_set_precision(struct beit_cli_sets *s, const char *cmd, const char *text)
{
  enum beit_precision p;
  if (beit_cli_parse_precision(cmd, text, &p) != BEIT_CLI_GO_ON)
    return BEIT_EXIT_USAGE;
  return beit_cli_set_key(s, cmd, "precision", beit_precision_name(p));
}

int beit_cli_set_dist_timeout(struct beit_cli_sets *s, const char *cmd, const char *text)
{
  struct beit_error err = {0};
  char *buf = next_shortcut(s, cmd);
  if (!buf)
    return BEIT_EXIT_USAGE;
  if (beit_dist_policy_timeout_set(text, buf, sizeof s->shortcut[0], &err))
    return beit_cli_usage_error(cmd, "%s", err.message);
  return beit_cli_set(s, cmd, buf);
}

int beit_cli_training_option(struct beit_cli_training *t, int c, const char *arg, int *rc)
{
  switch (c) {
  case 'c': t->args.config = arg; break;
  case 'd': t->args.data = arg; break;
  case 'e': t->args.eval_data = arg; break;
  case 'o': t->args.out = arg; break;
  case 'r': t->args.resume = 1; break;
  case 'w': t->args.overwrite = 1; break;
  case 's':
    if (beit_cli_set(&t->sets, t->cmd, arg))
      *rc = BEIT_EXIT_USAGE;
    break;
  case 'P':
    if (beit_cli_set_precision(&t->sets, t->cmd, arg))
      *rc = BEIT_EXIT_USAGE;
    break;
  case 'T':
    if (beit_cli_set_dist_timeout(&t->sets, t->cmd, arg))
      *rc = BEIT_EXIT_USAGE;
    break;
  default: return 0;
  }
  return 1;
}

struct beit_dist *beit_cli_training_start(struct beit_cli_training *t, int *rc, int *argc,
                                          char ***argv, const char *kind)
{
  struct beit_train_args *a = &t->args;
  if (*rc != BEIT_CLI_GO_ON)
    return NULL;
  if (!a->config || !a->out || optind != *argc) {
    *rc = beit_cli_usage_error(t->cmd, "--config and --out are required (and no other "
                               "arguments)");
    return NULL;
  }
  if (beit_cli_check_out_mode(t->cmd, a->resume, a->overwrite)) {
    *rc = BEIT_EXIT_USAGE;
    return NULL;
  }
  a->config = beit_cli_config_path(a->config, kind, t->config_path, sizeof t->config_path);
  a->sets = t->sets.items;
  a->nsets = t->sets.count;
  return beit_cli_dist_init(t->cmd, argc, argv);
}

int beit_cli_training_print_done(const char *what, long steps, long steps_run, double seconds,
                                 const char *detail)
{
  if (steps_run == 0) {
    printf("%s done: nothing to run, the run was already complete at step %ld\n", what, steps);
    return 0;
  }
  printf("%s done: %ld steps in %.1f s%s", what, steps_run, seconds, detail);
  if (steps_run != steps)
    printf(" (resumed; now at step %ld)", steps);
  printf("\n");
  return 1;
}

void beit_cli_training_print_end(size_t skipped_records, size_t corrupt_records,
                                 const char *last_checkpoint)
{
  if (skipped_records || corrupt_records)
    printf("  data               %zu records skipped, %zu found failing their shard checksum "
           "(stderr names each)\n", skipped_records, corrupt_records);
  printf("  checkpoint         %s\n", last_checkpoint);
}

int beit_cli_check_out_mode(const char *cmd, int resume, int overwrite)
{
  if (resume && overwrite)
    return beit_cli_usage_error(cmd, "--resume (continue the run in --out) and --overwrite "
                                "(start it again) exclude each other");
  return 0;
}

int beit_cli_parse_precision(const char *cmd, const char *text, enum beit_precision *out)
{
  struct beit_error err = {0};
  if (beit_precision_parse(out, text, &err))
    return beit_cli_usage_error(cmd, "--precision: '%s' is not auto, fp32 or bf16", text);
  return BEIT_CLI_GO_ON;
}

int beit_cli_choice(const char *cmd, const char *option, const char *text, const char *first,
                    const char *second, int *out)
{
  if (strcmp(text, first) && strcmp(text, second))
    return beit_cli_usage_error(cmd, "--%s: '%s' is not %s or %s", option, text, first, second);
  *out = !strcmp(text, second);
  return BEIT_CLI_GO_ON;
}

enum beit_status beit_cli_resolve_precision(const char *cmd, enum beit_precision requested,
                                            FILE *log, enum beit_precision *out,
                                            struct beit_error *err)
{
  char prefix[64];
  snprintf(prefix, sizeof prefix, "beit %s: ", cmd);
  return beit_precision_policy_resolve(out, requested, log, prefix, err);
}

const char *beit_cli_config_path(const char *arg, const char *kind, char *buf, size_t size)
{
  if (strchr(arg, '/') || access(arg, F_OK) == 0)
    return arg;
  char roots[2][4200];
  size_t nroots = 0;
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash) { /* the installed layout: <prefix>/bin/beit, <prefix>/share/beit/configs */
      *slash = '\0';
      snprintf(roots[nroots++], sizeof roots[0], "%s/%s", self, BEIT_DATA_FROM_BIN);
    }
  }
  snprintf(roots[nroots++], sizeof roots[0], "%s", BEIT_SOURCE_DIR);
  for (size_t i = 0; i < nroots; i++)
    for (int json = 0; json < 2; json++) {
      if ((size_t)snprintf(buf, size, "%s/configs/%s/%s%s", roots[i], kind, arg,
                           json ? ".json" : "") < size &&
          access(buf, R_OK) == 0)
        return buf;
    }
  return arg;
}
