/* Dataset folders: index.json and the validated, opened shards; random access to records.
 *
 * Open reads every shard's metadata (offsets, labels) into memory, which verifies those chunks'
 * Fletcher32 checksums and lets a record read be one hyperslab of `images`; image chunks are
 * verified by HDF5 as they are read. Memory: 8 bytes (+4 per label) per record, e.g. 170 MB
 * for ImageNet-22k. All shards stay open (one descriptor each; the soft limit is raised). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <pthread.h>

#include <hdf5.h>

#include "config_table.h"
#include "data_internal.h"

#define MAX_RECORDS 9007199254740992.0 /* 2^53: records of a dataset, an exact JSON count */

struct shard {
  char path[4096];
  hid_t file, images, keys, key_type;
  size_t count, first; /* records, and the global index of the first */
  size_t nbytes;
  dev_t dev;           /* the file as opened: a shard deleted, replaced or resized since is */
  ino_t ino;           /* found by beit_data_check_files and by a failed read */
  off_t size;
  int64_t *offsets;    /* count + 1 */
  int32_t *labels;     /* multiclass: count; multilabel: values */
  int64_t *label_offsets; /* multilabel: count + 1 */
};

struct beit_dataset {
  pthread_mutex_t lock; /* HDF5 calls of record reads: safe even with a non-threadsafe HDF5 */
  enum beit_data_task task;
  int num_classes;
  char **class_names;
  size_t num_shards, count;
  struct shard *shards;
};

enum beit_status beit_data_index_write(const char *dir, enum beit_data_task task,
                                       char *const *class_names, int num_classes,
                                       const size_t *shard_counts, size_t num_shards,
                                       struct beit_error *err)
{
  char path[4096];
  snprintf(path, sizeof path, "%s/index.json", dir);
  cJSON *root = cJSON_CreateObject(), *names = cJSON_CreateArray(), *shards = cJSON_CreateArray();
  size_t total = 0;
  if (!root || !names || !shards) {
    cJSON_Delete(root), cJSON_Delete(names), cJSON_Delete(shards);
    return beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", path);
  }
  for (int c = 0; c < num_classes; c++)
    cJSON_AddItemToArray(names, cJSON_CreateString(class_names[c]));
  for (size_t s = 0; s < num_shards; s++) {
    cJSON *sh = cJSON_CreateObject();
    char file[64];
    snprintf(file, sizeof file, "shard-%05zu.h5", s);
    cJSON_AddStringToObject(sh, "file", file);
    cJSON_AddNumberToObject(sh, "count", (double)shard_counts[s]);
    cJSON_AddItemToArray(shards, sh);
    total += shard_counts[s];
  }
  cJSON_AddNumberToObject(root, "format_version", BEIT_DATA_FORMAT_VERSION);
  cJSON_AddStringToObject(root, "task", task == BEIT_DATA_TASK_MULTILABEL ? "multilabel" : "multiclass");
  cJSON_AddNumberToObject(root, "num_classes", num_classes);
  cJSON_AddNumberToObject(root, "num_records", (double)total);
  cJSON_AddItemToObject(root, "class_names", names);
  cJSON_AddItemToObject(root, "shards", shards);
  enum beit_status st = beit_json_write_file(path, root, err);
  cJSON_Delete(root);
  return st;
}

size_t beit_data_count(const struct beit_dataset *ds) { return ds->count; }
enum beit_data_task beit_data_task(const struct beit_dataset *ds) { return ds->task; }
int beit_data_num_classes(const struct beit_dataset *ds) { return ds->num_classes; }

const char *beit_data_class_name(const struct beit_dataset *ds, int c)
{
  return c >= 0 && c < ds->num_classes ? ds->class_names[c] : NULL;
}

static void shard_close(struct shard *s)
{
  if (s->key_type > 0)
    H5Tclose(s->key_type);
  if (s->keys > 0)
    H5Dclose(s->keys);
  if (s->images > 0)
    H5Dclose(s->images);
  if (s->file > 0)
    H5Fclose(s->file);
  free(s->offsets);
  free(s->labels);
  free(s->label_offsets);
  s->file = s->images = s->keys = s->key_type = -1;
  s->offsets = s->label_offsets = NULL;
  s->labels = NULL;
}

void beit_data_close(struct beit_dataset *ds)
{
  if (!ds)
    return;
  for (size_t i = 0; i < ds->num_shards; i++)
    shard_close(&ds->shards[i]);
  free(ds->shards);
  for (int c = 0; c < ds->num_classes; c++)
    free(ds->class_names[c]);
  free(ds->class_names);
  pthread_mutex_destroy(&ds->lock);
  free(ds);
}

/* Length of a 1-D dataset whose element class/size/sign match; -1 when it does not. */
static long long dataset_len(hid_t ds, H5T_class_t cls, size_t size, int is_signed)
{
  hid_t type = H5Dget_type(ds), space = H5Dget_space(ds);
  long long n = -1;
  if (type >= 0 && space >= 0 && H5Tget_class(type) == cls &&
      (cls == H5T_STRING || (H5Tget_size(type) == size &&
                             (H5Tget_sign(type) == H5T_SGN_2) == is_signed)) &&
      H5Sget_simple_extent_ndims(space) == 1) {
    hsize_t dims;
    H5Sget_simple_extent_dims(space, &dims, NULL);
    n = (long long)dims;
  }
  if (type >= 0)
    H5Tclose(type);
  if (space >= 0)
    H5Sclose(space);
  return n;
}

static int has_fletcher32(hid_t ds)
{
  hid_t dcpl = H5Dget_create_plist(ds);
  unsigned flags;
  size_t nelmts = 0;
  int ok = dcpl >= 0 && H5Pget_filter_by_id2(dcpl, H5Z_FILTER_FLETCHER32, &flags, &nelmts, NULL,
                                             0, NULL, NULL) >= 0;
  if (dcpl >= 0)
    H5Pclose(dcpl);
  return ok;
}

/* FORMAT unless n elements of size bytes fit in the shard file: the schema stores every dataset
 * uncompressed, so a larger one is a header that lies (chunks never written read as zeros), and
 * no allocation or read may trust it. */
static enum beit_status check_fits(const struct shard *s, const char *name, long long n,
                                   size_t size, struct beit_error *err)
{
  if ((unsigned long long)n > (unsigned long long)s->size / size)
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: dataset '%s' claims %lld elements of %zu "
                          "bytes but the file holds %lld bytes (a damaged or hand-made shard)",
                          s->path, name, n, size, (long long)s->size);
  return BEIT_STATUS_OK;
}

/* Open a 1-D dataset of exactly want elements, check type, size against the file and checksum
 * filter, and read it whole into *out. */
static enum beit_status read_meta(const struct shard *s, const char *name, hid_t memtype,
                                  H5T_class_t cls, size_t size, int is_signed, size_t want,
                                  void **out, struct beit_error *err)
{
  const char *path = s->path;
  hid_t ds = H5Dopen2(s->file, name, H5P_DEFAULT);
  if (ds < 0)
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: dataset '%s' missing", path, name);
  enum beit_status st = BEIT_STATUS_OK;
  long long n = dataset_len(ds, cls, size, is_signed);
  if (n < 0) {
    st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: dataset '%s' has the wrong type or rank",
                        path, name);
    goto close_ds;
  }
  if ((size_t)n != want) {
    st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: dataset '%s' has %lld elements, expected "
                        "%zu", path, name, n, want);
    goto close_ds;
  }
  if ((st = check_fits(s, name, n, size, err)))
    goto close_ds;
  if (!has_fletcher32(ds)) {
    st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: dataset '%s' has no Fletcher32 checksum",
                        path, name);
    goto close_ds;
  }
  *out = malloc((size_t)n * size + 1);
  if (!*out) {
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory reading '%s'", path, name);
    goto close_ds;
  }
  if (n > 0 && H5Dread(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) < 0)
    st = beit_error_set(err, BEIT_STATUS_FORMAT,
                        "%s: dataset '%s' cannot be read (checksum mismatch or corrupt file)",
                        path, name);
close_ds:
  H5Dclose(ds);
  return st;
}

static enum beit_status read_attr_int(hid_t file, const char *path, const char *name, int64_t *v,
                                      struct beit_error *err)
{
  if (H5Aexists(file, name) <= 0)
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: attribute '%s' missing (not a dataset shard?)", path, name);
  hid_t a = H5Aopen(file, name, H5P_DEFAULT);
  int ok = a >= 0 && H5Aread(a, H5T_NATIVE_INT64, v) >= 0;
  if (a >= 0)
    H5Aclose(a);
  return ok ? BEIT_STATUS_OK
            : beit_error_set(err, BEIT_STATUS_FORMAT, "%s: attribute '%s' unreadable", path, name);
}

/* The shard's `task` attribute against index.json's task (a shard without one passes). */
static enum beit_status check_task(hid_t file, const char *path, enum beit_data_task task,
                                   struct beit_error *err)
{
  const char *want = task == BEIT_DATA_TASK_MULTILABEL ? "multilabel" : "multiclass";
  if (H5Aexists(file, BEIT_SHARD_TASK_ATTR) <= 0)
    return BEIT_STATUS_OK;
  char got[32] = "";
  hid_t a = H5Aopen(file, BEIT_SHARD_TASK_ATTR, H5P_DEFAULT);
  hid_t ft = a >= 0 ? H5Aget_type(a) : -1, mt = H5Tcopy(H5T_C_S1);
  int ok = ft >= 0 && mt >= 0 && H5Tget_class(ft) == H5T_STRING && H5Tis_variable_str(ft) <= 0 &&
           H5Tget_size(ft) < sizeof got && H5Tset_size(mt, sizeof got) >= 0 &&
           H5Aread(a, mt, got) >= 0;
  if (mt >= 0)
    H5Tclose(mt);
  if (ft >= 0)
    H5Tclose(ft);
  if (a >= 0)
    H5Aclose(a);
  got[sizeof got - 1] = '\0';
  if (!ok)
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: attribute 'task' unreadable", path);
  if (strcmp(got, want))
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: task '%s', index.json says '%s'", path,
                          got, want);
  return BEIT_STATUS_OK;
}

/* The file's identity as opened (the descriptor HDF5 holds; the path if that is not at hand). */
static void remember_file(struct shard *s)
{
  struct stat sb;
  void *handle = NULL;
  int fd = H5Fget_vfd_handle(s->file, H5P_DEFAULT, &handle) >= 0 && handle ? *(int *)handle : -1;
  if ((fd >= 0 ? fstat(fd, &sb) : stat(s->path, &sb)) == 0) {
    s->dev = sb.st_dev;
    s->ino = sb.st_ino;
    s->size = sb.st_size;
  }
}

/* Whether the shard's path still names the file that was opened: NULL, or why not in why. */
static const char *shard_changed(const struct shard *s, char *why, size_t size)
{
  struct stat sb;
  if (stat(s->path, &sb) != 0)
    snprintf(why, size, "%s since the run opened it",
             errno == ENOENT ? "deleted" : strerror(errno));
  else if (sb.st_dev != s->dev || sb.st_ino != s->ino)
    snprintf(why, size, "replaced by another file since the run opened it");
  else if (sb.st_size != s->size)
    snprintf(why, size, "changed size since the run opened it (%lld -> %lld bytes)",
             (long long)s->size, (long long)sb.st_size);
  else
    return NULL;
  return why;
}

enum beit_status beit_data_check_files(const struct beit_dataset *ds, struct beit_error *err)
{
  char why[128];
  for (size_t i = 0; i < ds->num_shards; i++)
    if (shard_changed(&ds->shards[i], why, sizeof why))
      return beit_error_set(err, BEIT_STATUS_IO, "%s: %s", ds->shards[i].path, why);
  return BEIT_STATUS_OK;
}

/* The `images` dataset (with its chunk cache) and the offsets into it, checked. */
static enum beit_status open_images(struct shard *s, const struct beit_dataset *ds,
                                    struct beit_error *err)
{
  const char *p = s->path;
  enum beit_status st;
  /* Chunk cache of `images`: 256 MiB per rank shared out over the shards, at most 64 MiB each
   * (a small dataset ends up cached whole; ImageNet-22k's thousand shards stay bounded). */
  hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
  size_t cache = ((size_t)256 << 20) / (ds->num_shards ? ds->num_shards : 1);
  if (cache > ((size_t)64 << 20))
    cache = (size_t)64 << 20;
  if (dapl >= 0)
    H5Pset_chunk_cache(dapl, 40009 /* prime, > 10x the 16 KiB chunks of 64 MiB */, cache, 0.75);
  s->images = H5Dopen2(s->file, BEIT_SHARD_IMAGES, dapl >= 0 ? dapl : H5P_DEFAULT);
  if (dapl >= 0)
    H5Pclose(dapl);
  long long nb = s->images >= 0 ? dataset_len(s->images, H5T_INTEGER, 1, 0) : -1;
  if (nb < 0 || !has_fletcher32(s->images))
    return beit_error_set(err, BEIT_STATUS_FORMAT,
                          "%s: dataset 'images' missing, not uint8 1-D or without checksum", p);
  if ((st = check_fits(s, BEIT_SHARD_IMAGES, nb, 1, err)))
    return st;
  s->nbytes = (size_t)nb;
  if (s->offsets[0] != 0 || s->offsets[s->count] != nb)
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: offsets do not span 'images' (%lld bytes)",
                          p, nb);
  for (size_t i = 0; i < s->count; i++)
    if (s->offsets[i + 1] < s->offsets[i])
      return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: offsets decrease at record %zu", p, i);
  return BEIT_STATUS_OK;
}

/* The `keys` dataset: fixed-length strings, one per record; the memory type to read them. */
static enum beit_status open_keys(struct shard *s, struct beit_error *err)
{
  const char *p = s->path;
  s->keys = H5Dopen2(s->file, BEIT_SHARD_KEYS, H5P_DEFAULT);
  if (s->keys < 0 || dataset_len(s->keys, H5T_STRING, 0, 0) != (long long)s->count)
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: dataset 'keys' missing or of wrong length", p);
  hid_t ft = H5Dget_type(s->keys);
  if (H5Tis_variable_str(ft) > 0) {
    H5Tclose(ft);
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: 'keys' must be fixed-length strings", p);
  }
  s->key_type = H5Tcopy(H5T_C_S1);
  H5Tset_size(s->key_type, H5Tget_size(ft));
  H5Tset_strpad(s->key_type, H5T_STR_NULLPAD);
  H5Tset_cset(s->key_type, H5Tget_cset(ft)); /* no ASCII <-> UTF-8 conversion exists */
  H5Tclose(ft);
  return BEIT_STATUS_OK;
}

/* The labels (multi-class: one per record; multi-label: offsets and values), each checked
 * against the class count. */
static enum beit_status read_labels(struct shard *s, const struct beit_dataset *ds,
                                    struct beit_error *err)
{
  const char *p = s->path;
  enum beit_status st;
  int C = ds->num_classes;
  size_t got = s->count; /* labels */
  if (ds->task == BEIT_DATA_TASK_MULTICLASS) {
    if ((st = read_meta(s, BEIT_SHARD_LABELS, H5T_NATIVE_INT32, H5T_INTEGER, 4, 1, s->count,
                        (void **)&s->labels, err)))
      return st;
  } else {
    /* label_offsets first: checked, its last entry is how many label_values there must be */
    if ((st = read_meta(s, BEIT_SHARD_LABEL_OFFSETS, H5T_NATIVE_INT64, H5T_INTEGER, 8, 1,
                        s->count + 1, (void **)&s->label_offsets, err)))
      return st;
    if (s->label_offsets[0] != 0)
      return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: label_offsets do not start at 0", p);
    for (size_t i = 0; i < s->count; i++)
      if (s->label_offsets[i + 1] < s->label_offsets[i])
        return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: label_offsets decrease at record %zu", p, i);
    got = (size_t)s->label_offsets[s->count];
    if ((st = read_meta(s, BEIT_SHARD_LABEL_VALUES, H5T_NATIVE_INT32, H5T_INTEGER, 4, 1, got,
                        (void **)&s->labels, err)))
      return st;
  }
  for (size_t i = 0; i < got; i++)
    if (s->labels[i] < 0 || s->labels[i] >= C)
      return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: label %d at %zu out of [0, %d)", p,
                            (int)s->labels[i], i, C);
  return BEIT_STATUS_OK;
}

static enum beit_status shard_open(struct shard *s, const struct beit_dataset *ds,
                                   struct beit_error *err)
{
  const char *p = s->path;
  struct stat sb;
  if (stat(p, &sb) != 0)
    return beit_error_set(err, BEIT_STATUS_IO, "%s: listed in index.json but %s", p,
                          errno == ENOENT ? "missing" : strerror(errno));
  s->file = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (s->file < 0)
    return beit_error_set(err, BEIT_STATUS_IO, "%s: cannot open as HDF5", p);
  remember_file(s);
  int64_t schema = 0, n = 0;
  enum beit_status st = read_attr_int(s->file, p, BEIT_SHARD_SCHEMA_ATTR, &schema, err);
  if (st)
    return st;
  if (schema != BEIT_DATA_SCHEMA_VERSION)
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: schema_version %lld, this build reads %d",
                          p, (long long)schema, BEIT_DATA_SCHEMA_VERSION);
  if ((st = read_attr_int(s->file, p, "num_records", &n, err)) ||
      (st = check_task(s->file, p, ds->task, err)))
    return st;
  if ((size_t)n != s->count)
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: holds %lld records, index.json says %zu",
                          p, (long long)n, s->count);
  if ((st = read_meta(s, BEIT_SHARD_OFFSETS, H5T_NATIVE_INT64, H5T_INTEGER, 8, 1, s->count + 1,
                      (void **)&s->offsets, err)))
    return st;
  if ((st = open_images(s, ds, err)) || (st = open_keys(s, err)))
    return st;
  return read_labels(s, ds, err);
}

/* index.json -> ds (classes, shard list). */
static enum beit_status parse_index(struct beit_dataset *ds, const char *dir, struct beit_error *err)
{
  char path[4096];
  snprintf(path, sizeof path, "%s/index.json", dir);
  cJSON *root = NULL;
  enum beit_status st = beit_json_read_file(&root, path, err);
  if (st)
    return st;
  const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "format_version");
  const cJSON *task = cJSON_GetObjectItemCaseSensitive(root, "task");
  const cJSON *names = cJSON_GetObjectItemCaseSensitive(root, "class_names");
  const cJSON *shards = cJSON_GetObjectItemCaseSensitive(root, "shards");
  if (!cJSON_IsNumber(ver) || ver->valuedouble != BEIT_DATA_FORMAT_VERSION) {
    st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: key 'format_version' must be %d", path,
                        BEIT_DATA_FORMAT_VERSION);
    goto free_json;
  }
  if (!cJSON_IsString(task) || (strcmp(task->valuestring, "multiclass") && strcmp(task->valuestring, "multilabel"))) {
    st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: key 'task' must be multiclass or multilabel", path);
    goto free_json;
  }
  ds->task = strcmp(task->valuestring, "multilabel") ? BEIT_DATA_TASK_MULTICLASS : BEIT_DATA_TASK_MULTILABEL;
  if (!cJSON_IsArray(names) || cJSON_GetArraySize(names) < 1 || !cJSON_IsArray(shards) ||
      cJSON_GetArraySize(shards) < 1) {
    st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: keys 'class_names' and 'shards' must be non-empty arrays", path);
    goto free_json;
  }
  int C = cJSON_GetArraySize(names);
  ds->class_names = calloc((size_t)C, sizeof(char *));
  ds->num_shards = (size_t)cJSON_GetArraySize(shards);
  ds->shards = calloc(ds->num_shards, sizeof(struct shard));
  if (!ds->class_names || !ds->shards) {
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", path);
    goto free_json;
  }
  const cJSON *n = names->child, *sh = shards->child; /* walked, not indexed: O(n), not O(n^2) */
  for (int c = 0; c < C; c++, n = n->next) {
    if (!cJSON_IsString(n) || !(ds->class_names[c] = strdup(n->valuestring))) {
      st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: class_names[%d] is not a string", path, c);
      goto free_json;
    }
    ds->num_classes = c + 1;
  }
  for (size_t i = 0; i < ds->num_shards; i++, sh = sh->next) {
    struct shard *s = &ds->shards[i];
    s->file = s->images = s->keys = s->key_type = -1;
    const cJSON *file = cJSON_GetObjectItemCaseSensitive(sh, "file");
    const cJSON *count = cJSON_GetObjectItemCaseSensitive(sh, "count");
    if (!cJSON_IsString(file) || strchr(file->valuestring, '/') || !cJSON_IsNumber(count) ||
        !(count->valuedouble >= 0) || count->valuedouble != floor(count->valuedouble) ||
        count->valuedouble > MAX_RECORDS - (double)ds->count) {
      st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: shards[%zu] needs 'file' (a name) and "
                          "'count' (a whole number of records, in all at most 2^53)", path, i);
      goto free_json;
    }
    snprintf(s->path, sizeof s->path, "%s/%s", dir, file->valuestring);
    s->count = (size_t)count->valuedouble;
    s->first = ds->count;
    ds->count += s->count;
  }
  const cJSON *num_records = cJSON_GetObjectItemCaseSensitive(root, "num_records");
  const cJSON *num_classes = cJSON_GetObjectItemCaseSensitive(root, "num_classes");
  if (num_records && (!cJSON_IsNumber(num_records) || num_records->valuedouble != (double)ds->count))
    st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: num_records is %g but the shards' counts "
                        "add up to %zu", path, cJSON_IsNumber(num_records) ?
                        num_records->valuedouble : -1.0, ds->count);
  else if (num_classes && (!cJSON_IsNumber(num_classes) || num_classes->valuedouble != (double)C))
    st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: num_classes is %g but class_names has %d "
                        "names", path, cJSON_IsNumber(num_classes) ?
                        num_classes->valuedouble : -1.0, C);
free_json:
  cJSON_Delete(root);
  return st;
}

/* One descriptor per shard stays open: raise the soft limit towards the hard one if needed. */
static void ensure_fd_limit(size_t need)
{
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need + 64) {
    rl.rlim_cur = need + 64 < rl.rlim_max ? need + 64 : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

enum beit_status beit_data_open(struct beit_dataset **out, const char *dir, struct beit_error *err)
{
  *out = NULL;
  struct beit_dataset *ds = calloc(1, sizeof *ds);
  if (!ds)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", dir);
  pthread_mutex_init(&ds->lock, NULL);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  enum beit_status st = parse_index(ds, dir, err);
  if (st)
    goto fail;
  ensure_fd_limit(ds->num_shards);
  for (size_t i = 0; i < ds->num_shards; i++)
    if ((st = shard_open(&ds->shards[i], ds, err)))
      goto fail;
  *out = ds;
  return BEIT_STATUS_OK;
fail:
  beit_data_close(ds);
  return st;
}

void beit_data_record_free(struct beit_data_record *rec)
{
  free(rec->bytes);
  free(rec->labels);
  memset(rec, 0, sizeof *rec);
}

static herr_t find_filter_error(unsigned n, const H5E_error2_t *e, void *found)
{
  (void)n;
  if (e->maj_num == H5E_PLINE)
    *(int *)found = 1;
  return 0;
}

/* Read elements [start, start + n) of a 1-D dataset into buf: 0, READ_CORRUPT when a chunk
 * failed its filter (Fletcher32: the bytes on disk changed), READ_FAILED otherwise (I/O). */
enum { READ_FAILED = -1, READ_CORRUPT = -2 };
static int read_range(hid_t ds, hid_t memtype, size_t start, size_t n, void *buf)
{
  hid_t fspace = H5Dget_space(ds);
  hsize_t off = start, cnt = n;
  hid_t mspace = H5Screate_simple(1, &cnt, NULL);
  int rc = READ_FAILED;
  if (fspace >= 0 && mspace >= 0 &&
      H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &off, NULL, &cnt, NULL) >= 0) {
    if (H5Dread(ds, memtype, mspace, fspace, H5P_DEFAULT, buf) >= 0) {
      rc = 0;
    } else { /* walk the stack now: the next HDF5 call clears it */
      int filter = 0;
      H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, find_filter_error, &filter);
      rc = filter ? READ_CORRUPT : READ_FAILED;
    }
  }
  if (mspace >= 0)
    H5Sclose(mspace);
  if (fspace >= 0)
    H5Sclose(fspace);
  return rc;
}

enum beit_status beit_data_read(struct beit_dataset *ds, size_t index,
                                struct beit_data_record *rec, struct beit_error *err)
{
  return beit_data_read_record(ds, index, rec, 1, err);
}

static enum beit_status read_locked(struct beit_dataset *ds, size_t index,
                                    struct beit_data_record *rec, int with_key,
                                    struct beit_error *err);

/* The shard holding record index (< ds->count). */
static struct shard *shard_of(const struct beit_dataset *ds, size_t index)
{
  size_t lo = 0, hi = ds->num_shards; /* last shard with first <= index */
  while (hi - lo > 1) {
    size_t mid = (lo + hi) / 2;
    if (ds->shards[mid].first <= index)
      lo = mid;
    else
      hi = mid;
  }
  while (ds->shards[lo].count == 0 || index - ds->shards[lo].first >= ds->shards[lo].count)
    lo++; /* skip empty shards */
  return &ds->shards[lo];
}

enum beit_status beit_data_check_record_file(const struct beit_dataset *ds, size_t index,
                                             struct beit_error *err)
{
  char why[128];
  const struct shard *s = index < ds->count ? shard_of(ds, index) : NULL;
  if (s && shard_changed(s, why, sizeof why))
    return beit_error_set(err, BEIT_STATUS_IO, "%s: %s (reading record %zu)", s->path, why,
                          index - s->first);
  return BEIT_STATUS_OK;
}

enum beit_status beit_data_read_record(struct beit_dataset *ds, size_t index,
                                       struct beit_data_record *rec, int with_key,
                                       struct beit_error *err)
{
  pthread_mutex_lock(&ds->lock);
  enum beit_status st = read_locked(ds, index, rec, with_key, err);
  pthread_mutex_unlock(&ds->lock);
  return st;
}

static enum beit_status read_locked(struct beit_dataset *ds, size_t index,
                                    struct beit_data_record *rec, int with_key,
                                    struct beit_error *err)
{
  if (index >= ds->count)
    return beit_error_set(err, BEIT_STATUS_USAGE, "record %zu out of range (%zu records)", index, ds->count);
  struct shard *s = shard_of(ds, index);
  size_t i = index - s->first;
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* error stacks are per thread */
  char key_buf[BEIT_DATA_KEY_MAX];
  size_t ksize = H5Tget_size(s->key_type);
  rec->key[0] = 0;
  if (!with_key) {
    snprintf(rec->key, sizeof rec->key, "#%zu", index);
  } else if (ksize < sizeof key_buf && read_range(s->keys, s->key_type, i, 1, key_buf) == 0) {
    key_buf[ksize] = 0;
    snprintf(rec->key, sizeof rec->key, "%s", key_buf);
  } else {
    const char *base = strrchr(s->path, '/');
    snprintf(rec->key, sizeof rec->key, "%.200s#%zu", base ? base + 1 : s->path, i);
  }
  size_t a = (size_t)s->offsets[i], n = (size_t)(s->offsets[i + 1] - s->offsets[i]);
  if (beit_data_grow((void **)&rec->bytes, &rec->bytes_capacity, n + 1))
    return beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", rec->key);
  int rc = n > 0 ? read_range(s->images, H5T_NATIVE_UINT8, a, n, rec->bytes) : 0;
  char why[128];
  if (rc && shard_changed(s, why, sizeof why)) /* deleted (NFS: ESTALE), replaced, truncated */
    return beit_error_set(err, BEIT_STATUS_IO, "%s: %s (reading record %zu)", s->path, why, i);
  if (rc == READ_CORRUPT)
    return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: record %zu (%s) failed its Fletcher32 "
                          "checksum: the shard is damaged on disk", s->path, i, rec->key);
  if (rc)
    return beit_error_set(err, BEIT_STATUS_IO, "%s: record %zu (%s) cannot be read (I/O error)",
                          s->path, i, rec->key);
  rec->size = n;
  const int32_t *lab = s->labels + i;
  size_t nl = 1;
  if (ds->task == BEIT_DATA_TASK_MULTILABEL) {
    lab = s->labels + s->label_offsets[i];
    nl = (size_t)(s->label_offsets[i + 1] - s->label_offsets[i]);
  }
  if (beit_data_grow((void **)&rec->labels, &rec->labels_capacity, (nl + 1) * sizeof(int32_t)))
    return beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", rec->key);
  memcpy(rec->labels, lab, nl * sizeof(int32_t));
  rec->num_labels = nl;
  return BEIT_STATUS_OK;
}
