/* Internals of serve/, shared by its files, `beit predict`/`beit serve` and the serve tests:
 * a growable string, base64, the request parser, the error ("fault") JSON, the batching queue
 * and the scorer that turns one request body into one response. Not a public header.
 *
 * Threading: the HTTP layer (http_mhd.c) runs one thread per connection; that thread parses,
 * decodes and preprocesses its request's images (beit_scorer_score) and then blocks until the
 * batching workers (batcher.c, one per inference session, sharing one copy of the weights) have
 * run them. Everything here but the batcher is reentrant. */
#ifndef BEIT_SERVE_SERVE_H
#define BEIT_SERVE_SERVE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "beit/serve.h"
#include "clock.h"
#include "strbuf.h"

/* Session s's model (0 owns the weights): for tests of what the sessions share. */
struct beit_model *beit_infer_session_model(const struct beit_infer *inf, int session);

/* ---- Text out (the growable string: core/strbuf.h) ---------------------------------------- */

/* Append one {"probs": [...], "labels": [...]} object (see beit_infer_result_json). */
void beit_strbuf_result(struct beit_strbuf *b, const struct beit_infer *inf, const float *probs,
                        const struct beit_infer_select *sel);

/* ---- Base64 (RFC 4648) ------------------------------------------------------------------- */

/* Upper bound of the decoded size of n characters. */
size_t beit_base64_max_decoded(size_t n);
/* Decode the standard or the URL-safe alphabet; ASCII whitespace is skipped, padding is
 * optional but must be right when present. 0 on success with *out_len bytes in out (room for
 * beit_base64_max_decoded(n)); -1 on bad input with *bad_pos the offending character's offset
 * and *why a static description. */
int beit_base64_decode(uint8_t *out, size_t *out_len, const char *in, size_t n, size_t *bad_pos,
                       const char **why);
/* Encode (standard alphabet, padded); returns the length written to out (4 * ceil(n / 3)). */
size_t beit_base64_encode(char *out, const uint8_t *in, size_t n);

/* ---- Faults: what a client gets back instead of a response ---------------------------------- */

struct beit_fault {
  int http_status;   /* 400, 404, 413, 415, 422, 500, 503, 504 */
  long index;        /* the input at fault, -1 when none */
  const char *reason; /* a stable token: "malformed_json", "bad_base64", ... */
  char message[512];
};
void beit_fault_set(struct beit_fault *f, int http_status, long index, const char *reason,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The fault of an input that could not be prepared (beit_infer_prepare's status st, its message):
 * USAGE (over a cap) 413 image_too_large, UNSUPPORTED (a format refused) 415
 * unsupported_media_type, FORMAT or SHAPE 422 undecodable_image, NOMEM 503 internal (the server
 * is short of memory: try again), else 500 internal.
 * beit serve and beit predict both answer through it. */
void beit_fault_from_status(struct beit_fault *f, enum beit_status st, long index,
                            const char *message);
/* {"error": {"status": S, "index": I|null, "reason": "...", "message": "..."}} */
void beit_fault_json(struct beit_strbuf *b, const struct beit_fault *f);

/* ---- Requests --------------------------------------------------------------------------------- */

enum beit_request_kind { BEIT_REQUEST_BASE64, BEIT_REQUEST_URL };

struct beit_request_item {
  enum beit_request_kind kind;
  const char *text; /* base64 text (a data: prefix stripped) or the URL; points into root */
  size_t len;
};

struct beit_request {
  cJSON *root;
  struct beit_request_item *items;
  size_t count;
};

/* Parse and validate one request body (not NUL-terminated, len bytes). Faults: malformed_json,
 * missing_field, bad_field (wrong type, index/data length mismatch, an input that is not a
 * string), too_many_images (413, index = the first input over max_images), unsupported_url
 * (a scheme other than http/https). 0 on success (free with beit_request_free), -1 with f set. */
int beit_request_parse(struct beit_request *req, const char *body, size_t len, size_t max_images,
                       struct beit_fault *f);
void beit_request_free(struct beit_request *req);

/* Bytes of input i: base64-decoded or fetched (when allow_urls) within min(the policy's
 * timeout, time_left_s). On failure -1 with f set (bad_base64 400, url_not_allowed 400,
 * url_fetch_failed 400, url_too_large 413, timeout 504 when the request's time ran out).
 * *data is malloc'd. */
struct beit_fetch_policy {
  int allow_urls;
  int allow_private;    /* URLs may reach loopback and private networks */
  size_t max_bytes;
  double timeout_s;
};
int beit_request_item_bytes(const struct beit_request *req, size_t i,
                            const struct beit_fetch_policy *policy, double time_left_s,
                            uint8_t **data, size_t *size, struct beit_fault *f);

/* ---- Batching queue ---------------------------------------------------------------------- */

/* One request's images on their way through the workers. views (n, 3, S, S) and probs
 * (n, num_labels) are owned by the job. Fields after `n` belong to the batcher. */
struct beit_job {
  size_t n;
  float *views;
  float *probs;
  /* batcher state, under the batcher's lock */
  struct beit_job *next;
  size_t taken, finished, inflight;
  int queued, abandoned, cancelled;
  enum beit_status status;
  char message[256];
  pthread_cond_t done;
};

/* A job for n images of inf; NULL when out of memory. */
struct beit_job *beit_job_create(const struct beit_infer *inf, size_t n);
void beit_job_free(struct beit_job *job);

struct beit_batcher_stats {
  uint64_t images, batches, max_batch_seen;
  double forward_seconds; /* summed over workers: time inside beit_infer_run */
  size_t queued_images, reserved_images;
};

struct beit_batcher;

/* One worker thread per session of inf, each forming batches of up to max_batch images from the
 * queue head (FIFO; a request larger than a batch is split across batches). A worker that finds
 * fewer than max_batch images waits up to batch_wait_us for more. */
enum beit_status beit_batcher_start(struct beit_batcher **out, struct beit_infer *inf,
                                    unsigned batch_wait_us, size_t max_queue_images,
                                    struct beit_error *err);
/* Reserve room for n images (before decoding them): -1 when the images queued or reserved
 * would exceed max_queue_images, or the batcher is stopping. */
int beit_batcher_reserve(struct beit_batcher *b, size_t n);
/* Give back a reservation that will not be submitted. */
void beit_batcher_release(struct beit_batcher *b, size_t n);
/* Queue a job whose n images were reserved (the reservation becomes the queued images); -1
 * (reservation released, nothing queued) when the batcher is stopping. */
int beit_batcher_submit(struct beit_batcher *b, struct beit_job *job);
/* Wait until the job is done or deadline (CLOCK_MONOTONIC seconds) passes. 0: done (check
 * job->status); -1: timed out, -2: cancelled by beit_batcher_abort -- in both cases the job has
 * been withdrawn and is freed by whoever holds it last: the caller must NOT touch or free it
 * afterwards. */
int beit_batcher_wait(struct beit_batcher *b, struct beit_job *job, double deadline);
void beit_batcher_stats(struct beit_batcher *b, struct beit_batcher_stats *stats);
/* Give up on the queue, for a shutdown that will not wait: refuse new work, and cancel every
 * queued job, whose waiter returns -2 at once. Batches already running finish. */
void beit_batcher_abort(struct beit_batcher *b);
/* Finish queued jobs, join the workers, free. */
void beit_batcher_stop(struct beit_batcher *b);


/* ---- Scorer: one request body in, one response out ------------------------------------------ */

struct beit_scorer {
  struct beit_infer *inf;
  struct beit_batcher *batcher;
  size_t max_images, max_queue_images;
  struct beit_fetch_policy fetch;
  struct beit_infer_select select;
};

/* Score body (len bytes) before deadline: on success *http_status = 200 and out holds the
 * response array; else out holds the fault JSON and *http_status its status. The fault, when
 * not NULL, gets a copy of the failure for logging. */
void beit_scorer_score(const struct beit_scorer *sc, const char *body, size_t len,
                       double deadline, int *http_status, struct beit_strbuf *out,
                       struct beit_fault *fault);

/* ---- Access (auth.c) ------------------------------------------------------------------------ */

/* Read a regular file of at most max bytes into a NUL-terminated malloc'd buffer; errors start
 * with "<what> <path>:" (what: the flag, e.g. "--tls-key"). *shared: group or others may read. */
enum beit_status beit_serve_file_read(const char *path, const char *what, size_t max, char **out,
                                      size_t *len, int *shared, struct beit_error *err);

/* The expected token, zero-padded to a fixed size so that comparing reads the same bytes
 * whatever the guess. */
struct beit_serve_token {
  unsigned char bytes[BEIT_SERVE_TOKEN_MAX];
  size_t len;
};
void beit_serve_token_set(struct beit_serve_token *tok, const char *token);
/* 1 when got (m bytes) is the token; time independent of the contents and of tok->len. */
int beit_serve_token_equal(const struct beit_serve_token *tok, const char *got, size_t m);

enum beit_serve_auth {
  BEIT_SERVE_AUTH_OK,
  BEIT_SERVE_AUTH_MISSING,   /* no Authorization header */
  BEIT_SERVE_AUTH_MALFORMED, /* not "Bearer <token>" (scheme case-insensitive) */
  BEIT_SERVE_AUTH_WRONG,
};
/* Check an Authorization header value (NULL when absent). */
enum beit_serve_auth beit_serve_auth_check(const struct beit_serve_token *tok, const char *header);

/* ---- Connection watch (conn_watch.c): closes connections too slow to send a request ------- */

/* What a connection is doing. WAITING: accepted, or answered and kept alive, and no whole
 * header yet; READING: headers in, body arriving; BUSY: scoring or answering (never cut). */
enum beit_conn_phase { BEIT_CONN_WAITING, BEIT_CONN_READING, BEIT_CONN_BUSY };
struct beit_conn;
struct beit_conn_watch;

/* A watch that cuts (shutdown(2)) every connection that stays WAITING or READING longer than
 * read_timeout_s (0: never; the watch then only tracks). tls: no 408 answer can be written
 * beside the session. log: one stderr line per cut. */
enum beit_status beit_conn_watch_start(struct beit_conn_watch **out, double read_timeout_s,
                                       int tls, int log, struct beit_error *err);
/* Track socket fd, WAITING from now; NULL when out of memory (then it is not watched). Call
 * from the connection-started notification, before the connection's thread runs. */
struct beit_conn *beit_conn_watch_add(struct beit_conn_watch *w, int fd);
/* Enter a phase (restarting its clock). c may be NULL. */
void beit_conn_watch_phase(struct beit_conn_watch *w, struct beit_conn *c,
                           enum beit_conn_phase phase);
/* Forget c; call before its socket is closed (the connection-closed notification). */
void beit_conn_watch_remove(struct beit_conn_watch *w, struct beit_conn *c);
/* Connections cut so far. */
uint64_t beit_conn_watch_cut(struct beit_conn_watch *w);
/* Join the watch thread and free; after the HTTP daemon has stopped. */
void beit_conn_watch_stop(struct beit_conn_watch *w);

/* Metadata JSON of a model (labels, input size, task, preprocessing). */
void beit_serve_metadata_json(struct beit_strbuf *b, const struct beit_infer *inf);

#endif
