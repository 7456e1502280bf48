/* The distributed policy of the training commands (see dist_policy.h). */
#include "dist_policy.h"

#include <math.h>
#include <stdlib.h>

#define RANKS_LISTED 16 /* ranks named in the start line */

enum beit_status beit_dist_policy_parse_timeout(const char *text, double *seconds,
                                                struct beit_error *err)
{
  char *end = NULL;
  double v = text && *text ? strtod(text, &end) : NAN;
  if (!end || *end != '\0' || !isfinite(v) || v < 0 || v > BEIT_DIST_TIMEOUT_MAX)
    return beit_error_set(err, BEIT_STATUS_USAGE,
                          "--dist-timeout: '%s' is not a number of seconds in 0..%g (0 = no "
                          "deadline)", text ? text : "", BEIT_DIST_TIMEOUT_MAX);
  *seconds = v;
  return BEIT_STATUS_OK;
}

enum beit_status beit_dist_policy_timeout_set(const char *text, char *buf, size_t size,
                                              struct beit_error *err)
{
  double v = 0.0;
  enum beit_status st = beit_dist_policy_parse_timeout(text, &v, err);
  if (st)
    return st;
  /* %.17g: the recipe reads back the very double that was parsed */
  if ((size_t)snprintf(buf, size, "distributed.timeout_s=%.17g", v) >= size)
    return beit_error_set(err, BEIT_STATUS_USAGE, "--dist-timeout: no room for '%s'", text);
  return BEIT_STATUS_OK;
}

void beit_dist_policy_start(struct beit_dist *dist, double timeout_s, FILE *log)
{
  beit_dist_set_timeout(dist, timeout_s);
  int world = beit_dist_world_size(dist);
  if (!log || world < 2 || !beit_dist_is_root(dist))
    return;
  if (timeout_s > 0)
    fprintf(log, "distributed: %d ranks; a collective that waits %g s for a rank ends the job "
            "naming it (distributed.timeout_s, --dist-timeout)", world, timeout_s);
  else
    fprintf(log, "distributed: %d ranks; collectives wait without a deadline "
            "(distributed.timeout_s 0)", world);
  for (int r = 0; r < world && r < RANKS_LISTED; r++)
    fprintf(log, "%s rank %d host %s pid %ld", r ? "," : ";", r, beit_dist_host(dist, r),
            beit_dist_pid(dist, r));
  fprintf(log, "%s\n", world > RANKS_LISTED ? ", ..." : "");
}

void beit_dist_policy_loader(struct beit_loader_options *lo, enum beit_data_mode mode,
                             struct beit_dist *dist, size_t batch, int train, FILE *log)
{
  beit_loader_defaults(lo);
  beit_data_transform_defaults(&lo->transform, mode);
  lo->batch_size = batch;
  lo->rank = beit_dist_rank(dist);
  lo->world_size = beit_dist_world_size(dist);
  lo->shuffle = train;
  lo->drop_last = train;
  lo->loop = train;
  lo->log = beit_dist_is_root(dist) ? log : NULL;
}
