/** @file
 * The history views of the mount:
 *
 *     /versions/<source>/<path>/       the merged tree of every backup's directories;
 *         <time>                       each version of a file or symlink at <path>,
 *                                      named by its backup's time (+ "-<suffix>"
 *                                      when two backups share a second)
 *     /by-source/<source>/<id>         -> ../../by-id/<id>/<source>, per backup holding it
 *     /by-source/<source>/latest       -> the newest of them
 *     /by-tag/<tag>/<id>               -> ../../by-id/<id>
 *
 * Built on the history catalog (every backup's manifest with the records
 * applied, loaded on first use and rebuilt by the watcher when backups or
 * records change) and, for /versions, the history engine (bkr/history.h)
 * walking only the trees of one path through the directory cache.  A
 * directory's listing is kept with its inode until the catalog changes.
 * Knows nothing of FUSE requests; returns 0 or a positive errno.
 */
#ifndef BKRFS_VERSIONS_H
#define BKRFS_VERSIONS_H

#include <stdbool.h>

#include "inode.h"

struct bkrfs;

/** Resolve @p name in directory @p dir (VERSIONS, BY_SOURCE, SOURCE, BY_TAG,
 *  TAG); *out referenced, its lookup count raised when @p lookup. */
int bkrfs_versions_lookup(struct bkrfs *fs, bkrfs_inode *dir, const char *name, bool lookup, bkrfs_inode **out);

/** The names of directory @p dir, each passed to @p add with its DT_* type. */
int bkrfs_versions_list(struct bkrfs *fs, bkrfs_inode *dir,
			int (*add)(void *ctx, const char *name, unsigned char type), void *ctx);

/** The inode release callback's part: drop @p i's listing. */
void bkrfs_versions_release(bkrfs_inode *i);

/**
 * Watcher: when the catalog exists and the names in backups/ or records/
 * differ from those it was built from, or a manifest was rewritten in place
 * (its stamp changed: a damaged one restored), build a new one and swap it
 * in; *changed tells.  @p backups: the watcher's listing of backups/ with
 * stamps (bkrfs_catalog_stamped), or NULL to list it here.  0 or a BKR_E*
 * code.
 */
int bkrfs_versions_refresh(struct bkrfs *fs, char **backups, size_t nbackups, bool *changed);

/** Free the catalog (unmount). */
void bkrfs_versions_fini(struct bkrfs *fs);

#endif
