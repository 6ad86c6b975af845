/** @file
 * What bkr delete, cleanup, prune and repair share: taking the exclusive lock
 * (waiting for running backups, or --no-wait), and printing a prune report.
 */
#ifndef BKR_TOOLS_LIFECYCLE_H
#define BKR_TOOLS_LIFECYCLE_H

#include <stdbool.h>
#include <stdint.h>

#include "cli.h"
#include "bkr/hold.h"
#include "bkr/prune.h"
#include "bkr/retention.h"

/** The option id of --no-wait (above every command's own ids). */
enum { LC_OPT_NO_WAIT = OPT_FIRST_CMD + 90 };

typedef struct {
	bool no_wait;
} lc_lock_opts;

/**
 * Take @p repo's exclusive lock: at once when free; else wait for the
 * running backups (saying so on stderr), or with --no-wait fail with
 * BKR_ELOCKED and a message that says why.
 */
int lc_lock(cli *c, bkr_repo *repo, const lc_lock_opts *o, bkr_lock **out);

/** A retention plan: which backups a policy removes (bkr cleanup, the daily routine). */
typedef struct {
	bkr_manifest_list l;          /**< every backup */
	bkr_manifest **ms;            /**< the ones considered (all, or of one type) */
	bkr_retention_decision *d;    /**< the decision for each of @p ms */
	size_t n;
	const char **gone;            /**< ids of the backups removed (borrowed from @p l) */
	size_t ngone;
	size_t bad;                   /**< damaged manifests, left alone */
	size_t held;                  /**< of @p ms, backups a hold keeps (bkr/hold.h) */
	size_t held_files;            /**< the holds in force */
	bkr_holds holds;              /**< ... (and the warnings of bad hold records: cli_warn_holds) */
	bkr_retention_item *items;    /* internal */
	const char **names;           /* internal */
} lc_plan;

/**
 * Plan retention over @p repo's backups (only those of type *@p only_type
 * when not NULL) with the policy per type @p pol at @p as_of.  Free with
 * lc_plan_free (also after an error).
 */
int lc_plan_make(lc_plan *out, bkr_repo *repo, const bkr_retention_policy *const *pol,
		 const bkr_backup_type *only_type, int64_t as_of);
void lc_plan_free(lc_plan *p);
/** Warn (cli_warn_future) about each backup the plan keeps because it is dated in the future. */
void lc_plan_warn_future(cli *c, const lc_plan *p);

/**
 * Carry a plan out: its removed backups into the trash, then (unless
 * @p prune is NULL) prune with @p po into *@p out.  The caller holds the
 * exclusive lock.
 */
int lc_plan_apply(bkr_repo *repo, const lc_plan *p, int64_t now, const bkr_prune_options *po,
		  bkr_prune_report *out);
/** Parse --as-of @p arg (ISO 8601) into *out, or a usage error. */
int lc_as_of(cli *c, const char *arg, int64_t *out);
/** Usage error (exit 2) naming --as-of when @p as_of is later than @p now (beyond the 5 minutes of clock
 * skew, bkr_time_in_future) and the run is not a dry run: it would change the repository by a future clock. */
int lc_as_of_allowed(cli *c, int64_t as_of, int64_t now, bool dry_run);

/** --max-unused PERCENT (0..100) into *out; one usage error otherwise. */
int lc_max_unused(cli *c, const char *arg, int *out);

/**
 * The prune report: with --json an object, the next value written to @p j
 * (a newline follows only at the top level); else lines on stdout.
 */
void lc_print_prune(cli *c, json_out *j, const bkr_prune_report *p, bool dry_run);

/**
 * bkr_prune_options.damage (@p ctx: the cli): each line on stderr, with -q
 * too (a reason for the exit status), and in the log.
 */
void lc_prune_damage(void *ctx, const char *message);

/** The exit status a prune that returned 0 ends with: BKR_EXIT_PARTIAL when it met damage it left in place. */
int lc_prune_exit(const bkr_prune_report *p);

/** Log one "deleted" event per backup moved to the trash; @p why: "delete" or "retention". */
void lc_log_deleted(const char *const *ids, size_t n, const char *why);

/** Log the prune report (a "pruned" event with the figures of --json). */
void lc_log_prune(const bkr_prune_report *p);

#endif
