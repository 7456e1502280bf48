/* scripts/fashion_mnist_table.sh's table.md as bars: the first markdown table whose header has
 * "pretrained <precision> ..." and "random init <precision> ..." columns (the README's copy of
 * it too), one group of bars per row, one panel per precision. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plot.h"

enum { MAX_CELLS = 16 };

void beit_plot_bars_size(const struct beit_plot_bars *b, int *width, int *height)
{
  int panel = BEIT_PLOT_BARS_AXIS_W + (int)b->nrows * BEIT_PLOT_BARS_GROUP_W + BEIT_PLOT_BARS_PAD;
  int w = BEIT_PLOT_BARS_PAD + (int)b->nprec * panel;
  *width = w < BEIT_PLOT_BARS_MIN_W ? BEIT_PLOT_BARS_MIN_W : w;
  *height = BEIT_PLOT_BARS_H;
}

static char *trim(char *s)
{
  while (isspace((unsigned char)*s))
    s++;
  size_t n = strlen(s);
  while (n > 0 && isspace((unsigned char)s[n - 1]))
    s[--n] = '\0';
  return s;
}

/* Split a table line "| a | b |" in place; the number of cells, 0 when it is not a table line. */
static size_t split_row(char *line, char **cells)
{
  char *s = trim(line);
  if (*s != '|')
    return 0;
  s++;
  size_t n = strlen(s);
  if (n > 0 && s[n - 1] == '|')
    s[n - 1] = '\0';
  size_t k = 0;
  for (char *c = s; k < MAX_CELLS;) {
    char *bar = strchr(c, '|');
    if (bar)
      *bar = '\0';
    cells[k++] = trim(c);
    if (!bar)
      break;
    c = bar + 1;
  }
  return k;
}

/* The role of a header cell: arm 0 "pretrained <p> ...", 1 "random init <p> ..." / "random <p>",
 * the precision word into prec (empty when the next word is "top-1" or "%"); -1 otherwise.
 * 2: the steps column. */
static int column_role(const char *cell, char *prec, size_t size)
{
  const char *rest;
  int arm;
  if (!strncmp(cell, "pretrained ", 11)) {
    rest = cell + 11, arm = 0;
  } else if (!strncmp(cell, "random init ", 12)) {
    rest = cell + 12, arm = 1;
  } else if (!strncmp(cell, "random ", 7)) {
    rest = cell + 7, arm = 1;
  } else if (!strcmp(cell, "pretrained") || !strcmp(cell, "random init")) {
    rest = "", arm = cell[0] == 'r';
  } else {
    return !strncmp(cell, "steps", 5) ? 2 : -1;
  }
  while (*rest == ' ')
    rest++;
  size_t n = strcspn(rest, " ");
  if (!strncmp(rest, "top", 3) || rest[0] == '%')
    n = 0;
  snprintf(prec, size, "%.*s", (int)n, rest);
  return arm;
}

struct columns {
  int arm[MAX_CELLS];  /* 0, 1, or -1 for a column that is neither */
  int prec[MAX_CELLS]; /* its precision's index in b->prec */
  int steps;           /* the steps column, or -1 */
};

/* Whether the header cells make a pretrained/random table; its columns into c and b->prec. */
static int read_header(char **cells, size_t n, struct columns *c, struct beit_plot_bars *b)
{
  c->steps = -1;
  b->nprec = 0;
  int arms = 0;
  for (size_t i = 0; i < n; i++) {
    char prec[24];
    int role = column_role(cells[i], prec, sizeof prec);
    c->arm[i] = role == 0 || role == 1 ? role : -1;
    if (role == 2 && c->steps < 0)
      c->steps = (int)i;
    if (c->arm[i] < 0)
      continue;
    size_t p = 0;
    while (p < b->nprec && strcmp(b->prec[p], prec))
      p++;
    if (p == b->nprec) {
      if (b->nprec == BEIT_PLOT_MAX_PRECISIONS) {
        c->arm[i] = -1;
        continue;
      }
      snprintf(b->prec[b->nprec++], sizeof b->prec[0], "%s", prec);
    }
    c->prec[i] = (int)p;
    arms |= 1 << c->arm[i];
  }
  return arms == 3;
}

static int rule_row(char **cells, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (strspn(cells[i], "-:") != strlen(cells[i]) || !cells[i][0])
      return 0;
  return n > 0;
}

/* One data row into group b->nrows. */
static enum beit_status read_row(struct beit_plot_bars *b, char **cells, size_t n,
                                 char **header, const struct columns *c, const char *path,
                                 size_t lineno, struct beit_error *err)
{
  size_t g = b->nrows;
  for (size_t p = 0; p < BEIT_PLOT_MAX_PRECISIONS; p++)
    b->value[p][g][0] = b->value[p][g][1] = NAN;
  snprintf(b->row[g], sizeof b->row[0], "%s", n > 0 ? cells[0] : "");
  b->note[g][0] = '\0';
  if (c->steps >= 0 && (size_t)c->steps < n && cells[c->steps][0])
    snprintf(b->note[g], sizeof b->note[0], "%s steps", cells[c->steps]);
  for (size_t i = 0; i < n; i++) {
    if (c->arm[i] < 0 || !strcmp(cells[i], "-") || !cells[i][0])
      continue;
    char *end;
    errno = 0;
    double v = strtod(cells[i], &end);
    if (*end == '%')
      end++;
    if (end == cells[i] || *end || errno || !isfinite(v))
      return beit_error_set(err, BEIT_STATUS_FORMAT, "%s:%zu: column '%s': '%s' is neither a "
                            "number nor '-'", path, lineno, header[i], cells[i]);
    b->value[c->prec[i]][g][c->arm[i]] = v;
  }
  b->nrows++;
  return BEIT_STATUS_OK;
}

enum beit_status beit_plot_read_table(struct beit_plot_bars *b, const char *path,
                                      struct beit_error *err)
{
  memset(b, 0, sizeof *b);
  FILE *f = fopen(path, "r");
  if (!f)
    return beit_error_set(err, BEIT_STATUS_IO, "%s: cannot open: %s", path, strerror(errno));
  enum beit_status st = BEIT_STATUS_OK;
  char *line = NULL, *head_line = NULL, *cells[MAX_CELLS], *header[MAX_CELLS];
  size_t cap = 0, lineno = 0, nhead = 0;
  struct columns c = {{0}, {0}, -1};
  enum { SEEK, RULE, ROWS } state = SEEK;
  while (getline(&line, &cap, f) > 0) {
    lineno++;
    size_t n = split_row(line, cells);
    if (state == SEEK) {
      if (n > 0 && read_header(cells, n, &c, b)) {
        free(head_line);
        head_line = malloc(cap); /* keep the header cells for messages */
        if (!head_line) {
          st = beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", path);
          break;
        }
        memcpy(head_line, line, cap);
        for (size_t i = 0; i < n; i++)
          header[i] = head_line + (cells[i] - line);
        nhead = n;
        state = RULE;
      }
    } else if (state == RULE) {
      state = n > 0 && rule_row(cells, n) ? ROWS : SEEK;
    } else if (n == 0 || b->nrows == BEIT_PLOT_MAX_ROWS) {
      break;
    } else if ((st = read_row(b, cells, n < nhead ? n : nhead, header, &c, path, lineno, err))) {
      break;
    }
  }
  free(line);
  free(head_line);
  fclose(f);
  if (!st && b->nrows == 0)
    st = beit_error_set(err, BEIT_STATUS_FORMAT, "%s: no markdown table with 'pretrained "
                        "<precision>' and 'random init <precision>' columns and rows under them "
                        "(what scripts/fashion_mnist_table.sh writes)", path);
  snprintf(b->title, sizeof b->title, "top-1 %% by labels used: pretrained vs random init");
  return st;
}

enum beit_status beit_plot_table(const char *png, const char *table_md,
                                 struct beit_plot_result *res, struct beit_error *err)
{
  if (!beit_plot_available())
    return beit_plot_draw_bars(png, NULL, err);
  struct beit_plot_bars *b = malloc(sizeof *b);
  if (!b)
    return beit_error_set(err, BEIT_STATUS_NOMEM, "%s: out of memory", png);
  enum beit_status st = beit_plot_read_table(b, table_md, err);
  if (!st)
    st = beit_plot_draw_bars(png, b, err);
  if (!st && res) {
    memset(res, 0, sizeof *res);
    beit_plot_bars_size(b, &res->width, &res->height);
    res->npanels = b->nprec;
    res->nruns = b->nrows;
    size_t k = 0;
    for (size_t p = 0; p < b->nprec && k < sizeof res->panels; p++)
      k += (size_t)snprintf(res->panels + k, sizeof res->panels - k, "%s%s", p ? "," : "",
                            b->prec[p][0] ? b->prec[p] : "-");
  }
  free(b);
  return st;
}
