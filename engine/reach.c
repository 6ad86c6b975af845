/** @file
 * What a backup reaches (reach.h): a depth-first walk of a tree and its
 * pages, giving every tree, chunk and xattr blob id to a callback.
 */
#include "reach.h"

#include <stdlib.h>

#include "bkr/error.h"

/* The blobs of leaf record @p i of @p t: its chunks and xattr blobs, then its subtree. */
static int reach_entry(bkr_repo *r, const bkr_tree *t, uint32_t i, bkr_idset *seen,
		       int (*use)(void *ctx, const bkr_id *id), void *ctx)
{
	bkr_entry e;
	bkr_chunk_ref *ch = NULL;
	bkr_xattr *xa = NULL;
	size_t nch = 0, nxa = 0;
	int err;

	if ((err = bkr_tree_get(t, i, &e)) < 0)
		return err;
	if (e.type == BKR_FT_FILE && (err = bkr_tree_chunks(t, i, &ch, &nch)) == 0)
		for (size_t k = 0; k < nch && err == 0; k++)
			err = use(ctx, &ch[k].id);
	free(ch);
	if (err == 0 && (err = bkr_tree_xattrs(t, i, &xa, &nxa)) == 0)
		for (size_t k = 0; k < nxa && err == 0; k++)
			if (xa[k].in_blob)
				err = use(ctx, &xa[k].blob);
	free(xa);
	if (err == 0 && e.type == BKR_FT_DIR)
		err = bkr_reach_tree(r, &e.subtree, seen, use, ctx);
	return err;
}

int bkr_reach_tree(bkr_repo *r, const bkr_id *root, bkr_idset *seen,
		   int (*use)(void *ctx, const bkr_id *id), void *ctx)
{
	bkr_tree *t = NULL;
	int added, err;

	if ((added = bkr_idset_add(seen, root)) <= 0)
		return added < 0 ? bkr_error_oom() : 0; /* walked by an earlier call */
	if ((err = use(ctx, root)) < 0)
		return err;
	if ((err = bkr_repo_load_tree(r, root, &t)) < 0)
		return err;
	for (uint32_t i = 0; i < bkr_tree_count(t) && err == 0; i++) {
		if (bkr_tree_is_inner(t)) {
			const uint8_t *fn;
			size_t fl;
			bkr_id child;
			uint32_t cnt;
			if ((err = bkr_tree_child(t, i, &fn, &fl, &child, &cnt)) == 0)
				err = bkr_reach_tree(r, &child, seen, use, ctx);
			continue;
		}
		err = reach_entry(r, t, i, seen, use, ctx);
	}
	bkr_tree_free(t);
	return err;
}
