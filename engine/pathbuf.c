/** @file
 * The growable path buffer (see pathbuf.h).
 */
#include "pathbuf.h"

#include <stdlib.h>
#include <string.h>

#include "bkr/error.h"

int bkr_pathbuf_reserve(bkr_pathbuf *b, size_t need)
{
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p)
		return bkr_error_oom();
	b->p = p;
	b->cap = cap;
	return 0;
}

int bkr_pathbuf_set(bkr_pathbuf *b, size_t base, const void *name, size_t len, size_t *out)
{
	int err;
	if ((err = bkr_pathbuf_reserve(b, base + 1 + len + 1)) < 0)
		return err;
	size_t pos = base;
	if (base)
		b->p[pos++] = '/';
	memcpy(b->p + pos, name, len);
	b->p[pos + len] = '\0';
	*out = pos + len;
	return 0;
}

void bkr_pathbuf_free(bkr_pathbuf *b)
{
	free(b->p);
	b->p = NULL;
	b->cap = 0;
}
