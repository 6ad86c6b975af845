/** @file
 * Storage tiers (engine/tier.c; docs/format.md "Tiers"): colder stores
 * (warm, cold) that hold data packs no young backup uses.
 *
 * - The repository records where its tiers are: one checksummed JSON
 *   record "tiers/<20-digit ns>-<tier>.json" ({"kind":"tier","tier":"warm",
 *   "location":"/mnt/warm/bkr",...}) is published once the first pack is
 *   copied to a location, before any other copy of a pack goes, so every
 *   reader finds the data without a configuration file
 *   (bkr_repo_open loads the records; a reader that misses a pack reloads
 *   them).  Every location ever recorded is searched, newest first per tier.
 * - A tier location holds "tier.json" (the repository id and the tier's
 *   name): a location that lacks it although the repository recorded it is
 *   "not mounted", one that names another repository is refused.
 * - The rule (bkr_tier_level): a backup younger than warm's after_days, or
 *   pinned at the time of evaluation, keeps its data hot; older than cold's
 *   after_days it lets it go cold; in between warm.  A data pack goes to the
 *   hottest level any backup or recovery run that uses one of its blobs asks
 *   for (it moves back when a newer backup reuses it); a pack no backup uses
 *   stays where it is (prune's business); tree packs and the index never
 *   leave the repository.
 * - A move (bkr_tier_migrate, under the exclusive lock): copy to the
 *   destination (published durably under its final name), read the copy
 *   back and compare its SHA-256, then delete the source.  Killed at any
 *   instant a pack is in one place or two, never none; a rerun finishes.
 */
#ifndef BKR_TIER_H
#define BKR_TIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bkr/repo.h"
#include "bkr/store.h"

/** The levels: the repository itself, then the configured colder tiers. */
enum { BKR_TIER_HOT = 0, BKR_TIER_WARM = 1, BKR_TIER_COLD = 2, BKR_TIER_LEVELS = 3 };

/** Name of a level ("hot", "warm", "cold"). */
const char *bkr_tier_name(int level);

/** One configured colder tier (bkr_config_tier's meaning). */
typedef struct {
	const char *location; /**< NULL: not configured */
	int after_days;       /**< data moves here once every backup using it is this old */
} bkr_tier_conf;

/** The policy: tier[BKR_TIER_WARM] and tier[BKR_TIER_COLD] (tier[0] unused). */
typedef struct {
	bkr_tier_conf tier[BKR_TIER_LEVELS];
} bkr_tier_policy;

/**
 * The level backup @p m asks for at @p as_of_ns: hot when pinned then or
 * younger than the first configured tier's after_days; else the coldest
 * configured tier whose after_days it has reached.  A backup dated in the
 * future of the real clock (bkr_time_in_future against bkr_time_now_ns: made
 * while the clock was ahead) has no age to judge: unless pinned it asks for
 * the coldest configured tier (docs/operations.md, "Backups dated in the
 * future"); one merely after a past @p as_of_ns did not exist then: hot.
 */
int bkr_tier_level(const bkr_tier_policy *p, const bkr_manifest *m, int64_t as_of_ns);

/* ---- records -------------------------------------------------------------- */

/** One tier record. */
typedef struct {
	char *tier;      /**< "warm", "cold" */
	char *location;  /**< a directory (or URL) */
	int64_t time_ns; /**< when it was recorded */
} bkr_tier_record;

/**
 * The records in @p s ("tiers/"), in search order: warm before cold (other
 * names after, by name), newest first within a tier; one per location.
 * Damaged records are left out.  Free with bkr_tier_records_free.
 */
int bkr_tier_records_load(bkr_store *s, bkr_tier_record **out, size_t *n);
void bkr_tier_records_free(bkr_tier_record *v, size_t n);

/**
 * Check the records in @p s against each other: each tier needs its own
 * directory, so two tiers recorded at one place (by the same name or two
 * names for one directory) or one recorded location inside another is
 * BKR_EINVAL, one line naming both tiers and locations.  (Migration refuses
 * to record such a location, naming its key; records of older versions, or
 * of configurations that changed over time, may still hold one.)  A record
 * that does not read is BKR_ECORRUPT naming it, as for bkr_tier_check.
 */
int bkr_tier_records_check(bkr_store *s);

/** Publish a record naming @p location for @p tier at @p now_ns. */
int bkr_tier_record_add(bkr_store *s, const char *tier, const char *location, int64_t now_ns);

/**
 * Whether place @p i of @p r (bkr_repo_tier) is there: 0, or BKR_ENOTFOUND
 * "tier T: LOCATION is missing or not mounted" (a recorded tier must hold
 * its tier.json), or BKR_EINVAL when it belongs to another repository, or
 * BKR_ECORRUPT naming the file and key when its tier.json's "tier" is no
 * tier or the other one than the repository records for it (unless a record
 * names it for that one too: records that clash, bkr_tier_records_check).
 */
int bkr_tier_present(bkr_repo *r, size_t i);

/**
 * Check that every tier @p r recorded is there: its location holds a
 * tier.json naming this repository.  BKR_ENOTFOUND "missing or not mounted",
 * or BKR_EINVAL "belongs to repository X", naming the tier and location; or
 * BKR_ECORRUPT naming a record in tiers/ that does not read (its checksum,
 * JSON or fields): the location it names is searched by no reader, so its
 * packs would look missing.
 */
int bkr_tier_check(bkr_repo *r);

/* ---- status and migration ------------------------------------------------- */

/** What one place holds. */
typedef struct {
	const char *tier;      /**< "hot", "warm", "cold" (as recorded or configured) */
	const char *location;  /**< the directory */
	bool recorded;         /**< named by a record of the repository */
	bool present;          /**< its location is there (and, recorded, holds tier.json) */
	uint64_t data_packs, data_bytes;
	uint64_t tree_packs, tree_bytes;
} bkr_tier_usage;

/** The packs the index names that no place holds (bkr_tier_status). */
typedef struct {
	uint64_t indexed;      /**< packs the index names */
	uint64_t missing;      /**< of those, in no place: the repository, a tier, a trash */
	bkr_pack_id first;     /**< the first missing one (lowest id) */
} bkr_tier_missing;

/**
 * Packs and bytes in each place of @p r (hot first); *out is malloc'd, its
 * strings @p r's.  With @p missing (optional): the packs the index names
 * that the listings of every place did not show, each looked for again by
 * name in every place and trash after the tier records are reloaded (so a
 * pack a migration moved meanwhile is found where it went): what is still
 * found nowhere is missing.  A place that cannot answer (an S3 server) is an
 * error, not a missing pack.
 */
int bkr_tier_status(bkr_repo *r, bkr_tier_usage **out, size_t *n, bkr_tier_missing *missing);

typedef struct {
	char tier[32];        /**< the tier recorded there */
	size_t records;       /**< records naming the location (removed, or to remove) */
	bool present;         /**< the location is there (holding the repository's tier.json) */
	uint64_t data_packs;  /**< data packs it holds (0 when missing) */
} bkr_tier_forget_report;

/**
 * Remove the repository's records of tier location @p location (the caller
 * holds the exclusive lock), so readers stop searching it and stop failing
 * when it is gone.  Refused (BKR_EINVAL) while the location holds data packs,
 * and while it is missing unless @p lost: then the index still names the
 * packs that were only there, which 'bkr repair' drops (their backups are
 * damaged).  BKR_ENOTFOUND when no record names it.  Nothing is removed
 * with @p dry_run.  The location's own tier.json is left as it is.
 */
int bkr_tier_forget(bkr_repo *r, const char *location, bool lost, bool dry_run, bkr_tier_forget_report *out);

/**
 * Move every damaged tier record (a checksum that fails, JSON or a field that
 * does not parse: the location it names is unknown) of @p r into trash (the
 * caller holds the exclusive lock), so that the commands that stop on it
 * (repair, prune, tier status and migrate) run again; @p cb (may be NULL)
 * gets each one's store name and error first.  The record stays in trash/
 * for the grace period (put it back from there if its location held data).
 * BKR_ENOTFOUND when none is damaged; nothing moves with @p dry_run.  *@p n:
 * how many.
 */
int bkr_tier_forget_damaged(bkr_repo *r, bool dry_run, int64_t now_ns,
			    void (*cb)(void *ctx, const char *name, const char *why), void *ctx, size_t *n);

typedef struct {
	int version;
	bool dry_run;
	int64_t as_of_ns;        /**< the time migrate acts as of, when as_of_set (any time, 1970 itself too) */
	bkr_tier_policy policy;  /**< the configured tiers */
	/** Called for each pack before it moves (may be NULL). */
	void (*on_move)(void *ctx, const bkr_pack_id *id, uint64_t size, const char *from, const char *to);
	void *ctx;
	/** Called (with @p ctx) before the first move and after each: packs and
	 * bytes done of those that move or lose an extra copy (may be NULL). */
	void (*progress)(void *ctx, uint64_t packs_done, uint64_t packs_total, uint64_t bytes_done,
			 uint64_t bytes_total);
	/** Called (with @p ctx) for each backup or run dated in the future at
	 * as_of_ns (bkr_time_in_future; bkr_tier_level says where its data
	 * goes) before anything moves (may be NULL). */
	void (*future)(void *ctx, const char *backup_id, int64_t time_ns);
	bool as_of_set;          /**< as_of_ns holds the time; false: now (a flag: no time value means "now") */
} bkr_tier_migrate_options;
#define BKR_TIER_MIGRATE_OPTIONS_VERSION 1
#define BKR_TIER_MIGRATE_OPTIONS_INIT { BKR_TIER_MIGRATE_OPTIONS_VERSION, false, 0, { { { NULL, 0 } } }, NULL, NULL, NULL }

typedef struct {
	uint64_t packs[BKR_TIER_LEVELS], bytes[BKR_TIER_LEVELS]; /**< moved into each level */
	uint64_t stay_packs, stay_bytes;   /**< data packs already where they belong */
	uint64_t unused_packs;             /**< data packs no backup uses (left alone) */
	uint64_t copies_removed;           /**< extra copies a killed run left, removed */
	uint64_t backups;                  /**< backups and runs considered */
} bkr_tier_migrate_report;

/**
 * Move every data pack of @p r to the level its backups ask for (the caller
 * holds the exclusive lock).  A configured or recorded tier whose location
 * is missing or not mounted is an error before anything moves.
 */
int bkr_tier_migrate(bkr_repo *r, const bkr_tier_migrate_options *o, bkr_tier_migrate_report *out);

#endif
