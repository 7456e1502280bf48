/* beit probe's report (include/beit/mim.h beit_probe_report): the per-block table on a stream
 * and the same results as JSON in a file. What it is not: the probing (probe.c). */
#include <stdio.h>

#include "beit/mim.h"
#include "config_table.h"

/* {"blocks": [{block, train_top1, eval_top1, eval_loss}, ...], "model", "pool"} into path. */
static enum beit_status write_json(const char *path, const char *model,
                                   const struct beit_probe_setup *setup,
                                   const struct beit_probe_result *res, size_t n,
                                   struct beit_error *err)
{
  cJSON *j = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(j, "blocks");
  cJSON_AddStringToObject(j, "model", model);
  cJSON_AddStringToObject(j, "pool", setup->pool);
  for (size_t i = 0; i < n && arr; i++) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "block", (double)res[i].block);
    cJSON_AddNumberToObject(e, "train_top1", res[i].train_acc);
    cJSON_AddNumberToObject(e, "eval_top1", res[i].eval_acc);
    cJSON_AddNumberToObject(e, "eval_loss", res[i].eval_loss);
    cJSON_AddItemToArray(arr, e);
  }
  enum beit_status st = beit_json_write_file(path, j, err);
  cJSON_Delete(j);
  return st;
}

enum beit_status beit_probe_report(const char *model, const struct beit_probe_setup *setup,
                                   const struct beit_probe_result *res, size_t n, FILE *out,
                                   const char *json, struct beit_error *err)
{
  fprintf(out, "linear probe of %s (%s features, %g epochs, lr %g, wd %g)\n", model, setup->pool,
          setup->epochs, setup->lr, setup->weight_decay);
  fprintf(out, "  %5s %10s %10s %10s\n", "block", "train", "held-out", "loss");
  for (size_t i = 0; i < n; i++)
    fprintf(out, "  %5ld %10.4f %10.4f %10.4f\n", res[i].block, res[i].train_acc,
            res[i].eval_acc, res[i].eval_loss);
  return json ? write_json(json, model, setup, res, n, err) : BEIT_STATUS_OK;
}
