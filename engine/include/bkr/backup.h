/** @file
 * Taking a backup (docs/design.md "Backup"): walk the sources, chunk, hash and store file
 * data through a bkr_writer on every core, build the trees bottom-up,
 * commit packs and index, then publish the manifest.
 *
 * Types: full reads everything; incremental (and snapshot) take as parent the
 * newest backup of the same host and the same source set, differential the
 * newest full one; never one dated in the future (bkr_time_in_future: made
 * while the clock was ahead).  With a parent, a file whose size, mtime, ctime and inode
 * match the parent's entry (same source path) is taken from the parent
 * without being read, unless its mtime is within 1 s of, or after, the
 * parent's start time (git's "racy clean" rule).  Every backup is a complete
 * tree; unchanged directories produce the identical tree blob.
 *
 * Unreadable files and files vanishing mid-scan become manifest warnings, not
 * failures.  A file that changes while it is read is re-read up to three
 * times, then skipped with a warning.  Symlinks are never followed.
 */
#ifndef BKR_BACKUP_H
#define BKR_BACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bkr/manifest.h"
#include "bkr/repo.h"

/** One source to back up. */
typedef struct {
	const char *name;   /**< valid tree entry name; the top-level directory in the backup */
	const char *path;   /**< absolute path of a directory, or of a single file (then the
			      source is a directory holding that one entry) */
	const char *const *excludes; /**< fnmatch globs on paths relative to @p path */
	size_t nexcludes;
} bkr_source_spec;

/** Progress report; valid during the callback only. */
typedef struct {
	int phase;            /**< 1 scanning, 2 reading, 3 writing trees and index */
	uint64_t files_total; /**< known after the scan */
	uint64_t bytes_total;
	uint64_t files_done;
	uint64_t bytes_done;  /**< bytes read or reused from the parent */
	const char *current;  /**< a path being processed (may be NULL) */
	uint64_t files_read;  /**< files actually read (not taken from the parent) */
	uint64_t bytes_read;
} bkr_backup_progress;

typedef struct {
	int version;
	bkr_backup_type type;
	const bkr_source_spec *sources;
	size_t nsources;
	const char *const *tags;
	size_t ntags;
	const char *hostname;       /**< NULL = gethostname() */
	const char *workspace_root; /**< recorded in metadata; NULL = "" */
	const char *pinned_until;   /**< snapshots: NULL or "" = pinned forever, else an ISO date */
	const char *parent;         /**< explicit parent backup spec; NULL = automatic */
	int threads;                /**< 0 = online CPUs */
	/** Called at most a few times per second, from the calling thread. */
	void (*progress)(void *ctx, const bkr_backup_progress *p);
	void *progress_ctx;
	/** Each warning as it happens (also in the manifest); optional. */
	void (*warning)(void *ctx, const char *message);
	void *warning_ctx;
	/** Do not read other filesystems mounted below a source (their mount points stay, empty). */
	bool one_file_system;
	/** Patterns for every source, besides each source's own (bkr/pattern.h). */
	const char *const *excludes;
	size_t nexcludes;
	/**
	 * Directories never backed up when they lie inside a source (tiers, the
	 * log directory; the repository itself always is).  Pseudo-filesystems
	 * (proc, sysfs, cgroup, devtmpfs, bkrfs mounts...) are never read either.
	 */
	const char *const *skip_paths;
	size_t nskip_paths;
	/**
	 * While a prune, cleanup, delete or repair holds the exclusive lock: fail
	 * with BKR_ELOCKED (true), or wait for it (false), calling @p waiting
	 * (optional) once first.  The backup reads the index only once it holds
	 * its lock, so it never reuses a blob that operation removed.
	 */
	bool no_wait;
	void (*waiting)(void *ctx);
	void *waiting_ctx;
	/**
	 * Called for each backup that would have been the automatic parent but
	 * is dated in the future (bkr_time_in_future at the backup's start: the
	 * clock was ahead when it was made), so was passed over; optional.
	 */
	void (*future)(void *ctx, const char *backup_id, int64_t time_ns);
	void *future_ctx;
} bkr_backup_options;

#define BKR_BACKUP_OPTIONS_VERSION 1
#define BKR_BACKUP_OPTIONS_INIT { BKR_BACKUP_OPTIONS_VERSION, BKR_BACKUP_FULL }

/**
 * Find the parent a backup of type @p type would use: for incremental and
 * snapshot the newest backup with this @p hostname and the same source names
 * and paths; for differential the newest such full backup.  A backup dated in
 * the future at @p now_ns (bkr_time_in_future) is never chosen: the schedules
 * do not count it as its sources' newest backup either; @p future (optional)
 * is called with @p ctx for each one passed over.  BKR_ENOTFOUND when there
 * is none (the backup then reads everything).  *out is owned by the caller.
 */
int bkr_backup_find_parent(bkr_repo *r, bkr_backup_type type, const char *hostname,
			   const bkr_source_spec *sources, size_t nsources, int64_t now_ns,
			   void (*future)(void *ctx, const char *backup_id, int64_t time_ns), void *ctx,
			   bkr_manifest **out);

/**
 * True when backup @p m was made by host @p hostname: the rule that makes a
 * backup a candidate parent (bkr_backup_find_parent) and a backup the
 * recovery engine compares with and recovers from (docs/recovery.md).
 */
bool bkr_backup_of_host(const bkr_manifest *m, const char *hostname);

/**
 * Run a backup into @p r.  Holds a shared repository lock until the manifest
 * is published.  On success *out (optional) gets the published manifest
 * (caller frees).  Errors: BKR_EINVAL (bad options, source missing or not
 * readable as a whole), BKR_ELOCKED (with no_wait), repository write errors.
 */
int bkr_backup_run(bkr_repo *r, const bkr_backup_options *o, bkr_manifest **out);

#endif
