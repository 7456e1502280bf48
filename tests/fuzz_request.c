/* Fuzz target of the request path that touches untrusted bytes: the JSON request parser and
 * validator, base64 decoding of every input, the header probe (format, pixel cap) and, for small
 * images, a full decode (libjpeg-turbo, libpng); then the response or fault text, which must itself be valid
 * JSON (checked: abort() otherwise). URLs are refused by policy, so nothing leaves the process.
 *
 * Built twice by tests/serve.cmake: with clang's libFuzzer (-fsanitize=fuzzer,address,undefined)
 * and, for CI without clang, with gcc's AddressSanitizer around tests/fuzz_driver.c, a bounded
 * deterministic mutator. The model-dependent calls of text.c are served by the 4-label stand-in
 * below. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

static const char *const fake_labels[] = {"can", "carton", "milk_bottle", "water\"bottle\\"};

size_t beit_infer_num_labels(const struct beit_infer *inf) { return 4; }
const char *beit_infer_label(const struct beit_infer *inf, size_t i) { return fake_labels[i]; }

static void must_be_json(const struct beit_strbuf *b)
{
  cJSON *j = b->data ? cJSON_ParseWithLength(b->data, b->len) : NULL;
  if (!j && !b->oom) {
    fprintf(stderr, "fuzz: produced invalid JSON: %s\n", b->data ? b->data : "(null)");
    abort();
  }
  cJSON_Delete(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct beit_request req;
  struct beit_fault f = {0};
  struct beit_strbuf out = {0};
  if (beit_request_parse(&req, (const char *)data, size, 16, &f)) {
    if (f.http_status < 400 || f.http_status > 599 || !f.reason)
      abort();
    beit_fault_json(&out, &f);
    must_be_json(&out);
    beit_strbuf_free(&out);
    return 0;
  }
  if (req.count == 0 || req.count > 16)
    abort();
  struct beit_fetch_policy no_urls = {0, 0, 1 << 20, 1.0};
  struct beit_infer_options limits = {.max_pixels = 1 << 16}; /* JPEG and PNG only, as serve */
  beit_strbuf_puts(&out, "[");
  for (size_t i = 0; i < req.count; i++) {
    uint8_t *bytes = NULL;
    size_t n = 0;
    float probs[4] = {0.25f, 0.25f, 0.25f, 0.25f};
    if (beit_request_item_bytes(&req, i, &no_urls, 1.0, &bytes, &n, &f) == 0) {
      int w, h;
      struct beit_error err = {0};
      if (beit_infer_probe(bytes, n, &limits, &w, &h, "fuzz", &err) == BEIT_STATUS_OK) {
        struct beit_data_image img;
        if (beit_data_decode(&img, bytes, n, "fuzz", &err) == BEIT_STATUS_OK) {
          probs[0] = (float)img.pixels[0] / 255.0f;
          probs[3] = (float)(img.width + img.height) / 512.0f;
        }
        beit_data_image_free(&img);
      }
      for (size_t k = 0; k < n && k < 4; k++)
        probs[k] = (float)bytes[k] / 255.0f;
      free(bytes);
    } else {
      if (f.index != (long)i)
        abort();
      struct beit_strbuf fb = {0};
      beit_fault_json(&fb, &f);
      must_be_json(&fb);
      beit_strbuf_free(&fb);
    }
    struct beit_infer_select sel = {i % 3, i % 2 ? 0.3 : -1.0};
    if (i)
      beit_strbuf_puts(&out, ", ");
    beit_strbuf_result(&out, NULL, probs, &sel);
  }
  beit_strbuf_puts(&out, "]");
  must_be_json(&out);
  beit_strbuf_free(&out);
  beit_request_free(&req);
  return 0;
}
