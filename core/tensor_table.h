/* Named tensors carved out of one flat float buffer (llm.c style).
 *
 * A model's parameters are one allocation; the table records each tensor's HF-convention name,
 * shape and offset. grads, AdamW m and v are parallel buffers of table->total floats, so
 * zero-grad is one memset, the optimizer one loop and a checkpoint one walk of the table.
 * Offsets are aligned to 16 floats (64 bytes) for vector loads. */
#ifndef BEIT_CORE_TENSOR_TABLE_H
#define BEIT_CORE_TENSOR_TABLE_H

#include <stddef.h>

#include "beit/status.h"

#define BEIT_MAX_DIMS 4

/* Element types of tensors in files (safetensors) and of matrix-product operands (gemm.h). */
enum beit_dtype {
  BEIT_DTYPE_F32,
  BEIT_DTYPE_F16,
  BEIT_DTYPE_BF16,
  BEIT_DTYPE_F64,
  BEIT_DTYPE_I64,
  BEIT_DTYPE_I32,
  BEIT_DTYPE_I16,
  BEIT_DTYPE_I8,
  BEIT_DTYPE_U8,
  BEIT_DTYPE_BOOL,
};
#define BEIT_TENSOR_NAME_MAX 128

struct beit_tensor {
  char name[BEIT_TENSOR_NAME_MAX];
  int ndim;
  size_t shape[BEIT_MAX_DIMS];
  size_t numel;
  size_t offset;   /* in floats, from the start of the buffer */
  int no_decay;    /* excluded from weight decay (spec 5.2) */
  int layer_id;    /* for layer-wise lr decay (spec 5.1) */
  float lr_scale;  /* multiplies the scheduled lr; 1 unless layer decay is on */
};

struct beit_tensor_table {
  struct beit_tensor *items;
  size_t count, capacity;
  size_t total; /* floats, including alignment padding */
};

void beit_tensor_table_init(struct beit_tensor_table *table);
void beit_tensor_table_free(struct beit_tensor_table *table);

/* Append a tensor of the given shape; returns its index or -1 on allocation failure.
 * ndim 0 is not allowed; shape entries past ndim are ignored. */
long beit_tensor_table_add(struct beit_tensor_table *table, const char *name, int ndim,
                           const size_t *shape);

/* The same, but the next tensor starts right after this one (no alignment padding), so
 * consecutive packed tensors form one contiguous matrix (the query/key/value weights). */
long beit_tensor_table_add_packed(struct beit_tensor_table *table, const char *name, int ndim,
                                  const size_t *shape);

/* Index of the tensor called name, or -1. */
long beit_tensor_table_find(const struct beit_tensor_table *table, const char *name);

/* "(768, 3, 16, 16)" into buf. */
const char *beit_tensor_shape_str(const struct beit_tensor *t, char *buf, size_t size);

/* A zeroed buffer of `bytes` (NULL on failure; free with free()). calloc: large buffers come
 * zeroed from the kernel and only pages that are written count in memory, so a planned-but-unused
 * buffer (an inference model's gradients) costs nothing. Buffers of 4 MiB or more are advised onto
 * transparent huge pages (madvise), where the kernel offers them. beit_alloc_floats: n floats. */
void *beit_alloc_zeroed(size_t bytes);
float *beit_alloc_floats(size_t n);

#endif
