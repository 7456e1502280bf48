/* beit export's whole run (include/beit/mim.h beit_export_model): the encoder exported by
 * encoder/export.c (beit_export_encoder) and, for an HF folder, the preprocessor_config.json
 * next to it (data/preprocess.c beit_data_preprocess_export). Here because it needs both
 * libraries: encoder/ does not link data/. */
#include <stdio.h>
#include <sys/stat.h>

#include "beit/data.h"
#include "beit/mim.h"
#include "beit/model.h"
#include "beit/transfer.h"

/* The exported HF folder's preprocessor_config.json from the source's (a folder) or the
 * no-file default. */
static enum beit_status export_preprocessing(const char *from, const char *out,
                                             struct beit_error *err)
{
  char path[4200];
  struct stat sb;
  struct beit_config src, dst;
  beit_config_defaults(&src);
  beit_config_defaults(&dst);
  int folder = stat(from, &sb) == 0 && S_ISDIR(sb.st_mode);
  snprintf(path, sizeof path, "%s/config.json", out);
  enum beit_status st = beit_config_load(&dst, path, err);
  if (!st && folder) {
    snprintf(path, sizeof path, "%s/preprocessor_config.json", from);
    if (stat(path, &sb) != 0) {
      folder = 0; /* nothing to copy */
    } else {
      snprintf(path, sizeof path, "%s/config.json", from);
      st = beit_config_load(&src, path, err);
    }
  }
  if (!st)
    st = beit_data_preprocess_export(folder ? from : NULL,
                                     folder ? (int)src.image_size : (int)dst.image_size, out,
                                     (int)dst.image_size, err);
  beit_config_free(&src);
  beit_config_free(&dst);
  return st;
}

enum beit_status beit_export_model(const char *from, const char *out,
                                   const struct beit_export_options *opt, struct beit_error *err)
{
  enum beit_status st = beit_export_encoder(from, out, opt, err);
  if (!st && !opt->timm)
    st = export_preprocessing(from, out, err);
  return st;
}
