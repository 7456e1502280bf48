/* A model's inference preprocessing (HF format), the one definition eval, predict, serve,
 * fine-tuning checkpoints and export share: HF image-processor semantics (preprocessor_config.json,
 * BeitImageProcessor keys) read, written, described and applied into the (3, S, S) planes the
 * encoder takes.
 *
 * Order and arithmetic follow BeitImageProcessor: resize on the 8-bit image (PIL, here
 * beit_data_resize, bit-exact), centre crop with offsets (size - crop) // 2 and zero padding
 * when the image is smaller, then (x * rescale_factor - mean) / std per channel. torchvision's
 * CenterCrop (unilm's eval) rounds the offset half to even instead: the two differ by one pixel
 * when size - crop is 3 mod 4, and this file's rule is the one every command uses. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "config_table.h"
#include "data_internal.h"

#define FILE_NAME "preprocessor_config.json"

/* ---- Configuration ------------------------------------------------------------------------ */

void beit_data_preprocess_default(struct beit_data_preprocess *pp, int image_size)
{
  memset(pp, 0, sizeof *pp);
  pp->resize = BEIT_DATA_RESIZE_EXACT;
  pp->resize_height = pp->resize_width = image_size;
  pp->filter = BEIT_DATA_FILTER_BICUBIC;
  pp->center_crop = 0;
  pp->crop_height = pp->crop_width = image_size;
  pp->rescale_factor = 1.0 / 255.0;
  for (int c = 0; c < 3; c++) {
    pp->mean[c] = 0.5f;
    pp->std[c] = 0.5f;
  }
  snprintf(pp->source, sizeof pp->source, "default");
}

void beit_data_preprocess_set_eval_resize(struct beit_data_preprocess *pp, int image_size,
                                          enum beit_data_eval_resize resize, double crop_pct)
{
  pp->crop_height = pp->crop_width = image_size;
  if (resize == BEIT_DATA_EVAL_DIRECT) {
    pp->resize = BEIT_DATA_RESIZE_EXACT;
    pp->resize_height = pp->resize_width = image_size;
    pp->center_crop = 0;
  } else {
    /* timm/unilm: Resize(int(S / crop_pct)) on the shorter side, then CenterCrop(S) */
    pp->resize = BEIT_DATA_RESIZE_SHORTEST;
    pp->shortest_edge = (int)(image_size / crop_pct);
    pp->center_crop = 1;
  }
}

void beit_data_preprocess_from_transform(struct beit_data_preprocess *pp,
                                         const struct beit_data_transform *t)
{
  beit_data_preprocess_default(pp, t->image_size);
  pp->filter = t->filter;
  beit_data_preprocess_set_eval_resize(pp, t->image_size, t->eval_resize, t->crop_pct);
  memcpy(pp->mean, t->mean, sizeof pp->mean);
  memcpy(pp->std, t->std, sizeof pp->std);
  snprintf(pp->source, sizeof pp->source, "recipe");
}

/* HF BeitImageProcessor's own defaults, for keys a preprocessor_config.json leaves out. */
static void hf_class_defaults(struct beit_data_preprocess *pp)
{
  beit_data_preprocess_default(pp, 256);
  pp->center_crop = 1;
  pp->crop_height = pp->crop_width = 224;
  snprintf(pp->source, sizeof pp->source, FILE_NAME);
}

static const char *const ignored_keys[] = {
    "feature_extractor_type", "image_processor_type", "processor_class", "reduce_labels",
    "do_reduce_labels", "do_convert_rgb", "do_pad", "_processor_class", "_valid_processor_keys",
    NULL};

#define BAD(...) return beit_error_set(err, BEIT_STATUS_CONFIG, __VA_ARGS__)

static int positive_int(const cJSON *v, int *out)
{
  if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 65536 ||
      v->valuedouble != floor(v->valuedouble))
    return -1;
  *out = (int)v->valuedouble;
  return 0;
}

/* An int s (square) or {"height": h, "width": w}. */
static enum beit_status read_hw(const cJSON *v, int *h, int *w, const char *key, const char *path,
                                struct beit_error *err)
{
  if (cJSON_IsNumber(v)) {
    if (positive_int(v, h))
      BAD("%s: key '%s': expected a positive integer", path, key);
    *w = *h;
    return BEIT_STATUS_OK;
  }
  const cJSON *hh = cJSON_GetObjectItemCaseSensitive(v, "height");
  const cJSON *ww = cJSON_GetObjectItemCaseSensitive(v, "width");
  if (!cJSON_IsObject(v) || cJSON_GetArraySize(v) != 2 || positive_int(hh, h) || positive_int(ww, w))
    BAD("%s: key '%s': expected an integer or {\"height\": h, \"width\": w}", path, key);
  return BEIT_STATUS_OK;
}

static enum beit_status read_vec3(const cJSON *v, float out[3], const char *key, const char *path,
                                  struct beit_error *err)
{
  if (cJSON_IsNumber(v)) {
    out[0] = out[1] = out[2] = (float)v->valuedouble;
    return BEIT_STATUS_OK;
  }
  if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 3)
    BAD("%s: key '%s': expected 3 numbers", path, key);
  for (int c = 0; c < 3; c++) {
    const cJSON *x = cJSON_GetArrayItem(v, c);
    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble))
      BAD("%s: key '%s': expected 3 numbers", path, key);
    out[c] = (float)x->valuedouble;
  }
  return BEIT_STATUS_OK;
}

static enum beit_status read_bool(const cJSON *v, int *out, const char *key, const char *path,
                                  struct beit_error *err)
{
  if (!cJSON_IsBool(v))
    BAD("%s: key '%s': expected true or false", path, key);
  *out = cJSON_IsTrue(v);
  return BEIT_STATUS_OK;
}

enum beit_status beit_data_preprocess_check(const struct beit_data_preprocess *pp, int S,
                                            const char *what, struct beit_error *err)
{
  if (pp->center_crop) {
    if (pp->crop_height != S || pp->crop_width != S)
      BAD("%s: key 'crop_size': %dx%d, but the model takes %dx%d images", what, pp->crop_height,
          pp->crop_width, S, S);
  } else if (pp->resize == BEIT_DATA_RESIZE_EXACT) {
    if (pp->resize_height != S || pp->resize_width != S)
      BAD("%s: key 'size': %dx%d without a centre crop, but the model takes %dx%d images", what,
          pp->resize_height, pp->resize_width, S, S);
  } else if (pp->resize == BEIT_DATA_RESIZE_SHORTEST) {
    BAD("%s: key 'size': shortest_edge without do_center_crop gives non-square images", what);
  }
  if ((unsigned)pp->filter > BEIT_DATA_FILTER_LANCZOS)
    BAD("%s: key 'resample': unknown filter", what);
  for (int c = 0; c < 3; c++)
    if (!(pp->std[c] != 0.0f))
      BAD("%s: key 'image_std': zero standard deviation", what);
  return BEIT_STATUS_OK;
}

static enum beit_status read_key(struct beit_data_preprocess *p, const cJSON *v, int *do_resize,
                                 int *do_rescale, int *do_normalize, const char *path,
                                 struct beit_error *err)
{
  const char *k = v->string;
  if (!strcmp(k, "do_resize"))
    return read_bool(v, do_resize, k, path, err);
  if (!strcmp(k, "size")) {
    const cJSON *se = cJSON_GetObjectItemCaseSensitive(v, "shortest_edge");
    if (se) {
      p->resize = BEIT_DATA_RESIZE_SHORTEST;
      if (cJSON_GetArraySize(v) != 1 || positive_int(se, &p->shortest_edge))
        BAD("%s: key 'size': only {\"shortest_edge\": s} (no longest_edge)", path);
      return BEIT_STATUS_OK;
    }
    p->resize = BEIT_DATA_RESIZE_EXACT;
    return read_hw(v, &p->resize_height, &p->resize_width, k, path, err);
  }
  if (!strcmp(k, "resample")) {
    int r = -1;
    if (cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble))
      r = (int)v->valuedouble;
    if (r == 1)
      p->filter = BEIT_DATA_FILTER_LANCZOS;
    else if (r == 2)
      p->filter = BEIT_DATA_FILTER_BILINEAR;
    else if (r == 3)
      p->filter = BEIT_DATA_FILTER_BICUBIC;
    else
      BAD("%s: key 'resample': supported are 1 (lanczos), 2 (bilinear) and 3 (bicubic)", path);
    return BEIT_STATUS_OK;
  }
  if (!strcmp(k, "do_center_crop"))
    return read_bool(v, &p->center_crop, k, path, err);
  if (!strcmp(k, "crop_size"))
    return read_hw(v, &p->crop_height, &p->crop_width, k, path, err);
  if (!strcmp(k, "do_rescale"))
    return read_bool(v, do_rescale, k, path, err);
  if (!strcmp(k, "rescale_factor")) {
    if (!cJSON_IsNumber(v) || !(v->valuedouble > 0) || !isfinite(v->valuedouble))
      BAD("%s: key 'rescale_factor': expected a positive number", path);
    p->rescale_factor = v->valuedouble;
    return BEIT_STATUS_OK;
  }
  if (!strcmp(k, "do_normalize"))
    return read_bool(v, do_normalize, k, path, err);
  if (!strcmp(k, "image_mean"))
    return read_vec3(v, p->mean, k, path, err);
  if (!strcmp(k, "image_std"))
    return read_vec3(v, p->std, k, path, err);
  for (const char *const *ig = ignored_keys; *ig; ig++)
    if (!strcmp(k, *ig))
      return BEIT_STATUS_OK;
  BAD("%s: unknown key '%s'", path, k);
}

enum beit_status beit_data_preprocess_load(struct beit_data_preprocess *pp, const char *path,
                                           int image_size, struct beit_error *err)
{
  cJSON *root = NULL;
  enum beit_status st = beit_json_read_file(&root, path, err);
  if (st)
    return st;
  struct beit_data_preprocess p;
  hf_class_defaults(&p);
  int do_resize = 1, do_rescale = 1, do_normalize = 1;
  if (!cJSON_IsObject(root)) {
    st = beit_error_set(err, BEIT_STATUS_CONFIG, "%s: expected a JSON object", path);
    goto done;
  }
  for (const cJSON *v = root->child; v && !st; v = v->next)
    st = read_key(&p, v, &do_resize, &do_rescale, &do_normalize, path, err);
  if (st)
    goto done;
  if (!do_resize)
    p.resize = BEIT_DATA_RESIZE_NONE;
  if (!do_rescale)
    p.rescale_factor = 1.0;
  if (!do_normalize)
    for (int c = 0; c < 3; c++) {
      p.mean[c] = 0.0f;
      p.std[c] = 1.0f;
    }
  if (!(st = beit_data_preprocess_check(&p, image_size, path, err)))
    *pp = p;
done:
  cJSON_Delete(root);
  return st;
}

/* 1 when path names an existing file (0 also for errors other than "not there": the reader
 * then names them). */
static int exists(const char *path)
{
  struct stat sb;
  return stat(path, &sb) == 0 || errno != ENOENT;
}

enum beit_status beit_data_preprocess_model(struct beit_data_preprocess *pp, const char *dir,
                                            int image_size, struct beit_error *err)
{
  char path[4200];
  snprintf(path, sizeof path, "%s/" FILE_NAME, dir);
  if (exists(path))
    return beit_data_preprocess_load(pp, path, image_size, err);
  beit_data_preprocess_default(pp, image_size);
  return BEIT_STATUS_OK;
}

static int filter_to_pil(enum beit_data_filter f)
{
  return f == BEIT_DATA_FILTER_BILINEAR ? 2 : f == BEIT_DATA_FILTER_LANCZOS ? 1 : 3;
}

static const char *filter_name(enum beit_data_filter f)
{
  return f == BEIT_DATA_FILTER_BILINEAR ? "bilinear" : f == BEIT_DATA_FILTER_LANCZOS ? "lanczos"
                                                                                      : "bicubic";
}

static cJSON *hw_json(int h, int w)
{
  cJSON *o = cJSON_CreateObject();
  if (o) {
    cJSON_AddNumberToObject(o, "height", h);
    cJSON_AddNumberToObject(o, "width", w);
  }
  return o;
}

/* The shortest decimal that reads back as f: 0.485f is written 0.485, not
 * 0.48500001430511475 (its exact double value). */
static double short_decimal(float f)
{
  char buf[32];
  for (int digits = 6; digits < 9; digits++) {
    snprintf(buf, sizeof buf, "%.*g", digits, (double)f);
    if ((float)strtod(buf, NULL) == f)
      return strtod(buf, NULL);
  }
  return (double)f;
}

cJSON *beit_data_preprocess_json(const struct beit_data_preprocess *pp)
{
  cJSON *o = cJSON_CreateObject();
  if (!o)
    return NULL;
  double mean[3], std[3];
  for (int c = 0; c < 3; c++) {
    mean[c] = short_decimal(pp->mean[c]);
    std[c] = short_decimal(pp->std[c]);
  }
  cJSON_AddStringToObject(o, "image_processor_type", "BeitImageProcessor");
  cJSON_AddBoolToObject(o, "do_resize", pp->resize != BEIT_DATA_RESIZE_NONE);
  if (pp->resize == BEIT_DATA_RESIZE_SHORTEST) {
    cJSON *s = cJSON_AddObjectToObject(o, "size");
    if (s)
      cJSON_AddNumberToObject(s, "shortest_edge", pp->shortest_edge);
  } else {
    cJSON_AddItemToObject(o, "size", hw_json(pp->resize_height, pp->resize_width));
  }
  cJSON_AddNumberToObject(o, "resample", filter_to_pil(pp->filter));
  cJSON_AddBoolToObject(o, "do_center_crop", pp->center_crop);
  cJSON_AddItemToObject(o, "crop_size", hw_json(pp->crop_height, pp->crop_width));
  cJSON_AddBoolToObject(o, "do_rescale", 1);
  cJSON_AddNumberToObject(o, "rescale_factor", pp->rescale_factor);
  cJSON_AddBoolToObject(o, "do_normalize", 1);
  cJSON_AddItemToObject(o, "image_mean", cJSON_CreateDoubleArray(mean, 3));
  cJSON_AddItemToObject(o, "image_std", cJSON_CreateDoubleArray(std, 3));
  cJSON_AddBoolToObject(o, "do_reduce_labels", 0);
  return o;
}

enum beit_status beit_data_preprocess_save(const struct beit_data_preprocess *pp,
                                           const char *path, struct beit_error *err)
{
  cJSON *o = beit_data_preprocess_json(pp);
  if (!o)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", path);
  enum beit_status st = beit_json_write_file(path, o, err);
  cJSON_Delete(o);
  return st;
}

/* The whole file at path into a malloc'd buffer. */
static enum beit_status read_bytes(const char *path, unsigned char **out, size_t *n,
                                   struct beit_error *err)
{
  FILE *f = fopen(path, "rb");
  if (!f)
    return beit_error_set(err, BEIT_STATUS_IO, "%s: %s", path, strerror(errno));
  enum beit_status st = beit_read_stream(f, out, n);
  fclose(f);
  if (st)
    return beit_error_set(err, st, "%s: %s", path,
                          st == BEIT_STATUS_NOMEM ? "out of memory" : "read error");
  return BEIT_STATUS_OK;
}

/* floor(v * to / from), at least 1. */
static int scaled(int v, int from, int to)
{
  long s = (long)v * to / from;
  return s < 1 ? 1 : (int)s;
}

enum beit_status beit_data_preprocess_export(const char *src, int src_size, const char *dst_dir,
                                             int dst_size, struct beit_error *err)
{
  char in[4200], out[4200];
  struct beit_data_preprocess pp;
  snprintf(out, sizeof out, "%s/" FILE_NAME, dst_dir);
  snprintf(in, sizeof in, "%s/" FILE_NAME, src ? src : "");
  if (!src || !exists(in)) {
    beit_data_preprocess_default(&pp, dst_size);
    return beit_data_preprocess_save(&pp, out, err);
  }
  enum beit_status st = beit_data_preprocess_load(&pp, in, src_size, err);
  if (st)
    return st;
  if (dst_size != src_size) { /* another resolution: the same recipe at the new size */
    if (pp.resize == BEIT_DATA_RESIZE_SHORTEST)
      pp.shortest_edge = scaled(pp.shortest_edge, src_size, dst_size);
    pp.resize_height = scaled(pp.resize_height, src_size, dst_size);
    pp.resize_width = scaled(pp.resize_width, src_size, dst_size);
    if (!pp.center_crop) /* the resize alone made the square input */
      pp.resize_height = pp.resize_width = dst_size;
    pp.crop_height = pp.crop_width = dst_size;
    if ((st = beit_data_preprocess_check(&pp, dst_size, out, err)))
      return st;
    return beit_data_preprocess_save(&pp, out, err);
  }
  unsigned char *bytes = NULL;
  size_t n = 0;
  if (!(st = read_bytes(in, &bytes, &n, err)))
    st = beit_write_file_atomic(out, bytes, n, err);
  free(bytes);
  return st;
}

void beit_data_preprocess_describe(const struct beit_data_preprocess *pp, char *buf, size_t n)
{
  char resize[64], crop[48];
  if (pp->resize == BEIT_DATA_RESIZE_EXACT)
    snprintf(resize, sizeof resize, "resize %dx%d %s", pp->resize_height, pp->resize_width,
             filter_name(pp->filter));
  else if (pp->resize == BEIT_DATA_RESIZE_SHORTEST)
    snprintf(resize, sizeof resize, "resize shorter side %d %s", pp->shortest_edge,
             filter_name(pp->filter));
  else
    snprintf(resize, sizeof resize, "no resize");
  if (pp->center_crop)
    snprintf(crop, sizeof crop, "centre crop %dx%d", pp->crop_height, pp->crop_width);
  else
    snprintf(crop, sizeof crop, "no crop");
  snprintf(buf, n, "%s, %s, rescale %.6g, mean %g/%g/%g std %g/%g/%g (%s)", resize, crop,
           pp->rescale_factor, pp->mean[0], pp->mean[1], pp->mean[2], pp->std[0], pp->std[1],
           pp->std[2], pp->source);
}

/* ---- Images ---------------------------------------------------------------------------------- */

/* Size after the resize step. */
static void resized_size(const struct beit_data_preprocess *pp, int W, int H, int *nw, int *nh)
{
  *nw = W;
  *nh = H;
  if (pp->resize == BEIT_DATA_RESIZE_EXACT) {
    *nw = pp->resize_width;
    *nh = pp->resize_height;
  } else if (pp->resize == BEIT_DATA_RESIZE_SHORTEST) {
    /* HF get_resize_output_image_size (and torchvision Resize(int)): short side to s, long
     * side int(s * long / short). */
    int s = pp->shortest_edge;
    if (W <= H) {
      *nw = s;
      *nh = (int)((double)s * H / W);
    } else {
      *nh = s;
      *nw = (int)((double)s * W / H);
    }
    if (*nw < 1)
      *nw = 1;
    if (*nh < 1)
      *nh = 1;
  }
}

enum beit_status beit_data_preprocess_apply(const struct beit_data_preprocess *pp, int S,
                                            const struct beit_data_image *img, float *view,
                                            struct beit_data_scratch *ws, struct beit_error *err)
{
  int W = img->width, H = img->height, nw, nh;
  resized_size(pp, W, H, &nw, &nh);
  if (!pp->center_crop && (nw != S || nh != S))
    return beit_error_set(err, BEIT_STATUS_FORMAT,
                          "image of %dx%d, but the model takes %dx%d and its preprocessing does "
                          "not resize", W, H, S, S);
  const uint8_t *px = img->pixels;
  if (nw != W || nh != H) {
    if (beit_data_grow((void **)&ws->out2, &ws->out2_cap, (size_t)nw * nh * 3))
      return beit_error_set(err, BEIT_STATUS_NOMEM, "resize to %dx%d: out of memory", nw, nh);
    enum beit_status st = beit_data_resize(ws->out2, nw, nh, img->pixels, W, H, (size_t)W * 3, 0,
                                           0, W, H, pp->filter, ws, err);
    if (st)
      return st;
    px = ws->out2;
  }
  /* HF center_crop: top = (h - crop) // 2 (floor, also when negative: zero padding). */
  int top = 0, left = 0;
  if (pp->center_crop) {
    top = (nh - S) >= 0 ? (nh - S) / 2 : -((S - nh + 1) / 2);
    left = (nw - S) >= 0 ? (nw - S) / 2 : -((S - nw + 1) / 2);
  }
  float lut[3][256];
  for (int c = 0; c < 3; c++)
    for (int v = 0; v < 256; v++)
      lut[c][v] = (float)(((double)v * pp->rescale_factor - pp->mean[c]) / pp->std[c]);
  size_t plane = (size_t)S * S;
  for (int y = 0; y < S; y++) {
    int sy = y + top;
    for (int x = 0; x < S; x++) {
      int sx = x + left;
      size_t o = (size_t)y * S + x;
      if (sy < 0 || sy >= nh || sx < 0 || sx >= nw) {
        for (int c = 0; c < 3; c++)
          view[c * plane + o] = lut[c][0];
        continue;
      }
      const uint8_t *p = px + ((size_t)sy * nw + sx) * 3;
      view[o] = lut[0][p[0]];
      view[plane + o] = lut[1][p[1]];
      view[2 * plane + o] = lut[2][p[2]];
    }
  }
  return BEIT_STATUS_OK;
}
