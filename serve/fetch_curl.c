/* URL inputs through libcurl: http and https only (also across redirects), a size cap enforced
 * both from Content-Length and while streaming, one overall timeout, no signals (threads), and
 * no connection to a loopback, private, link-local or otherwise non-public address unless
 * allowed: the address is checked as the socket is opened, after DNS, for every connection of
 * the transfer (redirects included), so neither a redirect nor a rebinding DNS answer reaches
 * the metadata service or the internal network. fetch_stub.c stands in without libcurl. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "serve.h"

struct sink {
  uint8_t *data;
  size_t size, cap, max;
  int too_large, oom;
};

static size_t on_data(char *ptr, size_t one, size_t n, void *arg)
{
  struct sink *s = arg;
  n *= one;
  if (s->size + n > s->max) {
    s->too_large = 1;
    return 0; /* aborts the transfer */
  }
  if (s->size + n > s->cap) {
    size_t cap = s->cap ? s->cap : 65536;
    while (cap < s->size + n)
      cap *= 2;
    if (cap > s->max)
      cap = s->max;
    uint8_t *p = realloc(s->data, cap);
    if (!p) {
      s->oom = 1;
      return 0;
    }
    s->data = p;
    s->cap = cap;
  }
  memcpy(s->data + s->size, ptr, n);
  s->size += n;
  return n;
}

struct guard {
  int allow_private, blocked;
  char address[INET6_ADDRSTRLEN];
};

static curl_socket_t open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
  struct guard *g = arg;
  (void)purpose;
  if (!g->allow_private && !beit_infer_address_public(&a->addr)) {
    const void *ip = a->family == AF_INET6
                         ? (const void *)&((struct sockaddr_in6 *)&a->addr)->sin6_addr
                         : (const void *)&((struct sockaddr_in *)&a->addr)->sin_addr;
    if (!inet_ntop(a->family, ip, g->address, sizeof g->address))
      snprintf(g->address, sizeof g->address, "?");
    g->blocked = 1;
    return CURL_SOCKET_BAD;
  }
  return socket(a->family, a->socktype, a->protocol);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static int scheme_ok(const char *url)
{
  return !strncasecmp(url, "http://", 7) || !strncasecmp(url, "https://", 8);
}

enum beit_status beit_infer_fetch_url(const char *url, size_t max_bytes, double timeout_s,
                                      int allow_private, uint8_t **data, size_t *size,
                                      struct beit_error *err)
{
  *data = NULL;
  *size = 0;
  if (!scheme_ok(url))
    return beit_error_set(err, BEIT_STATUS_UNSUPPORTED, "only http:// and https:// URLs are fetched");
  pthread_once(&curl_once, curl_init_once);
  CURL *c = curl_easy_init();
  if (!c)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "cannot start a URL transfer");
  struct sink s = {NULL, 0, 0, max_bytes, 0, 0};
  struct guard g = {allow_private, 0, ""};
  char errbuf[CURL_ERROR_SIZE] = "";
  long ms = (long)(timeout_s * 1000.0);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 3L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, ms > 0 ? ms : 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, ms > 0 ? ms : 1L);
  curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max_bytes);
  curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "beit-serve/1");
  curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_socket);
  curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, &g);
  CURLcode rc = curl_easy_perform(c);
  long http = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http);
  curl_easy_cleanup(c);
  enum beit_status st = BEIT_STATUS_OK;
  if (g.blocked)
    st = beit_error_set(err, BEIT_STATUS_UNSUPPORTED,
                        "URL fetch refused: the host resolves to %s, not a public address "
                        "(--allow-private-urls permits loopback and private networks)", g.address);
  else if (s.too_large || rc == CURLE_FILESIZE_EXCEEDED)
    st = beit_error_set(err, BEIT_STATUS_USAGE, "URL body larger than the cap of %zu bytes", max_bytes);
  else if (s.oom)
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "URL body: out of memory");
  else if (rc == CURLE_UNSUPPORTED_PROTOCOL)
    st = beit_error_set(err, BEIT_STATUS_UNSUPPORTED, "URL fetch refused: only http and https");
  else if (rc == CURLE_OPERATION_TIMEDOUT)
    st = beit_error_set(err, BEIT_STATUS_INTERRUPTED, "URL fetch timed out after %.3g s", timeout_s);
  else if (rc == CURLE_HTTP_RETURNED_ERROR)
    st = beit_error_set(err, BEIT_STATUS_IO, "URL fetch failed: HTTP status %ld", http);
  else if (rc != CURLE_OK)
    st = beit_error_set(err, BEIT_STATUS_IO, "URL fetch failed: %s",
                        errbuf[0] ? errbuf : curl_easy_strerror(rc));
  else if (s.size == 0)
    st = beit_error_set(err, BEIT_STATUS_IO, "URL fetch returned no bytes");
  if (st) {
    free(s.data);
    return st;
  }
  *data = s.data;
  *size = s.size;
  return BEIT_STATUS_OK;
}
