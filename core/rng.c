/* xoshiro256** seeded through splitmix64, plus the distributions the framework needs. */
#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
  uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void beit_rng_seed(struct beit_rng *rng, uint64_t seed, uint64_t a, uint64_t b)
{
  uint64_t x = seed;
  uint64_t h = splitmix64(&x) ^ a;
  h = splitmix64(&h) ^ b;
  for (int i = 0; i < 4; i++)
    rng->s[i] = splitmix64(&h);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t beit_rng_u64(struct beit_rng *rng)
{
  uint64_t *s = rng->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double beit_rng_uniform(struct beit_rng *rng)
{
  return (double)(beit_rng_u64(rng) >> 11) * 0x1.0p-53;
}

int64_t beit_rng_int(struct beit_rng *rng, int64_t lo, int64_t hi)
{
  uint64_t span = (uint64_t)(hi - lo) + 1;
  if (span == 0)
    return (int64_t)beit_rng_u64(rng);
  /* Rejection sampling: unbiased for any span. */
  uint64_t limit = UINT64_MAX - UINT64_MAX % span;
  uint64_t r;
  do
    r = beit_rng_u64(rng);
  while (r >= limit);
  return lo + (int64_t)(r % span);
}

double beit_rng_normal(struct beit_rng *rng)
{
  double u1 = 1.0 - beit_rng_uniform(rng); /* (0, 1]: log() stays finite */
  double u2 = beit_rng_uniform(rng);
  return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

static double normal_cdf(double x) { return 0.5 * (1.0 + erf(x / M_SQRT2)); }

/* Inverse of erf by Newton steps from a rational start; accurate to ~1e-12 on (-1, 1). */
static double erfinv(double y)
{
  double w = -log((1.0 - y) * (1.0 + y)), x;
  if (w < 5.0) {
    w -= 2.5;
    x = 2.81022636e-08;
    x = 3.43273939e-07 + x * w;
    x = -3.5233877e-06 + x * w;
    x = -4.39150654e-06 + x * w;
    x = 0.00021858087 + x * w;
    x = -0.00125372503 + x * w;
    x = -0.00417768164 + x * w;
    x = 0.246640727 + x * w;
    x = 1.50140941 + x * w;
  } else {
    w = sqrt(w) - 3.0;
    x = -0.000200214257;
    x = 0.000100950558 + x * w;
    x = 0.00134934322 + x * w;
    x = -0.00367342844 + x * w;
    x = 0.00573950773 + x * w;
    x = -0.0076224613 + x * w;
    x = 0.00943887047 + x * w;
    x = 1.00167406 + x * w;
    x = 2.83297682 + x * w;
  }
  x *= y;
  for (int i = 0; i < 2; i++) /* Newton refinement */
    x -= (erf(x) - y) / (2.0 / sqrt(M_PI) * exp(-x * x));
  return x;
}

/* A normal(0, std) sample truncated to [lo, hi] by inverting the CDF between l = cdf(lo) and
 * u = cdf(hi). */
static double trunc_normal_between(struct beit_rng *rng, double std, double l, double u, double lo,
                                   double hi)
{
  double p = l + (u - l) * beit_rng_uniform(rng);
  double t = 2.0 * p - 1.0;
  if (t <= -1.0)
    t = -1.0 + 1e-16;
  if (t >= 1.0)
    t = 1.0 - 1e-16;
  double x = std * M_SQRT2 * erfinv(t);
  return x < lo ? lo : (x > hi ? hi : x);
}

void beit_rng_fill_trunc_normal(struct beit_rng *rng, float *dst, size_t n, double std, double lo,
                                double hi)
{
  double l = normal_cdf(lo / std), u = normal_cdf(hi / std); /* once per tensor, not per value */
  for (size_t i = 0; i < n; i++)
    dst[i] = (float)trunc_normal_between(rng, std, l, u, lo, hi);
}
