/* bfloat16 matrix products through oneDNN (Debian libdnnl 2.6, C API v2): the only file that
 * includes dnnl.h; gemm_nodnnl.c stands in when the build has no oneDNN.
 *
 * Each distinct product (shapes, strides, transposes, alpha, beta) gets one matmul primitive,
 * created at first use and cached for the life of the process: oneDNN's primitive creation
 * generates code (milliseconds), its execution is what a step pays. The cache is shared by every
 * thread (a read-write lock: products run under the read lock, creation takes the write lock);
 * execution streams are per thread. What the CPU can do is asked
 * of oneDNN itself: a probe primitive tells whether bf16 matmul exists here and which kernel
 * (AMX or AVX512-BF16) it runs, so ONEDNN_MAX_CPU_ISA caps it as it caps everything else.
 *
 * A tall product is split into row blocks, one per thread of the OpenMP team, each block run by
 * oneDNN on its own thread (beit_dnnl_row_blocks below).
 *
 * BEIT_GEMM_PROFILE=1 in the environment times every product and prints, at exit, one line per
 * product shape (shape, transposes, calls, seconds, GFLOP/s, oneDNN's kernel, row blocks) to
 * stderr: where a step's matmul time goes. */
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "beit/status.h"
#include "clock.h"
#include "gemm.h"

#define CACHE_MAX 256

struct matmul_key {
  size_t count1, count2, M, N, K, lda, ldb, ldc, sa1, sa2, sb1, sb2, sc1, sc2;
  int trans_a, trans_b, bias, c_bf16, mul;
  int driver; /* prefer oneDNN's gemm driver (decided on the whole product, not on a row block) */
  float alpha, beta;
};

struct matmul_entry {
  struct matmul_key key;
  dnnl_primitive_t prim;
  dnnl_memory_desc_t a, b, c, bias, mul, scratch;
  size_t scratch_bytes;
  char kernel[32]; /* oneDNN's name for the implementation it runs */
};

/* BEIT_GEMM_PROFILE: the timings of one product shape (a split product counts once, whole). */
struct profile_row {
  struct matmul_key key;
  size_t blocks;
  char kernel[32];
  long long calls, nanoseconds, fastest;
};

static struct {
  pthread_once_t once;
  pthread_rwlock_t lock;
  dnnl_engine_t engine;
  int bf16, amx, profile;
  char isa[64], version[32];
  struct matmul_entry cache[CACHE_MAX];
  size_t count, next_evict;
  pthread_mutex_t profile_lock;
  struct profile_row profile_rows[CACHE_MAX];
  size_t profile_count;
} g = {.once = PTHREAD_ONCE_INIT,
       .lock = PTHREAD_RWLOCK_INITIALIZER,
       .profile_lock = PTHREAD_MUTEX_INITIALIZER};

/* Per thread: the execution stream, and the scratchpad every primitive shares (oneDNN's own
 * scratchpad would be allocated and freed at each call: megabytes mapped, cleared and unmapped
 * per product, which cost a quarter of a BEiT-base step in page faults and TLB shootdowns).
 * Freed when the thread exits (a server's connection threads come and go). */
struct thread_state {
  dnnl_stream_t stream;
  void *scratch;
  size_t scratch_bytes;
};

static pthread_key_t thread_key;

static void thread_state_free(void *p)
{
  struct thread_state *ts = p;
  if (ts->stream)
    dnnl_stream_destroy(ts->stream);
  free(ts->scratch);
  free(ts);
}

static void die(const char *what, dnnl_status_t st)
{
  fprintf(stderr, "beit: oneDNN: %s failed (status %d)\n", what, (int)st);
  beit_assert_fail("oneDNN call succeeded", __FILE__, __LINE__);
}

static void check(dnnl_status_t st, const char *what)
{
  if (st != dnnl_success)
    die(what, st);
}

/* Operand of logical shape (rows, cols) [x count1 x count2] in a memory descriptor: 2-D for one
 * product, 3-D for one batch dimension, 4-D for two (oneDNN's fast kernels want no size-1 batch
 * dimensions with made-up strides). */
static dnnl_status_t describe(dnnl_memory_desc_t *md, dnnl_data_type_t type, size_t count1,
                              size_t count2, size_t s1, size_t s2, size_t rows, size_t cols,
                              size_t ld, int trans)
{
  dnnl_dim_t rs = trans ? 1 : (dnnl_dim_t)ld, cs = trans ? (dnnl_dim_t)ld : 1;
  dnnl_dims_t dims, strides;
  int n = 0;
  if (count1 > 1 || count2 > 1) {
    if (count1 > 1)
      dims[n] = (dnnl_dim_t)count1, strides[n++] = (dnnl_dim_t)s1;
    if (count2 > 1)
      dims[n] = (dnnl_dim_t)count2, strides[n++] = (dnnl_dim_t)s2;
  }
  dims[n] = (dnnl_dim_t)rows, strides[n++] = rs;
  dims[n] = (dnnl_dim_t)cols, strides[n++] = cs;
  return dnnl_memory_desc_init_by_strides(md, n, dims, type, strides);
}

/* oneDNN has two AMX kernels for one plain bf16 product: brgemm, its first choice, and its gemm
 * driver ("gemm:jit"). On BEiT's shapes the gemm driver is 1.1-1.6x faster when the reduction is
 * long and the result tall (weight gradients over a batch of tokens, fc2's forward, the input
 * gradients through fc1 and the MIM head), and brgemm is faster everywhere else: short
 * reductions, batch-1 inference, attention's batched products (docs/precision.md has the
 * measurements). The choice is a fixed function of the shape, so two runs compute alike. Without
 * AMX the two kernels run at the same speed and oneDNN's first choice stays. */
static int prefer_gemm_driver(size_t count, size_t M, size_t K)
{
  return g.amx && count == 1 && K >= 1024 && M >= 512;
}

/* How many row blocks a product of M rows (count problems) runs in: one per thread of the OpenMP
 * team it would start, each block a product of its own that oneDNN runs on the calling thread
 * (inside a parallel region oneDNN starts no threads). oneDNN's own split of one product over
 * two threads left the second thread idle ~9% of a BEiT-base bf16 step: brgemm divides its
 * blocks unevenly. In blocks, BEiT-base's tall products ran 4-20% faster alone and the training
 * step 3% faster (docs/precision.md). Only single products whose blocks have >= 384 rows (the
 * MIM head's 624 rows were no faster in blocks), and never inside a parallel region (a caller's
 * loop over independent products). Blocks are a fixed function of the shape and the thread
 * count, so two runs compute alike. */
#define BLOCK_MIN_ROWS 384
size_t beit_dnnl_row_blocks(size_t M, size_t count)
{
  if (count != 1 || omp_in_parallel())
    return 1;
  size_t n = (size_t)omp_get_max_threads();
  return n > 1 && M >= BLOCK_MIN_ROWS * n ? n : 1;
}

/* The primitive descriptor for desc: oneDNN's first choice, or its gemm driver where
 * the key prefers it (prefer_gemm_driver) and the driver takes the product (attributes
 * included). */
static dnnl_status_t choose(dnnl_primitive_desc_t *pd, const struct matmul_key *k,
                            const dnnl_matmul_desc_t *desc, dnnl_primitive_attr_t attr)
{
  dnnl_primitive_desc_iterator_t it;
  *pd = NULL;
  if (k->driver &&
      dnnl_primitive_desc_iterator_create(&it, desc, attr, g.engine, NULL) == dnnl_success) {
    do {
      dnnl_primitive_desc_t candidate = dnnl_primitive_desc_iterator_fetch(it);
      const char *impl = NULL;
      if (candidate &&
          dnnl_primitive_desc_query(candidate, dnnl_query_impl_info_str, 0, &impl) ==
              dnnl_success &&
          impl && !strcmp(impl, "gemm:jit"))
        *pd = candidate;
      else if (candidate)
        dnnl_primitive_desc_destroy(candidate);
    } while (!*pd && dnnl_primitive_desc_iterator_next(it) == dnnl_success);
    dnnl_primitive_desc_iterator_destroy(it);
  }
  return *pd ? dnnl_success : dnnl_primitive_desc_create(pd, desc, attr, g.engine, NULL);
}

/* A primitive for key, or NULL with the status of the failing oneDNN call. */
static dnnl_primitive_t create(const struct matmul_key *k, struct matmul_entry *e,
                               dnnl_status_t *status)
{
  dnnl_matmul_desc_t desc;
  dnnl_primitive_attr_t attr = NULL;
  dnnl_post_ops_t ops = NULL;
  dnnl_primitive_desc_t pd = NULL;
  dnnl_primitive_t prim = NULL;
  dnnl_status_t st;
  if ((st = describe(&e->a, dnnl_bf16, k->count1, k->count2, k->sa1, k->sa2, k->M, k->K, k->lda,
                     k->trans_a)) ||
      (st = describe(&e->b, dnnl_bf16, k->count1, k->count2, k->sb1, k->sb2, k->K, k->N, k->ldb,
                     k->trans_b)) ||
      (st = describe(&e->c, k->c_bf16 ? dnnl_bf16 : dnnl_f32, k->count1, k->count2, k->sc1,
                     k->sc2, k->M, k->N, k->ldc, 0)) ||
      (k->bias && (st = describe(&e->bias, dnnl_f32, 1, 1, 0, 0, 1, k->N, k->N, 0))) ||
      (st = dnnl_matmul_desc_init(&desc, &e->a, &e->b, k->bias ? &e->bias : NULL, &e->c)) ||
      (st = dnnl_primitive_attr_create(&attr)) ||
      (st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user)))
    goto done;
  if (k->alpha != 1.0f && (st = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &k->alpha)))
    goto done;
  if (k->beta != 0.0f || k->mul) { /* dst = alpha * A.B + beta * dst, or (alpha * A.B) * mul */
    if ((st = dnnl_post_ops_create(&ops)) ||
        (k->beta != 0.0f && (st = dnnl_post_ops_append_sum(ops, k->beta))) ||
        (k->mul && ((st = describe(&e->mul, dnnl_bf16, k->count1, k->count2, k->sc1, k->sc2,
                                   k->M, k->N, k->ldc, 0)) ||
                    (st = dnnl_post_ops_append_binary(ops, dnnl_binary_mul, &e->mul)))) ||
        (st = dnnl_primitive_attr_set_post_ops(attr, ops)))
      goto done;
  }
  if ((st = choose(&pd, k, &desc, attr)) || (st = dnnl_primitive_create(&prim, pd)))
    prim = NULL;
  if (prim) {
    e->scratch = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    e->scratch_bytes = dnnl_memory_desc_get_size(&e->scratch);
  }
  const char *impl = NULL;
  if (prim && dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success &&
      impl)
    snprintf(e->kernel, sizeof e->kernel, "%s", impl);
  if (impl && !strncmp(impl, "ref", 3)) /* a layout oneDNN has no fast kernel for: a bug of ours */
    fprintf(stderr, "beit: warning: oneDNN runs a %zux%zux%zu (x%zu) bf16 product on its "
                    "reference kernel '%s' (slow)\n",
            k->M, k->N, k->K, k->count1 * k->count2, impl);
done:
  if (pd)
    dnnl_primitive_desc_destroy(pd);
  if (ops)
    dnnl_post_ops_destroy(ops);
  if (attr)
    dnnl_primitive_attr_destroy(attr);
  *status = st;
  return prim;
}

static void print_profile(void)
{
  double total = 0.0;
  for (size_t i = 0; i < g.profile_count; i++)
    total += 1e-9 * (double)g.profile_rows[i].nanoseconds;
  fprintf(stderr, "bf16 products (BEIT_GEMM_PROFILE): %.3f s in all\n", total);
  for (size_t i = 0; i < g.profile_count; i++) {
    const struct profile_row *r = &g.profile_rows[i];
    const struct matmul_key *k = &r->key;
    double s = 1e-9 * (double)r->nanoseconds;
    double flop = 2.0 * (double)(k->M * k->N * k->K * k->count1 * k->count2) * (double)r->calls;
    fprintf(stderr, "  %5zu x %5zu x %5zu  x%-4zu  A%s B%s%s%s -> %s  calls %6lld  %8.3f s  %7.1f "
                    "GFLOP/s (fastest call %7.1f)  %s%s\n",
            k->M, k->N, k->K, k->count1 * k->count2, k->trans_a ? "^T" : "  ",
            k->trans_b ? "^T" : "  ", k->bias ? " +bias" : k->mul ? " *mul " : "      ",
            k->beta != 0.0f ? " +C" : "   ",
            k->c_bf16 ? "bf16" : "f32 ",
            r->calls, s, s > 0 ? 1e-9 * flop / s : 0.0,
            r->fastest > 0 ? flop / (double)r->calls / (double)r->fastest : 0.0, r->kernel,
            r->blocks > 1 ? " in row blocks" : "");
  }
}

/* Adds one timed product to its shape's row. */
static void profile_record(const struct matmul_key *k, size_t blocks, const char *kernel,
                           long long ns)
{
  pthread_mutex_lock(&g.profile_lock);
  struct profile_row *r = NULL;
  for (size_t i = 0; i < g.profile_count && !r; i++)
    if (!memcmp(&g.profile_rows[i].key, k, sizeof *k))
      r = &g.profile_rows[i];
  if (!r && g.profile_count < CACHE_MAX) {
    r = &g.profile_rows[g.profile_count++];
    memset(r, 0, sizeof *r);
    memcpy(&r->key, k, sizeof *k);
    r->blocks = blocks;
    snprintf(r->kernel, sizeof r->kernel, "%s", kernel);
  }
  if (r) {
    r->calls++;
    r->nanoseconds += ns;
    if (!r->fastest || ns < r->fastest)
      r->fastest = ns;
  }
  pthread_mutex_unlock(&g.profile_lock);
}

void beit_dnnl_profile_reset(void)
{
  pthread_mutex_lock(&g.profile_lock);
  for (size_t i = 0; i < g.profile_count; i++)
    g.profile_rows[i].calls = g.profile_rows[i].nanoseconds = g.profile_rows[i].fastest = 0;
  pthread_mutex_unlock(&g.profile_lock);
}

/* Whether bf16 matmul exists here, and whether its kernel is AMX: asked of a probe primitive. */
static void probe(void)
{
  const char *prof = getenv("BEIT_GEMM_PROFILE");
  if (prof && *prof && strcmp(prof, "0")) {
    g.profile = 1;
    atexit(print_profile);
  }
  const dnnl_version_t *v = dnnl_version();
  snprintf(g.version, sizeof g.version, "%d.%d.%d", v->major, v->minor, v->patch);
  check(dnnl_engine_create(&g.engine, dnnl_cpu, 0), "engine creation");
  if (pthread_key_create(&thread_key, thread_state_free))
    die("thread key creation", dnnl_out_of_memory);
  struct matmul_key k = {.count1 = 1, .count2 = 1, .M = 64, .N = 64, .K = 64, .lda = 64,
                         .ldb = 64, .ldc = 64, .alpha = 1.0f};
  struct matmul_entry e;
  dnnl_status_t st;
  dnnl_primitive_t prim = create(&k, &e, &st);
  const char *impl = "none";
  if (prim) {
    const_dnnl_primitive_desc_t pd;
    if (dnnl_primitive_get_primitive_desc(prim, &pd) == dnnl_success)
      dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    g.bf16 = 1;
    g.amx = strstr(impl, "amx") != NULL;
  }
  dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
  const char *name = isa == dnnl_cpu_isa_avx512_core_amx    ? "avx512_core_amx"
                     : isa == dnnl_cpu_isa_avx512_core_bf16 ? "avx512_core_bf16"
                     : isa == dnnl_cpu_isa_avx512_core_vnni ? "avx512_core_vnni"
                     : isa == dnnl_cpu_isa_avx512_core      ? "avx512_core"
                     : isa == dnnl_cpu_isa_avx2_vnni        ? "avx2_vnni"
                     : isa == dnnl_cpu_isa_avx2             ? "avx2"
                                                            : "other";
  /* the effective ISA is the cap; the probe's kernel says what the hardware gave under it */
  snprintf(g.isa, sizeof g.isa, "%s, bf16 matmul %s", name,
           !prim ? "unavailable" : g.amx ? "on AMX" : "without AMX");
  if (prim)
    dnnl_primitive_destroy(prim);
}

static void ensure_probed(void) { pthread_once(&g.once, probe); }

int beit_dnnl_bf16_available(void)
{
  ensure_probed();
  return g.bf16;
}

int beit_dnnl_has_amx(void)
{
  ensure_probed();
  return g.amx;
}

const char *beit_dnnl_isa(void)
{
  ensure_probed();
  return g.isa;
}

const char *beit_dnnl_version(void)
{
  ensure_probed();
  return g.version;
}

/* The cached entry for k or NULL; call with g.lock held (read or write). */
static struct matmul_entry *find(const struct matmul_key *k)
{
  for (size_t i = 0; i < g.count; i++)
    if (!memcmp(&g.cache[i].key, k, sizeof *k))
      return &g.cache[i];
  return NULL;
}

/* Create the entry for k. A full cache replaces entries round-robin (a model has a few dozen
 * distinct products; more means shapes that vary, e.g. every batch size of a server). The write
 * lock waits for every running product, so no entry is destroyed while in use. */
static void insert(const struct matmul_key *k)
{
  pthread_rwlock_wrlock(&g.lock);
  if (!find(k)) {
    struct matmul_entry e = {0};
    dnnl_status_t st;
    memcpy(&e.key, k, sizeof *k); /* bytewise, padding included: keys are compared by memcmp */
    e.prim = create(k, &e, &st);
    if (!e.prim)
      die("bf16 matmul primitive creation", st);
    size_t slot = g.count < CACHE_MAX ? g.count++ : g.next_evict++ % CACHE_MAX;
    if (g.cache[slot].prim)
      dnnl_primitive_destroy(g.cache[slot].prim);
    memcpy(&g.cache[slot], &e, sizeof e);
  }
  pthread_rwlock_unlock(&g.lock);
}

/* This thread's stream and a scratchpad of at least bytes (grown to the largest need, kept). */
static struct thread_state *thread_state(size_t bytes)
{
  struct thread_state *ts = pthread_getspecific(thread_key);
  if (!ts) {
    if (!(ts = calloc(1, sizeof *ts)) || pthread_setspecific(thread_key, ts))
      die("thread state allocation", dnnl_out_of_memory);
    check(dnnl_stream_create(&ts->stream, g.engine, dnnl_stream_default_flags),
          "stream creation");
  }
  if (bytes > ts->scratch_bytes) {
    free(ts->scratch);
    ts->scratch = NULL;
    ts->scratch_bytes = 0;
    if (posix_memalign(&ts->scratch, 64, bytes))
      die("scratchpad allocation", dnnl_out_of_memory);
    ts->scratch_bytes = bytes;
  }
  return ts;
}

static void execute(struct matmul_entry *e, const void *a, const void *b, const float *bias,
                    const void *mul, void *c)
{
  struct thread_state *ts = thread_state(e->scratch_bytes);
  dnnl_memory_t ma = NULL, mb = NULL, mc = NULL, ms = NULL, mbias = NULL, mmul = NULL;
  check(dnnl_memory_create(&ma, &e->a, g.engine, (void *)a), "memory creation");
  check(dnnl_memory_create(&mb, &e->b, g.engine, (void *)b), "memory creation");
  check(dnnl_memory_create(&mc, &e->c, g.engine, c), "memory creation");
  check(dnnl_memory_create(&ms, &e->scratch, g.engine, ts->scratch), "memory creation");
  dnnl_exec_arg_t args[6] = {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc},
                             {DNNL_ARG_SCRATCHPAD, ms}};
  int nargs = 4;
  if (bias) {
    check(dnnl_memory_create(&mbias, &e->bias, g.engine, (void *)bias), "memory creation");
    args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, mbias};
  }
  if (mul) {
    check(dnnl_memory_create(&mmul, &e->mul, g.engine, (void *)mul), "memory creation");
    args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, mmul};
  }
  check(dnnl_primitive_execute(e->prim, ts->stream, nargs, args), "matmul execution");
  check(dnnl_stream_wait(ts->stream), "stream wait");
  dnnl_memory_destroy(ma);
  dnnl_memory_destroy(mb);
  dnnl_memory_destroy(mc);
  dnnl_memory_destroy(ms);
  if (mbias)
    dnnl_memory_destroy(mbias);
  if (mmul)
    dnnl_memory_destroy(mmul);
}

/* One product (or batch) on the cached primitive of its key, on the calling thread's stream;
 * copies the name of oneDNN's kernel into kernel (32 bytes). */
static void product(const struct matmul_key *k, const void *a, const void *b, const float *bias,
                    const void *mul, void *c, char *kernel)
{
  for (;;) {
    pthread_rwlock_rdlock(&g.lock);
    struct matmul_entry *e = find(k);
    if (e) {
      execute(e, a, b, bias, mul, c);
      memcpy(kernel, e->kernel, sizeof e->kernel);
      pthread_rwlock_unlock(&g.lock);
      return;
    }
    pthread_rwlock_unlock(&g.lock);
    insert(k);
  }
}

void beit_dnnl_matmul(struct beit_result C, struct beit_operand A, struct beit_operand B,
                      const float *bias, size_t M, size_t N, size_t K, float alpha, float beta,
                      const struct beit_batch_strides *bs)
{
  ensure_probed();
  BEIT_ASSERT(g.bf16 && A.dtype == BEIT_DTYPE_BF16 && B.dtype == BEIT_DTYPE_BF16);
  beit_gemm_full_teams();
  struct matmul_key k;
  memset(&k, 0, sizeof k); /* the key is compared bytewise */
  k.count1 = bs->count1, k.count2 = bs->count2, k.M = M, k.N = N, k.K = K;
  k.lda = A.ld, k.ldb = B.ld, k.ldc = C.ld, k.trans_a = A.trans, k.trans_b = B.trans;
  k.bias = bias != NULL;
  k.c_bf16 = C.dtype == BEIT_DTYPE_BF16;
  k.mul = C.mul != NULL;
  k.driver = prefer_gemm_driver(bs->count1 * bs->count2, M, K);
  BEIT_ASSERT(!C.mul || (k.c_bf16 && beta == 0.0f));
  BEIT_ASSERT(!bias || (bs->count1 == 1 && bs->count2 == 1 && alpha == 1.0f && beta == 0.0f));
  k.sa1 = bs->sa1, k.sa2 = bs->sa2, k.sb1 = bs->sb1, k.sb2 = bs->sb2;
  k.sc1 = bs->sc1, k.sc2 = bs->sc2, k.alpha = alpha, k.beta = beta;
  double t0 = g.profile ? beit_clock_now() : 0.0;
  char kernel[32];
  const size_t blocks = beit_dnnl_row_blocks(M, bs->count1 * bs->count2);
  if (blocks == 1) {
    product(&k, A.data, B.data, bias, C.mul, C.data, kernel);
  } else { /* block i: rows [i * rows, (i + 1) * rows), a multiple of brgemm's 32-row block; a
            * loop, so that a team given fewer threads (OMP_DYNAMIC) still runs every block */
    const size_t rows = ((M + blocks - 1) / blocks + 31) / 32 * 32;
    const size_t c_size = k.c_bf16 ? sizeof(beit_bf16) : sizeof(float);
#pragma omp parallel for num_threads((int)blocks) schedule(static, 1)
    for (size_t i = 0; i < blocks; i++) {
      size_t r0 = i * rows;
      if (r0 >= M)
        continue;
      struct matmul_key part = k;
      part.M = M - r0 < rows ? M - r0 : rows;
      const beit_bf16 *a = (const beit_bf16 *)A.data + (A.trans ? r0 : r0 * A.ld);
      const beit_bf16 *mul = C.mul ? C.mul + r0 * C.ld : NULL;
      char part_kernel[32];
      product(&part, a, B.data, bias, mul, (char *)C.data + r0 * C.ld * c_size, part_kernel);
      if (i == 0)
        memcpy(kernel, part_kernel, sizeof kernel);
    }
  }
  if (g.profile)
    profile_record(&k, blocks, kernel, (long long)(1e9 * (beit_clock_now() - t0)));
}
