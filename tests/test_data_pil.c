/* The resampler, colour jitter and eval transform against PIL/torchvision (fixtures written by
 * tests/data_pil_ref.py): mean absolute error per case in grey levels, target < 1 on average
 * (we expect ~0: the arithmetic is Pillow's). Also the fast resampler against its naive twin. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_table.h"
#include "data_internal.h"
#include "testing.h"

static const char *dir;

static uint8_t *read_all(const char *name, size_t *n) { return test_read_file(dir, name, n); }

static int load_image(const char *name, struct beit_data_image *img)
{
  char file[256];
  snprintf(file, sizeof file, "%s.png", name);
  size_t n;
  uint8_t *bytes = read_all(file, &n);
  struct beit_error err;
  int bad = !bytes || beit_data_decode(img, bytes, n, file, &err);
  free(bytes);
  return bad ? -1 : 0;
}

static enum beit_data_filter filter_of(const char *s)
{
  return !strcmp(s, "bilinear") ? BEIT_DATA_FILTER_BILINEAR
         : !strcmp(s, "bicubic") ? BEIT_DATA_FILTER_BICUBIC
                                 : BEIT_DATA_FILTER_LANCZOS;
}

/* Error groups for the report: filter x (down, up). */
static double group_sum[3][2];
static int group_n[3][2];

static double mean_abs(const uint8_t *a, const uint8_t *b, size_t n, int *maxd)
{
  double s = 0;
  *maxd = 0;
  for (size_t i = 0; i < n; i++) {
    int d = abs((int)a[i] - (int)b[i]);
    s += d;
    if (d > *maxd)
      *maxd = d;
  }
  return s / (double)n;
}

static void run_case(const cJSON *c, struct beit_data_scratch *ws)
{
  const char *kind = cJSON_GetObjectItem(c, "kind")->valuestring;
  const char *image = cJSON_GetObjectItem(c, "image")->valuestring;
  int w = cJSON_GetObjectItem(c, "w")->valueint, h = cJSON_GetObjectItem(c, "h")->valueint;
  size_t n;
  uint8_t *want = read_all(cJSON_GetObjectItem(c, "out")->valuestring, &n);
  struct beit_data_image img;
  if (!want || load_image(image, &img)) {
    CHECK_MSG(0, "fixture %s missing", cJSON_GetObjectItem(c, "out")->valuestring);
    free(want);
    return;
  }
  CHECK(n == (size_t)w * h * 3);
  uint8_t *got = calloc((size_t)w * h * 3, 1);
  struct beit_error err = {0};
  char label[256];
  int group_f = -1, up = 0;
  if (!strcmp(kind, "resize")) {
    const cJSON *box = cJSON_GetObjectItem(c, "box");
    int x0 = cJSON_GetArrayItem(box, 0)->valueint, y0 = cJSON_GetArrayItem(box, 1)->valueint;
    int bw = cJSON_GetArrayItem(box, 2)->valueint, bh = cJSON_GetArrayItem(box, 3)->valueint;
    int flip = cJSON_GetObjectItem(c, "flip")->valueint;
    enum beit_data_filter f = filter_of(cJSON_GetObjectItem(c, "filter")->valuestring);
    if (flip)
      x0 = img.width - x0 - bw;
    CHECK(beit_data_resize(got, w, h, img.pixels, img.width, img.height, (size_t)img.width * 3,
                           x0, y0, bw, bh, f, ws, &err) == BEIT_STATUS_OK);
    if (flip)
      for (int y = 0; y < h; y++)
        for (int x = 0; x < w / 2; x++)
          for (int k = 0; k < 3; k++) {
            uint8_t *row = got + (size_t)y * w * 3, t = row[3 * x + k];
            row[3 * x + k] = row[3 * (w - 1 - x) + k];
            row[3 * (w - 1 - x) + k] = t;
          }
    group_f = (int)f;
    up = w * h > bw * bh;
    snprintf(label, sizeof label, "resize %s %s (%d,%d,%d,%d)->%dx%d%s", image,
             cJSON_GetObjectItem(c, "filter")->valuestring, x0, y0, bw, bh, w, h, flip ? " flip" : "");
  } else if (!strcmp(kind, "jitter")) {
    struct beit_data_jitter j = {1, {0}, {0}};
    for (int k = 0; k < 3; k++) {
      j.order[k] = cJSON_GetArrayItem(cJSON_GetObjectItem(c, "order"), k)->valueint;
      j.factor[k] = (float)cJSON_GetArrayItem(cJSON_GetObjectItem(c, "factors"), k)->valuedouble;
    }
    int mean = beit_data_jitter_contrast_mean(&j, &img);
    beit_data_jitter_apply_box(got, &img, 0, 0, img.width, img.height, &j, mean);
    snprintf(label, sizeof label, "jitter %s order %d%d%d", image, j.order[0], j.order[1], j.order[2]);
  } else {
    struct beit_data_transform t;
    beit_data_transform_defaults(&t, BEIT_DATA_MODE_EVAL);
    t.image_size = w;
    for (int k = 0; k < 3; k++)
      t.mean[k] = 0, t.std[k] = 1;
    t.filter = filter_of(cJSON_GetObjectItem(c, "filter")->valuestring);
    t.eval_resize = !strcmp(kind, "eval_crop") ? BEIT_DATA_EVAL_CENTER_CROP : BEIT_DATA_EVAL_DIRECT;
    if (t.eval_resize == BEIT_DATA_EVAL_CENTER_CROP)
      t.crop_pct = cJSON_GetObjectItem(c, "crop_pct")->valuedouble;
    float *v = malloc(sizeof(float) * 3 * (size_t)w * h);
    CHECK(beit_data_transform_apply(&t, &img, NULL, v, NULL, ws, &err) == BEIT_STATUS_OK);
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++)
        for (int k = 0; k < 3; k++)
          got[((size_t)y * w + x) * 3 + k] = (uint8_t)lrintf(v[((size_t)k * h + y) * w + x] * 255.0f);
    free(v);
    snprintf(label, sizeof label, "%s %s", kind, image);
  }
  int maxd;
  double e = mean_abs(got, want, (size_t)w * h * 3, &maxd);
  printf("  %-58s mean %.4f max %d\n", label, e, maxd);
  CHECK_MSG(e < 1.0, "%s: mean error %.3f grey levels", label, e);
  CHECK_MSG(!strcmp(kind, "resize") || e == 0.0, "%s: jitter and eval should be exact", label);
  if (group_f >= 0) {
    group_sum[group_f][up] += e;
    group_n[group_f][up]++;
  }
  free(got);
  free(want);
  beit_data_image_free(&img);
}

/* Fast (fixed point, two passes) vs naive (double, 2-D) on random images: within rounding. */
static void test_naive_twin(struct beit_data_scratch *ws)
{
  struct beit_rng rng;
  beit_rng_seed(&rng, 7, 0, 0);
  const int sizes[][6] = {{40, 30, 0, 0, 40, 30}, {53, 41, 5, 3, 31, 29}, {9, 7, 1, 1, 7, 5}};
  const int outs[][2] = {{17, 13}, {64, 80}, {31, 31}};
  for (int s = 0; s < 3; s++) {
    int sw = sizes[s][0], sh = sizes[s][1];
    uint8_t *src = malloc((size_t)sw * sh * 3);
    for (int i = 0; i < sw * sh * 3; i++)
      src[i] = (uint8_t)beit_rng_int(&rng, 0, 255);
    for (int o = 0; o < 3; o++)
      for (int f = 0; f < 3; f++) {
        int dw = outs[o][0], dh = outs[o][1];
        uint8_t *fast = malloc((size_t)dw * dh * 3);
        float *ref = malloc(sizeof(float) * (size_t)dw * dh * 3);
        struct beit_error err;
        CHECK(beit_data_resize(fast, dw, dh, src, sw, sh, (size_t)sw * 3, sizes[s][2], sizes[s][3],
                               sizes[s][4], sizes[s][5], (enum beit_data_filter)f, ws, &err) == 0);
        beit_data_resize_naive(ref, dw, dh, src, sw, sh, (size_t)sw * 3, sizes[s][2], sizes[s][3],
                               sizes[s][4], sizes[s][5], (enum beit_data_filter)f);
        double sum = 0;
        for (int i = 0; i < dw * dh * 3; i++) {
          float r = ref[i] < 0 ? 0 : ref[i] > 255 ? 255 : ref[i];
          sum += fabs(fast[i] - r);
        }
        /* Intermediate uint8 rounding costs at most ~1 level (x kernel gain) per pixel. */
        CHECK_MSG(sum / (dw * dh * 3) < 0.75, "naive twin: size %d out %d filter %d mean %.3f", s, o,
                  f, sum / (dw * dh * 3));
        free(fast);
        free(ref);
      }
    free(src);
  }
}

static void test_bad_args(struct beit_data_scratch *ws)
{
  uint8_t src[12 * 3] = {0}, dst[4 * 3];
  struct beit_error err = {0};
  CHECK(beit_data_resize(dst, 2, 2, src, 4, 3, 12, 3, 0, 2, 2, BEIT_DATA_FILTER_BICUBIC, ws, &err) ==
        BEIT_STATUS_USAGE);
  CHECK(strstr(err.message, "box") != NULL);
}

/* Every JPEG and PNG variant of the fixtures decodes to PIL's pixels exactly (libjpeg-turbo with
 * PIL's defaults; libpng with PIL's convert("RGB") rules); a progressive JPEG and one with a
 * trailer, cut short, are rejected as truncated. */
static void test_decode_variants(void)
{
  static const char *const names[] = {
      "progressive.jpg", "trailer.jpg",       "jpeg_444.jpg",       "jpeg_422.jpg",
      "jpeg_420.jpg",    "jpeg_grey.jpg",     "jpeg_cmyk.jpg",      "png_rgb16.png",
      "png_grey16.png",  "png_adam7.png",     "png_rgba.png",       "png_grey_alpha.png",
      "png_palette_trns.png", "png_palette4.png", "png_1bit.png"};
  for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
    size_t n, np;
    char pil_name[64];
    snprintf(pil_name, sizeof pil_name, "%s.pil.u8", names[k]);
    uint8_t *bytes = read_all(names[k], &n), *pil = read_all(pil_name, &np);
    if (!bytes || !pil) {
      CHECK_MSG(0, "fixture %s missing", names[k]);
      free(bytes), free(pil);
      continue;
    }
    struct beit_data_image img;
    struct beit_error err = {0};
    CHECK_MSG(beit_data_decode(&img, bytes, n, names[k], &err) == 0, "%s", err.message);
    if (img.pixels) {
      int maxd = 99;
      int same_size = np == (size_t)img.width * img.height * 3;
      double e = same_size ? mean_abs(img.pixels, pil, np, &maxd) : 99;
      printf("  %-24s %4dx%-4d max difference %d vs PIL\n", names[k], img.width, img.height, maxd);
      CHECK_MSG(same_size && maxd == 0, "%s: mean difference %.3f, max %d", names[k], e, maxd);
    }
    beit_data_image_free(&img);
    if (k < 2) {
      size_t cut = k == 0 ? n * 7 / 10 : n - 8 * 50 - 6 - 200; /* trailer: cut inside the image */
      CHECK(beit_data_decode(&img, bytes, cut, names[k], &err) == BEIT_STATUS_FORMAT);
      CHECK_MSG(strstr(err.message, "truncated"), "%s", err.message);
      beit_data_image_free(&img);
    }
    free(bytes);
    free(pil);
  }
}

/* A progressive JPEG with hundreds of scans over 2000x2000 pixels is refused with a message
 * that says why, quickly: scans x pixels is bounded (data/image_jpeg.c). */
static void test_scan_bomb(void)
{
  size_t n;
  uint8_t *bytes = read_all("scan_bomb.jpg", &n);
  CHECK_MSG(bytes != NULL, "fixture scan_bomb.jpg missing");
  if (!bytes)
    return;
  struct beit_data_image img;
  struct beit_error err = {0};
  CHECK(beit_data_decode(&img, bytes, n, "scan_bomb.jpg", &err) == BEIT_STATUS_FORMAT);
  CHECK_MSG(strstr(err.message, "progressive scans for 2000x2000"), "%s", err.message);
  printf("  scan bomb (%zu bytes): %s\n", n, err.message);
  beit_data_image_free(&img);
  free(bytes);
}

static void test_random_erase(void)
{
  enum { S = 40, N = 3 * S * S };
  static float view[N], again[N];
  struct beit_rng rng;
  for (int i = 0; i < N; i++)
    view[i] = 7.0f;
  beit_rng_seed(&rng, 1, 2, 3);
  beit_data_random_erase(view, S, 0.0, &rng);
  int untouched = 1;
  for (int i = 0; i < N; i++)
    untouched &= view[i] == 7.0f;
  CHECK(untouched);
  double sum = 0, sq = 0;
  long values = 0;
  for (uint64_t seed = 0; seed < 200; seed++) {
    for (int i = 0; i < N; i++)
      view[i] = 7.0f;
    beit_rng_seed(&rng, seed, 0, 0);
    beit_data_random_erase(view, S, 1.0, &rng);
    int x0 = S, y0 = S, x1 = -1, y1 = -1, changed = 0;
    for (int y = 0; y < S; y++)
      for (int x = 0; x < S; x++)
        if (view[y * S + x] != 7.0f) {
          changed++;
          x0 = x < x0 ? x : x0, x1 = x > x1 ? x : x1, y0 = y < y0 ? y : y0, y1 = y > y1 ? y : y1;
        }
    if (!changed)
      continue; /* 10 tries can all miss (rare): the image stays */
    const int w = x1 - x0 + 1, h = y1 - y0 + 1;
    CHECK_MSG(changed == w * h, "seed %llu: erased pixels are not one box", (unsigned long long)seed);
    CHECK_MSG(w * h >= 0.015 * S * S && w * h <= 0.36 * S * S && (double)h / w <= 3.34 * 1.2 &&
                  (double)w / h <= 3.34 * 1.2,
              "seed %llu: box %dx%d", (unsigned long long)seed, w, h);
    for (int c = 0; c < 3; c++)
      for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
          const double v = view[(c * S + y) * S + x];
          sum += v, sq += v * v, values++;
        }
    memcpy(again, view, sizeof view);
    for (int i = 0; i < N; i++)
      view[i] = 7.0f;
    beit_rng_seed(&rng, seed, 0, 0);
    beit_data_random_erase(view, S, 1.0, &rng);
    CHECK(!memcmp(view, again, sizeof view));
  }
  const double mean = sum / (double)values, var = sq / (double)values - mean * mean;
  CHECK_MSG(values > 10000 && fabs(mean) < 0.05 && fabs(var - 1.0) < 0.05,
            "erased values: mean %.3f, variance %.3f over %ld", mean, var, values);
}

/* The fine-tuning transform with RandAugment: a bad spec is refused naming it, an out-of-range
 * policy by the transform check; "" leaves the transform as it was; a spec changes view A for
 * most seeds, deterministically. */
static void test_finetune_rand_augment(struct beit_data_scratch *ws)
{
  enum { W = 50, H = 40, S = 24, N = 3 * S * S };
  static uint8_t px[W * H * 3];
  static float plain[N], aug[N], again[N];
  for (int i = 0; i < W * H * 3; i++)
    px[i] = (uint8_t)((i * 7 + (i / 150) * 13) % 251);
  struct beit_data_image img = {px, W, H};
  struct beit_data_transform t;
  struct beit_error err = {0};
  beit_data_transform_defaults(&t, BEIT_DATA_MODE_FINETUNE);
  t.image_size = S;
  CHECK(beit_randaugment_parse(&t.rand_augment, "rand-m9-bogus", &err) == BEIT_STATUS_CONFIG &&
        strstr(err.message, "rand-m9-bogus"));
  t.rand_augment.num_layers = BEIT_RA_MAX_LAYERS + 1;
  CHECK(beit_data_transform_check(&t, &err) == BEIT_STATUS_CONFIG);
  int changed = 0;
  for (uint64_t seed = 0; seed < 20; seed++) {
    struct beit_rng rng;
    CHECK(beit_randaugment_parse(&t.rand_augment, "", &err) == BEIT_STATUS_OK);
    beit_rng_seed(&rng, seed, 1, 2);
    CHECK(beit_data_transform_apply(&t, &img, &rng, plain, NULL, ws, &err) == BEIT_STATUS_OK);
    CHECK(beit_randaugment_parse(&t.rand_augment, "rand-m9-mstd0.5-inc1", &err) == 0);
    CHECK(beit_data_transform_check(&t, &err) == BEIT_STATUS_OK);
    beit_rng_seed(&rng, seed, 1, 2);
    CHECK(beit_data_transform_apply(&t, &img, &rng, aug, NULL, ws, &err) == BEIT_STATUS_OK);
    beit_rng_seed(&rng, seed, 1, 2);
    CHECK(beit_data_transform_apply(&t, &img, &rng, again, NULL, ws, &err) == BEIT_STATUS_OK);
    CHECK(!memcmp(aug, again, sizeof aug));
    changed += memcmp(plain, aug, sizeof aug) != 0;
  }
  CHECK_MSG(changed >= 8, "RandAugment changed %d of 20 views", changed);
}

int main(int argc, char **argv)
{
  dir = argc > 1 ? argv[1] : "data_pil_ref";
  struct beit_data_scratch *ws = beit_data_scratch_init();
  test_naive_twin(ws);
  test_bad_args(ws);
  test_decode_variants();
  test_scan_bomb();
  test_random_erase();
  test_finetune_rand_augment(ws);
  cJSON *cases = test_read_json(dir, "cases.json", "tests/data_pil_ref.py");
  if (!cases)
    return test_summary("test_data_pil");
  const cJSON *c;
  int ncases = 0;
  cJSON_ArrayForEach(c, cases) {
    run_case(c, ws);
    ncases++;
  }
  CHECK(ncases >= 40);
  static const char *fn[3] = {"bilinear", "bicubic", "lanczos"};
  printf("resampler vs PIL, mean |error| in grey levels (averaged over cases):\n");
  for (int f = 0; f < 3; f++)
    for (int up = 0; up < 2; up++)
      if (group_n[f][up])
        printf("  %-8s %-4s %.4f  (%d cases)\n", fn[f], up ? "up" : "down",
               group_sum[f][up] / group_n[f][up], group_n[f][up]);
  for (int f = 1; f < 3; f++)
    CHECK_MSG(group_n[f][0] > 0 && group_n[f][1] > 0, "%s needs down and up cases", fn[f]);
  cJSON_Delete(cases);
  beit_data_scratch_free(ws);
  return test_summary("test_data_pil");
}
