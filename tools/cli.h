/** @file
 * What every bkr subcommand shares: global options, opening the repository
 * and the configuration, error and JSON output, colour and progress.
 */
#ifndef BKR_TOOLS_CLI_H
#define BKR_TOOLS_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "bkr/backup.h"
#include "bkr/config.h"
#include "bkr/exit.h"
#include "bkr/key.h"
#include "bkr/repo.h"
#include "json_out.h"

/** Global options, accepted before or after the subcommand. */
typedef struct {
	const char *repo;     /**< -r/--repo or BKR_REPO */
	const char *config;   /**< -c/--config or BKR_CONFIG */
	bool json;            /**< --json */
	bool quiet;           /**< -q */
	int verbose;          /**< -v */
	bool color;           /**< colour on stdout: a TTY, NO_COLOR unset, TERM not "dumb" (cli_term_init) */
	bool color_err;       /**< the same for stderr */
	bool progress;        /**< stderr is a TTY, TERM not "dumb", not quiet */
	const char *cmd;      /**< subcommand name, for messages */
	bkr_key_source keys;  /**< --password-file, --password-command, --new-password-file */
	bool logs;            /**< the command changes or checks the repository: logged (bkr.c) */
	bool log_begun;       /**< cli_log_begin ran */
	char *log_dir;        /**< the log directory in effect once begun (owned) */
	int config_err;       /**< cli_log_begin's read of the configuration failed: the command's */
	char config_msg[1024];/**< ... with this message (cli_load_config returns it, not a second read) */
	int64_t start_ns;     /**< monotonic time the command started (progress rates) */
} cli;

/** Option ids for the common long options (above the ASCII range). */
enum { OPT_JSON = 1000, OPT_HELP, OPT_NO_COLOR, OPT_PASSWORD_FILE, OPT_PASSWORD_COMMAND,
       OPT_NEW_PASSWORD_FILE, OPT_FIRST_CMD = 1100 };

#define CLI_COMMON_SHORT "r:c:qvh"
#define CLI_COMMON_LONG                                        \
	{ "repo", required_argument, NULL, 'r' },              \
	{ "config", required_argument, NULL, 'c' },            \
	{ "json", no_argument, NULL, OPT_JSON },               \
	{ "quiet", no_argument, NULL, 'q' },                   \
	{ "verbose", no_argument, NULL, 'v' },                 \
	{ "no-color", no_argument, NULL, OPT_NO_COLOR },       \
	{ "password-file", required_argument, NULL, OPT_PASSWORD_FILE }, \
	{ "password-command", required_argument, NULL, OPT_PASSWORD_COMMAND }, \
	{ "new-password-file", required_argument, NULL, OPT_NEW_PASSWORD_FILE }, \
	{ "help", no_argument, NULL, 'h' }

/**
 * Handle a common option.  Returns 1 if handled, 0 if not common, or -1
 * after printing @p usage for -h/--help (the caller exits 0).
 */
int cli_common(cli *c, int opt, const char *arg, const char *usage);

/**
 * Report a usage error ("bkr CMD: MESSAGE" + hint; "bkr: MESSAGE" before a
 * command is known) and return BKR_EXIT_USAGE.
 */
int cli_usage_error(cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * The value @p arg of option @p opt as given ("-r", "--exclude"): 0 when it is
 * not empty, else a usage error naming the option ("OPT: expected a value, not
 * ''").  No option of bkr gives an empty value a meaning: it would name no
 * file, repository, pattern or host (and -c '' would read as no configuration).
 */
int cli_check_value(cli *c, const char *opt, const char *arg);

/** Parse --as-of @p arg (ISO 8601, not before 1970) into *out: 0, or a usage error. */
int cli_as_of(cli *c, const char *arg, int64_t *out);

/**
 * The value @p arg of numeric option @p opt (--threads, --level, --keep-*,
 * --cache-max...) into *out: decimal digits, no sign, space or leading zero
 * (bkr_config_parse_uint), from @p min to @p max; 0, or a usage error naming
 * the option and the value ("OPT: expected WHAT MIN..MAX (decimal digits: no
 * sign, space or leading zero), not 'ARG'"; @p what is "" or ends with a space).
 */
int cli_uint_arg(cli *c, const char *opt, const char *arg, const char *what, uint64_t min, uint64_t max,
		 uint64_t *out);

/** The longest tag, in bytes. */
#define CLI_TAG_MAX 128

/**
 * Check a tag given with option @p opt (create --tag, tag --add): UTF-8, not
 * empty, at most CLI_TAG_MAX bytes, no comma (bkr list joins tags with
 * them), no control character, a name for the mount's /by-tag/TAG (no '/',
 * not . or ..).  0, or a usage error naming the tag.
 */
int cli_check_tag(cli *c, const char *opt, const char *tag);

/**
 * Report the engine's last error for @p err (one line on stderr; with --json
 * also {"error":...} on stdout) and return the matching exit code.
 */
int cli_fail(cli *c, int err);

/** With --json, {"error":{"code","exit","message"}} on stdout; nothing otherwise. */
void cli_json_error(cli *c, int err, const char *msg);

/** A JSON string literal for bytes, by json_out's rules (for output not yet built with json_out). */
void cli_json_string(FILE *f, const char *s, size_t len);
/** @p msg as it is, or, when it holds a control character (C0, DEL, C1) or
 *  a byte that is not UTF-8 (a PATH argument, a name from a backup),
 *  escaped whole by bkr_text_escape into @p buf: text for a message line
 *  that nothing in it can forge or colour.  Used by cli_fail. */
const char *cli_text_safe(char *buf, size_t cap, const char *msg);

/** The JSON of manifest @p m (bkr_manifest_to_json) for output: a string
 *  that is not UTF-8 gets U+FFFD, and a member's also `KEY_hex` with its
 *  exact bytes (json_out_path's rules; the file format is untouched).
 *  Malloc'd; NULL when out of memory. */
char *cli_manifest_json(const bkr_manifest *m, bool pretty);
/** JSON text cJSON wrote (@p text, taken over) by the same rules: a string
 *  that is not UTF-8 gets U+FFFD, and a member's also `KEY_hex`.  NULL when
 *  @p text is NULL or out of memory. */
char *cli_json_utf8(char *text);
/** `"key":"..."`, plus `"key_hex"` when the bytes are not UTF-8 (json_out_path's rules). */
void cli_json_path(FILE *f, const char *key, const char *s, size_t len);

/**
 * A name or path in text output: as it is, unless it holds a control
 * character, C0, DEL or C1 (a newline would forge a line), or starts with a
 * double quote;
 * then in double quotes with C escapes (\n, \t, \", \\, \ooo), as git
 * quotes paths.  --json output keeps the bytes (json_out_path).
 */
void cli_print_name(FILE *f, const char *s, size_t len);

/**
 * An absolute form of live path @p arg (realpath), also when the file itself
 * is gone: then its directory's realpath and its last component.  NULL when
 * that directory is gone too (errno), or out of memory.  Free it.
 */
char *cli_live_abs(const char *arg);

/**
 * When cli_live_abs found no absolute form of @p arg for another reason than
 * its absence (@p errnum: a path longer than PATH_MAX, a directory that may
 * not be searched): that error, one line naming @p arg, as cli_fail
 * returns it.  0 for ENOENT and ENOTDIR (the caller goes on: a path that is
 * gone may still name a backed-up file).
 */
int cli_live_abs_error(cli *c, const char *arg, int errnum);

/** --json: print manifest @p m (pretty), as create and show do. */
void cli_print_manifest(cli *c, const bkr_manifest *m);

/** Same with a message of our own. */
int cli_failf(cli *c, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/** The key module's note that a key cache entry is not used (bkr_key_set_note): a warning. */
void cli_key_note(void *ctx, const char *message);

/** A warning line on stderr ("bkr CMD: warning: ..."), unless quiet. */
void cli_warn(cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * The same line, quiet or not: a reason for the command's non-zero exit
 * status (a problem found, a file left out, data not listed).  -q hides
 * progress, warnings and summaries, never why a command did not exit 0.
 */
void cli_problem(cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * Say once per run that backup @p id is dated in the future (@p time_ns,
 * bkr_time_in_future: more than 5 minutes after now): a warning line on
 * stderr (unless quiet) and in the log, for the first BKR_FUTURE_NAMED such
 * backups; the rest are counted in one line by cli_warn_future_done.  The
 * schedules, health and retention do not count it (docs/operations.md,
 * "Backups dated in the future").  Not for an --as-of time: a backup after
 * it is not a clock error.
 */
void cli_warn_future(cli *c, const char *id, int64_t time_ns);
/** At the end of a run: one line (stderr unless quiet, and the log) counting
 *  the backups dated in the future cli_warn_future did not name, if any. */
void cli_warn_future_done(cli *c);
/** The same for every backup in @p l (not recovery runs) dated in the future at @p now_ns. */
void cli_warn_future_list(cli *c, const bkr_manifest_list *l, int64_t now_ns);
/** cli_warn_future as an engine callback (@p ctx: the cli): bkr_backup_options.future
 * (a parent passed over), bkr_tier_migrate_options.future. */
void cli_warn_future_cb(void *ctx, const char *id, int64_t time_ns);
/** Warn (and log) each bad hold or release record of @p h (bkr_holds.warnings),
 *  once per run: a routine's scan, cleanup and health steps all read them. */
void cli_warn_holds(cli *c, const bkr_holds *h);

/** bkr_repo_find_backup, warning (cli_warn_future) of each backup dated in the
 *  future that "latest" passes over. */
int cli_find_backup(cli *c, bkr_repo *r, const char *spec, bkr_manifest **out);
/** bkr_repo_find_backup_at's @p passed for a cli (@p ctx): the warning naming
 *  a backup 'latest' passed over as dated in the future. */
void cli_warn_latest_passed(void *ctx, const char *id, int64_t time_ns, bool damaged);

/** Open the repository named by -r / BKR_REPO / the config. */
int cli_open_repo(cli *c, bkr_repo **out, int flags);
/** The warnings of a repository just opened: its config.json read from the
 *  copy, each damaged index file left out (naming it). */
void cli_warn_opened(cli *c, bkr_repo *r);

/** Load the configuration when -c / BKR_CONFIG is given; *out NULL otherwise. */
int cli_load_config(cli *c, bkr_config **out);

/** The repository path in effect (NULL when none). */
const char *cli_repo_path(cli *c, const bkr_config *cfg);
/* The repository a command names and the configuration: the one named (-c or BKR_CONFIG) is
 * loaded even when -r or BKR_REPO gives the repository, so that its "s3" object reaches an
 * s3:// repository named on the command line; *path is NULL when no repository is named. */
int cli_repo_location(cli *c, bkr_config **cfg, const char **path);
/* The same for a command that needs a repository: BKR_EINVAL ("no repository: ...") when none is
 * named; *cfg is the caller's to free either way. */
int cli_repo_needed(cli *c, bkr_config **cfg, const char **path);

/** Set c->color and c->color_err: each stream's own, when it is a terminal, NO_COLOR is unset
 *  or empty and TERM is not "dumb" (--no-color turns both off later); and c->progress when
 *  stderr is a terminal and TERM is not "dumb" (the line is redrawn with an escape sequence). */
void cli_term_init(cli *c);

/** Colour escapes for text on stdout (empty when colour is off there). */
const char *cli_col(cli *c, const char *which);
/** The same for text on stderr. */
const char *cli_col_err(cli *c, const char *which);

/** "1.5 MiB" */
void cli_human_bytes(char out[32], uint64_t n);

/**
 * How backup @p m's pin reads at @p now_ns, its time in UTC: "pinned"
 * (forever), "pinned until TIME" or "pin expired TIME" (no longer pinned:
 * retention and tier migration judge it by its age again); "" when not pinned.
 */
const char *cli_pin_text(char out[64], const bkr_manifest *m, int64_t now_ns);

/** Progress line on stderr (TTY only, rate-limited); NULL text clears it. */
void cli_progress(cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/**
 * The progress line of an operation from its counts (bkr/progress.h): done
 * of total, rate, time left ("restoring: 3/10 files, 1.0 MiB/4.0 MiB (25%),
 * 2.0 MiB/s, 0:02 left").  A total of 0 is unknown; byte counts 0 and 0 for
 * operations that count only @p items.  TTY only, never in a pipe or a log.
 */
void cli_progress_counts(cli *c, const char *what, const char *items, uint64_t items_done,
			 uint64_t items_total, uint64_t bytes_done, uint64_t bytes_total);
void cli_progress_done(cli *c);
/**
 * A bkr_progress_fn (bkr/progress.h) that shows an engine's counts with
 * cli_progress_counts: @p ctx is the cli.  Set it as an operation's progress
 * callback only when c->progress (the engine may count more to feed it).
 */
void cli_progress_step(void *ctx, const char *step, const char *items, uint64_t done, uint64_t total,
		       uint64_t bytes_done, uint64_t bytes_total);
/* The same for the engines with callbacks of their own (@p ctx: the cli): a backup's
 * "scanning: N files", then "backing up: ..."; verify's "verifying: ..." of its phase;
 * tier migration's "migrating: ... packs". */
void cli_backup_progress(void *ctx, const bkr_backup_progress *p);
void cli_verify_progress(void *ctx, const char *phase, uint64_t done, uint64_t total, uint64_t bytes_done,
			 uint64_t bytes_total);
void cli_tier_progress(void *ctx, uint64_t packs_done, uint64_t packs_total, uint64_t bytes_done, uint64_t bytes_total);

/**
 * Begin the command's log (bkr/log.h) when c->logs: the configuration's
 * log_dir, or the default without one; the "start" event names the command,
 * its arguments and the repository.  cli_parse calls it once the options are
 * known; a log directory that cannot be used is a warning, never a failure.
 */
void cli_log_begin(cli *c, int argc, char **argv);
/** The "end" event with the exit status @p rc (when begun). */
void cli_log_end(cli *c, int rc);

/** Source specs built from operands or the configuration (owned strings). */
typedef struct {
	bkr_source_spec *specs;
	size_t n;
	char **owned;      /**< strings to free */
	size_t nowned;
	const char *workspace_root;
} cli_sources;

/**
 * Sources from PATH or NAME=PATH operands (a PATH is named after its last
 * component) or, with none, from the configuration (optionally only those
 * named in @p only).
 */
int cli_sources_get(cli *c, const bkr_config *cfg, char **paths, int npaths,
		    char **only, size_t nonly, cli_sources *out);
void cli_sources_free(cli_sources *s);

/**
 * The directories a backup with @p cfg leaves out when they lie inside a
 * source (the tiers and the log directory; the repository always is) into
 * @p skip; returns how many.
 */
size_t cli_skip_paths(const bkr_config *cfg, const char *skip[3]);

/** Commands: argc/argv start at the subcommand name. */
typedef int (*cli_cmd_fn)(cli *c, int argc, char **argv);

int cmd_init(cli *c, int argc, char **argv);
int cmd_key(cli *c, int argc, char **argv);
int cmd_create(cli *c, int argc, char **argv);
int cmd_list(cli *c, int argc, char **argv);
int cmd_show(cli *c, int argc, char **argv);
int cmd_ls(cli *c, int argc, char **argv);
int cmd_cat(cli *c, int argc, char **argv);
int cmd_restore(cli *c, int argc, char **argv);
int cmd_verify(cli *c, int argc, char **argv);
int cmd_diff(cli *c, int argc, char **argv);
int cmd_log(cli *c, int argc, char **argv);
int cmd_config(cli *c, int argc, char **argv);
int cmd_mount(cli *c, int argc, char **argv);
int cmd_pin(cli *c, int argc, char **argv);
int cmd_hold(cli *c, int argc, char **argv);
int cmd_tag(cli *c, int argc, char **argv);
int cmd_scan(cli *c, int argc, char **argv);
int cmd_recover(cli *c, int argc, char **argv);
int cmd_batch(cli *c, int argc, char **argv);
int cmd_recovered(cli *c, int argc, char **argv);
int cmd_delete(cli *c, int argc, char **argv);
int cmd_cleanup(cli *c, int argc, char **argv);
int cmd_prune(cli *c, int argc, char **argv);
int cmd_routine(cli *c, int argc, char **argv);
int cmd_health(cli *c, int argc, char **argv);
int cmd_tier(cli *c, int argc, char **argv);
int cmd_repair(cli *c, int argc, char **argv);
int cmd_copy(cli *c, int argc, char **argv);

/** A command's own option handler: 0 handled, else an exit code (usage error). */
typedef int (*cli_opt_fn)(cli *c, int opt, const char *arg, void *state);

/**
 * Parse a subcommand's options: @p longopts (NULL-terminated, may be NULL)
 * plus the common ones.  Returns 0 with *first_arg set to the first operand,
 * -1 when --help was printed (exit 0), or an exit code after a usage error.
 */
int cli_parse(cli *c, int argc, char **argv, const char *usage, const char *shortopts,
	      const struct option *longopts, cli_opt_fn handle, void *state, int *first_arg);
#define CLI_PARSE_HELP (-1)

/** Parse options or return from the calling command (0 after --help). */
#define CLI_PARSE(c, argc, argv, usage, so, lo, fn, st, first)                         \
	do {                                                                          \
		int rc_ = cli_parse(c, argc, argv, usage, so, lo, fn, st, first);     \
		if (rc_ == CLI_PARSE_HELP)                                            \
			return 0;                                                     \
		if (rc_)                                                              \
			return rc_;                                                   \
	} while (0)

#endif
