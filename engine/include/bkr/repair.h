/** @file
 * Repair (`bkr repair`): rebuild the index from the packs themselves and take
 * damaged blobs out of it, so that the next backup of a source that still
 * has those bytes stores them again ("heal").
 *
 * Under the exclusive lock (the caller takes it), repair
 * 1. reads every index file (a damaged one is left out) and the footer of
 *    every pack on disk (hot and the configured tiers);
 * 2. builds the index the packs say: every blob of every readable footer;
 *    an index entry of a pack whose footer cannot be read is kept as it is
 *    (verify --read-data judges its blobs), one that disagrees with its
 *    pack's footer or names a pack missing from every tier and trash is
 *    dropped (its blob is gone: a backup stores it again);
 * 3. heals: every blob a `verify` (or `prune`) recorded as damaged (bkr/verify_record.h)
 *    is read again through every index entry naming it, and the entries that
 *    still fail are dropped;
 * 4. walks every backup and recovery run and reports each file that still
 *    uses a blob the index lacks, saying whether the live file on this host
 *    still has the same content (a new backup heals it) or not; a pack in
 *    the trash (of the repository or a tier) whose blobs the walk needs is
 *    moved back to its place and indexed (a delete undone after prune, an
 *    index file lost before a prune);
 * 5. when anything differs, publishes one index file superseding every index
 *    file read (prune's merge), then moves the damaged index files into
 *    trash (one batch).
 * Killed at any instant, nothing is lost: the new index is published before
 * anything is removed, and the rerun finds the same answer.
 */
#ifndef BKR_REPAIR_H
#define BKR_REPAIR_H

#include <stdbool.h>
#include <stdint.h>

#include "bkr/progress.h"
#include "bkr/repo.h"

typedef enum {
	BKR_REPAIR_INDEX_FILE = 1, /**< a damaged index file (moved into trash) */
	BKR_REPAIR_PACK,           /**< a pack whose footer cannot be read (left in place) */
	BKR_REPAIR_MISSING_PACK,   /**< a pack the index names that is nowhere: its entries dropped */
	BKR_REPAIR_ENTRY,          /**< an index entry that disagrees with its pack's footer: dropped */
	BKR_REPAIR_DAMAGED_BLOB,   /**< a recorded damaged blob that still fails: its entry dropped */
	BKR_REPAIR_DAMAGED_FILE,   /**< a file of a backup that stays damaged */
	BKR_REPAIR_CONFIG,         /**< config.json or its copy, damaged or missing: rewritten from the other */
	BKR_REPAIR_TRASH_PACK,     /**< a pack in the trash that a backup uses: moved back and indexed */
	BKR_REPAIR_MANIFEST,       /**< a manifest (backup or recovery run) that does not read */
} bkr_repair_kind;

/** What a live file says about a damaged one (BKR_REPAIR_DAMAGED_FILE). */
typedef enum {
	BKR_REPAIR_LIVE_NONE = 0,  /**< no live copy: absent, different, or another host's backup */
	BKR_REPAIR_LIVE_SAME,      /**< the live file has the same content: the next backup heals it */
} bkr_repair_live;

/** One finding; valid during the callback only. */
typedef struct {
	bkr_repair_kind kind;
	const char *object;        /**< index file, pack path, or blob id */
	const char *backup_id;     /**< DAMAGED_FILE: the backup or recovery run */
	const char *path;          /**< DAMAGED_FILE: the path in it */
	const char *live_path;     /**< DAMAGED_FILE: where the live copy was looked for (or NULL) */
	bkr_repair_live live;
	const char *message;       /**< one line */
} bkr_repair_problem;

typedef struct {
	uint64_t index_files;         /**< index files read */
	uint64_t damaged_index_files; /**< left out (moved into trash) */
	uint64_t packs, bad_packs;    /**< packs on disk; of them, footers that cannot be read */
	uint64_t entries_before, entries_after;
	uint64_t added;               /**< blobs indexed from the packs' footers */
	uint64_t rescued_packs;       /**< packs in the trash a backup uses, moved back */
	uint64_t dropped_missing;     /**< entries of packs missing everywhere */
	uint64_t dropped_bogus;       /**< entries that disagree with their pack's footer */
	uint64_t damaged_recorded;    /**< distinct blobs verify or prune recorded as damaged */
	uint64_t damaged_dropped;     /**< entries of them that still fail: dropped */
	uint64_t damaged_healed;      /**< recorded blobs that now read fine (or have a good copy) */
	uint64_t damaged_files;       /**< files of backups that stay damaged */
	uint64_t healable_files;      /**< of them, files whose live copy has the content */
	uint64_t backups_damaged;     /**< backups (and runs) with at least one damaged file */
	uint64_t damaged_manifests;   /**< manifests that do not read (not rebuilt) */
	bool rewritten;               /**< a new index was (or would be, dry run) published */
	const char *config_rewritten; /**< "config.json" or "config.copy.json" rewritten from the other, or NULL */
	bool damaged_incomplete;      /**< a verify found more damaged blobs than its record holds:
	                                   run verify --read-data and repair again */
	uint64_t damage_records_resolved; /**< damage records whose every blob now reads or left the
	                                       index: moved into trash (dry run: would be) */
} bkr_repair_report;

typedef struct {
	int version;
	bool dry_run;
	int64_t now_ns;            /**< 0 = the clock (stamps the trash batch) */
	void (*report)(void *ctx, const bkr_repair_problem *p);
	void *report_ctx;
	/** Optional, for a progress line: step "reading" ("pack footers", no
	 * total: the packs are listed as they are read), then "checking"
	 * ("backups", then "recovery runs": their trees walked). */
	bkr_progress_fn progress;
	void *progress_ctx;
} bkr_repair_options;
#define BKR_REPAIR_OPTIONS_VERSION 1
#define BKR_REPAIR_OPTIONS_INIT { BKR_REPAIR_OPTIONS_VERSION, false, 0, NULL, NULL }

/**
 * Repair @p r (the caller holds the exclusive lock).  0 when it ran (even
 * if damage remains: see *out and the reports), or an error that stopped it
 * before it changed anything.
 */
int bkr_repair_run(bkr_repo *r, const bkr_repair_options *o, bkr_repair_report *out);

#endif
