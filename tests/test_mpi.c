/* distributed/: rank info, bcast (chunked), f64 reductions, bucketed gradient averaging.
 *
 * Runs as one rank (no launcher, or the serial build) and under mpirun -np 2 / -np 3 (ctest label
 * mpi). With 3 ranks the float sum is not associative, so "bit-identical on every rank" is a real
 * property of the collective, not of commutativity. Gradient cases cover uneven buckets, buckets
 * of one float, one bucket larger than the buffer, ranges announced in the encoder's decreasing
 * order, in a different random order on each rank, split at odd boundaries, partly or not at all.
 *
 *   test_mpi [--expect-world N] [--single-node]    the tests; failures on any rank fail all
 *   test_mpi --fault abort|kill|stop               for tests/mpi_fault.sh (2 ranks): rank 1
 *                                                  calls beit_dist_abort or dies of SIGKILL while
 *                                                  rank 0 waits in a collective, or (stop) joins
 *                                                  the gradient allreduce and stops (SIGSTOP):
 *                                                  rank 0's 2 s deadline names it
 *
 * The collectives are tested twice: blocking (no deadline) and polled (with a deadline, the
 * path of every training command). */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "beit/distributed.h"
#include "dist_internal.h"
#include "testing.h"

static struct beit_dist *D;
static int RANK, WORLD;

/* ---- deterministic data ---- */

static uint64_t mix(uint64_t x)
{
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static uint64_t key(uint64_t a, uint64_t b, uint64_t c) { return mix(mix(mix(a) ^ b) ^ c); }

/* Exact values: multiples of 1/4 in [-128, 128], so sums over a few ranks are exact in float. */
static float exact_value(uint64_t seed, int rank, size_t i)
{
  return (float)((int)(key(seed, (uint64_t)rank, i) % 1025) - 512) * 0.25f;
}

/* Values over 16 binary orders of magnitude: sums depend on the order of addition. */
static float wide_value(uint64_t seed, int rank, size_t i)
{
  uint64_t h = key(seed, (uint64_t)rank + 1000, i);
  double u = (double)(h >> 11) * 0x1.0p-53 * 2.0 - 1.0;
  return (float)ldexp(u, (int)((h >> 3) % 17) - 8);
}

static size_t urand(uint64_t *state, size_t bound) { return (size_t)((*state = mix(*state)) % bound); }

/* Counting failures on every rank; the test fails everywhere if it fails anywhere. */
static int all_ranks_ok(int ok)
{
  double bad = ok ? 0.0 : 1.0;
  struct beit_error err = {0};
  if (beit_dist_allreduce_max_f64(D, &bad, 1, &err) != BEIT_STATUS_OK) {
    fprintf(stderr, "rank %d: %s\n", RANK, err.message);
    return 0;
  }
  return bad == 0.0;
}

/* ---- rank info ---- */

static void test_rank_info(int expect_world, int single_node)
{
  CHECK(WORLD >= 1);
  CHECK(RANK >= 0 && RANK < WORLD);
  CHECK(beit_dist_is_root(D) == (RANK == 0));
  if (expect_world > 0)
    CHECK_MSG(WORLD == expect_world, "world %d, expected %d (ranks launched as singletons?)",
              WORLD, expect_world);
  int lr = beit_dist_local_rank(D), ls = beit_dist_local_size(D);
  CHECK_MSG(lr >= 0 && lr < ls && ls <= WORLD, "local rank %d of %d, world %d", lr, ls, WORLD);
  if (single_node) {
    CHECK_MSG(ls == WORLD, "local size %d on one node of %d ranks", ls, WORLD);
    /* local ranks are a permutation of 0..world-1 */
    double *seen = calloc((size_t)WORLD, sizeof *seen);
    seen[lr] = 1.0;
    struct beit_error err = {0};
    CHECK(beit_dist_allreduce_sum_f64(D, seen, (size_t)WORLD, &err) == BEIT_STATUS_OK);
    for (int r = 0; r < WORLD; r++)
      CHECK_MSG(seen[r] == 1.0, "local rank %d held by %g ranks", r, seen[r]);
    free(seen);
  }
  CHECK(strcmp(beit_dist_backend(), "mpi") == 0 || strcmp(beit_dist_backend(), "serial") == 0);
  if (strcmp(beit_dist_backend(), "serial") == 0)
    CHECK(WORLD == 1 && RANK == 0 && lr == 0 && ls == 1);
}

/* ---- bcast ---- */

static unsigned char pattern(int root, size_t i, size_t chunk)
{
  return (unsigned char)(key((uint64_t)root, chunk, i) & 0xff);
}

static void test_bcast(void)
{
  const size_t chunks[] = {0 /* default */, 7, 4096, 1};
  const size_t bytes = 100003; /* odd: the last chunk is short */
  unsigned char *buf = malloc(bytes);
  struct beit_error err = {0};
  for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
    beit_dist_set_chunk_bytes(D, chunks[c]);
    size_t len = chunks[c] == 1 ? 1001 : bytes; /* one message per byte: keep it short */
    for (int root = 0; root < WORLD; root++) {
      for (size_t i = 0; i < len; i++)
        buf[i] = RANK == root ? pattern(root, i, chunks[c]) : 0xAA;
      enum beit_status st = beit_dist_bcast(D, buf, len, root, &err);
      CHECK_MSG(st == BEIT_STATUS_OK, "%s", err.message);
      size_t bad = 0;
      for (size_t i = 0; i < len; i++)
        bad += buf[i] != pattern(root, i, chunks[c]);
      CHECK_MSG(all_ranks_ok(bad == 0), "bcast chunk %zu root %d: %zu wrong bytes on rank %d",
                chunks[c], root, bad, RANK);
    }
  }
  beit_dist_set_chunk_bytes(D, 0);
  CHECK(beit_dist_bcast(D, buf, 0, 0, &err) == BEIT_STATUS_OK);
  /* an invalid root is our check, the same on every rank, before any MPI call */
  beit_error_clear(&err);
  CHECK(beit_dist_bcast(D, buf, 16, WORLD, &err) == BEIT_STATUS_USAGE);
  CHECK_MSG(strstr(err.message, "rank ") && strstr(err.message, "root"), "'%s'", err.message);
  free(buf);
}

/* ---- f64 reductions ---- */

static void test_allreduce_f64(void)
{
  const size_t chunks[] = {0, 24, 1, 8 * 1000};
  const size_t n = 1001;
  double *v = malloc(n * sizeof *v);
  struct beit_error err = {0};
  for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
    beit_dist_set_chunk_bytes(D, chunks[c]);
    for (size_t i = 0; i < n; i++)
      v[i] = RANK * 1000.0 + (double)i + 0.5;
    CHECK_MSG(beit_dist_allreduce_sum_f64(D, v, n, &err) == BEIT_STATUS_OK, "%s", err.message);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
      double want = 0.0;
      for (int r = 0; r < WORLD; r++)
        want += r * 1000.0 + (double)i + 0.5;
      bad += v[i] != want;
    }
    CHECK_MSG(bad == 0, "sum chunk %zu: %zu wrong", chunks[c], bad);
    for (size_t i = 0; i < n; i++)
      v[i] = (int)(i % (size_t)WORLD) == RANK ? 1e6 + (double)i : -(double)i;
    CHECK_MSG(beit_dist_allreduce_max_f64(D, v, n, &err) == BEIT_STATUS_OK, "%s", err.message);
    bad = 0;
    for (size_t i = 0; i < n; i++)
      bad += v[i] != 1e6 + (double)i;
    CHECK_MSG(bad == 0, "max chunk %zu: %zu wrong", chunks[c], bad);
  }
  beit_dist_set_chunk_bytes(D, 0);
  CHECK(beit_dist_allreduce_sum_f64(D, v, 0, &err) == BEIT_STATUS_OK);
  CHECK(beit_dist_barrier(D, &err) == BEIT_STATUS_OK);
  free(v);
}

/* ---- errors come back as statuses ---- */

static void test_errors_return(void)
{
  struct beit_error err = {0};
  enum beit_status st = beit_dist_test_mpi_error(D, &err);
  if (strcmp(beit_dist_backend(), "mpi") == 0) {
    char want[32];
    snprintf(want, sizeof want, "rank %d: MPI_Bcast", RANK);
    CHECK_MSG(st == BEIT_STATUS_DISTRIBUTED && strstr(err.message, want), "status %s '%s'",
              beit_status_name(st), err.message);
  } else {
    CHECK(st == BEIT_STATUS_OK);
  }
  /* the job is still usable afterwards */
  CHECK(beit_dist_barrier(D, &err) == BEIT_STATUS_OK);
}

/* ---- bucket bookkeeping (transport-free) ---- */

static void test_bucket_layout(void)
{
  struct { size_t n, size, count, first; } cases[] = {
      {1000, 64, 16, 40}, {257, 1, 257, 1}, {100, 1000, 1, 100}, {4096, 4096, 1, 4096},
      {4096, 1024, 4, 1024}, {1, 1, 1, 1}, {0, 8, 0, 0},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    struct beit_dist_buckets b;
    CHECK(beit_dist_buckets_init(&b, cases[c].n, cases[c].size, NULL) == BEIT_STATUS_OK);
    CHECK_MSG(b.count == cases[c].count && b.first == cases[c].first,
              "n %zu size %zu: count %zu first %zu", cases[c].n, cases[c].size, b.count, b.first);
    size_t covered = 0;
    for (size_t k = 0; k < b.count; k++) {
      CHECK(beit_dist_bucket_begin(&b, k) == covered);
      covered = beit_dist_bucket_end(&b, k);
      if (k > 0)
        CHECK(covered - beit_dist_bucket_begin(&b, k) == cases[c].size);
    }
    CHECK(covered == cases[c].n);
    beit_dist_buckets_free(&b);
  }
  struct beit_dist_buckets b;
  CHECK(beit_dist_buckets_init(&b, 10, 0, NULL) == BEIT_STATUS_USAGE);

  /* starts go strictly last-to-first, each only once all of it is announced */
  CHECK(beit_dist_buckets_init(&b, 1000, 64, NULL) == BEIT_STATUS_OK);
  uint64_t rng = 42;
  for (int trial = 0; trial < 20; trial++) {
    beit_dist_buckets_reset(&b);
    size_t order[100], cut[101], nseg = 0;
    cut[0] = 0;
    while (cut[nseg] < 1000 && nseg < 99) {
      size_t next = cut[nseg] + 1 + urand(&rng, 97);
      cut[++nseg] = next > 1000 ? 1000 : next;
    }
    cut[nseg] = 1000;
    for (size_t s = 0; s < nseg; s++)
      order[s] = s;
    for (size_t s = nseg; s > 1; s--) {
      size_t j = urand(&rng, s), t = order[s - 1];
      order[s - 1] = order[j];
      order[j] = t;
    }
    unsigned char done[1000] = {0};
    size_t expect_next = b.count, k;
    for (size_t s = 0; s < nseg; s++) {
      beit_dist_buckets_mark(&b, cut[order[s]], cut[order[s] + 1]);
      memset(done + cut[order[s]], 1, cut[order[s] + 1] - cut[order[s]]);
      while (beit_dist_buckets_pop_ready(&b, &k)) {
        CHECK(k + 1 == expect_next);
        expect_next = k;
        for (size_t i = beit_dist_bucket_begin(&b, k); i < beit_dist_bucket_end(&b, k); i++)
          CHECK(done[i]);
      }
      /* a complete bucket is held back only by an incomplete one after it */
      if (expect_next > 0) {
        size_t hi = beit_dist_bucket_end(&b, expect_next - 1), missing = 0;
        for (size_t i = beit_dist_bucket_begin(&b, expect_next - 1); i < hi; i++)
          missing += !done[i];
        CHECK(missing > 0);
      }
    }
    CHECK(expect_next == 0 && b.pending.status == BEIT_STATUS_OK && b.late == 0);
  }
  /* misuse: overfilling, out of range, announcing a started bucket */
  beit_dist_buckets_reset(&b);
  beit_dist_buckets_mark(&b, 990, 1001);
  CHECK(b.pending.status == BEIT_STATUS_USAGE && strstr(b.pending.message, "outside"));
  beit_dist_buckets_reset(&b);
  beit_dist_buckets_mark(&b, 0, 30);
  beit_dist_buckets_mark(&b, 20, 40);
  CHECK(b.pending.status == BEIT_STATUS_USAGE && strstr(b.pending.message, "overfills"));
  beit_dist_buckets_reset(&b);
  size_t k;
  beit_dist_buckets_mark(&b, 936, 1000);
  CHECK(beit_dist_buckets_pop_ready(&b, &k) && k == 15);
  beit_dist_buckets_mark(&b, 999, 1000);
  CHECK(b.pending.status == BEIT_STATUS_USAGE && strstr(b.pending.message, "already"));
  beit_dist_buckets_free(&b);
}

/* ---- gradient averaging ---- */

enum order {
  ORDER_ENCODER, /* odd-sized segments, same on every rank, in decreasing address order */
  ORDER_RANDOM,  /* different segments and order on every rank */
  ORDER_PARTIAL, /* decreasing, but some segments never announced (different per rank) */
  ORDER_NONE,    /* nothing announced: finish reduces everything */
  ORDER_WHOLE,   /* one range [0, n) */
};
static const char *const order_names[] = {"encoder", "random", "partial", "none", "whole"};

/* Announce [0, n) in the given order. */
static void announce(struct beit_dist_grads *g, size_t n, enum order order, uint64_t seed)
{
  if (order == ORDER_NONE || n == 0)
    return;
  if (order == ORDER_WHOLE) {
    beit_dist_grads_ready(g, 0, n);
    return;
  }
  uint64_t rng = key(seed, order == ORDER_ENCODER ? 0 : (uint64_t)RANK + 1, 77);
  size_t *cut = malloc((n + 1) * sizeof *cut), nseg = 0;
  cut[0] = 0;
  while (cut[nseg] < n) { /* odd lengths 1, 3, 5, ... up to ~n/5 */
    size_t len = 2 * urand(&rng, n / 10 + 1) + 1;
    cut[nseg + 1] = cut[nseg] + len > n ? n : cut[nseg] + len;
    nseg++;
  }
  size_t *order_of = malloc(nseg * sizeof *order_of);
  for (size_t s = 0; s < nseg; s++)
    order_of[s] = nseg - 1 - s; /* decreasing addresses */
  if (order == ORDER_RANDOM)
    for (size_t s = nseg; s > 1; s--) {
      size_t j = urand(&rng, s), t = order_of[s - 1];
      order_of[s - 1] = order_of[j];
      order_of[j] = t;
    }
  for (size_t s = 0; s < nseg; s++) {
    size_t seg = order_of[s];
    if (order == ORDER_PARTIAL && urand(&rng, 3) == 0)
      continue;
    beit_dist_grads_ready(g, cut[seg], cut[seg + 1]);
    if (s % 4 == 3)
      beit_dist_grads_progress(g);
  }
  free(order_of);
  free(cut);
}

static void grads_case(size_t n, size_t bucket, enum order order, int exact)
{
  uint64_t seed = key(n, bucket, (uint64_t)order * 2 + (uint64_t)exact);
  float *x = malloc((n ? n : 1) * sizeof *x), *first = malloc((n ? n : 1) * sizeof *x);
  float *root = malloc((n ? n : 1) * sizeof *x), *want = malloc((n ? n : 1) * sizeof *x);
  const float scale = (float)(1.0 / (double)WORLD);
  for (size_t i = 0; i < n; i++) {
    if (exact) { /* exact float sum, then the documented multiply */
      float s = 0.0f;
      for (int r = 0; r < WORLD; r++)
        s += exact_value(seed, r, i);
      want[i] = WORLD > 1 ? s * scale : s;
    } else {
      double s = 0.0;
      for (int r = 0; r < WORLD; r++)
        s += wide_value(seed, r, i);
      want[i] = (float)(s / WORLD);
    }
  }
  struct beit_error err = {0};
  struct beit_dist_grads *g = NULL;
  enum beit_status st = beit_dist_grads_init(&g, D, x, n, bucket, &err);
  CHECK_MSG(st == BEIT_STATUS_OK, "%s", err.message);
  if (st != BEIT_STATUS_OK)
    goto free_bufs;
  for (int step = 0; step < 2; step++) {
    for (size_t i = 0; i < n; i++)
      x[i] = exact ? exact_value(seed, RANK, i) : wide_value(seed, RANK, i);
    beit_dist_grads_begin(g);
    announce(g, n, order, seed);
    st = beit_dist_grads_finish(g, &err);
    CHECK_MSG(st == BEIT_STATUS_OK, "n %zu bucket %zu %s: %s", n, bucket, order_names[order],
              err.message);
    char label[128];
    snprintf(label, sizeof label, "n %zu bucket %zu %s %s rank %d", n, bucket,
             order_names[order], exact ? "exact" : "wide", RANK);
    if (exact) {
      size_t bad = 0;
      for (size_t i = 0; i < n; i++)
        bad += memcmp(&x[i], &want[i], sizeof(float)) != 0;
      CHECK_MSG(bad == 0, "%s: %zu of %zu not the exact average", label, bad, n);
    } else if (n > 0) {
      check_close(label, x, want, n, 1e-6);
    }
    /* bit-identical on every rank: compare with rank 0's copy */
    memcpy(root, x, n * sizeof *x);
    CHECK(beit_dist_bcast(D, root, n * sizeof *root, 0, &err) == BEIT_STATUS_OK);
    CHECK_MSG(all_ranks_ok(memcmp(root, x, n * sizeof *x) == 0),
              "%s: ranks disagree after averaging", label);
    /* and run to run: the second step equals the first */
    if (step == 0)
      memcpy(first, x, n * sizeof *x);
    else
      CHECK_MSG(memcmp(first, x, n * sizeof *x) == 0, "%s: second step differs", label);

    struct beit_dist_grads_stats s;
    beit_dist_grads_get_stats(g, &s);
    size_t count = n ? (n + bucket - 1) / bucket : 0;
    CHECK_MSG(s.buckets == count, "%s: %zu buckets, want %zu", label, s.buckets, count);
    CHECK(s.bytes == n * sizeof(float));
    if (order == ORDER_ENCODER || order == ORDER_WHOLE)
      CHECK_MSG(s.buckets_late == 0, "%s: %zu late buckets", label, s.buckets_late);
    if (order == ORDER_NONE)
      CHECK(s.buckets_late == count);
    CHECK(s.mpi_seconds >= s.exposed_seconds && s.exposed_seconds >= 0.0 &&
          s.finish_seconds >= 0.0);
  }
  beit_dist_grads_free(g);
free_bufs:
  free(x);
  free(first);
  free(root);
  free(want);
}

static void test_grads(void)
{
  const struct { size_t n, bucket; } shapes[] = {
      {1000, 64},  /* n not a multiple of the bucket */
      {257, 1},    /* buckets of one float */
      {100, 1000}, /* one bucket bigger than n */
      {4096, 1024}, {12345, 1000}, {1, 1}, {0, 16},
  };
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
    for (int o = ORDER_ENCODER; o <= ORDER_WHOLE; o++)
      for (int exact = 0; exact < 2; exact++)
        grads_case(shapes[s].n, shapes[s].bucket, (enum order)o, exact);
}

struct thread_arg {
  struct beit_dist_grads *g;
};

static void *announce_from_thread(void *p)
{
  struct thread_arg *a = p;
  beit_dist_grads_ready(a->g, 0, 1);
  return NULL;
}

static void test_grads_misuse(void)
{
  enum { N = 300 };
  float x[N];
  struct beit_error err = {0};
  struct beit_dist_grads *g = NULL;
  CHECK(beit_dist_grads_init(&g, D, x, N, 0, &err) == BEIT_STATUS_USAGE);
  CHECK(beit_dist_grads_init(&g, D, x, N, (size_t)1 << 31, &err) == BEIT_STATUS_USAGE);
  CHECK(beit_dist_grads_init(&g, D, NULL, N, 16, &err) == BEIT_STATUS_USAGE);
  CHECK(beit_dist_grads_init(&g, D, x, N, 64, &err) == BEIT_STATUS_OK);
  char rank_prefix[32];
  snprintf(rank_prefix, sizeof rank_prefix, "rank %d: ", RANK);

  /* a range announced twice: reported at finish, the step still completes */
  for (size_t i = 0; i < N; i++)
    x[i] = 1.0f;
  beit_dist_grads_begin(g);
  beit_dist_grads_ready(g, 0, N);
  beit_dist_grads_ready(g, 10, 20);
  beit_error_clear(&err);
  CHECK(beit_dist_grads_finish(g, &err) == BEIT_STATUS_USAGE);
  CHECK_MSG(strncmp(err.message, rank_prefix, strlen(rank_prefix)) == 0 &&
                strstr(err.message, "twice"),
            "'%s'", err.message);

  /* out of range */
  beit_dist_grads_begin(g);
  beit_dist_grads_ready(g, N - 1, N + 1);
  beit_error_clear(&err);
  CHECK(beit_dist_grads_finish(g, &err) == BEIT_STATUS_USAGE);
  CHECK_MSG(strstr(err.message, "outside"), "'%s'", err.message);

  /* from another thread (FUNNELED) */
  beit_dist_grads_begin(g);
  struct thread_arg a = {g};
  pthread_t t;
  CHECK(pthread_create(&t, NULL, announce_from_thread, &a) == 0);
  pthread_join(t, NULL);
  beit_error_clear(&err);
  CHECK(beit_dist_grads_finish(g, &err) == BEIT_STATUS_USAGE);
  CHECK_MSG(strstr(err.message, "thread"), "'%s'", err.message);

  /* a step abandoned after some buckets started, then a clean step: the right average */
  beit_dist_grads_begin(g);
  beit_dist_grads_ready(g, 200, N);
  beit_dist_grads_begin(g); /* completes the abandoned reductions */
  for (size_t i = 0; i < N; i++)
    x[i] = (float)(RANK + 1);
  beit_dist_grads_ready(g, 0, N);
  CHECK_MSG(beit_dist_grads_finish(g, &err) == BEIT_STATUS_OK, "%s", err.message);
  float want = (float)(WORLD * (WORLD + 1) / 2) * (WORLD > 1 ? (float)(1.0 / WORLD) : 1.0f);
  size_t bad = 0;
  for (size_t i = 0; i < N; i++)
    bad += x[i] != want;
  CHECK_MSG(bad == 0, "after an abandoned step: %zu wrong (x[0] %g, want %g)", bad, x[0], want);

  /* finish without begin starts the next step cleanly */
  for (size_t i = 0; i < N; i++)
    x[i] = (float)(RANK + 1);
  beit_dist_grads_ready(g, 0, N);
  CHECK(beit_dist_grads_finish(g, &err) == BEIT_STATUS_OK);
  CHECK(x[N - 1] == want);
  beit_dist_grads_free(g);
}

static double wall(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Buckets that complete inside the hook / progress calls are averaged there: poll long enough
 * that some do, and check the result is still the exact average. */
static void test_grads_progress(void)
{
  enum { N = 10007, BUCKET = 1000 };
  static float x[N];
  struct beit_error err = {0};
  struct beit_dist_grads *g = NULL;
  CHECK(beit_dist_grads_init(&g, D, x, N, BUCKET, &err) == BEIT_STATUS_OK);
  for (int round = 0; round < 3; round++) {
    for (size_t i = 0; i < N; i++)
      x[i] = exact_value(round, RANK, i);
    beit_dist_grads_begin(g);
    for (size_t hi = N; hi > 0;) { /* encoder order, progress in between */
      size_t lo = hi > 700 ? hi - 700 : 0;
      beit_dist_grads_ready(g, lo, hi);
      hi = lo;
    }
    for (double t0 = wall(); wall() - t0 < 0.3;) {
      beit_dist_grads_ready(g, 5, 5); /* an empty range only drives progress */
      struct timespec ms = {0, 1000000};
      nanosleep(&ms, NULL);
    }
    CHECK_MSG(beit_dist_grads_finish(g, &err) == BEIT_STATUS_OK, "%s", err.message);
    struct beit_dist_grads_stats s;
    beit_dist_grads_get_stats(g, &s);
    if (WORLD > 1)
      CHECK_MSG(s.buckets_early > 0, "no bucket completed during 0.3 s of progress calls");
    else if (strcmp(beit_dist_backend(), "serial") == 0)
      CHECK(s.buckets_early == 0 && s.mpi_seconds == 0.0);
    CHECK(s.buckets_early <= s.buckets && s.buckets_late == 0);
    size_t bad = 0;
    for (size_t i = 0; i < N; i++) {
      float sum = 0.0f;
      for (int r = 0; r < WORLD; r++)
        sum += exact_value(round, r, i);
      float want = WORLD > 1 ? sum * (float)(1.0 / WORLD) : sum;
      bad += memcmp(&x[i], &want, sizeof want) != 0;
    }
    CHECK_MSG(bad == 0, "round %d: %zu of %d not the exact average (%zu early buckets)", round,
              bad, N, s.buckets_early);
  }
  beit_dist_grads_free(g);
}

/* ---- deadlines ---- */

/* The settings and what init gathered; a deadline that never passes changes nothing (the
 * collectives themselves run again under one in main). */
static void test_deadline_settings(void)
{
  CHECK(beit_dist_timeout(D) == 0.0); /* the default: wait forever */
  beit_dist_set_timeout(D, 2.5);
  CHECK(beit_dist_timeout(D) == 2.5);
  beit_dist_set_timeout(D, -1.0); /* negative: no deadline */
  CHECK(beit_dist_timeout(D) == 0.0);
  char host[64] = "";
  gethostname(host, sizeof host - 1);
  CHECK(strcmp(beit_dist_host(D, RANK), host) == 0);
  CHECK(beit_dist_pid(D, RANK) == (long)getpid());
  CHECK(strcmp(beit_dist_host(D, WORLD), "") == 0 && beit_dist_pid(D, -1) == 0);
  /* every rank sees every rank's pid: the sum over ranks of rank r's view of the pids agrees */
  double pids[2] = {0, 0};
  for (int r = 0; r < WORLD; r++)
    pids[0] += (double)beit_dist_pid(D, r);
  pids[1] = (double)getpid();
  struct beit_error err = {0};
  CHECK(beit_dist_allreduce_sum_f64(D, pids + 1, 1, &err) == BEIT_STATUS_OK);
  CHECK_MSG(pids[0] == pids[1], "pids gathered at init sum to %.0f, the ranks' own to %.0f",
            pids[0], pids[1]);
  beit_dist_set_context(D, "of step %d", 17);
  beit_dist_set_context(D, "%s", "");
  CHECK(beit_dist_barrier(D, &err) == BEIT_STATUS_OK);
}

/* ---- fault injection for tests/mpi_fault.sh ---- */

static int run_fault(const char *mode)
{
  struct beit_error err = {0};
  if (WORLD != 2) {
    fprintf(stderr, "--fault needs 2 ranks\n");
    return 2;
  }
  if (beit_dist_barrier(D, &err) != BEIT_STATUS_OK)
    beit_dist_abort(D, 1, err.message);
  int stop = strcmp(mode, "stop") == 0;
  if (RANK == 1 && !stop) {
    if (strcmp(mode, "abort") == 0)
      beit_dist_abort(D, 3, "simulated failure in step 1");
    raise(SIGKILL);
  }
  /* rank 0 waits in a collective that rank 1 never joins (stop: joins, then stops in it) */
  static float x[1 << 20];
  struct beit_dist_grads *g = NULL;
  if (stop) {
    beit_dist_set_timeout(D, 2.0);
    beit_dist_set_context(D, "of step %d", 17);
  }
  if (beit_dist_grads_init(&g, D, x, sizeof x / sizeof x[0], 1 << 16, &err) != BEIT_STATUS_OK)
    beit_dist_abort(D, 1, err.message);
  beit_dist_grads_begin(g);
  beit_dist_grads_ready(g, 0, sizeof x / sizeof x[0]);
  if (RANK == 1)
    raise(SIGSTOP); /* every bucket started: rank 1 has joined every reduction */
  enum beit_status st = beit_dist_grads_finish(g, &err);
  if (stop && st == BEIT_STATUS_DISTRIBUTED) {
    /* later calls fail at once with the same message, and cleanup does not wait */
    struct beit_error again = {0};
    double t0 = wall();
    int same = beit_dist_barrier(D, &again) == BEIT_STATUS_DISTRIBUTED &&
               strcmp(again.message, err.message) == 0;
    beit_dist_grads_free(g);
    if (!same || wall() - t0 > 1.0)
      fprintf(stderr, "rank 0: a call after the deadline waited or said something else: %s\n",
              again.message);
    beit_dist_abort(D, 1, err.message);
  }
  if (st == BEIT_STATUS_OK)
    st = beit_dist_barrier(D, &err);
  /* reaching here at all means the failure was not noticed */
  fprintf(stderr, "rank 0: survived the fault (%s: %s)\n", beit_status_name(st), err.message);
  return 4;
}

int main(int argc, char **argv)
{
  struct beit_error err = {0};
  if (beit_dist_init(&D, &argc, &argv, &err) != BEIT_STATUS_OK) {
    fprintf(stderr, "beit_dist_init: %s\n", err.message);
    beit_dist_abort(NULL, 1, err.message);
  }
  RANK = beit_dist_rank(D);
  WORLD = beit_dist_world_size(D);
  int expect_world = 0, single_node = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--expect-world") == 0 && i + 1 < argc)
      expect_world = atoi(argv[++i]);
    else if (strcmp(argv[i], "--single-node") == 0)
      single_node = 1;
    else if (strcmp(argv[i], "--fault") == 0 && i + 1 < argc)
      return run_fault(argv[++i]);
    else {
      fprintf(stderr, "usage: test_mpi [--expect-world N] [--single-node] "
                      "[--fault abort|kill|stop]\n");
      beit_dist_finalize(D);
      return 2;
    }
  }
  test_rank_info(expect_world, single_node);
  test_bcast();
  test_allreduce_f64();
  test_errors_return();
  test_bucket_layout();
  test_grads();
  test_grads_misuse();
  test_grads_progress();
  test_deadline_settings();
  /* again through the polled path every training command takes: the same results */
  beit_dist_set_timeout(D, 120.0);
  test_bcast();
  test_allreduce_f64();
  test_grads();
  test_grads_progress();
  beit_dist_set_timeout(D, 0.0);

  double failures = beit_test_failures;
  if (beit_dist_allreduce_sum_f64(D, &failures, 1, &err) != BEIT_STATUS_OK)
    beit_dist_abort(D, 1, err.message);
  char name[64];
  snprintf(name, sizeof name, "test_mpi rank %d of %d (%s)", RANK, WORLD, beit_dist_backend());
  int rc = test_summary(name);
  if (rc == 0 && failures > 0) {
    fprintf(stderr, "rank %d: %.0f failures on other ranks\n", RANK, failures);
    rc = 1;
  }
  beit_dist_finalize(D);
  return rc;
}
