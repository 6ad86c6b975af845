/** @file
 * Structured logging for the engine and the tools.
 *
 * One file per UTC day, "<log_dir>/bkr-YYYY-MM-DD.log", one JSON object per
 * line:
 *
 *     {"time":"2026-11-26T07:00:00.123456Z","level":"info","component":"backup",
 *      "pid":1234,"message":"backup done","backup_id":"backup_...","files":"120"}
 *
 * Files are opened with O_APPEND and every line is written with one write(2),
 * so concurrent threads and processes interleave whole lines.  All functions
 * are thread-safe.  The engine never prints to the terminal: a tool that wants
 * to show log lines installs a hook (bkr_log_set_hook) and prints them itself.
 *
 * Before bkr_log_open (or after bkr_log_close) lines go only to the hook; with
 * neither, logging is a cheap no-op.  Logging never fails the caller: a write
 * error is reported once to the hook and otherwise ignored.  Only a regular
 * file is written: a FIFO, socket or device in the day file's place (or a
 * symlink to one) is never opened for writing, so nothing reaches a pipe by
 * surprise.
 *
 * A command (bkr create, verify, restore, ...) is logged as:
 *
 *     bkr_log_command_begin(dir, BKR_LOG_INFO, "restore", kv);  -> "event":"start"
 *     bkr_log_event(BKR_LOG_INFO, "restore", "done", kv, "restored %s", id);
 *     bkr_log_command_end(exit_status);                          -> "event":"end"
 *
 * Between begin and end every line also carries "command":"restore".  The
 * bkr tool does begin/end itself for every command that changes or checks
 * the repository (tools/bkr.c); a command only logs its events.
 */
#ifndef BKR_LOG_H
#define BKR_LOG_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
	BKR_LOG_DEBUG = 0,
	BKR_LOG_INFO = 1,
	BKR_LOG_WARN = 2,
	BKR_LOG_ERROR = 3,
} bkr_log_level;

/** "debug", "info", "warn", "error". */
const char *bkr_log_level_name(bkr_log_level level);
/** Parse a level name ("warning" is accepted too); BKR_EINVAL naming @p s. */
int bkr_log_level_parse(const char *s, bkr_log_level *out);

/**
 * Start writing daily files in @p dir (created with mkdir -p).  Lines below
 * @p min_level are dropped (from the file and the hook).  Calling it again
 * switches directory.  BKR_EIO etc. when the directory cannot be created.
 */
int bkr_log_open(const char *dir, bkr_log_level min_level);

/** Close the current file; later lines go only to the hook. */
void bkr_log_close(void);

/** Change the minimum level. */
void bkr_log_set_level(bkr_log_level min_level);

/**
 * Receives every line that passes the level filter: its level, component,
 * message, and the whole JSON line (without '\n').  Called with the log lock
 * held and must not log itself.  NULL removes the hook.
 */
typedef void (*bkr_log_hook_fn)(void *ctx, bkr_log_level level, const char *component,
				const char *message, const char *json_line);
void bkr_log_set_hook(bkr_log_hook_fn hook, void *ctx);

/**
 * Log one line.  @p fmt formats the message.  @p kv is an optional
 * NULL-terminated list of alternating key and value strings added as extra
 * members (e.g. (const char *[]){"backup_id", id, "path", p, NULL}); keys
 * "time", "level", "component", "pid", "message" are not allowed there and
 * are skipped.
 */
void bkr_log_kv(bkr_log_level level, const char *component, const char *const *kv,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/**
 * One event: bkr_log_kv plus an "event" member naming what happened
 * ("start", "end", "created", "deleted", "problem", "done", ...).  Values in
 * @p kv are strings (numbers too, as decimal text).
 */
void bkr_log_event(bkr_log_level level, const char *component, const char *event, const char *const *kv,
		   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/**
 * The log directory used when no configuration names one:
 * $XDG_STATE_HOME/bkr (when absolute), else ~/.local/state/bkr, else
 * /var/tmp/bkr-<uid>.  malloc'd; NULL when out of memory.
 */
char *bkr_log_default_dir(void);

/**
 * Begin a command's log: bkr_log_open(@p dir, or bkr_log_default_dir() when
 * NULL), remember @p command for the "command" member of every later line,
 * and log its "start" event with @p kv.  Returns bkr_log_open's result; when
 * it fails the command still runs and lines still reach the hook.
 */
int bkr_log_command_begin(const char *dir, bkr_log_level min_level, const char *command,
			  const char *const *kv);

/**
 * End it: the "end" event with "exit" (@p exit_status) and "duration_s"
 * (info for 0, warn for 1 and 6, error otherwise), then bkr_log_close.
 * A no-op without a begin (except the close).
 */
void bkr_log_command_end(int exit_status);

/** bkr_log_kv without key/values. */
#define bkr_log(level, component, ...) bkr_log_kv((level), (component), NULL, __VA_ARGS__)
#define bkr_log_debug(component, ...) bkr_log_kv(BKR_LOG_DEBUG, (component), NULL, __VA_ARGS__)
#define bkr_log_info(component, ...) bkr_log_kv(BKR_LOG_INFO, (component), NULL, __VA_ARGS__)
#define bkr_log_warn(component, ...) bkr_log_kv(BKR_LOG_WARN, (component), NULL, __VA_ARGS__)
#define bkr_log_error(component, ...) bkr_log_kv(BKR_LOG_ERROR, (component), NULL, __VA_ARGS__)

/** "<dir>/bkr-YYYY-MM-DD.log" for the UTC day of @p time_ns; BKR_EINVAL when it does not fit. */
int bkr_log_path(char *out, size_t cap, const char *dir, int64_t time_ns);

#endif
