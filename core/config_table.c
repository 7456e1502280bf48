/* Table-driven JSON configuration: parse, validate, override, save; atomic file writes. */
#include "config_table.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct beit_config_key *find_key(const struct beit_config_key *keys, size_t nkeys,
                                              const char *name)
{
  for (size_t i = 0; i < nkeys; i++)
    if (strcmp(keys[i].name, name) == 0)
      return &keys[i];
  return NULL;
}

/* True when some key lives below the dotted prefix "name." (so an object is expected). */
static int is_key_prefix(const struct beit_config_key *keys, size_t nkeys, const char *name)
{
  size_t n = strlen(name);
  for (size_t i = 0; i < nkeys; i++)
    if (strncmp(keys[i].name, name, n) == 0 && keys[i].name[n] == '.')
      return 1;
  return 0;
}

static enum beit_status check_range(const struct beit_config_key *k, double x, const char *source,
                                    struct beit_error *err)
{
  if (!isfinite(x) || x < k->min || x > k->max)
    return beit_error_set(err, BEIT_STATUS_CONFIG, "%s: key '%s': value %g outside [%g, %g]",
                          source, k->name, x, k->min, k->max);
  return BEIT_STATUS_OK;
}

static enum beit_status store_string(void *dst, const struct beit_config_key *k, const char *s,
                                     const char *source, struct beit_error *err)
{
  if (strlen(s) >= BEIT_CONFIG_STR)
    return beit_error_set(err, BEIT_STATUS_CONFIG, "%s: key '%s': string too long", source,
                          k->name);
  if (k->choices) {
    int ok = 0;
    for (const char *const *c = k->choices; *c; c++)
      ok |= strcmp(*c, s) == 0;
    if (!ok) {
      char list[512] = "";
      for (const char *const *c = k->choices; *c; c++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s'%s'",
                 c == k->choices ? "" : ", ", *c);
      return beit_error_set(err, BEIT_STATUS_CONFIG, "%s: key '%s': '%s' is not one of %s",
                            source, k->name, s, list);
    }
  }
  strcpy((char *)dst + k->offset, s);
  return BEIT_STATUS_OK;
}

static enum beit_status store_value(void *dst, const struct beit_config_key *k, const cJSON *v,
                                    const char *source, struct beit_error *err)
{
  char *field = (char *)dst + k->offset;
  enum beit_status st;
  if (cJSON_IsNull(v)) /* HF writes null for "not set": keep the default */
    return BEIT_STATUS_OK;
  switch (k->type) {
  case BEIT_KEY_IGNORE:
  case BEIT_KEY_FOREIGN:
    return BEIT_STATUS_OK;
  case BEIT_KEY_INT:
  case BEIT_KEY_DOUBLE: {
    const int whole = k->type == BEIT_KEY_INT;
    if (!cJSON_IsNumber(v) || (whole && v->valuedouble != floor(v->valuedouble)))
      return beit_error_set(err, BEIT_STATUS_CONFIG, "%s: key '%s': expected %s", source, k->name,
                            whole ? "an integer" : "a number");
    if ((st = check_range(k, v->valuedouble, source, err)))
      return st;
    if (whole)
      *(long *)field = (long)v->valuedouble;
    else
      *(double *)field = v->valuedouble;
    return BEIT_STATUS_OK;
  }
  case BEIT_KEY_BOOL:
    if (!cJSON_IsBool(v))
      return beit_error_set(err, BEIT_STATUS_CONFIG, "%s: key '%s': expected true or false",
                            source, k->name);
    *(int *)field = cJSON_IsTrue(v);
    return BEIT_STATUS_OK;
  case BEIT_KEY_STRING:
  case BEIT_KEY_PATH:
    if (!cJSON_IsString(v))
      return beit_error_set(err, BEIT_STATUS_CONFIG, "%s: key '%s': expected a string", source,
                            k->name);
    return store_string(dst, k, v->valuestring, source, err);
  case BEIT_KEY_VEC3: {
    double tmp[3];
    if (cJSON_IsNumber(v)) { /* HF allows a scalar mean/std for all channels */
      tmp[0] = tmp[1] = tmp[2] = v->valuedouble;
    } else {
      if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 3)
        return beit_error_set(err, BEIT_STATUS_CONFIG, "%s: key '%s': expected 3 numbers",
                              source, k->name);
      for (int i = 0; i < 3; i++) {
        const cJSON *e = cJSON_GetArrayItem(v, i);
        if (!cJSON_IsNumber(e))
          return beit_error_set(err, BEIT_STATUS_CONFIG, "%s: key '%s': expected 3 numbers",
                                source, k->name);
        tmp[i] = e->valuedouble;
      }
    }
    for (int i = 0; i < 3; i++)
      if ((st = check_range(k, tmp[i], source, err)))
        return st;
    memcpy(field, tmp, sizeof tmp);
    return BEIT_STATUS_OK;
  }
  }
  return beit_error_set(err, BEIT_STATUS_CONFIG, "%s: key '%s': bad key type", source, k->name);
}

static enum beit_status walk(void *dst, const struct beit_config_key *keys, size_t nkeys,
                             const cJSON *obj, const char *prefix, const char *source,
                             struct beit_error *err)
{
  for (const cJSON *item = obj->child; item; item = item->next) {
    char name[512];
    snprintf(name, sizeof name, "%s%s%s", prefix, *prefix ? "." : "", item->string);
    const struct beit_config_key *k = find_key(keys, nkeys, name);
    enum beit_status st;
    if (k) {
      if ((st = store_value(dst, k, item, source, err)))
        return st;
    } else if (cJSON_IsObject(item) && is_key_prefix(keys, nkeys, name)) {
      if ((st = walk(dst, keys, nkeys, item, name, source, err)))
        return st;
    } else {
      return beit_error_set(err, BEIT_STATUS_CONFIG, "%s: unknown key '%s'", source, name);
    }
  }
  return BEIT_STATUS_OK;
}

/* A comma-separated list of names that ends in ", ..." once the next name does not fit. */
struct name_list {
  char *out;
  size_t size, len;
  int full;
};

static void name_list_add(struct name_list *l, const char *name)
{
  static const char more[] = ", ...";
  const char *sep = l->len ? ", " : "";
  if (l->full)
    return;
  if (l->len + strlen(sep) + strlen(name) + sizeof more <= l->size) {
    l->len += (size_t)snprintf(l->out + l->len, l->size - l->len, "%s%s", sep, name);
  } else {
    l->full = 1;
    if (l->len + sizeof more <= l->size)
      l->len += (size_t)snprintf(l->out + l->len, l->size - l->len, "%s", more);
  }
}

/* Count and list the FOREIGN keys below prefix, descending into objects as walk does. */
static size_t list_foreign(const struct beit_config_key *keys, size_t nkeys, const cJSON *obj,
                           const char *prefix, struct name_list *list)
{
  size_t count = 0;
  for (const cJSON *item = obj->child; item; item = item->next) {
    char name[512];
    snprintf(name, sizeof name, "%s%s%s", prefix, *prefix ? "." : "", item->string);
    const struct beit_config_key *k = find_key(keys, nkeys, name);
    if (k && k->type == BEIT_KEY_FOREIGN) {
      name_list_add(list, name);
      count++;
    } else if (!k && cJSON_IsObject(item) && is_key_prefix(keys, nkeys, name)) {
      count += list_foreign(keys, nkeys, item, name, list);
    }
  }
  return count;
}

size_t beit_config_foreign_keys(const struct beit_config_key *keys, size_t nkeys,
                                const cJSON *root, char *out, size_t size)
{
  struct name_list list = {out, size, 0, 0};
  if (size == 0)
    return 0;
  out[0] = '\0';
  return cJSON_IsObject(root) ? list_foreign(keys, nkeys, root, "", &list) : 0;
}

enum beit_status beit_config_from_json(void *dst, const struct beit_config_key *keys,
                                       size_t nkeys, const cJSON *root, const char *source,
                                       struct beit_error *err)
{
  if (!cJSON_IsObject(root))
    return beit_error_set(err, BEIT_STATUS_CONFIG, "%s: expected a JSON object", source);
  return walk(dst, keys, nkeys, root, "", source, err);
}

enum beit_status beit_config_load_file(void *dst, const struct beit_config_key *keys,
                                       size_t nkeys, const char *path, struct beit_error *err)
{
  cJSON *root = NULL;
  enum beit_status st = beit_json_read_file(&root, path, err);
  if (st)
    return st;
  st = beit_config_from_json(dst, keys, nkeys, root, path, err);
  cJSON_Delete(root);
  return st;
}

/* value as text (--set's, a row's default): JSON, or a bare word taken as a string. */
static enum beit_status store_text(void *dst, const struct beit_config_key *k, const char *value,
                                   const char *source, struct beit_error *err)
{
  /* the whole value: "30s" or "64,2" is not the number 30 or 64 with the rest ignored */
  cJSON *v = cJSON_ParseWithOpts(value, NULL, 1);
  if (!v || ((k->type == BEIT_KEY_STRING || k->type == BEIT_KEY_PATH) && !cJSON_IsString(v))) {
    cJSON_Delete(v);
    v = cJSON_CreateString(value);
  }
  if (!v)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "%s %s: out of memory", source, k->name);
  enum beit_status st = store_value(dst, k, v, source, err);
  cJSON_Delete(v);
  return st;
}

enum beit_status beit_config_set(void *dst, const struct beit_config_key *keys, size_t nkeys,
                                 const char *assignment, struct beit_error *err)
{
  const char *eq = strchr(assignment, '=');
  if (!eq || eq == assignment)
    return beit_error_set(err, BEIT_STATUS_USAGE, "--set '%s': expected key=value", assignment);
  char name[256];
  size_t n = (size_t)(eq - assignment);
  if (n >= sizeof name)
    return beit_error_set(err, BEIT_STATUS_USAGE, "--set: key too long");
  memcpy(name, assignment, n);
  name[n] = '\0';
  const struct beit_config_key *k = find_key(keys, nkeys, name);
  if (!k || k->type == BEIT_KEY_IGNORE || k->type == BEIT_KEY_FOREIGN)
    return beit_error_set(err, BEIT_STATUS_CONFIG, "--set: unknown key '%s'", name);
  return store_text(dst, k, eq + 1, "--set", err);
}

enum beit_status beit_config_apply_defaults(void *dst, const struct beit_config_key *keys,
                                            size_t nkeys, struct beit_error *err)
{
  enum beit_status st = BEIT_STATUS_OK;
  for (size_t i = 0; !st && i < nkeys; i++)
    if (keys[i].def)
      st = store_text(dst, &keys[i], keys[i].def, "the table's default", err);
  return st;
}

void beit_config_table_defaults(void *dst, const struct beit_config_key *keys, size_t nkeys,
                                const char *what)
{
  struct beit_error err = {0};
  if (beit_config_apply_defaults(dst, keys, nkeys, &err)) {
    fprintf(stderr, "beit: %s defaults: %s\n", what, err.message);
    abort();
  }
}

/* One relative path that file gave key, resolved in place (contract: beit_config_resolve_paths). */
static enum beit_status resolve_path(char *field, const char *file, const char *key,
                                     struct beit_error *err)
{
  if (!field[0] || field[0] == '/')
    return BEIT_STATUS_OK;
  const char *slash = strrchr(file, '/');
  if (!slash) /* the file's folder is the current directory */
    return access(field, F_OK) == 0
               ? BEIT_STATUS_OK
               : beit_error_set(err, BEIT_STATUS_MISSING,
                                "%s: key '%s': '%s' not found (relative to the file, whose "
                                "folder is the current directory)", file, key, field);
  char joined[4096 + BEIT_CONFIG_STR];
  if ((size_t)snprintf(joined, sizeof joined, "%.*s%s", (int)(slash + 1 - file), file, field) >=
      sizeof joined)
    return beit_error_set(err, BEIT_STATUS_CONFIG, "%s: key '%s': path too long", file, key);
  if (access(joined, F_OK) == 0) {
    if (strlen(joined) >= BEIT_CONFIG_STR)
      return beit_error_set(err, BEIT_STATUS_CONFIG,
                            "%s: key '%s': %s: path longer than %d bytes (name the file by a "
                            "shorter path, or give the key an absolute one)",
                            file, key, joined, BEIT_CONFIG_STR - 1);
    strcpy(field, joined);
    return BEIT_STATUS_OK;
  }
  if (access(field, F_OK) == 0) /* written relative to the repository root, run from there */
    return BEIT_STATUS_OK;
  return beit_error_set(err, BEIT_STATUS_MISSING,
                        "%s: key '%s': '%s' not found: tried %s (relative to the file) and %s "
                        "(relative to the current directory)",
                        file, key, field, joined, field);
}

enum beit_status beit_config_resolve_paths(void *dst, const void *loaded,
                                           const struct beit_config_key *keys, size_t nkeys,
                                           const char *file, struct beit_error *err)
{
  for (size_t i = 0; i < nkeys; i++) {
    char *field = (char *)dst + keys[i].offset;
    const char *given = (const char *)loaded + keys[i].offset;
    enum beit_status st;
    if (keys[i].type == BEIT_KEY_PATH && !strcmp(field, given) &&
        (st = resolve_path(field, file, keys[i].name, err)))
      return st;
  }
  return BEIT_STATUS_OK;
}

/* Object at the dotted path's parent inside root, created as needed; *leaf gets the last part. */
static cJSON *parent_object(cJSON *root, const char *name, const char **leaf)
{
  cJSON *obj = root;
  const char *part = name, *dot;
  while ((dot = strchr(part, '.'))) {
    char seg[128];
    size_t n = (size_t)(dot - part) < sizeof seg - 1 ? (size_t)(dot - part) : sizeof seg - 1;
    memcpy(seg, part, n);
    seg[n] = '\0';
    cJSON *child = cJSON_GetObjectItemCaseSensitive(obj, seg);
    if (!child && !(child = cJSON_AddObjectToObject(obj, seg)))
      return NULL;
    obj = child;
    part = dot + 1;
  }
  *leaf = part;
  return obj;
}

cJSON *beit_config_to_json(const void *src, const struct beit_config_key *keys, size_t nkeys)
{
  cJSON *root = cJSON_CreateObject();
  if (!root)
    return NULL;
  for (size_t i = 0; i < nkeys; i++) {
    const struct beit_config_key *k = &keys[i];
    const char *field = (const char *)src + k->offset, *leaf;
    if (k->type == BEIT_KEY_IGNORE || k->type == BEIT_KEY_FOREIGN)
      continue;
    cJSON *obj = parent_object(root, k->name, &leaf), *v = NULL;
    if (!obj)
      goto fail;
    switch (k->type) {
    case BEIT_KEY_INT: v = cJSON_CreateNumber((double)*(const long *)field); break;
    case BEIT_KEY_DOUBLE: v = cJSON_CreateNumber(*(const double *)field); break;
    case BEIT_KEY_BOOL: v = cJSON_CreateBool(*(const int *)field); break;
    case BEIT_KEY_STRING:
    case BEIT_KEY_PATH: v = cJSON_CreateString(field); break;
    case BEIT_KEY_VEC3: v = cJSON_CreateDoubleArray((const double *)field, 3); break;
    case BEIT_KEY_IGNORE: break;
    case BEIT_KEY_FOREIGN: break;
    }
    if (!v || !cJSON_AddItemToObject(obj, leaf, v)) {
      cJSON_Delete(v);
      goto fail;
    }
  }
  return root;
fail:
  cJSON_Delete(root);
  return NULL;
}

enum beit_status beit_json_read_file(cJSON **out, const char *path, struct beit_error *err)
{
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f)
    return beit_error_set(err, BEIT_STATUS_IO, "%s: cannot open: %s", path, strerror(errno));
  enum beit_status st = BEIT_STATUS_OK;
  char *text = NULL;
  if (fseek(f, 0, SEEK_END) != 0) {
    st = beit_error_set(err, BEIT_STATUS_IO, "%s: cannot seek", path);
    goto close_file;
  }
  long size = ftell(f);
  rewind(f);
  if (size < 0 || !(text = malloc((size_t)size + 1))) {
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "%s: cannot read %ld bytes", path, size);
    goto close_file;
  }
  if (fread(text, 1, (size_t)size, f) != (size_t)size) {
    st = beit_error_set(err, BEIT_STATUS_IO, "%s: short read", path);
    goto free_text;
  }
  text[size] = '\0';
  const char *end = NULL;
  *out = cJSON_ParseWithOpts(text, &end, 1);
  if (!*out)
    st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: invalid JSON near byte %ld", path,
                        end ? (long)(end - text) : 0L);
free_text:
  free(text);
close_file:
  fclose(f);
  return st;
}

enum beit_status beit_write_file_atomic_parts(const char *path, const struct beit_file_part *parts,
                                              size_t nparts, struct beit_error *err)
{
  char tmp[4096];
  if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
    return beit_error_set(err, BEIT_STATUS_USAGE, "%s: path too long", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0)
    return beit_error_set(err, BEIT_STATUS_IO, "%s: cannot create: %s", tmp, strerror(errno));
  for (size_t i = 0; i < nparts; i++) {
    const char *p = parts[i].data;
    size_t left = parts[i].size;
    while (left > 0) {
      ssize_t w = write(fd, p, left);
      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0) {
        int e = w < 0 ? errno : ENOSPC; /* write() returning 0 on a regular file: out of space */
        close(fd);
        unlink(tmp);
        return beit_error_set(err, BEIT_STATUS_IO, "%s: write failed: %s", tmp, strerror(e));
      }
      p += w;
      left -= (size_t)w;
    }
  }
  if (fsync(fd) != 0) {
    int e = errno;
    close(fd);
    unlink(tmp);
    return beit_error_set(err, BEIT_STATUS_IO, "%s: cannot flush: %s", tmp, strerror(e));
  }
  if (close(fd) != 0) {
    int e = errno;
    unlink(tmp);
    return beit_error_set(err, BEIT_STATUS_IO, "%s: cannot flush: %s", tmp, strerror(e));
  }
  if (rename(tmp, path) != 0) {
    int e = errno;
    unlink(tmp);
    return beit_error_set(err, BEIT_STATUS_IO, "%s: cannot rename into place: %s", path,
                          strerror(e));
  }
  return BEIT_STATUS_OK;
}

enum beit_status beit_read_stream(FILE *f, unsigned char **data, size_t *size)
{
  unsigned char *buf = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (n == cap) {
      cap = cap ? 2 * cap : 65536;
      unsigned char *grown = realloc(buf, cap);
      if (!grown) {
        free(buf);
        return BEIT_STATUS_NOMEM;
      }
      buf = grown;
    }
    size_t r = fread(buf + n, 1, cap - n, f);
    n += r;
    if (r == 0)
      break;
  }
  if (ferror(f)) {
    free(buf);
    return BEIT_STATUS_IO;
  }
  *data = buf;
  *size = n;
  return BEIT_STATUS_OK;
}

enum beit_status beit_write_file_atomic(const char *path, const void *data, size_t n,
                                        struct beit_error *err)
{
  struct beit_file_part part = {data, n};
  return beit_write_file_atomic_parts(path, &part, 1, err);
}

enum beit_status beit_json_write_file(const char *path, const cJSON *json, struct beit_error *err)
{
  char *text = cJSON_Print(json);
  if (!text)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "%s: cannot serialise JSON", path);
  size_t n = strlen(text);
  text[n] = '\n'; /* replace the terminator: files end with a newline */
  enum beit_status st = beit_write_file_atomic(path, text, n + 1, err);
  free(text);
  return st;
}
