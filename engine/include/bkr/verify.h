/** @file
 * Repository verification (`bkr verify`): manifests, index, packs, every
 * tree of every backup and recovery run (and each run's report), and with
 * read_data every blob's bytes.  Each problem is reported with the backups
 * or runs and paths it affects.
 */
#ifndef BKR_VERIFY_H
#define BKR_VERIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "bkr/repo.h"

typedef enum {
	BKR_VERIFY_MANIFEST = 1, /**< a manifest that does not parse or fails its checksum */
	BKR_VERIFY_PACK,         /**< a pack whose footer is damaged, that is missing, or that
	                              the index lacks although backups use its blobs */
	BKR_VERIFY_BLOB,         /**< a blob whose bytes do not match its id */
	BKR_VERIFY_TREE,         /**< a tree that cannot be read (missing or damaged) */
	BKR_VERIFY_MISSING,      /**< a file's chunk that is not in the index */
	BKR_VERIFY_DAMAGED_FILE, /**< a file that uses a damaged or missing blob */
	BKR_VERIFY_LEFTOVER,     /**< an unreferenced pack or temporary file (not an error) */
	BKR_VERIFY_INDEX,        /**< a damaged index file, or an index entry that disagrees with its pack's footer */
	BKR_VERIFY_CONFIG,       /**< config.json or its copy config.copy.json damaged, missing or different */
	BKR_VERIFY_RECORD,       /**< a record (pin, tag, hold, ...) that fails its checksum or does not parse */
	BKR_VERIFY_IO,           /**< a pack, tree, manifest or config file whose read failed with an I/O error:
	                              not judged (no damage, nothing recorded), counted in io_errors */
} bkr_verify_kind;

/** One problem; valid during the callback only. */
typedef struct {
	bkr_verify_kind kind;
	bool error;              /**< false for leftovers (true for I/O errors, which are not counted in errors) */
	const char *object;      /**< blob id, pack path or manifest file */
	const char *backup_id;   /**< when a backup or recovery run is affected, else NULL */
	const char *path;        /**< file or directory in it ("report.json": a run's report), else NULL */
	const char *message;     /**< one line */
	bool run;                /**< backup_id is a recovery run's (runs/) */
	/** The index files ("index/<id>.idx") holding the index entries a problem
	 * is about (a pack the index names that is missing, an entry its pack's
	 * footer contradicts, a copy that does not read), which 'bkr repair'
	 * replaces; NULL (0) for the others */
	const char *const *index_files;
	size_t nindex_files;
} bkr_verify_problem;

typedef struct {
	uint64_t backups, trees, files, packs, blobs_read, bytes_read;
	uint64_t errors, leftovers;
	uint64_t io_errors;      /**< objects that could not be read, each once (a pack, manifest, config file,
				  *   a place searched for a pack, a tree whose pack was not counted already);
				  *   not in errors */
	uint64_t unchecked;      /**< files and trees not checked because an object they may be in could not be
				  *   read (their problems are BKR_VERIFY_IO too, counted here, not in io_errors) */
	uint64_t runs;           /**< recovery runs walked (their trees and files are counted above) */
	uint64_t damage_records_resolved; /**< damage records moved into the trash: a whole --read-data run
					   *   read every copy of their blobs whole (only with a record) */
} bkr_verify_stats;

typedef struct {
	int version;
	const char *backup;      /**< only this backup (id, prefix, latest), or else this recovery
				      run (id, prefix); NULL = every backup and run */
	bool read_data;          /**< read and hash every indexed blob, as restore reads it */
	void (*report)(void *ctx, const bkr_verify_problem *p);
	void *report_ctx;
	/** Phase "packs": packs and bytes (the blobs' stored bytes, what
	 * --read-data reads) done of the total; phase "backups": backups (bytes 0). */
	void (*progress)(void *ctx, const char *phase, uint64_t done, uint64_t total, uint64_t bytes_done,
			 uint64_t bytes_total);
	void *progress_ctx;
	/** When set, filled with what to record (bkr/verify_record.h: the caller
	 * publishes it with bkr_verify_record_add, also when verify failed) */
	struct bkr_verify_record *record;
} bkr_verify_options;
#define BKR_VERIFY_OPTIONS_VERSION 1
#define BKR_VERIFY_OPTIONS_INIT { BKR_VERIFY_OPTIONS_VERSION }

/**
 * Verify.  Returns 0 when no error was found (leftovers allowed),
 * BKR_ECORRUPT when some were (each reported), BKR_EIO when some object
 * could not be read (each reported as BKR_VERIFY_IO, everything else
 * checked; errors found too are in stats), or another error when the check
 * itself could not run.
 */
int bkr_verify_run(bkr_repo *r, const bkr_verify_options *o, bkr_verify_stats *stats);

#endif
