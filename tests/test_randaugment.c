/* RandAugment (data/randaugment.c) against PIL: every op at several arguments on four small
 * images (fixtures written by tests/randaugment_ref.py), exact for all ops; the spec parser;
 * and the policy: deterministic per seed, a no-op when disabled, and the documented draw order
 * and level -> argument mapping (replayed here op by op). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_table.h"
#include "randaugment.h"
#include "testing.h"

static const char *dir;

static const char *const op_names[BEIT_RA_COUNT] = {
    "autocontrast", "equalize",   "invert",    "rotate",     "posterize",
    "solarize",     "solarize_add", "color",   "contrast",   "brightness",
    "sharpness",    "shear_x",    "shear_y",   "translate_x", "translate_y"};

static uint8_t *read_all(const char *name, size_t *n) { return test_read_file(dir, name, n); }

static int op_of(const char *name)
{
  for (int k = 0; k < BEIT_RA_COUNT; k++)
    if (!strcmp(name, op_names[k]))
      return k;
  return -1;
}

/* Per-op tallies for the report. */
static struct {
  int cases, max_diff;
  size_t bytes, exact;
} tally[BEIT_RA_COUNT];

static void run_case(const cJSON *c)
{
  const char *opname = cJSON_GetObjectItem(c, "op")->valuestring;
  const char *image = cJSON_GetObjectItem(c, "image")->valuestring;
  const char *out = cJSON_GetObjectItem(c, "out")->valuestring;
  int w = cJSON_GetObjectItem(c, "w")->valueint, h = cJSON_GetObjectItem(c, "h")->valueint;
  double arg = cJSON_GetObjectItem(c, "arg")->valuedouble;
  int bicubic = cJSON_GetObjectItem(c, "bicubic")->valueint, op = op_of(opname);
  uint8_t fill[3];
  for (int k = 0; k < 3; k++)
    fill[k] = (uint8_t)cJSON_GetArrayItem(cJSON_GetObjectItem(c, "fill"), k)->valueint;
  char file[256];
  snprintf(file, sizeof file, "%s.u8", image);
  size_t n_in = 0, n_want = 0, n = (size_t)w * h * 3;
  uint8_t *got = read_all(file, &n_in), *want = read_all(out, &n_want);
  if (!got || !want || op < 0 || n_in != n || n_want != n) {
    CHECK_MSG(0, "case %s (%s on %s) unreadable or unknown", out, opname, image);
    free(got), free(want);
    return;
  }
  struct beit_error err = {0};
  uint8_t *scratch = malloc(n);
  CHECK_MSG(scratch && beit_randaugment_op((enum beit_ra_op)op, arg, got, w, h, fill, bicubic,
                                           scratch, &err) == 0,
            "%s", err.message);
  free(scratch);
  size_t exact = 0;
  int maxd = 0, first = -1;
  for (size_t i = 0; i < n; i++) {
    int d = abs((int)got[i] - (int)want[i]);
    exact += d == 0;
    maxd = d > maxd ? d : maxd;
    if (d && first < 0)
      first = (int)i;
  }
  CHECK_MSG(exact == n, "%s %s arg %.17g %s: %zu of %zu bytes differ, max %d, first at pixel "
            "(%d, %d) got %d want %d", opname, image, arg, bicubic ? "bicubic" : "bilinear",
            n - exact, n, maxd, first / 3 % w, first / 3 / w, first >= 0 ? got[first] : 0,
            first >= 0 ? want[first] : 0);
  tally[op].cases++;
  tally[op].bytes += n;
  tally[op].exact += exact;
  tally[op].max_diff = maxd > tally[op].max_diff ? maxd : tally[op].max_diff;
  free(got);
  free(want);
}

static void test_against_pil(void)
{
  cJSON *cases = test_read_json(dir, "cases.json", "tests/randaugment_ref.py");
  if (!cases)
    return;
  const cJSON *c;
  cJSON_ArrayForEach(c, cases) run_case(c);
  cJSON_Delete(cases);
  printf("RandAugment ops vs PIL, bytes equal:\n");
  for (int op = 0; op < BEIT_RA_COUNT; op++) {
    printf("  %-13s %3d cases  exact %.4f%%  max |diff| %d\n", op_names[op], tally[op].cases,
           tally[op].bytes ? 100.0 * (double)tally[op].exact / (double)tally[op].bytes : 0.0,
           tally[op].max_diff);
    CHECK_MSG(tally[op].cases >= 4, "%s: only %d cases", op_names[op], tally[op].cases);
  }
}

static void test_parse(void)
{
  struct beit_randaugment ra;
  struct beit_error err = {0};
  CHECK(beit_randaugment_parse(&ra, "rand-m9-mstd0.5-inc1", &err) == BEIT_STATUS_OK);
  CHECK(ra.num_layers == 2 && ra.magnitude == 9.0 && ra.magnitude_std == 0.5);
  CHECK(ra.increasing == 1 && ra.prob == 0.5 && ra.translate_pct == 0.45 && ra.bicubic == 1);
  CHECK(ra.fill[0] == 128 && ra.fill[1] == 128 && ra.fill[2] == 128);

  CHECK(beit_randaugment_parse(&ra, "rand", &err) == BEIT_STATUS_OK);
  CHECK(ra.num_layers == 2 && ra.magnitude == 10.0 && ra.magnitude_std == 0.0);
  CHECK(ra.increasing == 0 && ra.prob == 0.5);
  CHECK(beit_randaugment_parse(&ra, "rand-n3-m7.5-mstd101-p0.25-inc0", &err) == BEIT_STATUS_OK);
  CHECK(ra.num_layers == 3 && ra.magnitude == 7.5 && isinf(ra.magnitude_std));
  CHECK(ra.prob == 0.25 && ra.increasing == 0);
  CHECK(beit_randaugment_parse(&ra, "", &err) == BEIT_STATUS_OK && ra.num_layers == 0);
  CHECK(beit_randaugment_parse(&ra, NULL, &err) == BEIT_STATUS_OK && ra.num_layers == 0);

  CHECK(beit_randaugment_parse(&ra, "rand-m9-foo1", &err) == BEIT_STATUS_CONFIG);
  CHECK_MSG(strstr(err.message, "'foo1'") && strstr(err.message, "rand-m9-foo1"), "%s",
            err.message);
  CHECK(ra.num_layers == 0);
  CHECK(beit_randaugment_parse(&ra, "autoaug", &err) == BEIT_STATUS_CONFIG);
  CHECK_MSG(strstr(err.message, "autoaug"), "%s", err.message);
  static const char *const bad[] = {"rand-m9-mmax10", "rand-n2.5", "rand-p1.5", "rand-inc2",
                                    "rand--m9", "rand-m", "rand-m9x", "randm9", "original-m9",
                                    "rand-n65"};
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
    CHECK_MSG(beit_randaugment_parse(&ra, bad[k], &err) == BEIT_STATUS_CONFIG, "'%s' accepted",
              bad[k]);
}

/* A deterministic test image with structure in every channel. */
static void fill_image(uint8_t *p, int w, int h, uint64_t seed)
{
  struct beit_rng rng;
  beit_rng_seed(&rng, seed, 1, 2);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int c = 0; c < 3; c++)
        p[((size_t)y * w + x) * 3 + c] =
            (uint8_t)((x * 7 + y * 3 + c * 50) % 200 + beit_rng_int(&rng, 0, 55));
}

enum { W = 33, H = 27, NB = W * H * 3 };
static uint8_t scratch_nb[NB]; /* the ops' scratch for W x H images */

/* The policy parsed into ra (a failure when it does not parse) and orig a W x H test image. */
static void policy_and_image(struct beit_randaugment *ra, const char *policy, uint8_t *orig,
                             uint64_t seed)
{
  struct beit_error err = {0};
  CHECK_MSG(beit_randaugment_parse(ra, policy, &err) == 0, "%s: %s", policy, err.message);
  fill_image(orig, W, H, seed);
}

/* Two runs from one start: a and b copies of orig, r1 and r2 the same stream (key, seed). */
static void twin_start(uint8_t *a, uint8_t *b, const uint8_t *orig, struct beit_rng *r1,
                       struct beit_rng *r2, uint64_t key, uint64_t seed)
{
  beit_rng_seed(r1, key, seed, 0);
  *r2 = *r1;
  memcpy(a, orig, NB);
  memcpy(b, orig, NB);
}

static void test_apply_policy(void)
{
  struct beit_randaugment ra;
  struct beit_error err = {0};
  uint8_t orig[NB], a[NB], b[NB];
  policy_and_image(&ra, "rand-m9-mstd0.5-inc1", orig, 5);
  int changed = 0;
  for (uint64_t seed = 0; seed < 20; seed++) {
    struct beit_rng r1, r2;
    twin_start(a, b, orig, &r1, &r2, 42, seed);
    CHECK(beit_randaugment_apply(&ra, a, W, H, &r1, scratch_nb, &err) == 0);
    CHECK(beit_randaugment_apply(&ra, b, W, H, &r2, scratch_nb, &err) == 0);
    CHECK_MSG(!memcmp(a, b, NB), "seed %d not deterministic", (int)seed);
    CHECK(!memcmp(&r1, &r2, sizeof r1));
    changed += memcmp(a, orig, NB) != 0;
  }
  /* P(no op applied) = 1/4, and a few ops can be identities: most seeds change the image. */
  CHECK_MSG(changed >= 8 && changed < 20, "%d of 20 seeds changed the image", changed);

  struct beit_randaugment off = ra;
  for (int k = 0; k < 2; k++) {
    off = ra;
    if (k == 0)
      off.num_layers = 0;
    else
      off.prob = 0.0;
    for (uint64_t seed = 0; seed < 10; seed++) {
      struct beit_rng rng;
      beit_rng_seed(&rng, 42, seed, 0);
      memcpy(a, orig, NB);
      CHECK(beit_randaugment_apply(&off, a, W, H, &rng, scratch_nb, &err) == 0);
      CHECK_MSG(!memcmp(a, orig, NB), "%s but the image changed",
                k ? "prob 0" : "num_layers 0");
    }
  }
  off = ra;
  off.num_layers = BEIT_RA_MAX_LAYERS + 1;
  struct beit_rng rng;
  beit_rng_seed(&rng, 1, 0, 0);
  CHECK(beit_randaugment_apply(&off, a, W, H, &rng, scratch_nb, &err) == BEIT_STATUS_USAGE);
  CHECK(beit_randaugment_op(BEIT_RA_COUNT, 0, a, W, H, ra.fill, 1, scratch_nb, &err) ==
        BEIT_STATUS_USAGE);
  CHECK(beit_randaugment_op(BEIT_RA_ROTATE, 0, a, 0, H, ra.fill, 1, scratch_nb, &err) ==
        BEIT_STATUS_USAGE);
  CHECK(beit_randaugment_op(BEIT_RA_ROTATE, NAN, a, W, H, ra.fill, 1, scratch_nb, &err) ==
        BEIT_STATUS_USAGE);
}

/* timm's increasing level -> argument, written out from auto_augment.py's formulas. */
static double expected_arg(int op, double level, struct beit_rng *rng)
{
  double l = level / 10.0;
  int neg = 0;
  if (op == BEIT_RA_ROTATE || op >= BEIT_RA_COLOR)
    neg = beit_rng_uniform(rng) > 0.5;
  double s = neg ? -1.0 : 1.0;
  switch (op) {
  case BEIT_RA_ROTATE: return s * l * 30.0;
  case BEIT_RA_POSTERIZE: return 4 - (int)(l * 4);
  case BEIT_RA_SOLARIZE: return 256 - (int)(l * 256);
  case BEIT_RA_SOLARIZE_ADD: return (int)(l * 110);
  case BEIT_RA_COLOR: case BEIT_RA_CONTRAST: case BEIT_RA_BRIGHTNESS: case BEIT_RA_SHARPNESS:
    return fmax(0.1, 1.0 + s * l * 0.9);
  case BEIT_RA_SHEAR_X: case BEIT_RA_SHEAR_Y: return s * l * 0.3;
  case BEIT_RA_TRANSLATE_X: return s * l * 0.45 * W;
  case BEIT_RA_TRANSLATE_Y: return s * l * 0.45 * H;
  default: return 0.0;
  }
}

/* Replay the documented draw order by hand and apply the ops one by one: same bytes as
 * beit_randaugment_apply, for many seeds (every op gets drawn). */
static void test_apply_draw_order(void)
{
  struct beit_randaugment ra;
  struct beit_error err = {0};
  uint8_t orig[NB], a[NB], b[NB];
  policy_and_image(&ra, "rand-n3-m9-mstd0.5-inc1-p0.7", orig, 9);
  int seen[BEIT_RA_COUNT] = {0}, mismatches = 0;
  for (uint64_t seed = 0; seed < 60; seed++) {
    struct beit_rng r1, r2;
    twin_start(a, b, orig, &r1, &r2, 3, seed);
    CHECK(beit_randaugment_apply(&ra, a, W, H, &r1, scratch_nb, &err) == 0);
    int ops[3];
    for (int i = 0; i < 3; i++)
      ops[i] = (int)beit_rng_int(&r2, 0, BEIT_RA_COUNT - 1);
    for (int i = 0; i < 3; i++) {
      if (beit_rng_uniform(&r2) > 0.7)
        continue;
      double level = fmin(10.0, fmax(0.0, 9.0 + 0.5 * beit_rng_normal(&r2)));
      double arg = expected_arg(ops[i], level, &r2);
      CHECK(beit_randaugment_op((enum beit_ra_op)ops[i], arg, b, W, H, ra.fill, 1, scratch_nb,
                                    &err) == 0);
      seen[ops[i]]++;
    }
    mismatches += memcmp(a, b, NB) != 0 || memcmp(&r1, &r2, sizeof r1) != 0;
  }
  CHECK_MSG(mismatches == 0, "%d of 60 seeds differ from the replayed draws", mismatches);
  for (int op = 0; op < BEIT_RA_COUNT; op++)
    CHECK_MSG(seen[op] > 0, "op %s never drawn", op_names[op]);
}

/* The vectorised affine resampler and Sharpness against their naive twins (rule 4): the same
 * bytes on random images, sizes (1x1 .. 48x48, inner and edge pixels), matrices (shear,
 * translate, rotation, general) and fills, with both filters. */
static void test_naive_twins(void)
{
  enum { MAXN = 48 * 48 * 3 };
  static uint8_t img[MAXN], fast[MAXN], naive[MAXN], scratch[MAXN];
  struct beit_rng rng;
  beit_rng_seed(&rng, 7, 7, 7);
  int affine_diff = 0, sharp_diff = 0;
  for (int trial = 0; trial < 600; trial++) {
    const int w = (int)beit_rng_int(&rng, 1, 48), h = (int)beit_rng_int(&rng, 1, 48);
    const size_t n = (size_t)w * h * 3;
    for (size_t i = 0; i < n; i++) { /* a gradient with noise: smooth and sharp parts */
      const size_t row = i / (3 * (size_t)w), noise = (size_t)beit_rng_int(&rng, 0, 40);
      img[i] = (uint8_t)((i * 5 + row * 9 + noise) % 256);
    }
    double a[6] = {1, 0, 0, 0, 1, 0}, v = 2.0 * beit_rng_uniform(&rng) - 1.0;
    switch (trial % 4) {
    case 0: a[1 + 2 * (int)beit_rng_int(&rng, 0, 1)] = 0.3 * v; break; /* shear x or y */
    case 1: a[2 + 3 * (int)beit_rng_int(&rng, 0, 1)] = 0.45 * v * w; break; /* translate */
    case 2: { /* rotation about the centre, as rotate() builds it */
      double r = v * M_PI / 6.0, cx = w / 2.0, cy = h / 2.0;
      a[0] = a[4] = cos(r), a[1] = sin(r), a[3] = -sin(r);
      a[2] = a[0] * -cx + a[1] * -cy + cx, a[5] = a[3] * -cx + a[4] * -cy + cy;
      break;
    }
    default:
      for (int k = 0; k < 6; k++)
        a[k] += (k == 2 || k == 5 ? 4.0 : 0.2) * (2.0 * beit_rng_uniform(&rng) - 1.0);
    }
    const uint8_t fill[3] = {(uint8_t)beit_rng_int(&rng, 0, 255), 128, 0};
    const int bicubic = trial % 2;
    memcpy(fast, img, n);
    memcpy(naive, img, n);
    beit_ra_affine(fast, w, h, a, fill, bicubic, scratch);
    beit_ra_affine_naive(naive, w, h, a, fill, bicubic, scratch);
    affine_diff += memcmp(fast, naive, n) != 0;
    const float alpha = (float)(2.2 * beit_rng_uniform(&rng) - 0.1);
    memcpy(fast, img, n);
    memcpy(naive, img, n);
    beit_ra_sharpness(fast, w, h, alpha, scratch);
    beit_ra_sharpness_naive(naive, w, h, alpha, scratch);
    sharp_diff += memcmp(fast, naive, n) != 0;
  }
  CHECK_MSG(affine_diff == 0, "affine: %d of 600 cases differ from the naive twin", affine_diff);
  CHECK_MSG(sharp_diff == 0, "sharpness: %d of 600 cases differ from the naive twin", sharp_diff);
}

int main(int argc, char **argv)
{
  dir = argc > 1 ? argv[1] : "randaugment_ref";
  test_against_pil();
  test_parse();
  test_apply_policy();
  test_apply_draw_order();
  test_naive_twins();
  return test_summary("test_randaugment");
}
