/* Preprocessing of inference inputs: the model's own preprocessing (its
 * preprocessor_config.json, or the no-file default; data/preprocess.c defines, reads and applies
 * both, so beit eval computes the same pixels) on one decoded image, after the header probe. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

enum beit_status beit_infer_prepare_image(const struct beit_infer *inf,
                                          const struct beit_data_image *img, float *view,
                                          struct beit_data_scratch *ws, struct beit_error *err)
{
  return beit_data_preprocess_apply(beit_infer_preprocessing(inf), beit_infer_image_size(inf),
                                    img, view, ws, err);
}

enum beit_status beit_infer_prepare(const struct beit_infer *inf, const void *data, size_t size,
                                    const char *key, float *view, struct beit_data_image *keep,
                                    struct beit_data_scratch *ws, struct beit_error *err)
{
  int w, h;
  struct beit_data_image img = {0};
  enum beit_status st = beit_infer_probe(data, size, beit_infer_get_options(inf), &w, &h, key,
                                         err);
  if (st)
    return st;
  if ((st = beit_data_decode(&img, data, size, key, err)))
    return st;
  st = beit_infer_prepare_image(inf, &img, view, ws, err);
  if (st)
    beit_error_prefix(err, "%s: ", key ? key : "(image)");
  if (keep && !st)
    *keep = img;
  else
    beit_data_image_free(&img);
  return st;
}
