/* Golden test of the dVAE against the PyTorch reference (tools/dvae_ref.py golden): the same
 * fp32 weights, images and Gumbel noise; the reference runs in fp64. Compared: the encoder
 * logits, loss, reconstruction and KL terms, and the gradient of every parameter (encoder and
 * decoder), each with a scale-free relative error. Then the same model through the public API:
 * folder load, encode (argmax of the logits), decode.
 *
 * usage: test_tokenizer_golden DIR [DIR...]   (each written by dvae_ref.py golden DIR) */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dvae.h"
#include "safetensors.h"
#include "testing.h"

#define TOL_LOGITS 1e-5
#define TOL_LOSS 1e-5
#define TOL_GRAD 1e-4

static void run_case(const char *dir)
{
  struct beit_error err = {0};
  struct beit_tokenizer *tok = NULL;
  char path[4096];
  if (beit_tokenizer_load(&tok, dir, 2, &err)) {
    fprintf(stderr, "%s\n", err.message);
    CHECK(!"tokenizer load");
    return;
  }
  snprintf(path, sizeof path, "%s/golden.safetensors", dir);
  struct beit_safetensors *g = NULL;
  if (beit_safetensors_open(&g, path, &err)) {
    fprintf(stderr, "%s\n", err.message);
    CHECK(!"golden open");
    beit_tokenizer_free(tok);
    return;
  }
  size_t nx, nn, nl, ns;
  float *x = test_read_f32(g, "x", 1, &nx);
  float *noise = test_read_f32(g, "gumbel", 1, &nn);
  float *want_logits = test_read_f32(g, "logits", 1, &nl);
  float *scalars = test_read_f32(g, "scalars", 1, &ns); /* loss, recon, kl, tau, kl_weight */
  if (!x || !noise || !want_logits || !scalars)
    goto done;
  const size_t img = tok->C * tok->S * tok->S, B = nx / img;
  CHECK(ns == 5 && B * img == nx && nl == B * tok->V * tok->gh * tok->gw && nn == nl);

  if (beit_dvae_train_init(tok, B, &err)) {
    fprintf(stderr, "%s\n", err.message);
    CHECK(!"train init");
    goto done;
  }
  struct beit_dvae_step_stats stats;
  beit_dvae_forward_backward(tok, x, noise, B, scalars[3], scalars[4], &stats);
  char label[256];
  snprintf(label, sizeof label, "%s: encoder logits", dir);
  double worst_logits = check_close(label, tok->t.logits, want_logits, nl, TOL_LOGITS);
  const float got[3] = {(float)stats.loss, (float)stats.recon, (float)stats.kl};
  static const char *names[3] = {"loss", "recon", "kl"};
  double worst_loss = 0.0, worst_grad = 0.0;
  for (int i = 0; i < 3; i++) {
    snprintf(label, sizeof label, "%s: %s (got %.8f want %.8f)", dir, names[i], got[i],
             scalars[i]);
    double e = check_close(label, &got[i], &scalars[i], 1, TOL_LOSS);
    worst_loss = e > worst_loss ? e : worst_loss;
  }
  const char *worst_name = "";
  for (size_t i = 0; i < tok->table.count; i++) {
    const struct beit_tensor *t = &tok->table.items[i];
    char gname[BEIT_TENSOR_NAME_MAX + 8];
    snprintf(gname, sizeof gname, "grad.%s", t->name);
    size_t n;
    float *want = test_read_f32(g, gname, 1, &n);
    if (!want)
      continue;
    CHECK(n == t->numel);
    snprintf(label, sizeof label, "%s: d %s", dir, t->name);
    double e = check_close(label, tok->grads + t->offset, want, n, TOL_GRAD);
    if (e > worst_grad) {
      worst_grad = e;
      worst_name = t->name;
    }
    free(want);
  }
  printf("%s: logits rel err %.2e, loss/recon/kl worst %.2e, worst gradient %.2e (%s), %zu "
         "tensors\n",
         dir, worst_logits, worst_loss, worst_grad, worst_name, tok->table.count);

  /* Public API on the same folder: tokens = argmax of the reference logits (the fixture keeps
   * its top-2 gaps far above fp32 noise), decode gives pixels in [0, 1]. */
  {
    const size_t P = tok->gh * tok->gw;
    int32_t *tokens = malloc(B * P * sizeof *tokens), *want_tok = malloc(B * P * sizeof *tokens);
    float *logits = malloc(nl * sizeof *logits), *rec = malloc(nx * sizeof *rec);
    CHECK(beit_tokenizer_encode(tok, tokens, logits, x, B, &err) == BEIT_STATUS_OK);
    beit_dvae_argmax(want_tok, want_logits, B, tok->V, P);
    long mismatched = 0;
    for (size_t i = 0; i < B * P; i++)
      mismatched += tokens[i] != want_tok[i];
    CHECK_MSG(mismatched == 0, "%s: %ld tokens differ from the reference argmax", dir,
              mismatched);
    snprintf(label, sizeof label, "%s: encode logits (batch chunks of 2)", dir);
    check_close(label, logits, want_logits, nl, TOL_LOGITS);
    CHECK(beit_tokenizer_decode(tok, rec, tokens, B, &err) == BEIT_STATUS_OK);
    int in_range = 1;
    for (size_t i = 0; i < nx; i++)
      in_range &= rec[i] >= 0.0f && rec[i] <= 1.0f;
    CHECK(in_range);
    tokens[0] = (int32_t)tok->V; /* out of the vocabulary: an error naming it */
    CHECK(beit_tokenizer_decode(tok, rec, tokens, B, &err) == BEIT_STATUS_USAGE);
    CHECK(strstr(err.message, "outside the vocabulary") != NULL);
    free(tokens), free(want_tok), free(logits), free(rec);
  }
done:
  free(x), free(noise), free(want_logits), free(scalars);
  beit_safetensors_close(g);
  beit_tokenizer_free(tok);
}

int main(int argc, char **argv)
{
  if (test_usage(argc, argv, 1, "DIR [DIR...]"))
    return 2;
  for (int i = 1; i < argc; i++)
    run_case(argv[i]);
  return test_summary("test_tokenizer_golden");
}
