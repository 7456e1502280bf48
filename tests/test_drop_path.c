/* mim/drop_path.c: per-block rates linspace(0, rate, L); every sample's scales come from its own
 * stream, so a sample gets the same scales in any batch position or batch size (what makes
 * 2 ranks x B equal 1 rank x 2B); scales are 0 or 1 / keep with the dropped fraction near the
 * rate; block 0 never drops. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "drop_path.h"
#include "testing.h"

int main(void)
{
  struct beit_error err = {0};
  struct beit_drop_path d;
  const size_t L = 5, B = 512;
  CHECK(beit_drop_path_init(&d, L, B, 0.4, &err) == BEIT_STATUS_OK);
  for (size_t l = 0; l < L; l++)
    CHECK(fabsf(d.rates[l] - 0.1f * (float)l) < 1e-6f);

  int64_t idx[512], rev[512];
  for (size_t s = 0; s < B; s++)
    idx[s] = (int64_t)(1000 + 7 * s);
  for (size_t s = 0; s < B; s++)
    rev[s] = idx[B - 1 - s];
  struct beit_loader_batch b;
  memset(&b, 0, sizeof b);
  b.count = B, b.epoch = 3, b.indices = idx;
  static float first[2 * 5 * 512];
  memcpy(first, beit_drop_path_draw(&d, 42, &b), sizeof first);
  /* dropped fraction per block near its rate; kept samples scaled by 1 / keep */
  for (size_t k = 0; k < 2 * L; k++) {
    const float rate = d.rates[k / 2], keep = 1.0f - rate;
    size_t dropped = 0;
    for (size_t s = 0; s < B; s++) {
      const float v = first[k * B + s];
      CHECK(v == 0.0f || fabsf(v - 1.0f / keep) < 1e-6f);
      dropped += v == 0.0f;
    }
    const double frac = (double)dropped / (double)B;
    CHECK_MSG(fabs(frac - rate) <= 0.07, "branch %zu: dropped %.3f, rate %.2f", k, frac, rate);
  }
  /* reversed batch order: each sample keeps its scales */
  b.indices = rev;
  const float *again = beit_drop_path_draw(&d, 42, &b);
  int same = 1;
  for (size_t k = 0; k < 2 * L; k++)
    for (size_t s = 0; s < B; s++)
      same &= again[k * B + s] == first[k * B + (B - 1 - s)];
  CHECK(same);
  /* a micro-batch of the first 3 samples: the same scales as in the full batch */
  b.indices = idx, b.count = 3;
  const float *part = beit_drop_path_draw(&d, 42, &b);
  same = 1;
  for (size_t k = 0; k < 2 * L; k++)
    for (size_t s = 0; s < 3; s++)
      same &= part[k * 3 + s] == first[k * B + s];
  CHECK(same);
  /* another epoch or seed draws differently */
  b.count = B, b.epoch = 4;
  const float *other = beit_drop_path_draw(&d, 42, &b);
  CHECK(memcmp(other, first, sizeof first) != 0);
  beit_drop_path_free(&d);
  return test_summary("test_drop_path");
}
