/* Shard writer: one HDF5 file per shard in the schema of docs/architecture.md (Formats).
 *
 * Records are buffered in memory (a shard is bounded by pack's shard_bytes) and written at close
 * as chunked, Fletcher32-checksummed 1-D datasets with unlimited maximum size (so any chunk size
 * and zero-length label sets are legal), to path.tmp and then renamed into place. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "data_internal.h"

enum beit_status beit_shard_writer_init(struct beit_shard_writer *w, const char *path,
                                        enum beit_data_task task, size_t chunk_bytes,
                                        struct beit_error *err)
{
  memset(w, 0, sizeof *w);
  if (strlen(path) + 8 >= sizeof w->path)
    return beit_error_set(err, BEIT_STATUS_USAGE, "%s: path too long", path);
  strcpy(w->path, path);
  w->task = task;
  w->chunk_bytes = chunk_bytes; /* 0: chosen at close from the mean record size */
  if (beit_data_grow((void **)&w->offsets, &w->offsets_cap, sizeof(int64_t)) ||
      beit_data_grow((void **)&w->label_offsets, &w->label_offsets_cap, sizeof(int64_t)))
    return beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", path);
  w->offsets[0] = 0;
  w->label_offsets[0] = 0;
  return BEIT_STATUS_OK;
}

void beit_shard_writer_free(struct beit_shard_writer *w)
{
  free(w->bytes);
  free(w->offsets);
  free(w->labels);
  free(w->label_offsets);
  free(w->keys);
  memset(w, 0, sizeof *w);
}

enum beit_status beit_shard_writer_add(struct beit_shard_writer *w, const void *bytes,
                                       size_t size, const int32_t *labels, size_t nlabels,
                                       const char *key, struct beit_error *err)
{
  size_t klen = strlen(key);
  if (klen + 1 > BEIT_DATA_KEY_MAX)
    return beit_error_set(err, BEIT_STATUS_USAGE, "%s: key longer than %d bytes", key,
                          BEIT_DATA_KEY_MAX - 1);
  if (w->task == BEIT_DATA_TASK_MULTICLASS && nlabels != 1)
    return beit_error_set(err, BEIT_STATUS_USAGE, "%s: a multiclass record needs one label", key);
  size_t cap_lo = (w->count + 2) * sizeof(int64_t);
  if (beit_data_grow((void **)&w->bytes, &w->bytes_cap, w->nbytes + size) ||
      beit_data_grow((void **)&w->offsets, &w->offsets_cap, cap_lo) ||
      beit_data_grow((void **)&w->label_offsets, &w->label_offsets_cap, cap_lo) ||
      beit_data_grow((void **)&w->labels, &w->labels_cap, (w->nlabels + nlabels + 1) * sizeof(int32_t)) ||
      beit_data_grow((void **)&w->keys, &w->keys_cap, w->keys_len + klen + 1))
    return beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory adding %s", w->path, key);
  memcpy(w->bytes + w->nbytes, bytes, size);
  w->nbytes += size;
  memcpy(w->labels + w->nlabels, labels, nlabels * sizeof(int32_t));
  w->nlabels += nlabels;
  memcpy(w->keys + w->keys_len, key, klen + 1);
  w->keys_len += klen + 1;
  if (klen > w->key_max)
    w->key_max = klen;
  w->count++;
  w->offsets[w->count] = (int64_t)w->nbytes;
  w->label_offsets[w->count] = (int64_t)w->nlabels;
  return BEIT_STATUS_OK;
}

/* One chunked, checksummed 1-D dataset holding n elements of type. */
static int write_1d(hid_t file, const char *name, hid_t type, const void *data, size_t n,
                    size_t chunk_elems)
{
  hsize_t dims = n, maxdims = H5S_UNLIMITED, chunk = chunk_elems ? chunk_elems : 1;
  if (n && chunk > n)
    chunk = n;
  hid_t space = H5Screate_simple(1, &dims, &maxdims);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  int ok = space >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, 1, &chunk) >= 0 &&
           H5Pset_fletcher32(dcpl) >= 0;
  hid_t ds = ok ? H5Dcreate2(file, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT) : -1;
  ok = ds >= 0 && (n == 0 || H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
  if (ds >= 0)
    H5Dclose(ds);
  if (dcpl >= 0)
    H5Pclose(dcpl);
  if (space >= 0)
    H5Sclose(space);
  return ok ? 0 : -1;
}

static int write_attr_int(hid_t obj, const char *name, int64_t v)
{
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(obj, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
  int ok = a >= 0 && H5Awrite(a, H5T_NATIVE_INT64, &v) >= 0;
  if (a >= 0)
    H5Aclose(a);
  H5Sclose(space);
  return ok ? 0 : -1;
}

static int write_attr_str(hid_t obj, const char *name, const char *v)
{
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, strlen(v) + 1);
  H5Tset_strpad(type, H5T_STR_NULLTERM);
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  int ok = a >= 0 && H5Awrite(a, type, v) >= 0;
  if (a >= 0)
    H5Aclose(a);
  H5Sclose(space);
  H5Tclose(type);
  return ok ? 0 : -1;
}

enum beit_status beit_shard_writer_close(struct beit_shard_writer *w, struct beit_error *err)
{
  enum beit_status st = BEIT_STATUS_OK;
  char tmp[sizeof w->path + 8];
  snprintf(tmp, sizeof tmp, "%s.tmp", w->path);
  char *fixed = NULL;
  hid_t ktype = -1;
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) {
    st = beit_error_set(err, BEIT_STATUS_IO, "%s: cannot create HDF5 file", tmp);
    goto free_writer;
  }
  /* Keys as fixed-length NUL-padded strings, so they are chunked and checksummed too. */
  size_t ksize = w->key_max + 1;
  fixed = calloc(w->count ? w->count : 1, ksize);
  if (!fixed) {
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", w->path);
    goto close_file;
  }
  for (size_t i = 0, pos = 0; i < w->count; i++) {
    size_t len = strlen(w->keys + pos);
    memcpy(fixed + i * ksize, w->keys + pos, len);
    pos += len + 1;
  }
  ktype = H5Tcopy(H5T_C_S1);
  H5Tset_size(ktype, ksize);
  H5Tset_strpad(ktype, H5T_STR_NULLPAD);
  H5Tset_cset(ktype, H5T_CSET_UTF8);
  const size_t meta_chunk = 16384;
  /* Records are read one at a time in random order and a whole chunk is read (and checksummed)
   * per miss: about two mean records per chunk, 16 KiB to 1 MiB. */
  size_t chunk = w->chunk_bytes;
  if (!chunk) {
    size_t mean = w->count ? w->nbytes / w->count : 0;
    for (chunk = (size_t)16 << 10; chunk < 2 * mean && chunk < ((size_t)1 << 20); chunk *= 2)
      ;
  }
  int bad = write_attr_int(file, BEIT_SHARD_SCHEMA_ATTR, BEIT_DATA_SCHEMA_VERSION) ||
            write_attr_str(file, BEIT_SHARD_TASK_ATTR,
                           w->task == BEIT_DATA_TASK_MULTILABEL ? "multilabel" : "multiclass") ||
            write_attr_int(file, "num_records", (int64_t)w->count) ||
            write_1d(file, BEIT_SHARD_IMAGES, H5T_STD_U8LE, w->bytes, w->nbytes, chunk) ||
            write_1d(file, BEIT_SHARD_OFFSETS, H5T_STD_I64LE, w->offsets, w->count + 1, meta_chunk) ||
            write_1d(file, BEIT_SHARD_KEYS, ktype, fixed, w->count, 256 * 1024 / ksize + 1);
  if (!bad && w->task == BEIT_DATA_TASK_MULTICLASS)
    bad = write_1d(file, BEIT_SHARD_LABELS, H5T_STD_I32LE, w->labels, w->count, meta_chunk);
  else if (!bad)
    bad = write_1d(file, BEIT_SHARD_LABEL_OFFSETS, H5T_STD_I64LE, w->label_offsets, w->count + 1,
                   meta_chunk) ||
          write_1d(file, BEIT_SHARD_LABEL_VALUES, H5T_STD_I32LE, w->labels, w->nlabels, meta_chunk);
  if (bad)
    st = beit_error_set(err, BEIT_STATUS_IO, "%s: writing the HDF5 datasets failed", tmp);
close_file:
  if (ktype >= 0)
    H5Tclose(ktype);
  free(fixed);
  if (H5Fclose(file) < 0 && !st)
    st = beit_error_set(err, BEIT_STATUS_IO, "%s: closing failed", tmp);
  if (!st && rename(tmp, w->path) != 0)
    st = beit_error_set(err, BEIT_STATUS_IO, "%s: cannot rename into place", w->path);
  if (st)
    remove(tmp);
free_writer:
  beit_shard_writer_free(w);
  return st;
}
