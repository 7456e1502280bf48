/* The dVAE's relaxed ELB (beit-spec.md 9.4): Gumbel-softmax relaxation over the vocabulary axis,
 * KL of the encoder's categorical to the uniform prior, logit-Laplace or MSE reconstruction.
 * Tensors are (B, V, P) / (B, C, HW): the reduced axis is strided by P, so the loops keep a tile
 * of positions per pass and read contiguous rows. Sums that decide the loss are in double. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "dvae.h"

#define TILE 64

void beit_dvae_gumbel_softmax_forward(float *soft, const float *logits, const float *noise,
                                      float tau, size_t B, size_t V, size_t P)
{
  const float inv = 1.0f / tau;
  const size_t tiles = (P + TILE - 1) / TILE;
#pragma omp parallel for schedule(static) if (B * V * P > 65536)
  for (size_t bt = 0; bt < B * tiles; bt++) {
    const size_t b = bt / tiles, p0 = (bt % tiles) * TILE;
    const size_t np = P - p0 < TILE ? P - p0 : TILE;
    const size_t base = b * V * P + p0;
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
        s[j] = expf(s[j] - mx[j]);
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

void beit_dvae_gumbel_softmax_backward(float *dlogits, const float *dsoft, const float *soft,
                                       float tau, size_t B, size_t V, size_t P)
{
  const float inv = 1.0f / tau;
  const size_t tiles = (P + TILE - 1) / TILE;
#pragma omp parallel for schedule(static) if (B * V * P > 65536)
  for (size_t bt = 0; bt < B * tiles; bt++) {
    const size_t b = bt / tiles, p0 = (bt % tiles) * TILE;
    const size_t np = P - p0 < TILE ? P - p0 : TILE;
    const size_t base = b * V * P + p0;
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

double beit_dvae_kl_uniform(float *dlogits, const float *logits, float dscale, size_t B,
                            size_t V, size_t P)
{
  const size_t tiles = (P + TILE - 1) / TILE;
  const double logV = log((double)V);
  double total = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : total) if (B * V * P > 65536)
  for (size_t bt = 0; bt < B * tiles; bt++) {
    const size_t b = bt / tiles, p0 = (bt % tiles) * TILE;
    const size_t np = P - p0 < TILE ? P - p0 : TILE;
    const size_t base = b * V * P + p0;
    float mx[TILE];
    double sum[TILE], ent[TILE]; /* sum of exp, sum of exp * (l - max) */
    for (size_t j = 0; j < np; j++)
      mx[j] = -INFINITY, sum[j] = ent[j] = 0.0;
    for (size_t v = 0; v < V; v++) {
      const float *l = logits + base + v * P;
      for (size_t j = 0; j < np; j++)
        mx[j] = l[j] > mx[j] ? l[j] : mx[j];
    }
    for (size_t v = 0; v < V; v++) {
      const float *l = logits + base + v * P;
      for (size_t j = 0; j < np; j++) {
        const float z = l[j] - mx[j], e = expf(z);
        sum[j] += e;
        ent[j] += (double)e * z;
      }
    }
    /* sum_v q log q = ent/sum - log(sum); KL = that + log V */
    double kl_tile = 0.0, qlogq[TILE], lse[TILE];
    for (size_t j = 0; j < np; j++) {
      lse[j] = log(sum[j]);
      qlogq[j] = ent[j] / sum[j] - lse[j];
      kl_tile += qlogq[j] + logV;
    }
    total += kl_tile;
    if (!dlogits)
      continue;
    /* d/dl_v sum_u q_u log q_u = q_v (log q_v - sum_u q_u log q_u) */
    for (size_t v = 0; v < V; v++) {
      const float *l = logits + base + v * P;
      float *d = dlogits + base + v * P;
      for (size_t j = 0; j < np; j++) {
        const float logq = l[j] - mx[j] - (float)lse[j];
        d[j] += dscale * expf(logq) * (logq - (float)qlogq[j]);
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
 * sqrt2), log m = 2 atanh(s), s = (m-1)/(m+1), |s| < 0.172, series to s^9 (error < 1e-8). */
static inline float noise_logf(float x)
{
  uint32_t i;
  memcpy(&i, &x, sizeof i);
  int e = (int)((i >> 23) & 0xffu) - 127;
  uint32_t mi = (i & 0x007fffffu) | 0x3f800000u;
  float m;
  memcpy(&m, &mi, sizeof m);
  const int big = m > 1.41421356f;
  m = big ? 0.5f * m : m;
  e += big;
  const float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
  const float p =
      s * (2.0f + s2 * (0.66666667f + s2 * (0.4f + s2 * (0.28571429f + s2 * 0.22222222f))));
  return (float)e * 0.69314718f + p;
}

void beit_dvae_gumbel_noise(float *noise, size_t B, size_t per_image, uint64_t seed,
                            uint64_t step, size_t b0)
{
  for (size_t b = 0; b < B; b++) {
    struct beit_rng rng;
    beit_rng_seed(&rng, seed, step, (uint64_t)(b0 + b));
    float *g = noise + b * per_image;
    /* u = (k + 1/2) 2^-24 from 24 random bits: in (0, 1), never 0 or 1 */
    for (size_t i = 0; i < per_image; i++)
      g[i] = ((float)(beit_rng_u64(&rng) >> 40) + 0.5f) * 5.9604645e-8f;
    for (size_t i = 0; i < per_image; i++)
      g[i] = -noise_logf(-noise_logf(g[i]));
  }
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
