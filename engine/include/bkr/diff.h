/** @file
 * Differences between two backups, or between a backup and the live
 * filesystem.
 *
 * Two backups: identical subtree ids are skipped without being read.  Backup
 * vs live: a file whose size and mtime match is assumed unchanged; otherwise
 * its content is hashed.  "modified" says whether the content changed or only
 * metadata (mode, owner, mtime, xattrs, link target, rdev; ctime and inode
 * numbers are not compared).  Changes are reported in path order.
 */
#ifndef BKR_DIFF_H
#define BKR_DIFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bkr/backup.h"
#include "bkr/manifest.h"
#include "bkr/progress.h"
#include "bkr/repo.h"
#include "bkr/tree.h"

typedef enum {
	BKR_DIFF_ADDED = 1,
	BKR_DIFF_REMOVED = 2,
	BKR_DIFF_MODIFIED = 3,
} bkr_diff_kind;

/** What changed in a BKR_DIFF_MODIFIED (a bit set). */
enum {
	BKR_DIFF_CONTENT = 1,  /**< file data or symlink target */
	BKR_DIFF_TYPE = 2,     /**< the entry type changed (file -> dir ...) */
	BKR_DIFF_MODE = 4,
	BKR_DIFF_OWNER = 8,    /**< uid/gid */
	BKR_DIFF_MTIME = 16,
	BKR_DIFF_XATTRS = 32,
	BKR_DIFF_OTHER = 64,   /**< rdev, hardlink grouping */
};

/** One change; valid during the callback only. */
typedef struct {
	bkr_diff_kind kind;
	unsigned what;            /**< BKR_DIFF_* bits for modified; 0 otherwise */
	const char *path;         /**< relative to the backup root ("source/dir/file") */
	const bkr_entry *old_entry; /**< NULL when added */
	const bkr_entry *new_entry; /**< NULL when removed; live: from lstat (no arrays) */
} bkr_diff_change;

/** Return <0 to stop the diff (that code is returned). */
typedef int (*bkr_diff_fn)(void *ctx, const bkr_diff_change *c);

typedef struct {
	uint64_t added, removed, modified, content_modified, metadata_modified;
} bkr_diff_stats;

typedef struct {
	int version;
	const char *const *paths; /**< limit to these subtrees (relative to the root); NULL = all */
	size_t npaths;
	bool report_children;     /**< also report every entry under an added/removed directory */
	bkr_diff_fn callback;
	void *ctx;
	/** Optional, bkr_diff_live only: step "comparing", the backup's files
	 *  (every entry but a directory) compared with the live ones, of their
	 *  total (the sources' files_backed_up; 0 when o->paths limit it), every
	 *  64 files, after each live file read to hash it, and at the end. */
	bkr_progress_fn progress;
	void *progress_ctx;
} bkr_diff_options;

#define BKR_DIFF_OPTIONS_VERSION 1
#define BKR_DIFF_OPTIONS_INIT { BKR_DIFF_OPTIONS_VERSION }

/**
 * What differs between entries @p a and @p b of two backups (*@p what:
 * BKR_DIFF_* bits, 0 when equal): type, mode, owner, mtime (not of
 * directories), link target, rdev, hardlink grouping, a file's size and
 * content hash, and the xattrs when both leaves are given (@p la / @p lb
 * with @p lia / @p lib, as bkr_dir_get returns them; NULL skips the
 * comparison).  A directory's contents are not compared (its subtree is).
 * ctime and inode numbers never count.  Two files of one size whose
 * content digests are of different forms (one has holes, docs/format.md
 * "Content digests") are compared by reading the dense one's content from
 * @p r (without a repository they count as different).  <0 when what
 * must be read to tell cannot be (that content, damaged or unreadable;
 * malformed xattrs): never "the same" nor "different".
 */
int bkr_diff_entries(bkr_repo *r, const bkr_entry *a, const bkr_tree *la, uint32_t lia, const bkr_entry *b,
		     const bkr_tree *lb, uint32_t lib, unsigned *what);

/**
 * Compare root trees @p old_root and @p new_root.  @p stats optional.  A path
 * of o->paths in neither tree is BKR_ENOTFOUND naming it, before any change
 * is reported (in one tree only, it is added or removed).
 */
int bkr_diff_trees(bkr_repo *r, const bkr_id *old_root, const bkr_id *new_root,
		   const bkr_diff_options *o, bkr_diff_stats *stats);

/** Compare two backups (their root trees). */
int bkr_diff_backups(bkr_repo *r, const bkr_manifest *old_m, const bkr_manifest *new_m,
		     const bkr_diff_options *o, bkr_diff_stats *stats);

/**
 * Compare backup @p m (old) with the live filesystem (new): each source of
 * @p m is compared with the directory it was read from, or with the path
 * given in @p sources for the same name (NULL = the manifest's paths).
 * Excludes of @p sources apply to the live side.  o->paths ("SOURCE/PATH")
 * limit it to those subtrees or files (BKR_ENOTFOUND for a path not in @p m).
 */
int bkr_diff_live(bkr_repo *r, const bkr_manifest *m, const bkr_source_spec *sources,
		  size_t nsources, const bkr_diff_options *o, bkr_diff_stats *stats);

#endif
