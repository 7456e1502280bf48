/* A run's metrics.jsonl as one series per numeric field (steps and values), for the curves.
 * Lenient by design: the file is a log that a crash, a full disk or a hand edit may have left
 * with a bad line, and a picture of the rest is still worth having; every skipped line is
 * named (file:line) on the warning stream. What the trainer writes: mim/trainer.c
 * beit_trainer_log (training windows) and the evaluation records of mim/finetune.c,
 * mim/pretrain.c and mim/tokenizer_train.c. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "plot.h"
#include "grow.h"

enum { WARNINGS_PER_FILE = 5 };

static struct beit_plot_series *find_field(struct beit_plot_run *run, const char *field)
{
  for (size_t i = 0; i < run->nfields; i++)
    if (!strcmp(run->fields[i].field, field))
      return &run->fields[i];
  return NULL;
}

const struct beit_plot_series *beit_plot_run_field(const struct beit_plot_run *run,
                                                   const char *field)
{
  for (size_t i = 0; i < run->nfields; i++)
    if (!strcmp(run->fields[i].field, field))
      return run->fields[i].n ? &run->fields[i] : NULL;
  return NULL;
}

/* The series of field, created empty when new; NULL when out of memory. */
static struct beit_plot_series *field_series(struct beit_plot_run *run, const char *field)
{
  struct beit_plot_series *s = find_field(run, field);
  if (s)
    return s;
  if (!(s = beit_grow(run->fields, &run->cap, run->nfields, sizeof *s, 32)))
    return NULL;
  run->fields = s;
  s = &run->fields[run->nfields++];
  memset(s, 0, sizeof *s);
  snprintf(s->field, sizeof s->field, "%s", field);
  return s;
}

/* Append (x, y); a step at or before the last one replaces the points from that step on: a run
 * resumed from an earlier checkpoint logs those steps again, and its later record is the one
 * that continues. 0 on success, -1 when out of memory. */
static int series_add(struct beit_plot_series *s, double x, double y)
{
  while (s->n > 0 && s->x[s->n - 1] >= x)
    s->n--;
  if (s->n == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 64;
    double *nx = realloc(s->x, cap * sizeof *nx);
    if (!nx)
      return -1;
    s->x = nx;
    double *ny = realloc(s->y, cap * sizeof *ny);
    if (!ny)
      return -1;
    s->y = ny;
    s->cap = cap;
  }
  s->x[s->n] = x;
  s->y[s->n] = y;
  s->n++;
  return 0;
}

void beit_plot_run_free(struct beit_plot_run *run)
{
  for (size_t i = 0; i < run->nfields; i++) {
    free(run->fields[i].x);
    free(run->fields[i].y);
  }
  free(run->fields);
  memset(run, 0, sizeof *run);
}

static int blank(const char *s, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
      return 0;
  return 1;
}

/* Why a line is not a record, or NULL when it is one (*rec then holds it). */
static const char *parse_record(const char *line, size_t n, int last_unterminated, cJSON **rec)
{
  const char *end = NULL;
  *rec = cJSON_ParseWithLengthOpts(line, n, &end, 0);
  if (*rec && !blank(end, n - (size_t)(end - line))) { /* "{...} more": not one record */
    cJSON_Delete(*rec);
    *rec = NULL;
  }
  if (!*rec)
    return last_unterminated ? "an incomplete last line (a run still writing, or cut short)"
                             : "not JSON";
  if (!cJSON_IsObject(*rec))
    return "not a JSON object";
  const cJSON *step = cJSON_GetObjectItemCaseSensitive(*rec, "step");
  if (!cJSON_IsNumber(step) || !isfinite(step->valuedouble))
    return "no numeric \"step\"";
  return NULL;
}

/* The numeric fields of one record into the run's series. */
static enum beit_status add_record(struct beit_plot_run *run, const cJSON *rec, const char *path,
                                   struct beit_error *err)
{
  double step = cJSON_GetObjectItemCaseSensitive(rec, "step")->valuedouble;
  for (const cJSON *f = rec->child; f; f = f->next) {
    if (!cJSON_IsNumber(f) || !f->string || !strcmp(f->string, "step") ||
        !isfinite(f->valuedouble) || strlen(f->string) >= BEIT_PLOT_FIELD_SIZE)
      continue;
    struct beit_plot_series *s = field_series(run, f->string);
    if (!s || series_add(s, step, f->valuedouble))
      return beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", path);
  }
  run->records++;
  return BEIT_STATUS_OK;
}

enum beit_status beit_plot_read_run(struct beit_plot_run *run, const char *dir, FILE *warn,
                                    struct beit_error *err)
{
  memset(run, 0, sizeof *run);
  size_t dn = strlen(dir);
  while (dn > 1 && dir[dn - 1] == '/')
    dn--;
  snprintf(run->name, sizeof run->name, "%.*s", (int)dn, dir);
  char path[4200];
  snprintf(path, sizeof path, "%s/metrics.jsonl", run->name);
  FILE *f = fopen(path, "r");
  if (!f)
    return beit_error_set(err, BEIT_STATUS_IO, "%s: cannot open: %s (a training run's output "
                          "folder holds one)", path, strerror(errno));
  enum beit_status st = BEIT_STATUS_OK;
  char *line = NULL;
  size_t cap = 0, lineno = 0;
  ssize_t n;
  while ((n = getline(&line, &cap, f)) > 0) {
    lineno++;
    if (blank(line, (size_t)n))
      continue;
    cJSON *rec;
    const char *why = parse_record(line, (size_t)n, line[n - 1] != '\n', &rec);
    if (why) {
      if (warn && run->skipped < WARNINGS_PER_FILE)
        fprintf(warn, "warning: %s:%zu: %s; line skipped\n", path, lineno, why);
      run->skipped++;
    } else {
      st = add_record(run, rec, path, err);
    }
    cJSON_Delete(rec);
    if (st)
      break;
  }
  if (!st && ferror(f))
    st = beit_error_set(err, BEIT_STATUS_IO, "%s: read error: %s", path, strerror(errno));
  free(line);
  fclose(f);
  if (!st && warn && run->skipped > WARNINGS_PER_FILE)
    fprintf(warn, "warning: %s: %zu more malformed lines skipped\n", path,
            run->skipped - WARNINGS_PER_FILE);
  if (!st && run->records == 0)
    st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: no records to plot (%zu lines, %zu of them "
                        "malformed)", path, lineno, run->skipped);
  if (st)
    beit_plot_run_free(run);
  return st;
}
