/* Deterministic random numbers: xoshiro256** streams keyed by (seed, a, b).
 *
 * Every random decision of a run is drawn from a stream keyed by what it is for, e.g.
 * (seed, epoch, global sample index) for augmentation and masks, so results do not depend on
 * the number of ranks or threads. A stream's state is 32 bytes and can be saved in checkpoints. */
#ifndef BEIT_CORE_RNG_H
#define BEIT_CORE_RNG_H

#include <stddef.h>
#include <stdint.h>

struct beit_rng {
  uint64_t s[4];
};

/* Seed a stream from a key; distinct keys give independent-looking streams. */
void beit_rng_seed(struct beit_rng *rng, uint64_t seed, uint64_t a, uint64_t b);
uint64_t beit_rng_u64(struct beit_rng *rng);
/* Uniform in [0, 1) with 53 random bits. */
double beit_rng_uniform(struct beit_rng *rng);
/* Uniform integer in [lo, hi] inclusive (hi >= lo). */
int64_t beit_rng_int(struct beit_rng *rng, int64_t lo, int64_t hi);
/* Standard normal (Box-Muller, no cached spare so the state alone describes the stream). */
double beit_rng_normal(struct beit_rng *rng);
/* Fill n floats with normal(0, std) truncated to [lo, hi] by inverse-CDF sampling, as torch's
 * trunc_normal_. */
void beit_rng_fill_trunc_normal(struct beit_rng *rng, float *dst, size_t n, double std, double lo,
                                double hi);

#endif
