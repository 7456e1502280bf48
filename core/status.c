/* Status names/messages from the X-macro list, and the error-buffer helpers. */
#include "beit/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const status_names[] = {
#define NAME_(name, msg) #name,
    BEIT_STATUS_MAP(NAME_)
#undef NAME_
};

static const char *const status_messages[] = {
#define MSG_(name, msg) msg,
    BEIT_STATUS_MAP(MSG_)
#undef MSG_
};

const char *beit_status_name(enum beit_status status)
{
  if ((unsigned)status >= BEIT_STATUS_COUNT_)
    return "UNKNOWN";
  return status_names[status];
}

const char *beit_status_message(enum beit_status status)
{
  if ((unsigned)status >= BEIT_STATUS_COUNT_)
    return "unknown status";
  return status_messages[status];
}

enum beit_status beit_error_set(struct beit_error *err, enum beit_status status,
                                const char *fmt, ...)
{
  if (!err)
    return status;
  err->status = status;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
  return status;
}

void beit_error_prefix(struct beit_error *err, const char *fmt, ...)
{
  if (!err)
    return;
  char prefix[512], old[sizeof err->message];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, err->message, sizeof old);
  snprintf(err->message, sizeof err->message, "%s%s", prefix, old);
}

void beit_error_clear(struct beit_error *err)
{
  if (!err)
    return;
  err->status = BEIT_STATUS_OK;
  err->message[0] = '\0';
}

void beit_assert_fail(const char *cond, const char *file, int line)
{
  fprintf(stderr, "beit: internal error: %s:%d: assertion '%s' failed\n", file, line, cond);
  abort();
}
