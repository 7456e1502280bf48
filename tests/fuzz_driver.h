/* The contract between tests/fuzz_driver.c, a bounded deterministic mutation fuzzer for builds
 * without libFuzzer, and one fuzz target. A target is two files: fuzz_<name>.c defines
 * LLVMFuzzerTestOneInput (the same file clang's libFuzzer build uses) and fuzz_<name>_seeds.c
 * defines fuzz_target below, linked only into the driver build. tests/fuzz.cmake
 * (beit_add_fuzz_target) builds both. */
#ifndef BEIT_TESTS_FUZZ_DRIVER_H
#define BEIT_TESTS_FUZZ_DRIVER_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_target {
  const char *name;          /* in messages: "fuzz_<name>: N mutated runs ..." */
  const char *seed_suffix;   /* --write-seeds file names: seed-07<suffix> */
  size_t max_len;            /* longest mutated input; seeds may be longer (they run as they are) */
  const char *const *tokens; /* NULL-terminated dictionary the mutator inserts and overwrites with */
  /* Add the seeds with fuzz_add_seed: valid inputs and near misses. 0, or -1 when one could not
   * be made (the driver then fails: a fuzzer without its seeds tests little). */
  int (*make_seeds)(void);
};

extern const struct fuzz_target fuzz_target;

/* Keep a copy of n bytes as a seed. */
void fuzz_add_seed(const void *bytes, size_t n);

#endif
