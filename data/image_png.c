/* PNG decoding with libpng, the reference decoder (fuzzed by OSS-Fuzz), to 8-bit RGB the way
 * PIL's convert("RGB") does: palette entries looked up, grey replicated, alpha and tRNS dropped
 * (not composited), 16-bit samples cut to their high byte, no gamma correction, interlaced
 * images de-interlaced. Errors leave through longjmp from libpng's error callback; the message
 * is libpng's own, behind the file's key. Limits: sides and pixels (from IHDR, before the pixel
 * buffer is allocated) and libpng's own caps on ancillary chunks. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "data_internal.h"

struct png_source {
  const uint8_t *p;
  size_t n, at;
  char message[256];
};

static void fail(png_structp png, png_const_charp msg)
{
  struct png_source *src = png_get_error_ptr(png);
  snprintf(src->message, sizeof src->message, "%s", msg);
  png_longjmp(png, 1);
}

static void quiet(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

static void read_bytes(png_structp png, png_bytep out, size_t n)
{
  struct png_source *src = png_get_io_ptr(png);
  if (n > src->n - src->at)
    png_error(png, "file ends inside a chunk");
  memcpy(out, src->p + src->at, n);
  src->at += n;
}

enum beit_status beit_png_decode(struct beit_data_image *img, const uint8_t *p, size_t n,
                                 const char *key, struct beit_error *err)
{
  struct png_source src = {p, n, 0, ""};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, fail, quiet);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  uint8_t *volatile pixels = NULL;
  png_bytep *volatile rows = NULL;
  enum beit_status st = BEIT_STATUS_OK;
  if (!info) {
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "%s: no memory for a PNG decoder", key);
    goto done;
  }
  if (setjmp(png_jmpbuf(png))) {
    st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: PNG: %s", key, src.message);
    goto done;
  }
  png_set_read_fn(png, &src, read_bytes);
  png_set_user_limits(png, BEIT_IMAGE_MAX_SIDE, BEIT_IMAGE_MAX_SIDE);
  png_read_info(png, info);
  size_t w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  if (!beit_image_size_ok(w, h)) {
    st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: image of %zux%zu is out of range", key, w, h);
    goto done;
  }
  png_set_strip_16(png);
  png_set_expand(png); /* palette -> RGB, grey 1/2/4 -> 8 bits (tRNS -> alpha, stripped next) */
  png_set_strip_alpha(png);
  png_set_gray_to_rgb(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  if (png_get_channels(png, info) != 3 || png_get_bit_depth(png, info) != 8 ||
      png_get_rowbytes(png, info) != w * 3) {
    st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: PNG: unexpected output layout", key);
    goto done;
  }
  if (!(pixels = malloc(w * h * 3)) || !(rows = malloc(h * sizeof *rows))) {
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "%s: no memory for %zux%zu pixels", key, w, h);
    goto done;
  }
  for (size_t y = 0; y < h; y++)
    rows[y] = pixels + y * w * 3;
  png_read_image(png, rows);
  png_read_end(png, NULL);
  img->pixels = pixels;
  img->width = (int)w;
  img->height = (int)h;
  pixels = NULL;
done:
  png_destroy_read_struct(png ? &png : NULL, info ? &info : NULL, NULL);
  free(pixels);
  free(rows);
  return st;
}
