/* The tiny test harness. */
#include "testing.h"

#include <math.h>

int beit_test_failures = 0;
int beit_test_checks = 0;

double check_close(const char *label, const float *got, const float *want, size_t n, double tol)
{
  double maxref = 0.0, maxdiff = 0.0;
  size_t worst = 0;
  int nonfinite = 0;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(got[i]))
      nonfinite = 1;
    double d = fabs((double)got[i] - (double)want[i]);
    if (fabs(want[i]) > maxref)
      maxref = fabs(want[i]);
    if (d > maxdiff) {
      maxdiff = d;
      worst = i;
    }
  }
  double rel = maxdiff / (maxref > 1e-6 ? maxref : 1e-6);
  beit_test_checks++;
  if (nonfinite || rel > tol || n == 0) {
    beit_test_failures++;
    fprintf(stderr, "FAIL %-60s rel %.3e (tol %.1e) at [%zu]: got %.8g want %.8g%s\n", label, rel,
            tol, worst, n ? got[worst] : 0.0, n ? want[worst] : 0.0,
            nonfinite ? " (non-finite)" : "");
  }
  return rel;
}

int test_summary(const char *name)
{
  printf("%s: %d checks, %d failed\n", name, beit_test_checks, beit_test_failures);
  return beit_test_failures ? 1 : 0;
}
