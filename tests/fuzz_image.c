/* Fuzz target of the image path of `beit serve` (and of every image the loaders decode): the
 * header probe (format, pixel cap) as serve runs it, the decode (data/image.c: libjpeg-turbo,
 * libpng, the structural checks in front of them) and the model preprocessing (resize, crop,
 * normalisation) to a 24x24 view, whose every value must be finite. Seeds and dictionary:
 * fuzz_image_seeds.c. Built by tests/fuzz.cmake (beit_add_fuzz_target). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "beit/infer.h"
#include "fuzz_driver.h"

enum { SIDE = 24 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static struct beit_data_scratch *ws;
  static struct beit_data_preprocess pp;
  if (!ws) {
    ws = beit_data_scratch_init();
    beit_data_preprocess_default(&pp, SIDE);
    if (!ws)
      abort();
  }
  /* JPEG and PNG only, as serve; a cap of 2^16 pixels keeps each run fast (the cap itself is
   * the same code at any value) */
  struct beit_infer_options limits = {.max_pixels = 1 << 16};
  struct beit_error err = {0};
  int w, h;
  if (beit_infer_probe(data, size, &limits, &w, &h, "fuzz", &err) != BEIT_STATUS_OK)
    return 0;
  struct beit_data_image img;
  if (beit_data_decode(&img, data, size, "fuzz", &err) == BEIT_STATUS_OK) {
    if (img.width != w || img.height != h) { /* the header and the decoder must agree */
      fprintf(stderr, "fuzz_image: header %dx%d, decoded %dx%d\n", w, h, img.width, img.height);
      abort();
    }
    float view[3 * SIDE * SIDE];
    if (beit_data_preprocess_apply(&pp, SIDE, &img, view, ws, &err) == BEIT_STATUS_OK)
      for (size_t i = 0; i < sizeof view / sizeof *view; i++)
        if (!isfinite(view[i]))
          abort();
  }
  beit_data_image_free(&img);
  return 0;
}
