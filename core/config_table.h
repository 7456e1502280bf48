/* One table of known keys drives parsing, validation, overriding and saving of every JSON
 * configuration (redis static_configs style, STYLE.md 11).
 *
 * A key is a dotted path ("optimizer.lr" is {"optimizer": {"lr": ...}}) bound to a field of a
 * C struct by offset. Reading rejects unknown keys, wrong types and out-of-range values with a
 * message naming the key and the file; keys absent from the JSON keep the struct's defaults.
 * Two kinds of row accept a key without storing it: IGNORE (silent: handled outside the table,
 * or bookkeeping we write ourselves) and FOREIGN (another tool's field that changes nothing we
 * build; the caller reports the ones present, see beit_config_foreign_keys). */
#ifndef BEIT_CORE_CONFIG_TABLE_H
#define BEIT_CORE_CONFIG_TABLE_H

#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "beit/status.h"

#define BEIT_CONFIG_STR 256

enum beit_key_type {
  BEIT_KEY_INT,    /* long */
  BEIT_KEY_DOUBLE, /* double */
  BEIT_KEY_BOOL,   /* int, 0 or 1 */
  BEIT_KEY_STRING, /* char[BEIT_CONFIG_STR] */
  BEIT_KEY_PATH,   /* char[BEIT_CONFIG_STR], a file or folder: see beit_config_resolve_paths */
  BEIT_KEY_VEC3,   /* double[3], e.g. image_mean */
  BEIT_KEY_IGNORE,  /* accepted and not stored, silently (handled elsewhere, our own bookkeeping) */
  BEIT_KEY_FOREIGN, /* accepted and not stored, and listed by beit_config_foreign_keys */
};

struct beit_config_key {
  const char *name;
  enum beit_key_type type;
  size_t offset;
  double min, max;            /* inclusive range for INT, DOUBLE and each VEC3 element */
  const char *const *choices; /* STRING: NULL-terminated allowed values; NULL = any */
  const char *help;
  const char *def;            /* the default as --set would give it ("0.05", "blockwise"), set
                                 by beit_config_apply_defaults; NULL: zero */
};

/* Every row's default (def) into dst, through the parser --set uses; rows without one are left
 * as they are (zero after a memset). A default the row refuses is a bug of the table: the
 * tests call this on every table. */
enum beit_status beit_config_apply_defaults(void *dst, const struct beit_config_key *keys,
                                            size_t nkeys, struct beit_error *err);
/* beit_config_apply_defaults for a struct's defaults function: a default its row refuses is a
 * broken invariant (a bug of the table, `what` names it), reported on stderr before abort(). */
void beit_config_table_defaults(void *dst, const struct beit_config_key *keys, size_t nkeys,
                                const char *what);
/* Fill dst from a parsed JSON object. source names the file in messages. */
enum beit_status beit_config_from_json(void *dst, const struct beit_config_key *keys,
                                       size_t nkeys, const cJSON *root, const char *source,
                                       struct beit_error *err);
/* Read and apply a JSON file. */
enum beit_status beit_config_load_file(void *dst, const struct beit_config_key *keys,
                                       size_t nkeys, const char *path, struct beit_error *err);
/* Apply one "a.b=value" override (the --set option); value parsed as the key's type. */
enum beit_status beit_config_set(void *dst, const struct beit_config_key *keys, size_t nkeys,
                                 const char *assignment, struct beit_error *err);
/* The FOREIGN keys present in root (any value, null included), in file order, as a
 * comma-separated list in out (size bytes; ", ..." ends a list that does not fit). Returns how
 * many there are. Call it on a root that beit_config_from_json accepted. */
size_t beit_config_foreign_keys(const struct beit_config_key *keys, size_t nkeys,
                                const cJSON *root, char *out, size_t size);
/* The PATH keys that file gave dst, resolved in place. A key still holding what the file gave it
 * (its value in loaded, a copy of dst taken right after beit_config_load_file(file)) is taken
 * relative to the file that names it: an absolute or empty value is kept; a relative one becomes
 * <file's folder>/<value> when that exists, else stays <value> when that exists from the current
 * directory (configs written for the repository root, "configs/models/x.json"); when neither
 * exists, BEIT_STATUS_MISSING names the file, the key and the paths tried. A key changed since
 * (--set, a command-line option) is the caller's, relative to the current directory, and kept. */
enum beit_status beit_config_resolve_paths(void *dst, const void *loaded,
                                           const struct beit_config_key *keys, size_t nkeys,
                                           const char *file, struct beit_error *err);
/* The struct as a nested JSON object (IGNORE and FOREIGN keys left out); NULL on allocation
 * failure. */
cJSON *beit_config_to_json(const void *src, const struct beit_config_key *keys, size_t nkeys);

/* Parse a whole JSON file; errors name the file and the byte offset of a syntax error. */
enum beit_status beit_json_read_file(cJSON **out, const char *path, struct beit_error *err);
/* Write JSON (pretty) to path via path.tmp + fsync + rename. */
enum beit_status beit_json_write_file(const char *path, const cJSON *json,
                                      struct beit_error *err);
/* The rest of the open stream f into one malloc'd buffer (*data, *size bytes; f stays open):
 * BEIT_STATUS_NOMEM or BEIT_STATUS_IO (a read error) with nothing allocated, no message set (the
 * caller names the file). Reads to the end, whatever the file's size said. */
enum beit_status beit_read_stream(FILE *f, unsigned char **data, size_t *size);
/* Write n bytes to path via path.tmp + fsync + rename (the one atomic-write mechanism). */
enum beit_status beit_write_file_atomic(const char *path, const void *data, size_t n,
                                        struct beit_error *err);

/* One piece of a file written by beit_write_file_atomic_parts. */
struct beit_file_part {
  const void *data;
  size_t size;
};

/* Write the concatenation of nparts pieces to path via path.tmp + fsync + rename, without
 * gathering them into one buffer first (a 400 MB model is written straight from its tensors).
 * On failure path.tmp is removed and an existing path is left untouched. */
enum beit_status beit_write_file_atomic_parts(const char *path, const struct beit_file_part *parts,
                                              size_t nparts, struct beit_error *err);

#endif
