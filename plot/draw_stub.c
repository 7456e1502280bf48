/* Stand-in for draw_cairo.c when the build has no cairo: every drawing reports UNSUPPORTED. */
#include "plot.h"

int beit_plot_available(void) { return 0; }

enum beit_status beit_plot_draw_curves(const char *png, const struct beit_plot_figure *f,
                                       struct beit_error *err)
{
  return beit_error_set(err, BEIT_STATUS_UNSUPPORTED, "%s: drawing needs cairo "
                        "(libcairo2-dev); this build has none", png);
}

enum beit_status beit_plot_draw_bars(const char *png, const struct beit_plot_bars *b,
                                     struct beit_error *err)
{
  return beit_plot_draw_curves(png, NULL, err);
}
