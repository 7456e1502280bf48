/* Model folders and rotating training checkpoints, written atomically (temp folder + rename). */
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_table.h"
#include "safetensors.h"

#define PATH_SIZE 4096

enum beit_status beit_mkdirs(const char *path, struct beit_error *err)
{
  char buf[PATH_SIZE];
  if (strlen(path) >= sizeof buf)
    return beit_error_set(err, BEIT_STATUS_USAGE, "%s: path too long", path);
  strcpy(buf, path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
      return beit_error_set(err, BEIT_STATUS_IO, "%s: cannot create folder: %s", buf,
                            strerror(errno));
    *p = '/';
  }
  if (mkdir(buf, 0755) != 0 && errno != EEXIST)
    return beit_error_set(err, BEIT_STATUS_IO, "%s: cannot create folder: %s", buf,
                          strerror(errno));
  return BEIT_STATUS_OK;
}

/* rm -r of a folder we wrote ourselves (flat: files only). */
static void remove_flat_dir(const char *dir)
{
  DIR *d = opendir(dir);
  if (!d)
    return;
  struct dirent *e;
  char path[PATH_SIZE];
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    unlink(path);
  }
  closedir(d);
  rmdir(dir);
}

/* Make a folder's entries (files created or renamed in it) durable. */
static enum beit_status fsync_dir(const char *dir, struct beit_error *err)
{
  int fd = open(dir, O_RDONLY | O_DIRECTORY);
  if (fd < 0)
    return beit_error_set(err, BEIT_STATUS_IO, "%s: cannot open folder to flush it: %s", dir,
                          strerror(errno));
  int bad = fsync(fd) != 0 && errno != EINVAL; /* EINVAL: a file system without folder sync */
  int e = errno;
  close(fd);
  return bad ? beit_error_set(err, BEIT_STATUS_IO, "%s: cannot flush folder: %s", dir,
                              strerror(e))
             : BEIT_STATUS_OK;
}

static enum beit_status write_optimizer(const char *path, const struct beit_checkpoint_parts *p,
                                        struct beit_error *err)
{
  const struct beit_tensor_table *t = p->table;
  struct beit_st_entry *entries = calloc(2 * t->count, sizeof *entries);
  char *names = malloc(2 * t->count * (BEIT_TENSOR_NAME_MAX + 2));
  enum beit_status st;
  if (!entries || !names) {
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", path);
    goto free_all;
  }
  for (size_t i = 0; i < 2 * t->count; i++) {
    const struct beit_tensor *x = &t->items[i % t->count];
    char *name = names + i * (BEIT_TENSOR_NAME_MAX + 2);
    snprintf(name, BEIT_TENSOR_NAME_MAX + 2, "%c.%s", i < t->count ? 'm' : 'v', x->name);
    entries[i].name = name;
    entries[i].dtype = BEIT_DTYPE_F32;
    entries[i].ndim = x->ndim;
    memcpy(entries[i].shape, x->shape, sizeof x->shape);
    entries[i].data = (i < t->count ? p->m : p->v) + x->offset;
  }
  st = beit_safetensors_write(path, entries, 2 * t->count, NULL, err);
free_all:
  free(entries);
  free(names);
  return st;
}

/* Write all parts into an existing empty folder, each file fsynced (beit_write_file_atomic),
 * trainer_state.json last: it is the completion marker of a training checkpoint. */
static enum beit_status write_parts(const char *dir, const struct beit_checkpoint_parts *p,
                                    struct beit_error *err)
{
  char path[PATH_SIZE];
  enum beit_status st;
  snprintf(path, sizeof path, "%s/config.json", dir);
  if ((st = beit_json_write_file(path, p->config, err)))
    return st;
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  if ((st = beit_safetensors_write_table(path, p->table, p->params, NULL, err)))
    return st;
  if (p->preprocessor) {
    snprintf(path, sizeof path, "%s/preprocessor_config.json", dir);
    if ((st = beit_json_write_file(path, p->preprocessor, err)))
      return st;
  }
  if (p->m && p->v) {
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    if ((st = write_optimizer(path, p, err)))
      return st;
  }
  if (p->trainer_state) {
    snprintf(path, sizeof path, "%s/trainer_state.json", dir);
    if ((st = beit_json_write_file(path, p->trainer_state, err)))
      return st;
  }
  return fsync_dir(dir, err);
}

/* Build the folder at tmp, then move it to final (replacing an older final only at the end). */
static enum beit_status save_via_tmp(const char *tmp, const char *final,
                                     const struct beit_checkpoint_parts *p,
                                     struct beit_error *err)
{
  remove_flat_dir(tmp); /* leftovers of an interrupted save */
  if (mkdir(tmp, 0755) != 0)
    return beit_error_set(err, BEIT_STATUS_IO, "%s: cannot create folder: %s", tmp,
                          strerror(errno));
  enum beit_status st = write_parts(tmp, p, err);
  if (st) {
    remove_flat_dir(tmp);
    return st;
  }
  char old[PATH_SIZE];
  snprintf(old, sizeof old, "%s.old", final);
  struct stat sb;
  int had_final = stat(final, &sb) == 0;
  if (had_final) {
    remove_flat_dir(old);
    if (rename(final, old) != 0) {
      int e = errno;
      remove_flat_dir(tmp);
      return beit_error_set(err, BEIT_STATUS_IO, "%s: cannot move aside: %s", final,
                            strerror(e));
    }
  }
  if (rename(tmp, final) != 0) {
    int e = errno;
    if (had_final)
      rename(old, final);
    remove_flat_dir(tmp);
    return beit_error_set(err, BEIT_STATUS_IO, "%s: cannot rename into place: %s", final,
                          strerror(e));
  }
  if (had_final)
    remove_flat_dir(old);
  return BEIT_STATUS_OK;
}

static void parent_of(const char *path, char *out, size_t n)
{
  snprintf(out, n, "%s", path);
  char *slash = strrchr(out, '/');
  if (!slash)
    snprintf(out, n, ".");
  else if (slash == out)
    out[1] = '\0';
  else
    *slash = '\0';
}

enum beit_status beit_model_folder_save(const char *dir, const struct beit_checkpoint_parts *p,
                                        struct beit_error *err)
{
  char parent[PATH_SIZE], tmp[PATH_SIZE];
  parent_of(dir, parent, sizeof parent);
  enum beit_status st = beit_mkdirs(parent, err);
  if (st)
    return st;
  snprintf(tmp, sizeof tmp, "%s.tmp-%ld", dir, (long)getpid());
  st = save_via_tmp(tmp, dir, p, err);
  return st ? st : fsync_dir(parent, err);
}

/* Step number of a "checkpoint-<step>" entry name, or -1. */
static long checkpoint_step(const char *name)
{
  if (strncmp(name, "checkpoint-", 11) != 0)
    return -1;
  char *end;
  errno = 0;
  long step = strtol(name + 11, &end, 10);
  if (errno || end == name + 11 || *end != '\0' || step < 0)
    return -1;
  return step;
}

static int cmp_long_desc(const void *a, const void *b)
{
  long x = *(const long *)a, y = *(const long *)b;
  return (x < y) - (x > y);
}

/* 0 when the checkpoint folder dir can be resumed from: trainer_state.json (written last: the
 * completion marker) and config.json parse, and both safetensors files are whole (header valid,
 * every tensor's bytes inside the file). Otherwise 1, with the first fault in why. */
static int incomplete(const char *dir, char *why, size_t why_size)
{
  static const char *const json_files[] = {"trainer_state.json", "config.json"};
  static const char *const tensor_files[] = {"model.safetensors", "optimizer.safetensors"};
  char path[PATH_SIZE];
  struct beit_error e = {0};
  for (size_t i = 0; i < 2; i++) {
    cJSON *j = NULL;
    snprintf(path, sizeof path, "%s/%s", dir, json_files[i]);
    if (beit_json_read_file(&j, path, &e)) {
      snprintf(why, why_size, "%s", e.message);
      return 1;
    }
    cJSON_Delete(j);
  }
  for (size_t i = 0; i < 2; i++) {
    struct beit_safetensors *st = NULL;
    snprintf(path, sizeof path, "%s/%s", dir, tensor_files[i]);
    if (beit_safetensors_open(&st, path, &e)) {
      snprintf(why, why_size, "%s", e.message);
      return 1;
    }
    beit_safetensors_close(st);
  }
  return 0;
}

/* Steps of the checkpoint-<step> folders under out_dir, newest first; *count set; caller frees.
 * A ".tmp-checkpoint-*" folder (a save in progress or cut short) never matches. With complete,
 * only folders that pass incomplete() are listed; each skipped one is named on log (may be
 * NULL). */
static long *list_checkpoints(const char *out_dir, int complete, FILE *log, size_t *count)
{
  *count = 0;
  DIR *d = opendir(out_dir);
  if (!d)
    return NULL;
  size_t cap = 16, n = 0;
  long *steps = malloc(cap * sizeof *steps);
  struct dirent *e;
  while (steps && (e = readdir(d))) {
    long step = checkpoint_step(e->d_name);
    if (step < 0)
      continue;
    if (n == cap) {
      long *grown = realloc(steps, 2 * cap * sizeof *steps);
      if (!grown)
        break;
      steps = grown;
      cap *= 2;
    }
    steps[n++] = step;
  }
  closedir(d);
  if (!steps)
    return NULL;
  qsort(steps, n, sizeof *steps, cmp_long_desc);
  for (size_t i = 0; i < n; i++) {
    char dir[PATH_SIZE], why[1024];
    snprintf(dir, sizeof dir, "%s/checkpoint-%ld", out_dir, steps[i]);
    if (complete && incomplete(dir, why, sizeof why)) {
      if (log)
        fprintf(log, "warning: %s is incomplete or damaged and is skipped: %s\n", dir, why);
      continue;
    }
    steps[(*count)++] = steps[i];
  }
  return steps;
}

enum beit_status beit_checkpoint_save(const char *out_dir, long step,
                                      const struct beit_checkpoint_parts *p, int keep_last,
                                      char *saved, size_t saved_size, struct beit_error *err)
{
  enum beit_status st = beit_mkdirs(out_dir, err);
  if (st)
    return st;
  char tmp[PATH_SIZE], final[PATH_SIZE];
  snprintf(tmp, sizeof tmp, "%s/.tmp-checkpoint-%ld", out_dir, step);
  snprintf(final, sizeof final, "%s/checkpoint-%ld", out_dir, step);
  if ((st = save_via_tmp(tmp, final, p, err)) || (st = fsync_dir(out_dir, err))) {
    beit_error_prefix(err, "cannot write %s: ", final);
    return st;
  }
  if (saved)
    snprintf(saved, saved_size, "%s", final);
  /* temporary folders left by saves that a crash or SIGKILL interrupted */
  DIR *d = opendir(out_dir);
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (strncmp(e->d_name, ".tmp-checkpoint-", 16) != 0)
      continue;
    char stale[PATH_SIZE];
    snprintf(stale, sizeof stale, "%s/%s", out_dir, e->d_name);
    remove_flat_dir(stale);
  }
  if (d)
    closedir(d);
  if (keep_last > 0) {
    size_t n;
    long *steps = list_checkpoints(out_dir, 1, NULL, &n);
    for (size_t i = (size_t)keep_last; steps && i < n; i++) {
      char old[PATH_SIZE];
      snprintf(old, sizeof old, "%s/checkpoint-%ld", out_dir, steps[i]);
      remove_flat_dir(old);
    }
    free(steps);
  }
  return BEIT_STATUS_OK;
}

enum beit_status beit_checkpoint_latest(const char *out_dir, FILE *log, char *path,
                                        size_t path_size, struct beit_error *err)
{
  size_t n;
  long *steps = list_checkpoints(out_dir, 1, log, &n);
  if (!n) {
    free(steps);
    return beit_error_set(err, BEIT_STATUS_MISSING, "%s: no complete checkpoint to resume from",
                          out_dir);
  }
  snprintf(path, path_size, "%s/checkpoint-%ld", out_dir, steps[0]);
  free(steps);
  return BEIT_STATUS_OK;
}

static enum beit_status read_table(const char *path, const struct beit_tensor_table *table,
                                   const char *prefix, float *dst, struct beit_error *err)
{
  struct beit_safetensors *st = NULL;
  enum beit_status s = beit_safetensors_open(&st, path, err);
  if (s)
    return s;
  for (size_t i = 0; i < table->count && !s; i++) {
    const struct beit_tensor *t = &table->items[i];
    char name[BEIT_TENSOR_NAME_MAX + 4];
    snprintf(name, sizeof name, "%s%s", prefix, t->name);
    s = beit_safetensors_read_f32(st, name, dst + t->offset, t->ndim, t->shape, err);
  }
  beit_safetensors_close(st);
  return s;
}

enum beit_status beit_checkpoint_load_tensors(const char *dir,
                                              const struct beit_tensor_table *table,
                                              float *params, float *m, float *v,
                                              struct beit_error *err)
{
  char path[PATH_SIZE];
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  enum beit_status st = read_table(path, table, "", params, err);
  if (st || !m || !v)
    return st;
  snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
  if ((st = read_table(path, table, "m.", m, err)))
    return st;
  return read_table(path, table, "v.", v, err);
}
