/* The header probe: an image's format and size from its header alone (no pixel data is decoded
 * or allocated), so that a decompression bomb -- a small file that claims a huge image -- is
 * refused before any decoder allocates, and a format the caller does not accept is refused
 * before any decoder runs. Kept apart from preprocess.c because it touches untrusted bytes and
 * is compiled into the fuzz targets. */
#include <stdint.h>
#include <string.h>

#include "serve.h"

enum beit_status beit_infer_probe(const void *data, size_t size,
                                  const struct beit_infer_options *opt, int *width, int *height,
                                  const char *key, struct beit_error *err)
{
  *width = *height = 0;
  if (!key)
    key = "(image)";
  if (!opt->any_format && size > 0 && beit_data_image_format(data, size) == BEIT_IMAGE_OTHER) {
    const char *name = beit_data_image_format_name(data, size);
    if (!strcmp(name, "unrecognised"))
      return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: not a decodable image (neither JPEG "
                            "nor PNG)", key);
    return beit_error_set(err, BEIT_STATUS_UNSUPPORTED, "%s: a %s image; accepted formats: "
                          "JPEG, PNG", key, name);
  }
  int w, h;
  enum beit_status st = beit_data_image_size(data, size, &w, &h, key, err);
  if (st)
    return st;
  size_t pixels = (size_t)w * (size_t)h, cap = BEIT_IMAGE_MAX_PIXELS;
  if (opt->max_pixels && opt->max_pixels < cap)
    cap = opt->max_pixels;
  if (pixels > cap || w > BEIT_IMAGE_MAX_SIDE || h > BEIT_IMAGE_MAX_SIDE)
    return beit_error_set(err, BEIT_STATUS_USAGE,
                          "%s: image of %dx%d = %zu pixels exceeds the %s %zu (refused before "
                          "decoding)", key, w, h, pixels,
                          cap == opt->max_pixels ? "decoded-pixel cap" : "decoder's limit", cap);
  *width = w;
  *height = h;
  return BEIT_STATUS_OK;
}
