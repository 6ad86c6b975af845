/** @file
 * Verify records (docs/format.md "Verify records"): every `bkr verify` leaves
 * one append-only record in records/ saying when it ran, what it checked,
 * what it found, and which blobs it found damaged.  `bkr repair` reads the
 * damaged blobs from them (to take them out of the index), and from the
 * damage records that prune leaves for damage it meets; a health report
 * reads the newest verify record.
 */
#ifndef BKR_VERIFY_RECORD_H
#define BKR_VERIFY_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bkr/catalog.h"
#include "bkr/hash.h"
#include "bkr/repo.h"
#include "bkr/verify.h"

/** At most this many damaged blob ids in one record (it stays well under 1 MiB). */
#define BKR_VERIFY_RECORD_MAX_DAMAGED 8192
/** At most this many damaged backup ids in one record (the rest are counted in damaged_backups_omitted). */
#define BKR_VERIFY_RECORD_MAX_BACKUPS 1000

typedef enum {
	BKR_VERIFY_RESULT_OK = 0,   /**< no error found (leftovers allowed) */
	BKR_VERIFY_RESULT_PROBLEMS, /**< errors found (stats.errors) */
	BKR_VERIFY_RESULT_FAILED,   /**< the check itself could not run (message) */
} bkr_verify_result;

typedef struct bkr_verify_record {
	int64_t time_ns;          /**< when it finished */
	double duration_s;
	char *host;               /**< who ran it (may be NULL) */
	char *backup_id;          /**< the one backup (or run) checked, its full id (older records: as given,
				       a prefix or "latest"); NULL = all of them */
	bool read_data;
	bkr_verify_result result;
	char *message;            /**< FAILED: why (may be NULL) */
	bkr_verify_stats stats;
	uint64_t damaged_files;   /**< files (backup, path) that use damaged or missing blobs */
	bkr_id *damaged;          /**< blobs found damaged (unreadable through the index) */
	size_t ndamaged;
	uint64_t damaged_omitted; /**< damaged blobs beyond BKR_VERIFY_RECORD_MAX_DAMAGED */
	char **damaged_backups;   /**< backups (not runs) it found an error in, each once (bkr health:
				       not good); records older than it name none */
	size_t ndamaged_backups;
	uint64_t damaged_backups_omitted; /**< damaged backups beyond BKR_VERIFY_RECORD_MAX_BACKUPS */
} bkr_verify_record;

const char *bkr_verify_result_name(bkr_verify_result r);

/**
 * Encode @p rec as the JSON object text of a record, without "sha256"
 * (bkr_repo_add_record seals it).  Only the first
 * BKR_VERIFY_RECORD_MAX_DAMAGED damaged ids are written; the rest are
 * counted in "damaged_omitted".  *json is malloc'd.
 */
int bkr_verify_record_encode(const bkr_verify_record *rec, char **json);

/**
 * Decode a sealed record text (checksum checked).  BKR_ECORRUPT naming
 * @p what and the key for anything malformed; BKR_ENOTFOUND (no message
 * needed) when it is a record of another kind.
 */
int bkr_verify_record_decode(bkr_verify_record **out, const char *text, size_t len, const char *what);

/** Free; NULL is a no-op. */
void bkr_verify_record_free(bkr_verify_record *rec);

/** Free the strings and arrays of @p rec, not @p rec itself (one on the stack); NULL is a no-op. */
void bkr_verify_record_clear(bkr_verify_record *rec);

/**
 * Copy the scalars of @p from into @p to: every string and array of @p to is
 * NULL, ndamaged_backups 0; ndamaged keeps the count (damaged is NULL).
 */
void bkr_verify_record_scalars(bkr_verify_record *to, const bkr_verify_record *from);

/**
 * Whether a sealed record text that is a verify or a damage record decodes
 * as one: 0 when it does (or is a record of another kind), else BKR_ECORRUPT
 * naming @p what and the key (a count out of range, a time that is none...):
 * every reader skips such a record, so verify and health report it
 * (bkr_records_foreach_damaged).  BKR_ENOMEM.
 */
int bkr_verify_record_check(const char *text, size_t len, const char *what);

/** Append @p rec to @p r's records (refused on a read-only repository). */
int bkr_verify_record_add(bkr_repo *r, const bkr_verify_record *rec);

/**
 * bkr_verify_run (@p o's record member is ignored), then its record appended
 * to @p r's records, also when the check could not finish: `bkr verify` and
 * the routines both leave one, for `bkr repair` (the damaged blobs) and
 * `bkr health` (the last verify).  Returns what bkr_verify_run returned, with
 * its message.  A record that cannot be written does not change that: its
 * reason, whole, goes into @p *unrecorded (malloc'd, the caller frees it;
 * NULL when recorded).
 */
int bkr_verify_run_recorded(char **unrecorded, bkr_repo *r, const bkr_verify_options *o, bkr_verify_stats *st);

/**
 * Every intact verify record of @p r, oldest first (or newest first), to
 * @p cb; a return >0 from @p cb stops (0 is returned), <0 stops and is
 * returned.  Damaged records and records of other kinds are skipped.
 */
int bkr_verify_record_foreach(bkr_repo *r, bool newest_first,
			      int (*cb)(void *ctx, const bkr_verify_record *rec), void *ctx);

/** The same over records already read (bkr_repo_records_read). */
int bkr_verify_record_foreach_in(const bkr_records *rs, bool newest_first,
				 int (*cb)(void *ctx, const bkr_verify_record *rec), void *ctx);

/** The newest verify record of @p r: BKR_ENOTFOUND when there is none. */
int bkr_verify_record_last(bkr_repo *r, bkr_verify_record **out);

/** A damaged copy of a blob: the blob and the pack holding the copy. */
typedef struct {
	bkr_id blob;
	bkr_pack_id pack;
} bkr_damaged_copy;

/**
 * Append a damage record (docs/format.md "Damage records"): the damaged
 * copies a command other than verify met (@p by: "prune"), for `bkr repair`
 * as a verify record's damaged blobs are.  At most
 * BKR_VERIFY_RECORD_MAX_DAMAGED are written, the rest counted.
 */
int bkr_damage_record_add(bkr_repo *r, const char *by, const bkr_damaged_copy *copies, size_t n);

/**
 * The damaged blob ids of every intact verify record and damage record of
 * @p r, oldest first, one record at a time (@p omitted: ids the record
 * counted but did not list); a return <0 from @p cb stops and is returned.
 */
int bkr_damaged_blobs_foreach(bkr_repo *r, int (*cb)(void *ctx, const bkr_id *ids, size_t n, uint64_t omitted),
			      void *ctx);

/**
 * The newest damage record among records already read (bkr_repo_records_read)
 * made at or before @p until_ns: when (*time_ns) and how many damaged blobs
 * it names (*blobs); BKR_ENOTFOUND (no message) when there is none.
 */
/**
 * The store names ("records/<name>.json") of @p r's damage records that
 * name every damaged blob they met (no "damaged_omitted") and none of whose
 * blobs @p damaged says still has a copy that fails to read: such a record
 * says nothing more (repair, having read every copy of those blobs again,
 * moves it into trash).  A record naming a copy that still fails stays: it
 * keeps repair from indexing that copy again from its pack's footer.  Free
 * each name and the array.
 */
int bkr_damage_records_resolved(bkr_repo *r, bool (*damaged)(void *ctx, const bkr_id *id), void *ctx,
				char ***names, size_t *n);

int bkr_damage_record_last_in(const bkr_records *rs, int64_t until_ns, int64_t *time_ns, uint64_t *blobs);

/** The same over records already read (bkr_repo_records_read). */
int bkr_damaged_blobs_foreach_in(const bkr_records *rs,
				 int (*cb)(void *ctx, const bkr_id *ids, size_t n, uint64_t omitted), void *ctx);

#endif
