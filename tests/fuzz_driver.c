/* A bounded, deterministic fuzz driver for builds without libFuzzer (gcc + AddressSanitizer +
 * UBSan in CI): the target's seeds (fuzz_driver.h) mutated by bit flips, byte edits, insertions
 * and overwrites from the target's dictionary, boundary integers written over 1-8 bytes,
 * deletions, truncation, duplication and splicing, each run through LLVMFuzzerTestOneInput as an
 * exact-size heap copy (so a read one past the end is caught).
 *   fuzz_<name>_asan [--runs N] [--seed S] [--replay DIR]...   seeds, DIR's files, N mutations
 *   fuzz_<name>_asan FILE...                                  run these inputs once (a crash)
 *   fuzz_<name>_asan --write-seeds DIR                        the seeds as a libFuzzer corpus
 * Exit 0 means no crash: a crash aborts under the sanitizers, leaving the input that caused it
 * in fuzz_<name>-crash. */
#include "fuzz_driver.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sanitizer/common_interface_defs.h>

#define MAX_SEEDS 256

static uint8_t *seeds[MAX_SEEDS];
static size_t seed_len[MAX_SEEDS], nseeds, longest_seed;

void fuzz_add_seed(const void *bytes, size_t n)
{
  if (nseeds == MAX_SEEDS || !(seeds[nseeds] = malloc(n ? n : 1))) {
    fprintf(stderr, "fuzz_%s: cannot keep seed %zu\n", fuzz_target.name, nseeds);
    abort();
  }
  memcpy(seeds[nseeds], bytes, n);
  seed_len[nseeds++] = n;
  if (n > longest_seed)
    longest_seed = n;
}

/* The input being run, written to fuzz_<name>-crash in the working folder when the process
 * dies (a sanitizer report, an abort of a target's check), to be replayed as FILE. */
static const uint8_t *current;
static size_t current_len;

static void save_current(void)
{
  char path[256];
  snprintf(path, sizeof path, "fuzz_%s-crash", fuzz_target.name);
  FILE *f = current ? fopen(path, "wb") : NULL;
  if (f && fwrite(current, 1, current_len, f) == current_len && fclose(f) == 0)
    dprintf(2, "fuzz_%s: the input is in %s (%zu bytes)\n", fuzz_target.name, path,
            current_len);
  current = NULL;
}

static void on_abort(int sig)
{
  save_current();
  signal(sig, SIG_DFL);
  raise(sig);
}

/* One run on an exact-size copy of n bytes. */
static void run_one(const uint8_t *bytes, size_t n)
{
  uint8_t *exact = malloc(n ? n : 1);
  if (!exact)
    abort();
  memcpy(exact, bytes, n);
  current = exact;
  current_len = n;
  LLVMFuzzerTestOneInput(exact, n);
  current = NULL;
  free(exact);
}

static uint64_t rng_state;
static uint32_t rnd(void)
{
  rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
  return (uint32_t)(rng_state >> 33);
}

static size_t ntokens(void)
{
  size_t n = 0;
  while (fuzz_target.tokens && fuzz_target.tokens[n])
    n++;
  return n;
}

/* A few stacked edits of buf (n bytes, room for cap). */
static size_t mutate(uint8_t *buf, size_t n, size_t cap)
{
  static const uint64_t boundary[] = {0, 1, 2, 7, 8, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000,
                                      0xffff, 0x10000, 0x7fffffff, 0x80000000u, 0xffffffffu,
                                      0x100000000ull, 0x7fffffffffffffffull,
                                      0x8000000000000000ull, 0xffffffffffffffffull};
  size_t nt = ntokens();
  int rounds = 1 + (int)(rnd() % 4);
  for (int r = 0; r < rounds; r++) {
    size_t pos = n ? rnd() % (n + 1) : 0;
    switch (rnd() % 9) {
    case 0: /* flip a bit */
      if (n)
        buf[pos % n] ^= (uint8_t)(1u << (rnd() % 8));
      break;
    case 1: /* set a byte */
      if (n)
        buf[pos % n] = (uint8_t)rnd();
      break;
    case 2: { /* insert a token */
      if (!nt)
        break;
      const char *t = fuzz_target.tokens[rnd() % nt];
      size_t k = strlen(t);
      if (n + k <= cap) {
        memmove(buf + pos + k, buf + pos, n - pos);
        memcpy(buf + pos, t, k);
        n += k;
      }
      break;
    }
    case 3: { /* overwrite with a token */
      if (!nt)
        break;
      const char *t = fuzz_target.tokens[rnd() % nt];
      size_t k = strlen(t);
      if (pos + k <= n)
        memcpy(buf + pos, t, k);
      break;
    }
    case 4: { /* a boundary integer over 1, 2, 4 or 8 bytes, little or big endian */
      uint64_t v = boundary[rnd() % (sizeof boundary / sizeof boundary[0])];
      size_t k = (size_t)1 << (rnd() % 4);
      int big = rnd() % 2;
      if (rnd() % 4 == 0)
        v += (uint64_t)(rnd() % 3) - 1; /* off by one */
      for (size_t i = 0; i < k && pos + k <= n; i++)
        buf[pos + i] = (uint8_t)(v >> (8 * (big ? k - 1 - i : i)));
      break;
    }
    case 5: /* delete a range */
      if (n) {
        size_t k = 1 + rnd() % 16;
        if (pos + k > n)
          k = n - pos;
        memmove(buf + pos, buf + pos + k, n - pos - k);
        n -= k;
      }
      break;
    case 6: /* truncate */
      n = pos;
      break;
    case 7: { /* duplicate a range */
      if (!n)
        break;
      size_t start = rnd() % n, k = 1 + rnd() % 64;
      if (start + k > n)
        k = n - start;
      if (n + k <= cap) {
        memmove(buf + pos + k, buf + pos, n - pos);
        memmove(buf + pos, buf + start + (start >= pos ? k : 0), k);
        n += k;
      }
      break;
    }
    default: { /* splice another seed's tail */
      size_t s = rnd() % nseeds, from = seed_len[s] ? rnd() % seed_len[s] : 0;
      size_t k = seed_len[s] - from;
      if (pos + k <= cap) {
        memcpy(buf + pos, seeds[s] + from, k);
        n = pos + k;
      }
      break;
    }
    }
  }
  return n;
}

/* The whole of a file (NULL when unreadable). */
static uint8_t *read_file(const char *path, size_t *n)
{
  FILE *f = fopen(path, "rb");
  uint8_t *buf = NULL;
  size_t cap = 0;
  *n = 0;
  if (!f)
    return NULL;
  for (;;) {
    if (*n == cap) {
      uint8_t *p = realloc(buf, cap = cap ? 2 * cap : 4096);
      if (!p)
        abort();
      buf = p;
    }
    size_t got = fread(buf + *n, 1, cap - *n, f);
    *n += got;
    if (got == 0)
      break;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    return NULL;
  }
  return buf;
}

static int run_file(const char *path)
{
  size_t n;
  uint8_t *bytes = read_file(path, &n);
  if (!bytes) {
    perror(path);
    return -1;
  }
  run_one(bytes, n);
  free(bytes);
  return 0;
}

static int cmp_names(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file of dir, in name order; how many, or -1. */
static long replay_dir(const char *dir)
{
  DIR *d = opendir(dir);
  if (!d) {
    perror(dir);
    return -1;
  }
  char **names = NULL;
  size_t count = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    if (count == cap && !(names = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof *names)))
      abort();
    if (!(names[count++] = strdup(e->d_name)))
      abort();
  }
  closedir(d);
  qsort(names, count, sizeof *names, cmp_names);
  int failed = 0;
  for (size_t i = 0; i < count; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    failed |= run_file(path) != 0;
    free(names[i]);
  }
  free(names);
  return failed ? -1 : (long)count;
}

static int write_seeds(const char *dir)
{
  for (size_t i = 0; i < nseeds; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/seed-%02zu%s", dir, i, fuzz_target.seed_suffix);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(seeds[i], 1, seed_len[i], f) != seed_len[i] || fclose(f) != 0) {
      perror(path);
      return 1;
    }
  }
  printf("wrote %zu seeds to %s\n", nseeds, dir);
  return 0;
}

int main(int argc, char **argv)
{
  long runs = 4000, replayed = 0;
  unsigned long seed = 1;
  const char *seed_dir = NULL;
  const char *replay[16];
  int nreplay = 0, nfiles = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--runs") && i + 1 < argc)
      runs = strtol(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
      seed = strtoul(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--write-seeds") && i + 1 < argc)
      seed_dir = argv[++i];
    else if (!strcmp(argv[i], "--replay") && i + 1 < argc && nreplay < 16)
      replay[nreplay++] = argv[++i];
    else if (argv[i][0] != '-')
      argv[1 + nfiles++] = argv[i]; /* inputs to run once, gathered at the front */
    else {
      fprintf(stderr, "usage: %s [--runs N] [--seed S] [--replay DIR]... | FILE... | "
              "--write-seeds DIR\n", argv[0]);
      return 2;
    }
  }
  __sanitizer_set_death_callback(save_current);
  signal(SIGABRT, on_abort);
  if (nfiles) {
    for (int i = 1; i <= nfiles; i++)
      if (run_file(argv[i]))
        return 1;
    printf("fuzz_%s: %d inputs, no crash\n", fuzz_target.name, nfiles);
    return 0;
  }
  if (fuzz_target.make_seeds() != 0 || nseeds == 0) {
    fprintf(stderr, "fuzz_%s: the seeds could not be made\n", fuzz_target.name);
    return 1;
  }
  if (seed_dir)
    return write_seeds(seed_dir);
  for (int i = 0; i < nreplay; i++) { /* regression inputs of bugs found before */
    long k = replay_dir(replay[i]);
    if (k < 0)
      return 1;
    replayed += k;
  }
  for (size_t i = 0; i < nseeds; i++)
    run_one(seeds[i], seed_len[i]);
  size_t cap = fuzz_target.max_len > longest_seed ? fuzz_target.max_len : longest_seed;
  uint8_t *buf = malloc(cap);
  if (!buf)
    abort();
  rng_state = seed * 0x9E3779B97F4A7C15ULL + 1;
  for (long r = 0; r < runs; r++) {
    size_t s = rnd() % nseeds, n = seed_len[s];
    memcpy(buf, seeds[s], n);
    /* stacked mutations: a few runs go far from the seed */
    int depth = 1 + (int)(rnd() % 3);
    for (int d = 0; d < depth; d++)
      n = mutate(buf, n, cap);
    run_one(buf, n);
  }
  free(buf);
  for (size_t i = 0; i < nseeds; i++)
    free(seeds[i]);
  printf("fuzz_%s: %ld mutated runs + %zu seeds + %ld regression inputs, no crash\n",
         fuzz_target.name, runs, nseeds, replayed);
  return 0;
}
