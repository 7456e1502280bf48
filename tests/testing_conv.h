/* The odd-shape sweep that test_conv (float32) and test_conv_bf16 both run over their own
 * convolution case. */
#ifndef BEIT_TESTS_TESTING_CONV_H
#define BEIT_TESTS_TESTING_CONV_H

#include <stddef.h>

/* One convolution case: shapes (B, C, H, W) -> (B, OC, H, W) with a K x K kernel, flags
 * (BEIT_CONV_RELU_*), scale and accumulate, on nthreads threads. */
typedef void test_conv_case(size_t B, size_t C, size_t H, size_t W, size_t OC, size_t K,
                            unsigned flags, float scale, int accumulate, int nthreads);

/* For 1 and 2 threads and each of the four ReLU flag combinations: odd shapes with every
 * kernel size DALL-E uses (K = 3, 1, 7, 5), scale and accumulate varied; with `col2im` also
 * C < OC (3 -> 12 channels, K = 3), where the input gradient goes by col2im. */
void test_conv_sweep(test_conv_case *run, int col2im);

#endif
