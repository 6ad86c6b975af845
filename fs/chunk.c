/** @file
 * The values kept in the mount's two caches (chunk.h): verified data
 * chunks, and the directory trees of backups, with the load and free
 * callbacks the caches call (cache.c loads without holding any lock).
 */
#include <stdlib.h>

#include "bkr/error.h"
#include "bkr/tree.h"
#include "bkrfs.h"
#include "chunk.h"

int bkrfs_chunk_load(void *ctx, const bkr_id *id, void **val, size_t *cost)
{
	struct bkrfs *fs = ctx;
	struct bkrfs_chunk *v;
	int err;

	if (!(v = calloc(1, sizeof(*v))))
		return bkr_error_oom();
	if ((err = bkr_repo_read_blob(fs->repo, id, BKR_BLOB_DATA, &v->buf, &v->len)) < 0) {
		free(v);
		return err;
	}
	*val = v;
	*cost = v->len + sizeof(*v);
	return 0;
}

void bkrfs_chunk_free(void *p)
{
	struct bkrfs_chunk *v = p;

	if (v) {
		free(v->buf);
		free(v);
	}
}

int bkrfs_tree_load(void *ctx, const bkr_id *id, void **val, size_t *cost)
{
	struct bkrfs *fs = ctx;
	bkr_dir *d;
	int err;

	if ((err = bkr_dir_open(&d, id, bkr_repo_load_tree, fs->repo)) < 0)
		return err;
	*val = d;
	*cost = 1;
	return 0;
}

void bkrfs_tree_free(void *p)
{
	bkr_dir_free(p);
}
