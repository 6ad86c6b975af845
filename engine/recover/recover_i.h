/** @file
 * Private declarations shared by the files of engine/recover/: the parsed
 * rules, the engine struct, the strategy interface, path safety helpers and
 * the process runner.  Nothing here is part of the public API.
 */
#ifndef BKR_RECOVER_I_H
#define BKR_RECOVER_I_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "bkr/catalog.h"
#include "bkr/digest.h"
#include "bkr/hash.h"
#include "bkr/recover.h"
#include "bkr/walk.h"

/** Largest file a strategy that holds its copy in memory (git, mongodb) recovers. */
#define BKR_REC_MAX_FILE (512u << 20)
/** Copies larger than this are kept in an unlinked scratch file and mapped, not in memory. */
#define BKR_REC_MAP_MIN (16u << 20)
/** Most captures one pattern may have. */
#define BKR_REC_MAX_CAPTURES 8
/** Default command timeout (regenerate, validators, alert), ms. */
#define BKR_REC_DEFAULT_TIMEOUT_MS 60000
/** Prefix of temporaries written into the workspace by apply. */
#define BKR_REC_TMP_PREFIX ".bkr-recover-"

/** One strategy entry of a rule. */
typedef struct {
	bkr_strategy_type type;
	char *key;              /**< "recovery.rules[0].strategies[1]" (messages) */
	int64_t max_age_s;      /**< 0 = any age */
	int64_t timeout_ms;     /**< regenerate, manual (alert command) */
	bool timeout_set;       /**< "timeout" given (manual: else recovery.alert_timeout) */
	char **argv;            /**< regenerate: command; manual: alert command (NULL = default) */
	size_t argc;
	/* git */
	char *git_repository;   /**< NULL = discover from the workspace */
	char *git_ref;          /**< default "HEAD" */
	char *git_prefix;       /**< workspace path inside the repository; NULL = computed */
	int64_t git_max_commits;
	/* mongodb */
	char *uri, *database, *collection;
	char *filter;           /**< JSON object text with "{capture}" placeholders in strings */
	char *sort, *projection; /**< JSON object text or NULL */
	bool as_array;          /**< output an array of every document found */
	int64_t limit;          /**< array mode: most documents (0 = no limit) */
	int32_t server_selection_timeout_ms, socket_timeout_ms, connect_timeout_ms;
} bkr_rec_strategy;

typedef struct {
	char *pattern;
	bkr_rec_strategy *strategies;
	size_t n;
} bkr_rec_rule;

typedef enum { BKR_VALIDATE_JSON, BKR_VALIDATE_NONEMPTY, BKR_VALIDATE_COMMAND } bkr_validator_type;

typedef struct {
	char *pattern;
	bkr_validator_type type;
	char **argv;             /**< command: "{path}" is the file to check */
	size_t argc;
	int64_t timeout_ms;
} bkr_rec_validator;

struct bkr_recover_rules {
	bkr_rec_rule *rules;
	size_t nrules;
	bkr_rec_rule fallback;       /**< "default_strategies" (default: backup, git? no: backup, manual) */
	bkr_rec_validator *validators;
	size_t nvalidators;
	bool json_default;           /**< "*.json" files are checked as JSON (default true) */
	char **required;             /**< workspace-relative */
	size_t nrequired;
	char **protected_patterns;
	size_t nprotected;
	char **alert;                /**< NULL-terminated argv or NULL */
	size_t nalert;
	int64_t alert_timeout_ms;
	char *staging_dir;
};

typedef struct {
	char *name;
	char *path;
	int priority;
} bkr_rec_source;

struct bkr_recover {
	char *workspace;             /**< absolute, no trailing '/' */
	char *workspace_real;        /**< realpath of it (for git prefixes) */
	char *config_name;
	bkr_recover_rules *rules;
	bkr_rec_source *sources;
	size_t nsources;
	char **required;             /**< workspace-relative, merged */
	size_t nrequired;
	char **protected_patterns;   /**< merged */
	size_t nprotected;
	char **alert;                /**< NULL-terminated, merged */
	char *staging_dir;
	char *hostname;
	bkr_repo *repo;              /**< borrowed, may be NULL */
	char *scratch;               /**< private temp directory (created lazily) */
	bool root_known;             /**< root_dev/root_ino: the workspace directory the scan saw */
	uint64_t root_dev, root_ino;
	bkr_manifest_list *listing;  /**< every backup of the repository, listed once (bkr_rec_listing) */
	bkr_manifest_list *backups;  /**< this workspace's backups (bkr_rec_backups): its items
				       are borrowed from listing */
	unsigned backups_held;       /**< bkr_rec_backups_hold depth */
	bkr_walk_dirs *dirs;         /**< the backups' directories lookups met (bkr_rec_lookup),
				       kept with the lists */
	bkr_progress_fn progress;    /**< bkr_recover_set_progress, or NULL */
	void *progress_ctx;
};

/** Captures of a pattern match: {name} -> value. */
typedef struct {
	size_t n;
	char name[BKR_REC_MAX_CAPTURES][64];
	char value[BKR_REC_MAX_CAPTURES][256];
} bkr_rec_captures;

/* ---- rules.c ---- */

/** Match @p rel against @p pattern ('*', '?', '**', "{name}"); fills @p caps when non-NULL. */
bool bkr_rec_match(const char *pattern, const char *rel, bkr_rec_captures *caps);
/** Protected-pattern match (fnmatch semantics of bkr_config_match). */
bool bkr_rec_glob_any(char *const *patterns, size_t n, const char *rel);
/** The rule for @p rel (first match) or the fallback; @p caps filled. */
const bkr_rec_rule *bkr_rec_rule_for(const bkr_recover_rules *r, const char *rel, bkr_rec_captures *caps);
/** Replace {path}, {output}, {workspace}, {rel} and captures in @p tmpl; malloc'd. */
char *bkr_rec_substitute(const char *tmpl, const bkr_rec_captures *caps, const char *path,
			 const char *output, const char *workspace, const char *rel);
/** Parse "30s", "5m", "7d", a number of seconds; -1 when invalid. */
int64_t bkr_rec_parse_duration(const char *s);

/* ---- paths (recover.c) ---- */

/** Normalise a user path into a workspace-relative one (rejects escapes); *out malloc'd. */
int bkr_rec_relpath(const bkr_recover *rc, const char *path, char **out);
/** true when @p rel is a clean relative path (no "", ".", ".." components, not absolute). */
bool bkr_rec_rel_ok(const char *rel);
/**
 * Open the parent directory of @p rel under @p rootfd, each component with
 * O_NOFOLLOW|O_DIRECTORY; missing directories are created when @p create.
 * *dirfd is the parent, *base points into @p rel at the last component.
 */
int bkr_rec_open_parent(int rootfd, const char *rel, bool create, int *dirfd, const char **base,
			const char *what);
/**
 * Open the workspace root directory as *fd.  The first call after
 * bkr_rec_root_forget (a scan) records which directory it is; later calls
 * refuse (BKR_EINVAL, one line) when the path now leads to another
 * directory (the root or a parent of it was replaced, e.g. by a symlink).
 */
int bkr_rec_root_open(bkr_recover *rc, int *fd);
/** A new scan: the next bkr_rec_root_open records the root again. */
void bkr_rec_root_forget(bkr_recover *rc);
/** Fill @p d's "scanned" record from @p st. */
void bkr_rec_scanned_set(bkr_damage *d, const struct stat *st);
/** true when @p st is still the file @p d's scan saw (same inode, size, mtime and ctime). */
bool bkr_rec_scanned_same(const bkr_damage *d, const struct stat *st);
/** Returned by bkr_rec_read_ws/bkr_rec_read_at for a file that changed while it was read. */
#define BKR_REC_CHANGED BKR_EEXISTS
/**
 * Read a workspace file without following symlinks, with read(2), never a
 * mapping of the live file; BKR_ENOTFOUND when absent, BKR_REC_CHANGED
 * (message set) when its size, mtime or ctime changed while it was read.
 * A large copy is kept in a private scratch file and mapped (*mapped):
 * release with bkr_rec_data_free.  @p st (may be NULL) gets the file's stat.
 */
int bkr_rec_read_ws(bkr_recover *rc, const char *rel, uint8_t **data, size_t *len, bool *mapped,
		    struct stat *st);
/** bkr_rec_read_ws of @p base in the open directory @p dir. */
int bkr_rec_read_at(bkr_recover *rc, int dir, const char *base, const char *rel, uint8_t **data, size_t *len,
		    bool *mapped, struct stat *st);
/**
 * bkr_rec_read_at that also feeds the bytes read to @p dg (may be NULL; reset
 * it before each call): the content digest of the copy, computed while the
 * file is read, so that scan --deep does not read the file again.
 */
int bkr_rec_read_at_digest(bkr_recover *rc, int dir, const char *base, const char *rel, uint8_t **data,
			   size_t *len, bool *mapped, struct stat *st, bkr_digest *dg);
/** Open an unlinked scratch file for a copy of @p len bytes (holes read as zeros). */
int bkr_rec_scratch_file(bkr_recover *rc, uint64_t len, int *fd);
/** Map the first @p len bytes of @p fd read-only (a copy too large for memory). */
int bkr_rec_map(int fd, size_t len, const char *what, uint8_t **out);
/** free() or munmap() a copy. */
void bkr_rec_data_free(uint8_t *data, size_t len, bool mapped);
/** lstat of a workspace path without following symlinks; BKR_ENOTFOUND when absent. */
int bkr_rec_lstat_ws(bkr_recover *rc, const char *rel, struct stat *st);
/** Private scratch directory of the engine (created on first use). */
int bkr_rec_scratch(bkr_recover *rc, const char **dir);
/** Source priority of @p rel. */
int bkr_rec_priority(const bkr_recover *rc, const char *rel);
/** malloc'd copy; NULL on OOM. */
char *bkr_rec_strdup(const char *s);
/** Milliseconds since an arbitrary point (CLOCK_MONOTONIC). */
int64_t bkr_rec_now_ms(void);

/* ---- validate.c ---- */

/**
 * Check @p data (the content of @p rel) with the validators matching @p rel.
 * Returns 1 valid, 0 invalid (*why malloc'd), <0 error.  @p nonempty adds a
 * "must not be empty" check.
 */
int bkr_rec_validate(bkr_recover *rc, const char *rel, const uint8_t *data, size_t len,
		     bool nonempty, char **why);
/**
 * JSON syntax (RFC 8259) of @p len bytes, with no nesting limit: 1 valid, 0
 * invalid (*err_off = offset of the first error), BKR_ENOMEM.
 */
int bkr_rec_json_check(const uint8_t *data, size_t len, size_t *err_off);
/** true when at least one validator applies to @p rel. */
bool bkr_rec_has_validator(const bkr_recover *rc, const char *rel);

/* ---- proc.c ---- */

typedef struct {
	int status;         /**< waitpid status */
	bool timed_out;
	char *output;       /**< the last 4 KiB (at most) of stdout+stderr, malloc'd (may be NULL), NUL-terminated */
	size_t output_len;  /**< ... its length: the output may hold NUL bytes of its own */
} bkr_rec_proc;

/**
 * Run @p argv (execvp, no shell) in its own process group with @p input on
 * stdin, stdout+stderr captured, killed (whole group) after @p timeout_ms.
 * Returns 0 when it ran (look at *res), <0 when it could not be started.
 */
int bkr_rec_spawn(char *const *argv, const void *input, size_t input_len, int64_t timeout_ms,
		  bkr_rec_proc *res);
void bkr_rec_proc_free(bkr_rec_proc *p);
/**
 * One line describing a finished process ("exited with status 3: <output>"):
 * the last non-empty line of its output (at most 300 bytes), a NUL byte in it
 * written as U+2400 (a C string ends at a NUL); malloc'd.
 */
char *bkr_rec_proc_describe(const char *name, const bkr_rec_proc *p, int64_t timeout_ms);

/* ---- strategies ---- */

/** The most alert commands a run remembers as having timed out (bkr_rec_hung). */
#define BKR_REC_HUNG_MAX 8

/**
 * The alert commands of the manual strategy that timed out in one run, and
 * the file each timed out on: such a command is not run again in the run
 * (a hung one would cost its timeout for every file a person is asked
 * about: 200 files, 200 minutes).  Owned by the run; paths malloc'd.
 */
typedef struct {
	char *const *cmd[BKR_REC_HUNG_MAX]; /**< the command's template (the strategy's or rc->alert) */
	char *path[BKR_REC_HUNG_MAX];       /**< ... the file it timed out on */
	size_t n;
} bkr_rec_hung;

/** What a strategy is asked to do. */
typedef struct {
	bkr_recover *rc;
	const char *rel;                 /**< workspace-relative path */
	const char *abs;                 /**< absolute path in the workspace */
	const bkr_rec_strategy *s;
	const bkr_rec_captures *caps;
	bool nonempty;                   /**< the recovered copy must not be empty */
	const char *reason;              /**< damage reason (manual) */
	const char *kind;                /**< damage kind name (manual) */
	cJSON *attempts;                 /**< attempts so far (manual puts them in the alert) */
	const char *run_id;
	bool dry_run;                    /**< no side effects (manual: no alert sent) */
} bkr_rec_job;

/** What a strategy produced. */
typedef struct {
	uint8_t *data;       /**< valid content (malloc'd) on success */
	size_t len;
	bool mapped;         /**< data is mapped from a scratch file (bkr_rec_data_free) */
	char *link;          /**< or: a symlink's target (malloc'd) on success */
	uint32_t mode;       /**< permission bits of the source copy, 0 = unknown */
	bool recorded;       /**< mode, uid and gid are the file's recorded ones (a backup's copy) */
	uint32_t uid, gid;
	int64_t mtime_ns;    /**< time of the source copy, 0 = now */
	cJSON *source;       /**< description of where it came from (always set when possible) */
	char *error;         /**< why it failed (malloc'd) */
	char **alert;        /**< manual: the alert command line to run at the end of the run (malloc'd,
				  NULL-terminated), for this file and the others of the same line */
	char *const *alert_tmpl; /**< ... its template (bkr_rec_hung) */
	int64_t alert_timeout_ms;
} bkr_rec_outcome;

void bkr_rec_outcome_clear(bkr_rec_outcome *o);
/** Set o->error from a format; returns @p code. */
int bkr_rec_fail(bkr_rec_outcome *o, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

int bkr_rec_try_backup(const bkr_rec_job *j, bkr_rec_outcome *o);
int bkr_rec_try_git(const bkr_rec_job *j, bkr_rec_outcome *o);
int bkr_rec_try_mongodb(const bkr_rec_job *j, bkr_rec_outcome *o);
/**
 * A MongoDB URI as the report shows it (malloc'd, NULL when out of memory):
 * scheme://hosts/database?options without the userinfo, the values of options
 * whose names look secret (pass, key, secret, token, auth, ...) as "***", and
 * nothing but the scheme when the URI is not well-formed.
 */
char *bkr_rec_mongo_uri_shown(const char *uri);
int bkr_rec_try_regenerate(const bkr_rec_job *j, bkr_rec_outcome *o);
/**
 * The manual strategy.  Not a dry run, with an alert command: it runs no
 * command but hands its command line to the run (o->alert), which sends one
 * alert at its end for every file of that line (bkr_rec_manual_send).
 */
int bkr_rec_try_manual(const bkr_rec_job *j, bkr_rec_outcome *o);

/* ---- a run (run.c, apply.c, store.c, report.c) ---- */

/** One file of a run: its damage, what was recovered, what became of it. */
typedef struct {
	bkr_damage d;       /**< copy of the damage (owned) */
	bool healthy;       /**< recover --file on a healthy file: never applied */
	uint8_t *data;      /**< recovered content or NULL */
	size_t len;
	bool mapped;        /**< data is mapped (bkr_rec_data_free) */
	char *link;         /**< or: the recovered symlink's target */
	uint32_t mode;      /**< permission bits, owner and group it gets (bkr_rec_settle) */
	uint32_t uid, gid;
	bool recorded;      /**< they are the backup's record of the file */
	int64_t mtime_ns;
	bkr_id sha;
	cJSON *entry;       /**< the file's report entry (owned by the report) */
	bool applied;
	bool setid_dropped; /**< applied without the set-ID bits of mode (its owner could not be set) */
	int owner_errno;    /**< root's chown to uid:gid was refused (errno); applied as ours */
} bkr_rec_file;

/**
 * One alert of a run's manual strategy: the files whose alert command line
 * is the same (a command that names {path} is one line a file), each with
 * its manual attempt in the report.  Owned by the run.
 */
typedef struct {
	char **argv;            /**< the command line (malloc'd, NULL-terminated) */
	char *const *tmpl;      /**< its template (the strategy's or rc->alert) */
	int64_t timeout_ms;
	bkr_rec_file **files;   /**< the files it is about, in the run's order */
	cJSON **attempts;       /**< ... each one's manual attempt (owned by the report) */
	size_t n;
} bkr_rec_alert;

/**
 * Send alert @p a of run @p run_id (the report's: never NULL): one
 * bkr.recovery.manual description on the command's stdin naming every file
 * (docs/recovery.md), unless its command timed out earlier in the run
 * (@p hung, which a time-out here joins).  0 when delivered; else an error whose message says why (*why,
 * malloc'd), BKR_ENOMEM alone stopping the run.
 */
int bkr_rec_manual_send(bkr_recover *rc, const char *run_id, const bkr_rec_alert *a, bkr_rec_hung *hung, char **why);

struct bkr_recover_report {
	char run_id[96];
	int64_t time_ns;
	cJSON *root;
	cJSON *files;       /**< the report's "files" array */
	cJSON *summary;     /**< its "summary" object (filled by bkr_rec_report_finish) */
	cJSON *storage;     /**< its "storage" object */
	char *json;
	char *staged;
	char *store_error;
	bkr_recover_summary sum;
};

/**
 * Make every string under @p node valid UTF-8: a bad byte becomes U+FFFD and
 * an object member gets a "<key>_hex" sibling with the exact bytes (bkr(1)).
 */
int bkr_rec_json_clean(cJSON *node);
/** bkr_rec_json_clean, then print; malloc'd, NULL on OOM. */
char *bkr_rec_json_print(cJSON *root, bool pretty);

/** A new report: run id, header fields, empty "storage", "summary" and "files". */
int bkr_rec_report_new(const bkr_recover *rc, const bkr_recover_options *opts, bkr_recover_report **out);
/** Fill "summary" from rep->sum and "storage" for the repository; *json the printed report. */
int bkr_rec_report_finish(const bkr_recover *rc, bkr_recover_report *rep, int64_t duration_ms, char **json);
/** Set "storage.kind" (and "storage.path" when @p path) and print the report again into *json. */
int bkr_rec_report_restate(bkr_recover_report *rep, const char *kind, const char *path, char **json);

/** A recovered copy's content or target is there. */
static inline bool bkr_rec_has_copy(const bkr_rec_file *f)
{
	return f->data || f->link;
}

/**
 * Decide the mode, owner and group @p f gets when it is not the backup's
 * record: those of the file it replaces, else its directory's owner (and
 * the strategy's mode or 0644).  Never set-ID: true when the file it
 * replaces is and its set-ID bits were left out.
 */
bool bkr_rec_settle(bkr_recover *rc, bkr_rec_file *f);
/**
 * Give the object open as @p fd (O_PATH for a symlink, whose mode is left)
 * owner @p uid, group @p gid and then @p mode.  A chown that cannot be
 * done (not root: EPERM; an id the user namespace does not map: EINVAL)
 * leaves the object ours and is no error, but then a set-ID bit of @p mode
 * whose owner or group it does not have is not set (it would be set-ID us;
 * bkr_entry_setid_allowed, as bkr restore does): *@p setid_dropped is set
 * when it is not NULL.  Run as root (root without CAP_CHOWN, NFS
 * root_squash, a user namespace), a refused chown is no error either, as in
 * bkr restore, but *@p owner_errno (when not NULL) gets its errno, for a
 * warning.  @p what names it in errors.
 */
int bkr_rec_set_attrs(int fd, bool link, uint32_t uid, uint32_t gid, uint32_t mode, const char *what,
		      bool *setid_dropped, int *owner_errno);

/**
 * Say in @p f's report entry, once, that a copy of it was given no set-ID
 * bits because its owner could not be set (@p setid_dropped: "setid_dropped")
 * and that root's chown was refused (@p owner_errno: "owner_error"); for
 * the applied copy and the staged one alike.
 */
void bkr_rec_note_attrs(bkr_rec_file *f, bool setid_dropped, int owner_errno);

/**
 * The same for directory @p dir, made above @p f by its apply with owner
 * @p uid:@p gid: an object {"path", "setid_dropped", "owner_error"} in the
 * entry's "parent_dirs" (nothing when neither applies).
 */
void bkr_rec_note_parent(bkr_rec_file *f, const char *dir, uint32_t uid, uint32_t gid, bool setid_dropped,
			 int owner_errno);

/**
 * Write @p f's recovered copy over the workspace file under @p root (the
 * workspace directory, from bkr_rec_root_open), atomically and without
 * following symlinks, after checking the target is still what the scan saw.
 * Returns 0 (f->applied, or *why says why nothing was needed) or <0; *why is
 * malloc'd or NULL.
 */
int bkr_rec_apply(bkr_recover *rc, int root, bkr_rec_file *f, char **why);

/** What a file of mode @p mode is, for messages: "a directory", "a symlink", "a FIFO", ... */
const char *bkr_rec_type_name(mode_t mode);

/**
 * Hold the workspace @p root (the directory from bkr_rec_root_open) for a
 * run that writes into it, until @p root is closed: flock(2) of the
 * directory, shared by runs applying at once.  A run that finds no other
 * holding it first removes the named temporaries (BKR_REC_TMP_PREFIX and 16
 * hex digits, regular files and symlinks) a dead run left anywhere in the
 * workspace.
 * Says so in @p report's "stale_temporaries": "removed" (their paths) and
 * "error" (why they were not looked for, or the first that stayed).
 */
void bkr_rec_workspace_hold(int root, cJSON *report);

/**
 * Store a run in the repository: the recovered files @p files (sorted by
 * path) as a tree, @p report_json as the data blob of the manifest's "report".
 */
int bkr_rec_store_repo(bkr_recover *rc, const bkr_recover_report *rep, bkr_rec_file **files, size_t n,
		       const char *report_json, double duration_s);
/**
 * Stage a run in <staging_dir>/<run_id>/ (files/ and report.json) when the
 * repository could not be written; *json_io is replaced by the report saying so.
 */
int bkr_rec_store_staged(bkr_recover *rc, bkr_recover_report *rep, bkr_rec_file **files, size_t n,
			 char **json_io);

/* ---- backup.c helpers used by scan ---- */

/**
 * The backups recovery compares with and recovers from, oldest first: those
 * of this host (bkr_backup_of_host, as create picks a parent) that are not
 * dated in the future (bkr_time_in_future, as the schedules, retention and
 * health judge them), taken from bkr_recover_backups' listing.  Listed once
 * and kept while held (a run, a scan), so that every file of a run does not
 * read every manifest again.  *out is owned by @p rc; an empty list without
 * a repository.
 */
int bkr_rec_backups(bkr_recover *rc, const bkr_manifest_list **out);
/** Most directories of the backups a run keeps open for its lookups (bkr_walk_dirs). */
#define BKR_REC_DIRS_MAX 1024
/**
 * Look @p bpath up in backup @p m as bkr_walk_resolve does, through the
 * directories the engine keeps while the backups are held: a run looks up
 * every file in the same few directories.  *e, *leaf and *li are valid
 * until the next lookup.
 */
int bkr_rec_lookup(bkr_recover *rc, const bkr_manifest *m, const char *bpath, bkr_entry *e,
		   const bkr_tree **leaf, uint32_t *li);
/** Keep the lists of bkr_rec_backups and bkr_recover_backups until the matching release (nests). */
void bkr_rec_backups_hold(bkr_recover *rc);
/** Drop them at the last release (the next call lists the repository again). */
void bkr_rec_backups_release(bkr_recover *rc);
/** Drop the view of bkr_rec_backups only (the host changed); the listing stays while held. */
void bkr_rec_backups_refilter(bkr_recover *rc);

/** A regular file of a backup, mapped to the workspace. */
typedef struct {
	char *rel;
	bool link;             /**< a symlink (else a regular file) */
	const char *backup_id; /**< the backup it was found in (owned by the index) */
	size_t seq;            /**< order of discovery: newer backups first */
	uint64_t size;
	int64_t mtime_ns;
	uint32_t mode;
	bkr_id content;
	bool sparse_digest;  /**< content is the sparse form (bkr/digest.h) */
	bool seen;
} bkr_rec_bfile;

typedef struct {
	bkr_rec_bfile *items; /**< sorted by rel */
	size_t n;
	char *backup_id;      /**< the newest backup */
	char **ids;           /**< every backup the files come from */
	size_t nids;
} bkr_rec_bindex;

/**
 * Every regular file under the workspace of the newest backup that holds its
 * source: each source's files come from the newest backup of that source (a
 * backup of one source does not hide the others); empty when none.
 */
int bkr_rec_bindex_load(bkr_recover *rc, bkr_rec_bindex *out);
bkr_rec_bfile *bkr_rec_bindex_find(const bkr_rec_bindex *bi, const char *rel);
void bkr_rec_bindex_free(bkr_rec_bindex *bi);

/**
 * Mode and owner for directory @p rel of a recovered file: the live
 * workspace directory's (unless @p backup_only), else the newest backup's
 * copy of it; BKR_ENOTFOUND when neither has it.
 */
int bkr_rec_dir_attrs(bkr_recover *rc, const char *rel, bool backup_only, uint32_t *mode, uint32_t *uid,
		      uint32_t *gid);

/** Damage of one file as scan sees it (used by recover --file); 1 damaged, 0 healthy. */
int bkr_rec_check_one(bkr_recover *rc, const bkr_rec_bindex *bi, const char *rel, bool deep,
		      bkr_damage *out);

#endif
