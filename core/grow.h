/* Growing arrays: the one doubling rule the libraries' appendable lists share. */
#ifndef BEIT_CORE_GROW_H
#define BEIT_CORE_GROW_H

#include <stdlib.h>

/* Room for one more element of elem bytes in items, which holds count of *cap: items itself
 * while count < *cap, else items moved to twice the capacity (first when *cap is 0), *cap
 * updated. NULL when out of memory: items is then still valid and *cap unchanged. */
static inline void *beit_grow(void *items, size_t *cap, size_t count, size_t elem, size_t first)
{
  if (count < *cap)
    return items;
  size_t n = *cap ? 2 * *cap : first;
  void *p = realloc(items, n * elem);
  if (p)
    *cap = n;
  return p;
}

#endif
