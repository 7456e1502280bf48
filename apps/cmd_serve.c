/* beit serve: the real-time HTTP endpoint (POST /score, GET /health, /ready, /metadata) in the
 * model card's JSON format, over HTTP or HTTPS, open or behind a bearer token. Reads the token
 * and TLS files, listens (so /health answers while the model loads), then loads the model and
 * starts the batching workers, then waits for SIGINT/SIGTERM and drains: /ready turns 503, new
 * connections are refused, every request already received is answered, then it exits 0 with
 * its counters -- within --drain-timeout, after which the rest are cut (and counted); a second
 * signal cuts at once. Never prints the token. */
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "beit/serve.h"
#include "cli.h"
#include "clock.h"

static const char usage_text[] =
    "usage: beit serve --model DIR [--port P] [options]\n"
    "\n"
    "POST /score   {\"input_data\": {\"columns\": [\"image\"], \"index\": [0, 1],\n"
    "               \"data\": [\"<base64 image file>\", \"<http(s) URL>\"]}}\n"
    "              -> [{\"probs\": [...], \"labels\": [...]}, ...] (one per input, in order)\n"
    "GET  /health  liveness and counters;  GET /ready  200 once the model is loaded\n"
    "GET  /metadata labels, input size, task, preprocessing\n"
    "Errors are 4xx/5xx JSON: {\"error\": {\"status\", \"index\", \"reason\", \"message\"}}.\n"
    "\n"
    "Access: with --auth-token-file every request except the probes GET /health and GET /ready\n"
    "(open: load balancers and Azure ML call them without credentials) needs the header\n"
    "\"Authorization: Bearer <token>\"; without it, or with another token, the answer is 401\n"
    "{\"error\": {\"status\": 401, \"reason\": \"unauthorized\", ...}} with WWW-Authenticate: Bearer.\n"
    "A --host that is not loopback needs --auth-token-file, or --no-auth to serve it open.\n"
    "  curl -H \"Authorization: Bearer $(cat token)\" --data @request.json http://HOST:8080/score\n"
    "  curl --cacert cert.pem -H \"Authorization: Bearer $(cat token)\" https://HOST:8443/metadata\n"
    "\n"
    "  --model DIR            BeitForImageClassification folder; images are preprocessed as\n"
    "                         its preprocessor_config.json says (beit finetune writes its\n"
    "                         recipe's eval transform there, beit export copies it), else\n"
    "                         direct resize, bicubic, mean = std = 0.5: what beit eval and beit\n"
    "                         predict do (printed at start and in /metadata)\n"
    "  --host ADDR            IPv4 or IPv6 address to bind (default 127.0.0.1: this machine\n"
    "                         only; 0.0.0.0 or :: for every interface)\n"
    "  --port P               TCP port (default 8080; 0 picks a free one, printed at start)\n"
    "  --workers N            inference workers sharing the weights (default: one per core\n"
    "                         for models under 2 GFLOPs per image, else one)\n"
    "  --threads N            OpenMP threads per worker (default: cores / workers)\n"
    "  --max-batch B          images per forward (default 8)\n"
    "  --precision P          matrix products: bf16 (bfloat16 operands, float32 accumulation;\n"
    "                         the workers share one bf16 copy of the weights), fp32, or auto\n"
    "                         (the default: bf16 where the CPU has AMX, else fp32)\n"
    "  --batch-wait-us U      a worker waits up to U us for a fuller batch (default 0)\n"
    "  --max-body-bytes N     request body cap (default 33554432)\n"
    "  --max-images N         images per request (default 64)\n"
    "  --max-pixels N         decoded-pixel cap from the image header (default 40000000)\n"
    "  --max-queue N          images admitted at once (decoding or queued) before 503 (256)\n"
    "  --max-connections N    concurrent connections (default 256)\n"
    "  --timeout S            per-request timeout in seconds (default 30)\n"
    "  --read-timeout S       a client must send its headers within S seconds of connecting\n"
    "                         (or of its previous answer) and its body within S of its\n"
    "                         headers, else the connection is closed (a 408 once the body has\n"
    "                         begun); one byte a second does not keep it open (default 30)\n"
    "  --idle-timeout S       close a connection silent for S seconds in any phase, e.g. a\n"
    "                         client that stops reading its answer (default 60)\n"
    "  --drain-timeout S      on SIGTERM/SIGINT: /ready turns 503 {\"ready\": false, \"reason\":\n"
    "                         \"draining\"}, new connections are refused, requests already\n"
    "                         received are answered (with Connection: close), then exit 0;\n"
    "                         after S seconds (default 30; 0: at once) the rest are cut and\n"
    "                         counted. A second signal cuts at once\n"
    "  --top-k K, --threshold T  label selection of every response (default: all labels)\n"
    "  --allow-urls           fetch http(s) URL inputs from public addresses (default: a URL\n"
    "                         is a 400 error)\n"
    "  --allow-private-urls   URLs may also reach loopback, private and link-local networks\n"
    "  --url-max-bytes N      size cap of a fetched image (default 16777216)\n"
    "  --url-timeout S        timeout of one fetch (default 10)\n"
    "  --log-requests         one stderr line per request\n"
    "  --auth-token-file F    require \"Authorization: Bearer <token>\" (the token: F's first\n"
    "                         line, trailing newline removed; 1-4096 visible ASCII characters;\n"
    "                         keep F chmod 600: a warning otherwise)\n"
    "  --no-auth              serve a non-loopback --host without a token (a warning is printed;\n"
    "                         on loopback no token is the default)\n"
    "  --tls-cert PEM         serve HTTPS with this certificate (chain: the server's first)\n"
    "  --tls-key PEM          and its unencrypted private key; both or neither\n";

static int parse_long(const char *s, long lo, long hi, long *out)
{
  char *end;
  long v = strtol(s, &end, 10);
  if (*end || end == s || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
  char *end;
  double v = strtod(s, &end);
  if (*end || end == s || !(v >= lo && v <= hi))
    return -1;
  *out = v;
  return 0;
}

/* The token and TLS files, each optional (NULL path: NULL out). A file that group or others may
 * read gets a warning: the token or key is as secret as the model's access. */
static enum beit_status load_secrets(const char *token_file, const char *cert_file,
                                     const char *key_file, char **token, char **cert_pem,
                                     char **key_pem, struct beit_error *err)
{
  int shared = 0;
  enum beit_status st;
  if (token_file) {
    if ((st = beit_serve_token_load(token_file, token, &shared, err)))
      return st;
    if (shared)
      fprintf(stderr, "beit serve: warning: --auth-token-file %s can be read by group or "
              "others (chmod 600 it)\n", token_file);
  }
  if (cert_file) {
    if ((st = beit_serve_tls_load(cert_file, key_file, cert_pem, key_pem, &shared, err)))
      return st;
    if (shared)
      fprintf(stderr, "beit serve: warning: --tls-key %s can be read by group or others "
              "(chmod 600 it)\n", key_file);
  }
  return BEIT_STATUS_OK;
}

/* Fewer malloc arenas than glibc's 8 per core. Every connection has its own short-lived thread,
 * and glibc gives a thread that meets contention a new arena, up to 8 x cores of them, each
 * keeping the pages it has touched: measured on 2 cores (tests/serve_soak.py), RSS climbed in
 * steps of about 1 MiB for as long as new arenas appeared (+7% in 10 minutes), and stayed flat
 * with 2. The connection threads allocate per request (body, JSON, decoded image, views) but
 * hold the lock for microseconds against milliseconds of decoding; the workers allocate
 * nothing per batch. One arena per 4 cores, at least 2; MALLOC_ARENA_MAX or GLIBC_TUNABLES in
 * the environment win. */
static void limit_malloc_arenas(void)
{
  if (getenv("MALLOC_ARENA_MAX") || getenv("GLIBC_TUNABLES"))
    return;
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  mallopt(M_ARENA_MAX, cores / 4 > 2 ? (int)(cores / 4) : 2);
}

/* The graceful end: drain, waiting in slices so that a second signal is seen; report what it
 * did. Requests still unanswered at the deadline are cut by beit_serve_stop. */
static void drain(struct beit_server *srv, const sigset_t *sigs, int sig, double timeout_s)
{
  struct beit_serve_stats st;
  beit_serve_stats(srv, &st);
  fprintf(stderr, "beit serve: signal %d: draining %llu request(s) in flight (--drain-timeout "
          "%g s); /ready answers 503, new connections are refused\n", sig,
          (unsigned long long)st.in_flight, timeout_s);
  beit_serve_drain(srv);
  double t0 = beit_clock_now(), deadline = t0 + timeout_s;
  size_t left;
  int again = 0;
  for (;;) {
    double now = beit_clock_now();
    left = beit_serve_drain_wait(srv, now + 0.2 < deadline ? now + 0.2 : deadline);
    if (!left || beit_clock_now() >= deadline)
      break;
    struct timespec zero = {0, 0};
    if ((again = sigtimedwait(sigs, NULL, &zero)) > 0)
      break;
  }
  double dt = beit_clock_now() - t0;
  if (!left)
    fprintf(stderr, "beit serve: drained in %.2f s, stopping\n", dt);
  else
    fprintf(stderr, "beit serve: %s after %.2f s: stopping, %zu request(s) cut without an "
            "answer\n", again > 0 ? "drain ended by a second signal" : "drain timed out",
            dt, left);
}

int beit_cmd_serve(int argc, char **argv)
{
  enum { O_HOST = 256, O_PORT, O_WORKERS, O_THREADS, O_BATCH, O_WAIT, O_BODY, O_IMAGES,
         O_PIXELS, O_QUEUE, O_CONN, O_TIMEOUT, O_TOPK, O_THRESH, O_URLS, O_PRIVATE, O_URLMAX, O_URLTIME,
         O_LOG, O_PRECISION, O_TOKEN, O_NOAUTH, O_CERT, O_KEY, O_READTIME, O_IDLETIME,
         O_DRAINTIME };
  static const struct option opts[] = {
      {"model", required_argument, NULL, 'm'},
      {"host", required_argument, NULL, O_HOST},
      {"port", required_argument, NULL, O_PORT},
      {"workers", required_argument, NULL, O_WORKERS},
      {"threads", required_argument, NULL, O_THREADS},
      {"max-batch", required_argument, NULL, O_BATCH},
      {"batch-wait-us", required_argument, NULL, O_WAIT},
      {"max-body-bytes", required_argument, NULL, O_BODY},
      {"max-images", required_argument, NULL, O_IMAGES},
      {"max-pixels", required_argument, NULL, O_PIXELS},
      {"max-queue", required_argument, NULL, O_QUEUE},
      {"max-connections", required_argument, NULL, O_CONN},
      {"timeout", required_argument, NULL, O_TIMEOUT},
      {"read-timeout", required_argument, NULL, O_READTIME},
      {"idle-timeout", required_argument, NULL, O_IDLETIME},
      {"drain-timeout", required_argument, NULL, O_DRAINTIME},
      {"top-k", required_argument, NULL, O_TOPK},
      {"threshold", required_argument, NULL, O_THRESH},
      {"allow-urls", no_argument, NULL, O_URLS},
      {"allow-private-urls", no_argument, NULL, O_PRIVATE},
      {"url-max-bytes", required_argument, NULL, O_URLMAX},
      {"url-timeout", required_argument, NULL, O_URLTIME},
      {"log-requests", no_argument, NULL, O_LOG},
      {"precision", required_argument, NULL, O_PRECISION},
      {"auth-token-file", required_argument, NULL, O_TOKEN},
      {"no-auth", no_argument, NULL, O_NOAUTH},
      {"tls-cert", required_argument, NULL, O_CERT},
      {"tls-key", required_argument, NULL, O_KEY},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *model_dir = NULL;
  const char *token_file = NULL, *cert_file = NULL, *key_file = NULL;
  struct beit_serve_options sopt;
  struct beit_infer_options iopt;
  beit_serve_defaults(&sopt);
  beit_infer_defaults(&iopt);
  iopt.sessions = 0; /* automatic unless --workers: see beit_infer_options */
  double drain_timeout_s = 30.0;
  int c;
  long v;
  double d;
  optind = 1;
#define NEED(ok, ...)                                     \
  do {                                                    \
    if (!(ok))                                            \
      return beit_cli_usage_error("serve", __VA_ARGS__); \
  } while (0)
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'm': model_dir = optarg; break;
    case O_HOST: sopt.host = optarg; break;
    case O_PORT:
      NEED(!parse_long(optarg, 0, 65535, &v), "--port %s: expected 0..65535", optarg);
      sopt.port = (int)v;
      break;
    case O_WORKERS:
      NEED(!parse_long(optarg, 1, 64, &v), "--workers %s: expected 1..64", optarg);
      iopt.sessions = (int)v;
      break;
    case O_THREADS:
      NEED(!parse_long(optarg, 1, 1024, &v), "--threads %s: expected 1..1024", optarg);
      iopt.threads = (int)v;
      break;
    case O_BATCH:
      NEED(!parse_long(optarg, 1, 1024, &v), "--max-batch %s: expected 1..1024", optarg);
      iopt.max_batch = (size_t)v;
      break;
    case O_WAIT:
      NEED(!parse_long(optarg, 0, 10000000, &v), "--batch-wait-us %s: expected 0..1e7", optarg);
      sopt.batch_wait_us = (unsigned)v;
      break;
    case O_BODY:
      NEED(!parse_long(optarg, 1, 1L << 40, &v), "--max-body-bytes %s: expected > 0", optarg);
      sopt.max_body_bytes = (size_t)v;
      break;
    case O_IMAGES:
      NEED(!parse_long(optarg, 1, 1L << 20, &v), "--max-images %s: expected > 0", optarg);
      sopt.max_images = (size_t)v;
      break;
    case O_PIXELS:
      NEED(!parse_long(optarg, 1, 1L << 40, &v), "--max-pixels %s: expected > 0", optarg);
      iopt.max_pixels = (size_t)v;
      break;
    case O_QUEUE:
      NEED(!parse_long(optarg, 1, 1L << 30, &v), "--max-queue %s: expected > 0", optarg);
      sopt.max_queue_images = (size_t)v;
      break;
    case O_CONN:
      NEED(!parse_long(optarg, 1, 100000, &v), "--max-connections %s: expected 1..100000", optarg);
      sopt.max_connections = (unsigned)v;
      break;
    case O_TIMEOUT:
      NEED(!parse_double(optarg, 0.001, 86400, &d), "--timeout %s: expected seconds > 0", optarg);
      sopt.request_timeout_s = d;
      break;
    case O_READTIME:
      NEED(!parse_double(optarg, 0.001, 86400, &d), "--read-timeout %s: expected seconds > 0", optarg);
      sopt.read_timeout_s = d;
      break;
    case O_IDLETIME:
      NEED(!parse_double(optarg, 1, 86400, &d), "--idle-timeout %s: expected seconds >= 1", optarg);
      sopt.idle_timeout_s = d;
      break;
    case O_DRAINTIME:
      NEED(!parse_double(optarg, 0, 86400, &d), "--drain-timeout %s: expected seconds >= 0", optarg);
      drain_timeout_s = d;
      break;
    case O_TOPK:
      NEED(!parse_long(optarg, 1, 1L << 30, &v), "--top-k %s: expected > 0", optarg);
      sopt.select.top_k = (size_t)v;
      break;
    case O_THRESH:
      NEED(!parse_double(optarg, 0, 1, &d), "--threshold %s: expected 0..1", optarg);
      sopt.select.threshold = d;
      break;
    case O_URLS: sopt.allow_urls = 1; break;
    case O_PRIVATE: sopt.allow_private_urls = 1; break;
    case O_URLMAX:
      NEED(!parse_long(optarg, 1, 1L << 40, &v), "--url-max-bytes %s: expected > 0", optarg);
      sopt.url_max_bytes = (size_t)v;
      break;
    case O_URLTIME:
      NEED(!parse_double(optarg, 0.001, 3600, &d), "--url-timeout %s: expected seconds > 0", optarg);
      sopt.url_timeout_s = d;
      break;
    case O_LOG: sopt.log_requests = 1; break;
    case O_PRECISION:
      if (beit_cli_parse_precision("serve", optarg, &iopt.precision))
        return BEIT_EXIT_USAGE;
      break;
    case O_TOKEN: token_file = optarg; break;
    case O_NOAUTH: sopt.no_auth = 1; break;
    case O_CERT: cert_file = optarg; break;
    case O_KEY: key_file = optarg; break;
    case 'h': fputs(usage_text, stdout); return BEIT_EXIT_OK;
    default: return beit_cli_usage_error("serve", "unknown option");
    }
  }
#undef NEED
  if (!model_dir || optind != argc)
    return beit_cli_usage_error("serve", "--model DIR is required (and nothing else positional)");
  if (token_file && sopt.no_auth)
    return beit_cli_usage_error("serve", "--auth-token-file and --no-auth contradict each other");
  if (!cert_file != !key_file)
    return beit_cli_usage_error("serve", "--tls-cert and --tls-key go together");

  limit_malloc_arenas(); /* before any thread */
  /* Every thread started from here inherits the blocked signals; main takes them in sigwait. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  signal(SIGPIPE, SIG_IGN);

  struct beit_error err = {0};
  struct beit_server *srv = NULL;
  struct beit_infer *inf = NULL;
  char *token = NULL, *cert_pem = NULL, *key_pem = NULL;
  int rc = BEIT_EXIT_OK;
  if (beit_cli_resolve_precision("serve", iopt.precision, stderr, &iopt.precision, &err) ||
      load_secrets(token_file, cert_file, key_file, &token, &cert_pem, &key_pem, &err))
    goto fail;
  sopt.auth_token = token;
  sopt.tls_cert_pem = cert_pem;
  sopt.tls_key_pem = key_pem;
  if (beit_serve_start(&srv, &sopt, &err))
    goto fail;
  /* an IPv6 address goes in brackets in a URL */
  const int v6 = strchr(sopt.host, ':') != NULL;
  const char *scheme = cert_pem ? "https" : "http";
  fprintf(stderr, "beit serve: listening on %s://%s%s%s:%d (%s), loading %s\n", scheme,
          v6 ? "[" : "", sopt.host, v6 ? "]" : "", beit_serve_port(srv),
          token ? "bearer token required but for /health and /ready" : "no authentication",
          model_dir);
  if (beit_serve_host_loopback(sopt.host) == 0) {
    if (sopt.no_auth)
      fprintf(stderr, "beit serve: warning: --no-auth on %s: anyone who can reach port %d can "
              "use the model\n", sopt.host, beit_serve_port(srv));
    else if (!cert_pem)
      fprintf(stderr, "beit serve: warning: the bearer token crosses the network in clear "
              "text: use --tls-cert/--tls-key or a TLS proxy in front\n");
  }
  if (beit_infer_load(&inf, model_dir, &iopt, &err) || beit_infer_warmup(inf, &err) ||
      beit_serve_attach(srv, inf, &err))
    goto fail;
  char desc[256];
  beit_data_preprocess_describe(beit_infer_preprocessing(inf), desc, sizeof desc);
  fprintf(stderr, "beit serve: %zu labels (%s), input %dx%d: %s; %d worker(s) x %d thread(s), "
          "batches up to %zu\n", beit_infer_num_labels(inf),
          beit_infer_task(inf) == BEIT_INFER_TASK_MULTILABEL ? "multi-label" : "multi-class",
          beit_infer_image_size(inf), beit_infer_image_size(inf), desc,
          beit_infer_get_options(inf)->sessions, beit_infer_get_options(inf)->threads,
          iopt.max_batch);
  /* The line tests and scripts wait for. */
  printf("beit serve: ready on %s://%s%s%s:%d\n", scheme, v6 ? "[" : "", sopt.host,
         v6 ? "]" : "", beit_serve_port(srv));
  fflush(stdout);
  int sig = 0;
  sigwait(&sigs, &sig);
  drain(srv, &sigs, sig, drain_timeout_s);
  goto done;
fail:
  rc = beit_cli_fail("serve", &err);
done:
  if (srv) {
    struct beit_serve_stats st;
    beit_serve_stats(srv, &st);
    beit_serve_stop(srv);
    fprintf(stderr, "beit serve: %llu requests (%llu ok, %llu client errors, %llu server errors), "
            "%llu images in %llu batches, %llu slow connections closed (--read-timeout)\n",
            (unsigned long long)st.requests, (unsigned long long)st.ok,
            (unsigned long long)st.client_errors, (unsigned long long)st.server_errors,
            (unsigned long long)st.images, (unsigned long long)st.batches,
            (unsigned long long)st.read_timeouts);
  }
  beit_infer_free(inf);
  beit_serve_secret_free(token);
  beit_serve_secret_free(key_pem);
  free(cert_pem);
  return rc;
}
