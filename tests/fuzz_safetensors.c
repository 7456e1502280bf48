/* Fuzz target of the safetensors reader (core/safetensors.c): the input is a whole file, parsed
 * from memory by beit_safetensors_open_memory (the parser behind beit_safetensors_open: header
 * length, header JSON, dtype, shape, data_offsets, overlaps, duplicates). Every tensor an
 * accepted file lists is then looked up and read as floats and as integers, and the reader's
 * promises are checked (abort() otherwise): a tensor lies inside the input, its byte count is
 * numel x dtype size, exactly one of read_f32 / read_i64 takes it, a wrong shape is refused.
 * Seeds: tests/fuzz_safetensors_seeds.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_driver.h"
#include "safetensors.h"

static void check(int ok, const char *what)
{
  if (!ok) {
    fprintf(stderr, "fuzz_safetensors: broken promise: %s\n", what);
    abort();
  }
}

static void read_tensor(const struct beit_safetensors *st, const struct beit_st_tensor *t,
                        const uint8_t *data, size_t size)
{
  const uint8_t *p = t->data;
  check(t->nbytes == 0 || (p >= data && p + t->nbytes <= data + size), "tensor inside the file");
  check(beit_safetensors_find(st, t->name) == t, "find returns the listed tensor");
  size_t numel = 1;
  for (int d = 0; d < t->ndim; d++)
    numel *= t->shape[d];
  check(numel == t->numel, "numel is the product of the shape");
  /* numel <= nbytes: no dtype is narrower than a byte, so these allocations are bounded */
  float *f = malloc((numel ? numel : 1) * sizeof *f);
  int64_t *i = malloc((numel ? numel : 1) * sizeof *i);
  if (!f || !i)
    abort();
  struct beit_error err = {0};
  enum beit_status sf = beit_safetensors_read_f32(st, t->name, f, t->ndim, t->shape, &err);
  enum beit_status si = beit_safetensors_read_i64(st, t->name, i, t->ndim, t->shape, &err);
  check((sf == BEIT_STATUS_OK) != (si == BEIT_STATUS_OK), "one of read_f32 and read_i64 reads it");
  check(sf == BEIT_STATUS_OK || sf == BEIT_STATUS_UNSUPPORTED, "read_f32: OK or UNSUPPORTED");
  check(si == BEIT_STATUS_OK || si == BEIT_STATUS_UNSUPPORTED, "read_i64: OK or UNSUPPORTED");
  size_t other[BEIT_ST_MAX_DIMS + 1];
  memcpy(other, t->shape, sizeof t->shape);
  other[t->ndim] = 1; /* one more dimension: same numel, another shape */
  check(beit_safetensors_read_f32(st, t->name, f, t->ndim + 1, other, &err) == BEIT_STATUS_SHAPE,
        "another rank is a SHAPE error");
  free(f);
  free(i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct beit_safetensors *st;
  struct beit_error err = {0};
  if (beit_safetensors_open_memory(&st, "fuzz.safetensors", data, size, &err) != BEIT_STATUS_OK) {
    check(err.message[0] != '\0' && strstr(err.message, "fuzz.safetensors") != NULL,
          "a refusal names the file");
    return 0;
  }
  size_t n = beit_safetensors_count(st);
  for (size_t k = 0; k < n; k++)
    read_tensor(st, beit_safetensors_at(st, k), data, size);
  check(beit_safetensors_at(st, n) == NULL, "at(count) is NULL");
  float f;
  size_t one = 1;
  check(beit_safetensors_read_f32(st, "", &f, 1, &one, &err) == BEIT_STATUS_MISSING ||
            beit_safetensors_find(st, ""),
        "an absent tensor is MISSING");
  const char *format = beit_safetensors_metadata(st, "format");
  check(!format || strlen(format) < size, "metadata strings come from the header");
  beit_safetensors_close(st);
  return 0;
}
