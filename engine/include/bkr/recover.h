/** @file
 * The recovery engine (docs/recovery.md): scan a live workspace
 * for missing, corrupted and required-but-absent files, recover them with
 * configured strategies (backup, git, mongodb, regenerate, manual), store
 * every attempt as a recovery run in the repository (or stage it in a local
 * directory when the repository cannot be written) and, with apply, write the
 * recovered files back into the workspace atomically.
 *
 * Typical use by the CLI:
 *
 *     bkr_recover *rc;
 *     bkr_recover_from_config(&rc, cfg, repo);            // repo may be NULL
 *     bkr_scan_result scan = BKR_SCAN_RESULT_INIT;
 *     bkr_recover_scan(rc, deep ? BKR_SCAN_DEEP : 0, &scan);
 *     char *json = bkr_scan_result_to_json(&scan, true);
 *     ...
 *     bkr_recover_options o = BKR_RECOVER_OPTIONS_INIT;
 *     o.apply = true;
 *     bkr_recover_report *rep;
 *     bkr_recover_batch(rc, &o, &rep);                    // or bkr_recover_file()
 *     bkr_recover_report_summary(rep)->...; bkr_recover_report_json(rep)
 *     bkr_recover_report_free(rep); bkr_scan_result_free(&scan); bkr_recover_free(rc);
 *
 * Paths given to and returned by this module are relative to the workspace
 * root ("conversations/a.json"); an absolute path inside the workspace is
 * accepted as input too.  A path that leaves the workspace ("..", an absolute
 * path elsewhere, a symlink pointing out) is BKR_EINVAL.
 *
 * A run's report is stored as a data blob referenced by the run manifest
 * (m->report); the run's tree holds only the recovered files, at their
 * workspace-relative paths.  The mount shows the report as
 * /recovered/<run_id>/report.json by reading m->report.
 *
 * A bkr_recover is used by one thread at a time.
 */
#ifndef BKR_RECOVER_H
#define BKR_RECOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bkr/config.h"
#include "bkr/hash.h"
#include "bkr/progress.h"
#include "bkr/repo.h"

/* ---- rules (the "recovery" section of the configuration) --------------- */

/** The strategies, in their default order. */
typedef enum {
	BKR_STRATEGY_BACKUP = 0,
	BKR_STRATEGY_GIT,
	BKR_STRATEGY_MONGODB,
	BKR_STRATEGY_REGENERATE,
	BKR_STRATEGY_MANUAL,
	BKR_STRATEGY_COUNT
} bkr_strategy_type;

/** "backup", "git", "mongodb", "regenerate", "manual". */
const char *bkr_strategy_name(bkr_strategy_type t);
/** BKR_EINVAL naming @p s when it is not a strategy name. */
int bkr_strategy_parse(const char *s, bkr_strategy_type *out);

/** Parsed "recovery" section (opaque; see docs/recovery.md for the keys). */
typedef struct bkr_recover_rules bkr_recover_rules;

/**
 * Parse the raw JSON text of the "recovery" object (NULL or "" = defaults).
 * @p what names the file in messages ("bkr.json").  Errors are BKR_EINVAL
 * naming the exact key ("bkr.json: recovery.rules[2].strategies[0].timeout:
 * expected a number or a duration").
 */
int bkr_recover_rules_parse(bkr_recover_rules **out, const char *json, const char *what);
void bkr_recover_rules_free(bkr_recover_rules *r);

/* ---- the engine --------------------------------------------------------- */

typedef struct bkr_recover bkr_recover;

/** One source, for priorities and for mapping backup trees to the workspace. */
typedef struct {
	const char *name;      /**< the source's directory name in backup trees */
	const char *path;      /**< absolute path it is backed up from */
	int priority;          /**< higher = recovered first */
} bkr_recover_source;

/**
 * Everything the engine needs, without a bkr_config (tests, other callers).
 * All pointers are borrowed for the duration of bkr_recover_new (copied).
 */
typedef struct {
	int version;
	const char *workspace;              /**< absolute workspace root (required) */
	const char *recovery_json;          /**< raw "recovery" section or NULL */
	const char *config_name;            /**< for messages; NULL = "config" */
	const bkr_recover_source *sources;  /**< may be empty: one source "workspace" = workspace */
	size_t nsources;
	char *const *required_files;        /**< absolute or workspace-relative; added to the section's */
	size_t nrequired_files;
	char *const *protected_patterns;    /**< globs relative to the workspace; 0 = {"*"} unless the section names some */
	size_t nprotected_patterns;
	char *const *alert_command;         /**< argv (NULL-terminated) for manual; NULL = section's or none */
	const char *staging_dir;            /**< where runs are staged when the repository fails; NULL = section's or default */
	const char *hostname;               /**< NULL = gethostname() */
} bkr_recover_setup;
#define BKR_RECOVER_SETUP_VERSION 1
#define BKR_RECOVER_SETUP_INIT { BKR_RECOVER_SETUP_VERSION, NULL, NULL, NULL, NULL, 0, NULL, 0, NULL, 0, NULL, NULL, NULL }

/**
 * Create an engine.  @p repo (borrowed, may be NULL: no backup strategy, no
 * missing-file detection, runs are staged) must outlive the engine.
 * BKR_EINVAL for a bad setup or recovery section (message names the key).
 */
int bkr_recover_new(bkr_recover **out, const bkr_recover_setup *setup, bkr_repo *repo);

/** The same from a loaded configuration (its recovery_json, sources, required files, ...). */
int bkr_recover_from_config(bkr_recover **out, const bkr_config *cfg, bkr_repo *repo);

/**
 * The host whose backups the engine compares with and recovers from
 * (bkr_backup_of_host; default the setup's hostname, else gethostname()):
 * `bkr scan/recover/batch --host NAME` for a workspace backed up with
 * `bkr create --host NAME`.
 */
int bkr_recover_set_host(bkr_recover *rc, const char *hostname);
/** The host bkr_recover_set_host set (or the default); borrowed. */
const char *bkr_recover_host(const bkr_recover *rc);

/**
 * Report the progress of @p rc's scans and runs to @p fn (NULL: none),
 * now and then: step "scanning", items "files" checked (no total: the
 * workspace is walked), with BKR_SCAN_DEEP also the bytes of the files
 * hashed (no total), and once at the end of the walk with its counts; then
 * step "recovering", items "files", done of the run's total, after each
 * file.  @p ctx is borrowed.
 */
void bkr_recover_set_progress(bkr_recover *rc, bkr_progress_fn fn, void *ctx);

/**
 * Every backup of the repository, oldest first, as bkr_repo_list gives it
 * (all hosts and workspaces, and those dated in the future): the listing
 * the engine takes the backups it compares with and recovers from out of
 * (this host's, not dated in the future).  An empty list without a
 * repository.  *out is owned by @p rc.  Between bkr_recover_hold_backups
 * and bkr_recover_release_backups the scans and runs of @p rc use this same
 * listing, so that a caller that looks at it first (the CLI's warnings
 * about backups that do not count) costs no second reading of every
 * manifest; otherwise the next scan or run lists the repository again.
 */
int bkr_recover_backups(bkr_recover *rc, const bkr_manifest_list **out);
/** Keep the listing of bkr_recover_backups until the matching release (nests; bkr_recover_free releases). */
void bkr_recover_hold_backups(bkr_recover *rc);
void bkr_recover_release_backups(bkr_recover *rc);

void bkr_recover_free(bkr_recover *rc);

/* ---- scan ---------------------------------------------------------------- */

/** What is wrong with a file. */
typedef enum {
	BKR_DAMAGE_MISSING = 0,   /**< in the newest backup, protected, absent now */
	BKR_DAMAGE_REQUIRED,      /**< a required file that does not exist */
	BKR_DAMAGE_INVALID,       /**< a validator rejects it (bad JSON, empty, command failed) */
	BKR_DAMAGE_TRUNCATED,     /**< size 0 now, the backup copy had data */
	BKR_DAMAGE_SILENT,        /**< size and mtime as in the backup, content hash differs (deep) */
} bkr_damage_kind;

/** "missing", "required", "invalid", "truncated", "silent". */
const char *bkr_damage_name(bkr_damage_kind k);

typedef struct {
	char *path;            /**< workspace-relative, owned */
	bkr_damage_kind kind;
	char *reason;          /**< one line ("not valid JSON: line 3 column 7"), owned */
	int priority;          /**< of the source the file belongs to */
	/** The file as the scan saw it (apply refuses a file that no longer matches). */
	struct {
		bool seen;         /**< it existed (false: absent, or not recorded) */
		uint64_t dev, ino, size;
		int64_t mtime_ns, ctime_ns;
		bool root;         /**< root_dev/root_ino: the workspace directory the scan looked in */
		uint64_t root_dev, root_ino;
	} scanned;
	/** The backup whose copy the scan compared with ("" when none holds the
	 * file), and that copy's size: where its last good copy is (bkr/hold.h). */
	char backup_id[96];
	uint64_t backup_size;
} bkr_damage;

/** A workspace directory the scan did not look into (named, never silent). */
typedef struct {
	char *path;            /**< workspace-relative ("." for the root), owned */
	char *reason;          /**< one line, owned */
} bkr_scan_skipped;

typedef struct {
	bkr_damage *items;     /**< sorted: priority desc, then kind, then path */
	size_t n;
	char *backup_id;       /**< newest backup compared with, or NULL */
	uint64_t files_checked;
	bool deep;
	bkr_scan_skipped *skipped; /**< directories not scanned, in walk order */
	size_t nskipped;
} bkr_scan_result;
#define BKR_SCAN_RESULT_INIT { NULL, 0, NULL, 0, false, NULL, 0 }

enum { BKR_SCAN_DEEP = 1 };

/** Directories deeper than this below the workspace root are not scanned (each one named). */
#define BKR_SCAN_MAX_DEPTH 256

/**
 * Scan the workspace (flags: BKR_SCAN_DEEP).  Quick: stat, and validators for
 * files that have one; missing and truncated files are found by comparing
 * with the newest backup's tree.  Deep: also hash every file that a backup
 * has and report BKR_DAMAGE_SILENT.  @p out must be BKR_SCAN_RESULT_INIT or
 * freed; out->n > 0 means something was found.  A directory the scan could
 * not look into - more than BKR_SCAN_MAX_DEPTH levels deep, its path longer
 * than 4095 bytes, or one that would not open - is listed in out->skipped
 * (nskipped > 0: the workspace was not checked whole).
 */
int bkr_recover_scan(bkr_recover *rc, unsigned flags, bkr_scan_result *out);
void bkr_scan_result_free(bkr_scan_result *r);
/** {"backup_id":..,"deep":..,"files_checked":N,"found":N,"files":[{"path","kind","reason","priority"}],
 * "skipped":[{"path","reason"}]}; malloc'd. */
char *bkr_scan_result_to_json(const bkr_scan_result *r, bool pretty);

/* ---- recover ------------------------------------------------------------- */

typedef struct {
	int version;
	bool apply;              /**< write recovered files into the workspace */
	bool force_strategy;     /**< only try @p strategy */
	bkr_strategy_type strategy;
	bool deep;               /**< batch: deep scan */
	bool no_store;           /**< do not store the run anywhere (tests) */
	/** batch: each directory its scan did not look into (bkr_scan_skipped); optional */
	void (*skipped)(void *ctx, const char *path, const char *reason);
	void *skipped_ctx;
} bkr_recover_options;
#define BKR_RECOVER_OPTIONS_VERSION 1
#define BKR_RECOVER_OPTIONS_INIT { BKR_RECOVER_OPTIONS_VERSION, false, false, BKR_STRATEGY_BACKUP, false, false }

typedef struct bkr_recover_report bkr_recover_report;

typedef struct {
	const char *run_id;      /**< borrowed from the report */
	size_t files;            /**< damaged files handled */
	size_t recovered;        /**< a strategy produced a valid file */
	size_t applied;          /**< written into the workspace */
	size_t manual;           /**< recorded as needing a person (not counted in failed) */
	size_t failed;           /**< nothing worked and no person was asked, or apply refused */
	bool stored;             /**< stored in the repository */
	const char *staged_dir;  /**< non-NULL when staged locally instead (borrowed) */
	const char *store_error; /**< why the repository could not be written, or NULL */
} bkr_recover_summary;

/**
 * Recover the files of @p items (e.g. a scan's), most important first,
 * store the run and, with apply, write into the workspace.  Per-file
 * failures are in the report, not in the return value; the return is <0
 * only when the run could be stored nowhere or on OOM.
 */
int bkr_recover_items(bkr_recover *rc, const bkr_damage *items, size_t n,
		      const bkr_recover_options *opts, bkr_recover_report **out);

/**
 * Recover one file.  @p path is workspace-relative or absolute inside the
 * workspace.  Its damage is determined as scan would (a healthy file is
 * still recovered into the run but never applied over).
 */
int bkr_recover_file(bkr_recover *rc, const char *path, const bkr_recover_options *opts,
		     bkr_recover_report **out);

/** Scan then recover everything found (`bkr batch`); a clean scan stores no run. */
int bkr_recover_batch(bkr_recover *rc, const bkr_recover_options *opts, bkr_recover_report **out);

const bkr_recover_summary *bkr_recover_report_summary(const bkr_recover_report *rep);
/** The report.json text (pretty), borrowed from @p rep. */
const char *bkr_recover_report_json(const bkr_recover_report *rep);
void bkr_recover_report_free(bkr_recover_report *rep);

/* ---- listing runs (`bkr recovered [RUN]`) ------------------------------- */

/**
 * JSON array of runs, oldest first: [{"run_id","timestamp","files","recovered",...}].
 * *out malloc'd.  Damaged run manifests are left out and counted in *bad
 * (when not NULL; the last one's message is the error message).
 */
int bkr_recover_list_runs(bkr_repo *repo, char **out, size_t *bad);

/** The report.json of run @p spec (an id, unique prefix or "latest"); *out malloc'd, NUL-terminated. */
int bkr_recover_read_report(bkr_repo *repo, const char *spec, char **out, size_t *len);

#endif
