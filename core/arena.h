/* The activation arena's carver: buffers cut from one float allocation, each starting on a
 * 64-byte boundary. Run the same sequence of carve calls twice: first with base NULL to count
 * (carve returns NULL, used grows), then with base the allocation of `used` floats. */
#ifndef BEIT_CORE_ARENA_H
#define BEIT_CORE_ARENA_H

#include <stddef.h>

struct beit_arena {
  float *base; /* NULL on the counting pass */
  size_t used; /* floats carved so far */
};

/* n floats from the arena, rounded up to 16 floats. */
static inline float *beit_arena_carve(struct beit_arena *a, size_t n)
{
  float *p = a->base ? a->base + a->used : NULL;
  a->used += (n + 15) / 16 * 16;
  return p;
}

#endif
