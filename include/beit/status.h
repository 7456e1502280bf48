/* Status codes and the error buffer every library function reports through.
 *
 * Library code never exits: a function returns an enum beit_status and, when given a
 * struct beit_error, writes a message naming the file, key, tensor or record at fault.
 * Names and default messages come from one X-macro list (libuv style). */
#ifndef BEIT_STATUS_H
#define BEIT_STATUS_H

#include <stddef.h>

#define BEIT_STATUS_MAP(X)                                   \
  X(OK, "success")                                           \
  X(NOMEM, "out of memory")                                  \
  X(IO, "input/output error")                                \
  X(FORMAT, "malformed or corrupt file")                     \
  X(CONFIG, "invalid configuration")                         \
  X(SHAPE, "tensor shape mismatch")                          \
  X(MISSING, "required item missing")                        \
  X(UNSUPPORTED, "unsupported feature")                      \
  X(NUMERIC, "non-finite value")                             \
  X(USAGE, "invalid argument")                               \
  X(DISTRIBUTED, "distributed runtime error")                \
  X(INTERRUPTED, "interrupted")                              \
  X(INTERNAL, "internal error")

enum beit_status {
#define BEIT_STATUS_ENUM_(name, msg) BEIT_STATUS_##name,
  BEIT_STATUS_MAP(BEIT_STATUS_ENUM_)
#undef BEIT_STATUS_ENUM_
  BEIT_STATUS_COUNT_
};

/* Details of the last failure: the status and a human message ("file.json: key 'x': ..."). */
struct beit_error {
  enum beit_status status;
  char message[1024];
};

const char *beit_status_name(enum beit_status status);    /* "FORMAT" */
const char *beit_status_message(enum beit_status status); /* "malformed or corrupt file" */

/* Record a failure in err (which may be NULL) and return status, so callers can write
 * `return beit_error_set(err, BEIT_STATUS_FORMAT, "%s: bad header", path);`. */
enum beit_status beit_error_set(struct beit_error *err, enum beit_status status,
                                const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prefix context onto an existing message ("loading model/: " + old message). */
void beit_error_prefix(struct beit_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void beit_error_clear(struct beit_error *err);

/* For broken invariants only (a programming error, never bad input): prints the condition and
 * its place, then aborts. */
#define BEIT_ASSERT(cond) ((cond) ? (void)0 : beit_assert_fail(#cond, __FILE__, __LINE__))
void beit_assert_fail(const char *cond, const char *file, int line) __attribute__((noreturn));

#endif
