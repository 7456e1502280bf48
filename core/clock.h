/* The one wall clock of timings, logs and deadlines: seconds on CLOCK_MONOTONIC (differences are
 * elapsed time, immune to changes of the system clock). */
#ifndef BEIT_CORE_CLOCK_H
#define BEIT_CORE_CLOCK_H

#include <pthread.h>
#include <time.h>

static inline double beit_clock_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A condition variable whose timed waits are deadlines on this clock. */
static inline void beit_clock_cond_init(pthread_cond_t *c)
{
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  pthread_cond_init(c, &a);
  pthread_condattr_destroy(&a);
}

/* Deadline t (seconds on this clock) as pthread_cond_timedwait's absolute time on a condition
 * variable from beit_clock_cond_init; past 1e15 s (infinity included) it is 1e15 s: never. */
static inline struct timespec beit_clock_timespec(double t)
{
  struct timespec ts;
  if (!(t < 1e15))
    t = 1e15;
  ts.tv_sec = (time_t)t;
  ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  return ts;
}

#endif
