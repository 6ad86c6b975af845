/** @file
 * A growable path buffer for tree walks: "dir" + "/" + "name" built in place
 * at a given base length, so walking a deep tree costs no allocation per
 * entry.  Private to the engine (backup, diff, walk).
 */
#ifndef BKR_PATHBUF_H
#define BKR_PATHBUF_H

#include <stddef.h>

typedef struct {
	char *p;     /**< NUL-terminated after every set; NULL until first use */
	size_t cap;
} bkr_pathbuf;

#define BKR_PATHBUF_INIT { NULL, 0 }

/** Make room for @p need bytes (including the NUL). BKR_ENOMEM. */
int bkr_pathbuf_reserve(bkr_pathbuf *b, size_t need);

/**
 * Keep the first @p base bytes, append "/" (unless @p base is 0) and @p name;
 * *out gets the new length.
 */
int bkr_pathbuf_set(bkr_pathbuf *b, size_t base, const void *name, size_t len, size_t *out);

void bkr_pathbuf_free(bkr_pathbuf *b);

#endif
