/** @file
 * Prune: free the space of data no backup or recovery run uses any more.
 *
 * Under the exclusive lock (the caller takes it: no backup runs, so every
 * pack is either indexed or a leftover), prune
 * 1. marks every blob reachable from the manifests in backups/ and runs/
 *    (trees, their pages, file chunks, xattr blobs, recovery reports);
 *    and keeps one copy of each: a blob stored more than once (two backups
 *    at once, a copy, a repair) has the copy it keeps read and checked
 *    first, the next one tried when that one is damaged, every copy kept
 *    when none reads;
 * 2. repacks the used blobs of every pack whose unused share exceeds
 *    max_unused_pct into new packs (bytes copied as stored, not recompressed),
 *    each read and checked first: a pack holding a used blob that does not
 *    read intact is left as it is (every intact blob in it stays), the blob
 *    named (damage) and recorded in a damage record for `bkr repair`
 *    (verify_record.h), and prune goes on with the rest;
 * 3. publishes one index file holding every used blob, superseding every
 *    index file it read (many small index files become one);
 * 4. moves into trash (one batch) the packs no index entry names any more:
 *    fully unused packs, repacked packs, and leftovers of killed writers
 *    older than the grace period; temporaries older than it are deleted;
 * 5. expires trash batches older than the grace period.
 * Killed at any instant, every kept backup stays complete: new packs are
 * published before the index that names them, the index before anything is
 * moved, and a rerun finds what is left as leftovers and finishes.
 */
#ifndef BKR_PRUNE_H
#define BKR_PRUNE_H

#include <stdbool.h>
#include <stdint.h>

#include "bkr/progress.h"
#include "bkr/repo.h"

typedef struct {
	int version;
	bool dry_run;
	int max_unused_pct;  /**< repack packs with more unused bytes than this share; default 10 */
	int64_t grace_s;     /**< trash and leftover grace period; default BKR_TRASH_GRACE_S */
	int64_t now_ns;      /**< 0 = the clock */
	/**
	 * Optional, for a progress line: @p done of @p total @p items of the
	 * step under way - "marking" ("backups", "recovery runs": their trees
	 * walked), "repacking" ("packs", with their bytes).
	 */
	bkr_progress_fn progress;
	void *progress_ctx;
	/**
	 * Optional: one line (naming the blob, its pack and what is wrong) for
	 * each used blob prune read that no intact copy replaces, and for a
	 * damage record it could not write.
	 */
	void (*damage)(void *ctx, const char *message);
	void *damage_ctx;
} bkr_prune_options;
#define BKR_PRUNE_OPTIONS_VERSION 1
#define BKR_PRUNE_OPTIONS_INIT { BKR_PRUNE_OPTIONS_VERSION, false, 10, 24 * 3600, 0 }

typedef struct {
	uint64_t packs, pack_bytes;             /**< indexed packs before */
	uint64_t used_blobs, used_bytes;        /**< blobs (stored bytes) still referenced */
	uint64_t unused_packs, unused_bytes;    /**< wholly unused packs moved to trash */
	uint64_t repacked_packs, repacked_bytes; /**< packs rewritten (their size) */
	uint64_t repack_written;                /**< bytes of the new packs */
	uint64_t leftover_packs, leftover_bytes; /**< unindexed packs and temporaries removed */
	uint64_t index_files;                   /**< index files merged into one */
	uint64_t trash_freed;                   /**< bytes deleted from trash (expired) */
	uint64_t trash_waiting;                 /**< bytes still in trash, within the grace period */
	size_t trash_future_batches;            /**< trash batches dated after now: a clock that was ahead */
	uint64_t duplicate_blobs;               /**< used blobs stored more than once: one copy read before the others go */
	uint64_t damaged_copies;                /**< of their copies, those that failed the read: never the one kept */
	uint64_t damaged_blobs;                 /**< used blobs read with no copy intact: named, recorded, kept */
	uint64_t damaged_packs, damaged_pack_bytes; /**< packs to repack left as they are for such a blob */
	uint64_t no_file_packs;                 /**< packs the index names whose place holds no regular file (a FIFO,
						     a directory): named, left as they are, their index entries kept */
	bool damage_unrecorded;                 /**< the damage record could not be written (named) */
} bkr_prune_report;

/**
 * Prune @p r (the caller holds the exclusive lock).  *out is filled also on
 * dry runs.  A tree that cannot be read stops prune before it changes
 * anything (BKR_ECORRUPT naming the backup): what lies below it is unknown;
 * so does an error reading a blob that says nothing about its bytes (I/O,
 * a store that cannot answer).  Damaged blobs do not stop it: 0 is returned
 * with out->damaged_blobs counting the used blobs that no intact copy
 * replaces (the caller's exit status says so).
 */
int bkr_prune_run(bkr_repo *r, const bkr_prune_options *o, bkr_prune_report *out);

#endif
