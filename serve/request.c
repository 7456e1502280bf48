/* The request parser: one body of the model card's format in, a list of inputs out, or a fault
 * that names the input and the cause. Untrusted bytes enter here; this file is what
 * tests/fuzz_request.c exercises under AddressSanitizer.
 *
 * Accepted shapes of input_data.data (MLflow "split" orientation): a list of strings (the card's
 * example), or a list of rows, each a list whose element at the position of "image" in columns
 * is the string. columns and index are optional; when present columns must name "image" and
 * index must have one entry per row. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "serve.h"

void beit_request_free(struct beit_request *req)
{
  cJSON_Delete(req->root);
  free(req->items);
  memset(req, 0, sizeof *req);
}

static int has_prefix_ci(const char *s, size_t n, const char *prefix)
{
  size_t k = strlen(prefix);
  return n >= k && !strncasecmp(s, prefix, k);
}

/* Classify one input string: URL, data URI or bare base64. */
static int classify(struct beit_request_item *it, const char *s, size_t n, long index,
                    struct beit_fault *f)
{
  it->text = s;
  it->len = n;
  it->kind = BEIT_REQUEST_BASE64;
  if (has_prefix_ci(s, n, "http://") || has_prefix_ci(s, n, "https://")) {
    it->kind = BEIT_REQUEST_URL;
    return 0;
  }
  if (has_prefix_ci(s, n, "data:")) {
    const char *comma = memchr(s, ',', n);
    size_t head = comma ? (size_t)(comma - s) : 0;
    if (!comma || head < 12 || strncasecmp(comma - 7, ";base64", 7)) {
      beit_fault_set(f, 400, index, "bad_field",
                     "input %ld: a data URI must be base64 (data:<type>;base64,<data>)", index);
      return -1;
    }
    it->text = comma + 1;
    it->len = n - head - 1;
    return 0;
  }
  /* Something shaped like scheme://... that is not http(s): refuse by name rather than let it
   * fail later as bad base64 (':' is not in the alphabet anyway). */
  const char *colon = memchr(s, ':', n < 32 ? n : 32);
  if (colon && (size_t)(colon - s) + 2 < n && colon[1] == '/' && colon[2] == '/') {
    beit_fault_set(f, 400, index, "unsupported_url",
                   "input %ld: only http:// and https:// URLs are accepted", index);
    return -1;
  }
  if (n == 0) {
    beit_fault_set(f, 400, index, "bad_field", "input %ld: empty string", index);
    return -1;
  }
  return 0;
}

/* The body as a JSON object (only whitespace may follow it); NULL with f set otherwise. */
static cJSON *parse_object(const char *body, size_t len, struct beit_fault *f)
{
  if (len == 0) {
    beit_fault_set(f, 400, -1, "malformed_json", "empty request body");
    return NULL;
  }
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
  if (!root) {
    size_t at = end && end >= body && end <= body + len ? (size_t)(end - body) : 0;
    beit_fault_set(f, 400, -1, "malformed_json", "request body is not valid JSON (at byte %zu)", at);
    return NULL;
  }
  for (const char *p = end; p && p < body + len; p++)
    if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
      beit_fault_set(f, 400, -1, "malformed_json", "trailing data after the JSON value (byte %zu)",
                     (size_t)(p - body));
      cJSON_Delete(root);
      return NULL;
    }
  if (!cJSON_IsObject(root)) {
    beit_fault_set(f, 400, -1, "bad_field", "the request must be a JSON object with \"input_data\"");
    cJSON_Delete(root);
    return NULL;
  }
  return root;
}

/* The position of "image" in a row: 0 without input_data.columns; -1 with f set when columns
 * does not name it. */
static int image_column(const cJSON *columns, struct beit_fault *f)
{
  if (!columns)
    return 0;
  int n = cJSON_IsArray(columns) ? cJSON_GetArraySize(columns) : -1;
  for (int i = 0; i < n; i++) {
    const cJSON *c = cJSON_GetArrayItem(columns, i);
    if (cJSON_IsString(c) && !strcmp(c->valuestring, "image"))
      return i;
  }
  beit_fault_set(f, 400, -1, "bad_field",
                 "\"input_data.columns\" must be an array that names \"image\"");
  return -1;
}

/* Each row's image cell (the row itself, or its column-th entry), classified into req->items. */
static int read_rows(struct beit_request *req, const cJSON *data, size_t count, int column,
                     struct beit_fault *f)
{
  req->items = calloc(count, sizeof *req->items);
  if (!req->items) {
    beit_fault_set(f, 500, -1, "out_of_memory", "out of memory");
    return -1;
  }
  size_t i = 0;
  for (const cJSON *row = data->child; row; row = row->next, i++) {
    const cJSON *cell = cJSON_IsArray(row) ? cJSON_GetArrayItem(row, column) : row;
    if (!cell) {
      beit_fault_set(f, 400, (long)i, "bad_field", "input %zu: the row has no \"image\" column", i);
      return -1;
    }
    if (!cJSON_IsString(cell) || !cell->valuestring) {
      beit_fault_set(f, 400, (long)i, "bad_field",
                     "input %zu: must be a string (base64 of the image file, or a URL)", i);
      return -1;
    }
    if (classify(&req->items[i], cell->valuestring, strlen(cell->valuestring), (long)i, f))
      return -1;
  }
  req->count = count;
  return 0;
}

int beit_request_parse(struct beit_request *req, const char *body, size_t len, size_t max_images,
                       struct beit_fault *f)
{
  memset(req, 0, sizeof *req);
  if (!(req->root = parse_object(body, len, f)))
    return -1;
  const cJSON *input = cJSON_GetObjectItemCaseSensitive(req->root, "input_data");
  const cJSON *data = cJSON_IsObject(input) ? cJSON_GetObjectItemCaseSensitive(input, "data")
                                            : NULL;
  const cJSON *index = data ? cJSON_GetObjectItemCaseSensitive(input, "index") : NULL;
  size_t count = cJSON_IsArray(data) ? (size_t)cJSON_GetArraySize(data) : 0;
  int column = 0;
  if (!input)
    beit_fault_set(f, 400, -1, "missing_field", "missing field \"input_data\"");
  else if (!cJSON_IsObject(input))
    beit_fault_set(f, 400, -1, "bad_field", "\"input_data\" must be an object");
  else if (!data)
    beit_fault_set(f, 400, -1, "missing_field", "missing field \"input_data.data\"");
  else if (!cJSON_IsArray(data))
    beit_fault_set(f, 400, -1, "bad_field", "\"input_data.data\" must be an array");
  else if ((column = image_column(cJSON_GetObjectItemCaseSensitive(input, "columns"), f)) < 0)
    ;
  else if (index && (!cJSON_IsArray(index) || (size_t)cJSON_GetArraySize(index) != count))
    beit_fault_set(f, 400, -1, "bad_field",
                   "\"input_data.index\" must be an array with one entry per row of data (%zu)",
                   count);
  else if (count == 0)
    beit_fault_set(f, 400, -1, "bad_field", "\"input_data.data\" is empty");
  else if (count > max_images)
    beit_fault_set(f, 413, (long)max_images, "too_many_images",
                   "%zu images in one request; the limit is %zu (input %zu is the first over it)",
                   count, max_images, max_images);
  else if (read_rows(req, data, count, column, f) == 0)
    return 0;
  beit_request_free(req);
  return -1;
}

int beit_request_item_bytes(const struct beit_request *req, size_t i,
                            const struct beit_fetch_policy *policy, double time_left_s,
                            uint8_t **data, size_t *size, struct beit_fault *f)
{
  const struct beit_request_item *it = &req->items[i];
  *data = NULL;
  *size = 0;
  if (it->kind == BEIT_REQUEST_URL) {
    if (!policy || !policy->allow_urls) {
      beit_fault_set(f, 400, (long)i, "url_not_allowed",
                     "input %zu: URL inputs are disabled (--allow-urls enables them)", i);
      return -1;
    }
    double timeout = policy->timeout_s < time_left_s ? policy->timeout_s : time_left_s;
    struct beit_error err = {0};
    enum beit_status st = timeout <= 0 ? beit_error_set(&err, BEIT_STATUS_INTERRUPTED, "no time left")
                                       : beit_infer_fetch_url(it->text, policy->max_bytes,
                                                              timeout, policy->allow_private,
                                                              data, size, &err);
    if (st == BEIT_STATUS_INTERRUPTED && time_left_s < policy->timeout_s) {
      /* the fetch was cut short by the request's own deadline */
      beit_fault_set(f, 504, (long)i, "timeout", "input %zu: request timed out fetching the URL", i);
      return -1;
    }
    if (st) {
      int too_large = st == BEIT_STATUS_USAGE;
      beit_fault_set(f, too_large ? 413 : 400, (long)i, too_large ? "url_too_large" : "url_fetch_failed",
                     "input %zu: %s", i, err.message);
      return -1;
    }
    return 0;
  }
  *data = malloc(beit_base64_max_decoded(it->len));
  if (!*data) {
    beit_fault_set(f, 500, (long)i, "out_of_memory", "input %zu: out of memory", i);
    return -1;
  }
  size_t bad = 0;
  const char *why = "";
  if (beit_base64_decode(*data, size, it->text, it->len, &bad, &why)) {
    free(*data);
    *data = NULL;
    beit_fault_set(f, 400, (long)i, "bad_base64", "input %zu: invalid base64: %s (character %zu)",
                   i, why, bad);
    return -1;
  }
  if (*size == 0) {
    free(*data);
    *data = NULL;
    beit_fault_set(f, 400, (long)i, "bad_base64", "input %zu: base64 decodes to no bytes", i);
    return -1;
  }
  return 0;
}
