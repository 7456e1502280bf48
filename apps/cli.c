/* Error reporting shared by the subcommands. */
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>

int beit_cli_fail(const char *cmd, const struct beit_error *err)
{
  fprintf(stderr, "beit %s: error: %s\n", cmd,
          err->message[0] ? err->message : beit_status_message(err->status));
  return err->status == BEIT_STATUS_USAGE ? BEIT_EXIT_USAGE : BEIT_EXIT_RUNTIME;
}

int beit_cli_usage_error(const char *cmd, const char *fmt, ...)
{
  va_list ap;
  fprintf(stderr, "beit %s: ", cmd);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n(see 'beit %s --help')\n", cmd);
  return BEIT_EXIT_USAGE;
}
