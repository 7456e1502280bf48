/* The HTTP/1.1 endpoint on libmicrohttpd: POST /score, GET /health, /ready, /metadata, over
 * plain TCP or TLS (GnuTLS inside libmicrohttpd). http_stub.c stands in when BEIT_BUILD_SERVER
 * is off.
 *
 * Access: with a token every request but the probes (GET/HEAD /health and /ready, which load
 * balancers and Azure ML call without credentials) must carry "Authorization: Bearer <token>";
 * the check runs on the headers, before any body is read, and a refusal closes the connection.
 * A non-loopback address without a token is refused at start unless no_auth says otherwise.
 *
 * Threads: MHD runs one thread per connection (a connection limit bounds them). That thread
 * reads the body (capped), and on the last call of the access handler scores it: parse, decode
 * and preprocess on this thread, then wait for the batching workers. Blocking there is what
 * thread-per-connection mode allows, and it is what lets requests arriving together be batched
 * together: every waiting request is in the queue at once. Binds 127.0.0.1 unless told
 * otherwise; IPv4 and IPv6 addresses ("::" takes IPv4 clients too, dual stack).
 *
 * Slow clients: conn_watch.c closes a connection that takes longer than --read-timeout to send
 * its headers or its body (libmicrohttpd's own timeout only measures silence).
 *
 * Shutdown is a drain (beit_serve_drain, _drain_wait, _stop). The server counts the requests it
 * has received and not yet answered (in_flight: up when a request's headers are in, down when
 * libmicrohttpd reports its response written or the connection gone). It cannot leave that to
 * MHD_stop_daemon: in thread-per-connection mode that shuts down every connection's socket and
 * joins the threads, so a request whose handler is still running is computed but its answer is
 * never sent, and a body still arriving is cut. So the drain first quiesces the daemon and shuts
 * the listening socket (new connections refused), keeps answering, with "Connection: close",
 * until in_flight is zero, and only then stops the daemon. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "serve.h"

struct beit_server {
  struct beit_serve_options opt;
  char host[64];
  int auth; /* token holds the bearer token */
  struct beit_serve_token token;
  struct MHD_Daemon *daemon;
  int port;
  struct beit_batcher *batcher;
  struct beit_scorer scorer;
  atomic_int ready;
  atomic_ullong requests, ok, client_errors, server_errors;
  double started;
  struct beit_conn_watch *watch;
  /* the drain: requests received and not answered; set once beit_serve_drain ran; set once
   * the drain is over (a request arriving then is refused at once) */
  atomic_ullong in_flight;
  atomic_int draining, closing;
  pthread_mutex_t drain_lock;
  pthread_cond_t drained; /* CLOCK_MONOTONIC; broadcast when in_flight reaches 0 */
  MHD_socket listen_fd;   /* taken back from the daemon by the drain; closed after it stops */
};

struct conn_req {
  char *body;
  size_t len, cap;
  int too_large;
  int refused; /* answered 401 from the headers: nothing of this request is used */
  double start;
  struct beit_conn *conn; /* the connection's watch record (NULL: not watched) */
};

/* Queue body (malloc'd, taken over) with a JSON content type and one optional header. While
 * draining every answer closes its connection, so that keep-alive clients move elsewhere. */
static enum MHD_Result send_json(struct beit_server *srv, struct MHD_Connection *c,
                                 unsigned status, char *body, size_t len, int close_after,
                                 const char *hname, const char *hvalue)
{
  struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
  if (!r) {
    free(body);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  if (close_after || atomic_load(&srv->draining))
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
  if (hname)
    MHD_add_response_header(r, hname, hvalue);
  enum MHD_Result ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result send_buf(struct beit_server *srv, struct MHD_Connection *c,
                                unsigned status, struct beit_strbuf *b, int close_after,
                                const char *hname, const char *hvalue)
{
  if (b->oom || !b->data) {
    beit_strbuf_free(b);
    static const char oom[] = "{\"error\": {\"status\": 503, \"index\": null, \"reason\": "
                              "\"out_of_memory\", \"message\": \"out of memory\"}}";
    char *copy = strdup(oom);
    return copy ? send_json(srv, c, 503, copy, strlen(copy), 1, NULL, NULL) : MHD_NO;
  }
  return send_json(srv, c, status, b->data, b->len, close_after, hname, hvalue);
}

static enum MHD_Result send_fault(struct beit_server *srv, struct MHD_Connection *c,
                                  const struct beit_fault *f, int close_after, const char *hname,
                                  const char *hvalue)
{
  struct beit_strbuf b = {0};
  beit_fault_json(&b, f);
  if (srv->opt.log_requests)
    fprintf(stderr, "beit serve: %d %s\n", f->http_status, f->message);
  return send_buf(srv, c, (unsigned)f->http_status, &b, close_after, hname, hvalue);
}

static void count_status(struct beit_server *srv, int status)
{
  srv->requests++;
  if (status < 300)
    srv->ok++;
  else if (status < 500)
    srv->client_errors++;
  else
    srv->server_errors++;
}

static enum MHD_Result handle_score(struct beit_server *srv, struct MHD_Connection *c,
                                    struct conn_req *r)
{
  struct beit_fault f = {0};
  if (r->too_large) {
    beit_fault_set(&f, 413, -1, "body_too_large", "request body larger than %zu bytes",
                   srv->opt.max_body_bytes);
    count_status(srv, 413);
    return send_fault(srv, c, &f, 1, NULL, NULL);
  }
  if (!atomic_load(&srv->ready)) {
    beit_fault_set(&f, 503, -1, "not_ready", "the model is still loading");
    count_status(srv, 503);
    return send_fault(srv, c, &f, 0, NULL, NULL);
  }
  int status = 500;
  struct beit_strbuf out = {0};
  double deadline = r->start + srv->opt.request_timeout_s;
  beit_scorer_score(&srv->scorer, r->body ? r->body : "", r->len, deadline, &status, &out, &f);
  count_status(srv, status);
  if (srv->opt.log_requests)
    fprintf(stderr, "beit serve: POST /score %d %.1f ms%s%s\n", status,
            1e3 * (beit_clock_now() - r->start), status == 200 ? "" : " ",
            status == 200 ? "" : f.message);
  return send_buf(srv, c, (unsigned)status, &out, 0, NULL, NULL);
}

static enum MHD_Result handle_get(struct beit_server *srv, struct MHD_Connection *c,
                                  const char *url)
{
  struct beit_strbuf b = {0};
  unsigned status = 200;
  if (!strcmp(url, "/health")) {
    struct beit_batcher_stats bs = {0};
    if (atomic_load(&srv->ready))
      beit_batcher_stats(srv->batcher, &bs);
    beit_strbuf_printf(&b, "{\"status\": \"ok\", \"requests\": %llu, \"images\": %llu, "
                           "\"batches\": %llu, \"max_batch_seen\": %llu, \"forward_seconds\": "
                           "%.6f, \"workers\": %d, \"queued_images\": %zu, \"in_flight\": %llu, "
                           "\"read_timeouts\": %llu, \"draining\": %s, \"uptime_seconds\": %.3f}",
                       (unsigned long long)srv->requests, (unsigned long long)bs.images,
                       (unsigned long long)bs.batches, (unsigned long long)bs.max_batch_seen,
                       bs.forward_seconds,
                       atomic_load(&srv->ready) ? beit_infer_get_options(srv->scorer.inf)->sessions : 0,
                       bs.queued_images, (unsigned long long)atomic_load(&srv->in_flight),
                       (unsigned long long)beit_conn_watch_cut(srv->watch),
                       atomic_load(&srv->draining) ? "true" : "false",
                       beit_clock_now() - srv->started);
  } else if (!strcmp(url, "/ready")) {
    int draining = atomic_load(&srv->draining), ready = atomic_load(&srv->ready) && !draining;
    status = ready ? 200 : 503;
    if (ready)
      beit_strbuf_puts(&b, "{\"ready\": true}");
    else
      beit_strbuf_printf(&b, "{\"ready\": false, \"reason\": \"%s\"}",
                         draining ? "draining" : "loading");
  } else { /* /metadata */
    if (!atomic_load(&srv->ready)) {
      struct beit_fault f;
      beit_fault_set(&f, 503, -1, "not_ready", "the model is still loading");
      return send_fault(srv, c, &f, 0, NULL, NULL);
    }
    beit_serve_metadata_json(&b, srv->scorer.inf);
  }
  return send_buf(srv, c, status, &b, 0, NULL, NULL);
}

/* The probes stay open: platforms call them without credentials. */
static int is_probe(const char *url) { return !strcmp(url, "/health") || !strcmp(url, "/ready"); }

/* 401 when the request's Authorization header does not carry the token; MHD_YES to go on. The
 * WWW-Authenticate header follows RFC 6750; the connection is closed so that an unauthenticated
 * client holds no thread and sends no body. */
static enum MHD_Result refuse_unauthorized(struct beit_server *srv, struct MHD_Connection *c,
                                           const char *method, const char *url, int *refused)
{
  const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  enum beit_serve_auth a = beit_serve_auth_check(&srv->token, h);
  *refused = a != BEIT_SERVE_AUTH_OK;
  if (!*refused)
    return MHD_YES;
  struct beit_fault f;
  const char *challenge = "Bearer realm=\"beit\"";
  if (a == BEIT_SERVE_AUTH_MISSING) {
    beit_fault_set(&f, 401, -1, "unauthorized", "%s %s needs the header \"Authorization: Bearer "
                   "<token>\"", method, url);
  } else if (a == BEIT_SERVE_AUTH_MALFORMED) {
    beit_fault_set(&f, 401, -1, "unauthorized", "the Authorization header is not \"Bearer "
                   "<token>\"");
    challenge = "Bearer realm=\"beit\", error=\"invalid_request\"";
  } else {
    beit_fault_set(&f, 401, -1, "unauthorized", "the bearer token is not valid");
    challenge = "Bearer realm=\"beit\", error=\"invalid_token\"";
  }
  if (!strcmp(url, "/score"))
    count_status(srv, 401);
  return send_fault(srv, c, &f, 1, MHD_HTTP_HEADER_WWW_AUTHENTICATE, challenge);
}

/* A request's headers are in: set up, and refuse (answered at once) while closing, without the
 * token, or with an announced body over the cap, before any body is read. */
static enum MHD_Result on_headers(struct beit_server *srv, struct MHD_Connection *c,
                                  struct conn_req *r, const char *url, const char *method,
                                  int score_post)
{
  r->start = beit_clock_now();
  atomic_fetch_add(&srv->in_flight, 1); /* down in on_completed, whatever happens */
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  r->conn = ci ? ci->socket_context : NULL;
  beit_conn_watch_phase(srv->watch, r->conn, BEIT_CONN_BUSY); /* an early answer, or: */
  if (atomic_load(&srv->closing)) { /* the drain is over: the daemon stops in a moment */
    struct beit_fault f;
    beit_fault_set(&f, 503, -1, "stopping", "the server is shutting down");
    return send_fault(srv, c, &f, 1, NULL, NULL);
  }
  if (srv->auth && !is_probe(url)) {
    int refused;
    enum MHD_Result ret = refuse_unauthorized(srv, c, method, url, &refused);
    r->refused = refused;
    if (refused)
      return ret;
  }
  const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  if (score_post && cl && strtoull(cl, NULL, 10) > srv->opt.max_body_bytes) {
    r->too_large = 1;
    return handle_score(srv, c, r);
  }
  beit_conn_watch_phase(srv->watch, r->conn, BEIT_CONN_READING); /* the body, if any */
  return MHD_YES;
}

/* n more bytes of a /score body: kept, or (over the cap) the request marked too large and what
 * was kept dropped. */
static enum MHD_Result keep_body(struct beit_server *srv, struct conn_req *r, const char *upload,
                                 size_t n)
{
  if (r->too_large)
    return MHD_YES;
  if (r->len + n > srv->opt.max_body_bytes) {
    r->too_large = 1;
    free(r->body);
    r->body = NULL;
    r->len = r->cap = 0;
    return MHD_YES;
  }
  if (r->len + n > r->cap) {
    size_t cap = r->cap ? r->cap : 16384;
    while (cap < r->len + n)
      cap *= 2;
    char *p = realloc(r->body, cap);
    if (!p)
      return MHD_NO;
    r->body = p;
    r->cap = cap;
  }
  memcpy(r->body + r->len, upload, n);
  r->len += n;
  return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **ctx)
{
  struct beit_server *srv = cls;
  struct conn_req *r = *ctx;
  int is_post = !strcmp(method, MHD_HTTP_METHOD_POST);
  int is_get = !strcmp(method, MHD_HTTP_METHOD_GET) || !strcmp(method, MHD_HTTP_METHOD_HEAD);
  int score = !strcmp(url, "/score");
  if (!r) { /* headers only */
    if (!(r = calloc(1, sizeof *r)))
      return MHD_NO;
    *ctx = r;
    return on_headers(srv, c, r, url, method, score && is_post);
  }
  if (r->refused) { /* MHD should not call again after an early response; if it does, drop */
    *upload_size = 0;
    return MHD_YES;
  }
  if (*upload_size) { /* a piece of the body */
    size_t n = *upload_size;
    *upload_size = 0;
    return score && is_post ? keep_body(srv, r, upload, n) : MHD_YES;
  }
  beit_conn_watch_phase(srv->watch, r->conn, BEIT_CONN_BUSY); /* the whole request is in */
  struct beit_fault f;
  if (score) {
    if (is_post)
      return handle_score(srv, c, r);
    beit_fault_set(&f, 405, -1, "method_not_allowed", "use POST for /score");
    return send_fault(srv, c, &f, 0, MHD_HTTP_HEADER_ALLOW, "POST");
  }
  if (!strcmp(url, "/health") || !strcmp(url, "/ready") || !strcmp(url, "/metadata")) {
    if (is_get)
      return handle_get(srv, c, url);
    beit_fault_set(&f, 405, -1, "method_not_allowed", "use GET for %s", url);
    return send_fault(srv, c, &f, 0, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  }
  beit_fault_set(&f, 404, -1, "not_found", "no such endpoint; try POST /score, GET /health, "
                 "/ready or /metadata");
  return send_fault(srv, c, &f, 0, NULL, NULL);
}

/* A request's end: its response written (the usual case), or the connection closed under it
 * (client gone, read timeout, daemon stopping). */
static void on_completed(void *cls, struct MHD_Connection *c, void **ctx,
                         enum MHD_RequestTerminationCode code)
{
  struct beit_server *srv = cls;
  struct conn_req *r = *ctx;
  if (!r)
    return;
  beit_conn_watch_phase(srv->watch, r->conn, BEIT_CONN_WAITING); /* kept alive: the next one */
  free(r->body);
  free(r);
  *ctx = NULL;
  if (atomic_fetch_sub(&srv->in_flight, 1) == 1) {
    pthread_mutex_lock(&srv->drain_lock);
    pthread_cond_broadcast(&srv->drained);
    pthread_mutex_unlock(&srv->drain_lock);
  }
}

/* Connections into and out of the watch; CLOSED comes before libmicrohttpd closes the socket. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode code)
{
  struct beit_server *srv = cls;
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    *socket_ctx = ci ? beit_conn_watch_add(srv->watch, ci->connect_fd) : NULL;
  } else {
    beit_conn_watch_remove(srv->watch, *socket_ctx);
    *socket_ctx = NULL;
  }
}

static void free_server(struct beit_server *srv);

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
  fprintf(stderr, "beit serve: http: ");
  vfprintf(stderr, fmt, ap);
}

/* The options a server refuses before it binds: a port out of range, a public address without
 * a token (or --no-auth), a token of the wrong size, half a TLS pair, TLS without GnuTLS. */
static enum beit_status check_options(const struct beit_serve_options *opt, const char *host,
                                      int tls, struct beit_error *err)
{
  if (opt->port < 0 || opt->port > 65535)
    return beit_error_set(err, BEIT_STATUS_USAGE, "--port %d: out of range", opt->port);
  int loopback = beit_serve_host_loopback(host);
  if (loopback == 0 && !opt->auth_token && !opt->no_auth)
    return beit_error_set(err, BEIT_STATUS_USAGE,
                          "--host %s is not a loopback address: give --auth-token-file FILE "
                          "(clients then send \"Authorization: Bearer <token>\"), or --no-auth "
                          "to let anyone who reaches the port use the model", host);
  if (opt->auth_token && (!opt->auth_token[0] || strlen(opt->auth_token) > BEIT_SERVE_TOKEN_MAX))
    return beit_error_set(err, BEIT_STATUS_USAGE, "server: the bearer token must be 1 to %d bytes",
                          BEIT_SERVE_TOKEN_MAX);
  if (tls && !(opt->tls_cert_pem && opt->tls_key_pem))
    return beit_error_set(err, BEIT_STATUS_USAGE, "--tls-cert and --tls-key go together");
  if (tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
    return beit_error_set(err, BEIT_STATUS_UNSUPPORTED, "--tls-cert: this libmicrohttpd was "
                          "built without TLS (GnuTLS); install one with HTTPS support, or "
                          "terminate TLS in a proxy in front of the server");
  return BEIT_STATUS_OK;
}

/* host and port as a socket address into addr; the daemon flags of that address family (and of
 * TLS) into *flags. */
static enum beit_status listen_address(const struct beit_serve_options *opt, const char *host,
                                       int tls, struct sockaddr_storage *addr, unsigned *flags,
                                       struct beit_error *err)
{
  struct sockaddr_in *v4 = (struct sockaddr_in *)addr;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)addr;
  memset(addr, 0, sizeof *addr);
  /* MHD_USE_ITC: MHD_quiesce_daemon needs it to wake the polling thread */
  *flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG |
           MHD_USE_ITC;
  if (tls)
    *flags |= MHD_USE_TLS;
  if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)opt->port);
  } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)opt->port);
    *flags |= MHD_USE_DUAL_STACK; /* "::" also takes IPv4 clients */
  } else {
    return beit_error_set(err, BEIT_STATUS_USAGE,
                          "--host '%s': not an IPv4 or IPv6 address (e.g. 127.0.0.1, 0.0.0.0, ::1, ::)",
                          host);
  }
  return BEIT_STATUS_OK;
}

/* A server without its daemon: options, token, drain state, connection watch. */
static enum beit_status new_server(struct beit_server **out, const struct beit_serve_options *opt,
                                   const char *host, int tls, struct beit_error *err)
{
  struct beit_server *srv = calloc(1, sizeof *srv);
  if (!srv)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "server: out of memory");
  srv->opt = *opt;
  srv->started = beit_clock_now();
  snprintf(srv->host, sizeof srv->host, "%s", host);
  srv->opt.host = srv->host;
  srv->opt.auth_token = NULL; /* only the padded copy is kept */
  srv->auth = opt->auth_token != NULL;
  if (srv->auth)
    beit_serve_token_set(&srv->token, opt->auth_token);
  srv->listen_fd = MHD_INVALID_SOCKET;
  pthread_mutex_init(&srv->drain_lock, NULL);
  beit_clock_cond_init(&srv->drained);
  enum beit_status st = beit_conn_watch_start(&srv->watch, opt->read_timeout_s, tls,
                                              opt->log_requests, err);
  if (st)
    free_server(srv);
  else
    *out = srv;
  return st;
}

enum beit_status beit_serve_start(struct beit_server **out, const struct beit_serve_options *opt,
                                  struct beit_error *err)
{
  *out = NULL;
  const char *host = opt->host ? opt->host : "127.0.0.1";
  int tls = opt->tls_cert_pem || opt->tls_key_pem;
  struct sockaddr_storage addr;
  unsigned flags = 0;
  struct beit_server *srv = NULL;
  enum beit_status st = check_options(opt, host, tls, err);
  if (st || (st = listen_address(opt, host, tls, &addr, &flags, err)) ||
      (st = new_server(&srv, opt, host, tls, err)))
    return st;
  struct MHD_OptionItem tls_opts[] = {
      {MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)opt->tls_cert_pem},
      {MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)opt->tls_key_pem},
      {MHD_OPTION_END, 0, NULL},
  };
  unsigned idle = opt->idle_timeout_s > 0 ? (unsigned)(opt->idle_timeout_s + 0.5) : 0;
  srv->daemon = MHD_start_daemon(
      flags, 0, NULL, NULL, on_request, srv,
      MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv, /* first, so that it sees every message */
      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)(opt->max_connections ? opt->max_connections : 1),
      MHD_OPTION_CONNECTION_TIMEOUT, idle,
      MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
      MHD_OPTION_THREAD_STACK_SIZE, (size_t)(1u << 20),
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
      MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
      MHD_OPTION_ARRAY, tls ? tls_opts : tls_opts + 2,
      MHD_OPTION_END);
  if (!srv->daemon) {
    free_server(srv);
    return beit_error_set(err, BEIT_STATUS_IO, "cannot listen on %s port %d (in use, or not "
                          "permitted%s)", host, opt->port,
                          tls ? ", or GnuTLS refused the certificate: see the line above" : "");
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
  srv->port = info ? info->port : opt->port;
  *out = srv;
  return BEIT_STATUS_OK;
}

int beit_serve_port(const struct beit_server *srv) { return srv->port; }

enum beit_status beit_serve_attach(struct beit_server *srv, struct beit_infer *inf,
                                   struct beit_error *err)
{
  if (atomic_load(&srv->ready))
    return beit_error_set(err, BEIT_STATUS_USAGE, "server: a model is already attached");
  enum beit_status st = beit_batcher_start(&srv->batcher, inf, srv->opt.batch_wait_us,
                                           srv->opt.max_queue_images, err);
  if (st)
    return st;
  srv->scorer = (struct beit_scorer){
      .inf = inf,
      .batcher = srv->batcher,
      .max_images = srv->opt.max_images,
      .max_queue_images = srv->opt.max_queue_images,
      .fetch = {srv->opt.allow_urls, srv->opt.allow_private_urls, srv->opt.url_max_bytes,
                srv->opt.url_timeout_s},
      .select = srv->opt.select,
  };
  atomic_store(&srv->ready, 1);
  return BEIT_STATUS_OK;
}

void beit_serve_stats(const struct beit_server *srv, struct beit_serve_stats *stats)
{
  memset(stats, 0, sizeof *stats);
  stats->requests = srv->requests;
  stats->ok = srv->ok;
  stats->client_errors = srv->client_errors;
  stats->server_errors = srv->server_errors;
  stats->read_timeouts = beit_conn_watch_cut(srv->watch);
  stats->in_flight = atomic_load(&srv->in_flight);
  if (srv->batcher) {
    struct beit_batcher_stats bs;
    beit_batcher_stats(srv->batcher, &bs);
    stats->images = bs.images;
    stats->batches = bs.batches;
    stats->max_batch_seen = bs.max_batch_seen;
  }
}

void beit_serve_drain(struct beit_server *srv)
{
  if (atomic_exchange(&srv->draining, 1))
    return;
  MHD_socket fd = MHD_quiesce_daemon(srv->daemon);
  if (fd != MHD_INVALID_SOCKET) {
    /* Quiesced, the daemon no longer accepts, but the kernel would still complete handshakes
     * into the backlog, where clients would hang. Shut down (not closed: a connection thread
     * may still hold the number until MHD_stop_daemon), a listening socket leaves the LISTEN
     * state on Linux: connecting is refused and queued connections are reset. */
    shutdown(fd, SHUT_RDWR);
    srv->listen_fd = fd;
  }
}

size_t beit_serve_drain_wait(struct beit_server *srv, double deadline)
{
  struct timespec until = beit_clock_timespec(deadline);
  int timed_out = 0;
  pthread_mutex_lock(&srv->drain_lock);
  for (;;) {
    while (!timed_out && atomic_load(&srv->in_flight) > 0)
      timed_out = pthread_cond_timedwait(&srv->drained, &srv->drain_lock, &until) == ETIMEDOUT;
    /* Drained once: from now on a new request is refused at once, and one that came in
     * between the count reaching zero and this flag is still waited for (a second pass). */
    if (timed_out || atomic_exchange(&srv->closing, 1))
      break;
  }
  pthread_mutex_unlock(&srv->drain_lock);
  return (size_t)atomic_load(&srv->in_flight);
}

static void free_server(struct beit_server *srv)
{
  beit_conn_watch_stop(srv->watch);
  pthread_cond_destroy(&srv->drained);
  pthread_mutex_destroy(&srv->drain_lock);
  explicit_bzero(&srv->token, sizeof srv->token);
  free(srv);
}

void beit_serve_stop(struct beit_server *srv)
{
  if (!srv)
    return;
  atomic_store(&srv->ready, 0);
  /* Requests still running are cut: cancel their queued work so that their threads return
   * (MHD_stop_daemon joins them) after at most the forward now running. */
  if (atomic_load(&srv->in_flight))
    beit_batcher_abort(srv->batcher);
  MHD_stop_daemon(srv->daemon); /* shuts every connection down and joins their threads */
  if (srv->listen_fd != MHD_INVALID_SOCKET)
    close(srv->listen_fd);
  beit_batcher_stop(srv->batcher);
  free_server(srv);
}
