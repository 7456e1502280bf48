/* The convolution tests' shared odd-shape sweep. */
#include "testing_conv.h"

#include "conv.h"

void test_conv_sweep(test_conv_case *run, int col2im)
{
  const unsigned flag_sets[4] = {0, BEIT_CONV_RELU_INPUT, BEIT_CONV_RELU_OUTPUT,
                                 BEIT_CONV_RELU_INPUT | BEIT_CONV_RELU_OUTPUT};
  for (int t = 1; t <= 2; t++)
    for (int f = 0; f < 4; f++) {
      run(3, 5, 7, 9, 6, 3, flag_sets[f], 0.7f, f & 1, t);
      run(2, 4, 5, 3, 7, 1, flag_sets[f], 1.0f, !(f & 1), t);
      run(1, 3, 9, 8, 4, 7, flag_sets[f], 1.0f, 0, t);
      run(2, 2, 3, 4, 3, 5, flag_sets[f], 0.25f, 1, t);
      run(2, 3, 4, 2, 3, 5, flag_sets[f], 1.0f, f & 1, t); /* taps that see no column */
      if (col2im)
        run(3, 4, 10, 11, 12, 3, flag_sets[f], 0.5f, f & 1, t);
    }
}
