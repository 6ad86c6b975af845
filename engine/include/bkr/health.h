/** @file
 * The health of a configuration's repository (`bkr health`, every routine's
 * metrics file; docs/operations.md "Health"): per source the age of the
 * newest good backup against its schedule, the last verify, storage per
 * tier, repository size and growth, the routines' recent results, and the
 * files the newest recovery run left to a person.  Healthy means: no
 * scheduled source is stale (bkr/routine.h), the last verify found no
 * damage (nor did the last verify --read-data, when only verifies of the
 * structure, which read no data, came after it), the last run of every routine succeeded, and the newest recovery
 * run left nothing to a person; otherwise every reason is listed.
 *
 * Routine results and the last verify come from the routine records in the
 * log directory (bkr/routine.h, "routines.jsonl").
 */
#ifndef BKR_HEALTH_H
#define BKR_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bkr/config.h"
#include "bkr/hold.h"
#include "bkr/repo.h"
#include "bkr/routine.h"

/** How far back "recent" routine failures and growth look. */
#define BKR_HEALTH_WINDOW_S (7 * 24 * 3600LL)

typedef struct {
	const char *name;       /**< borrowed from the configuration */
	bkr_schedule schedule;
	int64_t newest_ns;      /**< newest good backup holding it; INT64_MIN: none */
	char *newest_id;        /**< its id, or NULL */
	int64_t age_s;          /**< its age in seconds, never negative (0 within the clock skew); 0: none */
	bool stale;             /**< scheduled, and no backup or older than twice the interval */
} bkr_health_source;

typedef struct {
	bool known;             /**< a run of it was recorded */
	int64_t last_ns;        /**< start of the last run */
	bool last_ok;
	char *last_problem;     /**< the last run's failed steps and messages, or NULL */
	size_t failures;        /**< failed runs in the window */
} bkr_health_routine;

/** What one verify found (a routine record's "verify", or a verify record). */
typedef struct {
	bool known;             /**< such a verify was recorded */
	int64_t time_ns;
	bool read_data, ok;
	uint64_t errors;
	uint64_t io_errors;     /**< objects it could not read (I/O errors: not damage) */
	size_t damaged_objects;
	char **damaged_backups; /**< backups verify found damaged (not "good") */
	size_t ndamaged_backups;
	char *backup_id;        /**< the one backup it checked (bkr verify BACKUP); NULL: the whole repository */
} bkr_health_verify;

enum { BKR_TIER_HOT = 0, BKR_TIER_WARM, BKR_TIER_COLD, BKR_TIER_COUNT };

typedef struct bkr_health {
	int64_t now_ns;
	bkr_health_source *sources;
	size_t nsources;
	size_t backups;                 /**< backups in the repository (not counting those in future[]) */
	struct bkr_health_future {
		char *id;
		int64_t time_ns;
	} *future;                      /**< backups dated in the future at now_ns (bkr_time_in_future), left out */
	size_t nfuture;
	bkr_health_verify verify;       /**< the last verify of any kind */
	/** The last verify --read-data of the whole repository (a routine's or a
	 *  verify record): what the last verify says when that one is it; when a
	 *  verify of the structure came after it, its damage and I/O errors still
	 *  stand, since that one reads no data blob. */
	bkr_health_verify verify_read_data;
	/** The newest verify --read-data of one backup (bkr verify --read-data
	 *  BACKUP) when it is newer than verify_read_data: it read that backup's
	 *  data only, so it is no verify_read_data; not known otherwise. */
	bkr_health_verify verify_read_data_backup;
	/** Backups not counted good: those the newest verify that checked each
	 *  (a routine's, or any verify record: one by hand, of one backup or
	 *  all) found an error in, until a later verify of it finds none (one
	 *  of the structure alone does not clear what one that read the data
	 *  found); backups of the repository only (one deleted since is none);
	 *  sorted. */
	char **damaged_backups;
	size_t ndamaged_backups;
	struct {
		bool known;             /**< a damage record (prune's) newer than verify_read_data */
		int64_t time_ns;
		uint64_t blobs;
	} damage;
	uint64_t tier_bytes[BKR_TIER_COUNT]; /**< pack bytes per tier */
	uint64_t tier_packs[BKR_TIER_COUNT];
	uint64_t repo_bytes;            /**< pack bytes in every tier */
	bool growth_known;
	double growth_bytes_per_day;    /**< since the oldest routine record in the window */
	bkr_health_routine routines[BKR_ROUTINE_EMERGENCY + 1];
	char *manual_run;               /**< newest recovery run, when it left files to a person */
	char **manual_files;            /**< workspace-relative paths that need a person */
	size_t nmanual;
	bkr_holds holds;                /**< damaged or missing workspace files not recovered (bkr/hold.h) */
	char **reasons;                 /**< why not healthy (one line each); none = healthy */
	size_t nreasons;
} bkr_health;

/**
 * Look at @p repo (opened with @p cfg's tiers) and @p cfg's log directory as
 * of @p now_ns: backups dated in the future (more than 5 minutes after it:
 * bkr_time_in_future(), as the schedules and retention judge them; listed in
 * future[]), recovery runs, records and verifies after it are left out
 * (storage is counted as it is).  Routine records that cannot be read (not
 * a regular file, a last line that is not a record) are a reason; a
 * repository that cannot be listed is an error.
 */
int bkr_health_check(bkr_health **out, const bkr_config *cfg, bkr_repo *repo, int64_t now_ns);

/**
 * Health when the repository cannot be opened (@p why): not healthy for that
 * reason, the routines from the records of @p cfg's log directory, every
 * source unknown (no backup, not stale) - what a routine writes into its
 * metrics file when the repository is gone, so the metrics do not keep
 * saying healthy.
 */
int bkr_health_check_unopened(bkr_health **out, const bkr_config *cfg, const char *why, int64_t now_ns);
/** NULL is a no-op. */
void bkr_health_free(bkr_health *h);

/** An age of @p seconds as "3d 2h" or "1h 05min". */
void bkr_health_age(char out[32], int64_t seconds);

/** The metrics in Prometheus' text format (HELP and TYPE lines); malloc'd, NULL on OOM. */
char *bkr_health_prometheus(const bkr_health *h);

/** Write them to @p path atomically (a temporary in the same directory, then rename). */
int bkr_health_write_prometheus(const bkr_health *h, const char *path);

#endif
