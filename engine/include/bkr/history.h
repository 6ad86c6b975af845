/** @file
 * The history of one path across backups: for each backup, oldest first,
 * the entry at that path (or its absence) and what changed since the
 * backup before (added, removed, content, metadata only, unchanged).  Used
 * by `bkr log` and by the mount's /versions view.
 *
 * Only the trees along the path are read, never a whole backup: at each
 * level the directory's tree id is compared with the previous backup's, and
 * an unchanged directory is not read again (consecutive backups share most
 * trees), so a history of N backups reads at most N x depth trees and
 * usually far fewer.  Trees are opened through a caller's cache (the
 * mount's directory cache) or, by default, straight from the repository
 * (each tree alone: bkr_repo_load_tree_only).  The directories above the
 * path's last component are resolved level by level over every backup, and
 * the trees of each level are advised (bkr_repo_advise_blob) a window
 * ahead of reading them, so a cold history waits on a deep queue of reads
 * instead of one read after another.  A path below a source starts from
 * the source's subtree id in the manifest (bkr_history_backup.sources), so
 * the root trees, one per backup and each in its own pack, are not read.
 * Memory: the trees of two backups' paths at a time, and one tree id per
 * backup.
 */
#ifndef BKR_HISTORY_H
#define BKR_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bkr/manifest.h"
#include "bkr/repo.h"
#include "bkr/tree.h"

/** One backup of the history (the caller's; sorted oldest first). */
typedef struct {
	const char *id;       /**< backup id (for messages) */
	bkr_id root;          /**< its root tree, or the tree of a directory to start from
	                           (the path is then relative to it); zero: the backup
	                           has no such tree (the path is absent) */
	bool inner;           /**< root is a directory's tree, not the backup's root tree
	                           (only how far ahead it is read differs) */
	/** Optional (a root tree only): the backup's sources (its manifest's).  A
	 *  source's subtree id stands for its entry in the root tree when the path
	 *  goes below it, so the root tree is not read; NULL or a source not
	 *  named: the root tree is read. */
	const bkr_manifest_source *sources;
	size_t nsources;
	/** The backup does not hold the path's source (!bkr_history_holds): it
	 *  has no item and the path's state carries over from the backup before
	 *  (a backup of another source alone is not a removal). */
	bool skip;
} bkr_history_backup;

/** Whether backup @p m holds the source @p path starts with ("source/dir/file",
 *  or a source's name; "" is the root, held by every backup).  The one rule
 *  for "a backup of that source": bkr log, /versions, /by-source. */
bool bkr_history_holds(const bkr_manifest *m, const char *path);

/** The history entry of the backup @p m describes: its id, root tree and
 *  sources (pointers into @p m, which must outlive it); skip is left false
 *  (the caller sets it from bkr_history_holds for its path). */
bkr_history_backup bkr_history_backup_of(const bkr_manifest *m);

/** What happened to the path in a backup, compared with the backup before. */
typedef enum {
	BKR_HISTORY_ABSENT = 0,  /**< not there, nor in the backup before */
	BKR_HISTORY_ADDED,       /**< there, and not in the backup before (or the first) */
	BKR_HISTORY_REMOVED,     /**< gone since the backup before */
	BKR_HISTORY_CONTENT,     /**< content, link target or type changed */
	BKR_HISTORY_METADATA,    /**< only metadata changed (mode, owner, mtime, xattrs) */
	BKR_HISTORY_UNCHANGED,
	BKR_HISTORY_ERROR,       /**< a tree on the path could not be read (item.error):
	                              the path counts as absent in this backup; or, with
	                              item.entry, it could not be compared with the
	                              backup before's (bkr_diff_entries failed) */
} bkr_history_change;

/** The name of @p c: "absent", "added", "removed", "content", "metadata", "unchanged", "error". */
const char *bkr_history_change_name(bkr_history_change c);

/** The path in one backup; valid during the callback only. */
typedef struct {
	size_t backup;             /**< index into the caller's array */
	bkr_history_change change;
	unsigned what;             /**< BKR_DIFF_* bits (bkr/diff.h) for CONTENT / METADATA */
	const bkr_entry *entry;    /**< NULL when absent */
	const bkr_tree *leaf;      /**< where entry lives (bkr_tree_xattrs...); NULL for the root */
	uint32_t li;
	bkr_id dir_tree;           /**< top tree id of the directory holding it (zero for the root) */
	uint64_t index;            /**< its index in that directory (bkr_dir_get) */
	int error;                 /**< BKR_HISTORY_ERROR: the code (message: bkr_error_message) */
} bkr_history_item;

/** Return <0 to stop the walk (that code is returned). */
typedef int (*bkr_history_fn)(void *ctx, const bkr_history_item *it);

/** How trees are opened: a bkr_dir for tree @p id and a holder released later. */
typedef struct {
	int (*open)(void *ctx, const bkr_id *id, bkr_dir **d, void **holder);
	void (*release)(void *ctx, void *holder);
	void *ctx;
	/** Optional: tree @p id, and the @p before bytes preceding it in its pack,
	 *  will be read soon (NULL: bkr_repo_advise_blob; a cache skips what it
	 *  holds).  Advice only. */
	void (*advise)(void *ctx, const bkr_id *id, uint32_t before);
} bkr_history_dirs;

/**
 * Walk the history of @p path (as in bkr_walk_resolve: "source/dir/file",
 * "" for the root) over backups @p b[0..n) (oldest first), calling @p fn for
 * every backup.  @p dirs NULL: trees are read from @p r with bkr_dir_open.
 * Errors: BKR_EINVAL for a path with "..", BKR_ENOMEM, or @p fn's code; a
 * tree that cannot be read is an item with BKR_HISTORY_ERROR.
 */
int bkr_history_walk(bkr_repo *r, const bkr_history_backup *b, size_t n, const char *path,
		     const bkr_history_dirs *dirs, bkr_history_fn fn, void *ctx);

#endif
