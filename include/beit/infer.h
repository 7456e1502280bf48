/* Inference: classifier model folders in, probabilities out, as the `beit predict` batch command
 * and the `beit serve` real-time HTTP endpoint (docs/commands/serve.md) speak them.
 *
 * Wire format (the Azure ML model card of BEiT):
 *   request  {"input_data": {"columns": ["image"], "index": [0, 1], "data": ["<img1>", "<img2>"]}}
 *            each image is base64 of the file bytes (a "data:...;base64," prefix is accepted) or
 *            an http(s) URL (fetched only when URLs are allowed);
 *   response [{"probs": [0.91, 0.09], "labels": ["can", "carton"]}, ...], one object per input
 *            in request order. By default every label, in the model's label order; with top_k
 *            or a threshold the kept labels sorted by decreasing probability.
 *   error    {"error": {"status": 400, "index": 1, "reason": "bad_base64", "message": "..."}}
 *            (index null when the fault is not one input's).
 *
 * Preprocessing (HF BeitImageProcessor) is the model's own, the same for every command
 * (struct beit_data_preprocess, data/preprocess.c): preprocessor_config.json next to config.json
 * (HF image-processor keys and HF BeitImageProcessor defaults for absent keys: resize to 256x256
 * bicubic, centre crop 224, rescale 1/255, mean = std = 0.5); beit finetune writes one into
 * every checkpoint describing its recipe's eval transform, and beit export copies it. Without
 * that file: direct resize to image_size x image_size, bicubic, mean = std = 0.5 -- the BEiT
 * normalisation of every released checkpoint, and no crop so that the whole image is seen.
 * Resizing is PIL-exact (beit_data_resize).
 *
 * Threads: one struct beit_infer holds one copy of the weights and `sessions` forward contexts
 * (activation arenas) whose parameters alias those weights, so `sessions` threads may run
 * beit_infer_run at once, each on its own session index. The server keeps one session per
 * batching worker; requests that are queued together are batched together. In bf16 the sessions
 * also share one bfloat16 copy of the weights, rounded once at load. */
#ifndef BEIT_INFER_H
#define BEIT_INFER_H

#include <stddef.h>
#include <stdint.h>

#include "beit/data.h"
#include "beit/precision.h"
#include "beit/status.h"

enum beit_infer_task {
  BEIT_INFER_TASK_MULTICLASS, /* softmax over the labels */
  BEIT_INFER_TASK_MULTILABEL, /* problem_type multi_label_classification: independent sigmoids */
};

/* ---- Model ----------------------------------------------------------------------------------- */

struct beit_infer_options {
  size_t max_batch;  /* images per forward and session (default 8) */
  int sessions;      /* forward contexts sharing the weights (default 1); 0 = automatic: one
                        single-threaded session per core for models under 2 GFLOPs per image,
                        else one session over all cores */
  int threads;       /* OpenMP threads of each forward; 0 = omp_get_max_threads() / sessions */
  size_t max_pixels; /* decoded-pixel cap, checked from the header before decoding (40 M) */
  int any_format;    /* 0 (default): JPEG and PNG only, the formats with hardened decoders;
                        others are UNSUPPORTED (HTTP 415). 1: every format beit_data_decode
                        reads, for local files the user chose (beit predict) */
  enum beit_precision precision; /* matrix products (default AUTO: bf16 where the CPU has AMX,
                                    else fp32); beit_infer_get_options gives the resolved one */
};
void beit_infer_defaults(struct beit_infer_options *opt);

struct beit_infer;

/* Load a BeitForImageClassification folder (config.json + model.safetensors [+
 * preprocessor_config.json]). Other architectures are CONFIG errors. */
enum beit_status beit_infer_load(struct beit_infer **out, const char *dir,
                                 const struct beit_infer_options *opt, struct beit_error *err);
void beit_infer_free(struct beit_infer *inf);
/* In bf16, run one forward of every batch size 1..max_batch so that oneDNN's primitives exist
 * before the first request (each new batch size would otherwise cost its first request about
 * 1.5 s for BEiT-base); nothing to do in fp32. Not concurrently with beit_infer_run. */
enum beit_status beit_infer_warmup(struct beit_infer *inf, struct beit_error *err);

enum beit_infer_task beit_infer_task(const struct beit_infer *inf);
size_t beit_infer_num_labels(const struct beit_infer *inf);
const char *beit_infer_label(const struct beit_infer *inf, size_t i);
int beit_infer_image_size(const struct beit_infer *inf);
size_t beit_infer_view_floats(const struct beit_infer *inf); /* 3 * S * S */
/* The model's preprocessing (beit_data_preprocess_model: its preprocessor_config.json or the
 * no-file default), applied by beit_infer_prepare. */
const struct beit_data_preprocess *beit_infer_preprocessing(const struct beit_infer *inf);
const struct beit_infer_options *beit_infer_get_options(const struct beit_infer *inf);
const char *beit_infer_model_dir(const struct beit_infer *inf);

/* Width and height from the file header without decoding pixels, under opt's limits.
 * UNSUPPORTED (HTTP 415) for a format other than JPEG or PNG unless opt->any_format; FORMAT when
 * the header is not readable; USAGE (an input too large: HTTP 413) when width * height exceeds
 * opt->max_pixels (0 = no cap) or the decoder's limits -- a decompression bomb is refused here,
 * before any allocation. */
enum beit_status beit_infer_probe(const void *data, size_t size,
                                  const struct beit_infer_options *opt, int *width, int *height,
                                  const char *key, struct beit_error *err);

/* Probe (with the model's options: pixel cap, formats), decode and preprocess one encoded image into view
 * (3, S, S). When keep is not NULL the decoded RGB image is handed over to the caller (free
 * with beit_data_image_free), else freed. ws: the calling thread's scratch. Errors name key. */
enum beit_status beit_infer_prepare(const struct beit_infer *inf, const void *data, size_t size,
                                    const char *key, float *view, struct beit_data_image *keep,
                                    struct beit_data_scratch *ws, struct beit_error *err);
/* The same from decoded RGB pixels (the pixel cap is not applied). */
enum beit_status beit_infer_prepare_image(const struct beit_infer *inf,
                                          const struct beit_data_image *img, float *view,
                                          struct beit_data_scratch *ws, struct beit_error *err);

/* Forward n <= max_batch views (n, 3, S, S) on session (0 .. sessions-1) and write probs
 * (n, num_labels): softmax, or sigmoids for multi-label models. A session must not be used by
 * two threads at once; different sessions may run concurrently. Sets the calling thread's
 * OpenMP thread count to the options' threads. */
enum beit_status beit_infer_run(struct beit_infer *inf, int session, const float *views,
                                size_t n, float *probs, struct beit_error *err);

/* ---- Results ------------------------------------------------------------------------------- */

struct beit_infer_select {
  size_t top_k;     /* keep the best K (0 = every label) */
  double threshold; /* keep labels with prob >= threshold (< 0 = no threshold) */
};

/* Indices of the labels kept by sel, in output order; returns their count (<= num_labels). */
size_t beit_infer_select_labels(const struct beit_infer *inf, const float *probs,
                                const struct beit_infer_select *sel, size_t *order);

/* One response object {"probs": [...], "labels": [...]} as a NUL-terminated malloc'd string
 * (free with free()); NULL when out of memory. Probabilities print with 6 significant digits;
 * a non-finite value prints as null. */
char *beit_infer_result_json(const struct beit_infer *inf, const float *probs,
                             const struct beit_infer_select *sel);

/* ---- Visualization (cairo) ---------------------------------------------------------------- */

struct beit_infer_vis_item {
  const struct beit_data_image *image; /* decoded RGB */
  const char *title;                   /* file name or input index */
  const float *probs;                  /* (num_labels) */
};

/* Draw one row per item: the image and a bar chart of its top_k labels (default 5) with their
 * probabilities beside it, like the model card's sample; write a PNG atomically.
 * UNSUPPORTED when built without cairo. */
enum beit_status beit_infer_visualize(const char *png_path, const struct beit_infer *inf,
                                      const struct beit_infer_vis_item *items, size_t n,
                                      size_t top_k, struct beit_error *err);

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

#endif
