/* Image decoding with stb_image (libstb ships the implementation; we only include the header).
 *
 * stb_image is lenient with truncated files: a JPEG cut short decodes to grey blocks and a PNG
 * cut inside its last IDAT may still inflate. A structural check runs first so that such files
 * count as corrupt: a JPEG's segments must lead to an EOI marker, a PNG's chunks to IEND. */
#include <stdlib.h>
#include <string.h>

#include <stb/stb_image.h>

#include "data_internal.h"

enum { MAX_SIDE = 1 << 15, MAX_PIXELS = 1 << 28 };

int beit_data_grow(void **buf, size_t *cap, size_t need)
{
  if (need <= *cap)
    return 0;
  size_t n = *cap ? *cap : 4096;
  while (n < need)
    n += n / 2 + 64;
  void *p = realloc(*buf, n);
  if (!p)
    return -1;
  *buf = p;
  *cap = n;
  return 0;
}

static int is_jpeg(const uint8_t *p, size_t n) { return n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF; }

static int is_png(const uint8_t *p, size_t n)
{
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  return n >= 8 && !memcmp(p, sig, 8);
}

/* Walk the marker segments from SOI; after each SOS skip the entropy-coded data (FF 00 stuffing,
 * RSTn, FF fill) to the next marker; complete once EOI is reached. Bytes after EOI (camera
 * trailers, motion-photo videos) are never looked at. */
static int jpeg_complete(const uint8_t *p, size_t n)
{
  size_t i = 2;
  for (;;) {
    while (i < n && p[i] != 0xFF) /* tolerate junk between segments, as libjpeg does */
      i++;
    while (i < n && p[i] == 0xFF)
      i++;
    if (i >= n)
      return 0;
    uint8_t m = p[i++];
    if (m == 0xD9)
      return 1;
    if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) /* TEM, RSTn: no length */
      continue;
    if (i + 2 > n)
      return 0;
    size_t len = (size_t)p[i] << 8 | p[i + 1];
    if (len < 2 || len > n - i)
      return 0;
    i += len;
    if (m != 0xDA)
      continue;
    for (;;) { /* entropy-coded segment */
      const uint8_t *q = memchr(p + i, 0xFF, n - i);
      if (!q || (size_t)(q - p) + 1 >= n)
        return 0;
      i = (size_t)(q - p);
      uint8_t c = p[i + 1];
      if (c == 0xFF)
        i += 1;
      else if (c == 0x00 || (c >= 0xD0 && c <= 0xD7))
        i += 2;
      else
        break; /* a marker: handled by the outer loop */
    }
  }
}

/* Walk the chunk list: lengths must stay inside the file and IEND must be reached. */
static int png_complete(const uint8_t *p, size_t n)
{
  size_t i = 8;
  while (i + 12 <= n) {
    uint32_t len = (uint32_t)p[i] << 24 | (uint32_t)p[i + 1] << 16 | (uint32_t)p[i + 2] << 8 | p[i + 3];
    if (!memcmp(p + i + 4, "IEND", 4))
      return 1;
    if ((size_t)len > n - i - 12)
      return 0;
    i += 12 + (size_t)len;
  }
  return 0;
}

void beit_data_image_free(struct beit_data_image *img)
{
  if (img->pixels)
    stbi_image_free(img->pixels);
  img->pixels = NULL;
  img->width = img->height = 0;
}

enum beit_status beit_data_decode(struct beit_data_image *img, const void *data, size_t size,
                                  const char *key, struct beit_error *err)
{
  const uint8_t *p = data;
  img->pixels = NULL;
  img->width = img->height = 0;
  if (!key)
    key = "(image)";
  if (size == 0)
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: empty file", key);
  if (size > (size_t)INT32_MAX)
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: file of %zu bytes is too large", key, size);
  if (is_jpeg(p, size) && !jpeg_complete(p, size))
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: truncated JPEG (no end-of-image marker)", key);
  if (is_png(p, size) && !png_complete(p, size))
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: truncated PNG (no IEND chunk)", key);
  int w, h, c;
  if (!stbi_info_from_memory(p, (int)size, &w, &h, &c))
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: not a decodable image (%s)", key,
                          stbi_failure_reason() ? stbi_failure_reason() : "unknown format");
  if (w <= 0 || h <= 0 || w > MAX_SIDE || h > MAX_SIDE || (size_t)w * (size_t)h > MAX_PIXELS)
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: image of %dx%d is out of range", key, w, h);
  uint8_t *pix = stbi_load_from_memory(p, (int)size, &w, &h, &c, 3);
  if (!pix)
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: decode failed (%s)", key,
                          stbi_failure_reason() ? stbi_failure_reason() : "unknown");
  img->pixels = pix;
  img->width = w;
  img->height = h;
  return BEIT_STATUS_OK;
}
