/** @file
 * Retention: which backups a policy keeps.  A pure function of a list of
 * backups, the policies and an as-of time (no I/O, no clock), so that
 * `bkr cleanup`, `--dry-run` and the unit tests all ask the same question.
 *
 * The rules are restic `forget`'s (docs/operations.md):
 * - backups are grouped by host, type and source set; within a group, the
 *   policy of that type counts, newest first;
 * - keep_last N keeps the N newest; keep_hourly/daily/weekly/monthly/yearly
 *   N keep the newest backup of each of the N newest periods that have one;
 *   periods are UTC calendar hours, days, ISO weeks, months and years (UTC,
 *   like backup ids and bkrfs' /by-date, so a plan does not depend on the
 *   machine's time zone);
 * - keep_within D keeps every backup whose time is after as-of minus D;
 * - a pinned backup (forever, or until a time after as-of) is always kept;
 * - a held backup (the last good copy of a damaged or missing workspace file
 *   that no one has recovered yet: bkr/hold.h) is always kept;
 * - for every host and source, the newest backup containing that source is
 *   always kept, so no source is left without a backup;
 * - a backup dated in the future (more than 5 minutes after as-of:
 *   bkr_time_in_future(), made while the clock was ahead) is always kept and
 *   counts for no other rule: it is not the newest of its sources, takes no
 *   keep_last place and stands for no period, so it cannot displace a real
 *   backup.  Within those 5 minutes a backup counts as usual.
 * A backup no rule keeps is removed.
 */
#ifndef BKR_RETENTION_H
#define BKR_RETENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bkr/config.h"
#include "bkr/manifest.h"

/** The rules, as bits of bkr_retention_decision.rules. */
enum {
	BKR_RETAIN_PINNED = 1 << 0,
	BKR_RETAIN_NEWEST = 1 << 1,  /**< newest backup of a source */
	BKR_RETAIN_WITHIN = 1 << 2,
	BKR_RETAIN_LAST = 1 << 3,
	BKR_RETAIN_HOURLY = 1 << 4,
	BKR_RETAIN_DAILY = 1 << 5,
	BKR_RETAIN_WEEKLY = 1 << 6,
	BKR_RETAIN_MONTHLY = 1 << 7,
	BKR_RETAIN_YEARLY = 1 << 8,
	BKR_RETAIN_FUTURE = 1 << 9,  /**< dated in the future: kept, counted by no rule */
	BKR_RETAIN_HELD = 1 << 10,   /**< holds the last good copy of a damaged workspace file (bkr/hold.h) */
};

/** One backup as retention sees it (borrowed strings). */
typedef struct {
	const char *id;
	int64_t time_ns;
	bkr_backup_type type;
	const char *host;
	const char *const *sources; /**< source names */
	size_t nsources;
	bool pinned;                /**< pinned at all */
	int64_t pinned_until_ns;    /**< when pinned: INT64_MAX = forever */
	bool held;                  /**< a hold names it (bkr/hold.h): kept, and counted as any other */
} bkr_retention_item;

typedef struct {
	bool keep;
	unsigned rules; /**< every BKR_RETAIN_* that keeps it (0 when removed) */
} bkr_retention_decision;

/**
 * Decide for each of @p n backups (any order) under @p policy[type] (one
 * policy per bkr_backup_type, none NULL), as if now were @p as_of_ns.
 * out[i] is the decision for items[i].  BKR_ENOMEM only.
 */
int bkr_retention_apply(bkr_retention_decision *out, const bkr_retention_item *items, size_t n,
			const bkr_retention_policy *const policy[BKR_BACKUP_RECOVERY + 1], int64_t as_of_ns);

/**
 * The rules of @p rules as "pinned,daily" (the first listed decided) or
 * "-" for none, into @p buf.
 */
const char *bkr_retention_rules_str(unsigned rules, char *buf, size_t cap);

/**
 * Fill @p item from manifest @p m (borrowing its strings; @p names must hold
 * m->nsources pointers and live as long as the item).  A pinned_until that
 * is not a time is treated as forever (keeping is the safe side).
 */
void bkr_retention_item_from(bkr_retention_item *item, const bkr_manifest *m, const char **names);

/**
 * Whether @p m is pinned at @p at_ns: pinned forever, or until a time after
 * it (a pinned_until that is not a time counts as forever).
 */
bool bkr_retention_pinned(const bkr_manifest *m, int64_t at_ns);

#endif
