/* beit plot: pictures of training runs (include/beit/plot.h beit_plot_curves) and of
 * scripts/fashion_mnist_table.sh's table (beit_plot_table). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "beit/plot.h"
#include "cli.h"

static const char usage_text[] =
    "usage: beit plot RUN... [-o FILE] [--metrics NAME,...]\n"
    "       beit plot --table TABLE.md [-o FILE]\n"
    "\n"
    "Draws the training curves of one or more runs (pretrain, finetune or tokenizer train\n"
    "output folders) from each RUN/metrics.jsonl into one PNG: a column of panels sharing the\n"
    "step axis -- loss (log scale when it spans more than a decade, said on the panel),\n"
    "learning rate, accuracy (mlm_acc or acc; held-out eval_mlm_acc, eval_top1 or eval_map as\n"
    "dots), the tokenizer's reconstruction error (mae, eval_mae) and codebook perplexity,\n"
    "images/s -- each panel drawn when some run has its fields. Runs are overlaid in distinct\n"
    "colours with a legend naming each folder. Training runs draw RUN/curves.png themselves at\n"
    "every checkpoint and at the end.\n"
    "\n"
    "With --table, draws the table of scripts/fashion_mnist_table.sh (its OUT/table.md, or the\n"
    "README's copy) as grouped bars: a panel per precision, a group per label fraction, the\n"
    "pretrained and the random-init top-1 side by side.\n"
    "\n"
    "  -o, --out FILE     the PNG (default RUN/curves.png for one run; required for several;\n"
    "                     with --table, table.png beside TABLE.md)\n"
    "  --metrics LIST     the panels, in order, comma-separated: loss, lr, acc, mae,\n"
    "                     perplexity, images_per_s, or any numeric field of metrics.jsonl\n"
    "                     (grad_norm, data_wait_s, ...; its eval_<field> as dots when logged)\n"
    "  --table FILE       draw the pretrained-vs-random table FILE instead of curves\n"
    "\n"
    "Up to 10 runs share a figure, in distinct colours; a folder name too long for the legend\n"
    "is shortened from the left.\n"
    "\n"
    "Input: a line of metrics.jsonl that is not a JSON object with a numeric step (cut short by\n"
    "a crash, edited by hand) is skipped with a warning naming file and line; a step logged\n"
    "again (a run resumed from an earlier checkpoint) replaces the earlier points from that\n"
    "step on. A missing metrics.jsonl, a run without a usable record or a --metrics name no run\n"
    "has are errors (exit 1; 2 for the last). A build without cairo says plotting is\n"
    "unavailable (exit 1).\n";

/* "a,b,c" into at most max names (pointers into text, which is modified); their count, or -1
 * when there are more or one is empty. */
static int split_list(char *text, const char **names, int max)
{
  int n = 0;
  for (char *tok = text;; n++) {
    char *comma = strchr(tok, ',');
    if (comma)
      *comma = '\0';
    if (n == max || !tok[0])
      return -1;
    names[n] = tok;
    if (!comma)
      return n + 1;
    tok = comma + 1;
  }
}

int beit_cmd_plot(int argc, char **argv)
{
  static const struct option opts[] = {
      BEIT_CLI_ARG("out", 'o'), BEIT_CLI_ARG("metrics", 'm'), BEIT_CLI_ARG("table", 't'),
      BEIT_CLI_END};
  const char *out = NULL, *table = NULL, *panels[BEIT_PLOT_MAX_PANELS];
  char *metrics = NULL;
  int npanels = 0, c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
    switch (c) {
    case 'o': out = optarg; break;
    case 'm':
      metrics = optarg;
      if ((npanels = split_list(metrics, panels, BEIT_PLOT_MAX_PANELS)) < 0)
        return beit_cli_usage_error("plot", "--metrics: a comma-separated list of 1 to %d "
                                    "panel or field names", BEIT_PLOT_MAX_PANELS);
      break;
    case 't': table = optarg; break;
    case 'h': fputs(usage_text, stdout); return BEIT_EXIT_OK;
    default: return beit_cli_usage_error("plot", "unknown option");
    }
  }
  if (!beit_plot_available()) {
    fprintf(stderr, "beit plot: unavailable: this build has no cairo (install libcairo2-dev, "
            "then configure and build again)\n");
    return BEIT_EXIT_RUNTIME;
  }
  int nruns = argc - optind;
  char path[4200];
  struct beit_plot_result res;
  struct beit_error err = {0};
  if (table) {
    if (nruns > 0 || metrics)
      return beit_cli_usage_error("plot", "--table takes no RUN folders and no --metrics");
    if (!out) {
      const char *slash = strrchr(table, '/');
      snprintf(path, sizeof path, "%.*stable.png", slash ? (int)(slash - table + 1) : 0, table);
      out = path;
    }
    if (beit_plot_table(out, table, &res, &err))
      return beit_cli_fail("plot", &err);
    printf("wrote %s (%dx%d: %zu precision panel(s) [%s], %zu label fractions)\n", out,
           res.width, res.height, res.npanels, res.panels, res.nruns);
    return BEIT_EXIT_OK;
  }
  if (nruns < 1)
    return beit_cli_usage_error("plot", "name at least one RUN folder (or --table FILE)");
  if (nruns > BEIT_PLOT_MAX_RUNS)
    return beit_cli_usage_error("plot", "%d runs: at most %d share a figure", nruns,
                                BEIT_PLOT_MAX_RUNS);
  if (!out && nruns > 1)
    return beit_cli_usage_error("plot", "-o FILE is required for several runs");
  if (!out) {
    size_t n = strlen(argv[optind]);
    while (n > 1 && argv[optind][n - 1] == '/')
      n--;
    snprintf(path, sizeof path, "%.*s/curves.png", (int)n, argv[optind]);
    out = path;
  }
  struct beit_plot_curves_options o = {(const char *const *)argv + optind, (size_t)nruns,
                                       npanels ? panels : NULL, (size_t)npanels, stderr};
  if (beit_plot_curves(out, &o, &res, &err))
    return beit_cli_fail("plot", &err);
  printf("wrote %s (%dx%d: %zu run(s), panels %s)\n", out, res.width, res.height, res.nruns,
         res.panels);
  return BEIT_EXIT_OK;
}
