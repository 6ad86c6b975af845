/** @file
 * Directories: the state a listing needs, made by opendir or by each
 * readdir when the kernel sends no opendir.  Knows nothing of FUSE
 * requests; returns 0 or a positive errno.
 */
#ifndef BKRFS_DIR_H
#define BKRFS_DIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bkr/tree.h"
#include "cache.h"
#include "inode.h"
#include "node.h"

struct bkrfs;

/** The state of one listing. */
struct bkrfs_dirh {
	bkrfs_inode *dir;           /**< referenced */
	bkrfs_cache_entry *ce;      /**< tree dirs: the cached bkr_dir */
	bkr_dir *d;
	bkr_id tree;
	uint64_t count;             /**< tree dirs: entries */
	bool report;                /**< run roots: report.json listed first */
	char report_alias[BKRFS_REPORT_ALIAS_MAX]; /**< then the name the tree's report.json
	                                               is listed as ("": not listed; node.h) */
	char **names;               /**< top-level dirs: names snapshotted at opendir */
	unsigned char *types;       /**< DT_* of names */
	size_t n;
};

/**
 * The state a listing of directory @p ino needs.  Without opendir
 * (FUSE_CAP_NO_OPENDIR_SUPPORT), a listing of a top-level directory is
 * taken afresh for every readdir call, so an entry deleted in between
 * shifts the rest by one; those directories are invalidated when they
 * change (watch.c) and rarely need more than one call.
 */
int bkrfs_dirh_open(struct bkrfs *fs, bkrfs_ino ino, struct bkrfs_dirh **out);
void bkrfs_dirh_free(struct bkrfs *fs, struct bkrfs_dirh *h);
/** A backup's directory (listed from its tree, immutable: the kernel may
 *  keep the listing), not a top-level one (listed from names that change). */
bool bkrfs_dirh_tree(const struct bkrfs_dirh *h);
/** The name and inode of entry @p k of a tree dir (*ino_out referenced,
 *  with a lookup, when @p plus); *e valid while @p h lives. */
int bkrfs_dirh_entry(struct bkrfs *fs, struct bkrfs_dirh *h, uint64_t k, bool plus, bkr_entry *e,
		     bkrfs_inode **ino_out, bkrfs_ino *ino, const char **name, size_t *name_len);

#endif
