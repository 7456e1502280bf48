/* Seeds and dictionary of tests/fuzz_safetensors.c for the driver build (fuzz_driver.h): files
 * written by beit_safetensors_write (read back from a temporary folder), files of the dtypes the
 * writer does not write, and near misses, each one rule of the reader broken. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_driver.h"
#include "safetensors.h"

/* A file from its header text and data bytes. */
static void add_file(const char *header, const void *data, size_t nbytes)
{
  size_t h = strlen(header), n = 8 + h + nbytes;
  unsigned char *buf = malloc(n);
  if (!buf)
    abort();
  for (int i = 0; i < 8; i++)
    buf[i] = (unsigned char)((unsigned long long)h >> (8 * i));
  memcpy(buf + 8, header, h);
  memcpy(buf + 8 + h, data, nbytes);
  fuzz_add_seed(buf, n);
  free(buf);
}

/* Write entries with the project's writer and keep the file's bytes. */
static int add_written(const char *dir, const struct beit_st_entry *e, size_t count,
                       const char *const *metadata)
{
  char path[4200];
  snprintf(path, sizeof path, "%s/seed.safetensors", dir);
  struct beit_error err = {0};
  if (beit_safetensors_write(path, e, count, metadata, &err) != BEIT_STATUS_OK) {
    fprintf(stderr, "fuzz_safetensors: %s\n", err.message);
    return -1;
  }
  FILE *f = fopen(path, "rb");
  unsigned char buf[8192];
  size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
  if (f)
    fclose(f);
  unlink(path);
  if (n == 0 || n == sizeof buf)
    return -1;
  fuzz_add_seed(buf, n);
  return 0;
}

static int written_seeds(void)
{
  char dir[] = "/tmp/beit-fuzz-st-XXXXXX";
  if (!mkdtemp(dir))
    return -1;
  float w[6] = {1.0f, -2.5f, 0.0f, 3.25f, 1e-3f, -0.0f};
  int64_t ids[4] = {0, -1, 1LL << 40, 7};
  int32_t i32[3] = {-7, 0, 1 << 30};
  uint8_t u8[5] = {0, 1, 127, 128, 255};
  const char *const meta[] = {"format", "pt", "note", "a \"quoted\"\nvalue", NULL};
  struct beit_st_entry all[] = {
      {"encoder.w", BEIT_DTYPE_F32, 2, {2, 3}, w},
      {"ids", BEIT_DTYPE_I64, 1, {4}, ids},
      {"i32", BEIT_DTYPE_I32, 3, {1, 3, 1}, i32},
      {"bytes", BEIT_DTYPE_U8, 1, {5}, u8},
      {"mask", BEIT_DTYPE_BOOL, 2, {1, 5}, u8},
      {"scalar", BEIT_DTYPE_F32, 0, {0}, w},
      {"empty", BEIT_DTYPE_F32, 2, {0, 3}, NULL},
  };
  int bad = add_written(dir, all, sizeof all / sizeof all[0], meta) ||
            add_written(dir, all, 1, NULL) || add_written(dir, all + 5, 2, NULL) ||
            add_written(dir, NULL, 0, NULL);
  rmdir(dir);
  return bad ? -1 : 0;
}

static int make_seeds(void)
{
  if (written_seeds())
    return -1;
  static const unsigned char d[64] = {0x00, 0x3c, 0x00, 0x80, 0xff, 0x7b, 0x01, 0x00,
                                      0x80, 0x3f, 0xc0, 0x7f, 0x00, 0x00, 0x80, 0xff,
                                      0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 1, 2, 3, 4, 5, 6, 7, 8};
  /* the dtypes beit_safetensors_write does not write */
  add_file("{\"h\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]},"
           "\"b\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[8,16]},"
           "\"d\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[16,32]}}", d, 32);
  add_file("{\"__metadata__\":{\"format\":\"pt\"},"
           "\"s\":{\"dtype\":\"I16\",\"shape\":[3],\"data_offsets\":[0,6]},"
           "\"c\":{\"dtype\":\"I8\",\"shape\":[1,1,1,1,1,1,1,2],\"data_offsets\":[6,8]},"
           "\"gap\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[20,21]}}  ", d, 24);
  /* near misses */
  static const char *const bad[] = {
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", /* overlap */
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
      "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", /* duplicate */
      "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[16],\"data_offsets\":[0,64]}}", /* past the end */
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
      "{\"a\":{\"dtype\":\"I64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[9007199254740991],\"data_offsets\":[0,4]}}",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}",
      "{\"__metadata__\":{\"format\":1}}",
      "{\"__metadata__\":{},\"__metadata__\":{}}",
      "{\"a\":[]}",
      "[]",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} x",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    add_file(bad[i], d, 16);
  static const unsigned char short_len[12] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, '{', '}'};
  fuzz_add_seed(short_len, sizeof short_len); /* header length past the end */
  fuzz_add_seed(short_len + 4, 7);            /* shorter than the length field */
  return 0;
}

static const char *const tokens[] = {
    "\"", "{", "}", "[", "]", ",", ":", "\\", "\\u0000", "\\ud800", "null", "true", "-", "0",
    "-0", "0.5", "1e308", "1e-400", "9007199254740992", "9007199254740993",
    "18446744073709551615", "18446744073709551616", "4294967296", "\"dtype\"", "\"shape\"",
    "\"data_offsets\"", "\"__metadata__\"", "\"F32\"", "\"F16\"", "\"BF16\"", "\"F64\"",
    "\"I64\"", "\"I32\"", "\"I16\"", "\"I8\"", "\"U8\"", "\"BOOL\"", "\"format\"", "\"pt\"",
    "[0,0]", "[]", "    ", NULL};

const struct fuzz_target fuzz_target = {"safetensors", ".safetensors", 4096, tokens, make_seeds};
