/* Gradient checks of every hand-written backward in core/ (STYLE.md 5, ggml test-backend-ops).
 *
 * For each op: loss = sum(out * R) with a fixed random R held in double; the analytic gradient
 * is the op's backward with dout = R; the numeric one is the central difference of the fp32
 * forward, the loss summed in double, dividing by the perturbation actually applied
 * ((float)(x + h) - (float)(x - h), not 2h). Error metric (scale-free):
 *   max |analytic - numeric| / max(|numeric|_inf, 1e-3),
 * with a per-op tolerance. Shapes are tiny and odd. Backwards accumulate, so the analytic
 * gradients start from a non-zero fill that is subtracted again. The naive twins are checked
 * the same way, since they are the oracle of test_kernels. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "rng.h"
#include "testing.h"

#define MAX_IN 4


/* One gradient-check case. fwd computes the loss from the current inputs (and saves what the
 * backward needs); bwd adds the analytic gradients for dout = R into grad[]. */
struct gc {
  const char *op;
  int naive;                 /* check the *_naive backward instead of the fast one */
  int nin;
  const char *in_name[MAX_IN];
  float *in[MAX_IN];
  size_t nel[MAX_IN];
  float *grad[MAX_IN];
  size_t nout;
  float *out, *dout;
  double *R;
  size_t s[6];               /* op sizes */
  float *save[3];            /* saved statistics */
  const void *aux[3];        /* fixed non-differentiable inputs */
  float fval;                /* a fixed scalar (smoothing) */
  double (*fwd)(struct gc *);
  void (*bwd)(struct gc *);
  double h, tol;
};

static void gc_input(struct gc *g, const char *name, size_t n, float scale)
{
  g->in_name[g->nin] = name;
  g->in[g->nin] = randn(n, scale);
  g->nel[g->nin] = n;
  g->grad[g->nin] = talloc(n * sizeof(float));
  g->nin++;
}

static void gc_output(struct gc *g, size_t n)
{
  g->nout = n;
  g->out = talloc(n * sizeof(float));
  g->dout = talloc(n * sizeof(float));
  g->R = talloc(n * sizeof(double));
  for (size_t i = 0; i < n; i++) {
    g->R[i] = beit_rng_normal(&test_rng);
    g->dout[i] = (float)g->R[i];
    g->R[i] = g->dout[i]; /* R exactly representable: dout == R */
  }
}

static double dot_R(const struct gc *g)
{
  double s = 0.0;
  for (size_t i = 0; i < g->nout; i++)
    s += (double)g->out[i] * g->R[i];
  return s;
}

static double worst_seen;

static void gc_run(struct gc *g)
{
  double *fill[MAX_IN];
  for (int k = 0; k < g->nin; k++) { /* a non-zero start checks accumulation too */
    fill[k] = talloc(g->nel[k] * sizeof(double));
    for (size_t i = 0; i < g->nel[k]; i++) {
      g->grad[k][i] = (float)beit_rng_normal(&test_rng);
      fill[k][i] = g->grad[k][i];
    }
  }
  g->fwd(g);
  g->bwd(g);
  double op_err = 0.0;
  for (int k = 0; k < g->nin; k++) {
    double maxn = 0.0, maxd = 0.0;
    size_t worst = 0;
    int finite = 1;
    for (size_t i = 0; i < g->nel[k]; i++) {
      float x = g->in[k][i];
      float xp = (float)(x + g->h), xm = (float)(x - g->h);
      g->in[k][i] = xp;
      double lp = g->fwd(g);
      g->in[k][i] = xm;
      double lm = g->fwd(g);
      g->in[k][i] = x;
      double num = (lp - lm) / ((double)xp - (double)xm);
      double ana = (double)g->grad[k][i] - fill[k][i];
      finite &= isfinite(num) && isfinite(ana);
      if (fabs(num) > maxn)
        maxn = fabs(num);
      if (fabs(ana - num) > maxd) {
        maxd = fabs(ana - num);
        worst = i;
      }
    }
    double err = maxd / fmax(maxn, 1e-3);
    if (!finite)
      err = INFINITY;
    if (err > op_err)
      op_err = err;
    printf("gradcheck %-26s %-6s d%-7s err %.2e (tol %.0e, h %.0e, |g|max %.2e)\n", g->op,
           g->naive ? "naive" : "fast", g->in_name[k], err, g->tol, g->h, maxn);
    CHECK_MSG(err <= g->tol, "%s (%s) d%s: err %.3e > tol %.1e at [%zu]", g->op,
              g->naive ? "naive" : "fast", g->in_name[k], err, g->tol, worst);
  }
  if (op_err > worst_seen && isfinite(op_err))
    worst_seen = op_err;
  g->fwd(g); /* leave saved statistics consistent with the inputs */
}

/* ---- linear: in[0] inp (N, C), in[1] weight (OC, C), in[2] bias (OC) ---- */
static double fwd_linear(struct gc *g)
{
  beit_linear_forward(g->out, g->in[0], g->in[1], g->nin > 2 ? g->in[2] : NULL, g->s[0], g->s[1],
                      g->s[2]);
  return dot_R(g);
}
static void bwd_linear(struct gc *g)
{
  float *db = g->nin > 2 ? g->grad[2] : NULL;
  if (g->naive)
    beit_linear_backward_naive(g->grad[0], g->grad[1], db, g->dout, g->in[0], g->in[1], g->s[0],
                               g->s[1], g->s[2]);
  else
    beit_linear_backward(g->grad[0], g->grad[1], db, g->dout, g->in[0], g->in[1], g->s[0],
                         g->s[1], g->s[2]);
}
static void check_linear(size_t N, size_t C, size_t OC, int bias, int naive)
{
  struct gc g = {.op = bias ? "linear" : "linear (no bias)", .naive = naive, .s = {N, C, OC},
                 .fwd = fwd_linear, .bwd = bwd_linear, .h = 1e-2, .tol = 1e-3};
  gc_input(&g, "inp", N * C, 1.0f);
  gc_input(&g, "weight", OC * C, 1.0f);
  if (bias)
    gc_input(&g, "bias", OC, 1.0f);
  gc_output(&g, N * OC);
  gc_run(&g);
}

/* ---- strided bias: out = x (fixed) + bias on C of ld columns; in[0] bias (C) ---- */
static double fwd_bias(struct gc *g)
{
  memcpy(g->out, g->aux[0], g->nout * sizeof(float));
  beit_bias_forward(g->out, g->in[0], g->s[0], g->s[1], g->s[2]);
  return dot_R(g);
}
static void bwd_bias(struct gc *g) { beit_bias_backward(g->grad[0], g->dout, g->s[0], g->s[1], g->s[2]); }
static void check_bias(size_t N, size_t C, size_t ld)
{
  struct gc g = {.op = "bias (strided)", .s = {N, C, ld}, .fwd = fwd_bias, .bwd = bwd_bias,
                 .h = 1e-2, .tol = 1e-3};
  gc_input(&g, "bias", C, 1.0f);
  gc_output(&g, N * ld);
  g.aux[0] = randn(N * ld, 1.0f);
  gc_run(&g);
}

/* ---- layernorm: in[0] inp (N, C), in[1] weight, in[2] bias; save mean, rstd ---- */
static double fwd_layernorm(struct gc *g)
{
  beit_layernorm_forward(g->out, g->save[0], g->save[1], g->in[0], g->in[1], g->in[2], 1e-5f,
                         g->s[0], g->s[1]);
  return dot_R(g);
}
static void bwd_layernorm(struct gc *g)
{
  if (g->naive)
    beit_layernorm_backward_naive(g->grad[0], g->grad[1], g->grad[2], g->dout, g->in[0], g->in[1],
                                  g->save[0], g->save[1], g->s[0], g->s[1]);
  else
    beit_layernorm_backward(g->grad[0], g->grad[1], g->grad[2], g->dout, g->in[0], g->in[1],
                            g->save[0], g->save[1], g->s[0], g->s[1]);
}
static void check_layernorm(size_t N, size_t C, int naive)
{
  struct gc g = {.op = "layernorm", .naive = naive, .s = {N, C}, .fwd = fwd_layernorm,
                 .bwd = bwd_layernorm, .h = 1e-2, .tol = 2e-3};
  gc_input(&g, "inp", N * C, 1.0f);
  gc_input(&g, "weight", C, 1.0f);
  gc_input(&g, "bias", C, 1.0f);
  gc_output(&g, N * C);
  g.save[0] = talloc(N * sizeof(float));
  g.save[1] = talloc(N * sizeof(float));
  gc_run(&g);
}

/* ---- gelu: in[0] x (n) ---- */
static double fwd_gelu(struct gc *g)
{
  beit_gelu_forward(g->out, g->in[0], g->nout);
  return dot_R(g);
}
static void bwd_gelu(struct gc *g)
{
  if (g->naive)
    beit_gelu_backward_naive(g->grad[0], g->dout, g->in[0], g->nout);
  else
    beit_gelu_backward(g->grad[0], g->dout, g->in[0], g->nout);
}
static void check_gelu(size_t n, int naive)
{
  struct gc g = {.op = "gelu", .naive = naive, .fwd = fwd_gelu, .bwd = bwd_gelu, .h = 1e-2,
                 .tol = 2e-3};
  gc_input(&g, "x", n, 2.0f);
  gc_output(&g, n);
  gc_run(&g);
}

/* ---- softmax: in[0] x (N, C) ---- */
static double fwd_softmax(struct gc *g)
{
  beit_softmax_forward(g->out, g->in[0], g->s[0], g->s[1]);
  return dot_R(g);
}
static void bwd_softmax(struct gc *g)
{
  if (g->naive)
    beit_softmax_backward_naive(g->grad[0], g->dout, g->out, g->s[0], g->s[1]);
  else
    beit_softmax_backward(g->grad[0], g->dout, g->out, g->s[0], g->s[1]);
}
static void check_softmax(size_t N, size_t C, int naive)
{
  struct gc g = {.op = "softmax", .naive = naive, .s = {N, C}, .fwd = fwd_softmax,
                 .bwd = bwd_softmax, .h = 1e-2, .tol = 2e-3};
  gc_input(&g, "x", N * C, 1.5f);
  gc_output(&g, N * C);
  gc_run(&g);
}

/* ---- attention: in[0] qkv (B, T, 3D), in[1] bias (nH, T, T); save probs, scratch ---- */
static double fwd_attention(struct gc *g)
{
  beit_attention_forward(g->out, g->save[0], g->in[0], g->nin > 1 ? g->in[1] : NULL, g->s[0],
                         g->s[1], g->s[2], g->s[3]);
  return dot_R(g);
}
static void bwd_attention(struct gc *g)
{
  float *db = g->nin > 1 ? g->grad[1] : NULL;
  if (g->naive)
    beit_attention_backward_naive(g->grad[0], db, g->dout, g->in[0], g->save[0], g->s[0],
                                  g->s[1], g->s[2], g->s[3]);
  else
    beit_attention_backward(g->grad[0], db, g->save[1], g->dout, g->in[0], g->save[0], g->s[0],
                            g->s[1], g->s[2], g->s[3]);
}
static void check_attention(size_t B, size_t T, size_t D, size_t nH, int bias, int naive)
{
  struct gc g = {.op = bias ? "attention" : "attention (no bias)", .naive = naive,
                 .s = {B, T, D, nH}, .fwd = fwd_attention, .bwd = bwd_attention, .h = 1e-2,
                 .tol = 2e-3};
  gc_input(&g, "qkv", B * T * 3 * D, 1.0f);
  if (bias)
    gc_input(&g, "bias", nH * T * T, 1.0f);
  gc_output(&g, B * T * D);
  g.save[0] = talloc(B * nH * T * T * sizeof(float));
  g.save[1] = talloc(beit_attention_scratch_floats(B, T, nH) * sizeof(float));
  gc_run(&g);
}

/* ---- residual: in[0] x, in[1] branch (B, T, D), in[2] gamma (D); aux[0] sample scales ---- */
static double fwd_residual(struct gc *g)
{
  beit_residual_forward(g->out, g->in[0], g->in[1], g->nin > 2 ? g->in[2] : NULL, g->aux[0],
                        g->s[0], g->s[1], g->s[2]);
  return dot_R(g);
}
static void bwd_residual(struct gc *g)
{
  float *gamma = g->nin > 2 ? g->in[2] : NULL, *dgamma = g->nin > 2 ? g->grad[2] : NULL;
  if (g->naive)
    beit_residual_backward_naive(g->grad[0], g->grad[1], dgamma, g->dout, g->in[1], gamma,
                                 g->aux[0], g->s[0], g->s[1], g->s[2]);
  else
    beit_residual_backward(g->grad[0], g->grad[1], dgamma, g->dout, g->in[1], gamma, g->aux[0],
                           g->s[0], g->s[1], g->s[2]);
}
static void check_residual(size_t B, size_t T, size_t D, int gamma, int scales, int naive)
{
  struct gc g = {.op = gamma ? (scales ? "residual (gamma, drop)" : "residual (gamma)")
                             : (scales ? "residual (drop)" : "residual"),
                 .naive = naive, .s = {B, T, D}, .fwd = fwd_residual, .bwd = bwd_residual,
                 .h = 1e-2, .tol = 1e-3};
  gc_input(&g, "x", B * T * D, 1.0f);
  gc_input(&g, "branch", B * T * D, 1.0f);
  if (gamma)
    gc_input(&g, "gamma", D, 0.5f);
  gc_output(&g, B * T * D);
  if (scales) {
    float *s = talloc(B * sizeof *s);
    for (size_t b = 0; b < B; b++) /* 1/keep, 0 (dropped), 1/keep, ... */
      s[b] = b % 2 ? 0.0f : 1.0f / 0.8f;
    g.aux[0] = s;
  }
  gc_run(&g);
}

/* ---- meanpool: in[0] inp (B, T, D) ---- */
static double fwd_meanpool(struct gc *g)
{
  beit_meanpool_forward(g->out, g->in[0], g->s[0], g->s[1], g->s[2]);
  return dot_R(g);
}
static void bwd_meanpool(struct gc *g)
{
  beit_meanpool_backward(g->grad[0], g->dout, g->s[0], g->s[1], g->s[2]);
}
static void check_meanpool(size_t B, size_t T, size_t D)
{
  struct gc g = {.op = "meanpool", .s = {B, T, D}, .fwd = fwd_meanpool, .bwd = bwd_meanpool,
                 .h = 1e-2, .tol = 1e-3};
  gc_input(&g, "inp", B * T * D, 1.0f);
  gc_output(&g, B * D);
  gc_run(&g);
}

/* ---- gather rows: in[0] inp (R, D); aux[0] rows (M), with repeats ---- */
static double fwd_gather(struct gc *g)
{
  beit_gather_rows_forward(g->out, g->in[0], g->aux[0], g->s[0], g->s[1]);
  return dot_R(g);
}
static void bwd_gather(struct gc *g)
{
  beit_gather_rows_backward(g->grad[0], g->dout, g->aux[0], g->s[0], g->s[1]);
}
static void check_gather(void)
{
  static const int32_t rows[7] = {3, 0, 3, 4, 1, 3, 0}; /* row 2 never, row 3 three times */
  struct gc g = {.op = "gather rows", .s = {7, 3}, .fwd = fwd_gather, .bwd = bwd_gather,
                 .h = 1e-2, .tol = 1e-3};
  g.aux[0] = rows;
  gc_input(&g, "inp", 5 * 3, 1.0f);
  gc_output(&g, 7 * 3);
  gc_run(&g);
}

/* ---- mask tokens: in[0] emb (B, N, D), in[1] token (D); aux[0] mask ---- */
static double fwd_mask(struct gc *g)
{
  memcpy(g->out, g->in[0], g->nout * sizeof(float));
  beit_mask_tokens_forward(g->out, g->in[1], g->aux[0], g->s[0], g->s[1], g->s[2]);
  return dot_R(g);
}
static void bwd_mask(struct gc *g)
{
  /* demb is transformed in place (masked rows zeroed); the encoder then adds it on */
  float *demb = talloc(g->nout * sizeof(float));
  memcpy(demb, g->dout, g->nout * sizeof(float));
  beit_mask_tokens_backward(demb, g->grad[1], g->aux[0], g->s[0], g->s[1], g->s[2]);
  for (size_t i = 0; i < g->nout; i++)
    g->grad[0][i] += demb[i];
}
static void check_mask(void)
{
  static const uint8_t mask[2 * 5] = {1, 0, 0, 1, 1, 0, 1, 0, 0, 0};
  struct gc g = {.op = "mask tokens", .s = {2, 5, 3}, .fwd = fwd_mask, .bwd = bwd_mask,
                 .h = 1e-2, .tol = 1e-3};
  g.aux[0] = mask;
  gc_input(&g, "emb", 2 * 5 * 3, 1.0f);
  gc_input(&g, "token", 3, 1.0f);
  gc_output(&g, 2 * 5 * 3);
  gc_run(&g);
}

/* ---- cross-entropy: in[0] logits (M, V); aux[0] targets; loss scaled by R[0] ---- */
static double fwd_ce(struct gc *g)
{
  double loss = beit_cross_entropy_forward(g->save[0], NULL, g->in[0], g->aux[0], g->fval,
                                           g->s[0], g->s[1]);
  return loss * g->R[0];
}
static void bwd_ce(struct gc *g)
{
  beit_cross_entropy_backward(g->grad[0], g->save[0], g->aux[0], g->fval, g->dout[0], g->s[0],
                              g->s[1]);
}
static void check_ce(float smoothing)
{
  static const int32_t targets[5] = {2, 0, 6, 6, 3};
  struct gc g = {.op = smoothing > 0 ? "cross-entropy (s=0.1)" : "cross-entropy (s=0)",
                 .s = {5, 7}, .fval = smoothing, .fwd = fwd_ce, .bwd = bwd_ce, .h = 1e-2,
                 .tol = 2e-3};
  g.aux[0] = targets;
  gc_input(&g, "logits", 5 * 7, 2.0f);
  gc_output(&g, 1);
  g.save[0] = talloc(5 * 7 * sizeof(float));
  gc_run(&g);
}

/* ---- BCE: in[0] logits (N, C); aux[0] targets in [0, 1]; loss scaled by R[0] ---- */
static double fwd_bce(struct gc *g)
{
  return beit_bce_forward(g->in[0], g->aux[0], g->s[0], g->s[1]) * g->R[0];
}
static void bwd_bce(struct gc *g)
{
  beit_bce_backward(g->grad[0], g->in[0], g->aux[0], g->dout[0], g->s[0], g->s[1]);
}
static void check_bce(void)
{
  static const float targets[3 * 5] = {0, 1, 1, 0, 0.3f, 1, 0, 0, 0.5f, 1, 0, 1, 0, 1, 0.9f};
  struct gc g = {.op = "bce", .s = {3, 5}, .fwd = fwd_bce, .bwd = bwd_bce, .h = 1e-2,
                 .tol = 2e-3};
  g.aux[0] = targets;
  gc_input(&g, "logits", 3 * 5, 3.0f);
  gc_output(&g, 1);
  gc_run(&g);
}

/* ---- relpos: in[0] table (R, nH); aux[0] index (T, T) ---- */
static double fwd_relpos(struct gc *g)
{
  beit_relpos_forward(g->out, g->in[0], g->aux[0], g->s[0], g->s[1]);
  return dot_R(g);
}
static void bwd_relpos(struct gc *g)
{
  beit_relpos_backward(g->grad[0], g->dout, g->aux[0], g->s[0], g->s[1]);
}
static void check_relpos(size_t Wh, size_t Ww, size_t nH)
{
  size_t T = Wh * Ww + 1, R = (2 * Wh - 1) * (2 * Ww - 1) + 3;
  int32_t *idx = talloc(T * T * sizeof *idx);
  beit_relpos_index(idx, Wh, Ww);
  struct gc g = {.op = "relpos", .s = {T, nH}, .fwd = fwd_relpos, .bwd = bwd_relpos, .h = 1e-2,
                 .tol = 1e-3};
  g.aux[0] = idx;
  gc_input(&g, "table", R * nH, 1.0f);
  gc_output(&g, nH * T * T);
  gc_run(&g);
}

int main(void)
{
  beit_rng_seed(&test_rng, 4321, 0, 0);
  for (int naive = 0; naive <= 1; naive++) {
    check_linear(3, 5, 4, 1, naive);
    check_linear(2, 3, 5, 0, naive);
    check_layernorm(3, 7, naive);
    check_gelu(13, naive);
    check_softmax(3, 7, naive);
    check_attention(2, 5, 6, 2, 1, naive);
    check_attention(1, 7, 15, 3, 1, naive);
    check_attention(2, 5, 6, 2, 0, naive);
    check_residual(3, 2, 5, 1, 1, naive);
    check_residual(2, 3, 5, 1, 0, naive);
    check_residual(3, 2, 5, 0, 1, naive);
  }
  check_bias(3, 5, 11);
  check_meanpool(2, 4, 3);
  check_gather();
  check_mask();
  check_ce(0.0f);
  check_ce(0.1f);
  check_bce();
  check_relpos(2, 3, 2);
  printf("gradcheck worst error over all ops: %.2e\n", worst_seen);

  tfree_all();
  return test_summary("test_gradcheck");
}
