/* Seeds and dictionary of tests/fuzz_image.c for the driver build (fuzz_driver.h): small JPEGs
 * written by libjpeg (baseline 4:2:0 and 4:4:4, progressive, grey, CMYK, with restart markers)
 * and PNGs written by libpng (RGB, grey + alpha, 16-bit, palette with tRNS, 1-bit, Adam7), and
 * near misses (a PNG's IEND dropped, a JPEG cut before EOI, a GIF that serve refuses). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

#include "fuzz_driver.h"

enum { W = 13, H = 9 };

static unsigned char pixel(int x, int y, int c) { return (unsigned char)(x * 19 + y * 31 + c * 70); }

static void add_jpeg(int components, J_COLOR_SPACE space, int progressive, int h_samp,
                     int restart)
{
  struct jpeg_compress_struct ci;
  struct jpeg_error_mgr jerr;
  unsigned char *out = NULL;
  unsigned long n = 0;
  ci.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&ci);
  jpeg_mem_dest(&ci, &out, &n);
  ci.image_width = W, ci.image_height = H;
  ci.input_components = components, ci.in_color_space = space;
  jpeg_set_defaults(&ci);
  jpeg_set_quality(&ci, 80, TRUE);
  if (components == 3)
    ci.comp_info[0].h_samp_factor = ci.comp_info[0].v_samp_factor = h_samp;
  if (progressive)
    jpeg_simple_progression(&ci);
  ci.restart_in_rows = restart;
  jpeg_start_compress(&ci, TRUE);
  unsigned char row[W * 4];
  while (ci.next_scanline < H) {
    for (int x = 0; x < W; x++)
      for (int c = 0; c < components; c++)
        row[x * components + c] = pixel(x, (int)ci.next_scanline, c);
    JSAMPROW r = row;
    jpeg_write_scanlines(&ci, &r, 1);
  }
  jpeg_finish_compress(&ci);
  jpeg_destroy_compress(&ci);
  fuzz_add_seed(out, n);
  if (!progressive && n > 40)
    fuzz_add_seed(out, n - 20); /* cut before EOI */
  free(out);
}

struct png_sink {
  unsigned char *p;
  size_t n;
};

static void sink_write(png_structp png, png_bytep data, size_t n)
{
  struct png_sink *s = png_get_io_ptr(png);
  unsigned char *p = realloc(s->p, s->n + n);
  if (!p)
    abort();
  memcpy(p + s->n, data, n);
  s->p = p, s->n += n;
}

static void sink_flush(png_structp png) { (void)png; }

static void add_png(int bit_depth, int colour, int interlace)
{
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(png);
  struct png_sink s = {NULL, 0};
  if (!png || !info || setjmp(png_jmpbuf(png)))
    abort();
  png_set_write_fn(png, &s, sink_write, sink_flush);
  png_set_IHDR(png, info, W, H, bit_depth, colour, interlace, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_color palette[4] = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {9, 9, 200}};
  png_byte trns[2] = {0, 128};
  if (colour == PNG_COLOR_TYPE_PALETTE) {
    png_set_PLTE(png, info, palette, 4);
    png_set_tRNS(png, info, trns, 2, NULL);
  }
  png_write_info(png, info);
  size_t rowbytes = png_get_rowbytes(png, info);
  png_bytep rows[H];
  unsigned char buf[H][W * 3 * 2];
  for (int y = 0; y < H; y++) {
    memset(buf[y], 0, sizeof buf[y]);
    for (size_t i = 0; i < rowbytes; i++)
      buf[y][i] = colour == PNG_COLOR_TYPE_PALETTE ? (unsigned char)((y + (int)i) % 4)
                  : bit_depth < 8                ? (unsigned char)(y * 37 + (int)i * 11)
                                                 : pixel((int)i, y, 0);
    rows[y] = buf[y];
  }
  png_write_image(png, rows);
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  fuzz_add_seed(s.p, s.n);
  if (s.n > 12)
    fuzz_add_seed(s.p, s.n - 12); /* no IEND */
  free(s.p);
}

static int make_seeds(void)
{
  add_jpeg(3, JCS_RGB, 0, 2, 0);
  add_jpeg(3, JCS_RGB, 0, 1, 1);
  add_jpeg(3, JCS_RGB, 1, 2, 0);
  add_jpeg(1, JCS_GRAYSCALE, 0, 1, 0);
  add_jpeg(4, JCS_CMYK, 0, 1, 0);
  add_png(8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE);
  add_png(8, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_INTERLACE_NONE);
  add_png(16, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE);
  add_png(8, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE);
  add_png(1, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE);
  add_png(8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_ADAM7);
  static const unsigned char gif[] = "GIF89a\x02\x00\x03\x00\x00\x00\x00,\x00\x00\x00\x00\x02"
                                     "\x00\x03\x00\x00\x02\x02\x04\x01\x00;";
  fuzz_add_seed(gif, sizeof gif - 1);
  return 0;
}

static const char *const tokens[] = {"\xFF\xD8\xFF", "\xFF\xC0", "\xFF\xC2", "\xFF\xC4", "\xFF\xDB",
                                     "\xFF\xDA", "\xFF\xD9", "\xFF\xDD", "\xFF\xD0", "\xFF\xEE",
                                     "Adobe", "IHDR", "IDAT", "IEND", "PLTE", "tRNS", "\x89PNG\r\n\x1a\n",
                                     "\xFF\xFF\xFF\x7F", NULL};

const struct fuzz_target fuzz_target = {"image", ".img", 4096, tokens, make_seeds};
