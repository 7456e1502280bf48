/* A growable NUL-terminated string for JSON and text written by hand (safetensors headers,
 * serve's responses). An allocation failure sets oom and drops later writes; check oom once at
 * the end. A zeroed struct is an empty string. */
#ifndef BEIT_CORE_STRBUF_H
#define BEIT_CORE_STRBUF_H

#include <stddef.h>

struct beit_strbuf {
  char *data;
  size_t len, cap;
  int oom;
};
void beit_strbuf_append(struct beit_strbuf *b, const char *s, size_t n);
void beit_strbuf_puts(struct beit_strbuf *b, const char *s);
void beit_strbuf_printf(struct beit_strbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* s as a JSON string literal, quotes included (control characters escaped). */
void beit_strbuf_json_string(struct beit_strbuf *b, const char *s);
void beit_strbuf_free(struct beit_strbuf *b);

/* Whether s ends with suffix (lengths counted, not written by hand). */
int beit_str_ends_with(const char *s, const char *suffix);

#endif
