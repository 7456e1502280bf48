/* A PNG grid of originals beside their reconstructions, for a person to look at: each cell is
 * original | reconstruction, small images are enlarged (nearest) to at least 64 pixels, and
 * the file is written atomically (temporary name, fsync, rename). */
#include <stdint.h>
#include <stdlib.h>

#include "config_table.h"
#include "dvae.h"

#define STB_IMAGE_WRITE_STATIC /* private copy: no clash with another user of stb */
#define STB_IMAGE_WRITE_IMPLEMENTATION
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wshadow"
#endif
#include <stb/stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#define GAP 2

static uint8_t to_byte(float v)
{
  v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
  return (uint8_t)(v * 255.0f + 0.5f);
}

/* Paint image (C, s, s) at (x0, y0) of the RGB canvas, enlarged by k. */
static void paint(uint8_t *canvas, size_t cw, const float *img, size_t C, size_t s, size_t k,
                  size_t x0, size_t y0)
{
  for (size_t y = 0; y < s * k; y++)
    for (size_t x = 0; x < s * k; x++) {
      uint8_t *px = canvas + ((y0 + y) * cw + x0 + x) * 3;
      const size_t i = (y / k) * s + x / k;
      for (size_t c = 0; c < 3; c++)
        px[c] = to_byte(img[(C == 3 ? c : 0) * s * s + i]);
    }
}

enum beit_status beit_dvae_write_grid_png(const char *path, const float *originals,
                                          const float *recons, size_t n, size_t C, size_t s,
                                          size_t cols, struct beit_error *err)
{
  if (n == 0 || cols == 0)
    return beit_error_set(err, BEIT_STATUS_USAGE, "%s: empty image grid", path);
  const size_t k = s >= 64 ? 1 : (64 + s - 1) / s, side = s * k;
  const size_t rows = (n + cols - 1) / cols;
  const size_t cell_w = 2 * side + GAP, cw = cols * cell_w + (cols + 1) * 3 * GAP;
  const size_t ch = rows * side + (rows + 1) * 3 * GAP;
  uint8_t *canvas = malloc(cw * ch * 3);
  if (!canvas)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "%s: cannot allocate the image", path);
  for (size_t i = 0; i < cw * ch * 3; i++)
    canvas[i] = 64; /* dark grey background */
  for (size_t i = 0; i < n; i++) {
    const size_t r = i / cols, c = i % cols;
    const size_t x0 = 3 * GAP + c * (cell_w + 3 * GAP), y0 = 3 * GAP + r * (side + 3 * GAP);
    paint(canvas, cw, originals + i * C * s * s, C, s, k, x0, y0);
    paint(canvas, cw, recons + i * C * s * s, C, s, k, x0 + side + GAP, y0);
  }
  int len = 0;
  unsigned char *png = stbi_write_png_to_mem(canvas, (int)(cw * 3), (int)cw, (int)ch, 3, &len);
  free(canvas);
  if (!png)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "%s: PNG encoding failed", path);
  enum beit_status st = beit_write_file_atomic(path, png, (size_t)len, err);
  STBIW_FREE(png);
  return st;
}
