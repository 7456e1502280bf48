/* Stand-in for visualize_cairo.c when the build has no cairo. */
#include "serve.h"

enum beit_status beit_infer_visualize(const char *png_path, const struct beit_infer *inf,
                                      const struct beit_infer_vis_item *items, size_t n,
                                      size_t top_k, struct beit_error *err)
{
  return beit_error_set(err, BEIT_STATUS_UNSUPPORTED,
                        "%s: drawing needs cairo (libcairo2-dev); this build has none", png_path);
}
