/* plot/ without drawing: tick positions and labels, metrics.jsonl read leniently (malformed
 * lines skipped and counted, a resumed run's steps replacing earlier ones, a missing file and a
 * run with no records refused naming the file), the figure's panels (defaults per kind of run,
 * log loss past a decade, --metrics fields and their eval_ dots, an unknown one named) and the
 * table.md parser (two precisions, "-" cells, a bad cell named by file and line). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "plot.h"
#include "testing.h"

static char root[64];

/* The folder root/name with a metrics.jsonl holding text (none when text is NULL). */
static const char *write_run(const char *name, const char *text)
{
  static char dir[256];
  char path[400];
  snprintf(dir, sizeof dir, "%s/%s", root, name);
  mkdir(dir, 0755);
  if (text) {
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
  }
  return dir;
}

static void check_axis(const struct beit_plot_axis *a, double lo, double hi)
{
  CHECK_MSG(a->lo <= lo && a->hi >= hi, "[%g, %g] covers [%g, %g]", a->lo, a->hi, lo, hi);
  CHECK_MSG(a->nticks >= 2 && a->nticks <= 7, "%zu ticks", a->nticks);
  for (size_t i = 1; i < a->nticks; i++)
    CHECK(a->ticks[i] > a->ticks[i - 1]);
}

static void test_axis(void)
{
  struct beit_plot_axis a;
  beit_plot_axis_linear(&a, 0.013, 0.92); /* step 0.25: 0, 0.25, ..., 1.00 */
  check_axis(&a, 0.013, 0.92);
  CHECK_MSG(a.nticks == 5 && !strcmp(a.labels[0], "0") && !strcmp(a.labels[1], "0.25") &&
                !strcmp(a.labels[4], "1.00"),
            "%zu ticks, %s %s %s", a.nticks, a.labels[0], a.labels[1], a.labels[a.nticks - 1]);
  beit_plot_axis_linear(&a, 0, 1e-3); /* a learning rate: 2.5e-4 steps */
  check_axis(&a, 0, 1e-3);
  CHECK_MSG(!strcmp(a.labels[1], "2.5e-4") && !strcmp(a.labels[4], "1e-3"), "%s %s",
            a.labels[1], a.labels[4]);
  beit_plot_axis_linear(&a, 0, 1500);
  CHECK_MSG(!strcmp(a.labels[1], "500") && a.hi == 1500, "%s, hi %g", a.labels[1], a.hi);
  beit_plot_axis_linear(&a, 4.2, 4.2); /* one value: a range around it */
  check_axis(&a, 4.2, 4.2);
  char buf[24];
  beit_plot_format_tick(buf, sizeof buf, 1.2e6, 2e5);
  CHECK_MSG(!strcmp(buf, "1.2e6"), "%s", buf);
  beit_plot_format_tick(buf, sizeof buf, 0.75, 0.25);
  CHECK_MSG(!strcmp(buf, "0.75"), "%s", buf);
  beit_plot_axis_log(&a, 0.05, 6); /* 2.1 decades: 1, 2, 5 times powers of ten */
  CHECK(a.log && a.lo <= 0.05 && a.hi >= 6);
  int has_01 = 0, has_1 = 0;
  for (size_t i = 0; i < a.nticks; i++) {
    CHECK(a.ticks[i] >= a.lo && a.ticks[i] <= a.hi);
    has_01 |= !strcmp(a.labels[i], "0.1");
    has_1 |= !strcmp(a.labels[i], "1");
  }
  CHECK_MSG(has_01 && has_1 && a.nticks >= 5, "%zu log ticks", a.nticks);
  CHECK(fabs(beit_plot_axis_pos(&a, a.lo)) < 1e-12 && fabs(beit_plot_axis_pos(&a, a.hi) - 1) <
        1e-12);
  CHECK(isnan(beit_plot_axis_pos(&a, 0)) && isnan(beit_plot_axis_pos(&a, -1)));
}

static void test_read(void)
{
  /* line 3 is cut JSON, 4 an array, 5 has no step, 6 is blank, 9 two records run together; the
   * run was resumed from step 2 (steps 3 and 4 logged again, the later values win); the last
   * line has no newline */
  const char *text = "{\"step\":1,\"loss\":5,\"lr\":0,\"version\":\"0.4.0\"}\n"
                     "{\"step\":2,\"loss\":4,\"lr\":1e-3}\n"
                     "{\"step\":3,\"loss\":\n"
                     "[1,2]\n"
                     "{\"loss\":3}\n"
                     "\n"
                     "{\"step\":3,\"loss\":3.5,\"lr\":9e-4}\n"
                     "{\"step\":4,\"loss\":3.4,\"lr\":8e-4}\n"
                     "{\"step\":5,\"loss\":1} {\"step\":6}\n"
                     "{\"step\":2,\"eval_loss\":4.5}\n"
                     "{\"step\":3,\"loss\":3.3,\"lr\":9e-4}\n"
                     "{\"step\":4,\"loss\":3.1,\"lr\":8e-4}";
  const char *dir = write_run("read", text);
  struct beit_plot_run run;
  struct beit_error err = {0};
  FILE *warn = tmpfile();
  CHECK(beit_plot_read_run(&run, dir, warn, &err) == BEIT_STATUS_OK);
  CHECK_MSG(run.records == 7 && run.skipped == 4, "%zu records, %zu skipped", run.records,
            run.skipped);
  const struct beit_plot_series *loss = beit_plot_run_field(&run, "loss");
  CHECK(loss && loss->n == 4);
  if (loss && loss->n == 4)
    CHECK_MSG(loss->x[2] == 3 && loss->y[2] == 3.3 && loss->x[3] == 4 && loss->y[3] == 3.1,
              "resumed steps: (%g, %g) (%g, %g)", loss->x[2], loss->y[2], loss->x[3],
              loss->y[3]);
  const struct beit_plot_series *ev = beit_plot_run_field(&run, "eval_loss");
  CHECK(ev && ev->n == 1 && ev->x[0] == 2);
  CHECK(!beit_plot_run_field(&run, "version")); /* strings are not series */
  char log[2048];
  test_read_log(warn, log, sizeof log);
  CHECK_MSG(strstr(log, "read/metrics.jsonl:3: not JSON; line skipped") &&
                strstr(log, "read/metrics.jsonl:4: not a JSON object") &&
                strstr(log, "read/metrics.jsonl:5: no numeric \"step\"") &&
                strstr(log, "read/metrics.jsonl:9: not JSON"),
            "warnings: %s", log);
  beit_plot_run_free(&run);

  /* the last line cut short (a run still writing) */
  dir = write_run("cut", "{\"step\":1,\"loss\":2}\n{\"step\":2,\"lo");
  warn = tmpfile();
  CHECK(beit_plot_read_run(&run, dir, warn, &err) == BEIT_STATUS_OK && run.records == 1);
  test_read_log(warn, log, sizeof log);
  CHECK_MSG(strstr(log, "cut/metrics.jsonl:2: an incomplete last line"), "%s", log);
  beit_plot_run_free(&run);

  dir = write_run("missing", NULL);
  CHECK(beit_plot_read_run(&run, dir, NULL, &err) == BEIT_STATUS_IO);
  CHECK_MSG(strstr(err.message, "missing/metrics.jsonl: cannot open"), "%s", err.message);
  dir = write_run("empty", "not json\n\n");
  CHECK(beit_plot_read_run(&run, dir, NULL, &err) == BEIT_STATUS_FORMAT);
  CHECK_MSG(strstr(err.message, "empty/metrics.jsonl: no records to plot (2 lines, 1 of them "
                                "malformed)"), "%s", err.message);
}

static const struct beit_plot_panel *panel(const struct beit_plot_figure *f, const char *name)
{
  for (size_t k = 0; k < f->npanels; k++)
    if (!strcmp(f->panels[k].name, name))
      return &f->panels[k];
  return NULL;
}

static void test_figure(void)
{
  /* a pretraining run whose loss falls past a decade, with held-out records; a fine-tuning run
   * (acc, eval_top1); a tokenizer run (mae, perplexity) */
  char dirs[3][256];
  snprintf(dirs[0], sizeof dirs[0], "%s", write_run("pre",
           "{\"step\":10,\"loss\":6,\"mlm_acc\":0.02,\"lr\":1e-4,\"images_per_s\":90,"
           "\"grad_norm\":3}\n{\"step\":20,\"loss\":0.4,\"mlm_acc\":0.3,\"lr\":1e-3,"
           "\"images_per_s\":95,\"grad_norm\":2}\n{\"step\":20,\"eval_loss\":0.5,"
           "\"eval_mlm_acc\":0.28}\n"));
  snprintf(dirs[1], sizeof dirs[1], "%s", write_run("ft",
           "{\"step\":10,\"loss\":2,\"acc\":0.4,\"lr\":2e-3,\"images_per_s\":180}\n"
           "{\"step\":30,\"loss\":1,\"acc\":0.7,\"lr\":1e-3,\"images_per_s\":185}\n"
           "{\"step\":30,\"eval_loss\":0.9,\"eval_top1\":0.72}\n"));
  snprintf(dirs[2], sizeof dirs[2], "%s", write_run("tok",
           "{\"step\":5,\"loss\":0.07,\"mae\":0.3,\"perplexity\":3,\"lr\":2e-3,"
           "\"images_per_s\":180}\n{\"step\":10,\"eval_mae\":0.1,\"eval_perplexity\":90}\n"));
  const char *runs[3] = {dirs[0], dirs[1], dirs[2]};
  struct beit_plot_figure f;
  struct beit_error err = {0};
  struct beit_plot_curves_options o = {runs, 2, NULL, 0, NULL};
  CHECK(beit_plot_figure_init(&f, &o, &err) == BEIT_STATUS_OK);
  CHECK_MSG(f.npanels == 4 && !strcmp(f.panels[0].name, "loss") &&
                !strcmp(f.panels[1].name, "lr") && !strcmp(f.panels[2].name, "acc") &&
                !strcmp(f.panels[3].name, "images_per_s"),
            "%zu panels", f.npanels);
  const struct beit_plot_panel *p = panel(&f, "loss");
  CHECK(p && p->y.log && strstr(p->title, "(log scale)") && p->eval[0] && p->eval[1]);
  p = panel(&f, "acc");
  CHECK_MSG(p && !p->y.log && p->train[0] && !strcmp(p->train[0]->field, "mlm_acc") &&
                !strcmp(p->train[1]->field, "acc") && !strcmp(p->eval[0]->field, "eval_mlm_acc") &&
                !strcmp(p->eval[1]->field, "eval_top1"),
            "%s", p ? p->title : "no acc panel");
  CHECK_MSG(p && !strcmp(p->title, "accuracy: mlm_acc/acc, eval_mlm_acc/eval_top1 (dots)"),
            "%s", p ? p->title : "");
  p = panel(&f, "lr");
  CHECK_MSG(p && !strcmp(p->title, "learning rate: lr") && !p->eval[0], "%s", p ? p->title : "");
  CHECK(f.x.lo == 0 && f.x.hi >= 30 && f.x.hi < 31 && f.has_eval);
  CHECK(!strcmp(f.title, "training curves of 2 runs"));
  beit_plot_figure_free(&f);

  o = (struct beit_plot_curves_options){runs + 2, 1, NULL, 0, NULL};
  CHECK(beit_plot_figure_init(&f, &o, &err) == BEIT_STATUS_OK);
  CHECK_MSG(f.npanels == 5 && panel(&f, "mae") && panel(&f, "perplexity") && !panel(&f, "acc") &&
                !panel(&f, "loss")->y.log,
            "tokenizer: %zu panels", f.npanels);
  beit_plot_figure_free(&f);

  const char *chosen[2] = {"grad_norm", "loss"};
  o = (struct beit_plot_curves_options){runs, 1, chosen, 2, NULL};
  CHECK(beit_plot_figure_init(&f, &o, &err) == BEIT_STATUS_OK);
  CHECK(f.npanels == 2 && !strcmp(f.panels[0].name, "grad_norm") && f.panels[0].train[0] &&
        !f.panels[0].eval[0]);
  beit_plot_figure_free(&f);
  const char *bogus[1] = {"top5"};
  o = (struct beit_plot_curves_options){runs, 2, bogus, 1, NULL};
  CHECK(beit_plot_figure_init(&f, &o, &err) == BEIT_STATUS_USAGE);
  CHECK_MSG(strstr(err.message, "panel 'top5': no run has data for it") &&
                strstr(err.message, " grad_norm,") && strstr(err.message, " eval_top1"),
            "%s", err.message);
  CHECK(f.nruns == 0 && !f.runs);

  CHECK(beit_plot_curves_height(1, 4) == 40 + 20 + 4 * 188 - 14 + 50);
  CHECK(beit_plot_panel_top(3, 1) == 40 + 40 + 24 + 188);
}

static const char *write_file(const char *name, const char *text)
{
  static char path[256];
  snprintf(path, sizeof path, "%s/%s", root, name);
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
  return path;
}

static void test_table(void)
{
  const char *path = write_file("table.md",
      "# results\n\n"
      "| block | 1 | 2 |\n|---|---|---|\n| pretrained encoder top-1 % | 42.0 | 48.0 |\n\n"
      "| labels used | steps x 64 images | pretrained bf16 top-1 % | random init bf16 top-1 % "
      "| pretrained fp32 top-1 % | random init fp32 top-1 % |\n"
      "|---|---|---|---|---|---|\n"
      "| 1% (600) | 200 | 71.17 | 49.51 | - | - |\n"
      "| 100% (60000) | 1500 | 82.57 | 70.87 | 83.22 | 70.07 |\n"
      "\n| precision | total |\n|---|---|\n| bf16 | 70 min |\n");
  struct beit_plot_bars b;
  struct beit_error err = {0};
  CHECK_MSG(beit_plot_read_table(&b, path, &err) == BEIT_STATUS_OK, "%s", err.message);
  CHECK_MSG(b.nprec == 2 && b.nrows == 2 && !strcmp(b.prec[0], "bf16") &&
                !strcmp(b.prec[1], "fp32"),
            "%zu precisions, %zu rows", b.nprec, b.nrows);
  CHECK(!strcmp(b.row[0], "1% (600)") && !strcmp(b.note[1], "1500 steps"));
  CHECK(b.value[0][0][0] == 71.17 && b.value[0][0][1] == 49.51 && b.value[1][1][1] == 70.07);
  CHECK(isnan(b.value[1][0][0]) && isnan(b.value[1][0][1]));
  int w, h;
  beit_plot_bars_size(&b, &w, &h);
  CHECK_MSG(w == 24 + 2 * (56 + 2 * 104 + 24) && h == 440, "%dx%d", w, h);

  path = write_file("bad.md", "| labels used | pretrained bf16 | random init bf16 |\n"
                              "|---|---|---|\n| 1% | 71.2 | n/a |\n");
  CHECK(beit_plot_read_table(&b, path, &err) == BEIT_STATUS_FORMAT);
  CHECK_MSG(strstr(err.message, "bad.md:3: column 'random init bf16': 'n/a' is neither a "
                                "number nor '-'"), "%s", err.message);
  path = write_file("none.md", "| a | b |\n|---|---|\n| 1 | 2 |\n");
  CHECK(beit_plot_read_table(&b, path, &err) == BEIT_STATUS_FORMAT);
  CHECK_MSG(strstr(err.message, "none.md: no markdown table with 'pretrained <precision>'"), "%s",
            err.message);
}

int main(void)
{
  if (test_mkdtemp(root, sizeof root, "plot_XXXXXX"))
    return 1;
  test_axis();
  test_read();
  test_figure();
  test_table();
  test_rmtree_if_passed(root);
  return test_summary("test_plot");
}
