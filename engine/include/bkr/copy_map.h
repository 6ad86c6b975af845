/** @file
 * The id map of a copy between repositories (engine/copy_map.c): which
 * blob id in the destination each source blob id became.  Between two
 * repositories with the same id scheme a blob keeps its id; between a plain
 * and an encrypted one, or two encrypted ones (different MAC keys), every
 * blob gets the destination's id of its plaintext and every tree is
 * rewritten with its children's new ids (engine/copy.c).  The map also
 * remembers, within one run, which blobs were dealt with already, so a blob
 * shared by many files or backups is read once.
 *
 * Open addressing over the source ids (uniformly random: their first 8
 * bytes are the hash).  Not thread-safe.
 */
#ifndef BKR_COPY_MAP_H
#define BKR_COPY_MAP_H

#include <stdbool.h>
#include <stddef.h>

#include "bkr/hash.h"

typedef struct {
	bkr_id *from;          /**< keys */
	bkr_id *to;            /**< values */
	unsigned char *used;
	size_t cap, n;
} bkr_copy_map;

#define BKR_COPY_MAP_INIT { NULL, NULL, NULL, 0, 0 }

/**
 * Map @p from to @p to: 1 when added, 0 when @p from was mapped already (to
 * the same id; a different one is BKR_EINVAL: ids are functions of the
 * plaintext, so that is a bug), BKR_ENOMEM.
 */
int bkr_copy_map_put(bkr_copy_map *m, const bkr_id *from, const bkr_id *to);

/** Whether @p from is mapped; *to (optional) gets its id in the destination. */
bool bkr_copy_map_get(const bkr_copy_map *m, const bkr_id *from, bkr_id *to);

/** How many ids are mapped. */
size_t bkr_copy_map_count(const bkr_copy_map *m);

/** Free the storage (the map is empty and usable again); a zeroed map is a no-op. */
void bkr_copy_map_free(bkr_copy_map *m);

#endif
