/* Seeds and dictionary of tests/fuzz_shard.c for the driver build (fuzz_driver.h):
 *   'R' seeds: datasets written by the project's own writers (beit_shard_writer,
 *       beit_data_index_write) into a temporary folder and read back, index.json + NUL + shard
 *       file, and index.json near misses around them (run only with BEIT_FUZZ_SHARD_RAW=1);
 *   'S' seeds: described shards (fuzz_shard.c, write_described) as the writer lays them out,
 *       then one broken rule of the schema each: types, ranks, checksums, offsets, labels,
 *       attributes, lengths the file does not hold; and index.json near misses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data_internal.h"
#include "fuzz_driver.h"

static char tmp[64];
static char shard_buf[1 << 20], index_buf[1 << 16];

static size_t slurp(const char *name, char *buf, size_t cap)
{
  char path[128];
  snprintf(path, sizeof path, "%s/%s", tmp, name);
  FILE *f = fopen(path, "rb");
  size_t n = f ? fread(buf, 1, cap, f) : 0;
  if (f)
    fclose(f);
  unlink(path);
  return n == cap ? 0 : n;
}

/* mode byte + index text + NUL + shard */
static void add(char mode, const char *index, size_t index_len, const void *shard,
                size_t shard_len)
{
  char *buf = malloc(2 + index_len + shard_len);
  if (!buf)
    abort();
  buf[0] = mode;
  memcpy(buf + 1, index, index_len);
  buf[1 + index_len] = '\0';
  memcpy(buf + 2 + index_len, shard, shard_len);
  fuzz_add_seed(buf, 2 + index_len + shard_len);
  free(buf);
}

/* A dataset of n records of task by the project's writers, kept in index_buf and shard_buf. */
static int write_dataset(enum beit_data_task task, size_t n, size_t *index_len, size_t *shard_len)
{
  struct beit_shard_writer w;
  struct beit_error err = {0};
  char path[128];
  snprintf(path, sizeof path, "%s/shard-00000.h5", tmp);
  if (beit_shard_writer_init(&w, path, task, 0, &err))
    goto fail;
  for (size_t i = 0; i < n; i++) {
    uint8_t bytes[64];
    for (size_t k = 0; k < sizeof bytes; k++)
      bytes[k] = (uint8_t)(i * 31 + k);
    int32_t labels[3] = {(int32_t)(i % 3), 2, 0};
    size_t nl = task == BEIT_DATA_TASK_MULTICLASS ? 1 : i % 3; /* multilabel: 0, 1, 2 labels */
    char key[32];
    snprintf(key, sizeof key, "img-%zu.png", i);
    if (beit_shard_writer_add(&w, bytes, 5 + 7 * i % 40, labels, nl, key, &err)) {
      beit_shard_writer_free(&w);
      goto fail;
    }
  }
  if (beit_shard_writer_close(&w, &err))
    goto fail;
  char *names[3] = {"cat", "dog", "\xc3\xa9t\xc3\xa9"};
  if (beit_data_index_write(tmp, task, names, 3, &n, 1, &err))
    goto fail;
  *index_len = slurp("index.json", index_buf, sizeof index_buf);
  *shard_len = slurp("shard-00000.h5", shard_buf, sizeof shard_buf);
  return *index_len && *shard_len ? 0 : -1;
fail:
  fprintf(stderr, "fuzz_shard: %s\n", err.message);
  return -1;
}

static int raw_seeds(void)
{
  size_t il = 0, sl = 0;
  static const enum beit_data_task tasks[] = {BEIT_DATA_TASK_MULTICLASS,
                                              BEIT_DATA_TASK_MULTILABEL};
  for (int t = 0; t < 2; t++)
    for (size_t n = 0; n <= 6; n += 3) {
      if (write_dataset(tasks[t], n, &il, &sl))
        return -1;
      add('R', index_buf, il, shard_buf, sl);
    }
  /* around the last one: multilabel, 6 records, 3 classes */
  static const char *const misses[] = {
      "{\"format_version\": 1, \"task\": \"multilabel\", \"num_classes\": 3, \"num_records\": 7, "
      "\"class_names\": [\"a\", \"b\", \"c\"], \"shards\": [{\"file\": \"shard-00000.h5\", "
      "\"count\": 6}]}",
      "{\"format_version\": 1, \"task\": \"multiclass\", \"class_names\": [\"a\", \"b\", \"c\"], "
      "\"shards\": [{\"file\": \"shard-00000.h5\", \"count\": 6}, {\"file\": \"shard-00000.h5\", "
      "\"count\": 6}, {\"file\": \"shard-00000.h5\", \"count\": 0}]}",
  };
  for (size_t i = 0; i < sizeof misses / sizeof misses[0]; i++)
    add('R', misses[i], strlen(misses[i]), shard_buf, sl);
  return 0;
}

/* ------------------------------------------------------------- described shards ('S') */

enum { IMAGES, OFFSETS, KEYS, LABELS, LABEL_OFFSETS, LABEL_VALUES, EXTRA };
enum { U8, I8, I16, I32, U32, I64, U64, F64, STR };
enum { FL = 1, RANK2 = 2, SCALAR = 4, UNWRITTEN = 8, HUGE = 16, CONTIGUOUS = 32, UTF8 = 64 };
enum { A_SCHEMA = 1, A_NUM_RECORDS = 2, A_TASK = 4, A_TASK_INT = 8 };

struct desc {
  uint8_t b[16384];
  size_t n;
};

static void put(struct desc *d, uint64_t v, int bytes)
{
  for (int i = 0; i < bytes && d->n < sizeof d->b; i++)
    d->b[d->n++] = (uint8_t)(v >> (8 * i));
}

static void header(struct desc *d, int flags, int schema, int64_t num_records, int task)
{
  d->n = 0;
  put(d, (uint64_t)flags, 1);
  put(d, (uint64_t)schema, 1);
  put(d, (uint64_t)num_records, 8);
  put(d, (uint64_t)task, 1);
}

static void dataset(struct desc *d, int name, int type, int str_size, int flags, unsigned n,
                    const void *data, size_t nbytes)
{
  put(d, (uint64_t)name, 1);
  put(d, (uint64_t)type, 1);
  put(d, (uint64_t)(str_size - 1), 2);
  put(d, (uint64_t)flags, 1);
  put(d, n, 2);
  for (size_t i = 0; i < nbytes; i++)
    put(d, ((const uint8_t *)data)[i], 1);
}

static void add_described(const struct desc *d, const char *task, const char *count)
{
  int n = snprintf(index_buf, sizeof index_buf, "{\"format_version\": 1, \"task\": \"%s\", "
                   "\"num_classes\": 2, \"class_names\": [\"a\", \"b\"], \"num_records\": %s, "
                   "\"shards\": [{\"file\": \"shard-00000.h5\", \"count\": %s}]}", task, count,
                   count);
  add('S', index_buf, (size_t)n, d->b, d->n);
}

static const int64_t offs[] = {0, 4, 9, 12}, loffs[] = {0, 1, 1, 3};
static const int32_t labels[] = {0, 1, 1};
static const uint8_t img[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
static const char keys[3][8] = {"a", "bb", "\xc3\xa9"};

/* The multiclass shard of 3 records with dataset `which` replaced by what follows in d2 (or
 * dropped when d2 is NULL). */
static void multiclass(int hflags, int schema, int64_t num_records, int task, int which,
                       const struct desc *d2, const char *count)
{
  struct desc d;
  header(&d, hflags, schema, num_records, task);
  if (which != IMAGES)
    dataset(&d, IMAGES, U8, 1, FL, 12, img, sizeof img);
  if (which != OFFSETS)
    dataset(&d, OFFSETS, I64, 1, FL, 4, offs, sizeof offs);
  if (which != KEYS)
    dataset(&d, KEYS, STR, 8, FL | UTF8, 3, keys, sizeof keys);
  if (which != LABELS)
    dataset(&d, LABELS, I32, 1, FL, 3, labels, sizeof labels);
  for (size_t i = 0; d2 && i < d2->n; i++)
    put(&d, d2->b[i], 1);
  add_described(&d, "multiclass", count);
}

#define ALL_ATTRS (A_SCHEMA | A_NUM_RECORDS | A_TASK)

/* One replacement dataset for multiclass(). */
static void variant(int which, int name, int type, int str_size, int flags, unsigned n,
                    const void *data, size_t nbytes)
{
  struct desc d = {{0}, 0};
  dataset(&d, name, type, str_size, flags, n, data, nbytes);
  multiclass(ALL_ATTRS, 1, 3, 0, which, &d, "3");
}

static void described_seeds(void)
{
  static const int64_t decreasing[] = {0, 5, 3, 12}, short_offs[] = {0, 4, 9, 11};
  static const int64_t past[] = {0, 4, 9, 13}, negative[] = {-4, 4, 9, 12};
  static const int64_t lbad[] = {0, 2, 1, 3}, lpast[] = {0, 1, 1, 9}, lstart[] = {1, 1, 1, 3};
  static const int32_t out_of_range[] = {0, 2, -1}, offs32[] = {0, 4, 9, 12};
  static const char long_keys[3][2000] = {"x", "y", "z"};
  multiclass(ALL_ATTRS, 1, 3, 0, -1, NULL, "3"); /* as the writer lays it out */
  /* offsets */
  variant(OFFSETS, OFFSETS, I64, 1, FL, 4, decreasing, sizeof decreasing);
  variant(OFFSETS, OFFSETS, I64, 1, FL, 4, short_offs, sizeof short_offs);
  variant(OFFSETS, OFFSETS, I64, 1, FL, 4, past, sizeof past);
  variant(OFFSETS, OFFSETS, I64, 1, FL, 4, negative, sizeof negative);
  variant(OFFSETS, OFFSETS, I64, 1, 0, 4, offs, sizeof offs);
  variant(OFFSETS, OFFSETS, I64, 1, CONTIGUOUS, 4, offs, sizeof offs);
  variant(OFFSETS, OFFSETS, I32, 1, FL, 4, offs32, sizeof offs32);
  variant(OFFSETS, OFFSETS, U64, 1, FL, 4, offs, sizeof offs);
  variant(OFFSETS, OFFSETS, F64, 1, FL, 4, offs, sizeof offs);
  variant(OFFSETS, OFFSETS, I64, 1, FL | RANK2, 4, offs, sizeof offs);
  variant(OFFSETS, OFFSETS, I64, 1, SCALAR, 1, offs, 8);
  variant(OFFSETS, OFFSETS, I64, 1, FL | HUGE, 2, NULL, 0);
  variant(OFFSETS, EXTRA, I64, 1, FL, 4, offs, sizeof offs); /* offsets under another name */
  /* images */
  variant(IMAGES, IMAGES, I8, 1, FL, 12, img, sizeof img);
  variant(IMAGES, IMAGES, U8, 1, 0, 12, img, sizeof img);
  variant(IMAGES, IMAGES, U8, 1, FL | RANK2, 12, img, sizeof img);
  variant(IMAGES, IMAGES, U8, 1, FL | UNWRITTEN, 12, NULL, 0);
  variant(IMAGES, IMAGES, U8, 1, FL | HUGE, 0, NULL, 0);
  /* keys */
  variant(KEYS, KEYS, STR, 2000, FL, 3, long_keys, sizeof long_keys);
  variant(KEYS, KEYS, STR, 1, FL, 3, "abc", 3);
  variant(KEYS, KEYS, STR, 8, FL, 2, keys, 16);
  variant(KEYS, KEYS, I32, 1, FL, 3, labels, sizeof labels);
  variant(KEYS, KEYS, STR, 8, FL | HUGE, 0, NULL, 0);
  /* labels */
  variant(LABELS, LABELS, I32, 1, FL, 3, out_of_range, sizeof out_of_range);
  variant(LABELS, LABELS, I32, 1, FL, 2, labels, 8);
  variant(LABELS, LABELS, I64, 1, FL, 3, offs, 24);
  variant(LABELS, LABELS, I32, 1, FL | HUGE, 0, NULL, 0);
  variant(LABELS, EXTRA, I32, 1, FL, 3, labels, sizeof labels);
  /* attributes */
  multiclass(A_NUM_RECORDS | A_TASK, 1, 3, 0, -1, NULL, "3");
  multiclass(ALL_ATTRS, 2, 3, 0, -1, NULL, "3");
  multiclass(A_SCHEMA | A_TASK, 1, 3, 0, -1, NULL, "3");
  multiclass(ALL_ATTRS, 1, 4, 0, -1, NULL, "3");
  multiclass(ALL_ATTRS, 1, -1, 0, -1, NULL, "3");
  multiclass(ALL_ATTRS, 1, 3, 1, -1, NULL, "3");
  multiclass(ALL_ATTRS, 1, 3, 3, -1, NULL, "3");
  multiclass(A_SCHEMA | A_NUM_RECORDS | A_TASK_INT, 1, 3, 0, -1, NULL, "3");
  /* index.json against the shard */
  multiclass(ALL_ATTRS, 1, 3, 0, -1, NULL, "3.5");
  multiclass(ALL_ATTRS, 1, 3, 0, -1, NULL, "1e300");
  multiclass(ALL_ATTRS, 1, 3, 0, -1, NULL, "-0");
  multiclass(ALL_ATTRS, 1, 3, 0, -1, NULL, "18446744073709551615");
  multiclass(ALL_ATTRS, 1, 3, 0, -1, NULL, "9007199254740993");
  /* multilabel */
  struct desc d;
  const int64_t *lo[] = {loffs, lbad, lpast, lstart};
  for (int v = 0; v < 4; v++) {
    header(&d, ALL_ATTRS, 1, 3, 1);
    dataset(&d, IMAGES, U8, 1, FL, 12, img, sizeof img);
    dataset(&d, OFFSETS, I64, 1, FL, 4, offs, sizeof offs);
    dataset(&d, KEYS, STR, 8, FL, 3, keys, sizeof keys);
    dataset(&d, LABEL_OFFSETS, I64, 1, FL, 4, lo[v], 32);
    dataset(&d, LABEL_VALUES, I32, 1, FL, 3, labels, sizeof labels);
    add_described(&d, "multilabel", "3");
  }
  header(&d, ALL_ATTRS, 1, 3, 1);
  dataset(&d, IMAGES, U8, 1, FL, 12, img, sizeof img);
  dataset(&d, OFFSETS, I64, 1, FL, 4, offs, sizeof offs);
  dataset(&d, KEYS, STR, 8, FL, 3, keys, sizeof keys);
  dataset(&d, LABEL_OFFSETS, I64, 1, FL, 4, loffs, sizeof loffs);
  dataset(&d, LABEL_VALUES, I32, 1, FL | HUGE, 3, NULL, 0);
  add_described(&d, "multilabel", "3");
  /* an empty shard file, then none */
  add('S', index_buf, strlen(index_buf), "", 0);
  char none[sizeof index_buf + 1];
  fuzz_add_seed(none, (size_t)snprintf(none, sizeof none, "S%s", index_buf));
}

static int make_seeds(void)
{
  snprintf(tmp, sizeof tmp, "/tmp/beit-fuzz-shard-seeds-XXXXXX");
  if (!mkdtemp(tmp))
    return -1;
  int bad = raw_seeds();
  rmdir(tmp);
  described_seeds();
  return bad ? -1 : 0;
}

static const char *const tokens[] = {
    "\"", "{", "}", "[", "]", ",", ":", "null", "-1", "0", "1", "0.5", "1e300", "4294967296",
    "\"count\"", "\"file\"", "\"shards\"", "\"class_names\"", "\"num_records\"",
    "\"num_classes\"", "\"task\"", "\"multilabel\"", "\"multiclass\"", "\"format_version\"",
    "images", "offsets", "labels", "label_offsets", "label_values", "keys", "schema_version",
    "num_records", "HEAP", "TREE", "SNOD", "OHDR", "\x89HDF\r\n\x1a\n", NULL};

const struct fuzz_target fuzz_target = {"shard", ".bin", 1 << 16, tokens, make_seeds};
