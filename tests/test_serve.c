/* Unit tests of serve/: base64, the request parser's faults, label selection and the response
 * text, preprocessing configs (HF keys, errors, save/load), centre crop and padding against a
 * plain-loop twin, the header probe (a decompression bomb refused), forward sessions sharing
 * one copy of the weights (equal results, concurrently; in bf16 also one bfloat16 copy), and the
 * batching queue (results equal to direct forwards under concurrent submitters, batches formed,
 * timeouts, a full queue), the --host loopback classes and bearer tokens (file, comparison,
 * header). fp32 unless a test says otherwise: the checks compare with float32 forwards at
 * 1e-5. */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "beit/infer.h"
#include "encoder.h"
#include "serve.h"
#include "testing.h"

/* stb_image_write ships in Debian's libstb next to stb_image. */
unsigned char *stbi_write_png_to_mem(const unsigned char *pixels, int stride_bytes, int x, int y,
                                     int n, int *out_len);

static char tmpdir[256];

/* ---- base64 ----------------------------------------------------------------------------------- */

static int b64(const char *in, char *out, size_t *n)
{
  size_t bad;
  const char *why;
  return beit_base64_decode((uint8_t *)out, n, in, strlen(in), &bad, &why);
}

static void test_base64(void)
{
  static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  static const char *const coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
                                      "Zm9vYmFy"};
  char out[64], enc[64];
  size_t n;
  for (int i = 0; i < 7; i++) {
    CHECK(b64(coded[i], out, &n) == 0 && n == strlen(plain[i]) && !memcmp(out, plain[i], n));
    size_t m = beit_base64_encode(enc, (const uint8_t *)plain[i], strlen(plain[i]));
    CHECK(m == strlen(coded[i]) && !memcmp(enc, coded[i], m));
  }
  CHECK(b64("Zg", out, &n) == 0 && n == 1 && out[0] == 'f');          /* no padding */
  CHECK(b64("Zm9v\r\nYmFy ", out, &n) == 0 && n == 6);                /* wrapped */
  CHECK(b64("-_-_", out, &n) == 0 && n == 3 && (uint8_t)out[0] == 0xFB); /* URL-safe */
  static const char *const bad[] = {"Zm9v!", "Z", "Zg=", "Zg==Zg", "=Zg", "Zh==", "Zm9=",
                                    "Zg===", "Zm9vY"};
  for (int i = 0; i < 9; i++)
    CHECK_MSG(b64(bad[i], out, &n) != 0, "'%s' must be refused", bad[i]);
  /* round trip of every length and byte value */
  uint8_t raw[300], back[310];
  char text[420];
  for (size_t len = 0; len < 300; len += 7) {
    for (size_t i = 0; i < len; i++)
      raw[i] = (uint8_t)(i * 37 + len);
    size_t m = beit_base64_encode(text, raw, len), got = 0, badpos;
    const char *why;
    CHECK(m <= beit_base64_max_decoded(m) * 4 / 3 + 4);
    CHECK(beit_base64_decode(back, &got, text, m, &badpos, &why) == 0 && got == len &&
          !memcmp(back, raw, len));
  }
}

/* ---- requests --------------------------------------------------------------------------------- */

struct request_case {
  const char *body;
  int ok, status;
  const char *reason;
  long index;
  size_t count;
};

static void test_requests(void)
{
  static const struct request_case cases[] = {
      {"{\"input_data\": {\"columns\": [\"image\"], \"index\": [0, 1], \"data\": [\"Zm9v\", "
       "\"https://example.invalid/a.png\"]}}", 1, 0, NULL, -1, 2},
      {"{\"input_data\": {\"data\": [\"Zm9v\"]}}", 1, 0, NULL, -1, 1},
      {"{\"input_data\": {\"columns\": [\"id\", \"image\"], \"data\": [[7, \"Zm9v\"], [8, "
       "\"data:image/png;base64,Zm9v\"]]}}", 1, 0, NULL, -1, 2},
      {"", 0, 400, "malformed_json", -1, 0},
      {"{\"input_data\": ", 0, 400, "malformed_json", -1, 0},
      {"{\"input_data\": {\"data\": [\"Zm9v\"]}} x", 0, 400, "malformed_json", -1, 0},
      {"[1, 2]", 0, 400, "bad_field", -1, 0},
      {"{\"inputs\": {}}", 0, 400, "missing_field", -1, 0},
      {"{\"input_data\": {\"columns\": [\"image\"]}}", 0, 400, "missing_field", -1, 0},
      {"{\"input_data\": [1]}", 0, 400, "bad_field", -1, 0},
      {"{\"input_data\": {\"data\": \"Zm9v\"}}", 0, 400, "bad_field", -1, 0},
      {"{\"input_data\": {\"data\": []}}", 0, 400, "bad_field", -1, 0},
      {"{\"input_data\": {\"columns\": [\"text\"], \"data\": [\"Zm9v\"]}}", 0, 400, "bad_field",
       -1, 0},
      {"{\"input_data\": {\"index\": [0], \"data\": [\"Zm9v\", \"Zm9v\"]}}", 0, 400, "bad_field",
       -1, 0},
      {"{\"input_data\": {\"data\": [\"Zm9v\", 5]}}", 0, 400, "bad_field", 1, 0},
      {"{\"input_data\": {\"data\": [\"Zm9v\", \"\"]}}", 0, 400, "bad_field", 1, 0},
      {"{\"input_data\": {\"data\": [\"ftp://host/a.png\"]}}", 0, 400, "unsupported_url", 0, 0},
      {"{\"input_data\": {\"data\": [\"data:image/png,Zm9v\"]}}", 0, 400, "bad_field", 0, 0},
      {"{\"input_data\": {\"data\": [\"a\", \"b\", \"c\", \"d\", \"e\"]}}", 0, 413,
       "too_many_images", 4, 0},
      {"{\"input_data\": {\"columns\": [\"image\"], \"data\": [[]]}}", 0, 400, "bad_field", 0, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const struct request_case *c = &cases[i];
    struct beit_request req;
    struct beit_fault f = {0};
    int rc = beit_request_parse(&req, c->body, strlen(c->body), 4, &f);
    CHECK_MSG((rc == 0) == c->ok, "case %zu: rc %d (%s)", i, rc, f.message);
    if (c->ok && rc == 0) {
      CHECK_MSG(req.count == c->count, "case %zu: %zu items", i, req.count);
    } else if (!c->ok && rc) {
      CHECK_MSG(f.http_status == c->status && !strcmp(f.reason, c->reason) && f.index == c->index,
                "case %zu: got %d %s index %ld (%s)", i, f.http_status, f.reason, f.index,
                f.message);
    }
    if (rc == 0)
      beit_request_free(&req);
  }
  /* items: kinds, data-URI stripping, bytes and the URL policy */
  const char *body = "{\"input_data\": {\"data\": [\"Zm9v\", \"data:image/png;base64,YmFy\", "
                     "\"http://127.0.0.1:9/x.png\", \"Zm9v!\"]}}";
  struct beit_request req;
  struct beit_fault f = {0};
  CHECK(beit_request_parse(&req, body, strlen(body), 64, &f) == 0);
  if (req.count == 4) {
    uint8_t *data;
    size_t n;
    struct beit_fetch_policy no_urls = {0, 0, 1000, 1.0};
    CHECK(beit_request_item_bytes(&req, 0, &no_urls, 1.0, &data, &n, &f) == 0 && n == 3 &&
          !memcmp(data, "foo", 3));
    free(data);
    CHECK(beit_request_item_bytes(&req, 1, &no_urls, 1.0, &data, &n, &f) == 0 && n == 3 &&
          !memcmp(data, "bar", 3));
    free(data);
    CHECK(req.items[2].kind == BEIT_REQUEST_URL);
    CHECK(beit_request_item_bytes(&req, 2, &no_urls, 1.0, &data, &n, &f) != 0 &&
          f.http_status == 400 && !strcmp(f.reason, "url_not_allowed") && f.index == 2);
    CHECK(beit_request_item_bytes(&req, 3, &no_urls, 1.0, &data, &n, &f) != 0 &&
          f.http_status == 400 && !strcmp(f.reason, "bad_base64") && f.index == 3);
    beit_request_free(&req);
  }
  /* the fault document */
  struct beit_strbuf b = {0};
  beit_fault_set(&f, 422, 3, "undecodable_image", "input 3: \"quoted\"\n");
  beit_fault_json(&b, &f);
  CHECK(b.data && !strcmp(b.data, "{\"error\": {\"status\": 422, \"index\": 3, \"reason\": "
                                  "\"undecodable_image\", \"message\": \"input 3: \\\"quoted\\\"\\n\"}}"));
  cJSON *parsed = b.data ? cJSON_Parse(b.data) : NULL;
  CHECK(parsed != NULL);
  cJSON_Delete(parsed);
  beit_strbuf_free(&b);
}

/* ---- a model folder ------------------------------------------------------------------------ */

static const char *const fridge[] = {"can", "carton", "milk_bottle", "water_bottle"};

static void write_model(const char *dir, int multilabel, const char *arch)
{
  struct beit_config cfg;
  struct beit_error err = {0};
  beit_config_defaults(&cfg);
  cfg.image_size = 16;
  cfg.patch_size = 4;
  cfg.hidden_size = 24;
  cfg.num_hidden_layers = 2;
  cfg.num_attention_heads = 2;
  cfg.intermediate_size = 48;
  cfg.use_relative_position_bias = 1;
  cfg.layer_norm_eps = 1e-6;
  snprintf(cfg.architecture, sizeof cfg.architecture, "%s", arch);
  snprintf(cfg.problem_type, sizeof cfg.problem_type, "%s",
           multilabel ? "multi_label_classification" : "single_label_classification");
  CHECK(beit_config_set_labels(&cfg, 4, fridge, &err) == BEIT_STATUS_OK);
  struct beit_model *m = NULL;
  CHECK(beit_model_create(&m, &cfg, 1, &err) == BEIT_STATUS_OK);
  if (m) {
    beit_model_init_weights(m, BEIT_INIT_PRETRAIN, 7);
    /* a head large enough that the probabilities differ visibly between images */
    float *w = beit_param(m->params, m, m->ids.head_w);
    for (size_t i = 0; w && i < m->out_dim * m->D; i++)
      w[i] = (float)sin(0.7 * (double)i);
    CHECK_MSG(beit_model_save(m, dir, &err) == BEIT_STATUS_OK, "%s", err.message);
  }
  beit_model_free(m);
  beit_config_free(&cfg);
}

static void write_text(const char *path, const char *text)
{
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (f) {
    fputs(text, f);
    fclose(f);
  }
}

static void fill_views(float *v, size_t n, size_t V, unsigned seed)
{
  for (size_t i = 0; i < n * V; i++)
    v[i] = (float)sin(0.01 * (double)(i + 1) * (seed + 1)) * 1.5f;
}

/* ---- preprocessing ------------------------------------------------------------------------- */

static enum beit_status load_pp(const char *json, struct beit_data_preprocess *pp,
                                struct beit_error *err)
{
  char path[512];
  snprintf(path, sizeof path, "%s/pp.json", tmpdir);
  write_text(path, json);
  return beit_data_preprocess_load(pp, path, 32, err);
}

/* The URL address filter: public addresses pass, loopback, private, link-local (the cloud
 * metadata service), CGNAT, multicast and their IPv4-mapped / NAT64 forms do not. */
static void test_address_filter(void)
{
  static const struct {
    const char *ip;
    int is_public;
  } cases[] = {
      {"8.8.8.8", 1},          {"1.1.1.1", 1},         {"93.184.216.34", 1},
      {"127.0.0.1", 0},        {"127.255.0.9", 0},     {"10.1.2.3", 0},
      {"172.16.0.1", 0},       {"172.31.255.255", 0},  {"172.32.0.1", 1},
      {"192.168.1.1", 0},      {"169.254.169.254", 0}, {"100.64.0.1", 0},
      {"100.128.0.1", 1},      {"0.0.0.0", 0},         {"224.0.0.1", 0},
      {"255.255.255.255", 0},  {"198.18.0.1", 0},      {"2606:4700::1111", 1},
      {"::1", 0},              {"::", 0},              {"fe80::1", 0},
      {"fd00::1", 0},          {"fc00::1", 0},         {"ff02::1", 0},
      {"::ffff:127.0.0.1", 0}, {"::ffff:8.8.8.8", 1},  {"64:ff9b::a00:1", 0},
      {"64:ff9b::808:808", 1}, {"::127.0.0.1", 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, cases[i].ip, &v4->sin_addr) == 1)
      v4->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, cases[i].ip, &v6->sin6_addr) == 1)
      v6->sin6_family = AF_INET6;
    int got = beit_infer_address_public((const struct sockaddr *)&ss);
    if (got != cases[i].is_public)
      fprintf(stderr, "address %s: public %d, want %d\n", cases[i].ip, got, cases[i].is_public);
    CHECK(got == cases[i].is_public);
  }
}

/* The server's --host classes: only loopback may go without a token. */
static void test_host_loopback(void)
{
  static const struct {
    const char *host;
    int loopback;
  } cases[] = {
      {"127.0.0.1", 1}, {"127.8.9.10", 1}, {"::1", 1},       {"::ffff:127.0.0.1", 1},
      {"0.0.0.0", 0},   {"::", 0},         {"10.0.0.1", 0},  {"128.0.0.1", 0},
      {"::2", 0},       {"::ffff:10.1.1.1", 0}, {"fe80::1", 0}, {"localhost", -1}, {"", -1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int got = beit_serve_host_loopback(cases[i].host);
    CHECK_MSG(got == cases[i].loopback, "host '%s': %d, want %d\n", cases[i].host, got,
              cases[i].loopback);
  }
}

/* Token files: trailing CR/LF dropped; empty, spaced, multi-line and over-long tokens refused
 * naming the file and never echoing the token; the group/other-readable flag. The comparison:
 * equal only for the exact token, whatever the lengths; the header parser's three refusals. */
static void test_auth(void)
{
  char path[512];
  snprintf(path, sizeof path, "%s/token", tmpdir);
  static const struct {
    const char *text;
    const char *token; /* NULL: refused */
  } files[] = {
      {"s3cret-Token_1\n", "s3cret-Token_1"}, {"abc\r\n", "abc"}, {"abc", "abc"},
      {"abc\n\n", "abc"}, {"", NULL}, {"\n", NULL}, {"ab c\n", NULL}, {"abc\ndef\n", NULL},
      {"t\xc3\xa9\n", NULL}, {"\tabc\n", NULL},
  };
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    write_text(path, files[i].text);
    chmod(path, 0600);
    char *token = NULL;
    int shared = -1;
    struct beit_error err = {0};
    enum beit_status st = beit_serve_token_load(path, &token, &shared, &err);
    if (files[i].token) {
      CHECK_MSG(st == BEIT_STATUS_OK && token && !strcmp(token, files[i].token) && shared == 0,
                "token file %zu: %s\n", i, err.message);
    } else {
      CHECK_MSG(st != BEIT_STATUS_OK && !token && strstr(err.message, path) &&
                    strstr(err.message, "--auth-token-file"), "token file %zu: %d %s\n", i, st,
                err.message);
      CHECK_MSG(!strstr(err.message, "ab c") && !strstr(err.message, "def"),
                "the message shows the token: %s\n", err.message);
    }
    beit_serve_secret_free(token);
  }
  { /* over the length cap, and a shared file */
    FILE *f = fopen(path, "w");
    for (int i = 0; i < BEIT_SERVE_TOKEN_MAX + 1; i++)
      fputc('x', f);
    fclose(f);
    char *token = NULL;
    int shared;
    struct beit_error err = {0};
    CHECK(beit_serve_token_load(path, &token, &shared, &err) != BEIT_STATUS_OK && !token);
    write_text(path, "abc\n");
    chmod(path, 0644);
    CHECK(beit_serve_token_load(path, &token, &shared, &err) == BEIT_STATUS_OK && shared == 1);
    beit_serve_secret_free(token);
    snprintf(path, sizeof path, "%s/no-such-token", tmpdir);
    CHECK(beit_serve_token_load(path, &token, &shared, &err) == BEIT_STATUS_IO &&
          strstr(err.message, path));
  }

  struct beit_serve_token tok;
  beit_serve_token_set(&tok, "s3cret");
  CHECK(beit_serve_token_equal(&tok, "s3cret", 6));
  CHECK(!beit_serve_token_equal(&tok, "s3cre", 5));   /* a prefix */
  CHECK(!beit_serve_token_equal(&tok, "s3cret!", 7)); /* an extension */
  CHECK(!beit_serve_token_equal(&tok, "s3crex", 6));
  CHECK(!beit_serve_token_equal(&tok, "", 0));
  CHECK(!beit_serve_token_equal(&tok, "s3cret\0\0", 8)); /* zero padding is no match */
  static char longer[BEIT_SERVE_TOKEN_MAX + 10];
  memset(longer, 'x', sizeof longer - 1);
  CHECK(!beit_serve_token_equal(&tok, longer, sizeof longer - 1));
  struct beit_serve_token full;
  longer[BEIT_SERVE_TOKEN_MAX] = '\0';
  beit_serve_token_set(&full, longer); /* the longest token: every padded byte used */
  CHECK(beit_serve_token_equal(&full, longer, BEIT_SERVE_TOKEN_MAX));
  CHECK(!beit_serve_token_equal(&full, longer, BEIT_SERVE_TOKEN_MAX - 1));

  CHECK(beit_serve_auth_check(&tok, "Bearer s3cret") == BEIT_SERVE_AUTH_OK);
  CHECK(beit_serve_auth_check(&tok, "bearer \t s3cret  ") == BEIT_SERVE_AUTH_OK);
  CHECK(beit_serve_auth_check(&tok, NULL) == BEIT_SERVE_AUTH_MISSING);
  CHECK(beit_serve_auth_check(&tok, "s3cret") == BEIT_SERVE_AUTH_MALFORMED);
  CHECK(beit_serve_auth_check(&tok, "Basic czNjcmV0") == BEIT_SERVE_AUTH_MALFORMED);
  CHECK(beit_serve_auth_check(&tok, "Bearer") == BEIT_SERVE_AUTH_MALFORMED);
  CHECK(beit_serve_auth_check(&tok, "Bearer ") == BEIT_SERVE_AUTH_MALFORMED);
  CHECK(beit_serve_auth_check(&tok, "Bearers3cret") == BEIT_SERVE_AUTH_MALFORMED);
  CHECK(beit_serve_auth_check(&tok, "Bearer s3cre") == BEIT_SERVE_AUTH_WRONG);
  CHECK(beit_serve_auth_check(&tok, "Bearer s3cret s3cret") == BEIT_SERVE_AUTH_WRONG);
}

static void test_preprocess_config(void)
{
  struct beit_data_preprocess pp, back;
  struct beit_error err = {0};
  CHECK(load_pp("{\"do_resize\": true, \"size\": {\"height\": 32, \"width\": 32}, \"resample\": 2, "
                "\"do_center_crop\": false, \"image_mean\": [0.5, 0.5, 0.5], \"image_std\": "
                "[0.5, 0.5, 0.5], \"feature_extractor_type\": \"BeitFeatureExtractor\"}",
                &pp, &err) == BEIT_STATUS_OK);
  CHECK(pp.resize == BEIT_DATA_RESIZE_EXACT && pp.resize_width == 32 && !pp.center_crop &&
        pp.filter == BEIT_DATA_FILTER_BILINEAR);
  /* HF class defaults for absent keys: 256x256 bicubic + centre crop 224 (so 32 must be said) */
  CHECK(load_pp("{\"crop_size\": 32}", &pp, &err) == BEIT_STATUS_OK && pp.center_crop &&
        pp.resize_height == 256 && pp.crop_width == 32 && pp.filter == BEIT_DATA_FILTER_BICUBIC);
  CHECK(load_pp("{}", &pp, &err) == BEIT_STATUS_CONFIG && strstr(err.message, "crop_size"));
  CHECK(load_pp("{\"size\": {\"shortest_edge\": 40}, \"crop_size\": {\"height\": 32, \"width\": "
                "32}, \"do_normalize\": false}", &pp, &err) == BEIT_STATUS_OK &&
        pp.resize == BEIT_DATA_RESIZE_SHORTEST && pp.shortest_edge == 40 && pp.std[1] == 1.0f);
  CHECK(load_pp("{\"size\": 32, \"do_center_crop\": false, \"colour\": 1}", &pp, &err) ==
            BEIT_STATUS_CONFIG && strstr(err.message, "colour"));
  CHECK(load_pp("{\"size\": 32, \"do_center_crop\": false, \"resample\": 0}", &pp, &err) ==
            BEIT_STATUS_CONFIG && strstr(err.message, "resample"));
  CHECK(load_pp("{\"size\": 48, \"do_center_crop\": false}", &pp, &err) == BEIT_STATUS_CONFIG &&
        strstr(err.message, "'size'"));
  CHECK(load_pp("{\"size\": {\"shortest_edge\": 32}, \"do_center_crop\": false}", &pp, &err) ==
        BEIT_STATUS_CONFIG);
  CHECK(load_pp("{\"size\": 32, \"do_center_crop\": false, \"image_std\": [1, 0, 1]}", &pp, &err) ==
        BEIT_STATUS_CONFIG);
  CHECK(load_pp("{\"size\": 32, \"do_center_crop\": \"no\"}", &pp, &err) == BEIT_STATUS_CONFIG &&
        strstr(err.message, "do_center_crop"));
  /* save -> load */
  CHECK(load_pp("{\"size\": {\"shortest_edge\": 36}, \"crop_size\": 32, \"resample\": 1, "
                "\"image_mean\": [0.1, 0.2, 0.3], \"image_std\": [0.4, 0.5, 0.6]}", &pp,
                &err) == BEIT_STATUS_OK);
  char path[512];
  snprintf(path, sizeof path, "%s/saved_pp.json", tmpdir);
  CHECK(beit_data_preprocess_save(&pp, path, &err) == BEIT_STATUS_OK);
  CHECK(beit_data_preprocess_load(&back, path, 32, &err) == BEIT_STATUS_OK);
  CHECK(back.resize == pp.resize && back.shortest_edge == 36 && back.center_crop &&
        back.filter == BEIT_DATA_FILTER_LANCZOS && fabsf(back.mean[2] - 0.3f) < 1e-7f &&
        fabsf(back.std[0] - 0.4f) < 1e-7f && fabs(back.rescale_factor - 1.0 / 255.0) < 1e-12);
}

/* Centre crop / padding without resizing, against the plain definition. */
static void test_crop_pad(const char *model_dir)
{
  char path[512];
  snprintf(path, sizeof path, "%s/preprocessor_config.json", model_dir);
  write_text(path, "{\"do_resize\": false, \"do_center_crop\": true, \"crop_size\": 16, "
                   "\"image_mean\": [0.25, 0.5, 0.75], \"image_std\": [0.5, 0.25, 0.125]}");
  struct beit_infer *inf = NULL;
  struct beit_error err = {0};
  CHECK_MSG(beit_infer_load(&inf, model_dir, NULL, &err) == BEIT_STATUS_OK, "%s", err.message);
  remove(path);
  if (!inf)
    return;
  struct beit_data_scratch *ws = beit_data_scratch_init();
  static const int sizes[][2] = {{16, 16}, {23, 19}, {9, 30}, {5, 4}, {40, 7}};
  float view[3 * 16 * 16];
  for (int s = 0; s < 5; s++) {
    int W = sizes[s][0], H = sizes[s][1];
    struct beit_data_image img = {malloc((size_t)W * H * 3), W, H};
    for (int i = 0; i < W * H * 3; i++)
      img.pixels[i] = (uint8_t)(i * 29 + s);
    CHECK(beit_infer_prepare_image(inf, &img, view, ws, &err) == BEIT_STATUS_OK);
    /* HF: top = (H - 16) // 2 (floor); a smaller side is padded, the image at ceil((16-H)/2) */
    int top = H >= 16 ? (H - 16) / 2 : -((16 - H + 1) / 2);
    int left = W >= 16 ? (W - 16) / 2 : -((16 - W + 1) / 2);
    static const double mean[3] = {0.25, 0.5, 0.75}, sd[3] = {0.5, 0.25, 0.125};
    double worst = 0;
    for (int c = 0; c < 3; c++)
      for (int y = 0; y < 16; y++)
        for (int x = 0; x < 16; x++) {
          int sy = y + top, sx = x + left;
          double v = sy >= 0 && sy < H && sx >= 0 && sx < W ? img.pixels[(sy * W + sx) * 3 + c] : 0;
          double want = (v / 255.0 - mean[c]) / sd[c];
          double d = fabs(view[c * 256 + y * 16 + x] - want);
          worst = d > worst ? d : worst;
        }
    CHECK_MSG(worst < 1e-5, "crop/pad %dx%d: error %g", W, H, worst);
    free(img.pixels);
  }
  beit_data_scratch_free(ws);
  beit_infer_free(inf);
}

/* ---- header probe ------------------------------------------------------------------------------ */

static uint32_t crc32_of(const uint8_t *p, size_t n)
{
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++)
      c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
  }
  return ~c;
}

static void put32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static void test_probe(const struct beit_infer *inf)
{
  /* PNG signature + IHDR claiming 10000 x 10000 RGB + IEND: 300 MB once decoded */
  uint8_t png[8 + 25 + 12] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  uint8_t *ihdr = png + 8;
  put32(ihdr, 13);
  memcpy(ihdr + 4, "IHDR", 4);
  put32(ihdr + 8, 10000);
  put32(ihdr + 12, 10000);
  ihdr[16] = 8;
  ihdr[17] = 2;
  put32(ihdr + 21, crc32_of(ihdr + 4, 17));
  uint8_t *iend = ihdr + 25;
  put32(iend, 0);
  memcpy(iend + 4, "IEND", 4);
  put32(iend + 8, crc32_of(iend + 4, 4));
  int w, h;
  struct beit_error err = {0};
  struct beit_infer_options nocap, cap;
  beit_infer_defaults(&nocap);
  beit_infer_defaults(&cap);
  nocap.max_pixels = 0;
  CHECK(beit_infer_probe(png, sizeof png, &nocap, &w, &h, "bomb", &err) == BEIT_STATUS_OK &&
        w == 10000 && h == 10000);
  CHECK(beit_infer_probe(png, sizeof png, &cap, &w, &h, "bomb", &err) == BEIT_STATUS_USAGE &&
        strstr(err.message, "bomb") && strstr(err.message, "10000x10000"));
  put32(ihdr + 8, 60000); /* beyond the decoders' limits: refused as too large, even uncapped */
  put32(ihdr + 21, crc32_of(ihdr + 4, 17));
  CHECK(beit_infer_probe(png, sizeof png, &nocap, &w, &h, "huge", &err) == BEIT_STATUS_USAGE &&
        strstr(err.message, "decoder's limit"));
  put32(ihdr + 8, 10000);
  put32(ihdr + 21, crc32_of(ihdr + 4, 17));
  float view[3 * 16 * 16];
  struct beit_data_scratch *ws = beit_data_scratch_init();
  CHECK(beit_infer_prepare(inf, png, sizeof png, "bomb", view, NULL, ws, &err) ==
        BEIT_STATUS_USAGE);
  CHECK(beit_infer_probe("not an image", 12, &nocap, &w, &h, "junk", &err) == BEIT_STATUS_FORMAT);
  /* formats other than JPEG and PNG: refused (415) unless any_format, as for local files */
  static const uint8_t gif[] = "GIF89a\x02\x00\x03\x00\x00\x00\x00,\x00\x00\x00\x00\x02\x00"
                               "\x03\x00\x00\x02\x02\x04\x01\x00;";
  CHECK(beit_infer_probe(gif, sizeof gif, &cap, &w, &h, "anim.gif", &err) ==
            BEIT_STATUS_UNSUPPORTED && strstr(err.message, "anim.gif: a GIF image"));
  cap.any_format = 1;
  CHECK(beit_infer_probe(gif, sizeof gif, &cap, &w, &h, "anim.gif", &err) == BEIT_STATUS_OK &&
        w == 2 && h == 3);
  /* a real PNG decodes and preprocesses; cut short it is FORMAT */
  uint8_t rgb[20 * 12 * 3];
  for (size_t i = 0; i < sizeof rgb; i++)
    rgb[i] = (uint8_t)(i * 7);
  int len = 0;
  unsigned char *enc = stbi_write_png_to_mem(rgb, 20 * 3, 20, 12, 3, &len);
  CHECK(enc != NULL && len > 0);
  if (enc) {
    CHECK(beit_infer_prepare(inf, enc, (size_t)len, "ok.png", view, NULL, ws, &err) ==
          BEIT_STATUS_OK);
    CHECK(beit_infer_prepare(inf, enc, (size_t)len / 2, "half.png", view, NULL, ws, &err) ==
              BEIT_STATUS_FORMAT && strstr(err.message, "half.png"));
    free(enc);
  }
  beit_data_scratch_free(ws);
}

/* ---- sessions and the batching queue ----------------------------------------------------------- */

struct run_arg {
  struct beit_infer *inf;
  int session;
  const float *views;
  size_t n;
  float *probs;
  int rc;
};

static void *run_thread(void *p)
{
  struct run_arg *a = p;
  struct beit_error err = {0};
  for (int k = 0; k < 5 && !a->rc; k++)
    a->rc = beit_infer_run(a->inf, a->session, a->views, a->n, a->probs, &err) != BEIT_STATUS_OK;
  return NULL;
}

/* The tests' inference options: batches of at most 4, one thread per session. */
static void small_infer_options(struct beit_infer_options *o, int sessions,
                                enum beit_precision precision)
{
  beit_infer_defaults(o);
  o->max_batch = 4;
  o->sessions = sessions;
  o->threads = 1;
  o->precision = precision;
}

/* Sessions s1 and s2 each run the n views 5 times at the same time; 1 when every run succeeded
 * with the probabilities `want` (n x 16 at most) in both. */
static int concurrent_sessions_agree(struct beit_infer *inf, int s1, int s2, const float *views,
                                     size_t n, const float *want)
{
  float pa[16], pb[16];
  struct run_arg a = {inf, s1, views, n, pa, 0}, b = {inf, s2, views, n, pb, 0};
  pthread_t ta, tb;
  pthread_create(&ta, NULL, run_thread, &a);
  pthread_create(&tb, NULL, run_thread, &b);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  return !a.rc && !b.rc && !memcmp(pa, want, sizeof pa) && !memcmp(pb, want, sizeof pb);
}

static void test_sessions(struct beit_infer *inf)
{
  size_t V = beit_infer_view_floats(inf), C = beit_infer_num_labels(inf), n = 4;
  float *views = malloc(n * V * sizeof *views), p0[16], p1[16], single[4];
  fill_views(views, n, V, 1);
  struct beit_error err = {0};
  CHECK(beit_infer_run(inf, 0, views, n, p0, &err) == BEIT_STATUS_OK);
  CHECK(beit_infer_run(inf, 1, views, n, p1, &err) == BEIT_STATUS_OK);
  CHECK(!memcmp(p0, p1, sizeof p0)); /* same weights, same code */
  for (size_t b = 0; b < n; b++) {
    double s = 0;
    for (size_t i = 0; i < C; i++)
      s += p0[b * C + i];
    CHECK(fabs(s - 1.0) < 1e-5);
  }
  CHECK(fabsf(p0[0] - p0[C]) > 1e-4f); /* images differ, so do their probabilities */
  CHECK(beit_infer_run(inf, 0, views + V, 1, single, &err) == BEIT_STATUS_OK);
  check_close("batch of 4 vs single image", single, p0 + C, C, 1e-5);
  CHECK(beit_infer_run(inf, 2, views, 1, single, &err) == BEIT_STATUS_USAGE);
  CHECK(beit_infer_run(inf, 0, views, 5, single, &err) == BEIT_STATUS_USAGE);
  /* both sessions at once */
  CHECK(concurrent_sessions_agree(inf, 0, 1, views, n, p0));
  /* the response text */
  struct beit_infer_select all = {0, -1.0}, top2 = {2, -1.0}, thr = {0, 0.3};
  size_t order[4];
  float probs[4] = {0.1f, 0.4f, 0.3f, 0.2f};
  CHECK(beit_infer_select_labels(inf, probs, &top2, order) == 2 && order[0] == 1 && order[1] == 2);
  CHECK(beit_infer_select_labels(inf, probs, &thr, order) == 2);
  char *json = beit_infer_result_json(inf, probs, &all);
  CHECK(json && !strcmp(json, "{\"probs\": [0.1, 0.4, 0.3, 0.2], \"labels\": [\"can\", "
                              "\"carton\", \"milk_bottle\", \"water_bottle\"]}"));
  free(json);
  json = beit_infer_result_json(inf, probs, &top2);
  CHECK(json && !strcmp(json, "{\"probs\": [0.4, 0.3], \"labels\": [\"carton\", \"milk_bottle\"]}"));
  free(json);
  free(views);
}

/* bf16 sessions alias session 0's weights and its one bfloat16 copy (no copy of their own), agree
 * bitwise with each other, also concurrently, and with fp32 within bf16 rounding; freeing them
 * frees the copy once. */
static void test_sessions_bf16(const char *model_dir)
{
  if (!beit_precision_bf16_available()) {
    printf("skip bf16 sessions: no bf16 matrix products here (%s)\n", beit_precision_isa());
    return;
  }
  struct beit_infer_options opt;
  small_infer_options(&opt, 3, BEIT_PRECISION_BF16);
  struct beit_infer *inf = NULL, *ref = NULL;
  struct beit_error err = {0};
  CHECK_MSG(beit_infer_load(&inf, model_dir, &opt, &err) == BEIT_STATUS_OK, "%s", err.message);
  opt.sessions = 1;
  opt.precision = BEIT_PRECISION_FP32;
  CHECK_MSG(beit_infer_load(&ref, model_dir, &opt, &err) == BEIT_STATUS_OK, "%s", err.message);
  if (!inf || !ref)
    goto done;
  CHECK(beit_infer_get_options(inf)->precision == BEIT_PRECISION_BF16);
  CHECK(beit_infer_get_options(ref)->precision == BEIT_PRECISION_FP32);
  const struct beit_model *m0 = beit_infer_session_model(inf, 0);
  CHECK(m0->params_h != NULL && beit_infer_session_model(ref, 0)->params_h == NULL);
  for (int s = 1; s < 3; s++) {
    const struct beit_model *m = beit_infer_session_model(inf, s);
    CHECK(m->params == m0->params && m->params_h == m0->params_h);
    CHECK(beit_model_precision(m) == BEIT_PRECISION_BF16);
  }
  size_t V = beit_infer_view_floats(inf), C = beit_infer_num_labels(inf), n = 4;
  float *views = malloc(n * V * sizeof *views), p[3][16], pf[16];
  fill_views(views, n, V, 3);
  for (int s = 0; s < 3; s++)
    CHECK(beit_infer_run(inf, s, views, n, p[s], &err) == BEIT_STATUS_OK);
  CHECK(!memcmp(p[0], p[1], sizeof p[0]) && !memcmp(p[0], p[2], sizeof p[0]));
  CHECK(beit_infer_run(ref, 0, views, n, pf, &err) == BEIT_STATUS_OK);
  double worst = 0;
  for (size_t i = 0; i < n * C; i++)
    worst = fmax(worst, fabs((double)p[0][i] - (double)pf[i]));
  CHECK_MSG(worst <= 2e-2, "bf16 vs fp32 probabilities differ by %.3g", worst);
  CHECK(memcmp(p[0], pf, sizeof pf) != 0); /* bf16 did run */
  CHECK(concurrent_sessions_agree(inf, 1, 2, views, n, p[0]));
  free(views);
done:
  beit_infer_free(inf); /* once: the sessions' params_h is session 0's */
  beit_infer_free(ref);
}

struct submitter {
  struct beit_batcher *b;
  struct beit_infer *inf;
  const float *pool; /* 8 distinct views */
  const float *want; /* their probabilities */
  unsigned seed;
  int failures;
};

static void *submit_thread(void *p)
{
  struct submitter *s = p;
  size_t V = beit_infer_view_floats(s->inf), C = beit_infer_num_labels(s->inf);
  unsigned r = s->seed;
  for (int k = 0; k < 12; k++) {
    r = r * 1103515245u + 12345u;
    size_t n = 1 + (r >> 16) % 6; /* up to 6 images: some requests span two batches of 4 */
    struct beit_job *job = beit_job_create(s->inf, n);
    size_t pick[6];
    for (size_t i = 0; i < n; i++) {
      pick[i] = (r >> (i + 3)) % 8;
      memcpy(job->views + i * V, s->pool + pick[i] * V, V * sizeof(float));
    }
    if (beit_batcher_reserve(s->b, n) || beit_batcher_submit(s->b, job) ||
        beit_batcher_wait(s->b, job, beit_clock_now() + 60)) {
      s->failures++;
      continue;
    }
    for (size_t i = 0; i < n; i++)
      for (size_t c = 0; c < C; c++)
        if (fabsf(job->probs[i * C + c] - s->want[pick[i] * C + c]) > 1e-5f)
          s->failures++;
    beit_job_free(job);
  }
  return NULL;
}

static void test_batcher(struct beit_infer *inf)
{
  size_t V = beit_infer_view_floats(inf), C = beit_infer_num_labels(inf);
  float *pool = malloc(8 * V * sizeof *pool), want[8 * 4];
  fill_views(pool, 8, V, 3);
  struct beit_error err = {0};
  for (int i = 0; i < 8; i++)
    CHECK(beit_infer_run(inf, 0, pool + i * V, 1, want + i * C, &err) == BEIT_STATUS_OK);
  struct beit_batcher *b = NULL;
  CHECK(beit_batcher_start(&b, inf, 2000, 1000, &err) == BEIT_STATUS_OK);
  if (!b)
    return;
  struct submitter s[8];
  pthread_t t[8];
  for (int i = 0; i < 8; i++) {
    s[i] = (struct submitter){b, inf, pool, want, 17u * (unsigned)i + 1, 0};
    pthread_create(&t[i], NULL, submit_thread, &s[i]);
  }
  int failures = 0;
  for (int i = 0; i < 8; i++) {
    pthread_join(t[i], NULL);
    failures += s[i].failures;
  }
  CHECK_MSG(failures == 0, "%d wrong or failed results under concurrent submitters", failures);
  struct beit_batcher_stats st;
  beit_batcher_stats(b, &st);
  CHECK_MSG(st.max_batch_seen == 4 && st.batches < st.images,
            "batches %llu for %llu images, largest %llu", (unsigned long long)st.batches,
            (unsigned long long)st.images, (unsigned long long)st.max_batch_seen);
  CHECK(st.queued_images == 0);
  /* a deadline in the past: withdrawn (freed by whoever holds it last; ASan checks) */
  for (int k = 0; k < 20; k++) {
    struct beit_job *job = beit_job_create(inf, 3);
    fill_views(job->views, 3, V, 5);
    CHECK(beit_batcher_reserve(b, 3) == 0 && beit_batcher_submit(b, job) == 0);
    if (beit_batcher_wait(b, job, beit_clock_now() - 1.0) == 0)
      beit_job_free(job); /* finished before we looked */
  }
  beit_batcher_stop(b);
  /* admission: reservations count against the cap until released or submitted */
  CHECK(beit_batcher_start(&b, inf, 0, 5, &err) == BEIT_STATUS_OK);
  if (b) {
    CHECK(beit_batcher_reserve(b, 6) == -1);
    CHECK(beit_batcher_reserve(b, 3) == 0);
    CHECK(beit_batcher_reserve(b, 3) == -1);
    beit_batcher_release(b, 3);
    CHECK(beit_batcher_reserve(b, 5) == 0);
    beit_batcher_release(b, 5);
    beit_batcher_stats(b, &st);
    CHECK(st.reserved_images == 0 && st.queued_images == 0);
    beit_batcher_stop(b);
  }
  /* abort (a shutdown that will not wait): a queued job's waiter returns -2 at once and the
   * batcher frees the job; nothing new is admitted. The workers wait 60 s for a fuller batch,
   * so the one-image jobs stay queued until the abort. */
  CHECK(beit_batcher_start(&b, inf, 60000000u, 100, &err) == BEIT_STATUS_OK);
  if (b) {
    struct beit_job *jobs[3];
    for (int k = 0; k < 3; k++) {
      jobs[k] = beit_job_create(inf, 1);
      fill_views(jobs[k]->views, 1, V, 7);
      CHECK(beit_batcher_reserve(b, 1) == 0 && beit_batcher_submit(b, jobs[k]) == 0);
    }
    double t0 = beit_clock_now();
    beit_batcher_abort(b);
    for (int k = 0; k < 3; k++)
      CHECK(beit_batcher_wait(b, jobs[k], beit_clock_now() + 60) == -2);
    CHECK_MSG(beit_clock_now() - t0 < 5, "aborted waits took %.1f s", beit_clock_now() - t0);
    CHECK(beit_batcher_reserve(b, 1) == -1);
    beit_batcher_stats(b, &st);
    CHECK(st.queued_images == 0 && st.images == 0);
    beit_batcher_stop(b);
  }
  free(pool);
}

int main(void)
{
  test_address_filter();
  if (test_mkdtemp(tmpdir, sizeof tmpdir, "/tmp/beit_test_serve_XXXXXX"))
    return 1;
  test_base64();
  test_host_loopback();
  test_auth();
  test_requests();
  test_preprocess_config();

  char model[512], multi[512];
  snprintf(model, sizeof model, "%s/model", tmpdir);
  snprintf(multi, sizeof multi, "%s/multi", tmpdir);
  write_model(model, 0, "BeitForImageClassification");
  write_model(multi, 1, "BeitForImageClassification");
  test_crop_pad(model);

  struct beit_infer_options opt;
  small_infer_options(&opt, 2, BEIT_PRECISION_FP32);
  struct beit_infer *inf = NULL;
  struct beit_error err = {0};
  CHECK_MSG(beit_infer_load(&inf, model, &opt, &err) == BEIT_STATUS_OK, "%s", err.message);
  if (inf) {
    CHECK(beit_infer_task(inf) == BEIT_INFER_TASK_MULTICLASS && beit_infer_num_labels(inf) == 4);
    CHECK(!strcmp(beit_infer_label(inf, 2), "milk_bottle") && beit_infer_image_size(inf) == 16);
    CHECK(!strcmp(beit_infer_preprocessing(inf)->source, "default"));
    test_probe(inf);
    test_sessions(inf);
    test_batcher(inf);
    beit_infer_free(inf);
  }
  test_sessions_bf16(model);
  /* multi-label: independent sigmoids */
  inf = NULL;
  opt.sessions = 1;
  CHECK(beit_infer_load(&inf, multi, &opt, &err) == BEIT_STATUS_OK);
  if (inf) {
    size_t V = beit_infer_view_floats(inf);
    float *v = malloc(V * sizeof *v), p[4];
    fill_views(v, 1, V, 9);
    CHECK(beit_infer_task(inf) == BEIT_INFER_TASK_MULTILABEL);
    CHECK(beit_infer_run(inf, 0, v, 1, p, &err) == BEIT_STATUS_OK);
    struct beit_model *m = NULL;
    CHECK(beit_model_load(&m, multi, 1, &err) == BEIT_STATUS_OK);
    if (m && beit_model_forward(m, v, NULL, NULL, 1, &err) == BEIT_STATUS_OK) {
      float want[4];
      for (int i = 0; i < 4; i++)
        want[i] = (float)(1.0 / (1.0 + exp(-(double)m->a.logits[i])));
      check_close("multi-label sigmoids", p, want, 4, 1e-6);
    }
    beit_model_free(m);
    free(v);
    beit_infer_free(inf);
  }
  /* another architecture is refused by name */
  char plain[512], cmd[1200];
  snprintf(plain, sizeof plain, "%s/plain", tmpdir);
  write_model(plain, 0, "BeitModel");
  inf = NULL;
  CHECK(beit_infer_load(&inf, plain, NULL, &err) == BEIT_STATUS_CONFIG &&
        strstr(err.message, "BeitForImageClassification"));
  beit_infer_free(inf);

  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  if (system(cmd) != 0)
    fprintf(stderr, "warning: could not remove %s\n", tmpdir);
  return test_summary("test_serve");
}
