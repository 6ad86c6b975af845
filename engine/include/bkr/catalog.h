/** @file
 * A repository's catalog (engine/catalog.c): its backups and recovery runs
 * (manifests) with the records — pins, tags, deletions — applied.
 */
#ifndef BKR_CATALOG_H
#define BKR_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bkr/repo.h"

/** A list of manifests, oldest first (by timestamp, then id). */
typedef struct {
	bkr_manifest **items;
	size_t n;
} bkr_manifest_list;

/**
 * The ids of the catalog's backups (or recovery runs when @p runs), sorted:
 * the manifests present, without reading them (the mount's view).  The same set bkr_repo_list loads, less
 * the damaged ones.  Free with bkr_repo_ids_free.
 */
int bkr_repo_list_ids(bkr_repo *r, bool runs, char ***ids, size_t *n);

/**
 * The names of the objects "<sub>/<name><suffix>" of the repository's
 * store, without the folder and @p suffix, sorted (temporaries, hidden names
 * and subfolders left out): a listing of a directory, or of a bucket.  Free
 * with bkr_repo_ids_free.
 */
int bkr_repo_list_names(bkr_repo *r, const char *sub, const char *suffix, char ***names, size_t *n);
/**
 * bkr_repo_list_names, each name carrying the stamp of its object
 * (bkr_store_list_stamped: what changes when the object is rewritten in
 * place), which bkr_repo_name_stamp gives.  Free with bkr_repo_ids_free.
 */
int bkr_repo_list_stamped(bkr_repo *r, const char *sub, const char *suffix, char ***names, size_t *n);
/** The stamp of a name of bkr_repo_list_stamped ("" when the store cannot tell; and for
 *  every name of bkr_repo_list_names). */
const char *bkr_repo_name_stamp(const char *name);
void bkr_repo_ids_free(char **ids, size_t n);

/**
 * Load all backups (or recovery runs when @p runs), applying records (pins,
 * tags).  A backup exists while its manifest is in backups/ (bkr/trash.h).  Corrupt manifests are skipped and counted in *bad (optional),
 * with the message of the last one left in the error slot.
 */
int bkr_repo_list(bkr_repo *r, bool runs, bkr_manifest_list *out, size_t *bad);

/** The same, calling @p on_bad(ctx, file, message) for each damaged manifest. */
int bkr_repo_list_cb(bkr_repo *r, bool runs, bkr_manifest_list *out,
		     void (*on_bad)(void *ctx, const char *file, const char *message), void *ctx);
void bkr_manifest_list_free(bkr_manifest_list *l);

/** The newest-named damaged manifest a listing met (its file name and time
 *  part): what 'latest' must not pass over in silence.  Start it as { "", "" }. */
typedef struct {
	char file[300];
	char time[16];
} bkr_newest_bad;

/** Note damaged manifest @p file ("<id>.json", from an on_bad callback) in @p b. */
void bkr_newest_bad_note(bkr_newest_bad *b, const char *file);

/**
 * Resolve @p spec among the @p n ids of a listing (bkr_backupid_resolve), @p
 * bad the damaged manifests it met: 'latest' is BKR_ECORRUPT naming a damaged
 * manifest named newer than (or in the same second as) the newest readable
 * one, never an older backup in silence.
 */
int bkr_repo_resolve(bkr_repo *r, bool runs, const bkr_newest_bad *bad, size_t *hit, const char *const *ids,
		     size_t n, const char *spec);

/**
 * The damaged manifests of a listing as 'latest' judges them at a time: by
 * their ids' times, those dated in the future apart (each passed over with a
 * warning, as a readable one would be).  Start it with
 * BKR_LATEST_BAD_INIT(now_ns), give it each damaged manifest's file from the
 * listing's on_bad callback (bkr_latest_bad_note), resolve specs over that
 * listing with bkr_repo_resolve_listed; bkr_latest_bad_free frees it.
 */
typedef struct {
	int64_t now_ns;
	bkr_newest_bad bad;    /**< the newest-named made by now */
	bkr_newest_bad future; /**< the newest-named dated in the future */
	struct bkr_latest_future {
		char *id; /**< its file's name (escaped, as bkr_repo_list_cb gives it) less ".json" */
		int64_t time_ns;
	} *futures;            /**< every one dated in the future (owned) */
	size_t nfutures;
	bool oom;              /**< a note was lost: resolving says BKR_ENOMEM */
} bkr_latest_bad;

#define BKR_LATEST_BAD_INIT(now) { .now_ns = (now), .bad = { "", "" }, .future = { "", "" } }

/** Note damaged manifest @p file ("<id>.json", from an on_bad callback) in @p b. */
void bkr_latest_bad_note(bkr_latest_bad *b, const char *file);
void bkr_latest_bad_free(bkr_latest_bad *b);

/**
 * Resolve @p spec (an id, a unique prefix, "latest") among the listing @p l,
 * its damaged manifests noted in @p bad, exactly as bkr_repo_find_backup_at
 * does as of @p bad's time, without listing again: *@p hit is the index in
 * @p l of the one named; each backup 'latest' passes over is given to
 * @p passed (may be NULL).  A command that lists anyway (bkr copy) asks this.
 */
int bkr_repo_resolve_listed(bkr_repo *r, bool runs, const bkr_manifest_list *l, const bkr_latest_bad *bad,
			    const char *spec, void (*passed)(void *ctx, const char *backup_id, int64_t time_ns, bool damaged),
			    void *ctx, size_t *hit);

/**
 * The records (records/: pins, tags, verify results), read once — one
 * listing and one get each — for a command that needs them more than once:
 * verify lists its backups, its recovery runs and its earlier results from
 * one reading.  Records that vanish meanwhile are left out.  Free with
 * bkr_records_free.
 */
typedef struct bkr_records bkr_records;
int bkr_repo_records_read(bkr_repo *r, bkr_records **out);
void bkr_records_free(bkr_records *rs);

/**
 * bkr_repo_list_cb with the records @p rs (bkr_repo_records_read; NULL: none)
 * applied.  With @p on_unread, a manifest whose read fails with an I/O error
 * is left out and given to it (verify goes on without that backup), instead
 * of failing the listing.
 */
int bkr_repo_list_with(bkr_repo *r, const bkr_records *rs, bool runs, bkr_manifest_list *out,
		       void (*on_bad)(void *ctx, const char *file, const char *message),
		       void (*on_unread)(void *ctx, const char *file, const char *message), void *ctx);

/**
 * Each record of @p rs that is damaged (its checksum fails or it does not
 * parse: every reader skips it, so a pin, tag or hold it holds is not
 * applied), with its path and why (a message naming it).  With
 * @p unread_only, only those that could not be read at all (too large, not
 * a regular file, in an encrypted repository one that does not open): the
 * others are still text, which the holds take as it reads.
 */
void bkr_records_foreach_damaged(const bkr_records *rs, bool unread_only,
				 void (*cb)(void *ctx, const char *path, const char *why), void *ctx);

/**
 * Whether the record @p text (its checksum holds) decodes as its kind needs:
 * 0, else BKR_ECORRUPT naming @p path and the key - a tag that is a number,
 * a pin whose until is no date, a verify record whose count is out of range,
 * a hold whose size is a string (bkr_hold_record_check) - and
 * bkr_records_foreach_damaged takes such a record as damaged; kinds of later
 * versions are not judged.  BKR_ENOMEM.
 */
int bkr_record_check(const char *text, size_t len, const char *path);

/**
 * Apply the records @p rs (pins, tags) to the one manifest @p m, as a listing
 * applies them: in time order, records of one instant by what they say
 * (backup id, kind, tag or date), never by the random part of their names.
 */
int bkr_records_apply(const bkr_records *rs, bkr_manifest *m);

/** bkr_repo_list with the records @p rs (bkr_repo_records_read; NULL: none,
 *  for a caller that needs no pin or tag: prune's marking). */
int bkr_repo_list_in(bkr_repo *r, const bkr_records *rs, bool runs, bkr_manifest_list *out, size_t *bad);

/** bkr_repo_foreach_record over the records @p rs, as read then. */
int bkr_records_foreach(const bkr_records *rs, bool newest_first,
			int (*cb)(void *ctx, const char *path, const char *text, size_t len), void *ctx);

/**
 * Load one manifest by its exact id from backups/ (or runs/ when @p run),
 * without listing the others.  Records are not applied.
 */
int bkr_repo_load_manifest(bkr_repo *r, bool run, const char *id, bkr_manifest **out);

/**
 * Resolve an id, a unique prefix, or "latest". BKR_ENOTFOUND / BKR_EAMBIGUOUS.
 * "latest" is the newest backup (run) made by now: one dated in the future
 * (bkr_time_in_future: made while the clock was ahead, it holds older data
 * than those made since) is passed over, as the schedules pass it over,
 * unless every one is.  *@p out is the caller's (bkr_manifest_free).
 */
int bkr_repo_find_backup(bkr_repo *r, const char *spec, bkr_manifest **out);
int bkr_repo_find_run(bkr_repo *r, const char *spec, bkr_manifest **out);

/** bkr_repo_find_backup as of @p now_ns, calling @p passed (may be NULL) for
 *  each backup "latest" passed over as dated in the future: also a damaged
 *  manifest (@p damaged true, @p backup_id escaped as a listing's damaged
 *  files are (bkr_text_escape), @p time_ns its id's time, INT64_MAX past
 *  what nanoseconds count, 2262) whose id is dated so,
 *  as it would be passed over if it read (the mount's /latest judges every
 *  backup by its id); a damaged one made by now and named newer than the
 *  backup 'latest' finds is BKR_ECORRUPT (bkr_repo_resolve). */
int bkr_repo_find_backup_at(bkr_repo *r, const char *spec, int64_t now_ns,
			    void (*passed)(void *ctx, const char *backup_id, int64_t time_ns, bool damaged), void *ctx,
			    bkr_manifest **out);

/**
 * Publish a manifest (never replaces): backups/ or runs/ by its type.  This
 * and add_record refuse a repository open read-only or with an unknown
 * ro_compat feature (BKR_EUNSUPPORTED), as bkr_writer_new does.
 */
int bkr_repo_publish_manifest(bkr_repo *r, const bkr_manifest *m);

/** Append a record (sealed JSON object text without "sha256"; @p kind names it). */
int bkr_repo_add_record(bkr_repo *r, const char *json_object);

/**
 * Append a record of backup @p backup_id: @p kind "pin", "unpin", "tag" or
 * "untag", with the time of now and, when both are given, @p key ("until",
 * "tag") set to @p value; logged as an event of @p kind.
 */
int bkr_repo_add_backup_record(bkr_repo *r, const char *kind, const char *backup_id, const char *key, const char *value);

struct cJSON;
/** bkr_repo_add_record of the object @p o, which it takes (freed, also on an
 *  error; NULL: out of memory, as cJSON_CreateObject's failure). */
int bkr_repo_add_record_obj(bkr_repo *r, struct cJSON *o);

/**
 * Every record of @p r, oldest first (newest first with @p newest_first), to
 * @p cb with its path (for messages) and its text (checksum not yet checked).
 * A return >0 from @p cb stops (0 is returned); <0 stops and is returned.
 * Records that vanish meanwhile are skipped.
 */
int bkr_repo_foreach_record(bkr_repo *r, bool newest_first,
			    int (*cb)(void *ctx, const char *path, const char *text, size_t len), void *ctx);

#endif
