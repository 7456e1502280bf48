/* The growable string (strbuf.h). */
#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int grow(struct beit_strbuf *b, size_t extra)
{
  if (b->oom)
    return -1;
  if (b->len + extra + 1 <= b->cap)
    return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + extra + 1)
    cap *= 2;
  char *p = realloc(b->data, cap);
  if (!p) {
    b->oom = 1;
    return -1;
  }
  b->data = p;
  b->cap = cap;
  return 0;
}

void beit_strbuf_append(struct beit_strbuf *b, const char *s, size_t n)
{
  if (grow(b, n))
    return;
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
}

void beit_strbuf_puts(struct beit_strbuf *b, const char *s) { beit_strbuf_append(b, s, strlen(s)); }

void beit_strbuf_printf(struct beit_strbuf *b, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || grow(b, (size_t)n))
    return;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void beit_strbuf_json_string(struct beit_strbuf *b, const char *s)
{
  beit_strbuf_append(b, "\"", 1);
  const char *run = s;
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c >= 0x20 && c != '"' && c != '\\')
      continue;
    beit_strbuf_append(b, run, (size_t)(s - run));
    if (c == '"')
      beit_strbuf_puts(b, "\\\"");
    else if (c == '\\')
      beit_strbuf_puts(b, "\\\\");
    else if (c == '\n')
      beit_strbuf_puts(b, "\\n");
    else
      beit_strbuf_printf(b, "\\u%04x", c);
    run = s + 1;
  }
  beit_strbuf_append(b, run, (size_t)(s - run));
  beit_strbuf_append(b, "\"", 1);
}

void beit_strbuf_free(struct beit_strbuf *b)
{
  free(b->data);
  memset(b, 0, sizeof *b);
}

int beit_str_ends_with(const char *s, const char *suffix)
{
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && !strcmp(s + n - k, suffix);
}
