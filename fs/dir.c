/** @file
 * Directories (dir.h): the state a listing needs, the names of a top-level
 * directory taken from the catalog, or a backup's directory from its
 * cached tree.  Returns 0 or a positive errno.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bkr/error.h"
#include "bkr/tree.h"
#include "bkrfs.h"
#include "catalog.h"
#include "dir.h"
#include "node.h"
#include "versions.h"

void bkrfs_dirh_free(struct bkrfs *fs, struct bkrfs_dirh *h)
{
	if (!h)
		return;
	bkrfs_cache_release(fs->dirs, h->ce);
	for (size_t k = 0; k < h->n; k++)
		free(h->names[k]);
	free(h->names);
	free(h->types);
	bkrfs_itable_put(fs->itable, h->dir);
	free(h);
}

static int dirh_add(struct bkrfs_dirh *h, size_t *cap, const char *name, unsigned char type)
{
	if (h->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		char **nn = realloc(h->names, nc * sizeof(char *));
		unsigned char *nt;
		if (!nn)
			return ENOMEM;
		h->names = nn;
		if (!(nt = realloc(h->types, nc)))
			return ENOMEM;
		h->types = nt;
		*cap = nc;
	}
	if (!(h->names[h->n] = strdup(name)))
		return ENOMEM;
	h->types[h->n++] = type;
	return 0;
}

struct add_ctx {
	struct bkrfs_dirh *h;
	size_t *cap;
};

static int add_name(void *ctx, const char *name, unsigned char type)
{
	struct add_ctx *a = ctx;
	return dirh_add(a->h, a->cap, name, type);
}

/* snapshot the names of a top-level directory */
static int list_top(struct bkrfs *fs, struct bkrfs_dirh *h)
{
	size_t cap = 0;
	int err = 0;

	switch (h->dir->kind) {
	case BKRFS_NODE_ROOT:
		if ((err = dirh_add(h, &cap, "by-id", DT_DIR)) || (err = dirh_add(h, &cap, "by-date", DT_DIR)) ||
		    (err = dirh_add(h, &cap, "recovered", DT_DIR)) || (err = dirh_add(h, &cap, "versions", DT_DIR)) ||
		    (err = dirh_add(h, &cap, "by-source", DT_DIR)) || (err = dirh_add(h, &cap, "by-tag", DT_DIR)))
			return err;
		if ((err = bkrfs_catalog_view_rdlock(fs)))
			return err;
		if (fs->view->latest)
			err = dirh_add(h, &cap, "latest", DT_LNK);
		pthread_rwlock_unlock(&fs->view_lock);
		return err;
	case BKRFS_NODE_BY_ID:
		if ((err = bkrfs_catalog_view_rdlock(fs)))
			return err;
		for (size_t k = 0; !err && k < fs->view->ntime; k++)
			err = dirh_add(h, &cap, fs->view->b[fs->view->by_time[k]].id, DT_DIR);
		pthread_rwlock_unlock(&fs->view_lock);
		return err;
	case BKRFS_NODE_BY_DATE:
		if ((err = bkrfs_catalog_view_rdlock(fs)))
			return err;
		for (size_t k = 0; !err && k < fs->view->ndays; k++)
			err = dirh_add(h, &cap, fs->view->days[k].day, DT_DIR);
		pthread_rwlock_unlock(&fs->view_lock);
		return err;
	case BKRFS_NODE_DAY: {
		const bkrfs_view_day *d;
		if ((err = bkrfs_catalog_view_rdlock(fs)))
			return err;
		if ((d = bkrfs_view_find_day(fs->view, h->dir->path)))
			for (size_t k = d->first; !err && k < d->first + d->count; k++)
				err = dirh_add(h, &cap, fs->view->b[fs->view->by_time[k]].date_name, DT_LNK);
		pthread_rwlock_unlock(&fs->view_lock);
		return err;
	}
	case BKRFS_NODE_RECOVERED:
		if ((err = bkrfs_catalog_runs_rdlock(fs)))
			return err;
		for (size_t k = 0; !err && k < fs->runs->n; k++)
			err = dirh_add(h, &cap, fs->runs->runs[k]->id, DT_DIR);
		if (!err && fs->runs->n)
			err = dirh_add(h, &cap, "latest", DT_LNK);
		pthread_rwlock_unlock(&fs->view_lock);
		return err;
	case BKRFS_NODE_VERSIONS:
	case BKRFS_NODE_BY_SOURCE:
	case BKRFS_NODE_SOURCE:
	case BKRFS_NODE_BY_TAG:
	case BKRFS_NODE_TAG: {
		struct add_ctx a = { h, &cap };
		return bkrfs_versions_list(fs, h->dir, add_name, &a);
	}
	default:
		return ENOTDIR;
	}
}

bool bkrfs_dirh_tree(const struct bkrfs_dirh *h)
{
	return h->dir->kind == BKRFS_NODE_SNAP_ROOT || h->dir->kind == BKRFS_NODE_ENTRY;
}

int bkrfs_dirh_open(struct bkrfs *fs, bkrfs_ino ino, struct bkrfs_dirh **out)
{
	struct bkrfs_dirh *h = calloc(1, sizeof(*h));
	int err = 0;

	*out = NULL;
	if (!h)
		return ENOMEM;
	if (!(h->dir = bkrfs_itable_get(fs->itable, ino))) {
		free(h);
		return ESTALE;
	}
	if (bkrfs_dirh_tree(h)) {
		if (h->dir->kind == BKRFS_NODE_ENTRY && h->dir->ftype != BKR_FT_DIR) {
			err = ENOTDIR;
			goto done;
		}
		if ((err = bkrfs_node_run_report(fs, h->dir, &h->report)))
			goto done;
		err = bkrfs_node_open_dir(fs, h->dir, &h->ce, &h->d, &h->tree);
		if (err < 0) {
			err = bkrfs_node_tree_errno(fs, h->dir, err);
			goto done;
		}
		if (h->report && h->d && (err = bkrfs_node_report_alias(fs, h->dir, h->d, h->report_alias)) == ENOENT)
			err = 0; /* no report.json in the tree, or no free name: not listed */
		if (err)
			goto done;
		h->count = h->d ? bkr_dir_count(h->d) : 0; /* no tree: an empty directory */
	} else {
		err = list_top(fs, h);
	}
done:
	if (err) {
		bkrfs_dirh_free(fs, h);
		return err;
	}
	*out = h;
	return 0;
}

int bkrfs_dirh_entry(struct bkrfs *fs, struct bkrfs_dirh *h, uint64_t k, bool plus, bkr_entry *e,
		      bkrfs_inode **ino_out, bkrfs_ino *ino, const char **name, size_t *name_len)
{
	const bkr_tree *leaf;
	uint32_t li;
	int err;

	*ino_out = NULL;
	if ((err = bkr_dir_get(h->d, k, e, &leaf, &li)) < 0)
		return bkrfs_node_tree_errno(fs, h->dir, err);
	*name = (const char *)e->name;
	*name_len = e->name_len;
	if (plus) {
		if ((err = bkrfs_node_entry(fs, h->dir, &h->tree, k, e, true, ino_out)))
			return err;
		*ino = (*ino_out)->ino;
	} else if (!(*ino = bkrfs_node_child_ino(fs, h->dir, e, NULL))) {
		return ENOMEM;
	}
	return 0;
}
