/* Shared setup of the tokenizer unit tests (test_tokenizer, test_tokenizer_bf16); links with
 * beit_tokenizer, so it is its own file next to testing.c. */
#ifndef BEIT_TESTS_TESTING_TOKENIZER_H
#define BEIT_TESTS_TESTING_TOKENIZER_H

#include <stddef.h>

struct beit_tokenizer_config;

/* The small tokenizer of the unit tests: 3 x 12 x 12 images, 3 groups of one block, n_hid 8,
 * downsample 4 (a 3 x 3 grid), 16 tokens; recon_loss as given, the default when NULL. */
void test_tokenizer_small_config(struct beit_tokenizer_config *c, const char *recon_loss);

/* n pixel values uniform in [0.1, 0.9) from their own stream `seed` (talloc'd). */
float *test_tokenizer_images(size_t n, unsigned seed);

#endif
