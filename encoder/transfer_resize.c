/* Resolution changes of position information (spec 5, loading steps 4 and 5): unilm's geometric
 * resize of relative position bias tables with a not-a-knot cubic spline, and torch's bicubic
 * resize of absolute position embeddings. Everything in double; tables are small. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "transfer.h"

#define RPB_EXTRA 3 /* cls->token, token->cls, cls->cls rows after the offset grid */

double beit_rpb_geometric_q(size_t src_side, size_t dst_side)
{
  /* unilm run_class_finetuning: geometric_progression(1, q, src // 2) against dst // 2 */
  double left = 1.01, right = 1.5, q = 0.0;
  size_t n = src_side / 2;
  double target = (double)(dst_side / 2);
  while (right - left > 1e-6) {
    q = (left + right) / 2.0;
    double gp = (1.0 - pow(q, (double)n)) / (1.0 - q);
    if (gp > target)
      right = q;
    else
      left = q;
  }
  return q;
}

/* Solve A X = B in place (A n x n, B n x k, row-major) by Gaussian elimination with partial
 * pivoting; B receives X. Returns 0 when A is singular. */
static int solve(double *A, double *B, size_t n, size_t k)
{
  for (size_t c = 0; c < n; c++) {
    size_t p = c;
    for (size_t r = c + 1; r < n; r++)
      if (fabs(A[r * n + c]) > fabs(A[p * n + c]))
        p = r;
    if (fabs(A[p * n + c]) < 1e-300)
      return 0;
    if (p != c) {
      for (size_t j = 0; j < n; j++) {
        double t = A[c * n + j];
        A[c * n + j] = A[p * n + j];
        A[p * n + j] = t;
      }
      for (size_t j = 0; j < k; j++) {
        double t = B[c * k + j];
        B[c * k + j] = B[p * k + j];
        B[p * k + j] = t;
      }
    }
    for (size_t r = c + 1; r < n; r++) {
      double f = A[r * n + c] / A[c * n + c];
      if (f == 0.0)
        continue;
      for (size_t j = c; j < n; j++)
        A[r * n + j] -= f * A[c * n + j];
      for (size_t j = 0; j < k; j++)
        B[r * k + j] -= f * B[c * k + j];
    }
  }
  for (size_t c = n; c-- > 0;) {
    for (size_t j = 0; j < k; j++) {
      double s = B[c * k + j];
      for (size_t r = c + 1; r < n; r++)
        s -= A[c * n + r] * B[r * k + j];
      B[c * k + j] = s / A[c * n + c];
    }
  }
  return 1;
}

static double clampd(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Interval i with x[i] <= t <= x[i+1] (t already clamped). */
static size_t interval(const double *x, size_t m, double t)
{
  size_t i = 0;
  while (i + 2 < m && t > x[i + 1])
    i++;
  return i;
}

enum beit_status beit_spline_weights(double *out, const double *x, size_t m, const double *t,
                                     size_t nt, struct beit_error *err)
{
  memset(out, 0, nt * m * sizeof *out);
  for (size_t i = 1; i < m; i++)
    if (!(x[i] > x[i - 1]))
      return beit_error_set(err, BEIT_STATUS_USAGE, "spline: knots not strictly increasing");
  if (m == 0)
    return beit_error_set(err, BEIT_STATUS_USAGE, "spline: no knots");
  if (m <= 3) { /* the interpolating polynomial of degree m-1 (Lagrange form) */
    for (size_t j = 0; j < nt; j++) {
      double tj = clampd(t[j], x[0], x[m - 1]);
      for (size_t i = 0; i < m; i++) {
        double w = 1.0;
        for (size_t k = 0; k < m; k++)
          if (k != i)
            w *= (tj - x[k]) / (x[i] - x[k]);
        out[j * m + i] = w;
      }
    }
    return BEIT_STATUS_OK;
  }
  /* Second derivatives M = S y: A M = R y with interior continuity rows and not-a-knot rows
   * (third derivative continuous at x_1 and x_{m-2}); solved for every unit y at once. */
  double *A = calloc(m * m, sizeof *A), *S = calloc(m * m, sizeof *S);
  double *h = malloc((m - 1) * sizeof *h);
  if (!A || !S || !h) {
    free(A);
    free(S);
    free(h);
    return beit_error_set(err, BEIT_STATUS_NOMEM, "spline: out of memory");
  }
  for (size_t i = 0; i + 1 < m; i++)
    h[i] = x[i + 1] - x[i];
  A[0 * m + 0] = h[1];
  A[0 * m + 1] = -(h[0] + h[1]);
  A[0 * m + 2] = h[0];
  for (size_t k = 1; k + 1 < m; k++) {
    A[k * m + k - 1] = h[k - 1];
    A[k * m + k] = 2.0 * (h[k - 1] + h[k]);
    A[k * m + k + 1] = h[k];
    S[k * m + k + 1] = 6.0 / h[k];
    S[k * m + k] = -6.0 / h[k] - 6.0 / h[k - 1];
    S[k * m + k - 1] = 6.0 / h[k - 1];
  }
  size_t e = m - 1;
  A[e * m + e - 2] = h[e - 1];
  A[e * m + e - 1] = -(h[e - 2] + h[e - 1]);
  A[e * m + e] = h[e - 2];
  int ok = solve(A, S, m, m);
  if (ok) {
    for (size_t j = 0; j < nt; j++) {
      double tj = clampd(t[j], x[0], x[m - 1]);
      size_t i = interval(x, m, tj);
      double hi = h[i], a = x[i + 1] - tj, b = tj - x[i];
      double ca = a * a * a / (6.0 * hi) - a * hi / 6.0; /* coefficient of M_i */
      double cb = b * b * b / (6.0 * hi) - b * hi / 6.0; /* coefficient of M_{i+1} */
      double *w = out + j * m;
      for (size_t k = 0; k < m; k++)
        w[k] = ca * S[i * m + k] + cb * S[(i + 1) * m + k];
      w[i] += a / hi;
      w[i + 1] += b / hi;
    }
  }
  free(A);
  free(S);
  free(h);
  return ok ? BEIT_STATUS_OK
            : beit_error_set(err, BEIT_STATUS_NUMERIC, "spline: singular system (%zu knots)", m);
}

/* Side of the offset grid of a table with rows = side^2 + 3, or 0 when it is not square. */
static size_t table_side(size_t rows)
{
  if (rows < RPB_EXTRA + 1)
    return 0;
  size_t n = rows - RPB_EXTRA, s = (size_t)llround(sqrt((double)n));
  return s * s == n ? s : 0;
}

enum beit_status beit_rpb_resize(float *dst, size_t dst_rows, const float *src, size_t src_rows,
                                 size_t nH, double *q_out, struct beit_error *err)
{
  size_t ss = table_side(src_rows), ds = table_side(dst_rows);
  if (q_out)
    *q_out = 0.0;
  if (!ss || !ds)
    return beit_error_set(err, BEIT_STATUS_UNSUPPORTED, "relative position bias: %zu -> %zu "
                          "rows is not a square offset grid (+3) on both sides", src_rows,
                          dst_rows);
  if (ss == ds) {
    memcpy(dst, src, dst_rows * nH * sizeof *dst);
    return BEIT_STATUS_OK;
  }
  double q = beit_rpb_geometric_q(ss, ds);
  size_t n = ss / 2, half = ds / 2;
  double *x = malloc(ss * sizeof *x), *t = malloc(ds * sizeof *t);
  double *W = malloc(ds * ss * sizeof *W), *tmp = malloc(ss * ds * sizeof *tmp);
  enum beit_status st = BEIT_STATUS_OK;
  if (!x || !t || !W || !tmp) {
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "relative position bias resize: out of memory");
    goto done;
  }
  /* source coordinates [-d_n .. -d_1, 0, d_1 .. d_n]; d_1 = 1, d_{k+1} = d_k + q^k */
  double d = 1.0;
  for (size_t k = 0; k < n; k++) {
    x[n + 1 + k] = d;
    x[n - 1 - k] = -d;
    d += pow(q, (double)(k + 1));
  }
  x[n] = 0.0;
  for (size_t j = 0; j < ds; j++)
    t[j] = (double)j - (double)half;
  if ((st = beit_spline_weights(W, x, ss, t, ds, err)))
    goto done;
  for (size_t h = 0; h < nH; h++) {
    /* tmp = Z W^T (ss x ds), then dst = W tmp; Z[a][b] = src[(a ss + b), h] */
    for (size_t a = 0; a < ss; a++)
      for (size_t c = 0; c < ds; c++) {
        double s = 0.0;
        for (size_t b = 0; b < ss; b++)
          s += (double)src[(a * ss + b) * nH + h] * W[c * ss + b];
        tmp[a * ds + c] = s;
      }
    for (size_t r = 0; r < ds; r++)
      for (size_t c = 0; c < ds; c++) {
        double s = 0.0;
        for (size_t a = 0; a < ss; a++)
          s += W[r * ss + a] * tmp[a * ds + c];
        dst[(r * ds + c) * nH + h] = (float)s;
      }
  }
  for (size_t e = 0; e < RPB_EXTRA; e++)
    memcpy(dst + (ds * ds + e) * nH, src + (ss * ss + e) * nH, nH * sizeof *dst);
  if (q_out)
    *q_out = q;
done:
  free(x);
  free(t);
  free(W);
  free(tmp);
  return st;
}

/* torch upsample_bicubic2d's cubic convolution (A = -0.75) */
static double cubic_near(double v, double A) { return ((A + 2.0) * v - (A + 3.0)) * v * v + 1.0; }
static double cubic_far(double v, double A) { return ((A * v - 5.0 * A) * v + 8.0 * A) * v - 4.0 * A; }

/* Weights (out, 4) and first source index (out) of a 1-D bicubic resize in -> out. */
static void bicubic_taps(double *w, long *first, size_t in, size_t out)
{
  const double A = -0.75, scale = (double)in / (double)out;
  for (size_t o = 0; o < out; o++) {
    double s = scale * ((double)o + 0.5) - 0.5; /* align_corners=False, no clamp for cubic */
    double f = floor(s), v = s - f;
    first[o] = (long)f - 1;
    w[o * 4 + 0] = cubic_far(v + 1.0, A);
    w[o * 4 + 1] = cubic_near(v, A);
    w[o * 4 + 2] = cubic_near(1.0 - v, A);
    w[o * 4 + 3] = cubic_far(2.0 - v, A);
  }
}

static size_t clampi(long i, size_t n) { return i < 0 ? 0 : (size_t)i >= n ? n - 1 : (size_t)i; }

void beit_pos_embed_resize(float *dst, size_t gd, const float *src, size_t gs, size_t D)
{
  memcpy(dst, src, D * sizeof *dst); /* cls row */
  double w[4 * 1024];
  long first[1024];
  if (gd > 1024 || gs == 0)
    return; /* far beyond any grid in use; callers check sizes */
  bicubic_taps(w, first, gs, gd);
  const float *grid = src + D;
  float *out = dst + D;
  for (size_t r = 0; r < gd; r++)
    for (size_t c = 0; c < gd; c++)
      for (size_t k = 0; k < D; k++) {
        double s = 0.0;
        for (int a = 0; a < 4; a++) {
          size_t y = clampi(first[r] + a, gs);
          double row = 0.0;
          for (int b = 0; b < 4; b++)
            row += w[c * 4 + b] * (double)grid[(y * gs + clampi(first[c] + b, gs)) * D + k];
          s += w[r * 4 + a] * row;
        }
        out[(r * gd + c) * D + k] = (float)s;
      }
}
