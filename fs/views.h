/** @file
 * The synthesized top level of a bkrfs mount, computed from names only:
 *
 *     /by-id/<backup_id>/<source>/...
 *     /by-date/<YYYY-MM-DD>/<HHMMSS>-<type>  -> ../../by-id/<backup_id>
 *     /latest                                -> by-id/<newest backup_id>
 *     /recovered/<run_id>/... + report.json, /recovered/latest -> <newest run>
 *
 * A bkrfs_view is an immutable snapshot built from the file names of
 * backups/ (the backup id carries its UTC time and type, so no manifest is
 * read to list by-id or by-date); the watcher builds a new one when the
 * names change and swaps it in.  Also here: bkrfs_snap, the refcounted
 * handle of one backup or run whose manifest is loaded on first use.
 * Pure logic, no FUSE; unit-tested.
 */
#ifndef BKRFS_VIEWS_H
#define BKRFS_VIEWS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "bkr/manifest.h"

/** The fields of a backup id "backup_YYYYMMDD_HHMMSS_<type>_<suffix>". */
typedef struct {
	int64_t time;        /**< UTC seconds since the epoch */
	char type[16];       /**< "full", "incremental", ... */
	char suffix[17];
} bkrfs_id_info;

/** Parse a backup id; BKR_EINVAL when it does not have that shape. */
int bkrfs_parse_backup_id(const char *id, bkrfs_id_info *out);

/**
 * Broken-down time of @p utc in time zone @p tz: NULL or "UTC" use UTC;
 * anything else uses localtime_r, so the caller must have put @p tz into
 * the TZ environment variable and called tzset() (bkrfs does at startup).
 */
void bkrfs_local_time(int64_t utc, const char *tz, struct tm *out);

/** true when @p tz names a zone this system knows (zoneinfo file or POSIX rule). */
bool bkrfs_tz_valid(const char *tz);

typedef struct {
	char *id;            /**< owned */
	bkrfs_id_info info;
	char day[16];        /**< "YYYY-MM-DD" in the view's time zone */
	char *date_name;     /**< owned; "HHMMSS-type" (+ "-suffix" on a clash) */
} bkrfs_view_backup;

typedef struct {
	char day[16];
	size_t first, count; /**< range in bkrfs_view.by_time */
} bkrfs_view_day;

/** Tie-breaker for backups of the same second: precise time in ns, or <0 unknown. */
typedef int64_t (*bkrfs_time_fn)(void *ctx, const char *id);

typedef struct {
	bkrfs_view_backup *b;   /**< sorted by id (bytewise) */
	size_t n;
	size_t *by_time;        /**< indexes into b, oldest first */
	size_t ntime;
	bkrfs_view_day *days;   /**< ascending */
	size_t ndays;
	const char *latest;     /**< id of the newest backup (borrowed from b) or NULL */
	size_t passed;          /**< how many of the newest (the last of by_time) latest passed
	                             over as dated in the future; 0 when every one is */
	char *latest_target;    /**< "by-id/<latest>" or NULL */
} bkrfs_view;

/**
 * Build a view from the backup ids in @p names (copied; duplicates dropped;
 * a name that is not a backup id is left out: it names no backup).
 * @p tz as in bkrfs_local_time.  @p precise (optional) breaks ties between
 * the newest backups of the same second.  "latest" is the newest backup
 * made by @p now_ns (one dated more than BKR_CLOCK_SKEW_NS after it was made
 * while the clock was ahead: passed over, as bkr's 'latest' passes it over),
 * unless every one is; INT64_MAX: none is in the future.
 */
int bkrfs_view_build(bkrfs_view **out, const char *const *names, size_t n, const char *tz, int64_t now_ns,
		     bkrfs_time_fn precise, void *ctx);
void bkrfs_view_free(bkrfs_view *v);

/** Binary search by id; NULL when absent. */
const bkrfs_view_backup *bkrfs_view_find(const bkrfs_view *v, const char *id);
/** Binary search of a day; NULL when absent. */
const bkrfs_view_day *bkrfs_view_find_day(const bkrfs_view *v, const char *day);
/** The backup named @p name inside @p day; NULL when absent. */
const bkrfs_view_backup *bkrfs_view_find_dated(const bkrfs_view *v, const bkrfs_view_day *day,
					       const char *name);
/** true when both views list the same backups (names). */
bool bkrfs_view_same(const bkrfs_view *a, const bkrfs_view *b);

/** "../../by-id/<id>" into @p out. */
int bkrfs_view_date_target(char *out, size_t cap, const char *id);

/* ---- one backup or recovery run ----------------------------------------- */

/** A backup or run, shared by its inodes and open files; refcounted. */
typedef struct bkrfs_snap {
	char *id;                 /**< owned */
	bool run;                 /**< a recovery run (runs/) */
	int64_t time;             /**< UTC seconds (from the id or the manifest) */
	pthread_mutex_t lock;     /**< guards m and report_* while loading */
	bkr_manifest *m;          /**< loaded on first use; then immutable */
	uint64_t report_size;     /**< runs: size of report.json once known */
	bool report_known;
	unsigned refs;            /**< atomic */
} bkrfs_snap;

bkrfs_snap *bkrfs_snap_new(const char *id, bool run, int64_t time);
bkrfs_snap *bkrfs_snap_ref(bkrfs_snap *s);
void bkrfs_snap_unref(bkrfs_snap *s);

#endif
