/* beit serve: the real-time HTTP endpoint (POST /score, GET /health, /ready, /metadata) in the
 * model card's JSON format, over HTTP or HTTPS, open or behind a bearer token. Parses the options
 * into struct beit_serve_run_options; the run (token and TLS files, listening, the model, the
 * drain on SIGINT/SIGTERM, the counters) is serve/run.c's beit_serve_run. */
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>

#include "beit/serve.h"
#include "cli.h"

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

enum { O_HOST = 256, O_PORT, O_WORKERS, O_THREADS, O_BATCH, O_WAIT, O_BODY, O_IMAGES,
       O_PIXELS, O_QUEUE, O_CONN, O_TIMEOUT, O_TOPK, O_THRESH, O_URLS, O_PRIVATE, O_URLMAX,
       O_URLTIME, O_LOG, O_PRECISION, O_TOKEN, O_NOAUTH, O_CERT, O_KEY, O_READTIME, O_IDLETIME,
       O_DRAINTIME };

static const struct option opts[] = {
    BEIT_CLI_ARG("model", 'm'), BEIT_CLI_ARG("host", O_HOST), BEIT_CLI_ARG("port", O_PORT),
    BEIT_CLI_ARG("workers", O_WORKERS), BEIT_CLI_ARG("threads", O_THREADS),
    BEIT_CLI_ARG("max-batch", O_BATCH), BEIT_CLI_ARG("batch-wait-us", O_WAIT),
    BEIT_CLI_ARG("max-body-bytes", O_BODY), BEIT_CLI_ARG("max-images", O_IMAGES),
    BEIT_CLI_ARG("max-pixels", O_PIXELS), BEIT_CLI_ARG("max-queue", O_QUEUE),
    BEIT_CLI_ARG("max-connections", O_CONN), BEIT_CLI_ARG("timeout", O_TIMEOUT),
    BEIT_CLI_ARG("read-timeout", O_READTIME), BEIT_CLI_ARG("idle-timeout", O_IDLETIME),
    BEIT_CLI_ARG("drain-timeout", O_DRAINTIME), BEIT_CLI_ARG("top-k", O_TOPK),
    BEIT_CLI_ARG("threshold", O_THRESH), BEIT_CLI_FLAG("allow-urls", O_URLS),
    BEIT_CLI_FLAG("allow-private-urls", O_PRIVATE), BEIT_CLI_ARG("url-max-bytes", O_URLMAX),
    BEIT_CLI_ARG("url-timeout", O_URLTIME), BEIT_CLI_FLAG("log-requests", O_LOG),
    BEIT_CLI_ARG("precision", O_PRECISION), BEIT_CLI_ARG("auth-token-file", O_TOKEN),
    BEIT_CLI_FLAG("no-auth", O_NOAUTH), BEIT_CLI_ARG("tls-cert", O_CERT),
    BEIT_CLI_ARG("tls-key", O_KEY), BEIT_CLI_END};

/* The numeric options, one row each: the field they set (in server, infer or the drain timeout),
 * its type, the range and what the usage error says is expected. */
enum num_type { NUM_INT, NUM_UNSIGNED, NUM_SIZE, NUM_DOUBLE };
#define SOPT(f) offsetof(struct beit_serve_run_options, server.f)
#define IOPT(f) offsetof(struct beit_serve_run_options, infer.f)
static const struct {
  int code;
  size_t offset;
  enum num_type type;
  double lo, hi;
  const char *expected;
} numbers[] = {
    {O_PORT, SOPT(port), NUM_INT, 0, 65535, "0..65535"},
    {O_WORKERS, IOPT(sessions), NUM_INT, 1, 64, "1..64"},
    {O_THREADS, IOPT(threads), NUM_INT, 1, 1024, "1..1024"},
    {O_BATCH, IOPT(max_batch), NUM_SIZE, 1, 1024, "1..1024"},
    {O_WAIT, SOPT(batch_wait_us), NUM_UNSIGNED, 0, 10000000, "0..1e7"},
    {O_BODY, SOPT(max_body_bytes), NUM_SIZE, 1, 0x1p40, "> 0"},
    {O_IMAGES, SOPT(max_images), NUM_SIZE, 1, 0x1p20, "> 0"},
    {O_PIXELS, IOPT(max_pixels), NUM_SIZE, 1, 0x1p40, "> 0"},
    {O_QUEUE, SOPT(max_queue_images), NUM_SIZE, 1, 0x1p30, "> 0"},
    {O_CONN, SOPT(max_connections), NUM_UNSIGNED, 1, 100000, "1..100000"},
    {O_TIMEOUT, SOPT(request_timeout_s), NUM_DOUBLE, 0.001, 86400, "seconds > 0"},
    {O_READTIME, SOPT(read_timeout_s), NUM_DOUBLE, 0.001, 86400, "seconds > 0"},
    {O_IDLETIME, SOPT(idle_timeout_s), NUM_DOUBLE, 1, 86400, "seconds >= 1"},
    {O_DRAINTIME, offsetof(struct beit_serve_run_options, drain_timeout_s), NUM_DOUBLE, 0, 86400,
     "seconds >= 0"},
    {O_TOPK, SOPT(select.top_k), NUM_SIZE, 1, 0x1p30, "> 0"},
    {O_THRESH, SOPT(select.threshold), NUM_DOUBLE, 0, 1, "0..1"},
    {O_URLMAX, SOPT(url_max_bytes), NUM_SIZE, 1, 0x1p40, "> 0"},
    {O_URLTIME, SOPT(url_timeout_s), NUM_DOUBLE, 0.001, 3600, "seconds > 0"},
};
#undef SOPT
#undef IOPT

/* Option c's value into its field when c is a numeric option: 1 (*rc set: BEIT_CLI_GO_ON, or
 * BEIT_EXIT_USAGE after the usage error); else 0. */
static int number_option(struct beit_serve_run_options *cl, int c, const char *arg, int *rc)
{
  for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
    if (numbers[i].code != c)
      continue;
    const char *name = "";
    for (const struct option *o = opts; o->name; o++)
      name = o->val == c ? o->name : name;
    double v = 0;
    *rc = beit_cli_number("serve", arg, numbers[i].type != NUM_DOUBLE, numbers[i].lo,
                          numbers[i].hi, &v, "--%s %s: expected %s", name, arg,
                          numbers[i].expected);
    char *dst = (char *)cl + numbers[i].offset;
    switch (numbers[i].type) {
    case NUM_INT: *(int *)dst = (int)v; break;
    case NUM_UNSIGNED: *(unsigned *)dst = (unsigned)v; break;
    case NUM_SIZE: *(size_t *)dst = (size_t)v; break;
    case NUM_DOUBLE: *(double *)dst = v; break;
    }
    return 1;
  }
  return 0;
}

/* The command line into *cl (defaults set): BEIT_CLI_GO_ON, or the exit code to return now. */
static int parse(struct beit_serve_run_options *cl, int argc, char **argv)
{
  int c, rc = BEIT_CLI_GO_ON;
  optind = 1;
  while (beit_cli_next(&c, argc, argv, opts, "serve", usage_text, &rc)) {
    if (number_option(cl, c, optarg, &rc))
      continue;
    switch (c) {
    case 'm': cl->model_dir = optarg; break;
    case O_HOST: cl->server.host = optarg; break;
    case O_URLS: cl->server.allow_urls = 1; break;
    case O_PRIVATE: cl->server.allow_private_urls = 1; break;
    case O_LOG: cl->server.log_requests = 1; break;
    case O_PRECISION:
      rc = beit_cli_parse_precision("serve", optarg, &cl->infer.precision);
      break;
    case O_TOKEN: cl->token_file = optarg; break;
    case O_NOAUTH: cl->server.no_auth = 1; break;
    case O_CERT: cl->cert_file = optarg; break;
    case O_KEY: cl->key_file = optarg; break;
    }
  }
  if (rc != BEIT_CLI_GO_ON)
    return rc;
  if (!cl->model_dir || optind != argc)
    return beit_cli_usage_error("serve", "--model DIR is required (and nothing else positional)");
  if (cl->token_file && cl->server.no_auth)
    return beit_cli_usage_error("serve", "--auth-token-file and --no-auth contradict each other");
  if (!cl->cert_file != !cl->key_file)
    return beit_cli_usage_error("serve", "--tls-cert and --tls-key go together");
  return BEIT_CLI_GO_ON;
}

int beit_cmd_serve(int argc, char **argv)
{
  struct beit_serve_run_options o;
  beit_serve_run_defaults(&o);
  int rc = parse(&o, argc, argv);
  if (rc != BEIT_CLI_GO_ON)
    return rc;
  struct beit_error err = {0};
  struct beit_serve_job *job = NULL;
  rc = beit_serve_run(&o, &job, &err) ? beit_cli_fail("serve", &err) : BEIT_EXIT_OK;
  beit_serve_run_end(job);
  return rc;
}
