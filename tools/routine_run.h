/** @file
 * The machinery of one `bkr routine` run (routine_run.c): steps with their
 * status, message and duration, each logged; alert events (one per problem
 * per run); the record in the log directory; the summary (text or JSON);
 * the exit status.  The steps themselves are in cmd_routine.c.
 */
#ifndef BKR_TOOLS_ROUTINE_RUN_H
#define BKR_TOOLS_ROUTINE_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include "cli.h"
#include "bkr/alert.h"
#include "bkr/recover.h"
#include "bkr/routine.h"

struct bkr_health; /* bkr/health.h */

/** A step's outcome, mildest first. */
typedef enum {
	RT_OK = 0,
	RT_SKIPPED,   /**< not needed, or a step it depends on failed */
	RT_NA,        /**< not available in this build */
	RT_PROBLEMS,  /**< ran, and found problems to act on (exit 1) */
	RT_FAILED,    /**< did not do its job (exit 6, an alert) */
} rt_status;

/** "ok", "skipped", "not available", "problems", "failed". */
const char *rt_status_name(rt_status s);

typedef struct {
	const char *name;
	rt_status status;
	char *message;            /**< whole (malloc'd; NULL out of memory: rt_step_message says so) */
	double seconds;
} rt_step;

#define RT_MAX_STEPS 8

typedef struct {
	char *key;     /* kind + subject: one event per problem */
	char *json;    /* the event */
	char *message;
	bool undelivered; /* alert_command failed for it */
} rt_alert_ev;

typedef struct rt_run {
	cli *c;
	bkr_config *cfg;
	bkr_repo *repo;
	char *repo_error;         /**< why the repository did not open, whole (NULL when it did) */
	int repo_err;             /**< ... its code (0 when it did) */
	bkr_routine_kind kind;
	bool dry_run, apply, no_wait, has_as_of;
	int64_t as_of;            /**< "now" for schedules and retention */
	int lock_fd;
	int64_t start_ns;         /**< wall clock */
	int64_t start_mono;
	rt_step steps[RT_MAX_STEPS];
	size_t nsteps;
	size_t step_alerts;       /**< alerts before the running step began */
	bkr_scan_result scan;     /**< the last scan */
	bool scanned;             /**< a scan ran (scan_ns, scan are its result) */
	bool scan_partial;        /**< ... without the repository: required files and validators only */
	int64_t scan_ns;
	bkr_holds holds;          /**< the holds in force after the last scan (bkr/hold.h) */
	char *run_id;             /**< the recovery run this routine made, or NULL */
	struct {
		bool ran, read_data;
		int64_t time_ns;
		uint64_t errors;
		uint64_t io_errors; /**< objects it could not read (an I/O error: not damage, not in objects) */
		char **objects;   /**< damaged objects (blobs, packs...), at most 100 */
		size_t nobjects;
		char **backups;   /**< affected backups, at most 1000 */
		size_t nbackups;
		uint64_t records; /**< of the errors: damaged records (not data: repair does not mend them) */
	} verify;
	rt_alert_ev *alerts;
	size_t nalerts;
	uint64_t repo_bytes;      /**< data in every tier after the run (0: unknown) */
	bool report_failed;       /**< the record, the metrics file or an alert could not be written or sent */
	struct bkr_health *health; /**< health after the steps (its alerts; the files that need a person, for the
				       record), or NULL */
} rt_run;

/** Run step @p name: log it, honour the fault point "routine-<name>", time it. */
void rt_do(rt_run *r, const char *name, void (*fn)(rt_run *r, rt_step *s));
/** Record step @p name as skipped because @p why. */
void rt_skip(rt_run *r, const char *name, const char *why);
/** Step @p s's message ("out of memory ..." when it could not be kept). */
const char *rt_step_message(const rt_step *s);
/** Why the repository did not open (words saying so out of memory). */
const char *rt_repo_error(const rt_run *r);
/** The status of step @p name so far (RT_SKIPPED when it did not run). */
rt_status rt_status_of(const rt_run *r, const char *name);
/** End a step: its status and message (a failure without an alert of its own gets a step_failed alert). */
void rt_step_end(rt_run *r, rt_step *s, rt_status st, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/** True when the repository is open; else ends @p s as failed, saying why. */
bool rt_need_repo(rt_run *r, rt_step *s);

/**
 * Queue an alert event of @p kind about @p source or @p file (either may be
 * NULL), saying what happened and what to do (@p action).  A second event of
 * the same kind about the same subject in one run is dropped.
 */
void rt_alert(rt_run *r, const char *kind, const char *source, const char *file, const char *action,
	      const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/** True when the last scan listed the file of hold @p h (damaged still: alerted as workspace_damage). */
bool rt_hold_seen(const rt_run *r, const bkr_hold *h);

/** Verify reported a damaged @p object affecting @p backup_id (may be NULL). */
void rt_verify_note(rt_run *r, const char *object, const char *backup_id);

/** True when workspace-relative @p rel lies inside one of @p s's paths. */
bool rt_path_in_source(const bkr_config *cfg, const bkr_config_source *s, const char *rel);

/** The weekly routine's health step (health of the repository after the run). */
void rt_health_step(rt_run *r, rt_step *s);

/**
 * Open the repository, run @p steps, refresh the metrics file, record the
 * run, send the alerts, print the summary.  Returns the exit status.
 */
int rt_run_all(rt_run *r, void (*steps)(rt_run *r));
void rt_run_free(rt_run *r);

#endif
