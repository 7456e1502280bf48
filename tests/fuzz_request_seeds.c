/* Seeds and dictionary of tests/fuzz_request.c for the driver build (fuzz_driver.h): valid
 * requests with real base64 PNGs, data URIs, rows, URLs, and near misses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_driver.h"
#include "serve.h"

unsigned char *stbi_write_png_to_mem(const unsigned char *pixels, int stride_bytes, int x, int y,
                                     int n, int *out_len);

static void add(const char *s) { fuzz_add_seed(s, strlen(s)); }

static int make_seeds(void)
{
  uint8_t rgb[6 * 5 * 3];
  for (size_t i = 0; i < sizeof rgb; i++)
    rgb[i] = (uint8_t)(i * 41);
  int len = 0;
  unsigned char *png = stbi_write_png_to_mem(rgb, 6 * 3, 6, 5, 3, &len);
  char b64[1024] = "";
  if (png && len > 0 && (size_t)len * 4 / 3 + 8 < sizeof b64)
    b64[beit_base64_encode(b64, png, (size_t)len)] = '\0';
  free(png);
  char buf[4096];
  snprintf(buf, sizeof buf, "{\"input_data\": {\"columns\": [\"image\"], \"index\": [0, 1], "
           "\"data\": [\"%s\", \"%s\"]}}", b64, b64);
  add(buf);
  snprintf(buf, sizeof buf, "{\"input_data\": {\"data\": [\"data:image/png;base64,%s\"]}}", b64);
  add(buf);
  snprintf(buf, sizeof buf, "{\"input_data\": {\"columns\": [\"id\", \"image\"], \"data\": "
           "[[1, \"%s\"], [2, \"Zm9vYmFy\"]]}}", b64);
  add(buf);
  add("{\"input_data\": {\"columns\": [\"image\"], \"index\": [0], \"data\": "
      "[\"https://127.0.0.1/a.png\"]}}");
  add("{\"input_data\": {\"data\": [\"Zm9v\", \"Zg==\", \"_-8=\", \"\\u0000\"]}}");
  add("{\"input_data\": {\"data\": [\"iVBORw0KGgoAAAANSUhEUgAAdTAAAHUwCAIAAAA=\"]}}");
  add("{\"input_data\": {\"index\": [], \"data\": []}}");
  add("{\"input_data\": {\"data\": [1, null, true, {}, []]}}");
  add("[{\"input_data\": 0}]");
  add("{\"input_data\": {\"data\": [\"ftp://x/y\", \"data:,x\"]}} ");
  return b64[0] ? 0 : -1;
}

static const char *const tokens[] = {"\"", "{", "}", "[", "]", ",", ":", "\\", "\\u0000",
                                     "null", "1e999", "-", "=", "data:", "http://",
                                     "\"input_data\"", "\"data\"", "\"columns\"", "\"index\"",
                                     "\"image\"", "AAAA", "////", "\xff\xfe", "\n", NULL};

const struct fuzz_target fuzz_target = {"request", ".json", 8192, tokens, make_seeds};
