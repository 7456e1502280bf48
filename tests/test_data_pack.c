/* `beit pack` as a library call: an ImageFolder of generated JPEG/PNG/BMP/GIF images in several
 * sizes and modes plus deliberately corrupt files; read back, bytes and pixels equal the
 * originals, corrupt files reported; multi-label manifests (CSV and JSON lines) round-trip;
 * CSV manifests follow RFC 4180 (quoted commas, quotes and line breaks, CRLF, a byte order mark)
 * and their errors name the file and line; shard checksum and schema failures, a missing shard
 * and index.json disagreeing with the shards (record counts, task, classes) are errors that name
 * the file and what disagrees. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>
#include <stb/stb_image_write.h>

#include "config_table.h"
#include "data_internal.h"
#include "pack_internal.h"
#include "testing.h"

static char root[256];

static void write_bytes(const char *rel, const void *p, size_t n)
{
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", root, rel);
  FILE *f = fopen(path, "wb");
  fwrite(p, 1, n, f);
  fclose(f);
}

/* A smooth pattern with some detail, comp channels. */
static unsigned char *pattern(int w, int h, int comp, int seed)
{
  unsigned char *p = malloc((size_t)w * h * comp);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int c = 0; c < comp; c++)
        p[((size_t)y * w + x) * comp + c] = (unsigned char)((x * 7 + y * 3 + c * 50 + seed * 31 + ((x ^ y) & 15)) & 255);
  return p;
}

/* Encode and write an image; returns the encoded bytes (caller frees) in *m. */
static void make_image(const char *rel, const char *fmt, int w, int h, int comp, int seed, struct test_mem *m)
{
  unsigned char *px = pattern(w, h, comp, seed);
  m->p = NULL;
  m->n = 0;
  if (!strcmp(fmt, "png"))
    stbi_write_png_to_func(test_mem_append, m, w, h, comp, px, w * comp);
  else if (!strcmp(fmt, "jpg"))
    stbi_write_jpg_to_func(test_mem_append, m, w, h, comp, px, 90);
  else
    stbi_write_bmp_to_func(test_mem_append, m, w, h, comp, px);
  free(px);
  write_bytes(rel, m->p, m->n);
}

static const unsigned char gif1x1[] = {
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0xFF, 0xFF,
    0xFF, 0x00, 0x00, 0x00, 0x21, 0xF9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2C, 0x00, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3B};

struct expect {
  const char *key;
  int label;
  int grey; /* source had one grey channel (maybe + alpha): decoded R = G = B */
};

static const struct expect good[] = {
    {"cat/grey.png", 0, 1},      {"cat/grey_alpha.png", 0, 1}, {"cat/rgb.png", 0, 0},
    {"dog/rgba.png", 1, 0},      {"dog/photo.jpg", 1, 0},      {"dog/grey.jpg", 1, 1},
    {"zebra/rgb.bmp", 2, 0},     {"zebra/pixel.gif", 2, 0},    {"zebra/deep/nested.png", 2, 0},
    {"zebra/UPPER.PNG", 2, 0},
};
static const char *const corrupt[] = {"cat/truncated.jpg", "dog/truncated.png", "dog/random.jpg",
                                      "zebra/empty.png",   "zebra/text.png",    "zebra/truncated.gif",
                                      "cat/truncated.bmp"};

static void make_folder(void)
{
  char path[512];
  const char *dirs[] = {"cat", "dog", "zebra", "zebra/deep"};
  for (int i = 0; i < 4; i++) {
    snprintf(path, sizeof path, "%s/%s", root, dirs[i]);
    mkdir(path, 0755);
  }
  struct test_mem m;
  make_image("cat/grey.png", "png", 31, 17, 1, 1, &m), free(m.p);
  make_image("cat/grey_alpha.png", "png", 20, 20, 2, 2, &m), free(m.p);
  make_image("cat/rgb.png", "png", 64, 48, 3, 3, &m), free(m.p);
  make_image("dog/rgba.png", "png", 15, 40, 4, 4, &m), free(m.p);
  make_image("dog/grey.jpg", "jpg", 50, 50, 1, 6, &m), free(m.p);
  make_image("zebra/rgb.bmp", "bmp", 33, 33, 3, 7, &m), free(m.p);
  make_image("zebra/deep/nested.png", "png", 9, 5, 3, 8, &m), free(m.p);
  make_image("zebra/UPPER.PNG", "png", 12, 12, 3, 9, &m), free(m.p);
  write_bytes("zebra/pixel.gif", gif1x1, sizeof gif1x1);
  write_bytes("zebra/truncated.gif", gif1x1, sizeof gif1x1 - 5); /* cut inside the image data */
  make_image("cat/tmp.bmp", "bmp", 40, 30, 3, 11, &m);
  write_bytes("cat/truncated.bmp", m.p, m.n * 6 / 10);
  free(m.p);
  snprintf(path, sizeof path, "%s/cat/tmp.bmp", root);
  unlink(path);
  make_image("dog/photo.jpg", "jpg", 100, 75, 3, 5, &m);
  write_bytes("cat/truncated.jpg", m.p, m.n / 2);
  free(m.p);
  make_image("dog/tmp.png", "png", 64, 64, 3, 10, &m);
  write_bytes("dog/truncated.png", m.p, m.n * 6 / 10);
  free(m.p);
  snprintf(path, sizeof path, "%s/dog/tmp.png", root);
  unlink(path);
  unsigned char noise[777];
  for (int i = 0; i < 777; i++)
    noise[i] = (unsigned char)(i * 131 + 7);
  write_bytes("dog/random.jpg", noise, sizeof noise);
  write_bytes("zebra/empty.png", "", 0);
  write_bytes("zebra/text.png", "this is not an image\n", 21);
  write_bytes("zebra/readme.txt", "ignored: not an image extension\n", 32);
}

static const struct expect *find_good(const char *key)
{
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    if (!strcmp(good[i].key, key))
      return &good[i];
  return NULL;
}

static enum beit_status pack(enum beit_data_source src, const char *in, const char *out,
                             size_t shard_bytes, FILE *log, struct beit_data_pack_report *rep,
                             struct beit_error *err)
{
  struct beit_data_pack_options o;
  beit_data_pack_defaults(&o);
  o.source = src;
  o.input = in;
  o.output = out;
  o.shard_bytes = shard_bytes;
  o.chunk_bytes = 1024;
  o.seed = 5;
  o.log = log;
  return beit_data_pack(&o, rep, err);
}

static void test_folder(void)
{
  make_folder();
  char out[512];
  snprintf(out, sizeof out, "%s.ds", root);
  FILE *log = tmpfile();
  struct beit_data_pack_report rep;
  struct beit_error err = {0};
  CHECK_MSG(pack(BEIT_DATA_SOURCE_FOLDER, root, out, 1000, log, &rep, &err) == 0, "%s", err.message);
  size_t ngood = sizeof good / sizeof good[0], nbad = sizeof corrupt / sizeof corrupt[0];
  CHECK_MSG(rep.written == ngood, "written %zu", rep.written);
  CHECK_MSG(rep.skipped == nbad, "skipped %zu", rep.skipped);
  CHECK_MSG(rep.shards >= 4, "shards %zu (1000-byte shards)", rep.shards);
  CHECK(rep.num_classes == 3);
  /* Every corrupt file is reported by key. */
  char logtext[8192];
  test_read_log(log, logtext, sizeof logtext);
  for (size_t i = 0; i < nbad; i++) {
    char needle[128];
    snprintf(needle, sizeof needle, "skip %s:", corrupt[i]);
    CHECK_MSG(strstr(logtext, needle), "no skip line for %s in:\n%s", corrupt[i], logtext);
  }
  struct beit_dataset *ds;
  CHECK_MSG(beit_data_open(&ds, out, &err) == 0, "%s", err.message);
  if (!ds)
    return;
  CHECK(beit_data_count(ds) == ngood);
  CHECK(beit_data_task(ds) == BEIT_DATA_TASK_MULTICLASS);
  CHECK(!strcmp(beit_data_class_name(ds, 0), "cat") && !strcmp(beit_data_class_name(ds, 2), "zebra"));
  struct beit_data_record rec = {0};
  int seen[16] = {0}, in_order = 1;
  for (size_t i = 0; i < beit_data_count(ds); i++) {
    CHECK(beit_data_read(ds, i, &rec, &err) == 0);
    const struct expect *e = find_good(rec.key);
    CHECK_MSG(e, "unexpected key %s", rec.key);
    if (!e)
      continue;
    seen[e - good]++;
    in_order &= (size_t)(e - good) == i;
    CHECK(rec.num_labels == 1 && rec.labels[0] == e->label);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, e->key);
    size_t n = 0;
    unsigned char *orig = test_read_file(root, e->key, &n);
    CHECK_MSG(orig && n == rec.size && !memcmp(orig, rec.bytes, n), "%s: bytes differ", e->key);
    struct beit_data_image a, b;
    CHECK(beit_data_decode(&a, rec.bytes, rec.size, rec.key, &err) == 0);
    CHECK(beit_data_decode(&b, orig, n, path, &err) == 0);
    CHECK(a.width == b.width && a.height == b.height &&
          !memcmp(a.pixels, b.pixels, (size_t)a.width * a.height * 3));
    if (e->grey)
      for (int p = 0; p < a.width * a.height; p++)
        if (a.pixels[3 * p] != a.pixels[3 * p + 1] || a.pixels[3 * p] != a.pixels[3 * p + 2]) {
          CHECK_MSG(0, "%s: grey source not replicated to RGB", e->key);
          break;
        }
    beit_data_image_free(&a);
    beit_data_image_free(&b);
    free(orig);
  }
  for (size_t i = 0; i < ngood; i++)
    CHECK_MSG(seen[i] == 1, "%s seen %d times", good[i].key, seen[i]);
  CHECK_MSG(!in_order, "records should be shuffled before sharding");
  beit_data_record_free(&rec);
  beit_data_close(ds);
  /* An existing output is not replaced without overwrite. */
  CHECK(pack(BEIT_DATA_SOURCE_FOLDER, root, out, 3000, NULL, &rep, &err) == BEIT_STATUS_USAGE);
}

/* Write the manifest ROOT/name and pack it into ROOT.name.ds (its path into out, nout bytes) in
 * 1 MiB shards. */
static enum beit_status pack_manifest(const char *name, const char *text, char *out, size_t nout,
                                      struct beit_data_pack_report *rep, struct beit_error *err)
{
  char in[512];
  write_bytes(name, text, strlen(text));
  snprintf(in, sizeof in, "%s/%s", root, name);
  snprintf(out, nout, "%s.%s.ds", root, name);
  return pack(BEIT_DATA_SOURCE_MANIFEST, in, out, 1 << 20, NULL, rep, err);
}

static void test_manifests(void)
{
  const char *csv = "path,labels\n"
                    "cat/rgb.png,can;milk_bottle\n"
                    "dog/photo.jpg,carton\n"
                    "zebra/rgb.bmp,water_bottle|can\n"
                    "dog/random.jpg,can\n";
  const char *jsonl = "{\"image_url\": \"cat/rgb.png\", \"label\": [\"can\", \"milk_bottle\"]}\n"
                      "{\"image_url\": \"dog/photo.jpg\", \"label\": [\"carton\"]}\n"
                      "{\"image_url\": \"zebra/rgb.bmp\", \"label\": [\"water_bottle\", \"can\"]}\n"
                      "{\"image_url\": \"dog/random.jpg\", \"label\": [\"can\"]}\n";
  const char *names[2] = {"fridge.csv", "fridge.jsonl"}, *texts[2] = {csv, jsonl};
  static const char *const classes[4] = {"can", "carton", "milk_bottle", "water_bottle"};
  for (int v = 0; v < 2; v++) {
    char out[512];
    struct beit_data_pack_report rep;
    struct beit_error err = {0};
    CHECK_MSG(pack_manifest(names[v], texts[v], out, sizeof out, &rep, &err) == 0, "%s",
              err.message);
    CHECK(rep.written == 3 && rep.skipped == 1 && rep.num_classes == 4);
    struct beit_dataset *ds;
    CHECK_MSG(beit_data_open(&ds, out, &err) == 0, "%s", err.message);
    if (!ds)
      continue;
    CHECK(beit_data_task(ds) == BEIT_DATA_TASK_MULTILABEL);
    for (int c = 0; c < 4; c++)
      CHECK(!strcmp(beit_data_class_name(ds, c), classes[c]));
    struct beit_data_record rec = {0};
    for (size_t i = 0; i < beit_data_count(ds); i++) {
      CHECK(beit_data_read(ds, i, &rec, &err) == 0);
      unsigned mask = 0;
      for (size_t k = 0; k < rec.num_labels; k++)
        mask |= 1u << rec.labels[k];
      unsigned want = !strcmp(rec.key, "cat/rgb.png")     ? (1u << 0 | 1u << 2)
                      : !strcmp(rec.key, "dog/photo.jpg") ? 1u << 1
                                                          : (1u << 3 | 1u << 0);
      CHECK_MSG(mask == want, "%s: labels 0x%x, want 0x%x", rec.key, mask, want);
    }
    beit_data_record_free(&rec);
    beit_data_close(ds);
  }
  /* One label per row: multiclass, numeric labels sorted as numbers. */
  const char *mc = "cat/rgb.png,10\ndog/photo.jpg,2\nzebra/rgb.bmp,2\n";
  char out[512];
  struct beit_data_pack_report rep;
  struct beit_error err = {0};
  CHECK_MSG(pack_manifest("mc.csv", mc, out, sizeof out, &rep, &err) == 0, "%s", err.message);
  struct beit_dataset *ds;
  if (beit_data_open(&ds, out, &err) == 0) {
    CHECK(beit_data_task(ds) == BEIT_DATA_TASK_MULTICLASS);
    CHECK(!strcmp(beit_data_class_name(ds, 0), "2") && !strcmp(beit_data_class_name(ds, 1), "10"));
    beit_data_close(ds);
  } else {
    CHECK_MSG(0, "%s", err.message);
  }
  /* A malformed manifest names the line. */
  CHECK(pack_manifest("bad.csv", "cat/rgb.png\n", out, sizeof out, &rep, &err) ==
        BEIT_STATUS_FORMAT);
  CHECK_MSG(strstr(err.message, "bad.csv:1"), "%s", err.message);
}

/* A manifest written as text and listed (beit_pack_list_manifest): status and error. */
static enum beit_status list_manifest(const char *name, const char *text,
                                      struct beit_pack_list *l, struct beit_error *err)
{
  char in[512];
  write_bytes(name, text, strlen(text));
  snprintf(in, sizeof in, "%s/%s", root, name);
  return beit_pack_list_manifest(l, in, err);
}

static const struct beit_pack_item *find_item(const struct beit_pack_list *l, const char *key)
{
  for (size_t i = 0; i < l->count; i++)
    if (!strcmp(l->items[i].key, key))
      return &l->items[i];
  return NULL;
}

/* The label names of an item, sorted class order, joined by '+'. */
static void item_labels(const struct beit_pack_list *l, const struct beit_pack_item *it,
                        char *buf, size_t n)
{
  size_t k = 0;
  buf[0] = 0;
  for (int c = 0; c < l->num_classes && k < n; c++)
    for (size_t j = 0; j < it->num_labels && k < n; j++)
      if (it->labels[j] == c)
        k += (size_t)snprintf(buf + k, n - k, "%s%s", k ? "+" : "", l->class_names[c]);
}

/* RFC 4180 CSV manifests: quoting, CRLF, a byte order mark, errors naming file and line. */
static void test_manifest_csv_quoting(void)
{
  /* a BOM before the header, CRLF line ends, a path with a comma, one with quotes, a quoted
   * label with a comma, a line break inside a quoted path, whitespace around quotes */
  const char *text = "\xEF\xBB\xBFpath,label\r\n"
                     "\"with, comma.png\",a\r\n"
                     "\"say \"\"hi\"\".png\",b\r\n"
                     "plain.png , \"c, d\" \r\n"
                     "\r\n"
                     "# a comment, with \"quotes\r\n"
                     "\"two\r\nlines.png\",a;b\r\n"
                     "  \"\"\"quoted\"\" start.png\"  ,\"\"\r\n"
                     "last.png,b"; /* no final line end */
  struct beit_pack_list l;
  struct beit_error err = {0};
  CHECK_MSG(list_manifest("quoted.csv", text, &l, &err) == BEIT_STATUS_OK, "%s", err.message);
  static const struct {
    const char *key, *labels;
  } want[] = {{"with, comma.png", "a"},     {"say \"hi\".png", "b"}, {"plain.png", "c, d"},
              {"two\r\nlines.png", "a+b"}, {"\"quoted\" start.png", ""}, {"last.png", "b"}};
  size_t nwant = sizeof want / sizeof want[0];
  CHECK_MSG(l.count == nwant, "%zu records, want %zu (the header skipped despite the BOM)",
            l.count, nwant);
  CHECK_MSG(l.num_classes == 3 && !strcmp(l.class_names[0], "a") &&
                !strcmp(l.class_names[1], "b") && !strcmp(l.class_names[2], "c, d"),
            "%d classes", l.num_classes);
  for (size_t i = 0; i < nwant; i++) {
    const struct beit_pack_item *it = find_item(&l, want[i].key);
    char labels[256] = "";
    if (it)
      item_labels(&l, it, labels, sizeof labels);
    CHECK_MSG(it && !strcmp(labels, want[i].labels), "key [%s]: %s, labels [%s], want [%s]",
              want[i].key, it ? "found" : "missing", labels, want[i].labels);
  }
  beit_pack_list_free(&l);

  /* an unterminated quote: the error names the file and the line the quote opens on */
  CHECK(list_manifest("open.csv", "a.png,x\n\"b.png,y\nc.png,z\n", &l, &err) ==
        BEIT_STATUS_FORMAT);
  CHECK_MSG(strstr(err.message, "open.csv:2:") && strstr(err.message, "unterminated"), "%s",
            err.message);
  beit_pack_list_free(&l);
  /* text after a closing quote */
  CHECK(list_manifest("after.csv", "a.png,x\r\nb.png,y\r\n\"c\"d.png,z\r\n", &l, &err) ==
        BEIT_STATUS_FORMAT);
  CHECK_MSG(strstr(err.message, "after.csv:3:") && strstr(err.message, "closing quote"), "%s",
            err.message);
  beit_pack_list_free(&l);
  /* an error in a record spanning lines names its first line */
  CHECK(list_manifest("span.csv", "a.png,x\n\"b\nc.png\"\n", &l, &err) == BEIT_STATUS_FORMAT);
  CHECK_MSG(strstr(err.message, "span.csv:2") && strstr(err.message, "lines 2-3"), "%s",
            err.message);
  beit_pack_list_free(&l);

  /* packed end to end: an image whose file name has a comma and quotes */
  size_t n = 0;
  unsigned char *png = test_read_file(root, "cat/rgb.png", &n);
  CHECK(png != NULL);
  if (!png)
    return;
  write_bytes("cat/odd, \"name\".png", png, n);
  free(png);
  const char *csv = "\xEF\xBB\xBF\"cat/odd, \"\"name\"\".png\",x\r\ncat/rgb.png,y\r\n";
  char out[512];
  struct beit_data_pack_report rep;
  CHECK_MSG(pack_manifest("odd.csv", csv, out, sizeof out, &rep, &err) == 0, "%s", err.message);
  CHECK_MSG(rep.written == 2 && rep.skipped == 0, "written %zu, skipped %zu", rep.written,
            rep.skipped);
  struct beit_dataset *ds;
  if (beit_data_open(&ds, out, &err) != 0) {
    CHECK_MSG(0, "%s", err.message);
    return;
  }
  int seen = 0;
  struct beit_data_record rec = {0};
  for (size_t i = 0; i < beit_data_count(ds); i++)
    if (beit_data_read(ds, i, &rec, &err) == 0 && !strcmp(rec.key, "cat/odd, \"name\".png"))
      seen++;
  CHECK_MSG(seen == 1, "the record of 'cat/odd, \"name\".png' seen %d times", seen);
  beit_data_record_free(&rec);
  beit_data_close(ds);
}

/* File offset of chunk 0 of a dataset in a shard. */
static haddr_t chunk_addr(const char *path, const char *name)
{
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  hsize_t off[1];
  unsigned mask;
  haddr_t addr = HADDR_UNDEF;
  hsize_t size;
  hid_t sp = H5Dget_space(d);
  if (H5Dget_chunk_info(d, sp, 0, off, &mask, &addr, &size) < 0)
    addr = HADDR_UNDEF;
  H5Sclose(sp);
  H5Dclose(d);
  H5Fclose(f);
  return addr;
}

static void flip_byte(const char *path, long at)
{
  FILE *f = fopen(path, "r+b");
  fseek(f, at, SEEK_SET);
  int c = fgetc(f);
  fseek(f, at, SEEK_SET);
  fputc(c ^ 0x5A, f);
  fclose(f);
}

static void copy_dataset(const char *from, const char *to)
{
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", to, from, to);
  CHECK(system(cmd) == 0);
}

static void test_corruption(void)
{
  char good_ds[512], bad[512], shard[600];
  snprintf(good_ds, sizeof good_ds, "%s.ds", root);
  snprintf(bad, sizeof bad, "%s.bad_ds", root);
  snprintf(shard, sizeof shard, "%s/shard-00000.h5", bad);
  struct beit_error err = {0};
  struct beit_dataset *ds = NULL;

  /* (a) an image chunk fails its checksum: open succeeds, the read names the file. */
  copy_dataset(good_ds, bad);
  haddr_t a = chunk_addr(shard, "images");
  CHECK(a != HADDR_UNDEF);
  flip_byte(shard, (long)a + 10);
  CHECK(beit_data_open(&ds, bad, &err) == 0);
  if (ds) {
    struct beit_data_record rec = {0};
    CHECK(beit_data_read(ds, 0, &rec, &err) == BEIT_STATUS_FORMAT);
    CHECK_MSG(strstr(err.message, "shard-00000.h5") && strstr(err.message, "checksum"), "%s", err.message);
    beit_data_record_free(&rec);
    beit_data_close(ds);
  }
  /* (b) an offsets chunk fails its checksum: open fails naming the file. */
  copy_dataset(good_ds, bad);
  flip_byte(shard, (long)chunk_addr(shard, "offsets") + 3);
  CHECK(beit_data_open(&ds, bad, &err) == BEIT_STATUS_FORMAT);
  CHECK_MSG(strstr(err.message, "shard-00000.h5") && strstr(err.message, "offsets"), "%s", err.message);
  /* (c) a schema version from the future. */
  copy_dataset(good_ds, bad);
  hid_t f = H5Fopen(shard, H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t at = H5Aopen(f, "schema_version", H5P_DEFAULT);
  long long v = 99;
  H5Awrite(at, H5T_NATIVE_LLONG, &v);
  H5Aclose(at);
  H5Fclose(f);
  CHECK(beit_data_open(&ds, bad, &err) == BEIT_STATUS_FORMAT);
  CHECK_MSG(strstr(err.message, "shard-00000.h5") && strstr(err.message, "schema_version"), "%s", err.message);
  /* (d) a missing shard, (e) not HDF5 at all. */
  copy_dataset(good_ds, bad);
  unlink(shard);
  CHECK(beit_data_open(&ds, bad, &err) == BEIT_STATUS_IO);
  CHECK_MSG(strstr(err.message, "shard-00000.h5") && strstr(err.message, "missing"), "%s",
            err.message);
  FILE *j = fopen(shard, "wb");
  fputs("not hdf5", j);
  fclose(j);
  CHECK(beit_data_open(&ds, bad, &err) != BEIT_STATUS_OK);
  CHECK_MSG(strstr(err.message, "shard-00000.h5"), "%s", err.message);
}

/* Set a number (or, with text, a string) at key of index.json, or of its first shard entry
 * when shard is set; returns the number it replaced. */
static double edit_index(const char *dir, int shard, const char *key, double v, const char *text)
{
  char path[600];
  snprintf(path, sizeof path, "%s/index.json", dir);
  cJSON *root_json = NULL;
  struct beit_error err;
  CHECK(beit_json_read_file(&root_json, path, &err) == 0);
  cJSON *obj = shard ? cJSON_GetArrayItem(cJSON_GetObjectItem(root_json, "shards"), 0) : root_json;
  double old = cJSON_GetNumberValue(cJSON_GetObjectItem(obj, key));
  cJSON_ReplaceItemInObject(obj, key, text ? cJSON_CreateString(text) : cJSON_CreateNumber(v));
  CHECK(beit_json_write_file(path, root_json, &err) == 0);
  cJSON_Delete(root_json);
  return old;
}

/* index.json disagreeing with its shards is refused at open, naming the file and what differs:
 * num_records against the shards' counts, a shard's count against the shard, the task, and
 * num_classes against class_names. */
static void test_index_disagrees(void)
{
  char good_ds[512], bad[512];
  snprintf(good_ds, sizeof good_ds, "%s.ds", root);
  snprintf(bad, sizeof bad, "%s.bad_ds", root);
  struct beit_error err = {0};
  struct beit_dataset *ds = NULL;
  char want[700];
  copy_dataset(good_ds, bad);
  double n = edit_index(bad, 0, "num_records", 0, NULL);
  edit_index(bad, 0, "num_records", n + 1, NULL);
  CHECK(beit_data_open(&ds, bad, &err) == BEIT_STATUS_FORMAT);
  snprintf(want, sizeof want, "%s/index.json: num_records is %g but the shards' counts add up "
           "to %g", bad, n + 1, n);
  CHECK_MSG(strstr(err.message, want), "%s", err.message);

  copy_dataset(good_ds, bad);
  double c = edit_index(bad, 1, "count", 0, NULL);
  edit_index(bad, 1, "count", c - 1, NULL);
  edit_index(bad, 0, "num_records", n - 1, NULL);
  CHECK(beit_data_open(&ds, bad, &err) == BEIT_STATUS_FORMAT);
  snprintf(want, sizeof want, "%s/shard-00000.h5: holds %g records, index.json says %g", bad, c,
           c - 1);
  CHECK_MSG(strstr(err.message, want), "%s", err.message);

  copy_dataset(good_ds, bad);
  edit_index(bad, 0, "task", 0, "multilabel");
  CHECK(beit_data_open(&ds, bad, &err) == BEIT_STATUS_FORMAT);
  snprintf(want, sizeof want, "%s/shard-00000.h5: task 'multiclass', index.json says "
           "'multilabel'", bad);
  CHECK_MSG(strstr(err.message, want), "%s", err.message);

  copy_dataset(good_ds, bad);
  double k = edit_index(bad, 0, "num_classes", 0, NULL);
  edit_index(bad, 0, "num_classes", k + 3, NULL);
  CHECK(beit_data_open(&ds, bad, &err) == BEIT_STATUS_FORMAT);
  snprintf(want, sizeof want, "%s/index.json: num_classes is %g but class_names has %g names",
           bad, k + 3, k);
  CHECK_MSG(strstr(err.message, want), "%s", err.message);
  CHECK(ds == NULL);
}

int main(void)
{
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  if (test_mkdtemp(root, sizeof root, "data_pack_XXXXXX"))
    return 1;
  test_folder();
  test_manifests();
  test_manifest_csv_quoting();
  test_corruption();
  test_index_disagrees();
  char packs[600];
  snprintf(packs, sizeof packs, "%s %s.*", root, root);
  test_rmtree_if_passed(packs);
  return test_summary("test_data_pack");
}
