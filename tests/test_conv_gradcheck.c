/* Gradient checks of core/conv.h (STYLE.md 5): every backward against central differences of
 * the fast forward, on tiny odd shapes, with a scale-free error metric (max |analytic - numeric|
 * over max |numeric|) and a per-op tolerance.
 *
 * The scalar is L = sum_i r_i * out_i with fixed random r, accumulated in double. Every op here
 * is piecewise linear, so a central difference is exact up to fp32 rounding of the outputs;
 * eps = 1e-2 keeps that rounding ~1e-5 relative. A coordinate whose +-eps evaluations change an
 * activation pattern (a ReLU or a max-pool choice flips) is a kink, not a test of the gradient,
 * and is skipped; the count of skipped coordinates is printed and must stay small. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "conv.h"
#include "rng.h"
#include "testing.h"

#define EPS 1e-3
#define TOL 2e-3

static struct beit_rng rng;

static float *randn_owned(size_t n, float scale)
{
  float *p = malloc((n ? n : 1) * sizeof *p);
  if (!p)
    exit(2);
  for (size_t i = 0; i < n; i++)
    p[i] = scale * (float)beit_rng_normal(&rng);
  return p;
}

static float *zeros_owned(size_t n)
{
  float *p = calloc(n ? n : 1, sizeof *p);
  if (!p)
    exit(2);
  return p;
}

/* The op under test: fills out from its current parameters. */
struct op {
  void (*forward)(struct op *op, float *out);
  size_t nout;
  void *ctx;
  int max_kinks; /* detect kinks by one-sided slopes (max-pool) */
};

static double weighted_sum(const float *out, const float *r, size_t n)
{
  double s = 0.0;
  for (size_t i = 0; i < n; i++)
    s += (double)r[i] * out[i];
  return s;
}

/* Numeric gradient of L over the n floats at x; compares with analytic. Returns the error. */
static double gradcheck(const char *label, struct op *op, const float *r, float *x, size_t n,
                        const float *analytic)
{
  float *num = zeros_owned(n), *ana = zeros_owned(n);
  float *base = zeros_owned(op->nout), *op_ = zeros_owned(op->nout), *om = zeros_owned(op->nout);
  op->forward(op, base);
  size_t skipped = 0, used = 0;
  for (size_t i = 0; i < n; i++) {
    const float keep = x[i];
    x[i] = keep + (float)EPS;
    op->forward(op, op_);
    x[i] = keep - (float)EPS;
    op->forward(op, om);
    x[i] = keep;
    const double hp = (double)(keep + (float)EPS) - keep, hm = (double)keep - (keep - (float)EPS);
    /* pattern change: an exact zero (ReLU) appearing or disappearing around the base point */
    int kink = 0;
    for (size_t j = 0; j < op->nout && !kink; j++)
      kink = ((op_[j] == 0.0f) != (base[j] == 0.0f)) || ((om[j] == 0.0f) != (base[j] == 0.0f));
    /* a max-pool choice flipping shows as one-sided slopes that disagree */
    const double lp = weighted_sum(op_, r, op->nout), l0 = weighted_sum(base, r, op->nout);
    const double lm = weighted_sum(om, r, op->nout);
    const double sp = (lp - l0) / hp, sm = (l0 - lm) / hm;
    if (op->max_kinks && fabs(sp - sm) > 1e-2 * (fabs(sp) + fabs(sm) + 1e-2))
      kink = 1;
    if (kink) {
      skipped++;
      continue;
    }
    num[used] = (float)((lp - lm) / (hp + hm));
    ana[used] = analytic[i];
    used++;
  }
  char l2[200];
  snprintf(l2, sizeof l2, "gradcheck %s (%zu of %zu coordinates, %zu kinks skipped)", label, used,
           n, skipped);
  double e = check_close(l2, ana, num, used, TOL);
  CHECK_MSG(skipped * 5 <= n, "%s: too many kinks skipped (%zu of %zu)", label, skipped, n);
  printf("%-72s rel err %.2e\n", l2, e);
  free(num);
  free(ana);
  free(base);
  free(op_);
  free(om);
  return e;
}

/* ---- conv ---- */
struct conv_case {
  size_t B, C, H, W, OC, K;
  unsigned flags;
  float scale;
  int accumulate, nthreads;
  float *inp, *w, *bias, *out0, *scratch;
};

static void conv_fwd(struct op *op, float *out)
{
  struct conv_case *c = op->ctx;
  memcpy(out, c->out0, op->nout * sizeof *out);
  beit_conv2d_forward(out, c->scratch, c->inp, c->w, c->bias, c->scale, c->accumulate, c->flags,
                      c->B, c->C, c->H, c->W, c->OC, c->K, c->nthreads);
}

static double check_conv(size_t B, size_t C, size_t H, size_t W, size_t OC, size_t K,
                         unsigned flags, float scale, int accumulate, int nthreads)
{
  struct conv_case c = {B, C, H, W, OC, K, flags, scale, accumulate, nthreads,
                        NULL, NULL, NULL, NULL, NULL};
  const size_t ni = B * C * H * W, no = B * OC * H * W, nw = OC * C * K * K;
  c.inp = randn_owned(ni, 1.0f);
  c.w = randn_owned(nw, 0.4f);
  c.bias = randn_owned(OC, 0.3f);
  c.out0 = randn_owned(no, accumulate ? 1.0f : 0.0f);
  c.scratch = zeros_owned(beit_conv2d_scratch_floats(C, H, W, OC, K, nthreads));
  struct op op = {conv_fwd, no, &c, 0};
  float *r = randn_owned(no, 1.0f), *out = zeros_owned(no);
  conv_fwd(&op, out);
  float *dout = zeros_owned(no);
  memcpy(dout, r, no * sizeof *r);
  if (flags & BEIT_CONV_RELU_OUTPUT)
    beit_relu_mask(dout, out, no);
  float *dinp = zeros_owned(ni), *dw = zeros_owned(nw), *db = zeros_owned(OC);
  float *bs = zeros_owned(beit_conv2d_backward_scratch_floats(C, H, W, OC, K, nthreads));
  beit_conv2d_backward(dinp, dw, db, bs, dout, c.inp, c.w, scale, flags & BEIT_CONV_RELU_INPUT, B,
                       C, H, W, OC, K, nthreads);
  char label[160];
  double e = 0.0, x;
  snprintf(label, sizeof label, "conv K%zu flags%u acc%d t%d dinp", K, flags, accumulate,
           nthreads);
  x = gradcheck(label, &op, r, c.inp, ni, dinp);
  e = x > e ? x : e;
  snprintf(label, sizeof label, "conv K%zu flags%u acc%d t%d dweight", K, flags, accumulate,
           nthreads);
  x = gradcheck(label, &op, r, c.w, nw, dw);
  e = x > e ? x : e;
  snprintf(label, sizeof label, "conv K%zu flags%u acc%d t%d dbias", K, flags, accumulate,
           nthreads);
  x = gradcheck(label, &op, r, c.bias, OC, db);
  e = x > e ? x : e;
  free(c.inp), free(c.w), free(c.bias), free(c.out0), free(c.scratch);
  free(r), free(out), free(dout), free(dinp), free(dw), free(db), free(bs);
  return e;
}

/* ---- pool, upsample, relu ---- */
struct unary_case {
  int kind; /* 0 maxpool, 1 upsample, 2 relu */
  size_t N, H, W;
  float *inp;
};

static void unary_fwd(struct op *op, float *out)
{
  struct unary_case *u = op->ctx;
  if (u->kind == 0)
    beit_maxpool2_forward(out, u->inp, u->N, u->H, u->W);
  else if (u->kind == 1)
    beit_upsample2_forward(out, u->inp, u->N, u->H, u->W);
  else
    beit_relu_forward(out, u->inp, u->N * u->H * u->W);
}

static double check_unary(int kind, size_t N, size_t H, size_t W)
{
  static const char *names[3] = {"maxpool2", "upsample2", "relu"};
  struct unary_case u = {kind, N, H, W, NULL};
  const size_t ni = N * H * W;
  const size_t no = kind == 0 ? N * (H / 2) * (W / 2) : kind == 1 ? 4 * ni : ni;
  u.inp = randn_owned(ni, 1.0f);
  struct op op = {unary_fwd, no, &u, kind == 0};
  float *r = randn_owned(no, 1.0f), *out = zeros_owned(no), *d = zeros_owned(ni);
  unary_fwd(&op, out);
  if (kind == 0)
    beit_maxpool2_backward(d, r, u.inp, N, H, W);
  else if (kind == 1)
    beit_upsample2_backward(d, r, N, H, W);
  else
    beit_relu_backward(d, r, out, ni);
  double e = gradcheck(names[kind], &op, r, u.inp, ni, d);
  free(u.inp), free(r), free(out), free(d);
  return e;
}

int main(void)
{
  beit_rng_seed(&rng, 7, 0, 0);
  double worst = 0.0, e;
  const unsigned flags[4] = {0, BEIT_CONV_RELU_INPUT, BEIT_CONV_RELU_OUTPUT,
                             BEIT_CONV_RELU_INPUT | BEIT_CONV_RELU_OUTPUT};
  for (int f = 0; f < 4; f++) {
    e = check_conv(2, 3, 5, 7, 4, 3, flags[f], 0.7f, f & 1, 2);
    worst = e > worst ? e : worst;
    e = check_conv(2, 5, 3, 5, 3, 1, flags[f], 1.0f, !(f & 1), 1);
    worst = e > worst ? e : worst;
  }
  e = check_conv(1, 2, 7, 5, 3, 7, BEIT_CONV_RELU_INPUT, 1.0f, 0, 2);
  worst = e > worst ? e : worst;
  e = check_conv(3, 2, 4, 3, 2, 5, 0, 0.3f, 1, 2);
  worst = e > worst ? e : worst;
  for (int k = 0; k < 3; k++) {
    e = check_unary(k, 3, 5, 7);
    worst = e > worst ? e : worst;
    e = check_unary(k, 2, 6, 4);
    worst = e > worst ? e : worst;
  }
  printf("test_conv_gradcheck: worst relative error %.3e (tolerance %.0e)\n", worst, TOL);
  return test_summary("test_conv_gradcheck");
}
