/* A bounded, deterministic fuzz driver for tests/fuzz_request.c when libFuzzer is not used:
 * seeds (valid requests with real base64 PNGs, data URIs, rows, URLs, near misses) mutated by
 * bit flips, byte edits, insertions of JSON punctuation, truncation, duplication and splicing,
 * each run through LLVMFuzzerTestOneInput under AddressSanitizer + UBSan.
 *   fuzz_request_asan [--runs N] [--seed S]    fuzz (exit 0 = no crash)
 *   fuzz_request_asan --write-seeds DIR        write the seeds as a libFuzzer corpus */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
unsigned char *stbi_write_png_to_mem(const unsigned char *pixels, int stride_bytes, int x, int y,
                                     int n, int *out_len);

#define MAX_SEEDS 32
#define MAX_LEN 8192

static char *seeds[MAX_SEEDS];
static size_t seed_len[MAX_SEEDS], nseeds;

static void add_seed(const char *s)
{
  if (nseeds < MAX_SEEDS && (seeds[nseeds] = strdup(s)))
    seed_len[nseeds] = strlen(s), nseeds++;
}

static void make_seeds(void)
{
  uint8_t rgb[6 * 5 * 3];
  for (size_t i = 0; i < sizeof rgb; i++)
    rgb[i] = (uint8_t)(i * 41);
  int len = 0;
  unsigned char *png = stbi_write_png_to_mem(rgb, 6 * 3, 6, 5, 3, &len);
  char b64[1024] = "";
  if (png && len > 0 && (size_t)len * 4 / 3 + 8 < sizeof b64)
    b64[beit_base64_encode(b64, png, (size_t)len)] = '\0';
  free(png);
  char buf[4096];
  snprintf(buf, sizeof buf, "{\"input_data\": {\"columns\": [\"image\"], \"index\": [0, 1], "
           "\"data\": [\"%s\", \"%s\"]}}", b64, b64);
  add_seed(buf);
  snprintf(buf, sizeof buf, "{\"input_data\": {\"data\": [\"data:image/png;base64,%s\"]}}", b64);
  add_seed(buf);
  snprintf(buf, sizeof buf, "{\"input_data\": {\"columns\": [\"id\", \"image\"], \"data\": "
           "[[1, \"%s\"], [2, \"Zm9vYmFy\"]]}}", b64);
  add_seed(buf);
  add_seed("{\"input_data\": {\"columns\": [\"image\"], \"index\": [0], \"data\": "
           "[\"https://127.0.0.1/a.png\"]}}");
  add_seed("{\"input_data\": {\"data\": [\"Zm9v\", \"Zg==\", \"_-8=\", \"\\u0000\"]}}");
  add_seed("{\"input_data\": {\"data\": [\"iVBORw0KGgoAAAANSUhEUgAAdTAAAHUwCAIAAAA=\"]}}");
  add_seed("{\"input_data\": {\"index\": [], \"data\": []}}");
  add_seed("{\"input_data\": {\"data\": [1, null, true, {}, []]}}");
  add_seed("[{\"input_data\": 0}]");
  add_seed("{\"input_data\": {\"data\": [\"ftp://x/y\", \"data:,x\"]}} ");
}

static uint64_t rng_state;
static uint32_t rnd(void)
{
  rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
  return (uint32_t)(rng_state >> 33);
}

static size_t mutate(uint8_t *buf, size_t n)
{
  static const char *const tokens[] = {"\"", "{", "}", "[", "]", ",", ":", "\\", "\\u0000",
                                       "null", "1e999", "-", "=", "data:", "http://",
                                       "\"input_data\"", "\"data\"", "\"columns\"", "\"index\"",
                                       "\"image\"", "AAAA", "////", "\xff\xfe", "\n"};
  int rounds = 1 + (int)(rnd() % 4);
  for (int r = 0; r < rounds; r++) {
    size_t pos = n ? rnd() % (n + 1) : 0;
    switch (rnd() % 7) {
    case 0: /* flip a bit */
      if (n)
        buf[pos % n] ^= (uint8_t)(1u << (rnd() % 8));
      break;
    case 1: /* set a byte */
      if (n)
        buf[pos % n] = (uint8_t)rnd();
      break;
    case 2: { /* insert a token */
      const char *t = tokens[rnd() % (sizeof tokens / sizeof tokens[0])];
      size_t k = strlen(t);
      if (n + k < MAX_LEN) {
        memmove(buf + pos + k, buf + pos, n - pos);
        memcpy(buf + pos, t, k);
        n += k;
      }
      break;
    }
    case 3: /* delete a range */
      if (n) {
        size_t k = 1 + rnd() % 16;
        if (pos + k > n)
          k = n - pos;
        memmove(buf + pos, buf + pos + k, n - pos - k);
        n -= k;
      }
      break;
    case 4: /* truncate */
      n = pos;
      break;
    case 5: { /* duplicate a range */
      if (!n)
        break;
      size_t start = rnd() % n, k = 1 + rnd() % 64;
      if (start + k > n)
        k = n - start;
      if (n + k < MAX_LEN) {
        memmove(buf + pos + k, buf + pos, n - pos);
        memmove(buf + pos, buf + start + (start >= pos ? k : 0), k);
        n += k;
      }
      break;
    }
    default: { /* splice another seed's tail */
      size_t s = rnd() % nseeds, from = seed_len[s] ? rnd() % seed_len[s] : 0;
      size_t k = seed_len[s] - from;
      if (pos + k < MAX_LEN) {
        memcpy(buf + pos, seeds[s] + from, k);
        n = pos + k;
      }
      break;
    }
    }
  }
  return n;
}

int main(int argc, char **argv)
{
  long runs = 4000;
  unsigned long seed = 1;
  const char *seed_dir = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--runs") && i + 1 < argc)
      runs = strtol(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
      seed = strtoul(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--write-seeds") && i + 1 < argc)
      seed_dir = argv[++i];
    else {
      fprintf(stderr, "usage: %s [--runs N] [--seed S] [--write-seeds DIR]\n", argv[0]);
      return 2;
    }
  }
  make_seeds();
  if (seed_dir) {
    for (size_t i = 0; i < nseeds; i++) {
      char path[4096];
      snprintf(path, sizeof path, "%s/seed-%02zu.json", seed_dir, i);
      FILE *f = fopen(path, "wb");
      if (!f || fwrite(seeds[i], 1, seed_len[i], f) != seed_len[i]) {
        perror(path);
        return 1;
      }
      fclose(f);
    }
    printf("wrote %zu seeds to %s\n", nseeds, seed_dir);
    return 0;
  }
  rng_state = seed * 0x9E3779B97F4A7C15ULL + 1;
  static uint8_t buf[MAX_LEN];
  for (size_t i = 0; i < nseeds; i++) /* the seeds themselves first */
    LLVMFuzzerTestOneInput((const uint8_t *)seeds[i], seed_len[i]);
  for (long r = 0; r < runs; r++) {
    size_t s = rnd() % nseeds, n = seed_len[s];
    memcpy(buf, seeds[s], n);
    /* stacked mutations: a few runs go far from the seed */
    int depth = 1 + (int)(rnd() % 3);
    for (int d = 0; d < depth; d++)
      n = mutate(buf, n);
    /* every input also once as an exact-size heap copy, so reads past the end are caught */
    uint8_t *exact = malloc(n ? n : 1);
    memcpy(exact, buf, n);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
  }
  for (size_t i = 0; i < nseeds; i++)
    free(seeds[i]);
  printf("fuzz_request: %ld mutated runs + %zu seeds, no crash\n", runs, nseeds);
  return 0;
}
