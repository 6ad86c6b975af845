/** @file
 * The user configuration file (docs/config.md): one JSON object
 * naming the repository, the workspace, its sources, retention, tiers,
 * compression, logging, alerting and recovery rules.
 *
 * Loading checks every key: an unknown key (typo protection), a wrong type or
 * a bad value is BKR_EINVAL with one line naming the file and the exact key
 * path ("bkr.json: key 'sources[0].paths': expected an array of strings").
 * Keys starting with '_' are comments and ignored.  Every option has a
 * default, so {"repository": "...", "workspace_root": "..."} is a complete
 * configuration.
 *
 * After loading every path in the struct is absolute: "repository",
 * "workspace_root", "log_dir" and tier paths resolve against the config
 * file's directory; source "paths" and "required_files" resolve against
 * "workspace_root".  Glob patterns ("excludes", "protected_patterns") stay as
 * written and are matched with bkr_config_match() against paths relative to
 * the workspace root (or to the source path for excludes).
 *
 * A loaded bkr_config is immutable and may be shared between threads.
 */
#ifndef BKR_CONFIG_H
#define BKR_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bkr/manifest.h"
#include "bkr/store.h"

/** Largest config file accepted (bytes). */
#define BKR_CONFIG_MAX_SIZE (4u << 20)

/** The most frequent routine that backs a source up. */
typedef enum {
	BKR_SCHEDULE_HOURLY = 0, /**< hourly, daily and weekly routines (default) */
	BKR_SCHEDULE_DAILY,      /**< daily and weekly routines */
	BKR_SCHEDULE_WEEKLY,     /**< weekly routine only */
	BKR_SCHEDULE_MANUAL,     /**< only an explicit `bkr backup` */
} bkr_schedule;

/** "hourly", "daily", "weekly", "manual". */
const char *bkr_schedule_name(bkr_schedule s);
/** BKR_EINVAL naming @p s when it is not a schedule name. */
int bkr_schedule_parse(const char *s, bkr_schedule *out);

/** One entry of "sources". */
typedef struct {
	char *name;          /**< valid tree entry name, unique among sources */
	char **paths;        /**< absolute paths (default: the workspace root) */
	size_t npaths;       /**< >= 1 */
	char **excludes;     /**< fnmatch globs on paths relative to the source path */
	size_t nexcludes;
	int priority;        /**< higher backs up first; default 0 */
	bkr_schedule schedule; /**< default BKR_SCHEDULE_HOURLY */
} bkr_config_source;

/**
 * One retention policy (applied by bkr/retention.h).  Counts are the number
 * of backups kept per rule (0 = rule off); a backup is kept when any rule
 * keeps it.  Pinned backups and the newest backup of each source are always
 * kept whatever the policy says.  A configuration without a "retention" key
 * gets the seed's default, keep_within 30 days and nothing else; a
 * "retention" object replaces it whole (keys it omits are off).
 */
typedef struct {
	int keep_last;           /**< newest N backups */
	int keep_hourly;         /**< newest backup of each of the last N hours that have one */
	int keep_daily;          /**< ... days */
	int keep_weekly;         /**< ... ISO weeks */
	int keep_monthly;        /**< ... months */
	int keep_yearly;         /**< ... years */
	int64_t keep_within_s;   /**< every backup younger than this (seconds); 0 = off */
} bkr_retention_policy;

/** The policy of a configuration without a "retention" key: keep 30 days. */
extern const bkr_retention_policy bkr_retention_default;

/** "retention": the default policy plus optional overrides per backup type. */
typedef struct {
	bkr_retention_policy policy;               /**< top-level keys */
	bool has_override[BKR_BACKUP_RECOVERY + 1]; /**< indexed by bkr_backup_type */
	/** per-type policies; keys missing in the override inherit from @p policy */
	bkr_retention_policy override[BKR_BACKUP_RECOVERY + 1];
} bkr_config_retention;

/** One colder storage tier ("tiers.warm", "tiers.cold"). */
typedef struct {
	char *path;       /**< absolute directory; NULL = tier not configured (default) */
	int after_days;   /**< packs move here once every referencing backup is this old */
} bkr_config_tier;

/**
 * The "s3" object: how to reach an s3:// repository or tier (docs/s3.md).
 * The environment's AWS_* variables win over these keys.
 */
typedef struct {
	char *access_key_id;     /**< NULL = unset */
	char *secret_access_key;
	char *session_token;
	char *region;
	char *endpoint_url;      /**< "http[s]://HOST[:PORT]" */
	int path_style;          /**< -1 automatic (default), 0 virtual-hosted, 1 path-style */
	int lock_stale_seconds;  /**< 0 = the default (300) */
	int retry_pause_ms;      /**< first pause before a retry; 0 = the default (200) */
	int tune[BKR_S3_NTUNE];  /**< s3.keep_packs ... (bkr_s3_tunables, bkr/store.h); 0 = unset */
} bkr_config_s3;

/** A loaded configuration.  Every string and array is owned by the struct. */
typedef struct {
	char *file;              /**< the config file as given (NULL for bkr_config_default) */
	char *base_dir;          /**< absolute directory relative paths resolved against */
	char *repository;        /**< absolute path; required */
	char *workspace_root;    /**< absolute path; required */
	bkr_config_source *sources; /**< >= 1 (default: one source for the workspace root) */
	size_t nsources;
	bkr_config_retention retention;
	bkr_config_tier warm;    /**< after_days default 7 */
	bkr_config_tier cold;    /**< after_days default 30 */
	int compression_level;   /**< 0..9, default 1: checked, not used (the repository's config.json has the codec and level) */
	char *log_dir;           /**< absolute; default $XDG_STATE_HOME/bkr or ~/.local/state/bkr */
	char *metrics_file;      /**< absolute; Prometheus textfile bkr health and routines write; NULL = none */
	char **alert_command;    /**< argv, NULL-terminated; NULL = no alert hook (default) */
	size_t nalert_command;
	int alert_timeout_s;     /**< alert_command's time limit a run, seconds; 0 = the default, 30 */
	char *recovery_json;     /**< raw JSON text of "recovery" (an object) or NULL; the recovery engine parses it */
	char **required_files;   /**< absolute paths that must exist; default none */
	size_t nrequired_files;
	char **protected_patterns; /**< globs relative to the workspace root; default {"*"} (every file) */
	size_t nprotected_patterns;
	bkr_config_s3 s3;        /**< all unset by default */
} bkr_config;

/**
 * Read and validate the configuration file @p path.  Errors: BKR_ENOTFOUND
 * (no such file), BKR_EIO, BKR_EINVAL (bad JSON with a line:column hint, or a
 * bad key, naming the file and the key path).  *out is NULL on failure.
 */
int bkr_config_load(bkr_config **out, const char *path);

/**
 * The same from a buffer: @p name is used in messages (and kept as ->file),
 * @p base_dir resolves relative paths (NULL = the current directory).
 */
int bkr_config_from_string(bkr_config **out, const char *text, size_t len,
			   const char *name, const char *base_dir);

/**
 * A configuration made of defaults only, for commands given a repository and
 * workspace on the command line.  @p workspace may be NULL (then the
 * workspace root is "/" and there are no sources: nsources == 0).
 */
int bkr_config_default(bkr_config **out, const char *repository, const char *workspace);

/** NULL is a no-op. */
void bkr_config_free(bkr_config *c);

/** The effective retention policy for backups of type @p t (override or default). */
const bkr_retention_policy *bkr_config_retention_for(const bkr_config *c, bkr_backup_type t);

/** Look a source up by name; NULL when absent.  Borrowed from @p c. */
const bkr_config_source *bkr_config_find_source(const bkr_config *c, const char *name);

/**
 * True when the relative path @p rel matches any of @p patterns (fnmatch(3)
 * without FNM_PATHNAME, so '*' also matches '/'; a pattern without a '/' also
 * matches the last component of @p rel, like .gitignore).
 */
bool bkr_config_match(char *const *patterns, size_t n, const char *rel);

/**
 * Parse a duration such as "7d", "12h", "2w", "1y6m" (units s, min, h, d, w,
 * m = 30 days, y = 365 days; terms may be combined) or "0".  BKR_EINVAL
 * naming @p s otherwise.
 */
int bkr_config_parse_duration(const char *s, int64_t *seconds);

/**
 * Parse @p s, the value of a numeric option (bkr's counts, sizes, levels,
 * threads; bkrfs's -o uid=, cache_size=...), written strictly: digits of
 * @p base (10, or 8 for a umask) and nothing else - no sign, space, prefix,
 * fraction or trailing text, where strtoul(3) would skip a leading space and
 * take a sign - and, in base 10, no leading zero but in "0" itself (octal to
 * some readers, as the configuration refuses it); at most @p max.  0 with
 * *out set, or BKR_EINVAL saying which rule the text breaks (not naming it: the
 * caller's message names the option and the value).
 */
int bkr_config_parse_uint(const char *s, int base, uint64_t max, uint64_t *out);

/**
 * What is wrong with @p program, a configured command's argv[0] (alert_command,
 * a recovery strategy's, a validator's), or NULL when nothing is: it must be
 * a name looked up in PATH or an absolute path, since a relative path such as
 * "./page.sh" or "bin/check" would name another program in each directory bkr
 * runs in (a shell's, cron's, a systemd unit's).  A static string, for the
 * caller's message naming the key.
 */
const char *bkr_config_program_problem(const char *program);

/**
 * The effective configuration (defaults filled in, paths absolute) as JSON
 * text for `bkr config show`; itself a valid configuration file that loads
 * to the same values (unset optional keys are omitted).  malloc'd, NULL on OOM.
 */
char *bkr_config_to_json(const bkr_config *c, bool pretty);

#endif
