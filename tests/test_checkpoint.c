/* Training checkpoints under faults (core/checkpoint.h): --resume's choice skips, with a warning
 * naming it, a checkpoint folder without its completion marker (trainer_state.json) or with a
 * truncated safetensors file, and never takes a .tmp-checkpoint-* folder; a save that fails
 * (EFBIG under RLIMIT_FSIZE) is an error naming the checkpoint and the file, leaves no folder
 * behind and the earlier checkpoints as they were, also when it would have replaced a checkpoint
 * of the same step. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "testing.h"

static char root[64];

struct parts {
  struct beit_tensor_table table;
  float *params, *m, *v;
  cJSON *config, *state;
  struct beit_checkpoint_parts p;
};

/* 64 x 64 parameters (a 16 KiB model.safetensors) filled with value. */
static void parts_init(struct parts *x, float value)
{
  beit_tensor_table_init(&x->table);
  size_t shape[2] = {64, 64};
  beit_tensor_table_add(&x->table, "w", 2, shape);
  x->params = beit_alloc_floats(x->table.total);
  x->m = beit_alloc_floats(x->table.total);
  x->v = beit_alloc_floats(x->table.total);
  for (size_t i = 0; i < x->table.total; i++)
    x->params[i] = x->m[i] = x->v[i] = value;
  x->config = cJSON_CreateObject();
  cJSON_AddStringToObject(x->config, "model_type", "beit");
  x->state = cJSON_CreateObject();
  cJSON_AddNumberToObject(x->state, "step", value);
  struct beit_checkpoint_parts p = {x->config, &x->table, x->params, x->m, x->v, x->state,
                                    NULL};
  x->p = p;
}

static void parts_free(struct parts *x)
{
  free(x->params);
  free(x->m);
  free(x->v);
  cJSON_Delete(x->config);
  cJSON_Delete(x->state);
  beit_tensor_table_free(&x->table);
}

static int exists(const char *dir, const char *name)
{
  char path[512];
  struct stat sb;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return stat(path, &sb) == 0;
}

/* beit_checkpoint_latest's pick (a path) and its warnings (text). */
static enum beit_status latest(char *pick, size_t n, char *text, size_t text_size)
{
  FILE *log = tmpfile();
  struct beit_error err = {0};
  enum beit_status st = beit_checkpoint_latest(root, log, pick, n, &err);
  test_read_log(log, text, text_size);
  return st;
}

/* params[0] of dir's model.safetensors, or -1. */
static float saved_value(const char *dir)
{
  struct parts x;
  parts_init(&x, -1.0f);
  struct beit_error err = {0};
  float v = beit_checkpoint_load_tensors(dir, &x.table, x.params, x.m, x.v, &err) ? -1.0f
                                                                                   : x.params[0];
  parts_free(&x);
  return v;
}

static void test_resume_choice(void)
{
  struct beit_error err = {0};
  char saved[512], pick[512], text[4096], want[600];
  for (long step = 2; step <= 8; step += 2) {
    struct parts x;
    parts_init(&x, (float)step);
    CHECK_MSG(beit_checkpoint_save(root, step, &x.p, 0, saved, sizeof saved, &err) == 0, "%s",
              err.message);
    parts_free(&x);
  }
  CHECK(!exists(root, ".tmp-checkpoint-8"));
  CHECK(latest(pick, sizeof pick, text, sizeof text) == 0);
  snprintf(want, sizeof want, "%s/checkpoint-8", root);
  CHECK_MSG(!strcmp(pick, want) && !text[0], "%s; %s", pick, text);

  /* checkpoint-8 cut short (an optimizer.safetensors of half its size), checkpoint-6 without
   * its completion marker, a whole .tmp-checkpoint-10: --resume takes checkpoint-4 */
  char path[600];
  snprintf(path, sizeof path, "%s/checkpoint-8/optimizer.safetensors", root);
  struct stat sb;
  CHECK(stat(path, &sb) == 0 && truncate(path, sb.st_size / 2) == 0);
  snprintf(path, sizeof path, "%s/checkpoint-6/trainer_state.json", root);
  CHECK(unlink(path) == 0);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "cp -r %s/checkpoint-4 %s/.tmp-checkpoint-10", root, root);
  CHECK(system(cmd) == 0);
  CHECK(latest(pick, sizeof pick, text, sizeof text) == 0);
  snprintf(want, sizeof want, "%s/checkpoint-4", root);
  CHECK_MSG(!strcmp(pick, want), "picked %s", pick);
  snprintf(want, sizeof want, "warning: %s/checkpoint-8 is incomplete or damaged and is skipped: "
           "%s/checkpoint-8/optimizer.safetensors:", root, root);
  CHECK_MSG(strstr(text, want), "no warning '%s' in:\n%s", want, text);
  snprintf(want, sizeof want, "warning: %s/checkpoint-6 is incomplete or damaged and is skipped: "
           "%s/checkpoint-6/trainer_state.json: cannot open", root, root);
  CHECK_MSG(strstr(text, want), "no warning '%s' in:\n%s", want, text);
  CHECK_MSG(!strstr(text, "checkpoint-10") && !strstr(text, "checkpoint-4 is"), "%s", text);
  CHECK(saved_value(pick) == 4.0f);
}

/* Saves under a 4 KiB file size limit: model.safetensors (16 KiB) cannot be written. */
static void test_write_fails(void)
{
  struct rlimit old, small;
  CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
  small = old;
  small.rlim_cur = 4096;
  signal(SIGXFSZ, SIG_IGN); /* as the beit command does: write() fails with EFBIG instead */
  struct parts x;
  parts_init(&x, 12.0f);
  struct beit_error err = {0};
  char want[600], pick[512], text[4096];
  for (long step = 12; step >= 4; step -= 8) { /* a new step, then over checkpoint-4 */
    CHECK(setrlimit(RLIMIT_FSIZE, &small) == 0);
    enum beit_status st = beit_checkpoint_save(root, step, &x.p, 2, NULL, 0, &err);
    CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
    CHECK(st == BEIT_STATUS_IO);
    snprintf(want, sizeof want, "cannot write %s/checkpoint-%ld: %s/.tmp-checkpoint-%ld/"
             "model.safetensors.tmp: write failed: %s", root, step, root, step, strerror(EFBIG));
    CHECK_MSG(strstr(err.message, want), "'%s' not in '%s'", want, err.message);
    snprintf(want, sizeof want, ".tmp-checkpoint-%ld", step);
    CHECK_MSG(!exists(root, want), "%s left behind", want);
  }
  CHECK(!exists(root, "checkpoint-12"));
  CHECK(latest(pick, sizeof pick, text, sizeof text) == 0);
  snprintf(want, sizeof want, "%s/checkpoint-4", root);
  CHECK_MSG(!strcmp(pick, want) && saved_value(pick) == 4.0f,
            "checkpoint-4 intact after the failed saves: %s", pick);
  CHECK(exists(root, "checkpoint-2") && saved_value(want) == 4.0f);
  /* with the limit lifted the same save goes through and rotation keeps the newest 2 complete */
  CHECK_MSG(beit_checkpoint_save(root, 12, &x.p, 2, NULL, 0, &err) == 0, "%s", err.message);
  CHECK(exists(root, "checkpoint-12") && exists(root, "checkpoint-4") &&
        !exists(root, "checkpoint-2"));
  parts_free(&x);
}

int main(void)
{
  if (test_mkdtemp(root, sizeof root, "checkpoint_XXXXXX"))
    return 1;
  test_resume_choice();
  test_write_fails();
  test_rmtree_if_passed(root);
  return test_summary("test_checkpoint");
}
