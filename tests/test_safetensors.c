/* safetensors reader/writer: round trips, dtype conversion from hand-made bytes, and every
 * malformed-file rule of spec 10.3 checked for its status and for a message naming the file and
 * the tensor. Files live in a mkdtemp directory that is removed at the end. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safetensors.h"
#include "tensor_table.h"
#include "testing.h"

static char tmpdir[256];
static char made[64][320]; /* files to remove at the end */
static int n_made;

static const char *tmp_path(const char *name)
{
  char *p = made[n_made < 63 ? n_made++ : 63];
  snprintf(p, sizeof made[0], "%s/%s", tmpdir, name);
  return p;
}

static int file_exists(const char *path)
{
  struct stat sb;
  return stat(path, &sb) == 0;
}

static void write_bytes(const char *path, const void *data, size_t n)
{
  FILE *f = fopen(path, "wb");
  CHECK_MSG(f != NULL, "cannot create %s", path);
  if (!f)
    return;
  if (n)
    CHECK(fwrite(data, 1, n, f) == n);
  fclose(f);
}

/* A file from a header string (length written as given unless hlen_override) and data bytes. */
static const char *craft(const char *name, const char *header, const void *data, size_t ndata,
                         uint64_t hlen_override)
{
  const char *path = tmp_path(name);
  size_t hlen = strlen(header);
  size_t n = 8 + hlen + ndata;
  unsigned char *buf = calloc(1, n);
  uint64_t declared = hlen_override ? hlen_override : hlen;
  for (int i = 0; i < 8; i++)
    buf[i] = (unsigned char)(declared >> (8 * i));
  memcpy(buf + 8, header, hlen);
  if (ndata)
    memcpy(buf + 8 + hlen, data, ndata);
  write_bytes(path, buf, n);
  free(buf);
  return path;
}

/* Open must fail with status and a message containing the path and each given fragment. */
static void expect_open_error(const char *path, enum beit_status want, const char *frag1,
                              const char *frag2)
{
  struct beit_safetensors *st = NULL;
  struct beit_error err = {0};
  enum beit_status got = beit_safetensors_open(&st, path, &err);
  CHECK_MSG(got == want, "%s: got %s want %s (%s)", path, beit_status_name(got),
            beit_status_name(want), err.message);
  CHECK(st == NULL);
  CHECK_MSG(strstr(err.message, path) != NULL, "message lacks the path: %s", err.message);
  if (frag1)
    CHECK_MSG(strstr(err.message, frag1) != NULL, "message lacks '%s': %s", frag1, err.message);
  if (frag2)
    CHECK_MSG(strstr(err.message, frag2) != NULL, "message lacks '%s': %s", frag2, err.message);
  beit_safetensors_close(st);
}

static struct beit_safetensors *open_ok(const char *path)
{
  struct beit_safetensors *st = NULL;
  struct beit_error err = {0};
  enum beit_status s = beit_safetensors_open(&st, path, &err);
  CHECK_MSG(s == BEIT_STATUS_OK && st, "open %s: %s", path, err.message);
  return s == BEIT_STATUS_OK ? st : NULL;
}

static void test_round_trip(void)
{
  float w[6] = {1.5f, -2.25f, 0.0f, 3.0e-8f, 1e30f, -0.0f};
  int64_t ids[4] = {0, -1, (int64_t)1 << 40, INT64_MIN};
  uint8_t bytes[5] = {0, 1, 127, 128, 255};
  int32_t i32[3] = {-7, 0, 2147483647};
  uint8_t flags[3] = {1, 0, 1};
  float scalar = 42.0f;
  struct beit_st_entry entries[] = {
      {"beit.embeddings.cls_token", BEIT_DTYPE_F32, 2, {2, 3}, w},
      {"ids", BEIT_DTYPE_I64, 1, {4}, ids},
      {"pixels", BEIT_DTYPE_U8, 1, {5}, bytes},
      {"counts", BEIT_DTYPE_I32, 3, {1, 3, 1}, i32},
      {"flags", BEIT_DTYPE_BOOL, 1, {3}, flags},
      {"scalar", BEIT_DTYPE_F32, 0, {0}, &scalar},
      {"empty", BEIT_DTYPE_F32, 2, {0, 3}, NULL},
      {"name \"with\" quotes\\", BEIT_DTYPE_U8, 1, {1}, bytes},
  };
  size_t n = sizeof entries / sizeof entries[0];
  const char *meta[] = {"epoch", "3", "note", "a \"quoted\"\nline", NULL};
  const char *path = tmp_path("round.safetensors");
  char tmp[400];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  struct beit_error err = {0};
  enum beit_status s = beit_safetensors_write(path, entries, n, meta, &err);
  CHECK_MSG(s == BEIT_STATUS_OK, "write: %s", err.message);
  CHECK_MSG(!file_exists(tmp), "%s left behind", tmp);

  /* Header length is a multiple of 8 and the data follows it without holes. */
  FILE *f = fopen(path, "rb");
  unsigned char len[8] = {0};
  CHECK(f && fread(len, 1, 8, f) == 8);
  if (f)
    fclose(f);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--)
    hlen = hlen << 8 | len[i];
  CHECK_MSG(hlen % 8 == 0, "header length %llu", (unsigned long long)hlen);
  struct stat sb;
  CHECK(stat(path, &sb) == 0);
  size_t want_data = sizeof w + sizeof ids + sizeof bytes + sizeof i32 + sizeof flags + 4 + 1;
  CHECK_MSG((size_t)sb.st_size == 8 + hlen + want_data, "size %lld", (long long)sb.st_size);

  struct beit_safetensors *st = open_ok(path);
  if (!st)
    return;
  CHECK(beit_safetensors_count(st) == n);
  CHECK(strcmp(beit_safetensors_path(st), path) == 0);
  for (size_t i = 0; i < n; i++) {
    const struct beit_st_tensor *t = beit_safetensors_at(st, i);
    CHECK_MSG(t && strcmp(t->name, entries[i].name) == 0, "entry %zu out of order", i);
  }
  CHECK(beit_safetensors_at(st, n) == NULL);
  const char *fmt = beit_safetensors_metadata(st, "format");
  CHECK(fmt && strcmp(fmt, "pt") == 0);
  const char *ep = beit_safetensors_metadata(st, "epoch");
  CHECK(ep && strcmp(ep, "3") == 0);
  const char *note = beit_safetensors_metadata(st, "note");
  CHECK(note && strcmp(note, "a \"quoted\"\nline") == 0);
  CHECK(beit_safetensors_metadata(st, "absent") == NULL);

  /* Contiguous offsets in the given order. */
  const struct beit_st_tensor *t0 = beit_safetensors_at(st, 0), *t1 = beit_safetensors_at(st, 1);
  CHECK((const char *)t1->data == (const char *)t0->data + sizeof w);
  CHECK(t0->dtype == BEIT_DTYPE_F32 && t0->ndim == 2 && t0->numel == 6 && t0->nbytes == 24);

  float wr[6];
  s = beit_safetensors_read_f32(st, "beit.embeddings.cls_token", wr, 2, (size_t[]){2, 3}, &err);
  CHECK_MSG(s == BEIT_STATUS_OK, "%s", err.message);
  CHECK(memcmp(wr, w, sizeof w) == 0); /* bit-exact, -0 included */
  int64_t ir[5];
  s = beit_safetensors_read_i64(st, "ids", ir, 1, (size_t[]){4}, &err);
  CHECK(s == BEIT_STATUS_OK && memcmp(ir, ids, sizeof ids) == 0);
  s = beit_safetensors_read_i64(st, "pixels", ir, 1, (size_t[]){5}, &err);
  CHECK(s == BEIT_STATUS_OK);
  for (int i = 0; i < 5; i++)
    CHECK_MSG(ir[i] == bytes[i], "pixels[%d] = %lld", i, (long long)ir[i]);
  s = beit_safetensors_read_i64(st, "counts", ir, 3, (size_t[]){1, 3, 1}, &err);
  CHECK(s == BEIT_STATUS_OK && ir[0] == -7 && ir[1] == 0 && ir[2] == 2147483647);
  s = beit_safetensors_read_i64(st, "flags", ir, 1, (size_t[]){3}, &err);
  CHECK(s == BEIT_STATUS_OK && ir[0] == 1 && ir[1] == 0 && ir[2] == 1);
  float sc = 0;
  s = beit_safetensors_read_f32(st, "scalar", &sc, 0, NULL, &err);
  CHECK_MSG(s == BEIT_STATUS_OK && sc == 42.0f, "scalar: %s", err.message);
  s = beit_safetensors_read_f32(st, "empty", wr, 2, (size_t[]){0, 3}, &err);
  CHECK(s == BEIT_STATUS_OK);
  CHECK(beit_safetensors_find(st, "name \"with\" quotes\\") != NULL);

  /* Lookups that fail: wrong shape, missing name, wrong kind. */
  s = beit_safetensors_read_f32(st, "beit.embeddings.cls_token", wr, 2, (size_t[]){3, 2}, &err);
  CHECK(s == BEIT_STATUS_SHAPE);
  CHECK_MSG(strstr(err.message, path) && strstr(err.message, "beit.embeddings.cls_token") &&
                strstr(err.message, "(2, 3)") && strstr(err.message, "(3, 2)"),
            "%s", err.message);
  s = beit_safetensors_read_f32(st, "beit.embeddings.cls_token", wr, 1, (size_t[]){6}, &err);
  CHECK(s == BEIT_STATUS_SHAPE);
  s = beit_safetensors_read_f32(st, "beit.missing.weight", wr, 1, (size_t[]){6}, &err);
  CHECK(s == BEIT_STATUS_MISSING);
  CHECK_MSG(strstr(err.message, path) && strstr(err.message, "beit.missing.weight"), "%s",
            err.message);
  s = beit_safetensors_read_i64(st, "beit.missing.weight", ir, 1, (size_t[]){6}, &err);
  CHECK(s == BEIT_STATUS_MISSING);
  s = beit_safetensors_read_f32(st, "ids", wr, 1, (size_t[]){4}, &err);
  CHECK_MSG(s == BEIT_STATUS_UNSUPPORTED && strstr(err.message, "ids"), "%s", err.message);
  s = beit_safetensors_read_i64(st, "scalar", ir, 0, NULL, &err);
  CHECK(s == BEIT_STATUS_UNSUPPORTED);
  beit_safetensors_close(st);

  /* Rewriting replaces the file in place, still leaving no .tmp. */
  s = beit_safetensors_write(path, entries, 2, NULL, &err);
  CHECK_MSG(s == BEIT_STATUS_OK, "%s", err.message);
  CHECK(!file_exists(tmp));
  st = open_ok(path);
  if (st) {
    CHECK(beit_safetensors_count(st) == 2);
    fmt = beit_safetensors_metadata(st, "format");
    CHECK(fmt && strcmp(fmt, "pt") == 0);
    beit_safetensors_close(st);
  }
}

static void test_write_table(void)
{
  struct beit_tensor_table table;
  beit_tensor_table_init(&table);
  CHECK(beit_tensor_table_add(&table, "beit.encoder.layer.0.attention.attention.query.weight", 2,
                              (size_t[]){5, 3}) == 0);
  CHECK(beit_tensor_table_add(&table, "beit.encoder.layer.0.attention.attention.query.bias", 1,
                              (size_t[]){5}) == 1);
  CHECK(beit_tensor_table_add(&table, "beit.embeddings.patch_embeddings.projection.weight", 4,
                              (size_t[]){2, 3, 2, 2}) == 2);
  float *buf = beit_alloc_floats(table.total);
  CHECK(buf != NULL);
  if (!buf)
    return;
  for (size_t i = 0; i < table.total; i++)
    buf[i] = (float)i * 0.5f - 3.0f;
  const char *path = tmp_path("table.safetensors");
  struct beit_error err = {0};
  enum beit_status s = beit_safetensors_write_table(path, &table, buf, NULL, &err);
  CHECK_MSG(s == BEIT_STATUS_OK, "%s", err.message);
  struct beit_safetensors *st = open_ok(path);
  if (st) {
    CHECK(beit_safetensors_count(st) == table.count);
    for (size_t i = 0; i < table.count; i++) {
      const struct beit_tensor *t = &table.items[i];
      float *got = malloc(t->numel * sizeof *got);
      s = beit_safetensors_read_f32(st, t->name, got, t->ndim, t->shape, &err);
      CHECK_MSG(s == BEIT_STATUS_OK, "%s", err.message);
      if (s == BEIT_STATUS_OK)
        check_close(t->name, got, buf + t->offset, t->numel, 0.0);
      free(got);
    }
    beit_safetensors_close(st);
  }
  free(buf);
  beit_tensor_table_free(&table);
}

static void test_conversions(void)
{
  /* F16 starts at data offset 1 (after one U8) so the loads are unaligned on purpose. */
  const uint16_t f16[] = {0x3C00, 0xC000, 0x0001, 0x03FF, 0x0400, 0x7BFF,
                          0x7C00, 0xFC00, 0x8000, 0x3555, 0x8001, 0x7E00};
  const float f16_want[] = {1.0f,     -2.0f,    0x1p-24f,  1023 * 0x1p-24f, 0x1p-14f,  65504.0f,
                            INFINITY, -INFINITY, -0.0f,    0x1.554p-2f,     -0x1p-24f, NAN};
  const uint16_t bf16[] = {0x3F80, 0xC040, 0x7F80, 0x0001, 0x4049};
  const float bf16_want[] = {1.0f, -3.0f, INFINITY, 0x1p-133f, 3.140625f};
  const double f64[] = {0.1, -1e-3, 1e300, 65536.5};
  unsigned char data[1 + sizeof f16 + sizeof bf16 + sizeof f64];
  data[0] = 7;
  memcpy(data + 1, f16, sizeof f16);
  memcpy(data + 1 + sizeof f16, bf16, sizeof bf16);
  memcpy(data + 1 + sizeof f16 + sizeof bf16, f64, sizeof f64);
  char header[512];
  size_t a = 1, b = a + sizeof f16, c = b + sizeof bf16, d = c + sizeof f64;
  snprintf(header, sizeof header,
           "{\"u\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
           "\"h\":{\"dtype\":\"F16\",\"shape\":[12],\"data_offsets\":[%zu,%zu]},"
           "\"b\":{\"dtype\":\"BF16\",\"shape\":[5],\"data_offsets\":[%zu,%zu]},"
           "\"d\":{\"dtype\":\"F64\",\"shape\":[2,2],\"data_offsets\":[%zu,%zu]}}",
           a, b, b, c, c, d);
  const char *path = craft("conv.safetensors", header, data, sizeof data, 0);
  struct beit_safetensors *st = open_ok(path);
  if (!st)
    return;
  struct beit_error err = {0};
  float got[12];
  CHECK(beit_safetensors_read_f32(st, "h", got, 1, (size_t[]){12}, &err) == BEIT_STATUS_OK);
  for (int i = 0; i < 12; i++) {
    int ok = isnan(f16_want[i]) ? isnan(got[i])
                                : memcmp(&got[i], &f16_want[i], sizeof(float)) == 0;
    CHECK_MSG(ok, "F16 0x%04x -> %a, want %a", f16[i], got[i], f16_want[i]);
  }
  CHECK(beit_safetensors_read_f32(st, "b", got, 1, (size_t[]){5}, &err) == BEIT_STATUS_OK);
  for (int i = 0; i < 5; i++)
    CHECK_MSG(memcmp(&got[i], &bf16_want[i], sizeof(float)) == 0, "BF16 0x%04x -> %a, want %a",
              bf16[i], got[i], bf16_want[i]);
  CHECK(beit_safetensors_read_f32(st, "d", got, 2, (size_t[]){2, 2}, &err) == BEIT_STATUS_OK);
  CHECK(got[0] == 0.1f && got[1] == -1e-3f && isinf(got[2]) && got[3] == 65536.5f);
  int64_t iv;
  CHECK(beit_safetensors_read_i64(st, "u", &iv, 1, (size_t[]){1}, &err) == BEIT_STATUS_OK &&
        iv == 7);

  /* Signed narrow integers sign-extend. */
  beit_safetensors_close(st);
  const int16_t i16[2] = {-32768, 1234};
  const int8_t i8[2] = {-128, 5};
  unsigned char idata[6];
  memcpy(idata, i16, 4);
  memcpy(idata + 4, i8, 2);
  path = craft("ints.safetensors",
               "{\"s\":{\"dtype\":\"I16\",\"shape\":[2],\"data_offsets\":[0,4]},"
               "\"c\":{\"dtype\":\"I8\",\"shape\":[2],\"data_offsets\":[4,6]}}",
               idata, sizeof idata, 0);
  st = open_ok(path);
  if (!st)
    return;
  int64_t ir[2];
  CHECK(beit_safetensors_read_i64(st, "s", ir, 1, (size_t[]){2}, &err) == BEIT_STATUS_OK &&
        ir[0] == -32768 && ir[1] == 1234);
  CHECK(beit_safetensors_read_i64(st, "c", ir, 1, (size_t[]){2}, &err) == BEIT_STATUS_OK &&
        ir[0] == -128 && ir[1] == 5);
  beit_safetensors_close(st);
}

/* beit_safetensors_open_memory runs the parser on borrowed bytes. A tensor of zero elements is
 * as little integer data as a full one of its dtype (read_i64 took an empty F32 tensor; found
 * by tests/fuzz_safetensors.c). */
static void test_memory(void)
{
  static const char header[] = "{\"e\":{\"dtype\":\"F32\",\"shape\":[2,0],\"data_offsets\":[0,0]},"
                               "\"i\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
  unsigned char buf[8 + sizeof header - 1 + 4] = {sizeof header - 1};
  memcpy(buf + 8, header, sizeof header - 1);
  buf[sizeof buf - 4] = 42;
  struct beit_safetensors *st = NULL;
  struct beit_error err = {0};
  CHECK(beit_safetensors_open_memory(&st, "mem", buf, sizeof buf, &err) == BEIT_STATUS_OK);
  if (!st)
    return;
  CHECK(!strcmp(beit_safetensors_path(st), "mem") && beit_safetensors_count(st) == 2);
  int64_t v = 0;
  float f;
  CHECK(beit_safetensors_read_i64(st, "i", &v, 1, (size_t[]){1}, &err) == BEIT_STATUS_OK &&
        v == 42);
  CHECK(beit_safetensors_read_i64(st, "e", &v, 2, (size_t[]){2, 0}, &err) ==
        BEIT_STATUS_UNSUPPORTED);
  CHECK(beit_safetensors_read_f32(st, "e", &f, 2, (size_t[]){2, 0}, &err) == BEIT_STATUS_OK);
  beit_safetensors_close(st);
  CHECK(beit_safetensors_open_memory(&st, "mem", buf, 7, &err) == BEIT_STATUS_FORMAT && !st &&
        strstr(err.message, "mem: 7 bytes"));
}

/* Crafted files that open must refuse: a header (its length written as hlen unless 0), that many
 * zero data bytes, the status and up to two fragments the message must hold besides the path. */
static const struct malformed_case {
  const char *file, *header;
  size_t data_bytes;
  uint64_t hlen;
  enum beit_status want;
  const char *frag1, *frag2;
} malformed[] = {
    {"hlen.safetensors", "{}", 0, 1000, BEIT_STATUS_FORMAT, "1000", NULL},
    {"hbig.safetensors", "{}", 0, (uint64_t)200 * 1000 * 1000, BEIT_STATUS_FORMAT, "100 MB", NULL},
    {"hhuge.safetensors", "{}", 0, UINT64_MAX, BEIT_STATUS_FORMAT, NULL, NULL},
    {"notjson.safetensors", "{\"a\": {\"dtype\": F32", 0, 0, BEIT_STATUS_FORMAT, "JSON", NULL},
    {"array.safetensors", "[1, 2]  ", 0, 0, BEIT_STATUS_FORMAT, "object", NULL},
    {"trailing.safetensors", "{} x", 0, 0, BEIT_STATUS_FORMAT, "trailing", NULL},
    {"dtype.safetensors",
     "{\"beit.pooler.layernorm.weight\":{\"dtype\":\"C64\",\"shape\":[2],\"data_offsets\":[0,16]}}",
     16, 0, BEIT_STATUS_UNSUPPORTED, "beit.pooler.layernorm.weight", "C64"},
    {"overlap.safetensors",
     "{\"first\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
     "\"second\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
     24, 0, BEIT_STATUS_FORMAT, "'first'", "'second'"},
    /* overlap hidden behind a short tensor: [0,64) contains [16,24) and [32,40) */
    {"overlap2.safetensors",
     "{\"big\":{\"dtype\":\"F32\",\"shape\":[16],\"data_offsets\":[0,64]},"
     "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[64,72]},"
     "\"inner\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[32,40]}}",
     72, 0, BEIT_STATUS_FORMAT, "'big'", "'inner'"},
    /* ... and behind an earlier, disjoint one: [0,8) [8,40) then [16,24) inside the second */
    {"overlap3.safetensors",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[8,40]},"
     "\"c\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}}",
     40, 0, BEIT_STATUS_FORMAT, "'b'", "'c'"},
    {"pastend.safetensors",
     "{\"beit.embeddings.cls_token\":{\"dtype\":\"F32\",\"shape\":[1,1,4],"
     "\"data_offsets\":[0,16]}}",
     8, 0, BEIT_STATUS_FORMAT, "beit.embeddings.cls_token", "past the end"},
    {"size.safetensors",
     "{\"beit.encoder.layer.0.attention.attention.query.weight\":{\"dtype\":\"F32\","
     "\"shape\":[768,768],\"data_offsets\":[0,100]}}",
     100, 0, BEIT_STATUS_FORMAT, "beit.encoder.layer.0.attention.attention.query.weight",
     "2359296"},
    {"order.safetensors", "{\"t\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,4]}}",
     8, 0, BEIT_STATUS_FORMAT, "'t'", NULL},
    {"negshape.safetensors",
     "{\"neg\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0, 0,
     BEIT_STATUS_FORMAT, "'neg'", NULL},
    {"fracshape.safetensors",
     "{\"frac\":{\"dtype\":\"U8\",\"shape\":[1.5],\"data_offsets\":[0,1]}}", 1, 0,
     BEIT_STATUS_FORMAT, "'frac'", NULL},
    {"overflow.safetensors",
     "{\"huge\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
     "\"data_offsets\":[0,16]}}",
     16, 0, BEIT_STATUS_FORMAT, "'huge'", "overflows"},
    {"rank.safetensors",
     "{\"deep\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1, 0,
     BEIT_STATUS_UNSUPPORTED, "'deep'", NULL},
    {"noshape.safetensors", "{\"bare\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1, 0,
     BEIT_STATUS_FORMAT, "'bare'", "shape"},
    {"dup.safetensors",
     "{\"twice\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
     "\"other\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]},"
     "\"twice\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[2,3]}}",
     3, 0, BEIT_STATUS_FORMAT, "'twice'", NULL},
    {"meta.safetensors", "{\"__metadata__\":{\"format\":\"pt\",\"epoch\":3}}", 0, 0,
     BEIT_STATUS_FORMAT, "epoch", NULL},
};

static void test_malformed(void)
{
  unsigned char zeros[4096] = {0};
  const char *p;

  p = tmp_path("short.safetensors");
  write_bytes(p, "\x10\0\0\0\0", 5);
  expect_open_error(p, BEIT_STATUS_FORMAT, "too short", NULL);
  p = tmp_path("empty.safetensors");
  write_bytes(p, "", 0);
  expect_open_error(p, BEIT_STATUS_FORMAT, NULL, NULL);

  for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
    const struct malformed_case *c = &malformed[i];
    p = craft(c->file, c->header, c->data_bytes ? zeros : NULL, c->data_bytes, c->hlen);
    expect_open_error(p, c->want, c->frag1, c->frag2);
  }

  /* Valid edge cases: header padded with spaces, no tensors, metadata only. */
  p = craft("spaces.safetensors", "{\"__metadata__\":{\"format\":\"pt\"}}       ", NULL, 0, 0);
  struct beit_safetensors *st = open_ok(p);
  if (st) {
    CHECK(beit_safetensors_count(st) == 0);
    CHECK(beit_safetensors_find(st, "x") == NULL);
    beit_safetensors_close(st);
  }

  /* A file that does not exist. */
  struct beit_error err = {0};
  const char *absent = tmp_path("absent.safetensors");
  CHECK(beit_safetensors_open(&st, absent, &err) != BEIT_STATUS_OK && st == NULL);
  CHECK(strstr(err.message, absent) != NULL);
}

static void test_write_errors(void)
{
  float v[2] = {1, 2};
  struct beit_st_entry dup[] = {
      {"same", BEIT_DTYPE_F32, 1, {2}, v},
      {"same", BEIT_DTYPE_F32, 1, {2}, v},
  };
  const char *path = tmp_path("dupwrite.safetensors");
  struct beit_error err = {0};
  CHECK(beit_safetensors_write(path, dup, 2, NULL, &err) == BEIT_STATUS_USAGE);
  CHECK_MSG(strstr(err.message, "'same'") != NULL, "%s", err.message);
  CHECK(!file_exists(path));

  struct beit_st_entry reserved[] = {{"__metadata__", BEIT_DTYPE_F32, 1, {2}, v}};
  CHECK(beit_safetensors_write(path, reserved, 1, NULL, &err) == BEIT_STATUS_USAGE);

  char nodir[400];
  snprintf(nodir, sizeof nodir, "%s/no/such/dir/x.safetensors", tmpdir);
  CHECK(beit_safetensors_write(nodir, dup, 1, NULL, &err) == BEIT_STATUS_IO);
  CHECK_MSG(strstr(err.message, "x.safetensors") != NULL, "%s", err.message);

  const char *bad_meta[] = {"key", NULL, NULL};
  CHECK(beit_safetensors_write(path, dup, 1, bad_meta, &err) == BEIT_STATUS_USAGE);
  CHECK(!file_exists(path));
  const char *dup_meta[] = {"epoch", "1", "epoch", "2", NULL};
  CHECK(beit_safetensors_write(path, dup, 1, dup_meta, &err) == BEIT_STATUS_USAGE);
  CHECK_MSG(strstr(err.message, "'epoch'") != NULL, "%s", err.message);
  CHECK(!file_exists(path));
  /* No tensors at all is a valid file. */
  CHECK(beit_safetensors_write(path, dup, 0, NULL, &err) == BEIT_STATUS_OK);
  struct beit_safetensors *none = open_ok(path);
  if (none) {
    CHECK(beit_safetensors_count(none) == 0);
    beit_safetensors_close(none);
  }
  const char *fmt_meta[] = {"format", "np", NULL};
  CHECK(beit_safetensors_write(path, dup, 1, fmt_meta, &err) == BEIT_STATUS_OK);
  struct beit_safetensors *st = open_ok(path);
  if (st) {
    const char *f = beit_safetensors_metadata(st, "format");
    CHECK(f && strcmp(f, "np") == 0);
    beit_safetensors_close(st);
  }
}

int main(void)
{
  const char *base = getenv("TMPDIR");
  char pattern[sizeof tmpdir];
  snprintf(pattern, sizeof pattern, "%s/beit-st-XXXXXX", base && *base ? base : "/tmp");
  if (test_mkdtemp(tmpdir, sizeof tmpdir, pattern))
    return 1;
  test_round_trip();
  test_write_table();
  test_conversions();
  test_memory();
  test_malformed();
  test_write_errors();

  for (int i = 0; i < n_made; i++)
    unlink(made[i]);
  if (rmdir(tmpdir) != 0) {
    beit_test_checks++;
    beit_test_failures++;
    fprintf(stderr, "%s not empty after the test (stray .tmp file?)\n", tmpdir);
  }
  return test_summary("test_safetensors");
}
