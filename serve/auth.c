/* Access to the server: the bearer token (read from a file, checked on every request but the
 * probes) and the small-file reader the token and the TLS files share. Not the HTTP layer: that
 * is http_mhd.c, which calls beit_serve_auth_check before it reads a request's body.
 *
 * Hazard: the token comparison must not tell an attacker how much of a guess was right. It
 * reads every byte of a fixed-size, zero-padded copy of the token whatever the guess is, and
 * folds the differences with OR, so its time depends on neither where the first difference is
 * nor either length. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "serve.h"

enum beit_status beit_serve_file_read(const char *path, const char *what, size_t max, char **out,
                                      size_t *len, int *shared, struct beit_error *err)
{
  *out = NULL;
  *len = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return beit_error_set(err, BEIT_STATUS_IO, "%s %s: cannot open: %s", what, path,
                          strerror(errno));
  enum beit_status st = BEIT_STATUS_OK;
  struct stat sb;
  char *buf = NULL;
  if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
    st = beit_error_set(err, BEIT_STATUS_IO, "%s %s: not a regular file", what, path);
    goto close_fd;
  }
  if ((size_t)sb.st_size > max) {
    st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s %s: %lld bytes, more than the %zu allowed",
                        what, path, (long long)sb.st_size, max);
    goto close_fd;
  }
  if (!(buf = malloc(max + 1))) {
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "%s %s: out of memory", what, path);
    goto close_fd;
  }
  size_t n = 0;
  for (;;) { /* read to EOF: the size may change under us (a rotated secret) */
    ssize_t got = read(fd, buf + n, max + 1 - n);
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0) {
      st = beit_error_set(err, BEIT_STATUS_IO, "%s %s: read: %s", what, path, strerror(errno));
      goto free_buf;
    }
    if (got == 0)
      break;
    n += (size_t)got;
    if (n > max) {
      st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s %s: more than the %zu bytes allowed",
                          what, path, max);
      goto free_buf;
    }
  }
  buf[n] = '\0';
  *out = buf;
  *len = n;
  *shared = (sb.st_mode & (S_IRGRP | S_IROTH)) != 0;
  goto close_fd;
free_buf:
  explicit_bzero(buf, max + 1);
  free(buf);
close_fd:
  close(fd);
  return st;
}

void beit_serve_secret_free(char *secret)
{
  if (!secret)
    return;
  explicit_bzero(secret, strlen(secret));
  free(secret);
}

enum beit_status beit_serve_token_load(const char *path, char **token, int *shared,
                                       struct beit_error *err)
{
  static const char what[] = "--auth-token-file";
  size_t n;
  char *buf;
  *token = NULL;
  /* room for the token and a CRLF; longer files are refused by the reader */
  enum beit_status st = beit_serve_file_read(path, what, BEIT_SERVE_TOKEN_MAX + 2, &buf, &n,
                                             shared, err);
  if (st)
    return st;
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
    buf[--n] = '\0';
  if (n == 0) {
    st = beit_error_set(err, BEIT_STATUS_CONFIG, "%s %s: the token is empty", what, path);
    goto wipe;
  }
  if (n > BEIT_SERVE_TOKEN_MAX) {
    st = beit_error_set(err, BEIT_STATUS_CONFIG, "%s %s: the token is longer than %d bytes",
                        what, path, BEIT_SERVE_TOKEN_MAX);
    goto wipe;
  }
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)buf[i];
    if (ch < 0x21 || ch > 0x7e) { /* what an HTTP header carries intact; the offset, not the byte */
      st = beit_error_set(err, BEIT_STATUS_CONFIG, "%s %s: byte %zu of the token is not visible "
                          "ASCII (a space, a control character, a second line or UTF-8); a "
                          "token is one line of letters, digits and punctuation", what, path, i);
      goto wipe;
    }
  }
  *token = buf;
  return BEIT_STATUS_OK;
wipe:
  beit_serve_secret_free(buf);
  return st;
}

void beit_serve_token_set(struct beit_serve_token *tok, const char *token)
{
  memset(tok->bytes, 0, sizeof tok->bytes);
  size_t n = strlen(token);
  tok->len = n < sizeof tok->bytes ? n : sizeof tok->bytes;
  memcpy(tok->bytes, token, tok->len);
}

int beit_serve_token_equal(const struct beit_serve_token *tok, const char *got, size_t m)
{
  unsigned diff = tok->len != m; /* a flag, not a branch */
  for (size_t i = 0; i < sizeof tok->bytes; i++) {
    /* i < m depends only on the attacker's own length; bytes past the token are zeros, which
     * no guess of visible characters matches */
    unsigned char g = i < m ? (unsigned char)got[i] : 0;
    diff |= (unsigned)(tok->bytes[i] ^ g);
  }
  /* keep the compiler from turning the loop into an early exit */
  volatile unsigned result = diff;
  return result == 0;
}

enum beit_serve_auth beit_serve_auth_check(const struct beit_serve_token *tok, const char *header)
{
  if (!header)
    return BEIT_SERVE_AUTH_MISSING;
  static const char scheme[] = "bearer";
  if (strncasecmp(header, scheme, sizeof scheme - 1) ||
      (header[sizeof scheme - 1] != ' ' && header[sizeof scheme - 1] != '\t'))
    return BEIT_SERVE_AUTH_MALFORMED;
  const char *p = header + sizeof scheme - 1;
  while (*p == ' ' || *p == '\t')
    p++;
  size_t m = strlen(p);
  while (m > 0 && (p[m - 1] == ' ' || p[m - 1] == '\t'))
    m--;
  if (m == 0)
    return BEIT_SERVE_AUTH_MALFORMED;
  return beit_serve_token_equal(tok, p, m) ? BEIT_SERVE_AUTH_OK : BEIT_SERVE_AUTH_WRONG;
}
