/* `beit pack`: items from a source -> shuffled -> read and decode-checked in parallel ->
 * shards of about shard_bytes -> index.json, all inside output.partial/, renamed to output at
 * the end so a dataset folder is either complete or absent. Bytes are stored as found. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "checkpoint.h"
#include "config_table.h"
#include "pack_internal.h"

enum { BLOCK = 512 };

void beit_data_pack_defaults(struct beit_data_pack_options *opt)
{
  memset(opt, 0, sizeof *opt);
  opt->source = BEIT_DATA_SOURCE_FOLDER;
  opt->split = "train";
  opt->shard_bytes = (size_t)512 << 20;
  opt->chunk_bytes = 0; /* auto */
  opt->seed = 0;
  opt->shuffle = 1;
  opt->log = stderr;
}

/* One item's bytes after the check: owned buffer, or a reason it was skipped. */
struct checked {
  unsigned char *bytes;
  size_t size;
  int ok;
  char reason[512];
};

struct check_job {
  struct beit_pack_item *items;
  const size_t *order;
  struct checked *out;
  size_t begin, end;
  atomic_size_t next;
};

static int read_file(const char *path, unsigned char **data, size_t *size, char *why, size_t nwhy)
{
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(why, nwhy, "cannot open: %s", strerror(errno));
    return -1;
  }
  enum beit_status st = beit_read_stream(f, data, size);
  fclose(f);
  if (st)
    snprintf(why, nwhy, "%s", st == BEIT_STATUS_NOMEM ? "out of memory" : "read error");
  return st ? -1 : 0;
}

static void *check_main(void *arg)
{
  struct check_job *job = arg;
  for (;;) {
    size_t k = atomic_fetch_add(&job->next, 1) + job->begin;
    if (k >= job->end)
      break;
    struct beit_pack_item *it = &job->items[job->order[k]];
    struct checked *c = &job->out[k - job->begin];
    c->ok = 0;
    c->bytes = NULL;
    if (it->path) {
      if (read_file(it->path, &c->bytes, &c->size, c->reason, sizeof c->reason))
        continue;
    } else {
      c->bytes = it->data;
      c->size = it->size;
    }
    struct beit_data_image img;
    struct beit_error e = {0};
    if (beit_data_decode(&img, c->bytes, c->size, it->key, &e) == BEIT_STATUS_OK)
      c->ok = 1;
    else
      snprintf(c->reason, sizeof c->reason, "%s", e.message);
    beit_data_image_free(&img);
  }
  return NULL;
}

static void progress(const struct beit_data_pack_options *opt, size_t done, size_t total,
                     size_t skipped, double t0, int final)
{
  if (!opt->log)
    return;
  double el = beit_clock_now() - t0, rate = el > 0 ? (double)done / el : 0;
  double eta = rate > 0 ? (double)(total - done) / rate : 0;
  fprintf(opt->log, "%spack: %zu/%zu images, %zu skipped, %.0f img/s, %s %.0fs%s",
          opt->progress_tty ? "\r" : "", done, total, skipped, rate, final ? "took" : "ETA",
          final ? el : eta, opt->progress_tty && !final ? "" : "\n");
  fflush(opt->log);
}

/* Remove a previous dataset folder (only files named like ours) so output can be replaced. */
static enum beit_status remove_dataset_dir(const char *dir, struct beit_error *err)
{
  DIR *d = opendir(dir);
  if (!d)
    return BEIT_STATUS_OK;
  struct dirent *e;
  char path[8192];
  while ((e = readdir(d))) {
    const char *n = e->d_name;
    if (!strcmp(n, "index.json") || !strcmp(n, "index.json.tmp") ||
        (!strncmp(n, "shard-", 6) && strstr(n, ".h5"))) {
      snprintf(path, sizeof path, "%s/%s", dir, n);
      unlink(path);
    }
  }
  closedir(d);
  if (rmdir(dir) != 0)
    return beit_error_set(err, BEIT_STATUS_IO, "%s: cannot remove (holds files other than a dataset's)", dir);
  return BEIT_STATUS_OK;
}

static enum beit_status list_source(const struct beit_data_pack_options *opt,
                                    struct beit_pack_list *l, struct beit_error *err)
{
  switch (opt->source) {
  case BEIT_DATA_SOURCE_FOLDER:
    return beit_pack_list_folder(l, opt->input, err);
  case BEIT_DATA_SOURCE_MANIFEST:
    return beit_pack_list_manifest(l, opt->input, err);
  case BEIT_DATA_SOURCE_FASHION_MNIST:
    return beit_pack_list_fashion_mnist(l, opt->input, opt->split ? opt->split : "train", err);
  }
  return beit_error_set(err, BEIT_STATUS_USAGE, "unknown pack source %d", (int)opt->source);
}

/* The shard being filled and the counts of those written. */
struct pack_state {
  const struct beit_data_pack_options *opt;
  struct beit_data_pack_report *report;
  const char *dir;
  enum beit_data_task task;
  struct beit_shard_writer w;
  int open;
  size_t *counts, counts_cap;
};

static enum beit_status close_shard(struct pack_state *ps, struct beit_error *err)
{
  enum beit_status st = BEIT_STATUS_OK;
  if (!ps->open)
    return st;
  ps->open = 0;
  if (beit_data_grow((void **)&ps->counts, &ps->counts_cap, (ps->report->shards + 1) * sizeof(size_t))) {
    beit_shard_writer_free(&ps->w);
    return beit_error_set(err, BEIT_STATUS_NOMEM, "pack: out of memory");
  }
  ps->counts[ps->report->shards++] = ps->w.count;
  return beit_shard_writer_close(&ps->w, err);
}

/* One checked item: into the current shard (opening one as needed), or reported as skipped. */
static enum beit_status add_item(struct pack_state *ps, const struct beit_pack_item *it,
                                 const struct checked *c, struct beit_error *err)
{
  const struct beit_data_pack_options *opt = ps->opt;
  if (!c->ok) {
    ps->report->skipped++;
    if (opt->log)
      fprintf(opt->log, "%sskip %s: %s\n", opt->progress_tty ? "\r" : "", it->key, c->reason);
    return BEIT_STATUS_OK;
  }
  enum beit_status st;
  if (!ps->open) {
    char path[4300];
    snprintf(path, sizeof path, "%s/shard-%05zu.h5", ps->dir, ps->report->shards);
    if ((st = beit_shard_writer_init(&ps->w, path, ps->task, opt->chunk_bytes, err)))
      return st;
    ps->open = 1;
  }
  if ((st = beit_shard_writer_add(&ps->w, c->bytes, c->size, it->labels, it->num_labels, it->key, err)))
    return st;
  ps->report->written++;
  ps->report->bytes += c->size;
  return ps->w.nbytes >= opt->shard_bytes ? close_shard(ps, err) : BEIT_STATUS_OK;
}

/* Read and decode-check items order[begin, end) on nthreads threads into checked[]. */
static void check_block(struct beit_pack_list *l, const size_t *order, size_t begin, size_t end,
                        struct checked *checked, int nthreads)
{
  struct check_job job = {l->items, order, checked, begin, end, 0};
  pthread_t th[16];
  int started = 0;
  for (int t = 0; t < nthreads && t < 16; t++)
    if (pthread_create(&th[t], NULL, check_main, &job) == 0)
      started++;
  if (started == 0)
    check_main(&job);
  for (int t = 0; t < started; t++)
    pthread_join(th[t], NULL);
}

static void shuffle(size_t *order, size_t n, uint64_t seed)
{
  for (size_t i = 0; i < n; i++)
    order[i] = i;
  struct beit_rng rng;
  beit_rng_seed(&rng, seed, 0x7061636Bull /* "pack" */, 0);
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)beit_rng_int(&rng, 0, (int64_t)i - 1), t = order[i - 1];
    order[i - 1] = order[j];
    order[j] = t;
  }
}

/* opt->output without trailing slashes into output, and output.partial (emptied) into
 * partial; an existing output is refused unless opt->overwrite. */
static enum beit_status prepare_output(const struct beit_data_pack_options *opt,
                                       char output[4096], char partial[4200],
                                       struct beit_error *err)
{
  if (!opt->input || !opt->output)
    return beit_error_set(err, BEIT_STATUS_USAGE, "pack needs an input and an output");
  if (snprintf(output, 4096, "%s", opt->output) >= 4096)
    return beit_error_set(err, BEIT_STATUS_USAGE, "%s: path too long", opt->output);
  for (size_t n = strlen(output); n > 1 && output[n - 1] == '/';) /* "out/" -> "out" */
    output[--n] = 0;
  struct stat sb;
  if (stat(output, &sb) == 0 && !opt->overwrite)
    return beit_error_set(err, BEIT_STATUS_USAGE, "%s: exists (use --overwrite to replace it)", output);
  snprintf(partial, 4200, "%s.partial", output);
  return remove_dataset_dir(partial, err);
}

/* The items in order, decoded and checked a block at a time over the cores, into shards. */
static enum beit_status write_items(struct pack_state *ps, struct beit_pack_list *l,
                                    const size_t *order, struct checked *checked, double t0,
                                    struct beit_error *err)
{
  const struct beit_data_pack_options *opt = ps->opt;
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  int nthreads = ncpu < 1 ? 1 : ncpu > 16 ? 16 : (int)ncpu;
  double last = beit_clock_now();
  enum beit_status st = BEIT_STATUS_OK;
  for (size_t begin = 0; begin < l->count && !st; begin += BLOCK) {
    size_t end = begin + BLOCK < l->count ? begin + BLOCK : l->count;
    check_block(l, order, begin, end, checked, nthreads);
    for (size_t k = begin; k < end; k++) {
      const struct beit_pack_item *it = &l->items[order[k]];
      if (!st)
        st = add_item(ps, it, &checked[k - begin], err);
      if (it->path)
        free(checked[k - begin].bytes);
    }
    if (beit_clock_now() - last > (opt->progress_tty ? 0.2 : 5.0)) {
      progress(opt, end, l->count, ps->report->skipped, t0, 0);
      last = beit_clock_now();
    }
  }
  if (!st)
    return close_shard(ps, err);
  if (ps->open)
    beit_shard_writer_free(&ps->w);
  return st;
}

enum beit_status beit_data_pack(const struct beit_data_pack_options *opt,
                                struct beit_data_pack_report *report, struct beit_error *err)
{
  memset(report, 0, sizeof *report);
  char output[4096], partial[4200];
  enum beit_status st = prepare_output(opt, output, partial, err);
  if (st)
    return st;
  struct beit_pack_list l = {0};
  double t0 = beit_clock_now();
  if ((st = list_source(opt, &l, err))) {
    beit_pack_list_free(&l);
    return st;
  }
  struct pack_state ps;
  memset(&ps, 0, sizeof ps);
  ps.opt = opt;
  ps.report = report;
  ps.dir = partial;
  ps.task = opt->multilabel || l.saw_multi ? BEIT_DATA_TASK_MULTILABEL : BEIT_DATA_TASK_MULTICLASS;
  if (opt->log)
    fprintf(opt->log, "pack: %zu images, %d classes, %s, from %s\n", l.count, l.num_classes,
            ps.task == BEIT_DATA_TASK_MULTILABEL ? "multilabel" : "multiclass", opt->input);
  size_t *order = malloc((l.count ? l.count : 1) * sizeof(size_t));
  struct checked *checked = calloc(BLOCK, sizeof *checked);
  if (!order || !checked)
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "pack: out of memory");
  else if (opt->shuffle)
    shuffle(order, l.count, opt->seed);
  else
    for (size_t i = 0; i < l.count; i++)
      order[i] = i;
  if (!st && !(st = beit_mkdirs(partial, err))) /* parents too: --out runs/x/data/train */
    st = write_items(&ps, &l, order, checked, t0, err);
  if (!st && report->written == 0)
    st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: no image decoded; nothing to pack", opt->input);
  if (!st)
    st = beit_data_index_write(partial, ps.task, l.class_names, l.num_classes, ps.counts,
                               report->shards, err);
  if (!st && opt->overwrite)
    st = remove_dataset_dir(output, err);
  if (!st && rename(partial, output) != 0)
    st = beit_error_set(err, BEIT_STATUS_IO, "%s: cannot rename %s into place: %s", output,
                        partial, strerror(errno));
  report->num_classes = l.num_classes;
  if (!st)
    progress(opt, l.count, l.count, report->skipped, t0, 1);
  free(ps.counts);
  free(checked);
  free(order);
  beit_pack_list_free(&l);
  return st;
}
