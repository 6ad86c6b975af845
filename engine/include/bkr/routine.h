/** @file
 * Routines (docs/operations.md "Routines"): which configured sources are
 * due for a backup, the routine kinds and which sources each backs up, the
 * routine lock, the record of every routine run and the alert hook.
 *
 * The schedule rule is a pure function of the source's schedule, the time
 * of its newest backup and "now", so that `bkr create -c`, every routine and
 * the unit tests ask the same question:
 *
 *   a source is due when it has no backup yet, or when its newest backup
 *   (of any type but recovery) is at least 90% of its schedule's interval
 *   old (hourly 1 h, daily 1 d, weekly 7 d): timers that fire a little
 *   early or a backup that ended late do not make a routine skip a period.
 *   "manual" sources are never due.  A backup dated in the future (more
 *   than 5 minutes after now: bkr_time_in_future()) is not counted: made
 *   while the clock was ahead, it would keep the source from being due
 *   until the clock reached it.
 *
 * A source is "stale" when its newest backup is more than twice its
 * interval old (or it has none): health reports it and routines alert.
 */
#ifndef BKR_ROUTINE_H
#define BKR_ROUTINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bkr/catalog.h"
#include "bkr/config.h"
#include "bkr/hold.h"
#include "bkr/recover.h"

/** The interval of @p s in seconds (hourly 3600, daily 86400, weekly 604800); 0 for manual. */
int64_t bkr_schedule_interval_s(bkr_schedule s);

/**
 * True when a source of schedule @p s whose newest backup was taken at
 * @p newest_ns (INT64_MIN: none) is due at @p now_ns (the rule above).
 */
bool bkr_schedule_due(bkr_schedule s, int64_t newest_ns, int64_t now_ns);

/** True when that source is stale at @p now_ns: older than twice its interval, or no backup. */
bool bkr_schedule_stale(bkr_schedule s, int64_t newest_ns, int64_t now_ns);

/**
 * The time of the newest backup in @p l (any type but recovery) that holds
 * source @p name, and its index in *at (optional); INT64_MIN when none.
 * @p skip (optional, @p nskip ids) are backups not to count (damaged ones).
 * A backup dated in the future at @p now_ns (bkr_time_in_future(): more
 * than 5 minutes after it) is not counted either; INT64_MAX counts all.
 * With @p path, only a source of that name backed up from that path counts;
 * with @p hostname, only a backup of that host (bkr_backup_of_host): the
 * rule by which create picks a source's parent, so that another workspace
 * or host sharing the repository with a source of the same name does not
 * make this one's source "not due".  NULL: any.
 */
int64_t bkr_routine_newest(const bkr_manifest_list *l, const char *name, const char *path, const char *hostname,
			   const char *const *skip, size_t nskip, int64_t now_ns, size_t *at);

/** The routines. */
typedef enum {
	BKR_ROUTINE_HOURLY = 0,
	BKR_ROUTINE_DAILY,
	BKR_ROUTINE_WEEKLY,
	BKR_ROUTINE_EMERGENCY,
} bkr_routine_kind;

/** "hourly", "daily", "weekly", "emergency". */
const char *bkr_routine_name(bkr_routine_kind k);
/** BKR_EINVAL naming @p s when it is not a routine name. */
int bkr_routine_parse(const char *s, bkr_routine_kind *out);

/**
 * True when routine @p k backs up sources of schedule @p s: hourly backs
 * up hourly sources; daily hourly and daily ones; weekly and emergency
 * every scheduled (not manual) source.
 */
bool bkr_routine_covers(bkr_routine_kind k, bkr_schedule s);

/** bkr_routine_select: every scheduled source, whatever the routine (`bkr create -c`). */
#define BKR_ROUTINE_ANY ((bkr_routine_kind)-1)

/**
 * The names of @p cfg's sources that routine @p k covers (BKR_ROUTINE_ANY:
 * every scheduled source) and, when @p only_due, that are due at @p now_ns
 * by the backups in @p l; higher priority first, configuration order among
 * equals (the order they are backed up in).  A source's newest backup is
 * one of host @p hostname (NULL: any) from the source's path
 * (bkr_routine_newest).  @p names must hold
 * cfg->nsources entries (borrowed from @p cfg); *n gets the count.
 */
void bkr_routine_select(const bkr_config *cfg, const bkr_manifest_list *l, int64_t now_ns,
			bkr_routine_kind k, bool only_due, const char *hostname, const char **names, size_t *n);

/**
 * The routine lock: flock(2) on "<dir>/routine.lock" (@p dir is the log
 * directory, created when absent), so that two routines of one
 * configuration never run at once.  Waits when @p wait, else BKR_ELOCKED
 * with a message naming the lock file.  *fd is the held descriptor; it dies
 * with the process.
 */
int bkr_routine_lock(int *fd, const char *dir, bool wait);
/** Release the lock (closes @p fd; -1 is a no-op). */
void bkr_routine_unlock(int fd);

/** The file, in the log directory, that holds one JSON line per routine run. */
#define BKR_ROUTINE_RECORDS "routines.jsonl"

/**
 * Append @p json_line (one JSON object, no newline) to
 * "<dir>/routines.jsonl" with one write(2) (O_APPEND), fsynced.
 */
int bkr_routine_record(const char *dir, const char *json_line);

/**
 * Run @p cfg's alert_command (argv, no shell) with @p json_event on stdin,
 * killed after @p timeout_ms.  0 when it ran and exited 0; BKR_ETIMEOUT or
 * BKR_ERROR naming its exit status and output otherwise; 0 and nothing
 * run when no alert command is configured.
 */
int bkr_routine_alert(const bkr_config *cfg, const char *json_event, int64_t timeout_ms);

/**
 * After a scan of the whole workspace (@p res, by @p rc, with the repository
 * open): hold each file it found damaged or missing whose copy a backup still
 * has and that no hold names yet (bkr_hold_add, @p host), and release
 * ("recovered") each hold whose file the scan did not list and that is there
 * again as a regular file (not empty when its good copy was not).  *holds:
 * the holds in force afterwards; *added and *released count the records
 * written.  A record that cannot be written is an error (the holds written
 * before it stay).
 */
int bkr_routine_holds_update(bkr_repo *r, bkr_recover *rc, const bkr_scan_result *res, const char *host,
			     bkr_holds *holds, size_t *added, size_t *released);

#endif
