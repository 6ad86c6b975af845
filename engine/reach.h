/** @file
 * What a backup reaches (engine/reach.c): every blob below a root tree —
 * the trees and their pages, file chunks and xattr blobs — each tree walked
 * once across calls (prune marks what is used; tier migration finds the
 * youngest backup that uses each blob).  Private to the engine.
 */
#ifndef BKR_REACH_H
#define BKR_REACH_H

#include "bkr/repo.h"
#include "idset.h"

/**
 * Call @p use for tree @p root and every blob below it, skipping trees
 * already in @p seen (they were walked by an earlier call: what they reach
 * was given then).  A tree that cannot be read stops the walk with its
 * error (BKR_ECORRUPT, BKR_ENOTFOUND; the message names it).  A return <0
 * from @p use stops and is returned.
 */
int bkr_reach_tree(bkr_repo *r, const bkr_id *root, bkr_idset *seen,
		   int (*use)(void *ctx, const bkr_id *id), void *ctx);

#endif
