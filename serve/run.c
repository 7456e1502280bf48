/* `beit serve`'s whole run (include/beit/serve.h beit_serve_run): the process setup a server
 * needs (fewer malloc arenas, SIGINT/SIGTERM blocked in every thread, SIGPIPE ignored), the
 * precision line, the token and TLS files, the listening socket, the model and its workers, the
 * wait for a signal and the drain; beit_serve_run_end prints the counters and frees it all.
 * What it is not: option parsing (apps/cmd_serve.c) or the HTTP server (http_mhd.c). Never
 * prints the token. */
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "beit/serve.h"
#include "clock.h"

struct beit_serve_job {
  sigset_t sigs; /* SIGINT and SIGTERM, blocked; taken by sigwait */
  struct beit_server *srv;
  struct beit_infer *inf;
  char *token, *cert_pem, *key_pem;
};

void beit_serve_run_defaults(struct beit_serve_run_options *o)
{
  memset(o, 0, sizeof *o);
  o->drain_timeout_s = 30.0;
  beit_serve_defaults(&o->server);
  beit_infer_defaults(&o->infer);
  o->infer.sessions = 0; /* automatic unless --workers: see beit_infer_options */
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

/* The requested precision resolved for this machine and announced: the run's first line. */
static enum beit_status resolve_precision(struct beit_infer_options *iopt,
                                          struct beit_error *err)
{
  enum beit_precision requested = iopt->precision;
  enum beit_status st = beit_precision_resolve(&iopt->precision, requested, err);
  if (st)
    return st;
  char backend[512];
  beit_precision_describe(backend, sizeof backend);
  fprintf(stderr, "beit serve: precision %s (requested %s); %s\n",
          beit_precision_name(iopt->precision), beit_precision_name(requested), backend);
  return BEIT_STATUS_OK;
}

/* The token and TLS files, each optional (NULL path: NULL out). A file that group or others may
 * read gets a warning: the token or key is as secret as the model's access. */
static enum beit_status load_secrets(const struct beit_serve_run_options *o,
                                     struct beit_serve_job *j, struct beit_error *err)
{
  int shared = 0;
  enum beit_status st;
  if (o->token_file) {
    if ((st = beit_serve_token_load(o->token_file, &j->token, &shared, err)))
      return st;
    if (shared)
      fprintf(stderr, "beit serve: warning: --auth-token-file %s can be read by group or "
              "others (chmod 600 it)\n", o->token_file);
  }
  if (o->cert_file) {
    if ((st = beit_serve_tls_load(o->cert_file, o->key_file, &j->cert_pem, &j->key_pem, &shared,
                                  err)))
      return st;
    if (shared)
      fprintf(stderr, "beit serve: warning: --tls-key %s can be read by group or others "
              "(chmod 600 it)\n", o->key_file);
  }
  return BEIT_STATUS_OK;
}

/* "scheme://host:port" with an IPv6 address in brackets, as a URL wants it. */
static void server_url(char *buf, size_t size, const struct beit_serve_job *j, const char *host)
{
  const int v6 = strchr(host, ':') != NULL;
  snprintf(buf, size, "%s://%s%s%s:%d", j->cert_pem ? "https" : "http", v6 ? "[" : "", host,
           v6 ? "]" : "", beit_serve_port(j->srv));
}

/* The listening line, and the warnings for a host other machines reach. */
static void announce_listening(const struct beit_serve_options *sopt,
                               const struct beit_serve_job *j, const char *model_dir)
{
  char url[300];
  server_url(url, sizeof url, j, sopt->host);
  fprintf(stderr, "beit serve: listening on %s (%s), loading %s\n", url,
          j->token ? "bearer token required but for /health and /ready" : "no authentication",
          model_dir);
  if (beit_serve_host_loopback(sopt->host) == 0) {
    if (sopt->no_auth)
      fprintf(stderr, "beit serve: warning: --no-auth on %s: anyone who can reach port %d can "
              "use the model\n", sopt->host, beit_serve_port(j->srv));
    else if (!j->cert_pem)
      fprintf(stderr, "beit serve: warning: the bearer token crosses the network in clear "
              "text: use --tls-cert/--tls-key or a TLS proxy in front\n");
  }
}

/* The model's line on stderr, then the line tests and scripts wait for on stdout. */
static void announce_ready(const struct beit_serve_options *sopt, const struct beit_serve_job *j,
                           size_t max_batch)
{
  char desc[256], url[300];
  const struct beit_infer *inf = j->inf;
  beit_data_preprocess_describe(beit_infer_preprocessing(inf), desc, sizeof desc);
  fprintf(stderr, "beit serve: %zu labels (%s), input %dx%d: %s; %d worker(s) x %d thread(s), "
          "batches up to %zu\n", beit_infer_num_labels(inf),
          beit_infer_task(inf) == BEIT_INFER_TASK_MULTILABEL ? "multi-label" : "multi-class",
          beit_infer_image_size(inf), beit_infer_image_size(inf), desc,
          beit_infer_get_options(inf)->sessions, beit_infer_get_options(inf)->threads,
          max_batch);
  server_url(url, sizeof url, j, sopt->host);
  printf("beit serve: ready on %s\n", url);
  fflush(stdout);
}

/* The graceful end: drain, waiting in slices so that a second signal is seen; report what it
 * did. Requests still unanswered at the deadline are cut by beit_serve_stop. */
static void drain(struct beit_serve_job *j, int sig, double timeout_s)
{
  struct beit_serve_stats st;
  beit_serve_stats(j->srv, &st);
  fprintf(stderr, "beit serve: signal %d: draining %llu request(s) in flight (--drain-timeout "
          "%g s); /ready answers 503, new connections are refused\n", sig,
          (unsigned long long)st.in_flight, timeout_s);
  beit_serve_drain(j->srv);
  double t0 = beit_clock_now(), deadline = t0 + timeout_s;
  size_t left;
  int again = 0;
  for (;;) {
    double now = beit_clock_now();
    left = beit_serve_drain_wait(j->srv, now + 0.2 < deadline ? now + 0.2 : deadline);
    if (!left || beit_clock_now() >= deadline)
      break;
    struct timespec zero = {0, 0};
    if ((again = sigtimedwait(&j->sigs, NULL, &zero)) > 0)
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

/* The model's loading, its warm-up forwards and its attachment to the server, on a thread of
 * their own that ends before the first request. Why: OpenMP keeps a pool of threads for every
 * thread that ran a parallel region, for as long as that thread lives. Loaded on the main
 * thread, the model would leave the main thread's pool idle beside the worker's, more OpenMP
 * threads than cores, and libgomp then stops spinning at its barriers and sleeps in the kernel
 * instead: BEiT-base's batch-1 forward took 66 ms inside the server against 45 ms alone. The
 * pool of a thread that has ended is gone. */
struct load_args {
  struct beit_serve_job *j;
  const char *dir;
  const struct beit_infer_options *iopt;
  struct beit_error *err;
  enum beit_status st;
};

static void *load_main(void *arg)
{
  struct load_args *a = arg;
  if (!(a->st = beit_infer_load(&a->j->inf, a->dir, a->iopt, a->err)) &&
      !(a->st = beit_infer_warmup(a->j->inf, a->err)))
    a->st = beit_serve_attach(a->j->srv, a->j->inf, a->err);
  return NULL;
}

static enum beit_status load_in_thread(struct beit_serve_job *j, const char *dir,
                                       const struct beit_infer_options *iopt,
                                       struct beit_error *err)
{
  struct load_args a = {j, dir, iopt, err, BEIT_STATUS_OK};
  pthread_t t;
  if (pthread_create(&t, NULL, load_main, &a))
    return beit_error_set(err, BEIT_STATUS_NOMEM, "serve: cannot start the loading thread");
  pthread_join(t, NULL);
  return a.st;
}

enum beit_status beit_serve_run(const struct beit_serve_run_options *o,
                                struct beit_serve_job **out, struct beit_error *err)
{
  struct beit_serve_job *j = *out = calloc(1, sizeof *j);
  if (!j)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "serve: out of memory");
  limit_malloc_arenas(); /* before any thread */
  /* Every thread started from here inherits the blocked signals; this one takes them. */
  sigemptyset(&j->sigs);
  sigaddset(&j->sigs, SIGINT);
  sigaddset(&j->sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &j->sigs, NULL);
  signal(SIGPIPE, SIG_IGN);

  struct beit_serve_options sopt = o->server;
  struct beit_infer_options iopt = o->infer;
  enum beit_status st;
  if ((st = resolve_precision(&iopt, err)) || (st = load_secrets(o, j, err)))
    return st;
  sopt.auth_token = j->token;
  sopt.tls_cert_pem = j->cert_pem;
  sopt.tls_key_pem = j->key_pem;
  if ((st = beit_serve_start(&j->srv, &sopt, err)))
    return st;
  announce_listening(&sopt, j, o->model_dir);
  if ((st = load_in_thread(j, o->model_dir, &iopt, err)))
    return st;
  announce_ready(&sopt, j, iopt.max_batch);
  int sig = 0;
  sigwait(&j->sigs, &sig);
  drain(j, sig, o->drain_timeout_s);
  return BEIT_STATUS_OK;
}

void beit_serve_run_end(struct beit_serve_job *j)
{
  if (!j)
    return;
  if (j->srv) {
    struct beit_serve_stats st;
    beit_serve_stats(j->srv, &st);
    beit_serve_stop(j->srv);
    fprintf(stderr, "beit serve: %llu requests (%llu ok, %llu client errors, %llu server errors), "
            "%llu images in %llu batches, %llu slow connections closed (--read-timeout)\n",
            (unsigned long long)st.requests, (unsigned long long)st.ok,
            (unsigned long long)st.client_errors, (unsigned long long)st.server_errors,
            (unsigned long long)st.images, (unsigned long long)st.batches,
            (unsigned long long)st.read_timeouts);
  }
  beit_infer_free(j->inf);
  beit_serve_secret_free(j->token);
  beit_serve_secret_free(j->key_pem);
  free(j->cert_pem);
  free(j);
}
