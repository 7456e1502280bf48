/* Serving inference over the network (`beit serve`, docs/commands/serve.md): URL inputs
 * (libcurl, public addresses only unless allowed), the address rules, and the HTTP(S) server
 * (libmicrohttpd + GnuTLS) around a struct beit_infer (beit/infer.h): bearer tokens, TLS, the
 * drain on shutdown. */
#ifndef BEIT_SERVE_H
#define BEIT_SERVE_H

#include <stddef.h>
#include <stdint.h>

#include "beit/infer.h"
#include "beit/status.h"

/* ---- URLs (libcurl) ------------------------------------------------------------------------ */

/* Fetch an http:// or https:// URL (other schemes, also after redirects, are refused) into a
 * malloc'd buffer, at most max_bytes, within timeout_s. Unless allow_private, every connection
 * must go to a public address (checked after DNS, see beit_infer_address_public). USAGE for a
 * body over the cap (HTTP 413), UNSUPPORTED for a refused scheme or address or a build without
 * libcurl, INTERRUPTED when timeout_s passed, IO for other network failures and HTTP statuses
 * >= 400. */
enum beit_status beit_infer_fetch_url(const char *url, size_t max_bytes, double timeout_s,
                                      int allow_private, uint8_t **data, size_t *size,
                                      struct beit_error *err);
struct sockaddr;
/* 1 for an IPv4/IPv6 address a public server may have; 0 for loopback, private (10/8,
 * 172.16/12, 192.168/16, fc00::/7), link-local (169.254/16 with the cloud metadata service,
 * fe80::/10), carrier-grade NAT, multicast, reserved and unspecified addresses, also inside
 * IPv4-mapped and NAT64 IPv6 addresses. */
int beit_infer_address_public(const struct sockaddr *sa);

/* ---- Server ------------------------------------------------------------------------------- */

struct beit_serve_options {
  const char *host;          /* IPv4 or IPv6 address to bind (default "127.0.0.1") */
  int port;                  /* 0 = an ephemeral port (see beit_serve_port) */
  unsigned max_connections;  /* concurrent connections (default 256) */
  size_t max_body_bytes;     /* request body cap (default 32 MiB): 413 beyond */
  size_t max_images;         /* images per request (default 64): 413 beyond */
  size_t max_queue_images;   /* images admitted (being decoded or waiting for a worker) at once
                                (default 256): 503 beyond; bounds the memory of prepared views */
  double request_timeout_s;  /* per request, arrival to response (default 30): 504 beyond */
  double idle_timeout_s;     /* a connection silent this long in any phase, e.g. a client that
                                stops reading its answer (default 60) */
  double read_timeout_s;     /* a connection must send its headers within this of being accepted
                                or answered, and its body within this of its headers, else it is
                                closed (default 30; 0 = no limit) */
  unsigned batch_wait_us;    /* a worker waits this long for a fuller batch (default 0) */
  int allow_urls;            /* fetch URL inputs (default 0: a URL is a 400) */
  int allow_private_urls;    /* let URLs reach loopback and private networks (default 0) */
  size_t url_max_bytes;      /* default 16 MiB */
  double url_timeout_s;      /* default 10 */
  struct beit_infer_select select;
  int log_requests;          /* one log line per request on stderr */
  /* Access. auth_token (NULL: none; copied at start) is required as "Authorization: Bearer
   * <token>" on every request except GET/HEAD /health and /ready, the probes; a missing or
   * wrong one is a 401. A host that is not loopback needs auth_token unless no_auth says
   * otherwise (beit_serve_start refuses it). */
  const char *auth_token;
  int no_auth;
  /* HTTPS: PEM certificate chain and private key text, both or neither (see
   * beit_serve_tls_load); they must stay valid until beit_serve_stop. */
  const char *tls_cert_pem, *tls_key_pem;
};
void beit_serve_defaults(struct beit_serve_options *opt);

/* 1 when host (an IPv4/IPv6 address) is loopback (127/8, ::1, ::ffff:127.x.y.z), 0 when it is
 * any other address (0.0.0.0 and :: included), -1 when it is not an address. */
int beit_serve_host_loopback(const char *host);

/* The longest bearer token accepted. */
#define BEIT_SERVE_TOKEN_MAX 4096
/* Read a bearer token from path: the file's bytes with trailing CR/LF removed, 1 to
 * BEIT_SERVE_TOKEN_MAX visible ASCII characters (no space, no second line). *token is malloc'd
 * (wipe and free it with beit_serve_secret_free); *shared is set when group or others may read
 * the file. Errors name the file, never the token. */
enum beit_status beit_serve_token_load(const char *path, char **token, int *shared,
                                       struct beit_error *err);
/* Read and check a TLS certificate (PEM, the server's first, then any intermediates) and its
 * private key (PEM, unencrypted) with GnuTLS: a missing, unreadable or malformed file is an
 * error naming it, and so is a key that does not belong to the certificate. *cert_pem and
 * *key_pem are malloc'd (free the key with beit_serve_secret_free); *key_shared as for the
 * token. UNSUPPORTED in a build without the server. */
enum beit_status beit_serve_tls_load(const char *cert_path, const char *key_path, char **cert_pem,
                                     char **key_pem, int *key_shared, struct beit_error *err);
/* Overwrite a NUL-terminated secret with zeros and free it (NULL is fine). */
void beit_serve_secret_free(char *secret);

struct beit_server;

/* Start listening (HTTPS with opt->tls_*_pem). GET /health answers at once; /ready, /metadata
 * and POST /score answer 503 until a model is attached. USAGE for a non-loopback host with
 * neither auth_token nor no_auth, and for one TLS PEM without the other; UNSUPPORTED for TLS
 * when libmicrohttpd was built without it. */
enum beit_status beit_serve_start(struct beit_server **out, const struct beit_serve_options *opt,
                                  struct beit_error *err);
/* The bound port (the ephemeral one when the options said 0). */
int beit_serve_port(const struct beit_server *srv);
/* Start one batching worker per session of inf (not owned; must outlive the server) and
 * become ready. */
enum beit_status beit_serve_attach(struct beit_server *srv, struct beit_infer *inf,
                                   struct beit_error *err);

struct beit_serve_stats {
  uint64_t requests, ok, client_errors, server_errors; /* finished /score requests */
  uint64_t images, batches;                            /* forwards run by the workers */
  uint64_t max_batch_seen;
  uint64_t read_timeouts;  /* connections closed by read_timeout_s */
  uint64_t in_flight;      /* requests received (headers in) and not yet answered */
};
void beit_serve_stats(const struct beit_server *srv, struct beit_serve_stats *stats);

/* Begin a graceful shutdown: /ready answers 503 {"ready": false, "reason": "draining"} from
 * now on, the listening socket is shut (new connections are refused; ones the kernel had queued
 * but the server had not accepted are reset), and requests already received go on -- a body
 * still arriving included -- and are answered with "Connection: close". A request that arrives
 * on an open keep-alive connection meanwhile is served the same way. Idempotent. */
void beit_serve_drain(struct beit_server *srv);
/* Wait, after beit_serve_drain, until every request received has been answered (its response
 * written to the socket), or until deadline (CLOCK_MONOTONIC seconds, beit_clock_now). Returns
 * the number of requests still unanswered: 0 when drained. Once drained, a request that
 * arrives on a kept-alive connection before beit_serve_stop is answered 503 "stopping". */
size_t beit_serve_drain_wait(struct beit_server *srv, double deadline);

/* Close every connection and free the server. Requests still running (none after a drain that
 * returned 0) are cut: queued work is cancelled and their connections closed without an answer;
 * a forward already running finishes first. Joins the workers. */
void beit_serve_stop(struct beit_server *srv);

/* ---- `beit serve`'s run (serve/run.c) ------------------------------------------------------ */

struct beit_serve_run_options {
  const char *model_dir;        /* BeitForImageClassification folder */
  const char *token_file;       /* bearer token file (beit_serve_token_load), or NULL */
  const char *cert_file, *key_file; /* TLS PEM files (beit_serve_tls_load), both or NULL */
  struct beit_serve_options server; /* its auth_token and tls_*_pem come from the files */
  struct beit_infer_options infer;  /* precision as requested: resolved by the run */
  double drain_timeout_s;       /* after the first SIGINT/SIGTERM (default 30; 0: at once) */
};
/* beit serve's defaults: beit_serve_defaults, beit_infer_defaults with sessions 0 (automatic),
 * drain 30 s, no files. */
void beit_serve_run_defaults(struct beit_serve_run_options *opt);

struct beit_serve_job;
/* The whole of `beit serve` until it is told to stop. Call before any thread starts: it limits
 * malloc arenas, blocks SIGINT and SIGTERM (every later thread inherits the mask) and ignores
 * SIGPIPE. Then, with its lines on stderr ("beit serve: ..."): the precision resolved, the token
 * and TLS files read (a warning for one group or others may read), listening (before the model
 * loads, so /health answers), the model loaded, warmed up and attached, "beit serve: ready on
 * URL" on stdout; then it waits for a signal and drains (beit_serve_drain, up to
 * drain_timeout_s; a second signal cuts the drain short). OK after a drain; else the failure.
 * Either way *job (possibly NULL) goes to beit_serve_run_end. */
enum beit_status beit_serve_run(const struct beit_serve_run_options *opt,
                                struct beit_serve_job **job, struct beit_error *err);
/* Stop the server (cutting what is left), print its counters on stderr and free everything
 * beit_serve_run made. NULL is fine. */
void beit_serve_run_end(struct beit_serve_job *job);

#endif
