/* The connection watch: what each open connection of the HTTP server is doing and since when,
 * and a thread that closes the ones too slow to send their request (--read-timeout). Not the
 * HTTP layer (http_mhd.c drives it from libmicrohttpd's callbacks) and not the per-request
 * deadline (--timeout, in the scorer).
 *
 * Why: libmicrohttpd's own connection timeout is an inactivity timeout, restarted by every byte
 * that arrives, so a client that sends one byte a second holds a connection (and, one thread
 * per connection, a thread) for ever; a few hundred of them take every slot. Here a connection
 * must deliver its request line and headers within read_timeout of being accepted or of its
 * previous answer, and the body within read_timeout of the headers; a request being scored or
 * answered is never cut.
 *
 * How a connection is cut: shutdown(2) of its socket, which wakes its thread (the read sees the
 * end) and lets libmicrohttpd close it the usual way. Hazard: the descriptor must still be this
 * connection's, not a number reused by a newer one. libmicrohttpd calls the CLOSED notification
 * (beit_conn_watch_remove) before it closes the socket, and both that and the cut run under the
 * watch's lock, so a watched descriptor is always still open. A connection cut while its body
 * arrives first gets a 408 JSON answer (plain HTTP only: under TLS the bytes would have to go
 * through the session); one cut while waiting for a request (idle keep-alive, or headers
 * trickling in) is closed without a word, as an idle keep-alive connection is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "serve.h"

struct beit_conn {
  struct beit_conn *prev, *next;
  int fd;
  enum beit_conn_phase phase;
  double since; /* start of the phase, CLOCK_MONOTONIC seconds */
  int cut;
};

struct beit_conn_watch {
  pthread_mutex_t lock;
  pthread_cond_t wake;
  pthread_t thread;
  int started, stopping;
  double read_timeout_s;
  int tls, log;
  struct beit_conn *head;
  uint64_t cut_count;
  char reply[512]; /* the 408 answer, headers and body */
  size_t reply_len;
};

static const char timeout_body[] =
    "{\"error\": {\"status\": 408, \"index\": null, \"reason\": \"request_timeout\", "
    "\"message\": \"the request was not sent within the read timeout\"}}";

/* Under the lock. */
static void cut(struct beit_conn_watch *w, struct beit_conn *c, double now)
{
  if (c->phase == BEIT_CONN_READING && !w->tls)
    (void)send(c->fd, w->reply, w->reply_len, MSG_NOSIGNAL | MSG_DONTWAIT);
  shutdown(c->fd, SHUT_RDWR);
  c->cut = 1;
  w->cut_count++;
  if (w->log)
    fprintf(stderr, "beit serve: closed a connection that took %.1f s %s (--read-timeout %g)\n",
            now - c->since, c->phase == BEIT_CONN_READING ? "to send its body"
                                                         : "without sending a whole request",
            w->read_timeout_s);
}

static void *watch_main(void *arg)
{
  struct beit_conn_watch *w = arg;
  /* a connection is cut at most a quarter of the timeout (and 250 ms) late */
  double period = w->read_timeout_s / 4 < 0.25 ? w->read_timeout_s / 4 : 0.25;
  pthread_mutex_lock(&w->lock);
  while (!w->stopping) {
    struct timespec until = beit_clock_timespec(beit_clock_now() + period);
    pthread_cond_timedwait(&w->wake, &w->lock, &until);
    double now = beit_clock_now();
    for (struct beit_conn *c = w->head; c && !w->stopping; c = c->next)
      if (!c->cut && c->phase != BEIT_CONN_BUSY && now - c->since > w->read_timeout_s)
        cut(w, c, now);
  }
  pthread_mutex_unlock(&w->lock);
  return NULL;
}

enum beit_status beit_conn_watch_start(struct beit_conn_watch **out, double read_timeout_s,
                                       int tls, int log, struct beit_error *err)
{
  *out = NULL;
  struct beit_conn_watch *w = calloc(1, sizeof *w);
  if (!w)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "server: out of memory");
  w->read_timeout_s = read_timeout_s;
  w->tls = tls;
  w->log = log;
  int n = snprintf(w->reply, sizeof w->reply, "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                   "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                   sizeof timeout_body - 1, timeout_body);
  w->reply_len = (size_t)n;
  pthread_mutex_init(&w->lock, NULL);
  beit_clock_cond_init(&w->wake);
  if (read_timeout_s > 0) {
    if (pthread_create(&w->thread, NULL, watch_main, w)) {
      beit_conn_watch_stop(w);
      return beit_error_set(err, BEIT_STATUS_IO, "server: cannot start the connection watch");
    }
    w->started = 1;
  }
  *out = w;
  return BEIT_STATUS_OK;
}

struct beit_conn *beit_conn_watch_add(struct beit_conn_watch *w, int fd)
{
  struct beit_conn *c = calloc(1, sizeof *c);
  if (!c)
    return NULL; /* not watched: only its inactivity timeout applies */
  c->fd = fd;
  c->phase = BEIT_CONN_WAITING;
  c->since = beit_clock_now();
  pthread_mutex_lock(&w->lock);
  c->next = w->head;
  if (w->head)
    w->head->prev = c;
  w->head = c;
  pthread_mutex_unlock(&w->lock);
  return c;
}

void beit_conn_watch_phase(struct beit_conn_watch *w, struct beit_conn *c,
                           enum beit_conn_phase phase)
{
  if (!c)
    return;
  pthread_mutex_lock(&w->lock);
  c->phase = phase;
  c->since = beit_clock_now();
  pthread_mutex_unlock(&w->lock);
}

void beit_conn_watch_remove(struct beit_conn_watch *w, struct beit_conn *c)
{
  if (!c)
    return;
  pthread_mutex_lock(&w->lock);
  if (c->prev)
    c->prev->next = c->next;
  else
    w->head = c->next;
  if (c->next)
    c->next->prev = c->prev;
  pthread_mutex_unlock(&w->lock);
  free(c);
}

uint64_t beit_conn_watch_cut(struct beit_conn_watch *w)
{
  pthread_mutex_lock(&w->lock);
  uint64_t n = w->cut_count;
  pthread_mutex_unlock(&w->lock);
  return n;
}

void beit_conn_watch_stop(struct beit_conn_watch *w)
{
  if (!w)
    return;
  pthread_mutex_lock(&w->lock);
  w->stopping = 1;
  pthread_cond_broadcast(&w->wake);
  pthread_mutex_unlock(&w->lock);
  if (w->started)
    pthread_join(w->thread, NULL);
  while (w->head) { /* none once the daemon has stopped; kept safe anyway */
    struct beit_conn *c = w->head;
    w->head = c->next;
    free(c);
  }
  pthread_cond_destroy(&w->wake);
  pthread_mutex_destroy(&w->lock);
  free(w);
}
