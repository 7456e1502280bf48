/* The header probe: an image's size from its header alone (stbi_info_from_memory reads no
 * pixel data), so that a decompression bomb -- a small file that claims a huge image -- is
 * refused before stb_image allocates anything. Kept apart from preprocess.c because it touches
 * untrusted bytes and is compiled into the fuzz targets. */
#include <stdint.h>
#include <string.h>

#include <stb/stb_image.h>

#include "serve.h"

/* Width and height of a PNG's IHDR chunk (the first chunk by the standard). */
static int png_ihdr(const uint8_t *p, size_t n, int *w, int *h)
{
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (n < 24 || memcmp(p, sig, 8) || memcmp(p + 12, "IHDR", 4))
    return 0;
  uint32_t x = (uint32_t)p[16] << 24 | (uint32_t)p[17] << 16 | (uint32_t)p[18] << 8 | p[19];
  uint32_t y = (uint32_t)p[20] << 24 | (uint32_t)p[21] << 16 | (uint32_t)p[22] << 8 | p[23];
  if (x == 0 || y == 0 || x > INT32_MAX || y > INT32_MAX)
    return 0;
  *w = (int)x;
  *h = (int)y;
  return 1;
}

enum beit_status beit_infer_probe(const void *data, size_t size, size_t max_pixels, int *width,
                                  int *height, const char *key, struct beit_error *err)
{
  int w = 0, h = 0, c = 0;
  *width = *height = 0;
  if (!key)
    key = "(image)";
  if (size == 0)
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: empty file", key);
  if (size > (size_t)INT32_MAX)
    return beit_error_set(err, BEIT_STATUS_USAGE, "%s: file of %zu bytes is too large", key, size);
  if (!stbi_info_from_memory(data, (int)size, &w, &h, &c) || w <= 0 || h <= 0) {
    /* stb_image refuses PNGs over 1 GB decoded at the header, but then tries the other
     * formats and reports theirs: read the IHDR ourselves so that this is a 413 too. */
    const uint8_t *p = data;
    if (png_ihdr(p, size, &w, &h) && (size_t)w * (size_t)h > (max_pixels ? max_pixels : 1u << 28))
      return beit_error_set(err, BEIT_STATUS_USAGE,
                            "%s: image of %dx%d exceeds the decoder's limits (refused before "
                            "decoding)", key, w, h);
    const char *why = stbi_failure_reason();
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: not a decodable image (%s)", key,
                          why ? why : "unknown format");
  }
  if (max_pixels && (size_t)w * (size_t)h > max_pixels)
    return beit_error_set(err, BEIT_STATUS_USAGE,
                          "%s: image of %dx%d = %zu pixels exceeds the decoded-pixel cap %zu "
                          "(refused before decoding)", key, w, h, (size_t)w * (size_t)h,
                          max_pixels);
  *width = w;
  *height = h;
  return BEIT_STATUS_OK;
}
