/* Internals of `beit pack`: the item list every source produces. */
#ifndef BEIT_DATA_PACK_INTERNAL_H
#define BEIT_DATA_PACK_INTERNAL_H

#include "data_internal.h"

struct beit_pack_item {
  char *path;          /* file to read, or NULL when data holds the bytes */
  unsigned char *data; /* in-memory encoded image (Fashion-MNIST PNGs) */
  size_t size;
  char *key;
  int32_t *labels;
  size_t num_labels;
};

struct beit_pack_list {
  struct beit_pack_item *items;
  size_t count, capacity;
  char **class_names;
  int num_classes;
  int saw_multi; /* a row with zero or several labels, or labels given as a list */
};

enum beit_status beit_pack_list_folder(struct beit_pack_list *l, const char *root,
                                       struct beit_error *err);
enum beit_status beit_pack_list_manifest(struct beit_pack_list *l, const char *manifest,
                                         struct beit_error *err);
enum beit_status beit_pack_list_fashion_mnist(struct beit_pack_list *l, const char *dir,
                                              const char *split, struct beit_error *err);
void beit_pack_list_free(struct beit_pack_list *l);

#endif
