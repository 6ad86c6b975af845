/** @file
 * What bkr delete, cleanup and prune share: taking the exclusive lock
 * (waiting for running backups, or --no-wait), and printing a prune report.
 */
#ifndef BKR_TOOLS_LIFECYCLE_H
#define BKR_TOOLS_LIFECYCLE_H

#include <stdbool.h>

#include "cli.h"
#include "bkr/prune.h"

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

/**
 * The prune report: with --json an object, the next value written to @p j
 * (a newline follows only at the top level); else lines on stdout.
 */
void lc_print_prune(cli *c, json_out *j, const bkr_prune_report *p, bool dry_run);

#endif
