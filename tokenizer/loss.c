/* The dVAE's relaxed ELB (DALL-E paper): Gumbel-softmax relaxation over the vocabulary axis,
 * KL of the encoder's categorical to the uniform prior, logit-Laplace or MSE reconstruction.
 * Tensors are (B, V, P) / (B, C, HW): the reduced axis is strided by P, so the loops keep a tile
 * of positions per pass and read contiguous rows. Sums that decide the loss are in double. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "dvae.h"
#include "isa.h"

#define TILE 64

/* exp for the softmax-shaped loops, branch-free so they vectorise (libm's expf is a scalar
 * call): 2^(x log2 e) split into 2^k (exponent bits) times 2^f, f in [-1/2, 1/2], by a degree-6
 * polynomial; relative error < 4e-6 on [-87, 88] (k is rounded with the 1.5 * 2^23 trick and
 * the bits are moved through a union: both keep the loop vectorisable). */
static inline float vexpf(float x)
{
  x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
  const float t = x * 1.44269504f;
  const float k = (t + 12582912.0f) - 12582912.0f, f = t - k;
  float p = 1.5353362e-4f;
  p = p * f + 1.3398874e-3f;
  p = p * f + 9.6184867e-3f;
  p = p * f + 5.5503406e-2f;
  p = p * f + 2.4022650e-1f;
  p = p * f + 6.9314718e-1f;
  p = p * f + 1.0f;
  union {
    int32_t i;
    float f;
  } scale;
  scale.i = ((int32_t)k + 127) << 23;
  return p * scale.f;
}

/* Tile bt of a (B, V, P) tensor cut into B x tiles tiles of TILE positions (the last one of a
 * row shorter): the offset of its first element, and in *np its number of positions. */
static inline size_t tile_base(size_t bt, size_t tiles, size_t V, size_t P, size_t *np)
{
  const size_t b = bt / tiles, p0 = (bt % tiles) * TILE;
  *np = P - p0 < TILE ? P - p0 : TILE;
  return b * V * P + p0;
}

BEIT_KERNEL_CLONES
void beit_dvae_gumbel_softmax_forward(float *soft, const float *logits, const float *noise,
                                      float tau, size_t B, size_t V, size_t P)
{
  const float inv = 1.0f / tau;
  const size_t tiles = (P + TILE - 1) / TILE;
#pragma omp parallel for schedule(static) if (B * V * P > 65536)
  for (size_t bt = 0; bt < B * tiles; bt++) {
    size_t np;
    const size_t base = tile_base(bt, tiles, V, P, &np);
    float mx[TILE], sum[TILE];
    for (size_t j = 0; j < np; j++)
      mx[j] = -INFINITY, sum[j] = 0.0f;
    for (size_t v = 0; v < V; v++) {
      const float *l = logits + base + v * P, *g = noise ? noise + base + v * P : NULL;
      float *s = soft + base + v * P;
      for (size_t j = 0; j < np; j++) {
        s[j] = (l[j] + (g ? g[j] : 0.0f)) * inv;
        mx[j] = s[j] > mx[j] ? s[j] : mx[j];
      }
    }
    for (size_t v = 0; v < V; v++) {
      float *s = soft + base + v * P;
      for (size_t j = 0; j < np; j++) {
        s[j] = vexpf(s[j] - mx[j]);
        sum[j] += s[j];
      }
    }
    for (size_t j = 0; j < np; j++)
      sum[j] = 1.0f / sum[j];
    for (size_t v = 0; v < V; v++) {
      float *s = soft + base + v * P;
      for (size_t j = 0; j < np; j++)
        s[j] *= sum[j];
    }
  }
}

BEIT_KERNEL_CLONES
void beit_dvae_gumbel_softmax_backward(float *dlogits, const float *dsoft, const float *soft,
                                       float tau, size_t B, size_t V, size_t P)
{
  const float inv = 1.0f / tau;
  const size_t tiles = (P + TILE - 1) / TILE;
#pragma omp parallel for schedule(static) if (B * V * P > 65536)
  for (size_t bt = 0; bt < B * tiles; bt++) {
    size_t np;
    const size_t base = tile_base(bt, tiles, V, P, &np);
    float dot[TILE];
    for (size_t j = 0; j < np; j++)
      dot[j] = 0.0f;
    for (size_t v = 0; v < V; v++) {
      const float *s = soft + base + v * P, *d = dsoft + base + v * P;
      for (size_t j = 0; j < np; j++)
        dot[j] += s[j] * d[j];
    }
    for (size_t v = 0; v < V; v++) {
      const float *s = soft + base + v * P, *d = dsoft + base + v * P;
      float *o = dlogits + base + v * P;
      for (size_t j = 0; j < np; j++)
        o[j] += inv * s[j] * (d[j] - dot[j]);
    }
  }
}

BEIT_KERNEL_CLONES
double beit_dvae_kl_uniform(float *dlogits, const float *logits, float dscale, size_t B,
                            size_t V, size_t P)
{
  const size_t tiles = (P + TILE - 1) / TILE;
  const double logV = log((double)V);
  double total = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : total) if (B * V * P > 65536)
  for (size_t bt = 0; bt < B * tiles; bt++) {
    size_t np;
    const size_t base = tile_base(bt, tiles, V, P, &np);
    /* per position: max, sum of exp and of exp * (l - max) over V; fp32 sums over one
     * position's V terms (all positive or bounded), fp64 across positions */
    float mx[TILE], sum[TILE], ent[TILE];
    for (size_t j = 0; j < np; j++)
      mx[j] = -INFINITY, sum[j] = ent[j] = 0.0f;
    for (size_t v = 0; v < V; v++) {
      const float *l = logits + base + v * P;
      for (size_t j = 0; j < np; j++)
        mx[j] = l[j] > mx[j] ? l[j] : mx[j];
    }
    for (size_t v = 0; v < V; v++) {
      const float *l = logits + base + v * P;
      for (size_t j = 0; j < np; j++) {
        const float z = l[j] - mx[j], e = vexpf(z);
        sum[j] += e;
        ent[j] += e * z;
      }
    }
    /* sum_v q log q = ent/sum - log(sum); KL = that + log V */
    double kl_tile = 0.0;
    float qlogq[TILE], lse[TILE];
    for (size_t j = 0; j < np; j++) {
      const double l = log((double)sum[j]), q = (double)ent[j] / sum[j] - l;
      lse[j] = (float)l;
      qlogq[j] = (float)q;
      kl_tile += q + logV;
    }
    total += kl_tile;
    if (!dlogits)
      continue;
    /* d/dl_v sum_u q_u log q_u = q_v (log q_v - sum_u q_u log q_u) */
    for (size_t v = 0; v < V; v++) {
      const float *l = logits + base + v * P;
      float *d = dlogits + base + v * P;
      for (size_t j = 0; j < np; j++) {
        const float logq = l[j] - mx[j] - lse[j];
        d[j] += dscale * vexpf(logq) * (logq - qlogq[j]);
      }
    }
  }
  return total;
}

static inline float unmap_pixel(float y)
{
  float x = (y - 0.1f) / 0.8f;
  return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x;
}

static inline float sigmoidf(float x)
{
  return 1.0f / (1.0f + expf(-x));
}

double beit_dvae_recon_loss(float *dout, double *abs_err, const float *out, const float *x,
                            enum dvae_recon kind, float dscale, size_t B, size_t C, size_t HW)
{
  const size_t out_ch = kind == DVAE_RECON_LOGIT_LAPLACE ? 2 * C : C;
  const double n = (double)(B * C * HW);
  const float g = (float)(dscale / n);
  const double log2 = log(2.0);
  double total = 0.0, abs_total = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : total, abs_total) if (B * C * HW > 16384)
  for (size_t bc = 0; bc < B * C; bc++) {
    const size_t b = bc / C, c = bc % C;
    const float *xs = x + bc * HW;
    const float *mu = out + (b * out_ch + c) * HW;
    float *dmu = dout ? dout + (b * out_ch + c) * HW : NULL;
    double part = 0.0, apart = 0.0;
    if (kind == DVAE_RECON_LOGIT_LAPLACE) {
      const float *lnb = mu + C * HW;
      float *dlnb = dout ? dmu + C * HW : NULL;
      for (size_t i = 0; i < HW; i++) {
        const float xi = xs[i], lx = logf(xi), l1x = log1pf(-xi);
        const float diff = (lx - l1x) - mu[i], e = expf(-lnb[i]), ad = fabsf(diff) * e;
        /* -log of the logit-Laplace density f(x | mu, b) = exp(-|logit x - mu| / b) /
         * (2 b x (1 - x)); float per pixel, summed in double */
        part += (double)(lnb[i] + (float)log2 + lx + l1x + ad);
        if (dmu) {
          dmu[i] += g * (diff > 0.0f ? -e : diff < 0.0f ? e : 0.0f);
          dlnb[i] += g * (1.0f - ad);
        }
        apart += fabsf(unmap_pixel(sigmoidf(mu[i])) - unmap_pixel(xi));
      }
    } else {
      for (size_t i = 0; i < HW; i++) {
        const float s = sigmoidf(mu[i]), r = s - xs[i];
        part += (double)r * r;
        if (dmu)
          dmu[i] += g * 2.0f * r * s * (1.0f - s);
        apart += fabsf(unmap_pixel(s) - unmap_pixel(xs[i]));
      }
    }
    total += part;
    abs_total += apart;
  }
  if (abs_err)
    *abs_err = abs_total / n;
  return total / n;
}

/* log for x > 0 normal, branch-free so the loop vectorises: x = m 2^e with m in [1/sqrt2,
 * sqrt2), log m = 2 atanh(s), s = (m-1)/(m+1), |s| < 0.172, series to s^9 (error < 1e-7). */
static inline float noise_logf(float x)
{
  union {
    float f;
    int32_t i;
  } u = {x};
  int32_t e = ((u.i >> 23) & 0xff) - 127;
  union {
    int32_t i;
    float f;
  } m = {(u.i & 0x007fffff) | 0x3f800000};
  const int32_t big = m.f > 1.41421356f;
  const float mm = big ? 0.5f * m.f : m.f;
  e += big;
  const float s = (mm - 1.0f) / (mm + 1.0f), s2 = s * s;
  const float p =
      s * (2.0f + s2 * (0.66666667f + s2 * (0.4f + s2 * (0.28571429f + s2 * 0.22222222f))));
  return (float)e * 0.69314718f + p;
}

BEIT_KERNEL_CLONES
void beit_dvae_gumbel_noise(float *g, size_t per_image, uint64_t seed, uint64_t epoch,
                            uint64_t index)
{
  struct beit_rng rng;
  beit_rng_seed(&rng, seed, epoch, index);
  /* u = (k + 1/2) 2^-24 from 24 random bits: in (0, 1), never 0 or 1; two per draw */
  size_t i = 0;
  for (; i + 1 < per_image; i += 2) {
    const uint64_t r = beit_rng_u64(&rng);
    g[i] = ((float)(r >> 40) + 0.5f) * 5.9604645e-8f;
    g[i + 1] = ((float)((r >> 16) & 0xffffffu) + 0.5f) * 5.9604645e-8f;
  }
  if (i < per_image)
    g[i] = ((float)(beit_rng_u64(&rng) >> 40) + 0.5f) * 5.9604645e-8f;
  for (i = 0; i < per_image; i++)
    g[i] = -noise_logf(-noise_logf(g[i]));
}

void beit_dvae_unmap_output(float *images, const float *out, size_t B, size_t C, size_t out_ch,
                            size_t HW)
{
#pragma omp parallel for schedule(static) if (B * C * HW > 65536)
  for (size_t bc = 0; bc < B * C; bc++) {
    const size_t b = bc / C, c = bc % C;
    const float *mu = out + (b * out_ch + c) * HW;
    float *o = images + bc * HW;
    for (size_t i = 0; i < HW; i++)
      o[i] = unmap_pixel(sigmoidf(mu[i]));
  }
}

enum dvae_recon beit_dvae_recon_kind(const struct beit_tokenizer *tok)
{
  return strcmp(tok->cfg.recon_loss, "mse") == 0 ? DVAE_RECON_MSE : DVAE_RECON_LOGIT_LAPLACE;
}
