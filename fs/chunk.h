/** @file
 * The values of the mount's caches and their callbacks (cache.h): in the
 * chunk cache, a data chunk as bkr_repo_read_blob returned it (inflated and
 * re-hashed); in the directory cache, a bkr_dir by top tree id.  Knows
 * nothing of FUSE.
 */
#ifndef BKRFS_CHUNK_H
#define BKRFS_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#include "bkr/format.h"

/** A verified data chunk (the chunk cache's value; ctx of the callbacks:
 *  the struct bkrfs). */
struct bkrfs_chunk {
	uint8_t *buf;
	size_t len;
};

int bkrfs_chunk_load(void *ctx, const bkr_id *id, void **val, size_t *cost);
void bkrfs_chunk_free(void *val);
/** The directory cache's value: a bkr_dir opened from its top tree. */
int bkrfs_tree_load(void *ctx, const bkr_id *id, void **val, size_t *cost);
void bkrfs_tree_free(void *val);

#endif
