/* `beit pack --check DIR` (include/beit/data.h beit_data_check): open a dataset folder, read
 * every record (each shard chunk through its Fletcher32 checksum) and decode it. What it is not:
 * a repair; a damaged shard is repacked or restored. */
#include <stdio.h>

#include "beit/data.h"

enum beit_status beit_data_check(const char *dir, FILE *log, struct beit_data_check_report *rep,
                                 struct beit_error *err)
{
  struct beit_dataset *ds;
  enum beit_status st = beit_data_open(&ds, dir, err);
  if (st)
    return st;
  *rep = (struct beit_data_check_report){.records = beit_data_count(ds),
                                         .num_classes = beit_data_num_classes(ds),
                                         .task = beit_data_task(ds)};
  struct beit_data_record rec = {0};
  for (size_t i = 0; i < rep->records; i++) {
    st = beit_data_read(ds, i, &rec, err);
    if (st == BEIT_STATUS_FORMAT) { /* a chunk failing its checksum: name it, go on */
      fprintf(log, "corrupt %s\n", err->message);
      rep->corrupt++;
      st = BEIT_STATUS_OK;
      continue;
    }
    if (st)
      break;
    struct beit_data_image img;
    if (beit_data_decode(&img, rec.bytes, rec.size, rec.key, err)) {
      fprintf(log, "bad %s\n", err->message);
      rep->bad++;
    }
    beit_data_image_free(&img);
  }
  beit_data_record_free(&rec);
  beit_data_close(ds);
  return st;
}
