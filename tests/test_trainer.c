/* The shared trainer's guarded update: a non-finite loss or gradient skips the update (params
 * and AdamW state untouched, counted), a finite step resets the run, and max_consecutive_nonfinite
 * in a row is BEIT_STATUS_NUMERIC with a message; the schedule is unilm's; metrics.jsonl drops a
 * line cut short by a crash and remembers a failed write. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "optim.h"
#include "testing.h"
#include "trainer.h"

int main(void)
{
  struct beit_recipe r;
  struct beit_error err = {0};
  struct beit_dist *dist = NULL;
  beit_recipe_defaults(&r);
  r.schedule.max_steps = 100;
  r.schedule.warmup_steps = 10;
  r.max_consecutive_nonfinite = 3;
  CHECK(beit_dist_init(&dist, NULL, NULL, &err) == BEIT_STATUS_OK);
  struct beit_tensor_table table;
  beit_tensor_table_init(&table);
  size_t shape[2] = {4, 5};
  beit_tensor_table_add(&table, "w", 2, shape);
  float *params = beit_alloc_floats(table.total), *grads = beit_alloc_floats(table.total);
  for (size_t i = 0; i < 20; i++)
    params[i] = 1.0f;
  struct beit_trainer tr;
  CHECK_MSG(beit_trainer_init(&tr, &r, dist, &table, params, grads, 10, "/tmp/beit-trainer-test",
                              &err) == BEIT_STATUS_OK, "%s", err.message);
  double lr, wd, norm;
  beit_trainer_schedule(&tr, 0, &lr, &wd);
  CHECK(lr == 0.0 && wd == 0.05);
  beit_trainer_schedule(&tr, 9, &lr, &wd);
  CHECK(fabs(lr - 1.5e-3) < 1e-12);
  CHECK(fabs(beit_cosine_schedule(1.5e-3, 1e-5, 10, 100, 55) -
             (1e-5 + 0.5 * (1.5e-3 - 1e-5) * (1 + cos(M_PI * 45.0 / 90.0)))) < 1e-12);
  int applied;
  /* step 0 has lr 0; take two finite steps so params move */
  for (int s = 0; s < 2; s++) {
    for (size_t i = 0; i < 20; i++)
      grads[i] = 0.5f;
    CHECK(beit_trainer_update(&tr, 1.0, 1.0, &norm, &applied, &err) == BEIT_STATUS_OK && applied);
  }
  CHECK(params[0] < 1.0f);
  float saved[20], saved_m[20];
  memcpy(saved, params, sizeof saved);
  memcpy(saved_m, tr.m, sizeof saved_m);
  /* two non-finite steps: skipped, nothing changes */
  for (int s = 0; s < 2; s++) {
    grads[3] = NAN;
    CHECK(beit_trainer_update(&tr, 1.0, 1.0, &norm, &applied, &err) == BEIT_STATUS_OK);
    CHECK(!applied && !isfinite(norm));
  }
  CHECK(beit_trainer_update(&tr, INFINITY, 1.0, &norm, &applied, &err) == BEIT_STATUS_NUMERIC);
  CHECK_MSG(strstr(err.message, "non-finite") != NULL, "%s", err.message);
  CHECK(memcmp(saved, params, sizeof saved) == 0 && memcmp(saved_m, tr.m, sizeof saved_m) == 0);
  CHECK(tr.skipped_updates == 3 && tr.step == 5);
  /* a finite step resets the run */
  tr.nonfinite_run = 0;
  grads[3] = 0.1f;
  CHECK(beit_trainer_update(&tr, 1.0, 2.0, &norm, &applied, &err) == BEIT_STATUS_OK && applied);
  CHECK(tr.nonfinite_run == 0);
  beit_trainer_free(&tr);

  /* metrics.jsonl: a last line cut short by an earlier crash is dropped when the file is opened
   * again; a record that cannot be written (ENOSPC from /dev/full) is remembered, not lost in a
   * stdio buffer, and nothing is written after it */
  FILE *f = fopen("/tmp/beit-trainer-test/metrics.jsonl", "w");
  fputs("{\"step\": 1, \"loss\": 2}\n{\"step\": 2, \"lo", f);
  fclose(f);
  CHECK_MSG(beit_trainer_init(&tr, &r, dist, &table, params, grads, 10, "/tmp/beit-trainer-test",
                              &err) == BEIT_STATUS_OK, "%s", err.message);
  beit_trainer_append(&tr, cJSON_Parse("{\"step\": 2, \"loss\": 1}"));
  CHECK(tr.metrics_errno == 0);
  beit_trainer_free(&tr);
  char text[4096] = "";
  f = fopen("/tmp/beit-trainer-test/metrics.jsonl", "r");
  text[fread(text, 1, sizeof text - 1, f)] = '\0';
  fclose(f);
  CHECK_MSG(!strncmp(text, "{\"step\": 1, \"loss\": 2}\n{\"step\":2,\"loss\":1,", 40) &&
            text[strlen(text) - 1] == '\n' && !strstr(text, "\"lo\n"), "%s", text);
  CHECK(beit_trainer_init(&tr, &r, dist, &table, params, grads, 10, "/tmp/beit-trainer-test",
                          &err) == BEIT_STATUS_OK);
  fclose(tr.metrics);
  tr.metrics = fopen("/dev/full", "a");
  beit_trainer_append(&tr, cJSON_Parse("{\"step\": 3}"));
  CHECK_MSG(tr.metrics_errno == ENOSPC, "metrics_errno %d", tr.metrics_errno);
  beit_trainer_free(&tr);
  beit_tensor_table_free(&table);
  beit_dist_finalize(dist);
  return test_summary("trainer");
}
