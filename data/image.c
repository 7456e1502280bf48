/* Image decoding: JPEG through libjpeg-turbo (image_jpeg.c), PNG through libpng (image_png.c)
 * -- the decoders PIL uses and OSS-Fuzz hardens, and the only two formats `beit serve` accepts
 * from the network -- and every other format stb_image reads (GIF, BMP, TGA, PSD, HDR, PNM,
 * PIC) through stb_image, for local files the user chose (libstb ships the implementation; we
 * only include the header).
 *
 * Decoders are lenient with truncated files: a JPEG cut short decodes to grey blocks and a PNG
 * cut inside its last IDAT may still inflate. A structural check runs first so that such files
 * count as corrupt: a JPEG's segments must lead to an EOI marker, a PNG's chunks to IEND, a
 * GIF's blocks through its first image, an uncompressed BMP's pixel array into the file. */
#include <stdlib.h>
#include <string.h>

#include <stb/stb_image.h>

#include "data_internal.h"

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

static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

/* Uncompressed BMP: the pixel array (offset + rows padded to 4 bytes) must fit in the file. */
static int bmp_complete(const uint8_t *p, size_t n)
{
  if (n < 54 || le32(p + 14) < 40)
    return n >= 26; /* OS/2 headers: left to stb */
  uint32_t off = le32(p + 10), comp = le32(p + 30);
  int32_t w = (int32_t)le32(p + 18), h = (int32_t)le32(p + 22);
  unsigned bpp = (unsigned)p[28] | (unsigned)p[29] << 8;
  if (comp != 0 && comp != 3) /* RLE: left to stb */
    return 1;
  uint64_t stride = (((uint64_t)(w < 0 ? -(int64_t)w : w) * bpp + 31) / 32) * 4;
  uint64_t rows = (uint64_t)(h < 0 ? -(int64_t)h : h);
  return (uint64_t)off + stride * rows <= n;
}

/* GIF: the blocks up to and including the first image's data must be in the file (only the
 * first frame is decoded). */
static int gif_complete(const uint8_t *p, size_t n)
{
  size_t i = 13;
  if (n < 13)
    return 0;
  if (p[10] & 0x80)
    i += 3u << ((p[10] & 7) + 1);
  while (i < n) {
    uint8_t block = p[i++];
    int image = block == 0x2C;
    if (image) {
      if (i + 9 > n)
        return 0;
      uint8_t flags = p[i + 8];
      i += 9 + ((flags & 0x80) ? 3u << ((flags & 7) + 1) : 0) + 1; /* + LZW code size */
    } else if (block == 0x21) {
      i += 1; /* label */
    } else {
      return 0; /* trailer or junk before any image */
    }
    for (;;) { /* data sub-blocks up to the 0 terminator */
      if (i >= n)
        return 0;
      uint8_t len = p[i++];
      if (len == 0)
        break;
      i += len;
    }
    if (image)
      return i <= n;
  }
  return 0;
}

int beit_image_size_ok(size_t width, size_t height)
{
  return width > 0 && height > 0 && width <= BEIT_IMAGE_MAX_SIDE &&
         height <= BEIT_IMAGE_MAX_SIDE && width * height <= BEIT_IMAGE_MAX_PIXELS;
}

enum beit_image_format beit_data_image_format(const void *data, size_t size)
{
  return is_jpeg(data, size) ? BEIT_IMAGE_JPEG : is_png(data, size) ? BEIT_IMAGE_PNG
                                                                     : BEIT_IMAGE_OTHER;
}

const char *beit_data_image_format_name(const void *data, size_t size)
{
  const uint8_t *p = data;
  static const struct {
    const char *magic;
    size_t len;
    const char *name;
  } known[] = {{"GIF8", 4, "GIF"},         {"BM", 2, "BMP"},        {"8BPS", 4, "PSD"},
               {"#?RADIANCE", 10, "HDR"},   {"#?RGBE", 6, "HDR"},    {"\x53\x80\xF6\x34", 4, "PIC"},
               {"RIFF", 4, "RIFF/WebP"},    {"II*\0", 4, "TIFF"},    {"MM\0*", 4, "TIFF"}};
  switch (beit_data_image_format(data, size)) {
  case BEIT_IMAGE_JPEG: return "JPEG";
  case BEIT_IMAGE_PNG: return "PNG";
  default: break;
  }
  for (size_t i = 0; i < sizeof known / sizeof *known; i++)
    if (size >= known[i].len && !memcmp(p, known[i].magic, known[i].len))
      return known[i].name;
  if (size >= 2 && p[0] == 'P' && p[1] >= '1' && p[1] <= '6')
    return "PNM";
  return "unrecognised";
}

enum beit_status beit_data_image_size(const void *data, size_t size, int *width, int *height,
                                      const char *key, struct beit_error *err)
{
  const uint8_t *p = data;
  *width = *height = 0;
  if (size == 0)
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: empty file", key);
  if (size > (size_t)INT32_MAX)
    return beit_error_set(err, BEIT_STATUS_USAGE, "%s: file of %zu bytes is too large", key, size);
  switch (beit_data_image_format(data, size)) {
  case BEIT_IMAGE_JPEG:
    return beit_jpeg_size(p, size, width, height, key, err);
  case BEIT_IMAGE_PNG: { /* IHDR is the first chunk by the standard */
    if (size < 24 || memcmp(p + 12, "IHDR", 4))
      return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: PNG without an IHDR chunk", key);
    uint32_t x = (uint32_t)p[16] << 24 | (uint32_t)p[17] << 16 | (uint32_t)p[18] << 8 | p[19];
    uint32_t y = (uint32_t)p[20] << 24 | (uint32_t)p[21] << 16 | (uint32_t)p[22] << 8 | p[23];
    if (x == 0 || y == 0 || x > INT32_MAX || y > INT32_MAX)
      return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: PNG of %ux%u pixels", key, x, y);
    *width = (int)x;
    *height = (int)y;
    return BEIT_STATUS_OK;
  }
  default: {
    int c;
    if (!stbi_info_from_memory(p, (int)size, width, height, &c) || *width <= 0 || *height <= 0)
      return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: not a decodable image (%s)", key,
                            stbi_failure_reason() ? stbi_failure_reason() : "unknown format");
    return BEIT_STATUS_OK;
  }
  }
}

void beit_data_image_free(struct beit_data_image *img)
{
  free(img->pixels); /* stb_image's pixels too: libstb is built with the C library's malloc */
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
  if (size >= 6 && !memcmp(p, "GIF8", 4) && !gif_complete(p, size))
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: truncated GIF (first frame incomplete)", key);
  if (size >= 2 && p[0] == 'B' && p[1] == 'M' && !bmp_complete(p, size))
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: truncated BMP (pixel array cut short)", key);
  if (is_jpeg(p, size))
    return beit_jpeg_decode(img, p, size, key, err);
  if (is_png(p, size))
    return beit_png_decode(img, p, size, key, err);
  int w, h, c;
  if (!stbi_info_from_memory(p, (int)size, &w, &h, &c))
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: not a decodable image (%s)", key,
                          stbi_failure_reason() ? stbi_failure_reason() : "unknown format");
  if (!beit_image_size_ok((size_t)(w > 0 ? w : 0), (size_t)(h > 0 ? h : 0)))
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
