/* The precision policy of the commands (see precision_policy.h). */
#include "precision_policy.h"

void beit_precision_policy_print(FILE *out, const char *prefix, enum beit_precision resolved,
                                 const char *note)
{
  char backend[512];
  if (!out)
    return;
  beit_precision_describe(backend, sizeof backend);
  fprintf(out, "%sprecision %s (%s); %s\n", prefix, beit_precision_name(resolved), note, backend);
}

enum beit_status beit_precision_policy_resolve(enum beit_precision *out,
                                               enum beit_precision requested, FILE *log,
                                               const char *prefix, struct beit_error *err)
{
  enum beit_status st = beit_precision_resolve(out, requested, err);
  if (st)
    return st;
  char note[64];
  snprintf(note, sizeof note, "requested %s", beit_precision_name(requested));
  beit_precision_policy_print(log, prefix, *out, note);
  return BEIT_STATUS_OK;
}

enum beit_status beit_precision_policy_start(enum beit_precision *out, const char *text,
                                             struct beit_dist *dist, FILE *log, const char *extra,
                                             struct beit_error *err)
{
  enum beit_precision requested, mine;
  enum beit_status st;
  if ((st = beit_precision_parse(&requested, text, err)) ||
      (st = beit_precision_resolve(&mine, requested, err)))
    return st;
  double fp32 = mine == BEIT_PRECISION_FP32; /* 1 on any rank: FP32 everywhere */
  if ((st = beit_dist_allreduce_max_f64(dist, &fp32, 1, err)))
    return st;
  *out = fp32 > 0 ? BEIT_PRECISION_FP32 : mine;
  char note[512];
  snprintf(note, sizeof note, "requested %s%s%s%s", text,
           *out != mine ? "; fp32 on every rank: another rank resolved fp32" : "",
           extra ? "; " : "", extra ? extra : "");
  beit_precision_policy_print(beit_dist_is_root(dist) ? log : NULL, "", *out, note);
  return BEIT_STATUS_OK;
}
