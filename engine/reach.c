/** @file
 * What a backup reaches (reach.h): a depth-first walk of a tree and its
 * pages (bkr_tree_each), giving every tree, chunk and xattr blob id to a
 * callback.
 */
#include "reach.h"

#include <stdlib.h>

#include "bkr/error.h"

struct reach {
	bkr_repo *r;
	bkr_idset *seen;
	int (*use)(void *ctx, const bkr_id *id);
	void *ctx;
};

static int reach_tree(void *ctx, const bkr_id *root);

/* The blobs of leaf record @p i of @p t: its chunks and xattr blobs, then its subtree. */
static int reach_entry(void *ctx, const bkr_tree *t, uint32_t i)
{
	struct reach *w = ctx;
	bkr_entry e;
	bkr_chunk_ref *ch = NULL;
	bkr_xattr *xa = NULL;
	size_t nch = 0, nxa = 0;
	int err;

	if ((err = bkr_tree_get(t, i, &e)) < 0)
		return err;
	if (e.type == BKR_FT_FILE && (err = bkr_tree_chunks(t, i, &ch, &nch)) == 0)
		for (size_t k = 0; k < nch && err == 0; k++)
			err = w->use(w->ctx, &ch[k].id);
	free(ch);
	if (err == 0 && (err = bkr_tree_xattrs(t, i, &xa, &nxa)) == 0)
		for (size_t k = 0; k < nxa && err == 0; k++)
			if (xa[k].in_blob)
				err = w->use(w->ctx, &xa[k].blob);
	free(xa);
	if (err == 0 && e.type == BKR_FT_DIR)
		err = reach_tree(w, &e.subtree);
	return err;
}

/* Tree or page @p root and everything below it, unless walked already. */
static int reach_tree(void *ctx, const bkr_id *root)
{
	struct reach *w = ctx;
	bkr_tree *t = NULL;
	int added, err;

	if ((added = bkr_idset_add(w->seen, root)) <= 0)
		return added < 0 ? bkr_error_oom() : 0; /* walked by an earlier call */
	if ((err = w->use(w->ctx, root)) < 0)
		return err;
	if ((err = bkr_repo_load_tree(w->r, root, &t)) < 0)
		return err;
	err = bkr_tree_each(t, reach_tree, reach_entry, w);
	bkr_tree_free(t);
	return err;
}

int bkr_reach_tree(bkr_repo *r, const bkr_id *root, bkr_idset *seen,
		   int (*use)(void *ctx, const bkr_id *id), void *ctx)
{
	struct reach w = { r, seen, use, ctx };
	return reach_tree(&w, root);
}
