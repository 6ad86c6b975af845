/** @file
 * Copying backups between repositories (engine/copy.c, `bkr copy`): local
 * or remote, plain or encrypted, either side.  Each backup keeps its id,
 * time, type, sources, tags and every other manifest field; only the blobs
 * the destination lacks are sent, each read from the source and checked
 * (hash, or GCM tag and HMAC id) before it is written.  The destination is
 * written with its own protocol, as a backup writes it: under the shared
 * lock and the writers' mark, packs and one index file per backup first,
 * the manifest last and never replacing.  A backup already in the
 * destination (its manifest is there, and it is this backup: the same root
 * tree, or between id schemes the same manifest fields and trees entry by
 * entry, content digests included) is skipped, so a second run copies
 * nothing, and a run killed at any point leaves only leftovers that a rerun
 * completes; another backup under its id is named and never copied over
 * (BKR_EEXISTS at the end).  A backup already there gets the source's tags
 * and pin (tag, untag, pin and unpin records there), so that a copy run
 * again converges on the source's later changes.
 *
 * When both repositories name blobs the same way (both plain) blobs keep
 * their ids and trees are copied byte for byte.  Otherwise (plain and
 * encrypted, or two encrypted repositories with their own keys) every data
 * blob gets the destination's id of its plaintext and every directory is
 * re-encoded bottom-up with its chunks', xattr blobs' and subdirectories'
 * new ids (a map of engine/idset.h): the same directories still have the same ids in
 * the destination, so incremental parents, dedup and diff work there as
 * they did in the source (a file's content hash is the SHA-256 of its
 * bytes on both sides and is kept).
 */
#ifndef BKR_COPY_H
#define BKR_COPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bkr/manifest.h"
#include "bkr/repo.h"

/** Counts of a copy (the whole run, or one backup). */
typedef struct {
	uint64_t backups_copied;   /**< published in the destination (with dry_run: would be) */
	uint64_t backups_skipped;  /**< already in the destination */
	uint64_t backups_updated;  /**< given the source's tags and pin by records there (with dry_run: would be) */
	uint64_t backups_healed;   /**< already there, blobs they use stored again (heal; with dry_run: would be) */
	uint64_t blobs_sent;       /**< blobs the destination lacked, written to it */
	uint64_t bytes_sent;       /**< their plaintext bytes */
	uint64_t stored_bytes;     /**< the bytes they take in the destination's packs (0 with dry_run) */
	uint64_t blobs_read;       /**< blobs read from the source (and checked) */
	uint64_t bytes_read;       /**< their plaintext bytes */
} bkr_copy_stats;

typedef struct {
	int version;
	/** Backups to copy: ids, unique prefixes or "latest" (bkr/backupid.h); none: every backup. */
	const char *const *specs;
	size_t nspecs;
	bool dry_run;    /**< read and check, count what would be sent, write nothing */
	bool no_wait;    /**< fail (BKR_ELOCKED) when an exclusive operation holds the destination */
	/** Leave the tags and pin of backups already in the destination as they are (else they are
	 *  made the source's: records written there, as 'bkr tag' and 'bkr pin' write them). */
	bool no_sync_tags;
	/** Walk each backup already in the destination (and the same there) as one copied now: every
	 *  blob it uses that the destination's index lacks, or whose copy there is damaged (a tree, or a
	 *  blob its verify or damage records name, read there), is stored again from the source. */
	bool heal;
	void (*waiting)(void *ctx);  /**< called once before waiting for the destination's lock */
	/** A damaged manifest in the source (left out; with no specs the copy goes on without it). */
	void (*warning)(void *ctx, const char *message);
	/** A backup 'latest' passed over as dated in the future (bkr_repo_find_backup_at's @p passed). */
	void (*passed)(void *ctx, const char *backup_id, int64_t time_ns, bool damaged);
	/** A backup in the destination whose tags or pin are made the source's (before on_backup):
	 *  one already there, or one copied onto records of an earlier backup of its id there (deleted
	 *  since); @p change says how ("+tag T", "-tag T", "pin A -> B", comma-separated). */
	void (*on_update)(void *ctx, const bkr_manifest *m, const char *change);
	/** After each backup: its manifest, whether it was copied (else skipped), its own counts. */
	void (*on_backup)(void *ctx, const bkr_manifest *m, bool copied, const bkr_copy_stats *one);
	/** Now and then while a backup is copied: the run's counts so far, which backup (1-based) of how many. */
	void (*progress)(void *ctx, const bkr_copy_stats *run, size_t backup, size_t nbackups);
	void *ctx;
} bkr_copy_options;
#define BKR_COPY_OPTIONS_VERSION 1

/**
 * Copy the backups @p o names from @p from to @p to; *stats (optional) gets
 * the counts, also on failure (what was done before it).  BKR_EINVAL when
 * both are the same repository (the same config id); BKR_ENOTFOUND /
 * BKR_EAMBIGUOUS for a spec (nothing is copied then); BKR_ECORRUPT when a
 * source blob fails its check (the message names the backup and the blob;
 * that backup is not published, the ones before it are).
 */
int bkr_copy_run(bkr_repo *from, bkr_repo *to, const bkr_copy_options *o, bkr_copy_stats *stats);

#endif
