/* JPEG decoding with libjpeg-turbo: the decoder PIL uses (with its defaults: accurate integer
 * IDCT, fancy chroma upsampling), so the pixels are PIL's bit for bit, and the one fuzzed by
 * OSS-Fuzz. Errors leave through longjmp from the library's error_exit; the message is
 * libjpeg's own, behind the file's key. Limits: the image's sides and pixels (checked from the
 * header, before anything large is allocated), the library's memory, and the work of a
 * progressive file: every scan is a pass over all of the image's coefficients, so a few
 * hundred bytes of scans can ask for hundreds of passes over 36 M pixels (measured: 400 extra
 * scans on 6000x6000, a 235 KB file, took 9.8 s). Scans are allowed while scans x pixels stays
 * within 2^30 (about 0.7 s of decoding here), and always 16 (real encoders write 10 or so). */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>

#include <jpeglib.h>

#include "data_internal.h"

enum { MIN_SCANS = 16, MAX_SCANS = 500 };
#define SCAN_WORK ((double)(1u << 30)) /* scans x pixels */

struct jpeg_guard {
  struct jpeg_error_mgr pub;
  struct jpeg_progress_mgr progress;
  jmp_buf escape;
  char message[JMSG_LENGTH_MAX];
};

static void fail(j_common_ptr cinfo)
{
  struct jpeg_guard *g = (struct jpeg_guard *)cinfo->err;
  cinfo->err->format_message(cinfo, g->message);
  longjmp(g->escape, 1);
}

static void quiet(j_common_ptr cinfo, int level) { (void)cinfo, (void)level; }

/* How many scans an image of w x h pixels may have. */
static int scan_limit(double w, double h)
{
  double n = SCAN_WORK / (w * h > 1 ? w * h : 1);
  return n < MIN_SCANS ? MIN_SCANS : n > MAX_SCANS ? MAX_SCANS : (int)n;
}

static void limit_scans(j_common_ptr cinfo)
{
  j_decompress_ptr d = (j_decompress_ptr)cinfo;
  int limit = scan_limit(d->image_width, d->image_height);
  if (d->input_scan_number > limit) {
    struct jpeg_guard *g = (struct jpeg_guard *)cinfo->err;
    snprintf(g->message, sizeof g->message, "more than %d progressive scans for %ux%u pixels "
             "(refused: each scan is a pass over the whole image)", limit, d->image_width,
             d->image_height);
    longjmp(g->escape, 1);
  }
}

/* Pillow's CMYK -> RGB of Adobe (inverted) CMYK: with c = 255 - stored and nk = stored k,
 * out = nk - c * nk / 255 with Pillow's rounding. */
static uint8_t cmyk_channel(int stored, int stored_k)
{
  int c = 255 - stored, nk = stored_k, t = c * nk + 128;
  int v = nk - (((t >> 8) + t) >> 8);
  return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* One decoder state per call; everything a longjmp can skip is in here or volatile. */
struct jpeg_job {
  struct jpeg_decompress_struct cinfo;
  struct jpeg_guard guard;
  uint8_t *volatile pixels;
  uint8_t *volatile row;
};

static void job_start(struct jpeg_job *j, const uint8_t *p, size_t n)
{
  j->cinfo.err = jpeg_std_error(&j->guard.pub);
  j->guard.pub.error_exit = fail;
  j->guard.pub.emit_message = quiet;
  jpeg_create_decompress(&j->cinfo);
  j->guard.progress.progress_monitor = limit_scans;
  j->cinfo.progress = &j->guard.progress;
  /* the largest allowed progressive image keeps ~1.5 GiB of coefficients */
  j->cinfo.mem->max_memory_to_use = 3L << 30;
  jpeg_mem_src(&j->cinfo, p, (unsigned long)n);
}

enum beit_status beit_jpeg_size(const uint8_t *p, size_t n, int *width, int *height,
                                const char *key, struct beit_error *err)
{
  struct jpeg_job j = {0};
  volatile enum beit_status st = BEIT_STATUS_OK;
  if (setjmp(j.guard.escape)) {
    st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: JPEG header: %s", key, j.guard.message);
  } else {
    job_start(&j, p, n);
    jpeg_read_header(&j.cinfo, TRUE);
    *width = (int)j.cinfo.image_width;
    *height = (int)j.cinfo.image_height;
  }
  jpeg_destroy_decompress(&j.cinfo);
  return st;
}

enum beit_status beit_jpeg_decode(struct beit_data_image *img, const uint8_t *p, size_t n,
                                  const char *key, struct beit_error *err)
{
  struct jpeg_job j = {0};
  volatile enum beit_status st = BEIT_STATUS_OK;
  if (setjmp(j.guard.escape)) {
    st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: JPEG: %s", key, j.guard.message);
    goto done;
  }
  job_start(&j, p, n);
  jpeg_read_header(&j.cinfo, TRUE);
  size_t w = j.cinfo.image_width, h = j.cinfo.image_height;
  if (!beit_image_size_ok(w, h)) {
    st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: image of %zux%zu is out of range", key, w, h);
    goto done;
  }
  int cmyk = j.cinfo.jpeg_color_space == JCS_CMYK || j.cinfo.jpeg_color_space == JCS_YCCK;
  j.cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
  jpeg_start_decompress(&j.cinfo);
  if (j.cinfo.output_width != w || j.cinfo.output_height != h ||
      j.cinfo.output_components != (cmyk ? 4 : 3)) {
    st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: JPEG: unexpected output layout", key);
    goto done;
  }
  if (!(j.pixels = malloc(w * h * 3)) || (cmyk && !(j.row = malloc(w * 4)))) {
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "%s: no memory for %zux%zu pixels", key, w, h);
    goto done;
  }
  while (j.cinfo.output_scanline < h) {
    uint8_t *out = j.pixels + (size_t)j.cinfo.output_scanline * w * 3;
    JSAMPROW rows[1] = {cmyk ? j.row : out};
    jpeg_read_scanlines(&j.cinfo, rows, 1);
    for (size_t x = 0; cmyk && x < w; x++)
      for (int c = 0; c < 3; c++)
        out[3 * x + c] = cmyk_channel(j.row[4 * x + c], j.row[4 * x + 3]);
  }
  jpeg_finish_decompress(&j.cinfo);
  img->pixels = j.pixels;
  img->width = (int)w;
  img->height = (int)h;
  j.pixels = NULL;
done:
  jpeg_destroy_decompress(&j.cinfo);
  free(j.pixels);
  free(j.row);
  return st;
}
