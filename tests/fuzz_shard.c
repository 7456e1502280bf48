/* Fuzz target of the dataset reader (data/dataset.c): index.json and one HDF5 shard, opened by
 * beit_data_open and read record by record through beit_data_read_record, the calls the loader
 * makes. The reader takes a folder, so both files are written for each input to a private
 * folder under /dev/shm (or TMPDIR). Input: a mode byte, the index.json text, a NUL byte, then
 * the shard:
 *   mode 'R'  the bytes of shard-00000.h5 as they are (no NUL: no shard file). libhdf5 1.10 is
 *             not hardened against damaged files and crashes inside itself on some of them
 *             (docs/faults.md, Fuzzing), so this mode runs only with BEIT_FUZZ_SHARD_RAW=1 in
 *             the environment: the long runs set it, the bounded CI tests do not.
 *   other     a description of the shard, written with the HDF5 API so that libhdf5 always
 *             reads a well-formed file: the schema attributes, then datasets of any name of the
 *             schema, element type, rank, length (up to 2^48 without data), chunking and
 *             checksum, with contents from the input (write_described below). This is what our
 *             checks of a shard's structure and values meet in CI.
 * Promises checked (abort() otherwise): a refusal has a message and is never NOMEM; an opened
 * dataset has named classes; a record read has its labels in [0, num_classes), one per
 * multiclass record, and no more bytes than the shard file; a read fails only with FORMAT or
 * IO; and every HDF5 object the reader opened is closed again.
 * Seeds: tests/fuzz_shard_seeds.c. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "beit/data.h"
#include "data_internal.h"
#include "fuzz_driver.h"

#define MAX_READS 48         /* records read per input: the first ones and the last ones */
#define MAX_DATASETS 12      /* datasets of a described shard */
#define MAX_WRITE (1u << 20) /* bytes of one described dataset; larger ones are left unwritten */

/* libhdf5 allocates what sizes in a file's metadata say before it checks them (H5C_protect:
 * an entry image of a length read from the file), and AddressSanitizer treats an allocation
 * over its 1 TiB limit as a crash. With this, such a malloc returns NULL as it would without the
 * sanitizer, and libhdf5 reports an error. Our own code is held to more below: the reader never
 * answers NOMEM, because nothing it allocates exceeds the file it read the size from. */
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

/* libhdf5 1.10 loses some of its own allocations when opening a damaged file fails (free-list
 * blocks, H5FL_*): leaks with a libhdf5 frame are not reported. A leak of ours has no such frame,
 * and a handle of ours left open is caught by the object count at the end of each input. */
const char *__lsan_default_suppressions(void) { return "leak:libhdf5\n"; }

static char dir[256];

static void remove_dir(void)
{
  char path[320];
  snprintf(path, sizeof path, "%s/index.json", dir);
  unlink(path);
  snprintf(path, sizeof path, "%s/shard-00000.h5", dir);
  unlink(path);
  rmdir(dir);
}

static void make_dir(void)
{
  const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/beit-fuzz-shard-XXXXXX", tmp ? tmp : "/tmp");
  if (!mkdtemp(dir))
    abort();
  atexit(remove_dir);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static void write_file(const char *path, const uint8_t *bytes, size_t n)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || write(fd, bytes, n) != (ssize_t)n || close(fd) != 0)
    abort();
}

static void check(int ok, const char *what, const char *detail)
{
  if (!ok) {
    fprintf(stderr, "fuzz_shard: broken promise: %s: %s\n", what, detail);
    abort();
  }
}

/* ------------------------------------------------------------------ described shards */

struct input {
  const uint8_t *p;
  size_t n;
};

static uint64_t take(struct input *in, int bytes) /* little endian; zeros past the end */
{
  uint64_t v = 0;
  for (int i = 0; i < bytes && in->n; i++, in->p++, in->n--)
    v |= (uint64_t)*in->p << (8 * i);
  return v;
}

static const char *const dataset_names[] = {BEIT_SHARD_IMAGES, BEIT_SHARD_OFFSETS,
                                            BEIT_SHARD_KEYS, BEIT_SHARD_LABELS,
                                            BEIT_SHARD_LABEL_OFFSETS, BEIT_SHARD_LABEL_VALUES,
                                            "extra"};

/* The element type of code (closed by the caller). */
static hid_t element_type(unsigned code, unsigned str_size, int utf8)
{
  switch (code % 9) {
  case 0: return H5Tcopy(H5T_STD_U8LE);
  case 1: return H5Tcopy(H5T_STD_I8LE);
  case 2: return H5Tcopy(H5T_STD_I16LE);
  case 3: return H5Tcopy(H5T_STD_I32LE);
  case 4: return H5Tcopy(H5T_STD_U32LE);
  case 5: return H5Tcopy(H5T_STD_I64LE);
  case 6: return H5Tcopy(H5T_STD_U64LE);
  case 7: return H5Tcopy(H5T_IEEE_F64LE);
  default: break;
  }
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, str_size);
  H5Tset_strpad(t, H5T_STR_NULLPAD);
  H5Tset_cset(t, utf8 ? H5T_CSET_UTF8 : H5T_CSET_ASCII);
  return t;
}

enum {
  DS_FLETCHER32 = 1, /* checksum filter (chunked only) */
  DS_RANK2 = 2,      /* dims (n, 1) */
  DS_SCALAR = 4,     /* a scalar dataspace */
  DS_UNWRITTEN = 8,  /* no data written: chunks read as fill values */
  DS_HUGE = 16,      /* unwritten, n << 32 elements */
  DS_CONTIGUOUS = 32,
  DS_UTF8 = 64,
};

/* One dataset: name, type, string size (u16), flags, length (u16), then its elements' bytes. */
static void write_dataset(hid_t file, struct input *in)
{
  const char *name = dataset_names[take(in, 1) % 7];
  unsigned code = (unsigned)take(in, 1), str_size = 1 + (unsigned)take(in, 2) % 4096;
  unsigned flags = (unsigned)take(in, 1);
  hsize_t n = take(in, 2), chunk = 64, maxdims[2] = {H5S_UNLIMITED, H5S_UNLIMITED};
  if (flags & DS_HUGE)
    n = (n + 1) << 32, flags |= DS_UNWRITTEN;
  hid_t type = element_type(code, str_size, flags & DS_UTF8);
  size_t esize = H5Tget_size(type);
  if (n * esize > MAX_WRITE)
    flags |= DS_UNWRITTEN;
  hsize_t dims[2] = {n, 1}, chunks[2] = {n && n < chunk ? n : chunk, 1};
  hid_t space = flags & DS_SCALAR ? H5Screate(H5S_SCALAR)
                                  : H5Screate_simple(flags & DS_RANK2 ? 2 : 1, dims,
                                                     flags & DS_CONTIGUOUS ? NULL : maxdims);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (!(flags & (DS_CONTIGUOUS | DS_SCALAR)))
    H5Pset_chunk(dcpl, flags & DS_RANK2 ? 2 : 1, chunks);
  if (flags & DS_FLETCHER32)
    H5Pset_fletcher32(dcpl);
  hid_t ds = H5Dcreate2(file, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  if (flags & DS_SCALAR)
    n = 1;
  if (ds >= 0 && !(flags & DS_UNWRITTEN)) {
    size_t bytes = (size_t)n * esize;
    uint8_t *data = malloc(bytes ? bytes : 1);
    if (!data)
      abort();
    for (size_t i = 0; i < bytes; i++)
      data[i] = (uint8_t)take(in, 1);
    H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    free(data);
  }
  if (ds >= 0)
    H5Dclose(ds);
  H5Pclose(dcpl);
  H5Sclose(space);
  H5Tclose(type);
}

static void write_attr(hid_t file, const char *name, hid_t type, const void *value)
{
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  if (a >= 0) {
    H5Awrite(a, type, value);
    H5Aclose(a);
  }
  H5Sclose(space);
}

enum {
  ATTR_SCHEMA = 1,      /* schema_version (i64) */
  ATTR_NUM_RECORDS = 2, /* num_records (i64) */
  ATTR_TASK = 4,        /* task (a string of the given length) */
  ATTR_TASK_INT = 8,    /* task as an integer instead */
};

/* The shard a description makes: attribute flags, schema_version, num_records, task, then
 * datasets until the input ends. */
static void write_described(const char *path, struct input *in)
{
  hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0)
    abort();
  unsigned flags = (unsigned)take(in, 1);
  int64_t schema = (int8_t)take(in, 1), num_records = (int64_t)take(in, 8);
  static const char *const tasks[] = {"multiclass", "multilabel", "multiclass_",
                                      "a task name longer than the reader's 32-byte buffer"};
  const char *task = tasks[take(in, 1) % 4];
  if (flags & ATTR_SCHEMA)
    write_attr(file, BEIT_SHARD_SCHEMA_ATTR, H5T_NATIVE_INT64, &schema);
  if (flags & ATTR_NUM_RECORDS)
    write_attr(file, "num_records", H5T_NATIVE_INT64, &num_records);
  if (flags & ATTR_TASK_INT) {
    write_attr(file, BEIT_SHARD_TASK_ATTR, H5T_NATIVE_INT64, &schema);
  } else if (flags & ATTR_TASK) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(task) + 1);
    write_attr(file, BEIT_SHARD_TASK_ATTR, t, task);
    H5Tclose(t);
  }
  for (int i = 0; in->n && i < MAX_DATASETS; i++)
    write_dataset(file, in);
  if (H5Fclose(file) < 0)
    abort();
}

/* ---------------------------------------------------------------------------- reading */

static void read_one(struct beit_dataset *ds, size_t i, struct beit_data_record *rec,
                     size_t shard_size)
{
  struct beit_error err = {0};
  enum beit_status st = beit_data_read_record(ds, i, rec, (int)(i % 2), &err);
  check(st == BEIT_STATUS_OK || st == BEIT_STATUS_FORMAT || st == BEIT_STATUS_IO,
        "a read fails with FORMAT or IO (not NOMEM)", err.message);
  if (st != BEIT_STATUS_OK) {
    check(err.message[0] != '\0', "a failed read says why", "");
    return;
  }
  check(memchr(rec->key, '\0', sizeof rec->key) != NULL, "the key is a string", "");
  check(rec->size <= shard_size, "a record's bytes are in the shard file", rec->key);
  int C = beit_data_num_classes(ds);
  if (beit_data_task(ds) == BEIT_DATA_TASK_MULTICLASS)
    check(rec->num_labels == 1, "a multiclass record has one label", rec->key);
  for (size_t k = 0; k < rec->num_labels; k++)
    check(rec->labels[k] >= 0 && rec->labels[k] < C, "labels are in [0, num_classes)", rec->key);
}

static void read_all(size_t shard_size)
{
  struct beit_dataset *ds;
  struct beit_error err = {0};
  enum beit_status st = beit_data_open(&ds, dir, &err);
  check(st != BEIT_STATUS_NOMEM, "sizes are checked against the file before allocating",
        err.message);
  if (st != BEIT_STATUS_OK) {
    check(err.message[0] != '\0', "a refusal says why", "");
    return;
  }
  int C = beit_data_num_classes(ds);
  check(C >= 1 && beit_data_class_name(ds, C) == NULL, "classes are counted", "");
  for (int c = 0; c < C; c++)
    check(beit_data_class_name(ds, c) != NULL, "every class has a name", "");
  size_t n = beit_data_count(ds);
  struct beit_data_record rec = {0};
  for (size_t i = 0; i < n && i < MAX_READS / 2; i++)
    read_one(ds, i, &rec, shard_size);
  for (size_t i = n > MAX_READS / 2 ? n - MAX_READS / 2 : n; i < n; i++)
    read_one(ds, i, &rec, shard_size);
  check(beit_data_read(ds, n, &rec, &err) == BEIT_STATUS_USAGE, "record count is out of range",
        err.message);
  check(beit_data_check_files(ds, &err) == BEIT_STATUS_OK, "the files are as opened",
        err.message);
  beit_data_record_free(&rec);
  beit_data_close(ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static int raw_allowed = -1;
  if (raw_allowed < 0) {
    make_dir();
    raw_allowed = getenv("BEIT_FUZZ_SHARD_RAW") != NULL;
  }
  if (size < 1)
    return 0;
  int raw = data[0] == 'R';
  if (raw && !raw_allowed)
    return 0;
  data++, size--;
  const uint8_t *nul = memchr(data, '\0', size);
  size_t index_len = nul ? (size_t)(nul - data) : size;
  char path[320];
  snprintf(path, sizeof path, "%s/index.json", dir);
  write_file(path, data, index_len);
  snprintf(path, sizeof path, "%s/shard-00000.h5", dir);
  struct input rest = {nul ? nul + 1 : data + size, nul ? size - index_len - 1 : 0};
  if (raw && nul)
    write_file(path, rest.p, rest.n);
  else if (nul)
    write_described(path, &rest);
  else
    unlink(path);
  struct stat sb;
  read_all(stat(path, &sb) == 0 ? (size_t)sb.st_size : 0);
  check(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0, "every HDF5 object opened is closed",
        "");
  return 0;
}
