/* Blockwise and random masking (mim/masking.c, spec 8).
 *
 * Without arguments: the budget is never exceeded on many grids, the 14x14/75/16 count
 * distribution matches the spec's simulation, random masking is exact and uniform per position,
 * and a seed reproduces its mask.
 * With --ref FILE ... (ctest test_masking_vs_ref): draws the configuration each JSON file from
 * tools/masking_ref.py describes and compares the distributions (count histogram, mean count, rows
 * and columns spanned, per-position frequency) within sampling tolerance, printing both sides. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "config_table.h"
#include "masking.h"
#include "rng.h"
#include "testing.h"

/* Distribution of many masks of one configuration. */
struct mask_stats {
  size_t n, draws;
  double *count_prob; /* (n + 1) */
  double *pos_freq;   /* (n) row-major */
  double mean_count, var_count;
  double mean_rows, mean_cols, var_rows, var_cols;
  double mean_boundary, var_boundary; /* 4-neighbour pairs that differ: small for big blocks */
  size_t min_count, max_count;
  size_t bad_masks; /* count above budget, non-0/1 cells, or returned count != cells set */
};

static void stats_free(struct mask_stats *s)
{
  free(s->count_prob);
  free(s->pos_freq);
}

/* Each mask from its own stream keyed (seed, 0, draw), as the loader keys (seed, epoch, sample). */
static int draw_stats(struct mask_stats *s, const struct beit_mask_params *p, int blockwise,
                      uint64_t seed, size_t draws)
{
  size_t H = p->height, W = p->width, n = H * W;
  memset(s, 0, sizeof *s);
  s->n = n;
  s->draws = draws;
  s->min_count = n + 1;
  s->count_prob = calloc(n + 1, sizeof *s->count_prob);
  s->pos_freq = calloc(n, sizeof *s->pos_freq);
  uint8_t *mask = malloc(n);
  if (!s->count_prob || !s->pos_freq || !mask) {
    free(mask);
    return 0;
  }
  double sum_c = 0, sum_c2 = 0, sum_r = 0, sum_r2 = 0, sum_k = 0, sum_k2 = 0, sum_b = 0, sum_b2 = 0;
  for (size_t d = 0; d < draws; d++) {
    struct beit_rng rng;
    beit_rng_seed(&rng, seed, 0, d);
    size_t c = blockwise ? beit_mask_blockwise(mask, &rng, p) : beit_mask_random(mask, &rng, p);
    size_t set = 0, rows = 0, cols = 0, boundary = 0;
    for (size_t i = 0; i < n; i++) {
      set += mask[i] != 0;
      s->bad_masks += mask[i] > 1;
      s->pos_freq[i] += mask[i] != 0;
    }
    for (size_t i = 0; i < H; i++) {
      int any = 0;
      for (size_t j = 0; j < W; j++) {
        any |= mask[i * W + j];
        boundary += j + 1 < W && mask[i * W + j] != mask[i * W + j + 1];
        boundary += i + 1 < H && mask[i * W + j] != mask[(i + 1) * W + j];
      }
      rows += any != 0;
    }
    for (size_t j = 0; j < W; j++) {
      int any = 0;
      for (size_t i = 0; i < H; i++)
        any |= mask[i * W + j];
      cols += any != 0;
    }
    s->bad_masks += set != c || c > p->num_masking_patches;
    s->count_prob[c <= n ? c : n] += 1;
    s->min_count = c < s->min_count ? c : s->min_count;
    s->max_count = c > s->max_count ? c : s->max_count;
    sum_c += (double)c;
    sum_c2 += (double)c * (double)c;
    sum_r += (double)rows;
    sum_r2 += (double)rows * (double)rows;
    sum_k += (double)cols;
    sum_k2 += (double)cols * (double)cols;
    sum_b += (double)boundary;
    sum_b2 += (double)boundary * (double)boundary;
  }
  double D = (double)draws;
  for (size_t k = 0; k <= n; k++)
    s->count_prob[k] /= D;
  for (size_t i = 0; i < n; i++)
    s->pos_freq[i] /= D;
  s->mean_count = sum_c / D;
  s->var_count = sum_c2 / D - s->mean_count * s->mean_count;
  s->mean_rows = sum_r / D;
  s->var_rows = sum_r2 / D - s->mean_rows * s->mean_rows;
  s->mean_cols = sum_k / D;
  s->var_cols = sum_k2 / D - s->mean_cols * s->mean_cols;
  s->mean_boundary = sum_b / D;
  s->var_boundary = sum_b2 / D - s->mean_boundary * s->mean_boundary;
  free(mask);
  return 1;
}

static void test_params_check(void)
{
  struct beit_mask_params p;
  struct beit_error err = {0};
  beit_mask_params_init(&p, 14, 14, 75);
  CHECK(p.min_num_patches == 16 && p.max_num_patches == 0 && p.min_aspect == 0.3);
  CHECK(beit_mask_params_check(&p, &err) == BEIT_STATUS_OK);
  p.num_masking_patches = 197;
  CHECK(beit_mask_params_check(&p, &err) == BEIT_STATUS_CONFIG);
  CHECK_MSG(strstr(err.message, "num_masking_patches") != NULL, "%s", err.message);
  beit_mask_params_init(&p, 0, 14, 0);
  CHECK(beit_mask_params_check(&p, &err) == BEIT_STATUS_CONFIG);
  beit_mask_params_init(&p, 14, 14, 75);
  p.min_aspect = 0.0;
  CHECK(beit_mask_params_check(&p, &err) == BEIT_STATUS_CONFIG);
  p.min_aspect = 2.0; /* max = 1/min = 0.5 < min */
  CHECK(beit_mask_params_check(&p, &err) == BEIT_STATUS_CONFIG);
  p.min_aspect = 0.5;
  p.max_aspect = 0.4;
  CHECK(beit_mask_params_check(&p, &err) == BEIT_STATUS_CONFIG);
}

/* The budget holds on every grid, masks are 0/1 and the returned count is the cells set. */
static void test_budget_never_exceeded(void)
{
  static const struct {
    size_t h, w, budget, min, max;
  } cases[] = {
      {14, 14, 75, 16, 0}, {7, 7, 20, 4, 0},   {5, 9, 12, 4, 0},  {14, 14, 196, 16, 0},
      {14, 14, 0, 16, 0},  {14, 14, 75, 4, 10}, {9, 5, 30, 1, 0}, {24, 24, 230, 16, 0},
      {2, 2, 3, 1, 0},     {1, 8, 4, 1, 0},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    struct beit_mask_params p;
    beit_mask_params_init(&p, cases[c].h, cases[c].w, cases[c].budget);
    p.min_num_patches = cases[c].min;
    p.max_num_patches = cases[c].max;
    struct beit_error err = {0};
    CHECK_MSG(beit_mask_params_check(&p, &err) == BEIT_STATUS_OK, "%s", err.message);
    struct mask_stats s;
    CHECK(draw_stats(&s, &p, 1, 1000 + c, 3000));
    CHECK_MSG(s.bad_masks == 0 && s.max_count <= p.num_masking_patches,
              "%zux%zu budget %zu min %zu: %zu bad masks, max count %zu", p.height, p.width,
              p.num_masking_patches, p.min_num_patches, s.bad_masks, s.max_count);
    printf("blockwise %2zux%-2zu budget %3zu min %2zu max %2zu: counts %zu..%zu, mean %.3f\n",
           p.height, p.width, p.num_masking_patches, p.min_num_patches, p.max_num_patches,
           s.min_count, s.max_count, s.mean_count);
    if (p.num_masking_patches == 0 || p.height == 1)
      CHECK_MSG(s.max_count == 0, "%zux%zu budget %zu: %zu masked", p.height, p.width,
                p.num_masking_patches, s.max_count); /* a block is never a whole grid side */
    else
      CHECK_MSG(s.max_count > 0, "%zux%zu budget %zu: nothing masked", p.height, p.width,
                p.num_masking_patches);
    stats_free(&s);
  }
}

/* Spec 8 [sim, 200k masks]: P(75) ~ 0.666, P(74) ~ 0.231, mean 74.47. Standard errors at 20k
 * draws are ~0.0033, ~0.003 and ~0.01, so the bounds below sit at four to five of them. */
static void test_spec_distribution(void)
{
  struct beit_mask_params p;
  beit_mask_params_init(&p, 14, 14, 75);
  struct mask_stats s;
  CHECK(draw_stats(&s, &p, 1, 42, 20000));
  printf("blockwise 14x14/75/16, 20000 draws: P(75) %.4f  P(74) %.4f  P(73) %.4f  P(72) %.4f"
         "  mean %.4f  min %zu  rows %.3f cols %.3f\n",
         s.count_prob[75], s.count_prob[74], s.count_prob[73], s.count_prob[72], s.mean_count,
         s.min_count, s.mean_rows, s.mean_cols);
  CHECK_MSG(fabs(s.count_prob[75] - 0.666) < 0.015, "P(75) = %.4f", s.count_prob[75]);
  CHECK_MSG(fabs(s.count_prob[74] - 0.231) < 0.015, "P(74) = %.4f", s.count_prob[74]);
  CHECK_MSG(fabs(s.count_prob[73] - 0.049) < 0.01, "P(73) = %.4f", s.count_prob[73]);
  CHECK_MSG(fabs(s.mean_count - 74.47) < 0.06, "mean %.4f", s.mean_count);
  CHECK_MSG(s.max_count == 75 && s.min_count >= 55, "range %zu..%zu", s.min_count, s.max_count);
  /* The aspect range is symmetric in log space, so rows and columns spanned agree. */
  CHECK_MSG(fabs(s.mean_rows - s.mean_cols) < 0.06, "rows %.3f cols %.3f", s.mean_rows,
            s.mean_cols);
  stats_free(&s);
}

/* Random masking: exactly the budget, each cell with frequency budget/N. Per-cell counts are
 * Binomial(D, q); their normalised squared deviations sum to about N - 1. */
static void test_random(void)
{
  static const size_t cases[][3] = {{14, 14, 75}, {5, 9, 12}, {7, 7, 0}, {3, 4, 12}, {1, 1, 1}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    struct beit_mask_params p;
    beit_mask_params_init(&p, cases[c][0], cases[c][1], cases[c][2]);
    size_t draws = 20000, n = p.height * p.width;
    struct mask_stats s;
    CHECK(draw_stats(&s, &p, 0, 7 + c, draws));
    CHECK_MSG(s.bad_masks == 0 && s.min_count == p.num_masking_patches &&
                  s.max_count == p.num_masking_patches,
              "random %zux%zu/%zu: counts %zu..%zu, %zu bad", p.height, p.width,
              p.num_masking_patches, s.min_count, s.max_count, s.bad_masks);
    double q = (double)p.num_masking_patches / (double)n;
    if (q > 0.0 && q < 1.0) {
      double chi2 = 0.0;
      for (size_t i = 0; i < n; i++) {
        double dev = s.pos_freq[i] - q;
        chi2 += dev * dev * (double)draws / (q * (1.0 - q));
      }
      double bound = (double)n + 6.0 * sqrt(2.0 * (double)n) + 10.0;
      printf("random %2zux%-2zu budget %3zu: chi2 over positions %.1f (N = %zu, bound %.1f)\n",
             p.height, p.width, p.num_masking_patches, chi2, n, bound);
      CHECK_MSG(chi2 < bound, "random %zux%zu/%zu: chi2 %.1f >= %.1f", p.height, p.width,
                p.num_masking_patches, chi2, bound);
    } else {
      for (size_t i = 0; i < n; i++)
        CHECK(s.pos_freq[i] == q);
    }
    stats_free(&s);
  }
}

static void test_determinism(void)
{
  struct beit_mask_params p;
  beit_mask_params_init(&p, 14, 14, 75);
  uint8_t a[196], b[196];
  int differ = 0;
  for (uint64_t sample = 0; sample < 50; sample++) {
    struct beit_rng r1, r2;
    beit_rng_seed(&r1, 0, 3, sample);
    beit_rng_seed(&r2, 0, 3, sample);
    size_t ca = beit_mask_blockwise(a, &r1, &p), cb = beit_mask_blockwise(b, &r2, &p);
    CHECK(ca == cb && memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(r1.s, r2.s, sizeof r1.s) == 0); /* same number of draws consumed */
    beit_rng_seed(&r1, 0, 3, sample);
    beit_rng_seed(&r2, 0, 3, sample);
    beit_mask_random(a, &r1, &p);
    beit_mask_random(b, &r2, &p);
    CHECK(memcmp(a, b, sizeof a) == 0);
    beit_rng_seed(&r2, 0, 3, sample + 1000);
    beit_mask_blockwise(b, &r2, &p);
    beit_rng_seed(&r1, 0, 3, sample);
    beit_mask_blockwise(a, &r1, &p);
    differ += memcmp(a, b, sizeof a) != 0;
  }
  CHECK_MSG(differ >= 48, "only %d of 50 different seeds gave different masks", differ);
}

/* ---- comparison with tools/masking_ref.py ------------------------------------------------- */

static double json_num(const cJSON *root, const char *key, int *ok)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
  if (!cJSON_IsNumber(v)) {
    *ok = 0;
    return 0.0;
  }
  return v->valuedouble;
}

/* Read a length-n array of numbers into dst; 0 when absent or of another length. */
static int json_array(const cJSON *root, const char *key, double *dst, size_t n)
{
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, key);
  if (!cJSON_IsArray(a) || (size_t)cJSON_GetArraySize(a) != n)
    return 0;
  size_t i = 0;
  const cJSON *v;
  cJSON_ArrayForEach(v, a)
  {
    if (!cJSON_IsNumber(v))
      return 0;
    dst[i++] = v->valuedouble;
  }
  return 1;
}

static void compare_with_ref(const char *path)
{
  cJSON *root = NULL;
  struct beit_error err = {0};
  if (beit_json_read_file(&root, path, &err) != BEIT_STATUS_OK) {
    CHECK_MSG(0, "%s", err.message);
    return;
  }
  int ok = 1;
  struct beit_mask_params p;
  beit_mask_params_init(&p, (size_t)json_num(root, "height", &ok),
                        (size_t)json_num(root, "width", &ok),
                        (size_t)json_num(root, "num_masking_patches", &ok));
  p.min_num_patches = (size_t)json_num(root, "min_num_patches", &ok);
  p.max_num_patches = (size_t)json_num(root, "max_num_patches", &ok);
  p.min_aspect = json_num(root, "min_aspect", &ok);
  p.max_aspect = json_num(root, "max_aspect", &ok);
  double py_draws = json_num(root, "draws", &ok);
  double py_mean = json_num(root, "mean_count", &ok);
  double py_rows = json_num(root, "mean_rows", &ok), py_cols = json_num(root, "mean_cols", &ok);
  double py_boundary = json_num(root, "mean_boundary", &ok);
  const cJSON *mode = cJSON_GetObjectItemCaseSensitive(root, "mode");
  int blockwise = !cJSON_IsString(mode) || strcmp(mode->valuestring, "random") != 0;
  CHECK_MSG(ok && beit_mask_params_check(&p, &err) == BEIT_STATUS_OK && py_draws >= 1000,
            "%s: incomplete reference (%s)", path, err.message);
  size_t n = p.height * p.width;
  double *py_prob = malloc((n + 1) * sizeof *py_prob), *py_pos = malloc(n * sizeof *py_pos);
  struct mask_stats s = {0};
  if (!ok || !py_prob || !py_pos || !json_array(root, "count_prob", py_prob, n + 1) ||
      !json_array(root, "position_freq", py_pos, n) || !draw_stats(&s, &p, blockwise, 2024, 100000)) {
    CHECK_MSG(0, "%s: unreadable reference or no memory", path);
    goto free_all;
  }

  printf("\n%s: %s %zux%zu budget %zu min %zu max %zu aspect %.3g, C %zu draws vs Python %.0f\n",
         path, blockwise ? "blockwise" : "random", p.height, p.width, p.num_masking_patches,
         p.min_num_patches, p.max_num_patches, p.min_aspect, s.draws, py_draws);
  printf("  %6s %9s %9s\n", "count", "C", "Python");
  double tv = 0.0;
  for (size_t k = 0; k <= n; k++) {
    tv += 0.5 * fabs(s.count_prob[k] - py_prob[k]);
    if (s.count_prob[k] >= 5e-4 || py_prob[k] >= 5e-4)
      printf("  %6zu %9.4f %9.4f\n", k, s.count_prob[k], py_prob[k]);
  }
  /* Standard error of a difference of two sample means, C's variance standing in for both. */
  double inv = 1.0 / (double)s.draws + 1.0 / py_draws;
  double se_count = sqrt(s.var_count * inv) + 1e-12, se_rows = sqrt(s.var_rows * inv) + 1e-12;
  double se_cols = sqrt(s.var_cols * inv) + 1e-12;
  double se_boundary = sqrt(s.var_boundary * inv) + 1e-12;
  double chi2 = 0.0, max_dev = 0.0;
  size_t worst = 0, cells = 0;
  for (size_t i = 0; i < n; i++) {
    double f = (s.pos_freq[i] * (double)s.draws + py_pos[i] * py_draws) / ((double)s.draws + py_draws);
    double dev = s.pos_freq[i] - py_pos[i];
    if (fabs(dev) > max_dev) {
      max_dev = fabs(dev);
      worst = i;
    }
    if (f > 0.0 && f < 1.0) {
      chi2 += dev * dev / (f * (1.0 - f) * inv);
      cells++;
    }
  }
  /* Cells of one mask are correlated, which widens the spread of chi2 but not its mean (cells). */
  double chi2_bound = (double)cells + 8.0 * sqrt(2.0 * (double)cells) + 10.0;
  printf("  %-26s %9.4f %9.4f  (diff %.2f s.e.)\n", "mean count", s.mean_count, py_mean,
         (s.mean_count - py_mean) / se_count);
  printf("  %-26s %9.4f %9.4f  (diff %.2f s.e.)\n", "mean rows spanned", s.mean_rows, py_rows,
         (s.mean_rows - py_rows) / se_rows);
  printf("  %-26s %9.4f %9.4f  (diff %.2f s.e.)\n", "mean cols spanned", s.mean_cols, py_cols,
         (s.mean_cols - py_cols) / se_cols);
  printf("  %-26s %9.4f %9.4f  (diff %.2f s.e.)\n", "mean boundary length", s.mean_boundary,
         py_boundary, (s.mean_boundary - py_boundary) / se_boundary);
  printf("  %-26s %9.4f %9.4f\n", "P(masked) corner (0,0)", s.pos_freq[0], py_pos[0]);
  size_t centre = (p.height / 2) * p.width + p.width / 2;
  printf("  %-26s %9.4f %9.4f\n", "P(masked) centre", s.pos_freq[centre], py_pos[centre]);
  printf("  count histogram TV distance %.4f (bound 0.02)\n", tv);
  printf("  position frequency chi2 %.1f over %zu cells (bound %.1f), max |diff| %.4f at (%zu,%zu)\n",
         chi2, cells, chi2_bound, max_dev, worst / p.width, worst % p.width);

  CHECK_MSG(s.bad_masks == 0, "%s: %zu bad masks", path, s.bad_masks);
  CHECK_MSG(tv < 0.02, "%s: count histogram TV distance %.4f", path, tv);
  CHECK_MSG(fabs(s.mean_count - py_mean) < 5.0 * se_count, "%s: mean count %.4f vs %.4f", path,
            s.mean_count, py_mean);
  CHECK_MSG(fabs(s.mean_rows - py_rows) < 5.0 * se_rows, "%s: rows %.4f vs %.4f", path,
            s.mean_rows, py_rows);
  CHECK_MSG(fabs(s.mean_cols - py_cols) < 5.0 * se_cols, "%s: cols %.4f vs %.4f", path,
            s.mean_cols, py_cols);
  CHECK_MSG(fabs(s.mean_boundary - py_boundary) < 5.0 * se_boundary,
            "%s: boundary %.4f vs %.4f", path, s.mean_boundary, py_boundary);
  CHECK_MSG(chi2 < chi2_bound, "%s: position chi2 %.1f >= %.1f", path, chi2, chi2_bound);

free_all:
  stats_free(&s);
  free(py_prob);
  free(py_pos);
  cJSON_Delete(root);
}

int main(int argc, char **argv)
{
  int refs = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--ref") == 0 && i + 1 < argc) {
      compare_with_ref(argv[++i]);
      refs++;
    } else {
      fprintf(stderr, "usage: %s [--ref masking_ref.json]...\n", argv[0]);
      return 2;
    }
  }
  if (refs)
    return test_summary("test_masking_vs_ref");
  test_params_check();
  test_budget_never_exceeded();
  test_spec_distribution();
  test_random();
  test_determinism();
  return test_summary("test_masking");
}
