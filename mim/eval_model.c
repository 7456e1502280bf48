/* beit eval's whole run (include/beit/mim.h beit_eval_model): a classifier folder loaded for
 * inference, its preprocessing with the command line's overrides, beit_eval_run over the
 * dataset, the report as a table and as JSON, the per-image predictions. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "beit/data.h"
#include "config_table.h"
#include "eval.h"

/* The model folder's preprocessing with the command line's overrides on top. */
static enum beit_status preprocessing(struct beit_data_preprocess *pp, const char *dir, int S,
                                      const struct beit_eval_model_options *ov, struct beit_error *err)
{
  enum beit_status st = beit_data_preprocess_model(pp, dir, S, err);
  if (st)
    return st;
  if (ov->resize >= 0 || ov->crop_pct > 0) {
    enum beit_data_eval_resize r = ov->resize >= 0 ? (enum beit_data_eval_resize)ov->resize
                                                   : BEIT_DATA_EVAL_CENTER_CROP;
    beit_data_preprocess_set_eval_resize(pp, S, r, ov->crop_pct > 0 ? ov->crop_pct : 0.875);
    strncat(pp->source, ov->resize >= 0 ? " + --resize" : " + --crop-pct",
            sizeof pp->source - strlen(pp->source) - 1);
  }
  if (ov->imagenet >= 0) {
    struct beit_data_transform t;
    beit_data_transform_defaults(&t, BEIT_DATA_MODE_EVAL);
    if (ov->imagenet)
      beit_data_transform_imagenet_norm(&t);
    memcpy(pp->mean, t.mean, sizeof pp->mean);
    memcpy(pp->std, t.std, sizeof pp->std);
    pp->rescale_factor = 1.0 / 255.0;
    strncat(pp->source, " + --norm", sizeof pp->source - strlen(pp->source) - 1);
  }
  return BEIT_STATUS_OK;
}

/* The JSON report: the metrics, then what was evaluated and how. */
static enum beit_status write_json(const struct beit_eval_model_options *o,
                                   const struct beit_metrics_report *rep,
                                   const char *const *names, const char *desc,
                                   struct beit_error *err)
{
  cJSON *j = beit_metrics_report_json(rep, names);
  if (j) {
    cJSON_AddStringToObject(j, "model", o->model_dir);
    cJSON_AddStringToObject(j, "data", o->eval.data);
    cJSON_AddStringToObject(j, "preprocessing", desc);
    /* not "precision": the report's per-class metric has that name */
    cJSON_AddStringToObject(j, "compute_precision", beit_precision_name(o->precision));
  }
  enum beit_status st = j ? beit_json_write_file(o->json, j, err)
                          : beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", o->json);
  cJSON_Delete(j);
  return st;
}

/* Run, report (rank 0: the table on o->out, the JSON file). */
static enum beit_status evaluate(const struct beit_eval_model_options *o, struct beit_model *m,
                                 struct beit_dist *dist, const struct beit_eval_options *eo,
                                 const char *desc, struct beit_error *err)
{
  struct beit_metrics mt;
  struct beit_metrics_report rep;
  enum beit_status st = beit_eval_run(m, dist, eo, &mt, err);
  if (st)
    return st;
  if ((st = beit_metrics_report(&mt, &rep, err))) {
    beit_metrics_free(&mt);
    return st;
  }
  if (beit_dist_is_root(dist)) {
    const char *const *names = (const char *const *)beit_model_config(m)->labels;
    fprintf(o->out, "model %s on %s: ", o->model_dir, eo->data);
    beit_eval_print(o->out, &rep, names, o->rows);
    if (o->json)
      st = write_json(o, &rep, names, desc, err);
  }
  beit_metrics_report_free(&rep);
  beit_metrics_free(&mt);
  return st;
}

enum beit_status beit_eval_model(const struct beit_eval_model_options *o, struct beit_dist *dist,
                                 struct beit_error *err)
{
  struct beit_eval_options eo = o->eval;
  struct beit_model *m = NULL;
  char desc[256];
  enum beit_status st;
  if ((st = beit_model_load(&m, o->model_dir, eo.batch, err)) ||
      (st = beit_model_set_inference(m, err)) ||
      (st = beit_model_set_precision(m, o->precision, err)) ||
      (st = preprocessing(&eo.preprocess, o->model_dir, (int)beit_model_config(m)->image_size, o,
                          err)))
    goto done;
  beit_data_preprocess_describe(&eo.preprocess, desc, sizeof desc);
  if (o->log && beit_dist_is_root(dist))
    fprintf(o->log, "preprocessing: %s\n", desc);
  if (o->predictions && !(eo.predictions = fopen(o->predictions, "w"))) {
    st = beit_error_set(err, BEIT_STATUS_IO, "%s: cannot create: %s", o->predictions,
                        strerror(errno));
    goto done;
  }
  st = evaluate(o, m, dist, &eo, desc, err);
done:
  if (eo.predictions && fclose(eo.predictions) != 0 && !st)
    st = beit_error_set(err, BEIT_STATUS_IO, "%s: write error", o->predictions);
  beit_model_free(m);
  return st;
}
