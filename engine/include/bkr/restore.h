/** @file
 * Restoring a backup, or part of it, into a target directory, or in place
 * (each source back to where it was backed up from, only what differs),
 * or a dry run of either that lists what would be new or changed.
 *
 * Sources appear as TARGET/<source>/...  Every non-directory is created
 * under a temporary name in its directory (files mode 0600), its content
 * checked (each chunk's id and the whole file's SHA-256) and its attributes
 * set, then renamed over the old entry (fsynced first when it replaces one):
 * a failed or killed restore never leaves a partial file at a final name,
 * and a failure keeps the file that was there.  Files are written with their
 * holes (ftruncate + data extents only); hardlink groups become hardlinks; symlinks, fifos and
 * devices are recreated, sockets skipped with a warning; then xattrs, owner
 * (names mapped to local ids unless numeric_ids; only as root), mode (after
 * chown, so setuid bits survive) and times in ns (directories after their
 * contents).  Nothing is written outside the target: names are validated by
 * the tree parser and every path is opened relative to directory fds with
 * O_NOFOLLOW.  Attributes are set through a descriptor of the object itself
 * (an O_PATH one for symlinks, fifos and devices, after checking it is the
 * entry just created: type, device, owner, one link), never by a name
 * another user who can write to the target could swap.
 *
 * A damaged file fails alone: the restore reports it, goes on, and returns
 * an error at the end.
 */
#ifndef BKR_RESTORE_H
#define BKR_RESTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bkr/manifest.h"
#include "bkr/repo.h"

typedef struct {
	uint64_t files, dirs, symlinks, hardlinks, specials;
	uint64_t bytes;     /**< logical file bytes restored */
	uint64_t errors;    /**< entries that failed */
	uint64_t warnings;  /**< entries skipped or restored partially (sockets, chown...) */
	/** dry_run / in_place: entries compared with what is on disk (bkr_restore_change) */
	uint64_t new_entries, changed, unchanged;
} bkr_restore_stats;

/** How an entry of the backup compares with what is on disk where it goes. */
typedef enum {
	BKR_RESTORE_NEW,       /**< nothing there */
	BKR_RESTORE_CHANGED,   /**< something else there: type, content, target, mode, owner (as root), mtime or xattrs differ */
	BKR_RESTORE_UNCHANGED, /**< the same in every field restore sets (a file's content by its SHA-256) */
} bkr_restore_change;

/**
 * Regular files (and their bytes) gone through - restored, left unchanged,
 * or failed - of the totals of everything asked for (counted before the
 * first file is written, only when there is a progress callback).
 */
typedef struct {
	uint64_t files_done, bytes_done, bytes_total;
	const char *current;
	uint64_t files_total;
} bkr_restore_progress;

typedef struct {
	int version;
	const char *const *paths; /**< subset to restore: "source/dir/file" under the backup root; NULL = all */
	size_t npaths;
	const char *target;       /**< directory (created if missing); required, except in place (then NULL) */
	bool numeric_ids;         /**< use stored uid/gid, not names */
	bool overwrite;           /**< replace existing files (only once the new one checked out); otherwise an existing non-directory is an error for that entry */
	int threads;              /**< 0 = online CPUs */
	void (*progress)(void *ctx, const bkr_restore_progress *p);
	void *progress_ctx;
	/**
	 * Each problem as it happens: @p error true for a failed entry, false for a
	 * warning; @p path relative to the backup root.  Optional.
	 */
	void (*report)(void *ctx, bool error, const char *path, const char *message);
	void *report_ctx;
	/**
	 * bkr_restore_run only: each source back to the absolute path it was
	 * backed up from (the manifest's sources[].path; PATHs name sources by
	 * their first component), with the same temporary-and-rename safety.
	 * Entries are compared with what is there: unchanged ones are left
	 * alone, changed ones replaced (overwrite implied).
	 */
	bool in_place;
	/** Write nothing: compare every entry with what is on disk (change, stats) instead. */
	bool dry_run;
	/** dry_run / in_place: each entry's comparison, @p path where it is on disk.  Optional. */
	void (*change)(void *ctx, bkr_restore_change kind, const char *path);
	void *change_ctx;
} bkr_restore_options;

/**
 * New regular files are written without a name (O_TMPFILE) and linked to
 * their names once complete; other entries, files that replace one, and
 * files on a filesystem without O_TMPFILE are written under "<dir>/"
 * BKR_RESTORE_TMP_PREFIX "<16 hex>" and renamed into place once complete: a
 * killed restore may leave such names.
 */
#define BKR_RESTORE_TMP_PREFIX ".bkr-restore-"

#define BKR_RESTORE_OPTIONS_VERSION 1
#define BKR_RESTORE_OPTIONS_INIT { BKR_RESTORE_OPTIONS_VERSION }

/**
 * Restore backup @p m (its root tree) per @p o.  @p stats optional.
 * Before anything is written: BKR_ENOTFOUND when a PATH is not in the
 * backup (in place: not under one of its sources), BKR_EINVAL when the
 * target (in place: a source's path) is the repository or inside it.  A
 * directory met on the way that is the repository is skipped with a warning.
 * Returns 0, or an error after restoring everything it could (BKR_ECORRUPT
 * when any file failed its checks, else the first error's code); the error
 * message counts the failures and names the first.
 */
int bkr_restore_run(bkr_repo *r, const bkr_manifest *m, const bkr_restore_options *o,
		    bkr_restore_stats *stats);

/** The same from a root tree id (recovery uses it; not in place); @p backup_id names it in messages. */
int bkr_restore_tree(bkr_repo *r, const bkr_id *root, const char *backup_id,
		     const bkr_restore_options *o, bkr_restore_stats *stats);

#endif
