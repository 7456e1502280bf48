/* Shared setup of the tokenizer unit tests. */
#include "testing_tokenizer.h"

#include <stdio.h>

#include "dvae.h"
#include "testing.h"

void test_tokenizer_small_config(struct beit_tokenizer_config *c, const char *recon_loss)
{
  beit_tokenizer_config_defaults(c);
  c->input_channels = 3;
  c->n_hid = 8;
  c->group_count = 3;
  c->n_blk_per_group = 1;
  c->vocab_size = 16;
  c->downsample = 4;
  c->n_init = 6;
  c->image_size = 12;
  if (recon_loss)
    snprintf(c->recon_loss, sizeof c->recon_loss, "%s", recon_loss);
}

float *test_tokenizer_images(size_t n, unsigned seed)
{
  float *x = talloc(n * sizeof *x);
  struct beit_rng rng;
  beit_rng_seed(&rng, seed, 0, 0);
  for (size_t i = 0; i < n; i++)
    x[i] = 0.1f + 0.8f * (float)beit_rng_uniform(&rng);
  return x;
}
