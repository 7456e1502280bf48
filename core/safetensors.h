/* safetensors reading and writing (spec 10.3), validated at open.
 *
 * A file is opened once (mmap, read-only) and every header entry is checked before anything is
 * handed out: header length within the file and under 100 MB, JSON well formed, known dtype,
 * shape and data_offsets consistent (end - begin == numel * dtype size), ranges inside the data
 * buffer and not overlapping. Every failure names the file and, where there is one, the tensor.
 * Writing goes to "<path>.tmp" and is renamed into place after fsync, so a reader never sees
 * a half-written file. */
#ifndef BEIT_CORE_SAFETENSORS_H
#define BEIT_CORE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "beit/status.h"
#include "tensor_table.h"

#define BEIT_ST_MAX_DIMS 8


struct beit_st_tensor {
  const char *name;
  enum beit_dtype dtype;
  int ndim;
  size_t shape[BEIT_ST_MAX_DIMS];
  size_t numel;
  const void *data; /* into the mapped file; valid until close */
  size_t nbytes;
};

struct beit_safetensors; /* opaque */

enum beit_status beit_safetensors_open(struct beit_safetensors **out, const char *path,
                                       struct beit_error *err);
/* The same checks on a file already in memory: size bytes at bytes, borrowed (they must outlive
 * the handle, whose tensors point into them); name stands for the path in messages and
 * beit_safetensors_path. beit_safetensors_open maps the file and runs the same parser. */
enum beit_status beit_safetensors_open_memory(struct beit_safetensors **out, const char *name,
                                              const void *bytes, size_t size,
                                              struct beit_error *err);
void beit_safetensors_close(struct beit_safetensors *st);

const char *beit_safetensors_path(const struct beit_safetensors *st);
size_t beit_safetensors_count(const struct beit_safetensors *st);
const struct beit_st_tensor *beit_safetensors_at(const struct beit_safetensors *st, size_t i);
/* NULL when absent. */
const struct beit_st_tensor *beit_safetensors_find(const struct beit_safetensors *st,
                                                   const char *name);
/* Value of a "__metadata__" string entry, or NULL. */
const char *beit_safetensors_metadata(const struct beit_safetensors *st, const char *key);

/* Copy tensor `name` into dst as f32 (F32, F16, BF16 and F64 convert). Its shape must equal
 * (ndim, shape): a missing tensor is BEIT_STATUS_MISSING, another shape BEIT_STATUS_SHAPE, each
 * naming file and tensor with both shapes. */
enum beit_status beit_safetensors_read_f32(const struct beit_safetensors *st, const char *name,
                                           float *dst, int ndim, const size_t *shape,
                                           struct beit_error *err);
/* Same for integer data (I64, I32, I16, I8, U8, BOOL) into int64. */
enum beit_status beit_safetensors_read_i64(const struct beit_safetensors *st, const char *name,
                                           int64_t *dst, int ndim, const size_t *shape,
                                           struct beit_error *err);

/* One tensor to write. dtype F32, I64, I32, U8 or BOOL; data is numel elements of it. */
struct beit_st_entry {
  const char *name;
  enum beit_dtype dtype;
  int ndim;
  size_t shape[BEIT_ST_MAX_DIMS];
  const void *data;
};

/* Write count entries (in the given order) to path via path.tmp + fsync + rename. metadata is a
 * NULL-terminated list of key, value strings for "__metadata__" (may be NULL; "format": "pt" is
 * always written, as HF does). */
enum beit_status beit_safetensors_write(const char *path, const struct beit_st_entry *entries,
                                        size_t count, const char *const *metadata,
                                        struct beit_error *err);

/* Write every tensor of table from buffer (table->total floats) as F32 under its name. */
enum beit_status beit_safetensors_write_table(const char *path,
                                              const struct beit_tensor_table *table,
                                              const float *buffer, const char *const *metadata,
                                              struct beit_error *err);

#endif
