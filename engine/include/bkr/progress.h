/** @file
 * Progress of a long operation, for a person watching a terminal: files and
 * bytes done of the total, the rate and the time left.
 *
 * The engine's operations report counts through their own callbacks
 * (backup, restore, verify; prune, repair and the recovery engine's scans
 * and runs through a bkr_progress_fn); the tool feeds them to a bkr_progress
 * and prints bkr_progress_format's line on a terminal only (tools/cli.c).
 * Nothing here prints or logs.  The rate is the average since the start, so
 * the time left is (total - done) / rate: steady, and 0 at the end.
 */
#ifndef BKR_PROGRESS_H
#define BKR_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

/**
 * A progress callback: @p done of @p total @p items of the step under way
 * (@p step "repacking", @p items "packs"; total 0 = unknown), and the bytes
 * done of their total (0 and 0 when the step counts only items).  Called now
 * and then (per item or less often, never per byte) from the thread that
 * runs the operation; the strings are valid during the call only.
 */
typedef void (*bkr_progress_fn)(void *ctx, const char *step, const char *items, uint64_t done, uint64_t total,
				uint64_t bytes_done, uint64_t bytes_total);

typedef struct {
	int64_t start_ns;      /**< bkr_progress_begin's monotonic time */
	int64_t now_ns;        /**< the last update's */
	uint64_t items_done, items_total; /**< files (or packs, backups); total 0 = unknown */
	uint64_t bytes_done, bytes_total; /**< total 0 = unknown (then items measure the rate) */
} bkr_progress;

/** Start measuring at @p now_ns (CLOCK_MONOTONIC, bkr_clock_mono_ns). */
void bkr_progress_begin(bkr_progress *p, int64_t now_ns);

/** The counts at @p now_ns.  A total below its done count is raised to it. */
void bkr_progress_update(bkr_progress *p, int64_t now_ns, uint64_t items_done, uint64_t items_total,
			 uint64_t bytes_done, uint64_t bytes_total);

/** Bytes per second (items per second when no bytes are counted) since the start; 0 before any. */
double bkr_progress_rate(const bkr_progress *p);

/** Seconds left, or -1 when unknown (no total, or nothing done yet). */
int64_t bkr_progress_eta_s(const bkr_progress *p);

/**
 * One line:  "restoring: 12/40 files, 1.2 MiB/3.0 MiB (40%), 5.1 MiB/s, 0:03 left"
 * (@p what, @p items name the operation and what it counts; without a byte
 * total: "verifying: 12/40 packs (30%), 3.1/s, 0:05 left").  Never longer
 * than @p cap - 1.
 */
void bkr_progress_format(const bkr_progress *p, const char *what, const char *items, char *out, size_t cap);

/** "1.5 MiB", "300 B" (binary units, one decimal). */
void bkr_progress_bytes(char out[32], uint64_t n);

#endif
