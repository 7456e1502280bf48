/* Axis ranges, tick positions and tick labels: the arithmetic of the pictures, kept apart from
 * the drawing so that it is tested without cairo. Linear ticks are multiples of 1, 2, 2.5 or 5
 * times a power of ten; log ticks 1, 2, 5 times powers of ten. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "plot.h"

/* 1, 2, 2.5, 5 or 10 times a power of ten, the smallest at or above raw (> 0). */
static double nice_step(double raw)
{
  double p = pow(10, floor(log10(raw)));
  double f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * p;
}

void beit_plot_format_tick(char *buf, size_t size, double v, double step)
{
  if (fabs(v) < step * 1e-9) {
    snprintf(buf, size, "0");
    return;
  }
  int step_exp = (int)floor(log10(step) + 1e-9);
  double m = step / pow(10, step_exp);
  int extra = fabs(m - 2.5) < 1e-6; /* 2.5 steps need one more digit */
  int vexp = (int)floor(log10(fabs(v)) + 1e-9);
  if (step_exp - extra >= -3 && vexp < 6) { /* fixed decimals */
    int dec = step_exp - extra < 0 ? -(step_exp - extra) : 0;
    snprintf(buf, size, "%.*f", dec, v);
    return;
  }
  /* mantissa e exponent, the mantissa with the digits the step needs, trailing zeros dropped */
  int digits = vexp - step_exp + extra;
  if (digits < 0)
    digits = 0;
  if (digits > 6)
    digits = 6;
  char mant[32];
  snprintf(mant, sizeof mant, "%.*f", digits, v / pow(10, vexp));
  if (strchr(mant, '.')) {
    size_t n = strlen(mant);
    while (n > 0 && mant[n - 1] == '0')
      mant[--n] = '\0';
    if (n > 0 && mant[n - 1] == '.')
      mant[--n] = '\0';
  }
  snprintf(buf, size, "%se%d", mant, vexp);
}

void beit_plot_axis_linear(struct beit_plot_axis *a, double lo, double hi)
{
  memset(a, 0, sizeof *a);
  if (!isfinite(lo) || !isfinite(hi)) {
    lo = 0;
    hi = 1;
  }
  if (!(hi > lo)) { /* one value: a range around it */
    double d = lo != 0 ? fabs(lo) * 0.1 : 1;
    lo -= d;
    hi += d;
  }
  double step = nice_step((hi - lo) / 4);
  double first = floor(lo / step + 1e-9), last = ceil(hi / step - 1e-9);
  while (last - first + 1 > 7) { /* at most 7 ticks */
    step = nice_step(step * 1.01);
    first = floor(lo / step + 1e-9);
    last = ceil(hi / step - 1e-9);
  }
  a->lo = first * step;
  a->hi = last * step;
  for (double t = first; t <= last + 0.5 && a->nticks < BEIT_PLOT_MAX_TICKS; t += 1) {
    double v = t * step;
    a->ticks[a->nticks] = v;
    beit_plot_format_tick(a->labels[a->nticks], sizeof a->labels[0], v, step);
    a->nticks++;
  }
}

void beit_plot_axis_log(struct beit_plot_axis *a, double lo, double hi)
{
  memset(a, 0, sizeof *a);
  a->log = 1;
  double l0 = log10(lo), l1 = log10(hi), pad = 0.04 * (l1 - l0);
  a->lo = pow(10, l0 - pad);
  a->hi = pow(10, l1 + pad);
  double span = l1 - l0;
  static const double all[] = {1, 2, 5}, ones[] = {1};
  const double *ms = span <= 2.5 ? all : ones;
  size_t nm = span <= 2.5 ? 3 : 1;
  int every = span > 8 ? 2 : 1;
  for (int e = (int)floor(log10(a->lo)); e <= (int)ceil(log10(a->hi)); e++) {
    if (e % every)
      continue;
    for (size_t i = 0; i < nm && a->nticks < BEIT_PLOT_MAX_TICKS; i++) {
      double v = ms[i] * pow(10, e);
      if (v < a->lo * (1 - 1e-9) || v > a->hi * (1 + 1e-9))
        continue;
      a->ticks[a->nticks] = v;
      beit_plot_format_tick(a->labels[a->nticks], sizeof a->labels[0], v, pow(10, e));
      a->nticks++;
    }
  }
}

double beit_plot_axis_pos(const struct beit_plot_axis *a, double v)
{
  if (!isfinite(v))
    return NAN;
  if (a->log)
    return v > 0 ? (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo)) : NAN;
  return (v - a->lo) / (a->hi - a->lo);
}
