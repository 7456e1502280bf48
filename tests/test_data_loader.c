/* The loader: same seed -> same samples in the same order whatever the worker count; a resumed
 * cursor continues exactly (also across an epoch boundary); 2 ranks x B equal 1 rank x 2B step
 * by step and see each sample of an epoch exactly once; corrupt records are skipped, counted,
 * logged and replaced deterministically; multi-label targets; eval order and short last batch;
 * records whose image chunk fails its checksum mid-run are skipped, counted once and logged with
 * the shard and record; a shard deleted, replaced or resized under an open dataset is named. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>
#include <stb/stb_image_write.h>

#include "data_internal.h"
#include "testing.h"

static char root[64];

static int is_bad(size_t i, const size_t *bad, size_t nbad)
{
  for (size_t k = 0; k < nbad; k++)
    if (bad[k] == i)
      return 1;
  return 0;
}

/* n records in two shards; records listed in bad hold garbage bytes. Multilabel: record i has
 * labels {i % C, (i + 2) % C} (one label when i % 3 == 0). */
static void make_dataset(const char *dir, size_t n, const size_t *bad, size_t nbad, int multilabel)
{
  mkdir(dir, 0755);
  enum beit_data_task task = multilabel ? BEIT_DATA_TASK_MULTILABEL : BEIT_DATA_TASK_MULTICLASS;
  const int C = 5;
  char *names[5] = {"a", "b", "c", "d", "e"};
  size_t counts[2] = {n / 2, n - n / 2};
  struct beit_error err;
  size_t i = 0;
  for (int s = 0; s < 2; s++) {
    struct beit_shard_writer w;
    char path[256];
    snprintf(path, sizeof path, "%s/shard-%05d.h5", dir, s);
    CHECK(beit_shard_writer_init(&w, path, task, 2048, &err) == 0);
    for (size_t k = 0; k < counts[s]; k++, i++) {
      int iw = 20 + (int)(i * 7 % 23), ih = 18 + (int)(i * 5 % 19);
      unsigned char *px = malloc((size_t)iw * ih * 3);
      for (int p = 0; p < iw * ih * 3; p++)
        px[p] = (unsigned char)(p * (i + 3) + i * 17);
      struct test_mem m = {0};
      stbi_write_png_to_func(test_mem_append, &m, iw, ih, 3, px, iw * 3);
      free(px);
      if (is_bad(i, bad, nbad))
        memset(m.p + 8, 0x11, m.n - 8 > 64 ? 64 : m.n - 8); /* header intact, data garbage */
      int32_t labels[2] = {(int32_t)(i % C), (int32_t)((i + 2) % C)};
      char key[64];
      snprintf(key, sizeof key, "rec%03zu", i);
      CHECK(beit_shard_writer_add(&w, m.p, m.n, labels, multilabel ? (i % 3 ? 2 : 1) : 1, key, &err) == 0);
      free(m.p);
    }
    CHECK(beit_shard_writer_close(&w, &err) == 0);
  }
  CHECK(beit_data_index_write(dir, task, names, C, counts, 2, &err) == 0);
}

static void options(struct beit_loader_options *o, enum beit_data_mode mode, size_t B, int W,
                    int rank, int workers)
{
  beit_loader_defaults(o);
  beit_data_transform_defaults(&o->transform, mode);
  o->transform.image_size = 24;
  if (mode == BEIT_DATA_MODE_PRETRAIN)
    o->transform.second_size = 12;
  o->batch_size = B;
  o->world_size = W;
  o->rank = rank;
  o->num_workers = workers;
  o->num_buffers = 3;
  o->seed = 11;
  o->log = NULL;
}

/* A copy of a batch for comparisons. */
struct snap {
  size_t count;
  int64_t idx[16];
  int32_t lab[16];
  float *a, *b;
  uint64_t epoch, position;
};

static void take(struct snap *s, const struct beit_loader_batch *b, size_t sa, size_t sb)
{
  s->count = b->count;
  memcpy(s->idx, b->indices, b->count * sizeof(int64_t));
  if (b->labels)
    memcpy(s->lab, b->labels, b->count * sizeof(int32_t));
  s->a = malloc(sizeof(float) * (b->count * sa + 1));
  memcpy(s->a, b->view_a, sizeof(float) * b->count * sa);
  s->b = NULL;
  if (b->view_b) {
    s->b = malloc(sizeof(float) * (b->count * sb + 1));
    memcpy(s->b, b->view_b, sizeof(float) * b->count * sb);
  }
  s->epoch = b->epoch;
  s->position = b->position;
}

static void drop(struct snap *s)
{
  free(s->a);
  free(s->b);
}

static int same(const struct snap *x, const struct snap *y, size_t sa, size_t sb)
{
  return x->count == y->count && !memcmp(x->idx, y->idx, x->count * sizeof(int64_t)) &&
         !memcmp(x->a, y->a, sizeof(float) * x->count * sa) &&
         (!x->b || !memcmp(x->b, y->b, sizeof(float) * x->count * sb)) && x->epoch == y->epoch &&
         x->position == y->position;
}

/* Run steps batches from cursor c into out[]. */
static void run(const char *dir, const struct beit_loader_options *o, const struct beit_loader_cursor *c,
                int steps, struct snap *out, struct beit_loader_cursor *after, struct beit_loader_stats *st)
{
  struct beit_loader *ld;
  struct beit_error err = {0};
  CHECK_MSG(beit_loader_init(&ld, dir, o, c, &err) == 0, "%s", err.message);
  if (!ld)
    return;
  size_t S = (size_t)o->transform.image_size, s2 = (size_t)o->transform.second_size;
  for (int k = 0; k < steps; k++) {
    const struct beit_loader_batch *b;
    CHECK_MSG(beit_loader_next(ld, &b, &err) == 0, "%s", err.message);
    if (!b) {
      out[k].count = 0;
      out[k].a = out[k].b = NULL;
      continue;
    }
    take(&out[k], b, 3 * S * S, 3 * s2 * s2);
  }
  if (after)
    beit_loader_cursor(ld, after);
  if (st)
    beit_loader_stats(ld, st);
  beit_loader_free(ld);
}

static void test_permutation(void)
{
  const uint64_t ns[] = {1, 2, 3, 5, 17, 64, 100, 1000, 4097};
  for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
    uint64_t n = ns[k];
    unsigned char *hit = calloc(n, 1);
    uint64_t fixed = 0, diff_epoch = 0;
    int ok = 1;
    for (uint64_t p = 0; p < n; p++) {
      uint64_t v = beit_data_permute(p, n, 3, 0);
      ok &= v < n && !hit[v];
      if (v < n)
        hit[v] = 1;
      fixed += v == p;
      diff_epoch += v != beit_data_permute(p, n, 3, 1);
    }
    CHECK_MSG(ok, "permutation of %llu is not a bijection", (unsigned long long)n);
    if (n >= 100) {
      CHECK_MSG(fixed < n / 10, "n=%llu: %llu fixed points", (unsigned long long)n, (unsigned long long)fixed);
      CHECK(diff_epoch > n / 2);
    }
    free(hit);
  }
}

static void test_determinism_and_resume(const char *dir)
{
  struct beit_loader_options o1, o3;
  options(&o1, BEIT_DATA_MODE_PRETRAIN, 4, 1, 0, 1);
  options(&o3, BEIT_DATA_MODE_PRETRAIN, 4, 1, 0, 3);
  const size_t sa = 3 * 24 * 24, sb = 3 * 12 * 12;
  enum { STEPS = 16 }; /* 53 records / 4 = 13 steps per epoch: crosses into epoch 1 */
  struct snap a[STEPS], b[STEPS], r[STEPS];
  struct beit_loader_cursor mid;
  run(dir, &o1, NULL, STEPS, a, NULL, NULL);
  run(dir, &o3, NULL, STEPS, b, NULL, NULL);
  for (int k = 0; k < STEPS; k++)
    CHECK_MSG(same(&a[k], &b[k], sa, sb), "step %d differs between 1 and 3 workers", k);
  CHECK(a[12].epoch == 0 && a[13].epoch == 1 && a[13].position == 0 && a[12].position == 48);
  /* Epochs differ in order. */
  CHECK(memcmp(a[0].idx, a[13].idx, sizeof a[0].idx[0] * 4) != 0);
  /* Resume after 5 and after 12 steps (the next step starts epoch 1). */
  const int cuts[2] = {5, 12};
  for (int c = 0; c < 2; c++) {
    struct snap first[12];
    run(dir, &o3, NULL, cuts[c], first, &mid, NULL);
    for (int k = 0; k < cuts[c]; k++)
      drop(&first[k]);
    CHECK(mid.position == (uint64_t)(cuts[c] % 13) * 4 && mid.epoch == (uint64_t)(cuts[c] / 13));
    run(dir, &o1, &mid, STEPS - cuts[c], r, NULL, NULL);
    for (int k = cuts[c]; k < STEPS; k++) {
      CHECK_MSG(same(&a[k], &r[k - cuts[c]], sa, sb), "resumed at %d: step %d differs", cuts[c], k);
      drop(&r[k - cuts[c]]);
    }
  }
  /* A different seed gives a different order. */
  struct beit_loader_options os = o1;
  os.seed = 12;
  struct snap d[1];
  run(dir, &os, NULL, 1, d, NULL, NULL);
  CHECK(memcmp(d[0].idx, a[0].idx, 4 * sizeof(int64_t)) != 0);
  drop(&d[0]);
  /* A cursor that is not a step boundary is refused. */
  struct beit_loader *ld;
  struct beit_error err = {0};
  struct beit_loader_cursor badc = {0, 6};
  CHECK(beit_loader_init(&ld, dir, &o1, &badc, &err) == BEIT_STATUS_CONFIG);
  for (int k = 0; k < STEPS; k++)
    drop(&a[k]), drop(&b[k]);
}

static void test_ranks(const char *dir, size_t n)
{
  struct beit_loader_options one, r0, r1;
  options(&one, BEIT_DATA_MODE_PRETRAIN, 4, 1, 0, 2);
  options(&r0, BEIT_DATA_MODE_PRETRAIN, 2, 2, 0, 2);
  options(&r1, BEIT_DATA_MODE_PRETRAIN, 2, 2, 1, 1);
  const size_t sa = 3 * 24 * 24;
  const int steps = (int)(n / 4);
  struct snap s1[64], s0[64], s2[64];
  run(dir, &one, NULL, steps, s1, NULL, NULL);
  run(dir, &r0, NULL, steps, s0, NULL, NULL);
  run(dir, &r1, NULL, steps, s2, NULL, NULL);
  unsigned char *seen = calloc(n, 1);
  for (int k = 0; k < steps; k++) {
    int ok = s0[k].count == 2 && s2[k].count == 2 &&
             !memcmp(s1[k].idx, s0[k].idx, 2 * sizeof(int64_t)) &&
             !memcmp(s1[k].idx + 2, s2[k].idx, 2 * sizeof(int64_t)) &&
             !memcmp(s1[k].a, s0[k].a, sizeof(float) * 2 * sa) &&
             !memcmp(s1[k].a + 2 * sa, s2[k].a, sizeof(float) * 2 * sa);
    CHECK_MSG(ok, "step %d: 2 ranks x 2 differ from 1 rank x 4", k);
    for (int i = 0; i < 2; i++) {
      seen[s0[k].idx[i]]++;
      seen[s2[k].idx[i]]++;
    }
    drop(&s1[k]), drop(&s0[k]), drop(&s2[k]);
  }
  for (size_t i = 0; i < n; i++)
    CHECK_MSG(seen[i] == 1, "record %zu seen %d times in an epoch over 2 ranks", i, seen[i]);
  free(seen);

  /* A cursor saved by 1 rank x 4 resumes under 2 ranks x 2 (same W*B) with the same samples. */
  struct beit_loader_cursor cur;
  struct snap head[3], full[6], t0[3], t1[3];
  run(dir, &one, NULL, 3, head, &cur, NULL);
  run(dir, &one, NULL, 6, full, NULL, NULL);
  run(dir, &r0, &cur, 3, t0, NULL, NULL);
  run(dir, &r1, &cur, 3, t1, NULL, NULL);
  CHECK(cur.epoch == 0 && cur.position == 12);
  for (int k = 0; k < 3; k++) {
    CHECK_MSG(!memcmp(full[3 + k].idx, t0[k].idx, 2 * sizeof(int64_t)) &&
                  !memcmp(full[3 + k].idx + 2, t1[k].idx, 2 * sizeof(int64_t)) &&
                  !memcmp(full[3 + k].a + 2 * sa, t1[k].a, sizeof(float) * 2 * sa),
              "resume under 2 ranks: step %d differs", 3 + k);
    drop(&head[k]), drop(&t0[k]), drop(&t1[k]);
  }
  for (int k = 0; k < 6; k++)
    drop(&full[k]);

  /* Eval, no drop_last, N not divisible: every record exactly once, short last batches. */
  options(&r0, BEIT_DATA_MODE_EVAL, 5, 2, 0, 2);
  options(&r1, BEIT_DATA_MODE_EVAL, 5, 2, 1, 2);
  r0.shuffle = r1.shuffle = 0;
  r0.drop_last = r1.drop_last = 0;
  r0.loop = r1.loop = 0;
  unsigned char *cnt = calloc(n, 1);
  for (int rank = 0; rank < 2; rank++) {
    struct snap e[64];
    int steps_e = (int)((n + 9) / 10) + 1;
    run(dir, rank ? &r1 : &r0, NULL, steps_e, e, NULL, NULL);
    for (int k = 0; k < steps_e; k++) {
      for (size_t i = 0; i < e[k].count; i++) {
        cnt[e[k].idx[i]]++;
        CHECK((size_t)e[k].idx[i] == (size_t)k * 10 + (size_t)rank * 5 + i);
      }
      drop(&e[k]);
    }
    CHECK(e[steps_e - 1].count == 0); /* NULL at the end */
  }
  for (size_t i = 0; i < n; i++)
    CHECK_MSG(cnt[i] == 1, "eval: record %zu seen %d times", i, cnt[i]);
  free(cnt);
}

static void test_corrupt(const char *dir, size_t n, const size_t *bad, size_t nbad)
{
  struct beit_loader_options o;
  options(&o, BEIT_DATA_MODE_PRETRAIN, 4, 1, 0, 2);
  FILE *log = tmpfile();
  o.log = log;
  int steps = (int)(n / 4);
  struct snap s[64], t[64];
  struct beit_loader_stats st;
  run(dir, &o, NULL, steps, s, NULL, &st);
  o.log = NULL;
  o.num_workers = 1;
  run(dir, &o, NULL, steps, t, NULL, NULL);
  /* Expected skips: each position whose record is bad, plus the chain to the next good one. */
  size_t want = 0;
  for (uint64_t p = 0; p < (uint64_t)steps * 4; p++)
    for (uint64_t q = p; is_bad(beit_data_permute(q % n, n, o.seed, 0), bad, nbad); q++)
      want++;
  CHECK_MSG(st.skipped == want, "skipped %zu, expected %zu", st.skipped, want);
  CHECK(want > 0);
  for (int k = 0; k < steps; k++) {
    CHECK(s[k].count == 4);
    for (size_t i = 0; i < 4; i++)
      CHECK_MSG(!is_bad((size_t)s[k].idx[i], bad, nbad), "bad record %lld in a batch", (long long)s[k].idx[i]);
    CHECK_MSG(same(&s[k], &t[k], 3 * 24 * 24, 3 * 12 * 12), "replacement not deterministic at %d", k);
    drop(&s[k]), drop(&t[k]);
  }
  char text[4096];
  test_read_log(log, text, sizeof text);
  for (size_t k = 0; k < nbad; k++) {
    char key[32];
    snprintf(key, sizeof key, "skip rec%03zu", bad[k]);
    CHECK_MSG(strstr(text, key), "no log line for %s in:\n%s", key, text);
  }
}

static void test_multilabel(const char *dir)
{
  struct beit_loader_options o;
  options(&o, BEIT_DATA_MODE_FINETUNE, 4, 1, 0, 2);
  struct beit_loader *ld;
  struct beit_error err = {0};
  CHECK_MSG(beit_loader_init(&ld, dir, &o, NULL, &err) == 0, "%s", err.message);
  if (!ld)
    return;
  for (int k = 0; k < 3; k++) {
    const struct beit_loader_batch *b;
    CHECK(beit_loader_next(ld, &b, &err) == 0 && b);
    CHECK(b->labels == NULL && b->targets && b->view_b == NULL);
    for (size_t i = 0; i < b->count; i++) {
      int64_t r = b->indices[i];
      for (int c = 0; c < 5; c++) {
        float want = (c == r % 5 || (r % 3 && c == (r + 2) % 5)) ? 1.0f : 0.0f;
        CHECK_MSG(b->targets[i * 5 + c] == want, "record %lld class %d", (long long)r, c);
      }
    }
  }
  struct beit_loader_stats st;
  beit_loader_stats(ld, &st);
  CHECK(st.batches == 3 && st.wait_seconds >= 0);
  beit_loader_free(ld);
}

/* Byte offset and length of images chunk k of a shard, and the record range it overlaps. */
static void chunk_records(const char *shard, hsize_t k, haddr_t *addr, size_t *first,
                          size_t *last)
{
  hid_t f = H5Fopen(shard, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, "images", H5P_DEFAULT), sp = H5Dget_space(d);
  hsize_t off[1], size, chunk[1];
  unsigned mask;
  *addr = HADDR_UNDEF;
  H5Dget_chunk_info(d, sp, k, off, &mask, addr, &size);
  hid_t dcpl = H5Dget_create_plist(d);
  H5Pget_chunk(dcpl, 1, chunk);
  H5Pclose(dcpl);
  hid_t od = H5Dopen2(f, "offsets", H5P_DEFAULT), osp = H5Dget_space(od);
  hsize_t n1;
  H5Sget_simple_extent_dims(osp, &n1, NULL);
  int64_t *o = malloc(n1 * sizeof *o);
  H5Dread(od, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, o);
  *first = (size_t)-1;
  *last = 0;
  for (size_t i = 0; i + 1 < n1; i++) /* records with bytes in [off, off + chunk) */
    if (o[i + 1] > (int64_t)off[0] && o[i] < (int64_t)(off[0] + chunk[0])) {
      if (*first == (size_t)-1)
        *first = i;
      *last = i;
    }
  free(o);
  H5Sclose(osp), H5Dclose(od), H5Sclose(sp), H5Dclose(d), H5Fclose(f);
}

static void copy_dir(const char *from, const char *to)
{
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf %s && cp -r %s %s", to, from, to);
  CHECK(system(cmd) == 0);
}

/* An image chunk of shard-00001 whose bytes flip after packing: the records it holds fail their
 * checksum when read and are skipped like undecodable ones (counted once each, logged with the
 * shard file and the record), the run goes on, and no batch holds them. */
static void test_checksum_midrun(const char *dir)
{
  char bad[128], shard[256];
  snprintf(bad, sizeof bad, "%s/broken", root);
  copy_dir(dir, bad);
  snprintf(shard, sizeof shard, "%s/shard-00001.h5", bad);
  haddr_t addr;
  size_t first, last;
  chunk_records(shard, 1, &addr, &first, &last);
  CHECK(addr != HADDR_UNDEF && first <= last);
  FILE *fp = fopen(shard, "r+b");
  fseek(fp, (long)addr + 100, SEEK_SET);
  fputc(0xAB ^ 0x12, fp);
  fputc(0x77, fp);
  fclose(fp);
  size_t n0 = 24; /* shard-00000's records come first in the global numbering */
  struct beit_loader_options o;
  options(&o, BEIT_DATA_MODE_PRETRAIN, 4, 1, 0, 2);
  FILE *log = tmpfile();
  o.log = log;
  struct beit_loader *ld;
  struct beit_error err = {0};
  CHECK_MSG(beit_loader_init(&ld, bad, &o, NULL, &err) == 0, "%s", err.message);
  if (!ld)
    return;
  enum beit_status st = BEIT_STATUS_OK;
  int seen_bad = 0;
  for (int k = 0; k < 36 && !st; k++) { /* three epochs of 12 steps: every record is read */
    const struct beit_loader_batch *b;
    st = beit_loader_next(ld, &b, &err);
    for (size_t i = 0; !st && i < b->count; i++)
      seen_bad |= (size_t)b->indices[i] >= n0 + first && (size_t)b->indices[i] <= n0 + last;
  }
  CHECK_MSG(st == BEIT_STATUS_OK, "the run goes on past the damaged chunk: %s", err.message);
  CHECK(!seen_bad);
  struct beit_loader_stats ls;
  beit_loader_stats(ld, &ls);
  size_t want = last - first + 1;
  CHECK_MSG(ls.corrupt == want, "%zu records counted as failing their checksum, %zu expected",
            ls.corrupt, want);
  CHECK(ls.skipped >= want);
  beit_loader_free(ld);
  char text[8192];
  test_read_log(log, text, sizeof text);
  for (size_t i = first; i <= last; i++) {
    char line[512];
    snprintf(line, sizeof line, "skip %s: record %zu (#%zu) failed its Fletcher32 checksum",
             shard, i, n0 + i);
    char *at = strstr(text, line);
    CHECK_MSG(at && !strstr(at + 1, line), "one log line '%s' in:\n%s", line, text);
  }
}

/* A shard deleted, replaced or resized while the loader holds it open: reads of the open copy
 * still work (nothing is lost mid-batch), beit_data_check_files names the file and the change,
 * and a record whose bytes are gone is an IO error naming the file, not a skipped record. */
static void test_shard_changed(const char *dir)
{
  char moved[128], shard[256], other[256];
  snprintf(moved, sizeof moved, "%s/moved", root);
  snprintf(shard, sizeof shard, "%s/shard-00000.h5", moved);
  snprintf(other, sizeof other, "%s/shard-00001.h5", moved);
  struct beit_error err = {0};
  struct beit_data_record rec = {0};
  for (int change = 0; change < 3; change++) {
    static const char *const what[] = {"deleted", "replaced", "changed size"};
    copy_dir(dir, moved);
    struct beit_dataset *ds = NULL;
    CHECK(beit_data_open(&ds, moved, &err) == 0);
    if (!ds)
      return;
    CHECK(beit_data_check_files(ds, &err) == BEIT_STATUS_OK);
    char cmd[600];
    if (change == 0)
      CHECK(unlink(shard) == 0);
    else if (change == 1)
      snprintf(cmd, sizeof cmd, "cp %s %s.new && mv %s.new %s", other, shard, shard, shard);
    else
      snprintf(cmd, sizeof cmd, "truncate -s 4096 %s", shard);
    if (change)
      CHECK(system(cmd) == 0);
    CHECK(beit_data_check_files(ds, &err) == BEIT_STATUS_IO);
    CHECK_MSG(strstr(err.message, shard) && strstr(err.message, what[change]), "%s",
              err.message);
    if (change < 2) /* the open file still reads */
      CHECK_MSG(beit_data_read(ds, 23, &rec, &err) == 0, "%s", err.message);
    beit_data_close(ds);
  }
  beit_data_record_free(&rec);
  /* Cut short under a running loader (in order, 1 worker, 2 buffers: steps 0 and 1 are read
   * before the cut): the records whose chunks are gone read as zeros whose checksum holds and do
   * not decode; the loader then finds the shard changed and stops naming it, rather than skip
   * them as bad records. */
  copy_dir(dir, moved);
  struct beit_loader_options o;
  options(&o, BEIT_DATA_MODE_PRETRAIN, 4, 1, 0, 1);
  o.shuffle = 0;
  o.num_buffers = 2;
  struct beit_loader *ld;
  CHECK_MSG(beit_loader_init(&ld, moved, &o, NULL, &err) == 0, "%s", err.message);
  if (!ld)
    return;
  const struct beit_loader_batch *b;
  CHECK(beit_loader_next(ld, &b, &err) == 0); /* waits until step 0 is read */
  CHECK(truncate(shard, 4096) == 0);
  enum beit_status st = BEIT_STATUS_OK;
  for (int k = 1; k < 6 && !st; k++)
    st = beit_loader_next(ld, &b, &err);
  CHECK(st == BEIT_STATUS_IO);
  CHECK_MSG(strstr(err.message, shard) && strstr(err.message, "changed size"), "%s",
            err.message);
  struct beit_loader_stats ls;
  beit_loader_stats(ld, &ls);
  CHECK(ls.skipped == 0 && ls.corrupt == 0);
  beit_loader_free(ld);
}

int main(void)
{
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  if (test_mkdtemp(root, sizeof root, "data_loader_XXXXXX"))
    return 1;
  char clean[128], dirty[128], multi[128];
  snprintf(clean, sizeof clean, "%s/clean", root);
  snprintf(dirty, sizeof dirty, "%s/dirty", root);
  snprintf(multi, sizeof multi, "%s/multi", root);
  const size_t bad[3] = {4, 20, 21};
  make_dataset(clean, 48, NULL, 0, 0);
  make_dataset(dirty, 53, bad, 3, 0);
  make_dataset(multi, 30, NULL, 0, 1);
  test_permutation();
  test_determinism_and_resume(dirty);
  test_ranks(clean, 48);
  test_corrupt(dirty, 53, bad, 3);
  test_multilabel(multi);
  test_checksum_midrun(clean);
  test_shard_changed(clean);
  test_rmtree_if_passed(root);
  return test_summary("test_data_loader");
}
