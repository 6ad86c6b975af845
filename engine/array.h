/** @file
 * Growable arrays: make room for one more element of a caller-owned
 * (items, count, capacity) triple, doubling from 256, or append a copy of a
 * string to such an array of strings.  Private to the engine.
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

/**
 * Append a copy of @p s (strdup) to the strings *@p items, *@p n of them, in
 * capacity *@p cap (grown as bkr_array_grow does).  0, or BKR_ENOMEM with the
 * array's strings and *@p n as they were.
 */
int bkr_array_push_str(char ***items, size_t *cap, size_t *n, const char *s);

#endif
