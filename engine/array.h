/** @file
 * Growable arrays: make room for one more element of a caller-owned
 * (items, count, capacity) triple, doubling from 256.  Private to the engine
 * (verify, repair, index).
 */
#ifndef BKR_ARRAY_H
#define BKR_ARRAY_H

#include <stddef.h>

/**
 * Make room for element @p n (of @p size bytes) in *@p items of capacity
 * *@p cap: nothing when it fits, else realloc to twice the capacity (256 at
 * first).  0 or BKR_ENOMEM (*items unchanged), an overflowing size included.
 */
int bkr_array_grow(void **items, size_t *cap, size_t n, size_t size);

#endif
