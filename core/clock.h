/* The one wall clock of timings, logs and deadlines: seconds on CLOCK_MONOTONIC (differences are
 * elapsed time, immune to changes of the system clock). */
#ifndef BEIT_CORE_CLOCK_H
#define BEIT_CORE_CLOCK_H

#include <time.h>

static inline double beit_clock_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
