/* Stand-in for http_mhd.c when BEIT_BUILD_SERVER is off: `beit serve` reports UNSUPPORTED. */
#include "serve.h"

struct beit_server {
  int unused;
};

enum beit_status beit_serve_start(struct beit_server **out, const struct beit_serve_options *opt,
                                  struct beit_error *err)
{
  *out = NULL;
  return beit_error_set(err, BEIT_STATUS_UNSUPPORTED,
                        "this build has no HTTP server (configure with -DBEIT_BUILD_SERVER=ON "
                        "and libmicrohttpd-dev)");
}

enum beit_status beit_serve_tls_load(const char *cert_path, const char *key_path, char **cert_pem,
                                     char **key_pem, int *key_shared, struct beit_error *err)
{
  *cert_pem = *key_pem = NULL;
  return beit_error_set(err, BEIT_STATUS_UNSUPPORTED, "this build has no HTTP server, so no TLS");
}

int beit_serve_port(const struct beit_server *srv) { return 0; }

enum beit_status beit_serve_attach(struct beit_server *srv, struct beit_infer *inf,
                                   struct beit_error *err)
{
  return beit_error_set(err, BEIT_STATUS_UNSUPPORTED, "this build has no HTTP server");
}

void beit_serve_stats(const struct beit_server *srv, struct beit_serve_stats *stats)
{
  *stats = (struct beit_serve_stats){0};
}

void beit_serve_drain(struct beit_server *srv) {}

size_t beit_serve_drain_wait(struct beit_server *srv, double deadline) { return 0; }

void beit_serve_stop(struct beit_server *srv) {}
