/* A tiny test harness: checks that count failures, and a non-zero exit on any failure.
 * A test that prints a failure and exits 0 is a defect (STYLE.md anti-patterns). */
#ifndef BEIT_TESTS_TESTING_H
#define BEIT_TESTS_TESTING_H

#include <stddef.h>
#include <stdio.h>

extern int beit_test_failures;
extern int beit_test_checks;

#define CHECK(cond)                                                                 \
  do {                                                                              \
    beit_test_checks++;                                                             \
    if (!(cond)) {                                                                  \
      beit_test_failures++;                                                         \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);      \
    }                                                                               \
  } while (0)

#define CHECK_MSG(cond, ...)                                                        \
  do {                                                                              \
    beit_test_checks++;                                                             \
    if (!(cond)) {                                                                  \
      beit_test_failures++;                                                         \
      fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);      \
      fprintf(stderr, __VA_ARGS__);                                                 \
      fprintf(stderr, "\n");                                                        \
    }                                                                               \
  } while (0)

/* Max relative error |a-b| / max(|b|_inf, floor) over n values; prints label and worst index
 * and counts a failure above tol. Returns the error. */
double check_close(const char *label, const float *got, const float *want, size_t n, double tol);

/* Print the summary line and return the process exit code (0 only if nothing failed). */
int test_summary(const char *name);

#endif
