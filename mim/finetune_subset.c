/* The labelled fraction of a training set for fine-tuning (recipe key data.fraction): a seeded,
 * class-balanced selection of record ids, written once as a dataset folder through the public
 * data API (the records' bytes as files + a manifest with numeric labels, then beit_data_pack),
 * so the loader, its shuffling and resume work on it as on any dataset. See finetune.h. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "beit/data.h"
#include "checkpoint.h"
#include "config_table.h"
#include "finetune.h"
#include "rng.h"

#define SUBSET_STREAM 0x73756273ull /* "subs" */

/* ---- the labelled subset ------------------------------------------------------------------- */

static const char *image_ext(const uint8_t *b, size_t n)
{
  if (n >= 8 && !memcmp(b, "\x89PNG", 4))
    return "png";
  if (n >= 3 && b[0] == 0xff && b[1] == 0xd8)
    return "jpg";
  return "img";
}

/* Remove the subset's staging folder: dir/images/<files>, dir/manifest.csv. */
static void remove_staging(const char *dir)
{
  char path[4400];
  snprintf(path, sizeof path, "%s/images", dir);
  DIR *d = opendir(path);
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof path, "%s/images/%s", dir, e->d_name);
    unlink(path);
  }
  if (d)
    closedir(d);
  snprintf(path, sizeof path, "%s/images", dir);
  rmdir(path);
  snprintf(path, sizeof path, "%s/manifest.csv", dir);
  unlink(path);
  rmdir(dir);
}

static int subset_matches(const char *json_path, const char *src, double fraction, uint64_t seed)
{
  cJSON *j = NULL;
  if (beit_json_read_file(&j, json_path, NULL))
    return 0;
  const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "source");
  const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "fraction");
  const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "seed");
  int ok = cJSON_IsString(s) && !strcmp(s->valuestring, src) && cJSON_IsNumber(f) &&
           f->valuedouble == fraction && cJSON_IsNumber(d) && (uint64_t)d->valuedouble == seed;
  cJSON_Delete(j);
  return ok;
}

/* Selected record ids: per class (by first label) a seeded shuffle, the first
 * max(1, round(fraction * n_c)); for multi-label, then one record for any class still absent. */
static enum beit_status select_subset(struct beit_dataset *ds, double fraction, uint64_t seed,
                                      uint8_t *take, struct beit_error *err)
{
  size_t N = beit_data_count(ds), C = (size_t)beit_data_num_classes(ds);
  struct beit_data_record rec;
  memset(&rec, 0, sizeof rec);
  int32_t *first = malloc(N * sizeof *first);
  size_t *order = malloc(N * sizeof *order), *count = calloc(C + 1, sizeof *count);
  uint8_t *present = calloc(C, 1);
  enum beit_status st = BEIT_STATUS_OK;
  if (!first || !order || !count || !present) {
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "subset: out of memory");
    goto done;
  }
  for (size_t i = 0; i < N && !st; i++) {
    st = beit_data_read(ds, i, &rec, err);
    first[i] = rec.num_labels ? rec.labels[0] : (int32_t)C; /* no label: its own stratum */
  }
  for (size_t c = 0; c <= C && !st; c++) {
    size_t n = 0;
    for (size_t i = 0; i < N; i++)
      if ((size_t)first[i] == c)
        order[n++] = i;
    struct beit_rng rng;
    beit_rng_seed(&rng, seed ^ SUBSET_STREAM, 0, c);
    for (size_t i = n; i > 1; i--) { /* Fisher-Yates */
      size_t j = (size_t)beit_rng_int(&rng, 0, (int64_t)i - 1), t = order[i - 1];
      order[i - 1] = order[j];
      order[j] = t;
    }
    size_t k = (size_t)llround(fraction * (double)n);
    if (k == 0 && n > 0 && c < C)
      k = 1;
    for (size_t i = 0; i < k; i++)
      take[order[i]] = 1;
  }
  /* every class present (multi-label: the first label does not cover the others) */
  for (size_t i = 0; i < N && !st; i++)
    if (take[i] && !(st = beit_data_read(ds, i, &rec, err)))
      for (size_t l = 0; l < rec.num_labels; l++)
        present[rec.labels[l]] = 1;
  for (size_t i = 0; i < N && !st; i++) {
    if (take[i] || (st = beit_data_read(ds, i, &rec, err)))
      continue;
    for (size_t l = 0; l < rec.num_labels; l++)
      if (!present[rec.labels[l]]) {
        take[i] = 1;
        for (size_t k = 0; k < rec.num_labels; k++)
          present[rec.labels[k]] = 1;
        break;
      }
  }
done:
  beit_data_record_free(&rec);
  free(first);
  free(order);
  free(count);
  free(present);
  return st;
}

/* The selected records as files in staging/images and staging/manifest.csv with numeric labels
 * (pack sorts numeric labels numerically and every class is present, so class ids are
 * unchanged). *kept: how many. */
static enum beit_status write_staging(struct beit_dataset *ds, const uint8_t *take,
                                      const char *staging, size_t *kept, struct beit_error *err)
{
  char path[4400];
  snprintf(path, sizeof path, "%s/images", staging);
  enum beit_status st = beit_mkdirs(path, err);
  if (st)
    return st;
  snprintf(path, sizeof path, "%s/manifest.csv", staging);
  FILE *manifest = fopen(path, "w");
  if (!manifest)
    return beit_error_set(err, BEIT_STATUS_IO, "%s: cannot create", path);
  struct beit_data_record rec;
  memset(&rec, 0, sizeof rec);
  fprintf(manifest, "path,label\n");
  for (size_t i = 0, N = beit_data_count(ds); i < N && !st; i++) {
    if (!take[i] || (st = beit_data_read(ds, i, &rec, err)))
      continue;
    snprintf(path, sizeof path, "%s/images/%zu.%s", staging, i, image_ext(rec.bytes, rec.size));
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(rec.bytes, 1, rec.size, f) == rec.size;
    if ((f && fclose(f) != 0) || !ok) {
      st = beit_error_set(err, BEIT_STATUS_IO, "%s: cannot write", path);
      break;
    }
    fprintf(manifest, "images/%zu.%s,", i, image_ext(rec.bytes, rec.size));
    for (size_t l = 0; l < rec.num_labels; l++)
      fprintf(manifest, "%s%d", l ? ";" : "", rec.labels[l]);
    fprintf(manifest, "\n");
    (*kept)++;
  }
  beit_data_record_free(&rec);
  if (fclose(manifest) != 0 && !st)
    st = beit_error_set(err, BEIT_STATUS_IO, "%s/manifest.csv: write failed", staging);
  return st;
}

/* OUT.json: what the subset is, for subset_matches and for people. */
static enum beit_status write_description(const char *json_path, const char *src,
                                          double fraction, uint64_t seed, size_t kept, size_t N,
                                          struct beit_error *err)
{
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "source", src);
  cJSON_AddNumberToObject(j, "fraction", fraction);
  cJSON_AddNumberToObject(j, "seed", (double)seed);
  cJSON_AddNumberToObject(j, "records", (double)kept);
  cJSON_AddNumberToObject(j, "source_records", (double)N);
  cJSON_AddStringToObject(j, "selection", "per class (first label): seeded shuffle, first "
                          "max(1, round(fraction * n)); one more record per absent class");
  enum beit_status st = beit_json_write_file(json_path, j, err);
  cJSON_Delete(j);
  return st;
}

enum beit_status beit_finetune_subset(const char *src, double fraction, uint64_t seed,
                                      const char *out_dir, struct beit_error *err)
{
  char json_path[4300], index_path[4300], staging[4300], manifest[4400];
  snprintf(json_path, sizeof json_path, "%s.json", out_dir);
  snprintf(index_path, sizeof index_path, "%s/index.json", out_dir);
  if (access(index_path, F_OK) == 0 && subset_matches(json_path, src, fraction, seed))
    return BEIT_STATUS_OK;
  struct beit_dataset *ds = NULL;
  enum beit_status st = beit_data_open(&ds, src, err);
  if (st)
    return st;
  size_t N = beit_data_count(ds), C = (size_t)beit_data_num_classes(ds), kept = 0;
  uint8_t *take = calloc(N ? N : 1, 1);
  snprintf(staging, sizeof staging, "%s.src", out_dir);
  snprintf(manifest, sizeof manifest, "%s/manifest.csv", staging);
  if (!take)
    st = beit_error_set(err, BEIT_STATUS_NOMEM, "subset: out of memory");
  else if (!(st = select_subset(ds, fraction, seed, take, err)))
    st = write_staging(ds, take, staging, &kept, err);
  struct beit_data_pack_options po;
  struct beit_data_pack_report rep;
  beit_data_pack_defaults(&po);
  po.source = BEIT_DATA_SOURCE_MANIFEST;
  po.input = manifest;
  po.output = out_dir;
  po.multilabel = beit_data_task(ds) == BEIT_DATA_TASK_MULTILABEL;
  po.seed = seed;
  po.overwrite = 1;
  po.log = NULL;
  if (!st && !(st = beit_data_pack(&po, &rep, err)) && (size_t)rep.num_classes != C)
    st = beit_error_set(err, BEIT_STATUS_INTERNAL, "subset of %s: %d classes, the source has %zu",
                        src, rep.num_classes, C);
  if (!st && !(st = write_description(json_path, src, fraction, seed, kept, N, err)))
    remove_staging(staging);
  free(take);
  beit_data_close(ds);
  return st;
}
