/** @file
 * Holds: workspace files a routine's scan found damaged or missing and that
 * nobody has recovered yet, each with the backup holding its last good copy.
 *
 * A scan compares each file with the newest backup of its source, so once a
 * later backup lacks a deleted file (or holds it emptied) no scan sees it
 * again.  The routine's scan therefore records what it found in the
 * repository (append-only records, docs/format.md "Hold records"): a "hold"
 * names the path and the backup that still has the good copy, and retention
 * keeps that backup (rule "held") until a "release" record names it (by path
 * and the hold's time, whatever the order of the records) - a later scan
 * found the file back and healthy ("recovered"), or an operator cleared it
 * (`bkr hold release`, "operator").
 */
#ifndef BKR_HOLD_H
#define BKR_HOLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bkr/catalog.h"
#include "bkr/repo.h"

typedef struct {
	char *path;          /**< workspace-relative */
	char *backup_id;     /**< the backup holding its last good copy */
	char *damage;        /**< what the scan found: "missing", "truncated", ... */
	char *host;          /**< the host whose scan found it (may be NULL) */
	uint64_t size;       /**< of the good copy */
	int64_t since_ns;    /**< when it was found (0 when not since_known) */
	bool since_known;    /**< its record's time is a time */
	char *since;         /**< ... as its record says it (a release names the hold by path and this);
	                          NULL when its record has none (a release without "since" ends it) */
} bkr_hold;

typedef struct {
	bkr_hold *v;         /**< sorted by path, then time (a path may have several) */
	size_t n;
	/** One line for each bad hold or release record (a field missing or
	 *  odd, a damaged one), naming it and what became of it: for the
	 *  command to show as warnings. */
	char **warnings;
	size_t nwarnings;
} bkr_holds;

/** The holds in force in @p r (records in time order; damaged records skipped). */
int bkr_holds_read(bkr_repo *r, bkr_holds *out);
/** The same from records already read (bkr_repo_records_read): a command that
 *  also lists backups or verify results reads records/ once. */
int bkr_holds_from_records(const bkr_records *rs, bkr_holds *out);
/** How many files @p h holds: its paths, each once (two routines that found
 *  one file at once each record a hold of it). */
size_t bkr_holds_files(const bkr_holds *h);
/** The first hold of @p path, or NULL. */
const bkr_hold *bkr_holds_find(const bkr_holds *h, const char *path);
void bkr_holds_free(bkr_holds *h);
/** Leave out the holds found after @p t (health --as-of: not made yet). */
void bkr_holds_drop_after(bkr_holds *h, int64_t t);

/** When @p h was found, as ISO 8601 UTC in @p out; NULL when its record's time is no time. */
const char *bkr_hold_since(const bkr_hold *h, char out[32]);

struct cJSON;
/**
 * Whether hold or release record @p o (named @p path: its checksum holds)
 * decodes as its kind needs: "path" a string that is not empty and "time" an
 * ISO 8601 time; a hold's "backup_id" a string that is not empty, its
 * "damage" and "host" strings and its "size" a count where they are there; a
 * release's "backup_id", "since" and "by" strings where they are there.
 * BKR_ECORRUPT naming @p path and the key; 0 for another kind.  Verify and
 * health call such a record damaged (bkr_record_check); the holds' reader
 * still takes a hold in it as it reads (its backup is kept) and ignores a
 * release in it (the holds it names stay), with a warning naming it.
 */
int bkr_hold_record_check(const struct cJSON *o, const char *path);

/** Record a hold of @p path: its good copy (@p size bytes) is in @p backup_id. */
int bkr_hold_add(bkr_repo *r, const char *path, const char *backup_id, const char *damage, uint64_t size,
		 const char *host);
/** Record the end of hold @p h (its path and time); @p by: "recovered" or "operator". */
int bkr_hold_release(bkr_repo *r, const bkr_hold *h, const char *by);

#endif
