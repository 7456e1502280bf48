/* Per-sample drop-path scales (see drop_path.h). */
#include "drop_path.h"

#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "rng.h"

#define DROP_STREAM 0x64726f70ull /* "drop" */

enum beit_status beit_drop_path_init(struct beit_drop_path *d, size_t L, size_t max_batch,
                                     double drop_path_rate, struct beit_error *err)
{
  memset(d, 0, sizeof *d);
  d->L = L;
  d->max_batch = max_batch;
  d->rates = malloc(L * sizeof *d->rates);
  d->uniform = malloc(2 * L * max_batch * sizeof *d->uniform);
  d->scales = malloc(2 * L * max_batch * sizeof *d->scales);
  if (!d->rates || !d->uniform || !d->scales) {
    beit_drop_path_free(d);
    return beit_error_set(err, BEIT_STATUS_NOMEM, "drop path: out of memory");
  }
  for (size_t l = 0; l < L; l++) /* linspace(0, drop_path_rate, L), both ends included */
    d->rates[l] = L > 1 ? (float)(drop_path_rate * (double)l / (double)(L - 1)) : 0.0f;
  return BEIT_STATUS_OK;
}

void beit_drop_path_free(struct beit_drop_path *d)
{
  free(d->rates);
  free(d->uniform);
  free(d->scales);
  memset(d, 0, sizeof *d);
}

const float *beit_drop_path_draw(struct beit_drop_path *d, uint64_t seed,
                                 const struct beit_loader_batch *b)
{
  const size_t L = d->L, B = b->count;
  for (size_t s = 0; s < B; s++) {
    struct beit_rng rng;
    beit_rng_seed(&rng, seed ^ DROP_STREAM, b->epoch, (uint64_t)b->indices[s]);
    for (size_t k = 0; k < 2 * L; k++)
      d->uniform[k * B + s] = beit_rng_uniform(&rng);
  }
  for (size_t k = 0; k < 2 * L; k++)
    beit_drop_path_scales(d->scales + k * B, d->uniform + k * B, d->rates[k / 2], B);
  return d->scales;
}
