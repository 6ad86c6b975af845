/** @file
 * The values kept in the mount's two caches (chunk.h): verified data
 * chunks, and the directory trees of backups, with the load and free
 * callbacks the caches call (cache.c loads without holding any lock).
 */
#include <stdio.h>
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

/*
 * A tree that a directory names and the index or the store lacks (a page of
 * a big directory whose index file was left out as damaged, or whose pack is
 * gone) is damage: BKR_ECORRUPT, so EIO.  bkr_dir_find and bkr_dir_get
 * answer BKR_ENOTFOUND both for "no such entry" and for a page that did not
 * load, and a lookup then answered ENOENT for a name the backup holds, a
 * readdir ENOENT, which glibc's readdir takes for the end of the directory:
 * the listing ended early without a word.
 */
static int tree_missing(int err, const bkr_id *id)
{
	char hex[BKR_ID_HEX], why[512];

	if (err != BKR_ENOTFOUND)
		return err;
	bkr_id_to_hex(id, hex);
	snprintf(why, sizeof(why), "%s", bkr_error_message());
	return bkr_error_set(BKR_ECORRUPT, "tree %s: %s", hex, why);
}

int bkrfs_dir_load_tree(void *repo, const bkr_id *id, bkr_tree **out)
{
	return tree_missing(bkr_repo_load_tree(repo, id, out), id);
}

int bkrfs_dir_load_tree_only(void *repo, const bkr_id *id, bkr_tree **out)
{
	return tree_missing(bkr_repo_load_tree_only(repo, id, out), id);
}

int bkrfs_tree_load(void *ctx, const bkr_id *id, void **val, size_t *cost)
{
	struct bkrfs *fs = ctx;
	bkr_dir *d;
	int err;

	if ((err = bkr_dir_open(&d, id, bkrfs_dir_load_tree, fs->repo)) < 0)
		return err;
	*val = d;
	*cost = 1;
	return 0;
}

void bkrfs_tree_free(void *p)
{
	bkr_dir_free(p);
}
