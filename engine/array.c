/** @file
 * Growable arrays (see array.h).
 */
#include "array.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bkr/error.h"

int bkr_array_grow(void **items, size_t *cap, size_t n, size_t size)
{
	void *p;
	size_t c;
	if (n < *cap)
		return 0;
	c = *cap ? *cap * 2 : 256;
	if (c < *cap || c > SIZE_MAX / size)
		return bkr_error_oom();
	if (!(p = realloc(*items, c * size)))
		return bkr_error_oom();
	*items = p;
	*cap = c;
	return 0;
}

int bkr_array_push_str(char ***items, size_t *cap, size_t *n, const char *s)
{
	int err;
	if ((err = bkr_array_grow((void **)items, cap, *n, sizeof(**items))) < 0)
		return err;
	if (!((*items)[*n] = strdup(s)))
		return bkr_error_oom();
	(*n)++;
	return 0;
}
