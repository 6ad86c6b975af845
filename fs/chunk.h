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
#include "bkr/tree.h"

/** A verified data chunk (the chunk cache's value; ctx of the callbacks:
 *  the struct bkrfs). */
struct bkrfs_chunk {
	uint8_t *buf;
	size_t len;
};

int bkrfs_chunk_load(void *ctx, const bkr_id *id, void **val, size_t *cost);
void bkrfs_chunk_free(void *val);
/** Loaders for bkr_dir_open (ctx: the bkr_repo), with and without read-ahead
 *  of the pack: bkr_repo_load_tree(_only), but a tree that is not found is
 *  BKR_ECORRUPT (EIO), never "not found" (ENOENT: no such entry). */
int bkrfs_dir_load_tree(void *repo, const bkr_id *id, bkr_tree **out);
int bkrfs_dir_load_tree_only(void *repo, const bkr_id *id, bkr_tree **out);
/** The directory cache's value: a bkr_dir opened from its top tree. */
int bkrfs_tree_load(void *ctx, const bkr_id *id, void **val, size_t *cost);
void bkrfs_tree_free(void *val);

#endif
